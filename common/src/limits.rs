//! Size limits shared by the bundle writer and reader, so the collector never writes
//! what the analyzer refuses (DESIGN.md section 3). Every cap is in the unit the reader
//! checks: JSON-encoded bytes per line or document, lines, entries.

/// Largest tar entry (content or metadata member).
pub const MAX_ENTRY_SIZE: u64 = 4 << 30;
/// Largest decompressed bundle.
pub const MAX_DECOMPRESSED: u64 = 1 << 40;
/// Most entries in the content trees (rootfs/, literal/, mounts/, volumes/).
pub const MAX_CONTENT_ENTRIES: u64 = 2_000_000;
/// Most exhibit/ members.
pub const MAX_EXHIBIT_MEMBERS: u64 = 20_000;
/// Largest DSSE envelope.
pub const MAX_ENVELOPE: u64 = 16 << 20;
/// Largest JSON document or JSON line other than the envelope.
pub const MAX_JSON: u64 = 16 << 20;
/// Deepest JSON nesting.
pub const MAX_JSON_DEPTH: usize = 64;
/// Largest zstd window (log2) the reader accepts.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 27;
/// Accepted compression levels.
pub const LEVELS: std::ops::RangeInclusive<i32> = 1..=19;
/// Largest PAX extended header (path, link target and xattrs of one entry).
pub const MAX_PAX_HEADER: u64 = 1 << 20;
/// Longest path or link target stored in a bundle.
pub const MAX_PATH: usize = 64 << 10;
/// Most memory regions in one bundle.
pub const MAX_MEMORY_REGIONS: u64 = 10_000;
/// Cap on argv, environment, maps and fd lists of one process, in bytes.
pub const MAX_PROC_LIST_BYTES: usize = 1 << 20;
/// Cap on argv, environment, maps and fd lists of one process, in entries.
pub const MAX_PROC_LIST_ENTRIES: usize = 4096;
/// Longest line of a JSON Lines member, without its newline: the reader takes at most
/// `MAX_JSON` bytes per line including the newline.
pub const MAX_JSON_LINE: u64 = MAX_JSON - 1;
/// Largest JSON document member (host.json, container.json, image.json, volumes.json,
/// and acquisition.jsonl as a whole): the analyzer refuses `MAX_JSON` bytes and more.
pub const MAX_JSON_DOCUMENT: u64 = MAX_JSON - 1;
/// Longest log line kept; the rest of a longer line is cut and the record marked.
pub const MAX_LOG_LINE: usize = 1 << 20;
/// Bytes of a container-controlled text (a path, an exe name) quoted in an acquisition
/// event or a reason; longer ones are cut and end in "…".
pub const MAX_QUOTED: usize = 256;
/// Largest `detail` or `error` of one acquisition event, in JSON-encoded bytes.
pub const MAX_EVENT_TEXT: usize = 64 << 10;
/// Default budget for spooled memory regions and kept executables of one capture,
/// on disk in TMPDIR and in memory (`--max-spool`).
pub const DEFAULT_MAX_SPOOL: u64 = 1 << 30;
/// Most executables kept in one bundle.
pub const MAX_KEPT_EXECUTABLES: u64 = 1_000;

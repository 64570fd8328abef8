//! yara.match: compiled YARA rules over every captured file content, every kept
//! executable (exhibit/exe/) and every memory region (exhibit/memory/) of a verified
//! bundle, read in the report's one streaming pass and never extracted to disk.
//!
//! yara-x scans a byte slice, so each object is held in memory up to `max_size` bytes
//! (`--yara-max-size`); a larger object is scanned up to that size and listed in the
//! scan summary as truncated, never silently.

use crate::finding::{Finding, RuleId, Severity};
use crate::profile::exe_display;
use crate::yara_rules::YaraRules;
use exhibit_common::records::{ChangeRecord, FileType, MemoryRegion, ProcessRecord};
use exhibit_common::text::ByteText;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::mpsc::SyncSender;

/// Default of `--yara-max-size`: bytes of one object held and scanned.
pub const DEFAULT_MAX_SIZE: u64 = 64 << 20;
/// Offsets reported per pattern of a matching rule.
pub const OFFSETS_PER_PATTERN: usize = 5;
/// Matches yara-x records per pattern and object (bounds its memory on hostile data;
/// a condition counting matches sees at most this many).
pub const MAX_MATCHES_PER_PATTERN: usize = 10_000;
// Objects listed by name in the summary (truncated, failed); the rest are counted.
const MAX_LISTED: usize = 1_000;

/// What was scanned, for the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScanSummary {
    /// The `--yara` argument.
    pub path: String,
    /// Rules files and their namespaces.
    pub files: Vec<Value>,
    pub rules: usize,
    pub max_size: u64,
    pub scanned: Scanned,
    /// Objects larger than `max_size`: scanned only up to it.
    pub truncated: Vec<Value>,
    pub truncated_total: u64,
    /// Objects whose scan failed (the error), never silently dropped.
    pub errors: Vec<Value>,
    pub errors_total: u64,
}

/// Counts of scanned objects.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Scanned {
    pub files: u64,
    pub executables: u64,
    pub memory_regions: u64,
    pub bytes: u64,
    /// Regular-file records without content in the bundle (`captured: false`).
    pub files_not_captured: u64,
}

struct ExeUse {
    pids: Vec<i32>,
    exes: Vec<String>,
}

struct RegionUse {
    pid: i32,
    exe: String,
    region: MemoryRegion,
}

/// The processes behind kept executables and memory regions (from processes.jsonl).
pub struct Owners {
    exes: HashMap<String, ExeUse>,
    regions: HashMap<String, RegionUse>,
}

impl Owners {
    /// Indexes `procs` by the exe and memory members they name.
    pub fn new(procs: &[ProcessRecord]) -> Self {
        let mut exes: HashMap<String, ExeUse> = HashMap::new();
        let mut regions = HashMap::new();
        for p in procs {
            if let Some(m) = &p.exe_member {
                let u = exes.entry(m.clone()).or_insert(ExeUse {
                    pids: vec![],
                    exes: vec![],
                });
                u.pids.push(p.pid);
                let exe = exe_display(p);
                if !u.exes.contains(&exe) {
                    u.exes.push(exe);
                }
            }
            for r in &p.memory {
                if let Some(m) = &r.member {
                    regions.insert(
                        m.clone(),
                        RegionUse {
                            pid: p.pid,
                            exe: exe_display(p),
                            region: r.clone(),
                        },
                    );
                }
            }
        }
        Owners { exes, regions }
    }
}

/// One object to scan.
pub enum Object {
    /// A content entry (regular file with content).
    File(Box<ChangeRecord>),
    /// An exhibit/exe/ or exhibit/memory/ member.
    Member(String),
}

impl Object {
    fn member(&self) -> String {
        match self {
            Object::File(rec) => rec.member.lossy(),
            Object::Member(m) => m.clone(),
        }
    }
}

// Objects up to this size go to the worker threads (copied); larger ones are scanned
// on the reading thread from its own buffer, so memory stays at about one --yara-max-size
// plus WORKER_QUEUE small objects.
const WORKER_OBJECT_MAX: usize = 4 << 20;
const WORKER_QUEUE: usize = 8;

struct Job {
    obj: Object,
    data: Vec<u8>,
    size: u64,
}

// One yara-x scanner (they are per thread) with the findings and failures it produced.
struct Scanning<'r> {
    scanner: yara_x::Scanner<'r>,
    owners: &'r Owners,
    findings: Vec<Finding>,
    errors: Vec<Value>,
    errors_total: u64,
}

impl<'r> Scanning<'r> {
    fn new(rules: &'r YaraRules, owners: &'r Owners) -> Self {
        let mut scanner = yara_x::Scanner::new(&rules.rules);
        scanner.max_matches_per_pattern(MAX_MATCHES_PER_PATTERN);
        Scanning {
            scanner,
            owners,
            findings: Vec::new(),
            errors: Vec::new(),
            errors_total: 0,
        }
    }

    fn scan(&mut self, obj: &Object, data: &[u8], size: u64) {
        let results = match self.scanner.scan(data) {
            Ok(r) => r,
            Err(e) => {
                self.errors_total += 1;
                if self.errors.len() < MAX_LISTED {
                    self.errors
                        .push(json!({"member": obj.member(), "error": e.to_string()}));
                }
                return;
            }
        };
        let scanned = data.len() as u64;
        for rule in results.matching_rules() {
            self.findings
                .push(match_finding(&rule, obj, size, scanned, self.owners));
        }
    }
}

/// A scan in progress: reads each object up to `max_size` into one reusable buffer,
/// scans large objects on the reading thread and hands small ones to worker threads.
pub struct YaraScan<'r> {
    max_size: u64,
    buf: Vec<u8>,
    truncated: bool,
    inline: Scanning<'r>,
    jobs: Option<SyncSender<Job>>,
    summary: ScanSummary,
}

/// Runs `walk` with a scan of `rules` (objects held up to `max_size` bytes; `procs`
/// names the processes behind exe and memory members) on this thread plus worker
/// threads, one per further CPU (at most 8); returns what `walk` returned, the
/// findings and the summary.
pub fn with_scan<T>(
    rules: &YaraRules,
    max_size: u64,
    procs: &[ProcessRecord],
    walk: impl FnOnce(&mut YaraScan<'_>) -> T,
) -> (T, Vec<Finding>, ScanSummary) {
    let owners = Owners::new(procs);
    let workers = std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(0)
        .min(8);
    let summary = ScanSummary {
        path: rules.path.display().to_string(),
        files: rules
            .files
            .iter()
            .map(|(f, ns)| json!({"file": f.display().to_string(), "namespace": ns}))
            .collect(),
        rules: rules.rule_count(),
        max_size,
        ..ScanSummary::default()
    };
    let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(WORKER_QUEUE);
    let rx = std::sync::Mutex::new(rx);
    std::thread::scope(|sc| {
        let owners = &owners;
        let rx = &rx;
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                sc.spawn(move || {
                    let mut s = Scanning::new(rules, owners);
                    loop {
                        // The lock is held only to take the next job.
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => break,
                        };
                        let Ok(job) = job else { break };
                        s.scan(&job.obj, &job.data, job.size);
                    }
                    (s.findings, s.errors, s.errors_total)
                })
            })
            .collect();
        let mut scan = YaraScan {
            max_size,
            buf: Vec::new(),
            truncated: false,
            inline: Scanning::new(rules, owners),
            jobs: (workers > 0).then_some(tx),
            summary,
        };
        let out = walk(&mut scan);
        scan.jobs = None;
        let YaraScan {
            inline,
            mut summary,
            ..
        } = scan;
        let mut findings = inline.findings;
        let mut parts = vec![(inline.errors, inline.errors_total)];
        for h in handles {
            // A worker that panicked loses its findings; say so rather than pass silently.
            match h.join() {
                Ok((f, e, n)) => {
                    findings.extend(f);
                    parts.push((e, n));
                }
                Err(_) => parts.push((
                    vec![json!({"member": null, "error": "a scanning thread panicked"})],
                    1,
                )),
            }
        }
        for (errors, total) in parts {
            summary.errors_total += total;
            for e in errors {
                if summary.errors.len() < MAX_LISTED {
                    summary.errors.push(e);
                }
            }
        }
        (out, findings, summary)
    })
}

impl YaraScan<'_> {
    /// Whether a content record has bytes to scan; counts the ones that have none.
    pub fn wants_file(&mut self, rec: &ChangeRecord) -> bool {
        if rec.file_type != FileType::File || rec.hardlink_to.is_some() {
            return false;
        }
        if !rec.captured {
            self.summary.scanned.files_not_captured += 1;
            return false;
        }
        rec.stored_size > 0
    }

    /// Whether an exhibit/ member is scanned (kept executables and memory regions).
    pub fn wants_member(name: &str) -> bool {
        name.starts_with("exhibit/exe/") || name.starts_with("exhibit/memory/")
    }

    /// Reads an object's bytes, up to the size cap, into the buffer and returns them
    /// with the object's full size; the bytes beyond the cap are read and dropped here
    /// (the bundle walk re-hashes them all the same).
    pub fn fill(&mut self, body: &mut dyn Read) -> io::Result<(&[u8], u64)> {
        self.buf.clear();
        if self.buf.capacity() == 0 {
            // Virtual until written: only the largest object scanned becomes resident.
            self.buf.reserve_exact(self.max_size as usize);
        }
        Read::take(&mut *body, self.max_size).read_to_end(&mut self.buf)?;
        let mut rest = io::copy(body, &mut io::sink())?;
        self.truncated = rest > 0;
        rest += self.buf.len() as u64;
        Ok((&self.buf, rest))
    }

    /// Scans the buffer filled last as `obj` (`size`: the object's full size, from
    /// [`YaraScan::fill`]); matches become findings.
    pub fn scan(&mut self, obj: Object, size: u64) {
        match &obj {
            Object::File(_) => self.summary.scanned.files += 1,
            Object::Member(m) if m.starts_with("exhibit/exe/") => {
                self.summary.scanned.executables += 1
            }
            Object::Member(_) => self.summary.scanned.memory_regions += 1,
        }
        let scanned = self.buf.len() as u64;
        self.summary.scanned.bytes += scanned;
        if self.truncated {
            self.summary.truncated_total += 1;
            if self.summary.truncated.len() < MAX_LISTED {
                self.summary.truncated.push(json!({
                    "member": obj.member(), "size": size, "scanned_bytes": scanned,
                }));
            }
        }
        if let Some(jobs) = &self.jobs {
            if self.buf.len() <= WORKER_OBJECT_MAX {
                let job = Job {
                    obj,
                    data: self.buf.clone(),
                    size,
                };
                match jobs.send(job) {
                    Ok(()) => return,
                    // Every worker is gone (it cannot happen unless one panicked):
                    // scan here instead.
                    Err(e) => {
                        let job = e.0;
                        self.jobs = None;
                        self.inline.scan(&job.obj, &job.data, job.size);
                        return;
                    }
                }
            }
        }
        self.inline.scan(&obj, &self.buf, size);
    }
}

fn meta_value(v: yara_x::MetaValue<'_>) -> Value {
    match v {
        yara_x::MetaValue::Integer(i) => i.into(),
        yara_x::MetaValue::Float(f) => json!(f),
        yara_x::MetaValue::Bool(b) => b.into(),
        yara_x::MetaValue::String(s) => s.into(),
        yara_x::MetaValue::Bytes(b) => {
            serde_json::to_value(ByteText(b.to_vec())).unwrap_or_default()
        }
    }
}

/// The severity a rule asks for in its `severity` metadata (info, low, medium, high,
/// critical; any case), else high.
pub fn rule_severity(meta: &Map<String, Value>) -> Severity {
    match meta
        .get("severity")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("info") => Severity::Info,
        Some("low") => Severity::Low,
        Some("medium") => Severity::Medium,
        Some("critical") => Severity::Critical,
        _ => Severity::High,
    }
}

fn hex_addr(a: u64) -> String {
    format!("{a:x}")
}

fn match_finding(
    rule: &yara_x::Rule<'_, '_>,
    obj: &Object,
    size: u64,
    scanned: u64,
    owners: &Owners,
) -> Finding {
    let truncated = size > scanned;
    let member = obj.member();
    let (exes, regions) = (&owners.exes, &owners.regions);
    let mut meta = Map::new();
    for (k, v) in rule.metadata() {
        // The first value of a repeated key wins, as for the severity.
        meta.entry(k.to_string()).or_insert_with(|| meta_value(v));
    }
    let tags: Vec<&str> = rule.tags().map(|t| t.identifier()).collect();
    let base = match obj {
        Object::Member(m) => regions.get(m).map(|r| r.region.start),
        Object::File(_) => None,
    };
    let mut patterns = Vec::new();
    let mut total = 0usize;
    for p in rule.patterns() {
        let matches = p.matches();
        let count = matches.len();
        if count == 0 {
            continue;
        }
        total += count;
        let offsets: Vec<usize> = p
            .matches()
            .take(OFFSETS_PER_PATTERN)
            .map(|m| m.range().start)
            .collect();
        let mut entry = json!({
            "pattern": p.identifier(),
            "count": count,
            "count_capped": count >= MAX_MATCHES_PER_PATTERN,
            "offsets": offsets,
        });
        if let Some(start) = base {
            entry["addresses"] = offsets
                .iter()
                .map(|o| hex_addr(start.saturating_add(*o as u64)))
                .collect();
        }
        patterns.push(entry);
    }
    let severity = rule_severity(&meta);
    let qualified = format!("{}:{}", rule.namespace(), rule.identifier());
    let (object, what, mut f) = match obj {
        Object::File(rec) => {
            let path = rec.path.lossy();
            (
                "file",
                format!("file {path}"),
                Finding::new(RuleId::YaraMatch, severity, "", "")
                    .with("path", &rec.path)
                    .with("member", &rec.member)
                    .with("sha256", &rec.sha256),
            )
        }
        Object::Member(m) => {
            if let Some(u) = exes.get(m) {
                let pids = u
                    .pids
                    .iter()
                    .map(i32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                (
                    "executable",
                    format!("the kept executable of pid {pids} ({})", u.exes.join(", ")),
                    Finding::new(RuleId::YaraMatch, severity, "", "")
                        .with("path", u.exes.first())
                        .with("member", m)
                        .with("pids", &u.pids)
                        .with("exes", &u.exes)
                        .with("sha256", m.strip_prefix("exhibit/exe/")),
                )
            } else if let Some(r) = regions.get(m) {
                (
                    "memory",
                    format!(
                        "memory region {:x}-{:x} ({}) of pid {} ({})",
                        r.region.start, r.region.end, r.region.perms, r.pid, r.exe
                    ),
                    Finding::new(RuleId::YaraMatch, severity, "", "")
                        .with("path", &r.exe)
                        .with("member", m)
                        .with("pid", r.pid)
                        .with(
                            "region",
                            json!({
                                "start": hex_addr(r.region.start),
                                "end": hex_addr(r.region.end),
                                "perms": r.region.perms,
                                "pathname": r.region.pathname,
                            }),
                        )
                        .with("sha256", &r.region.sha256),
                )
            } else {
                let object = if m.starts_with("exhibit/exe/") {
                    "executable"
                } else {
                    "memory"
                };
                (
                    object,
                    format!("{m} (no process record names it)"),
                    Finding::new(RuleId::YaraMatch, severity, "", "").with("member", m),
                )
            }
        }
    };
    f.subject = format!("{}@{member}", rule.identifier());
    f.summary = format!("YARA rule {qualified} matched {what}");
    f.with("object", object)
        .with("rule", rule.identifier())
        .with("namespace", rule.namespace())
        .with("tags", tags)
        .with("meta", meta)
        .with("matches", patterns)
        .with("match_count", total)
        .with("size", size)
        .with("scanned_bytes", scanned)
        .with("truncated", truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_comes_from_metadata_else_high() {
        let m = |v: Value| -> Map<String, Value> {
            let mut m = Map::new();
            m.insert("severity".into(), v);
            m
        };
        assert_eq!(rule_severity(&m("Critical".into())), Severity::Critical);
        assert_eq!(rule_severity(&m("low".into())), Severity::Low);
        assert_eq!(rule_severity(&m("info".into())), Severity::Info);
        assert_eq!(rule_severity(&m("severe".into())), Severity::High);
        assert_eq!(rule_severity(&m(3.into())), Severity::High);
        assert_eq!(rule_severity(&Map::new()), Severity::High);
    }
}

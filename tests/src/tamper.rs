//! Tampering with library-written bundles at the tar level, for the verifier tests
//! (interop.rs runs the independent Python verifier on them, verify_cli.rs the binary).

use exhibit_common::dsse::Envelope;
use exhibit_common::tarcodec::{end_marker, padding, render, EntryHeader};

/// One member of a tar stream: its name and where its blocks are.
#[derive(Debug, Clone)]
pub struct Span {
    pub name: Vec<u8>,
    /// First byte of the member (its PAX header when it has one).
    pub start: usize,
    /// First byte of its data.
    pub data: usize,
    /// End of its data.
    pub end: usize,
    /// End of its padded data (start of the next member).
    pub next: usize,
}

impl Span {
    pub fn name(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

fn octal(f: &[u8]) -> usize {
    let s: String = f
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| b as char)
        .collect();
    usize::from_str_radix(s.trim(), 8).unwrap()
}

fn cstr(f: &[u8]) -> Vec<u8> {
    f.iter().copied().take_while(|&b| b != 0).collect()
}

/// The members of a (decompressed) bundle tar, in order.
pub fn spans(tar: &[u8]) -> Vec<Span> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 512 <= tar.len() && tar[off..off + 512].iter().any(|&b| b != 0) {
        let start = off;
        let mut pax_path = None;
        if tar[off + 156] == b'x' {
            let size = octal(&tar[off + 124..off + 136]);
            let mut pax = &tar[off + 512..off + 512 + size];
            while !pax.is_empty() {
                let sp = pax.iter().position(|&b| b == b' ').unwrap();
                let len: usize = std::str::from_utf8(&pax[..sp]).unwrap().parse().unwrap();
                let rec = &pax[sp + 1..len - 1];
                if let Some(p) = rec.strip_prefix(b"path=") {
                    pax_path = Some(p.to_vec());
                }
                pax = &pax[len..];
            }
            off += 512 + size.div_ceil(512) * 512;
        }
        let name = pax_path.unwrap_or_else(|| cstr(&tar[off..off + 100]));
        let size = octal(&tar[off + 124..off + 136]);
        let data = off + 512;
        let next = data + size.div_ceil(512) * 512;
        out.push(Span {
            name,
            start,
            data,
            end: data + size,
            next,
        });
        off = next;
    }
    out
}

/// The span of the member called `name`.
pub fn span<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| s.name == name.as_bytes())
        .unwrap_or_else(|| panic!("no member {name}"))
}

/// The blocks of member `i` (headers, data, padding).
pub fn blocks<'a>(tar: &'a [u8], spans: &[Span], i: usize) -> &'a [u8] {
    &tar[spans[i].start..spans[i].next]
}

/// A tar stream of the given members of `tar`, in the given order, then the
/// end-of-archive marker.
pub fn rebuild(tar: &[u8], spans: &[Span], order: &[usize]) -> Vec<u8> {
    let mut t: Vec<u8> = order
        .iter()
        .flat_map(|&i| blocks(tar, spans, i).to_vec())
        .collect();
    t.extend(end_marker());
    t
}

/// The members of `tar` without member `i`.
pub fn without(tar: &[u8], i: usize) -> Vec<u8> {
    let sp = spans(tar);
    let order: Vec<usize> = (0..sp.len()).filter(|&j| j != i).collect();
    rebuild(tar, &sp, &order)
}

/// The members of `tar` with member `i` twice in a row.
pub fn duplicated(tar: &[u8], i: usize) -> Vec<u8> {
    let sp = spans(tar);
    let mut order: Vec<usize> = (0..sp.len()).collect();
    order.insert(i, i);
    rebuild(tar, &sp, &order)
}

/// The members of `tar` with `extra` (whole tar blocks) inserted before member `i`.
pub fn inserted(tar: &[u8], i: usize, extra: &[u8]) -> Vec<u8> {
    let sp = spans(tar);
    let mut t = tar[..sp[i].start].to_vec();
    t.extend_from_slice(extra);
    t.extend_from_slice(&tar[sp[i].start..]);
    t
}

/// A metadata-style member (header, data, padding) as whole tar blocks.
pub fn member_blocks(name: &str, body: &[u8]) -> Vec<u8> {
    let mut t = render(&EntryHeader::metadata(name, body.len() as u64));
    t.extend_from_slice(body);
    t.extend(vec![0u8; padding(body.len() as u64)]);
    t
}

/// The envelope of a bundle tar.
pub fn envelope(tar: &[u8]) -> Envelope {
    let sp = spans(tar);
    let e = span(&sp, "exhibit/manifest.dsse.json");
    serde_json::from_slice(&tar[e.data..e.end]).unwrap()
}

/// `tar` with its envelope (the last member) replaced by `env`.
pub fn with_envelope(tar: &[u8], env: &Envelope) -> Vec<u8> {
    let sp = spans(tar);
    let e = span(&sp, "exhibit/manifest.dsse.json");
    let mut t = tar[..e.start].to_vec();
    t.extend(member_blocks(
        "exhibit/manifest.dsse.json",
        &serde_json::to_vec_pretty(env).unwrap(),
    ));
    t.extend(end_marker());
    t
}

/// Recomputes the checksum of the tar header `h` (its first 512 bytes), after a test
/// changed one of its fields on purpose.
pub fn rechecksum(h: &mut [u8]) {
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h[..512].iter().map(|&b| b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// Decompresses a bundle.
pub fn decompress(b: &[u8]) -> Vec<u8> {
    zstd::decode_all(b).unwrap()
}

/// Compresses a tar stream into one zstd frame, as the writer does.
pub fn compress(t: &[u8]) -> Vec<u8> {
    zstd::encode_all(t, 3).unwrap()
}

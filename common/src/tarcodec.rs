//! The POSIX (PAX) tar subset that bundles use, written and read strictly.
//!
//! Headers are *canonical*: [`render`] is a pure function of an [`EntryHeader`], the
//! writer emits exactly its output, and the verifier re-renders the header it expects
//! from the signed records and compares bytes. A header the writer would not have
//! produced (extra PAX keys, global headers, GNU extensions, odd padding) therefore
//! fails verification instead of being interpreted.

use crate::limits::{MAX_ENTRY_SIZE, MAX_PATH, MAX_PAX_HEADER};
use std::io::{self, Read};

const BLOCK: usize = 512;
/// Zero padding accepted after the end-of-archive marker.
pub const MAX_TRAILING_ZEROS: usize = 1 << 20;

/// The entry types bundles contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryType {
    File,
    Dir,
    Symlink,
    Hardlink,
    Fifo,
    Char,
    Block,
}

impl EntryType {
    fn flag(self) -> u8 {
        match self {
            EntryType::File => b'0',
            EntryType::Hardlink => b'1',
            EntryType::Symlink => b'2',
            EntryType::Char => b'3',
            EntryType::Block => b'4',
            EntryType::Dir => b'5',
            EntryType::Fifo => b'6',
        }
    }
    fn from_flag(flag: u8) -> Option<Self> {
        Some(match flag {
            b'0' | 0 => EntryType::File,
            b'1' => EntryType::Hardlink,
            b'2' => EntryType::Symlink,
            b'3' => EntryType::Char,
            b'4' => EntryType::Block,
            b'5' => EntryType::Dir,
            b'6' => EntryType::Fifo,
            _ => return None,
        })
    }
}

/// Everything a bundle's tar header says about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryHeader {
    pub path: Vec<u8>,
    pub kind: EntryType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Bytes of content that follow the header (0 unless `kind` is `File`).
    pub size: u64,
    pub mtime_ns: i128,
    /// Symlink target, or the member a hard link points at.
    pub link: Option<Vec<u8>>,
    pub dev_major: u32,
    pub dev_minor: u32,
    /// Extended attributes, sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl EntryHeader {
    /// The header of an exhibit/ metadata member: a plain file owned by root, mtime 0.
    pub fn metadata(path: &str, size: u64) -> Self {
        EntryHeader {
            path: path.as_bytes().to_vec(),
            kind: EntryType::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size,
            mtime_ns: 0,
            link: None,
            dev_major: 0,
            dev_minor: 0,
            xattrs: Vec::new(),
        }
    }
}

/// Why tar data was refused.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    #[error("truncated: the archive ends inside {0}")]
    Truncated(&'static str),
    #[error("bad header checksum")]
    Checksum,
    #[error("not a POSIX ustar header")]
    NotUstar,
    #[error("unsupported tar entry type {0:?}")]
    UnsupportedType(char),
    #[error("PAX global headers are not allowed")]
    GlobalHeader,
    #[error("PAX header of {0} bytes is over the limit")]
    PaxTooLarge(u64),
    #[error("malformed PAX header")]
    PaxSyntax,
    #[error("PAX key {0:?} is not allowed in a bundle")]
    PaxKey(String),
    #[error("entry declares {0} bytes, over the entry limit")]
    EntryTooLarge(u64),
    #[error("path or link target over {MAX_PATH} bytes")]
    PathTooLong,
    #[error("non-zero bytes in the padding after an entry")]
    NonZeroPadding,
    #[error("non-zero bytes after the end-of-archive marker")]
    TrailingData,
    #[error("malformed numeric field {0}")]
    BadNumber(&'static str),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Renders the canonical header bytes (an optional PAX `x` entry, then the ustar header).
pub fn render(h: &EntryHeader) -> Vec<u8> {
    let mut pax = Vec::new();
    let name_fits = fits_ustar(&h.path);
    if !name_fits {
        pax_record(&mut pax, b"path", &h.path);
    }
    let link_fits = h.link.as_deref().is_none_or(fits_ustar);
    if !link_fits {
        if let Some(link) = &h.link {
            pax_record(&mut pax, b"linkpath", link);
        }
    }
    let secs = h.mtime_ns.div_euclid(1_000_000_000);
    let nanos = h.mtime_ns.rem_euclid(1_000_000_000);
    if nanos != 0 || !(0..0o77777777777).contains(&secs) {
        let value = if secs < 0 && nanos != 0 {
            // PAX times are decimal with the sign applying to the whole value.
            let total = -h.mtime_ns;
            format!(
                "-{}.{:09}",
                total.div_euclid(1_000_000_000),
                total.rem_euclid(1_000_000_000)
            )
        } else {
            format!("{secs}.{nanos:09}")
        };
        pax_record(&mut pax, b"mtime", value.as_bytes());
    }
    for (name, value) in &h.xattrs {
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(name);
        pax_record(&mut pax, &key, value);
    }
    let mut out = Vec::with_capacity(BLOCK * 3);
    if !pax.is_empty() {
        let mut xh = ustar(
            b"././@PaxHeader",
            b'x',
            0o644,
            0,
            0,
            pax.len() as u64,
            0,
            b"",
            0,
            0,
        );
        out.append(&mut xh);
        out.extend_from_slice(&pax);
        pad(&mut out);
    }
    let name: &[u8] = if name_fits { &h.path } else { b"" };
    let link: &[u8] = match (&h.link, link_fits) {
        (Some(l), true) => l,
        _ => b"",
    };
    let mtime = if (0..0o77777777777).contains(&secs) {
        secs as u64
    } else {
        0
    };
    out.extend(ustar(
        &truncate_name(name, &h.path),
        h.kind.flag(),
        h.mode & 0o7777,
        h.uid,
        h.gid,
        h.size,
        mtime,
        link,
        h.dev_major,
        h.dev_minor,
    ));
    out
}

/// Bytes of zero padding after `size` content bytes.
pub fn padding(size: u64) -> usize {
    ((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64) as usize
}

/// The end-of-archive marker.
pub fn end_marker() -> [u8; BLOCK * 2] {
    [0u8; BLOCK * 2]
}

fn fits_ustar(p: &[u8]) -> bool {
    p.len() < 100 && p.is_ascii() && !p.is_empty()
}

// When the path is carried in PAX, the ustar name field holds a fixed placeholder so
// the header stays canonical and readers without PAX support see something sane.
fn truncate_name(name: &[u8], _full: &[u8]) -> Vec<u8> {
    if name.is_empty() {
        b"././@LongName".to_vec()
    } else {
        name.to_vec()
    }
}

fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    loop {
        let candidate = body + len.to_string().len();
        if candidate == len {
            break;
        }
        len = candidate;
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn pad(out: &mut Vec<u8>) {
    let n = padding(out.len() as u64);
    out.extend(std::iter::repeat_n(0u8, n));
}

#[allow(clippy::too_many_arguments)]
fn ustar(
    name: &[u8],
    flag: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    link: &[u8],
    major: u32,
    minor: u32,
) -> Vec<u8> {
    let mut b = vec![0u8; BLOCK];
    b[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    numeric(&mut b[100..108], mode as u64);
    numeric(&mut b[108..116], uid);
    numeric(&mut b[116..124], gid);
    numeric(&mut b[124..136], size);
    numeric(&mut b[136..148], mtime);
    b[156] = flag;
    b[157..157 + link.len().min(100)].copy_from_slice(&link[..link.len().min(100)]);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    if flag == b'3' || flag == b'4' {
        numeric(&mut b[329..337], major as u64);
        numeric(&mut b[337..345], minor as u64);
    }
    b[148..156].copy_from_slice(b"        ");
    let sum: u64 = b.iter().map(|&x| x as u64).sum();
    let text = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(text.as_bytes());
    b
}

// Octal with a NUL terminator when it fits, else base-256 (GNU), as GNU tar reads both.
fn numeric(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    if value < 8u64.pow(digits as u32) {
        let text = format!("{value:0digits$o}");
        field[..digits].copy_from_slice(text.as_bytes());
        field[digits] = 0;
    } else {
        field.fill(0);
        let bytes = value.to_be_bytes();
        let n = field.len();
        let take = n.min(8);
        field[n - take..].copy_from_slice(&bytes[8 - take..]);
        field[0] |= 0x80;
    }
}

fn parse_numeric(field: &[u8], what: &'static str) -> Result<u64, TarError> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = (field[0] & 0x7f) as u64;
        for &b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(b as u64))
                .ok_or(TarError::BadNumber(what))?;
        }
        return Ok(v);
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .take_while(|&b| b != 0)
        .filter(|&b| b != b' ')
        .collect();
    if text.is_empty() {
        return Ok(0);
    }
    let s = std::str::from_utf8(&text).map_err(|_| TarError::BadNumber(what))?;
    u64::from_str_radix(s, 8).map_err(|_| TarError::BadNumber(what))
}

fn cstr(field: &[u8]) -> Vec<u8> {
    field.iter().copied().take_while(|&b| b != 0).collect()
}

/// A raw header as read: the parsed fields plus its exact bytes (for comparison with
/// the canonical rendering).
#[derive(Debug)]
pub struct RawEntry {
    pub header: EntryHeader,
    pub raw: Vec<u8>,
}

/// Reads tar entries strictly. Content must be consumed with [`TarReader::read_body`]
/// (or skipped with [`TarReader::skip_body`]) before the next header.
pub struct TarReader<R: Read> {
    inner: R,
    remaining: u64,
    pad: usize,
    done: bool,
}

impl<R: Read> TarReader<R> {
    /// Wraps a decompressed tar stream.
    pub fn new(inner: R) -> Self {
        TarReader {
            inner,
            remaining: 0,
            pad: 0,
            done: false,
        }
    }

    fn block(&mut self, what: &'static str) -> Result<[u8; BLOCK], TarError> {
        let mut b = [0u8; BLOCK];
        read_exact_or(&mut self.inner, &mut b, what)?;
        Ok(b)
    }

    /// The next entry, or `None` after a valid end of archive (which is checked to be
    /// followed only by zero bytes).
    pub fn next_entry(&mut self) -> Result<Option<RawEntry>, TarError> {
        if self.done {
            return Ok(None);
        }
        self.skip_body()?;
        let mut raw = Vec::with_capacity(BLOCK);
        let mut b = self.block("a header")?;
        if b.iter().all(|&x| x == 0) {
            let second = self.block("the end-of-archive marker")?;
            if second.iter().any(|&x| x != 0) {
                return Err(TarError::TrailingData);
            }
            // Tar writers pad to a record size (GNU: 10 KiB); more than that is not
            // padding, and reading it unbounded would let a zero bomb run for hours.
            let mut rest = [0u8; 8192];
            let mut seen = 0usize;
            loop {
                let n = self.inner.read(&mut rest)?;
                if n == 0 {
                    break;
                }
                seen += n;
                if seen > MAX_TRAILING_ZEROS || rest[..n].iter().any(|&x| x != 0) {
                    return Err(TarError::TrailingData);
                }
            }
            self.done = true;
            return Ok(None);
        }
        let mut pax_path = None;
        let mut pax_link = None;
        let mut pax_mtime = None;
        let mut xattrs = Vec::new();
        check_header(&b)?;
        match b[156] {
            b'x' => {
                raw.extend_from_slice(&b);
                let size = parse_numeric(&b[124..136], "size")?;
                if size > MAX_PAX_HEADER {
                    return Err(TarError::PaxTooLarge(size));
                }
                let mut data = vec![0u8; size as usize];
                read_exact_or(&mut self.inner, &mut data, "a PAX header")?;
                let mut padb = vec![0u8; padding(size)];
                read_exact_or(&mut self.inner, &mut padb, "a PAX header")?;
                if padb.iter().any(|&b| b != 0) {
                    return Err(TarError::NonZeroPadding);
                }
                raw.extend_from_slice(&data);
                raw.extend_from_slice(&padb);
                parse_pax(
                    &data,
                    &mut pax_path,
                    &mut pax_link,
                    &mut pax_mtime,
                    &mut xattrs,
                )?;
                b = self.block("a header")?;
                check_header(&b)?;
            }
            b'g' => return Err(TarError::GlobalHeader),
            _ => {}
        }
        raw.extend_from_slice(&b);
        let kind = EntryType::from_flag(b[156]).ok_or(TarError::UnsupportedType(b[156] as char))?;
        let size = parse_numeric(&b[124..136], "size")?;
        if size > MAX_ENTRY_SIZE {
            return Err(TarError::EntryTooLarge(size));
        }
        let secs = parse_numeric(&b[136..148], "mtime")?;
        let path = pax_path.unwrap_or_else(|| cstr(&b[0..100]));
        let link_field = cstr(&b[157..257]);
        let link = match pax_link {
            Some(l) => Some(l),
            None if !link_field.is_empty() => Some(link_field),
            None => None,
        };
        if path.len() > MAX_PATH || link.as_ref().is_some_and(|l| l.len() > MAX_PATH) {
            return Err(TarError::PathTooLong);
        }
        let header = EntryHeader {
            path,
            kind,
            mode: parse_numeric(&b[100..108], "mode")? as u32,
            uid: parse_numeric(&b[108..116], "uid")?,
            gid: parse_numeric(&b[116..124], "gid")?,
            size,
            mtime_ns: pax_mtime.unwrap_or(secs as i128 * 1_000_000_000),
            link,
            dev_major: parse_numeric(&b[329..337], "devmajor")? as u32,
            dev_minor: parse_numeric(&b[337..345], "devminor")? as u32,
            xattrs,
        };
        self.remaining = size;
        self.pad = padding(size);
        Ok(Some(RawEntry { header, raw }))
    }

    /// Reads from the current entry's content; 0 at its end.
    pub fn read_body(&mut self, buf: &mut [u8]) -> Result<usize, TarError> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(self.remaining.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(TarError::Truncated("entry content"));
        }
        self.remaining -= n as u64;
        Ok(n)
    }

    /// Discards the rest of the current entry's content and its padding.
    pub fn skip_body(&mut self) -> Result<(), TarError> {
        let mut buf = [0u8; 16384];
        while self.remaining > 0 {
            self.read_body(&mut buf)?;
        }
        if self.pad > 0 {
            let mut p = [0u8; BLOCK];
            let n = self.pad;
            read_exact_or(&mut self.inner, &mut p[..n], "entry padding")?;
            self.pad = 0;
            if p[..n].iter().any(|&b| b != 0) {
                return Err(TarError::NonZeroPadding);
            }
        }
        Ok(())
    }

    /// The wrapped reader.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

fn read_exact_or<R: Read>(r: &mut R, buf: &mut [u8], what: &'static str) -> Result<(), TarError> {
    let mut off = 0;
    while off < buf.len() {
        match r.read(&mut buf[off..]) {
            Ok(0) => return Err(TarError::Truncated(what)),
            Ok(n) => off += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(TarError::Io(e)),
        }
    }
    Ok(())
}

fn check_header(b: &[u8; BLOCK]) -> Result<(), TarError> {
    if &b[257..263] != b"ustar\0" || &b[263..265] != b"00" {
        return Err(TarError::NotUstar);
    }
    let stored = parse_numeric(&b[148..156], "checksum")?;
    let mut sum: u64 = 0;
    for (i, &x) in b.iter().enumerate() {
        sum += if (148..156).contains(&i) {
            32
        } else {
            x as u64
        };
    }
    if sum != stored {
        return Err(TarError::Checksum);
    }
    Ok(())
}

type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

fn parse_pax(
    mut data: &[u8],
    path: &mut Option<Vec<u8>>,
    link: &mut Option<Vec<u8>>,
    mtime: &mut Option<i128>,
    xattrs: &mut Xattrs,
) -> Result<(), TarError> {
    while !data.is_empty() {
        let sp = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or(TarError::PaxSyntax)?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(TarError::PaxSyntax)?;
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(TarError::PaxSyntax);
        }
        let rec = &data[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|&b| b == b'=')
            .ok_or(TarError::PaxSyntax)?;
        let (key, value) = (&rec[..eq], rec[eq + 1..].to_vec());
        match key {
            b"path" => *path = Some(value),
            b"linkpath" => *link = Some(value),
            b"mtime" => *mtime = Some(parse_pax_time(&value).ok_or(TarError::PaxSyntax)?),
            k if k.starts_with(b"SCHILY.xattr.") => {
                xattrs.push((k[b"SCHILY.xattr.".len()..].to_vec(), value))
            }
            k => return Err(TarError::PaxKey(String::from_utf8_lossy(k).into_owned())),
        }
        data = &data[len..];
    }
    Ok(())
}

fn parse_pax_time(v: &[u8]) -> Option<i128> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i128 = secs.parse::<u64>().ok()? as i128;
    let nanos: i128 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    let total = secs * 1_000_000_000 + nanos;
    Some(if neg { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(path: &[u8]) -> EntryHeader {
        EntryHeader {
            path: path.to_vec(),
            kind: EntryType::File,
            mode: 0o4755,
            uid: 1000,
            gid: 3_000_000,
            size: 5,
            mtime_ns: 1_700_000_000_123_456_789,
            link: None,
            dev_major: 0,
            dev_minor: 0,
            xattrs: vec![(b"security.capability".to_vec(), vec![1, 0, 0, 2, 0xff])],
        }
    }

    #[test]
    fn render_then_read_round_trips() {
        let long = [b"rootfs/".to_vec(), vec![b'a'; 300], vec![0xff, b'\n']].concat();
        for h in [sample(b"rootfs/bin/x"), sample(&long)] {
            let mut bytes = render(&h);
            let raw_len = bytes.len();
            bytes.extend_from_slice(b"hello");
            bytes.extend(std::iter::repeat_n(0u8, padding(5)));
            bytes.extend_from_slice(&end_marker());
            let mut r = TarReader::new(&bytes[..]);
            let e = r.next_entry().unwrap().unwrap();
            assert_eq!(e.header, h);
            assert_eq!(e.raw.len(), raw_len);
            assert_eq!(e.raw, render(&h));
            let mut buf = [0u8; 16];
            assert_eq!(r.read_body(&mut buf).unwrap(), 5);
            assert!(r.next_entry().unwrap().is_none());
        }
    }

    #[test]
    fn standard_tar_crate_reads_our_headers() {
        let h = sample(&[b"rootfs/".to_vec(), vec![b'b'; 150]].concat());
        let mut bytes = render(&h);
        bytes.extend_from_slice(b"hello");
        bytes.extend(std::iter::repeat_n(0u8, padding(5)));
        bytes.extend_from_slice(&end_marker());
        let mut a = tar::Archive::new(&bytes[..]);
        let mut entries = a.entries().unwrap();
        let mut e = entries.next().unwrap().unwrap();
        assert_eq!(&*e.path_bytes(), &h.path[..]);
        assert_eq!(e.header().mode().unwrap(), 0o4755);
        let mut s = String::new();
        e.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
    }

    #[test]
    fn refuses_global_headers_trailing_data_and_unknown_keys() {
        let mut g = ustar(b"g", b'g', 0o644, 0, 0, 0, 0, b"", 0, 0);
        g.extend_from_slice(&end_marker());
        assert!(matches!(
            TarReader::new(&g[..]).next_entry(),
            Err(TarError::GlobalHeader)
        ));

        let mut t = end_marker().to_vec();
        t.push(1);
        assert!(matches!(
            TarReader::new(&t[..]).next_entry(),
            Err(TarError::TrailingData)
        ));

        let mut pax = Vec::new();
        pax_record(&mut pax, b"uname", b"root");
        let mut x = ustar(b"x", b'x', 0o644, 0, 0, pax.len() as u64, 0, b"", 0, 0);
        x.extend_from_slice(&pax);
        pad(&mut x);
        x.extend(ustar(b"f", b'0', 0o644, 0, 0, 0, 0, b"", 0, 0));
        assert!(matches!(
            TarReader::new(&x[..]).next_entry(),
            Err(TarError::PaxKey(k)) if k == "uname"
        ));
    }

    #[test]
    fn truncation_is_an_error_never_a_panic() {
        let mut bytes = render(&sample(b"rootfs/x"));
        bytes.extend_from_slice(b"hello");
        for cut in 0..bytes.len() {
            let mut r = TarReader::new(&bytes[..cut]);
            let res = r.next_entry().and_then(|_| r.skip_body());
            assert!(res.is_err(), "cut at {cut} passed");
        }
    }
}

//! Applying image layers (OCI layer tars, possibly gzip or zstd compressed) in order,
//! with whiteouts, into an index of every file path, streaming: nothing is extracted.
//!
//! Whiteouts of a layer (`.wh.NAME`, `.wh..wh..opq`) apply to the layers below it
//! only, so a layer's own entries are collected first and merged at its end.

use exhibit_common::limits::{MAX_DECOMPRESSED, MAX_PATH};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read};

/// Most files an image index holds.
pub const MAX_IMAGE_FILES: usize = 2_000_000;
/// Memory the index of one image may take, estimated per entry as
/// [`ENTRY_OVERHEAD`] plus its path and link target. Hostile layers (millions of tiny
/// entries, 60 KB paths) are refused here instead of growing the analyzer without bound;
/// about 700,000 files of a real image fit.
pub const MAX_INDEX_BYTES: u64 = 192 << 20;
/// Estimated bytes of one index entry besides its path and link target (tree node,
/// record, hex digest), measured on a real 55,000-file image.
pub const ENTRY_OVERHEAD: u64 = 256;
/// Most bytes all layers of one image may decompress to; every byte is hashed twice
/// (per file and per layer), so this bounds the time a zstd or gzip bomb can take.
pub const MAX_IMAGE_DECOMPRESSED: u64 = 128 << 30;
/// Most bytes a layer may carry after its tar end-of-archive marker (real layers pad
/// to the 10 KiB tar record).
pub const MAX_LAYER_TRAILER: u64 = 1 << 20;

/// Limits of one [`FileIndex`]; the defaults are the constants above.
#[derive(Debug, Clone, Copy)]
pub struct IndexLimits {
    pub memory_bytes: u64,
    pub decompressed_bytes: u64,
}

impl Default for IndexLimits {
    fn default() -> Self {
        IndexLimits {
            memory_bytes: MAX_INDEX_BYTES,
            decompressed_bytes: MAX_IMAGE_DECOMPRESSED,
        }
    }
}

/// Type of an image file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageFileType {
    File,
    Dir,
    Symlink,
    Fifo,
    Char,
    Block,
    Other,
}

/// What the index knows about one path of the image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageFile {
    #[serde(rename = "type")]
    pub file_type: ImageFileType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub sha256: Option<String>,
    pub link_target: Option<String>,
}

/// Why a layer could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("more than {MAX_IMAGE_FILES} files")]
    TooManyFiles,
    #[error("path longer than {MAX_PATH} bytes")]
    PathTooLong,
    #[error("the file index would take more than {0} MiB (too many files or too long paths)")]
    IndexTooLarge(u64),
    #[error("layers decompress to more than {0} GiB")]
    TooMuchData(u64),
    #[error("more than {MAX_LAYER_TRAILER} bytes after the end of the layer tar")]
    TrailingData,
}

/// Every path of an image after its layers were applied, keyed by absolute path bytes.
#[derive(Debug, Default, Clone)]
pub struct FileIndex {
    files: BTreeMap<Vec<u8>, ImageFile>,
    limits: IndexLimits,
    /// Estimated memory of `files`.
    bytes: u64,
    /// Decompressed bytes of all layers applied so far.
    decompressed: u64,
}

fn entry_cost(path: &[u8], f: &ImageFile) -> u64 {
    ENTRY_OVERHEAD + path.len() as u64 + f.link_target.as_ref().map_or(0, |l| l.len() as u64)
}

/// A reader that hashes and counts what passes through it, refusing more than a cap.
pub struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    cap: u64,
}

impl<R: Read> HashReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R, cap: u64) -> Self {
        HashReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
            cap,
        }
    }
    /// Reads the rest, then returns `sha256:<hex>` and the byte count.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
            self.count,
        ))
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count > self.cap {
            return Err(io::Error::other("layer larger than the size limit"));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// `./a//b/` → `/a/b`; `None` for the root or a path with `..`.
pub fn normalize(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len() + 1);
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => continue,
            b".." => return None,
            c => {
                out.push(b'/');
                out.extend_from_slice(c);
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Removes what is under `dir` (and `dir` itself when `and_self`); returns the
/// estimated bytes freed.
fn remove_under(map: &mut BTreeMap<Vec<u8>, ImageFile>, dir: &[u8], and_self: bool) -> u64 {
    let mut prefix = dir.to_vec();
    if prefix.last() != Some(&b'/') {
        prefix.push(b'/');
    }
    let doomed: Vec<Vec<u8>> = map
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, _)| k.clone())
        .collect();
    let mut freed = 0;
    for k in doomed {
        if let Some(f) = map.remove(&k) {
            freed += entry_cost(&k, &f);
        }
    }
    if and_self {
        if let Some(f) = map.remove(dir) {
            freed += entry_cost(dir, &f);
        }
    }
    freed
}

/// Wraps a layer stream in the decompressor its magic bytes call for.
pub fn decompress<'a, R: Read + 'a>(r: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut b = BufReader::with_capacity(256 << 10, r);
    let head = b.fill_buf()?.to_vec();
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(b)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let mut d = zstd::stream::read::Decoder::with_buffer(b)?;
        d.window_log_max(exhibit_common::limits::ZSTD_WINDOW_LOG_MAX)?;
        Ok(Box::new(d))
    } else {
        Ok(Box::new(b))
    }
}

impl FileIndex {
    /// An empty index with other limits than the defaults.
    pub fn with_limits(limits: IndexLimits) -> Self {
        FileIndex {
            limits,
            ..FileIndex::default()
        }
    }
    /// Estimated memory of the index, in bytes.
    pub fn estimated_bytes(&self) -> u64 {
        self.bytes
    }
    /// Number of paths.
    pub fn len(&self) -> usize {
        self.files.len()
    }
    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
    /// The entry at an absolute path, without following symlinks.
    pub fn get(&self, path: &[u8]) -> Option<&ImageFile> {
        self.files.get(path)
    }
    /// Iterates all entries.
    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &ImageFile)> {
        self.files.iter()
    }
    /// Entries strictly under a directory.
    pub fn count_under(&self, dir: &[u8]) -> usize {
        let mut prefix = dir.to_vec();
        prefix.push(b'/');
        self.files
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .count()
    }

    /// Looks a path up following the image's own symlinks (at most 40), as the kernel
    /// would inside the container; returns the final path and entry.
    pub fn resolve(&self, path: &[u8]) -> Option<(Vec<u8>, &ImageFile)> {
        let mut todo: Vec<Vec<u8>> = path
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .rev()
            .map(<[u8]>::to_vec)
            .collect();
        let mut cur: Vec<Vec<u8>> = Vec::new();
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            match c.as_slice() {
                b"." => continue,
                b".." => {
                    cur.pop();
                    continue;
                }
                _ => {}
            }
            cur.push(c);
            let p: Vec<u8> = cur.iter().flat_map(|c| [&b"/"[..], c].concat()).collect();
            // Layers need not list every parent directory.
            let Some(f) = self.files.get(&p) else {
                continue;
            };
            if f.file_type == ImageFileType::Symlink {
                hops += 1;
                if hops > 40 {
                    return None;
                }
                let t = f.link_target.clone().unwrap_or_default();
                cur.pop();
                if t.starts_with('/') {
                    cur.clear();
                }
                for part in t.split('/').filter(|s| !s.is_empty()).rev() {
                    todo.push(part.as_bytes().to_vec());
                }
            }
        }
        let p: Vec<u8> = cur.iter().flat_map(|c| [&b"/"[..], c].concat()).collect();
        let f = self.files.get(&p)?;
        Some((p, f))
    }

    /// Applies one layer tar (any compression); returns its diff_id (`sha256:` of the
    /// uncompressed tar) and the number of entries skipped as unsafe.
    pub fn apply_layer<R: Read>(&mut self, layer: R) -> Result<(String, u64), LayerError> {
        let left = self
            .limits
            .decompressed_bytes
            .saturating_sub(self.decompressed)
            .min(MAX_DECOMPRESSED);
        let mut archive = tar::Archive::new(HashReader::new(decompress(layer)?, left));
        let mut pending = Pending::default();
        let read = self.read_entries(&mut archive, &mut pending);
        let mut plain = archive.into_inner();
        if let Err(e) = read {
            return Err(if plain.count > plain.cap {
                LayerError::TooMuchData(self.limits.decompressed_bytes >> 30)
            } else {
                e
            });
        }
        // What follows the end-of-archive marker is part of the diff_id, but a layer
        // has no business carrying more than padding there.
        let rest = io::copy(
            &mut (&mut plain).take(MAX_LAYER_TRAILER + 1),
            &mut io::sink(),
        );
        match rest {
            Ok(n) if n > MAX_LAYER_TRAILER => return Err(LayerError::TrailingData),
            Ok(_) => {}
            Err(_) if plain.count > plain.cap => {
                return Err(LayerError::TooMuchData(
                    self.limits.decompressed_bytes >> 30,
                ))
            }
            Err(e) => return Err(e.into()),
        }
        self.decompressed += plain.count;
        let (diff_id, _) = plain.finish()?;
        for d in &pending.opaque {
            self.bytes = self
                .bytes
                .saturating_sub(remove_under(&mut self.files, d, false));
        }
        for w in &pending.whiteouts {
            self.bytes = self
                .bytes
                .saturating_sub(remove_under(&mut self.files, w, true));
        }
        for (p, f) in pending.new {
            if f.file_type != ImageFileType::Dir
                && self
                    .files
                    .get(&p)
                    .is_some_and(|o| o.file_type == ImageFileType::Dir)
            {
                self.bytes = self
                    .bytes
                    .saturating_sub(remove_under(&mut self.files, &p, false));
            }
            if let Some(old) = self.files.get(&p) {
                self.bytes = self.bytes.saturating_sub(entry_cost(&p, old));
            }
            self.bytes += entry_cost(&p, &f);
            self.files.insert(p, f);
        }
        Ok((diff_id, pending.skipped))
    }

    /// Reads a layer's entries into `pending`, refusing what would take the index over
    /// its limits.
    fn read_entries<R: Read>(
        &self,
        archive: &mut tar::Archive<R>,
        pending: &mut Pending,
    ) -> Result<(), LayerError> {
        let budget = self.limits.memory_bytes;
        let mut buf = vec![0u8; 128 << 10];
        for entry in archive.entries()? {
            let mut e = entry?;
            let raw = e.path_bytes().into_owned();
            if raw.len() > MAX_PATH {
                return Err(LayerError::PathTooLong);
            }
            let Some(path) = normalize(&raw) else {
                if raw.split(|&b| b == b'/').any(|c| c == b"..") {
                    pending.skipped += 1;
                    tracing::warn!(path = %String::from_utf8_lossy(&raw), "layer entry with .. skipped");
                }
                continue;
            };
            let (dir, name) = match path.iter().rposition(|&b| b == b'/') {
                Some(i) => (path[..i].to_vec(), path[i + 1..].to_vec()),
                None => (Vec::new(), path.clone()),
            };
            if name == b".wh..wh..opq" {
                pending.bytes += ENTRY_OVERHEAD + dir.len() as u64;
                pending
                    .opaque
                    .push(if dir.is_empty() { b"/".to_vec() } else { dir });
            } else if let Some(hidden) = name.strip_prefix(b".wh.") {
                let mut p = dir;
                p.push(b'/');
                p.extend_from_slice(hidden);
                pending.bytes += ENTRY_OVERHEAD + p.len() as u64;
                pending.whiteouts.push(p);
            } else {
                let Some(file) = self.entry(&mut e, &pending.new, &mut buf)? else {
                    continue;
                };
                pending.bytes += entry_cost(&path, &file);
                pending.new.insert(path, file);
                if pending.new.len() + self.files.len() > MAX_IMAGE_FILES {
                    return Err(LayerError::TooManyFiles);
                }
            }
            if pending.bytes.saturating_add(self.bytes) > budget {
                return Err(LayerError::IndexTooLarge(budget >> 20));
            }
        }
        Ok(())
    }

    /// The index record of one layer entry (its content hashed as it streams); `None`
    /// for PAX headers.
    fn entry<R: Read>(
        &self,
        e: &mut tar::Entry<'_, R>,
        new: &BTreeMap<Vec<u8>, ImageFile>,
        buf: &mut [u8],
    ) -> Result<Option<ImageFile>, LayerError> {
        let h = e.header();
        let mode = h.mode().unwrap_or(0);
        let uid = h.uid().unwrap_or(0);
        let gid = h.gid().unwrap_or(0);
        let kind = h.entry_type();
        let link = e
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned());
        let file = match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut hasher = Sha256::new();
                let mut size = 0u64;
                loop {
                    let n = e.read(buf)?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                    size += n as u64;
                }
                ImageFile {
                    file_type: ImageFileType::File,
                    mode,
                    uid,
                    gid,
                    size,
                    sha256: Some(hex::encode(hasher.finalize())),
                    link_target: None,
                }
            }
            tar::EntryType::Link => {
                let target = link.as_deref().and_then(|l| normalize(l.as_bytes()));
                match target.and_then(|t| new.get(&t).or_else(|| self.files.get(&t)).cloned()) {
                    Some(f) => f,
                    None => ImageFile {
                        file_type: ImageFileType::File,
                        mode,
                        uid,
                        gid,
                        size: 0,
                        sha256: None,
                        link_target: None,
                    },
                }
            }
            other => ImageFile {
                file_type: match other {
                    tar::EntryType::Directory => ImageFileType::Dir,
                    tar::EntryType::Symlink => ImageFileType::Symlink,
                    tar::EntryType::Fifo => ImageFileType::Fifo,
                    tar::EntryType::Char => ImageFileType::Char,
                    tar::EntryType::Block => ImageFileType::Block,
                    tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => return Ok(None),
                    _ => ImageFileType::Other,
                },
                mode,
                uid,
                gid,
                size: 0,
                sha256: None,
                link_target: if other == tar::EntryType::Symlink {
                    link
                } else {
                    None
                },
            },
        };
        Ok(Some(file))
    }
}

/// One layer's entries, whiteouts and opaque directories, merged at the layer's end.
#[derive(Default)]
struct Pending {
    new: BTreeMap<Vec<u8>, ImageFile>,
    whiteouts: Vec<Vec<u8>>,
    opaque: Vec<Vec<u8>>,
    skipped: u64,
    bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer tar: (path, content) files, then `trailer` extra bytes after the end.
    fn layer(files: &[(&[u8], &[u8])], trailer: usize) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            // GNU long names carry paths of any length.
            b.append_data(&mut h, std::str::from_utf8(path).unwrap(), *data)
                .unwrap();
        }
        let mut v = b.into_inner().unwrap();
        v.extend(std::iter::repeat_n(0x41, trailer));
        v
    }

    fn limits(memory: u64, data: u64) -> IndexLimits {
        IndexLimits {
            memory_bytes: memory,
            decompressed_bytes: data,
        }
    }

    #[test]
    fn long_paths_are_refused_at_the_memory_budget() {
        let long: Vec<Vec<u8>> = (0..100)
            .map(|i| format!("d{i}/{}", "p".repeat(60_000)).into_bytes())
            .collect();
        let files: Vec<(&[u8], &[u8])> = long.iter().map(|p| (&p[..], &b""[..])).collect();
        let tar = layer(&files, 0);
        let mut idx = FileIndex::with_limits(limits(1 << 20, 1 << 30));
        let e = idx.apply_layer(&tar[..]).unwrap_err();
        assert!(matches!(e, LayerError::IndexTooLarge(1)), "{e}");
        assert!(idx.is_empty(), "nothing of a refused layer is merged");
        // The same layer fits a budget large enough for it.
        let mut idx = FileIndex::with_limits(limits(8 << 20, 1 << 30));
        idx.apply_layer(&tar[..]).unwrap();
        assert_eq!(idx.len(), 100);
        let paths: u64 = long.iter().map(|p| p.len() as u64 + 1).sum();
        assert_eq!(idx.estimated_bytes(), 100 * ENTRY_OVERHEAD + paths);
    }

    #[test]
    fn the_budget_counts_what_whiteouts_removed() {
        let mut idx = FileIndex::default();
        idx.apply_layer(&layer(&[(b"a/x", b"1"), (b"a/y", b"2"), (b"b", b"3")], 0)[..])
            .unwrap();
        let three = idx.estimated_bytes();
        assert_eq!(three, 3 * ENTRY_OVERHEAD + 4 + 4 + 2);
        idx.apply_layer(&layer(&[(b"a/.wh.x", b""), (b"b", b"33")], 0)[..])
            .unwrap();
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.estimated_bytes(), 2 * ENTRY_OVERHEAD + 4 + 2);
        assert_eq!(idx.get(b"/b").unwrap().size, 2);
    }

    #[test]
    fn decompressed_bytes_are_capped_across_layers() {
        let data = vec![7u8; 600 << 10];
        let one = layer(&[(b"f", &data)], 0);
        let mut idx = FileIndex::with_limits(limits(1 << 20, 1 << 20));
        idx.apply_layer(&one[..]).unwrap();
        let e = idx.apply_layer(&one[..]).unwrap_err();
        assert!(matches!(e, LayerError::TooMuchData(_)), "{e}");
        // Compressed layers count what they decompress to.
        let z = zstd::encode_all(&layer(&[(b"g", &vec![0u8; 2 << 20])], 0)[..], 3).unwrap();
        assert!(z.len() < 64 << 10);
        let mut idx = FileIndex::with_limits(limits(1 << 20, 1 << 20));
        let e = idx.apply_layer(&z[..]).unwrap_err();
        assert!(matches!(e, LayerError::TooMuchData(_)), "{e}");
    }

    #[test]
    fn data_after_the_end_of_archive_is_bounded() {
        let ok = layer(&[(b"f", b"x")], 64 << 10);
        let mut idx = FileIndex::default();
        let (id, _) = idx.apply_layer(&ok[..]).unwrap();
        // The trailer is part of the diff_id, as for any layer tar.
        assert_eq!(id, format!("sha256:{}", hex::encode(Sha256::digest(&ok))));
        let bad = layer(&[(b"f", b"x")], (MAX_LAYER_TRAILER + 4096) as usize);
        let e = FileIndex::default().apply_layer(&bad[..]).unwrap_err();
        assert!(matches!(e, LayerError::TrailingData), "{e}");
    }
}

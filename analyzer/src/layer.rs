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
}

/// Every path of an image after its layers were applied, keyed by absolute path bytes.
#[derive(Debug, Default, Clone)]
pub struct FileIndex {
    files: BTreeMap<Vec<u8>, ImageFile>,
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

fn remove_under(map: &mut BTreeMap<Vec<u8>, ImageFile>, dir: &[u8], and_self: bool) {
    let mut prefix = dir.to_vec();
    if prefix.last() != Some(&b'/') {
        prefix.push(b'/');
    }
    let doomed: Vec<Vec<u8>> = map
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, _)| k.clone())
        .collect();
    for k in doomed {
        map.remove(&k);
    }
    if and_self {
        map.remove(dir);
    }
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
        let plain = HashReader::new(decompress(layer)?, MAX_DECOMPRESSED);
        let mut archive = tar::Archive::new(plain);
        let mut new: BTreeMap<Vec<u8>, ImageFile> = BTreeMap::new();
        let mut whiteouts: Vec<Vec<u8>> = Vec::new();
        let mut opaque: Vec<Vec<u8>> = Vec::new();
        let mut skipped = 0u64;
        let mut buf = vec![0u8; 128 << 10];
        for entry in archive.entries()? {
            let mut e = entry?;
            let raw = e.path_bytes().into_owned();
            if raw.len() > MAX_PATH {
                return Err(LayerError::PathTooLong);
            }
            let Some(path) = normalize(&raw) else {
                if raw.split(|&b| b == b'/').any(|c| c == b"..") {
                    skipped += 1;
                    tracing::warn!(path = %String::from_utf8_lossy(&raw), "layer entry with .. skipped");
                }
                continue;
            };
            let (dir, name) = match path.iter().rposition(|&b| b == b'/') {
                Some(i) => (path[..i].to_vec(), path[i + 1..].to_vec()),
                None => (Vec::new(), path.clone()),
            };
            if name == b".wh..wh..opq" {
                opaque.push(if dir.is_empty() { b"/".to_vec() } else { dir });
                continue;
            }
            if let Some(hidden) = name.strip_prefix(b".wh.") {
                let mut p = dir;
                p.push(b'/');
                p.extend_from_slice(hidden);
                whiteouts.push(p);
                continue;
            }
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
                        let n = e.read(&mut buf)?;
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
                        tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
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
            new.insert(path, file);
            if new.len() + self.files.len() > MAX_IMAGE_FILES {
                return Err(LayerError::TooManyFiles);
            }
        }
        for d in &opaque {
            remove_under(&mut self.files, d, false);
        }
        for w in &whiteouts {
            remove_under(&mut self.files, w, true);
        }
        for (p, f) in new {
            if f.file_type != ImageFileType::Dir
                && self
                    .files
                    .get(&p)
                    .is_some_and(|o| o.file_type == ImageFileType::Dir)
            {
                remove_under(&mut self.files, &p, false);
            }
            self.files.insert(p, f);
        }
        let (diff_id, _) = archive.into_inner().finish()?;
        Ok((diff_id, skipped))
    }
}

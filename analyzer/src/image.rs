//! Saved images: a `docker save` tar (manifest.json, config, layer tars) or an OCI image
//! layout directory (index.json, blobs/sha256). Layers are streamed from their offset
//! in the tar or their blob file and applied in order into a [`FileIndex`]; every JSON
//! document is capped by exhibit_common::json and every digest checked.

use crate::error::AnalyzeError;
use crate::layer::{FileIndex, LayerError};
use exhibit_common::json;
use exhibit_common::limits::MAX_JSON;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Most layers of one image.
pub const MAX_LAYERS: usize = 512;
/// Most members of a `docker save` tar.
pub const MAX_SAVE_ENTRIES: usize = 1_000_000;

/// A saved image, indexed.
#[derive(Debug)]
pub struct SavedImage {
    pub source: PathBuf,
    /// `sha256:` of the config blob: Docker's image id.
    pub id: String,
    /// `sha256:` of the manifest blob, when the format has one.
    pub manifest_digest: Option<String>,
    pub repo_tags: Vec<String>,
    pub diff_ids: Vec<String>,
    pub config: Value,
    pub files: FileIndex,
    /// Layer entries skipped because their path had `..`.
    pub skipped_entries: u64,
}

/// Why a saved image could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("{0}")]
    Format(String),
    #[error("layer {index}: {source}")]
    Layer { index: usize, source: LayerError },
}

fn fmt_err(s: impl Into<String>) -> ImageError {
    ImageError::Format(s.into())
}

fn read_capped(r: &mut dyn Read, what: &str) -> Result<Vec<u8>, ImageError> {
    let mut b = Vec::new();
    r.take(MAX_JSON + 1).read_to_end(&mut b)?;
    if b.len() as u64 > MAX_JSON {
        return Err(fmt_err(format!(
            "{what} is over the {MAX_JSON}-byte JSON limit"
        )));
    }
    Ok(b)
}

fn parse_json(b: &[u8], what: &str) -> Result<Value, ImageError> {
    json::parse(b).map_err(|e| fmt_err(format!("{what}: {e}")))
}

fn diff_ids_of(config: &Value) -> Vec<String> {
    config
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn sha256_id(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// Reads a saved image; where it holds several, `prefer` (an image id) picks one.
pub fn load(path: &Path, prefer: Option<&str>) -> Result<SavedImage, AnalyzeError> {
    let res = if path.is_dir() {
        load_oci_dir(path)
    } else {
        load_docker_save(path, prefer)
    };
    res.map_err(|e| {
        let hint: &[&str] = match &e {
            ImageError::Layer {
                source:
                    LayerError::IndexTooLarge(_)
                    | LayerError::TooManyFiles
                    | LayerError::TooMuchData(_)
                    | LayerError::TrailingData,
                ..
            } => &["the image is over the analyzer's limits (docs/findings.md, \"Image limits\"); a real image this large is rare, a crafted one is likely; run the report without --image to skip the image rules"],
            _ => &["--image takes a `docker save` tar or an OCI image layout directory (`skopeo copy ... oci:DIR`)"],
        };
        AnalyzeError::input(
            format!("cannot read saved image {}: {e}", path.display()),
            hint,
        )
    })
}

fn apply_layers(
    files: &mut FileIndex,
    diff_ids: &[String],
    layers: Vec<Box<dyn Read + '_>>,
) -> Result<u64, ImageError> {
    if layers.len() > MAX_LAYERS {
        return Err(fmt_err(format!("more than {MAX_LAYERS} layers")));
    }
    if !diff_ids.is_empty() && diff_ids.len() != layers.len() {
        return Err(fmt_err(format!(
            "config lists {} diff_ids but the manifest {} layers",
            diff_ids.len(),
            layers.len()
        )));
    }
    let mut skipped = 0;
    for (index, layer) in layers.into_iter().enumerate() {
        let (diff_id, s) = files
            .apply_layer(layer)
            .map_err(|source| ImageError::Layer { index, source })?;
        skipped += s;
        if let Some(want) = diff_ids.get(index) {
            if *want != diff_id {
                return Err(fmt_err(format!(
                    "layer {index}: content is {diff_id}, the config says {want}"
                )));
            }
        }
    }
    Ok(skipped)
}

struct TarMember {
    offset: u64,
    size: u64,
}

fn load_docker_save(path: &Path, prefer: Option<&str>) -> Result<SavedImage, ImageError> {
    let file = open_regular(path, true)?;
    let mut members: HashMap<String, TarMember> = HashMap::new();
    {
        let mut archive = tar::Archive::new(&file);
        for entry in archive.entries_with_seek()? {
            let e = entry?;
            if members.len() >= MAX_SAVE_ENTRIES {
                return Err(fmt_err("too many members for a docker save tar"));
            }
            let name = String::from_utf8_lossy(&e.path_bytes())
                .trim_start_matches("./")
                .to_string();
            members.insert(
                name,
                TarMember {
                    offset: e.raw_file_position(),
                    size: e.size(),
                },
            );
        }
    }
    let open = |name: &str| -> Result<io::Take<File>, ImageError> {
        let m = members
            .get(name.trim_start_matches("./"))
            .ok_or_else(|| fmt_err(format!("member {name} is missing")))?;
        // Its own open file: clones of one descriptor would share the offset.
        let mut f = open_regular(path, true)?;
        f.seek(SeekFrom::Start(m.offset))?;
        Ok(f.take(m.size))
    };
    let manifest = parse_json(
        &read_capped(&mut open("manifest.json")?, "manifest.json")?,
        "manifest.json",
    )?;
    let images = manifest
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| fmt_err("manifest.json lists no image"))?;
    let mut chosen = None;
    let mut configs = Vec::new();
    for img in images {
        let cfg_name = img
            .get("Config")
            .and_then(Value::as_str)
            .ok_or_else(|| fmt_err("manifest.json entry without Config"))?;
        let cfg_bytes = read_capped(&mut open(cfg_name)?, cfg_name)?;
        let id = sha256_id(&cfg_bytes);
        if chosen.is_none() && prefer.is_some_and(|p| p == id) {
            chosen = Some(configs.len());
        }
        configs.push((img.clone(), cfg_bytes, id));
    }
    if configs.len() > 1 && chosen.is_none() {
        tracing::warn!(
            "saved image holds {} images; using the first",
            configs.len()
        );
    }
    let (img, cfg_bytes, id) = configs.swap_remove(chosen.unwrap_or(0));
    let config = parse_json(&cfg_bytes, "image config")?;
    let diff_ids = diff_ids_of(&config);
    let layer_names: Vec<String> = img
        .get("Layers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut layers: Vec<Box<dyn Read>> = Vec::new();
    for l in &layer_names {
        layers.push(Box::new(open(l)?));
    }
    let mut files = FileIndex::default();
    let skipped = apply_layers(&mut files, &diff_ids, layers)?;
    Ok(SavedImage {
        source: path.to_path_buf(),
        id,
        manifest_digest: None,
        repo_tags: img
            .get("RepoTags")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        diff_ids,
        config,
        files,
        skipped_entries: skipped,
    })
}

/// Opens a file of the image for reading: never a FIFO or device (whose open or read
/// could block or never end), and inside an OCI layout never through a symlink, so a
/// crafted layout cannot make the analyzer read files outside the directory it was
/// given. The path the analyst named (`follow`) may be a symlink.
fn open_regular(path: &Path, follow: bool) -> Result<File, ImageError> {
    use rustix::fs::OFlags;
    use std::os::unix::fs::OpenOptionsExt;
    let mut flags = OFlags::NONBLOCK | OFlags::CLOEXEC;
    if !follow {
        flags |= OFlags::NOFOLLOW;
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                fmt_err(format!("{} is a symlink", path.display()))
            } else {
                ImageError::Io(io::Error::new(e.kind(), format!("{}: {e}", path.display())))
            }
        })?;
    if !f.metadata()?.is_file() {
        return Err(fmt_err(format!("{} is not a regular file", path.display())));
    }
    Ok(f)
}

fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf, ImageError> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| fmt_err(format!("unsupported digest {digest:?}")))?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(fmt_err(format!("malformed digest {digest:?}")));
    }
    Ok(dir.join("blobs").join("sha256").join(hex))
}

fn read_blob(dir: &Path, digest: &str) -> Result<Vec<u8>, ImageError> {
    let p = blob_path(dir, digest)?;
    let b = read_capped(&mut open_regular(&p, false)?, digest)?;
    if sha256_id(&b) != digest {
        return Err(fmt_err(format!("blob {digest} does not match its digest")));
    }
    Ok(b)
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

// Finds an image manifest descriptor, descending into nested indexes.
fn pick_manifest(dir: &Path, index: &Value, depth: u32) -> Result<String, ImageError> {
    if depth > 4 {
        return Err(fmt_err("image indexes nested too deeply"));
    }
    let ms = index
        .get("manifests")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| fmt_err("index lists no manifest"))?;
    let arch_ok = |m: &Value| {
        m.pointer("/platform/architecture")
            .and_then(Value::as_str)
            .is_none_or(|a| a == host_arch())
    };
    let m = ms.iter().find(|m| arch_ok(m)).unwrap_or(&ms[0]);
    let digest = m
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| fmt_err("descriptor without digest"))?;
    let media = m.get("mediaType").and_then(Value::as_str).unwrap_or("");
    if media.contains("index") || media.contains("manifest.list") {
        let nested = parse_json(&read_blob(dir, digest)?, digest)?;
        return pick_manifest(dir, &nested, depth + 1);
    }
    Ok(digest.to_string())
}

fn load_oci_dir(dir: &Path) -> Result<SavedImage, ImageError> {
    for sub in ["blobs", "blobs/sha256"] {
        let p = dir.join(sub);
        if std::fs::symlink_metadata(&p)?.file_type().is_symlink() {
            return Err(fmt_err(format!("{} is a symlink", p.display())));
        }
    }
    let index = parse_json(
        &read_capped(
            &mut open_regular(&dir.join("index.json"), false)?,
            "index.json",
        )?,
        "index.json",
    )?;
    let mdigest = pick_manifest(dir, &index, 0)?;
    let manifest = parse_json(&read_blob(dir, &mdigest)?, &mdigest)?;
    let cdigest = manifest
        .pointer("/config/digest")
        .and_then(Value::as_str)
        .ok_or_else(|| fmt_err("manifest without config digest"))?;
    let config = parse_json(&read_blob(dir, cdigest)?, cdigest)?;
    let diff_ids = diff_ids_of(&config);
    let mut readers: Vec<crate::layer::HashReader<File>> = Vec::new();
    let mut want = Vec::new();
    for l in manifest
        .get("layers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let d = l
            .get("digest")
            .and_then(Value::as_str)
            .ok_or_else(|| fmt_err("layer without digest"))?;
        readers.push(crate::layer::HashReader::new(
            open_regular(&blob_path(dir, d)?, false)?,
            u64::MAX,
        ));
        want.push(d.to_string());
    }
    let mut files = FileIndex::default();
    let mut skipped = 0;
    if readers.len() > MAX_LAYERS {
        return Err(fmt_err(format!("more than {MAX_LAYERS} layers")));
    }
    for (i, (mut r, w)) in readers.into_iter().zip(&want).enumerate() {
        let (diff_id, s) = files
            .apply_layer(&mut r)
            .map_err(|source| ImageError::Layer { index: i, source })?;
        skipped += s;
        if let Some(d) = diff_ids.get(i) {
            if *d != diff_id {
                return Err(fmt_err(format!(
                    "layer {i}: content is {diff_id}, the config says {d}"
                )));
            }
        }
        let (blob, _) = r.finish()?;
        if blob != *w {
            return Err(fmt_err(format!("layer blob {w} does not match its digest")));
        }
    }
    let tags = index
        .get("manifests")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|m| m.pointer("/annotations/org.opencontainers.image.ref.name"))
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok(SavedImage {
        source: dir.to_path_buf(),
        id: cdigest.to_string(),
        manifest_digest: Some(mdigest),
        repo_tags: tags,
        diff_ids,
        config,
        files,
        skipped_entries: skipped,
    })
}

//! The saved-image reader: a `docker save` tar and an OCI layout directory built here
//! with the tar crate, layers with whiteouts, opaque directories and hard links; then
//! the image-based rules against them.

use exhibit_tests::spec as support;

use exhibit_analyzer::evidence::Evidence;
use exhibit_analyzer::image::load;
use exhibit_analyzer::layer::ImageFileType;
use exhibit_analyzer::rules::{run, RuleInput};
use exhibit_common::hashing::sha256_hex;
use exhibit_common::records::ChangeKind as K;
use serde_json::json;
use std::io::Write;
use std::path::Path;
use support::{pairs, process, Spec};

fn add(
    b: &mut tar::Builder<Vec<u8>>,
    path: &str,
    kind: tar::EntryType,
    mode: u32,
    body: &[u8],
    link: Option<&str>,
) {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_size(body.len() as u64);
    if let Some(l) = link {
        h.set_link_name(l).unwrap();
    }
    // Raw name bytes, so that hostile names (`..`) can be written too.
    h.as_mut_bytes()[..100].fill(0);
    h.as_mut_bytes()[..path.len()].copy_from_slice(path.as_bytes());
    h.set_cksum();
    b.append(&h, body).unwrap();
}

const BUSYBOX_V2: &[u8] = b"\x7fELF busybox v2";

fn layers() -> (Vec<u8>, Vec<u8>) {
    use tar::EntryType::*;
    let mut l1 = tar::Builder::new(Vec::new());
    add(&mut l1, "etc/", Directory, 0o755, b"", None);
    add(
        &mut l1,
        "etc/passwd",
        Regular,
        0o644,
        b"root:x:0:0::/root:/bin/sh\n",
        None,
    );
    add(
        &mut l1,
        "etc/shadow",
        Regular,
        0o600,
        b"root:*::::::\n",
        None,
    );
    add(&mut l1, "bin/", Directory, 0o755, b"", None);
    add(
        &mut l1,
        "bin/busybox",
        Regular,
        0o755,
        b"\x7fELF busybox v1",
        None,
    );
    add(&mut l1, "bin/sh", Symlink, 0o777, b"", Some("busybox"));
    add(&mut l1, "usr/share/doc/a", Regular, 0o644, b"a", None);
    add(&mut l1, "usr/share/doc/b", Regular, 0o644, b"b", None);
    add(&mut l1, "opt/x", Regular, 0o644, b"x", None);
    let l1 = l1.into_inner().unwrap();
    let mut l2 = tar::Builder::new(Vec::new());
    add(&mut l2, "usr/share/doc/c", Regular, 0o644, b"c", None);
    add(
        &mut l2,
        "usr/share/doc/.wh..wh..opq",
        Regular,
        0o644,
        b"",
        None,
    );
    add(&mut l2, "etc/.wh.passwd", Regular, 0o644, b"", None);
    add(&mut l2, "bin/busybox", Regular, 0o755, BUSYBOX_V2, None);
    add(&mut l2, "bin/ln", Link, 0o755, b"", Some("bin/busybox"));
    add(&mut l2, "../escape", Regular, 0o644, b"no", None);
    (l1, l2.into_inner().unwrap())
}

fn id(b: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(b))
}

fn config(l1: &[u8], l2: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [id(l1), id(l2)]}})).unwrap()
}

fn docker_save(path: &Path, cfg: &[u8], l1: &[u8], l2: &[u8]) {
    use tar::EntryType::*;
    let mut t = tar::Builder::new(Vec::new());
    let cfg_name = format!("{}.json", sha256_hex(cfg));
    add(&mut t, "aaaa/", Directory, 0o755, b"", None);
    add(&mut t, "aaaa/layer.tar", Regular, 0o644, l1, None);
    add(&mut t, "bbbb/layer.tar", Regular, 0o644, l2, None);
    add(&mut t, &cfg_name, Regular, 0o644, cfg, None);
    let manifest = json!([{"Config": cfg_name, "RepoTags": ["fixture:latest"], "Layers": ["aaaa/layer.tar", "bbbb/layer.tar"]}]);
    add(
        &mut t,
        "manifest.json",
        Regular,
        0o644,
        &serde_json::to_vec(&manifest).unwrap(),
        None,
    );
    std::fs::write(path, t.into_inner().unwrap()).unwrap();
}

fn oci_layout(dir: &Path, cfg: &[u8], l1: &[u8], l2: &[u8]) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| -> String {
        std::fs::write(blobs.join(sha256_hex(b)), b).unwrap();
        id(b)
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(l2).unwrap();
    let l2gz = gz.finish().unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(cfg), "size": cfg.len()},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": put(l1), "size": l1.len()},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(&l2gz), "size": l2gz.len()}
        ]
    })).unwrap();
    let m = put(&manifest);
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m, "size": manifest.len(), "annotations": {"org.opencontainers.image.ref.name": "fixture:latest"}}]})).unwrap()).unwrap();
}

fn check_index(img: &exhibit_analyzer::image::SavedImage, cfg: &[u8]) {
    let f = &img.files;
    assert_eq!(img.id, id(cfg));
    assert!(f.get(b"/etc/passwd").is_none(), "whiteout applied");
    assert!(f.get(b"/etc/shadow").is_some());
    assert!(
        f.get(b"/usr/share/doc/a").is_none() && f.get(b"/usr/share/doc/b").is_none(),
        "opaque dir cleared"
    );
    assert!(
        f.get(b"/usr/share/doc/c").is_some(),
        "opaque applies to lower layers only"
    );
    assert!(f.get(b"/escape").is_none());
    assert_eq!(img.skipped_entries, 1);
    let bb = f.get(b"/bin/busybox").unwrap();
    assert_eq!(bb.sha256.as_deref(), Some(sha256_hex(BUSYBOX_V2).as_str()));
    assert_eq!(bb.mode & 0o777, 0o755);
    assert_eq!(
        f.get(b"/bin/ln").unwrap().sha256,
        bb.sha256,
        "hard link indexed with its target's content"
    );
    let (p, sh) = f.resolve(b"/bin/sh").unwrap();
    assert_eq!(p, b"/bin/busybox");
    assert_eq!(sh.file_type, ImageFileType::File);
    assert_eq!(
        f.get(b"/bin/sh").unwrap().link_target.as_deref(),
        Some("busybox")
    );
}

#[test]
fn docker_save_tar_and_oci_layout_index_the_same_tree() {
    let dir = tempfile::tempdir().unwrap();
    let (l1, l2) = layers();
    let cfg = config(&l1, &l2);
    let save = dir.path().join("image.tar");
    docker_save(&save, &cfg, &l1, &l2);
    let a = load(&save, None).unwrap();
    check_index(&a, &cfg);
    assert_eq!(a.repo_tags, vec!["fixture:latest"]);
    let oci = dir.path().join("oci");
    oci_layout(&oci, &cfg, &l1, &l2);
    let b = load(&oci, None).unwrap();
    check_index(&b, &cfg);
    assert_eq!(a.diff_ids, b.diff_ids);
}

#[test]
fn corrupt_layers_and_missing_members_are_input_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (l1, l2) = layers();
    let cfg = config(&l1, &l2);
    let bad = dir.path().join("bad.tar");
    let mut l2x = l2.clone();
    let n = l2x.len();
    l2x[n - 1100] ^= 1;
    docker_save(&bad, &cfg, &l1, &l2x);
    let e = load(&bad, None).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("layer 1"), "{e}");
    std::fs::write(dir.path().join("empty.tar"), [0u8; 1024]).unwrap();
    let e = load(&dir.path().join("empty.tar"), None).unwrap_err();
    assert!(e.to_string().contains("manifest.json"), "{e}");
}

#[test]
fn image_rules_compare_with_the_saved_image() {
    let dir = tempfile::tempdir().unwrap();
    let (l1, l2) = layers();
    let cfg = config(&l1, &l2);
    let save = dir.path().join("image.tar");
    docker_save(&save, &cfg, &l1, &l2);
    let img = load(&save, None).unwrap();
    let mut spec = Spec::default()
        .file("/etc/shadow", K::Modified, 0o644, b"root:*::::::\n")
        .file("/bin/busybox", K::Modified, 0o755, BUSYBOX_V2)
        .file("/opt/x", K::Modified, 0o644, b"tampered")
        .deleted("/etc/shadow2")
        .deleted("/opt/x2")
        .process(process(100, "/bin/busybox", &["sh"]))
        .process(process(101, "/usr/bin/foo", &["foo"]));
    let mut deleted_x = process(102, "/opt/x", &["x"]);
    deleted_x.exe_sha256 = Some(sha256_hex(b"x"));
    spec.processes.push(deleted_x);
    spec.image["diff_ids"] = json!(img.diff_ids);
    spec.image["image_id"] = json!(img.id);
    let p = dir.path().join("b");
    spec.write(&p, None);
    let ev = Evidence::open(&p, &[]).unwrap();
    let f = run(&RuleInput {
        ev: &ev,
        image: Some(&img),
        profile: None,
    })
    .unwrap();
    let want = [
        ("fs.permission-change", "/etc/shadow"),
        ("fs.persistence", "/etc/shadow"),
        ("fs.modified-image-file", "/opt/x"),
        ("proc.exe-not-in-image", "/usr/bin/foo"),
        ("proc.exe-modified", "/opt/x"),
    ];
    let mut want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    want.sort();
    assert_eq!(pairs(&f), want);

    // The bundle's image is another one: image.mismatch names the bundle's image id.
    spec.image["image_id"] = json!(support::IMAGE_ID);
    spec.write(&dir.path().join("c"), None);
    let ev = Evidence::open(&dir.path().join("c"), &[]).unwrap();
    let f = run(&RuleInput {
        ev: &ev,
        image: Some(&img),
        profile: None,
    })
    .unwrap();
    let m = f
        .iter()
        .find(|f| f.rule == "image.mismatch")
        .expect("image.mismatch");
    assert_eq!(m.subject, support::IMAGE_ID);
    assert_eq!(m.evidence["saved_image_id"], json!(img.id));
}

/// Hashes what it writes through to `w` (the diff_id of a layer built while it is
/// compressed).
struct Tee<W: Write> {
    w: W,
    h: sha2::Sha256,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.w.write(b)?;
        sha2::Digest::update(&mut self.h, &b[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

#[test]
fn a_small_image_of_huge_paths_is_refused_at_the_index_budget() {
    // The fuzzing finding: a ~100 KB `docker save` whose zstd layer holds 5,000
    // directories with 60 KB paths (300 MB of path bytes once decompressed) used to be
    // indexed in full. It must stop at the index budget (192 MiB) with an input error.
    let dir = tempfile::tempdir().unwrap();
    let enc = zstd::Encoder::new(Vec::new(), 3).unwrap();
    let mut b = tar::Builder::new(Tee {
        w: enc,
        h: <sha2::Sha256 as sha2::Digest>::new(),
    });
    let tail = "p".repeat(60_000);
    for i in 0..5_000 {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, format!("d{i}/{tail}/"), &b""[..])
            .unwrap();
    }
    let tee = b.into_inner().unwrap();
    let diff_id = format!("sha256:{}", hex::encode(sha2::Digest::finalize(tee.h)));
    let layer = tee.w.finish().unwrap();
    assert!(layer.len() < 1 << 20, "{} bytes", layer.len());
    let (l1, _) = layers();
    let cfg = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [id(&l1), diff_id]}})).unwrap();
    let p = dir.path().join("huge-paths.tar");
    docker_save(&p, &cfg, &l1, &layer);
    assert!(std::fs::metadata(&p).unwrap().len() < 2 << 20);
    let e = load(&p, None).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    let msg = e.to_string();
    assert!(
        msg.contains("layer 1") && msg.contains("more than 192 MiB"),
        "{msg}"
    );
}

#[test]
fn an_oci_layout_cannot_point_the_reader_outside_or_at_a_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let (l1, l2) = layers();
    let cfg = config(&l1, &l2);
    let fresh = |name: &str| {
        let oci = dir.path().join(name);
        oci_layout(&oci, &cfg, &l1, &l2);
        oci
    };
    let blob = |oci: &Path, b: &[u8]| oci.join("blobs/sha256").join(sha256_hex(b));
    // A layer blob that is a symlink to the same bytes elsewhere: refused, not followed.
    let oci = fresh("link");
    let outside = dir.path().join("outside-layer");
    std::fs::rename(blob(&oci, &l1), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, blob(&oci, &l1)).unwrap();
    let e = load(&oci, None).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("is a symlink"), "{e}");
    // The config blob a FIFO: an error, not a reader blocked forever.
    let oci = fresh("fifo");
    std::fs::remove_file(blob(&oci, &cfg)).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        blob(&oci, &cfg),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let e = load(&oci, None).unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
    // blobs/sha256 itself a symlink to a directory outside.
    let oci = fresh("dirlink");
    let moved = dir.path().join("moved-blobs");
    std::fs::rename(oci.join("blobs/sha256"), &moved).unwrap();
    std::os::unix::fs::symlink(&moved, oci.join("blobs/sha256")).unwrap();
    let e = load(&oci, None).unwrap_err();
    assert!(e.to_string().contains("is a symlink"), "{e}");
    // The untouched layout still loads.
    load(&fresh("ok"), None).unwrap();
}

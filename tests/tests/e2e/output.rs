//! The bundle and its `.sha256` sidecar against a real container: neither is ever
//! overwritten, and they never end up describing different captures.

use crate::support;

use std::process::{Command, Stdio};
use support::{collect, expect_code, names_in as contents, run, stderr, Container, Rt};

#[test]
fn an_existing_bundle_or_sidecar_stops_the_capture_before_it_starts() {
    let c = Container::start(Rt::Docker, "shell", &[]);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("x.exhibit.tar.zst");
    let side = dir.path().join("x.exhibit.tar.zst.sha256");
    let capture = || {
        run(c
            .capture_command(&["--unsigned", "--freeze", "-o"])
            .arg(&target))
    };
    // A stale sidecar alone: once it let the bundle be written beside it, not matching.
    std::fs::write(&side, "stale\n").unwrap();
    let o = capture();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("x.exhibit.tar.zst.sha256 already exists") && err.contains("hint:"),
        "{err}"
    );
    assert!(
        !target.exists(),
        "a bundle was written beside a stale sidecar"
    );
    assert_eq!(std::fs::read_to_string(&side).unwrap(), "stale\n");
    // Nothing was frozen: the check comes before the container is touched.
    let paused = run(Command::new("docker").args(["inspect", "-f", "{{.State.Paused}}", &c.name]));
    assert_eq!(String::from_utf8_lossy(&paused.stdout).trim(), "false");
    // A bundle alone.
    std::fs::remove_file(&side).unwrap();
    std::fs::write(&target, "old bundle").unwrap();
    let o = capture();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "old bundle");
    assert_eq!(contents(dir.path()), ["x.exhibit.tar.zst"]);
    // Neither: a bundle and a sidecar that names its sha256.
    std::fs::remove_file(&target).unwrap();
    let o = capture();
    expect_code(&o, 0, "a capture with neither name taken");
    let digest = exhibit_common::hashing::sha256_hex(&std::fs::read(&target).unwrap());
    assert_eq!(
        std::fs::read_to_string(&side).unwrap(),
        format!("{digest}  x.exhibit.tar.zst\n")
    );
}

#[test]
fn a_sidecar_appearing_during_the_capture_leaves_no_bundle() {
    let c = Container::start(Rt::Docker, "shell", &[]);
    // A 4 GiB sparse file to read keeps the capture busy for seconds.
    c.sh("truncate -s 4G /tmp/a");
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("x.exhibit.tar.zst");
    let partial = dir.path().join("x.exhibit.tar.zst.partial");
    let side = dir.path().join("x.exhibit.tar.zst.sha256");
    let mut child = c
        .capture_command(&["--unsigned", "--quiet", "--max-file-size", "4GiB", "-o"])
        .arg(&target)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the capture has reserved its names, someone else takes the sidecar's.
    while !partial.exists() {
        assert!(child.try_wait().unwrap().is_none(), "capture ended early");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::fs::write(&side, "someone else's\n").unwrap();
    let o = child.wait_with_output().unwrap();
    expect_code(&o, 2, "a sidecar taken during the capture");
    assert!(stderr(&o).contains("no bundle written"), "{}", stderr(&o));
    assert_eq!(contents(dir.path()), ["x.exhibit.tar.zst.sha256"]);
    assert_eq!(std::fs::read_to_string(&side).unwrap(), "someone else's\n");
}

#[test]
fn keygen_on_a_full_disk_leaves_no_key_file() {
    // A tmpfs filled to the last block: creating the file works, writing the key fails.
    let tmpfs = support::SmallTmpfs::mount("64k");
    let small = tmpfs.path.clone();
    {
        use std::io::Write;
        let mut filler = std::fs::File::create(small.join("filler")).unwrap();
        let block = vec![0u8; 4096];
        while filler.write_all(&block).is_ok() {}
    }
    let out = run(collect().arg("keygen").arg("--out").arg(small.join("ir")));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.lines().any(|l| l.starts_with("error: ")), "{err}");
    assert!(err.lines().any(|l| l.starts_with("hint: ")), "{err}");
    assert_eq!(contents(&small), ["filler"], "{err}");
}

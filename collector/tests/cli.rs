//! The command-line conventions of exhibit-collect that need no container runtime:
//! `-v` shows tracing events, errors are one `error:` line with `hint:` lines and exit 2.

use std::process::{Command, Output};

fn collect(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("none.sock");
    Command::new(env!("CARGO_BIN_EXE_exhibit-collect"))
        .args(args)
        .args(["list", "--runtime", "containerd", "--containerd-address"])
        .arg(&sock)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn verbose_shows_tracing_events_and_quiet_by_default() {
    let loud = collect(&["-v"]);
    let err = String::from_utf8_lossy(&loud.stderr);
    assert_eq!(loud.status.code(), Some(2), "{err}");
    assert!(
        err.lines()
            .any(|l| l.contains(" INFO ") && l.contains("connecting to containerd")),
        "{err}"
    );
    let quiet = collect(&[]);
    let err = String::from_utf8_lossy(&quiet.stderr);
    assert_eq!(quiet.status.code(), Some(2), "{err}");
    assert!(!err.contains(" INFO "), "{err}");
    assert!(
        err.starts_with("error: cannot reach a container runtime"),
        "{err}"
    );
    assert!(
        err.lines().skip(1).all(|l| l.starts_with("hint: ")),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("hint: is containerd running?")),
        "{err}"
    );
    assert!(quiet.stdout.is_empty());
}

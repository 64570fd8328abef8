//! Errors the user can act on: what failed on what, its kind, then hints.
//!
//! Failures raised on purpose carry their kind and hints
//! ([`exhibit_common::cli::Failure`]). An error that reaches the top without one is
//! classified by the types in its chain (an `io::Error`'s kind, a Docker or containerd
//! client error), never by its message text.

use exhibit_common::cli::{ExitStatus, Failure, FailureKind, Printer};
use std::io::ErrorKind;

/// The hint for a Docker daemon that cannot be reached.
pub const DOCKER_HINT: &str =
    "is dockerd running? check `docker info`, or point --docker-host / DOCKER_HOST at it";
/// The hint for a containerd that cannot be reached.
pub const CONTAINERD_HINT: &str =
    "is containerd running? point --containerd-address / CONTAINERD_ADDRESS at its socket";

/// The failure to show for an error: the one raised on purpose (its message prefixed
/// by the context added on the way up), else one classified from the chain's types.
pub fn classify(err: &anyhow::Error) -> Failure {
    let text = format!("{err:#}");
    if let Some(f) = err.chain().find_map(|c| c.downcast_ref::<Failure>()) {
        return Failure {
            message: text,
            ..f.clone()
        };
    }
    let mut kind = FailureKind::Internal;
    let mut hints: Vec<String> = Vec::new();
    let mut add = |k: FailureKind, h: &str, kind: &mut FailureKind| {
        if *kind == FailureKind::Internal {
            *kind = k;
        }
        if !hints.iter().any(|x| x == h) {
            hints.push(h.to_string());
        }
    };
    for cause in err.chain() {
        if let Some(io) = io_kind(cause) {
            match io {
                ErrorKind::PermissionDenied => add(
                    FailureKind::Permission,
                    "run exhibit-collect as root (it reads /proc and the runtime's storage)",
                    &mut kind,
                ),
                ErrorKind::StorageFull => add(
                    FailureKind::Io,
                    "the output filesystem is full: free space or write elsewhere with -o DIR",
                    &mut kind,
                ),
                ErrorKind::ReadOnlyFilesystem => add(
                    FailureKind::Io,
                    "the output location is read-only: write elsewhere with -o DIR",
                    &mut kind,
                ),
                _ => {}
            }
        }
        if let Some(b) = cause.downcast_ref::<bollard::errors::Error>() {
            // A response from the daemon means it is reachable; anything else is
            // transport (socket gone, refused, timed out).
            if !matches!(
                b,
                bollard::errors::Error::DockerResponseServerError { .. }
                    | bollard::errors::Error::JsonDataError { .. }
                    | bollard::errors::Error::JsonSerdeError { .. }
            ) {
                add(FailureKind::Runtime, DOCKER_HINT, &mut kind);
            }
        }
        if cause.downcast_ref::<tonic::transport::Error>().is_some()
            || cause
                .downcast_ref::<tonic::Status>()
                .is_some_and(|s| s.code() == tonic::Code::Unavailable)
        {
            add(FailureKind::Runtime, CONTAINERD_HINT, &mut kind);
        }
    }
    Failure {
        kind,
        message: text,
        hints,
    }
}

/// The `io::ErrorKind` of an error that is an `io::Error` or a rustix errno.
fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        return Some(io.kind());
    }
    e.downcast_ref::<rustix::io::Errno>()
        .map(|errno| std::io::Error::from(*errno).kind())
}

/// Prints an error as one `error:` line and its `hint:` lines; returns its status.
pub fn report(err: &anyhow::Error) -> ExitStatus {
    let f = classify(err);
    Printer::new().error(&f);
    f.exit_status()
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn a_raised_failure_keeps_its_kind_and_hints_under_context() {
        let e = anyhow::Error::new(Failure::runtime("docker went away").hint("restart it"))
            .context("capture of web failed; no bundle written");
        let f = classify(&e);
        assert_eq!(f.kind, FailureKind::Runtime);
        assert_eq!(f.hints, vec!["restart it".to_string()]);
        assert_eq!(
            f.message,
            "capture of web failed; no bundle written: docker went away"
        );
    }

    #[test]
    fn io_errors_are_classified_by_their_kind_not_their_text() {
        let full = Err::<(), _>(std::io::Error::from(rustix::io::Errno::NOSPC))
            .context("writing bundle")
            .unwrap_err();
        let f = classify(&full);
        assert_eq!(f.kind, FailureKind::Io);
        assert!(f.hints[0].contains("full"), "{:?}", f.hints);
        let ro = anyhow::Error::new(rustix::io::Errno::ROFS).context("creating x");
        assert!(classify(&ro).hints[0].contains("read-only"));
        let denied = anyhow::Error::new(std::io::Error::from(ErrorKind::PermissionDenied));
        assert_eq!(classify(&denied).kind, FailureKind::Permission);
        // The words alone, without the type, give no hint.
        let words = anyhow::anyhow!("permission denied: no space left on device, docker");
        let f = classify(&words);
        assert_eq!((f.kind, f.hints.len()), (FailureKind::Internal, 0));
    }

    #[test]
    fn client_transport_errors_name_their_runtime() {
        let docker = anyhow::Error::new(bollard::errors::Error::RequestTimeoutError)
            .context("inspecting web");
        let f = classify(&docker);
        assert_eq!(f.kind, FailureKind::Runtime);
        assert_eq!(f.hints, vec![DOCKER_HINT.to_string()]);
        let containerd = anyhow::Error::new(tonic::Status::unavailable("gone"));
        assert_eq!(
            classify(&containerd).hints,
            vec![CONTAINERD_HINT.to_string()]
        );
        let answered = anyhow::Error::new(tonic::Status::not_found("no such task"));
        assert_eq!(classify(&answered).kind, FailureKind::Internal);
    }
}

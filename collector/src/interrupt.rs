//! Ctrl-C and SIGTERM during a capture: resume a frozen container and remove partial
//! output, so nothing is left at a final name and no container stays paused.
//!
//! The handler runs on another thread than the capture, so the steps it races with
//! are serialised with it: output files are created and registered under one lock and
//! sealed (renamed to their final names) under it, so a signal either finds them
//! registered and removes them or finds them sealed; pausing and resuming hold an async
//! lock the handler takes before it looks for a container to resume, so a pause in
//! flight is always followed by a resume, and once the handler ran no new pause starts.

use exhibit_common::output::AtomicFile;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Resumes a paused container.
pub type Resumer =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>> + Send + Sync>;

/// How long a resume may take before the container is reported as left paused.
pub const RESUME_TIMEOUT: Duration = Duration::from_secs(20);

/// A container paused by this run: how to resume it, and the command that does it by
/// hand (for the hint when resuming fails).
struct Frozen {
    resume: Resumer,
    hint: String,
}

#[derive(Default)]
struct State {
    partials: Vec<PathBuf>,
    frozen: Option<Frozen>,
    interrupted: bool,
    /// Bundles sealed by this run so far (with `--all`, before the one in progress).
    sealed: usize,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);
static FREEZE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn with<T>(f: impl FnOnce(&mut State) -> T) -> T {
    let mut g = STATE.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(State::default))
}

fn interrupted_error() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::Interrupted, "capture interrupted")
}

fn partial_of(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_os_string();
    s.push(".partial");
    PathBuf::from(s)
}

/// Creates `path` as an [`AtomicFile`] and registers its partial file for removal on
/// interrupt, in one step the signal handler cannot come between.
pub fn create_output(path: &Path) -> std::io::Result<AtomicFile> {
    with(|s| {
        if s.interrupted {
            return Err(interrupted_error());
        }
        let f = AtomicFile::create(path)?;
        s.partials.push(partial_of(path));
        Ok(f)
    })
}

/// Runs `seal` (which renames the output files of `paths` to their final names) unless
/// the capture was interrupted, then forgets their partial files. The handler waits
/// for it: a signal during the renames finds the files sealed, never half-renamed.
pub fn seal<T>(paths: &[&Path], seal: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    with(|s| {
        if s.interrupted {
            return Err(anyhow::Error::from(interrupted_error()));
        }
        let r = seal();
        if r.is_ok() {
            s.sealed += 1;
        }
        // Sealed, or removed by the failed commit and the drops that follow.
        for p in paths {
            let partial = partial_of(p);
            s.partials.retain(|x| *x != partial);
        }
        r
    })
}

/// Pauses a container through `pause` and registers how to resume it, unless the
/// capture was interrupted. The handler waits for a pause in flight.
pub async fn freeze<F>(pause: F, resume: Resumer, hint: String) -> anyhow::Result<()>
where
    F: Future<Output = anyhow::Result<()>>,
{
    let _g = FREEZE.lock().await;
    if with(|s| s.interrupted) {
        return Err(anyhow::Error::from(interrupted_error()));
    }
    pause.await?;
    with(|s| s.frozen = Some(Frozen { resume, hint }));
    Ok(())
}

/// Resumes the container this run froze, if the handler has not already: `None` when
/// there was nothing to resume, else the outcome (bounded by [`RESUME_TIMEOUT`]) and
/// the command that resumes it by hand.
pub async fn unfreeze() -> Option<(anyhow::Result<()>, String)> {
    let _g = FREEZE.lock().await;
    let frozen = with(|s| s.frozen.take())?;
    let r = match tokio::time::timeout(RESUME_TIMEOUT, (frozen.resume)()).await {
        Ok(r) => r,
        Err(_) => Err(anyhow::anyhow!(
            "the runtime did not answer within {} s",
            RESUME_TIMEOUT.as_secs()
        )),
    };
    Some((r, frozen.hint))
}

/// Installs the SIGINT and SIGTERM handlers (before anything is paused or written)
/// and waits for them in a task: on a signal, resume a frozen container, remove
/// partial output and exit with 130.
pub fn install() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
        on_signal().await;
    });
    Ok(())
}

async fn on_signal() -> ! {
    let (partials, sealed) = with(|s| {
        s.interrupted = true;
        (std::mem::take(&mut s.partials), s.sealed)
    });
    // Removed first: a resume that hangs must not leave them behind.
    for p in &partials {
        let _ = std::fs::remove_file(p);
    }
    let printer = exhibit_common::cli::Printer::new();
    if let Some((r, hint)) = unfreeze().await {
        match r {
            Ok(()) => {
                printer.status("exhibit-collect: interrupted; the frozen container was resumed")
            }
            Err(e) => {
                printer.warning(&format!(
                    "the frozen container could not be resumed: {}",
                    format!("{e:#}").replace('\n', " ")
                ));
                printer.hint(&format!("it is still paused; resume it with `{hint}`"));
            }
        }
    }
    let kept = match sealed {
        0 => String::new(),
        1 => "; the bundle sealed before it is kept".to_string(),
        n => format!("; the {n} bundles sealed before it are kept"),
    };
    if !partials.is_empty() || sealed == 0 {
        eprintln!("error: capture interrupted; the bundle in progress was not written{kept}");
    } else {
        // No bundle was being written: every one started was sealed.
        eprintln!("error: interrupted{kept}");
    }
    exhibit_common::cli::ExitStatus::Interrupted.exit();
}

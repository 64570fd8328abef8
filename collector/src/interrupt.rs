//! Ctrl-C and SIGTERM during a capture: resume a frozen container and remove partial
//! output, so nothing is left at a final name and no container stays paused.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// Resumes a paused container.
pub type Resumer = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

#[derive(Default)]
struct State {
    partials: Vec<PathBuf>,
    frozen: Option<Resumer>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn with<T>(f: impl FnOnce(&mut State) -> T) -> T {
    let mut g = STATE.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(State::default))
}

/// Registers a partial output file to remove on interrupt.
pub fn add_partial(p: PathBuf) {
    with(|s| s.partials.push(p));
}

/// Forgets a partial file (it was committed or removed).
pub fn remove_partial(p: &Path) {
    with(|s| s.partials.retain(|x| x != p));
}

/// Registers how to resume the container being captured.
pub fn set_frozen(r: Resumer) {
    with(|s| s.frozen = Some(r));
}

/// The container was resumed.
pub fn clear_frozen() {
    with(|s| s.frozen = None);
}

/// Waits for SIGINT or SIGTERM, then cleans up and exits with 130.
pub async fn watch() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    tokio::select! {
        _ = int.recv() => {},
        _ = term.recv() => {},
    }
    let (partials, frozen) = with(|s| (std::mem::take(&mut s.partials), s.frozen.take()));
    if let Some(resume) = frozen {
        resume().await;
        eprintln!("exhibit-collect: interrupted; the frozen container was resumed");
    }
    for p in partials {
        let _ = std::fs::remove_file(&p);
    }
    eprintln!("error: capture interrupted; no bundle was written");
    std::process::exit(130);
}

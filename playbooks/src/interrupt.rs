//! Ctrl-C and SIGTERM during `exhibit-drill run`: the handler only records the signal;
//! the runner polls [`signal`] while it waits for a child command (staging, capture,
//! report), kills that child, marks the drill errored and lets the container guard
//! remove the container. No further drill starts.

use std::sync::atomic::{AtomicI32, Ordering};

static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn record(sig: libc::c_int) {
    // Async-signal-safe: one atomic store.
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// Installs the SIGINT and SIGTERM handlers (before any container is started).
pub fn install() -> std::io::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `record` only stores into an atomic, which is async-signal-safe;
        // sigaction is given a zeroed, fully initialised struct.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = record as extern "C" fn(libc::c_int) as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The signal received, if any (SIGINT or SIGTERM).
pub fn signal() -> Option<&'static str> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        libc::SIGTERM => Some("SIGTERM"),
        _ => Some("SIGINT"),
    }
}

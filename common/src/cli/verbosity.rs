//! `-v` / `-vv`: tracing events to stderr.

/// Installs the stderr tracing subscriber: warnings by default, `-v` info, `-vv`
/// debug, `-vvv` trace; `RUST_LOG` (tracing-subscriber's env filter syntax) overrides.
pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(super::color_wanted(&std::io::stderr()))
        .try_init();
}

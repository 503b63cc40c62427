//! Logging: `tracing` to stderr (stdout belongs to the `log` target and to CLI output).
//!
//! `HOOKGATE_LOG` (or `RUST_LOG`) sets the filter (default `info`); `HOOKGATE_LOG_FORMAT=json`
//! switches to one JSON object per line for log shippers.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = std::env::var("HOOKGATE_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let json = std::env::var("HOOKGATE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: they would garble files and log shippers.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    // try_init: a second call (tests) keeps the first subscriber instead of panicking.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

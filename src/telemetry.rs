//! Logging: `tracing` to stderr (stdout belongs to the `log` target and to CLI output).
//!
//! `HOOKGATE_LOG` (or `RUST_LOG`) sets the filter (default `info`): a level (`warn`), or targets
//! with levels (`hookgate=debug,hyper=info,warn`). `HOOKGATE_LOG_FORMAT=json` switches to one
//! JSON object per line for log shippers.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The filter `spec` names, or `info` with the reason it could not be read.
///
/// `Targets` rather than `EnvFilter`: it reads the same `target=level` lists (not span or field
/// filters) without compiling regular expressions at start, which keeps that code out of the
/// resident set.
fn filter(spec: Option<&str>) -> (Targets, Option<String>) {
    let default = || Targets::new().with_default(LevelFilter::INFO);
    match spec.map(str::trim).filter(|s| !s.is_empty()) {
        None => (default(), None),
        Some(s) => match s.parse::<Targets>() {
            Ok(t) => (t, None),
            Err(e) => (default(), Some(format!("{s:?} is not a log filter ({e})"))),
        },
    }
}

pub fn init() {
    let spec = std::env::var("HOOKGATE_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok());
    let (filter, problem) = filter(spec.as_deref());
    let json = std::env::var("HOOKGATE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: they would garble files and log shippers.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let registry = tracing_subscriber::registry().with(filter);
    // try_init: a second call (tests) keeps the first subscriber instead of panicking.
    let _ = if json {
        registry.with(fmt.json()).try_init()
    } else {
        registry.with(fmt).try_init()
    };
    if let Some(problem) = problem {
        tracing::warn!("HOOKGATE_LOG: {problem}; logging at info");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn levels_and_targets_are_read_and_nonsense_falls_back_to_info() {
        let (f, problem) = filter(Some("warn"));
        assert!(problem.is_none());
        assert!(f.would_enable("hookgate", &Level::WARN));
        assert!(!f.would_enable("hookgate", &Level::INFO));

        let (f, _) = filter(Some("hookgate=debug,hyper=warn,error"));
        assert!(f.would_enable("hookgate::ingress", &Level::DEBUG));
        assert!(!f.would_enable("hyper::proto", &Level::INFO));
        assert!(f.would_enable("sqlx", &Level::ERROR));
        assert!(!f.would_enable("sqlx", &Level::WARN));

        let (f, problem) = filter(Some("loud=verbose!"));
        assert!(problem.unwrap().contains("loud=verbose!"));
        assert!(f.would_enable("hookgate", &Level::INFO));
        assert!(!f.would_enable("hookgate", &Level::DEBUG));

        let (f, problem) = filter(None);
        assert!(problem.is_none());
        assert!(f.would_enable("hookgate", &Level::INFO));
    }
}

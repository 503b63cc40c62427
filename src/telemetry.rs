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

/// The variable the filter comes from, and its value: `HOOKGATE_LOG` wins over `RUST_LOG`, so
/// that a filter meant for other Rust programs in the same environment can be overridden.
fn filter_source(get: impl Fn(&'static str) -> Option<String>) -> Option<(&'static str, String)> {
    ["HOOKGATE_LOG", "RUST_LOG"]
        .into_iter()
        .find_map(|name| get(name).map(|value| (name, value)))
}

pub fn init() {
    let source = filter_source(|name| std::env::var(name).ok());
    let (filter, problem) = filter(source.as_ref().map(|(_, value)| value.as_str()));
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
    if let (Some(problem), Some((name, _))) = (problem, source) {
        tracing::warn!("{name}: {problem}; logging at info");
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

    #[test]
    fn the_warning_names_the_variable_the_filter_came_from() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &'static str| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            filter_source(env(&[("RUST_LOG", "debug")])),
            Some(("RUST_LOG", "debug".to_string()))
        );
        assert_eq!(
            filter_source(env(&[("RUST_LOG", "debug"), ("HOOKGATE_LOG", "warn")])),
            Some(("HOOKGATE_LOG", "warn".to_string()))
        );
        assert_eq!(filter_source(env(&[])), None);
    }
}

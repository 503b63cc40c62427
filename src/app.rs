//! Wiring: builds the runtime objects from a validated [`Config`] once, runs the listeners and
//! background tasks, and shuts them down in order.
//!
//! Shutdown order: `/readyz` turns 503; the ingress stops accepting and drains in-flight requests
//! (each either committed and answered, or not answered at all); background workers stop; the
//! store finishes queued writes and closes.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::Admin;
use crate::config::{Config, ConfigError};
use crate::dispatch::Dispatcher;
use crate::ingress::{self, Ingress, ServerLimits};
use crate::metrics::Metrics;
use crate::outbox::{Store, StoreError};
use crate::route::RouteTable;
use crate::targets::Targets;

/// How often old events are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// Run the gateway on already-bound listeners until `shutdown` resolves.
pub async fn run(
    config: Config,
    ingress_listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let metrics = Arc::new(Metrics::new());
    let store = Store::open(&config.store.url, metrics.clone()).await?;
    // The embedded store has exactly one process using it: leases from a previous run belong
    // to a process that is gone, so their deliveries are due again now. A shared store releases
    // nothing (other replicas' leases are live); leases left by a dead replica expire.
    let released = store.release_leases().await?;
    if released > 0 {
        tracing::info!(released, "released leases held by a previous run");
    }
    let (routes, targets) = compile(&config)?;
    let routes = Arc::new(routes);
    let wake = Arc::new(Notify::new());
    let draining = Arc::new(AtomicBool::new(false));

    let stop_ingress = CancellationToken::new();
    let stop_background = CancellationToken::new();
    let tasks = TaskTracker::new();

    let ingress = Arc::new(Ingress::new(
        &config.endpoints,
        store.clone(),
        routes.clone(),
        metrics.clone(),
        config.server.max_body,
        config.server.body_read_timeout,
        wake.clone(),
    ));
    let limits = ServerLimits {
        max_connections: config.server.max_connections,
        header_read_timeout: config.server.header_read_timeout,
        shutdown_grace: config.server.shutdown_grace,
    };
    let ingress_task = tokio::spawn(ingress::serve(
        ingress_listener,
        ingress::handler(ingress),
        limits.clone(),
        Some(metrics.connections.clone()),
        stop_ingress.clone().cancelled_owned(),
    ));

    let admin = Arc::new(Admin {
        store: store.clone(),
        metrics: metrics.clone(),
        token: config.admin.token.clone(),
        draining: draining.clone(),
        wake: wake.clone(),
        targets: config.targets.keys().cloned().collect(),
    });
    let admin_handler: ingress::Handler = Arc::new(move |req| {
        let admin = admin.clone();
        Box::pin(async move { admin.handle(req).await })
    });
    let admin_limits = ServerLimits {
        max_connections: 64,
        ..limits
    };
    tasks.spawn(ingress::serve(
        admin_listener,
        admin_handler,
        admin_limits,
        None,
        stop_background.clone().cancelled_owned(),
    ));

    let dispatcher = Dispatcher::new(
        store.clone(),
        &targets,
        &config.targets,
        metrics.clone(),
        wake.clone(),
    );
    tasks.spawn(dispatcher.run(stop_background.clone()));

    tasks.spawn(prune_loop(
        store.clone(),
        config.store.retention,
        stop_background.clone(),
    ));

    tracing::info!(
        endpoints = config.endpoints.len(),
        targets = config.targets.len(),
        routes = config.routes.len(),
        store = %redact_url(&config.store.url),
        "hookgate running"
    );
    shutdown.await;
    tracing::info!("shutting down");
    draining.store(true, Ordering::Relaxed);
    stop_ingress.cancel();
    let _ = ingress_task.await;
    stop_background.cancel();
    tasks.close();
    if tokio::time::timeout(config.server.shutdown_grace, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("background tasks did not stop within the grace period");
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The runtime objects `routes.toml` describes beyond its own validation: the compiled rule
/// table and the targets with their templates. `hookgate check` runs this too, so whatever
/// would fail start-up fails the check.
pub fn compile(config: &Config) -> Result<(RouteTable, Targets), ConfigError> {
    let target_names: Vec<&str> = config.targets.keys().map(String::as_str).collect();
    let routes = RouteTable::compile(&config.routes, &target_names)?;
    let targets = Targets::build(&config.targets)?;
    Ok((routes, targets))
}

async fn prune_loop(store: Store, retention: Duration, stop: CancellationToken) {
    loop {
        let cutoff = now_ms() - retention.as_millis() as i64;
        loop {
            match store.prune(cutoff).await {
                Ok(n) if n > 0 => {
                    tracing::info!(pruned = n, "pruned events past retention");
                    if n < 10_000 {
                        break;
                    }
                }
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "pruning failed; will retry");
                    break;
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

/// Query parameters of a store URL whose values are shown in logs; any other value (`password`,
/// `sslpassword`, a misspelt one) may be a secret.
const SHOWN_PARAMS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "application_name",
    "options",
    "statement-cache-capacity",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
];

/// A store URL without its password, for logs: the password in the user info and the value of
/// every query parameter not known to be harmless become `redacted`. A URL that does not parse
/// loses everything between `://` and `@`, and its query.
pub fn redact_url(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        let url = url.split(['?', '#']).next().unwrap_or_default();
        return match url.split_once("://") {
            Some((scheme, rest)) => match rest.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://{host}"),
                None => url.to_string(),
            },
            None => url.to_string(),
        };
    };
    let mut changed = false;
    if u.password().is_some() {
        let _ = u.set_password(Some("redacted"));
        changed = true;
    }
    let is_secret = |k: &str| !SHOWN_PARAMS.contains(&k);
    if u.query_pairs().any(|(k, _)| is_secret(&k)) {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret(&k) {
                    "redacted".to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
        changed = true;
    }
    // Reserialised only when something was hidden: `sqlite:hookgate.db` stays as written.
    if changed {
        u.to_string()
    } else {
        url.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redact_url_hides_passwords_wherever_they_are() {
        let shown = redact_url("postgres://app:hunter2@db:5432/hg?sslmode=disable");
        assert_eq!(shown, "postgres://app:redacted@db:5432/hg?sslmode=disable");
        let shown =
            redact_url("postgres://app@db/hg?password=hunter2&sslpassword=hunter2&passwd=hunter2");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("password=redacted"), "{shown}");
        assert!(shown.contains("passwd=redacted"), "{shown}");
        // Does not parse (bad port): the user info goes entirely.
        let shown = redact_url("postgres://app:hunter2@db:99999/hg?password=hunter2");
        assert_eq!(shown, "postgres://db:99999/hg");
        assert_eq!(redact_url("sqlite:hookgate.db"), "sqlite:hookgate.db");
        assert_eq!(redact_url("sqlite://hookgate.db"), "sqlite://hookgate.db");
    }
}

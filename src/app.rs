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
    // to a process that is gone, so their deliveries are due again now.
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

/// A store URL without its password, for logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("redacted"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

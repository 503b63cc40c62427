//! Wiring: builds the runtime objects from a validated [`Config`], runs the listeners and
//! background tasks, rebuilds the reloadable ones on request, and shuts them down in order.
//!
//! A reload reads the file again and, only if all of it is valid, replaces the endpoints, the
//! rule table, the targets and the admin token. Requests in flight finish with what they
//! started with; the dispatcher of the old targets stops claiming and finishes its attempts while
//! the new one starts (leases keep the two from taking the same delivery). `[server]` and
//! `[store]` (listeners, limits, the store) stay as they started: a change there is logged as
//! needing a restart. The one exception is the content of the `server.tls` files: read again
//! from the same paths (on reload, and every `server.tls.watch` without one), a renewed
//! certificate serves the connections accepted after it.
//!
//! At start-up and after every reload, the pending deliveries to targets the configuration does
//! not have become dead letters: no lane would ever claim them.
//!
//! Shutdown order: `/readyz` turns 503; the ingress stops accepting and drains in-flight requests
//! (each either committed and answered, or not answered at all); background workers stop; the
//! store finishes queued writes and closes.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::Admin;
use crate::config::{Config, ConfigError, ConfigErrors, ServerConfig, TlsFiles};
use crate::dispatch::Dispatcher;
use crate::ingress::tls::{LoadedTls, expiry_warning};
use crate::ingress::{self, Ingress, ServerLimits};
use crate::metrics::Metrics;
use crate::outbox::{Store, StoreError};
use crate::route::RouteTable;
use crate::targets::Targets;

/// How often old events are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// The messages include the error they wrap, which is therefore not their `source`: a report
/// that prints the chain (`{:#}`, as `main` does) would print it twice.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(ConfigError),
    #[error("store: {0}")]
    Store(StoreError),
}

impl From<ConfigError> for StartError {
    fn from(e: ConfigError) -> Self {
        StartError::Config(e)
    }
}

impl From<StoreError> for StartError {
    fn from(e: StoreError) -> Self {
        StartError::Store(e)
    }
}

/// How a running gateway is asked to reload, and how it reads its configuration again.
pub struct Reloads {
    /// One message per reload asked for (SIGHUP).
    pub requests: mpsc::Receiver<()>,
    /// Reads and validates the configuration file again; the error lists what is wrong.
    pub load: Box<dyn Fn() -> Result<Config, String> + Send + Sync>,
}

/// A value replaced whole by a reload; readers take the current one per request (or per
/// connection).
struct Live<T>(RwLock<Arc<T>>);

impl<T> Live<T> {
    fn new(value: Arc<T>) -> Arc<Live<T>> {
        Arc::new(Live(RwLock::new(value)))
    }

    fn get(&self) -> Arc<T> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, value: Arc<T>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = value;
    }
}

/// What `routes.toml` describes beyond its own validation, built from a [`Config`].
pub struct Compiled {
    pub routes: RouteTable,
    pub targets: Targets,
    /// The ingress's TLS, read from the files `server.tls` names.
    pub tls: Option<LoadedTls>,
}

/// The sections a reload cannot apply in a running process, if they changed.
pub fn needs_restart(running: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    if running.server != new.server {
        out.push("server");
    }
    if running.store != new.store {
        out.push("store");
    }
    out
}

/// Run the gateway on already-bound listeners until `shutdown` resolves.
pub async fn run(
    config: Config,
    ingress_listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    run_with_reloads(config, ingress_listener, admin_listener, shutdown, None).await
}

/// [`run`], reloading the configuration whenever `reloads` asks.
pub async fn run_with_reloads(
    config: Config,
    ingress_listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    mut reloads: Option<Reloads>,
) -> Result<(), StartError> {
    let metrics = Arc::new(Metrics::new());
    let store = Store::open(&config.store.url, metrics.clone()).await?;
    if let Err(e) = store.lock_for_serve() {
        store.close().await;
        return Err(e.into());
    }
    // The embedded store has exactly one process using it: leases from a previous run belong
    // to a process that is gone, so their deliveries are due again now. A shared store releases
    // nothing (other replicas' leases are live); leases left by a dead replica expire.
    let released = store.release_leases().await?;
    if released > 0 {
        tracing::info!(released, "released leases held by a previous run");
    }
    // Deliveries to targets this configuration lacks (removed or renamed while the gateway was
    // stopped) would never be claimed: they become dead letters, to be replayed once the
    // target is back.
    dead_letter_unconfigured(&store, &metrics, &config).await?;
    let Compiled {
        routes,
        targets,
        tls,
    } = compile(&config).map_err(ConfigError::from)?;
    let routes = Arc::new(routes);
    let wake = Arc::new(Notify::new());
    let draining = Arc::new(AtomicBool::new(false));

    let stop_ingress = CancellationToken::new();
    let stop_background = CancellationToken::new();
    let tasks = TaskTracker::new();

    let build_ingress = |config: &Config, server: &ServerConfig, routes: Arc<RouteTable>| {
        Ingress::new(
            &config.endpoints,
            store.clone(),
            routes,
            metrics.clone(),
            server.max_body,
            server.body_read_timeout,
            wake.clone(),
        )
    };
    let build_admin = |config: &Config| Admin {
        store: store.clone(),
        metrics: metrics.clone(),
        token: config.admin.token.clone(),
        draining: draining.clone(),
        wake: wake.clone(),
        targets: config.targets.keys().cloned().collect(),
    };
    let ingress = Live::new(Arc::new(build_ingress(&config, &config.server, routes)));
    let limits = ServerLimits {
        listener: "ingress",
        max_connections: config.server.max_connections,
        header_read_timeout: config.server.header_read_timeout,
        shutdown_grace: config.server.shutdown_grace,
    };
    let live = ingress.clone();
    let ingress_handler: ingress::Handler = Arc::new(move |req| {
        let ingress = live.get();
        Box::pin(async move { ingress.handle(req).await })
    });
    let mut tls = tls.zip(config.server.tls.clone()).map(|(loaded, files)| {
        note_expiry(&metrics, &loaded);
        ServedTls {
            live: Live::new(loaded.config),
            digest: loaded.digest,
            files,
        }
    });
    let tls_source = tls.as_ref().map(|t| -> ingress::TlsSource {
        let live = t.live.clone();
        Arc::new(move || live.get())
    });
    let mut tls_watch = tls
        .as_ref()
        .map(|t| t.files.watch)
        .filter(|every| !every.is_zero())
        .map(|every| {
            let mut i = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
    // Announced only now that the store is open and this process's: one that cannot use its
    // store (taken by another gateway, say) never says it is listening. Until then connections
    // wait in the listeners' backlog.
    if let (Ok(listen), Ok(admin)) = (ingress_listener.local_addr(), admin_listener.local_addr()) {
        tracing::info!(%listen, %admin, version = env!("CARGO_PKG_VERSION"), "listening");
    }
    let ingress_task = tokio::spawn(ingress::serve(
        ingress_listener,
        ingress_handler,
        limits.clone(),
        Some(ingress::ConnectionMetrics {
            open: metrics.connections.clone(),
            tls_handshake_failures: metrics.tls_handshake_failures.clone(),
        }),
        tls_source,
        stop_ingress.clone().cancelled_owned(),
    ));

    let admin = Live::new(Arc::new(build_admin(&config)));
    let live = admin.clone();
    let admin_handler: ingress::Handler = Arc::new(move |req| {
        let admin = live.get();
        Box::pin(async move { admin.handle(req).await })
    });
    let admin_limits = ServerLimits {
        listener: "admin",
        max_connections: 64,
        ..limits
    };
    tasks.spawn(ingress::serve(
        admin_listener,
        admin_handler,
        admin_limits,
        None,
        None,
        stop_background.clone().cancelled_owned(),
    ));

    // A dispatcher replaced by a reload says when its last attempt has finished: an attempt to
    // a target the reload removed may have been rescheduled meanwhile, leaving a pending
    // delivery no lane will claim.
    let (retired_tx, mut retired) = mpsc::unbounded_channel::<()>();
    let start_dispatcher = |targets: &Targets, config: &Config| {
        let stop = stop_background.child_token();
        let dispatcher = Dispatcher::new(
            store.clone(),
            targets,
            &config.targets,
            metrics.clone(),
            wake.clone(),
        );
        let run = dispatcher.run(stop.clone());
        let retired_tx = retired_tx.clone();
        tasks.spawn(async move {
            run.await;
            let _ = retired_tx.send(());
        });
        stop
    };
    let mut stop_dispatcher = start_dispatcher(&targets, &config);

    tasks.spawn(prune_loop(
        store.clone(),
        config.store.retention,
        config.store.dead_retention,
        stop_background.clone(),
    ));

    tracing::info!(
        endpoints = config.endpoints.len(),
        targets = config.targets.len(),
        routes = config.routes.len(),
        store = %redact_url(&config.store.url),
        "hookgate running"
    );
    // Both series from the start, so that an alert on failed reloads has something to watch.
    for result in ["ok", "error"] {
        metrics.config_reloads.with_label_values(&[result]);
    }
    let mut running = config;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            () = next_reload(&mut reloads) => {}
            Some(()) = retired.recv() => {
                // A request whose client went away leaves its ingest queued, to be committed
                // anyway: the writer's queue is drained up to here first. (The PostgreSQL
                // store dead-letters through its pool, beside the writer.)
                if let Err(e) = store.flush().await {
                    tracing::warn!(error = %e, "could not dead-letter deliveries to removed targets");
                    continue;
                }
                if let Err(e) = dead_letter_unconfigured(&store, &metrics, &running).await {
                    tracing::warn!(error = %e, "could not dead-letter deliveries to removed targets");
                }
                continue;
            }
            () = next_tick(&mut tls_watch) => {
                if let Some(t) = &mut tls {
                    t.reread_if_changed(&metrics).await;
                }
                continue;
            }
        }
        let load = &reloads.as_ref().expect("a reload was asked for").load;
        let compiled = load().and_then(|new| {
            let compiled = compile(&new).map_err(|e| e.to_string())?;
            Ok((new, compiled))
        });
        let (new, compiled) = match compiled {
            Ok(c) => c,
            Err(errors) => {
                metrics.config_reloads.with_label_values(&["error"]).inc();
                tracing::error!(%errors, "configuration not reloaded; still running the previous one");
                continue;
            }
        };
        let restart = needs_restart(&running, &new);
        if !restart.is_empty() {
            tracing::warn!(
                sections = ?restart,
                "changes to these sections take effect after a restart; the rest is applied now"
            );
        }
        let previous = ingress.get();
        ingress.set(Arc::new(build_ingress(
            &new,
            &running.server,
            Arc::new(compiled.routes),
        )));
        // Requests in flight finish with the routes they started with, which may name a target
        // this file removed: once the last of them is done, the deliveries they queued are
        // dead-lettered like the others (the same step as when the old dispatcher retires).
        let (retired_tx, stop) = (retired_tx.clone(), stop_background.clone());
        tasks.spawn(async move {
            tokio::select! {
                () = wait_until_unused(previous) => drop(retired_tx.send(())),
                () = stop.cancelled() => {}
            }
        });
        admin.set(Arc::new(build_admin(&new)));
        // The same files, read again: a renewed certificate serves new connections from now
        // (whatever `watch` now says; a new interval waits for the restart). Other paths, or
        // TLS turned on or off, wait for the restart `needs_restart` asked for.
        let same_files = |a: &TlsFiles, b: &TlsFiles| a.cert == b.cert && a.key == b.key;
        if let (Some(served), Some(new_tls)) = (&mut tls, compiled.tls)
            && let (Some(old_files), Some(new_files)) = (&running.server.tls, &new.server.tls)
            && same_files(old_files, new_files)
        {
            served.serve(new_tls, &metrics);
        }
        stop_dispatcher.cancel();
        stop_dispatcher = start_dispatcher(&compiled.targets, &new);
        // The new lanes never claim a target the file no longer has. Deliveries leased by the
        // old dispatcher are left to finish; what they leave pending is taken when it retires.
        if let Err(e) = dead_letter_unconfigured(&store, &metrics, &new).await {
            tracing::warn!(error = %e, "could not dead-letter deliveries to removed targets");
        }
        metrics.config_reloads.with_label_values(&["ok"]).inc();
        tracing::info!(
            endpoints = new.endpoints.len(),
            targets = new.targets.len(),
            routes = new.routes.len(),
            "configuration reloaded"
        );
        running = Config {
            server: running.server,
            store: running.store,
            ..new
        };
    }
    tracing::info!("shutting down");
    draining.store(true, Ordering::Relaxed);
    stop_ingress.cancel();
    let _ = ingress_task.await;
    stop_background.cancel();
    tasks.close();
    if tokio::time::timeout(running.server.shutdown_grace, tasks.wait())
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
/// table, the targets with their templates, and the ingress's TLS from its files. `hookgate
/// check` runs this too, so whatever would fail start-up fails the check.
pub fn compile(config: &Config) -> Result<Compiled, ConfigErrors> {
    let routing = compile_routing(config);
    let tls = config
        .server
        .tls
        .as_ref()
        .map(ingress::tls::load)
        .transpose();
    match (routing, tls) {
        (Ok((routes, targets)), Ok(tls)) => Ok(Compiled {
            routes,
            targets,
            tls,
        }),
        (routing, tls) => Err(ConfigErrors(
            routing
                .err()
                .map(|e| e.0)
                .into_iter()
                .chain(tls.err())
                .flatten()
                .collect(),
        )),
    }
}

/// The rule table and the targets alone: what `hookgate explain` needs (it serves nothing, so
/// the certificate files need not be readable where it runs).
pub fn compile_routing(config: &Config) -> Result<(RouteTable, Targets), ConfigErrors> {
    let target_names: Vec<&str> = config.targets.keys().map(String::as_str).collect();
    match (
        RouteTable::compile(&config.routes, &target_names).map_err(|e| ConfigErrors(vec![e])),
        Targets::build(&config.targets),
    ) {
        (Ok(routes), Ok(targets)) => Ok((routes, targets)),
        (routes, targets) => Err(ConfigErrors(
            [routes.err(), targets.err()]
                .into_iter()
                .flatten()
                .flat_map(|e| e.0)
                .collect(),
        )),
    }
}

/// The ingress's TLS while the gateway runs: what new connections get, and from which content of
/// the files it was loaded.
struct ServedTls {
    live: Arc<Live<rustls::ServerConfig>>,
    files: TlsFiles,
    digest: [u8; 32],
}

impl ServedTls {
    /// Serve `loaded` to the connections accepted from now on.
    fn serve(&mut self, loaded: LoadedTls, metrics: &Metrics) {
        note_expiry(metrics, &loaded);
        self.digest = loaded.digest;
        self.live.set(loaded.config);
    }

    /// Read the files again; if what they hold changed and loads, serve it. A pair that does
    /// not load (a renewal half written) is logged and the running one stays; the next look
    /// tries again.
    async fn reread_if_changed(&mut self, metrics: &Metrics) {
        let (files, served) = (self.files.clone(), self.digest);
        let reread = tokio::task::spawn_blocking(move || match ingress::tls::digest(&files) {
            Ok(now) if now == served => None,
            _ => Some(ingress::tls::load(&files)),
        })
        .await;
        match reread {
            Ok(None) => {}
            Ok(Some(Ok(loaded))) => {
                self.serve(loaded, metrics);
                tracing::info!("server.tls files changed: new connections get the new certificate");
            }
            Ok(Some(Err(errors))) => tracing::warn!(
                errors = %ConfigErrors(errors),
                "server.tls files changed but do not load; still serving the previous certificate"
            ),
            Err(e) => tracing::warn!(error = %e, "reading the server.tls files failed"),
        }
    }
}

/// Resolves at the next tick; never without an interval.
async fn next_tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Publish when the certificates now served expire, and warn if that is close or past.
fn note_expiry(metrics: &Metrics, tls: &LoadedTls) {
    match tls.expires_at {
        Some(at) => {
            metrics
                .tls_certificate_expiry
                .with_label_values::<&str>(&[])
                .set(at);
            if let Some(warning) = expiry_warning(at, now_ms() / 1000) {
                tracing::warn!("{warning}");
            }
        }
        None => {
            // A stale value would say "fine" about a certificate it knows nothing of.
            let _ = metrics
                .tls_certificate_expiry
                .remove_label_values::<&str>(&[]);
            tracing::warn!(
                "the validity of the server.tls certificates could not be read; \
                 hookgate_tls_certificate_expiry_timestamp_seconds is not set"
            );
        }
    }
}

/// Resolves when a reload is asked for; never without a source of reloads.
async fn next_reload(reloads: &mut Option<Reloads>) {
    match reloads {
        Some(r) => match r.requests.recv().await {
            Some(()) => {}
            // The sender is gone: no more reloads will come.
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// Returns once `value` is the last handle to what it points to: every request that took the
/// ingress before a reload swapped it has finished. Polled, since a handle has no drop signal;
/// requests end within the body and store timeouts, and a stuck one stops the wait after
/// [`RETIRE_WAIT_MAX`].
async fn wait_until_unused<T>(value: Arc<T>) {
    let deadline = tokio::time::Instant::now() + RETIRE_WAIT_MAX;
    while Arc::strong_count(&value) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Longest a reload waits for the requests that began before it (see [`wait_until_unused`]).
const RETIRE_WAIT_MAX: Duration = Duration::from_secs(300);

/// Dead-letters the pending deliveries to targets `config` does not have (see
/// [`Store::dead_letter_unconfigured`]), counts them as dead in the metrics and warns once per
/// target.
async fn dead_letter_unconfigured(
    store: &Store,
    metrics: &Metrics,
    config: &Config,
) -> Result<(), StoreError> {
    let configured: Vec<String> = config.targets.keys().cloned().collect();
    for dead in store
        .dead_letter_unconfigured(&configured, now_ms())
        .await?
    {
        metrics
            .deliveries
            .with_label_values(&[&dead.target, "dead"])
            .inc_by(dead.count);
        tracing::warn!(
            target = %dead.target,
            deliveries = dead.count,
            "target `{}` is not in the configuration: its pending deliveries are dead letters \
             now; replay them once it is back (hookgate deliveries replay --dead --target {})",
            dead.target,
            dead.target
        );
    }
    Ok(())
}

async fn prune_loop(
    store: Store,
    retention: Duration,
    dead_retention: Duration,
    stop: CancellationToken,
) {
    loop {
        // Saturating: a retention near the 100-year bound must not wrap into the future.
        let now = now_ms();
        let ago = |d: Duration| now.saturating_sub(d.as_millis().try_into().unwrap_or(i64::MAX));
        let (before, dead_before) = (ago(retention), ago(dead_retention));
        loop {
            match store.prune(before, dead_before).await {
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
    use super::{needs_restart, redact_url};

    #[test]
    fn a_reload_names_the_sections_it_cannot_apply() {
        let config = |listen: &str, retention: &str, secret: &str| {
            crate::config::load_with(
                &format!(
                    r#"
[server]
listen = "{listen}"
admin_listen = "127.0.0.1:9091"
[store]
url = "sqlite://hookgate.db"
retention = "{retention}"
[[endpoints]]
name = "e"
path = "/e"
scheme = "databricks"
secrets = ["{secret}"]
"#
                ),
                &|_: &str| None,
            )
            .unwrap()
        };
        let running = config("127.0.0.1:8080", "7d", "a");
        assert!(needs_restart(&running, &config("127.0.0.1:8080", "7d", "b")).is_empty());
        assert_eq!(
            needs_restart(&running, &config("127.0.0.1:8081", "7d", "a")),
            ["server"]
        );
        assert_eq!(
            needs_restart(&running, &config("127.0.0.1:8081", "1d", "b")),
            ["server", "store"]
        );
    }

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

//! From the (overridden, interpolated) tree to a validated [`Config`]: defaults, per-section
//! deserialization, and every check that needs more than one value (uniqueness, references
//! between routes, targets and endpoints, URL shapes).
//!
//! Each unit (a section, one endpoint, one target, one route) is deserialized on its own and a
//! failure is recorded and skipped, so one run reports every broken unit, not just the first.
//! Names that exist in the file count as known even when their unit failed, so a broken target
//! does not also make every route that names it fail.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::de::{DeError, from_node};
use super::raw::{
    KindName, OneOrMany, RawAdmin, RawEndpoint, RawRetry, RawRoute, RawServer, RawStore,
    RawTargetCommon, TARGET_COMMON_KEYS,
};
use super::tree::{Node, child_path, index_path};
use super::{
    AdminConfig, Config, ConfigError, DatabricksJobConfig, EndpointConfig, GithubConfig,
    GitlabConfig, HttpConfig, JenkinsConfig, LogConfig, MAX_RATE_PER_SEC, MIN_RATE_PER_SEC,
    MLFLOW_BEARER_REFUSED, RetryConfig, RouteConfig, ServerConfig, SlackConfig, StoreConfig,
    TargetConfig, TargetKind, TlsFiles,
};
use crate::secret::Secret;
use crate::verify::Scheme;

/// The top-level keys of `routes.toml`.
pub(crate) const TOP_LEVEL_KEYS: &[&str] = &[
    "server",
    "store",
    "admin",
    "retry",
    "endpoints",
    "targets",
    "routes",
];

/// Paths the gateway serves itself (`/healthz` on both listeners), so no endpoint may take them.
pub(crate) const RESERVED_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// Default concurrency of a target: enough to overlap slow calls without flooding one receiver.
pub(crate) const DEFAULT_CONCURRENCY: usize = 4;

/// Default MLflow timestamp tolerance, as MLflow documents it.
pub(crate) const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// Methods an http target may use. Anything else is almost certainly a typo.
const HTTP_METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

struct Builder {
    errors: Vec<ConfigError>,
}

impl Builder {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn record(&mut self, e: DeError) {
        if let Some(e) = e.into_config_error() {
            self.errors.push(e);
        }
    }

    fn de<T: DeserializeOwned>(&mut self, node: &Node, path: &str) -> Option<T> {
        self.de_with(node, path, |e| e)
    }

    /// Deserialize a table, reporting every bad key, not only the first: serde stops at the
    /// first error, so the offending key is removed and the table tried again until it passes
    /// or an error cannot be pinned to one of its keys. A "missing required key" error for a key
    /// removed that way is a consequence, not news, and is dropped.
    fn de_with<T: DeserializeOwned>(
        &mut self,
        node: &Node,
        path: &str,
        adjust: impl Fn(DeError) -> DeError,
    ) -> Option<T> {
        let Node::Table(entries) = node else {
            return from_node(node, path)
                .map_err(|e| self.record(adjust(e)))
                .ok();
        };
        let mut entries = entries.clone();
        let mut removed: Vec<String> = Vec::new();
        loop {
            let e = match from_node::<T>(&Node::Table(entries.clone()), path) {
                Ok(value) => return removed.is_empty().then_some(value),
                Err(e) => adjust(e),
            };
            let culprit = e.path().and_then(|p| {
                entries.iter().position(|(k, _)| {
                    let key_path = child_path(path, k);
                    p == key_path
                        || p.strip_prefix(&key_path)
                            .is_some_and(|rest| rest.starts_with(['.', '[']))
                })
            });
            let consequence = e.is_missing_key()
                && removed
                    .iter()
                    .any(|k| e.path() == Some(child_path(path, k).as_str()));
            if !consequence {
                self.record(e);
            }
            match culprit {
                Some(i) if !consequence => removed.push(entries.remove(i).0),
                _ => return None,
            }
        }
    }
}

/// Build and validate. Returns every error found.
pub(crate) fn build(root: &Node) -> Result<Config, Vec<ConfigError>> {
    let mut b = Builder { errors: Vec::new() };

    let Node::Table(top) = root else {
        b.error("", "expected a table at the top level");
        return Err(b.errors);
    };
    for (key, value) in top {
        if !TOP_LEVEL_KEYS.contains(&key.as_str()) {
            let mut message = format!("unknown key, expected one of {}", TOP_LEVEL_KEYS.join(", "));
            if let Some(var) = value.env_origin() {
                message.push_str(&format!(" (set by environment variable {var})"));
            }
            b.error(child_path("", key), message);
        }
    }

    let server = build_server(&mut b, root.get("server"));
    let store = build_store(&mut b, root.get("store"));
    let admin = build_admin(&mut b, root.get("admin"));
    let retry = build_global_retry(&mut b, root.get("retry"));
    let (endpoints, endpoint_names) = build_endpoints(&mut b, root.get("endpoints"), server.listen);
    let (targets, target_names) = build_targets(&mut b, root.get("targets"), &retry);
    let routes = build_routes(&mut b, root.get("routes"), &endpoint_names, &target_names);

    if b.errors.is_empty() {
        Ok(Config {
            server,
            store,
            admin,
            retry,
            endpoints,
            targets,
            routes,
        })
    } else {
        Err(b.errors)
    }
}

/// A section that is absent behaves as an empty table.
fn section<T: DeserializeOwned + Default>(b: &mut Builder, node: Option<&Node>, path: &str) -> T {
    node.and_then(|n| b.de(n, path)).unwrap_or_default()
}

fn nonzero(b: &mut Builder, path: &str, d: Duration) {
    if d.is_zero() {
        b.error(path, "must be greater than zero");
    }
}

// ---------------------------------------------------------------------------------------------
// [server], [store], [admin]

fn build_server(b: &mut Builder, node: Option<&Node>) -> ServerConfig {
    let raw: RawServer = section(b, node, "server");
    let d = ServerConfig::default();
    let server = ServerConfig {
        listen: raw.listen.map_or(d.listen, |a| a.0),
        admin_listen: raw.admin_listen.map_or(d.admin_listen, |a| a.0),
        max_body: raw.max_body.map_or(d.max_body, |s| s.0),
        shutdown_grace: raw.shutdown_grace.map_or(d.shutdown_grace, |x| x.0),
        header_read_timeout: raw
            .header_read_timeout
            .map_or(d.header_read_timeout, |x| x.0),
        body_read_timeout: raw.body_read_timeout.map_or(d.body_read_timeout, |x| x.0),
        max_connections: raw.max_connections.unwrap_or(d.max_connections),
        public_url: raw
            .public_url
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty()),
        tls: raw.tls.map(|t| TlsFiles {
            cert: t.cert.trim().into(),
            key: t.key.trim().into(),
            watch: t.watch.map_or(Duration::from_secs(60), |x| x.0),
        }),
    };
    if server.max_body == 0 {
        b.error("server.max_body", "must be greater than zero");
    }
    if server.max_connections == 0 {
        b.error("server.max_connections", "must be at least 1");
    }
    nonzero(b, "server.header_read_timeout", server.header_read_timeout);
    nonzero(b, "server.body_read_timeout", server.body_read_timeout);
    if server.listen == server.admin_listen && server.listen.port() != 0 {
        b.error(
            "server.admin_listen",
            "must differ from server.listen: the admin listener (metrics, admin API) must \
             never share the public ingress",
        );
    } else if let Some(wildcard) = port_taken_by_wildcard(server.listen, server.admin_listen) {
        let (wildcard, covered) = if wildcard.is_ipv4() {
            ("0.0.0.0", "IPv4 address")
        } else {
            (
                "[::]",
                "IPv6 address, and on every IPv4 address too (a dual-stack socket)",
            )
        };
        b.error(
            "server.admin_listen",
            format!(
                "cannot be bound beside server.listen: both use port {}, which {wildcard} takes \
                 on every {covered}; use another port",
                server.listen.port(),
            ),
        );
    }
    if let Some(url) = &server.public_url {
        check_http_url(b, "server.public_url", url);
    }
    if let Some(tls) = &server.tls {
        for (key, path) in [("cert", &tls.cert), ("key", &tls.key)] {
            if path.as_os_str().is_empty() {
                b.error(format!("server.tls.{key}"), "must name a PEM file");
            }
        }
    }
    server
}

/// The wildcard address (`0.0.0.0`, `[::]`) that keeps two different listeners from both being
/// bound, if one does: they share a port, and one listens on every address of a family the
/// other's address is in. `[::]` counts as covering IPv4 too: it does on a dual-stack socket,
/// Linux's default. An IPv4-mapped IPv6 address (`[::ffff:127.0.0.1]`) is its IPv4 address.
/// Port 0 picks a free port for each listener, so it never clashes.
fn port_taken_by_wildcard(
    a: std::net::SocketAddr,
    b: std::net::SocketAddr,
) -> Option<std::net::IpAddr> {
    if a.port() != b.port() || a.port() == 0 {
        return None;
    }
    let (a, b) = (a.ip().to_canonical(), b.ip().to_canonical());
    let covers = |wildcard: std::net::IpAddr, other: std::net::IpAddr| {
        wildcard.is_unspecified() && (wildcard.is_ipv6() || other.is_ipv4())
    };
    if covers(a, b) {
        Some(a)
    } else if covers(b, a) {
        Some(b)
    } else {
        None
    }
}

fn build_store(b: &mut Builder, node: Option<&Node>) -> StoreConfig {
    let raw: RawStore = section(b, node, "store");
    let d = StoreConfig::default();
    let retention = raw.retention.map_or(d.retention, |x| x.0);
    let store = StoreConfig {
        url: raw.url.map_or(d.url, |u| u.expose().trim().to_string()),
        retention,
        // Unset, it is never shorter than `retention` (a file with a long `retention` and no
        // `dead_retention` stays valid).
        dead_retention: raw
            .dead_retention
            .map_or(d.dead_retention.max(retention), |x| x.0),
    };
    let supported = ["sqlite:", "postgres://", "postgresql://"];
    if store.url.is_empty() {
        b.error("store.url", "must not be empty");
    } else if !supported.iter().any(|p| store.url.starts_with(p)) {
        // The URL may carry a password: describe, do not quote.
        b.error(
            "store.url",
            "unsupported database URL, expected sqlite://FILE or postgres://...",
        );
    } else if let Err(e) = crate::outbox::Store::check_url(&store.url) {
        // What opening the store refuses before it connects (an sslmode that needs TLS, which
        // this build lacks): refused here too, so that `hookgate check` reports it. The error
        // never quotes the URL.
        let message = match e {
            crate::outbox::StoreError::InvalidUrl(why) => why,
            other => other.to_string(),
        };
        b.error("store.url", message);
    }
    nonzero(b, "store.retention", store.retention);
    if store.dead_retention < store.retention {
        b.error(
            "store.dead_retention",
            format!(
                "must be at least store.retention ({}): an event with a dead letter is kept at \
                 least as long as a delivered one",
                humantime::format_duration(store.retention)
            ),
        );
    }
    store
}

fn build_admin(b: &mut Builder, node: Option<&Node>) -> AdminConfig {
    let raw: RawAdmin = section(b, node, "admin");
    AdminConfig {
        token: non_empty(raw.token),
    }
}

/// `Some("")` → `None`: `"${VAR:-}"` is how a file says "optional secret".
fn non_empty(secret: Option<Secret>) -> Option<Secret> {
    secret.filter(|s| !s.expose().trim().is_empty())
}

// ---------------------------------------------------------------------------------------------
// [retry]

fn merge_retry(base: &RetryConfig, raw: &RawRetry) -> RetryConfig {
    RetryConfig {
        timeout: raw.timeout.map_or(base.timeout, |x| x.0),
        initial: raw.initial.map_or(base.initial, |x| x.0),
        max_delay: raw.max_delay.map_or(base.max_delay, |x| x.0),
        max_attempts: raw.max_attempts.unwrap_or(base.max_attempts),
        max_age: raw.max_age.map_or(base.max_age, |x| x.0),
        max_retry_after: raw.max_retry_after.map_or(base.max_retry_after, |x| x.0),
    }
}

/// Check a retry policy. `blame(key)` is the path to report a bad `key` at, or `None` when the
/// key was not set at this level (it was checked where it was set).
fn check_retry(b: &mut Builder, retry: &RetryConfig, blame: &dyn Fn(&str) -> Option<String>) {
    for (key, value) in [
        ("timeout", retry.timeout),
        ("initial", retry.initial),
        ("max_age", retry.max_age),
    ] {
        if value.is_zero()
            && let Some(path) = blame(key)
        {
            b.error(path, "must be greater than zero");
        }
    }
    if retry.max_attempts == 0
        && let Some(path) = blame("max_attempts")
    {
        b.error(path, "must be at least 1");
    }
    if retry.initial > retry.max_delay
        && let Some(path) = blame("max_delay").or_else(|| blame("initial"))
    {
        b.error(path, "the initial delay must not exceed max_delay");
    }
}

fn build_global_retry(b: &mut Builder, node: Option<&Node>) -> RetryConfig {
    let raw: RawRetry = section(b, node, "retry");
    let retry = merge_retry(&RetryConfig::default(), &raw);
    check_retry(b, &retry, &|key| Some(format!("retry.{key}")));
    retry
}

// ---------------------------------------------------------------------------------------------
// [[endpoints]]

/// Entries of a `[[section]]` list; reports a table or scalar in its place.
fn list<'a>(b: &mut Builder, node: Option<&'a Node>, key: &str) -> &'a [Node] {
    match node {
        None => &[],
        Some(Node::Array(items)) => items,
        Some(other) => {
            b.error(
                key,
                format!(
                    "expected a list of tables ([[{key}]]), found {}",
                    other.describe()
                ),
            );
            &[]
        }
    }
}

/// The fallbacks of the shipped `routes.toml` (`${DATABRICKS_WEBHOOK_SECRET:-demo-...}`), which
/// let the quickstart run with no set-up. Anyone can read them, so an ingress reachable beyond
/// this machine refuses them: a deployment that forgot the variable fails at start instead of
/// accepting events anyone can sign.
pub(crate) const DEMO_SECRETS: &[&str] = &["demo-databricks-secret", "demo-mlflow-secret"];

fn build_endpoints(
    b: &mut Builder,
    node: Option<&Node>,
    listen: std::net::SocketAddr,
) -> (Vec<EndpointConfig>, BTreeSet<String>) {
    let items = list(b, node, "endpoints");
    let mut endpoints = Vec::new();
    // Every name in the file, also of endpoints that failed, for route references.
    let mut known = BTreeSet::new();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    let mut paths: BTreeMap<String, usize> = BTreeMap::new();

    let wrong_type = matches!(node, Some(n) if !matches!(n, Node::Array(_)));
    if items.is_empty() && !wrong_type {
        b.error(
            "endpoints",
            "at least one [[endpoints]] entry is required (the gateway would accept nothing)",
        );
    }

    for (i, item) in items.iter().enumerate() {
        let path = index_path("endpoints", i);
        if let Some(name) = item.get("name").and_then(Node::as_str) {
            known.insert(name.to_string());
        }
        let Some(raw) = b.de::<RawEndpoint>(item, &path) else {
            continue;
        };

        let name = raw.name.trim().to_string();
        if name.is_empty() {
            b.error(format!("{path}.name"), "must not be empty");
        } else if let Some(first) = names.insert(name.clone(), i) {
            b.error(
                format!("{path}.name"),
                format!("duplicate endpoint name {name:?} (also endpoints[{first}])"),
            );
        }

        let url_path = raw.path.trim().to_string();
        if let Some(problem) = endpoint_path_problem(&url_path) {
            b.error(format!("{path}.path"), problem);
        } else if let Some(first) = paths.insert(url_path.clone(), i) {
            b.error(
                format!("{path}.path"),
                format!("duplicate endpoint path {url_path:?} (also endpoints[{first}])"),
            );
        }

        if !listen.ip().is_loopback() {
            for (j, secret) in raw.secrets.0.iter().enumerate() {
                if DEMO_SECRETS.contains(&secret.expose()) {
                    b.error(
                        format!("{path}.secrets[{j}]"),
                        format!(
                            "is the demo fallback of the shipped routes.toml, which anyone can \
                             read, and server.listen {listen} is reachable beyond this machine: \
                             set the secret's variable, or listen on 127.0.0.1"
                        ),
                    );
                }
            }
        }

        // Empty entries are how a file leaves a rotation slot unused: `"${OLD_SECRET:-}"`.
        let secrets: Vec<Secret> = raw
            .secrets
            .0
            .into_iter()
            .filter(|s| !s.expose().is_empty())
            .collect();
        let bearer = non_empty(raw.bearer);
        if raw.scheme == Scheme::Mlflow && bearer.is_some() {
            b.error(format!("{path}.bearer"), MLFLOW_BEARER_REFUSED);
        }
        if secrets.is_empty() && bearer.is_none() && !raw.allow_unauthenticated {
            b.error(
                path.clone(),
                "no secret and no bearer token; set allow_unauthenticated = true to accept \
                 unauthenticated requests",
            );
        }

        let tolerance = raw.tolerance.map_or(DEFAULT_TOLERANCE, |d| d.0);
        nonzero(b, &format!("{path}.tolerance"), tolerance);

        endpoints.push(EndpointConfig {
            name,
            path: url_path,
            scheme: raw.scheme,
            secrets,
            bearer,
            tolerance,
            allow_unauthenticated: raw.allow_unauthenticated,
        });
    }
    (endpoints, known)
}

/// Characters of a path that senders percent-encode before sending (WHATWG URL parsers encode
/// `"`, `<`, `>`, `` ` ``, `{` and `}`; Python's requests also `|`, `\` and `^`). The ingress
/// compares the path as it arrives, so a configured path holding one would never match.
const ENCODED_BY_SENDERS: &[char] = &['"', '<', '>', '`', '{', '}', '|', '\\', '^'];

fn endpoint_path_problem(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return Some("must start with /".into());
    }
    if path.contains(['?', '#']) || path.chars().any(char::is_whitespace) {
        return Some("must be a plain URL path (no query, fragment or spaces)".into());
    }
    if !path.is_ascii() || path.contains(ENCODED_BY_SENDERS) {
        let encoded: Vec<String> = ENCODED_BY_SENDERS.iter().map(char::to_string).collect();
        return Some(format!(
            "must be written as senders send it, percent-encoded: {:?} (they encode non-ASCII \
             characters and {}, and requests are matched on the path as sent)",
            percent_encoded(path),
            encoded.join(" ")
        ));
    }
    if path.parse::<http::uri::PathAndQuery>().is_err() {
        return Some("is not a valid URL path".into());
    }
    if RESERVED_PATHS.contains(&path) {
        return Some(format!(
            "is reserved for the gateway itself ({})",
            RESERVED_PATHS.join(", ")
        ));
    }
    None
}

/// `path` as senders send it: each byte of a non-ASCII character, and each character of
/// [`ENCODED_BY_SENDERS`], as `%XX` (upper-case hex, as WHATWG URL parsers and Python write it).
fn percent_encoded(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c.is_ascii() && !ENCODED_BY_SENDERS.contains(&c) {
            out.push(c);
        } else {
            let mut utf8 = [0; 4];
            for byte in c.encode_utf8(&mut utf8).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// [targets.NAME]

fn valid_target_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn build_targets(
    b: &mut Builder,
    node: Option<&Node>,
    global_retry: &RetryConfig,
) -> (BTreeMap<String, TargetConfig>, BTreeSet<String>) {
    let mut targets = BTreeMap::new();
    let mut known = BTreeSet::new();
    let entries: &[(String, Node)] = match node {
        None => &[],
        Some(Node::Table(entries)) => entries,
        Some(other) => {
            b.error(
                "targets",
                format!(
                    "expected a table of targets ([targets.NAME]), found {}",
                    other.describe()
                ),
            );
            &[]
        }
    };
    for (name, node) in entries {
        known.insert(name.clone());
        let path = child_path("targets", name);
        if !valid_target_name(name) {
            b.error(
                path.clone(),
                "invalid target name: use letters, digits, '_', '.' and '-'",
            );
        }
        if let Some(target) = build_target(b, node, &path, global_retry) {
            targets.insert(name.clone(), target);
        }
    }
    (targets, known)
}

fn build_target(
    b: &mut Builder,
    node: &Node,
    path: &str,
    global_retry: &RetryConfig,
) -> Option<TargetConfig> {
    let Node::Table(entries) = node else {
        b.error(
            path,
            format!("expected a table ([{path}]), found {}", node.describe()),
        );
        return None;
    };
    // Two steps: the common keys, then the rest into the kind's own strict struct.
    let (common, rest): (Vec<_>, Vec<_>) = entries
        .iter()
        .cloned()
        .partition(|(k, _)| TARGET_COMMON_KEYS.contains(&k.as_str()));
    let common: RawTargetCommon = b.de(&Node::Table(common), path)?;
    let rest = Node::Table(rest);
    let kind = build_kind(b, common.kind, &rest, path)?;

    let concurrency = common.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
    if concurrency == 0 {
        b.error(format!("{path}.concurrency"), "must be at least 1");
    }
    if let Some(rate) = common.rate {
        // `contains` is false for NaN too.
        if !(MIN_RATE_PER_SEC..=MAX_RATE_PER_SEC).contains(&rate) {
            b.error(
                format!("{path}.rate"),
                "must be between 1/86400 (one message a day) and 1000000 messages per second; \
                 omit it for no limit",
            );
        }
    }

    let raw_retry = common.retry.unwrap_or_default();
    if common.timeout.is_some() && raw_retry.timeout.is_some() {
        b.error(
            format!("{path}.retry.timeout"),
            format!("set either {path}.timeout or {path}.retry.timeout, not both"),
        );
    }
    let mut retry = merge_retry(global_retry, &raw_retry);
    if let Some(timeout) = common.timeout {
        retry.timeout = timeout.0;
    }
    check_retry(b, &retry, &|key| {
        if key == "timeout" && common.timeout.is_some() {
            Some(format!("{path}.timeout"))
        } else {
            let set = match key {
                "timeout" => raw_retry.timeout.is_some(),
                "initial" => raw_retry.initial.is_some(),
                "max_delay" => raw_retry.max_delay.is_some(),
                "max_attempts" => raw_retry.max_attempts.is_some(),
                "max_age" => raw_retry.max_age.is_some(),
                _ => raw_retry.max_retry_after.is_some(),
            };
            set.then(|| format!("{path}.retry.{key}"))
        }
    });

    Some(TargetConfig {
        kind,
        retry,
        concurrency,
        rate_per_sec: common.rate,
    })
}

fn kind_de<T: DeserializeOwned>(b: &mut Builder, rest: &Node, path: &str) -> Option<T> {
    b.de_with(rest, path, |e| e.also_expected(TARGET_COMMON_KEYS))
}

fn build_kind(b: &mut Builder, kind: KindName, rest: &Node, path: &str) -> Option<TargetKind> {
    let key = |k: &str| format!("{path}.{k}");
    Some(match kind {
        KindName::Slack => {
            let c: SlackConfig = kind_de(b, rest, path)?;
            check_required_secret(b, &key("url"), &c.url);
            if !c.url.expose().is_empty() {
                check_http_url(b, &key("url"), c.url.expose());
            }
            if let Some(u) = &c.icon_url {
                check_http_url(b, &key("icon_url"), u);
            }
            if let Some(u) = &c.registry_url {
                check_http_url(b, &key("registry_url"), u);
            }
            TargetKind::Slack(c)
        }
        KindName::Github => {
            let mut c: GithubConfig = kind_de(b, rest, path)?;
            if !valid_repository(&c.repository) {
                b.error(key("repository"), "expected owner/repo");
            }
            check_required_secret(b, &key("token"), &c.token);
            c.api_url = base_url(b, &key("api_url"), &c.api_url);
            if c.event_type.is_some() && c.workflow.is_some() {
                b.error(
                    key("workflow"),
                    "set either event_type (repository_dispatch) or workflow \
                     (workflow_dispatch), not both",
                );
            }
            TargetKind::Github(c)
        }
        KindName::Gitlab => {
            let mut c: GitlabConfig = kind_de(b, rest, path)?;
            if c.project.trim().is_empty() {
                b.error(key("project"), "must not be empty");
            }
            check_required_secret(b, &key("token"), &c.token);
            if c.git_ref.trim().is_empty() {
                b.error(key("ref"), "must not be empty");
            }
            c.base_url = base_url(b, &key("base_url"), &c.base_url);
            TargetKind::Gitlab(c)
        }
        KindName::Jenkins => {
            let mut c: JenkinsConfig = kind_de(b, rest, path)?;
            c.url = base_url(b, &key("url"), &c.url);
            if c.job.trim().is_empty() {
                b.error(key("job"), "must not be empty");
            }
            c.api_token = non_empty(c.api_token);
            c.trigger_token = non_empty(c.trigger_token);
            c.user = c.user.filter(|u| !u.trim().is_empty());
            match (&c.user, &c.api_token) {
                (Some(_), None) => b.error(key("api_token"), "required when user is set"),
                (None, Some(_)) => b.error(key("user"), "required when api_token is set"),
                _ => {}
            }
            TargetKind::Jenkins(c)
        }
        KindName::Http => {
            let mut c: HttpConfig = kind_de(b, rest, path)?;
            check_http_url(b, &key("url"), &c.url);
            c.method = c.method.trim().to_ascii_uppercase();
            if !HTTP_METHODS.contains(&c.method.as_str()) {
                b.error(
                    key("method"),
                    format!(
                        "unknown HTTP method, expected one of {}",
                        HTTP_METHODS.join(", ")
                    ),
                );
            }
            for (name, value) in &c.headers {
                let header_path = child_path(&key("headers"), name);
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    b.error(header_path, "invalid header name");
                } else if http::HeaderValue::from_str(value.expose()).is_err() {
                    b.error(
                        header_path,
                        "invalid header value (control characters or non-ASCII)",
                    );
                }
            }
            c.signing_secret = non_empty(c.signing_secret);
            TargetKind::Http(c)
        }
        KindName::DatabricksJob => {
            let mut c: DatabricksJobConfig = kind_de(b, rest, path)?;
            c.workspace_url = base_url(b, &key("workspace_url"), &c.workspace_url);
            if c.job_id <= 0 {
                b.error(key("job_id"), "must be a positive job id");
            }
            check_required_secret(b, &key("token"), &c.token);
            TargetKind::DatabricksJob(c)
        }
        KindName::Log => TargetKind::Log(kind_de::<LogConfig>(b, rest, path)?),
    })
}

fn check_required_secret(b: &mut Builder, path: &str, secret: &Secret) {
    if secret.expose().trim().is_empty() {
        b.error(path, "must not be empty");
    }
}

fn valid_repository(repository: &str) -> bool {
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    matches!(repository.split_once('/'), Some((owner, repo)) if part_ok(owner) && part_ok(repo))
}

/// Check an http(s) URL; never quotes it (a Slack URL is a credential).
fn check_http_url(b: &mut Builder, path: &str, url: &str) {
    if let Some(problem) = http_url_problem(url) {
        b.error(path, problem);
    }
}

/// A URL that paths are appended to: checked, and without trailing `/` so that
/// `{workspace_url}/api/2.1/jobs/run-now` has exactly one.
fn base_url(b: &mut Builder, path: &str, url: &str) -> String {
    let url = url.trim().trim_end_matches('/').to_string();
    check_http_url(b, path, &url);
    url
}

pub(crate) fn http_url_problem(url: &str) -> Option<&'static str> {
    let url = url.trim();
    if url.is_empty() {
        return Some("must not be empty");
    }
    let Ok(uri) = url.parse::<http::Uri>() else {
        return Some("is not a valid URL");
    };
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(_) => return Some("must be an http:// or https:// URL"),
        None => return Some("must be an absolute http:// or https:// URL"),
    }
    let Some(authority) = uri.authority() else {
        return Some("has no host");
    };
    if authority.host().is_empty() {
        return Some("has no host");
    }
    if authority.as_str().contains('@') {
        // Credentials in a URL end up in logs and `Debug` output; every kind has a
        // secret-typed key for them instead.
        return Some(
            "must not contain credentials (user:password@); use the target's token keys or headers",
        );
    }
    None
}

// ---------------------------------------------------------------------------------------------
// [[routes]]

fn build_routes(
    b: &mut Builder,
    node: Option<&Node>,
    endpoints: &BTreeSet<String>,
    targets: &BTreeSet<String>,
) -> Vec<RouteConfig> {
    let items = list(b, node, "routes");
    let mut routes = Vec::new();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();

    for (i, item) in items.iter().enumerate() {
        let path = index_path("routes", i);
        let Some(raw) = b.de::<RawRoute>(item, &path) else {
            continue;
        };
        let key = |k: &str| format!("{path}.{k}");

        let name = match raw.name {
            Some(name) if name.trim().is_empty() => {
                b.error(
                    key("name"),
                    "must not be empty (omit it for a default name)",
                );
                path.clone()
            }
            Some(name) => {
                if let Some(first) = names.insert(name.clone(), i) {
                    b.error(
                        key("name"),
                        format!("duplicate route name {name:?} (also routes[{first}])"),
                    );
                }
                name
            }
            None => path.clone(),
        };

        let events = filter_list(b, &key("events"), raw.events).unwrap_or_else(|| vec!["*".into()]);
        let models = filter_list(b, &key("models"), raw.models).unwrap_or_default();
        for (j, glob) in models.iter().enumerate() {
            if let Err(e) = globset::Glob::new(glob) {
                // The kind only: the full error repeats the pattern.
                b.error(
                    index_path(&key("models"), j),
                    format!("invalid glob: {}", e.kind()),
                );
            }
        }
        let route_endpoints = filter_list(b, &key("endpoints"), raw.endpoints).unwrap_or_default();
        for (j, endpoint) in route_endpoints.iter().enumerate() {
            if !endpoints.contains(endpoint) {
                b.error(
                    index_path(&key("endpoints"), j),
                    format!("unknown endpoint {endpoint:?}{}", known_list(endpoints)),
                );
            }
        }
        let from_stage = filter_list(b, &key("from_stage"), raw.from_stage).unwrap_or_default();
        let to_stage = filter_list(b, &key("to_stage"), raw.to_stage).unwrap_or_default();
        let aliases = filter_list(b, &key("aliases"), raw.aliases).unwrap_or_default();

        let tags = match raw.tags {
            Some(tags) if tags.0.is_empty() => {
                b.error(
                    key("tags"),
                    "empty: it would match nothing; omit the key to not filter on tags",
                );
                Vec::new()
            }
            Some(tags) => {
                for (k, _) in &tags.0 {
                    if k.is_empty() {
                        b.error(key("tags"), "a tag key must not be empty");
                    }
                }
                tags.0
            }
            None => Vec::new(),
        };

        let mut to: Vec<String> = Vec::new();
        if raw.to.0.is_empty() {
            b.error(key("to"), "at least one target is required");
        }
        for (j, target) in raw.to.0.into_iter().enumerate() {
            if !targets.contains(&target) {
                b.error(
                    index_path(&key("to"), j),
                    format!("unknown target {target:?}{}", known_list(targets)),
                );
            }
            // A target gets an event once, however often it is named.
            if !to.contains(&target) {
                to.push(target);
            }
        }

        routes.push(RouteConfig {
            name,
            events,
            models,
            endpoints: route_endpoints,
            from_stage,
            to_stage,
            aliases,
            tags,
            to,
        });
    }
    routes
}

/// A route filter list: absent is `None` (no filter); present must be non-empty and without
/// empty entries, because an empty list would read as "match nothing" but act as "match all".
fn filter_list(
    b: &mut Builder,
    path: &str,
    list: Option<OneOrMany<String>>,
) -> Option<Vec<String>> {
    let list = list?.0;
    if list.is_empty() {
        b.error(
            path,
            "empty: it would match nothing; omit the key to not filter on it",
        );
    }
    for (j, item) in list.iter().enumerate() {
        if item.trim().is_empty() {
            b.error(index_path(path, j), "must not be empty");
        }
    }
    Some(list)
}

fn known_list(names: &BTreeSet<String>) -> String {
    if names.is_empty() {
        " (none are defined)".into()
    } else {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        format!(" (known: {})", names.join(", "))
    }
}

//! Configuration: `routes.toml` + `HOOKGATE_*` environment overrides → a validated [`Config`].
//!
//! Built once at start (and on reload) and never re-read while serving, so every mistake in the
//! file is found before the first request. The pipeline, one submodule per step:
//!
//! 1. `tree`: parse the TOML into an untyped tree that knows every value's key path, and merge
//!    the overrides `HOOKGATE_<SECTION>__<KEY>=value` into it (only names with a `__` after the
//!    prefix are overrides, so `HOOKGATE_CONFIG` or `HOOKGATE_ADMIN_TOKEN` are not).
//! 2. `interp`: expand `${VAR}`, `${VAR:-default}` and `$$` in every string, from the file or
//!    from an override.
//! 3. `de` + `raw`: deserialize each unit (section, endpoint, target, route) with errors that
//!    name their key path and never a value.
//! 4. `build`: defaults and whole-file validation (unique names, references, URLs, globs).
//! 5. `summary`: the text `hookgate check` prints.
//!
//! Values: durations are humantime strings (`"30s"`, `"7d"`, `"1h 30m"`), sizes are strings
//! (`"256KiB"`, `"1MB"`) or integers (bytes), addresses are `IP:port`. Scalars convert to the
//! type a key needs, so a number or boolean may be given as a string (`"${ATTEMPTS:-5}"`, or any
//! override value) and an override may set a list as `[a, b]`.
//!
//! Finding overrides: when the environment can be listed ([`load`], [`load_all`],
//! [`Env::process`], [`Env::from_vars`]) every `HOOKGATE_*__*` variable is applied and one naming
//! an unknown key is an error. A bare lookup function ([`load_with`], [`Env::from_fn`]) cannot be
//! listed, so the variable of every key that can exist is asked for instead; misspelt variables
//! then go unnoticed. Segments match keys case-insensitively with `_` standing for `-` and `.`
//! (`HOOKGATE_TARGETS__ML_SLACK__URL` → `targets.ml-slack.url`); a number indexes a list
//! (`HOOKGATE_ENDPOINTS__0__BEARER`).
//!
//! Every error carries a key path (`endpoints[1].scheme`, `targets.ml-slack.url`) and no value:
//! any string may have been a secret. [`load_all`] and [`load_str`] report every error found;
//! [`load`] and [`load_with`] fold them into one [`ConfigError`].

mod build;
mod de;
mod interp;
mod raw;
mod summary;
mod tree;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::secret::Secret;
use crate::verify::{EndpointAuth, Scheme};

pub use tree::Env;

/// A configuration error, naming the key path it is about (`targets.ml-slack.url`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    /// This error as it reads after the name of its file (`FILE: ...`, the way `hookgate check`
    /// and start-up print it). An error about the file as a whole (it cannot be read, it is not
    /// TOML) has the file itself as its path, which is then left out rather than named twice.
    pub fn in_file(&self, file: &Path) -> String {
        if self.path == file.display().to_string() {
            self.message.clone()
        } else {
            self.to_string()
        }
    }
}

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub admin: AdminConfig,
    pub retry: RetryConfig,
    pub endpoints: Vec<EndpointConfig>,
    pub targets: BTreeMap<String, TargetConfig>,
    pub routes: Vec<RouteConfig>,
}

/// `[server]`: the two listeners and their limits.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Webhook ingress (and `/healthz`).
    pub listen: SocketAddr,
    /// `/metrics`, `/healthz`, `/readyz`, `/admin/*`; never public. Differs from `listen`.
    pub admin_listen: SocketAddr,
    /// Largest accepted request body, in bytes (> 0).
    pub max_body: u64,
    pub shutdown_grace: Duration,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    /// At least 1.
    pub max_connections: usize,
    /// The gateway's public base URL, without a trailing `/` (for messages and `explain`).
    pub public_url: Option<String>,
    /// `server.tls`: the ingress speaks HTTPS with this certificate. The admin listener stays
    /// plain HTTP (it is never public).
    pub tls: Option<TlsFiles>,
}

/// `server.tls = { cert = "...", key = "..." }`: PEM files, relative paths from the working
/// directory. Only the paths live here; the files are read (and read again on reload) when the
/// configuration is compiled, see `ingress::tls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: std::path::PathBuf,
    /// The private key of the leaf certificate (PKCS#8, PKCS#1 or SEC1).
    pub key: std::path::PathBuf,
    /// How often the running gateway reads the files again to pick up a renewal (default 1
    /// minute); zero: only at start and on reload.
    pub watch: Duration,
}

/// `Debug` is written by hand: a `postgres://` URL may carry a password.
#[derive(Clone, PartialEq)]
pub struct StoreConfig {
    /// `sqlite:...` or `postgres://...`; may contain a password, so print [`StoreConfig`]
    /// with `{:?}` (redacted) rather than this field.
    pub url: String,
    /// Events older than this are pruned once every delivery is delivered.
    pub retention: Duration,
    /// Events older than this are pruned once no delivery is pending (dead letters go with
    /// them); at least `retention`.
    pub dead_retention: Duration,
}

/// `[admin]`.
#[derive(Debug, Clone, Default)]
pub struct AdminConfig {
    /// Bearer token for `/admin/*`; `None` (empty in the file) turns the admin API off.
    pub token: Option<Secret>,
}

/// A retry policy: `[retry]`, or a target's merged copy. `max_attempts` ≥ 1 and
/// `initial` ≤ `max_delay` are checked at load.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    pub timeout: Duration,
    pub initial: Duration,
    pub max_delay: Duration,
    pub max_attempts: u32,
    pub max_age: Duration,
    pub max_retry_after: Duration,
}

/// One `[[endpoints]]` entry. `secrets` holds no empty strings and `bearer` is never empty;
/// both empty only when `allow_unauthenticated` is set.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    pub name: String,
    pub path: String,
    pub scheme: Scheme,
    pub secrets: Vec<Secret>,
    pub bearer: Option<Secret>,
    pub tolerance: Duration,
    pub allow_unauthenticated: bool,
}

impl EndpointConfig {
    pub fn auth(&self) -> EndpointAuth {
        EndpointAuth {
            scheme: self.scheme,
            secrets: self.secrets.clone(),
            bearer: self.bearer.clone(),
            tolerance: self.tolerance,
        }
    }
}

/// One `[targets.NAME]` table.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    pub kind: TargetKind,
    /// The global `[retry]` with this target's `retry` sub-table (and `timeout`) applied.
    pub retry: RetryConfig,
    /// Deliveries in flight at once for this target (default 4, ≥ 1).
    pub concurrency: usize,
    /// Messages per second (`rate`), if limited; from [`MIN_RATE_PER_SEC`] to
    /// [`MAX_RATE_PER_SEC`].
    pub rate_per_sec: Option<f64>,
}

/// The slowest `rate` a target may have: one message a day. A slower one is a mistake (a
/// delivery would wait longer than any retry policy lets it live), and pacing intervals stay
/// within what a `Duration` holds.
pub const MIN_RATE_PER_SEC: f64 = 1.0 / 86_400.0;

/// The fastest `rate` a target may have: far more than one gateway sends, so a higher one would
/// limit nothing (omitting `rate` says that).
pub const MAX_RATE_PER_SEC: f64 = 1_000_000.0;

/// Why an MLflow endpoint takes no `bearer`, for `hookgate check` and `hookgate webhooks`.
pub const MLFLOW_BEARER_REFUSED: &str = "MLflow cannot send an Authorization header, so no \
    request would ever pass: remove `bearer` (the endpoint's secret signs every request)";

#[derive(Debug, Clone)]
pub enum TargetKind {
    Slack(SlackConfig),
    Github(GithubConfig),
    Gitlab(GitlabConfig),
    Jenkins(JenkinsConfig),
    Http(HttpConfig),
    DatabricksJob(DatabricksJobConfig),
    Log(LogConfig),
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    pub url: Secret,
    #[serde(default)]
    pub blocks: bool,
    pub username: Option<String>,
    pub icon_emoji: Option<String>,
    pub icon_url: Option<String>,
    pub registry_url: Option<String>,
    pub text: Option<String>,
    pub body: Option<String>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    pub repository: String,
    pub token: Secret,
    #[serde(default = "default_github_api")]
    pub api_url: String,
    pub event_type: Option<String>,
    pub workflow: Option<String>,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    #[serde(default)]
    pub client_payload: BTreeMap<String, String>,
}

fn default_github_api() -> String {
    "https://api.github.com".into()
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitlabConfig {
    pub project: String,
    pub token: Secret,
    #[serde(rename = "ref")]
    pub git_ref: String,
    #[serde(default = "default_gitlab_url")]
    pub base_url: String,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

fn default_gitlab_url() -> String {
    "https://gitlab.com".into()
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JenkinsConfig {
    pub url: String,
    pub job: String,
    pub user: Option<String>,
    pub api_token: Option<Secret>,
    pub trigger_token: Option<Secret>,
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    pub body: Option<String>,
    pub signing_secret: Option<Secret>,
}

fn default_method() -> String {
    "POST".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParameterStyle {
    JobParameters,
    NotebookParams,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabricksJobConfig {
    pub workspace_url: String,
    pub job_id: i64,
    pub token: Secret,
    #[serde(default = "default_parameter_style")]
    pub parameters: ParameterStyle,
    pub event_message: Option<String>,
}

fn default_parameter_style() -> ParameterStyle {
    ParameterStyle::JobParameters
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub path: Option<std::path::PathBuf>,
}

/// One `[[routes]]` entry. An empty list means "no filter on this"; `events` defaults to
/// `["*"]`, `name` to `routes[i]`; `to` is non-empty, de-duplicated and names existing targets.
/// A tag `(key, None)` matches any value.
#[derive(Debug, Clone, Default)]
pub struct RouteConfig {
    pub name: String,
    pub events: Vec<String>,
    pub models: Vec<String>,
    pub endpoints: Vec<String>,
    pub from_stage: Vec<String>,
    pub to_stage: Vec<String>,
    pub aliases: Vec<String>,
    pub tags: Vec<(String, Option<String>)>,
    pub to: Vec<String>,
}

/// The documented defaults of `[server]`.
impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            max_body: 256 * 1024,
            shutdown_grace: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 1024,
            public_url: None,
            tls: None,
        }
    }
}

/// The documented defaults of `[store]`.
impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: "sqlite://hookgate.db".into(),
            retention: Duration::from_secs(7 * 24 * 3600),
            dead_retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// The documented defaults of `[retry]`.
impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            timeout: Duration::from_secs(15),
            initial: Duration::from_secs(1),
            max_delay: Duration::from_secs(10 * 60),
            max_attempts: 12,
            max_age: Duration::from_secs(24 * 3600),
            max_retry_after: Duration::from_secs(3600),
        }
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &summary::redact_url(&self.url))
            .field("retention", &self.retention)
            .field("dead_retention", &self.dead_retention)
            .finish()
    }
}

/// Every error found in a configuration, in the order found (at least one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The errors, in the order found.
    pub fn iter(&self) -> impl Iterator<Item = &ConfigError> {
        self.0.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The first error, with the others appended to its message one per line, so a caller that
/// shows one `ConfigError` still shows everything.
impl From<ConfigErrors> for ConfigError {
    fn from(errors: ConfigErrors) -> Self {
        let mut all = errors.0.into_iter();
        let mut first = all.next().unwrap_or_else(|| ConfigError {
            path: String::new(),
            message: "invalid configuration".into(),
        });
        for other in all {
            first.message.push('\n');
            first.message.push_str(&other.to_string());
        }
        first
    }
}

/// The path named by errors about the text as a whole when it did not come from a file.
const TEXT_SOURCE: &str = "<config>";

/// Load, interpolate and validate a configuration file with the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_all(path).map_err(ConfigError::from)
}

/// Like [`load`], but returns every error (for `hookgate check`).
///
/// Every `HOOKGATE_*__*` variable of the process is an override; one that names an unknown key
/// is an error, so a misspelt variable in a deployment manifest does not go unnoticed.
pub fn load_all(path: &Path) -> Result<Config, ConfigErrors> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            path: source.clone(),
            message: format!("cannot read configuration file: {e}"),
        }])
    })?;
    load_source(&text, &Env::process(), &source)
}

/// Load from TOML text, looking variables up with `env` (tests inject it).
///
/// A lookup function cannot list variables, so overrides are found by asking it for the variable
/// of every key that can exist: the keys of every section, endpoint, target (of its kind) and
/// route in the text, and every key present in the text (entries of `headers`, `inputs`, ...).
/// Use [`load_str`] with [`Env::from_vars`] to also reject unknown override variables.
pub fn load_with(
    toml_text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    load_str(toml_text, &Env::from_fn(env)).map_err(ConfigError::from)
}

/// Load from TOML text with an [`Env`], returning every error found.
pub fn load_str(toml_text: &str, env: &Env) -> Result<Config, ConfigErrors> {
    load_source(toml_text, env, TEXT_SOURCE)
}

fn load_source(text: &str, env: &Env, source: &str) -> Result<Config, ConfigErrors> {
    let mut root = tree::parse_toml(text).map_err(|message| {
        ConfigErrors(vec![ConfigError {
            path: source.to_string(),
            message,
        }])
    })?;
    let mut errors = Vec::new();
    for ov in overrides(&root, env, &mut errors) {
        if let Err(e) = tree::apply_override(&mut root, &ov) {
            errors.push(e);
        }
    }
    interp::interpolate_tree(&mut root, "", &|name| env.var(name), &mut errors);
    match build::build(&root) {
        Ok(config) if errors.is_empty() => Ok(config),
        Ok(_) => Err(ConfigErrors(errors)),
        Err(more) => {
            errors.extend(more);
            Err(ConfigErrors(errors))
        }
    }
}

/// The overrides present in `env`, in a stable order.
fn overrides(root: &tree::Node, env: &Env, errors: &mut Vec<ConfigError>) -> Vec<tree::Override> {
    let mut found = Vec::new();
    match env.names() {
        Some(names) => {
            let mut names = names.to_vec();
            names.sort();
            for name in names {
                let Some(value) = env.var(&name) else {
                    continue;
                };
                match tree::parse_override(&name, &value) {
                    Some(Ok(ov)) => found.push(ov),
                    Some(Err(e)) => errors.push(e),
                    None => {}
                }
            }
        }
        None => {
            for segments in override_candidates(root) {
                for name in tree::override_names(&segments) {
                    if let Some(value) = env.var(&name) {
                        found.push(tree::Override {
                            var: name,
                            segments,
                            value,
                        });
                        break;
                    }
                }
            }
        }
    }
    found
}

/// Every key path an override could set, given the sections, endpoints, targets and routes the
/// text has (the lookup-only environment cannot create new ones).
fn override_candidates(root: &tree::Node) -> BTreeSet<Vec<String>> {
    use de::fields_of;
    use raw::*;

    let mut out = BTreeSet::new();
    let mut add = |prefix: &[String], fields: &[&str]| {
        for field in fields {
            let mut path = prefix.to_vec();
            path.push(field.to_string());
            out.insert(path);
        }
    };
    let s = |x: &str| x.to_string();
    add(&[s("server")], fields_of::<RawServer>());
    add(&[s("store")], fields_of::<RawStore>());
    add(&[s("admin")], fields_of::<RawAdmin>());
    add(&[s("retry")], fields_of::<RawRetry>());
    if let Some(tree::Node::Array(items)) = root.get("endpoints") {
        for i in 0..items.len() {
            add(&[s("endpoints"), i.to_string()], fields_of::<RawEndpoint>());
        }
    }
    if let Some(tree::Node::Array(items)) = root.get("routes") {
        for i in 0..items.len() {
            add(&[s("routes"), i.to_string()], fields_of::<RawRoute>());
        }
    }
    if let Some(tree::Node::Table(targets)) = root.get("targets") {
        let kind_fields: [&[&str]; 7] = [
            fields_of::<SlackConfig>(),
            fields_of::<GithubConfig>(),
            fields_of::<GitlabConfig>(),
            fields_of::<JenkinsConfig>(),
            fields_of::<HttpConfig>(),
            fields_of::<DatabricksJobConfig>(),
            fields_of::<LogConfig>(),
        ];
        for (name, _) in targets {
            let prefix = [s("targets"), name.clone()];
            // `retry` is a sub-table: its keys are added below.
            let common: Vec<&str> = TARGET_COMMON_KEYS
                .iter()
                .copied()
                .filter(|k| *k != "retry")
                .collect();
            add(&prefix, &common);
            add(
                &[s("targets"), name.clone(), s("retry")],
                fields_of::<RawRetry>(),
            );
            for fields in kind_fields {
                add(&prefix, fields);
            }
        }
    }
    let mut leaves = Vec::new();
    tree::leaf_paths(root, &mut Vec::new(), &mut leaves);
    out.extend(leaves);
    out
}

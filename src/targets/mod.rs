//! Dispatch stage, targets: turn one stored event into the exact outbound call for one target,
//! send it, and classify the answer.
//!
//! Each kind (`slack`, `github`, `gitlab`, `jenkins`, `http`, `databricks_job`, `log`) is one
//! small type in its own file. Invariants:
//!
//! - [`Targets::build`] validates everything once, at start (or reload): URLs are parsed, every
//!   template is compiled *and* rendered against a built-in sample event, limits that a remote API
//!   enforces (GitHub's 10 `client_payload` keys, 25 inputs) are checked. A bad file fails with a
//!   [`ConfigError`] naming the key (`targets.NAME.text`), never at delivery time.
//! - [`Target::prepare`] is pure: (target, event, event id, clock value) → the exact request. The
//!   dispatcher sends what `prepare` built, and `hookgate explain` prints it (via
//!   [`OutboundRequest::redacted`]), so what an operator sees is what is sent.
//! - Secrets (webhook URLs, tokens, signing keys) never reach an error, a reason, `Debug`,
//!   `Display` or [`RedactedRequest`]: the request carries which of its parts are sensitive.
//! - [`Target::deliver`] always returns a classified [`Outcome`] (see [`crate::dispatch::retry`]);
//!   redirects are never followed, and a reason never contains a URL.
//!
//! Templates and their context are described in [`template`].

mod databricks_job;
mod github;
mod gitlab;
mod http;
mod jenkins;
mod log;
mod slack;
pub mod template;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ::http::Method;
use bytes::Bytes;

use crate::config::{ConfigError, ConfigErrors, RetryConfig, TargetConfig, TargetKind};
use crate::dispatch::retry::{Outcome, TransportError, classify_status, classify_transport};
use crate::event::Event;

pub use template::RenderError;
use template::{Render, Templates};

/// `User-Agent` of every outbound call (and GitHub's required header).
pub const USER_AGENT: &str = concat!("hookgate/", env!("CARGO_PKG_VERSION"));

/// How much of a response body is read for the reason snippet. The classifier keeps far less;
/// reading a little more lets short bodies finish so the connection can be reused.
const SNIPPET_READ_BYTES: usize = 2048;

/// What is shown instead of a secret.
pub const REDACTED: &str = "[redacted]";

/// Everything a target needs to know about one delivery attempt.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryContext<'a> {
    pub event: &'a Event,
    /// The gateway's id for the stored event: stable across retries (idempotency keys use it).
    pub event_id: &'a str,
    /// Name of the endpoint the event came in on.
    pub endpoint: &'a str,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When an operator put the delivery back in the queue (ms), if this attempt follows such a
    /// replay; `None` in the delivery's first cycle of attempts.
    pub replayed_at_ms: Option<i64>,
    /// The clock, read by the caller so that `prepare` stays pure (signing timestamps, log `ts`).
    pub now_unix: i64,
}

impl DeliveryContext<'_> {
    /// The key a receiver can de-duplicate this delivery by: the same on every retry, so a retry
    /// is never taken for a second event; after a replay a new one, so the replay is not taken
    /// for a retry of what was already delivered (a Databricks run-now with a known token starts
    /// nothing). The event id in the first cycle.
    pub fn idempotency_key(&self) -> String {
        match self.replayed_at_ms {
            None => self.event_id.to_string(),
            Some(at) => format!("{}:replay-{at}", self.event_id),
        }
    }
}

/// One HTTP request, exactly as it will be sent, plus which parts of it must not be shown.
#[derive(Clone)]
pub struct OutboundRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// What to show instead of `url` when the URL itself carries a secret.
    redacted_url: Option<String>,
    /// Lowercase names of headers whose values are secret.
    sensitive_headers: Vec<String>,
    /// What to show instead of `body` when the body carries a secret.
    redacted_body: Option<String>,
}

impl OutboundRequest {
    pub(crate) fn new(method: Method, url: impl Into<String>) -> Self {
        OutboundRequest {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Bytes::new(),
            redacted_url: None,
            sensitive_headers: Vec::new(),
            redacted_body: None,
        }
    }

    /// Add a header; a later header of the same name (any case) replaces an earlier one, so
    /// configured headers can override defaults such as `Content-Type`.
    pub(crate) fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.sensitive_headers
            .retain(|n| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Add a header whose value is never shown.
    pub(crate) fn secret_header(self, name: &str, value: impl Into<String>) -> Self {
        let mut this = self.header(name, value);
        this.sensitive_headers.push(name.to_ascii_lowercase());
        this
    }

    pub(crate) fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    pub(crate) fn redact_url_as(mut self, shown: String) -> Self {
        self.redacted_url = Some(shown);
        self
    }

    pub(crate) fn redact_body_as(mut self, shown: String) -> Self {
        self.redacted_body = Some(shown);
        self
    }

    /// The value of a header (first match, any case).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The request with every secret replaced by `[redacted]`: safe to print, log or serialize.
    pub fn redacted(&self) -> RedactedRequest {
        RedactedRequest {
            method: self.method.to_string(),
            url: self
                .redacted_url
                .clone()
                .unwrap_or_else(|| self.url.clone()),
            headers: self
                .headers
                .iter()
                .map(|(n, v)| {
                    let shown = if self.sensitive_headers.contains(&n.to_ascii_lowercase()) {
                        REDACTED.to_string()
                    } else {
                        v.clone()
                    };
                    (n.clone(), shown)
                })
                .collect(),
            body: self
                .redacted_body
                .clone()
                .unwrap_or_else(|| String::from_utf8_lossy(&self.body).into_owned()),
        }
    }
}

impl fmt::Debug for OutboundRequest {
    // Never the real thing: a Debug of a request must be as safe to log as its Display.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.redacted();
        f.debug_struct("OutboundRequest")
            .field("method", &r.method)
            .field("url", &r.url)
            .field("headers", &r.headers)
            .field("body", &r.body)
            .finish()
    }
}

impl fmt::Display for OutboundRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.redacted().fmt(f)
    }
}

/// An [`OutboundRequest`] with its secrets replaced, for `explain`, logs and dead letters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RedactedRequest {
    pub method: String,
    pub url: String,
    /// Serialized as an object, in sending order.
    #[serde(serialize_with = "headers_as_map")]
    pub headers: Vec<(String, String)>,
    /// The body as UTF-8 (lossy).
    pub body: String,
}

fn headers_as_map<S: serde::Serializer>(h: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(h.len()))?;
    for (k, v) in h {
        m.serialize_entry(k, v)?;
    }
    m.end()
}

impl fmt::Display for RedactedRequest {
    /// HTTP-message style: request line, headers, blank line, body.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} {}", self.method, self.url)?;
        for (k, v) in &self.headers {
            writeln!(f, "{k}: {v}")?;
        }
        if !self.body.is_empty() {
            writeln!(f)?;
            writeln!(f, "{}", self.body)?;
        }
        Ok(())
    }
}

/// What delivering to a target means: an HTTP call, or a line for the log target.
#[derive(Debug, Clone)]
pub enum Action {
    Http(OutboundRequest),
    Log { line: String },
}

/// The result of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub outcome: Outcome,
    /// The HTTP status, when an answer came back at all.
    pub status_code: Option<u16>,
}

/// The closed set of kinds; a `match` keeps dispatch static and exhaustive.
enum Kind {
    Slack(slack::Slack),
    Github(github::Github),
    Gitlab(gitlab::Gitlab),
    Jenkins(jenkins::Jenkins),
    Http(http::HttpTarget),
    DatabricksJob(databricks_job::DatabricksJob),
    Log(log::Log),
}

/// A built target: validated configuration plus its compiled templates.
pub struct Target {
    name: String,
    kind: Kind,
    templates: Templates,
    retry: RetryConfig,
    concurrency: usize,
    rate_per_sec: Option<f64>,
}

impl fmt::Debug for Target {
    // Only what is safe and useful: kinds hold tokens and webhook URLs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("name", &self.name)
            .field("kind", &self.kind())
            .field("timeout", &self.retry.timeout)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// Build one target from its configuration. Errors name `targets.NAME.<key>`.
    pub fn build(name: &str, cfg: &TargetConfig) -> Result<Target, ConfigError> {
        let mut templates = Templates::new(name);
        let kind = match &cfg.kind {
            TargetKind::Slack(c) => Kind::Slack(slack::Slack::build(name, c, &mut templates)?),
            TargetKind::Github(c) => Kind::Github(github::Github::build(name, c, &mut templates)?),
            TargetKind::Gitlab(c) => Kind::Gitlab(gitlab::Gitlab::build(name, c, &mut templates)?),
            TargetKind::Jenkins(c) => {
                Kind::Jenkins(jenkins::Jenkins::build(name, c, &mut templates)?)
            }
            TargetKind::Http(c) => Kind::Http(http::HttpTarget::build(name, c, &mut templates)?),
            TargetKind::DatabricksJob(c) => Kind::DatabricksJob(
                databricks_job::DatabricksJob::build(name, c, &mut templates)?,
            ),
            TargetKind::Log(c) => Kind::Log(log::Log::build(c)),
        };
        // Errors that only show when rendering (an unknown filter, a bad operation) fail here,
        // against a sample event, rather than on the first real delivery.
        templates.check()?;
        let target = Target {
            name: name.to_string(),
            kind,
            templates,
            retry: cfg.retry.clone(),
            concurrency: cfg.concurrency,
            rate_per_sec: cfg.rate_per_sec,
        };
        // The whole request must come together too (e.g. a rendered header that is not a valid
        // header value, a GitHub event_type that is too long).
        let sample = template::sample_event();
        target
            .prepare(&template::sample_context(&sample))
            .map_err(|e| ConfigError {
                path: e.path().to_string(),
                message: format!("fails on a sample event: {}", e.message()),
            })?;
        Ok(target)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether delivering takes an HTTP client (every kind but `log`).
    pub fn needs_http(&self) -> bool {
        !matches!(self.kind, Kind::Log(_))
    }

    /// The configured kind, as written in `routes.toml`.
    pub fn kind(&self) -> &'static str {
        match self.kind {
            Kind::Slack(_) => "slack",
            Kind::Github(_) => "github",
            Kind::Gitlab(_) => "gitlab",
            Kind::Jenkins(_) => "jenkins",
            Kind::Http(_) => "http",
            Kind::DatabricksJob(_) => "databricks_job",
            Kind::Log(_) => "log",
        }
    }

    /// The retry policy for this target (its `timeout` is the per-attempt timeout).
    pub fn retry(&self) -> &RetryConfig {
        &self.retry
    }

    /// The per-attempt timeout.
    pub fn timeout(&self) -> Duration {
        self.retry.timeout
    }

    /// How many deliveries to this target may be in flight at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Optional rate limit, in calls per second.
    pub fn rate_per_sec(&self) -> Option<f64> {
        self.rate_per_sec
    }

    /// Build the exact request (or log line) for one attempt. Pure: no I/O, no clock.
    pub fn prepare(&self, ctx: &DeliveryContext<'_>) -> Result<Action, RenderError> {
        let r = Render::new(&self.name, &self.templates, ctx);
        let action = match &self.kind {
            Kind::Slack(k) => Action::Http(k.prepare(&r)?),
            Kind::Github(k) => Action::Http(k.prepare(&r)?),
            Kind::Gitlab(k) => Action::Http(k.prepare(&r)?),
            Kind::Jenkins(k) => Action::Http(k.prepare(&r)?),
            Kind::Http(k) => Action::Http(k.prepare(&r)?),
            Kind::DatabricksJob(k) => Action::Http(k.prepare(&r)?),
            Kind::Log(k) => Action::Log {
                line: k.prepare(&r),
            },
        };
        if let Action::Http(req) = &action {
            self.check_headers(req)?;
        }
        Ok(action)
    }

    /// A header that reqwest would refuse must fail in `prepare` (so `explain` shows it) with a
    /// message that names the header but never its value.
    fn check_headers(&self, req: &OutboundRequest) -> Result<(), RenderError> {
        for (name, value) in &req.headers {
            let name_ok = ::http::HeaderName::from_bytes(name.as_bytes()).is_ok();
            if !name_ok || ::http::HeaderValue::from_str(value).is_err() {
                return Err(RenderError::Invalid {
                    path: format!("targets.{}.headers", self.name),
                    message: format!("header {name:?} has an invalid name or value"),
                });
            }
        }
        Ok(())
    }

    /// Prepare and perform one attempt, within the target's timeout, and classify the result.
    /// `client` may be `None` only for a target that does not [need HTTP](Self::needs_http).
    pub async fn deliver(
        &self,
        client: Option<&reqwest::Client>,
        ctx: &DeliveryContext<'_>,
    ) -> Delivery {
        let action = match self.prepare(ctx) {
            Ok(a) => a,
            // Rendering is deterministic: a retry would fail the same way.
            Err(e) => {
                return Delivery {
                    outcome: Outcome::GiveUp {
                        reason: e.to_string(),
                    },
                    status_code: None,
                };
            }
        };
        match (action, &self.kind) {
            (Action::Http(req), _) => match client {
                Some(client) => send(client, &req, self.retry.timeout).await,
                None => Delivery {
                    outcome: Outcome::GiveUp {
                        reason: "internal error: no HTTP client for an HTTP target".into(),
                    },
                    status_code: None,
                },
            },
            (Action::Log { line }, Kind::Log(sink)) => sink.write(&line).await,
            (Action::Log { .. }, _) => Delivery {
                outcome: Outcome::GiveUp {
                    reason: "internal error: log action from a non-log target".into(),
                },
                status_code: None,
            },
        }
    }
}

/// All configured targets, by name.
#[derive(Debug, Default, Clone)]
pub struct Targets {
    by_name: BTreeMap<String, Arc<Target>>,
}

impl Targets {
    /// Build every target, each error's path naming the target and key. A target stops at its
    /// first mistake, but every target is built, so that `hookgate check` reports them all.
    pub fn build(cfgs: &BTreeMap<String, TargetConfig>) -> Result<Targets, ConfigErrors> {
        let mut by_name = BTreeMap::new();
        let mut errors = Vec::new();
        for (name, cfg) in cfgs {
            match Target::build(name, cfg) {
                Ok(t) => {
                    by_name.insert(name.clone(), Arc::new(t));
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(Targets { by_name })
        } else {
            Err(ConfigErrors(errors))
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Target>> {
        self.by_name.get(name)
    }

    /// Target names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<Target>)> {
        self.by_name.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// The one HTTP client shared by all targets.
///
/// rustls only; redirects are not followed (a 3xx is classified as a permanent misconfiguration,
/// and following one could carry a token to another host); no proxy is taken from the
/// environment, so where requests go is decided by `routes.toml` alone. Timeouts are per request
/// (each target's `retry.timeout`); the connect timeout only bounds a dead address sooner.
///
/// # Panics
/// If the TLS backend cannot be initialised, which only happens on a broken build; this is called
/// once, at start (see `Dispatcher::new`).
pub fn http_client() -> reqwest::Client {
    client_builder()
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_idle_timeout(Duration::from_secs(60))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .expect("the HTTP client (rustls) initialises")
}

/// A `reqwest` client builder whose TLS is rustls with the ring provider. Every HTTP client the
/// binary makes starts here: reqwest is built without a provider of its own, and building a
/// client before one is installed would panic.
pub fn client_builder() -> reqwest::ClientBuilder {
    // Fails only when a provider is already installed, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// Send one request and classify the answer. The whole call, body excerpt included, is bounded
/// by `timeout`; a status that arrived in time counts even if reading the excerpt did not finish.
async fn send(client: &reqwest::Client, req: &OutboundRequest, timeout: Duration) -> Delivery {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut builder = client
        .request(req.method.clone(), req.url.as_str())
        .timeout(timeout)
        .body(req.body.clone());
    for (name, value) in &req.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let mut resp = match tokio::time::timeout_at(deadline, builder.send()).await {
        Err(_elapsed) => return transport_failure(TransportError::Timeout, None),
        Ok(Err(e)) => return reqwest_failure(e),
        Ok(Ok(resp)) => resp,
    };
    let status = resp.status().as_u16();
    let retry_after = resp.headers().get(::http::header::RETRY_AFTER).cloned();
    let mut snippet = Vec::new();
    while snippet.len() < SNIPPET_READ_BYTES {
        match tokio::time::timeout_at(deadline, resp.chunk()).await {
            Ok(Ok(Some(chunk))) => snippet.extend_from_slice(&chunk),
            _ => break,
        }
    }
    snippet.truncate(SNIPPET_READ_BYTES);
    let outcome = classify_status(
        status,
        retry_after.as_ref(),
        SystemTime::now(),
        &String::from_utf8_lossy(&snippet),
    );
    Delivery {
        outcome,
        status_code: Some(status),
    }
}

fn reqwest_failure(e: reqwest::Error) -> Delivery {
    if e.is_builder() {
        // The request itself could not be built: the same on every retry.
        return Delivery {
            outcome: Outcome::GiveUp {
                reason: "invalid request".into(),
            },
            status_code: None,
        };
    }
    let kind = if e.is_timeout() {
        TransportError::Timeout
    } else if e.is_connect() {
        TransportError::Connect
    } else {
        TransportError::Other
    };
    // reqwest's own Display includes the URL (a Slack URL is a secret): drop it, and only keep
    // the innermost cause (e.g. "Connection refused (os error 111)"), which names no URL.
    let cause = root_cause(&e.without_url());
    transport_failure(kind, cause)
}

fn transport_failure(kind: TransportError, cause: Option<String>) -> Delivery {
    let mut outcome = classify_transport(kind);
    if let (Outcome::Retry { reason, .. }, Some(cause)) = (&mut outcome, cause)
        && kind != TransportError::Timeout
    {
        reason.push_str(": ");
        reason.push_str(&cause);
    }
    Delivery {
        outcome,
        status_code: None,
    }
}

/// The innermost error's message, on one short line.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = e.source()?;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let text: String = cur
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut short: String = text.chars().take(120).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    (!short.is_empty()).then_some(short)
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the kinds.

/// A configuration error about `targets.{target}.{key}`.
pub(crate) fn config_error(target: &str, key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: format!("targets.{target}.{key}"),
        message: message.into(),
    }
}

/// Parse a base URL (`api_url`, `workspace_url`, ...): http(s), with a host, no query or
/// fragment. Returned normalised and without a trailing slash, ready for `{base}/path`.
/// Error messages never include the value (it may carry credentials).
pub(crate) fn parse_base_url(target: &str, key: &str, value: &str) -> Result<String, ConfigError> {
    let url = parse_url(target, key, value)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(config_error(
            target,
            key,
            "must be a base URL without query or fragment",
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// Parse an absolute http(s) URL with a host.
pub(crate) fn parse_url(target: &str, key: &str, value: &str) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(value.trim())
        .map_err(|e| config_error(target, key, format!("not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(config_error(
            target,
            key,
            "must be an http:// or https:// URL",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(config_error(target, key, "must have a host"));
    }
    Ok(url)
}

/// `scheme://host[:port]`, for showing a URL whose path is the secret (Slack webhooks).
pub(crate) fn origin_only(url: &url::Url) -> String {
    let mut s = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        s.push_str(&format!(":{port}"));
    }
    s
}

/// A URL safe to show: user info and every query value replaced by `[redacted]` (query strings
/// are where API keys hide: `?code=`, `?token=`).
pub(crate) fn redact_url(url: &url::Url) -> String {
    let mut s = format!("{}://", url.scheme());
    if !url.username().is_empty() || url.password().is_some() {
        s.push_str(REDACTED);
        s.push('@');
    }
    s.push_str(&origin_only(url)[url.scheme().len() + 3..]);
    s.push_str(url.path());
    if let Some(q) = url.query() {
        s.push('?');
        s.push_str(&redact_query(q));
    }
    s
}

/// `a=1&b` → `a=[redacted]&[redacted]`.
pub(crate) fn redact_query(q: &str) -> String {
    q.split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) => format!("{k}={REDACTED}"),
            None => REDACTED.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encode one URL path segment: everything but RFC 3986 unreserved characters, so `/`,
/// `#`, `?` and spaces in model, project or job names cannot change the URL's structure.
pub(crate) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `application/x-www-form-urlencoded` encoding of one name or value.
pub(crate) fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Whether a configured string uses template syntax at all.
pub(crate) fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod tests;

//! `hookgate explain REQUEST.json`: what the gateway would do with one request, without sending
//! or storing anything: the verification verdict, the parsed event, every route (and why it did
//! not match), and the exact outbound request each target would get, secrets redacted.
//!
//! It runs the same code as the gateway: [`crate::ingress::handler::admit`] for verification and
//! parsing, [`RouteTable::explain`] for routing and [`Target::prepare`] for the requests.

use std::path::Path;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;

use crate::config::Config;
use crate::ingress::handler::{Refusal, admit};
use crate::route::{RouteMatch, RouteTable};
use crate::targets::{Action, DeliveryContext, RedactedRequest, Targets};

/// A request in the `vectors` file format.
#[derive(Debug, serde::Deserialize)]
pub struct RequestFile {
    #[serde(default = "post")]
    pub method: String,
    pub path: String,
    /// Header values are strings: a number would be a header no sender can send.
    #[serde(default)]
    pub headers: serde_json::Map<String, serde_json::Value>,
    /// The body as text, or ...
    #[serde(default)]
    pub body: Option<String>,
    /// ... as base64: exactly the bytes, also ones that are not UTF-8. Read first when both
    /// are given.
    #[serde(default)]
    pub body_base64: Option<String>,
}

fn post() -> String {
    "POST".into()
}

impl RequestFile {
    pub fn read(path: &Path) -> anyhow::Result<RequestFile> {
        let text = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let file: RequestFile = serde_json::from_slice(&text)
            .map_err(|e| anyhow::anyhow!("{}: not a request file: {e}", path.display()))?;
        file.body_bytes()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if let Some((name, _)) = file.headers.iter().find(|(_, v)| !v.is_string()) {
            anyhow::bail!(
                "{}: header {name}: the value must be a string",
                path.display()
            );
        }
        Ok(file)
    }

    /// The body's bytes: `body_base64` decoded, or `body`.
    pub fn body_bytes(&self) -> anyhow::Result<Vec<u8>> {
        use base64::Engine as _;
        match (&self.body_base64, &self.body) {
            (Some(b64), _) => base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| anyhow::anyhow!("body_base64 is not base64: {e}")),
            (None, Some(text)) => Ok(text.clone().into_bytes()),
            (None, None) => anyhow::bail!("the request file has neither body nor body_base64"),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Explanation {
    pub endpoint: Option<String>,
    /// `accepted`, or the answer the sender would get instead.
    pub verdict: String,
    /// HTTP status the sender would get (the store permitting).
    pub status: u16,
    pub event_id: Option<String>,
    pub event: Option<serde_json::Value>,
    pub routes: Vec<RouteMatch>,
    pub targets: Vec<TargetRequest>,
}

#[derive(Debug, Serialize)]
pub struct TargetRequest {
    pub target: String,
    pub kind: &'static str,
    /// The HTTP request, secrets redacted; absent for a `log` target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<RedactedRequest>,
    /// The line a `log` target would write.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_line: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn refused(endpoint: Option<String>, status: u16, verdict: &str) -> Explanation {
    Explanation {
        endpoint,
        verdict: verdict.to_string(),
        status,
        event_id: None,
        event: None,
        routes: Vec::new(),
        targets: Vec::new(),
    }
}

/// Explain `req` against a configuration. `now_unix` is the clock used for the MLflow
/// timestamp window (and for outbound signing timestamps).
pub fn explain(
    config: &Config,
    routes: &RouteTable,
    targets: &Targets,
    req: &RequestFile,
    now_unix: i64,
) -> Explanation {
    let path = req.path.split('?').next().unwrap_or("");
    let Some(ep) = config.endpoints.iter().find(|e| e.path == path) else {
        return refused(None, 404, "unknown_path: no endpoint has this path");
    };
    let name = Some(ep.name.clone());
    // Methods are case-sensitive (RFC 9110): the gateway answers `post` with 405 too.
    if req.method != "POST" {
        return refused(name, 405, "method_not_allowed");
    }
    let Ok(body) = req.body_bytes() else {
        return refused(name, 400, "no readable body in the request file");
    };
    if body.len() as u64 > config.server.max_body {
        return refused(name, 413, "body_too_large");
    }
    let mut headers = HeaderMap::new();
    for (k, v) in &req.headers {
        if let (Ok(k), Some(Ok(v))) = (
            HeaderName::from_bytes(k.as_bytes()),
            v.as_str().map(HeaderValue::from_str),
        ) {
            headers.append(k, v);
        }
    }
    let body = Bytes::from(body);
    let (event, identity) = match admit(ep.scheme, &ep.auth(), &headers, body, now_unix) {
        Ok(a) => a,
        Err(Refusal::Unverified(r)) => {
            return refused(name, 401, &format!("rejected: {}", r.code()));
        }
        Err(Refusal::NotJson(e)) => {
            return refused(name, 400, &format!("rejected: invalid_json ({e})"));
        }
    };
    let route_matches = routes.explain(&ep.name, &event);
    let ctx = DeliveryContext {
        event: &event,
        event_id: &identity.id,
        endpoint: &ep.name,
        attempt: 1,
        replayed_at_ms: None,
        now_unix,
    };
    let target_requests = routes
        .targets_for(&ep.name, &event)
        .into_iter()
        .filter_map(|t| targets.get(&t).cloned().map(|target| (t, target)))
        .map(|(name, target)| {
            let mut out = TargetRequest {
                target: name,
                kind: target.kind(),
                request: None,
                log_line: None,
                error: None,
            };
            match target.prepare(&ctx) {
                Ok(Action::Http(r)) => out.request = Some(r.redacted()),
                Ok(Action::Log { line }) => out.log_line = Some(line),
                Err(e) => out.error = Some(e.to_string()),
            }
            out
        })
        .collect();
    Explanation {
        endpoint: name,
        verdict: "accepted".into(),
        status: 200,
        event_id: Some(identity.id),
        event: Some(event.summary()),
        routes: route_matches,
        targets: target_requests,
    }
}

/// The human-readable form.
pub fn render(x: &Explanation) -> String {
    let mut s = String::new();
    let ep = x.endpoint.as_deref().unwrap_or("(none)");
    s.push_str(&format!("endpoint      {ep}\n"));
    s.push_str(&format!(
        "verification  {} (HTTP {})\n",
        x.verdict, x.status
    ));
    let Some(event) = &x.event else {
        return s;
    };
    s.push_str(&format!(
        "event id      {}\n",
        x.event_id.as_deref().unwrap_or("")
    ));
    s.push_str(&format!(
        "event         {}\n",
        serde_json::to_string(event).unwrap_or_default()
    ));
    s.push_str("\nroutes\n");
    if x.routes.is_empty() {
        s.push_str("  (none configured)\n");
    }
    for r in &x.routes {
        match &r.why_not {
            None => s.push_str(&format!("  ✓ {} → {}\n", r.name, r.to.join(", "))),
            Some(why) => s.push_str(&format!("  ✗ {}: {}\n", r.name, why)),
        }
    }
    s.push_str("\ntargets\n");
    if x.targets.is_empty() {
        s.push_str("  (none: the event is stored and counted, and delivered nowhere)\n");
    }
    for t in &x.targets {
        s.push_str(&format!("  {} ({})\n", t.target, t.kind));
        if let Some(r) = &t.request {
            for line in r.to_string().lines() {
                s.push_str(&format!("    {line}\n"));
            }
        }
        if let Some(l) = &t.log_line {
            s.push_str(&format!("    {l}\n"));
        }
        if let Some(e) = &t.error {
            s.push_str(&format!("    error: {e}\n"));
        }
    }
    s
}

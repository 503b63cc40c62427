//! HTTP plumbing shared by the Databricks and MLflow clients: authentication, JSON calls, and
//! errors that show the sender's status, `error_code` and `message` without ever echoing a
//! credential.

use std::fmt;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::secret::Secret;

/// How the CLI authenticates to the sender's REST API.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    Bearer(Secret),
    Basic { user: String, password: Secret },
}

/// An error answer from the sender's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub sender: &'static str,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// `error_code` of a `{"error_code": …, "message": …}` body.
    pub code: Option<String>,
    pub message: Option<String>,
    /// The start of a body that is not the JSON error shape.
    pub body: Option<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = reqwest::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        write!(
            f,
            "{} API {} {} answered HTTP {} {reason}",
            self.sender, self.method, self.path, self.status
        )?;
        match (&self.code, &self.message) {
            (Some(c), Some(m)) => write!(f, ": {c}: {m}"),
            (Some(c), None) => write!(f, ": {c}"),
            (None, Some(m)) => write!(f, ": {m}"),
            (None, None) => match &self.body {
                Some(b) if !b.is_empty() => write!(f, ": {b}"),
                _ => Ok(()),
            },
        }
    }
}

impl std::error::Error for ApiError {}

/// Replaces every known credential in text that came from elsewhere (a sender's error message
/// could quote a request field) with `[redacted]` before it is printed.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    values: Vec<Secret>,
}

impl Redactor {
    pub fn add(&mut self, value: &Secret) {
        // Very short values would redact ordinary words; no real credential is that short.
        if value.expose().len() >= 4 && !self.values.contains(value) {
            self.values.push(value.clone());
        }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.values {
            out = out.replace(v.expose(), "[redacted]");
        }
        out
    }
}

/// A JSON REST client for one sender's base URL.
#[derive(Debug, Clone)]
pub struct Api {
    pub sender: &'static str,
    base: url::Url,
    auth: Auth,
    http: reqwest::Client,
    pub redactor: Redactor,
}

impl Api {
    /// `base` is the workspace or tracking server URL; any path it has is kept as a prefix.
    pub fn new(
        sender: &'static str,
        base: &str,
        auth: Auth,
        redactor: Redactor,
    ) -> anyhow::Result<Api> {
        let mut parsed = url::Url::parse(base.trim())
            .map_err(|e| anyhow::anyhow!("{sender} URL {base:?} is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            anyhow::bail!("{sender} URL {base:?} must be an http:// or https:// URL");
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            // Credentials in a URL end up in messages; they have their own variables.
            anyhow::bail!("{sender} URL must not contain credentials; use the token variables");
        }
        parsed.set_query(None);
        parsed.set_fragment(None);
        let http = crate::targets::client_builder()
            .timeout(Duration::from_secs(60))
            // A redirect could carry the token to another host.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("hookgate/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Api {
            sender,
            base: parsed,
            auth,
            http,
            redactor,
        })
    }

    /// The base URL, for messages.
    pub fn base(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// The URL of `path` below the base. A `{id}` segment of `path` is replaced by `id`,
    /// percent-encoded as one segment (so an id can never reach another path).
    fn url(&self, path: &str, id: Option<&str>, query: &[(&str, &str)]) -> url::Url {
        let mut u = self.base.clone();
        {
            let mut segments = u.path_segments_mut().expect("http URLs have a path");
            segments.pop_if_empty();
            for part in path.trim_start_matches('/').split('/') {
                match (part, id) {
                    ("{id}", Some(id)) => segments.push(id),
                    _ => segments.push(part),
                };
            }
        }
        if !query.is_empty() {
            u.query_pairs_mut().extend_pairs(query);
        }
        u
    }

    /// Send a JSON request and return the JSON answer (`{}` for an empty body).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        id: Option<&str>,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let url = self.url(path, id, query);
        let mut req = self.http.request(method.clone(), url.clone());
        req = match &self.auth {
            Auth::None => req,
            Auth::Bearer(t) => req.bearer_auth(t.expose()),
            Auth::Basic { user, password } => req.basic_auth(user, Some(password.expose())),
        };
        if let Some(b) = body {
            req = req.json(b);
        }
        let path = url.path().to_string();
        let resp = req.send().await.map_err(|e| {
            anyhow::anyhow!(
                "could not reach {} at {}: {}",
                self.sender,
                self.base(),
                self.redactor.redact(&e.without_url().to_string())
            )
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| {
            anyhow::anyhow!(
                "{} API {method} {path}: reading the answer failed: {}",
                self.sender,
                e.without_url()
            )
        })?;
        let text = self.redactor.redact(&text);
        let json: Option<Value> = if text.trim().is_empty() {
            Some(Value::Object(Default::default()))
        } else {
            serde_json::from_str(&text).ok()
        };
        if !status.is_success() {
            let field = |k: &str| {
                json.as_ref()
                    .and_then(|j| j.get(k))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            let (code, message) = (field("error_code"), field("message"));
            let body = (code.is_none() && message.is_none()).then(|| excerpt(&text));
            return Err(ApiError {
                sender: self.sender,
                method: method.to_string(),
                path,
                status: status.as_u16(),
                code,
                message,
                body,
            }
            .into());
        }
        json.ok_or_else(|| {
            anyhow::anyhow!(
                "{} API {method} {path}: HTTP {status} but the answer is not JSON: {}",
                self.sender,
                excerpt(&text)
            )
        })
    }
}

/// The first 300 characters of a body, on one line.
fn excerpt(text: &str) -> String {
    let one_line: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match one_line.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

/// A string field of a JSON object, if present.
pub fn str_field(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_show_status_code_and_message() {
        let e = ApiError {
            sender: "Databricks",
            method: "POST".into(),
            path: "/api/2.0/mlflow/registry-webhooks/create".into(),
            status: 403,
            code: Some("PERMISSION_DENIED".into()),
            message: Some("User lacks Can Manage".into()),
            body: None,
        };
        assert_eq!(
            e.to_string(),
            "Databricks API POST /api/2.0/mlflow/registry-webhooks/create answered HTTP 403 \
             Forbidden: PERMISSION_DENIED: User lacks Can Manage"
        );
        let plain = ApiError {
            code: None,
            message: None,
            body: Some("<html>bad gateway</html>".into()),
            status: 502,
            ..e
        };
        assert!(
            plain
                .to_string()
                .ends_with("HTTP 502 Bad Gateway: <html>bad gateway</html>")
        );
    }

    #[test]
    fn redactor_hides_known_values() {
        let mut r = Redactor::default();
        r.add(&Secret::new("dapi-123456"));
        r.add(&Secret::new("x"));
        assert_eq!(
            r.redact("bad token dapi-123456 for x"),
            "bad token [redacted] for x"
        );
    }

    #[test]
    fn urls_keep_a_base_path_and_escape_ids() {
        let api = Api::new(
            "MLflow",
            "https://mlflow.example.com/prefix/",
            Auth::None,
            Redactor::default(),
        )
        .unwrap();
        assert_eq!(
            api.url("/api/2.0/mlflow/webhooks/{id}/test", Some("a b/c"), &[])
                .as_str(),
            "https://mlflow.example.com/prefix/api/2.0/mlflow/webhooks/a%20b%2Fc/test"
        );
        assert_eq!(
            api.url("/api/2.0/x", None, &[("model_name", "a&b")])
                .as_str(),
            "https://mlflow.example.com/prefix/api/2.0/x?model_name=a%26b"
        );
        assert!(Api::new("X", "ftp://h", Auth::None, Redactor::default()).is_err());
        assert!(Api::new("X", "https://u:p@h", Auth::None, Redactor::default()).is_err());
    }
}

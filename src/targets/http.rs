//! Generic HTTP target: `method` to `url`, by default with the event body exactly as received.
//!
//! Always sent: `X-Hookgate-Event-Id` and `Idempotency-Key` (the event id, the same on every
//! retry, so a receiver can de-duplicate; after a replay, a new key: see
//! [`DeliveryContext::idempotency_key`](crate::targets::DeliveryContext::idempotency_key)), `X-Hookgate-Event`, `X-Hookgate-Endpoint`. Configured
//! headers come after and override same-named defaults (e.g. `Content-Type`); their values are
//! secrets (typically `Authorization`) and always shown redacted. With `signing_secret` the
//! request is signed the Standard Webhooks way (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`), the same scheme
//! MLflow uses, so a receiver can use any Standard Webhooks library.
//!
//! The URL is shown with user info and query values redacted: query strings are where function
//! keys (`?code=`) live.

use std::fmt;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::Method;
use sha2::Sha256;

use super::template::{Render, RenderError, Templates, Tpl};
use super::{OutboundRequest, config_error, is_template, parse_url, redact_url};
use crate::config::{ConfigError, HttpConfig};
use crate::secret::Secret;

const WHSEC_PREFIX: &str = "whsec_";

pub(crate) struct HttpTarget {
    method: Method,
    url: String,
    shown_url: String,
    headers: Vec<(String, HeaderSource)>,
    body: Option<Tpl>,
    signing_key: Option<SigningKey>,
}

enum HeaderSource {
    Literal(Secret),
    Template(Tpl),
}

/// HMAC key bytes; never printed.
struct SigningKey(Vec<u8>);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

impl HttpTarget {
    pub(crate) fn build(
        name: &str,
        c: &HttpConfig,
        templates: &mut Templates,
    ) -> Result<Self, ConfigError> {
        let url = parse_url(name, "url", &c.url)?;
        let method = Method::from_bytes(c.method.trim().to_ascii_uppercase().as_bytes())
            .map_err(|_| config_error(name, "method", "not a valid HTTP method"))?;
        let mut headers = Vec::new();
        for (header, value) in &c.headers {
            let key = format!("headers.{header}");
            if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                return Err(config_error(name, &key, "not a valid header name"));
            }
            let source = if is_template(value.expose()) {
                HeaderSource::Template(templates.add_sensitive(&key, value.expose())?)
            } else {
                if http::HeaderValue::from_str(value.expose()).is_err() {
                    return Err(config_error(name, &key, "not a valid header value"));
                }
                HeaderSource::Literal(value.clone())
            };
            headers.push((header.clone(), source));
        }
        let signing_key = c
            .signing_secret
            .as_ref()
            .map(|s| signing_key(s).map_err(|m| config_error(name, "signing_secret", m)))
            .transpose()?;
        Ok(HttpTarget {
            method,
            shown_url: redact_url(&url),
            url: url.into(),
            headers,
            body: c
                .body
                .as_deref()
                .map(|b| templates.add("body", b))
                .transpose()?,
            signing_key,
        })
    }

    pub(crate) fn prepare(&self, r: &Render<'_>) -> Result<OutboundRequest, RenderError> {
        let event = r.event();
        let body = match &self.body {
            Some(t) => bytes::Bytes::from(r.render(t)?),
            // Byte for byte what the sender sent: a receiver can check it against its own copy.
            None => event.raw.clone(),
        };
        let mut req = OutboundRequest::new(self.method.clone(), self.url.as_str())
            .redact_url_as(self.shown_url.clone())
            .header("Content-Type", "application/json")
            .header("X-Hookgate-Event-Id", r.ctx.event_id)
            .header("Idempotency-Key", r.ctx.idempotency_key())
            .header("X-Hookgate-Event", event.name.as_str())
            .header("X-Hookgate-Endpoint", r.ctx.endpoint);
        for (name, source) in &self.headers {
            let value = match source {
                HeaderSource::Literal(s) => s.expose().to_string(),
                HeaderSource::Template(t) => r.render(t)?,
            };
            req = req.secret_header(name, value);
        }
        if let Some(key) = &self.signing_key {
            let ts = r.ctx.now_unix;
            // Standard Webhooks receivers de-duplicate by `webhook-id`: it is the idempotency
            // key, so a retry keeps it and a replay (a new key) is not dropped as a repeat.
            let id = r.ctx.idempotency_key();
            let signature = sign(&key.0, &id, ts, &body);
            req = req
                .header("webhook-id", id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", signature);
        }
        Ok(req.body(body))
    }
}

/// `whsec_<base64>` is the Standard Webhooks form (the key is the decoded bytes); anything else
/// is used as UTF-8 bytes, like MLflow's webhook secrets.
fn signing_key(secret: &Secret) -> Result<SigningKey, String> {
    let s = secret.expose();
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    match s.strip_prefix(WHSEC_PREFIX) {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .filter(|k| !k.is_empty())
            .map(SigningKey)
            // Not the decoder's message: it can quote the offending input.
            .ok_or_else(|| "is not valid base64 after \"whsec_\"".to_string()),
        None => Ok(SigningKey(s.as_bytes().to_vec())),
    }
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`. Kept here (not shared with
/// `verify`) so that outbound signing depends on nothing else; the tests check it independently.
fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::TargetKind;
    use crate::targets::testutil::*;

    fn cfg() -> HttpConfig {
        HttpConfig {
            url: "https://hooks.example.com/mlflow".into(),
            method: "POST".into(),
            headers: BTreeMap::new(),
            body: None,
            signing_secret: None,
        }
    }

    fn default_headers(event: &str) -> Vec<(String, String)> {
        headers(&[
            ("Content-Type", "application/json"),
            ("X-Hookgate-Event-Id", EVENT_ID),
            ("Idempotency-Key", EVENT_ID),
            ("X-Hookgate-Event", event),
            ("X-Hookgate-Endpoint", "registry"),
        ])
    }

    #[test]
    fn forwards_the_body_byte_for_byte() {
        let t = build("h", TargetKind::Http(cfg()));
        let e = databricks_event();
        let req = http_request(&t, &e);
        assert_eq!(req.method, Method::POST);
        assert_eq!(req.url, "https://hooks.example.com/mlflow");
        assert_eq!(
            req.headers,
            default_headers("MODEL_VERSION_TRANSITIONED_STAGE")
        );
        assert_eq!(req.body, DATABRICKS_BODY.as_bytes());

        let e = mlflow_event();
        let req = http_request(&t, &e);
        assert_eq!(req.headers, default_headers("model_version_alias.created"));
        // The spaces after the colons survive: no re-serialization.
        assert_eq!(req.body, MLFLOW_BODY.as_bytes());
    }

    #[test]
    fn method_body_template_and_configured_headers() {
        let mut c = cfg();
        c.method = "put".into();
        c.body = Some(r#"{"model": {{ event.model | tojson }}, "n": {{ attempt }}}"#.into());
        c.headers = BTreeMap::from([
            (
                "Authorization".into(),
                Secret::new("Bearer HTTPSECRETxyzzy"),
            ),
            (
                "content-type".into(),
                Secret::new("application/vnd.acme+json"),
            ),
            ("X-Model".into(), Secret::new("{{ event.model }}")),
        ]);
        let t = build("h", TargetKind::Http(c));
        let req = http_request(&t, &mlflow_event());
        assert_eq!(req.method, Method::PUT);
        assert_eq!(
            req.headers,
            headers(&[
                ("X-Hookgate-Event-Id", EVENT_ID),
                ("Idempotency-Key", EVENT_ID),
                ("X-Hookgate-Event", "model_version_alias.created"),
                ("X-Hookgate-Endpoint", "registry"),
                ("Authorization", "Bearer HTTPSECRETxyzzy"),
                ("X-Model", "gateway-demo-model"),
                ("content-type", "application/vnd.acme+json"),
            ])
        );
        assert_eq!(body_str(&req), r#"{"model": "gateway-demo-model", "n": 1}"#);
        let shown = req.redacted();
        for (name, value) in &shown.headers {
            if ["authorization", "x-model", "content-type"].contains(&name.to_lowercase().as_str())
            {
                assert_eq!(value, "[redacted]", "{name}");
            } else {
                assert_ne!(value, "[redacted]", "{name}");
            }
        }
        assert_no_secret(&t, &req, "HTTPSECRETxyzzy");
    }

    #[test]
    fn url_query_and_user_info_are_redacted() {
        let mut c = cfg();
        c.url = "https://bot:PASSWORDfrotz@fn.example.net/api/hook?code=FUNCKEYplugh&x".into();
        let t = build("h", TargetKind::Http(c));
        let req = http_request(&t, &databricks_event());
        assert_eq!(
            req.redacted().url,
            "https://[redacted]@fn.example.net/api/hook?code=[redacted]&[redacted]"
        );
        assert_no_secret(&t, &req, "PASSWORDfrotz");
        assert_no_secret(&t, &req, "FUNCKEYplugh");
    }

    /// Standard Webhooks verification, written out independently of `sign`.
    fn verify(key: &[u8], req: &OutboundRequest) -> bool {
        let id = req.header_value("webhook-id").unwrap();
        let ts = req.header_value("webhook-timestamp").unwrap();
        let sig = req.header_value("webhook-signature").unwrap();
        let mut signed = format!("{id}.{ts}.").into_bytes();
        signed.extend_from_slice(&req.body);
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(&signed);
        let b64 = sig.strip_prefix("v1,").unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        mac.verify_slice(&raw).is_ok()
    }

    #[test]
    fn a_replay_is_signed_under_a_new_webhook_id() {
        let mut c = cfg();
        c.signing_secret = Some(Secret::new("replay-signing-key"));
        let t = build("h", TargetKind::Http(c));
        let event = mlflow_event();
        let mut ctx = context(&event);
        ctx.attempt = 3;
        let crate::targets::Action::Http(retry) = t.prepare(&ctx).unwrap() else {
            panic!("an HTTP request")
        };
        assert_eq!(
            retry.header_value("webhook-id"),
            Some(EVENT_ID),
            "retries keep it"
        );
        ctx.replayed_at_ms = Some(1_795_617_200_000);
        let crate::targets::Action::Http(replay) = t.prepare(&ctx).unwrap() else {
            panic!("an HTTP request")
        };
        let id = format!("{EVENT_ID}:replay-1795617200000");
        assert_eq!(replay.header_value("webhook-id"), Some(id.as_str()));
        assert_eq!(replay.header_value("Idempotency-Key"), Some(id.as_str()));
        assert!(
            verify(b"replay-signing-key", &replay),
            "signed over the new id"
        );
    }

    #[test]
    fn standard_webhooks_signature_with_whsec_key() {
        let key = b"0123456789abcdef-SIGNINGKEY";
        let encoded = base64::engine::general_purpose::STANDARD.encode(key);
        let mut c = cfg();
        c.signing_secret = Some(Secret::new(format!("whsec_{encoded}")));
        let t = build("h", TargetKind::Http(c));
        let req = http_request(&t, &mlflow_event());
        assert_eq!(req.header_value("webhook-id"), Some(EVENT_ID));
        assert_eq!(
            req.header_value("webhook-timestamp"),
            Some(NOW.to_string().as_str())
        );
        assert!(verify(key, &req));
        assert!(!verify(b"another key", &req));
        assert_no_secret(&t, &req, &encoded);
    }

    #[test]
    fn plain_signing_secret_is_utf8_bytes() {
        let mut c = cfg();
        c.signing_secret = Some(Secret::new("PLAINSIGNINGxyzzy"));
        let t = build("h", TargetKind::Http(c));
        let req = http_request(&t, &databricks_event());
        assert!(verify(b"PLAINSIGNINGxyzzy", &req));
        assert_no_secret(&t, &req, "PLAINSIGNINGxyzzy");
        // A known answer: HMAC-SHA256("key", "id.1.body").
        assert_eq!(
            sign(b"key", "id", 1, b"body"),
            format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(
                    Hmac::<Sha256>::new_from_slice(b"key")
                        .unwrap()
                        .chain_update(b"id.1.body")
                        .finalize()
                        .into_bytes()
                )
            )
        );
    }

    #[test]
    fn bad_whsec_secret_is_a_build_error_without_the_secret() {
        let mut c = cfg();
        c.signing_secret = Some(Secret::new("whsec_NOT*BASE64*SECRETzork"));
        let err = build_err("h", TargetKind::Http(c));
        assert_eq!(err.path, "targets.h.signing_secret");
        assert!(!format!("{err} {err:?}").contains("SECRETzork"));
    }

    #[test]
    fn header_errors_never_quote_the_value() {
        let mut c = cfg();
        c.headers = BTreeMap::from([(
            "Authorization".into(),
            Secret::new("Bearer {{ HDRSECRETgnusto | nosuchfilter }}"),
        )]);
        let err = build_err("h", TargetKind::Http(c));
        assert_eq!(err.path, "targets.h.headers.Authorization");
        assert!(!format!("{err} {err:?}").contains("HDRSECRETgnusto"));
        assert!(!format!("{err} {err:?}").contains("nosuchfilter"));

        let mut c = cfg();
        c.headers = BTreeMap::from([("X-Bad".into(), Secret::new("line\nHDRSECRETgnusto"))]);
        let err = build_err("h", TargetKind::Http(c));
        assert_eq!(err.path, "targets.h.headers.X-Bad");
        assert!(!format!("{err} {err:?}").contains("HDRSECRETgnusto"));
    }

    #[test]
    fn bad_method_is_a_build_error() {
        let mut c = cfg();
        c.method = "NOT A METHOD".into();
        assert_eq!(build_err("h", TargetKind::Http(c)).path, "targets.h.method");
    }
}

//! Shared fixtures for the target tests: the two sample events and small helpers.

use std::time::Duration;

use bytes::Bytes;

use super::{Action, DeliveryContext, OutboundRequest, Target};
use crate::config::{ConfigError, RetryConfig, TargetConfig, TargetKind};
use crate::event::Event;
use crate::verify::Scheme;

pub(crate) const DATABRICKS_BODY: &str = super::template::SAMPLE_BODY;

pub(crate) const MLFLOW_BODY: &str = r#"{"entity": "model_version_alias", "action": "created", "timestamp": "2026-11-25T14:32:45.203614+00:00", "data": {"name": "gateway-demo-model", "alias": "champion", "version": "1"}}"#;

pub(crate) const EVENT_ID: &str = "0d6c2a53-4f3e-4c1a-9d1e-5b7f8a9c0e21";
pub(crate) const NOW: i64 = 1_790_000_000;

pub(crate) fn databricks_event() -> Event {
    super::template::sample_event()
}

pub(crate) fn mlflow_event() -> Event {
    Event {
        scheme: Scheme::Mlflow,
        name: "model_version_alias.created".into(),
        counterpart: None,
        model: Some("gateway-demo-model".into()),
        version: Some("1".into()),
        from_stage: None,
        to_stage: None,
        alias: Some("champion".into()),
        tags: vec![],
        comment: None,
        text: None,
        sender_timestamp_ms: Some(1_795_617_165_203),
        webhook_id: None,
        json: serde_json::from_str(MLFLOW_BODY).unwrap(),
        raw: Bytes::from_static(MLFLOW_BODY.as_bytes()),
    }
}

pub(crate) fn context(event: &Event) -> DeliveryContext<'_> {
    DeliveryContext {
        event,
        event_id: EVENT_ID,
        endpoint: "registry",
        attempt: 1,
        replayed_at_ms: None,
        now_unix: NOW,
    }
}

pub(crate) fn retry() -> RetryConfig {
    RetryConfig {
        timeout: Duration::from_secs(5),
        initial: Duration::from_secs(1),
        max_delay: Duration::from_secs(600),
        max_attempts: 12,
        max_age: Duration::from_secs(86_400),
        max_retry_after: Duration::from_secs(3600),
    }
}

pub(crate) fn target_config(kind: TargetKind) -> TargetConfig {
    TargetConfig {
        kind,
        retry: retry(),
        concurrency: 4,
        rate_per_sec: None,
    }
}

pub(crate) fn build(name: &str, kind: TargetKind) -> Target {
    Target::build(name, &target_config(kind)).unwrap()
}

pub(crate) fn build_err(name: &str, kind: TargetKind) -> ConfigError {
    match Target::build(name, &target_config(kind)) {
        Ok(t) => panic!("expected a build error, got {t:?}"),
        Err(e) => e,
    }
}

pub(crate) fn http_request(t: &Target, e: &Event) -> OutboundRequest {
    match t.prepare(&context(e)).unwrap() {
        Action::Http(r) => r,
        other => panic!("expected an HTTP request, got {other:?}"),
    }
}

pub(crate) fn body_json(r: &OutboundRequest) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap()
}

pub(crate) fn body_str(r: &OutboundRequest) -> &str {
    std::str::from_utf8(&r.body).unwrap()
}

pub(crate) fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The secret appears in none of the ways a request or target can be shown.
pub(crate) fn assert_no_secret(t: &Target, req: &OutboundRequest, secret: &str) {
    let redacted = req.redacted();
    let shown = [
        serde_json::to_string(&redacted).unwrap(),
        redacted.to_string(),
        format!("{redacted:?}"),
        req.to_string(),
        format!("{req:?}"),
        format!("{:?}", Action::Http(req.clone())),
        format!("{t:?}"),
    ];
    for s in shown {
        assert!(!s.contains(secret), "secret {secret:?} shown in {s}");
    }
}

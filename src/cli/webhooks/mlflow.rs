//! The open-source MLflow webhooks REST API (MLflow 3.3+, checked against 3.17.2), as its
//! `WebhookService` declares it:
//!
//! | call | request |
//! | --- | --- |
//! | create | `POST /api/2.0/mlflow/webhooks` `{name, url, events, description, secret, status}` |
//! | list | `GET /api/2.0/mlflow/webhooks?max_results=&page_token=` |
//! | update | `PATCH /api/2.0/mlflow/webhooks/{id}` with the fields to change |
//! | delete | `DELETE /api/2.0/mlflow/webhooks/{id}` |
//! | test | `POST /api/2.0/mlflow/webhooks/{id}/test` `{event?}` |
//!
//! Events travel as `{"entity": "MODEL_VERSION", "action": "CREATED"}` (proto enum names) and
//! are `model_version.created` everywhere else. Webhooks are registry-wide (no model filter) and
//! have a required name; statuses are only `ACTIVE` and `DISABLED`.

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::api::{Api, str_field};
use super::plan::Webhook;
use super::sender::{NewWebhook, State, TestOutcome, Update};

const BASE: &str = "/api/2.0/mlflow/webhooks";
/// The largest page the server accepts.
const PAGE_SIZE: &str = "1000";
const MAX_PAGES: usize = 100;

pub struct Mlflow {
    pub api: Api,
}

fn status_name(state: State) -> &'static str {
    match state {
        // MLflow has no test mode. A DISABLED webhook is never fired by registry events, yet
        // its test API still delivers to it: the same contract as Databricks' TEST_MODE.
        State::Test | State::Disabled => "DISABLED",
        State::Active => "ACTIVE",
    }
}

/// `model_version.created` → `{"entity": "MODEL_VERSION", "action": "CREATED"}`.
fn event_to_wire(name: &str) -> anyhow::Result<Value> {
    let (entity, action) = name
        .split_once('.')
        .ok_or_else(|| anyhow::anyhow!("{name}: MLflow events are named entity.action"))?;
    Ok(json!({
        "entity": entity.to_ascii_uppercase(),
        "action": action.to_ascii_uppercase(),
    }))
}

fn event_from_wire(v: &Value) -> Option<String> {
    let entity = v.get("entity")?.as_str()?;
    let action = v.get("action")?.as_str()?;
    Some(format!(
        "{}.{}",
        entity.to_ascii_lowercase(),
        action.to_ascii_lowercase()
    ))
}

fn events_to_wire(events: &[String]) -> anyhow::Result<Value> {
    Ok(Value::Array(
        events
            .iter()
            .map(|e| event_to_wire(e))
            .collect::<anyhow::Result<_>>()?,
    ))
}

fn parse_webhook(v: &Value) -> Webhook {
    Webhook {
        id: str_field(v, "webhook_id").unwrap_or_default(),
        name: str_field(v, "name"),
        url: str_field(v, "url"),
        events: v
            .get("events")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(event_from_wire).collect())
            .unwrap_or_default(),
        status: str_field(v, "status").unwrap_or_else(|| "ACTIVE".into()),
        description: str_field(v, "description").filter(|d| !d.is_empty()),
        model: None,
        ssl_verification: None,
        job: None,
    }
}

fn webhook_of(answer: &Value) -> Webhook {
    parse_webhook(answer.get("webhook").unwrap_or(answer))
}

/// A valid MLflow webhook name for an endpoint: letters, digits, `.`, `_`, `-`, starting and
/// ending with a letter or digit, under 63 characters.
pub fn webhook_name(endpoint: &str) -> String {
    let mut name: String = format!("hookgate-{endpoint}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(62)
        .collect();
    while name.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        name.pop();
    }
    name
}

impl Mlflow {
    pub async fn list(&self) -> anyhow::Result<Vec<Webhook>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query = vec![("max_results", PAGE_SIZE)];
            if let Some(t) = &token {
                query.push(("page_token", t));
            }
            let page = self.api.call(Method::GET, BASE, None, &query, None).await?;
            // An empty list is answered as `{}`.
            if let Some(items) = page.get("webhooks").and_then(Value::as_array) {
                out.extend(items.iter().map(parse_webhook));
            }
            token = str_field(&page, "next_page_token").filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok(out);
            }
        }
        anyhow::bail!("MLflow kept returning pages after {MAX_PAGES}; giving up")
    }

    pub async fn create(&self, new: &NewWebhook) -> anyhow::Result<Webhook> {
        if new.model.is_some() {
            anyhow::bail!(
                "MLflow webhooks are registry-wide; narrow by model with a route's `models`"
            );
        }
        let mut body = Map::new();
        body.insert("name".into(), json!(new.name));
        body.insert("url".into(), json!(new.spec.url));
        body.insert("events".into(), events_to_wire(&new.events)?);
        body.insert("description".into(), json!(new.description));
        if let Some(s) = &new.spec.secret {
            body.insert("secret".into(), json!(s.expose()));
        }
        body.insert("status".into(), json!(status_name(new.state)));
        let answer = self
            .api
            .call(Method::POST, BASE, None, &[], Some(&Value::Object(body)))
            .await?;
        Ok(webhook_of(&answer))
    }

    pub async fn update(&self, id: &str, update: &Update) -> anyhow::Result<Webhook> {
        let mut body = Map::new();
        if let Some(e) = &update.events {
            body.insert("events".into(), events_to_wire(e)?);
        }
        if let Some(d) = &update.description {
            body.insert("description".into(), json!(d));
        }
        if let Some(s) = update.state {
            body.insert("status".into(), json!(status_name(s)));
        }
        if let Some(spec) = &update.spec {
            body.insert("url".into(), json!(spec.url));
            if let Some(s) = &spec.secret {
                body.insert("secret".into(), json!(s.expose()));
            }
        }
        let answer = self
            .api
            .call(
                Method::PATCH,
                &format!("{BASE}/{{id}}"),
                Some(id),
                &[],
                Some(&Value::Object(body)),
            )
            .await?;
        Ok(super::sender::updated(&answer, webhook_of))
    }

    /// MLflow sends its example payload for `event` (default: the webhook's first event) and
    /// reports the receiver's answer, or why there was none.
    pub async fn test(&self, id: &str, event: Option<&str>) -> anyhow::Result<TestOutcome> {
        let mut body = json!({});
        if let Some(e) = event {
            body["event"] = event_to_wire(e)?;
        }
        let answer = self
            .api
            .call(
                Method::POST,
                &format!("{BASE}/{{id}}/test"),
                Some(id),
                &[],
                Some(&body),
            )
            .await?;
        let result = answer.get("result").cloned().unwrap_or(Value::Null);
        Ok(TestOutcome {
            status: result
                .get("response_status")
                .and_then(Value::as_u64)
                .and_then(|s| u16::try_from(s).ok()),
            body: str_field(&result, "response_body"),
            error: str_field(&result, "error_message"),
        })
    }

    pub async fn delete(&self, id: &str) -> anyhow::Result<()> {
        self.api
            .call(
                Method::DELETE,
                &format!("{BASE}/{{id}}"),
                Some(id),
                &[],
                None,
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_use_proto_enum_names_on_the_wire() {
        assert_eq!(
            event_to_wire("model_version_alias.created").unwrap(),
            json!({"entity": "MODEL_VERSION_ALIAS", "action": "CREATED"})
        );
        assert_eq!(
            event_from_wire(&json!({"entity": "BUDGET_POLICY", "action": "EXCEEDED"})).unwrap(),
            "budget_policy.exceeded"
        );
        assert!(event_to_wire("MODEL_VERSION_CREATED").is_err());
    }

    #[test]
    fn parses_a_listed_webhook() {
        let w = webhook_of(&json!({"webhook": {
            "webhook_id": "cdf997e6", "name": "hookgate-mlflow",
            "description": "managed by hookgate: endpoint=mlflow fp=abc",
            "url": "http://127.0.0.1:9/hooks/mlflow",
            "events": [{"entity": "MODEL_VERSION", "action": "CREATED"}],
            "status": "DISABLED", "creation_timestamp": 1, "last_updated_timestamp": 1
        }}));
        assert_eq!(w.id, "cdf997e6");
        assert_eq!(w.name.as_deref(), Some("hookgate-mlflow"));
        assert_eq!(w.events, vec!["model_version.created"]);
        assert_eq!(w.status, "DISABLED");
    }

    #[test]
    fn webhook_names_follow_mlflow_rules() {
        assert_eq!(webhook_name("mlflow"), "hookgate-mlflow");
        assert_eq!(webhook_name("ml flow/prod_"), "hookgate-ml-flow-prod");
        assert_eq!(webhook_name(&"x".repeat(100)).len(), 62);
    }
}

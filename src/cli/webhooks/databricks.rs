//! The Databricks registry-webhooks REST API (`/api/2.0/mlflow/registry-webhooks/*`), as the
//! Databricks page on registry webhooks documents it: `create`, `list`, `update` (PATCH),
//! `test` and `delete`, authenticated with a personal access token.

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::api::{Api, str_field};
use super::plan::Webhook;
use super::sender::{NewWebhook, State, TestOutcome, Update, UrlSpec};

const BASE: &str = "/api/2.0/mlflow/registry-webhooks";
/// A bound on pagination, so a sender that keeps returning a token cannot loop us forever.
const MAX_PAGES: usize = 100;

pub struct Databricks {
    pub api: Api,
}

fn status_name(state: State) -> &'static str {
    match state {
        State::Test => "TEST_MODE",
        State::Active => "ACTIVE",
        State::Disabled => "DISABLED",
    }
}

/// `http_url_spec` as sent: TLS verification is always asked for explicitly, so a webhook that
/// was switched off verification by hand is switched back when hookgate rewrites it.
fn url_spec(spec: &UrlSpec) -> Value {
    let mut o = Map::new();
    o.insert("url".into(), json!(spec.url));
    if let Some(s) = &spec.secret {
        o.insert("secret".into(), json!(s.expose()));
    }
    if let Some(a) = &spec.authorization {
        o.insert("authorization".into(), json!(a.expose()));
    }
    o.insert("enable_ssl_verification".into(), json!(true));
    Value::Object(o)
}

/// A `RegistryWebhook` object from `list`, `create` or `update`.
fn parse_webhook(v: &Value) -> Webhook {
    let http = v.get("http_url_spec");
    let job = v.get("job_spec").map(|j| {
        let id = str_field(j, "job_id").unwrap_or_default();
        match str_field(j, "workspace_url") {
            Some(ws) => format!("job {id} in {ws}"),
            None => format!("job {id}"),
        }
    });
    Webhook {
        id: str_field(v, "id").unwrap_or_default(),
        name: None,
        url: http.and_then(|h| str_field(h, "url")),
        events: v
            .get("events")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        // Databricks documents ACTIVE as the default when a webhook is created without one.
        status: str_field(v, "status").unwrap_or_else(|| "ACTIVE".into()),
        description: str_field(v, "description"),
        model: str_field(v, "model_name").filter(|m| !m.is_empty()),
        ssl_verification: http
            .and_then(|h| h.get("enable_ssl_verification"))
            .and_then(Value::as_bool),
        job,
    }
}

fn webhook_of(answer: &Value) -> Webhook {
    parse_webhook(answer.get("webhook").unwrap_or(answer))
}

impl Databricks {
    /// `GET …/list`, following `next_page_token`; `model_name` when given.
    pub async fn list(&self, model: Option<&str>) -> anyhow::Result<Vec<Webhook>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query: Vec<(&str, &str)> = Vec::new();
            if let Some(m) = model {
                query.push(("model_name", m));
            }
            if let Some(t) = &token {
                query.push(("page_token", t));
            }
            let page = self
                .api
                .call(Method::GET, &format!("{BASE}/list"), None, &query, None)
                .await?;
            if let Some(items) = page.get("webhooks").and_then(Value::as_array) {
                out.extend(items.iter().map(parse_webhook));
            }
            token = str_field(&page, "next_page_token").filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok(out);
            }
        }
        anyhow::bail!("Databricks kept returning pages after {MAX_PAGES}; giving up")
    }

    /// `POST …/create`.
    pub async fn create(&self, new: &NewWebhook) -> anyhow::Result<Webhook> {
        let mut body = Map::new();
        if let Some(m) = &new.model {
            body.insert("model_name".into(), json!(m));
        }
        body.insert("events".into(), json!(new.events));
        body.insert("description".into(), json!(new.description));
        body.insert("status".into(), json!(status_name(new.state)));
        body.insert("http_url_spec".into(), url_spec(&new.spec));
        let answer = self
            .api
            .call(
                Method::POST,
                &format!("{BASE}/create"),
                None,
                &[],
                Some(&Value::Object(body)),
            )
            .await?;
        Ok(webhook_of(&answer))
    }

    /// `PATCH …/update` with `id` and only the fields that change.
    pub async fn update(&self, id: &str, update: &Update) -> anyhow::Result<Webhook> {
        let mut body = Map::new();
        body.insert("id".into(), json!(id));
        if let Some(e) = &update.events {
            body.insert("events".into(), json!(e));
        }
        if let Some(d) = &update.description {
            body.insert("description".into(), json!(d));
        }
        if let Some(s) = update.state {
            body.insert("status".into(), json!(status_name(s)));
        }
        if let Some(spec) = &update.spec {
            body.insert("http_url_spec".into(), url_spec(spec));
        }
        let answer = self
            .api
            .call(
                Method::PATCH,
                &format!("{BASE}/update"),
                None,
                &[],
                Some(&Value::Object(body)),
            )
            .await?;
        Ok(super::sender::updated(&answer, webhook_of))
    }

    /// `POST …/test`: Databricks fires the event and returns what the URL answered.
    pub async fn test(&self, id: &str, event: Option<&str>) -> anyhow::Result<TestOutcome> {
        let mut body = json!({ "id": id });
        if let Some(e) = event {
            body["event"] = json!(e);
        }
        let answer = self
            .api
            .call(
                Method::POST,
                &format!("{BASE}/test"),
                None,
                &[],
                Some(&body),
            )
            .await?;
        // The REST API answers `{"webhook": {"status_code": 200, "body": "OK"}}` (the SDKs'
        // `TestRegistryWebhookResponse`); the page's example shows the Python client's value,
        // `{"status": 200, "body": "OK"}`. Either is read.
        let result = answer.get("webhook").unwrap_or(&answer);
        let status = ["status_code", "status"]
            .iter()
            .find_map(|k| result.get(*k).and_then(Value::as_u64))
            .and_then(|s| u16::try_from(s).ok());
        Ok(TestOutcome {
            status,
            body: str_field(result, "body"),
            error: None,
        })
    }

    /// `DELETE …/delete`. The id goes in the query (the API reference) and in a JSON body (the
    /// page's curl example), so both readings of the API find it.
    pub async fn delete(&self, id: &str) -> anyhow::Result<()> {
        self.api
            .call(
                Method::DELETE,
                &format!("{BASE}/delete"),
                None,
                &[("id", id)],
                Some(&json!({ "id": id })),
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_webhook_objects() {
        let http = json!({"webhook": {
            "id": "1234567890", "creation_timestamp": 1571440826026u64,
            "last_updated_timestamp": 1582768296651u64, "status": "TEST_MODE",
            "events": ["MODEL_VERSION_CREATED"],
            "http_url_spec": {"url": "https://hooks.slack.com/services/...", "enable_ssl_verification": true}
        }});
        let w = webhook_of(&http);
        assert_eq!(w.id, "1234567890");
        assert_eq!(w.status, "TEST_MODE");
        assert_eq!(w.events, vec!["MODEL_VERSION_CREATED"]);
        assert_eq!(
            w.url.as_deref(),
            Some("https://hooks.slack.com/services/...")
        );
        assert_eq!(w.ssl_verification, Some(true));
        assert_eq!(w.model, None);

        let job = json!({"id": "1234567891", "status": "TEST_MODE", "model_name": "m",
            "events": ["TRANSITION_REQUEST_CREATED"],
            "job_spec": {"job_id": "1", "workspace_url": "https://my-databricks-workspace.com"}});
        let w = parse_webhook(&job);
        assert_eq!(w.url, None);
        assert_eq!(w.model.as_deref(), Some("m"));
        assert_eq!(
            w.job.as_deref(),
            Some("job 1 in https://my-databricks-workspace.com")
        );
    }

    #[test]
    fn url_spec_carries_credentials_and_asks_for_tls_verification() {
        let spec = UrlSpec {
            url: "https://gw/hooks/databricks".into(),
            secret: Some(crate::secret::Secret::new("s")),
            authorization: None,
        };
        assert_eq!(
            url_spec(&spec),
            json!({"url": "https://gw/hooks/databricks", "secret": "s", "enable_ssl_verification": true})
        );
    }
}

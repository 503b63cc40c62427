//! Databricks job: `POST {workspace_url}/api/2.1/jobs/run-now`, the way Databricks' own job
//! webhooks start a job.
//!
//! The event is passed as one parameter, `event_message`, a JSON string, so an existing
//! notebook's `json.loads(dbutils.widgets.get("event_message"))` gets the dict a Databricks job
//! webhook would give it. For a Databricks event that is the body exactly as received. An MLflow
//! body has none of the fields such a notebook reads, so it is mapped to the Databricks shape
//! ([`Event::databricks_shape`]): `event` (the Databricks name where one exists, else the MLflow
//! `entity.action`), `event_timestamp` (ms), `model_name`, `version` (a string), `alias`, `tags`
//! (a list of `{key, value}`), `text`, and the original body under `mlflow`; prompt events carry
//! `prompt_name` / `prompt_version` instead of `model_name` / `version`. An `event_message`
//! template replaces both; the template variable `databricks` is this shape, so a template can
//! wrap or extend it (`{"event": {{ databricks | tojson }}, ...}`).
//!
//! `idempotency_token` is `sha256_hex("{event_id}:{target}")`: identical on every retry of one
//! delivery (a retry after a lost answer never starts a second run), different for two targets
//! that start jobs for the same event. 64 chars, Databricks' maximum.
//!
//! [`Event::databricks_shape`]: crate::event::Event::databricks_shape

use http::Method;
use sha2::{Digest, Sha256};

use super::template::{Render, RenderError, Templates, Tpl};
use super::{OutboundRequest, config_error, parse_base_url};
use crate::config::{ConfigError, DatabricksJobConfig, ParameterStyle};
use crate::secret::Secret;
use crate::verify::Scheme;

pub(crate) struct DatabricksJob {
    url: String,
    /// `Bearer <token>`.
    authorization: Secret,
    job_id: i64,
    parameters: ParameterStyle,
    event_message: Option<Tpl>,
}

#[derive(serde::Serialize)]
struct RunNow<'a> {
    job_id: i64,
    idempotency_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    job_parameters: Option<EventMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notebook_params: Option<EventMessage<'a>>,
}

#[derive(serde::Serialize)]
struct EventMessage<'a> {
    event_message: &'a str,
}

impl DatabricksJob {
    pub(crate) fn build(
        name: &str,
        c: &DatabricksJobConfig,
        templates: &mut Templates,
    ) -> Result<Self, ConfigError> {
        if c.job_id <= 0 {
            return Err(config_error(name, "job_id", "must be a positive job id"));
        }
        if c.token.expose().trim().is_empty() {
            return Err(config_error(name, "token", "must not be empty"));
        }
        let base = parse_base_url(name, "workspace_url", &c.workspace_url)?;
        Ok(DatabricksJob {
            url: format!("{base}/api/2.1/jobs/run-now"),
            authorization: Secret::new(format!("Bearer {}", c.token.expose().trim())),
            job_id: c.job_id,
            parameters: c.parameters,
            event_message: c
                .event_message
                .as_deref()
                .map(|t| templates.add("event_message", t))
                .transpose()?,
        })
    }

    pub(crate) fn prepare(&self, r: &Render<'_>) -> Result<OutboundRequest, RenderError> {
        let event = r.event();
        let message = match (&self.event_message, event.scheme) {
            (Some(t), _) => r.render(t)?,
            // Byte for byte: the notebook gets what Databricks would have passed it.
            (None, Scheme::Databricks) => String::from_utf8_lossy(&event.raw).into_owned(),
            (None, Scheme::Mlflow) => event.databricks_shape().to_string(),
        };
        let params = Some(EventMessage {
            event_message: &message,
        });
        let (job_parameters, notebook_params) = match self.parameters {
            ParameterStyle::JobParameters => (params, None),
            ParameterStyle::NotebookParams => (None, params),
        };
        let body = RunNow {
            job_id: self.job_id,
            idempotency_token: idempotency_token(&r.ctx.idempotency_key(), r.target),
            job_parameters,
            notebook_params,
        };
        Ok(OutboundRequest::new(Method::POST, self.url.as_str())
            .secret_header("Authorization", self.authorization.expose())
            .header("Content-Type", "application/json")
            .body(serde_json::to_vec(&body).expect("run-now serializes")))
    }
}

/// Lowercase hex SHA-256 of `"{key}:{target}"`, `key` being the delivery's
/// [`idempotency_key`](crate::targets::DeliveryContext::idempotency_key).
pub(crate) fn idempotency_token(key: &str, target: &str) -> String {
    hex::encode(Sha256::digest(format!("{key}:{target}")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::TargetKind;
    use crate::targets::testutil::*;

    const TOKEN: &str = "dapiDATABRICKSSECRETfrobozz";

    fn cfg() -> DatabricksJobConfig {
        DatabricksJobConfig {
            workspace_url: "https://adb-123.azuredatabricks.net/".into(),
            job_id: 42,
            token: Secret::new(TOKEN),
            parameters: ParameterStyle::JobParameters,
            event_message: None,
        }
    }

    /// The `event_message` string of a run-now request, checking the rest of the request.
    fn event_message(t: &crate::targets::Target, e: &crate::event::Event) -> String {
        let req = http_request(t, e);
        assert_eq!(req.method, Method::POST);
        assert_eq!(
            req.url,
            "https://adb-123.azuredatabricks.net/api/2.1/jobs/run-now"
        );
        assert_eq!(
            req.headers,
            headers(&[
                ("Authorization", &format!("Bearer {TOKEN}")),
                ("Content-Type", "application/json"),
            ])
        );
        let body = body_json(&req);
        let message = body["job_parameters"]["event_message"].as_str().unwrap();
        let token = idempotency_token(EVENT_ID, "deploy-job");
        assert_eq!(
            body_str(&req),
            format!(
                r#"{{"job_id":42,"idempotency_token":"{token}","job_parameters":{{"event_message":{}}}}}"#,
                serde_json::to_string(message).unwrap()
            )
        );
        message.to_owned()
    }

    #[test]
    fn run_now_with_the_databricks_body_as_event_message() {
        let t = build("deploy-job", TargetKind::DatabricksJob(cfg()));
        let e = databricks_event();
        let message = event_message(&t, &e);
        // Byte for byte, not a re-serialization of the parsed body.
        assert_eq!(message, DATABRICKS_BODY);
        // What the notebook does: json.loads(dbutils.widgets.get("event_message")).
        let decoded: serde_json::Value = serde_json::from_str(&message).unwrap();
        assert_eq!(decoded, e.json);
    }

    #[test]
    fn run_now_with_an_mlflow_event_in_the_databricks_shape() {
        let t = build("deploy-job", TargetKind::DatabricksJob(cfg()));
        let e = mlflow_event();
        let message = event_message(&t, &e);
        assert_ne!(message, MLFLOW_BODY);
        let decoded: serde_json::Value = serde_json::from_str(&message).unwrap();
        assert_eq!(
            decoded,
            json!({
                "event": "model_version_alias.created",
                "event_timestamp": 1_795_617_165_203_i64,
                "model_name": "gateway-demo-model",
                "version": "1",
                "alias": "champion",
                "text": "Alias 'champion' was set on version 1 of registered model 'gateway-demo-model'.",
                "mlflow": serde_json::from_str::<serde_json::Value>(MLFLOW_BODY).unwrap(),
            })
        );
        assert_eq!(decoded, e.databricks_shape());
    }

    #[test]
    fn notebook_params_and_template() {
        let mut c = cfg();
        c.parameters = ParameterStyle::NotebookParams;
        c.event_message = Some(r#"{"model": {{ event.model | tojson }}}"#.into());
        let t = build("j", TargetKind::DatabricksJob(c));
        let body = body_json(&http_request(&t, &mlflow_event()));
        assert_eq!(
            body,
            json!({
                "job_id": 42,
                "idempotency_token": idempotency_token(EVENT_ID, "j"),
                "notebook_params": {"event_message": "{\"model\": \"gateway-demo-model\"}"},
            })
        );
    }

    #[test]
    fn idempotency_token_is_stable_and_per_target() {
        let a = build("job-a", TargetKind::DatabricksJob(cfg()));
        let b = build("job-b", TargetKind::DatabricksJob(cfg()));
        let e = databricks_event();
        let token_of = |t: &crate::targets::Target, attempt: u32, now: i64| {
            let mut ctx = context(&e);
            ctx.attempt = attempt;
            ctx.now_unix = now;
            match t.prepare(&ctx).unwrap() {
                crate::targets::Action::Http(r) => body_json(&r)["idempotency_token"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                _ => unreachable!(),
            }
        };
        let first = token_of(&a, 1, NOW);
        assert_eq!(first, token_of(&a, 7, NOW + 3600), "same on every retry");
        assert_ne!(first, token_of(&b, 1, NOW), "different per target");
        assert_eq!(first.len(), 64);
        assert!(
            first
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
        assert_eq!(
            idempotency_token("e", "t"),
            // sha256("e:t")
            hex::encode(Sha256::digest(b"e:t"))
        );
        let mut other = context(&e);
        other.event_id = "another-event";
        let Ok(crate::targets::Action::Http(r)) = a.prepare(&other) else {
            panic!()
        };
        assert_ne!(body_json(&r)["idempotency_token"], json!(first));
    }

    #[test]
    fn token_is_redacted_and_job_id_validated() {
        let t = build("j", TargetKind::DatabricksJob(cfg()));
        let req = http_request(&t, &databricks_event());
        assert_no_secret(&t, &req, "DATABRICKSSECRETfrobozz");
        let mut c = cfg();
        c.job_id = 0;
        assert_eq!(
            build_err("j", TargetKind::DatabricksJob(c)).path,
            "targets.j.job_id"
        );
    }
}

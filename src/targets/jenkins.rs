//! Jenkins: `POST {url}/job/{a}/job/{b}/buildWithParameters` for `job = "a/b"` (folders), with
//! form-encoded parameters. Jenkins answers 201 Created (queued).
//!
//! Authentication: a job's remote trigger token (`?token=`, shown redacted) and/or a user API
//! token (`Authorization: Basic`), which also spares the CSRF crumb.

use std::collections::BTreeMap;

use base64::Engine as _;
use http::Method;

use super::template::{Render, RenderError, Templates, Tpl};
use super::{
    OutboundRequest, REDACTED, config_error, encode_segment, form_encode, parse_url, redact_url,
};
use crate::config::{ConfigError, JenkinsConfig};
use crate::secret::Secret;

pub(crate) struct Jenkins {
    /// Without the trigger token.
    url: String,
    shown_url: String,
    trigger_token: Option<Secret>,
    /// `Basic base64(user:api_token)`.
    authorization: Option<Secret>,
    /// `None`: the default parameters.
    parameters: Option<Vec<(String, Tpl)>>,
}

impl Jenkins {
    pub(crate) fn build(
        name: &str,
        c: &JenkinsConfig,
        templates: &mut Templates,
    ) -> Result<Self, ConfigError> {
        let base = parse_url(name, "url", &c.url)?;
        if base.query().is_some() || base.fragment().is_some() {
            return Err(config_error(
                name,
                "url",
                "must be the Jenkins base URL, without query or fragment",
            ));
        }
        let segments: Vec<&str> = c.job.split('/').collect();
        if segments.iter().any(|s| s.trim().is_empty()) {
            return Err(config_error(
                name,
                "job",
                "must be a job name or a folder path like \"folder/job\"",
            ));
        }
        let path: String = segments
            .iter()
            .map(|s| format!("/job/{}", encode_segment(s)))
            .collect();
        let url = format!(
            "{}{path}/buildWithParameters",
            base.as_str().trim_end_matches('/')
        );
        let shown_url = format!(
            "{}{path}/buildWithParameters",
            redact_url(&base).trim_end_matches('/')
        );
        let authorization = match (&c.user, &c.api_token) {
            (Some(user), Some(token)) => Some(Secret::new(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", token.expose()))
            ))),
            (None, None) => None,
            (Some(_), None) => return Err(config_error(name, "api_token", "`user` needs it")),
            (None, Some(_)) => return Err(config_error(name, "user", "`api_token` needs it")),
        };
        if authorization.is_none() && c.trigger_token.is_none() {
            return Err(config_error(
                name,
                "trigger_token",
                "set a trigger_token, or user and api_token",
            ));
        }
        let parameters = if c.parameters.is_empty() {
            None
        } else {
            Some(compile(templates, &c.parameters)?)
        };
        Ok(Jenkins {
            url,
            shown_url,
            trigger_token: c.trigger_token.clone(),
            authorization,
            parameters,
        })
    }

    pub(crate) fn prepare(&self, r: &Render<'_>) -> Result<OutboundRequest, RenderError> {
        let (url, shown) = match &self.trigger_token {
            Some(t) => (
                format!("{}?token={}", self.url, form_encode(t.expose())),
                format!("{}?token={REDACTED}", self.shown_url),
            ),
            None => (self.url.clone(), self.shown_url.clone()),
        };
        let body = r
            .parameters(
                self.parameters.as_deref(),
                "",
                &["MODEL", "VERSION", "FROM_STAGE", "TO_STAGE", "ALIAS"],
            )?
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut req = OutboundRequest::new(Method::POST, url).redact_url_as(shown);
        if let Some(auth) = &self.authorization {
            req = req.secret_header("Authorization", auth.expose());
        }
        Ok(req
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body))
    }
}

fn compile(
    templates: &mut Templates,
    params: &BTreeMap<String, String>,
) -> Result<Vec<(String, Tpl)>, ConfigError> {
    params
        .iter()
        .map(|(k, src)| Ok((k.clone(), templates.add(&format!("parameters.{k}"), src)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TargetKind;
    use crate::targets::testutil::*;

    const TRIGGER: &str = "JENKINSTRIGGERfrotz";
    const API_TOKEN: &str = "11aaJENKINSAPIgnusto";

    fn cfg() -> JenkinsConfig {
        JenkinsConfig {
            url: "https://ci.example.com/".into(),
            job: "ml/deploy model".into(),
            user: None,
            api_token: None,
            trigger_token: Some(Secret::new(TRIGGER)),
            parameters: BTreeMap::new(),
        }
    }

    #[test]
    fn trigger_token_and_default_parameters() {
        let t = build("jk", TargetKind::Jenkins(cfg()));
        let req = http_request(&t, &databricks_event());
        assert_eq!(req.method, Method::POST);
        assert_eq!(
            req.url,
            format!(
                "https://ci.example.com/job/ml/job/deploy%20model/buildWithParameters?token={TRIGGER}"
            )
        );
        assert_eq!(
            req.headers,
            headers(&[("Content-Type", "application/x-www-form-urlencoded")])
        );
        assert_eq!(
            body_str(&req),
            format!(
                "EVENT=MODEL_VERSION_TRANSITIONED_STAGE&EVENT_ID={EVENT_ID}\
                 &MODEL=Airline_Delay_SparkML&VERSION=8&FROM_STAGE=None&TO_STAGE=Production"
            )
        );
        let req = http_request(&t, &mlflow_event());
        assert_eq!(
            body_str(&req),
            format!(
                "EVENT=model_version_alias.created&EVENT_ID={EVENT_ID}\
                 &MODEL=gateway-demo-model&VERSION=1&ALIAS=champion"
            )
        );
        assert_eq!(
            req.redacted().url,
            "https://ci.example.com/job/ml/job/deploy%20model/buildWithParameters?token=[redacted]"
        );
        assert_no_secret(&t, &req, TRIGGER);
    }

    #[test]
    fn user_api_token_and_configured_parameters() {
        let mut c = cfg();
        c.url = "http://jenkins.internal:8080/ci".into();
        c.job = "deploy".into();
        c.trigger_token = None;
        c.user = Some("bot".into());
        c.api_token = Some(Secret::new(API_TOKEN));
        c.parameters = BTreeMap::from([
            ("MODEL_NAME".into(), "{{ event.model }}".into()),
            ("PROMOTE".into(), "{{ event.alias == 'champion' }}".into()),
        ]);
        let t = build("jk", TargetKind::Jenkins(c));
        let req = http_request(&t, &mlflow_event());
        assert_eq!(
            req.url,
            "http://jenkins.internal:8080/ci/job/deploy/buildWithParameters"
        );
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("bot:{API_TOKEN}"));
        assert_eq!(
            req.headers,
            headers(&[
                ("Authorization", &format!("Basic {basic}")),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ])
        );
        assert_eq!(body_str(&req), "MODEL_NAME=gateway-demo-model&PROMOTE=true");
        assert_no_secret(&t, &req, API_TOKEN);
        assert_no_secret(&t, &req, &basic);
    }

    #[test]
    fn auth_and_job_are_validated() {
        let mut c = cfg();
        c.trigger_token = None;
        assert_eq!(
            build_err("jk", TargetKind::Jenkins(c.clone())).path,
            "targets.jk.trigger_token"
        );
        c.user = Some("bot".into());
        assert_eq!(
            build_err("jk", TargetKind::Jenkins(c)).path,
            "targets.jk.api_token"
        );
        let mut c = cfg();
        c.job = "a//b".into();
        assert_eq!(
            build_err("jk", TargetKind::Jenkins(c)).path,
            "targets.jk.job"
        );
    }
}

//! GitLab pipeline trigger: `POST {base_url}/api/v4/projects/{project}/trigger/pipeline`, form
//! body `token=…&ref=…&variables[KEY]=…`. GitLab answers 201 Created.
//!
//! The trigger token travels in the body, so the body is what gets redacted. `project` is a
//! numeric id (sent as is) or a path, URL-encoded as one segment (`group%2Fproject`).

use std::collections::BTreeMap;

use http::Method;

use super::template::{Render, RenderError, Templates, Tpl};
use super::{OutboundRequest, REDACTED, config_error, encode_segment, form_encode, parse_base_url};
use crate::config::{ConfigError, GitlabConfig};
use crate::secret::Secret;

pub(crate) struct Gitlab {
    url: String,
    token: Secret,
    git_ref: String,
    /// `None`: the default `HOOKGATE_*` variables.
    variables: Option<Vec<(String, Tpl)>>,
}

impl Gitlab {
    pub(crate) fn build(
        name: &str,
        c: &GitlabConfig,
        templates: &mut Templates,
    ) -> Result<Self, ConfigError> {
        let project = c.project.trim();
        if project.is_empty() {
            return Err(config_error(name, "project", "must not be empty"));
        }
        if c.token.expose().trim().is_empty() {
            return Err(config_error(name, "token", "must not be empty"));
        }
        if c.git_ref.trim().is_empty() {
            return Err(config_error(name, "ref", "must not be empty"));
        }
        let project = if project.bytes().all(|b| b.is_ascii_digit()) {
            project.to_string()
        } else {
            encode_segment(project)
        };
        let base = parse_base_url(name, "base_url", &c.base_url)?;
        let variables = if c.variables.is_empty() {
            None
        } else {
            Some(compile_variables(name, templates, &c.variables)?)
        };
        Ok(Gitlab {
            url: format!("{base}/api/v4/projects/{project}/trigger/pipeline"),
            token: Secret::new(c.token.expose().trim()),
            git_ref: c.git_ref.clone(),
            variables,
        })
    }

    pub(crate) fn prepare(&self, r: &Render<'_>) -> Result<OutboundRequest, RenderError> {
        let mut rest = format!("ref={}", form_encode(&self.git_ref));
        for (k, v) in r.parameters(
            self.variables.as_deref(),
            "HOOKGATE_",
            &["MODEL", "VERSION", "TO_STAGE", "ALIAS"],
        )? {
            // Keys are restricted to [A-Za-z0-9_] at build, so the brackets are the only
            // punctuation; they are left readable, as GitLab's own examples write them.
            rest.push_str(&format!("&variables[{k}]={}", form_encode(&v)));
        }
        let body = format!("token={}&{rest}", form_encode(self.token.expose()));
        Ok(OutboundRequest::new(Method::POST, self.url.as_str())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .redact_body_as(format!("token={REDACTED}&{rest}")))
    }
}

/// GitLab variable keys may only hold letters, digits and `_`.
fn compile_variables(
    name: &str,
    templates: &mut Templates,
    vars: &BTreeMap<String, String>,
) -> Result<Vec<(String, Tpl)>, ConfigError> {
    vars.iter()
        .map(|(k, src)| {
            let key = format!("variables.{k}");
            if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(config_error(
                    name,
                    &key,
                    "a GitLab variable key may only contain letters, digits and _",
                ));
            }
            Ok((k.clone(), templates.add(&key, src)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TargetKind;
    use crate::targets::testutil::*;

    const TOKEN: &str = "glptt-GITLABSECRETxyzzy";

    fn cfg(project: &str) -> GitlabConfig {
        GitlabConfig {
            project: project.into(),
            token: Secret::new(TOKEN),
            git_ref: "main".into(),
            base_url: "https://gitlab.com".into(),
            variables: BTreeMap::new(),
        }
    }

    #[test]
    fn trigger_with_default_variables() {
        let t = build("gl", TargetKind::Gitlab(cfg("ml-platform/deploy")));
        let req = http_request(&t, &databricks_event());
        assert_eq!(req.method, Method::POST);
        assert_eq!(
            req.url,
            "https://gitlab.com/api/v4/projects/ml-platform%2Fdeploy/trigger/pipeline"
        );
        assert_eq!(
            req.headers,
            headers(&[("Content-Type", "application/x-www-form-urlencoded")])
        );
        assert_eq!(
            body_str(&req),
            format!(
                "token={TOKEN}&ref=main\
                 &variables[HOOKGATE_EVENT]=MODEL_VERSION_TRANSITIONED_STAGE\
                 &variables[HOOKGATE_EVENT_ID]={EVENT_ID}\
                 &variables[HOOKGATE_MODEL]=Airline_Delay_SparkML\
                 &variables[HOOKGATE_VERSION]=8\
                 &variables[HOOKGATE_TO_STAGE]=Production"
            )
        );

        let req = http_request(&t, &mlflow_event());
        assert_eq!(
            body_str(&req),
            format!(
                "token={TOKEN}&ref=main\
                 &variables[HOOKGATE_EVENT]=model_version_alias.created\
                 &variables[HOOKGATE_EVENT_ID]={EVENT_ID}\
                 &variables[HOOKGATE_MODEL]=gateway-demo-model\
                 &variables[HOOKGATE_VERSION]=1\
                 &variables[HOOKGATE_ALIAS]=champion"
            )
        );
    }

    #[test]
    fn numeric_project_and_configured_variables() {
        let mut c = cfg("4242");
        c.base_url = "https://git.example.com/gitlab/".into();
        c.git_ref = "release/v1".into();
        c.variables = BTreeMap::from([
            ("MODEL".into(), "{{ event.model }}".into()),
            ("NOTE".into(), "a b&c=d".into()),
        ]);
        let t = build("gl", TargetKind::Gitlab(c));
        let req = http_request(&t, &mlflow_event());
        assert_eq!(
            req.url,
            "https://git.example.com/gitlab/api/v4/projects/4242/trigger/pipeline"
        );
        assert_eq!(
            body_str(&req),
            format!(
                "token={TOKEN}&ref=release%2Fv1&variables[MODEL]=gateway-demo-model\
                 &variables[NOTE]=a+b%26c%3Dd"
            )
        );
    }

    #[test]
    fn bad_variable_key_is_a_build_error() {
        let mut c = cfg("1");
        c.variables = BTreeMap::from([("BAD-KEY".into(), "x".into())]);
        assert_eq!(
            build_err("gl", TargetKind::Gitlab(c)).path,
            "targets.gl.variables.BAD-KEY"
        );
    }

    #[test]
    fn token_in_the_body_is_redacted() {
        let t = build("gl", TargetKind::Gitlab(cfg("g/p")));
        let req = http_request(&t, &databricks_event());
        let shown = req.redacted();
        assert!(
            shown
                .body
                .starts_with("token=[redacted]&ref=main&variables[HOOKGATE_EVENT]="),
            "{}",
            shown.body
        );
        assert_no_secret(&t, &req, "GITLABSECRETxyzzy");
    }
}

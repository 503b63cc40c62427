//! GitHub Actions: `repository_dispatch` (no `workflow`) or `workflow_dispatch` (`workflow` set).
//!
//! - `POST {api_url}/repos/{owner}/{repo}/dispatches` with `{"event_type", "client_payload"}`.
//!   GitHub allows at most 10 top-level `client_payload` keys and an `event_type` of at most 100
//!   chars, so both are enforced here rather than discovered as a 422.
//! - `POST {api_url}/repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches` with
//!   `{"ref", "inputs"}`; inputs are strings, at most 25.
//!
//! A configured `client_payload` or `inputs` map (key → template) replaces the default one; its
//! values are rendered to strings. GitHub answers 204 No Content to both.

use http::Method;
use serde_json::{Map, Value, json};

use super::template::{Render, RenderError, Templates, Tpl};
use super::{
    OutboundRequest, USER_AGENT, config_error, encode_segment, is_template, parse_base_url,
};
use crate::config::{ConfigError, GithubConfig};
use crate::secret::Secret;

const MAX_CLIENT_PAYLOAD_KEYS: usize = 10;
const MAX_INPUTS: usize = 25;
const MAX_EVENT_TYPE_CHARS: usize = 100;
const DEFAULT_EVENT_TYPE: &str = "mlflow-registry";
const DEFAULT_REF: &str = "main";

pub(crate) struct Github {
    url: String,
    /// `Bearer <token>`.
    authorization: Secret,
    mode: Mode,
}

enum Mode {
    Repository {
        event_type: Option<Tpl>,
        /// `None`: the default payload.
        client_payload: Option<Vec<(String, Tpl)>>,
    },
    Workflow {
        git_ref: String,
        /// `None`: the default inputs.
        inputs: Option<Vec<(String, Tpl)>>,
    },
}

impl Github {
    pub(crate) fn build(
        name: &str,
        c: &GithubConfig,
        templates: &mut Templates,
    ) -> Result<Self, ConfigError> {
        let (owner, repo) = c
            .repository
            .split_once('/')
            .filter(|(o, r)| !o.is_empty() && !r.is_empty() && !r.contains('/'))
            .ok_or_else(|| config_error(name, "repository", "must be \"owner/repo\""))?;
        if c.token.expose().trim().is_empty() {
            return Err(config_error(name, "token", "must not be empty"));
        }
        let api = parse_base_url(name, "api_url", &c.api_url)?;
        let repo_url = format!(
            "{api}/repos/{}/{}",
            encode_segment(owner),
            encode_segment(repo)
        );
        let (url, mode) = match &c.workflow {
            None => {
                // Keys of the other mode would silently do nothing.
                if c.git_ref.is_some() {
                    return Err(config_error(name, "ref", "only applies with `workflow`"));
                }
                if !c.inputs.is_empty() {
                    return Err(config_error(name, "inputs", "only apply with `workflow`"));
                }
                if c.client_payload.len() > MAX_CLIENT_PAYLOAD_KEYS {
                    return Err(config_error(
                        name,
                        "client_payload",
                        format!(
                            "GitHub accepts at most {MAX_CLIENT_PAYLOAD_KEYS} top-level keys, \
                             found {}",
                            c.client_payload.len()
                        ),
                    ));
                }
                let event_type = match &c.event_type {
                    Some(src) => {
                        if !is_template(src) {
                            check_event_type(src)
                                .map_err(|m| config_error(name, "event_type", m))?;
                        }
                        Some(templates.add("event_type", src)?)
                    }
                    None => None,
                };
                let client_payload = compile_map(templates, "client_payload", &c.client_payload)?;
                (
                    format!("{repo_url}/dispatches"),
                    Mode::Repository {
                        event_type,
                        client_payload,
                    },
                )
            }
            Some(workflow) => {
                if workflow.trim().is_empty() {
                    return Err(config_error(name, "workflow", "must not be empty"));
                }
                if c.event_type.is_some() {
                    return Err(config_error(
                        name,
                        "event_type",
                        "only applies without `workflow` (repository_dispatch)",
                    ));
                }
                if !c.client_payload.is_empty() {
                    return Err(config_error(
                        name,
                        "client_payload",
                        "only applies without `workflow` (repository_dispatch); use `inputs`",
                    ));
                }
                if c.inputs.len() > MAX_INPUTS {
                    return Err(config_error(
                        name,
                        "inputs",
                        format!(
                            "GitHub accepts at most {MAX_INPUTS} inputs, found {}",
                            c.inputs.len()
                        ),
                    ));
                }
                let git_ref = c.git_ref.clone().unwrap_or_else(|| DEFAULT_REF.into());
                if git_ref.trim().is_empty() {
                    return Err(config_error(name, "ref", "must not be empty"));
                }
                (
                    format!(
                        "{repo_url}/actions/workflows/{}/dispatches",
                        encode_segment(workflow)
                    ),
                    Mode::Workflow {
                        git_ref,
                        inputs: compile_map(templates, "inputs", &c.inputs)?,
                    },
                )
            }
        };
        Ok(Github {
            url,
            authorization: Secret::new(format!("Bearer {}", c.token.expose().trim())),
            mode,
        })
    }

    pub(crate) fn prepare(&self, r: &Render<'_>) -> Result<OutboundRequest, RenderError> {
        let body = match &self.mode {
            Mode::Repository {
                event_type,
                client_payload,
            } => {
                let event_type = match event_type {
                    Some(t) => {
                        let s = r.render(t)?;
                        check_event_type(&s).map_err(|m| r.invalid("event_type", m))?;
                        s
                    }
                    None => DEFAULT_EVENT_TYPE.to_string(),
                };
                let payload = match client_payload {
                    Some(map) => render_map(r, map)?,
                    None => default_client_payload(r),
                };
                json!({"event_type": event_type, "client_payload": payload})
            }
            Mode::Workflow { git_ref, inputs } => {
                let inputs = match inputs {
                    Some(map) => render_map(r, map)?,
                    None => default_inputs(r),
                };
                json!({"ref": git_ref, "inputs": inputs})
            }
        };
        Ok(OutboundRequest::new(Method::POST, self.url.as_str())
            .secret_header("Authorization", self.authorization.expose())
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .header("Content-Type", "application/json")
            .header("User-Agent", USER_AGENT)
            .body(serde_json::to_vec(&body).expect("a JSON value serializes")))
    }
}

fn check_event_type(s: &str) -> Result<(), String> {
    let n = s.chars().count();
    if n == 0 {
        Err("renders empty; GitHub requires an event_type".into())
    } else if n > MAX_EVENT_TYPE_CHARS {
        Err(format!(
            "is {n} chars; GitHub accepts at most {MAX_EVENT_TYPE_CHARS}"
        ))
    } else {
        Ok(())
    }
}

/// Compile a configured key → template map; `None` when empty (use the defaults).
fn compile_map(
    templates: &mut Templates,
    key: &str,
    map: &std::collections::BTreeMap<String, String>,
) -> Result<Option<Vec<(String, Tpl)>>, ConfigError> {
    if map.is_empty() {
        return Ok(None);
    }
    map.iter()
        .map(|(k, src)| Ok((k.clone(), templates.add(&format!("{key}.{k}"), src)?)))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn render_map(r: &Render<'_>, map: &[(String, Tpl)]) -> Result<Value, RenderError> {
    let mut m = Map::new();
    for (k, t) in map {
        m.insert(k.clone(), Value::from(r.render(t)?));
    }
    Ok(Value::Object(m))
}

/// Exactly 10 keys at most (GitHub's limit); absent ones are left out.
fn default_client_payload(r: &Render<'_>) -> Value {
    let e = r.event();
    let mut m = Map::new();
    m.insert("event_id".into(), r.ctx.event_id.into());
    m.insert("endpoint".into(), r.ctx.endpoint.into());
    m.insert("event".into(), e.name.as_str().into());
    for (k, v) in [
        ("model", &e.model),
        ("version", &e.version),
        ("from_stage", &e.from_stage),
        ("to_stage", &e.to_stage),
        ("alias", &e.alias),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), v.as_str().into());
        }
    }
    if !e.tags.is_empty() {
        let tags: Map<String, Value> = e
            .tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone().into()))
            .collect();
        m.insert("tags".into(), Value::Object(tags));
    }
    m.insert("text".into(), e.describe().into());
    debug_assert!(m.len() <= MAX_CLIENT_PAYLOAD_KEYS);
    Value::Object(m)
}

/// workflow_dispatch inputs are all strings; an absent value is "" so a workflow's declared
/// input is always present.
fn default_inputs(r: &Render<'_>) -> Value {
    let e = r.event();
    json!({
        "event_id": r.ctx.event_id,
        "event": e.name,
        "model": e.model.as_deref().unwrap_or_default(),
        "version": e.version.as_deref().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::TargetKind;
    use crate::event::Tag;
    use crate::targets::testutil::*;

    const TOKEN: &str = "ghp_GITHUBSECRETplugh";

    fn cfg() -> GithubConfig {
        GithubConfig {
            repository: "acme/ml-deploy".into(),
            token: Secret::new(TOKEN),
            api_url: "https://api.github.com".into(),
            event_type: None,
            workflow: None,
            git_ref: None,
            inputs: BTreeMap::new(),
            client_payload: BTreeMap::new(),
        }
    }

    fn expected_headers() -> Vec<(String, String)> {
        headers(&[
            ("Authorization", &format!("Bearer {TOKEN}")),
            ("Accept", "application/vnd.github+json"),
            ("X-GitHub-Api-Version", "2022-11-28"),
            ("Content-Type", "application/json"),
            ("User-Agent", USER_AGENT),
        ])
    }

    #[test]
    fn repository_dispatch_default() {
        let t = build("gh", TargetKind::Github(cfg()));
        let e = databricks_event();
        let req = http_request(&t, &e);
        assert_eq!(req.method, Method::POST);
        assert_eq!(
            req.url,
            "https://api.github.com/repos/acme/ml-deploy/dispatches"
        );
        assert_eq!(req.headers, expected_headers());
        assert_eq!(
            body_json(&req),
            json!({
                "event_type": "mlflow-registry",
                "client_payload": {
                    "event_id": EVENT_ID,
                    "endpoint": "registry",
                    "event": "MODEL_VERSION_TRANSITIONED_STAGE",
                    "model": "Airline_Delay_SparkML",
                    "version": "8",
                    "from_stage": "None",
                    "to_stage": "Production",
                    "text": e.describe(),
                },
            })
        );

        let e = mlflow_event();
        let req = http_request(&t, &e);
        assert_eq!(
            body_json(&req),
            json!({
                "event_type": "mlflow-registry",
                "client_payload": {
                    "event_id": EVENT_ID,
                    "endpoint": "registry",
                    "event": "model_version_alias.created",
                    "model": "gateway-demo-model",
                    "version": "1",
                    "alias": "champion",
                    "text": e.describe(),
                },
            })
        );
    }

    #[test]
    fn default_payload_with_everything_stays_within_ten_keys() {
        let t = build("gh", TargetKind::Github(cfg()));
        let mut e = databricks_event();
        e.alias = Some("champion".into());
        e.tags = vec![
            Tag {
                key: "team".into(),
                value: Some("fraud".into()),
            },
            Tag {
                key: "old".into(),
                value: None,
            },
        ];
        let body = body_json(&http_request(&t, &e));
        let payload = body["client_payload"].as_object().unwrap();
        assert_eq!(payload.len(), 10);
        assert_eq!(payload["tags"], json!({"team": "fraud", "old": null}));
    }

    #[test]
    fn templated_event_type_and_payload() {
        let mut c = cfg();
        c.api_url = "https://ghe.example.com/api/v3/".into();
        c.event_type = Some("{{ event.source }}-{{ event.name | lower }}".into());
        c.client_payload = BTreeMap::from([
            ("model".into(), "{{ event.model }}".into()),
            ("alias".into(), "{{ event.alias }}".into()),
            ("data_name".into(), "{{ payload.data.name }}".into()),
        ]);
        let t = build("gh", TargetKind::Github(c));
        let req = http_request(&t, &mlflow_event());
        assert_eq!(
            req.url,
            "https://ghe.example.com/api/v3/repos/acme/ml-deploy/dispatches"
        );
        assert_eq!(
            body_json(&req),
            json!({
                "event_type": "mlflow-model_version_alias.created",
                "client_payload": {
                    "model": "gateway-demo-model",
                    "alias": "champion",
                    "data_name": "gateway-demo-model",
                },
            })
        );
        // Absent values render empty, not "none".
        let req = http_request(&t, &databricks_event());
        assert_eq!(body_json(&req)["client_payload"]["alias"], json!(""));
        assert_eq!(body_json(&req)["client_payload"]["data_name"], json!(""));
    }

    #[test]
    fn workflow_dispatch_default_and_configured() {
        let mut c = cfg();
        c.workflow = Some("deploy model.yml".into());
        let t = build("gh", TargetKind::Github(c.clone()));
        let req = http_request(&t, &mlflow_event());
        assert_eq!(
            req.url,
            "https://api.github.com/repos/acme/ml-deploy/actions/workflows/deploy%20model.yml/dispatches"
        );
        assert_eq!(req.headers, expected_headers());
        assert_eq!(
            body_json(&req),
            json!({
                "ref": "main",
                "inputs": {
                    "event_id": EVENT_ID,
                    "event": "model_version_alias.created",
                    "model": "gateway-demo-model",
                    "version": "1",
                },
            })
        );
        let mut e = databricks_event();
        e.version = None;
        let body = body_json(&http_request(&t, &e));
        assert_eq!(body["inputs"]["version"], json!(""));

        c.git_ref = Some("release".into());
        c.inputs = BTreeMap::from([
            ("stage".into(), "{{ event.to_stage }}".into()),
            ("attempt".into(), "{{ attempt }}".into()),
        ]);
        let t = build("gh", TargetKind::Github(c));
        let body = body_json(&http_request(&t, &databricks_event()));
        assert_eq!(
            body,
            json!({"ref": "release", "inputs": {"stage": "Production", "attempt": "1"}})
        );
    }

    #[test]
    fn github_limits_are_build_errors() {
        let mut c = cfg();
        c.client_payload = (0..11).map(|i| (format!("k{i}"), "v".into())).collect();
        let err = build_err("gh", TargetKind::Github(c.clone()));
        assert_eq!(err.path, "targets.gh.client_payload");
        c.client_payload = (0..10).map(|i| (format!("k{i}"), "v".into())).collect();
        build("gh", TargetKind::Github(c));

        let mut c = cfg();
        c.workflow = Some("ci.yml".into());
        c.inputs = (0..26).map(|i| (format!("i{i}"), "v".into())).collect();
        assert_eq!(
            build_err("gh", TargetKind::Github(c)).path,
            "targets.gh.inputs"
        );

        let mut c = cfg();
        c.event_type = Some("x".repeat(101));
        assert_eq!(
            build_err("gh", TargetKind::Github(c.clone())).path,
            "targets.gh.event_type"
        );
        // A template whose sample rendering is too long fails at build too.
        c.event_type = Some("{{ raw }}".into());
        assert_eq!(
            build_err("gh", TargetKind::Github(c)).path,
            "targets.gh.event_type"
        );
    }

    #[test]
    fn long_rendered_event_type_is_an_invalid_request() {
        let mut c = cfg();
        c.event_type = Some("{{ event.model }}".into());
        let t = build("gh", TargetKind::Github(c));
        let mut e = databricks_event();
        e.model = Some("m".repeat(101));
        let err = t.prepare(&context(&e)).unwrap_err();
        assert_eq!(err.path(), "targets.gh.event_type");
        assert!(matches!(err, RenderError::Invalid { .. }));
    }

    #[test]
    fn mixed_modes_and_bad_repository_are_build_errors() {
        let mut c = cfg();
        c.git_ref = Some("main".into());
        assert_eq!(
            build_err("gh", TargetKind::Github(c)).path,
            "targets.gh.ref"
        );
        let mut c = cfg();
        c.workflow = Some("ci.yml".into());
        c.client_payload = BTreeMap::from([("a".into(), "b".into())]);
        assert_eq!(
            build_err("gh", TargetKind::Github(c)).path,
            "targets.gh.client_payload"
        );
        for bad in ["acme", "/x", "a/b/c", "a/"] {
            let mut c = cfg();
            c.repository = bad.into();
            assert_eq!(
                build_err("gh", TargetKind::Github(c)).path,
                "targets.gh.repository"
            );
        }
    }

    #[test]
    fn template_syntax_error_names_the_key() {
        let mut c = cfg();
        c.client_payload = BTreeMap::from([("model".into(), "{{ event.model ".into())]);
        let err = build_err("gh", TargetKind::Github(c));
        assert_eq!(err.path, "targets.gh.client_payload.model");
        assert!(err.message.contains("syntax error"), "{err}");
    }

    #[test]
    fn token_is_redacted() {
        let t = build("gh", TargetKind::Github(cfg()));
        let req = http_request(&t, &databricks_event());
        assert_eq!(
            req.redacted().headers[0],
            ("Authorization".to_string(), "[redacted]".to_string())
        );
        assert_no_secret(&t, &req, "GITHUBSECRETplugh");
    }
}

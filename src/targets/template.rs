//! Templates in target configuration (minijinja), compiled once at build, rendered per delivery.
//!
//! Keys that take a template: slack `text`, `body`; github `event_type`, `client_payload.*`,
//! `inputs.*`; gitlab `variables.*`; jenkins `parameters.*`; http `body` and `headers.*` (a header
//! value is only treated as a template when it contains `{{` or `{%`, so a token that happens to
//! contain `{#` is sent as is); databricks_job `event_message`.
//!
//! # Context
//!
//! | name | value |
//! | --- | --- |
//! | `event.name` | event name as sent: `MODEL_VERSION_TRANSITIONED_STAGE`, `model_version_alias.created` |
//! | `event.counterpart` | the same event in the other sender's naming, when there is one |
//! | `event.source` | `"databricks"` or `"mlflow"` |
//! | `event.id` | the gateway's event id (stable across retries) |
//! | `event.endpoint` | name of the endpoint it came in on |
//! | `event.model`, `event.version` | registered model (or prompt) name, version |
//! | `event.from_stage`, `event.to_stage` | stages (Databricks) |
//! | `event.alias` | alias (MLflow) |
//! | `event.tags` | object tag key → value; the value is `none` for a deleted tag (test it with `is none`) |
//! | `event.comment` | comment text (Databricks `COMMENT_CREATED`) |
//! | `event.text` | a human sentence: the sender's `text` for Databricks, composed for MLflow |
//! | `event.timestamp_ms` | the sender's timestamp, ms since the epoch |
//! | `event.webhook_id` | the sender's webhook id (Databricks) |
//! | `payload` | the whole JSON body as received, as a value (`payload.data.alias`) |
//! | `databricks` | the event as a Databricks registry webhook body ([`Event::databricks_shape`]): a Databricks event's body (the same value as `payload`), an MLflow event mapped to that shape (`databricks.event`, `databricks.model_name`, `databricks.mlflow.data`) |
//! | `raw` | the body as received, as a string |
//! | `target` | this target's name |
//! | `attempt` | attempt number, 1 for the first |
//!
//! Absent fields are undefined and render as the empty string; lookups through an undefined value
//! are allowed too (`payload.data.name` on a Databricks event renders empty). `none` renders empty
//! and booleans render `true`/`false` (not Python's `None`/`True`), since values end up in CI
//! variables and JSON. The `tojson` filter is available: `{"text": {{ event.text | tojson }}}`.
//! No auto-escaping is applied.
//!
//! At build every template is compiled (a syntax error fails start-up with the key path,
//! `targets.NAME.client_payload.model`) and rendered once against a built-in sample event (a
//! Databricks `MODEL_VERSION_TRANSITIONED_STAGE`), so an error that only shows when rendering, such
//! as an unknown filter, fails start-up too; a JSON body template must render valid JSON for that
//! sample.
//!
//! `databricks` is only put in the context of a target one of whose templates names it (found by
//! reading the templates at build): mapping an MLflow event costs a copy of its body per delivery,
//! which the deliveries of other targets do not pay.

use std::cell::OnceCell;
use std::collections::BTreeMap;

use bytes::Bytes;
use minijinja::value::ValueKind;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

use super::DeliveryContext;
use crate::config::ConfigError;
use crate::event::Event;
use crate::verify::Scheme;

/// Why a request could not be built for an event. Deterministic, so never retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A template failed to render.
    #[error("template error: {path}: {message}")]
    Template { path: String, message: String },
    /// A template that must produce a JSON document did not.
    #[error("template did not render JSON: {path}: {message}")]
    NotJson { path: String, message: String },
    /// The rendered request breaks a rule of the remote API or of HTTP.
    #[error("invalid request: {path}: {message}")]
    Invalid { path: String, message: String },
}

impl RenderError {
    /// The configuration key it is about: `targets.NAME.key`.
    pub fn path(&self) -> &str {
        match self {
            RenderError::Template { path, .. }
            | RenderError::NotJson { path, .. }
            | RenderError::Invalid { path, .. } => path,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            RenderError::Template { message, .. }
            | RenderError::NotJson { message, .. }
            | RenderError::Invalid { message, .. } => message,
        }
    }
}

/// A handle to one compiled template of a target: its key relative to the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tpl(String);

/// One target's compiled templates.
pub(crate) struct Templates {
    target: String,
    env: Environment<'static>,
    keys: Vec<String>,
    /// Keys whose source is a secret (http header values): errors never quote their details.
    sensitive: Vec<String>,
    /// Some template names the `databricks` variable, so the context must carry it.
    databricks: bool,
}

impl Templates {
    pub(crate) fn new(target: &str) -> Self {
        let mut env = Environment::new();
        // Chainable: `payload.data.alias` must render empty on a body without `data`, since one
        // template often serves both senders.
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        // Names are key paths (`headers.x.html` is possible): never pick an escaping by "extension".
        env.set_auto_escape_callback(|_| AutoEscape::None);
        // Values end up in CI variables and JSON: `none` prints as nothing and booleans as
        // `true`/`false`, not Python's `None`/`True`.
        env.set_formatter(|out, state, value| match value.kind() {
            ValueKind::None => Ok(()),
            ValueKind::Bool => out
                .write_str(if value.is_true() { "true" } else { "false" })
                .map_err(minijinja::Error::from),
            _ if is_slack(state.auto_escape()) && !value.is_safe() => out
                .write_str(&super::slack::escape(&value.to_string()))
                .map_err(minijinja::Error::from),
            _ => minijinja::escape_formatter(out, state, value),
        });
        // Debug mode copies template sources into errors; header templates are secrets.
        env.set_debug(false);
        Templates {
            target: target.to_string(),
            env,
            keys: Vec::new(),
            sensitive: Vec::new(),
            databricks: false,
        }
    }

    fn path(&self, key: &str) -> String {
        format!("targets.{}.{key}", self.target)
    }

    /// Compile `source` under `key` (e.g. `text`, `inputs.model`).
    pub(crate) fn add(&mut self, key: &str, source: &str) -> Result<Tpl, ConfigError> {
        self.add_inner(key, source, false)
    }

    /// Compile a template that writes Slack mrkdwn: the values it prints are the senders' text
    /// (a model named `<!channel>` would ping a whole channel), so `&`, `<` and `>` in them are
    /// escaped as Slack asks, while the template's own markup (`<https://…|link>`) is kept.
    /// `| safe` prints a value as is.
    pub(crate) fn add_slack(&mut self, key: &str, source: &str) -> Result<Tpl, ConfigError> {
        let slack = key.to_string();
        // The escaping is fixed when a template is compiled, by its name.
        self.env.set_auto_escape_callback(move |name| {
            if name == slack {
                AutoEscape::Custom(SLACK_ESCAPE.into())
            } else {
                AutoEscape::None
            }
        });
        let added = self.add_inner(key, source, false);
        self.env.set_auto_escape_callback(|_| AutoEscape::None);
        added
    }

    /// Compile a template whose source is a secret: error messages omit the details.
    pub(crate) fn add_sensitive(&mut self, key: &str, source: &str) -> Result<Tpl, ConfigError> {
        self.add_inner(key, source, true)
    }

    fn add_inner(&mut self, key: &str, source: &str, sensitive: bool) -> Result<Tpl, ConfigError> {
        if sensitive {
            self.sensitive.push(key.to_string());
        }
        self.env
            .add_template_owned(key.to_string(), source.to_string())
            .map_err(|e| ConfigError {
                path: self.path(key),
                message: describe_error(&e, sensitive),
            })?;
        // Building `databricks` per delivery is only worth it where a template reads it. The
        // context is shared by all of a target's templates, so one that names it is enough; this
        // also covers an `include` of a sibling, which the analysis does not follow. A name in a
        // branch never taken only costs building the value.
        let template = self
            .env
            .get_template(key)
            .expect("the template was just added");
        if template.undeclared_variables(false).contains("databricks") {
            self.databricks = true;
        }
        self.keys.push(key.to_string());
        Ok(Tpl(key.to_string()))
    }

    /// Render every template once against the sample event.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let event = sample_event();
        let ctx = sample_context(&event);
        let value = context(&ctx, &self.target, self.databricks);
        for key in &self.keys {
            self.render_with(key, &value).map_err(|e| ConfigError {
                path: e.path().to_string(),
                message: e.message().to_string(),
            })?;
        }
        Ok(())
    }

    fn render_with(&self, key: &str, value: &Value) -> Result<String, RenderError> {
        let sensitive = self.sensitive.iter().any(|k| k == key);
        self.env
            .get_template(key)
            .and_then(|t| t.render(value))
            .map_err(|e| RenderError::Template {
                path: self.path(key),
                message: describe_error(&e, sensitive),
            })
    }
}

/// A minijinja error in one line, without the template source. For a secret source only the
/// error kind and line are kept: a detail such as "unknown filter: x" quotes the source.
fn describe_error(e: &minijinja::Error, sensitive: bool) -> String {
    let mut msg = e.kind().to_string();
    if !sensitive && let Some(detail) = e.detail() {
        msg.push_str(": ");
        msg.push_str(detail);
    }
    if let Some(line) = e.line() {
        msg.push_str(&format!(" (line {line})"));
    }
    msg
}

/// Rendering for one delivery: the context value is built at most once, and only if a template
/// is actually rendered.
pub(crate) struct Render<'a> {
    pub(crate) ctx: &'a DeliveryContext<'a>,
    pub(crate) target: &'a str,
    templates: &'a Templates,
    value: OnceCell<Value>,
}

impl<'a> Render<'a> {
    /// CI-style `name=value` parameters (GitLab variables, Jenkins build parameters): the
    /// configured templates rendered, or by default the event's name and id followed by each of
    /// `fields` the event has (`MODEL`, `VERSION`, `FROM_STAGE`, `TO_STAGE`, `ALIAS`), every
    /// name prefixed with `prefix`.
    pub(crate) fn parameters(
        &self,
        configured: Option<&[(String, Tpl)]>,
        prefix: &str,
        fields: &[&str],
    ) -> Result<Vec<(String, String)>, RenderError> {
        if let Some(params) = configured {
            return params
                .iter()
                .map(|(k, t)| Ok((k.clone(), self.render(t)?)))
                .collect();
        }
        let e = self.event();
        let mut out = vec![
            (format!("{prefix}EVENT"), e.name.clone()),
            (format!("{prefix}EVENT_ID"), self.ctx.event_id.to_string()),
        ];
        for field in fields {
            let value = match *field {
                "MODEL" => &e.model,
                "VERSION" => &e.version,
                "FROM_STAGE" => &e.from_stage,
                "TO_STAGE" => &e.to_stage,
                "ALIAS" => &e.alias,
                other => unreachable!("no event field {other}"),
            };
            if let Some(v) = value {
                out.push((format!("{prefix}{field}"), v.clone()));
            }
        }
        Ok(out)
    }

    pub(crate) fn new(
        target: &'a str,
        templates: &'a Templates,
        ctx: &'a DeliveryContext<'a>,
    ) -> Self {
        Render {
            ctx,
            target,
            templates,
            value: OnceCell::new(),
        }
    }

    pub(crate) fn event(&self) -> &'a Event {
        self.ctx.event
    }

    pub(crate) fn render(&self, t: &Tpl) -> Result<String, RenderError> {
        let value = self
            .value
            .get_or_init(|| context(self.ctx, self.target, self.templates.databricks));
        self.templates.render_with(&t.0, value)
    }

    /// Render a template that must produce a JSON document; returns the rendered text as is.
    pub(crate) fn render_json(&self, t: &Tpl) -> Result<String, RenderError> {
        let text = self.render(t)?;
        serde_json::from_str::<serde::de::IgnoredAny>(&text).map_err(|e| RenderError::NotJson {
            path: self.path(t),
            message: e.to_string(),
        })?;
        Ok(text)
    }

    pub(crate) fn path(&self, t: &Tpl) -> String {
        self.templates.path(&t.0)
    }

    /// An [`RenderError::Invalid`] about `targets.NAME.{key}`.
    pub(crate) fn invalid(&self, key: &str, message: impl Into<String>) -> RenderError {
        RenderError::Invalid {
            path: self.templates.path(key),
            message: message.into(),
        }
    }
}

/// The template context of one delivery (see the module docs); `databricks` says whether to
/// include the variable of that name.
pub(crate) fn context(ctx: &DeliveryContext<'_>, target: &str, databricks: bool) -> Value {
    let e = ctx.event;
    let mut ev: BTreeMap<&str, Value> = BTreeMap::new();
    // Absent fields are left out (undefined renders empty) rather than set to none ("none").
    let mut opt = |k, v: Option<&str>| {
        if let Some(v) = v {
            ev.insert(k, Value::from(v));
        }
    };
    opt("counterpart", e.counterpart);
    opt("model", e.model.as_deref());
    opt("version", e.version.as_deref());
    opt("from_stage", e.from_stage.as_deref());
    opt("to_stage", e.to_stage.as_deref());
    opt("alias", e.alias.as_deref());
    opt("comment", e.comment.as_deref());
    opt("webhook_id", e.webhook_id.as_deref());
    ev.insert("name", Value::from(e.name.as_str()));
    ev.insert("source", Value::from(e.scheme.as_str()));
    ev.insert("id", Value::from(ctx.event_id));
    ev.insert("endpoint", Value::from(ctx.endpoint));
    ev.insert("text", Value::from(e.describe()));
    if let Some(ts) = e.sender_timestamp_ms {
        ev.insert("timestamp_ms", Value::from(ts));
    }
    let tags: BTreeMap<String, Value> = e
        .tags
        .iter()
        .map(|t| (t.key.clone(), Value::from(t.value.clone())))
        .collect();
    ev.insert("tags", Value::from(tags));

    let mut root: BTreeMap<&str, Value> = BTreeMap::new();
    root.insert("event", Value::from(ev));
    let payload = json_value(&e.json);
    if databricks {
        let shape = match e.scheme {
            // `databricks_shape` of a Databricks event is its body: share the `payload` value
            // (a reference count) instead of cloning and converting the body again.
            Scheme::Databricks => payload.clone(),
            Scheme::Mlflow => json_value(&e.databricks_shape()),
        };
        root.insert("databricks", shape);
    }
    root.insert("payload", payload);
    root.insert("raw", Value::from(String::from_utf8_lossy(&e.raw).as_ref()));
    root.insert("target", Value::from(target));
    root.insert("attempt", Value::from(ctx.attempt));
    Value::from(root)
}

/// serde_json → minijinja, by hand: minijinja's `serde` feature is off in this build.
fn json_value(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::from(()),
        J::Bool(b) => Value::from(*b),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        J::String(s) => Value::from(s.as_str()),
        J::Array(a) => a.iter().map(json_value).collect(),
        J::Object(m) => Value::from(
            m.iter()
                .map(|(k, v)| (k.clone(), json_value(v)))
                .collect::<BTreeMap<String, Value>>(),
        ),
    }
}

/// The Databricks `MODEL_VERSION_TRANSITIONED_STAGE` sample from the registry webhook docs.
pub(crate) const SAMPLE_BODY: &str = r#"{"event":"MODEL_VERSION_TRANSITIONED_STAGE","webhook_id":"c5596721253c4b429368cf6f4341b88a","event_timestamp":1589859029343,"model_name":"Airline_Delay_SparkML","version":"8","to_stage":"Production","from_stage":"None","text":"Registered model 'someModel' version 8 transitioned from None to Production."}"#;

/// The event templates are checked against at build.
pub(crate) fn sample_event() -> Event {
    // Parsed by the real parser, so the sample is exactly what a delivered event looks like.
    // (Built-in text, not a request: the store-side proof is the honest one to use.)
    Event::parse(
        Scheme::Databricks,
        &crate::verify::Verified::from_store(None),
        Bytes::from_static(SAMPLE_BODY.as_bytes()),
    )
    .expect("the built-in sample parses")
}

/// A delivery context for the sample event.
pub(crate) fn sample_context(event: &Event) -> DeliveryContext<'_> {
    DeliveryContext {
        event,
        event_id: "00000000-0000-4000-8000-000000000000",
        endpoint: "sample",
        attempt: 1,
        replayed_at_ms: None,
        now_unix: 1_589_859_029,
    }
}

/// The custom auto-escape mode of templates that write Slack mrkdwn.
const SLACK_ESCAPE: &str = "slack-mrkdwn";

fn is_slack(mode: &AutoEscape) -> bool {
    matches!(mode, AutoEscape::Custom(name) if name == SLACK_ESCAPE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::testutil::{self, databricks_event, mlflow_event};

    /// `model_version.created` as MLflow sends it (the captured vector, without run details).
    const MODEL_VERSION_CREATED: &str = r#"{"entity": "model_version", "action": "created", "timestamp": "2026-11-25T14:32:44.878736+00:00", "data": {"name": "gateway-demo-model", "version": "1", "tags": {"framework": "sklearn"}, "description": "first version"}}"#;

    fn model_version_created() -> Event {
        Event::parse(
            Scheme::Mlflow,
            &crate::verify::Verified::from_store(None),
            Bytes::from_static(MODEL_VERSION_CREATED.as_bytes()),
        )
        .unwrap()
    }

    /// Compile `source` as a target's only template, check it against the sample as the build
    /// does, and render it for `e`.
    fn render(source: &str, e: &Event) -> String {
        let mut templates = Templates::new("t");
        let tpl = templates.add("body", source).unwrap();
        templates.check().unwrap();
        let ctx = testutil::context(e);
        Render::new("t", &templates, &ctx).render(&tpl).unwrap()
    }

    fn render_json(source: &str, e: &Event) -> serde_json::Value {
        let text = render(source, e);
        serde_json::from_str(&text).unwrap_or_else(|err| panic!("{err}: {text}"))
    }

    #[test]
    fn databricks_of_a_databricks_event_is_its_body() {
        let e = databricks_event();
        let body: serde_json::Value = serde_json::from_str(SAMPLE_BODY).unwrap();
        assert_eq!(render_json("{{ databricks | tojson }}", &e), body);
        assert_eq!(e.databricks_shape(), body);
        assert_eq!(
            render(
                "{{ databricks.event }}|{{ databricks.model_name }}|{{ databricks.to_stage }}",
                &e
            ),
            "MODEL_VERSION_TRANSITIONED_STAGE|Airline_Delay_SparkML|Production"
        );
    }

    #[test]
    fn databricks_of_an_mlflow_event_is_the_mapped_shape() {
        let e = model_version_created();
        assert_eq!(
            render(
                "{{ databricks.event }}|{{ databricks.event_timestamp }}|{{ databricks.model_name }}|\
                 {{ databricks.version }}|{{ databricks.tags[0].key }}={{ databricks.tags[0].value }}|\
                 {{ databricks.text }}|{{ databricks.mlflow.data.description }}",
                &e
            ),
            "MODEL_VERSION_CREATED|1795617164878|gateway-demo-model|1|framework=sklearn|\
             A new version 1 of registered model 'gateway-demo-model' was created.|first version"
        );
        let shape = render_json("{{ databricks | tojson }}", &e);
        assert_eq!(shape, e.databricks_shape());
        // The version stays a string, as Databricks sends it.
        assert_eq!(shape["version"], "1");

        // An event Databricks has no name for keeps its MLflow name; it has no stages.
        let e = mlflow_event();
        assert_eq!(
            render_json("{{ databricks | tojson }}", &e),
            e.databricks_shape()
        );
        assert_eq!(
            render(
                "{{ databricks.event }}|{{ databricks.alias }}|{{ databricks.to_stage }}",
                &e
            ),
            "model_version_alias.created|champion|"
        );
    }

    #[test]
    fn databricks_in_a_json_body_beside_other_fields() {
        let e = model_version_created();
        let body = render_json(
            r#"{"event": {{ databricks | tojson }}, "target": {{ target | tojson }}}"#,
            &e,
        );
        assert_eq!(
            body,
            serde_json::json!({"event": e.databricks_shape(), "target": "t"})
        );
    }

    #[test]
    fn an_unknown_databricks_attribute_is_undefined_like_any_other() {
        // Passes the check against the sample (inside `render`) and renders empty for both
        // senders, as `payload.model_nam` does.
        for e in [databricks_event(), model_version_created()] {
            assert_eq!(
                render(
                    "[{{ databricks.model_nam }}][{{ databricks.model_nam.x }}]\
                     [{{ payload.model_nam }}][{{ databricks.model_nam is defined }}]\
                     [{{ databricks.text is defined }}]",
                    &e
                ),
                "[][][][false][true]"
            );
        }
    }

    #[test]
    fn databricks_is_built_only_for_templates_that_name_it() {
        let mut templates = Templates::new("t");
        templates
            .add(
                "a",
                "{{ payload | tojson }} {{ event.text }} {% set x = 1 %}{{ x }}",
            )
            .unwrap();
        assert!(!templates.databricks);
        // Named in a branch the sample never takes still counts: any delivery might take it.
        templates
            .add(
                "b",
                "{% if event.source == 'mlflow' %}{{ databricks.event }}{% endif %}",
            )
            .unwrap();
        assert!(templates.databricks);

        let e = model_version_created();
        let ctx = testutil::context(&e);
        let without = context(&ctx, "t", false);
        assert!(without.get_attr("databricks").unwrap().is_undefined());
        assert!(!without.get_attr("payload").unwrap().is_undefined());
        let with = context(&ctx, "t", true);
        assert_eq!(
            with.get_attr("databricks")
                .unwrap()
                .get_attr("event")
                .unwrap()
                .as_str(),
            Some("MODEL_VERSION_CREATED")
        );
    }

    #[test]
    fn databricks_reaches_an_included_template() {
        // `include` is not followed by the analysis; the flag is per target, so a sibling
        // template that names the variable still gets it into the shared context.
        let mut templates = Templates::new("t");
        let outer = templates.add("outer", "<{% include 'inner' %}>").unwrap();
        templates.add("inner", "{{ databricks.event }}").unwrap();
        templates.check().unwrap();
        let e = model_version_created();
        let ctx = testutil::context(&e);
        assert_eq!(
            Render::new("t", &templates, &ctx).render(&outer).unwrap(),
            "<MODEL_VERSION_CREATED>"
        );
    }
}

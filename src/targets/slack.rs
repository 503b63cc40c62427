//! Slack incoming webhook: `POST {url}` with `{"text": ...}`, optionally Block Kit.
//!
//! The webhook URL is the credential (anyone holding it can post), so it is shown only as
//! `https://hooks.slack.com/[redacted]`. `text` is always sent, also with blocks: Slack uses it for
//! notifications and as the fallback.

use http::Method;
use serde_json::{Map, Value, json};

use super::template::{Render, RenderError, Templates, Tpl};
use super::{OutboundRequest, REDACTED, config_error, encode_segment, origin_only, parse_url};
use crate::config::{ConfigError, SlackConfig};
use crate::event::Event;
use crate::secret::Secret;
use crate::verify::Scheme;

/// Slack rejects a section text longer than this (chars).
const SECTION_TEXT_MAX: usize = 3000;
/// ... and a field text longer than this.
const FIELD_TEXT_MAX: usize = 2000;

pub(crate) struct Slack {
    url: Secret,
    shown_url: String,
    text: Option<Tpl>,
    body: Option<Tpl>,
    username: Option<String>,
    icon_emoji: Option<String>,
    icon_url: Option<String>,
    blocks: bool,
    registry_url: Option<String>,
}

impl Slack {
    pub(crate) fn build(
        name: &str,
        c: &SlackConfig,
        templates: &mut Templates,
    ) -> Result<Self, ConfigError> {
        let url = parse_url(name, "url", c.url.expose())?;
        // The body template replaces the whole message: the other message keys would silently do
        // nothing, which is worth a start-up error.
        if c.body.is_some()
            && (c.text.is_some()
                || c.blocks
                || c.username.is_some()
                || c.icon_emoji.is_some()
                || c.icon_url.is_some()
                || c.registry_url.is_some())
        {
            return Err(config_error(
                name,
                "body",
                "body replaces the whole message: remove text, blocks, username, icon_emoji, \
                 icon_url and registry_url, or remove body",
            ));
        }
        let registry_url = match &c.registry_url {
            Some(u) => Some(super::parse_base_url(name, "registry_url", u)?),
            None => None,
        };
        Ok(Slack {
            url: Secret::new(url.as_str()),
            shown_url: format!("{}/{REDACTED}", origin_only(&url)),
            text: c
                .text
                .as_deref()
                .map(|t| templates.add_slack("text", t))
                .transpose()?,
            body: c
                .body
                .as_deref()
                .map(|t| templates.add("body", t))
                .transpose()?,
            username: c.username.clone(),
            icon_emoji: c.icon_emoji.clone(),
            icon_url: c.icon_url.clone(),
            blocks: c.blocks,
            registry_url,
        })
    }

    pub(crate) fn prepare(&self, r: &Render<'_>) -> Result<OutboundRequest, RenderError> {
        let body = match &self.body {
            Some(t) => r.render_json(t)?.into_bytes(),
            None => serde_json::to_vec(&self.message(r)?).expect("a JSON value serializes"),
        };
        Ok(OutboundRequest::new(Method::POST, self.url.expose())
            .redact_url_as(self.shown_url.clone())
            .header("Content-Type", "application/json")
            .body(body))
    }

    fn message(&self, r: &Render<'_>) -> Result<Value, RenderError> {
        let event = r.event();
        // Slack reads `&`, `<` and `>` as markup (`<!channel>` pings everyone): the sender's
        // text is escaped, here or by the template (see `Templates::add_slack`).
        let text = match &self.text {
            Some(t) => r.render(t)?,
            None => escape(&event.describe()),
        };
        let mut m = Map::new();
        m.insert("text".into(), Value::from(text.as_str()));
        for (key, value) in [
            ("username", &self.username),
            ("icon_emoji", &self.icon_emoji),
            ("icon_url", &self.icon_url),
        ] {
            if let Some(v) = value {
                m.insert(key.into(), Value::from(v.as_str()));
            }
        }
        if self.blocks {
            let link = self
                .registry_url
                .as_deref()
                .and_then(|base| registry_link(base, event));
            m.insert("blocks".into(), blocks(&text, event, link.as_deref()));
        }
        Ok(Value::Object(m))
    }
}

/// Block Kit: the text, a fields section with the facts, and a link to the registry.
fn blocks(text: &str, e: &Event, link: Option<&str>) -> Value {
    let mut fields = Vec::new();
    let mut field = |label: &str, value: &str| {
        let text = format!("*{label}*\n{}", escape(value));
        fields.push(json!({"type": "mrkdwn", "text": truncate_escaped(&text, FIELD_TEXT_MAX)}));
    };
    if let Some(m) = &e.model {
        field("Model", m);
    }
    if let Some(v) = &e.version {
        field("Version", v);
    }
    match (&e.from_stage, &e.to_stage) {
        (Some(from), Some(to)) => field("Stage", &format!("{from} → {to}")),
        (None, Some(stage)) | (Some(stage), None) => field("Stage", stage),
        (None, None) => {}
    }
    if let Some(a) = &e.alias {
        field("Alias", a);
    }
    field("Event", &e.name);

    let mut blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate_escaped(text, SECTION_TEXT_MAX)}}),
        json!({"type": "section", "fields": fields}),
    ];
    if let Some(url) = link {
        // A mrkdwn link rather than a button: link buttons in a message from an incoming webhook
        // still send an interaction to an app, which shows a warning when it has none.
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": format!("<{url}|Open in the model registry>")},
        }));
    }
    Value::Array(blocks)
}

/// The registry page of the event's model version (or model, or prompt).
fn registry_link(base: &str, e: &Event) -> Option<String> {
    let name = encode_segment(e.model.as_deref()?);
    let version = e.version.as_deref().map(encode_segment);
    let link = match (e.scheme, version) {
        (Scheme::Databricks, Some(v)) => format!("{base}/#mlflow/models/{name}/versions/{v}"),
        (Scheme::Databricks, None) => format!("{base}/#mlflow/models/{name}"),
        // MLflow names prompt events `prompt.*`, `prompt_version.*`, `prompt_alias.*`, ...
        (Scheme::Mlflow, _) if e.name.starts_with("prompt") => format!("{base}/#/prompts/{name}"),
        (Scheme::Mlflow, Some(v)) => format!("{base}/#/models/{name}/versions/{v}"),
        (Scheme::Mlflow, None) => format!("{base}/#/models/{name}"),
    };
    Some(link)
}

/// Slack's mrkdwn control characters, for values we put into our own mrkdwn.
pub(super) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// [`truncate`] for escaped mrkdwn: the cut never splits an entity, which Slack would show as
/// `&am…`; it goes before the `&` instead.
fn truncate_escaped(s: &str, max: usize) -> String {
    let cut = truncate(s, max);
    if cut.len() == s.len() {
        return cut;
    }
    let kept = cut.strip_suffix('…').unwrap_or(&cut);
    match kept.rfind('&') {
        Some(i) if !kept[i..].contains(';') => format!("{}…", &kept[..i]),
        _ => cut,
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max - 1).collect();
    t.push('…');
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TargetKind;
    use crate::targets::testutil::*;

    fn cfg(url: &str) -> SlackConfig {
        SlackConfig {
            url: Secret::new(url),
            blocks: false,
            username: None,
            icon_emoji: None,
            icon_url: None,
            registry_url: None,
            text: None,
            body: None,
        }
    }

    const URL: &str = "https://hooks.slack.com/services/T000/B000/SLACKSECRETxyzzy";

    #[test]
    fn default_message_is_the_event_text() {
        let t = build("ml-slack", TargetKind::Slack(cfg(URL)));
        let e = databricks_event();
        let req = http_request(&t, &e);
        assert_eq!(req.method, Method::POST);
        assert_eq!(req.url, URL);
        assert_eq!(
            req.headers,
            vec![("Content-Type".to_string(), "application/json".to_string())]
        );
        assert_eq!(body_json(&req), json!({"text": e.describe()}));

        let e = mlflow_event();
        let req = http_request(&t, &e);
        assert_eq!(body_json(&req), json!({"text": e.describe()}));
    }

    #[test]
    fn text_template_and_identity() {
        let mut c = cfg(URL);
        c.text = Some(
            "{{ event.model }} v{{ event.version }} → {{ event.to_stage }}{{ event.alias }} ({{ event.source }})"
                .into(),
        );
        c.username = Some("hookgate".into());
        c.icon_emoji = Some(":rocket:".into());
        c.icon_url = Some("https://example.com/i.png".into());
        let t = build("s", TargetKind::Slack(c));
        let req = http_request(&t, &databricks_event());
        assert_eq!(
            body_json(&req),
            json!({
                "text": "Airline_Delay_SparkML v8 → Production (databricks)",
                "username": "hookgate",
                "icon_emoji": ":rocket:",
                "icon_url": "https://example.com/i.png",
            })
        );
        let req = http_request(&t, &mlflow_event());
        assert_eq!(
            body_json(&req)["text"],
            json!("gateway-demo-model v1 → champion (mlflow)")
        );
    }

    #[test]
    fn the_senders_text_is_escaped_and_the_templates_markup_kept() {
        // A model name (or a Databricks `text`) is the sender's: unescaped, `<!channel>` would
        // ping the whole channel and `&` would show wrongly.
        let mut e = databricks_event();
        e.model = Some("R&D<!channel>".into());
        e.text = Some("Version 8 of 'R&D<!channel>' moved to Production.".into());
        let escaped = "Version 8 of 'R&amp;D&lt;!channel&gt;' moved to Production.";
        let mut c = cfg(URL);
        c.blocks = true;
        let body = body_json(&http_request(&build("s", TargetKind::Slack(c.clone())), &e));
        assert_eq!(body["text"], escaped);
        assert_eq!(body["blocks"][0]["text"]["text"], escaped);
        assert_eq!(
            body["blocks"][1]["fields"][0]["text"],
            "*Model*\nR&amp;D&lt;!channel&gt;"
        );
        // Built sentences (no `text` in the event) too.
        e.text = None;
        let body = body_json(&http_request(&build("s", TargetKind::Slack(c.clone())), &e));
        let text = body["text"].as_str().unwrap();
        assert!(text.contains("R&amp;D&lt;!channel&gt;"), "{text}");

        // A template's own markup stays; what it prints is escaped, unless marked safe.
        c.blocks = false;
        c.text = Some(
            "<https://ci.example/runs|{{ event.model }}> & {{ event.alias }}{{ event.model | safe }}".into(),
        );
        let body = body_json(&http_request(&build("s", TargetKind::Slack(c)), &e));
        assert_eq!(
            body["text"],
            "<https://ci.example/runs|R&amp;D&lt;!channel&gt;> & R&D<!channel>"
        );
    }

    #[test]
    fn a_cut_never_splits_an_escaped_character() {
        let text = format!("{}&amp;bc", "a".repeat(8));
        // Cut inside the entity: before it instead.
        assert_eq!(truncate_escaped(&text, 11), format!("{}…", "a".repeat(8)));
        // A whole entity is kept; a short text is left alone.
        assert_eq!(
            truncate_escaped(&text, 14),
            format!("{}&amp;…", "a".repeat(8))
        );
        assert_eq!(truncate_escaped(&text, 20), text);
        assert_eq!(truncate_escaped("R&amp;D", 7), "R&amp;D");
    }

    #[test]
    fn blocks_with_registry_links() {
        let mut c = cfg(URL);
        c.blocks = true;
        c.registry_url = Some("https://adb-1.azuredatabricks.net/".into());
        let t = build("s", TargetKind::Slack(c.clone()));
        let e = databricks_event();
        let body = body_json(&http_request(&t, &e));
        assert_eq!(
            body,
            json!({
                "text": e.describe(),
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": e.describe()}},
                    {"type": "section", "fields": [
                        {"type": "mrkdwn", "text": "*Model*\nAirline_Delay_SparkML"},
                        {"type": "mrkdwn", "text": "*Version*\n8"},
                        {"type": "mrkdwn", "text": "*Stage*\nNone → Production"},
                        {"type": "mrkdwn", "text": "*Event*\nMODEL_VERSION_TRANSITIONED_STAGE"},
                    ]},
                    {"type": "section", "text": {"type": "mrkdwn", "text":
                        "<https://adb-1.azuredatabricks.net/#mlflow/models/Airline_Delay_SparkML/versions/8|Open in the model registry>"}},
                ],
            })
        );

        c.registry_url = Some("http://mlflow.internal:5000".into());
        let t = build("s", TargetKind::Slack(c));
        let e = mlflow_event();
        let body = body_json(&http_request(&t, &e));
        assert_eq!(
            body["blocks"][1]["fields"],
            json!([
                {"type": "mrkdwn", "text": "*Model*\ngateway-demo-model"},
                {"type": "mrkdwn", "text": "*Version*\n1"},
                {"type": "mrkdwn", "text": "*Alias*\nchampion"},
                {"type": "mrkdwn", "text": "*Event*\nmodel_version_alias.created"},
            ])
        );
        assert_eq!(
            body["blocks"][2]["text"]["text"],
            json!(
                "<http://mlflow.internal:5000/#/models/gateway-demo-model/versions/1|Open in the model registry>"
            )
        );
    }

    #[test]
    fn registry_links_encode_and_cover_prompts() {
        let base = "https://r.example";
        let mut e = databricks_event();
        e.model = Some("team/model a#1".into());
        assert_eq!(
            registry_link(base, &e).unwrap(),
            "https://r.example/#mlflow/models/team%2Fmodel%20a%231/versions/8"
        );
        e.version = None;
        assert_eq!(
            registry_link(base, &e).unwrap(),
            "https://r.example/#mlflow/models/team%2Fmodel%20a%231"
        );
        let mut p = mlflow_event();
        p.name = "prompt_version.created".into();
        p.model = Some("summarize".into());
        assert_eq!(
            registry_link(base, &p).unwrap(),
            "https://r.example/#/prompts/summarize"
        );
        p.model = None;
        assert_eq!(registry_link(base, &p), None);
    }

    #[test]
    fn mrkdwn_in_values_is_escaped_and_long_text_cut() {
        let mut e = databricks_event();
        e.model = Some("<b>&".into());
        let long = "x".repeat(5000);
        let b = blocks(&long, &e, None);
        assert_eq!(b[1]["fields"][0]["text"], json!("*Model*\n&lt;b&gt;&amp;"));
        let cut = b[0]["text"]["text"].as_str().unwrap();
        assert_eq!(cut.chars().count(), SECTION_TEXT_MAX);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn body_template_replaces_the_message() {
        let mut c = cfg(URL);
        c.body = Some(r##"{"text": {{ event.text | tojson }}, "channel": "#ml"}"##.into());
        let t = build("s", TargetKind::Slack(c));
        let e = databricks_event();
        let req = http_request(&t, &e);
        // Compared as JSON: `tojson` may escape characters such as `'` (as \u0027).
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body, json!({"text": e.describe(), "channel": "#ml"}));
    }

    #[test]
    fn body_that_is_not_json_gives_up() {
        let mut c = cfg(URL);
        // Valid JSON for the sample (Databricks), not for an MLflow event without to_stage.
        c.body = Some(r#"{% if event.to_stage %}{"text": "ok"}{% else %}oops{% endif %}"#.into());
        let t = build("s", TargetKind::Slack(c));
        let e = mlflow_event();
        let err = t.prepare(&context(&e)).unwrap_err();
        assert!(matches!(err, RenderError::NotJson { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("template did not render JSON: targets.s.body:"),
            "{err}"
        );
    }

    #[test]
    fn body_with_other_message_keys_is_a_build_error() {
        let mut c = cfg(URL);
        c.body = Some("{}".into());
        c.blocks = true;
        let err = build_err("s", TargetKind::Slack(c));
        assert_eq!(err.path, "targets.s.body");
    }

    #[test]
    fn url_is_validated_without_echoing_it() {
        let err = build_err(
            "s",
            TargetKind::Slack(cfg("hooks.slack.com/SLACKSECRETxyzzy")),
        );
        assert_eq!(err.path, "targets.s.url");
        assert!(!err.to_string().contains("SLACKSECRETxyzzy"));
        let err = build_err("s", TargetKind::Slack(cfg("ftp://x/SLACKSECRETxyzzy")));
        assert_eq!(err.path, "targets.s.url");
        assert!(!err.to_string().contains("SLACKSECRETxyzzy"));
    }

    #[test]
    fn the_webhook_url_is_redacted() {
        let t = build("s", TargetKind::Slack(cfg(URL)));
        let req = http_request(&t, &databricks_event());
        assert_eq!(req.redacted().url, "https://hooks.slack.com/[redacted]");
        assert_no_secret(&t, &req, "SLACKSECRETxyzzy");
    }
}

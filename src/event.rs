//! Stage 3, event: parse a verified body once into one typed model for both senders.
//!
//! Invariants: only a body that passed [`crate::verify`] becomes an [`Event`] (parsing takes the
//! [`Verified`] proof); the body is parsed exactly once, here, and every sender quirk (Databricks
//! `MODEL_VERSION_*` names and tag lists, MLflow `entity.action` names, tag objects and ISO-8601
//! timestamps) is normalised here and nowhere else. Unknown event names and unknown fields are
//! kept, never rejected: both senders' schemas grow. The only failure is a body that is not a
//! JSON object.

use bytes::Bytes;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::verify::{Scheme, Verified};

/// One tag on a model, version or prompt. `value` is `None` when the event deletes the tag.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tag {
    pub key: String,
    pub value: Option<String>,
}

/// A registry event from either sender.
#[derive(Debug, Clone)]
pub struct Event {
    /// Which sender's format the body was in.
    pub scheme: Scheme,
    /// The sender's own name: `MODEL_VERSION_CREATED` (Databricks) or `model_version.created`
    /// (MLflow). `unknown` stands in for what the body does not say.
    pub name: String,
    /// The other sender's name for the same happening, where there is one.
    pub counterpart: Option<&'static str>,
    /// Registered model (or MLflow prompt) name.
    pub model: Option<String>,
    /// Model or prompt version, always as a string (numbers are converted).
    pub version: Option<String>,
    /// Databricks stages (MLflow deprecated stages in favour of aliases).
    pub from_stage: Option<String>,
    pub to_stage: Option<String>,
    /// Alias set or removed (`champion`), the way MLflow teams promote models today.
    pub alias: Option<String>,
    pub tags: Vec<Tag>,
    /// Databricks `COMMENT_CREATED` comment text.
    pub comment: Option<String>,
    /// Databricks' human sentence meant for Slack; MLflow sends none (see [`Event::describe`]).
    pub text: Option<String>,
    /// When the sender says the event happened, milliseconds since the epoch.
    pub sender_timestamp_ms: Option<i64>,
    /// Databricks webhook id.
    pub webhook_id: Option<String>,
    /// The whole body, with every field the typed model does not name.
    pub json: Value,
    /// The body bytes exactly as received and verified.
    pub raw: Bytes,
}

/// Longest sender-supplied delivery id used as an event id; longer ones are hashed instead.
const MAX_DELIVERY_ID_LEN: usize = 128;

/// What the store tells events apart by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The sender's delivery id (MLflow), else the hex SHA-256 of the raw body (Databricks sends
    /// no id; an identical body is the same event re-sent).
    pub id: String,
    /// The sender's timestamp in ms when the id is the body's hash, else 0. The timestamp is then
    /// read from the same bytes as the id, so equal ids always have equal times and a key of
    /// (time, id) is unique exactly when the id is. The SQLite store leads its unique key with
    /// it: senders stamp events with the current time, so a new key goes at the end of the index
    /// instead of at a random place (a random place costs a page write per event).
    pub time_ms: i64,
}

/// A verified body that is not a JSON object (answered with 400).
#[derive(Debug, thiserror::Error)]
#[error("body is not a JSON object: {0}")]
pub struct ParseError(pub String);

/// (Databricks name, MLflow name) pairs that denote the same happening, so a route written
/// against either naming matches events from both senders.
const COUNTERPARTS: &[(&str, &str)] = &[
    ("MODEL_VERSION_CREATED", "model_version.created"),
    ("REGISTERED_MODEL_CREATED", "registered_model.created"),
    ("MODEL_VERSION_TAG_SET", "model_version_tag.set"),
];

/// The other sender's name for an event, compared ASCII case-insensitively.
pub fn counterpart(name: &str) -> Option<&'static str> {
    COUNTERPARTS.iter().find_map(|&(databricks, mlflow)| {
        if databricks.eq_ignore_ascii_case(name) {
            Some(mlflow)
        } else if mlflow.eq_ignore_ascii_case(name) {
            Some(databricks)
        } else {
            None
        }
    })
}

const UNKNOWN: &str = "unknown";

impl Event {
    /// Parse a verified body. `proof` is not read: requiring it is what keeps unverified bytes
    /// from ever becoming an event.
    pub fn parse(scheme: Scheme, proof: &Verified, raw: Bytes) -> Result<Event, ParseError> {
        let _ = proof;
        let json: Value = serde_json::from_slice(&raw).map_err(|e| ParseError(e.to_string()))?;
        let Value::Object(body) = &json else {
            return Err(ParseError(format!("found {}", kind_of(&json))));
        };
        let mut event = match scheme {
            Scheme::Databricks => parse_databricks(body),
            Scheme::Mlflow => parse_mlflow(body),
        };
        event.counterpart = counterpart(&event.name);
        Ok(Event {
            scheme,
            json,
            raw,
            ..event
        })
    }

    /// The event's identity, given the sender's delivery id if it sent one.
    pub fn identity(&self, delivery_id: Option<&str>) -> Identity {
        match delivery_id {
            Some(id) if !id.is_empty() && id.len() <= MAX_DELIVERY_ID_LEN => Identity {
                id: id.to_string(),
                time_ms: 0,
            },
            _ => Identity {
                id: hex::encode(Sha256::digest(&self.raw)),
                time_ms: self.sender_timestamp_ms.unwrap_or(0),
            },
        }
    }

    /// The event's names: its own, then its counterpart if it has one.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.name.as_str()).chain(self.counterpart)
    }

    /// Whether a route's event pattern matches: `*`, or either naming, ASCII case-insensitively.
    pub fn has_name(&self, name: &str) -> bool {
        name == "*" || self.names().any(|n| n.eq_ignore_ascii_case(name))
    }

    /// An MLflow prompt event (`prompt.*`, `prompt_version.*`, `prompt_tag.*`, ...).
    pub fn is_prompt(&self) -> bool {
        let entity = self.entity();
        self.scheme == Scheme::Mlflow && (entity == "prompt" || entity.starts_with("prompt_"))
    }

    /// A human sentence for Slack: Databricks' own `text` when present, otherwise one written in
    /// the same style from the typed fields.
    pub fn describe(&self) -> String {
        if let Some(text) = self.text.as_deref().filter(|t| !t.trim().is_empty()) {
            return text.to_owned();
        }
        let described = match self.scheme {
            Scheme::Databricks => self.describe_databricks(),
            Scheme::Mlflow => self.describe_mlflow(),
        };
        described.unwrap_or_else(|| self.describe_generic())
    }

    /// A small JSON object for CI payloads: absent fields are omitted, `text` is [`describe`].
    ///
    /// [`describe`]: Event::describe
    pub fn summary(&self) -> Value {
        let mut out = Map::new();
        out.insert("event".into(), self.name.clone().into());
        let optional = [
            ("model", &self.model),
            ("version", &self.version),
            ("from_stage", &self.from_stage),
            ("to_stage", &self.to_stage),
            ("alias", &self.alias),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                out.insert(key.into(), value.clone().into());
            }
        }
        if !self.tags.is_empty() {
            let tags: Map<String, Value> = self
                .tags
                .iter()
                .map(|tag| (tag.key.clone(), tag.value.clone().into()))
                .collect();
            out.insert("tags".into(), tags.into());
        }
        out.insert("text".into(), self.describe().into());
        if let Some(ms) = self.sender_timestamp_ms {
            out.insert("timestamp_ms".into(), ms.into());
        }
        out.insert("source".into(), self.scheme.as_str().into());
        Value::Object(out)
    }

    /// The event as a Databricks registry webhook body, for consumers written against Databricks
    /// (the `event_message` of a job run).
    ///
    /// A Databricks event is its own body. An MLflow event is mapped, so that code reading
    /// Databricks fields finds them, and only keys the event has a value for are present (as
    /// Databricks leaves out what an event does not have):
    ///
    /// - `event`: the Databricks name where one exists (`MODEL_VERSION_CREATED`), else the MLflow
    ///   name (`model_version_alias.created`); code that switches on Databricks names then also
    ///   sees the events Databricks has no name for, under a name it cannot confuse with its own.
    /// - `event_timestamp`: ms since the epoch as a number, like Databricks'.
    /// - `model_name`, and `version` as a string (Databricks sends `"8"`). For prompt events these
    ///   are `prompt_name` and `prompt_version` instead, so a prompt is never taken for a model.
    /// - `alias`, when the event has one (Databricks has no aliases).
    /// - `tags`: Databricks' list of `{key, value}`; `value` is null for a deleted tag.
    /// - `text`: the sentence [`describe`] writes, where Databricks puts its own.
    /// - `mlflow`: the original body, parsed, so fields without a Databricks counterpart
    ///   (`data.description`, a prompt's `template`, ...) are not lost.
    ///
    /// [`describe`]: Event::describe
    pub fn databricks_shape(&self) -> Value {
        if self.scheme == Scheme::Databricks {
            return self.json.clone();
        }
        let mut out = Map::new();
        let name = self.counterpart.unwrap_or(self.name.as_str());
        out.insert("event".into(), name.into());
        if let Some(ms) = self.sender_timestamp_ms {
            out.insert("event_timestamp".into(), ms.into());
        }
        let (name_key, version_key) = if self.is_prompt() {
            ("prompt_name", "prompt_version")
        } else {
            ("model_name", "version")
        };
        let optional = [
            (name_key, &self.model),
            (version_key, &self.version),
            ("alias", &self.alias),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                out.insert(key.into(), value.clone().into());
            }
        }
        if !self.tags.is_empty() {
            let tags = self
                .tags
                .iter()
                .map(|tag| serde_json::json!({"key": tag.key, "value": tag.value}))
                .collect::<Vec<_>>();
            out.insert("tags".into(), tags.into());
        }
        out.insert("text".into(), self.describe().into());
        out.insert("mlflow".into(), self.json.clone());
        Value::Object(out)
    }

    /// MLflow `entity` (the part of the name before the first dot).
    fn entity(&self) -> &str {
        self.name.split_once('.').map_or(&self.name, |(e, _)| e)
    }

    /// MLflow `action` (the part of the name after the first dot).
    fn action(&self) -> &str {
        self.name.split_once('.').map_or("", |(_, a)| a)
    }

    /// What the event is about: "prompt" or "registered model".
    fn noun(&self) -> &'static str {
        if self.is_prompt() {
            "prompt"
        } else {
            "registered model"
        }
    }

    /// `registered model 'x'` / `prompt 'x'` (`a registered model` if the body names none).
    fn subject(&self) -> String {
        match &self.model {
            Some(model) => format!("{} '{model}'", self.noun()),
            None => format!("a {}", self.noun()),
        }
    }

    /// `version 1 of registered model 'x'`, or just the subject when there is no version.
    fn version_subject(&self) -> String {
        match &self.version {
            Some(version) => format!("version {version} of {}", self.subject()),
            None => self.subject(),
        }
    }

    fn data(&self, key: &str) -> Option<&Value> {
        self.json.get("data").and_then(|data| data.get(key))
    }

    fn describe_mlflow(&self) -> Option<String> {
        let (entity, action) = (self.entity(), self.action());
        let sentence = match (entity, action) {
            ("registered_model" | "prompt", "created") => {
                format!("{} was created.", capitalize(&self.subject()))
            }
            ("model_version" | "prompt_version", "created") => match &self.version {
                Some(version) => {
                    format!("A new version {version} of {} was created.", self.subject())
                }
                None => format!("A new version of {} was created.", self.subject()),
            },
            (tagged, "set" | "deleted") if tagged.ends_with("_tag") => {
                let key = scalar(self.data("key")).unwrap_or_else(|| UNKNOWN.into());
                // `prompt_tag` is on the prompt itself, `*_version_tag` on one version.
                let on = if tagged == "prompt_tag" {
                    self.subject()
                } else {
                    self.version_subject()
                };
                match (action, scalar(self.data("value"))) {
                    ("set", Some(value)) => format!("Tag '{key}' was set to '{value}' on {on}."),
                    ("set", None) => format!("Tag '{key}' was set on {on}."),
                    _ => format!("Tag '{key}' was deleted from {on}."),
                }
            }
            (aliased, "created" | "deleted") if aliased.ends_with("_alias") => {
                let alias = self.alias.as_deref().unwrap_or(UNKNOWN);
                if action == "created" {
                    format!("Alias '{alias}' was set on {}.", self.version_subject())
                } else {
                    format!(
                        "Alias '{alias}' was removed from {}.",
                        self.version_subject()
                    )
                }
            }
            ("budget_policy", "exceeded") => self.describe_budget(),
            _ => return None,
        };
        Some(sentence)
    }

    /// `budget_policy.exceeded`: spend against budget, per window, with its scope.
    fn describe_budget(&self) -> String {
        let policy = scalar(self.data("budget_policy_id")).unwrap_or_else(|| UNKNOWN.into());
        let unit = scalar(self.data("budget_unit"))
            .map(|u| format!(" {u}"))
            .unwrap_or_default();
        let amount = |key| scalar(self.data(key)).unwrap_or_else(|| "?".into());
        let mut sentence = format!(
            "Budget policy '{policy}' was exceeded: spend {}{unit} against a budget of {}{unit}",
            amount("current_spend"),
            amount("budget_amount"),
        );
        let duration_value = self.data("duration_value").and_then(Value::as_i64);
        if let Some(unit) = scalar(self.data("duration_unit")) {
            let unit = unit.to_ascii_lowercase();
            let singular = unit.strip_suffix('s').unwrap_or(&unit);
            match duration_value {
                Some(1) | None => sentence.push_str(&format!(" per {singular}")),
                Some(n) => sentence.push_str(&format!(" per {n} {singular}s")),
            }
        }
        if let Some(scope) = scalar(self.data("target_scope")) {
            let scope = scope.to_ascii_lowercase();
            match scalar(self.data("target_value")) {
                Some(target) => sentence.push_str(&format!(" (scope: {scope} '{target}')")),
                None => sentence.push_str(&format!(" (scope: {scope})")),
            }
        }
        sentence.push('.');
        sentence
    }

    /// Databricks bodies normally carry `text`; this covers bodies that do not, in its style.
    fn describe_databricks(&self) -> Option<String> {
        let model = self.model.as_deref().unwrap_or(UNKNOWN);
        let version = self
            .version
            .as_deref()
            .map(|v| format!(" version {v}"))
            .unwrap_or_default();
        let movement = match (&self.from_stage, &self.to_stage) {
            (Some(from), Some(to)) => format!(" from {from} to {to}"),
            (None, Some(to)) => format!(" to {to}"),
            _ => String::new(),
        };
        let name = self.name.as_str();
        let sentence = match name {
            "MODEL_VERSION_CREATED" => match &self.version {
                Some(v) => format!("A new version {v} of registered model '{model}' was created."),
                None => format!("A new version of registered model '{model}' was created."),
            },
            "REGISTERED_MODEL_CREATED" => format!("Registered model '{model}' was created."),
            "COMMENT_CREATED" => {
                let said = self
                    .comment
                    .as_deref()
                    .map(|c| format!(": {c}"))
                    .unwrap_or_else(|| ".".into());
                format!("A user commented on registered model '{model}'{version}{said}")
            }
            "MODEL_VERSION_TAG_SET" => {
                let tags: Vec<String> = self
                    .tags
                    .iter()
                    .map(|t| format!("'{}' => '{}'", t.key, t.value.as_deref().unwrap_or("")))
                    .collect();
                format!(
                    "Version tag(s) {} set for registered model '{model}'{version}.",
                    tags.join(", ")
                )
            }
            _ if name.starts_with("MODEL_VERSION_TRANSITIONED_") => {
                format!("Registered model '{model}'{version} transitioned{movement}.")
            }
            _ if name.starts_with("TRANSITION_REQUEST_") => format!(
                "A user requested to transition registered model '{model}'{version}{movement}."
            ),
            _ => return None,
        };
        Some(sentence)
    }

    /// For events nobody wrote a sentence for yet: name the event, the model and the version.
    fn describe_generic(&self) -> String {
        let mut sentence = format!("Event '{}'", self.name);
        if let Some(model) = &self.model {
            sentence.push_str(&format!(" for {} '{model}'", self.noun()));
        }
        if let Some(version) = &self.version {
            sentence.push_str(&format!(" version {version}"));
        }
        sentence.push('.');
        sentence
    }
}

/// An event with only the sender-independent parts filled in by the per-sender parsers.
fn blank(name: String) -> Event {
    Event {
        scheme: Scheme::Databricks,
        name,
        counterpart: None,
        model: None,
        version: None,
        from_stage: None,
        to_stage: None,
        alias: None,
        tags: Vec::new(),
        comment: None,
        text: None,
        sender_timestamp_ms: None,
        webhook_id: None,
        json: Value::Null,
        raw: Bytes::new(),
    }
}

/// Databricks: flat body, `event` name, `tags` as a list of `{key, value}`.
fn parse_databricks(body: &Map<String, Value>) -> Event {
    let name = string(body.get("event")).unwrap_or_else(|| UNKNOWN.into());
    let mut event = blank(name);
    event.model = string(body.get("model_name"));
    event.version = scalar(body.get("version"));
    event.from_stage = string(body.get("from_stage"));
    event.to_stage = string(body.get("to_stage")).or_else(|| stage_in_name(&event.name));
    event.alias = string(body.get("alias"));
    collect_tags(body.get("tags"), &mut event.tags);
    event.comment = string(body.get("comment"));
    event.text = string(body.get("text"));
    event.sender_timestamp_ms = integer(body.get("event_timestamp"));
    event.webhook_id = string(body.get("webhook_id"));
    event
}

/// The stage a `*_TO_STAGING`, `*_TO_PRODUCTION` or `*_TO_ARCHIVED` event name moves to, for
/// bodies that leave `to_stage` out (the name already says it).
fn stage_in_name(name: &str) -> Option<String> {
    [
        ("_TO_STAGING", "Staging"),
        ("_TO_PRODUCTION", "Production"),
        ("_TO_ARCHIVED", "Archived"),
    ]
    .iter()
    .find(|(marker, _)| name.contains(marker))
    .map(|(_, stage)| (*stage).to_owned())
}

/// MLflow: `entity` + `action` name, fields under `data`, tags as an object (or, for tag events,
/// a single `key`/`value`), ISO-8601 `timestamp`.
fn parse_mlflow(body: &Map<String, Value>) -> Event {
    let entity = string(body.get("entity"));
    let action = string(body.get("action"));
    let name = format!(
        "{}.{}",
        entity.as_deref().unwrap_or(UNKNOWN),
        action.as_deref().unwrap_or(UNKNOWN)
    );
    let mut event = blank(name);
    let data = body.get("data").and_then(Value::as_object);
    let field = |key: &str| data.and_then(|d| d.get(key));
    event.model = string(field("name"));
    event.version = scalar(field("version"));
    event.alias = string(field("alias"));
    collect_tags(field("tags"), &mut event.tags);
    // `*_tag.set` / `*_tag.deleted` carry the one tag they are about as `key`/`value`.
    let tag_key =
        scalar(field("key")).filter(|_| entity.as_deref().is_some_and(|e| e.ends_with("_tag")));
    if let Some(key) = tag_key {
        let value = match action.as_deref() {
            Some("deleted") => None,
            _ => scalar(field("value")),
        };
        event.tags.push(Tag { key, value });
    }
    event.sender_timestamp_ms = body
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(iso8601_ms);
    event
}

/// Milliseconds since the epoch of an RFC 3339 timestamp (MLflow's
/// `2026-11-25T14:32:45.203614+00:00`); a timestamp without an offset is taken as UTC, which is
/// what MLflow documents its timestamps to be.
fn iso8601_ms(text: &str) -> Option<i64> {
    let at = OffsetDateTime::parse(text, &Rfc3339).ok().or_else(|| {
        PrimitiveDateTime::parse(text, &Iso8601::DEFAULT)
            .ok()
            .map(PrimitiveDateTime::assume_utc)
    })?;
    i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}

/// Tags in either shape: a list of `{key, value}` (Databricks) or an object key → value
/// (MLflow). Entries without a usable key are skipped; non-string values are stringified.
fn collect_tags(tags: Option<&Value>, out: &mut Vec<Tag>) {
    match tags {
        Some(Value::Array(list)) => out.extend(list.iter().filter_map(|entry| {
            Some(Tag {
                key: scalar(entry.get("key"))?,
                value: scalar(entry.get("value")),
            })
        })),
        Some(Value::Object(map)) => out.extend(map.iter().map(|(key, value)| Tag {
            key: key.clone(),
            value: scalar(Some(value)),
        })),
        _ => {}
    }
}

/// A JSON string.
fn string(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).map(str::to_owned)
}

/// A JSON string, number or boolean as a string (`"version": 3` and `"3"` are the same).
fn scalar(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A JSON integer, or a string of one.
fn integer(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::verify::test_vectors::{Vector, load};
    use crate::verify::{EndpointAuth, verify};

    /// A proof for bodies in tests: an endpoint without secrets accepts everything.
    pub(super) fn proof(scheme: Scheme) -> Verified {
        let open = EndpointAuth {
            scheme,
            secrets: Vec::new(),
            bearer: None,
            tolerance: Duration::from_secs(300),
        };
        verify(&open, &http::HeaderMap::new(), b"", 0).unwrap()
    }

    fn parse(scheme: Scheme, body: &str) -> Result<Event, ParseError> {
        Event::parse(
            scheme,
            &proof(scheme),
            Bytes::copy_from_slice(body.as_bytes()),
        )
    }

    fn databricks(body: Value) -> Event {
        parse(Scheme::Databricks, &body.to_string()).unwrap()
    }

    fn mlflow(body: Value) -> Event {
        parse(Scheme::Mlflow, &body.to_string()).unwrap()
    }

    /// Parse a vector the way ingress does: verify with its secret, then parse the proof's body.
    fn parse_vector(scheme: Scheme, v: &Vector) -> Result<Event, ParseError> {
        let auth = EndpointAuth {
            scheme,
            secrets: v.secret.iter().map(crate::secret::Secret::new).collect(),
            bearer: None,
            tolerance: Duration::from_secs(300),
        };
        let now = if scheme == Scheme::Mlflow {
            v.mlflow_timestamp()
        } else {
            0
        };
        let proof = verify(&auth, &v.headers, v.body.as_bytes(), now).unwrap();
        Event::parse(scheme, &proof, Bytes::from(v.body.clone()))
    }

    fn accepted(sender: &str) -> Vec<Vector> {
        load(sender)
            .into_iter()
            .filter(|v| !v.name.starts_with("bad-"))
            .collect()
    }

    #[test]
    fn identity_is_the_delivery_id_or_the_body_hash_with_the_body_time() {
        let body = r#"{"event":"MODEL_VERSION_CREATED","event_timestamp":1589859029343}"#;
        let hash = hex::encode(Sha256::digest(body.as_bytes()));
        let event = parse(Scheme::Databricks, body).unwrap();
        let expected = Identity {
            id: hash.clone(),
            time_ms: 1_589_859_029_343,
        };
        assert_eq!(event.identity(None), expected);
        // The same bytes, the same identity: a re-sent event meets its first copy.
        assert_eq!(
            parse(Scheme::Databricks, body).unwrap().identity(None),
            expected
        );
        let untimed = parse(Scheme::Databricks, r#"{"event":"X"}"#).unwrap();
        assert_eq!(untimed.identity(None).time_ms, 0);

        // A delivery id names the event; its time is 0, since the body's time need not be the
        // same in every delivery that carries the id.
        let body = r#"{"entity":"model_version","action":"created","timestamp":"2026-11-25T14:32:45.203+00:00","data":{}}"#;
        let event = parse(Scheme::Mlflow, body).unwrap();
        let by_delivery = Identity {
            id: "d-1".into(),
            time_ms: 0,
        };
        assert_eq!(event.identity(Some("d-1")), by_delivery);
        // An empty or oversized delivery id is not used: the body names the event.
        let hashed = Identity {
            id: hex::encode(Sha256::digest(body.as_bytes())),
            time_ms: 1_795_617_165_203,
        };
        assert_eq!(event.identity(Some("")), hashed);
        assert_eq!(event.identity(Some(&"x".repeat(129))), hashed);
        assert_eq!(event.identity(Some(&"x".repeat(128))).time_ms, 0);
    }

    fn tag(key: &str, value: Option<&str>) -> Tag {
        Tag {
            key: key.into(),
            value: value.map(str::to_owned),
        }
    }

    #[test]
    fn every_accepted_databricks_vector() {
        let vectors = accepted("databricks");
        assert_eq!(vectors.len(), 14);
        for v in &vectors {
            let event = parse_vector(Scheme::Databricks, v).unwrap();
            let body: Value = serde_json::from_str(&v.body).unwrap();
            // `ok-*` vectors have no `expected.event`: the body is the reference.
            let want_event = v.expected["event"].as_str().or(body["event"].as_str());
            assert_eq!(Some(event.name.as_str()), want_event, "{}", v.name);
            let want_model = v.expected["model_name"]
                .as_str()
                .or(body["model_name"].as_str());
            assert_eq!(event.model.as_deref(), want_model, "{}", v.name);
            if v.expected.get("version").is_some() {
                assert_eq!(
                    event.version.as_deref(),
                    v.expected["version"].as_str(),
                    "{}",
                    v.name
                );
            }
            assert_eq!(event.sender_timestamp_ms, Some(1_589_859_029_343));
            assert!(event.webhook_id.is_some());
            assert_eq!(event.text.as_deref(), body["text"].as_str());
            assert_eq!(event.describe(), body["text"].as_str().unwrap());
            assert_eq!(event.raw, v.body.as_bytes());
            assert!(!event.is_prompt());
        }
    }

    #[test]
    fn databricks_fields() {
        let by_name = |name: &str| {
            let v = load("databricks")
                .into_iter()
                .find(|v| v.name == name)
                .unwrap();
            parse_vector(Scheme::Databricks, &v).unwrap()
        };
        let moved = by_name("MODEL_VERSION_TRANSITIONED_STAGE");
        assert_eq!(moved.from_stage.as_deref(), Some("None"));
        assert_eq!(moved.to_stage.as_deref(), Some("Production"));
        assert_eq!(moved.counterpart, None);

        let tagged = by_name("MODEL_VERSION_TAG_SET");
        assert_eq!(
            tagged.tags,
            [tag("key1", Some("value1")), tag("key2", Some("value2"))]
        );
        assert_eq!(tagged.counterpart, Some("model_version_tag.set"));

        let comment = by_name("COMMENT_CREATED");
        assert_eq!(
            comment.comment.as_deref(),
            Some("Raw text content of the comment")
        );

        let registered = by_name("REGISTERED_MODEL_CREATED");
        assert_eq!(registered.version, None);
        assert_eq!(registered.counterpart, Some("registered_model.created"));

        // Unknown event names and fields are kept.
        let unknown = by_name("ok-unknown-event-signed");
        assert_eq!(unknown.name, "MODEL_VERSION_ALIAS_SET");
        assert_eq!(unknown.alias.as_deref(), Some("champion"));
        assert_eq!(unknown.version.as_deref(), Some("3"));
        assert_eq!(unknown.describe(), "new event kind");
        assert!(unknown.has_name("*"));
        assert!(!unknown.has_name("MODEL_VERSION_CREATED"));
    }

    #[test]
    fn derived_to_stage() {
        for (name, stage) in [
            ("MODEL_VERSION_TRANSITIONED_TO_STAGING", "Staging"),
            ("MODEL_VERSION_TRANSITIONED_TO_PRODUCTION", "Production"),
            ("MODEL_VERSION_TRANSITIONED_TO_ARCHIVED", "Archived"),
            ("TRANSITION_REQUEST_TO_STAGING_CREATED", "Staging"),
            ("TRANSITION_REQUEST_TO_PRODUCTION_CREATED", "Production"),
            ("TRANSITION_REQUEST_TO_ARCHIVED_CREATED", "Archived"),
        ] {
            let event = databricks(json!({"event": name, "model_name": "m", "version": 2}));
            assert_eq!(event.to_stage.as_deref(), Some(stage), "{name}");
            assert_eq!(
                event.version.as_deref(),
                Some("2"),
                "numbers become strings"
            );
        }
        // An explicit `to_stage` wins; generic names derive nothing.
        let explicit = databricks(json!({
            "event": "MODEL_VERSION_TRANSITIONED_TO_STAGING", "to_stage": "staging"
        }));
        assert_eq!(explicit.to_stage.as_deref(), Some("staging"));
        let generic = databricks(json!({"event": "MODEL_VERSION_TRANSITIONED_STAGE"}));
        assert_eq!(generic.to_stage, None);
    }

    /// (file, model, version, alias, tags) expected for one accepted MLflow vector.
    type Row = (
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        &'static [(&'static str, Option<&'static str>)],
    );

    const DEMO: Option<&str> = Some("gateway-demo-model");
    const DEMO2: Option<&str> = Some("gateway-demo-model-2");
    const PROMPT: Option<&str> = Some("gateway-demo-prompt");

    #[rustfmt::skip]
    const MLFLOW: &[Row] = &[
        ("budget_policy.exceeded",              None,    None,      None,               &[]),
        ("model_version.created",               DEMO,    Some("1"), None,               &[("framework", Some("sklearn"))]),
        ("model_version.created.null-fields",   DEMO2,   Some("1"), None,               &[]),
        ("model_version_alias.created",         DEMO,    Some("1"), Some("champion"),   &[]),
        ("model_version_alias.deleted",         DEMO,    None,      Some("champion"),   &[]),
        ("model_version_tag.deleted",           DEMO,    Some("1"), None,               &[("validation_status", None)]),
        ("model_version_tag.set",               DEMO,    Some("1"), None,               &[("validation_status", Some("approved"))]),
        ("prompt.created",                      PROMPT,  None,      None,               &[("owner", Some("ml-platform"))]),
        ("prompt_alias.created",                PROMPT,  Some("2"), Some("production"), &[]),
        ("prompt_alias.deleted",                PROMPT,  None,      Some("production"), &[]),
        ("prompt_tag.deleted",                  PROMPT,  None,      None,               &[("task", None)]),
        ("prompt_tag.set",                      PROMPT,  None,      None,               &[("task", Some("summarization"))]),
        ("prompt_tag.set.experiment-link",      PROMPT,  None,      None,               &[("_mlflow_experiment_ids", Some(",0,"))]),
        ("prompt_version.created",              PROMPT,  Some("1"), None,               &[("owner", Some("ml-platform"))]),
        ("prompt_version.created.v2",           PROMPT,  Some("2"), None,               &[]),
        ("prompt_version_tag.deleted",          PROMPT,  Some("1"), None,               &[("quality", None)]),
        ("prompt_version_tag.set",              PROMPT,  Some("1"), None,               &[("quality", Some("reviewed"))]),
        ("registered_model.created",            DEMO,    None,      None,               &[("team", Some("ml-platform"))]),
        ("registered_model.created.non-ascii",  DEMO2,   None,      None,               &[]),
        ("test.budget_policy.exceeded",         None,    None,      None,               &[]),
        ("test.model_version.created",          Some("example_model"), Some("1"), None, &[("example_key", Some("example_value"))]),
        ("unsigned.registered_model.created",   DEMO,    None,      None,               &[("team", Some("ml-platform"))]),
        ("unsigned.registered_model.created.non-ascii", DEMO2, None, None,              &[]),
    ];

    #[test]
    fn every_accepted_mlflow_vector() {
        let vectors = accepted("mlflow");
        assert_eq!(vectors.len(), MLFLOW.len());
        for v in &vectors {
            let event = parse_vector(Scheme::Mlflow, v).unwrap();
            let (_, model, version, alias, tags) = MLFLOW
                .iter()
                .find(|row| row.0 == v.name)
                .unwrap_or_else(|| panic!("no expectation for {}", v.name));
            let want_name = format!(
                "{}.{}",
                v.expected["entity"].as_str().unwrap(),
                v.expected["action"].as_str().unwrap()
            );
            assert_eq!(event.name, want_name, "{}", v.name);
            assert_eq!(event.model.as_deref(), *model, "{}", v.name);
            assert_eq!(event.version.as_deref(), *version, "{}", v.name);
            assert_eq!(event.alias.as_deref(), *alias, "{}", v.name);
            let want_tags: Vec<Tag> = tags.iter().map(|(k, val)| tag(k, *val)).collect();
            assert_eq!(event.tags, want_tags, "{}", v.name);
            assert_eq!(
                event.is_prompt(),
                want_name.starts_with("prompt"),
                "{}",
                v.name
            );
            assert_eq!(
                (event.comment.as_deref(), event.text.as_deref()),
                (None, None)
            );
            assert_eq!(
                (event.from_stage.as_deref(), event.to_stage.as_deref()),
                (None, None)
            );

            // The body's ISO-8601 time and the signed header agree to within a second.
            let ms = event.sender_timestamp_ms.unwrap();
            assert!(
                (ms.div_euclid(1000) - v.mlflow_timestamp()).abs() <= 1,
                "{}",
                v.name
            );

            // describe(): a sentence, naming the model or prompt when there is one.
            let sentence = event.describe();
            assert!(
                sentence.ends_with('.') && sentence.len() > 20,
                "{}: {sentence}",
                v.name
            );
            assert!(
                sentence.starts_with(|c: char| c.is_ascii_uppercase()),
                "{sentence}"
            );
            if let Some(model) = model {
                assert!(
                    sentence.contains(&format!("'{model}'")),
                    "{}: {sentence}",
                    v.name
                );
            }
            if let Some(alias) = alias {
                assert!(sentence.contains(&format!("'{alias}'")), "{sentence}");
            }
            if event.is_prompt() {
                assert!(sentence.to_lowercase().contains("prompt"), "{sentence}");
            }
            assert!(
                !sentence.contains("Event '"),
                "no generic fallback for {}",
                v.name
            );
        }
    }

    #[test]
    fn mlflow_sentences() {
        let by_name = |name: &str| {
            let v = load("mlflow").into_iter().find(|v| v.name == name).unwrap();
            parse_vector(Scheme::Mlflow, &v).unwrap().describe()
        };
        let cases = [
            (
                "registered_model.created",
                "Registered model 'gateway-demo-model' was created.",
            ),
            (
                "model_version.created",
                "A new version 1 of registered model 'gateway-demo-model' was created.",
            ),
            (
                "model_version_tag.set",
                "Tag 'validation_status' was set to 'approved' on version 1 of registered model 'gateway-demo-model'.",
            ),
            (
                "model_version_tag.deleted",
                "Tag 'validation_status' was deleted from version 1 of registered model 'gateway-demo-model'.",
            ),
            (
                "model_version_alias.created",
                "Alias 'champion' was set on version 1 of registered model 'gateway-demo-model'.",
            ),
            (
                "model_version_alias.deleted",
                "Alias 'champion' was removed from registered model 'gateway-demo-model'.",
            ),
            (
                "prompt.created",
                "Prompt 'gateway-demo-prompt' was created.",
            ),
            (
                "prompt_version.created.v2",
                "A new version 2 of prompt 'gateway-demo-prompt' was created.",
            ),
            (
                "prompt_tag.set",
                "Tag 'task' was set to 'summarization' on prompt 'gateway-demo-prompt'.",
            ),
            (
                "prompt_tag.deleted",
                "Tag 'task' was deleted from prompt 'gateway-demo-prompt'.",
            ),
            (
                "prompt_version_tag.set",
                "Tag 'quality' was set to 'reviewed' on version 1 of prompt 'gateway-demo-prompt'.",
            ),
            (
                "prompt_alias.created",
                "Alias 'production' was set on version 2 of prompt 'gateway-demo-prompt'.",
            ),
            (
                "prompt_alias.deleted",
                "Alias 'production' was removed from prompt 'gateway-demo-prompt'.",
            ),
            (
                "budget_policy.exceeded",
                "Budget policy 'bp-88d89f7690c34e5b8baaafe0ca0c0d83' was exceeded: spend 0.075 USD against a budget of 0.01 USD per day (scope: global).",
            ),
            (
                "test.budget_policy.exceeded",
                "Budget policy 'bp-abc123' was exceeded: spend 105.5 USD against a budget of 100.0 USD per month (scope: endpoint 'ep-abc123').",
            ),
        ];
        for (name, want) in cases {
            assert_eq!(by_name(name), want, "{name}");
        }
    }

    #[test]
    fn non_ascii_is_decoded() {
        for name in [
            "registered_model.created.non-ascii",
            "unsigned.registered_model.created.non-ascii",
        ] {
            let v = load("mlflow").into_iter().find(|v| v.name == name).unwrap();
            // The wire bytes are ASCII (`\uXXXX` escapes, one surrogate pair) ...
            assert!(v.body.is_ascii());
            let event = parse_vector(Scheme::Mlflow, &v).unwrap();
            // ... and the parsed description is the real text.
            assert_eq!(
                event.json["data"]["description"],
                "Mod\u{e8}le de d\u{e9}monstration \u{2014} \u{2713} \u{6a21}\u{578b} \u{1f600}"
            );
            assert_eq!(event.raw, v.body.as_bytes());
        }
    }

    #[test]
    fn null_fields() {
        let v = load("mlflow")
            .into_iter()
            .find(|v| v.name == "model_version.created.null-fields")
            .unwrap();
        let event = parse_vector(Scheme::Mlflow, &v).unwrap();
        assert!(event.json["data"]["run_id"].is_null());
        assert!(event.tags.is_empty());
        // Nulls everywhere the typed model looks are absent values, not errors.
        let nulls = mlflow(json!({
            "entity": null, "action": "created", "timestamp": null,
            "data": {"name": null, "version": null, "alias": null, "tags": null,
                     "key": null, "value": null}
        }));
        assert_eq!(nulls.name, "unknown.created");
        assert_eq!(
            (nulls.model, nulls.version, nulls.alias),
            (None, None, None)
        );
        assert!(nulls.tags.is_empty());
        assert_eq!(nulls.sender_timestamp_ms, None);
        let no_data = mlflow(json!({"entity": "model_version", "action": "created", "data": null}));
        assert_eq!(
            no_data.describe(),
            "A new version of a registered model was created."
        );
        let nulls = databricks(json!({
            "event": null, "model_name": null, "version": null, "tags": null,
            "text": null, "event_timestamp": null
        }));
        assert_eq!(nulls.name, "unknown");
        assert_eq!(nulls.describe(), "Event 'unknown'.");
    }

    #[test]
    fn tags_in_both_shapes_either_sender() {
        let list = json!([{"key": "a", "value": "1"}, {"key": "b", "value": null}, {"value": "no key"}, {"key": "n", "value": 2}]);
        let object = json!({"a": "1", "b": null, "n": 2});
        let want = [tag("a", Some("1")), tag("b", None), tag("n", Some("2"))];
        assert_eq!(databricks(json!({"event": "X", "tags": list})).tags, want);
        assert_eq!(databricks(json!({"event": "X", "tags": object})).tags, want);
        let from_mlflow = mlflow(json!({"entity": "e", "action": "a", "data": {"tags": object}}));
        assert_eq!(from_mlflow.tags, want);
        let from_mlflow = mlflow(json!({"entity": "e", "action": "a", "data": {"tags": list}}));
        assert_eq!(from_mlflow.tags, want);
    }

    #[test]
    fn missing_names() {
        assert_eq!(databricks(json!({})).name, "unknown");
        assert_eq!(databricks(json!({"event": 7})).name, "unknown");
        assert_eq!(mlflow(json!({})).name, "unknown.unknown");
        assert_eq!(
            mlflow(json!({"entity": "model_version"})).name,
            "model_version.unknown"
        );
        assert_eq!(mlflow(json!({"action": "created"})).name, "unknown.created");
        let future = mlflow(json!({
            "entity": "scorer", "action": "registered", "workspace": "ws",
            "data": {"name": "m", "version": 4, "new_field": [1, 2]}
        }));
        assert_eq!(future.name, "scorer.registered");
        assert_eq!(future.json["data"]["new_field"], json!([1, 2]));
        assert_eq!(future.json["workspace"], "ws");
        assert_eq!(
            future.describe(),
            "Event 'scorer.registered' for registered model 'm' version 4."
        );
    }

    #[test]
    fn counterparts_both_ways() {
        let pairs = [
            ("MODEL_VERSION_CREATED", "model_version.created"),
            ("REGISTERED_MODEL_CREATED", "registered_model.created"),
            ("MODEL_VERSION_TAG_SET", "model_version_tag.set"),
        ];
        for (databricks_name, mlflow_name) in pairs {
            assert_eq!(counterpart(databricks_name), Some(mlflow_name));
            assert_eq!(counterpart(mlflow_name), Some(databricks_name));
            assert_eq!(
                counterpart(&databricks_name.to_lowercase()),
                Some(mlflow_name)
            );
        }
        assert_eq!(counterpart("COMMENT_CREATED"), None);
        assert_eq!(counterpart("model_version_alias.created"), None);
        assert_eq!(counterpart("*"), None);

        let from_mlflow = mlflow(json!({"entity": "model_version", "action": "created"}));
        assert_eq!(
            from_mlflow.names().collect::<Vec<_>>(),
            ["model_version.created", "MODEL_VERSION_CREATED"]
        );
        let from_databricks = databricks(json!({"event": "COMMENT_CREATED"}));
        assert_eq!(
            from_databricks.names().collect::<Vec<_>>(),
            ["COMMENT_CREATED"]
        );
    }

    #[test]
    fn has_name_either_naming_any_case() {
        let event = databricks(json!({"event": "MODEL_VERSION_CREATED"}));
        for name in [
            "*",
            "MODEL_VERSION_CREATED",
            "model_version_created",
            "model_version.created",
            "Model_Version.Created",
        ] {
            assert!(event.has_name(name), "{name}");
        }
        for name in [
            "",
            "**",
            "MODEL_VERSION",
            "model_version.created ",
            "registered_model.created",
        ] {
            assert!(!event.has_name(name), "{name:?}");
        }
        let alias = mlflow(json!({"entity": "model_version_alias", "action": "created"}));
        assert!(alias.has_name("MODEL_VERSION_ALIAS.CREATED"));
        assert!(!alias.has_name("MODEL_VERSION_CREATED"));
    }

    #[test]
    fn not_a_json_object_is_a_parse_error() {
        let v = load("databricks")
            .into_iter()
            .find(|v| v.name == "bad-json-signed")
            .unwrap();
        let err = parse_vector(Scheme::Databricks, &v).unwrap_err();
        assert!(
            err.to_string().starts_with("body is not a JSON object"),
            "{err}"
        );
        for body in [
            "",
            "not json",
            "[1, 2]",
            "[]",
            "42",
            "\"text\"",
            "null",
            "{\"a\": 1} x",
        ] {
            assert!(parse(Scheme::Databricks, body).is_err(), "{body:?}");
            assert!(parse(Scheme::Mlflow, body).is_err(), "{body:?}");
        }
        let err = parse(Scheme::Mlflow, "[{\"entity\": \"x\"}]").unwrap_err();
        assert_eq!(err.to_string(), "body is not a JSON object: found an array");
    }

    #[test]
    fn timestamps() {
        let at = |t: &str| {
            mlflow(json!({"entity": "e", "action": "a", "timestamp": t})).sender_timestamp_ms
        };
        assert_eq!(
            at("2026-11-25T14:32:45.203614+00:00"),
            Some(1_795_617_165_203)
        );
        assert_eq!(at("2026-11-25T14:32:45.203614Z"), Some(1_795_617_165_203));
        assert_eq!(
            at("2026-11-25T15:32:45.203614+01:00"),
            Some(1_795_617_165_203)
        );
        assert_eq!(at("2026-11-25T14:32:45.203614"), Some(1_795_617_165_203));
        assert_eq!(at("2026-11-25T14:32:45+00:00"), Some(1_795_617_165_000));
        assert_eq!(at("1969-12-31T23:59:59.999+00:00"), Some(-1));
        for bad in ["", "yesterday", "2026-13-25T14:32:45+00:00", "1795617165"] {
            assert_eq!(at(bad), None, "{bad}");
        }
        let numeric = mlflow(json!({"entity": "e", "action": "a", "timestamp": 1_795_617_165}));
        assert_eq!(numeric.sender_timestamp_ms, None);
        let string_ms = databricks(json!({"event": "X", "event_timestamp": "1589859029343"}));
        assert_eq!(string_ms.sender_timestamp_ms, Some(1_589_859_029_343));
    }

    #[test]
    fn databricks_sentences_without_text() {
        let cases = [
            (
                json!({"event": "MODEL_VERSION_CREATED", "model_name": "m", "version": "9"}),
                "A new version 9 of registered model 'm' was created.",
            ),
            (
                json!({"event": "REGISTERED_MODEL_CREATED", "model_name": "m"}),
                "Registered model 'm' was created.",
            ),
            (
                json!({"event": "MODEL_VERSION_TRANSITIONED_STAGE", "model_name": "m", "version": "8",
                    "from_stage": "None", "to_stage": "Production"}),
                "Registered model 'm' version 8 transitioned from None to Production.",
            ),
            (
                json!({"event": "MODEL_VERSION_TRANSITIONED_TO_ARCHIVED", "model_name": "m", "version": "7"}),
                "Registered model 'm' version 7 transitioned to Archived.",
            ),
            (
                json!({"event": "TRANSITION_REQUEST_TO_PRODUCTION_CREATED", "model_name": "m",
                    "version": "9", "from_stage": "Staging"}),
                "A user requested to transition registered model 'm' version 9 from Staging to Production.",
            ),
            (
                json!({"event": "COMMENT_CREATED", "model_name": "m", "version": "8", "comment": "LGTM"}),
                "A user commented on registered model 'm' version 8: LGTM",
            ),
            (
                json!({"event": "MODEL_VERSION_TAG_SET", "model_name": "m", "version": "8",
                    "tags": [{"key": "k", "value": "v"}]}),
                "Version tag(s) 'k' => 'v' set for registered model 'm' version 8.",
            ),
            (
                json!({"event": "MODEL_VERSION_ALIAS_SET", "model_name": "m", "version": "3", "text": ""}),
                "Event 'MODEL_VERSION_ALIAS_SET' for registered model 'm' version 3.",
            ),
        ];
        for (body, want) in cases {
            assert_eq!(databricks(body).describe(), want);
        }
    }

    fn mlflow_vector(name: &str) -> Event {
        let v = load("mlflow").into_iter().find(|v| v.name == name).unwrap();
        parse_vector(Scheme::Mlflow, &v).unwrap()
    }

    #[test]
    fn databricks_shape_of_each_mlflow_event_kind() {
        let shape = |name: &str| {
            let event = mlflow_vector(name);
            let shape = event.databricks_shape();
            // Nothing of the original is lost.
            assert_eq!(shape["mlflow"], event.json, "{name}");
            let mut rest = shape;
            rest.as_object_mut().unwrap().remove("mlflow");
            rest
        };
        let cases = [
            (
                "model_version.created",
                json!({
                    "event": "MODEL_VERSION_CREATED",
                    "event_timestamp": 1_795_617_164_878_i64,
                    "model_name": "gateway-demo-model",
                    "version": "1",
                    "tags": [{"key": "framework", "value": "sklearn"}],
                    "text": "A new version 1 of registered model 'gateway-demo-model' was created.",
                }),
            ),
            (
                "registered_model.created",
                json!({
                    "event": "REGISTERED_MODEL_CREATED",
                    "event_timestamp": 1_795_617_163_848_i64,
                    "model_name": "gateway-demo-model",
                    "tags": [{"key": "team", "value": "ml-platform"}],
                    "text": "Registered model 'gateway-demo-model' was created.",
                }),
            ),
            (
                "model_version_tag.set",
                json!({
                    "event": "MODEL_VERSION_TAG_SET",
                    "event_timestamp": 1_795_617_165_022_i64,
                    "model_name": "gateway-demo-model",
                    "version": "1",
                    "tags": [{"key": "validation_status", "value": "approved"}],
                    "text": "Tag 'validation_status' was set to 'approved' on version 1 of registered model 'gateway-demo-model'.",
                }),
            ),
            (
                "model_version_tag.deleted",
                json!({
                    "event": "model_version_tag.deleted",
                    "event_timestamp": 1_795_617_165_102_i64,
                    "model_name": "gateway-demo-model",
                    "version": "1",
                    "tags": [{"key": "validation_status", "value": null}],
                    "text": "Tag 'validation_status' was deleted from version 1 of registered model 'gateway-demo-model'.",
                }),
            ),
            (
                "model_version_alias.created",
                json!({
                    "event": "model_version_alias.created",
                    "event_timestamp": 1_795_617_165_203_i64,
                    "model_name": "gateway-demo-model",
                    "version": "1",
                    "alias": "champion",
                    "text": "Alias 'champion' was set on version 1 of registered model 'gateway-demo-model'.",
                }),
            ),
            (
                "model_version_alias.deleted",
                json!({
                    "event": "model_version_alias.deleted",
                    "event_timestamp": 1_795_617_165_441_i64,
                    "model_name": "gateway-demo-model",
                    "alias": "champion",
                    "text": "Alias 'champion' was removed from registered model 'gateway-demo-model'.",
                }),
            ),
            (
                "prompt.created",
                json!({
                    "event": "prompt.created",
                    "event_timestamp": 1_795_617_165_630_i64,
                    "prompt_name": "gateway-demo-prompt",
                    "tags": [{"key": "owner", "value": "ml-platform"}],
                    "text": "Prompt 'gateway-demo-prompt' was created.",
                }),
            ),
            (
                "prompt_version.created",
                json!({
                    "event": "prompt_version.created",
                    "event_timestamp": 1_795_617_165_680_i64,
                    "prompt_name": "gateway-demo-prompt",
                    "prompt_version": "1",
                    "tags": [{"key": "owner", "value": "ml-platform"}],
                    "text": "A new version 1 of prompt 'gateway-demo-prompt' was created.",
                }),
            ),
            (
                "prompt_tag.set",
                json!({
                    "event": "prompt_tag.set",
                    "event_timestamp": 1_795_617_166_203_i64,
                    "prompt_name": "gateway-demo-prompt",
                    "tags": [{"key": "task", "value": "summarization"}],
                    "text": "Tag 'task' was set to 'summarization' on prompt 'gateway-demo-prompt'.",
                }),
            ),
            (
                "prompt_tag.deleted",
                json!({
                    "event": "prompt_tag.deleted",
                    "event_timestamp": 1_795_617_166_276_i64,
                    "prompt_name": "gateway-demo-prompt",
                    "tags": [{"key": "task", "value": null}],
                    "text": "Tag 'task' was deleted from prompt 'gateway-demo-prompt'.",
                }),
            ),
            (
                "prompt_version_tag.set",
                json!({
                    "event": "prompt_version_tag.set",
                    "event_timestamp": 1_795_617_166_333_i64,
                    "prompt_name": "gateway-demo-prompt",
                    "prompt_version": "1",
                    "tags": [{"key": "quality", "value": "reviewed"}],
                    "text": "Tag 'quality' was set to 'reviewed' on version 1 of prompt 'gateway-demo-prompt'.",
                }),
            ),
            (
                "prompt_version_tag.deleted",
                json!({
                    "event": "prompt_version_tag.deleted",
                    "event_timestamp": 1_795_617_166_411_i64,
                    "prompt_name": "gateway-demo-prompt",
                    "prompt_version": "1",
                    "tags": [{"key": "quality", "value": null}],
                    "text": "Tag 'quality' was deleted from version 1 of prompt 'gateway-demo-prompt'.",
                }),
            ),
            (
                "prompt_alias.created",
                json!({
                    "event": "prompt_alias.created",
                    "event_timestamp": 1_795_617_166_555_i64,
                    "prompt_name": "gateway-demo-prompt",
                    "prompt_version": "2",
                    "alias": "production",
                    "text": "Alias 'production' was set on version 2 of prompt 'gateway-demo-prompt'.",
                }),
            ),
            (
                "prompt_alias.deleted",
                json!({
                    "event": "prompt_alias.deleted",
                    "event_timestamp": 1_795_617_166_596_i64,
                    "prompt_name": "gateway-demo-prompt",
                    "alias": "production",
                    "text": "Alias 'production' was removed from prompt 'gateway-demo-prompt'.",
                }),
            ),
            (
                "budget_policy.exceeded",
                json!({
                    "event": "budget_policy.exceeded",
                    "event_timestamp": 1_795_617_167_608_i64,
                    "text": "Budget policy 'bp-88d89f7690c34e5b8baaafe0ca0c0d83' was exceeded: spend 0.075 USD against a budget of 0.01 USD per day (scope: global).",
                }),
            ),
        ];
        for (name, want) in cases {
            let got = shape(name);
            assert_eq!(got, want, "{name}");
            // Key order too: serialized, it reads like a Databricks body (event first).
            assert_eq!(got.to_string(), want.to_string(), "{name}");
        }
    }

    #[test]
    fn databricks_shape_of_every_accepted_vector() {
        for v in accepted("mlflow") {
            let event = parse_vector(Scheme::Mlflow, &v).unwrap();
            let shape = event.databricks_shape();
            let body: Value = serde_json::from_str(&v.body).unwrap();
            assert_eq!(shape["mlflow"], body, "{}", v.name);
            assert_eq!(
                shape["event"].as_str(),
                Some(event.counterpart.unwrap_or(&event.name)),
                "{}",
                v.name
            );
            assert!(shape["event_timestamp"].is_i64(), "{}", v.name);
            let version = if event.is_prompt() {
                "prompt_version"
            } else {
                "version"
            };
            // Versions are strings, as Databricks sends them.
            if let Some(version) = shape.get(version) {
                assert!(version.is_string(), "{}", v.name);
            }
            assert_eq!(shape["text"], event.describe().as_str(), "{}", v.name);
        }
        // A version sent as a number still arrives as a string; no tags, no `tags` key.
        let numeric = mlflow(json!({
            "entity": "model_version", "action": "created",
            "data": {"name": "m", "version": 3, "tags": {}}
        }));
        assert_eq!(
            numeric.databricks_shape(),
            json!({
                "event": "MODEL_VERSION_CREATED",
                "model_name": "m",
                "version": "3",
                "text": "A new version 3 of registered model 'm' was created.",
                "mlflow": {"entity": "model_version", "action": "created",
                           "data": {"name": "m", "version": 3, "tags": {}}},
            })
        );
    }

    #[test]
    fn databricks_shape_of_a_databricks_event_is_its_body() {
        for v in accepted("databricks") {
            let event = parse_vector(Scheme::Databricks, &v).unwrap();
            let body: Value = serde_json::from_str(&v.body).unwrap();
            assert_eq!(event.databricks_shape(), body, "{}", v.name);
        }
    }

    #[test]
    fn summaries() {
        let v = load("databricks")
            .into_iter()
            .find(|v| v.name == "MODEL_VERSION_TAG_SET")
            .unwrap();
        let summary = parse_vector(Scheme::Databricks, &v).unwrap().summary();
        assert_eq!(
            summary,
            json!({
                "event": "MODEL_VERSION_TAG_SET",
                "model": "Airline_Delay_SparkML",
                "version": "8",
                "tags": {"key1": "value1", "key2": "value2"},
                "text": "example@yourdomain.com set version tag(s) 'key1' => 'value1', 'key2' => 'value2' for registered model 'someModel' version 8.",
                "timestamp_ms": 1_589_859_029_343_i64,
                "source": "databricks",
            })
        );
        let v = load("mlflow")
            .into_iter()
            .find(|v| v.name == "model_version_alias.created")
            .unwrap();
        let summary = parse_vector(Scheme::Mlflow, &v).unwrap().summary();
        assert_eq!(
            summary,
            json!({
                "event": "model_version_alias.created",
                "model": "gateway-demo-model",
                "version": "1",
                "alias": "champion",
                "text": "Alias 'champion' was set on version 1 of registered model 'gateway-demo-model'.",
                "timestamp_ms": 1_795_617_165_203_i64,
                "source": "mlflow",
            })
        );
        let deleted = mlflow(json!({
            "entity": "model_version_tag", "action": "deleted", "data": {"name": "m", "key": "k"}
        }));
        assert_eq!(deleted.summary()["tags"], json!({"k": null}));
        assert_eq!(
            databricks(json!({})).summary(),
            json!({"event": "unknown", "text": "Event 'unknown'.", "source": "databricks"})
        );
    }
}

/// Properties of [`Event::parse`] over generated bodies, and the body generator the route
/// properties share: objects whose keys and values are drawn partly from both senders'
/// vocabulary (so the typed fields and the sentences are reached) and partly at random.
#[cfg(test)]
pub(crate) mod props {
    use proptest::collection::vec;
    use proptest::prelude::*;
    use proptest::sample::select;

    use super::tests::proof;
    use super::*;

    /// Keys the parsers read, at the top level or under `data`.
    const KEYS: &[&str] = &[
        "event",
        "model_name",
        "version",
        "from_stage",
        "to_stage",
        "alias",
        "tags",
        "comment",
        "text",
        "event_timestamp",
        "webhook_id",
        "entity",
        "action",
        "data",
        "timestamp",
        "name",
        "key",
        "value",
        "budget_policy_id",
        "budget_unit",
        "current_spend",
        "budget_amount",
        "duration_value",
        "duration_unit",
        "target_scope",
        "target_value",
    ];

    /// Values those keys take (event names, entities, actions, stages, timestamps), with the
    /// edge cases of each: empty, blank, extreme dates.
    const WORDS: &[&str] = &[
        "MODEL_VERSION_CREATED",
        "REGISTERED_MODEL_CREATED",
        "MODEL_VERSION_TAG_SET",
        "COMMENT_CREATED",
        "MODEL_VERSION_TRANSITIONED_TO_PRODUCTION",
        "TRANSITION_REQUEST_TO_STAGING_CREATED",
        "model_version",
        "registered_model",
        "model_version_tag",
        "model_version_alias",
        "prompt",
        "prompt_version",
        "prompt_tag",
        "budget_policy",
        "created",
        "set",
        "deleted",
        "exceeded",
        "Production",
        "Staging",
        "champion",
        "fraud-detector",
        "days",
        "2026-11-25T14:32:45.203614+00:00",
        "2026-11-25T14:32:45",
        "9999-12-31T23:59:59.999999999-23:59",
        "-9999-01-01T00:00:00Z",
        "1589859029343",
        " 42 ",
        "",
        " ",
    ];

    fn string() -> impl Strategy<Value = String> {
        prop_oneof![select(WORDS).prop_map(str::to_owned), any::<String>()]
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![select(KEYS).prop_map(str::to_owned), any::<String>()]
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            // Only floats serde_json reads back exactly (it does not promise that of all), so
            // that the parsed body can be compared with the generated one.
            any::<f64>().prop_filter_map("a float JSON round-trips", |f| {
                let number = serde_json::Number::from_f64(f)?;
                let back: f64 = serde_json::from_str(&number.to_string()).ok()?;
                (back == f).then_some(Value::Number(number))
            }),
            string().prop_map(Value::from),
        ]
    }

    /// Any JSON value, nested a few levels.
    pub(crate) fn json() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..6).prop_map(Value::Array),
                vec((key(), inner), 0..6)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    /// A JSON object body.
    pub(crate) fn body() -> impl Strategy<Value = Map<String, Value>> {
        vec((key(), json()), 0..10).prop_map(|entries| entries.into_iter().collect())
    }

    pub(crate) fn scheme() -> impl Strategy<Value = Scheme> {
        prop_oneof![Just(Scheme::Databricks), Just(Scheme::Mlflow)]
    }

    /// The body as a sender may lay it out: compact, pretty, or padded with JSON whitespace.
    fn layout(body: &Value, style: u8) -> Vec<u8> {
        match style % 3 {
            0 => serde_json::to_vec(body).unwrap(),
            1 => serde_json::to_vec_pretty(body).unwrap(),
            _ => [
                b" \n\t".as_slice(),
                &serde_json::to_vec(body).unwrap(),
                b"\r\n",
            ]
            .concat(),
        }
    }

    /// Parse a generated object the way ingress does.
    pub(crate) fn parse_body(scheme: Scheme, body: &Map<String, Value>) -> Event {
        let raw = Bytes::from(serde_json::to_vec(body).unwrap());
        Event::parse(scheme, &proof(scheme), raw).unwrap()
    }

    proptest! {
        #[test]
        fn an_object_is_an_event_that_keeps_its_bytes(
            scheme in scheme(),
            body in body(),
            style in any::<u8>(),
        ) {
            let json = Value::Object(body);
            let raw = layout(&json, style);
            let event = Event::parse(scheme, &proof(scheme), Bytes::from(raw.clone())).unwrap();
            prop_assert_eq!(&event.raw[..], &raw[..]);
            prop_assert_eq!(&event.json, &json);
            prop_assert_eq!(event.scheme, scheme);

            // The typed fields are the body's, read the sender's way.
            let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
            let (name, model) = match scheme {
                Scheme::Databricks => (
                    text(json.get("event")).unwrap_or_else(|| UNKNOWN.into()),
                    text(json.get("model_name")),
                ),
                Scheme::Mlflow => (
                    format!(
                        "{}.{}",
                        text(json.get("entity")).as_deref().unwrap_or(UNKNOWN),
                        text(json.get("action")).as_deref().unwrap_or(UNKNOWN),
                    ),
                    text(json.get("data").filter(|d| d.is_object()).and_then(|d| d.get("name"))),
                ),
            };
            prop_assert_eq!(&event.name, &name);
            prop_assert_eq!(&event.model, &model);
            prop_assert_eq!(event.counterpart, counterpart(&name));
            prop_assert!(event.has_name("*") && event.has_name(&name.to_ascii_uppercase()));

            // Everything built from an event works on any event.
            prop_assert!(!event.describe().is_empty());
            let summary = event.summary();
            prop_assert_eq!(summary["event"].as_str(), Some(name.as_str()));
            prop_assert_eq!(summary["source"].as_str(), Some(scheme.as_str()));
            let shape = event.databricks_shape();
            match scheme {
                Scheme::Databricks => prop_assert_eq!(&shape, &json),
                Scheme::Mlflow => prop_assert_eq!(&shape["mlflow"], &json),
            }
            let by_hash = event.identity(None);
            prop_assert_eq!(by_hash.id, hex::encode(Sha256::digest(&raw)));
            prop_assert_eq!(by_hash.time_ms, event.sender_timestamp_ms.unwrap_or(0));
            prop_assert_eq!(event.identity(Some("d-1")).id, "d-1");
        }

        #[test]
        fn a_value_that_is_not_an_object_is_refused(
            scheme in scheme(),
            value in json().prop_filter("not an object", |v| !v.is_object()),
        ) {
            let raw = Bytes::from(serde_json::to_vec(&value).unwrap());
            let err = Event::parse(scheme, &proof(scheme), raw).unwrap_err();
            prop_assert_eq!(
                err.to_string(),
                format!("body is not a JSON object: found {}", kind_of(&value))
            );
        }

        #[test]
        fn any_bytes_are_an_event_exactly_when_they_are_a_json_object(
            scheme in scheme(),
            raw in prop_oneof![
                vec(any::<u8>(), 0..512),
                // A real body, cut short or with one byte changed: mostly invalid JSON, now
                // and then still valid.
                (body(), any::<prop::sample::Index>(), any::<u8>(), any::<bool>()).prop_map(
                    |(body, at, byte, cut)| {
                        let mut raw = serde_json::to_vec(&body).unwrap();
                        let at = at.index(raw.len());
                        if cut {
                            raw.truncate(at);
                        } else {
                            raw[at] = byte;
                        }
                        raw
                    }
                ),
                // Nested past serde_json's recursion limit, or nearly.
                (1usize..400, any::<bool>()).prop_map(|(depth, objects)| {
                    let (open, close) = if objects { ("{\"a\":", "}") } else { ("[", "]") };
                    format!("{}1{}", open.repeat(depth), close.repeat(depth)).into_bytes()
                }),
            ],
        ) {
            let is_object = serde_json::from_slice::<Value>(&raw).is_ok_and(|v| v.is_object());
            match Event::parse(scheme, &proof(scheme), Bytes::from(raw.clone())) {
                Ok(event) => {
                    prop_assert!(is_object);
                    prop_assert_eq!(&event.raw[..], &raw[..]);
                    prop_assert!(!event.describe().is_empty());
                }
                Err(err) => {
                    prop_assert!(!is_object);
                    prop_assert!(err.to_string().starts_with("body is not a JSON object: "));
                }
            }
        }
    }
}

//! Realistic sample events for `hookgate send`: what a sender's test button would post.
//!
//! Databricks bodies follow the documented payloads (`event`, `webhook_id`, `event_timestamp`,
//! `model_name`, `version`, stages, `tags`, `comment`, `text`); MLflow bodies follow what MLflow
//! 3.x sends (`entity`, `action`, `timestamp`, `data`) with its `", "`/`": "` separators.

use serde_json::{Map, Value, json};

use crate::event::counterpart;
use crate::verify::Scheme;

/// Databricks event names, as documented.
pub const DATABRICKS_EVENTS: &[&str] = &[
    "MODEL_VERSION_CREATED",
    "MODEL_VERSION_TRANSITIONED_STAGE",
    "TRANSITION_REQUEST_CREATED",
    "COMMENT_CREATED",
    "REGISTERED_MODEL_CREATED",
    "MODEL_VERSION_TAG_SET",
    "MODEL_VERSION_TRANSITIONED_TO_STAGING",
    "MODEL_VERSION_TRANSITIONED_TO_PRODUCTION",
    "MODEL_VERSION_TRANSITIONED_TO_ARCHIVED",
    "TRANSITION_REQUEST_TO_STAGING_CREATED",
    "TRANSITION_REQUEST_TO_PRODUCTION_CREATED",
    "TRANSITION_REQUEST_TO_ARCHIVED_CREATED",
];

/// The sample body for `event` (either naming), as the given sender would serialize it.
pub fn sample_body(
    scheme: Scheme,
    event: &str,
    model: &str,
    version: &str,
    now_ms: i64,
) -> Result<String, String> {
    match scheme {
        Scheme::Databricks => Ok(databricks(&databricks_name(event)?, model, version, now_ms)),
        Scheme::Mlflow => mlflow(&mlflow_name(event)?, model, version, now_ms),
    }
}

/// An MLflow name maps to its Databricks counterpart; one without a counterpart is refused
/// rather than upper-cased into a name no sender uses. Any other name is sent as given
/// (upper-cased), so routing an event Databricks may add later can be tried.
fn databricks_name(event: &str) -> Result<String, String> {
    if !event.contains('.') {
        return Ok(event.to_ascii_uppercase());
    }
    counterpart(event).map(str::to_string).ok_or_else(|| {
        format!("{event} has no Databricks counterpart; Databricks events are named like MODEL_VERSION_CREATED (send it with --scheme mlflow)")
    })
}

fn mlflow_name(event: &str) -> Result<String, String> {
    if event.contains('.') {
        return Ok(event.to_ascii_lowercase());
    }
    counterpart(event).map(str::to_string).ok_or_else(|| {
        format!("{event} has no MLflow counterpart; MLflow events are named entity.action (e.g. model_version.created)")
    })
}

fn stages(event: &str) -> (&'static str, &'static str) {
    if event.contains("ARCHIVED") {
        ("Production", "Archived")
    } else if event.contains("STAGING") {
        ("None", "Staging")
    } else {
        ("Staging", "Production")
    }
}

fn databricks(event: &str, model: &str, version: &str, now_ms: i64) -> String {
    let mut o = Map::new();
    o.insert("event".into(), json!(event));
    o.insert(
        "webhook_id".into(),
        json!("c5596721253c4b429368cf6f4341b88a"),
    );
    o.insert("event_timestamp".into(), json!(now_ms));
    o.insert("model_name".into(), json!(model));
    let (from, to) = stages(event);
    let text = match event {
        "REGISTERED_MODEL_CREATED" => format!("Registered model '{model}' was created."),
        "MODEL_VERSION_CREATED" => {
            format!("A new version {version} of registered model '{model}' was created.")
        }
        "COMMENT_CREATED" => {
            o.insert(
                "comment".into(),
                json!("Looks good to me; metrics are above the bar."),
            );
            format!("A user commented on registered model '{model}' version {version}.")
        }
        "MODEL_VERSION_TAG_SET" => {
            o.insert(
                "tags".into(),
                json!([{"key": "validation_status", "value": "approved"}]),
            );
            format!(
                "ml-ops@example.com set version tag(s) 'validation_status' => 'approved' for registered model '{model}' version {version}."
            )
        }
        e if e.starts_with("MODEL_VERSION_TRANSITIONED") => {
            o.insert("to_stage".into(), json!(to));
            o.insert("from_stage".into(), json!(from));
            format!(
                "Registered model '{model}' version {version} transitioned from {from} to {to}."
            )
        }
        e if e.starts_with("TRANSITION_REQUEST") => {
            o.insert("to_stage".into(), json!(to));
            o.insert("from_stage".into(), json!(from));
            format!(
                "A user requested to transition registered model '{model}' version {version} from {from} to {to}."
            )
        }
        other => format!("Event {other} on registered model '{model}' version {version}."),
    };
    if event != "REGISTERED_MODEL_CREATED" {
        o.insert("version".into(), json!(version));
    }
    o.insert("text".into(), json!(text));
    // Databricks sends compact JSON.
    Value::Object(o).to_string()
}

fn mlflow(event: &str, model: &str, version: &str, now_ms: i64) -> Result<String, String> {
    let (entity, action) = event
        .split_once('.')
        .ok_or_else(|| format!("{event}: MLflow events are named entity.action"))?;
    let data = match (entity, action) {
        ("registered_model", _) | ("prompt", _) => json!({
            "name": model, "tags": {"team": "ml-platform"}, "description": "created by hookgate send"
        }),
        ("model_version", _) => json!({
            "name": model, "version": version, "source": format!("models:/{model}/{version}"),
            "run_id": "3953017a42c847f2b856bbf20880e078", "tags": {}, "description": null
        }),
        ("prompt_version", _) => json!({
            "name": model, "version": version, "template": "Summarize: {{ text }}", "tags": {}, "description": null
        }),
        (e, "set") if e.ends_with("_tag") => json!({
            "name": model, "version": version, "key": "validation_status", "value": "approved"
        }),
        (e, "deleted") if e.ends_with("_tag") => json!({
            "name": model, "version": version, "key": "validation_status"
        }),
        (e, "created") if e.ends_with("_alias") => json!({
            "name": model, "alias": "champion", "version": version
        }),
        (e, "deleted") if e.ends_with("_alias") => json!({"name": model, "alias": "champion"}),
        _ => json!({"name": model, "version": version}),
    };
    let ts = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000)
        .map_err(|e| e.to_string())?
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| e.to_string())?;
    let body = json!({"entity": entity, "action": action, "timestamp": ts, "data": data});
    Ok(python_json(&body))
}

/// JSON with Python's default separators (`", "`, `": "`) and ASCII-only output, as MLflow
/// sends it: the sample should exercise the same byte-exact verification path.
fn python_json(v: &Value) -> String {
    let mut out = String::new();
    write_py(v, &mut out);
    out
}

fn write_py(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py_str(k, out);
                out.push_str(": ");
                write_py(v, out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py(v, out);
            }
            out.push(']');
        }
        Value::String(s) => write_py_str(s, out),
        other => out.push_str(&other.to_string()),
    }
}

fn write_py_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_databricks_event_has_a_sample_with_its_fields() {
        for e in DATABRICKS_EVENTS {
            let body = sample_body(
                Scheme::Databricks,
                e,
                "fraud-detector",
                "3",
                1_700_000_000_000,
            )
            .unwrap();
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["event"], *e);
            assert_eq!(v["model_name"], "fraud-detector");
            assert!(
                v["text"].as_str().unwrap().contains("fraud-detector"),
                "{body}"
            );
            if e.contains("TRANSITION") {
                assert!(v["to_stage"].is_string(), "{body}");
            }
        }
    }

    #[test]
    fn either_naming_selects_the_event() {
        let b = sample_body(Scheme::Databricks, "model_version.created", "m", "1", 0).unwrap();
        assert!(b.contains("\"event\":\"MODEL_VERSION_CREATED\""), "{b}");
        let m = sample_body(Scheme::Mlflow, "MODEL_VERSION_CREATED", "m", "1", 0).unwrap();
        assert!(m.starts_with("{\"entity\": \"model_version\", \"action\": \"created\", \"timestamp\": \"1970-01-01T00:00:00Z\""), "{m}");
        assert!(sample_body(Scheme::Mlflow, "COMMENT_CREATED", "m", "1", 0).is_err());
        // Not upper-cased into a name no sender uses.
        let err = sample_body(
            Scheme::Databricks,
            "model_version_alias.created",
            "m",
            "1",
            0,
        )
        .unwrap_err();
        assert!(err.contains("no Databricks counterpart"), "{err}");
        // A name Databricks may add later can still be tried.
        let b = sample_body(Scheme::Databricks, "model_deployed", "m", "1", 0).unwrap();
        assert!(b.contains("\"event\":\"MODEL_DEPLOYED\""), "{b}");
    }

    #[test]
    fn mlflow_samples_use_python_separators_and_ascii() {
        let m = sample_body(
            Scheme::Mlflow,
            "model_version_alias.created",
            "modèle",
            "2",
            0,
        )
        .unwrap();
        assert!(m.contains("\"data\": {\"name\": \"mod\\u00e8le\", \"alias\": \"champion\", \"version\": \"2\"}"), "{m}");
        let v: Value = serde_json::from_str(&m).unwrap();
        assert_eq!(v["data"]["name"], "modèle");
    }
}

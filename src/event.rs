//! STUB
use bytes::Bytes;

use crate::verify::{Scheme, Verified};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tag {
    pub key: String,
    pub value: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub scheme: Scheme,
    pub name: String,
    pub counterpart: Option<&'static str>,
    pub model: Option<String>,
    pub version: Option<String>,
    pub from_stage: Option<String>,
    pub to_stage: Option<String>,
    pub alias: Option<String>,
    pub tags: Vec<Tag>,
    pub comment: Option<String>,
    pub text: Option<String>,
    pub sender_timestamp_ms: Option<i64>,
    pub webhook_id: Option<String>,
    pub json: serde_json::Value,
    pub raw: Bytes,
}

#[derive(Debug, thiserror::Error)]
#[error("body is not a JSON object: {0}")]
pub struct ParseError(pub String);

impl Event {
    pub fn parse(scheme: Scheme, proof: &Verified, raw: Bytes) -> Result<Event, ParseError> {
        let _ = proof;
        let json: serde_json::Value =
            serde_json::from_slice(&raw).map_err(|e| ParseError(e.to_string()))?;
        Ok(Event {
            scheme,
            name: json["event"].as_str().unwrap_or("unknown").to_string(),
            counterpart: None,
            model: json["model_name"].as_str().map(str::to_string),
            version: None,
            from_stage: None,
            to_stage: None,
            alias: None,
            tags: vec![],
            comment: None,
            text: None,
            sender_timestamp_ms: None,
            webhook_id: None,
            json,
            raw,
        })
    }
    pub fn has_name(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
    pub fn describe(&self) -> String {
        self.name.clone()
    }
}

pub fn counterpart(name: &str) -> Option<&'static str> {
    let _ = name;
    None
}

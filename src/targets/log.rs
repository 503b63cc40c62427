//! Log target: one JSON line per event, to stdout or appended to a file. For trying routes out,
//! and as an audit trail.
//!
//! The file is opened (created if missing) in append mode for every line, so rotating it with
//! `logrotate` (move + new file) needs no signal; a per-target lock keeps lines whole. A write
//! error is transient (disk full, directory being remounted) and retried. A written line is
//! `Delivered { status: 0 }` with `status_code: None`: there is no HTTP status.

use std::path::PathBuf;

use serde::Serialize;
use tokio::io::AsyncWriteExt as _;

use super::Delivery;
use super::template::Render;
use crate::config::LogConfig;
use crate::dispatch::retry::Outcome;

pub(crate) struct Log {
    path: Option<PathBuf>,
    lock: tokio::sync::Mutex<()>,
}

/// Field order is the line's order: `ts` first reads best in a terminal.
#[derive(Serialize)]
struct Line<'a> {
    ts: String,
    target: &'a str,
    event_id: &'a str,
    endpoint: &'a str,
    event: &'a str,
    model: Option<&'a str>,
    version: Option<&'a str>,
    text: String,
    payload: &'a serde_json::Value,
}

impl Log {
    pub(crate) fn build(c: &LogConfig) -> Self {
        Log {
            path: c.path.clone(),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The line, without its newline.
    pub(crate) fn prepare(&self, r: &Render<'_>) -> String {
        let e = r.event();
        let ts = time::OffsetDateTime::from_unix_timestamp(r.ctx.now_unix)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let line = Line {
            ts,
            target: r.target,
            event_id: r.ctx.event_id,
            endpoint: r.ctx.endpoint,
            event: &e.name,
            model: e.model.as_deref(),
            version: e.version.as_deref(),
            text: e.describe(),
            // The parsed body: compact, so a pretty-printed body still makes one line.
            payload: &e.json,
        };
        serde_json::to_string(&line).expect("a log line serializes")
    }

    pub(crate) async fn write(&self, line: &str) -> Delivery {
        let mut buf = String::with_capacity(line.len() + 1);
        buf.push_str(line);
        buf.push('\n');
        let _guard = self.lock.lock().await;
        let result = match &self.path {
            Some(path) => append(path, buf.as_bytes()).await,
            None => {
                // One write of the whole line through the locked std handle, so it is not
                // interleaved with other users of stdout (the tracing subscriber).
                use std::io::Write as _;
                let mut out = std::io::stdout().lock();
                out.write_all(buf.as_bytes()).and_then(|()| out.flush())
            }
        };
        let outcome = match result {
            Ok(()) => Outcome::Delivered { status: 0 },
            Err(e) => Outcome::Retry {
                reason: format!("log write error: {e}"),
                retry_after: None,
            },
        };
        Delivery {
            outcome,
            status_code: None,
        }
    }
}

async fn append(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await?;
    f.write_all(bytes).await?;
    f.flush().await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::TargetKind;
    use crate::targets::Action;
    use crate::targets::testutil::*;

    fn line_of(t: &crate::targets::Target, e: &crate::event::Event) -> String {
        match t.prepare(&context(e)).unwrap() {
            Action::Log { line } => line,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn one_json_line_in_order() {
        let t = build("audit", TargetKind::Log(LogConfig::default()));
        let e = databricks_event();
        let line = line_of(&t, &e);
        assert!(!line.contains('\n'));
        assert!(
            line.starts_with(r#"{"ts":"2026-09-21T"#),
            "ts first, RFC 3339: {line}"
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v,
            json!({
                "ts": "2026-09-21T14:13:20Z",
                "target": "audit",
                "event_id": EVENT_ID,
                "endpoint": "registry",
                "event": "MODEL_VERSION_TRANSITIONED_STAGE",
                "model": "Airline_Delay_SparkML",
                "version": "8",
                "text": e.describe(),
                "payload": e.json,
            })
        );
        let e = mlflow_event();
        let v: serde_json::Value = serde_json::from_str(&line_of(&t, &e)).unwrap();
        assert_eq!(v["event"], json!("model_version_alias.created"));
        assert_eq!(v["payload"]["data"]["alias"], json!("champion"));
    }

    #[tokio::test]
    async fn appends_to_a_file_it_creates() {
        let dir = std::env::temp_dir().join(format!("hookgate-log-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        let t = build(
            "audit",
            TargetKind::Log(LogConfig {
                path: Some(path.clone()),
            }),
        );
        // A log target needs no HTTP client.
        assert!(!t.needs_http());
        for e in [databricks_event(), mlflow_event()] {
            let d = t.deliver(None, &context(&e)).await;
            assert_eq!(d.outcome, Outcome::Delivered { status: 0 });
            assert_eq!(d.status_code, None);
        }
        let written = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<_> = written.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], line_of(&t, &databricks_event()));
        assert_eq!(lines[1], line_of(&t, &mlflow_event()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn write_errors_are_retried() {
        let path = std::env::temp_dir()
            .join(format!("hookgate-missing-{}", uuid::Uuid::new_v4()))
            .join("events.jsonl");
        let t = build("audit", TargetKind::Log(LogConfig { path: Some(path) }));
        let d = t.deliver(None, &context(&databricks_event())).await;
        assert!(
            matches!(&d.outcome, Outcome::Retry { reason, .. } if reason.starts_with("log write error")),
            "{d:?}"
        );
    }
}

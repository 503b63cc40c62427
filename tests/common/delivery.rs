//! Helpers for the delivery tests: fast retry settings, polling the admin API until a delivery
//! reaches a state, running the `hookgate` binary, and reading what fake targets received.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::fake::{FakeTarget, Recorded};
use super::{Gateway, MLFLOW_SECRET, Vector, load_vectors};

/// Retry settings that keep tests fast: first retry after 50-100 ms, at most 500 ms apart.
pub const FAST_RETRY: &str = r#"
[retry]
timeout = "3s"
initial = "100ms"
max_delay = "500ms"
max_attempts = 5
"#;

/// The `text` of the Databricks stage-transition vector (`MODEL_VERSION_TRANSITIONED_STAGE.json`).
pub const DBX_TEXT: &str =
    "Registered model 'someModel' version 8 transitioned from None to Production.";

/// How long any test waits for something that should take well under a second.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A header a recorded request must have.
pub fn header<'a>(r: &'a Recorded, name: &str) -> &'a str {
    r.header(name)
        .unwrap_or_else(|| panic!("no {name} header in {:?}", r.headers))
}

/// A Databricks `jobs/run-now` request as the `databricks_job` target sends it: a POST to its
/// path with the bearer token, JSON with exactly `job_id`, `idempotency_token` and `params`
/// (`job_parameters` or `notebook_params`). Returns the body.
pub fn run_now_body(r: &Recorded, authorization: &str, params: &str) -> Value {
    assert_eq!(r.method, "POST");
    assert_eq!(r.uri, "/api/2.1/jobs/run-now");
    assert_eq!(header(r, "authorization"), authorization);
    assert_eq!(header(r, "content-type"), "application/json");
    let body = r.json();
    let keys: std::collections::BTreeSet<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        std::collections::BTreeSet::from(["job_id", "idempotency_token", params]),
        "{body}"
    );
    body
}

/// One vector file by directory and name.
pub fn vector(dir: &str, file: &str) -> Vector {
    load_vectors(dir)
        .into_iter()
        .find(|v| v.file == file)
        .unwrap_or_else(|| panic!("no vector {dir}/{file}"))
}

/// Poll `/admin/events/{event_id}` until `done` holds for its answer; panics after `within` with
/// the last answer.
pub async fn wait_event(
    g: &Gateway,
    event_id: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = g.admin_get(&format!("/admin/events/{event_id}")).await;
        if status == 200 && done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "event {event_id}: condition not met within {within:?}; last answer {status}: {body:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The delivery of an event (an `/admin/events/{id}` answer) to `target`.
pub fn delivery<'a>(event: &'a Value, target: &str) -> &'a Value {
    event["deliveries"]
        .as_array()
        .expect("deliveries is a list")
        .iter()
        .find(|d| d["target"] == target)
        .unwrap_or_else(|| panic!("no delivery to {target} in {event:#}"))
}

/// The attempts of an event's delivery to `target`, oldest first.
pub fn attempts(event: &Value, target: &str) -> Vec<Value> {
    let id = delivery(event, target)["id"].clone();
    event["attempts"]
        .as_array()
        .expect("attempts is a list")
        .iter()
        .filter(|a| a["delivery_id"] == id)
        .cloned()
        .collect()
}

/// Wait until the event's delivery to `target` has `status` (`pending`, `delivered`, `dead`)
/// with at least `min_attempts` attempts recorded; returns the event.
pub async fn wait_delivery(
    g: &Gateway,
    event_id: &str,
    target: &str,
    status: &str,
    min_attempts: usize,
) -> Value {
    wait_event(g, event_id, PATIENCE, |e| {
        e["deliveries"].as_array().is_some_and(|ds| {
            ds.iter()
                .any(|d| d["target"] == target && d["status"] == status)
        }) && attempts(e, target).len() >= min_attempts
    })
    .await
}

/// The status of the event's delivery to `target`, read now.
pub async fn delivery_status(g: &Gateway, event_id: &str, target: &str) -> String {
    let (s, e) = g.admin_get(&format!("/admin/events/{event_id}")).await;
    assert_eq!(s, 200, "{e}");
    delivery(&e, target)["status"].as_str().unwrap().to_string()
}

/// Requests a fake received for one event (matched on `X-Hookgate-Event-Id` or on the event id
/// anywhere in the body, for kinds that carry no such header).
pub fn requests_for(fake: &FakeTarget, event_id: &str) -> Vec<Recorded> {
    fake.requests()
        .into_iter()
        .filter(|r| {
            r.header("X-Hookgate-Event-Id") == Some(event_id)
                || String::from_utf8_lossy(&r.body).contains(event_id)
        })
        .collect()
}

/// Post an MLflow body to `/mlflow/webhook`, signed now with the vectors' secret.
pub async fn post_mlflow(g: &Gateway, delivery_id: &str, body: &str) -> (u16, Value) {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let sig =
        hookgate::verify::mlflow::sign(MLFLOW_SECRET.as_bytes(), delivery_id, ts, body.as_bytes());
    let ts = ts.to_string();
    g.post_raw(
        "POST",
        "/mlflow/webhook",
        &[
            ("Content-Type", "application/json"),
            ("X-MLflow-Delivery-Id", delivery_id),
            ("X-MLflow-Timestamp", &ts),
            ("X-MLflow-Signature", &sig),
        ],
        body.as_bytes().to_vec(),
    )
    .await
}

/// The event id of an ingress answer, asserting the event was accepted.
pub fn accepted_id((status, body): (u16, Value)) -> String {
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "accepted", "{body}");
    body["event_id"].as_str().unwrap().to_string()
}

/// The output of one run of the `hookgate` binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Run the `hookgate` binary (asynchronously: the in-process gateway keeps serving meanwhile).
pub async fn hookgate<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(args)
        .env_remove("HOOKGATE_CONFIG")
        // `sign` and `send` read these when no flag is given; a test gives its own.
        .env_remove("HOOKGATE_SECRET")
        .env_remove("HOOKGATE_BEARER")
        .env("HOOKGATE_LOG", "warn")
        .kill_on_drop(true)
        .output()
        .await
        .expect("the hookgate binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `hookgate deliveries ARGS --config CFG`, asserting it succeeds; its stdout.
pub async fn deliveries_cli(cfg: &Path, args: &[&str]) -> String {
    let mut all: Vec<&OsStr> = vec![OsStr::new("deliveries")];
    all.extend(args.iter().map(OsStr::new));
    all.extend([OsStr::new("--config"), cfg.as_os_str()]);
    let run = hookgate(all).await;
    assert_eq!(run.code, 0, "deliveries {args:?}: {run:?}");
    run.stdout
}

/// Write a configuration file for the CLI.
pub fn write_config(dir: &Path, toml: &str) -> PathBuf {
    let path = dir.join("routes.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// `a=1&b=2` → pairs, decoded.
pub fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A 127.0.0.1 port with nothing listening on it (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

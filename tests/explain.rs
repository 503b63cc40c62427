//! `hookgate explain` tells the truth: for every vector, what it says the gateway would answer and
//! send is what the running gateway, with the same configuration, then answers and sends.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::delivery::*;
use common::fake::FakeTarget;
use common::*;
use serde_json::Value;

/// Where a vector is sent: its own path, except the MLflow file signed with a secret its receiver
/// does not have, which goes to the endpoint configured with another one (as in `ingress.rs`).
fn receiving_path(v: &Vector) -> &str {
    if v.secret == "not-the-secret" {
        "/mlflow/other-secret"
    } else {
        &v.path
    }
}

/// The `--now` to explain a vector with: its MLflow timestamp, or the current time.
fn now_for(v: &Vector) -> String {
    v.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("X-MLflow-Timestamp"))
        .map(|(_, t)| t.clone())
        .unwrap_or_else(|| (hookgate::app::now_ms() / 1000).to_string())
}

#[tokio::test]
async fn explain_on_every_vector_matches_what_the_gateway_sends() {
    let fake = FakeTarget::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hookgate.db");
    // No secret in the http target: the redacted request explain prints is the real one.
    let extra = format!(
        r#"
[retry]
initial = "100ms"
max_delay = "500ms"

[targets.relay]
kind = "http"
url = "{}"

[[routes]]
name = "everything"
events = ["*"]
to = ["relay"]
"#,
        fake.url("/relay")
    );
    let toml = base_config(&db, &extra);
    let cfg = write_config(dir.path(), &toml);
    let g = Gateway::start_with(&toml, db).await;
    let requests = dir.path().join("requests");
    std::fs::create_dir(&requests).unwrap();

    let vectors: Vec<(&str, Vector)> = ["databricks", "mlflow"]
        .into_iter()
        .flat_map(|dir| load_vectors(dir).into_iter().map(move |v| (dir, v)))
        .collect();
    let mut accepted: Vec<(String, String, Value)> = Vec::new();
    let mut ids = HashSet::new();
    let mut rejected = 0;
    for (dir, v) in &vectors {
        let path = receiving_path(v);
        // The request file explain reads: the vector as the gateway receives it.
        let original = std::fs::read(fixtures().join(dir).join(&v.file)).unwrap();
        let mut file: Value = serde_json::from_slice(&original).unwrap();
        file["path"] = Value::from(path);
        let req_file = requests.join(&v.file);
        std::fs::write(&req_file, serde_json::to_vec(&file).unwrap()).unwrap();
        let run = hookgate([
            "explain".as_ref(),
            "--json".as_ref(),
            "--now".as_ref(),
            now_for(v).as_ref(),
            "--config".as_ref(),
            cfg.as_os_str(),
            req_file.as_os_str(),
        ])
        .await;
        let x: Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("{}: explain printed no JSON ({e}): {run:?}", v.file));

        let (status, answer) = g.send_vector_to(v, path).await;
        let ctx = format!(
            "{}: explained {x:#}\ngateway answered {status} {answer}",
            v.file
        );
        assert_eq!(x["status"], status, "{ctx}");
        assert_eq!(run.code, if status == 200 { 0 } else { 1 }, "{ctx}");
        if status != 200 {
            let reason = answer["reason"].as_str().unwrap();
            let verdict = x["verdict"].as_str().unwrap();
            assert!(verdict.starts_with(&format!("rejected: {reason}")), "{ctx}");
            assert_eq!(x["targets"], Value::Array(vec![]), "{ctx}");
            rejected += 1;
            continue;
        }
        assert_eq!(x["verdict"], "accepted", "{ctx}");
        assert_eq!(x["event_id"], answer["event_id"], "{ctx}");
        assert_eq!(x["event"]["event"], answer["event"], "{ctx}");
        let targets = x["targets"].as_array().unwrap();
        assert_eq!(targets.len(), 1, "{ctx}");
        assert_eq!(targets[0]["target"], "relay");
        assert_eq!(targets[0]["kind"], "http");
        let id = answer["event_id"].as_str().unwrap().to_string();
        if answer["status"] == "duplicate" {
            // The same event as an earlier file: stored and sent once, for that file.
            assert!(ids.contains(&id), "{ctx}");
            continue;
        }
        assert_eq!(answer["status"], "accepted", "{ctx}");
        assert_eq!(answer["targets"], serde_json::json!(["relay"]), "{ctx}");
        assert!(ids.insert(id.clone()));
        accepted.push((v.file.clone(), id, targets[0]["request"].clone()));
    }
    // Not vacuous: most vectors are accepted and sent, and the bad ones are compared too.
    assert!(accepted.len() >= 30, "{} accepted", accepted.len());
    assert!(rejected >= 10, "{rejected} rejected");

    fake.wait_for(accepted.len(), Duration::from_secs(20)).await;
    for (file, id, explained) in &accepted {
        let got = requests_for(&fake, id);
        assert_eq!(got.len(), 1, "{file}: sent once: {got:#?}");
        let r = &got[0];
        assert_eq!(explained["method"], r.method.as_str(), "{file}");
        assert_eq!(
            explained["url"],
            format!("http://{}{}", fake.addr, r.uri),
            "{file}"
        );
        assert_eq!(explained["body"], r.text(), "{file}: the body");
        // Every header explain shows is sent with that value (none is secret here) ...
        let headers = explained["headers"].as_object().unwrap();
        for (k, v) in headers {
            assert_eq!(r.header(k), v.as_str(), "{file}: header {k}");
        }
        // ... including the stable ones a receiver relies on.
        for k in [
            "Idempotency-Key",
            "X-Hookgate-Event-Id",
            "X-Hookgate-Event",
            "Content-Type",
        ] {
            assert!(headers.contains_key(k), "{file}: explain shows {k}");
        }
        assert_eq!(r.header("Idempotency-Key"), Some(id.as_str()));
    }
    assert_eq!(
        fake.requests().len(),
        accepted.len(),
        "nothing else was sent"
    );
    g.stop().await;
}

/// A request file is read as the gateway reads a request: the method as sent (methods are
/// case-sensitive), the body from `body_base64` alone when there is no `body`, and a header
/// value that is not a string refused by name rather than dropped.
#[tokio::test]
async fn request_files_are_read_as_the_gateway_reads_requests() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &base_config(&dir.path().join("h.db"), ""));
    let original: Value = serde_json::from_slice(
        &std::fs::read(
            fixtures()
                .join("databricks")
                .join("MODEL_VERSION_CREATED.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let explain = async |file: &Value| {
        let path = dir.path().join("request.json");
        std::fs::write(&path, serde_json::to_vec(file).unwrap()).unwrap();
        let run = hookgate([
            "explain".as_ref(),
            "--json".as_ref(),
            "--config".as_ref(),
            cfg.as_os_str(),
            path.as_os_str(),
        ])
        .await;
        let json = serde_json::from_str::<Value>(&run.stdout).unwrap_or(Value::Null);
        (run, json)
    };

    let (run, x) = explain(&original).await;
    assert_eq!(
        (run.code, &x["verdict"]),
        (0, &"accepted".into()),
        "{run:?}"
    );

    let mut lower = original.clone();
    lower["method"] = "post".into();
    let (_, x) = explain(&lower).await;
    assert_eq!(x["status"], 405, "{x}");

    let mut base64_only = original.clone();
    let body = base64_only.as_object_mut().unwrap().remove("body").unwrap();
    base64_only["body_base64"] = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .encode(body.as_str().unwrap())
            .into()
    };
    let (run, x) = explain(&base64_only).await;
    assert_eq!(
        (run.code, &x["verdict"]),
        (0, &"accepted".into()),
        "{run:?}"
    );

    let mut number = original.clone();
    number["headers"]["X-Databricks-Signature"] = 12345.into();
    let (run, _) = explain(&number).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("header X-Databricks-Signature: the value must be a string"),
        "{}",
        run.stderr
    );
}

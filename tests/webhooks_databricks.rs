//! `hookgate webhooks` against a local fake of the Databricks registry-webhooks API.
//!
//! The fake keeps webhooks in memory, records every request, and, like Databricks, answers
//! `test` by POSTing a signed sample event to the webhook's URL (the real gateway, in process)
//! and returning what it answered. The real `hookgate` binary is run with `DATABRICKS_HOST` and
//! `DATABRICKS_TOKEN` pointing at the fake; requests are checked against the shapes of the
//! Databricks page on registry webhooks.

mod common;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use common::Gateway;
use hookgate::cli::webhooks::plan::{authorization_fingerprint, secret_fingerprint};

const TOKEN: &str = "dapi-fake-workspace-token-0001";
const SECRET: &str = "whsec-current-7f3a9c1e5b";
const OLD_SECRET: &str = "whsec-previous-2d8e4f6a1c";
const BEARER: &str = "AbcdEfg1294xyz";
const BASE: &str = "/api/2.0/mlflow/registry-webhooks";

/// One request the fake received.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    path: String,
    query: Option<String>,
    authorization: Option<String>,
    body: Value,
}

/// A stored webhook: what `list` returns, plus what Databricks keeps but never returns.
#[derive(Debug, Clone)]
struct Stored {
    public: Value,
    secret: Option<String>,
    authorization: Option<String>,
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    hooks: Vec<Stored>,
    next_id: u64,
    /// Answers that override the next requests (status, body).
    script: VecDeque<(u16, Value)>,
}

#[derive(Clone)]
struct FakeDatabricks {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl FakeDatabricks {
    async fn start() -> FakeDatabricks {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            next_id: 1_234_567_890,
            ..State::default()
        }));
        let s = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let s = s.clone();
                        async move {
                            let (status, body) = handle(&s, req).await;
                            let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
                            *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            r.headers_mut()
                                .insert("content-type", "application/json".parse().unwrap());
                            Ok::<_, Infallible>(r)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FakeDatabricks { addr, state }
    }

    fn host(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far (and forget them).
    fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.state.lock().unwrap().calls)
    }

    fn script(&self, status: u16, body: Value) {
        self.state.lock().unwrap().script.push_back((status, body));
    }

    /// Add a webhook as if made elsewhere; returns its id.
    fn seed(&self, public: Value, secret: Option<&str>) -> String {
        let mut st = self.state.lock().unwrap();
        st.next_id += 1;
        let id = st.next_id.to_string();
        let mut public = public;
        public["id"] = json!(id);
        public["creation_timestamp"] = json!(1_571_440_826_026u64);
        public["last_updated_timestamp"] = json!(1_571_440_826_026u64);
        st.hooks.push(Stored {
            public,
            secret: secret.map(str::to_string),
            authorization: None,
        });
        id
    }

    fn hook(&self, id: &str) -> Option<Stored> {
        self.state
            .lock()
            .unwrap()
            .hooks
            .iter()
            .find(|h| h.public["id"] == id)
            .cloned()
    }
}

fn error(status: u16, code: &str, message: &str) -> (u16, Value) {
    (status, json!({"error_code": code, "message": message}))
}

/// Split `http_url_spec` into what `list` shows and what stays secret.
fn store_spec(h: &mut Stored, spec: &Value) {
    h.public["http_url_spec"] = json!({
        "url": spec["url"],
        "enable_ssl_verification": spec.get("enable_ssl_verification").cloned().unwrap_or(json!(true)),
    });
    h.secret = spec["secret"].as_str().map(str::to_string);
    h.authorization = spec["authorization"].as_str().map(str::to_string);
}

async fn handle(state: &Arc<Mutex<State>>, req: Request<hyper::body::Incoming>) -> (u16, Value) {
    let (parts, body) = req.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let body: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::String("<not json>".into()))
    };
    let call = Call {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        authorization: parts
            .headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string()),
        body: body.clone(),
    };
    // Databricks answers 401 without the workspace token.
    let authorized = call.authorization.as_deref() == Some(&format!("Bearer {TOKEN}"));
    let test_target = {
        let mut st = state.lock().unwrap();
        st.calls.push(call.clone());
        if let Some(scripted) = st.script.pop_front() {
            return scripted;
        }
        if !authorized {
            return error(401, "UNAUTHENTICATED", "Invalid access token.");
        }
        let now = 1_700_000_000_000u64 + st.calls.len() as u64;
        let find = |st: &mut State, id: &Value| st.hooks.iter().position(|h| &h.public["id"] == id);
        match (call.method.as_str(), call.path.strip_prefix(BASE)) {
            ("GET", Some("/list")) => {
                let model = call.query.as_deref().and_then(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .find(|(k, _)| k == "model_name")
                        .map(|(_, v)| v.into_owned())
                });
                let hooks: Vec<Value> = st
                    .hooks
                    .iter()
                    .filter(|h| model.as_deref().is_none_or(|m| h.public["model_name"] == m))
                    .map(|h| h.public.clone())
                    .collect();
                // An empty list is answered as `{}`, as proto3 JSON does.
                return if hooks.is_empty() {
                    (200, json!({}))
                } else {
                    (200, json!({ "webhooks": hooks }))
                };
            }
            ("POST", Some("/create")) => {
                st.next_id += 1;
                let mut public = json!({
                    "id": st.next_id.to_string(),
                    "creation_timestamp": now,
                    "last_updated_timestamp": now,
                    "status": body.get("status").cloned().unwrap_or(json!("ACTIVE")),
                    "events": body["events"],
                });
                for k in ["model_name", "description"] {
                    if let Some(v) = body.get(k) {
                        public[k] = v.clone();
                    }
                }
                let mut h = Stored {
                    public,
                    secret: None,
                    authorization: None,
                };
                store_spec(&mut h, &body["http_url_spec"]);
                let answer = json!({ "webhook": h.public });
                st.hooks.push(h);
                return (200, answer);
            }
            ("PATCH", Some("/update")) => {
                let Some(i) = find(&mut st, &body["id"]) else {
                    return error(404, "RESOURCE_DOES_NOT_EXIST", "Webhook not found");
                };
                let h = &mut st.hooks[i];
                for k in ["status", "events", "description"] {
                    if let Some(v) = body.get(k) {
                        h.public[k] = v.clone();
                    }
                }
                if let Some(spec) = body.get("http_url_spec") {
                    store_spec(h, spec);
                }
                h.public["last_updated_timestamp"] = json!(now);
                // The SDKs declare no answer body for an update.
                return (200, json!({}));
            }
            ("DELETE", Some("/delete")) => {
                let id = call.query.as_deref().and_then(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .find(|(k, _)| k == "id")
                        .map(|(_, v)| v.into_owned())
                });
                let Some(i) = find(&mut st, &json!(id)) else {
                    return error(404, "RESOURCE_DOES_NOT_EXIST", "Webhook not found");
                };
                st.hooks.remove(i);
                return (200, json!({}));
            }
            ("POST", Some("/test")) => {
                let Some(i) = find(&mut st, &body["id"]) else {
                    return error(404, "RESOURCE_DOES_NOT_EXIST", "Webhook not found");
                };
                let h = st.hooks[i].clone();
                let event = body["event"]
                    .as_str()
                    .or_else(|| h.public["events"][0].as_str())
                    .unwrap()
                    .to_string();
                (h, event)
            }
            _ => return error(404, "ENDPOINT_NOT_FOUND", "No API found"),
        }
    };
    // Like Databricks: deliver a signed sample event, report the receiver's status and body.
    let (h, event) = test_target;
    let sample = hookgate::cli::samples::sample_body(
        hookgate::verify::Scheme::Databricks,
        &event,
        "fraud-detector",
        "1",
        1_700_000_000_000,
    )
    .unwrap();
    let mut req = hookgate::targets::client_builder()
        .build()
        .unwrap()
        .post(h.public["http_url_spec"]["url"].as_str().unwrap())
        .header("Content-Type", "application/json")
        .body(sample.clone());
    if let Some(secret) = &h.secret {
        req = req.header(
            "X-Databricks-Signature",
            hookgate::verify::databricks::sign(secret.as_bytes(), sample.as_bytes()),
        );
    }
    if let Some(a) = &h.authorization {
        req = req.header("Authorization", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    // The REST answer, as the SDKs' `TestRegistryWebhookResponse` has it.
    (
        200,
        json!({"webhook": {"status_code": status, "body": text}}),
    )
}

/// The test configuration: a Databricks endpoint with a secret (and an old one still accepted)
/// and a bearer, an MLflow endpoint, and routes naming events in both namings.
fn config(db: &Path, log: &Path, public_url: Option<&str>, secrets: &[&str]) -> String {
    let public = public_url
        .map(|u| format!("public_url = \"{u}\""))
        .unwrap_or_default();
    let secrets: Vec<String> = secrets.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
shutdown_grace = "5s"
{public}

[store]
url = "sqlite://{db}"

[[endpoints]]
name = "databricks"
path = "/hooks/databricks"
scheme = "databricks"
secrets = [{secrets}]
bearer = "{BEARER}"

[[endpoints]]
name = "mlflow"
path = "/hooks/mlflow"
scheme = "mlflow"
secrets = ["mlflow-secret-unused"]

[targets.file]
kind = "log"
path = "{log}"

[[routes]]
name = "production requests"
events = ["TRANSITION_REQUEST_TO_PRODUCTION_CREATED", "model_version.created", "model_version_alias.created"]
to = ["file"]

[[routes]]
name = "mlflow only"
endpoints = ["mlflow"]
events = ["*"]
to = ["file"]
"#,
        db = db.display(),
        log = log.display(),
        secrets = secrets.join(", "),
    )
}

/// A gateway, the fake workspace, and a config file for the CLI naming both.
struct Setup {
    gateway: Gateway,
    fake: FakeDatabricks,
    dir: tempfile::TempDir,
    cli_config: PathBuf,
}

impl Setup {
    async fn start() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("hookgate.db");
        let log = dir.path().join("deliveries.log");
        let gateway =
            Gateway::start_with(&config(&db, &log, None, &[SECRET, OLD_SECRET]), db.clone()).await;
        let fake = FakeDatabricks::start().await;
        let cli_config = dir.path().join("routes.toml");
        let setup = Setup {
            gateway,
            fake,
            dir,
            cli_config,
        };
        setup.write_config(&[SECRET, OLD_SECRET]);
        setup
    }

    /// The CLI's view: the gateway's configuration plus where the sender reaches it.
    fn write_config(&self, secrets: &[&str]) {
        let public = format!("http://{}", self.gateway.addr);
        std::fs::write(
            &self.cli_config,
            config(
                &self.dir.path().join("hookgate.db"),
                &self.dir.path().join("deliveries.log"),
                Some(&public),
                secrets,
            ),
        )
        .unwrap();
    }

    fn hook_url(&self) -> String {
        format!("http://{}/hooks/databricks", self.gateway.addr)
    }

    async fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[("DATABRICKS_TOKEN", TOKEN)]).await
    }

    async fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
            .arg("webhooks")
            .args(args)
            .arg("--config")
            .arg(&self.cli_config)
            // Nothing from the developer's or CI's environment may leak in.
            .env_clear()
            .env("DATABRICKS_HOST", self.fake.host())
            .envs(env.iter().copied())
            .output()
            .await
            .unwrap();
        let o = Output {
            code: out.status.code(),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        };
        eprintln!(
            "$ hookgate webhooks {}\n{}{}",
            args.join(" "),
            o.stdout,
            o.stderr
        );
        for secret in [TOKEN, SECRET, OLD_SECRET, BEARER] {
            assert!(
                !o.stdout.contains(secret) && !o.stderr.contains(secret),
                "a secret was printed by {args:?}:\n{o:?}"
            );
        }
        o
    }
}

#[derive(Debug)]
struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Output {
    fn ok(self) -> Output {
        assert_eq!(self.code, Some(0), "{self:#?}");
        self
    }
}

fn assert_authorized(calls: &[Call]) {
    for c in calls {
        assert_eq!(
            c.authorization.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str()),
            "{c:?}"
        );
    }
}

fn description(secret: &str) -> String {
    format!(
        "managed by hookgate: endpoint=databricks fp={} auth={}",
        secret_fingerprint(secret),
        authorization_fingerprint(&format!("Bearer {BEARER}"))
    )
}

const EVENTS: [&str; 2] = [
    "MODEL_VERSION_CREATED",
    "TRANSITION_REQUEST_TO_PRODUCTION_CREATED",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_sends_the_documented_requests() {
    let s = Setup::start().await;
    let slack = s.fake.seed(
        json!({"status": "ACTIVE", "events": ["MODEL_VERSION_CREATED"],
               "description": "Slack notifications",
               "http_url_spec": {"url": "https://hooks.slack.com/services/T0/B0/x", "enable_ssl_verification": true}}),
        Some("someone-elses-secret"),
    );

    // create: refuses nothing, lists first (to avoid a duplicate), then creates in TEST_MODE.
    let out = s.run(&["create", "--endpoint", "databricks"]).await.ok();
    let calls = s.fake.take_calls();
    assert_authorized(&calls);
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!(
        (calls[0].method.as_str(), calls[0].path.as_str()),
        ("GET", "/api/2.0/mlflow/registry-webhooks/list")
    );
    assert_eq!(calls[0].query, None, "registry-wide: no model_name");
    assert_eq!(
        (calls[1].method.as_str(), calls[1].path.as_str()),
        ("POST", "/api/2.0/mlflow/registry-webhooks/create")
    );
    assert_eq!(
        calls[1].body,
        json!({
            "events": EVENTS,
            "description": description(SECRET),
            "status": "TEST_MODE",
            "http_url_spec": {
                "url": s.hook_url(),
                "secret": SECRET,
                "authorization": format!("Bearer {BEARER}"),
                "enable_ssl_verification": true
            }
        })
    );
    let id = s.fake.state.lock().unwrap().hooks.last().unwrap().public["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        out.stdout.contains(&format!(
            "created webhook {id} (TEST_MODE) for endpoint 'databricks'"
        )),
        "{out:#?}"
    );
    assert!(
        out.stderr.contains("model_version_alias.created"),
        "the dropped route event is mentioned: {out:#?}"
    );

    // A second create would duplicate deliveries: refused.
    let dup = s.run(&["create", "--endpoint", "databricks"]).await;
    assert_ne!(dup.code, Some(0));
    assert!(dup.stderr.contains("sync"), "{dup:#?}");
    assert_eq!(s.fake.take_calls().len(), 1, "only the list call");

    // test: Databricks fires a signed sample at the gateway, which verifies it.
    let out = s.run(&["test", &id, "--endpoint", "databricks"]).await.ok();
    let calls = s.fake.take_calls();
    assert_authorized(&calls);
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].method.as_str(), calls[0].path.as_str()),
        ("POST", "/api/2.0/mlflow/registry-webhooks/test")
    );
    assert_eq!(calls[0].body, json!({"id": id}));
    assert!(out.stdout.contains("answered HTTP 200"), "{out:#?}");
    assert!(out.stdout.contains(r#""status":"accepted""#), "{out:#?}");
    assert!(out.stdout.contains("MODEL_VERSION_CREATED"), "{out:#?}");

    // test with a chosen event, in the other naming.
    let out = s
        .run(&[
            "test",
            &id,
            "--endpoint",
            "databricks",
            "--event",
            "transition_request_to_production_created",
        ])
        .await
        .ok();
    let calls = s.fake.take_calls();
    assert_eq!(
        calls[0].body,
        json!({"id": id, "event": "TRANSITION_REQUEST_TO_PRODUCTION_CREATED"})
    );
    assert!(
        out.stdout
            .contains("TRANSITION_REQUEST_TO_PRODUCTION_CREATED"),
        "{out:#?}"
    );

    // activate / disable: PATCH update with id and status.
    let out = s
        .run(&["activate", &id, "--endpoint", "databricks"])
        .await
        .ok();
    assert!(
        out.stdout.contains(&format!("webhook {id} is now ACTIVE")),
        "{out:#?}"
    );
    let calls = s.fake.take_calls();
    assert_authorized(&calls);
    assert_eq!(
        (calls[0].method.as_str(), calls[0].path.as_str()),
        ("PATCH", "/api/2.0/mlflow/registry-webhooks/update")
    );
    assert_eq!(calls[0].body, json!({"id": id, "status": "ACTIVE"}));

    // list: ours is marked, with its secret state; the Slack one is not.
    let out = s.run(&["list", "--endpoint", "databricks"]).await.ok();
    let calls = s.fake.take_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "GET");
    assert!(out.stdout.contains("Databricks webhooks at"), "{out:#?}");
    assert!(
        out.stdout.contains(&format!("* {id}  ACTIVE")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("endpoint: databricks, secret current"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("  {slack}  ACTIVE")),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains(&format!("* {slack}")),
        "{}",
        out.stdout
    );

    // list --model passes model_name as a query parameter.
    s.run(&[
        "list",
        "--endpoint",
        "databricks",
        "--model",
        "fraud detector",
    ])
    .await
    .ok();
    let calls = s.fake.take_calls();
    assert_eq!(calls[0].query.as_deref(), Some("model_name=fraud+detector"));

    let out = s
        .run(&["disable", &id, "--endpoint", "databricks"])
        .await
        .ok();
    assert!(out.stdout.contains("is now DISABLED"), "{out:#?}");
    let calls = s.fake.take_calls();
    assert_eq!(calls[0].body, json!({"id": id, "status": "DISABLED"}));

    // delete: DELETE with the id (query, as the API reference has it, and body, as the page).
    let out = s
        .run(&["delete", &id, "--endpoint", "databricks"])
        .await
        .ok();
    assert!(
        out.stdout.contains(&format!("deleted webhook {id}")),
        "{out:#?}"
    );
    let calls = s.fake.take_calls();
    assert_authorized(&calls);
    assert_eq!(
        (calls[0].method.as_str(), calls[0].path.as_str()),
        ("DELETE", "/api/2.0/mlflow/registry-webhooks/delete")
    );
    assert_eq!(calls[0].query.as_deref(), Some(format!("id={id}").as_str()));
    assert_eq!(calls[0].body, json!({"id": id}));
    assert!(s.fake.hook(&id).is_none());
    s.gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_brings_webhooks_in_line_and_is_idempotent() {
    let s = Setup::start().await;
    // Made by hand with curl: right URL, one event, no marker, an unknown secret.
    let by_hand = s.fake.seed(
        json!({"status": "ACTIVE", "events": ["MODEL_VERSION_CREATED"],
               "description": "made with curl",
               "http_url_spec": {"url": s.hook_url(), "enable_ssl_verification": true}}),
        Some("typed-by-hand"),
    );
    // Another model's webhook to the same URL, and someone else's: left alone.
    let other_model = s.fake.seed(
        json!({"status": "ACTIVE", "events": ["COMMENT_CREATED"], "model_name": "other",
               "http_url_spec": {"url": s.hook_url(), "enable_ssl_verification": true}}),
        None,
    );
    s.fake.seed(
        json!({"status": "ACTIVE", "events": ["MODEL_VERSION_CREATED"],
               "http_url_spec": {"url": "https://hooks.slack.com/services/T0/B0/x"}}),
        None,
    );

    // Dry run: the plan, and nothing but the list call.
    let out = s
        .run(&["sync", "--endpoint", "databricks", "--dry-run"])
        .await
        .ok();
    assert!(
        out.stdout.contains(&format!(
            "update  {by_hand}: events +TRANSITION_REQUEST_TO_PRODUCTION_CREATED; secret; description"
        )),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("dry run"), "{}", out.stdout);
    let calls = s.fake.take_calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(calls[0].method, "GET");

    // Apply: one PATCH with everything that differs.
    let out = s.run(&["sync", "--endpoint", "databricks"]).await.ok();
    assert!(
        out.stdout.contains(&format!("updated {by_hand}")),
        "{}",
        out.stdout
    );
    let calls = s.fake.take_calls();
    assert_authorized(&calls);
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!(
        (calls[1].method.as_str(), calls[1].path.as_str()),
        ("PATCH", "/api/2.0/mlflow/registry-webhooks/update")
    );
    assert_eq!(
        calls[1].body,
        json!({
            "id": by_hand,
            "events": EVENTS,
            "description": description(SECRET),
            "http_url_spec": {
                "url": s.hook_url(),
                "secret": SECRET,
                "authorization": format!("Bearer {BEARER}"),
                "enable_ssl_verification": true
            }
        })
    );
    let stored = s.fake.hook(&by_hand).unwrap();
    assert_eq!(stored.secret.as_deref(), Some(SECRET));
    assert_eq!(
        stored.public["status"], "ACTIVE",
        "sync never changes status"
    );
    assert_eq!(
        s.fake.hook(&other_model).unwrap().public["events"],
        json!(["COMMENT_CREATED"])
    );

    // Again: nothing to do, and only the list call.
    let out = s.run(&["sync", "--endpoint", "databricks"]).await.ok();
    assert!(out.stdout.contains("nothing to change"), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!("keep    {by_hand}")),
        "{}",
        out.stdout
    );
    let calls = s.fake.take_calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");

    // Rotate: the new secret first in the configuration. Only the credentials are sent again.
    const NEW_SECRET: &str = "whsec-rotated-9b1d3f5e7a";
    s.write_config(&[NEW_SECRET, SECRET]);
    let out = s.run(&["sync", "--endpoint", "databricks"]).await.ok();
    assert!(
        out.stdout
            .contains(&format!("update  {by_hand}: secret; description")),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains(NEW_SECRET) && !out.stderr.contains(NEW_SECRET));
    let calls = s.fake.take_calls();
    assert_eq!(
        calls[1].body,
        json!({
            "id": by_hand,
            "description": description(NEW_SECRET),
            "http_url_spec": {
                "url": s.hook_url(),
                "secret": NEW_SECRET,
                "authorization": format!("Bearer {BEARER}"),
                "enable_ssl_verification": true
            }
        })
    );
    let out = s.run(&["sync", "--endpoint", "databricks"]).await.ok();
    assert!(out.stdout.contains("nothing to change"), "{}", out.stdout);
    assert_eq!(s.fake.take_calls().len(), 1);

    // A model-specific webhook that does not exist yet: created, ACTIVE on request.
    let out = s
        .run(&[
            "sync",
            "--endpoint",
            "databricks",
            "--model",
            "fraud-detector",
            "--active",
        ])
        .await
        .ok();
    assert!(
        out.stdout.contains("create  new webhook, ACTIVE"),
        "{}",
        out.stdout
    );
    let calls = s.fake.take_calls();
    assert_eq!(calls[0].query.as_deref(), Some("model_name=fraud-detector"));
    assert_eq!(
        calls[1].body,
        json!({
            "model_name": "fraud-detector",
            "events": EVENTS,
            "description": description(NEW_SECRET),
            "status": "ACTIVE",
            "http_url_spec": {
                "url": s.hook_url(),
                "secret": NEW_SECRET,
                "authorization": format!("Bearer {BEARER}"),
                "enable_ssl_verification": true
            }
        })
    );
    let out = s
        .run(&[
            "sync",
            "--endpoint",
            "databricks",
            "--model",
            "fraud-detector",
        ])
        .await
        .ok();
    assert!(out.stdout.contains("nothing to change"), "{}", out.stdout);
    assert_eq!(s.fake.take_calls().len(), 1);
    s.gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_errors_are_shown_with_a_non_zero_exit() {
    let s = Setup::start().await;

    s.fake.script(
        403,
        json!({"error_code": "PERMISSION_DENIED",
               "message": "User does not have Can Manage permission on the registered model."}),
    );
    let out = s.run(&["create", "--endpoint", "databricks"]).await;
    assert_ne!(out.code, Some(0), "{out:#?}");
    assert!(out.stderr.contains("HTTP 403 Forbidden"), "{out:#?}");
    assert!(out.stderr.contains("PERMISSION_DENIED"), "{out:#?}");
    assert!(
        out.stderr
            .contains("User does not have Can Manage permission on the registered model."),
        "{out:#?}"
    );
    assert!(
        out.stderr
            .contains("GET /api/2.0/mlflow/registry-webhooks/list"),
        "names the call: {out:#?}"
    );

    // An error message that quotes a credential is scrubbed before it is shown.
    s.fake.script(
        400,
        json!({"error_code": "INVALID_PARAMETER_VALUE",
               "message": format!("bad authorization 'Bearer {BEARER}' for secret {SECRET}")}),
    );
    let out = s.run(&["sync", "--endpoint", "databricks"]).await;
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("INVALID_PARAMETER_VALUE"), "{out:#?}");
    assert!(out.stderr.contains("[redacted]"), "{out:#?}");

    // A wrong token: Databricks' own 401.
    let out = s
        .run_env(
            &["list", "--endpoint", "databricks"],
            &[("DATABRICKS_TOKEN", "nope-nope")],
        )
        .await;
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("HTTP 401"), "{out:#?}");
    assert!(out.stderr.contains("UNAUTHENTICATED"), "{out:#?}");

    // No token at all: said before anything is sent.
    s.fake.take_calls();
    let out = s.run_env(&["list", "--endpoint", "databricks"], &[]).await;
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("DATABRICKS_TOKEN"), "{out:#?}");
    assert!(s.fake.take_calls().is_empty());

    // The gateway refuses the test event (the webhook holds a stale secret): non-zero exit.
    let id = s.fake.seed(
        json!({"status": "TEST_MODE", "events": ["MODEL_VERSION_CREATED"],
               "http_url_spec": {"url": s.hook_url()}}),
        Some("stale-secret-value"),
    );
    {
        // The fake keeps the authorization it would send; this webhook has the right one.
        let mut st = s.fake.state.lock().unwrap();
        let h = st.hooks.iter_mut().find(|h| h.public["id"] == id).unwrap();
        h.authorization = Some(format!("Bearer {BEARER}"));
    }
    let out = s.run(&["test", &id, "--endpoint", "databricks"]).await;
    assert_eq!(out.code, Some(1), "{out:#?}");
    assert!(out.stdout.contains("answered HTTP 401"), "{out:#?}");
    assert!(out.stdout.contains("bad_signature"), "{out:#?}");

    // An event Databricks cannot send, asked for explicitly: refused before anything is sent.
    s.fake.take_calls();
    let out = s
        .run(&[
            "create",
            "--endpoint",
            "databricks",
            "--events",
            "MODEL_VERSION_CREATED,model_version_alias.created",
        ])
        .await;
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr
            .contains("Databricks cannot send event 'model_version_alias.created'"),
        "{out:#?}"
    );
    assert!(s.fake.take_calls().is_empty());

    // An unknown endpoint names the configured ones.
    let out = s.run(&["create", "--endpoint", "nope"]).await;
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.contains("databricks, mlflow"), "{out:#?}");
    s.gateway.stop().await;
}

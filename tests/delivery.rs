//! Delivery end to end: the real gateway relays real signed events to fake targets (real HTTP
//! servers on 127.0.0.1) that record what they get and answer from a script.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use base64::Engine as _;
use common::delivery::*;
use common::fake::{Answer, FakeTarget, Recorded};
use common::*;
use serde_json::{Value, json};

const ALIAS_TEXT: &str =
    "Alias 'champion' was set on version 1 of registered model 'gateway-demo-model'.";

fn sorted(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

fn names(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// A single `http` target `name` at `url`, with every event routed to it.
fn http_target(name: &str, url: &str) -> String {
    format!(
        r#"
[targets.{name}]
kind = "http"
url = "{url}"

[[routes]]
name = "all to {name}"
events = ["*"]
to = ["{name}"]
"#
    )
}

// ---------------------------------------------------------------------------------------------
// Each target kind: the exact request.

#[tokio::test]
async fn each_target_kind_sends_the_documented_request() {
    let slack = FakeTarget::start().await;
    let gh = FakeTarget::start().await;
    let gh_wf = FakeTarget::start().await;
    let gitlab = FakeTarget::start().await;
    let jenkins = FakeTarget::start().await;
    let http = FakeTarget::start().await;
    let dbx = FakeTarget::start().await;
    // GitHub and GitLab answer 204 / 201: success too.
    gh.default_answer(Answer::status(204));
    gh_wf.default_answer(Answer::status(204));
    gitlab.default_answer(Answer::status(201).body(r#"{"id": 1}"#));
    jenkins.default_answer(Answer::status(201));
    dbx.default_answer(Answer::status(200).body(r#"{"run_id": 455644833}"#));
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("audit.jsonl");

    let extra = format!(
        r#"
{FAST_RETRY}

[targets.slack]
kind = "slack"
url = "{slack}/services/T000/B000/XXXXXXXXXXXXXXXX"

[targets.gh-dispatch]
kind = "github"
repository = "acme/ml-deploy"
token = "ghp_testtoken"
api_url = "{gh}"

[targets.gh-workflow]
kind = "github"
repository = "acme/ml-deploy"
token = "ghp_testtoken"
api_url = "{gh_wf}/"
workflow = "deploy.yml"
ref = "release"

[targets.gitlab]
kind = "gitlab"
project = "ml-group/deployer"
token = "glptt-testtoken"
ref = "main"
base_url = "{gitlab}"

[targets.jenkins]
kind = "jenkins"
url = "{jenkins}"
job = "ml/deploy"
user = "hookgate"
api_token = "jenkins-api-token"

[targets.http]
kind = "http"
url = "{http}/ingest"

[targets.run-now]
kind = "databricks_job"
workspace_url = "{dbx}"
job_id = 42
token = "dapi-testtoken"

[targets.audit]
kind = "log"
path = "{log}"

[[routes]]
name = "everything"
events = ["*"]
to = ["slack", "gh-dispatch", "gh-workflow", "gitlab", "jenkins", "http", "run-now", "audit"]
"#,
        slack = slack.url(""),
        gh = gh.url(""),
        gh_wf = gh_wf.url(""),
        gitlab = gitlab.url(""),
        jenkins = jenkins.url(""),
        http = http.url(""),
        dbx = dbx.url(""),
        log = log.display(),
    );
    let g = Gateway::start(&extra).await;
    let fakes = [&slack, &gh, &gh_wf, &gitlab, &jenkins, &http, &dbx];
    let all = names(&[
        "slack",
        "gh-dispatch",
        "gh-workflow",
        "gitlab",
        "jenkins",
        "http",
        "run-now",
        "audit",
    ]);

    // One event at a time, so the n-th request of every fake is the n-th event.
    let dbx_vec = vector("databricks", "MODEL_VERSION_TRANSITIONED_STAGE.json");
    let (status, answer) = g.send_vector(&dbx_vec).await;
    assert_eq!(sorted(&answer["targets"]), all, "{answer}");
    let dbx_id = accepted_id((status, answer));
    assert_eq!(dbx_id, sha256_hex(dbx_vec.body.as_bytes()));
    for f in fakes {
        f.wait_for(1, PATIENCE).await;
    }
    let ml_vec = vector("mlflow", "model_version_alias.created.json");
    let ml_id = accepted_id(g.send_vector(&ml_vec).await);
    assert_eq!(ml_id, "51dad7f5-f13b-4419-8cbf-72659e37112f");
    for f in fakes {
        f.wait_for(2, PATIENCE).await;
    }
    for id in [&dbx_id, &ml_id] {
        let e = wait_event(&g, id, PATIENCE, |e| {
            e["deliveries"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d["status"] == "delivered")
        })
        .await;
        assert_eq!(e["deliveries"].as_array().unwrap().len(), all.len());
    }

    let events = [
        (&dbx_vec, dbx_id.as_str(), "databricks"),
        (&ml_vec, ml_id.as_str(), "mlflow"),
    ];
    for (i, &(v, id, endpoint)) in events.iter().enumerate() {
        let is_dbx = endpoint == "databricks";
        let ctx = format!("{} event", endpoint);
        let (event, model, version) = if is_dbx {
            (
                "MODEL_VERSION_TRANSITIONED_STAGE",
                "Airline_Delay_SparkML",
                "8",
            )
        } else {
            ("model_version_alias.created", "gateway-demo-model", "1")
        };
        let text = if is_dbx { DBX_TEXT } else { ALIAS_TEXT };

        // Slack incoming webhook: POST to the webhook URL, JSON {"text": ...}.
        let r = &slack.requests()[i];
        assert_eq!(r.method, "POST", "{ctx}");
        assert_eq!(r.uri, "/services/T000/B000/XXXXXXXXXXXXXXXX", "{ctx}");
        assert_eq!(header(r, "content-type"), "application/json");
        assert_eq!(r.json(), json!({ "text": text }), "{ctx}");

        // GitHub repository_dispatch.
        let r = &gh.requests()[i];
        assert_eq!(r.method, "POST");
        assert_eq!(r.uri, "/repos/acme/ml-deploy/dispatches", "{ctx}");
        assert_eq!(header(r, "authorization"), "Bearer ghp_testtoken");
        assert_eq!(header(r, "accept"), "application/vnd.github+json");
        assert_eq!(header(r, "x-github-api-version"), "2022-11-28");
        assert_eq!(header(r, "content-type"), "application/json");
        assert!(
            header(r, "user-agent").starts_with("hookgate/"),
            "GitHub requires a User-Agent"
        );
        let body = r.json();
        assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
        assert_eq!(body["event_type"], "mlflow-registry");
        let mut payload = json!({
            "event_id": id, "endpoint": endpoint, "event": event, "model": model,
            "version": version, "text": text,
        });
        if is_dbx {
            payload["from_stage"] = json!("None");
            payload["to_stage"] = json!("Production");
        } else {
            payload["alias"] = json!("champion");
        }
        assert_eq!(body["client_payload"], payload, "{ctx}");
        assert!(body["client_payload"].as_object().unwrap().len() <= 10);

        // GitHub workflow_dispatch: ref + string inputs.
        let r = &gh_wf.requests()[i];
        assert_eq!(r.method, "POST");
        assert_eq!(
            r.uri,
            "/repos/acme/ml-deploy/actions/workflows/deploy.yml/dispatches"
        );
        assert_eq!(header(r, "authorization"), "Bearer ghp_testtoken");
        assert_eq!(header(r, "accept"), "application/vnd.github+json");
        assert_eq!(header(r, "x-github-api-version"), "2022-11-28");
        assert_eq!(
            r.json(),
            json!({"ref": "release", "inputs": {
                "event_id": id, "event": event, "model": model, "version": version,
            }}),
            "{ctx}"
        );

        // GitLab pipeline trigger: form token, ref, variables[...].
        let r = &gitlab.requests()[i];
        assert_eq!(r.method, "POST");
        assert_eq!(
            r.uri, "/api/v4/projects/ml-group%2Fdeployer/trigger/pipeline",
            "a project path is one URL-encoded segment"
        );
        assert_eq!(
            header(r, "content-type"),
            "application/x-www-form-urlencoded"
        );
        let mut want = vec![
            ("token", "glptt-testtoken"),
            ("ref", "main"),
            ("variables[HOOKGATE_EVENT]", event),
            ("variables[HOOKGATE_EVENT_ID]", id),
            ("variables[HOOKGATE_MODEL]", model),
            ("variables[HOOKGATE_VERSION]", version),
        ];
        if is_dbx {
            want.push(("variables[HOOKGATE_TO_STAGE]", "Production"));
        } else {
            want.push(("variables[HOOKGATE_ALIAS]", "champion"));
        }
        let want: Vec<(String, String)> = want
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(form(&r.body), want, "{ctx}");

        // Jenkins buildWithParameters, folder job, Basic auth with the user's API token.
        let r = &jenkins.requests()[i];
        assert_eq!(r.method, "POST");
        assert_eq!(r.uri, "/job/ml/job/deploy/buildWithParameters");
        let basic = base64::engine::general_purpose::STANDARD.encode("hookgate:jenkins-api-token");
        assert_eq!(header(r, "authorization"), format!("Basic {basic}"));
        assert_eq!(
            header(r, "content-type"),
            "application/x-www-form-urlencoded"
        );
        let mut want = vec![
            ("EVENT", event),
            ("EVENT_ID", id),
            ("MODEL", model),
            ("VERSION", version),
        ];
        if is_dbx {
            want.extend([("FROM_STAGE", "None"), ("TO_STAGE", "Production")]);
        } else {
            want.push(("ALIAS", "champion"));
        }
        let want: Vec<(String, String)> = want
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(form(&r.body), want, "{ctx}");

        // Generic HTTP: the body byte for byte, the event id as idempotency key.
        let r = &http.requests()[i];
        assert_eq!(r.method, "POST");
        assert_eq!(r.uri, "/ingest");
        assert_eq!(&r.body[..], v.body.as_bytes(), "{ctx}: byte for byte");
        assert_eq!(header(r, "content-type"), "application/json");
        assert_eq!(header(r, "idempotency-key"), id);
        assert_eq!(header(r, "x-hookgate-event-id"), id);
        assert_eq!(header(r, "x-hookgate-event"), event);
        assert_eq!(header(r, "x-hookgate-endpoint"), endpoint);

        // Databricks jobs/run-now with event_message = the event in Databricks' shape, as a JSON
        // string.
        let r = &dbx.requests()[i];
        let body = run_now_body(r, "Bearer dapi-testtoken", "job_parameters");
        assert_eq!(body["job_id"], 42);
        let token = body["idempotency_token"].as_str().unwrap();
        assert!(
            !token.is_empty() && token.len() <= 64,
            "Databricks takes at most 64 chars: {token}"
        );
        assert_eq!(
            body["job_parameters"].as_object().unwrap().len(),
            1,
            "{body}"
        );
        let message = body["job_parameters"]["event_message"]
            .as_str()
            .expect("event_message is a JSON string");
        // What `json.loads(dbutils.widgets.get("event_message"))` gives the notebook.
        let loaded: Value = serde_json::from_str(message).unwrap();
        let posted: Value = serde_json::from_str(&v.body).unwrap();
        if is_dbx {
            assert_eq!(loaded, posted, "{ctx}");
            assert_eq!(
                message, v.body,
                "{ctx}: the raw body, not a re-serialization"
            );
        } else {
            // The fields a notebook written for Databricks reads, and the MLflow body beside.
            assert_eq!(
                loaded,
                json!({
                    "event": event,
                    "event_timestamp": 1_795_617_165_203_i64,
                    "model_name": model,
                    "version": version,
                    "alias": "champion",
                    "text": text,
                    "mlflow": posted,
                }),
                "{ctx}"
            );
        }
    }
    assert_ne!(
        dbx.requests()[0].json()["idempotency_token"],
        dbx.requests()[1].json()["idempotency_token"],
        "two events, two tokens"
    );

    // The log target: one JSON line per delivery.
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    for (line, (v, id, endpoint)) in lines.iter().zip(events) {
        assert_eq!(line["target"], "audit");
        assert_eq!(line["event_id"], id);
        assert_eq!(line["endpoint"], endpoint);
        assert_eq!(
            line["payload"],
            serde_json::from_str::<Value>(&v.body).unwrap()
        );
        assert!(line["ts"].as_str().unwrap().ends_with('Z'), "{line}");
    }
    assert_eq!(lines[0]["event"], "MODEL_VERSION_TRANSITIONED_STAGE");
    assert_eq!(lines[0]["text"], DBX_TEXT);
    assert_eq!(lines[1]["event"], "model_version_alias.created");
    assert_eq!(lines[1]["version"], "1");
    assert_eq!(lines[1]["text"], ALIAS_TEXT);

    // Nothing was sent twice.
    for f in fakes {
        assert_eq!(f.requests().len(), 2);
    }
    g.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Routing.

#[tokio::test]
async fn the_routing_table_decides_who_gets_what_once() {
    let fake = FakeTarget::start().await;
    let mut extra = String::from(FAST_RETRY);
    for t in ["glob", "stage", "alias", "tag", "naming", "shared"] {
        extra.push_str(&format!(
            "\n[targets.{t}]\nkind = \"http\"\nurl = \"{}\"\n",
            fake.url(&format!("/t/{t}"))
        ));
    }
    extra.push_str(
        r#"
[[routes]]
name = "fraud models"
events = ["MODEL_VERSION_CREATED"]
models = ["fraud-*"]
to = ["glob"]

[[routes]]
name = "into production"
to_stage = "production"
to = ["stage"]

[[routes]]
name = "champion"
events = ["model_version_alias.created"]
aliases = ["champion"]
to = ["alias", "shared"]

[[routes]]
name = "approved"
tags = { validation_status = "approved" }
to = ["tag"]

[[routes]]
name = "the other naming"
events = ["model_version.created", "REGISTERED_MODEL_CREATED"]
to = ["naming"]

[[routes]]
name = "demo models from mlflow"
models = ["gateway-demo-*"]
endpoints = ["mlflow"]
to = ["shared"]
"#,
    );
    let g = Gateway::start(&extra).await;

    let dbx = |event: &str, model: &str, more: Value| {
        let mut b = json!({"event": event, "webhook_id": "w1", "event_timestamp": 1589859029343u64,
                           "model_name": model, "version": "3"});
        for (k, v) in more.as_object().unwrap() {
            b[k] = v.clone();
        }
        b.to_string()
    };
    // (what, answer, expected targets)
    let mut cases: Vec<(&str, (u16, Value), Vec<String>)> = Vec::new();
    cases.push((
        "glob match + Databricks name matched by its MLflow counterpart",
        g.post_databricks(&dbx("MODEL_VERSION_CREATED", "fraud-detector", json!({})))
            .await,
        names(&["glob", "naming"]),
    ));
    cases.push((
        "glob miss",
        g.post_databricks(&dbx("MODEL_VERSION_CREATED", "churn-model", json!({})))
            .await,
        names(&["naming"]),
    ));
    cases.push((
        "stage (case-insensitive)",
        g.send_vector(&vector(
            "databricks",
            "MODEL_VERSION_TRANSITIONED_STAGE.json",
        ))
        .await,
        names(&["stage"]),
    ));
    cases.push((
        "stage miss: unrouted",
        g.post_databricks(&dbx(
            "MODEL_VERSION_TRANSITIONED_STAGE",
            "fraud-detector",
            json!({"from_stage": "None", "to_stage": "Staging"}),
        ))
        .await,
        vec![],
    ));
    cases.push((
        "nothing matches: unrouted",
        g.send_vector(&vector("databricks", "COMMENT_CREATED.json"))
            .await,
        vec![],
    ));
    cases.push((
        "tag value on a Databricks event",
        g.post_databricks(&dbx(
            "MODEL_VERSION_TAG_SET",
            "churn-model",
            json!({"tags": [{"key": "validation_status", "value": "approved"}]}),
        ))
        .await,
        names(&["tag"]),
    ));
    cases.push((
        "alias champion: two routes name `shared`",
        g.send_vector(&vector("mlflow", "model_version_alias.created.json"))
            .await,
        names(&["alias", "shared"]),
    ));
    cases.push((
        "alias challenger: only the model glob",
        post_mlflow(
            &g,
            "0b5e3f6e-1d2c-4c8e-9f00-000000000001",
            r#"{"entity": "model_version_alias", "action": "created", "timestamp": "2026-11-25T14:32:45.203614+00:00", "data": {"name": "gateway-demo-model", "alias": "challenger", "version": "2"}}"#,
        )
        .await,
        names(&["shared"]),
    ));
    cases.push((
        "tag value on an MLflow event",
        g.send_vector(&vector("mlflow", "model_version_tag.set.json"))
            .await,
        names(&["tag", "shared"]),
    ));
    cases.push((
        "MLflow name matched by its Databricks counterpart",
        g.send_vector(&vector("mlflow", "registered_model.created.json"))
            .await,
        names(&["naming", "shared"]),
    ));

    let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut unrouted = Vec::new();
    let mut total = 0;
    let mut ids = Vec::new();
    for (what, (status, answer), want) in cases {
        assert_eq!(status, 200, "{what}: {answer}");
        assert_eq!(answer["status"], "accepted", "{what}: {answer}");
        assert_eq!(sorted(&answer["targets"]), want, "{what}: {answer}");
        let id = answer["event_id"].as_str().unwrap().to_string();
        if want.is_empty() {
            unrouted.push(id.clone());
        }
        for t in &want {
            expected.entry(t.clone()).or_default().insert(id.clone());
        }
        total += want.len();
        ids.push((what, id, want));
    }
    assert_eq!(total, 12);
    let got = fake.wait_for(total, PATIENCE).await;

    // Every event's deliveries in the store are exactly its targets, one row each, delivered.
    for (what, id, want) in &ids {
        let e = wait_event(&g, id, PATIENCE, |e| {
            e["deliveries"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d["status"] == "delivered")
        })
        .await;
        let mut targets: Vec<String> = e["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["target"].as_str().unwrap().to_string())
            .collect();
        targets.sort();
        assert_eq!(&targets, want, "{what}: one delivery per target");
    }
    // ... and that is what the targets received, once each.
    assert_eq!(got.len(), total);
    assert_eq!(fake.requests().len(), total, "no target got an event twice");
    let mut received: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in fake.requests() {
        let t = r.uri.strip_prefix("/t/").unwrap().to_string();
        let id = r.header("X-Hookgate-Event-Id").unwrap().to_string();
        assert!(
            received.entry(t.clone()).or_default().insert(id.clone()),
            "{t} got {id} twice"
        );
    }
    assert_eq!(received, expected);

    // Unrouted: accepted, stored, counted, delivered nowhere.
    assert_eq!(unrouted.len(), 2);
    for id in &unrouted {
        let (s, e) = g.admin_get(&format!("/admin/events/{id}")).await;
        assert_eq!(s, 200, "an unrouted event is stored");
        assert_eq!(e["deliveries"], json!([]), "{e}");
        assert!(requests_for(&fake, id).is_empty());
    }
    let m = g.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"hookgate_unrouted_events_total{endpoint="databricks"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(&m, r#"hookgate_unrouted_events_total{endpoint="mlflow"}"#),
        None
    );
    g.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Failure scripts.

#[tokio::test]
async fn a_500_then_a_200_is_delivered_on_the_second_attempt() {
    let fake = FakeTarget::start().await;
    fake.script([
        Answer::status(500).body("upstream exploded"),
        Answer::status(200),
    ]);
    let g = Gateway::start(&format!(
        "{FAST_RETRY}{}",
        http_target("t", &fake.url("/x"))
    ))
    .await;
    let id = accepted_id(
        g.send_vector(&vector("databricks", "MODEL_VERSION_CREATED.json"))
            .await,
    );
    let e = wait_delivery(&g, &id, "t", "delivered", 2).await;
    let reqs = fake.wait_for(2, PATIENCE).await;
    let a = attempts(&e, "t");
    assert_eq!(a.len(), 2, "{e:#}");
    assert_eq!(a[0]["attempt"], 1);
    assert_eq!(a[0]["result"], "retry");
    assert_eq!(a[0]["status_code"], 500);
    assert_eq!(a[0]["reason"], "http 500: upstream exploded");
    assert_eq!(a[1]["attempt"], 2);
    assert_eq!(a[1]["result"], "delivered");
    assert_eq!(a[1]["status_code"], 200);
    assert_eq!(a[1]["reason"], Value::Null);
    let d = delivery(&e, "t");
    assert_eq!(d["attempts"], 2);
    assert_eq!(d["last_error"], Value::Null, "cleared once delivered");
    // A retry is the same request: same idempotency key, same bytes.
    assert_eq!(reqs[0].header("Idempotency-Key"), Some(id.as_str()));
    assert_eq!(reqs[1].header("Idempotency-Key"), Some(id.as_str()));
    assert_eq!(reqs[0].body, reqs[1].body);
    assert_eq!(fake.requests().len(), 2);
    g.stop().await;
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let fake = FakeTarget::start().await;
    fake.script([
        Answer::status(429)
            .header("Retry-After", "2")
            .body("rate_limited"),
        Answer::status(200),
    ]);
    // max_delay is far below Retry-After: the server's wish wins.
    let g = Gateway::start(&format!(
        "{FAST_RETRY}{}",
        http_target("t", &fake.url("/x"))
    ))
    .await;
    let id = accepted_id(
        g.send_vector(&vector("databricks", "COMMENT_CREATED.json"))
            .await,
    );
    // Polling the admin API meanwhile also keeps its pooled connection from idling out.
    let e = wait_delivery(&g, &id, "t", "delivered", 2).await;
    let reqs = fake.wait_for(2, PATIENCE).await;
    let gap = reqs[1].at.duration_since(reqs[0].at);
    assert!(
        gap >= Duration::from_secs(2),
        "retried {gap:?} after a 429 with Retry-After: 2"
    );
    assert!(
        gap < Duration::from_millis(3500),
        "but not much later either: {gap:?}"
    );
    let a = attempts(&e, "t");
    assert_eq!(a[0]["status_code"], 429);
    assert_eq!(a[0]["reason"], "http 429: rate_limited");
    g.stop().await;
}

#[tokio::test]
async fn a_400_is_dead_at_once_and_keeps_its_reason() {
    let fake = FakeTarget::start().await;
    fake.default_answer(Answer::status(400).body("invalid_payload"));
    let extra = format!(
        r#"{FAST_RETRY}
[targets.ml-slack]
kind = "slack"
url = "{}"

[[routes]]
to = ["ml-slack"]
"#,
        fake.url("/services/T0/B0/secretpath")
    );
    let g = Gateway::start(&extra).await;
    let id = accepted_id(
        g.send_vector(&vector("databricks", "MODEL_VERSION_CREATED.json"))
            .await,
    );
    let e = wait_delivery(&g, &id, "ml-slack", "dead", 1).await;
    let a = attempts(&e, "ml-slack");
    assert_eq!(a.len(), 1, "a 400 is not retried: {e:#}");
    assert_eq!(a[0]["result"], "dead");
    assert_eq!(a[0]["status_code"], 400);
    assert_eq!(a[0]["reason"], "http 400: invalid_payload");
    assert_eq!(fake.requests().len(), 1);

    // The admin API lists it with its reason.
    let (s, list) = g.admin_get("/admin/deliveries?status=dead").await;
    assert_eq!(s, 200);
    let rows = list["deliveries"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{list:#}");
    assert_eq!(rows[0]["event_id"], id.as_str());
    assert_eq!(rows[0]["target"], "ml-slack");
    assert_eq!(rows[0]["status"], "dead");
    assert_eq!(rows[0]["attempts"], 1);
    assert_eq!(rows[0]["last_error"], "http 400: invalid_payload");
    let (_, none) = g.admin_get("/admin/deliveries?status=pending").await;
    assert_eq!(none["deliveries"], json!([]));

    // So does the CLI, reading the same store while the gateway runs.
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &base_config(&g.db, &extra));
    let stdout = deliveries_cli(&cfg, &["list", "--status", "dead", "--json"]).await;
    let listed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(listed, list["deliveries"], "the CLI and the API agree");
    assert!(
        !stdout.contains("secretpath"),
        "the webhook URL is a secret"
    );
    // The plain table shows the reason too.
    let stdout = deliveries_cli(&cfg, &["list"]).await;
    assert!(
        stdout.contains("dead") && stdout.contains("http 400: invalid_payload"),
        "{}",
        stdout
    );
    g.stop().await;
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_retried() {
    let slow = FakeTarget::start().await;
    slow.script([Answer::status(200).delay(Duration::from_secs(2))]);
    let refused = format!("http://127.0.0.1:{}/x", closed_port());
    let extra = format!(
        r#"{FAST_RETRY}
[targets.slow]
kind = "http"
url = "{slow}"
timeout = "300ms"

[targets.refused]
kind = "http"
url = "{refused}"

[targets.refused.retry]
max_attempts = 3

[[routes]]
to = ["slow", "refused"]
"#,
        slow = slow.url("/slow"),
    );
    let g = Gateway::start(&extra).await;
    let id = accepted_id(
        g.send_vector(&vector("databricks", "MODEL_VERSION_CREATED.json"))
            .await,
    );

    let e = wait_delivery(&g, &id, "slow", "delivered", 2).await;
    let a = attempts(&e, "slow");
    assert_eq!(a.len(), 2, "{e:#}");
    assert_eq!(a[0]["result"], "retry");
    assert_eq!(a[0]["reason"], "timeout");
    assert_eq!(a[0]["status_code"], Value::Null);
    let took = a[0]["duration_ms"].as_i64().unwrap();
    assert!(
        (300..1500).contains(&took),
        "the attempt was cut at the target's timeout: {took} ms"
    );
    assert_eq!(a[1]["result"], "delivered");
    assert_eq!(slow.requests().len(), 2);

    let e = wait_delivery(&g, &id, "refused", "dead", 3).await;
    let a = attempts(&e, "refused");
    assert_eq!(a.len(), 3, "max_attempts = 3: {e:#}");
    for (i, at) in a.iter().enumerate() {
        let reason = at["reason"].as_str().unwrap();
        if i < 2 {
            assert_eq!(at["result"], "retry");
            assert!(reason.starts_with("connect error"), "{reason}");
        } else {
            assert_eq!(at["result"], "dead");
            assert!(
                reason.starts_with("gave up after 3 attempts: connect error"),
                "{reason}"
            );
        }
        assert!(
            !reason.contains("127.0.0.1"),
            "no URL in a reason: {reason}"
        );
    }
    g.stop().await;
}

#[tokio::test]
async fn a_target_down_too_long_goes_dead_and_replays_deliver() {
    let fake = FakeTarget::start().await;
    fake.default_answer(Answer::status(503).body("maintenance"));
    let other = FakeTarget::start().await;
    let extra = format!(
        r#"{FAST_RETRY}
[targets.t]
kind = "http"
url = "{t}"

[targets.t.retry]
max_attempts = 3

[targets.other]
kind = "http"
url = "{o}"

[[routes]]
to = ["t", "other"]
"#,
        t = fake.url("/t"),
        o = other.url("/o"),
    );
    let g = Gateway::start(&extra).await;

    // Down for longer than max_attempts: dead after exactly 3 attempts.
    let a_id = accepted_id(
        g.send_vector(&vector("databricks", "MODEL_VERSION_CREATED.json"))
            .await,
    );
    let e = wait_delivery(&g, &a_id, "t", "dead", 3).await;
    assert_eq!(attempts(&e, "t").len(), 3);
    assert_eq!(
        delivery(&e, "t")["last_error"],
        "gave up after 3 attempts: http 503: maintenance"
    );
    assert_eq!(requests_for(&fake, &a_id).len(), 3);
    let (_, dead) = g.admin_get("/admin/deliveries?status=dead&target=t").await;
    assert_eq!(dead["deliveries"].as_array().unwrap().len(), 1, "{dead}");

    // A replay for another target touches nothing.
    let (s, r) = g
        .admin_post("/admin/deliveries/replay?status=dead&target=other")
        .await;
    assert_eq!((s, &r["replayed"]), (200, &json!(0)));

    // Back up; replayed through the admin API: delivered.
    fake.default_answer(Answer::status(200));
    let (s, r) = g
        .admin_post("/admin/deliveries/replay?status=dead&target=t")
        .await;
    assert_eq!((s, &r["replayed"]), (200, &json!(1)), "{r}");
    let e = wait_delivery(&g, &a_id, "t", "delivered", 4).await;
    assert_eq!(
        delivery(&e, "t")["attempts"],
        1,
        "a replay starts a new cycle"
    );
    let sent = requests_for(&fake, &a_id);
    assert_eq!(sent.len(), 4);
    let keys: Vec<_> = sent.iter().map(|r| r.header("Idempotency-Key")).collect();
    assert_eq!(
        keys[..3],
        [Some(a_id.as_str()); 3],
        "retries share the event id as key"
    );
    let replayed = keys[3].unwrap();
    assert!(
        replayed.starts_with(&format!("{a_id}:replay-")),
        "a replay is a new request to the receiver, not a retry: {replayed}"
    );

    // Down again for a second event; replayed with the CLI while the gateway runs.
    fake.default_answer(Answer::status(503));
    let b_id = accepted_id(
        g.send_vector(&vector("databricks", "COMMENT_CREATED.json"))
            .await,
    );
    wait_delivery(&g, &b_id, "t", "dead", 3).await;
    fake.default_answer(Answer::status(200));
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &base_config(&g.db, &extra));
    let stdout = deliveries_cli(&cfg, &["replay", "--dead"]).await;
    assert_eq!(stdout.trim(), "replayed 1 deliveries");
    wait_delivery(&g, &b_id, "t", "delivered", 4).await;
    assert_eq!(requests_for(&fake, &b_id).len(), 4);
    // The event delivered before was not sent again, and `other` got each event once.
    assert_eq!(requests_for(&fake, &a_id).len(), 4);
    assert_eq!(requests_for(&other, &a_id).len(), 1);
    assert_eq!(requests_for(&other, &b_id).len(), 1);
    let (_, dead) = g.admin_get("/admin/deliveries?status=dead").await;
    assert_eq!(dead["deliveries"], json!([]));
    g.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Restart.

#[tokio::test]
async fn a_restart_while_a_retry_waits_delivers_exactly_once() {
    let fake = FakeTarget::start().await;
    fake.script([Answer::status(503)]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hookgate.db");
    let extra = format!(
        r#"
[retry]
initial = "1s"
max_delay = "2s"
{}"#,
        http_target("t", &fake.url("/x"))
    );
    let toml = base_config(&db, &extra);

    let g = Gateway::start_with(&toml, db.clone()).await;
    let id = accepted_id(
        g.send_vector(&vector("databricks", "MODEL_VERSION_CREATED.json"))
            .await,
    );
    fake.wait_for(1, PATIENCE).await;
    // The failed attempt is recorded (committed) and the retry scheduled: then stop.
    let e = wait_delivery(&g, &id, "t", "pending", 1).await;
    assert_eq!(attempts(&e, "t")[0]["status_code"], 503);
    g.stop().await;
    assert_eq!(fake.requests().len(), 1, "nothing sent while stopping");

    let g = Gateway::start_with(&toml, db).await;
    let e = wait_delivery(&g, &id, "t", "delivered", 2).await;
    let reqs = fake.wait_for(2, PATIENCE).await;
    let a = attempts(&e, "t");
    assert_eq!(a.len(), 2, "{e:#}");
    assert_eq!(a[1]["attempt"], 2, "the attempt count survived the restart");
    // The retry schedule survived too: not before the backoff's lower bound (initial / 2).
    let gap = reqs[1].at.duration_since(reqs[0].at);
    assert!(gap >= Duration::from_millis(500), "retried after {gap:?}");
    assert_eq!(fake.requests().len(), 2, "exactly once after the restart");
    assert_eq!(reqs[1].header("Idempotency-Key"), Some(id.as_str()));
    g.stop().await;
}

/// Wait until the admin API no longer knows the event (the prune at start-up runs beside it).
async fn wait_pruned(g: &Gateway, event_id: &str) {
    let path = format!("/admin/events/{event_id}");
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let (status, _) = g.admin_get(&path).await;
        if status == 404 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path} was not pruned"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The prune at start-up, with `store.retention` and `store.dead_retention` from the
/// environment: past retention only the delivered event goes; past dead_retention the dead
/// letter goes too; the pending delivery keeps its event throughout.
#[tokio::test]
async fn the_prune_keeps_dead_letters_for_dead_retention_and_pending_events_for_ever() {
    let fake = FakeTarget::start().await;
    fake.script([Answer::status(200), Answer::status(400).body("no such job")]);
    fake.default_answer(Answer::status(503));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hookgate.db");
    let toml = base_config(
        &db,
        &format!(
            "[retry]\ninitial = \"1h\"\nmax_delay = \"1h\"\n{}",
            http_target("t", &fake.url("/t"))
        ),
    );
    let start = |dead_retention: &str| {
        let env = [
            ("HOOKGATE_STORE__RETENTION", "1s"),
            ("HOOKGATE_STORE__DEAD_RETENTION", dead_retention),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
        Gateway::start_env(&toml, db.clone(), env)
    };
    let body = |n: u32| {
        format!(r#"{{"event":"MODEL_VERSION_CREATED","model_name":"prune","version":"{n}"}}"#)
    };
    // Sent one after another, so each gets its scripted answer: 200, 400 (dead at once), 503.
    let g = start("1h").await;
    let delivered = accepted_id(g.post_databricks(&body(1)).await);
    wait_delivery(&g, &delivered, "t", "delivered", 1).await;
    let dead = accepted_id(g.post_databricks(&body(2)).await);
    wait_delivery(&g, &dead, "t", "dead", 1).await;
    let pending = accepted_id(g.post_databricks(&body(3)).await);
    wait_delivery(&g, &pending, "t", "pending", 1).await;
    g.stop().await;
    // Everything is now older than retention.
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    let g = start("1h").await;
    wait_pruned(&g, &delivered).await;
    // One statement pruned what it could: the others are there to stay.
    assert_eq!(delivery_status(&g, &dead, "t").await, "dead");
    assert_eq!(delivery_status(&g, &pending, "t").await, "pending");
    assert_eq!(count_rows(&db, "events").await, 2);
    g.stop().await;

    let g = start("1s").await;
    wait_pruned(&g, &dead).await;
    assert_eq!(delivery_status(&g, &pending, "t").await, "pending");
    assert_eq!(count_rows(&db, "events").await, 1);
    assert_eq!(fake.requests().len(), 3, "nothing was sent again");
    g.stop().await;
}

#[tokio::test]
async fn a_restart_without_a_target_dead_letters_its_pending_delivery_until_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hookgate.db");
    common::removed_target::a_restart_without_a_target_dead_letters_its_pending_delivery(
        &|extra| base_config(&db, extra),
        db.clone(),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Databricks run-now event_message for MLflow events.

#[tokio::test]
async fn run_now_gives_a_notebook_the_databricks_fields_of_an_mlflow_event() {
    let dbx = FakeTarget::start().await;
    dbx.default_answer(Answer::status(200).body(r#"{"run_id": 7}"#));
    let extra = format!(
        r#"{FAST_RETRY}
[targets.deploy-job]
kind = "databricks_job"
workspace_url = "{dbx}"
job_id = 42
token = "dapi-testtoken"
parameters = "notebook_params"

[[routes]]
events = ["MODEL_VERSION_CREATED", "prompt_version.created"]
to = ["deploy-job"]
"#,
        dbx = dbx.url(""),
    );
    let g = Gateway::start(&extra).await;
    let created = vector("mlflow", "model_version.created.json");
    let id = accepted_id(g.send_vector(&created).await);
    wait_delivery(&g, &id, "deploy-job", "delivered", 1).await;
    let prompt = vector("mlflow", "prompt_version.created.json");
    let prompt_id = accepted_id(g.send_vector(&prompt).await);
    wait_delivery(&g, &prompt_id, "deploy-job", "delivered", 1).await;

    let got = dbx.wait_for(2, PATIENCE).await;
    let loaded = |r: &Recorded| -> Value {
        assert_eq!(r.uri, "/api/2.1/jobs/run-now");
        let body = r.json();
        assert_eq!(body["job_id"], 42);
        let message = body["notebook_params"]["event_message"]
            .as_str()
            .unwrap_or_else(|| panic!("event_message is a JSON string: {body}"));
        serde_json::from_str(message).unwrap()
    };

    // Routed by its Databricks name, and named that way for the notebook.
    let m = loaded(&got[0]);
    assert_eq!(m["event"], "MODEL_VERSION_CREATED", "{m}");
    assert_eq!(m["model_name"], "gateway-demo-model", "{m}");
    assert_eq!(m["version"], "1", "a string, as Databricks sends it: {m}");
    assert_eq!(m["event_timestamp"], 1_795_617_164_878_i64, "{m}");
    assert_eq!(m["tags"], json!([{"key": "framework", "value": "sklearn"}]));
    assert_eq!(
        m["text"],
        "A new version 1 of registered model 'gateway-demo-model' was created."
    );
    assert_eq!(
        m["mlflow"],
        serde_json::from_str::<Value>(&created.body).unwrap()
    );

    // A prompt is not presented as a model; its own fields stay in `mlflow`.
    let p = loaded(&got[1]);
    assert_eq!(p["event"], "prompt_version.created", "{p}");
    assert_eq!(p["prompt_name"], "gateway-demo-prompt", "{p}");
    assert_eq!(p["prompt_version"], "1", "{p}");
    assert!(
        p.get("model_name").is_none() && p.get("version").is_none(),
        "{p}"
    );
    assert_eq!(
        p["mlflow"]["data"]["template"],
        "Summarize the following text in {{ num_sentences }} sentences: {{ text }}"
    );
    assert_eq!(dbx.requests().len(), 2);
    g.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Databricks run-now idempotency.

#[tokio::test]
async fn run_now_retried_after_a_503_keeps_its_idempotency_token() {
    let a = FakeTarget::start().await;
    a.script([
        Answer::status(503).body(r#"{"error_code": "TEMPORARILY_UNAVAILABLE"}"#),
        Answer::status(200).body(r#"{"run_id": 1}"#),
    ]);
    let b = FakeTarget::start().await;
    let extra = format!(
        r#"{FAST_RETRY}
[targets.deploy-a]
kind = "databricks_job"
workspace_url = "{a}"
job_id = 42
token = "dapi-a"

[targets.deploy-b]
kind = "databricks_job"
workspace_url = "{b}"
job_id = 42
token = "dapi-b"

[[routes]]
events = ["model_version_alias.created"]
to = ["deploy-a", "deploy-b"]
"#,
        a = a.url(""),
        b = b.url(""),
    );
    let g = Gateway::start(&extra).await;
    let id = accepted_id(
        g.send_vector(&vector("mlflow", "model_version_alias.created.json"))
            .await,
    );
    wait_delivery(&g, &id, "deploy-a", "delivered", 2).await;
    wait_delivery(&g, &id, "deploy-b", "delivered", 1).await;
    let ra = a.wait_for(2, PATIENCE).await;
    let rb = b.wait_for(1, PATIENCE).await;
    let (a0, a1, b0) = (ra[0].json(), ra[1].json(), rb[0].json());
    let token = a0["idempotency_token"].as_str().unwrap();
    assert!(!token.is_empty() && token.len() <= 64, "{token}");
    assert_eq!(
        a1["idempotency_token"], a0["idempotency_token"],
        "a retry never starts a second run"
    );
    assert_eq!(a1, a0, "the retry is the same request");
    assert_ne!(
        b0["idempotency_token"], a0["idempotency_token"],
        "two jobs started for one event are two runs"
    );
    assert_eq!(
        b0["job_parameters"], a0["job_parameters"],
        "the same event_message"
    );
    assert_eq!(ra[0].header("authorization"), Some("Bearer dapi-a"));
    assert_eq!(rb[0].header("authorization"), Some("Bearer dapi-b"));
    assert_eq!(a.requests().len(), 2);
    assert_eq!(b.requests().len(), 1);

    // The delivered run replayed by the operator: a new run (a known token would start nothing),
    // whose own retry keeps the new token.
    a.script([
        Answer::status(503).body(r#"{"error_code": "TEMPORARILY_UNAVAILABLE"}"#),
        Answer::status(200).body(r#"{"run_id": 2}"#),
    ]);
    let e = wait_delivery(&g, &id, "deploy-a", "delivered", 2).await;
    let delivery_id = delivery(&e, "deploy-a")["id"].as_i64().unwrap();
    let (s, r) = g
        .admin_post(&format!("/admin/deliveries/{delivery_id}/replay"))
        .await;
    assert_eq!((s, &r["replayed"]), (200, &json!(1)), "{r}");
    let ra = a.wait_for(4, PATIENCE).await;
    let (a2, a3) = (ra[2].json(), ra[3].json());
    assert_ne!(a2["idempotency_token"], a0["idempotency_token"]);
    assert_eq!(a3["idempotency_token"], a2["idempotency_token"]);
    assert_eq!(a2["job_parameters"], a0["job_parameters"]);
    wait_delivery(&g, &id, "deploy-a", "delivered", 4).await;
    assert_eq!(b.requests().len(), 1, "the other job is not replayed");
    g.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Metrics.

#[tokio::test]
async fn delivery_metrics_count_what_happened() {
    let flaky = FakeTarget::start().await;
    flaky.script([Answer::status(503), Answer::status(200)]);
    let broken = FakeTarget::start().await;
    broken.default_answer(Answer::status(400).body("bad request"));
    let ok = FakeTarget::start().await;
    let extra = format!(
        r#"{FAST_RETRY}
[targets.flaky]
kind = "http"
url = "{}"

[targets.broken]
kind = "http"
url = "{}"

[targets.ok]
kind = "http"
url = "{}"

[[routes]]
to = ["flaky", "broken", "ok"]
"#,
        flaky.url("/f"),
        broken.url("/b"),
        ok.url("/o"),
    );
    let g = Gateway::start(&extra).await;
    let id = accepted_id(
        g.send_vector(&vector("databricks", "MODEL_VERSION_CREATED.json"))
            .await,
    );
    wait_delivery(&g, &id, "flaky", "delivered", 2).await;
    wait_delivery(&g, &id, "broken", "dead", 1).await;
    wait_delivery(&g, &id, "ok", "delivered", 1).await;

    let m = g.metrics().await;
    let get = |series: &str| metric(&m, series);
    let deliveries = |outcome: &str, target: &str| {
        get(&format!(
            r#"hookgate_deliveries_total{{outcome="{outcome}",target="{target}"}}"#
        ))
    };
    let attempts_of = |result: &str, target: &str| {
        get(&format!(
            r#"hookgate_delivery_attempts_total{{result="{result}",target="{target}"}}"#
        ))
    };
    assert_eq!(deliveries("delivered", "flaky"), Some(1.0), "{m}");
    assert_eq!(deliveries("retried", "flaky"), Some(1.0));
    assert_eq!(deliveries("dead", "flaky"), None);
    assert_eq!(deliveries("dead", "broken"), Some(1.0));
    assert_eq!(deliveries("delivered", "broken"), None);
    assert_eq!(deliveries("retried", "broken"), None);
    assert_eq!(deliveries("delivered", "ok"), Some(1.0));
    assert_eq!(deliveries("retried", "ok"), None);
    assert_eq!(attempts_of("retry", "flaky"), Some(1.0));
    assert_eq!(attempts_of("delivered", "flaky"), Some(1.0));
    assert_eq!(attempts_of("give_up", "broken"), Some(1.0));
    assert_eq!(attempts_of("delivered", "ok"), Some(1.0));
    assert_eq!(
        get(r#"hookgate_delivery_duration_seconds_count{target="flaky"}"#),
        Some(2.0)
    );
    assert_eq!(get(r#"hookgate_dead_letters{target="broken"}"#), Some(1.0));
    assert_eq!(get(r#"hookgate_dead_letters{target="flaky"}"#), Some(0.0));
    assert_eq!(get(r#"hookgate_outbox_pending{target="ok"}"#), Some(0.0));
    for (t, n) in [("flaky", Some(1.0)), ("ok", Some(1.0)), ("broken", None)] {
        assert_eq!(
            get(&format!(
                r#"hookgate_event_to_delivery_seconds_count{{target="{t}"}}"#
            )),
            n,
            "{t}"
        );
    }

    // Fixed and replayed: the dead-letter gauge is read from the store at scrape time.
    broken.default_answer(Answer::status(200));
    let (s, r) = g
        .admin_post("/admin/deliveries/replay?status=dead&target=broken")
        .await;
    assert_eq!((s, &r["replayed"]), (200, &json!(1)));
    wait_delivery(&g, &id, "broken", "delivered", 2).await;
    let m = g.metrics().await;
    assert_eq!(
        metric(&m, r#"hookgate_dead_letters{target="broken"}"#),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            r#"hookgate_deliveries_total{outcome="delivered",target="broken"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            r#"hookgate_event_to_delivery_seconds_count{target="broken"}"#
        ),
        Some(1.0)
    );
    g.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Admin API.

#[tokio::test]
async fn the_admin_api_needs_its_token_and_is_off_without_one() {
    let fake = FakeTarget::start().await;
    fake.default_answer(Answer::status(400));
    let g = Gateway::start(&format!(
        "{FAST_RETRY}{}",
        http_target("t", &fake.url("/x"))
    ))
    .await;
    let id = accepted_id(
        g.send_vector(&vector("databricks", "MODEL_VERSION_CREATED.json"))
            .await,
    );
    wait_delivery(&g, &id, "t", "dead", 1).await;
    let c = client();
    let paths = [
        ("GET", "/admin/deliveries".to_string()),
        ("GET", format!("/admin/events/{id}")),
        ("POST", "/admin/deliveries/replay?status=dead".to_string()),
        ("POST", "/admin/deliveries/1/replay".to_string()),
    ];
    for (method, path) in &paths {
        for auth in [
            None,
            Some("Bearer wrong-token"),
            Some("admin-token"),
            Some("Basic YWRtaW4tdG9rZW4="),
        ] {
            let mut req = c.request(method.parse().unwrap(), g.admin_url(path));
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 401, "{method} {path} with {auth:?}");
            assert_eq!(r.headers()["www-authenticate"], "Bearer");
        }
    }
    // Nothing was replayed by the refused calls.
    assert_eq!(delivery_status(&g, &id, "t").await, "dead");
    assert_eq!(fake.requests().len(), 1);
    // With the token: 200.
    let (s, list) = g.admin_get("/admin/deliveries").await;
    assert_eq!(s, 200);
    assert_eq!(list["deliveries"].as_array().unwrap().len(), 1);
    // /metrics and the probes need no token.
    let r = c.get(g.admin_url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    g.stop().await;

    // An empty token, or no [admin] table at all: the admin API is off (404), even for a
    // caller presenting the old token; metrics stay up.
    let with_token = "[admin]\ntoken = \"admin-token\"\n";
    for replacement in ["[admin]\ntoken = \"\"\n", ""] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("hookgate.db");
        let toml = base_config(&db, "");
        assert!(toml.contains(with_token));
        let toml = toml.replace(with_token, replacement);
        let g = Gateway::start_with(&toml, db).await;
        for (method, path) in &paths {
            for auth in [None, Some("Bearer admin-token")] {
                let mut req = c.request(method.parse().unwrap(), g.admin_url(path));
                if let Some(a) = auth {
                    req = req.header("Authorization", a);
                }
                let r = req.send().await.unwrap();
                assert_eq!(
                    r.status(),
                    404,
                    "{method} {path} with {auth:?}, config {replacement:?}"
                );
            }
        }
        let r = c.get(g.admin_url("/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        g.stop().await;
    }
}

/// Percent-encoded path segments are decoded once the path is split: `%2F` stays inside its
/// segment, and a segment that is not UTF-8 once decoded is a 400.
#[tokio::test]
async fn the_admin_api_decodes_path_segments() {
    let fake = FakeTarget::start().await;
    fake.default_answer(Answer::status(400));
    let g = Gateway::start(&format!(
        "{FAST_RETRY}{}",
        http_target("t", &fake.url("/x"))
    ))
    .await;
    let body = r#"{"entity": "model_version_alias", "action": "created", "timestamp": "2026-11-25T14:32:45.203614+00:00", "data": {"name": "gateway-demo-model", "alias": "challenger", "version": "2"}}"#;
    let spaced = accepted_id(post_mlflow(&g, "a b", body).await);
    let (s, e) = g
        .admin_get(&format!("/admin/events/{}", spaced.replace(' ', "%20")))
        .await;
    assert_eq!(s, 200, "{e}");
    assert_eq!(e["event"]["event_id"], spaced.as_str(), "{e}");

    let id = accepted_id(
        g.send_vector(&vector("databricks", "MODEL_VERSION_CREATED.json"))
            .await,
    );
    let encoded: String = id.bytes().map(|b| format!("%{b:02x}")).collect();
    let (s, e) = g.admin_get(&format!("/admin/events/{encoded}")).await;
    assert_eq!(s, 200, "{e}");
    assert_eq!(e["event"]["event_id"], id.as_str(), "{e}");

    // `x%2Fy` is the one segment `x/y`: an event id, not a longer path.
    let (s, e) = g.admin_get("/admin/events/x%2Fy").await;
    assert_eq!((s, &e["error"]), (404, &json!("no such event")), "{e}");
    let (s, e) = g.admin_get("/admin/events/%FF").await;
    assert_eq!(s, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("UTF-8"), "{e}");

    let e = wait_delivery(&g, &id, "t", "dead", 1).await;
    let delivery_id = delivery(&e, "t")["id"].as_i64().unwrap();
    let encoded: String = delivery_id
        .to_string()
        .bytes()
        .map(|b| format!("%{b:02X}"))
        .collect();
    let (s, r) = g
        .admin_post(&format!("/admin/deliveries/{encoded}/replay"))
        .await;
    assert_eq!((s, &r["replayed"]), (200, &json!(1)), "{r}");
    g.stop().await;
}

/// A method a route does not take is a 405 naming the ones it does; the probes and `/metrics`
/// answer `HEAD` as `GET` without the body, over HTTP/1.1 and HTTP/2.
#[tokio::test]
async fn admin_routes_name_their_methods_and_the_probes_answer_head() {
    let g = Gateway::start("").await;
    let c = client();
    for (method, path, allow) in [
        ("DELETE", "/admin/deliveries", "GET"),
        ("POST", "/admin/deliveries", "GET"),
        ("POST", "/admin/events/x", "GET"),
        ("GET", "/admin/deliveries/replay", "POST"),
        ("PUT", "/admin/deliveries/1/replay", "POST"),
        ("POST", "/healthz", "GET, HEAD"),
        ("PUT", "/readyz", "GET, HEAD"),
        ("DELETE", "/metrics", "GET, HEAD"),
    ] {
        let r = c
            .request(method.parse().unwrap(), g.admin_url(path))
            .bearer_auth("admin-token")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{method} {path}");
        assert_eq!(r.headers()["allow"], allow, "{method} {path}");
    }
    let (s, _) = g.admin_post("/admin/nothing").await;
    assert_eq!(s, 404);

    let h2 = client_for_test_ca()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    for (c, version) in [
        (&c, reqwest::Version::HTTP_11),
        (&h2, reqwest::Version::HTTP_2),
    ] {
        for path in ["/healthz", "/readyz", "/metrics"] {
            let get = c.get(g.admin_url(path)).send().await.unwrap();
            assert_eq!(get.status(), 200, "GET {path}");
            let get_len = get.bytes().await.unwrap().len();
            let r = c.head(g.admin_url(path)).send().await.unwrap();
            assert_eq!(
                (r.status().as_u16(), r.version()),
                (200, version),
                "HEAD {path}"
            );
            let len: usize = r.headers()["content-length"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            if path == "/metrics" {
                assert!(len > 0, "HEAD {path}");
            } else {
                assert_eq!(len, get_len, "HEAD {path}");
            }
            assert!(r.bytes().await.unwrap().is_empty(), "HEAD {path}");
        }
    }
    g.stop().await;
}

/// The `Bearer` scheme is matched in any case (RFC 7235); the token still exactly.
#[tokio::test]
async fn the_admin_token_scheme_is_case_insensitive() {
    let g = Gateway::start("").await;
    let c = client();
    for (auth, status) in [
        ("bearer admin-token", 200),
        ("BEARER admin-token", 200),
        ("bEaReR  admin-token", 200),
        ("bearer Admin-token", 401),
        ("bearer", 401),
        ("bearer ", 401),
        ("bearer admin-token-and-more", 401),
        ("Beareradmin-token", 401),
    ] {
        let r = c
            .get(g.admin_url("/admin/deliveries"))
            .header("Authorization", auth)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{auth:?}");
        if status == 401 {
            assert_eq!(r.headers()["www-authenticate"], "Bearer", "{auth:?}");
        }
    }
    g.stop().await;
}

#[tokio::test]
async fn a_target_rate_spaces_its_sends() {
    let fake = FakeTarget::start().await;
    let g = Gateway::start(&format!(
        r#"{FAST_RETRY}
[targets.paced]
kind = "http"
url = "{}"
rate = 5.0
concurrency = 4

[[routes]]
name = "all to paced"
to = ["paced"]
"#,
        fake.url("/paced")
    ))
    .await;
    for i in 0..4 {
        let body =
            format!(r#"{{"event":"MODEL_VERSION_CREATED","model_name":"rate","version":"{i}"}}"#);
        let (s, _) = g.post_databricks(&body).await;
        assert_eq!(s, 200);
    }
    let reqs = fake.wait_for(4, PATIENCE).await;
    let mut at: Vec<_> = reqs.iter().map(|r| r.at).collect();
    at.sort();
    // 5 per second = one every 200 ms, so the four sends span 600 ms; unpaced, with four
    // concurrent slots, they would all arrive within milliseconds. The bound leaves 100 ms for
    // a send held up on its way (a loaded machine), which per-gap bounds would not.
    let span = at[3] - at[0];
    assert!(
        span >= std::time::Duration::from_millis(500),
        "four sends within {span:?}: {at:?}"
    );
    g.stop().await;
}

//! More of the README's command line, run as the built binary: `serve` and `check` on
//! configurations they must refuse (an unauthenticated endpoint, a missing `${VAR}`), the
//! configuration file from `$HOOKGATE_CONFIG`, `deliveries list|replay` against the outbox of a
//! running gateway, the warning for deliveries to a removed target, and what `serve` logs at
//! debug level (never a secret).

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use common::delivery::*;
use common::fake::{Answer, FakeTarget};
use common::serve::{Served, run};
use common::*;
use serde_json::{Value, json};

/// A complete configuration: ephemeral ports, the store `db`, then `rest`.
fn config(db: &Path, rest: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
shutdown_grace = "5s"
header_read_timeout = "2s"
body_read_timeout = "2s"

[store]
url = "sqlite://{}"
{rest}"#,
        db.display()
    )
}

/// A Databricks event body for model `model`.
fn dbx_body(model: &str) -> String {
    format!(
        r#"{{"event":"MODEL_VERSION_CREATED","webhook_id":"w1","event_timestamp":1589859029343,"model_name":"{model}","version":"1"}}"#
    )
}

async fn post(url: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let mut req = client().post(url).body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

// ---------------------------------------------------------------------------------------------
// allow_unauthenticated.

#[tokio::test]
async fn an_endpoint_without_secret_or_bearer_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hookgate.db");
    let open = r#"
[[endpoints]]
name = "open"
path = "/hooks/open"
scheme = "databricks"
"#;
    let cfg = write_config(dir.path(), &config(&db, open));
    let args = [os("--config"), cfg.as_os_str()];
    let want = "endpoints[0]: no secret and no bearer token; set allow_unauthenticated = true";

    let out = run([os("check"), args[0], args[1]], &[], dir.path()).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains(want), "{}", out.stderr);
    assert!(out.stderr.contains("1 error(s)"), "{}", out.stderr);

    let Err(out) = Served::start(&args, &[], dir.path()).await else {
        panic!("serve started with an unauthenticated endpoint");
    };
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains(want), "{}", out.stderr);
    assert!(!db.exists(), "nothing was opened");

    // Allowed explicitly: `check` passes and says so, `serve` takes an unsigned event.
    write_config(
        dir.path(),
        &config(&db, &format!("{open}allow_unauthenticated = true\n")),
    );
    let out = run([os("check"), args[0], args[1]], &[], dir.path()).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("UNAUTHENTICATED"), "{}", out.stdout);
    let served = Served::start(&args, &[], dir.path())
        .await
        .unwrap_or_else(|out| panic!("serve did not start: {out:?}"));
    let (s, answer) = post(&served.url("/hooks/open"), &[], &dbx_body("open-model")).await;
    assert_eq!(s, 200, "{answer}");
    assert_eq!(answer["status"], "accepted", "{answer}");
    assert_eq!(answer["model"], "open-model");
    let out = served.stop().await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        stored_event_ids(&db).await,
        [answer["event_id"].as_str().unwrap()]
    );
}

// ---------------------------------------------------------------------------------------------
// ${VAR} and $HOOKGATE_CONFIG.

#[tokio::test]
async fn serve_refuses_a_missing_variable_naming_it_and_its_key() {
    const VAR: &str = "HOOKGATE_TEST_UNSET_DEPLOY_TOKEN";
    assert!(std::env::var_os(VAR).is_none(), "{VAR} must not be set");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hookgate.db");
    let rest = format!(
        r#"
[[endpoints]]
name = "registry"
path = "/hooks/registry"
scheme = "databricks"
secrets = ["s"]

[targets.deploy]
kind = "databricks_job"
workspace_url = "https://adb-1.azuredatabricks.net"
job_id = 42
token = "${{{VAR}}}"
"#
    );
    let cfg = write_config(dir.path(), &config(&db, &rest));
    let args = [os("--config"), cfg.as_os_str()];
    let Err(out) = Served::start(&args, &[], dir.path()).await else {
        panic!("serve started without {VAR}");
    };
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "targets.deploy.token: environment variable {VAR} is not set"
        )),
        "{}",
        out.stderr
    );
    assert!(!db.exists(), "nothing was opened");

    // The same file with the variable set starts: it was the variable, and only it.
    let served = Served::start(&args, &[(VAR, "dapi-from-env")], dir.path())
        .await
        .unwrap_or_else(|out| panic!("serve did not start: {out:?}"));
    let out = served.stop().await;
    assert_eq!(out.code, 0, "{out:?}");
}

#[tokio::test]
async fn serve_and_check_read_the_file_hookgate_config_names() {
    // The working directory has no routes.toml (the default file).
    let cwd = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let db = elsewhere.path().join("hookgate.db");
    let rest = r#"
[[endpoints]]
name = "from-env"
path = "/hooks/from-env"
scheme = "databricks"
secrets = ["env-file-secret"]
"#;
    let cfg = elsewhere.path().join("gateway.toml");
    std::fs::write(&cfg, config(&db, rest)).unwrap();
    let cfg_str = cfg.to_str().unwrap();

    // Neither: the default, ./routes.toml, which is not there.
    let Err(out) = Served::start(&[], &[], cwd.path()).await else {
        panic!("serve started without a configuration file");
    };
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("routes.toml"), "{}", out.stderr);
    assert!(
        out.stderr.contains("cannot read configuration file"),
        "{}",
        out.stderr
    );

    // $HOOKGATE_CONFIG alone.
    let env = [("HOOKGATE_CONFIG", cfg_str)];
    let out = run(["check"], &env, cwd.path()).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.ends_with(&format!("{cfg_str}: OK\n")),
        "{}",
        out.stdout
    );
    let served = Served::start(&[], &env, cwd.path())
        .await
        .unwrap_or_else(|out| panic!("serve did not start: {out:?}"));
    let body = dbx_body("env-model");
    let sig = hookgate::verify::databricks::sign(b"env-file-secret", body.as_bytes());
    let (s, answer) = post(
        &served.url("/hooks/from-env"),
        &[("X-Databricks-Signature", &sig)],
        &body,
    )
    .await;
    assert_eq!(
        (s, &answer["status"]),
        (200, &json!("accepted")),
        "{answer}"
    );
    let out = served.stop().await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        count_rows(&db, "events").await,
        1,
        "stored where that file says"
    );
    assert!(!cwd.path().join("hookgate.db").exists());

    // An explicit --config wins over the variable.
    let missing = cwd.path().join("missing.toml");
    let env = [("HOOKGATE_CONFIG", missing.to_str().unwrap())];
    let out = run(["check"], &env, cwd.path()).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("missing.toml"), "{}", out.stderr);
    let out = run(["check", "--config", cfg_str], &env, cwd.path()).await;
    assert_eq!(out.code, 0, "{out:?}");
}

// ---------------------------------------------------------------------------------------------
// deliveries list / replay.

async fn deliveries_json(cfg: &Path, args: &[&str]) -> Vec<Value> {
    let mut args = args.to_vec();
    args.push("--json");
    let out = deliveries_cli(cfg, &args).await;
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .clone()
}

fn field<'a>(rows: &'a [Value], key: &str) -> Vec<&'a Value> {
    rows.iter().map(|r| &r[key]).collect()
}

#[tokio::test]
async fn deliveries_list_and_replay_through_the_binary() {
    let a = FakeTarget::start().await;
    let b = FakeTarget::start().await;
    let c = FakeTarget::start().await;
    a.default_answer(Answer::status(400).body("broken a"));
    b.default_answer(Answer::status(400).body("broken b"));
    let extra = format!(
        r#"{FAST_RETRY}
[targets.a]
kind = "http"
url = "{}"

[targets.b]
kind = "http"
url = "{}"

[targets.c]
kind = "http"
url = "{}"

[[routes]]
to = ["a", "b", "c"]
"#,
        a.url("/a"),
        b.url("/b"),
        c.url("/c"),
    );
    let g = Gateway::start(&extra).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &base_config(&g.db, &extra));

    let mut ids = Vec::new();
    for model in ["first", "second"] {
        ids.push(accepted_id(g.post_databricks(&dbx_body(model)).await));
    }
    let mut delivery_id = std::collections::HashMap::new();
    for id in &ids {
        wait_delivery(&g, id, "a", "dead", 1).await;
        wait_delivery(&g, id, "b", "dead", 1).await;
        let e = wait_delivery(&g, id, "c", "delivered", 1).await;
        for t in ["a", "b", "c"] {
            let d = delivery(&e, t)["id"].as_i64().unwrap();
            delivery_id.insert((id.clone(), t), d);
        }
    }
    let did = |event: usize, t: &'static str| delivery_id[&(ids[event].clone(), t)];

    // list --target: that target's deliveries only, newest first; what the admin API says.
    let rows = deliveries_json(&cfg, &["list", "--target", "a"]).await;
    assert_eq!(field(&rows, "target"), [&json!("a"), &json!("a")]);
    assert_eq!(
        field(&rows, "id"),
        [&json!(did(1, "a")), &json!(did(0, "a"))]
    );
    assert_eq!(field(&rows, "status"), [&json!("dead"), &json!("dead")]);
    assert_eq!(rows[0]["last_error"], "http 400: broken a");
    let (s, api) = g.admin_get("/admin/deliveries?target=a").await;
    assert_eq!(s, 200);
    assert_eq!(api["deliveries"], json!(rows));

    // list --status delivered: only c's.
    let rows = deliveries_json(&cfg, &["list", "--status", "delivered"]).await;
    assert_eq!(field(&rows, "target"), [&json!("c"), &json!("c")]);
    assert_eq!(field(&rows, "event_id"), [&json!(ids[1]), &json!(ids[0])]);
    assert_eq!(
        field(&rows, "status"),
        [&json!("delivered"), &json!("delivered")]
    );
    // Both filters, as a table.
    let table = deliveries_cli(&cfg, &["list", "--status", "delivered", "--target", "c"]).await;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("ID "), "{table}");
    for (line, event) in lines[1..].iter().zip([1, 0]) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let id = did(event, "c").to_string();
        assert_eq!(cols[..4], [id.as_str(), "delivered", "c", "1"], "{table}");
    }
    let none = deliveries_cli(&cfg, &["list", "--status", "delivered", "--target", "a"]).await;
    assert_eq!(none.lines().last(), Some("(no deliveries)"), "{none}");

    // replay --dead --target a: a's dead letters only, sent again (now answered 200).
    a.default_answer(Answer::status(200));
    b.default_answer(Answer::status(200));
    let out = deliveries_cli(&cfg, &["replay", "--dead", "--target", "a"]).await;
    assert_eq!(out, "replayed 2 deliveries\n");
    for id in &ids {
        let e = wait_delivery(&g, id, "a", "delivered", 2).await;
        assert_eq!(delivery(&e, "b")["status"], "dead", "b was not replayed");
    }
    assert_eq!(a.requests().len(), 4);
    assert_eq!(b.requests().len(), 2);

    // replay ID...: one dead delivery of b and one delivered one of c.
    let (b0, c0) = (did(0, "b"), did(0, "c"));
    let out = deliveries_cli(&cfg, &["replay", &b0.to_string(), &c0.to_string()]).await;
    assert_eq!(out, "replayed 2 deliveries\n");
    wait_delivery(&g, &ids[0], "b", "delivered", 2).await;
    let e = wait_delivery(&g, &ids[0], "c", "delivered", 2).await;
    assert_eq!(
        delivery(&e, "c")["attempts"],
        1,
        "a fresh attempt budget: {e:#}"
    );
    assert_eq!(delivery_status(&g, &ids[1], "b").await, "dead");
    let resent = c.wait_for(3, PATIENCE).await;
    let key = resent[2].header("Idempotency-Key").unwrap();
    assert!(
        key.starts_with(&format!("{}:replay-", ids[0])),
        "a replay has a new key: {key}"
    );
    assert_eq!(c.requests().len(), 3, "only the replayed one again");

    // replay --dead without a target: what is left (b's second).
    let rows = deliveries_json(&cfg, &["list", "--status", "dead"]).await;
    assert_eq!(field(&rows, "id"), [&json!(did(1, "b"))]);
    let out = deliveries_cli(&cfg, &["replay", "--dead", "--json"]).await;
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"replayed": 1})
    );
    wait_delivery(&g, &ids[1], "b", "delivered", 2).await;
    assert!(
        deliveries_json(&cfg, &["list", "--status", "dead"])
            .await
            .is_empty()
    );
    assert_eq!(b.requests().len(), 4);
    g.stop().await;
}

/// `deliveries` with what it cannot do: ids it does not have, a limit out of range, a target
/// the file does not name. Each says so; only the first two are errors.
#[tokio::test]
async fn deliveries_cli_says_what_it_did_not_do() {
    let a = FakeTarget::start().await;
    a.default_answer(Answer::status(400).body("broken a"));
    let extra = format!(
        r#"{FAST_RETRY}
[targets.a]
kind = "http"
url = "{}"

[[routes]]
to = ["a"]
"#,
        a.url("/a"),
    );
    let g = Gateway::start(&extra).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &base_config(&g.db, &extra));
    let id = accepted_id(g.post_databricks(&dbx_body("m")).await);
    let e = wait_delivery(&g, &id, "a", "dead", 1).await;
    let dead = delivery(&e, "a")["id"].as_i64().unwrap().to_string();
    let missing = "987654";
    let cli = |args: &[&str]| {
        let mut all: Vec<std::ffi::OsString> = vec!["deliveries".into()];
        all.extend(args.iter().map(|a| a.into()));
        all.extend(["--config".into(), cfg.clone().into_os_string()]);
        hookgate(all)
    };

    let out = cli(&["replay", missing]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("replayed none of the 1 deliveries"),
        "{}",
        out.stderr
    );
    assert_eq!(
        delivery_status(&g, &id, "a").await,
        "dead",
        "nothing changed"
    );

    a.default_answer(Answer::status(200));
    let out = cli(&["replay", missing, &dead]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "replayed 1 deliveries\n");
    assert!(
        out.stderr.contains("replayed 1 of the 2 deliveries"),
        "{}",
        out.stderr
    );
    wait_delivery(&g, &id, "a", "delivered", 2).await;

    let out = cli(&["list", "--limit", "0"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--limit"), "{}", out.stderr);

    let out = cli(&["list", "--target", "nope"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout.lines().last(),
        Some("(no deliveries)"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains(r#"no target named "nope""#),
        "{}",
        out.stderr
    );
    g.stop().await;
}

/// `serve` restarted without the target of a pending delivery: it logs one warning for the
/// target with the count, and `deliveries list --status dead` shows them with the reason.
#[tokio::test]
async fn serve_warns_of_each_removed_target_and_its_count_of_new_dead_letters() {
    use common::removed_target::{not_configured, one_target};
    let fake = FakeTarget::start().await;
    fake.default_answer(Answer::status(503));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hookgate.db");
    let endpoint = r#"
[[endpoints]]
name = "registry"
path = "/hooks/registry"
scheme = "databricks"
secrets = ["removed-target-secret"]
"#;
    let write = |target: &str| {
        let rest = format!("{endpoint}{}", one_target(target, &fake.url("/in")));
        write_config(dir.path(), &config(&db, &rest))
    };
    let cfg = write("old-name");
    let args = [os("--config"), cfg.as_os_str()];
    let served = Served::start(&args, &[], dir.path())
        .await
        .unwrap_or_else(|out| panic!("serve did not start: {out:?}"));
    for model in ["one", "two"] {
        let body = dbx_body(model);
        let sig = hookgate::verify::databricks::sign(b"removed-target-secret", body.as_bytes());
        let (s, answer) = post(
            &served.url("/hooks/registry"),
            &[("X-Databricks-Signature", &sig)],
            &body,
        )
        .await;
        assert_eq!(s, 200, "{answer}");
    }
    // Both attempts failed and are recorded: each delivery waits an hour for its retry.
    let deadline = std::time::Instant::now() + PATIENCE;
    while deliveries_json(&cfg, &["list", "--status", "pending"])
        .await
        .iter()
        .filter(|d| d["attempts"] == 1)
        .count()
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "attempts not recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served.stop().await.code, 0);

    write("new-name");
    let served = Served::start(&args, &[], dir.path())
        .await
        .unwrap_or_else(|out| panic!("serve did not start: {out:?}"));
    let out = served.stop().await;
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("is not in the configuration"))
        .collect();
    assert_eq!(warnings.len(), 1, "one line per target: {}", out.stderr);
    assert!(warnings[0].contains(" WARN "), "{}", warnings[0]);
    assert!(warnings[0].contains("target=old-name"), "{}", warnings[0]);
    assert!(warnings[0].contains("deliveries=2"), "{}", warnings[0]);
    let dead = deliveries_json(&cfg, &["list", "--status", "dead"]).await;
    assert_eq!(dead.len(), 2, "{dead:?}");
    for d in &dead {
        assert_eq!(d["target"], "old-name");
        assert_eq!(d["last_error"], not_configured("old-name").as_str());
    }
    // Replaying every dead letter leaves these: pending again, no lane would take them.
    let run = hookgate([
        os("deliveries"),
        os("replay"),
        os("--dead"),
        os("--config"),
        cfg.as_os_str(),
    ])
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stdout, "replayed 0 deliveries\n");
    assert!(
        run.stderr.contains(
            r#"left 2 dead deliveries to "old-name", which the configuration does not have"#
        ),
        "{}",
        run.stderr
    );
    let dead = deliveries_json(&cfg, &["list", "--status", "dead"]).await;
    assert_eq!(dead.len(), 2, "still dead: {dead:?}");
    assert_eq!(fake.requests().len(), 2, "nothing more was sent");
}

// ---------------------------------------------------------------------------------------------
// Secrets in logs and metrics.

/// Every configured secret carries this, so one search finds any of them, whole or in part.
const MARK: &str = "Q7ZKV";

#[tokio::test]
async fn serve_at_debug_level_logs_no_secret() {
    secrets_stay_out_of_the_log("text").await;
}

#[tokio::test]
async fn serve_at_debug_level_logs_no_secret_in_json_either() {
    secrets_stay_out_of_the_log("json").await;
}

/// Good and bad requests, failing deliveries and admin calls against `serve` at debug level
/// with `HOOKGATE_LOG_FORMAT=format`: no secret in its output, its metrics or its admin answers.
async fn secrets_stay_out_of_the_log(format: &str) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hookgate.db");
    let ci = FakeTarget::start().await;
    ci.default_answer(Answer::status(500).body("internal error"));
    let jenkins = FakeTarget::start().await;
    jenkins.default_answer(Answer::status(503).body("jenkins is restarting"));
    let gh = FakeTarget::start().await;
    gh.default_answer(Answer::status(401).body(r#"{"message": "Bad credentials"}"#));
    let slack = FakeTarget::start().await;
    slack.default_answer(Answer::status(404).body("no_service"));

    let endpoint_secret = format!("endpoint-secret-{MARK}");
    let bearer = format!("endpoint-bearer-{MARK}");
    let admin_token = format!("admin-token-{MARK}");
    let mlflow_secret = format!("mlflow-secret-{MARK}");
    let jenkins_api_token = format!("jenkins-api-{MARK}");
    let rest = format!(
        r#"
[admin]
token = "${{ADMIN_TOKEN}}"

[retry]
timeout = "2s"
initial = "50ms"
max_delay = "100ms"
max_attempts = 2

[[endpoints]]
name = "registry"
path = "/hooks/registry"
scheme = "databricks"
secrets = ["${{ENDPOINT_SECRET}}"]
bearer = "${{ENDPOINT_BEARER}}"

[[endpoints]]
name = "mlflow"
path = "/hooks/mlflow"
scheme = "mlflow"
secrets = ["{mlflow_secret}"]

[targets.ci]
kind = "http"
url = "{ci}"
signing_secret = "signing-secret-{MARK}"
headers = {{ Authorization = "Bearer http-header-{MARK}" }}

[targets.jenkins]
kind = "jenkins"
url = "{jenkins}"
job = "deploy"
trigger_token = "jenkins-trigger-{MARK}"
user = "hookgate"
api_token = "${{JENKINS_API_TOKEN}}"

[targets.gh]
kind = "github"
repository = "acme/ml"
token = "ghp-{MARK}"
api_url = "{gh}"

[targets.chat]
kind = "slack"
url = "{slack}"

[targets.deploy]
kind = "databricks_job"
workspace_url = "http://127.0.0.1:{closed}"
job_id = 1
token = "dapi-{MARK}"

[[routes]]
to = ["ci", "jenkins", "gh", "chat", "deploy"]
"#,
        ci = ci.url("/ci"),
        jenkins = jenkins.url(""),
        gh = gh.url(""),
        slack = slack.url(&format!("/services/T0/B0/slack-path-{MARK}")),
        closed = closed_port(),
    );
    let cfg = write_config(dir.path(), &config(&db, &rest));
    let env = [
        ("HOOKGATE_LOG", "debug"),
        ("HOOKGATE_LOG_FORMAT", format),
        ("ADMIN_TOKEN", admin_token.as_str()),
        ("ENDPOINT_SECRET", endpoint_secret.as_str()),
        ("ENDPOINT_BEARER", bearer.as_str()),
        ("JENKINS_API_TOKEN", jenkins_api_token.as_str()),
    ];
    let served = Served::start(&[os("--config"), cfg.as_os_str()], &env, dir.path())
        .await
        .unwrap_or_else(|out| panic!("serve did not start: {out:?}"));

    // What a caller presents that is wrong is not logged either.
    const WRONG: &str = "WRONGCRED";
    let url = served.url("/hooks/registry");
    let body = dbx_body("secret-test");
    let good_sig = hookgate::verify::databricks::sign(endpoint_secret.as_bytes(), body.as_bytes());
    let bad_sig =
        hookgate::verify::databricks::sign(format!("{WRONG}-secret").as_bytes(), body.as_bytes());
    let auth = format!("Bearer {bearer}");
    let bad_auth = format!("Bearer {WRONG}-token");
    let cases = [
        (
            vec![
                ("X-Databricks-Signature", &bad_sig),
                ("Authorization", &auth),
            ],
            401,
            "bad_signature",
        ),
        (
            vec![("X-Databricks-Signature", &good_sig)],
            401,
            "missing_token",
        ),
        (
            vec![
                ("X-Databricks-Signature", &good_sig),
                ("Authorization", &bad_auth),
            ],
            401,
            "bad_token",
        ),
        (
            vec![
                ("X-Databricks-Signature", &good_sig),
                ("Authorization", &auth),
            ],
            200,
            "",
        ),
    ];
    let mut event_ids = Vec::new();
    for (headers, status, reason) in cases {
        let headers: Vec<(&str, &str)> =
            headers.into_iter().map(|(k, v)| (k, v.as_str())).collect();
        let (s, answer) = post(&url, &headers, &body).await;
        assert_eq!(s, status, "{answer}");
        if status == 200 {
            event_ids.push(answer["event_id"].as_str().unwrap().to_string());
        } else {
            assert_eq!(answer["reason"], reason, "{answer}");
        }
    }
    // MLflow: a good request and one signed with another secret.
    let ml_body = r#"{"entity": "registered_model", "action": "created", "timestamp": "2026-01-01T00:00:00+00:00", "data": {"name": "secret-test"}}"#;
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let ts_s = ts.to_string();
    for (secret, status) in [(format!("{WRONG}-ml"), 401), (mlflow_secret.clone(), 200)] {
        let delivery_id = uuid::Uuid::new_v4().to_string();
        let sig =
            hookgate::verify::mlflow::sign(secret.as_bytes(), &delivery_id, ts, ml_body.as_bytes());
        let headers = [
            ("X-MLflow-Delivery-Id", delivery_id.as_str()),
            ("X-MLflow-Timestamp", ts_s.as_str()),
            ("X-MLflow-Signature", sig.as_str()),
        ];
        let (s, answer) = post(&served.url("/hooks/mlflow"), &headers, ml_body).await;
        assert_eq!(s, status, "{answer}");
        if status == 200 {
            event_ids.push(answer["event_id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(event_ids.len(), 2);

    // The admin API: a wrong token refused, the right one answers; wait for every delivery to
    // have failed for good (5 targets x 2 events, each a target error or a connect error).
    let admin = |path: &str, token: &str| {
        client()
            .get(served.admin_url(path))
            .bearer_auth(token)
            .send()
    };
    let r = admin("/admin/deliveries", &format!("{WRONG}-admin"))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let deadline = std::time::Instant::now() + PATIENCE;
    let dead = loop {
        let r = admin("/admin/deliveries?status=dead", &admin_token)
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        if v["deliveries"].as_array().unwrap().len() == 10 {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "not all dead: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut answers = vec![dead];
    for id in &event_ids {
        let r = admin(&format!("/admin/events/{id}"), &admin_token)
            .await
            .unwrap();
        answers.push(r.text().await.unwrap());
    }
    let metrics = served.metrics().await;
    let out = served.stop().await;
    assert_eq!(out.code, 0, "{out:?}");

    // The log is the debug log, and it saw all of it.
    let log = &out.stderr;
    let debug = if format == "json" {
        r#""level":"DEBUG""#
    } else {
        " DEBUG "
    };
    assert!(log.contains(debug), "not a debug log:\n{log}");
    for line in [
        "request refused by verification",
        "admin request refused",
        "will retry",
        "delivery is dead",
    ] {
        assert!(log.contains(line), "no {line:?} in:\n{log}");
    }
    assert_eq!(
        metric(
            &metrics,
            r#"hookgate_verification_failures_total{endpoint="registry",reason="bad_token"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    // Basic auth carries the Jenkins API token in base64.
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("hookgate:{jenkins_api_token}"));
    let outputs = [
        ("stderr", log.as_str()),
        ("stdout", out.stdout.as_str()),
        ("/metrics", metrics.as_str()),
    ];
    let answers: Vec<(&str, &str)> = answers.iter().map(|a| ("admin API", a.as_str())).collect();
    for (name, text) in outputs.iter().chain(&answers) {
        for needle in [MARK, WRONG, basic.as_str()] {
            if let Some(line) = text.lines().find(|l| l.contains(needle)) {
                panic!("{name} shows a secret ({needle}): {line}");
            }
        }
    }
}

/// A signed body is still the sender's text: an event name with a line break in it must stay
/// inside its own log line, or whoever can sign a body could write lines that look like the
/// gateway's (journald keeps each line as an entry of its own).
#[tokio::test]
async fn an_event_name_cannot_forge_a_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hookgate.db");
    let rest = r#"
[[endpoints]]
name = "registry"
path = "/hooks/registry"
scheme = "databricks"
secrets = ["forge-test-secret"]
"#;
    let cfg = write_config(dir.path(), &config(&db, rest));
    let served = Served::start(
        &[os("--config"), cfg.as_os_str()],
        &[("HOOKGATE_LOG", "info"), ("HOOKGATE_LOG_FORMAT", "text")],
        dir.path(),
    )
    .await
    .unwrap_or_else(|out| panic!("serve did not start: {out:?}"));
    const FORGED: &str = "2026-01-01T00:00:00.000000Z ERROR forged";
    let body = format!(r#"{{"event":"X\n{FORGED}","model_name":"m"}}"#);
    let sig = hookgate::verify::databricks::sign(b"forge-test-secret", body.as_bytes());
    let headers = [("X-Databricks-Signature", sig.as_str())];
    let url = served.url("/hooks/registry");
    for want in ["accepted", "duplicate"] {
        let (s, answer) = post(&url, &headers, &body).await;
        assert_eq!(s, 200, "{answer}");
        assert_eq!(answer["status"], want, "{answer}");
    }
    let out = served.stop().await;
    assert_eq!(out.code, 0, "{out:?}");
    let log = out.stderr;
    for line in ["event accepted", "duplicate delivery"] {
        assert!(log.contains(line), "no {line:?} in:\n{log}");
    }
    assert!(
        log.contains(r#"event="X\n2026"#),
        "the name is logged, escaped:\n{log}"
    );
    if let Some(line) = log.lines().find(|l| l.starts_with(FORGED)) {
        panic!("a forged line: {line}\n{log}");
    }
}

//! Target options end to end: the real gateway relays signed events to fake targets on
//! 127.0.0.1, and each option the README names shows in the request the fake receives (Slack
//! Block Kit and 429s, Jenkins trigger tokens, run-now notebook parameters, the generic HTTP
//! target's method, headers, body and signature, a body built from the `databricks` template
//! variable) or in the delivery's fate (`max_age`).

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use common::delivery::*;
use common::fake::{Answer, FakeTarget, Recorded};
use common::*;
use hmac::Mac as _;
use serde_json::json;

/// The Databricks stage-transition vector (Airline_Delay_SparkML v8, None → Production).
async fn send_transition(g: &Gateway) -> String {
    accepted_id(
        g.send_vector(&vector(
            "databricks",
            "MODEL_VERSION_TRANSITIONED_STAGE.json",
        ))
        .await,
    )
}

/// Path and decoded query pairs of a recorded request.
fn split_uri(r: &Recorded) -> (String, Vec<(String, String)>) {
    let (path, query) = r.uri.split_once('?').unwrap_or((&r.uri, ""));
    (path.to_string(), form(query.as_bytes()))
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Retries: max_age.

#[tokio::test]
async fn a_target_that_keeps_failing_goes_dead_by_age_before_its_attempts_run_out() {
    let fake = FakeTarget::start().await;
    fake.default_answer(Answer::status(503).body("down for maintenance"));
    // The target's own [retry] table: attempts would last for ages, the age limit is short.
    let extra = format!(
        r#"{FAST_RETRY}
[targets.flaky]
kind = "http"
url = "{}"

[targets.flaky.retry]
initial = "100ms"
max_delay = "200ms"
max_attempts = 1000
max_age = "1500ms"

[[routes]]
to = ["flaky"]
"#,
        fake.url("/flaky")
    );
    let g = Gateway::start(&extra).await;
    let id = send_transition(&g).await;
    let e = wait_delivery(&g, &id, "flaky", "dead", 2).await;
    let reqs = fake.requests();
    let a = attempts(&e, "flaky");
    let n = a.len();
    // Retried every 50-200 ms for 1.5 s: several attempts, nowhere near 1000.
    assert!((3..=40).contains(&n), "{n} attempts: {e:#}");
    assert_eq!(reqs.len(), n, "one request per recorded attempt");
    for (i, at) in a.iter().enumerate() {
        assert_eq!(at["attempt"], i + 1);
        assert_eq!(at["status_code"], 503);
        let want = if i + 1 < n { "retry" } else { "dead" };
        assert_eq!(at["result"], want, "attempt {}: {e:#}", i + 1);
    }
    // No attempt was scheduled well past max_age (counted from the first). The slack is wide:
    // an attempt due just before the limit may start late on a loaded machine; without the
    // limit, attempts would go on for minutes.
    let span = reqs[n - 1].at.duration_since(reqs[0].at);
    assert!(span < Duration::from_secs(3), "attempts spanned {span:?}");

    // The reason says it was the age, with the last failure.
    let d = delivery(&e, "flaky");
    let reason = d["last_error"]
        .as_str()
        .expect("a dead letter has a reason");
    let age = reason
        .strip_prefix("gave up after ")
        .and_then(|r| r.strip_suffix(": http 503: down for maintenance"))
        .unwrap_or_else(|| panic!("not an age reason: {reason:?}"));
    assert!(
        age.ends_with('s') && age[..age.len() - 1].bytes().all(|b| b.is_ascii_digit()),
        "the age, in seconds: {reason:?}"
    );
    assert_eq!(a[n - 1]["reason"], reason);
    assert_eq!(d["attempts"], n);

    // Listed as dead, with that reason, by the admin API and by `hookgate deliveries list`.
    let (s, list) = g.admin_get("/admin/deliveries?status=dead").await;
    assert_eq!(s, 200);
    let rows = list["deliveries"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{list:#}");
    assert_eq!(rows[0]["target"], "flaky");
    assert_eq!(rows[0]["last_error"], reason);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &base_config(&g.db, &extra));
    let stdout = deliveries_cli(&cfg, &["list", "--status", "dead"]).await;
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", stdout);
    assert!(lines[1].contains("dead"), "{}", stdout);
    assert!(lines[1].contains("flaky"), "{}", stdout);
    assert!(lines[1].ends_with(reason), "{}", stdout);

    let m = g.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"hookgate_deliveries_total{outcome="dead",target="flaky"}"#
        ),
        Some(1.0)
    );
    assert_eq!(fake.requests().len(), n, "nothing is sent after it died");
    g.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Slack.

#[tokio::test]
async fn slack_blocks_reach_the_webhook_as_block_kit() {
    let slack = FakeTarget::start().await;
    let extra = format!(
        r#"{FAST_RETRY}
[targets.ml-slack]
kind = "slack"
url = "{}"
blocks = true
registry_url = "https://adb-1.azuredatabricks.net/"
username = "hookgate"
icon_emoji = ":rocket:"

[[routes]]
to = ["ml-slack"]
"#,
        slack.url("/services/T0/B0/XXXX")
    );
    let g = Gateway::start(&extra).await;
    let dbx_id = send_transition(&g).await;
    wait_delivery(&g, &dbx_id, "ml-slack", "delivered", 1).await;
    let ml_id = accepted_id(
        g.send_vector(&vector("mlflow", "model_version_alias.created.json"))
            .await,
    );
    wait_delivery(&g, &ml_id, "ml-slack", "delivered", 1).await;

    let reqs = slack.wait_for(2, PATIENCE).await;
    assert_eq!(reqs.len(), 2);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.uri, "/services/T0/B0/XXXX");
    assert_eq!(header(r, "content-type"), "application/json");
    assert_eq!(
        r.json(),
        json!({
            "text": DBX_TEXT,
            "username": "hookgate",
            "icon_emoji": ":rocket:",
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": DBX_TEXT}},
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
    // An MLflow alias event: the alias instead of stages, and MLflow's registry page.
    let body = reqs[1].json();
    let text = "Alias 'champion' was set on version 1 of registered model 'gateway-demo-model'.";
    assert_eq!(body["text"], text);
    assert_eq!(
        body["blocks"],
        json!([
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "section", "fields": [
                {"type": "mrkdwn", "text": "*Model*\ngateway-demo-model"},
                {"type": "mrkdwn", "text": "*Version*\n1"},
                {"type": "mrkdwn", "text": "*Alias*\nchampion"},
                {"type": "mrkdwn", "text": "*Event*\nmodel_version_alias.created"},
            ]},
            {"type": "section", "text": {"type": "mrkdwn", "text":
                "<https://adb-1.azuredatabricks.net/#/models/gateway-demo-model/versions/1|Open in the model registry>"}},
        ])
    );
    g.stop().await;
}

#[tokio::test]
async fn slack_rate_limited_with_retry_after_is_retried_after_that_wait() {
    let slack = FakeTarget::start().await;
    // What Slack answers an incoming webhook posting too fast.
    slack.script([
        Answer::status(429)
            .header("Retry-After", "1")
            .body("rate_limited"),
        Answer::status(200).body("ok"),
    ]);
    // FAST_RETRY alone would retry within 100 ms.
    let extra = format!(
        r#"{FAST_RETRY}
[targets.ml-slack]
kind = "slack"
url = "{}"

[[routes]]
to = ["ml-slack"]
"#,
        slack.url("/services/T0/B0/XXXX")
    );
    let g = Gateway::start(&extra).await;
    let id = send_transition(&g).await;
    let e = wait_delivery(&g, &id, "ml-slack", "delivered", 2).await;
    let reqs = slack.requests();
    assert_eq!(reqs.len(), 2, "one 429, one success: {reqs:#?}");
    let gap = reqs[1].at.duration_since(reqs[0].at);
    assert!(
        gap >= Duration::from_secs(1),
        "retried {gap:?} after a 429 with Retry-After: 1"
    );
    assert!(gap < Duration::from_secs(4), "retried only after {gap:?}");
    assert_eq!(reqs[0].body, reqs[1].body, "the same message again");
    assert_eq!(reqs[1].json(), json!({ "text": DBX_TEXT }));
    let a = attempts(&e, "ml-slack");
    assert_eq!(a.len(), 2, "{e:#}");
    assert_eq!(
        (&a[0]["attempt"], &a[0]["result"], &a[0]["status_code"]),
        (&json!(1), &json!("retry"), &json!(429))
    );
    assert_eq!(a[0]["reason"], "http 429: rate_limited");
    assert_eq!(
        (&a[1]["attempt"], &a[1]["result"], &a[1]["status_code"]),
        (&json!(2), &json!("delivered"), &json!(200))
    );
    g.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Jenkins.

#[tokio::test]
async fn jenkins_trigger_token_goes_in_the_token_query_parameter() {
    let jenkins = FakeTarget::start().await;
    jenkins.default_answer(Answer::status(201));
    // Characters that must be encoded, to see that the token arrives intact.
    let token = "trig tok+en/42&x=1";
    let extra = format!(
        r#"{FAST_RETRY}
[targets.by-token]
kind = "jenkins"
url = "{url}/by-token"
job = "deploy"
trigger_token = "{token}"

[targets.by-both]
kind = "jenkins"
url = "{url}/by-both/"
job = "ml/deploy"
trigger_token = "{token}"
user = "hookgate"
api_token = "jenkins-api-token"
parameters = {{ MODEL_NAME = "{{{{ event.model }}}}", STAGE = "{{{{ event.to_stage }}}}" }}

[[routes]]
to = ["by-token", "by-both"]
"#,
        url = jenkins.url(""),
    );
    let g = Gateway::start(&extra).await;
    let id = send_transition(&g).await;
    wait_delivery(&g, &id, "by-token", "delivered", 1).await;
    wait_delivery(&g, &id, "by-both", "delivered", 1).await;
    let reqs = jenkins.wait_for(2, PATIENCE).await;
    assert_eq!(reqs.len(), 2);
    let find = |prefix: &str| {
        reqs.iter()
            .find(|r| r.uri.starts_with(prefix))
            .unwrap_or_else(|| panic!("no request under {prefix}: {reqs:#?}"))
    };

    // The job's "Trigger builds remotely" token: `buildWithParameters?token=TOKEN`, no user.
    let r = find("/by-token/");
    assert_eq!(r.method, "POST");
    let (path, query) = split_uri(r);
    assert_eq!(path, "/by-token/job/deploy/buildWithParameters");
    assert_eq!(query, pairs(&[("token", token)]));
    assert_eq!(
        r.header("authorization"),
        None,
        "a token alone needs no user"
    );
    assert_eq!(
        header(r, "content-type"),
        "application/x-www-form-urlencoded"
    );
    assert_eq!(
        form(&r.body),
        pairs(&[
            ("EVENT", "MODEL_VERSION_TRANSITIONED_STAGE"),
            ("EVENT_ID", &id),
            ("MODEL", "Airline_Delay_SparkML"),
            ("VERSION", "8"),
            ("FROM_STAGE", "None"),
            ("TO_STAGE", "Production"),
        ])
    );

    // Both: the token in the query, the user's API token as Basic auth, configured parameters.
    let r = find("/by-both/");
    let (path, query) = split_uri(r);
    assert_eq!(path, "/by-both/job/ml/job/deploy/buildWithParameters");
    assert_eq!(query, pairs(&[("token", token)]));
    let basic = base64::engine::general_purpose::STANDARD.encode("hookgate:jenkins-api-token");
    assert_eq!(header(r, "authorization"), format!("Basic {basic}"));
    let mut got = form(&r.body);
    got.sort();
    assert_eq!(
        got,
        pairs(&[
            ("MODEL_NAME", "Airline_Delay_SparkML"),
            ("STAGE", "Production")
        ])
    );
    g.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Databricks job.

#[tokio::test]
async fn run_now_with_notebook_params_carries_the_rendered_event_message() {
    let dbx = FakeTarget::start().await;
    dbx.default_answer(Answer::status(200).body(r#"{"run_id": 1}"#));
    let extra = format!(
        r#"{FAST_RETRY}
[targets.notebook]
kind = "databricks_job"
workspace_url = "{}"
job_id = 7
token = "dapi-notebook"
parameters = "notebook_params"
event_message = '{{"model": "{{{{ event.model }}}}", "version": "{{{{ event.version }}}}", "stage": "{{{{ event.to_stage }}}}", "id": "{{{{ event.id }}}}", "target": "{{{{ target }}}}"}}'

[[routes]]
to = ["notebook"]
"#,
        dbx.url("")
    );
    let g = Gateway::start(&extra).await;
    let id = send_transition(&g).await;
    wait_delivery(&g, &id, "notebook", "delivered", 1).await;
    let reqs = dbx.wait_for(1, PATIENCE).await;
    assert_eq!(reqs.len(), 1);
    // notebook_params instead of job_parameters.
    let body = run_now_body(&reqs[0], "Bearer dapi-notebook", "notebook_params");
    assert_eq!(body["job_id"], 7);
    let token = body["idempotency_token"].as_str().unwrap();
    assert!(!token.is_empty() && token.len() <= 64, "{token}");
    let message = format!(
        r#"{{"model": "Airline_Delay_SparkML", "version": "8", "stage": "Production", "id": "{id}", "target": "notebook"}}"#
    );
    assert_eq!(
        body["notebook_params"],
        json!({ "event_message": message }),
        "the template, rendered, as the one string parameter"
    );
    g.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Generic HTTP.

/// The Standard Webhooks check a receiver makes: some `v1,` signature in `webhook-signature` is
/// base64 HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}` keyed with the decoded
/// `whsec_` secret.
fn standard_webhooks_verifies(secret: &str, r: &Recorded) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let signed = format!(
        "{}.{}.",
        header(r, "webhook-id"),
        header(r, "webhook-timestamp")
    );
    header(r, "webhook-signature").split(' ').any(|sig| {
        let Some(b64) = sig.strip_prefix("v1,") else {
            return false;
        };
        let Ok(got) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            return false;
        };
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(signed.as_bytes());
        mac.update(&r.body);
        mac.verify_slice(&got).is_ok()
    })
}

#[tokio::test]
async fn http_target_sends_its_method_headers_body_and_a_verifiable_signature() {
    let fake = FakeTarget::start().await;
    fake.script([Answer::status(503), Answer::status(204)]);
    let key = b"0123456789abcdef0123456789abcdef";
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    );
    let extra = format!(
        r#"{FAST_RETRY}
[targets.signed]
kind = "http"
url = "{url}"
method = "PUT"
body = '{{"model": "{{{{ event.model }}}}", "version": "{{{{ event.version }}}}", "event": "{{{{ event.name }}}}", "attempt": {{{{ attempt }}}}}}'
signing_secret = "{secret}"

[targets.signed.headers]
Authorization = "Bearer http-target-token"
X-Model = "{{{{ event.model }}}} v{{{{ event.version }}}}"
Content-Type = "application/vnd.acme+json"

[[routes]]
to = ["signed"]
"#,
        url = fake.url("/in/registry?source=hookgate"),
    );
    let g = Gateway::start(&extra).await;
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let id = send_transition(&g).await;
    wait_delivery(&g, &id, "signed", "delivered", 2).await;
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2, "a 503, then the retry");

    for (i, r) in reqs.iter().enumerate() {
        let attempt = i + 1;
        assert_eq!(r.method, "PUT");
        assert_eq!(r.uri, "/in/registry?source=hookgate");
        assert_eq!(
            r.text(),
            format!(
                r#"{{"model": "Airline_Delay_SparkML", "version": "8", "event": "MODEL_VERSION_TRANSITIONED_STAGE", "attempt": {attempt}}}"#
            )
        );
        assert_eq!(header(r, "authorization"), "Bearer http-target-token");
        assert_eq!(header(r, "x-model"), "Airline_Delay_SparkML v8");
        assert_eq!(
            header(r, "content-type"),
            "application/vnd.acme+json",
            "a configured header replaces the default"
        );
        assert_eq!(
            r.headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .count(),
            1
        );
        // The documented headers stay.
        assert_eq!(header(r, "x-hookgate-event-id"), id);
        assert_eq!(header(r, "idempotency-key"), id);
        assert_eq!(
            header(r, "x-hookgate-event"),
            "MODEL_VERSION_TRANSITIONED_STAGE"
        );
        // Standard Webhooks: id, a current timestamp, a signature that verifies.
        assert_eq!(header(r, "webhook-id"), id);
        let ts: u64 = header(r, "webhook-timestamp").parse().unwrap();
        assert!(
            (before..=after).contains(&ts),
            "{ts} not in {before}..={after}"
        );
        assert!(
            standard_webhooks_verifies(&secret, r),
            "attempt {attempt}: the signature does not verify: {:?}",
            r.headers
        );
    }
    // The check itself can fail: another key, or another body, does not verify.
    let other = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(b"another key")
    );
    assert!(!standard_webhooks_verifies(&other, &reqs[0]));
    let mut tampered = reqs[0].clone();
    tampered.body = reqs[1].body.clone();
    assert!(!standard_webhooks_verifies(&secret, &tampered));
    g.stop().await;
}

#[tokio::test]
async fn http_body_template_wraps_an_mlflow_event_in_the_databricks_shape() {
    let fake = FakeTarget::start().await;
    let extra = format!(
        r#"{FAST_RETRY}
[targets.wrapped]
kind = "http"
url = "{}"
body = '{{"event": {{{{ databricks | tojson }}}}, "model": {{{{ databricks.model_name | tojson }}}}, "missing": "{{{{ databricks.to_stage }}}}", "target": "{{{{ target }}}}"}}'

[[routes]]
to = ["wrapped"]
"#,
        fake.url("/in")
    );
    let g = Gateway::start(&extra).await;
    let v = vector("mlflow", "model_version.created.json");
    let id = accepted_id(g.send_vector(&v).await);
    wait_delivery(&g, &id, "wrapped", "delivered", 1).await;
    let reqs = fake.wait_for(1, PATIENCE).await;
    assert_eq!(reqs.len(), 1);
    let original: serde_json::Value = serde_json::from_str(&v.body).unwrap();
    assert_eq!(
        reqs[0].json(),
        json!({
            "event": {
                "event": "MODEL_VERSION_CREATED",
                "event_timestamp": 1_795_617_164_878_i64,
                "model_name": "gateway-demo-model",
                "version": "1",
                "tags": [{"key": "framework", "value": "sklearn"}],
                "text": "A new version 1 of registered model 'gateway-demo-model' was created.",
                "mlflow": original,
            },
            "model": "gateway-demo-model",
            "missing": "",
            "target": "wrapped",
        }),
        "{}",
        reqs[0].text()
    );
    g.stop().await;
}

//! Configuration reload in a running gateway: a valid file replaces endpoints, targets, routes
//! and the admin token; a file with a mistake changes nothing.

mod common;

use std::path::Path;

use common::delivery::PATIENCE;
use common::fake::FakeTarget;
use common::*;

fn file(db: &Path, secret: &str, target: &str, token: &str, max_body: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
max_body = "{max_body}"
shutdown_grace = "5s"
header_read_timeout = "2s"

[store]
url = "sqlite://{db}"

[admin]
token = "{token}"

[[endpoints]]
name = "databricks"
path = "/hooks/databricks"
scheme = "databricks"
secrets = ["{secret}"]

[targets.ci]
kind = "http"
url = "{target}"

[[routes]]
to = ["ci"]
"#,
        db = db.display()
    )
}

fn event(version: u32, padding: usize) -> String {
    format!(
        r#"{{"event":"MODEL_VERSION_CREATED","model_name":"m","version":"{version}","padding":"{}"}}"#,
        "x".repeat(padding)
    )
}

async fn wait_reloads(g: &Gateway, result: &str, n: f64) {
    g.wait_metric(
        &format!("hookgate_config_reloads_total{{result=\"{result}\"}}"),
        n,
    )
    .await;
}

async fn admin_status(g: &Gateway, token: &str, event_id: &str) -> u16 {
    g.client
        .get(g.admin_url(&format!("/admin/events/{event_id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_reload_applies_a_valid_file_and_keeps_the_running_one_when_the_file_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hookgate.db");
    let path = dir.path().join("routes.toml");
    let (one, two) = (FakeTarget::start().await, FakeTarget::start().await);
    std::fs::write(
        &path,
        file(&db, "first-secret", &one.url("/one"), "admin-one", "256KiB"),
    )
    .unwrap();
    let (g, reload) = Gateway::start_reloadable(&path, db.clone()).await;
    // Both series are there before any reload.
    wait_reloads(&g, "ok", 0.0).await;
    wait_reloads(&g, "error", 0.0).await;

    let (s, v) = g.post_databricks_signed("first-secret", &event(1, 0)).await;
    assert_eq!(
        (s, v["targets"].clone()),
        (200, serde_json::json!(["ci"])),
        "{v}"
    );
    one.wait_for(1, PATIENCE).await;

    // New secret, target URL and admin token; a smaller body limit, which needs a restart.
    std::fs::write(
        &path,
        file(&db, "second-secret", &two.url("/two"), "admin-two", "1KiB"),
    )
    .unwrap();
    reload.send(()).await.unwrap();
    wait_reloads(&g, "ok", 1.0).await;

    let (s, v) = g.post_databricks_signed("first-secret", &event(2, 0)).await;
    assert_eq!(
        (s, v["reason"].as_str()),
        (401, Some("bad_signature")),
        "{v}"
    );
    let (s, v) = g
        .post_databricks_signed("second-secret", &event(3, 0))
        .await;
    assert_eq!(s, 200, "{v}");
    let id = v["event_id"].as_str().unwrap().to_string();
    let got = two.wait_for(1, PATIENCE).await;
    assert!(String::from_utf8_lossy(&got[0].body).contains(r#""version":"3""#));
    assert_eq!(one.requests().len(), 1, "the old target gets nothing new");
    assert_eq!(admin_status(&g, "admin-one", &id).await, 401);
    assert_eq!(admin_status(&g, "admin-two", &id).await, 200);
    // `[server]` is as it started: a 2 KiB body still fits.
    let (s, v) = g
        .post_databricks_signed("second-secret", &event(4, 2048))
        .await;
    assert_eq!(s, 200, "{v}");

    // A file with a mistake: nothing changes.
    std::fs::write(
        &path,
        file(
            &db,
            "third-secret",
            &one.url("/one"),
            "admin-three",
            "256KiB",
        ) + "\n[surprise]\nkey = 1\n",
    )
    .unwrap();
    reload.send(()).await.unwrap();
    wait_reloads(&g, "error", 1.0).await;
    let (s, v) = g
        .post_databricks_signed("second-secret", &event(5, 0))
        .await;
    assert_eq!(s, 200, "the running configuration still serves: {v}");
    let (s, _) = g.post_databricks_signed("third-secret", &event(6, 0)).await;
    assert_eq!(s, 401);
    two.wait_for(3, PATIENCE).await;
    assert_eq!(one.requests().len(), 1);
    assert_eq!(admin_status(&g, "admin-two", &id).await, 200);
    wait_reloads(&g, "ok", 1.0).await;
    g.stop().await;
}

#[tokio::test]
async fn a_reload_that_renames_a_target_dead_letters_its_pending_delivery_until_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hookgate.db");
    common::removed_target::a_reload_that_renames_a_target_dead_letters_its_pending_delivery(
        &|extra| base_config(&db, extra),
        db.clone(),
    )
    .await;
}

/// An attempt in flight when a reload removes its target keeps its lease, so the reload leaves
/// its delivery alone; the attempt fails and reschedules it, and once the old dispatcher has
/// finished that attempt the delivery becomes a dead letter all the same.
#[tokio::test]
async fn a_delivery_in_flight_during_the_reload_becomes_dead_when_its_attempt_ends() {
    use common::removed_target::{body, dead_metrics, not_configured, one_target};
    const SLOW: std::time::Duration = std::time::Duration::from_secs(3);
    let fake = FakeTarget::start().await;
    fake.default_answer(common::fake::Answer::status(503).delay(SLOW));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hookgate.db");
    let path = dir.path().join("routes.toml");
    let write = |target: &str| {
        std::fs::write(
            &path,
            base_config(&db, &one_target(target, &fake.url("/in"))),
        )
        .unwrap()
    };
    write("h");
    let (g, reload) = Gateway::start_reloadable(&path, db.clone()).await;
    let id = common::delivery::accepted_id(g.post_databricks(&body("in-flight")).await);
    fake.wait_for(1, PATIENCE).await;
    let started = std::time::Instant::now();

    write("h2");
    reload.send(()).await.unwrap();
    wait_reloads(&g, "ok", 1.0).await;
    assert!(
        started.elapsed() < SLOW,
        "the reload took longer than the attempt: this test shows nothing"
    );
    let (_, e) = g.admin_get(&format!("/admin/events/{id}")).await;
    let d = common::delivery::delivery(&e, "h");
    assert_eq!(d["status"], "pending", "leased, left to its attempt: {e:#}");
    assert_eq!(d["attempts"], 0);

    let e = common::delivery::wait_delivery(&g, &id, "h", "dead", 1).await;
    let d = common::delivery::delivery(&e, "h");
    assert_eq!(d["last_error"], not_configured("h").as_str());
    assert_eq!(d["attempts"], 1);
    let attempts = common::delivery::attempts(&e, "h");
    assert_eq!(
        (&attempts[0]["status_code"], &attempts[0]["result"]),
        (&serde_json::json!(503), &serde_json::json!("retry"))
    );
    // The counter goes up once the store has answered, a moment after the row is dead.
    g.wait_metric(
        r#"hookgate_deliveries_total{outcome="dead",target="h"}"#,
        1.0,
    )
    .await;
    assert_eq!(dead_metrics(&g, "h").await, (Some(1.0), Some(1.0)));
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn a_reload_with_a_rate_or_a_duration_out_of_range_keeps_the_running_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hookgate.db");
    let path = dir.path().join("routes.toml");
    let target = FakeTarget::start().await;
    let good = file(&db, "the-secret", &target.url("/hook"), "admin", "256KiB");
    std::fs::write(&path, &good).unwrap();
    let (g, reload) = Gateway::start_reloadable(&path, db.clone()).await;

    // A rate so small its pacing interval does not fit a Duration, then a timeout so long the
    // lease's end in milliseconds overflows: neither may reach the dispatcher.
    let too_slow = good.replace("kind = \"http\"\n", "kind = \"http\"\nrate = 1e-20\n");
    let too_long = format!("{good}\n[retry]\ntimeout = \"292271000y\"\n");
    for (n, bad) in [too_slow, too_long].iter().enumerate() {
        std::fs::write(&path, bad).unwrap();
        reload.send(()).await.unwrap();
        wait_reloads(&g, "error", n as f64 + 1.0).await;
        let (s, v) = g
            .post_databricks_signed("the-secret", &event(n as u32 + 1, 0))
            .await;
        assert_eq!(s, 200, "the running configuration still serves: {v}");
        // Delivered at once: the running target is not paced.
        target.wait_for(n + 1, PATIENCE).await;
    }
    // The same file with a rate in range reloads: what failed was the value, not its place.
    let paced = good.replace("kind = \"http\"\n", "kind = \"http\"\nrate = 1000.0\n");
    std::fs::write(&path, paced).unwrap();
    reload.send(()).await.unwrap();
    wait_reloads(&g, "ok", 1.0).await;
    g.stop().await;
}

/// A request that began before a reload finishes with the routes it started with, and may queue
/// a delivery to a target the reload removed: once the last such request is done, that delivery
/// is dead-lettered like the others, not left pending with no lane to claim it.
#[tokio::test]
async fn a_request_in_flight_during_the_reload_leaves_no_delivery_pending_for_ever() {
    use common::removed_target::{body, not_configured, one_target};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gone = FakeTarget::start().await;
    let stay = FakeTarget::start().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hookgate.db");
    let path = dir.path().join("routes.toml");
    let stay_target = format!(
        "[targets.stay]\nkind = \"http\"\nurl = \"{}\"\n\n[[routes]]\nname = \"all to stay\"\nto = [\"stay\"]\n",
        stay.url("/stay")
    );
    let with_gone = format!("{}\n{stay_target}", one_target("gone", &gone.url("/gone")));
    std::fs::write(&path, base_config(&db, &with_gone)).unwrap();
    let (g, reload) = Gateway::start_reloadable(&path, db.clone()).await;

    // The head and the start of the body now, the rest after the reload.
    let event = body("in-flight-request");
    let sig = hookgate::verify::databricks::sign(DATABRICKS_SECRET.as_bytes(), event.as_bytes());
    let head = format!(
        "POST /hooks/databricks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         X-Databricks-Signature: {sig}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        event.len()
    );
    let mut conn = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&event.as_bytes()[..10]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let without_gone = format!(
        "[retry]\ntimeout = \"10s\"\ninitial = \"1h\"\nmax_delay = \"1h\"\n\n{stay_target}"
    );
    std::fs::write(&path, base_config(&db, &without_gone)).unwrap();
    reload.send(()).await.unwrap();
    wait_reloads(&g, "ok", 1.0).await;
    conn.write_all(&event.as_bytes()[10..]).await.unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let json: serde_json::Value =
        serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(
        json["targets"],
        serde_json::json!(["gone", "stay"]),
        "routed as when it began: {json}"
    );
    let id = json["event_id"].as_str().unwrap();

    let e = common::delivery::wait_delivery(&g, id, "gone", "dead", 0).await;
    let d = common::delivery::delivery(&e, "gone");
    assert_eq!(d["last_error"], not_configured("gone").as_str());
    common::delivery::wait_delivery(&g, id, "stay", "delivered", 1).await;
    assert!(gone.requests().is_empty(), "the removed target got nothing");
    g.stop().await;
}

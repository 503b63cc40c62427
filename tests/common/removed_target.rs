//! What becomes of the pending deliveries of a target that a reload or a restart removed: end to
//! end scenarios that both stores run (`tests/reload.rs` and `tests/delivery.rs` on SQLite,
//! `tests/postgres.rs` on PostgreSQL). `config(extra)` is a whole configuration file on the
//! store under test, with `extra` (retry settings, targets and routes) added to it.

use std::path::PathBuf;

use super::delivery::{
    accepted_id, deliveries_cli, delivery, delivery_status, requests_for, wait_delivery,
};
use super::fake::{Answer, FakeTarget};
use super::{Gateway, metric};

/// An `http` target `name` at `url` that every event is routed to, retried only after an hour
/// (so a failed attempt leaves its delivery pending, unleased, for the rest of the test).
pub fn one_target(name: &str, url: &str) -> String {
    format!(
        r#"
[retry]
timeout = "10s"
initial = "1h"
max_delay = "1h"

[targets.{name}]
kind = "http"
url = "{url}"

[[routes]]
name = "all to {name}"
to = ["{name}"]
"#
    )
}

/// A Databricks event body of its own for each test.
pub fn body(model: &str) -> String {
    format!(r#"{{"event":"MODEL_VERSION_CREATED","model_name":"{model}","version":"1"}}"#)
}

/// The last error of a delivery whose target is not configured.
pub fn not_configured(target: &str) -> String {
    format!("target `{target}` is not in the configuration")
}

/// The dead-letter series of `target` in a `/metrics` scrape: the gauge read from the store,
/// and the count of deliveries that went dead in this process.
pub async fn dead_metrics(g: &Gateway, target: &str) -> (Option<f64>, Option<f64>) {
    let m = g.metrics().await;
    (
        metric(
            &m,
            &format!(r#"hookgate_dead_letters{{target="{target}"}}"#),
        ),
        metric(
            &m,
            &format!(r#"hookgate_deliveries_total{{outcome="dead",target="{target}"}}"#),
        ),
    )
}

/// A target renamed by a reload: its pending delivery becomes a dead letter at once, with the
/// reason, and `deliveries list --status dead` shows it; the target restored by another reload,
/// it stays dead until replayed, and the replay delivers it.
pub async fn a_reload_that_renames_a_target_dead_letters_its_pending_delivery(
    config: &(dyn Fn(&str) -> String + Sync),
    db: PathBuf,
) {
    let fake = FakeTarget::start().await;
    fake.default_answer(Answer::status(503));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.toml");
    let write = |target: &str| {
        std::fs::write(&path, config(&one_target(target, &fake.url("/in")))).unwrap();
    };
    write("h");
    let (g, reload) = Gateway::start_reloadable(&path, db).await;
    let id = accepted_id(g.post_databricks(&body("renamed-by-reload")).await);
    let e = wait_delivery(&g, &id, "h", "pending", 1).await;
    assert_eq!(super::delivery::attempts(&e, "h")[0]["status_code"], 503);

    write("h2");
    reload.send(()).await.unwrap();
    g.wait_metric(r#"hookgate_config_reloads_total{result="ok"}"#, 1.0)
        .await;
    // A reload is counted only once its dead letters are made: nothing to wait for.
    let (_, e) = g.admin_get(&format!("/admin/events/{id}")).await;
    let d = delivery(&e, "h");
    assert_eq!(d["status"], "dead", "{e:#}");
    assert_eq!(d["last_error"], not_configured("h").as_str());
    assert_eq!(dead_metrics(&g, "h").await, (Some(1.0), Some(1.0)));
    let m = g.metrics().await;
    assert_eq!(
        metric(&m, r#"hookgate_outbox_pending{target="h"}"#),
        Some(0.0)
    );
    let listed: serde_json::Value =
        serde_json::from_str(&deliveries_cli(&path, &["list", "--status", "dead", "--json"]).await)
            .unwrap();
    let rows = listed.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{listed:#}");
    assert_eq!(
        (
            &rows[0]["event_id"],
            &rows[0]["target"],
            &rows[0]["last_error"]
        ),
        (
            &serde_json::json!(id),
            &serde_json::json!("h"),
            &serde_json::json!(not_configured("h"))
        )
    );

    // Restored: nothing is sent until an operator replays it.
    fake.default_answer(Answer::status(200));
    write("h");
    reload.send(()).await.unwrap();
    g.wait_metric(r#"hookgate_config_reloads_total{result="ok"}"#, 2.0)
        .await;
    assert_eq!(delivery_status(&g, &id, "h").await, "dead");
    let stdout = deliveries_cli(&path, &["replay", "--dead", "--target", "h"]).await;
    assert_eq!(stdout.trim(), "replayed 1 deliveries");
    let e = wait_delivery(&g, &id, "h", "delivered", 2).await;
    assert_eq!(
        delivery(&e, "h")["attempts"],
        1,
        "a replay starts a new cycle"
    );
    let sent = requests_for(&fake, &id);
    assert_eq!(sent.len(), 2, "the failed attempt and the replay");
    assert_eq!(sent[1].body, body("renamed-by-reload").as_bytes());
    g.stop().await;
}

/// A gateway restarted without a target: the pending delivery is dead by the time it is ready,
/// listed by the admin API; restarted with the target back, it is still dead (nothing sent)
/// until replayed, and the replay delivers it.
pub async fn a_restart_without_a_target_dead_letters_its_pending_delivery(
    config: &(dyn Fn(&str) -> String + Sync),
    db: PathBuf,
) {
    let fake = FakeTarget::start().await;
    fake.default_answer(Answer::status(503));
    let with_target = |name: &str| config(&one_target(name, &fake.url("/in")));
    let g = Gateway::start_with(&with_target("t"), db.clone()).await;
    let id = accepted_id(g.post_databricks(&body("renamed-while-stopped")).await);
    wait_delivery(&g, &id, "t", "pending", 1).await;
    g.stop().await;

    let g = Gateway::start_with(&with_target("u"), db.clone()).await;
    let (_, e) = g.admin_get(&format!("/admin/events/{id}")).await;
    let d = delivery(&e, "t");
    assert_eq!(d["status"], "dead", "{e:#}");
    assert_eq!(d["last_error"], not_configured("t").as_str());
    assert_eq!(d["attempts"], 1, "the attempt made before stays counted");
    assert_eq!(dead_metrics(&g, "t").await, (Some(1.0), Some(1.0)));
    let (s, listed) = g.admin_get("/admin/deliveries?status=dead&target=t").await;
    assert_eq!(s, 200, "{listed}");
    assert_eq!(listed["deliveries"][0]["event_id"], id.as_str(), "{listed}");
    // Replaying every dead letter leaves it: pending again, no lane of `u`'s would take it.
    let (s, r) = g.admin_post("/admin/deliveries/replay?status=dead").await;
    assert_eq!((s, &r["replayed"]), (200, &serde_json::json!(0)), "{r}");
    let d = delivery(&e, "t")["id"].as_i64().unwrap();
    let (s, r) = g.admin_post(&format!("/admin/deliveries/{d}/replay")).await;
    assert_eq!((s, &r["replayed"]), (200, &serde_json::json!(0)), "{r}");
    assert_eq!(delivery_status(&g, &id, "t").await, "dead");
    g.stop().await;

    fake.default_answer(Answer::status(200));
    let g = Gateway::start_with(&with_target("t"), db).await;
    assert_eq!(delivery_status(&g, &id, "t").await, "dead");
    assert_eq!(fake.requests().len(), 1, "nothing sent before the replay");
    let (s, r) = g
        .admin_post("/admin/deliveries/replay?status=dead&target=t")
        .await;
    assert_eq!((s, &r["replayed"]), (200, &serde_json::json!(1)), "{r}");
    wait_delivery(&g, &id, "t", "delivered", 2).await;
    assert_eq!(requests_for(&fake, &id).len(), 2);
    // Nothing became dead in this process.
    assert_eq!(dead_metrics(&g, "t").await, (Some(0.0), None));
    g.stop().await;
}

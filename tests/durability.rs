//! Durability: an event acknowledged with 200 survives SIGKILL of the gateway process.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// The gateway binary running `serve` on ephemeral ports; addresses read from its log.
struct Proc {
    child: Child,
    addr: SocketAddr,
}

fn spawn(config: &Path) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["serve", "--config"])
        .arg(config)
        .env("HOOKGATE_LOG", "info")
        .env_remove("HOOKGATE_LOG_FORMAT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // Reads the log on a thread (and keeps draining it, so the child never blocks on a full
    // pipe); the test waits for the "listening" line with a deadline.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if let Some(rest) = line.split("listen=").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap().to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("gateway logged its listen address")
        .parse()
        .unwrap();
    Proc { child, addr }
}

/// A temporary directory with a store path and a configuration file (the base one) for it.
fn store_and_config() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hookgate.db");
    let cfg = dir.path().join("routes.toml");
    std::fs::write(&cfg, base_config(&db, "")).unwrap();
    (dir, db, cfg)
}

async fn post(addr: SocketAddr, body: &str) -> (u16, serde_json::Value) {
    post_databricks_to(
        &format!("http://{addr}/hooks/databricks"),
        DATABRICKS_SECRET,
        body,
    )
    .await
}

#[tokio::test]
async fn an_acknowledged_event_survives_sigkill() {
    let (_dir, db, cfg) = store_and_config();

    let mut p = spawn(&cfg);
    let mut ids = Vec::new();
    for i in 0..20 {
        let body = format!(
            r#"{{"event":"MODEL_VERSION_CREATED","model_name":"kill-test","version":"{i}"}}"#
        );
        let (s, b) = post(p.addr, &body).await;
        assert_eq!((s, b["status"].as_str()), (200, Some("accepted")));
        ids.push(b["event_id"].as_str().unwrap().to_string());
    }
    // SIGKILL right after the last 200: no chance to flush anything.
    p.child.kill().unwrap();
    p.child.wait().unwrap();

    assert_eq!(
        stored_event_ids(&db).await,
        ids,
        "every acknowledged event is on disk"
    );

    let mut p = spawn(&cfg);
    let body = r#"{"event":"MODEL_VERSION_CREATED","model_name":"kill-test","version":"19"}"#;
    let (s, b) = post(p.addr, body).await;
    assert_eq!(
        (s, b["status"].as_str()),
        (200, Some("duplicate")),
        "still known after restart"
    );
    assert_eq!(count_rows(&db, "events").await, 20);
    p.child.kill().unwrap();
    p.child.wait().unwrap();
}

#[tokio::test]
async fn sigterm_drains_and_exits_cleanly() {
    let (_dir, db, cfg) = store_and_config();
    let mut p = spawn(&cfg);
    let (s, _) = post(p.addr, r#"{"event":"COMMENT_CREATED","model_name":"m"}"#).await;
    assert_eq!(s, 200);
    let pid = p.child.id().to_string();
    let st = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(st.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = p.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(count_rows(&db, "events").await, 1);
}

#[tokio::test]
async fn sighup_reloads_the_file_and_keeps_serving() {
    let (_dir, db, cfg) = store_and_config();
    let mut p = spawn(&cfg);
    let body = r#"{"event":"COMMENT_CREATED","model_name":"m"}"#;
    let sig = hookgate::verify::databricks::sign(b"ci-secret", body.as_bytes());
    let post_ci = || {
        client()
            .post(format!("http://{}/hooks/ci", p.addr))
            .header("X-Databricks-Signature", &sig)
            .body(body)
            .send()
    };
    assert_eq!(post_ci().await.unwrap().status(), 404);

    let extra = r#"
[[endpoints]]
name = "ci"
path = "/hooks/ci"
scheme = "databricks"
secrets = ["ci-secret"]
"#;
    std::fs::write(&cfg, base_config(&db, extra)).unwrap();
    let pid = p.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let status = post_ci().await.unwrap().status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 404, "before the reload lands");
        assert!(std::time::Instant::now() < deadline, "never reloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(p.child.try_wait().unwrap().is_none(), "still running");
    let (s, _) = post(p.addr, r#"{"event":"COMMENT_CREATED","model_name":"n"}"#).await;
    assert_eq!(s, 200, "the endpoints it had still answer");
    assert_eq!(count_rows(&db, "events").await, 2);
    p.child.kill().unwrap();
    p.child.wait().unwrap();
}

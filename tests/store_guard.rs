//! The SQLite store guarding what it acknowledges: one gateway per file, no 200 once the
//! database file is gone, and `/readyz` saying so when the store cannot commit.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use common::delivery::hookgate;
use common::serve::Served;
use common::*;
use serde_json::Value;

/// `hookgate serve` on the base configuration with the store `db`, in `dir`.
async fn serve(dir: &Path, db: &Path) -> Result<Served, common::delivery::Run> {
    let cfg = dir.join("routes.toml");
    std::fs::write(&cfg, base_config(db, "")).unwrap();
    Served::start(&[OsStr::new("--config"), cfg.as_os_str()], &[], dir).await
}

async fn post(served: &Served, model: &str) -> (u16, Value) {
    let body =
        format!(r#"{{"event":"MODEL_VERSION_CREATED","model_name":"{model}","version":"1"}}"#);
    post_databricks_to(&served.url("/hooks/databricks"), DATABRICKS_SECRET, &body).await
}

async fn readyz(served: &Served) -> (u16, String) {
    let r = client()
        .get(served.admin_url("/readyz"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// A gateway on a fresh store that has taken one event and says it is ready: the directory
/// (kept for the test's length), the store file and the gateway.
async fn serving_and_ready() -> (tempfile::TempDir, PathBuf, Served) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hookgate.db");
    let served = serve(dir.path(), &db).await.expect("starts");
    let (s, answer) = post(&served, "before").await;
    assert_eq!(s, 200, "{answer}");
    assert_eq!(readyz(&served).await.0, 200);
    (dir, db, served)
}

#[tokio::test]
async fn a_second_gateway_on_the_same_file_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hookgate.db");
    let first = serve(dir.path(), &db).await.expect("the first one starts");
    let (s, answer) = post(&first, "one").await;
    assert_eq!(s, 200, "{answer}");

    // A second one would release the first one's leases and send its deliveries again.
    let other = tempfile::tempdir().unwrap();
    let Err(out) = serve(other.path(), &db).await else {
        panic!("a second gateway started on {}", db.display());
    };
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("in use by another hookgate serve"),
        "{}",
        out.stderr
    );
    // The CLI reads and replays beside a running gateway, as documented.
    let cfg = other.path().join("routes.toml");
    let run = hookgate([
        OsStr::new("deliveries"),
        OsStr::new("list"),
        OsStr::new("--config"),
        cfg.as_os_str(),
    ])
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    // The first one is untouched.
    let (s, answer) = post(&first, "two").await;
    assert_eq!(s, 200, "{answer}");
    assert_eq!(first.stop().await.code, 0);

    // Once it has stopped, the file is free again.
    let again = serve(other.path(), &db)
        .await
        .expect("starts once the first stopped");
    assert_eq!(again.stop().await.code, 0);
}

#[tokio::test]
async fn no_200_once_the_database_file_is_gone_and_no_silent_fresh_start() {
    let (dir, db, served) = serving_and_ready().await;

    // Someone removes the file: what is written now reaches no file a restart would open.
    std::fs::remove_file(&db).unwrap();
    let (s, answer) = post(&served, "after").await;
    assert_eq!(s, 503, "{answer}");
    assert_eq!(answer["reason"], "store_unavailable", "{answer}");
    let (s, text) = readyz(&served).await;
    assert_eq!(s, 503, "{text}");
    let log = served.stderr();
    assert!(
        log.contains("hookgate.db is no longer"),
        "the log says why: {log}"
    );

    // Killed (a clean stop would remove the WAL): its WAL is left without a database, and
    // starting on an empty store would hide the loss.
    served.kill().await;
    let mut wal = db.clone().into_os_string();
    wal.push("-wal");
    assert!(Path::new(&wal).exists(), "a WAL was left");
    let Err(out) = serve(dir.path(), &db).await else {
        panic!("started on an empty store beside a stray WAL");
    };
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("hookgate.db-wal exists but"),
        "{}",
        out.stderr
    );
    assert!(!db.exists(), "no new database was made");
}

#[tokio::test]
async fn readyz_turns_503_while_the_store_cannot_commit() {
    let (_dir, db, served) = serving_and_ready().await;

    // Without its WAL file no commit can be made durable: every event gets 503, and a load
    // balancer should hear it from /readyz too, not only the senders.
    let mut wal = db.clone().into_os_string();
    wal.push("-wal");
    std::fs::remove_file(&wal).unwrap();
    let (s, answer) = post(&served, "after").await;
    assert_eq!(s, 503, "{answer}");
    let (s, text) = readyz(&served).await;
    assert_eq!(s, 503, "{text}");
    assert!(text.contains("store"), "{text}");
    served.stop().await;
}

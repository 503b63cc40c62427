//! HTTPS on the ingress (`server.tls`): both protocols over TLS, the admin listener in the clear,
//! plain HTTP and stalled handshakes on the HTTPS port, certificates renewed by a reload or picked
//! up by the watch, and the expiry gauge.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// When the fixtures' leaf certificates expire (`openssl x509 -noout -enddate`).
const SERVER_NOT_AFTER: f64 = 4_949_802_060.0;
const RENEWED_NOT_AFTER: f64 = 4_958_442_060.0;
const EXPIRY: &str = "hookgate_tls_certificate_expiry_timestamp_seconds";

/// `server.pem` and `server.key` copied into `dir` as `cert.pem` and `key.pem`, for a test to
/// replace as a renewal would.
fn renewable_pair(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::copy(tls_fixture("server.pem"), &cert).unwrap();
    std::fs::copy(tls_fixture("server.key"), &key).unwrap();
    (cert, key)
}

/// The leaf certificate (the first in the chain) of a PEM file.
fn leaf(pem: &Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(pem)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

fn event(version: u32) -> String {
    format!(r#"{{"event":"MODEL_VERSION_CREATED","model_name":"m","version":"{version}"}}"#)
}

/// Post a signed event on a new connection and check it is accepted; the answer's protocol and
/// the leaf certificate the gateway presented.
async fn post_fresh(
    g: &Gateway,
    builder: reqwest::ClientBuilder,
    body: &str,
) -> (reqwest::Version, Vec<u8>) {
    let client = builder.pool_max_idle_per_host(0).build().unwrap();
    let sig = hookgate::verify::databricks::sign(DATABRICKS_SECRET.as_bytes(), body.as_bytes());
    let r = client
        .post(g.url("/hooks/databricks"))
        .header("X-Databricks-Signature", sig)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let presented = r
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("a TLS connection")
        .to_vec();
    let version = r.version();
    let status = r.status().as_u16();
    let answer: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (status, &answer["status"]),
        (200, &"accepted".into()),
        "{answer}"
    );
    (version, presented)
}

async fn handshake_failures(g: &Gateway) -> f64 {
    metric(&g.metrics().await, "hookgate_tls_handshake_failures_total").unwrap()
}

#[tokio::test]
async fn https_ingress_speaks_h2_and_http1_and_the_admin_listener_stays_plain() {
    let cert = tls_fixture("server.pem");
    let g = Gateway::start(&tls_section(&cert, &tls_fixture("server.key"))).await;
    assert!(g.url("/").starts_with("https://127.0.0.1:"));

    let (version, presented) = post_fresh(&g, client_for_test_ca(), &event(1)).await;
    assert_eq!(version, reqwest::Version::HTTP_2);
    assert_eq!(presented, leaf(&cert));
    let (version, _) = post_fresh(&g, client_for_test_ca().http1_only(), &event(2)).await;
    assert_eq!(version, reqwest::Version::HTTP_11);
    // TLS 1.2 too, for senders that stop there.
    let tls12 = client_for_test_ca().tls_version_max(reqwest::tls::Version::TLS_1_2);
    post_fresh(&g, tls12, &event(4)).await;
    assert_eq!(count_rows(&g.db, "events").await, 3);

    // `metrics()` reads the admin listener over plain HTTP.
    assert_eq!(handshake_failures(&g).await, 0.0);
    assert_eq!(metric(&g.metrics().await, EXPIRY), Some(SERVER_NOT_AFTER));
    // A client that does not trust the certificate gets no answer, and nothing is stored.
    let untrusting = hookgate::targets::client_builder().build().unwrap();
    let sig = hookgate::verify::databricks::sign(DATABRICKS_SECRET.as_bytes(), event(3).as_bytes());
    let refused = untrusting
        .post(g.url("/hooks/databricks"))
        .header("X-Databricks-Signature", sig)
        .body(event(3))
        .send()
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(count_rows(&g.db, "events").await, 3);
    assert_eq!(handshake_failures(&g).await, 1.0);
    g.stop().await;
}

#[tokio::test]
async fn plain_http_is_told_to_use_https_and_a_stalled_handshake_is_closed() {
    let g = Gateway::start(&tls_section(
        &tls_fixture("server.pem"),
        &tls_fixture("server.key"),
    ))
    .await;

    // A sender configured with http:// for this gateway.
    let body = event(1);
    let sig = hookgate::verify::databricks::sign(DATABRICKS_SECRET.as_bytes(), body.as_bytes());
    let r = client()
        .post(format!("http://{}/hooks/databricks", g.addr))
        .header("X-Databricks-Signature", sig)
        .body(body)
        .send()
        .await
        .expect("an HTTP answer, not a TLS alert");
    assert_eq!(r.status(), 400);
    let answer: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        answer,
        serde_json::json!({"status": "error", "reason": "https_required"})
    );
    assert_eq!(count_rows(&g.db, "events").await, 0);
    assert_eq!(handshake_failures(&g).await, 1.0);

    // One byte of a TLS record, then nothing: closed after the header timeout (2 s here).
    let started = Instant::now();
    let mut stalled = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    stalled.write_all(&[0x16]).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), stalled.read(&mut buf))
        .await
        .expect("the gateway closes a stalled handshake");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(started.elapsed() >= Duration::from_millis(1900));
    assert_eq!(handshake_failures(&g).await, 2.0);
    g.stop().await;
}

#[tokio::test]
async fn a_reload_serves_renewed_certificate_files_to_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = renewable_pair(dir.path());
    let db = dir.path().join("hookgate.db");
    let path = dir.path().join("routes.toml");
    std::fs::write(&path, base_config(&db, &tls_section(&cert, &key))).unwrap();
    let (g, reload) = Gateway::start_reloadable(&path, db).await;

    let (_, presented) = post_fresh(&g, client_for_test_ca(), &event(1)).await;
    assert_eq!(presented, leaf(&tls_fixture("server.pem")));

    // Renewed in place, as cert-manager or certbot do; the same reload changes `watch`, which
    // waits for a restart, but the files are still read again.
    std::fs::copy(tls_fixture("renewed.pem"), &cert).unwrap();
    std::fs::copy(tls_fixture("renewed.key"), &key).unwrap();
    let watched = format!("{}watch = \"1h\"\n", tls_section(&cert, &key));
    std::fs::write(&path, base_config(g.db.as_path(), &watched)).unwrap();
    reload.send(()).await.unwrap();
    g.wait_metric("hookgate_config_reloads_total{result=\"ok\"}", 1.0)
        .await;
    let (_, presented) = post_fresh(&g, client_for_test_ca(), &event(2)).await;
    assert_eq!(presented, leaf(&tls_fixture("renewed.pem")));
    assert_eq!(metric(&g.metrics().await, EXPIRY), Some(RENEWED_NOT_AFTER));

    // A key that does not belong to the certificate: the reload is refused, the renewed pair
    // stays in service.
    std::fs::copy(tls_fixture("other.key"), &key).unwrap();
    reload.send(()).await.unwrap();
    g.wait_metric("hookgate_config_reloads_total{result=\"error\"}", 1.0)
        .await;
    let (_, presented) = post_fresh(&g, client_for_test_ca(), &event(3)).await;
    assert_eq!(presented, leaf(&tls_fixture("renewed.pem")));
    assert_eq!(metric(&g.metrics().await, EXPIRY), Some(RENEWED_NOT_AFTER));
    assert_eq!(count_rows(&g.db, "events").await, 3);
    g.stop().await;
}

#[tokio::test]
async fn renewed_files_are_served_without_a_reload_once_they_load() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = renewable_pair(dir.path());
    let g = Gateway::start(&format!("{}watch = \"100ms\"\n", tls_section(&cert, &key))).await;
    let sent = std::cell::Cell::new(0);
    let presented = async || {
        sent.set(sent.get() + 1);
        post_fresh(&g, client_for_test_ca(), &event(sent.get()))
            .await
            .1
    };
    assert_eq!(presented().await, leaf(&tls_fixture("server.pem")));

    // A renewal half done: the new certificate with the old key. It does not load, so the
    // running pair stays (ten looks at the files later).
    std::fs::copy(tls_fixture("renewed.pem"), &cert).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(presented().await, leaf(&tls_fixture("server.pem")));
    assert_eq!(metric(&g.metrics().await, EXPIRY), Some(SERVER_NOT_AFTER));

    // Done: served from the next look on, with no signal.
    std::fs::copy(tls_fixture("renewed.key"), &key).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while presented().await != leaf(&tls_fixture("renewed.pem")) {
        assert!(
            Instant::now() < deadline,
            "the renewed pair was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&g.metrics().await, EXPIRY), Some(RENEWED_NOT_AFTER));
    g.wait_metric("hookgate_config_reloads_total{result=\"ok\"}", 0.0)
        .await;
    g.stop().await;
}

#[tokio::test]
async fn without_tls_there_is_no_expiry_series_to_alert_on() {
    let g = Gateway::start("").await;
    let text = g.metrics().await;
    assert!(
        text.contains("hookgate_tls_handshake_failures_total 0"),
        "{text}"
    );
    assert_eq!(metric(&text, EXPIRY), None);
    g.stop().await;
}

//! Ingress end to end: the real gateway on 127.0.0.1:0 with a real SQLite file per test.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn reason(v: &Value) -> &str {
    v["reason"].as_str().unwrap_or("")
}

#[tokio::test]
async fn an_answer_has_the_same_keys_whether_or_not_the_event_names_a_model() {
    let g = Gateway::start("").await;
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let want = ["event", "event_id", "model", "status", "targets"];
    let (status, with) = g
        .post_databricks(r#"{"event":"MODEL_VERSION_CREATED","model_name":"m","version":"1"}"#)
        .await;
    assert_eq!(
        (status, keys(&with)),
        (200, want.map(String::from).to_vec())
    );
    assert_eq!(with["model"], "m");
    let (status, without) = g.post_databricks(r#"{"event":"SOMETHING_NEW"}"#).await;
    assert_eq!(
        (status, keys(&without)),
        (200, want.map(String::from).to_vec())
    );
    assert!(without["model"].is_null(), "{without}");
    // A repeat is answered with the same keys too.
    let (status, again) = g.post_databricks(r#"{"event":"SOMETHING_NEW"}"#).await;
    assert_eq!(again["status"], "duplicate");
    assert_eq!(
        (status, keys(&again)),
        (200, want.map(String::from).to_vec())
    );
    g.stop().await;
}

#[tokio::test]
async fn every_databricks_vector_gets_its_outcome() {
    let g = Gateway::start("").await;
    let mut accepted = 0;
    for v in load_vectors("databricks") {
        let before = count_rows(&g.db, "events").await;
        let (status, body) = g.send_vector(&v).await;
        let after = count_rows(&g.db, "events").await;
        let want = v.expected["status"].as_str().unwrap();
        if want.starts_with("accepted") {
            assert_eq!(status, 200, "{}: {body}", v.file);
            assert_eq!(body["status"], "accepted", "{}", v.file);
            assert_eq!(after, before + 1, "{}: stored once", v.file);
            if let Some(e) = v.expected.get("event") {
                assert_eq!(&body["event"], e, "{}", v.file);
                assert_eq!(&body["model"], &v.expected["model_name"], "{}", v.file);
            }
            // The event id of a Databricks event is the SHA-256 of the raw body.
            let id = body["event_id"].as_str().unwrap();
            assert_eq!(id.len(), 64);
            assert!(stored_event_ids(&g.db).await.contains(&id.to_string()));
            accepted += 1;
        } else {
            let code: u16 = if want.contains("(400)") { 400 } else { 401 };
            assert_eq!(status, code, "{}: {want}: {body}", v.file);
            assert_eq!(
                after, before,
                "{}: a rejected request stores nothing",
                v.file
            );
            assert_eq!(body["status"], "rejected", "{}", v.file);
            let expected_reason = match v.file.as_str() {
                "bad-json-signed.json" => "invalid_json",
                "bad-missing-signature.json" => "missing_signature",
                "bad-signature-not-hex.json" | "bad-signature-truncated.json" => {
                    "malformed_signature"
                }
                _ => "bad_signature",
            };
            assert_eq!(reason(&body), expected_reason, "{}", v.file);
        }
    }
    assert_eq!(accepted, 14, "12 documented events + 2 accepted edge cases");
    let m = g.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"hookgate_requests_total{endpoint="databricks",status="200"}"#
        ),
        Some(14.0)
    );
    assert_eq!(
        metric(
            &m,
            r#"hookgate_verification_failures_total{endpoint="databricks",reason="bad_signature"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        metric(
            &m,
            r#"hookgate_events_total{endpoint="databricks",event="MODEL_VERSION_ALIAS_SET"}"#
        ),
        Some(1.0),
        "unknown event names are kept and counted"
    );
    g.stop().await;
}

#[tokio::test]
async fn every_mlflow_vector_gets_its_outcome() {
    let g = Gateway::start("").await;
    let mut accepted = 0;
    for v in load_vectors("mlflow") {
        let before = count_rows(&g.db, "events").await;
        // Each file names the secret its receiver has; `unsigned.*` files have none, and go to
        // an endpoint that does (which must refuse them).
        let path = match v.secret.as_str() {
            MLFLOW_SECRET | "" => "/mlflow/webhook",
            "not-the-secret" => "/mlflow/other-secret",
            other => panic!("{}: no endpoint for secret {other:?}", v.file),
        };
        let (status, body) = g.send_vector_to(&v, path).await;
        let after = count_rows(&g.db, "events").await;
        if v.expected["signature_valid"] == true {
            assert_eq!(status, 200, "{}: {body}", v.file);
            assert_eq!(body["status"], "accepted", "{}", v.file);
            assert_eq!(
                body["event_id"], v.expected["delivery_id"],
                "{}: the delivery id is the event id",
                v.file
            );
            let name = format!(
                "{}.{}",
                v.expected["entity"].as_str().unwrap(),
                v.expected["action"].as_str().unwrap()
            );
            assert_eq!(body["event"], name.as_str(), "{}", v.file);
            assert_eq!(after, before + 1, "{}", v.file);
            accepted += 1;
        } else {
            assert_eq!(status, 401, "{}: {body}", v.file);
            assert_eq!(after, before, "{}: nothing stored", v.file);
            let want = if v.expected["signature_present"] == false {
                "missing_signature"
            } else if v.file == "bad-signature-version.json" {
                "unsupported_signature_version"
            } else {
                "bad_signature"
            };
            assert_eq!(reason(&body), want, "{}", v.file);
        }
    }
    assert_eq!(accepted, 21, "every signed live and test delivery");
    g.stop().await;
}

#[tokio::test]
async fn mlflow_timestamps_outside_the_tolerance_are_replays() {
    let g = Gateway::start("").await;
    let v = load_vectors("mlflow")
        .into_iter()
        .find(|v| v.file == "model_version.created.json")
        .unwrap();
    // The captured timestamp is old: with the default 5 minute tolerance it is a replay.
    let (status, body) = g.send_vector_to(&v, "/mlflow/fresh").await;
    assert_eq!((status, reason(&body)), (401, "stale_timestamp"));
    assert_eq!(count_rows(&g.db, "events").await, 0);
    // Re-signed now, the same delivery is fresh and accepted.
    let fresh = resign_mlflow_now(&v);
    let (status, body) = g.send_vector_to(&fresh, "/mlflow/fresh").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("accepted")),
        "{body}"
    );
    g.stop().await;
}

#[tokio::test]
async fn a_repeated_delivery_is_a_duplicate_and_stored_once() {
    let g = Gateway::start("").await;
    let v = load_vectors("databricks")
        .into_iter()
        .find(|v| v.file == "COMMENT_CREATED.json")
        .unwrap();
    let (s1, b1) = g.send_vector(&v).await;
    let (s2, b2) = g.send_vector(&v).await;
    assert_eq!((s1, b1["status"].as_str()), (200, Some("accepted")));
    assert_eq!((s2, b2["status"].as_str()), (200, Some("duplicate")));
    assert_eq!(b1["event_id"], b2["event_id"]);
    assert_eq!(count_rows(&g.db, "events").await, 1);

    // MLflow re-sends the identical request on 5xx: same delivery id → duplicate.
    let m = load_vectors("mlflow")
        .into_iter()
        .find(|v| v.file == "model_version_alias.created.json")
        .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (_, b) = g.send_vector(&m).await;
        statuses.push(b["status"].as_str().unwrap().to_string());
    }
    assert_eq!(statuses, ["accepted", "duplicate", "duplicate"]);
    assert_eq!(count_rows(&g.db, "events").await, 2);
    g.stop().await;
}

#[tokio::test]
async fn concurrent_identical_deliveries_store_one_event() {
    let g = Gateway::start("").await;
    let body = r#"{"event":"MODEL_VERSION_CREATED","model_name":"race","version":"1","event_timestamp":1}"#;
    let futs: Vec<_> = (0..16).map(|_| g.post_databricks(body)).collect();
    let results = futures_util::future::join_all(futs).await;
    let accepted = results
        .iter()
        .filter(|(_, b)| b["status"] == "accepted")
        .count();
    let duplicates = results
        .iter()
        .filter(|(_, b)| b["status"] == "duplicate")
        .count();
    assert_eq!((accepted, duplicates), (1, 15), "{results:?}");
    assert_eq!(count_rows(&g.db, "events").await, 1);
    g.stop().await;
}

#[tokio::test]
async fn concurrent_distinct_deliveries_are_all_stored() {
    let g = Gateway::start("").await;
    let bodies: Vec<String> = (0..200)
        .map(|i| {
            format!(r#"{{"event":"MODEL_VERSION_CREATED","model_name":"m{i}","version":"{i}"}}"#)
        })
        .collect();
    let futs: Vec<_> = bodies.iter().map(|b| g.post_databricks(b)).collect();
    let results = futures_util::future::join_all(futs).await;
    assert!(
        results
            .iter()
            .all(|(s, b)| *s == 200 && b["status"] == "accepted")
    );
    assert_eq!(count_rows(&g.db, "events").await, 200);
    let m = g.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"hookgate_events_total{endpoint="databricks",event="MODEL_VERSION_CREATED"}"#
        ),
        Some(200.0)
    );
    g.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_answer_and_changes_nothing() {
    let g = Gateway::start("").await;
    let v = load_vectors("databricks")
        .into_iter()
        .find(|v| v.file == "MODEL_VERSION_CREATED.json")
        .unwrap();
    let sig = v
        .headers
        .iter()
        .find(|(k, _)| k == "X-Databricks-Signature")
        .unwrap()
        .1
        .clone();
    let body = v.body.as_bytes().to_vec();

    // Wrong method.
    let r = g
        .client
        .get(g.url("/hooks/databricks"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    // Unknown path.
    let (s, b) = g
        .post_raw(
            "POST",
            "/hooks/nope",
            &[("X-Databricks-Signature", &sig)],
            body.clone(),
        )
        .await;
    assert_eq!((s, reason(&b)), (404, "unknown_path"));
    // 10 MB body, declared: refused before it is read.
    let big = vec![b'x'; 10 * 1024 * 1024];
    let (s, b) = g
        .post_raw(
            "POST",
            "/hooks/databricks",
            &[("X-Databricks-Signature", &sig)],
            big.clone(),
        )
        .await;
    assert_eq!((s, reason(&b)), (413, "body_too_large"));
    // 10 MB body, chunked (no Content-Length): cut off at the limit.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let stream = futures_util::stream::iter(chunks);
    let r = g
        .client
        .post(g.url("/hooks/databricks"))
        .header("X-Databricks-Signature", &sig)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    match r {
        Ok(r) => assert_eq!(r.status(), 413),
        // The server may close the connection while the client is still sending.
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }
    // Missing signature header.
    let (s, b) = g
        .post_raw("POST", "/hooks/databricks", &[], body.clone())
        .await;
    assert_eq!((s, reason(&b)), (401, "missing_signature"));
    // Garbage signature encodings.
    for garbage in [
        "",
        "zz",
        "not hex at all",
        &"g".repeat(64),
        &sig[..63],
        &format!("{sig}00"),
        "sha256=abc",
    ] {
        let (s, b) = g
            .post_raw(
                "POST",
                "/hooks/databricks",
                &[("X-Databricks-Signature", garbage)],
                body.clone(),
            )
            .await;
        assert_eq!(s, 401, "{garbage:?}: {b}");
        assert!(
            ["malformed_signature", "bad_signature"].contains(&reason(&b)),
            "{garbage:?}: {b}"
        );
    }
    // Non-UTF-8 header bytes.
    let r = g
        .client
        .post(g.url("/hooks/databricks"))
        .header(
            "X-Databricks-Signature",
            reqwest::header::HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A validly signed body that is not JSON.
    let not_json = b"event=MODEL_VERSION_CREATED".to_vec();
    let s2 = hookgate::verify::databricks::sign(DATABRICKS_SECRET.as_bytes(), &not_json);
    let (s, b) = g
        .post_raw(
            "POST",
            "/hooks/databricks",
            &[("X-Databricks-Signature", &s2)],
            not_json,
        )
        .await;
    assert_eq!((s, reason(&b)), (400, "invalid_json"));
    // A JSON array is not an event either.
    let arr = b"[1,2,3]".to_vec();
    let s3 = hookgate::verify::databricks::sign(DATABRICKS_SECRET.as_bytes(), &arr);
    let (s, _) = g
        .post_raw(
            "POST",
            "/hooks/databricks",
            &[("X-Databricks-Signature", &s3)],
            arr,
        )
        .await;
    assert_eq!(s, 400);
    // MLflow: missing delivery id / timestamp, garbage signature.
    let (s, b) = g
        .post_raw(
            "POST",
            "/mlflow/webhook",
            &[("X-MLflow-Signature", "v1,AAAA")],
            body.clone(),
        )
        .await;
    assert_eq!(s, 401, "{b}");
    let (s, b) = g
        .post_raw(
            "POST",
            "/mlflow/webhook",
            &[
                ("X-MLflow-Delivery-Id", "d1"),
                ("X-MLflow-Timestamp", "yesterday"),
                ("X-MLflow-Signature", "v1,AAAA"),
            ],
            body.clone(),
        )
        .await;
    assert_eq!((s, reason(&b)), (401, "malformed_timestamp"));
    let (s, b) = g
        .post_raw(
            "POST",
            "/mlflow/webhook",
            &[
                ("X-MLflow-Delivery-Id", "d1"),
                ("X-MLflow-Timestamp", "1795617164"),
                ("X-MLflow-Signature", "v1,%%%not-base64%%%"),
            ],
            body.clone(),
        )
        .await;
    assert_eq!((s, reason(&b)), (401, "malformed_signature"));

    assert_eq!(
        count_rows(&g.db, "events").await,
        0,
        "no bad request stored anything"
    );
    // The gateway is still healthy after all of that.
    let (s, b) = g.send_vector(&v).await;
    assert_eq!((s, b["status"].as_str()), (200, Some("accepted")));
    g.stop().await;
}

/// Connects, sends `bytes` and reads until the server ends the connection: what it sent and how
/// the reading ended, or `None` if the connection was still open after `limit`.
async fn send_raw(
    addr: std::net::SocketAddr,
    bytes: &[u8],
    limit: Duration,
) -> Option<(Vec<u8>, std::io::Result<usize>)> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(limit, s.read_to_end(&mut got))
        .await
        .ok()?;
    Some((got, read))
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    let g = Gateway::start("").await;
    // Connected, but not a byte sent: closed after header_read_timeout (2 s here), so silent
    // sockets cannot hold every connection slot.
    let r = send_raw(g.addr, b"", Duration::from_secs(6)).await;
    assert!(r.is_some(), "a silent connection is closed");
    // Headers never finished: the connection is closed after header_read_timeout (2 s here).
    let half = b"POST /hooks/databricks HTTP/1.1\r\nHost: x\r\n";
    let r = send_raw(g.addr, half, Duration::from_secs(10)).await;
    assert!(r.is_some(), "the server closed the half-sent request");
    // Body announced but never sent: 408 after body_read_timeout.
    let short = b"POST /hooks/databricks HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nX-Databricks-Signature: 00\r\n\r\n{\"ev";
    let (buf, read) = send_raw(g.addr, short, Duration::from_secs(10))
        .await
        .expect("answered within the timeout");
    read.unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    // Meanwhile, a well-behaved client is served.
    let v = load_vectors("databricks")
        .into_iter()
        .find(|v| v.file == "MODEL_VERSION_CREATED.json")
        .unwrap();
    let (st, _) = g.send_vector(&v).await;
    assert_eq!(st, 200);
    g.stop().await;
}

/// Plays an idle h2 client on `s`: it sends the preface and an empty SETTINGS frame, then opens
/// no stream, but answers the server's SETTINGS and PINGs as a real client library would. Returns
/// the types of the frames the server sent, once the server has closed the connection.
async fn idle_h2_client(s: &mut tokio::net::TcpStream) -> Vec<u8> {
    const SETTINGS: u8 = 4;
    const PING: u8 = 6;
    const ACK: u8 = 1;
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let mut types = Vec::new();
    loop {
        let mut head = [0u8; 9];
        if s.read_exact(&mut head).await.is_err() {
            return types; // closed by the server
        }
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).await.unwrap();
        let (kind, flags) = (head[3], head[4]);
        types.push(kind);
        let reply = match kind {
            SETTINGS if flags & ACK == 0 => Some((SETTINGS, Vec::new())),
            PING if flags & ACK == 0 => Some((PING, payload)),
            _ => None,
        };
        if let Some((kind, payload)) = reply {
            let mut frame = vec![0, 0, payload.len() as u8, kind, ACK, 0, 0, 0, 0];
            frame.extend(payload);
            // The server may already be gone; what it sent is what the test reads.
            let _ = s.write_all(&frame).await;
        }
    }
}

#[tokio::test]
async fn idle_connections_are_closed_in_both_protocols() {
    let g = Gateway::start("").await;
    // h2 (prior knowledge), no stream ever opened: the server says GOAWAY and closes once
    // header_read_timeout (2 s here) has passed.
    let mut s = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    let started = std::time::Instant::now();
    let frames = tokio::time::timeout(Duration::from_secs(10), idle_h2_client(&mut s))
        .await
        .expect("an idle h2 connection is closed");
    const GOAWAY: u8 = 7;
    assert!(frames.contains(&GOAWAY), "{frames:?}");
    // Not before the timeout (a generous bound against a slow machine, not a speed check).
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );

    // HTTP/1.1: one request, then silence on the kept-alive connection.
    let get = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let (got, _) = send_raw(g.addr, get, Duration::from_secs(10))
        .await
        .expect("an idle kept-alive connection is closed");
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );

    // Meanwhile h2 still serves requests (the timer only runs while nothing is in flight).
    let c = hookgate::targets::client_builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = c.get(g.url("/healthz")).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.version()),
        (200, reqwest::Version::HTTP_2)
    );
    g.stop().await;
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let g = Gateway::start("").await;
    let r = g.client.get(g.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = g.client.get(g.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v = load_vectors("databricks")
        .into_iter()
        .find(|v| v.file == "MODEL_VERSION_CREATED.json")
        .unwrap();
    g.send_vector(&v).await;
    let m = g.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"hookgate_events_total{endpoint="databricks",event="MODEL_VERSION_CREATED"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&m, "hookgate_ingest_duration_seconds_count"),
        Some(1.0)
    );
    assert!(m.contains(&format!(
        "hookgate_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));
    assert!(!m.contains(DATABRICKS_SECRET), "no secret in metrics");
    g.stop().await;
}

#[tokio::test]
async fn http2_cleartext_is_served() {
    let g = Gateway::start("").await;
    let c = hookgate::targets::client_builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let v = load_vectors("databricks")
        .into_iter()
        .find(|v| v.file == "MODEL_VERSION_CREATED.json")
        .unwrap();
    let sig = v
        .headers
        .iter()
        .find(|(k, _)| k == "X-Databricks-Signature")
        .unwrap()
        .1
        .clone();
    let r = c
        .post(g.url("/hooks/databricks"))
        .header("X-Databricks-Signature", sig)
        .body(v.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    g.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_stops_accepting_and_keeps_what_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hookgate.db");
    let g = Gateway::start_with(&base_config(&db, ""), db.clone()).await;
    let addr = g.addr;
    let db = g.db.clone();
    let v = load_vectors("databricks")
        .into_iter()
        .find(|v| v.file == "MODEL_VERSION_CREATED.json")
        .unwrap();
    let (s, _) = g.send_vector(&v).await;
    assert_eq!(s, 200);
    g.stop().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
    assert_eq!(count_rows(&db, "events").await, 1);
}

#[tokio::test]
async fn a_store_that_cannot_commit_answers_503_so_the_sender_retries() {
    let g = Gateway::start("").await;
    // Break the store under the running gateway: its next insert fails.
    {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", g.db.display()))
            .await
            .unwrap();
        sqlx::query("DROP TABLE attempts")
            .execute(&mut c)
            .await
            .unwrap();
        sqlx::query("DROP TABLE deliveries")
            .execute(&mut c)
            .await
            .unwrap();
        sqlx::query("DROP TABLE events")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    }
    let v = load_vectors("databricks")
        .into_iter()
        .find(|v| v.file == "MODEL_VERSION_CREATED.json")
        .unwrap();
    let sig = v
        .headers
        .iter()
        .find(|(k, _)| k == "X-Databricks-Signature")
        .unwrap()
        .1
        .clone();
    let r = g
        .client
        .post(g.url("/hooks/databricks"))
        .header("X-Databricks-Signature", sig)
        .body(v.body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    let body: Value = r.json().await.unwrap();
    assert_eq!(reason(&body), "store_unavailable");
    let m = g.metrics().await;
    assert_eq!(metric(&m, "hookgate_store_errors_total"), Some(1.0));
    assert_eq!(
        metric(
            &m,
            r#"hookgate_requests_total{endpoint="databricks",status="503"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            r#"hookgate_events_total{endpoint="databricks",event="MODEL_VERSION_CREATED"}"#
        ),
        None
    );
    g.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hookgate.db");
    let env = std::collections::HashMap::from([(
        "HOOKGATE_SERVER__MAX_CONNECTIONS".to_string(),
        "2".to_string(),
    )]);
    let g = Gateway::start_env(&base_config(&db, ""), db.clone(), env).await;
    // Two clients hold every slot without sending anything.
    let hold1 = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    let _hold2 = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fresh = || {
        hookgate::targets::client_builder()
            .timeout(Duration::from_millis(700))
            .build()
            .unwrap()
    };
    let r = fresh().get(g.url("/healthz")).send().await;
    assert!(
        r.is_err(),
        "a third connection is not served while two hold the slots"
    );
    drop(hold1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = fresh().get(g.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "a freed slot serves the next client");
    g.stop().await;
}

#[tokio::test]
async fn a_percent_encoded_endpoint_path_matches_what_a_client_sends_for_the_characters() {
    let g = Gateway::start(&format!(
        r#"
[[endpoints]]
name = "accented"
path = "/hooks/mod%C3%A8le"
scheme = "databricks"
secrets = ["{DATABRICKS_SECRET}"]
"#
    ))
    .await;
    let body = r#"{"event":"MODEL_VERSION_CREATED","model_name":"modèle","version":"1"}"#;
    let sig = hookgate::verify::databricks::sign(DATABRICKS_SECRET.as_bytes(), body.as_bytes());
    let headers = [
        ("Content-Type", "application/json"),
        ("X-Databricks-Signature", sig.as_str()),
    ];
    // reqwest, as senders' HTTP clients do, percent-encodes the path it is given.
    let (s, v) = g
        .post_raw("POST", "/hooks/modèle", &headers, body.as_bytes().to_vec())
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("accepted")), "{v}");
    // Given encoded, the same path: the sender's retry is the same event.
    let (s, v) = g
        .post_raw(
            "POST",
            "/hooks/mod%C3%A8le",
            &headers,
            body.as_bytes().to_vec(),
        )
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("duplicate")), "{v}");
    assert_eq!(count_rows(&g.db, "events").await, 1);
    g.stop().await;
}

/// An h2 connection may have only a few streams open (each may hold a body of up to
/// `max_body` while it is read): the server's SETTINGS say how many, and hyper enforces it.
#[tokio::test]
async fn an_h2_connection_may_open_only_a_few_streams_at_once() {
    const SETTINGS: u8 = 4;
    const MAX_CONCURRENT_STREAMS: u16 = 3;
    let g = Gateway::start("").await;
    let mut s = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let settings = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let mut head = [0u8; 9];
            s.read_exact(&mut head).await.unwrap();
            let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            let mut payload = vec![0u8; len];
            s.read_exact(&mut payload).await.unwrap();
            if head[3] == SETTINGS && head[4] & 1 == 0 {
                return payload;
            }
        }
    })
    .await
    .expect("the server's SETTINGS");
    let advertised: Vec<(u16, u32)> = settings
        .chunks(6)
        .map(|c| {
            (
                u16::from_be_bytes([c[0], c[1]]),
                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
            )
        })
        .collect();
    assert!(
        advertised.contains(&(MAX_CONCURRENT_STREAMS, hookgate::ingress::H2_MAX_STREAMS)),
        "{advertised:?}"
    );
    const { assert!(hookgate::ingress::H2_MAX_STREAMS <= 16) };
    drop(s);
    g.stop().await;
}

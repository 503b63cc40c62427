//! The PostgreSQL store against a real server: the outbox API, duplicates and claims raced
//! between two stores on one database (two replicas), and the gateway itself on PostgreSQL.
//!
//! Needs `HOOKGATE_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`). Without
//! it every test is reported as ignored, not passed, which is why this file has its own harness.
//! Each test works in a schema of its own, dropped afterwards.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libtest_mimic::{Arguments, Trial};
use serde_json::Value;
use tokio::sync::Barrier;

use common::delivery::{FAST_RETRY, accepted_id, vector, wait_delivery};
use common::fake::{Answer, FakeTarget};
use common::postgres::{ENV, TestFn, TestSchema, pg_config, run, server_url};
use common::{DATABRICKS_SECRET, Gateway};
use hookgate::metrics::Metrics;
use hookgate::outbox::{
    AttemptRecord, AttemptResult, DeliveryFilter, DeliveryStatus, Ingested, NewEvent,
    ReplaySelector, Store, StoreError, TargetCounts,
};
use hookgate::verify::Scheme;

fn main() {
    let args = Arguments::from_args();
    let server = server_url();
    let tests: Vec<(&str, TestFn)> = vec![
        ("outbox_api", |s| Box::pin(outbox_api(s))),
        ("leases_expire_and_are_not_released", |s| {
            Box::pin(leases_expire_and_are_not_released(s))
        }),
        ("connections_lost_are_reopened", |s| {
            Box::pin(connections_lost_are_reopened(s))
        }),
        ("group_commit_shares_statements", |s| {
            Box::pin(group_commit_shares_statements(s))
        }),
        ("concurrent_duplicates_across_replicas_store_one", |s| {
            Box::pin(concurrent_duplicates_across_replicas_store_one(s))
        }),
        ("replicas_claim_every_delivery_exactly_once", |s| {
            Box::pin(replicas_claim_every_delivery_exactly_once(s))
        }),
        ("gateway_relays_and_shows_events_on_postgres", |s| {
            Box::pin(gateway_relays_and_shows_events_on_postgres(s))
        }),
        ("a_pending_delivery_survives_a_gateway_restart", |s| {
            Box::pin(a_pending_delivery_survives_a_gateway_restart(s))
        }),
        ("a_prune_keeps_dead_letters_until_dead_retention", |s| {
            Box::pin(a_prune_keeps_dead_letters_until_dead_retention(s))
        }),
        ("a_record_sent_again_changes_nothing", |s| {
            Box::pin(a_record_sent_again_changes_nothing(s))
        }),
        (
            "pending_deliveries_to_unconfigured_targets_become_dead_letters",
            |s| Box::pin(pending_deliveries_to_unconfigured_targets_become_dead_letters(s)),
        ),
        (
            "a_reload_that_renames_a_target_dead_letters_its_pending_delivery",
            |s| Box::pin(a_reload_that_renames_a_target_dead_letters_its_pending_delivery(s)),
        ),
        (
            "a_restart_without_a_target_dead_letters_its_pending_delivery",
            |s| Box::pin(a_restart_without_a_target_dead_letters_its_pending_delivery(s)),
        ),
    ];
    if server.is_none() {
        eprintln!("postgres: ignored: set {ENV} (e.g. postgres://postgres@127.0.0.1:5432/test)");
    }
    let trials = tests
        .into_iter()
        .map(|(name, test)| {
            let server = server.clone();
            let skipped = server.is_none();
            let trial = Trial::test(name, move || run(server, test));
            if skipped {
                trial
                    .with_kind(format!("needs {ENV}"))
                    .with_ignored_flag(true)
            } else {
                trial
            }
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

async fn open(schema: &TestSchema) -> Store {
    Store::open(&schema.url, Arc::new(Metrics::new()))
        .await
        .unwrap_or_else(|e| panic!("open the store on {}: {e}", schema.name))
}

/// [`common::outbox::event`], with the arguments in this file's order.
fn event(id: &str, targets: &[&str], at: i64) -> NewEvent {
    common::outbox::event(id, at, targets)
}

fn attempt(delivery_id: i64, attempt: u32, result: AttemptResult) -> AttemptRecord {
    AttemptRecord {
        delivery_id,
        attempt,
        started_at_ms: 0,
        duration_ms: 12,
        status_code: match result {
            AttemptResult::Delivered => Some(200),
            AttemptResult::Retry { .. } => Some(503),
            AttemptResult::Dead => Some(404),
        },
        reason: match result {
            AttemptResult::Delivered => None,
            AttemptResult::Retry { .. } => Some("http 503".into()),
            AttemptResult::Dead => Some("http 404: channel_not_found".into()),
        },
        result,
    }
}

use common::outbox::targets as names;

/// Every call of the outbox API, in the order a delivery's life uses them.
async fn outbox_api(schema: TestSchema) {
    let store = open(&schema).await;
    // A second open finds the schema in place.
    open(&schema).await.close().await;
    store.ping().await.unwrap();
    assert_eq!(store.count_events().await.unwrap(), 0);
    assert_eq!(store.next_due_ms(&names(&["a", "b"])).await.unwrap(), None);

    // Ingest and duplicate.
    let mut first = event("ev-1", &["a", "b"], 1_000);
    // Bytes as received, whatever they are.
    first.body = Bytes::from_static(b"{\"x\":\"\xff\x00\xfe\"}");
    first.model = None;
    assert_eq!(
        store.ingest(first.clone()).await.unwrap(),
        Ingested::Accepted
    );
    let mut again = first.clone();
    again.received_at_ms = 1_500;
    again.targets = names(&["a", "b", "c"]);
    assert_eq!(store.ingest(again).await.unwrap(), Ingested::Duplicate);
    assert_eq!(schema.count("events").await, 1);
    assert_eq!(
        schema.count("deliveries").await,
        2,
        "a duplicate adds nothing"
    );
    // An unrouted event is stored, with no delivery.
    assert_eq!(
        store.ingest(event("ev-2", &[], 1_000)).await.unwrap(),
        Ingested::Accepted
    );
    assert_eq!(store.count_events().await.unwrap(), 2);

    // Due times: configured targets only.
    assert_eq!(
        store.next_due_ms(&names(&["a"])).await.unwrap(),
        Some(1_000)
    );
    assert_eq!(store.next_due_ms(&names(&["gone"])).await.unwrap(), None);
    assert_eq!(store.next_due_ms(&[]).await.unwrap(), None);

    // Claim: the event comes with it, byte for byte.
    assert!(store.claim("a", 10, 999, 5_000).await.unwrap().is_empty());
    let claimed = store.claim("a", 10, 1_000, 5_000).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let c = &claimed[0];
    assert_eq!((c.target.as_str(), c.attempts), ("a", 0));
    assert_eq!(c.cycle_started_at_ms, 1_000);
    assert_eq!(c.event.event_id, "ev-1");
    assert_eq!(c.event.body, first.body);
    assert_eq!(c.event.model, None);
    assert_eq!(c.event.scheme, Scheme::Databricks);
    assert_eq!(c.event.received_at_ms, 1_000);
    let a_id = c.delivery_id;
    assert!(store.claim("a", 10, 1_000, 5_000).await.unwrap().is_empty());
    assert_eq!(store.claim("a", 0, 1_000, 5_000).await.unwrap().len(), 0);

    // A retry: rescheduled, released, attempt recorded.
    store
        .record(
            attempt(
                a_id,
                1,
                AttemptResult::Retry {
                    next_attempt_at_ms: 8_000,
                },
            ),
            1_100,
        )
        .await
        .unwrap();
    assert!(
        store
            .claim("a", 10, 7_999, 20_000)
            .await
            .unwrap()
            .is_empty()
    );
    let claimed = store.claim("a", 10, 8_000, 20_000).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].attempts, 1);
    store
        .record(attempt(a_id, 2, AttemptResult::Delivered), 8_100)
        .await
        .unwrap();

    // Dead letter on the other target.
    let b = store.claim("b", 10, 1_000, 5_000).await.unwrap();
    assert_eq!(b.len(), 1);
    let b_id = b[0].delivery_id;
    store
        .record(attempt(b_id, 1, AttemptResult::Dead), 1_200)
        .await
        .unwrap();
    assert_eq!(store.next_due_ms(&names(&["a", "b"])).await.unwrap(), None);
    assert_eq!(
        store.target_counts().await.unwrap(),
        vec![TargetCounts {
            target: "b".into(),
            pending: 0,
            dead: 1,
        }]
    );

    // What the admin API shows.
    let (ev, deliveries, attempts) = store.get_event("ev-1").await.unwrap().unwrap();
    assert_eq!(ev.body, first.body);
    assert_eq!(deliveries.len(), 2);
    let a = deliveries.iter().find(|d| d.target == "a").unwrap();
    assert_eq!(
        (a.status, a.attempts, a.updated_at_ms),
        (DeliveryStatus::Delivered, 2, 8_100)
    );
    let b = deliveries.iter().find(|d| d.target == "b").unwrap();
    assert_eq!(b.status, DeliveryStatus::Dead);
    assert_eq!(b.last_error.as_deref(), Some("http 404: channel_not_found"));
    let seen: Vec<(i64, u32, Option<u16>, &str)> = attempts
        .iter()
        .map(|a| (a.delivery_id, a.attempt, a.status_code, a.result.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (a_id, 1, Some(503), "retry"),
            (a_id, 2, Some(200), "delivered"),
            (b_id, 1, Some(404), "dead"),
        ]
    );
    assert!(store.get_event("nope").await.unwrap().is_none());

    // A late outcome for a delivery already finished (another replica took it over after this
    // one's lease expired: its own attempt, started at another time) is history, not a change
    // of state.
    let mut late = attempt(
        a_id,
        2,
        AttemptResult::Retry {
            next_attempt_at_ms: 9_000,
        },
    );
    late.started_at_ms = 8_100;
    store.record(late, 8_200).await.unwrap();
    let (_, deliveries, attempts) = store.get_event("ev-1").await.unwrap().unwrap();
    assert_eq!(deliveries[0].status, DeliveryStatus::Delivered);
    assert_eq!(attempts.len(), 4);

    // Listing.
    let dead = DeliveryFilter {
        status: Some(DeliveryStatus::Dead),
        ..Default::default()
    };
    let rows = store.list_deliveries(&dead).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].id, rows[0].event_id.as_str()), (b_id, "ev-1"));
    let to_a = DeliveryFilter {
        target: Some("a".into()),
        ..Default::default()
    };
    assert_eq!(store.list_deliveries(&to_a).await.unwrap()[0].id, a_id);
    let all = store
        .list_deliveries(&DeliveryFilter {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "limit applies");
    assert_eq!(all[0].id, b_id.max(a_id), "newest first");

    // Prune: ev-2 (nothing to deliver) goes; ev-1 stays while a delivery is pending.
    assert_eq!(
        store
            .replay(ReplaySelector::Ids(vec![]), 10_000)
            .await
            .unwrap(),
        0
    );
    let replayed = store
        .replay(
            ReplaySelector::Status {
                status: DeliveryStatus::Dead,
                target: Some("b".into()),
            },
            10_000,
        )
        .await
        .unwrap();
    assert_eq!(replayed, 1);
    assert_eq!(
        store
            .replay(ReplaySelector::Ids(vec![b_id]), 10_000)
            .await
            .unwrap(),
        0,
        "a pending delivery is not replayed"
    );
    let c = store.claim("b", 10, 10_000, 20_000).await.unwrap();
    assert_eq!(
        (c[0].attempts, c[0].cycle_started_at_ms),
        (0, 10_000),
        "a replay starts a new cycle"
    );
    assert_eq!(store.prune(2_000, 2_000).await.unwrap(), 1);
    assert!(store.get_event("ev-2").await.unwrap().is_none());
    assert!(store.get_event("ev-1").await.unwrap().is_some());
    store
        .record(attempt(b_id, 1, AttemptResult::Delivered), 10_100)
        .await
        .unwrap();
    assert_eq!(store.prune(999, 999).await.unwrap(), 0, "not old enough");
    assert_eq!(store.prune(2_000, 2_000).await.unwrap(), 1);
    for table in ["events", "deliveries", "attempts"] {
        assert_eq!(
            schema.count(table).await,
            0,
            "{table} pruned with its event"
        );
    }
    // A pruned event may come again (the sender's retention is longer than ours).
    assert_eq!(
        store.ingest(event("ev-1", &["a"], 20_000)).await.unwrap(),
        Ingested::Accepted
    );
    // Replay by id of a delivered delivery.
    let d = store.claim("a", 1, 20_000, 30_000).await.unwrap()[0].delivery_id;
    store
        .record(attempt(d, 1, AttemptResult::Delivered), 20_001)
        .await
        .unwrap();
    assert_eq!(
        store
            .replay(ReplaySelector::Ids(vec![d, 12_345]), 21_000)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.next_due_ms(&names(&["a"])).await.unwrap(),
        Some(21_000)
    );

    store.close().await;
    assert!(matches!(
        store.ingest(event("late", &["a"], 1)).await,
        Err(StoreError::Closed)
    ));
}

/// A replica's leases are never released by another one starting; they expire.
async fn leases_expire_and_are_not_released(schema: TestSchema) {
    let first = open(&schema).await;
    first.ingest(event("ev", &["t"], 1_000)).await.unwrap();
    let held = first.claim("t", 5, 1_000, 60_000).await.unwrap();
    assert_eq!(held.len(), 1);

    // Another replica starts: what the gateway does at start-up releases nothing.
    let second = open(&schema).await;
    assert_eq!(second.release_leases().await.unwrap(), 0);
    assert!(
        second
            .claim("t", 5, 2_000, 90_000)
            .await
            .unwrap()
            .is_empty()
    );
    // The dispatcher learns when the lease ends (it may belong to a replica that died).
    assert_eq!(
        second.next_due_ms(&names(&["t"])).await.unwrap(),
        Some(60_000)
    );
    // The first replica "died": once its lease has expired, the delivery is claimed again.
    let taken = second.claim("t", 5, 60_000, 120_000).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].delivery_id, held[0].delivery_id);
    assert!(
        first
            .claim("t", 5, 61_000, 200_000)
            .await
            .unwrap()
            .is_empty()
    );
    first.close().await;
    second.close().await;
}

/// The database ends every session (a restart, a failover): the operations in flight may fail
/// (the sender gets a 503 and retries), and the next ones run on new connections.
async fn connections_lost_are_reopened(schema: TestSchema) {
    let store = open(&schema).await;
    assert_eq!(
        store.ingest(event("before", &["t"], 1_000)).await.unwrap(),
        Ingested::Accepted
    );
    assert!(store.next_due_ms(&names(&["t"])).await.unwrap().is_some());
    assert!(schema.terminate_sessions().await >= 2, "writer and pool");

    // The writer finds its connection closed and runs the batch again on a new one: the
    // sender never hears of it.
    assert_eq!(
        store.ingest(event("after", &["t"], 2_000)).await.unwrap(),
        Ingested::Accepted
    );
    assert_eq!(
        store.ingest(event("after", &["t"], 2_000)).await.unwrap(),
        Ingested::Duplicate
    );
    let claimed = store.claim("t", 10, 5_000, 9_000).await.unwrap();
    assert_eq!(claimed.len(), 2);
    store.ping().await.unwrap();
    store.close().await;
}

/// Concurrent ingests share statements (and so commits).
async fn group_commit_shares_statements(schema: TestSchema) {
    let metrics = Arc::new(Metrics::new());
    let store = Store::open(&schema.url, metrics.clone()).await.unwrap();
    let n = 300;
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .ingest(event(&format!("gc-{i}"), &["a", "b"], 1_000 + i))
                    .await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), Ingested::Accepted);
    }
    let batches = metrics.store_batch_size.get_sample_count();
    let ops = metrics.store_batch_size.get_sample_sum();
    assert_eq!(ops as u64, n as u64);
    assert!(
        batches < n as u64,
        "{n} concurrent ingests took {batches} statements: no group commit"
    );
    assert_eq!(schema.count("events").await, n);
    assert_eq!(schema.count("deliveries").await, 2 * n);
    eprintln!("group commit: {n} ingests in {batches} statements");
    store.close().await;
}

/// The same events sent to two replicas at once (and twice to each): each is stored once, and
/// exactly one of the four copies is accepted.
async fn concurrent_duplicates_across_replicas_store_one(schema: TestSchema) {
    let (one, two) = tokio::join!(open(&schema), open(&schema));
    let ids = 100;
    let copies = 4;
    let barrier = Arc::new(Barrier::new(ids * copies));
    let mut tasks = Vec::new();
    for i in 0..ids {
        for copy in 0..copies {
            let store = if copy % 2 == 0 {
                one.clone()
            } else {
                two.clone()
            };
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let id = format!("dup-{i}");
                let r = store.ingest(event(&id, &["a", "b"], 1_000)).await.unwrap();
                (id, r)
            }));
        }
    }
    let mut accepted = std::collections::HashMap::<String, usize>::new();
    for t in tasks {
        let (id, r) = t.await.unwrap();
        if r == Ingested::Accepted {
            *accepted.entry(id).or_default() += 1;
        }
    }
    assert_eq!(accepted.len(), ids, "every id accepted once");
    assert!(accepted.values().all(|&n| n == 1), "{accepted:?}");
    assert_eq!(schema.count("events").await, ids as i64);
    assert_eq!(schema.count("deliveries").await, 2 * ids as i64);
    one.close().await;
    two.close().await;
}

/// Two replicas, four claimers each, racing over the same queue: every delivery is claimed by
/// exactly one of them. A row locked by someone else is skipped, not waited for.
async fn replicas_claim_every_delivery_exactly_once(schema: TestSchema) {
    // Replicas starting at once create the schema once, without tripping over each other.
    let opened = futures_util::future::join_all(
        (0..4).map(|_| Store::open(&schema.url, Metrics::new().into())),
    )
    .await;
    let stores: Vec<Store> = opened.into_iter().map(Result::unwrap).collect();
    let n = 600;
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let store = stores[i % 2].clone();
            tokio::spawn(async move {
                store
                    .ingest(event(&format!("claim-{i}"), &["t"], 1_000 + i as i64))
                    .await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), Ingested::Accepted);
    }

    // SKIP LOCKED, deterministically: rows another transaction holds are left alone.
    let mut other = schema.connect().await;
    let mut tx = sqlx::Connection::begin(&mut other).await.unwrap();
    let locked: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM deliveries ORDER BY next_attempt_at, id LIMIT 3 FOR UPDATE",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    let started = Instant::now();
    let got = tokio::time::timeout(
        Duration::from_secs(5),
        stores[0].claim("t", 5, 10_000, 1_000_000),
    )
    .await
    .expect("a claim does not wait for locked rows")
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(got.len(), 5);
    assert!(got.iter().all(|c| !locked.contains(&c.delivery_id)));
    tx.rollback().await.unwrap();
    // Give those five back so the race below covers every row.
    for c in &got {
        stores[0]
            .record(
                attempt(
                    c.delivery_id,
                    1,
                    AttemptResult::Retry {
                        next_attempt_at_ms: 1_000,
                    },
                ),
                10_000,
            )
            .await
            .unwrap();
    }

    let claimers = 8;
    let barrier = Arc::new(Barrier::new(claimers));
    let tasks: Vec<_> = (0..claimers)
        .map(|k| {
            let store = stores[k % 2].clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let mut mine = Vec::new();
                loop {
                    let got = store.claim("t", 7, 10_000, 1_000_000).await.unwrap();
                    if got.is_empty() {
                        return (k % 2, mine);
                    }
                    mine.extend(got.iter().map(|c| c.delivery_id));
                    // The outcome goes through the writer, as the dispatcher's does.
                    for c in got {
                        store
                            .record(attempt(c.delivery_id, 1, AttemptResult::Delivered), 10_000)
                            .await
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut per_replica = [0usize; 2];
    for t in tasks {
        let (replica, ids) = t.await.unwrap();
        per_replica[replica] += ids.len();
        all.extend(ids);
    }
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len(), "a delivery was claimed twice");
    assert_eq!(all.len(), n, "every delivery claimed");
    eprintln!("claims per replica: {per_replica:?}");
    assert_eq!(stores[1].target_counts().await.unwrap(), vec![]);
    let delivered = stores[1]
        .list_deliveries(&DeliveryFilter {
            status: Some(DeliveryStatus::Delivered),
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(delivered.len(), n);
    for s in stores {
        s.close().await;
    }
}

fn http_target(url: &str) -> String {
    format!(
        r#"
{FAST_RETRY}

[targets.hook]
kind = "http"
url = "{url}"

[[routes]]
name = "everything"
to = ["hook"]
"#
    )
}

/// The real gateway with `store.url` on PostgreSQL: a vector in, the target gets it byte for
/// byte, the admin API and the CLI show it.
async fn gateway_relays_and_shows_events_on_postgres(schema: TestSchema) {
    let fake = FakeTarget::start().await;
    let extra = http_target(&fake.url("/in"));
    let toml = pg_config(&schema.url, &extra);
    let g = Gateway::start_postgres(&toml).await;
    let v = vector("databricks", "MODEL_VERSION_CREATED.json");
    assert_eq!(v.secret, DATABRICKS_SECRET);
    let id = accepted_id(g.send_vector(&v).await);

    let got = fake.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].body, v.body.as_bytes(), "relayed byte for byte");
    assert_eq!(got[0].header("X-Hookgate-Event-Id"), Some(id.as_str()));
    let ev = wait_delivery(&g, &id, "hook", "delivered", 1).await;
    assert_eq!(ev["event"]["event_id"], id);
    assert_eq!(ev["event"]["name"], "MODEL_VERSION_CREATED");
    assert_eq!(ev["attempts"][0]["status_code"], 200);

    // The sender's retry.
    let (status, body) = g.send_vector(&v).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("duplicate")));
    assert_eq!(schema.count("events").await, 1);
    assert_eq!(schema.count("deliveries").await, 1);

    // `/metrics` reads the gauges from PostgreSQL.
    let m = g.metrics().await;
    assert_eq!(
        common::metric(&m, r#"hookgate_outbox_pending{target="hook"}"#),
        Some(0.0),
        "{m}"
    );

    // The CLI reads the same database.
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::delivery::write_config(dir.path(), &toml);
    let stdout = common::delivery::deliveries_cli(&cfg, &["list", "--json"]).await;
    let rows: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(rows[0]["event_id"], id);
    assert_eq!(rows[0]["status"], "delivered");
    g.stop().await;
}

/// An event accepted while its target is down is still delivered by the next gateway on the
/// same database, and is still known there as a duplicate.
async fn a_pending_delivery_survives_a_gateway_restart(schema: TestSchema) {
    let down = FakeTarget::start().await;
    down.default_answer(Answer::status(503));
    let g = Gateway::start_postgres(&pg_config(&schema.url, &http_target(&down.url("/in")))).await;
    let body = r#"{"event":"MODEL_VERSION_CREATED","model_name":"restart","version":"7"}"#;
    let id = accepted_id(g.post_databricks(body).await);
    let ev = wait_delivery(&g, &id, "hook", "pending", 1).await;
    assert_eq!(ev["attempts"][0]["status_code"], 503);
    g.stop().await;
    let tried = down.requests().len();
    assert!(tried >= 1);

    let up = FakeTarget::start().await;
    let g = Gateway::start_postgres(&pg_config(&schema.url, &http_target(&up.url("/in")))).await;
    let got = up.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].body, body.as_bytes());
    let ev = wait_delivery(&g, &id, "hook", "delivered", 2).await;
    let results: Vec<&str> = ev["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["result"].as_str().unwrap())
        .collect();
    assert_eq!(results.last(), Some(&"delivered"), "{results:?}");
    assert_eq!(
        results.len(),
        tried + 1,
        "the first run's attempts are kept"
    );
    let (status, answer) = g.post_databricks(body).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("duplicate"))
    );
    g.stop().await;
    assert_eq!(up.requests().len(), 1, "delivered once");
}

/// The scenario `tests/outbox.rs` runs on SQLite: dead letters outlive `retention`, not
/// `dead_retention`; pending deliveries keep their event.
async fn a_prune_keeps_dead_letters_until_dead_retention(schema: TestSchema) {
    let store = open(&schema).await;
    common::outbox::prune_keeps_dead_letters_until_dead_retention(&store, |table| {
        schema.count(table)
    })
    .await;
    store.close().await;
}

/// The scenario `tests/outbox.rs` runs on SQLite. Here the lease it waits out stands for
/// another replica's attempt in flight.
async fn a_record_sent_again_changes_nothing(schema: TestSchema) {
    let store = open(&schema).await;
    common::outbox::a_record_sent_again_changes_nothing(&store).await;
    store.close().await;
}

async fn pending_deliveries_to_unconfigured_targets_become_dead_letters(schema: TestSchema) {
    let store = open(&schema).await;
    common::outbox::unconfigured_targets_become_dead_letters(&store).await;
    store.close().await;
}

async fn a_reload_that_renames_a_target_dead_letters_its_pending_delivery(schema: TestSchema) {
    common::removed_target::a_reload_that_renames_a_target_dead_letters_its_pending_delivery(
        &|extra| pg_config(&schema.url, extra),
        std::path::PathBuf::new(),
    )
    .await;
}

async fn a_restart_without_a_target_dead_letters_its_pending_delivery(schema: TestSchema) {
    common::removed_target::a_restart_without_a_target_dead_letters_its_pending_delivery(
        &|extra| pg_config(&schema.url, extra),
        std::path::PathBuf::new(),
    )
    .await;
}

//! The embedded store through its public API, on a real SQLite file: ingest and de-duplication,
//! claims and leases, records, replay, pruning, dead-lettering removed targets, and the queue
//! views.

mod common;

use std::sync::Arc;

use common::outbox::{event, record, targets};
use hookgate::metrics::Metrics;
use hookgate::outbox::{
    AttemptResult, DeliveryFilter, DeliveryStatus, Ingested, ReplaySelector, Store,
};

async fn open(dir: &tempfile::TempDir) -> Store {
    let url = format!("sqlite://{}", dir.path().join("outbox.db").display());
    Store::open(&url, Arc::new(Metrics::new())).await.unwrap()
}

#[tokio::test]
async fn ingest_stores_once_with_one_delivery_per_target() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir).await;
    assert_eq!(
        s.ingest(event("a", 1_000, &["slack", "ci"])).await.unwrap(),
        Ingested::Accepted
    );
    assert_eq!(
        s.ingest(event("a", 2_000, &["slack", "ci"])).await.unwrap(),
        Ingested::Duplicate
    );
    assert_eq!(s.count_events().await.unwrap(), 1);
    let all = s.list_deliveries(&DeliveryFilter::default()).await.unwrap();
    assert_eq!(all.len(), 2, "the duplicate added no deliveries");
    assert!(
        all.iter()
            .all(|d| d.status == DeliveryStatus::Pending && d.attempts == 0)
    );
    let (ev, deliveries, attempts) = s.get_event("a").await.unwrap().unwrap();
    assert_eq!(
        (ev.received_at_ms, deliveries.len(), attempts.len()),
        (1_000, 2, 0)
    );
    assert!(s.get_event("nope").await.unwrap().is_none());
    s.close().await;
}

#[tokio::test]
async fn a_claim_leases_until_it_is_recorded_or_expires() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir).await;
    s.ingest(event("a", 1_000, &["slack"])).await.unwrap();
    s.ingest(event("b", 1_001, &["slack"])).await.unwrap();
    // Not due before it was received.
    assert!(s.claim("slack", 10, 999, 5_000).await.unwrap().is_empty());
    let got = s.claim("slack", 1, 1_500, 5_000).await.unwrap();
    assert_eq!(got.len(), 1, "limit respected");
    assert_eq!(got[0].event.event_id, "a", "oldest first");
    assert_eq!(got[0].attempts, 0);
    let next = s.claim("slack", 10, 1_500, 5_000).await.unwrap();
    assert_eq!(
        next.iter()
            .map(|c| c.event.event_id.as_str())
            .collect::<Vec<_>>(),
        ["b"],
        "a is leased"
    );
    assert!(
        s.claim("slack", 10, 4_999, 9_000).await.unwrap().is_empty(),
        "both leased"
    );
    // An expired lease (its process died) is claimed again.
    let again = s.claim("slack", 10, 5_000, 9_000).await.unwrap();
    assert_eq!(again.len(), 2);
    assert!(
        s.claim("other", 10, 5_000, 9_000).await.unwrap().is_empty(),
        "per target"
    );

    // Recording a retry reschedules and releases the lease.
    s.record(
        record(
            again[0].delivery_id,
            1,
            AttemptResult::Retry {
                next_attempt_at_ms: 20_000,
            },
        ),
        6_000,
    )
    .await
    .unwrap();
    s.record(
        record(again[1].delivery_id, 1, AttemptResult::Delivered),
        6_000,
    )
    .await
    .unwrap();
    assert!(
        s.claim("slack", 10, 19_999, 30_000)
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    assert_eq!(
        s.next_due_ms(&targets(&["slack"])).await.unwrap(),
        Some(20_000)
    );
    assert_eq!(
        s.next_due_ms(&targets(&["other"])).await.unwrap(),
        None,
        "configured targets only"
    );
    let retry = s.claim("slack", 10, 20_000, 40_000).await.unwrap();
    assert_eq!((retry.len(), retry[0].attempts), (1, 1));
    s.close().await;
}

#[tokio::test]
async fn records_replays_and_prunes() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir).await;
    s.ingest(event("old-done", 1_000, &["slack"]))
        .await
        .unwrap();
    s.ingest(event("old-pending", 1_000, &["slack", "ci"]))
        .await
        .unwrap();
    s.ingest(event("old-unrouted", 1_000, &[])).await.unwrap();
    s.ingest(event("new", 50_000, &["slack"])).await.unwrap();
    let claims = s.claim("slack", 10, 60_000, 70_000).await.unwrap();
    assert_eq!(claims.len(), 3);
    let id = |e: &str| {
        claims
            .iter()
            .find(|c| c.event.event_id == e)
            .unwrap()
            .delivery_id
    };
    s.record(record(id("old-done"), 1, AttemptResult::Delivered), 60_001)
        .await
        .unwrap();
    s.record(record(id("old-pending"), 1, AttemptResult::Dead), 60_001)
        .await
        .unwrap();
    s.record(record(id("new"), 1, AttemptResult::Delivered), 60_001)
        .await
        .unwrap();

    let dead = s
        .list_deliveries(&DeliveryFilter {
            status: Some(DeliveryStatus::Dead),
            target: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("http 503"));
    let counts = s.target_counts().await.unwrap();
    assert_eq!(
        counts
            .iter()
            .find(|c| c.target == "slack")
            .map(|c| (c.pending, c.dead)),
        Some((0, 1))
    );
    assert_eq!(
        counts
            .iter()
            .find(|c| c.target == "ci")
            .map(|c| (c.pending, c.dead)),
        Some((1, 0))
    );
    let (_, _, attempts) = s.get_event("old-pending").await.unwrap().unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].result, "dead");

    // Prune: old events with nothing left to deliver go; one with a pending delivery (to "ci")
    // stays, and so does everything newer than the cut-off.
    assert_eq!(s.prune(10_000, 10_000).await.unwrap(), 2);
    assert!(s.get_event("old-done").await.unwrap().is_none());
    assert!(s.get_event("old-unrouted").await.unwrap().is_none());
    assert!(s.get_event("old-pending").await.unwrap().is_some());
    assert!(s.get_event("new").await.unwrap().is_some());

    // Replay: only dead or delivered ones come back, due now, with a fresh attempt budget.
    let n = s
        .replay(
            ReplaySelector::Ids(vec![id("old-pending"), id("new")]),
            80_000,
        )
        .await
        .unwrap();
    assert_eq!(n, 2);
    let back = s.claim("slack", 10, 80_000, 90_000).await.unwrap();
    assert_eq!(back.len(), 2);
    assert!(
        back.iter()
            .all(|c| c.attempts == 0 && c.cycle_started_at_ms == 80_000)
    );
    s.record(record(back[0].delivery_id, 1, AttemptResult::Dead), 80_001)
        .await
        .unwrap();
    let n = s
        .replay(
            ReplaySelector::Status {
                status: DeliveryStatus::Dead,
                target: Some("ci".into()),
            },
            90_000,
        )
        .await
        .unwrap();
    assert_eq!(n, 0, "target filter");
    let n = s
        .replay(
            ReplaySelector::Status {
                status: DeliveryStatus::Dead,
                target: None,
            },
            90_000,
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    s.close().await;
}

#[tokio::test]
async fn concurrent_ingests_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let url = format!("sqlite://{}", dir.path().join("outbox.db").display());
    let s = Store::open(&url, metrics.clone()).await.unwrap();
    let tasks: Vec<_> = (0..500)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.ingest(event(&format!("e{i}"), 1_000 + i, &["t"])).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), Ingested::Accepted);
    }
    assert_eq!(s.count_events().await.unwrap(), 500);
    let commits = metrics.store_batch_size.get_sample_count();
    // 500 callers racing each other cannot all have waited for their own fsync.
    assert!(commits < 500, "{commits} commits for 500 events");
    s.close().await;
    assert!(
        s.ingest(event("late", 1, &[])).await.is_err(),
        "a closed store refuses writes instead of losing them"
    );
}

#[tokio::test]
async fn close_answers_every_write_it_committed() {
    // Replies wait for the WAL fsync, which runs beside the writer: closing must let the last
    // ones out, so "stored" answers and stored rows agree exactly.
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir).await;
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.ingest(event(&format!("c{i}"), 1_000 + i, &["t"])).await })
        })
        .collect();
    tokio::task::yield_now().await;
    s.close().await;
    let mut accepted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(Ingested::Accepted) => accepted += 1,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => {}
        }
    }
    assert!(accepted > 0, "some writes were queued before the close");
    let s = open(&dir).await;
    assert_eq!(s.count_events().await.unwrap(), accepted);
    s.close().await;
}

#[tokio::test]
async fn a_failed_batch_answers_every_caller_in_it_with_the_error() {
    // An attempt record for a delivery that does not exist breaks its transaction (foreign
    // key). Everyone sharing that commit hears why; nobody is left with a dropped reply, and
    // the store goes on working.
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir).await;
    let bad = {
        let s = s.clone();
        tokio::spawn(async move {
            s.record(record(999_999, 1, AttemptResult::Delivered), 1_000)
                .await
        })
    };
    let ingests: Vec<_> = (0..50)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.ingest(event(&format!("f{i}"), 1_000, &["t"])).await })
        })
        .collect();
    let err = bad.await.unwrap().unwrap_err();
    assert!(
        matches!(err, hookgate::outbox::StoreError::Transaction(_)),
        "{err:?}"
    );
    let mut stored = 0;
    for t in ingests {
        match t.await.unwrap() {
            Ok(Ingested::Accepted) => stored += 1,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => assert!(
                matches!(e, hookgate::outbox::StoreError::Transaction(_)),
                "{e:?}"
            ),
        }
    }
    assert_eq!(s.count_events().await.unwrap(), stored);
    assert_eq!(
        s.ingest(event("after", 2_000, &[])).await.unwrap(),
        Ingested::Accepted
    );
    s.close().await;
}

#[tokio::test]
async fn a_prune_keeps_dead_letters_until_dead_retention_and_pending_ones_for_ever() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir).await;
    let db = dir.path().join("outbox.db");
    common::outbox::prune_keeps_dead_letters_until_dead_retention(&s, |table| {
        common::count_rows(&db, table)
    })
    .await;
    s.close().await;
}

#[tokio::test]
async fn a_record_sent_again_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir).await;
    common::outbox::a_record_sent_again_changes_nothing(&s).await;
    s.close().await;
}

#[tokio::test]
async fn pending_deliveries_to_unconfigured_targets_become_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir).await;
    common::outbox::unconfigured_targets_become_dead_letters(&s).await;
    s.close().await;
}

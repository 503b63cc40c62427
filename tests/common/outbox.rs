//! The outbox API for store-level tests: events and attempt records to feed a [`Store`], and
//! scenarios that both back-ends run (`tests/outbox.rs` on SQLite, `tests/postgres.rs` on
//! PostgreSQL), so the two are held to the same behaviour.

use bytes::Bytes;
use hookgate::outbox::{
    AttemptRecord, AttemptResult, DeadLettered, DeliveryFilter, DeliveryStatus, NewEvent,
    ReplaySelector, Store, TargetCounts,
};
use hookgate::verify::Scheme;

pub fn event(id: &str, at_ms: i64, targets: &[&str]) -> NewEvent {
    NewEvent {
        endpoint: "databricks".into(),
        event_id: id.into(),
        key_time_ms: 0,
        scheme: Scheme::Databricks,
        name: "MODEL_VERSION_CREATED".into(),
        model: Some("m".into()),
        body: Bytes::from(format!(
            r#"{{"event":"MODEL_VERSION_CREATED","model_name":"m","id":"{id}"}}"#
        )),
        received_at_ms: at_ms,
        targets: targets.iter().map(|t| t.to_string()).collect(),
    }
}

pub fn targets(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

pub fn record(delivery_id: i64, attempt: u32, result: AttemptResult) -> AttemptRecord {
    AttemptRecord {
        delivery_id,
        attempt,
        started_at_ms: 1_000,
        duration_ms: 3,
        status_code: Some(503),
        result,
        reason: Some("http 503".into()),
    }
}

/// Claims every due delivery of `target` at `now_ms` and records `result` for each; returns
/// their ids by event id.
async fn finish_all(
    s: &Store,
    target: &str,
    now_ms: i64,
    result: impl Fn(&str) -> AttemptResult,
) -> Vec<(String, i64)> {
    let claimed = s.claim(target, 100, now_ms, now_ms + 10_000).await.unwrap();
    let mut ids = Vec::new();
    for c in claimed {
        s.record(record(c.delivery_id, 1, result(&c.event.event_id)), now_ms)
            .await
            .unwrap();
        ids.push((c.event.event_id.clone(), c.delivery_id));
    }
    ids
}

async fn exists(s: &Store, event_id: &str) -> bool {
    s.get_event(event_id).await.unwrap().is_some()
}

/// Pruning: past `retention` (the first cut-off) an event goes only if every delivery was
/// delivered; past `dead_retention` (the second) also if some are dead; with a pending
/// delivery, never. `count_rows(table)` counts a table of the store.
pub async fn prune_keeps_dead_letters_until_dead_retention<F, Fut>(s: &Store, count_rows: F)
where
    F: Fn(&'static str) -> Fut,
    Fut: std::future::Future<Output = i64>,
{
    // Received at 1 s and finished at 2 s; "young" received and delivered at 100 s (after
    // every cut-off below but the last).
    s.ingest(event("delivered", 1_000, &["t"])).await.unwrap();
    s.ingest(event("dead", 1_000, &["t"])).await.unwrap();
    s.ingest(event("pending", 1_000, &["t"])).await.unwrap();
    s.ingest(event("half-dead", 1_000, &["t", "u"]))
        .await
        .unwrap();
    s.ingest(event("unrouted", 1_000, &[])).await.unwrap();
    finish_all(s, "t", 2_000, |id| match id {
        "dead" => AttemptResult::Dead,
        "pending" => AttemptResult::Retry {
            next_attempt_at_ms: i64::MAX / 2,
        },
        _ => AttemptResult::Delivered,
    })
    .await;
    finish_all(s, "u", 2_000, |_| AttemptResult::Dead).await;
    s.ingest(event("young", 100_000, &["t"])).await.unwrap();
    finish_all(s, "t", 100_000, |_| AttemptResult::Delivered).await;

    // Past retention, within dead_retention: what was delivered (or had nothing to deliver)
    // goes; dead letters and the pending delivery stay.
    assert_eq!(s.prune(50_000, 500).await.unwrap(), 2);
    for (id, kept) in [
        ("delivered", false),
        ("unrouted", false),
        ("dead", true),
        ("half-dead", true),
        ("pending", true),
        ("young", true),
    ] {
        assert_eq!(exists(s, id).await, kept, "{id}");
    }
    let dead = s
        .list_deliveries(&DeliveryFilter {
            status: Some(DeliveryStatus::Dead),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(dead.len(), 2, "both dead letters can still be listed");
    // Nothing more goes while the cut-offs stay where they are.
    assert_eq!(s.prune(50_000, 500).await.unwrap(), 0);

    // dead_retention counts from when the delivery died (2 s), not from the event (1 s).
    assert_eq!(s.prune(50_000, 2_000).await.unwrap(), 0);
    // Past dead_retention: the events with dead letters go too, with their deliveries and
    // attempts; the pending delivery still keeps its event.
    let deliveries_before = count_rows("deliveries").await;
    assert_eq!(s.prune(50_000, 2_001).await.unwrap(), 2);
    assert!(!exists(s, "dead").await);
    assert!(!exists(s, "half-dead").await);
    assert!(exists(s, "pending").await);
    assert_eq!(count_rows("deliveries").await, deliveries_before - 3);
    assert_eq!(count_rows("events").await, 2);
    assert_eq!(count_rows("attempts").await, 2, "pending's and young's");

    // A dead_retention given shorter than retention counts as retention: the young event,
    // delivered, goes once retention has passed for it, never earlier.
    assert_eq!(s.prune(100_000, 200_000).await.unwrap(), 0);
    assert_eq!(s.prune(100_001, 200_000).await.unwrap(), 1);
    assert!(!exists(s, "young").await);
    // An old event whose delivery dies late (a long max_age, a replay that failed again)
    // keeps its dead letter for dead_retention from then.
    s.ingest(event("late", 1_000, &["t"])).await.unwrap();
    finish_all(s, "t", 300_000, |_| AttemptResult::Dead).await;
    assert_eq!(s.prune(400_000, 299_000).await.unwrap(), 0);
    assert!(exists(s, "late").await);
    assert_eq!(s.prune(400_000, 300_001).await.unwrap(), 1);
    assert!(!exists(s, "late").await);
    // However old: pending is never pruned.
    assert_eq!(s.prune(i64::MAX, i64::MAX).await.unwrap(), 0);
    assert!(exists(s, "pending").await);
}

/// Dead-lettering the pending deliveries of targets no longer configured: unleased (or
/// expired) ones only, with the reason as their last error, counted per target; replayable.
pub async fn unconfigured_targets_become_dead_letters(s: &Store) {
    s.ingest(event("a", 1_000, &["kept", "gone"]))
        .await
        .unwrap();
    s.ingest(event("b", 1_001, &["gone"])).await.unwrap();
    s.ingest(event("c", 1_002, &["also-gone"])).await.unwrap();
    s.ingest(event("d", 1_003, &["done"])).await.unwrap();
    finish_all(s, "done", 2_000, |_| AttemptResult::Delivered).await;
    // An attempt in flight: its lease runs until 60 s.
    let leased = s.claim("gone", 1, 2_000, 60_000).await.unwrap();
    assert_eq!(leased[0].event.event_id, "a");

    let dead = s
        .dead_letter_unconfigured(&targets(&["kept"]), 3_000)
        .await
        .unwrap();
    assert_eq!(
        dead,
        [
            DeadLettered {
                target: "also-gone".into(),
                count: 1
            },
            DeadLettered {
                target: "gone".into(),
                count: 1
            },
        ]
    );
    let status = |event_id: &'static str, target: &'static str| async move {
        let (_, deliveries, _) = s.get_event(event_id).await.unwrap().unwrap();
        let d = deliveries.into_iter().find(|d| d.target == target).unwrap();
        (d.status, d.last_error, d.updated_at_ms)
    };
    assert_eq!(
        status("b", "gone").await,
        (
            DeliveryStatus::Dead,
            Some("target `gone` is not in the configuration".into()),
            3_000
        )
    );
    assert_eq!(
        status("c", "also-gone").await.1.as_deref(),
        Some("target `also-gone` is not in the configuration")
    );
    assert_eq!(
        status("a", "gone").await.0,
        DeliveryStatus::Pending,
        "leased"
    );
    assert_eq!(status("a", "kept").await.0, DeliveryStatus::Pending);
    assert_eq!(status("d", "done").await.0, DeliveryStatus::Delivered);
    assert_eq!(
        s.target_counts().await.unwrap(),
        [
            TargetCounts {
                target: "also-gone".into(),
                pending: 0,
                dead: 1
            },
            TargetCounts {
                target: "gone".into(),
                pending: 1,
                dead: 1
            },
            TargetCounts {
                target: "kept".into(),
                pending: 1,
                dead: 0
            },
        ]
    );
    // Nothing left to do until the lease ends (its holder died, say).
    assert!(
        s.dead_letter_unconfigured(&targets(&["kept"]), 59_999)
            .await
            .unwrap()
            .is_empty()
    );
    let dead = s
        .dead_letter_unconfigured(&targets(&["kept"]), 60_000)
        .await
        .unwrap();
    assert_eq!(
        dead,
        [DeadLettered {
            target: "gone".into(),
            count: 1
        }]
    );

    // While the target is still missing, a replay for the configuration leaves them be, by
    // status or by id: pending again, no lane would claim them.
    let all_dead = || ReplaySelector::Status {
        status: DeliveryStatus::Dead,
        target: None,
    };
    let kept = targets(&["kept"]);
    assert_eq!(
        s.replay_configured(all_dead(), 65_000, &kept)
            .await
            .unwrap(),
        0
    );
    let (_, deliveries, _) = s.get_event("b").await.unwrap().unwrap();
    let b_gone = deliveries.iter().find(|d| d.target == "gone").unwrap().id;
    let by_id = ReplaySelector::Ids(vec![b_gone]);
    assert_eq!(s.replay_configured(by_id, 65_000, &kept).await.unwrap(), 0);
    assert_eq!(status("b", "gone").await.0, DeliveryStatus::Dead);

    // The target is back: a replay of its dead letters makes them due again.
    let replayed = s
        .replay_configured(
            ReplaySelector::Status {
                status: DeliveryStatus::Dead,
                target: Some("gone".into()),
            },
            70_000,
            &targets(&["kept", "gone"]),
        )
        .await
        .unwrap();
    assert_eq!(replayed, 2);
    // Leased for long, as an attempt in flight: the next call leaves them alone.
    let back = s.claim("gone", 10, 70_000, 1_000_000).await.unwrap();
    assert_eq!(back.len(), 2);
    assert!(back.iter().all(|c| c.attempts == 0));

    // No target configured at all: every pending, unleased delivery is dead.
    let dead = s.dead_letter_unconfigured(&[], 90_000).await.unwrap();
    assert_eq!(
        dead,
        [DeadLettered {
            target: "kept".into(),
            count: 1
        }]
    );
}

/// A record sent again (the first try failed, but its commit may have gone through) changes
/// nothing: one attempt row, the state it set; and a late one never undoes a later attempt's.
pub async fn a_record_sent_again_changes_nothing(s: &Store) {
    s.ingest(event("again", 1_000, &["t"])).await.unwrap();
    let claimed = s.claim("t", 1, 1_000, 60_000).await.unwrap();
    let id = claimed[0].delivery_id;
    let retry_at = |at: i64| AttemptResult::Retry {
        next_attempt_at_ms: at,
    };
    let first = record(id, 1, retry_at(2_000));
    s.record(first.clone(), 1_500).await.unwrap();
    s.record(first.clone(), 1_500).await.unwrap();
    let state = || async {
        let (_, deliveries, attempts) = s.get_event("again").await.unwrap().unwrap();
        let d = &deliveries[0];
        (d.status, d.attempts, d.next_attempt_at_ms, attempts.len())
    };
    assert_eq!(state().await, (DeliveryStatus::Pending, 1, 2_000, 1));

    // Attempt 2 is delivered; attempt 1's record arriving again after it changes nothing.
    let claimed = s.claim("t", 1, 2_000, 60_000).await.unwrap();
    assert_eq!(claimed[0].attempts, 1);
    let mut second = record(id, 2, AttemptResult::Delivered);
    second.started_at_ms = 2_000;
    s.record(second, 2_100).await.unwrap();
    s.record(first, 2_200).await.unwrap();
    assert_eq!(state().await, (DeliveryStatus::Delivered, 2, 2_000, 2));
}

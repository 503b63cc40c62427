//! The dispatch worker: claim due deliveries → send with the target → classify → record.
//!
//! One lane per target, each with a concurrency limit (a semaphore) and an optional rate. A lane
//! only claims as many deliveries as it has free slots, so a slow target cannot hold leases on
//! work it will not start soon. New deliveries wake the worker at once (no polling delay before
//! the first attempt); otherwise it sleeps until the next one is due, and at most a second, so
//! replays made by another process are picked up too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::now_ms;
use crate::config::{MAX_RATE_PER_SEC, MIN_RATE_PER_SEC, TargetConfig};
use crate::dispatch::retry::{self, Decision, Outcome, RetryPolicy};
use crate::event::Event;
use crate::metrics::Metrics;
use crate::outbox::{AttemptRecord, AttemptResult, Claimed, Store};
use crate::targets::{DeliveryContext, Target, Targets};
use crate::verify::Verified;

/// Longest sleep between looks at the queue.
const MAX_IDLE: Duration = Duration::from_secs(1);
/// Lease margin beyond the attempt's own timeout and rate wait.
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// How often a finished attempt's record is tried, the first pause between tries (doubling:
/// 0.1 + 0.2 + 0.4 + 0.8 s, well within [`LEASE_MARGIN`]).
const RECORD_TRIES: u32 = 5;
const RECORD_RETRY_FIRST: Duration = Duration::from_millis(100);

/// Spaces sends to at most `per_sec` per second (Slack takes about one per second per webhook).
struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    fn new(per_sec: f64) -> Pacer {
        Pacer {
            interval: pacing_interval(per_sec),
            next: Mutex::new(Instant::now()),
        }
    }

    async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }
}

/// The time between two sends at `per_sec` a second, within the interval of the rates the
/// configuration accepts. Loading refuses other rates; this keeps any value that reaches the
/// dispatcher anyway (tiny, huge, infinite, NaN) from panicking it, as `from_secs_f64` would.
fn pacing_interval(per_sec: f64) -> Duration {
    let longest = Duration::from_secs_f64(1.0 / MIN_RATE_PER_SEC);
    let shortest = Duration::from_secs_f64(1.0 / MAX_RATE_PER_SEC);
    // Fails for NaN and for what does not fit a Duration (1 / 1e-320 is infinite).
    Duration::try_from_secs_f64(1.0 / per_sec)
        .unwrap_or(longest)
        .clamp(shortest, longest)
}

/// `now_ms` plus `d` in the store's milliseconds, saturating: the configuration bounds every
/// duration, but a sum that overflowed would wrap into the past (a lease already expired, a
/// retry due at once) or panic.
fn ms_after(now_ms: i64, d: Duration) -> i64 {
    now_ms.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

struct Lane {
    target: Arc<Target>,
    policy: RetryPolicy,
    slots: Arc<Semaphore>,
    pacer: Option<Pacer>,
    lease: Duration,
}

/// What one round of claims found, which decides how long the loop sleeps before the next.
#[derive(Default)]
struct Round {
    claim_failed: bool,
    /// A lane has no free slot left: a finishing attempt wakes the loop.
    lane_full: bool,
    /// A lane got fewer deliveries than it had slots for: it has nothing due now.
    lane_short: bool,
}

impl Round {
    /// The pause when the queue need not be asked when its next delivery is due: after a failed
    /// claim (look again in a second rather than spin on a failing store), and when every lane
    /// is full (a finishing attempt wakes the loop). Under a backlog that is every round, and
    /// the question would cost a read per delivery.
    fn pause_without_asking(&self) -> Option<Duration> {
        (self.claim_failed || !self.lane_short).then_some(MAX_IDLE)
    }

    /// The pause given when the next delivery is due (`Err`: the store could not say).
    fn pause_until(&self, due: Result<Option<i64>, ()>, now: i64) -> Duration {
        match due {
            Ok(Some(due)) if due > now => Duration::from_millis((due - now) as u64).min(MAX_IDLE),
            // Due now but not claimed: it belongs to a full lane, which a finishing attempt
            // wakes.
            Ok(Some(_)) if self.lane_full => MAX_IDLE,
            // It became due since the claims: claim again at once.
            Ok(Some(_)) => Duration::ZERO,
            Ok(None) | Err(()) => MAX_IDLE,
        }
    }
}

pub struct Dispatcher {
    store: Store,
    lanes: Vec<Arc<Lane>>,
    /// Made at start when a target delivers over HTTP (so the first delivery does not wait for
    /// the TLS set-up), never otherwise: a gateway that only stores events, or writes them to a
    /// `log` target, need not carry it (its TLS set-up and the system's CA certificates).
    client: Option<reqwest::Client>,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        targets: &Targets,
        configs: &std::collections::BTreeMap<String, TargetConfig>,
        metrics: Arc<Metrics>,
        wake: Arc<Notify>,
    ) -> Dispatcher {
        let lanes: Vec<_> = configs
            .iter()
            .filter_map(|(name, cfg)| {
                let target = targets.get(name)?.clone();
                // More permits than tokio's semaphore holds would panic it; so many attempts
                // in flight is no limit anyway.
                let concurrency = cfg.concurrency.clamp(1, Semaphore::MAX_PERMITS);
                let pacer = cfg.rate_per_sec.filter(|r| *r > 0.0).map(Pacer::new);
                // A claimed delivery may wait behind every other slot's turn at the pacer.
                let rate_wait = pacer.as_ref().map_or(Duration::ZERO, |p| {
                    let slots = u32::try_from(concurrency).unwrap_or(u32::MAX);
                    p.interval.checked_mul(slots).unwrap_or(Duration::MAX)
                });
                Some(Arc::new(Lane {
                    target,
                    policy: RetryPolicy::from(&cfg.retry),
                    slots: Arc::new(Semaphore::new(concurrency)),
                    pacer,
                    lease: cfg
                        .retry
                        .timeout
                        .saturating_add(rate_wait)
                        .saturating_add(LEASE_MARGIN),
                }))
            })
            .collect();
        let client = lanes
            .iter()
            .any(|l| l.target.needs_http())
            .then(crate::targets::http_client);
        Dispatcher {
            store,
            lanes,
            client,
            metrics,
            wake,
        }
    }

    /// Run until `stop`; then wait for attempts in flight (the caller bounds how long).
    pub async fn run(self, stop: CancellationToken) {
        let this = Arc::new(self);
        let inflight = TaskTracker::new();
        let names: Vec<String> = this
            .lanes
            .iter()
            .map(|l| l.target.name().to_string())
            .collect();
        while !stop.is_cancelled() {
            let now = now_ms();
            let mut round = Round::default();
            for lane in &this.lanes {
                let free = lane.slots.available_permits();
                if free == 0 {
                    round.lane_full = true;
                    continue;
                }
                let lease_until = ms_after(now, lane.lease);
                let batch = u32::try_from(free).unwrap_or(u32::MAX);
                match this
                    .store
                    .claim(lane.target.name(), batch, now, lease_until)
                    .await
                {
                    Ok(claims) => {
                        if claims.len() < free {
                            round.lane_short = true;
                        } else {
                            round.lane_full = true;
                        }
                        for claim in claims {
                            let permit = lane
                                .slots
                                .clone()
                                .try_acquire_owned()
                                .expect("claimed no more than the free slots");
                            inflight.spawn(this.clone().attempt(lane.clone(), claim, permit));
                        }
                    }
                    Err(e) => {
                        round.claim_failed = true;
                        tracing::warn!(target = lane.target.name(), error = %e, "could not claim deliveries");
                    }
                }
            }
            let pause = match round.pause_without_asking() {
                Some(pause) => pause,
                None => {
                    let due = this.store.next_due_ms(&names).await.map_err(|e| {
                        tracing::warn!(error = %e, "could not read the queue");
                    });
                    round.pause_until(due, now_ms())
                }
            };
            if pause.is_zero() {
                continue;
            }
            tokio::select! {
                _ = this.wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
                _ = stop.cancelled() => {}
            }
        }
        inflight.close();
        inflight.wait().await;
    }

    async fn attempt(
        self: Arc<Self>,
        lane: Arc<Lane>,
        claim: Claimed,
        permit: OwnedSemaphorePermit,
    ) {
        let target = lane.target.name();
        // Where the lease ends, near enough (it was taken just before): retrying a record
        // stops well before, or another replica could send the delivery meanwhile.
        let now_instant = tokio::time::Instant::now();
        let record_by = now_instant
            .checked_add(lane.lease.saturating_sub(LEASE_MARGIN / 2))
            .unwrap_or(now_instant + LEASE_MARGIN);
        let attempt = claim.attempts + 1;
        let ev = &claim.event;
        let delivery_id = (ev.scheme == crate::verify::Scheme::Mlflow).then(|| ev.event_id.clone());
        let parsed = Event::parse(
            ev.scheme,
            &Verified::from_store(delivery_id),
            ev.body.clone(),
        );
        if let Some(p) = &lane.pacer {
            p.wait().await;
        }
        let started_ms = now_ms();
        let started = Instant::now();
        let (outcome, status_code) = match &parsed {
            Ok(event) => {
                let ctx = DeliveryContext {
                    event,
                    event_id: &ev.event_id,
                    endpoint: &ev.endpoint,
                    attempt,
                    replayed_at_ms: claim.replayed_at_ms(),
                    now_unix: started_ms / 1000,
                };
                let d = lane.target.deliver(self.client.as_ref(), &ctx).await;
                (d.outcome, d.status_code)
            }
            Err(e) => (
                Outcome::GiveUp {
                    reason: format!("stored body no longer parses: {e}"),
                },
                None,
            ),
        };
        let elapsed = started.elapsed();
        self.metrics
            .delivery_duration
            .with_label_values(&[target])
            .observe(elapsed.as_secs_f64());
        self.metrics
            .delivery_attempts
            .with_label_values(&[target, outcome.label()])
            .inc();
        let now = now_ms();
        let age = Duration::from_millis((now - claim.cycle_started_at_ms).max(0) as u64);
        let decision = retry::decide(&lane.policy, attempt, age, &outcome, &mut rand::rng());
        let (result, reason) = match (decision, &outcome) {
            (None, _) => {
                self.metrics
                    .deliveries
                    .with_label_values(&[target, "delivered"])
                    .inc();
                self.metrics
                    .event_to_delivery
                    .with_label_values(&[target])
                    .observe((now - ev.received_at_ms).max(0) as f64 / 1000.0);
                tracing::info!(target, event_id = %ev.event_id, attempt, status = status_code, "delivered");
                (AttemptResult::Delivered, None)
            }
            (Some(Decision::RetryAfter(delay)), Outcome::Retry { reason, .. }) => {
                self.metrics
                    .deliveries
                    .with_label_values(&[target, "retried"])
                    .inc();
                tracing::warn!(target, event_id = %ev.event_id, attempt, %reason, retry_in = ?delay, "attempt failed; will retry");
                (
                    AttemptResult::Retry {
                        next_attempt_at_ms: ms_after(now, delay),
                    },
                    Some(reason.clone()),
                )
            }
            (Some(Decision::RetryAfter(delay)), _) => (
                AttemptResult::Retry {
                    next_attempt_at_ms: ms_after(now, delay),
                },
                None,
            ),
            (Some(Decision::Dead { reason }), _) => {
                self.metrics
                    .deliveries
                    .with_label_values(&[target, "dead"])
                    .inc();
                tracing::error!(target, event_id = %ev.event_id, attempt, %reason, "delivery is dead; replay it once the cause is fixed");
                (AttemptResult::Dead, Some(reason))
            }
        };
        let record = AttemptRecord {
            delivery_id: claim.delivery_id,
            attempt,
            started_at_ms: started_ms,
            duration_ms: elapsed.as_millis() as i64,
            status_code,
            result,
            reason,
        };
        // Without its record the lease runs out and the delivery is sent again (at least once,
        // never lost), so a store that fails for a moment (a connection the database dropped,
        // a disk being cleared) is given a few more tries first, all within the lease. A retry
        // of a record whose commit went through after all changes nothing (see the stores).
        let recorded = with_retries(
            record_by,
            || self.store.record(record.clone(), now),
            |e| tracing::warn!(target, event_id = %ev.event_id, error = %e, "could not record the attempt; trying again"),
        )
        .await;
        if let Err(e) = recorded {
            tracing::error!(target, event_id = %ev.event_id, error = %e, "could not record the attempt; it is made again once its lease ends");
        }
        drop(permit);
        self.wake.notify_one();
    }
}

/// `op` until it succeeds, [`RECORD_TRIES`] times at most and never starting a try after
/// `deadline`, pausing (doubling from [`RECORD_RETRY_FIRST`]) after each failure but the last,
/// which is returned.
async fn with_retries<F, Fut, E>(
    deadline: tokio::time::Instant,
    mut op: F,
    on_retry: impl Fn(&E),
) -> Result<(), E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
{
    let mut pause = RECORD_RETRY_FIRST;
    let mut tried = 1;
    loop {
        match op().await {
            Err(e) if tried < RECORD_TRIES && tokio::time::Instant::now() + pause < deadline => {
                on_retry(&e);
                tokio::time::sleep(pause).await;
                pause *= 2;
                tried += 1;
            }
            done => return done,
        }
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test(start_paused = true)]
    async fn a_record_is_tried_again_a_few_times() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let calls = AtomicU32::new(0);
        let retried = AtomicU32::new(0);
        let failing_twice = || async {
            let n = calls.fetch_add(1, Ordering::Relaxed);
            if n < 2 { Err(n) } else { Ok(()) }
        };
        let started = tokio::time::Instant::now();
        let far = tokio::time::Instant::now() + LEASE_MARGIN;
        let r = with_retries(far, failing_twice, |_| {
            retried.fetch_add(1, Ordering::Relaxed);
        })
        .await;
        assert_eq!(r, Ok(()));
        assert_eq!(calls.load(Ordering::Relaxed), 3);
        assert_eq!(retried.load(Ordering::Relaxed), 2);
        assert_eq!(
            started.elapsed(),
            RECORD_RETRY_FIRST * 3,
            "0.1 s, then 0.2 s"
        );

        calls.store(0, Ordering::Relaxed);
        let started = tokio::time::Instant::now();
        let always = || async { Err::<(), _>(calls.fetch_add(1, Ordering::Relaxed)) };
        let far = tokio::time::Instant::now() + LEASE_MARGIN;
        assert_eq!(
            with_retries(far, always, |_| {}).await,
            Err(RECORD_TRIES - 1),
            "the last error"
        );
        assert_eq!(calls.load(Ordering::Relaxed), RECORD_TRIES);
        assert!(started.elapsed() < LEASE_MARGIN, "{:?}", started.elapsed());

        // No try starts past the deadline: here after the first pause (0.1 s) and before the
        // second (0.2 s), so two tries.
        calls.store(0, Ordering::Relaxed);
        let soon = tokio::time::Instant::now() + RECORD_RETRY_FIRST * 2;
        assert_eq!(with_retries(soon, always, |_| {}).await, Err(1));
        assert_eq!(calls.load(Ordering::Relaxed), 2);
    }

    use std::collections::BTreeMap;

    use super::*;
    use crate::config::{HttpConfig, LogConfig, TargetKind};
    use crate::targets::testutil::target_config;

    async fn dispatcher(
        dir: &std::path::Path,
        configs: &BTreeMap<String, TargetConfig>,
    ) -> Dispatcher {
        let url = format!("sqlite://{}", dir.join("d.db").display());
        let metrics = Arc::new(Metrics::new());
        let store = Store::open(&url, metrics.clone()).await.unwrap();
        let targets = Targets::build(configs).unwrap();
        Dispatcher::new(store, &targets, configs, metrics, Arc::new(Notify::new()))
    }

    #[test]
    fn the_queue_is_asked_only_when_a_lane_has_room_and_nothing_claimed_for_it() {
        let round = |claim_failed, lane_full, lane_short| Round {
            claim_failed,
            lane_full,
            lane_short,
        };
        // Every lane full (the backlog case): wait for a finishing attempt, ask nothing.
        assert_eq!(
            round(false, true, false).pause_without_asking(),
            Some(MAX_IDLE)
        );
        // A failing store: look again in a second.
        assert_eq!(
            round(true, false, true).pause_without_asking(),
            Some(MAX_IDLE)
        );
        // A lane with room and nothing due for it: ask when the next delivery is due.
        let short = round(false, false, true);
        assert_eq!(short.pause_without_asking(), None);
        let now = 1_000_000;
        assert_eq!(
            short.pause_until(Ok(Some(now + 250)), now),
            Duration::from_millis(250)
        );
        assert_eq!(short.pause_until(Ok(Some(now + 60_000)), now), MAX_IDLE);
        assert_eq!(short.pause_until(Ok(Some(now)), now), Duration::ZERO);
        assert_eq!(short.pause_until(Ok(None), now), MAX_IDLE);
        assert_eq!(short.pause_until(Err(()), now), MAX_IDLE);
        // Due now while another lane is full: that lane's work, which its next finish wakes.
        assert_eq!(
            round(false, true, true).pause_until(Ok(Some(now)), now),
            MAX_IDLE
        );
    }

    #[test]
    fn pacing_intervals_and_deadlines_never_panic_or_wrap() {
        let day = Duration::from_secs(86_400);
        assert_eq!(pacing_interval(2.0), Duration::from_millis(500));
        assert_eq!(pacing_interval(MIN_RATE_PER_SEC), day);
        // Rates loading refuses: clamped to the accepted interval instead of a panic.
        for (rate, want) in [
            (1e-20, day),
            (1e-320, day),
            (f64::NAN, day),
            (-1.0, day),
            (1e12, Duration::from_micros(1)),
            (f64::INFINITY, Duration::from_micros(1)),
        ] {
            assert_eq!(pacing_interval(rate), want, "{rate}");
        }
        assert_eq!(ms_after(1_000, Duration::from_millis(1_500)), 2_500);
        assert_eq!(ms_after(1_000, Duration::MAX), i64::MAX);
        assert_eq!(ms_after(i64::MAX - 1, Duration::from_secs(1)), i64::MAX);
    }

    #[tokio::test]
    async fn a_target_with_extreme_values_still_gets_a_lane_that_runs() {
        let mut cfg = target_config(TargetKind::Log(LogConfig { path: None }));
        cfg.rate_per_sec = Some(1e-20);
        cfg.concurrency = usize::MAX;
        cfg.retry.timeout = Duration::MAX;
        let configs = BTreeMap::from([("audit".to_string(), cfg)]);
        let dir = tempfile::tempdir().unwrap();
        let d = dispatcher(dir.path(), &configs).await;
        let lane = &d.lanes[0];
        let interval = lane.pacer.as_ref().map(|p| p.interval);
        assert_eq!(interval, Some(Duration::from_secs(86_400)));
        assert_eq!(lane.slots.available_permits(), Semaphore::MAX_PERMITS);
        assert_eq!(lane.lease, Duration::MAX);
        // Rounds of claims, each computing where the lease ends.
        let store = d.store.clone();
        let stop = CancellationToken::new();
        let run = tokio::spawn(d.run(stop.clone()));
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.cancel();
        run.await
            .expect("the dispatcher ran and stopped without a panic");
        store.close().await;
    }

    #[tokio::test]
    async fn the_http_client_is_made_only_when_a_target_delivers_over_http() {
        let log = || target_config(TargetKind::Log(LogConfig { path: None }));
        let http = || {
            target_config(TargetKind::Http(HttpConfig {
                url: "http://127.0.0.1:9/hook".into(),
                method: "POST".into(),
                headers: BTreeMap::new(),
                body: None,
                signing_secret: None,
            }))
        };
        for (configs, made) in [
            (BTreeMap::new(), false),
            (BTreeMap::from([("audit".to_string(), log())]), false),
            (
                BTreeMap::from([("audit".to_string(), log()), ("ci".to_string(), http())]),
                true,
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let d = dispatcher(dir.path(), &configs).await;
            assert_eq!(d.client.is_some(), made, "targets {:?}", configs.keys());
            d.store.close().await;
        }
    }
}

//! Stage 5, outbox: the durable store of events and their deliveries.
//!
//! Invariants:
//! - An event and one delivery per target are committed in one transaction, and the sender's 2xx
//!   follows that commit ([`Store::ingest`]).
//! - An event id is stored once; a repeat is reported as [`Ingested::Duplicate`] and stores nothing.
//! - A delivery is claimed with a lease that is committed before the outbound call; the outcome
//!   is recorded in a later transaction. No transaction is held across a network call.
//! - Times are unix milliseconds (`*_ms`).
//!
//! Two back-ends: [`SqliteStore`] (embedded, one process) and [`PostgresStore`] (shared by
//! several replicas; leases are never released early there, they expire).

mod group;
mod postgres;
mod sqlite;
mod wal_sync;

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use crate::metrics::Metrics;
use crate::verify::Scheme;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// The columns [`DeliveryRow`]s are read from, in order; both stores use it.
const DELIVERY_SELECT: &str =
    "SELECT d.id, e.event_id, e.endpoint, e.name, e.model, d.target, d.status, d.attempts,
        d.next_attempt_at, d.last_error, d.created_at, d.updated_at
 FROM deliveries d JOIN events e ON e.id = d.event_row";

/// A stored scheme name back as a [`Scheme`].
fn parse_scheme(s: &str) -> Result<Scheme, StoreError> {
    Scheme::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown scheme {s:?}")))
}

/// Errors the store reports. The ingress maps any of them to 503 (the sender retries).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Not the error's `source`: the message already includes it, and a report that walks the
    /// chain (`{:#}`) would print it twice.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("the store is shutting down")]
    Closed,
    #[error("unsupported store url (expected sqlite://… or postgres://…)")]
    UnsupportedUrl,
    /// The URL names a supported store but cannot be used; never quotes the URL (a password).
    #[error("invalid store url: {0}")]
    InvalidUrl(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A group-committed transaction failed; every operation in it gets this.
    #[error("transaction failed: {0}")]
    Transaction(String),
    /// The store's files cannot be used as they are (the message says why and what to do).
    #[error("{0}")]
    Unusable(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e)
    }
}

/// The SQLite writer's errors (rusqlite) fail its transaction like sqlx's do.
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Transaction(e.to_string())
    }
}

/// A verified, parsed event ready to be stored with its deliveries.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub endpoint: String,
    pub event_id: String,
    /// Must be a function of `event_id` (see [`crate::event::Identity::time_ms`]): the SQLite
    /// store's unique key is (`key_time_ms`, `event_id`).
    pub key_time_ms: i64,
    pub scheme: Scheme,
    pub name: String,
    pub model: Option<String>,
    pub body: Bytes,
    pub received_at_ms: i64,
    /// One delivery is created per target (already de-duplicated by the router).
    pub targets: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    Accepted,
    Duplicate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Dead,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        match s {
            "pending" => Some(DeliveryStatus::Pending),
            "delivered" => Some(DeliveryStatus::Delivered),
            "dead" => Some(DeliveryStatus::Dead),
            _ => None,
        }
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event as stored.
#[derive(Debug, Clone, Serialize)]
pub struct StoredEvent {
    pub event_id: String,
    pub endpoint: String,
    pub scheme: Scheme,
    pub name: String,
    pub model: Option<String>,
    #[serde(skip)]
    pub body: Bytes,
    pub received_at_ms: i64,
}

/// A delivery claimed for one attempt; its lease is already committed.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery_id: i64,
    pub target: String,
    /// Attempts made before this one (in the current cycle; a replay starts a new cycle).
    pub attempts: u32,
    /// When the current cycle began (creation or last replay): `max_age` counts from here.
    pub cycle_started_at_ms: i64,
    pub event: Arc<StoredEvent>,
}

impl Claimed {
    /// When an operator replayed the delivery, if its current cycle began with a replay. Both
    /// stores start a delivery's first cycle at the time its event was received, and a replay
    /// starts a new one at the time of the replay.
    pub fn replayed_at_ms(&self) -> Option<i64> {
        (self.cycle_started_at_ms != self.event.received_at_ms).then_some(self.cycle_started_at_ms)
    }
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptResult {
    Delivered,
    Retry { next_attempt_at_ms: i64 },
    Dead,
}

impl AttemptResult {
    /// The delivery's status after this attempt, and when it is due again (a retry only).
    pub fn next_state(&self) -> (DeliveryStatus, Option<i64>) {
        match *self {
            AttemptResult::Delivered => (DeliveryStatus::Delivered, None),
            AttemptResult::Retry { next_attempt_at_ms } => {
                (DeliveryStatus::Pending, Some(next_attempt_at_ms))
            }
            AttemptResult::Dead => (DeliveryStatus::Dead, None),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            AttemptResult::Delivered => "delivered",
            AttemptResult::Retry { .. } => "retry",
            AttemptResult::Dead => "dead",
        }
    }
}

/// One attempt to record.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub delivery_id: i64,
    /// 1-based number of this attempt in the current cycle.
    pub attempt: u32,
    pub started_at_ms: i64,
    pub duration_ms: i64,
    pub status_code: Option<u16>,
    pub result: AttemptResult,
    /// Short reason (`http 503`, `timeout`, `http 404: channel_not_found`); never a secret.
    pub reason: Option<String>,
}

/// A delivery as listed by the admin API and the CLI.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRow {
    pub id: i64,
    pub event_id: String,
    pub endpoint: String,
    pub event: String,
    pub model: Option<String>,
    pub target: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at_ms: i64,
    pub last_error: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// One recorded attempt.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRow {
    pub delivery_id: i64,
    pub attempt: u32,
    pub started_at_ms: i64,
    pub duration_ms: i64,
    pub status_code: Option<u16>,
    pub result: String,
    pub reason: Option<String>,
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub status: Option<DeliveryStatus>,
    pub target: Option<String>,
    pub limit: u32,
}

/// Which deliveries to put back in the queue.
#[derive(Debug, Clone)]
pub enum ReplaySelector {
    Ids(Vec<i64>),
    /// Every delivery with this status (dead or delivered), optionally for one target.
    Status {
        status: DeliveryStatus,
        target: Option<String>,
    },
}

/// Deliveries of one target turned into dead letters by
/// [`Store::dead_letter_unconfigured`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLettered {
    pub target: String,
    pub count: u64,
}

/// The `last_error` of a delivery whose target left the configuration, as SQL over the row's
/// `target` column (both stores build it the same way, so `deliveries list` reads the same).
const UNCONFIGURED_ERROR_SQL: &str = "'target `' || target || '` is not in the configuration'";

/// Per-target queue depth, for the gauges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TargetCounts {
    pub target: String,
    pub pending: i64,
    pub dead: i64,
}

/// The configured store. An enum rather than a trait object: the set of back-ends is closed and
/// this keeps the hot path free of boxing.
#[derive(Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl Store {
    /// Whether `url` names a store this build can open, without opening it or connecting: what
    /// [`Store::open`] refuses before it reaches the database (`hookgate check` asks this). The
    /// error never quotes the URL, which may hold a password.
    pub fn check_url(url: &str) -> Result<(), StoreError> {
        if url.starts_with("sqlite:") {
            Ok(())
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            postgres::parse_url(url).map(drop)
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }

    /// The parameters of a PostgreSQL `url` that opening it ignores (unknown names: a misspelt
    /// `password=`, say), which `serve` logs and `hookgate check` shows. Empty for anything
    /// else, and for a URL [`Store::check_url`] refuses.
    pub fn ignored_url_parameters(url: &str) -> Vec<String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            postgres::parse_url(url)
                .map(|(_, ignored)| ignored)
                .unwrap_or_default()
        } else {
            Vec::new()
        }
    }

    /// Open (and create or migrate) the store named by `url`.
    pub async fn open(url: &str, metrics: Arc<Metrics>) -> Result<Store, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Store::Sqlite(SqliteStore::open(url, metrics).await?))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Store::Postgres(PostgresStore::open(url, metrics).await?))
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }

    /// Store an event and its deliveries durably (group-committed with concurrent callers).
    pub async fn ingest(&self, event: NewEvent) -> Result<Ingested, StoreError> {
        match self {
            Store::Sqlite(s) => s.ingest(event).await,
            Store::Postgres(s) => s.ingest(event).await,
        }
    }

    /// Claim up to `limit` due deliveries of `target`, leasing them until `lease_until_ms`.
    pub async fn claim(
        &self,
        target: &str,
        limit: u32,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<Vec<Claimed>, StoreError> {
        match self {
            Store::Sqlite(s) => s.claim(target, limit, now_ms, lease_until_ms).await,
            Store::Postgres(s) => s.claim(target, limit, now_ms, lease_until_ms).await,
        }
    }

    /// Record the outcome of one attempt (complete, reschedule or dead-letter) and release it.
    pub async fn record(&self, record: AttemptRecord, now_ms: i64) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.record(record, now_ms).await,
            Store::Postgres(s) => s.record(record, now_ms).await,
        }
    }

    /// Release every lease held by a previous run (start-up). Only the embedded store does: its
    /// one process is the one starting. A shared store returns 0, as other replicas' leases are
    /// live; a dead replica's leases expire instead.
    pub async fn release_leases(&self) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.release_leases().await,
            Store::Postgres(s) => s.release_leases().await,
        }
    }

    /// Put deliveries back in the queue, due now, with a fresh attempt budget.
    pub async fn replay(&self, sel: ReplaySelector, now_ms: i64) -> Result<u64, StoreError> {
        self.replay_within(sel, now_ms, None).await
    }

    /// [`Store::replay`], taking only deliveries to the `configured` targets: one to a target
    /// the configuration lacks would be pending with no lane to claim it, until the next
    /// reload or start turned it dead again. What the CLI and the admin API replay.
    pub async fn replay_configured(
        &self,
        sel: ReplaySelector,
        now_ms: i64,
        configured: &[String],
    ) -> Result<u64, StoreError> {
        self.replay_within(sel, now_ms, Some(configured)).await
    }

    async fn replay_within(
        &self,
        sel: ReplaySelector,
        now_ms: i64,
        targets: Option<&[String]>,
    ) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.replay(sel, now_ms, targets).await,
            Store::Postgres(s) => s.replay(sel, now_ms, targets).await,
        }
    }

    /// Delete up to 10,000 events that are done with: received before `before_ms`, with every
    /// delivery delivered (or none at all), or dead since before `dead_before_ms` (the earlier
    /// cut-off). A pending delivery keeps its event whatever its age, and a dead letter keeps it
    /// for `store.dead_retention` from when it went dead (not from when the event came: a
    /// delivery that dies late, or is replayed and dies again, is kept as long), so that an
    /// operator can still list and replay it.
    pub async fn prune(&self, before_ms: i64, dead_before_ms: i64) -> Result<u64, StoreError> {
        let dead_before_ms = dead_before_ms.min(before_ms);
        match self {
            Store::Sqlite(s) => s.prune(before_ms, dead_before_ms).await,
            Store::Postgres(s) => s.prune(before_ms, dead_before_ms).await,
        }
    }

    /// Turn the pending deliveries to targets not in `configured` into dead letters, with the
    /// reason as their last error; returns how many per target, in target order. No lane
    /// claims such a delivery, so without this it would wait for ever, unseen by
    /// `max_attempts`, `max_age` and a replay of dead letters; as a dead letter it is listed,
    /// counted and replayed like any other once the target is back. A delivery under a lease
    /// that has not expired is left alone: its attempt is in flight (in this process, or in
    /// another replica of a shared store) and records its own outcome.
    pub async fn dead_letter_unconfigured(
        &self,
        configured: &[String],
        now_ms: i64,
    ) -> Result<Vec<DeadLettered>, StoreError> {
        match self {
            Store::Sqlite(s) => s.dead_letter_unconfigured(configured, now_ms).await,
            Store::Postgres(s) => s.dead_letter_unconfigured(configured, now_ms).await,
        }
    }

    /// The earliest `next_attempt_at_ms` of a pending, unleased delivery to one of `targets`
    /// (the configured ones: a delivery to a target no longer configured is never claimed, so it
    /// must not count as due). The shared store also counts leased ones, as due when their lease
    /// ends: a lease there may belong to a replica that died.
    pub async fn next_due_ms(&self, targets: &[String]) -> Result<Option<i64>, StoreError> {
        match self {
            Store::Sqlite(s) => s.next_due_ms(targets).await,
            Store::Postgres(s) => s.next_due_ms(targets).await,
        }
    }

    pub async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        match self {
            Store::Sqlite(s) => s.list_deliveries(filter).await,
            Store::Postgres(s) => s.list_deliveries(filter).await,
        }
    }

    /// An event with its deliveries and their attempts.
    pub async fn get_event(
        &self,
        event_id: &str,
    ) -> Result<Option<(StoredEvent, Vec<DeliveryRow>, Vec<AttemptRow>)>, StoreError> {
        match self {
            Store::Sqlite(s) => s.get_event(event_id).await,
            Store::Postgres(s) => s.get_event(event_id).await,
        }
    }

    pub async fn count_events(&self) -> Result<i64, StoreError> {
        match self {
            Store::Sqlite(s) => s.count_events().await,
            Store::Postgres(s) => s.count_events().await,
        }
    }

    pub async fn target_counts(&self) -> Result<Vec<TargetCounts>, StoreError> {
        match self {
            Store::Sqlite(s) => s.target_counts().await,
            Store::Postgres(s) => s.target_counts().await,
        }
    }

    /// A cheap round trip, for `/readyz`.
    /// Returns once every write queued before it has been through the store's writer: an
    /// ingest whose caller went away meanwhile is committed (or failed) by then.
    pub async fn flush(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.flush().await,
            Store::Postgres(s) => s.flush().await,
        }
    }

    /// For `serve`: the embedded store's file for this process alone (see
    /// [`SqliteStore::lock_for_serve`]); a shared store takes nothing, its replicas coordinate
    /// by leases.
    pub fn lock_for_serve(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.lock_for_serve(),
            Store::Postgres(_) => Ok(()),
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.ping().await,
            Store::Postgres(s) => s.ping().await,
        }
    }

    /// Finish queued writes and close.
    pub async fn close(&self) {
        match self {
            Store::Sqlite(s) => s.close().await,
            Store::Postgres(s) => s.close().await,
        }
    }
}

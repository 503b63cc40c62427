//! The shared store: PostgreSQL, for several gateway replicas behind one load balancer.
//!
//! The outbox invariants (see the parent module) hold across replicas, not only inside one
//! process:
//! - An event and its deliveries are one statement, committed before the sender's 2xx. Ingests
//!   (and finished attempts) go through one writer task per replica, which runs everything queued
//!   while its previous commit was in flight as ONE statement (data-modifying CTEs over `UNNEST`
//!   arrays): one round trip and one WAL flush for the whole batch (group commit). How durable
//!   a commit is, is the server's setting: with `synchronous_commit = on` (the default) it is
//!   flushed to disk (and to synchronous standbys) before the statement returns.
//! - `event_id` is unique in the table, and events are inserted with `ON CONFLICT (event_id) DO
//!   NOTHING RETURNING`: of two replicas taking the same event at once, the second waits for the
//!   first one's commit and then stores nothing (`Ingested::Duplicate`). Rows are inserted in
//!   `event_id` order so that two such batches always wait on each other in the same order and
//!   cannot deadlock.
//! - A delivery is claimed with `FOR UPDATE SKIP LOCKED` and a lease in one autocommitted
//!   statement: a row another replica is claiming is skipped, not waited for, and a row it has
//!   claimed no longer qualifies once its lease is committed, so no two replicas hold one
//!   delivery at once.
//! - Leases are never released wholesale: every other replica's leases are live. A replica that
//!   died leaves leases that simply expire, after which any replica claims the deliveries again
//!   (at least once, never lost). Lease times are wall-clock milliseconds of the replicas, so
//!   their clocks must agree to well within a lease (NTP).
//!
//! Only plain TCP is supported (sqlx is built without TLS here): an `sslmode` that demands TLS
//! is refused at start-up with a clear error rather than failing on first connect.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow, PgSslMode};
use sqlx::{ConnectOptions, Connection, Postgres, QueryBuilder, Row};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

use super::group::{self, Batch, Batcher, Queue, Queued, Reply};
use super::{
    AttemptRecord, AttemptRow, Claimed, DELIVERY_SELECT, DeadLettered, DeliveryFilter, DeliveryRow,
    DeliveryStatus, Ingested, NewEvent, ReplaySelector, StoreError, StoredEvent, TargetCounts,
    UNCONFIGURED_ERROR_SQL, parse_scheme,
};
use crate::metrics::Metrics;

/// Connections per replica beside the writer's own: claims, the due-time query, admin reads.
const POOL_SIZE: u32 = 6;
/// A server that does not answer within this is unavailable: the caller gets an error (the
/// sender a 503) instead of waiting indefinitely.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest one batch statement may take. When it is cut off its outcome is unknown: callers get
/// an error, so senders retry (and an event that did commit is then a duplicate) and an
/// attempt is made again after its lease (at least once).
const BATCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Most events one prune deletes (the caller repeats while it gets this many).
const PRUNE_LIMIT: i64 = 10_000;
/// Key of the advisory lock that serialises schema creation across replicas starting at once
/// (`CREATE TABLE IF NOT EXISTS` alone races on the system catalogs). "hookgate" in ASCII.
const SCHEMA_LOCK: i64 = 0x686f_6f6b_6761_7465;

/// The objects `SCHEMA` creates; when all exist, start-up skips the DDL, so a role without
/// `CREATE` on the schema can run the gateway once the tables are there.
const SCHEMA_OBJECTS: &[&str] = &[
    "events",
    "events_received_at",
    "deliveries",
    "deliveries_due",
    "attempts",
    "attempts_delivery",
];

/// Same tables, columns and meaning as the SQLite store; times are unix milliseconds.
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS events (
        id BIGSERIAL PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        endpoint TEXT NOT NULL,
        scheme TEXT NOT NULL,
        name TEXT NOT NULL,
        model TEXT,
        body BYTEA NOT NULL,
        received_at BIGINT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS events_received_at ON events (received_at)",
    // UNIQUE (event_row, target) also indexes the cascade from a pruned event.
    "CREATE TABLE IF NOT EXISTS deliveries (
        id BIGSERIAL PRIMARY KEY,
        event_row BIGINT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
        target TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at BIGINT NOT NULL,
        cycle_started_at BIGINT NOT NULL,
        lease_until BIGINT,
        last_error TEXT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        UNIQUE (event_row, target)
    )",
    // The claim query: pending rows of one target in due order.
    "CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, target, next_attempt_at)",
    "CREATE TABLE IF NOT EXISTS attempts (
        id BIGSERIAL PRIMARY KEY,
        delivery_id BIGINT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
        attempt INTEGER NOT NULL,
        started_at BIGINT NOT NULL,
        duration_ms BIGINT NOT NULL,
        status_code INTEGER,
        result TEXT NOT NULL,
        reason TEXT
    )",
    "CREATE INDEX IF NOT EXISTS attempts_delivery ON attempts (delivery_id)",
];

/// One batch: new events with their deliveries, and finished attempts, in one statement (so in
/// one implicit transaction). Empty arrays make a part a no-op, so the text never changes and
/// the prepared statement is reused.
///
/// - `new_events`: events inserted in `event_id` order (lock order, see the module doc); an id
///   already stored returns no row, which is how the caller learns it was a duplicate.
/// - `new_deliveries`: joined on `new_events`, so a duplicate gets none.
/// - `finished`: a delivery that is no longer pending (another replica finished it after this
///   one's lease expired) keeps its state; the attempt is still recorded as history. Nor does a
///   record undo a later attempt's (`attempts <=`): one sent again after a failure whose commit
///   went through anyway changes nothing.
/// - `recorded`: once per attempt (delivery, attempt number, start), however often it is sent.
const BATCH_SQL: &str = "
WITH new_events AS (
    INSERT INTO events (event_id, endpoint, scheme, name, model, body, received_at)
    SELECT v.event_id, v.endpoint, v.scheme, v.name, v.model, v.body, v.received_at
    FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::int8[])
         AS v (event_id, endpoint, scheme, name, model, body, received_at)
    ORDER BY v.event_id
    ON CONFLICT (event_id) DO NOTHING
    RETURNING id, event_id
), new_deliveries AS (
    INSERT INTO deliveries (event_row, target, status, attempts, next_attempt_at,
                            cycle_started_at, created_at, updated_at)
    SELECT n.id, d.target, 'pending', 0, d.at, d.at, d.at, d.at
    FROM UNNEST($8::text[], $9::text[], $10::int8[]) AS d (event_id, target, at)
    JOIN new_events n ON n.event_id = d.event_id
    ORDER BY n.id, d.target
    ON CONFLICT (event_row, target) DO NOTHING
), finished AS (
    UPDATE deliveries SET status = r.status, attempts = r.attempts,
        next_attempt_at = COALESCE(r.next_attempt_at, deliveries.next_attempt_at),
        lease_until = NULL, last_error = r.last_error, updated_at = r.updated_at
    FROM UNNEST($11::int8[], $12::text[], $13::int4[], $14::int8[], $15::text[], $16::int8[])
         AS r (id, status, attempts, next_attempt_at, last_error, updated_at)
    WHERE deliveries.id = r.id AND deliveries.status = 'pending'
      AND deliveries.attempts <= r.attempts
), recorded AS (
    INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms, status_code, result, reason)
    SELECT a.delivery_id, a.attempt, a.started_at, a.duration_ms, a.status_code, a.result, a.reason
    FROM UNNEST($17::int8[], $18::int4[], $19::int8[], $20::int8[], $21::int4[], $22::text[],
                $23::text[])
         AS a (delivery_id, attempt, started_at, duration_ms, status_code, result, reason)
    WHERE EXISTS (SELECT 1 FROM deliveries x WHERE x.id = a.delivery_id)
      AND NOT EXISTS (SELECT 1 FROM attempts y WHERE y.delivery_id = a.delivery_id
                      AND y.attempt = a.attempt AND y.started_at = a.started_at)
)
SELECT event_id FROM new_events";

/// Leases due deliveries of one target and returns them with their events, in one statement.
/// `SKIP LOCKED`: rows another replica is claiming right now are left to it, not waited for.
const CLAIM_SQL: &str = "
WITH claimed AS (
    UPDATE deliveries SET lease_until = $1
    WHERE id IN (SELECT id FROM deliveries
                 WHERE status = 'pending' AND target = $2 AND next_attempt_at <= $3
                   AND (lease_until IS NULL OR lease_until <= $3)
                 ORDER BY next_attempt_at, id
                 LIMIT $4
                 FOR UPDATE SKIP LOCKED)
    RETURNING id, event_row, attempts, cycle_started_at
)
SELECT c.id, c.attempts, c.cycle_started_at,
       e.id, e.event_id, e.endpoint, e.scheme, e.name, e.model, e.body, e.received_at
FROM claimed c JOIN events e ON e.id = c.event_row
ORDER BY c.id";

/// Query parameters sqlx understands in a PostgreSQL URL. Anything else is dropped before sqlx
/// sees it: sqlx would log it, value included, and a misspelt password parameter would land in
/// the log.
const KNOWN_PARAMS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// What goes through the writer: the writes that happen per request or per attempt. Claims,
/// replays and prunes are single statements run straight on the pool: PostgreSQL takes
/// concurrent writers, and they are comparatively rare.
enum Op {
    Ingest(NewEvent, Reply<Ingested>),
    Record(AttemptRecord, i64, Reply<()>),
    /// Answered once everything queued before it has been through the writer.
    Barrier(Reply<()>),
}

#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    queue: Queue<Op>,
    pool: PgPool,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// Connection options from `store.url`, each parameter it ignores logged. Errors never quote
/// the URL (it may hold a password).
pub(crate) fn connect_options(url: &str) -> Result<PgConnectOptions, StoreError> {
    let (options, ignored) = parse_url(url)?;
    for key in &ignored {
        tracing::warn!(parameter = %key, "ignoring unknown parameter in store.url");
    }
    Ok(options)
}

/// What [`connect_options`] makes of `url`, and the names of the parameters it drops; logs
/// nothing and connects to nothing (`hookgate check` runs it through [`super::Store::check_url`]).
pub(crate) fn parse_url(url: &str) -> Result<(PgConnectOptions, Vec<String>), StoreError> {
    let invalid = |why: &str| StoreError::InvalidUrl(why.to_string());
    let mut parsed = url::Url::parse(url).map_err(|e| invalid(&format!("not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err(StoreError::UnsupportedUrl);
    }
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let (known, unknown): (Vec<_>, Vec<_>) = pairs.into_iter().partition(|(k, _)| {
        KNOWN_PARAMS.contains(&k.as_str()) || (k.starts_with("options[") && k.ends_with(']'))
    });
    if known.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(&known);
    }
    let mut options = PgConnectOptions::from_url(&parsed).map_err(|e| invalid(&e.to_string()))?;
    // Names the gateway's sessions in pg_stat_activity, unless the URL (or PGAPPNAME) does.
    if options.get_application_name().is_none() {
        options = options.application_name("hookgate");
    }
    // Also catches PGSSLMODE, which sqlx reads when the URL has no sslmode.
    if matches!(
        options.get_ssl_mode(),
        PgSslMode::Require | PgSslMode::VerifyCa | PgSslMode::VerifyFull
    ) {
        return Err(invalid(
            "sslmode (or PGSSLMODE) requires TLS, which this build of hookgate does not include; \
             use sslmode=disable or prefer over a trusted network, or reach the server through a \
             TLS tunnel",
        ));
    }
    Ok((options, unknown.into_iter().map(|(k, _)| k).collect()))
}

impl PostgresStore {
    pub async fn open(url: &str, metrics: Arc<Metrics>) -> Result<PostgresStore, StoreError> {
        let options = connect_options(url)?;
        // The writer's connection first: a pool that cannot connect reports only that it timed
        // out, this shows why (refused, too many clients, a password).
        let conn = connect(&options).await?;
        let pool = PgPoolOptions::new()
            .min_connections(0)
            .max_connections(POOL_SIZE)
            .acquire_timeout(CONNECT_TIMEOUT)
            .idle_timeout(Duration::from_secs(60))
            .connect_with(options.clone())
            .await?;
        create_schema(&pool).await?;
        let (queue, rx) = group::queue();
        let writer = tokio::spawn(writer_loop(options, Some(conn), rx, metrics));
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                queue,
                pool,
                writer: Mutex::new(Some(writer)),
            }),
        })
    }

    /// Returns once every write queued before it has been through the writer.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.inner.queue.call(Op::Barrier).await
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.inner.queue.is_closed() {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    pub async fn ingest(&self, event: NewEvent) -> Result<Ingested, StoreError> {
        self.inner.queue.call(|r| Op::Ingest(event, r)).await
    }

    pub async fn claim(
        &self,
        target: &str,
        limit: u32,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.check_open()?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(CLAIM_SQL)
            .bind(lease_until_ms)
            .bind(target)
            .bind(now_ms)
            .bind(i64::from(limit))
            .fetch_all(&self.inner.pool)
            .await?;
        // One event row per claim at most (UNIQUE (event_row, target)); shared all the same in
        // case a caller ever claims across targets.
        let mut events: HashMap<i64, Arc<StoredEvent>> = HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let event_row: i64 = r.try_get(3)?;
            let event = match events.get(&event_row) {
                Some(e) => e.clone(),
                None => {
                    let (_, ev) = stored_event(r, 3)?;
                    let ev = Arc::new(ev);
                    events.insert(event_row, ev.clone());
                    ev
                }
            };
            out.push(Claimed {
                delivery_id: r.try_get(0)?,
                target: target.to_string(),
                attempts: r.try_get::<i32, _>(1)?.max(0) as u32,
                cycle_started_at_ms: r.try_get(2)?,
                event,
            });
        }
        Ok(out)
    }

    pub async fn record(&self, record: AttemptRecord, now_ms: i64) -> Result<(), StoreError> {
        self.inner
            .queue
            .call(|r| Op::Record(record, now_ms, r))
            .await
    }

    /// Releases nothing and returns 0. The embedded store frees every lease at start-up because
    /// its only user is the process starting; here other replicas share the table, and their
    /// leases cover attempts in flight right now: freeing them would send those deliveries a
    /// second time. A replica that died leaves leases that expire on their own (claims treat
    /// an expired lease as free), so nothing is ever stuck for longer than a lease.
    pub async fn release_leases(&self) -> Result<u64, StoreError> {
        self.check_open()?;
        Ok(0)
    }

    pub async fn replay(
        &self,
        sel: ReplaySelector,
        now_ms: i64,
        targets: Option<&[String]>,
    ) -> Result<u64, StoreError> {
        self.check_open()?;
        let mut q = QueryBuilder::<Postgres>::new(
            "UPDATE deliveries SET status = 'pending', attempts = 0, lease_until = NULL, next_attempt_at = ",
        );
        q.push_bind(now_ms)
            .push(", cycle_started_at = ")
            .push_bind(now_ms)
            .push(", updated_at = ")
            .push_bind(now_ms);
        match sel {
            ReplaySelector::Ids(ids) => {
                if ids.is_empty() {
                    return Ok(0);
                }
                q.push(" WHERE status IN ('dead', 'delivered') AND id = ANY(")
                    .push_bind(ids)
                    .push(")");
            }
            ReplaySelector::Status { status, target } => {
                q.push(" WHERE status = ").push_bind(status.as_str());
                if let Some(t) = target {
                    q.push(" AND target = ").push_bind(t);
                }
            }
        }
        if let Some(targets) = targets {
            q.push(" AND target = ANY(")
                .push_bind(targets.to_vec())
                .push(")");
        }
        Ok(q.build().execute(&self.inner.pool).await?.rows_affected())
    }

    /// See [`super::Store::prune`]: `dead_before_ms` ≤ `before_ms`.
    pub async fn prune(&self, before_ms: i64, dead_before_ms: i64) -> Result<u64, StoreError> {
        self.check_open()?;
        // SKIP LOCKED: every replica prunes on its own schedule; one never waits for another
        // deleting the same rows.
        let n = sqlx::query(
            "DELETE FROM events WHERE id IN (
                SELECT e.id FROM events e WHERE e.received_at < $1
                AND NOT EXISTS (SELECT 1 FROM deliveries d
                                WHERE d.event_row = e.id
                                  AND (d.status = 'pending'
                                       OR (d.status = 'dead' AND d.updated_at >= $2)))
                LIMIT $3
                FOR UPDATE SKIP LOCKED)",
        )
        .bind(before_ms)
        .bind(dead_before_ms)
        .bind(PRUNE_LIMIT)
        .execute(&self.inner.pool)
        .await?
        .rows_affected();
        Ok(n)
    }

    /// See [`super::Store::dead_letter_unconfigured`]. A lease counts only until it expires:
    /// an unexpired one may be another replica's attempt in flight, an expired one belongs to
    /// nobody (a replica that died).
    pub async fn dead_letter_unconfigured(
        &self,
        configured: &[String],
        now_ms: i64,
    ) -> Result<Vec<DeadLettered>, StoreError> {
        self.check_open()?;
        // SKIP LOCKED: a row another replica is claiming right now is about to be leased by it.
        let rows: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "WITH dead AS (
                UPDATE deliveries SET status = 'dead', lease_until = NULL, updated_at = $2,
                    last_error = {UNCONFIGURED_ERROR_SQL}
                WHERE id IN (SELECT id FROM deliveries
                             WHERE status = 'pending'
                               AND (lease_until IS NULL OR lease_until <= $2)
                               AND target <> ALL($1)
                             FOR UPDATE SKIP LOCKED)
                RETURNING target
            )
            SELECT target, COUNT(*) FROM dead GROUP BY target ORDER BY target"
        )))
        .bind(configured)
        .bind(now_ms)
        .fetch_all(&self.inner.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(target, count)| DeadLettered {
                target,
                count: count.max(0) as u64,
            })
            .collect())
    }

    /// When the next pending delivery to one of `targets` can be claimed: its due time, or the
    /// end of its lease if that is later. Leased rows count (unlike in the embedded store, where
    /// a lease only belongs to this process): a lease left by a replica that died makes its
    /// delivery due the moment the lease expires.
    pub async fn next_due_ms(&self, targets: &[String]) -> Result<Option<i64>, StoreError> {
        if targets.is_empty() {
            return Ok(None);
        }
        // Only the given targets: a pending delivery to a target removed from the configuration
        // is never claimed, and counting it as due would make the dispatcher spin.
        let v: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(GREATEST(next_attempt_at, COALESCE(lease_until, 0))) FROM deliveries
             WHERE status = 'pending' AND target = ANY($1)",
        )
        .bind(targets)
        .fetch_one(&self.inner.pool)
        .await?;
        Ok(v)
    }

    pub async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let mut q = QueryBuilder::<Postgres>::new(DELIVERY_SELECT);
        q.push(" WHERE true");
        if let Some(s) = filter.status {
            q.push(" AND d.status = ").push_bind(s.as_str());
        }
        if let Some(t) = &filter.target {
            q.push(" AND d.target = ").push_bind(t.clone());
        }
        let limit = if filter.limit == 0 { 100 } else { filter.limit };
        q.push(" ORDER BY d.id DESC LIMIT ")
            .push_bind(i64::from(limit));
        let rows = q.build().fetch_all(&self.inner.pool).await?;
        rows.iter().map(delivery_row).collect()
    }

    pub async fn get_event(
        &self,
        event_id: &str,
    ) -> Result<Option<(StoredEvent, Vec<DeliveryRow>, Vec<AttemptRow>)>, StoreError> {
        let row = sqlx::query(
            "SELECT id, event_id, endpoint, scheme, name, model, body, received_at
             FROM events WHERE event_id = $1",
        )
        .bind(event_id)
        .fetch_optional(&self.inner.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let (row_id, event) = stored_event(&row, 0)?;
        let deliveries = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{DELIVERY_SELECT} WHERE d.event_row = $1 ORDER BY d.id"
        )))
        .bind(row_id)
        .fetch_all(&self.inner.pool)
        .await?
        .iter()
        .map(delivery_row)
        .collect::<Result<Vec<_>, _>>()?;
        let attempts = sqlx::query(
            "SELECT a.delivery_id, a.attempt, a.started_at, a.duration_ms, a.status_code, a.result, a.reason
             FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
             WHERE d.event_row = $1 ORDER BY a.id",
        )
        .bind(row_id)
        .fetch_all(&self.inner.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(AttemptRow {
                delivery_id: r.try_get(0)?,
                attempt: r.try_get::<i32, _>(1)?.max(0) as u32,
                started_at_ms: r.try_get(2)?,
                duration_ms: r.try_get(3)?,
                status_code: r
                    .try_get::<Option<i32>, _>(4)?
                    .and_then(|c| u16::try_from(c).ok()),
                result: r.try_get(5)?,
                reason: r.try_get(6)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some((event, deliveries, attempts)))
    }

    pub async fn count_events(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&self.inner.pool)
            .await?)
    }

    pub async fn target_counts(&self) -> Result<Vec<TargetCounts>, StoreError> {
        let rows = sqlx::query(
            "SELECT target,
                    COUNT(*) FILTER (WHERE status = 'pending'),
                    COUNT(*) FILTER (WHERE status = 'dead')
             FROM deliveries WHERE status IN ('pending', 'dead') GROUP BY target ORDER BY target",
        )
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TargetCounts {
                    target: r.try_get(0)?,
                    pending: r.try_get(1)?,
                    dead: r.try_get(2)?,
                })
            })
            .collect()
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.inner.pool).await?;
        self.check_open()
    }

    /// Finish every write queued so far, stop the writer and close the connections. Later
    /// writes fail with [`StoreError::Closed`].
    pub async fn close(&self) {
        self.inner.queue.stop().await;
        if let Some(h) = self.inner.writer.lock().await.take() {
            let _ = h.await;
        }
        self.inner.pool.close().await;
    }
}

async fn connect(options: &PgConnectOptions) -> Result<PgConnection, StoreError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(options)).await {
        Ok(conn) => Ok(conn?),
        Err(_) => Err(StoreError::Database(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no connection to the database within {CONNECT_TIMEOUT:?}"),
        )))),
    }
}

/// Creates what is missing, under an advisory lock held until the DDL commits: replicas that
/// start together run it one after another, and each later one finds everything in place.
async fn create_schema(pool: &PgPool) -> Result<(), StoreError> {
    let missing: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM UNNEST($1::text[]) AS o (name) WHERE to_regclass(o.name) IS NULL",
    )
    .bind(SCHEMA_OBJECTS)
    .fetch_one(pool)
    .await?;
    if missing == 0 {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SCHEMA_LOCK)
        .execute(&mut *tx)
        .await?;
    for stmt in SCHEMA {
        sqlx::query(*stmt).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

fn delivery_row(r: &PgRow) -> Result<DeliveryRow, StoreError> {
    let status: String = r.try_get(6)?;
    Ok(DeliveryRow {
        id: r.try_get(0)?,
        event_id: r.try_get(1)?,
        endpoint: r.try_get(2)?,
        event: r.try_get(3)?,
        model: r.try_get(4)?,
        target: r.try_get(5)?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown delivery status {status:?}")))?,
        attempts: r.try_get::<i32, _>(7)?.max(0) as u32,
        next_attempt_at_ms: r.try_get(8)?,
        last_error: r.try_get(9)?,
        created_at_ms: r.try_get(10)?,
        updated_at_ms: r.try_get(11)?,
    })
}

/// `(row id, event)` from the columns `id, event_id, endpoint, scheme, name, model, body,
/// received_at` starting at column `at`.
fn stored_event(r: &PgRow, at: usize) -> Result<(i64, StoredEvent), StoreError> {
    let scheme: String = r.try_get(at + 3)?;
    let body: Vec<u8> = r.try_get(at + 6)?;
    Ok((
        r.try_get(at)?,
        StoredEvent {
            event_id: r.try_get(at + 1)?,
            endpoint: r.try_get(at + 2)?,
            scheme: parse_scheme(&scheme)?,
            name: r.try_get(at + 4)?,
            model: r.try_get(at + 5)?,
            body: Bytes::from(body),
            received_at_ms: r.try_get(at + 7)?,
        },
    ))
}

async fn writer_loop(
    options: PgConnectOptions,
    mut conn: Option<PgConnection>,
    mut rx: mpsc::Receiver<Queued<Op>>,
    metrics: Arc<Metrics>,
) {
    let mut batcher = Batcher::lingering();
    while let Some(Batch {
        ops: mut batch,
        stop: shutdown,
    }) = batcher.next(&mut rx).await
    {
        if !batch.is_empty() {
            metrics.store_batch_size.observe(batch.len() as f64);
            let (ingests, records, barriers) = split(batch.drain(..));
            if !ingests.is_empty() || !records.is_empty() {
                let mut result = run_on(&mut conn, &options, &ingests, &records).await;
                // A connection the server closed while it sat idle (a terminated backend, a
                // restart, a failover) fails the next batch before it runs: run it once more on a
                // new one rather than answer 503 to a sender, and drop an attempt's result, for a
                // healthy database.
                if let Err(e) = &result
                    && never_ran(e)
                {
                    tracing::warn!(error = %e, "the database closed the writer's connection; running the batch again on a new one");
                    if let Some(c) = conn.take() {
                        drop(tokio::time::timeout(CONNECT_TIMEOUT, c.close()).await);
                    }
                    result = run_on(&mut conn, &options, &ingests, &records).await;
                }
                match result {
                    Ok(outcomes) => {
                        for ((_, reply), outcome) in ingests.into_iter().zip(outcomes) {
                            // A caller that stopped waiting (client gone) is not an error: the
                            // event is committed.
                            let _ = reply.send(Ok(outcome));
                        }
                        for (_, _, reply) in records {
                            let _ = reply.send(Ok(()));
                        }
                    }
                    Err(e) => {
                        metrics.store_errors.inc();
                        tracing::error!(
                            error = %e,
                            operations = ingests.len() + records.len(),
                            "store transaction failed"
                        );
                        // The connection may be broken, or mid-statement after a timeout: start the
                        // next batch on a fresh one.
                        if let Some(c) = conn.take() {
                            drop(tokio::time::timeout(CONNECT_TIMEOUT, c.close()).await);
                        }
                        let msg = e.to_string();
                        let err = || StoreError::Transaction(msg.clone());
                        for (_, reply) in ingests {
                            let _ = reply.send(Err(err()));
                        }
                        for (_, _, reply) in records {
                            let _ = reply.send(Err(err()));
                        }
                    }
                }
            }
            // Whatever came of the batch, it is over: nothing queued before them is in flight.
            barriers.into_iter().for_each(|b| drop(b.send(Ok(()))));
        }
        if let Some(ack) = shutdown {
            rx.close();
            if let Some(c) = conn.take() {
                let _ = c.close().await;
            }
            let _ = ack.send(());
            return;
        }
    }
    if let Some(c) = conn.take() {
        let _ = c.close().await;
    }
}

/// [`run_batch`] on the writer's connection, opened first if there is none.
async fn run_on(
    conn: &mut Option<PgConnection>,
    options: &PgConnectOptions,
    ingests: &Ingests,
    records: &Records,
) -> Result<Vec<Ingested>, StoreError> {
    match conn {
        Some(c) => run_batch(c, ingests, records).await,
        None => {
            let c = connect(options).await?;
            run_batch(conn.insert(c), ingests, records).await
        }
    }
}

/// Whether the server ended the connection before running the statement, so nothing of it was
/// committed: `admin_shutdown` (a terminated backend, a fast shutdown), `crash_shutdown`,
/// `cannot_connect_now`, all of which also roll back whatever was running; or a write to a
/// socket already closed. Any other failure may have committed, and is answered as an error.
fn never_ran(e: &StoreError) -> bool {
    match e {
        StoreError::Database(sqlx::Error::Database(db)) => {
            matches!(db.code().as_deref(), Some("57P01" | "57P02" | "57P03"))
        }
        StoreError::Database(sqlx::Error::Io(io)) => io.kind() == std::io::ErrorKind::BrokenPipe,
        _ => false,
    }
}

type Ingests = Vec<(NewEvent, Reply<Ingested>)>;
type Records = Vec<(AttemptRecord, i64, Reply<()>)>;

fn split(ops: impl Iterator<Item = Op>) -> (Ingests, Records, Vec<Reply<()>>) {
    let mut ingests = Vec::new();
    let mut records = Vec::new();
    let mut barriers = Vec::new();
    for op in ops {
        match op {
            Op::Ingest(ev, r) => ingests.push((ev, r)),
            Op::Record(rec, now, r) => records.push((rec, now, r)),
            Op::Barrier(r) => barriers.push(r),
        }
    }
    (ingests, records, barriers)
}

/// The `BATCH_SQL` arrays for one batch, column by column.
#[derive(Default)]
struct BatchArrays {
    ev_id: Vec<String>,
    ev_endpoint: Vec<String>,
    ev_scheme: Vec<&'static str>,
    ev_name: Vec<String>,
    ev_model: Vec<Option<String>>,
    ev_body: Vec<Vec<u8>>,
    ev_received: Vec<i64>,
    dl_event: Vec<String>,
    dl_target: Vec<String>,
    dl_at: Vec<i64>,
    up_id: Vec<i64>,
    up_status: Vec<&'static str>,
    up_attempts: Vec<i32>,
    up_next: Vec<Option<i64>>,
    up_error: Vec<Option<String>>,
    up_now: Vec<i64>,
    at_delivery: Vec<i64>,
    at_attempt: Vec<i32>,
    at_started: Vec<i64>,
    at_duration: Vec<i64>,
    at_code: Vec<Option<i32>>,
    at_result: Vec<&'static str>,
    at_reason: Vec<Option<String>>,
}

fn attempt_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl BatchArrays {
    fn build(ingests: &Ingests, records: &Records) -> (BatchArrays, Vec<Option<usize>>) {
        let mut a = BatchArrays::default();
        // Two copies of one event in one batch: the first is the event, later ones are
        // duplicates (the statement would skip them too, but not say which one won).
        // `first[i]`: for a first copy, its index among the inserted events; None: duplicate.
        let mut seen = HashSet::with_capacity(ingests.len());
        let mut first = Vec::with_capacity(ingests.len());
        for (ev, _) in ingests {
            if !seen.insert(ev.event_id.as_str()) {
                first.push(None);
                continue;
            }
            first.push(Some(a.ev_id.len()));
            a.ev_id.push(ev.event_id.clone());
            a.ev_endpoint.push(ev.endpoint.clone());
            a.ev_scheme.push(ev.scheme.as_str());
            a.ev_name.push(ev.name.clone());
            a.ev_model.push(ev.model.clone());
            a.ev_body.push(ev.body.to_vec());
            a.ev_received.push(ev.received_at_ms);
            for t in &ev.targets {
                a.dl_event.push(ev.event_id.clone());
                a.dl_target.push(t.clone());
                a.dl_at.push(ev.received_at_ms);
            }
        }
        // A delivery finished twice in one batch (its lease expired and it was claimed again)
        // keeps the later outcome; UPDATE … FROM would otherwise pick one at random. Rows are
        // updated in id order, like every other writer's, so batches never deadlock.
        let mut last: HashMap<i64, usize> = HashMap::with_capacity(records.len());
        for (i, (rec, _, _)) in records.iter().enumerate() {
            last.insert(rec.delivery_id, i);
            a.at_delivery.push(rec.delivery_id);
            a.at_attempt.push(attempt_i32(rec.attempt));
            a.at_started.push(rec.started_at_ms);
            a.at_duration.push(rec.duration_ms);
            a.at_code.push(rec.status_code.map(i32::from));
            a.at_result.push(rec.result.as_str());
            a.at_reason.push(rec.reason.clone());
        }
        let mut updates: Vec<usize> = last.into_values().collect();
        updates.sort_by_key(|&i| records[i].0.delivery_id);
        for i in updates {
            let (rec, now_ms, _) = &records[i];
            let (status, next_at) = rec.result.next_state();
            a.up_id.push(rec.delivery_id);
            a.up_status.push(status.as_str());
            a.up_attempts.push(attempt_i32(rec.attempt));
            a.up_next.push(next_at);
            a.up_error.push(rec.reason.clone());
            a.up_now.push(*now_ms);
        }
        (a, first)
    }
}

/// Runs one batch as one statement (one round trip, one commit) and returns each ingest's
/// outcome, in order.
async fn run_batch(
    conn: &mut PgConnection,
    ingests: &Ingests,
    records: &Records,
) -> Result<Vec<Ingested>, StoreError> {
    let (a, first) = BatchArrays::build(ingests, records);
    let query = sqlx::query(BATCH_SQL)
        .bind(a.ev_id)
        .bind(a.ev_endpoint)
        .bind(a.ev_scheme)
        .bind(a.ev_name)
        .bind(a.ev_model)
        .bind(a.ev_body)
        .bind(a.ev_received)
        .bind(a.dl_event)
        .bind(a.dl_target)
        .bind(a.dl_at)
        .bind(a.up_id)
        .bind(a.up_status)
        .bind(a.up_attempts)
        .bind(a.up_next)
        .bind(a.up_error)
        .bind(a.up_now)
        .bind(a.at_delivery)
        .bind(a.at_attempt)
        .bind(a.at_started)
        .bind(a.at_duration)
        .bind(a.at_code)
        .bind(a.at_result)
        .bind(a.at_reason);
    let rows = match tokio::time::timeout(BATCH_TIMEOUT, query.fetch_all(&mut *conn)).await {
        Ok(rows) => rows?,
        Err(_) => {
            return Err(StoreError::Transaction(format!(
                "no answer from the database within {BATCH_TIMEOUT:?}"
            )));
        }
    };
    let mut inserted: HashSet<String> = HashSet::with_capacity(rows.len());
    for row in rows {
        inserted.insert(row.try_get(0)?);
    }
    Ok(ingests
        .iter()
        .zip(first)
        .map(|((ev, _), first)| match first {
            Some(_) if inserted.contains(&ev.event_id) => Ingested::Accepted,
            _ => Ingested::Duplicate,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    use crate::outbox::AttemptResult;
    use crate::verify::Scheme;

    fn err(url: &str) -> String {
        connect_options(url).unwrap_err().to_string()
    }

    #[test]
    fn tls_modes_are_refused_with_a_clear_error() {
        for mode in ["require", "verify-ca", "verify-full"] {
            let e = err(&format!("postgres://app:hunter2@db:5432/hg?sslmode={mode}"));
            assert!(e.contains("requires TLS"), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
        for mode in ["disable", "prefer", "allow"] {
            connect_options(&format!("postgresql://db/hg?sslmode={mode}")).unwrap();
        }
    }

    #[test]
    fn url_parts_reach_the_options() {
        let o = connect_options(
            "postgres://app:pw@db.internal:6543/hookgate?options=-c%20search_path%3Dhg&sslmode=disable",
        )
        .unwrap();
        assert_eq!(o.get_host(), "db.internal");
        assert_eq!(o.get_port(), 6543);
        assert_eq!(o.get_username(), "app");
        assert_eq!(o.get_database(), Some("hookgate"));
        assert_eq!(o.get_options(), Some("-c search_path=hg"));
        assert_eq!(o.get_application_name(), Some("hookgate"));
        let o = connect_options("postgres://db/hg?application_name=hookgate-eu").unwrap();
        assert_eq!(o.get_application_name(), Some("hookgate-eu"));
    }

    #[test]
    fn unknown_parameters_are_dropped_and_errors_never_quote_the_url() {
        // `passwd` is not a parameter sqlx knows: dropped (sqlx would log its value).
        connect_options("postgres://db/hg?passwd=hunter2&sslmode=disable").unwrap();
        let e = err("postgres://app:hunter2@db/hg?port=notanumber");
        assert!(!e.contains("hunter2"), "{e}");
        assert!(matches!(
            connect_options("mysql://db/x"),
            Err(StoreError::UnsupportedUrl)
        ));
    }

    fn record(id: i64, attempt: u32, result: AttemptResult) -> AttemptRecord {
        AttemptRecord {
            delivery_id: id,
            attempt,
            started_at_ms: 1,
            duration_ms: 2,
            status_code: Some(503),
            result,
            reason: Some("http 503".into()),
        }
    }

    #[test]
    fn batch_arrays_keep_first_copy_and_last_outcome() {
        let ev = |id: &str| NewEvent {
            endpoint: "e".into(),
            event_id: id.into(),
            key_time_ms: 0,
            scheme: Scheme::Mlflow,
            name: "n".into(),
            model: None,
            body: Bytes::from_static(b"{}"),
            received_at_ms: 5,
            targets: vec!["a".into(), "b".into()],
        };
        let ingests: Ingests = ["x", "y", "x"]
            .into_iter()
            .map(|id| (ev(id), oneshot::channel().0))
            .collect();
        let records: Records = vec![
            (
                record(
                    9,
                    1,
                    AttemptResult::Retry {
                        next_attempt_at_ms: 50,
                    },
                ),
                10,
                oneshot::channel().0,
            ),
            (record(3, 1, AttemptResult::Dead), 11, oneshot::channel().0),
            (
                record(9, 2, AttemptResult::Delivered),
                12,
                oneshot::channel().0,
            ),
        ];
        let (a, first) = BatchArrays::build(&ingests, &records);
        assert_eq!(first, [Some(0), Some(1), None]);
        assert_eq!(a.ev_id, ["x", "y"]);
        assert_eq!(a.dl_target, ["a", "b", "a", "b"]);
        // Every attempt is history; the row takes the last outcome, in id order.
        assert_eq!(a.at_delivery, [9, 3, 9]);
        assert_eq!(a.up_id, [3, 9]);
        assert_eq!(a.up_status, ["dead", "delivered"]);
        assert_eq!(a.up_attempts, [1, 2]);
        assert_eq!(a.up_now, [11, 12]);
    }
}

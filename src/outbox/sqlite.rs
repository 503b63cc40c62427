//! The embedded store: SQLite in WAL mode, every acknowledged commit fsync'd.
//!
//! All writes go through one writer task that owns the only writing connection. It takes every
//! operation queued while the previous commit was in flight and runs them in one transaction:
//! concurrent requests share one fsync (group commit), so durable throughput is not capped at
//! the disk's fsync rate. The fsync itself runs beside the writer (see [`super::wal_sync`]):
//! replies wait for it, the next batch does not. Reads use a small separate pool (WAL lets them
//! run beside the writer).

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, QueryBuilder, Row, Sqlite};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::group::{Batch, Batcher, QUEUE_DEPTH};
use super::wal_sync::WalSync;
use super::{
    AttemptRecord, AttemptRow, Claimed, DELIVERY_SELECT, DeliveryFilter, DeliveryRow,
    DeliveryStatus, Ingested, NewEvent, ReplaySelector, StoreError, StoredEvent, TargetCounts,
    parse_scheme,
};
use crate::metrics::Metrics;

/// Rows per multi-row INSERT, far below SQLite's bound-parameter limit.
const ROWS_PER_INSERT: usize = 500;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        endpoint TEXT NOT NULL,
        scheme TEXT NOT NULL,
        name TEXT NOT NULL,
        model TEXT,
        body BLOB NOT NULL,
        received_at INTEGER NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS events_received_at ON events (received_at)",
    "CREATE TABLE IF NOT EXISTS deliveries (
        id INTEGER PRIMARY KEY,
        event_row INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
        target TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        cycle_started_at INTEGER NOT NULL,
        lease_until INTEGER,
        last_error TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (event_row, target)
    )",
    "CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, target, next_attempt_at)",
    "CREATE TABLE IF NOT EXISTS attempts (
        id INTEGER PRIMARY KEY,
        delivery_id INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
        attempt INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        status_code INTEGER,
        result TEXT NOT NULL,
        reason TEXT
    )",
    "CREATE INDEX IF NOT EXISTS attempts_delivery ON attempts (delivery_id)",
];

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Op {
    Ingest(NewEvent, Reply<Ingested>),
    Claim {
        target: String,
        limit: u32,
        now_ms: i64,
        lease_until_ms: i64,
        reply: Reply<Vec<Claimed>>,
    },
    Record(AttemptRecord, i64, Reply<()>),
    Replay(ReplaySelector, i64, Reply<u64>),
    Prune(i64, Reply<u64>),
    ReleaseLeases(Reply<u64>),
    /// Everything queued before it is committed first (the queue is FIFO); then the writer stops.
    Shutdown(oneshot::Sender<()>),
}

impl super::group::Op for Op {
    fn into_stop(self) -> Result<oneshot::Sender<()>, Self> {
        match self {
            Op::Shutdown(ack) => Ok(ack),
            other => Err(other),
        }
    }

    fn is_stop(&self) -> bool {
        matches!(self, Op::Shutdown(_))
    }
}

/// A finished operation whose reply waits for the commit.
enum Done {
    Ingest(Reply<Ingested>, Ingested),
    Claim(Reply<Vec<Claimed>>, Vec<Claimed>),
    Unit(Reply<()>),
    Count(Reply<u64>, u64),
}

impl Done {
    fn send(self) {
        // A caller that stopped waiting (client gone) is not an error: the data is committed.
        match self {
            Done::Ingest(r, v) => drop(r.send(Ok(v))),
            Done::Claim(r, v) => drop(r.send(Ok(v))),
            Done::Unit(r) => drop(r.send(Ok(()))),
            Done::Count(r, v) => drop(r.send(Ok(v))),
        }
    }

    fn fail(self, msg: &str) {
        let e = || StoreError::Transaction(msg.to_string());
        match self {
            Done::Ingest(r, _) => drop(r.send(Err(e()))),
            Done::Claim(r, _) => drop(r.send(Err(e()))),
            Done::Unit(r) => drop(r.send(Err(e()))),
            Done::Count(r, _) => drop(r.send(Err(e()))),
        }
    }
}

#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::Sender<Op>,
    read: SqlitePool,
    writer: Mutex<Option<JoinHandle<()>>>,
    checkpointer: JoinHandle<()>,
}

/// How often the WAL is copied back into the database file while writes happen.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Passive checkpoints beside the writer: they never block it, and keep the WAL (and the time
/// a crash recovery takes) small. A passive checkpoint skips frames a reader still needs; the
/// next round takes them.
async fn checkpoint_loop(pool: SqlitePool, commits: Arc<AtomicU64>) {
    let mut seen = 0;
    loop {
        tokio::time::sleep(CHECKPOINT_EVERY).await;
        let now = commits.load(Ordering::Relaxed);
        if now == seen {
            continue;
        }
        seen = now;
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
        }
    }
}

impl SqliteStore {
    pub async fn open(url: &str, metrics: Arc<Metrics>) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: the WAL is fsync'd at every commit, so an acknowledged event survives a
            // power cut, not only a process crash. (The writer switches to NORMAL below and
            // fsyncs beside SQLite instead, to the same effect.)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .statement_cache_capacity(512)
            // A small page cache keeps the resident set small; the working set is the tail of
            // the tables, which the OS page cache serves anyway.
            // 1 KiB pages: the event-id index takes inserts at random places, and each commit
            // writes every page it touched to the WAL before the fsync. Smaller pages make that
            // write (and the commit) about a third cheaper. Takes effect when the file is made.
            .page_size(1024)
            .pragma("cache_size", "-1024")
            // Checkpoints run on a separate connection (see `checkpoint_loop`), so a commit
            // never pays for copying the WAL back into the database file.
            .pragma("wal_autocheckpoint", "0");
        let mut conn = SqliteConnection::connect_with(&options).await?;
        for stmt in SCHEMA {
            sqlx::query(*stmt).execute(&mut conn).await?;
        }
        // A file database in WAL mode gets its fsyncs from `WalSync`, beside the writer; an
        // in-memory one has nothing to sync and keeps FULL.
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut conn)
            .await?;
        let wal_sync = if mode.eq_ignore_ascii_case("wal") {
            let sync = WalSync::start(options.get_filename().to_path_buf()).map_err(|e| {
                StoreError::Transaction(format!("starting the WAL fsync thread: {e}"))
            })?;
            sqlx::query("PRAGMA synchronous=NORMAL")
                .execute(&mut conn)
                .await?;
            Some(sync)
        } else {
            None
        };
        let read = SqlitePoolOptions::new()
            .min_connections(0)
            .max_connections(2)
            .idle_timeout(Duration::from_secs(60))
            .connect_with(options)
            .await?;
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let commits = Arc::new(AtomicU64::new(0));
        let writer = tokio::spawn(writer_loop(conn, wal_sync, rx, metrics, commits.clone()));
        let checkpointer = tokio::spawn(checkpoint_loop(read.clone(), commits));
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                tx,
                read,
                writer: Mutex::new(Some(writer)),
                checkpointer,
            }),
        })
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Op) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .tx
            .send(make(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    pub async fn ingest(&self, event: NewEvent) -> Result<Ingested, StoreError> {
        self.call(|r| Op::Ingest(event, r)).await
    }

    pub async fn claim(
        &self,
        target: &str,
        limit: u32,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<Vec<Claimed>, StoreError> {
        let target = target.to_string();
        self.call(|reply| Op::Claim {
            target,
            limit,
            now_ms,
            lease_until_ms,
            reply,
        })
        .await
    }

    pub async fn record(&self, record: AttemptRecord, now_ms: i64) -> Result<(), StoreError> {
        self.call(|r| Op::Record(record, now_ms, r)).await
    }

    pub async fn replay(&self, sel: ReplaySelector, now_ms: i64) -> Result<u64, StoreError> {
        self.call(|r| Op::Replay(sel, now_ms, r)).await
    }

    pub async fn prune(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        self.call(|r| Op::Prune(cutoff_ms, r)).await
    }

    pub async fn release_leases(&self) -> Result<u64, StoreError> {
        self.call(Op::ReleaseLeases).await
    }

    pub async fn next_due_ms(&self, targets: &[String]) -> Result<Option<i64>, StoreError> {
        if targets.is_empty() {
            return Ok(None);
        }
        // Only the given targets: a pending delivery to a target that was removed from the
        // configuration is never claimed, and counting it as due made the dispatcher loop
        // without pause (a busy loop burning a core) for as long as that row existed.
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT MIN(next_attempt_at) FROM deliveries
             WHERE status = 'pending' AND lease_until IS NULL AND target IN (",
        );
        let mut sep = q.separated(", ");
        for t in targets {
            sep.push_bind(t.clone());
        }
        q.push(")");
        let v: Option<i64> = q.build_query_scalar().fetch_one(&self.inner.read).await?;
        Ok(v)
    }

    pub async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new(DELIVERY_SELECT);
        q.push(" WHERE 1 = 1");
        if let Some(s) = filter.status {
            q.push(" AND d.status = ").push_bind(s.as_str());
        }
        if let Some(t) = &filter.target {
            q.push(" AND d.target = ").push_bind(t.clone());
        }
        let limit = if filter.limit == 0 { 100 } else { filter.limit };
        q.push(" ORDER BY d.id DESC LIMIT ")
            .push_bind(i64::from(limit));
        let rows = q.build().fetch_all(&self.inner.read).await?;
        rows.iter().map(delivery_row).collect()
    }

    pub async fn get_event(
        &self,
        event_id: &str,
    ) -> Result<Option<(StoredEvent, Vec<DeliveryRow>, Vec<AttemptRow>)>, StoreError> {
        let row = sqlx::query(
            "SELECT id, event_id, endpoint, scheme, name, model, body, received_at FROM events WHERE event_id = ?1",
        )
        .bind(event_id)
        .fetch_optional(&self.inner.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let (row_id, event) = stored_event(&row)?;
        let deliveries = sqlx::query(AssertSql::delivery_by_event())
            .bind(row_id)
            .fetch_all(&self.inner.read)
            .await?
            .iter()
            .map(delivery_row)
            .collect::<Result<Vec<_>, _>>()?;
        let attempts = sqlx::query(
            "SELECT a.delivery_id, a.attempt, a.started_at, a.duration_ms, a.status_code, a.result, a.reason
             FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
             WHERE d.event_row = ?1 ORDER BY a.id",
        )
        .bind(row_id)
        .fetch_all(&self.inner.read)
        .await?
        .iter()
        .map(|r| {
            Ok(AttemptRow {
                delivery_id: r.try_get(0)?,
                attempt: r.try_get::<i64, _>(1)? as u32,
                started_at_ms: r.try_get(2)?,
                duration_ms: r.try_get(3)?,
                status_code: r.try_get::<Option<i64>, _>(4)?.map(|c| c as u16),
                result: r.try_get(5)?,
                reason: r.try_get(6)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some((event, deliveries, attempts)))
    }

    pub async fn count_events(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&self.inner.read)
            .await?)
    }

    pub async fn target_counts(&self) -> Result<Vec<TargetCounts>, StoreError> {
        let rows = sqlx::query(
            "SELECT target,
                    SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END),
                    SUM(CASE WHEN status = 'dead' THEN 1 ELSE 0 END)
             FROM deliveries WHERE status IN ('pending', 'dead') GROUP BY target ORDER BY target",
        )
        .fetch_all(&self.inner.read)
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
        sqlx::query("SELECT 1").execute(&self.inner.read).await?;
        if self.inner.tx.is_closed() {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    /// Finish every write queued so far, stop the writer and close the connections. Later
    /// writes fail with [`StoreError::Closed`].
    pub async fn close(&self) {
        let (done_tx, done_rx) = oneshot::channel();
        if self.inner.tx.send(Op::Shutdown(done_tx)).await.is_ok() {
            let _ = done_rx.await;
        }
        if let Some(h) = self.inner.writer.lock().await.take() {
            let _ = h.await;
        }
        self.inner.checkpointer.abort();
        // Leave a small WAL behind: the next start (or a reader) need not replay it.
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.inner.read)
            .await
        {
            tracing::warn!(error = %e, "final WAL checkpoint failed");
        }
        self.inner.read.close().await;
    }
}

/// Queries whose text is built from constants only.
struct AssertSql;
impl AssertSql {
    fn delivery_by_event() -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(format!(
            "{DELIVERY_SELECT} WHERE d.event_row = ?1 ORDER BY d.id"
        ))
    }
}

fn delivery_row(r: &SqliteRow) -> Result<DeliveryRow, StoreError> {
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
        attempts: r.try_get::<i64, _>(7)? as u32,
        next_attempt_at_ms: r.try_get(8)?,
        last_error: r.try_get(9)?,
        created_at_ms: r.try_get(10)?,
        updated_at_ms: r.try_get(11)?,
    })
}

/// `(row id, event)` from `SELECT id, event_id, endpoint, scheme, name, model, body, received_at`.
fn stored_event(r: &SqliteRow) -> Result<(i64, StoredEvent), StoreError> {
    let scheme: String = r.try_get(3)?;
    let body: Vec<u8> = r.try_get(6)?;
    Ok((
        r.try_get(0)?,
        StoredEvent {
            event_id: r.try_get(1)?,
            endpoint: r.try_get(2)?,
            scheme: parse_scheme(&scheme)?,
            name: r.try_get(4)?,
            model: r.try_get(5)?,
            body: Bytes::from(body),
            received_at_ms: r.try_get(7)?,
        },
    ))
}

async fn writer_loop(
    mut conn: SqliteConnection,
    wal_sync: Option<WalSync>,
    mut rx: mpsc::Receiver<Op>,
    metrics: Arc<Metrics>,
    commits: Arc<AtomicU64>,
) {
    let mut batcher = Batcher::default();
    while let Some(Batch {
        ops: mut batch,
        stop: shutdown,
    }) = batcher.next(&mut rx).await
    {
        let mut done = Vec::with_capacity(batch.len());
        let result = if batch.is_empty() {
            Ok(())
        } else {
            metrics.store_batch_size.observe(batch.len() as f64);
            run_batch(&mut conn, batch.drain(..), &mut done).await
        };
        match result {
            Ok(()) => {
                commits.fetch_add(1, Ordering::Relaxed);
                match &wal_sync {
                    Some(sync) => {
                        let metrics = metrics.clone();
                        sync.after_sync(Box::new(move |synced| match synced {
                            Ok(()) => done.into_iter().for_each(Done::send),
                            Err(msg) => {
                                metrics.store_errors.inc();
                                tracing::error!(error = %msg, operations = done.len(), "store commit not durable");
                                done.into_iter().for_each(|d| d.fail(&msg));
                            }
                        }));
                    }
                    None => done.into_iter().for_each(Done::send),
                }
            }
            Err(e) => {
                metrics.store_errors.inc();
                tracing::error!(error = %e, operations = done.len(), "store transaction failed");
                let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
                let msg = e.to_string();
                done.into_iter().for_each(|d| d.fail(&msg));
            }
        }
        if let Some(ack) = shutdown {
            rx.close();
            settle_all(&wal_sync).await;
            let _ = conn.close().await;
            let _ = ack.send(());
            return;
        }
    }
    settle_all(&wal_sync).await;
    let _ = conn.close().await;
}

/// Waits until every commit handed to the fsync thread is settled. Before the writer's
/// connection closes: the last connection to close removes the WAL file.
async fn settle_all(wal_sync: &Option<WalSync>) {
    if let Some(sync) = wal_sync {
        let (tx, rx) = oneshot::channel();
        sync.after_sync(Box::new(move |_| {
            let _ = tx.send(());
        }));
        let _ = rx.await;
    }
}

/// Runs one batch in one transaction. Every op gets a `Done` pushed *before* any fallible work
/// for it, so on error each caller still gets an answer.
async fn run_batch(
    conn: &mut SqliteConnection,
    ops: impl Iterator<Item = Op>,
    done: &mut Vec<Done>,
) -> Result<(), StoreError> {
    let mut ingests: Vec<(NewEvent, Reply<Ingested>)> = Vec::new();
    let mut others: Vec<Op> = Vec::new();
    for op in ops {
        match op {
            Op::Ingest(ev, r) => ingests.push((ev, r)),
            other => others.push(other),
        }
    }
    // IMMEDIATE takes the write lock now, so a concurrent writer (the CLI) waits on busy_timeout
    // here instead of failing at the first write.
    if others.is_empty() {
        // The common case under load: only new events. One round trip, transaction included.
        return insert_events(conn, ingests, done, true).await;
    }
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    if !ingests.is_empty() {
        insert_events(conn, ingests, done, false).await?;
    }
    // Finished attempts first: they release leases the claims below may then see.
    let mut records = Vec::new();
    let mut rest = Vec::with_capacity(others.len());
    for op in others {
        match op {
            Op::Record(rec, now_ms, reply) => {
                done.push(Done::Unit(reply));
                records.push((rec, now_ms));
            }
            other => rest.push(other),
        }
    }
    if !records.is_empty() {
        record_all(conn, &records).await?;
    }
    for op in rest {
        match op {
            Op::Claim {
                target,
                limit,
                now_ms,
                lease_until_ms,
                reply,
            } => {
                let idx = done.len();
                done.push(Done::Claim(reply, Vec::new()));
                let claimed = claim(conn, &target, limit, now_ms, lease_until_ms).await?;
                if let Done::Claim(_, v) = &mut done[idx] {
                    *v = claimed;
                }
            }
            Op::Replay(sel, now_ms, reply) => {
                let idx = done.len();
                done.push(Done::Count(reply, 0));
                let n = replay(conn, sel, now_ms).await?;
                if let Done::Count(_, v) = &mut done[idx] {
                    *v = n;
                }
            }
            Op::Prune(cutoff, reply) => {
                let idx = done.len();
                done.push(Done::Count(reply, 0));
                let n = sqlx::query(
                    "DELETE FROM events WHERE id IN (
                        SELECT e.id FROM events e WHERE e.received_at < ?1
                        AND NOT EXISTS (SELECT 1 FROM deliveries d
                                        WHERE d.event_row = e.id AND d.status = 'pending')
                        LIMIT 10000)",
                )
                .bind(cutoff)
                .execute(&mut *conn)
                .await?
                .rows_affected();
                if let Done::Count(_, v) = &mut done[idx] {
                    *v = n;
                }
            }
            Op::ReleaseLeases(reply) => {
                let idx = done.len();
                done.push(Done::Count(reply, 0));
                let n = sqlx::query(
                    "UPDATE deliveries SET lease_until = NULL WHERE lease_until IS NOT NULL",
                )
                .execute(&mut *conn)
                .await?
                .rows_affected();
                if let Done::Count(_, v) = &mut done[idx] {
                    *v = n;
                }
            }
            Op::Ingest(..) | Op::Record(..) | Op::Shutdown(_) => {
                unreachable!("split off before the transaction")
            }
        }
    }
    sqlx::query("COMMIT").execute(&mut *conn).await?;
    Ok(())
}

/// Inserts a batch of events and their deliveries with ONE statement list sent to SQLite:
/// every round trip to sqlx's connection thread costs two thread wake-ups, which at high rates
/// weighs more than the inserts themselves. With `own_transaction` the list is wrapped in
/// `BEGIN IMMEDIATE … COMMIT`, so an ingest-only batch is a single round trip, fsync included.
async fn insert_events(
    conn: &mut SqliteConnection,
    ingests: Vec<(NewEvent, Reply<Ingested>)>,
    done: &mut Vec<Done>,
    own_transaction: bool,
) -> Result<(), StoreError> {
    // Two deliveries of one event inside one batch: the first is the event, later ones are
    // duplicates (the database would also refuse them, but would not say which one won).
    let mut first_in_batch = HashSet::with_capacity(ingests.len());
    let mut fresh: Vec<(usize, NewEvent)> = Vec::with_capacity(ingests.len());
    let base = done.len();
    for (i, (ev, reply)) in ingests.into_iter().enumerate() {
        if first_in_batch.insert(ev.event_id.clone()) {
            done.push(Done::Ingest(reply, Ingested::Accepted));
            fresh.push((base + i, ev));
        } else {
            done.push(Done::Ingest(reply, Ingested::Duplicate));
        }
    }
    let mut q = QueryBuilder::<Sqlite>::new(if own_transaction {
        "BEGIN IMMEDIATE; "
    } else {
        ""
    });
    for chunk in fresh.chunks(ROWS_PER_INSERT) {
        q.push("INSERT INTO events (event_id, endpoint, scheme, name, model, body, received_at) ");
        q.push_values(chunk, |mut b, (_, ev)| {
            b.push_bind(ev.event_id.clone())
                .push_bind(ev.endpoint.clone())
                .push_bind(ev.scheme.as_str())
                .push_bind(ev.name.clone())
                .push_bind(ev.model.clone())
                .push_bind(ev.body.as_ref())
                .push_bind(ev.received_at_ms);
        });
        q.push(" ON CONFLICT (event_id) DO NOTHING RETURNING id, event_id; ");
    }
    // Deliveries join on the event just inserted (same id and receive time). An event that was
    // already stored (a duplicate from an earlier batch) has another receive time and gets no
    // new deliveries; UNIQUE (event_row, target) backs this up.
    let deliveries: Vec<(&str, &str, i64)> = fresh
        .iter()
        .flat_map(|(_, ev)| {
            ev.targets
                .iter()
                .map(|t| (ev.event_id.as_str(), t.as_str(), ev.received_at_ms))
        })
        .collect();
    for chunk in deliveries.chunks(ROWS_PER_INSERT) {
        q.push(
            "INSERT INTO deliveries (event_row, target, status, attempts, next_attempt_at, cycle_started_at, created_at, updated_at) \
             SELECT e.id, v.column2, 'pending', 0, v.column3, v.column3, v.column3, v.column3 FROM (",
        );
        q.push_values(chunk, |mut b, (event_id, target, at)| {
            b.push_bind(event_id.to_string())
                .push_bind(target.to_string())
                .push_bind(*at);
        });
        q.push(
            ") AS v JOIN events e ON e.event_id = v.column1 AND e.received_at = v.column3 \
             WHERE true ON CONFLICT (event_row, target) DO NOTHING; ",
        );
    }
    if own_transaction {
        q.push("COMMIT;");
    }
    let rows = q.build().fetch_all(&mut *conn).await?;
    let mut inserted: HashSet<String> = HashSet::with_capacity(rows.len());
    for row in rows {
        inserted.insert(row.try_get(1)?);
    }
    for (idx, ev) in &fresh {
        if !inserted.contains(&ev.event_id) {
            if let Done::Ingest(_, v) = &mut done[*idx] {
                *v = Ingested::Duplicate;
            }
        }
    }
    Ok(())
}

async fn claim(
    conn: &mut SqliteConnection,
    target: &str,
    limit: u32,
    now_ms: i64,
    lease_until_ms: i64,
) -> Result<Vec<Claimed>, StoreError> {
    // Two round trips: loading the events in the same statement list would need the leased
    // ids, which only RETURNING knows (selecting them again by lease scans every pending row).
    let rows = sqlx::query(
        "UPDATE deliveries SET lease_until = ?1
         WHERE id IN (SELECT id FROM deliveries
                      WHERE status = 'pending' AND target = ?2 AND next_attempt_at <= ?3
                        AND (lease_until IS NULL OR lease_until <= ?3)
                      ORDER BY next_attempt_at, id LIMIT ?4)
         RETURNING id, event_row, attempts, cycle_started_at",
    )
    .bind(lease_until_ms)
    .bind(target)
    .bind(now_ms)
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = QueryBuilder::<Sqlite>::new(
        "SELECT id, event_id, endpoint, scheme, name, model, body, received_at FROM events WHERE id IN (",
    );
    let mut sep = q.separated(", ");
    for r in &rows {
        sep.push_bind(r.try_get::<i64, _>(1)?);
    }
    q.push(")");
    let mut events: HashMap<i64, Arc<StoredEvent>> = HashMap::new();
    for r in q.build().fetch_all(&mut *conn).await? {
        let (id, ev) = stored_event(&r)?;
        events.insert(id, Arc::new(ev));
    }
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let event_row: i64 = r.try_get(1)?;
        let event = events
            .get(&event_row)
            .cloned()
            .ok_or_else(|| StoreError::Corrupt(format!("delivery without event {event_row}")))?;
        out.push(Claimed {
            delivery_id: r.try_get(0)?,
            target: target.to_string(),
            attempts: r.try_get::<i64, _>(2)? as u32,
            cycle_started_at_ms: r.try_get(3)?,
            event,
        });
    }
    // Oldest first, as the queue order promised.
    out.sort_by_key(|c| c.delivery_id);
    Ok(out)
}

/// Records attempts, all in one statement list (one round trip however many there are): the
/// dispatcher finishes many deliveries per commit under load.
async fn record_all(
    conn: &mut SqliteConnection,
    recs: &[(AttemptRecord, i64)],
) -> Result<(), StoreError> {
    let mut q = QueryBuilder::<Sqlite>::new("");
    for chunk in recs.chunks(ROWS_PER_INSERT) {
        q.push(
            "UPDATE deliveries SET status = v.column2, attempts = v.column3, \
             next_attempt_at = COALESCE(v.column4, deliveries.next_attempt_at), lease_until = NULL, \
             last_error = v.column5, updated_at = v.column6 FROM (",
        );
        q.push_values(chunk, |mut b, (rec, now_ms)| {
            let (status, next_at) = rec.result.next_state();
            b.push_bind(rec.delivery_id)
                .push_bind(status.as_str())
                .push_bind(i64::from(rec.attempt))
                .push_bind(next_at)
                .push_bind(rec.reason.clone())
                .push_bind(*now_ms);
        });
        q.push(") AS v WHERE deliveries.id = v.column1; ");
        q.push("INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms, status_code, result, reason) ");
        q.push_values(chunk, |mut b, (rec, _)| {
            b.push_bind(rec.delivery_id)
                .push_bind(i64::from(rec.attempt))
                .push_bind(rec.started_at_ms)
                .push_bind(rec.duration_ms)
                .push_bind(rec.status_code.map(i64::from))
                .push_bind(rec.result.as_str())
                .push_bind(rec.reason.clone());
        });
        q.push("; ");
    }
    q.build().execute(&mut *conn).await?;
    Ok(())
}

async fn replay(
    conn: &mut SqliteConnection,
    sel: ReplaySelector,
    now_ms: i64,
) -> Result<u64, StoreError> {
    let mut q = QueryBuilder::<Sqlite>::new(
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
            q.push(" WHERE status IN ('dead', 'delivered') AND id IN (");
            let mut sep = q.separated(", ");
            for id in ids {
                sep.push_bind(id);
            }
            q.push(")");
        }
        ReplaySelector::Status { status, target } => {
            q.push(" WHERE status = ").push_bind(status.as_str());
            if let Some(t) = target {
                q.push(" AND target = ").push_bind(t);
            }
        }
    }
    Ok(q.build().execute(&mut *conn).await?.rows_affected())
}

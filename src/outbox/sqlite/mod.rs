//! The embedded store: SQLite in WAL mode, every acknowledged commit fsync'd.
//!
//! All writes go through one writer thread ([`writer`]) that owns the only writing connection.
//! It takes every operation queued while the previous commit was in flight and runs them in one
//! transaction: concurrent requests share one fsync (group commit), so durable throughput is not
//! capped at the disk's fsync rate. The fsync itself runs beside the writer (see
//! [`super::wal_sync`]): replies wait for it, the next batch does not. Reads use a small separate
//! pool (WAL lets them run beside the writer).

mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, QueryBuilder, Row, Sqlite};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use self::writer::Op;
use super::group::{self, Queue};
use super::{
    AttemptRecord, AttemptRow, Claimed, DELIVERY_SELECT, DeadLettered, DeliveryFilter, DeliveryRow,
    DeliveryStatus, Ingested, NewEvent, ReplaySelector, StoreError, StoredEvent, TargetCounts,
    parse_scheme,
};
use crate::metrics::Metrics;

/// The events table, under a given name (the migration builds it beside the old one).
///
/// De-duplication is by (`key_time`, `event_id`), not by the id alone: `key_time` is a function
/// of the id (see [`crate::event::Identity`]), so the two are unique together exactly when the id
/// is; but ids are hashes or random UUIDs, and an index led by them takes each insert at a random
/// place (a page written per event, to the WAL and again by the checkpoint), while a Databricks
/// key leads with the sender's clock and lands at the end. The price: looking an event up by id
/// alone (the admin API) scans the unique index.
fn events_table(name: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {name} (
            id INTEGER PRIMARY KEY,
            key_time INTEGER NOT NULL,
            event_id TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            scheme TEXT NOT NULL,
            name TEXT NOT NULL,
            model TEXT,
            body BLOB NOT NULL,
            received_at INTEGER NOT NULL,
            UNIQUE (key_time, event_id)
        )"
    )
}

/// Everything after the events table (which [`events_table`] makes first).
const SCHEMA: &[&str] = &[
    // Stores made before pruning went by row id had an index on `received_at` (see
    // `writer::prune`): each commit paid a page write for it.
    "DROP INDEX IF EXISTS events_received_at",
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
    // One row, rewritten by each readiness check (see `SqliteStore::ping`).
    "CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY CHECK (id = 1), at INTEGER NOT NULL)",
];

/// An event by its id. No index leads with the id alone (see [`events_table`]), so the id is
/// found by scanning the unique index, which holds (key_time, event_id, row id) and is a small
/// part of the table (the table holds the bodies); then the row is read by its id. Measured on
/// 300,000 events: 33 ms, against 80-93 ms for a scan of the table.
const EVENT_BY_ID: &str = "SELECT id, event_id, endpoint, scheme, name, model, body, received_at
     FROM events WHERE id = (SELECT id FROM events WHERE event_id = ?1)";

#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    queue: Queue<Op>,
    read: SqlitePool,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    checkpointer: JoinHandle<()>,
    /// The database file.
    path: std::path::PathBuf,
    /// Held while `serve` runs on the file (see [`SqliteStore::lock_for_serve`]).
    serve_lock: std::sync::Mutex<Option<std::fs::File>>,
}

/// What every connection sets, the writer's included.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
const PRAGMAS: &[(&str, &str)] = &[
    ("foreign_keys", "ON"),
    // A small page cache keeps the resident set small; the working set is the tail of the
    // tables, which the OS page cache serves anyway.
    ("cache_size", "-1024"),
    // Checkpoints run beside the writer (see `checkpoint_loop`), never inside a commit.
    ("wal_autocheckpoint", "0"),
];

/// How often the WAL is copied back into the database file while writes happen.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Page size of a store file made from now on (an existing file keeps its own). With the
/// sender's clock leading the events' unique key, a commit writes the last, partly filled page of
/// the table and of each index plus the new ones; 4 KiB pages write about the same bytes as 1 KiB
/// pages in a fifth of the system calls. Measured beside 1 KiB on the benchmark machine, in
/// interleaved runs: 10-15 % less CPU per event, as many or more events/s, a lower p99.
const PAGE_SIZE: u32 = 4096;

/// WAL size past which the writer makes the WAL start over. Each start costs the writer a short
/// pause (one database fsync), so under sustained load a smaller WAL means more, but shorter,
/// pauses; it also keeps the mapped WAL index (`-shm`, which grows with the WAL) and crash
/// recovery small. 16 MiB gave a lower p99 than 64 MiB at the same throughput; 8 MiB cost
/// throughput.
#[cfg(not(test))]
const WAL_RESTART_BYTES: i64 = 16 << 20;
/// Small enough for a test to get there in a second or two.
#[cfg(test)]
const WAL_RESTART_BYTES: i64 = 2 << 20;

/// [`WAL_RESTART_BYTES`] in WAL frames of a store's page size.
fn wal_restart_frames(page_size: i64) -> i64 {
    WAL_RESTART_BYTES / page_size.max(512)
}

/// The WAL file is cut back to this size when it starts over (`journal_size_limit`). Twice the
/// restart size (each frame has a 24-byte header), so that normally nothing is cut: truncating
/// (and growing the file again) would add to the writer's pause, and a file that keeps its size
/// is rewritten in place.
fn wal_size_limit(page_size: i64) -> i64 {
    2 * wal_restart_frames(page_size) * (page_size + 24)
}

/// Checkpoint rounds in a row, at most, waiting for a quick one.
const ROUNDS: u32 = 8;
/// A checkpoint round this short leaves little for the writer to copy.
const QUICK_CHECKPOINT: Duration = Duration::from_millis(3);

/// Passive checkpoints beside the writer: they never block it, and keep the time a crash
/// recovery takes small. A passive checkpoint skips frames a reader still needs; the next round
/// takes them.
///
/// Under steady writes they are not enough to keep the WAL *file* small: SQLite starts the WAL
/// over only when a transaction begins with every frame already copied, and new frames arrive
/// while a checkpoint copies. So once the WAL is past [`WAL_RESTART_BYTES`], rounds follow one
/// another until one is quick (little arrived during the one before), and then the writer is
/// asked to copy the few frames left itself, between two batches (see
/// `writer::start_wal_over`): a short pause, one small database fsync. With gaps between writes
/// the WAL starts over on its own.
async fn checkpoint_loop(
    pool: SqlitePool,
    page_size: i64,
    commits: Arc<AtomicU64>,
    restart_wal: Arc<AtomicBool>,
) {
    let restart_frames = wal_restart_frames(page_size);
    let mut seen = 0;
    loop {
        tokio::time::sleep(CHECKPOINT_EVERY).await;
        let now = commits.load(Ordering::Relaxed);
        if now == seen {
            continue;
        }
        seen = now;
        for round in 1..=ROUNDS {
            let started = Instant::now();
            // (busy, frames in the WAL, frames copied)
            let (frames, copied) =
                match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
                    .fetch_one(&pool)
                    .await
                {
                    Ok((_, frames, copied)) => (frames, copied),
                    Err(e) => {
                        tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
                        break;
                    }
                };
            if frames < restart_frames || copied < frames {
                break;
            }
            // Quick: little is left for the writer. After the last round, ask anyway: a longer
            // pause for the writer beats a WAL that never stops growing (a slow disk).
            if started.elapsed() < QUICK_CHECKPOINT || round == ROUNDS {
                restart_wal.store(true, Ordering::Relaxed);
                break;
            }
        }
    }
}

/// Rebuilds an events table made before `key_time` (whose `event_id` was unique on its own),
/// keeping every row id so deliveries still point at their events. SQLite cannot change a
/// table's constraints in place; this is its documented procedure (foreign keys off, new table,
/// copy, drop, rename, check), in one transaction. Each row's `key_time` is computed by the
/// same code the ingress uses, from the stored body.
async fn migrate_events(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info('events')")
        .fetch_all(&mut *conn)
        .await?;
    if columns.is_empty() || columns.iter().any(|c| c == "key_time") {
        return Ok(());
    }
    tracing::info!("adding key_time to the events table (a one-time rebuild)");
    // Outside the transaction: SQLite ignores this pragma inside one.
    sqlx::query("PRAGMA foreign_keys = OFF")
        .execute(&mut *conn)
        .await?;
    let result = rebuild_events(conn).await;
    sqlx::query("PRAGMA foreign_keys = ON")
        .execute(&mut *conn)
        .await?;
    result
}

async fn rebuild_events(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    let mut tx = conn.begin().await?;
    sqlx::query(sqlx::AssertSqlSafe(events_table("events_new")))
        .execute(&mut *tx)
        .await?;
    // Old ids are unique, so (0, id) is too; the real times are filled in below.
    sqlx::query(
        "INSERT INTO events_new (id, key_time, event_id, endpoint, scheme, name, model, body, received_at)
         SELECT id, 0, event_id, endpoint, scheme, name, model, body, received_at FROM events",
    )
    .execute(&mut *tx)
    .await?;
    let mut after = i64::MIN;
    loop {
        let rows: Vec<(i64, String, String, Vec<u8>)> = sqlx::query_as(
            "SELECT id, event_id, scheme, body FROM events_new WHERE id > ?1 ORDER BY id LIMIT 1000",
        )
        .bind(after)
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.0;
        for (id, event_id, scheme, body) in rows {
            let time = key_time(&event_id, parse_scheme(&scheme)?, Bytes::from(body));
            if time != 0 {
                sqlx::query("UPDATE events_new SET key_time = ?1 WHERE id = ?2")
                    .bind(time)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
    }
    sqlx::query("DROP TABLE events").execute(&mut *tx).await?;
    sqlx::query("ALTER TABLE events_new RENAME TO events")
        .execute(&mut *tx)
        .await?;
    let broken: Vec<(String,)> = sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
        .fetch_all(&mut *tx)
        .await?;
    if !broken.is_empty() {
        return Err(StoreError::Corrupt(format!(
            "{} rows point at no event after rebuilding the events table",
            broken.len()
        )));
    }
    tx.commit().await?;
    Ok(())
}

/// A stored event's `key_time`, as the ingress computed it when the event arrived: the stored
/// id is the delivery id unless it is the body's hash.
fn key_time(event_id: &str, scheme: crate::verify::Scheme, body: Bytes) -> i64 {
    let delivery_id = Some(event_id).filter(|id| *id != hex::encode(Sha256::digest(&body)));
    let proof = crate::verify::Verified::from_store(delivery_id.map(str::to_owned));
    match crate::event::Event::parse(scheme, &proof, body) {
        Ok(event) => event.identity(delivery_id).time_ms,
        Err(_) => 0,
    }
}

impl SqliteStore {
    pub async fn open(url: &str, metrics: Arc<Metrics>) -> Result<SqliteStore, StoreError> {
        // These options serve the connection that makes the file and the schema, and the read
        // pool (whose checkpoints sync as FULL does). The writer has its own (`writer::open`).
        let mut options = SqliteConnectOptions::from_str(url)?;
        refuse_a_wal_without_its_database(options.get_filename())?;
        options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .statement_cache_capacity(512)
            // Takes effect when the file is made.
            .page_size(PAGE_SIZE);
        for (name, value) in PRAGMAS {
            options = options.pragma(*name, *value);
        }
        // This connection makes the file and the schema (with the page size above), then
        // gives way to the writer's own.
        let mut conn = SqliteConnection::connect_with(&options).await?;
        migrate_events(&mut conn).await?;
        sqlx::query(sqlx::AssertSqlSafe(events_table("events")))
            .execute(&mut conn)
            .await?;
        for stmt in SCHEMA {
            sqlx::query(*stmt).execute(&mut conn).await?;
        }
        let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&mut conn)
            .await?;
        let path = options.get_filename().to_path_buf();
        let path = path.as_path();
        let (queue, rx) = group::queue();
        let commits = Arc::new(AtomicU64::new(0));
        let restart_wal = Arc::new(AtomicBool::new(false));
        let writer = writer::start(
            options.get_filename().to_path_buf(),
            wal_size_limit(page_size),
            rx,
            metrics,
            commits.clone(),
            restart_wal.clone(),
        )
        .await?;
        conn.close().await?;
        let read = SqlitePoolOptions::new()
            .min_connections(0)
            .max_connections(2)
            .idle_timeout(Duration::from_secs(60))
            .connect_with(options)
            .await?;
        let checkpointer = tokio::spawn(checkpoint_loop(
            read.clone(),
            page_size,
            commits,
            restart_wal,
        ));
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                queue,
                read,
                writer: Mutex::new(Some(writer)),
                checkpointer,
                path: path.to_path_buf(),
                serve_lock: std::sync::Mutex::new(None),
            }),
        })
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
        let target = target.to_string();
        self.inner
            .queue
            .call(|reply| Op::Claim {
                target,
                limit,
                now_ms,
                lease_until_ms,
                reply,
            })
            .await
    }

    pub async fn record(&self, record: AttemptRecord, now_ms: i64) -> Result<(), StoreError> {
        self.inner
            .queue
            .call(|r| Op::Record(record, now_ms, r))
            .await
    }

    pub async fn replay(
        &self,
        sel: ReplaySelector,
        now_ms: i64,
        targets: Option<&[String]>,
    ) -> Result<u64, StoreError> {
        let targets = targets.map(json_names).transpose()?;
        self.inner
            .queue
            .call(|r| Op::Replay(sel, now_ms, targets, r))
            .await
    }

    pub async fn prune(&self, before_ms: i64, dead_before_ms: i64) -> Result<u64, StoreError> {
        self.inner
            .queue
            .call(|r| Op::Prune(before_ms, dead_before_ms, r))
            .await
    }

    pub async fn dead_letter_unconfigured(
        &self,
        configured: &[String],
        now_ms: i64,
    ) -> Result<Vec<DeadLettered>, StoreError> {
        let configured = json_names(configured)?;
        self.inner
            .queue
            .call(|r| Op::DeadLetterUnconfigured(configured, now_ms, r))
            .await
    }

    pub async fn release_leases(&self) -> Result<u64, StoreError> {
        self.inner.queue.call(Op::ReleaseLeases).await
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
        let row = sqlx::query(EVENT_BY_ID)
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

    /// Whether the store can read and make a commit durable now: a read, then a one-row write
    /// through the writer, answered after its fsync like an event. A store that can read but
    /// not commit (the disk full, its WAL or database file removed) answers every event with
    /// 503, and readiness should say so too.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.inner.read).await?;
        if self.inner.queue.is_closed() {
            return Err(StoreError::Closed);
        }
        let now = crate::app::now_ms();
        self.inner.queue.call(|reply| Op::Probe(now, reply)).await
    }

    /// Returns once every write queued before it is committed (the writer's queue is FIFO).
    pub async fn flush(&self) -> Result<(), StoreError> {
        let now = crate::app::now_ms();
        self.inner.queue.call(|reply| Op::Probe(now, reply)).await
    }

    /// Takes the database file for this process alone, for as long as the store is open (or
    /// [`SqliteStore::close`]): `serve` calls it before it releases the leases of a previous
    /// run, which would otherwise take over the deliveries of a gateway still running on the
    /// same file and send them twice. The CLI's reads and replays do not take it; they work
    /// beside a running gateway. An advisory lock (`flock`), which SQLite's own locks ignore.
    pub fn lock_for_serve(&self) -> Result<(), StoreError> {
        let path = &self.inner.path;
        let file = std::fs::File::open(path)
            .map_err(|e| StoreError::Unusable(format!("{}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Unusable(format!(
                    "{} is in use by another hookgate serve: one gateway per SQLite file (use \
                     PostgreSQL for several)",
                    path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::Unusable(format!(
                    "locking {}: {e}",
                    path.display()
                )));
            }
        }
        *self.inner.serve_lock.lock().expect("not poisoned") = Some(file);
        Ok(())
    }

    /// Finish every write queued so far, stop the writer and close the connections. Later
    /// writes fail with [`StoreError::Closed`].
    pub async fn close(&self) {
        self.inner.queue.stop().await;
        if let Some(h) = self.inner.writer.lock().await.take() {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
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
        // Last: a gateway waiting for the file starts only once it is left as it should be.
        self.inner.serve_lock.lock().expect("not poisoned").take();
    }
}

/// Target names as one bound JSON array instead of a list of parameters: the statement's text
/// never changes, so the writer's cached prepared statement serves every call.
fn json_names(names: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(names)
        .map_err(|e| StoreError::Transaction(format!("encoding the target names: {e}")))
}

/// A WAL file beside no database means the database was removed or moved while a gateway ran
/// on it (the WAL is removed when the last connection closes cleanly). Starting would make an
/// empty store, silently: everything acknowledged before would look never received.
fn refuse_a_wal_without_its_database(database: &std::path::Path) -> Result<(), StoreError> {
    let mut wal = database.as_os_str().to_os_string();
    wal.push("-wal");
    let wal = std::path::PathBuf::from(wal);
    if !database.exists() && wal.exists() {
        return Err(StoreError::Unusable(format!(
            "{} exists but {} does not: the database was removed or moved. Put it back, or \
             remove {} and its -shm file to start with an empty store",
            wal.display(),
            database.display(),
            wal.display()
        )));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(i: u64) -> NewEvent {
        NewEvent {
            endpoint: "databricks".into(),
            event_id: format!("{i:064x}"),
            key_time_ms: 0,
            scheme: crate::verify::Scheme::Databricks,
            name: "MODEL_VERSION_CREATED".into(),
            model: Some("m".into()),
            body: Bytes::from(vec![b'x'; 450]),
            received_at_ms: 1_000,
            targets: Vec::new(),
        }
    }

    /// The events table as hookgate 0.1.0 made it: the event id unique on its own.
    const EVENTS_V0: &str = "CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        endpoint TEXT NOT NULL,
        scheme TEXT NOT NULL,
        name TEXT NOT NULL,
        model TEXT,
        body BLOB NOT NULL,
        received_at INTEGER NOT NULL
    )";

    #[tokio::test]
    async fn an_event_is_found_by_id_through_the_index_not_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let store = SqliteStore::open(&url, Arc::new(Metrics::new()))
            .await
            .unwrap();
        for i in 0..10 {
            store.ingest(event(i)).await.unwrap();
        }
        // EXPLAIN QUERY PLAN rows are (id, parent, notused, detail).
        let explain = format!("EXPLAIN QUERY PLAN {EVENT_BY_ID}");
        let plan: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(explain))
            .bind("x")
            .fetch_all(&store.inner.read)
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get::<String, _>(3).unwrap())
            .collect();
        assert!(
            plan.iter().any(|d| d.contains("COVERING INDEX")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|d| d == "SCAN events"), "{plan:?}");

        let (found, _, _) = store.get_event(&event(7).event_id).await.unwrap().unwrap();
        assert_eq!(found.event_id, event(7).event_id);
        assert!(
            store
                .get_event(&format!("{:064x}", 99))
                .await
                .unwrap()
                .is_none()
        );
        store.close().await;
    }

    #[tokio::test]
    async fn an_events_table_without_key_time_is_rebuilt_keeping_rows_and_deliveries() {
        use crate::verify::Scheme;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("old.db");
        let timed =
            r#"{"event":"MODEL_VERSION_CREATED","model_name":"m","event_timestamp":1589859029343}"#;
        let untimed = r#"{"event":"MODEL_VERSION_CREATED","model_name":"u"}"#;
        let mlflow = r#"{"entity":"model_version","action":"created","timestamp":"2026-11-25T14:32:45+00:00","data":{}}"#;
        let hash = |b: &str| hex::encode(Sha256::digest(b.as_bytes()));
        {
            let old = rusqlite::Connection::open(&db).unwrap();
            old.execute_batch("PRAGMA page_size = 1024; PRAGMA journal_mode = WAL;")
                .unwrap();
            old.execute_batch(EVENTS_V0).unwrap();
            for stmt in SCHEMA {
                old.execute_batch(stmt).unwrap();
            }
            let rows = [
                (7, hash(timed), "databricks", timed),
                (8, "d-1".to_string(), "mlflow", mlflow),
                (9, hash(untimed), "databricks", untimed),
            ];
            for (id, event_id, scheme, body) in rows {
                old.execute(
                    "INSERT INTO events VALUES (?1, ?2, 'e', ?3, 'n', 'm', ?4, 1000)",
                    rusqlite::params![id, event_id, scheme, body.as_bytes()],
                )
                .unwrap();
            }
            old.execute(
                "INSERT INTO deliveries (event_row, target, status, next_attempt_at,
                                         cycle_started_at, created_at, updated_at)
                 VALUES (7, 'sink', 'dead', 1, 1, 1, 1)",
                [],
            )
            .unwrap();
        }

        let url = format!("sqlite://{}", db.display());
        let store = SqliteStore::open(&url, Arc::new(Metrics::new()))
            .await
            .unwrap();
        let keys: Vec<(i64, i64, String)> =
            sqlx::query_as("SELECT id, key_time, event_id FROM events ORDER BY id")
                .fetch_all(&store.inner.read)
                .await
                .unwrap();
        assert_eq!(
            keys,
            vec![
                (7, 1_589_859_029_343, hash(timed)),
                (8, 0, "d-1".to_string()),
                (9, 0, hash(untimed)),
            ]
        );
        // The delivery still belongs to its event.
        let (stored, deliveries, _) = store.get_event(&hash(timed)).await.unwrap().unwrap();
        assert_eq!(stored.body.as_ref(), timed.as_bytes());
        assert_eq!(deliveries.len(), 1);
        assert_eq!(deliveries[0].target, "sink");

        // Re-sent copies of the old events are duplicates; a new one is stored.
        let resend = |id: String, key_time_ms: i64, scheme: Scheme, body: &str| NewEvent {
            event_id: id,
            key_time_ms,
            scheme,
            body: Bytes::copy_from_slice(body.as_bytes()),
            ..event(0)
        };
        let identity = |body: &str| {
            crate::event::Event::parse(
                Scheme::Databricks,
                &crate::verify::Verified::from_store(None),
                Bytes::copy_from_slice(body.as_bytes()),
            )
            .unwrap()
            .identity(None)
        };
        let again = identity(timed);
        assert_eq!(
            store
                .ingest(resend(again.id, again.time_ms, Scheme::Databricks, timed))
                .await
                .unwrap(),
            Ingested::Duplicate
        );
        assert_eq!(
            store
                .ingest(resend("d-1".into(), 0, Scheme::Mlflow, mlflow))
                .await
                .unwrap(),
            Ingested::Duplicate
        );
        let fresh = r#"{"event":"MODEL_VERSION_CREATED","event_timestamp":1589859029999}"#;
        let new = identity(fresh);
        assert_eq!(
            store
                .ingest(resend(new.id, new.time_ms, Scheme::Databricks, fresh))
                .await
                .unwrap(),
            Ingested::Accepted
        );
        store.close().await;

        // A second open finds the new shape and changes nothing.
        let store = SqliteStore::open(&url, Arc::new(Metrics::new()))
            .await
            .unwrap();
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&store.inner.read)
            .await
            .unwrap();
        assert_eq!(count, 4);
        store.close().await;
    }

    #[tokio::test]
    async fn the_received_at_index_of_older_stores_is_dropped_and_pruning_goes_by_row_id() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("idx.db");
        let url = format!("sqlite://{}", db.display());
        let store = SqliteStore::open(&url, Arc::new(Metrics::new()))
            .await
            .unwrap();
        let at = |i: u64, received_at_ms: i64| NewEvent {
            received_at_ms,
            ..event(i)
        };
        // Received at 1 s, 2 s, 3 s, then one stored after the clock went back to 1.5 s.
        for (i, t) in [(1, 1_000), (2, 2_000), (3, 3_000), (4, 1_500)] {
            assert_eq!(store.ingest(at(i, t)).await.unwrap(), Ingested::Accepted);
        }
        store.close().await;
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE INDEX events_received_at ON events (received_at)")
            .unwrap();

        let store = SqliteStore::open(&url, Arc::new(Metrics::new()))
            .await
            .unwrap();
        let indexes: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE name = 'events_received_at'",
        )
        .fetch_one(&store.inner.read)
        .await
        .unwrap();
        assert_eq!(indexes, 0);
        // The rows before the first young one go; the late one waits behind it.
        assert_eq!(store.prune(2_500, 2_500).await.unwrap(), 2);
        assert_eq!(store.count_events().await.unwrap(), 2);
        assert_eq!(store.prune(3_500, 3_500).await.unwrap(), 2);
        assert_eq!(store.count_events().await.unwrap(), 0);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_starts_over_under_steady_writes() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wal.db");
        let metrics = Arc::new(Metrics::new());
        let store = SqliteStore::open(&format!("sqlite://{}", db.display()), metrics.clone())
            .await
            .unwrap();
        let wal = dir.path().join("wal.db-wal");
        // Writers that never pause: without the writer's own checkpoint the WAL only grows.
        let deadline = Instant::now() + Duration::from_secs(3);
        let tasks: Vec<_> = (0..16u64)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut i = w << 32;
                    while Instant::now() < deadline {
                        store.ingest(event(i)).await.unwrap();
                        i += 1;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        // The WAL header's checkpoint sequence number (bytes 12..16) counts the times the WAL
        // started over since the file was made.
        let mut header = [0u8; 16];
        std::io::Read::read_exact(&mut std::fs::File::open(&wal).unwrap(), &mut header).unwrap();
        let restarts = u32::from_be_bytes(header[12..16].try_into().unwrap());
        let commits = metrics.store_batch_size.get_sample_count();
        assert!(
            commits > 1000,
            "only {commits} commits: too few to show anything"
        );
        assert!(
            restarts >= 2,
            "the WAL started over {restarts} times in {commits} commits ({} bytes now)",
            std::fs::metadata(&wal).unwrap().len()
        );
        store.close().await;
    }
}

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
    AttemptRecord, AttemptRow, Claimed, DELIVERY_SELECT, DeliveryFilter, DeliveryRow,
    DeliveryStatus, Ingested, NewEvent, ReplaySelector, StoreError, StoredEvent, TargetCounts,
    parse_scheme,
};
use crate::metrics::Metrics;

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

#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    queue: Queue<Op>,
    read: SqlitePool,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    checkpointer: JoinHandle<()>,
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

/// WAL size (in frames, 1 KiB each) past which the writer makes the WAL start over. Each start
/// costs the writer a short pause (one database fsync), so under sustained load a smaller WAL
/// means more, but shorter, pauses; it also keeps the mapped WAL index (`-shm`, which grows with
/// the WAL) and crash recovery small. 16 Ki frames (~17 MB) gave a lower p99 than 64 Ki at the
/// same throughput; 8 Ki cost throughput.
#[cfg(not(test))]
const WAL_RESTART_FRAMES: i64 = 16 * 1024;
/// Small enough for a test to get there in a second or two.
#[cfg(test)]
const WAL_RESTART_FRAMES: i64 = 2 * 1024;
/// The WAL file is cut back to this size when it starts over (`journal_size_limit`). Twice the
/// restart size, so that normally nothing is cut: truncating (and growing the file again) would
/// add to the writer's pause, and a file that keeps its size is rewritten in place.
const WAL_SIZE_LIMIT: i64 = 2 * WAL_RESTART_FRAMES * (1024 + 24);
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
/// while a checkpoint copies. So once the WAL is past [`WAL_RESTART_FRAMES`], rounds follow one
/// another until one is quick (little arrived during the one before), and then the writer is
/// asked to copy the few frames left itself, between two batches (see
/// `writer::start_wal_over`): a short pause, one small database fsync. With gaps between writes
/// the WAL starts over on its own.
async fn checkpoint_loop(pool: SqlitePool, commits: Arc<AtomicU64>, restart_wal: Arc<AtomicBool>) {
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
            if frames < WAL_RESTART_FRAMES || copied < frames {
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

impl SqliteStore {
    pub async fn open(url: &str, metrics: Arc<Metrics>) -> Result<SqliteStore, StoreError> {
        // These options serve the connection that makes the file and the schema, and the read
        // pool (whose checkpoints sync as FULL does). The writer has its own (`writer::open`).
        let mut options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .statement_cache_capacity(512)
            // 1 KiB pages: the event-id index takes inserts at random places, so each commit
            // writes a page per event to the WAL; small pages keep those writes small. Takes
            // effect when the file is made.
            .page_size(1024);
        for (name, value) in PRAGMAS {
            options = options.pragma(*name, *value);
        }
        // This connection makes the file and the schema (with the page size above), then
        // gives way to the writer's own.
        let mut conn = SqliteConnection::connect_with(&options).await?;
        for stmt in SCHEMA {
            sqlx::query(*stmt).execute(&mut conn).await?;
        }
        let (queue, rx) = group::queue();
        let commits = Arc::new(AtomicU64::new(0));
        let restart_wal = Arc::new(AtomicBool::new(false));
        let writer = writer::start(
            options.get_filename().to_path_buf(),
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
        let checkpointer = tokio::spawn(checkpoint_loop(read.clone(), commits, restart_wal));
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                queue,
                read,
                writer: Mutex::new(Some(writer)),
                checkpointer,
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

    pub async fn replay(&self, sel: ReplaySelector, now_ms: i64) -> Result<u64, StoreError> {
        self.inner.queue.call(|r| Op::Replay(sel, now_ms, r)).await
    }

    pub async fn prune(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        self.inner.queue.call(|r| Op::Prune(cutoff_ms, r)).await
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
        if self.inner.queue.is_closed() {
            return Err(StoreError::Closed);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(i: u64) -> NewEvent {
        NewEvent {
            endpoint: "databricks".into(),
            event_id: format!("{i:064x}"),
            scheme: crate::verify::Scheme::Databricks,
            name: "MODEL_VERSION_CREATED".into(),
            model: Some("m".into()),
            body: Bytes::from(vec![b'x'; 450]),
            received_at_ms: 1_000,
            targets: Vec::new(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_starts_over_under_steady_writes() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("wal.db");
        let store = SqliteStore::open(
            &format!("sqlite://{}", db.display()),
            Arc::new(Metrics::new()),
        )
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
                    i - (w << 32)
                })
            })
            .collect();
        let mut written = 0;
        for t in tasks {
            written += t.await.unwrap();
        }
        let wal_bytes = std::fs::metadata(&wal).unwrap().len();
        // Each event dirties at least two 1 KiB pages (its table page and an index page): a WAL
        // that never started over would hold them all.
        let never_restarted = written * 2 * 1024;
        assert!(
            written * 2 > 4 * WAL_RESTART_FRAMES as u64,
            "the test wrote too little ({written} events) to show anything"
        );
        assert!(
            wal_bytes < never_restarted / 2,
            "WAL is {wal_bytes} bytes after {written} events"
        );
        store.close().await;
    }
}

//! The SQLite writer: one thread that owns the only writing connection.
//!
//! It takes every operation queued while its previous commit was in flight and runs them in one
//! transaction (group commit), with prepared statements cached on the connection. It runs on its
//! own thread and talks to SQLite directly (rusqlite), so a batch costs no hop between threads
//! per statement and no SQL text built per batch; the async side only queues operations and
//! awaits replies. Replies go out after the WAL fsync (see [`super::super::wal_sync`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use super::super::group::{Batch, Batcher, Queued, Reply};
use super::super::wal_sync::WalSync;
use super::super::{
    AttemptRecord, Claimed, DeadLettered, Ingested, NewEvent, ReplaySelector, StoreError,
    StoredEvent, UNCONFIGURED_ERROR_SQL, parse_scheme,
};
use super::{BUSY_TIMEOUT, PRAGMAS};
use crate::metrics::Metrics;

pub(super) enum Op {
    Ingest(NewEvent, Reply<Ingested>),
    Claim {
        target: String,
        limit: u32,
        now_ms: i64,
        lease_until_ms: i64,
        reply: Reply<Vec<Claimed>>,
    },
    Record(AttemptRecord, i64, Reply<()>),
    /// With the targets to keep to, as a JSON array of names (`None`: any).
    Replay(ReplaySelector, i64, Option<String>, Reply<u64>),
    /// Events received before `.0` (done) or `.1` (done or dead) go.
    Prune(i64, i64, Reply<u64>),
    ReleaseLeases(Reply<u64>),
    /// The configured targets as a JSON array of strings, and now.
    DeadLetterUnconfigured(String, i64, Reply<Vec<DeadLettered>>),
    /// A write that is answered like any other, after its commit's fsync: whether the store can
    /// make a commit durable now (the readiness check).
    Probe(i64, Reply<()>),
}

/// A finished operation whose reply waits for the commit (and its fsync).
enum Done {
    Ingest(Reply<Ingested>, Ingested),
    Claim(Reply<Vec<Claimed>>, Vec<Claimed>),
    Unit(Reply<()>),
    Count(Reply<u64>, u64),
    DeadLettered(Reply<Vec<DeadLettered>>, Vec<DeadLettered>),
}

impl Done {
    fn send(self) {
        // A caller that stopped waiting (client gone) is not an error: the data is committed.
        match self {
            Done::Ingest(r, v) => drop(r.send(Ok(v))),
            Done::Claim(r, v) => drop(r.send(Ok(v))),
            Done::Unit(r) => drop(r.send(Ok(()))),
            Done::Count(r, v) => drop(r.send(Ok(v))),
            Done::DeadLettered(r, v) => drop(r.send(Ok(v))),
        }
    }

    fn fail(self, msg: &str) {
        let e = || StoreError::Transaction(msg.to_string());
        match self {
            Done::Ingest(r, _) => drop(r.send(Err(e()))),
            Done::Claim(r, _) => drop(r.send(Err(e()))),
            Done::Unit(r) => drop(r.send(Err(e()))),
            Done::Count(r, _) => drop(r.send(Err(e()))),
            Done::DeadLettered(r, _) => drop(r.send(Err(e()))),
        }
    }
}

/// Opens the writing connection on a new thread and runs the writer there. Returns once the
/// connection is ready (or could not be opened).
pub(super) async fn start(
    database: PathBuf,
    wal_size_limit: i64,
    rx: mpsc::Receiver<Queued<Op>>,
    metrics: Arc<Metrics>,
    commits: Arc<AtomicU64>,
    restart_wal: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, StoreError> {
    let (ready_tx, ready_rx) = oneshot::channel();
    let handle = std::thread::Builder::new()
        .name("hookgate-sqlite-writer".into())
        .spawn(move || match open(&database, wal_size_limit) {
            Ok((conn, sync)) => {
                let _ = ready_tx.send(Ok(()));
                run(conn, sync, rx, &metrics, &commits, &restart_wal);
            }
            Err(e) => drop(ready_tx.send(Err(e))),
        })
        .map_err(|e| StoreError::Transaction(format!("starting the SQLite writer: {e}")))?;
    ready_rx.await.map_err(|_| StoreError::Closed)??;
    Ok(handle)
}

fn open(database: &Path, wal_size_limit: i64) -> Result<(Connection, WalSync), StoreError> {
    let conn = Connection::open_with_flags(
        database,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(32);
    for (name, value) in PRAGMAS {
        conn.execute_batch(&format!("PRAGMA {name} = {value};"))?;
    }
    // NORMAL: SQLite writes the WAL at commit without fsyncing it; `WalSync` does that beside
    // the writer, and no reply leaves before it (so acknowledged data is as durable as FULL).
    conn.execute_batch(&format!(
        "PRAGMA synchronous = NORMAL;
         PRAGMA journal_size_limit = {wal_size_limit};"
    ))?;

    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::InvalidUrl(format!(
            "the SQLite store needs a database file in WAL mode (journal mode is {mode})"
        )));
    }
    let sync = WalSync::start(database.to_path_buf())
        .map_err(|e| StoreError::Transaction(format!("starting the WAL fsync thread: {e}")))?;
    Ok((conn, sync))
}

fn run(
    mut conn: Connection,
    sync: WalSync,
    mut rx: mpsc::Receiver<Queued<Op>>,
    metrics: &Arc<Metrics>,
    commits: &AtomicU64,
    restart_wal: &AtomicBool,
) {
    // The batcher is async (it is shared with the PostgreSQL writer); this thread has its own
    // tiny runtime to drive it.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "SQLite writer could not start its runtime");
            return;
        }
    };
    let mut batcher = Batcher::eager();
    while let Some(Batch { ops, stop }) = rt.block_on(batcher.next(&mut rx)) {
        if !ops.is_empty() {
            metrics.store_batch_size.observe(ops.len() as f64);
            let mut done = Vec::with_capacity(ops.len());
            match run_batch(&mut conn, ops, &mut done) {
                Ok(()) => {
                    commits.fetch_add(1, Ordering::Relaxed);
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
                Err(e) => {
                    // The transaction was rolled back when it was dropped.
                    metrics.store_errors.inc();
                    tracing::error!(error = %e, operations = done.len(), "store transaction failed");
                    let msg = e.to_string();
                    done.into_iter().for_each(|d| d.fail(&msg));
                }
            }
        }
        if restart_wal.swap(false, Ordering::Relaxed) {
            start_wal_over(&conn);
        }
        if let Some(ack) = stop {
            rx.close();
            finish(conn, sync);
            let _ = ack.send(());
            return;
        }
    }
    finish(conn, sync);
}

/// Copies the WAL frames the background checkpoint (`checkpoint_loop`) has not yet copied, so
/// that the next transaction starts the WAL file over from the beginning instead of growing it
/// (under steady writes it would grow by hundreds of MB a minute). Asked for only when the WAL
/// is large: it costs a database fsync on the writer's path.
fn start_wal_over(conn: &Connection) {
    let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0));
    if let Err(e) = result {
        tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
    }
}

/// Lets every reply waiting for an fsync out, then closes the connection (the last connection
/// to close removes the WAL file, which the fsync thread would then miss).
fn finish(conn: Connection, sync: WalSync) {
    sync.close();
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing the SQLite writer connection");
    }
}

/// One operation's work, its reply already in `done` at `.0`.
enum Work {
    Ingest(usize, NewEvent),
    Record(AttemptRecord, i64),
    Claim(usize, String, u32, i64, i64),
    Replay(usize, ReplaySelector, i64, Option<String>),
    Prune(usize, i64, i64),
    ReleaseLeases(usize),
    DeadLetterUnconfigured(usize, String, i64),
    Probe(i64),
}

/// Runs one batch in one transaction. Every op's reply goes into `done` before any fallible
/// work starts, so on error each caller gets the error (not a dropped reply).
fn run_batch(conn: &mut Connection, ops: Vec<Op>, done: &mut Vec<Done>) -> Result<(), StoreError> {
    let mut work = Vec::with_capacity(ops.len());
    for op in ops {
        let idx = done.len();
        match op {
            Op::Ingest(ev, reply) => {
                done.push(Done::Ingest(reply, Ingested::Accepted));
                work.push(Work::Ingest(idx, ev));
            }
            Op::Record(rec, now_ms, reply) => {
                done.push(Done::Unit(reply));
                work.push(Work::Record(rec, now_ms));
            }
            Op::Claim {
                target,
                limit,
                now_ms,
                lease_until_ms,
                reply,
            } => {
                done.push(Done::Claim(reply, Vec::new()));
                work.push(Work::Claim(idx, target, limit, now_ms, lease_until_ms));
            }
            Op::Replay(sel, now_ms, targets, reply) => {
                done.push(Done::Count(reply, 0));
                work.push(Work::Replay(idx, sel, now_ms, targets));
            }
            Op::Prune(before, dead_before, reply) => {
                done.push(Done::Count(reply, 0));
                work.push(Work::Prune(idx, before, dead_before));
            }
            Op::ReleaseLeases(reply) => {
                done.push(Done::Count(reply, 0));
                work.push(Work::ReleaseLeases(idx));
            }
            Op::DeadLetterUnconfigured(configured, now_ms, reply) => {
                done.push(Done::DeadLettered(reply, Vec::new()));
                work.push(Work::DeadLetterUnconfigured(idx, configured, now_ms));
            }
            Op::Probe(now_ms, reply) => {
                done.push(Done::Unit(reply));
                work.push(Work::Probe(now_ms));
            }
        }
    }
    // Finished attempts before claims: they release leases the claims may then see.
    work.sort_by_key(|w| match w {
        Work::Ingest(..) => 0,
        Work::Record(..) => 1,
        _ => 2,
    });
    // IMMEDIATE takes the write lock now, so a concurrent writer (the CLI) waits on the busy
    // timeout here instead of failing at the first write.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for w in work {
        match w {
            Work::Ingest(idx, ev) => {
                let outcome = insert_event(&tx, &ev)?;
                if let Done::Ingest(_, v) = &mut done[idx] {
                    *v = outcome;
                }
            }
            Work::Record(rec, now_ms) => record(&tx, &rec, now_ms)?,
            Work::Claim(idx, target, limit, now_ms, lease_until_ms) => {
                let claimed = claim(&tx, &target, limit, now_ms, lease_until_ms)?;
                if let Done::Claim(_, v) = &mut done[idx] {
                    *v = claimed;
                }
            }
            Work::Replay(idx, sel, now_ms, targets) => {
                set_count(done, idx, replay(&tx, sel, now_ms, targets.as_deref())?)
            }
            Work::Prune(idx, before, dead_before) => {
                set_count(done, idx, prune(&tx, before, dead_before)?)
            }
            Work::ReleaseLeases(idx) => {
                let n = tx.execute(
                    "UPDATE deliveries SET lease_until = NULL WHERE lease_until IS NOT NULL",
                    [],
                )?;
                set_count(done, idx, n as u64);
            }
            Work::DeadLetterUnconfigured(idx, configured, now_ms) => {
                let buried = dead_letter_unconfigured(&tx, &configured, now_ms)?;
                if let Done::DeadLettered(_, v) = &mut done[idx] {
                    *v = buried;
                }
            }
            // A row actually written, so the commit has a frame to put in the WAL.
            Work::Probe(now_ms) => {
                tx.prepare_cached(
                    "INSERT INTO probe (id, at) VALUES (1, ?1)
                     ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                )?
                .execute([now_ms])?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// Deletes up to 10,000 events that are done with: received before `before_ms` with every
/// delivery delivered, or dead since before `dead_before_ms` (≤ `before_ms`; a delivery's
/// `updated_at` is when it went dead). Pending deliveries keep their event whatever its age.
///
/// Row ids grow with arrival, so the old events are the first rows: the scan for them stops at
/// the first event received at or after the cut-off, and no index on `received_at` is needed
/// (one would cost every commit another page written, for a query that runs every few
/// minutes). An event stored after a jump of the clock back in time waits until the events
/// before it are old too.
fn prune(tx: &Connection, before_ms: i64, dead_before_ms: i64) -> Result<u64, StoreError> {
    let n = tx
        .prepare_cached(
            "DELETE FROM events WHERE id IN (
                SELECT e.id FROM events e
                WHERE e.id < COALESCE((SELECT id FROM events WHERE received_at >= ?1
                                       ORDER BY id LIMIT 1), 9223372036854775807)
                  AND e.received_at < ?1
                  AND NOT EXISTS (SELECT 1 FROM deliveries d
                                  WHERE d.event_row = e.id
                                    AND (d.status = 'pending'
                                         OR (d.status = 'dead' AND d.updated_at >= ?2)))
                LIMIT 10000)",
        )?
        .execute([before_ms, dead_before_ms])?;
    Ok(n as u64)
}

/// Dead-letters the pending, unleased (or expired) deliveries to targets outside `configured`
/// (a JSON array of names), and counts them per target.
fn dead_letter_unconfigured(
    tx: &Connection,
    configured: &str,
    now_ms: i64,
) -> Result<Vec<DeadLettered>, StoreError> {
    let mut stmt = tx.prepare_cached(&format!(
        "UPDATE deliveries SET status = 'dead', lease_until = NULL, updated_at = ?2,
             last_error = {UNCONFIGURED_ERROR_SQL}
         WHERE status = 'pending' AND (lease_until IS NULL OR lease_until <= ?2)
           AND target NOT IN (SELECT value FROM json_each(?1))
         RETURNING target"
    ))?;
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    for target in stmt.query_map(params![configured, now_ms], |r| r.get::<_, String>(0))? {
        *counts.entry(target?).or_default() += 1;
    }
    Ok(counts
        .into_iter()
        .map(|(target, count)| DeadLettered { target, count })
        .collect())
}

fn set_count(done: &mut [Done], idx: usize, n: u64) {
    if let Done::Count(_, v) = &mut done[idx] {
        *v = n;
    }
}

/// The event and one pending delivery per target, or `Duplicate` if its id is already stored
/// (by an earlier batch or earlier in this one).
fn insert_event(tx: &Connection, ev: &NewEvent) -> Result<Ingested, StoreError> {
    let inserted = tx
        .prepare_cached(
            "INSERT INTO events (key_time, event_id, endpoint, scheme, name, model, body, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (key_time, event_id) DO NOTHING",
        )?
        .execute(params![
            ev.key_time_ms,
            ev.event_id,
            ev.endpoint,
            ev.scheme.as_str(),
            ev.name,
            ev.model,
            ev.body.as_ref(),
            ev.received_at_ms,
        ])?;
    if inserted == 0 {
        return Ok(Ingested::Duplicate);
    }
    let row = tx.last_insert_rowid();
    let mut delivery = tx.prepare_cached(
        "INSERT INTO deliveries (event_row, target, status, attempts, next_attempt_at,
                                 cycle_started_at, created_at, updated_at)
         VALUES (?1, ?2, 'pending', 0, ?3, ?3, ?3, ?3) ON CONFLICT (event_row, target) DO NOTHING",
    )?;
    for target in &ev.targets {
        delivery.execute(params![row, target, ev.received_at_ms])?;
    }
    Ok(Ingested::Accepted)
}

fn claim(
    tx: &Connection,
    target: &str,
    limit: u32,
    now_ms: i64,
    lease_until_ms: i64,
) -> Result<Vec<Claimed>, StoreError> {
    let mut leased = tx.prepare_cached(
        "UPDATE deliveries SET lease_until = ?1
         WHERE id IN (SELECT id FROM deliveries
                      WHERE status = 'pending' AND target = ?2 AND next_attempt_at <= ?3
                        AND (lease_until IS NULL OR lease_until <= ?3)
                      ORDER BY next_attempt_at, id LIMIT ?4)
         RETURNING id, event_row, attempts, cycle_started_at",
    )?;
    let rows = leased
        .query_map(
            params![lease_until_ms, target, now_ms, i64::from(limit)],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let mut events: HashMap<i64, Arc<StoredEvent>> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for (delivery_id, event_row, attempts, cycle_started_at_ms) in rows {
        let event = match events.get(&event_row) {
            Some(e) => e.clone(),
            None => {
                let e = Arc::new(load_event(tx, event_row)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("delivery without event {event_row}"))
                })?);
                events.insert(event_row, e.clone());
                e
            }
        };
        out.push(Claimed {
            delivery_id,
            target: target.to_string(),
            attempts: attempts as u32,
            cycle_started_at_ms,
            event,
        });
    }
    // Oldest first, as the queue order promised.
    out.sort_by_key(|c| c.delivery_id);
    Ok(out)
}

fn load_event(tx: &Connection, row: i64) -> Result<Option<StoredEvent>, StoreError> {
    let found = tx
        .prepare_cached(
            "SELECT event_id, endpoint, scheme, name, model, body, received_at
             FROM events WHERE id = ?1",
        )?
        .query_row([row], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Vec<u8>>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })
        .optional()?;
    found
        .map(
            |(event_id, endpoint, scheme, name, model, body, received_at_ms)| {
                Ok(StoredEvent {
                    event_id,
                    endpoint,
                    scheme: parse_scheme(&scheme)?,
                    name,
                    model,
                    body: Bytes::from(body),
                    received_at_ms,
                })
            },
        )
        .transpose()
}

fn record(tx: &Connection, rec: &AttemptRecord, now_ms: i64) -> Result<(), StoreError> {
    let (status, next_at) = rec.result.next_state();
    tx.prepare_cached(
        // `attempts <= ?3`: a record sent again (its first commit may have gone through) never
        // undoes a later attempt's.
        "UPDATE deliveries SET status = ?2, attempts = ?3,
             next_attempt_at = COALESCE(?4, next_attempt_at), lease_until = NULL,
             last_error = ?5, updated_at = ?6
         WHERE id = ?1 AND attempts <= ?3",
    )?
    .execute(params![
        rec.delivery_id,
        status.as_str(),
        i64::from(rec.attempt),
        next_at,
        rec.reason,
        now_ms,
    ])?;
    tx.prepare_cached(
        // Once per attempt, however often its record is sent.
        "INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms, status_code, result, reason)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7
         WHERE NOT EXISTS (SELECT 1 FROM attempts
                           WHERE delivery_id = ?1 AND attempt = ?2 AND started_at = ?3)",
    )?
    .execute(params![
        rec.delivery_id,
        i64::from(rec.attempt),
        rec.started_at_ms,
        rec.duration_ms,
        rec.status_code.map(i64::from),
        rec.result.as_str(),
        rec.reason,
    ])?;
    Ok(())
}

/// Puts finished deliveries back in the queue with a fresh attempt cycle.
/// `targets`: a JSON array of the names to keep to, or `None` for any.
fn replay(
    tx: &Connection,
    sel: ReplaySelector,
    now_ms: i64,
    targets: Option<&str>,
) -> Result<u64, StoreError> {
    const SET: &str = "UPDATE deliveries SET status = 'pending', attempts = 0, lease_until = NULL,
                       next_attempt_at = ?1, cycle_started_at = ?1, updated_at = ?1";
    const KEEP_TO: &str = "(?2 IS NULL OR target IN (SELECT value FROM json_each(?2)))";
    let n = match sel {
        ReplaySelector::Ids(ids) => {
            let mut one = tx.prepare_cached(&format!(
                "{SET} WHERE id = ?3 AND status IN ('dead', 'delivered') AND {KEEP_TO}"
            ))?;
            let mut n = 0;
            for id in ids {
                n += one.execute(params![now_ms, targets, id])?;
            }
            n
        }
        ReplaySelector::Status { status, target } => tx
            .prepare_cached(&format!(
                "{SET} WHERE status = ?3 AND (?4 IS NULL OR target = ?4) AND {KEEP_TO}"
            ))?
            .execute(params![now_ms, targets, status.as_str(), target])?,
    };
    Ok(n as u64)
}

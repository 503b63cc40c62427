//! Making SQLite commits durable off the writer's path.
//!
//! With `synchronous=FULL` SQLite fsyncs the WAL inside `COMMIT`, while it holds the write lock:
//! the next batch cannot start until the disk has answered. Instead the writer commits with
//! `synchronous=NORMAL` (the frames are written to the WAL, not yet fsync'd) and hands the batch's
//! replies to this thread, which fsyncs the WAL file and only then lets them go. Meanwhile the
//! writer already runs the next batch, so SQL work and the disk overlap. One fsync covers every
//! batch queued since the previous one.
//!
//! Durability is the same as `FULL`: nobody hears "stored" before an fsync that started after
//! their commit. A crash before it loses only unacknowledged commits; WAL recovery stops at the
//! first incomplete frame, and `NORMAL` still syncs the WAL before checkpoints and its header when
//! the file is reused, so the database stays consistent.

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::thread;

/// Threads that fsync. With one, a commit that lands while an fsync runs waits for it to end
/// before its own begins; with two, its fsync starts at once, beside the other (the disk takes
/// both: ~10,400 fsyncs/s from two threads against ~8,000 from one on the benchmark machine).
const SYNC_THREADS: usize = 2;

/// What to do once the commit is durable, or with the reason it could not be made so.
pub(super) type Settle = Box<dyn FnOnce(Result<(), String>) + Send>;

/// The fsync threads. Dropping it lets them finish what was queued and exit; [`WalSync::close`]
/// also waits for that.
pub(super) struct WalSync {
    tx: mpsc::Sender<Settle>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl WalSync {
    /// Starts the thread for the WAL file beside `database`.
    pub(super) fn start(database: PathBuf) -> io::Result<WalSync> {
        let files = Arc::new(Files::new(database)?);
        let (tx, rx) = mpsc::channel::<Settle>();
        let rx = Arc::new(Mutex::new(rx));
        let threads = (0..SYNC_THREADS)
            .map(|_| {
                let (files, rx) = (files.clone(), rx.clone());
                thread::Builder::new()
                    .name("hookgate-wal-sync".into())
                    .spawn(move || run(&files, &rx))
            })
            .collect::<io::Result<_>>()?;
        Ok(WalSync { tx, threads })
    }

    /// Runs `settle` after the next fsync of the WAL.
    pub(super) fn after_sync(&self, settle: Settle) {
        if let Err(mpsc::SendError(settle)) = self.tx.send(settle) {
            // Only if the thread died: nothing can vouch for the commit.
            settle(Err("the WAL fsync thread stopped".into()));
        }
    }

    /// Settles everything queued (after its fsync) and stops the threads.
    pub(super) fn close(self) {
        drop(self.tx);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// The database file (as it was at start) and its WAL.
struct Files {
    database: PathBuf,
    /// The database's inode at start: a file of that name with another inode is not ours.
    database_ino: u64,
    wal: PathBuf,
    /// The WAL's inode, from the first fsync on (see [`sync`]).
    wal_ino: std::sync::OnceLock<u64>,
}

impl Files {
    fn new(database: PathBuf) -> io::Result<Files> {
        let database_ino = std::fs::metadata(&database)?.ino();
        let mut wal = database.clone().into_os_string();
        wal.push("-wal");
        Ok(Files {
            database,
            database_ino,
            wal: PathBuf::from(wal),
            wal_ino: std::sync::OnceLock::new(),
        })
    }

    /// A commit is only as durable as the files a restart will open: a database file removed
    /// or replaced while the gateway runs takes every later commit with it (the open handles
    /// still write, to an inode nothing names), so nothing is acknowledged once it is gone.
    fn check_database(&self) -> Result<(), String> {
        let gone = match std::fs::metadata(&self.database) {
            Ok(m) => m.ino() != self.database_ino,
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            Err(e) => return Err(format!("{}: {e}", self.database.display())),
        };
        if gone {
            return Err(format!(
                "the database file {} is no longer the one the gateway opened (removed or \
                 replaced): nothing written now would be found after a restart",
                self.database.display()
            ));
        }
        Ok(())
    }
}

fn run(files: &Files, rx: &Mutex<mpsc::Receiver<Settle>>) {
    let mut file = None;
    loop {
        // Whoever holds the lock takes everything queued, then lets it go before the fsync, so
        // the next commit finds a free thread.
        let waiting = {
            let Ok(rx) = rx.lock() else { return };
            let Ok(first) = rx.recv() else { return };
            let mut waiting = vec![first];
            waiting.extend(rx.try_iter());
            waiting
        };
        let result = sync(files, &mut file)
            .map_err(|e| {
                // The file handle may be what failed; open afresh next time.
                file = None;
                format!("fsync of {}: {e}", files.wal.display())
            })
            .and_then(|()| files.check_database());
        for settle in waiting {
            settle(result.clone());
        }
    }
}

/// fdatasync of the WAL file. SQLite keeps its WAL file (the same inode) for as long as a
/// connection is open, and the writer holds one: a file of another inode under its name is not
/// the one the commits went to, and syncing it would vouch for nothing.
fn sync(files: &Files, file: &mut Option<File>) -> io::Result<()> {
    let current = std::fs::metadata(&files.wal)?.ino();
    if current != *files.wal_ino.get_or_init(|| current) {
        return Err(io::Error::other(
            "the file was removed or replaced while the gateway runs: the commits went to the one \
             it replaced",
        ));
    }
    if file.is_none() {
        *file = Some(File::open(&files.wal)?);
    }
    file.as_ref().expect("opened above").sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settles_after_the_sync_and_reports_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        std::fs::write(&db, b"pages").unwrap();
        std::fs::write(dir.path().join("x.db-wal"), b"frames").unwrap();
        let sync = WalSync::start(db.clone()).unwrap();
        let (tx, rx) = mpsc::channel();
        let tx2 = tx.clone();
        sync.after_sync(Box::new(move |r| tx2.send(r).unwrap()));
        assert_eq!(rx.recv().unwrap(), Ok(()));

        std::fs::remove_file(dir.path().join("x.db-wal")).unwrap();
        sync.after_sync(Box::new(move |r| tx.send(r).unwrap()));
        let err = rx.recv().unwrap().unwrap_err();
        assert!(err.contains("x.db-wal"), "{err}");
    }

    /// The WAL, then the database, replaced by another file of its name (made before the old
    /// one goes, and the old one still open, so it cannot get the old inode's number).
    #[test]
    fn a_replaced_wal_or_database_vouches_for_nothing() {
        for replaced in ["x.db-wal", "x.db"] {
            let dir = tempfile::tempdir().unwrap();
            let db = dir.path().join("x.db");
            std::fs::write(&db, b"pages").unwrap();
            std::fs::write(dir.path().join("x.db-wal"), b"frames").unwrap();
            let _held = File::open(dir.path().join(replaced)).unwrap();
            let sync = WalSync::start(db.clone()).unwrap();
            let (tx, rx) = mpsc::channel();
            let tx2 = tx.clone();
            sync.after_sync(Box::new(move |r| tx2.send(r).unwrap()));
            assert_eq!(rx.recv().unwrap(), Ok(()));

            std::fs::write(dir.path().join("new"), b"another").unwrap();
            std::fs::rename(dir.path().join("new"), dir.path().join(replaced)).unwrap();
            sync.after_sync(Box::new(move |r| tx.send(r).unwrap()));
            let err = rx.recv().unwrap().unwrap_err();
            let want = if replaced == "x.db" {
                "x.db is no longer"
            } else {
                "x.db-wal: the file was removed or replaced"
            };
            assert!(err.contains(want), "{replaced}: {err}");
        }
    }

    #[test]
    fn a_commit_is_synced_while_another_thread_is_still_busy() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        std::fs::write(&db, b"pages").unwrap();
        std::fs::write(dir.path().join("x.db-wal"), b"frames").unwrap();
        let sync = WalSync::start(db).unwrap();
        // The first settle holds its thread until released.
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        sync.after_sync(Box::new(move |_| {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        }));
        started.recv().unwrap();
        // With that thread busy, the next commit still gets its fsync.
        let (done_tx, done) = mpsc::channel();
        sync.after_sync(Box::new(move |r| done_tx.send(r).unwrap()));
        let second = done.recv_timeout(std::time::Duration::from_secs(10));
        release.send(()).unwrap();
        assert_eq!(second, Ok(Ok(())));
        sync.close();
    }
}

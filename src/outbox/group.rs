//! Group commit: how a store's single writer gathers the operations that share one commit.
//!
//! Both stores put every write through one writer (a thread for SQLite, a task for PostgreSQL).
//! It takes whatever was queued while its previous commit was in flight and commits it as one
//! batch, so concurrent callers share one fsync. Replies go out only after the commit is durable.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::StoreError;

/// Most operations one batch takes. Bounds a statement's size and how long a request can be
/// made to wait for others.
const MAX_BATCH: usize = 256;
/// Queue depth in front of a writer: beyond it, requests wait (back-pressure, not memory).
const QUEUE_DEPTH: usize = 4096;
/// Longest a commit waits for more operations to join it ...
const MAX_LINGER: Duration = Duration::from_micros(1500);
/// ... and it stops waiting when no operation arrived for this long.
const LINGER_GAP: Duration = Duration::from_micros(200);

/// Where a writer sends one operation's result, once its commit is durable.
pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// What a writer's queue carries: an operation, or the request to stop.
pub(super) enum Queued<T> {
    Op(T),
    /// Everything queued before it is committed first (the queue is FIFO); then the writer
    /// acknowledges and stops.
    Stop(oneshot::Sender<()>),
}

/// The callers' side of a writer's queue.
pub(super) struct Queue<T>(mpsc::Sender<Queued<T>>);

/// A writer's queue: callers send through the [`Queue`], the writer reads the receiver with a
/// [`Batcher`].
pub(super) fn queue<T>() -> (Queue<T>, mpsc::Receiver<Queued<T>>) {
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    (Queue(tx), rx)
}

impl<T> Queue<T> {
    /// Queues the operation `make` builds around its reply, and waits for that reply.
    pub(super) async fn call<R>(&self, make: impl FnOnce(Reply<R>) -> T) -> Result<R, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.0
            .send(Queued::Op(make(reply)))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Whether the writer has stopped (its end of the queue is gone).
    pub(super) fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    /// Asks the writer to stop once everything queued so far is committed, and waits until it
    /// has. Returns at once if it had already stopped.
    pub(super) async fn stop(&self) {
        let (ack, done) = oneshot::channel();
        if self.0.send(Queued::Stop(ack)).await.is_ok() {
            let _ = done.await;
        }
    }
}

/// One writer's batching state.
pub(super) struct Batcher {
    /// Size of the previous batch: how many callers are likely to come back together.
    previous: usize,
    /// Whether to wait briefly for that many (see [`Batcher::next`]).
    linger: bool,
}

/// What [`Batcher::next`] got.
pub(super) struct Batch<T> {
    pub ops: Vec<T>,
    /// Set when a stop request was queued: everything before it is in `ops` (the queue is
    /// FIFO); what came after it is dropped, so those callers see the store as closed.
    pub stop: Option<oneshot::Sender<()>>,
}

impl Batcher {
    /// For a writer whose commit includes its fsync (PostgreSQL): a batch split in two costs a
    /// second fsync in line, so it waits a moment for the callers of the last batch.
    pub(super) fn lingering() -> Batcher {
        Batcher {
            previous: 0,
            linger: true,
        }
    }

    /// For a writer whose fsync runs beside its commits (SQLite, see `wal_sync`): one fsync
    /// covers every commit before it, so a split batch costs no extra wait, and the next commit
    /// overlapping the last one's fsync is what keeps the pipeline full. It never waits.
    pub(super) fn eager() -> Batcher {
        Batcher {
            previous: 0,
            linger: false,
        }
    }

    /// Waits for the next batch; `None` once the queue is closed and empty.
    pub(super) async fn next<T>(&mut self, rx: &mut mpsc::Receiver<Queued<T>>) -> Option<Batch<T>> {
        let mut queued = Vec::with_capacity(self.previous.clamp(1, MAX_BATCH));
        if rx.recv_many(&mut queued, MAX_BATCH).await == 0 {
            return None;
        }
        // Under load the callers of one commit all come back at once, but their next requests
        // arrive one by one: committing the first alone would split them across two commits
        // (and two fsyncs). So wait a moment for as many as the last commit had. A lone caller
        // (previous == 1) never waits.
        if self.linger && queued.len() < self.previous {
            let deadline = tokio::time::Instant::now() + MAX_LINGER;
            while queued.len() < self.previous.min(MAX_BATCH) {
                let next = (tokio::time::Instant::now() + LINGER_GAP).min(deadline);
                match tokio::time::timeout_at(next, rx.recv()).await {
                    Ok(Some(q)) => queued.push(q),
                    _ => break,
                }
            }
        }
        self.previous = queued.len();
        let mut ops = Vec::with_capacity(queued.len());
        for q in queued {
            match q {
                Queued::Op(op) => ops.push(op),
                Queued::Stop(ack) => {
                    return Some(Batch {
                        ops,
                        stop: Some(ack),
                    });
                }
            }
        }
        Some(Batch { ops, stop: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(ops: &[u32]) -> Vec<u32> {
        ops.to_vec()
    }

    #[tokio::test]
    async fn takes_everything_queued_and_stops_at_a_stop_request() {
        let (tx, mut rx) = mpsc::channel(16);
        let mut b = Batcher::lingering();
        for n in 0..3 {
            tx.send(Queued::Op(n)).await.unwrap();
        }
        let (ack, _ack_rx) = oneshot::channel();
        tx.send(Queued::Stop(ack)).await.unwrap();
        tx.send(Queued::Op(99)).await.unwrap();
        let batch = b.next(&mut rx).await.unwrap();
        assert_eq!(work(&batch.ops), [0, 1, 2]);
        assert!(batch.stop.is_some(), "the stop request is handed back");
        drop(tx);
        assert!(
            b.next(&mut rx).await.is_none(),
            "what came after the stop is dropped"
        );
    }

    /// A batch of four, then four more callers that come back one by one (the writer wakes
    /// for the first), as callers of one commit do under load. Returns the sender's task, which
    /// hands the queue back when done.
    async fn four_then_four_one_by_one(
        b: &mut Batcher,
    ) -> (
        mpsc::Receiver<Queued<u32>>,
        tokio::task::JoinHandle<mpsc::Sender<Queued<u32>>>,
    ) {
        let (tx, mut rx) = mpsc::channel(16);
        for n in 0..4 {
            tx.send(Queued::Op(n)).await.unwrap();
        }
        assert_eq!(b.next(&mut rx).await.unwrap().ops.len(), 4);
        let sender = tokio::spawn(async move {
            for n in 10..14 {
                tx.send(Queued::Op(n)).await.unwrap();
                tokio::task::yield_now().await;
            }
            tx
        });
        (rx, sender)
    }

    #[tokio::test]
    async fn waits_briefly_for_as_many_as_the_last_batch_had() {
        let mut b = Batcher::lingering();
        let (mut rx, sender) = four_then_four_one_by_one(&mut b).await;
        // They still share a batch.
        let batch = b.next(&mut rx).await.unwrap();
        assert_eq!(work(&batch.ops), [10, 11, 12, 13]);
        let tx = sender.await.unwrap();
        // A lone caller after a batch of one does not wait.
        let mut lone = Batcher::lingering();
        tx.send(Queued::Op(7)).await.unwrap();
        let started = tokio::time::Instant::now();
        assert_eq!(work(&lone.next(&mut rx).await.unwrap().ops), [7]);
        assert!(started.elapsed() < MAX_LINGER);
    }

    #[tokio::test]
    async fn an_eager_batcher_never_waits_for_more() {
        let mut b = Batcher::eager();
        let (mut rx, sender) = four_then_four_one_by_one(&mut b).await;
        // This one commits what is there and takes the rest next time.
        let first = work(&b.next(&mut rx).await.unwrap().ops);
        assert!(first.len() < 4, "waited for more: {first:?}");
        let mut all = first;
        while all.len() < 4 {
            all.extend(work(&b.next(&mut rx).await.unwrap().ops));
        }
        assert_eq!(all, [10, 11, 12, 13]);
        sender.await.unwrap();
    }
}

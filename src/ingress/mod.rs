//! Stage 1, ingress: the hyper server senders talk to.
//!
//! Accepts connections (bounded by `max_connections`), speaks HTTP/1.1 and h2 (h2c in the clear,
//! or over TLS when `server.tls` is set, see [`tls`]), reads each body once, capped at
//! `max_body` (413 before reading more), under a deadline (408), and hands the bytes to
//! [`handler`]. A connection that sends nothing, or carries no request, for
//! `header_read_timeout` is closed, in either protocol, so idle sockets cannot hold every slot.
//! Shutdown stops accepting, lets in-flight requests finish for `shutdown_grace`, then closes
//! what is left.

pub mod handler;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use handler::Ingress;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use prometheus::{IntCounter, IntGauge};

pub use tls::ServerTls;

/// What a listener serves: one request in, one response out. Boxed so the ingress and the admin
/// listener share one accept loop.
pub type Handler = Arc<
    dyn Fn(
            Request<Incoming>,
        ) -> std::pin::Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>
        + Send
        + Sync,
>;

/// Limits applied to every connection.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Which listener this is (`"ingress"`, `"admin"`), for its log lines.
    pub listener: &'static str,
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub shutdown_grace: Duration,
}

/// What a listener counts about its connections (the ingress does, the admin listener not).
#[derive(Clone)]
pub struct ConnectionMetrics {
    pub open: IntGauge,
    pub tls_handshake_failures: IntCounter,
}

/// The TLS configuration for the next connection. Asked once per connection, so that a reload
/// that renews the certificate reaches every connection made after it.
pub type TlsSource = Arc<dyn Fn() -> ServerTls + Send + Sync>;

/// Streams one h2 connection may have open at once (see `serve`).
pub const H2_MAX_STREAMS: u32 = 8;

/// Serve `handler` on `listener` until `shutdown` resolves, then drain. With `tls`, every
/// connection starts with a TLS handshake.
pub async fn serve(
    listener: TcpListener,
    handler: Handler,
    limits: ServerLimits,
    metrics: Option<ConnectionMetrics>,
    tls: Option<TlsSource>,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    // Each stream may hold a body of up to `max_body` while it is read: hyper's default of 200
    // streams per connection would let one h2 connection pin 200 bodies, where an HTTP/1.1
    // one holds one. Senders post one event at a time, so a few streams are plenty; memory is
    // then bounded by `max_connections` x `H2_MAX_STREAMS` x `max_body`.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS);
    let builder = Arc::new(builder);
    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    // More permits than tokio's semaphore holds would panic it; so many connections are no
    // limit anyway.
    let permits = Arc::new(Semaphore::new(
        limits.max_connections.min(Semaphore::MAX_PERMITS),
    ));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A permit is taken before accepting: at the limit, new clients wait in the kernel's
        // backlog instead of costing us memory.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = shutdown.as_mut() => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.as_mut() => break,
        };
        let _ = stream.set_nodelay(true);
        if let Some(m) = &metrics {
            m.open.inc();
        }
        let c = Connection {
            peer,
            builder: builder.clone(),
            handler: handler.clone(),
            limits: limits.clone(),
            stop: stop.clone(),
            metrics: metrics.clone(),
            tls: tls.as_ref().map(|source| source()),
            _permit: permit,
        };
        tracker.spawn(connection(stream, c));
    }
    drop(listener);
    tracing::info!(listener = limits.listener, grace = ?limits.shutdown_grace, "stopped accepting; draining connections");
    stop.cancel();
    tracker.close();
    if tokio::time::timeout(limits.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = limits.listener,
            "shutdown grace elapsed with connections still open; closing them"
        );
    }
}

/// One accepted connection and what serving it needs.
struct Connection {
    peer: SocketAddr,
    builder: Arc<auto::Builder<TokioExecutor>>,
    handler: Handler,
    limits: ServerLimits,
    stop: CancellationToken,
    metrics: Option<ConnectionMetrics>,
    /// The TLS configuration current when the connection was accepted.
    tls: Option<ServerTls>,
    /// Held until the connection ends: a slot under `max_connections`.
    _permit: OwnedSemaphorePermit,
}

async fn connection(stream: TcpStream, c: Connection) {
    let idle_timeout = c.limits.header_read_timeout;
    // hyper's header timeout starts with the first byte; a client that connects and sends
    // nothing would hold its slot for ever. So wait for that first byte here (with TLS, the
    // first byte of the client's hello).
    let mut first = [0u8; 1];
    let sent = tokio::select! {
        r = tokio::time::timeout(idle_timeout, stream.peek(&mut first)) => matches!(r, Ok(Ok(1..))),
        _ = c.stop.cancelled() => false,
    };
    if !sent {
        tracing::debug!(peer = %c.peer, "connection closed: nothing sent within the header timeout");
    } else if c.tls.is_some() && first[0] != TLS_HANDSHAKE_RECORD {
        // Most likely a sender configured with http:// for an https:// gateway: tell it so in
        // HTTP rather than with a TLS alert it would report as a garbled answer.
        if let Some(m) = &c.metrics {
            m.tls_handshake_failures.inc();
        }
        tracing::debug!(peer = %c.peer, "connection closed: plain HTTP on the HTTPS port");
        https_required(stream, idle_timeout).await;
    } else if let Some(tls) = c.tls.clone() {
        // The handshake gets as long as a request head would: a client that starts one and
        // stalls holds its slot no longer than one that sends half a head.
        let accept = tokio_rustls::TlsAcceptor::from(tls).accept(stream);
        let failed = tokio::select! {
            r = tokio::time::timeout(idle_timeout, accept) => match r {
                Ok(Ok(stream)) => {
                    c.serve(TokioIo::new(stream)).await;
                    None
                }
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some("timed out".to_string()),
            },
            _ = c.stop.cancelled() => None,
        };
        if let Some(reason) = failed {
            if let Some(m) = &c.metrics {
                m.tls_handshake_failures.inc();
            }
            tracing::debug!(peer = %c.peer, %reason, "connection closed: TLS handshake failed");
        }
    } else {
        c.serve(TokioIo::new(stream)).await;
    }
    if let Some(m) = &c.metrics {
        m.open.dec();
    }
}

/// The first byte of every TLS connection: the record type of the client's hello.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Answer a plain HTTP client on the HTTPS port with a 400 that says why, then close. What it
/// sent is read (up to a bound, for at most `linger`) before closing, so that the kernel does
/// not reset the connection and drop the answer with it.
async fn https_required(mut stream: TcpStream, linger: Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const BODY: &str = r#"{"status":"error","reason":"https_required"}"#;
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(linger, async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut left: usize = 64 * 1024;
        while left > 0 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => left = left.saturating_sub(n),
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}

impl Connection {
    /// Serve HTTP/1.1 or h2 on `io` until the client closes, the connection has been idle for
    /// the header timeout, or shutdown winds it down.
    async fn serve<I>(&self, io: TokioIo<I>)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let idle_timeout = self.limits.header_read_timeout;
        let activity = Arc::new(Activity::new());
        let (h, seen) = (self.handler.clone(), activity.clone());
        let svc = service_fn(move |req| {
            let request = seen.begin();
            let fut = h(req);
            async move {
                let response = fut.await;
                drop(request);
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let conn = self.builder.serve_connection(io, svc).into_owned();
        let mut conn = std::pin::pin!(conn);
        // Why the connection is being wound down, once it is.
        let mut closing = None;
        let result = loop {
            tokio::select! {
                r = conn.as_mut() => break Ok(r),
                _ = self.stop.cancelled(), if closing.is_none() => closing = Some(Closing::Shutdown),
                // hyper closes an idle HTTP/1.1 connection itself (the header timeout runs
                // between requests), but an h2 connection with no stream open stays up for
                // as long as the client likes. This closes either.
                _ = activity.idle_for(idle_timeout), if closing.is_none() => closing = Some(Closing::Idle),
                // A connection told to wind down for being idle gets as long to finish as a
                // shutdown would give it (a request may have begun just then).
                _ = tokio::time::sleep(self.limits.shutdown_grace), if closing == Some(Closing::Idle) => break Err(()),
            }
            if closing.is_some() {
                // h2: GOAWAY, open streams finish; HTTP/1.1: closed after the current answer.
                conn.as_mut().graceful_shutdown();
            }
        };
        let peer = self.peer;
        match result {
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "connection ended with an error"),
            Ok(Ok(())) => {}
            Err(()) => {
                tracing::debug!(%peer, "idle connection dropped: it did not finish in time")
            }
        }
        if closing == Some(Closing::Idle) {
            tracing::debug!(%peer, "connection closed: no request within the idle timeout");
        }
    }
}

/// Why a connection is being wound down.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Closing {
    Shutdown,
    Idle,
}

/// What a connection's requests are doing, so that an idle connection can be closed.
struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    /// When the last request ended (or the connection began), in ms after `started`.
    last_end_ms: AtomicU64,
}

/// Marks one request in flight until dropped (also when the client goes away mid-request and
/// hyper drops the request's future).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.last_end_ms
            .store(a.started.elapsed().as_millis() as u64, Ordering::Relaxed);
        a.in_flight.fetch_sub(1, Ordering::Release);
    }
}

impl Activity {
    fn new() -> Activity {
        Activity {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_end_ms: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Resolves once no request has been in flight for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            // In flight first: a request's end stores its time before it leaves the count.
            let in_flight = self.in_flight.load(Ordering::Acquire);
            let last_end =
                self.started + Duration::from_millis(self.last_end_ms.load(Ordering::Relaxed));
            match idle_deadline(in_flight, last_end, timeout) {
                Some(at) if at <= Instant::now() => return,
                Some(at) => tokio::time::sleep_until(at).await,
                // Busy: look again later (a request's end moves the deadline anyway).
                None => tokio::time::sleep(timeout).await,
            }
        }
    }
}

/// When a connection becomes idle: `timeout` after its last request ended, or never while a
/// request is in flight.
fn idle_deadline(in_flight: usize, last_end: Instant, timeout: Duration) -> Option<Instant> {
    (in_flight == 0).then(|| last_end + timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_idle_only_with_nothing_in_flight() {
        let t = Instant::now();
        let timeout = Duration::from_secs(10);
        assert_eq!(idle_deadline(0, t, timeout), Some(t + timeout));
        assert_eq!(idle_deadline(1, t, timeout), None);
        assert_eq!(idle_deadline(3, t, timeout), None);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_for_waits_out_requests_in_flight() {
        let a = Arc::new(Activity::new());
        let timeout = Duration::from_secs(10);
        let busy = a.begin();
        // With a request in flight, 25 s pass without the connection counting as idle.
        let r = tokio::time::timeout(Duration::from_secs(25), a.idle_for(timeout)).await;
        assert!(r.is_err(), "idle while a request was in flight");
        drop(busy);
        let ended = Instant::now();
        a.idle_for(timeout).await;
        assert!(Instant::now() >= ended + timeout - Duration::from_millis(1));
    }
}

//! Stage 1, ingress: the hyper server senders talk to.
//!
//! Accepts connections (bounded by `max_connections`), speaks HTTP/1.1 and h2c, reads each body
//! once, capped at `max_body` (413 before reading more), under a deadline (408), and hands the
//! bytes to [`handler`]. Shutdown stops accepting, lets in-flight requests finish for
//! `shutdown_grace`, then closes what is left.

pub mod handler;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use handler::Ingress;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use prometheus::IntGauge;

/// What a listener serves: one request in, one response out. Boxed so the ingress and the admin
/// listener share one accept loop.
pub type Handler = Arc<
    dyn Fn(
            Request<Incoming>,
        ) -> std::pin::Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>
        + Send
        + Sync,
>;

/// The ingress handler as a [`Handler`].
pub fn handler(ingress: Arc<Ingress>) -> Handler {
    Arc::new(move |req| {
        let ingress = ingress.clone();
        Box::pin(async move { ingress.handle(req).await })
    })
}

/// Limits applied to every connection.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub shutdown_grace: Duration,
}

/// Serve `handler` on `listener` until `shutdown` resolves, then drain. `connections` counts
/// open connections when given.
pub async fn serve(
    listener: TcpListener,
    handler: Handler,
    limits: ServerLimits,
    connections: Option<IntGauge>,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
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
        let h = handler.clone();
        let svc = service_fn(move |req| {
            let fut = h(req);
            async move { Ok::<_, std::convert::Infallible>(fut.await) }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let first_byte_timeout = limits.header_read_timeout;
        let gauge = connections.clone();
        if let Some(g) = &gauge {
            g.inc();
        }
        tokio::spawn(async move {
            // hyper's header timeout starts with the first byte; a client that connects and
            // sends nothing would hold its slot for ever. So wait for that first byte here.
            let mut first = [0u8; 1];
            if let Ok(Ok(1..)) =
                tokio::time::timeout(first_byte_timeout, stream.peek(&mut first)).await
            {
                let conn = builder
                    .serve_connection(TokioIo::new(stream), svc)
                    .into_owned();
                if let Err(e) = watcher.watch(conn).await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            } else {
                tracing::debug!(%peer, "connection closed: nothing sent within the header timeout");
            }
            if let Some(g) = gauge {
                g.dec();
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!(grace = ?limits.shutdown_grace, "ingress stopped accepting; draining connections");
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace elapsed with connections still open; closing them");
    }
}

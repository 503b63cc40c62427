//! The request handler: path → endpoint → verify → parse → route → durable store → answer.
//!
//! Senders see a fixed, short set of answers (SPEC section 7): 200 accepted/duplicate, 401 with a
//! reason code, 400 not JSON, 404, 405, 408, 413, 503 when the store cannot take the event.
//! Internals are logged, never echoed. A client's mistake is never a 5xx: MLflow re-sends on 5xx.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use serde::Serialize;
use tokio::sync::Notify;

use crate::config::EndpointConfig;
use crate::event::{Event, Identity};
use crate::metrics::Metrics;
use crate::outbox::{Ingested, NewEvent, Store};
use crate::route::RouteTable;
use crate::verify::{self, EndpointAuth, Scheme};

/// One configured endpoint, built once.
struct Endpoint {
    name: String,
    scheme: Scheme,
    auth: EndpointAuth,
}

/// Everything a request needs, shared by all connections.
pub struct Ingress {
    by_path: HashMap<String, Endpoint>,
    store: Store,
    routes: Arc<RouteTable>,
    metrics: Arc<Metrics>,
    max_body: u64,
    body_read_timeout: Duration,
    /// Wakes the dispatcher when new deliveries are committed, so the first attempt is immediate.
    wake: Arc<Notify>,
}

/// The answer body. Also what a sender's "test" button shows, so it names what was understood.
#[derive(Serialize)]
struct Answer<'a> {
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'a str>,
    /// Outer `None`: not in this answer (errors). `Some(None)`: the event names no model, and
    /// the key is `null`, so an accepted answer always has the same five keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    targets: Option<&'a [String]>,
}

impl Answer<'static> {
    fn error(status: &'static str, reason: &'static str) -> Self {
        Answer {
            status,
            reason: Some(reason),
            event_id: None,
            event: None,
            model: None,
            targets: None,
        }
    }
}

fn json(status: StatusCode, answer: &Answer<'_>) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(answer).expect("the answer serializes");
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Why a request with a readable body was refused.
#[derive(Debug)]
pub enum Refusal {
    /// 401: signature or token.
    Unverified(verify::Rejection),
    /// 400: verified, but not a JSON object.
    NotJson(crate::event::ParseError),
}

/// The pure core of the ingress: verify, parse once, and name the event. Shared with
/// `hookgate explain`, so what it reports is what the gateway does.
pub fn admit(
    scheme: Scheme,
    auth: &EndpointAuth,
    headers: &http::HeaderMap,
    body: Bytes,
    now_unix: i64,
) -> Result<(Event, Identity), Refusal> {
    let verified = verify::verify(auth, headers, &body, now_unix).map_err(Refusal::Unverified)?;
    let event = Event::parse(scheme, &verified, body).map_err(Refusal::NotJson)?;
    let identity = event.identity(verified.delivery_id());
    Ok((event, identity))
}

impl Ingress {
    pub fn new(
        endpoints: &[EndpointConfig],
        store: Store,
        routes: Arc<RouteTable>,
        metrics: Arc<Metrics>,
        max_body: u64,
        body_read_timeout: Duration,
        wake: Arc<Notify>,
    ) -> Ingress {
        let by_path = endpoints
            .iter()
            .map(|e| {
                (
                    e.path.clone(),
                    Endpoint {
                        name: e.name.clone(),
                        scheme: e.scheme,
                        auth: e.auth(),
                    },
                )
            })
            .collect();
        Ingress {
            by_path,
            store,
            routes,
            metrics,
            max_body,
            body_read_timeout,
            wake,
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let path = req.uri().path();
        if path == "/healthz" {
            return Response::new(Full::new(Bytes::from_static(b"ok\n")));
        }
        let Some(ep) = self.by_path.get(path) else {
            tracing::info!(path = %truncate(path, 200), method = %req.method(), "unknown path");
            return self.count(
                "unknown",
                json(
                    StatusCode::NOT_FOUND,
                    &Answer::error("error", "unknown_path"),
                ),
            );
        };
        let started = Instant::now();
        let response = self.handle_endpoint(ep, req).await;
        if response.status() == StatusCode::OK {
            self.metrics
                .ingest_duration
                .observe(started.elapsed().as_secs_f64());
        }
        self.count(&ep.name, response)
    }

    fn count(&self, endpoint: &str, r: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
        self.metrics
            .requests
            .with_label_values(&[endpoint, r.status().as_str()])
            .inc();
        r
    }

    async fn handle_endpoint<B>(&self, ep: &Endpoint, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        if req.method() != Method::POST {
            tracing::info!(endpoint = %ep.name, method = %req.method(), "method not allowed");
            let mut r = json(
                StatusCode::METHOD_NOT_ALLOWED,
                &Answer::error("error", "method_not_allowed"),
            );
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            return r;
        }
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body) {
            // Answer before reading: hyper then closes the connection instead of draining it.
            tracing::warn!(endpoint = %ep.name, content_length = declared, max_body = self.max_body, "body too large");
            return json(
                StatusCode::PAYLOAD_TOO_LARGE,
                &Answer::error("error", "body_too_large"),
            );
        }
        let (parts, body) = req.into_parts();
        let limited = Limited::new(body, self.max_body as usize);
        let body = match tokio::time::timeout(self.body_read_timeout, limited.collect()).await {
            Err(_) => {
                tracing::warn!(endpoint = %ep.name, "body not received in time");
                return json(
                    StatusCode::REQUEST_TIMEOUT,
                    &Answer::error("error", "body_timeout"),
                );
            }
            Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
                tracing::warn!(endpoint = %ep.name, max_body = self.max_body, "body too large");
                return json(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &Answer::error("error", "body_too_large"),
                );
            }
            Ok(Err(e)) => {
                tracing::info!(endpoint = %ep.name, error = %e, "body could not be read");
                return json(
                    StatusCode::BAD_REQUEST,
                    &Answer::error("error", "unreadable_body"),
                );
            }
            Ok(Ok(c)) => c.to_bytes(),
        };
        let now = unix_now();
        let (event, identity) = match admit(
            ep.scheme,
            &ep.auth,
            &parts.headers,
            body,
            now.as_secs() as i64,
        ) {
            Ok(admitted) => admitted,
            Err(Refusal::Unverified(rejection)) => {
                self.metrics
                    .verification_failures
                    .with_label_values(&[&ep.name, rejection.code()])
                    .inc();
                tracing::warn!(endpoint = %ep.name, reason = rejection.code(), "request refused by verification");
                return json(
                    StatusCode::UNAUTHORIZED,
                    &Answer::error("rejected", rejection.code()),
                );
            }
            Err(Refusal::NotJson(e)) => {
                tracing::warn!(endpoint = %ep.name, error = %e, "verified body is not a JSON object");
                return json(
                    StatusCode::BAD_REQUEST,
                    &Answer::error("rejected", "invalid_json"),
                );
            }
        };
        let targets = self.routes.targets_for(&ep.name, &event);
        let event_id = identity.id;
        // The store takes its own copy; the answer and the log lines use these.
        let new = NewEvent {
            endpoint: ep.name.clone(),
            event_id: event_id.clone(),
            key_time_ms: identity.time_ms,
            scheme: ep.scheme,
            name: event.name.clone(),
            model: event.model.clone(),
            body: event.raw.clone(),
            received_at_ms: now.as_millis() as i64,
            targets: targets.clone(),
        };
        match self.store.ingest(new).await {
            Ok(outcome) => {
                let status = match outcome {
                    Ingested::Accepted => {
                        self.metrics
                            .events
                            .with_label_values(&[&ep.name, &event.name])
                            .inc();
                        if targets.is_empty() {
                            self.metrics
                                .unrouted_events
                                .with_label_values(&[&ep.name])
                                .inc();
                        } else {
                            self.wake.notify_one();
                        }
                        // The event name is the sender's text: as a plain value the log formats
                        // quote and escape it, so a line break in it cannot start a forged line.
                        tracing::info!(
                            endpoint = %ep.name, event_id = %event_id, event = event.name.as_str(),
                            model = event.model.as_deref().unwrap_or(""), targets = ?targets,
                            "event accepted"
                        );
                        "accepted"
                    }
                    Ingested::Duplicate => {
                        tracing::info!(endpoint = %ep.name, event_id = %event_id, event = event.name.as_str(), "duplicate delivery");
                        "duplicate"
                    }
                };
                let no_targets: &[String] = &[];
                json(
                    StatusCode::OK,
                    &Answer {
                        status,
                        reason: None,
                        event_id: Some(&event_id),
                        event: Some(&event.name),
                        model: Some(event.model.as_deref()),
                        targets: Some(if outcome == Ingested::Accepted {
                            &targets
                        } else {
                            no_targets
                        }),
                    },
                )
            }
            Err(e) => {
                tracing::error!(endpoint = %ep.name, error = %e, "could not store the event; answering 503 so the sender retries");
                let mut r = json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &Answer::error("error", "store_unavailable"),
                );
                r.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("5"));
                r
            }
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

//! The admin listener (`server.admin_listen`, never public): `/metrics`, `/healthz`, `/readyz`
//! and, behind `[admin] token`, the dead-letter API:
//!
//! - `GET  /admin/deliveries?status=&target=&limit=`
//! - `GET  /admin/events/{event_id}` (with deliveries and attempts)
//! - `POST /admin/deliveries/{id}/replay`
//! - `POST /admin/deliveries/replay?status=dead&target=`
//!
//! The probes and `/metrics` also answer `HEAD`. Path segments are percent-decoded after the
//! path is split, so `x%2Fy` is the one segment `x/y`. A method a route does not take is a 405
//! with `Allow`.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::header::{ALLOW, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Body as _;
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::sync::Notify;

use crate::metrics::Metrics;
use crate::outbox::{DeliveryFilter, DeliveryStatus, ReplaySelector, Store};
use crate::secret::Secret;

pub struct Admin {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub token: Option<Secret>,
    /// Set when shutdown begins: `/readyz` turns 503 so load balancers stop sending.
    pub draining: Arc<AtomicBool>,
    /// Wakes the dispatcher after a replay.
    pub wake: Arc<Notify>,
    /// Names of the configured targets: each gets its queue gauges, 0 included.
    pub targets: Vec<String>,
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn json_response(status: StatusCode, v: serde_json::Value) -> Response<Full<Bytes>> {
    respond(
        status,
        "application/json",
        serde_json::to_vec(&v).expect("JSON values serialize"),
    )
}

/// An admin API refusal: a status, a short message for the operator and maybe a header
/// (`Allow` on a 405, `WWW-Authenticate` on a 401).
struct ApiError(StatusCode, &'static str, Option<(HeaderName, &'static str)>);

impl ApiError {
    fn into_response(self) -> Response<Full<Bytes>> {
        let mut r = json_response(self.0, json!({ "error": self.1 }));
        if let Some((name, value)) = self.2 {
            r.headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        r
    }
}

type ApiResult = Result<Response<Full<Bytes>>, ApiError>;

fn error(status: StatusCode, msg: &'static str) -> ApiError {
    ApiError(status, msg, None)
}

/// A 405 naming the methods the route takes (RFC 9110, section 15.5.6).
fn method_not_allowed(allow: &'static str) -> ApiError {
    ApiError(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed",
        Some((ALLOW, allow)),
    )
}

/// The answer to a `HEAD`: the `GET` answer's status and headers, its length, no body. hyper
/// drops the body of a `HEAD` answer over HTTP/1.1 but sends it over HTTP/2.
fn without_body(r: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    let (mut parts, body) = r.into_parts();
    if let Some(len) = body.size_hint().exact() {
        parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    }
    Response::from_parts(parts, Full::new(Bytes::new()))
}

/// The segments of an admin path after `/admin/`, each percent-decoded once split.
fn segments(rest: &str) -> Result<Vec<Cow<'_, str>>, ApiError> {
    rest.split('/')
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8())
        .collect::<Result<_, _>>()
        .map_err(|_| {
            error(
                StatusCode::BAD_REQUEST,
                "path segment is not UTF-8 once percent-decoded",
            )
        })
}

/// An admin API route, once the path is known.
enum Route<'a> {
    List,
    Event(&'a str),
    ReplayMany,
    Replay(&'a str),
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

/// Query parameters of the admin API.
struct Query {
    status: Option<String>,
    target: Option<String>,
    limit: Option<String>,
}

fn parse_query(q: Option<&str>) -> Query {
    let mut out = Query {
        status: None,
        target: None,
        limit: None,
    };
    for (k, v) in url::form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
        let v = (!v.is_empty()).then(|| v.into_owned());
        match k.as_ref() {
            "status" => out.status = v,
            "target" => out.target = v,
            "limit" => out.limit = v,
            _ => {}
        }
    }
    out
}

impl Admin {
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        match path.as_str() {
            "/healthz" | "/readyz" | "/metrics" => {
                if method != Method::GET && method != Method::HEAD {
                    return method_not_allowed("GET, HEAD").into_response();
                }
                let r = match path.as_str() {
                    "/healthz" => respond(StatusCode::OK, "text/plain", "ok\n"),
                    "/readyz" => self.readyz().await,
                    _ => self.metrics_page().await,
                };
                if method == Method::HEAD {
                    without_body(r)
                } else {
                    r
                }
            }
            p if p.starts_with("/admin/") => {
                if let Err(e) = self.authorize(&req) {
                    return e.into_response();
                }
                self.admin(method, &path, req.uri().query())
                    .await
                    .unwrap_or_else(ApiError::into_response)
            }
            _ => error(StatusCode::NOT_FOUND, "not found").into_response(),
        }
    }

    async fn readyz(&self) -> Response<Full<Bytes>> {
        if self.draining.load(Ordering::Relaxed) {
            return respond(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "draining\n");
        }
        match self.store.ping().await {
            Ok(()) => respond(StatusCode::OK, "text/plain", "ready\n"),
            Err(e) => {
                tracing::warn!(error = %e, "readiness check: store unavailable");
                respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "store unavailable\n",
                )
            }
        }
    }

    async fn metrics_page(&self) -> Response<Full<Bytes>> {
        // Queue gauges are read from the store at scrape time: they stay right across restarts
        // and across replicas sharing one database.
        match self.store.target_counts().await {
            Ok(counts) => {
                self.metrics.outbox_pending.reset();
                self.metrics.dead_letters.reset();
                // Every configured target gets both gauges, 0 when it has nothing queued: the
                // store only reports targets with rows, so without this a series vanished once
                // its last dead letter was replayed (an alert on it went "no data" instead of
                // back to 0, and a target that never failed had no series at all).
                for t in &self.targets {
                    self.metrics.outbox_pending.with_label_values(&[t]).set(0);
                    self.metrics.dead_letters.with_label_values(&[t]).set(0);
                }
                for c in counts {
                    self.metrics
                        .outbox_pending
                        .with_label_values(&[&c.target])
                        .set(c.pending);
                    self.metrics
                        .dead_letters
                        .with_label_values(&[&c.target])
                        .set(c.dead);
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read queue depth for metrics"),
        }
        respond(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            self.metrics.render(),
        )
    }

    fn authorize<B>(&self, req: &Request<B>) -> Result<(), ApiError> {
        let Some(token) = &self.token else {
            return Err(error(
                StatusCode::NOT_FOUND,
                "admin API disabled: set [admin] token",
            ));
        };
        let given = req
            .headers()
            .get(AUTHORIZATION)
            .map(|v| v.as_bytes())
            .unwrap_or(b"");
        // `Bearer <token>`: the scheme in any case (RFC 7235, section 2.1), the token compared
        // in constant time.
        let (scheme, rest) = given
            .iter()
            .position(|&b| b == b' ')
            .map_or((given, &b""[..]), |i| given.split_at(i));
        let presented = rest.trim_ascii_start();
        let bearer = scheme.eq_ignore_ascii_case(b"Bearer") && !presented.is_empty();
        if bearer && bool::from(presented.ct_eq(token.expose().as_bytes())) {
            Ok(())
        } else {
            tracing::warn!(path = %req.uri().path(), "admin request refused: bad or missing token");
            Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "bad or missing admin token",
                Some((WWW_AUTHENTICATE, "Bearer")),
            ))
        }
    }

    async fn admin(&self, method: Method, path: &str, query: Option<&str>) -> ApiResult {
        let segments = segments(path.trim_start_matches("/admin/"))?;
        let segments: Vec<&str> = segments.iter().map(|s| s.as_ref()).collect();
        let (route, allow) = match segments.as_slice() {
            ["deliveries"] => (Route::List, "GET"),
            ["events", id] => (Route::Event(id), "GET"),
            ["deliveries", "replay"] => (Route::ReplayMany, "POST"),
            ["deliveries", id, "replay"] => (Route::Replay(id), "POST"),
            _ => return Err(error(StatusCode::NOT_FOUND, "not found")),
        };
        if method.as_str() != allow {
            return Err(method_not_allowed(allow));
        }
        let q = parse_query(query);
        match route {
            Route::List => self.list(q).await,
            Route::Event(id) => self.event(id).await,
            Route::ReplayMany => self.replay_many(q).await,
            Route::Replay(id) => match id.parse::<i64>() {
                Ok(id) => self.replay(ReplaySelector::Ids(vec![id])).await,
                Err(_) => Err(error(
                    StatusCode::BAD_REQUEST,
                    "delivery id must be a number",
                )),
            },
        }
    }

    async fn list(&self, q: Query) -> ApiResult {
        let status = match q.status.as_deref() {
            None => None,
            Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
                error(
                    StatusCode::BAD_REQUEST,
                    "status must be pending, delivered or dead",
                )
            })?),
        };
        let limit = match q.limit.as_deref() {
            None => 100,
            Some(l) => l
                .parse::<u32>()
                .ok()
                .filter(|l| (1..=10_000).contains(l))
                .ok_or_else(|| error(StatusCode::BAD_REQUEST, "limit must be 1..10000"))?,
        };
        let filter = DeliveryFilter {
            status,
            target: q.target,
            limit,
        };
        let rows = self
            .store
            .list_deliveries(&filter)
            .await
            .map_err(store_error)?;
        Ok(json_response(StatusCode::OK, json!({ "deliveries": rows })))
    }

    async fn event(&self, id: &str) -> ApiResult {
        let found = self.store.get_event(id).await.map_err(store_error)?;
        let Some((event, deliveries, attempts)) = found else {
            return Err(error(StatusCode::NOT_FOUND, "no such event"));
        };
        let payload: serde_json::Value = serde_json::from_slice(&event.body).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&event.body).into_owned())
        });
        Ok(json_response(
            StatusCode::OK,
            json!({ "event": event, "payload": payload, "deliveries": deliveries, "attempts": attempts }),
        ))
    }

    async fn replay_many(&self, q: Query) -> ApiResult {
        let status = match q.status.as_deref().unwrap_or("dead") {
            "dead" => DeliveryStatus::Dead,
            "delivered" => DeliveryStatus::Delivered,
            _ => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "status must be dead or delivered",
                ));
            }
        };
        self.replay(ReplaySelector::Status {
            status,
            target: q.target,
        })
        .await
    }

    async fn replay(&self, sel: ReplaySelector) -> ApiResult {
        // Only to targets this configuration has: a replayed delivery to another would be
        // pending with no lane to claim it.
        let n = self
            .store
            .replay_configured(sel, now_ms(), &self.targets)
            .await
            .map_err(store_error)?;
        if n > 0 {
            self.wake.notify_one();
        }
        tracing::info!(replayed = n, "deliveries replayed by admin API");
        Ok(json_response(StatusCode::OK, json!({ "replayed": n })))
    }
}

fn store_error(e: crate::outbox::StoreError) -> ApiError {
    tracing::error!(error = %e, "admin API: store error");
    error(StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
}

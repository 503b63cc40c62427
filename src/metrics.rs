//! Metrics: one prometheus [`Registry`] with a small set of metrics per pipeline stage.
//!
//! Label values are bounded by the configuration (endpoint and target names), by fixed code
//! lists (statuses, reasons, outcomes) or by verified senders (event names). No secret, URL or
//! body ever becomes a label.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Buckets for fast local work (ingest, store commits): 50 µs .. 2.5 s.
const FAST_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5,
];

/// Buckets for outbound calls and end-to-end delivery: 0.5 ms .. 1 h (fine below 10 ms, where a
/// healthy local relay lives).
const SLOW_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

pub struct Metrics {
    pub registry: Registry,
    // ingress
    pub requests: IntCounterVec,
    pub verification_failures: IntCounterVec,
    pub events: IntCounterVec,
    pub unrouted_events: IntCounterVec,
    pub ingest_duration: Histogram,
    // outbox
    pub store_batch_size: Histogram,
    pub store_errors: IntCounter,
    // dispatch
    pub deliveries: IntCounterVec,
    pub delivery_attempts: IntCounterVec,
    pub delivery_duration: HistogramVec,
    pub event_to_delivery: HistogramVec,
    pub outbox_pending: IntGaugeVec,
    pub dead_letters: IntGaugeVec,
    // process
    pub build_info: IntGaugeVec,
    pub config_reloads: IntCounterVec,
    pub connections: IntGauge,
    pub tls_handshake_failures: IntCounter,
    /// No labels; a series only while `server.tls` is served (0 would read as long expired).
    pub tls_certificate_expiry: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let m = Metrics {
            requests: IntCounterVec::new(
                Opts::new("hookgate_requests_total", "Ingress requests by endpoint and HTTP status."),
                &["endpoint", "status"],
            )
            .unwrap(),
            verification_failures: IntCounterVec::new(
                Opts::new(
                    "hookgate_verification_failures_total",
                    "Requests refused by signature or token verification, by reason code.",
                ),
                &["endpoint", "reason"],
            )
            .unwrap(),
            events: IntCounterVec::new(
                Opts::new("hookgate_events_total", "Accepted (stored) events by endpoint and event name."),
                &["endpoint", "event"],
            )
            .unwrap(),
            unrouted_events: IntCounterVec::new(
                Opts::new(
                    "hookgate_unrouted_events_total",
                    "Accepted events that matched no route (stored, delivered nowhere).",
                ),
                &["endpoint"],
            )
            .unwrap(),
            ingest_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "hookgate_ingest_duration_seconds",
                    "Time from request head to answer for verified requests, including the durable commit.",
                )
                .buckets(FAST_BUCKETS.to_vec()),
            )
            .unwrap(),
            store_batch_size: Histogram::with_opts(
                HistogramOpts::new(
                    "hookgate_store_commit_batch_size",
                    "Operations that shared one store transaction (group commit).",
                )
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
            )
            .unwrap(),
            store_errors: IntCounter::new(
                "hookgate_store_errors_total",
                "Store transactions that failed (senders got 503).",
            )
            .unwrap(),
            deliveries: IntCounterVec::new(
                Opts::new(
                    "hookgate_deliveries_total",
                    "Delivery decisions by target and outcome (delivered, retried, dead).",
                ),
                &["target", "outcome"],
            )
            .unwrap(),
            delivery_attempts: IntCounterVec::new(
                Opts::new("hookgate_delivery_attempts_total", "Outbound attempts by target and result."),
                &["target", "result"],
            )
            .unwrap(),
            delivery_duration: HistogramVec::new(
                HistogramOpts::new(
                    "hookgate_delivery_duration_seconds",
                    "Duration of one outbound attempt.",
                )
                .buckets(SLOW_BUCKETS.to_vec()),
                &["target"],
            )
            .unwrap(),
            event_to_delivery: HistogramVec::new(
                HistogramOpts::new(
                    "hookgate_event_to_delivery_seconds",
                    "Time from receiving an event to its successful delivery.",
                )
                .buckets(SLOW_BUCKETS.to_vec()),
                &["target"],
            )
            .unwrap(),
            outbox_pending: IntGaugeVec::new(
                Opts::new("hookgate_outbox_pending", "Deliveries waiting to be sent, by target."),
                &["target"],
            )
            .unwrap(),
            dead_letters: IntGaugeVec::new(
                Opts::new("hookgate_dead_letters", "Dead deliveries kept for replay, by target."),
                &["target"],
            )
            .unwrap(),
            build_info: IntGaugeVec::new(
                Opts::new("hookgate_build_info", "Always 1; the version label names the build."),
                &["version"],
            )
            .unwrap(),
            config_reloads: IntCounterVec::new(
                Opts::new("hookgate_config_reloads_total", "Configuration reloads (SIGHUP) by result: ok or error."),
                &["result"],
            )
            .unwrap(),
            connections: IntGauge::new("hookgate_open_connections", "Open ingress connections.")
                .unwrap(),
            tls_certificate_expiry: IntGaugeVec::new(
                Opts::new(
                    "hookgate_tls_certificate_expiry_timestamp_seconds",
                    "When the first certificate of the served server.tls chain to expire does (Unix time).",
                ),
                &[],
            )
            .unwrap(),
            tls_handshake_failures: IntCounter::new(
                "hookgate_tls_handshake_failures_total",
                "Ingress connections closed because their TLS handshake failed, stalled or was plain HTTP.",
            )
            .unwrap(),
            registry,
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(m.requests.clone()),
            Box::new(m.verification_failures.clone()),
            Box::new(m.events.clone()),
            Box::new(m.unrouted_events.clone()),
            Box::new(m.ingest_duration.clone()),
            Box::new(m.store_batch_size.clone()),
            Box::new(m.store_errors.clone()),
            Box::new(m.deliveries.clone()),
            Box::new(m.delivery_attempts.clone()),
            Box::new(m.delivery_duration.clone()),
            Box::new(m.event_to_delivery.clone()),
            Box::new(m.outbox_pending.clone()),
            Box::new(m.dead_letters.clone()),
            Box::new(m.build_info.clone()),
            Box::new(m.config_reloads.clone()),
            Box::new(m.connections.clone()),
            Box::new(m.tls_handshake_failures.clone()),
            Box::new(m.tls_certificate_expiry.clone()),
        ];
        for c in collectors {
            m.registry.register(c).expect("metric names are unique");
        }
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        m
    }

    /// The text exposition format Prometheus scrapes.
    pub fn render(&self) -> String {
        let mut buf = Vec::with_capacity(16 * 1024);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(buf).expect("prometheus text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_help() {
        let m = Metrics::new();
        m.requests.with_label_values(&["databricks", "200"]).inc();
        m.verification_failures
            .with_label_values(&["databricks", "bad_signature"])
            .inc();
        let text = m.render();
        assert!(text.contains("hookgate_requests_total{endpoint=\"databricks\",status=\"200\"} 1"));
        assert!(text.contains("hookgate_verification_failures_total{endpoint=\"databricks\",reason=\"bad_signature\"} 1"));
        assert!(text.contains(&format!(
            "hookgate_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
        assert!(text.contains("# HELP hookgate_ingest_duration_seconds"));
    }
}

//! hookgate: a verifying, durable gateway for MLflow Model Registry webhooks.
//!
//! A request travels through these stages, one module each, in this order:
//!
//! 1. [`ingress`]: the hyper server. Accepts connections, enforces limits and timeouts, reads the
//!    body once (capped) as bytes, maps every outcome to a fixed, short set of statuses.
//! 2. [`verify`]: pure. Checks the sender's HMAC signature and/or bearer token over the raw bytes.
//! 3. [`event`]: pure. Parses a verified body once into one typed model for both senders.
//! 4. [`route`]: pure. Matches the event against the rule table and names the targets.
//! 5. [`outbox`]: durable store. The event and one delivery per target are committed in one
//!    transaction (shared with concurrent requests: group commit) before the sender gets its 2xx.
//!
//! In the background, [`dispatch`] workers claim due deliveries, send them with [`targets`], and
//! complete, reschedule (per the pure retry policy) or dead-letter them.
//!
//! [`config`] builds all of this once from `routes.toml`; [`metrics`] counts every stage.

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod dispatch;
pub mod event;
pub mod ingress;
pub mod metrics;
pub mod outbox;
pub mod route;
pub mod secret;
pub mod targets;
pub mod telemetry;
pub mod verify;

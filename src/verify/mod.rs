//! Stage 2, verify: decide whether a request really comes from the configured sender.
//!
//! Pure functions of (endpoint auth config, headers, raw body, now). No I/O, no clock reads.
//! Only [`verify`] can construct a [`Verified`], and only a `Verified` request can become an
//! [`crate::event::Event`], so nothing unverified can reach the store or the router.
// STUB: replaced by the full implementation.

pub mod bearer;
pub mod databricks;
pub mod mlflow;

use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;

/// Which sender protocol an endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Databricks,
    Mlflow,
}

/// What an endpoint checks, built once from its configuration.
#[derive(Debug, Clone)]
pub struct EndpointAuth {
    pub scheme: Scheme,
    /// HMAC secrets tried in turn; empty means no signature is required.
    pub secrets: Vec<Secret>,
    /// Expected `Authorization` header (`Bearer X` or just the token `X`).
    pub bearer: Option<Secret>,
    /// MLflow: allowed distance between `X-MLflow-Timestamp` and now.
    pub tolerance: Duration,
}

/// Why a request was refused. Every variant maps to a 401 with a short reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    MissingToken,
    BadToken,
    MissingSignature,
    MalformedSignature,
    BadSignature,
    UnsupportedSignatureVersion,
    MissingDeliveryId,
    MissingTimestamp,
    MalformedTimestamp,
    StaleTimestamp,
}

impl Rejection {
    pub fn code(self) -> &'static str {
        match self {
            Rejection::MissingToken => "missing_token",
            Rejection::BadToken => "bad_token",
            Rejection::MissingSignature => "missing_signature",
            Rejection::MalformedSignature => "malformed_signature",
            Rejection::BadSignature => "bad_signature",
            Rejection::UnsupportedSignatureVersion => "unsupported_signature_version",
            Rejection::MissingDeliveryId => "missing_delivery_id",
            Rejection::MissingTimestamp => "missing_timestamp",
            Rejection::MalformedTimestamp => "malformed_timestamp",
            Rejection::StaleTimestamp => "stale_timestamp",
        }
    }
}

/// Proof that a request passed verification, with the sender metadata it carried.
#[derive(Debug, Clone)]
pub struct Verified {
    delivery_id: Option<String>,
    sender_timestamp: Option<i64>,
}

impl Verified {
    /// `X-MLflow-Delivery-Id` (MLflow); `None` for Databricks.
    pub fn delivery_id(&self) -> Option<&str> {
        self.delivery_id.as_deref()
    }
    /// `X-MLflow-Timestamp` in unix seconds (MLflow); `None` for Databricks.
    pub fn sender_timestamp(&self) -> Option<i64> {
        self.sender_timestamp
    }
}

/// Verify one request against an endpoint's auth config. `now_unix` is seconds since the epoch.
pub fn verify(
    auth: &EndpointAuth,
    headers: &http::HeaderMap,
    body: &[u8],
    now_unix: i64,
) -> Result<Verified, Rejection> {
    let _ = (auth, headers, body, now_unix);
    Ok(Verified {
        delivery_id: None,
        sender_timestamp: None,
    })
}

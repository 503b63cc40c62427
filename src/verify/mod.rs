//! Stage 2, verify: decide whether a request really comes from the configured sender.
//!
//! Pure functions of (endpoint auth config, headers, raw body, now). No I/O, no clock reads.
//! Only [`verify`] can construct a [`Verified`], and only a `Verified` request can become an
//! [`crate::event::Event`], so nothing unverified can reach the store or the router.

pub mod bearer;
pub mod databricks;
pub mod mlflow;
#[cfg(test)]
mod props;

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

impl Scheme {
    /// The configuration and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Databricks => "databricks",
            Scheme::Mlflow => "mlflow",
        }
    }

    pub fn parse(s: &str) -> Option<Scheme> {
        match s {
            "databricks" => Some(Scheme::Databricks),
            "mlflow" => Some(Scheme::Mlflow),
            _ => None,
        }
    }
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

/// The reason code, so a rejection can be logged or returned as is (it never carries a secret).
impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl std::error::Error for Rejection {}

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

    /// The proof for an event read back from the store: only verified events are ever stored,
    /// so the store may vouch for them. Crate-private, so nothing outside can forge a proof.
    pub(crate) fn from_store(delivery_id: Option<String>) -> Verified {
        Verified {
            delivery_id,
            sender_timestamp: None,
        }
    }
}

/// Verify one request against an endpoint's auth config. `now_unix` is seconds since the epoch.
///
/// The bearer token (when configured) is checked first, then the signature (when the endpoint
/// has secrets). An endpoint with neither accepts everything; config refuses to start one
/// unless `allow_unauthenticated` says so.
pub fn verify(
    auth: &EndpointAuth,
    headers: &http::HeaderMap,
    body: &[u8],
    now_unix: i64,
) -> Result<Verified, Rejection> {
    if let Some(expected) = &auth.bearer {
        bearer::check(expected, headers.get(http::header::AUTHORIZATION))?;
    }
    match auth.scheme {
        Scheme::Databricks => {
            if !auth.secrets.is_empty() {
                let header = headers.get(databricks::SIGNATURE_HEADER);
                databricks::verify_signature(&auth.secrets, header, body)?;
            }
            Ok(Verified {
                delivery_id: None,
                sender_timestamp: None,
            })
        }
        Scheme::Mlflow => {
            let (id, timestamp) = if auth.secrets.is_empty() {
                // Unsigned: keep whatever metadata the sender gave (it still de-duplicates
                // retries) but judge no freshness, since the timestamp is not authenticated.
                mlflow::read_unsigned(headers)
            } else {
                let delivery = mlflow::verify_signature(
                    &auth.secrets,
                    headers,
                    body,
                    now_unix,
                    auth.tolerance,
                )?;
                (Some(delivery.id), Some(delivery.timestamp))
            };
            Ok(Verified {
                delivery_id: id.map(str::to_owned),
                sender_timestamp: timestamp,
            })
        }
    }
}

/// The captured request vectors in `tests/fixtures/vectors`, loaded for unit tests.
#[cfg(test)]
pub(crate) mod test_vectors {
    use std::path::PathBuf;

    use http::{HeaderMap, HeaderName, HeaderValue};
    use serde_json::Value;

    /// One request file: `secret`, `headers`, `body` (exact), `expected`.
    pub(crate) struct Vector {
        /// File name without `.json`, e.g. `bad-wrong-secret`.
        pub name: String,
        pub secret: Option<String>,
        pub headers: HeaderMap,
        pub body: String,
        pub expected: Value,
        pub file: Value,
    }

    impl Vector {
        /// `X-MLflow-Timestamp` as sent, for replaying against an injected clock.
        pub fn mlflow_timestamp(&self) -> i64 {
            self.headers["x-mlflow-timestamp"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap()
        }
    }

    /// Every vector of one sender (`databricks` or `mlflow`), sorted by name.
    pub(crate) fn load(sender: &str) -> Vec<Vector> {
        let dir: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests/fixtures/vectors", sender]
            .iter()
            .collect();
        let mut vectors: Vec<Vector> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .map(|path| {
                let text = std::fs::read_to_string(&path).unwrap();
                let file: Value = serde_json::from_str(&text).unwrap();
                let mut headers = HeaderMap::new();
                for (name, value) in file["headers"].as_object().unwrap() {
                    headers.append(
                        HeaderName::from_bytes(name.as_bytes()).unwrap(),
                        HeaderValue::from_str(value.as_str().unwrap()).unwrap(),
                    );
                }
                Vector {
                    name: path.file_stem().unwrap().to_string_lossy().into_owned(),
                    secret: file["secret"].as_str().map(str::to_owned),
                    headers,
                    body: file["body"].as_str().unwrap().to_owned(),
                    expected: file["expected"].clone(),
                    file,
                }
            })
            .collect();
        vectors.sort_by(|a, b| a.name.cmp(&b.name));
        assert!(!vectors.is_empty(), "no vectors in {}", dir.display());
        vectors
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use http::{HeaderMap, HeaderValue};

    use super::test_vectors::{Vector, load};
    use super::*;

    const FIVE_MINUTES: Duration = Duration::from_secs(300);

    fn auth(scheme: Scheme, secrets: &[&str], bearer: Option<&str>) -> EndpointAuth {
        EndpointAuth {
            scheme,
            secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
            bearer: bearer.map(Secret::new),
            tolerance: FIVE_MINUTES,
        }
    }

    fn run(auth: &EndpointAuth, v: &Vector, now: i64) -> Result<Verified, Rejection> {
        verify(auth, &v.headers, v.body.as_bytes(), now)
    }

    /// What each `bad-*` Databricks vector must be rejected with. `bad-json-signed` carries a
    /// valid signature over a body that is not JSON: verification passes and the event parser
    /// refuses it (400), see `event::tests`.
    fn databricks_expectation(name: &str) -> Result<(), Rejection> {
        match name {
            "bad-json-signed" => Ok(()),
            "bad-missing-signature" => Err(Rejection::MissingSignature),
            "bad-reserialized-body" | "bad-tampered-body" | "bad-wrong-secret" => {
                Err(Rejection::BadSignature)
            }
            // `zz…` is not hex; the truncated one is 32 hex digits, i.e. 16 bytes, not 32.
            "bad-signature-not-hex" | "bad-signature-truncated" => {
                Err(Rejection::MalformedSignature)
            }
            other if other.starts_with("bad-") => panic!("no expectation for vector {other}"),
            _ => Ok(()),
        }
    }

    fn mlflow_expectation(name: &str) -> Result<(), Rejection> {
        match name {
            "bad-missing-signature" => Err(Rejection::MissingSignature),
            "bad-reserialized-body"
            | "bad-tampered-body"
            | "bad-tampered-delivery-id"
            | "bad-tampered-timestamp"
            | "bad-wrong-secret" => Err(Rejection::BadSignature),
            "bad-signature-version" => Err(Rejection::UnsupportedSignatureVersion),
            // Sent by a webhook without a secret to an endpoint that has one.
            other if other.starts_with("unsigned.") => Err(Rejection::MissingSignature),
            other if other.starts_with("bad-") => panic!("no expectation for vector {other}"),
            _ => Ok(()),
        }
    }

    #[test]
    fn every_databricks_vector() {
        let vectors = load("databricks");
        assert_eq!(vectors.len(), 21);
        for v in &vectors {
            let endpoint = auth(Scheme::Databricks, &[v.secret.as_deref().unwrap()], None);
            let got = run(&endpoint, v, 0);
            let want = databricks_expectation(&v.name);
            assert_eq!(got.as_ref().map(|_| ()).map_err(|r| *r), want, "{}", v.name);
            let status = v.expected["status"].as_str().unwrap();
            assert_eq!(
                want.is_ok(),
                status.starts_with("accepted") || status.contains("after verification"),
                "{}: {status}",
                v.name
            );
            if let Ok(proof) = got {
                assert_eq!(proof.delivery_id(), None);
                assert_eq!(proof.sender_timestamp(), None);
            }
            // With no secret configured, everything passes (the endpoint is unauthenticated).
            assert!(run(&auth(Scheme::Databricks, &[], None), v, 0).is_ok());
        }
    }

    #[test]
    fn every_mlflow_vector() {
        let vectors = load("mlflow");
        assert_eq!(vectors.len(), 30);
        for v in &vectors {
            // The files are byte-exact captures: the string and base64 forms agree.
            let raw = base64::engine::general_purpose::STANDARD
                .decode(v.file["body_base64"].as_str().unwrap())
                .unwrap();
            assert_eq!(raw, v.body.as_bytes(), "{}", v.name);

            let now = v.mlflow_timestamp();
            let secret = v.secret.as_deref().unwrap_or("mlflow-test-secret");
            let got = run(&auth(Scheme::Mlflow, &[secret], None), v, now);
            let want = mlflow_expectation(&v.name);
            assert_eq!(got.as_ref().map(|_| ()).map_err(|r| *r), want, "{}", v.name);
            assert_eq!(
                want.is_ok(),
                v.expected["signature_valid"].as_bool().unwrap(),
                "{}",
                v.name
            );

            let expected_id = v.headers["x-mlflow-delivery-id"].to_str().unwrap();
            if let Ok(proof) = got {
                assert_eq!(proof.delivery_id(), Some(expected_id), "{}", v.name);
                assert_eq!(proof.delivery_id(), v.expected["delivery_id"].as_str());
                assert_eq!(proof.sender_timestamp(), v.expected["timestamp"].as_i64());
            }

            // No secret: accepted, and the delivery metadata is still recorded.
            let open = run(&auth(Scheme::Mlflow, &[], None), v, now).unwrap();
            assert_eq!(open.delivery_id(), Some(expected_id), "{}", v.name);
            assert_eq!(open.sender_timestamp(), Some(now));
        }
    }

    #[test]
    fn sign_reproduces_the_vectors() {
        for v in load("databricks")
            .iter()
            .filter(|v| !v.name.starts_with("bad-") || v.name == "bad-json-signed")
        {
            let header = v.headers["x-databricks-signature"].to_str().unwrap();
            let ours = databricks::sign(v.secret.as_deref().unwrap().as_bytes(), v.body.as_bytes());
            assert_eq!(ours, header.to_ascii_lowercase(), "{}", v.name);
        }
        for v in load("mlflow")
            .iter()
            .filter(|v| v.expected["signature_valid"] == true)
        {
            let ours = mlflow::sign(
                v.secret.as_deref().unwrap().as_bytes(),
                v.headers["x-mlflow-delivery-id"].to_str().unwrap(),
                v.mlflow_timestamp(),
                v.body.as_bytes(),
            );
            assert_eq!(ours, v.headers["x-mlflow-signature"], "{}", v.name);
        }
    }

    fn mlflow_vector(name: &str) -> Vector {
        load("mlflow").into_iter().find(|v| v.name == name).unwrap()
    }

    #[test]
    fn second_of_several_secrets_matches() {
        let v = mlflow_vector("model_version.created");
        let ts = v.mlflow_timestamp();
        let rotated = auth(Scheme::Mlflow, &["retired", "mlflow-test-secret"], None);
        assert!(run(&rotated, &v, ts).is_ok());
        let neither = auth(Scheme::Mlflow, &["retired", "unrelated"], None);
        assert_eq!(run(&neither, &v, ts).err(), Some(Rejection::BadSignature));

        let d = load("databricks")
            .into_iter()
            .find(|v| v.name == "COMMENT_CREATED")
            .unwrap();
        let rotated = auth(Scheme::Databricks, &["retired", "anyRandomString"], None);
        assert!(run(&rotated, &d, 0).is_ok());
    }

    #[test]
    fn stale_timestamps() {
        let v = mlflow_vector("model_version_alias.created");
        let ts = v.mlflow_timestamp();
        let endpoint = auth(Scheme::Mlflow, &["mlflow-test-secret"], None);
        assert!(run(&endpoint, &v, ts + 300).is_ok());
        assert!(run(&endpoint, &v, ts - 300).is_ok());
        assert_eq!(
            run(&endpoint, &v, ts + 301).err(),
            Some(Rejection::StaleTimestamp)
        );
        assert_eq!(
            run(&endpoint, &v, ts - 301).err(),
            Some(Rejection::StaleTimestamp)
        );
        // Freshness comes after the signature: a tampered, stale request is a bad signature.
        let tampered = mlflow_vector("bad-tampered-body");
        assert_eq!(
            run(&endpoint, &tampered, ts + 10_000).err(),
            Some(Rejection::BadSignature)
        );
    }

    fn with_authorization(v: &Vector, value: Option<&str>) -> HeaderMap {
        let mut headers = v.headers.clone();
        if let Some(value) = value {
            headers.insert(
                http::header::AUTHORIZATION,
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn bearer_is_checked_first() {
        let v = mlflow_vector("model_version.created");
        let ts = v.mlflow_timestamp();
        let body = v.body.as_bytes();
        for configured in ["AbcdEfg1294", "Bearer AbcdEfg1294", "bearer AbcdEfg1294"] {
            let endpoint = auth(Scheme::Mlflow, &["mlflow-test-secret"], Some(configured));
            let right = with_authorization(&v, Some("Bearer AbcdEfg1294"));
            assert!(verify(&endpoint, &right, body, ts).is_ok(), "{configured}");
            let missing = with_authorization(&v, None);
            assert_eq!(
                verify(&endpoint, &missing, body, ts).err(),
                Some(Rejection::MissingToken)
            );
            let wrong = with_authorization(&v, Some("Bearer AbcdEfg1295"));
            assert_eq!(
                verify(&endpoint, &wrong, body, ts).err(),
                Some(Rejection::BadToken)
            );
            // Right token, bad signature: the signature check still runs.
            let forged = mlflow_vector("bad-tampered-body");
            let forged_headers = with_authorization(&forged, Some("Bearer AbcdEfg1294"));
            assert_eq!(
                verify(&endpoint, &forged_headers, forged.body.as_bytes(), ts).err(),
                Some(Rejection::BadSignature)
            );
            // Wrong token on a well-signed request: the token is what is reported.
            let unsigned = mlflow_vector("unsigned.registered_model.created");
            let unsigned_headers = with_authorization(&unsigned, Some("Bearer nope"));
            assert_eq!(
                verify(&endpoint, &unsigned_headers, unsigned.body.as_bytes(), ts).err(),
                Some(Rejection::BadToken)
            );
        }
        // Bearer only (Databricks webhook with `authorization` but no secret).
        let d = load("databricks")
            .into_iter()
            .find(|v| v.name == "bad-missing-signature")
            .unwrap();
        let endpoint = auth(Scheme::Databricks, &[], Some("Bearer AbcdEfg1294"));
        let right = with_authorization(&d, Some("Bearer AbcdEfg1294"));
        assert!(verify(&endpoint, &right, d.body.as_bytes(), 0).is_ok());
        let wrong = with_authorization(&d, Some("Bearer abcdefg1294"));
        assert_eq!(
            verify(&endpoint, &wrong, d.body.as_bytes(), 0).err(),
            Some(Rejection::BadToken)
        );
    }

    #[test]
    fn garbage_header_encodings() {
        let d = load("databricks")
            .into_iter()
            .find(|v| v.name == "MODEL_VERSION_CREATED")
            .unwrap();
        let endpoint = auth(Scheme::Databricks, &["anyRandomString"], None);
        let good = d.headers["x-databricks-signature"]
            .to_str()
            .unwrap()
            .to_owned();
        let mut non_hex = good.clone().into_bytes();
        non_hex[63] = b'x';
        let cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            good.as_bytes()[..63].to_vec(),
            non_hex,
            [&good.as_bytes()[..62], b"\xFF\xFE".as_slice()].concat(),
        ];
        for value in cases {
            let mut headers = d.headers.clone();
            headers.insert(
                "x-databricks-signature",
                HeaderValue::from_bytes(&value).unwrap(),
            );
            assert_eq!(
                verify(&endpoint, &headers, d.body.as_bytes(), 0).err(),
                Some(Rejection::MalformedSignature),
                "{}",
                String::from_utf8_lossy(&value)
            );
        }

        let v = mlflow_vector("model_version.created");
        let ts = v.mlflow_timestamp();
        let endpoint = auth(Scheme::Mlflow, &["mlflow-test-secret"], None);
        for value in [&b""[..], b"v1,", b"v1,\xC3\xA9\xC3\xA9", b"\xFFv1,abc"] {
            let mut headers = v.headers.clone();
            headers.insert(
                "x-mlflow-signature",
                HeaderValue::from_bytes(value).unwrap(),
            );
            assert_eq!(
                verify(&endpoint, &headers, v.body.as_bytes(), ts).err(),
                Some(Rejection::MalformedSignature),
                "{}",
                String::from_utf8_lossy(value)
            );
        }
        let mut headers = v.headers.clone();
        headers.insert(
            "x-mlflow-timestamp",
            HeaderValue::from_bytes(b"17956\xC3\xA917164").unwrap(),
        );
        assert_eq!(
            verify(&endpoint, &headers, v.body.as_bytes(), ts).err(),
            Some(Rejection::MalformedTimestamp)
        );
    }

    #[test]
    fn rejection_codes_are_distinct_snake_case() {
        let all = [
            Rejection::MissingToken,
            Rejection::BadToken,
            Rejection::MissingSignature,
            Rejection::MalformedSignature,
            Rejection::BadSignature,
            Rejection::UnsupportedSignatureVersion,
            Rejection::MissingDeliveryId,
            Rejection::MissingTimestamp,
            Rejection::MalformedTimestamp,
            Rejection::StaleTimestamp,
        ];
        let codes: std::collections::HashSet<_> = all.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), all.len());
        assert_eq!(Rejection::StaleTimestamp.to_string(), "stale_timestamp");
        assert!(
            codes
                .iter()
                .all(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        );
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let endpoint = auth(
            Scheme::Mlflow,
            &["mlflow-test-secret"],
            Some("Bearer tok3n"),
        );
        let shown = format!("{endpoint:?}");
        assert!(!shown.contains("mlflow-test-secret") && !shown.contains("tok3n"));
    }
}

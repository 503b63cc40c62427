//! Stage 2, verify: open-source MLflow webhooks (MLflow 3.3+), which sign like Standard Webhooks.
//!
//! Invariants: the HMAC covers `"{delivery_id}.{timestamp}.{raw body}"` exactly as received, is
//! compared in constant time against every configured secret, and the timestamp's freshness is
//! judged only after the signature proved the sender wrote it (an unsigned timestamp proves
//! nothing about replay).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::Rejection;
use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

/// `X-MLflow-Delivery-Id`: a UUID, reused by the sender on every retry of one delivery.
pub const DELIVERY_ID_HEADER: &str = "x-mlflow-delivery-id";
/// `X-MLflow-Timestamp`: unix seconds at which the sender signed the delivery.
pub const TIMESTAMP_HEADER: &str = "x-mlflow-timestamp";
/// `X-MLflow-Signature`: one or more space-separated `v1,<base64>` signatures.
pub const SIGNATURE_HEADER: &str = "x-mlflow-signature";

/// The only signature version MLflow (and Standard Webhooks' symmetric scheme) defines.
const VERSION: &[u8] = b"v1";
/// Length of an HMAC-SHA256 tag in bytes.
const TAG_LEN: usize = 32;
/// Padded standard base64 of a 32-byte tag is always 44 characters.
const TAG_B64_LEN: usize = 44;
/// Candidate `v1` signatures examined per request. Standard Webhooks allows several (key
/// rotation on the sender's side), but a header stuffed with thousands is an attack, not a
/// rotation: refusing it keeps the work per request bounded.
const MAX_SIGNATURES: usize = 8;

/// The sender metadata of a delivery whose signature (and freshness) was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery<'a> {
    /// `X-MLflow-Delivery-Id`, the natural de-duplication key.
    pub id: &'a str,
    /// `X-MLflow-Timestamp`, unix seconds.
    pub timestamp: i64,
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`: the `X-MLflow-Signature` value
/// (and the Standard Webhooks `webhook-signature` value, which has the same shape).
pub fn sign(key: &[u8], delivery_id: &str, timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    let tag = mac(key, delivery_id.as_bytes(), timestamp.as_bytes(), body)
        .finalize()
        .into_bytes();
    let mut out = String::with_capacity(VERSION.len() + 1 + TAG_B64_LEN);
    out.push_str("v1,");
    STANDARD.encode_string(tag, &mut out);
    out
}

/// Verify a signed MLflow delivery: headers present and well formed, one `v1` signature made
/// with one of `secrets`, then `|now_unix - timestamp| <= tolerance`.
pub fn verify_signature<'h>(
    secrets: &[Secret],
    headers: &'h HeaderMap,
    body: &[u8],
    now_unix: i64,
    tolerance: Duration,
) -> Result<Delivery<'h>, Rejection> {
    let signature = headers
        .get(SIGNATURE_HEADER)
        .ok_or(Rejection::MissingSignature)?;
    let id = delivery_id(headers).ok_or(Rejection::MissingDeliveryId)?;
    let timestamp_raw = headers
        .get(TIMESTAMP_HEADER)
        .ok_or(Rejection::MissingTimestamp)?
        .as_bytes()
        .trim_ascii();
    let timestamp = parse_timestamp(timestamp_raw).ok_or(Rejection::MalformedTimestamp)?;
    let candidates = Candidates::parse(signature.as_bytes())?;

    // One HMAC per secret, whatever the number of candidate signatures: the body is the
    // expensive part, so it is hashed once per key and the tag compared with each candidate.
    // The message is fed in pieces (the signed bytes are exactly what was received, including
    // the timestamp's own spelling) rather than concatenated into a fresh buffer.
    let matched = secrets
        .iter()
        // An empty key is public knowledge: never let it authenticate anything.
        .filter(|secret| !secret.is_empty())
        .any(|secret| {
            let tag = mac(
                secret.expose().as_bytes(),
                id.as_bytes(),
                timestamp_raw,
                body,
            )
            .finalize()
            .into_bytes();
            candidates.matches(&tag)
        });
    if !matched {
        return Err(Rejection::BadSignature);
    }
    if now_unix.abs_diff(timestamp) > tolerance.as_secs() {
        return Err(Rejection::StaleTimestamp);
    }
    Ok(Delivery { id, timestamp })
}

/// Read the delivery id and timestamp of an unsigned delivery (an endpoint with no secret).
/// Never fails: absent or unusable values are `None`.
pub fn read_unsigned(headers: &HeaderMap) -> (Option<&str>, Option<i64>) {
    let timestamp = headers
        .get(TIMESTAMP_HEADER)
        .and_then(|v| parse_timestamp(v.as_bytes().trim_ascii()));
    (delivery_id(headers), timestamp)
}

/// The trimmed delivery id, if present, non-empty and visible ASCII (a UUID always is; anything
/// else cannot serve as a de-duplication key, so it counts as missing).
fn delivery_id(headers: &HeaderMap) -> Option<&str> {
    let id = headers.get(DELIVERY_ID_HEADER)?.to_str().ok()?.trim();
    (!id.is_empty()).then_some(id)
}

/// Unix seconds: an optional `-` and ASCII digits, nothing else (no `+`, no fraction).
fn parse_timestamp(raw: &[u8]) -> Option<i64> {
    let digits = raw.strip_prefix(b"-").unwrap_or(raw);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(raw).ok()?.parse().ok()
}

fn mac(key: &[u8], id: &[u8], timestamp: &[u8], body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(id);
    mac.update(b".");
    mac.update(timestamp);
    mac.update(b".");
    mac.update(body);
    mac
}

/// The decoded `v1` tags of one signature header, kept on the stack.
struct Candidates {
    tags: [[u8; TAG_LEN]; MAX_SIGNATURES],
    len: usize,
}

impl Candidates {
    /// Parse `v1,<b64> [v1,<b64> ...]`. Other versions are skipped, as Standard Webhooks asks;
    /// the error, when no usable `v1` tag remains, says what was wrong with the header.
    fn parse(value: &[u8]) -> Result<Candidates, Rejection> {
        let mut candidates = Candidates {
            tags: [[0; TAG_LEN]; MAX_SIGNATURES],
            len: 0,
        };
        let mut malformed = false;
        let mut unsupported = false;
        for entry in value.split(u8::is_ascii_whitespace) {
            if entry.is_empty() {
                continue;
            }
            let Some(comma) = entry.iter().position(|b| *b == b',') else {
                malformed = true;
                continue;
            };
            let (version, payload) = (&entry[..comma], &entry[comma + 1..]);
            if version != VERSION {
                // A well-formed version we do not speak (`v2`, `v1a`) is skipped; bytes that
                // are not a version token at all make the header malformed.
                if !version.is_empty() && version.iter().all(u8::is_ascii_alphanumeric) {
                    unsupported = true;
                } else {
                    malformed = true;
                }
                continue;
            }
            if candidates.len == MAX_SIGNATURES {
                return Err(Rejection::MalformedSignature);
            }
            match decode_tag(payload) {
                Some(tag) => {
                    candidates.tags[candidates.len] = tag;
                    candidates.len += 1;
                }
                None => malformed = true,
            }
        }
        if candidates.len > 0 {
            Ok(candidates)
        } else if unsupported && !malformed {
            Err(Rejection::UnsupportedSignatureVersion)
        } else {
            Err(Rejection::MalformedSignature)
        }
    }

    fn matches(&self, tag: &[u8]) -> bool {
        self.tags[..self.len]
            .iter()
            .any(|candidate| bool::from(candidate.as_slice().ct_eq(tag)))
    }
}

/// Decode canonical padded base64 of exactly 32 bytes.
fn decode_tag(payload: &[u8]) -> Option<[u8; TAG_LEN]> {
    if payload.len() != TAG_B64_LEN {
        return None;
    }
    let mut tag = [0u8; TAG_LEN];
    match STANDARD.decode_slice(payload, &mut tag) {
        Ok(TAG_LEN) => Some(tag),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const ID: &str = "e9db1ee8-2fce-42b3-8ad3-d2928322e5b5";
    const TS: i64 = 1_795_617_164;
    const BODY: &[u8] = br#"{"entity": "model_version", "action": "created"}"#;
    const FIVE_MINUTES: Duration = Duration::from_secs(300);

    fn headers(signature: Option<&[u8]>, id: Option<&[u8]>, ts: Option<&[u8]>) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in [
            (SIGNATURE_HEADER, signature),
            (DELIVERY_ID_HEADER, id),
            (TIMESTAMP_HEADER, ts),
        ] {
            if let Some(value) = value {
                map.insert(name, HeaderValue::from_bytes(value).unwrap());
            }
        }
        map
    }

    fn signed(signature: &str) -> HeaderMap {
        headers(
            Some(signature.as_bytes()),
            Some(ID.as_bytes()),
            Some(TS.to_string().as_bytes()),
        )
    }

    fn check<'h>(
        map: &'h HeaderMap,
        secrets: &[&str],
        now: i64,
    ) -> Result<Delivery<'h>, Rejection> {
        let secrets: Vec<Secret> = secrets.iter().map(|s| Secret::new(*s)).collect();
        verify_signature(&secrets, map, BODY, now, FIVE_MINUTES)
    }

    #[test]
    fn sign_matches_an_independent_computation() {
        // Concatenate the message the slow way and compare with the piecewise signer.
        let message = [format!("{ID}.{TS}.").as_bytes(), BODY].concat();
        let mut reference = HmacSha256::new_from_slice(b"k").unwrap();
        reference.update(&message);
        let expected = format!("v1,{}", STANDARD.encode(reference.finalize().into_bytes()));
        assert_eq!(sign(b"k", ID, TS, BODY), expected);
        assert_eq!(sign(b"k", ID, TS, BODY).len(), 47);
    }

    #[test]
    fn round_trip_and_several_signatures() {
        let good = sign(b"k", ID, TS, BODY);
        let other = sign(b"other", ID, TS, BODY);
        let map = signed(&good);
        assert_eq!(
            check(&map, &["k"], TS),
            Ok(Delivery {
                id: ID,
                timestamp: TS
            })
        );
        assert_eq!(check(&map, &["old", "k"], TS).map(|d| d.id), Ok(ID));
        assert_eq!(check(&map, &["old"], TS), Err(Rejection::BadSignature));
        // Standard Webhooks: several space-separated signatures, any v1 may match; unknown
        // versions are skipped.
        let pair = signed(&format!("{other} {good}"));
        assert!(check(&pair, &["k"], TS).is_ok());
        let mixed = signed(&format!("v2,abc {good}"));
        assert!(check(&mixed, &["k"], TS).is_ok());
        let both_wrong = signed(&format!("{other} {other}"));
        assert_eq!(check(&both_wrong, &["k"], TS), Err(Rejection::BadSignature));
    }

    #[test]
    fn freshness_only_after_a_valid_signature() {
        let map = signed(&sign(b"k", ID, TS, BODY));
        assert!(check(&map, &["k"], TS + 300).is_ok());
        assert!(check(&map, &["k"], TS - 300).is_ok());
        assert_eq!(
            check(&map, &["k"], TS + 301),
            Err(Rejection::StaleTimestamp)
        );
        assert_eq!(
            check(&map, &["k"], TS - 301),
            Err(Rejection::StaleTimestamp)
        );
        // A forged, stale request is a bad signature: staleness is not revealed to forgers.
        assert_eq!(check(&map, &["x"], TS + 301), Err(Rejection::BadSignature));
        // Extremes do not overflow.
        assert_eq!(
            check(&map, &["k"], i64::MIN),
            Err(Rejection::StaleTimestamp)
        );
    }

    #[test]
    fn missing_headers() {
        let good = sign(b"k", ID, TS, BODY);
        let ts = TS.to_string();
        let cases = [
            (
                headers(None, Some(ID.as_bytes()), Some(ts.as_bytes())),
                Rejection::MissingSignature,
            ),
            (
                headers(Some(good.as_bytes()), None, Some(ts.as_bytes())),
                Rejection::MissingDeliveryId,
            ),
            (
                headers(Some(good.as_bytes()), Some(b""), Some(ts.as_bytes())),
                Rejection::MissingDeliveryId,
            ),
            (
                headers(Some(good.as_bytes()), Some(b"  "), Some(ts.as_bytes())),
                Rejection::MissingDeliveryId,
            ),
            (
                headers(
                    Some(good.as_bytes()),
                    Some(b"caf\xC3\xA9"),
                    Some(ts.as_bytes()),
                ),
                Rejection::MissingDeliveryId,
            ),
            (
                headers(Some(good.as_bytes()), Some(ID.as_bytes()), None),
                Rejection::MissingTimestamp,
            ),
        ];
        for (map, want) in cases {
            assert_eq!(check(&map, &["k"], TS), Err(want), "{map:?}");
        }
    }

    #[test]
    fn malformed_timestamps() {
        let good = sign(b"k", ID, TS, BODY);
        for ts in [
            &b""[..],
            b"-",
            b"+1795617164",
            b"1795617164.5",
            b"1.795617164e9",
            b"0x6b07c5cc",
            b"17956 17164",
            b"99999999999999999999",
            b"\xC3\xA9",
        ] {
            let map = headers(Some(good.as_bytes()), Some(ID.as_bytes()), Some(ts));
            assert_eq!(
                check(&map, &["k"], TS),
                Err(Rejection::MalformedTimestamp),
                "{}",
                String::from_utf8_lossy(ts)
            );
        }
    }

    #[test]
    fn timestamp_is_signed_as_received() {
        // The sender signs its own spelling of the timestamp; a different spelling of the same
        // number is a different message.
        let padded = format!("0{TS}");
        let mut map = signed(&sign(b"k", ID, TS, BODY));
        map.insert(TIMESTAMP_HEADER, HeaderValue::from_str(&padded).unwrap());
        assert_eq!(check(&map, &["k"], TS), Err(Rejection::BadSignature));
    }

    #[test]
    fn garbage_signatures() {
        let good = sign(b"k", ID, TS, BODY);
        let b64 = &good[3..];
        let malformed: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"   ".to_vec(),
            b"v1,".to_vec(),
            b"v1".to_vec(),
            b64.as_bytes().to_vec(),
            format!("v1,{}", &b64[..43]).into_bytes(),
            format!("v1,{}", b64.trim_end_matches('=')).into_bytes(),
            format!("v1,{b64}=").into_bytes(),
            format!("v1,{}", STANDARD.encode([7u8; 31])).into_bytes(),
            format!("v1,{}", STANDARD.encode([7u8; 33])).into_bytes(),
            format!("v1,{}!", &b64[..43]).into_bytes(),
            // URL-safe alphabet is not standard base64.
            format!("v1,{}", "-_".repeat(22)).into_bytes(),
            [b"v1,".as_slice(), &[0xC3, 0xA9], &b64.as_bytes()[2..]].concat(),
            // A malformed v1 next to an unknown version is still malformed.
            b"v2,abc v1,???".to_vec(),
            // Not a version token.
            b",abc".to_vec(),
            [&[0xFF], format!("v1,{b64}").as_bytes()].concat(),
        ];
        for value in malformed {
            let map = headers(
                Some(&value),
                Some(ID.as_bytes()),
                Some(TS.to_string().as_bytes()),
            );
            assert_eq!(
                check(&map, &["k"], TS),
                Err(Rejection::MalformedSignature),
                "{}",
                String::from_utf8_lossy(&value)
            );
        }
        for value in [
            format!("v2,{b64}"),
            format!("V1,{b64}"),
            format!("v1a,{b64} v0,x"),
        ] {
            assert_eq!(
                check(&signed(&value), &["k"], TS),
                Err(Rejection::UnsupportedSignatureVersion),
                "{value}"
            );
        }
    }

    #[test]
    fn too_many_signatures_are_refused() {
        let good = sign(b"k", ID, TS, BODY);
        let other = sign(b"other", ID, TS, BODY);
        let within = format!("{} {good}", [other.as_str(); MAX_SIGNATURES - 1].join(" "));
        assert!(check(&signed(&within), &["k"], TS).is_ok());
        let beyond = format!("{} {good}", [other.as_str(); MAX_SIGNATURES].join(" "));
        assert_eq!(
            check(&signed(&beyond), &["k"], TS),
            Err(Rejection::MalformedSignature)
        );
    }

    #[test]
    fn unsigned_reads_what_is_there() {
        let ts = TS.to_string();
        let map = headers(None, Some(ID.as_bytes()), Some(ts.as_bytes()));
        assert_eq!(read_unsigned(&map), (Some(ID), Some(TS)));
        let map = headers(None, None, Some(b"soon"));
        assert_eq!(read_unsigned(&map), (None, None));
        assert_eq!(read_unsigned(&HeaderMap::new()), (None, None));
    }
}

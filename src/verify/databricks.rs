//! Stage 2, verify: Databricks registry webhooks (`X-Databricks-Signature`).
//!
//! Invariant: the signature is the hex HMAC-SHA256 of the raw body bytes as received (never of
//! re-serialized JSON), checked against every configured secret with a constant-time comparison.

use hmac::{Hmac, Mac};
use http::HeaderValue;
use sha2::Sha256;

use super::Rejection;
use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

/// The request header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-databricks-signature";

/// Length of an HMAC-SHA256 tag in bytes.
const TAG_LEN: usize = 32;

/// Lowercase hex HMAC-SHA256 of the body: the `X-Databricks-Signature` value.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    hex::encode(mac(secret, body).finalize().into_bytes())
}

/// Check `X-Databricks-Signature` against each secret in turn (one per webhook, or old and new
/// during a rotation). Accepts the hex digits in any case and surrounding whitespace.
pub fn verify_signature(
    secrets: &[Secret],
    header: Option<&HeaderValue>,
    body: &[u8],
) -> Result<(), Rejection> {
    let header = header.ok_or(Rejection::MissingSignature)?;
    let mut tag = [0u8; TAG_LEN];
    // `decode_to_slice` insists on exactly 2 * TAG_LEN hex digits (either case), so truncated,
    // padded or non-hex values are malformed before any HMAC is computed.
    hex::decode_to_slice(header.as_bytes().trim_ascii(), &mut tag)
        .map_err(|_| Rejection::MalformedSignature)?;
    let matched = secrets
        .iter()
        // An empty key is public knowledge: never let it authenticate anything.
        .filter(|secret| !secret.is_empty())
        .any(|secret| {
            mac(secret.expose().as_bytes(), body)
                .verify_slice(&tag)
                .is_ok()
        });
    if matched {
        Ok(())
    } else {
        Err(Rejection::BadSignature)
    }
}

fn mac(key: &[u8], body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"event":"MODEL_VERSION_CREATED"}"#;

    fn secrets(list: &[&str]) -> Vec<Secret> {
        list.iter().map(|s| Secret::new(*s)).collect()
    }

    fn hv(bytes: &[u8]) -> HeaderValue {
        HeaderValue::from_bytes(bytes).unwrap()
    }

    #[test]
    fn sign_is_lowercase_hex_of_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn round_trip_in_any_case_with_whitespace() {
        let sig = sign(b"s3cret", BODY);
        let keys = secrets(&["s3cret"]);
        for value in [
            sig.clone(),
            sig.to_ascii_uppercase(),
            format!(" {sig}\t"),
            format!("{}{}", &sig[..32], sig[32..].to_ascii_uppercase()),
        ] {
            assert_eq!(
                verify_signature(&keys, Some(&hv(value.as_bytes())), BODY),
                Ok(())
            );
        }
    }

    #[test]
    fn any_of_several_secrets() {
        let sig = sign(b"new", BODY);
        let header = hv(sig.as_bytes());
        assert_eq!(
            verify_signature(&secrets(&["old", "new"]), Some(&header), BODY),
            Ok(())
        );
        assert_eq!(
            verify_signature(&secrets(&["old", "other"]), Some(&header), BODY),
            Err(Rejection::BadSignature)
        );
    }

    #[test]
    fn empty_secret_never_matches() {
        let sig = sign(b"", BODY);
        assert_eq!(
            verify_signature(&secrets(&[""]), Some(&hv(sig.as_bytes())), BODY),
            Err(Rejection::BadSignature)
        );
    }

    #[test]
    fn missing_and_malformed() {
        let keys = secrets(&["s3cret"]);
        assert_eq!(
            verify_signature(&keys, None, BODY),
            Err(Rejection::MissingSignature)
        );
        let sig = sign(b"s3cret", BODY);
        let mut not_hex = sig.clone().into_bytes();
        not_hex[10] = b'g';
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"   ".to_vec(),
            sig.as_bytes()[..63].to_vec(),
            format!("{sig}0").into_bytes(),
            format!("{sig}00").into_bytes(),
            not_hex,
            format!("sha256={sig}").into_bytes(),
            // Non-ASCII bytes are legal in a header value but never in a hex signature.
            [&sig.as_bytes()[..62], b"\xC3\xA9".as_slice()].concat(),
        ];
        for value in cases {
            assert_eq!(
                verify_signature(&keys, Some(&hv(&value)), BODY),
                Err(Rejection::MalformedSignature),
                "{}",
                String::from_utf8_lossy(&value)
            );
        }
    }

    #[test]
    fn signature_covers_every_byte() {
        let keys = secrets(&["s3cret"]);
        let sig = sign(b"s3cret", BODY);
        let reformatted = br#"{"event": "MODEL_VERSION_CREATED"}"#;
        assert_eq!(
            verify_signature(&keys, Some(&hv(sig.as_bytes())), reformatted),
            Err(Rejection::BadSignature)
        );
    }
}

//! Properties of verification over generated bodies, secrets and header values: the cases no
//! hand-written vector lists. A signature made with any configured secret verifies; any change
//! to what was signed is refused with the reason the request deserves; no header value, however
//! odd, panics or gets through; and no rejection or `Debug` output shows a secret.

use std::ops::Range;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use sha2::Sha256;

use super::*;

const FIVE_MINUTES: Duration = Duration::from_secs(300);

/// Bytes a header value can hold: tab, visible ASCII and obs-text (0x80-0xFF). `http` refuses
/// the other control characters, so no request can carry them.
fn header_byte() -> impl Strategy<Value = u8> {
    prop_oneof![Just(b'\t'), 0x20u8..=0x7e, 0x80u8..=0xff]
}

fn header_bytes(len: Range<usize>) -> impl Strategy<Value = Vec<u8>> {
    vec(header_byte(), len)
}

/// 8-20 KB, about what a proxy lets through: a random run repeated, since generating every
/// byte on its own would cost more than all the other cases together.
fn huge_header() -> impl Strategy<Value = Vec<u8>> {
    (header_bytes(1..64), 8_000usize..20_000)
        .prop_map(|(run, len)| run.iter().copied().cycle().take(len).collect())
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..1024)
}

/// Any non-empty string, control characters and NULs included, up to ~190 bytes: HMAC keys
/// longer than its 64-byte block are hashed first, so both paths are exercised.
fn secret() -> impl Strategy<Value = String> {
    vec(any::<char>(), 1..48).prop_map(String::from_iter)
}

fn secrets() -> impl Strategy<Value = Vec<String>> {
    vec(secret(), 1..4)
}

/// A delivery id as a header carries it once trimmed: visible ASCII, no outer whitespace.
fn delivery_id() -> impl Strategy<Value = String> {
    "[!-~]([ -~]{0,62}[!-~])?"
}

/// Unix seconds: anywhere in `i64` (the sign and the extremes have their own spelling), and
/// often near today.
fn timestamp() -> impl Strategy<Value = i64> {
    prop_oneof![any::<i64>(), 1_500_000_000i64..2_100_000_000]
}

/// HMAC zero-pads keys up to its block size, so two keys that differ only in trailing NULs are
/// the same key: that is the algorithm, not a flaw here, and "another secret" must avoid it.
fn same_hmac_key(a: &str, b: &str) -> bool {
    a.trim_end_matches('\0') == b.trim_end_matches('\0')
}

fn endpoint(scheme: Scheme, secrets: &[String]) -> EndpointAuth {
    EndpointAuth {
        scheme,
        secrets: secrets.iter().map(Secret::new).collect(),
        bearer: None,
        tolerance: FIVE_MINUTES,
    }
}

fn header_map(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_bytes(value).unwrap());
    }
    map
}

fn databricks_request(signature: &[u8]) -> HeaderMap {
    header_map(&[(databricks::SIGNATURE_HEADER, signature)])
}

fn mlflow_request(signature: &[u8], id: &[u8], timestamp: &[u8]) -> HeaderMap {
    header_map(&[
        (mlflow::SIGNATURE_HEADER, signature),
        (mlflow::DELIVERY_ID_HEADER, id),
        (mlflow::TIMESTAMP_HEADER, timestamp),
    ])
}

/// The MLflow signature computed the slow, obvious way (one concatenated message, the
/// timestamp as received), independent of the signer under test.
fn reference_mlflow_signature(key: &str, id: &[u8], timestamp: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(&[id, b".", timestamp, b".", body].concat());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// A signature from one of `secrets`, tried against an endpoint that has them all.
fn signed_by_one(secrets: &[String], signer: Index) -> &str {
    &secrets[signer.index(secrets.len())]
}

proptest! {
    #[test]
    fn databricks_signature_by_any_secret_verifies_in_either_case(
        body in body(),
        secrets in secrets(),
        signer in any::<Index>(),
        upper in any::<bool>(),
        now in any::<i64>(),
    ) {
        let mut signature = databricks::sign(signed_by_one(&secrets, signer).as_bytes(), &body);
        if upper {
            signature.make_ascii_uppercase();
        }
        let auth = endpoint(Scheme::Databricks, &secrets);
        let proof = verify(&auth, &databricks_request(signature.as_bytes()), &body, now);
        prop_assert!(proof.is_ok(), "{:?}", proof.err());
    }

    #[test]
    fn databricks_changed_body_byte_is_a_bad_signature(
        body in vec(any::<u8>(), 1..1024),
        secret in secret(),
        at in any::<Index>(),
        flip in 1u8..=255,
    ) {
        let signature = databricks::sign(secret.as_bytes(), &body);
        let mut tampered = body.clone();
        tampered[at.index(body.len())] ^= flip;
        let auth = endpoint(Scheme::Databricks, &[secret]);
        prop_assert_eq!(
            verify(&auth, &databricks_request(signature.as_bytes()), &tampered, 0).err(),
            Some(Rejection::BadSignature)
        );
    }

    #[test]
    fn databricks_changed_signature_byte_is_refused_for_what_it_became(
        body in body(),
        secret in secret(),
        at in 0usize..64,
        byte in header_byte(),
    ) {
        let signature = databricks::sign(secret.as_bytes(), &body);
        let mut changed = signature.clone().into_bytes();
        let old = changed[at];
        prop_assume!(byte != old);
        changed[at] = byte;
        let expected = if byte.eq_ignore_ascii_case(&old) {
            // The same hex digit in the other case: still the same signature.
            Ok(())
        } else if byte.is_ascii_hexdigit() {
            Err(Rejection::BadSignature)
        } else {
            // Anything else, including a space or tab at either end (trimmed, it leaves 63
            // digits), is not 64 hex digits.
            Err(Rejection::MalformedSignature)
        };
        let auth = endpoint(Scheme::Databricks, &[secret]);
        let got = verify(&auth, &databricks_request(&changed), &body, 0).map(|_| ());
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn databricks_another_secret_is_a_bad_signature(
        body in body(),
        secret in secret(),
        other in secrets(),
    ) {
        prop_assume!(other.iter().all(|o| !same_hmac_key(o, &secret)));
        let signature = databricks::sign(secret.as_bytes(), &body);
        let auth = endpoint(Scheme::Databricks, &other);
        prop_assert_eq!(
            verify(&auth, &databricks_request(signature.as_bytes()), &body, 0).err(),
            Some(Rejection::BadSignature)
        );
    }

    #[test]
    fn an_empty_secret_authenticates_nothing(
        body in body(),
        others in vec(secret(), 0..3),
        id in delivery_id(),
        timestamp in 1_500_000_000i64..2_100_000_000,
    ) {
        // An unset `${VAR:-}` leaves an empty secret, whose HMAC anyone can compute.
        prop_assume!(others.iter().all(|o| !same_hmac_key(o, "")));
        let mut secrets = others;
        secrets.push(String::new());
        let signature = databricks::sign(b"", &body);
        let auth = endpoint(Scheme::Databricks, &secrets);
        prop_assert_eq!(
            verify(&auth, &databricks_request(signature.as_bytes()), &body, 0).err(),
            Some(Rejection::BadSignature)
        );
        let signature = mlflow::sign(b"", &id, timestamp, &body);
        let ts = timestamp.to_string();
        let request = mlflow_request(signature.as_bytes(), id.as_bytes(), ts.as_bytes());
        let auth = endpoint(Scheme::Mlflow, &secrets);
        prop_assert_eq!(
            verify(&auth, &request, &body, timestamp).err(),
            Some(Rejection::BadSignature)
        );
    }

    #[test]
    fn databricks_arbitrary_signature_header_is_refused_without_panic(
        body in body(),
        secrets in secrets(),
        value in prop_oneof![
            header_bytes(0..200),
            // Hex digits of any length, odd ones included, in either case.
            "[0-9a-fA-F]{0,130}".prop_map(String::into_bytes),
            "[ \t]{0,3}[0-9a-fA-F]{64}[ \t]{0,3}".prop_map(String::into_bytes),
            huge_header(),
        ],
    ) {
        let trimmed = value.trim_ascii();
        let expected = if trimmed.len() == 64 && trimmed.iter().all(u8::is_ascii_hexdigit) {
            // Well formed; that random digits are some secret's HMAC is a 2^-256 chance.
            Rejection::BadSignature
        } else {
            Rejection::MalformedSignature
        };
        let auth = endpoint(Scheme::Databricks, &secrets);
        prop_assert_eq!(
            verify(&auth, &databricks_request(&value), &body, 0).err(),
            Some(expected)
        );
    }

    #[test]
    fn mlflow_signature_by_any_secret_verifies_within_tolerance(
        body in body(),
        secrets in secrets(),
        signer in any::<Index>(),
        id in delivery_id(),
        timestamp in timestamp(),
        tolerance in 0u64..=86_400,
        skew in any::<Index>(),
        edge in any::<Option<bool>>(),
        others in vec(prop_oneof![
            any::<[u8; 32]>().prop_map(|tag| format!("v1,{}", STANDARD.encode(tag))),
            "v[02-9],[A-Za-z0-9+/=]{0,50}",
        ], 0..4),
        position in any::<Index>(),
    ) {
        let tolerance_secs = tolerance as i64;
        let offset = match edge {
            Some(true) => tolerance_secs,
            Some(false) => -tolerance_secs,
            None => skew.index(2 * tolerance as usize + 1) as i64 - tolerance_secs,
        };
        let now = timestamp.checked_add(offset);
        prop_assume!(now.is_some());
        let key = signed_by_one(&secrets, signer);
        let good = mlflow::sign(key.as_bytes(), &id, timestamp, &body);
        prop_assert_eq!(
            &good,
            &reference_mlflow_signature(key, id.as_bytes(), timestamp.to_string().as_bytes(), &body)
        );
        // Standard Webhooks: several signatures in one header, any v1 may match, other
        // versions are skipped.
        let mut entries = others;
        let at = position.index(entries.len() + 1);
        entries.insert(at, good);
        let header = entries.join(" ");

        let auth = EndpointAuth {
            tolerance: Duration::from_secs(tolerance),
            ..endpoint(Scheme::Mlflow, &secrets)
        };
        let request = mlflow_request(
            header.as_bytes(),
            id.as_bytes(),
            timestamp.to_string().as_bytes(),
        );
        let proof = verify(&auth, &request, &body, now.unwrap());
        prop_assert!(proof.is_ok(), "{:?}", proof.as_ref().err());
        let proof = proof.unwrap();
        prop_assert_eq!(proof.delivery_id(), Some(id.as_str()));
        prop_assert_eq!(proof.sender_timestamp(), Some(timestamp));
    }

    #[test]
    fn mlflow_outside_tolerance_is_stale_and_a_forgery_is_bad_whatever_the_time(
        body in body(),
        secret in secret(),
        other in secret(),
        id in delivery_id(),
        timestamp in timestamp(),
        tolerance in 0u64..=86_400,
        excess in 1u64..=u64::from(u32::MAX),
        later in any::<bool>(),
    ) {
        let distance = (tolerance + excess) as i64;
        let now = if later {
            timestamp.checked_add(distance)
        } else {
            timestamp.checked_sub(distance)
        };
        prop_assume!(now.is_some());
        let now = now.unwrap();
        let auth = EndpointAuth {
            tolerance: Duration::from_secs(tolerance),
            ..endpoint(Scheme::Mlflow, std::slice::from_ref(&secret))
        };
        let signature = mlflow::sign(secret.as_bytes(), &id, timestamp, &body);
        let ts = timestamp.to_string();
        let request = mlflow_request(signature.as_bytes(), id.as_bytes(), ts.as_bytes());
        prop_assert_eq!(
            verify(&auth, &request, &body, now).err(),
            Some(Rejection::StaleTimestamp)
        );
        // Staleness is only reported once the signature proved the sender: a forger learns
        // nothing about the clock.
        prop_assume!(!same_hmac_key(&secret, &other));
        let forged = mlflow::sign(other.as_bytes(), &id, timestamp, &body);
        let request = mlflow_request(forged.as_bytes(), id.as_bytes(), ts.as_bytes());
        prop_assert_eq!(
            verify(&auth, &request, &body, now).err(),
            Some(Rejection::BadSignature)
        );
    }

    #[test]
    fn mlflow_changed_body_id_or_secret_is_a_bad_signature(
        body in vec(any::<u8>(), 1..1024),
        secret in secret(),
        others in secrets(),
        id in delivery_id(),
        other_id in delivery_id(),
        timestamp in 1_500_000_000i64..2_100_000_000,
        at in any::<Index>(),
        flip in 1u8..=255,
    ) {
        let signature = mlflow::sign(secret.as_bytes(), &id, timestamp, &body);
        let ts = timestamp.to_string();
        let auth = endpoint(Scheme::Mlflow, std::slice::from_ref(&secret));

        let mut tampered = body.clone();
        tampered[at.index(body.len())] ^= flip;
        let request = mlflow_request(signature.as_bytes(), id.as_bytes(), ts.as_bytes());
        prop_assert_eq!(
            verify(&auth, &request, &tampered, timestamp).err(),
            Some(Rejection::BadSignature)
        );

        if other_id != id {
            let request =
                mlflow_request(signature.as_bytes(), other_id.as_bytes(), ts.as_bytes());
            prop_assert_eq!(
                verify(&auth, &request, &body, timestamp).err(),
                Some(Rejection::BadSignature)
            );
        }

        if others.iter().all(|o| !same_hmac_key(o, &secret)) {
            let auth = endpoint(Scheme::Mlflow, &others);
            let request = mlflow_request(signature.as_bytes(), id.as_bytes(), ts.as_bytes());
            prop_assert_eq!(
                verify(&auth, &request, &body, timestamp).err(),
                Some(Rejection::BadSignature)
            );
        }
    }

    #[test]
    fn mlflow_garbage_signature_header_is_refused_with_its_reason(
        body in body(),
        secret in secret(),
        id in delivery_id(),
        timestamp in 1_500_000_000i64..2_100_000_000,
        garbage in prop_oneof![
            // `v1,` and anything without whitespace (one entry): valid base64 of 32 bytes is a
            // wrong tag, the rest is malformed.
            vec(header_byte().prop_filter("one entry", |b| *b != b' ' && *b != b'\t'), 0..80)
                .prop_map(Garbage::V1),
            // `v1,` and a random 32-byte tag: well formed, wrong.
            any::<[u8; 32]>().prop_map(|tag| Garbage::V1(STANDARD.encode(tag).into_bytes())),
            // The right tag with one character replaced.
            (0usize..44, header_byte()).prop_map(|(at, byte)| Garbage::EditedTag(at, byte)),
            // The right tag under another version token.
            "[A-Za-z0-9]{1,4}".prop_map(Garbage::Version),
            // No comma anywhere, something besides whitespace.
            vec(header_byte().prop_filter("no comma", |b| *b != b','), 1..100)
                .prop_filter("not blank", |v| !v.trim_ascii().is_empty())
                .prop_map(Garbage::NoComma),
            // A skipped version beside a broken `v1`, in either order: the broken one is what
            // is reported.
            (any::<bool>(), "[A-Za-z0-9+/]{0,43}")
                .prop_map(|(first, v1)| Garbage::Mixed(first, v1)),
            // More `v1` signatures than a header may carry, the right one among them.
            (9usize..20, any::<Index>()).prop_map(|(n, at)| Garbage::TooMany(n, at)),
            header_bytes(0..300).prop_map(Garbage::Anything),
            huge_header().prop_map(Garbage::Anything),
        ],
    ) {
        let good = mlflow::sign(secret.as_bytes(), &id, timestamp, &body);
        let tag = &good.as_bytes()[3..];
        let (value, expected): (Vec<u8>, Option<Rejection>) = match garbage {
            Garbage::V1(payload) => {
                let decodes = STANDARD.decode(&payload).is_ok_and(|tag| tag.len() == 32);
                let expected = if payload == tag {
                    None
                } else if decodes {
                    Some(Rejection::BadSignature)
                } else {
                    Some(Rejection::MalformedSignature)
                };
                ([b"v1,".as_slice(), &payload].concat(), expected)
            }
            Garbage::EditedTag(at, byte) => {
                let mut edited = tag.to_vec();
                edited[at] = byte;
                // Whitespace splits the header into two entries: the first is then a short
                // tag, so malformed, like any edit that is not canonical base64.
                let expected = if edited == tag {
                    None
                } else if STANDARD.decode(&edited).is_ok_and(|t| t.len() == 32) {
                    Some(Rejection::BadSignature)
                } else {
                    Some(Rejection::MalformedSignature)
                };
                ([b"v1,".as_slice(), &edited].concat(), expected)
            }
            Garbage::Version(version) => {
                let expected = if version == "v1" {
                    None
                } else {
                    Some(Rejection::UnsupportedSignatureVersion)
                };
                ([version.as_bytes(), b",", tag].concat(), expected)
            }
            Garbage::NoComma(value) => (value, Some(Rejection::MalformedSignature)),
            Garbage::Mixed(first, payload) => {
                let skipped = [b"v2,".as_slice(), tag].concat();
                let broken = format!("v1,{payload}").into_bytes();
                let entries = if first { [skipped, broken] } else { [broken, skipped] };
                (entries.join(&b' '), Some(Rejection::MalformedSignature))
            }
            Garbage::TooMany(n, at) => {
                let wrong = mlflow::sign(b"not the secret", &id, timestamp, &body);
                let mut entries = vec![wrong; n];
                entries[at.index(n)] = good.clone();
                (entries.join(" ").into_bytes(), Some(Rejection::MalformedSignature))
            }
            Garbage::Anything(value) => (value, None),
        };
        let auth = endpoint(Scheme::Mlflow, &[secret]);
        let request = mlflow_request(&value, id.as_bytes(), timestamp.to_string().as_bytes());
        let got = verify(&auth, &request, &body, timestamp).map(|_| ());
        match expected {
            Some(reason) => prop_assert_eq!(got, Err(reason)),
            None if value.trim_ascii() == good.as_bytes() => prop_assert!(got.is_ok()),
            None => prop_assert!(
                matches!(
                    got,
                    Err(Rejection::MalformedSignature
                        | Rejection::UnsupportedSignatureVersion
                        | Rejection::BadSignature)
                ),
                "{:?}",
                got
            ),
        }
    }

    #[test]
    fn mlflow_delivery_id_and_timestamp_headers_of_any_bytes(
        body in body(),
        secret in secret(),
        id in prop_oneof![header_bytes(0..80), delivery_id().prop_map(String::into_bytes)],
        timestamp in prop_oneof![
            header_bytes(0..30),
            "[ \t]?-?[0-9]{1,21}[ \t]?".prop_map(String::into_bytes),
        ],
    ) {
        // What the gateway may use: an id of visible ASCII once trimmed, a timestamp of an
        // optional `-` and digits that fits in an i64. Both are signed as received (trimmed).
        let usable_id = std::str::from_utf8(&id)
            .ok()
            .filter(|s| s.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)))
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let trimmed_ts = timestamp.trim_ascii();
        let digits = trimmed_ts.strip_prefix(b"-").unwrap_or(trimmed_ts);
        let usable_ts = (!digits.is_empty() && digits.iter().all(u8::is_ascii_digit))
            .then(|| std::str::from_utf8(trimmed_ts).unwrap().parse::<i64>().ok())
            .flatten();

        let signature = reference_mlflow_signature(
            &secret,
            usable_id.unwrap_or_default().as_bytes(),
            trimmed_ts,
            &body,
        );
        let auth = endpoint(Scheme::Mlflow, std::slice::from_ref(&secret));
        let request = mlflow_request(signature.as_bytes(), &id, &timestamp);
        let now = usable_ts.unwrap_or(0);
        let got = verify(&auth, &request, &body, now);
        match (usable_id, usable_ts) {
            (None, _) => prop_assert_eq!(got.err(), Some(Rejection::MissingDeliveryId)),
            (Some(_), None) => prop_assert_eq!(got.err(), Some(Rejection::MalformedTimestamp)),
            (Some(id), Some(ts)) => {
                let proof = got.unwrap();
                prop_assert_eq!(proof.delivery_id(), Some(id));
                prop_assert_eq!(proof.sender_timestamp(), Some(ts));
            }
        }

        // Without a secret nothing is judged, and what is usable is still recorded.
        let open = verify(&endpoint(Scheme::Mlflow, &[]), &request, &body, now).unwrap();
        prop_assert_eq!(open.delivery_id(), usable_id);
        prop_assert_eq!(open.sender_timestamp(), usable_ts);
    }

    #[test]
    fn bearer_token_round_trips_and_nothing_else_gets_through(
        token in "[!-~]{1,40}",
        configured_in_full in any::<bool>(),
        scheme in "(?i:bearer)",
        spaces in "[ \t]{1,3}",
        header in prop_oneof![
            header_bytes(0..120),
            "(?i:bearer)[ \t]{0,2}[!-~]{0,40}".prop_map(String::into_bytes),
        ],
    ) {
        // A bare token spelled `Bearer` is a scheme without credentials, refused by design.
        prop_assume!(configured_in_full || !token.eq_ignore_ascii_case("bearer"));
        let configured = if configured_in_full {
            format!("Bearer {token}")
        } else {
            token.clone()
        };
        let auth = EndpointAuth {
            bearer: Some(Secret::new(&configured)),
            ..endpoint(Scheme::Databricks, &[])
        };
        let right = format!("{scheme}{spaces}{token}");
        let request = header_map(&[("authorization", right.as_bytes())]);
        prop_assert!(verify(&auth, &request, b"", 0).is_ok(), "{}", right);

        let request = header_map(&[("authorization", &header)]);
        match verify(&auth, &request, b"", 0) {
            // Only the token itself, after a Bearer scheme, is let through.
            Ok(_) => {
                let presented = header.trim_ascii();
                prop_assert!(presented.ends_with(token.as_bytes()));
                prop_assert!(presented.get(..6).is_some_and(|s| s.eq_ignore_ascii_case(b"bearer")));
            }
            Err(reason) => prop_assert!(
                matches!(reason, Rejection::MissingToken | Rejection::BadToken),
                "{:?}",
                reason
            ),
        }
    }

    #[test]
    fn any_request_is_answered_without_panic(
        body in body(),
        scheme in prop_oneof![Just(Scheme::Databricks), Just(Scheme::Mlflow)],
        secrets in vec(prop_oneof![secret(), Just(String::new())], 0..3),
        bearer in proptest::option::of(prop_oneof![secret(), Just(String::new())]),
        values in vec(proptest::option::of(header_bytes(0..100)), 5),
        now in any::<i64>(),
        tolerance in any::<u64>(),
    ) {
        let names = [
            databricks::SIGNATURE_HEADER,
            mlflow::SIGNATURE_HEADER,
            mlflow::DELIVERY_ID_HEADER,
            mlflow::TIMESTAMP_HEADER,
            "authorization",
        ];
        let mut request = HeaderMap::new();
        for (name, value) in names.iter().zip(&values) {
            if let Some(value) = value {
                request.insert(*name, HeaderValue::from_bytes(value).unwrap());
            }
        }
        let auth = EndpointAuth {
            scheme,
            secrets: secrets.iter().map(Secret::new).collect(),
            bearer: bearer.map(Secret::new),
            tolerance: Duration::from_secs(tolerance),
        };
        let got = verify(&auth, &request, &body, now);
        // Random headers cannot carry a valid signature or token (and an empty secret or token
        // authenticates nothing); an endpoint with neither accepts everything.
        let guarded = !auth.secrets.is_empty() || auth.bearer.is_some();
        prop_assert_eq!(got.is_err(), guarded, "{:?}", got.err());
    }

    #[test]
    fn no_rejection_or_debug_output_shows_a_secret(
        prefix in vec(any::<char>(), 0..20).prop_map(String::from_iter),
        suffix in vec(any::<char>(), 0..20).prop_map(String::from_iter),
        token in "[!-~]{0,10}",
        body in body(),
        presented in "[!-~]{1,30}",
        signature in header_bytes(0..100),
        scheme in prop_oneof![Just(Scheme::Databricks), Just(Scheme::Mlflow)],
    ) {
        // The marker makes a leak recognisable even for a secret that is mostly noise.
        let secret = format!("{prefix}{MARKER}{suffix}");
        let bearer = format!("{token}{MARKER}");
        let auth = EndpointAuth {
            scheme,
            secrets: vec![Secret::new(&secret)],
            bearer: Some(Secret::new(&bearer)),
            tolerance: FIVE_MINUTES,
        };
        let shows = |text: &str| text.contains(MARKER) || text.contains(&secret);
        let shown = format!("{auth:?}");
        prop_assert!(!shows(&shown), "{}", shown);

        let authorization = format!("Bearer {presented}");
        let wrong_token = header_map(&[("authorization", authorization.as_bytes())]);
        let rejection = verify(&auth, &wrong_token, &body, 0).unwrap_err();
        let right = format!("Bearer {bearer}");
        let mut bad_signature = mlflow_request(&signature, b"id", b"0");
        bad_signature.insert(
            databricks::SIGNATURE_HEADER,
            HeaderValue::from_bytes(&signature).unwrap(),
        );
        bad_signature.insert("authorization", HeaderValue::from_str(&right).unwrap());
        let second = verify(&auth, &bad_signature, &body, 0).unwrap_err();
        for rejection in [rejection, second] {
            for text in [rejection.to_string(), format!("{rejection:?}"), rejection.code().into()] {
                prop_assert!(!shows(&text), "{}", text);
            }
        }

        // Nor does the proof of a request that passed.
        let good = match scheme {
            Scheme::Databricks => databricks::sign(secret.as_bytes(), &body),
            Scheme::Mlflow => mlflow::sign(secret.as_bytes(), "id", 0, &body),
        };
        let mut passing = mlflow_request(good.as_bytes(), b"id", b"0");
        passing.insert(databricks::SIGNATURE_HEADER, HeaderValue::from_str(&good).unwrap());
        passing.insert("authorization", HeaderValue::from_str(&right).unwrap());
        let proof = verify(&auth, &passing, &body, 0).unwrap();
        let shown = format!("{proof:?}");
        prop_assert!(!shows(&shown), "{}", shown);
    }
}

/// Appears in no message or name of hookgate's own.
const MARKER: &str = "hgSECRETmark";

/// One kind of bad `X-MLflow-Signature`, built against the right tag inside the property.
#[derive(Debug, Clone)]
enum Garbage {
    /// `v1,` and this payload.
    V1(Vec<u8>),
    /// The right tag with the character at this index replaced by this byte.
    EditedTag(usize, u8),
    /// The right tag under this version token.
    Version(String),
    NoComma(Vec<u8>),
    /// A `v2` entry with the right tag and a `v1` entry with this short payload; whether the
    /// `v2` comes first.
    Mixed(bool, String),
    /// This many wrong `v1` signatures, the right one at the index.
    TooMany(usize, Index),
    Anything(Vec<u8>),
}

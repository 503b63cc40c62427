//! Stage 2, verify: the `Authorization` header check (Databricks `http_url_spec.authorization`).
//!
//! Invariant: the configured credentials are compared in constant time and never appear in an
//! error, a log line or a panic message; a misconfigured (empty) token refuses everything.

use http::HeaderValue;
use subtle::ConstantTimeEq;

use super::Rejection;
use crate::secret::Secret;

/// The auth scheme assumed when the configuration holds a bare token.
const DEFAULT_SCHEME: &[u8] = b"Bearer";

/// Check `Authorization` against the configured value.
///
/// The configuration may hold the whole header value (`Bearer X`, the scheme in any case, which
/// is what Databricks' `authorization` field contains) or the bare token `X`, meaning
/// `Bearer X`. The scheme is compared case-insensitively (RFC 9110 §11.1); the credentials
/// byte for byte, in constant time.
pub fn check(expected: &Secret, header: Option<&HeaderValue>) -> Result<(), Rejection> {
    let Some(header) = header else {
        return Err(Rejection::MissingToken);
    };
    let presented = header.as_bytes().trim_ascii();
    if presented.is_empty() {
        return Err(Rejection::MissingToken);
    }
    let (want_scheme, want_credentials) = split_expected(expected.expose().as_bytes());
    // Fail closed: an empty token (e.g. an unset `${VAR:-}` that slipped through) must not turn
    // `Authorization: Bearer` into a valid credential.
    if want_credentials.is_empty() {
        return Err(Rejection::BadToken);
    }
    let Some((scheme, credentials)) = split_header(presented) else {
        return Err(Rejection::BadToken);
    };
    // Only the length of the token can leak here (subtle's slice comparison returns early on a
    // length mismatch); its bytes are compared in constant time. The scheme is public.
    let credentials_ok: bool = credentials.ct_eq(want_credentials).into();
    if scheme.eq_ignore_ascii_case(want_scheme) && credentials_ok {
        Ok(())
    } else {
        Err(Rejection::BadToken)
    }
}

/// Split the configured value into (scheme, credentials). Bearer tokens (RFC 6750) never
/// contain whitespace, so a value with inner whitespace is a full `<scheme> <credentials>`
/// header value; anything else is a bare token for the `Bearer` scheme.
fn split_expected(configured: &[u8]) -> (&[u8], &[u8]) {
    let configured = configured.trim_ascii();
    if configured.eq_ignore_ascii_case(DEFAULT_SCHEME) {
        // `Bearer` with its token missing (an empty variable after the scheme): no credentials.
        return (DEFAULT_SCHEME, &[]);
    }
    split_header(configured).unwrap_or((DEFAULT_SCHEME, configured))
}

/// Split a trimmed `<scheme> <credentials>` value at its first run of spaces or tabs.
fn split_header(value: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = value.iter().position(|b| *b == b' ' || *b == b'\t')?;
    let (scheme, rest) = value.split_at(at);
    Some((scheme, rest.trim_ascii_start()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn bare_token_config_expects_bearer_scheme() {
        let want = Secret::new("AbcdEfg1294");
        assert_eq!(check(&want, Some(&hv("Bearer AbcdEfg1294"))), Ok(()));
        assert_eq!(check(&want, Some(&hv("bearer AbcdEfg1294"))), Ok(()));
        assert_eq!(check(&want, Some(&hv("BEARER   AbcdEfg1294 "))), Ok(()));
        // The bare token alone is not a valid header value.
        assert_eq!(
            check(&want, Some(&hv("AbcdEfg1294"))),
            Err(Rejection::BadToken)
        );
        assert_eq!(
            check(&want, Some(&hv("Basic AbcdEfg1294"))),
            Err(Rejection::BadToken)
        );
    }

    #[test]
    fn full_header_config_in_any_case() {
        for configured in [
            "Bearer AbcdEfg1294",
            "bearer AbcdEfg1294",
            "BEARER AbcdEfg1294",
        ] {
            let want = Secret::new(configured);
            assert_eq!(check(&want, Some(&hv("Bearer AbcdEfg1294"))), Ok(()));
            assert_eq!(check(&want, Some(&hv("bEaReR AbcdEfg1294"))), Ok(()));
        }
        // Other schemes work when configured in full.
        let basic = Secret::new("Basic dXNlcjpwYXNz");
        assert_eq!(check(&basic, Some(&hv("basic dXNlcjpwYXNz"))), Ok(()));
        assert_eq!(
            check(&basic, Some(&hv("Bearer dXNlcjpwYXNz"))),
            Err(Rejection::BadToken)
        );
    }

    #[test]
    fn missing_wrong_and_garbage() {
        let want = Secret::new("AbcdEfg1294");
        assert_eq!(check(&want, None), Err(Rejection::MissingToken));
        assert_eq!(check(&want, Some(&hv(""))), Err(Rejection::MissingToken));
        assert_eq!(check(&want, Some(&hv("   "))), Err(Rejection::MissingToken));
        assert_eq!(check(&want, Some(&hv("Bearer"))), Err(Rejection::BadToken));
        assert_eq!(check(&want, Some(&hv("Bearer "))), Err(Rejection::BadToken));
        // Token comparison is exact (case-sensitive), and prefixes/extensions do not match.
        for wrong in [
            "Bearer abcdefg1294",
            "Bearer AbcdEfg129",
            "Bearer AbcdEfg12945",
            "Bearer AbcdEfg1294 x",
        ] {
            assert_eq!(
                check(&want, Some(&hv(wrong))),
                Err(Rejection::BadToken),
                "{wrong}"
            );
        }
        let non_ascii = HeaderValue::from_bytes(b"Bearer Abcd\xE9fg1294").unwrap();
        assert_eq!(check(&want, Some(&non_ascii)), Err(Rejection::BadToken));
    }

    #[test]
    fn empty_configured_token_refuses_everything() {
        for configured in ["", "  ", "Bearer", "Bearer  "] {
            let want = Secret::new(configured);
            assert_eq!(check(&want, Some(&hv("Bearer "))), Err(Rejection::BadToken));
            assert_eq!(
                check(&want, Some(&hv("Bearer x"))),
                Err(Rejection::BadToken)
            );
            assert_eq!(
                check(&want, Some(&hv("Bearer Bearer"))),
                Err(Rejection::BadToken)
            );
        }
    }
}

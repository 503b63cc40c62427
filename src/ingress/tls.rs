//! HTTPS on the ingress: the certificate chain and key that `server.tls` names.
//!
//! The files are read when the configuration is compiled: at start, by `hookgate check`, and on
//! every reload, so a renewed certificate is served to new connections without a restart (and a
//! half-written one is refused like any other mistake in the configuration). The running gateway
//! also reads them again every `server.tls.watch` and serves a new pair when their content
//! changed ([`digest`]), so a renewal that nobody signals (a Kubernetes secret updated under a
//! running pod) is picked up too. ALPN offers h2 and HTTP/1.1, the two protocols the ingress
//! speaks.
//!
//! Error messages name the key and what is wrong, never the file's content: a line of a key file
//! is key material.
//!
//! When the chain stops being valid is read too, for the expiry gauge and a warning at start and
//! reload: a certificate that expires is the usual way an HTTPS receiver goes dark.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{ConfigError, TlsFiles};

/// The server side of TLS, as handed to each new connection.
pub type ServerTls = Arc<rustls::ServerConfig>;

/// Warn this long before the chain expires.
pub const EXPIRY_WARNING_SECS: i64 = 14 * 86_400;

/// `server.tls`, loaded.
#[derive(Clone)]
pub struct LoadedTls {
    pub config: ServerTls,
    /// When the first certificate of the chain to expire does, in Unix seconds; `None` if no
    /// certificate's validity could be read (the chain is served all the same: clients judge).
    pub expires_at: Option<i64>,
    /// What the two files held, as [`digest`] sums it up.
    pub digest: [u8; 32],
}

/// By hand: the configuration holds the private key.
impl std::fmt::Debug for LoadedTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedTls")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Read and check the files, and build the TLS configuration the ingress serves.
pub fn load(files: &TlsFiles) -> Result<LoadedTls, Vec<ConfigError>> {
    let (cert_pem, key_pem) = read(files);
    let digest = match (&cert_pem, &key_pem) {
        (Ok(c), Ok(k)) => sum(c, k),
        // Never served: a file that cannot be read is an error below.
        _ => [0; 32],
    };
    let certs = cert_pem.and_then(|pem| parse_certs(&pem));
    let key = key_pem.and_then(|pem| parse_key(&pem));
    let (certs, key) = match (certs, key) {
        (Ok(c), Ok(k)) => (c, k),
        (c, k) => return Err([c.err(), k.err()].into_iter().flatten().collect()),
    };
    let expires_at = certs.iter().filter_map(|c| not_after(c)).min();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| vec![error("tls", format!("no usable TLS versions: {e}"))])?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| vec![key_error(e)])?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(LoadedTls {
        config: Arc::new(config),
        expires_at,
        digest,
    })
}

/// A digest of what the two files hold now: equal to a [`LoadedTls`]'s `digest` when neither
/// changed since it was loaded. Key material goes in, only a SHA-256 comes out.
pub fn digest(files: &TlsFiles) -> std::io::Result<[u8; 32]> {
    Ok(sum(
        &std::fs::read(&files.cert)?,
        &std::fs::read(&files.key)?,
    ))
}

fn sum(cert: &[u8], key: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    // Length first: the boundary between the files is part of what is summed.
    h.update((cert.len() as u64).to_be_bytes());
    h.update(cert);
    h.update(key);
    h.finalize().into()
}

/// The two files' bytes, each with the error that names its key.
fn read(files: &TlsFiles) -> (Result<Vec<u8>, ConfigError>, Result<Vec<u8>, ConfigError>) {
    let read = |path: &Path, key: &str| {
        std::fs::read(path).map_err(|e| error(key, format!("cannot be read: {e}")))
    };
    (read(&files.cert, "tls.cert"), read(&files.key, "tls.key"))
}

/// A certificate's `notAfter`, in Unix seconds.
fn not_after(cert: &CertificateDer<'_>) -> Option<i64> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(cert).ok()?;
    i64::try_from(
        cert.tbs_certificate
            .validity
            .not_after
            .to_unix_duration()
            .as_secs(),
    )
    .ok()
}

/// What to warn about a chain that expires at `expires_at`, seen at `now` (Unix seconds).
pub fn expiry_warning(expires_at: i64, now: i64) -> Option<String> {
    let left = expires_at - now;
    if left <= 0 {
        Some(format!(
            "the server.tls certificate expired {} ago; clients that verify it refuse to connect",
            humantime::format_duration(std::time::Duration::from_secs(left.unsigned_abs()))
        ))
    } else if left < EXPIRY_WARNING_SECS {
        Some(format!(
            "the server.tls certificate expires in {}; renew its files (they are read again)",
            humantime::format_duration(std::time::Duration::from_secs(left as u64))
        ))
    } else {
        None
    }
}

/// One line for `hookgate check`: until when the chain is valid, and the warning if any.
pub fn describe(tls: &LoadedTls, now: i64) -> String {
    let Some(at) = tls.expires_at else {
        return "tls        the certificates' validity could not be read".to_string();
    };
    let until = u64::try_from(at)
        .map(|secs| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .map(|t| humantime::format_rfc3339_seconds(t).to_string())
        .unwrap_or_else(|_| at.to_string());
    match expiry_warning(at, now) {
        Some(warning) => format!("tls        chain valid until {until}: {warning}"),
        None => format!("tls        chain valid until {until}"),
    }
}

fn error(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: format!("server.{key}"),
        message: message.into(),
    }
}

fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error("tls.cert", pem_problem(e, "certificate")))?;
    if certs.is_empty() {
        return Err(error("tls.cert", "the file holds no PEM certificate"));
    }
    Ok(certs)
}

fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, ConfigError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
        // The parser skips sections it does not know, so an encrypted key reads as no key.
        let encrypted = matches!(e, pem::Error::NoItemsFound)
            && pem
                .windows(ENCRYPTED_KEY.len())
                .any(|w| w == ENCRYPTED_KEY.as_bytes());
        if encrypted {
            return error(
                "tls.key",
                "the private key is encrypted, which is not supported: decrypt it \
                 (openssl pkey -in KEY -out KEY.plain) and keep the file readable by the \
                 gateway only",
            );
        }
        error("tls.key", pem_problem(e, "private key"))
    })
}

/// The PEM label of a PKCS#8 key under a passphrase.
const ENCRYPTED_KEY: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";

/// What went wrong reading a PEM file, without quoting it.
fn pem_problem(e: pem::Error, what: &str) -> String {
    match e {
        pem::Error::Io(e) => format!("cannot be read: {e}"),
        pem::Error::NoItemsFound => format!("the file holds no PEM {what}"),
        _ => format!("the file is not valid PEM (expected a {what})"),
    }
}

/// rustls's reasons a certificate and key were refused, in the terms of the file.
fn key_error(e: rustls::Error) -> ConfigError {
    match e {
        rustls::Error::InconsistentKeys(_) => error(
            "tls.key",
            "does not belong to the first certificate in server.tls.cert",
        ),
        rustls::Error::General(_) => error(
            "tls.key",
            "unsupported private key (expected RSA, ECDSA P-256/P-384 or Ed25519)",
        ),
        _ => error(
            "tls.cert",
            "the certificate chain and key cannot be used together",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tls")
            .join(name)
    }

    fn files(cert: &str, key: &str) -> TlsFiles {
        TlsFiles {
            cert: fixture(cert),
            key: fixture(key),
            watch: std::time::Duration::ZERO,
        }
    }

    fn errors(files: &TlsFiles) -> Vec<String> {
        load(files)
            .expect_err("refused")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// `server.pem`'s leaf expires on 2126-11-08 09:01:00 UTC (`openssl x509 -noout -enddate`);
    /// the test CA after it, so the leaf is the chain's first to expire.
    const SERVER_NOT_AFTER: i64 = 4_949_802_060;

    #[test]
    fn a_matching_chain_and_key_load_with_both_protocols_offered() {
        let tls = load(&files("server.pem", "server.key")).expect("loads");
        assert_eq!(
            tls.config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert_eq!(tls.expires_at, Some(SERVER_NOT_AFTER));
        assert_eq!(
            digest(&files("server.pem", "server.key")).unwrap(),
            tls.digest
        );
        assert_ne!(
            digest(&files("server.pem", "other.key")).unwrap(),
            tls.digest
        );
        assert_ne!(
            digest(&files("renewed.pem", "server.key")).unwrap(),
            tls.digest
        );
        let debug = format!("{tls:?}");
        assert_eq!(debug, "LoadedTls { expires_at: Some(4949802060), .. }");
    }

    #[test]
    fn every_key_encoding_and_kind_the_readme_names_loads() {
        // (certificate, key, the key file's PEM label: its encoding)
        for (cert, key, label) in [
            ("server.pem", "server.key", "PRIVATE KEY"),
            ("server.pem", "server-sec1.key", "EC PRIVATE KEY"),
            ("rsa.pem", "rsa.key", "RSA PRIVATE KEY"),
            ("ed25519.pem", "ed25519.key", "PRIVATE KEY"),
        ] {
            let pem = std::fs::read_to_string(fixture(key)).unwrap();
            assert!(
                pem.starts_with(&format!("-----BEGIN {label}-----")),
                "{key}"
            );
            let tls = load(&files(cert, key)).unwrap_or_else(|e| panic!("{key}: {e:?}"));
            assert!(tls.expires_at.is_some(), "{cert}");
        }
    }

    #[test]
    fn check_says_until_when_the_chain_is_valid() {
        let mut tls = load(&files("server.pem", "server.key")).unwrap();
        let now = 1_800_000_000;
        assert_eq!(
            describe(&tls, now),
            "tls        chain valid until 2126-11-08T09:01:00Z"
        );
        let line = describe(&tls, SERVER_NOT_AFTER - 86_400);
        assert!(
            line.ends_with("expires in 1day; renew its files (they are read again)"),
            "{line}"
        );
        tls.expires_at = None;
        assert!(describe(&tls, now).contains("could not be read"));
    }

    #[test]
    fn expiry_is_warned_about_two_weeks_ahead_and_after() {
        let day = 86_400;
        let at = 2_000_000_000;
        assert_eq!(expiry_warning(at, at - 15 * day), None);
        let soon = expiry_warning(at, at - 3 * day).unwrap();
        assert_eq!(
            soon,
            "the server.tls certificate expires in 3days; renew its files (they are read again)"
        );
        let gone = expiry_warning(at, at + 2 * 3600).unwrap();
        assert!(
            gone.starts_with("the server.tls certificate expired 2h ago"),
            "{gone}"
        );
        assert!(expiry_warning(at, at).unwrap().contains("expired"));
    }

    #[test]
    fn every_problem_names_its_key_and_never_the_content() {
        let missing = errors(&files("no-such.pem", "no-such.key"));
        assert_eq!(missing.len(), 2, "{missing:?}");
        assert!(missing[0].starts_with("server.tls.cert: cannot be read"));
        assert!(missing[1].starts_with("server.tls.key: cannot be read"));

        // A key file given as the certificate, and the other way round.
        let swapped = errors(&files("server.key", "server.pem"));
        assert_eq!(
            swapped,
            [
                "server.tls.cert: the file holds no PEM certificate",
                "server.tls.key: the file holds no PEM private key",
            ]
        );

        // An encrypted key is named as such, not as "no key".
        let dir = tempfile::tempdir().unwrap();
        let encrypted = dir.path().join("encrypted.key");
        std::fs::write(
            &encrypted,
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkq\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .unwrap();
        let got = errors(&TlsFiles {
            key: encrypted,
            ..files("server.pem", "server.key")
        });
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with("server.tls.key: the private key is encrypted"),
            "{got:?}"
        );

        let foreign = errors(&files("server.pem", "other.key"));
        assert_eq!(
            foreign,
            ["server.tls.key: does not belong to the first certificate in server.tls.cert"]
        );

        let key = std::fs::read_to_string(fixture("server.key")).unwrap();
        let secret_line = key.lines().nth(1).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let broken = dir.path().join("broken.key");
        std::fs::write(&broken, key.replace("-----END", "-----BEGIN")).unwrap();
        let broken = TlsFiles {
            key: broken,
            ..files("server.pem", "server.key")
        };
        let got = errors(&broken);
        assert_eq!(
            got,
            ["server.tls.key: the file is not valid PEM (expected a private key)"]
        );
        assert!(!got[0].contains(secret_line));
    }
}

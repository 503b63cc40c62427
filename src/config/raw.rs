//! The file's shape as serde types: every key optional where the runtime type has a default, so
//! defaults live in one place (`build.rs`) and a missing key is distinguishable from a default.
//!
//! Also the value types of the file: humantime durations, byte sizes, socket addresses,
//! "one string or a list of strings", and route tag matchers. Their error messages describe the
//! expected form and never repeat the value.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};

use crate::secret::Secret;
use crate::verify::Scheme;

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub listen: Option<Addr>,
    pub admin_listen: Option<Addr>,
    pub max_body: Option<Size>,
    pub shutdown_grace: Option<Dur>,
    pub header_read_timeout: Option<Dur>,
    pub body_read_timeout: Option<Dur>,
    pub max_connections: Option<usize>,
    pub public_url: Option<String>,
    pub tls: Option<RawTls>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub cert: String,
    pub key: String,
    pub watch: Option<Dur>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    /// Not a `Secret` at runtime (agreed type), but may hold a database password.
    pub url: Option<Secret>,
    pub retention: Option<Dur>,
    pub dead_retention: Option<Dur>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub token: Option<Secret>,
}

/// `[retry]`, and a target's `retry` sub-table (where every key overrides the global one).
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetry {
    pub timeout: Option<Dur>,
    pub initial: Option<Dur>,
    pub max_delay: Option<Dur>,
    pub max_attempts: Option<u32>,
    pub max_age: Option<Dur>,
    pub max_retry_after: Option<Dur>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEndpoint {
    pub name: String,
    pub path: String,
    pub scheme: Scheme,
    #[serde(default)]
    pub secrets: OneOrMany<Secret>,
    pub bearer: Option<Secret>,
    pub tolerance: Option<Dur>,
    #[serde(default)]
    pub allow_unauthenticated: bool,
}

/// The keys every target has, split off before the kind-specific keys are deserialized into the
/// kind's struct (serde's `flatten` would defeat that struct's `deny_unknown_fields`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTargetCommon {
    pub kind: KindName,
    pub timeout: Option<Dur>,
    pub concurrency: Option<usize>,
    pub rate: Option<f64>,
    pub retry: Option<RawRetry>,
}

/// Names of the keys of [`RawTargetCommon`].
pub(crate) const TARGET_COMMON_KEYS: &[&str] = &["kind", "timeout", "concurrency", "rate", "retry"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum KindName {
    Slack,
    Github,
    Gitlab,
    Jenkins,
    Http,
    DatabricksJob,
    Log,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub name: Option<String>,
    pub events: Option<OneOrMany<String>>,
    pub models: Option<OneOrMany<String>>,
    pub endpoints: Option<OneOrMany<String>>,
    pub from_stage: Option<OneOrMany<String>>,
    pub to_stage: Option<OneOrMany<String>>,
    pub aliases: Option<OneOrMany<String>>,
    pub tags: Option<Tags>,
    pub to: OneOrMany<String>,
}

// ---------------------------------------------------------------------------------------------
// Value types

/// A humantime duration: `"30s"`, `"7d"`, `"1h 30m"`; at most [`MAX_DURATION`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dur(pub Duration);

/// What a duration looks like. Phrased to follow "expected", as serde's type errors put it.
const DURATION_FORM: &str = r#"a duration such as "30s", "5m", "7d" or "1h 30m""#;

/// The longest duration any key takes. Far beyond any real timeout or retention, and far below
/// where a duration stops fitting the i64 milliseconds the store and the dispatcher compute
/// with (about 292 million years), so no configured value can overflow them.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(100 * 31_557_600);

/// The error for a duration past [`MAX_DURATION`] (humantime's years are 365.25 days).
const TOO_LONG: &str = "must be at most 100 years";

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(DURATION_FORM)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                parse_duration(v).map(Dur).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// Parse a humantime duration of at most [`MAX_DURATION`], with messages that describe the
/// problem without quoting it.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    use humantime::DurationError as E;
    let d = humantime::parse_duration(text.trim()).map_err(|e| match e {
        E::Empty => format!("expected {DURATION_FORM}, found an empty string"),
        E::UnknownUnit { unit, .. } if unit.is_empty() => {
            format!("expected {DURATION_FORM}: a unit is missing")
        }
        E::UnknownUnit { .. } => format!(
            "expected {DURATION_FORM}: unknown unit (use ms, s, m, h, d, w; or seconds, \
             minutes, ...)"
        ),
        E::InvalidCharacter(at) => {
            format!("expected {DURATION_FORM}: invalid character at offset {at}")
        }
        E::NumberExpected(at) => {
            format!("expected {DURATION_FORM}: number expected at offset {at}")
        }
        // humantime's own limit (u64 seconds) is far above ours: the same answer.
        E::NumberOverflow => TOO_LONG.to_string(),
    })?;
    if d > MAX_DURATION {
        return Err(TOO_LONG.into());
    }
    Ok(d)
}

/// A byte size: `"256KiB"`, `"1MB"`, `"1.5 MiB"`, or an integer number of bytes; at most
/// `u64::MAX` bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Size(pub u64);

/// What a size looks like. Phrased to follow "expected", as serde's type errors put it.
const SIZE_FORM: &str = r#"a size such as "256KiB", "1MB" or a number of bytes"#;

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(SIZE_FORM)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v).map(Size).map_err(|_| {
                    E::custom(format!("expected {SIZE_FORM}, found a negative number"))
                })
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Size, E> {
                Err(E::custom(format!(
                    "expected {SIZE_FORM}, found a decimal number ({FRACTION_HINT})"
                )))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                parse_size(v).map(Size).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Why a fraction of a byte is refused, and how to write a fraction that means something.
const FRACTION_HINT: &str = r#"a number of bytes is whole; a fraction needs a unit: "1.5MiB""#;

/// Units of a size, lower case, and their factors: bytesize's spellings (the parser this one
/// replaced), so every file that loaded before still loads.
const SIZE_UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("b", 1),
    ("k", 1_000),
    ("kb", 1_000),
    ("m", 1_000_000),
    ("mb", 1_000_000),
    ("g", 1_000_000_000),
    ("gb", 1_000_000_000),
    ("t", 1_000_000_000_000),
    ("tb", 1_000_000_000_000),
    ("p", 1_000_000_000_000_000),
    ("pb", 1_000_000_000_000_000),
    ("e", 1_000_000_000_000_000_000),
    ("eb", 1_000_000_000_000_000_000),
    ("ki", 1 << 10),
    ("kib", 1 << 10),
    ("mi", 1 << 20),
    ("mib", 1 << 20),
    ("gi", 1 << 30),
    ("gib", 1 << 30),
    ("ti", 1 << 40),
    ("tib", 1 << 40),
    ("pi", 1 << 50),
    ("pib", 1 << 50),
    ("ei", 1 << 60),
    ("eib", 1 << 60),
];

/// Parse a size: a number (digits, optionally with a fraction), optional spaces, an optional
/// unit. Done here rather than by bytesize, whose parser quotes the input in its errors and
/// saturates at `u64::MAX` instead of reporting a size too large (`"16EiB"`).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    if number.is_empty() || !number.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("expected {SIZE_FORM}"));
    }
    let unit = unit.trim_start().to_ascii_lowercase();
    let Some(&(_, factor)) = SIZE_UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(format!(
            "expected {SIZE_FORM} (units: B, KB, KiB, MB, MiB, GB, GiB)"
        ));
    };
    let too_large = || "too large: a size is at most 16 EiB less one byte".to_string();
    match number.split_once('.') {
        None => number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(factor))
            .ok_or_else(too_large),
        Some((_, fraction)) if fraction.contains('.') || fraction.is_empty() => {
            Err(format!("expected {SIZE_FORM}"))
        }
        Some(_) if factor == 1 => Err(format!("expected {SIZE_FORM} ({FRACTION_HINT})")),
        Some(_) => {
            let bytes = number
                .parse::<f64>()
                .map_err(|_| format!("expected {SIZE_FORM}"))?
                * factor as f64;
            // 2^64 is the first f64 past u64::MAX; the cast below would saturate at it.
            if bytes >= 18_446_744_073_709_551_616.0 {
                return Err(too_large());
            }
            Ok(bytes as u64)
        }
    }
}

/// A socket address: `"127.0.0.1:8080"`, `"[::]:8080"`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Addr(pub SocketAddr);

impl<'de> Deserialize<'de> for Addr {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Addr;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a socket address")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Addr, E> {
                v.trim().parse().map(Addr).map_err(|_| {
                    E::custom(
                        r#"expected a socket address such as "127.0.0.1:8080", "0.0.0.0:8080" or "[::]:8080" (an IP address, not a host name, and a port)"#,
                    )
                })
            }
        }
        d.deserialize_str(V)
    }
}

/// One value or a list of them (`aliases = "champion"` or `aliases = ["champion", "challenger"]`).
pub(crate) struct OneOrMany<T>(pub Vec<T>);

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        OneOrMany(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                let one = T::deserialize(de::value::StrDeserializer::<E>::new(v))?;
                Ok(OneOrMany(vec![one]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(OneOrMany(items))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A route's tag matchers: `["validated"]` (key present, any value), or
/// `{ validated = "true", owner = "*" }` (`"*"` is any value).
pub(crate) struct Tags(pub Vec<(String, Option<String>)>);

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tags;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of tag keys or a table of key = \"value\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Tags, E> {
                Ok(Tags(vec![(v.to_string(), None)]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tags, A::Error> {
                let mut tags = Vec::new();
                while let Some(key) = seq.next_element::<String>()? {
                    tags.push((key, None));
                }
                Ok(Tags(tags))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tags, A::Error> {
                let mut tags = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, String>()? {
                    let value = (value != "*").then_some(value);
                    tags.push((key, value));
                }
                Ok(Tags(tags))
            }
        }
        d.deserialize_any(V)
    }
}

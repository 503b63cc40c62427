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

/// A humantime duration: `"30s"`, `"7d"`, `"1h 30m"`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dur(pub Duration);

const DURATION_FORM: &str = r#"expected a duration such as "30s", "5m", "7d" or "1h 30m""#;

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

/// Parse a humantime duration, with messages that describe the problem without quoting it.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    use humantime::DurationError as E;
    humantime::parse_duration(text.trim()).map_err(|e| match e {
        E::Empty => format!("{DURATION_FORM}, found an empty string"),
        E::UnknownUnit { unit, .. } if unit.is_empty() => {
            format!("{DURATION_FORM}: a unit is missing")
        }
        E::UnknownUnit { .. } => format!(
            "{DURATION_FORM}: unknown unit (use ms, s, m, h, d, w; or seconds, minutes, ...)"
        ),
        E::InvalidCharacter(at) => format!("{DURATION_FORM}: invalid character at offset {at}"),
        E::NumberExpected(at) => format!("{DURATION_FORM}: number expected at offset {at}"),
        E::NumberOverflow => format!("{DURATION_FORM}: the number is too large"),
    })
}

/// A byte size: `"256KiB"`, `"1MB"`, or an integer number of bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Size(pub u64);

const SIZE_FORM: &str = r#"expected a size such as "256KiB", "1MB" or a number of bytes"#;

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
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom(format!("{SIZE_FORM}, found a negative number")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                let v = v.trim();
                // bytesize's own error quotes the input; ours does not.
                if v.is_empty() || !v.starts_with(|c: char| c.is_ascii_digit()) {
                    return Err(E::custom(SIZE_FORM));
                }
                v.parse::<bytesize::ByteSize>()
                    .map(|b| Size(b.as_u64()))
                    .map_err(|_| {
                        E::custom(format!("{SIZE_FORM} (units: B, KB, KiB, MB, MiB, GB, GiB)"))
                    })
            }
        }
        d.deserialize_any(V)
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

//! A serde `Deserializer` over the [`Node`] tree that knows where it is.
//!
//! Why not deserialize straight from TOML or figment: every error must name its key path
//! (`endpoints[1].scheme`, `routes[0].to`) including list indices, no error may echo a value
//! (serde's stock messages quote the offending string, which may be a token), and values that
//! arrive as strings (from environment variables or `${VAR}`) must still fill numbers and
//! booleans: `HOOKGATE_RETRY__MAX_ATTEMPTS=3` is the number 3. So scalars convert on demand to
//! the type the field asks for — strings to numbers/booleans, numbers/booleans to strings — and
//! an override value written `[a, b]` fills a list.

use std::fmt;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Expected, IntoDeserializer, MapAccess, SeqAccess,
    Unexpected, Visitor,
};

use super::ConfigError;
use super::tree::{Node, Text, child_path, env_list_items, index_path};

/// A deserialization error on its way up to the node it is about.
#[derive(Debug)]
pub(crate) struct DeError {
    /// Set by the innermost node deserializer the error passes through.
    path: Option<String>,
    /// A key of the table being deserialized (unknown, missing or duplicate key).
    key: Option<String>,
    kind: ErrKind,
    /// The override variable that introduced the key, if any.
    env_hint: Option<String>,
}

#[derive(Debug)]
enum ErrKind {
    Message(String),
    MissingKey,
    UnknownKey(Vec<&'static str>),
    /// The value was poisoned by a failed interpolation, which is already reported.
    Suppressed,
}

impl DeError {
    fn new(kind: ErrKind) -> Self {
        DeError {
            path: None,
            key: None,
            kind,
            env_hint: None,
        }
    }

    fn message(message: impl Into<String>) -> Self {
        DeError::new(ErrKind::Message(message.into()))
    }

    /// Attach the path of the node this error passed through, unless a deeper node already did.
    fn at(mut self, path: &str) -> Self {
        if self.path.is_none() {
            self.path = Some(match self.key.take() {
                Some(key) => child_path(path, &key),
                None => path.to_string(),
            });
        }
        self
    }

    /// Add keys to the "expected one of" list of an unknown-key error (the common target keys
    /// split off before the kind-specific part is deserialized).
    pub(crate) fn also_expected(mut self, keys: &[&'static str]) -> Self {
        if let ErrKind::UnknownKey(expected) = &mut self.kind {
            expected.extend_from_slice(keys);
        }
        self
    }

    /// The key path this error is about (set once it has passed through a node).
    pub(crate) fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    pub(crate) fn is_missing_key(&self) -> bool {
        matches!(self.kind, ErrKind::MissingKey)
    }

    /// The user-facing error; `None` for errors already reported elsewhere.
    pub(crate) fn into_config_error(self) -> Option<ConfigError> {
        let mut message = match self.kind {
            ErrKind::Suppressed => return None,
            ErrKind::Message(m) => m,
            ErrKind::MissingKey => "missing required key".to_string(),
            ErrKind::UnknownKey(expected) if expected.is_empty() => {
                "unknown key, no keys are allowed here".to_string()
            }
            ErrKind::UnknownKey(expected) => {
                format!("unknown key, expected one of {}", expected.join(", "))
            }
        };
        if let Some(var) = self.env_hint {
            message.push_str(&format!(" (set by environment variable {var})"));
        }
        Some(ConfigError {
            path: self.path.unwrap_or_default(),
            message,
        })
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrKind::Message(m) => f.write_str(m),
            ErrKind::MissingKey => f.write_str("missing required key"),
            ErrKind::UnknownKey(_) => f.write_str("unknown key"),
            ErrKind::Suppressed => f.write_str("invalid value"),
        }
    }
}

impl std::error::Error for DeError {}

/// What a value was, without the value itself.
fn describe(unexpected: &Unexpected) -> &'static str {
    match unexpected {
        Unexpected::Bool(_) => "a boolean",
        Unexpected::Unsigned(_) | Unexpected::Signed(_) => "an integer",
        Unexpected::Float(_) => "a number",
        Unexpected::Char(_) | Unexpected::Str(_) => "a string",
        Unexpected::Bytes(_) => "bytes",
        Unexpected::Unit | Unexpected::Option => "nothing",
        Unexpected::NewtypeStruct | Unexpected::NewtypeVariant => "a value",
        Unexpected::Seq => "a list",
        Unexpected::Map => "a table",
        Unexpected::Enum | Unexpected::UnitVariant => "a value",
        Unexpected::TupleVariant | Unexpected::StructVariant => "a table",
        Unexpected::Other(_) => "a value",
    }
}

/// serde's names for expected types, in the words of a TOML file.
fn expected_words(expected: &dyn Expected) -> String {
    let text = expected.to_string();
    match text.as_str() {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative integer".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer".into(),
        "f32" | "f64" => "a number".into(),
        "a sequence" => "a list".into(),
        "a map" => "a table".into(),
        _ if text.starts_with("struct ") => "a table".into(),
        _ if text.starts_with("a sequence") => "a list".into(),
        _ => text,
    }
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::message(msg.to_string())
    }

    fn invalid_type(unexpected: Unexpected, expected: &dyn Expected) -> Self {
        DeError::message(format!(
            "expected {}, found {}",
            expected_words(expected),
            describe(&unexpected)
        ))
    }

    fn invalid_value(unexpected: Unexpected, expected: &dyn Expected) -> Self {
        DeError::message(format!(
            "invalid value ({}), expected {}",
            describe(&unexpected),
            expected_words(expected)
        ))
    }

    fn invalid_length(len: usize, expected: &dyn Expected) -> Self {
        DeError::message(format!(
            "{len} entries, expected {}",
            expected_words(expected)
        ))
    }

    fn unknown_variant(_variant: &str, expected: &'static [&'static str]) -> Self {
        // The value is not repeated: it may have come from a secret-bearing variable.
        DeError::message(format!(
            "unknown value, expected one of {}",
            expected.join(", ")
        ))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError {
            key: Some(field.to_string()),
            ..DeError::new(ErrKind::UnknownKey(expected.to_vec()))
        }
    }

    fn missing_field(field: &'static str) -> Self {
        DeError {
            key: Some(field.to_string()),
            ..DeError::new(ErrKind::MissingKey)
        }
    }

    fn duplicate_field(field: &'static str) -> Self {
        DeError {
            key: Some(field.to_string()),
            ..DeError::message("duplicate key")
        }
    }
}

/// Deserialize `T` from `node`, naming `path` in errors.
pub(crate) fn from_node<T: DeserializeOwned>(node: &Node, path: &str) -> Result<T, DeError> {
    T::deserialize(NodeDe { node, path })
}

/// The deserializer for one node.
pub(crate) struct NodeDe<'de, 'p> {
    node: &'de Node,
    path: &'p str,
}

impl<'de, 'p> NodeDe<'de, 'p> {
    fn text(&self) -> Option<&'de Text> {
        match self.node {
            Node::Str(t) => Some(t),
            _ => None,
        }
    }

    /// An override value written as a list (`[a, b]`), parsed on demand: only where a list is
    /// acceptable, so `[x]` stays a plain string for a string key.
    fn env_list(&self) -> Option<Vec<String>> {
        let t = self.text()?;
        t.env.as_ref()?;
        env_list_items(&t.value)
    }

    fn any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if let Some(items) = self.env_list() {
            return visitor.visit_seq(SeqDe::owned(items, self.path));
        }
        match self.node {
            Node::Str(t) => visitor.visit_borrowed_str(&t.value),
            Node::Int(i) => visitor.visit_i64(*i),
            Node::Float(f) => visitor.visit_f64(*f),
            Node::Bool(b) => visitor.visit_bool(*b),
            Node::Array(items) => visitor.visit_seq(SeqDe::borrowed(items, self.path)),
            Node::Table(entries) => visitor.visit_map(MapDe {
                entries,
                index: 0,
                path: self.path,
            }),
        }
    }

    fn integer<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.text() {
            Some(t) => {
                let s = t.value.trim();
                if let Ok(i) = s.parse::<i64>() {
                    visitor.visit_i64(i)
                } else if let Ok(u) = s.parse::<u64>() {
                    visitor.visit_u64(u)
                } else {
                    Err(DeError::message(format!(
                        "expected {}, found a string that is not one",
                        expected_words(&visitor)
                    )))
                }
            }
            None => self.any(visitor),
        }
    }

    fn float<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.text() {
            Some(t) => match t.value.trim().parse::<f64>() {
                Ok(f) => visitor.visit_f64(f),
                Err(_) => Err(DeError::message(
                    "expected a number, found a string that is not one",
                )),
            },
            None => self.any(visitor),
        }
    }

    fn boolean<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.text() {
            Some(t) => match t.value.trim().to_ascii_lowercase().as_str() {
                "true" => visitor.visit_bool(true),
                "false" => visitor.visit_bool(false),
                _ => Err(DeError::message(
                    "expected a boolean (true or false), found a string",
                )),
            },
            None => self.any(visitor),
        }
    }

    fn string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node {
            // Directly, not through `any`: a string key keeps an override like `[x]` as text.
            Node::Str(t) => visitor.visit_borrowed_str(&t.value),
            Node::Int(i) => visitor.visit_string(i.to_string()),
            Node::Float(f) => visitor.visit_string(f.to_string()),
            Node::Bool(b) => visitor.visit_string(b.to_string()),
            _ => self.any(visitor),
        }
    }

    fn enumeration<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.text() {
            Some(t) => visitor.visit_enum(t.value.as_str().into_deserializer()),
            None => Err(DeError::message(format!(
                "expected a string, found {}",
                self.node.describe()
            ))),
        }
    }
}

/// Every entry point: refuse poisoned values, run the typed conversion, attach the path.
macro_rules! entry {
    ($($method:ident => $inner:ident),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
                if matches!(self.node, Node::Str(t) if t.poisoned) {
                    return Err(DeError::new(ErrKind::Suppressed));
                }
                let path = self.path;
                self.$inner(visitor).map_err(|e: DeError| e.at(path))
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for NodeDe<'de, '_> {
    type Error = DeError;

    entry! {
        deserialize_any => any,
        deserialize_bool => boolean,
        deserialize_i8 => integer,
        deserialize_i16 => integer,
        deserialize_i32 => integer,
        deserialize_i64 => integer,
        deserialize_i128 => integer,
        deserialize_u8 => integer,
        deserialize_u16 => integer,
        deserialize_u32 => integer,
        deserialize_u64 => integer,
        deserialize_u128 => integer,
        deserialize_f32 => float,
        deserialize_f64 => float,
        deserialize_char => string,
        deserialize_str => string,
        deserialize_string => string,
        deserialize_identifier => string,
        deserialize_bytes => any,
        deserialize_byte_buf => any,
        deserialize_unit => any,
        deserialize_seq => any,
        deserialize_map => any,
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // A key that is present always has a value; absence is handled by serde's defaults.
        if matches!(self.node, Node::Str(t) if t.poisoned) {
            return Err(DeError::new(ErrKind::Suppressed));
        }
        let path = self.path;
        visitor.visit_some(self).map_err(|e: DeError| e.at(path))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let path = self.path;
        visitor
            .visit_newtype_struct(self)
            .map_err(|e: DeError| e.at(path))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if matches!(self.node, Node::Str(t) if t.poisoned) {
            return Err(DeError::new(ErrKind::Suppressed));
        }
        let path = self.path;
        self.enumeration(visitor).map_err(|e: DeError| e.at(path))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

/// List access; items are borrowed from the tree, or owned when parsed from an override value.
struct SeqDe<'de, 'p> {
    items: SeqItems<'de>,
    index: usize,
    path: &'p str,
}

enum SeqItems<'a> {
    Borrowed(&'a [Node]),
    Owned(Vec<String>),
}

impl<'de, 'p> SeqDe<'de, 'p> {
    fn borrowed(items: &'de [Node], path: &'p str) -> Self {
        SeqDe {
            items: SeqItems::Borrowed(items),
            index: 0,
            path,
        }
    }

    fn owned(items: Vec<String>, path: &'p str) -> Self {
        SeqDe {
            items: SeqItems::Owned(items),
            index: 0,
            path,
        }
    }

    fn len(&self) -> usize {
        match &self.items {
            SeqItems::Borrowed(items) => items.len(),
            SeqItems::Owned(items) => items.len(),
        }
    }
}

impl<'de> SeqAccess<'de> for SeqDe<'de, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        if self.index >= self.len() {
            return Ok(None);
        }
        let index = self.index;
        self.index += 1;
        let path = index_path(self.path, index);
        match &self.items {
            SeqItems::Borrowed(items) => seed
                .deserialize(NodeDe {
                    node: &items[index],
                    path: &path,
                })
                .map(Some),
            SeqItems::Owned(items) => seed
                .deserialize(EnvItemDe {
                    value: items[index].clone(),
                    path: &path,
                })
                .map(Some),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.len() - self.index)
    }
}

/// One item of a list given in an override value: an owned string (it cannot borrow from the
/// tree), converted on demand like any other override value.
struct EnvItemDe<'p> {
    value: String,
    path: &'p str,
}

impl EnvItemDe<'_> {
    fn parsed<T: std::str::FromStr>(&self, what: &str) -> Result<T, DeError> {
        self.value.trim().parse().map_err(|_| {
            DeError::message(format!("expected {what}, found a string that is not one"))
                .at(self.path)
        })
    }
}

impl<'de> de::Deserializer<'de> for EnvItemDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let path = self.path;
        visitor
            .visit_string(self.value)
            .map_err(|e: DeError| e.at(path))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let b = self.parsed::<bool>("a boolean (true or false)")?;
        visitor.visit_bool(b).map_err(|e: DeError| e.at(self.path))
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let i = self.parsed::<i64>("an integer")?;
        visitor.visit_i64(i).map_err(|e: DeError| e.at(self.path))
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let u = self.parsed::<u64>("a non-negative integer")?;
        visitor.visit_u64(u).map_err(|e: DeError| e.at(self.path))
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let f = self.parsed::<f64>("a number")?;
        visitor.visit_f64(f).map_err(|e: DeError| e.at(self.path))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let path = self.path;
        visitor.visit_some(self).map_err(|e: DeError| e.at(path))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let path = self.path;
        visitor
            .visit_enum(self.value.into_deserializer())
            .map_err(|e: DeError| e.at(path))
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i128 u8 u16 u32 u128 f32 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

/// Table access; keys are deserialized as plain strings so serde's field matching (and
/// `deny_unknown_fields`) applies, and unknown-key errors pick up the table's path.
struct MapDe<'de, 'p> {
    entries: &'de [(String, Node)],
    index: usize,
    path: &'p str,
}

impl<'de> MapAccess<'de> for MapDe<'de, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.entries.get(self.index) else {
            return Ok(None);
        };
        seed.deserialize(BorrowedStrDeserializer::<DeError>::new(key))
            .map(Some)
            .map_err(|mut e| {
                // Point at the variable when an override invented this key (a typo in a
                // deployment manifest is easier to find that way).
                if e.key.is_some() {
                    e.env_hint = value.env_origin().map(str::to_string);
                }
                e
            })
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (key, value) = &self.entries[self.index];
        self.index += 1;
        let path = child_path(self.path, key);
        seed.deserialize(NodeDe {
            node: value,
            path: &path,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len() - self.index)
    }
}

/// The keys a derived struct accepts (its `FIELDS`), found by asking it to deserialize from a
/// probe that records them. Used to list the override variables that can exist when the
/// environment cannot be enumerated, so the list never drifts from the structs.
pub(crate) fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Probe;
    #[derive(Debug)]
    struct Found(Option<&'static [&'static str]>);
    impl fmt::Display for Found {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("probe")
        }
    }
    impl std::error::Error for Found {}
    impl de::Error for Found {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Found(None)
        }
    }
    impl<'de> de::Deserializer<'de> for Probe {
        type Error = Found;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Found> {
            Err(Found(None))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Found> {
            Err(Found(Some(fields)))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    match T::deserialize(Probe) {
        Err(Found(Some(fields))) => fields,
        _ => &[],
    }
}

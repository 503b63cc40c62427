//! The untyped configuration tree: `routes.toml` parsed into [`Node`]s, with the
//! `HOOKGATE_<SECTION>__<KEY>` environment overrides merged in.
//!
//! Everything between the raw text and the typed [`super::Config`] happens on this tree, because
//! it is the one place where every value still knows its key path: overrides, `${VAR}`
//! interpolation and deserialization errors all name the path they are about. Values are never
//! formatted into messages (they may be secrets); only paths and variable names are.
//!
//! figment parses the TOML, but the overrides are merged here rather than by figment's `Env`
//! provider: that provider reads the process environment only, while tests (and `load_with`)
//! inject the environment, and a lookup-only environment needs the probing done here.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{MapAccess, SeqAccess, Visitor};

use super::ConfigError;

/// Prefix of every override variable (`HOOKGATE_SERVER__LISTEN`).
pub(crate) const ENV_PREFIX: &str = "HOOKGATE_";
/// Separator between key segments in an override variable name.
pub(crate) const ENV_SEPARATOR: &str = "__";

/// One value of the configuration tree.
///
/// Deliberately not `Debug`: a node may hold a secret.
#[derive(Clone)]
pub(crate) enum Node {
    Str(Text),
    Int(i64),
    Float(f64),
    Bool(bool),
    Array(Vec<Node>),
    /// Keys in file order, so errors are reported in the order a reader sees them.
    Table(Vec<(String, Node)>),
}

/// A string value and where it came from.
#[derive(Clone)]
pub(crate) struct Text {
    pub value: String,
    /// The override variable that set this value, if any (for hints in error messages).
    pub env: Option<String>,
    /// Interpolation of this value failed and was already reported; whoever reads it fails
    /// silently so that one missing variable gives one error, not a cascade.
    pub poisoned: bool,
}

impl Node {
    pub(crate) fn str(value: impl Into<String>) -> Node {
        Node::Str(Text {
            value: value.into(),
            env: None,
            poisoned: false,
        })
    }

    /// The entry `key` of a table node.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Table(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string value of a (non-poisoned) string node.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Node::Str(t) if !t.poisoned => Some(&t.value),
            _ => None,
        }
    }

    /// What kind of value this is, for "expected X, found Y" messages.
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            Node::Str(_) => "a string",
            Node::Int(_) => "an integer",
            Node::Float(_) => "a number",
            Node::Bool(_) => "a boolean",
            Node::Array(_) => "a list",
            Node::Table(_) => "a table",
        }
    }

    /// If every leaf below this node was set by one override variable, that variable: used to
    /// point at the environment when a key that is not in the file turns out to be unknown.
    pub(crate) fn env_origin(&self) -> Option<&str> {
        match self {
            Node::Str(t) => t.env.as_deref(),
            Node::Table(entries) => {
                let mut origins = entries.iter().map(|(_, v)| v.env_origin());
                let first = origins.next()??;
                origins.all(|o| o == Some(first)).then_some(first)
            }
            Node::Array(items) => {
                let mut origins = items.iter().map(Node::env_origin);
                let first = origins.next()??;
                origins.all(|o| o == Some(first)).then_some(first)
            }
            _ => None,
        }
    }
}

/// Key path of `key` inside the table at `parent` (`targets` + `ml-slack` → `targets.ml-slack`).
///
/// Keys that are not plain identifiers are quoted, as TOML would, so the path stays readable.
pub(crate) fn child_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if plain {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    }
}

/// Key path of entry `index` of the list at `parent` (`routes[2]`).
pub(crate) fn index_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

// ---------------------------------------------------------------------------------------------
// TOML → Node

/// Parse TOML text into a tree. The error message keeps the line, column and description, but not
/// the source excerpt the TOML parser adds: that excerpt may be a line holding a secret.
pub(crate) fn parse_toml(text: &str) -> Result<Node, String> {
    use figment::providers::{Format, Toml};
    Toml::from_str::<Node>(text).map_err(|e| sanitize_toml_error(&e.to_string()))
}

fn sanitize_toml_error(message: &str) -> String {
    // toml's format: "TOML parse error at line L, column C\n  |\nL | <source>\n  | ^\n<what>\n".
    let mut lines = message.lines();
    let head = lines.next().unwrap_or("invalid TOML").trim();
    let what: Vec<&str> = lines
        .filter(|l| !l.trim_start().starts_with('|') && !l.contains(" | ") && !l.trim().is_empty())
        .map(str::trim)
        .collect();
    if what.is_empty() {
        format!("invalid TOML: {head}")
    } else {
        format!("invalid TOML: {head}: {}", what.join("; "))
    }
}

/// How the `toml` crate hands over date-time values through serde.
const TOML_DATETIME_KEY: &str = "$__toml_private_datetime";

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a TOML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Node, E> {
        i64::try_from(v)
            .map(Node::Int)
            .map_err(|_| E::custom("integer too large"))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::str(v))
    }

    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries: Vec<(String, Node)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == TOML_DATETIME_KEY {
                // A TOML date-time literal: no key takes one, so keep its text and let the
                // typed layer reject it with a key path ("expected a duration ...").
                let text: String = map.next_value()?;
                return Ok(Node::str(text));
            }
            let value: Node = map.next_value()?;
            entries.push((key, value));
        }
        Ok(Node::Table(entries))
    }
}

// ---------------------------------------------------------------------------------------------
// Environment overrides

/// One `HOOKGATE_A__B__C=value` variable, split into key segments.
pub(crate) struct Override {
    pub var: String,
    pub segments: Vec<String>,
    pub value: String,
}

/// Interpret an environment variable as an override. `None` when it is not one: only names with
/// a `__` after the prefix are, so `HOOKGATE_CONFIG`, `HOOKGATE_LOG` or `HOOKGATE_ADMIN_TOKEN`
/// (read by `${HOOKGATE_ADMIN_TOKEN}` interpolation) are left alone.
pub(crate) fn parse_override(var: &str, value: &str) -> Option<Result<Override, ConfigError>> {
    let rest = var.strip_prefix(ENV_PREFIX)?;
    if !rest.contains(ENV_SEPARATOR) {
        return None;
    }
    let segments: Vec<String> = rest
        .split(ENV_SEPARATOR)
        .map(str::to_ascii_lowercase)
        .collect();
    if segments.iter().any(String::is_empty) {
        return Some(Err(ConfigError {
            path: var.to_string(),
            message: format!(
                "environment variable {var} has an empty key segment \
                 (expected HOOKGATE_<SECTION>__<KEY>)"
            ),
        }));
    }
    Some(Ok(Override {
        var: var.to_string(),
        segments,
        value: value.to_string(),
    }))
}

/// How a key segment from a variable name is compared with a key of the file: variable names
/// are conventionally upper case and cannot portably contain `-` or `.`, so
/// `HOOKGATE_TARGETS__ML_SLACK__URL` reaches `[targets.ml-slack]`.
fn normalize_key(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Merge one override into the tree, creating tables on the way as needed. A numeric segment
/// indexes into a list (`HOOKGATE_ENDPOINTS__0__BEARER`).
pub(crate) fn apply_override(root: &mut Node, ov: &Override) -> Result<(), ConfigError> {
    let mut node = root;
    let mut path = String::new();
    for segment in &ov.segments {
        node = match node {
            Node::Table(entries) => {
                let position = entries.iter().position(|(k, _)| k == segment).or_else(|| {
                    let wanted = normalize_key(segment);
                    entries.iter().position(|(k, _)| normalize_key(k) == wanted)
                });
                let position = match position {
                    Some(p) => p,
                    None => {
                        entries.push((segment.clone(), Node::Table(Vec::new())));
                        entries.len() - 1
                    }
                };
                let (key, value) = &mut entries[position];
                path = child_path(&path, key);
                value
            }
            Node::Array(items) => {
                let len = items.len();
                let Some(item) = segment.parse::<usize>().ok().and_then(|i| items.get_mut(i))
                else {
                    return Err(ConfigError {
                        path: path.clone(),
                        message: format!(
                            "environment variable {} names entry {segment}, but this list \
                             has {len} entries (use a 0-based index)",
                            ov.var
                        ),
                    });
                };
                path = format!("{path}[{segment}]");
                item
            }
            other => {
                return Err(ConfigError {
                    path: path.clone(),
                    message: format!(
                        "environment variable {} sets a key inside this value, but it is {}, \
                         not a table",
                        ov.var,
                        other.describe()
                    ),
                });
            }
        };
    }
    *node = Node::Str(Text {
        value: ov.value.clone(),
        env: Some(ov.var.clone()),
        poisoned: false,
    });
    Ok(())
}

/// Candidate override variable names for a key path, for when the environment can only be asked
/// about one name at a time: the conventional spelling (upper case, `-`/`.` as `_`), then the
/// literal upper-case spelling if it differs.
pub(crate) fn override_names(segments: &[String]) -> Vec<String> {
    let conventional: Vec<String> = segments
        .iter()
        .map(|s| normalize_key(s).to_ascii_uppercase())
        .collect();
    let literal: Vec<String> = segments.iter().map(|s| s.to_ascii_uppercase()).collect();
    let mut names = vec![format!("{ENV_PREFIX}{}", conventional.join(ENV_SEPARATOR))];
    let literal = format!("{ENV_PREFIX}{}", literal.join(ENV_SEPARATOR));
    if literal != names[0] {
        names.push(literal);
    }
    names
}

/// Every leaf key path present in the tree (used to probe overrides of map entries such as
/// `targets.x.headers.Authorization`, which no schema can list).
pub(crate) fn leaf_paths(node: &Node, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match node {
        Node::Table(entries) => {
            for (key, value) in entries {
                prefix.push(key.clone());
                leaf_paths(value, prefix, out);
                prefix.pop();
            }
        }
        Node::Array(items) if items.iter().any(|i| matches!(i, Node::Table(_))) => {
            for (i, item) in items.iter().enumerate() {
                prefix.push(i.to_string());
                leaf_paths(item, prefix, out);
                prefix.pop();
            }
        }
        _ => out.push(prefix.clone()),
    }
}

/// The items of an override value written as a flat list (`[a, "b, c", 007]`), as text exactly
/// as written (a number-looking secret keeps its leading zeros); the typed layer converts each
/// item to what its key needs, as it does for every override value. Items may be double-quoted
/// (with `\` escapes) to contain `,`, `[`, `]` or surrounding spaces. `None` if the value is not
/// such a list; it is then a plain string.
pub(crate) fn env_list_items(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut chars = inner.chars().peekable();
    let mut items = Vec::new();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.peek() {
            None => break,
            Some('"') => {
                chars.next();
                let mut item = String::new();
                loop {
                    match chars.next()? {
                        '\\' => item.push(chars.next()?),
                        '"' => break,
                        c => item.push(c),
                    }
                }
                items.push(item);
            }
            Some(_) => {
                let mut item = String::new();
                while let Some(c) = chars.next_if(|c| *c != ',') {
                    if matches!(c, '[' | ']' | '"') {
                        return None;
                    }
                    item.push(c);
                }
                items.push(item.trim().to_string());
            }
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.next() {
            None => break,
            Some(',') => {}
            Some(_) => return None,
        }
    }
    Some(items)
}

/// A variable lookup: `Some(value)` when the variable is set.
type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// The environment a configuration is read with: a lookup for `${VAR}` and for probing
/// overrides, and, when the environment can be listed, the list of override variables.
pub struct Env<'a> {
    lookup: Lookup<'a>,
    /// `Some` when the environment can be enumerated. Then every `HOOKGATE_*__*` variable is an
    /// override and a misspelt one is an error; otherwise overrides are found by probing the
    /// names of keys that can exist.
    names: Option<Vec<String>>,
}

impl<'a> Env<'a> {
    /// The process environment (enumerable).
    pub fn process() -> Env<'static> {
        let names = std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .filter(|k| k.starts_with(ENV_PREFIX))
            .collect();
        Env {
            lookup: Box::new(|name| std::env::var(name).ok()),
            names: Some(names),
        }
    }

    /// A fixed set of variables (enumerable), e.g. for tests.
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Env<'static>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let vars: BTreeMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let names = vars.keys().cloned().collect();
        Env {
            lookup: Box::new(move |name| vars.get(name).cloned()),
            names: Some(names),
        }
    }

    /// A lookup function only (not enumerable): overrides are found by probing.
    pub fn from_fn(lookup: &'a dyn Fn(&str) -> Option<String>) -> Env<'a> {
        Env {
            lookup: Box::new(lookup),
            names: None,
        }
    }

    pub(crate) fn var(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    pub(crate) fn names(&self) -> Option<&[String]> {
        self.names.as_deref()
    }
}

impl fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: values may be secrets.
        f.debug_struct("Env").field("names", &self.names).finish()
    }
}

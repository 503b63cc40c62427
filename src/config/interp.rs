//! `${VAR}` interpolation of every string value of the tree.
//!
//! Syntax, shell-like: `${VAR}` is the variable's value (an error if it is unset),
//! `${VAR:-default}` is the default when the variable is unset *or empty* (the default may itself
//! contain `${...}`), `$$` is a literal `$`, and a `$` followed by anything else is kept as is, so
//! a value like `pa$word` needs no escaping. Substituted values are not scanned again. Defaults
//! nest at most [`MAX_NESTING`] deep: the expansion recurses once per level, and a string of
//! thousands of `${A:-` must be an error, not a stack overflow.
//!
//! Error messages name the key path and the variable, never a value: values are secrets.

use super::ConfigError;
use super::tree::{Node, child_path, index_path};

/// Why a string could not be interpolated. Carries variable names only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InterpError {
    Missing(String),
    Unterminated,
    BadName,
    Unsupported(String),
    /// A default nested deeper than [`MAX_NESTING`]; the variable whose default it is.
    TooDeep(String),
}

/// Deepest nesting of defaults (`${A:-${B:-...}}`) accepted; real files use one or two levels.
const MAX_NESTING: usize = 32;

impl InterpError {
    fn message(&self) -> String {
        match self {
            InterpError::Missing(var) => format!("environment variable {var} is not set"),
            InterpError::Unterminated => "unterminated `${` (write `$$` for a literal `$`)".into(),
            InterpError::BadName => "invalid variable name in `${...}` (expected letters, digits \
                                     and `_`, not starting with a digit)"
                .into(),
            InterpError::Unsupported(var) => {
                format!("unsupported syntax after `${{{var}`: expected `}}` or `:-default}}`")
            }
            InterpError::TooDeep(var) => {
                format!("defaults nested more than {MAX_NESTING} deep at `${{{var}:-`")
            }
        }
    }
}

/// Interpolate one string.
pub(crate) fn interpolate(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InterpError> {
    let chars: Vec<char> = text.chars().collect();
    let mut pos = 0;
    let mut out = String::with_capacity(text.len());
    expand(&chars, &mut pos, 0, true, lookup, &mut out)?;
    Ok(out)
}

/// Expand from `pos` until the end of input or, inside a default (`depth` > 0), until (and
/// past) the `}` that closes it. With `eval` false the text is only checked (an unused default
/// must still be well formed, but its variables need not exist).
fn expand(
    chars: &[char],
    pos: &mut usize,
    depth: usize,
    eval: bool,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut String,
) -> Result<(), InterpError> {
    let nested = depth > 0;
    while *pos < chars.len() {
        let c = chars[*pos];
        if nested && c == '}' {
            *pos += 1;
            return Ok(());
        }
        if c != '$' {
            out.push(c);
            *pos += 1;
            continue;
        }
        match chars.get(*pos + 1) {
            Some('$') => {
                out.push('$');
                *pos += 2;
            }
            Some('{') => {
                *pos += 2;
                let start = *pos;
                while *pos < chars.len()
                    && (chars[*pos].is_ascii_alphanumeric() || chars[*pos] == '_')
                {
                    *pos += 1;
                }
                let name: String = chars[start..*pos].iter().collect();
                if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                    return Err(if *pos >= chars.len() {
                        InterpError::Unterminated
                    } else {
                        InterpError::BadName
                    });
                }
                match (chars.get(*pos), chars.get(*pos + 1)) {
                    (Some('}'), _) => {
                        *pos += 1;
                        if eval {
                            match lookup(&name) {
                                Some(value) => out.push_str(&value),
                                None => return Err(InterpError::Missing(name)),
                            }
                        }
                    }
                    (Some(':'), Some('-')) => {
                        if depth == MAX_NESTING {
                            return Err(InterpError::TooDeep(name));
                        }
                        *pos += 2;
                        let value = if eval { lookup(&name) } else { None };
                        let use_default = eval && value.as_deref().is_none_or(str::is_empty);
                        let mut default = String::new();
                        expand(chars, pos, depth + 1, use_default, lookup, &mut default)?;
                        if eval {
                            match value {
                                Some(v) if !v.is_empty() => out.push_str(&v),
                                _ => out.push_str(&default),
                            }
                        }
                    }
                    (None, _) => return Err(InterpError::Unterminated),
                    _ => return Err(InterpError::Unsupported(name)),
                }
            }
            _ => {
                out.push('$');
                *pos += 1;
            }
        }
    }
    if nested {
        Err(InterpError::Unterminated)
    } else {
        Ok(())
    }
}

/// Interpolate every string of the tree in place. A string that fails is reported once and
/// poisoned, so whatever reads it later fails without a second, misleading error.
pub(crate) fn interpolate_tree(
    node: &mut Node,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
) {
    match node {
        Node::Str(text) => match interpolate(&text.value, lookup) {
            Ok(value) => text.value = value,
            Err(e) => {
                let mut message = e.message();
                if let Some(var) = &text.env {
                    message.push_str(&format!(" (in environment variable {var})"));
                }
                errors.push(ConfigError {
                    path: path.to_string(),
                    message,
                });
                text.value.clear();
                text.poisoned = true;
            }
        },
        Node::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_tree(item, &index_path(path, i), lookup, errors);
            }
        }
        Node::Table(entries) => {
            for (key, value) in entries.iter_mut() {
                interpolate_tree(value, &child_path(path, key), lookup, errors);
            }
        }
        Node::Int(_) | Node::Float(_) | Node::Bool(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "EMPTY" => Some(String::new()),
            "B_2" => Some("b$two".into()),
            _ => None,
        }
    }

    fn run(s: &str) -> Result<String, InterpError> {
        interpolate(s, &env)
    }

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(run("hello").unwrap(), "hello");
        assert_eq!(run("").unwrap(), "");
        assert_eq!(run("ünïcode ✓").unwrap(), "ünïcode ✓");
    }

    #[test]
    fn variables_are_replaced() {
        assert_eq!(run("${A}").unwrap(), "alpha");
        assert_eq!(run("x-${A}-y").unwrap(), "x-alpha-y");
        assert_eq!(run("${A}${A}").unwrap(), "alphaalpha");
        assert_eq!(run("${EMPTY}").unwrap(), "");
    }

    #[test]
    fn substituted_values_are_not_rescanned() {
        assert_eq!(run("${B_2}").unwrap(), "b$two");
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        assert_eq!(run("${NOPE:-dflt}").unwrap(), "dflt");
        assert_eq!(run("${EMPTY:-dflt}").unwrap(), "dflt");
        assert_eq!(run("${A:-dflt}").unwrap(), "alpha");
        assert_eq!(run("${NOPE:-}").unwrap(), "");
        assert_eq!(run("${NOPE:-a b:c}").unwrap(), "a b:c");
    }

    #[test]
    fn defaults_may_nest() {
        assert_eq!(run("${NOPE:-${A}}").unwrap(), "alpha");
        assert_eq!(run("${NOPE:-${NADA:-x}}y").unwrap(), "xy");
        // An unused default is not evaluated: its missing variable is no error.
        assert_eq!(run("${A:-${MISSING}}").unwrap(), "alpha");
    }

    #[test]
    fn dollar_escapes() {
        assert_eq!(run("$$").unwrap(), "$");
        assert_eq!(run("$${A}").unwrap(), "${A}");
        assert_eq!(run("$$$${A}").unwrap(), "$${A}");
        assert_eq!(run("pa$word").unwrap(), "pa$word");
        assert_eq!(run("cost: 5$").unwrap(), "cost: 5$");
    }

    #[test]
    fn errors() {
        assert_eq!(
            run("${MISSING}"),
            Err(InterpError::Missing("MISSING".into()))
        );
        assert_eq!(run("${A"), Err(InterpError::Unterminated));
        assert_eq!(run("${"), Err(InterpError::Unterminated));
        assert_eq!(run("${NOPE:-x"), Err(InterpError::Unterminated));
        assert_eq!(run("${}"), Err(InterpError::BadName));
        assert_eq!(run("${1A}"), Err(InterpError::BadName));
        assert_eq!(run("${A-x}"), Err(InterpError::Unsupported("A".into())));
        assert_eq!(run("${A:=x}"), Err(InterpError::Unsupported("A".into())));
        // Nesting is bounded: 10 000 levels used to overflow the stack, an abort instead of an
        // error naming the key.
        let nested = |n: usize| format!("{}x{}", "${NOPE:-".repeat(n), "}".repeat(n));
        assert_eq!(run(&nested(MAX_NESTING)).unwrap(), "x");
        assert_eq!(
            run(&nested(MAX_NESTING + 1)),
            Err(InterpError::TooDeep("NOPE".into()))
        );
        assert_eq!(
            run(&nested(100_000)),
            Err(InterpError::TooDeep("NOPE".into()))
        );
        assert!(
            InterpError::TooDeep("NOPE".into())
                .message()
                .contains("nested more than 32 deep at `${NOPE:-`")
        );
        assert!(
            InterpError::Missing("X".into())
                .message()
                .contains("environment variable X is not set")
        );
    }
}

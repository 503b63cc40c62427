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

/// Properties of [`interpolate`] over generated strings and environments.
#[cfg(test)]
mod props {
    use std::collections::HashMap;

    use proptest::collection::{hash_map, vec};
    use proptest::prelude::*;
    use proptest::sample::select;

    use super::*;

    /// Appears in every generated value and in no message of ours, so a value leaking into an
    /// error is seen whatever else it holds.
    const MARKER: &str = "hgSECRETmark";

    fn name() -> impl Strategy<Value = String> {
        "[A-Za-z_][A-Za-z0-9_]{0,8}"
    }

    /// Values are secrets: anything, `$` and braces included, always with the marker.
    fn value() -> impl Strategy<Value = String> {
        any::<String>().prop_map(|s| format!("{s}{MARKER}"))
    }

    fn env() -> impl Strategy<Value = HashMap<String, String>> {
        hash_map(name(), value(), 0..4)
    }

    /// Text without `$`; in a default, also without the `}` that would end it.
    fn plain() -> impl Strategy<Value = String> {
        any::<String>().prop_map(|s| s.replace('$', ""))
    }

    /// Strings made mostly of the syntax's own pieces, in any order: unterminated `${`,
    /// nested defaults, stray braces, escapes, names starting with digits.
    fn syntax_soup() -> impl Strategy<Value = String> {
        const PIECES: &[&str] = &[
            "$", "$$", "${", "}", ":-", ":", "-", "{", "${A", "${A}", "${A:-",
        ];
        let piece = prop_oneof![
            select(PIECES).prop_map(str::to_owned),
            name(),
            "[0-9]{1,2}",
            any::<char>().prop_map(String::from),
        ];
        vec(piece, 0..24).prop_map(|pieces| pieces.concat())
    }

    fn run(text: &str, env: &HashMap<String, String>) -> Result<String, InterpError> {
        interpolate(text, &|var| env.get(var).cloned())
    }

    proptest! {
        #[test]
        fn text_without_dollar_is_unchanged(text in plain(), env in env()) {
            prop_assert_eq!(run(&text, &env), Ok(text));
        }

        #[test]
        fn doubled_dollars_read_back_as_the_text(text in any::<String>(), env in env()) {
            prop_assert_eq!(run(&text.replace('$', "$$"), &env), Ok(text));
        }

        #[test]
        fn a_default_stands_in_for_an_unset_or_empty_variable(
            var in name(),
            default in plain().prop_map(|s| s.replace('}', "")),
            before in plain(),
            after in plain(),
            set in proptest::option::of(prop_oneof![Just(String::new()), value()]),
            mut env in env(),
        ) {
            env.remove(&var);
            if let Some(v) = &set {
                env.insert(var.clone(), v.clone());
            }
            let text = format!("{before}${{{var}:-{default}}}{after}");
            // A value is used as is, never scanned for `${` again.
            let used = match set {
                Some(v) if !v.is_empty() => v,
                _ => default,
            };
            prop_assert_eq!(run(&text, &env), Ok(format!("{before}{used}{after}")));
        }

        #[test]
        fn a_default_is_evaluated_only_when_used(
            outer in name(),
            inner in name(),
            outer_value in proptest::option::of(prop_oneof![Just(String::new()), value()]),
            inner_value in proptest::option::of(value()),
        ) {
            prop_assume!(outer != inner);
            let mut env = HashMap::new();
            env.extend(outer_value.clone().map(|v| (outer.clone(), v)));
            env.extend(inner_value.clone().map(|v| (inner.clone(), v)));
            let got = run(&format!("${{{outer}:-${{{inner}}}}}"), &env);
            let expected = match (outer_value, inner_value) {
                (Some(v), _) if !v.is_empty() => Ok(v),
                (_, Some(v)) => Ok(v),
                // Unset or empty: the default is used, so its variable must exist.
                (_, None) => Err(InterpError::Missing(inner)),
            };
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn nesting_is_bounded_not_a_stack_overflow(depth in 0usize..3_000, env in env()) {
            let text = format!("{}x{}", "${NOPE:-".repeat(depth), "}".repeat(depth));
            let expected = if depth <= MAX_NESTING {
                Ok("x".to_owned())
            } else {
                Err(InterpError::TooDeep("NOPE".into()))
            };
            prop_assume!(!env.contains_key("NOPE"));
            prop_assert_eq!(run(&text, &env), expected);
        }

        #[test]
        fn an_unset_variable_is_an_error_that_names_it(
            var in name(),
            before in plain(),
            env in env(),
        ) {
            prop_assume!(!env.contains_key(&var));
            let got = run(&format!("{before}${{{var}}}"), &env);
            prop_assert_eq!(&got, &Err(InterpError::Missing(var.clone())));
            let message = got.unwrap_err().message();
            prop_assert!(message.contains(&var), "{}", message);
        }

        #[test]
        fn any_text_interpolates_or_fails_without_panic_or_leak(
            text in prop_oneof![syntax_soup(), any::<String>()],
            env in env(),
        ) {
            match run(&text, &env) {
                // Only `$` sequences change: text without one comes back as it was.
                Ok(out) => {
                    if !text.contains('$') {
                        prop_assert_eq!(out, text);
                    }
                }
                Err(err) => {
                    let message = err.message();
                    prop_assert!(!message.contains(MARKER), "{}", message);
                    match &err {
                        InterpError::Missing(var) => {
                            let reference = format!("${{{var}");
                            prop_assert!(!env.contains_key(var));
                            prop_assert!(text.contains(&reference));
                            prop_assert!(message.contains(var.as_str()), "{}", message);
                        }
                        InterpError::Unsupported(var) | InterpError::TooDeep(var) => {
                            let reference = format!("${{{var}");
                            prop_assert!(text.contains(&reference));
                            prop_assert!(message.contains(var.as_str()), "{}", message);
                        }
                        InterpError::Unterminated | InterpError::BadName => {
                            let opening = "${";
                            prop_assert!(text.contains(opening));
                        }
                    }
                }
            }
        }
    }
}

//! Cache keys, computed exactly as Python nuthatch computes them.
//!
//! The key of a call is `function/` followed by the values of its
//! `cache_args`, taken in the order of the sorted argument names, each turned
//! into Python's `str()` form and joined with `_`. Lists are sorted and
//! flattened, maps become sorted `k-v` strings. Argument names are not part
//! of the key, so the same call lands on the same entry in
//! either implementation.
//!
//! Unlike Python, values that would turn into path separators or `..`
//! segments are refused: a key must name a place inside the store.

use std::collections::BTreeMap;
use std::fmt;

/// Longest text form of one key value, as in Python nuthatch.
pub const MAX_VALUE_CHARS: usize = 200;

/// A value as it takes part in a key, already in its Python text form.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyValue {
    Scalar(String),
    List(Vec<String>),
    Map(Vec<(String, String)>),
}

/// Why a key could not be made.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyError {
    TooLong { argument: String, chars: usize },
    EscapesStore { argument: String, value: String },
    BadFunctionName(String),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::TooLong { argument, chars } => write!(
                f,
                "argument '{argument}' is {chars} characters long as a cache key value; \
                 nuthatch keys allow at most {MAX_VALUE_CHARS}: pass a shorter value \
                 or leave '{argument}' out of cache_args"
            ),
            KeyError::EscapesStore { argument, value } => write!(
                f,
                "argument '{argument}' = '{value}' cannot be part of a cache key: key values \
                 may not contain '/', '\\', control characters, or be '.' or '..', because \
                 the key names a path inside the store"
            ),
            KeyError::BadFunctionName(name) => write!(
                f,
                "'{name}' cannot name a cached function: use letters, digits and '_', \
                 starting with a letter or '_'"
            ),
        }
    }
}

impl std::error::Error for KeyError {}

/// A computed key: the string used on the store, plus the readable form
/// Python shows (`name/arg_value/...`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    key: String,
    display: String,
}

impl CacheKey {
    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// `name/argname_value/...`, for messages.
    pub fn display(&self) -> &str {
        &self.display
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

impl CacheKey {
    /// A key as a store spells it (`function/values`), read back from a
    /// metastore path or row; checked like a computed key, so a stored
    /// key cannot name a place outside the store either.
    pub fn stored(key: &str) -> Result<CacheKey, KeyError> {
        let (function, values) = key.split_once('/').unwrap_or((key, ""));
        check_function_name(function)?;
        // No length limit here: the limit is per value, and a stored key
        // joins several.
        if values.contains(['/', '\\'])
            || values.chars().any(char::is_control)
            || values == "."
            || values == ".."
        {
            return Err(KeyError::EscapesStore {
                argument: "key".into(),
                value: values.into(),
            });
        }
        Ok(CacheKey {
            key: format!("{function}/{values}"),
            display: key.to_string(),
        })
    }

    /// The function the key belongs to: its first segment.
    pub fn function(&self) -> &str {
        self.key
            .split_once('/')
            .map_or(self.key.as_str(), |(f, _)| f)
    }
}

/// Checks that `name` can be a function name (and so the first key segment).
pub fn check_function_name(name: &str) -> Result<(), KeyError> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(KeyError::BadFunctionName(name.to_string()))
    }
}

/// Computes the key of `function` called with `args` (cache_args only).
pub fn cache_key(function: &str, args: &BTreeMap<String, KeyValue>) -> Result<CacheKey, KeyError> {
    check_function_name(function)?;
    // BTreeMap iterates in byte order of the names, which is Python's
    // `sorted()` order for str.
    let mut flat: Vec<String> = Vec::new();
    let mut display = function.to_string();
    for (name, value) in args {
        let parts = match value {
            KeyValue::Scalar(s) => vec![s.clone()],
            KeyValue::List(items) => sorted(items.clone()),
            KeyValue::Map(pairs) => sorted(pairs.iter().map(|(k, v)| format!("{k}-{v}")).collect()),
        };
        for part in &parts {
            check_value(name, part)?;
        }
        display.push('/');
        display.push_str(name);
        display.push('_');
        match value {
            KeyValue::Scalar(s) => display.push_str(s),
            _ => display.push_str(&python_list_repr(&parts)),
        }
        flat.extend(parts);
    }
    let key = format!("{function}/{}", flat.join("_"));
    if flat.len() == 1 && (flat[0] == "." || flat[0] == "..") {
        return Err(KeyError::EscapesStore {
            argument: args.keys().next().cloned().unwrap_or_default(),
            value: flat[0].clone(),
        });
    }
    Ok(CacheKey { key, display })
}

fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items
}

fn check_value(argument: &str, value: &str) -> Result<(), KeyError> {
    let chars = value.chars().count();
    if chars > MAX_VALUE_CHARS {
        return Err(KeyError::TooLong {
            argument: argument.to_string(),
            chars,
        });
    }
    let escapes = value.contains(['/', '\\'])
        || value.chars().any(char::is_control)
        || value == "."
        || value == "..";
    if escapes {
        return Err(KeyError::EscapesStore {
            argument: argument.to_string(),
            value: value.chars().take(60).collect(),
        });
    }
    Ok(())
}

fn python_list_repr(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("'{s}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// Python's `str()` of a float; the backends' Terracotta metadata spells
/// floats so too, so it lives there.
pub use nuthatch_backends::python::python_float;

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, KeyValue)]) -> BTreeMap<String, KeyValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn scalar(s: &str) -> KeyValue {
        KeyValue::Scalar(s.to_string())
    }

    #[test]
    fn matches_a_key_python_nuthatch_computes() {
        // {'b':[3,1,2],'a':{'y':1,'x':2},'c':None}
        let key = cache_key(
            "f",
            &args(&[
                (
                    "b",
                    KeyValue::List(vec!["3".into(), "1".into(), "2".into()]),
                ),
                (
                    "a",
                    KeyValue::Map(vec![("y".into(), "1".into()), ("x".into(), "2".into())]),
                ),
                ("c", scalar("None")),
            ]),
        )
        .unwrap();
        assert_eq!(key.as_str(), "f/x-2_y-1_1_2_3_None");
        assert_eq!(key.display(), "f/a_['x-2', 'y-1']/b_['1', '2', '3']/c_None");
    }

    #[test]
    fn no_arguments_give_a_trailing_slash() {
        assert_eq!(cache_key("tk", &BTreeMap::new()).unwrap().as_str(), "tk/");
    }

    #[test]
    fn values_are_ordered_by_argument_name_not_position() {
        let key = cache_key("g", &args(&[("zeta", scalar("1")), ("alpha", scalar("2"))])).unwrap();
        assert_eq!(key.as_str(), "g/2_1");
    }

    #[test]
    fn python_float_text() {
        assert_eq!(python_float(7.0), "7.0");
        assert_eq!(python_float(0.1), "0.1");
        assert_eq!(python_float(2.5), "2.5");
        assert_eq!(python_float(1e20), "1e+20");
        assert_eq!(python_float(1.5e-5), "1.5e-05");
        assert_eq!(python_float(-0.0), "-0.0");
        assert_eq!(python_float(123456789.125), "123456789.125");
    }

    #[test]
    fn values_that_leave_the_store_are_refused() {
        for bad in ["../x", "..", ".", "/etc", "a\\b", "a/b", "x\ny"] {
            let err = cache_key("f", &args(&[("p", scalar(bad))])).unwrap_err();
            assert!(matches!(err, KeyError::EscapesStore { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn the_200_character_limit_names_the_argument() {
        let long = "x".repeat(201);
        let err = cache_key("f", &args(&[("region", scalar(&long))])).unwrap_err();
        assert!(
            err.to_string().contains("'region' is 201 characters"),
            "{err}"
        );
        assert!(cache_key("f", &args(&[("region", scalar(&long[..200]))])).is_ok());
    }

    #[test]
    fn function_names_must_be_identifiers() {
        assert!(cache_key("../f", &BTreeMap::new()).is_err());
        assert!(cache_key("agg_and_clip", &BTreeMap::new()).is_ok());
    }
}

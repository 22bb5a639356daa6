//! What Tab offers at the prompt.
//!
//! The prompt gathers the [`Names`] a session knows before each line is
//! read (tables with their columns, system tables, cached functions with
//! their parameters); [`candidates`] then looks at the text left of the
//! cursor, synchronously:
//!
//! - inside the parentheses of a cached call: its parameters and the
//!   reserved options, as `name => `;
//! - right after `cache_mode =>`: the mode names, quoted; after a flag
//!   option: `true`/`false`; after `backend =>`: the backend names;
//! - after `schema.` or `table.`: that schema's tables or that table's
//!   columns;
//! - otherwise: SQL keywords (in the case being typed), tables, cached
//!   functions (with their opening parenthesis) and the columns of the
//!   tables the statement names;
//! - after a backslash: the prompt's commands, and for `\d`, `\caches` the
//!   names they take;
//! - in `SET`: the `nuthatch.` settings, then a setting's values.

use std::collections::BTreeSet;

use datafusion::common::config::ExtensionOptions;
use datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;
use nuthatch::crates::udf::options::{is_reserved, reserved_arguments};
use nuthatch::crates::udf::settings::NuthatchOptions;
use nuthatch::{CacheMode, OnStale};

/// Reserved options that take `true` or `false`.
const FLAG_OPTIONS: [&str; 5] = [
    "recompute",
    "memoize",
    "retry_null_cache",
    "fail_if_no_cache",
    "cache",
];

/// The names a session knows, gathered before each line is read.
#[derive(Debug, Default, Clone)]
pub struct Names {
    /// Tables by the name a query uses (bare in the current schema,
    /// `schema.table` elsewhere, system tables as `nuthatch.caches`), with
    /// their columns.
    pub tables: Vec<(String, Vec<String>)>,
    /// Cached functions with their parameter names.
    pub functions: Vec<(String, Vec<String>)>,
    /// Storage backends, for `backend =>`.
    pub backends: Vec<String>,
}

/// One completion: what the list shows, and what replaces the word.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Candidate {
    pub display: String,
    pub replacement: String,
}

impl Candidate {
    fn same(text: impl Into<String>) -> Candidate {
        let text = text.into();
        Candidate {
            display: text.clone(),
            replacement: text,
        }
    }
}

/// Commands of the prompt, for completion after a backslash.
pub const COMMANDS: [&str; 10] = [
    "\\q",
    "\\?",
    "\\h",
    "\\d",
    "\\i",
    "\\pset",
    "\\timing",
    "\\functions",
    "\\caches",
    "\\quiet",
];

/// Where the word being completed starts in `line`, and what may replace
/// it; `line` is the text left of the cursor.
pub fn candidates(names: &Names, line: &str) -> (usize, Vec<Candidate>) {
    let start = word_start(line);
    let word = &line[start..];
    let before = &line[..start];
    let found = if line.trim_start().starts_with('\\') {
        command_candidates(names, before, word)
    } else if let Some(found) = setting_candidates(before, word) {
        found
    } else if let Some(option) = option_before(before) {
        option_values(names, &option, word)
    } else if let Some(((name, params), list_start)) = enclosing_call(names, before) {
        call_arguments(names, ((name, params), list_start), before, word)
    } else if let Some((qualifier, _)) = word.rsplit_once('.') {
        qualified(names, qualifier, word)
    } else {
        general(names, line, word)
    };
    let mut unique: Vec<Candidate> = found
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    unique.sort_by(|a, b| a.display.cmp(&b.display));
    (start, unique)
}

/// Words are identifiers, dotted names and a leading quote or backslash.
fn word_start(line: &str) -> usize {
    let mut start = line.len();
    for (i, c) in line.char_indices().rev() {
        if c.is_alphanumeric() || c == '_' || c == '.' {
            start = i;
        } else if c == '\'' || c == '\\' {
            start = i;
            break;
        } else {
            break;
        }
    }
    start
}

fn starts_with_ignoring_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.is_char_boundary(prefix.len())
        && text[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn matching<'a>(words: impl IntoIterator<Item = &'a str>, prefix: &str) -> Vec<Candidate> {
    words
        .into_iter()
        .filter(|w| starts_with_ignoring_case(w, prefix))
        .map(Candidate::same)
        .collect()
}

/// The option whose value is being typed: `... cache_mode => ` or
/// `cache_mode => 'ov`.
fn option_before(before: &str) -> Option<String> {
    let rest = before.trim_end().strip_suffix("=>")?;
    let name_start = word_start(rest.trim_end());
    let name = rest.trim_end()[name_start..].to_ascii_lowercase();
    is_reserved(&name).then_some(name)
}

fn option_values(names: &Names, option: &str, word: &str) -> Vec<Candidate> {
    let quoted = |values: Vec<String>| -> Vec<Candidate> {
        let prefix = word.trim_start_matches('\'');
        values
            .into_iter()
            .filter(|v| starts_with_ignoring_case(v, prefix))
            .map(|v| Candidate::same(format!("'{v}'")))
            .collect()
    };
    match option {
        "cache_mode" => quoted(
            CacheMode::ALL
                .iter()
                .map(|m| m.name().to_string())
                .collect(),
        ),
        "backend" | "storage_backend" => quoted(names.backends.clone()),
        flag if FLAG_OPTIONS.contains(&flag) => matching(["true", "false"], word),
        _ => Vec::new(),
    }
}

/// In a `SET` statement: the `nuthatch.` settings after `SET`, and a
/// setting's values after `SET nuthatch.<name> =` (or `TO`). `None` when
/// the line is not a `SET`.
fn setting_candidates(before: &str, word: &str) -> Option<Vec<Candidate>> {
    let mut words = before.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("set") {
        return None;
    }
    let settings = NuthatchOptions::default().entries();
    let Some(setting) = words.next() else {
        let names = settings.iter().map(|e| format!("nuthatch.{}", e.key));
        return Some(
            names
                .filter(|name| starts_with_ignoring_case(name, word))
                .map(Candidate::same)
                .collect(),
        );
    };
    let assigns = words
        .next()
        .is_some_and(|w| w == "=" || w.eq_ignore_ascii_case("to"));
    let key = setting.to_ascii_lowercase();
    let key = key.strip_prefix("nuthatch.")?;
    if !assigns || words.next().is_some() {
        return Some(Vec::new());
    }
    let entry = settings.iter().find(|e| e.key == key)?;
    let prefix = word.trim_start_matches('\'');
    let quoted = |values: Vec<&str>| -> Vec<Candidate> {
        (values.into_iter())
            .filter(|v| starts_with_ignoring_case(v, prefix))
            .map(|v| Candidate::same(format!("'{v}'")))
            .collect()
    };
    Some(match key {
        "cache_mode" => quoted(CacheMode::ALL.iter().map(|m| m.name()).collect()),
        "on_stale" => quoted(OnStale::ALL.iter().map(|p| p.name()).collect()),
        _ if matches!(entry.value.as_deref(), Some("true" | "false")) => {
            matching(["true", "false"], word)
        }
        _ => Vec::new(),
    })
}

/// The cached function whose argument list the cursor is in, and where
/// that list starts.
fn enclosing_call<'a>(
    names: &'a Names,
    before: &str,
) -> Option<(&'a (String, Vec<String>), usize)> {
    let mut depth = 0usize;
    let mut quoted = false;
    let bytes = before.as_bytes();
    for i in (0..bytes.len()).rev() {
        match bytes[i] {
            b'\'' => quoted = !quoted,
            b')' if !quoted => depth += 1,
            b'(' if !quoted => {
                if depth == 0 {
                    let head = before[..i].trim_end();
                    let name = &head[word_start(head)..];
                    return names
                        .functions
                        .iter()
                        .find(|(f, _)| f.eq_ignore_ascii_case(name))
                        .map(|function| (function, i + 1));
                }
                depth -= 1;
            }
            _ => {}
        }
    }
    None
}

/// The arguments typed before the one being typed, split at top-level
/// commas.
fn given_arguments(list: &str) -> Vec<&str> {
    let mut arguments = Vec::new();
    let (mut depth, mut quoted, mut start) = (0usize, false, 0);
    for (i, c) in list.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth = depth.saturating_sub(1),
            ',' if !quoted && depth == 0 => {
                arguments.push(list[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    arguments
}

/// Parameters not yet given (positionally or by name) come first; the
/// reserved options are offered when no parameter fits.
fn call_arguments(
    names: &Names,
    ((_, params), list_start): ((&String, &Vec<String>), usize),
    before: &str,
    word: &str,
) -> Vec<Candidate> {
    let given = given_arguments(&before[list_start..]);
    let positional = given.iter().take_while(|a| !a.contains("=>")).count();
    let named: Vec<String> = given
        .iter()
        .filter_map(|a| a.split_once("=>"))
        .map(|(name, _)| name.trim().to_ascii_lowercase())
        .collect();
    let open = |names: Vec<&str>| -> Vec<Candidate> {
        names
            .into_iter()
            .filter(|name| !named.iter().any(|n| n == name))
            .filter(|name| starts_with_ignoring_case(name, word))
            .map(|name| Candidate {
                display: format!("{name} =>"),
                replacement: format!("{name} => "),
            })
            .collect()
    };
    let mut found = open(params.iter().skip(positional).map(String::as_str).collect());
    if found.is_empty() {
        found = open(reserved_arguments().collect());
    }
    // A positional argument may be any expression.
    if found.is_empty() {
        found = general(names, before, word);
    }
    found
}

fn qualified(names: &Names, qualifier: &str, word: &str) -> Vec<Candidate> {
    let mut found = matching(names.tables.iter().map(|(t, _)| t.as_str()), word);
    for (table, columns) in &names.tables {
        let bare = table.rsplit('.').next().unwrap_or(table);
        if bare.eq_ignore_ascii_case(qualifier) || table.eq_ignore_ascii_case(qualifier) {
            let full: Vec<String> = columns.iter().map(|c| format!("{qualifier}.{c}")).collect();
            found.extend(matching(full.iter().map(String::as_str), word));
        }
    }
    found
}

fn general(names: &Names, line: &str, word: &str) -> Vec<Candidate> {
    if word.is_empty() {
        return Vec::new();
    }
    // Right after FROM or JOIN only a relation fits.
    let previous = line[..line.len() - word.len()]
        .split_whitespace()
        .next_back()
        .unwrap_or("")
        .to_ascii_uppercase();
    let relation_only = matches!(previous.as_str(), "FROM" | "JOIN");
    let lower = word.chars().next().is_some_and(char::is_lowercase);
    let mut found: Vec<Candidate> = ALL_KEYWORDS
        .iter()
        .filter(|_| !relation_only)
        .filter(|k| starts_with_ignoring_case(k, word))
        .map(|k| {
            Candidate::same(if lower {
                k.to_lowercase()
            } else {
                k.to_string()
            })
        })
        .collect();
    found.extend(matching(names.tables.iter().map(|(t, _)| t.as_str()), word));
    found.extend(
        names
            .functions
            .iter()
            .filter(|(f, _)| starts_with_ignoring_case(f, word))
            .map(|(f, _)| Candidate {
                display: format!("{f}("),
                replacement: format!("{f}("),
            }),
    );
    if relation_only {
        return found;
    }
    let text = line.to_ascii_lowercase();
    for (table, columns) in &names.tables {
        if mentions(&text, &table.to_ascii_lowercase()) {
            found.extend(matching(columns.iter().map(String::as_str), word));
        }
    }
    for (function, params) in &names.functions {
        if mentions(&text, &function.to_ascii_lowercase()) {
            found.extend(matching(params.iter().map(String::as_str), word));
        }
    }
    found
}

/// Whether `text` names `name` as a whole word.
fn mentions(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        let boundary = |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        boundary(before) && boundary(after)
    })
}

fn command_candidates(names: &Names, before: &str, word: &str) -> Vec<Candidate> {
    let command = before.split_whitespace().next().unwrap_or("");
    if word.starts_with('\\') && before.trim().is_empty() {
        return matching(COMMANDS, word);
    }
    match command {
        "\\d" => {
            let mut found = matching(names.tables.iter().map(|(t, _)| t.as_str()), word);
            found.extend(matching(
                names.functions.iter().map(|(f, _)| f.as_str()),
                word,
            ));
            found
        }
        "\\caches" => matching(names.functions.iter().map(|(f, _)| f.as_str()), word),
        "\\pset" => {
            let args: Vec<&str> = before.split_whitespace().skip(1).collect();
            match args.as_slice() {
                [] => matching(["format", "pager", "maxrows"], word),
                ["format"] => matching(crate::args::Format::NAMES, word),
                ["pager"] => matching(["on", "off"], word),
                _ => Vec::new(),
            }
        }
        "\\timing" | "\\quiet" => matching(["on", "off"], word),
        "\\h" => matching(crate::topics::NAMES, word),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names {
            tables: vec![
                ("trips".into(), vec!["fare".into(), "distance".into()]),
                (
                    "nuthatch.caches".into(),
                    vec!["function".into(), "tier".into()],
                ),
            ],
            functions: vec![(
                "agg_and_clip".into(),
                vec!["start_time".into(), "end_time".into(), "agg_days".into()],
            )],
            backends: vec!["arrow".into(), "parquet".into()],
        }
    }

    fn replacements(line: &str) -> Vec<String> {
        candidates(&names(), line)
            .1
            .into_iter()
            .map(|c| c.replacement)
            .collect()
    }

    #[test]
    fn functions_then_their_parameters_then_option_values() {
        assert_eq!(replacements("SELECT * FROM agg_a"), ["agg_and_clip("]);
        assert_eq!(replacements("select * from tr"), ["trips"]);
        assert_eq!(
            replacements("SELECT * FROM agg_and_clip('2013-01-01', '2014-01-01', agg"),
            ["agg_days => "]
        );
        assert_eq!(
            replacements("SELECT * FROM agg_and_clip('2013-01-01', '2014-01-01', "),
            ["agg_days => "],
            "positional arguments fill the first parameters"
        );
        let options = replacements(
            "SELECT * FROM agg_and_clip(start_time => 'x', end_time => 'y', agg_days => 7, ",
        );
        assert!(
            options.contains(&"cache_mode => ".to_string()),
            "{options:?}"
        );
        assert!(
            !options.contains(&"agg_days => ".to_string()),
            "{options:?}"
        );
        assert_eq!(
            replacements("SELECT * FROM agg_and_clip(cache_mode => 'ov"),
            ["'overwrite'"]
        );
        assert_eq!(
            replacements("SELECT * FROM agg_and_clip(cache_mode => ").len(),
            CacheMode::ALL.len()
        );
        assert_eq!(
            replacements("SELECT * FROM agg_and_clip(recompute => t"),
            ["true"]
        );
        assert_eq!(
            replacements("SELECT * FROM agg_and_clip(backend => 'p"),
            ["'parquet'"]
        );
    }

    #[test]
    fn keywords_keep_the_case_typed_and_columns_come_from_named_tables() {
        assert!(replacements("SEL").contains(&"SELECT".to_string()));
        assert!(replacements("sel").contains(&"select".to_string()));
        assert!(!replacements("SELECT fa").contains(&"fare".to_string()));
        assert!(replacements("SELECT fa FROM trips WHERE fa").contains(&"fare".to_string()));
        assert_eq!(
            replacements("SELECT * FROM nuthatch.ca"),
            ["nuthatch.caches"]
        );
        assert_eq!(replacements("SELECT trips.di"), ["trips.distance"]);
        let columns = replacements("SELECT * FROM nuthatch.caches WHERE ti");
        assert!(columns.contains(&"tier".to_string()), "{columns:?}");
    }

    #[test]
    fn backslash_commands_and_their_arguments() {
        assert_eq!(replacements("\\fu"), ["\\functions"]);
        assert_eq!(replacements("\\d agg"), ["agg_and_clip"]);
        assert_eq!(replacements("\\pset format n"), ["nd-json"]);
        assert_eq!(replacements("\\caches a"), ["agg_and_clip"]);
        assert_eq!(replacements("\\h c"), ["call", "create"]);
    }

    #[test]
    fn set_offers_the_nuthatch_settings_then_their_values() {
        let settings = replacements("SET nuthatch.");
        assert!(
            settings.contains(&"nuthatch.cache_mode".to_string()),
            "{settings:?}"
        );
        assert!(
            settings.contains(&"nuthatch.on_stale".to_string()),
            "{settings:?}"
        );
        assert_eq!(replacements("set nuthatch.on_s"), ["nuthatch.on_stale"]);
        assert_eq!(
            replacements("SET nuthatch.cache_mode = 'local_s"),
            ["'local_strict'", "'local_sync'"]
        );
        assert_eq!(
            replacements("SET nuthatch.on_stale TO "),
            ["'error'", "'recompute'", "'serve'", "'warn'"]
        );
        assert_eq!(replacements("SET nuthatch.memoize = t"), ["true"]);
    }
}

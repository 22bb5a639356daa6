//! `\h [topic]`: help for the SQL forms nuthatch adds, printed from the
//! same tables the parser and the settings use, so it cannot drift from
//! them: definition options and call options (with what each takes), the
//! `nuthatch.` settings (with their descriptions), the system tables and
//! `REFRESH STALE`.

use datafusion::common::config::ExtensionOptions;
use nuthatch::crates::udf::options::{Scope, OPTIONS};
use nuthatch::crates::udf::settings::NuthatchOptions;

/// The topics, with a line each, for `\h` alone.
const TOPICS: [(&str, &str); 5] = [
    (
        "create",
        "CREATE [OR REPLACE] CACHED FUNCTION and its WITH options",
    ),
    (
        "call",
        "calling a cached function, and the options a call takes",
    ),
    ("set", "SET nuthatch.<setting>: this session's defaults"),
    ("tables", "the nuthatch system tables"),
    (
        "refresh",
        "[EXPLAIN] REFRESH STALE: recomputing stale entries",
    ),
];

/// The topics' names, for completion.
pub const NAMES: [&str; 5] = ["create", "call", "set", "tables", "refresh"];

/// The help for `topic` (the list of topics for `None`), or an error that
/// lists them.
pub fn help(topic: Option<&str>) -> Result<String, String> {
    let list = || {
        let lines: Vec<String> = (TOPICS.iter())
            .map(|(name, about)| format!("  \\h {name:<9}{about}"))
            .collect();
        format!(
            "Help on SQL (\\? lists the prompt's commands):\n{}",
            lines.join("\n")
        )
    };
    let Some(topic) = topic else {
        return Ok(list());
    };
    match topic.to_ascii_lowercase().as_str() {
        "create" | "function" | "functions" => Ok(create()),
        "call" | "calls" | "options" => Ok(call()),
        "set" | "settings" => Ok(set()),
        "tables" | "system" | "nuthatch" => Ok(TABLES.to_string()),
        "refresh" | "stale" => Ok(REFRESH.to_string()),
        other => Err(format!("no help on '{other}'; {}", list())),
    }
}

fn options(scopes: &[Scope]) -> String {
    let width = OPTIONS.iter().map(|o| o.name.len()).max().unwrap_or(0);
    (OPTIONS.iter())
        .filter(|o| scopes.contains(&o.scope))
        .map(|o| format!("  {:<width$}  {}", o.name, o.takes))
        .collect::<Vec<_>>()
        .join("\n")
}

fn create() -> String {
    format!(
        "CREATE [OR REPLACE] CACHED FUNCTION name(param TYPE [DEFAULT value], ...)\n\
         [WITH (option = value, ...)]\n\
         AS SELECT ... ($param stands for a parameter in the body);\n\n\
         Options:\n{}\n\n\
         Example:\n  CREATE CACHED FUNCTION warm(start_time TIMESTAMP, end_time TIMESTAMP, above DOUBLE)\n  \
         WITH (cache_args = (above), timeseries = 'time')\n  \
         AS SELECT * FROM my_first_cache() WHERE air > $above;",
        options(&[Scope::Definition, Scope::Both])
    )
}

fn call() -> String {
    format!(
        "SELECT ... FROM name(arg, ..., param => value, option => value) ...;\n\
         Arguments by position or by name; options by name, after them.\n\n\
         Options a call takes:\n{}\n\n\
         Example:\n  SELECT count(*) FROM agg_and_clip('2013-01-01', '2014-01-01', agg_days => 7,\n                                    \
         recompute => true, cache_mode => 'overwrite');",
        options(&[Scope::Call, Scope::Both])
    )
}

fn set() -> String {
    let entries = NuthatchOptions::default().entries();
    let width = entries.iter().map(|e| e.key.len()).max().unwrap_or(0) + 9;
    let lines: Vec<String> = (entries.iter())
        .map(|e| {
            let key = format!("nuthatch.{}", e.key);
            let default = e.value.as_deref().unwrap_or("unset");
            format!(
                "  {key:<width$}  {} (default {default})",
                e.description.trim()
            )
        })
        .collect();
    format!(
        "SET nuthatch.<setting> = value;   SHOW nuthatch.<setting>;\n\
         Defaults for this session's calls; a call's own option wins.\n\n{}",
        lines.join("\n")
    )
}

const TABLES: &str = "\
The nuthatch schema (\\d nuthatch.<table> lists its columns):
  nuthatch.caches      every entry on every tier; DELETE FROM it removes entries
  nuthatch.functions   the cached functions and every option each has
  nuthatch.calls       this session's cached calls: outcome, tier, rows, time
  nuthatch.tiers       the tiers, whether each is reachable, and what it holds
  nuthatch.lineage     what each entry's compute read
  nuthatch.terracotta  the Terracotta datasets of every tier (terracotta entries)";

const REFRESH: &str = "\
[EXPLAIN] REFRESH STALE [function, ...];
Recomputes the stale entries of the functions named (all when none are), and
the stale entries they read, inputs first, each once. EXPLAIN lists the steps
without computing. From the shell: nuthatch refresh [FUNCTION...] [--dry-run].";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_come_from_the_options_and_settings_themselves() {
        assert!(help(None).unwrap().contains("\\h create"));
        let create = help(Some("create")).unwrap();
        assert!(
            create.contains("cache_args") && create.contains("dimensions"),
            "{create}"
        );
        assert!(!create.contains("\n  recompute "), "{create}");
        let call = help(Some("CALL")).unwrap();
        assert!(
            call.contains("recompute") && call.contains("cache_mode"),
            "{call}"
        );
        let set = help(Some("set")).unwrap();
        assert!(set.contains("nuthatch.on_stale"), "{set}");
        let error = help(Some("joins")).unwrap_err();
        assert!(
            error.contains("no help on 'joins'") && error.contains("\\h tables"),
            "{error}"
        );
    }
}

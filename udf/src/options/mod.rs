//! A cached function's options, defined once.
//!
//! [`FunctionOptions`] is what `WITH (...)` in `CREATE CACHED FUNCTION`
//! sets, what [`crate::CachedFunctionBuilder`]'s setters set, and what a
//! [`crate::CachedFunction`] keeps; its `Default` holds every default.
//! [`OPTIONS`] names each option once: where it may be given (a definition,
//! a call, or both), how its SQL value is read, and its column in
//! `nuthatch.functions`. The named arguments a call reserves
//! ([`reserved_arguments`]), the options a definition takes and the
//! system table's columns are all read from it, so an option is one row
//! there and one field here, and none can be left out of one list but not
//! another.
//!
//! SQL values keep their types: names and lists of names, booleans,
//! lengths of time (`'2 days'` or `INTERVAL '2 days'`), `dim = n` pairs and
//! conditions are read from the parsed expression ([`sql`]), never through
//! text, so a quoted value holding `,`, `=` or `;` stays one value.

mod sql;

use std::collections::BTreeMap;
use std::time::Duration;

use datafusion::common::{plan_err, Result};
use datafusion::sql::sqlparser::ast::Expr as SqlExpr;

use nuthatch_catalog::OnStale;

use crate::function::{CachedFunction, DisableIf};
use crate::grid::Grid;
use crate::timeseries::CoverageKind;

pub(crate) use sql::literal_scalar;

/// How a cached function caches, as its definition says.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionOptions {
    /// The parameters whose values key entries on root and mirrors.
    pub cache_args: Vec<String>,
    pub version: Option<String>,
    pub namespace: Option<String>,
    /// The time column; calls are clipped to `[start_time, end_time]`.
    pub timeseries: Option<String>,
    /// What a timeseries body computes; `None` lets the body decide.
    pub coverage: Option<CoverageKind>,
    /// How long after its end a computed range stays provisional.
    pub settle: Option<Duration>,
    /// Refuse to store values the backend would change.
    pub exact: bool,
    /// The backend entries are read with (and stored with, unless
    /// `storage_backend`); checked against the engine's when registered.
    pub backend: Option<String>,
    pub storage_backend: Option<String>,
    pub memoize: bool,
    /// Whether calls use root and mirrors.
    pub cache: bool,
    pub fail_if_no_cache: bool,
    /// Conditions under which root and mirrors are not used.
    pub disable_if: Vec<DisableIf>,
    /// The grid a gridded result is stored as.
    pub grid: Grid,
    /// The columns an `upsert => true` call merges by.
    pub upsert_keys: Vec<String>,
    /// The order entries keep and calls declare.
    pub order_by: Vec<String>,
    /// What a call does with a stale entry; `None` takes the session's.
    pub on_stale: Option<OnStale>,
    /// What a Rust body's author says identifies its code, for its
    /// fingerprint ([`crate::fingerprint`]).
    pub fingerprint: Option<String>,
}

impl Default for FunctionOptions {
    fn default() -> Self {
        FunctionOptions {
            cache_args: Vec::new(),
            version: None,
            namespace: None,
            timeseries: None,
            coverage: None,
            settle: None,
            exact: false,
            backend: None,
            storage_backend: None,
            memoize: false,
            cache: true,
            fail_if_no_cache: false,
            disable_if: Vec::new(),
            grid: Grid::default(),
            upsert_keys: Vec::new(),
            order_by: Vec::new(),
            on_stale: None,
            fingerprint: None,
        }
    }
}

/// Where an option may be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// In a definition only.
    Definition,
    /// As a named argument of a call only (`recompute => true`).
    Call,
    /// In a definition, and per call over it.
    Both,
}

/// How `nuthatch.functions` shows an option: a column of text, of
/// booleans, or of lists of names.
#[derive(Clone, Copy)]
pub enum Shown {
    Text(fn(&CachedFunction) -> Option<String>),
    Flag(fn(&CachedFunction) -> bool),
    Names(fn(&CachedFunction) -> Vec<String>),
}

type Parse = fn(&mut FunctionOptions, &str, &SqlExpr) -> Result<()>;

/// One option.
pub struct OptionSpec {
    pub name: &'static str,
    pub scope: Scope,
    /// What it takes, for help.
    pub takes: &'static str,
    /// Reads its SQL value in a definition; `None` for call-only options.
    parse: Option<Parse>,
    /// Its column in `nuthatch.functions`; `None` for call-only options.
    pub shown: Option<Shown>,
}

/// Every option, in the order `nuthatch.functions` shows them.
pub static OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        name: "cache_args",
        scope: Scope::Definition,
        takes: "parameter names, as (a, b)",
        parse: Some(|o, f, v| {
            o.cache_args = sql::names(f, "cache_args", v)?;
            Ok(())
        }),
        shown: Some(Shown::Names(|f| f.cache_args().to_vec())),
    },
    OptionSpec {
        name: "version",
        scope: Scope::Definition,
        takes: "text, as '0.1.0'",
        parse: Some(|o, f, v| {
            o.version = Some(sql::text(f, "version", v)?);
            Ok(())
        }),
        shown: Some(Shown::Text(|f| f.version().map(str::to_string))),
    },
    OptionSpec {
        name: "namespace",
        scope: Scope::Both,
        takes: "a name",
        parse: Some(|o, f, v| {
            o.namespace = Some(sql::text(f, "namespace", v)?);
            Ok(())
        }),
        shown: Some(Shown::Text(|f| f.namespace().map(str::to_string))),
    },
    OptionSpec {
        name: "timeseries",
        scope: Scope::Definition,
        takes: "the time column",
        parse: Some(|o, f, v| {
            o.timeseries = Some(sql::text(f, "timeseries", v)?);
            Ok(())
        }),
        shown: Some(Shown::Text(|f| f.timeseries().map(str::to_string))),
    },
    OptionSpec {
        name: "coverage",
        scope: Scope::Definition,
        takes: "'window' or 'full'",
        parse: Some(|o, f, v| {
            let text = sql::text(f, "coverage", v)?;
            {
                o.coverage = Some(CoverageKind::parse(f, &text)?);
                Ok(())
            }
        }),
        shown: Some(Shown::Text(|f| f.coverage().map(|c| c.name().to_string()))),
    },
    OptionSpec {
        name: "order_by",
        scope: Scope::Definition,
        takes: "columns, as (time, station)",
        parse: Some(|o, f, v| {
            o.order_by = sql::names(f, "order_by", v)?;
            Ok(())
        }),
        shown: Some(Shown::Text(|f| joined(f.order_by()))),
    },
    OptionSpec {
        name: "backend",
        scope: Scope::Both,
        takes: "a backend's name, as 'parquet'",
        parse: Some(|o, f, v| {
            o.backend = Some(sql::text(f, "backend", v)?.to_lowercase());
            Ok(())
        }),
        shown: Some(Shown::Text(|f| f.backend().map(str::to_string))),
    },
    OptionSpec {
        name: "storage_backend",
        scope: Scope::Both,
        takes: "a backend's name",
        parse: Some(|o, f, v| {
            let name = sql::text(f, "storage_backend", v)?.to_lowercase();
            {
                o.storage_backend = Some(name);
                Ok(())
            }
        }),
        shown: Some(Shown::Text(|f| f.storage_backend().map(str::to_string))),
    },
    OptionSpec {
        name: "memoize",
        scope: Scope::Both,
        takes: "true or false",
        parse: Some(|o, f, v| {
            o.memoize = sql::flag(f, "memoize", v)?;
            Ok(())
        }),
        shown: Some(Shown::Flag(|f| f.memoizes())),
    },
    OptionSpec {
        name: "cache",
        scope: Scope::Both,
        takes: "true or false",
        parse: Some(|o, f, v| {
            o.cache = sql::flag(f, "cache", v)?;
            Ok(())
        }),
        shown: Some(Shown::Flag(|f| f.caches())),
    },
    OptionSpec {
        name: "fail_if_no_cache",
        scope: Scope::Both,
        takes: "true or false",
        parse: Some(|o, f, v| {
            o.fail_if_no_cache = sql::flag(f, "fail_if_no_cache", v)?;
            Ok(())
        }),
        shown: Some(Shown::Flag(|f| f.fails_if_no_cache())),
    },
    OptionSpec {
        name: "settle",
        scope: Scope::Both,
        takes: "a length of time, as '2 days' or INTERVAL '36 hours'",
        parse: Some(|o, f, v| {
            o.settle = Some(sql::duration(f, v)?);
            Ok(())
        }),
        shown: Some(Shown::Text(|f| f.settle().map(spell_duration))),
    },
    OptionSpec {
        name: "on_stale",
        scope: Scope::Both,
        takes: "serve, warn, recompute or error",
        parse: Some(|o, f, v| {
            o.on_stale = Some(sql::text(f, "on_stale", v)?.parse()?);
            Ok(())
        }),
        shown: Some(Shown::Text(|f| f.options().on_stale.map(|p| p.to_string()))),
    },
    OptionSpec {
        name: "exact",
        scope: Scope::Both,
        takes: "true or false",
        parse: Some(|o, f, v| {
            o.exact = sql::flag(f, "exact", v)?;
            Ok(())
        }),
        shown: Some(Shown::Flag(|f| f.exact())),
    },
    OptionSpec {
        name: "cache_disable_if",
        scope: Scope::Definition,
        takes: "conditions, as (days = 1 OR days IN (2, 3) AND region = 'x')",
        parse: Some(|o, f, v| {
            let conditions = sql::disable_conditions(f, v)?;
            o.disable_if = conditions
                .into_iter()
                .map(|when| DisableIf { when })
                .collect();
            Ok(())
        }),
        shown: Some(Shown::Text(|f| spell_conditions(f.disable_if()))),
    },
    OptionSpec {
        name: "dimensions",
        scope: Scope::Definition,
        takes: "grid dimensions, outermost first, as (time, lat, lon)",
        parse: Some(|o, f, v| {
            o.grid.dimensions = sql::names(f, "dimensions", v)?;
            Ok(())
        }),
        shown: Some(Shown::Text(|f| joined(&f.grid().dimensions))),
    },
    OptionSpec {
        name: "chunking",
        scope: Scope::Definition,
        takes: "chunk lengths, as (time = 365, lat = 30)",
        parse: Some(|o, f, v| {
            o.grid.chunking = sql::lengths(f, "chunking", v)?;
            Ok(())
        }),
        shown: Some(Shown::Text(|f| spell_lengths(&f.grid().chunking))),
    },
    OptionSpec {
        name: "chunk_by_arg",
        scope: Scope::Definition,
        takes: "rules, as ((agg_days = 7, time = 52), (agg_days = 1, time = 365))",
        parse: Some(|o, f, v| {
            o.grid.chunk_by_arg.extend(sql::chunk_rules(f, v)?);
            Ok(())
        }),
        shown: Some(Shown::Text(|f| {
            let rules: Vec<String> = f
                .grid()
                .chunk_by_arg
                .iter()
                .map(|rule| {
                    let value = rule.value.sql_literal();
                    let lengths = spell_lengths(&rule.chunking).unwrap_or_default();
                    format!("({} = {value}, {lengths})", rule.arg)
                })
                .collect();
            (!rules.is_empty()).then(|| rules.join(", "))
        })),
    },
    OptionSpec {
        name: "upsert_keys",
        scope: Scope::Definition,
        takes: "columns, as (time, station)",
        parse: Some(|o, f, v| {
            o.upsert_keys = sql::names(f, "upsert_keys", v)?;
            Ok(())
        }),
        shown: Some(Shown::Text(|f| joined(f.upsert_keys()))),
    },
    call_only("cache_mode", "a mode, as 'overwrite'"),
    call_only(
        "recompute",
        "true, false, a function's name, a list of them, or '_all'",
    ),
    call_only("retry_null_cache", "true or false"),
    call_only("upsert", "true or false"),
    call_only("replace_window", "true or false"),
    call_only("compact", "true or false"),
];

const fn call_only(name: &'static str, takes: &'static str) -> OptionSpec {
    OptionSpec {
        name,
        scope: Scope::Call,
        takes,
        parse: None,
        shown: None,
    }
}

/// The named arguments a call takes as cache options rather than as
/// parameters; no parameter may be called so.
pub fn reserved_arguments() -> impl Iterator<Item = &'static str> {
    OPTIONS
        .iter()
        .filter(|o| o.scope != Scope::Definition)
        .map(|o| o.name)
}

/// Whether `name` is a per-call cache option.
pub fn is_reserved(name: &str) -> bool {
    reserved_arguments().any(|reserved| reserved == name)
}

/// The options a definition takes.
pub fn definition_options() -> impl Iterator<Item = &'static str> {
    OPTIONS
        .iter()
        .filter(|o| o.scope != Scope::Call)
        .map(|o| o.name)
}

impl FunctionOptions {
    /// Sets the option `name` of the function `function` from its value
    /// in `WITH (...)`.
    pub fn set_sql(&mut self, function: &str, name: &str, value: &SqlExpr) -> Result<()> {
        let Some(option) = OPTIONS.iter().find(|o| o.name == name) else {
            let options: Vec<&str> = definition_options().collect();
            return plan_err!(
                "{function}: unknown option '{name}'; options are {}",
                options.join(", ")
            );
        };
        match option.parse {
            Some(parse) => parse(self, function, value),
            None => plan_err!(
                "{function}: {name} is given per call, as in {function}(..., {name} => ...), \
                 not in the definition"
            ),
        }
    }
}

fn joined(names: &[String]) -> Option<String> {
    (!names.is_empty()).then(|| names.join(", "))
}

fn spell_lengths(lengths: &BTreeMap<String, u64>) -> Option<String> {
    let items: Vec<String> = lengths.iter().map(|(d, n)| format!("{d} = {n}")).collect();
    (!items.is_empty()).then(|| items.join(", "))
}

/// `2 days`, `36 hours`: the largest unit that divides the length.
fn spell_duration(length: Duration) -> String {
    let seconds = length.as_secs();
    let units = [
        (604_800, "week"),
        (86_400, "day"),
        (3_600, "hour"),
        (60, "minute"),
    ];
    let (size, unit) = units
        .into_iter()
        .find(|(size, _)| seconds > 0 && seconds.is_multiple_of(*size))
        .unwrap_or((1, "second"));
    let count = seconds / size;
    format!("{count} {unit}{}", if count == 1 { "" } else { "s" })
}

/// Conditions as a definition writes them.
fn spell_conditions(conditions: &[DisableIf]) -> Option<String> {
    let spelled: Vec<String> = conditions
        .iter()
        .map(|condition| {
            let tests: Vec<String> = condition
                .when
                .iter()
                .map(|(arg, values)| match values.as_slice() {
                    [one] => format!("{arg} = {}", one.sql_literal()),
                    many => {
                        let list: Vec<String> = many.iter().map(|v| v.sql_literal()).collect();
                        format!("{arg} IN ({})", list.join(", "))
                    }
                })
                .collect();
            tests.join(" AND ")
        })
        .collect();
    (!spelled.is_empty()).then(|| spelled.join(" OR "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_definition_option_has_a_column() {
        let mut failures = Vec::new();
        for (i, option) in OPTIONS.iter().enumerate() {
            if OPTIONS[..i].iter().any(|o| o.name == option.name) {
                failures.push(format!("{} is listed twice", option.name));
            }
            let defined = option.scope != Scope::Call;
            if defined != option.parse.is_some() || defined != option.shown.is_some() {
                failures.push(format!(
                    "{} is read or shown as its scope says not",
                    option.name
                ));
            }
        }
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(reserved_arguments().count(), 15);
    }

    #[test]
    fn lengths_of_time_are_spelled_in_their_largest_unit() {
        let cases = [
            (172_800, "2 days"),
            (129_600, "36 hours"),
            (60, "1 minute"),
            (90, "90 seconds"),
        ];
        let wrong: Vec<String> = cases
            .iter()
            .map(|(seconds, spelled)| (spell_duration(Duration::from_secs(*seconds)), spelled))
            .filter(|(got, spelled)| got != *spelled)
            .map(|(got, spelled)| format!("{got} for {spelled}"))
            .collect();
        assert!(wrong.is_empty(), "{wrong:?}");
    }
}

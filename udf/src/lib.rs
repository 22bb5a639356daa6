//! Cached functions as DataFusion table functions.
//!
//! This crate owns what a cached function is ([`function`], its arguments
//! [`args`] and [`value`]s, its [`options`], defined once for the SQL
//! parser, the builder and `nuthatch.functions`, defined in Rust or in SQL
//! by [`definition`] with a [`sql_body`]), how a call's arguments bind to it, positional or named
//! ([`binding`], [`planner`]), how the timeseries window becomes filter
//! pushdown ([`timeseries`]), and how a call runs: planned ([`call`]) by a
//! table function ([`table_function`]), executed ([`exec`]) by resolving
//! it across tiers under its mode ([`resolve`]), reading an entry or
//! running the body ([`compute`]).
//!
//! [`Engine`] holds what sessions share (catalog, functions, runtime);
//! [`Session`] is one user's DataFusion context with nuthatch installed,
//! carrying its settings, reports and call stack ([`settings`]).
//!
//! Modules depend on each other in one direction, each only on those before
//! it (function and options name each other's types): value, args,
//! sql_body, function, options, definition, binding, registry,
//! planner, settings, timeseries, call, compute, resolve, exec,
//! table_function, script, system_tables, engine, session; parallel (misses
//! written as parts by a cluster's workers); fingerprint (what a definition
//! is, for staleness), lineage (what a compute read) and refresh (computing
//! stale entries again).

pub mod args;
pub mod binding;
pub mod call;
pub mod compute;
pub mod definition;
pub mod engine;
pub mod exec;
pub mod fingerprint;
pub mod function;
pub mod grid;
pub mod lineage;
pub mod options;
pub mod parallel;
pub mod params;
pub mod planner;
pub mod refresh;
pub mod registry;
pub mod resolve;
pub mod rolling;
pub mod script;
pub mod session;
pub mod settings;
pub mod sql_body;
pub mod system_tables;
pub mod table_function;
pub mod timeseries;
pub mod vacuum;
pub mod value;

pub use args::Args;
pub use binding::{BoundCall, CallOptions, Select};
pub use call::Call;
pub use engine::{Engine, SessionHook};
pub use function::{
    Body, CachedFunction, CachedFunctionBuilder, Computed, CoverageKind, DisableIf, Param,
};
pub use options::FunctionOptions;
pub use refresh::{RefreshAction, RefreshStatement, RefreshStep};
pub use script::split_statements;
pub use session::{NamedTable, Session};
pub use settings::{CallFrame, CallStack, Inherited, NuthatchOptions, OverwritePrompt};
pub use table_function::{CachedCall, CachedTableFunction};
pub use value::{ParamType, Value};

/// The text of an error as a user should read it: a nuthatch error without
/// the "External error: " DataFusion puts in front of it, a syntax error
/// without the parser's debug form, anything else as DataFusion prints it
/// minus its "Error during planning: " or "Execution error: " category
/// (every message says what went wrong in its own words). Every front end
/// (the binary, the Flight SQL server) prints errors so.
pub fn error_message(error: &datafusion::error::DataFusionError) -> String {
    use datafusion::error::DataFusionError;
    use datafusion::sql::sqlparser::parser::ParserError;
    if let Some(ours) = nuthatch_catalog::Error::find(error) {
        return ours.to_string();
    }
    match error.find_root() {
        DataFusionError::SQL(parser, _) => match parser.as_ref() {
            ParserError::ParserError(text) | ParserError::TokenizerError(text) => {
                format!("SQL syntax error: {text}")
            }
            ParserError::RecursionLimitExceeded => {
                "SQL syntax error: the statement nests too deeply; split it up".to_string()
            }
        },
        _ => {
            let text = error.to_string();
            ["Error during planning: ", "Execution error: "]
                .iter()
                .find_map(|prefix| text.strip_prefix(prefix))
                .map_or_else(|| text.clone(), str::to_string)
        }
    }
}

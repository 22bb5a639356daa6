//! Cached functions as DataFusion table functions.
//!
//! This crate owns what a cached function is ([`function`], defined in Rust
//! or in SQL by [`sql_function`]), how a call's arguments bind to it,
//! positional or named ([`binding`], [`planner`]), how the timeseries window
//! becomes filter pushdown ([`timeseries`]), and the DataFusion pieces that
//! run a call ([`table_function`], [`exec`]). [`Nuthatch`] puts them in a
//! session.

pub mod binding;
pub mod exec;
pub mod function;
pub mod planner;
pub mod registry;
pub mod session;
pub mod sql_function;
pub mod table_function;
pub mod timeseries;
pub mod value;

pub use binding::{BoundCall, CallOptions};
pub use function::{Args, Body, CachedFunction, CachedFunctionBuilder, Computed, Param};
pub use session::{split_statements, Nuthatch};
pub use table_function::{CachedCall, CachedTableFunction, NuthatchOptions};
pub use value::{ParamType, Value};

//! Polars and nuthatch.
//!
//! This crate owns the meeting of nuthatch and Polars, in three parts:
//!
//! - [`convert`]: Arrow batches to a Polars `DataFrame` and back through
//!   the Arrow C data interface, numeric columns without a copy, and the
//!   types either side cannot hold refused by column name.
//! - [`frames`]: [`Polars`], any query of a session (cached calls
//!   included) as a Polars `DataFrame`, or as a `LazyFrame` whose
//!   projection and filters reach the cached call's entry.
//! - [`body`]: cached functions whose body is written in Polars, collected
//!   by Polars' streaming engine with their nuthatch scans fetched first
//!   (`streaming`).
//! - [`sql`]: Polars SQL in which cached functions are table functions.
//!
//! Polars is a large dependency, so it lives here, behind the `polars`
//! feature of the `nuthatch` crate. No bridge crate supports this pair of
//! Arrow and Polars versions; the C data interface needs none.

pub mod body;
pub mod convert;
pub mod frames;
pub mod sql;
mod streaming;

pub use body::{PolarsBody, PolarsComputed};
pub use convert::{arrow_schema, from_polars, to_polars};
pub use frames::Polars;
pub use sql::PolarsSql;

/// Polars over a nuthatch session: `session.polars().frame("SELECT ...")`.
pub trait SessionPolars {
    fn polars(&self) -> Polars;
}

impl SessionPolars for nuthatch_udf::Session {
    fn polars(&self) -> Polars {
        // Functions registered on the engine since the session last
        // planned a query become callable first.
        self.refresh_functions();
        Polars::of_session(self.context().clone(), self.function_sync())
    }
}

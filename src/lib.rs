//! nuthatch: a data-pipeline cache that lives inside SQL.
//!
//! A cached function is a DataFusion table function. The first call computes
//! its result and writes it through to the root tier in nuthatch's on-disk
//! layout; later calls read it back with projection, filters and the
//! timeseries window pushed into the stored Parquet.
//!
//! ```no_run
//! # async fn demo() -> datafusion::error::Result<()> {
//! let nuthatch = nuthatch::Nuthatch::discover()?;
//! for function in nuthatch::demo::readme_functions()? {
//!     nuthatch.register(function)?;
//! }
//! nuthatch
//!     .sql("SELECT * FROM agg_and_clip('2013-01-01', '2013-02-01', agg_days => 7) WHERE lat > 40")
//!     .await?
//!     .show()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! This crate re-exports the public API of the workspace crates:
//! `nuthatch-backends` (storage formats), `nuthatch-catalog` (keys, tiers,
//! metastore) and `nuthatch-udf` (cached functions).

pub mod demo;

pub use nuthatch_backends::BackendKind;
pub use nuthatch_catalog::{
    cache_key, CacheKey, CacheMode, CallReport, Catalog, Config, KeyValue, MetadataRow, Outcome,
    Tier, TierConfig,
};
pub use nuthatch_udf::{
    split_statements, Args, CachedFunction, CachedFunctionBuilder, Computed, Nuthatch,
    NuthatchOptions, ParamType, Value,
};

/// The workspace crates, for what the re-exports above leave out.
pub mod crates {
    pub use nuthatch_backends as backends;
    pub use nuthatch_catalog as catalog;
    pub use nuthatch_udf as udf;
}

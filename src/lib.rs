//! nuthatch: a data-pipeline cache that lives inside SQL.
//!
//! A cached function is a DataFusion table function. The first call computes
//! its result and streams it through a storage backend to the root tier in
//! nuthatch's on-disk layout; later calls read it back with projection,
//! filters and the timeseries window pushed into the stored data.
//!
//! ```no_run
//! # async fn demo() -> datafusion::error::Result<()> {
//! let engine = nuthatch::Engine::discover()?;
//! for function in nuthatch::demo::readme_functions()? {
//!     engine.register(function)?;
//! }
//! let session = engine.session();
//! session
//!     .sql("SELECT * FROM agg_and_clip('2013-01-01', '2013-02-01', agg_days => 7) WHERE lat > 40")
//!     .await?
//!     .show()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! This crate re-exports the public API of the workspace crates:
//! `nuthatch-backends` (storage formats), `nuthatch-catalog` (keys, tiers,
//! metastore, errors) and `nuthatch-udf` (cached functions, engine and
//! sessions).

#![warn(missing_docs)]

pub mod demo;

pub use nuthatch_backends::coverage::{Coverage, Span};
pub use nuthatch_backends::{
    Backend, Backends, Commit, Layout, Location, Section, SystemTable, TierSettings, WriteMode,
    WriteOptions, WriteProgress, Written,
};
pub use nuthatch_catalog::{
    CacheKey, CacheMode, CallReport, Catalog, Config, EntryId, Error, Found, KeyValue, MemoryTier,
    MetadataRow, OnStale, Outcome, Overwrite, Phase, Policy, Running, Staleness, Tier, TierConfig,
    TierRole, cache_key,
};
pub use nuthatch_udf::{
    Args, CachedFunction, CachedFunctionBuilder, Computed, CoverageKind, DisableIf, Engine,
    FunctionOptions, NuthatchOptions, OverwritePrompt, ParamType, RefreshAction, RefreshStep,
    Select, Session, Value, split_statements,
};

/// The workspace crates, for what the re-exports above leave out.
pub mod crates {
    pub use nuthatch_backends as backends;
    pub use nuthatch_catalog as catalog;
    #[cfg(feature = "distributed")]
    pub use nuthatch_cluster as cluster;
    #[cfg(feature = "flight")]
    pub use nuthatch_flight as flight;
    #[cfg(feature = "polars")]
    pub use nuthatch_polars as polars;
    pub use nuthatch_udf as udf;
}

pub use nuthatch_udf::error_message;

/// A cluster: queries and cached-function bodies run across workers (the
/// `distributed` feature).
#[cfg(feature = "distributed")]
pub mod cluster {
    pub use nuthatch_cluster::*;
}

/// Polars: cached results as frames, bodies in Polars, Polars SQL over
/// cached calls (the `polars` feature).
#[cfg(feature = "polars")]
pub mod polars {
    pub use nuthatch_polars::*;
}

/// The Rust examples of the README and of `docs/`, compiled and run as
/// doctests, so that what the docs show works.
#[cfg(doctest)]
mod docs {
    #[doc = include_str!("../README.md")]
    struct Readme;
    #[doc = include_str!("../docs/functions.md")]
    struct Functions;
    #[doc = include_str!("../docs/calling.md")]
    struct Calling;
    #[doc = include_str!("../docs/tiers.md")]
    struct Tiers;
    #[doc = include_str!("../docs/timeseries.md")]
    struct Timeseries;
    #[doc = include_str!("../docs/backends.md")]
    struct Backends;
    #[doc = include_str!("../docs/configuration.md")]
    struct Configuration;
    #[doc = include_str!("../docs/catalog.md")]
    struct Catalog;
    #[doc = include_str!("../docs/staleness.md")]
    struct Staleness;
    #[doc = include_str!("../docs/binary.md")]
    struct Binary;
    #[doc = include_str!("../docs/embedding.md")]
    struct Embedding;
    #[doc = include_str!("../docs/cluster.md")]
    struct Cluster;
}

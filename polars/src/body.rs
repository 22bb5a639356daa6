//! Cached-function bodies written in Polars.
//!
//! [`PolarsBody::compute_polars`] takes a body that returns a Polars
//! `DataFrame` or `LazyFrame` (or `None`, Python's null result). The body
//! gets a [`Polars`] handle on its call's session, through which it reads
//! other cached functions' results (nested calls are recorded and inherit
//! the caller's mode as any nested call does). A `LazyFrame` is collected
//! by Polars' streaming engine, off the async runtime, its nuthatch scans
//! fetched first (see `streaming`). The result crosses to Arrow without a
//! copy and is stored like any other body's.

use std::future::Future;

use datafusion::common::{DataFusionError, Result};
use nuthatch_udf::{Args, CachedFunctionBuilder, Computed};
use polars::prelude::{DataFrame, LazyFrame};

use crate::convert::{from_polars, polars_error};
use crate::frames::Polars;
use crate::streaming;

/// What a Polars body may return.
pub enum PolarsComputed {
    // Boxed: a LazyFrame is a plan several hundred bytes large.
    Lazy(Box<LazyFrame>),
    Frame(DataFrame),
    /// No result: stored as a null marker, as Python stores `None`.
    Null,
}

impl From<LazyFrame> for PolarsComputed {
    fn from(frame: LazyFrame) -> Self {
        PolarsComputed::Lazy(Box::new(frame))
    }
}

impl From<DataFrame> for PolarsComputed {
    fn from(frame: DataFrame) -> Self {
        PolarsComputed::Frame(frame)
    }
}

impl<T: Into<PolarsComputed>> From<Option<T>> for PolarsComputed {
    fn from(result: Option<T>) -> Self {
        result.map_or(PolarsComputed::Null, Into::into)
    }
}

/// Polars bodies for the cached-function builder.
pub trait PolarsBody {
    /// The compute body, in Polars: an async function of a [`Polars`]
    /// handle on the call's session and the bound arguments.
    fn compute_polars<F, Fut, R>(self, body: F) -> Self
    where
        F: Fn(Polars, Args) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R>> + Send + 'static,
        R: Into<PolarsComputed> + Send + 'static;
}

impl PolarsBody for CachedFunctionBuilder {
    fn compute_polars<F, Fut, R>(self, body: F) -> Self
    where
        F: Fn(Polars, Args) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R>> + Send + 'static,
        R: Into<PolarsComputed> + Send + 'static,
    {
        let body = std::sync::Arc::new(body);
        self.compute(move |ctx, args| {
            let body = std::sync::Arc::clone(&body);
            async move {
                let polars = Polars::new(ctx);
                let result = body(polars.clone(), args).await?.into();
                let frame = match result {
                    PolarsComputed::Null => return Ok(Computed::Null),
                    PolarsComputed::Frame(frame) => frame,
                    PolarsComputed::Lazy(lazy) => {
                        let scans = polars.scans();
                        // Polars computes on its own threads and blocks
                        // the caller until done: not on a runtime worker.
                        tokio::task::spawn_blocking(move || streaming::collect(*lazy, &scans))
                            .await
                            .map_err(|e| DataFusionError::Execution(format!("Polars body: {e}")))?
                            .map_err(polars_error)?
                    }
                };
                Ok(Computed::Batches(from_polars(frame)?))
            }
        })
    }
}

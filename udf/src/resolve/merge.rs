//! Calls that merge their result into the stored entry.
//!
//! `upsert => true` merges by the function's `upsert_keys`;
//! `replace_window => true` replaces the rows of the call's time window.
//! As in Python nuthatch, such a call reads nothing first (no memoized
//! result, no tier): it computes, then writes into the entry on the tier
//! its mode writes, then serves the whole stored entry, clipped to its
//! window like any read.
//!
//! A format that merges by itself (Delta) is handed the computed stream
//! and the mode. A format that replaces a file atomically (Parquet, Arrow)
//! is merged into by a plan that reads the stored entry and writes it whole
//! again: for an upsert, the stored rows plus the computed rows whose keys
//! are new (Python nuthatch's Parquet upsert: stored rows are never
//! updated); for a window, the stored rows outside it plus the computed
//! ones. A format written in place (Zarr) cannot read itself while it is
//! rewritten, so it refuses both.

use std::sync::Arc;

use datafusion::common::{DataFusionError, JoinType, Result};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder};
use nuthatch_backends::coverage::Coverage;
use nuthatch_backends::{Commit, WriteMode};
use nuthatch_catalog::{Claim, Outcome, Phase};

use super::{compute_failed, Keep, Prepared, Resolver, Source};
use crate::compute::body_frame;

impl Resolver<'_> {
    /// Computes the call and merges the result into its entry.
    pub(super) async fn merge_into(&self) -> Result<Prepared> {
        let call = self.call;
        let catalog = &call.catalog;
        let mode = call.write_mode.clone();
        let what = mode.describe();
        let function = call.function.name();
        let Some(tier) = self.write_target() else {
            return Err(DataFusionError::Plan(format!(
                "{function}: cache_mode '{}' stores nothing, so there is no entry to {what}; call \
                 with cache_mode => 'write' (or 'local')",
                self.mode
            )));
        };
        let id = call.id_on(tier).expect("a local target has a local key");
        let backend = call.write_backend();
        catalog.check_writable(tier, id)?;
        let rewrites = !backend.merges();
        if rewrites && backend.commit() != Commit::Atomic {
            return Err(DataFusionError::Plan(format!(
                "{function}: {} entries cannot {what}: the format is rewritten in place, so it \
                 cannot be read while its merged version is written; use backend => {}, or \
                 recompute the whole entry with recompute => true",
                backend.name(),
                catalog
                    .backends()
                    .offer(|b| b.merges() || b.commit() == Commit::Atomic)
            )));
        }
        // One merge into an entry at a time in this process: a rewrite that
        // raced another would lose its rows.
        let inflight_key = call.inflight_key(tier, id, backend.as_ref());
        let mut lead = loop {
            match self.claim(&inflight_key, id)? {
                Claim::Lead(lead) => break lead,
                Claim::Follow(follow) => {
                    let _ = follow.wait().await;
                }
            }
        };
        if let Err(error) = self.lease(&mut lead, tier, id, backend.as_ref()).await {
            let error = Arc::new(error);
            lead.finish(Err(Arc::clone(&error))).await;
            return Err(DataFusionError::Shared(error));
        }
        let merged = async {
            tracing::info!(function, key = %id.key, tier = tier.name(), mode = what, "computing");
            self.running.set_phase(Phase::Computing);
            let failed = compute_failed(id.key.display().to_string());
            let Some(mut computed) = body_frame(call, self.state).await.map_err(&failed)? else {
                // As Python: a null result is not recorded by a merge.
                tracing::info!(function, "the body returned no result; nothing to {what}");
                return Ok(None);
            };
            if let WriteMode::ReplaceWhere { predicate } = &mode {
                // Rows outside the window would escape the replacement.
                computed = computed.filter(predicate.clone()).map_err(&failed)?;
            }
            let schema = call.function.schema();
            let stored = match rewrites {
                true => catalog.find_on(tier, id, &backend, schema).await?,
                false => None,
            };
            let (frame, write_mode, stored_rows, based_on) = match stored {
                Some(entry) => {
                    let stored_rows = entry.metadata.recorded.rows;
                    let based_on = entry
                        .metadata
                        .recorded
                        .parts
                        .as_ref()
                        .map(|_| entry.metadata.last_modified);
                    let scan = LogicalPlanBuilder::scan(
                        "stored",
                        provider_as_source(Arc::clone(&entry.provider)),
                        None,
                    )?
                    .build()?;
                    let stored = DataFrame::new(self.state.clone(), scan);
                    let frame = rewritten(stored, computed, &mode).map_err(&failed)?;
                    (frame, WriteMode::Replace, stored_rows, based_on)
                }
                None if rewrites => (computed, WriteMode::Replace, None, None),
                None => (computed, mode.clone(), None, None),
            };
            // The entry covers the call's window from now on.
            let window = call
                .function
                .timeseries()
                .map(|_| Coverage::of([call.span()]));
            let keep = Keep {
                parts: based_on.is_some(),
                based_on,
                ..Keep::amending(window, call.settle)
            };
            let plan = frame.create_physical_plan().await.map_err(&failed)?;
            let (entry, compute, mut written) = self
                .store_plan(tier, id, &backend, plan, keep, write_mode)
                .await?;
            if rewrites && matches!(mode, WriteMode::Upsert { .. }) {
                // The rewrite kept every stored row and added new keys only.
                written.updated = Some(0);
                written.inserted = stored_rows.map(|rows| written.rows - rows as u64);
            }
            Ok::<_, DataFusionError>(Some((entry, compute, written)))
        }
        .await;
        let outcome = match mode {
            WriteMode::Upsert { .. } => Outcome::Upserted,
            _ => Outcome::WindowReplaced,
        };
        let tier_name = Some(tier.name().to_string());
        match merged {
            Ok(Some((entry, compute, written))) => {
                lead.finish(Ok(())).await;
                let mut prepared = self
                    .serve(
                        Source::Entry(Box::new(entry)),
                        Some(compute),
                        outcome,
                        tier_name,
                        None,
                    )
                    .await?;
                prepared.written = Some(written);
                Ok(prepared)
            }
            Ok(None) => {
                lead.finish(Ok(())).await;
                self.serve_null(Outcome::ComputedNull, None)
            }
            Err(error) => {
                let error = Arc::new(error);
                lead.finish(Err(Arc::clone(&error))).await;
                Err(DataFusionError::Shared(error))
            }
        }
    }
}

/// The whole entry after merging `computed` into `stored` as `mode` says,
/// for formats rewritten whole.
pub(super) fn rewritten(
    stored: DataFrame,
    computed: DataFrame,
    mode: &WriteMode,
) -> Result<DataFrame> {
    match mode {
        WriteMode::Upsert { keys } => {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let new_rows = computed.join(stored.clone(), JoinType::LeftAnti, &keys, &keys, None)?;
            stored.union(new_rows)
        }
        WriteMode::ReplaceWhere { predicate } => {
            // IS NOT TRUE keeps the rows whose time is null, which the
            // window never selects.
            let outside = stored.filter(Expr::IsNotTrue(Box::new(predicate.clone())))?;
            outside.union(computed)
        }
        WriteMode::Append => stored.union(computed),
        WriteMode::Replace => Ok(computed),
    }
}

//! Which misses are written in parallel by the cluster's workers, and the
//! write itself (see [`crate::parallel`] for how the parts are written and
//! committed).

use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use datafusion::dataframe::DataFrame;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{collect, ExecutionPlan};
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use nuthatch_backends::{Backend, WriteMode, WriteOptions, Written};
use nuthatch_catalog::{Entry, EntryId, Tier};

use super::sink::{compute_failed, Keep};
use super::{ascending, Resolver};
use crate::parallel::{parts_written, ParallelWrites, PartWriterExec, PartsTarget};

/// A miss stored by the workers: the entry, the plan that computed and
/// wrote it, and what was written.
pub(super) type StoredInParallel = (Entry, Arc<dyn ExecutionPlan>, Written);

impl Resolver<'_> {
    /// Why the miss of `id` on `tier` is not written in parallel; `None`
    /// when it is.
    fn not_in_parallel(
        &self,
        tier: &Tier,
        backend: &Arc<dyn Backend>,
        keep: &Keep,
    ) -> Option<&'static str> {
        let function = &self.call.function;
        if !tier.role().is_global() {
            return Some("the local tier is this machine's");
        }
        if !backend.parts() {
            return Some("the format does not store parts");
        }
        if keep.amends || !keep.replaces.is_empty() {
            return Some("the write amends an entry");
        }
        // Each part is sorted by time on its own, which is all a time
        // series needs; an order declared across all rows is not kept.
        let by_time: Vec<String> = function
            .timeseries()
            .map(str::to_string)
            .into_iter()
            .collect();
        if function.stored_order() != by_time || !function.grid().dimensions.is_empty() {
            return Some("the entry keeps an order across its rows");
        }
        let at = tier.entry_location(
            &**backend,
            &self.call.id.key,
            self.call.id.namespace.as_deref(),
        );
        let lossy = function
            .schema()
            .fields()
            .iter()
            .any(|field| !backend.losses(&at, field).is_empty());
        if lossy {
            return Some("the format would change values, which one writer counts");
        }
        None
    }

    /// Writes the miss of `id` computed by `frame` as parts, each written by
    /// the worker that computed its rows, when the session's cluster writes
    /// in parallel and the miss qualifies; `None` otherwise, for the
    /// write as always.
    pub(super) async fn store_in_parallel(
        &self,
        tier: &Tier,
        id: &EntryId,
        backend: &Arc<dyn Backend>,
        frame: &DataFrame,
    ) -> Result<Option<StoredInParallel>> {
        let Some(writes) = self.state.config().get_extension::<ParallelWrites>() else {
            return Ok(None);
        };
        let keep = self.keep_computed(tier, backend);
        if let Some(why) = self.not_in_parallel(tier, backend, &keep) {
            tracing::debug!(key = %id.key, "a miss written by the coordinator: {why}");
            return Ok(None);
        }
        let call = self.call;
        let failed = compute_failed(id.key.display().to_string());
        // Planned for one process, then spread with the writers on top, so
        // that each writer runs where its rows are computed.
        let (state, logical) = frame.clone().into_parts();
        let optimized = state.optimize(&logical).map_err(&failed)?;
        let local = DefaultPhysicalPlanner::default()
            .create_physical_plan(&optimized, &state)
            .await
            .map_err(&failed)?;
        let mut local = self.clipped(id, local, &keep)?;
        crate::lineage::note_files(&local, &call.reads);
        let time_column = call.function.timeseries().map(str::to_string);
        if let Some(column) = &time_column {
            let by_time = ascending(std::slice::from_ref(column), &local.schema())
                .map_err(&failed)?
                .ok_or_else(|| DataFusionError::Internal("an empty sort order".into()))?;
            local = Arc::new(SortExec::new(by_time, local).with_preserve_partitioning(true));
        }
        let options = WriteOptions {
            sorted_by: time_column.clone(),
            mode: WriteMode::Replace,
            covers: keep.covers.clone(),
            provisional: keep.provisional.clone(),
            parts: true,
            restores: self.recompute,
            ..WriteOptions::default()
        };
        let at = tier.entry_location(&**backend, &id.key, id.namespace.as_deref());
        let target = PartsTarget {
            backend: Arc::clone(backend),
            store_url: at.store_url,
            path: at.path,
            time_column,
        };
        let writers = Arc::new(PartWriterExec::new(local, target));
        let plan = Arc::new(CoalescePartitionsExec::new(writers));
        let Some(spread) = writes.0.spread(plan, &state).await.map_err(&failed)? else {
            tracing::debug!(key = %id.key, "a miss written by the coordinator: its compute stays here");
            return Ok(None);
        };
        let run = Arc::clone(&spread);
        let (written, entry) = call
            .catalog
            .store_parts(
                tier,
                id,
                backend,
                &options,
                &self.provenance(),
                call.function.schema(),
                |_| async { parts_written(&collect(run, state.task_ctx()).await?) },
            )
            .await?;
        let plan = spread;
        tracing::info!(key = %id.key, parts = written.parts, rows = written.rows, "stored by the workers, as parts");
        Ok(Some((entry, plan, written)))
    }
}

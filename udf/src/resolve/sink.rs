//! Storing a computed result as a DataFusion [`DataSink`].
//!
//! A miss runs `DataSinkExec(EntrySink) ← compute plan`, so the write is a
//! node of an ordinary plan: `EXPLAIN ANALYZE` shows it, with the rows and
//! bytes it stored and the time it took, above the compute that fed it
//! (the cached call lists both as its children once it has run, see
//! [`crate::exec`]). The sink hands the stream to [`Catalog::store`], which
//! owns the commit; what that produced is kept here for the resolver.
//! The resolver builds that plan here too (clipped to the call's window for
//! a local tier, in the order the entry keeps) as a [`WritePlan`], and runs
//! it to its commit, in place or in a task of its own (`through`).

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::execution::memory_pool::MemoryLimit;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, Time,
};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties,
};
use futures::TryStreamExt;
use nuthatch_backends::coverage::Coverage;
use nuthatch_backends::{Backend, WriteMode, WriteOptions, Written};
use nuthatch_catalog::{Catalog, Entry, EntryId, Error, Provenance, Tier};

use super::order::{in_stored_order, Rewrite};
use super::{ascending, Resolver};
use crate::lineage::note_files;
use crate::timeseries::provisional;

/// Where and how one computed result is stored.
pub(crate) struct EntrySink {
    catalog: Arc<Catalog>,
    tier: Tier,
    id: EntryId,
    backend: Arc<dyn Backend>,
    options: WriteOptions,
    provenance: Provenance,
    /// The function's declared schema, which the stored entry opens with.
    entry_schema: SchemaRef,
    /// What arrives: the compute plan's schema.
    input_schema: SchemaRef,
    /// Where the stored order leaves the result to write again, when rows
    /// arrived out of order after the write began (see [`Rewrite`]).
    rewrite: Option<Arc<Rewrite>>,
    stored: Mutex<Option<(Written, Entry)>>,
    metrics: SinkMetrics,
}

struct SinkMetrics {
    set: ExecutionPlanMetricsSet,
    rows: Count,
    bytes: Count,
    parts: Count,
    /// From the first poll of the input to the commit: compute, encoding
    /// and upload overlap, so this is the whole miss below the call.
    elapsed: Time,
}

impl SinkMetrics {
    fn new() -> Self {
        let set = ExecutionPlanMetricsSet::new();
        let rows = MetricBuilder::new(&set).counter("rows_written", 0);
        let bytes = MetricBuilder::new(&set).counter("bytes_written", 0);
        let parts = MetricBuilder::new(&set).counter("parts_written", 0);
        let elapsed = MetricBuilder::new(&set).subset_time("write_time", 0);
        SinkMetrics {
            set,
            rows,
            bytes,
            parts,
            elapsed,
        }
    }
}

impl EntrySink {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        catalog: Arc<Catalog>,
        tier: Tier,
        id: EntryId,
        backend: Arc<dyn Backend>,
        (options, provenance): (WriteOptions, Provenance),
        entry_schema: SchemaRef,
        input_schema: SchemaRef,
        rewrite: Option<Arc<Rewrite>>,
    ) -> Self {
        EntrySink {
            catalog,
            tier,
            id,
            backend,
            options,
            provenance,
            entry_schema,
            input_schema,
            rewrite,
            stored: Mutex::new(None),
            metrics: SinkMetrics::new(),
        }
    }

    async fn store(&self, data: SendableRecordBatchStream) -> Result<(Written, Entry)> {
        self.catalog
            .store(
                &self.tier,
                &self.id,
                &self.backend,
                data,
                &self.options,
                &self.provenance,
                &self.entry_schema,
            )
            .await
            .map_err(DataFusionError::from)
    }

    /// What the write produced, once it has committed.
    pub(crate) fn take_stored(&self) -> Option<(Written, Entry)> {
        self.stored.lock().expect("stored slot poisoned").take()
    }
}

impl fmt::Debug for EntrySink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntrySink")
            .field("tier", &self.tier.name())
            .field("key", &self.id.key)
            .field("backend", &self.backend.name())
            .finish()
    }
}

impl DisplayAs for EntrySink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "EntrySink: tier={}, backend={}, key={}",
            self.tier.name(),
            self.backend.name(),
            self.id.key
        )?;
        if let Some(column) = &self.options.sorted_by {
            write!(f, ", sorted_by={column}")?;
        }
        Ok(())
    }
}

#[async_trait]
impl DataSink for EntrySink {
    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.set.clone_inner())
    }

    fn schema(&self) -> &SchemaRef {
        &self.input_schema
    }

    async fn write_all(
        &self,
        data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let timer = self.metrics.elapsed.timer();
        let mut stored = self.store(data).await;
        // The write stopped at rows out of order; nothing of it is visible,
        // and the arranged rows are written from the start.
        if stored.is_err() {
            if let Some(arranged) = self.rewrite.as_ref().and_then(|r| r.take()) {
                if let Some(progress) = &self.options.progress {
                    progress.rows.store(0, Ordering::Relaxed);
                    progress.bytes.store(0, Ordering::Relaxed);
                }
                stored = self.store(arranged).await;
            }
        }
        let (written, entry) = stored?;
        timer.done();
        self.metrics.rows.add(written.rows as usize);
        self.metrics.bytes.add(written.bytes as usize);
        self.metrics.parts.add(written.parts as usize);
        // Registered once known: only some formats measure it.
        if let Some(took) = written.encode_time {
            MetricBuilder::new(&self.metrics.set)
                .subset_time("encode_time", 0)
                .add_duration(took);
        }
        let rows = written.rows;
        *self.stored.lock().expect("stored slot poisoned") = Some((written, entry));
        Ok(rows)
    }
}

/// Maps a failure of the body of the entry `key` to the catalog's error
/// that names it.
pub(crate) fn compute_failed(key: String) -> impl Fn(DataFusionError) -> Error {
    move |source| Error::ComputeFailed {
        key: key.clone(),
        source: Box::new(source),
    }
}

/// Which rows of a result an entry keeps, and the time it then covers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Keep {
    /// Only the rows within the call's window are stored (the local tier's
    /// copies, and a timeseries body that computes its window).
    pub(crate) window: bool,
    /// What the stored rows cover ([`WriteOptions::covers`]), and what of
    /// it is provisional.
    pub(crate) covers: Option<Coverage>,
    pub(crate) provisional: Option<Coverage>,
    /// The rows amend the entry ([`WriteOptions::amends`]).
    pub(crate) amends: bool,
    /// The entry is stored as parts ([`WriteOptions::parts`]).
    pub(crate) parts: bool,
    /// The stamp of the record the stored rows were read under
    /// ([`WriteOptions::based_on`]).
    pub(crate) based_on: Option<f64>,
    /// Parts a new part takes the place of ([`WriteOptions::replaces`]).
    pub(crate) replaces: Vec<String>,
    /// The rows are a copy of an entry: what its record says of where
    /// they came from, instead of this call's compute.
    pub(crate) copied_from: Option<Provenance>,
}

impl Keep {
    /// Every row, covering `covers`.
    pub(crate) fn all(covers: Option<Coverage>) -> Keep {
        Keep {
            covers,
            ..Keep::default()
        }
    }

    /// Rows that amend the stored entry, adding `covers` to what it
    /// covers; what of it ends within `settle` of now is provisional.
    pub(crate) fn amending(covers: Option<Coverage>, settle: Option<Duration>) -> Keep {
        Keep {
            provisional: covers.as_ref().and_then(|c| provisional(c, settle)),
            covers,
            amends: true,
            ..Keep::default()
        }
    }
}

/// The write of a computed result: `DataSinkExec(EntrySink)` above it.
pub(super) struct WritePlan {
    pub(super) plan: Arc<dyn ExecutionPlan>,
    sink: Arc<EntrySink>,
    pub(super) key: String,
    tier: String,
}

impl WritePlan {
    /// Runs the write to its commit.
    pub(super) async fn run(&self, context: Arc<TaskContext>) -> Result<(Written, Entry)> {
        // Failing to start the compute is the compute's failure; what the
        // stream yields is already told apart by the store.
        let stream = self
            .plan
            .execute(0, context)
            .map_err(compute_failed(self.key.clone()))?;
        stream.try_collect::<Vec<_>>().await?;
        let stored = self.sink.take_stored().ok_or_else(|| {
            DataFusionError::Internal("the entry sink finished without storing".into())
        })?;
        tracing::debug!(key = %self.key, tier = %self.tier, rows = stored.0.rows, bytes = stored.0.bytes, "stored");
        Ok(stored)
    }
}

impl Resolver<'_> {
    /// Whether the engine's memory pool has a limit.
    pub(super) fn memory_bounded(&self) -> bool {
        matches!(
            self.state.runtime_env().memory_pool.memory_limit(),
            MemoryLimit::Finite(_)
        )
    }

    /// The rows of the call's window, covering its span (all time when it
    /// has none), for a timeseries function.
    pub(super) fn keep_window(&self) -> Keep {
        let call = self.call;
        let covers = call
            .function
            .timeseries()
            .map(|_| Coverage::of([call.span()]));
        Keep {
            window: true,
            provisional: covers.as_ref().and_then(|c| provisional(c, call.settle)),
            covers,
            ..Keep::default()
        }
    }

    /// What the first compute of an entry on `tier` keeps: the call's
    /// window on the local tier (whose entries are keyed by it) and for a
    /// body that computes its window; otherwise every row, which for a
    /// whole series covers all time. An entry on root that will grow is
    /// stored as parts where `backend` can, so it grows a part at a time.
    pub(super) fn keep_computed(&self, tier: &Tier, backend: &Arc<dyn Backend>) -> Keep {
        let function = &self.call.function;
        if !tier.role().is_global() {
            return self.keep_window();
        }
        if function.covers_windows() {
            return Keep {
                parts: backend.parts(),
                ..self.keep_window()
            };
        }
        Keep::all(function.coverage().map(|_| Coverage::all()))
    }

    /// `plan` clipped to the call's window when `keep` says so.
    pub(super) fn clipped(
        &self,
        id: &EntryId,
        plan: Arc<dyn ExecutionPlan>,
        keep: &Keep,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match (keep.window, &self.shape.full_window) {
            (true, Some(window)) => Ok(Arc::new(
                FilterExec::try_new(Arc::clone(window), plan)
                    .map_err(compute_failed(id.key.display().to_string()))?,
            )),
            _ => Ok(plan),
        }
    }

    /// The write of `plan` into `tier` as `id`, in the order the entry
    /// keeps, not yet run; `keep` says what it covers (its rows are already
    /// clipped).
    pub(super) fn write_plan(
        &self,
        tier: &Tier,
        id: &EntryId,
        backend: &Arc<dyn Backend>,
        plan: Arc<dyn ExecutionPlan>,
        mode: WriteMode,
        keep: &Keep,
    ) -> Result<WritePlan> {
        let call = self.call;
        let failed = compute_failed(id.key.display().to_string());
        let mut plan = plan;
        let sorted_by = call.function.timeseries().map(str::to_string);
        // A gridded result is written a slab of the outermost dimension at a
        // time, so it arrives sorted by the dimensions; others in the order
        // the function declares, else by time.
        let grid = call.function.grid();
        let order: Vec<String> = if !grid.dimensions.is_empty() && backend.grid() {
            grid.dimensions.clone()
        } else {
            call.function.stored_order()
        };
        let mut rewrite = None;
        if !order.is_empty() {
            let bounded = self.memory_bounded();
            let ordering = ascending(&order, &plan.schema())
                .map_err(&failed)?
                .ok_or_else(|| DataFusionError::Internal("an empty sort order".into()))?;
            (plan, rewrite) = in_stored_order(plan, ordering, bounded).map_err(&failed)?;
        }
        if plan.output_partitioning().partition_count() > 1 {
            plan = Arc::new(CoalescePartitionsExec::new(plan));
        }
        let options = WriteOptions {
            sorted_by,
            order,
            progress: Some(Arc::clone(&self.running.written)),
            dimensions: grid.dimensions.clone(),
            chunking: grid.chunking_for(&call.args),
            mode,
            covers: keep.covers.clone(),
            provisional: keep.provisional.clone(),
            amends: keep.amends,
            parts: keep.parts,
            based_on: keep.based_on,
            replaces: keep.replaces.clone(),
            exact: call.exact,
            restores: self.recompute,
            before_publish: None,
        };
        let provenance = match &keep.copied_from {
            Some(copied) => copied.clone(),
            None => {
                note_files(&plan, &call.reads);
                self.provenance()
            }
        };
        let sink = Arc::new(EntrySink::new(
            Arc::clone(&call.catalog),
            tier.clone(),
            id.clone(),
            Arc::clone(backend),
            (options, provenance),
            Arc::clone(call.function.schema()),
            plan.schema(),
            rewrite,
        ));
        let write: Arc<dyn ExecutionPlan> = Arc::new(DataSinkExec::new(
            plan,
            Arc::clone(&sink) as Arc<dyn DataSink>,
            None,
        ));
        Ok(WritePlan {
            plan: write,
            sink,
            key: id.key.display().to_string(),
            tier: tier.name().to_string(),
        })
    }
}

//! Executing a cached call.
//!
//! [`CachedCallExec`] is planned like any scan, but its work starts only when
//! it runs: the first partition to run resolves the call ([`prepare`]), and
//! every partition then streams its share of the inner plan that produced.
//! When the last partition finishes, the call's report goes to its
//! session's log.
//!
//! Resolving follows the mode's [`Policy`]: read a valid entry; or compute,
//! streaming the result through the backend into the store and scanning
//! what was stored; or compute and stream the result straight into the
//! query. A compute that stores first claims the entry in the catalog's
//! in-flight map, so identical calls running at the same time (a self-join,
//! two sessions) compute once and read the one stored entry.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::compute::SortOptions;
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::context::SessionState;
use datafusion::execution::memory_pool::MemoryLimit;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{col, Expr};
use datafusion::physical_expr::expressions::{col as physical_col, Column};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning};
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::metrics::{Metric, MetricValue, MetricsSet};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    execute_stream, DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties,
    PhysicalExpr, PlanProperties,
};
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use nuthatch_backends::{Backend, WriteOptions};
use nuthatch_catalog::{CallReport, Claim, Entry, Error, Followed, Outcome, Policy};

use crate::call::Call;
use crate::compute::body_frame;

/// How the stored data is to be read for one call.
#[derive(Debug, Clone)]
pub struct ScanShape {
    /// Columns read from the entry (`None`: all).
    pub scan_indices: Option<Vec<usize>>,
    pub scan_schema: SchemaRef,
    /// Columns of the scan kept in the output, when the scan read the time
    /// column only for the window.
    pub output_indices: Option<Vec<usize>>,
    /// The query's filters and the window, over the full schema, for the
    /// backend to prune with.
    pub filters: Vec<Expr>,
    /// The clip window over the scan schema, applied exactly.
    pub window_filter: Option<Arc<dyn PhysicalExpr>>,
    pub limit: Option<usize>,
    pub partitions: usize,
}

/// The inner plan, once the call is resolved.
struct Prepared {
    plan: Arc<dyn ExecutionPlan>,
    /// The compute that ran, if any (for its metrics).
    compute: Option<Arc<dyn ExecutionPlan>>,
    outcome: Outcome,
    tier: Option<String>,
    backend: String,
    started: Instant,
}

type PreparedFuture =
    Shared<BoxFuture<'static, std::result::Result<Arc<Prepared>, Arc<DataFusionError>>>>;

pub struct CachedCallExec {
    call: Arc<Call>,
    state: Arc<SessionState>,
    shape: ScanShape,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    prepared: Arc<Mutex<Option<PreparedFuture>>>,
    tracker: Arc<Tracker>,
}

impl CachedCallExec {
    pub fn new(call: Arc<Call>, state: Arc<SessionState>, shape: ScanShape) -> Result<Self> {
        let schema = match &shape.output_indices {
            Some(indices) => Arc::new(shape.scan_schema.project(indices)?),
            None => Arc::clone(&shape.scan_schema),
        };
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(shape.partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        let tracker = Arc::new(Tracker::new(Arc::clone(&call), shape.partitions));
        Ok(CachedCallExec {
            call,
            state,
            shape,
            schema,
            properties,
            prepared: Arc::new(Mutex::new(None)),
            tracker,
        })
    }

    /// The shared future that resolves the call; created by the first
    /// partition that runs, awaited by all.
    fn prepared(&self) -> PreparedFuture {
        let mut slot = self.prepared.lock().expect("prepared slot poisoned");
        slot.get_or_insert_with(|| {
            let call = Arc::clone(&self.call);
            let state = Arc::clone(&self.state);
            let shape = self.shape.clone();
            async move {
                prepare(call, state, shape)
                    .await
                    .map(Arc::new)
                    .map_err(Arc::new)
            }
            .boxed()
            .shared()
        })
        .clone()
    }
}

impl fmt::Debug for CachedCallExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedCallExec")
            .field("key", &self.call.id.key)
            .finish()
    }
}

impl DisplayAs for CachedCallExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let call = &self.call;
        write!(
            f,
            "CachedCallExec: function={}, key={}",
            call.function.name(),
            call.id.key
        )?;
        if let Some(ns) = &call.id.namespace {
            write!(f, ", namespace={ns}")?;
        }
        write!(f, ", mode={}", call.mode)?;
        if let Some(backend) = &call.backend {
            write!(f, ", backend={backend}")?;
        }
        if !self.shape.filters.is_empty() {
            let filters: Vec<String> = self.shape.filters.iter().map(Expr::to_string).collect();
            write!(f, ", pruning=[{}]", filters.join(", "))?;
        }
        Ok(())
    }
}

impl ExecutionPlan for CachedCallExec {
    fn name(&self) -> &str {
        "CachedCallExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "CachedCallExec has no children".into(),
            ))
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let prepared = self.prepared();
        let tracker = Arc::clone(&self.tracker);
        let stream = futures::stream::once(async move {
            let prepared = prepared.await.map_err(DataFusionError::Shared)?;
            tracker.prepared.get_or_init(|| Arc::clone(&prepared));
            prepared.plan.execute(partition, context)
        })
        .try_flatten();
        let counted = Counted {
            inner: Box::pin(stream),
            tracker: Arc::clone(&self.tracker),
            finished: false,
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            counted,
        )))
    }

    /// The metrics of the scan and of the compute, once run.
    fn metrics(&self) -> Option<MetricsSet> {
        let prepared = self.tracker.prepared.get()?;
        let mut all = MetricsSet::new();
        collect_metrics(&prepared.plan, &mut |m| all.push(Arc::clone(m)));
        if let Some(compute) = &prepared.compute {
            collect_metrics(compute, &mut |m| all.push(Arc::clone(m)));
        }
        Some(all)
    }
}

/// Resolves the call as its mode's policy says.
async fn prepare(call: Arc<Call>, state: Arc<SessionState>, shape: ScanShape) -> Result<Prepared> {
    let started = Instant::now();
    let policy = call.mode.policy();
    let recompute = call.options.recompute;
    let schema = call.function.schema();
    if policy.read && !recompute {
        if let Some(entry) = call
            .catalog
            .resolve(&call.id, call.backend.as_deref(), schema)
            .await?
        {
            return read(&state, &shape, entry, None, Outcome::Hit, started).await;
        }
    }
    if !policy.compute {
        let tiers: Vec<String> = call
            .catalog
            .tiers()
            .map(|t| format!("{} tier at {}", t.name(), t.url()))
            .collect();
        return Err(Error::StrictMiss {
            function: call.function.name().to_string(),
            key: call.id.key.display().to_string(),
            tiers: tiers.join(", "),
            mode: call.mode.to_string(),
        }
        .into());
    }
    let backend = call.write_backend()?;
    if !policy.write {
        return compute_unstored(&call, &state, &shape, &backend, started).await;
    }
    // Fail before computing, not after, when nothing could be stored.
    call.catalog.writable_tier(&call.id)?;
    let inflight_key = call.inflight_key(backend.as_ref());
    loop {
        match call.catalog.inflight().claim(&inflight_key) {
            Claim::Follow(follow) => {
                tracing::debug!(key = %call.id.key, "waiting for an identical compute");
                match follow.wait().await {
                    Followed::Stored => {
                        let stored = call
                            .catalog
                            .resolve(&call.id, Some(backend.name()), schema)
                            .await?;
                        if let Some(entry) = stored {
                            return read(&state, &shape, entry, None, Outcome::Hit, started).await;
                        }
                    }
                    Followed::Failed(error) => return Err(DataFusionError::Shared(error)),
                    Followed::Abandoned => {}
                }
            }
            Claim::Lead(lead) => {
                let led = lead_compute(&call, &state, &backend, policy).await;
                return match led {
                    Ok(Led::Stored(entry, compute)) => {
                        lead.finish(Ok(()));
                        read(
                            &state,
                            &shape,
                            entry,
                            Some(compute),
                            Outcome::Computed,
                            started,
                        )
                        .await
                    }
                    Ok(Led::Found(entry)) => {
                        lead.finish(Ok(()));
                        read(&state, &shape, entry, None, Outcome::Hit, started).await
                    }
                    Ok(Led::KeepExisting) => {
                        lead.finish(Ok(()));
                        compute_unstored(&call, &state, &shape, &backend, started).await
                    }
                    Err(error) => {
                        let error = Arc::new(error);
                        lead.finish(Err(Arc::clone(&error)));
                        Err(DataFusionError::Shared(error))
                    }
                };
            }
        }
    }
}

/// What the leading call of a compute did.
enum Led {
    /// Computed and stored this entry.
    Stored(Entry, Arc<dyn ExecutionPlan>),
    /// Found it stored after all (another process, or a leader that just
    /// finished).
    Found(Entry),
    /// Recomputing under `write` keeps the valid entry: compute unstored.
    KeepExisting,
}

async fn lead_compute(
    call: &Call,
    state: &SessionState,
    backend: &Arc<dyn Backend>,
    policy: Policy,
) -> Result<Led> {
    let schema = call.function.schema();
    let recompute = call.options.recompute;
    if policy.read && !recompute {
        if let Some(entry) = call
            .catalog
            .resolve(&call.id, call.backend.as_deref(), schema)
            .await?
        {
            return Ok(Led::Found(entry));
        }
    }
    if recompute && !policy.replace {
        let existing = call
            .catalog
            .resolve(&call.id, Some(backend.name()), schema)
            .await?;
        if existing.is_some() {
            tracing::warn!(
                "{}: recomputed, but cache_mode 'write' keeps the existing entry; use \
                 cache_mode => 'overwrite' to replace it",
                call.id.key
            );
            return Ok(Led::KeepExisting);
        }
    }
    tracing::info!(function = call.function.name(), key = %call.id.key, "computing");
    let failed = |source: DataFusionError| Error::ComputeFailed {
        key: call.id.key.display().to_string(),
        source: Box::new(source),
    };
    let mut frame = body_frame(call, state).await.map_err(failed)?;
    let sorted_by = call.function.timeseries().map(str::to_string);
    let bounded = matches!(
        state.runtime_env().memory_pool.memory_limit(),
        MemoryLimit::Finite(_)
    );
    let task = Arc::new(frame.task_ctx());
    let compute = match &sorted_by {
        // Sorted in the plan, where a sort larger than memory spills.
        Some(column) if bounded => {
            // Under a limit one sorter owns the pool: partitions sorting side
            // by side race for fair shares, and one partition's in-memory
            // merge can starve the other's.
            let plan = frame.create_physical_plan().await.map_err(failed)?;
            sort_in_one_partition(plan, column).map_err(failed)?
        }
        Some(column) => {
            let time = col(datafusion::common::Column::new_unqualified(column));
            frame = frame.sort(vec![time.sort(true, true)]).map_err(failed)?;
            frame.create_physical_plan().await.map_err(failed)?
        }
        None => frame.create_physical_plan().await.map_err(failed)?,
    };
    let stream = execute_stream(Arc::clone(&compute), task).map_err(failed)?;
    let options = WriteOptions { sorted_by };
    let (written, entry) = call
        .catalog
        .store(&call.id, backend, stream, &options, schema)
        .await?;
    tracing::debug!(key = %call.id.key, rows = written.rows, bytes = written.bytes, "computed and stored");
    Ok(Led::Stored(entry, compute))
}

/// `plan`'s rows in one partition, ascending by `column`, nulls first.
fn sort_in_one_partition(
    plan: Arc<dyn ExecutionPlan>,
    column: &str,
) -> Result<Arc<dyn ExecutionPlan>> {
    let time = physical_col(column, &plan.schema())?;
    let ordering = LexOrdering::new([PhysicalSortExpr::new(
        time,
        SortOptions {
            descending: false,
            nulls_first: true,
        },
    )])
    .ok_or_else(|| DataFusionError::Internal("an empty sort order".into()))?;
    let input: Arc<dyn ExecutionPlan> = if plan.output_partitioning().partition_count() > 1 {
        Arc::new(CoalescePartitionsExec::new(plan))
    } else {
        plan
    };
    Ok(Arc::new(SortExec::new(ordering, input)))
}

/// Scans a stored entry, pushing the query's projection, filters and limit
/// into the backend's provider.
async fn read(
    state: &SessionState,
    shape: &ScanShape,
    entry: Entry,
    compute: Option<Arc<dyn ExecutionPlan>>,
    outcome: Outcome,
    started: Instant,
) -> Result<Prepared> {
    let scan = entry
        .provider
        .scan(
            state,
            shape.scan_indices.as_ref(),
            &shape.filters,
            shape.limit,
        )
        .await?;
    Ok(Prepared {
        plan: fit(clip(scan, shape)?, shape.partitions)?,
        compute,
        outcome,
        tier: Some(entry.tier.name().to_string()),
        backend: entry.backend.name().to_string(),
        started,
    })
}

/// Computes and streams the result into the query without storing it.
async fn compute_unstored(
    call: &Call,
    state: &SessionState,
    shape: &ScanShape,
    backend: &Arc<dyn Backend>,
    started: Instant,
) -> Result<Prepared> {
    tracing::info!(function = call.function.name(), key = %call.id.key, "computing (not stored)");
    let failed = |source: DataFusionError| -> DataFusionError {
        Error::ComputeFailed {
            key: call.id.key.display().to_string(),
            source: Box::new(source),
        }
        .into()
    };
    let frame = body_frame(call, state).await.map_err(failed)?;
    let compute = frame.create_physical_plan().await.map_err(failed)?;
    let mut plan = Arc::clone(&compute);
    if let Some(indices) = &shape.scan_indices {
        plan = project(plan, indices)?;
    }
    Ok(Prepared {
        plan: fit(clip(plan, shape)?, shape.partitions)?,
        compute: None,
        outcome: Outcome::ComputedNotStored,
        tier: None,
        backend: backend.name().to_string(),
        started,
    })
}

fn project(input: Arc<dyn ExecutionPlan>, indices: &[usize]) -> Result<Arc<dyn ExecutionPlan>> {
    let schema = input.schema();
    let exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = indices
        .iter()
        .map(|&i| {
            let name = schema.field(i).name().clone();
            (
                Arc::new(Column::new(&name, i)) as Arc<dyn PhysicalExpr>,
                name,
            )
        })
        .collect();
    Ok(Arc::new(ProjectionExec::try_new(exprs, input)?))
}

/// Applies the window exactly and drops the time column if only the window
/// needed it.
fn clip(input: Arc<dyn ExecutionPlan>, shape: &ScanShape) -> Result<Arc<dyn ExecutionPlan>> {
    let mut plan = input;
    if let Some(window) = &shape.window_filter {
        plan = Arc::new(FilterExec::try_new(Arc::clone(window), plan)?);
    }
    if let Some(indices) = &shape.output_indices {
        plan = project(plan, indices)?;
    }
    Ok(plan)
}

/// Gives the inner plan the partition count the exec declared when it was
/// planned (before anyone knew what the entry or the compute would give).
fn fit(plan: Arc<dyn ExecutionPlan>, partitions: usize) -> Result<Arc<dyn ExecutionPlan>> {
    if plan.output_partitioning().partition_count() == partitions {
        return Ok(plan);
    }
    Ok(Arc::new(RepartitionExec::try_new(
        plan,
        Partitioning::RoundRobinBatch(partitions),
    )?))
}

fn collect_metrics(plan: &Arc<dyn ExecutionPlan>, sink: &mut dyn FnMut(&Arc<Metric>)) {
    if let Some(metrics) = plan.metrics() {
        for metric in metrics.iter() {
            sink(metric);
        }
    }
    for child in plan.children() {
        collect_metrics(child, sink);
    }
}

/// Counts rows across partitions and logs the report when all are done.
struct Tracker {
    call: Arc<Call>,
    remaining: AtomicUsize,
    rows: AtomicUsize,
    prepared: OnceLock<Arc<Prepared>>,
}

impl Tracker {
    fn new(call: Arc<Call>, partitions: usize) -> Self {
        Tracker {
            call,
            remaining: AtomicUsize::new(partitions),
            rows: AtomicUsize::new(0),
            prepared: OnceLock::new(),
        }
    }

    fn partition_done(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let Some(prepared) = self.prepared.get() else {
            return;
        };
        let (mut pruned, mut matched, mut bytes, mut pruning_seen) = (0, 0, 0, false);
        collect_metrics(&prepared.plan, &mut |metric| match metric.value() {
            MetricValue::PruningMetrics {
                name,
                pruning_metrics,
            } if name == "row_groups_pruned_statistics" => {
                pruning_seen = true;
                pruned += pruning_metrics.pruned();
                matched += pruning_metrics.matched();
            }
            MetricValue::Count { name, count } if name == "bytes_scanned" => bytes += count.value(),
            _ => {}
        });
        let mut spilled = 0;
        if let Some(compute) = &prepared.compute {
            collect_metrics(compute, &mut |metric| {
                if let MetricValue::SpilledBytes(count) = metric.value() {
                    spilled += count.value();
                }
            });
        }
        let call = &self.call;
        let scanned = prepared.outcome != Outcome::ComputedNotStored;
        call.reports.push(CallReport {
            function: call.function.name().to_string(),
            outcome: prepared.outcome,
            tier: prepared.tier.clone(),
            backend: prepared.backend.clone(),
            key: call.id.key.as_str().to_string(),
            namespace: call.id.namespace.clone(),
            rows: self.rows.load(Ordering::Acquire),
            row_groups_read: (scanned && pruning_seen).then_some((matched, matched + pruned)),
            bytes_scanned: scanned.then_some(bytes),
            spilled_bytes: spilled,
            elapsed: prepared.started.elapsed(),
        });
    }
}

/// One partition's stream, counted.
struct Counted {
    inner: Pin<Box<dyn Stream<Item = Result<RecordBatch>> + Send>>,
    tracker: Arc<Tracker>,
    finished: bool,
}

impl Stream for Counted {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.poll_next_unpin(cx);
        match &polled {
            Poll::Ready(Some(Ok(batch))) => {
                self.tracker
                    .rows
                    .fetch_add(batch.num_rows(), Ordering::AcqRel);
            }
            Poll::Ready(None) if !self.finished => {
                self.finished = true;
                self.tracker.partition_done();
            }
            _ => {}
        }
        polled
    }
}

impl Drop for Counted {
    // A partition dropped early (LIMIT, cancellation) still counts as done.
    fn drop(&mut self) {
        if !self.finished {
            self.finished = true;
            self.tracker.partition_done();
        }
    }
}

//! Executing a cached call.
//!
//! [`CachedCallExec`] is planned like any scan, but its work starts only when
//! it runs: the first partition to run resolves the entry (or computes and
//! writes it), builds the inner plan — a Parquet scan of the entry, or the
//! computed batches when nothing was stored — and every partition then
//! streams its share of that plan. When the last partition finishes, the
//! call's report is logged.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::context::{SessionContext, SessionState};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{cast as cast_expr, col};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{EquivalenceProperties, Partitioning};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::metrics::{MetricValue, MetricsSet};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr, PlanProperties,
};
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use nuthatch_backends::parquet::{scan_plan, ScanRequest};
use nuthatch_catalog::{CallReport, Entry, Outcome};

use crate::function::{Body, Computed};
use crate::table_function::Call;

/// How the stored data is to be read for one call.
#[derive(Debug, Clone)]
pub struct ScanShape {
    /// Columns read from the entry (`None`: all).
    pub scan_indices: Option<Vec<usize>>,
    pub scan_schema: SchemaRef,
    /// Columns of the scan kept in the output, when the scan read the time
    /// column only for the window.
    pub output_indices: Option<Vec<usize>>,
    /// Predicate over the full schema, for row-group and page pruning.
    pub pruning: Option<Arc<dyn PhysicalExpr>>,
    /// The clip window over the scan schema, applied exactly.
    pub window_filter: Option<Arc<dyn PhysicalExpr>>,
    pub limit: Option<usize>,
    pub partitions: usize,
}

/// The inner plan, once the entry is resolved.
struct Prepared {
    plan: Arc<dyn ExecutionPlan>,
    outcome: Outcome,
    tier: Option<String>,
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

    /// The shared future that resolves the entry; created by the first
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
        if let Some(pruning) = &self.shape.pruning {
            write!(f, ", pruning={pruning}")?;
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

    /// The inner scan's metrics (row groups pruned, bytes scanned), once run.
    fn metrics(&self) -> Option<MetricsSet> {
        let prepared = self.tracker.prepared.get()?;
        let mut all = MetricsSet::new();
        collect_metrics(&prepared.plan, &mut |m| all.push(Arc::clone(m)));
        Some(all)
    }
}

/// Resolves the call: a hit scans the entry; a miss computes, stores when
/// the mode allows, and scans what it stored (or the batches themselves).
async fn prepare(call: Arc<Call>, state: Arc<SessionState>, shape: ScanShape) -> Result<Prepared> {
    let started = Instant::now();
    let function = &call.function;
    let catalog = &call.catalog;
    let backend = Some(function.backend());
    let recompute = call.bound.options.recompute;
    if call.mode.reads_root() && !recompute {
        if let Some(entry) = catalog.find(&call.id, backend).await? {
            let plan = scan_entry(&state, &call, &shape, entry.clone())?;
            return Ok(Prepared {
                plan,
                outcome: Outcome::Hit,
                tier: Some(entry.tier.name().into()),
                started,
            });
        }
    }
    if call.mode.fails_on_miss() {
        return Err(DataFusionError::Execution(format!(
            "{}: no cache entry {} on the root tier at {}, and cache_mode '{}' does not compute; \
             call with cache_mode => 'write' to compute it",
            function.name(),
            call.id.key.display(),
            catalog.root().location(),
            call.mode
        )));
    }
    tracing::info!(function = function.name(), key = %call.id.key, "computing");
    let batches = compute(&call, &state).await.map_err(|e| {
        DataFusionError::Execution(format!(
            "computing {} failed, nothing was stored: {e}",
            call.id.key.display()
        ))
    })?;
    let mut store = call.mode.writes_root();
    if store
        && recompute
        && !call.mode.replaces_existing()
        && catalog.find(&call.id, backend).await?.is_some()
    {
        tracing::warn!(
            "{}: recomputed, but cache_mode 'write' keeps the existing entry; use \
             cache_mode => 'overwrite' to replace it",
            call.id.key
        );
        store = false;
    }
    if store {
        let schema = function.schema();
        catalog
            .commit(
                &call.id,
                function.backend(),
                schema,
                &batches,
                function.timeseries(),
            )
            .await?;
        let entry = catalog.find(&call.id, backend).await?.ok_or_else(|| {
            DataFusionError::Execution(format!(
                "entry {} vanished right after it was stored",
                call.id.key
            ))
        })?;
        let plan = scan_entry(&state, &call, &shape, entry)?;
        return Ok(Prepared {
            plan,
            outcome: Outcome::Computed,
            tier: Some("root".into()),
            started,
        });
    }
    let mut partitions: Vec<Vec<RecordBatch>> = vec![Vec::new(); shape.partitions];
    for (i, batch) in batches.into_iter().enumerate() {
        partitions[i % shape.partitions].push(batch);
    }
    let source = MemorySourceConfig::try_new_exec(
        &partitions,
        Arc::clone(function.schema()),
        shape.scan_indices.clone(),
    )?;
    let plan = clip(source, &shape)?;
    Ok(Prepared {
        plan,
        outcome: Outcome::ComputedNotStored,
        tier: None,
        started,
    })
}

fn scan_entry(
    state: &SessionState,
    call: &Call,
    shape: &ScanShape,
    entry: Entry,
) -> Result<Arc<dyn ExecutionPlan>> {
    let scan = scan_plan(ScanRequest {
        store_url: entry.tier.store_url().clone(),
        files: entry.files,
        schema: Arc::clone(call.function.schema()),
        options: state.table_options().parquet.clone(),
        predicate: shape.pruning.clone(),
        projection: shape.scan_indices.clone(),
        limit: shape.limit,
        partitions: shape.partitions,
    })?;
    clip(scan, shape)
}

/// Applies the window exactly and drops the time column if only the window
/// needed it.
fn clip(input: Arc<dyn ExecutionPlan>, shape: &ScanShape) -> Result<Arc<dyn ExecutionPlan>> {
    let mut plan = input;
    if let Some(window) = &shape.window_filter {
        plan = Arc::new(FilterExec::try_new(Arc::clone(window), plan)?);
    }
    if let Some(indices) = &shape.output_indices {
        let schema = plan.schema();
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
        plan = Arc::new(ProjectionExec::try_new(exprs, plan)?);
    }
    Ok(plan)
}

/// Runs the function body and returns its result in the declared schema.
async fn compute(call: &Call, state: &SessionState) -> Result<Vec<RecordBatch>> {
    let function = &call.function;
    let args = call.bound.args.clone();
    let computed = match function.body() {
        Body::Rust(body) => body(SessionContext::new_with_state(state.clone()), args).await?,
        Body::Sql(body) => Computed::Frame(DataFrame::new(
            state.clone(),
            body.plan(state, &args).await?,
        )),
    };
    let schema = function.schema();
    // The body may return columns in any order and of castable types; what
    // is stored is always the declared schema.
    let missing = |have: &arrow::datatypes::Schema, want: &str| {
        let names: Vec<&str> = have.fields().iter().map(|f| f.name().as_str()).collect();
        DataFusionError::Execution(format!(
            "the body of {} returned no column '{want}'; it returned {}",
            function.name(),
            names.join(", ")
        ))
    };
    match computed {
        Computed::Frame(frame) => {
            let mut columns = Vec::new();
            for field in schema.fields() {
                if frame
                    .schema()
                    .as_arrow()
                    .field_with_name(field.name())
                    .is_err()
                {
                    return Err(missing(frame.schema().as_arrow(), field.name()));
                }
                let column = col(datafusion::common::Column::new_unqualified(field.name()));
                columns.push(cast_expr(column, field.data_type().clone()).alias(field.name()));
            }
            frame.select(columns)?.collect().await
        }
        Computed::Batches(batches) => batches
            .into_iter()
            .map(|batch| {
                let mut columns = Vec::new();
                for field in schema.fields() {
                    let column = batch
                        .column_by_name(field.name())
                        .ok_or_else(|| missing(&batch.schema(), field.name()))?;
                    columns.push(cast(column, field.data_type())?);
                }
                Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
            })
            .collect(),
    }
}

fn collect_metrics(
    plan: &Arc<dyn ExecutionPlan>,
    sink: &mut dyn FnMut(&Arc<datafusion::physical_plan::metrics::Metric>),
) {
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
        let call = &self.call;
        let scanned = prepared.outcome != Outcome::ComputedNotStored;
        call.catalog.reports().push(CallReport {
            function: call.function.name().to_string(),
            outcome: prepared.outcome,
            tier: prepared.tier.clone(),
            backend: call.function.backend().name().to_string(),
            key: call.id.key.as_str().to_string(),
            namespace: call.id.namespace.clone(),
            rows: self.rows.load(Ordering::Acquire),
            row_groups_read: (scanned && pruning_seen).then_some((matched, matched + pruned)),
            bytes_scanned: scanned.then_some(bytes),
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

//! Executing a cached call.
//!
//! [`CachedCallExec`] is planned like any scan, but its work starts only when
//! it runs: the first partition to run resolves the call
//! ([`crate::resolve`]), and every partition then streams its share of the
//! inner plan that produced. When the last partition finishes (or the plan
//! is dropped, if a query stopped before running them all), the call's
//! report goes to its session's log.
//!
//! What the call ran is only known once it has run, so the exec is a leaf
//! while it is planned and optimized, and lists the plans it ran as its
//! children afterwards: the write of a miss (a `DataSinkExec` above the
//! compute) and the plan that served the rows. That is what
//! `EXPLAIN ANALYZE` walks, so it shows where a call spent its time with
//! each plan's own metrics, as for any other node. Nothing rewrites a plan
//! after it ran, and `with_new_children` given back the same children
//! keeps the exec as it is; DataFusion replaces them only to run the plan
//! again (`reset_state`), which gives a fresh call.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::context::SessionState;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{EquivalenceProperties, Partitioning};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, Metric, MetricBuilder, MetricValue, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr, PlanProperties,
};
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use nuthatch_catalog::{CallReport, Outcome, Phase, Running};

use crate::call::Call;
use crate::resolve::{prepare, Prepared, ScanShape};

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
    /// Rows served per partition, and the time resolving took (lookups,
    /// and on a miss the compute and the write).
    metrics: ExecutionPlanMetricsSet,
}

impl CachedCallExec {
    pub fn new(call: Arc<Call>, state: Arc<SessionState>, shape: ScanShape) -> Result<Self> {
        let schema = match &shape.output_indices {
            Some(indices) => Arc::new(shape.scan_schema.project(indices)?),
            None => Arc::clone(&shape.scan_schema),
        };
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new_with_orderings(Arc::clone(&schema), shape.ordering.clone()),
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
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// The same call serving one partition in its declared order, if it
    /// declares one and serves several now: what a plan that needs one
    /// ordered stream can ask for instead of merging the partitions. The
    /// call then reads a sorted entry front to back.
    pub fn in_one_partition(&self) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        if self.shape.ordering.is_none() || self.shape.partitions <= 1 {
            return Ok(None);
        }
        let shape = ScanShape {
            partitions: 1,
            ..self.shape.clone()
        };
        let one = CachedCallExec::new(Arc::clone(&self.call), Arc::clone(&self.state), shape)?;
        Ok(Some(Arc::new(one)))
    }

    /// Resolves the call now, in this process, and returns the plan that
    /// serves its rows: what a coordinator does before it sends the
    /// reading of a stored entry to its workers. Running the exec after
    /// this serves the same resolution; nothing is looked up twice.
    pub async fn resolve(&self) -> Result<Arc<dyn ExecutionPlan>> {
        let prepared = self.prepared().await.map_err(DataFusionError::Shared)?;
        self.tracker.prepared.get_or_init(|| Arc::clone(&prepared));
        Ok(Arc::clone(&prepared.plan))
    }

    /// Reports a call whose rows were served by a copy of its plan that
    /// ran elsewhere (on workers): `rows` served, and `served`, that copy
    /// with the metrics it gathered, for what was read. Takes the place of
    /// the report the exec makes when its own partitions finish.
    pub fn report_served(&self, rows: usize, served: &Arc<dyn ExecutionPlan>) {
        self.tracker.rows.store(rows, Ordering::Release);
        self.tracker.report_from(Some(served));
    }

    /// The shared future that resolves the call; created by the first
    /// partition that runs, awaited by all.
    fn prepared(&self) -> PreparedFuture {
        let mut slot = self.prepared.lock().expect("prepared slot poisoned");
        slot.get_or_insert_with(|| {
            let call = Arc::clone(&self.call);
            let state = Arc::clone(&self.state);
            let shape = self.shape.clone();
            let running = self
                .tracker
                .running
                .get_or_init(|| {
                    call.reports
                        .begin(call.function.name(), call.id.key.display())
                })
                .clone();
            let resolve_time = MetricBuilder::new(&self.metrics).subset_time("resolve_time", 0);
            async move {
                let timer = resolve_time.timer();
                let prepared = prepare(call, state, shape, Arc::clone(&running)).await;
                timer.done();
                if !prepared.as_ref().is_ok_and(|p| p.storing) {
                    running.set_phase(Phase::Reading);
                }
                prepared.map(Arc::new).map_err(Arc::new)
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
        match call.mode {
            Some(mode) => write!(f, ", mode={mode}")?,
            None => f.write_str(", mode=default")?,
        }
        if let Some(backend) = &call.backend {
            write!(f, ", backend={}", backend.name())?;
        }
        if let Some(backend) = &call.storage_backend {
            write!(f, ", storage_backend={}", backend.name())?;
        }
        if call.memoize {
            f.write_str(", memoize")?;
        }
        if !self.shape.filters.is_empty() {
            let filters: Vec<String> = self.shape.filters.iter().map(Expr::to_string).collect();
            write!(f, ", pruning=[{}]", filters.join(", "))?;
        }
        if let Some(prepared) = self.tracker.prepared.get() {
            write!(f, ", outcome={}", prepared.outcome.name())?;
            if let Some(tier) = &prepared.tier {
                write!(f, ", tier={tier}")?;
            }
            write!(f, ", served_by={}", prepared.backend)?;
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

    /// None while planning; the plans the call ran, once it has (see the
    /// module docs).
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        let Some(prepared) = self.tracker.prepared.get() else {
            return vec![];
        };
        prepared.compute.iter().chain([&prepared.plan]).collect()
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
        let same = children.len() == self.children().len()
            && children
                .iter()
                .zip(self.children())
                .all(|(new, old)| Arc::ptr_eq(new, old));
        if same {
            Ok(self)
        } else {
            // Only a reset replaces the plans a call ran (see below).
            self.reset_state()
        }
    }

    /// A call run again (the next round of a recursive query, a compute
    /// run again to be sorted) is resolved again, as a fresh call: it finds
    /// what its first run stored, or computes if that stored nothing.
    fn reset_state(self: Arc<Self>) -> Result<Arc<dyn ExecutionPlan>> {
        if self.tracker.prepared.get().is_none() {
            return Ok(self);
        }
        Ok(Arc::new(CachedCallExec::new(
            Arc::clone(&self.call),
            Arc::clone(&self.state),
            self.shape.clone(),
        )?))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let prepared = self.prepared();
        let tracker = Arc::clone(&self.tracker);
        let output_rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let call = Arc::clone(&self.call);
        let stream = futures::stream::once(async move {
            let prepared = prepared.await.map_err(DataFusionError::Shared)?;
            tracker.prepared.get_or_init(|| Arc::clone(&prepared));
            let rows = prepared.plan.execute(partition, context)?;
            let read_from = prepared.tier.clone();
            Ok::<_, DataFusionError>(rows.map_err(move |e| match &read_from {
                Some(tier) => read_failed(&call, tier, e),
                None => e,
            }))
        })
        .try_flatten();
        let counted = Counted {
            inner: Box::pin(stream),
            tracker: Arc::clone(&self.tracker),
            output_rows,
            finished: false,
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            counted,
        )))
    }

    /// The call's own: what its children did, they show themselves.
    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// `error`, met while reading `call`'s entry on the tier named `tier`,
/// naming the entry and the tier when the store failed (a scan's object
/// store error says neither).
pub(crate) fn read_failed(call: &Call, tier: &str, error: DataFusionError) -> DataFusionError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    let mut from_store = false;
    while let Some(at) = source {
        if at.downcast_ref::<object_store::Error>().is_some() {
            from_store = true;
            break;
        }
        source = match at.downcast_ref::<DataFusionError>() {
            Some(DataFusionError::ObjectStore(e)) => Some(e.as_ref()),
            Some(DataFusionError::External(e)) => Some(e.as_ref()),
            Some(DataFusionError::Shared(e)) => Some(e.as_ref()),
            Some(DataFusionError::Context(_, e)) => Some(e.as_ref()),
            _ => at.source(),
        };
    }
    let Some(found) = call.catalog.tiers().find(|t| t.name() == tier) else {
        return error;
    };
    if !from_store {
        return error;
    }
    DataFusionError::External(Box::new(nuthatch_catalog::Error::ReadFailed {
        entry: format!("{}: {}", call.function.name(), call.id.key.display()),
        tier: tier.to_string(),
        location: found.url().to_string(),
        detail: error.to_string(),
    }))
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

/// Counts rows across partitions and logs the report when all are done,
/// or when the plan is dropped first.
struct Tracker {
    call: Arc<Call>,
    remaining: AtomicUsize,
    reported: AtomicBool,
    rows: AtomicUsize,
    prepared: OnceLock<Arc<Prepared>>,
    /// The call as progress displays see it, from its first partition on.
    running: OnceLock<Arc<Running>>,
    /// The first error its rows met, if any: the call failed.
    failed: OnceLock<String>,
}

impl Tracker {
    fn new(call: Arc<Call>, partitions: usize) -> Self {
        Tracker {
            call,
            remaining: AtomicUsize::new(partitions),
            reported: AtomicBool::new(false),
            rows: AtomicUsize::new(0),
            prepared: OnceLock::new(),
            running: OnceLock::new(),
            failed: OnceLock::new(),
        }
    }

    fn partition_done(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.report();
        }
    }

    /// Logs the call's report, once: when its last partition is done, or
    /// when the plan goes, for a query that stopped before DataFusion ran
    /// every partition (a `LIMIT` met from the first).
    fn report(&self) {
        self.report_from(None);
    }

    /// The report, with what was read taken from `served` when the rows
    /// were served by a copy of the plan, from the plan here otherwise.
    fn report_from(&self, served: Option<&Arc<dyn ExecutionPlan>>) {
        if self.reported.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(running) = self.running.get() {
            running.finish();
        }
        let Some(prepared) = self.prepared.get() else {
            return;
        };
        let (mut pruned, mut matched, mut bytes, mut pruning_seen) = (0, 0, 0, false);
        let (mut chunks, mut missing, mut files, mut fetched) = (None, 0, None, None);
        collect_metrics(
            served.unwrap_or(&prepared.plan),
            &mut |metric| match metric.value() {
                MetricValue::PruningMetrics {
                    name,
                    pruning_metrics,
                } if name == "row_groups_pruned_statistics" => {
                    pruning_seen = true;
                    pruned += pruning_metrics.pruned();
                    matched += pruning_metrics.matched();
                }
                MetricValue::PruningMetrics {
                    name,
                    pruning_metrics,
                } if name == "chunks_pruned" => {
                    let (read, total) = chunks.get_or_insert((0, 0));
                    *read += pruning_metrics.matched();
                    *total += pruning_metrics.matched() + pruning_metrics.pruned();
                }
                MetricValue::PruningMetrics {
                    name,
                    pruning_metrics,
                } if name == "files_pruned" => {
                    let (read, total) = files.get_or_insert((0, 0));
                    *read += pruning_metrics.matched();
                    *total += pruning_metrics.matched() + pruning_metrics.pruned();
                }
                MetricValue::Count { name, count } if name == "chunks_missing" => {
                    missing += count.value()
                }
                MetricValue::Count { name, count } if name == "rows_fetched" => {
                    *fetched.get_or_insert(0) += count.value()
                }
                MetricValue::Count { name, count } if name == "bytes_scanned" => {
                    bytes += count.value()
                }
                _ => {}
            },
        );
        let mut spilled = 0;
        if let Some(compute) = &prepared.compute {
            collect_metrics(compute, &mut |metric| {
                if let MetricValue::SpilledBytes(count) = metric.value() {
                    spilled += count.value();
                }
            });
        }
        let call = &self.call;
        let scanned = matches!(
            prepared.outcome,
            Outcome::Hit
                | Outcome::Computed
                | Outcome::Upserted
                | Outcome::WindowReplaced
                | Outcome::Extended
                | Outcome::ExtendedNotStored
        );
        let written = prepared.written.as_ref();
        call.reports.push(CallReport {
            function: call.function.name().to_string(),
            outcome: prepared.outcome,
            tier: prepared.tier.clone(),
            copied_to: prepared.copied_to.clone(),
            backend: prepared.backend.clone(),
            key: call.id.key.as_str().to_string(),
            namespace: call.id.namespace.clone(),
            rows: self.rows.load(Ordering::Acquire),
            row_groups_read: (scanned && pruning_seen).then_some((matched, matched + pruned)),
            chunks_read: chunks.filter(|_| scanned),
            files_read: files.filter(|_| scanned),
            rows_fetched: fetched.filter(|_| scanned),
            data_version: prepared.data_version,
            updated: written.and_then(|w| w.updated),
            inserted: written.and_then(|w| w.inserted),
            computed_ranges: prepared.computed_ranges.clone(),
            chunks_missing: missing,
            bytes_scanned: scanned.then_some(bytes),
            spilled_bytes: spilled,
            changes: written.map(|w| w.changes.clone()).unwrap_or_default(),
            stale: prepared.stale.clone(),
            failed: self.failed.get().cloned(),
            waited: self.running.get().and_then(|running| {
                running
                    .waited
                    .lock()
                    .expect("running call poisoned")
                    .clone()
            }),
            elapsed: prepared.started.elapsed(),
        });
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.report();
    }
}

/// One partition's stream, counted.
struct Counted {
    inner: Pin<Box<dyn Stream<Item = Result<RecordBatch>> + Send>>,
    tracker: Arc<Tracker>,
    output_rows: Count,
    finished: bool,
}

impl Stream for Counted {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.poll_next_unpin(cx);
        match &polled {
            Poll::Ready(Some(Ok(batch))) => {
                self.output_rows.add(batch.num_rows());
                self.tracker
                    .rows
                    .fetch_add(batch.num_rows(), Ordering::AcqRel);
                if let Some(running) = self.tracker.running.get() {
                    running
                        .served
                        .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                }
            }
            Poll::Ready(Some(Err(error))) => {
                let _ = self.tracker.failed.set(error.to_string());
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

//! Stored entries read on the workers.
//!
//! A cached call cannot travel to a worker as it is: resolving it needs the
//! tiers, the modes, the memory tier and the session that asked, which are
//! here. So the coordinator resolves the calls of a query first, before
//! distributing it ([`serve_calls_here`]), and what travels is what each
//! call serves: for an entry in a file format, a scan of its files with
//! the call's window and filters pushed down. datafusion-distributed then
//! spreads that scan over the workers by bytes, as any Parquet scan; an
//! entry too small to be worth a stage stays here, and a call served from
//! memory, or while its write runs, keeps the whole query here.
//!
//! Each call's scan sits under a [`ServedCallExec`], which counts the rows
//! it passes wherever it runs. The workers send their metrics back when
//! their tasks end, and [`CallsReportedExec`], at the root, reports each
//! call from them once the query's last partition is done: rows served and
//! what was read, as a call that ran here reports.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    displayable, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties,
};
use datafusion_distributed::{
    rewrite_distributed_plan_with_metrics, DistributedExec, DistributedMetricsFormat,
};
use futures::{StreamExt, TryStreamExt};
use nuthatch_udf::exec::CachedCallExec;

/// The cached calls of a query, each a [`CachedCallExec`].
pub(crate) type Calls = Vec<Arc<dyn ExecutionPlan>>;

/// The name [`ServedCallExec`] goes by, which is how the metrics the
/// workers sent back are matched to calls.
pub(crate) const SERVED: &str = "ServedCallExec";

/// Resolves every cached call in `plan` here, and gives the plan with each
/// call replaced by the scan that serves it, with the calls in the order
/// they appear. `None` when a call serves something that must not leave
/// this process (rows from memory, a write that is running); the plan
/// then runs here as it is, and its calls serve what they resolved.
pub(crate) async fn serve_calls_here(
    plan: &Arc<dyn ExecutionPlan>,
) -> Result<Option<(Arc<dyn ExecutionPlan>, Calls)>> {
    let mut calls = Vec::new();
    plan.apply(|node| {
        if node.downcast_ref::<CachedCallExec>().is_some() {
            calls.push(Arc::clone(node));
            return Ok(TreeNodeRecursion::Jump);
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    if calls.is_empty() {
        return Ok(None);
    }
    let mut served = Vec::with_capacity(calls.len());
    for node in &calls {
        let call = node
            .downcast_ref::<CachedCallExec>()
            .expect("collected as a call");
        // A window clipped here by batch travels as the filter it stands for.
        let scan = nuthatch_udf::resolve::as_filters(call.resolve().await?)?;
        if !reads_files_only(&scan)? {
            return Ok(None);
        }
        let label = displayable(node.as_ref()).one_line().to_string();
        let label = label
            .trim()
            .trim_start_matches("CachedCallExec: ")
            .to_string();
        served.push(Arc::new(ServedCallExec::new(label, scan)) as Arc<dyn ExecutionPlan>);
    }
    let mut next = served.into_iter();
    let replaced = Arc::clone(plan).transform_down(|node| {
        if node.downcast_ref::<CachedCallExec>().is_some() {
            let scan = next.next().expect("one scan per call");
            return Ok(datafusion::common::tree_node::Transformed::new(
                scan,
                true,
                TreeNodeRecursion::Jump,
            ));
        }
        Ok(datafusion::common::tree_node::Transformed::no(node))
    })?;
    Ok(Some((replaced.data, calls)))
}

/// Whether every leaf of `plan` reads files (a stored entry), rather than
/// rows held in this process.
fn reads_files_only(plan: &Arc<dyn ExecutionPlan>) -> Result<bool> {
    let mut files_only = true;
    plan.apply(|node| {
        if node.children().is_empty() {
            let reads_files = node.downcast_ref::<DataSourceExec>().is_some_and(|exec| {
                exec.data_source()
                    .downcast_ref::<FileScanConfig>()
                    .is_some()
            });
            files_only &= reads_files;
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(files_only)
}

/// The scan that serves one cached call, counting the rows it passes
/// (module docs). On a worker it is only that: the call stays with the
/// coordinator.
#[derive(Debug)]
pub struct ServedCallExec {
    /// The call as the coordinator shows it: function, key, outcome, tier.
    pub(crate) label: String,
    input: Arc<dyn ExecutionPlan>,
    metrics: ExecutionPlanMetricsSet,
}

impl ServedCallExec {
    pub(crate) fn new(label: String, input: Arc<dyn ExecutionPlan>) -> ServedCallExec {
        ServedCallExec {
            label,
            input,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for ServedCallExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{SERVED}: {}", self.label)
    }
}

impl ExecutionPlan for ServedCallExec {
    fn name(&self) -> &str {
        SERVED
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_plan::PhysicalExpr>,
        ) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let [input] = <[_; 1]>::try_from(children)
            .map_err(|_| DataFusionError::Internal(format!("{SERVED} takes one input")))?;
        Ok(Arc::new(ServedCallExec::new(self.label.clone(), input)))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let stream = self.input.execute(partition, context)?;
        let schema = stream.schema();
        let counted = stream.inspect_ok(move |batch| rows.add(batch.num_rows()));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, counted)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// The root of a distributed query whose cached calls were resolved here:
/// runs it, and when its last partition is done, reports each call from
/// the metrics the workers sent back (module docs).
#[derive(Debug)]
pub(crate) struct CallsReportedExec {
    input: Arc<dyn ExecutionPlan>,
    calls: Arc<Calls>,
    remaining: Arc<AtomicUsize>,
}

impl CallsReportedExec {
    pub(crate) fn new(input: Arc<dyn ExecutionPlan>, calls: Calls) -> Self {
        let partitions = input.properties().partitioning.partition_count();
        CallsReportedExec {
            input,
            calls: Arc::new(calls),
            remaining: Arc::new(AtomicUsize::new(partitions)),
        }
    }
}

impl DisplayAs for CallsReportedExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "CallsReportedExec: calls={}", self.calls.len())
    }
}

impl ExecutionPlan for CallsReportedExec {
    fn name(&self) -> &str {
        "CallsReportedExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_plan::PhysicalExpr>,
        ) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let [input] = <[_; 1]>::try_from(children)
            .map_err(|_| DataFusionError::Internal("CallsReportedExec takes one input".into()))?;
        Ok(Arc::new(CallsReportedExec::new(
            input,
            self.calls.as_ref().clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let stream = self.input.execute(partition, context)?;
        let schema = stream.schema();
        let (input, calls, remaining) = (
            Arc::clone(&self.input),
            Arc::clone(&self.calls),
            Arc::clone(&self.remaining),
        );
        // After the last batch of the last partition: the reports, before
        // the query is seen to end.
        let reported = futures::stream::once(async move {
            if remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                report_calls(input, &calls).await;
            }
            Ok(None)
        });
        let stream = stream
            .map_ok(Some)
            .chain(reported)
            .try_filter_map(|batch| futures::future::ready(Ok(batch)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// Reports `calls` from the metrics of the distributed plan under `root`,
/// matched to the [`ServedCallExec`]s in the order they appear.
async fn report_calls(root: Arc<dyn ExecutionPlan>, calls: &[Arc<dyn ExecutionPlan>]) {
    let Some(distributed) = find_distributed(&root) else {
        return;
    };
    let with_metrics = match rewrite_distributed_plan_with_metrics(
        distributed,
        DistributedMetricsFormat::Aggregated,
    )
    .await
    {
        Ok(plan) => plan,
        Err(e) => {
            tracing::warn!("the workers' metrics could not be read, calls report no rows: {e}");
            return;
        }
    };
    let mut served = Vec::new();
    let _ = with_metrics.apply(|node| {
        if node.name() == SERVED {
            served.push(Arc::clone(node));
        }
        Ok(TreeNodeRecursion::Continue)
    });
    for (call, node) in calls.iter().zip(&served) {
        let Some(call) = call.downcast_ref::<CachedCallExec>() else {
            continue;
        };
        let rows = node
            .metrics()
            .and_then(|metrics| metrics.output_rows())
            .unwrap_or(0);
        call.report_served(rows, node);
    }
}

/// The [`DistributedExec`] at or under `plan` (under an `EXPLAIN ANALYZE`).
pub(crate) fn find_distributed(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    if plan.downcast_ref::<DistributedExec>().is_some() {
        return Some(Arc::clone(plan));
    }
    plan.children().into_iter().find_map(find_distributed)
}

//! A plan node that reports how many of an entry's files its scan reads.
//!
//! Formats whose entries are many files (Delta's versions, Terracotta's time
//! steps) choose the files a scan opens from its filters before the scan
//! runs. The count goes into the plan's metrics as `files_pruned` (matched
//! = read), which the call report shows as `files=r/t` and
//! `nuthatch.calls` as `files_read` / `files_total`, as Parquet's row
//! groups are reported.

use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr, PlanProperties,
};

/// Passes its input through and reports how many of the entry's files
/// the scan below reads (`files_pruned`: matched = read).
#[derive(Debug)]
pub struct FilesReadExec {
    input: Arc<dyn ExecutionPlan>,
    read: usize,
    total: usize,
    metrics: ExecutionPlanMetricsSet,
}

impl FilesReadExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, read: usize, total: usize) -> Self {
        let metrics = ExecutionPlanMetricsSet::new();
        let pruning = MetricBuilder::new(&metrics).pruning_metrics("files_pruned", 0);
        pruning.add_matched(read);
        pruning.add_pruned(total.saturating_sub(read));
        FilesReadExec {
            input,
            read,
            total,
            metrics,
        }
    }
}

impl DisplayAs for FilesReadExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "FilesReadExec: files={}/{}", self.read, self.total)
    }
}

impl ExecutionPlan for FilesReadExec {
    fn name(&self) -> &str {
        "FilesReadExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(FilesReadExec {
                input,
                read: self.read,
                total: self.total,
                metrics: self.metrics.clone(),
            })),
            _ => Err(DataFusionError::Internal(
                "FilesReadExec has one child".into(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

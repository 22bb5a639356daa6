//! `DELETE FROM nuthatch.caches WHERE ...`: invalidation in SQL.
//!
//! DataFusion hands [`super::CachesTable`] the statement's filters when it
//! plans the DELETE. [`plan_delete`] lists what they select (the same
//! listing as a `SELECT`, pushdown included) and evaluates every filter on
//! those rows; the plan it returns, [`DeleteEntriesExec`], carries the
//! selected entries, so `EXPLAIN DELETE ...` shows what would go and
//! removes nothing. Running the plan removes them, each metadata first
//! (see [`Catalog::delete_listed`]), and yields the count, as DataFusion's
//! DML does.
//!
//! Read-only tiers (mirrors, and tiers configured read-only) are never
//! touched: their rows are left out, and a filter that selects nothing
//! else is an error saying so.
//!
//! DataFusion passes a DELETE only the filters that sit on the table;
//! a `WHERE key IN (SELECT ...)` is rewritten into a join, which it would
//! drop, deleting every row. [`DeleteGuard`] refuses such statements
//! before that can happen.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch, UInt64Array};
use arrow::compute::kernels::boolean::and;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::default_table_source::DefaultTableSource;
use datafusion::catalog::Session;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{DmlStatement, Expr, LogicalPlan, WriteOp};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_expr::{EquivalenceProperties, Partitioning};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr, PlanProperties,
};
use futures::{FutureExt, StreamExt};

use super::caches::{caches_schema, is_mirror, list_rows, rows_batch, CacheRow, Selection};
use super::CachesTable;
use crate::Catalog;

/// How many entries are removed at once.
const PARALLEL_DELETES: usize = 16;

/// How many entries a plan names when displayed.
const SHOWN: usize = 10;

/// Selects the rows `filters` pick and plans their removal.
pub async fn plan_delete(
    catalog: &Arc<Catalog>,
    state: &dyn Session,
    filters: Vec<Expr>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let mut selection = Selection::from_filters(&filters, true);
    selection.files = Some(state.runtime_env().clone());
    let rows = list_rows(catalog, &selection).await?;
    let batch = rows_batch(&rows)?;
    let schema = DFSchema::try_from(caches_schema())?;
    let mut mask: Option<BooleanArray> = None;
    for filter in filters {
        let predicate = state.create_physical_expr(filter, &schema)?;
        let values = predicate.evaluate(&batch)?.into_array(batch.num_rows())?;
        let values = values
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| DataFusionError::Plan("a DELETE filter must be true or false".into()))?
            .clone();
        mask = Some(match mask {
            Some(before) => and(&before, &values)?,
            None => values,
        });
    }
    let selected: Vec<CacheRow> = rows
        .into_iter()
        .enumerate()
        .filter(|(i, _)| mask.as_ref().is_none_or(|m| m.is_valid(*i) && m.value(*i)))
        .map(|(_, listing)| listing.row)
        .collect();
    let (entries, kept): (Vec<CacheRow>, Vec<CacheRow>) =
        selected.into_iter().partition(CacheRow::is_deletable);
    if entries.is_empty() && !kept.is_empty() {
        let mut tiers: Vec<&str> = kept.iter().map(CacheRow::tier).collect();
        tiers.dedup();
        let what = if kept.iter().all(is_mirror) {
            "mirrors, which nuthatch reads and never changes"
        } else {
            "read-only tiers, which nuthatch never changes"
        };
        return Err(DataFusionError::Plan(format!(
            "the DELETE selects {} entries, all on {what} ({}); remove them where that store \
             is written, or narrow the filter with tier = 'root' or tier = 'local'",
            kept.len(),
            tiers.join(", ")
        )));
    }
    Ok(Arc::new(DeleteEntriesExec::new(
        Arc::clone(catalog),
        entries,
        kept.len(),
    )))
}

/// Removes the entries a DELETE selected; yields one row, `count`.
pub struct DeleteEntriesExec {
    catalog: Arc<Catalog>,
    entries: Arc<Vec<CacheRow>>,
    /// Selected rows on read-only tiers, left alone.
    kept: usize,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl DeleteEntriesExec {
    pub fn new(catalog: Arc<Catalog>, entries: Vec<CacheRow>, kept: usize) -> Self {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "count",
            DataType::UInt64,
            false,
        )]));
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        DeleteEntriesExec {
            catalog,
            entries: Arc::new(entries),
            kept,
            schema,
            properties,
        }
    }

    /// The entries the plan removes when it runs.
    pub fn entries(&self) -> &[CacheRow] {
        &self.entries
    }
}

impl fmt::Debug for DeleteEntriesExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeleteEntriesExec")
            .field("entries", &self.entries.len())
            .field("kept", &self.kept)
            .finish()
    }
}

impl DisplayAs for DeleteEntriesExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "DeleteEntriesExec: entries={}", self.entries.len())?;
        if !self.entries.is_empty() {
            let shown: Vec<String> = self
                .entries
                .iter()
                .take(SHOWN)
                .map(CacheRow::describe)
                .collect();
            write!(f, " [{}", shown.join(", "))?;
            if self.entries.len() > SHOWN {
                write!(f, ", and {} more", self.entries.len() - SHOWN)?;
            }
            write!(f, "]")?;
        }
        if self.kept > 0 {
            write!(f, ", left on read-only tiers={}", self.kept)?;
        }
        Ok(())
    }
}

impl ExecutionPlan for DeleteEntriesExec {
    fn name(&self) -> &str {
        "DeleteEntriesExec"
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
                "DeleteEntriesExec has no children".into(),
            ))
        }
    }

    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let catalog = Arc::clone(&self.catalog);
        let entries = Arc::clone(&self.entries);
        let schema = Arc::clone(&self.schema);
        let kept = self.kept;
        let removed = async move {
            let count = delete_rows(&catalog, &entries).await?;
            if kept > 0 {
                tracing::warn!(
                    "{kept} selected entries are on read-only tiers and were left alone"
                );
            }
            Ok(RecordBatch::try_new(
                schema,
                vec![Arc::new(UInt64Array::from(vec![count]))],
            )?)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            futures::stream::once(removed),
        )))
    }
}

/// Removes `rows`, several at once; on the first failure, stops starting
/// new removals and reports how many were done.
pub async fn delete_rows(catalog: &Catalog, rows: &[CacheRow]) -> Result<u64> {
    let mut removals = Vec::with_capacity(rows.len());
    for row in rows {
        removals.push(
            async move {
                match row {
                    CacheRow::Stored(listed) => catalog.delete_listed(listed).await.map(|()| 1),
                    // Gone either way: removing a stored entry of the same
                    // function may have forgotten it already.
                    CacheRow::Memoized(entry) => {
                        catalog.memory().forget(entry);
                        Ok(1)
                    }
                }
            }
            .boxed(),
        );
    }
    let mut results = futures::stream::iter(removals).buffer_unordered(PARALLEL_DELETES);
    let mut count = 0;
    while let Some(result) = results.next().await {
        match result {
            Ok(n) => count += n,
            Err(e) => {
                return Err(DataFusionError::Execution(format!(
                    "removed {count} of {} entries, then: {e}; every entry is either whole or \
                     gone, so running the DELETE again finishes it",
                    rows.len()
                )))
            }
        }
    }
    tracing::info!(count, "deleted cache entries");
    Ok(count)
}

/// Refuses a DELETE on `nuthatch.caches` whose filter is more than a
/// predicate on the table's own columns.
#[derive(Debug, Default)]
pub struct DeleteGuard;

impl AnalyzerRule for DeleteGuard {
    fn name(&self) -> &str {
        "nuthatch_delete_guard"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.apply(|node| {
            if let LogicalPlan::Dml(DmlStatement {
                op: WriteOp::Delete,
                target,
                input,
                ..
            }) = node
            {
                let ours = target
                    .downcast_ref::<DefaultTableSource>()
                    .is_some_and(|source| {
                        source
                            .table_provider
                            .downcast_ref::<CachesTable>()
                            .is_some()
                    });
                if ours && selects_through_other_tables(input)? {
                    return Err(DataFusionError::Plan(
                        "DELETE FROM nuthatch.caches takes a WHERE on its own columns only; \
                         a subquery or join would reach the deletion as no filter at all. \
                         Select the keys first (SELECT key FROM nuthatch.caches ... JOIN ...) \
                         and delete them by value: DELETE FROM nuthatch.caches WHERE key IN \
                         ('f/1', 'f/2')"
                            .into(),
                    ));
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        Ok(plan)
    }
}

fn selects_through_other_tables(input: &LogicalPlan) -> Result<bool> {
    let mut other = false;
    input.apply(|node| {
        if matches!(node, LogicalPlan::Join(_) | LogicalPlan::Subquery(_)) {
            other = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        for expr in node.expressions() {
            let has_subquery = expr.exists(|e| {
                Ok(matches!(
                    e,
                    Expr::ScalarSubquery(_) | Expr::InSubquery(_) | Expr::Exists(_)
                ))
            })?;
            if has_subquery {
                other = true;
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(other)
}

//! A call's window applied to rows in time order, a batch at a time.
//!
//! Rows a miss serves as it stores them, and rows of a compute served
//! unstored, are clipped to the call's window here. DataFusion's
//! `FilterExec` compares every row with both bounds and copies the rows
//! that pass, whole batches of them too: over the README's daily rows
//! that was 7-14 ms of CPU per miss. When each partition comes in the
//! order of the window's column, a bound holds for a whole batch if it
//! holds at both ends of it: [`WindowClipExec`] checks the bounds on a
//! batch's first and last rows, passes it on untouched when they hold at
//! both, drops it when one fails at both, and filters only the batches a
//! bound cuts through (two per partition, at most one per bound, for a
//! window of sorted rows).
//!
//! That reasoning needs each bound to be a comparison of the ordered
//! column with a constant, which is how the window is planned; for
//! anything else, or rows not known to be in order, [`within`] keeps
//! `FilterExec`. A row whose time is null makes an end undecided, and its
//! batch is filtered: nulls sort at one end of a partition, so only its
//! first or last batches can hold them.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch};
use arrow::compute::{filter_record_batch, SortOptions};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{BinaryExpr, CastExpr, Column, Literal};
use datafusion::physical_expr::{split_conjunction, LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::metrics::{
    BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet, RecordOutput,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PhysicalExpr,
    PlanProperties,
};
use futures::StreamExt;

/// `input` clipped to `window`: by [`WindowClipExec`] when `window` is
/// bounds on one column and each partition of `input` ascends in it, else
/// by `FilterExec`.
pub(super) fn within(
    input: Arc<dyn ExecutionPlan>,
    window: &Arc<dyn PhysicalExpr>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let bounds: Vec<Arc<dyn PhysicalExpr>> = split_conjunction(window)
        .into_iter()
        .map(Arc::clone)
        .collect();
    let columns: Vec<Option<Column>> = bounds.iter().map(bounded_column).collect();
    let column = match columns.first() {
        Some(Some(first)) if columns.iter().all(|c| c.as_ref() == Some(first)) => first.clone(),
        _ => return Ok(Arc::new(FilterExec::try_new(Arc::clone(window), input)?)),
    };
    // Nulls first or last: a batch with a null at an end is filtered.
    let mut ordered = false;
    for nulls_first in [false, true] {
        let options = SortOptions {
            descending: false,
            nulls_first,
        };
        let sort = PhysicalSortExpr::new(Arc::new(column.clone()), options);
        if let Some(ordering) = LexOrdering::new([sort]) {
            ordered |= input.equivalence_properties().ordering_satisfy(ordering)?;
        }
    }
    if !ordered {
        return Ok(Arc::new(FilterExec::try_new(Arc::clone(window), input)?));
    }
    Ok(Arc::new(WindowClipExec {
        properties: Arc::clone(input.properties()),
        input,
        window: Arc::clone(window),
        bounds,
        metrics: ExecutionPlanMetricsSet::new(),
    }))
}

/// `plan` with each [`WindowClipExec`] in it turned back into the
/// `FilterExec` it stands for: a plan sent to other processes (the
/// cluster's workers) carries only operators they can decode.
pub fn as_filters(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    let replaced = plan.transform_up(|node| {
        let Some(clip) = node.downcast_ref::<WindowClipExec>() else {
            return Ok(Transformed::no(node));
        };
        let filter = FilterExec::try_new(Arc::clone(&clip.window), Arc::clone(&clip.input))?;
        Ok(Transformed::yes(Arc::new(filter) as Arc<dyn ExecutionPlan>))
    })?;
    Ok(replaced.data)
}

/// The column `bound` compares with a constant (`column < constant` and
/// the like, through casts), if that is what it is.
fn bounded_column(bound: &Arc<dyn PhysicalExpr>) -> Option<Column> {
    let binary = bound.downcast_ref::<BinaryExpr>()?;
    let comparison = matches!(
        binary.op(),
        Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq
    );
    let constant = |expr: &Arc<dyn PhysicalExpr>| expr.is::<Literal>();
    let column = |expr: &Arc<dyn PhysicalExpr>| -> Option<Column> {
        let mut expr = expr;
        // A cast to a number or a time keeps the order (out of range it
        // gives null); one to text would not.
        while let Some(cast) = expr.downcast_ref::<CastExpr>() {
            let target = cast.cast_type();
            if !(target.is_numeric() || target.is_temporal()) {
                return None;
            }
            expr = cast.expr();
        }
        expr.downcast_ref::<Column>().cloned()
    };
    match (
        comparison,
        constant(binary.left()),
        constant(binary.right()),
    ) {
        (true, false, true) => column(binary.left()),
        (true, true, false) => column(binary.right()),
        _ => None,
    }
}

/// Clips each batch to the window; see the module docs.
#[derive(Debug)]
pub struct WindowClipExec {
    input: Arc<dyn ExecutionPlan>,
    /// The whole window, for the batches a bound cuts through.
    window: Arc<dyn PhysicalExpr>,
    /// Its bounds, each checked at a batch's ends.
    bounds: Vec<Arc<dyn PhysicalExpr>>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl DisplayAs for WindowClipExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "WindowClipExec: {}", self.window)
    }
}

impl ExecutionPlan for WindowClipExec {
    fn name(&self) -> &str {
        "WindowClipExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        f(&self.window)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children
            .pop()
            .ok_or_else(|| DataFusionError::Internal("WindowClipExec has an input".into()))?;
        within(input, &self.window)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = input.schema();
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let (window, bounds) = (Arc::clone(&self.window), self.bounds.clone());
        let clipped = input.filter_map(move |batch| {
            let timer = baseline.elapsed_compute().timer();
            let clipped = batch.and_then(|batch| clip_batch(batch, &window, &bounds));
            timer.done();
            let kept = match clipped {
                Ok(Some(batch)) => Some(Ok(batch.record_output(&baseline))),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            };
            futures::future::ready(kept)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, clipped)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// What a bound says of a batch, from its first and last rows.
#[derive(PartialEq)]
enum Ends {
    /// Holds at both: for every row between.
    Both,
    /// Fails at both: for no row between.
    Neither,
    /// Holds at one end only, or a row's time is null.
    Split,
}

/// `batch` clipped to `window`: itself, nothing, or its rows that pass.
fn clip_batch(
    batch: RecordBatch,
    window: &Arc<dyn PhysicalExpr>,
    bounds: &[Arc<dyn PhysicalExpr>],
) -> Result<Option<RecordBatch>> {
    if batch.num_rows() == 0 {
        return Ok(None);
    }
    let last = batch.num_rows() - 1;
    let ends = batch.slice(0, 1);
    let ends = arrow::compute::concat_batches(&batch.schema(), [&ends, &batch.slice(last, 1)])?;
    let mut whole = true;
    for bound in bounds {
        match at_ends(bound, &ends)? {
            Ends::Neither => return Ok(None),
            Ends::Split => whole = false,
            Ends::Both => {}
        }
    }
    if whole {
        return Ok(Some(batch));
    }
    let keep = window.evaluate(&batch)?.into_array(batch.num_rows())?;
    let keep = keep
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| DataFusionError::Internal("a window that is not true or false".into()))?;
    let kept = filter_record_batch(&batch, keep)?;
    Ok((kept.num_rows() > 0).then_some(kept))
}

fn at_ends(bound: &Arc<dyn PhysicalExpr>, ends: &RecordBatch) -> Result<Ends> {
    let held = bound.evaluate(ends)?.into_array(2)?;
    let held = held
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| DataFusionError::Internal("a bound that is not true or false".into()))?;
    if held.null_count() > 0 {
        return Ok(Ends::Split);
    }
    Ok(match (held.value(0), held.value(1)) {
        (true, true) => Ends::Both,
        (false, false) => Ends::Neither,
        _ => Ends::Split,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
    use datafusion::common::ScalarValue;
    use datafusion::datasource::memory::MemorySourceConfig;
    use datafusion::datasource::source::DataSourceExec;
    use datafusion::physical_expr::expressions::{binary, cast, col, lit};
    use datafusion::physical_plan::collect;
    use datafusion::prelude::SessionContext;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("t", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Field::new("x", DataType::Float64, false),
        ]))
    }

    /// Batches of times (`None`: null), ordered by `t` when `ordered`.
    fn source(batches: &[&[Option<i64>]], ordered: bool) -> Arc<dyn ExecutionPlan> {
        let batches: Vec<RecordBatch> = (batches.iter())
            .map(|times| {
                let t = TimestampMicrosecondArray::from(times.to_vec());
                let x = Float64Array::from_iter_values((0..times.len()).map(|i| i as f64));
                RecordBatch::try_new(schema(), vec![Arc::new(t), Arc::new(x)]).unwrap()
            })
            .collect();
        let mut config = MemorySourceConfig::try_new(&[batches], schema(), None).unwrap();
        if ordered {
            let options = SortOptions {
                descending: false,
                nulls_first: false,
            };
            let sort = PhysicalSortExpr::new(col("t", &schema()).unwrap(), options);
            let ordering = LexOrdering::new([sort]).unwrap();
            config = config.try_with_sort_information(vec![ordering]).unwrap();
        }
        DataSourceExec::from_data_source(config)
    }

    fn micros(value: i64) -> Arc<dyn PhysicalExpr> {
        lit(ScalarValue::TimestampMicrosecond(Some(value), None))
    }

    /// `start <= t AND t < end`, the way a call's window is planned.
    fn window(start: i64, end: i64) -> Arc<dyn PhysicalExpr> {
        let t = col("t", &schema()).unwrap();
        let lower = binary(Arc::clone(&t), Operator::GtEq, micros(start), &schema()).unwrap();
        let upper = binary(t, Operator::Lt, micros(end), &schema()).unwrap();
        binary(lower, Operator::And, upper, &schema()).unwrap()
    }

    /// The rows left, as (t, x), and how many batches came out.
    async fn run(plan: Arc<dyn ExecutionPlan>) -> (Vec<(Option<i64>, f64)>, usize) {
        let batches = collect(plan, SessionContext::new().task_ctx())
            .await
            .unwrap();
        let mut rows = Vec::new();
        for batch in &batches {
            let t = batch
                .column(0)
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>();
            let x = batch.column(1).as_any().downcast_ref::<Float64Array>();
            let (t, x) = (t.unwrap(), x.unwrap());
            rows.extend(
                (0..batch.num_rows()).map(|i| (t.is_valid(i).then(|| t.value(i)), x.value(i))),
            );
        }
        (rows, batches.len())
    }

    #[tokio::test]
    async fn a_window_over_ordered_rows_is_what_a_filter_keeps() {
        let batches: &[&[Option<i64>]] = &[
            &[Some(1), Some(2), Some(3)],
            &[Some(3), Some(5), Some(7)],
            &[],
            &[Some(8), Some(9), Some(9)],
            &[Some(10), Some(12), Some(20)],
            &[Some(21), None, None],
            &[None],
        ];
        // Windows before, over, inside one batch, across several, on a
        // batch's first and last rows, after, and empty.
        let windows = [
            (-5, 1),
            (0, 100),
            (5, 7),
            (2, 11),
            (3, 10),
            (8, 10),
            (20, 22),
            (30, 40),
            (9, 9),
        ];
        for (start, end) in windows {
            let window = window(start, end);
            let clipped = within(source(batches, true), &window).unwrap();
            assert_eq!(clipped.name(), "WindowClipExec");
            let filtered =
                Arc::new(FilterExec::try_new(Arc::clone(&window), source(batches, true)).unwrap());
            let (ours, _) = run(clipped).await;
            let (theirs, _) = run(filtered).await;
            assert_eq!(ours, theirs, "window {start}..{end}");
        }
        // The batches wholly inside pass as they are, those outside go.
        let (_, batches_out) = run(within(source(batches, true), &window(3, 10)).unwrap()).await;
        assert_eq!(batches_out, 3);
    }

    #[tokio::test]
    async fn rows_not_known_in_order_or_bounds_on_other_things_are_filtered() {
        let batches: &[&[Option<i64>]] = &[&[Some(5), Some(1), Some(9)]];
        let plan = within(source(batches, false), &window(2, 9)).unwrap();
        assert_eq!(plan.name(), "FilterExec");
        assert_eq!(run(plan).await.0, vec![(Some(5), 0.0)]);
        // A bound on the time as text is not monotone in the time.
        let text = cast(col("t", &schema()).unwrap(), &schema(), DataType::Utf8).unwrap();
        let bound = binary(text, Operator::Lt, lit("1970"), &schema()).unwrap();
        assert_eq!(
            within(source(batches, true), &bound).unwrap().name(),
            "FilterExec"
        );
        // Nor is a bound on another column.
        let x = col("x", &schema()).unwrap();
        let bound = binary(x, Operator::Lt, lit(1.0), &schema()).unwrap();
        assert_eq!(
            within(source(batches, true), &bound).unwrap().name(),
            "FilterExec"
        );
    }
}

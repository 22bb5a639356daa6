//! Rolling windows per series, without sorting by series.
//!
//! The pipeline transform a cache of time series sees most is a rolling
//! aggregate per series: `avg(x) OVER (PARTITION BY lat, lon ORDER BY time
//! ROWS BETWEEN 6 PRECEDING AND CURRENT ROW)`. DataFusion plans it as a
//! `BoundedWindowAggExec` over a sort by `(lat, lon, time)`, after a hash
//! repartition; the sort and the window's per-row accumulator calls cost
//! far more than the arithmetic. [`RollingWindows`], a physical optimizer
//! rule that runs after DataFusion's own, replaces such a window (only
//! `count`, `sum` and `avg` of `Float64` over `ROWS` frames ending at the
//! current row, no `FILTER`, no `DISTINCT`) by a [`RollingWindowExec`]
//! that keeps one frame per series. It needs each series' rows in order,
//! not the series one after another, so when the input already comes
//! ordered by the window's `ORDER BY` (an entry of a function declaring
//! `order_by = (time)`), the sort and the repartition by series go: the
//! window reads the input's partitions merged into one ordered stream.
//!
//! `SET nuthatch.rolling_windows = false` turns the rule off for a session
//! (to compare, or to rule it out); plans then show DataFusion's
//! `BoundedWindowAggExec` where they showed `RollingWindowExec`, whose line
//! names the setting.

mod exec;
mod series;

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{WindowFrameBound, WindowFrameUnits};
use datafusion::physical_expr::window::{
    PlainAggregateWindowExpr, SlidingAggregateWindowExpr, WindowExpr,
};
use datafusion::physical_expr::{
    physical_exprs_equal, LexOrdering, PhysicalExpr, PhysicalSortExpr,
};
use datafusion::physical_optimizer::sanity_checker::SanityCheckPlan;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::windows::BoundedWindowAggExec;
use datafusion::physical_plan::{
    ExecutionPlan, ExecutionPlanProperties, InputOrderMode, Partitioning,
};

pub use exec::{Kind, Rolling, RollingWindowExec};

use crate::exec::CachedCallExec;
use crate::settings::NuthatchOptions;

/// The optimizer rule; see the module docs.
#[derive(Debug, Default)]
pub struct RollingWindows;

impl PhysicalOptimizerRule for RollingWindows {
    /// Tries dropping the sorts by series first, then keeping them; a
    /// rewrite counts only if the plan stays valid. DataFusion's own rules
    /// ran before this one and may have removed a sort above a window
    /// because the window's output was ordered by series, which it no
    /// longer is once its own sort goes. The rule runs before the query's
    /// output requirement is taken off the root ([`with_rolling_windows`]),
    /// so the sanity check (every ordering and distribution a node
    /// requires is still met) covers the query's `ORDER BY` too.
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let options = config.extensions.get::<NuthatchOptions>();
        if options.is_some_and(|options| !options.rolling_windows) {
            return Ok(plan);
        }
        for drop_sorts in [true, false] {
            let rewritten = rewrite(Arc::clone(&plan), drop_sorts)?;
            if !rewritten.transformed {
                return Ok(plan);
            }
            let candidate = rewritten.data;
            if SanityCheckPlan::new()
                .optimize(Arc::clone(&candidate), config)
                .is_ok()
            {
                return Ok(candidate);
            }
        }
        Ok(plan)
    }

    fn name(&self) -> &str {
        "rolling_windows"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `rules` with [`RollingWindows`] among them, unless it is already:
/// after DataFusion's rules that place sorts and repartitions, before the
/// one that removes the query's output requirement from the root.
pub fn with_rolling_windows(mut rules: Vec<Rule>) -> Vec<Rule> {
    let name = RollingWindows.name().to_string();
    if rules.iter().any(|rule| rule.name() == name) {
        return rules;
    }
    let at = rules
        .iter()
        .rposition(|rule| rule.name() == "OutputRequirements")
        .unwrap_or(rules.len());
    rules.insert(at, Arc::new(RollingWindows));
    rules
}

type Rule = Arc<dyn PhysicalOptimizerRule + Send + Sync>;

/// Replaces every eligible window, over its input without the sort by
/// series when `drop_sorts` and the input allows.
fn rewrite(
    plan: Arc<dyn ExecutionPlan>,
    drop_sorts: bool,
) -> Result<Transformed<Arc<dyn ExecutionPlan>>> {
    plan.transform_up(|node| {
        let Some(window) = node.downcast_ref::<BoundedWindowAggExec>() else {
            return Ok(Transformed::no(node));
        };
        // Sorted: each hash partition holds whole series, each series in
        // order, which is what the replacement needs.
        if window.input_order_mode != InputOrderMode::Sorted {
            return Ok(Transformed::no(node));
        }
        let Some((partition_by, order_by, rolling)) = rolling_columns(window)? else {
            return Ok(Transformed::no(node));
        };
        let input = if drop_sorts {
            series_in_order(window.input(), &partition_by, &order_by)?
        } else {
            Arc::clone(window.input())
        };
        Ok(Transformed::yes(Arc::new(RollingWindowExec::new(
            input,
            partition_by,
            rolling,
            window.schema(),
        ))))
    })
}

type Columns = (
    Vec<Arc<dyn PhysicalExpr>>,
    Vec<PhysicalSortExpr>,
    Vec<Rolling>,
);

/// The window's columns as rolling ones, if every one of them is.
fn rolling_columns(window: &BoundedWindowAggExec) -> Result<Option<Columns>> {
    let exprs = window.window_expr();
    let Some(first) = exprs.first() else {
        return Ok(None);
    };
    let (partition_by, order_by) = (first.partition_by().to_vec(), first.order_by().to_vec());
    if order_by.is_empty() {
        return Ok(None);
    }
    let input_schema = window.input().schema();
    let mut rolling = Vec::new();
    for expr in exprs {
        if !physical_exprs_equal(expr.partition_by(), &partition_by)
            || expr.order_by() != order_by.as_slice()
            || !without_filter(expr)
        {
            return Ok(None);
        }
        let any = expr.as_any();
        let aggregate = if let Some(sliding) = any.downcast_ref::<SlidingAggregateWindowExpr>() {
            sliding.get_aggregate_expr()
        } else if let Some(plain) = any.downcast_ref::<PlainAggregateWindowExpr>() {
            plain.get_aggregate_expr()
        } else {
            return Ok(None);
        };
        let frame = expr.get_window_frame();
        if frame.units != WindowFrameUnits::Rows
            || frame.end_bound != WindowFrameBound::CurrentRow
            || aggregate.is_distinct()
        {
            return Ok(None);
        }
        let preceding = match &frame.start_bound {
            WindowFrameBound::Preceding(ScalarValue::UInt64(None)) => None,
            WindowFrameBound::Preceding(ScalarValue::UInt64(Some(n))) => Some(*n as usize),
            WindowFrameBound::CurrentRow => Some(0),
            _ => return Ok(None),
        };
        let args = aggregate.expressions();
        let [arg] = args.as_slice() else {
            return Ok(None);
        };
        let arg_type = arg.data_type(&input_schema)?;
        let out_type = expr.field()?.data_type().clone();
        use arrow::datatypes::DataType::{Float64, Int64};
        let kind = match (aggregate.fun().name(), &arg_type, &out_type) {
            ("count", _, Int64) => Kind::Count,
            ("sum", Float64, Float64) => Kind::Sum,
            ("avg", Float64, Float64) => Kind::Avg,
            _ => return Ok(None),
        };
        rolling.push(Rolling {
            name: expr.name().to_string(),
            kind,
            arg: Arc::clone(arg),
            preceding,
        });
    }
    Ok(Some((partition_by, order_by, rolling)))
}

/// Whether the window expression has no `FILTER (WHERE ...)`. DataFusion
/// 55 keeps the filter behind a trait it does not export; both aggregate
/// window expressions print it as their last field.
fn without_filter(expr: &Arc<dyn WindowExpr>) -> bool {
    format!("{expr:?}").ends_with("filter: None }")
}

/// The window's input with the sort by series dropped when what is below
/// it already brings each series in order: input partitions ordered by the
/// window's `ORDER BY` are repartitioned by series keeping that order.
/// Otherwise the input as it is (sorted by series, which also works).
fn series_in_order(
    input: &Arc<dyn ExecutionPlan>,
    partition_by: &[Arc<dyn PhysicalExpr>],
    order_by: &[PhysicalSortExpr],
) -> Result<Arc<dyn ExecutionPlan>> {
    let Some(sort) = input.downcast_ref::<SortExec>() else {
        return Ok(Arc::clone(input));
    };
    if sort.fetch().is_some() {
        return Ok(Arc::clone(input));
    }
    let below = sort.input();
    let in_order = |plan: &Arc<dyn ExecutionPlan>| {
        plan.equivalence_properties()
            .ordering_satisfy(order_by.iter().cloned())
    };
    if let Some(repartition) = below.downcast_ref::<RepartitionExec>() {
        let source = repartition.input();
        let by_series = match repartition.partitioning() {
            Partitioning::Hash(keys, _) => physical_exprs_equal(keys.as_slice(), partition_by),
            _ => false,
        };
        if by_series && in_order(source)? {
            return merged(source, order_by);
        }
        return Ok(Arc::clone(input));
    }
    if in_order(below)? {
        return merged(below, order_by);
    }
    Ok(Arc::clone(input))
}

/// `plan`'s partitions, each in `order_by` order, as one stream in that
/// order. One partition holds every series, which a window by series
/// accepts, and the one merge here replaces two: a repartition by series
/// that keeps order merges, and so does whatever needs the rows in one
/// ordered stream afterwards (storing an entry does). A cached call that
/// declares the order is asked for one partition instead, which it serves
/// without merging (see [`CachedCallExec::in_one_partition`]).
fn merged(
    plan: &Arc<dyn ExecutionPlan>,
    order_by: &[PhysicalSortExpr],
) -> Result<Arc<dyn ExecutionPlan>> {
    if plan.output_partitioning().partition_count() <= 1 {
        return Ok(Arc::clone(plan));
    }
    if let Some(one) = one_ordered_partition(plan)? {
        return Ok(one);
    }
    Ok(match LexOrdering::new(order_by.iter().cloned()) {
        Some(ordering) => Arc::new(SortPreservingMergeExec::new(ordering, Arc::clone(plan))),
        None => Arc::clone(plan),
    })
}

/// `plan` reading a cached call in one ordered partition, if it is such a
/// call under nodes that keep rows in order, partition by partition.
fn one_ordered_partition(plan: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if let Some(call) = plan.downcast_ref::<CachedCallExec>() {
        return call.in_one_partition();
    }
    let keeps_order = plan.downcast_ref::<ProjectionExec>().is_some()
        || plan.downcast_ref::<FilterExec>().is_some();
    let [child] = plan.children()[..] else {
        return Ok(None);
    };
    if !keeps_order {
        return Ok(None);
    }
    match one_ordered_partition(child)? {
        Some(one) => Ok(Some(replace_children_if_necessary(
            Arc::clone(plan),
            vec![one],
        )?)),
        None => Ok(None),
    }
}

//! [`RollingWindowExec`]: rolling `count`, `sum` and `avg` over `ROWS`
//! frames that end at the current row, one pass over the input.
//!
//! Each row is looked up in a table of series (the `PARTITION BY` values,
//! interned a batch at a time as a `GROUP BY` does) and updates that
//! series' running sum and count, retracting the value that leaves the
//! frame; the input must bring each series' rows in `ORDER BY` order and
//! in one partition, in any interleaving. The arithmetic is DataFusion's
//! own, in the same order (add the entering value, then retract the
//! leaving one), so results equal `BoundedWindowAggExec`'s to the bit.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::datatypes::{DataType, Float64Type, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::CastExpr;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, ExecutionPlanProperties,
    PlanProperties, RecordBatchStream,
};
use futures::{Stream, StreamExt};

use super::series::{Run, Series};

/// The aggregate a rolling column computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Non-null values in the frame (`Int64`, never null).
    Count,
    /// Their sum (`Float64`; null when there are none).
    Sum,
    /// Their mean (`Float64`; null when there are none).
    Avg,
}

/// One rolling column.
#[derive(Debug, Clone)]
pub struct Rolling {
    /// The window expression's name, which is its output column's.
    pub name: String,
    pub kind: Kind,
    /// The aggregate's argument (`Float64` for sums and means).
    pub arg: Arc<dyn PhysicalExpr>,
    /// Rows before the current one in the frame; `None` is unbounded.
    pub preceding: Option<usize>,
}

pub struct RollingWindowExec {
    input: Arc<dyn ExecutionPlan>,
    partition_by: Vec<Arc<dyn PhysicalExpr>>,
    rolling: Vec<Rolling>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl RollingWindowExec {
    /// `schema` is the window exec's being replaced: the input's columns
    /// followed by one per rolling column.
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        partition_by: Vec<Arc<dyn PhysicalExpr>>,
        rolling: Vec<Rolling>,
        schema: SchemaRef,
    ) -> Self {
        // Rows pass through in input order, so the input's orderings hold
        // (its columns keep their positions).
        let equivalence = EquivalenceProperties::new_with_orderings(
            Arc::clone(&schema),
            input.equivalence_properties().oeq_class().iter().cloned(),
        );
        let properties = Arc::new(PlanProperties::new(
            equivalence,
            input.output_partitioning().clone(),
            input.pipeline_behavior(),
            input.boundedness(),
        ));
        RollingWindowExec {
            input,
            partition_by,
            rolling,
            schema,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl fmt::Debug for RollingWindowExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RollingWindowExec")
            .field("rolling", &self.rolling)
            .finish()
    }
}

impl DisplayAs for RollingWindowExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let keys: Vec<String> = self.partition_by.iter().map(|e| e.to_string()).collect();
        let columns: Vec<String> = self
            .rolling
            .iter()
            .map(|r| {
                let frame = match r.preceding {
                    Some(n) => format!("{n} preceding"),
                    None => "unbounded preceding".to_string(),
                };
                format!("{:?}({}) over {frame}", r.kind, r.arg).to_lowercase()
            })
            .collect();
        write!(
            f,
            "RollingWindowExec: series=[{}], rolling=[{}], off with nuthatch.rolling_windows = false",
            keys.join(", "),
            columns.join(", ")
        )
    }
}

impl ExecutionPlan for RollingWindowExec {
    fn name(&self) -> &str {
        "RollingWindowExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for expr in self
            .partition_by
            .iter()
            .chain(self.rolling.iter().map(|r| &r.arg))
        {
            if f(expr)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    /// Every row of a series must reach the same partition.
    fn required_input_distribution(&self) -> Vec<Distribution> {
        if self.partition_by.is_empty() {
            vec![Distribution::SinglePartition]
        } else {
            vec![Distribution::KeyPartitioned(self.partition_by.clone())]
        }
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let [input] = <[_; 1]>::try_from(children)
            .map_err(|_| DataFusionError::Internal("RollingWindowExec has one child".into()))?;
        Ok(Arc::new(RollingWindowExec::new(
            input,
            self.partition_by.clone(),
            self.rolling.clone(),
            Arc::clone(&self.schema),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        // The input is read on a task of its own, so decoding it (a scan
        // of the cached grid, say) and the arithmetic below run on two
        // cores: the README's weekly miss took 15% less time, its compute
        // alone 20% less.
        let input = nuthatch_backends::files::prefetch(self.input.execute(partition, context)?);
        let key_fields = self
            .partition_by
            .iter()
            .map(|e| e.return_field(&self.input.schema()))
            .collect::<Result<Vec<_>>>()?;
        let series = Series::new(Arc::new(Schema::new(key_fields)))?;
        let counted_by = counted_by(&self.rolling, &self.input.schema())?;
        Ok(Box::pin(RollingStream {
            input,
            schema: Arc::clone(&self.schema),
            partition_by: self.partition_by.clone(),
            rolling: self.rolling.clone(),
            counted_by,
            series,
            runs: Vec::new(),
            frames: self
                .rolling
                .iter()
                .map(|r| Frames::new(r.preceding))
                .collect(),
            baseline: BaselineMetrics::new(&self.metrics, partition),
        }))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// Every series' frame for one rolling column: running sums and counts,
/// and for a frame with a start the values in it, in a ring per series.
///
/// The state is laid out by series (and the ring by slot, then series), so
/// that a [`Run`] of consecutive series whose rings stand at the same slot
/// (every series of a grid, at every time step) steps as arrays: one pass
/// of vector arithmetic instead of a lookup per row. Measured alone on the
/// README's grid, that took stepping the weekly window's frames from 33 to
/// 12 ms on one core.
///
/// A null adds (and a null leaving the frame retracts) `+0.0`, so each
/// step is free of branches. That changes no bits: a sum that starts at
/// `+0.0` never becomes `-0.0` (IEEE 754 gives `-0.0` for a sum only when
/// both terms are), and adding or subtracting `+0.0` leaves every other
/// value as it is.
#[derive(Debug, Clone, Default)]
struct Frames {
    /// Rows a frame holds; 0 when it has no start.
    capacity: usize,
    sums: Vec<f64>,
    counts: Vec<u64>,
    /// Where each series' oldest value is in its ring, and how many it holds.
    heads: Vec<u32>,
    held: Vec<u32>,
    /// Per ring slot, each series' value there, and whether it is one.
    slots: Vec<Vec<f64>>,
    valid: Vec<Vec<bool>>,
}

/// Some rows' values of a rolling column's argument, and their results.
struct Column<'a> {
    values: &'a [f64],
    /// `None`: no nulls.
    valid: Option<&'a [bool]>,
    /// Whether `out` receives means rather than sums.
    mean: bool,
    out: &'a mut [f64],
    counts: &'a mut [i64],
}

impl<'a> Column<'a> {
    /// The first `n` rows' values, results and counts, cut to one length so
    /// the loops over them need no bounds checks.
    #[inline(always)]
    fn first(self, n: usize) -> (&'a [f64], &'a mut [f64], &'a mut [i64]) {
        (&self.values[..n], &mut self.out[..n], &mut self.counts[..n])
    }
}

/// What a frame of `count` values summing to `sum` yields (any value when
/// it is empty, which is null).
#[inline(always)]
fn result(sum: f64, count: u64, mean: bool) -> f64 {
    match (count, mean) {
        (0, _) => 0.0,
        (_, false) => sum,
        (n, true) => sum / n as i64 as f64,
    }
}

impl Frames {
    fn new(preceding: Option<usize>) -> Self {
        let capacity = preceding.map_or(0, |n| n + 1);
        Frames {
            capacity,
            slots: vec![Vec::new(); capacity],
            valid: vec![Vec::new(); capacity],
            ..Frames::default()
        }
    }

    fn grow(&mut self, series: usize) {
        if self.sums.len() >= series {
            return;
        }
        self.sums.resize(series, 0.0);
        self.counts.resize(series, 0);
        self.heads.resize(series, 0);
        self.held.resize(series, 0);
        for (slot, valid) in self.slots.iter_mut().zip(&mut self.valid) {
            slot.resize(series, 0.0);
            valid.resize(series, false);
        }
    }

    /// Steps the frames of series `run.first..` through the run's rows,
    /// `column` holding the run's rows only.
    fn step_run(&mut self, run: Run, column: Column<'_>) {
        let series = run.first..run.first + run.len;
        let head = self.heads[run.first];
        let held = self.held[run.first];
        let aligned = self.heads[series.clone()].iter().all(|&h| h == head)
            && self.held[series.clone()].iter().all(|&h| h == held);
        if !aligned {
            for i in 0..run.len {
                let valid = column.valid.is_none_or(|v| v[i]);
                let (count, sum) = self.step_one(run.first + i, column.values[i], valid);
                column.out[i] = result(sum, count, column.mean);
                column.counts[i] = count as i64;
            }
            return;
        }
        let (sums, counts) = (
            &mut self.sums[series.clone()],
            &mut self.counts[series.clone()],
        );
        let capacity = self.capacity;
        if capacity == 0 {
            add(sums, counts, column);
            return;
        }
        if held as usize == capacity {
            // Full: the oldest values leave and the new ones take their slot.
            let head = head as usize;
            let slot = &mut self.slots[head][series.clone()];
            let slot_valid = &mut self.valid[head][series.clone()];
            match column.valid {
                None => slide(sums, counts, slot, slot_valid, column, |_| true),
                Some(valid) => slide(sums, counts, slot, slot_valid, column, |i| valid[i]),
            }
            let next = if head + 1 == capacity {
                0
            } else {
                head as u32 + 1
            };
            self.heads[series].fill(next);
        } else {
            let at = head as usize + held as usize;
            let at = if at >= capacity { at - capacity } else { at };
            self.slots[at][series.clone()].copy_from_slice(column.values);
            let slot_valid = &mut self.valid[at][series.clone()];
            match column.valid {
                None => slot_valid.fill(true),
                Some(valid) => slot_valid.copy_from_slice(valid),
            }
            // A null's slot holds a value; it is retracted as +0.0 below.
            add(sums, counts, column);
            self.held[series].fill(held + 1);
        }
    }

    /// Takes one value into series `g`'s frame and drops the one that
    /// leaves it; returns the frame's count and sum. DataFusion's order:
    /// the entering value first, then the leaving one.
    fn step_one(&mut self, g: usize, value: f64, valid: bool) -> (u64, f64) {
        let x = if valid { value } else { 0.0 };
        let mut sum = self.sums[g] + x;
        let mut count = self.counts[g] + valid as u64;
        let capacity = self.capacity;
        if capacity > 0 {
            let (head, held) = (self.heads[g] as usize, self.held[g] as usize);
            if held == capacity {
                let leaving = self.valid[head][g];
                sum -= if leaving { self.slots[head][g] } else { 0.0 };
                count -= leaving as u64;
                self.slots[head][g] = x;
                self.valid[head][g] = valid;
                // Wrapping by comparison: a division per row would cost
                // more than the rest of the step.
                let next = head + 1;
                self.heads[g] = if next == capacity { 0 } else { next as u32 };
            } else {
                let at = head + held;
                let at = if at >= capacity { at - capacity } else { at };
                self.slots[at][g] = x;
                self.valid[at][g] = valid;
                self.held[g] = held as u32 + 1;
            }
        }
        self.sums[g] = sum;
        self.counts[g] = count;
        (count, sum)
    }
}

/// Adds a run's values to its series' sums (a frame not yet full, or one
/// without a start). A column without nulls gets a loop of its own, with
/// no validity to read.
fn add(sums: &mut [f64], counts: &mut [u64], column: Column<'_>) {
    match column.valid {
        None => add_where(sums, counts, column, |_| true),
        Some(valid) => add_where(sums, counts, column, |i| valid[i]),
    }
}

#[inline(always)]
fn add_where(
    sums: &mut [f64],
    counts: &mut [u64],
    column: Column<'_>,
    valid: impl Fn(usize) -> bool,
) {
    let n = sums.len();
    let mean = column.mean;
    let (values, out, counted) = column.first(n);
    for i in 0..n {
        let v = valid(i);
        let sum = sums[i] + if v { values[i] } else { 0.0 };
        let count = counts[i] + v as u64;
        sums[i] = sum;
        counts[i] = count;
        out[i] = result(sum, count, mean);
        counted[i] = count as i64;
    }
}

/// Adds a run's values to full frames and retracts the values in `slot`,
/// which they replace.
#[inline(always)]
fn slide(
    sums: &mut [f64],
    counts: &mut [u64],
    slot: &mut [f64],
    slot_valid: &mut [bool],
    column: Column<'_>,
    valid: impl Fn(usize) -> bool,
) {
    let n = sums.len();
    let (slot, slot_valid) = (&mut slot[..n], &mut slot_valid[..n]);
    let mean = column.mean;
    let (values, out, counted) = column.first(n);
    for i in 0..n {
        let v = valid(i);
        let x = if v { values[i] } else { 0.0 };
        let leaving = slot_valid[i];
        let sum = (sums[i] + x) - if leaving { slot[i] } else { 0.0 };
        let count = counts[i] + v as u64 - leaving as u64;
        slot[i] = x;
        slot_valid[i] = v;
        sums[i] = sum;
        counts[i] = count;
        out[i] = result(sum, count, mean);
        counted[i] = count as i64;
    }
}

struct RollingStream {
    input: SendableRecordBatchStream,
    schema: SchemaRef,
    partition_by: Vec<Arc<dyn PhysicalExpr>>,
    rolling: Vec<Rolling>,
    /// Per rolling column, the column whose frame counts it (see
    /// [`counted_by`]).
    counted_by: Vec<Option<usize>>,
    series: Series,
    /// The current batch's rows, as runs of consecutive series.
    runs: Vec<Run>,
    /// Per rolling column.
    frames: Vec<Frames>,
    baseline: BaselineMetrics,
}

impl RollingStream {
    fn compute(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        let keys = self
            .partition_by
            .iter()
            .map(|e| e.evaluate(&batch)?.into_array(rows))
            .collect::<Result<Vec<_>>>()?;
        let series = if keys.is_empty() {
            // One series, as a run of one row each.
            self.runs.clear();
            self.runs
                .extend((0..rows).map(|_| Run { first: 0, len: 1 }));
            1
        } else {
            self.series.intern(&keys, &mut self.runs)?;
            self.series.len()
        };
        let mut rolled = vec![None; self.rolling.len()];
        let mut counts = vec![None; self.rolling.len()];
        for (i, (rolling, frames)) in self.rolling.iter().zip(self.frames.iter_mut()).enumerate() {
            if self.counted_by[i].is_some() {
                continue;
            }
            frames.grow(series);
            let arg = rolling.arg.evaluate(&batch)?.into_array(rows)?;
            let (column, counted) = roll(rolling, &arg, &self.runs, frames)?;
            rolled[i] = Some(column);
            counts[i] = Some(counted);
        }
        let mut columns = batch.columns().to_vec();
        let mut count_columns: Vec<Option<ArrayRef>> = vec![None; self.rolling.len()];
        for (i, column) in rolled.into_iter().enumerate() {
            columns.push(match (column, self.counted_by[i]) {
                (Some(column), _) => column,
                (None, Some(by)) => Arc::clone(count_columns[by].get_or_insert_with(|| {
                    Arc::new(Int64Array::from(counts[by].take().unwrap_or_default()))
                })),
                (None, None) => unreachable!("every rolling column is rolled or counted"),
            });
        }
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

/// For each rolling column, the column whose frame it can read instead of
/// keeping its own: a count beside a sum or mean over the same rows of the
/// same values, as in `CASE WHEN count(x) OVER w = n THEN avg(x) OVER w
/// END`, where the count would otherwise step a second frame through every
/// row. The mean's argument is the count's cast to `Float64`, and a cast
/// from a number to `Float64` keeps nulls where they are.
fn counted_by(rolling: &[Rolling], input: &Schema) -> Result<Vec<Option<usize>>> {
    let values = |arg: &Arc<dyn PhysicalExpr>| -> Result<Arc<dyn PhysicalExpr>> {
        if let Some(cast) = arg.downcast_ref::<CastExpr>() {
            if cast.cast_type() == &DataType::Float64 && cast.expr().data_type(input)?.is_numeric()
            {
                return Ok(Arc::clone(cast.expr()));
            }
        }
        Ok(Arc::clone(arg))
    };
    let mut counted_by = Vec::with_capacity(rolling.len());
    for count in rolling {
        let mut by = None;
        if count.kind == Kind::Count {
            let counted = values(&count.arg)?;
            for (i, other) in rolling.iter().enumerate() {
                if other.kind != Kind::Count
                    && other.preceding == count.preceding
                    && values(&other.arg)?.as_ref() == counted.as_ref()
                {
                    by = Some(i);
                    break;
                }
            }
        }
        counted_by.push(by);
    }
    Ok(counted_by)
}

/// Advances every row's frame; returns the column of results and, for a
/// sum or mean, each row's count of values in its frame.
fn roll(
    rolling: &Rolling,
    arg: &ArrayRef,
    runs: &[Run],
    frames: &mut Frames,
) -> Result<(ArrayRef, Vec<i64>)> {
    let rows = arg.len();
    let valid: Option<Vec<bool>> = arg
        .logical_nulls()
        .filter(|n| n.null_count() > 0)
        .map(|n| n.iter().collect());
    // Counting looks at validity only.
    let zeros;
    let values = if rolling.kind == Kind::Count {
        zeros = vec![0.0; rows];
        &zeros[..]
    } else if let Some(values) = arg.as_primitive_opt::<Float64Type>() {
        &values.values()[..]
    } else {
        return Err(DataFusionError::Internal(format!(
            "rolling {:?} over {}",
            rolling.kind,
            arg.data_type()
        )));
    };
    let mut out = vec![0.0; rows];
    let mut counted = vec![0i64; rows];
    let mut row = 0;
    for &run in runs {
        let at = row..row + run.len;
        frames.step_run(
            run,
            Column {
                values: &values[at.clone()],
                valid: valid.as_ref().map(|v| &v[at.clone()]),
                mean: rolling.kind == Kind::Avg,
                out: &mut out[at.clone()],
                counts: &mut counted[at],
            },
        );
        row += run.len;
    }
    if rolling.kind == Kind::Count {
        return Ok((Arc::new(Int64Array::from(counted)), Vec::new()));
    }
    let present = BooleanBuffer::collect_bool(rows, |i| counted[i] > 0);
    let column = Float64Array::new(out.into(), Some(NullBuffer::new(present)));
    Ok((Arc::new(column), counted))
}

impl Stream for RollingStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.input.poll_next_unpin(cx);
        let result = match polled {
            Poll::Ready(Some(Ok(batch))) => {
                let elapsed = self.baseline.elapsed_compute().clone();
                let timer = elapsed.timer();
                let computed = self.compute(batch);
                timer.done();
                Poll::Ready(Some(computed))
            }
            other => other,
        };
        self.baseline.record_poll(result)
    }
}

impl RecordBatchStream for RollingStream {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

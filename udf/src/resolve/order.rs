//! A computed result in the order its entry stores it, sorted only when
//! its rows did not arrive in that order.
//!
//! DataFusion knows a plan's order only when the plan proves it, and most
//! bodies that build rows in time order prove nothing:
//! `to_timestamp_seconds(start + value) FROM generate_series(...)` rises
//! with `value`, but DataFusion cannot see that the expression keeps the
//! series' order. Sorting such a result anyway costs far more than
//! computing it (30 million rows: a second of sorting after a tenth of a
//! second of compute). So a plan that does not prove the stored order goes
//! through [`StoredOrderExec`]:
//!
//! - each input partition is read by its own task (the compute runs in the
//!   polls, so both cores keep computing), which checks that every row
//!   continues the order;
//! - without a memory limit, batches that arrived in order are passed on
//!   to the writer at once, whole, the partition whose next batch comes
//!   first at a time (round-robin partitions of ordered rows deal out whole
//!   batches), so the compute and the encoding overlap; each is kept too;
//! - if a row then arrives out of order, or partitions turn out to overlap,
//!   what was kept and the rest are arranged (merged when every partition
//!   is in order, else sorted) and handed to the sink through [`Rewrite`]:
//!   the stream fails, the write that had begun is abandoned (nothing of it
//!   is visible, see `Catalog::store`), and the sink writes the arranged
//!   rows from the start. When nothing was passed on yet, as for rows out
//!   of order from the first batch, they simply follow;
//! - under a memory limit nothing is passed on until every partition was
//!   read in order, then the batches go end to end, or are merged; the
//!   first row out of order, or a batch the pool refuses, hands what was
//!   kept and the rest of every partition to DataFusion's sort, which
//!   spills; the sort sees every row once.
//!
//! The batches are kept because a row out of order can arrive last, and by
//! then everything before it has been encoded. A sort keeps the whole
//! result too, so this holds no more than it would.
//!
//! The states and what moves between them (each transition has a case in
//! `order_transitions.rs`):
//!
//! ```text
//! plan proves the order ──► one partition: as it is; several: merged
//! otherwise: StoredOrderExec
//!   no memory limit (passing.rs), at each batch:
//!     in order, no overlap ─────► passed on (kept while under KEEP_BYTES)
//!     partitions overlap ───────► nothing passed yet: merged, written once
//!                                 some passed: merged, written again (Rewrite)
//!     a row out of order ───────► nothing passed yet: sorted, written once
//!                                 some passed, kept: sorted, written again
//!                                 past what is kept: computed again, sorted,
//!                                 written again
//!   memory limit, reading every partition:
//!     all in order ─────────────► end to end; merged where partitions overlap
//!     a row out of order, or a
//!     batch the pool refuses ───► DataFusion's sort, which spills
//! ```

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arrow::array::{downcast_primitive_array, Array, ArrayRef, ArrowPrimitiveType, RecordBatch};
use arrow::array::{ArrowNativeTypeOp, PrimitiveArray};
use arrow::datatypes::SchemaRef;
use arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, LexOrdering, Partitioning, PhysicalExpr};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
};
use futures::{StreamExt, TryStreamExt};
use nuthatch_backends::once::partition_once;

use super::passing::Passing;

/// A plan in the stored order, and the slot its sink must watch, if any.
pub(crate) type InStoredOrder = (Arc<dyn ExecutionPlan>, Option<Arc<Rewrite>>);

/// `plan`'s rows ascending by `ordering`, in one partition. A plan that
/// proves the order is only merged (when it has several partitions); one
/// that does not is checked as it arrives and sorted only if it must be
/// ([`StoredOrderExec`]), and the sink it feeds must then watch the
/// returned [`Rewrite`]. `bounded`: the memory pool has a limit.
pub(crate) fn in_stored_order(
    plan: Arc<dyn ExecutionPlan>,
    ordering: LexOrdering,
    bounded: bool,
) -> Result<InStoredOrder> {
    let partitions = plan.output_partitioning().partition_count();
    if plan
        .equivalence_properties()
        .ordering_satisfy(ordering.clone())?
    {
        if partitions <= 1 {
            return Ok((plan, None));
        }
        return Ok((Arc::new(SortPreservingMergeExec::new(ordering, plan)), None));
    }
    let exec = StoredOrderExec::new(plan, ordering, bounded);
    let rewrite = Arc::clone(&exec.rewrite);
    Ok((Arc::new(exec), Some(rewrite)))
}

/// Where a [`StoredOrderExec`] leaves its whole result, arranged, when rows
/// arrived out of order after some had been passed on: its stream then
/// fails, and the sink that was writing it writes this instead.
#[derive(Default)]
pub(crate) struct Rewrite(Mutex<Option<SendableRecordBatchStream>>);

impl Rewrite {
    /// The arranged result, if the stream failed to be rewritten.
    pub(crate) fn take(&self) -> Option<SendableRecordBatchStream> {
        self.0.lock().expect("rewrite slot poisoned").take()
    }

    pub(super) fn put(&self, stream: SendableRecordBatchStream) {
        *self.0.lock().expect("rewrite slot poisoned") = Some(stream);
    }
}

impl fmt::Debug for Rewrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Rewrite")
    }
}

/// DataFusion's sort of `plan` into one partition. Under a memory limit one
/// sorter owns the pool: partitions sorting side by side race for fair
/// shares, and one partition's in-memory merge can starve the other's.
/// Unbounded, partitions sort in parallel and merge.
fn sorted(
    plan: Arc<dyn ExecutionPlan>,
    ordering: LexOrdering,
    bounded: bool,
) -> Arc<dyn ExecutionPlan> {
    if plan.output_partitioning().partition_count() <= 1 {
        return Arc::new(SortExec::new(ordering, plan));
    }
    if bounded {
        let one = Arc::new(CoalescePartitionsExec::new(plan));
        return Arc::new(SortExec::new(ordering, one));
    }
    let each = Arc::new(SortExec::new(ordering.clone(), plan).with_preserve_partitioning(true));
    Arc::new(SortPreservingMergeExec::new(ordering, each))
}

/// Its input's rows in `ordering`, in one partition: kept as they arrive
/// while they arrive in order, sorted once they do not (module docs).
pub(crate) struct StoredOrderExec {
    input: Arc<dyn ExecutionPlan>,
    ordering: LexOrdering,
    bounded: bool,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
    /// The sort, once rows arrived out of order: listed as a child after
    /// running, so that its metrics (spills) show and reach call reports.
    sort: Arc<OnceLock<Arc<dyn ExecutionPlan>>>,
    rewrite: Arc<Rewrite>,
}

impl StoredOrderExec {
    pub(crate) fn new(input: Arc<dyn ExecutionPlan>, ordering: LexOrdering, bounded: bool) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new_with_orderings(input.schema(), [ordering.clone()]),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        StoredOrderExec {
            input,
            ordering,
            bounded,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
            sort: Arc::default(),
            rewrite: Arc::default(),
        }
    }
}

impl fmt::Debug for StoredOrderExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoredOrderExec: [{}]", self.ordering)
    }
}

impl DisplayAs for StoredOrderExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "StoredOrderExec: [{}]", self.ordering)
    }
}

impl ExecutionPlan for StoredOrderExec {
    fn name(&self) -> &str {
        "StoredOrderExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    /// The input, and the sort that ran over it if one had to.
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        [&self.input].into_iter().chain(self.sort.get()).collect()
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for key in self.ordering.iter() {
            if f(&key.expr)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // After running, the sort is listed too; it is rebuilt on execution.
        let input = children
            .into_iter()
            .next()
            .ok_or_else(|| DataFusionError::Internal("StoredOrderExec has an input".into()))?;
        // The sink watches this node's rewrite slot, so keep it.
        let mut exec = StoredOrderExec::new(input, self.ordering.clone(), self.bounded);
        exec.rewrite = Arc::clone(&self.rewrite);
        Ok(Arc::new(exec))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "StoredOrderExec has one partition, not {partition}"
            )));
        }
        let partitions = self.input.output_partitioning().partition_count();
        let inputs = (0..partitions)
            .map(|i| self.input.execute(i, Arc::clone(&context)))
            .collect::<Result<Vec<_>>>()?;
        let arrange = Arrange {
            schema: self.input.schema(),
            ordering: self.ordering.clone(),
            bounded: self.bounded,
            context,
            baseline: BaselineMetrics::new(&self.metrics, 0),
            rows_sorted: MetricBuilder::new(&self.metrics).counter("rows_sorted", 0),
            sort: Arc::clone(&self.sort),
        };
        let schema = self.input.schema();
        if self.bounded {
            let stream = futures::stream::once(arrange.run(inputs)).try_flatten();
            return Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)));
        }
        let passing = Passing::start(
            arrange,
            &self.input,
            inputs,
            Arc::clone(&self.rewrite),
            &self.metrics,
        )?;
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            passing.into_stream(),
        )))
    }

    /// `rows_sorted` is 0 when the rows arrived in order; `rows_rewritten`
    /// counts rows written before a row out of order sent the write back
    /// to the start (without a memory limit); `elapsed_compute` is the time
    /// spent checking and arranging them.
    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// One execution of a [`StoredOrderExec`].
pub(super) struct Arrange {
    pub(super) schema: SchemaRef,
    pub(super) ordering: LexOrdering,
    pub(super) bounded: bool,
    pub(super) context: Arc<TaskContext>,
    pub(super) baseline: BaselineMetrics,
    pub(super) rows_sorted: Count,
    pub(super) sort: Arc<OnceLock<Arc<dyn ExecutionPlan>>>,
}

/// What one partition's task kept.
pub(super) struct Kept {
    pub(super) batches: Vec<RecordBatch>,
    /// What was not read, when the task stopped early: at a row out of
    /// order (anywhere), or a batch the pool refused. `None`: every row of
    /// the partition was kept, in order.
    pub(super) rest: Option<SendableRecordBatchStream>,
    pub(super) reservation: MemoryReservation,
}

impl Arrange {
    async fn run(
        self,
        inputs: Vec<SendableRecordBatchStream>,
    ) -> Result<SendableRecordBatchStream> {
        let columns = self.order_columns()?;
        let fields = self.sort_fields()?;
        // A row out of order anywhere means a sort of everything: the other
        // partitions stop keeping and hand over what they have.
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<SpawnedTask<Result<Kept>>> = inputs
            .into_iter()
            .enumerate()
            .map(|(i, input)| {
                let reservation = MemoryConsumer::new(format!("StoredOrderExec[{i}]"))
                    .register(self.context.memory_pool());
                let check = OrderCheck::new(columns.clone(), fields.clone())?;
                Ok(SpawnedTask::spawn(keep(
                    input,
                    check,
                    reservation,
                    Arc::clone(&stop),
                )))
            })
            .collect::<Result<_>>()?;
        let mut kept = Vec::with_capacity(tasks.len());
        for task in tasks {
            let partition = task
                .join_unwind()
                .await
                .map_err(|e| DataFusionError::ExecutionJoin(Box::new(e)))??;
            kept.push(partition);
        }
        self.finish(kept)
    }

    /// The rows each partition kept, and the rest of those that stopped
    /// early, in order: end to end or merged when every partition was read
    /// in order, else sorted.
    pub(super) fn finish(self, kept: Vec<Kept>) -> Result<SendableRecordBatchStream> {
        let columns = self.order_columns()?;
        let fields = self.sort_fields()?;
        let arrived_in_order = kept.iter().all(|k| k.rest.is_none());
        if !arrived_in_order {
            return self.sort_all(kept);
        }
        let timer = self.baseline.elapsed_compute().timer();
        let (partitions, reservations): (Vec<_>, Vec<_>) =
            kept.into_iter().map(|k| (k.batches, k.reservation)).unzip();
        let end_to_end = end_to_end(&partitions, &columns, fields)?;
        timer.done();
        let baseline = self.baseline.clone();
        let counted = |stream: SendableRecordBatchStream| {
            // The kept batches stay accounted until they have been passed on.
            let stream = stream.inspect_ok(move |batch| {
                let _held = &reservations;
                baseline.record_output(batch.num_rows());
                baseline.output_batches().add(1);
            });
            Box::pin(RecordBatchStreamAdapter::new(
                Arc::clone(&self.schema),
                stream,
            )) as SendableRecordBatchStream
        };
        match end_to_end {
            Some(batches) => Ok(counted(Box::pin(RecordBatchStreamAdapter::new(
                Arc::clone(&self.schema),
                futures::stream::iter(batches.into_iter().map(Ok)),
            )))),
            // Each partition is in order, but their rows overlap.
            None => {
                let memory =
                    MemorySourceConfig::try_new_exec(&partitions, Arc::clone(&self.schema), None)?;
                let merge = SortPreservingMergeExec::new(self.ordering.clone(), memory);
                Ok(counted(merge.execute(0, Arc::clone(&self.context))?))
            }
        }
    }

    /// DataFusion's sort over what each partition kept followed by the rest
    /// of it.
    fn sort_all(&self, kept: Vec<Kept>) -> Result<SendableRecordBatchStream> {
        let partitions: Vec<Arc<dyn PartitionStream>> = kept
            .into_iter()
            .map(|k| {
                // The sort accounts for the rows from here on.
                drop(k.reservation);
                let again = futures::stream::iter(k.batches.into_iter().map(Ok));
                let stream = match k.rest {
                    Some(rest) => again.chain(rest).boxed(),
                    None => again.boxed(),
                };
                partition_once(Box::pin(RecordBatchStreamAdapter::new(
                    Arc::clone(&self.schema),
                    stream,
                )))
            })
            .collect();
        let replay = Arc::new(StreamingTableExec::try_new(
            Arc::clone(&self.schema),
            partitions,
            None,
            [],
            false,
            None,
        )?);
        self.sort_plan(replay)
    }

    /// DataFusion's sort of `input`, whose output counts as sorted rows.
    pub(super) fn sort_plan(
        &self,
        input: Arc<dyn ExecutionPlan>,
    ) -> Result<SendableRecordBatchStream> {
        let plan = sorted(input, self.ordering.clone(), self.bounded);
        let stream = plan.execute(0, Arc::clone(&self.context))?;
        let _ = self.sort.set(plan);
        let baseline = self.baseline.clone();
        let rows_sorted = self.rows_sorted.clone();
        let stream = stream.inspect_ok(move |batch| {
            rows_sorted.add(batch.num_rows());
            baseline.record_output(batch.num_rows());
            baseline.output_batches().add(1);
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        )))
    }

    pub(super) fn order_columns(&self) -> Result<Vec<usize>> {
        self.ordering
            .iter()
            .map(|key| {
                key.expr
                    .downcast_ref::<datafusion::physical_expr::expressions::Column>()
                    .map(|c| c.index())
                    .ok_or_else(|| {
                        DataFusionError::Internal(format!(
                            "a stored order is by columns, not {}",
                            key.expr
                        ))
                    })
            })
            .collect()
    }

    pub(super) fn sort_fields(&self) -> Result<Vec<SortField>> {
        self.ordering
            .iter()
            .map(|key| {
                Ok(SortField::new_with_options(
                    key.expr.data_type(&self.schema)?,
                    key.options,
                ))
            })
            .collect()
    }
}

/// Reads one partition, keeping its batches while they continue the order
/// and the pool takes them.
async fn keep(
    mut input: SendableRecordBatchStream,
    mut check: OrderCheck,
    reservation: MemoryReservation,
    stop: Arc<AtomicBool>,
) -> Result<Kept> {
    let mut batches = Vec::new();
    while let Some(batch) = input.next().await {
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        let in_order = check.admit(&batch)?;
        let fits = reservation.try_grow(batch.get_array_memory_size()).is_ok();
        batches.push(batch);
        if !in_order || !fits {
            stop.store(true, Ordering::Relaxed);
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(Kept {
                batches,
                rest: Some(input),
                reservation,
            });
        }
    }
    Ok(Kept {
        batches,
        rest: None,
        reservation,
    })
}

/// Whether each batch of a partition continues the order: its own rows
/// ascend, and its first row does not come before the last one kept.
pub(super) struct OrderCheck {
    columns: Vec<usize>,
    converter: RowConverter,
    last: Option<OwnedRow>,
}

impl OrderCheck {
    pub(super) fn new(columns: Vec<usize>, fields: Vec<SortField>) -> Result<Self> {
        Ok(OrderCheck {
            columns,
            converter: RowConverter::new(fields)?,
            last: None,
        })
    }

    pub(super) fn admit(&mut self, batch: &RecordBatch) -> Result<bool> {
        let keys: Vec<ArrayRef> = self
            .columns
            .iter()
            .map(|&i| Arc::clone(batch.column(i)))
            .collect();
        if !ascends(&keys, &self.converter)? {
            return Ok(false);
        }
        let first = row_at(&self.converter, &keys, 0)?;
        if self.last.as_ref().is_some_and(|last| *last > first) {
            return Ok(false);
        }
        self.last = Some(row_at(&self.converter, &keys, batch.num_rows() - 1)?);
        Ok(true)
    }
}

/// Row `i` of `keys` in the converter's comparable form.
pub(super) fn row_at(converter: &RowConverter, keys: &[ArrayRef], i: usize) -> Result<OwnedRow> {
    let one: Vec<ArrayRef> = keys.iter().map(|k| k.slice(i, 1)).collect();
    Ok(converter.convert_columns(&one)?.row(0).owned())
}

/// Whether the rows of `keys` ascend (nulls last, as the converter says).
/// A lone primitive key is checked on its values, without converting rows.
fn ascends(keys: &[ArrayRef], converter: &RowConverter) -> Result<bool> {
    if let [key] = keys {
        if let Some(ascends) = primitive_ascends(key) {
            return Ok(ascends);
        }
    }
    let rows = converter.convert_columns(keys)?;
    Ok((1..rows.num_rows()).all(|i| rows.row(i - 1) <= rows.row(i)))
}

/// For primitive arrays: valid values ascending in Arrow's total order
/// (the sort's), then only nulls.
fn primitive_ascends(key: &ArrayRef) -> Option<bool> {
    fn check<T: ArrowPrimitiveType>(array: &PrimitiveArray<T>) -> bool {
        let valid = array.len() - array.null_count();
        if let Some(nulls) = array.nulls() {
            if nulls.inner().slice(0, valid).count_set_bits() != valid {
                return false;
            }
        }
        array.values()[..valid]
            .windows(2)
            .all(|pair| !pair[0].is_gt(pair[1]))
    }
    let key = key.as_ref();
    downcast_primitive_array!(
        key => Some(check(key)),
        _ => None
    )
}

/// The batches of all partitions, each in order, as one ordered sequence of
/// whole batches, if their ranges do not overlap.
fn end_to_end(
    partitions: &[Vec<RecordBatch>],
    columns: &[usize],
    fields: Vec<SortField>,
) -> Result<Option<Vec<RecordBatch>>> {
    let converter = RowConverter::new(fields)?;
    let mut ranged = Vec::new();
    for batch in partitions.iter().flatten() {
        let keys: Vec<ArrayRef> = columns
            .iter()
            .map(|&i| Arc::clone(batch.column(i)))
            .collect();
        let first = row_at(&converter, &keys, 0)?;
        let last = row_at(&converter, &keys, batch.num_rows() - 1)?;
        ranged.push((first, last, batch));
    }
    ranged.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let overlap = ranged.windows(2).any(|pair| pair[0].1 > pair[1].0);
    if overlap {
        return Ok(None);
    }
    Ok(Some(
        ranged
            .into_iter()
            .map(|(_, _, batch)| batch.clone())
            .collect(),
    ))
}

#[cfg(test)]
#[path = "order_transitions.rs"]
mod transitions;

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array};

    fn ascending(array: ArrayRef) -> bool {
        primitive_ascends(&array).expect("a primitive array")
    }

    #[test]
    fn primitive_order_is_the_sorts() {
        assert!(ascending(Arc::new(Int64Array::from(vec![1, 1, 2, 5]))));
        assert!(!ascending(Arc::new(Int64Array::from(vec![1, 3, 2]))));
        // Nulls last, and only last.
        assert!(ascending(Arc::new(Int64Array::from(vec![
            Some(1),
            Some(2),
            None,
            None
        ]))));
        assert!(!ascending(Arc::new(Int64Array::from(vec![
            Some(1),
            None,
            Some(2)
        ]))));
        // Arrow's total order: -0 before +0, NaN after every number.
        assert!(ascending(Arc::new(Float64Array::from(vec![
            -0.0,
            0.0,
            1.0,
            f64::NAN
        ]))));
        assert!(!ascending(Arc::new(Float64Array::from(vec![
            f64::NAN,
            1.0
        ]))));
        assert!(!ascending(Arc::new(Float64Array::from(vec![0.0, -0.0]))));
    }
}

//! The path of a [`StoredOrderExec`](super::order::StoredOrderExec) without
//! a memory limit: batches that arrive in order go on to the writer as
//! they come, whole, so the compute and the encoding overlap; a row out of
//! order afterwards arranges everything and hands it to the sink through a
//! [`Rewrite`] (see the `order` module docs).

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::row::{OwnedRow, RowConverter};
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::metrics::{Count, ExecutionPlanMetricsSet, MetricBuilder};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::ExecutionPlan;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::order::{row_at, Arrange, Kept, OrderCheck, Rewrite};

/// A batch as a partition's task passes it on, and whether it continued the
/// partition's order (after the first that did not, none is checked).
struct Arrived {
    batch: RecordBatch,
    in_order: bool,
}

/// Reads one partition to its end, checking the order until a row breaks
/// it. Stops early when the receiver is gone.
async fn pass(
    mut input: SendableRecordBatchStream,
    mut check: OrderCheck,
    to: UnboundedSender<Result<Arrived>>,
) {
    let mut in_order = true;
    while let Some(batch) = input.next().await {
        let arrived = batch.and_then(|batch| {
            if in_order && batch.num_rows() > 0 {
                in_order = check.admit(&batch)?;
            }
            Ok(Arrived { batch, in_order })
        });
        let failed = arrived.is_err();
        if to.send(arrived).is_err() || failed {
            return;
        }
        // A compute that never waits (a cross join yields thousands of
        // batches from one probe batch) would otherwise keep this worker
        // until it ends, and a task woken meanwhile in the worker's
        // unstealable LIFO slot (the other partition's, whose first batch
        // the passing waits for) with it: the README's first compute ran
        // 110 ms on one core before its first row reached the writer.
        tokio::task::consume_budget().await;
    }
}

/// A batch received and not passed on yet, with its first and last rows
/// when it arrived in order.
struct Held {
    range: Option<(OwnedRow, OwnedRow)>,
    batch: RecordBatch,
}

/// What [`Passing`] does next.
enum Step {
    Pass(RecordBatch),
    /// Partitions overlap (`in_order`), or a row arrived out of order.
    Arrange {
        in_order: bool,
    },
    Done,
}

/// One execution of a [`StoredOrderExec`] without a memory limit, which
/// passes batches on as they arrive in order (module docs).
pub(super) struct Passing {
    arrange: Arrange,
    rewrite: Arc<Rewrite>,
    columns: Vec<usize>,
    converter: RowConverter,
    arriving: Vec<UnboundedReceiver<Result<Arrived>>>,
    /// Per partition, what was received and not passed on yet.
    held: Vec<VecDeque<Held>>,
    ended: Vec<bool>,
    /// Per partition, what was passed on, kept for a rewrite while it
    /// fits in [`KEEP_BYTES`].
    passed: Vec<Vec<RecordBatch>>,
    passed_rows: usize,
    kept_bytes: usize,
    /// Whether `passed` holds everything passed on.
    keeping: bool,
    /// The plan, to compute again for a rewrite once copies were dropped.
    input: Arc<dyn ExecutionPlan>,
    reservation: MemoryReservation,
    /// Rows passed on before rows arrived out of order, which the sink
    /// encoded in vain.
    rows_rewritten: Count,
    /// Per partition, its task: dropping one stops it, so a partition's
    /// task lives as long as what reads the rest of it.
    tasks: Vec<Option<SpawnedTask<()>>>,
}

impl Passing {
    pub(super) fn start(
        arrange: Arrange,
        input: &Arc<dyn ExecutionPlan>,
        inputs: Vec<SendableRecordBatchStream>,
        rewrite: Arc<Rewrite>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Self> {
        let columns = arrange.order_columns()?;
        let fields = arrange.sort_fields()?;
        let (mut arriving, mut tasks) = (Vec::new(), Vec::new());
        for input in inputs {
            let (to, from) = tokio::sync::mpsc::unbounded_channel();
            let check = OrderCheck::new(columns.clone(), fields.clone())?;
            tasks.push(Some(SpawnedTask::spawn(pass(input, check, to))));
            arriving.push(from);
        }
        let partitions = arriving.len();
        let reservation =
            MemoryConsumer::new("StoredOrderExec").register(arrange.context.memory_pool());
        Ok(Passing {
            rows_rewritten: MetricBuilder::new(metrics).counter("rows_rewritten", 0),
            rewrite,
            columns,
            converter: RowConverter::new(fields)?,
            arriving,
            held: (0..partitions).map(|_| VecDeque::new()).collect(),
            ended: vec![false; partitions],
            passed: vec![Vec::new(); partitions],
            passed_rows: 0,
            kept_bytes: 0,
            keeping: true,
            input: Arc::clone(input),
            reservation,
            tasks,
            arrange,
        })
    }

    pub(super) fn into_stream(self) -> impl futures::Stream<Item = Result<RecordBatch>> + Send {
        futures::stream::try_unfold(Some(self), |state| async move {
            let Some(mut passing) = state else {
                return Ok::<_, DataFusionError>(None);
            };
            let next = match passing.step().await? {
                Step::Pass(batch) => {
                    let baseline = &passing.arrange.baseline;
                    baseline.record_output(batch.num_rows());
                    baseline.output_batches().add(1);
                    let one = futures::stream::iter([Ok(batch)]).boxed();
                    Some((one, Some(passing)))
                }
                Step::Arrange { in_order } => Some((passing.arrange(in_order).await?, None)),
                Step::Done => None,
            };
            Ok(next)
        })
        .try_flatten()
    }

    async fn step(&mut self) -> Result<Step> {
        // Every partition that has not ended shows its next batch.
        for p in 0..self.arriving.len() {
            while self.held[p].is_empty() && !self.ended[p] {
                let Some(arrived) = self.arriving[p].recv().await else {
                    self.ended[p] = true;
                    // Ended on its own when its input did; otherwise it
                    // panicked, and joining it passes the panic on rather
                    // than end the partition short.
                    if let Some(task) = self.tasks[p].take() {
                        let joined = task.join_unwind().await;
                        joined.map_err(|e| DataFusionError::External(Box::new(e)))?;
                    }
                    break;
                };
                let Arrived { batch, in_order } = arrived?;
                if batch.num_rows() == 0 {
                    continue;
                }
                if !in_order {
                    self.held[p].push_back(Held { range: None, batch });
                    return Ok(Step::Arrange { in_order: false });
                }
                let keys: Vec<ArrayRef> = self
                    .columns
                    .iter()
                    .map(|&i| Arc::clone(batch.column(i)))
                    .collect();
                let first = row_at(&self.converter, &keys, 0)?;
                let last = row_at(&self.converter, &keys, batch.num_rows() - 1)?;
                self.held[p].push_back(Held {
                    range: Some((first, last)),
                    batch,
                });
            }
        }
        fn first(held: &VecDeque<Held>) -> Option<&OwnedRow> {
            held.front().and_then(|h| h.range.as_ref()).map(|r| &r.0)
        }
        let Some(p) = (0..self.held.len())
            .filter(|&p| first(&self.held[p]).is_some())
            .min_by(|&a, &b| first(&self.held[a]).cmp(&first(&self.held[b])))
        else {
            return Ok(Step::Done);
        };
        let last = &self.held[p][0].range.as_ref().expect("a ranged batch").1;
        let overlaps = (0..self.held.len())
            .any(|q| q != p && first(&self.held[q]).is_some_and(|other| other < last));
        if overlaps {
            return Ok(Step::Arrange { in_order: true });
        }
        let batch = self.held[p].pop_front().expect("a held batch").batch;
        self.passed_rows += batch.num_rows();
        if self.keeping {
            self.kept_bytes += batch.get_array_memory_size();
            if self.kept_bytes <= KEEP_BYTES {
                self.reservation.grow(batch.get_array_memory_size());
                self.passed[p].push(batch.clone());
            } else {
                // Past the budget, a rewrite computes the result again.
                self.keeping = false;
                self.passed.iter_mut().for_each(Vec::clear);
                self.reservation.free();
            }
        }
        Ok(Step::Pass(batch))
    }

    /// Everything, passed on or not, arranged; if some was passed on, left
    /// for the sink to write again, and the stream fails.
    async fn arrange(
        mut self,
        mut in_order: bool,
    ) -> Result<BoxStream<'static, Result<RecordBatch>>> {
        let passed_rows = self.passed_rows;
        if !self.keeping {
            // What was passed on is gone: the result is computed again, and
            // sorted (the partitions and their tasks stop here).
            self.rows_rewritten.add(passed_rows);
            tracing::info!(
                rows = passed_rows,
                "rows arrived out of the stored order after more than could be kept \
                 were written; computing the result again to sort it"
            );
            // A plan's nodes may hold state of their run (a repartition's
            // channels): fresh ones run it again.
            let input = reset_plan_states(Arc::clone(&self.input))?;
            let again = self.arrange.sort_plan(input)?;
            self.rewrite.put(again);
            return Ok(out_of_order());
        }
        let mut kept = Vec::with_capacity(self.arriving.len());
        let arriving = std::mem::take(&mut self.arriving);
        for (p, mut from) in arriving.into_iter().enumerate() {
            let mut batches = std::mem::take(&mut self.passed[p]);
            batches.extend(self.held[p].drain(..).map(|held| held.batch));
            // Partitions in order so far that only overlap are read to the
            // end for a merge, unless a row out of order shows up.
            while in_order {
                match from.recv().await.transpose()? {
                    Some(arrived) => {
                        in_order = arrived.in_order;
                        if arrived.batch.num_rows() > 0 {
                            batches.push(arrived.batch);
                        }
                    }
                    None => break,
                }
            }
            let task = self.tasks[p].take();
            let rest = (!in_order).then(|| {
                let rest = futures::stream::poll_fn(move |cx| {
                    let _running = &task;
                    from.poll_recv(cx)
                })
                .map(|arrived| arrived.map(|a| a.batch));
                Box::pin(RecordBatchStreamAdapter::new(
                    Arc::clone(&self.arrange.schema),
                    rest,
                )) as SendableRecordBatchStream
            });
            let reservation = if p == 0 {
                let empty = self.reservation.new_empty();
                std::mem::replace(&mut self.reservation, empty)
            } else {
                self.reservation.new_empty()
            };
            kept.push(Kept {
                batches,
                rest,
                reservation,
            });
        }
        if !in_order {
            // A partition read to its end before the row out of order
            // showed up still goes to the sort whole.
            for k in &mut kept {
                if k.rest.is_none() {
                    k.rest = Some(Box::pin(RecordBatchStreamAdapter::new(
                        Arc::clone(&self.arrange.schema),
                        futures::stream::empty(),
                    )));
                }
            }
        }
        let arranged = self.arrange.finish(kept)?;
        if passed_rows == 0 {
            return Ok(arranged.boxed());
        }
        self.rows_rewritten.add(passed_rows);
        tracing::debug!(
            rows = passed_rows,
            "rows arrived out of the stored order after some were written; writing again"
        );
        self.rewrite.put(arranged);
        Ok(out_of_order())
    }
}

/// Bytes of passed-on batches kept for a rewrite. Keeping everything made
/// every batch of a large result land on fresh pages (a 30M-row result,
/// 720 MB, spent more time in page faults than in encoding), and a row out
/// of order after this many is rare: past it, a rewrite computes the result
/// again instead.
#[cfg(not(test))]
const KEEP_BYTES: usize = 64 * 1024 * 1024;
/// Small in unit tests, so that the path that computes again runs.
#[cfg(test)]
const KEEP_BYTES: usize = 4096;

/// The error that ends a stream whose rows went out of order after the
/// write began; the sink then writes the [`Rewrite`].
fn out_of_order() -> BoxStream<'static, Result<RecordBatch>> {
    futures::stream::iter([Err(DataFusionError::Execution(
        "rows arrived out of the stored order after the write began; \
         it starts again with the rows arranged"
            .into(),
    ))])
    .boxed()
}

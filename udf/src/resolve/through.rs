//! Serving a miss from the rows it stores.
//!
//! A miss streams its compute into the backend; the query could then read
//! the new entry back, which decodes what was just encoded (and, on a
//! bucket, downloads what was just uploaded). Instead, the compute's
//! batches go two ways: [`TeeExec`], in the write plan, hands each batch
//! it passes to the writer to [`ServedExec`] as well, which is what the
//! query reads. The write runs in a task of its own; the query's streams
//! end once it committed, with its error if it failed, so a query that read
//! to its end has its miss stored, as before.
//!
//! Batches wait for the query in unbounded queues: the write must never
//! wait for the query, or a query that reads this call only after
//! something else that waits for the entry (a join of the call with
//! itself) would never finish. A query slower than the compute therefore
//! holds what it has not read yet in memory, which is why the resolver
//! serves this way only without a memory limit (see `Resolver::through` below).
//!
//! A query that stops reading early leaves the write to finish by itself;
//! cancelling the session's calls abandons it ([`nuthatch_catalog::Background`]).
//!
//! Each row reaches the query once, from the compute's first run: the one
//! case where the write runs the compute again (rows out of order after
//! more were written than could be kept, see `order`) builds the plan
//! anew, which gives a tee that only passes rows on, and the first run's
//! partitions, which the write stops reading, are read to their end for the
//! query instead.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use arrow::array::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet, RecordOutput,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PhysicalExpr,
    PlanProperties,
};
use futures::channel::oneshot;
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, Stream, StreamExt};
use nuthatch_backends::{Backend, WriteMode, Written};
use nuthatch_catalog::inflight::Lead;
use nuthatch_catalog::{Entry, EntryId, Outcome, Tier};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::decide::{read_back_because, Serving};
use super::{unstored, Keep, Prepared, Resolver, WritePlan};

/// A miss served while it is stored: the plan the query
/// reads, and the write that is yet to run.
pub(super) struct Storing {
    pub(super) served: Arc<dyn ExecutionPlan>,
    pub(super) write: WritePlan,
    pub(super) committed: oneshot::Sender<Result<()>>,
}

impl Resolver<'_> {
    /// What decides whether this call's computed rows can be served as
    /// they are written with `backend`.
    fn serving(&self, backend: &dyn Backend) -> Serving {
        Serving {
            memoize: self.call.memoize,
            limited: self.shape.limit.is_some(),
            memory_bounded: self.memory_bounded(),
            exact_rows: backend.exact_rows(),
        }
    }

    /// The write of a miss that serves its rows as they are stored
    /// (see the module docs), if this call can be served so: a backend that reads
    /// back exactly the rows it was given (Parquet, Arrow), no memoizing
    /// (which keeps what it serves), no limit (a few rows read back cost
    /// little, and the query would stop before the write), no memory limit
    /// (rows the query has not read yet wait in memory), and rows that
    /// already come in the order the call declared (else reading the
    /// sorted entry back is cheaper than sorting them here).
    pub(super) fn through(
        &self,
        tier: &Tier,
        id: &EntryId,
        backend: &Arc<dyn Backend>,
        compute: Arc<dyn ExecutionPlan>,
        keep: &Keep,
    ) -> Result<Option<Storing>> {
        if let Some(why) = read_back_because(self.serving(backend.as_ref())) {
            tracing::debug!(key = %id.key, "a miss read back after its write: {why}");
            return Ok(None);
        }
        let compute = self.clipped(id, compute, keep)?;
        let (tee, served, committed) = tee(compute);
        let served = unstored(served, self.shape)?;
        if let Some(ordering) = &self.shape.ordering {
            if !served
                .equivalence_properties()
                .ordering_satisfy(ordering.clone())?
            {
                return Ok(None);
            }
        }
        let write = self.write_plan(tier, id, backend, tee, WriteMode::Replace, keep)?;
        Ok(Some(Storing {
            served,
            write,
            committed,
        }))
    }

    /// Stores what `plan` computes for time an entry lacked, as
    /// [`Resolver::store_plan`] does, and when those rows are all the call
    /// asks for (`asked_within`), keeps them for the query as they pass to
    /// the writer, under the same conditions as a miss served while stored
    /// ([`Resolver::through`]): the extension then serves its rows without
    /// reading them back. The write is done when this returns, so the
    /// served plan only drains what was kept.
    pub(super) async fn store_kept(
        &self,
        tier: &Tier,
        backend: &Arc<dyn Backend>,
        plan: Arc<dyn ExecutionPlan>,
        keep: Keep,
        mode: WriteMode,
        asked_within: bool,
    ) -> Result<(
        Entry,
        Arc<dyn ExecutionPlan>,
        Written,
        Option<Arc<dyn ExecutionPlan>>,
    )> {
        let servable = asked_within && read_back_because(self.serving(backend.as_ref())).is_none();
        let id = &self.call.id;
        if !servable {
            let (entry, plan, written) =
                self.store_plan(tier, id, backend, plan, keep, mode).await?;
            return Ok((entry, plan, written, None));
        }
        let plan = self.clipped(id, plan, &keep)?;
        let (tee, served, committed) = tee(Arc::clone(&plan));
        let in_order = match &self.shape.ordering {
            Some(ordering) => unstored(Arc::clone(&served) as _, self.shape)?
                .equivalence_properties()
                .ordering_satisfy(ordering.clone())?,
            None => true,
        };
        let (input, served): (Arc<dyn ExecutionPlan>, _) = match in_order {
            true => (tee, Some(served as Arc<dyn ExecutionPlan>)),
            false => (plan, None),
        };
        let write = self.write_plan(tier, id, backend, input, mode, &keep)?;
        let (written, entry) = write.run(self.state.task_ctx()).await?;
        let _ = committed.send(Ok(()));
        Ok((entry, write.plan, written, served))
    }

    /// Runs the write of `storing` in a task of its own, which finishes
    /// `lead` at the commit, and serves the rows meanwhile.
    pub(super) fn store_in_background(
        &self,
        storing: Storing,
        lead: Lead,
        backend: &str,
        tier: Option<String>,
    ) -> Prepared {
        let Storing {
            served,
            write,
            committed,
        } = storing;
        let compute = Arc::clone(&write.plan);
        let entry = format!("{}: {}", self.call.function.name(), write.key);
        let background = self.call.reports.background.begin(&entry);
        let cancelled = background.cancelled();
        let context = self.state.task_ctx();
        // The entry is noted as read once it is committed, before the
        // caller's rows end: the caller's own commit comes after.
        let caller_reads = (self.call.stack.caller()).map(|frame| Arc::clone(&frame.reads));
        tokio::spawn(async move {
            let _counted = background;
            // A panic in the body or the backend fails the write with its
            // message, rather than reaching the query as a cancellation.
            let run = std::panic::AssertUnwindSafe(write.run(context))
                .catch_unwind()
                .map(|ran| ran.unwrap_or_else(|panic| Err(panicked(&write.key, panic))));
            tokio::select! {
                stored = run => match stored {
                    Ok((_, entry)) => {
                        if let Some(reads) = caller_reads {
                            reads.note(super::read_input(&entry));
                        }
                        lead.finish(Ok(())).await;
                        let _ = committed.send(Ok(()));
                    }
                    Err(error) => {
                        let error = Arc::new(error);
                        lead.finish(Err(Arc::clone(&error))).await;
                        let _ = committed.send(Err(DataFusionError::Shared(error)));
                    }
                },
                // Dropping the write abandons it (nothing becomes visible)
                // and the lead with it, which tells its followers.
                () = cancelled => tracing::info!(key = %write.key, "write cancelled"),
            }
        });
        Prepared {
            plan: served,
            compute: Some(compute),
            outcome: Outcome::Computed,
            tier,
            copied_to: None,
            backend: backend.to_string(),
            started: self.started,
            written: None,
            storing: true,
            data_version: None,
            computed_ranges: None,
            stale: None,
        }
    }
}

/// The error of a write of `key` that panicked with `panic`.
fn panicked(key: &str, panic: Box<dyn std::any::Any + Send>) -> DataFusionError {
    let message = (panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_string());
    DataFusionError::Execution(format!(
        "computing {key} panicked: {message}; nothing was stored"
    ))
}

/// How the write ended, as every partition of the query awaits it.
type Committed = Shared<BoxFuture<'static, std::result::Result<(), Arc<DataFusionError>>>>;

/// A batch for the query, or the error that ended the compute's first run
/// after the write had stopped reading it.
type Queued = Result<RecordBatch>;

/// One queue per partition of the compute, each taken once by each side.
struct Queues {
    senders: Mutex<Vec<Option<UnboundedSender<Queued>>>>,
    receivers: Mutex<Vec<Option<UnboundedReceiver<Queued>>>>,
    /// The write runs the compute again: partitions of the first run that
    /// it stops reading are read to their end for the query.
    again: AtomicBool,
}

impl Queues {
    fn new(partitions: usize) -> Self {
        let (senders, receivers) = (0..partitions)
            .map(|_| {
                let (sender, receiver) = unbounded_channel();
                (Some(sender), Some(receiver))
            })
            .unzip();
        Queues {
            senders: Mutex::new(senders),
            receivers: Mutex::new(receivers),
            again: AtomicBool::new(false),
        }
    }

    fn take<T>(slots: &Mutex<Vec<Option<T>>>, partition: usize, what: &str) -> Result<T> {
        slots
            .lock()
            .expect("write-through queues poisoned")
            .get_mut(partition)
            .and_then(Option::take)
            .ok_or_else(|| {
                DataFusionError::Internal(format!(
                    "the {what} of partition {partition} of a miss served while stored runs once"
                ))
            })
    }
}

/// Splits `compute` for a miss served while it is stored: the tee goes
/// into the write plan in place of `compute`, the served plan to the
/// query. `committed` is the write's end, sent by whoever runs it.
pub(crate) fn tee(
    compute: Arc<dyn ExecutionPlan>,
) -> (Arc<TeeExec>, Arc<ServedExec>, oneshot::Sender<Result<()>>) {
    let queues = Arc::new(Queues::new(compute.output_partitioning().partition_count()));
    let (sender, receiver) = oneshot::channel::<Result<()>>();
    let committed = receiver
        .map(|ended| match ended {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Arc::new(e)),
            // The task that wrote was dropped: the session cancelled it, or
            // the runtime shut down.
            Err(_) => Err(Arc::new(DataFusionError::Execution(
                "the write of this miss was cancelled; nothing was stored".into(),
            ))),
        })
        .boxed()
        .shared();
    let served = Arc::new(ServedExec {
        properties: Arc::clone(compute.properties()),
        queues: Arc::clone(&queues),
        committed,
        metrics: ExecutionPlanMetricsSet::new(),
    });
    let tee = Arc::new(TeeExec {
        properties: Arc::clone(compute.properties()),
        input: compute,
        queues,
        again: false,
    });
    (tee, served, sender)
}

/// Passes its input on unchanged and queues each batch for [`ServedExec`].
pub(crate) struct TeeExec {
    input: Arc<dyn ExecutionPlan>,
    queues: Arc<Queues>,
    properties: Arc<PlanProperties>,
    /// Built anew to run the compute again: passes rows on only.
    again: bool,
}

impl fmt::Debug for TeeExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TeeExec")
    }
}

impl DisplayAs for TeeExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        if self.again {
            f.write_str("TeeExec: the rows stored again")
        } else {
            f.write_str("TeeExec: the rows stored are also served")
        }
    }
}

impl ExecutionPlan for TeeExec {
    fn name(&self) -> &str {
        "TeeExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
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
        let input = children
            .pop()
            .ok_or_else(|| DataFusionError::Internal("TeeExec has an input".into()))?;
        // Only a run of the compute again builds the write plan anew.
        self.queues.again.store(true, Ordering::Release);
        Ok(Arc::new(TeeExec {
            properties: Arc::clone(input.properties()),
            input,
            queues: Arc::clone(&self.queues),
            again: true,
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        if self.again {
            return Ok(input);
        }
        let queue = Queues::take(&self.queues.senders, partition, "tee")?;
        Ok(Box::pin(Teed {
            schema: input.schema(),
            input: Some(input),
            queue,
            queues: Arc::clone(&self.queues),
            ended: false,
        }))
    }
}

/// One partition of the compute, on its way to the writer and the query.
/// The queue closes when this is dropped: at its end, or when the write
/// stops reading (it failed, or was cancelled, or runs the compute again;
/// only in the last case is the rest still read, for the query).
struct Teed {
    schema: arrow::datatypes::SchemaRef,
    input: Option<SendableRecordBatchStream>,
    queue: UnboundedSender<Queued>,
    queues: Arc<Queues>,
    ended: bool,
}

impl Stream for Teed {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(input) = self.input.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = input.poll_next_unpin(cx);
        match &polled {
            // A query that stopped reading dropped its side; the write
            // goes on.
            Poll::Ready(Some(Ok(batch))) => {
                let _ = self.queue.send(Ok(batch.clone()));
            }
            Poll::Ready(None) => self.ended = true,
            _ => {}
        }
        polled
    }
}

impl datafusion::execution::RecordBatchStream for Teed {
    fn schema(&self) -> arrow::datatypes::SchemaRef {
        Arc::clone(&self.schema)
    }
}

impl Drop for Teed {
    fn drop(&mut self) {
        let again = self.queues.again.load(Ordering::Acquire);
        if self.ended || !again || self.queue.is_closed() {
            return;
        }
        let (Some(mut rest), Ok(runtime)) =
            (self.input.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let queue = self.queue.clone();
        runtime.spawn(async move {
            while let Some(batch) = rest.next().await {
                let failed = batch.is_err();
                if queue.send(batch).is_err() || failed {
                    break;
                }
            }
        });
    }
}

/// The compute's rows as the tee passes them to the writer, each
/// partition ending when the write has committed.
pub(crate) struct ServedExec {
    queues: Arc<Queues>,
    committed: Committed,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl fmt::Debug for ServedExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServedExec")
    }
}

impl DisplayAs for ServedExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("ServedExec: the rows computed, as they are stored")
    }
}

impl ExecutionPlan for ServedExec {
    fn name(&self) -> &str {
        "ServedExec"
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
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let mut queue = Queues::take(&self.queues.receivers, partition, "served rows")?;
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let rows = futures::stream::poll_fn(move |cx| queue.poll_recv(cx)).map(move |batch| {
            if let Ok(batch) = &batch {
                batch.record_output(&baseline);
            }
            batch
        });
        let committed = self.committed.clone();
        let end =
            futures::stream::once(
                async move { committed.await.map_err(DataFusionError::Shared).err() },
            )
            .filter_map(|failed| futures::future::ready(failed.map(Err)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.properties.eq_properties.schema().clone(),
            rows.chain(end),
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

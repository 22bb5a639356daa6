//! Storing a computed result as a DataFusion [`DataSink`].
//!
//! A miss runs `DataSinkExec(EntrySink) ← compute plan`, so the write is a
//! node of an ordinary plan: `EXPLAIN ANALYZE` shows it, with the rows and
//! bytes it stored and the time it took, above the compute that fed it
//! (the cached call lists both as its children once it has run, see
//! [`crate::exec`]). The sink hands the stream to [`Catalog::store`], which
//! owns the commit; what that produced is kept here for the resolver.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::sink::DataSink;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, Time,
};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use nuthatch_backends::{Backend, WriteOptions, Written};
use nuthatch_catalog::{Catalog, Entry, EntryId, Tier};

use super::order::Rewrite;

/// Where and how one computed result is stored.
pub(crate) struct EntrySink {
    catalog: Arc<Catalog>,
    tier: Tier,
    id: EntryId,
    backend: Arc<dyn Backend>,
    options: WriteOptions,
    /// The function's declared schema, which the stored entry opens with.
    entry_schema: SchemaRef,
    /// What arrives: the compute plan's schema.
    input_schema: SchemaRef,
    /// Where the stored order leaves the result to write again, when rows
    /// arrived out of order after the write began (see [`Rewrite`]).
    rewrite: Option<Arc<Rewrite>>,
    stored: Mutex<Option<(Written, Entry)>>,
    metrics: SinkMetrics,
}

struct SinkMetrics {
    set: ExecutionPlanMetricsSet,
    rows: Count,
    bytes: Count,
    parts: Count,
    /// From the first poll of the input to the commit: compute, encoding
    /// and upload overlap, so this is the whole miss below the call.
    elapsed: Time,
}

impl SinkMetrics {
    fn new() -> Self {
        let set = ExecutionPlanMetricsSet::new();
        let rows = MetricBuilder::new(&set).counter("rows_written", 0);
        let bytes = MetricBuilder::new(&set).counter("bytes_written", 0);
        let parts = MetricBuilder::new(&set).counter("parts_written", 0);
        let elapsed = MetricBuilder::new(&set).subset_time("write_time", 0);
        SinkMetrics {
            set,
            rows,
            bytes,
            parts,
            elapsed,
        }
    }
}

impl EntrySink {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        catalog: Arc<Catalog>,
        tier: Tier,
        id: EntryId,
        backend: Arc<dyn Backend>,
        options: WriteOptions,
        entry_schema: SchemaRef,
        input_schema: SchemaRef,
        rewrite: Option<Arc<Rewrite>>,
    ) -> Self {
        EntrySink {
            catalog,
            tier,
            id,
            backend,
            options,
            entry_schema,
            input_schema,
            rewrite,
            stored: Mutex::new(None),
            metrics: SinkMetrics::new(),
        }
    }

    async fn store(&self, data: SendableRecordBatchStream) -> Result<(Written, Entry)> {
        self.catalog
            .store(
                &self.tier,
                &self.id,
                &self.backend,
                data,
                &self.options,
                &self.entry_schema,
            )
            .await
            .map_err(DataFusionError::from)
    }

    /// What the write produced, once it has committed.
    pub(crate) fn take_stored(&self) -> Option<(Written, Entry)> {
        self.stored.lock().expect("stored slot poisoned").take()
    }
}

impl fmt::Debug for EntrySink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntrySink")
            .field("tier", &self.tier.name())
            .field("key", &self.id.key)
            .field("backend", &self.backend.name())
            .finish()
    }
}

impl DisplayAs for EntrySink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "EntrySink: tier={}, backend={}, key={}",
            self.tier.name(),
            self.backend.name(),
            self.id.key
        )?;
        if let Some(column) = &self.options.sorted_by {
            write!(f, ", sorted_by={column}")?;
        }
        Ok(())
    }
}

#[async_trait]
impl DataSink for EntrySink {
    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.set.clone_inner())
    }

    fn schema(&self) -> &SchemaRef {
        &self.input_schema
    }

    async fn write_all(
        &self,
        data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let timer = self.metrics.elapsed.timer();
        let mut stored = self.store(data).await;
        // The write stopped at rows out of order; nothing of it is visible,
        // and the arranged rows are written from the start.
        if stored.is_err() {
            if let Some(arranged) = self.rewrite.as_ref().and_then(|r| r.take()) {
                if let Some(progress) = &self.options.progress {
                    progress.rows.store(0, Ordering::Relaxed);
                    progress.bytes.store(0, Ordering::Relaxed);
                }
                stored = self.store(arranged).await;
            }
        }
        let (written, entry) = stored?;
        timer.done();
        self.metrics.rows.add(written.rows as usize);
        self.metrics.bytes.add(written.bytes as usize);
        self.metrics.parts.add(written.parts as usize);
        // Registered once known: only some formats measure it.
        if let Some(took) = written.encode_time {
            MetricBuilder::new(&self.metrics.set)
                .subset_time("encode_time", 0)
                .add_duration(took);
        }
        let rows = written.rows;
        *self.stored.lock().expect("stored slot poisoned") = Some((written, entry));
        Ok(rows)
    }
}

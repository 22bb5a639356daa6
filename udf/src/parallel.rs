//! A miss written in parallel, as parts of one entry.
//!
//! A cluster spreads a body's compute over its workers; without more, the
//! rows would all come back to the coordinator to be written by one
//! writer. Here each partition of the compute writes its own rows as a
//! part of the entry, where it runs ([`PartWriterExec`]), and sends back
//! only what it wrote: the part's name, rows, bytes and time range. The
//! coordinator commits one record listing every part once all have
//! landed ([`nuthatch_catalog::Catalog::store_parts`]); a writer that
//! fails fails the write, and nothing of it is visible.
//!
//! The cluster says how plans are spread by putting [`ParallelWrites`] in
//! a session's configuration; a session without it writes as always. The
//! resolver decides which misses qualify ([`crate::resolve`]): a new entry
//! in a format that stores parts and keeps every value, on a tier every
//! worker reaches, with no order or grid to keep across parts.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::context::{SessionConfig, SessionState};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PhysicalExpr,
    PlanProperties,
};
use futures::future::BoxFuture;
use futures::StreamExt;
use nuthatch_backends::{Backend, Location, WriteMode, WriteOptions};
use nuthatch_catalog::{TimeRange, WrittenPart};
use object_store::path::Path;

/// Spreads a physical plan over workers: what a cluster does with a plan
/// it is handed.
pub trait Spread: Send + Sync + fmt::Debug {
    /// `plan`, cut into stages for the workers; `None` when it stays in
    /// this process (too small to be worth stages, an operator that cannot
    /// travel, a session that runs alone).
    fn spread<'a>(
        &'a self,
        plan: Arc<dyn ExecutionPlan>,
        state: &'a SessionState,
    ) -> BoxFuture<'a, Result<Option<Arc<dyn ExecutionPlan>>>>;
}

/// In a session's configuration: misses are written in parallel, spread
/// by this (module docs).
#[derive(Debug, Clone)]
pub struct ParallelWrites(pub Arc<dyn Spread>);

/// Whether the plans that serve calls in a session of `config` may be sent
/// to workers (it coordinates a cluster). Such a plan must hold every step
/// it relies on: a stored entry's scan is made portable
/// ([`nuthatch_backends::files::PortableScans`]: files and byte ranges, no row selections of this
/// process, which would stay behind) and the window is clipped with a
/// filter.
pub fn may_travel(config: &SessionConfig) -> bool {
    config.get_extension::<ParallelWrites>().is_some()
}

/// Where the parts go: the entry's path in a store the runtime knows by
/// URL, in a format, with the time column whose range each part reports.
#[derive(Debug, Clone)]
pub struct PartsTarget {
    pub backend: Arc<dyn Backend>,
    pub store_url: ObjectStoreUrl,
    pub path: Path,
    pub time_column: Option<String>,
}

/// Writes each partition of its input as a part of one entry, and yields
/// a row per part written (module docs).
#[derive(Debug)]
pub struct PartWriterExec {
    input: Arc<dyn ExecutionPlan>,
    target: PartsTarget,
    properties: Arc<PlanProperties>,
}

impl PartWriterExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, target: PartsTarget) -> PartWriterExec {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(written_schema()),
            input.output_partitioning().clone(),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        PartWriterExec {
            input,
            target,
            properties,
        }
    }

    pub fn target(&self) -> &PartsTarget {
        &self.target
    }
}

/// One row per part written.
fn written_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("part", DataType::Utf8, false),
        Field::new("rows", DataType::UInt64, false),
        Field::new("bytes", DataType::UInt64, false),
        Field::new("time_min", DataType::Int64, true),
        Field::new("time_max", DataType::Int64, true),
    ]))
}

/// The parts the rows of [`PartWriterExec`]s list.
pub fn parts_written(batches: &[RecordBatch]) -> Result<Vec<WrittenPart>> {
    let mut parts = Vec::new();
    for batch in batches {
        let column = |i: usize| -> &ArrayRef { batch.column(i) };
        let names = downcast::<StringArray>(column(0))?;
        let rows = downcast::<UInt64Array>(column(1))?;
        let bytes = downcast::<UInt64Array>(column(2))?;
        let (low, high) = (
            downcast::<Int64Array>(column(3))?,
            downcast::<Int64Array>(column(4))?,
        );
        for i in 0..batch.num_rows() {
            let time = TimeRange {
                min: low.is_valid(i).then(|| low.value(i)),
                max: high.is_valid(i).then(|| high.value(i)),
            };
            parts.push(WrittenPart {
                name: names.value(i).to_string(),
                rows: rows.value(i),
                bytes: bytes.value(i),
                time,
            });
        }
    }
    Ok(parts)
}

fn downcast<T: 'static>(array: &ArrayRef) -> Result<&T> {
    array
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| DataFusionError::Internal("a part writer's row is malformed".into()))
}

impl DisplayAs for PartWriterExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "PartWriterExec: backend={}, entry={}{}",
            self.target.backend.name(),
            self.target.store_url.as_str().trim_end_matches('/'),
            format_args!("/{}", self.target.path)
        )
    }
}

impl ExecutionPlan for PartWriterExec {
    fn name(&self) -> &str {
        "PartWriterExec"
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
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let [input] = <[_; 1]>::try_from(children)
            .map_err(|_| DataFusionError::Internal("PartWriterExec takes one input".into()))?;
        Ok(Arc::new(PartWriterExec::new(input, self.target.clone())))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let data = self.input.execute(partition, Arc::clone(&context))?;
        let target = self.target.clone();
        let written = futures::stream::once(async move {
            let store = context.runtime_env().object_store(&target.store_url)?;
            let at = Location::new(store, target.store_url.clone(), target.path.clone());
            write_part(&target, &at, data).await
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            written_schema(),
            written,
        )))
    }
}

/// Writes `data` as a new part at `at`, and the row that says so.
async fn write_part(
    target: &PartsTarget,
    at: &Location,
    data: SendableRecordBatchStream,
) -> Result<RecordBatch> {
    let range = Arc::new(std::sync::Mutex::new(TimeRange::default()));
    let noted = Arc::clone(&range);
    let column = target.time_column.clone();
    let schema = data.schema();
    let tapped = data.map(move |batch| {
        if let (Ok(batch), Some(column)) = (&batch, &column) {
            noted.lock().expect("time range").note(batch, column);
        }
        batch
    });
    let data = Box::pin(RecordBatchStreamAdapter::new(schema, tapped));
    // Added beside whatever others write; the coordinator's commit says
    // which parts make the entry.
    let options = WriteOptions {
        sorted_by: target.time_column.clone(),
        parts: true,
        mode: WriteMode::Append,
        amends: true,
        ..WriteOptions::default()
    };
    let written = target.backend.write(at, data, &options).await?;
    let name = written.part.ok_or_else(|| {
        DataFusionError::Internal(format!(
            "the {} backend wrote no part",
            target.backend.name()
        ))
    })?;
    let range = *range.lock().expect("time range");
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![name])),
        Arc::new(UInt64Array::from(vec![written.rows])),
        Arc::new(UInt64Array::from(vec![written.bytes])),
        Arc::new(Int64Array::from(vec![range.min])),
        Arc::new(Int64Array::from(vec![range.max])),
    ];
    Ok(RecordBatch::try_new(written_schema(), columns)?)
}

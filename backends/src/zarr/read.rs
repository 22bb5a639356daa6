//! A Zarr store as a table: one row per grid cell, the dimensions as
//! columns next to the variables.
//!
//! Rows are the C-order cartesian product of the dimensions (the last
//! varies fastest), as in arrow-zarr and xarray's `to_dataframe`. The
//! coordinates are small and read when the table is opened; a scan
//! evaluates each filter that names one dimension on that dimension's
//! coordinates, so `time BETWEEN ...` or `lat > 40` (any expression
//! DataFusion can evaluate, with its own semantics) becomes an index range,
//! and only the chunks that intersect every range are read. Filters stay
//! `Inexact`: rows of a chunk outside the ranges are cut when the chunk is
//! read, and DataFusion re-checks the rest.
//!
//! A scan is one batch per chunk (cropped to the selection), split into
//! contiguous runs of chunks, one per partition, each reading one chunk
//! ahead of the one it decodes. Its metrics say how many chunks were read
//! of the entry's total (`chunks_pruned`, as Parquet reports row groups),
//! how many were missing and read as the fill value (`chunks_missing`), and
//! the encoded bytes fetched (`bytes_scanned`).

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{
    make_array, Array as _, ArrayDataBuilder, ArrayRef, BooleanArray, Int64Array, RecordBatch,
    RecordBatchOptions, UInt64Array,
};
use arrow::buffer::Buffer;
use arrow::compute::kernels::cast::cast;
use arrow::compute::take;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchema, DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr, PlanProperties,
};
use futures::{StreamExt, TryStreamExt};
use zarrs::array::data_type::{
    BoolDataType, Float32DataType, Float64DataType, Int16DataType, Int32DataType, Int64DataType,
    Int8DataType, NumpyDateTime64DataType, UInt16DataType, UInt32DataType, UInt64DataType,
    UInt8DataType,
};
use zarrs::array::{ArrayBytes, ArraySubset, ArrayToBytesCodecTraits, CodecOptions};

use super::cf::{self, Decoding};
use super::store::{OpenedStore, StoredArray, ZarrArray};

/// Where a column of the table comes from.
#[derive(Debug, Clone)]
enum Column {
    /// The coordinates of grid dimension `k`.
    Dimension(usize),
    Variable(Arc<StoredArray>),
}

/// An opened Zarr entry.
#[derive(Debug)]
pub struct ZarrTable {
    schema: SchemaRef,
    columns: Vec<Column>,
    /// The grid's dimensions, outermost first, and their lengths.
    dimensions: Vec<String>,
    shape: Vec<u64>,
    /// Per dimension, its coordinates as the table shows them.
    coordinates: Vec<ArrayRef>,
    /// The variable whose chunk grid the scan follows.
    reference: Option<Arc<StoredArray>>,
    /// Where the entry is, for messages.
    location: String,
}

impl ZarrTable {
    /// Maps `schema`'s columns onto the store's arrays and reads the
    /// coordinates.
    pub async fn open(
        store: OpenedStore,
        schema: SchemaRef,
        location: String,
    ) -> Result<ZarrTable> {
        let arrays: Vec<Arc<StoredArray>> = store.arrays.into_values().map(Arc::new).collect();
        let is_coordinate = |a: &StoredArray| a.dimensions.len() == 1 && a.dimensions[0] == a.name;
        let named = |name: &str| arrays.iter().find(|a| a.name == name);
        // The grid is the variables': those the schema names, or all.
        let mut variables: Vec<&Arc<StoredArray>> = schema
            .fields()
            .iter()
            .filter_map(|f| named(f.name()))
            .filter(|a| !is_coordinate(a))
            .collect();
        if variables.is_empty() {
            variables = arrays.iter().filter(|a| !is_coordinate(a)).collect();
        }
        let dimensions: Vec<String> = match variables.first() {
            Some(first) => first.dimensions.clone(),
            None => schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .filter(|n| named(n).is_some())
                .collect(),
        };
        let shape: Vec<u64> = match variables.first() {
            Some(first) => first.array.shape().to_vec(),
            None => dimensions
                .iter()
                .map(|d| named(d).map_or(0, |a| a.array.shape()[0]))
                .collect(),
        };
        for variable in &variables {
            if variable.dimensions != dimensions || variable.array.shape() != shape.as_slice() {
                return Err(DataFusionError::Plan(format!(
                    "the Zarr entry {location} holds variables over different grids: '{}' is \
                     ({}) of shape {:?}, '{}' is ({}) of shape {:?}; a table needs one grid, so \
                     declare the function's columns from one of them",
                    variables[0].name,
                    dimensions.join(", "),
                    shape,
                    variable.name,
                    variable.dimensions.join(", "),
                    variable.array.shape()
                )));
            }
        }

        let mut columns = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let name = field.name();
            if let Some(k) = dimensions.iter().position(|d| d == name) {
                columns.push(Column::Dimension(k));
            } else if let Some(array) = named(name) {
                if array.dimensions != dimensions {
                    return Err(DataFusionError::Plan(format!(
                        "column '{name}' of the Zarr entry {location} is over ({}), not the \
                         grid ({})",
                        array.dimensions.join(", "),
                        dimensions.join(", ")
                    )));
                }
                columns.push(Column::Variable(Arc::clone(array)));
            } else {
                let mut have: Vec<&str> = arrays.iter().map(|a| a.name.as_str()).collect();
                have.sort();
                return Err(DataFusionError::Plan(format!(
                    "the Zarr entry {location} has no array '{name}' (it has {}); the \
                     function's columns must match the stored variables and dimensions",
                    have.join(", ")
                )));
            }
        }

        let mut coordinates = Vec::with_capacity(dimensions.len());
        for (k, dimension) in dimensions.iter().enumerate() {
            let values: ArrayRef = match named(dimension).filter(|a| is_coordinate(a)) {
                Some(coordinate) => {
                    let full = ArraySubset::new_with_shape(coordinate.array.shape().to_vec());
                    let bytes: ArrayBytes<'static> = coordinate
                        .array
                        .async_retrieve_array_subset(&full)
                        .await
                        .map_err(|e| read_failed(&location, dimension, e))?;
                    to_column(coordinate, bytes)?
                }
                // A dimension without coordinates is numbered, as in xarray.
                None => Arc::new(Int64Array::from_iter_values(0..shape[k] as i64)),
            };
            let values = match schema.field_with_name(dimension) {
                Ok(field) => cast(&values, field.data_type())?,
                Err(_) => values,
            };
            if values.len() as u64 != shape[k] {
                return Err(DataFusionError::Execution(format!(
                    "the Zarr entry {location} has {} '{dimension}' coordinates for a \
                     dimension of length {}",
                    values.len(),
                    shape[k]
                )));
            }
            coordinates.push(values);
        }
        let reference = variables.first().map(|v| Arc::clone(v));
        Ok(ZarrTable {
            schema,
            columns,
            dimensions,
            shape,
            coordinates,
            reference,
            location,
        })
    }

    /// The grid's dimensions, outermost first, their lengths and their
    /// coordinates (typed as the table shows them).
    pub fn grid(&self) -> (&[String], &[u64], &[ArrayRef]) {
        (&self.dimensions, &self.shape, &self.coordinates)
    }

    /// The chunk shape of the grid's variables.
    pub fn chunk_shape(&self) -> Option<Vec<u64>> {
        let reference = self.reference.as_ref()?;
        let origin = vec![0; self.shape.len()];
        let shape = reference.array.chunk_shape(&origin).ok()?;
        Some(shape.iter().map(|n| n.get()).collect())
    }

    /// The index range of each dimension that `filters` leave.
    fn selection(&self, session: &dyn Session, filters: &[Expr]) -> Vec<Range<u64>> {
        let mut ranges: Vec<Range<u64>> = self.shape.iter().map(|n| 0..*n).collect();
        for filter in filters {
            let named = filter.column_refs();
            let [column] = named.iter().collect::<Vec<_>>()[..] else {
                continue;
            };
            let Some(k) = self.dimensions.iter().position(|d| *d == column.name) else {
                continue;
            };
            // Filters DataFusion cannot evaluate on the coordinates alone are
            // left to it.
            if let Some(range) = self.matching_range(session, filter, k) {
                // Intersect; an empty intersection stays empty.
                let r = &mut ranges[k];
                let start = r.start.max(range.start);
                *r = start..r.end.min(range.end).max(start);
            }
        }
        ranges
    }

    fn matching_range(&self, session: &dyn Session, filter: &Expr, k: usize) -> Option<Range<u64>> {
        let field = self.schema.field_with_name(&self.dimensions[k]).ok()?;
        let schema = Arc::new(Schema::new(vec![field.clone()]));
        let batch =
            RecordBatch::try_new(Arc::clone(&schema), vec![Arc::clone(&self.coordinates[k])])
                .ok()?;
        let expr = session
            .create_physical_expr(filter.clone(), &DFSchema::try_from(schema).ok()?)
            .ok()?;
        let mask = expr
            .evaluate(&batch)
            .ok()?
            .into_array(batch.num_rows())
            .ok()?;
        let mask = mask.as_any().downcast_ref::<BooleanArray>()?;
        let hits = || (0..mask.len()).filter(|i| mask.is_valid(*i) && mask.value(*i));
        match (hits().next(), hits().next_back()) {
            (Some(first), Some(last)) => Some(first as u64..last as u64 + 1),
            _ => Some(0..0),
        }
    }
}

fn read_failed(location: &str, name: &str, e: impl fmt::Display) -> DataFusionError {
    DataFusionError::Execution(format!(
        "reading the Zarr array '{name}' of {location}: {e}"
    ))
}

#[async_trait]
impl TableProvider for ZarrTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        session: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let ranges = self.selection(session, filters);
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.columns.len()).collect(),
        };
        let schema = Arc::new(self.schema.project(&indices)?);
        let columns: Vec<Column> = indices.iter().map(|i| self.columns[*i].clone()).collect();
        // The chunks of the first variable read (or of the grid's first
        // variable when only coordinates are asked for) pace the scan.
        let reference = columns
            .iter()
            .find_map(|c| match c {
                Column::Variable(v) => Some(Arc::clone(v)),
                Column::Dimension(_) => None,
            })
            .or_else(|| self.reference.clone());
        let (boxes, total) = match &reference {
            Some(reference) => chunk_boxes(&reference.array, &ranges)?,
            // No variable at all: the coordinates alone, as one box.
            None => {
                let empty = ranges.iter().any(|r| r.is_empty());
                let boxes = if empty {
                    vec![]
                } else {
                    vec![Chunk {
                        indices: vec![],
                        cells: ranges.clone(),
                    }]
                };
                (boxes, 1)
            }
        };
        let reads_chunks = columns.iter().any(|c| matches!(c, Column::Variable(_)));
        let partitions = session
            .config()
            .target_partitions()
            .clamp(1, boxes.len().max(1));
        let metrics = ExecutionPlanMetricsSet::new();
        let pruning = MetricBuilder::new(&metrics).pruning_metrics("chunks_pruned", 0);
        let read = if reads_chunks { boxes.len() } else { 0 };
        pruning.add_matched(read);
        pruning.add_pruned(total - read);
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Ok(Arc::new(ZarrScan {
            scan: Arc::new(ScanShared {
                schema,
                columns,
                coordinates: self.coordinates.clone(),
                location: self.location.clone(),
            }),
            boxes: Arc::new(boxes),
            total,
            limit,
            partitions,
            properties,
            metrics,
        }))
    }
}

/// One chunk to read: its indices in the reference grid and the cells of
/// it the selection keeps (global index ranges per dimension).
#[derive(Debug, Clone)]
struct Chunk {
    indices: Vec<u64>,
    cells: Vec<Range<u64>>,
}

/// The chunks of `array` that intersect `ranges`, in C order, and the
/// array's number of chunks.
fn chunk_boxes(array: &ZarrArray, ranges: &[Range<u64>]) -> Result<(Vec<Chunk>, usize)> {
    let total: u64 = array.chunk_grid_shape().iter().product();
    if ranges.iter().any(|r| r.is_empty()) {
        return Ok((vec![], total as usize));
    }
    let selection = ArraySubset::new_with_ranges(ranges);
    let Some(chunks) = array
        .chunks_in_array_subset(&selection)
        .map_err(zarr_error)?
    else {
        return Ok((vec![], total as usize));
    };
    let mut boxes = Vec::new();
    for indices in &chunks.indices() {
        let bounds = array.chunk_subset_bounded(&indices).map_err(zarr_error)?;
        let cells = bounds
            .start()
            .iter()
            .zip(bounds.shape())
            .zip(ranges)
            .map(|((start, len), range)| range.start.max(*start)..range.end.min(start + len))
            .collect();
        boxes.push(Chunk {
            indices: indices.to_vec(),
            cells,
        });
    }
    Ok((boxes, total as usize))
}

fn zarr_error(e: impl fmt::Display) -> DataFusionError {
    DataFusionError::Execution(format!("Zarr: {e}"))
}

/// What every partition of a scan shares.
#[derive(Debug)]
struct ScanShared {
    schema: SchemaRef,
    columns: Vec<Column>,
    coordinates: Vec<ArrayRef>,
    location: String,
}

/// Reads the chunks of a [`ZarrTable`] scan.
#[derive(Debug)]
pub struct ZarrScan {
    scan: Arc<ScanShared>,
    boxes: Arc<Vec<Chunk>>,
    total: usize,
    limit: Option<usize>,
    partitions: usize,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl DisplayAs for ZarrScan {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let columns: Vec<&str> = self
            .scan
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        write!(
            f,
            "ZarrScan: chunks={}/{} columns=[{}]",
            self.boxes.len(),
            self.total,
            columns.join(", ")
        )?;
        if let Some(limit) = self.limit {
            write!(f, " limit={limit}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for ZarrScan {
    fn name(&self) -> &str {
        "ZarrScan"
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
            Err(DataFusionError::Internal("ZarrScan has no children".into()))
        }
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let per_partition = self.boxes.len().div_ceil(self.partitions).max(1);
        let start = (partition * per_partition).min(self.boxes.len());
        let end = ((partition + 1) * per_partition).min(self.boxes.len());
        let boxes = Arc::clone(&self.boxes);
        let scan = Arc::clone(&self.scan);
        let missing = MetricBuilder::new(&self.metrics).counter("chunks_missing", partition);
        let bytes = MetricBuilder::new(&self.metrics).counter("bytes_scanned", partition);
        let batches = futures::stream::iter(start..end)
            .map(move |i| {
                let (scan, boxes) = (Arc::clone(&scan), Arc::clone(&boxes));
                let (missing, bytes) = (missing.clone(), bytes.clone());
                async move { read_chunk(&scan, &boxes[i], &missing, &bytes).await }
            })
            .buffered(2);
        let batches: SendableRecordBatchStream = Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.scan.schema),
            batches,
        ));
        Ok(match self.limit {
            Some(limit) => limited(batches, limit),
            None => batches,
        })
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// Stops after `limit` rows.
fn limited(batches: SendableRecordBatchStream, limit: usize) -> SendableRecordBatchStream {
    let schema = batches.schema();
    let mut left = limit;
    let stream = batches
        .try_take_while(move |_| futures::future::ready(Ok(left > 0)))
        .map_ok(move |batch| {
            let keep = batch.num_rows().min(left);
            left -= keep;
            batch.slice(0, keep)
        });
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

/// One batch: the chunk's selected cells, every projected column.
async fn read_chunk(
    scan: &ScanShared,
    chunk: &Chunk,
    missing: &Count,
    bytes: &Count,
) -> Result<RecordBatch> {
    let rows: u64 = chunk.cells.iter().map(|r| r.end - r.start).product();
    let mut columns = Vec::with_capacity(scan.columns.len());
    for (column, field) in scan.columns.iter().zip(scan.schema.fields()) {
        let values = match column {
            Column::Dimension(k) => broadcast(&scan.coordinates[*k], &chunk.cells, *k)?,
            Column::Variable(variable) => {
                let values = read_variable(variable, chunk, missing, bytes)
                    .await
                    .map_err(|e| read_failed(&scan.location, &variable.name, e))?;
                cast(&values, field.data_type())?
            }
        };
        columns.push(values);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(rows as usize));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(&scan.schema),
        columns,
        &options,
    )?)
}

/// The coordinates of dimension `k` repeated for every cell of `cells` in
/// C order.
fn broadcast(coordinates: &ArrayRef, cells: &[Range<u64>], k: usize) -> Result<ArrayRef> {
    let inner: u64 = cells[k + 1..].iter().map(|r| r.end - r.start).product();
    let outer: u64 = cells[..k].iter().map(|r| r.end - r.start).product();
    let mut positions =
        Vec::with_capacity((outer * inner * (cells[k].end - cells[k].start)) as usize);
    for _ in 0..outer {
        for i in cells[k].clone() {
            positions.extend(std::iter::repeat_n(i, inner as usize));
        }
    }
    Ok(take(
        coordinates.as_ref(),
        &UInt64Array::from(positions),
        None,
    )?)
}

/// A variable's values in the chunk's selected cells, decoded.
async fn read_variable(
    variable: &StoredArray,
    chunk: &Chunk,
    missing: &Count,
    bytes: &Count,
) -> Result<ArrayRef> {
    let array = &variable.array;
    let element = element_size(array)?;
    let chunk_shape = array.chunk_shape(&chunk.indices).map_err(zarr_error)?;
    let origin = array.chunk_origin(&chunk.indices).map_err(zarr_error)?;
    let aligned = chunk_shape.len() == chunk.cells.len()
        && chunk
            .cells
            .iter()
            .zip(&origin)
            .zip(&chunk_shape)
            .all(|((cells, start), len)| cells.start >= *start && cells.end <= start + len.get());
    let raw: Vec<u8> = if aligned {
        let shape: Vec<u64> = chunk_shape.iter().map(|n| n.get()).collect();
        let elements: u64 = shape.iter().product();
        let decoded = match array
            .async_retrieve_encoded_chunk(&chunk.indices)
            .await
            .map_err(zarr_error)?
        {
            Some(encoded) => {
                bytes.add(encoded.len());
                array
                    .codecs()
                    .decode(
                        Cow::Borrowed(&encoded[..]),
                        &chunk_shape,
                        array.data_type(),
                        array.fill_value(),
                        &CodecOptions::default(),
                    )
                    .map_err(zarr_error)?
                    .into_fixed()
                    .map_err(zarr_error)?
                    .into_owned()
            }
            // Zarr reads a chunk nobody wrote as the fill value.
            None => {
                missing.add(1);
                ArrayBytes::new_fill_value(array.data_type(), elements, array.fill_value())
                    .map_err(zarr_error)?
                    .into_fixed()
                    .map_err(zarr_error)?
                    .into_owned()
            }
        };
        let local: Vec<Range<u64>> = chunk
            .cells
            .iter()
            .zip(&origin)
            .map(|(cells, start)| cells.start - start..cells.end - start)
            .collect();
        crop(decoded, &shape, &local, element)
    } else {
        // A variable chunked unlike the reference: zarrs assembles the cells
        // from the chunks they lie in.
        let subset = ArraySubset::new_with_ranges(&chunk.cells);
        let assembled: ArrayBytes<'static> = array
            .async_retrieve_array_subset(&subset)
            .await
            .map_err(zarr_error)?;
        assembled.into_fixed().map_err(zarr_error)?.into_owned()
    };
    to_column(variable, ArrayBytes::new_flen(raw))
}

/// The cells `local` (ranges within the chunk) of a decoded chunk of
/// `shape`, in C order.
fn crop(decoded: Vec<u8>, shape: &[u64], local: &[Range<u64>], element: usize) -> Vec<u8> {
    if local
        .iter()
        .zip(shape)
        .all(|(r, n)| r.start == 0 && r.end == *n)
    {
        return decoded;
    }
    let dims = shape.len();
    let run = (local[dims - 1].end - local[dims - 1].start) as usize * element;
    let mut strides = vec![1u64; dims];
    for d in (0..dims - 1).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    let rows: u64 = local[..dims - 1].iter().map(|r| r.end - r.start).product();
    let mut out = Vec::with_capacity(rows as usize * run);
    let mut index: Vec<u64> = local[..dims - 1].iter().map(|r| r.start).collect();
    for _ in 0..rows {
        let offset: u64 =
            index.iter().zip(&strides).map(|(i, s)| i * s).sum::<u64>() + local[dims - 1].start;
        let at = offset as usize * element;
        out.extend_from_slice(&decoded[at..at + run]);
        // Advance the odometer over the outer dimensions.
        for d in (0..dims - 1).rev() {
            index[d] += 1;
            if index[d] < local[d].end {
                break;
            }
            index[d] = local[d].start;
        }
    }
    out
}

/// The Arrow type a Zarr data type is read as.
fn arrow_type(array: &ZarrArray) -> Option<DataType> {
    let t = array.data_type();
    Some(if t.is::<Float32DataType>() {
        DataType::Float32
    } else if t.is::<Float64DataType>() {
        DataType::Float64
    } else if t.is::<Int8DataType>() {
        DataType::Int8
    } else if t.is::<Int16DataType>() {
        DataType::Int16
    } else if t.is::<Int32DataType>() {
        DataType::Int32
    } else if t.is::<Int64DataType>() || t.is::<NumpyDateTime64DataType>() {
        DataType::Int64
    } else if t.is::<UInt8DataType>() {
        DataType::UInt8
    } else if t.is::<UInt16DataType>() {
        DataType::UInt16
    } else if t.is::<UInt32DataType>() {
        DataType::UInt32
    } else if t.is::<UInt64DataType>() {
        DataType::UInt64
    } else if t.is::<BoolDataType>() {
        DataType::Boolean
    } else {
        return None;
    })
}

fn element_size(array: &ZarrArray) -> Result<usize> {
    match arrow_type(array) {
        Some(DataType::Boolean) => Ok(1),
        Some(t) => Ok(t.primitive_width().expect("numeric")),
        None => Err(DataFusionError::Plan(format!(
            "Zarr arrays of type {} cannot be read as a column; numbers, booleans and \
             timestamps can",
            array.data_type()
        ))),
    }
}

/// Decoded chunk bytes (native endian) as a column, CF-decoded.
fn to_column(variable: &StoredArray, bytes: ArrayBytes<'static>) -> Result<ArrayRef> {
    let array = &variable.array;
    let raw = bytes.into_fixed().map_err(zarr_error)?.into_owned();
    element_size(array)?;
    let values: ArrayRef = match arrow_type(array).expect("checked") {
        DataType::Boolean => Arc::new(raw.iter().map(|b| Some(*b != 0)).collect::<BooleanArray>()),
        t => {
            let len = raw.len() / t.primitive_width().expect("numeric");
            make_array(
                ArrayDataBuilder::new(t)
                    .len(len)
                    .add_buffer(Buffer::from_vec(raw))
                    .align_buffers(true)
                    .build()?,
            )
        }
    };
    // numpy.datetime64 arrays carry their unit in the type, not in CF
    // attributes.
    if let Some(datetime) = array.data_type().downcast_ref::<NumpyDateTime64DataType>() {
        let unit_nanos = datetime_unit_nanos(datetime)?;
        let decoding = Decoding::Time {
            unit_nanos,
            reference: 0,
            sentinel: None,
        };
        return cf::decode(values, &decoding);
    }
    cf::decode(values, &variable.decoding)
}

fn datetime_unit_nanos(datetime: &NumpyDateTime64DataType) -> Result<i64> {
    use zarrs::array::data_type::NumpyTimeUnit as U;
    let unit = match datetime.unit {
        U::Day => 86_400_000_000_000,
        U::Hour => 3_600_000_000_000,
        U::Minute => 60_000_000_000,
        U::Second => 1_000_000_000,
        U::Millisecond => 1_000_000,
        U::Microsecond => 1_000,
        U::Nanosecond => 1,
        other => {
            return Err(DataFusionError::Plan(format!(
                "numpy.datetime64 arrays in {other:?} units cannot be read as timestamps"
            )))
        }
    };
    Ok(unit * i64::from(datetime.scale_factor.get()))
}

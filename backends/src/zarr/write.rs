//! Writing a result as a Zarr v3 store xarray reads: each value column an
//! array over the declared dimensions, each dimension a 1-D coordinate
//! array, all listed in the root `zarr.json`'s consolidated metadata.
//!
//! The result arrives sorted by the dimensions (the caller sorts in the
//! plan, where sorting can spill), so it can be written a **slab** at a
//! time: the rows of the next `chunk[0]` values of the first dimension fill
//! a dense buffer per variable, which is cut into chunks and uploaded before
//! the next slab is read. Memory holds about one slab whatever the result's
//! size. The other dimensions' coordinates are those of the first slab; a
//! later row at a coordinate the first slab did not have cannot be placed
//! in the grid and fails the write with the fix. A grid cell no row fills
//! holds the fill value (NaN for floats); two rows for one cell fail the
//! write. The first dimension's length is known at the end, when the
//! arrays' metadata is written, and the root `zarr.json` goes last.

use std::sync::Arc;

use arrow::array::{Array as _, ArrayRef, AsArray, RecordBatch};
use arrow::compute::kernels::cast::cast;
use arrow::compute::{concat, concat_batches, take};
use arrow::datatypes::{DataType, Int64Type, SchemaRef, TimeUnit};
use arrow::util::display::array_value_to_string;
use datafusion::common::{plan_err, DataFusionError, Result};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde_json::{json, Map, Value};
use zarrs::array::builder::ArrayBuilderFillValue;
use zarrs::array::codec::ZstdCodec;
use zarrs::array::{data_type, ArrayBuilder, ArrayBytes, ArrayMetadataOptions};
use zarrs::storage::AsyncReadableWritableListableStorageTraits;

use super::cf;
use super::columns::{keys, stored, Stored};
use super::layout::{chunk_indices, gather, scatter};
use super::store::ZarrArray;
use crate::WriteOptions;

/// Grid cells per chunk when the function sets no chunking: 256 KiB of
/// float32, so that a month of a two-year six-hourly grid is a few percent
/// of its chunks while a full read stays a few dozen requests.
pub const DEFAULT_CHUNK_CELLS: u64 = 1 << 16;

/// zstd level of the chunks, the library's default (what xarray's "level
/// 0" means too).
const ZSTD_LEVEL: i32 = 3;

/// Uploads in flight at once.
const UPLOADS: usize = 8;

type Storage = Arc<dyn AsyncReadableWritableListableStorageTraits>;

/// What a stored grid holds, for a writer that grows it.
pub struct Existing {
    /// Each dimension's coordinates, outermost first.
    pub coordinates: Vec<ArrayRef>,
    pub chunk_shape: Vec<u64>,
    /// How many values of the first dimension stay as they are stored.
    pub kept: u64,
}

/// The other dimensions' coordinates, fixed by the first slab.
struct Inner {
    keys: Vec<Vec<i64>>,
    values: Vec<ArrayRef>,
}

/// Streams sorted rows into a grid.
pub struct GridWriter {
    storage: Storage,
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    schema: SchemaRef,
    dimensions: Vec<usize>,
    names: Vec<String>,
    stored: Vec<Arc<Stored>>,
    chunking: Vec<Option<u64>>,
    /// `chunk[0]`: first-dimension values per slab, once known.
    slab: Option<u64>,
    pending: Vec<RecordBatch>,
    pending_keys: Vec<i64>,
    first_values: Vec<ArrayRef>,
    first_keys: Vec<i64>,
    inner: Option<Inner>,
    arrays: Vec<Arc<ZarrArray>>,
    chunk_shape: Vec<u64>,
    slabs: u64,
    rows: u64,
    chunks: u64,
}

impl GridWriter {
    pub fn new(
        storage: Storage,
        store: Arc<dyn ObjectStore>,
        prefix: Path,
        schema: SchemaRef,
        options: &WriteOptions,
    ) -> Result<GridWriter> {
        let names = options.dimensions.clone();
        if names.is_empty() {
            return plan_err!(
                "a Zarr entry needs the result's grid dimensions: declare them with \
                 WITH (backend = 'zarr', dimensions = (time, lat, lon)), or .dimensions([...]) \
                 in Rust"
            );
        }
        let mut dimensions = Vec::new();
        for name in &names {
            match schema.index_of(name) {
                Ok(i) => dimensions.push(i),
                Err(_) => {
                    let columns: Vec<&str> =
                        schema.fields().iter().map(|f| f.name().as_str()).collect();
                    return plan_err!(
                        "dimension '{name}' is not a column of the result (its columns are {})",
                        columns.join(", ")
                    );
                }
            }
        }
        let mut stored_columns = Vec::new();
        for (i, field) in schema.fields().iter().enumerate() {
            if dimensions.contains(&i) {
                continue;
            }
            if !valid_array_name(field.name()) {
                return plan_err!(
                    "column '{}' cannot name a Zarr array: use letters, digits, '_', '-' and '.', \
                     not starting with '__' or '.'",
                    field.name()
                );
            }
            stored_columns.push(Arc::new(stored(i, field.name(), field.data_type())?));
        }
        let chunking = names
            .iter()
            .map(|n| options.chunking.get(n).copied().filter(|c| *c > 0))
            .collect();
        Ok(GridWriter {
            storage,
            store,
            prefix,
            schema,
            dimensions,
            names,
            stored: stored_columns,
            chunking,
            slab: None,
            pending: Vec::new(),
            pending_keys: Vec::new(),
            first_values: Vec::new(),
            first_keys: Vec::new(),
            inner: None,
            arrays: Vec::new(),
            chunk_shape: Vec::new(),
            slabs: 0,
            rows: 0,
            chunks: 0,
        })
    }

    /// A writer that grows the grid stored under `prefix` along its first
    /// dimension: `existing` says what the store holds (its first `kept`
    /// values of the first dimension stay as they are; the rows of the
    /// rest, if any, arrive again with the new ones).
    pub fn appending(
        storage: Storage,
        store: Arc<dyn ObjectStore>,
        prefix: Path,
        schema: SchemaRef,
        options: &WriteOptions,
        existing: Existing,
    ) -> Result<GridWriter> {
        let mut writer = GridWriter::new(storage, store, prefix, schema, options)?;
        let slab = existing.chunk_shape[0];
        if !existing.kept.is_multiple_of(slab) {
            return plan_err!("a Zarr grid grows only from a whole slab of its first dimension");
        }
        let mut inner = Inner {
            keys: Vec::new(),
            values: Vec::new(),
        };
        for (name, values) in writer.names[1..].iter().zip(&existing.coordinates[1..]) {
            inner.keys.push(keys(name, values)?);
            inner.values.push(Arc::clone(values));
        }
        let first = existing.coordinates[0].slice(0, existing.kept as usize);
        writer.first_keys = keys(&writer.names[0], &first)?;
        writer.first_values = vec![first];
        writer.slab = Some(slab);
        writer.chunk_shape = existing.chunk_shape;
        writer.slabs = existing.kept / slab;
        let mut shape = vec![slab];
        shape.extend(inner.keys.iter().map(|k| k.len() as u64));
        writer.arrays = writer
            .stored
            .iter()
            .map(|stored| writer.data_array(stored, shape.clone()).map(Arc::new))
            .collect::<Result<_>>()?;
        writer.inner = Some(inner);
        Ok(writer)
    }

    /// Takes the next batch of the sorted result.
    pub async fn push(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows() as u64;
        let first = batch.column(self.dimensions[0]);
        self.pending_keys.extend(keys(&self.names[0], first)?);
        self.pending.push(batch);
        if self.slab.is_none() {
            // The rows of the first value tell the size of the rest of the
            // grid, which sets the default slab.
            let first_rows = self
                .pending_keys
                .iter()
                .take_while(|k| **k == self.pending_keys[0])
                .count();
            if first_rows == self.pending_keys.len() {
                return Ok(());
            }
            self.slab = Some(self.slab_length(first_rows as u64));
        }
        self.write_full_slabs(false).await
    }

    fn slab_length(&self, first_rows: u64) -> u64 {
        if let Some(chunk) = self.chunking[0] {
            return chunk;
        }
        let inner: Option<u64> = self.chunking[1..].iter().copied().product();
        let cells = inner.unwrap_or(first_rows).max(1);
        (DEFAULT_CHUNK_CELLS / cells).max(1)
    }

    /// Writes every complete slab pending; at the end, the rest too.
    async fn write_full_slabs(&mut self, end: bool) -> Result<()> {
        let slab = self.slab.expect("slab length known");
        loop {
            // Where the (slab + 1)-th distinct first-dimension value starts.
            let mut distinct = 0u64;
            let mut split = None;
            for (i, key) in self.pending_keys.iter().enumerate() {
                if i == 0 || *key != self.pending_keys[i - 1] {
                    distinct += 1;
                    if distinct == slab + 1 {
                        split = Some(i);
                        break;
                    }
                }
            }
            let split = match split {
                Some(split) => split,
                None if end && !self.pending_keys.is_empty() => self.pending_keys.len(),
                None => return Ok(()),
            };
            let all = concat_batches(&self.schema, &self.pending)?;
            let rows = all.slice(0, split);
            let rest = all.slice(split, all.num_rows() - split);
            let keys: Vec<i64> = self.pending_keys.drain(..split).collect();
            self.pending = if rest.num_rows() > 0 {
                vec![rest]
            } else {
                vec![]
            };
            self.write_slab(rows, &keys).await?;
        }
    }

    async fn write_slab(&mut self, rows: RecordBatch, first_keys: &[i64]) -> Result<()> {
        let slab = self.slab.expect("slab length known");
        if self.inner.is_none() {
            self.start(&rows, slab)?;
        }
        let inner = self.inner.as_ref().expect("started");
        // The first dimension's values in this slab.
        let mut starts = Vec::new();
        for (i, key) in first_keys.iter().enumerate() {
            if i == 0 || *key != first_keys[i - 1] {
                starts.push(i);
            }
        }
        let length = starts.len();
        self.first_keys
            .extend(starts.iter().map(|i| first_keys[*i]));
        let indices = arrow::array::UInt64Array::from_iter_values(starts.iter().map(|i| *i as u64));
        self.first_values
            .push(take(rows.column(self.dimensions[0]), &indices, None)?);

        // Each row's cell in the slab.
        let inner_lengths: Vec<usize> = inner.keys.iter().map(Vec::len).collect();
        let inner_cells: usize = inner_lengths.iter().product();
        let mut cells = Vec::with_capacity(rows.num_rows());
        let mut filled = vec![false; length * inner_cells];
        let inner_keys: Vec<Vec<i64>> = self.dimensions[1..]
            .iter()
            .zip(&self.names[1..])
            .map(|(i, name)| keys(name, rows.column(*i)))
            .collect::<Result<_>>()?;
        let mut slab_index = 0usize;
        for row in 0..rows.num_rows() {
            if row > 0 && first_keys[row] != first_keys[row - 1] {
                slab_index += 1;
            }
            let mut cell = slab_index;
            for (d, keys) in inner_keys.iter().enumerate() {
                let Ok(at) = inner.keys[d].binary_search(&keys[row]) else {
                    return Err(self.off_grid(&rows, row, d + 1));
                };
                cell = cell * inner_lengths[d] + at;
            }
            if std::mem::replace(&mut filled[cell], true) {
                return Err(self.duplicate(&rows, row));
            }
            cells.push(cell);
        }

        // Dense slabs, cut into chunks and uploaded.
        let mut shape = vec![length as u64];
        shape.extend(inner_lengths.iter().map(|n| *n as u64));
        let mut uploads = Vec::new();
        for (stored, array) in self.stored.iter().zip(&self.arrays) {
            let column = cast(rows.column(stored.column), &stored.as_type)?;
            let dense = Arc::new(scatter(
                &column,
                &cells,
                length * inner_cells,
                stored.element,
                &stored.fill,
            ));
            for chunk in chunk_indices(&shape, &self.chunk_shape, self.slabs) {
                uploads.push((
                    Arc::clone(stored),
                    Arc::clone(array),
                    Arc::clone(&dense),
                    chunk,
                ));
            }
        }
        // Uploads run as tasks of their own, a few at a time.
        let shape = Arc::new(shape);
        let mut running = tokio::task::JoinSet::new();
        let mut stored_chunks = 0u64;
        for (stored, array, dense, chunk) in uploads {
            if running.len() >= UPLOADS {
                join_one(&mut running).await?;
            }
            let (shape, chunk_shape) = (Arc::clone(&shape), self.chunk_shape.clone());
            running.spawn(async move {
                let bytes = gather(
                    &dense,
                    &shape,
                    &chunk_shape,
                    &chunk,
                    stored.element,
                    &stored.fill,
                );
                array
                    .async_store_chunk(&chunk, ArrayBytes::new_flen(bytes))
                    .await
                    .map_err(|e| {
                        DataFusionError::Execution(format!(
                            "writing Zarr chunk {chunk:?} of '{}': {e}",
                            stored.name
                        ))
                    })
            });
            stored_chunks += 1;
        }
        while !running.is_empty() {
            join_one(&mut running).await?;
        }
        self.chunks += stored_chunks;
        self.slabs += 1;
        tracing::debug!(
            slab = self.slabs,
            cells = rows.num_rows(),
            "wrote a Zarr slab"
        );
        Ok(())
    }

    /// Fixes the inner coordinates and creates the arrays.
    fn start(&mut self, rows: &RecordBatch, slab: u64) -> Result<()> {
        let mut inner = Inner {
            keys: Vec::new(),
            values: Vec::new(),
        };
        for (i, name) in self.dimensions[1..].iter().zip(&self.names[1..]) {
            let column = rows.column(*i);
            let keys = keys(name, column)?;
            let mut order: Vec<usize> = (0..keys.len()).collect();
            order.sort_by_key(|r| keys[*r]);
            order.dedup_by_key(|r| keys[*r]);
            let indices =
                arrow::array::UInt64Array::from_iter_values(order.iter().map(|r| *r as u64));
            inner.values.push(take(column, &indices, None)?);
            inner.keys.push(order.iter().map(|r| keys[*r]).collect());
        }
        let mut chunk_shape = vec![slab];
        for (d, keys) in inner.keys.iter().enumerate() {
            let length = keys.len().max(1) as u64;
            chunk_shape.push(self.chunking[d + 1].unwrap_or(length).min(length).max(1));
        }
        let mut shape = vec![slab];
        shape.extend(inner.keys.iter().map(|k| k.len() as u64));
        self.chunk_shape = chunk_shape;
        self.arrays = self
            .stored
            .iter()
            .map(|stored| self.data_array(stored, shape.clone()).map(Arc::new))
            .collect::<Result<_>>()?;
        self.inner = Some(inner);
        Ok(())
    }

    /// A value column's array, `shape` long.
    fn data_array(&self, stored: &Stored, shape: Vec<u64>) -> Result<ZarrArray> {
        build_array(
            &self.storage,
            &stored.name,
            shape,
            self.chunk_shape.clone(),
            stored.zarr_type.clone(),
            (stored.builder_fill)(),
            &self.names,
            stored.attributes.clone(),
        )
    }

    fn describe_row(&self, rows: &RecordBatch, row: usize) -> String {
        self.dimensions
            .iter()
            .zip(&self.names)
            .map(|(i, name)| {
                let value = array_value_to_string(rows.column(*i), row).unwrap_or_default();
                format!("{name} = {value}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn duplicate(&self, rows: &RecordBatch, row: usize) -> DataFusionError {
        DataFusionError::Plan(format!(
            "the result is not a grid over ({}): two rows have {}. Aggregate them, or add \
             the column that tells them apart to the dimensions",
            self.names.join(", "),
            self.describe_row(rows, row)
        ))
    }

    fn off_grid(&self, rows: &RecordBatch, row: usize, d: usize) -> DataFusionError {
        DataFusionError::Plan(format!(
            "the result is not a grid over ({}): the row at {} has a '{}' the first {} \
             '{}' values do not have, and a Zarr entry's other dimensions are fixed by its \
             first chunk. Give every '{}' value the same '{}' coordinates",
            self.names.join(", "),
            self.describe_row(rows, row),
            self.names[d],
            self.slab.unwrap_or(1),
            self.names[0],
            self.names[0],
            self.names[d]
        ))
    }

    /// Writes what is pending, the coordinates, every array's final
    /// metadata, and last the root `zarr.json`.
    /// Returns the rows taken and the chunks written.
    pub async fn finish(mut self) -> Result<(u64, u64)> {
        if self.slab.is_none() {
            let first_rows = self
                .pending_keys
                .iter()
                .take_while(|k| Some(*k) == self.pending_keys.first())
                .count();
            self.slab = Some(self.slab_length(first_rows as u64));
        }
        self.write_full_slabs(true).await?;
        let slab = self.slab.expect("known");
        if self.inner.is_none() {
            // No rows: an empty grid.
            let empty = RecordBatch::new_empty(Arc::clone(&self.schema));
            self.start(&empty, slab)?;
        }
        let inner = self.inner.take().expect("started");
        let mut shape = vec![self.first_keys.len() as u64];
        shape.extend(inner.keys.iter().map(|k| k.len() as u64));
        let options = ArrayMetadataOptions::default().with_include_zarrs_metadata(false);
        let mut consolidated = serde_json::Map::new();
        for stored in &self.stored {
            // The first dimension's length is known now.
            let mut array = self.data_array(stored, shape.clone())?;
            array.set_metadata_options(options);
            array.async_store_metadata().await.map_err(write_error)?;
            consolidated.insert(
                stored.name.clone(),
                serde_json::to_value(array.metadata_opt(&options)).map_err(write_error)?,
            );
        }
        let first = if self.first_values.is_empty() {
            RecordBatch::new_empty(Arc::clone(&self.schema))
                .column(self.dimensions[0])
                .clone()
        } else {
            let parts: Vec<&dyn arrow::array::Array> =
                self.first_values.iter().map(|a| a.as_ref()).collect();
            concat(&parts)?
        };
        let coordinates = std::iter::once(first).chain(inner.values);
        for (name, values) in self.names.iter().zip(coordinates) {
            let mut array = coordinate_array(&self.storage, name, &values).await?;
            array.set_metadata_options(options);
            array.async_store_metadata().await.map_err(write_error)?;
            consolidated.insert(
                name.clone(),
                serde_json::to_value(array.metadata_opt(&options)).map_err(write_error)?,
            );
        }
        let root = json!({
            "attributes": {},
            "zarr_format": 3,
            "consolidated_metadata": {
                "kind": "inline",
                "must_understand": false,
                "metadata": Value::Object(consolidated),
            },
            "node_type": "group",
        });
        let text = serde_json::to_vec_pretty(&root).map_err(write_error)?;
        self.store
            .put(
                &self.prefix.clone().join("zarr.json"),
                PutPayload::from(text),
            )
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok((self.rows, self.chunks))
    }
}

fn write_error(e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Execution(format!("writing the Zarr entry: {e}"))
}

/// zarrs' node-name rules, narrowed to names that need no escaping in an
/// object store key (so the key is the one zarr-python would use).
fn valid_array_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with("__")
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

#[allow(clippy::too_many_arguments)]
fn build_array(
    storage: &Storage,
    name: &str,
    shape: Vec<u64>,
    chunk_shape: Vec<u64>,
    zarr_type: zarrs::array::DataType,
    fill: ArrayBuilderFillValue,
    dimensions: &[String],
    attributes: Map<String, Value>,
) -> Result<ZarrArray> {
    let chunk_shape: Vec<u64> = chunk_shape.into_iter().map(|c| c.max(1)).collect();
    ArrayBuilder::new(shape, chunk_shape, zarr_type, fill)
        .bytes_to_bytes_codecs(vec![Arc::new(ZstdCodec::new(ZSTD_LEVEL, false))])
        .dimension_names(Some(dimensions.iter().map(String::as_str)))
        .attributes(attributes)
        .build(Arc::clone(storage), &format!("/{name}"))
        .map_err(write_error)
}

/// A dimension's coordinates as a 1-D array, written whole: time as xarray
/// encodes it (integers in the coarsest unit since the first value).
async fn coordinate_array(storage: &Storage, name: &str, values: &ArrayRef) -> Result<ZarrArray> {
    let length = values.len() as u64;
    let chunk = length.clamp(1, 1 << 20);
    let dims = [name.to_string()];
    let (bytes, element, fill, array) = match values.data_type() {
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let as_type = if values.data_type() == &DataType::Float32 {
                DataType::Float32
            } else {
                DataType::Float64
            };
            let stored = stored(0, name, &as_type)?;
            let column = cast(values, &as_type)?;
            let bytes = column.to_data().buffers()[0].as_slice()
                [column.offset() * stored.element..][..values.len() * stored.element]
                .to_vec();
            let array = build_array(
                storage,
                name,
                vec![length],
                vec![chunk],
                stored.zarr_type,
                (stored.builder_fill)(),
                &dims,
                stored.attributes,
            )?;
            (bytes, stored.element, stored.fill, array)
        }
        other => {
            let mut attributes = Map::new();
            let integers = if matches!(
                other,
                DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
            ) {
                let nanos = cast(values, &DataType::Timestamp(TimeUnit::Nanosecond, None))?;
                let nanos = cast(&nanos, &DataType::Int64)?;
                let (units, encoded) = cf::encode_time(nanos.as_primitive::<Int64Type>().values());
                attributes.insert("units".into(), json!(units));
                attributes.insert("calendar".into(), json!("proleptic_gregorian"));
                encoded
            } else {
                let column = cast(values, &DataType::Int64)?;
                column.as_primitive::<Int64Type>().values().to_vec()
            };
            let bytes: Vec<u8> = integers.iter().flat_map(|v| v.to_ne_bytes()).collect();
            let array = build_array(
                storage,
                name,
                vec![length],
                vec![chunk],
                data_type::int64(),
                ArrayBuilderFillValue::from(0i64),
                &dims,
                attributes,
            )?;
            (bytes, 8, 0i64.to_ne_bytes().to_vec(), array)
        }
    };
    for (c, piece) in bytes.chunks(chunk as usize * element).enumerate() {
        let mut piece = piece.to_vec();
        while piece.len() < chunk as usize * element {
            piece.extend_from_slice(&fill);
        }
        array
            .async_store_chunk(&[c as u64], ArrayBytes::new_flen(piece))
            .await
            .map_err(write_error)?;
    }
    Ok(array)
}

/// Removes everything under `prefix` (an old store: stale chunks of a
/// larger grid must not survive a rewrite).
pub async fn clear(store: &Arc<dyn ObjectStore>, prefix: &Path) -> Result<()> {
    let listed = objects_under(store, prefix).await?;
    each_object(listed, |path| {
        let store = Arc::clone(store);
        async move {
            match store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(DataFusionError::External(Box::new(e))),
            }
        }
    })
    .await
}

/// Copies the store at `from` to `to`, object by object (hard links on a
/// local folder, server-side copies on S3), the root `zarr.json` last.
pub async fn copy_store(store: &Arc<dyn ObjectStore>, from: &Path, to: &Path) -> Result<()> {
    let listed = objects_under(store, from).await?;
    let root = from.clone().join("zarr.json");
    let copy = |path: Path| {
        let relative = path.prefix_match(from).into_iter().flatten();
        let target = relative.fold(to.clone(), |at, part| at.join(part.as_ref()));
        let store = Arc::clone(store);
        async move {
            (store.copy(&path, &target).await).map_err(|e| DataFusionError::External(Box::new(e)))
        }
    };
    let (roots, chunks): (Vec<Path>, Vec<Path>) = listed.into_iter().partition(|p| *p == root);
    each_object(chunks, copy).await?;
    each_object(roots, copy).await
}

/// Every object under `prefix`.
async fn objects_under(store: &Arc<dyn ObjectStore>, prefix: &Path) -> Result<Vec<Path>> {
    store
        .list(Some(prefix))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))
}

/// Runs `each` on every path, [`UPLOADS`] at a time, stopping at the
/// first error.
async fn each_object<F, Fut>(paths: Vec<Path>, each: F) -> Result<()>
where
    F: Fn(Path) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let mut running = tokio::task::JoinSet::new();
    for path in paths {
        if running.len() >= UPLOADS {
            join_one(&mut running).await?;
        }
        running.spawn(each(path));
    }
    while !running.is_empty() {
        join_one(&mut running).await?;
    }
    Ok(())
}

/// Waits for one of `running` and passes on its error (a panic included).
async fn join_one(running: &mut tokio::task::JoinSet<Result<()>>) -> Result<()> {
    match running.join_next().await {
        Some(Ok(done)) => done,
        Some(Err(e)) => Err(DataFusionError::External(Box::new(e))),
        None => Ok(()),
    }
}

//! The Parquet backend: `<key>.parquet`, one file (what we and pandas write)
//! or a directory of part files (what dask writes).
//!
//! Writing streams: batches are cut into row groups of [`ROW_GROUP_ROWS`]
//! as they arrive (the caller sorts upstream, in the plan, where sorting
//! can spill), and row groups are encoded side by side on threads kept for
//! encoding, two per core in flight, then appended to the file in order and
//! uploaded. Two per core, not one: with one, a core sat idle each time a
//! row group finished, until the writer had appended it and handed out the
//! next (the peers bench's writes-only run took 0.93 of the time over six
//! runs in turn; docs/benchmarks.md). So the compute that feeds the write
//! and the encoding share the cores, and memory holds a few row groups
//! whatever the result's size. How a row group's columns are encoded, on
//! which threads, and which columns go around arrow-rs' Arrow writer, is in
//! [`encode`]; the statistics computed here, in [`extremes`]. Row groups
//! carry page statistics and are Snappy-compressed, as pandas writes them:
//! on the README's entries Snappy decodes about a third faster than zstd
//! for a quarter more bytes, and entries are read far more often than
//! written.
//!
//! Reading: [`files::FileEntry`] scans the files with the time window and
//! `WHERE` filters as a pruning predicate over row-group and page
//! statistics.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayData, ArrayRef, RecordBatch};
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use bytes::Bytes;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::datasource::physical_plan::parquet::{
    CachedParquetFileReaderFactory, ParquetAccessPlan, RowGroupAccess,
};
use datafusion::datasource::physical_plan::{FileGroup, FileSource, ParquetSource};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::PhysicalExpr;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectMeta, ObjectStore};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding};
use parquet::file::metadata::{ParquetMetaData, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesBuilder};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;

use crate::bounds::Bounds;
use crate::files::{self, FileFormatSource, Groups, Upload, UPLOAD_CHUNK};
use crate::{Backend, Location, WriteOptions, Written};

/// Rows per row group. Small enough that a one-month window over two years of
/// six-hourly grids touches a few percent of the groups, large enough that
/// per-group overhead stays negligible.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;

/// Rows per data page; the page index lets a scan skip pages inside a group.
const PAGE_ROWS: usize = 8 * 1024;

mod delta_pages;
mod encode;
mod extremes;
mod rows;

use encode::{encode_row_group, Columns, EncodedRowGroup};

#[derive(Debug, Clone, Copy, Default)]
pub struct ParquetBackend;

#[derive(Debug, Clone, Copy)]
struct ParquetFormat;

/// `files`, Parquet files of the entry at `at` (in the order and with the
/// times of `at.parts`), read as one table of `schema`: how formats built
/// of Parquet files (Delta) read through this one's scan. Each file's rows
/// ascend by `ascending`, when given.
#[cfg(feature = "delta")]
pub(crate) fn read_files(
    at: &Location,
    files: Vec<ObjectMeta>,
    schema: SchemaRef,
    ascending: Option<String>,
) -> Arc<dyn TableProvider> {
    let entry = files::FileEntry::new(ParquetFormat, at, files, schema);
    Arc::new(entry.ascending_within_files(ascending))
}

#[async_trait]
impl FileFormatSource for ParquetFormat {
    /// Footers and page indexes come from the runtime's metadata cache,
    /// which checks each file's size and modification time, so a hit reads
    /// only the pages it needs after the first and a rewritten entry is
    /// never served stale metadata.
    fn source(
        &self,
        session: &dyn Session,
        store: Arc<dyn ObjectStore>,
        schema: SchemaRef,
        predicate: Option<Arc<dyn PhysicalExpr>>,
    ) -> Arc<dyn FileSource> {
        let metadata = session
            .runtime_env()
            .cache_manager
            .get_file_metadata_cache();
        let mut source = ParquetSource::new(schema)
            .with_table_parquet_options(session.table_options().parquet.clone())
            .with_parquet_file_reader_factory(Arc::new(CachedParquetFileReaderFactory::new(
                store, metadata,
            )));
        if let Some(predicate) = predicate {
            source = source.with_predicate(predicate);
        }
        Arc::new(source)
    }

    fn prunes(&self) -> bool {
        true
    }

    fn reads_within_bounds(&self) -> bool {
        true
    }

    /// One file's row groups dealt out to the partitions in turn, instead
    /// of byte ranges: a time window selects neighbouring row groups of a
    /// sorted file, which byte ranges would all give to one partition while
    /// the other cores idle. Each partition still reads its row groups in
    /// file order, so it keeps the file's sort order. With `bounds`, each
    /// row group reads only its rows within them ([`rows::within`]). The
    /// footer read here goes into the metadata cache the scan reads from.
    async fn groups(
        &self,
        session: &dyn Session,
        store: &Arc<dyn ObjectStore>,
        files: &[ObjectMeta],
        partitions: usize,
        bounds: Option<&Bounds>,
    ) -> Result<Option<Groups>> {
        if files::PortableScans::wanted(session) {
            return Ok(None);
        }
        let [file] = files else {
            return match bounds {
                Some(bounds) => Ok(Some(
                    within_files(session, store, files, partitions, bounds).await?,
                )),
                None => Ok(None),
            };
        };
        if partitions < 2 && bounds.is_none() {
            return Ok(None);
        }
        let cache = session
            .runtime_env()
            .cache_manager
            .get_file_metadata_cache();
        let metadata = DFParquetMetadata::new(store.as_ref(), file)
            .with_file_metadata_cache(Some(cache))
            .fetch_metadata()
            .await?;
        let row_groups = metadata.num_row_groups();
        let (accesses, within_bounds) = match bounds {
            Some(bounds) => accesses_within(store, file, &metadata, bounds).await?,
            None if row_groups < 2 => return Ok(None),
            None => (vec![RowGroupAccess::Scan; row_groups], false),
        };
        let groups = (0..partitions.min(row_groups).max(1))
            .map(|partition| {
                let mut plan = ParquetAccessPlan::new_none(row_groups);
                for row_group in (partition..row_groups).step_by(partitions) {
                    plan.set(row_group, accesses[row_group].clone());
                }
                let part = PartitionedFile::new_from_meta(file.clone()).with_extension(plan);
                FileGroup::new(vec![part])
            })
            .collect();
        Ok(Some(Groups {
            groups,
            within_bounds,
        }))
    }
}

/// Files whose rows [`within_files`] searches for at once.
const SEARCHES_AT_ONCE: usize = 16;

/// Several files read within `bounds`: each file's row groups that meet
/// them, with only their rows within them where the file says its rows
/// ascend ([`accesses_within`]), dealt out to the partitions in turn
/// across the files.
async fn within_files(
    session: &dyn Session,
    store: &Arc<dyn ObjectStore>,
    files: &[ObjectMeta],
    partitions: usize,
    bounds: &Bounds,
) -> Result<Groups> {
    let cache = session
        .runtime_env()
        .cache_manager
        .get_file_metadata_cache();
    // Each file's search for the bounds reads a page or two of it: the
    // files' searches wait on the store side by side.
    let searched: Vec<_> = futures::stream::iter(files.iter().cloned())
        .map(|file| {
            let cache = Arc::clone(&cache);
            async move {
                let metadata = DFParquetMetadata::new(store.as_ref(), &file)
                    .with_file_metadata_cache(Some(cache))
                    .fetch_metadata()
                    .await?;
                let row_groups = metadata.num_row_groups();
                let (accesses, within) = accesses_within(store, &file, &metadata, bounds).await?;
                Ok::<_, DataFusionError>((file, row_groups, accesses, within))
            }
        })
        .buffered(SEARCHES_AT_ONCE)
        .try_collect()
        .await?;
    let partitions = partitions.max(1);
    let mut plans: Vec<Vec<PartitionedFile>> = vec![Vec::new(); partitions];
    let mut next = 0;
    let mut all_within = true;
    for (file, row_groups, accesses, within) in searched {
        all_within &= within;
        let mut per_partition = vec![ParquetAccessPlan::new_none(row_groups); partitions];
        let mut used = vec![false; partitions];
        for (row_group, access) in accesses.into_iter().enumerate() {
            if matches!(access, RowGroupAccess::Skip) {
                continue;
            }
            per_partition[next].set(row_group, access);
            used[next] = true;
            next = (next + 1) % partitions;
        }
        for (partition, plan) in per_partition.into_iter().enumerate() {
            if used[partition] {
                let part = PartitionedFile::new_from_meta(file.clone()).with_extension(plan);
                plans[partition].push(part);
            }
        }
    }
    let groups = (plans.into_iter())
        .filter(|files| !files.is_empty())
        .map(FileGroup::new)
        .collect();
    Ok(Groups {
        groups,
        within_bounds: all_within,
    })
}

/// How each row group of `file` is read within `bounds`, and whether only
/// the rows within them are: so where the file's rows are known to
/// ascend, whole otherwise.
async fn accesses_within(
    store: &Arc<dyn ObjectStore>,
    file: &ObjectMeta,
    metadata: &Arc<ParquetMetaData>,
    bounds: &Bounds,
) -> Result<(Vec<RowGroupAccess>, bool)> {
    if bounds.marked_files_only && !says_rows_ascend(metadata, &bounds.column) {
        return Ok((vec![RowGroupAccess::Scan; metadata.num_row_groups()], false));
    }
    Ok((rows::within(store, file, metadata, bounds).await?, true))
}

/// The key of a file's metadata naming the column its rows ascend by, in
/// files of several that a scan may read within a window's bounds (a Delta
/// version's, written in order). Files without it are read whole, the
/// window applied after.
pub const ROWS_ASCEND: &str = "nuthatch.rows_ascend";

/// Whether the file whose metadata is `metadata` says its rows ascend by
/// `column` ([`ROWS_ASCEND`]).
fn says_rows_ascend(metadata: &ParquetMetaData, column: &str) -> bool {
    let marks = metadata.file_metadata().key_value_metadata();
    (marks.into_iter().flatten())
        .any(|mark| mark.key == ROWS_ASCEND && mark.value.as_deref() == Some(column))
}

/// The writer settings: statistics per row group, per page for the sort
/// columns, and sorting columns so that windows prune, and encodings per
/// column chosen from `head`, the first batches, when there are any (see
/// [`encodings`]).
pub(crate) fn properties(
    schema: &SchemaRef,
    options: &WriteOptions,
    head: &[RecordBatch],
) -> Result<WriterProperties> {
    let sorting = options
        .order
        .iter()
        .map(|column| {
            Ok(SortingColumn {
                column_idx: schema.index_of(column)? as i32,
                descending: false,
                nulls_first: false,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let sorting = (!sorting.is_empty()).then_some(sorting);
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_sorting_columns(sorting);
    // Page statistics (the page index) only where values cluster: the
    // columns rows are sorted by. Elsewhere every page spans nearly the
    // whole range and prunes nothing, and computing them was a sixth of
    // the encoding time on the README grid.
    for column in options.order.iter().chain(&options.sorted_by) {
        builder = builder.set_column_statistics_enabled(
            ColumnPath::from(column.as_str()),
            EnabledStatistics::Page,
        );
    }
    Ok(encodings(builder, schema, options, head)?.build())
}

/// The properties to write `data` with, the encodings chosen from its
/// first rows, and `data` again from its start.
pub(crate) async fn sampled_properties(
    mut data: SendableRecordBatchStream,
    options: &WriteOptions,
) -> Result<(WriterProperties, SendableRecordBatchStream)> {
    let schema = data.schema();
    let mut head = Vec::new();
    while !sampled(&head) {
        match data.next().await.transpose()? {
            Some(batch) if batch.num_rows() == 0 => continue,
            Some(batch) => head.push(batch),
            None => break,
        }
    }
    let properties = properties(&schema, options, &head)?;
    let again = futures::stream::iter(head.into_iter().map(Ok)).chain(data);
    Ok((
        properties,
        Box::pin(RecordBatchStreamAdapter::new(schema, again)),
    ))
}

/// Non-null values per column that the encodings are chosen from.
const SAMPLE_VALUES: usize = 4096;

/// Whether `head` holds [`SAMPLE_VALUES`] non-null values of every column,
/// or a whole row group: results often start with nulls (a rolling mean is
/// null for its first steps, over every series), and a sample of nulls says
/// nothing about the values.
fn sampled(head: &[RecordBatch]) -> bool {
    let rows: usize = head.iter().map(RecordBatch::num_rows).sum();
    let Some(first) = head.first() else {
        return false;
    };
    rows >= ROW_GROUP_ROWS
        || (0..first.num_columns()).all(|i| {
            let values: usize = head
                .iter()
                .map(|batch| batch.column(i).len() - batch.column(i).null_count())
                .sum();
            values >= SAMPLE_VALUES
        })
}

/// The first [`SAMPLE_VALUES`] non-null values of column `name` in `head`.
fn sample(head: &[RecordBatch], name: &str) -> Result<Option<ArrayRef>> {
    let mut parts = Vec::new();
    let mut values = 0;
    for batch in head {
        let Some(column) = batch.column_by_name(name) else {
            return Ok(None);
        };
        let column = if column.null_count() > 0 {
            arrow::compute::filter(column, &arrow::compute::is_not_null(column)?)?
        } else {
            Arc::clone(column)
        };
        let take = column.len().min(SAMPLE_VALUES - values);
        parts.push(column.slice(0, take));
        values += take;
        if values == SAMPLE_VALUES {
            break;
        }
    }
    if values == 0 {
        return Ok(None);
    }
    let parts: Vec<&dyn Array> = parts.iter().map(|part| part.as_ref()).collect();
    Ok(Some(arrow::compute::concat(&parts)?))
}

/// Values of a sample above which a column counts as not repeating.
const DISTINCT_SHARE: f64 = 0.5;

/// Encodings per column, measured on the README grid (3.87M rows; see
/// docs/benchmarks.md): a dictionary pays for columns that repeat
/// (coordinates, labels) and costs for those that do not (measurements),
/// where the writer fills a dictionary page before giving up on it. Most
/// of our writes are such a measurement beside a few coordinates:
/// - the leading sort column, an integer or timestamp, is delta-encoded:
///   sorted values differ little, and no dictionary is kept; so is any
///   integer column whose first values ascend (ids, counters): on an
///   ascending id beside time, a tenth of the bytes of plain values and
///   a seventh less encoding time;
/// - a float or integer column whose sample is mostly distinct values gets
///   no dictionary; floats are split into byte streams, which compress far
///   better than whole values;
/// - a column that repeats keeps its plain values, without a dictionary,
///   when Snappy packs them into no more bytes than the dictionary's
///   bit-packed indices would take ([`plain_packs`]): coordinates of a grid
///   come in runs and cycles, which Snappy finds, and interning every value
///   into a dictionary cost half of all encoding on the README grid (133
///   against 71 ms); the file is a tenth larger and reads slightly faster.
///   Labels in no order keep their dictionary.
///
/// Without dictionary pages for the measurement the README's daily entry
/// encodes in about half the time, and the file is half the size.
fn encodings(
    mut builder: WriterPropertiesBuilder,
    schema: &SchemaRef,
    options: &WriteOptions,
    head: &[RecordBatch],
) -> Result<WriterPropertiesBuilder> {
    use arrow::datatypes::DataType::*;
    let sorted = options.order.first().or(options.sorted_by.as_ref());
    for field in schema.fields() {
        let path = ColumnPath::from(field.name().as_str());
        let integer = matches!(
            field.data_type(),
            Int32 | Int64 | UInt32 | UInt64 | Date32 | Date64 | Timestamp(..)
        );
        let float = matches!(field.data_type(), Float32 | Float64);
        if integer && sorted == Some(field.name()) {
            builder = builder
                .set_column_dictionary_enabled(path, false)
                .set_column_encoding(
                    ColumnPath::from(field.name().as_str()),
                    Encoding::DELTA_BINARY_PACKED,
                );
            continue;
        }
        if !(integer || float) {
            continue;
        }
        let Some(column) = sample(head, field.name())? else {
            continue;
        };
        if integer && ascends(&column) {
            // Counters and ids beside the time column: deltas are a few
            // bits each, where plain values cost eight bytes to compress.
            builder = builder
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_encoding(path, Encoding::DELTA_BINARY_PACKED);
            continue;
        }
        let distinct = distinct(&column);
        if distinct as f64 > DISTINCT_SHARE * column.len() as f64 {
            builder = builder.set_column_dictionary_enabled(path.clone(), false);
            if float {
                builder = builder.set_column_encoding(path, Encoding::BYTE_STREAM_SPLIT);
            }
        } else if plain_packs(&column, distinct) {
            builder = builder
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_encoding(path, Encoding::PLAIN);
        }
    }
    Ok(builder)
}

/// Whether the sampled values of an integer column ascend, and differ
/// somewhere (a constant column wants a dictionary).
fn ascends(sample: &ArrayRef) -> bool {
    let Ok(values) = arrow::compute::cast(sample, &arrow::datatypes::DataType::Int64) else {
        return false;
    };
    let values = values
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .expect("cast to Int64");
    let valid: Vec<i64> = values.iter().flatten().collect();
    valid.len() > 1 && valid.windows(2).all(|w| w[0] <= w[1]) && valid[0] < valid[valid.len() - 1]
}

/// The plain bytes of a sample of a fixed-width column (no nulls), and
/// the width of a value.
fn plain_bytes(data: &ArrayData) -> Option<(&[u8], usize)> {
    let width = data.data_type().primitive_width().filter(|w| *w <= 8)?;
    let start = data.offset() * width;
    let bytes = data
        .buffers()
        .first()?
        .as_slice()
        .get(start..start + data.len() * width)?;
    Some((bytes, width))
}

/// How many distinct values a sample of a fixed-width column holds (0 for
/// other types).
fn distinct(column: &ArrayRef) -> usize {
    let data = column.to_data();
    let Some((bytes, width)) = plain_bytes(&data) else {
        return 0;
    };
    let mut seen = std::collections::HashSet::new();
    for value in bytes.chunks_exact(width) {
        let mut bits = [0u8; 8];
        bits[..width].copy_from_slice(value);
        seen.insert(u64::from_le_bytes(bits));
    }
    seen.len()
}

/// Whether a sample's plain values, Snappy-compressed, take no more bytes
/// than indices into a dictionary of `distinct` values, bit-packed.
fn plain_packs(column: &ArrayRef, distinct: usize) -> bool {
    let data = column.to_data();
    let Some((bytes, _)) = plain_bytes(&data) else {
        return false;
    };
    let bits = usize::BITS - distinct.saturating_sub(1).leading_zeros();
    let indices = column.len() * bits.max(1) as usize / 8;
    snap::raw::Encoder::new()
        .compress_vec(bytes)
        .is_ok_and(|packed| packed.len() <= indices)
}

/// The file being assembled: encoded row groups are appended in order and
/// the bytes go up as they accumulate.
struct Assembly {
    file: SerializedFileWriter<Vec<u8>>,
    upload: Upload,
    row_groups: u64,
    encode_time: Duration,
}

impl Assembly {
    async fn append(&mut self, encoding: EncodedRowGroup) -> Result<()> {
        let (chunks, took) = encoding.await?;
        self.encode_time += took;
        let mut row_group = self.file.next_row_group()?;
        for chunk in chunks {
            chunk.append_to(&mut row_group)?;
        }
        row_group.close()?;
        self.row_groups += 1;
        self.file.flush()?;
        if self.file.inner().len() >= UPLOAD_CHUNK {
            let bytes = std::mem::take(self.file.inner_mut());
            self.upload.put(Bytes::from(bytes)).await?;
        }
        Ok(())
    }

    fn encoded(&self) -> u64 {
        self.upload.bytes() + self.file.inner().len() as u64
    }
}

/// Streams `data` into a new Parquet file at `at`; see the module docs.
async fn write_row_groups(
    at: &Location,
    data: SendableRecordBatchStream,
    options: &WriteOptions,
) -> Result<Written> {
    let schema = data.schema();
    let progress = options.progress.as_deref();
    let (properties, mut data) = sampled_properties(files::prefetch(data), options).await?;
    let (properties, extremes_here) = extremes::take_over(properties, &schema);
    let (file, factory) = ArrowWriter::try_new(Vec::new(), Arc::clone(&schema), Some(properties))?
        .into_serialized_writer()?;
    let columns = Arc::new(Columns::new(
        factory,
        Arc::clone(&schema),
        file.schema_descr(),
        Arc::clone(file.properties()),
        &extremes_here,
    ));
    let mut assembly = Assembly {
        file,
        upload: Upload::start(at, options).await?,
        row_groups: 0,
        encode_time: Duration::ZERO,
    };
    // Two per core: see the module docs.
    let in_flight = 2 * std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    let mut rows = 0u64;
    let encoded: Result<()> = async {
        let mut pending: VecDeque<EncodedRowGroup> = VecDeque::new();
        let (mut group, mut group_rows, mut index) = (Vec::new(), 0, 0);
        while let Some(batch) = data.next().await {
            let mut batch = batch?;
            rows += batch.num_rows() as u64;
            while batch.num_rows() > 0 {
                let take = (ROW_GROUP_ROWS - group_rows).min(batch.num_rows());
                group.push(batch.slice(0, take));
                batch = batch.slice(take, batch.num_rows() - take);
                group_rows += take;
                if group_rows == ROW_GROUP_ROWS {
                    let rows = std::mem::take(&mut group);
                    pending.push_back(encode_row_group(Arc::clone(&columns), index, rows));
                    (group_rows, index) = (0, index + 1);
                }
                while pending.len() >= in_flight {
                    let next = pending.pop_front().expect("a row group in flight");
                    assembly.append(next).await?;
                }
            }
            if let Some(progress) = progress {
                progress.bytes.store(assembly.encoded(), Ordering::Relaxed);
            }
        }
        if group_rows > 0 {
            pending.push_back(encode_row_group(Arc::clone(&columns), index, group));
        }
        while let Some(next) = pending.pop_front() {
            assembly.append(next).await?;
        }
        assembly.file.finish()?;
        let bytes = std::mem::take(assembly.file.inner_mut());
        assembly.upload.put(Bytes::from(bytes)).await
    }
    .await;
    let Assembly {
        upload,
        row_groups,
        encode_time,
        ..
    } = assembly;
    match encoded {
        Ok(()) => Ok(Written {
            rows,
            bytes: upload.finish(rows).await?,
            parts: row_groups,
            encode_time: Some(encode_time),
            ..Written::default()
        }),
        Err(e) => {
            upload.abort().await;
            Err(e)
        }
    }
}

#[async_trait]
impl Backend for ParquetBackend {
    fn name(&self) -> &'static str {
        "parquet"
    }

    fn extension(&self) -> &'static str {
        "parquet"
    }

    /// The object (or the transaction) appears whole at the end.
    fn publishes_late(&self) -> bool {
        true
    }

    async fn open(
        &self,
        at: &Location,
        schema: SchemaRef,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        files::open_entry(ParquetFormat, self.extension(), at, schema).await
    }

    async fn write(
        &self,
        at: &Location,
        data: SendableRecordBatchStream,
        options: &WriteOptions,
    ) -> Result<Written> {
        let (target, part) = files::write_target(at, options, self.extension()).await?;
        let written = write_row_groups(&target, data, options).await?;
        files::place_part(at, &target, part.as_deref()).await?;
        Ok(Written { part, ..written })
    }

    async fn delete(&self, at: &Location) -> Result<()> {
        files::delete(at).await
    }

    async fn stamp(&self, at: &Location) -> Result<Option<String>> {
        files::stamp(at).await
    }

    fn exact_rows(&self) -> bool {
        true
    }

    fn parts(&self) -> bool {
        true
    }

    async fn remove_parts(&self, at: &Location, keep: &[String]) -> Result<()> {
        files::remove_parts(at, keep).await
    }
}

#[cfg(test)]
mod tests;

//! Encoding one row group's columns, on threads kept for encoding (one per
//! core; see [`encode_on_own_threads`] for why not tokio's blocking pool).
//!
//! Most columns go through arrow-rs' Arrow writer. A top-level integer or
//! float column without nulls in the row group goes around it: arrow-rs'
//! Arrow writer copies every column's values through a list of the indices
//! of its non-null rows before encoding them, with no nulls too (about 8%
//! of the CPU of writing the README's daily rows), where its column writer
//! takes the Arrow buffer as it is. Such a column's chunk is encoded into
//! a buffer of its own and spliced into the row group from there; its
//! statistics are computed here ([`Extremes`]). The leading sort column's
//! pages are written here altogether ([`delta_pages`]) and spliced in the
//! same way. A column with nulls in the row group needs the copy (nulls are
//! not stored among the values) and keeps the Arrow writer.

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Date32Type, Float32Type, Float64Type, Int32Type, SchemaRef};
use bytes::Bytes;
use datafusion::common::{DataFusionError, Result};
use futures::future::BoxFuture;
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnChunk, ArrowRowGroupWriterFactory};
use parquet::column::writer::{get_column_writer, ColumnCloseResult, ColumnWriter};
use parquet::file::properties::WriterPropertiesPtr;
use parquet::file::writer::{SerializedPageWriter, SerializedRowGroupWriter, TrackedWrite};
use parquet::schema::types::{ColumnDescPtr, SchemaDescriptor};

use super::delta_pages::{self, i64_values};
use super::extremes::Extremes;

/// What encoding a row group needs to know of the file.
pub(super) struct Columns {
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    properties: WriterPropertiesPtr,
    /// Per field of `schema`: its first leaf column.
    first_leaf: Vec<usize>,
    /// Per field: its leaf's descriptor when its statistics are computed
    /// here, and its values can then be written from their Arrow buffer.
    direct: Vec<Option<ColumnDescPtr>>,
    /// Per field: its leaf's descriptor when its pages are delta-packed
    /// here ([`delta_pages`]).
    delta: Vec<Option<ColumnDescPtr>>,
}

impl Columns {
    /// `extremes_here` marks the fields whose statistics are computed here
    /// (each a single leaf); see [`super::extremes::take_over`].
    pub(super) fn new(
        factory: ArrowRowGroupWriterFactory,
        schema: SchemaRef,
        parquet: &SchemaDescriptor,
        properties: WriterPropertiesPtr,
        extremes_here: &[bool],
    ) -> Self {
        let mut first_leaf = vec![usize::MAX; schema.fields().len()];
        for leaf in (0..parquet.num_columns()).rev() {
            first_leaf[parquet.get_column_root_idx(leaf)] = leaf;
        }
        let direct = (first_leaf.iter().zip(extremes_here))
            .map(|(leaf, here)| here.then(|| parquet.column(*leaf)))
            .collect();
        let delta = (schema.fields().iter().zip(&first_leaf))
            .map(|(field, leaf)| {
                delta_pages::writes_here(field.name(), field.data_type(), &properties)
                    .then(|| parquet.column(*leaf))
            })
            .collect();
        Columns {
            factory,
            schema,
            properties,
            first_leaf,
            direct,
            delta,
        }
    }
}

/// One leaf column's encoded chunk.
pub(super) enum Chunk {
    Arrow(ArrowColumnChunk),
    /// Encoded by a column writer of its own into `bytes`.
    Direct {
        bytes: Bytes,
        close: ColumnCloseResult,
    },
}

impl Chunk {
    pub(super) fn append_to<W: Write + Send>(
        self,
        row_group: &mut SerializedRowGroupWriter<'_, W>,
    ) -> Result<()> {
        match self {
            Chunk::Arrow(chunk) => chunk.append_to_row_group(row_group)?,
            Chunk::Direct { bytes, close } => row_group.append_column(&bytes, close)?,
        }
        Ok(())
    }
}

/// One row group's chunks in leaf order, encoded on an encoding thread
/// ([`encode_on_own_threads`]), and how long encoding took.
pub(super) type EncodedRowGroup = BoxFuture<'static, Result<(Vec<Chunk>, Duration)>>;

/// Encodes `batches` as row group `index` of the file `columns` describes.
pub(super) fn encode_row_group(
    columns: Arc<Columns>,
    index: usize,
    batches: Vec<RecordBatch>,
) -> EncodedRowGroup {
    let (done, encoded) = tokio::sync::oneshot::channel();
    encode_on_own_threads(Box::new(move || {
        let started = Instant::now();
        let chunks = catch_unwind(AssertUnwindSafe(|| encode(&columns, index, &batches)));
        let result = match chunks {
            Ok(chunks) => chunks.map(|chunks| (chunks, started.elapsed())),
            Err(_) => Err(internal("the encoding thread panicked")),
        };
        let _ = done.send(result);
    }));
    Box::pin(async move {
        encoded
            .await
            .map_err(|_| internal("the encoding thread stopped"))?
    })
}

type Job = Box<dyn FnOnce() + Send>;

/// Hands `job` to the encoding threads: one per core, started by the first
/// write and kept for the process, taking jobs in the order given.
///
/// Not tokio's blocking pool, where a row group handed out often waited
/// for its thread until the one before it was done: traces of a miss over
/// the README's daily rows showed row groups encoded one at a time for
/// stretches of ten and more, with the other core idle. On threads of
/// their own, over six whole runs taken in turn with the blocking pool, the
/// miss took 50 ms against 62 (medians) for the same CPU (docs/benchmarks.md).
/// A job runs to its end; a panic in it is the job's to catch.
fn encode_on_own_threads(job: Job) {
    static ENCODERS: OnceLock<Sender<Job>> = OnceLock::new();
    let encoders = ENCODERS.get_or_init(|| {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        for i in 0..threads {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("nuthatch-encode-{i}"))
                // One thread waits on the queue at a time; the others wait
                // for the lock, and the next job wakes only the one.
                .spawn(move || loop {
                    let next = queue.lock().map(|queue| queue.recv());
                    match next {
                        Ok(Ok(job)) => job(),
                        _ => return,
                    }
                })
                .expect("starting an encoding thread");
        }
        jobs
    });
    // The receiving threads live as long as the process, so sending fails
    // only if every one of them is gone, which no job can cause.
    let _ = encoders.send(job);
}

fn encode(columns: &Columns, index: usize, batches: &[RecordBatch]) -> Result<Vec<Chunk>> {
    let mut writers: Vec<_> = (columns.factory.create_column_writers(index)?)
        .into_iter()
        .map(Some)
        .collect();
    let mut chunks: Vec<Option<Chunk>> = writers.iter().map(|_| None).collect();
    for (i, field) in columns.schema.fields().iter().enumerate() {
        let values: Vec<&ArrayRef> = batches.iter().map(|batch| batch.column(i)).collect();
        let leaf = columns.first_leaf[i];
        let no_nulls = values.iter().all(|column| column.null_count() == 0);
        if let (Some(descr), true) = (&columns.delta[i], no_nulls) {
            let (bytes, close) = delta_pages::write_chunk(descr, &columns.properties, &values)?;
            writers[leaf] = None;
            chunks[leaf] = Some(Chunk::Direct { bytes, close });
            continue;
        }
        let Some(descr) = &columns.direct[i] else {
            for column in values {
                for (j, part) in compute_leaves(field, column)?.iter().enumerate() {
                    let writer = writers.get_mut(leaf + j).and_then(Option::as_mut);
                    writer
                        .ok_or_else(|| internal("a leaf without a writer"))?
                        .write(part)?;
                }
            }
            continue;
        };
        if no_nulls {
            writers[leaf] = None;
            chunks[leaf] = Some(direct(descr, &columns.properties, &values)?);
            continue;
        }
        let mut extremes = Extremes::default();
        let writer = writers[leaf]
            .as_mut()
            .ok_or_else(|| internal("no writer"))?;
        for column in values {
            extremes.add(column.as_ref());
            for part in compute_leaves(field, column)? {
                writer.write(&part)?;
            }
        }
        let mut chunk = writers[leaf]
            .take()
            .expect("the writer just used")
            .close()?;
        extremes.into_close(chunk.close_mut())?;
        chunks[leaf] = Some(Chunk::Arrow(chunk));
    }
    (chunks.into_iter().zip(writers))
        .map(|(chunk, writer)| match (chunk, writer) {
            (Some(chunk), _) => Ok(chunk),
            (None, Some(writer)) => Ok(Chunk::Arrow(writer.close()?)),
            (None, None) => Err(internal("a leaf neither written nor encoded")),
        })
        .collect()
}

/// Encodes `values`, the parts of a column without nulls, with arrow-rs'
/// column writer straight from their buffers.
fn direct(
    descr: &ColumnDescPtr,
    properties: &WriterPropertiesPtr,
    values: &[&ArrayRef],
) -> Result<Chunk> {
    let mut extremes = Extremes::default();
    let mut sink = TrackedWrite::new(Vec::new());
    let pages = Box::new(SerializedPageWriter::new(&mut sink));
    let mut writer = get_column_writer(Arc::clone(descr), Arc::clone(properties), pages);
    // A nullable column states that each value is there.
    let longest = values.iter().map(|column| column.len()).max().unwrap_or(0);
    let present = vec![
        1i16;
        if descr.max_def_level() > 0 {
            longest
        } else {
            0
        }
    ];
    for column in values {
        extremes.add(column.as_ref());
        let levels = (descr.max_def_level() > 0).then(|| &present[..column.len()]);
        let column = column.as_ref();
        match (&mut writer, column.data_type()) {
            (ColumnWriter::Int32ColumnWriter(w), DataType::Date32) => {
                w.write_batch(column.as_primitive::<Date32Type>().values(), levels, None)?
            }
            (ColumnWriter::Int32ColumnWriter(w), _) => {
                w.write_batch(column.as_primitive::<Int32Type>().values(), levels, None)?
            }
            (ColumnWriter::Int64ColumnWriter(w), _) => {
                w.write_batch(i64_values(column)?, levels, None)?
            }
            (ColumnWriter::FloatColumnWriter(w), _) => {
                w.write_batch(column.as_primitive::<Float32Type>().values(), levels, None)?
            }
            (ColumnWriter::DoubleColumnWriter(w), _) => {
                w.write_batch(column.as_primitive::<Float64Type>().values(), levels, None)?
            }
            _ => return Err(internal("a column written directly of another type")),
        };
    }
    let mut close = writer.close()?;
    extremes.into_close(&mut close)?;
    let bytes = Bytes::from(sink.into_inner()?);
    Ok(Chunk::Direct { bytes, close })
}

fn internal(what: &str) -> DataFusionError {
    DataFusionError::Internal(format!("encoding a row group: {what}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::AsArray;
    use arrow::array::{
        ArrayRef, Date32Array, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
        StringArray, StructArray, TimestampNanosecondArray,
    };
    use arrow::compute::concat_batches;
    use arrow::datatypes::Float64Type;
    use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
    use bytes::Bytes;
    use datafusion::execution::object_store::ObjectStoreUrl;
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{ObjectStore, ObjectStoreExt};
    use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
    use parquet::arrow::ArrowWriter;
    use parquet::file::metadata::PageIndexPolicy;
    use parquet::file::metadata::ParquetMetaData;

    use crate::{Location, WriteOptions};

    const ROWS: usize = 150_000;

    fn schema() -> SchemaRef {
        let pair = Fields::from(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Float64, true),
        ]);
        let time = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
        Arc::new(Schema::new(vec![
            Field::new("time", time, false),
            Field::new("pair", DataType::Struct(pair), true),
            Field::new("air", DataType::Float64, true),
            Field::new("lat", DataType::Float32, false),
            Field::new("day", DataType::Date32, true),
            Field::new("count", DataType::Int32, true),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    /// Rows `start..end`: `air` has nulls in the second row group only, so
    /// it is written around the Arrow writer in the first and the third.
    fn batch(start: usize, end: usize) -> RecordBatch {
        let rows = start..end;
        let pair = StructArray::from(vec![
            (
                Arc::new(Field::new("a", DataType::Int64, false)),
                Arc::new(Int64Array::from_iter_values(
                    rows.clone().map(|i| (i % 97) as i64),
                )) as ArrayRef,
            ),
            (
                Arc::new(Field::new("b", DataType::Float64, true)),
                Arc::new(Float64Array::from_iter(
                    rows.clone().map(|i| (i % 5 != 0).then_some(i as f64 / 3.0)),
                )) as ArrayRef,
            ),
        ]);
        // NaN and -0.0 in the row groups written from the buffer: values
        // stored as they are, bit for bit, and kept out of the bounds.
        let air = rows.clone().map(|i| match i {
            70_000..=70_099 => None,
            _ if i % 4099 == 7 => Some(f64::NAN),
            _ if i % 5003 == 11 => Some(-0.0),
            _ => Some(((i * 7919) % 1000) as f64 - 500.0),
        });
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(
                    TimestampNanosecondArray::from_iter_values(
                        rows.clone().map(|i| (i / 10) as i64 * 21_600_000_000_000),
                    )
                    .with_timezone("UTC"),
                ),
                Arc::new(pair),
                Arc::new(Float64Array::from_iter(air)),
                Arc::new(Float32Array::from_iter_values(
                    rows.clone().map(|i| (i % 25) as f32 * 2.5 + 15.0),
                )),
                Arc::new(Date32Array::from_iter_values(
                    rows.clone().map(|i| (i / 40) as i32),
                )),
                Arc::new(Int32Array::from_iter_values(
                    rows.clone().map(|i| 1000 - (i % 3000) as i32),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.map(|i| format!("cell {}", i % 13)),
                )),
            ],
        )
        .unwrap()
    }

    fn metadata(bytes: &Bytes) -> Arc<ParquetMetaData> {
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
        let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(bytes.clone(), options);
        Arc::clone(reader.unwrap().metadata())
    }

    fn rows(bytes: &Bytes) -> RecordBatch {
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        concat_batches(&schema(), &batches).unwrap()
    }

    #[tokio::test]
    async fn row_groups_encoded_here_are_what_arrow_rs_writes() {
        let batches: Vec<RecordBatch> = (0..ROWS)
            .step_by(10_000)
            .map(|start| batch(start, (start + 10_000).min(ROWS)))
            .collect();
        let options = WriteOptions {
            order: vec!["time".into()],
            sorted_by: Some("time".into()),
            ..WriteOptions::default()
        };
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let url = ObjectStoreUrl::parse("memory://").unwrap();
        let at = Location::new(Arc::clone(&store), url, Path::from("entry.parquet"));
        let stream = futures::stream::iter(batches.clone().into_iter().map(Ok));
        let stream = Box::pin(RecordBatchStreamAdapter::new(schema(), stream));
        super::super::write_row_groups(&at, stream, &options)
            .await
            .unwrap();
        let ours = store.get(&at.path).await.unwrap().bytes().await.unwrap();

        let properties = super::super::properties(&schema(), &options, &batches).unwrap();
        let mut theirs = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut theirs, schema(), Some(properties)).unwrap();
        for batch in &batches {
            writer.write(batch).unwrap();
        }
        writer.close().unwrap();
        let theirs = Bytes::from(theirs);

        let (stored, computed) = (rows(&ours), concat_batches(&schema(), &batches).unwrap());
        assert_eq!(stored, computed);
        let bits = |batch: &RecordBatch| -> Vec<Option<u64>> {
            let air = batch
                .column_by_name("air")
                .unwrap()
                .as_primitive::<Float64Type>();
            air.iter().map(|v| v.map(f64::to_bits)).collect()
        };
        assert_eq!(bits(&stored), bits(&computed));
        let (ours, theirs) = (metadata(&ours), metadata(&theirs));
        assert_eq!(ours.num_row_groups(), 3);
        assert_eq!(ours.num_row_groups(), theirs.num_row_groups());
        for (g, (ours, theirs)) in ours
            .row_groups()
            .iter()
            .zip(theirs.row_groups())
            .enumerate()
        {
            assert_eq!(ours.num_rows(), theirs.num_rows());
            for (ours, theirs) in ours.columns().iter().zip(theirs.columns()) {
                let at = format!("row group {g}, {}", ours.column_path());
                assert_eq!(ours.column_path(), theirs.column_path(), "{at}");
                assert_eq!(ours.num_values(), theirs.num_values(), "{at}");
                assert_eq!(ours.encodings_mask(), theirs.encodings_mask(), "{at}");
                let (ours, theirs) = (ours.statistics().unwrap(), theirs.statistics().unwrap());
                assert_eq!(ours, theirs, "{at}");
                assert_eq!(ours.min_bytes_opt(), theirs.min_bytes_opt(), "{at}");
                assert_eq!(ours.max_bytes_opt(), theirs.max_bytes_opt(), "{at}");
            }
        }
        // The time column keeps its page index, which windows read, and
        // every column its page offsets.
        let index = ours.column_index().expect("a page index");
        assert!(!matches!(
            index[0][0],
            parquet::file::page_index::column_index::ColumnIndexMetaData::NONE
        ));
        // A column written around the Arrow writer is handed its values
        // 1024 at a time, so its pages end within 1024 rows of PAGE_ROWS;
        // the Arrow writer's end where its input batches end too (here 8
        // pages against 7 in a row group, of up to 10,000 rows).
        let pages = ours.offset_index().expect("page offsets");
        for (group, columns) in ours.row_groups().iter().zip(pages) {
            for (i, column) in columns.iter().enumerate() {
                let starts: Vec<i64> = (column.page_locations().iter())
                    .map(|page| page.first_row_index)
                    .chain([group.num_rows()])
                    .collect();
                let most = starts.windows(2).map(|w| w[1] - w[0]).max().unwrap();
                let bound = match group.column(i).column_path().string().as_str() {
                    "lat" | "day" | "count" => super::super::PAGE_ROWS + 1024,
                    _ => 2 * super::super::PAGE_ROWS,
                };
                assert!(most <= bound as i64, "{most} rows in a page of column {i}");
            }
        }
    }
}

//! The leading sort column's pages, delta-packed here.
//!
//! The column an entry's rows are sorted by (its time, mostly) is stored
//! `DELTA_BINARY_PACKED`, with page statistics for the page index. Written
//! by arrow-rs it took about a third of the CPU of writing the README's
//! daily rows: its delta encoder passes every value through its bit
//! writer, including the zero deltas of a time that repeats across a
//! whole grid; its page statistics compare value by value; and its Arrow
//! writer first copies the values through a list of row indices. Sorted
//! times come in runs, so most miniblocks of deltas are all equal and take
//! no bits at all. Here such a miniblock costs a pass that finds its
//! extremes, the page statistics fold in vector lanes, and the values are
//! read from their Arrow buffers.
//!
//! What is written is what arrow-rs writes with the same settings: version
//! 1 data pages of `data_page_row_count_limit` values, the definition levels
//! of a nullable column as one RLE run, blocks of four miniblocks (of 64
//! values for 64-bit integers, 32 for 32-bit ones), Snappy or no
//! compression, and the same chunk metadata, column index and offset
//! index. A column goes this way only when arrow-rs would write it so and
//! nothing else is asked of it ([`writes_here`]), and only for row groups
//! where it holds no null (the caller keeps arrow-rs for the others).

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use bytes::Bytes;
use datafusion::common::{DataFusionError, Result};
use parquet::basic::{BoundaryOrder, Compression, Encoding, EncodingMask, PageType};
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::file::metadata::{
    ColumnChunkMetaData, ColumnIndexBuilder, LevelHistogram, OffsetIndexBuilder, PageEncodingStats,
};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::{ColumnDescPtr, ColumnPath};

use super::extremes::Lanes;

/// Whether a top-level column of `data_type` written with `properties`
/// gets its pages here: a signed integer column that arrow-rs would
/// delta-pack with page statistics, without a dictionary, a bloom filter or
/// a codec other than Snappy, into version 1 pages.
pub(super) fn writes_here(name: &str, data_type: &DataType, properties: &WriterProperties) -> bool {
    let path = ColumnPath::from(name);
    stored_as(data_type).is_some()
        && properties.encoding(&path) == Some(Encoding::DELTA_BINARY_PACKED)
        && properties.statistics_enabled(&path) == EnabledStatistics::Page
        && !properties.dictionary_enabled(&path)
        && properties.bloom_filter_properties(&path).is_none()
        && matches!(
            properties.compression(&path),
            Compression::SNAPPY | Compression::UNCOMPRESSED
        )
        && properties.writer_version() == WriterVersion::PARQUET_1_0
        && !properties.offset_index_disabled()
}

/// How values of `data_type` are stored: 32 or 64-bit signed integers,
/// the Arrow values unchanged (timestamps in seconds too, as plain
/// integers).
fn stored_as(data_type: &DataType) -> Option<Width> {
    match data_type {
        DataType::Int32 | DataType::Date32 => Some(Width::Int32),
        DataType::Int64 | DataType::Timestamp(_, _) => Some(Width::Int64),
        _ => None,
    }
}

#[derive(Clone, Copy)]
enum Width {
    Int32,
    Int64,
}

/// Encodes `parts`, one row group's values of a column that
/// [`writes_here`] and that holds no null in them, into a chunk of its own
/// bytes, and what arrow-rs' column writer would say of that chunk.
pub(super) fn write_chunk(
    descr: &ColumnDescPtr,
    properties: &WriterProperties,
    parts: &[&ArrayRef],
) -> Result<(Bytes, ColumnCloseResult)> {
    let data_type = parts
        .first()
        .map(|part| part.data_type().clone())
        .ok_or_else(|| internal("no values"))?;
    match stored_as(&data_type) {
        Some(Width::Int32) => {
            let parts: Vec<&[i32]> = parts.iter().map(|part| i32_values(part)).collect();
            Chunk::new(descr, properties).write(&concatenated(&parts))
        }
        Some(Width::Int64) => {
            let parts =
                (parts.iter().map(|part| i64_values(part))).collect::<Result<Vec<&[i64]>>>()?;
            Chunk::new(descr, properties).write(&concatenated(&parts))
        }
        None => Err(internal("a column of another type")),
    }
}

fn i32_values(column: &dyn Array) -> &[i32] {
    match column.data_type() {
        DataType::Date32 => column.as_primitive::<Date32Type>().values(),
        _ => column.as_primitive::<Int32Type>().values(),
    }
}

/// The values of a column stored as 64-bit integers, as they are stored.
pub(super) fn i64_values(column: &dyn Array) -> Result<&[i64]> {
    Ok(match column.data_type() {
        DataType::Int64 => column.as_primitive::<Int64Type>().values(),
        DataType::Timestamp(TimeUnit::Second, _) => {
            column.as_primitive::<TimestampSecondType>().values()
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            column.as_primitive::<TimestampMillisecondType>().values()
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            column.as_primitive::<TimestampMicrosecondType>().values()
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            column.as_primitive::<TimestampNanosecondType>().values()
        }
        _ => return Err(internal("a column written directly of another type")),
    })
}

/// The parts as one slice: the row group's single batch as it is, or a copy
/// of several (a memory copy, far cheaper than encoding).
fn concatenated<'a, T: Copy>(parts: &[&'a [T]]) -> Cow<'a, [T]> {
    match parts {
        [one] => Cow::Borrowed(one),
        _ => Cow::Owned(parts.concat()),
    }
}

/// The integer types a chunk is written for, with what differs between
/// them: deltas wrap at the stored width, and miniblocks hold 32 values of
/// 32-bit integers and 64 of 64-bit ones, as arrow-rs chooses.
trait Stored: Lanes + Ord + Send {
    const MINIBLOCK: usize;
    fn widened(self) -> i64;
    /// `self - before` wrapping at the stored width, widened.
    fn delta(self, before: Self) -> i64;
    /// `delta - min` wrapping at the stored width, as unsigned bits.
    fn above(delta: i64, min: i64) -> u64;
    fn le_bytes(self) -> Vec<u8>;
    fn statistics(min: Self, max: Self) -> Statistics;
}

/// What the two widths share: bytes as the column index holds them, and
/// chunk statistics as arrow-rs writes them for a signed column.
macro_rules! stored_values {
    () => {
        fn le_bytes(self) -> Vec<u8> {
            self.to_le_bytes().to_vec()
        }
        fn statistics(min: Self, max: Self) -> Statistics {
            ValueStatistics::new(Some(min), Some(max), None, Some(0), false)
                .with_backwards_compatible_min_max(true)
                .into()
        }
    };
}

impl Stored for i32 {
    const MINIBLOCK: usize = 32;
    fn widened(self) -> i64 {
        self as i64
    }
    fn delta(self, before: Self) -> i64 {
        self.wrapping_sub(before) as i64
    }
    fn above(delta: i64, min: i64) -> u64 {
        (delta as i32).wrapping_sub(min as i32) as u32 as u64
    }
    stored_values!();
}

impl Stored for i64 {
    const MINIBLOCK: usize = 64;
    fn widened(self) -> i64 {
        self
    }
    fn delta(self, before: Self) -> i64 {
        self.wrapping_sub(before)
    }
    fn above(delta: i64, min: i64) -> u64 {
        delta.wrapping_sub(min) as u64
    }
    stored_values!();
}

/// Miniblocks per block, as arrow-rs writes them.
const MINIBLOCKS: usize = 4;

/// One column chunk being written, page by page.
struct Chunk<'a> {
    descr: &'a ColumnDescPtr,
    properties: &'a WriterProperties,
    compression: Compression,
    index: ColumnIndexBuilder,
    offsets: OffsetIndexBuilder,
    /// Whether the pages' minima and maxima, so far, never fall (rise).
    ascending: bool,
    descending: bool,
    sizes: Sizes,
}

/// What the chunk's metadata counts of its pages.
#[derive(Default)]
struct Sizes {
    pages: i32,
    compressed: i64,
    uncompressed: i64,
}

impl<'a> Chunk<'a> {
    fn new(descr: &'a ColumnDescPtr, properties: &'a WriterProperties) -> Self {
        Chunk {
            descr,
            properties,
            compression: properties.compression(descr.path()),
            index: ColumnIndexBuilder::new(descr.physical_type()),
            offsets: OffsetIndexBuilder::new(),
            ascending: true,
            descending: true,
            sizes: Sizes::default(),
        }
    }

    fn write<T: Stored>(mut self, values: &[T]) -> Result<(Bytes, ColumnCloseResult)> {
        let mut sink = TrackedWrite::new(Vec::new());
        let mut pages = SerializedPageWriter::new(&mut sink);
        // Rows per page as arrow-rs counts them; a page of eight bytes a
        // value stays within the page size too.
        let fit = self.properties.data_page_size_limit() / size_of::<T>();
        let rows = (self.properties.data_page_row_count_limit().min(fit)).max(1);
        let mut bounds: Option<(T, T)> = None;
        let mut last: Option<(T, T)> = None;
        for page in values.chunks(rows) {
            let (min, max) = T::extremes(page).ok_or_else(|| internal("an empty page"))?;
            if let Some((last_min, last_max)) = last {
                self.ascending &= last_min <= min && last_max <= max;
                self.descending &= last_min >= min && last_max >= max;
            }
            last = Some((min, max));
            bounds = Some(bounds.map_or((min, max), |(a, b)| (a.min(min), b.max(max))));
            self.index.append(false, min.le_bytes(), max.le_bytes(), 0);
            let present = self.present(page.len());
            self.index.append_histograms(&None, &present);
            self.offsets.append_row_count(page.len() as i64);
            let page = self.page(page)?;
            let spec = pages.write_page(page)?;
            self.offsets
                .append_offset_and_size(spec.offset as i64, spec.compressed_size as i32);
            self.sizes.pages += 1;
            self.sizes.compressed += spec.compressed_size as i64;
            self.sizes.uncompressed += spec.uncompressed_size as i64;
        }
        pages.close()?;
        let (min, max) = bounds.ok_or_else(|| internal("no values"))?;
        let close = self.close(values.len(), T::statistics(min, max))?;
        Ok((Bytes::from(sink.into_inner()?), close))
    }

    /// The definition-level histogram of `rows` present values, for a
    /// nullable column: none null, all present.
    fn present(&self, rows: usize) -> Option<LevelHistogram> {
        (self.descr.max_def_level() > 0).then(|| LevelHistogram::from(vec![0, rows as i64]))
    }

    /// One data page of `values`: the definition levels (all present), the
    /// deltas, compressed.
    fn page<T: Stored>(&self, values: &[T]) -> Result<CompressedPage> {
        let mut buffer = Vec::with_capacity(64 + values.len() / 8);
        if self.descr.max_def_level() > 0 {
            present_levels(values.len(), &mut buffer);
        }
        delta_pack(values, &mut buffer);
        let uncompressed = buffer.len();
        if self.compression == Compression::SNAPPY {
            buffer = snap::raw::Encoder::new()
                .compress_vec(&buffer)
                .map_err(|e| internal(&format!("Snappy: {e}")))?;
        }
        let page = Page::DataPage {
            buf: Bytes::from(buffer),
            num_values: values.len() as u32,
            encoding: Encoding::DELTA_BINARY_PACKED,
            def_level_encoding: Encoding::RLE,
            rep_level_encoding: Encoding::RLE,
            statistics: None,
        };
        Ok(CompressedPage::new(page, uncompressed))
    }

    /// What arrow-rs' column writer returns on closing the same chunk.
    fn close(mut self, rows: usize, statistics: Statistics) -> Result<ColumnCloseResult> {
        self.index
            .set_boundary_order(match (self.ascending, self.descending) {
                (true, _) => BoundaryOrder::ASCENDING,
                (false, true) => BoundaryOrder::DESCENDING,
                (false, false) => BoundaryOrder::UNORDERED,
            });
        let encodings = [Encoding::RLE, Encoding::DELTA_BINARY_PACKED];
        let metadata = ColumnChunkMetaData::builder(Arc::clone(self.descr))
            .set_compression(self.compression)
            .set_encodings_mask(EncodingMask::new_from_encodings(encodings.iter()))
            .set_page_encoding_stats(vec![PageEncodingStats {
                page_type: PageType::DATA_PAGE,
                encoding: Encoding::DELTA_BINARY_PACKED,
                count: self.sizes.pages,
            }])
            .set_total_compressed_size(self.sizes.compressed)
            .set_total_uncompressed_size(self.sizes.uncompressed)
            .set_num_values(rows as i64)
            .set_data_page_offset(0)
            .set_statistics(statistics)
            .set_definition_level_histogram(self.present(rows))
            .build()?;
        Ok(ColumnCloseResult {
            bytes_written: self.sizes.compressed as u64,
            rows_written: rows as u64,
            metadata,
            bloom_filter: None,
            column_index: Some(self.index.build()?),
            offset_index: Some(self.offsets.build()),
        })
    }
}

/// Definition levels of `rows` present values (bit width 1): their length,
/// then one RLE run of ones.
fn present_levels(rows: usize, buffer: &mut Vec<u8>) {
    let mut run = Vec::with_capacity(6);
    put_varint((rows as u64) << 1, &mut run);
    run.push(1);
    buffer.extend_from_slice(&(run.len() as u32).to_le_bytes());
    buffer.extend_from_slice(&run);
}

/// `values` in `DELTA_BINARY_PACKED`: the header, then blocks of
/// `MINIBLOCKS` miniblocks of the deltas, each less the block's smallest
/// delta and packed in as few bits as its largest needs.
fn delta_pack<T: Stored>(values: &[T], out: &mut Vec<u8>) {
    let block = T::MINIBLOCK * MINIBLOCKS;
    put_varint(block as u64, out);
    put_varint(MINIBLOCKS as u64, out);
    put_varint(values.len() as u64, out);
    let Some(first) = values.first() else {
        put_varint(0, out);
        return;
    };
    put_varint(zigzag(first.widened()), out);
    let mut deltas = vec![0i64; block];
    // Each block's deltas, from the value before it on.
    for start in (0..values.len() - 1).step_by(block) {
        let run = &values[start..values.len().min(start + block + 1)];
        // Within a run of one value (a time a whole grid shares), every
        // delta is zero and so is every width: the block is five bytes.
        if run.iter().all(|value| *value == run[0]) {
            put_varint(zigzag(0), out);
            out.resize(out.len() + MINIBLOCKS, 0);
            continue;
        }
        for (delta, pair) in deltas.iter_mut().zip(run.windows(2)) {
            *delta = pair[1].delta(pair[0]);
        }
        let deltas = &deltas[..run.len() - 1];
        let min = deltas.iter().copied().min().unwrap_or(0);
        put_varint(zigzag(min), out);
        let widths_at = out.len();
        out.resize(widths_at + MINIBLOCKS, 0);
        for (i, mini) in deltas.chunks(T::MINIBLOCK).enumerate() {
            let widest = mini.iter().map(|d| T::above(*d, min)).max().unwrap_or(0);
            let width = (u64::BITS - widest.leading_zeros()) as usize;
            out[widths_at + i] = width as u8;
            pack::<T>(mini, min, width, out);
        }
    }
}

/// One miniblock's deltas less `min`, in `width` bits each from the least
/// significant bit up, padded with zeros to a whole miniblock.
fn pack<T: Stored>(mini: &[i64], min: i64, width: usize, out: &mut Vec<u8>) {
    if width == 0 {
        return;
    }
    let mut bits: u128 = 0;
    let mut held = 0;
    let padding = std::iter::repeat_n(0, T::MINIBLOCK - mini.len());
    for value in mini.iter().map(|d| T::above(*d, min)).chain(padding) {
        bits |= (value as u128) << held;
        held += width;
        if held >= 64 {
            out.extend_from_slice(&(bits as u64).to_le_bytes());
            bits >>= 64;
            held -= 64;
        }
    }
    // A miniblock holds a multiple of 32 values: whole bytes.
    out.extend_from_slice(&(bits as u64).to_le_bytes()[..held / 8]);
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn put_varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn internal(what: &str) -> DataFusionError {
    DataFusionError::Internal(format!("writing the sort column's pages: {what}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, Date32Array, Int32Array, Int64Array, RecordBatch, TimestampNanosecondArray,
        TimestampSecondArray,
    };
    use arrow::compute::concat_batches;
    use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
    use bytes::Bytes;
    use datafusion::execution::object_store::ObjectStoreUrl;
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{ObjectStore, ObjectStoreExt};
    use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
    use parquet::arrow::ArrowWriter;
    use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};

    use crate::{Location, WriteOptions};

    /// `column` written as the sort column of an entry, and by arrow-rs
    /// with the same settings: the file's rows, and the metadata
    /// (statistics, column index, page offsets and sizes) of each.
    async fn both(field: Field, column: ArrayRef) -> [(RecordBatch, Arc<ParquetMetaData>); 2] {
        let name = field.name().clone();
        let schema: SchemaRef = Arc::new(Schema::new(vec![field]));
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![column]).unwrap();
        let batches: Vec<RecordBatch> = (0..batch.num_rows())
            .step_by(10_000)
            .map(|at| batch.slice(at, (batch.num_rows() - at).min(10_000)))
            .collect();
        let options = WriteOptions {
            order: vec![name],
            ..WriteOptions::default()
        };
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let url = ObjectStoreUrl::parse("memory://").unwrap();
        let at = Location::new(Arc::clone(&store), url, Path::from("entry.parquet"));
        let stream = futures::stream::iter(batches.clone().into_iter().map(Ok));
        let stream = Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&schema), stream));
        super::super::write_row_groups(&at, stream, &options)
            .await
            .unwrap();
        let ours = store.get(&at.path).await.unwrap().bytes().await.unwrap();

        let properties = super::super::properties(&schema, &options, &batches).unwrap();
        let mut theirs = Vec::new();
        let mut writer =
            ArrowWriter::try_new(&mut theirs, Arc::clone(&schema), Some(properties)).unwrap();
        // In one batch: arrow-rs' pages end where its input batches do,
        // and at the page size within them.
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        [ours, Bytes::from(theirs)].map(|bytes| {
            let options =
                ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
            let reader =
                ParquetRecordBatchReaderBuilder::try_new_with_options(bytes, options).unwrap();
            let metadata = Arc::clone(reader.metadata());
            let read: Vec<RecordBatch> = reader.build().unwrap().map(Result::unwrap).collect();
            (concat_batches(&schema, &read).unwrap(), metadata)
        })
    }

    /// `pages`: whether every row group of `column` is written here, and its
    /// pages are then the same bytes as arrow-rs'.
    async fn same_as_arrow_rs(field: Field, column: ArrayRef, pages: bool) {
        let what = format!("{} of {} rows", field.data_type(), column.len());
        let [(ours, ours_meta), (theirs, theirs_meta)] = both(field, Arc::clone(&column)).await;
        assert_eq!(ours.column(0), &column, "{what}: values");
        assert_eq!(ours, theirs, "{what}: values");
        assert_eq!(ours_meta.num_row_groups(), theirs_meta.num_row_groups());
        for (g, (a, b)) in (ours_meta.row_groups().iter())
            .zip(theirs_meta.row_groups())
            .enumerate()
        {
            let (a, b) = (a.column(0), b.column(0));
            let at = format!("{what}, row group {g}");
            assert_eq!(a.num_values(), b.num_values(), "{at}");
            assert_eq!(a.encodings_mask(), b.encodings_mask(), "{at}");
            assert_eq!(a.compression(), b.compression(), "{at}");
            assert_eq!(a.statistics(), b.statistics(), "{at}");
            assert_eq!(
                a.definition_level_histogram(),
                b.definition_level_histogram(),
                "{at}"
            );
            if !pages {
                continue;
            }
            assert_eq!(
                a.compressed_size(),
                b.compressed_size(),
                "{at}: the same bytes"
            );
            assert_eq!(a.uncompressed_size(), b.uncompressed_size(), "{at}");
        }
        if !pages {
            return;
        }
        let indexes = [&ours_meta, &theirs_meta].map(|meta| meta.column_index().unwrap());
        assert_eq!(indexes[0], indexes[1], "{what}: column index");
        let offsets = [&ours_meta, &theirs_meta].map(|meta| meta.offset_index().unwrap());
        for (a, b) in offsets[0].iter().zip(offsets[1]) {
            let pages = |o: &parquet::file::page_index::offset_index::OffsetIndexMetaData| {
                (o.page_locations().iter())
                    .map(|p| (p.first_row_index, p.compressed_page_size))
                    .collect::<Vec<_>>()
            };
            assert_eq!(pages(&a[0]), pages(&b[0]), "{what}: pages");
        }
    }

    /// A stand-in for random numbers, the same in every run.
    fn scrambled(i: usize) -> u64 {
        (i as u64 ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(0xbf58_476d_1ce4_e5b9) >> 7
    }

    #[tokio::test]
    async fn pages_written_here_are_the_ones_arrow_rs_writes() {
        let time = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
        // The README's daily rows: a time in runs of 1,325 cells, nullable
        // as DataFusion's results are, over two row groups.
        let times = TimestampNanosecondArray::from_iter_values(
            (0..70_001).map(|i| 1_356_998_400_000_000_000 + (i / 1325) as i64 * 21_600_000_000_000),
        )
        .with_timezone("UTC");
        same_as_arrow_rs(Field::new("time", time, true), Arc::new(times), true).await;
        // Any values: every width up to 64 bits, deltas that wrap.
        // (0, MIN, -1 gives the deltas MIN and MAX: 64 bits.)
        let wild = (0..20_000).map(|i| match i % 1000 {
            0 => 0,
            1 => i64::MIN,
            2 => -1,
            3 => i64::MAX,
            _ => scrambled(i) as i64,
        });
        let wild = Int64Array::from_iter_values(wild);
        same_as_arrow_rs(
            Field::new("id", DataType::Int64, false),
            Arc::new(wild),
            true,
        )
        .await;
        // Falling values: pages in descending order.
        let falling = Int32Array::from_iter_values((0..20_000).map(|i| 1_000_000 - i * 7));
        same_as_arrow_rs(
            Field::new("n", DataType::Int32, false),
            Arc::new(falling),
            true,
        )
        .await;
        // Falling 32-bit values, wrapping once: pages in no order.
        let falling = (0..9_000).map(|i| i32::MIN.wrapping_add(4000).wrapping_sub(i * 7));
        let falling = Int32Array::from_iter_values(falling);
        same_as_arrow_rs(
            Field::new("n", DataType::Int32, true),
            Arc::new(falling),
            true,
        )
        .await;
        // Lengths around a miniblock, a block and a page.
        for rows in [1, 2, 33, 64, 65, 129, 257, 8192, 8193] {
            let days = Date32Array::from_iter_values((0..rows).map(|i| 15_000 + i / 3));
            same_as_arrow_rs(
                Field::new("day", DataType::Date32, true),
                Arc::new(days),
                true,
            )
            .await;
        }
        // Seconds, stored as plain integers.
        let seconds =
            TimestampSecondArray::from_iter_values((0..9_000).map(|i| 1_700_000_000 + i / 7));
        let seconds_type = DataType::Timestamp(TimeUnit::Second, None);
        same_as_arrow_rs(
            Field::new("t", seconds_type, false),
            Arc::new(seconds),
            false,
        )
        .await;
        // A row group with nulls keeps arrow-rs' writer, whose pages end
        // where its input batches do; the next is written here.
        let holes = Int64Array::from_iter((0..70_001).map(|i| (i != 5).then_some(i)));
        same_as_arrow_rs(
            Field::new("id", DataType::Int64, true),
            Arc::new(holes),
            false,
        )
        .await;
    }
}

//! The rows of a sorted Parquet file between [`Bounds`], found without
//! reading the rows.
//!
//! Each bound is a prefix of the sorted rows ([`Prefix`]), and its length is
//! found a row group at a time: a group whose first value fails the bound
//! ends the prefix before it, and a group is wholly inside it when the next
//! group's first value is. Only the group (and, with a page index, the page)
//! where the prefix ends is decoded, one column of it, so a window costs a
//! page or two of its time column however many rows it keeps; the scan
//! then reads exactly those rows, and nothing above it evaluates the window
//! row by row or decodes the time column only to do so.
//!
//! Statistics decide only where they are known; an unknown one (an all-null
//! group, a file without a page index) means decoding more, never a wrong
//! answer.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef};
use arrow::datatypes::DataType;
use bytes::Bytes;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::physical_plan::parquet::RowGroupAccess;
use futures::future::try_join_all;
use futures::future::BoxFuture;
use futures::{FutureExt, TryStreamExt};
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, RowSelection, RowSelector,
};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::arrow::ProjectionMask;
use parquet::errors::ParquetError;
use parquet::file::metadata::ParquetMetaData;

use crate::bounds::{Bounds, Prefix};

/// How each row group of `file` is read so that the scan yields exactly the
/// rows within `bounds`, a run of the sorted rows. Groups outside it get an
/// empty selection rather than none, so that the scan's statistics still
/// count them as pruned.
pub(super) async fn within(
    store: &Arc<dyn ObjectStore>,
    file: &ObjectMeta,
    metadata: &Arc<ParquetMetaData>,
    bounds: &Bounds,
) -> Result<Vec<RowGroupAccess>> {
    let reader = ArrowReaderMetadata::try_new(Arc::clone(metadata), ArrowReaderOptions::new())?;
    let search = Search::new(store, file, &reader, bounds)?;
    let starts = try_join_all(bounds.starts.iter().map(|p| search.prefix(p)));
    let ends = bounds.end_prefixes();
    let ends = try_join_all(ends.iter().map(|p| search.prefix(p)));
    let (starts, ends) = futures::try_join!(starts, ends)?;
    let first = starts.into_iter().max().unwrap_or(0);
    let end = ends.into_iter().min().unwrap_or(0);
    tracing::trace!(column = %bounds.column, first, end, "rows within the bounds");

    let mut accesses = Vec::with_capacity(search.rows.len());
    let mut group_start = 0;
    for &rows in &search.rows {
        let from = first.clamp(group_start, group_start + rows) - group_start;
        let to = end.clamp(group_start, group_start + rows) - group_start;
        accesses.push(if from == 0 && to == rows {
            RowGroupAccess::Scan
        } else {
            let to = to.max(from);
            let selectors = [
                RowSelector::skip(from as usize),
                RowSelector::select((to - from) as usize),
                RowSelector::skip((rows - to) as usize),
            ];
            RowGroupAccess::Selection(
                selectors
                    .into_iter()
                    .filter(|s| s.row_count > 0)
                    .collect::<Vec<_>>()
                    .into(),
            )
        });
        group_start += rows;
    }
    Ok(accesses)
}

/// One file's sort column, searched for where prefixes end.
struct Search<'a> {
    store: &'a Arc<dyn ObjectStore>,
    file: &'a ObjectMeta,
    reader: &'a ArrowReaderMetadata,
    converter: StatisticsConverter<'a>,
    /// The column's leaf in the Parquet schema; `None` when the file lacks
    /// it, so that every value is null.
    leaf: Option<usize>,
    /// The type the bounds compare in: the entry's, which the file's may
    /// differ from (a time zone, say).
    data_type: &'a DataType,
    /// Each row group's first value, where known.
    mins: ArrayRef,
    rows: Vec<u64>,
}

impl<'a> Search<'a> {
    fn new(
        store: &'a Arc<dyn ObjectStore>,
        file: &'a ObjectMeta,
        reader: &'a ArrowReaderMetadata,
        bounds: &'a Bounds,
    ) -> Result<Search<'a>> {
        let metadata = reader.metadata();
        let converter = StatisticsConverter::try_new(
            &bounds.column,
            reader.schema(),
            metadata.file_metadata().schema_descr(),
        )?;
        let mins = converter.row_group_mins(metadata.row_groups())?;
        let mins = cast_to(mins, &bounds.data_type)?;
        let rows = metadata
            .row_groups()
            .iter()
            .map(|group| group.num_rows() as u64)
            .collect();
        Ok(Search {
            store,
            file,
            reader,
            leaf: converter.parquet_column_index(),
            converter,
            data_type: &bounds.data_type,
            mins,
            rows,
        })
    }

    /// How many rows, from the first, `prefix` keeps.
    async fn prefix(&self, prefix: &Prefix) -> Result<u64> {
        if self.leaf.is_none() {
            return Ok(0);
        }
        let holds = prefix.decide(&self.mins)?;
        let mut kept = 0;
        for (group, &rows) in self.rows.iter().enumerate() {
            if holds[group] == Some(false) {
                break;
            }
            if holds.get(group + 1).copied().flatten() == Some(true) {
                kept += rows;
                continue;
            }
            let within = self.prefix_in_group(group, prefix).await?;
            kept += within;
            if within < rows {
                break;
            }
        }
        Ok(kept)
    }

    /// How many rows of row group `group`, from its first, `prefix` keeps:
    /// the same search over its pages, when the file has a page index.
    async fn prefix_in_group(&self, group: usize, prefix: &Prefix) -> Result<u64> {
        let Some((mins, rows)) = self.pages(group) else {
            return self.decoded(group, 0, self.rows[group], prefix).await;
        };
        let holds = prefix.decide(&mins)?;
        let (mut kept, mut page_start) = (0, 0);
        for (page, &rows) in rows.iter().enumerate() {
            if holds[page] == Some(false) {
                break;
            }
            if holds.get(page + 1).copied().flatten() != Some(true) {
                let within = self.decoded(group, page_start, rows, prefix).await?;
                kept += within;
                if within < rows {
                    break;
                }
            } else {
                kept += rows;
            }
            page_start += rows;
        }
        Ok(kept)
    }

    /// Each page's first value and row count in row group `group`.
    fn pages(&self, group: usize) -> Option<(ArrayRef, Vec<u64>)> {
        let metadata = self.reader.metadata();
        let (columns, offsets) = (metadata.column_index()?, metadata.offset_index()?);
        let groups = [group];
        let mins = self
            .converter
            .data_page_mins(columns, offsets, &groups)
            .ok()?;
        let rows = self
            .converter
            .data_page_row_counts(offsets, metadata.row_groups(), &groups)
            .ok()??;
        if rows.null_count() > 0 || rows.len() != mins.len() {
            return None;
        }
        let mins = cast_to(mins, self.data_type).ok()?;
        Some((mins, rows.values().to_vec()))
    }

    /// How many of `rows` rows of row group `group`, from its row
    /// `first`, `prefix` keeps, reading the column.
    async fn decoded(&self, group: usize, first: u64, rows: u64, prefix: &Prefix) -> Result<u64> {
        let Some(leaf) = self.leaf else {
            return Ok(0);
        };
        let reader = Ranges {
            store: Arc::clone(self.store),
            file: self.file.clone(),
            metadata: Arc::clone(self.reader.metadata()),
        };
        let selection: RowSelection = [
            RowSelector::skip(first as usize),
            RowSelector::select(rows as usize),
        ]
        .into_iter()
        .filter(|s| s.row_count > 0)
        .collect::<Vec<_>>()
        .into();
        let descriptor = self.reader.metadata().file_metadata().schema_descr();
        let projection = ProjectionMask::leaves(descriptor, [leaf]);
        let mut stream =
            ParquetRecordBatchStreamBuilder::new_with_metadata(reader, self.reader.clone())
                .with_row_groups(vec![group])
                .with_projection(projection)
                .with_row_selection(selection)
                .with_batch_size(rows.max(1) as usize)
                .build()
                .map_err(|e| DataFusionError::ParquetError(Box::new(e)))?;
        let mut kept = 0;
        while let Some(batch) = stream
            .try_next()
            .await
            .map_err(|e| DataFusionError::ParquetError(Box::new(e)))?
        {
            let values = cast_to(Arc::clone(batch.column(0)), self.data_type)?;
            kept += prefix.count(&values)? as u64;
        }
        Ok(kept)
    }
}

/// Byte ranges of one file, for the Parquet reader, whose footer is
/// already known.
struct Ranges {
    store: Arc<dyn ObjectStore>,
    file: ObjectMeta,
    metadata: Arc<ParquetMetaData>,
}

impl AsyncFileReader for Ranges {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.store
                .get_range(&self.file.location, range)
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            self.store
                .get_ranges(&self.file.location, &ranges)
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        let metadata = Arc::clone(&self.metadata);
        async move { Ok(metadata) }.boxed()
    }
}

fn cast_to(values: ArrayRef, data_type: &DataType) -> Result<ArrayRef> {
    if values.data_type() == data_type {
        return Ok(values);
    }
    Ok(arrow::compute::cast(&values, data_type)?)
}

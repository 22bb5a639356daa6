//! The Parquet backend: `<key>.parquet`, one file (what we and pandas write)
//! or a directory of part files (what dask writes).
//!
//! Writing streams ([`files::write_encoded`]): batches are encoded as they
//! arrive (the caller sorts by the time column upstream, in the plan, where
//! sorting can spill) into zstd-compressed row groups of [`ROW_GROUP_ROWS`]
//! with page statistics, so memory holds about one row group whatever the
//! result's size.
//!
//! Reading: [`files::FileEntry`] scans the files with the time window and
//! `WHERE` filters as a pruning predicate over row-group and page
//! statistics.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::physical_plan::{FileSource, ParquetSource};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::PhysicalExpr;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::files::{self, Encoder, FileFormatSource};
use crate::{Backend, Location, WriteOptions, Written};

/// Rows per row group. Small enough that a one-month window over two years of
/// six-hourly grids touches a few percent of the groups, large enough that
/// per-group overhead stays negligible.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;

/// Rows per data page; the page index lets a scan skip pages inside a group.
const PAGE_ROWS: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, Default)]
pub struct ParquetBackend;

#[derive(Debug, Clone, Copy)]
struct ParquetFormat;

impl FileFormatSource for ParquetFormat {
    fn source(
        &self,
        session: &dyn Session,
        schema: SchemaRef,
        predicate: Option<Arc<dyn PhysicalExpr>>,
    ) -> Arc<dyn FileSource> {
        let mut source = ParquetSource::new(schema)
            .with_table_parquet_options(session.table_options().parquet.clone());
        if let Some(predicate) = predicate {
            source = source.with_predicate(predicate);
        }
        Arc::new(source)
    }

    fn prunes(&self) -> bool {
        true
    }
}

/// The writer settings that make windows prune.
pub(crate) fn properties(schema: &SchemaRef, options: &WriteOptions) -> Result<WriterProperties> {
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
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_sorting_columns(sorting)
        .build())
}

/// Parquet into memory; row groups are flushed to the buffer as they fill.
struct ParquetEncoder(ArrowWriter<Vec<u8>>);

impl Encoder for ParquetEncoder {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        Ok(self.0.write(batch)?)
    }

    fn buffered(&self) -> usize {
        self.0.inner().len()
    }

    fn take(&mut self) -> Vec<u8> {
        std::mem::take(self.0.inner_mut())
    }

    fn finish(&mut self) -> Result<u64> {
        Ok(self.0.finish()?.num_row_groups() as u64)
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
        let schema = data.schema();
        let properties = properties(&schema, options)?;
        let encoder = ArrowWriter::try_new(Vec::new(), schema, Some(properties))?;
        files::write_encoded(
            at,
            data,
            ParquetEncoder(encoder),
            options.progress.as_deref(),
        )
        .await
    }

    async fn delete(&self, at: &Location) -> Result<()> {
        files::delete(at).await
    }
}

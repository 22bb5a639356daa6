//! The Parquet backend.
//!
//! Writing: [`encode`] sorts the whole result by the time column (when there
//! is one) and encodes it into one zstd-compressed file with small row groups
//! and page statistics, so that a time window prunes most of the file. The
//! caller uploads it with a single `put`, which object stores make visible
//! atomically: a reader sees the old object or the new one, never a torn one.
//!
//! Reading: an entry is either one file (what we and pandas write) or a
//! directory of part files (what dask writes). [`locate`] finds them and
//! [`scan_plan`] builds a
//! DataFusion `DataSourceExec` over those files directly, rather than through
//! a `ListingTable`, so that no listing cache can serve a stale file size
//! after an entry is overwritten.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use datafusion::common::config::TableParquetOptions;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::object_store::ObjectStoreUrl;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_plan::{ExecutionPlan, PhysicalExpr};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};

/// Rows per row group. Small enough that a one-month window over two years of
/// six-hourly grids touches a few percent of the groups, large enough that
/// per-group overhead stays negligible.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;

/// Rows per data page; the page index lets a scan skip pages inside a group.
const PAGE_ROWS: usize = 8 * 1024;

/// What a write produced, for reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub rows: usize,
    pub row_groups: usize,
    pub bytes: usize,
}

/// Encodes `batches` as one Parquet file, sorted by `sort_by` if given.
pub fn encode(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    sort_by: Option<&str>,
) -> Result<(Bytes, Written)> {
    let mut data = concat_batches(schema, batches)?;
    let mut sorting = None;
    if let Some(column) = sort_by {
        let index = schema.index_of(column)?;
        let order = sort_to_indices(data.column(index), None, None)?;
        data = take_record_batch(&data, &order)?;
        sorting = Some(vec![SortingColumn {
            column_idx: index as i32,
            descending: false,
            nulls_first: true,
        }]);
    }
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_sorting_columns(sorting)
        .build();
    let mut buffer = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buffer, Arc::clone(schema), Some(properties))?;
    // Writing in slices keeps the writer's page buffers small; the row group
    // boundaries are decided by the properties, not by these slices.
    let mut offset = 0;
    while offset < data.num_rows() {
        let length = ROW_GROUP_ROWS.min(data.num_rows() - offset);
        writer.write(&data.slice(offset, length))?;
        offset += length;
    }
    let metadata = writer.close()?;
    let written = Written {
        rows: data.num_rows(),
        row_groups: metadata.num_row_groups(),
        bytes: buffer.len(),
    };
    Ok((Bytes::from(buffer), written))
}

/// Finds the files of the entry stored at `path`: the object itself, or the
/// `.parquet` part files under it when it is a directory. `None` when nothing
/// is there.
pub async fn locate(store: &dyn ObjectStore, path: &Path) -> Result<Option<Vec<ObjectMeta>>> {
    match store.head(path).await {
        // Report the location as asked: some stores behind a PrefixStore
        // answer with the full, unprefixed key, which the scan would then
        // prefix a second time.
        Ok(meta) => {
            return Ok(Some(vec![ObjectMeta {
                location: path.clone(),
                ..meta
            }]))
        }
        Err(object_store::Error::NotFound { .. }) => {}
        // A local directory answers `head` with an error of its own; fall
        // through to the listing, which tells a directory from nothing.
        Err(_) => {}
    }
    let mut parts: Vec<ObjectMeta> = store
        .list(Some(path))
        .try_filter(|meta| {
            let name = meta.location.filename().unwrap_or_default();
            futures::future::ready(name.ends_with(".parquet") && !name.starts_with('_'))
        })
        .try_collect()
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    if parts.is_empty() {
        return Ok(None);
    }
    parts.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(Some(parts))
}

/// What a scan should read.
pub struct ScanRequest {
    /// Where the tier's store is registered in the runtime environment.
    pub store_url: ObjectStoreUrl,
    pub files: Vec<ObjectMeta>,
    /// The schema the entry is read as (the function's declared schema).
    pub schema: SchemaRef,
    pub options: TableParquetOptions,
    /// A predicate over `schema`, used to prune row groups and pages.
    pub predicate: Option<Arc<dyn PhysicalExpr>>,
    pub projection: Option<Vec<usize>>,
    pub limit: Option<usize>,
    /// How many partitions the scan should have.
    pub partitions: usize,
}

/// Builds the physical scan of an entry.
pub fn scan_plan(request: ScanRequest) -> Result<Arc<dyn ExecutionPlan>> {
    let mut source =
        ParquetSource::new(Arc::clone(&request.schema)).with_table_parquet_options(request.options);
    if let Some(predicate) = request.predicate {
        source = source.with_predicate(predicate);
    }
    let config = FileScanConfigBuilder::new(request.store_url, Arc::new(source))
        .with_file_groups(split_into_groups(&request.files, request.partitions.max(1)))
        .with_projection_indices(request.projection)?
        .with_limit(request.limit)
        .build();
    Ok(DataSourceExec::from_data_source(config))
}

/// Splits the files into exactly `partitions` groups of byte ranges of about
/// equal size, so the scan has as many partitions as the plan above it
/// declared. Parquet assigns each row group to the range holding its middle,
/// so ranges never read a group twice.
fn split_into_groups(files: &[ObjectMeta], partitions: usize) -> Vec<FileGroup> {
    let total: u64 = files.iter().map(|f| f.size).sum();
    let per_group = total.div_ceil(partitions as u64).max(1);
    let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); partitions];
    let mut group = 0;
    let mut room = per_group;
    for file in files {
        let mut start = 0;
        while start < file.size {
            let end = (start + room).min(file.size);
            groups[group].push(
                PartitionedFile::new(file.location.to_string(), file.size)
                    .with_range(start as i64, end as i64),
            );
            room -= end - start;
            start = end;
            if room == 0 && group + 1 < partitions {
                group += 1;
                room = per_group;
            } else if room == 0 {
                room = u64::MAX;
            }
        }
    }
    groups.into_iter().map(FileGroup::new).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, size: u64) -> ObjectMeta {
        ObjectMeta {
            location: Path::from(name),
            last_modified: Default::default(),
            size,
            e_tag: None,
            version: None,
        }
    }

    #[test]
    fn ranges_cover_every_byte_once_in_the_requested_number_of_groups() {
        let files = vec![meta("a.parquet", 1000), meta("b.parquet", 10)];
        let groups = split_into_groups(&files, 3);
        assert_eq!(groups.len(), 3);
        let mut covered: Vec<(String, i64, i64)> = groups
            .iter()
            .flat_map(|g| g.files().iter())
            .map(|f| {
                let range = f.range.as_ref().unwrap();
                (f.object_meta.location.to_string(), range.start, range.end)
            })
            .collect();
        covered.sort();
        let a: i64 = covered
            .iter()
            .filter(|c| c.0 == "a.parquet")
            .map(|c| c.2 - c.1)
            .sum();
        let b: i64 = covered
            .iter()
            .filter(|c| c.0 == "b.parquet")
            .map(|c| c.2 - c.1)
            .sum();
        assert_eq!((a, b), (1000, 10));
    }
}

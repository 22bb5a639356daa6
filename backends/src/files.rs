//! What the file formats share: finding an entry's files, reading them as a
//! DataFusion scan split into byte ranges, and uploading a new file so that
//! it appears whole or not at all.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::SortOptions;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use bytes::Bytes;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::{DFSchema, DataFusionError, Result};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, FileSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::expressions::col as physical_col;
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::filter::FilterExecBuilder;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, PhysicalExpr};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

use crate::bounds::Bounds;
use crate::coverage::{window_of, Coverage};
use crate::{Location, Part, WriteMode, WriteOptions, Written};

pub use crate::upload::{Upload, UPLOAD_CHUNK};

/// Finds the files of the entry at `path`: the object itself, or the part
/// files ending in `.<extension>` under it when it is a directory (what dask
/// writes). `None` when nothing is there.
pub async fn locate(
    store: &dyn ObjectStore,
    path: &Path,
    extension: &str,
) -> Result<Option<Vec<ObjectMeta>>> {
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
    let suffix = format!(".{extension}");
    let mut parts: Vec<ObjectMeta> = store
        .list(Some(path))
        .try_filter(|meta| {
            let name = meta.location.filename().unwrap_or_default();
            futures::future::ready(name.ends_with(&suffix) && !name.starts_with('_'))
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

/// Finds the parts `parts` lists of the entry at `path`, in that order,
/// with one LIST. A listed part that is missing is an error: the metadata
/// vouches for data that is gone.
pub async fn locate_parts(
    store: &dyn ObjectStore,
    path: &Path,
    parts: &[Part],
) -> Result<Vec<ObjectMeta>> {
    let mut found: std::collections::HashMap<String, ObjectMeta> = store
        .list(Some(path))
        .map_ok(|meta| {
            (
                meta.location.filename().unwrap_or_default().to_string(),
                meta,
            )
        })
        .try_collect()
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    parts
        .iter()
        .map(|part| {
            found.remove(&part.name).ok_or_else(|| {
                DataFusionError::Execution(format!(
                    "part {} of the entry at {path} is missing; recompute the entry",
                    part.name
                ))
            })
        })
        .collect()
}

/// Where a write of `options` goes: the entry's own path, or a new part
/// under it (with the part's name) when the entry is stored as parts. A new
/// entry of parts replaces whatever was at the path first, unless the write
/// amends it (then the parts it replaces go after the commit, see
/// [`remove_parts`]). On a local folder a part is written beside the
/// directory ([`staging`]) and moved in by [`place_part`], so that readers
/// listing the directory (Python's) never meet a half-written file.
pub async fn write_target(
    at: &Location,
    options: &WriteOptions,
    extension: &str,
) -> Result<(Location, Option<String>)> {
    if !options.parts && options.mode != WriteMode::Append {
        return Ok((at.clone(), None));
    }
    if options.mode == WriteMode::Replace && !options.amends {
        delete(at).await?;
    }
    let name = part_name(extension);
    let mut target = at.clone();
    target.path = match at.folder {
        Some(_) => staging(&at.path).join(name.as_str()),
        None => at.path.clone().join(name.as_str()),
    };
    Ok((target, Some(name)))
}

/// The folder parts of the entry at `path` are written in on a local
/// folder before they move into the entry's directory.
pub fn staging(path: &Path) -> Path {
    Path::from(format!("{path}.staging"))
}

/// Moves the part written at `written` into the entry at `at`, when it was
/// written elsewhere (see [`write_target`]).
pub async fn place_part(at: &Location, written: &Location, part: Option<&str>) -> Result<()> {
    let Some(part) = part else { return Ok(()) };
    let placed = at.path.clone().join(part);
    if written.path == placed {
        return Ok(());
    }
    at.store
        .rename(&written.path, &placed)
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))
}

/// A part name no other write picks: the time and a per-process count.
fn part_name(extension: &str) -> String {
    static WRITTEN: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let count = WRITTEN.fetch_add(1, Ordering::Relaxed);
    format!(
        "part-{now:016x}-{:08x}{count:04x}.{extension}",
        std::process::id()
    )
}

/// Removes the parts under the entry at `at` that `keep` does not name.
pub async fn remove_parts(at: &Location, keep: &[String]) -> Result<()> {
    let parts: Vec<ObjectMeta> = at
        .store
        .list(Some(&at.path))
        .try_collect()
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    for part in parts {
        let name = part.location.filename().unwrap_or_default();
        if keep.iter().any(|k| k == name) {
            continue;
        }
        match at.store.delete(&part.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(DataFusionError::External(Box::new(e))),
        }
    }
    Ok(())
}

/// The stamp of an entry stored as one object ([`crate::Backend::stamp`]):
/// its ETag, or where the store keeps none, its modification time and
/// size. A directory of parts, or nothing, has none.
pub async fn stamp(at: &Location) -> Result<Option<String>> {
    match at.store.head(&at.path).await {
        Ok(meta) => Ok(Some(meta.e_tag.unwrap_or_else(|| {
            format!("{}-{}", meta.last_modified.timestamp_micros(), meta.size)
        }))),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(DataFusionError::External(Box::new(e))),
    }
}

/// Removes an entry's data, a file or a directory of parts. An object
/// store answers the delete of a directory's path as done, so its parts
/// are listed whatever the delete says.
pub async fn delete(at: &Location) -> Result<()> {
    // A local directory refuses the delete of its path; its parts go next.
    let _ = at.store.delete(&at.path).await;
    remove_parts(at, &[]).await
}

/// How a file format turns into a DataFusion file source.
#[async_trait]
pub trait FileFormatSource: fmt::Debug + Send + Sync + 'static {
    /// A source reading files of `store` as `schema`, pruning with
    /// `predicate` if the format can.
    fn source(
        &self,
        session: &dyn Session,
        store: Arc<dyn ObjectStore>,
        schema: SchemaRef,
        predicate: Option<Arc<dyn PhysicalExpr>>,
    ) -> Arc<dyn FileSource>;

    /// Can the format use a predicate to skip data?
    fn prunes(&self) -> bool;

    /// Can the format read exactly the rows of one file sorted by a column
    /// that [`Bounds`] on that column keep (in [`FileFormatSource::groups`])?
    fn reads_within_bounds(&self) -> bool {
        false
    }

    /// `files` split into at most `partitions` groups, when the format
    /// knows a better split than byte ranges ([`split_into_groups`]). With
    /// `bounds`, the groups say whether they read only the rows within
    /// them; where they do not (or there are none), the scan applies the
    /// bounds itself.
    async fn groups(
        &self,
        _session: &dyn Session,
        _store: &Arc<dyn ObjectStore>,
        _files: &[ObjectMeta],
        _partitions: usize,
        _bounds: Option<&Bounds>,
    ) -> Result<Option<Groups>> {
        Ok(None)
    }
}

/// A format's split of a scan's files ([`FileFormatSource::groups`]).
#[derive(Debug)]
pub struct Groups {
    pub groups: Vec<FileGroup>,
    /// Whether the groups read only the rows within the bounds the split
    /// was asked for: false when a file's order could not be trusted and
    /// it is read whole.
    pub within_bounds: bool,
}

/// A stored entry made of files, as a table.
///
/// The scan is built over the files this provider was opened with, rather
/// than through a `ListingTable`, so that no listing cache can serve a stale
/// file size after an entry is overwritten.
#[derive(Debug)]
pub struct FileEntry<F> {
    format: F,
    store_url: datafusion::datasource::object_store::ObjectStoreUrl,
    files: Vec<ObjectMeta>,
    schema: SchemaRef,
    /// The columns the rows were written sorted by (see
    /// [`Location::sort_order`]); every byte range of one file keeps it.
    sort_order: Vec<String>,
    /// For parts: the time each file's rows lie in, over `time_column`,
    /// so that a scan skips files outside its window unopened.
    covers: Vec<Option<Coverage>>,
    time_column: Option<String>,
    /// The column every file's rows ascend by, when known of several files
    /// ([`FileEntry::ascending_within_files`]): a scan then reads each
    /// file within a window's bounds, though it declares no order.
    ascending: Option<String>,
}

impl<F: FileFormatSource> FileEntry<F> {
    /// Says that every file's rows ascend by `column` (each was written
    /// sorted), so that a scan reads only the rows of each within a
    /// window's bounds, where the file says so too; the scan applies the
    /// window itself above any file that does not.
    pub fn ascending_within_files(mut self, column: Option<String>) -> Self {
        self.ascending = column;
        self
    }

    pub fn new(format: F, at: &Location, files: Vec<ObjectMeta>, schema: SchemaRef) -> Self {
        // Only a single file is known to be in order: parts of a directory
        // may interleave.
        let sort_order = if files.len() == 1 {
            at.sort_order.clone()
        } else {
            Vec::new()
        };
        let covers = match &at.parts {
            Some(parts) if parts.len() == files.len() => {
                parts.iter().map(|part| part.covers.clone()).collect()
            }
            _ => Vec::new(),
        };
        FileEntry {
            format,
            store_url: at.store_url.clone(),
            files,
            schema,
            sort_order,
            covers,
            time_column: at.time_column.clone(),
            ascending: None,
        }
    }

    /// The files a scan with `filters` reads: every part whose time may
    /// meet the window they keep.
    fn files_for(&self, filters: &[Expr]) -> Vec<ObjectMeta> {
        let Some(column) = self
            .time_column
            .as_deref()
            .filter(|_| !self.covers.is_empty())
        else {
            return self.files.clone();
        };
        let window = window_of(column, &self.schema, filters);
        self.files
            .iter()
            .zip(&self.covers)
            .filter(|(_, covers)| covers.as_ref().is_none_or(|c| c.overlaps(window)))
            .map(|(file, _)| file.clone())
            .collect()
    }

    /// The written order, over the full schema (DataFusion projects it).
    fn ordering(&self) -> Option<LexOrdering> {
        let keys = self
            .sort_order
            .iter()
            .map_while(|column| {
                let expr = physical_col(column, &self.schema).ok()?;
                Some(PhysicalSortExpr::new(
                    expr,
                    SortOptions {
                        descending: false,
                        nulls_first: false,
                    },
                ))
            })
            .collect::<Vec<_>>();
        LexOrdering::new(keys)
    }

    pub fn files(&self) -> &[ObjectMeta] {
        &self.files
    }

    /// The column whose comparisons with a literal the scan applies
    /// exactly: the single file's leading sort column, or the column each
    /// file ascends by, when the format reads within bounds.
    fn bounded_column(&self) -> Option<&str> {
        if !self.format.reads_within_bounds() {
            return None;
        }
        (self.sort_order.first())
            .or(self.ascending.as_ref())
            .map(String::as_str)
    }

    /// The bounds a scan with `filters` reads within: over the single
    /// file's sort column, or over the column each file ascends by, where
    /// only the files that say so keep it (the entry's record of the order
    /// is not the files' own).
    fn bounds(&self, filters: &[Expr]) -> Option<Bounds> {
        let column = self.bounded_column()?;
        let bounds = Bounds::from_filters(column, &self.schema, filters)?;
        Some(match self.sort_order.is_empty() {
            true => bounds.in_marked_files(),
            false => bounds,
        })
    }

    /// `scan`, a scan that did not read only the rows within `bounds`,
    /// with the comparisons of `filters` that make them applied above it,
    /// so that what the provider said exact stays exact. The scan reads the
    /// bounded column for them and no more than `limit` rows pass.
    fn apply_bounds(
        &self,
        session: &dyn Session,
        scan: Arc<dyn ExecutionPlan>,
        bounds: &Bounds,
        filters: &[Expr],
        projection: Option<&Vec<usize>>,
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = scan.schema();
        let applied = (filters.iter())
            .filter(|filter| Bounds::applies(&bounds.column, &self.schema, filter))
            .cloned();
        let Some(predicate) = conjunction(applied) else {
            return Ok(scan);
        };
        let predicate = session.create_physical_expr(predicate, &DFSchema::try_from(schema)?)?;
        let wanted = projection.map_or(self.schema.fields().len(), Vec::len);
        let filter = FilterExecBuilder::new(predicate, scan)
            .apply_projection(Some((0..wanted).collect()))?
            .with_fetch(limit)
            .build()?;
        Ok(Arc::new(filter))
    }

    /// `projection` with the bounded column of `bounds` added at its end
    /// when it lacks it, so that the bounds can be applied above the scan.
    fn with_bounded_column(
        &self,
        projection: Option<&Vec<usize>>,
        bounds: &Bounds,
    ) -> Result<Option<Vec<usize>>> {
        let Some(projection) = projection else {
            return Ok(None);
        };
        let column = self.schema.index_of(&bounds.column)?;
        let mut projection = projection.clone();
        if !projection.contains(&column) {
            projection.push(column);
        }
        Ok(Some(projection))
    }
}

#[async_trait]
impl<F: FileFormatSource> TableProvider for FileEntry<F> {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Comparisons of the bounded column ([`FileEntry::bounded_column`])
    /// with a literal are exact: the format reads only the rows within
    /// them, or the scan applies them where it could not. Other filters
    /// prune where the format can.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        let bounded = self.bounded_column();
        Ok(filters
            .iter()
            .map(|filter| match bounded {
                Some(column) if Bounds::applies(column, &self.schema, filter) => {
                    TableProviderFilterPushDown::Exact
                }
                _ if self.format.prunes() => TableProviderFilterPushDown::Inexact,
                _ => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        session: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let predicate = match conjunction(filters.iter().cloned()) {
            Some(expr) if self.format.prunes() => Some(
                session.create_physical_expr(expr, &DFSchema::try_from(self.schema.clone())?)?,
            ),
            _ => None,
        };
        let store = session.runtime_env().object_store(&self.store_url)?;
        let partitions = session.config().target_partitions().max(1);
        let files = self.files_for(filters);
        let bounds = self.bounds(filters);
        let grouped = (self.format)
            .groups(session, &store, &files, partitions, bounds.as_ref())
            .await?;
        // Bounds the groups do not keep are applied above the scan.
        let unkept = bounds.filter(|_| !grouped.as_ref().is_some_and(|g| g.within_bounds));
        let groups = match grouped {
            Some(grouped) => grouped.groups,
            None => split_into_groups(&files, partitions),
        };
        let source = self
            .format
            .source(session, store, Arc::clone(&self.schema), predicate);
        let ordering = self.ordering();
        let read = match &unkept {
            Some(bounds) => self.with_bounded_column(projection, bounds)?,
            None => projection.cloned(),
        };
        let config = FileScanConfigBuilder::new(self.store_url.clone(), source)
            .with_file_groups(groups)
            .with_projection_indices(read)?
            .with_output_ordering(ordering.into_iter().collect())
            .with_limit(limit.filter(|_| unkept.is_none()))
            .build();
        let scan = DataSourceExec::from_data_source(config);
        match &unkept {
            Some(bounds) => self.apply_bounds(session, scan, bounds, filters, projection, limit),
            None => Ok(scan),
        }
    }
}

/// In a session's configuration: scans made in it may be sent to other
/// processes (a cluster's workers), so a format builds them only from what
/// travels with a plan (files and byte ranges), never from state of this
/// process attached to a file (row group selections): those stay behind
/// when the plan is sent, and a worker would read whole files instead.
#[derive(Debug, Clone, Copy, Default)]
pub struct PortableScans;

impl PortableScans {
    /// Whether scans made in `session` must be portable.
    pub fn wanted(session: &dyn Session) -> bool {
        session.config().get_extension::<PortableScans>().is_some()
    }
}

/// Splits the files into exactly `partitions` groups of byte ranges of about
/// equal size, so the scan has as many partitions as the plan above it
/// expects. Parquet and Arrow IPC readers assign each block to the range
/// holding its start or middle, so ranges never read a block twice.
pub fn split_into_groups(files: &[ObjectMeta], partitions: usize) -> Vec<FileGroup> {
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
                // The whole ObjectMeta, modification time included: the
                // metadata cache checks it to tell a rewrite from the file
                // it cached.
                PartitionedFile::new_from_meta(file.clone()).with_range(start as i64, end as i64),
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

/// Rows [`prefetch`] reads ahead: two Parquet row groups. With less than a
/// row group ahead the compute stops whenever the writer waits for a row
/// group to encode (with 2 batches ahead the README's weekly miss took 13%
/// longer). Counted in rows, not batches: a body may yield small batches (a
/// cross join yields one per row of its build side, 1325 rows on the
/// README grid), and sixteen of those are a third of a row group.
const PREFETCH_ROWS: usize = 2 * 64 * 1024;

/// Polls `data` on a task of its own, [`PREFETCH_ROWS`] ahead, so that
/// whatever computes the stream and whatever encodes it run on different
/// cores. Dropping the returned stream stops the task.
pub fn prefetch(mut data: SendableRecordBatchStream) -> SendableRecordBatchStream {
    let schema = data.schema();
    let room = Arc::new(tokio::sync::Semaphore::new(PREFETCH_ROWS));
    let (to, from) = tokio::sync::mpsc::unbounded_channel();
    let task = SpawnedTask::spawn(async move {
        while let Some(batch) = data.next().await {
            // A batch larger than the room takes all of it.
            let rows = batch.as_ref().map_or(1, RecordBatch::num_rows);
            let rows = rows.clamp(1, PREFETCH_ROWS) as u32;
            let Ok(taken) = Arc::clone(&room).acquire_many_owned(rows).await else {
                break;
            };
            if to.send((batch, taken)).is_err() {
                break;
            }
            // Lets a task woken on this worker run while a compute that
            // never waits keeps producing (see `passing` in nuthatch-udf).
            tokio::task::consume_budget().await;
        }
    });
    let stream = futures::stream::unfold((from, Some(task)), |(mut from, task)| async move {
        match from.recv().await {
            // The room a batch took is free again once it is handed over.
            Some((batch, _taken)) => Some((batch, (from, task))),
            // The task ended: it ends on its own when `data` does, and
            // otherwise panicked, which must not read as the end of the
            // rows (a short entry). Joining it passes the panic on.
            None => match task?.join_unwind().await {
                Ok(()) => None,
                Err(e) => Some((Err(DataFusionError::External(Box::new(e))), (from, None))),
            },
        }
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

/// A file format's writer, encoding into memory that [`write_encoded`]
/// drains to the store.
pub trait Encoder: Send {
    fn write(&mut self, batch: &RecordBatch) -> Result<()>;
    /// Bytes encoded and not yet taken.
    fn buffered(&self) -> usize;
    /// Takes the bytes encoded so far.
    fn take(&mut self) -> Vec<u8>;
    /// Ends the file (footer, metadata); returns how many parts it has.
    fn finish(&mut self) -> Result<u64>;
}

/// Streams `data` through `encoder` into a new object at `at`: batches are
/// encoded as they arrive (the input polled on its own task, see
/// [`prefetch`]) and the bytes go up in [`UPLOAD_CHUNK`] pieces, so memory
/// holds about one encoder buffer and one chunk whatever the result's size.
/// Any error aborts the upload. `progress` gets the bytes encoded so far
/// after every batch.
pub async fn write_encoded(
    at: &Location,
    data: SendableRecordBatchStream,
    mut encoder: impl Encoder,
    options: &WriteOptions,
) -> Result<Written> {
    let progress = options.progress.as_deref();
    let mut upload = Upload::start(at, options).await?;
    let mut data = prefetch(data);
    let mut rows = 0u64;
    let encoded: Result<u64> = async {
        while let Some(batch) = data.next().await {
            let batch = batch?;
            if batch.num_rows() == 0 {
                continue;
            }
            rows += batch.num_rows() as u64;
            encoder.write(&batch)?;
            if encoder.buffered() >= UPLOAD_CHUNK {
                upload.put(Bytes::from(encoder.take())).await?;
            }
            if let Some(progress) = progress {
                let encoded = upload.bytes() + encoder.buffered() as u64;
                progress.bytes.store(encoded, Ordering::Relaxed);
            }
        }
        let parts = encoder.finish()?;
        upload.put(Bytes::from(encoder.take())).await?;
        Ok(parts)
    }
    .await;
    match encoded {
        Ok(parts) => {
            let bytes = upload.finish(rows).await?;
            Ok(Written {
                rows,
                bytes,
                parts,
                ..Written::default()
            })
        }
        Err(e) => {
            upload.abort().await;
            Err(e)
        }
    }
}

/// Opens the entry at `at` as a [`FileEntry`] of `format` when its files are
/// there.
pub async fn open_entry<F: FileFormatSource>(
    format: F,
    extension: &str,
    at: &Location,
    schema: SchemaRef,
) -> Result<Option<Arc<dyn TableProvider>>> {
    if let Some(parts) = &at.parts {
        let found = locate_parts(at.store.as_ref(), &at.path, parts).await?;
        return Ok(Some(Arc::new(FileEntry::new(format, at, found, schema))));
    }
    let Some(mut found) = locate(at.store.as_ref(), &at.path, extension).await? else {
        return Ok(None);
    };
    if let (Some(micros), [file]) = (at.committed, found.as_mut_slice()) {
        if let Some(committed) = chrono::DateTime::from_timestamp_micros(micros) {
            file.last_modified = committed;
        }
    }
    Ok(Some(Arc::new(FileEntry::new(format, at, found, schema))))
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
        let bytes = |name: &str| -> i64 {
            covered
                .iter()
                .filter(|c| c.0 == name)
                .map(|c| c.2 - c.1)
                .sum()
        };
        assert_eq!((bytes("a.parquet"), bytes("b.parquet")), (1000, 10));
    }
}

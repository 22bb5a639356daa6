//! The Zarr backend (feature `zarr`): gridded results as Zarr stores,
//! `<key>.zarr/`, the layout Python nuthatch writes through xarray.
//!
//! - [`store`] opens what is there: Zarr v3 (consolidated or not) and
//!   Zarr v2 (`.zmetadata`, or `.zarray` per array), through `zarrs` on the
//!   tier's own `object_store`.
//! - [`read`] serves a store as a table whose rows are grid cells, turning
//!   filters on dimension columns into the chunks to read.
//! - [`write`] streams a sorted result into a v3 store, a slab of chunks at
//!   a time.
//! - [`cf`] decodes and encodes time, packing and sentinels as xarray does.
//!
//! A store is many objects, so unlike the single-file formats its write is
//! not atomic by itself: the chunks go up, and the root `zarr.json` last. A
//! first write goes straight to the entry's path; the catalog puts its
//! record after. A replacement is written whole beside the entry first
//! (`<key>.zarr.next/<copy>/`), the catalog's pending record then sends
//! readers there, and only then is the store in place cleared and the
//! staged one copied in (hard links on a local folder, server-side copies
//! on S3; Python's readers need the store at its own path). The staged
//! copy goes once the record is confirmed. So a replacement killed at any
//! moment leaves the old store readable, or the new one; copying rather
//! than writing in place costs a second pass over the objects, no
//! re-encoding. A failed write removes what it wrote.
//!
//! A grid grows in place along its first dimension ([`WriteMode::Append`],
//! for rows from an instant on: after the time the entry covers, or over a
//! provisional tail computed again, whose old steps are dropped): the
//! slabs before the one holding that instant stay as they are, the rows of
//! that slab before it are read back and written again with the new rows,
//! and the arrays' metadata and the root `zarr.json` go last. Until then
//! readers see the old grid (the chunks an extension rewrites hold the same
//! old cells; only a provisional tail's cells may already be revised), and
//! a growth that fails leaves the old grid readable under the old record.

pub mod cf;
mod columns;
mod layout;
pub mod read;
pub mod store;
pub mod write;

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::common::{plan_err, DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use futures::{StreamExt, TryStreamExt};
use object_store::prefix::PrefixStore;
use zarrs::storage::AsyncReadableWritableListableStorageTraits;
use zarrs_object_store::AsyncObjectStore;

use crate::fidelity::Loss;
use crate::{Backend, Commit, Layout, Location, WriteMode, WriteOptions, Written};

pub use read::{ZarrScan, ZarrTable};
pub use write::DEFAULT_CHUNK_CELLS;

#[derive(Debug, Clone, Copy, Default)]
pub struct ZarrBackend;

/// zarrs' view of the store under the entry's path.
fn storage(at: &Location) -> Arc<dyn AsyncReadableWritableListableStorageTraits> {
    Arc::new(AsyncObjectStore::new(PrefixStore::new(
        Arc::clone(&at.store),
        at.path.clone(),
    )))
}

#[async_trait]
impl Backend for ZarrBackend {
    fn name(&self) -> &'static str {
        "zarr"
    }

    fn extension(&self) -> &'static str {
        "zarr"
    }

    fn commit(&self) -> Commit {
        Commit::InPlace
    }

    fn grows_at_end(&self) -> bool {
        true
    }

    fn grid(&self) -> bool {
        true
    }

    fn check_layout(&self, layout: &Layout<'_>) -> Result<()> {
        if layout.dimensions.is_empty() {
            return plan_err!(
                "a Zarr entry is a grid: name its dimensions, outermost first, with \
                 dimensions = (time, lat, lon) (.dimensions([...]) in Rust)"
            );
        }
        if !layout.order.is_empty() {
            return plan_err!(
                "a Zarr entry is read chunk by chunk, in no row order; drop order_by, \
                 or store with another backend"
            );
        }
        Ok(())
    }

    /// Zarr has no nulls: a missing cell is the array's fill value, and a
    /// float's NaN is missing, as in xarray (see [`cf`]).
    fn losses(&self, _at: &Location, field: &Field) -> Vec<Loss> {
        let loss = match field.data_type() {
            DataType::Float16 | DataType::Float32 | DataType::Float64 => Loss::NanAsNull,
            // numpy's NaT, and CF time of years 1 to 9999.
            DataType::Timestamp(..) => {
                return vec![Loss::FillAsNull(i64::MIN.into()), Loss::BeyondYears]
            }
            DataType::Boolean => Loss::NullAsFalse,
            t => match columns::integer_fill(t) {
                Some(fill) => Loss::FillAsNull(fill),
                None => return Vec::new(),
            },
        };
        vec![loss]
    }

    async fn open(
        &self,
        at: &Location,
        schema: SchemaRef,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(opened) = store::open(&at.store, &at.path, storage(at)).await? else {
            return Ok(None);
        };
        let location = format!("{}{}", at.store_url.as_str(), at.path);
        let table = ZarrTable::open(opened, schema, location).await?;
        Ok(Some(Arc::new(table)))
    }

    async fn write(
        &self,
        at: &Location,
        data: SendableRecordBatchStream,
        options: &WriteOptions,
    ) -> Result<Written> {
        if options.mode == WriteMode::Append {
            return grow(at, data, options).await;
        }
        match &options.before_publish {
            Some(hook) => replace_staged(at, data, options, hook).await,
            None => write_whole(at, data, options).await,
        }
    }

    /// Publishing copies the staged store into place.
    fn publishes_late(&self) -> bool {
        true
    }

    async fn discard_staged(&self, at: &Location) -> Result<()> {
        write::clear(&at.store, &staged_folder(&at.path)).await
    }

    async fn delete(&self, at: &Location) -> Result<()> {
        write::clear(&at.store, &at.path).await
    }
}

/// Where replacements of the entry at `path` are staged, each in a folder
/// of its own ([`replace_staged`]).
pub fn staged_folder(path: &object_store::path::Path) -> object_store::path::Path {
    object_store::path::Path::from(format!("{path}.next"))
}

/// Replaces the entry at `at` without its old store going while the new
/// one is computed: the new store is written whole under
/// [`staged_folder`], the write's before-publish step is told where (the
/// catalog's pending record then points readers there), and only then is
/// the old store cleared and the staged one copied into place. The staged
/// copy stays until the catalog has confirmed the new record
/// ([`Backend::discard_staged`]).
async fn replace_staged(
    at: &Location,
    data: SendableRecordBatchStream,
    options: &WriteOptions,
    hook: &crate::BeforePublish,
) -> Result<Written> {
    static STAGED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = STAGED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("{nanos:x}-{:x}-{n}", std::process::id());
    let staged = Location {
        path: staged_folder(&at.path).join(name.as_str()),
        ..at.clone()
    };
    let written = write_whole(&staged, data, options).await?;
    let published = crate::Published {
        rows: written.rows,
        bytes: Some(written.bytes),
        staged: Some(staged.path.clone()),
    };
    if let Err(e) = hook.run(published).await {
        let _ = write::clear(&at.store, &staged.path).await;
        return Err(e);
    }
    let started = std::time::Instant::now();
    write::clear(&at.store, &at.path).await?;
    write::copy_store(&at.store, &staged.path, &at.path).await?;
    tracing::debug!(path = %at.path, chunks = written.parts, elapsed = ?started.elapsed(), "copied the staged store into place");
    Ok(written)
}

/// Writes `data` as the whole store at `at`, clearing what is there.
async fn write_whole(
    at: &Location,
    data: SendableRecordBatchStream,
    options: &WriteOptions,
) -> Result<Written> {
    let mut grid = write::GridWriter::new(
        storage(at),
        Arc::clone(&at.store),
        at.path.clone(),
        data.schema(),
        options,
    )?;
    write::clear(&at.store, &at.path).await?;
    let written = feed(&mut grid, Vec::new(), data).await;
    let finished = match written {
        Ok(()) => grid.finish().await,
        Err(e) => Err(e),
    };
    let (rows, chunks) = match finished {
        Ok(counts) => counts,
        Err(e) => {
            // Nothing vouches for a half-written store; remove it.
            if let Err(cleanup) = write::clear(&at.store, &at.path).await {
                tracing::warn!(path = %at.path, "removing a failed Zarr write: {cleanup}");
            }
            return Err(e);
        }
    };
    let bytes = at
        .store
        .list(Some(&at.path))
        .try_fold(0u64, |sum, meta| {
            futures::future::ready(Ok(sum + meta.size))
        })
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    Ok(Written::whole(options, rows, bytes, chunks))
}

/// Pushes `first`, then `data`, into `grid`.
async fn feed(
    grid: &mut write::GridWriter,
    first: Vec<arrow::array::RecordBatch>,
    data: SendableRecordBatchStream,
) -> Result<()> {
    for batch in first {
        grid.push(batch).await?;
    }
    let mut data = crate::files::prefetch(data);
    while let Some(batch) = data.next().await {
        grid.push(batch?).await?;
    }
    Ok(())
}

/// Grows the grid at `at` by the rows of `data`, which lie after what the
/// entry covers (see the module docs). Values of the first dimension the
/// store has from the start of the added time on were left by a growth
/// that never committed; they are dropped, and the new rows take their
/// place.
async fn grow(
    at: &Location,
    data: SendableRecordBatchStream,
    options: &WriteOptions,
) -> Result<Written> {
    use datafusion::logical_expr::{col, lit};
    use datafusion::prelude::SessionContext;

    let schema = data.schema();
    let missing = || DataFusionError::Execution(format!("no Zarr grid to grow at {}", at.path));
    let opened = store::open(&at.store, &at.path, storage(at))
        .await?
        .ok_or_else(missing)?;
    let location = format!("{}{}", at.store_url.as_str(), at.path);
    let table = Arc::new(ZarrTable::open(opened, Arc::clone(&schema), location).await?);
    let (dimensions, shape, coordinates) = table.grid();
    let (dimensions, coordinates) = (dimensions.to_vec(), coordinates.to_vec());
    let chunk_shape = table.chunk_shape().ok_or_else(missing)?;
    // Where the added time starts, as the first dimension's values.
    let added = options.covers.as_ref().map(|c| c.hull().start);
    let from = match added.flatten() {
        Some(micros) => {
            let at = datafusion::common::ScalarValue::TimestampMicrosecond(Some(micros), None);
            Some(at.cast_to(coordinates[0].data_type())?)
        }
        None => None,
    };
    // Stored values before it stay; the last partial slab is read back.
    let before = match &from {
        Some(from) => {
            let first = &coordinates[0];
            (0..first.len())
                .take_while(|i| {
                    datafusion::common::ScalarValue::try_from_array(first, *i)
                        .is_ok_and(|v| v < *from)
                })
                .count() as u64
        }
        None => shape[0],
    };
    let kept = before - before % chunk_shape[0];
    let mut reread = Vec::new();
    if kept < before {
        let ctx = SessionContext::new();
        ctx.register_object_store(at.store_url.as_ref(), Arc::clone(&at.store));
        let start =
            datafusion::common::ScalarValue::try_from_array(&coordinates[0], kept as usize)?;
        let mut frame = ctx
            .read_table(Arc::clone(&table) as Arc<dyn TableProvider>)?
            .filter(col(dimensions[0].as_str()).gt_eq(lit(start)))?;
        if let Some(from) = from {
            frame = frame.filter(col(dimensions[0].as_str()).lt(lit(from)))?;
        }
        let order = dimensions
            .iter()
            .map(|d| col(d.as_str()).sort(true, false))
            .collect();
        reread = frame.sort(order)?.collect().await?;
    }
    let reread_rows: u64 = reread.iter().map(|b| b.num_rows() as u64).sum();
    let existing = write::Existing {
        coordinates,
        chunk_shape,
        kept,
    };
    let mut grid = write::GridWriter::appending(
        storage(at),
        Arc::clone(&at.store),
        at.path.clone(),
        schema,
        options,
        existing,
    )?;
    feed(&mut grid, reread, data).await?;
    let (rows, chunks) = grid.finish().await?;
    Ok(Written {
        rows: rows - reread_rows,
        parts: chunks,
        ..Written::default()
    })
}

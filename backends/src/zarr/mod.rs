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
//! not atomic by itself: the old store is cleared first, the chunks go up,
//! and the root `zarr.json` last. What makes the entry appear whole is the
//! catalog's protocol around every backend's write: the old metadata row is
//! removed before, and the new one is put after this write returns. A
//! failed write removes what it wrote.

pub mod cf;
mod layout;
pub mod read;
pub mod store;
pub mod write;

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use futures::{StreamExt, TryStreamExt};
use object_store::prefix::PrefixStore;
use zarrs::storage::AsyncReadableWritableListableStorageTraits;
use zarrs_object_store::AsyncObjectStore;

use crate::{Backend, Commit, Location, WriteOptions, Written};

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
        let mut grid = write::GridWriter::new(
            storage(at),
            Arc::clone(&at.store),
            at.path.clone(),
            data.schema(),
            options,
        )?;
        write::clear(&at.store, &at.path).await?;
        let written: Result<()> = async {
            let mut data = crate::files::prefetch(data);
            while let Some(batch) = data.next().await {
                grid.push(batch?).await?;
            }
            Ok(())
        }
        .await;
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
        if let Some(progress) = &options.progress {
            progress
                .bytes
                .store(bytes, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(Written {
            rows,
            bytes,
            parts: chunks,
            ..Written::default()
        })
    }

    async fn delete(&self, at: &Location) -> Result<()> {
        write::clear(&at.store, &at.path).await
    }
}

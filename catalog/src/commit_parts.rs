//! An entry whose parts were written by others: the workers of a cluster,
//! each writing the rows of its share of a computed result as a part of
//! one entry, straight to the tier.
//!
//! The protocol is [`crate::commit`]'s, with the write handed out. The old
//! record goes first and the old data with it (a replacement owes nothing
//! to what was there), then the writers run; only once every one of them
//! has finished is one record committed, under the entry's lock, listing
//! every part. A writer that fails, or dies, fails the whole write: the
//! parts already written are removed, and no record ever pointed at them,
//! so readers see no entry and the next call computes again. Parts no
//! record lists (a writer killed after its part landed) are removed after
//! the commit, as for an entry that grows a part at a time.

use std::future::Future;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::common::DataFusionError;
use nuthatch_backends::{Backend, Location, Part, WriteOptions, Written};
use object_store::ObjectStoreExt;

use crate::commit::Target;
use crate::lineage::Provenance;
use crate::lock::EntryLock;
use crate::metastore::{data_path, metadata_dir, metadata_path};
use crate::time_range::TimeRange;
use crate::{Catalog, Entry, EntryId, Error, Result, Tier};

/// One part written by another process, under the entry's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenPart {
    /// Its file name under the entry's path.
    pub name: String,
    pub rows: u64,
    pub bytes: u64,
    /// The smallest and largest time of its rows, for a timeseries result.
    pub time: TimeRange,
}

impl Catalog {
    /// Stores the entry `id` on `tier` as the parts `write` has others
    /// write under the location it is handed (module docs). `options` are
    /// the write's as for [`Catalog::store`]; they must ask for parts, and
    /// replace the entry. Returns what was written, summed over the parts,
    /// and the new entry, opened to be read as `schema`; the record notes
    /// `provenance`.
    #[allow(clippy::too_many_arguments)]
    pub async fn store_parts<F, W>(
        &self,
        tier: &Tier,
        id: &EntryId,
        backend: &Arc<dyn Backend>,
        options: &WriteOptions,
        provenance: &Provenance,
        schema: &SchemaRef,
        write: F,
    ) -> Result<(Written, Entry)>
    where
        F: FnOnce(Location) -> W,
        W: Future<Output = std::result::Result<Vec<WrittenPart>, DataFusionError>>,
    {
        self.check_writable(tier, id)?;
        if !backend.parts() || !options.parts || options.amends {
            let unfit = "an entry written by others must be a new entry of parts".to_string();
            return Err(self.backend_error(
                backend.name(),
                id,
                tier,
                DataFusionError::Internal(unfit),
            ));
        }
        let meta_path = metadata_path(&id.key, id.namespace.as_deref(), backend.name());
        match tier.store().delete(&meta_path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Catalog::unwritable(tier, &meta_path, e)),
        }
        self.delete_null(tier, id).await?;
        let target = Target {
            tier,
            id,
            backend,
            options,
            path: data_path(&id.key, id.namespace.as_deref(), backend.extension()),
            at: tier.entry_location(&**backend, &id.key, id.namespace.as_deref()),
            columns: crate::columns_of(schema),
            provenance,
        };
        backend
            .delete(&target.at)
            .await
            .map_err(|e| self.backend_error(backend.name(), id, tier, e))?;
        let parts: Vec<WrittenPart> = match write(target.at.clone()).await {
            // A writer whose share was empty wrote an empty part; the entry
            // needs none of them, unless it is empty itself.
            Ok(parts) if parts.iter().any(|p| p.rows > 0) => {
                parts.into_iter().filter(|p| p.rows > 0).collect()
            }
            Ok(parts) => parts.into_iter().take(1).collect(),
            Err(source) => {
                // Whatever the writers left goes; no record points at it.
                let _ = backend.delete(&target.at).await;
                return Err(Error::ComputeFailed {
                    key: id.key.display().to_string(),
                    source: Box::new(source),
                });
            }
        };
        self.ensure_marker(tier).await?;
        let row = self.commit_written_parts(&target, &parts).await?;
        tracing::debug!(key = %id.key, tier = tier.name(), parts = parts.len(), "stored entry written as parts");
        let written = summed(&parts);
        let entry = self.open_stored(tier, id, backend, row, schema).await?;
        Ok((written, entry))
    }

    /// Commits one record listing `parts`, under the entry's lock, once
    /// each is there; then removes the parts it does not list.
    async fn commit_written_parts(
        &self,
        target: &Target<'_>,
        parts: &[WrittenPart],
    ) -> Result<crate::MetadataRow> {
        let (tier, id, backend) = (target.tier, target.id, target.backend);
        let lock_path =
            metadata_dir(&id.key, id.namespace.as_deref()).join(format!("{}.lock", backend.name()));
        let lock = EntryLock::acquire(tier, lock_path).await?;
        let committed = async {
            for part in parts {
                let path = target.at.path.clone().join(part.name.as_str());
                if let Err(e) = tier.store().head(&path).await {
                    return Err(Error::Conflict {
                        key: id.key.display().to_string(),
                        tier: tier.name().to_string(),
                        detail: format!("part {} written by a worker is gone: {e}", part.name),
                    });
                }
            }
            let mut range = TimeRange::default();
            for part in parts {
                range.widen(part.time.min, part.time.max);
            }
            let mut row = target.row(&summed(parts), None, range);
            row.recorded.parts = Some(
                parts
                    .iter()
                    .map(|part| Part {
                        name: part.name.clone(),
                        covers: target.options.covers.clone(),
                        rows: Some(part.rows),
                    })
                    .collect(),
            );
            // Each part keeps its own order; the entry as a whole has none.
            if parts.len() != 1 {
                row.recorded.sort_order.clear();
            }
            self.put_row(target, &row).await?;
            Ok(row)
        }
        .await;
        lock.release().await;
        let row = match committed {
            Ok(row) => row,
            Err(error) => {
                let _ = backend.delete(&target.at).await;
                return Err(error);
            }
        };
        let keep: Vec<String> = parts.iter().map(|p| p.name.clone()).collect();
        if let Err(e) = backend.remove_parts(&target.at, &keep).await {
            tracing::warn!(key = %id.key, "could not remove parts no record lists: {e}");
        }
        Ok(row)
    }
}

/// What the parts hold together.
fn summed(parts: &[WrittenPart]) -> Written {
    Written {
        rows: parts.iter().map(|p| p.rows).sum(),
        bytes: parts.iter().map(|p| p.bytes).sum(),
        parts: parts.len() as u64,
        ..Written::default()
    }
}

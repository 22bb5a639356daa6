//! Importing: copying listed entries from one tier (a mirror, another
//! team's store) into a writable one, usually root.
//!
//! The copy is byte for byte, so an entry keeps exactly the files its
//! writer made (Python's pandas metadata included) and needs no schema.
//! It follows the write protocol of [`Catalog::store`]: the target's old
//! metadata row and null marker go first, then the data, then the new
//! metadata row, which is the moment the entry appears. The row keeps its
//! writer's version, user and commit; its path names the new place.

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use futures::TryStreamExt;

use crate::error::{Error, Result};
use crate::key::CacheKey;
use crate::listing::Listed;
use crate::metastore::{data_path, metadata_path};
use crate::tier::{Tier, TierRole};
use crate::{Catalog, EntryId};

/// What importing one entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    /// Copied: data files and metadata, or a null marker.
    Copied,
    /// The target already had it (same key, namespace, backend, version).
    AlreadyThere,
}

impl Catalog {
    /// Copies `listed` (read with [`Catalog::read_rows`]) to `to` under
    /// the same key.
    pub async fn import_listed(&self, listed: &Listed, to: &Tier) -> Result<Imported> {
        let (key, namespace) = listed.key();
        let key = CacheKey::stored(&key).map_err(|e| Error::Config(e.to_string()))?;
        if to.is_read_only() {
            return Err(Error::ReadOnlyTier {
                tier: to.name().to_string(),
                location: to.url().to_string(),
                key: key.to_string(),
            });
        }
        if (listed.tier.role() == TierRole::Local) != (to.role() == TierRole::Local) {
            return Err(Error::Config(format!(
                "cannot import {key} from the {} tier into the {} tier: local entries are keyed \
                 by every argument, root and mirrors by cache_args only",
                listed.tier.name(),
                to.name()
            )));
        }
        let mut id = EntryId {
            key,
            namespace,
            version: None,
        };
        let Some(backend_name) = listed.backend() else {
            if self.has_null(to, &id).await? {
                return Ok(Imported::AlreadyThere);
            }
            self.store_null(to, &id).await?;
            return Ok(Imported::Copied);
        };
        let row = match (listed.metadata(), listed.corruption()) {
            (Some(row), _) => row.clone(),
            (None, reason) => {
                return Err(Error::CorruptMetadata {
                    key: id.key.to_string(),
                    location: listed.tier.url().to_string(),
                    path: listed.object.to_string(),
                    reason: reason.unwrap_or("it was not read").to_string(),
                })
            }
        };
        id.version = row.version.clone();
        let backend = self.backends.get(backend_name).ok_or_else(|| {
            Error::Config(format!(
                "cannot import {} from {}: it is stored with {backend_name}, which this build \
                 does not have ({} are built in)",
                id.key,
                listed.tier.name(),
                self.backends.names().join(", ")
            ))
        })?;
        if !backend.stores_objects() {
            return Err(Error::Config(format!(
                "cannot import {} from {}: it is stored with {backend_name}, whose data lives in \
                 a database rather than the tier's store; point both tiers at one database, or \
                 call the function with recompute => true on the target tier",
                id.key,
                listed.tier.name()
            )));
        }
        let existing = self.read_metadata(to, &id, backend.name()).await?;
        if existing.is_some_and(|r| r.is_valid_for(id.version.as_deref())) {
            return Ok(Imported::AlreadyThere);
        }

        let meta_path = metadata_path(&id.key, id.namespace.as_deref(), backend.name());
        match to.store().delete(&meta_path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Catalog::unwritable(to, &meta_path, e)),
        }
        self.delete_null(to, &id).await?;
        let path = data_path(&id.key, id.namespace.as_deref(), backend.extension());
        let from = listed
            .tier
            .entry_location(&**backend, &id.key, id.namespace.as_deref());
        let into = to.entry_location(&**backend, &id.key, id.namespace.as_deref());
        // Old data of the target, which no metadata vouches for any more,
        // may have files the copy would not overwrite.
        backend
            .delete(&into)
            .await
            .map_err(|e| self.backend_error(backend.name(), &id, to, e))?;
        let copied = copy_objects(&*from.store, &*into.store, &path)
            .await
            .map_err(|e| match e {
                Copy::Read(e) => listed.tier.unreachable(&format!("reading {path}"), e),
                Copy::Write(at, e) => Catalog::unwritable(to, &at, e),
            })?;
        if copied == 0 {
            return Err(Error::Config(format!(
                "cannot import {} from {}: its metadata is there but its data ({path}) is not",
                id.key,
                listed.tier.name()
            )));
        }
        backend
            .adopt(&into)
            .await
            .map_err(|e| self.backend_error(backend.name(), &id, to, e))?;

        self.ensure_marker(to).await?;
        let mut row = row;
        row.path = format!("{}/{path}", to.url().trim_end_matches('/'));
        row.last_modified = chrono::Utc::now().timestamp_micros() as f64;
        let encoded = row
            .encode()
            .map_err(|e| self.backend_error("metastore", &id, to, e))?;
        to.store()
            .put(&meta_path, PutPayload::from(encoded))
            .await
            .map_err(|e| Catalog::unwritable(to, &meta_path, e))?;
        tracing::debug!(key = %id.key, from = listed.tier.name(), to = to.name(), "imported entry");
        Ok(Imported::Copied)
    }
}

enum Copy {
    Read(object_store::Error),
    Write(Path, object_store::Error),
}

/// Copies the object at `path`, or every object under it (formats that
/// store a folder), from one store to another; how many were copied.
async fn copy_objects(
    from: &dyn ObjectStore,
    into: &dyn ObjectStore,
    path: &Path,
) -> std::result::Result<usize, Copy> {
    let mut objects = match from.head(path).await {
        Ok(meta) => vec![meta.location],
        Err(object_store::Error::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(Copy::Read(e)),
    };
    if objects.is_empty() {
        let under: Vec<_> = from
            .list(Some(path))
            .try_collect()
            .await
            .map_err(Copy::Read)?;
        objects = under.into_iter().map(|meta| meta.location).collect();
    }
    for object in &objects {
        let bytes = from
            .get(object)
            .await
            .map_err(Copy::Read)?
            .bytes()
            .await
            .map_err(Copy::Read)?;
        into.put(object, PutPayload::from(bytes))
            .await
            .map_err(|e| Copy::Write(object.clone(), e))?;
    }
    Ok(objects.len())
}

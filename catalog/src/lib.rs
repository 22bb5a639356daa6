//! The nuthatch catalog: where cache entries are and whether they are valid.
//!
//! This crate owns configuration ([`config`]), cache keys ([`key`]), the
//! metastore layout shared with Python nuthatch ([`metastore`]), tiers
//! ([`tier`]) and cache modes ([`mode`]). [`Catalog`] ties them together: it
//! resolves a key to a valid entry and commits new entries so that a reader
//! never sees a half-written one. It knows nothing about SQL functions.

pub mod config;
pub mod key;
pub mod metastore;
pub mod mode;
pub mod report;
pub mod tier;

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::runtime_env::RuntimeEnv;
use nuthatch_backends::{parquet, BackendKind};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt, PutPayload};

pub use config::{Config, TierConfig};
pub use key::{cache_key, CacheKey, KeyValue};
pub use metastore::MetadataRow;
pub use mode::CacheMode;
pub use report::{CallReport, Outcome, ReportLog};
pub use tier::{Tier, TierRole};

use metastore::{data_path, io_error, metadata_path, CONFIRMED, EXISTS_MARKER};

/// Which entry a call refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryId {
    pub key: CacheKey,
    pub namespace: Option<String>,
    pub version: Option<String>,
}

/// A valid entry found on a tier.
#[derive(Debug, Clone)]
pub struct Entry {
    pub tier: Tier,
    pub backend: BackendKind,
    pub files: Vec<ObjectMeta>,
    pub metadata: MetadataRow,
}

/// The tiers of one configuration, and the log of calls made through them.
#[derive(Debug)]
pub struct Catalog {
    root: Tier,
    reports: ReportLog,
}

impl Catalog {
    pub fn open(config: &Config) -> Result<Arc<Catalog>> {
        let root = Tier::open(TierRole::Root, &config.root)?;
        tracing::debug!(root = root.location(), "opened catalog");
        Ok(Arc::new(Catalog {
            root,
            reports: ReportLog::default(),
        }))
    }

    pub fn root(&self) -> &Tier {
        &self.root
    }

    /// The tiers in read order.
    pub fn tiers(&self) -> impl Iterator<Item = &Tier> {
        std::iter::once(&self.root)
    }

    pub fn reports(&self) -> &ReportLog {
        &self.reports
    }

    /// Makes every tier reachable from scans run in `runtime`.
    pub fn register_stores(&self, runtime: &RuntimeEnv) {
        for tier in self.tiers() {
            tier.register(runtime);
        }
    }

    /// Finds a valid entry for `id`, trying tiers in read order and, when no
    /// backend is asked for, backends in the order Python infers them.
    pub async fn find(&self, id: &EntryId, backend: Option<BackendKind>) -> Result<Option<Entry>> {
        let candidates: Vec<BackendKind> = match backend {
            Some(kind) => vec![kind],
            None => BackendKind::ALL.to_vec(),
        };
        for tier in self.tiers() {
            for &kind in &candidates {
                if let Some(entry) = self.find_on(tier, id, kind).await? {
                    return Ok(Some(entry));
                }
            }
        }
        Ok(None)
    }

    async fn find_on(&self, tier: &Tier, id: &EntryId, kind: BackendKind) -> Result<Option<Entry>> {
        let meta_path = metadata_path(&id.key, id.namespace.as_deref(), kind);
        let bytes = match tier.store().get(&meta_path).await {
            Ok(result) => result.bytes().await.map_err(io_error(format!(
                "reading metadata {meta_path} on the {} tier at {}",
                tier.name(),
                tier.location()
            )))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => {
                return Err(io_error(format!(
                    "the {} tier at {} is unreachable while reading {meta_path}",
                    tier.name(),
                    tier.location()
                ))(e))
            }
        };
        let metadata = MetadataRow::decode(bytes).map_err(|reason| {
            DataFusionError::Execution(format!(
                "the metadata of entry {} at {}/{meta_path} is corrupt ({reason}); delete that \
                 file, or recompute the entry with cache_mode => 'overwrite', recompute => true",
                id.key,
                tier.location()
            ))
        })?;
        if !metadata.is_valid_for(id.version.as_deref()) {
            tracing::debug!(key = %id.key, stored = ?metadata.version, "entry has another version");
            return Ok(None);
        }
        let path = data_path(&id.key, id.namespace.as_deref(), kind);
        let files = match kind {
            BackendKind::Parquet => parquet::locate(tier.store().as_ref(), &path).await?,
        };
        match files {
            Some(files) => Ok(Some(Entry {
                tier: tier.clone(),
                backend: kind,
                files,
                metadata,
            })),
            None => {
                tracing::warn!(key = %id.key, "metadata found without data; treating as a miss");
                Ok(None)
            }
        }
    }

    /// Stores a computed result as the entry `id` on the root tier.
    ///
    /// Order matters: an old entry's metadata is removed first (so a crash
    /// cannot leave old metadata vouching for new data), then the data is
    /// put, then the metadata. Each put is atomic, so at every instant the
    /// entry is either absent or complete.
    pub async fn commit(
        &self,
        id: &EntryId,
        backend: BackendKind,
        schema: &SchemaRef,
        batches: &[RecordBatch],
        sort_by: Option<&str>,
    ) -> Result<parquet::Written> {
        let tier = &self.root;
        if tier.is_read_only() {
            return Err(DataFusionError::Execution(format!(
                "the root tier at {} is read-only, so entry {} cannot be stored; call with \
                 cache_mode => 'read_only' or 'off', or configure a writable root",
                tier.location(),
                id.key
            )));
        }
        let store = tier.store();
        let meta_path = metadata_path(&id.key, id.namespace.as_deref(), backend);
        let path = data_path(&id.key, id.namespace.as_deref(), backend);
        let unwritable = |what: &Path| {
            let location = tier.location().to_string();
            let what = what.to_string();
            move |e: object_store::Error| {
                DataFusionError::Execution(format!(
                    "cannot write {what} to the root tier at {location}: {e}. Nothing was \
                     stored; make the root writable, or call with cache_mode => 'read_only'"
                ))
            }
        };
        match store.delete(&meta_path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(unwritable(&meta_path)(e)),
        }
        let (bytes, written) = match backend {
            BackendKind::Parquet => parquet::encode(schema, batches, sort_by)?,
        };
        store
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(unwritable(&path))?;
        let marker = Path::from(EXISTS_MARKER);
        if let Err(object_store::Error::NotFound { .. }) = store.head(&marker).await {
            store
                .put(&marker, PutPayload::new())
                .await
                .map_err(unwritable(&marker))?;
        }
        let row = MetadataRow {
            cache_key: id.key.as_str().to_string(),
            namespace: id.namespace.clone(),
            version: id.version.clone(),
            backend: backend.name().to_string(),
            state: CONFIRMED.to_string(),
            last_modified: chrono::Utc::now().timestamp_micros() as f64,
            commit_hash: metastore::current_commit_hash(),
            user: metastore::current_user(),
            path: format!("{}/{path}", tier.location().trim_end_matches('/')),
        };
        if let Err(e) = store.put(&meta_path, PutPayload::from(row.encode()?)).await {
            // The data is unreachable without metadata; remove it so a failed
            // commit leaves nothing behind.
            let _ = store.delete(&path).await;
            return Err(unwritable(&meta_path)(e));
        }
        tracing::debug!(key = %id.key, rows = written.rows, "committed entry");
        Ok(written)
    }
}

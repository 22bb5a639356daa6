//! The nuthatch catalog: where cache entries are and whether they are valid.
//!
//! This crate owns configuration ([`config`]), cache keys ([`key`]), the
//! metastore layout shared with Python nuthatch ([`metastore`]), tiers
//! ([`tier`]), cache modes as policies ([`mode`]), the collapsing of
//! identical computes ([`inflight`]), call reports ([`report`]) and its
//! errors ([`error`]). [`Catalog`] ties them together: [`Catalog::resolve`]
//! finds a valid entry across tiers and backends, and [`Catalog::store`] is
//! the one place the write protocol lives. It knows nothing about SQL
//! functions, and nothing about storage formats beyond the
//! [`nuthatch_backends::Backend`] trait.

pub mod config;
pub mod error;
pub mod inflight;
pub mod key;
pub mod metastore;
pub mod mode;
pub mod report;
pub mod tier;

use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use nuthatch_backends::{Backend, Backends, WriteOptions, Written};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

pub use config::{Config, TierConfig};
pub use error::{Error, Result};
pub use inflight::{Claim, Followed, InFlight};
pub use key::{cache_key, CacheKey, KeyValue};
pub use metastore::MetadataRow;
pub use mode::{CacheMode, Policy};
pub use report::{CallReport, Outcome, ReportLog};
pub use tier::{Tier, TierRole};

use metastore::{data_path, metadata_dir, metadata_path, CONFIRMED, EXISTS_MARKER};

/// Which entry a call refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryId {
    pub key: CacheKey,
    pub namespace: Option<String>,
    pub version: Option<String>,
}

/// A valid entry found on a tier, opened for reading.
#[derive(Debug, Clone)]
pub struct Entry {
    pub tier: Tier,
    pub backend: Arc<dyn Backend>,
    pub metadata: MetadataRow,
    /// The stored data as a table; scanning it does the pushdown.
    pub provider: Arc<dyn TableProvider>,
}

/// How Python nuthatch stores results in the backends this build lacks,
/// for the message that says why such an entry cannot be read.
fn python_storage(backend: &str) -> String {
    match backend {
        "basic" => "as a pickle (the basic backend)".to_string(),
        other => format!("with its {other} backend"),
    }
}

/// The tiers of one configuration and the formats they may hold.
#[derive(Debug)]
pub struct Catalog {
    root: Tier,
    backends: Backends,
    inflight: Arc<InFlight>,
}

impl Catalog {
    /// Opens the tiers `config` names, with every built-in backend.
    pub fn open(config: &Config) -> Result<Arc<Catalog>> {
        Catalog::with_backends(config, Backends::builtin())
    }

    pub fn with_backends(config: &Config, backends: Backends) -> Result<Arc<Catalog>> {
        let root = Tier::open(TierRole::Root, &config.root)?;
        tracing::debug!(root = root.url(), "opened catalog");
        Ok(Arc::new(Catalog {
            root,
            backends,
            inflight: Arc::default(),
        }))
    }

    pub fn root(&self) -> &Tier {
        &self.root
    }

    /// The tiers in read order.
    pub fn tiers(&self) -> impl Iterator<Item = &Tier> {
        std::iter::once(&self.root)
    }

    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    /// The backend called `name`, or an error that lists the others.
    pub fn backend(&self, name: &str) -> Result<&Arc<dyn Backend>> {
        self.backends.get(name).ok_or_else(|| {
            Error::Config(format!(
                "unknown backend '{name}'; this build has {}",
                self.backends.names().join(", ")
            ))
        })
    }

    /// The entries being computed in this process.
    pub fn inflight(&self) -> &Arc<InFlight> {
        &self.inflight
    }

    /// Makes every tier reachable from scans run in `runtime`.
    pub fn register_stores(&self, runtime: &RuntimeEnv) {
        for tier in self.tiers() {
            tier.register(runtime);
        }
    }

    /// Finds a valid entry for `id`, read as `schema`, trying tiers in read
    /// order. With a `backend` named, only entries stored with it count.
    /// Without one, the default backend's entry is tried first, then any
    /// other metadata row the entry has, alphabetically as Python infers
    /// the backend; a valid entry in a format this build cannot read is an
    /// error that says so, not a miss.
    pub async fn resolve(
        &self,
        id: &EntryId,
        backend: Option<&str>,
        schema: &SchemaRef,
    ) -> Result<Option<Entry>> {
        for tier in self.tiers() {
            if let Some(name) = backend {
                let backend = self.backend(name)?;
                if let Some(entry) = self.find_on(tier, id, backend, schema).await? {
                    return Ok(Some(entry));
                }
                continue;
            }
            let default = self.backends.default_backend();
            if let Some(entry) = self.find_on(tier, id, default, schema).await? {
                return Ok(Some(entry));
            }
            for name in self.stored_backends(tier, id).await? {
                if name == default.name() {
                    continue;
                }
                match self.backends.get(&name) {
                    Some(other) => {
                        if let Some(entry) = self.find_on(tier, id, other, schema).await? {
                            return Ok(Some(entry));
                        }
                    }
                    None => {
                        let valid = self
                            .read_metadata(tier, id, &name)
                            .await?
                            .is_some_and(|row| row.is_valid_for(id.version.as_deref()));
                        if valid {
                            return Err(Error::UnreadableBackend {
                                key: id.key.display().to_string(),
                                tier: tier.name().to_string(),
                                how: python_storage(&name),
                                backend: name,
                                instead: default.name().to_string(),
                            });
                        }
                    }
                }
            }
        }
        Ok(None)
    }

    /// The backends whose metadata rows an entry has on `tier` (one LIST).
    async fn stored_backends(&self, tier: &Tier, id: &EntryId) -> Result<Vec<String>> {
        let dir = metadata_dir(&id.key, id.namespace.as_deref());
        let listing = match tier.store().list_with_delimiter(Some(&dir)).await {
            Ok(listing) => listing,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(tier.unreachable(&format!("listing {dir}"), e)),
        };
        let mut names: Vec<String> = listing
            .objects
            .iter()
            .filter_map(|meta| meta.location.filename())
            .filter_map(|file| file.strip_suffix(".parquet"))
            .filter(|name| *name != "exists")
            .map(str::to_string)
            .collect();
        names.sort();
        Ok(names)
    }

    /// The metadata row of `id` for `backend` on `tier`, if there is one.
    async fn read_metadata(
        &self,
        tier: &Tier,
        id: &EntryId,
        backend: &str,
    ) -> Result<Option<MetadataRow>> {
        let path = metadata_path(&id.key, id.namespace.as_deref(), backend);
        let bytes = match tier.store().get(&path).await {
            Ok(result) => result
                .bytes()
                .await
                .map_err(|e| tier.unreachable(&format!("reading {path}"), e))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(tier.unreachable(&format!("reading {path}"), e)),
        };
        MetadataRow::decode(bytes)
            .map(Some)
            .map_err(|reason| Error::CorruptMetadata {
                key: id.key.to_string(),
                location: tier.url().trim_end_matches('/').to_string(),
                path: path.to_string(),
                reason,
            })
    }

    async fn find_on(
        &self,
        tier: &Tier,
        id: &EntryId,
        backend: &Arc<dyn Backend>,
        schema: &SchemaRef,
    ) -> Result<Option<Entry>> {
        let Some(metadata) = self.read_metadata(tier, id, backend.name()).await? else {
            return Ok(None);
        };
        if !metadata.is_valid_for(id.version.as_deref()) {
            tracing::debug!(key = %id.key, stored = ?metadata.version, "entry has another version");
            return Ok(None);
        }
        self.open_data(tier, id, backend, metadata, schema).await
    }

    /// Opens the data of an entry whose metadata row is `metadata`; `None`
    /// (a miss, with a warning) when the data is not there.
    async fn open_data(
        &self,
        tier: &Tier,
        id: &EntryId,
        backend: &Arc<dyn Backend>,
        metadata: MetadataRow,
        schema: &SchemaRef,
    ) -> Result<Option<Entry>> {
        let at = tier.location(data_path(
            &id.key,
            id.namespace.as_deref(),
            backend.extension(),
        ));
        let opened = backend
            .open(&at, Arc::clone(schema))
            .await
            .map_err(|source| Error::Backend {
                backend: backend.name().to_string(),
                key: id.key.to_string(),
                tier: tier.name().to_string(),
                location: tier.url().to_string(),
                source: Box::new(source),
            })?;
        match opened {
            Some(provider) => Ok(Some(Entry {
                tier: tier.clone(),
                backend: Arc::clone(backend),
                metadata,
                provider,
            })),
            None => {
                tracing::warn!(key = %id.key, "metadata found without data; treating as a miss");
                Ok(None)
            }
        }
    }

    /// The tier computed entries are stored on, if it takes writes.
    pub fn writable_tier(&self, id: &EntryId) -> Result<&Tier> {
        let tier = &self.root;
        if tier.is_read_only() {
            return Err(Error::ReadOnlyTier {
                tier: tier.name().to_string(),
                location: tier.url().to_string(),
                key: id.key.to_string(),
            });
        }
        Ok(tier)
    }

    /// Stores the result stream `data` as the entry `id` on the root tier.
    ///
    /// Order matters: an old entry's metadata is removed first (so a crash
    /// cannot leave old metadata vouching for new data), then the backend
    /// writes the data, visible all at once when complete, then the
    /// metadata row is put. At every instant the entry is absent or whole.
    /// The result is computed while it is written: an error of the stream
    /// is a [`Error::ComputeFailed`], and it leaves nothing stored. Returns
    /// what was written and the new entry, opened to be read as `schema`.
    pub async fn store(
        &self,
        id: &EntryId,
        backend: &Arc<dyn Backend>,
        data: SendableRecordBatchStream,
        options: &WriteOptions,
        schema: &SchemaRef,
    ) -> Result<(Written, Entry)> {
        let tier = self.writable_tier(id)?;
        let store = tier.store();
        let meta_path = metadata_path(&id.key, id.namespace.as_deref(), backend.name());
        let path = data_path(&id.key, id.namespace.as_deref(), backend.extension());
        let unwritable = |what: &Path, e: object_store::Error| Error::Unwritable {
            tier: tier.name().to_string(),
            location: tier.url().to_string(),
            what: what.to_string(),
            detail: e.to_string(),
        };
        match store.delete(&meta_path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(unwritable(&meta_path, e)),
        }

        // Errors of the stream are the compute's; keep them apart from the
        // backend's own.
        let compute_error: Arc<Mutex<Option<DataFusionError>>> = Arc::default();
        let seen = Arc::clone(&compute_error);
        let stream_schema = data.schema();
        let tagged = data.map(move |batch| {
            batch.map_err(|e| {
                let text = e.to_string();
                seen.lock().expect("compute error slot").get_or_insert(e);
                DataFusionError::Execution(format!("the computed result failed: {text}"))
            })
        });
        let data = Box::pin(RecordBatchStreamAdapter::new(stream_schema, tagged));
        // This process holds the entry's in-flight claim, so no write of it
        // here is staged; what is staged is a killed process's.
        tier.sweep_staged(&path);
        let at = tier.location(path.clone());
        let written = match backend.write(&at, data, options).await {
            Ok(written) => written,
            Err(source) => {
                let computed = compute_error.lock().expect("compute error slot").take();
                return Err(match computed {
                    Some(source) => Error::ComputeFailed {
                        key: id.key.display().to_string(),
                        source: Box::new(source),
                    },
                    None => Error::Backend {
                        backend: backend.name().to_string(),
                        key: id.key.to_string(),
                        tier: tier.name().to_string(),
                        location: tier.url().to_string(),
                        source: Box::new(source),
                    },
                });
            }
        };

        let marker = Path::from(EXISTS_MARKER);
        if let Err(object_store::Error::NotFound { .. }) = store.head(&marker).await {
            store
                .put(&marker, PutPayload::new())
                .await
                .map_err(|e| unwritable(&marker, e))?;
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
            path: format!("{}/{path}", tier.url().trim_end_matches('/')),
        };
        let encoded = row.encode().map_err(|e| Error::Backend {
            backend: "metastore".to_string(),
            key: id.key.to_string(),
            tier: tier.name().to_string(),
            location: tier.url().to_string(),
            source: Box::new(e),
        })?;
        if let Err(e) = store.put(&meta_path, PutPayload::from(encoded)).await {
            // The data is unreachable without metadata; remove it so a failed
            // commit leaves nothing behind.
            let _ = backend.delete(&at).await;
            return Err(unwritable(&meta_path, e));
        }
        tracing::debug!(key = %id.key, rows = written.rows, bytes = written.bytes, "stored entry");
        let entry = self
            .open_data(tier, id, backend, row, schema)
            .await?
            .ok_or_else(|| Error::Backend {
                backend: backend.name().to_string(),
                key: id.key.to_string(),
                tier: tier.name().to_string(),
                location: tier.url().to_string(),
                source: Box::new(DataFusionError::Execution(
                    "the data vanished right after it was stored".into(),
                )),
            })?;
        Ok((written, entry))
    }
}

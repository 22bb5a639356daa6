//! The nuthatch catalog: where cache entries are and whether they are valid.
//!
//! This crate owns configuration ([`config`]), cache keys ([`key`]), the
//! metastore layout shared with Python nuthatch ([`metastore`]), tiers
//! ([`tier`]), cache modes as policies ([`mode`]), the collapsing of
//! identical computes ([`inflight`]), call reports ([`report`]), writes that outlive
//! their query ([`background`]) and its
//! errors ([`error`]), and the memory tier of memoized results
//! ([`memory`]), what entries were computed from ([`lineage`]) and whether
//! that still holds ([`stale`]). [`Catalog`] ties them together: [`Catalog::lookup`] finds a
//! null marker or a valid entry on one tier, across backends;
//! [`Catalog::store`] is the one place the write protocol lives
//! ([`commit`], with the entry lock of [`lock`]). Which
//! tiers a call reads and writes is its mode's [`Policy`], applied by the
//! caller. The catalog knows nothing about SQL functions, and nothing about
//! storage formats beyond the [`nuthatch_backends::Backend`] trait.

/// Makes a type that parses from text (its `FromStr` error a
/// `DataFusionError`) a DataFusion session setting, checked when set:
/// `SET nuthatch.cache_mode = 'overwrite'`.
macro_rules! text_setting {
    ($setting:ty) => {
        impl datafusion::common::config::ConfigField for $setting {
            fn visit<V: datafusion::common::config::Visit>(
                &self,
                v: &mut V,
                key: &str,
                description: &'static str,
            ) {
                v.some(key, self, description)
            }

            fn set(&mut self, _key: &str, value: &str) -> datafusion::common::Result<()> {
                *self = value.parse()?;
                Ok(())
            }
        }
    };
}

pub mod background;
mod commit;
mod commit_parts;
pub mod config;
pub mod error;
mod folder_index;
pub mod import;
pub mod inflight;
pub mod key;
pub mod lease;
pub mod lineage;
pub mod listing;
pub mod lock;
pub mod memory;
pub mod metastore;
pub mod mode;
pub mod report;
pub mod stale;
pub mod system;
pub mod tier;
mod time_range;
pub mod vacuum;

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnv;
use nuthatch_backends::{Backend, Backends, Commit, Location};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

pub use background::{Background, BackgroundWrite};
pub use commit::columns_of;
pub use commit_parts::WrittenPart;
pub use config::{Config, TierConfig};
pub use error::{Error, Result};
pub use import::Imported;
pub use inflight::{Claim, Followed, InFlight};
pub use key::{cache_key, CacheKey, KeyValue};
pub use lease::{LeaseOptions, OnLeaseWait};
pub use lineage::{Input, InputEntry, Lineage, Provenance, Reads};
pub use listing::{Listed, ListedKind, ListingStats};
pub use memory::{Memoized, MemoryTier};
pub use metastore::{MetadataRow, Recorded, Replacing};
pub use mode::{CacheMode, Overwrite, Policy};
pub use report::{CallReport, Outcome, Phase, ReportLog, Running};
pub use stale::{Cause, Definitions, Fingerprint, Judge, OnStale, Staleness};
pub use system::SystemSchema;
pub use tier::{Tier, TierRole};
pub use time_range::TimeRange;
pub use vacuum::{Leftover, Swept, VacuumOptions};

use metastore::{
    metadata_dir, metadata_path, null_path, write_check_path, CONFIRMED, EXISTS_MARKER,
};

/// Which entry a call refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryId {
    pub key: CacheKey,
    pub namespace: Option<String>,
    pub version: Option<String>,
}

/// What a tier holds for an entry.
#[derive(Debug, Clone)]
pub enum Found {
    /// A null marker: the function returned no result.
    Null(Box<Tier>),
    /// A valid entry.
    Entry(Box<Entry>),
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

/// The tiers of one configuration and the formats they may hold.
#[derive(Debug)]
pub struct Catalog {
    local: Tier,
    root: Tier,
    mirrors: Vec<Tier>,
    memory: MemoryTier,
    backends: Backends,
    inflight: Arc<InFlight>,
    /// Whether root took a write probe; asked once, for the default mode.
    root_writable: tokio::sync::OnceCell<bool>,
    /// Metadata rows decoded by listings.
    row_memo: listing::RowMemo,
    listing_stats: listing::ListingStats,
    folder_index: folder_index::FolderIndex,
    /// The functions' current fingerprints, for staleness ([`stale`]).
    definitions: std::sync::OnceLock<Arc<dyn stale::Definitions>>,
}

impl Catalog {
    /// Opens the tiers `config` names, with every built-in backend.
    pub fn open(config: &Config) -> Result<Arc<Catalog>> {
        Catalog::with_backends(config, Backends::builtin())
    }

    /// Opens the tiers with `backends`. Root must open; a mirror that
    /// cannot (a malformed URL) is left out with a warning, as one that
    /// cannot be reached is skipped when read.
    pub fn with_backends(config: &Config, backends: Backends) -> Result<Arc<Catalog>> {
        let config = &config.resolved()?;
        let root = Tier::open(TierRole::Root, "root", &config.root, &backends)?;
        let local = Tier::open(TierRole::Local, "local", &config.local, &backends)?;
        let mut mirrors = Vec::new();
        for (name, mirror) in &config.mirrors {
            if mirror.filesystem.is_empty() {
                // As in Python: a mirror needs a filesystem of its own.
                tracing::warn!("skipping mirror {name}: it names no filesystem");
                continue;
            }
            match Tier::open(TierRole::Mirror, name, mirror, &backends) {
                Ok(tier) => mirrors.push(tier),
                Err(e) => tracing::warn!("skipping mirror {name}: {e}"),
            }
        }
        tracing::debug!(
            root = root.url(),
            local = local.url(),
            mirrors = mirrors.len(),
            "opened catalog"
        );
        Ok(Arc::new(Catalog {
            local,
            root,
            mirrors,
            memory: MemoryTier::new(config.memoize_limit),
            backends,
            inflight: Arc::default(),
            root_writable: tokio::sync::OnceCell::new(),
            row_memo: Default::default(),
            listing_stats: Default::default(),
            folder_index: folder_index::FolderIndex::new(listing::is_listed),
            definitions: Default::default(),
        }))
    }

    pub fn root(&self) -> &Tier {
        &self.root
    }

    pub fn local(&self) -> &Tier {
        &self.local
    }

    pub fn mirrors(&self) -> &[Tier] {
        &self.mirrors
    }

    /// Memoized results.
    pub fn memory(&self) -> &MemoryTier {
        &self.memory
    }

    /// Every tier in read order: local, root, then the mirrors as
    /// configured.
    pub fn tiers(&self) -> impl Iterator<Item = &Tier> {
        std::iter::once(&self.local)
            .chain(std::iter::once(&self.root))
            .chain(&self.mirrors)
    }

    /// The tiers a call reads, in order.
    pub fn read_order(&self, local: bool, global: bool) -> Vec<&Tier> {
        self.tiers()
            .filter(|t| if t.role().is_global() { global } else { local })
            .collect()
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
    /// The store and path of a lease named by its URL (a `waits_for`),
    /// when it is on one of these tiers.
    pub fn lease_at(&self, url: &str) -> Option<(Arc<dyn object_store::ObjectStore>, Path)> {
        self.tiers().find_map(|tier| {
            let rest = url.strip_prefix(tier.url().trim_end_matches('/'))?;
            let path = rest.strip_prefix('/')?;
            Some((Arc::clone(tier.store()), Path::from(path)))
        })
    }

    pub fn inflight(&self) -> &Arc<InFlight> {
        &self.inflight
    }

    /// Makes every tier reachable from scans run in `runtime`.
    pub fn register_stores(&self, runtime: &RuntimeEnv) {
        for tier in self.tiers() {
            tier.register(runtime);
        }
    }

    /// The mode of calls that name none, as Python nuthatch chooses it:
    /// `write` when root takes writes, else `read_only_strict`. Root is
    /// probed once (a small file put and removed), not on every call.
    pub async fn default_mode(&self) -> CacheMode {
        let writable = *self
            .root_writable
            .get_or_init(|| async {
                if self.root.is_read_only() {
                    return false;
                }
                let nonce = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or_default()
                    ^ u64::from(std::process::id());
                let probe = write_check_path(nonce);
                match self.root.store().put(&probe, PutPayload::new()).await {
                    Ok(_) => {
                        let _ = self.root.store().delete(&probe).await;
                        true
                    }
                    Err(e) => {
                        tracing::warn!(
                            root = self.root.url(),
                            "root does not take writes ({e}); calls without a cache_mode use \
                             read_only_strict"
                        );
                        false
                    }
                }
            })
            .await;
        if writable {
            CacheMode::Write
        } else {
            CacheMode::ReadOnlyStrict
        }
    }

    /// What `tier` holds for `id`, read as `schema`: its null marker first
    /// (a null counts whatever the version or backend, as in Python), then
    /// a valid entry. With a `backend` named, only entries stored with it
    /// count. Without one, the default backend's entry is tried first, then
    /// any other metadata row the entry has, alphabetically as Python infers
    /// the backend; a valid entry in a format this build cannot read is an
    /// error that says so, not a miss. A mirror that cannot be reached is
    /// skipped with a warning; its corrupt metadata is an error.
    pub async fn lookup(
        &self,
        tier: &Tier,
        id: &EntryId,
        backend: Option<&str>,
        schema: &SchemaRef,
    ) -> Result<Option<Found>> {
        skip_unreachable_mirror(tier, self.lookup_on(tier, id, backend, schema).await)
    }

    async fn lookup_on(
        &self,
        tier: &Tier,
        id: &EntryId,
        backend: Option<&str>,
        schema: &SchemaRef,
    ) -> Result<Option<Found>> {
        if self.has_null(tier, id).await? {
            return Ok(Some(Found::Null(Box::new(tier.clone()))));
        }
        if let Some(name) = backend {
            let backend = self.backend(name)?;
            let found = self.find_on(tier, id, backend, schema).await?;
            return Ok(found.map(|e| Found::Entry(Box::new(e))));
        }
        let default = self.backends.default_backend();
        if let Some(entry) = self.find_on(tier, id, default, schema).await? {
            return Ok(Some(Found::Entry(Box::new(entry))));
        }
        for name in self.stored_backends(tier, id).await? {
            if name == default.name() {
                continue;
            }
            match self.backends.get(&name) {
                Some(other) => {
                    if let Some(entry) = self.find_on(tier, id, other, schema).await? {
                        return Ok(Some(Found::Entry(Box::new(entry))));
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
                            backend: name,
                            instead: default.name().to_string(),
                        });
                    }
                }
            }
        }
        Ok(None)
    }

    async fn has_null(&self, tier: &Tier, id: &EntryId) -> Result<bool> {
        let path = null_path(&id.key, id.namespace.as_deref());
        match tier.store().head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(tier.unreachable(&format!("reading {path}"), e)),
        }
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
        let row = MetadataRow::decode(bytes).map_err(|reason| Error::CorruptMetadata {
            key: id.key.to_string(),
            location: tier.url().trim_end_matches('/').to_string(),
            path: path.to_string(),
            reason: reason.to_string(),
        })?;
        self.settled(tier, row).await.map(Some)
    }

    /// The record that holds the entry `row` is about: `row` itself,
    /// unless it is pending ([`metastore::Replacing`]); then the entry's
    /// data, by its stamp, tells whether it is still the previous record's
    /// or already the pending one's, which is then as good as confirmed.
    pub(crate) async fn settled(&self, tier: &Tier, row: MetadataRow) -> Result<MetadataRow> {
        let (Some(replacing), true) = (&row.replacing, row.state == metastore::PENDING) else {
            return Ok(row);
        };
        let (Some(backend), Ok(key)) = (
            self.backends.get(&row.backend),
            CacheKey::stored(&row.cache_key),
        ) else {
            return Ok(row);
        };
        let at = tier.entry_location(&**backend, &key, row.namespace.as_deref());
        let stamp = backend.stamp(&at).await.map_err(|source| Error::Backend {
            backend: row.backend.clone(),
            key: row.cache_key.clone(),
            tier: tier.name().to_string(),
            location: tier.url().to_string(),
            source: Box::new(source),
        })?;
        let published = stamp != replacing.stamp;
        tracing::debug!(key = %row.cache_key, published, "settling a pending record");
        // A staged copy is whole before the record is put, so it is the
        // entry whatever the copy into place has reached.
        let staged = replacing.staged.is_some();
        Ok(match published || staged {
            false => (*replacing.previous).clone(),
            true => MetadataRow {
                state: CONFIRMED.to_string(),
                replacing: row.replacing.clone().filter(|_| staged),
                ..row
            },
        })
    }

    /// The valid entry `id` has on `tier` in `backend`, null markers aside.
    pub async fn find_on(
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
    /// (a miss, with a warning) when the data is not there. Unlike Python,
    /// the orphaned metadata is left alone: the tier may be a mirror, and a
    /// write of the entry replaces it anyway.
    pub(crate) async fn open_data(
        &self,
        tier: &Tier,
        id: &EntryId,
        backend: &Arc<dyn Backend>,
        metadata: MetadataRow,
        schema: &SchemaRef,
    ) -> Result<Option<Entry>> {
        let mut at = tier.entry_location(&**backend, &id.key, id.namespace.as_deref());
        if backend.commit() == Commit::Versioned {
            at.version = metadata.recorded.data_version.map(|v| v as u64);
        }
        at.sort_order = metadata.recorded.sort_order.clone();
        at.parts = metadata.recorded.parts.clone();
        at.time_column = metadata.recorded.time_column.clone();
        at.committed = Some(metadata.last_modified as i64);
        let open = |at: Location| async move {
            (backend.open(&at, Arc::clone(schema)).await)
                .map_err(|source| self.backend_error(backend.name(), id, tier, source))
        };
        // A staged copy is gone only once the copy into place is confirmed.
        let opened = match metadata.staged() {
            Some(staged) => match open(Location {
                path: staged,
                ..at.clone()
            })
            .await?
            {
                Some(provider) => Some(provider),
                None => open(at).await?,
            },
            None => open(at).await?,
        };
        match opened {
            Some(provider) => Ok(Some(Entry {
                tier: tier.clone(),
                backend: Arc::clone(backend),
                metadata,
                provider,
            })),
            None => {
                tracing::warn!(key = %id.key, tier = tier.name(), "metadata found without data; treating as a miss");
                Ok(None)
            }
        }
    }

    fn backend_error(
        &self,
        backend: &str,
        id: &EntryId,
        tier: &Tier,
        source: DataFusionError,
    ) -> Error {
        Error::Backend {
            backend: backend.to_string(),
            key: id.key.to_string(),
            tier: tier.name().to_string(),
            location: tier.url().to_string(),
            source: Box::new(source),
        }
    }

    /// Refuses writes to a tier that takes none (mirrors; a tier configured
    /// read-only), before anything is computed.
    pub fn check_writable(&self, tier: &Tier, id: &EntryId) -> Result<()> {
        if tier.is_read_only() {
            return Err(Error::ReadOnlyTier {
                tier: tier.name().to_string(),
                location: tier.url().to_string(),
                key: id.key.to_string(),
            });
        }
        Ok(())
    }

    fn unwritable(tier: &Tier, what: &Path, e: object_store::Error) -> Error {
        Error::Unwritable {
            tier: tier.name().to_string(),
            location: tier.url().to_string(),
            what: what.to_string(),
            detail: e.to_string(),
        }
    }

    /// Python readers of a store fail without the metastore's marker.
    pub(crate) async fn ensure_marker(&self, tier: &Tier) -> Result<()> {
        let marker = Path::from(EXISTS_MARKER);
        if let Err(object_store::Error::NotFound { .. }) = tier.store().head(&marker).await {
            tier.store()
                .put(&marker, PutPayload::new())
                .await
                .map_err(|e| Catalog::unwritable(tier, &marker, e))?;
        }
        Ok(())
    }

    /// Records on `tier` that the function returned no result for `id`.
    pub async fn store_null(&self, tier: &Tier, id: &EntryId) -> Result<()> {
        self.check_writable(tier, id)?;
        self.ensure_marker(tier).await?;
        let path = null_path(&id.key, id.namespace.as_deref());
        tier.store()
            .put(&path, PutPayload::new())
            .await
            .map_err(|e| Catalog::unwritable(tier, &path, e))?;
        tracing::debug!(key = %id.key, tier = tier.name(), "stored null marker");
        Ok(())
    }

    /// Removes the null marker of `id` from `tier`, if it has one.
    pub async fn delete_null(&self, tier: &Tier, id: &EntryId) -> Result<()> {
        self.check_writable(tier, id)?;
        let path = null_path(&id.key, id.namespace.as_deref());
        match tier.store().delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Catalog::unwritable(tier, &path, e)),
        }
    }
}

/// A mirror that cannot be reached counts as empty, with a warning: a
/// team's read-only store being down must not stop work on root. Any other
/// tier's failure stands.
fn skip_unreachable_mirror<T: Default>(tier: &Tier, result: Result<T>) -> Result<T> {
    match result {
        Err(Error::TierUnreachable { detail, .. }) if tier.role() == TierRole::Mirror => {
            tracing::warn!(
                "skipping the {} tier at {}, which is unreachable: {detail}",
                tier.name(),
                tier.url()
            );
            Ok(T::default())
        }
        result => result,
    }
}

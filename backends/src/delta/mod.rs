//! The Delta Lake backend (feature `delta`): `<key>.delta/`, a table with a
//! commit log, the layout Python nuthatch writes with `write_deltalake`.
//!
//! delta-rs (`deltalake`) does the log: every write commits a new version
//! atomically (a put-if-absent of the next log file), and a table is read
//! through its log, never by listing its Parquet files, because an
//! overwrite leaves the replaced files in place, marked removed. So this
//! format is [`Commit::Versioned`]: the catalog leaves the entry readable
//! at the version its metadata records while a write runs, and records the
//! new version once the commit is done. A write killed before its commit
//! leaves the old version current; one killed between the commit and the
//! metadata leaves a version no metadata vouches for, which readers do not
//! see (they open the recorded version).
//!
//! - [`read`] opens a version and serves its files through the Parquet
//!   backend's scan (delta-rs' own provider for tables whose files alone do
//!   not hold them), skipping files by their statistics, and counts the
//!   files the scan reads. A version a record names never changes, so the
//!   backend keeps the last ones it opened ([`DeltaBackend`]), each with
//!   the scan of its files, and a second read of one replays no log.
//! - [`write`] streams a result into a new version: a whole replacement, a
//!   merge by key columns (upsert), or the replacement of the rows in a
//!   time window, with the encodings a Parquet entry of the same rows
//!   would have, by one writer in the order the rows come, so that each
//!   file is sorted as its metadata says; then removes files older
//!   versions no longer need.
//!
//! delta-rs finds a table's store by URL scheme. Tier stores are registered
//! in DataFusion under `nuthatch://<tier>-<n>/`, so the table at `key.delta`
//! in a tier is `nuthatch://<tier>-<n>/key.delta`, and one log-store factory
//! for the `nuthatch` scheme hands delta-rs the tier's own store: the same
//! credentials, retries and folders as every other backend.

mod nanos;
pub mod read;
pub mod write;

use std::sync::{Arc, Once};

use arrow::datatypes::{DataType, Field, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use deltalake::logstore::{
    default_logstore, logstore_factories, LogStore, LogStoreFactory, ObjectStoreRef, StorageConfig,
};
use deltalake::{DeltaResult, DeltaTable, DeltaTableBuilder, DeltaTableError};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;
use url::Url;

use crate::fidelity::Loss;
use crate::{Backend, Commit, Location, Section, TierSettings, WriteOptions, Written};

pub use read::DeltaEntry;
use read::Version;

/// The URL scheme tiers are registered under (see `catalog::tier`).
const SCHEME: &str = "nuthatch";

/// The backend. It keeps the versions it opened last: a version its
/// record vouches for never changes, so reading it again replays no log.
#[derive(Debug, Default)]
pub struct DeltaBackend {
    opened: std::sync::Mutex<std::collections::VecDeque<(Opened, Version)>>,
}

/// Versions kept open ([`DeltaBackend`]).
const KEPT_OPEN: usize = 32;

/// A version as an entry's record names it: the table, its version, and
/// when the record was committed, which tells a table removed and written
/// again from the one before.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Opened {
    url: String,
    version: u64,
    committed: Option<i64>,
}

impl DeltaBackend {
    /// The table at `at`, loaded at its recorded version, or the latest
    /// when none is recorded (Python's entries), which is never kept.
    async fn open_version(&self, at: &Location) -> Result<Option<Version>> {
        let Some(version) = at.version else {
            return match load(at).await? {
                Some(table) => Ok(Some(Version::of(&table, at).await?)),
                None => Ok(None),
            };
        };
        let key = Opened {
            url: table_url(at)?.to_string(),
            version,
            committed: at.committed,
        };
        let found = (self.opened.lock().expect("opened versions").iter())
            .find(|(opened, _)| *opened == key)
            .map(|(_, version)| version.clone());
        if found.is_some() {
            return Ok(found);
        }
        let Some(table) = load(at).await? else {
            return Ok(None);
        };
        let opened = Version::of(&table, at).await?;
        let mut kept = self.opened.lock().expect("opened versions");
        if kept.len() >= KEPT_OPEN {
            kept.pop_front();
        }
        kept.push_back((key, opened.clone()));
        Ok(Some(opened))
    }
}

/// Gives delta-rs the tier's store for `nuthatch://` tables, rooted at the
/// table's own path.
struct TierLogStores;

impl LogStoreFactory for TierLogStores {
    fn with_options(
        &self,
        _prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        // delta-rs takes the URL's path without decoding it; the table URL
        // percent-encodes the key, so decode it back to the stored path.
        let path = Path::from_url_path(location.path())
            .map_err(|e| DeltaTableError::InvalidTableLocation(e.to_string()))?;
        let prefixed: ObjectStoreRef = Arc::new(PrefixStore::new(Arc::clone(&root_store), path));
        Ok(default_logstore(prefixed, root_store, location, options))
    }
}

fn register_scheme() {
    static REGISTERED: Once = Once::new();
    REGISTERED.call_once(|| {
        let scheme = Url::parse(&format!("{SCHEME}://")).expect("a valid scheme");
        logstore_factories().insert(scheme, Arc::new(TierLogStores));
    });
}

/// The table's URL: the tier's store URL and the entry's path, every byte
/// but unreserved ones percent-encoded, so that no key can break the URLs
/// delta-rs derives from it.
pub(crate) fn table_url(at: &Location) -> Result<Url> {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let encoded: Vec<String> = at
        .path
        .parts()
        .map(|part| percent_encoding::utf8_percent_encode(part.as_ref(), KEEP).to_string())
        .collect();
    let base = at.store_url.as_str().trim_end_matches('/');
    Url::parse(&format!("{base}/{}/", encoded.join("/")))
        .map_err(|e| DataFusionError::Execution(format!("the table location {base}: {e}")))
}

/// The table at `at`, loaded at `at.version` (or the latest), and whether
/// there is one; where there is none (no log), a handle whose first write
/// creates it.
pub(crate) async fn table(at: &Location) -> Result<(DeltaTable, bool)> {
    register_scheme();
    let url = table_url(at)?;
    let mut table = DeltaTableBuilder::from_url(url.clone())
        .and_then(|builder| {
            builder
                .with_storage_backend(Arc::clone(&at.store), url)
                .build()
        })
        .map_err(|e| delta_error("opening", e))?;
    let loaded = match at.version {
        Some(version) => table.load_version(version).await,
        None => table.load().await,
    };
    match loaded {
        Ok(()) => Ok((table, true)),
        Err(DeltaTableError::NotATable(_)) => Ok((table, false)),
        Err(e) => Err(DataFusionError::Execution(format!(
            "the Delta log of {}/_delta_log cannot be read{}: {}. Delete the entry (DELETE \
             FROM nuthatch.caches WHERE ...) and compute it again",
            at.path,
            at.version
                .map(|v| format!(" at version {v}"))
                .unwrap_or_default(),
            first_line(&e)
        ))),
    }
}

/// The table at `at`, if there is one.
pub(crate) async fn load(at: &Location) -> Result<Option<DeltaTable>> {
    let (table, exists) = table(at).await?;
    Ok(exists.then_some(table))
}

/// A delta-rs error, said in terms of what was being done to the table.
pub(crate) fn delta_error(doing: &str, error: DeltaTableError) -> DataFusionError {
    match error {
        DeltaTableError::Arrow { source } => DataFusionError::ArrowError(Box::new(source), None),
        other => {
            DataFusionError::Execution(format!("{doing} the Delta table: {}", first_line(&other)))
        }
    }
}

/// The message of a delta-rs error without the backtrace its log reader
/// appends when `RUST_BACKTRACE` is set.
fn first_line(error: &DeltaTableError) -> String {
    let text = error.to_string();
    text.lines()
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_string()
}

#[async_trait]
impl Backend for DeltaBackend {
    fn name(&self) -> &'static str {
        "delta"
    }

    fn extension(&self) -> &'static str {
        "delta"
    }

    fn setting_names(&self) -> &'static [&'static str] {
        &["retention_hours"]
    }

    fn configure(&self, section: Section<'_>) -> Result<TierSettings> {
        Ok(TierSettings::new(write::DeltaSettings::read(section)?))
    }

    fn commit(&self) -> Commit {
        Commit::Versioned
    }

    fn merges(&self) -> bool {
        true
    }

    /// Delta's timestamps are microseconds, and its dates days; its
    /// writer's statistics hold years 1 to 9999.
    fn losses(&self, _at: &Location, field: &Field) -> Vec<Loss> {
        match field.data_type() {
            DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                vec![Loss::SubMicros, Loss::BeyondYears]
            }
            DataType::Date64 => vec![Loss::TimeOfDay, Loss::BeyondYears],
            DataType::Timestamp(..) | DataType::Date32 => vec![Loss::BeyondYears],
            _ => Vec::new(),
        }
    }

    async fn open(
        &self,
        at: &Location,
        schema: SchemaRef,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(version) = self.open_version(at).await? else {
            return Ok(None);
        };
        let location = format!("{}{}", at.store_url.as_str(), at.path);
        Ok(Some(Arc::new(DeltaEntry::open(
            &version, schema, location,
        )?)))
    }

    async fn write(
        &self,
        at: &Location,
        data: SendableRecordBatchStream,
        options: &WriteOptions,
    ) -> Result<Written> {
        write::write(at, data, options).await
    }

    /// Delta's own vacuum, in its full mode: files no version of the log
    /// adds, whether a later commit removed them or a killed write never
    /// committed them, once untouched for `older_than`.
    async fn vacuum(
        &self,
        at: &Location,
        older_than: std::time::Duration,
        dry_run: bool,
    ) -> Result<Vec<String>> {
        let (table, exists) = table(at).await?;
        if !exists {
            return Ok(Vec::new());
        }
        let retention = chrono::Duration::from_std(older_than)
            .map_err(|e| DataFusionError::Plan(format!("the retention {older_than:?}: {e}")))?;
        let (_, metrics) = table
            .vacuum()
            .with_mode(deltalake::operations::vacuum::VacuumMode::Full)
            .with_retention_period(retention)
            .with_enforce_retention_duration(false)
            .with_dry_run(dry_run)
            .await
            .map_err(|e| delta_error("vacuuming", e))?;
        Ok(metrics.files_deleted)
    }

    async fn delete(&self, at: &Location) -> Result<()> {
        let store: &dyn ObjectStore = at.store.as_ref();
        let prefix = at.path.clone();
        let files = store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .boxed();
        store
            .delete_stream(files)
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::datasource::object_store::ObjectStoreUrl;

    #[test]
    fn table_urls_carry_any_key_back_to_its_path() {
        for key in ["plain/7.delta", "f/a|b^c@d [x].delta", "ns/f/é=1,2.delta"] {
            let at = Location::new(
                Arc::new(object_store::memory::InMemory::new()),
                ObjectStoreUrl::parse("nuthatch://root-1").unwrap(),
                Path::from(key),
            );
            let url = table_url(&at).unwrap();
            assert_eq!(url.host_str(), Some("root-1"));
            let back = Path::from_url_path(url.path()).unwrap();
            assert_eq!(back, at.path, "{url}");
            // delta-rs names a store after the path with '/' and ':' made
            // '-'; that must stay a valid URL host.
            let derived = format!(
                "delta-rs://nuthatch-root-1{}",
                url.path().replace(['/', ':'], "-")
            );
            assert!(ObjectStoreUrl::parse(&derived).is_ok(), "{derived}");
        }
    }
}

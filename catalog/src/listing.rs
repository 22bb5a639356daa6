//! The inventory of a tier: which entries and null markers its metastore
//! holds, what their metadata rows say, and how an entry is removed.
//!
//! Listing is one LIST of the metastore (of one function's folder when the
//! caller names a function), so its cost grows with the entries listed, not
//! with the data they hold. A listing that needs no metadata row lists a
//! local tier through [`crate::folder_index`], which lists again only the
//! folders that changed. The path alone gives the function, the backend
//! and whether the object is a null marker; anything else needs the
//! metadata row, read on request, in parallel with a bound, and kept
//! decoded (checked against the object's size and modification time) so a
//! second listing of an unchanged store reads nothing but the LIST.
//!
//! Paths can be ambiguous: `f/x/parquet.parquet` is the entry `f/x`, or the
//! zero-argument entry `f/` in namespace `x`. The row settles it; a null
//! marker, which has no row, is read the first way (Python's `list` reads it
//! the same way).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::ObjectStoreExt;

use crate::error::{Error, Result};
use crate::folder_index::{Found, Gather};
use crate::key::CacheKey;
use crate::metastore::{MetadataRow, Unreadable, METASTORE_DIR};
use crate::tier::Tier;
use crate::{Catalog, EntryId};

/// How many metadata rows are read at once.
const PARALLEL_READS: usize = 32;

/// Decoded rows kept at most; past this the memo starts over.
const MEMO_LIMIT: usize = 500_000;

/// What listings have cost since the catalog opened: LIST calls (one per
/// folder a local tier's index listed again), objects they returned,
/// metadata rows read from the store, and rows served from the decoded-row
/// memo instead.
#[derive(Debug, Default)]
pub struct ListingStats {
    /// LIST requests, or folders listed one level through the folder index.
    pub lists: AtomicU64,
    /// Objects the listings found; a count adds the entries it counted.
    pub objects: AtomicU64,
    pub rows_read: AtomicU64,
    pub rows_remembered: AtomicU64,
}

impl ListingStats {
    /// `(lists, objects, rows_read, rows_remembered)` so far.
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        (
            get(&self.lists),
            get(&self.objects),
            get(&self.rows_read),
            get(&self.rows_remembered),
        )
    }
}

/// What a listed metastore object is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListedKind {
    /// A metadata row of an entry stored with this backend.
    Entry { backend: String },
    /// A null marker: the function returned no result.
    Null,
}

/// One entry or null marker found on a tier.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Shared by every entry of one listing: a tier is a dozen strings and
    /// maps, too many to copy for each of 100,000 entries.
    pub tier: Arc<Tier>,
    pub function: String,
    pub kind: ListedKind,
    /// The key and namespace as the path reads (see the module docs); the
    /// row, once read, has the last word: see [`Listed::key`].
    pub path_key: String,
    pub path_namespace: Option<String>,
    /// The metadata row or null marker object.
    pub object: Path,
    pub object_size: u64,
    pub object_modified: DateTime<Utc>,
    /// The metadata row, after [`Catalog::read_rows`]: `Err` holds why it
    /// could not be decoded.
    pub row: Option<std::result::Result<Arc<MetadataRow>, Unreadable>>,
}

impl Listed {
    pub fn is_null(&self) -> bool {
        self.kind == ListedKind::Null
    }

    pub fn backend(&self) -> Option<&str> {
        match &self.kind {
            ListedKind::Entry { backend } => Some(backend),
            ListedKind::Null => None,
        }
    }

    /// The decoded row, if it was read and is sound.
    pub fn metadata(&self) -> Option<&MetadataRow> {
        self.row
            .as_ref()
            .and_then(|r| r.as_ref().ok())
            .map(|r| &**r)
    }

    /// Why the row could not be read, if it could not.
    pub fn corruption(&self) -> Option<&str> {
        self.row
            .as_ref()
            .and_then(|r| r.as_ref().err())
            .map(|why| why.0.as_str())
    }

    /// The key and namespace: the row's when it was read and agrees with
    /// where it sits, else the path's reading.
    pub fn key(&self) -> (String, Option<String>) {
        if let Some(row) = self.metadata() {
            let dir = match &row.namespace {
                Some(ns) => format!("{}/{ns}", row.cache_key.trim_end_matches('/')),
                None => row.cache_key.trim_end_matches('/').to_string(),
            };
            if Some(dir.as_str()) == self.object_dir() {
                return (row.cache_key.clone(), row.namespace.clone());
            }
        }
        (self.path_key.clone(), self.path_namespace.clone())
    }

    /// The metadata folder of an entry, relative to the metastore.
    fn object_dir(&self) -> Option<&str> {
        self.object
            .as_ref()
            .strip_prefix(METASTORE_DIR)?
            .strip_prefix('/')?
            .rsplit_once('/')
            .map(|(dir, _)| dir)
    }
}

/// Decoded metadata rows, by tier and path, with the size and time of the
/// object they were decoded from.
#[derive(Debug, Default)]
pub(crate) struct RowMemo {
    rows: Mutex<HashMap<MemoKey, MemoRow>>,
}

/// A metadata object: its tier's name and path.
type MemoKey = (String, Path);
/// The object's size and time when decoded, and the row.
type MemoRow = (u64, DateTime<Utc>, Arc<MetadataRow>);

impl RowMemo {
    fn get(&self, listed: &Listed) -> Option<Arc<MetadataRow>> {
        let rows = self.rows.lock().expect("row memo poisoned");
        let (size, modified, row) =
            rows.get(&(listed.tier.name().to_string(), listed.object.clone()))?;
        (*size == listed.object_size && *modified == listed.object_modified)
            .then(|| Arc::clone(row))
    }

    fn put(&self, listed: &Listed, row: Arc<MetadataRow>) {
        let mut rows = self.rows.lock().expect("row memo poisoned");
        if rows.len() >= MEMO_LIMIT {
            rows.clear();
        }
        rows.insert(
            (listed.tier.name().to_string(), listed.object.clone()),
            (listed.object_size, listed.object_modified, row),
        );
    }

    fn forget(&self, listed: &Listed) {
        self.rows
            .lock()
            .expect("row memo poisoned")
            .remove(&(listed.tier.name().to_string(), listed.object.clone()));
    }
}

/// The metastore folder of `function`, or the whole metastore.
fn metastore_prefix(function: Option<&str>) -> Path {
    match function {
        Some(f) => Path::from(METASTORE_DIR).join(f),
        None => Path::from(METASTORE_DIR),
    }
}

/// `location` within the metastore folder.
fn relative(location: &Path) -> Option<&str> {
    location
        .as_ref()
        .strip_prefix(METASTORE_DIR)?
        .strip_prefix('/')
}

/// Whether the object at `location` is a listed entry or null marker (what
/// the folder index counts).
pub(crate) fn is_listed(location: &Path) -> bool {
    relative(location).and_then(parse).is_some()
}

/// Reads a metastore path (relative to the tier) as an entry or a null
/// marker; `None` for the metastore's own files and anything foreign.
pub(crate) fn parse(relative: &str) -> Option<(String, ListedKind, String, Option<String>)> {
    let mut parts: Vec<&str> = relative.split('/').collect();
    let file = parts.pop()?;
    if parts.first().is_none_or(|first| *first == "write_check") {
        return None;
    }
    let function = parts[0].to_string();
    if let Some(backend) = file.strip_suffix(".parquet") {
        let kind = ListedKind::Entry {
            backend: backend.to_string(),
        };
        return match parts.as_slice() {
            [f] => Some((function, kind, format!("{f}/"), None)),
            [f, values] => Some((function, kind, format!("{f}/{values}"), None)),
            [f, values, ns] => Some((
                function,
                kind,
                format!("{f}/{values}"),
                Some(ns.to_string()),
            )),
            _ => None,
        };
    }
    let stem = file.strip_suffix(".null")?;
    match parts.as_slice() {
        [f] => Some((function, ListedKind::Null, format!("{f}/{stem}"), None)),
        [f, values] => Some((
            function,
            ListedKind::Null,
            format!("{f}/{values}"),
            Some(stem.to_string()),
        )),
        _ => None,
    }
}

impl Catalog {
    /// What listings have cost so far.
    pub fn listing_stats(&self) -> &ListingStats {
        &self.listing_stats
    }

    /// Every entry and null marker on `tier` (of `function`, if named):
    /// one LIST, no metadata read. A tier whose folder does not exist yet
    /// has none; a mirror that cannot be reached is skipped with a
    /// warning, other tiers' failures are errors.
    pub async fn list(&self, tier: &Tier, function: Option<&str>) -> Result<Vec<Listed>> {
        crate::skip_unreachable_mirror(tier, self.list_on(tier, function, false).await)
    }

    /// [`Catalog::list`] for a caller that needs which entries exist, not
    /// their rows: on a local tier, from the folders that changed since
    /// the last such listing ([`crate::folder_index`]). Sizes and times
    /// may be those of the last listing.
    pub async fn list_paths(&self, tier: &Tier, function: Option<&str>) -> Result<Vec<Listed>> {
        crate::skip_unreachable_mirror(tier, self.list_on(tier, function, true).await)
    }

    /// Every entry and null marker on `tier`, as [`Catalog::list_paths`]
    /// finds them; an unreachable tier is an error whatever its role.
    pub async fn list_strict(&self, tier: &Tier) -> Result<Vec<Listed>> {
        self.list_on(tier, None, true).await
    }

    /// How many entries and null markers [`Catalog::list_paths`] would
    /// find: on a local tier, without gathering or parsing the objects of
    /// the folders that did not change.
    pub async fn count_paths(&self, tier: &Tier, function: Option<&str>) -> Result<usize> {
        let Some(root) = tier.folder() else {
            return Ok(self.list_paths(tier, function).await?.len());
        };
        let prefix = metastore_prefix(function);
        let index = &self.folder_index;
        let counted = (index.walk(tier.name(), tier.store(), root, &prefix, Gather::Count)).await;
        let found = crate::skip_unreachable_mirror(tier, self.found(tier, &prefix, counted))?;
        Ok(found.entries)
    }

    async fn list_on(
        &self,
        tier: &Tier,
        function: Option<&str>,
        paths_only: bool,
    ) -> Result<Vec<Listed>> {
        let prefix = metastore_prefix(function);
        let listing = match (tier.folder(), paths_only) {
            (Some(root), true) => {
                let index = &self.folder_index;
                index
                    .walk(tier.name(), tier.store(), root, &prefix, Gather::Objects)
                    .await
            }
            _ => (tier.store().list(Some(&prefix)).try_collect().await).map(|objects| Found {
                objects,
                entries: 0,
                lists: 1,
            }),
        };
        let objects = self.found(tier, &prefix, listing)?.objects;
        let shared = Arc::new(tier.clone());
        let mut listed: Vec<Listed> = objects
            .into_iter()
            .filter_map(|meta| {
                let (function, kind, path_key, path_namespace) = parse(relative(&meta.location)?)?;
                Some(Listed {
                    tier: Arc::clone(&shared),
                    function,
                    kind,
                    path_key,
                    path_namespace,
                    object: meta.location,
                    object_size: meta.size,
                    object_modified: meta.last_modified,
                    row: None,
                })
            })
            .collect();
        listed.sort_by(|a, b| a.object.as_ref().cmp(b.object.as_ref()));
        Ok(listed)
    }

    /// What a LIST of `prefix` on `tier` found, counted in the listing
    /// stats; a prefix that does not exist holds nothing.
    fn found(
        &self,
        tier: &Tier,
        prefix: &Path,
        listing: object_store::Result<Found>,
    ) -> Result<Found> {
        let found = match listing {
            Ok(found) => found,
            Err(object_store::Error::NotFound { .. }) => Found {
                lists: 1,
                ..Found::default()
            },
            Err(e) => return Err(tier.unreachable(&format!("listing {prefix}"), e)),
        };
        let stats = &self.listing_stats;
        stats.lists.fetch_add(found.lists, Ordering::Relaxed);
        let objects = found.objects.len().max(found.entries);
        stats.objects.fetch_add(objects as u64, Ordering::Relaxed);
        Ok(found)
    }

    /// Reads the metadata rows of the listed entries (null markers have
    /// none), `PARALLEL_READS` at a time. A row that cannot be read or
    /// decoded is noted on its entry, not an error: one bad file must not
    /// hide the rest of a listing. A tier that fails outright is.
    pub async fn read_rows(&self, listed: &mut [Listed]) -> Result<()> {
        let wanted: Vec<usize> = listed
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.is_null() && l.row.is_none())
            .map(|(i, _)| i)
            .collect();
        let mut reads = Vec::new();
        for &i in &wanted {
            match self.row_memo.get(&listed[i]) {
                Some(row) => listed[i].row = Some(Ok(row)),
                None => reads.push(i),
            }
        }
        self.listing_stats
            .rows_remembered
            .fetch_add((wanted.len() - reads.len()) as u64, Ordering::Relaxed);
        self.listing_stats
            .rows_read
            .fetch_add(reads.len() as u64, Ordering::Relaxed);
        let fetched: Vec<(
            usize,
            std::result::Result<bytes::Bytes, object_store::Error>,
        )> = futures::stream::iter(reads.into_iter().map(|i| {
            let store = Arc::clone(listed[i].tier.store());
            let path = listed[i].object.clone();
            async move {
                let bytes = match store.get(&path).await {
                    Ok(result) => result.bytes().await,
                    Err(e) => Err(e),
                };
                (i, bytes)
            }
        }))
        .buffer_unordered(PARALLEL_READS)
        .collect()
        .await;
        for (i, bytes) in fetched {
            let entry = &mut listed[i];
            entry.row = Some(match bytes {
                Ok(bytes) => match MetadataRow::decode(bytes) {
                    Ok(row) => {
                        let row = Arc::new(row);
                        self.row_memo.put(entry, Arc::clone(&row));
                        Ok(row)
                    }
                    Err(reason) => Err(reason),
                },
                // Removed since the LIST: gone, not corrupt.
                Err(object_store::Error::NotFound { .. }) => {
                    Err(Unreadable("removed while listing".into()))
                }
                Err(e) => {
                    return Err(entry
                        .tier
                        .unreachable(&format!("reading {}", entry.object), e))
                }
            });
        }
        // A pending record is settled each time it is read, never
        // remembered: its data may be published meanwhile.
        for entry in listed.iter_mut() {
            let Some(Ok(row)) = &entry.row else { continue };
            if row.state == crate::metastore::PENDING {
                let settled = self.settled(&entry.tier, (**row).clone()).await?;
                entry.row = Some(Ok(Arc::new(settled)));
            }
        }
        Ok(())
    }

    /// Removes a listed entry: its metadata row first, so that from then
    /// on every reader sees a miss, then its data. A crash between the two
    /// leaves data no metadata vouches for, which the next write of the
    /// entry replaces; never metadata without its data. A null marker is
    /// one object. Entries in a format this build does not have lose their
    /// metadata and keep their data, with a warning naming where it is.
    pub async fn delete_listed(&self, listed: &Listed) -> Result<()> {
        let tier = &listed.tier;
        if tier.is_read_only() {
            return Err(Error::ReadOnlyTier {
                tier: tier.name().to_string(),
                location: tier.url().to_string(),
                key: listed.key().0,
            });
        }
        match tier.store().delete(&listed.object).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Catalog::unwritable(tier, &listed.object, e)),
        }
        tracing::debug!(object = %listed.object, tier = tier.name(), "removed metadata");
        self.row_memo.forget(listed);
        // Whatever this process memoized for the function may be the
        // entry just removed; memory is cheap to refill.
        self.memory.forget_function(&listed.function);
        let Some(backend_name) = listed.backend() else {
            return Ok(());
        };
        let (key, namespace) = listed.key();
        let Ok(key) = CacheKey::stored(&key) else {
            tracing::warn!(object = %listed.object, "removed metadata whose key names no place in the store; no data removed");
            return Ok(());
        };
        let Some(backend) = self.backends.get(backend_name) else {
            tracing::warn!(
                key = %key,
                backend = backend_name,
                data = listed.metadata().map(|r| r.path.as_str()).unwrap_or("unknown"),
                "removed the metadata of an entry in a format this build does not have; its data stays"
            );
            return Ok(());
        };
        let at = tier.entry_location(&**backend, &key, namespace.as_deref());
        let id = EntryId {
            key,
            namespace,
            version: None,
        };
        backend
            .delete(&at)
            .await
            .map_err(|source| self.backend_error(backend.name(), &id, tier, source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metastore_paths_read_as_entries_and_null_markers() {
        let entry = |b: &str| ListedKind::Entry { backend: b.into() };
        assert_eq!(
            parse("f/1/parquet.parquet"),
            Some(("f".into(), entry("parquet"), "f/1".into(), None))
        );
        assert_eq!(
            parse("f/1/ns/arrow.parquet"),
            Some(("f".into(), entry("arrow"), "f/1".into(), Some("ns".into())))
        );
        assert_eq!(
            parse("tk/parquet.parquet"),
            Some(("tk".into(), entry("parquet"), "tk/".into(), None))
        );
        assert_eq!(
            parse("f/1.null"),
            Some(("f".into(), ListedKind::Null, "f/1".into(), None))
        );
        assert_eq!(
            parse("tk/.null"),
            Some(("tk".into(), ListedKind::Null, "tk/".into(), None))
        );
        assert_eq!(
            parse("f/1/ns.null"),
            Some((
                "f".into(),
                ListedKind::Null,
                "f/1".into(),
                Some("ns".into())
            ))
        );
        assert_eq!(parse("exists.nut"), None);
        assert_eq!(parse("write_check/12.nut"), None);
        assert_eq!(parse("f/1/ns/x/parquet.parquet"), None);
    }
}

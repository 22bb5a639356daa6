//! Vacuum: removing what killed and superseded writes left on the writable
//! tiers, never anything a reader could see.
//!
//! Every write is atomic, so what a crash leaves behind is invisible, but
//! it takes room (and on S3, money). A vacuum finds, on root and local
//! (mirrors and read-only tiers are never touched):
//!
//! - incomplete multipart uploads on S3 ([`uploads`]);
//! - staged files (`<name>#<n>`) of a local folder, which a killed write
//!   never renamed into place, and the folders they and deletions left
//!   empty;
//! - staged copies of replacements (`<entry>.next/<copy>/`, Zarr) that no
//!   pending record reads from;
//! - leases and commit locks of processes that died holding them;
//! - files of versioned entries (Delta) that no version references;
//! - data with no metadata row (an entry whose metadata was removed, or a
//!   write killed between its data and its metadata): listed, and removed
//!   only when asked (`orphans`), since another tool may have put it there.
//!
//! **Safe while others write.** A write in progress looks like several of
//! these (its data has no metadata yet, its upload is incomplete), so only
//! what has not changed for `older_than` is touched. A lease goes when its
//! holder is a process of this machine that is gone, or once untouched for
//! [`DEAD_AFTER`] (a live one is rewritten every few seconds); a commit
//! lock once older than any commit holds one. Only files that look like an entry's (the extension of a
//! backend this build has) can be orphans; databases beside the tier are
//! left alone.

mod uploads;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt};

pub(crate) use uploads::S3Uploads;

use crate::error::Result;
use crate::key::CacheKey;
use crate::listing::Listed;
use crate::metastore::METASTORE_DIR;
use crate::tier::Tier;
use crate::Catalog;

/// A lease or lock not rewritten for this long belongs to a dead process:
/// live ones are rewritten every third of their ttl (30 s by default).
pub const DEAD_AFTER: Duration = Duration::from_secs(600);

/// What to remove.
#[derive(Debug, Clone, Copy)]
pub struct VacuumOptions {
    /// List what would go, and remove nothing.
    pub dry_run: bool,
    /// Also remove data without metadata (otherwise only listed).
    pub orphans: bool,
    /// Only what has not changed for this long.
    pub older_than: Duration,
}

impl Default for VacuumOptions {
    fn default() -> Self {
        VacuumOptions {
            dry_run: false,
            orphans: false,
            older_than: Duration::from_secs(24 * 3600),
        }
    }
}

/// A kind of leftover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leftover {
    /// An incomplete multipart upload.
    Upload,
    /// A staged file a killed write never moved into place.
    Staged,
    /// A lease or commit lock of a process that died holding it.
    DeadLease,
    /// A file of a versioned entry that no version references.
    Unreferenced,
    /// A folder with nothing in it.
    EmptyFolder,
    /// Data with no metadata row.
    Orphan,
}

impl Leftover {
    pub fn name(self) -> &'static str {
        match self {
            Leftover::Upload => "incomplete upload",
            Leftover::Staged => "staged file",
            Leftover::DeadLease => "dead lease",
            Leftover::Unreferenced => "unreferenced file",
            Leftover::EmptyFolder => "empty folder",
            Leftover::Orphan => "data without metadata",
        }
    }
}

/// One thing a vacuum found.
#[derive(Debug, Clone)]
pub struct Swept {
    pub tier: String,
    pub kind: Leftover,
    /// The path within the tier (an upload: the object it would create).
    pub path: String,
    pub bytes: Option<u64>,
    /// When it last changed.
    pub modified: Option<DateTime<Utc>>,
    /// Removed, rather than only found (a dry run, or an orphan without
    /// `orphans`).
    pub removed: bool,
}

impl Catalog {
    /// Sweeps root and local (whichever are writable) as `options` say.
    pub async fn vacuum(&self, options: VacuumOptions) -> Result<Vec<Swept>> {
        let mut swept = Vec::new();
        let mut seen = HashSet::new();
        for tier in [self.root(), self.local()] {
            if tier.is_read_only() || !seen.insert(tier.url().to_string()) {
                continue;
            }
            tracing::info!(tier = tier.name(), "vacuuming");
            self.vacuum_tier(tier, &options, &mut swept).await?;
        }
        Ok(swept)
    }

    async fn vacuum_tier(
        &self,
        tier: &Tier,
        options: &VacuumOptions,
        swept: &mut Vec<Swept>,
    ) -> Result<()> {
        let objects: Vec<ObjectMeta> = match tier.store().list(None).try_collect().await {
            Ok(objects) => objects,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(tier.unreachable("listing for vacuum", e)),
        };
        let now = Utc::now();
        let idle = |modified: DateTime<Utc>, for_at_least: Duration| {
            (now - modified)
                .to_std()
                .is_ok_and(|age| age >= for_at_least)
        };
        let mut found = Vec::new();
        // Leases of dead holders (gone from this machine, or silent for
        // long), and locks and takeover markers left for longer than a
        // live one is ever held. The entries of live leases are being
        // written: nothing of theirs is touched.
        let mut busy = HashSet::new();
        for meta in &objects {
            let path = meta.location.as_ref();
            if !path.starts_with(METASTORE_DIR) {
                continue;
            }
            if path.ends_with(".lease") {
                let store = tier.store().as_ref();
                let dead = idle(meta.last_modified, DEAD_AFTER)
                    || crate::lease::held_by_the_dead(store, &meta.location).await;
                match dead {
                    true => found.push(leftover(tier, Leftover::DeadLease, meta)),
                    false => busy.extend(self.leased_data(tier, path)),
                }
            } else if (path.ends_with(".lock") || path.contains(".lease.takeover-"))
                && idle(meta.last_modified, crate::lock::STALE)
            {
                found.push(leftover(tier, Leftover::DeadLease, meta));
            }
        }
        let listed = self.list(tier, None).await?;
        (self.unreferenced(tier, options, &listed, &busy, &objects, &mut found)).await?;
        found.extend(self.orphans(tier, &listed, &objects, options.older_than, idle));
        let staged = self.staged_copies(tier, &listed, &objects).await?;
        found.extend(staged.into_iter().filter(|s| {
            s.modified
                .is_some_and(|modified| idle(modified, options.older_than))
        }));
        let extensions = self.extensions();
        found.retain(|item| {
            // A staged copy is its entry's.
            let data = (item.path.split_once(".next/")).map_or(item.path.as_str(), |(at, _)| at);
            !entry_of(data, &extensions).is_some_and(|entry| busy.contains(&entry))
        });
        if let Some(uploads) = tier.uploads() {
            let listed = uploads.list().await.map_err(|e| {
                crate::Error::Config(format!(
                    "the {} tier's incomplete uploads could not be listed: {e}",
                    tier.name()
                ))
            })?;
            for upload in listed {
                let Some(path) = uploads.within_tier(&upload.key) else {
                    continue;
                };
                let writing = entry_of(&path, &extensions).is_some_and(|e| busy.contains(&e));
                if writing || !idle(upload.initiated, options.older_than) {
                    continue;
                }
                let removed = !options.dry_run && uploads.abort(&upload).await.is_ok();
                swept.push(Swept {
                    tier: tier.name().to_string(),
                    kind: Leftover::Upload,
                    path,
                    bytes: None,
                    modified: Some(upload.initiated),
                    removed,
                });
            }
        }
        for mut item in found {
            let remove = !options.dry_run
                && (item.kind != Leftover::Orphan || options.orphans)
                && item.kind != Leftover::Unreferenced;
            if remove {
                item.removed = remove_all(tier, &item.path).await;
            }
            swept.push(item);
        }
        if let Some(folder) = tier.folder() {
            sweep_folder(tier, folder, options, &busy, &extensions, swept);
        }
        Ok(())
    }

    /// The extensions of the formats whose data is objects on the tier.
    fn extensions(&self) -> Vec<String> {
        (self.backends.iter())
            .filter(|b| b.stores_objects())
            .map(|b| format!(".{}", b.extension()))
            .collect()
    }

    /// The backend of a listed entry and where its data is on `tier`, when
    /// it is an entry of one of this build's backends.
    fn located(
        &self,
        tier: &Tier,
        listed: &Listed,
    ) -> Option<(
        Arc<dyn nuthatch_backends::Backend>,
        nuthatch_backends::Location,
    )> {
        let backend = self.backends.get(listed.backend()?)?;
        let key = CacheKey::stored(&listed.path_key).ok()?;
        let at = tier.entry_location(&**backend, &key, listed.path_namespace.as_deref());
        Some((Arc::clone(backend), at))
    }

    /// Staged copies of replacements (`<entry>.next/<copy>/…`, see
    /// [`nuthatch_backends::Published::staged`]) that no record reads
    /// from: a killed write's. Only the records of entries with such
    /// copies are read.
    async fn staged_copies(
        &self,
        tier: &Tier,
        listed: &[Listed],
        objects: &[ObjectMeta],
    ) -> Result<Vec<Swept>> {
        let extensions = self.extensions();
        let mut groups = Groups::default();
        for meta in objects {
            let path = meta.location.as_ref();
            let Some((data, rest)) = path.split_once(".next/") else {
                continue;
            };
            if entry_of(data, &extensions).as_deref() != Some(data) {
                continue;
            }
            let copy = rest.split('/').next().unwrap_or_default();
            groups.add(format!("{data}.next/{copy}"), meta);
        }
        let entries: HashSet<&str> = (groups.0.keys())
            .filter_map(|staged| staged.split_once(".next/").map(|(data, _)| data))
            .collect();
        let mut owners: Vec<Listed> = (listed.iter())
            .filter(|l| {
                self.located(tier, l)
                    .is_some_and(|(_, at)| entries.contains(at.path.as_ref()))
            })
            .cloned()
            .collect();
        self.read_rows(&mut owners).await?;
        let read: HashSet<String> = (owners.iter())
            .filter_map(|l| l.metadata()?.staged())
            .map(|p| p.to_string())
            .collect();
        groups.0.retain(|path, _| !read.contains(path));
        Ok(groups.swept(tier, Leftover::Staged))
    }

    /// The data path of the entry whose lease is at `lease` (a path under
    /// the metastore), if it names one of this build's backends.
    fn leased_data(&self, tier: &Tier, lease: &str) -> Option<String> {
        let relative = lease.strip_prefix(METASTORE_DIR)?.strip_prefix('/')?;
        let as_row = format!("{}.parquet", relative.strip_suffix(".lease")?);
        let (_, kind, key, namespace) = crate::listing::parse(&as_row)?;
        let crate::listing::ListedKind::Entry { backend } = kind else {
            return None;
        };
        let backend = self.backends.get(&backend)?;
        let key = CacheKey::stored(&key).ok()?;
        let at = tier.entry_location(&**backend, &key, namespace.as_deref());
        Some(at.path.to_string())
    }

    /// Files of versioned entries that no version references, which the
    /// backend removes itself (unless a dry run).
    async fn unreferenced(
        &self,
        tier: &Tier,
        options: &VacuumOptions,
        listed: &[Listed],
        busy: &HashSet<String>,
        objects: &[ObjectMeta],
        found: &mut Vec<Swept>,
    ) -> Result<()> {
        let sizes: BTreeMap<&str, &ObjectMeta> =
            objects.iter().map(|m| (m.location.as_ref(), m)).collect();
        for listed in listed {
            let Some((backend, at)) = self.located(tier, listed) else {
                continue;
            };
            if busy.contains(at.path.as_ref()) {
                continue;
            }
            let files = backend
                .vacuum(&at, options.older_than, options.dry_run)
                .await
                .map_err(|e| crate::Error::Config(format!("vacuuming {}: {e}", at.path)))?;
            for file in files {
                let path = match file.starts_with(at.path.as_ref()) {
                    true => file,
                    false => format!("{}/{file}", at.path),
                };
                let meta = sizes.get(path.as_str());
                found.push(Swept {
                    tier: tier.name().to_string(),
                    kind: Leftover::Unreferenced,
                    bytes: meta.map(|m| m.size),
                    modified: meta.map(|m| m.last_modified),
                    path,
                    removed: !options.dry_run,
                });
            }
        }
        Ok(())
    }

    /// Data of an entry's shape (`[<namespace>/]<key>.<extension>`, a file
    /// or a folder) that no metadata row names, untouched for `older_than`.
    fn orphans(
        &self,
        tier: &Tier,
        listed: &[Listed],
        objects: &[ObjectMeta],
        older_than: Duration,
        idle: impl Fn(DateTime<Utc>, Duration) -> bool,
    ) -> Vec<Swept> {
        let extensions = self.extensions();
        let mut known = HashSet::new();
        for listed in listed {
            if let Some((_, at)) = self.located(tier, listed) {
                known.insert(at.path.to_string());
            }
        }
        // Each orphan, with its size and when any of it last changed.
        let mut groups = Groups::default();
        for meta in objects {
            let path = meta.location.as_ref();
            if path.starts_with(METASTORE_DIR) {
                continue;
            }
            let Some(entry) = entry_of(path, &extensions) else {
                continue;
            };
            if known.contains(&entry) {
                continue;
            }
            groups.add(entry, meta);
        }
        groups
            .0
            .retain(|_, (_, modified)| idle(*modified, older_than));
        groups.swept(tier, Leftover::Orphan)
    }
}

/// Objects summed by the leftover they make up (an entry's data, a staged
/// copy): their bytes, and when any of them last changed.
#[derive(Default)]
struct Groups(BTreeMap<String, (u64, DateTime<Utc>)>);

impl Groups {
    fn add(&mut self, group: String, meta: &ObjectMeta) {
        let sum = self.0.entry(group).or_insert((0, meta.last_modified));
        sum.0 += meta.size;
        sum.1 = sum.1.max(meta.last_modified);
    }

    fn swept(self, tier: &Tier, kind: Leftover) -> Vec<Swept> {
        (self.0.into_iter())
            .map(|(path, (bytes, modified))| Swept {
                tier: tier.name().to_string(),
                kind,
                path,
                bytes: Some(bytes),
                modified: Some(modified),
                removed: false,
            })
            .collect()
    }
}

/// The entry data `path` belongs to: the path up to the first component
/// that ends with one of `extensions` (a file, or a folder of files).
fn entry_of(path: &str, extensions: &[String]) -> Option<String> {
    let mut end = 0;
    for component in path.split('/') {
        end += component.len();
        if extensions
            .iter()
            .any(|ext| component.ends_with(ext.as_str()))
        {
            return Some(path[..end].to_string());
        }
        end += 1;
    }
    None
}

fn leftover(tier: &Tier, kind: Leftover, meta: &ObjectMeta) -> Swept {
    Swept {
        tier: tier.name().to_string(),
        kind,
        path: meta.location.to_string(),
        bytes: Some(meta.size),
        modified: Some(meta.last_modified),
        removed: false,
    }
}

/// Removes the object at `path`, or every object under it; whether all
/// went.
async fn remove_all(tier: &Tier, path: &str) -> bool {
    let store = tier.store();
    let path = Path::from(path);
    let mut under: Vec<Path> = match store.list(Some(&path)).try_collect::<Vec<_>>().await {
        Ok(objects) => objects.into_iter().map(|m| m.location).collect(),
        Err(_) => Vec::new(),
    };
    if under.is_empty() {
        under.push(path);
    }
    let mut removed = true;
    for object in under {
        match store.delete(&object).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(tier = tier.name(), object = %object, "vacuum could not remove: {e}");
                removed = false;
            }
        }
    }
    removed
}

/// A local tier's staged files and empty folders, which listing the store
/// does not show.
fn sweep_folder(
    tier: &Tier,
    folder: &std::path::Path,
    options: &VacuumOptions,
    busy: &HashSet<String>,
    extensions: &[String],
    swept: &mut Vec<Swept>,
) {
    let mut found = Vec::new();
    walk(folder, folder, options.older_than, &mut found);
    // A live write's staged files are its own.
    found.retain(|(kind, path, ..)| {
        let staged_for = path
            .rsplit_once('#')
            .map_or(path.as_str(), |(name, _)| name);
        *kind != Leftover::Staged
            || !entry_of(staged_for, extensions).is_some_and(|e| busy.contains(&e))
    });
    for (kind, path, bytes, modified) in found {
        let removed = !options.dry_run
            && match kind {
                Leftover::EmptyFolder => std::fs::remove_dir(folder.join(&path)).is_ok(),
                _ => std::fs::remove_file(folder.join(&path)).is_ok(),
            };
        swept.push(Swept {
            tier: tier.name().to_string(),
            kind,
            path,
            bytes,
            modified,
            removed,
        });
    }
}

type Found = (Leftover, String, Option<u64>, Option<DateTime<Utc>>);

/// Walks `dir` under `root`; whether `dir` holds nothing that stays (so
/// that its parent can count it as empty).
fn walk(
    root: &std::path::Path,
    dir: &std::path::Path,
    older_than: Duration,
    found: &mut Vec<Found>,
) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut empty = true;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else {
            empty = false;
            continue;
        };
        let relative = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        let modified: Option<DateTime<Utc>> = meta.modified().ok().map(DateTime::from);
        let idle = meta
            .modified()
            .ok()
            .and_then(|at| at.elapsed().ok())
            .is_some_and(|age| age >= older_than);
        if meta.is_dir() {
            if walk(root, &path, older_than, found) && idle {
                found.push((Leftover::EmptyFolder, relative, None, modified));
            } else {
                empty = false;
            }
            continue;
        }
        let name = entry.file_name().to_string_lossy().to_string();
        let staged = name
            .rsplit_once('#')
            .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if staged && idle {
            found.push((Leftover::Staged, relative, Some(meta.len()), modified));
        } else {
            empty = false;
        }
    }
    empty
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_paths_are_read_up_to_the_format_s_extension() {
        let extensions = vec![".parquet".to_string(), ".zarr".to_string()];
        let of = |path| entry_of(path, &extensions);
        assert_eq!(of("f/1.parquet").as_deref(), Some("f/1.parquet"));
        assert_eq!(of("ns/f/1.zarr/v/c/0").as_deref(), Some("ns/f/1.zarr"));
        assert_eq!(of("f/.parquet").as_deref(), Some("f/.parquet"));
        assert_eq!(of("nuthatch.sqlite"), None);
        assert_eq!(of("notes/readme.txt"), None);
    }
}

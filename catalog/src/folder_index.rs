//! A local tier's metastore listed from what earlier listings saw, checked
//! against each folder's modification time.
//!
//! Python's layout gives every entry a folder of its own, so a LIST of a
//! local metastore walks as many folders as there are entries: about 2 s
//! for 100,000 through `object_store` here, and 0.9 s even for `find`.
//! Adding, removing or renaming a file or folder changes its parent
//! folder's modification time, and a `stat` of a folder costs a small part
//! of reading it. So the index keeps, per folder, what one level of
//! listing returned (its objects and subfolders) with the time the folder
//! had; a later listing stats each folder it reaches and lists again only
//! those whose time moved. Nothing is written to the store: Python sees it
//! unchanged, and a new process starts from an empty index.
//!
//! A folder's time has a granularity (a clock tick; seconds on some
//! filesystems), so a change in the same tick as the time recorded would
//! go unseen. As git does with its index, a folder whose time is within
//! [`SETTLING`] of when it was checked is not trusted and is listed again
//! next time.
//!
//! The index answers which objects exist. Their sizes and times are as
//! last listed, and a file rewritten in place (not replaced) keeps its
//! folder's time, so listings that read metadata rows use a full LIST.
//!
//! Each folder also keeps how many of its objects are entries (by the
//! predicate the index was made with), so a count ([`Gather::Count`])
//! costs an unchanged folder its `stat` alone: no object is copied and no
//! path parsed, which were half of a count's time over 100,000 entries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use futures::{FutureExt, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore};

/// How long after a folder's modification time its listing is trusted.
pub(crate) const SETTLING: Duration = Duration::from_secs(2);

/// Folders listed at once when their times moved.
const PARALLEL_LISTS: usize = 16;

/// Folders kept at most; past this the index starts over.
const FOLDER_LIMIT: usize = 1_000_000;

/// One folder as last listed.
#[derive(Debug)]
struct Seen {
    /// The folder's time before it was listed; `None` if it could not be
    /// read, which is never trusted.
    modified: Option<SystemTime>,
    /// Whether `modified` was older than [`SETTLING`] when checked.
    settled: bool,
    objects: Vec<ObjectMeta>,
    folders: Vec<Path>,
    /// How many of `objects` are entries.
    entries: usize,
}

/// The folders of one tier, by path in the store.
type Folders = HashMap<Path, Arc<Seen>>;

/// The folders of local tiers, by tier name.
#[derive(Debug)]
pub(crate) struct FolderIndex {
    tiers: Mutex<HashMap<String, Arc<RwLock<Folders>>>>,
    /// Whether an object is an entry, for counts.
    is_entry: fn(&Path) -> bool,
}

/// What one level of folders holds: the objects (when gathered), entries
/// and subfolders of those that did not change, and those that did, each
/// with its time.
#[derive(Default)]
struct Level {
    objects: Vec<ObjectMeta>,
    entries: usize,
    folders: Vec<Path>,
    moved: Vec<(Path, Option<SystemTime>)>,
}

/// What a walk gathers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gather {
    /// Every object, and how many are entries.
    Objects,
    /// How many objects are entries, without copying any.
    Count,
}

/// What a walk found under a prefix.
#[derive(Default)]
pub(crate) struct Found {
    /// Every object, in no order; none for [`Gather::Count`].
    pub objects: Vec<ObjectMeta>,
    /// How many objects are entries.
    pub entries: usize,
    /// Folders listed to find them.
    pub lists: u64,
}

impl FolderIndex {
    /// An empty index whose counts take the objects `is_entry` accepts.
    pub(crate) fn new(is_entry: fn(&Path) -> bool) -> Self {
        Self {
            tiers: Mutex::default(),
            is_entry,
        }
    }

    /// What is under `prefix` in `store`, whose files are in the local
    /// folder `root`: every object as a recursive LIST returns them but in
    /// no order, or with [`Gather::Count`] only how many are entries.
    pub(crate) async fn walk(
        &self,
        tier: &str,
        store: &Arc<dyn ObjectStore>,
        root: &std::path::Path,
        prefix: &Path,
        gather: Gather,
    ) -> object_store::Result<Found> {
        let known = self.folders_of(tier);
        let mut found = Found::default();
        let mut level = vec![prefix.clone()];
        while !level.is_empty() {
            let checked = SystemTime::now();
            let Level {
                objects: unchanged,
                entries,
                folders: mut next,
                moved,
            } = check_level(root, &known, std::mem::take(&mut level), gather).await;
            found.objects.extend(unchanged);
            found.entries += entries;
            let listed: Vec<_> = futures::stream::iter(moved)
                .map(|(folder, modified)| async move {
                    let listing = store.list_with_delimiter(Some(&folder)).await?;
                    Ok::<_, object_store::Error>((folder, modified, listing))
                })
                .buffer_unordered(PARALLEL_LISTS)
                .try_collect()
                .await?;
            found.lists += listed.len() as u64;
            let mut known = known.write().expect("folder index poisoned");
            if known.len() >= FOLDER_LIMIT {
                known.clear();
            }
            for (folder, modified, listing) in listed {
                let entries = (listing.objects.iter())
                    .filter(|object| (self.is_entry)(&object.location))
                    .count();
                found.entries += entries;
                if gather == Gather::Objects {
                    found.objects.extend(listing.objects.iter().cloned());
                }
                next.extend(listing.common_prefixes.iter().cloned());
                let settled = modified
                    .is_some_and(|m| checked.duration_since(m).is_ok_and(|age| age >= SETTLING));
                let seen = Seen {
                    modified,
                    settled,
                    // Listings use no e-tag: not keeping them halves what
                    // a listing copies.
                    objects: (listing.objects.into_iter())
                        .map(|object| ObjectMeta {
                            e_tag: None,
                            ..object
                        })
                        .collect(),
                    folders: listing.common_prefixes,
                    entries,
                };
                known.insert(folder, Arc::new(seen));
            }
            level = next;
        }
        Ok(found)
    }

    fn folders_of(&self, tier: &str) -> Arc<RwLock<Folders>> {
        let mut tiers = self.tiers.lock().expect("folder index poisoned");
        Arc::clone(tiers.entry(tier.to_string()).or_default())
    }
}

/// Stats each of `folders` and takes what `known` holds of those that did
/// not change (their objects too if gathered), on blocking threads, one
/// share of the folders per core: a stat costs about a microsecond, and so
/// does reaching a folder's record in memory, so both are spread over the
/// cores.
async fn check_level(
    root: &std::path::Path,
    known: &Arc<RwLock<Folders>>,
    folders: Vec<Path>,
    gather: Gather,
) -> Level {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let share = folders.len().div_ceil(cores).max(1);
    let folders = Arc::new(folders);
    let shares = (0..folders.len()).step_by(share).map(|start| {
        let (root, known) = (root.to_path_buf(), Arc::clone(known));
        let range = start..(start + share).min(folders.len());
        let mine = Arc::clone(&folders);
        let checking = range.clone();
        let check =
            tokio::task::spawn_blocking(move || check_share(root, &known, &mine[checking], gather));
        check.map(move |level| (range, level))
    });
    let mut level = Level::default();
    for (range, share) in futures::future::join_all(shares).await {
        match share {
            Ok(share) => {
                level.objects.extend(share.objects);
                level.entries += share.entries;
                level.folders.extend(share.folders);
                level.moved.extend(share.moved);
            }
            // A share whose thread failed is listed again.
            Err(_) => (level.moved).extend(folders[range].iter().map(|f| (f.clone(), None))),
        }
    }
    level
}

fn check_share(
    mut path: std::path::PathBuf,
    known: &RwLock<Folders>,
    folders: &[Path],
    gather: Gather,
) -> Level {
    let known = known.read().expect("folder index poisoned");
    let mut level = Level::default();
    for folder in folders {
        // One path buffer for the share, not an allocation per folder.
        path.push(folder.as_ref());
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        for _ in folder.parts() {
            path.pop();
        }
        match known.get(folder).and_then(|seen| trusted(seen, modified)) {
            Some(seen) => {
                if gather == Gather::Objects {
                    level.objects.extend(seen.objects.iter().cloned());
                }
                level.entries += seen.entries;
                level.folders.extend(seen.folders.iter().cloned());
            }
            None => level.moved.push((folder.clone(), modified)),
        }
    }
    level
}

/// The folder as last listed, if its time, `modified`, has not moved since
/// and had settled then.
fn trusted(seen: &Arc<Seen>, modified: Option<SystemTime>) -> Option<&Arc<Seen>> {
    (seen.settled && seen.modified.is_some() && seen.modified == modified).then_some(seen)
}

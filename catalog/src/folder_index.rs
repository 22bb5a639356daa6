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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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
}

/// The folders of local tiers, by tier name and path in the store.
#[derive(Debug, Default)]
pub(crate) struct FolderIndex {
    tiers: Mutex<HashMap<String, HashMap<Path, Arc<Seen>>>>,
}

impl FolderIndex {
    /// Every object under `prefix` in `store`, whose files are in the
    /// local folder `root`, as a recursive LIST returns them but in no
    /// order, and how many folders were listed to find them.
    pub(crate) async fn list(
        &self,
        tier: &str,
        store: &Arc<dyn ObjectStore>,
        root: &std::path::Path,
        prefix: &Path,
    ) -> object_store::Result<(Vec<ObjectMeta>, u64)> {
        let mut objects = Vec::new();
        let mut lists = 0;
        let mut level = vec![prefix.clone()];
        while !level.is_empty() {
            let checked = SystemTime::now();
            let folders = Arc::new(std::mem::take(&mut level));
            let times = modification_times(root, &folders).await;
            let mut next = Vec::new();
            let mut moved = Vec::new();
            {
                let tiers = self.tiers.lock().expect("folder index poisoned");
                let seen = tiers.get(tier);
                for (folder, modified) in folders.iter().zip(times) {
                    match seen.and_then(|seen| trusted(seen.get(folder)?, modified)) {
                        Some(seen) => {
                            objects.extend(seen.objects.iter().cloned());
                            next.extend(seen.folders.iter().cloned());
                        }
                        None => moved.push((folder.clone(), modified)),
                    }
                }
            }
            let listed: Vec<_> = futures::stream::iter(moved)
                .map(|(folder, modified)| async move {
                    let listing = store.list_with_delimiter(Some(&folder)).await?;
                    Ok::<_, object_store::Error>((folder, modified, listing))
                })
                .buffer_unordered(PARALLEL_LISTS)
                .try_collect()
                .await?;
            lists += listed.len() as u64;
            for (folder, modified, listing) in listed {
                objects.extend(listing.objects.iter().cloned());
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
                };
                self.remember(tier, folder, seen);
            }
            level = next;
        }
        Ok((objects, lists))
    }

    fn remember(&self, tier: &str, folder: Path, seen: Seen) {
        let mut tiers = self.tiers.lock().expect("folder index poisoned");
        let folders = tiers.entry(tier.to_string()).or_default();
        if folders.len() >= FOLDER_LIMIT {
            folders.clear();
        }
        folders.insert(folder, Arc::new(seen));
    }
}

/// The folder as last listed, if its time, `modified`, has not moved since
/// and had settled then.
fn trusted(seen: &Arc<Seen>, modified: Option<SystemTime>) -> Option<&Arc<Seen>> {
    (seen.settled && seen.modified.is_some() && seen.modified == modified).then_some(seen)
}

/// The modification time of each folder (`None` where it cannot be read:
/// missing, or named so that it is not where the store would put it), on
/// blocking threads, one share of the folders per core.
async fn modification_times(
    root: &std::path::Path,
    folders: &Arc<Vec<Path>>,
) -> Vec<Option<SystemTime>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let share = folders.len().div_ceil(cores).max(1);
    let stats = (0..folders.len()).step_by(share).map(|start| {
        let (root, folders) = (root.to_path_buf(), Arc::clone(folders));
        let range = start..(start + share).min(folders.len());
        let count = range.len();
        let stat = tokio::task::spawn_blocking(move || {
            // One path buffer for the share: a stat costs about a
            // microsecond, so an allocation per folder would show.
            let mut path = root;
            (folders[range].iter())
                .map(|folder| {
                    path.push(folder.as_ref());
                    let time = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
                    for _ in folder.parts() {
                        path.pop();
                    }
                    time
                })
                .collect::<Vec<_>>()
        });
        // A share whose thread failed leaves its folders untrusted.
        stat.map(move |times| times.unwrap_or_else(|_| vec![None; count]))
    });
    futures::future::join_all(stats).await.concat()
}

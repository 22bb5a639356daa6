//! Whether the plain files an entry's compute read have changed.
//!
//! A file is recorded with what its listing showed when the compute was
//! planned (size, modification time, ETag); the folders of the recorded
//! files are listed again, once each per judge, and compared: a file that
//! is gone, or lists with another size, time or ETag, changed. A file in
//! one of those folders that was not read, has the extension of those
//! that were, and was modified after the entry was written is new data the
//! same scan would read now (a dataset that grows by a file a day), and
//! counts too. Files in folders the scan never listed (a new partition
//! folder) are not seen.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use object_store::path::Path;
use object_store::ObjectMeta;

use super::Cause;
use crate::lineage::InputFile;

type Listing = Arc<Result<Vec<ObjectMeta>, String>>;

pub(super) struct Files {
    runtime: Arc<RuntimeEnv>,
    /// Each folder listed, by URL.
    listings: Mutex<HashMap<String, Listing>>,
}

impl Files {
    pub(super) fn new(runtime: Arc<RuntimeEnv>) -> Files {
        Files {
            runtime,
            listings: Mutex::default(),
        }
    }

    /// How the files `read` by a compute whose entry was written at
    /// `written` (epoch microseconds) have changed since; `Err` when a
    /// folder cannot be listed.
    pub(super) async fn changes(
        &self,
        read: &[&InputFile],
        written: f64,
    ) -> Result<Vec<Cause>, String> {
        let mut folders: BTreeMap<&str, Vec<&InputFile>> = BTreeMap::new();
        for file in read {
            let folder = file.url.rsplit_once('/').map_or("", |(folder, _)| folder);
            folders.entry(folder).or_default().push(file);
        }
        let mut causes = Vec::new();
        for (folder, files) in folders {
            let listing = self.list(folder).await;
            let listed = listing.as_ref().as_ref().map_err(Clone::clone)?;
            let url_of = |meta: &ObjectMeta| {
                let name = meta.location.filename().unwrap_or_default();
                format!("{folder}/{name}")
            };
            for file in &files {
                let now = listed.iter().find(|meta| url_of(meta) == file.url);
                if let Some(how) = changed(file, now) {
                    causes.push(Cause::FileChanged {
                        url: file.url.clone(),
                        how,
                    });
                }
            }
            let extensions: Vec<&str> = (files.iter())
                .filter_map(|f| f.url.rsplit_once('.').map(|(_, ext)| ext))
                .collect();
            for meta in listed {
                let url = url_of(meta);
                let new = meta.last_modified.timestamp_micros() as f64 > written
                    && !files.iter().any(|f| f.url == url)
                    && url
                        .rsplit_once('.')
                        .is_some_and(|(_, ext)| extensions.contains(&ext));
                if new {
                    causes.push(Cause::FileChanged {
                        url,
                        how: "appeared beside the files it read, after it was computed".into(),
                    });
                }
            }
        }
        Ok(causes)
    }

    /// The files of `folder` (a URL), listed once.
    async fn list(&self, folder: &str) -> Listing {
        if let Some(known) = self.listings.lock().expect("listings").get(folder) {
            return Arc::clone(known);
        }
        let listing = Arc::new(self.list_now(folder).await);
        (self.listings.lock().expect("listings")).insert(folder.to_string(), Arc::clone(&listing));
        listing
    }

    async fn list_now(&self, folder: &str) -> Result<Vec<ObjectMeta>, String> {
        let cannot = |why: String| format!("the folder {folder} of files it read: {why}");
        let url = url::Url::parse(folder).map_err(|e| cannot(e.to_string()))?;
        let store_url = ObjectStoreUrl::parse(format!("{}://{}", url.scheme(), url.authority()))
            .map_err(|e| cannot(e.to_string()))?;
        let store = (self.runtime.object_store(&store_url)).map_err(|e| cannot(e.to_string()))?;
        let prefix = Path::from_url_path(url.path()).map_err(|e| cannot(e.to_string()))?;
        let listed = (store.list_with_delimiter(Some(&prefix)).await)
            .map_err(|e| cannot(format!("cannot be listed: {e}")))?;
        Ok(listed.objects)
    }
}

/// How `file` differs from what its folder lists now (`now`), if it does.
fn changed(file: &InputFile, now: Option<&ObjectMeta>) -> Option<String> {
    let Some(now) = now else {
        return Some("was removed".into());
    };
    let modified = now.last_modified.timestamp_micros();
    let etag_differs = matches!((&file.etag, &now.e_tag), (Some(a), Some(b)) if a != b);
    if now.size == file.size && modified == file.modified && !etag_differs {
        return None;
    }
    let at = now.last_modified.format("%Y-%m-%d %H:%M:%S UTC");
    Some(format!("changed at {at}"))
}

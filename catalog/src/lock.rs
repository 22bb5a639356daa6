//! A short lock on one entry's record, across processes.
//!
//! Adding a part to an entry is a read of its record, a check, and a put of
//! the new record. Two processes doing that at once would each list only
//! their own part, and one part would be lost (or, adding the same time,
//! doubled). The lock is an object created only if absent (`PutMode::Create`:
//! a hard link on a local folder, `If-None-Match` on S3), held for the
//! milliseconds the record takes to commit, never while computing. A
//! process killed while holding it leaves the object, which is taken over
//! once it is older than [`STALE`].

use std::time::{Duration, Instant};

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::error::{Error, Result};
use crate::tier::Tier;

/// A lock older than this was left by a process that died holding it.
pub const STALE: Duration = Duration::from_secs(30);

/// How long a commit waits for another before giving up.
const PATIENCE: Duration = Duration::from_secs(120);

/// A held lock; [`EntryLock::release`] lets it go.
pub struct EntryLock<'a> {
    tier: &'a Tier,
    path: Option<Path>,
}

impl<'a> EntryLock<'a> {
    /// Takes the lock at `path` on `tier`, waiting for another holder. A
    /// store that cannot create objects conditionally gets no lock, with a
    /// warning: commits there are only safe from one process at a time.
    pub async fn acquire(tier: &'a Tier, path: Path) -> Result<EntryLock<'a>> {
        let store = tier.store();
        let holder = format!("{}@{}", std::process::id(), chrono::Utc::now().to_rfc3339());
        let started = Instant::now();
        loop {
            let options = PutOptions::from(PutMode::Create);
            let payload = PutPayload::from(holder.clone().into_bytes());
            match store.put_opts(&path, payload, options).await {
                Ok(_) => {
                    return Ok(EntryLock {
                        tier,
                        path: Some(path),
                    })
                }
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(object_store::Error::NotImplemented { .. }) => {
                    tracing::warn!(
                        tier = tier.name(),
                        "the store cannot create objects conditionally; entries are committed \
                         without a lock"
                    );
                    return Ok(EntryLock { tier, path: None });
                }
                Err(e) => return Err(tier.unreachable(&format!("locking {path}"), e)),
            }
            if taken_over(store.as_ref(), &path).await {
                continue;
            }
            if started.elapsed() > PATIENCE {
                return Err(Error::Locked {
                    tier: tier.name().to_string(),
                    lock: path.to_string(),
                    waited: PATIENCE.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Lets the lock go.
    pub async fn release(mut self) {
        if let Some(path) = self.path.take() {
            if let Err(e) = self.tier.store().delete(&path).await {
                tracing::warn!(lock = %path, "could not remove the lock: {e}");
            }
        }
    }
}

impl Drop for EntryLock<'_> {
    /// A commit abandoned midway (its query cancelled) still lets go.
    fn drop(&mut self) {
        let Some(path) = self.path.take() else { return };
        let store = std::sync::Arc::clone(self.tier.store());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = store.delete(&path).await;
            });
        }
    }
}

/// Removes the lock at `path` if it is stale; whether it did.
async fn taken_over(store: &dyn ObjectStore, path: &Path) -> bool {
    let Ok(meta) = store.head(path).await else {
        // Released meanwhile: try again at once.
        return true;
    };
    let age = chrono::Utc::now() - meta.last_modified;
    if age.to_std().is_ok_and(|age| age > STALE) {
        tracing::warn!(lock = %path, "taking over a lock left by a process that died");
        let _ = store.delete(path).await;
        return true;
    }
    false
}

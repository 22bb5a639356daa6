//! Writes that outlive the query that started them.
//!
//! A miss serves its rows to the query while they are stored (see the
//! resolver in `nuthatch-udf`), so the query may stop reading before the
//! write ends: a `LIMIT` above a filter, a pager closed early, an embedder
//! that dropped the stream. The entry is still wanted then, so the write
//! goes on by itself. What stops it is an explicit cancellation of the
//! session's calls (Ctrl-C at the prompt, a Flight client that went away):
//! the write is abandoned and nothing of it becomes visible.
//!
//! [`Background`] counts those writes, and names their entries, so that a
//! front end can wait for them before its process exits (and a session
//! dropped with writes under way can say which it abandons), and carries
//! the cancellation.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// The writes of one session under way, and its cancellations.
#[derive(Debug)]
pub struct Background {
    /// Writes under way.
    writing: watch::Sender<usize>,
    /// The entries they write, by write.
    entries: Arc<Mutex<Vec<(u64, String)>>>,
    next: std::sync::atomic::AtomicU64,
    /// Bumped by every [`Background::cancel`].
    cancels: watch::Sender<u64>,
}

impl Default for Background {
    fn default() -> Self {
        Background {
            writing: watch::Sender::new(0),
            entries: Arc::default(),
            next: Default::default(),
            cancels: watch::Sender::new(0),
        }
    }
}

impl Background {
    /// Notes a write of `entry` that starts now; it counts until the guard
    /// drops.
    pub fn begin(&self, entry: &str) -> BackgroundWrite {
        let id = (self.next).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut entries = self.entries.lock().expect("background poisoned");
        entries.push((id, entry.to_string()));
        self.writing.send_modify(|n| *n += 1);
        BackgroundWrite {
            id,
            entries: Arc::clone(&self.entries),
            writing: self.writing.clone(),
            cancels: self.cancels.subscribe(),
        }
    }

    /// The entries being written now.
    pub fn entries(&self) -> Vec<String> {
        let entries = self.entries.lock().expect("background poisoned");
        entries.iter().map(|(_, entry)| entry.clone()).collect()
    }

    /// Waits up to `within` for the writes under way, from code that cannot
    /// await (a `Drop`), and logs each write it leaves unfinished by its
    /// entry. Waiting needs a multi-threaded runtime (or none here, the
    /// writes running on another's threads); a single-threaded runtime
    /// cannot run the writes while this waits, so there it only logs.
    pub fn finish_blocking(&self, within: Duration, what: &str) {
        if self.writing() == 0 {
            return;
        }
        use tokio::runtime::{Handle, RuntimeFlavor};
        let settled = match Handle::try_current() {
            _ if within.is_zero() => false,
            Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tracing::info!(writes = self.writing(), "{what}: finishing its writes");
                tokio::task::block_in_place(|| {
                    handle.block_on(tokio::time::timeout(within, self.settled()))
                })
                .is_ok()
            }
            Ok(_) => false,
            Err(_) => {
                let started = Instant::now();
                while self.writing() > 0 && started.elapsed() < within {
                    std::thread::sleep(Duration::from_millis(10));
                }
                self.writing() == 0
            }
        };
        if settled {
            return;
        }
        for entry in self.entries() {
            tracing::warn!(
                entry,
                "{what} with this write under way: it is abandoned and nothing of it is stored; \
                 await Session::finish_writes() first, or raise nuthatch.finish_writes_within"
            );
        }
    }

    /// Abandons every write under way: the calls of a cancelled statement.
    pub fn cancel(&self) {
        self.cancels.send_modify(|n| *n += 1);
    }

    /// How many writes are under way.
    pub fn writing(&self) -> usize {
        *self.writing.borrow()
    }

    /// Waits until no write is under way.
    pub async fn settled(&self) {
        let mut writing = self.writing.subscribe();
        // The sender lives in `self`, so the channel cannot close here.
        let _ = writing.wait_for(|n| *n == 0).await;
    }
}

/// One write under way; dropping it ends it.
pub struct BackgroundWrite {
    id: u64,
    entries: Arc<Mutex<Vec<(u64, String)>>>,
    writing: watch::Sender<usize>,
    cancels: watch::Receiver<u64>,
}

impl BackgroundWrite {
    /// Resolves when the session cancels its calls after this write began.
    pub fn cancelled(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut cancels = self.cancels.clone();
        async move {
            if cancels.changed().await.is_err() {
                // The session is gone: nothing can cancel any more.
                std::future::pending::<()>().await;
            }
        }
    }
}

impl Drop for BackgroundWrite {
    fn drop(&mut self) {
        let mut entries = self.entries.lock().expect("background poisoned");
        entries.retain(|(id, _)| *id != self.id);
        drop(entries);
        self.writing.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[tokio::test]
    async fn settles_when_the_last_write_ends_and_cancels_only_those_under_way() {
        let background = Background::default();
        let first = background.begin("f/1");
        let second = background.begin("f/2");
        assert_eq!(background.writing(), 2);
        assert_eq!(background.entries(), ["f/1", "f/2"]);
        assert!(first.cancelled().now_or_never().is_none());
        let waiting = first.cancelled();
        background.cancel();
        waiting.await;
        // Asked after the cancellation, a write begun before it still sees it.
        second.cancelled().await;
        // A write begun after the cancellation is not cancelled by it.
        let third = background.begin("f/3");
        assert!(third.cancelled().now_or_never().is_none());
        drop((first, second));
        assert!(background.settled().now_or_never().is_none());
        drop(third);
        background.settled().await;
    }
}

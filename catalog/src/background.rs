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
//! [`Background`] counts those writes, so that a front end can wait for
//! them before its process exits, and carries the cancellation.

use std::future::Future;

use tokio::sync::watch;

/// The writes of one session under way, and its cancellations.
#[derive(Debug)]
pub struct Background {
    /// Writes under way.
    writing: watch::Sender<usize>,
    /// Bumped by every [`Background::cancel`].
    cancels: watch::Sender<u64>,
}

impl Default for Background {
    fn default() -> Self {
        Background {
            writing: watch::Sender::new(0),
            cancels: watch::Sender::new(0),
        }
    }
}

impl Background {
    /// Notes a write that starts now; it counts until the guard drops.
    pub fn begin(&self) -> BackgroundWrite {
        self.writing.send_modify(|n| *n += 1);
        BackgroundWrite {
            writing: self.writing.clone(),
            cancels: self.cancels.subscribe(),
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
        let first = background.begin();
        let second = background.begin();
        assert_eq!(background.writing(), 2);
        assert!(first.cancelled().now_or_never().is_none());
        let waiting = first.cancelled();
        background.cancel();
        waiting.await;
        // Asked after the cancellation, a write begun before it still sees it.
        second.cancelled().await;
        // A write begun after the cancellation is not cancelled by it.
        let third = background.begin();
        assert!(third.cancelled().now_or_never().is_none());
        drop((first, second));
        assert!(background.settled().now_or_never().is_none());
        drop(third);
        background.settled().await;
    }
}

//! Identical computes collapse into one.
//!
//! Before a call computes and stores an entry it claims the entry here.
//! The first claim leads: it computes and stores. Claims made while it runs
//! follow: they wait for the leader and then read what it stored. This is
//! what makes a self-join of one call, or the same miss from two sessions of
//! one process, run the body once and commit once. (Processes do not see
//! each other's claims; two processes racing on one entry both compute, and
//! the atomic commit keeps the store consistent.)
//!
//! A leader that fails hands its error to its followers: the same compute
//! would fail again. A leader that is dropped without finishing (its query
//! was cancelled) lets the followers claim again, and one of them leads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::common::DataFusionError;
use tokio::sync::watch;

type Outcome = Option<Result<(), Arc<DataFusionError>>>;

/// The entries being computed in this process.
#[derive(Debug, Default)]
pub struct InFlight {
    running: Mutex<HashMap<String, watch::Receiver<Outcome>>>,
}

/// What a claim gets.
pub enum Claim {
    /// Compute and store, then call [`Lead::finish`].
    Lead(Lead),
    /// Another call is computing the entry; wait with [`Follow::wait`].
    Follow(Follow),
}

/// The right and duty to compute one entry.
pub struct Lead {
    key: String,
    sender: Option<watch::Sender<Outcome>>,
    running: Arc<InFlight>,
}

/// A wait for another call's compute.
pub struct Follow {
    receiver: watch::Receiver<Outcome>,
}

/// How a followed compute ended.
#[derive(Debug)]
pub enum Followed {
    /// The leader stored the entry: read it.
    Stored,
    /// The leader failed with this error.
    Failed(Arc<DataFusionError>),
    /// The leader went away without finishing: claim again.
    Abandoned,
}

impl InFlight {
    /// Claims the entry named `key` (any string that identifies the stored
    /// entry: tier, backend, namespace, key, version).
    pub fn claim(self: &Arc<Self>, key: &str) -> Claim {
        let mut running = self.running.lock().expect("in-flight map poisoned");
        if let Some(receiver) = running.get(key) {
            // A finished leader removes itself; a receiver whose sender is
            // gone belongs to an abandoned one, which we replace.
            if receiver.has_changed().is_ok() {
                return Claim::Follow(Follow {
                    receiver: receiver.clone(),
                });
            }
        }
        let (sender, receiver) = watch::channel(None);
        running.insert(key.to_string(), receiver);
        Claim::Lead(Lead {
            key: key.to_string(),
            sender: Some(sender),
            running: Arc::clone(self),
        })
    }

    /// How many entries are being computed.
    pub fn len(&self) -> usize {
        self.running.lock().expect("in-flight map poisoned").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Lead {
    /// Tells the followers how the compute ended.
    pub fn finish(mut self, outcome: Result<(), Arc<DataFusionError>>) {
        self.release();
        if let Some(sender) = self.sender.take() {
            let _ = sender.send(Some(outcome));
        }
    }

    fn release(&self) {
        let mut running = self.running.running.lock().expect("in-flight map poisoned");
        running.remove(&self.key);
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        if self.sender.is_some() {
            // Abandoned: dropping the sender wakes the followers.
            tracing::info!(entry = %self.key, "compute abandoned: its query was cancelled");
            self.release();
        }
    }
}

impl Follow {
    pub async fn wait(mut self) -> Followed {
        match self.receiver.wait_for(Option::is_some).await {
            Ok(outcome) => match outcome.as_ref().expect("waited for Some") {
                Ok(()) => Followed::Stored,
                Err(e) => Followed::Failed(Arc::clone(e)),
            },
            Err(_) => Followed::Abandoned,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_learn_how_the_leader_ended() {
        let inflight = Arc::new(InFlight::default());
        let Claim::Lead(lead) = inflight.claim("a") else {
            panic!("the first claim leads")
        };
        let Claim::Follow(follow) = inflight.claim("a") else {
            panic!("the second claim follows")
        };
        assert!(matches!(inflight.claim("b"), Claim::Lead(_)));
        lead.finish(Ok(()));
        assert!(matches!(follow.wait().await, Followed::Stored));
        assert!(inflight.is_empty());

        let Claim::Lead(lead) = inflight.claim("a") else {
            panic!("a finished entry can be claimed again")
        };
        let Claim::Follow(follow) = inflight.claim("a") else {
            panic!("follows")
        };
        drop(lead);
        assert!(matches!(follow.wait().await, Followed::Abandoned));
        assert!(matches!(inflight.claim("a"), Claim::Lead(_)));
    }
}

//! Identical computes collapse into one.
//!
//! Before a call computes and stores an entry it claims the entry here.
//! The first claim leads: it computes and stores. Claims made while it runs
//! follow: they wait for the leader and then read what it stored. This is
//! what makes a self-join of one call, or the same miss from two sessions of
//! one process, run the body once and commit once. Processes do not see
//! each other's claims: a leader also takes a [`crate::lease`] on the entry,
//! which other processes wait for. The leader's lease is kept here too, so
//! that the calls inside its body can say which lease their waits hold up.
//!
//! A follower waits for a leader; when the follower runs inside the body
//! of a leader itself, that leader now waits too. Those waits are kept as
//! edges, and a claim that would close a cycle (A's body waits for B while
//! B's body waits for A, in two sessions) fails with the cycle named
//! instead of hanging both sessions.
//!
//! A leader that fails hands its error to its followers: the same compute
//! would fail again. A leader that is dropped without finishing (its query
//! was cancelled) lets the followers claim again, and one of them leads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::common::DataFusionError;
use tokio::sync::watch;

use crate::error::Error;
use crate::lease::{Held, Lease};

type Outcome = Option<Result<(), Arc<DataFusionError>>>;

/// The entries being computed in this process.
#[derive(Debug, Default)]
pub struct InFlight {
    running: Mutex<HashMap<String, Leader>>,
    /// `(waiting leader, entry waited for)`, one per follower inside a
    /// leader's body.
    waits: Mutex<Vec<(String, String)>>,
}

/// One entry being computed.
#[derive(Debug)]
struct Leader {
    receiver: watch::Receiver<Outcome>,
    /// The entry as messages name it.
    entry: String,
    lease: Option<Arc<Held>>,
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
    lease: Option<Lease>,
}

/// A wait for another call's compute.
pub struct Follow {
    receiver: watch::Receiver<Outcome>,
    /// The waits this follow added, removed when it ends.
    waits: Vec<(String, String)>,
    running: Arc<InFlight>,
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
    /// entry: tier, backend, namespace, key, version) for a call outside
    /// any body.
    pub fn claim(self: &Arc<Self>, key: &str) -> Claim {
        self.claim_within(key, key, &[])
            .expect("a call outside any body closes no cycle")
    }

    /// Claims `key` (shown as `entry`) for a call inside the bodies of the
    /// leaders `within` (their keys, outermost first). Fails when following
    /// would wait in a cycle.
    pub fn claim_within(
        self: &Arc<Self>,
        key: &str,
        entry: &str,
        within: &[String],
    ) -> Result<Claim, Error> {
        let mut running = self.running.lock().expect("in-flight map poisoned");
        if let Some(leader) = running.get(key) {
            // A finished leader removes itself; a receiver whose sender is
            // gone belongs to an abandoned one, which we replace.
            if leader.receiver.has_changed().is_ok() {
                let receiver = leader.receiver.clone();
                let mut waits = self.waits.lock().expect("in-flight map poisoned");
                if let Some(cycle) = cycle(&waits, key, within) {
                    let named: Vec<String> = cycle.iter().map(|k| name_of(&running, k)).collect();
                    return Err(Error::Deadlock {
                        cycle: named.join(" -> "),
                    });
                }
                let added: Vec<(String, String)> = within
                    .iter()
                    .map(|waiter| (waiter.clone(), key.to_string()))
                    .collect();
                waits.extend(added.iter().cloned());
                return Ok(Claim::Follow(Follow {
                    receiver,
                    waits: added,
                    running: Arc::clone(self),
                }));
            }
        }
        let (sender, receiver) = watch::channel(None);
        let leader = Leader {
            receiver,
            entry: entry.to_string(),
            lease: None,
        };
        running.insert(key.to_string(), leader);
        Ok(Claim::Lead(Lead {
            key: key.to_string(),
            sender: Some(sender),
            running: Arc::clone(self),
            lease: None,
        }))
    }

    /// The lease the leader of `key` holds, if any.
    pub fn lease_of(&self, key: &str) -> Option<Arc<Held>> {
        let running = self.running.lock().expect("in-flight map poisoned");
        running.get(key).and_then(|leader| leader.lease.clone())
    }

    /// How many entries are being computed.
    pub fn len(&self) -> usize {
        self.running.lock().expect("in-flight map poisoned").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The leaders from `key` that lead back to one of `within`, through the
/// waits: the cycle a follow of `key` would close, starting and ending at
/// `within`'s member.
fn cycle(waits: &[(String, String)], key: &str, within: &[String]) -> Option<Vec<String>> {
    let mut path = vec![key.to_string()];
    let mut seen = vec![key.to_string()];
    fn walk(
        waits: &[(String, String)],
        within: &[String],
        path: &mut Vec<String>,
        seen: &mut Vec<String>,
    ) -> bool {
        let at = path.last().expect("a path is never empty").clone();
        if within.contains(&at) {
            return true;
        }
        for (_, next) in waits.iter().filter(|(from, _)| *from == at) {
            if seen.contains(next) {
                continue;
            }
            seen.push(next.clone());
            path.push(next.clone());
            if walk(waits, within, path, seen) {
                return true;
            }
            path.pop();
        }
        false
    }
    walk(waits, within, &mut path, &mut seen).then(|| {
        let caller = path.last().expect("a path is never empty").clone();
        std::iter::once(caller).chain(path).collect()
    })
}

fn name_of(running: &HashMap<String, Leader>, key: &str) -> String {
    running
        .get(key)
        .map_or_else(|| key.to_string(), |leader| leader.entry.clone())
}

impl Lead {
    /// The key this lead was claimed with.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Keeps `lease` until the lead finishes, and lets the calls inside
    /// the body find it.
    pub fn hold(&mut self, lease: Lease) {
        let mut running = self.running.running.lock().expect("in-flight map poisoned");
        if let Some(leader) = running.get_mut(&self.key) {
            leader.lease = Some(Arc::clone(lease.held()));
        }
        self.lease = Some(lease);
    }

    /// Releases the lease, then tells the followers how the compute ended.
    pub async fn finish(mut self, outcome: Result<(), Arc<DataFusionError>>) {
        if let Some(lease) = self.lease.take() {
            lease.release().await;
        }
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
            // Abandoned: dropping the sender wakes the followers, and the
            // lease drops with it.
            tracing::info!(entry = %self.key, "compute abandoned: its query was cancelled");
            self.release();
        }
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let mut waits = self.running.waits.lock().expect("in-flight map poisoned");
        for wait in &self.waits {
            if let Some(at) = waits.iter().position(|w| w == wait) {
                waits.swap_remove(at);
            }
        }
    }
}

impl Follow {
    pub async fn wait(mut self) -> Followed {
        let receiver = &mut self.receiver;
        match receiver.wait_for(Option::is_some).await {
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
        lead.finish(Ok(())).await;
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

    #[tokio::test]
    async fn a_follow_that_would_wait_in_a_cycle_fails_naming_it() {
        let inflight = Arc::new(InFlight::default());
        let Ok(Claim::Lead(a)) = inflight.claim_within("a", "f/a", &[]) else {
            panic!("leads")
        };
        let Ok(Claim::Lead(b)) = inflight.claim_within("b", "g/b", &[]) else {
            panic!("leads")
        };
        // a's body waits for b.
        let Ok(Claim::Follow(waiting)) = inflight.claim_within("b", "g/b", &["a".into()]) else {
            panic!("follows")
        };
        // b's body asking for a would wait for itself through a.
        let Err(Error::Deadlock { cycle }) = inflight.claim_within("a", "f/a", &["b".into()])
        else {
            panic!("a cycle")
        };
        assert_eq!(cycle, "g/b -> f/a -> g/b");
        // Once a's body stops waiting, b's body may wait for a.
        drop(waiting);
        assert!(matches!(
            inflight.claim_within("a", "f/a", &["b".into()]),
            Ok(Claim::Follow(_))
        ));
        drop((a, b));
    }
}

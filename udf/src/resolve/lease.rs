//! Claiming an entry before computing into it: within the process
//! ([`nuthatch_catalog::inflight`]) and across processes
//! ([`nuthatch_catalog::lease`]).
//!
//! Every path that computes into an entry (a miss, an extension, an upsert
//! or window replacement) claims it here, so that the waits of all of them
//! are seen by the cycle checks and shown the same way: the progress line
//! says whom the call waits for, and the call's report how long.

use std::sync::Arc;

use datafusion::common::Result;
use nuthatch_backends::Backend;
use nuthatch_catalog::lease::{self, Held, LeaseRequest, Taken, Waited};
use nuthatch_catalog::metastore::metadata_dir;
use nuthatch_catalog::{Claim, EntryId, Phase, Tier};

use super::Resolver;
use crate::settings::NuthatchOptions;

impl Resolver<'_> {
    /// Claims the entry `key` names in this process, failing when the
    /// wait would close a cycle with the calls around this one.
    pub(super) fn claim(&self, key: &str, id: &EntryId) -> Result<Claim> {
        let call = self.call;
        let entry = format!("{}: {}", call.function.name(), id.key.display());
        let within = call.stack.leading();
        let claim = call.catalog.inflight().claim_within(key, &entry, &within)?;
        Ok(claim)
    }

    /// Takes the lease of the entry `lead` computes, waiting while another
    /// process computes it; whether this call waited (what it found
    /// stored before may have changed meanwhile).
    pub(super) async fn lease(
        &self,
        lead: &mut nuthatch_catalog::inflight::Lead,
        tier: &Tier,
        id: &EntryId,
        backend: &dyn Backend,
    ) -> Result<bool> {
        let call = self.call;
        let _ = call.leading.set(lead.key().to_string());
        if tier.is_read_only() {
            return Ok(false);
        }
        let catalog = &call.catalog;
        let path = metadata_dir(&id.key, id.namespace.as_deref())
            .join(format!("{}.lease", backend.name()));
        let mine: Vec<Arc<Held>> = (call.stack.leading().iter())
            .filter_map(|key| catalog.inflight().lease_of(key))
            .collect();
        let request = LeaseRequest {
            tier,
            path,
            entry: format!("{}: {}", call.function.name(), id.key.display()),
            options: NuthatchOptions::of(self.state.config()).leases(),
            mine,
        };
        let running = self.running;
        let before = running.phase();
        let on_wait = |holder: &str| {
            tracing::info!(
                function = call.function.name(),
                key = %id.key,
                tier = tier.name(),
                holder,
                "waiting for another process computing this entry"
            );
            running.set_phase(Phase::Waiting);
            *running.waited.lock().expect("running call poisoned") = Some(Waited {
                holder: holder.to_string(),
                waited: Default::default(),
            });
        };
        let read_lease = |url: &str| catalog.lease_at(url);
        let taken = lease::take(request, &read_lease, &on_wait).await;
        running.set_phase(before);
        let waited = match taken? {
            Taken::Held(held, waited) => {
                lead.hold(held);
                waited
            }
            Taken::Without(waited) => waited,
        };
        let did_wait = waited.is_some();
        *running.waited.lock().expect("running call poisoned") = waited;
        Ok(did_wait)
    }
}

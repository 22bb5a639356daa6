//! What a call does about staleness: judging an entry it found, under
//! its `on_stale` policy, and what an entry it stores records of where its
//! rows came from (fingerprint, arguments, lineage), including the entries
//! its own body's calls read ([`note_read`]).

use std::sync::Arc;

use datafusion::common::Result;
use nuthatch_catalog::{
    Entry, Error, Input, InputEntry, Lineage, MetadataRow, OnStale, Provenance, Staleness, Tier,
};

use super::{Prepared, Resolver};
use crate::call::Call;

impl Resolver<'_> {
    /// Serves an entry found on a tier as the call's `on_stale` says: a
    /// policy that may not serve it stale judges it first; the default,
    /// which serves it and reports why it is stale, judges it while the
    /// entry is opened, so the judging costs the hit little time.
    pub(super) async fn serve_judged(&self, entry: Entry) -> Result<Prepared> {
        let call = self.call;
        match call.on_stale {
            OnStale::Serve => self.serve_any(entry).await,
            OnStale::Recompute | OnStale::Error => {
                match self.stale_because(&entry.tier, &entry.metadata).await? {
                    Some(_) => self.recomputing().miss().await,
                    None => self.serve_any(entry).await,
                }
            }
            OnStale::Warn => {
                let (tier, row) = (entry.tier.clone(), entry.metadata.clone());
                let (stale, prepared) =
                    futures::join!(self.stale_because(&tier, &row), self.serve_any(entry));
                let mut prepared = prepared?;
                prepared.stale = stale?;
                Ok(prepared)
            }
        }
    }

    /// Why the entry whose row is `row` is stale, if it is; an error under
    /// `on_stale = 'error'`.
    async fn stale_because(&self, tier: &Tier, row: &MetadataRow) -> Result<Option<String>> {
        let call = self.call;
        let judge = call.catalog.judge();
        let judged = (judge.with_files(Arc::clone(self.state.runtime_env())))
            .staleness(tier, row)
            .await;
        let Staleness::Stale(_) = &judged else {
            return Ok(None);
        };
        let because = judged.because().unwrap_or_default();
        if call.on_stale == OnStale::Error {
            return Err(Error::Stale {
                function: call.function.name().to_string(),
                key: call.id.key.display().to_string(),
                tier: tier.name().to_string(),
                because,
            }
            .into());
        }
        tracing::warn!(function = call.function.name(), key = %call.id.key, "serving a stale entry: {because}");
        Ok(Some(because))
    }

    /// This resolver, computing again whatever is stored.
    fn recomputing(&self) -> Resolver<'_> {
        Resolver {
            recompute: true,
            replaces_stale: true,
            ..*self
        }
    }

    /// What an entry this call computes records of where it came from:
    /// the function's fingerprint now, the arguments the body is handed,
    /// and what the body reads as it runs.
    pub(super) fn provenance(&self) -> Provenance {
        let call = self.call;
        let arguments = (call.body_args().iter())
            .map(|(name, value)| (name.clone(), value.sql_literal()))
            .collect();
        Provenance {
            fingerprint: call.catalog.current_fingerprint(call.function.name()),
            arguments: Some(arguments),
            reads: Some(Arc::clone(&call.reads)),
            copied: None,
        }
    }

    /// What `entry` rewritten in place (compacted) records: what its
    /// record says.
    pub(super) fn kept_provenance(entry: &Entry) -> Provenance {
        let row = &entry.metadata;
        Provenance {
            fingerprint: row.recorded.fingerprint.clone(),
            arguments: row.recorded.arguments.clone(),
            reads: None,
            copied: Some(row.recorded.lineage.clone()),
        }
    }

    /// What a copy of `entry` records: its fingerprint and arguments, and
    /// the entry itself as its one input, so the copy is stale when the
    /// entry is written again or is stale.
    pub(super) fn copy_provenance(entry: &Entry) -> Provenance {
        let row = &entry.metadata;
        Provenance {
            fingerprint: row.recorded.fingerprint.clone(),
            arguments: row.recorded.arguments.clone(),
            reads: None,
            copied: Some(Lineage::Recorded(vec![read_input(entry)])),
        }
    }
}

/// `entry` as the input of whatever reads it.
pub(crate) fn read_input(entry: &Entry) -> Input {
    let row = &entry.metadata;
    let function = row
        .cache_key
        .split_once('/')
        .map_or(row.cache_key.as_str(), |(f, _)| f);
    Input::Entry(InputEntry {
        function: function.to_string(),
        key: row.cache_key.clone(),
        namespace: row.namespace.clone(),
        tier: entry.tier.name().to_string(),
        backend: row.backend.clone(),
        version: row.version.clone(),
        committed: row.last_modified,
    })
}

/// Notes that `call` served `entry`, in the lineage of the call whose
/// body made it, if any.
pub(crate) fn note_read(call: &Call, entry: &Entry) {
    if let Some(caller) = call.stack.caller() {
        caller.reads.note(read_input(entry));
    }
}

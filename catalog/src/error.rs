//! The catalog's errors, one enum, so that callers can tell what went wrong
//! by matching rather than by reading text: a later tier policy skips an
//! unreachable mirror but stops on corrupt metadata.
//!
//! Every message says what to do about it. At the DataFusion boundary an
//! [`Error`] becomes `DataFusionError::External`, from which
//! [`Error::find`] gets it back (front ends print it without DataFusion's
//! prefix). No variant carries credentials: tier locations are redacted
//! when the tier is opened.

use datafusion::common::DataFusionError;

use crate::key::KeyError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tier's store could not be opened or answered with an error other
    /// than "not found".
    #[error(
        "the {tier} tier at {location} is unreachable: {detail}. Point it at a folder or \
         object-store URL you can reach (filesystem in nuthatch.toml, or \
         NUTHATCH_{env}_FILESYSTEM)"
    )]
    TierUnreachable {
        tier: String,
        env: String,
        location: String,
        detail: String,
    },

    /// A metadata file that cannot be decoded.
    #[error(
        "the metadata of entry {key} at {location}/{path} is corrupt ({reason}); delete that \
         file, or recompute the entry with cache_mode => 'overwrite', recompute => true"
    )]
    CorruptMetadata {
        key: String,
        location: String,
        path: String,
        reason: String,
    },

    /// A write was asked of a tier configured read-only.
    #[error(
        "the {tier} tier at {location} is read-only, so entry {key} cannot be stored; call with \
         cache_mode => 'read_only' or 'off', or configure a writable {tier}"
    )]
    ReadOnlyTier {
        tier: String,
        location: String,
        key: String,
    },

    /// The store refused a write.
    #[error(
        "cannot write {what} to the {tier} tier at {location}: {detail}. Nothing was stored; \
         make the {tier} writable, or call with cache_mode => 'read_only'"
    )]
    Unwritable {
        tier: String,
        location: String,
        what: String,
        detail: String,
    },

    /// Arguments that cannot make a key.
    #[error("{function}: {source}")]
    BadKey {
        function: String,
        #[source]
        source: KeyError,
    },

    /// The function body (or its result stream) failed.
    #[error("computing {key} failed, nothing was stored: {source}")]
    ComputeFailed {
        key: String,
        #[source]
        source: Box<DataFusionError>,
    },

    /// The format would store some values other than as computed, and the
    /// function asks for exact results.
    #[error(
        "{key} was not stored: the {backend} backend would change column {change}, and the \
         function asks for exact results (exact = true). Store it with backend = {exact_backends}, \
         which keep every value, change the values in the function, or drop \
         exact to store them changed with a warning"
    )]
    Inexact {
        key: String,
        backend: String,
        change: String,
        /// The formats that keep every value, as the message offers them.
        exact_backends: String,
    },

    /// The format cannot store some values at all.
    #[error(
        "{key} was not stored: the {backend} backend cannot store column {change}. Store it \
         with backend = {exact_backends}, which keep every value, or keep the values \
         within what the backend holds"
    )]
    Unstorable {
        key: String,
        backend: String,
        exact_backends: String,
        change: String,
    },

    /// A storage format failed to read or write an entry.
    #[error(
        "the {backend} backend failed on entry {key} on the {tier} tier at {location}: {source}"
    )]
    Backend {
        backend: String,
        key: String,
        tier: String,
        location: String,
        #[source]
        source: Box<DataFusionError>,
    },

    /// A valid entry in a format this build cannot read.
    #[error(
        "entry {key} on the {tier} tier was stored by Python {}, which nuthatch cannot read; \
         recompute it here with recompute => true (it is then stored with the {instead} backend)",
        python_storage(.backend)
    )]
    UnreadableBackend {
        key: String,
        tier: String,
        backend: String,
        instead: String,
    },

    /// A strict mode (or `fail_if_no_cache`) found nothing to read.
    #[error("{function}: no cache entry {key} on the {tiers}, and {reason}")]
    StrictMiss {
        function: String,
        key: String,
        tiers: String,
        /// What does not compute, and what would.
        reason: String,
    },

    /// A stale entry found by a call whose policy is `on_stale = 'error'`.
    #[error(
        "{function}: entry {key} on the {tier} tier is stale: {because}. Call with \
         on_stale => 'recompute' to compute it again (or 'serve' to read it as it is), or run \
         `nuthatch refresh {function}`"
    )]
    Stale {
        function: String,
        key: String,
        tier: String,
        because: String,
    },

    /// A stored timeseries entry does not cover the whole window of a call
    /// whose mode does not compute.
    #[error("{entry} covers {covered}, and the call also asks for {missing}, which {reason}")]
    Uncovered {
        /// `function: entry <key> on the <tier> tier`.
        entry: String,
        covered: String,
        missing: String,
        /// What does not compute, and what would.
        reason: String,
    },

    /// Another process holds an entry's commit lock for too long.
    #[error(
        "the {tier} tier's lock {lock} has been held for over {waited}s by another process; if \
         no nuthatch process is committing that entry, remove the file and run again"
    )]
    Locked {
        tier: String,
        lock: String,
        waited: u64,
    },

    /// A stored entry's data could not be read: the store failed while the
    /// entry was scanned, after its retries.
    #[error(
        "reading entry {entry} from the {tier} tier at {location} failed: {detail}. The store \
         did not answer after its retries (max_retries and retry_timeout in the tier's \
         filesystem_options); run the query again once it does"
    )]
    ReadFailed {
        entry: String,
        tier: String,
        location: String,
        detail: String,
    },

    /// Calls wait for each other in a cycle (A's body waits for B, whose
    /// body waits for A), across sessions or processes.
    #[error(
        "calls wait for each other in a cycle: {cycle}; this call fails so that the others can \
         go on. A body that calls another cached function should not be called by it, even \
         with other arguments; compute one of them first"
    )]
    Deadlock { cycle: String },

    /// Another process has been computing the entry for longer than
    /// `lease_wait`.
    #[error(
        "{entry} is being computed by {holder} on the {tier} tier, and this call waited {waited}s \
         for it; wait longer with SET nuthatch.lease_wait = '2h', or compute anyway with SET \
         nuthatch.on_lease_wait = 'compute'"
    )]
    LeaseWait {
        entry: String,
        tier: String,
        holder: String,
        waited: u64,
    },

    /// An entry changed while a write to it was under way, so the write was
    /// dropped rather than lose or double rows.
    #[error(
        "entry {key} on the {tier} tier changed while this call wrote to it ({detail}); nothing \
         of this write was kept, run the query again"
    )]
    Conflict {
        key: String,
        tier: String,
        detail: String,
    },

    /// A write would replace a valid entry under a mode that does not
    /// overwrite without asking, and library code never asks.
    #[error(
        "entry {key} is already stored on the {tier} tier, and cache_mode '{mode}' does not \
         replace it; call with cache_mode => '{instead}' to replace it with the recomputed \
         result, or without recompute => true to read it"
    )]
    WouldOverwrite {
        key: String,
        tier: String,
        mode: String,
        instead: String,
    },

    /// A cached call that would wait for itself.
    #[error(
        "recursive cached call: {cycle}. A cached function cannot call itself with the same \
         cache key, directly or through other functions; change the arguments of the inner \
         call or remove it from the body"
    )]
    Recursion { cycle: String },

    /// Nested calls deeper than any sensible pipeline.
    #[error(
        "cached calls nest {depth} deep ({chain} ...); a body that keeps calling cached \
         functions never ends, check it for a missing base case"
    )]
    TooDeep { depth: usize, chain: String },

    /// A configuration that cannot be used.
    #[error("{0}")]
    Config(String),
}

/// How Python nuthatch stores results in a format this build lacks, for
/// the message that says why such an entry cannot be read.
fn python_storage(backend: &str) -> String {
    match nuthatch_backends::Backends::not_built(backend) {
        Some(how) => how.to_string(),
        None => format!("with its {backend} backend"),
    }
}

impl Error {
    /// Whether `error` is, or was caused by, a call that gave way to break
    /// a cycle of waits ([`Error::Deadlock`]), however many computes it
    /// failed on its way out.
    pub fn is_deadlock(error: &DataFusionError) -> bool {
        let mut current = error;
        loop {
            match Error::find(current) {
                Some(Error::Deadlock { .. }) => return true,
                Some(Error::ComputeFailed { source, .. }) => current = source,
                _ => return false,
            }
        }
    }

    /// The catalog error inside a DataFusion error, however deeply it was
    /// wrapped on its way through plans and streams.
    pub fn find(error: &DataFusionError) -> Option<&Error> {
        let mut current: &dyn std::error::Error = error;
        loop {
            if let Some(found) = current.downcast_ref::<Error>() {
                return Some(found);
            }
            if let Some(DataFusionError::External(inner)) =
                current.downcast_ref::<DataFusionError>()
            {
                if let Some(found) = inner.downcast_ref::<Error>() {
                    return Some(found);
                }
            }
            if let Some(DataFusionError::Shared(inner)) = current.downcast_ref::<DataFusionError>()
            {
                current = inner.as_ref();
                continue;
            }
            if let Some(DataFusionError::Context(_, inner)) =
                current.downcast_ref::<DataFusionError>()
            {
                current = inner.as_ref();
                continue;
            }
            current = current.source()?;
        }
    }
}

impl From<Error> for DataFusionError {
    fn from(error: Error) -> Self {
        DataFusionError::External(Box::new(error))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

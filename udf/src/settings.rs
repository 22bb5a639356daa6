//! What a session carries in its DataFusion `SessionConfig`.
//!
//! - [`NuthatchOptions`]: the `nuthatch.` settings (`SET nuthatch.cache_mode
//!   = 'overwrite'`), a config extension, so they are per session.
//! - A [`ReportLog`]: the reports of this session's calls, nested ones
//!   included.
//! - A [`CallStack`]: the cached calls whose bodies are running in this
//!   (child) session, outermost first. A body runs in a child session whose
//!   stack has one more frame, which is how a call learns who called it and
//!   how a cycle is refused before it can wait for itself.
//!
//! - An [`OverwritePrompt`], when the front end has a person to ask before
//!   a write replaces a valid entry (Python's `input()`).
//!
//! Keeping these on the config, rather than on shared objects, is what lets
//! one engine serve many sessions at once.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use datafusion::common::config::ConfigExtension;
use datafusion::common::extensions_options;
use datafusion::execution::context::SessionConfig;

use nuthatch_catalog::lease::{LeaseOptions, Period};
use nuthatch_catalog::{CacheKey, CacheMode, Error, OnLeaseWait, ReportLog};

use crate::binding::Select;

extensions_options! {
    /// Session settings under `nuthatch.`, e.g. `SET nuthatch.cache_mode = 'overwrite'`:
    /// defaults for the calls of this session that do not say otherwise.
    pub struct NuthatchOptions {
        /// Cache mode of calls that do not pass `cache_mode => ...`; unset,
        /// `write` when root takes writes, else `read_only_strict`.
        pub cache_mode: Option<CacheMode>, default = None
        /// Keep call results in the memory tier.
        pub memoize: bool, default = false
        /// Recompute where a null marker is found.
        pub retry_null_cache: bool, default = false
        /// A miss is an error instead of a compute.
        pub fail_if_no_cache: bool, default = false
        /// Replace rolling windows per series by nuthatch's own operator
        /// (`RollingWindowExec` in plans); `false` leaves them DataFusion's.
        pub rolling_windows: bool, default = true
        /// Run this session's queries across the workers the project
        /// lists (`[distributed] workers`); `false` runs them here alone.
        pub distributed: bool, default = true
        /// What calls do with a stale entry unless the call or its
        /// function says: serve, warn (serve and report it), recompute or
        /// error.
        pub on_stale: nuthatch_catalog::OnStale, default = nuthatch_catalog::OnStale::Warn
        /// How long a miss waits for another process computing the same
        /// entry (it holds the entry's lease) before on_lease_wait.
        pub lease_wait: Period, default = Period(Duration::from_secs(3600))
        /// After lease_wait: fail naming the other process, or compute anyway.
        pub on_lease_wait: OnLeaseWait, default = OnLeaseWait::Fail
        /// How long this process's leases live unrenewed: a process that
        /// dies holding one holds up others this long.
        pub lease_ttl: Period, default = Period(Duration::from_secs(30))
        /// How long dropping the session waits for the writes its queries
        /// left running; writes still running then are abandoned, each
        /// logged by its entry ('0s' abandons them at once).
        pub finish_writes_within: Period, default = Period(Duration::from_secs(600))
    }
}

impl NuthatchOptions {
    /// The settings of the session `config` belongs to.
    pub fn of(config: &SessionConfig) -> NuthatchOptions {
        config
            .options()
            .extensions
            .get::<NuthatchOptions>()
            .cloned()
            .unwrap_or_default()
    }

    /// How this session's calls take and wait for leases.
    pub fn leases(&self) -> LeaseOptions {
        LeaseOptions {
            // A renewal every third of it must be possible.
            ttl: self.lease_ttl.0.max(Duration::from_millis(300)),
            wait: self.lease_wait.0,
            on_wait: self.on_lease_wait,
        }
    }
}

/// What a top-level call hands down to every call its body makes, however
/// deep, as Python nuthatch's globals do: its explicit
/// cache mode (which wins over a nested call's own), its
/// `retry_null_cache`, and the names `recompute` and `memoize` reach.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inherited {
    pub cache_mode: Option<CacheMode>,
    /// The top call's explicit `on_stale`, which wins over a nested
    /// call's own: asking to recompute what is stale asks it of the
    /// inputs too.
    pub on_stale: Option<nuthatch_catalog::OnStale>,
    pub retry_null_cache: bool,
    pub recompute: Select,
    pub memoize: Select,
}

impl ConfigExtension for NuthatchOptions {
    const PREFIX: &'static str = "nuthatch";
}

/// Deeper nesting than this is taken for runaway recursion.
pub const MAX_DEPTH: usize = 64;

/// One cached call whose body is running.
#[derive(Debug, Clone)]
pub struct CallFrame {
    pub function: String,
    pub key: CacheKey,
    pub namespace: Option<String>,
    /// What the calls of this body inherit.
    pub inherited: Inherited,
    /// Where the calls of this body note the entries they read, for the
    /// lineage of what the body computes.
    pub reads: Arc<nuthatch_catalog::Reads>,
    /// The in-flight key of the entry this call leads, if it does.
    pub leading: Arc<std::sync::OnceLock<String>>,
}

/// Frames are the same call whatever they have read so far.
impl PartialEq for CallFrame {
    fn eq(&self, other: &Self) -> bool {
        self.function == other.function
            && self.key == other.key
            && self.namespace == other.namespace
            && self.inherited == other.inherited
    }
}

impl CallFrame {
    fn same_entry(&self, other: &CallFrame) -> bool {
        self.key == other.key && self.namespace == other.namespace
    }
}

impl fmt::Display for CallFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key.display())?;
        if let Some(ns) = &self.namespace {
            write!(f, " (namespace {ns})")?;
        }
        Ok(())
    }
}

/// The cached calls being computed, outermost first.
#[derive(Debug, Clone, Default)]
pub struct CallStack {
    frames: Vec<CallFrame>,
}

impl CallStack {
    /// The stack of the session `config` belongs to.
    pub fn of(config: &SessionConfig) -> Arc<CallStack> {
        config.get_extension::<CallStack>().unwrap_or_default()
    }

    pub fn frames(&self) -> &[CallFrame] {
        &self.frames
    }

    /// The entries the calls around this one lead: what a wait here holds
    /// up.
    pub fn leading(&self) -> Vec<String> {
        self.frames
            .iter()
            .filter_map(|frame| frame.leading.get().cloned())
            .collect()
    }

    /// The innermost running call: the caller of a call planned now.
    pub fn caller(&self) -> Option<&CallFrame> {
        self.frames.last()
    }

    /// Refuses a call that would compute an entry already being computed
    /// further out (it would wait for itself), or that nests too deep.
    pub fn check(&self, call: &CallFrame) -> Result<(), Error> {
        if let Some(first) = self.frames.iter().position(|f| f.same_entry(call)) {
            let cycle: Vec<String> = self.frames[first..]
                .iter()
                .chain(std::iter::once(call))
                .map(|f| f.to_string())
                .collect();
            return Err(Error::Recursion {
                cycle: cycle.join(" -> "),
            });
        }
        if self.frames.len() >= MAX_DEPTH {
            let chain: Vec<String> = self.frames.iter().take(4).map(|f| f.to_string()).collect();
            return Err(Error::TooDeep {
                depth: self.frames.len() + 1,
                chain: chain.join(" -> "),
            });
        }
        Ok(())
    }

    /// The stack of a body run for `call`.
    pub fn push(&self, call: CallFrame) -> CallStack {
        let mut frames = self.frames.clone();
        frames.push(call);
        CallStack { frames }
    }
}

/// The report log of the session `config` belongs to; a context that was
/// never made a nuthatch session gets a log of its own that nobody reads.
pub fn reports_of(config: &SessionConfig) -> Arc<ReportLog> {
    config.get_extension::<ReportLog>().unwrap_or_default()
}

/// Asks whether a write may replace a valid entry, where Python nuthatch
/// would ask on the terminal (modes `write`, `local`, `local_strict`,
/// `local_api`). Library code has no one to ask, so only front ends with a
/// person at a terminal install one ([`crate::Session::set_overwrite_prompt`]);
/// without it such a write fails and names the mode that overwrites.
#[async_trait::async_trait]
pub trait OverwritePrompt: Send + Sync + fmt::Debug {
    /// `true` to replace the entry; `false` computes the result and serves
    /// it without storing it, as Python does on `n`.
    async fn confirm_overwrite(&self, function: &str, key: &str, tier: &str) -> bool;
}

/// The session's [`OverwritePrompt`], as a config extension.
#[derive(Debug, Clone)]
pub struct Prompter(pub Arc<dyn OverwritePrompt>);

impl Prompter {
    pub fn of(config: &SessionConfig) -> Option<Arc<dyn OverwritePrompt>> {
        config
            .get_extension::<Prompter>()
            .map(|prompter| Arc::clone(&prompter.0))
    }
}

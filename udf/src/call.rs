//! A planned call: everything settled about `f(args)` before it runs.
//!
//! [`Call::plan`] binds the arguments and settles, from the call's own
//! options, what its caller hands down ([`Inherited`]), the function's
//! definition and the session's settings: mode, recompute, memoize, null
//! handling, which tiers it may use, the backends, both keys and the clip
//! window. It checks the call against the session's stack of running calls.
//! It reads nothing and computes nothing: the cache work starts when the
//! plan runs ([`crate::exec`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::catalog::Session;
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::Expr;
use nuthatch_backends::coverage::Span;
use nuthatch_backends::{Backend, WriteMode};
use nuthatch_catalog::{
    cache_key, CacheMode, Catalog, EntryId, Error, KeyValue, OnStale, Reads, ReportLog, Tier,
    TierRole,
};

use crate::args::Args;
use crate::binding::{bind, check_namespace, CallOptions, Select};
use crate::function::CachedFunction;
use crate::settings::{reports_of, CallFrame, CallStack, Inherited, NuthatchOptions};
use crate::timeseries::{call_span, handing, Window};

/// Everything settled about one call at planning time.
#[derive(Debug)]
pub struct Call {
    pub function: Arc<CachedFunction>,
    pub catalog: Arc<Catalog>,
    pub args: Args,
    pub options: CallOptions,
    /// The entry on root and mirrors: keyed by `cache_args`.
    pub id: EntryId,
    /// The entry in memory and on the local tier: keyed by every argument
    /// (so each window has its own clipped copy), as in Python. `None` when
    /// the arguments cannot make a key (a value with '/' or too long).
    pub local_id: Option<EntryId>,
    /// The explicit mode; `None` takes the default when the call runs
    /// (`write` if root takes writes, else `read_only_strict`).
    pub mode: Option<CacheMode>,
    pub recompute: bool,
    pub memoize: bool,
    pub retry_null_cache: bool,
    pub fail_if_no_cache: bool,
    /// What the write does with the stored entry: `upsert => true` merges
    /// by the function's keys, `replace_window => true` replaces the
    /// call's window; otherwise a computed result replaces the entry.
    pub write_mode: WriteMode,
    /// Whether root and mirrors take part (the function's `cache`, the
    /// call's, and `cache_disable_if`).
    pub cache: bool,
    /// The backend entries are read with; `None` reads whichever an entry
    /// has.
    pub backend: Option<Arc<dyn Backend>>,
    /// The backend computed results are stored with, when not `backend`.
    pub storage_backend: Option<Arc<dyn Backend>>,
    pub window: Option<Window>,
    /// How long after its end a range this call computes stays
    /// provisional: the call's `settle`, else the function's.
    pub settle: Option<std::time::Duration>,
    /// Rewrite the entry's parts as one (`compact => true`).
    pub compact: bool,
    /// Refuse to store values the backend would change: the call's
    /// `exact`, else the function's.
    pub exact: bool,
    /// What the calls of this call's body inherit.
    pub inherited: Inherited,
    /// The calls whose bodies are running around this one.
    pub stack: Arc<CallStack>,
    /// Where this call's report goes: its session's log.
    pub reports: Arc<ReportLog>,
    /// What the on_stale policy is for this call: the call's, else the
    /// function's, else the session's.
    pub on_stale: OnStale,
    /// The entries and files this call's compute reads, noted as its body
    /// runs: the lineage its entry records.
    pub reads: Arc<Reads>,
    /// The in-flight key of the entry this call leads the compute of, once
    /// it does: the calls inside its body wait on its behalf.
    pub leading: Arc<std::sync::OnceLock<String>>,
}

impl Call {
    /// Plans a call of `function` with DataFusion's folded arguments, in the
    /// session that is planning it.
    pub fn plan(
        function: &Arc<CachedFunction>,
        catalog: &Arc<Catalog>,
        exprs: &[Expr],
        session: &dyn Session,
    ) -> Result<Call> {
        let bound = bind(function, exprs)?;
        let config = session.config();
        let settings = NuthatchOptions::of(config);
        let stack = CallStack::of(config);
        let name = function.name();
        let options = &bound.options;
        let own_memoize = options.memoize.clone().unwrap_or({
            if function.memoizes() || settings.memoize {
                Select::Yes
            } else {
                Select::No
            }
        });
        // A top-level call hands its options down; a nested call takes what
        // was handed down, as Python's globals work.
        let (inherited, recompute, memoize, retry_null_cache, explicit_mode) = match stack.caller()
        {
            None => {
                let retry = options
                    .retry_null_cache
                    .unwrap_or(settings.retry_null_cache);
                let inherited = Inherited {
                    cache_mode: options.cache_mode,
                    on_stale: options.on_stale,
                    retry_null_cache: retry,
                    recompute: options.recompute.passed_down(),
                    memoize: own_memoize.passed_down(),
                };
                let recompute = options.recompute.is_on();
                (
                    inherited,
                    recompute,
                    own_memoize.is_on(),
                    retry,
                    options.cache_mode,
                )
            }
            Some(caller) => {
                let inherited = caller.inherited.clone();
                let recompute = inherited.recompute.reaches(name) || options.recompute.is_on();
                let memoize = inherited.memoize.reaches(name) || own_memoize.is_on();
                let retry = inherited.retry_null_cache;
                let mode = inherited.cache_mode.or(options.cache_mode);
                (inherited, recompute, memoize, retry, mode)
            }
        };
        let mode = explicit_mode.or(settings.cache_mode);
        let namespace = match (&options.namespace, function.namespace()) {
            (Some(ns), _) => Some(ns.clone()),
            (None, Some(ns)) => Some(check_namespace(ns)?),
            (None, None) => None,
        };
        // Looked up once, here: the call carries the formats themselves.
        let resolve = |name: Option<&str>| -> Result<Option<Arc<dyn Backend>>> {
            let Some(name) = name else { return Ok(None) };
            let backend = catalog
                .backend(name)
                .map_err(|e| DataFusionError::Plan(format!("{}: {e}", function.name())))?;
            Ok(Some(Arc::clone(backend)))
        };
        let backend = resolve(options.backend.as_deref().or(function.backend()))?;
        let storage_backend = resolve(
            options
                .storage_backend
                .as_deref()
                .or(function.storage_backend()),
        )?;
        let key_of = |names: &mut dyn Iterator<Item = &String>| {
            let values: BTreeMap<String, KeyValue> = names
                .map(|name| {
                    let value = bound.args.get(name).expect("bind fills every parameter");
                    (name.clone(), KeyValue::Scalar(value.key_text()))
                })
                .collect();
            cache_key(function.name(), &values)
        };
        let key = key_of(&mut function.cache_args().iter()).map_err(|source| Error::BadKey {
            function: function.name().to_string(),
            source,
        })?;
        let version = function.version().map(str::to_string);
        let local_id = match key_of(&mut function.params().iter().map(|p| &p.name)) {
            Ok(key) => Some(EntryId {
                key,
                namespace: namespace.clone(),
                version: version.clone(),
            }),
            Err(e) => {
                // As in Python: no all-arguments key, no memory or local tier.
                tracing::debug!("{name}: memory and local tiers skipped: {e}");
                None
            }
        };
        let disabled = function.disable_if().iter().any(|c| c.holds(&bound.args));
        if disabled {
            tracing::info!("{name}: cache_disable_if holds; root and mirrors are not used");
        }
        let cache = options.cache.unwrap_or(function.caches()) && !disabled;
        let fail_if_no_cache = options
            .fail_if_no_cache
            .unwrap_or(function.fails_if_no_cache() || settings.fail_if_no_cache);
        let window = match function.timeseries() {
            Some(column) => Window::from_args(function.name(), column, &bound.args)?,
            None => None,
        };
        let write_mode = write_mode(function, &bound.options, window.as_ref())?;
        let settle = bound.options.settle.or(function.settle());
        let compact = bound.options.compact;
        let exact = bound.options.exact.unwrap_or(function.exact());
        let on_stale = (inherited.on_stale)
            .or(bound.options.on_stale)
            .or(function.options().on_stale)
            .unwrap_or(settings.on_stale);
        if bound.options.settle.is_some() && !function.covers_windows() {
            return Err(DataFusionError::Plan(format!(
                "{name}: settle marks recent ranges of a growing timeseries entry as \
                 provisional, and {name} is not one (its coverage is not 'window')"
            )));
        }

        let call = Call {
            function: Arc::clone(function),
            catalog: Arc::clone(catalog),
            args: bound.args,
            options: bound.options,
            id: EntryId {
                key,
                namespace,
                version,
            },
            local_id,
            mode,
            recompute,
            memoize,
            retry_null_cache,
            fail_if_no_cache,
            write_mode,
            cache,
            backend,
            storage_backend,
            window,
            settle,
            compact,
            exact,
            inherited,
            stack,
            reports: reports_of(config),
            on_stale,
            reads: Arc::default(),
            leading: Arc::default(),
        };
        call.stack.check(&call.frame())?;
        Ok(call)
    }

    /// This call as a frame of the stack its body runs under.
    pub fn frame(&self) -> CallFrame {
        CallFrame {
            function: self.function.name().to_string(),
            key: self.id.key.clone(),
            namespace: self.id.namespace.clone(),
            inherited: self.inherited.clone(),
            reads: Arc::clone(&self.reads),
            leading: Arc::clone(&self.leading),
        }
    }

    /// The entry this call has on `tier`: local and memory are keyed by all
    /// arguments, root and mirrors by `cache_args`.
    pub fn id_on(&self, tier: &Tier) -> Option<&EntryId> {
        match tier.role() {
            TierRole::Local => self.local_id.as_ref(),
            TierRole::Root | TierRole::Mirror => Some(&self.id),
        }
    }

    /// The time the call asks for: its window's span, all time without one.
    pub fn span(&self) -> Span {
        call_span(self.window.as_ref())
    }

    /// The arguments the body is handed. A body that computes its window
    /// gets the call's window exactly as it is clipped (a date-only end as
    /// the last instant of that day), so what it computes is what the
    /// entry records covering.
    pub fn body_args(&self) -> Args {
        if self.function.covers_windows() {
            handing(&self.args, self.function.params(), self.span())
        } else {
            self.args.clone()
        }
    }

    /// Whether the call merges into the stored entry rather than reading it
    /// or replacing it.
    pub fn merges(&self) -> bool {
        self.write_mode != WriteMode::Replace
    }

    /// The backend a computed result is stored with: `storage_backend`,
    /// else `backend`, else the default.
    pub fn write_backend(&self) -> Arc<dyn Backend> {
        let chosen = self.storage_backend.as_ref().or(self.backend.as_ref());
        Arc::clone(chosen.unwrap_or_else(|| self.catalog.backends().default_backend()))
    }

    /// Names a stored entry among all computes of this process.
    pub fn inflight_key(&self, tier: &Tier, id: &EntryId, backend: &dyn Backend) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            tier.url(),
            backend.name(),
            id.namespace.as_deref().unwrap_or(""),
            id.key,
            id.version.as_deref().unwrap_or("")
        )
    }
}

/// The write mode `upsert` or `replace_window` asks for, checked against
/// the function: an upsert needs keys, a window replacement a timeseries
/// function called with a window.
fn write_mode(
    function: &CachedFunction,
    options: &CallOptions,
    window: Option<&Window>,
) -> Result<WriteMode> {
    let name = function.name();
    match (options.upsert, options.replace_window) {
        (false, false) => Ok(WriteMode::Replace),
        (true, true) => Err(DataFusionError::Plan(format!(
            "{name}: upsert and replace_window cannot be combined; an upsert merges by key, a \
             window replacement replaces every row of the window"
        ))),
        (true, false) => {
            if function.upsert_keys().is_empty() {
                return Err(DataFusionError::Plan(format!(
                    "{name}: upsert => true needs the columns that identify a row; declare them \
                     with WITH (upsert_keys = (...)) (.upsert_keys([...]) in Rust)"
                )));
            }
            Ok(WriteMode::Upsert {
                keys: function.upsert_keys().to_vec(),
            })
        }
        (false, true) => {
            let Some(column) = function.timeseries() else {
                return Err(DataFusionError::Plan(format!(
                    "{name}: replace_window => true replaces a time window, and {name} is not a \
                     timeseries function (WITH (timeseries = 'time'))"
                )));
            };
            let predicate = window
                .map(|w| w.predicates(function.schema()))
                .transpose()?
                .and_then(conjunction)
                .ok_or_else(|| {
                    DataFusionError::Plan(format!(
                        "{name}: replace_window => true needs a window: pass start_time and \
                         end_time (the rows of {column} between them are replaced)"
                    ))
                })?;
            Ok(WriteMode::ReplaceWhere { predicate })
        }
    }
}

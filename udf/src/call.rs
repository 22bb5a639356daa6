//! A planned call: everything settled about `f(args)` before it runs.
//!
//! [`Call::plan`] binds the arguments, settles mode, namespace, backend,
//! key and clip window, and checks the call against the session's stack of
//! running calls. It reads nothing and computes nothing: the cache work
//! starts when the plan runs ([`crate::exec`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::catalog::Session;
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use nuthatch_backends::Backend;
use nuthatch_catalog::{cache_key, CacheMode, Catalog, EntryId, Error, KeyValue, ReportLog};

use crate::args::Args;
use crate::binding::{bind, check_namespace, CallOptions};
use crate::function::CachedFunction;
use crate::settings::{reports_of, CallFrame, CallStack, NuthatchOptions};
use crate::timeseries::Window;

/// Everything settled about one call at planning time.
#[derive(Debug)]
pub struct Call {
    pub function: Arc<CachedFunction>,
    pub catalog: Arc<Catalog>,
    pub args: Args,
    pub options: CallOptions,
    pub id: EntryId,
    pub mode: CacheMode,
    /// The backend named by the call or the function; `None` reads any
    /// backend the entry has and stores with the default.
    pub backend: Option<String>,
    pub window: Option<Window>,
    /// The calls whose bodies are running around this one.
    pub stack: Arc<CallStack>,
    /// Where this call's report goes: its session's log.
    pub reports: Arc<ReportLog>,
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
        let session_mode = config
            .options()
            .extensions
            .get::<NuthatchOptions>()
            .map(|o| o.cache_mode);
        let mode = bound
            .options
            .cache_mode
            .or(session_mode)
            .unwrap_or_default()
            .check_supported()?;
        let namespace = match (&bound.options.namespace, function.namespace()) {
            (Some(ns), _) => Some(ns.clone()),
            (None, Some(ns)) => Some(check_namespace(ns)?),
            (None, None) => None,
        };
        let backend = bound
            .options
            .backend
            .clone()
            .or_else(|| function.backend().map(str::to_string));
        if let Some(name) = &backend {
            catalog
                .backend(name)
                .map_err(|e| DataFusionError::Plan(format!("{}: {e}", function.name())))?;
        }
        let key_values: BTreeMap<String, KeyValue> = function
            .cache_args()
            .iter()
            .map(|name| {
                let value = bound.args.get(name).expect("bind fills every parameter");
                (name.clone(), KeyValue::Scalar(value.key_text()))
            })
            .collect();
        let key = cache_key(function.name(), &key_values).map_err(|source| Error::BadKey {
            function: function.name().to_string(),
            source,
        })?;
        let window = match function.timeseries() {
            Some(column) => Window::from_args(function.name(), column, &bound.args)?,
            None => None,
        };
        let call = Call {
            function: Arc::clone(function),
            catalog: Arc::clone(catalog),
            args: bound.args,
            options: bound.options,
            id: EntryId {
                key,
                namespace,
                version: function.version().map(str::to_string),
            },
            mode,
            backend,
            window,
            stack: CallStack::of(config),
            reports: reports_of(config),
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
            mode: self.mode,
            recompute: self.options.recompute,
        }
    }

    /// The backend a computed result is stored with.
    pub fn write_backend(&self) -> Result<Arc<dyn Backend>> {
        match &self.backend {
            Some(name) => Ok(Arc::clone(self.catalog.backend(name)?)),
            None => Ok(Arc::clone(self.catalog.backends().default_backend())),
        }
    }

    /// Names the stored entry among all computes of this process.
    pub fn inflight_key(&self, backend: &dyn Backend) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            self.catalog.root().url(),
            backend.name(),
            self.id.namespace.as_deref().unwrap_or(""),
            self.id.key,
            self.id.version.as_deref().unwrap_or("")
        )
    }
}

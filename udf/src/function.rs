//! Cached-function definitions and the Rust builder.
//!
//! A definition says what a function is called, what it takes, which of its
//! arguments key the cache, what it returns, and how to compute it. The
//! declared return schema lets a call be planned without computing or
//! reading anything.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::{plan_err, DataFusionError, Result};
use datafusion::dataframe::DataFrame;
use datafusion::execution::context::SessionContext;
use datafusion::execution::SendableRecordBatchStream;
use futures::future::BoxFuture;
use futures::FutureExt;
use nuthatch_backends::{Backend, Layout};
use nuthatch_catalog::key::check_function_name;

use crate::args::Args;
use crate::grid::check_grid;
pub use crate::grid::{ChunkByArg, Grid};
use crate::options::{is_reserved, FunctionOptions};
use crate::sql_body::SqlBody;
pub use crate::timeseries::CoverageKind;
use crate::value::{ParamType, Value};

/// What a compute body returns. nuthatch runs it as a stream: a DataFrame
/// or a stream is never collected, so a result larger than memory can be
/// computed and stored.
pub enum Computed {
    /// A DataFrame, executed by nuthatch.
    Frame(DataFrame),
    /// Batches already in memory.
    Batches(Vec<RecordBatch>),
    /// A stream of batches, read once.
    Stream(SendableRecordBatchStream),
    /// No result (Python's `None`): stored as a null marker, read back as
    /// an empty table.
    Null,
}

/// `None` is [`Computed::Null`].
impl<T: Into<Computed>> From<Option<T>> for Computed {
    fn from(result: Option<T>) -> Self {
        result.map_or(Computed::Null, Into::into)
    }
}

impl From<SendableRecordBatchStream> for Computed {
    fn from(stream: SendableRecordBatchStream) -> Self {
        Computed::Stream(stream)
    }
}

impl From<DataFrame> for Computed {
    fn from(frame: DataFrame) -> Self {
        Computed::Frame(frame)
    }
}

impl From<Vec<RecordBatch>> for Computed {
    fn from(batches: Vec<RecordBatch>) -> Self {
        Computed::Batches(batches)
    }
}

type RustBody =
    Arc<dyn Fn(SessionContext, Args) -> BoxFuture<'static, Result<Computed>> + Send + Sync>;

/// How a function computes its result.
#[derive(Clone)]
pub enum Body {
    Rust(RustBody),
    Sql(SqlBody),
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Rust(_) => f.write_str("Body::Rust"),
            Body::Sql(body) => write!(f, "Body::Sql({})", body.text()),
        }
    }
}

/// One parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub ty: ParamType,
    /// `None` makes the parameter required.
    pub default: Option<Value>,
}

/// One `cache_disable_if` condition: it holds when every named argument
/// has one of its listed values. Root and mirrors are then not used for the
/// call (memory and local still are).
#[derive(Debug, Clone, PartialEq)]
pub struct DisableIf {
    pub when: Vec<(String, Vec<Value>)>,
}

impl DisableIf {
    /// Does the condition hold for these arguments?
    pub fn holds(&self, args: &Args) -> bool {
        // Compared as key text, so '2013-01-01' matches a timestamp given
        // either way, as the key does.
        self.when.iter().all(|(name, values)| {
            args.get(name)
                .is_some_and(|v| values.iter().any(|w| w.key_text() == v.key_text()))
        })
    }
}

/// A cached function.
#[derive(Debug, Clone)]
pub struct CachedFunction {
    pub(crate) name: String,
    pub(crate) params: Vec<Param>,
    /// As the definition gave them, checked.
    pub(crate) options: FunctionOptions,
    /// What a timeseries body computes, as declared or as its body says;
    /// `Window` for other functions, where it means nothing.
    pub(crate) coverage: CoverageKind,
    pub(crate) schema: SchemaRef,
    pub(crate) body: Body,
    /// The definitions file a SQL function came from.
    pub(crate) source: Option<PathBuf>,
    /// The definition's own fingerprint ([`crate::fingerprint`]).
    pub(crate) own_fingerprint: String,
    /// The relations a SQL body reads from, by name: the cached
    /// functions among them count in the fingerprint.
    pub(crate) calls: Vec<String>,
}

impl CachedFunction {
    pub fn builder(name: impl Into<String>) -> CachedFunctionBuilder {
        CachedFunctionBuilder {
            name: name.into(),
            params: Vec::new(),
            options: FunctionOptions::default(),
            schema: None,
            body: None,
        }
    }

    /// Every option the definition set, defaults for the others.
    pub fn options(&self) -> &FunctionOptions {
        &self.options
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn params(&self) -> &[Param] {
        &self.params
    }

    pub fn cache_args(&self) -> &[String] {
        &self.options.cache_args
    }

    pub fn version(&self) -> Option<&str> {
        self.options.version.as_deref()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.options.namespace.as_deref()
    }

    pub fn timeseries(&self) -> Option<&str> {
        self.options.timeseries.as_deref()
    }

    /// What a timeseries function's body computes; `None` for other
    /// functions.
    pub fn coverage(&self) -> Option<CoverageKind> {
        self.options.timeseries.as_ref().map(|_| self.coverage)
    }

    /// How long after its end a range computed stays provisional: a later
    /// call that reaches it computes it again (data revised after the
    /// fact, as forecasts are).
    pub fn settle(&self) -> Option<std::time::Duration> {
        self.options.settle
    }

    /// Whether a result the backend would store changed (a NaN SQLite
    /// cannot hold, nanoseconds Delta truncates) fails instead of being
    /// stored with a warning.
    pub fn exact(&self) -> bool {
        self.options.exact
    }

    /// Whether entries record the windows computed, and calls past them
    /// compute what is missing.
    pub fn covers_windows(&self) -> bool {
        self.coverage() == Some(CoverageKind::Window)
    }

    /// The columns every call's rows come in ascending order of (nulls
    /// last), within each partition: entries are stored in this order and
    /// calls declare it to DataFusion, so what needs it (a window per
    /// series, a merge join, `ORDER BY`) does not sort again. Empty when
    /// the function declares none.
    pub fn order_by(&self) -> &[String] {
        &self.options.order_by
    }

    /// The order entries are written in: the declared one, else the
    /// timeseries column (which makes windows prune).
    pub fn stored_order(&self) -> Vec<String> {
        if !self.options.order_by.is_empty() {
            return self.options.order_by.clone();
        }
        self.options.timeseries.iter().cloned().collect()
    }

    /// The backend the function names, if any; `None` stores with the
    /// default (Parquet) and reads whatever backend an entry was stored with.
    pub fn backend(&self) -> Option<&str> {
        self.options.backend.as_deref()
    }

    /// The backend computed results are stored with, when it differs from
    /// the one entries are read with.
    pub fn storage_backend(&self) -> Option<&str> {
        self.options.storage_backend.as_deref()
    }

    /// Whether calls keep their results in memory by default.
    pub fn memoizes(&self) -> bool {
        self.options.memoize
    }

    /// Whether calls use root and mirrors by default (memory and local are
    /// used regardless).
    pub fn caches(&self) -> bool {
        self.options.cache
    }

    /// Whether a miss is an error rather than a compute.
    pub fn fails_if_no_cache(&self) -> bool {
        self.options.fail_if_no_cache
    }

    pub fn disable_if(&self) -> &[DisableIf] {
        &self.options.disable_if
    }

    /// Whether `backend` can store this function's results as its
    /// definition lays them out (a grid needs dimensions, ...); the error
    /// names the function and what to change.
    pub fn check_backend(&self, backend: &dyn Backend) -> Result<()> {
        let layout = Layout {
            dimensions: &self.options.grid.dimensions,
            order: &self.options.order_by,
            upsert_keys: &self.options.upsert_keys,
        };
        backend.check_layout(&layout).map_err(|e| match e {
            DataFusionError::Plan(message) => {
                DataFusionError::Plan(format!("{}: {message}", self.name))
            }
            other => other,
        })
    }

    /// The grid dimensions and chunking of a gridded (Zarr) result.
    pub fn grid(&self) -> &Grid {
        &self.options.grid
    }

    /// The columns that identify a row when a call upserts.
    pub fn upsert_keys(&self) -> &[String] {
        &self.options.upsert_keys
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    pub fn body(&self) -> &Body {
        &self.body
    }

    /// The definitions file the function was read from, if any.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    pub(crate) fn defined_in(mut self, source: Option<PathBuf>) -> Self {
        self.source = source;
        self
    }

    /// The result's columns as `name Type, ...`, for listings.
    pub fn returns(&self) -> String {
        let columns: Vec<String> = self
            .schema
            .fields()
            .iter()
            .map(|field| format!("{} {}", field.name(), field.data_type()))
            .collect();
        columns.join(", ")
    }

    /// `name(p1 TYPE, p2 TYPE DEFAULT v)`, for messages.
    pub fn signature(&self) -> String {
        format!("{}({})", self.name, self.parameters())
    }

    /// `p1 TYPE, p2 TYPE DEFAULT v`, as a definition spells them.
    pub fn parameters(&self) -> String {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|p| match &p.default {
                Some(d) => format!("{} {} DEFAULT {}", p.name, p.ty, d.sql_literal()),
                None => format!("{} {}", p.name, p.ty),
            })
            .collect();
        params.join(", ")
    }
}

/// Builds a [`CachedFunction`]; `build` checks the definition as a whole.
pub struct CachedFunctionBuilder {
    name: String,
    params: Vec<Param>,
    options: FunctionOptions,
    schema: Option<SchemaRef>,
    body: Option<Body>,
}

impl CachedFunctionBuilder {
    /// A required parameter.
    pub fn param(mut self, name: impl Into<String>, ty: ParamType) -> Self {
        self.params.push(Param {
            name: name.into(),
            ty,
            default: None,
        });
        self
    }

    /// A parameter with a default value.
    pub fn param_default(mut self, name: impl Into<String>, ty: ParamType, default: Value) -> Self {
        self.params.push(Param {
            name: name.into(),
            ty,
            default: Some(default),
        });
        self
    }

    /// The parameters whose values key the cache.
    pub fn cache_args<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.options.cache_args = names.into_iter().map(Into::into).collect();
        self
    }

    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.options.version = Some(version.into());
        self
    }

    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.options.namespace = Some(namespace.into());
        self
    }

    /// Names the time column; calls are clipped to `[start_time, end_time]`.
    pub fn timeseries(mut self, column: impl Into<String>) -> Self {
        self.options.timeseries = Some(column.into());
        self
    }

    /// Declares what the timeseries body computes: [`CoverageKind::Window`]
    /// (the default for Rust bodies) when it computes the window it is
    /// handed, [`CoverageKind::Full`] when it computes its whole series
    /// whatever the window.
    pub fn coverage(mut self, coverage: CoverageKind) -> Self {
        self.options.coverage = Some(coverage);
        self
    }

    /// Marks ranges that end less than `settle` before the time they are
    /// computed as provisional: the next call that reaches them computes
    /// them again, while settled history is never recomputed. Only for a
    /// body that computes its window.
    pub fn settle(mut self, settle: std::time::Duration) -> Self {
        self.options.settle = Some(settle);
        self
    }

    /// Fails a write whose backend would store some values changed,
    /// storing nothing, instead of storing them with a warning (see
    /// [`CachedFunction::exact`]).
    pub fn exact(mut self, exact: bool) -> Self {
        self.options.exact = exact;
        self
    }

    /// Declares the order entries keep and calls give their rows in,
    /// outermost first (ascending, nulls last): for example `["time"]` for
    /// a grid that per-series windows read, so the window need not sort.
    pub fn order_by<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.options.order_by = columns.into_iter().map(Into::into).collect();
        self
    }

    /// Stores entries with the backend called `name` (`parquet`, `arrow`);
    /// checked when the function is registered.
    pub fn backend(mut self, name: impl Into<String>) -> Self {
        self.options.backend = Some(name.into().to_ascii_lowercase());
        self
    }

    /// Stores computed results with the backend called `name` while still
    /// reading entries with [`Self::backend`] (or any backend).
    pub fn storage_backend(mut self, name: impl Into<String>) -> Self {
        self.options.storage_backend = Some(name.into().to_ascii_lowercase());
        self
    }

    /// Keeps call results in the memory tier (`memoize => false` per call
    /// turns it off).
    pub fn memoize(mut self) -> Self {
        self.options.memoize = true;
        self
    }

    /// `false` keeps calls off root and the mirrors; memory and the local
    /// tier still work, as with Python's `cache=False`.
    pub fn cache(mut self, cache: bool) -> Self {
        self.options.cache = cache;
        self
    }

    /// Says what identifies a Rust body's code, for its fingerprint: the
    /// code itself has no text nuthatch can hash, so without this only
    /// the `version` and the declaration (parameters, columns, options)
    /// tell one definition from another. Change it (a hash of the source,
    /// a release number) whenever the body computes something else, and
    /// entries computed before report stale.
    pub fn fingerprint(mut self, text: impl Into<String>) -> Self {
        self.options.fingerprint = Some(text.into());
        self
    }

    /// What calls do with a stale entry unless the call or the session
    /// says otherwise (default: serve it, and say it is stale).
    pub fn on_stale(mut self, policy: nuthatch_catalog::OnStale) -> Self {
        self.options.on_stale = Some(policy);
        self
    }

    /// Makes a miss an error instead of a compute.
    pub fn fail_if_no_cache(mut self) -> Self {
        self.options.fail_if_no_cache = true;
        self
    }

    /// Adds a condition under which root and mirrors are not used: every
    /// named argument has one of its values. Conditions may only name
    /// `cache_args` (checked by `build`). Call it again for another
    /// condition; any one holding is enough.
    pub fn cache_disable_if<I, S>(mut self, when: I) -> Self
    where
        I: IntoIterator<Item = (S, Vec<Value>)>,
        S: Into<String>,
    {
        let when = when.into_iter().map(|(n, v)| (n.into(), v)).collect();
        self.options.disable_if.push(DisableIf { when });
        self
    }

    /// The result is a grid over these columns, outermost first: each
    /// other column is stored as an array over them (`backend = 'zarr'`).
    pub fn dimensions<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.options.grid.dimensions = names.into_iter().map(Into::into).collect();
        self
    }

    /// Chunk lengths per dimension, as nuthatch's `chunking`; dimensions not
    /// named get the backend's default.
    pub fn chunking<I, S>(mut self, sizes: I) -> Self
    where
        I: IntoIterator<Item = (S, u64)>,
        S: Into<String>,
    {
        self.options.grid.chunking = sizes.into_iter().map(|(d, n)| (d.into(), n)).collect();
        self
    }

    /// Chunk lengths for calls whose cache argument `arg` is `value`, over
    /// [`Self::chunking`], as nuthatch's `chunk_by_arg`; a later rule wins
    /// for a dimension two rules set.
    pub fn chunk_by_arg<I, S>(mut self, arg: impl Into<String>, value: Value, sizes: I) -> Self
    where
        I: IntoIterator<Item = (S, u64)>,
        S: Into<String>,
    {
        self.options.grid.chunk_by_arg.push(ChunkByArg {
            arg: arg.into(),
            value,
            chunking: sizes.into_iter().map(|(d, n)| (d.into(), n)).collect(),
        });
        self
    }

    /// The columns that identify a row of the result: an `upsert => true`
    /// call merges its result into the stored entry by them.
    pub fn upsert_keys<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.options.upsert_keys = columns.into_iter().map(Into::into).collect();
        self
    }

    /// Sets every option at once, as a SQL definition's `WITH (...)` gave
    /// them; the setters above change one.
    pub fn options(mut self, options: FunctionOptions) -> Self {
        self.options = options;
        self
    }

    /// The schema of the result.
    pub fn returns(mut self, schema: SchemaRef) -> Self {
        self.schema = Some(schema);
        self
    }

    /// The compute body: an async function of a DataFusion context (through
    /// which other cached functions can be called) and the bound arguments.
    pub fn compute<F, Fut, R>(mut self, body: F) -> Self
    where
        F: Fn(SessionContext, Args) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R>> + Send + 'static,
        R: Into<Computed>,
    {
        let body = Arc::new(move |ctx, args| body(ctx, args).map(|r| r.map(Into::into)).boxed());
        self.body = Some(Body::Rust(body));
        self
    }

    pub(crate) fn sql_body(mut self, body: SqlBody) -> Self {
        self.body = Some(Body::Sql(body));
        self
    }

    pub fn build(self) -> Result<CachedFunction> {
        let name = self.name;
        let mut options = self.options;
        check_function_name(&name).map_err(|e| DataFusionError::Plan(e.to_string()))?;
        let Some(schema) = self.schema else {
            return plan_err!(
                "cached function {name} needs a return schema: call .returns(schema)"
            );
        };
        let Some(body) = self.body else {
            return plan_err!("cached function {name} needs a body: call .compute(...)");
        };
        for (i, param) in self.params.iter().enumerate() {
            if check_function_name(&param.name).is_err() {
                return plan_err!("{name}: '{}' is not a valid parameter name", param.name);
            }
            if is_reserved(&param.name) {
                return plan_err!(
                    "{name}: '{}' is reserved for per-call cache options and cannot be a parameter",
                    param.name
                );
            }
            if self.params[..i].iter().any(|p| p.name == param.name) {
                return plan_err!("{name}: parameter '{}' is declared twice", param.name);
            }
        }
        for arg in &options.cache_args {
            if !self.params.iter().any(|p| &p.name == arg) {
                return plan_err!(
                    "{name}: cache_args names '{arg}', which is not a parameter; parameters are {}",
                    param_list(&self.params)
                );
            }
        }
        for condition in &mut options.disable_if {
            if condition.when.is_empty() {
                return plan_err!("{name}: a cache_disable_if condition names no argument");
            }
            for (arg, values) in &mut condition.when {
                if !options.cache_args.contains(arg) {
                    // Python ignores such names, and a condition naming only
                    // them disables every call; refuse it instead.
                    return plan_err!(
                        "{name}: cache_disable_if names '{arg}', which is not one of the \
                         cache_args ({}); conditions decide about cache entries, so they can \
                         only test arguments that key them",
                        options.cache_args.join(", ")
                    );
                }
                let param = self
                    .params
                    .iter()
                    .find(|p| &p.name == arg)
                    .expect("cache_args are parameters");
                for value in values.iter_mut() {
                    *value = param.ty.coerce(&value.to_scalar()).map_err(|got| {
                        DataFusionError::Plan(format!(
                            "{name}: cache_disable_if compares '{arg}' ({}) with {got}",
                            param.ty
                        ))
                    })?;
                }
            }
        }
        let coverage = crate::timeseries::check(
            &name,
            options.timeseries.as_deref(),
            options.coverage,
            options.settle.is_some(),
            &self.params,
            &schema,
            &body,
        )?;
        options.grid = check_grid(
            &name,
            options.grid,
            &schema,
            &self.params,
            &options.cache_args,
        )?;
        check_columns(&name, "order_by", &options.order_by, &schema)?;
        check_columns(&name, "upsert_keys", &options.upsert_keys, &schema)?;
        // Every column may hold nulls: results computed by different bodies,
        // and files written by Python, disagree on nullability.
        let schema = Arc::new(arrow::datatypes::Schema::new(
            schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<_>>(),
        ));
        let own_fingerprint = crate::fingerprint::own(
            &self.params,
            &options,
            &schema,
            &body,
            options.fingerprint.as_deref(),
        );
        let calls = match &body {
            Body::Sql(body) => body.called(),
            Body::Rust(_) => Vec::new(),
        };
        Ok(CachedFunction {
            name,
            params: self.params,
            options,
            coverage,
            schema,
            body,
            source: None,
            own_fingerprint,
            calls,
        })
    }
}

/// Each of `columns`, which `option` names, is a column of the result,
/// named once.
fn check_columns(name: &str, option: &str, columns: &[String], schema: &SchemaRef) -> Result<()> {
    for (i, column) in columns.iter().enumerate() {
        if schema.field_with_name(column).is_err() {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            return plan_err!(
                "{name}: {option} names '{column}', which is not a column of the result; \
                 its columns are {}",
                names.join(", ")
            );
        }
        if columns[..i].contains(column) {
            return plan_err!("{name}: {option} names '{column}' twice");
        }
    }
    Ok(())
}

pub(crate) fn param_list(params: &[Param]) -> String {
    if params.is_empty() {
        return "(none)".into();
    }
    params
        .iter()
        .map(|p| format!("{} {}", p.name, p.ty))
        .collect::<Vec<_>>()
        .join(", ")
}

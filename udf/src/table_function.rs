//! The DataFusion face of a cached function.
//!
//! [`CachedTableFunction`] is the `TableFunctionImpl` registered under the
//! function's name. At planning time it binds the arguments, settles mode,
//! namespace, key and clip window, and returns a [`CachedCall`] provider
//! whose schema is the declared one: nothing is read or computed. The
//! provider's `scan` turns projection, `WHERE` filters and the window into a
//! [`CachedCallExec`], which does the cache work when it is executed.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::config::ConfigExtension;
use datafusion::common::{extensions_options, DFSchema, DataFusionError, Result};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::expr_rewriter::unnormalize_col;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use nuthatch_catalog::{cache_key, CacheMode, Catalog, EntryId, KeyValue};

use crate::binding::{bind, check_namespace, BoundCall};
use crate::exec::{CachedCallExec, ScanShape};
use crate::function::CachedFunction;
use crate::timeseries::Window;

extensions_options! {
    /// Session settings under `nuthatch.`, e.g. `SET nuthatch.cache_mode = 'overwrite'`.
    pub struct NuthatchOptions {
        /// Cache mode of calls that do not pass `cache_mode => ...`.
        pub cache_mode: CacheMode, default = CacheMode::Write
    }
}

impl ConfigExtension for NuthatchOptions {
    const PREFIX: &'static str = "nuthatch";
}

/// A cached function registered as a table function.
#[derive(Debug)]
pub struct CachedTableFunction {
    function: Arc<CachedFunction>,
    catalog: Arc<Catalog>,
}

impl CachedTableFunction {
    pub fn new(function: Arc<CachedFunction>, catalog: Arc<Catalog>) -> Self {
        CachedTableFunction { function, catalog }
    }
}

impl TableFunctionImpl for CachedTableFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let function = &self.function;
        let bound = bind(function, args.exprs())?;
        let session_mode = args
            .session()
            .config()
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
        let key_values: BTreeMap<String, KeyValue> = function
            .cache_args()
            .iter()
            .map(|name| {
                let value = bound.args.get(name).expect("bind fills every parameter");
                (name.clone(), KeyValue::Scalar(value.key_text()))
            })
            .collect();
        let key = cache_key(function.name(), &key_values)
            .map_err(|e| DataFusionError::Plan(format!("{}: {e}", function.name())))?;
        let window = match function.timeseries() {
            Some(column) => Window::from_args(function.name(), column, &bound.args)?,
            None => None,
        };
        let id = EntryId {
            key,
            namespace,
            version: function.version().map(str::to_string),
        };
        Ok(Arc::new(CachedCall {
            call: Arc::new(Call {
                function: Arc::clone(function),
                catalog: Arc::clone(&self.catalog),
                bound,
                id,
                mode,
                window,
            }),
        }))
    }
}

/// Everything settled about one call at planning time.
#[derive(Debug)]
pub struct Call {
    pub function: Arc<CachedFunction>,
    pub catalog: Arc<Catalog>,
    pub bound: BoundCall,
    pub id: EntryId,
    pub mode: CacheMode,
    pub window: Option<Window>,
}

/// The table a call stands for.
#[derive(Debug)]
pub struct CachedCall {
    call: Arc<Call>,
}

impl CachedCall {
    pub fn call(&self) -> &Call {
        &self.call
    }
}

#[async_trait]
impl TableProvider for CachedCall {
    fn schema(&self) -> SchemaRef {
        Arc::clone(self.call.function.schema())
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    /// Filters prune the stored data but are applied again above the scan.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        session: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let state = session
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| DataFusionError::Internal("cached calls need a SessionState".into()))?;
        let schema = self.schema();
        let window_predicates = match &self.call.window {
            Some(window) => window.predicates(&schema)?,
            None => Vec::new(),
        };
        // The scan reads the requested columns plus the time column the
        // window needs; a projection above drops it again.
        let mut scan_indices: Option<Vec<usize>> = projection.cloned();
        let mut output_indices = None;
        if let (Some(window), Some(indices)) = (&self.call.window, &mut scan_indices) {
            let time = schema.index_of(&window.column)?;
            if !indices.contains(&time) {
                output_indices = Some((0..indices.len()).collect());
                indices.push(time);
            }
        }
        let scan_schema = match &scan_indices {
            Some(indices) => Arc::new(schema.project(indices)?),
            None => Arc::clone(&schema),
        };
        let physical = |expr: Option<Expr>, over: &Schema| -> Result<_> {
            expr.map(|e| session.create_physical_expr(e, &DFSchema::try_from(over.clone())?))
                .transpose()
        };
        let pruning_exprs: Vec<Expr> = filters
            .iter()
            .map(|f| unnormalize_col(f.clone()))
            .chain(window_predicates.iter().cloned())
            .collect();
        let pruning = physical(conjunction(pruning_exprs), &schema)?;
        let window_filter = physical(conjunction(window_predicates), &scan_schema)?;
        let limit = if window_filter.is_some() { None } else { limit };
        let shape = ScanShape {
            scan_indices,
            scan_schema,
            output_indices,
            pruning,
            window_filter,
            limit,
            partitions: state.config().target_partitions().max(1),
        };
        Ok(Arc::new(CachedCallExec::new(
            Arc::clone(&self.call),
            Arc::new(state.clone()),
            shape,
        )?))
    }
}

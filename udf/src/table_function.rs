//! The DataFusion face of a cached function.
//!
//! [`CachedTableFunction`] is the `TableFunctionImpl` registered under the
//! function's name. At planning time it plans the [`Call`] and returns a
//! [`CachedCall`] provider whose schema is the declared one: nothing is read
//! or computed. The provider's `scan` turns projection, `WHERE` filters and
//! the window into a [`CachedCallExec`], which does the cache work when it
//! is executed.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{DFSchema, DataFusionError, Result};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::expr_rewriter::unnormalize_col;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use nuthatch_catalog::Catalog;

use crate::call::Call;
use crate::exec::CachedCallExec;
use crate::function::CachedFunction;
use crate::resolve::ScanShape;

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
        let call = Call::plan(&self.function, &self.catalog, args.exprs(), args.session())?;
        Ok(Arc::new(CachedCall {
            call: Arc::new(call),
        }))
    }
}

/// The table a call stands for.
#[derive(Debug)]
pub struct CachedCall {
    call: Arc<Call>,
}

impl CachedCall {
    /// What was settled about the call at planning time.
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
        let mut output_indices: Option<Vec<usize>> = None;
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
        let window_filter = conjunction(window_predicates.iter().cloned())
            .map(|e| {
                session.create_physical_expr(e, &DFSchema::try_from(scan_schema.as_ref().clone())?)
            })
            .transpose()?;
        let full_window = conjunction(window_predicates.iter().cloned())
            .map(|e| session.create_physical_expr(e, &DFSchema::try_from(schema.as_ref().clone())?))
            .transpose()?;
        let window_exprs = window_predicates.clone();
        let filters: Vec<Expr> = filters
            .iter()
            .map(|f| unnormalize_col(f.clone()))
            .chain(window_predicates)
            .collect();
        let limit = if window_filter.is_some() { None } else { limit };
        let output_schema = match &output_indices {
            Some(indices) => Arc::new(scan_schema.project(indices)?),
            None => Arc::clone(&scan_schema),
        };
        let ordered: Vec<String> = self
            .call
            .function
            .order_by()
            .iter()
            .take_while(|column| output_schema.index_of(column).is_ok())
            .cloned()
            .collect();
        let ordering = crate::resolve::ascending(&ordered, &output_schema)?;
        let shape = ScanShape {
            scan_indices,
            scan_schema,
            output_indices,
            filters,
            window_filter,
            window_exprs,
            full_window,
            limit,
            partitions: state.config().target_partitions().max(1),
            ordering,
        };
        Ok(Arc::new(CachedCallExec::new(
            Arc::clone(&self.call),
            Arc::new(state.clone()),
            shape,
        )?))
    }
}

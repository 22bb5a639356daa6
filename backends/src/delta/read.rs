//! Reading a Delta version as the entry's table.
//!
//! The scan itself is delta-rs' table provider: each filter becomes a
//! predicate over the files' statistics in the log, so a time window skips
//! the files outside it before any is opened, and the same predicate goes
//! on to the Parquet scan, which prunes row groups and pages. Around it,
//! [`DeltaEntry`] does two things delta-rs cannot know about:
//!
//! - it serves the columns with the types the function declares. Delta
//!   stores timestamps in microseconds and delta-rs reads strings as views;
//!   a filter written against the declared types has its literals cast to
//!   the stored ones before delta-rs sees it, and the rows are cast back
//!   after;
//! - it counts the files the scan reads against the version's total, as
//!   the metric `files_pruned` of a thin [`FilesReadExec`] (the call
//!   report's `files=r/t`).

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::logical_expr::{BinaryExpr, Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::expressions::{CastExpr, Column};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::{ExecutionPlan, PhysicalExpr};
use deltalake::DeltaTable;

use super::delta_error;
use crate::files_read::FilesReadExec;

/// One version of a Delta table, served as the entry's table.
#[derive(Debug)]
pub struct DeltaEntry {
    /// delta-rs' provider for the version.
    inner: Arc<dyn TableProvider>,
    /// The columns as the function declares them.
    schema: SchemaRef,
    /// For each declared column, its index in the stored schema.
    stored_index: Vec<usize>,
    /// Live files in the version.
    files: usize,
    /// Where the table is, for messages.
    location: String,
}

impl DeltaEntry {
    /// Serves `table` (loaded at the version to read) as `schema`. A
    /// declared column the table lacks, or holds in a type that does not
    /// cast, is an error naming the column and the way out.
    pub async fn open(table: DeltaTable, schema: SchemaRef, location: String) -> Result<Self> {
        let files = table
            .snapshot()
            .map_err(|e| delta_error("reading", e))?
            .log_data()
            .num_files();
        let inner: Arc<dyn TableProvider> = table.table_provider().await?;
        let stored = inner.schema();
        let mut stored_index = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let found = stored.index_of(field.name()).ok().filter(|&i| {
                arrow::compute::can_cast_types(stored.field(i).data_type(), field.data_type())
            });
            let Some(index) = found else {
                let columns: Vec<String> = stored
                    .fields()
                    .iter()
                    .map(|f| format!("{} {}", f.name(), f.data_type()))
                    .collect();
                return Err(DataFusionError::Execution(format!(
                    "the Delta table at {location} has no column {} of type {} (it has {}); it was \
                     written for another definition of the function: store it again with \
                     cache_mode => 'overwrite', recompute => true",
                    field.name(),
                    field.data_type(),
                    columns.join(", ")
                )));
            };
            stored_index.push(index);
        }
        Ok(DeltaEntry {
            inner,
            schema,
            stored_index,
            files,
            location,
        })
    }
}

#[async_trait]
impl TableProvider for DeltaEntry {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Files and row groups are skipped, rows are not all filtered.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let declared: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let stored_projection: Vec<usize> =
            declared.iter().map(|&i| self.stored_index[i]).collect();
        // A filter whose literal does not cast is applied above only.
        let stored = self.inner.schema();
        let filters: Vec<Expr> = filters
            .iter()
            .filter_map(|f| cast_literals(f.clone(), &stored).ok())
            .collect();
        let plan = self
            .inner
            .scan(state, Some(&stored_projection), &filters, limit)
            .await?;
        let read = files_in(&plan);
        let plan = cast_to_declared(plan, &self.schema, &declared)?;
        Ok(Arc::new(FilesReadExec::new(plan, read, self.files)))
    }
}

impl fmt::Display for DeltaEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Delta table at {}", self.location)
    }
}

/// `expr`, with each literal compared to a column cast to that column's
/// type in `stored`: filters are written against the declared types, and
/// delta-rs translates them to predicates over the stored ones as they
/// are. An error when a literal does not cast.
pub(crate) fn cast_literals(expr: Expr, stored: &SchemaRef) -> Result<Expr> {
    let cast = expr.transform_up(|expr| {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &expr else {
            return Ok(Transformed::no(expr));
        };
        let (column, literal, column_left) = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) => (c, v, true),
            (Expr::Literal(v, _), Expr::Column(c)) => (c, v, false),
            _ => return Ok(Transformed::no(expr)),
        };
        let Ok(field) = stored.field_with_name(&column.name) else {
            return Ok(Transformed::no(expr));
        };
        if literal.data_type() == *field.data_type() {
            return Ok(Transformed::no(expr));
        }
        let value = Expr::Literal(literal.cast_to(field.data_type())?, None);
        let column = Expr::Column(column.clone());
        let (l, r) = if column_left {
            (column, value)
        } else {
            (value, column)
        };
        Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
            Box::new(l),
            *op,
            Box::new(r),
        ))))
    })?;
    Ok(cast.data)
}

/// The files the Parquet scans under `plan` will open.
fn files_in(plan: &Arc<dyn ExecutionPlan>) -> usize {
    let mut files = 0;
    let _ = plan.apply(|node| {
        if let Some(source) = node.downcast_ref::<DataSourceExec>() {
            if let Some(config) = source.data_source().downcast_ref::<FileScanConfig>() {
                files += config.file_groups.iter().map(|g| g.len()).sum::<usize>();
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    files
}

/// `plan`'s columns cast to the declared types of the columns `declared`.
fn cast_to_declared(
    plan: Arc<dyn ExecutionPlan>,
    schema: &SchemaRef,
    declared: &[usize],
) -> Result<Arc<dyn ExecutionPlan>> {
    let input = plan.schema();
    let same = declared.iter().enumerate().all(|(i, &d)| {
        input.field(i).data_type() == schema.field(d).data_type()
            && input.field(i).name() == schema.field(d).name()
    });
    if same {
        return Ok(plan);
    }
    let exprs = declared
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            let field = schema.field(d);
            let column: Arc<dyn PhysicalExpr> = Arc::new(Column::new(input.field(i).name(), i));
            let expr: Arc<dyn PhysicalExpr> = if input.field(i).data_type() == field.data_type() {
                column
            } else {
                Arc::new(CastExpr::new(column, field.data_type().clone(), None))
            };
            (expr, field.name().clone())
        })
        .collect::<Vec<_>>();
    Ok(Arc::new(ProjectionExec::try_new(exprs, plan)?))
}

//! Reading a Delta version as the entry's table.
//!
//! A version whose files hold the whole table (no partition columns, no
//! reader features: what this crate and Python's `deltalake` write) is
//! read by this crate's Parquet scan over the files the log lists, each
//! with the time its rows lie in from the log's statistics, so a time
//! window skips the files outside it before any is opened. A version this
//! crate wrote whole has files each sorted by time and marked so
//! ([`crate::parquet::ROWS_ASCEND`]); those are read only within the
//! window's rows, as a Parquet entry's row groups are, and the others are
//! pruned by row group and page and filtered by the scan itself. Either
//! way the scan says the window's comparisons are exact, so nothing
//! evaluates them again above it (it did, at about 0.2 ms of a month's
//! read). Other
//! tables are read by delta-rs' table provider, which turns each filter
//! into a predicate over the files' statistics in the log. Around either,
//! [`DeltaEntry`] does two things a plain scan cannot know about:
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
use deltalake::table::state::DeltaTableState;
use deltalake::DeltaTable;
use object_store::path::Path;
use object_store::ObjectMeta;

use super::delta_error;
use super::nanos::MicrosToNanos;
use crate::coverage::{Coverage, Span};
use crate::files_read::FilesReadExec;
use crate::{Location, Part};

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

/// A version's table as this crate reads it, built once per version: the
/// files and the time each covers come from the log's statistics, which
/// cost about 0.1 ms to go through again on every read.
#[derive(Debug, Clone)]
pub(crate) struct Version {
    inner: Arc<dyn TableProvider>,
    /// Live files in the version.
    files: usize,
}

impl Version {
    /// The version `table` is loaded at, as the entry at `at`.
    pub(crate) async fn of(table: &DeltaTable, at: &Location) -> Result<Self> {
        let snapshot = table.snapshot().map_err(|e| delta_error("reading", e))?;
        let files = snapshot.log_data().num_files();
        let inner: Arc<dyn TableProvider> = match parquet_files(snapshot, at) {
            Some(inner) => inner,
            None => table.table_provider().await?,
        };
        Ok(Self { inner, files })
    }
}

impl DeltaEntry {
    /// Serves `version` as `schema`. A declared column the table lacks, or
    /// holds in a type that does not cast, is an error naming the column
    /// and the way out.
    pub(crate) fn open(version: &Version, schema: SchemaRef, location: String) -> Result<Self> {
        let Version { inner, files } = version.clone();
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

    /// What the version's scan says of each filter as it reaches it (its
    /// literals cast to the stored types), where the cast loses nothing:
    /// a nanosecond bound cut to microseconds would keep other rows.
    /// Otherwise files and row groups are skipped, and rows are not all
    /// filtered.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        let stored = self.inner.schema();
        filters
            .iter()
            .map(|&filter| match cast_literals(filter.clone(), &stored) {
                Ok(cast) => Ok(self.inner.supports_filters_pushdown(&[&cast])?[0].clone()),
                Err(_) => Ok(TableProviderFilterPushDown::Inexact),
            })
            .collect()
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
/// are. An error when a literal does not cast, or does not cast exactly
/// (the scan then applies that filter above only, and a write's predicate
/// fails rather than touch other rows).
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
        let stored_value = literal.cast_to(field.data_type())?;
        // A bound cut to the stored unit (a nanosecond time to Delta's
        // microseconds) would keep or drop other rows than it says.
        if stored_value.cast_to(&literal.data_type()).ok().as_ref() != Some(literal) {
            return Err(DataFusionError::Execution(format!(
                "{literal} is finer than the {} the Delta table stores {} in; compare with a value \
                 it holds",
                field.data_type(),
                column.name
            )));
        }
        let value = Expr::Literal(stored_value, None);
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

/// The files the Parquet scans under `plan` will open (a file split into
/// byte ranges counts once).
fn files_in(plan: &Arc<dyn ExecutionPlan>) -> usize {
    let mut files = std::collections::HashSet::new();
    let _ = plan.apply(|node| {
        if let Some(source) = node.downcast_ref::<DataSourceExec>() {
            if let Some(config) = source.data_source().downcast_ref::<FileScanConfig>() {
                let opened = config.file_groups.iter().flat_map(|g| g.iter());
                files.extend(opened.map(|f| f.object_meta.location.clone()));
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    files.len()
}

/// The version's files read by this crate's Parquet scan, as the parts of
/// an entry, each with the time its rows lie in from the log's statistics
/// so that a window skips files unopened. `None` (delta-rs reads it) when
/// the files alone do not hold the table: partition columns, or a reader
/// feature such as deletion vectors or renamed columns.
///
/// delta-rs' own scan does the same work with more on the way (it plans
/// through its log's arrow data and a Parquet source of its own), which
/// made a Delta read 2.7 times the same rows read as one Parquet entry.
fn parquet_files(snapshot: &DeltaTableState, at: &Location) -> Option<Arc<dyn TableProvider>> {
    // Reader features that change only how the log or the types are read,
    // not what the files hold.
    const PLAIN: [&str; 6] = [
        "timestampWithoutTimezone",
        "timestampNtz",
        "vacuumProtocolCheck",
        "v2Checkpoint",
        "typeWidening",
        "typeWidening-preview",
    ];
    let protocol = snapshot.protocol();
    let plain = match protocol.min_reader_version() {
        1 => true,
        3 => (protocol.reader_features().unwrap_or_default().iter())
            .all(|feature| PLAIN.contains(&feature.as_ref())),
        _ => false,
    };
    if !plain || !snapshot.metadata().partition_columns().is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    let mut files = Vec::new();
    for file in snapshot.log_data().iter() {
        let relative = file.object_store_path();
        let covers = at.time_column.as_deref().and_then(|column| {
            let stats: serde_json::Value = serde_json::from_str(&file.stats()?).ok()?;
            let bound = |side: &str| micros(stats.get(side)?.get(column)?);
            // The log keeps times to the millisecond, cut down.
            let (low, high) = (bound("minValues")?, bound("maxValues")?);
            Some(Coverage::of([Span::new(Some(low), Some(high + 1000))]))
        });
        parts.push(Part {
            name: relative.to_string(),
            covers,
            rows: file.num_records().map(|n| n as u64),
        });
        files.push(ObjectMeta {
            location: Path::from(format!("{}/{relative}", at.path)),
            last_modified: file.modification_datetime().ok()?,
            size: u64::try_from(file.size()).ok()?,
            e_tag: None,
            version: None,
        });
    }
    // A version written whole by this crate records the order its files'
    // rows each keep (a merge records none).
    let ascending = at.sort_order.first().cloned();
    let at = Location {
        parts: Some(parts),
        sort_order: Vec::new(),
        ..at.clone()
    };
    let schema = snapshot.snapshot().arrow_schema();
    Some(crate::parquet::read_files(&at, files, schema, ascending))
}

/// A time the log's statistics hold (`2013-01-01 00:00:00` for a time
/// without zone, `2013-01-01T00:00:00.000Z` with one, or a date), in epoch
/// microseconds.
fn micros(value: &serde_json::Value) -> Option<i64> {
    let text = value.as_str()?;
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(time.timestamp_micros());
    }
    for form in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(time) = chrono::NaiveDateTime::parse_from_str(text, form) {
            return Some(time.and_utc().timestamp_micros());
        }
    }
    let day = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros())
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
            let (from, to) = (input.field(i).data_type(), field.data_type());
            let expr: Arc<dyn PhysicalExpr> = if from == to {
                column
            } else if let Some(widened) = MicrosToNanos::between(&column, from, to) {
                widened
            } else {
                Arc::new(CastExpr::new(column, to.clone(), None))
            };
            (expr, field.name().clone())
        })
        .collect::<Vec<_>>();
    Ok(Arc::new(ProjectionExec::try_new(exprs, plan)?))
}

#[cfg(test)]
mod tests {
    use super::micros;
    use serde_json::json;

    #[test]
    fn times_in_the_log_s_statistics_read_in_every_form_it_writes() {
        let new_year = 1_356_998_400_000_000;
        for text in [
            "2013-01-01 00:00:00",
            "2013-01-01T00:00:00.000Z",
            "2013-01-01",
        ] {
            assert_eq!(micros(&json!(text)), Some(new_year), "{text}");
        }
        assert_eq!(
            micros(&json!("2013-01-01 06:00:00.5")),
            Some(new_year + 21_600_500_000)
        );
        assert_eq!(micros(&json!(12)), None);
        assert_eq!(micros(&json!("soon")), None);
    }
}

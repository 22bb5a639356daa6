//! The timeseries processor as filter pushdown.
//!
//! `start_time` and `end_time` are not part of the key: the entry holds the
//! whole result and every call is clipped to `[start_time, end_time]`. A
//! date-only end keeps its whole day (`'2013-06-01'` includes 18:00 that
//! day), as nuthatch's xarray path does; an end with a time is exact, as its
//! DataFrame path is. The window becomes predicates on the time column, which
//! prune Parquet row groups and pages and are then applied exactly.

use arrow::datatypes::Schema;
use chrono::NaiveDateTime;
use datafusion::common::{plan_err, Result, ScalarValue};
use datafusion::logical_expr::{col, lit, Expr};

use crate::args::Args;
use crate::value::Value;

/// The clip window of one call.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub column: String,
    /// Rows at or after this instant are kept.
    pub start: Option<NaiveDateTime>,
    /// Rows before this instant, or at it when `end_inclusive`, are kept.
    pub end: Option<NaiveDateTime>,
    pub end_inclusive: bool,
}

impl Window {
    /// The window of a call to a function whose time column is `column`.
    pub fn from_args(function: &str, column: &str, args: &Args) -> Result<Option<Window>> {
        let start = match args.get("start_time") {
            Some(Value::Null) | None => None,
            Some(v) => v.as_timestamp(),
        };
        let (end, end_inclusive) = match args.get("end_time") {
            Some(Value::Null) | None => (None, true),
            Some(Value::Timestamp {
                at,
                date_only: true,
            }) => (Some(*at + chrono::Duration::days(1)), false),
            Some(Value::Date(day)) => (
                Some(day.and_time(chrono::NaiveTime::MIN) + chrono::Duration::days(1)),
                false,
            ),
            Some(v) => (v.as_timestamp(), true),
        };
        if let (Some(s), Some(Value::Timestamp { at: e, .. })) = (start, args.get("end_time")) {
            if *e < s {
                return plan_err!(
                    "{function}: end_time {} is before start_time {}; swap them",
                    e.format("%Y-%m-%dT%H:%M:%S"),
                    s.format("%Y-%m-%dT%H:%M:%S")
                );
            }
        }
        if start.is_none() && end.is_none() {
            return Ok(None);
        }
        Ok(Some(Window {
            column: column.to_string(),
            start,
            end,
            end_inclusive,
        }))
    }

    /// The window as predicates over `schema`'s time column, with literals
    /// of the column's own type so that statistics pruning applies.
    pub fn predicates(&self, schema: &Schema) -> Result<Vec<Expr>> {
        let data_type = schema.field_with_name(&self.column)?.data_type().clone();
        let literal = |at: NaiveDateTime| -> Result<Expr> {
            let nanos = at.and_utc().timestamp_nanos_opt();
            let typed = ScalarValue::TimestampNanosecond(nanos, None).cast_to(&data_type)?;
            Ok(lit(typed))
        };
        let column = col(datafusion::common::Column::new_unqualified(&self.column));
        let mut predicates = Vec::new();
        if let Some(start) = self.start {
            predicates.push(column.clone().gt_eq(literal(start)?));
        }
        if let Some(end) = self.end {
            predicates.push(if self.end_inclusive {
                column.lt_eq(literal(end)?)
            } else {
                column.lt(literal(end)?)
            });
        }
        Ok(predicates)
    }
}

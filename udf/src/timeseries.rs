//! The timeseries processor as filter pushdown.
//!
//! `start_time` and `end_time` are not part of the key: the entry holds the
//! whole result and every call is clipped to `[start_time, end_time]`. A
//! date-only end keeps its whole day (`'2013-06-01'` includes 18:00 that
//! day), as nuthatch's xarray path does; an end with a time is exact, as its
//! DataFrame path is. The window becomes predicates on the time column, which
//! prune Parquet row groups and pages and are then applied exactly.

use arrow::datatypes::{DataType, Schema};
use chrono::{DateTime, NaiveDateTime};
use datafusion::common::{plan_err, DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::utils::{conjunction, disjunction};
use datafusion::logical_expr::{col, lit, Expr};
use nuthatch_backends::coverage::{Coverage, Span};

use crate::args::Args;
use crate::function::{Body, Param};
use crate::value::{ParamType, Value};

/// What time a timeseries function's body computes, which decides what
/// its entries cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoverageKind {
    /// The body computes the window it is handed (`start_time` to
    /// `end_time`): an entry covers the windows computed so far, and a call
    /// reaching past them computes only the time missing.
    Window,
    /// The body computes its whole series whatever the window says: an
    /// entry covers all time, and every call is clipped from it.
    Full,
}

impl CoverageKind {
    pub fn name(self) -> &'static str {
        match self {
            CoverageKind::Window => "window",
            CoverageKind::Full => "full",
        }
    }

    /// `full` or `window`, as SQL spells them.
    pub fn parse(function: &str, text: &str) -> Result<CoverageKind> {
        match text.trim().to_ascii_lowercase().as_str() {
            "window" => Ok(CoverageKind::Window),
            "full" => Ok(CoverageKind::Full),
            _ => plan_err!(
                "{function}: coverage takes 'window' (the body computes the window it is \
                 handed, and entries grow as wider windows are asked for) or 'full' (the \
                 body computes its whole series whatever the window), got '{text}'"
            ),
        }
    }
}

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

    /// The time the window spans: an inclusive end `e` ends the span at
    /// `e + 1µs`.
    pub fn span(&self) -> Span {
        let micros = |at: NaiveDateTime| at.and_utc().timestamp_micros();
        let end = self.end.map(|end| match self.end_inclusive {
            true => micros(end).saturating_add(1),
            false => micros(end),
        });
        Span::new(self.start.map(micros), end)
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

/// `settle`, as `'2 days'`, `'36 hours'` or `'1 day 12 hours'`: how long
/// after its end a computed range stays provisional.
pub fn parse_settle(function: &str, text: &str) -> Result<std::time::Duration> {
    let wrong = || {
        DataFusionError::Plan(format!(
            "{function}: settle takes a length of time such as '2 days', '36 hours' or \
             '1 day 12 hours' (seconds, minutes, hours, days, weeks), got '{text}'"
        ))
    };
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() || !words.len().is_multiple_of(2) {
        return Err(wrong());
    }
    let mut seconds: u64 = 0;
    for pair in words.chunks(2) {
        let count: u64 = pair[0].parse().map_err(|_| wrong())?;
        let unit = match pair[1].to_ascii_lowercase().trim_end_matches('s') {
            "second" | "sec" => 1,
            "minute" | "min" => 60,
            "hour" => 3_600,
            "day" => 86_400,
            "week" => 604_800,
            _ => return Err(wrong()),
        };
        seconds = count
            .checked_mul(unit)
            .and_then(|s| seconds.checked_add(s))
            .ok_or_else(wrong)?;
    }
    Ok(std::time::Duration::from_secs(seconds))
}

/// What of `covers`, computed now, is still provisional under `settle`:
/// the time from `settle` before now on.
pub fn provisional(covers: &Coverage, settle: Option<std::time::Duration>) -> Option<Coverage> {
    let settle = settle?;
    let now = chrono::Utc::now().timestamp_micros();
    let since = now.saturating_sub(i64::try_from(settle.as_micros()).unwrap_or(i64::MAX));
    let recent = covers.since(since);
    (!recent.is_empty()).then_some(recent)
}

/// The time a call asks for: its window's span, or all time without one.
pub fn call_span(window: Option<&Window>) -> Span {
    window.map_or(Span::ALL, Window::span)
}

/// `args` with `start_time` and `end_time` set to hand a body `span`: the
/// start as it is, the end inclusive (`1µs` before the span's end), so that
/// `time BETWEEN $start_time AND $end_time` selects the span exactly. A
/// `DATE` parameter gets the days the span touches; what the body returns
/// outside the span is dropped when stored.
pub fn handing(args: &Args, params: &[Param], span: Span) -> Args {
    let value = |name: &str, micros: Option<i64>| -> Value {
        let Some(at) = micros.and_then(DateTime::from_timestamp_micros) else {
            return Value::Null;
        };
        let at = at.naive_utc();
        match params.iter().find(|p| p.name == name).map(|p| p.ty) {
            Some(ParamType::Date) => Value::Date(at.date()),
            _ => Value::Timestamp {
                at,
                date_only: false,
            },
        }
    };
    args.with("start_time", value("start_time", span.start))
        .with("end_time", value("end_time", span.end.map(|e| e - 1)))
}

/// The rows of `column` within `span`, as predicates over `schema`.
pub fn span_predicates(column: &str, span: Span, schema: &Schema) -> Result<Vec<Expr>> {
    let data_type = schema.field_with_name(column)?.data_type().clone();
    let literal = |micros: i64| -> Result<Expr> {
        let typed = ScalarValue::TimestampMicrosecond(Some(micros), None).cast_to(&data_type)?;
        Ok(lit(typed))
    };
    let time = col(datafusion::common::Column::new_unqualified(column));
    let mut predicates = Vec::new();
    if let Some(start) = span.start {
        predicates.push(time.clone().gt_eq(literal(start)?));
    }
    if let Some(end) = span.end {
        predicates.push(time.lt(literal(end)?));
    }
    Ok(predicates)
}

/// The rows of `column` within any span of `coverage`; `None` when that is
/// every row (all time).
pub fn coverage_predicate(column: &str, coverage: &Coverage, schema: &Schema) -> Result<Expr> {
    let mut any = Vec::new();
    for span in coverage.spans() {
        match conjunction(span_predicates(column, *span, schema)?) {
            Some(within) => any.push(within),
            None => return Ok(lit(true)),
        }
    }
    Ok(disjunction(any).unwrap_or(lit(false)))
}

/// Checks the timeseries options of function `name` and settles what its
/// body covers: declared, else `full` for a SQL body that never reads
/// `$start_time` or `$end_time`, else `window`. Only a `window` body's
/// entries grow, so only they may `settle`.
pub(crate) fn check(
    name: &str,
    column: Option<&str>,
    declared: Option<CoverageKind>,
    settles: bool,
    params: &[Param],
    schema: &Schema,
    body: &Body,
) -> Result<CoverageKind> {
    let coverage = check_coverage(name, column, declared, params, schema, body)?;
    if settles && !(column.is_some() && coverage == CoverageKind::Window) {
        return plan_err!(
            "{name}: settle marks recent ranges of a growing timeseries entry as provisional, \
             so it needs timeseries = '<column>' and coverage = 'window'"
        );
    }
    Ok(coverage)
}

fn check_coverage(
    name: &str,
    column: Option<&str>,
    declared: Option<CoverageKind>,
    params: &[Param],
    schema: &Schema,
    body: &Body,
) -> Result<CoverageKind> {
    let Some(column) = column else {
        if let Some(coverage) = declared {
            return plan_err!(
                "{name}: coverage = '{}' describes the time a timeseries body computes, and \
                 {name} has no timeseries column; add timeseries = '<column>' or drop coverage",
                coverage.name()
            );
        }
        return Ok(CoverageKind::Window);
    };
    for bound in ["start_time", "end_time"] {
        let ok = params
            .iter()
            .any(|p| p.name == bound && matches!(p.ty, ParamType::Timestamp | ParamType::Date));
        if !ok {
            return plan_err!(
                "{name}: a timeseries function needs timestamp parameters 'start_time' and \
                 'end_time'"
            );
        }
    }
    match schema.field_with_name(column) {
        Ok(field)
            if matches!(
                field.data_type(),
                DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
            ) => {}
        Ok(field) => {
            return plan_err!(
                "{name}: timeseries column '{column}' is {}, not a timestamp",
                field.data_type()
            )
        }
        Err(_) => return plan_err!("{name}: the result has no timeseries column '{column}'"),
    }
    Ok(declared.unwrap_or(match body {
        Body::Sql(sql) => {
            let reads_window = sql
                .placeholders()
                .iter()
                .any(|p| p == "start_time" || p == "end_time");
            if reads_window {
                CoverageKind::Window
            } else {
                CoverageKind::Full
            }
        }
        Body::Rust(_) => CoverageKind::Window,
    }))
}

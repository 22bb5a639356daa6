//! The time an entry's rows were computed for.
//!
//! A timeseries entry records the windows its body was asked for, so that a
//! call for a wider window can tell which time is missing instead of being
//! served short. Coverage is a set of disjoint, merged [`Span`]s of time,
//! each half-open, `[start, end)`, in epoch microseconds, with `None` for an
//! open side. Half-open spans make merging exact: a window ending at
//! midnight (a date-only end) and one starting at that midnight meet
//! without overlapping or leaving a hole. An inclusive end `e` is the span
//! end `e + 1µs`; coverage is kept to the microsecond, the unit the
//! metastore records times in, and what a window of whole seconds, or even
//! of milliseconds, needs.
//!
//! Formats see coverage only as a fact about the rows they are handed
//! ([`crate::WriteOptions::covers`]); what it means for a call is the
//! catalog's and the resolver's business.

use std::fmt;

use arrow::datatypes::{DataType, Schema, TimeUnit};
use chrono::{DateTime, NaiveDateTime, Timelike};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

/// `[start, end)` in epoch microseconds; `None` leaves a side open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

impl Span {
    /// All time.
    pub const ALL: Span = Span {
        start: None,
        end: None,
    };

    pub fn new(start: Option<i64>, end: Option<i64>) -> Span {
        Span { start, end }
    }

    /// Whether no instant is in the span.
    pub fn is_empty(&self) -> bool {
        matches!((self.start, self.end), (Some(s), Some(e)) if e <= s)
    }

    /// The span's start, `i64::MIN` when open, for ordering.
    fn low(&self) -> i64 {
        self.start.unwrap_or(i64::MIN)
    }

    /// The span's end, `i64::MAX` when open.
    fn high(&self) -> i64 {
        self.end.unwrap_or(i64::MAX)
    }
}

impl fmt::Display for Span {
    /// `2013-01-01 .. 2014-01-01`: from the start up to, not including,
    /// the end; an open side is left blank.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.start, self.end) {
            (None, None) => f.write_str(".."),
            (Some(s), None) => write!(f, "{} ..", instant(s)),
            (None, Some(e)) => write!(f, ".. {}", instant(e)),
            (Some(s), Some(e)) => write!(f, "{} .. {}", instant(s), instant(e)),
        }
    }
}

/// The time `filters` keep of `column` in `schema`, from their comparisons
/// of it with timestamp or date literals (others keep any time): what a
/// scan may skip parts outside of.
pub fn window_of(column: &str, schema: &Schema, filters: &[Expr]) -> Span {
    let mut window = Span::ALL;
    let mut conjuncts = Vec::new();
    for filter in filters {
        split_conjunction_into(filter, &mut conjuncts);
    }
    let micros = |value: &ScalarValue| -> Option<i64> {
        let cast = value
            .cast_to(&DataType::Timestamp(TimeUnit::Microsecond, None))
            .ok()?;
        match cast {
            ScalarValue::TimestampMicrosecond(at, _) => at,
            _ => None,
        }
    };
    if schema.field_with_name(column).is_err() {
        return window;
    }
    for conjunct in conjuncts {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = conjunct else {
            continue;
        };
        let (op, value) = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) if c.name == column => (*op, v),
            (Expr::Literal(v, _), Expr::Column(c)) if c.name == column => match op.swap() {
                Some(op) => (op, v),
                None => continue,
            },
            _ => continue,
        };
        let Some(at) = micros(value) else { continue };
        let raise = |start: Option<i64>, to: i64| Some(start.map_or(to, |s| s.max(to)));
        let lower = |end: Option<i64>, to: i64| Some(end.map_or(to, |e| e.min(to)));
        match op {
            // `> at` starts at `at` too: rows may lie within its microsecond.
            Operator::GtEq | Operator::Gt => window.start = raise(window.start, at),
            Operator::Lt => window.end = lower(window.end, at),
            Operator::LtEq => window.end = lower(window.end, at.saturating_add(1)),
            Operator::Eq => {
                window.start = raise(window.start, at);
                window.end = lower(window.end, at.saturating_add(1));
            }
            _ => {}
        }
    }
    window
}

fn split_conjunction_into<'a>(expr: &'a Expr, into: &mut Vec<&'a Expr>) {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            split_conjunction_into(left, into);
            split_conjunction_into(right, into);
        }
        other => into.push(other),
    }
}

/// An instant as a user reads it: the date alone at midnight, else the time
/// to the precision it has.
pub fn instant(micros: i64) -> String {
    let Some(at) = DateTime::from_timestamp_micros(micros).map(|t| t.naive_utc()) else {
        return micros.to_string();
    };
    readable(at)
}

fn readable(at: NaiveDateTime) -> String {
    if at.time() == chrono::NaiveTime::MIN {
        at.format("%Y-%m-%d").to_string()
    } else if at.nanosecond() == 0 {
        at.format("%Y-%m-%d %H:%M:%S").to_string()
    } else {
        at.format("%Y-%m-%d %H:%M:%S%.f").to_string()
    }
}

/// Disjoint, merged spans in ascending order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    spans: Vec<Span>,
}

impl Coverage {
    /// Nothing covered.
    pub fn empty() -> Coverage {
        Coverage::default()
    }

    /// All time: a body that computes its whole series whatever its window.
    pub fn all() -> Coverage {
        Coverage {
            spans: vec![Span::ALL],
        }
    }

    /// The spans merged: overlapping or touching spans become one.
    pub fn of(spans: impl IntoIterator<Item = Span>) -> Coverage {
        let mut spans: Vec<Span> = spans.into_iter().filter(|s| !s.is_empty()).collect();
        spans.sort_by_key(Span::low);
        let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
        for span in spans {
            match merged.last_mut() {
                Some(last) if span.low() <= last.high() => {
                    if span.high() > last.high() {
                        last.end = span.end;
                    }
                }
                _ => merged.push(span),
            }
        }
        Coverage { spans: merged }
    }

    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Whether every instant of time is covered.
    pub fn is_all(&self) -> bool {
        self.spans == [Span::ALL]
    }

    /// What either covers.
    pub fn union(&self, other: &Coverage) -> Coverage {
        Coverage::of(self.spans.iter().chain(&other.spans).copied())
    }

    /// The parts of `span` not covered, in ascending order.
    pub fn missing(&self, span: Span) -> Coverage {
        let mut missing = Vec::new();
        let mut from = span.start;
        let low = |at: Option<i64>| at.unwrap_or(i64::MIN);
        for covered in &self.spans {
            if covered.low() >= span.high() {
                break;
            }
            if covered.high() <= low(from) {
                continue;
            }
            if covered.low() > low(from) {
                missing.push(Span::new(from, covered.start));
            }
            match covered.end {
                None => return Coverage { spans: missing },
                Some(end) => from = Some(end),
            }
        }
        missing.push(Span::new(from, span.end));
        Coverage::of(missing)
    }

    /// What this covers and `other` does not.
    pub fn subtract(&self, other: &Coverage) -> Coverage {
        Coverage::of(
            self.spans
                .iter()
                .flat_map(|span| other.missing(*span).spans),
        )
    }

    /// What this covers from `from` on.
    pub fn since(&self, from: i64) -> Coverage {
        self.subtract(&Coverage::of([Span::new(None, Some(from))]))
    }

    /// The least span holding every covered instant (nothing covered: all
    /// time).
    pub fn hull(&self) -> Span {
        match (self.spans.first(), self.spans.last()) {
            (Some(first), Some(last)) => Span::new(first.start, last.end),
            _ => Span::ALL,
        }
    }

    /// Whether any instant of `span` is covered.
    pub fn overlaps(&self, span: Span) -> bool {
        !span.is_empty() && self.missing(span) != Coverage::of([span])
    }

    /// `span` with an open side closed at the edge of what is covered: a
    /// call that leaves its start (or end) open reads from the first (to
    /// the last) covered instant, and is missing only the holes between.
    pub fn bounded(&self, span: Span) -> Span {
        let (Some(first), Some(last)) = (self.spans.first(), self.spans.last()) else {
            return span;
        };
        Span {
            start: span.start.or(first.start),
            end: span.end.or(last.end),
        }
    }

    /// The stored form: `start..end` per span, in microseconds, a side left
    /// blank when open, spans joined by `;`. `""` is nothing covered.
    pub fn encode(&self) -> String {
        let side = |at: Option<i64>| at.map(|v| v.to_string()).unwrap_or_default();
        self.spans
            .iter()
            .map(|s| format!("{}..{}", side(s.start), side(s.end)))
            .collect::<Vec<_>>()
            .join(";")
    }

    /// Reads [`Coverage::encode`]'s form.
    pub fn decode(text: &str) -> datafusion::common::Result<Coverage> {
        Coverage::decode_text(text).map_err(datafusion::common::DataFusionError::Execution)
    }

    fn decode_text(text: &str) -> Result<Coverage, String> {
        let side = |text: &str| -> Result<Option<i64>, String> {
            match text.trim() {
                "" => Ok(None),
                number => number
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("'{number}' is not a time in microseconds")),
            }
        };
        let mut spans = Vec::new();
        for part in text.split(';').filter(|p| !p.trim().is_empty()) {
            let (start, end) = part
                .split_once("..")
                .ok_or_else(|| format!("coverage span '{part}' has no '..'"))?;
            spans.push(Span::new(side(start)?, side(end)?));
        }
        Ok(Coverage::of(spans))
    }
}

impl fmt::Display for Coverage {
    /// The spans as [`Span`] shows them, joined by `, `; `nothing` when
    /// empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.spans.is_empty() {
            return f.write_str("nothing");
        }
        for (i, span) in self.spans.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{span}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000_000;

    fn days(start: i64, end: i64) -> Span {
        Span::new(Some(start * DAY), Some(end * DAY))
    }

    #[test]
    fn spans_merge_when_they_overlap_or_touch() {
        let c = Coverage::of([days(5, 7), days(0, 2), days(2, 3), days(6, 9), days(11, 12)]);
        assert_eq!(c.spans(), &[days(0, 3), days(5, 9), days(11, 12)]);
        let open = c.union(&Coverage::of([Span::new(None, Some(DAY))]));
        assert_eq!(open.spans()[0], Span::new(None, Some(3 * DAY)));
        assert!(c.union(&Coverage::all()).is_all());
        assert!(Coverage::of([days(3, 3)]).is_empty());
    }

    #[test]
    fn missing_is_the_window_less_what_is_covered() {
        let c = Coverage::of([days(0, 3), days(5, 9)]);
        assert!(c.missing(days(1, 3)).is_empty());
        assert!(c.missing(days(5, 9)).is_empty());
        assert_eq!(c.missing(days(2, 6)).spans(), &[days(3, 5)]);
        assert_eq!(
            c.missing(days(-1, 10)).spans(),
            &[days(-1, 0), days(3, 5), days(9, 10)]
        );
        assert_eq!(c.missing(days(10, 12)).spans(), &[days(10, 12)]);
        assert_eq!(
            c.missing(Span::ALL).spans(),
            &[
                Span::new(None, Some(0)),
                days(3, 5),
                Span::new(Some(9 * DAY), None)
            ]
        );
        assert!(Coverage::all().missing(days(1, 2)).is_empty());
        let from_five = Coverage::of([Span::new(Some(5 * DAY), None)]);
        assert_eq!(from_five.missing(days(0, 9)).spans(), &[days(0, 5)]);
        assert_eq!(Coverage::empty().missing(days(0, 1)).spans(), &[days(0, 1)]);
    }

    #[test]
    fn subtracting_leaves_what_only_one_covers() {
        let c = Coverage::of([days(0, 3), days(5, 9)]);
        let less = c.subtract(&Coverage::of([days(2, 6)]));
        assert_eq!(less.spans(), &[days(0, 2), days(6, 9)]);
        assert!(c.subtract(&Coverage::all()).is_empty());
        assert_eq!(c.subtract(&Coverage::empty()), c);
        assert_eq!(c.since(DAY).spans(), &[days(1, 3), days(5, 9)]);
        assert_eq!(
            Coverage::all().since(DAY).spans(),
            &[Span::new(Some(DAY), None)]
        );
    }

    #[test]
    fn an_open_call_reads_to_the_edges_of_what_is_covered() {
        let c = Coverage::of([days(0, 3), days(5, 9)]);
        let bounded = c.bounded(Span::ALL);
        assert_eq!(bounded, days(0, 9));
        assert_eq!(c.missing(bounded).spans(), &[days(3, 5)]);
        assert_eq!(c.bounded(Span::new(Some(DAY), None)), days(1, 9));
        assert_eq!(Coverage::all().bounded(Span::ALL), Span::ALL);
    }

    #[test]
    fn coverage_survives_its_stored_form_and_reads_as_dates() {
        let c = Coverage::of([
            Span::new(None, Some(DAY)),
            days(3, 5),
            Span::new(Some(9 * DAY + 3_600_000_000), None),
        ]);
        assert_eq!(Coverage::decode(&c.encode()).unwrap(), c);
        assert_eq!(Coverage::decode("").unwrap(), Coverage::empty());
        assert!(Coverage::decode("1..x").is_err());
        assert!(Coverage::decode("12").is_err());
        assert_eq!(
            c.to_string(),
            ".. 1970-01-02, 1970-01-04 .. 1970-01-06, 1970-01-10 01:00:00 .."
        );
        assert_eq!(Coverage::all().to_string(), "..");
        assert_eq!(Coverage::empty().to_string(), "nothing");
    }
}

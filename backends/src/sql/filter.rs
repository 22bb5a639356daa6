//! DataFusion filters as SQL the database evaluates, with every value
//! bound to a placeholder.
//!
//! DataFusion's unparser writes an expression back as SQL text with its
//! literals inlined; here literals never enter the text at all. Each one
//! becomes a `$n` (PostgreSQL) or `?n` (SQLite) placeholder and travels as
//! a typed parameter (for PostgreSQL's `COPY`, which takes none, a bound
//! session setting read back by the statement), so no value, whatever
//! characters it holds, can change the statement; the only names written are quoted identifiers of columns
//! the table has. Working node by node also tells exactly which filters the
//! database evaluates as DataFusion would: those are pushed and marked
//! exact (so a `LIMIT` can go down too), the rest are left to DataFusion.
//!
//! What pushes: columns, literals, `= <> < <= > >=`, `AND`, `OR`, `NOT`,
//! `IS [NOT] NULL`, `[NOT] IN (...)` and `BETWEEN`, when both sides are of
//! one kind (numbers, text, booleans, dates, timestamps). Text is ordered by
//! the database's collation, which in PostgreSQL need not be DataFusion's
//! byte order, so `<` on text pushes only to SQLite (byte order by default).
//! Timestamps with digits below a microsecond stay above: the databases
//! keep microseconds.

use std::collections::HashMap;

use arrow::datatypes::{DataType, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Cast, Expr, Operator};

use super::database::{quote, Dialect};
use super::types::{sqlite_timestamp, Wire};

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    Date(NaiveDate),
    Timestamp(NaiveDateTime),
    TimestampUtc(DateTime<Utc>),
}

impl Param {
    /// The value as SQLite stores it (dates and timestamps as text).
    pub fn for_sqlite(&self) -> Param {
        match self {
            Param::Bool(b) => Param::Int(*b as i64),
            Param::Date(d) => Param::Text(d.format("%Y-%m-%d").to_string()),
            Param::Timestamp(t) => Param::Text(sqlite_timestamp(t.and_utc().timestamp_micros())),
            Param::TimestampUtc(t) => Param::Text(sqlite_timestamp(t.timestamp_micros())),
            other => other.clone(),
        }
    }
}

/// A column a filter may name.
#[derive(Debug, Clone)]
pub struct ColumnInfo {
    /// Its name in the table.
    pub stored: String,
    /// How the database holds it.
    pub wire: Wire,
    /// The type the provider shows, which filters are written against.
    pub declared: DataType,
}

/// What kind of value an operand is, for deciding whether a comparison
/// means the same in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Number,
    Text,
    Bool,
    Bytes,
    Date,
    Timestamp,
}

fn kind(wire: Wire) -> Kind {
    match wire {
        Wire::Int16 | Wire::Int32 | Wire::Int64 | Wire::Float32 | Wire::Float64 => Kind::Number,
        Wire::Text => Kind::Text,
        Wire::Bool => Kind::Bool,
        Wire::Bytes => Kind::Bytes,
        Wire::Date => Kind::Date,
        Wire::Timestamp | Wire::TimestampUtc => Kind::Timestamp,
    }
}

/// Turns filters into SQL for one statement, numbering placeholders
/// across all of them.
pub struct Translator<'a> {
    dialect: Dialect,
    /// The table's columns that can be compared in SQL, by the name the
    /// provider shows.
    columns: &'a HashMap<String, ColumnInfo>,
    params: Vec<Param>,
    /// Values are read back from session settings rather than bound
    /// (PostgreSQL's `COPY`, which binds nothing; see `super::copy`).
    by_setting: bool,
}

impl<'a> Translator<'a> {
    pub fn new(dialect: Dialect, columns: &'a HashMap<String, ColumnInfo>) -> Self {
        Translator {
            dialect,
            columns,
            params: Vec::new(),
            by_setting: false,
        }
    }

    /// A translator for a PostgreSQL `COPY` statement: each value becomes
    /// a read of the session setting it is put in before the statement
    /// runs; a value with no setting form keeps its `$n`, which tells the
    /// reader to fetch with bound parameters instead.
    pub fn for_copy(columns: &'a HashMap<String, ColumnInfo>) -> Self {
        Translator {
            by_setting: true,
            ..Translator::new(Dialect::Postgres, columns)
        }
    }

    /// The parameters bound so far, in placeholder order.
    pub fn into_params(self) -> Vec<Param> {
        self.params
    }

    /// SQL for `filter` if the database evaluates it exactly as DataFusion
    /// would; `None` (and nothing bound) otherwise.
    pub fn translate(&mut self, filter: &Expr) -> Option<String> {
        let mark = self.params.len();
        let sql = self.boolean(filter);
        if sql.is_none() {
            self.params.truncate(mark);
        }
        sql
    }

    fn placeholder(&mut self, param: Param) -> String {
        self.params.push(param);
        let n = self.params.len();
        if self.by_setting {
            if let Some((_, read_back)) = super::copy::setting(n, &self.params[n - 1]) {
                return read_back;
            }
        }
        match self.dialect {
            Dialect::Postgres => format!("${n}"),
            Dialect::Sqlite => format!("?{n}"),
        }
    }

    /// A condition.
    fn boolean(&mut self, expr: &Expr) -> Option<String> {
        match expr {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
                Operator::And | Operator::Or => {
                    let l = self.boolean(left)?;
                    let r = self.boolean(right)?;
                    Some(format!("({l} {op} {r})"))
                }
                Operator::Eq
                | Operator::NotEq
                | Operator::Lt
                | Operator::LtEq
                | Operator::Gt
                | Operator::GtEq => {
                    let ordered = !matches!(op, Operator::Eq | Operator::NotEq);
                    let (l, lk) = self.operand(left)?;
                    let (r, rk) = self.operand(right)?;
                    self.comparable(lk, rk, ordered)?;
                    Some(format!("({l} {op} {r})"))
                }
                _ => None,
            },
            Expr::Not(inner) => Some(format!("(NOT {})", self.boolean(inner)?)),
            Expr::IsNull(inner) => Some(format!("({} IS NULL)", self.operand(inner)?.0)),
            Expr::IsNotNull(inner) => Some(format!("({} IS NOT NULL)", self.operand(inner)?.0)),
            Expr::Between(Between {
                expr,
                negated,
                low,
                high,
            }) => {
                let (e, ek) = self.operand(expr)?;
                let (l, lk) = self.operand(low)?;
                let (h, hk) = self.operand(high)?;
                self.comparable(ek, lk, true)?;
                self.comparable(ek, hk, true)?;
                let not = if *negated { "NOT " } else { "" };
                Some(format!("({e} {not}BETWEEN {l} AND {h})"))
            }
            Expr::InList(list) => {
                let (e, ek) = self.operand(&list.expr)?;
                if list.list.is_empty() {
                    return None;
                }
                let mut items = Vec::with_capacity(list.list.len());
                for item in &list.list {
                    let (sql, k) = self.operand(item)?;
                    self.comparable(ek, k, false)?;
                    items.push(sql);
                }
                let not = if list.negated { "NOT " } else { "" };
                Some(format!("({e} {not}IN ({}))", items.join(", ")))
            }
            Expr::Column(_) => {
                let (sql, kind) = self.operand(expr)?;
                (kind == Kind::Bool).then_some(sql)
            }
            _ => None,
        }
    }

    /// Both sides of a comparison are of one kind, and ordering text is
    /// left to DataFusion where collations may differ.
    fn comparable(&self, left: Kind, right: Kind, ordered: bool) -> Option<()> {
        if left != right || left == Kind::Bytes {
            return None;
        }
        if ordered && left == Kind::Text && self.dialect == Dialect::Postgres {
            return None;
        }
        Some(())
    }

    /// A value: a column or a literal.
    fn operand(&mut self, expr: &Expr) -> Option<(String, Kind)> {
        match expr {
            Expr::Column(column) => {
                let info = self.columns.get(column.name())?;
                Some((quote(&info.stored), kind(info.wire)))
            }
            Expr::Literal(value, _) => {
                let (param, kind) = literal(value)?;
                let param = match self.dialect {
                    Dialect::Postgres => param,
                    Dialect::Sqlite => param.for_sqlite(),
                };
                Some((self.placeholder(param), kind))
            }
            // A widening cast (an integer column compared with a larger
            // literal, a timestamp's unit made finer) keeps every value.
            Expr::Cast(Cast { expr, field }) => {
                let Expr::Column(column) = expr.as_ref() else {
                    return None;
                };
                let info = self.columns.get(column.name())?;
                lossless(&info.declared, field.data_type())
                    .then(|| (quote(&info.stored), kind(info.wire)))
            }
            _ => None,
        }
    }
}

/// Whether casting `from` to `to` keeps every value (and its order).
fn lossless(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let rank = |t: &DataType| match t {
        Int8 => Some(1),
        Int16 | UInt8 => Some(2),
        Int32 | UInt16 => Some(3),
        Int64 | UInt32 => Some(4),
        _ => None,
    };
    let unit = |u: &TimeUnit| match u {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 1,
        TimeUnit::Microsecond => 2,
        TimeUnit::Nanosecond => 3,
    };
    match (from, to) {
        (a, b) if a == b => true,
        (a, b) if rank(a).is_some() && rank(b).is_some() => rank(a) <= rank(b),
        (a, Float64) => rank(a).is_some() || *a == Float32,
        (Utf8 | LargeUtf8 | Utf8View, Utf8 | LargeUtf8 | Utf8View) => true,
        (Timestamp(a, za), Timestamp(b, zb)) => za.is_some() == zb.is_some() && unit(a) <= unit(b),
        _ => false,
    }
}

/// A literal as a parameter, if it has a value the database keeps exactly.
fn literal(value: &ScalarValue) -> Option<(Param, Kind)> {
    let micros = |v: i64, unit: TimeUnit| -> Option<i64> {
        match unit {
            TimeUnit::Second => v.checked_mul(1_000_000),
            TimeUnit::Millisecond => v.checked_mul(1_000),
            TimeUnit::Microsecond => Some(v),
            TimeUnit::Nanosecond => (v % 1_000 == 0).then_some(v / 1_000),
        }
    };
    let timestamp = |v: i64, unit: TimeUnit, zone: &Option<std::sync::Arc<str>>| {
        let t = DateTime::<Utc>::from_timestamp_micros(micros(v, unit)?)?;
        let param = match zone {
            Some(_) => Param::TimestampUtc(t),
            None => Param::Timestamp(t.naive_utc()),
        };
        Some((param, Kind::Timestamp))
    };
    Some(match value {
        ScalarValue::Boolean(Some(b)) => (Param::Bool(*b), Kind::Bool),
        ScalarValue::Int8(Some(v)) => (Param::Int(*v as i64), Kind::Number),
        ScalarValue::Int16(Some(v)) => (Param::Int(*v as i64), Kind::Number),
        ScalarValue::Int32(Some(v)) => (Param::Int(*v as i64), Kind::Number),
        ScalarValue::Int64(Some(v)) => (Param::Int(*v), Kind::Number),
        ScalarValue::UInt8(Some(v)) => (Param::Int(*v as i64), Kind::Number),
        ScalarValue::UInt16(Some(v)) => (Param::Int(*v as i64), Kind::Number),
        ScalarValue::UInt32(Some(v)) => (Param::Int(*v as i64), Kind::Number),
        ScalarValue::UInt64(Some(v)) => (Param::Int(i64::try_from(*v).ok()?), Kind::Number),
        ScalarValue::Float32(Some(v)) => (Param::Float(*v as f64), Kind::Number),
        ScalarValue::Float64(Some(v)) => (Param::Float(*v), Kind::Number),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => {
            // PostgreSQL text cannot hold NUL; such a value matches nothing
            // there, and DataFusion says so itself.
            if s.contains('\0') {
                return None;
            }
            (Param::Text(s.clone()), Kind::Text)
        }
        ScalarValue::Date32(Some(days)) => {
            let date = NaiveDate::from_ymd_opt(1970, 1, 1)?
                .checked_add_signed(chrono::Duration::days(*days as i64))?;
            (Param::Date(date), Kind::Date)
        }
        ScalarValue::TimestampSecond(Some(v), zone) => timestamp(*v, TimeUnit::Second, zone)?,
        ScalarValue::TimestampMillisecond(Some(v), zone) => {
            timestamp(*v, TimeUnit::Millisecond, zone)?
        }
        ScalarValue::TimestampMicrosecond(Some(v), zone) => {
            timestamp(*v, TimeUnit::Microsecond, zone)?
        }
        ScalarValue::TimestampNanosecond(Some(v), zone) => {
            timestamp(*v, TimeUnit::Nanosecond, zone)?
        }
        ScalarValue::Dictionary(_, inner) => return literal(inner),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    fn columns() -> HashMap<String, ColumnInfo> {
        let info = |wire: Wire, declared: DataType| ColumnInfo {
            stored: String::new(),
            wire,
            declared,
        };
        let mut columns = HashMap::new();
        let mut lat = info(Wire::Float64, DataType::Float64);
        lat.stored = "lat".into();
        let mut name = info(Wire::Text, DataType::Utf8);
        name.stored = "name".into();
        columns.insert("lat".to_string(), lat);
        columns.insert("name".to_string(), name);
        columns
    }

    #[test]
    fn values_become_placeholders_never_text() {
        let columns = columns();
        let mut t = Translator::new(Dialect::Postgres, &columns);
        let hostile = "x'); DROP TABLE t; --";
        let sql = t
            .translate(&col("name").eq(lit(hostile)).and(col("lat").gt(lit(40.0))))
            .unwrap();
        assert_eq!(sql, "((\"name\" = $1) AND (\"lat\" > $2))");
        assert_eq!(
            t.into_params(),
            [Param::Text(hostile.into()), Param::Float(40.0)]
        );
    }

    #[test]
    fn text_ordering_stays_with_datafusion_on_postgres_only() {
        let columns = columns();
        let filter = col("name").lt(lit("m"));
        assert!(Translator::new(Dialect::Postgres, &columns)
            .translate(&filter)
            .is_none());
        assert_eq!(
            Translator::new(Dialect::Sqlite, &columns)
                .translate(&filter)
                .as_deref(),
            Some("(\"name\" < ?1)")
        );
    }

    #[test]
    fn unknown_columns_and_functions_do_not_push_and_bind_nothing() {
        let columns = columns();
        let mut t = Translator::new(Dialect::Postgres, &columns);
        assert!(t
            .translate(&col("lat").gt(lit(1.0)).and(col("other").eq(lit(1))))
            .is_none());
        assert!(t.into_params().is_empty());
    }
}

//! Parameter types and bound argument values.
//!
//! A value knows three renderings: the Python `str()` text that goes into a
//! cache key, the DataFusion scalar a Rust body reads, and a SQL literal that
//! replaces a `$parameter` in a SQL body. The SQL literal is produced here,
//! quoted and escaped, and re-parsed as one token, so argument text can
//! never become SQL.

use std::fmt;

use arrow::datatypes::{DataType, TimeUnit};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use datafusion::common::ScalarValue;
use nuthatch_catalog::key::python_float;

/// What an argument was, when it is not of its parameter's type: `got
/// 'soon'`, for a message that says what the parameter expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch(pub String);

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Mismatch {}

/// The type of a cached function's parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    String,
    Int,
    Float,
    Bool,
    Date,
    Timestamp,
}

impl ParamType {
    /// How errors name the type.
    pub fn describe(self) -> &'static str {
        match self {
            ParamType::String => "a string",
            ParamType::Int => "an integer",
            ParamType::Float => "a number",
            ParamType::Bool => "true or false",
            ParamType::Date => "a date such as '2013-01-01'",
            ParamType::Timestamp => "a timestamp such as '2013-01-01' or '2013-01-01T06:00:00'",
        }
    }

    /// The SQL type name used in `CREATE CACHED FUNCTION`.
    pub fn sql_name(self) -> &'static str {
        match self {
            ParamType::String => "VARCHAR",
            ParamType::Int => "BIGINT",
            ParamType::Float => "DOUBLE",
            ParamType::Bool => "BOOLEAN",
            ParamType::Date => "DATE",
            ParamType::Timestamp => "TIMESTAMP",
        }
    }

    /// Reads a SQL type name, accepting the usual spellings.
    pub fn from_sql_name(name: &str) -> Option<ParamType> {
        let name = name.trim().to_ascii_uppercase();
        let base = name.split('(').next().unwrap_or_default().trim();
        Some(match base {
            "VARCHAR" | "TEXT" | "STRING" | "CHAR" | "CHARACTER VARYING" => ParamType::String,
            "INT" | "INTEGER" | "BIGINT" | "SMALLINT" | "TINYINT" | "INT8" | "INT4" | "INT2" => {
                ParamType::Int
            }
            "FLOAT" | "DOUBLE" | "DOUBLE PRECISION" | "REAL" | "FLOAT8" | "FLOAT4" | "DECIMAL"
            | "NUMERIC" => ParamType::Float,
            "BOOLEAN" | "BOOL" => ParamType::Bool,
            "DATE" => ParamType::Date,
            "TIMESTAMP" | "DATETIME" | "TIMESTAMP WITHOUT TIME ZONE" => ParamType::Timestamp,
            _ => return None,
        })
    }

    /// Converts an argument to this type, or says what was given instead.
    pub fn coerce(self, scalar: &ScalarValue) -> Result<Value, Mismatch> {
        self.coerce_scalar(scalar).map_err(Mismatch)
    }

    fn coerce_scalar(self, scalar: &ScalarValue) -> Result<Value, String> {
        if scalar.is_null() {
            return Ok(Value::Null);
        }
        let text = match scalar {
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)) => Some(s.as_str()),
            _ => None,
        };
        let mismatch = || format!("got {}", describe_scalar(scalar));
        match self {
            ParamType::String => text
                .map(|s| Value::String(s.to_string()))
                .ok_or_else(mismatch),
            ParamType::Int => integer(scalar).map(Value::Int).ok_or_else(mismatch),
            ParamType::Float => match scalar {
                ScalarValue::Float64(Some(v)) => Ok(Value::Float(*v)),
                ScalarValue::Float32(Some(v)) => Ok(Value::Float(*v as f64)),
                ScalarValue::Decimal128(Some(v), _, scale) => {
                    Ok(Value::Float(*v as f64 / 10f64.powi(*scale as i32)))
                }
                other => integer(other)
                    .map(|i| Value::Float(i as f64))
                    .ok_or_else(mismatch),
            },
            ParamType::Bool => match scalar {
                ScalarValue::Boolean(Some(b)) => Ok(Value::Bool(*b)),
                _ => Err(mismatch()),
            },
            ParamType::Date => match (scalar, text) {
                (_, Some(s)) => parse_date(s)
                    .map(Value::Date)
                    .ok_or_else(|| format!("got '{s}'")),
                (ScalarValue::Date32(Some(days)), _) => Ok(Value::Date(
                    NaiveDate::default() + chrono::Duration::days(*days as i64),
                )),
                _ => Err(mismatch()),
            },
            ParamType::Timestamp => match (scalar, text) {
                (_, Some(s)) => parse_timestamp(s).ok_or_else(|| format!("got '{s}'")),
                (ScalarValue::Date32(Some(days)), _) => Ok(Value::Timestamp {
                    at: (NaiveDate::default() + chrono::Duration::days(*days as i64))
                        .and_time(NaiveTime::MIN),
                    date_only: true,
                }),
                (ScalarValue::TimestampNanosecond(Some(ns), _), _) => Ok(timestamp_value(
                    chrono::DateTime::from_timestamp_nanos(*ns).naive_utc(),
                )),
                (ScalarValue::TimestampMicrosecond(Some(us), _), _) => {
                    chrono::DateTime::from_timestamp_micros(*us)
                        .map(|t| timestamp_value(t.naive_utc()))
                        .ok_or_else(mismatch)
                }
                (ScalarValue::TimestampMillisecond(Some(ms), _), _) => {
                    chrono::DateTime::from_timestamp_millis(*ms)
                        .map(|t| timestamp_value(t.naive_utc()))
                        .ok_or_else(mismatch)
                }
                (ScalarValue::TimestampSecond(Some(s), _), _) => {
                    chrono::DateTime::from_timestamp(*s, 0)
                        .map(|t| timestamp_value(t.naive_utc()))
                        .ok_or_else(mismatch)
                }
                _ => Err(mismatch()),
            },
        }
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sql_name())
    }
}

/// A bound argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    String(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Date(NaiveDate),
    /// `date_only` remembers that the caller wrote a date without a time,
    /// which changes how a timeseries end bound is read (whole day).
    Timestamp {
        at: NaiveDateTime,
        date_only: bool,
    },
}

impl Value {
    /// The text this value contributes to a cache key: Python's `str()` of
    /// the value a Python caller would have passed.
    pub fn key_text(&self) -> String {
        match self {
            Value::Null => "None".into(),
            Value::String(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => python_float(*f),
            Value::Bool(true) => "True".into(),
            Value::Bool(false) => "False".into(),
            Value::Date(d) => d.format("%Y-%m-%d").to_string(),
            Value::Timestamp {
                at,
                date_only: true,
            } => at.date().format("%Y-%m-%d").to_string(),
            Value::Timestamp { at, .. } => at.format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
        }
    }

    /// The value as a DataFusion scalar.
    pub fn to_scalar(&self) -> ScalarValue {
        match self {
            Value::Null => ScalarValue::Null,
            Value::String(s) => ScalarValue::Utf8(Some(s.clone())),
            Value::Int(i) => ScalarValue::Int64(Some(*i)),
            Value::Float(f) => ScalarValue::Float64(Some(*f)),
            Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
            Value::Date(d) => {
                ScalarValue::Date32(Some((*d - NaiveDate::default()).num_days() as i32))
            }
            Value::Timestamp { at, .. } => {
                ScalarValue::TimestampNanosecond(at.and_utc().timestamp_nanos_opt(), None)
            }
        }
    }

    /// The value as SQL literal text, safe to splice into a statement.
    pub fn sql_literal(&self) -> String {
        match self {
            Value::Null => "NULL".into(),
            Value::String(s) => format!("'{}'", s.replace('\'', "''")),
            Value::Int(i) => i.to_string(),
            Value::Float(f) if f.is_finite() => format!("{f:?}"),
            Value::Float(f) => format!("CAST('{f}' AS DOUBLE)"),
            Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
            Value::Date(d) => format!("DATE '{}'", d.format("%Y-%m-%d")),
            Value::Timestamp { at, .. } => {
                format!("TIMESTAMP '{}'", at.format("%Y-%m-%dT%H:%M:%S%.f"))
            }
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_timestamp(&self) -> Option<NaiveDateTime> {
        match self {
            Value::Timestamp { at, .. } => Some(*at),
            Value::Date(d) => Some(d.and_time(NaiveTime::MIN)),
            _ => None,
        }
    }
}

fn integer(scalar: &ScalarValue) -> Option<i64> {
    Some(match scalar {
        ScalarValue::Int8(Some(v)) => *v as i64,
        ScalarValue::Int16(Some(v)) => *v as i64,
        ScalarValue::Int32(Some(v)) => *v as i64,
        ScalarValue::Int64(Some(v)) => *v,
        ScalarValue::UInt8(Some(v)) => *v as i64,
        ScalarValue::UInt16(Some(v)) => *v as i64,
        ScalarValue::UInt32(Some(v)) => *v as i64,
        ScalarValue::UInt64(Some(v)) => i64::try_from(*v).ok()?,
        _ => return None,
    })
}

fn describe_scalar(scalar: &ScalarValue) -> String {
    match scalar.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => format!("the string {scalar}"),
        DataType::Boolean => format!("the boolean {scalar}"),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => "a timestamp".into(),
        t if t.is_integer() => format!("the integer {scalar}"),
        t if t.is_floating() || matches!(t, DataType::Decimal128(..)) => {
            format!("the number {scalar}")
        }
        other => format!("a value of type {other}"),
    }
}

fn timestamp_value(at: NaiveDateTime) -> Value {
    Value::Timestamp {
        at,
        date_only: false,
    }
}

fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()
}

/// Accepts `YYYY-MM-DD`, and `YYYY-MM-DD[T| ]HH:MM[:SS[.fraction]]`.
fn parse_timestamp(text: &str) -> Option<Value> {
    let text = text.trim();
    if let Some(date) = parse_date(text) {
        return Some(Value::Timestamp {
            at: date.and_time(NaiveTime::MIN),
            date_only: true,
        });
    }
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
    .map(timestamp_value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf8(s: &str) -> ScalarValue {
        ScalarValue::Utf8(Some(s.to_string()))
    }

    #[test]
    fn timestamps_accept_dates_and_date_times() {
        let day = ParamType::Timestamp.coerce(&utf8("2013-01-01")).unwrap();
        assert!(matches!(
            day,
            Value::Timestamp {
                date_only: true,
                ..
            }
        ));
        assert_eq!(day.key_text(), "2013-01-01");
        let exact = ParamType::Timestamp
            .coerce(&utf8("2013-01-01T06:00:00"))
            .unwrap();
        assert_eq!(exact.key_text(), "2013-01-01T06:00:00");
        assert!(ParamType::Timestamp.coerce(&utf8("2013-13-01")).is_err());
        assert!(ParamType::Timestamp.coerce(&utf8("yesterday")).is_err());
    }

    #[test]
    fn key_text_is_pythons_str() {
        assert_eq!(Value::Int(7).key_text(), "7");
        assert_eq!(Value::Float(7.0).key_text(), "7.0");
        assert_eq!(Value::Bool(true).key_text(), "True");
        assert_eq!(Value::Null.key_text(), "None");
    }

    #[test]
    fn mistyped_arguments_say_what_they_got() {
        let err = ParamType::Int.coerce(&utf8("seven")).unwrap_err();
        assert_eq!(err.to_string(), "got the string seven");
        assert!(ParamType::Int
            .coerce(&ScalarValue::Float64(Some(1.5)))
            .is_err());
        assert_eq!(
            ParamType::Float
                .coerce(&ScalarValue::Int64(Some(2)))
                .unwrap(),
            Value::Float(2.0)
        );
    }

    #[test]
    fn string_literals_cannot_break_out_of_their_quotes() {
        let v = Value::String("x'; DROP TABLE t; --".into());
        assert_eq!(v.sql_literal(), "'x''; DROP TABLE t; --'");
    }
}

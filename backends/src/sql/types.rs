//! Column types between Arrow and SQL.
//!
//! Every column travels as one of a few [`Wire`] types, the Arrow types
//! the drivers decode to and encode from directly. Writing casts each
//! Arrow column to its wire type and creates the column with the matching
//! SQL type; reading decodes rows into wire-typed arrays, then casts them
//! to the types the function declares. A PostgreSQL column of a type with
//! no wire type (`numeric`, `uuid`, `json`, ...) is selected as text and
//! cast from there, so tables other tools made read too.
//!
//! SQLite has no column types to speak of (any column holds any value), so
//! its rows are decoded by the declared type, and dates and timestamps are
//! stored as fixed-width text (`2013-01-01 06:00:00.000000`, SQLAlchemy's
//! spelling), which sorts and compares in time order.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Float32Builder, Float64Builder,
    Int16Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use datafusion::common::{DataFusionError, Result};
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::database::Dialect;

/// The text form of timestamps in SQLite.
pub const SQLITE_TIMESTAMP: &str = "%Y-%m-%d %H:%M:%S%.6f";
const SQLITE_DATE: &str = "%Y-%m-%d";

/// The zone of timestamps that carry one; stored as UTC instants.
pub const UTC: &str = "UTC";

/// A column's form between a driver and Arrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Bool,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Text,
    Bytes,
    Date,
    /// A timestamp without a zone, in microseconds.
    Timestamp,
    /// An instant, in microseconds, shown in UTC.
    TimestampUtc,
}

impl Wire {
    /// The Arrow type of a wire column.
    pub fn arrow(self) -> DataType {
        match self {
            Wire::Bool => DataType::Boolean,
            Wire::Int16 => DataType::Int16,
            Wire::Int32 => DataType::Int32,
            Wire::Int64 => DataType::Int64,
            Wire::Float32 => DataType::Float32,
            Wire::Float64 => DataType::Float64,
            Wire::Text => DataType::Utf8,
            Wire::Bytes => DataType::Binary,
            Wire::Date => DataType::Date32,
            Wire::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Wire::TimestampUtc => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
        }
    }

    /// How an Arrow column is stored; an error naming the column and the
    /// fix for types a flat table cannot hold.
    pub fn for_field(field: &Field) -> Result<Wire> {
        Wire::for_type(field.data_type()).ok_or_else(|| {
            DataFusionError::Plan(format!(
                "column {} is {}, which the sql backend cannot store in a table column; cast \
                 it to a number, text, a date or a timestamp in the function, or store the \
                 function with backend => 'parquet' or 'delta'",
                field.name(),
                field.data_type()
            ))
        })
    }

    fn for_type(data_type: &DataType) -> Option<Wire> {
        Some(match data_type {
            DataType::Boolean => Wire::Bool,
            DataType::Int8 | DataType::Int16 | DataType::UInt8 => Wire::Int16,
            DataType::Int32 | DataType::UInt16 => Wire::Int32,
            // An unsigned 64-bit value above i64's range fails the cast.
            DataType::Int64 | DataType::UInt32 | DataType::UInt64 => Wire::Int64,
            DataType::Float16 | DataType::Float32 => Wire::Float32,
            DataType::Float64 => Wire::Float64,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
                Wire::Text
            }
            DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_) => Wire::Bytes,
            DataType::Date32 | DataType::Date64 => Wire::Date,
            DataType::Timestamp(_, None) => Wire::Timestamp,
            DataType::Timestamp(_, Some(_)) => Wire::TimestampUtc,
            DataType::Dictionary(_, values) => return Wire::for_type(values),
            _ => return None,
        })
    }

    /// The column type a table is created with.
    pub fn sql_type(self, dialect: Dialect) -> &'static str {
        match (self, dialect) {
            (Wire::Bool, _) => "BOOLEAN",
            (Wire::Int16, _) => "SMALLINT",
            (Wire::Int32, _) => "INTEGER",
            (Wire::Int64, _) => "BIGINT",
            (Wire::Float32, _) => "REAL",
            (Wire::Float64, Dialect::Postgres) => "DOUBLE PRECISION",
            (Wire::Float64, Dialect::Sqlite) => "FLOAT",
            (Wire::Text, _) => "TEXT",
            (Wire::Bytes, Dialect::Postgres) => "BYTEA",
            (Wire::Bytes, Dialect::Sqlite) => "BLOB",
            (Wire::Date, _) => "DATE",
            (Wire::Timestamp, Dialect::Postgres) => "TIMESTAMP",
            (Wire::TimestampUtc, Dialect::Postgres) => "TIMESTAMPTZ",
            (Wire::Timestamp | Wire::TimestampUtc, Dialect::Sqlite) => "DATETIME",
        }
    }

    /// The wire type of a PostgreSQL column, by `format_type`'s name;
    /// `None` for types read as text.
    pub fn from_postgres(type_name: &str) -> Option<Wire> {
        let name = type_name.to_ascii_lowercase();
        Some(match name.as_str() {
            "boolean" => Wire::Bool,
            "smallint" => Wire::Int16,
            "integer" => Wire::Int32,
            "bigint" => Wire::Int64,
            "real" => Wire::Float32,
            "double precision" => Wire::Float64,
            "text" | "name" | "character" | "character varying" => Wire::Text,
            "bytea" => Wire::Bytes,
            "date" => Wire::Date,
            n if n.starts_with("character") => Wire::Text,
            n if n.starts_with("timestamp") && n.ends_with("with time zone") => {
                if n.contains("without") {
                    Wire::Timestamp
                } else {
                    Wire::TimestampUtc
                }
            }
            n if n.starts_with("timestamp") => Wire::Timestamp,
            _ => return None,
        })
    }

    /// How SQLite values are read for a declared type.
    pub fn for_sqlite_read(declared: &DataType) -> Wire {
        match Wire::for_type(declared) {
            Some(Wire::Int16 | Wire::Int32) => Wire::Int64,
            Some(Wire::Float32) => Wire::Float64,
            Some(wire) => wire,
            None => Wire::Text,
        }
    }
}

/// The wire types of a schema's columns, checked.
pub fn wires(schema: &Schema) -> Result<Vec<Wire>> {
    schema.fields().iter().map(|f| Wire::for_field(f)).collect()
}

/// `batch` with each column cast to its wire type. Casts are checked: a
/// value that does not fit (an unsigned number above i64) is an error.
pub fn to_wire(batch: &RecordBatch, wires: &[Wire], schema: &SchemaRef) -> Result<RecordBatch> {
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    let columns = batch
        .columns()
        .iter()
        .zip(wires)
        .zip(batch.schema().fields())
        .map(|((column, wire), field)| {
            crate::fidelity::coarsen(column, &wire.arrow(), &options)
                .map_err(|e| DataFusionError::Execution(format!("column {}: {e}", field.name())))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// The schema of wire-typed columns with `schema`'s names.
pub fn wire_schema(schema: &Schema, wires: &[Wire]) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .zip(wires)
            .map(|(f, w)| Field::new(f.name(), w.arrow(), true))
            .collect::<Vec<_>>(),
    ))
}

/// Casts a decoded wire column to the type the function declares.
pub fn to_declared(column: ArrayRef, field: &Field) -> Result<ArrayRef> {
    if column.data_type() == field.data_type() {
        return Ok(column);
    }
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    cast_with_options(&column, field.data_type(), &options).map_err(|e| {
        DataFusionError::Execution(format!(
            "column {} is stored as {} and cannot be read as the declared {}: {e}",
            field.name(),
            column.data_type(),
            field.data_type()
        ))
    })
}

/// A column being decoded from rows.
pub enum Builder {
    Bool(BooleanBuilder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Text(StringBuilder),
    Bytes(BinaryBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    TimestampUtc(TimestampMicrosecondBuilder),
}

const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");

fn days(date: NaiveDate) -> i32 {
    (date - EPOCH).num_days() as i32
}

impl Builder {
    pub fn new(wire: Wire, capacity: usize) -> Builder {
        match wire {
            Wire::Bool => Builder::Bool(BooleanBuilder::with_capacity(capacity)),
            Wire::Int16 => Builder::Int16(Int16Builder::with_capacity(capacity)),
            Wire::Int32 => Builder::Int32(Int32Builder::with_capacity(capacity)),
            Wire::Int64 => Builder::Int64(Int64Builder::with_capacity(capacity)),
            Wire::Float32 => Builder::Float32(Float32Builder::with_capacity(capacity)),
            Wire::Float64 => Builder::Float64(Float64Builder::with_capacity(capacity)),
            Wire::Text => Builder::Text(StringBuilder::with_capacity(capacity, capacity * 8)),
            Wire::Bytes => Builder::Bytes(BinaryBuilder::with_capacity(capacity, capacity * 8)),
            Wire::Date => Builder::Date(Date32Builder::with_capacity(capacity)),
            Wire::Timestamp => {
                Builder::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity))
            }
            Wire::TimestampUtc => {
                Builder::TimestampUtc(TimestampMicrosecondBuilder::with_capacity(capacity))
            }
        }
    }

    /// Appends column `i` of a PostgreSQL row, whose type is this wire's.
    pub fn push_postgres(&mut self, row: &PgRow, i: usize) -> std::result::Result<(), sqlx::Error> {
        match self {
            Builder::Bool(b) => b.append_option(row.try_get::<Option<bool>, _>(i)?),
            Builder::Int16(b) => b.append_option(row.try_get::<Option<i16>, _>(i)?),
            Builder::Int32(b) => b.append_option(row.try_get::<Option<i32>, _>(i)?),
            Builder::Int64(b) => b.append_option(row.try_get::<Option<i64>, _>(i)?),
            Builder::Float32(b) => b.append_option(row.try_get::<Option<f32>, _>(i)?),
            Builder::Float64(b) => b.append_option(row.try_get::<Option<f64>, _>(i)?),
            Builder::Text(b) => b.append_option(row.try_get::<Option<&str>, _>(i)?),
            Builder::Bytes(b) => b.append_option(row.try_get::<Option<&[u8]>, _>(i)?),
            Builder::Date(b) => b.append_option(row.try_get::<Option<NaiveDate>, _>(i)?.map(days)),
            Builder::Timestamp(b) => b.append_option(
                row.try_get::<Option<NaiveDateTime>, _>(i)?
                    .map(|t| t.and_utc().timestamp_micros()),
            ),
            Builder::TimestampUtc(b) => b.append_option(
                row.try_get::<Option<DateTime<Utc>>, _>(i)?
                    .map(|t| t.timestamp_micros()),
            ),
        }
        Ok(())
    }

    pub fn push_null(&mut self) {
        match self {
            Builder::Bool(b) => b.append_null(),
            Builder::Int16(b) => b.append_null(),
            Builder::Int32(b) => b.append_null(),
            Builder::Int64(b) => b.append_null(),
            Builder::Float32(b) => b.append_null(),
            Builder::Float64(b) => b.append_null(),
            Builder::Text(b) => b.append_null(),
            Builder::Bytes(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::Timestamp(b) | Builder::TimestampUtc(b) => b.append_null(),
        }
    }

    /// The rows appended so far, as an array; the builder starts over.
    pub fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Int16(b) => Arc::new(b.finish()),
            Builder::Int32(b) => Arc::new(b.finish()),
            Builder::Int64(b) => Arc::new(b.finish()),
            Builder::Float32(b) => Arc::new(b.finish()),
            Builder::Float64(b) => Arc::new(b.finish()),
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::Bytes(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Timestamp(b) => Arc::new(b.finish()),
            Builder::TimestampUtc(b) => Arc::new(b.finish().with_timezone(UTC)),
        }
    }
}

/// Reads a SQLite timestamp: SQLAlchemy's `2013-01-01 06:00:00.000000`
/// (every row this backend writes, read without chrono, as it is read
/// millions of times per table), or with other fraction digits, a `T`, a
/// zone offset (taken to UTC), or a date alone.
pub fn parse_sqlite_timestamp(text: &[u8]) -> std::result::Result<i64, String> {
    if let Some(micros) = fixed_timestamp(text) {
        return Ok(micros);
    }
    let shown = String::from_utf8_lossy(text);
    let trimmed = shown.trim();
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(trimmed, format) {
            return Ok(t.and_utc().timestamp_micros());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(trimmed, SQLITE_DATE) {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp_micros());
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%:z"] {
        if let Ok(t) = DateTime::parse_from_str(trimmed, format) {
            return Ok(t.timestamp_micros());
        }
    }
    Err(format!(
        "'{shown}' is not a timestamp (YYYY-MM-DD HH:MM:SS[.ffffff])"
    ))
}

/// Reads a SQLite date, `YYYY-MM-DD`, as days since 1970-01-01.
pub fn parse_sqlite_date(text: &[u8]) -> std::result::Result<i32, String> {
    if let Some(days) = fixed_date(text) {
        return Ok(days as i32);
    }
    let shown = String::from_utf8_lossy(text);
    NaiveDate::parse_from_str(shown.trim(), SQLITE_DATE)
        .map(days)
        .map_err(|_| format!("'{shown}' is not a date (YYYY-MM-DD)"))
}

/// `YYYY-MM-DD HH:MM:SS` with a `.ffffff` or not, as microseconds; `None`
/// for any other form or an impossible date or time.
fn fixed_timestamp(text: &[u8]) -> Option<i64> {
    let fraction = match text.len() {
        19 => 0,
        26 if text[19] == b'.' => number(&text[20..26])?,
        _ => return None,
    };
    let days = fixed_date(&text[..10])?;
    if !matches!(text[10], b' ' | b'T') || text[13] != b':' || text[16] != b':' {
        return None;
    }
    let (hour, minute, second) = (
        number(&text[11..13])?,
        number(&text[14..16])?,
        number(&text[17..19])?,
    );
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    Some(seconds * 1_000_000 + fraction)
}

/// `YYYY-MM-DD` as days since 1970-01-01.
fn fixed_date(text: &[u8]) -> Option<i64> {
    if text.len() != 10 || text[4] != b'-' || text[7] != b'-' {
        return None;
    }
    let (year, month, day) = (
        number(&text[..4])?,
        number(&text[5..7])?,
        number(&text[8..10])?,
    );
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > month_days {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// ASCII digits as a number; `None` if any byte is not a digit.
fn number(digits: &[u8]) -> Option<i64> {
    digits.iter().try_fold(0i64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day since 1970-01-01: year, month, day (the inverse of
/// [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Writes `value` as `out.len()` zero-padded digits.
fn put_digits(out: &mut [u8], mut value: i64) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Writes a day as `YYYY-MM-DD` into the start of `out`; its length, or
/// an error for years SQLite's text cannot hold in order.
pub fn write_sqlite_date(days: i32, out: &mut [u8; 26]) -> std::result::Result<usize, String> {
    let (year, month, day) = civil_from_days(i64::from(days));
    if !(0..=9999).contains(&year) {
        return Err(format!("the year {year} is outside 0 to 9999"));
    }
    put_digits(&mut out[..4], year);
    out[4] = b'-';
    put_digits(&mut out[5..7], month);
    out[7] = b'-';
    put_digits(&mut out[8..10], day);
    Ok(10)
}

/// Writes a wire timestamp as SQLite's text (`SQLITE_TIMESTAMP`, 26
/// bytes) without chrono, as it runs for every row loaded.
pub fn write_sqlite_timestamp(micros: i64, out: &mut [u8; 26]) -> std::result::Result<(), String> {
    let days = micros.div_euclid(86_400_000_000);
    let within = micros.rem_euclid(86_400_000_000);
    write_sqlite_date(
        i32::try_from(days).map_err(|_| "a timestamp beyond any date")?,
        out,
    )?;
    let seconds = within / 1_000_000;
    out[10] = b' ';
    put_digits(&mut out[11..13], seconds / 3_600);
    out[13] = b':';
    put_digits(&mut out[14..16], seconds / 60 % 60);
    out[16] = b':';
    put_digits(&mut out[17..19], seconds % 60);
    out[19] = b'.';
    put_digits(&mut out[20..26], within % 1_000_000);
    Ok(())
}

/// A wire timestamp value as SQLite's text.
pub fn sqlite_timestamp(micros: i64) -> String {
    let mut out = [0u8; 26];
    if write_sqlite_timestamp(micros, &mut out).is_ok() {
        return String::from_utf8_lossy(&out).into_owned();
    }
    DateTime::<Utc>::from_timestamp_micros(micros)
        .map(|t| t.naive_utc().format(SQLITE_TIMESTAMP).to_string())
        .unwrap_or_default()
}

/// A wire date value as SQLite's text.
pub fn sqlite_date(days_since_epoch: i32) -> String {
    (EPOCH + chrono::Duration::days(days_since_epoch as i64))
        .format(SQLITE_DATE)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_timestamps_round_trip_and_sort_as_text() {
        let early = sqlite_timestamp(1_357_016_400_000_000);
        let late = sqlite_timestamp(1_357_016_400_000_001);
        assert_eq!(early, "2013-01-01 05:00:00.000000");
        assert!(early < late);
        assert_eq!(
            parse_sqlite_timestamp(late.as_bytes()),
            Ok(1_357_016_400_000_001)
        );
        assert_eq!(
            parse_sqlite_timestamp(b"2013-01-01T05:00:00+01:00"),
            Ok(1_357_012_800_000_000)
        );
        assert_eq!(
            parse_sqlite_timestamp(b"2013-01-01 05:00:00.5"),
            Ok(1_357_016_400_500_000)
        );
        assert!(parse_sqlite_timestamp(b"yesterday").is_err());
        assert!(parse_sqlite_timestamp(b"2013-02-29 00:00:00").is_err());
        assert!(parse_sqlite_date(b"2012-02-30").is_err());
    }

    /// The hand-written text forms agree with chrono's, both ways, across
    /// the years SQLite holds, leap days, and times before 1970.
    #[test]
    fn fast_sqlite_times_match_chrono() {
        let mut out = [0u8; 26];
        let first = NaiveDate::from_ymd_opt(1, 1, 1).unwrap();
        let last = NaiveDate::from_ymd_opt(9999, 12, 31).unwrap();
        let mut day = first;
        while day <= last {
            let days = days(day);
            let length = write_sqlite_date(days, &mut out).unwrap();
            let text = day.format(SQLITE_DATE).to_string();
            assert_eq!(&out[..length], text.as_bytes());
            assert_eq!(parse_sqlite_date(text.as_bytes()), Ok(days));
            day += chrono::Duration::days(1);
        }
        for micros in [
            -62_135_596_800_000_000,
            -1,
            0,
            951_782_400_123_456,
            1_357_016_400_000_001,
            253_402_300_799_999_999,
        ] {
            write_sqlite_timestamp(micros, &mut out).unwrap();
            let chrono = DateTime::<Utc>::from_timestamp_micros(micros).unwrap();
            let text = chrono.naive_utc().format(SQLITE_TIMESTAMP).to_string();
            assert_eq!(std::str::from_utf8(&out).unwrap(), text);
            assert_eq!(parse_sqlite_timestamp(&out), Ok(micros));
        }
        assert!(write_sqlite_timestamp(253_402_300_800_000_000, &mut out).is_err());
    }

    #[test]
    fn postgres_type_names_map_to_wires() {
        assert_eq!(
            Wire::from_postgres("timestamp without time zone"),
            Some(Wire::Timestamp)
        );
        assert_eq!(
            Wire::from_postgres("timestamp(3) with time zone"),
            Some(Wire::TimestampUtc)
        );
        assert_eq!(
            Wire::from_postgres("character varying(20)"),
            Some(Wire::Text)
        );
        assert_eq!(Wire::from_postgres("numeric(10,2)"), None);
    }
}

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
use sqlx::sqlite::SqliteRow;
use sqlx::{Decode, Row, Sqlite, ValueRef};

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

    /// Appends column `i` of a SQLite row, converting the stored value to
    /// this wire's type as SQLite does.
    pub fn push_sqlite(
        &mut self,
        row: &SqliteRow,
        i: usize,
    ) -> std::result::Result<(), sqlx::Error> {
        self.sqlite_value(row, i)
            .map_err(|why| sqlx::Error::Decode(why.into()))
    }

    fn sqlite_value(&mut self, row: &SqliteRow, i: usize) -> std::result::Result<(), String> {
        let value = row.try_get_raw(i).map_err(|e| e.to_string())?;
        if value.is_null() {
            self.push_null();
            return Ok(());
        }
        let text = |value| -> std::result::Result<String, String> {
            <String as Decode<Sqlite>>::decode(value).map_err(|e| e.to_string())
        };
        match self {
            Builder::Bool(b) => b.append_value(
                <i64 as Decode<Sqlite>>::decode(value).map_err(|e| e.to_string())? != 0,
            ),
            Builder::Int64(b) => {
                b.append_value(<i64 as Decode<Sqlite>>::decode(value).map_err(|e| e.to_string())?)
            }
            Builder::Float64(b) => {
                b.append_value(<f64 as Decode<Sqlite>>::decode(value).map_err(|e| e.to_string())?)
            }
            Builder::Text(b) => b.append_value(text(value)?),
            Builder::Bytes(b) => b.append_value(
                <Vec<u8> as Decode<Sqlite>>::decode(value).map_err(|e| e.to_string())?,
            ),
            Builder::Date(b) => {
                let text = text(value)?;
                let date = NaiveDate::parse_from_str(text.trim(), SQLITE_DATE)
                    .map_err(|_| format!("'{text}' is not a date (YYYY-MM-DD)"))?;
                b.append_value(days(date));
            }
            Builder::Timestamp(b) | Builder::TimestampUtc(b) => {
                let text = text(value)?;
                b.append_value(parse_sqlite_timestamp(&text)?);
            }
            Builder::Int16(_) | Builder::Int32(_) | Builder::Float32(_) => {
                unreachable!("SQLite columns are read as 64-bit numbers")
            }
        }
        Ok(())
    }

    fn push_null(&mut self) {
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

/// Reads a SQLite timestamp: SQLAlchemy's `2013-01-01 06:00:00.000000`,
/// with or without fractions, a `T`, or a zone offset (taken to UTC).
fn parse_sqlite_timestamp(text: &str) -> std::result::Result<i64, String> {
    let trimmed = text.trim();
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(trimmed, format) {
            return Ok(t.and_utc().timestamp_micros());
        }
        if format == "%Y-%m-%d" {
            if let Ok(d) = NaiveDate::parse_from_str(trimmed, format) {
                return Ok(d
                    .and_hms_opt(0, 0, 0)
                    .expect("midnight")
                    .and_utc()
                    .timestamp_micros());
            }
        }
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%:z"] {
        if let Ok(t) = DateTime::parse_from_str(trimmed, format) {
            return Ok(t.timestamp_micros());
        }
    }
    Err(format!(
        "'{text}' is not a timestamp (YYYY-MM-DD HH:MM:SS[.ffffff])"
    ))
}

/// A wire timestamp value as SQLite's text.
pub fn sqlite_timestamp(micros: i64) -> String {
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
        assert_eq!(parse_sqlite_timestamp(&late), Ok(1_357_016_400_000_001));
        assert_eq!(
            parse_sqlite_timestamp("2013-01-01T05:00:00+01:00"),
            Ok(1_357_012_800_000_000)
        );
        assert!(parse_sqlite_timestamp("yesterday").is_err());
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

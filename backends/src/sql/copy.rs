//! PostgreSQL's binary `COPY` format, both ways: rows encoded for loads
//! (`COPY ... FROM STDIN`) and a `COPY (SELECT ...) TO STDOUT` stream
//! decoded into Arrow builders for reads.
//!
//! A read by `COPY` skips what costs most in a row-by-row fetch: the
//! driver's per-row value objects. The server sends each row as its
//! fields' lengths and bytes in network order, and [`CopyOut`] decodes them
//! straight into the column builders (as the ADBC PostgreSQL driver does).
//!
//! `COPY` takes no bind parameters, and the read's filters have values.
//! Rather than writing any value into the statement, each is first set as
//! a setting local to a read-only transaction around the `COPY`
//! (`set_config`, whose arguments are bound like any parameter), and the
//! statement reads it back as `(SELECT current_setting('nuthatch.pN')::type)`:
//! a sub-select PostgreSQL evaluates once per statement, so an index on the
//! time column still serves the window.

use arrow::array::{Array, AsArray, BinaryArray, BooleanArray, StringArray};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{
    DataType, Date32Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    TimestampMicrosecondType,
};
use arrow::record_batch::RecordBatch;

use super::filter::Param;
use super::types::Builder;

/// Days and microseconds from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The start of every binary `COPY` stream: signature, flags, and the
/// length of a header extension (none).
pub const HEADER: &[u8; 19] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The end of a binary `COPY` stream: a row of -1 fields.
pub const TRAILER: [u8; 2] = (-1i16).to_be_bytes();

/// The setting a parameter travels in, and the expression that reads it
/// back as its type; `None` for a value with no text form PostgreSQL reads
/// back exactly (dates beyond the years 1 to 9999).
pub fn setting(n: usize, param: &Param) -> Option<(String, String)> {
    use chrono::Datelike;
    let years = |year: i32| (1..=9999).contains(&year);
    let (text, type_name) = match param {
        Param::Bool(v) => (v.to_string(), "boolean"),
        Param::Int(v) => (v.to_string(), "int8"),
        Param::Float(v) if v.is_nan() => ("NaN".into(), "float8"),
        Param::Float(v) if v.is_infinite() => {
            let sign = if *v < 0.0 { "-" } else { "" };
            (format!("{sign}Infinity"), "float8")
        }
        // Debug's form is the shortest that reads back as the same f64.
        Param::Float(v) => (format!("{v:?}"), "float8"),
        Param::Text(v) => (v.clone(), "text"),
        Param::Bytes(v) => {
            let hex: String = v.iter().map(|b| format!("{b:02x}")).collect();
            (format!("\\x{hex}"), "bytea")
        }
        Param::Date(d) if years(d.year()) => (d.format("%Y-%m-%d").to_string(), "date"),
        Param::Timestamp(t) if years(t.year()) => {
            (t.format("%Y-%m-%d %H:%M:%S%.6f").to_string(), "timestamp")
        }
        Param::TimestampUtc(t) if years(t.year()) => (
            t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string(),
            "timestamptz",
        ),
        Param::Date(_) | Param::Timestamp(_) | Param::TimestampUtc(_) => return None,
    };
    let read_back = format!("(SELECT current_setting('nuthatch.p{n}')::{type_name})");
    Some((text, read_back))
}

/// The name of the setting of parameter `n` (from 1).
pub fn setting_name(n: usize) -> String {
    format!("nuthatch.p{n}")
}

/// Appends a wire-typed batch as rows of the binary format: per row the
/// field count, then per field its length (-1 for NULL) and its bytes in
/// network order.
pub fn encode_rows(batch: &RecordBatch, out: &mut Vec<u8>) {
    // Each column's values are looked up once per batch, not per value:
    // the loop below runs for every value of a load.
    let columns: Vec<(Values, Option<&NullBuffer>)> = batch
        .columns()
        .iter()
        .map(|c| (Values::of(c.as_ref()), c.nulls()))
        .collect();
    let fields = (batch.num_columns() as i16).to_be_bytes();
    for row in 0..batch.num_rows() {
        out.extend_from_slice(&fields);
        for (values, nulls) in &columns {
            if nulls.is_some_and(|n| n.is_null(row)) {
                out.extend_from_slice(&(-1i32).to_be_bytes());
            } else {
                values.encode(row, out);
            }
        }
    }
}

/// A wire-typed column's values, by type.
enum Values<'a> {
    Bool(&'a BooleanArray),
    Int16(&'a [i16]),
    Int32(&'a [i32]),
    Int64(&'a [i64]),
    Float32(&'a [f32]),
    Float64(&'a [f64]),
    Text(&'a StringArray),
    Bytes(&'a BinaryArray),
    /// Days since 1970-01-01.
    Date(&'a [i32]),
    /// Microseconds since 1970-01-01.
    Timestamp(&'a [i64]),
}

impl<'a> Values<'a> {
    fn of(column: &'a dyn Array) -> Values<'a> {
        match column.data_type() {
            DataType::Boolean => Values::Bool(column.as_boolean()),
            DataType::Int16 => Values::Int16(column.as_primitive::<Int16Type>().values()),
            DataType::Int32 => Values::Int32(column.as_primitive::<Int32Type>().values()),
            DataType::Int64 => Values::Int64(column.as_primitive::<Int64Type>().values()),
            DataType::Float32 => Values::Float32(column.as_primitive::<Float32Type>().values()),
            DataType::Float64 => Values::Float64(column.as_primitive::<Float64Type>().values()),
            DataType::Utf8 => Values::Text(column.as_string::<i32>()),
            DataType::Binary => Values::Bytes(column.as_binary::<i32>()),
            DataType::Date32 => Values::Date(column.as_primitive::<Date32Type>().values()),
            DataType::Timestamp(_, _) => {
                Values::Timestamp(column.as_primitive::<TimestampMicrosecondType>().values())
            }
            other => unreachable!("{other} is not a wire type"),
        }
    }

    /// Appends the field of `row`: its length, then its bytes.
    fn encode(&self, row: usize, out: &mut Vec<u8>) {
        fn field(out: &mut Vec<u8>, bytes: &[u8]) {
            out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
            out.extend_from_slice(bytes);
        }
        match self {
            Values::Bool(v) => field(out, &[v.value(row) as u8]),
            Values::Int16(v) => field(out, &v[row].to_be_bytes()),
            Values::Int32(v) => field(out, &v[row].to_be_bytes()),
            Values::Int64(v) => field(out, &v[row].to_be_bytes()),
            Values::Float32(v) => field(out, &v[row].to_be_bytes()),
            Values::Float64(v) => field(out, &v[row].to_be_bytes()),
            Values::Text(v) => field(out, v.value(row).as_bytes()),
            Values::Bytes(v) => field(out, v.value(row)),
            Values::Date(v) => field(out, &(v[row] - PG_EPOCH_DAYS).to_be_bytes()),
            Values::Timestamp(v) => field(out, &(v[row] - PG_EPOCH_MICROS).to_be_bytes()),
        }
    }
}

/// Decodes a `COPY ... TO STDOUT (FORMAT binary)` stream, which arrives in
/// pieces that need not end at a row's end.
#[derive(Debug, Default)]
pub struct CopyOut {
    /// The start of a row the last piece cut off.
    carry: Vec<u8>,
    header_read: bool,
    /// The trailer has been read.
    pub finished: bool,
}

/// What the front of a buffer holds.
enum Next {
    /// A whole row of this many bytes.
    Row(usize),
    Trailer,
    /// Not enough bytes yet.
    Partial,
}

impl CopyOut {
    /// Decodes every whole row of `piece` (after what earlier pieces left)
    /// into `builders`, one per column; how many rows.
    pub fn feed(&mut self, piece: &[u8], builders: &mut [Builder]) -> Result<usize, String> {
        if self.carry.is_empty() {
            let (rows, used) = self.decode(piece, builders)?;
            self.carry.extend_from_slice(&piece[used..]);
            return Ok(rows);
        }
        let mut carried = std::mem::take(&mut self.carry);
        carried.extend_from_slice(piece);
        let (rows, used) = self.decode(&carried, builders)?;
        carried.drain(..used);
        self.carry = carried;
        Ok(rows)
    }

    /// Rows decoded from the front of `data`, and the bytes they took.
    fn decode(&mut self, data: &[u8], builders: &mut [Builder]) -> Result<(usize, usize), String> {
        let mut at = 0;
        if !self.header_read {
            if data.len() < HEADER.len() {
                return Ok((0, 0));
            }
            if data[..11] != HEADER[..11] {
                return Err("the server's COPY stream is not in the binary format".into());
            }
            let extension = u32::from_be_bytes(data[15..19].try_into().expect("4 bytes")) as usize;
            if data.len() < HEADER.len() + extension {
                return Ok((0, 0));
            }
            at = HEADER.len() + extension;
            self.header_read = true;
        }
        let mut rows = 0;
        while !self.finished {
            match next(&data[at..], builders.len())? {
                Next::Partial => break,
                Next::Trailer => {
                    self.finished = true;
                    at += TRAILER.len();
                }
                Next::Row(length) => {
                    decode_row(&data[at + 2..at + length], builders)?;
                    at += length;
                    rows += 1;
                }
            }
        }
        Ok((rows, at))
    }
}

/// What the front of `data` holds, for rows of `columns` fields.
fn next(data: &[u8], columns: usize) -> Result<Next, String> {
    let Some(count) = data.get(..2) else {
        return Ok(Next::Partial);
    };
    let count = i16::from_be_bytes([count[0], count[1]]);
    if count == -1 {
        return Ok(Next::Trailer);
    }
    if count as usize != columns {
        return Err(format!(
            "the server sent a row of {count} fields for {columns} columns"
        ));
    }
    let mut at = 2;
    for _ in 0..columns {
        let Some(length) = data.get(at..at + 4) else {
            return Ok(Next::Partial);
        };
        let length = i32::from_be_bytes(length.try_into().expect("4 bytes"));
        at += 4 + length.max(0) as usize;
    }
    Ok(if at <= data.len() {
        Next::Row(at)
    } else {
        Next::Partial
    })
}

/// Decodes one whole row's fields (after its field count).
fn decode_row(mut data: &[u8], builders: &mut [Builder]) -> Result<(), String> {
    for builder in builders.iter_mut() {
        let length = i32::from_be_bytes(data[..4].try_into().expect("4 bytes"));
        data = &data[4..];
        if length < 0 {
            builder.push_null();
            continue;
        }
        let (value, rest) = data.split_at(length as usize);
        data = rest;
        append(builder, value)?;
    }
    Ok(())
}

/// Appends one field's bytes, in the binary form of the builder's wire
/// type.
fn append(builder: &mut Builder, value: &[u8]) -> Result<(), String> {
    fn exact<const N: usize>(value: &[u8], what: &str) -> Result<[u8; N], String> {
        value
            .try_into()
            .map_err(|_| format!("a {what} value of {} bytes", value.len()))
    }
    match builder {
        Builder::Bool(b) => b.append_value(exact::<1>(value, "boolean")?[0] != 0),
        Builder::Int16(b) => b.append_value(i16::from_be_bytes(exact(value, "smallint")?)),
        Builder::Int32(b) => b.append_value(i32::from_be_bytes(exact(value, "integer")?)),
        Builder::Int64(b) => b.append_value(i64::from_be_bytes(exact(value, "bigint")?)),
        Builder::Float32(b) => b.append_value(f32::from_be_bytes(exact(value, "real")?)),
        Builder::Float64(b) => b.append_value(f64::from_be_bytes(exact(value, "double")?)),
        Builder::Text(b) => b.append_value(
            std::str::from_utf8(value).map_err(|_| "a text value is not UTF-8".to_string())?,
        ),
        Builder::Bytes(b) => b.append_value(value),
        Builder::Date(b) => {
            let days = i32::from_be_bytes(exact(value, "date")?);
            let days = days
                .checked_add(PG_EPOCH_DAYS)
                .ok_or("an infinite date, which Arrow cannot hold")?;
            b.append_value(days)
        }
        Builder::Timestamp(b) | Builder::TimestampUtc(b) => {
            let micros = i64::from_be_bytes(exact(value, "timestamp")?);
            let micros = micros
                .checked_add(PG_EPOCH_MICROS)
                .ok_or("an infinite timestamp, which Arrow cannot hold")?;
            b.append_value(micros)
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float32Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;
    use crate::sql::types::Wire;

    /// Rows encoded for a load decode back to the same values, whatever
    /// pieces the stream arrives in.
    #[test]
    fn rows_decode_as_encoded_across_any_split() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("time", Wire::Timestamp.arrow(), true),
            Field::new("air", DataType::Float32, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampMicrosecondArray::from(vec![
                Some(-1),
                None,
                Some(1_357_016_400_000_001),
            ])),
            Arc::new(Float32Array::from(vec![Some(f32::NAN), Some(-0.0), None])),
            Arc::new(StringArray::from(vec![Some("é"), Some(""), None])),
        ];
        let batch = RecordBatch::try_new(schema, columns).unwrap();
        let mut stream = HEADER.to_vec();
        encode_rows(&batch, &mut stream);
        stream.extend_from_slice(&TRAILER);
        for piece in 1..stream.len() {
            let wires = [Wire::Timestamp, Wire::Float32, Wire::Text];
            let mut builders: Vec<Builder> = wires.iter().map(|w| Builder::new(*w, 4)).collect();
            let mut copy = CopyOut::default();
            let mut rows = 0;
            for chunk in stream.chunks(piece) {
                rows += copy.feed(chunk, &mut builders).unwrap();
            }
            assert!(copy.finished);
            assert_eq!(rows, 3);
            let decoded: Vec<ArrayRef> = builders.iter_mut().map(|b| b.finish()).collect();
            let f = decoded[1].as_primitive::<Float32Type>();
            assert!(f.value(0).is_nan() && f.value(1).is_sign_negative() && f.is_null(2));
            assert_eq!(&decoded[0], batch.column(0));
            assert_eq!(&decoded[2], batch.column(2));
        }
    }

    #[test]
    fn settings_read_back_as_their_type() {
        let (text, read_back) = setting(2, &Param::Float(0.1)).unwrap();
        assert_eq!(text, "0.1");
        assert_eq!(read_back, "(SELECT current_setting('nuthatch.p2')::float8)");
        let bytes = setting(1, &Param::Bytes(vec![0, 255])).unwrap().0;
        assert_eq!(bytes, "\\x00ff");
        let far = chrono::NaiveDate::from_ymd_opt(10_000, 1, 1).unwrap();
        assert!(setting(1, &Param::Date(far)).is_none());
    }

    #[test]
    fn copy_rows_follow_the_binary_format() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int32, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(arrow::array::Int32Array::from(vec![Some(7), None])),
            Arc::new(StringArray::from(vec![Some("ab"), Some("")])),
        ];
        let batch = RecordBatch::try_new(schema, columns).unwrap();
        let mut out = Vec::new();
        encode_rows(&batch, &mut out);
        let expected: Vec<u8> = [
            &2i16.to_be_bytes()[..],
            &4i32.to_be_bytes(),
            &7i32.to_be_bytes(),
            &2i32.to_be_bytes(),
            b"ab",
            &2i16.to_be_bytes(),
            &(-1i32).to_be_bytes(),
            &0i32.to_be_bytes(),
        ]
        .concat();
        assert_eq!(out, expected);
    }
}

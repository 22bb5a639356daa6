//! CF conventions as xarray applies them to Zarr arrays: time as integers
//! "since" a reference date, packed values (`scale_factor`, `add_offset`)
//! and sentinel values (`_FillValue`, `missing_value`) that mean "no value".
//!
//! Decoding turns what a store holds into what xarray would show: times as
//! timestamps (nanoseconds), packed integers as floats. Missing cells (the
//! sentinel, and NaN in a float array) read as null: xarray shows them as
//! NaN but its aggregates skip them, and a SQL aggregate skips nulls, so
//! `avg` and `count` agree with xarray's only this way. A NaN a body
//! computed becomes missing the same way (xarray cannot tell them apart
//! either); the write reports it. Encoding writes time the way xarray does, so that a
//! store we write reads back in Python with the same coordinates.

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, PrimitiveArray, TimestampNanosecondArray,
};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::compute::kernels::cast::cast;
use arrow::datatypes::{DataType, TimeUnit};
use arrow::datatypes::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use base64::Engine;
use chrono::{NaiveDate, NaiveDateTime};
use datafusion::common::{plan_err, DataFusionError, Result};
use serde_json::{Map, Value};

/// How the values of one stored array are turned into a column.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoding {
    /// The values as stored.
    Plain,
    /// Numbers with sentinels masked to null, unpacked to floats when
    /// packed.
    Masked {
        sentinel: Option<f64>,
        scale: f64,
        offset: f64,
    },
    /// Time as numbers of `unit_nanos` since `reference` (nanoseconds since
    /// the epoch).
    Time {
        unit_nanos: i64,
        reference: i64,
        sentinel: Option<f64>,
    },
}

/// Reads an array's CF attributes. `zarr_fill` is the array's own fill value
/// as a number, used as the sentinel where xarray does (Zarr v2 stores,
/// whose arrays carry no `_FillValue` attribute).
pub fn decoding(
    name: &str,
    attributes: &Map<String, Value>,
    zarr_fill: Option<f64>,
) -> Result<Decoding> {
    let sentinel = match attributes
        .get("_FillValue")
        .or(attributes.get("missing_value"))
    {
        Some(value) => attribute_number(value).ok_or_else(|| {
            DataFusionError::Plan(format!(
                "the Zarr array '{name}' has a _FillValue that is not a number: {value}"
            ))
        })?,
        None => zarr_fill,
    }
    .filter(|v| !v.is_nan());
    if let Some(units) = attributes.get("units").and_then(Value::as_str) {
        if let Some((unit, since)) = split_since(units) {
            let calendar = attributes
                .get("calendar")
                .and_then(Value::as_str)
                .unwrap_or("standard");
            if !matches!(
                calendar.to_ascii_lowercase().as_str(),
                "standard" | "gregorian" | "proleptic_gregorian"
            ) {
                return plan_err!(
                    "the Zarr array '{name}' uses the calendar '{calendar}'; only the standard \
                     (proleptic Gregorian) calendar is supported"
                );
            }
            let Some(unit_nanos) = unit_nanos(unit) else {
                return plan_err!(
                    "the Zarr array '{name}' has time units '{units}' that are not understood"
                );
            };
            let Some(reference) = parse_reference(since) else {
                return plan_err!(
                    "the Zarr array '{name}' has time units '{units}' whose reference date is not understood"
                );
            };
            return Ok(Decoding::Time {
                unit_nanos,
                reference,
                sentinel,
            });
        }
    }
    let scale = attributes.get("scale_factor").and_then(Value::as_f64);
    let offset = attributes.get("add_offset").and_then(Value::as_f64);
    if sentinel.is_none() && scale.is_none() && offset.is_none() {
        return Ok(Decoding::Plain);
    }
    Ok(Decoding::Masked {
        sentinel,
        scale: scale.unwrap_or(1.0),
        offset: offset.unwrap_or(0.0),
    })
}

/// A `_FillValue` as xarray writes it: a number, "NaN"/"Infinity", or (for
/// floats in Zarr v3) the base64 of the value as a little-endian float64.
fn attribute_number(value: &Value) -> Option<Option<f64>> {
    match value {
        Value::Null => Some(None),
        Value::Number(n) => n.as_f64().map(Some),
        Value::String(text) => match text.as_str() {
            "NaN" => Some(Some(f64::NAN)),
            "Infinity" => Some(Some(f64::INFINITY)),
            "-Infinity" => Some(Some(f64::NEG_INFINITY)),
            encoded => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .ok()?;
                let bytes: [u8; 8] = bytes.try_into().ok()?;
                Some(Some(f64::from_le_bytes(bytes)))
            }
        },
        _ => None,
    }
}

/// The `_FillValue` attribute xarray writes for a float array.
pub fn nan_fill_attribute() -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(f64::NAN.to_le_bytes()))
}

fn split_since(units: &str) -> Option<(&str, &str)> {
    let lower = units.to_ascii_lowercase();
    let at = lower.find(" since ")?;
    Some((units[..at].trim(), units[at + 7..].trim()))
}

fn unit_nanos(unit: &str) -> Option<i64> {
    Some(match unit.to_ascii_lowercase().trim_end_matches('s') {
        "day" | "d" => 86_400_000_000_000,
        "hour" | "hr" | "h" => 3_600_000_000_000,
        "minute" | "min" => 60_000_000_000,
        "second" | "sec" => 1_000_000_000,
        "millisecond" | "m" => 1_000_000,
        "microsecond" | "u" => 1_000,
        "nanosecond" | "n" => 1,
        _ => return None,
    })
}

/// `2013-01-01`, `2013-01-01 00:00:00[.ffffff]`, `2013-01-01T00:00:00`,
/// optionally ending in `Z` or `+00:00`; as nanoseconds since the epoch.
fn parse_reference(text: &str) -> Option<i64> {
    let text = text
        .trim()
        .trim_end_matches('Z')
        .trim_end_matches("+00:00")
        .trim_end_matches(" UTC")
        .replace('T', " ");
    let parsed = NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M"))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })?;
    parsed.and_utc().timestamp_nanos_opt()
}

/// Applies `decoding` to a column of stored values.
pub fn decode(values: ArrayRef, decoding: &Decoding) -> Result<ArrayRef> {
    match decoding {
        Decoding::Plain => Ok(missing_as_null(values, None)),
        Decoding::Masked {
            sentinel,
            scale,
            offset,
        } if *scale == 1.0 && *offset == 0.0 => Ok(missing_as_null(values, *sentinel)),
        Decoding::Masked {
            sentinel,
            scale,
            offset,
        } => {
            let numbers = cast(&values, &DataType::Float64)?;
            let numbers = numbers
                .as_any()
                .downcast_ref::<Float64Array>()
                .expect("cast to Float64");
            let unpack = |v: f64| (!v.is_nan() && Some(v) != *sentinel).then(|| v * scale + offset);
            let decoded: Float64Array = numbers.iter().map(|v| v.and_then(unpack)).collect();
            Ok(std::sync::Arc::new(decoded))
        }
        Decoding::Time {
            unit_nanos,
            reference,
            sentinel,
        } => {
            let time = |v: f64| -> Option<i64> {
                if v.is_nan() || Some(v) == *sentinel {
                    return None;
                }
                let nanos = (v * *unit_nanos as f64).round();
                (nanos.abs() < 9.2e18).then(|| reference.saturating_add(nanos as i64))
            };
            let decoded: TimestampNanosecondArray = match values.data_type() {
                DataType::Float32 | DataType::Float64 => {
                    let numbers = cast(&values, &DataType::Float64)?;
                    let numbers = numbers
                        .as_any()
                        .downcast_ref::<Float64Array>()
                        .expect("f64");
                    numbers.iter().map(|v| v.and_then(time)).collect()
                }
                _ => {
                    let numbers = cast(&values, &DataType::Int64)?;
                    let numbers = numbers.as_any().downcast_ref::<Int64Array>().expect("i64");
                    if let Some(decoded) = in_own_unit(numbers, *unit_nanos, *reference, *sentinel)
                    {
                        return decoded;
                    }
                    numbers
                        .iter()
                        .map(|v| {
                            let v = v?;
                            // NaT, as numpy stores it.
                            if v == i64::MIN || Some(v as f64) == *sentinel {
                                return None;
                            }
                            v.checked_mul(*unit_nanos)?.checked_add(*reference)
                        })
                        .collect()
                }
            };
            Ok(std::sync::Arc::new(decoded))
        }
    }
}

/// Integer times in an Arrow unit (seconds to nanoseconds) since a
/// reference that is a whole number of them, as Arrow timestamps of that
/// unit: exactly, whatever their range (as nanoseconds, times after 2262
/// would not fit). `None` for other units.
fn in_own_unit(
    numbers: &Int64Array,
    unit_nanos: i64,
    reference: i64,
    sentinel: Option<f64>,
) -> Option<Result<ArrayRef>> {
    let unit = match unit_nanos {
        1 => TimeUnit::Nanosecond,
        1_000 => TimeUnit::Microsecond,
        1_000_000 => TimeUnit::Millisecond,
        1_000_000_000 => TimeUnit::Second,
        _ => return None,
    };
    if reference % unit_nanos != 0 {
        return None;
    }
    let base = reference / unit_nanos;
    let values: Int64Array = numbers
        .iter()
        .map(|v| {
            let v = v?;
            // NaT, as numpy stores it.
            if v == i64::MIN || Some(v as f64) == sentinel {
                return None;
            }
            v.checked_add(base)
        })
        .collect();
    Some(cast(&values, &DataType::Timestamp(unit, None)).map_err(Into::into))
}

/// `values` with their missing cells null: NaN in a float array, and the
/// `sentinel` in any array, as xarray masks them. The stored type stays.
fn missing_as_null(values: ArrayRef, sentinel: Option<f64>) -> ArrayRef {
    macro_rules! mask {
        ($t:ty, $missing:expr) => {{
            let array = values.as_primitive::<$t>();
            let missing = $missing;
            let valid = BooleanBuffer::collect_bool(array.len(), |i| !missing(array.value(i)));
            if valid.count_set_bits() == valid.len() {
                return values;
            }
            let nulls = NullBuffer::union(array.nulls(), Some(&NullBuffer::new(valid)));
            std::sync::Arc::new(PrimitiveArray::<$t>::new(array.values().clone(), nulls))
        }};
    }
    macro_rules! int {
        ($t:ty, $native:ty) => {{
            // A sentinel the type cannot hold marks nothing.
            let Some(sentinel) = sentinel.filter(|s| (*s as $native) as f64 == *s) else {
                return values;
            };
            let sentinel = sentinel as $native;
            mask!($t, |v: $native| v == sentinel)
        }};
    }
    match values.data_type() {
        DataType::Float32 => mask!(Float32Type, |v: f32| v.is_nan()
            || sentinel.is_some_and(|s| f64::from(v) == s)),
        DataType::Float64 => mask!(Float64Type, |v: f64| v.is_nan() || Some(v) == sentinel),
        DataType::Int8 => int!(Int8Type, i8),
        DataType::Int16 => int!(Int16Type, i16),
        DataType::Int32 => int!(Int32Type, i32),
        DataType::Int64 => int!(Int64Type, i64),
        DataType::UInt8 => int!(UInt8Type, u8),
        DataType::UInt16 => int!(UInt16Type, u16),
        DataType::UInt32 => int!(UInt32Type, u32),
        DataType::UInt64 => int!(UInt64Type, u64),
        _ => values,
    }
}

/// The time units xarray would pick for `nanos` (nanoseconds since the
/// epoch, the first value the reference): the coarsest unit that divides
/// every difference from the first value. Returns the units attribute and
/// the values in that unit.
pub fn encode_time(nanos: &[i64]) -> (String, Vec<i64>) {
    const UNITS: [(&str, i64); 7] = [
        ("days", 86_400_000_000_000),
        ("hours", 3_600_000_000_000),
        ("minutes", 60_000_000_000),
        ("seconds", 1_000_000_000),
        ("milliseconds", 1_000_000),
        ("microseconds", 1_000),
        ("nanoseconds", 1),
    ];
    let first = nanos.first().copied().unwrap_or(0);
    let (unit, size) = UNITS
        .iter()
        .copied()
        .find(|(_, size)| nanos.iter().all(|t| (t - first) % size == 0))
        .unwrap_or(("nanoseconds", 1));
    let values = nanos.iter().map(|t| (t - first) / size).collect();
    (format!("{unit} since {}", format_reference(first)), values)
}

/// As pandas prints a timestamp: `2013-01-01 00:00:00`, with the fraction
/// when there is one.
fn format_reference(nanos: i64) -> String {
    let time = chrono::DateTime::from_timestamp_nanos(nanos).naive_utc();
    let fraction = nanos.rem_euclid(1_000_000_000);
    if fraction == 0 {
        time.format("%Y-%m-%d %H:%M:%S").to_string()
    } else if fraction % 1_000 == 0 {
        time.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
    } else {
        time.format("%Y-%m-%d %H:%M:%S%.9f").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn time_units_as_xarray_writes_and_reads_them() {
        let hour = 3_600_000_000_000i64;
        let start = parse_reference("2013-01-01").unwrap();
        let (units, values) = encode_time(&[start, start + 6 * hour, start + 12 * hour]);
        assert_eq!(units, "hours since 2013-01-01 00:00:00");
        assert_eq!(values, vec![0, 6, 12]);
        let decoding = decoding(
            "time",
            &attrs(json!({"units": units, "calendar": "proleptic_gregorian"})),
            None,
        )
        .unwrap();
        let decoded = decode(
            std::sync::Arc::new(Int64Array::from(vec![0, 6, i64::MIN])),
            &decoding,
        )
        .unwrap();
        let decoded = decoded
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .unwrap();
        assert_eq!(decoded.value(1), start + 6 * hour);
        assert!(decoded.is_null(2), "NaT is a null time");
        for text in [
            "2013-01-01T00:00:00",
            "2013-01-01 00:00:00.000000",
            "2013-01-01 00:00",
        ] {
            assert_eq!(parse_reference(text), Some(start), "{text}");
        }
        let err = decoding_err(json!({"units": "days since 2000-01-01", "calendar": "noleap"}));
        assert!(err.contains("calendar 'noleap'"), "{err}");
    }

    fn decoding_err(value: Value) -> String {
        decoding("t", &attrs(value), None).unwrap_err().to_string()
    }

    #[test]
    fn missing_cells_decode_to_null() {
        let d = decoding(
            "air",
            &attrs(json!({"scale_factor": 0.01, "add_offset": 200.0, "_FillValue": 32767})),
            None,
        )
        .unwrap();
        let decoded = decode(
            std::sync::Arc::new(arrow::array::Int16Array::from(vec![100, 32767])),
            &d,
        )
        .unwrap();
        let decoded = decoded.as_any().downcast_ref::<Float64Array>().unwrap();
        assert!((decoded.value(0) - 201.0).abs() < 1e-9);
        assert!(decoded.is_null(1));
        // xarray's base64 NaN fill: a float array's NaN cells are missing.
        let d = decoding("air", &attrs(json!({"_FillValue": "AAAAAAAA+H8="})), None).unwrap();
        assert_eq!(d, Decoding::Plain);
        assert_eq!(nan_fill_attribute(), json!("AAAAAAAA+H8="));
        let floats = arrow::array::Float32Array::from(vec![1.5, f32::NAN, -0.0]);
        let decoded = decode(std::sync::Arc::new(floats), &d).unwrap();
        let decoded = decoded.as_primitive::<Float32Type>();
        assert_eq!(decoded.null_count(), 1);
        assert!(decoded.is_null(1));
        assert!(decoded.value(2).is_sign_negative(), "-0.0 is a number");
        // An integer sentinel masks its value, and the integers stay exact.
        let d = decoding("n", &attrs(json!({"_FillValue": i64::MIN})), None).unwrap();
        let big = arrow::array::Int64Array::from(vec![i64::MIN, i64::MAX, 9_007_199_254_740_993]);
        let decoded = decode(std::sync::Arc::new(big), &d).unwrap();
        let decoded = decoded.as_primitive::<Int64Type>();
        assert!(decoded.is_null(0));
        assert_eq!(decoded.value(1), i64::MAX);
        assert_eq!(decoded.value(2), 9_007_199_254_740_993);
        let d = decoding("u", &attrs(json!({"_FillValue": 255})), None).unwrap();
        let bytes = arrow::array::UInt8Array::from(vec![255, 0]);
        let decoded = decode(std::sync::Arc::new(bytes), &d).unwrap();
        assert_eq!(decoded.null_count(), 1);
        assert_eq!(decoded.data_type(), &DataType::UInt8);
    }
}

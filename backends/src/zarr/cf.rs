//! CF conventions as xarray applies them to Zarr arrays: time as integers
//! "since" a reference date, packed values (`scale_factor`, `add_offset`)
//! and sentinel values (`_FillValue`, `missing_value`) that mean "no value".
//!
//! Decoding turns what a store holds into what xarray would show: times as
//! timestamps (nanoseconds), packed integers as floats, sentinels as NaN.
//! NaN stays NaN: Zarr has no nulls, and a float array's missing cells are
//! NaN in xarray too. Encoding writes time the way xarray does, so that a
//! store we write reads back in Python with the same coordinates.

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, TimestampNanosecondArray};
use arrow::compute::kernels::cast::cast;
use arrow::datatypes::DataType;
use base64::Engine;
use chrono::{NaiveDate, NaiveDateTime};
use datafusion::common::{plan_err, DataFusionError, Result};
use serde_json::{Map, Value};

/// How the values of one stored array are turned into a column.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoding {
    /// The values as stored.
    Plain,
    /// Numbers, with sentinels masked to NaN and unpacked to floats.
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
        Decoding::Plain => Ok(values),
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
            let unpack = |v: f64| {
                if Some(v) == *sentinel {
                    f64::NAN
                } else {
                    v * scale + offset
                }
            };
            let decoded: Float64Array = numbers.iter().map(|v| v.map(unpack)).collect();
            // A float array keeps its width unless unpacking widened it.
            if *scale == 1.0 && *offset == 0.0 && values.data_type() == &DataType::Float32 {
                return Ok(cast(&decoded, &DataType::Float32)?);
            }
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
    fn packed_values_and_sentinels_decode_to_floats_with_nan() {
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
        assert!(decoded.value(1).is_nan());
        // xarray's base64 NaN fill means nothing to mask.
        let d = decoding("air", &attrs(json!({"_FillValue": "AAAAAAAA+H8="})), None).unwrap();
        assert_eq!(d, Decoding::Plain);
        assert_eq!(nan_fill_attribute(), json!("AAAAAAAA+H8="));
    }
}

//! How a result's columns map onto a Zarr grid: each value column's
//! stored type and fill value, and each dimension's values as sortable
//! integer keys that place a row in its cell.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray};
use arrow::compute::kernels::cast::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};
use datafusion::common::{plan_err, Result};
use serde_json::{json, Map, Value};
use zarrs::array::builder::ArrayBuilderFillValue;
use zarrs::array::data_type;
use zarrs::metadata::FillValueMetadata;

use super::cf;

/// How one value column is stored.
#[derive(Debug, Clone)]
pub(super) struct Stored {
    pub(super) column: usize,
    pub(super) name: String,
    /// The Arrow type the column is cast to before its bytes are taken.
    pub(super) as_type: DataType,
    pub(super) element: usize,
    pub(super) fill: Vec<u8>,
    pub(super) attributes: Map<String, Value>,
    pub(super) zarr_type: zarrs::array::DataType,
    pub(super) builder_fill: fn() -> ArrayBuilderFillValue,
}

pub(super) fn stored(column: usize, name: &str, t: &DataType) -> Result<Stored> {
    macro_rules! numeric {
        ($ty:expr, $zarr:expr, $fill:expr, $rust:ty) => {{
            let fill: $rust = $fill;
            (
                $ty,
                std::mem::size_of::<$rust>(),
                fill.to_ne_bytes().to_vec(),
                $zarr,
                (|| ArrayBuilderFillValue::from($fill)) as fn() -> ArrayBuilderFillValue,
            )
        }};
    }
    let mut attributes = Map::new();
    let (as_type, element, fill, zarr_type, builder_fill) = match t {
        DataType::Float32 => numeric!(DataType::Float32, data_type::float32(), f32::NAN, f32),
        DataType::Float64 => numeric!(DataType::Float64, data_type::float64(), f64::NAN, f64),
        DataType::Int8 => numeric!(DataType::Int8, data_type::int8(), i8::MIN, i8),
        DataType::Int16 => numeric!(DataType::Int16, data_type::int16(), i16::MIN, i16),
        DataType::Int32 => numeric!(DataType::Int32, data_type::int32(), i32::MIN, i32),
        DataType::Int64 => numeric!(DataType::Int64, data_type::int64(), i64::MIN, i64),
        DataType::UInt8 => numeric!(DataType::UInt8, data_type::uint8(), u8::MAX, u8),
        DataType::UInt16 => numeric!(DataType::UInt16, data_type::uint16(), u16::MAX, u16),
        DataType::UInt32 => numeric!(DataType::UInt32, data_type::uint32(), u32::MAX, u32),
        DataType::UInt64 => numeric!(DataType::UInt64, data_type::uint64(), u64::MAX, u64),
        DataType::Boolean => (
            DataType::UInt8,
            1,
            vec![0],
            data_type::bool(),
            (|| ArrayBuilderFillValue::from(FillValueMetadata::Bool(false)))
                as fn() -> ArrayBuilderFillValue,
        ),
        DataType::Timestamp(unit, _) => {
            let unit_name = match unit {
                TimeUnit::Second => "seconds",
                TimeUnit::Millisecond => "milliseconds",
                TimeUnit::Microsecond => "microseconds",
                TimeUnit::Nanosecond => "nanoseconds",
            };
            attributes.insert(
                "units".into(),
                json!(format!("{unit_name} since 1970-01-01 00:00:00")),
            );
            attributes.insert("calendar".into(), json!("proleptic_gregorian"));
            // NaT, as numpy writes it; no _FillValue, as xarray writes time.
            numeric!(DataType::Int64, data_type::int64(), i64::MIN, i64)
        }
        other => {
            return plan_err!(
                "column '{name}' is {other}; a Zarr entry stores numbers, booleans and \
                 timestamps. Leave it out of the result or use backend = 'parquet'"
            )
        }
    };
    match t {
        DataType::Float32 | DataType::Float64 => {
            attributes.insert("_FillValue".into(), cf::nan_fill_attribute());
        }
        // A missing cell of an integer variable, which xarray masks.
        t if t.is_integer() => {
            let sentinel = integer_fill(t).expect("an integer type");
            let value = match i64::try_from(sentinel) {
                Ok(signed) => json!(signed),
                Err(_) => json!(u64::try_from(sentinel).expect("an unsigned fill")),
            };
            attributes.insert("_FillValue".into(), value);
        }
        _ => {}
    }
    Ok(Stored {
        column,
        name: name.to_string(),
        as_type,
        element,
        fill,
        attributes,
        zarr_type,
        builder_fill,
    })
}

/// The value an integer array stores for a missing cell: the smallest of
/// a signed type, the largest of an unsigned one (what the write pads with,
/// what `_FillValue` says, and what reads back as null).
pub(super) fn integer_fill(t: &DataType) -> Option<i128> {
    Some(match t {
        DataType::Int8 => i8::MIN.into(),
        DataType::Int16 => i16::MIN.into(),
        DataType::Int32 => i32::MIN.into(),
        DataType::Int64 => i64::MIN.into(),
        DataType::UInt8 => u8::MAX.into(),
        DataType::UInt16 => u16::MAX.into(),
        DataType::UInt32 => u32::MAX.into(),
        DataType::UInt64 => u64::MAX.into(),
        _ => return None,
    })
}

/// Values of a dimension column as integers in the column's order, so that
/// cells can be found by binary search: floats by their ordered bits.
pub(super) fn keys(name: &str, column: &ArrayRef) -> Result<Vec<i64>> {
    if column.null_count() > 0 {
        return plan_err!("dimension '{name}' has a null; every row of a Zarr entry needs a cell");
    }
    Ok(match column.data_type() {
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let floats = cast(column, &DataType::Float64)?;
            let mut keys = Vec::with_capacity(floats.len());
            for v in floats.as_primitive::<Float64Type>().values() {
                if v.is_nan() {
                    return plan_err!(
                        "dimension '{name}' has a NaN; every row of a Zarr entry needs a cell"
                    );
                }
                let bits = (v + 0.0).to_bits() as i64;
                keys.push(if bits < 0 { bits ^ i64::MAX } else { bits });
            }
            keys
        }
        DataType::Timestamp(..)
        | DataType::Date32
        | DataType::Date64
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => {
            let column = match column.data_type() {
                DataType::Timestamp(_, Some(_)) => {
                    cast(column, &DataType::Timestamp(TimeUnit::Nanosecond, None))?
                }
                _ => Arc::clone(column),
            };
            let ints = cast(&column, &DataType::Int64)?;
            ints.as_primitive::<Int64Type>().values().to_vec()
        }
        other => {
            return plan_err!(
                "dimension '{name}' is {other}; Zarr dimensions are numbers or timestamps"
            )
        }
    })
}

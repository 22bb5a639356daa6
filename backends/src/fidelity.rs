//! What a format keeps of the values it is given.
//!
//! Parquet and Arrow IPC store every Arrow value exactly. The other formats
//! cannot hold some values: SQLite has no NaN and no -0.0, Delta and the
//! databases keep time to the microsecond, Zarr has no nulls (a missing
//! cell is the array's fill value, and a float's NaN reads as missing, as
//! in xarray). Each backend says which of these [`Loss`]es apply to a
//! column ([`crate::Backend::losses`]); the catalog counts, as the rows go
//! by, the values each one changes, and the write reports them as
//! [`Change`]s (or refuses, for a function that asks for exact results).
//!
//! Counting rather than converting keeps the backends the single place
//! where values are encoded: what is counted here is what their encoders
//! do, and a test writes every such value through every backend to hold
//! the two together.

use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Float16Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Int8Type, Schema, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow::error::ArrowError;

use crate::{Backend, Location};

/// A way a format stores some values of a column other than as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Timestamps finer than a microsecond lose the nanoseconds.
    SubMicros,
    /// NaN is stored as missing, and reads back as null.
    NanAsNull,
    /// -0.0 is stored as 0.0.
    NegativeZero,
    /// This value is the format's mark for a missing cell, and reads back
    /// as null.
    FillAsNull(i128),
    /// Nulls are stored as false.
    NullAsFalse,
    /// Dates carried as milliseconds lose their time of day.
    TimeOfDay,
    /// Dates and times outside the years 1 to 9999, which the format
    /// cannot store at all: always refused, never changed.
    BeyondYears,
    /// Values resampled onto another grid (Terracotta's Web Mercator):
    /// every value may change.
    Resampled,
}

impl Loss {
    /// What the loss does, as a warning says it.
    pub fn describe(&self) -> String {
        match self {
            Loss::SubMicros => "nanoseconds truncated to microseconds".into(),
            Loss::NanAsNull => "NaN stored as missing, read back as null".into(),
            Loss::NegativeZero => "-0.0 stored as 0.0".into(),
            Loss::FillAsNull(value) => {
                format!("{value}, the fill value, stored as missing, read back as null")
            }
            Loss::NullAsFalse => "nulls stored as false".into(),
            Loss::TimeOfDay => "time of day dropped from dates".into(),
            Loss::BeyondYears => "dates or times outside the years 1 to 9999".into(),
            Loss::Resampled => "resampled onto the Web Mercator grid".into(),
        }
    }

    /// Whether values it applies to are refused whatever the function
    /// asks: the format cannot store them in any form.
    pub fn refuses(&self) -> bool {
        *self == Loss::BeyondYears
    }

    /// How many values of `column` it changes.
    pub fn count(&self, column: &dyn Array) -> usize {
        match self {
            Loss::SubMicros => sub_micros(column),
            Loss::NanAsNull => floats(column, |v| v.is_nan()),
            Loss::NegativeZero => floats(column, |v| v == 0.0 && v.is_sign_negative()),
            Loss::FillAsNull(fill) => integers(column, *fill),
            Loss::NullAsFalse => match column.data_type() {
                DataType::Boolean => column.null_count(),
                _ => 0,
            },
            Loss::BeyondYears => beyond_years(column),
            Loss::Resampled => column.len() - column.null_count(),
            Loss::TimeOfDay => match column.data_type() {
                DataType::Date64 => valid(column.as_primitive::<Date64Type>(), |ms| {
                    ms.rem_euclid(86_400_000) != 0
                }),
                _ => 0,
            },
        }
    }
}

/// Values of a column that a write changed, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub column: String,
    pub loss: Loss,
    pub values: u64,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.values == 1 { "" } else { "s" };
        write!(
            f,
            "{}: {} ({} value{plural})",
            self.column,
            self.loss.describe(),
            self.values
        )
    }
}

/// Counts, batch by batch, the values a write of `schema` through a
/// backend changes.
#[derive(Debug)]
pub struct Counter {
    /// Each column's losses: (column index, name, loss, values changed).
    counts: Mutex<Vec<(usize, String, Loss, u64)>>,
    refused: Mutex<Option<Change>>,
}

impl Counter {
    pub fn new(backend: &dyn Backend, at: &Location, schema: &Schema) -> Counter {
        let counts = (schema.fields().iter().enumerate())
            .flat_map(|(i, field)| {
                let losses = backend.losses(at, field);
                losses
                    .into_iter()
                    .map(move |loss| (i, field.name().clone(), loss, 0))
            })
            .collect();
        Counter {
            counts: Mutex::new(counts),
            refused: Mutex::new(None),
        }
    }

    /// Counts what `batch` loses. With `exact`, the first change is
    /// refused instead: returned, and kept for [`Counter::refused`]; so is
    /// the first value of a loss that always [`Loss::refuses`].
    pub fn count(&self, batch: &RecordBatch, exact: bool) -> Option<String> {
        let mut counts = self.counts.lock().expect("fidelity counts");
        for (i, name, loss, values) in counts.iter_mut() {
            let changed = loss.count(batch.column(*i).as_ref()) as u64;
            *values += changed;
            if changed > 0 && (exact || loss.refuses()) {
                let change = Change {
                    column: name.clone(),
                    loss: *loss,
                    values: changed,
                };
                let text = change.to_string();
                *self.refused.lock().expect("fidelity refusal") = Some(change);
                return Some(text);
            }
        }
        None
    }

    /// The change a write refused, if any.
    pub fn refused(&self) -> Option<Change> {
        self.refused.lock().expect("fidelity refusal").clone()
    }

    /// What the write changed, column by column.
    pub fn changes(&self) -> Vec<Change> {
        let counts = self.counts.lock().expect("fidelity counts");
        (counts.iter())
            .filter(|(_, _, _, values)| *values > 0)
            .map(|(_, name, loss, values)| Change {
                column: name.clone(),
                loss: *loss,
                values: *values,
            })
            .collect()
    }
}

/// `column` cast to `to` as a format that keeps less precision stores it:
/// nanoseconds to microseconds and millisecond dates to days round down,
/// so an instant before 1970 keeps its day and microsecond (Arrow's cast
/// would round toward 1970). Other casts are Arrow's, with `options`.
pub fn coarsen(
    column: &ArrayRef,
    to: &DataType,
    options: &CastOptions,
) -> Result<ArrayRef, ArrowError> {
    let too_far = || ArrowError::CastError("a date beyond the range of days".into());
    match (column.data_type(), to) {
        (DataType::Date64, DataType::Date32) => {
            let days = column
                .as_primitive::<Date64Type>()
                .try_unary::<_, Date32Type, _>(|ms| {
                    i32::try_from(ms.div_euclid(86_400_000)).map_err(|_| too_far())
                })?;
            Ok(Arc::new(days))
        }
        (
            DataType::Timestamp(TimeUnit::Nanosecond, _),
            DataType::Timestamp(TimeUnit::Microsecond, zone),
        ) => {
            let micros = column
                .as_primitive::<TimestampNanosecondType>()
                .unary::<_, TimestampMicrosecondType>(|ns| ns.div_euclid(1_000))
                .with_timezone_opt(zone.clone());
            Ok(Arc::new(micros))
        }
        _ => cast_with_options(column, to, options),
    }
}

/// The valid values of `array` for which `changed` holds.
fn valid<T: arrow::datatypes::ArrowPrimitiveType>(
    array: &arrow::array::PrimitiveArray<T>,
    changed: impl Fn(T::Native) -> bool,
) -> usize {
    match array.nulls() {
        None => array.values().iter().filter(|v| changed(**v)).count(),
        Some(nulls) => (array.values().iter().enumerate())
            .filter(|(i, v)| nulls.is_valid(*i) && changed(**v))
            .count(),
    }
}

fn floats(column: &dyn Array, changed: impl Fn(f64) -> bool) -> usize {
    match column.data_type() {
        DataType::Float16 => valid(column.as_primitive::<Float16Type>(), |v| {
            changed(f64::from(v.to_f32()))
        }),
        DataType::Float32 => valid(column.as_primitive::<Float32Type>(), |v| {
            changed(f64::from(v))
        }),
        DataType::Float64 => valid(column.as_primitive::<Float64Type>(), changed),
        _ => 0,
    }
}

fn integers(column: &dyn Array, fill: i128) -> usize {
    macro_rules! equal {
        ($t:ty) => {
            valid(column.as_primitive::<$t>(), |v| i128::from(v) == fill)
        };
    }
    match column.data_type() {
        DataType::Int8 => equal!(Int8Type),
        DataType::Int16 => equal!(Int16Type),
        DataType::Int32 => equal!(Int32Type),
        DataType::Int64 => equal!(Int64Type),
        DataType::UInt8 => equal!(UInt8Type),
        DataType::UInt16 => equal!(UInt16Type),
        DataType::UInt32 => equal!(UInt32Type),
        DataType::UInt64 => equal!(UInt64Type),
        DataType::Timestamp(TimeUnit::Second, _) => equal!(TimestampSecondType),
        DataType::Timestamp(TimeUnit::Millisecond, _) => equal!(TimestampMillisecondType),
        DataType::Timestamp(TimeUnit::Microsecond, _) => equal!(TimestampMicrosecondType),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => equal!(TimestampNanosecondType),
        _ => 0,
    }
}

/// 0001-01-01 and 10000-01-01, in days since 1970.
const FIRST_DAY: i64 = -719_162;
const END_DAY: i64 = 2_932_897;

fn beyond_years(column: &dyn Array) -> usize {
    let outside = |day: i64| !(FIRST_DAY..END_DAY).contains(&day);
    let per_day = |unit: &TimeUnit| match unit {
        TimeUnit::Second => 86_400,
        TimeUnit::Millisecond => 86_400_000,
        TimeUnit::Microsecond => 86_400_000_000,
        TimeUnit::Nanosecond => 86_400_000_000_000,
    };
    match column.data_type() {
        DataType::Date32 => valid(column.as_primitive::<Date32Type>(), |d| outside(d.into())),
        DataType::Date64 => valid(column.as_primitive::<Date64Type>(), |ms| {
            outside(ms.div_euclid(86_400_000))
        }),
        DataType::Timestamp(unit, _) => {
            let per_day = per_day(unit);
            let day = |v: i64| outside(v.div_euclid(per_day));
            match unit {
                TimeUnit::Second => valid(column.as_primitive::<TimestampSecondType>(), day),
                TimeUnit::Millisecond => {
                    valid(column.as_primitive::<TimestampMillisecondType>(), day)
                }
                TimeUnit::Microsecond => {
                    valid(column.as_primitive::<TimestampMicrosecondType>(), day)
                }
                TimeUnit::Nanosecond => {
                    valid(column.as_primitive::<TimestampNanosecondType>(), day)
                }
            }
        }
        _ => 0,
    }
}

fn sub_micros(column: &dyn Array) -> usize {
    match column.data_type() {
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            valid(column.as_primitive::<TimestampNanosecondType>(), |ns| {
                ns.rem_euclid(1_000) != 0
            })
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        BooleanArray, Date64Array, Float64Array, Int32Array, TimestampNanosecondArray, UInt8Array,
    };

    use super::*;

    #[test]
    fn coarser_times_round_down() {
        let ns: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![-1, 1_999]));
        let to = DataType::Timestamp(TimeUnit::Microsecond, None);
        let micros = coarsen(&ns, &to, &CastOptions::default()).unwrap();
        let micros = micros.as_primitive::<TimestampMicrosecondType>();
        assert_eq!(micros.values().to_vec(), vec![-1, 1]);
        let ms: ArrayRef = Arc::new(Date64Array::from(vec![-43_200_000, 86_400_001]));
        let days = coarsen(&ms, &DataType::Date32, &CastOptions::default()).unwrap();
        let days = days.as_primitive::<Date32Type>();
        assert_eq!(
            days.values().to_vec(),
            vec![-1, 1],
            "noon of 1969-12-31 is that day"
        );
    }

    #[test]
    fn each_loss_counts_the_values_it_changes() {
        let floats = Float64Array::from(vec![Some(f64::NAN), Some(-0.0), Some(0.0), None]);
        assert_eq!(Loss::NanAsNull.count(&floats), 1);
        assert_eq!(Loss::NegativeZero.count(&floats), 1);
        let time = TimestampNanosecondArray::from(vec![Some(1_000), Some(1_001), Some(-1), None]);
        assert_eq!(Loss::SubMicros.count(&time), 2);
        let ints = Int32Array::from(vec![Some(i32::MIN), Some(0), None]);
        assert_eq!(Loss::FillAsNull(i128::from(i32::MIN)).count(&ints), 1);
        let bytes = Arc::new(UInt8Array::from(vec![255, 254])) as Arc<dyn Array>;
        assert_eq!(Loss::FillAsNull(255).count(&bytes), 1);
        let flags = BooleanArray::from(vec![Some(true), None]);
        assert_eq!(Loss::NullAsFalse.count(&flags), 1);
        let dates = Date64Array::from(vec![86_400_000, 86_400_001]);
        assert_eq!(Loss::TimeOfDay.count(&dates), 1);
        // A loss of another type's values changes nothing here.
        assert_eq!(Loss::SubMicros.count(&floats), 0);
        let change = Change {
            column: "ts".into(),
            loss: Loss::SubMicros,
            values: 24,
        };
        assert_eq!(
            change.to_string(),
            "ts: nanoseconds truncated to microseconds (24 values)"
        );
    }
}

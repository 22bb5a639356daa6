//! The span of time a result's rows hold, gathered batch by batch as the
//! result is written, in epoch microseconds (what an entry's record keeps).

use std::sync::Arc;

/// The smallest and largest value of a result's time column seen so far,
/// in epoch microseconds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub min: Option<i64>,
    pub max: Option<i64>,
}

impl TimeRange {
    pub fn widen(&mut self, low: Option<i64>, high: Option<i64>) {
        if let Some(low) = low {
            self.min = Some(self.min.map_or(low, |m| m.min(low)));
        }
        if let Some(high) = high {
            self.max = Some(self.max.map_or(high, |m| m.max(high)));
        }
    }

    /// Widens the range by `batch`'s `column`; a column that is missing or
    /// not temporal leaves it unknown.
    pub fn note(&mut self, batch: &arrow::array::RecordBatch, column: &str) {
        use arrow::array::TimestampMicrosecondArray;
        use arrow::datatypes::{DataType, TimeUnit};
        let Some(values) = batch.column_by_name(column) else {
            return;
        };
        if !values.data_type().is_temporal() {
            return;
        }
        // The cast to microseconds keeps the order, so the extremes of the
        // values as they are, cast, are those of the values cast: two
        // values cast instead of a whole column per batch.
        let values = extremes(values).unwrap_or_else(|| Arc::clone(values));
        let Ok(micros) =
            arrow::compute::cast(&values, &DataType::Timestamp(TimeUnit::Microsecond, None))
        else {
            return;
        };
        let Some(micros) = micros.as_any().downcast_ref::<TimestampMicrosecondArray>() else {
            return;
        };
        self.widen(arrow::compute::min(micros), arrow::compute::max(micros));
    }
}

/// The least and greatest of `values`, a column of dates or timestamps,
/// as a column of the same type (empty when all are null); `None` for
/// other types.
fn extremes(values: &arrow::array::ArrayRef) -> Option<arrow::array::ArrayRef> {
    use arrow::array::{Array, AsArray, PrimitiveArray};
    use arrow::datatypes::*;
    fn of<T: ArrowPrimitiveType>(values: &dyn Array) -> arrow::array::ArrayRef {
        let values = values.as_primitive::<T>();
        let bounds = [arrow::compute::min(values), arrow::compute::max(values)];
        let bounds = PrimitiveArray::<T>::from_iter_values(bounds.into_iter().flatten());
        Arc::new(bounds.with_data_type(values.data_type().clone()))
    }
    let values = values.as_ref();
    Some(match values.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => of::<TimestampSecondType>(values),
        DataType::Timestamp(TimeUnit::Millisecond, _) => of::<TimestampMillisecondType>(values),
        DataType::Timestamp(TimeUnit::Microsecond, _) => of::<TimestampMicrosecondType>(values),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => of::<TimestampNanosecondType>(values),
        DataType::Date32 => of::<Date32Type>(values),
        DataType::Date64 => of::<Date64Type>(values),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Date32Array, RecordBatch, TimestampNanosecondArray};
    use arrow::datatypes::{DataType, TimeUnit};

    use super::TimeRange;

    fn noted(column: ArrayRef) -> TimeRange {
        let batch = RecordBatch::try_from_iter([("t", column)]).unwrap();
        let mut range = TimeRange::default();
        range.note(&batch, "t");
        range
    }

    #[test]
    fn a_time_range_is_the_extremes_in_microseconds() {
        // Nanoseconds truncate toward zero, as the cast does: -1,500 ns is
        // -1 µs, 2,999 ns 2 µs.
        let nanos = TimestampNanosecondArray::from(vec![Some(2_999), None, Some(-1_500), Some(7)])
            .with_timezone("UTC");
        let range = noted(Arc::new(nanos));
        assert_eq!((range.min, range.max), (Some(-1), Some(2)));
        let days = Date32Array::from(vec![Some(1), Some(-2), None]);
        let range = noted(Arc::new(days));
        assert_eq!(
            (range.min, range.max),
            (Some(-172_800_000_000), Some(86_400_000_000))
        );
        // Only nulls, or no time at all, widen nothing.
        let none = TimestampNanosecondArray::from(vec![None, None]);
        assert_eq!(noted(Arc::new(none)), TimeRange::default());
        let seconds = arrow::array::new_null_array(&DataType::Timestamp(TimeUnit::Second, None), 0);
        assert_eq!(noted(seconds), TimeRange::default());
    }
}

//! Widening Delta's microsecond times to the nanoseconds a function
//! declares, at the speed of a plain multiply.
//!
//! Delta stores every timestamp in microseconds, so each read of a Delta
//! entry whose function declares nanoseconds converts its time column.
//! Arrow's cast checks each value for overflow as it multiplies, which
//! keeps the loop scalar: on the README grid that conversion was the whole
//! gap between a Delta read and the same rows read from Parquet (about 8 ms
//! of 17 for 3.87 million times). [`MicrosToNanos`] multiplies without a
//! check and notes on the way whether any value was out of range, in one
//! loop the compiler vectorizes; a batch holding a time outside the
//! ±292 years nanoseconds can hold goes through Arrow's cast, which fails
//! with Arrow's own error, as before.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, AsArray, PrimitiveArray, RecordBatch};
use arrow::buffer::ScalarBuffer;
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Schema, TimeUnit, TimestampMicrosecondType};
use arrow::datatypes::{FieldRef, TimestampNanosecondType};
use datafusion::common::Result;
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_plan::PhysicalExpr;

/// Casts DataFusion runs with: an overflow is an error, not a null.
const CAST: CastOptions<'static> = CastOptions {
    safe: false,
    format_options: arrow::util::display::FormatOptions::new(),
};

/// `input`, a microsecond timestamp, as a nanosecond timestamp of the same
/// zone.
#[derive(Debug, Clone, Eq)]
pub(crate) struct MicrosToNanos {
    input: Arc<dyn PhysicalExpr>,
    to: DataType,
}

// Written out because the derives cannot compare through a `dyn` field
// (rust-lang/rust#78808).
impl PartialEq for MicrosToNanos {
    fn eq(&self, other: &Self) -> bool {
        self.input.eq(&other.input) && self.to == other.to
    }
}

impl Hash for MicrosToNanos {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.input.hash(state);
        self.to.hash(state);
    }
}

impl MicrosToNanos {
    /// The conversion of `input` from `from` to `to`, when it is a
    /// microsecond to nanosecond widening within one zone; `None` for every
    /// other cast.
    pub(crate) fn between(
        input: &Arc<dyn PhysicalExpr>,
        from: &DataType,
        to: &DataType,
    ) -> Option<Arc<dyn PhysicalExpr>> {
        match (from, to) {
            (
                DataType::Timestamp(TimeUnit::Microsecond, from_zone),
                DataType::Timestamp(TimeUnit::Nanosecond, to_zone),
            ) if from_zone == to_zone => Some(Arc::new(Self {
                input: Arc::clone(input),
                to: to.clone(),
            })),
            _ => None,
        }
    }

    fn widen(&self, array: &dyn Array) -> Result<Arc<dyn Array>> {
        let micros = array.as_primitive::<TimestampMicrosecondType>();
        // One pass that multiplies without a check and notes whether any
        // value was out of range, so the loop stays branch-free. Values
        // under nulls take part too: at worst they send a batch to the
        // checked cast, which gives the same result.
        let mut outside = false;
        let nanos: Vec<i64> = micros
            .values()
            .iter()
            .map(|&v| {
                outside |= !(i64::MIN / 1000..=i64::MAX / 1000).contains(&v);
                v.wrapping_mul(1000)
            })
            .collect();
        if outside {
            return Ok(cast_with_options(array, &self.to, &CAST)?);
        }
        let DataType::Timestamp(_, zone) = &self.to else {
            unreachable!("built only for timestamps")
        };
        let nanos = PrimitiveArray::<TimestampNanosecondType>::new(
            ScalarBuffer::from(nanos),
            micros.nulls().cloned(),
        );
        Ok(Arc::new(nanos.with_timezone_opt(zone.clone())))
    }
}

impl fmt::Display for MicrosToNanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CAST({} AS {})", self.input, self.to)
    }
}

impl PhysicalExpr for MicrosToNanos {
    fn return_field(&self, input_schema: &Schema) -> Result<FieldRef> {
        let field = self.input.return_field(input_schema)?;
        Ok(Arc::new(
            field.as_ref().clone().with_data_type(self.to.clone()),
        ))
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        match self.input.evaluate(batch)? {
            ColumnarValue::Array(array) => Ok(ColumnarValue::Array(self.widen(&array)?)),
            scalar => scalar.cast_to(&self.to, Some(&CAST)),
        }
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        Ok(Arc::new(Self {
            input: Arc::clone(&children[0]),
            to: self.to.clone(),
        }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CAST(")?;
        self.input.fmt_sql(f)?;
        write!(f, " AS {})", self.to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::TimestampMicrosecondArray;
    use arrow::datatypes::Field;
    use datafusion::physical_expr::expressions::Column;

    fn widened(values: Vec<Option<i64>>, zone: Option<&str>) -> Result<ColumnarValue> {
        let micros = TimestampMicrosecondArray::from(values).with_timezone_opt(zone);
        let from = micros.data_type().clone();
        let to = DataType::Timestamp(TimeUnit::Nanosecond, zone.map(Into::into));
        let schema = Arc::new(Schema::new(vec![Field::new("time", from.clone(), true)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(micros)])?;
        let column: Arc<dyn PhysicalExpr> = Arc::new(Column::new("time", 0));
        let expr = MicrosToNanos::between(&column, &from, &to).expect("a widening");
        expr.evaluate(&batch)
    }

    #[test]
    fn times_widen_exactly_as_arrow_casts_them() -> Result<()> {
        let values = vec![Some(1_356_998_400_000_001), None, Some(-5), Some(0)];
        let zone = Some("UTC");
        let ours = widened(values.clone(), zone)?.into_array(4)?;
        let micros = TimestampMicrosecondArray::from(values).with_timezone_opt(zone);
        let to = DataType::Timestamp(TimeUnit::Nanosecond, zone.map(Into::into));
        let arrow = cast_with_options(&micros, &to, &CAST)?;
        assert_eq!(ours.as_ref(), arrow.as_ref());
        Ok(())
    }

    #[test]
    fn a_time_past_what_nanoseconds_hold_is_still_an_error() {
        // Year 294,000: fine in microseconds, past nanoseconds' range.
        let far = 9_223_372_036_854_775;
        let error = widened(vec![Some(0), Some(far + 1)], None).unwrap_err();
        assert!(error.to_string().contains("Overflow"), "{error}");
        assert!(widened(vec![Some(far)], None).is_ok());
    }

    #[test]
    fn only_a_widening_within_one_zone_is_taken() {
        let column: Arc<dyn PhysicalExpr> = Arc::new(Column::new("time", 0));
        let micros = DataType::Timestamp(TimeUnit::Microsecond, None);
        let nanos_utc = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
        assert!(MicrosToNanos::between(&column, &micros, &nanos_utc).is_none());
        assert!(MicrosToNanos::between(&column, &DataType::Int64, &micros).is_none());
    }
}

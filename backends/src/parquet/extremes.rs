//! Chunk statistics of flat numeric columns, computed here instead of by
//! arrow-rs.
//!
//! A row group's minimum and maximum of each column are what lets a scan
//! skip it for a `WHERE`, so every column keeps them. arrow-rs finds them
//! value by value through a comparison that asks the column's logical type
//! and checks for NaN each time: about 15% of the CPU of writing the README's
//! daily rows (docs/benchmarks.md). For a top-level integer or float column
//! whose statistics are per chunk only, the writer turns arrow-rs'
//! statistics off and computes the same ones here over the Arrow buffers, in
//! loops of independent lanes the compiler turns into vector instructions,
//! then puts them into the chunk's metadata before it is appended
//! (`ArrowColumnChunk::close_mut`). Columns with page statistics (the sort
//! columns) keep arrow-rs', which its page index needs.
//!
//! The statistics are the ones arrow-rs writes: nulls and NaN are skipped, a
//! zero minimum is written as -0.0 and a zero maximum as +0.0, a column with
//! no value but nulls or NaN has a null count and no bounds.

use arrow::array::{Array, AsArray, PrimitiveArray};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Float32Type, Float64Type, Int32Type, Int64Type,
    TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::Result;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::schema::types::ColumnPath;

/// Whether the writer computes the statistics of a column of `data_type`
/// itself: the types whose Parquet values are their Arrow values unchanged.
fn computed_here(data_type: &DataType) -> bool {
    use DataType::*;
    matches!(
        data_type,
        Int32 | Int64 | Float32 | Float64 | Date32 | Timestamp(TimeUnit::Millisecond, _)
    ) || matches!(
        data_type,
        Timestamp(TimeUnit::Microsecond | TimeUnit::Nanosecond, _)
    )
}

/// `properties` with arrow-rs' statistics off for the columns of `schema`
/// whose chunk statistics [`Extremes`] computes, and which columns those
/// are (by position in the schema, each a single leaf).
pub(super) fn take_over(
    properties: WriterProperties,
    schema: &arrow::datatypes::Schema,
) -> (WriterProperties, Vec<bool>) {
    let ours: Vec<bool> = schema
        .fields()
        .iter()
        .map(|field| {
            computed_here(field.data_type())
                && properties.statistics_enabled(&ColumnPath::from(field.name().as_str()))
                    == EnabledStatistics::Chunk
        })
        .collect();
    if !ours.contains(&true) {
        return (properties, ours);
    }
    let mut builder = properties.into_builder();
    for (field, ours) in schema.fields().iter().zip(&ours) {
        if *ours {
            builder = builder.set_column_statistics_enabled(
                ColumnPath::from(field.name().as_str()),
                EnabledStatistics::None,
            );
        }
    }
    (builder.build(), ours)
}

/// The smallest and largest value and the null count of one column chunk,
/// gathered batch by batch.
#[derive(Debug, Default)]
pub(super) struct Extremes {
    range: Option<Range>,
    nulls: u64,
}

#[derive(Debug, Clone, Copy)]
enum Range {
    Int32(i32, i32),
    Int64(i64, i64),
    Float(f32, f32),
    Double(f64, f64),
}

impl Extremes {
    /// Takes in one batch's values of the column.
    pub(super) fn add(&mut self, column: &dyn Array) {
        self.nulls += column.null_count() as u64;
        let found = match column.data_type() {
            DataType::Int32 => of::<Int32Type>(column).map(|(a, b)| Range::Int32(a, b)),
            DataType::Date32 => of::<Date32Type>(column).map(|(a, b)| Range::Int32(a, b)),
            DataType::Int64 => of::<Int64Type>(column).map(|(a, b)| Range::Int64(a, b)),
            DataType::Timestamp(TimeUnit::Millisecond, _) => {
                of::<TimestampMillisecondType>(column).map(|(a, b)| Range::Int64(a, b))
            }
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                of::<TimestampMicrosecondType>(column).map(|(a, b)| Range::Int64(a, b))
            }
            DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                of::<TimestampNanosecondType>(column).map(|(a, b)| Range::Int64(a, b))
            }
            DataType::Float32 => of::<Float32Type>(column).map(|(a, b)| Range::Float(a, b)),
            DataType::Float64 => of::<Float64Type>(column).map(|(a, b)| Range::Double(a, b)),
            _ => None,
        };
        self.range = match (self.range, found) {
            (Some(Range::Int32(a, b)), Some(Range::Int32(c, d))) => {
                Some(Range::Int32(a.min(c), b.max(d)))
            }
            (Some(Range::Int64(a, b)), Some(Range::Int64(c, d))) => {
                Some(Range::Int64(a.min(c), b.max(d)))
            }
            (Some(Range::Float(a, b)), Some(Range::Float(c, d))) => {
                Some(Range::Float(a.min(c), b.max(d)))
            }
            (Some(Range::Double(a, b)), Some(Range::Double(c, d))) => {
                Some(Range::Double(a.min(c), b.max(d)))
            }
            (range, None) => range,
            (_, found) => found,
        };
    }

    /// Puts the statistics into the metadata of `close`, a chunk of the
    /// column these were gathered from.
    pub(super) fn into_close(self, close: &mut ColumnCloseResult) -> Result<()> {
        let signed = close.metadata.column_descr().sort_order().is_signed();
        let statistics = self.statistics(signed, physical(&close.metadata));
        close.metadata = close
            .metadata
            .clone()
            .into_builder()
            .set_statistics(statistics)
            .build()?;
        Ok(())
    }

    fn statistics(self, signed: bool, physical: parquet::basic::Type) -> Statistics {
        use parquet::basic::Type;
        // One arm per physical type: arrow-rs' value trait is not public.
        macro_rules! value {
            ($bounds:expr) => {{
                let (min, max) = $bounds.unzip();
                ValueStatistics::new(min, max, None, Some(self.nulls), false)
                    .with_backwards_compatible_min_max(signed)
                    .into()
            }};
        }
        // A zero bound of a float column is written with a fixed sign: -0.0
        // as the minimum, +0.0 as the maximum.
        let range = self.range;
        match physical {
            Type::INT32 => value!(range.and_then(Range::int32)),
            Type::INT64 => value!(range.and_then(Range::int64)),
            Type::FLOAT => {
                let bounds = range.and_then(Range::float).map(|(min, max)| {
                    (
                        if min == 0.0 { -0.0 } else { min },
                        if max == 0.0 { 0.0 } else { max },
                    )
                });
                value!(bounds)
            }
            _ => {
                let bounds = range.and_then(Range::double).map(|(min, max)| {
                    (
                        if min == 0.0 { -0.0 } else { min },
                        if max == 0.0 { 0.0 } else { max },
                    )
                });
                value!(bounds)
            }
        }
    }
}

impl Range {
    fn int32(self) -> Option<(i32, i32)> {
        match self {
            Range::Int32(a, b) => Some((a, b)),
            _ => None,
        }
    }
    fn int64(self) -> Option<(i64, i64)> {
        match self {
            Range::Int64(a, b) => Some((a, b)),
            _ => None,
        }
    }
    fn float(self) -> Option<(f32, f32)> {
        match self {
            Range::Float(a, b) => Some((a, b)),
            _ => None,
        }
    }
    fn double(self) -> Option<(f64, f64)> {
        match self {
            Range::Double(a, b) => Some((a, b)),
            _ => None,
        }
    }
}

fn physical(metadata: &parquet::file::metadata::ColumnChunkMetaData) -> parquet::basic::Type {
    metadata.column_descr().physical_type()
}

/// The smallest and largest of the valid values of `column` (skipping NaN),
/// or `None` when it has none.
fn of<T>(column: &dyn Array) -> Option<(T::Native, T::Native)>
where
    T: ArrowPrimitiveType,
    T::Native: Lanes,
{
    let array: &PrimitiveArray<T> = column.as_primitive();
    let values = array.values();
    let found = match array.nulls() {
        None => T::Native::extremes(values),
        Some(nulls) => nulls
            .valid_slices()
            .filter_map(|(start, end)| T::Native::extremes(&values[start..end]))
            .reduce(|(a, b), (c, d)| (T::Native::lesser(a, c), T::Native::greater(b, d))),
    };
    found
}

/// Values whose extremes fold in independent lanes: min and max are exact
/// whatever the order, so eight running minima and maxima give the same
/// answer as one, and the loop vectorizes.
pub(super) trait Lanes: Copy + PartialOrd {
    /// The value no other is below (above, for `LOW`): what a lane starts at.
    const HIGH: Self;
    const LOW: Self;
    fn lesser(a: Self, b: Self) -> Self;
    fn greater(a: Self, b: Self) -> Self;

    /// `None` when `values` holds nothing but NaN: the lanes then still hold
    /// their starting values, the maximum below the minimum.
    fn extremes(values: &[Self]) -> Option<(Self, Self)> {
        const LANES: usize = 8;
        let mut low = [Self::HIGH; LANES];
        let mut high = [Self::LOW; LANES];
        let mut chunks = values.chunks_exact(LANES);
        for chunk in &mut chunks {
            for lane in 0..LANES {
                low[lane] = Self::lesser(low[lane], chunk[lane]);
                high[lane] = Self::greater(high[lane], chunk[lane]);
            }
        }
        for value in chunks.remainder() {
            low[0] = Self::lesser(low[0], *value);
            high[0] = Self::greater(high[0], *value);
        }
        let min = low.into_iter().reduce(Self::lesser)?;
        let max = high.into_iter().reduce(Self::greater)?;
        (!values.is_empty() && min <= max).then_some((min, max))
    }
}

// Each type's lanes start at the values nothing is above or below. For
// floats those are the infinities, and `min` and `max` return the other
// operand when one is NaN, so NaN never becomes a bound, as in arrow-rs'
// statistics.
macro_rules! lanes {
    ($($t:ty: $high:ident, $low:ident);*) => {$(
        impl Lanes for $t {
            const HIGH: Self = <$t>::$high;
            const LOW: Self = <$t>::$low;
            fn lesser(a: Self, b: Self) -> Self {
                a.min(b)
            }
            fn greater(a: Self, b: Self) -> Self {
                a.max(b)
            }
        }
    )*};
}
lanes!(i32: MAX, MIN; i64: MAX, MIN; f32: INFINITY, NEG_INFINITY; f64: INFINITY, NEG_INFINITY);

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, Date32Array, Float32Array, Float64Array, Int32Array, Int64Array,
        TimestampNanosecondArray,
    };
    use arrow::datatypes::{Field, Schema};
    use bytes::Bytes;
    use parquet::arrow::arrow_writer::compute_leaves;
    use parquet::arrow::ArrowWriter;
    use parquet::file::metadata::ParquetMetaDataReader;
    use parquet::file::properties::{EnabledStatistics, WriterProperties};
    use parquet::file::statistics::Statistics;

    use super::{take_over, Extremes};

    /// The footer's statistics of a one-column file of `parts` (one row
    /// group, each part written as a batch), by arrow-rs or computed here.
    fn footer_statistics(parts: &[ArrayRef], here: bool) -> Statistics {
        let field = Field::new("v", parts[0].data_type().clone(), true);
        let schema = Arc::new(Schema::new(vec![field.clone()]));
        let properties = WriterProperties::builder()
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .build();
        let (properties, marked) = if here {
            take_over(properties, &schema)
        } else {
            (properties, vec![false])
        };
        assert_eq!(marked, vec![here], "{}", parts[0].data_type());
        let (mut file, factory) = ArrowWriter::try_new(Vec::new(), schema, Some(properties))
            .unwrap()
            .into_serialized_writer()
            .unwrap();
        let mut writers = factory.create_column_writers(0).unwrap();
        let mut extremes = Extremes::default();
        for part in parts {
            extremes.add(part.as_ref());
            for leaf in compute_leaves(&field, part).unwrap() {
                writers[0].write(&leaf).unwrap();
            }
        }
        let mut chunk = writers.pop().unwrap().close().unwrap();
        if here {
            extremes.into_close(chunk.close_mut()).unwrap();
        }
        let mut row_group = file.next_row_group().unwrap();
        chunk.append_to_row_group(&mut row_group).unwrap();
        row_group.close().unwrap();
        file.finish().unwrap();
        let bytes = Bytes::from(std::mem::take(file.inner_mut()));
        let metadata = ParquetMetaDataReader::new()
            .parse_and_finish(&bytes)
            .unwrap();
        metadata
            .row_group(0)
            .column(0)
            .statistics()
            .unwrap()
            .clone()
    }

    fn same_as_arrow_rs(parts: Vec<ArrayRef>) {
        let theirs = footer_statistics(&parts, false);
        let ours = footer_statistics(&parts, true);
        assert_eq!(ours, theirs, "{:?}", parts);
        // Bytes too: -0.0 equals +0.0 as a float, not as a bound.
        assert_eq!(ours.min_bytes_opt(), theirs.min_bytes_opt(), "{:?}", parts);
        assert_eq!(ours.max_bytes_opt(), theirs.max_bytes_opt(), "{:?}", parts);
    }

    #[test]
    fn statistics_computed_here_are_the_ones_arrow_rs_writes() {
        let nan = f64::NAN;
        let doubles =
            |values: Vec<Option<f64>>| -> ArrayRef { Arc::new(Float64Array::from(values)) };
        // Long enough for the lanes and a remainder, with NaN, signed zeros,
        // infinities and nulls in every place a loop could miss them.
        let mut long: Vec<Option<f64>> = (0..37).map(|i| Some(i as f64 * 0.5 - 3.0)).collect();
        long[0] = Some(nan);
        long[5] = None;
        long[36] = Some(-7.25);
        long[17] = Some(nan);
        same_as_arrow_rs(vec![doubles(long.clone())]);
        same_as_arrow_rs(vec![
            doubles(long[..19].to_vec()),
            doubles(long[19..].to_vec()),
        ]);
        same_as_arrow_rs(vec![doubles(vec![Some(0.0), Some(-0.0), Some(0.0)])]);
        same_as_arrow_rs(vec![doubles(vec![Some(-0.0), Some(2.0)])]);
        same_as_arrow_rs(vec![doubles(vec![Some(-1.0), Some(0.0)])]);
        same_as_arrow_rs(vec![doubles(vec![
            Some(f64::INFINITY),
            None,
            Some(f64::NEG_INFINITY),
        ])]);
        same_as_arrow_rs(vec![doubles(vec![Some(nan); 11])]);
        same_as_arrow_rs(vec![doubles(vec![None; 9])]);
        same_as_arrow_rs(vec![
            doubles(vec![None, Some(nan)]),
            doubles(vec![Some(4.5)]),
        ]);
        let floats: Vec<Option<f32>> = long.iter().map(|v| v.map(|v| v as f32)).collect();
        same_as_arrow_rs(vec![Arc::new(Float32Array::from(floats))]);
        same_as_arrow_rs(vec![Arc::new(Float32Array::from(vec![0.0f32, -0.0]))]);

        let mut ints: Vec<Option<i64>> = (0..29).map(|i| Some(1000 - i * i)).collect();
        ints[3] = None;
        ints[28] = Some(i64::MIN);
        same_as_arrow_rs(vec![Arc::new(Int64Array::from(ints.clone()))]);
        same_as_arrow_rs(vec![Arc::new(Int64Array::from(vec![i64::MAX]))]);
        same_as_arrow_rs(vec![Arc::new(Int64Array::from(vec![None::<i64>, None]))]);
        let small: Vec<Option<i32>> = ints.iter().map(|v| v.map(|v| v as i32)).collect();
        same_as_arrow_rs(vec![Arc::new(Int32Array::from(small.clone()))]);
        same_as_arrow_rs(vec![Arc::new(Date32Array::from(small))]);
        let times = TimestampNanosecondArray::from(ints).with_timezone("UTC");
        same_as_arrow_rs(vec![Arc::new(times)]);
    }

    #[test]
    fn page_statistics_and_other_types_stay_with_arrow_rs() {
        let schema = Schema::new(vec![
            Field::new("time", arrow::datatypes::DataType::Int64, false),
            Field::new("air", arrow::datatypes::DataType::Float64, true),
            Field::new("name", arrow::datatypes::DataType::Utf8, true),
        ]);
        let properties = WriterProperties::builder()
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_column_statistics_enabled("time".into(), EnabledStatistics::Page)
            .build();
        let (properties, marked) = take_over(properties, &schema);
        assert_eq!(marked, vec![false, true, false]);
        let enabled = |name: &str| properties.statistics_enabled(&name.into());
        assert_eq!(enabled("time"), EnabledStatistics::Page);
        assert_eq!(enabled("air"), EnabledStatistics::None);
        assert_eq!(enabled("name"), EnabledStatistics::Chunk);
    }
}

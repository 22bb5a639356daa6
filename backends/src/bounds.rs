//! Comparisons with the column an entry's rows are sorted by, as row ranges.
//!
//! Over rows sorted ascending with nulls last, the rows that `column < v`
//! (or `<=`) keeps are a prefix, and the rows `column > v` (or `>=`) keeps
//! are a suffix, so a conjunction of such comparisons keeps one run of rows:
//! from the longest prefix its lower bounds exclude to the shortest prefix
//! its upper bounds keep. A format that can find those prefix lengths in a
//! file (Parquet, from statistics and a page or two of the column) reads
//! exactly that run, and the comparisons need not be evaluated per row.
//!
//! Only literal comparisons of the same type as the column count, and only
//! over integers, dates and timestamps: statistics of floats disagree with
//! the sort about NaN and signed zeros, and a cast literal could round.

use arrow::array::{Array, ArrayRef, BooleanArray};
use arrow::compute::kernels::cmp;
use arrow::datatypes::{DataType, Schema};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

/// A predicate that holds for a prefix of rows sorted ascending with nulls
/// last: the rows the prefix is made of are those it keeps.
#[derive(Debug, Clone, PartialEq)]
pub enum Prefix {
    /// `column < value`
    Below(ScalarValue),
    /// `column <= value`
    AtMost(ScalarValue),
    /// `column IS NOT NULL`: every row but the trailing nulls.
    NotNull,
}

impl Prefix {
    /// Whether the predicate holds for each of `values` read from
    /// statistics, where a null means the statistic is unknown (`None`).
    pub fn decide(&self, values: &ArrayRef) -> Result<Vec<Option<bool>>> {
        match self.compare(values)? {
            Some(holds) => Ok(holds.iter().collect()),
            None => Ok((0..values.len())
                .map(|i| values.is_valid(i).then_some(true))
                .collect()),
        }
    }

    /// How many of `values`, decoded rows in sorted order, the predicate
    /// keeps: its prefix's length there (a null never holds).
    pub fn count(&self, values: &ArrayRef) -> Result<usize> {
        Ok(match self.compare(values)? {
            Some(holds) => holds.true_count(),
            None => values.len() - values.null_count(),
        })
    }

    /// The comparison of each value, or `None` for [`Prefix::NotNull`].
    fn compare(&self, values: &ArrayRef) -> Result<Option<BooleanArray>> {
        let (value, inclusive) = match self {
            Prefix::Below(value) => (value, false),
            Prefix::AtMost(value) => (value, true),
            Prefix::NotNull => return Ok(None),
        };
        let value = value.to_scalar()?;
        Ok(Some(if inclusive {
            cmp::lt_eq(values, &value)?
        } else {
            cmp::lt(values, &value)?
        }))
    }
}

/// The run of sorted rows a conjunction of comparisons keeps: rows from the
/// greatest of `starts` (prefix lengths) to the least of `ends`.
#[derive(Debug, Clone, PartialEq)]
pub struct Bounds {
    pub column: String,
    /// The column's type, which every bound's value has.
    pub data_type: DataType,
    /// Each lower bound excludes the rows of its prefix.
    pub starts: Vec<Prefix>,
    /// Each upper bound keeps the rows of its prefix; with none, the rows
    /// that are not null.
    pub ends: Vec<Prefix>,
    /// Whether the rows ascend only in files that say so in their own
    /// metadata (files of several, whose order an entry's log records but
    /// a file of another writer may not keep): a format then reads any
    /// other file whole, and the scan applies the bounds above it.
    pub marked_files_only: bool,
}

impl Bounds {
    /// The comparisons among `filters` of `column` (the leading sort column
    /// of `schema`) with a literal, if there are any.
    pub fn from_filters(column: &str, schema: &Schema, filters: &[Expr]) -> Option<Bounds> {
        let mut bounds = Bounds {
            column: column.to_string(),
            data_type: schema.field_with_name(column).ok()?.data_type().clone(),
            starts: Vec::new(),
            ends: Vec::new(),
            marked_files_only: false,
        };
        for filter in filters {
            match comparison(column, schema, filter) {
                Side::Start(prefix) => bounds.starts.push(prefix),
                Side::End(prefix) => bounds.ends.push(prefix),
                Side::Other => {}
            }
        }
        (!bounds.starts.is_empty() || !bounds.ends.is_empty()).then_some(bounds)
    }

    /// These bounds, holding only in files that say their rows ascend.
    pub fn in_marked_files(self) -> Bounds {
        Bounds {
            marked_files_only: true,
            ..self
        }
    }

    /// Whether `filter` is a comparison these bounds can apply exactly.
    pub fn applies(column: &str, schema: &Schema, filter: &Expr) -> bool {
        matches!(
            comparison(column, schema, filter),
            Side::Start(_) | Side::End(_)
        )
    }

    /// The upper bounds, or the rows that are not null without one.
    pub fn end_prefixes(&self) -> Vec<Prefix> {
        if self.ends.is_empty() {
            vec![Prefix::NotNull]
        } else {
            self.ends.clone()
        }
    }
}

enum Side {
    Start(Prefix),
    End(Prefix),
    /// A filter of another shape, left to the scan's pruning and to the
    /// filter above it.
    Other,
}

/// `filter` as a bound on `column`, if it is one.
fn comparison(column: &str, schema: &Schema, filter: &Expr) -> Side {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = filter else {
        return Side::Other;
    };
    let (value, op) = match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), Expr::Literal(value, _)) if c.name == column => (value, *op),
        (Expr::Literal(value, _), Expr::Column(c)) if c.name == column => match op.swap() {
            Some(op) => (value, op),
            None => return Side::Other,
        },
        _ => return Side::Other,
    };
    let Ok(field) = schema.field_with_name(column) else {
        return Side::Other;
    };
    if value.is_null() || &value.data_type() != field.data_type() || !orderable(field.data_type()) {
        return Side::Other;
    }
    let value = value.clone();
    match op {
        Operator::GtEq => Side::Start(Prefix::Below(value)),
        Operator::Gt => Side::Start(Prefix::AtMost(value)),
        Operator::Lt => Side::End(Prefix::Below(value)),
        Operator::LtEq => Side::End(Prefix::AtMost(value)),
        _ => Side::Other,
    }
}

/// Types whose Parquet statistics order values as the sort does.
fn orderable(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Date32
            | DataType::Date64
            | DataType::Timestamp(_, _)
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::TimestampSecondArray;
    use arrow::datatypes::{Field, TimeUnit};
    use datafusion::logical_expr::{col, lit};

    use super::*;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("time", DataType::Timestamp(TimeUnit::Second, None), true),
            Field::new("air", DataType::Float32, true),
        ])
    }

    fn at(seconds: i64) -> Expr {
        lit(ScalarValue::TimestampSecond(Some(seconds), None))
    }

    #[test]
    fn comparisons_of_the_sort_column_become_prefixes() {
        let filters = [
            col("time").gt_eq(at(10)),
            at(20).gt(col("time")),
            col("air").gt(lit(1.0f32)),
        ];
        let bounds = Bounds::from_filters("time", &schema(), &filters).unwrap();
        let ten = ScalarValue::TimestampSecond(Some(10), None);
        let twenty = ScalarValue::TimestampSecond(Some(20), None);
        assert_eq!(bounds.starts, vec![Prefix::Below(ten)]);
        assert_eq!(bounds.ends, vec![Prefix::Below(twenty)]);
        assert!(!Bounds::applies("time", &schema(), &filters[2]));
        // A literal of another type could have been rounded by a cast.
        let nanos = lit(ScalarValue::TimestampNanosecond(Some(10), None));
        assert!(!Bounds::applies("time", &schema(), &col("time").gt(nanos)));
    }

    #[test]
    fn prefixes_count_the_rows_they_keep_and_no_nulls() {
        let values: ArrayRef = Arc::new(TimestampSecondArray::from(vec![
            Some(1),
            Some(2),
            Some(2),
            Some(3),
            None,
        ]));
        let two = ScalarValue::TimestampSecond(Some(2), None);
        assert_eq!(Prefix::Below(two.clone()).count(&values).unwrap(), 1);
        assert_eq!(Prefix::AtMost(two.clone()).count(&values).unwrap(), 3);
        assert_eq!(Prefix::NotNull.count(&values).unwrap(), 4);
        // From statistics, a null is an unknown statistic.
        assert_eq!(
            Prefix::Below(two).decide(&values).unwrap(),
            vec![Some(true), Some(false), Some(false), Some(false), None]
        );
        assert_eq!(Prefix::NotNull.decide(&values).unwrap()[4], None);
    }
}

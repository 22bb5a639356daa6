//! Bound parameters: a statement's `?` or `$1` placeholders, and the values
//! for them, from a Rust caller ([`crate::Session::sql_with_params`]) or a
//! Flight SQL client (a parameter batch, one row per execution).
//!
//! A cached call's arguments pick the entry, so they must be known when
//! the call is planned: DataFusion's own binding (`with_param_values`)
//! comes after planning, too late for a table function's arguments. The
//! values are put into the parsed statement instead, each as a literal node
//! of the syntax tree, and the tree is planned as it is: no value is ever
//! turned into SQL text and parsed, so a value holding quotes or SQL stays
//! a value. Text, numbers and booleans become literals of their kind;
//! dates and timestamps become text literals, which a cached function's
//! `TIMESTAMP` parameter and DataFusion's comparisons take as they take
//! `'2013-01-01'` written in the SQL.

use std::ops::ControlFlow;

use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::sql::parser::Statement;
use datafusion::sql::sqlparser::ast::{visit_expressions, visit_expressions_mut, Expr, Value};

/// The placeholders of `statement`, in the order they are written.
pub fn placeholders(statement: &Statement) -> Vec<String> {
    let mut found = Vec::new();
    if let Statement::Statement(inner) = statement {
        let _ = visit_expressions(inner.as_ref(), |expr| {
            if let Expr::Value(value) = expr {
                if let Value::Placeholder(name) = &value.value {
                    found.push(name.clone());
                }
            }
            ControlFlow::<()>::Continue(())
        });
    }
    found
}

/// `statement` with its placeholders replaced by `values`: `?` take them
/// in order, `$n` the n-th.
pub fn bind(statement: &Statement, values: &[ScalarValue]) -> Result<Statement> {
    let wanted = placeholders(statement);
    let numbered = wanted.iter().any(|p| p.starts_with('$'));
    let count = match numbered {
        true => wanted
            .iter()
            .filter_map(|p| index_of(p))
            .max()
            .map_or(0, |i| i + 1),
        false => wanted.len(),
    };
    if count != values.len() {
        return Err(DataFusionError::Plan(format!(
            "the statement has {count} parameter(s) and {} value(s) were given; give one \
             value per placeholder",
            values.len()
        )));
    }
    let mut bound = statement.clone();
    let Statement::Statement(inner) = &mut bound else {
        return Ok(bound);
    };
    let mut next = 0;
    let mut failed = None;
    let _ = visit_expressions_mut(inner.as_mut(), |expr| {
        let Expr::Value(value) = expr else {
            return ControlFlow::Continue(());
        };
        let Value::Placeholder(name) = &value.value else {
            return ControlFlow::Continue(());
        };
        let index = match index_of(name) {
            Some(i) => i,
            None => {
                next += 1;
                next - 1
            }
        };
        match literal(&values[index]) {
            Ok(literal) => {
                value.value = literal;
                ControlFlow::Continue(())
            }
            Err(why) => {
                failed = Some(format!("parameter {} ({name}): {why}", index + 1));
                ControlFlow::Break(())
            }
        }
    });
    match failed {
        Some(why) => Err(DataFusionError::Plan(why)),
        None => Ok(bound),
    }
}

/// The 0-based column of a `$n` placeholder.
fn index_of(placeholder: &str) -> Option<usize> {
    let n: usize = placeholder.strip_prefix('$')?.parse().ok()?;
    n.checked_sub(1)
}

/// `value` as a literal of the syntax tree.
fn literal(value: &ScalarValue) -> Result<Value, String> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let text = || -> Result<String, String> {
        let array = value.to_array().map_err(|e| e.to_string())?;
        let options = FormatOptions::default();
        let formatter = ArrayFormatter::try_new(&array, &options).map_err(|e| e.to_string())?;
        Ok(formatter.value(0).to_string())
    };
    match value {
        ScalarValue::Boolean(Some(b)) => Ok(Value::Boolean(*b)),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Ok(Value::SingleQuotedString(s.clone())),
        v => match v.data_type() {
            t if t.is_integer()
                || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) =>
            {
                Ok(Value::Number(text()?, false))
            }
            t if t.is_floating() => {
                let number = text()?;
                match number.parse::<f64>() {
                    Ok(v) if v.is_finite() => Ok(Value::Number(number, false)),
                    _ => Err(format!("{number} is not a finite number")),
                }
            }
            t if t.is_temporal() => Ok(Value::SingleQuotedString(text()?)),
            other => Err(format!(
                "values of type {other} cannot be bound; give text, a number, a boolean, a date \
                 or a timestamp"
            )),
        },
    }
}

/// Row `row` of a parameter batch's columns, as values.
pub fn row(columns: &[arrow::array::ArrayRef], row: usize) -> Result<Vec<ScalarValue>> {
    columns
        .iter()
        .map(|column| ScalarValue::try_from_array(column, row))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
    use datafusion::config::Dialect;
    use datafusion::prelude::SessionContext;

    use super::*;

    fn parse(sql: &str) -> Statement {
        let state = SessionContext::new().state();
        state.sql_to_statement(sql, &Dialect::Generic).unwrap()
    }

    #[test]
    fn values_become_literals_of_the_tree_never_text() {
        let statement = parse("SELECT * FROM f(?, ?, n => ?) WHERE label = ?");
        assert_eq!(placeholders(&statement).len(), 4);
        let params = RecordBatch::try_from_iter([
            (
                "a",
                Arc::new(TimestampMicrosecondArray::from(vec![1_356_998_400_000_000])) as _,
            ),
            ("b", Arc::new(StringArray::from(vec!["2014-01-01"])) as _),
            ("c", Arc::new(Int64Array::from(vec![7])) as _),
            (
                "d",
                Arc::new(StringArray::from(vec!["x'); DROP TABLE t; --"])) as _,
            ),
        ])
        .unwrap();
        let bound = bind(&statement, &row(params.columns(), 0).unwrap()).unwrap();
        assert!(placeholders(&bound).is_empty());
        let shown = bound.to_string();
        assert!(
            shown.contains("f('2013-01-01T00:00:00', '2014-01-01', n => 7)"),
            "{shown}"
        );
        // The value is one string literal of the tree (shown quoted).
        assert!(
            shown.contains("label = 'x''); DROP TABLE t; --'"),
            "{shown}"
        );
        let error = bind(&statement, &row(&params.columns()[..2], 0).unwrap()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("has 4 parameter(s) and 2 value(s)"),
            "{error}"
        );
    }

    #[test]
    fn numbered_placeholders_take_their_column() {
        let statement = parse("SELECT $2, $1, $2");
        let values = [ScalarValue::Int64(Some(1)), ScalarValue::Int64(Some(2))];
        assert_eq!(
            bind(&statement, &values).unwrap().to_string(),
            "SELECT 2, 1, 2"
        );
    }
}

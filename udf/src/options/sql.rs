//! Option values as `WITH (...)` writes them, read from the parsed SQL
//! expression: each reader takes the expression forms its kind of value
//! has, and names the option and the accepted form when given another.

use std::collections::BTreeMap;
use std::time::Duration;

use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr as SqlExpr, UnaryOperator, Value as SqlValue,
};

use crate::grid::ChunkByArg;
use crate::timeseries::parse_settle;
use crate::value::Value;

fn wrong(function: &str, option: &str, takes: &str, got: &SqlExpr) -> DataFusionError {
    DataFusionError::Plan(format!(
        "{function}: option {option} takes {takes}; got {got}"
    ))
}

/// A name or a text: `time`, `'0.1.0'`, `2`.
pub(super) fn text(function: &str, option: &str, expr: &SqlExpr) -> Result<String> {
    match expr {
        SqlExpr::Identifier(ident) => Ok(ident.value.clone()),
        SqlExpr::Nested(inner) => text(function, option, inner),
        SqlExpr::Value(v) => match &v.value {
            SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => Ok(s.clone()),
            SqlValue::Number(n, _) => Ok(n.clone()),
            _ => Err(wrong(function, option, "a name or a quoted text", expr)),
        },
        _ => Err(wrong(function, option, "a name or a quoted text", expr)),
    }
}

/// Names, lowercased: `(a, b)`, `a`, or one text listing them, `'a, b'`.
pub(super) fn names(function: &str, option: &str, expr: &SqlExpr) -> Result<Vec<String>> {
    let items: Vec<&SqlExpr> = match expr {
        SqlExpr::Tuple(items) => items.iter().collect(),
        SqlExpr::Nested(inner) => vec![inner.as_ref()],
        other => vec![other],
    };
    let mut names = Vec::new();
    for item in items {
        let name = text(function, option, item)
            .map_err(|_| wrong(function, option, "names, as (a, b)", expr))?;
        // A quoted list, as Python spells one in a file.
        names.extend(
            name.split(',')
                .map(|n| n.trim().to_ascii_lowercase())
                .filter(|n| !n.is_empty()),
        );
    }
    Ok(names)
}

/// `true` or `false`, bare or quoted.
pub(super) fn flag(function: &str, option: &str, expr: &SqlExpr) -> Result<bool> {
    let given = match expr {
        SqlExpr::Value(v) => match &v.value {
            SqlValue::Boolean(b) => return Ok(*b),
            SqlValue::SingleQuotedString(s) => s.to_ascii_lowercase(),
            _ => String::new(),
        },
        SqlExpr::Identifier(ident) => ident.value.to_ascii_lowercase(),
        _ => String::new(),
    };
    match given.as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(wrong(function, option, "true or false", expr)),
    }
}

/// A length of time: `'2 days'`, or `INTERVAL '2 days'` / `INTERVAL '2' DAY`.
pub(super) fn duration(function: &str, expr: &SqlExpr) -> Result<Duration> {
    match expr {
        SqlExpr::Interval(interval) => {
            let amount = text(function, "settle", &interval.value)?;
            let spelled = match &interval.leading_field {
                Some(unit) => format!("{amount} {unit}"),
                None => amount,
            };
            parse_settle(function, &spelled)
        }
        other => parse_settle(function, &text(function, "settle", other)?),
    }
}

/// `(dim = n, ...)`: a positive length per dimension.
pub(super) fn lengths(
    function: &str,
    option: &str,
    expr: &SqlExpr,
) -> Result<BTreeMap<String, u64>> {
    let takes = "dimension = length items, as (time = 365, lat = 30)";
    let items: Vec<&SqlExpr> = match expr {
        SqlExpr::Tuple(items) => items.iter().collect(),
        SqlExpr::Nested(inner) => vec![inner.as_ref()],
        other => vec![other],
    };
    let mut lengths = BTreeMap::new();
    for item in items {
        let (dimension, length) =
            equality(item).ok_or_else(|| wrong(function, option, takes, item))?;
        match literal_scalar(length) {
            Some(ScalarValue::Int64(Some(n))) if n > 0 => {
                lengths.insert(dimension, n as u64);
            }
            _ => return Err(wrong(function, option, takes, item)),
        }
    }
    Ok(lengths)
}

/// `name = <expr>`, with the name lowercased.
fn equality(expr: &SqlExpr) -> Option<(String, &SqlExpr)> {
    match expr {
        SqlExpr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => match left.as_ref() {
            SqlExpr::Identifier(name) => Some((name.value.to_ascii_lowercase(), right)),
            _ => None,
        },
        _ => None,
    }
}

/// A literal as an argument value.
fn literal_value(expr: &SqlExpr) -> Option<Value> {
    Some(match literal_scalar(expr)? {
        ScalarValue::Int64(Some(i)) => Value::Int(i),
        ScalarValue::Float64(Some(f)) => Value::Float(f),
        ScalarValue::Boolean(Some(b)) => Value::Bool(b),
        ScalarValue::Utf8(Some(s)) => Value::String(s),
        _ => Value::Null,
    })
}

/// Any of these conditions; each a conjunction of "argument is one of these
/// values".
pub(super) type Conditions = Vec<Vec<(String, Vec<Value>)>>;

/// `a = 1 OR a IN (2, 3) AND b = 'x'` as conditions, any of which
/// disables the cache.
pub(super) fn disable_conditions(function: &str, expr: &SqlExpr) -> Result<Conditions> {
    let wrong = |part: &SqlExpr| -> DataFusionError {
        DataFusionError::Plan(format!(
            "{function}: cache_disable_if takes conditions such as (days = 1 OR days IN (2, 3) \
             AND region = 'x'): comparisons of an argument with literals, joined by AND and \
             OR; got {part}"
        ))
    };
    let literal = |e: &SqlExpr| literal_value(e).ok_or_else(|| wrong(e));
    match expr {
        SqlExpr::Nested(inner) => disable_conditions(function, inner),
        SqlExpr::BinaryOp {
            left,
            op: BinaryOperator::Or,
            right,
        } => {
            let mut any = disable_conditions(function, left)?;
            any.extend(disable_conditions(function, right)?);
            Ok(any)
        }
        SqlExpr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            let (left, right) = (
                disable_conditions(function, left)?,
                disable_conditions(function, right)?,
            );
            // (a OR b) AND c is (a AND c) OR (b AND c).
            let mut any = Vec::new();
            for l in &left {
                for r in &right {
                    any.push(l.iter().chain(r).cloned().collect());
                }
            }
            Ok(any)
        }
        SqlExpr::BinaryOp {
            op: BinaryOperator::Eq,
            right,
            ..
        } => match equality(expr) {
            Some((arg, _)) => Ok(vec![vec![(arg, vec![literal(right)?])]]),
            None => Err(wrong(expr)),
        },
        SqlExpr::InList {
            expr: tested,
            list,
            negated: false,
        } => match tested.as_ref() {
            SqlExpr::Identifier(arg) => Ok(vec![vec![(
                arg.value.to_ascii_lowercase(),
                list.iter().map(literal).collect::<Result<_>>()?,
            )]]),
            other => Err(wrong(other)),
        },
        other => Err(wrong(other)),
    }
}

/// `chunk_by_arg`'s rules: one `(arg = value, dim = n, ...)`, or several
/// in parentheses.
pub(super) fn chunk_rules(function: &str, expr: &SqlExpr) -> Result<Vec<ChunkByArg>> {
    let wrong = |part: &SqlExpr| -> DataFusionError {
        DataFusionError::Plan(format!(
            "{function}: a chunk_by_arg rule is the argument and its value, then chunk lengths, \
             as in (agg_days = 7, time = 52); got {part}"
        ))
    };
    let items = match expr {
        SqlExpr::Nested(inner) => return chunk_rules(function, inner),
        SqlExpr::Tuple(items) => items,
        other => return Err(wrong(other)),
    };
    let is_rule = |e: &SqlExpr| matches!(e, SqlExpr::Tuple(_) | SqlExpr::Nested(_));
    if items.iter().all(is_rule) {
        let rules = items.iter().map(|rule| chunk_rules(function, rule));
        return Ok(rules.collect::<Result<Vec<_>>>()?.concat());
    }
    let Some((first, rest)) = items.split_first() else {
        return Err(wrong(expr));
    };
    let (arg, value) = equality(first).ok_or_else(|| wrong(first))?;
    let value = match literal_value(value) {
        Some(Value::Null) | None => return Err(wrong(value)),
        Some(value) => value,
    };
    let mut chunking = BTreeMap::new();
    for item in rest {
        let (dimension, length) = equality(item).ok_or_else(|| wrong(item))?;
        match literal_scalar(length) {
            Some(ScalarValue::Int64(Some(n))) if n > 0 => {
                chunking.insert(dimension, n as u64);
            }
            _ => return Err(wrong(item)),
        }
    }
    Ok(vec![ChunkByArg {
        arg,
        value,
        chunking,
    }])
}

/// A literal as a scalar: a number, a quoted text, a boolean or NULL,
/// negated numbers included.
pub(crate) fn literal_scalar(expr: &SqlExpr) -> Option<ScalarValue> {
    match expr {
        SqlExpr::Value(v) => match &v.value {
            SqlValue::Number(n, _) => Some(match n.parse::<i64>() {
                Ok(i) => ScalarValue::Int64(Some(i)),
                Err(_) => ScalarValue::Float64(Some(n.parse().ok()?)),
            }),
            SqlValue::SingleQuotedString(s) => Some(ScalarValue::Utf8(Some(s.clone()))),
            SqlValue::Boolean(b) => Some(ScalarValue::Boolean(Some(*b))),
            SqlValue::Null => Some(ScalarValue::Null),
            _ => None,
        },
        SqlExpr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match literal_scalar(expr)? {
            ScalarValue::Int64(Some(i)) => Some(ScalarValue::Int64(Some(-i))),
            ScalarValue::Float64(Some(f)) => Some(ScalarValue::Float64(Some(-f))),
            _ => None,
        },
        _ => None,
    }
}

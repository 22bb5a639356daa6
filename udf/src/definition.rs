//! `CREATE CACHED FUNCTION`: cached functions defined in SQL.
//!
//! ```sql
//! CREATE [OR REPLACE] CACHED FUNCTION name(
//!     param TYPE [DEFAULT literal], ...
//! )
//! [WITH (cache_args = (p1, p2), version = '0.1.0', timeseries = 'time',
//!        coverage = 'window', settle = '2 days', namespace = 'x',
//!        backend = 'parquet', storage_backend = 'arrow',
//!        memoize = true, cache = false, fail_if_no_cache = true, exact = true,
//!        cache_disable_if = (p1 = 1 OR p1 IN (2, 3) AND p2 = 'x'),
//!        dimensions = (time, lat, lon), chunking = (time = 365, lat = 30),
//!        chunk_by_arg = ((p1 = 7, time = 52), (p1 = 1, time = 365)),
//!        upsert_keys = (time, station), order_by = (time, station))]
//! AS <query>
//! ```
//!
//! The body's `$param` placeholders are bound at each call by
//! [`crate::sql_body`]. Parsing checks that every placeholder names a
//! parameter; building plans the body once to learn the result schema.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::common::{plan_err, DataFusionError, Result, ScalarValue};
use datafusion::execution::context::SessionState;
use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, UnaryOperator, Value as SqlValue};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::args::Args;
use crate::function::{CachedFunction, ChunkByArg, CoverageKind, Grid, Param};
use crate::sql_body::SqlBody;
use crate::timeseries::parse_settle;
use crate::value::{ParamType, Value};

/// A parsed `CREATE CACHED FUNCTION` statement.
#[derive(Debug, Clone)]
pub struct CreateCachedFunction {
    pub or_replace: bool,
    pub name: String,
    pub params: Vec<Param>,
    pub cache_args: Vec<String>,
    pub version: Option<String>,
    pub namespace: Option<String>,
    pub timeseries: Option<String>,
    /// `coverage = 'full' | 'window'`; when not given, the body decides
    /// (see [`crate::timeseries::check`]).
    pub coverage: Option<CoverageKind>,
    /// `settle = '2 days'`.
    pub settle: Option<std::time::Duration>,
    /// `exact = true`: refuse to store values the backend would change.
    pub exact: bool,
    /// The backend named in `WITH (backend = ...)`; checked when the
    /// function is registered, against the engine's backends.
    pub backend: Option<String>,
    pub storage_backend: Option<String>,
    pub memoize: bool,
    pub cache: bool,
    pub fail_if_no_cache: bool,
    /// `cache_disable_if`: any of these conditions, each a conjunction of
    /// "argument is one of these values".
    pub disable_if: Conditions,
    pub grid: Grid,
    pub upsert_keys: Vec<String>,
    pub order_by: Vec<String>,
    pub body: SqlBody,
}

impl CreateCachedFunction {
    /// Parses `sql` if it is a `CREATE CACHED FUNCTION` statement; `None`
    /// for any other statement.
    pub fn parse(sql: &str) -> Result<Option<CreateCachedFunction>> {
        let dialect = GenericDialect {};
        let mut parser = Parser::new(&dialect).try_with_sql(sql)?;
        if !parser.parse_keyword(Keyword::CREATE) {
            return Ok(None);
        }
        let or_replace = parser.parse_keywords(&[Keyword::OR, Keyword::REPLACE]);
        if !is_word(&parser.peek_token().token, "CACHED") {
            return Ok(None);
        }
        parser.next_token();
        parser.expect_keyword(Keyword::FUNCTION)?;
        let name = parser.parse_identifier()?.value.to_ascii_lowercase();
        parser.expect_token(&Token::LParen)?;
        let mut params = Vec::new();
        if !parser.consume_token(&Token::RParen) {
            loop {
                let param = parser.parse_identifier()?.value.to_ascii_lowercase();
                let type_name = parser.parse_data_type()?.to_string();
                let ty = ParamType::from_sql_name(&type_name).ok_or_else(|| {
                    DataFusionError::Plan(format!(
                        "{name}: parameter {param} has type {type_name}, which cached functions \
                         do not take; use VARCHAR, BIGINT, DOUBLE, BOOLEAN, DATE or TIMESTAMP"
                    ))
                })?;
                let default = if parser.parse_keyword(Keyword::DEFAULT) {
                    let expr = parser.parse_expr()?;
                    let scalar = literal_scalar(&expr).ok_or_else(|| {
                        DataFusionError::Plan(format!(
                            "{name}: the default of {param} must be a literal, got {expr}"
                        ))
                    })?;
                    Some(ty.coerce(&scalar).map_err(|got| {
                        DataFusionError::Plan(format!(
                            "{name}: the default of {param} must be {}; {got}",
                            ty.describe()
                        ))
                    })?)
                } else {
                    None
                };
                params.push(Param {
                    name: param,
                    ty,
                    default,
                });
                if parser.consume_token(&Token::RParen) {
                    break;
                }
                parser.expect_token(&Token::Comma)?;
            }
        }
        let mut definition = CreateCachedFunction {
            or_replace,
            name: name.clone(),
            params,
            cache_args: Vec::new(),
            version: None,
            namespace: None,
            timeseries: None,
            coverage: None,
            settle: None,
            exact: false,
            backend: None,
            storage_backend: None,
            memoize: false,
            cache: true,
            fail_if_no_cache: false,
            disable_if: Vec::new(),
            grid: Grid::default(),
            upsert_keys: Vec::new(),
            order_by: Vec::new(),
            body: SqlBody::new(*empty_query()?),
        };
        if parser.parse_keyword(Keyword::WITH) {
            parser.expect_token(&Token::LParen)?;
            loop {
                let option = parser.parse_identifier()?.value.to_ascii_lowercase();
                parser.expect_token(&Token::Eq)?;
                // Options whose values are expressions are read from the
                // parsed expression, never through text, so a quoted value
                // holding `=` or `;` stays one value.
                if option == "cache_disable_if" || option == "chunk_by_arg" {
                    let expr = parser.parse_expr()?;
                    match option.as_str() {
                        "cache_disable_if" => {
                            definition.disable_if = disable_conditions(&name, &expr)?
                        }
                        _ => definition
                            .grid
                            .chunk_by_arg
                            .extend(chunk_rules(&name, &expr)?),
                    }
                    if parser.consume_token(&Token::RParen) {
                        break;
                    }
                    parser.expect_token(&Token::Comma)?;
                    continue;
                }
                let values = if parser.consume_token(&Token::LParen) {
                    let mut items = Vec::new();
                    if !parser.consume_token(&Token::RParen) {
                        loop {
                            items.push(option_text(&parser.parse_expr()?)?);
                            if parser.consume_token(&Token::RParen) {
                                break;
                            }
                            parser.expect_token(&Token::Comma)?;
                        }
                    }
                    items
                } else {
                    vec![option_text(&parser.parse_expr()?)?]
                };
                definition.set_option(&option, values)?;
                if parser.consume_token(&Token::RParen) {
                    break;
                }
                parser.expect_token(&Token::Comma)?;
            }
        }
        parser.expect_keyword(Keyword::AS)?;
        let query = parser.parse_query()?;
        let _ = parser.consume_token(&Token::SemiColon);
        if parser.peek_token().token != Token::EOF {
            return plan_err!(
                "{name}: unexpected {} after the function body; end the statement with ';'",
                parser.peek_token().token
            );
        }
        let body = SqlBody::new(*query);
        for placeholder in body.placeholders() {
            if !definition.params.iter().any(|p| p.name == placeholder) {
                return plan_err!(
                    "{name}: the body uses ${placeholder}, which is not a parameter of the function"
                );
            }
        }
        definition.body = body;
        Ok(Some(definition))
    }

    fn set_option(&mut self, option: &str, values: Vec<String>) -> Result<()> {
        let single = |values: &[String]| -> Result<String> {
            match values {
                [one] => Ok(one.clone()),
                _ => plan_err!("{}: option {option} takes one value", self.name),
            }
        };
        match option {
            "cache_args" => self.cache_args = names(&values),
            "version" => self.version = Some(single(&values)?),
            "namespace" => self.namespace = Some(single(&values)?),
            "timeseries" => self.timeseries = Some(single(&values)?),
            "coverage" => self.coverage = Some(CoverageKind::parse(&self.name, &single(&values)?)?),
            "settle" => self.settle = Some(parse_settle(&self.name, &single(&values)?)?),
            "backend" => self.backend = Some(single(&values)?.to_ascii_lowercase()),
            "storage_backend" => self.storage_backend = Some(single(&values)?.to_ascii_lowercase()),
            "memoize" => self.memoize = boolean(&self.name, option, &single(&values)?)?,
            "cache" => self.cache = boolean(&self.name, option, &single(&values)?)?,
            "fail_if_no_cache" => {
                self.fail_if_no_cache = boolean(&self.name, option, &single(&values)?)?
            }
            "exact" => self.exact = boolean(&self.name, option, &single(&values)?)?,
            "dimensions" => {
                self.grid.dimensions = values.iter().map(|v| v.to_ascii_lowercase()).collect()
            }
            "chunking" => self.grid.chunking = sizes(&self.name, option, &values)?,
            "order_by" => self.order_by = names(&values),
            "upsert_keys" => self.upsert_keys = names(&values),
            other => {
                return plan_err!(
                    "{}: unknown option '{other}'; options are cache_args, version, namespace, \
                     timeseries, coverage, settle, backend, storage_backend, memoize, cache, fail_if_no_cache, \
                     exact, cache_disable_if, dimensions, chunking, chunk_by_arg, upsert_keys, order_by",
                    self.name
                )
            }
        }
        Ok(())
    }

    /// Builds the function, planning the body once with sample arguments to
    /// learn its result schema.
    pub async fn build(self, state: &SessionState) -> Result<CachedFunction> {
        let samples: BTreeMap<String, Value> = self
            .params
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.default.clone().unwrap_or_else(|| sample(p.ty)),
                )
            })
            .collect();
        let plan = self
            .body
            .plan(state, &Args::new(samples))
            .await
            .map_err(|e| {
                DataFusionError::Plan(format!("{}: the body does not plan: {e}", self.name))
            })?;
        let schema = Arc::new(plan.schema().as_arrow().clone());
        let mut builder = CachedFunction::builder(self.name)
            .returns(schema)
            .sql_body(self.body);
        for param in self.params {
            builder = match param.default {
                Some(default) => builder.param_default(param.name, param.ty, default),
                None => builder.param(param.name, param.ty),
            };
        }
        builder = builder.cache_args(self.cache_args);
        if let Some(backend) = self.backend {
            builder = builder.backend(backend);
        }
        if let Some(version) = self.version {
            builder = builder.version(version);
        }
        if let Some(namespace) = self.namespace {
            builder = builder.namespace(namespace);
        }
        if let Some(column) = self.timeseries {
            builder = builder.timeseries(column);
        }
        if let Some(coverage) = self.coverage {
            builder = builder.coverage(coverage);
        }
        if let Some(settle) = self.settle {
            builder = builder.settle(settle);
        }
        builder = builder.exact(self.exact);
        if let Some(backend) = self.storage_backend {
            builder = builder.storage_backend(backend);
        }
        if self.memoize {
            builder = builder.memoize();
        }
        if self.fail_if_no_cache {
            builder = builder.fail_if_no_cache();
        }
        for condition in self.disable_if {
            builder = builder.cache_disable_if(condition);
        }
        builder = builder
            .dimensions(self.grid.dimensions)
            .chunking(self.grid.chunking);
        for rule in self.grid.chunk_by_arg {
            builder = builder.chunk_by_arg(rule.arg, rule.value, rule.chunking);
        }
        builder
            .upsert_keys(self.upsert_keys)
            .order_by(self.order_by)
            .cache(self.cache)
            .build()
    }
}

/// Column or parameter names, as `(a, b)` or `'a, b'`, lowercased.
fn names(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .collect()
}

fn boolean(function: &str, option: &str, text: &str) -> Result<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => plan_err!("{function}: option {option} takes true or false, got {text}"),
    }
}

/// `a = 1 OR a IN (2, 3) AND b = 'x'` as conditions, each a conjunction of
/// "argument is one of these values", any of which disables the cache.
/// Any of these conditions; each a conjunction of "argument is one of these
/// values".
type Conditions = Vec<Vec<(String, Vec<Value>)>>;

fn disable_conditions(function: &str, expr: &SqlExpr) -> Result<Conditions> {
    use datafusion::sql::sqlparser::ast::BinaryOperator;
    let wrong = |part: &SqlExpr| -> DataFusionError {
        DataFusionError::Plan(format!(
            "{function}: cache_disable_if takes conditions such as (days = 1 OR days IN (2, 3) \
             AND region = 'x'): comparisons of an argument with literals, joined by AND and \
             OR; got {part}"
        ))
    };
    let literal = |e: &SqlExpr| -> Result<Value> {
        let Some(scalar) = literal_scalar(e) else {
            return Err(wrong(e));
        };
        Ok(match scalar {
            ScalarValue::Int64(Some(i)) => Value::Int(i),
            ScalarValue::Float64(Some(f)) => Value::Float(f),
            ScalarValue::Boolean(Some(b)) => Value::Bool(b),
            ScalarValue::Utf8(Some(s)) => Value::String(s),
            _ => Value::Null,
        })
    };
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
            left,
            op: BinaryOperator::Eq,
            right,
        } => match left.as_ref() {
            SqlExpr::Identifier(arg) => Ok(vec![vec![(
                arg.value.to_ascii_lowercase(),
                vec![literal(right)?],
            )]]),
            other => Err(wrong(other)),
        },
        SqlExpr::InList {
            expr,
            list,
            negated: false,
        } => match expr.as_ref() {
            SqlExpr::Identifier(arg) => Ok(vec![vec![(
                arg.value.to_ascii_lowercase(),
                list.iter().map(literal).collect::<Result<_>>()?,
            )]]),
            other => Err(wrong(other)),
        },
        other => Err(wrong(other)),
    }
}

fn is_word(token: &Token, word: &str) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

fn empty_query() -> Result<Box<datafusion::sql::sqlparser::ast::Query>> {
    Ok(Parser::new(&GenericDialect {})
        .try_with_sql("SELECT 1")?
        .parse_query()?)
}

/// A typed stand-in used only to learn the body's schema.
fn sample(ty: ParamType) -> Value {
    let day = chrono::NaiveDate::from_ymd_opt(2000, 1, 1).expect("valid date");
    match ty {
        ParamType::String => Value::String(String::new()),
        ParamType::Int => Value::Int(1),
        ParamType::Float => Value::Float(1.0),
        ParamType::Bool => Value::Bool(true),
        ParamType::Date => Value::Date(day),
        ParamType::Timestamp => Value::Timestamp {
            at: day.and_time(chrono::NaiveTime::MIN),
            date_only: true,
        },
    }
}

/// `dim = n` items as chunk lengths.
fn sizes(function: &str, option: &str, items: &[String]) -> Result<BTreeMap<String, u64>> {
    let mut sizes = BTreeMap::new();
    for item in items {
        let parsed = item.split_once('=').and_then(|(d, n)| {
            Some((d.trim().to_ascii_lowercase(), n.trim().parse::<u64>().ok()?))
        });
        let Some((dimension, size)) = parsed else {
            return plan_err!(
                "{function}: {option} takes dimension = length items, as in (time = 365, lat = 30); got {item}"
            );
        };
        sizes.insert(dimension, size);
    }
    Ok(sizes)
}

fn option_text(expr: &SqlExpr) -> Result<String> {
    match expr {
        SqlExpr::Identifier(ident) => Ok(ident.value.clone()),
        // `time = 365` in chunking.
        SqlExpr::BinaryOp {
            left,
            op: datafusion::sql::sqlparser::ast::BinaryOperator::Eq,
            right,
        } => Ok(format!("{}={}", option_text(left)?, option_text(right)?)),
        SqlExpr::Nested(inner) => option_text(inner),
        SqlExpr::Value(v) => match &v.value {
            SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => Ok(s.clone()),
            SqlValue::Number(n, _) => Ok(n.clone()),
            SqlValue::Boolean(b) => Ok(b.to_string()),
            other => plan_err!("option values must be names or strings, got {other}"),
        },
        other => plan_err!("option values must be names or strings, got {other}"),
    }
}

/// `chunk_by_arg`'s rules: one `(arg = value, dim = n, ...)`, or several
/// in parentheses.
fn chunk_rules(function: &str, expr: &SqlExpr) -> Result<Vec<ChunkByArg>> {
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
    fn equality<'a>(
        e: &'a SqlExpr,
        wrong: &dyn Fn(&SqlExpr) -> DataFusionError,
    ) -> Result<(String, &'a SqlExpr)> {
        match e {
            SqlExpr::BinaryOp {
                left,
                op: datafusion::sql::sqlparser::ast::BinaryOperator::Eq,
                right,
            } => match left.as_ref() {
                SqlExpr::Identifier(name) => Ok((name.value.to_ascii_lowercase(), right)),
                _ => Err(wrong(e)),
            },
            _ => Err(wrong(e)),
        }
    }
    let Some((first, rest)) = items.split_first() else {
        return Err(wrong(expr));
    };
    let (arg, value) = equality(first, &wrong)?;
    let value = match literal_scalar(value).ok_or_else(|| wrong(value))? {
        ScalarValue::Int64(Some(i)) => Value::Int(i),
        ScalarValue::Float64(Some(f)) => Value::Float(f),
        ScalarValue::Boolean(Some(b)) => Value::Bool(b),
        ScalarValue::Utf8(Some(text)) => Value::String(text),
        _ => return Err(wrong(value)),
    };
    let mut chunking = BTreeMap::new();
    for item in rest {
        let (dimension, length) = equality(item, &wrong)?;
        let length = match literal_scalar(length) {
            Some(ScalarValue::Int64(Some(n))) if n > 0 => n as u64,
            _ => return Err(wrong(item)),
        };
        chunking.insert(dimension, length);
    }
    Ok(vec![ChunkByArg {
        arg,
        value,
        chunking,
    }])
}

/// A literal default as a scalar.
fn literal_scalar(expr: &SqlExpr) -> Option<ScalarValue> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const DEFINITION: &str = "CREATE OR REPLACE CACHED FUNCTION Rolling(
            start_time TIMESTAMP, end_time TIMESTAMP, days INT DEFAULT 7, label VARCHAR DEFAULT 'x')
        WITH (cache_args = (days, label), version = '0.1.0', timeseries = 'time')
        AS SELECT $label AS label, avg(v) OVER (ORDER BY t ROWS BETWEEN $days - 1 PRECEDING AND CURRENT ROW) AS a
           FROM src WHERE t >= $start_time;";

    #[test]
    fn parses_the_definition() {
        let def = CreateCachedFunction::parse(DEFINITION).unwrap().unwrap();
        assert!(def.or_replace);
        assert_eq!(def.name, "rolling");
        assert_eq!(def.cache_args, vec!["days", "label"]);
        assert_eq!(def.version.as_deref(), Some("0.1.0"));
        assert_eq!(def.params[2].default, Some(Value::Int(7)));
        assert!(CreateCachedFunction::parse("SELECT 1").unwrap().is_none());
        assert!(CreateCachedFunction::parse("CREATE TABLE t (a INT)")
            .unwrap()
            .is_none());
    }

    #[test]
    fn substitution_folds_frame_bounds_and_quotes_strings() {
        let def = CreateCachedFunction::parse(DEFINITION).unwrap().unwrap();
        let mut values = BTreeMap::new();
        values.insert("days".to_string(), Value::Int(7));
        values.insert(
            "label".to_string(),
            Value::String("a'); DROP TABLE src; --".into()),
        );
        values.insert(
            "start_time".to_string(),
            ParamType::Timestamp
                .coerce(&ScalarValue::Utf8(Some("2013-01-01".into())))
                .unwrap(),
        );
        let text = def
            .body
            .instantiate(&Args::new(values))
            .unwrap()
            .to_string();
        assert!(
            text.contains("ROWS BETWEEN 6 PRECEDING AND CURRENT ROW"),
            "{text}"
        );
        assert!(
            text.contains("'a''); DROP TABLE src; --' AS label"),
            "{text}"
        );
        assert!(text.contains("TIMESTAMP '2013-01-01T00:00:00'"), "{text}");
    }

    #[test]
    fn unknown_placeholders_and_options_are_refused() {
        let err = CreateCachedFunction::parse("CREATE CACHED FUNCTION f(a INT) AS SELECT $b")
            .unwrap_err()
            .to_string();
        assert!(err.contains("$b"), "{err}");
        let err = CreateCachedFunction::parse(
            "CREATE CACHED FUNCTION f(a INT) WITH (versoin = '1') AS SELECT 1",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown option 'versoin'"), "{err}");
    }

    #[test]
    fn cache_disable_if_reads_as_any_of_conjunctions() {
        let def = CreateCachedFunction::parse(
            "CREATE CACHED FUNCTION f(a INT, b VARCHAR) WITH (cache_args = (a, b), \
             cache_disable_if = (a = 1 OR a IN (2, 3) AND b = 'x'), memoize = true) AS SELECT $a AS a",
        )
        .unwrap()
        .unwrap();
        assert!(def.memoize);
        assert_eq!(
            def.disable_if,
            vec![
                vec![("a".to_string(), vec![Value::Int(1)])],
                vec![
                    ("a".to_string(), vec![Value::Int(2), Value::Int(3)]),
                    ("b".to_string(), vec![Value::String("x".into())])
                ],
            ]
        );
        let err = CreateCachedFunction::parse(
            "CREATE CACHED FUNCTION f(a INT) WITH (cache_disable_if = (a > 1)) AS SELECT 1",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("comparisons of an argument"), "{err}");
    }
}

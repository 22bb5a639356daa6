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

use datafusion::common::{plan_err, DataFusionError, Result};
use datafusion::execution::context::SessionState;
use datafusion::sql::sqlparser::ast::Expr as SqlExpr;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::args::Args;
use crate::function::{CachedFunction, Param};
use crate::options::{literal_scalar, FunctionOptions};
use crate::sql_body::SqlBody;
use crate::value::{ParamType, Value};

/// A parsed `CREATE CACHED FUNCTION` statement.
#[derive(Debug, Clone)]
pub struct CreateCachedFunction {
    pub or_replace: bool,
    pub name: String,
    pub params: Vec<Param>,
    /// What `WITH (...)` set; the backend is checked when the function is
    /// registered, against the engine's backends.
    pub options: FunctionOptions,
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
            options: FunctionOptions::default(),
            body: SqlBody::new(*empty_query()?),
        };
        if parser.parse_keyword(Keyword::WITH) {
            parser.expect_token(&Token::LParen)?;
            loop {
                let option = parser.parse_identifier()?.value.to_ascii_lowercase();
                parser.expect_token(&Token::Eq)?;
                // `()` is an empty list, which is no expression.
                let empty = parser.peek_token().token == Token::LParen
                    && parser.peek_nth_token(1).token == Token::RParen;
                let value = if empty {
                    parser.next_token();
                    parser.next_token();
                    SqlExpr::Tuple(Vec::new())
                } else {
                    parser.parse_expr()?
                };
                definition.options.set_sql(&name, &option, &value)?;
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
            .sql_body(self.body)
            .options(self.options);
        for param in self.params {
            builder = match param.default {
                Some(default) => builder.param_default(param.name, param.ty, default),
                None => builder.param(param.name, param.ty),
            };
        }
        builder.build()
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

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::common::ScalarValue;

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
        assert_eq!(def.options.cache_args, vec!["days", "label"]);
        assert_eq!(def.options.version.as_deref(), Some("0.1.0"));
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
        assert!(def.options.memoize);
        let when: Vec<_> = def
            .options
            .disable_if
            .iter()
            .map(|d| d.when.clone())
            .collect();
        assert_eq!(
            when,
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

//! The body of a cached function defined in SQL.
//!
//! The body refers to parameters as `$param`, anywhere a literal may stand,
//! window frame bounds included (`ROWS BETWEEN $days - 1 PRECEDING AND
//! CURRENT ROW`). At each call the placeholders are replaced in the syntax
//! tree by literal nodes parsed from [`crate::value::Value::sql_literal`], so an argument
//! is always one quoted literal and never SQL text. Integer arithmetic in
//! frame bounds is folded, since DataFusion accepts only literals there.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::common::{plan_err, Result};
use datafusion::execution::context::SessionState;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, BinaryOperator, Expr as SqlExpr, Query, Statement, UnaryOperator,
    Value as SqlValue, WindowFrameBound, WindowType,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::args::Args;

/// A parsed SQL body.
#[derive(Debug, Clone)]
pub struct SqlBody {
    query: Arc<Query>,
}

impl SqlBody {
    /// A body over `query`, whose placeholders must all be parameters.
    pub fn new(query: Query) -> SqlBody {
        SqlBody {
            query: Arc::new(query),
        }
    }

    /// The parameter names the body refers to as `$name`.
    pub fn placeholders(&self) -> Vec<String> {
        placeholders(&self.query)
    }
}

impl SqlBody {
    /// The body as SQL text.
    pub fn text(&self) -> String {
        self.query.to_string()
    }

    /// The relations the body reads from, by name, lower-case.
    pub fn called(&self) -> Vec<String> {
        crate::fingerprint::called(&self.query)
    }

    /// The body with every `$param` replaced by its argument.
    pub fn instantiate(&self, args: &Args) -> Result<Query> {
        let literals: BTreeMap<String, String> = args
            .iter()
            .map(|(name, value)| (name.clone(), value.sql_literal()))
            .collect();
        substitute(&self.query, &literals)
    }

    /// Plans the body for `args` in `state`; no data is read.
    pub async fn plan(
        &self,
        state: &SessionState,
        args: &Args,
    ) -> Result<datafusion::logical_expr::LogicalPlan> {
        let query = self.instantiate(args)?;
        state
            .statement_to_plan(DFStatement::Statement(Box::new(Statement::Query(
                Box::new(query),
            ))))
            .await
    }
}

/// The parameter names a query refers to as `$name`.
fn placeholders(query: &Query) -> Vec<String> {
    let mut names = Vec::new();
    let mut copy = query.clone();
    let _ = visit_expressions_mut(&mut copy, |expr| {
        if let SqlExpr::Value(v) = expr {
            if let SqlValue::Placeholder(p) = &v.value {
                names.push(p.trim_start_matches('$').to_ascii_lowercase());
            }
        }
        ControlFlow::<()>::Continue(())
    });
    names
}

fn substitute(query: &Query, literals: &BTreeMap<String, String>) -> Result<Query> {
    let mut query = query.clone();
    let dialect = GenericDialect {};
    let flow = visit_expressions_mut(&mut query, |expr| {
        if let SqlExpr::Value(v) = expr {
            if let SqlValue::Placeholder(p) = &v.value {
                let name = p.trim_start_matches('$').to_ascii_lowercase();
                let Some(literal) = literals.get(&name) else {
                    return ControlFlow::Break(format!("${name} is not a parameter"));
                };
                match Parser::new(&dialect)
                    .try_with_sql(literal)
                    .and_then(|mut p| p.parse_expr())
                {
                    Ok(parsed) => *expr = parsed,
                    Err(e) => return ControlFlow::Break(e.to_string()),
                }
            }
        }
        if let SqlExpr::Function(function) = expr {
            if let Some(WindowType::WindowSpec(spec)) = &mut function.over {
                if let Some(frame) = &mut spec.window_frame {
                    fold_bound(&mut frame.start_bound);
                    if let Some(end) = &mut frame.end_bound {
                        fold_bound(end);
                    }
                }
            }
        }
        ControlFlow::Continue(())
    });
    if let ControlFlow::Break(reason) = flow {
        return plan_err!("cannot bind the function body: {reason}");
    }
    Ok(query)
}

fn fold_bound(bound: &mut WindowFrameBound) {
    if let WindowFrameBound::Preceding(Some(expr)) | WindowFrameBound::Following(Some(expr)) = bound
    {
        if let Some(n) = fold_integer(expr) {
            let text = n.max(0).to_string();
            if let Ok(parsed) = Parser::new(&GenericDialect {})
                .try_with_sql(&text)
                .and_then(|mut p| p.parse_expr())
            {
                **expr = parsed;
            }
        }
    }
}

fn fold_integer(expr: &SqlExpr) -> Option<i64> {
    match expr {
        SqlExpr::Value(v) => match &v.value {
            SqlValue::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        SqlExpr::Nested(inner) => fold_integer(inner),
        SqlExpr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => fold_integer(expr).map(|n| -n),
        SqlExpr::BinaryOp { left, op, right } => {
            let (l, r) = (fold_integer(left)?, fold_integer(right)?);
            match op {
                BinaryOperator::Plus => l.checked_add(r),
                BinaryOperator::Minus => l.checked_sub(r),
                BinaryOperator::Multiply => l.checked_mul(r),
                BinaryOperator::Divide if r != 0 => Some(l / r),
                _ => None,
            }
        }
        _ => None,
    }
}

//! Named arguments for cached functions: `f('2013-01-01', agg_days => 7)`.
//!
//! DataFusion 55 refuses named arguments in `FROM f(...)` and silently drops
//! the names under `LATERAL`. This relation planner rewrites a call to one of
//! our functions so that its named arguments travel as a trailing
//! `named_struct('__nuthatch_named__', true, 'agg_days', 7, ...)`; DataFusion
//! then plans and folds the call as usual, and [`crate::binding`] unpacks the
//! struct. Calls to other table functions are left alone.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::{plan_err, Result};
use datafusion::logical_expr::planner::{
    RelationPlanner, RelationPlannerContext, RelationPlanning,
};
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, FunctionArg, FunctionArgExpr, Ident, ObjectName, TableFactor,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::binding::NAMED_MARKER;
use crate::registry::Registry;

#[derive(Debug)]
pub struct NamedArgumentPlanner {
    registry: Arc<Registry>,
}

impl NamedArgumentPlanner {
    pub fn new(registry: Arc<Registry>) -> Self {
        NamedArgumentPlanner { registry }
    }

    /// DataFusion's own message for a named argument to another table
    /// function ("Unsupported function argument type") hides the likely
    /// cause: a cached function that is not defined (yet).
    fn refuse_named(&self, name: &ObjectName, args: &[FunctionArg]) -> Result<()> {
        let named = args
            .iter()
            .find(|a| matches!(a, FunctionArg::Named { .. } | FunctionArg::ExprNamed { .. }));
        let Some(named) = named else { return Ok(()) };
        let known: Vec<String> = self
            .registry
            .all()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        let known = if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        };
        plan_err!(
            "{name} is not a cached function, so it cannot take the named argument {named}; \
             cached functions defined here: {known}"
        )
    }

    fn is_ours(&self, name: &ObjectName) -> bool {
        name.0.len() == 1
            && name.0[0]
                .as_ident()
                .is_some_and(|ident| self.registry.contains(&normalize(ident)))
    }
}

impl RelationPlanner for NamedArgumentPlanner {
    fn plan_relation(
        &self,
        mut relation: TableFactor,
        _context: &mut dyn RelationPlannerContext,
    ) -> Result<RelationPlanning> {
        match &mut relation {
            TableFactor::Table {
                name,
                args: Some(args),
                ..
            } if self.is_ours(name) => {
                args.args = pack_named(&name.to_string(), std::mem::take(&mut args.args))?;
            }
            TableFactor::Function { name, args, .. } if self.is_ours(name) => {
                *args = pack_named(&name.to_string(), std::mem::take(args))?;
            }
            TableFactor::Table {
                name,
                args: Some(args),
                ..
            } => self.refuse_named(name, &args.args)?,
            TableFactor::Function { name, args, .. } => self.refuse_named(name, args)?,
            _ => {}
        }
        Ok(RelationPlanning::Original(Box::new(relation)))
    }
}

/// Unquoted names are case-insensitive, as DataFusion treats identifiers.
fn normalize(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_ascii_lowercase()
    }
}

fn pack_named(function: &str, args: Vec<FunctionArg>) -> Result<Vec<FunctionArg>> {
    let mut positional = Vec::new();
    let mut named: Vec<(String, FunctionArgExpr)> = Vec::new();
    for arg in args {
        let (name, value) = match arg {
            FunctionArg::Named { name, arg, .. } => (normalize(&name), arg),
            FunctionArg::ExprNamed {
                name: SqlExpr::Identifier(name),
                arg,
                ..
            } => (normalize(&name), arg),
            FunctionArg::ExprNamed { name, .. } => {
                return plan_err!(
                    "argument names of {function} must be plain identifiers, got {name}"
                )
            }
            FunctionArg::Unnamed(value) => {
                if !named.is_empty() {
                    return plan_err!(
                        "positional argument {value} of {function} comes after a named one; \
                         put positional arguments first"
                    );
                }
                positional.push(FunctionArg::Unnamed(value));
                continue;
            }
        };
        named.push((name, value));
    }
    if named.is_empty() {
        return Ok(positional);
    }
    let mut seen = HashSet::new();
    let mut text = format!("named_struct('{NAMED_MARKER}', true");
    for (name, value) in &named {
        if !seen.insert(name.clone()) {
            return plan_err!("argument '{name}' of {function} is given twice");
        }
        // Names are identifiers, so they need no escaping inside quotes
        // beyond doubling any quote a quoted identifier may hold.
        text.push_str(&format!(", '{}', {value}", name.replace('\'', "''")));
    }
    text.push(')');
    let packed = Parser::new(&GenericDialect {})
        .try_with_sql(&text)?
        .parse_expr()?;
    positional.push(FunctionArg::Unnamed(FunctionArgExpr::Expr(packed)));
    Ok(positional)
}

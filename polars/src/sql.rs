//! Polars SQL with cached calls.
//!
//! Polars' `SQLContext` knows a fixed set of table functions (`read_csv`
//! and its kin) and no way to add one. [`PolarsSql`] parses the query with
//! the parser Polars SQL uses (sqlparser, the same version DataFusion
//! uses), replaces each call of a function the nuthatch session knows by
//! the name of a `LazyFrame` over that call ([`Polars::lazy`]), registers
//! those frames, and hands the rewritten query to Polars. Arguments are
//! carried over as written, named ones included, and bound by nuthatch as
//! in any other query; what Polars then filters and projects is pushed
//! back into each call.

use std::ops::ControlFlow;

use datafusion::common::{DataFusionError, Result};
use polars::prelude::LazyFrame;
use polars::sql::SQLContext;
use sqlparser::ast::{Ident, ObjectName, ObjectNamePart, TableFactor, VisitMut, VisitorMut};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::{Parser, ParserOptions};

use crate::convert::polars_error;
use crate::frames::Polars;

/// A Polars SQL context over a nuthatch session; see the module doc.
pub struct PolarsSql {
    polars: Polars,
    context: SQLContext,
    /// Calls rewritten so far, for names no two calls share.
    calls: usize,
}

impl PolarsSql {
    pub(crate) fn new(polars: Polars) -> PolarsSql {
        PolarsSql {
            polars,
            context: SQLContext::new(),
            calls: 0,
        }
    }

    /// Makes `frame` a table of the context, as Polars' own `register`.
    pub fn register(&self, name: &str, frame: LazyFrame) {
        self.context.register(name, frame);
    }

    /// Polars' context, for anything this type does not wrap.
    pub fn context(&mut self) -> &mut SQLContext {
        &mut self.context
    }

    /// Plans one statement; cached functions are called as table
    /// functions, e.g. `FROM agg_and_clip('2013-01-01', '2014-01-01',
    /// agg_days => 7)`.
    pub async fn execute(&mut self, query: &str) -> Result<LazyFrame> {
        let options = ParserOptions::new().with_trailing_commas(true);
        let mut statements = Parser::new(&GenericDialect)
            .with_options(options)
            .try_with_sql(query)
            .and_then(|mut parser| parser.parse_statements())
            .map_err(|e| DataFusionError::Plan(format!("Polars SQL: {e}")))?;
        if statements.len() != 1 {
            return Err(DataFusionError::Plan(format!(
                "Polars SQL runs one statement at a time; this text has {}",
                statements.len()
            )));
        }
        let mut statement = statements.remove(0);
        self.polars.refresh();
        let known = self.polars.context().state().table_functions().clone();
        let mut calls = Calls {
            known: |name: &str| known.contains_key(name),
            next: self.calls,
            found: Vec::new(),
        };
        let _ = statement.visit(&mut calls);
        self.calls = calls.next;
        let mut registered = Vec::new();
        for (name, call) in calls.found {
            let frame = self.polars.lazy(&format!("SELECT * FROM {call}")).await;
            match frame {
                Ok(frame) => {
                    self.context.register(&name, frame);
                    registered.push(name);
                }
                Err(e) => {
                    self.forget(&registered);
                    return Err(e);
                }
            }
        }
        let planned = self.context.execute(&statement.to_string());
        // The plan holds the frames; their names need not outlive it.
        self.forget(&registered);
        planned.map_err(polars_error)
    }

    fn forget(&self, names: &[String]) {
        for name in names {
            self.context.unregister(name);
        }
    }
}

/// Finds the calls of known table functions and names each one.
struct Calls<F: Fn(&str) -> bool> {
    known: F,
    next: usize,
    /// (the name the call is registered under, the call as SQL)
    found: Vec<(String, String)>,
}

impl<F: Fn(&str) -> bool> VisitorMut for Calls<F> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table {
            name,
            args: args @ Some(_),
            ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        let [ObjectNamePart::Identifier(ident)] = name.0.as_slice() else {
            return ControlFlow::Continue(());
        };
        // DataFusion folds unquoted names to lower case; so does the
        // lookup of a function.
        let function = match ident.quote_style {
            None => ident.value.to_lowercase(),
            Some(_) => ident.value.clone(),
        };
        if !(self.known)(&function) {
            return ControlFlow::Continue(());
        }
        let arguments: Vec<String> = args
            .iter()
            .flat_map(|a| a.args.iter().map(|arg| arg.to_string()))
            .collect();
        // By the name DataFusion registered it under (it does not fold the
        // case of table function names); function names are plain
        // identifiers, so the name needs no quotes.
        let call = format!("{function}({})", arguments.join(", "));
        self.next += 1;
        let registered = format!("__nuthatch_call_{}", self.next);
        *name = ObjectName::from(vec![Ident::new(&registered)]);
        *args = None;
        self.found.push((registered, call));
        ControlFlow::Continue(())
    }
}

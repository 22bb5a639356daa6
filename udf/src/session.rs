//! [`Nuthatch`]: a DataFusion session with a catalog and cached functions.
//!
//! It is the front door for every way in: the `nuthatch` binary, Rust
//! programs, and (through [`Nuthatch::install`]) a caller's own
//! `SessionContext`. Its [`Nuthatch::sql`] understands `CREATE CACHED
//! FUNCTION` on top of everything DataFusion understands.

use std::path::Path;
use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use datafusion::dataframe::DataFrame;
use datafusion::execution::context::{SessionConfig, SessionContext};
use nuthatch_catalog::{CallReport, Catalog, Config};

use crate::function::CachedFunction;
use crate::planner::NamedArgumentPlanner;
use crate::registry::Registry;
use crate::sql_function::CreateCachedFunction;
use crate::table_function::{CachedTableFunction, NuthatchOptions};

pub struct Nuthatch {
    catalog: Arc<Catalog>,
    registry: Arc<Registry>,
    ctx: SessionContext,
}

impl Nuthatch {
    /// A session over the tiers `config` names.
    pub fn new(config: &Config) -> Result<Nuthatch> {
        let catalog = Catalog::open(config)?;
        let ctx = SessionContext::new_with_config(
            SessionConfig::new().with_option_extension(NuthatchOptions::default()),
        );
        let nuthatch = Nuthatch {
            catalog,
            registry: Arc::new(Registry::default()),
            ctx,
        };
        nuthatch.install(&nuthatch.ctx)?;
        Ok(nuthatch)
    }

    /// A session configured from the working directory and environment
    /// (see [`Config::discover`]).
    pub fn discover() -> Result<Nuthatch> {
        Nuthatch::new(&Config::discover()?)
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Makes the catalog and the functions registered so far usable from
    /// another `SessionContext`: tier stores, named arguments, the
    /// `nuthatch.` settings and one table function per cached function.
    pub fn install(&self, ctx: &SessionContext) -> Result<()> {
        self.catalog.register_stores(ctx.runtime_env().as_ref());
        ctx.register_relation_planner(Arc::new(NamedArgumentPlanner::new(Arc::clone(
            &self.registry,
        ))))?;
        {
            let state = ctx.state_ref();
            let mut state = state.write();
            let extensions = &mut state.config_mut().options_mut().extensions;
            if extensions.get::<NuthatchOptions>().is_none() {
                extensions.insert(NuthatchOptions::default());
            }
        }
        for function in self.registry.all() {
            self.register_in(ctx, function);
        }
        Ok(())
    }

    /// Adds a cached function, replacing one of the same name.
    pub fn register(&self, function: CachedFunction) -> Result<()> {
        let function = Arc::new(function);
        self.registry.insert(Arc::clone(&function));
        self.register_in(&self.ctx, function);
        Ok(())
    }

    fn register_in(&self, ctx: &SessionContext, function: Arc<CachedFunction>) {
        let name = function.name().to_string();
        ctx.register_udtf(
            &name,
            Arc::new(CachedTableFunction::new(
                function,
                Arc::clone(&self.catalog),
            )),
        );
    }

    pub fn function(&self, name: &str) -> Option<Arc<CachedFunction>> {
        self.registry.get(name)
    }

    /// Plans one SQL statement; `CREATE CACHED FUNCTION` is carried out at
    /// once and yields an empty result.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        if let Some(definition) = CreateCachedFunction::parse(sql)? {
            let name = definition.name.clone();
            if !definition.or_replace && self.registry.contains(&name) {
                return Err(DataFusionError::Plan(format!(
                    "cached function {name} already exists; use CREATE OR REPLACE CACHED FUNCTION"
                )));
            }
            let function = definition.build(&self.ctx.state()).await?;
            self.register(function)?;
            tracing::info!(function = name, "defined cached function");
            return self.ctx.read_empty();
        }
        self.ctx.sql(sql).await
    }

    /// Runs every statement of a script (e.g. a project's definitions file),
    /// collecting nothing; returns how many statements ran.
    pub async fn run_script(&self, text: &str) -> Result<usize> {
        let statements = split_statements(text);
        for statement in &statements {
            self.sql(statement).await?.collect().await?;
        }
        Ok(statements.len())
    }

    /// Loads a definitions file.
    pub async fn load_definitions(&self, path: &Path) -> Result<usize> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            DataFusionError::Configuration(format!(
                "cannot read definitions {}: {e}",
                path.display()
            ))
        })?;
        self.run_script(&text)
            .await
            .map_err(|e| DataFusionError::Plan(format!("{}: {e}", path.display())))
    }

    /// The reports of the calls finished since the last time this was asked.
    pub fn take_reports(&self) -> Vec<CallReport> {
        self.catalog.reports().drain()
    }
}

/// Splits a script into statements at `;`, outside quotes and comments.
pub fn split_statements(text: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                current.push(c);
                if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    current.push(c);
                }
                '-' if chars.peek() == Some(&'-') => {
                    for skipped in chars.by_ref() {
                        if skipped == '\n' {
                            current.push('\n');
                            break;
                        }
                    }
                }
                '/' if chars.peek() == Some(&'*') => {
                    chars.next();
                    let mut last = ' ';
                    for skipped in chars.by_ref() {
                        if last == '*' && skipped == '/' {
                            break;
                        }
                        last = skipped;
                    }
                    current.push(' ');
                }
                ';' => {
                    if !current.trim().is_empty() {
                        statements.push(current.trim().to_string());
                    }
                    current.clear();
                }
                _ => current.push(c),
            },
        }
    }
    if !current.trim().is_empty() {
        statements.push(current.trim().to_string());
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::split_statements;

    #[test]
    fn splits_outside_quotes_and_comments() {
        let script = "SELECT 'a;b'; -- one; two\nSELECT 2 /* ; */;\n\n";
        assert_eq!(split_statements(script), vec!["SELECT 'a;b'", "SELECT 2"]);
    }
}

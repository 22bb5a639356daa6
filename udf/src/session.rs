//! [`Session`]: one user's view of an [`Engine`].
//!
//! A session is a DataFusion `SessionContext` with nuthatch installed: the
//! engine's tier stores and runtime, named arguments, the `nuthatch.`
//! settings, its own report log, and one table function per cached
//! function. Settings changed with `SET` and the reports of its calls are
//! its own; functions, entries and the memory limit are the engine's.
//! [`Session::sql`] understands `CREATE CACHED FUNCTION`, `[EXPLAIN]
//! REFRESH STALE` ([`crate::refresh`]) and `[EXPLAIN] VACUUM`
//! ([`crate::vacuum`]) on top of everything DataFusion understands.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::dataframe::DataFrame;
use datafusion::execution::context::{SessionConfig, SessionContext};
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use nuthatch_catalog::system::{self, DeleteGuard, SystemSchema};
use nuthatch_catalog::{CallReport, ReportLog, Running};

use crate::definition::CreateCachedFunction;
use crate::engine::Engine;
use crate::function::CachedFunction;
use crate::planner::NamedArgumentPlanner;
use crate::refresh::RefreshStatement;
use crate::rolling::with_rolling_windows;
use crate::script::split_statements;
use crate::settings::{NuthatchOptions, OverwritePrompt, Prompter};
use crate::system_tables::functions_table;
use crate::table_function::CachedTableFunction;
use crate::vacuum::VacuumStatement;

/// A table of a session's catalogs.
pub struct NamedTable {
    pub catalog: String,
    pub schema: String,
    pub name: String,
    pub provider: Arc<dyn datafusion::catalog::TableProvider>,
}

pub struct Session {
    engine: Engine,
    ctx: SessionContext,
    reports: Arc<ReportLog>,
    /// Keeps `ctx`'s functions in step with the engine's.
    functions: FunctionSync,
    /// The definitions file being loaded, recorded on what it defines.
    loading: Mutex<Option<PathBuf>>,
}

impl Engine {
    /// A new session with default settings.
    pub fn session(&self) -> Session {
        let reports = Arc::new(ReportLog::default());
        let mut config = SessionConfig::new()
            .with_option_extension(NuthatchOptions::default())
            .with_extension(Arc::clone(&reports));
        if let Some(limit) = self.config().memory_limit {
            // A sort sets this much aside to merge its spill files; the
            // 10 MiB default alone would exceed a small limit.
            let reserve = config
                .options()
                .execution
                .sort_spill_reservation_bytes
                .min(limit / 16);
            config = config.with_sort_spill_reservation_bytes(reserve);
        }
        let builder = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(Arc::clone(self.runtime()))
            .with_default_features()
            .with_physical_optimizer_rules(with_rolling_windows(PhysicalOptimizer::new().rules));
        let state = self.hooked(builder).build();
        let ctx = SessionContext::new_with_state(state);
        self.prepare_context(&ctx, &reports)
            .expect("a fresh context takes a relation planner and a schema");
        Session::new(self.clone(), ctx, reports)
    }

    /// Makes `ctx`, a context of the caller's own, a session of this
    /// engine: tier stores, named arguments, the `nuthatch.` settings, a
    /// report log, and the functions registered so far. The returned
    /// session shares `ctx`; planning through [`Session::sql`] also picks up
    /// functions registered later.
    pub fn install(&self, ctx: &SessionContext) -> Result<Session> {
        self.catalog().register_stores(ctx.runtime_env().as_ref());
        let reports = Arc::new(ReportLog::default());
        {
            let state = ctx.state_ref();
            let mut state = state.write();
            let config = state.config_mut();
            config.set_extension(Arc::clone(&reports));
            let extensions = &mut config.options_mut().extensions;
            if extensions.get::<NuthatchOptions>().is_none() {
                extensions.insert(NuthatchOptions::default());
            }
            let rules = with_rolling_windows(state.physical_optimizers().to_vec());
            let builder = SessionStateBuilder::new_from_existing(state.clone())
                .with_physical_optimizer_rules(rules);
            *state = self.hooked(builder).build();
        }
        self.prepare_context(ctx, &reports)?;
        Ok(Session::new(self.clone(), ctx.clone(), reports))
    }

    /// Named arguments, and the `nuthatch` schema of system tables over
    /// this engine's catalog and the session's calls.
    fn prepare_context(&self, ctx: &SessionContext, reports: &Arc<ReportLog>) -> Result<()> {
        ctx.register_relation_planner(Arc::new(NamedArgumentPlanner::new(Arc::clone(
            self.registry(),
        ))))?;
        let system = SystemSchema::new(Arc::clone(self.catalog()), Arc::clone(reports)).with_table(
            "functions",
            Arc::new(functions_table(Arc::clone(self.registry()))),
        );
        let default_catalog = ctx.state().config_options().catalog.default_catalog.clone();
        let catalog = ctx.catalog(&default_catalog).ok_or_else(|| {
            DataFusionError::Configuration(format!(
                "the default catalog {default_catalog} is missing; nuthatch puts its system \
                 tables there"
            ))
        })?;
        catalog.register_schema(system::SCHEMA, Arc::new(system))?;
        ctx.add_analyzer_rule(Arc::new(DeleteGuard));
        Ok(())
    }
}

/// Registers in a session's context the engine's functions it does not
/// have yet; cheap to clone and to call when there are none.
#[derive(Clone)]
pub struct FunctionSync {
    engine: Engine,
    ctx: SessionContext,
    /// The registry generation whose functions `ctx` has.
    synced: Arc<AtomicU64>,
}

impl FunctionSync {
    /// Registers what the engine has gained since the last call.
    pub fn refresh(&self) {
        let registry = self.engine.registry();
        let generation = registry.generation();
        if self.synced.swap(generation, Ordering::AcqRel) == generation {
            return;
        }
        for function in registry.all() {
            let table_function =
                CachedTableFunction::new(Arc::clone(&function), Arc::clone(self.engine.catalog()));
            self.ctx
                .register_udtf(function.name(), Arc::new(table_function));
        }
    }
}

impl std::fmt::Debug for FunctionSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FunctionSync")
    }
}

impl Session {
    fn new(engine: Engine, ctx: SessionContext, reports: Arc<ReportLog>) -> Session {
        let session = Session {
            functions: FunctionSync {
                engine: engine.clone(),
                ctx: ctx.clone(),
                synced: Arc::new(AtomicU64::new(u64::MAX)),
            },
            engine,
            ctx,
            reports,
            loading: Mutex::new(None),
        };
        session.refresh_functions();
        session
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The DataFusion context, for anything nuthatch does not wrap.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Registers the engine's functions that this session's context does
    /// not have yet (a cheap check when there are none).
    pub fn refresh_functions(&self) {
        self.functions.refresh();
    }

    /// What keeps this session's functions in step with the engine's, for
    /// a front end that plans through the context directly (Polars).
    pub fn function_sync(&self) -> FunctionSync {
        self.functions.clone()
    }

    /// Adds a cached function to the engine (so to every session).
    pub fn register(&self, function: CachedFunction) -> Result<()> {
        self.engine.register(function)?;
        self.refresh_functions();
        Ok(())
    }

    pub fn function(&self, name: &str) -> Option<Arc<CachedFunction>> {
        self.engine.function(name)
    }

    /// Plans one SQL statement. `CREATE CACHED FUNCTION` is carried out at
    /// once and yields an empty result (no columns, no rows).
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        self.refresh_functions();
        if let Some(refresh) = RefreshStatement::parse(sql)? {
            return self.refresh_statement(refresh).await;
        }
        if let Some(vacuum) = VacuumStatement::parse(sql)? {
            return self.vacuum_statement(vacuum).await;
        }
        if let Some(definition) = CreateCachedFunction::parse(sql)? {
            let name = definition.name.clone();
            if !definition.or_replace && self.engine.function(&name).is_some() {
                return Err(DataFusionError::Plan(format!(
                    "cached function {name} already exists; use CREATE OR REPLACE CACHED FUNCTION"
                )));
            }
            let source = self.loading.lock().expect("session poisoned").clone();
            let function = definition
                .build(&self.ctx.state())
                .await?
                .defined_in(source);
            self.register(function)?;
            tracing::info!(function = name, "defined cached function");
            let nothing = LogicalPlanBuilder::empty(false).build()?;
            return Ok(DataFrame::new(self.ctx.state(), nothing));
        }
        self.ctx.sql(sql).await
    }

    /// Plans `sql` with `values` bound to its `?` (in order) or `$n`
    /// placeholders, anywhere a literal may stand, a cached call's
    /// arguments included. Each value becomes a literal of the parsed
    /// statement, never SQL text, so a value holding quotes stays a value
    /// ([`crate::params`]).
    ///
    /// ```no_run
    /// # async fn run(session: &nuthatch_udf::Session) -> datafusion::error::Result<()> {
    /// use datafusion::common::ScalarValue;
    /// let frame = session
    ///     .sql_with_params(
    ///         "SELECT * FROM agg_and_clip(?, ?, agg_days => ?)",
    ///         &[
    ///             ScalarValue::from("2013-01-01"),
    ///             ScalarValue::from("2014-01-01"),
    ///             ScalarValue::from(7i64),
    ///         ],
    ///     )
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn sql_with_params(&self, sql: &str, values: &[ScalarValue]) -> Result<DataFrame> {
        self.refresh_functions();
        let state = self.ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let statement = state.sql_to_statement(sql, &dialect)?;
        let bound = crate::params::bind(&statement, values)?;
        let plan = state.statement_to_plan(bound).await?;
        self.ctx.execute_logical_plan(plan).await
    }

    /// Runs every statement of a script (e.g. a project's definitions file),
    /// collecting nothing; returns how many statements ran.
    pub async fn run_script(&self, text: &str) -> Result<usize> {
        let statements = split_statements(text)?;
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
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        *self.loading.lock().expect("session poisoned") = Some(absolute);
        let ran = self.run_script(&text).await;
        *self.loading.lock().expect("session poisoned") = None;
        ran.map_err(|e| DataFusionError::Plan(format!("{}: {e}", path.display())))
    }

    /// Every table a query of this session can name, in every catalog and
    /// schema, system tables included (for the prompt's `\d`, completion and Flight
    /// SQL's GetTables).
    pub async fn tables(&self) -> Result<Vec<NamedTable>> {
        let mut found = Vec::new();
        for catalog_name in self.ctx.catalog_names() {
            let Some(catalog) = self.ctx.catalog(&catalog_name) else {
                continue;
            };
            for schema_name in catalog.schema_names() {
                let Some(schema) = catalog.schema(&schema_name) else {
                    continue;
                };
                for table_name in schema.table_names() {
                    if let Some(provider) = schema.table(&table_name).await? {
                        found.push(NamedTable {
                            catalog: catalog_name.clone(),
                            schema: schema_name.clone(),
                            name: table_name,
                            provider,
                        });
                    }
                }
            }
        }
        Ok(found)
    }

    /// Lets calls of this session ask `prompt` before a write replaces a
    /// valid entry, instead of failing (see [`OverwritePrompt`]).
    pub fn set_overwrite_prompt(&self, prompt: Arc<dyn OverwritePrompt>) {
        let state = self.ctx.state_ref();
        let mut state = state.write();
        state.config_mut().set_extension(Arc::new(Prompter(prompt)));
    }

    /// The calls of this session under way now, outermost first.
    pub fn running(&self) -> Vec<Arc<Running>> {
        self.reports.running()
    }

    /// Abandons the writes of misses that this session's queries stopped
    /// reading before their end. A miss serves its rows while they are
    /// stored, and its write goes on when the query stops early (a `LIMIT`
    /// above a filter, a dropped stream); a front end that cancels a
    /// statement calls this so that nothing of it is stored.
    pub fn cancel_writes(&self) {
        self.reports.background.cancel();
    }

    /// Waits for the writes that this session's queries left running (see
    /// [`Session::cancel_writes`]); a program calls this before it exits so
    /// that every miss it computed is stored.
    pub async fn finish_writes(&self) {
        self.reports.background.settled().await;
    }

    /// The reports of this session's calls finished since the last time
    /// this was asked, nested calls included.
    pub fn take_reports(&self) -> Vec<CallReport> {
        self.reports.drain()
    }
}

impl Drop for Session {
    /// A program that ends without [`Session::finish_writes`] would lose
    /// the writes its queries left running when its runtime stops; the
    /// session waits for them here (`nuthatch.finish_writes_within`), and
    /// names each one it gives up on.
    fn drop(&mut self) {
        let background = &self.reports.background;
        if background.writing() == 0 {
            return;
        }
        let within = NuthatchOptions::of(self.ctx.state_ref().read().config())
            .finish_writes_within
            .0;
        background.finish_blocking(within, "the session was dropped");
    }
}

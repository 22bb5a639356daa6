//! Reading an entry's table: finding it, and scanning it with projection,
//! filters and limits in the statement sent.
//!
//! [`SqlTable`] is the entry's `TableProvider`. Its scan builds one
//! `SELECT` of the projected columns, the filters the database evaluates
//! exactly (see [`super::filter`]) and, when every filter went down, the
//! limit; [`SqlScan`] runs it on a pooled read connection and streams the
//! rows back in batches of the session's batch size, counting them in the
//! `rows_fetched` metric. Rows are decoded straight into Arrow builders:
//! PostgreSQL's as a binary `COPY` of the statement (`super::copy`), with
//! a bound fetch only for values that have no setting form, and SQLite's
//! by stepping the statement through its C API (`super::lite`). A query that reads no column (`count(*)`) asks
//! the database for the count alone.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::TableType;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr, PlanProperties,
};
use futures::TryStreamExt;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgArguments;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, AssertSqlSafe, Executor, PgConnection, Postgres, Row, SqliteConnection};
use tokio::sync::mpsc;

use super::copy::{self, CopyOut};
use super::database::{quote, table_names, Database, Dialect, Pools, TableName};
use super::filter::{ColumnInfo, Param, Translator};
use super::lite::Statement;
use super::types::{to_declared, Builder, Wire};
use crate::Location;

/// A table as the database describes it.
#[derive(Debug, Clone)]
pub struct StoredTable {
    pub name: TableName,
    /// Columns in table order: name and type as the database spells it.
    pub columns: Vec<(String, String)>,
}

/// Finds the entry's table under any of its names; `None` if it has none.
pub async fn find(database: &Database, at: &Location) -> Result<Option<StoredTable>> {
    for name in table_names(database, at)? {
        if let Some(table) = describe(database, &name).await? {
            return Ok(Some(table));
        }
    }
    Ok(None)
}

/// The stamp of the entry's table ([`crate::Backend::stamp`]), if it has
/// one: every replacement creates a new table, which PostgreSQL gives a
/// new oid and SQLite keeps with the definition its writer marked with
/// the name it was staged under.
pub async fn stamp(database: &Database, at: &Location) -> Result<Option<String>> {
    for name in table_names(database, at)? {
        let doing = format!("looking up the table {name}");
        let stamp: Option<String> = match &database.pools {
            Pools::Postgres { read, .. } => {
                let query = "SELECT to_regclass($1)::oid::text";
                match sqlx::query(query).bind(name.quoted()).fetch_one(read).await {
                    Ok(row) => row.get(0),
                    Err(e) => return Err(database.error(&doing, e).await),
                }
            }
            Pools::Sqlite { read, .. } => {
                let query = "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1";
                match sqlx::query(query)
                    .bind(&name.table)
                    .fetch_optional(read)
                    .await
                {
                    Ok(row) => row.map(|r| r.get(0)),
                    Err(e) => return Err(database.error(&doing, e).await),
                }
            }
        };
        if stamp.is_some() {
            return Ok(stamp);
        }
    }
    Ok(None)
}

/// The columns of the table `name`, if it exists.
pub async fn describe(database: &Database, name: &TableName) -> Result<Option<StoredTable>> {
    let doing = format!("looking up the table {name}");
    let columns: Vec<(String, String)> = match &database.pools {
        Pools::Postgres { read, .. } => {
            // to_regclass reads a quoted name and is NULL when there is no
            // such table; the name travels as a parameter.
            let query = "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) \
                         FROM pg_attribute a \
                         WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 \
                         AND NOT a.attisdropped ORDER BY a.attnum";
            match sqlx::query(query).bind(name.quoted()).fetch_all(read).await {
                Ok(rows) => rows.iter().map(|r| (r.get(0), r.get(1))).collect(),
                Err(e) => return Err(database.error(&doing, e).await),
            }
        }
        Pools::Sqlite { read, .. } => {
            let query = "SELECT name, type FROM pragma_table_info(?1)";
            match sqlx::query(query).bind(&name.table).fetch_all(read).await {
                Ok(rows) => rows.iter().map(|r| (r.get(0), r.get(1))).collect(),
                Err(e) => return Err(database.error(&doing, e).await),
            }
        }
    };
    Ok((!columns.is_empty()).then(|| StoredTable {
        name: name.clone(),
        columns,
    }))
}

/// An entry's table, read as the function's declared schema.
#[derive(Debug)]
pub struct SqlTable {
    database: Database,
    table: TableName,
    schema: SchemaRef,
    /// Per declared column: its name in the table, and its wire type
    /// (`None`: selected as text and cast).
    stored: Vec<(String, Option<Wire>)>,
    /// The columns filters may name.
    filterable: HashMap<String, ColumnInfo>,
}

impl SqlTable {
    /// Matches the declared columns to the table's; a declared column the
    /// table lacks is an error that names the fix.
    pub fn new(database: Database, table: StoredTable, schema: SchemaRef) -> Result<SqlTable> {
        let dialect = database.dialect();
        let mut stored = Vec::with_capacity(schema.fields().len());
        let mut filterable = HashMap::new();
        for field in schema.fields() {
            let found = table
                .columns
                .iter()
                .find(|(name, _)| name == field.name())
                .or_else(|| {
                    let mut same = table
                        .columns
                        .iter()
                        .filter(|(name, _)| name.eq_ignore_ascii_case(field.name()));
                    same.next().filter(|_| same.next().is_none())
                });
            let Some((name, type_name)) = found else {
                let has: Vec<&str> = table.columns.iter().map(|(n, _)| n.as_str()).collect();
                return Err(DataFusionError::Plan(format!(
                    "the table {} has no column {} (it has {}); the function's schema changed \
                     since the entry was written: call it with recompute => true",
                    table.name,
                    field.name(),
                    has.join(", ")
                )));
            };
            let wire = match dialect {
                Dialect::Postgres => Wire::from_postgres(type_name),
                Dialect::Sqlite => Some(Wire::for_sqlite_read(field.data_type())),
            };
            if let Some(wire) = wire {
                filterable.insert(
                    field.name().clone(),
                    ColumnInfo {
                        stored: name.clone(),
                        wire,
                        declared: field.data_type().clone(),
                    },
                );
            }
            stored.push((name.clone(), wire));
        }
        Ok(SqlTable {
            database,
            table: table.name,
            schema,
            stored,
            filterable,
        })
    }
}

#[async_trait]
impl TableProvider for SqlTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        let dialect = self.database.dialect();
        Ok(filters
            .iter()
            .map(
                |filter| match Translator::new(dialect, &self.filterable).translate(filter) {
                    Some(_) => TableProviderFilterPushDown::Exact,
                    None => TableProviderFilterPushDown::Unsupported,
                },
            )
            .collect())
    }

    async fn scan(
        &self,
        session: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.stored.len()).collect(),
        };
        let schema = Arc::new(self.schema.project(&indices)?);
        let dialect = self.database.dialect();
        let mut translator = Translator::new(dialect, &self.filterable);
        let mut conditions = Vec::new();
        let mut all_pushed = true;
        for filter in filters {
            match translator.translate(filter) {
                Some(sql) => conditions.push(sql),
                None => all_pushed = false,
            }
        }
        let params = translator.into_params();
        // The same conditions for a COPY, values read from settings.
        let copy_conditions: Vec<String> = match dialect {
            Dialect::Postgres => {
                let mut translator = Translator::for_copy(&self.filterable);
                filters
                    .iter()
                    .filter_map(|f| translator.translate(f))
                    .collect()
            }
            Dialect::Sqlite => Vec::new(),
        };
        let mut wires = Vec::with_capacity(indices.len());
        let mut selected = Vec::with_capacity(indices.len());
        for i in &indices {
            let (name, wire) = &self.stored[*i];
            match wire {
                Some(wire) => {
                    selected.push(quote(name));
                    wires.push(*wire);
                }
                None => {
                    selected.push(format!("{}::text", quote(name)));
                    wires.push(Wire::Text);
                }
            }
        }
        let from = |conditions: &[String]| {
            let mut from = format!("FROM {}", self.table.quoted());
            if !conditions.is_empty() {
                from.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
            }
            if let (Some(limit), true) = (limit, all_pushed) {
                from.push_str(&format!(" LIMIT {limit}"));
            }
            from
        };
        let count_only = selected.is_empty();
        let (sql, copy) = if count_only {
            let from = from(&conditions);
            (
                format!("SELECT count(*) FROM (SELECT 1 {from}) AS counted"),
                None,
            )
        } else {
            let selected = selected.join(", ");
            let copy = (dialect == Dialect::Postgres).then(|| {
                format!(
                    "COPY (SELECT {selected} {}) TO STDOUT (FORMAT binary)",
                    from(&copy_conditions)
                )
            });
            (format!("SELECT {selected} {}", from(&conditions)), copy)
        };
        Ok(Arc::new(SqlScan::new(
            self.database.clone(),
            Statements { sql, copy },
            params,
            wires,
            schema,
            session.config().batch_size(),
            count_only,
        )))
    }
}

/// The statement of a scan, and for PostgreSQL the same rows as a binary
/// `COPY`, the faster path when every value has a setting form.
#[derive(Debug, Clone)]
pub struct Statements {
    pub sql: String,
    pub copy: Option<String>,
}

/// Runs one `SELECT` and streams its rows as batches.
pub struct SqlScan {
    database: Database,
    sql: String,
    copy: Option<String>,
    params: Vec<Param>,
    wires: Vec<Wire>,
    schema: SchemaRef,
    batch_size: usize,
    count_only: bool,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl fmt::Debug for SqlScan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SqlScan({})", self.sql)
    }
}

impl SqlScan {
    fn new(
        database: Database,
        Statements { sql, copy }: Statements,
        params: Vec<Param>,
        wires: Vec<Wire>,
        schema: SchemaRef,
        batch_size: usize,
        count_only: bool,
    ) -> SqlScan {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        SqlScan {
            database,
            sql,
            copy,
            params,
            wires,
            schema,
            batch_size: batch_size.max(1),
            count_only,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// The statement sent, placeholders and all (values are not shown).
    pub fn sql(&self) -> &str {
        &self.sql
    }
}

impl DisplayAs for SqlScan {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "SqlScan: {} sql={}", self.database.shown, self.sql)
    }
}

impl ExecutionPlan for SqlScan {
    fn name(&self) -> &str {
        "SqlScan"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal("SqlScan has no children".into()))
        }
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let fetched = MetricBuilder::new(&self.metrics).counter("rows_fetched", partition);
        // Two batches ahead of the consumer at most; the task ends when the
        // stream is dropped (its next send fails) and so frees its
        // connection.
        let (sender, receiver) = mpsc::channel(2);
        let query = Query {
            database: self.database.clone(),
            sql: self.sql.clone(),
            copy: self.copy.clone(),
            params: self.params.clone(),
            wires: self.wires.clone(),
            schema: Arc::clone(&self.schema),
            batch_size: self.batch_size,
            fetched,
        };
        let count_only = self.count_only;
        let task = SpawnedTask::spawn(async move {
            let failed = if count_only {
                query.count(&sender).await
            } else {
                query.rows(&sender).await
            };
            if let Err(e) = failed {
                let _ = sender.send(Err(e)).await;
            }
        });
        let stream = futures::stream::unfold((receiver, Some(task)), |(mut receiver, task)| {
            async move {
                match receiver.recv().await {
                    Some(item) => Some((item, (receiver, task))),
                    // A fetch that panicked must not read as the last row.
                    None => match task?.join_unwind().await {
                        Ok(()) => None,
                        Err(e) => Some((
                            Err(DataFusionError::External(Box::new(e))),
                            (receiver, None),
                        )),
                    },
                }
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

type Sender = mpsc::Sender<Result<RecordBatch>>;

/// A pooled connection running a `COPY`: closed when dropped unless the
/// COPY was read to its end, since the rest of an unfinished one would
/// reach the connection's next user. Dropping covers a read abandoned by
/// its consumer, whose fetching task is aborted mid-await.
struct Copying(Option<PoolConnection<Postgres>>);

impl Copying {
    fn get(&mut self) -> &mut PgConnection {
        self.0.as_mut().expect("a connection until finished")
    }

    /// Hands the connection back to its pool.
    fn finished(mut self) {
        self.0.take();
    }
}

impl Drop for Copying {
    fn drop(&mut self) {
        if let Some(mut conn) = self.0.take() {
            conn.close_on_drop();
        }
    }
}

/// What the fetching task needs.
struct Query {
    database: Database,
    sql: String,
    copy: Option<String>,
    params: Vec<Param>,
    wires: Vec<Wire>,
    schema: SchemaRef,
    batch_size: usize,
    fetched: Count,
}

impl Query {
    async fn count(&self, sender: &Sender) -> Result<()> {
        let doing = "counting rows";
        let count: i64 = match &self.database.pools {
            Pools::Postgres { read, .. } => {
                let query =
                    sqlx::query_with(AssertSqlSafe(self.sql.clone()), pg_arguments(&self.params)?);
                match query.fetch_one(read).await {
                    Ok(row) => row.get(0),
                    Err(e) => return Err(self.database.error(doing, e).await),
                }
            }
            Pools::Sqlite { read, .. } => {
                let query = sqlx::query_with(
                    AssertSqlSafe(self.sql.clone()),
                    sqlite_arguments(&self.params)?,
                );
                match query.fetch_one(read).await {
                    Ok(row) => row.get(0),
                    Err(e) => return Err(self.database.error(doing, e).await),
                }
            }
        };
        self.fetched.add(1);
        let options = RecordBatchOptions::new().with_row_count(Some(count.max(0) as usize));
        let batch = RecordBatch::try_new_with_options(Arc::new(Schema::empty()), vec![], &options)?;
        let _ = sender.send(Ok(batch)).await;
        Ok(())
    }

    async fn rows(&self, sender: &Sender) -> Result<()> {
        let doing = "reading";
        match &self.database.pools {
            Pools::Postgres { read, .. } => {
                let conn = match read.acquire().await {
                    Ok(conn) => conn,
                    Err(e) => return Err(self.database.error(doing, e).await),
                };
                let (Some(copy), Some(settings)) = (&self.copy, self.settings()) else {
                    let mut conn = conn;
                    return self.rows_bound(&mut conn, sender).await;
                };
                let mut conn = Copying(Some(conn));
                let copied = self.rows_copy(conn.get(), copy, settings, sender).await;
                if matches!(copied, Ok(true)) {
                    conn.finished();
                }
                copied.map(|_| ())
            }
            Pools::Sqlite { read, .. } => {
                let mut conn = match read.acquire().await {
                    Ok(conn) => conn,
                    Err(e) => return Err(self.database.error(doing, e).await),
                };
                self.rows_sqlite(&mut conn, sender).await
            }
        }
    }

    /// Streams PostgreSQL rows fetched with bound parameters, for values
    /// that have no setting form for a `COPY`.
    async fn rows_bound(&self, conn: &mut PgConnection, sender: &Sender) -> Result<()> {
        let mut builders: Vec<Builder> = self
            .wires
            .iter()
            .map(|w| Builder::new(*w, self.batch_size))
            .collect();
        let query = sqlx::query_with(AssertSqlSafe(self.sql.clone()), pg_arguments(&self.params)?);
        let mut stream = query.fetch(conn);
        let mut rows = 0;
        loop {
            let row = match stream.try_next().await {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(e) => return Err(self.database.error("reading", e).await),
            };
            for (i, builder) in builders.iter_mut().enumerate() {
                builder.push_postgres(&row, i).map_err(|e| {
                    DataFusionError::Execution(format!(
                        "reading column {} of {}: {e}",
                        self.schema.field(i).name(),
                        self.database.shown
                    ))
                })?;
            }
            rows += 1;
            if rows == self.batch_size {
                self.fetched.add(rows);
                rows = 0;
                if sender.send(self.batch(&mut builders)).await.is_err() {
                    return Ok(());
                }
            }
        }
        if rows > 0 {
            self.fetched.add(rows);
            let _ = sender.send(self.batch(&mut builders)).await;
        }
        Ok(())
    }

    /// The text of every parameter as a setting, when all have one.
    fn settings(&self) -> Option<Vec<String>> {
        let texts = self.params.iter().enumerate();
        texts
            .map(|(i, param)| copy::setting(i + 1, param).map(|(text, _)| text))
            .collect()
    }

    /// Streams the rows by binary `COPY` ([`super::copy`]), after putting
    /// the parameters in the settings the statement reads; whether the
    /// stream was read to its end.
    async fn rows_copy(
        &self,
        conn: &mut PgConnection,
        statement: &str,
        settings: Vec<String>,
        sender: &Sender,
    ) -> Result<bool> {
        let doing = "reading";
        // The settings are local to a transaction around the COPY: they end
        // with it, and a pooler that hands out connections per transaction
        // keeps them and the COPY on one server connection.
        let in_transaction = !settings.is_empty();
        if in_transaction {
            if let Err(e) = conn.execute("BEGIN READ ONLY").await {
                return Err(self.database.error(doing, e).await);
            }
            let calls: Vec<String> = (1..=settings.len())
                .map(|n| format!("set_config('{}', ${n}, true)", copy::setting_name(n)))
                .collect();
            let mut query = sqlx::query(AssertSqlSafe(format!("SELECT {}", calls.join(", "))));
            for text in settings {
                query = query.bind(text);
            }
            if let Err(e) = query.execute(&mut *conn).await {
                return Err(self.database.error(doing, e).await);
            }
        }
        let mut builders: Vec<Builder> = self
            .wires
            .iter()
            .map(|w| Builder::new(*w, self.batch_size))
            .collect();
        let mut decoder = CopyOut::default();
        let mut stream = match conn.copy_out_raw(statement).await {
            Ok(stream) => stream,
            Err(e) => return Err(self.database.error(doing, e).await),
        };
        let mut rows = 0;
        loop {
            let piece = match stream.try_next().await {
                Ok(Some(piece)) => piece,
                Ok(None) => break,
                Err(e) => return Err(self.database.error(doing, e).await),
            };
            rows += decoder.feed(&piece, &mut builders).map_err(|e| {
                DataFusionError::Execution(format!("reading from {}: {e}", self.database.shown))
            })?;
            if rows >= self.batch_size {
                self.fetched.add(rows);
                rows = 0;
                if sender.send(self.batch(&mut builders)).await.is_err() {
                    return Ok(false);
                }
            }
        }
        if !decoder.finished {
            return Err(DataFusionError::Execution(format!(
                "reading from {}: the rows ended without COPY's trailer",
                self.database.shown
            )));
        }
        drop(stream);
        if in_transaction {
            if let Err(e) = conn.execute("COMMIT").await {
                return Err(self.database.error(doing, e).await);
            }
        }
        if rows > 0 {
            self.fetched.add(rows);
            let _ = sender.send(self.batch(&mut builders)).await;
        }
        Ok(true)
    }

    /// Streams the rows of a SQLite table through its C API
    /// ([`super::lite`]), decoding each value straight into its builder.
    async fn rows_sqlite(&self, conn: &mut SqliteConnection, sender: &Sender) -> Result<()> {
        let shown = &self.database.shown;
        let failed = |why: String| DataFusionError::Execution(format!("reading in {shown}: {why}"));
        let mut handle = match conn.lock_handle().await {
            Ok(handle) => handle,
            Err(e) => return Err(self.database.error("reading", e).await),
        };
        let mut statement = Statement::prepare(&mut handle, &self.sql).map_err(failed)?;
        for (i, param) in self.params.iter().enumerate() {
            statement.bind_param(i + 1, param).map_err(failed)?;
        }
        let mut builders: Vec<Builder> = self
            .wires
            .iter()
            .map(|w| Builder::new(*w, self.batch_size))
            .collect();
        loop {
            let mut rows = 0;
            while rows < self.batch_size && statement.step().map_err(failed)? {
                for (i, builder) in builders.iter_mut().enumerate() {
                    statement.append(builder, i).map_err(|e| {
                        DataFusionError::Execution(format!(
                            "reading column {} of {shown}: {e}",
                            self.schema.field(i).name(),
                        ))
                    })?;
                }
                rows += 1;
            }
            if rows > 0 {
                self.fetched.add(rows);
                if sender.send(self.batch(&mut builders)).await.is_err() {
                    return Ok(());
                }
            }
            // A short batch was the last: stepping past the end would run
            // the statement again.
            if rows < self.batch_size {
                return Ok(());
            }
        }
    }

    /// The rows decoded so far as a batch of the declared types.
    fn batch(&self, builders: &mut [Builder]) -> Result<RecordBatch> {
        let columns = builders
            .iter_mut()
            .zip(self.schema.fields())
            .map(|(builder, field)| to_declared(builder.finish(), field))
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

fn bind_error(e: sqlx::error::BoxDynError) -> DataFusionError {
    DataFusionError::Execution(format!("binding a filter value: {e}"))
}

/// Parameters for PostgreSQL.
pub fn pg_arguments(params: &[Param]) -> Result<PgArguments> {
    let mut args = PgArguments::default();
    for param in params {
        match param {
            Param::Bool(v) => args.add(*v),
            Param::Int(v) => args.add(*v),
            Param::Float(v) => args.add(*v),
            Param::Text(v) => args.add(v.clone()),
            Param::Bytes(v) => args.add(v.clone()),
            Param::Date(v) => args.add(*v),
            Param::Timestamp(v) => args.add(*v),
            Param::TimestampUtc(v) => args.add(*v),
        }
        .map_err(bind_error)?;
    }
    Ok(args)
}

/// Parameters for SQLite, dates and timestamps as its text.
pub fn sqlite_arguments(params: &[Param]) -> Result<SqliteArguments> {
    let mut args = SqliteArguments::default();
    for param in params {
        match param.for_sqlite() {
            Param::Int(v) => args.add(v),
            Param::Float(v) => args.add(v),
            Param::Text(v) => args.add(v),
            Param::Bytes(v) => args.add(v),
            other => unreachable!("for_sqlite leaves no {other:?}"),
        }
        .map_err(bind_error)?;
    }
    Ok(args)
}

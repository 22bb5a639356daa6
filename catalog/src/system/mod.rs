//! The catalog as SQL: the `nuthatch` schema of system tables.
//!
//! Like DataFusion's `information_schema`, the schema is a
//! [`SchemaProvider`] whose tables are computed when they are scanned, never
//! stored: [`caches`] lists the entries of every tier (and takes `DELETE`),
//! [`lineage`] what each entry was computed from,
//! [`tiers`] the tiers themselves, [`calls`] the cached calls of the session
//! that asks; a format may add one of its own
//! (`nuthatch_backends::Backend::system_table`: `nuthatch.terracotta`). Front ends add tables this crate cannot fill, such as the
//! registered functions, with [`SystemSchema::with_table`].
//!
//! A table's rows are produced by a [`Lazy`] partition: the listing starts
//! when the plan runs, not when it is planned, so `EXPLAIN` costs nothing.

pub mod caches;
pub mod calls;
pub mod delete;
pub mod lineage;
pub mod tiers;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::{Result, ScalarValue};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, Operator, TableType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::ExecutionPlan;
use futures::future::BoxFuture;

use crate::report::ReportLog;
use crate::Catalog;

pub use caches::CachesTable;
pub use calls::calls_table;
pub use delete::{DeleteEntriesExec, DeleteGuard};
pub use tiers::tiers_table;

/// The schema's name under the default catalog: `nuthatch.caches`.
pub const SCHEMA: &str = "nuthatch";

/// The `nuthatch` schema of one session.
#[derive(Debug)]
pub struct SystemSchema {
    tables: BTreeMap<String, Arc<dyn TableProvider>>,
}

impl SystemSchema {
    /// The tables this crate fills: `caches` and `tiers` over `catalog`,
    /// `calls` over the session's `reports`.
    pub fn new(catalog: Arc<Catalog>, reports: Arc<ReportLog>) -> SystemSchema {
        let mut tables: BTreeMap<String, Arc<dyn TableProvider>> = BTreeMap::new();
        tables.insert(
            "caches".into(),
            Arc::new(CachesTable::new(Arc::clone(&catalog))),
        );
        tables.insert(
            "lineage".into(),
            Arc::new(lineage::LineageTable::new(Arc::clone(&catalog))),
        );
        // Formats' own tables, over every tier (the root path of each).
        for backend in catalog.backends().iter() {
            let tiers = (catalog.tiers())
                .map(|tier| {
                    let at = tier.data_location(&**backend, object_store::path::Path::from(""));
                    (tier.name().to_string(), at)
                })
                .collect();
            if let Some((name, table)) = backend.system_table(tiers) {
                tables.insert(name.to_string(), table);
            }
        }
        tables.insert("tiers".into(), Arc::new(tiers_table(catalog)));
        tables.insert("calls".into(), Arc::new(calls_table(reports)));
        SystemSchema { tables }
    }

    /// Adds a table a front end fills.
    pub fn with_table(mut self, name: &str, table: Arc<dyn TableProvider>) -> SystemSchema {
        self.tables.insert(name.to_string(), table);
        self
    }
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        self.tables.keys().cloned().collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(self.tables.get(&name.to_ascii_lowercase()).cloned())
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.contains_key(&name.to_ascii_lowercase())
    }
}

type Produce = Arc<dyn Fn() -> BoxFuture<'static, Result<RecordBatch>> + Send + Sync>;

/// A system table without pushdown: `produce` makes its one batch each
/// time a plan of it runs.
pub struct LazyTable {
    schema: SchemaRef,
    produce: Produce,
}

impl LazyTable {
    pub fn new(
        schema: SchemaRef,
        produce: impl Fn() -> BoxFuture<'static, Result<RecordBatch>> + Send + Sync + 'static,
    ) -> LazyTable {
        LazyTable {
            schema,
            produce: Arc::new(produce),
        }
    }
}

impl fmt::Debug for LazyTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyTable")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TableProvider for LazyTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        lazy_scan(
            state,
            Arc::clone(&self.schema),
            projection,
            limit,
            Arc::clone(&self.produce),
        )
        .await
    }
}

/// A partition whose one batch is made when it is executed.
pub struct Lazy {
    schema: SchemaRef,
    produce: Produce,
}

impl fmt::Debug for Lazy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lazy").finish_non_exhaustive()
    }
}

impl PartitionStream for Lazy {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let produce = Arc::clone(&self.produce);
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            futures::stream::once(async move { produce().await }),
        ))
    }
}

/// Plans a scan of a table whose rows `produce` makes when the plan runs.
pub async fn lazy_scan(
    state: &dyn Session,
    schema: SchemaRef,
    projection: Option<&Vec<usize>>,
    limit: Option<usize>,
    produce: Produce,
) -> Result<Arc<dyn ExecutionPlan>> {
    let partition = Arc::new(Lazy {
        schema: Arc::clone(&schema),
        produce,
    });
    StreamingTable::try_new(schema, vec![partition])?
        .scan(state, projection, &[], limit)
        .await
}

/// The values a text `column` may take under `filters` (an `AND` of
/// them): `column = 'v'` and `column IN ('v', 'w')` narrow it; `None`
/// when no filter says.
pub fn allowed_values(filters: &[Expr], column: &str) -> Option<BTreeSet<String>> {
    let mut allowed: Option<BTreeSet<String>> = None;
    for filter in filters {
        if let Some(values) = values_of(filter, column) {
            allowed = Some(match allowed {
                Some(before) => before.intersection(&values).cloned().collect(),
                None => values,
            });
        }
    }
    allowed
}

/// Does `filter` restrict `column` to a list of text values?
pub fn restricts(filter: &Expr, column: &str) -> bool {
    values_of(filter, column).is_some()
}

fn values_of(filter: &Expr, column: &str) -> Option<BTreeSet<String>> {
    let is_column = |e: &Expr| matches!(e, Expr::Column(c) if c.name == column);
    let text = |e: &Expr| match e {
        Expr::Literal(value, _) => value_text(value),
        _ => None,
    };
    match filter {
        Expr::BinaryExpr(binary) if binary.op == Operator::Eq => {
            let value = if is_column(&binary.left) {
                text(&binary.right)
            } else if is_column(&binary.right) {
                text(&binary.left)
            } else {
                None
            }?;
            Some(BTreeSet::from([value]))
        }
        Expr::InList(list) if !list.negated && is_column(&list.expr) => {
            list.list.iter().map(text).collect()
        }
        _ => None,
    }
}

fn value_text(value: &ScalarValue) -> Option<String> {
    value.try_as_str().flatten().map(str::to_string)
}

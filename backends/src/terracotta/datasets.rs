//! `nuthatch.terracotta`: the datasets registered in each tier's Terracotta
//! database, with the metadata Terracotta serves of them, so a map's
//! contents can be checked in SQL (`SELECT key, min, max FROM
//! nuthatch.terracotta WHERE tier = 'root'`).
//!
//! The databases are read when the table is scanned. A tier whose database
//! does not exist yet (no SQLite file beside it, no Terracotta tables in
//! its PostgreSQL) has no rows; one whose database cannot be reached fails
//! the scan with the database named, never its password.

use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::TableType;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::ExecutionPlan;

use super::database::{self, Registered};
use super::{TerracottaBackend, TerracottaSettings};
use crate::sql::database::Databases;
use crate::Location;

/// The table's name in the `nuthatch` schema.
pub const NAME: &str = "terracotta";

/// The table over `tiers` (name, the tier's root for this format).
pub struct DatasetsTable {
    tiers: Arc<Vec<(String, Location)>>,
    databases: Arc<Databases>,
    schema: SchemaRef,
}

impl fmt::Debug for DatasetsTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatasetsTable({} tiers)", self.tiers.len())
    }
}

impl DatasetsTable {
    pub fn new(tiers: Vec<(String, Location)>, databases: Arc<Databases>) -> DatasetsTable {
        let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
        let number = |name: &str| Field::new(name, DataType::Float64, true);
        let schema = Arc::new(Schema::new(vec![
            text("tier", false),
            text("key", false),
            text("path", true),
            number("west"),
            number("south"),
            number("east"),
            number("north"),
            number("valid_percentage"),
            number("min"),
            number("max"),
            number("mean"),
            number("stdev"),
        ]));
        DatasetsTable {
            tiers: Arc::new(tiers),
            databases,
            schema,
        }
    }
}

#[async_trait]
impl TableProvider for DatasetsTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let listing = Arc::new(Listing {
            tiers: Arc::clone(&self.tiers),
            databases: Arc::clone(&self.databases),
            schema: Arc::clone(&self.schema),
        });
        Ok(Arc::new(StreamingTableExec::try_new(
            Arc::clone(&self.schema),
            vec![listing],
            projection,
            [],
            false,
            limit,
        )?))
    }
}

/// The one partition, which reads the databases when it runs.
struct Listing {
    tiers: Arc<Vec<(String, Location)>>,
    databases: Arc<Databases>,
    schema: SchemaRef,
}

impl fmt::Debug for Listing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TerracottaDatasets")
    }
}

impl PartitionStream for Listing {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (tiers, databases, schema) = (
            Arc::clone(&self.tiers),
            Arc::clone(&self.databases),
            Arc::clone(&self.schema),
        );
        let batch = async move {
            let mut rows = Vec::new();
            for (tier, at) in tiers.iter() {
                for dataset in tier_datasets(&databases, at).await? {
                    rows.push((tier.clone(), dataset));
                }
            }
            batch(schema, rows)
        };
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            futures::stream::once(batch),
        ))
    }
}

/// The datasets of one tier's database; none when it has none yet, or
/// when the tier has no database (an object store without settings).
async fn tier_datasets(databases: &Databases, at: &Location) -> Result<Vec<Registered>> {
    let default = TerracottaSettings::default();
    let settings = at.settings.get::<TerracottaSettings>().unwrap_or(&default);
    let Ok(database) = TerracottaBackend::open_database(databases, at, settings) else {
        return Ok(Vec::new());
    };
    if database
        .sqlite_file()
        .is_some_and(|file| !std::path::Path::new(file).exists())
    {
        return Ok(Vec::new());
    }
    database::datasets(&database.pools).await
}

fn batch(schema: SchemaRef, rows: Vec<(String, Registered)>) -> Result<RecordBatch> {
    let text = |f: fn(&(String, Registered)) -> Option<&str>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<StringArray>())
    };
    let number = |f: fn(&Registered) -> Option<f64>| -> ArrayRef {
        Arc::new(rows.iter().map(|(_, r)| f(r)).collect::<Float64Array>())
    };
    let bound = |side: usize| -> ArrayRef {
        Arc::new(
            rows.iter()
                .map(|(_, r)| r.bounds.map(|b| b[side]))
                .collect::<Float64Array>(),
        )
    };
    let columns = vec![
        text(|(tier, _)| Some(tier)),
        text(|(_, r)| Some(&r.key)),
        text(|(_, r)| r.path.as_deref()),
        bound(0),
        bound(1),
        bound(2),
        bound(3),
        number(|r| r.valid_percentage),
        number(|r| r.min),
        number(|r| r.max),
        number(|r| r.mean),
        number(|r| r.stdev),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

//! `nuthatch.tiers`: the tiers of the catalog, whether each can be reached,
//! and how many entries it holds (one LIST each, all at once), with the
//! memory tier last. Locations are shown without credentials.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use futures::FutureExt;

use super::caches::MEMORY;
use super::lazy_scan;
use crate::Catalog;

#[derive(Debug)]
pub struct TiersTable {
    catalog: Arc<Catalog>,
    schema: SchemaRef,
}

impl TiersTable {
    pub fn new(catalog: Arc<Catalog>) -> TiersTable {
        let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
        let schema = Arc::new(Schema::new(vec![
            text("name", false),
            text("role", false),
            text("url", true),
            Field::new("read_only", DataType::Boolean, false),
            Field::new("reachable", DataType::Boolean, false),
            Field::new("entries", DataType::Int64, true),
            Field::new("null_markers", DataType::Int64, true),
            Field::new("bytes", DataType::Int64, true),
            text("problem", true),
        ]));
        TiersTable { catalog, schema }
    }
}

async fn tiers_batch(catalog: &Catalog, schema: SchemaRef) -> Result<RecordBatch> {
    let tiers: Vec<_> = catalog.tiers().cloned().collect();
    // Listed directly, not through `Catalog::list`, so that an unreachable
    // mirror shows as such instead of as empty.
    let listings =
        futures::future::join_all(tiers.iter().map(|tier| catalog.list_strict(tier))).await;
    let mut name = Vec::new();
    let mut role = Vec::new();
    let mut url = Vec::new();
    let mut read_only = Vec::new();
    let mut reachable = Vec::new();
    let mut entries = Vec::new();
    let mut nulls = Vec::new();
    let mut bytes = Vec::new();
    let mut problem = Vec::new();
    for (tier, listing) in tiers.iter().zip(listings) {
        name.push(Some(tier.name().to_string()));
        role.push(Some(tier.role().name().to_string()));
        url.push(Some(tier.url().to_string()));
        read_only.push(tier.is_read_only());
        bytes.push(None);
        match listing {
            Ok(listed) => {
                let null_count = listed.iter().filter(|l| l.is_null()).count();
                reachable.push(true);
                entries.push(Some((listed.len() - null_count) as i64));
                nulls.push(Some(null_count as i64));
                problem.push(None);
            }
            Err(e) => {
                reachable.push(false);
                entries.push(None);
                nulls.push(None);
                problem.push(Some(e.to_string()));
            }
        }
    }
    let (count, used) = catalog.memory().usage();
    name.push(Some(MEMORY.to_string()));
    role.push(Some(MEMORY.to_string()));
    url.push(None);
    read_only.push(false);
    reachable.push(true);
    entries.push(Some(count as i64));
    nulls.push(Some(0));
    bytes.push(Some(used as i64));
    problem.push(None);
    let text = |values: Vec<Option<String>>| Arc::new(StringArray::from(values)) as ArrayRef;
    Ok(RecordBatch::try_new(
        schema,
        vec![
            text(name),
            text(role),
            text(url),
            Arc::new(BooleanArray::from(read_only)),
            Arc::new(BooleanArray::from(reachable)),
            Arc::new(Int64Array::from(entries)),
            Arc::new(Int64Array::from(nulls)),
            Arc::new(Int64Array::from(bytes)),
            text(problem),
        ],
    )?)
}

#[async_trait]
impl TableProvider for TiersTable {
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
        let catalog = Arc::clone(&self.catalog);
        let schema = Arc::clone(&self.schema);
        lazy_scan(
            state,
            Arc::clone(&self.schema),
            projection,
            limit,
            Arc::new(move || {
                let catalog = Arc::clone(&catalog);
                let schema = Arc::clone(&schema);
                async move { tiers_batch(&catalog, schema).await }.boxed()
            }),
        )
        .await
    }
}

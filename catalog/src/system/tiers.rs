//! `nuthatch.tiers`: the tiers of the catalog, whether each can be reached,
//! and how many entries it holds (one LIST each, all at once), with the
//! memory tier last. Locations are shown without credentials.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::Result;
use futures::FutureExt;

use super::caches::MEMORY;
use super::LazyTable;
use crate::Catalog;

/// The table over a catalog's tiers.
pub fn tiers_table(catalog: Arc<Catalog>) -> LazyTable {
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
    let produced = Arc::clone(&schema);
    LazyTable::new(schema, move || {
        let catalog = Arc::clone(&catalog);
        let schema = Arc::clone(&produced);
        async move { tiers_batch(&catalog, schema).await }.boxed()
    })
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

//! `nuthatch.lineage`: one row per edge from an entry to an input its
//! compute read ([`crate::lineage`]): another entry, or a file.
//!
//! Rows come from the metadata rows of the entries listed, as for
//! `nuthatch.caches`, with `WHERE function = ...` and `WHERE tier = ...`
//! pushed into the listing (`function` is the reader's). Entries that
//! recorded no lineage have no rows here; `nuthatch.caches` says why
//! their staleness is unknown.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use futures::FutureExt;

use super::caches::{list_rows, CacheRow, Selection};
use super::{lazy_scan, restricts};
use crate::lineage::{Input, Lineage};
use crate::Catalog;

/// The table over a catalog's recorded lineage.
#[derive(Debug)]
pub struct LineageTable {
    catalog: Arc<Catalog>,
    schema: SchemaRef,
}

impl LineageTable {
    pub fn new(catalog: Arc<Catalog>) -> LineageTable {
        let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
        let micros = |name: &str| {
            Field::new(
                name,
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            )
        };
        let schema = Arc::new(Schema::new(vec![
            text("tier", false),
            text("function", false),
            text("key", false),
            text("namespace", true),
            text("backend", false),
            text("input_kind", false),
            text("input_function", true),
            text("input_key", true),
            text("input_namespace", true),
            text("input_tier", true),
            text("input_backend", true),
            text("input_version", true),
            micros("input_committed"),
            text("input_url", true),
            Field::new("input_bytes", DataType::Int64, true),
            micros("input_modified"),
        ]));
        LineageTable { catalog, schema }
    }
}

#[derive(Default)]
struct Columns {
    text: Vec<Vec<Option<String>>>,
    committed: Vec<Option<i64>>,
    bytes: Vec<Option<i64>>,
    modified: Vec<Option<i64>>,
}

impl Columns {
    fn push(&mut self, reader: [Option<String>; 5], input: &Input) {
        let (kind, entry, file) = match input {
            Input::Entry(e) => ("entry", Some(e), None),
            Input::File(f) => ("file", None, Some(f)),
        };
        let fields = reader.into_iter().chain([
            Some(kind.to_string()),
            entry.map(|e| e.function.clone()),
            entry.map(|e| e.key.clone()),
            entry.and_then(|e| e.namespace.clone()),
            entry.map(|e| e.tier.clone()),
            entry.map(|e| e.backend.clone()),
            entry.and_then(|e| e.version.clone()),
            file.map(|f| f.url.clone()),
        ]);
        if self.text.is_empty() {
            self.text = vec![Vec::new(); 13];
        }
        for (column, value) in self.text.iter_mut().zip(fields) {
            column.push(value);
        }
        self.committed.push(entry.map(|e| e.committed as i64));
        self.bytes.push(file.map(|f| f.size as i64));
        self.modified.push(file.map(|f| f.modified));
    }

    fn batch(mut self, schema: SchemaRef) -> Result<RecordBatch> {
        if self.text.is_empty() {
            self.text = vec![Vec::new(); 13];
        }
        let text = |values: Vec<Option<String>>| Arc::new(StringArray::from(values)) as ArrayRef;
        let micros = |values: Vec<Option<i64>>| {
            Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC")) as ArrayRef
        };
        let mut text_columns = self.text.into_iter().map(text);
        let mut columns: Vec<ArrayRef> = text_columns.by_ref().take(12).collect();
        columns.push(micros(self.committed));
        columns.extend(text_columns);
        columns.push(Arc::new(Int64Array::from(self.bytes)));
        columns.push(micros(self.modified));
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

async fn lineage_batch(
    catalog: &Catalog,
    selection: &Selection,
    schema: SchemaRef,
) -> Result<RecordBatch> {
    let mut columns = Columns::default();
    for listing in list_rows(catalog, selection).await? {
        let CacheRow::Stored(listed) = listing.row else {
            continue;
        };
        let Some(row) = listed.metadata() else {
            continue;
        };
        let Lineage::Recorded(inputs) = &row.recorded.lineage else {
            continue;
        };
        let (key, namespace) = listed.key();
        for input in inputs {
            let reader = [
                Some(listed.tier.name().to_string()),
                Some(listed.function.clone()),
                Some(key.clone()),
                namespace.clone(),
                Some(row.backend.clone()),
            ];
            columns.push(reader, input);
        }
    }
    columns.batch(schema)
}

#[async_trait]
impl TableProvider for LineageTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(
                |filter| match restricts(filter, "tier") || restricts(filter, "function") {
                    true => TableProviderFilterPushDown::Inexact,
                    false => TableProviderFilterPushDown::Unsupported,
                },
            )
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut selection = Selection::from_filters(filters, true);
        // The memory tier records no lineage.
        selection.judges = false;
        selection.only_stale = false;
        let selection = Arc::new(selection);
        let catalog = Arc::clone(&self.catalog);
        let schema = Arc::clone(&self.schema);
        lazy_scan(
            state,
            Arc::clone(&self.schema),
            projection,
            limit,
            Arc::new(move || {
                let (catalog, selection) = (Arc::clone(&catalog), Arc::clone(&selection));
                let schema = Arc::clone(&schema);
                async move { lineage_batch(&catalog, &selection, schema).await }.boxed()
            }),
        )
        .await
    }
}

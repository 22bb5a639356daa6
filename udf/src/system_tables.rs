//! `nuthatch.functions`: every cached function the engine knows, with
//! what decides its keys (parameters, cache_args, version, namespace) and
//! where it stores (backend, timeseries column), and for SQL-defined
//! functions the body and the file it came from. The other system tables
//! are the catalog's ([`nuthatch_catalog::system`]); this one needs the
//! registry, which only this crate has.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, ListBuilder, RecordBatch, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::Result;
use futures::FutureExt;
use nuthatch_catalog::system::LazyTable;

use crate::function::{Body, CachedFunction};
use crate::registry::Registry;

/// The table over an engine's registry.
pub fn functions_table(registry: Arc<Registry>) -> LazyTable {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    let flag = |name: &str| Field::new(name, DataType::Boolean, false);
    let schema = Arc::new(Schema::new(vec![
        text("name", false),
        text("parameters", false),
        Field::new(
            "cache_args",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            false,
        ),
        text("version", true),
        text("namespace", true),
        text("timeseries", true),
        text("coverage", true),
        text("order_by", true),
        text("backend", true),
        text("storage_backend", true),
        flag("memoize"),
        flag("cache"),
        flag("fail_if_no_cache"),
        text("returns", false),
        text("language", false),
        text("body", true),
        text("source", true),
    ]));
    let produced = Arc::clone(&schema);
    LazyTable::new(schema, move || {
        let batch = functions_batch(Arc::clone(&produced), &registry.all());
        async move { batch }.boxed()
    })
}

fn functions_batch(schema: SchemaRef, functions: &[Arc<CachedFunction>]) -> Result<RecordBatch> {
    let text = |f: &dyn Fn(&CachedFunction) -> Option<String>| {
        Arc::new(StringArray::from_iter(functions.iter().map(|x| f(x)))) as ArrayRef
    };
    let flag = |f: &dyn Fn(&CachedFunction) -> bool| {
        Arc::new(BooleanArray::from_iter(
            functions.iter().map(|x| Some(f(x))),
        )) as ArrayRef
    };
    let mut cache_args = ListBuilder::new(StringBuilder::new());
    for function in functions {
        for name in function.cache_args() {
            cache_args.values().append_value(name);
        }
        cache_args.append(true);
    }
    let returns = |f: &CachedFunction| Some(f.returns());
    Ok(RecordBatch::try_new(
        schema,
        vec![
            text(&|f| Some(f.name().to_string())),
            text(&|f| Some(f.parameters())),
            Arc::new(cache_args.finish()),
            text(&|f| f.version().map(str::to_string)),
            text(&|f| f.namespace().map(str::to_string)),
            text(&|f| f.timeseries().map(str::to_string)),
            text(&|f| f.coverage().map(|c| c.name().to_string())),
            text(&|f| (!f.order_by().is_empty()).then(|| f.order_by().join(", "))),
            text(&|f| f.backend().map(str::to_string)),
            text(&|f| f.storage_backend().map(str::to_string)),
            flag(&|f| f.memoizes()),
            flag(&|f| f.caches()),
            flag(&|f| f.fails_if_no_cache()),
            text(&returns),
            text(&|f| {
                Some(match f.body() {
                    Body::Sql(_) => "sql".to_string(),
                    Body::Rust(_) => "rust".to_string(),
                })
            }),
            text(&|f| match f.body() {
                Body::Sql(body) => Some(body.text()),
                Body::Rust(_) => None,
            }),
            text(&|f| f.source().map(|p| p.display().to_string())),
        ],
    )?)
}

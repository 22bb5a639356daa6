//! `nuthatch.functions`: every cached function the engine knows, with its
//! parameters, every option its definition takes (what decides its keys,
//! where and how it stores), and for SQL-defined functions the body and
//! the file it came from. The other system tables
//! are the catalog's ([`nuthatch_catalog::system`]); this one needs the
//! registry, which only this crate has.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, ListBuilder, RecordBatch, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::Result;
use futures::FutureExt;
use nuthatch_catalog::system::LazyTable;

use crate::function::{Body, CachedFunction};
use crate::options::{Shown, OPTIONS};
use crate::registry::Registry;

/// The table over an engine's registry: the name and parameters, a column
/// per option a definition takes ([`OPTIONS`], in its order), then what
/// the function returns and its body.
pub fn functions_table(registry: Arc<Registry>) -> LazyTable {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    let mut fields = vec![text("name", false), text("parameters", false)];
    for option in OPTIONS {
        fields.push(match option.shown {
            None => continue,
            Some(Shown::Text(_)) => text(option.name, true),
            Some(Shown::Flag(_)) => Field::new(option.name, DataType::Boolean, false),
            Some(Shown::Names(_)) => Field::new(
                option.name,
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                false,
            ),
        });
    }
    fields.extend([
        text("returns", false),
        text("language", false),
        text("body", true),
        text("source", true),
    ]);
    let schema = Arc::new(Schema::new(fields));
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
    let mut columns = vec![
        text(&|f| Some(f.name().to_string())),
        text(&|f| Some(f.parameters())),
    ];
    for option in OPTIONS {
        columns.push(match option.shown {
            None => continue,
            Some(Shown::Text(show)) => text(&show),
            Some(Shown::Flag(show)) => Arc::new(BooleanArray::from_iter(
                functions.iter().map(|f| Some(show(f))),
            )),
            Some(Shown::Names(show)) => {
                let mut lists = ListBuilder::new(StringBuilder::new());
                for function in functions {
                    for name in show(function) {
                        lists.values().append_value(name);
                    }
                    lists.append(true);
                }
                Arc::new(lists.finish())
            }
        });
    }
    columns.extend([
        text(&|f| Some(f.returns())),
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
    ]);
    Ok(RecordBatch::try_new(schema, columns)?)
}

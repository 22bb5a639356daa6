//! `nuthatch.calls`: the cached calls of the session that asks, oldest
//! first: how each was served, where, and what it read.

use std::sync::Arc;

use arrow::array::TimestampMicrosecondArray;
use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::Result;
use futures::FutureExt;

use super::LazyTable;
use crate::report::ReportLog;

/// The table over a session's call log.
pub fn calls_table(reports: Arc<ReportLog>) -> LazyTable {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    let count = |name: &str| Field::new(name, DataType::Int64, true);
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "finished_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        text("function", false),
        text("key", false),
        text("namespace", true),
        text("outcome", false),
        text("tier", true),
        text("copied_to", true),
        text("backend", false),
        count("rows"),
        count("row_groups_read"),
        count("row_groups_total"),
        count("chunks_read"),
        count("chunks_total"),
        count("chunks_missing"),
        count("files_read"),
        count("files_total"),
        count("data_version"),
        count("rows_inserted"),
        text("ranges_computed", true),
        count("rows_updated"),
        count("rows_fetched"),
        count("bytes_scanned"),
        count("spilled_bytes"),
        Field::new("elapsed_ms", DataType::Float64, false),
        text("changes", true),
        text("stale", true),
        text("waited_for", true),
        Field::new("waited_ms", DataType::Float64, true),
        text("error", true),
    ]));
    let produced = Arc::clone(&schema);
    LazyTable::new(schema, move || {
        let batch = calls_batch(Arc::clone(&produced), &reports);
        async move { batch }.boxed()
    })
}

fn calls_batch(schema: SchemaRef, reports: &ReportLog) -> Result<RecordBatch> {
    let history = reports.history();
    let text = |f: &dyn Fn(&crate::CallReport) -> Option<String>| {
        Arc::new(StringArray::from_iter(history.iter().map(|(_, r)| f(r)))) as ArrayRef
    };
    let count = |f: &dyn Fn(&crate::CallReport) -> Option<usize>| {
        Arc::new(Int64Array::from_iter(
            history.iter().map(|(_, r)| f(r).map(|n| n as i64)),
        )) as ArrayRef
    };
    let finished = TimestampMicrosecondArray::from_iter_values(
        history.iter().map(|(at, _)| at.timestamp_micros()),
    )
    .with_timezone("UTC");
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(finished),
            text(&|r| Some(r.function.clone())),
            text(&|r| Some(r.key.clone())),
            text(&|r| r.namespace.clone()),
            text(&|r| Some(r.outcome_name().to_string())),
            text(&|r| r.tier.clone()),
            text(&|r| r.copied_to.clone()),
            text(&|r| Some(r.backend.clone())),
            count(&|r| Some(r.rows)),
            count(&|r| r.row_groups_read.map(|(read, _)| read)),
            count(&|r| r.row_groups_read.map(|(_, total)| total)),
            count(&|r| r.chunks_read.map(|(read, _)| read)),
            count(&|r| r.chunks_read.map(|(_, total)| total)),
            count(&|r| r.chunks_read.map(|_| r.chunks_missing)),
            count(&|r| r.files_read.map(|(read, _)| read)),
            count(&|r| r.files_read.map(|(_, total)| total)),
            count(&|r| r.data_version.map(|v| v as usize)),
            count(&|r| r.inserted.map(|n| n as usize)),
            text(&|r| r.computed_ranges.as_ref().map(|c| c.to_string())),
            count(&|r| r.updated.map(|n| n as usize)),
            count(&|r| r.rows_fetched),
            count(&|r| r.bytes_scanned),
            count(&|r| Some(r.spilled_bytes)),
            Arc::new(Float64Array::from_iter_values(
                history
                    .iter()
                    .map(|(_, r)| r.elapsed.as_secs_f64() * 1000.0),
            )),
            text(&|r| crate::report::changes_text(&r.changes)),
            text(&|r| r.stale.clone()),
            text(&|r| r.waited.as_ref().map(|w| w.holder.clone())),
            Arc::new(Float64Array::from_iter(history.iter().map(|(_, r)| {
                r.waited.as_ref().map(|w| w.waited.as_secs_f64() * 1000.0)
            }))),
            text(&|r| r.failed.clone()),
        ],
    )?)
}

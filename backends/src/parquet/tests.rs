//! Reads within a window's bounds over files whose order is recorded by
//! their entry (a Delta version's) rather than by the files themselves.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::physical_plan::collect;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::prelude::SessionContext;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use super::{ParquetFormat, ROWS_ASCEND};
use crate::files::FileEntry;
use crate::Location;

const HOUR: i64 = 3_600_000_000;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        Field::new("hour", DataType::Int64, false),
    ]))
}

/// A Parquet file of the hours `hours`, in that order, in small pages so
/// that a read within bounds would select rows inside its row group; with
/// `mark`, it says its rows ascend by time.
fn file(hours: &[i64], mark: bool) -> Vec<u8> {
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(TimestampMicrosecondArray::from_iter_values(
                hours.iter().map(|h| h * HOUR),
            )),
            Arc::new(Int64Array::from(hours.to_vec())),
        ],
    )
    .unwrap();
    let marks = mark.then(|| vec![KeyValue::new(ROWS_ASCEND.into(), "time".to_string())]);
    let properties = WriterProperties::builder()
        .set_data_page_row_count_limit(16)
        .set_write_batch_size(16)
        .set_key_value_metadata(marks)
        .build();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, schema(), Some(properties)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    bytes
}

/// The hours that `SELECT hour ... WHERE <window>` reads from an entry of
/// `files`, each of the hours given and marked as given, in an entry whose
/// files each ascend by time; and whether the plan filters rows above the
/// entry's scan.
async fn window(files: &[(&[i64], bool)], window: &str) -> (Vec<i64>, bool) {
    let ctx = entry(files).await;
    let sql = format!("SELECT hour FROM entry WHERE {window}");
    let frame = ctx.sql(&sql).await.unwrap();
    let plan = frame.create_physical_plan().await.unwrap();
    let mut filtered = false;
    plan.apply(|node| {
        filtered |= node.downcast_ref::<FilterExec>().is_some();
        Ok(TreeNodeRecursion::Continue)
    })
    .unwrap();
    let batches = collect(plan, ctx.task_ctx()).await.unwrap();
    let mut hours: Vec<i64> = (batches.iter())
        .flat_map(|b| b.column(0).as_any().downcast_ref::<Int64Array>().unwrap())
        .map(Option::unwrap)
        .collect();
    hours.sort();
    (hours, filtered)
}

/// `SELECT count(*) ... WHERE <window>` over an entry of `files`.
async fn count(files: &[(&[i64], bool)], window: &str) -> i64 {
    let ctx = entry(files).await;
    let sql = format!("SELECT count(*) FROM entry WHERE {window}");
    let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    let counts = batches[0].column(0).as_any().downcast_ref::<Int64Array>();
    counts.unwrap().value(0)
}

/// A session with the table `entry` of `files` (see [`window`]).
async fn entry(files: &[(&[i64], bool)]) -> SessionContext {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut metas = Vec::new();
    for (i, (hours, mark)) in files.iter().enumerate() {
        let path = Path::from(format!("entry.delta/part-{i}.parquet"));
        let bytes = PutPayload::from(file(hours, *mark));
        store.put(&path, bytes).await.unwrap();
        metas.push(store.head(&path).await.unwrap());
    }
    let url = ObjectStoreUrl::parse("memory://").unwrap();
    let at = Location::new(Arc::clone(&store), url.clone(), Path::from("entry.delta"));
    let entry = FileEntry::new(ParquetFormat, &at, metas, schema())
        .ascending_within_files(Some("time".into()));
    let ctx = SessionContext::new();
    ctx.register_object_store(url.as_ref(), store);
    ctx.register_table("entry", Arc::new(entry)).unwrap();
    ctx
}

const INSIDE: &str =
    "time >= TIMESTAMP '1970-01-03 00:00:00' AND time < TIMESTAMP '1970-01-05 00:00:00'";

#[tokio::test]
async fn a_file_that_does_not_say_its_rows_ascend_is_read_whole_within_a_window() {
    // Hours 0..200 shuffled (a stride coprime with 200), so that the rows
    // within the window are spread over every page.
    let shuffled: Vec<i64> = (0..200).map(|i| (i * 77) % 200).collect();
    let expected: Vec<i64> = (48..96).collect();
    let (hours, filtered) = window(&[(&shuffled, false)], INSIDE).await;
    assert_eq!(hours, expected);
    assert!(
        filtered,
        "the unmarked file's rows are filtered after the read"
    );

    // The same window over a marked file in order reads only its rows,
    // and the same ones, with nothing left to filter.
    let ascending: Vec<i64> = (0..200).collect();
    assert_eq!(
        window(&[(&ascending, true)], INSIDE).await,
        (expected, false)
    );
}

#[tokio::test]
async fn a_window_over_files_some_unmarked_keeps_only_its_rows() {
    // Two marked files in order and a shuffled unmarked one between them,
    // the window meeting the first two: the scan says it applies the
    // window exactly, so it must for the unmarked file too.
    let early: Vec<i64> = (0..60).collect();
    let middle: Vec<i64> = (60..120).map(|i| 60 + (i * 7) % 60).collect();
    let late: Vec<i64> = (120..200).collect();
    let files = [(&early[..], true), (&middle[..], false), (&late[..], true)];
    let expected: Vec<i64> = (48..96).collect();
    let (hours, filtered) = window(&files, INSIDE).await;
    assert_eq!(hours, expected);
    assert!(filtered);
    // Counting reads no column, and the filter applied in the scan still
    // needs the time; a limit applies after it.
    assert_eq!(count(&files, INSIDE).await, 48);
    let (hours, _) = window(&files, &format!("{INSIDE} LIMIT 5")).await;
    assert_eq!(hours.len(), 5);
    assert!(
        hours.iter().all(|hour| (48..96).contains(hour)),
        "{hours:?}"
    );

    let marked = [(&early[..], true), (&late[..], true)];
    let (hours, filtered) = window(&marked, "time < TIMESTAMP '1970-01-06 12:00:00'").await;
    assert_eq!(hours, (0..60).chain(120..132).collect::<Vec<_>>());
    assert!(!filtered, "every file read within the window");
}

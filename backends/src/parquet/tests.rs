//! Reads within a window's bounds over files whose order is recorded by
//! their entry (a Delta version's) rather than by the files themselves.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::execution::object_store::ObjectStoreUrl;
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

/// The hours that `SELECT hour ... WHERE <window>` reads from one file of
/// `hours`, as one of an entry whose files each ascend by time.
async fn window(hours: &[i64], mark: bool, window: &str) -> Vec<i64> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let path = Path::from("entry.delta/part-0.parquet");
    store
        .put(&path, PutPayload::from(file(hours, mark)))
        .await
        .unwrap();
    let meta = store.head(&path).await.unwrap();
    let url = ObjectStoreUrl::parse("memory://").unwrap();
    let at = Location::new(Arc::clone(&store), url.clone(), Path::from("entry.delta"));
    let entry = FileEntry::new(ParquetFormat, &at, vec![meta], schema())
        .ascending_within_files(Some("time".into()));
    let ctx = SessionContext::new();
    ctx.register_object_store(url.as_ref(), store);
    ctx.register_table("entry", Arc::new(entry)).unwrap();
    let sql = format!("SELECT hour FROM entry WHERE {window} ORDER BY hour");
    let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    (batches.iter())
        .flat_map(|b| b.column(0).as_any().downcast_ref::<Int64Array>().unwrap())
        .map(Option::unwrap)
        .collect()
}

#[tokio::test]
async fn a_file_that_does_not_say_its_rows_ascend_is_read_whole_within_a_window() {
    // Hours 0..200 shuffled (a stride coprime with 200), so that the rows
    // within the window are spread over every page.
    let shuffled: Vec<i64> = (0..200).map(|i| (i * 77) % 200).collect();
    let inside =
        "time >= TIMESTAMP '1970-01-03 00:00:00' AND time < TIMESTAMP '1970-01-05 00:00:00'";
    let expected: Vec<i64> = (48..96).collect();
    assert_eq!(window(&shuffled, false, inside).await, expected);

    // The same window over a marked file in order reads only its rows,
    // and the same ones.
    let ascending: Vec<i64> = (0..200).collect();
    assert_eq!(window(&ascending, true, inside).await, expected);
}

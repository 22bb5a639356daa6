//! A computed result reaches its entry in the stored order however it
//! arrives: rows that arrive in order are stored as they came (no sort, and
//! `rows_sorted=0` under `EXPLAIN ANALYZE`), partitions that overlap are
//! merged, and rows out of order, even the very last one, are sorted.

use arrow::array::{Array, TimestampSecondArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use nuthatch::Outcome;

use crate::support::{Fixture, analyzed, assert_outcome, column_encodings};

/// Defines `name(start_time, end_time)` as a timeseries over `body`.
async fn define(f: &Fixture, name: &str, body: &str) {
    f.query(&format!(
        "CREATE CACHED FUNCTION {name}(start_time TIMESTAMP, end_time TIMESTAMP) \
         WITH (timeseries = 'time') AS {body}"
    ))
    .await
    .unwrap();
}

/// The miss's `EXPLAIN ANALYZE` text and the `rows_sorted` it shows.
async fn stored(f: &Fixture, name: &str) -> (String, String) {
    let plan = analyzed(f, &format!("SELECT count(*) FROM {name}(NULL, NULL)")).await;
    assert!(
        plan.contains("StoredOrderExec: [time@0 ASC NULLS LAST]"),
        "{plan}"
    );
    let sorted = metric(&plan, "rows_sorted");
    let reports = f.reports();
    let call = reports.iter().rev().find(|r| r.function == name);
    assert_outcome(
        call.unwrap_or_else(|| panic!("no call of {name}")),
        Outcome::Computed,
    );
    (plan, sorted)
}

/// The value of metric `name` in an `EXPLAIN ANALYZE` text.
fn metric(plan: &str, name: &str) -> String {
    plan.split(&format!("{name}="))
        .nth(1)
        .and_then(|rest| rest.split([',', ']']).next())
        .unwrap_or_else(|| panic!("no {name} in {plan}"))
        .to_string()
}

/// The entry file's times, in the order they are stored, as seconds.
fn stored_times(f: &Fixture, name: &str) -> Vec<Option<i64>> {
    let file = std::fs::File::open(f.root().join(format!("{name}/.parquet"))).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut times = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let column = arrow::compute::cast(
            batch.column(0),
            &arrow::datatypes::DataType::Timestamp(arrow::datatypes::TimeUnit::Second, None),
        )
        .unwrap();
        let column = column
            .as_any()
            .downcast_ref::<TimestampSecondArray>()
            .unwrap();
        times.extend(column.iter());
    }
    times
}

/// The encodings of the entry's `id` column in its first row group.
fn id_encodings(f: &Fixture, name: &str) -> String {
    column_encodings(f, name, 1)
}

/// A body of `rows` rows one second apart, in time order but for the last,
/// which belongs first.
fn last_row_first(rows: usize) -> String {
    format!(
        "SELECT CASE WHEN value = {rows} - 1 THEN to_timestamp_seconds(1577836799) \
                     ELSE to_timestamp_seconds(1577836800 + value) END AS time, \
                value AS id \
         FROM generate_series(0, {rows} - 1)"
    )
}

fn assert_ascending(times: &[Option<i64>], rows: usize) {
    assert_eq!(times.len(), rows);
    // Ascending with nulls last: `None` sorts before `Some` in Rust, so
    // compare the valid prefix and require only nulls after it.
    let valid = times.iter().take_while(|t| t.is_some()).count();
    assert!(times[valid..].iter().all(Option::is_none));
    assert!(
        times[..valid].windows(2).all(|w| w[0] <= w[1]),
        "the entry is stored in time order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_that_arrive_in_order_are_stored_without_a_sort() {
    let f = Fixture::new();
    // DataFusion cannot see that this keeps the series' order.
    define(
        &f,
        "rising",
        "SELECT to_timestamp_seconds(1577836800 + value) AS time, value AS id \
         FROM generate_series(0, 199999)",
    )
    .await;
    let (plan, sorted) = stored(&f, "rising").await;
    assert_eq!(sorted, "0", "{plan}");
    assert!(!plan.contains("SortExec"), "{plan}");
    assert_ascending(&stored_times(&f, "rising"), 200_000);
    // The id ascends with time too, so it is stored as deltas.
    assert!(id_encodings(&f, "rising").contains("DELTA_BINARY_PACKED"));

    // Nulls come last in the stored order, so trailing nulls are in order.
    define(
        &f,
        "trailing_nulls",
        "SELECT CASE WHEN value < 199800 THEN to_timestamp_seconds(1577836800 + value) END AS time, \
                value AS id \
         FROM generate_series(0, 199999)",
    )
    .await;
    let (plan, sorted) = stored(&f, "trailing_nulls").await;
    assert_eq!(sorted, "0", "{plan}");
    let times = stored_times(&f, "trailing_nulls");
    assert_ascending(&times, 200_000);
    assert_eq!(times.iter().filter(|t| t.is_none()).count(), 200);
    // A window holds no null time; the batches with them are filtered.
    assert_eq!(
        f.int("SELECT count(*) FROM trailing_nulls('2020-01-01', NULL)")
            .await,
        199_800
    );

    // Two partitions in order whose times interleave are merged, not sorted.
    define(
        &f,
        "interleaved",
        "SELECT to_timestamp_seconds(1577836800 + 2 * value) AS time, value AS id \
         FROM generate_series(0, 49999) \
         UNION ALL \
         SELECT to_timestamp_seconds(1577836801 + 2 * value) AS time, value AS id \
         FROM generate_series(0, 49999)",
    )
    .await;
    let (plan, sorted) = stored(&f, "interleaved").await;
    assert_eq!(sorted, "0", "{plan}");
    assert_ascending(&stored_times(&f, "interleaved"), 100_000);
    assert_eq!(
        f.int("SELECT sum(id) FROM interleaved(NULL, NULL)").await,
        2 * (49_999 * 50_000 / 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_out_of_order_are_sorted_even_when_the_last_is() {
    let f = Fixture::new();
    // A permutation of 100,000 seconds.
    define(
        &f,
        "scrambled",
        "SELECT to_timestamp_seconds(1577836800 + (value * 7919) % 100000) AS time, value AS id \
         FROM generate_series(0, 99999)",
    )
    .await;
    let (plan, sorted) = stored(&f, "scrambled").await;
    assert_eq!(sorted, "100.0 K", "{plan}");
    // Out of order from the first batch: nothing was written twice.
    assert_eq!(metric(&plan, "rows_rewritten"), "0", "{plan}");
    assert!(
        plan.contains("SortExec: expr=[time@0 ASC NULLS LAST]"),
        "{plan}"
    );
    assert_ascending(&stored_times(&f, "scrambled"), 100_000);
    // Sorted by time, the ids are scrambled: plain values.
    assert!(!id_encodings(&f, "scrambled").contains("DELTA_BINARY_PACKED"));

    // Every row in order but the very last, which belongs first: all of
    // them were kept before it came, and are sorted with it.
    define(&f, "late", &last_row_first(200_000)).await;
    let (plan, sorted) = stored(&f, "late").await;
    assert_eq!(sorted, "200.0 K", "{plan}");
    // The rows before it had gone on to the writer, which started again.
    let rewritten = metric(&plan, "rows_rewritten");
    assert!(rewritten.ends_with(" K"), "{plan}");
    let times = stored_times(&f, "late");
    assert_ascending(&times, 200_000);
    assert_eq!(times[0], Some(1577836799));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_too_large_to_keep_is_computed_again_when_its_last_row_is_late() {
    let f = Fixture::new();
    // 5M rows of time and id, 80 MB in Arrow: more than what was passed on
    // to the writer is kept, so when the last row turns out to belong
    // first, the result is computed again and sorted.
    define(&f, "large_late", &last_row_first(5_000_000)).await;
    // Served as it is stored: the query gets every row once, though the
    // write ran the compute twice.
    define(&f, "large_late_served", &last_row_first(5_000_000)).await;
    let served = "SELECT count(*) FROM large_late_served(NULL, NULL) WHERE id % 7 = 0";
    assert_eq!(f.int(served).await, 5_000_000 / 7 + 1);
    let (plan, sorted) = stored(&f, "large_late").await;
    assert_eq!(sorted, "5.00 M", "{plan}");
    assert!(metric(&plan, "rows_rewritten").ends_with(" M"), "{plan}");
    let times = stored_times(&f, "large_late");
    assert_ascending(&times, 5_000_000);
    assert_eq!(times[0], Some(1577836799));
    assert_eq!(
        f.int("SELECT sum(id) FROM large_late(NULL, NULL)").await,
        4_999_999 * 5_000_000 / 2
    );
}

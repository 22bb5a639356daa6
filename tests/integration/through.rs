//! A miss serves the rows it stores, instead of reading the new entry back:
//! what the query gets, what is stored, and what stops the write.

use arrow::array::{Array, Int64Array};
use futures::StreamExt;
use nuthatch::Outcome;

use crate::support::{Fixture, analyzed, assert_outcome};

/// Two million rows, one a second; neither the query nor the entry needs
/// them sorted again.
const BIG: &str = "CREATE CACHED FUNCTION big(start_time TIMESTAMP, end_time TIMESTAMP) \
     WITH (timeseries = 'time') AS \
     SELECT to_timestamp_seconds(1577836800 + value) AS time, value AS id \
     FROM generate_series(0, 1999999)";
const ROWS: i64 = 2_000_000;

fn stored(f: &Fixture, namespace: Option<&str>) -> bool {
    let folder = namespace.map_or(f.root(), |ns| f.root().join(ns));
    folder.join("big/.parquet").exists()
}

/// The two numbers of `SELECT count(*), sum(...)`.
async fn count_and_sum(f: &Fixture, sql: &str) -> (i64, i64) {
    let batches = f.query(sql).await.unwrap();
    let value = |i: usize| {
        let column = batches[0].column(i);
        let ints = column.as_any().downcast_ref::<Int64Array>().unwrap();
        assert!(!ints.is_null(0));
        ints.value(0)
    };
    (value(0), value(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_serves_the_rows_it_stores_and_a_hit_reads_the_same() {
    let f = Fixture::new();
    f.query(BIG).await.unwrap();
    let sql = "SELECT count(*), sum(id) FROM big(NULL, NULL) WHERE id % 3 = 0";
    let expected = ((ROWS + 2) / 3, (0..ROWS).step_by(3).sum::<i64>());

    assert_eq!(count_and_sum(&f, sql).await, expected);
    let miss = f.report();
    assert_outcome(&miss, Outcome::Computed);
    assert_eq!(miss.row_groups_read, None, "nothing was read back: {miss}");
    // The query ended once the entry was committed.
    assert!(stored(&f, None));
    assert_eq!(count_and_sum(&f, sql).await, expected);
    assert_outcome(&f.report(), Outcome::Hit);

    // The write tees the compute's rows to the query, which reads no file.
    let plan = analyzed(
        &f,
        "SELECT count(*), sum(id) FROM big(NULL, NULL, namespace => 'explained') \
         WHERE id % 3 = 0",
    )
    .await;
    let line = |needle: &str| {
        plan.lines()
            .position(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no {needle} in\n{plan}"))
    };
    let write = line("DataSinkExec: sink=EntrySink");
    assert!(
        plan.lines()
            .nth(write)
            .unwrap()
            .contains("rows_written=2.00 M"),
        "{plan}"
    );
    assert!(
        line("TeeExec: the rows stored are also served") > write,
        "{plan}"
    );
    assert!(
        plan.lines()
            .nth(line("ServedExec"))
            .unwrap()
            .contains("output_rows=2.00 M"),
        "{plan}"
    );
    assert!(!plan.contains("DataSourceExec"), "{plan}");
    assert!(stored(&f, Some("explained")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_that_stops_reading_early_still_stores_its_miss() {
    let f = Fixture::new();
    f.query(BIG).await.unwrap();
    // The LIMIT sits above the filter, so the query stops after a few rows
    // while the rest is still being computed and stored.
    let few = f
        .query("SELECT id FROM big(NULL, NULL) WHERE id >= 10 LIMIT 3")
        .await
        .unwrap();
    assert_eq!(few.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
    assert_outcome(&f.report(), Outcome::Computed);
    f.nuthatch.finish_writes().await;
    assert!(stored(&f, None));
    assert_eq!(f.int("SELECT count(*) FROM big(NULL, NULL)").await, ROWS);
    assert_outcome(&f.report(), Outcome::Hit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_sessions_writes_stores_nothing() {
    let f = Fixture::new();
    f.query(BIG).await.unwrap();
    let frame = f
        .nuthatch
        .sql("SELECT id FROM big(NULL, NULL)")
        .await
        .unwrap();
    let mut rows = frame.execute_stream().await.unwrap();
    assert!(rows.next().await.unwrap().unwrap().num_rows() > 0);
    drop(rows);
    f.nuthatch.cancel_writes();
    f.nuthatch.finish_writes().await;
    // The call is reported once DataFusion lets go of its stream.
    assert_outcome(&f.report(), Outcome::Computed);
    assert!(!stored(&f, None), "{:?}", f.files());
    // Nothing holds the entry: the next call computes it.
    assert_eq!(f.int("SELECT count(*) FROM big(NULL, NULL)").await, ROWS);
    assert_outcome(&f.report(), Outcome::Computed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_a_recursive_query_is_computed_once_then_read_each_round() {
    let f = Fixture::new();
    f.query(BIG).await.unwrap();
    let rounds = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL \
                  SELECT n + 1 FROM r JOIN big(NULL, NULL) b ON b.id = r.n WHERE n < 4) \
                  SELECT max(n) FROM r";
    assert_eq!(f.int(rounds).await, 4);
    let outcomes: Vec<Outcome> = f.reports().iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes.first(), Some(&Outcome::Computed), "{outcomes:?}");
    assert!(outcomes.len() > 1, "{outcomes:?}");
    assert!(
        outcomes[1..].iter().all(|o| *o == Outcome::Hit),
        "{outcomes:?}"
    );
}

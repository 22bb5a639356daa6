//! Planning does no work; windows and WHERE filters reach the scan; calls
//! work anywhere a table can stand.

use arrow::array::Array;
use nuthatch::Outcome;

use crate::support::{Fixture, analyzed, assert_outcome};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planning_reads_and_computes_nothing() {
    let f = Fixture::new();
    let frame = f
        .nuthatch
        .sql("SELECT * FROM series('2020-01-05', '2020-01-06', station => 'west') WHERE value > 3")
        .await
        .unwrap();
    let plan = frame.create_physical_plan().await.unwrap();
    let shown = datafusion::physical_plan::displayable(plan.as_ref())
        .indent(true)
        .to_string();
    assert!(
        shown.contains("CachedCallExec: function=series, key=series/1.0_west"),
        "{shown}"
    );
    assert!(
        shown.contains("pruning=[value > Float64(3)"),
        "the WHERE filter is pushed: {shown}"
    );
    assert!(
        shown.contains("time >= TimestampNanosecond(1578182400000000000"),
        "the window is pushed: {shown}"
    );
    assert_eq!(f.computes(), 0);
    assert_eq!(f.files(), Vec::<String>::new());
    let explain = f
        .query("EXPLAIN SELECT * FROM series('2020-01-05', '2020-01-06')")
        .await
        .unwrap();
    assert!(!explain.is_empty());
    assert_eq!(f.computes(), 0);
    assert_eq!(f.files(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_analyze_shows_the_compute_and_the_write_under_the_call() {
    let f = Fixture::new();
    let sql = "SELECT count(*) FROM series('2020-01-05', '2020-01-06') WHERE value > 3";
    let miss = analyzed(&f, sql).await;
    let lines: Vec<&str> = miss.lines().collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no {needle} in\n{miss}"))
    };
    let depth = |i: usize| lines[i].len() - lines[i].trim_start().len();
    let call = at("CachedCallExec: function=series");
    assert!(
        lines[call].contains("outcome=computed, tier=root, served_by=parquet"),
        "{miss}"
    );
    assert!(lines[call].contains("output_rows=48"), "{miss}");
    // The write, with what it stored, is a child of the call, and the
    // compute is below it: the body's batches, checked to be in time order
    // and so not sorted.
    let write = at("DataSinkExec: sink=EntrySink: tier=root, backend=parquet");
    assert_eq!(depth(write), depth(call) + 2, "{miss}");
    for metric in [
        "rows_written=1.44 K",
        "bytes_written=",
        "write_time=",
        "encode_time=",
    ] {
        assert!(lines[write].contains(metric), "{metric} in {miss}");
    }
    let sort = at("StoredOrderExec: [time@0 ASC NULLS LAST]");
    assert!(sort > write && depth(sort) > depth(write), "{miss}");
    assert!(lines[sort].contains("rows_sorted=0"), "{miss}");
    assert!(!miss.contains("SortExec"), "{miss}");
    // The rows served come from reading the new entry back, pruned.
    let scan = at("DataSourceExec");
    assert!(scan > sort && depth(scan) > depth(call), "{miss}");
    f.reports();

    // A hit shows the read alone, with what it pruned.
    let hit = analyzed(&f, sql).await;
    assert_outcome(&f.report(), Outcome::Hit);
    assert!(!hit.contains("DataSinkExec"), "{hit}");
    assert!(hit.contains("row_groups_pruned_statistics"), "{hit}");
    assert_eq!(f.computes(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_are_inclusive_and_date_only_ends_keep_their_day() {
    let f = Fixture::new();
    // Hourly data: a date-only end keeps all 24 hours of 2020-01-02.
    assert_eq!(
        f.int("SELECT count(*) FROM series('2020-01-01', '2020-01-02')")
            .await,
        48
    );
    assert_outcome(&f.report(), Outcome::Computed);
    // An exact end is exact and inclusive.
    assert_eq!(
        f.int("SELECT count(*) FROM series('2020-01-01', '2020-01-02T00:00:00')")
            .await,
        25
    );
    assert_outcome(&f.report(), Outcome::Hit);
    assert_eq!(
        f.int("SELECT count(*) FROM series('2020-01-01 06:00', '2020-01-01T06:00:00')")
            .await,
        1
    );
    // NULL bounds are open.
    assert_eq!(f.int("SELECT count(*) FROM series(NULL, NULL)").await, 1440);
    assert_eq!(
        f.int("SELECT count(*) FROM series('2020-02-29', NULL)")
            .await,
        24
    );
    assert_eq!(f.computes(), 1, "the window is not part of the key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projections_filters_and_limits_give_the_right_rows() {
    let f = Fixture::new();
    // The window needs `time`, which the query does not select.
    let batches = f
        .query(
            "SELECT value FROM series('2020-01-01T10:00:00', '2020-01-01T12:00:00') ORDER BY value",
        )
        .await
        .unwrap();
    assert_eq!(batches[0].num_columns(), 1);
    let shown = arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert!(
        shown.contains("| 10.0  |") && shown.contains("| 12.0  |") && !shown.contains("13.0"),
        "{shown}"
    );
    assert_eq!(
        f.int("SELECT count(*) FROM (SELECT * FROM series(NULL, NULL) LIMIT 7)")
            .await,
        7
    );
    assert_eq!(
        f.int("SELECT count(*) FROM series(NULL, NULL) WHERE value >= 1000 AND station = 'north'")
            .await,
        440
    );
    assert_eq!(
        f.int("SELECT count(*) FROM series(NULL, NULL) WHERE time >= '2020-02-01' AND time < '2020-02-02'").await,
        24
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_work_in_joins_ctes_subqueries_and_together() {
    let f = Fixture::new();
    let joined = "SELECT count(*) FROM series('2020-01-01', '2020-01-01', station => 'a') AS a \
                  JOIN series('2020-01-01', '2020-01-01', station => 'b') AS b ON a.time = b.time";
    assert_eq!(f.int(joined).await, 24);
    let mut reports = f.reports();
    reports.sort_by(|x, y| x.key.cmp(&y.key));
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert_eq!(reports[0].key, "series/1.0_a");
    assert_eq!(reports[1].key, "series/1.0_b");
    let cte = "WITH s AS (SELECT * FROM series('2020-01-01', '2020-01-01', station => 'a')) \
               SELECT count(*) FROM s WHERE value < 5";
    assert_eq!(f.int(cte).await, 5);
    let subquery = "SELECT count(*) FROM series(NULL, NULL, station => 'b') \
                    WHERE value > (SELECT max(value) FROM series('2020-01-01', '2020-01-01', station => 'a'))";
    assert_eq!(f.int(subquery).await, 1440 - 24);
    let lateral_free_union = "SELECT count(*) FROM (SELECT time FROM series('2020-01-01', '2020-01-01', 'a') \
                              UNION ALL SELECT time FROM series('2020-01-01', '2020-01-01', station => 'a'))";
    assert_eq!(f.int(lateral_free_union).await, 48);
    assert_eq!(f.computes(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_arguments_keep_their_names_under_lateral() {
    // DataFusion drops argument names under LATERAL; ours must not.
    let f = Fixture::new();
    let sql = "SELECT count(*) FROM (VALUES (1)) AS v(x) \
               CROSS JOIN LATERAL series('2020-01-01', '2020-01-01', scale => 3)";
    assert_eq!(f.int(sql).await, 24);
    assert_eq!(f.report().key, "series/3.0_north");
}

/// Output rows of each partition of the first `name` node under `plan`.
fn rows_per_partition(
    plan: &std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    name: &str,
) -> Option<Vec<usize>> {
    if plan.name() == name {
        let mut rows = std::collections::BTreeMap::new();
        for metric in plan.metrics()?.iter() {
            if let (Some(partition), "output_rows") = (metric.partition(), metric.value().name()) {
                *rows.entry(partition).or_insert(0) += metric.value().as_usize();
            }
        }
        return Some(rows.into_values().collect());
    }
    plan.children()
        .into_iter()
        .find_map(|child| rows_per_partition(child, name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_of_a_sorted_entry_is_read_on_every_core() {
    let f = Fixture::new();
    f.query("SET datafusion.execution.target_partitions = 2")
        .await
        .unwrap();
    // 400,000 minutes: seven row groups.
    f.query(
        "CREATE CACHED FUNCTION minutes(start_time TIMESTAMP, end_time TIMESTAMP) \
         WITH (timeseries = 'time') AS \
         SELECT to_timestamp_seconds(1577836800 + value * 60) AS time, CAST(value AS DOUBLE) AS v \
         FROM generate_series(0, 399999)",
    )
    .await
    .unwrap();
    assert_eq!(
        f.int("SELECT count(*) FROM minutes(NULL, NULL)").await,
        400_000
    );
    // Rows 70,000 to 300,000: neighbouring row groups, which byte ranges
    // of the file would all have given to the first partition.
    let frame = f
        .nuthatch
        .sql("SELECT sum(v) FROM minutes('2020-02-18 14:40:00', '2020-07-27T08:00:00')")
        .await
        .unwrap();
    let task = frame.task_ctx();
    let plan = frame.create_physical_plan().await.unwrap();
    let batches = datafusion::physical_plan::collect(plan.clone(), std::sync::Arc::new(task))
        .await
        .unwrap();
    let sum = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Float64Array>()
        .unwrap()
        .value(0);
    assert_eq!(sum, (70_000..=300_000).map(|v| v as f64).sum::<f64>());
    let rows = rows_per_partition(&plan, "DataSourceExec").expect("the scan ran");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter().all(|&n| n >= 65_536),
        "each partition reads row groups of the window: {rows:?}"
    );
    f.reports();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_entry_of_the_same_size_is_not_read_with_the_old_footer() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    let f = Fixture::new();
    let runs = Arc::new(AtomicI64::new(0));
    let counted = Arc::clone(&runs);
    let schema = Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("v", arrow::datatypes::DataType::Int64, true),
    ]));
    let function = nuthatch::CachedFunction::builder("run_number")
        .returns(Arc::clone(&schema))
        .compute(move |_ctx, _args| {
            let run = counted.fetch_add(1, Ordering::SeqCst) + 1;
            let schema = Arc::clone(&schema);
            async move {
                Ok(vec![arrow::array::RecordBatch::try_new(
                    schema,
                    vec![Arc::new(arrow::array::Int64Array::from(vec![run]))],
                )?])
            }
        })
        .build()
        .unwrap();
    f.nuthatch.register(function).unwrap();
    let file = f.root().join("run_number/.parquet");

    assert_eq!(f.int("SELECT v FROM run_number()").await, 1);
    // A hit: the footer (with statistics saying v is 1) is now cached.
    assert_eq!(
        f.int("SELECT count(*) FROM run_number() WHERE v = 1").await,
        1
    );
    let first = std::fs::metadata(&file).unwrap().len();
    assert_eq!(
        f.int("SELECT v FROM run_number(recompute => true, cache_mode => 'overwrite')")
            .await,
        2
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().len(),
        first,
        "the rewrite has the same size, which the cache alone cannot tell apart"
    );
    assert_eq!(
        f.int("SELECT count(*) FROM run_number() WHERE v = 2").await,
        1,
        "statistics of the old footer would prune the new row"
    );
    assert_eq!(f.int("SELECT v FROM run_number()").await, 2);
    f.reports();
}

/// `(count, sum)` of the first two columns of a one-row result.
async fn count_and_sum(f: &Fixture, sql: &str) -> (i64, Option<i64>) {
    let batches = f.query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let ints = |i: usize| {
        let column =
            arrow::compute::cast(batches[0].column(i), &arrow::datatypes::DataType::Int64).unwrap();
        let ints = column
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap()
            .clone();
        ints.is_valid(0).then(|| ints.value(0))
    };
    (ints(0).unwrap(), ints(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_of_a_sorted_entry_read_exactly_their_rows_and_filter_nothing() {
    let f = Fixture::new();
    // 200,000 rows, three to a second (runs of equal times cross pages of
    // 8,192 rows and row groups of 65,536), the last 1,000 without a time.
    let body = "SELECT CASE WHEN value < 199000 \
                            THEN to_timestamp_seconds(1577836800 + value / 3) END AS time, \
                       value AS v \
                FROM generate_series(0, 199999)";
    f.query(&format!(
        "CREATE CACHED FUNCTION thirds(start_time TIMESTAMP, end_time TIMESTAMP) \
         WITH (timeseries = 'time') AS {body}"
    ))
    .await
    .unwrap();
    assert_eq!(
        f.int("SELECT count(*) FROM thirds(NULL, NULL)").await,
        200_000
    );
    assert_outcome(&f.report(), Outcome::Computed);

    // Each window against the same bounds evaluated row by row over the
    // body, uncached: starts and ends at a row group's edge (second
    // 21,845 holds rows 65,535 to 65,537), inside a run of equal times,
    // at a page's edge, before and after the data, and open on either side.
    let second = |s: i64| format!("to_timestamp_seconds({})", 1577836800 + s);
    let at = |s: i64| {
        chrono::DateTime::from_timestamp(1577836800 + s, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string()
    };
    let windows: Vec<(Option<i64>, Option<i64>)> = vec![
        (Some(21_845), Some(43_690)),
        (Some(2_730), Some(2_731)),
        (Some(100), Some(100)),
        (Some(-50), Some(10)),
        (Some(66_300), Some(70_000)),
        (Some(66_333), None),
        (None, Some(21_845)),
        (Some(70_000), Some(80_000)),
        (Some(40_000), Some(30_000)),
    ];
    for (start, end) in windows {
        let call = format!(
            "thirds({}, {})",
            start.map_or("NULL".into(), |s| format!("'{}'", at(s))),
            end.map_or("NULL".into(), |e| format!("'{}'", at(e))),
        );
        if matches!((start, end), (Some(s), Some(e)) if e < s) {
            // An end before the start is refused, not read as empty.
            assert!(
                f.error(&format!("SELECT count(*) FROM {call}"))
                    .await
                    .contains("swap them")
            );
            f.reports();
            continue;
        }
        let mut conditions = vec!["time IS NOT NULL".to_string()];
        conditions.extend(start.map(|s| format!("time >= {}", second(s))));
        conditions.extend(end.map(|e| format!("time <= {}", second(e))));
        let expected = count_and_sum(
            &f,
            &format!(
                "SELECT count(*), sum(v) FROM ({body}) WHERE {}",
                conditions.join(" AND ")
            ),
        )
        .await;
        let got = count_and_sum(&f, &format!("SELECT count(*), sum(v) FROM {call}")).await;
        assert_eq!(got, expected, "{call}");
        let report = f.report();
        assert_outcome(&report, Outcome::Hit);
        assert_eq!(report.rows as i64, expected.0, "{call}: {report}");
    }

    // The scan yields the window's rows and no others: nothing above it
    // filters them, and the time column is not read for a query that
    // does not ask for it.
    let window = "thirds('2020-01-01T06:04:10', '2020-01-01T08:00:00')";
    let plan = analyzed(&f, &format!("SELECT sum(v) FROM {window}")).await;
    assert!(!plan.contains("FilterExec"), "{plan}");
    let scan = plan
        .lines()
        .find(|line| line.contains("DataSourceExec"))
        .unwrap_or_else(|| panic!("no scan in {plan}"));
    assert!(scan.contains("projection=[v]"), "{scan}");
    // Only the window's rows come out of the scan.
    let report = f.report();
    assert_eq!(report.rows, 20_853, "{report}");
}

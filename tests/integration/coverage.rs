//! Timeseries entries that know the time they cover: a call for a wider
//! window computes only what is missing and adds it to the entry, on every
//! backend that stores rows in place; modes that do not store serve it
//! unstored, modes that do not compute say what is missing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use nuthatch::{CachedFunction, CallReport, Outcome, ParamType, Value};

use crate::support::{Fixture, assert_outcome, observations, series_schema};
use crate::system::text_rows;

/// The `readings` of docs/timeseries.md: a body that reads only its window, over the
/// fixture's hourly `series` (value = hours since 2020-01-01).
pub(crate) fn define_readings(backend: &str) -> String {
    format!(
        "CREATE CACHED FUNCTION readings(start_time TIMESTAMP, end_time TIMESTAMP, \
                                         station VARCHAR DEFAULT 'north') \
         WITH (cache_args = (station), timeseries = 'time', backend = '{backend}') \
         AS SELECT time, station, value FROM series(NULL, NULL, station => $station) \
            WHERE time BETWEEN $start_time AND $end_time"
    )
}

pub(crate) use crate::bodies::{hours, series_rows};

/// One row of text per row of `sql`.
pub(crate) async fn rows(f: &Fixture, sql: &str) -> Vec<Vec<String>> {
    text_rows(&f.query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")))
}

/// What `nuthatch.caches` says entry `function` on root covers.
pub(crate) async fn coverage(f: &Fixture, function: &str) -> String {
    let sql = format!(
        "SELECT coverage FROM nuthatch.caches WHERE tier = 'root' AND function = '{function}'"
    );
    let found = rows(f, &sql).await;
    assert_eq!(found.len(), 1, "{found:?}");
    found[0][0].clone()
}

/// The report of the last call of `function` since the last look (a
/// `readings` call also reports the `series` call its body makes).
pub(crate) fn report_of(f: &Fixture, function: &str) -> CallReport {
    let reports = f.reports();
    reports
        .into_iter()
        .rev()
        .find(|r| r.function == function)
        .unwrap_or_else(|| panic!("no call of {function} was reported"))
}

/// count, distinct times and sum of `value` of `call`, and the same
/// computed from `series` directly over `[from, to)`.
pub(crate) async fn agrees_with_series(f: &Fixture, call: &str, from: &str, to: &str) -> i64 {
    let got = rows(
        f,
        &format!("SELECT count(*), count(DISTINCT time), sum(value) FROM {call}"),
    )
    .await;
    let function = call.split('(').next().unwrap();
    let report = report_of(f, function);
    let want = rows(
        f,
        &format!(
            "SELECT count(*), count(DISTINCT time), sum(value) FROM series(NULL, NULL) \
             WHERE time >= TIMESTAMP '{from}' AND time < TIMESTAMP '{to}'"
        ),
    )
    .await;
    f.reports();
    assert_eq!(
        got, want,
        "{call} against series over {from} .. {to}: {report}"
    );
    got[0][0].parse().unwrap()
}

/// The `readings` of docs/timeseries.md, extended month by month on `backend`: each
/// wider call computes only the days missing, adds them, and returns every
/// row of its window exactly once.
async fn a_wider_call_computes_only_what_is_missing(backend: &str) {
    let f = Fixture::new();
    f.query(&define_readings(backend)).await.unwrap();

    let days = agrees_with_series(
        &f,
        "readings('2020-01-10', '2020-01-20')",
        "2020-01-10",
        "2020-01-21",
    )
    .await;
    assert_eq!(days, 11 * 24, "a date-only end keeps its whole day");
    assert_eq!(coverage(&f, "readings").await, "2020-01-10 .. 2020-01-21");

    // Wider on both sides: two missing ranges, computed and added.
    let call = "readings('2020-01-05', '2020-01-25')";
    let n = f.int(&format!("SELECT count(*) FROM {call}")).await;
    let report = report_of(&f, "readings");
    assert_outcome(&report, Outcome::Extended);
    assert_eq!(report.backend, backend);
    assert_eq!(n, 21 * 24, "{report}");
    assert_eq!(
        report
            .computed_ranges
            .as_ref()
            .map(|c| c.to_string())
            .as_deref(),
        Some("2020-01-05 .. 2020-01-10, 2020-01-21 .. 2020-01-26"),
        "{report}"
    );
    assert_eq!(report.inserted, Some(10 * 24), "{report}");
    let line = report.to_string();
    assert!(
        line.contains("extended root") && line.contains("added=240"),
        "{line}"
    );
    agrees_with_series(&f, call, "2020-01-05", "2020-01-26").await;
    assert_eq!(coverage(&f, "readings").await, "2020-01-05 .. 2020-01-26");

    // Inside what is covered: a hit, as before.
    f.int("SELECT count(*) FROM readings('2020-01-06', '2020-01-07')")
        .await;
    assert_outcome(&report_of(&f, "readings"), Outcome::Hit);

    // Month by month: February added to what January holds, with a hole
    // left between them.
    let february =
        "SELECT count(*), sum(value), min(time) FROM readings('2020-02-01', '2020-02-10')";
    let served = rows(&f, february).await;
    let report = report_of(&f, "readings");
    assert_outcome(&report, Outcome::Extended);
    assert_eq!(served[0][0], (10 * 24).to_string(), "{report}");
    // A call asking only for time the entry lacked is served the rows as
    // they were written, where the format reads back exactly what it was
    // given: nothing is read back.
    if backend == "parquet" {
        assert_eq!(report.row_groups_read, None, "{report}");
    }
    assert_eq!(rows(&f, february).await, served, "read back as served");
    let report = report_of(&f, "readings");
    assert_outcome(&report, Outcome::Hit);
    if backend == "parquet" {
        assert!(report.row_groups_read.is_some(), "{report}");
    }
    agrees_with_series(
        &f,
        "readings('2020-02-01', '2020-02-10')",
        "2020-02-01",
        "2020-02-11",
    )
    .await;
    assert_eq!(
        coverage(&f, "readings").await,
        "2020-01-05 .. 2020-01-26, 2020-02-01 .. 2020-02-11"
    );
    // An open call reads to the edges of what is covered: only the hole
    // between is missing.
    let n = f.int("SELECT count(*) FROM readings(NULL, NULL)").await;
    let report = report_of(&f, "readings");
    assert_outcome(&report, Outcome::Extended);
    assert_eq!(
        report.computed_ranges.map(|c| c.to_string()).as_deref(),
        Some("2020-01-26 .. 2020-02-01")
    );
    assert_eq!(n, (21 + 6 + 10) * 24);
    agrees_with_series(&f, "readings(NULL, NULL)", "2020-01-05", "2020-02-11").await;

    // What the calls log says.
    let logged = rows(
        &f,
        "SELECT outcome, ranges_computed, rows_inserted FROM nuthatch.calls \
         WHERE function = 'readings' AND outcome = 'extended' ORDER BY finished_at",
    )
    .await;
    assert_eq!(logged.len(), 3, "{logged:?}");
    assert_eq!(
        logged[0],
        [
            "extended",
            "2020-01-05 .. 2020-01-10, 2020-01-21 .. 2020-01-26",
            "240"
        ]
    );
}

/// An extension stopped after its rows were written and before its record
/// was (a process killed between the two): the entry reads as it did, and
/// adding the range again replaces those rows rather than doubling them.
async fn rows_written_but_not_recorded_are_replaced(backend: &str) {
    let f = Fixture::new();
    f.query(&define_readings(backend)).await.unwrap();
    f.int("SELECT count(*) FROM readings('2020-01-10', '2020-01-20')")
        .await;
    let record = f
        .files()
        .into_iter()
        .find(|file| file.starts_with("nuthatch_metadata.nut/readings/"))
        .map(|file| f.root().join(file))
        .expect("the entry's record");
    let before = std::fs::read(&record).unwrap();
    f.int("SELECT count(*) FROM readings('2020-01-05', '2020-01-25')")
        .await;
    assert_outcome(&report_of(&f, "readings"), Outcome::Extended);
    std::fs::write(&record, before).unwrap();

    assert_eq!(coverage(&f, "readings").await, "2020-01-10 .. 2020-01-21");
    let n = agrees_with_series(
        &f,
        "readings('2020-01-10', '2020-01-20')",
        "2020-01-10",
        "2020-01-21",
    )
    .await;
    assert_eq!(n, 11 * 24);
    let n = agrees_with_series(
        &f,
        "readings('2020-01-05', '2020-01-25')",
        "2020-01-05",
        "2020-01-26",
    )
    .await;
    assert_eq!(n, 21 * 24);
    assert_eq!(coverage(&f, "readings").await, "2020-01-05 .. 2020-01-26");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_entries_grow_to_what_calls_ask_for() {
    a_wider_call_computes_only_what_is_missing("parquet").await;
    rows_written_but_not_recorded_are_replaced("parquet").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrow_entries_grow_to_what_calls_ask_for() {
    a_wider_call_computes_only_what_is_missing("arrow").await;
    rows_written_but_not_recorded_are_replaced("arrow").await;
}

#[cfg(feature = "delta")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_entries_grow_to_what_calls_ask_for() {
    a_wider_call_computes_only_what_is_missing("delta").await;
    rows_written_but_not_recorded_are_replaced("delta").await;
}

#[cfg(feature = "sql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_entries_grow_to_what_calls_ask_for() {
    a_wider_call_computes_only_what_is_missing("sql").await;
    rows_written_but_not_recorded_are_replaced("sql").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modes_that_do_not_store_or_compute_say_so() {
    let f = Fixture::new();
    f.query(&define_readings("parquet")).await.unwrap();
    f.int("SELECT count(*) FROM readings('2020-01-10', '2020-01-20')")
        .await;
    f.reports();

    // read_only computes the missing days and serves them, storing nothing.
    let call = "readings('2020-01-10', '2020-01-22', cache_mode => 'read_only')";
    let n = agrees_with_series(&f, call, "2020-01-10", "2020-01-23").await;
    assert_eq!(n, 13 * 24);
    assert_eq!(coverage(&f, "readings").await, "2020-01-10 .. 2020-01-21");
    f.int(&format!("SELECT count(*) FROM {call}")).await;
    let report = report_of(&f, "readings");
    assert_outcome(&report, Outcome::ExtendedNotStored);
    assert_eq!(
        report.computed_ranges.map(|c| c.to_string()).as_deref(),
        Some("2020-01-21 .. 2020-01-23")
    );

    // A local mode reads root too, and stores only on the local tier:
    // the missing days are served, root's entry stays as it was.
    let local = "readings('2020-01-09', '2020-01-12', cache_mode => 'local')";
    let n = agrees_with_series(&f, local, "2020-01-09", "2020-01-13").await;
    assert_eq!(n, 4 * 24);
    f.int(&format!("SELECT count(*) FROM {local}")).await;
    let report = report_of(&f, "readings");
    assert_outcome(&report, Outcome::ExtendedNotStored);
    assert_eq!(coverage(&f, "readings").await, "2020-01-10 .. 2020-01-21");

    // Modes that never compute name what is missing and how to get it.
    for call in [
        "readings('2020-01-08', '2020-01-12', cache_mode => 'read_only_strict')",
        "readings('2020-01-08', '2020-01-12', fail_if_no_cache => true)",
    ] {
        let error = f.error(&format!("SELECT * FROM {call}")).await;
        assert!(
            error.contains(
                "readings/station_north on the root tier covers 2020-01-10 .. 2020-01-21"
            ) && error.contains("also asks for 2020-01-08 .. 2020-01-10"),
            "{error}"
        );
    }
    let error = f
        .error(
            "SELECT * FROM readings('2020-01-08', '2020-01-12', cache_mode => 'read_only_strict')",
        )
        .await;
    assert!(error.contains("cache_mode => 'write'"), "{error}");
    // Inside the coverage, strict modes read as always.
    let n = f
        .int("SELECT count(*) FROM readings('2020-01-11', '2020-01-12', cache_mode => 'read_only_strict')")
        .await;
    assert_eq!(n, 48);
    assert_eq!(coverage(&f, "readings").await, "2020-01-10 .. 2020-01-21");
}

/// `flaky(start_time, end_time)`: hourly rows of its window, failing for
/// any window that reaches into February; counts its body calls.
fn flaky(calls: Arc<AtomicUsize>) -> CachedFunction {
    observations_like("flaky", calls, true)
}

fn observations_like(
    name: &str,
    calls: Arc<AtomicUsize>,
    fails_in_february: bool,
) -> CachedFunction {
    CachedFunction::builder(name)
        .param("start_time", ParamType::Timestamp)
        .param("end_time", ParamType::Timestamp)
        .param_default("station", ParamType::String, Value::String("a".into()))
        .timeseries("time")
        .returns(series_schema())
        .compute(move |_ctx, args| {
            let calls = Arc::clone(&calls);
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let start = args.timestamp("start_time")?.expect("a start");
                let end = args.timestamp("end_time")?.expect("an end");
                let february = chrono::NaiveDate::from_ymd_opt(2020, 2, 1)
                    .unwrap()
                    .and_hms_opt(0, 0, 0)
                    .unwrap();
                if fails_in_february && end >= february {
                    return Err(datafusion::error::DataFusionError::Execution(
                        "the feed has nothing after January".into(),
                    ));
                }
                Ok(vec![series_rows(hours(start, end), "a", 1.0)?])
            }
        })
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_range_that_fails_leaves_the_entry_as_it_was() {
    let f = Fixture::new();
    let calls = Arc::new(AtomicUsize::new(0));
    f.nuthatch.register(flaky(Arc::clone(&calls))).unwrap();
    let n = f
        .int("SELECT count(*) FROM flaky('2020-01-20', '2020-01-29')")
        .await;
    assert_eq!(n, 10 * 24);
    // The body is handed the window as it is clipped: a date-only end is
    // the last instant of its day.
    assert_eq!(coverage(&f, "flaky").await, "2020-01-20 .. 2020-01-30");
    f.reports();

    let error = f
        .error("SELECT count(*) FROM flaky('2020-01-25', '2020-02-03')")
        .await;
    assert!(
        error.contains("computing flaky for 2020-01-30 .. 2020-02-04 failed")
            && error.contains("the feed has nothing after January"),
        "{error}"
    );
    assert_eq!(coverage(&f, "flaky").await, "2020-01-20 .. 2020-01-30");
    let n = f
        .int("SELECT count(*) FROM flaky('2020-01-20', '2020-01-29')")
        .await;
    assert_outcome(&f.report(), Outcome::Hit);
    assert_eq!(n, 10 * 24);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_calls_extending_at_once_add_each_row_once() {
    let f = Fixture::new();
    let calls = Arc::new(AtomicUsize::new(0));
    f.nuthatch
        .register(observations_like("hours", Arc::clone(&calls), false))
        .unwrap();
    f.int("SELECT count(*) FROM hours('2020-01-10', '2020-01-10')")
        .await;
    f.reports();
    // Both calls miss the same days; the second to claim the entry finds
    // them added and reads.
    let n = f
        .int(
            "SELECT count(*) FROM (SELECT time FROM hours('2020-01-08', '2020-01-12') \
             UNION ALL SELECT time FROM hours('2020-01-09', '2020-01-12'))",
        )
        .await;
    assert_eq!(n, (5 + 4) * 24);
    let mut outcomes: Vec<Outcome> = f.reports().iter().map(|r| r.outcome).collect();
    outcomes.sort_by_key(|o| o.name());
    assert!(
        outcomes.contains(&Outcome::Extended) && outcomes.len() == 2,
        "{outcomes:?}"
    );
    let distinct = rows(
        &f,
        "SELECT count(*), count(DISTINCT time) FROM hours('2020-01-08', '2020-01-12')",
    )
    .await;
    assert_eq!(distinct, [["120", "120"]]);
    assert_eq!(coverage(&f, "hours").await, "2020-01-08 .. 2020-01-13");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merges_and_recomputes_update_what_is_covered() {
    let f = Fixture::new();
    f.nuthatch.register(observations("obs", "parquet")).unwrap();
    f.int("SELECT count(*) FROM obs('2020-01-01', '2020-01-01')")
        .await;
    assert_eq!(coverage(&f, "obs").await, "2020-01-01 .. 2020-01-02");
    // A window replaced beyond what is covered is covered from then on.
    f.int("SELECT count(*) FROM obs('2020-01-03', '2020-01-03', revision => 2, replace_window => true)")
        .await;
    assert_eq!(
        coverage(&f, "obs").await,
        "2020-01-01 .. 2020-01-02, 2020-01-03 .. 2020-01-04"
    );
    // An upsert covers its window too.
    f.int("SELECT count(*) FROM obs('2020-01-02', '2020-01-02', revision => 3, upsert => true)")
        .await;
    assert_eq!(coverage(&f, "obs").await, "2020-01-01 .. 2020-01-04");
    // A recompute replaces the entry and what it covers.
    f.int("SELECT count(*) FROM obs('2020-01-05', '2020-01-05', recompute => true, cache_mode => 'overwrite')")
        .await;
    assert_eq!(coverage(&f, "obs").await, "2020-01-05 .. 2020-01-06");
    f.reports();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coverage_is_declared_or_read_from_the_body() {
    let f = Fixture::new();
    // A body that never reads its window computes the whole series.
    f.query(
        "CREATE CACHED FUNCTION whole(start_time TIMESTAMP, end_time TIMESTAMP) \
         WITH (timeseries = 'time') AS SELECT time, value FROM series(NULL, NULL)",
    )
    .await
    .unwrap();
    f.query(&define_readings("parquet")).await.unwrap();
    let described = rows(
        &f,
        "SELECT name, coverage FROM nuthatch.functions WHERE timeseries IS NOT NULL ORDER BY name",
    )
    .await;
    assert_eq!(
        described,
        [
            ["readings", "window"],
            ["series", "full"],
            ["whole", "full"]
        ]
    );
    f.int("SELECT count(*) FROM whole('2020-01-02', '2020-01-03')")
        .await;
    assert_eq!(coverage(&f, "whole").await, "..");
    let n = f
        .int("SELECT count(*) FROM whole('2020-01-01', '2020-02-01')")
        .await;
    assert_outcome(f.reports().last().unwrap(), Outcome::Hit);
    assert_eq!(n, 32 * 24);

    let error = f
        .error(
            "CREATE CACHED FUNCTION bad(start_time TIMESTAMP, end_time TIMESTAMP) \
             WITH (timeseries = 'time', coverage = 'sometimes') AS SELECT time FROM series(NULL, NULL)",
        )
        .await;
    assert!(
        error.contains("coverage takes 'window'") && error.contains("got 'sometimes'"),
        "{error}"
    );
    let error = f
        .error("CREATE CACHED FUNCTION bad2() WITH (coverage = 'full') AS SELECT 1 AS x")
        .await;
    assert!(error.contains("has no timeseries column"), "{error}");
    let error = f
        .error("SELECT * FROM readings('2020-01-05', '2020-01-02')")
        .await;
    assert!(
        error.contains("end_time 2020-01-02T00:00:00 is before start_time"),
        "{error}"
    );
}

/// `forecast(start_time, end_time)`: hourly rows of its window, each
/// valued by how many times the body ran, provisional for two days.
pub(crate) fn forecast(runs: Arc<AtomicUsize>) -> CachedFunction {
    CachedFunction::builder("forecast")
        .param("start_time", ParamType::Timestamp)
        .param("end_time", ParamType::Timestamp)
        .timeseries("time")
        .settle(std::time::Duration::from_secs(2 * 86_400))
        .returns(series_schema())
        .compute(move |_ctx, args| {
            let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                let start = args.timestamp("start_time")?.expect("a start");
                let end = args.timestamp("end_time")?.expect("an end");
                Ok(vec![series_rows(hours(start, end), "f", run as f64)?])
            }
        })
        .build()
        .unwrap()
}

/// The date `back` days before today, as SQL takes it.
pub(crate) fn days_ago(back: i64) -> String {
    let today = chrono::Utc::now().date_naive();
    (today - chrono::Duration::days(back))
        .format("%Y-%m-%d")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_ranges_are_computed_again_until_they_settle() {
    let f = Fixture::new();
    let runs = Arc::new(AtomicUsize::new(0));
    f.nuthatch.register(forecast(Arc::clone(&runs))).unwrap();
    let day = days_ago;
    let all = format!("forecast('{}', '{}')", day(10), day(1));
    let n = f.int(&format!("SELECT count(*) FROM {all}")).await;
    assert_eq!(n, 10 * 24);
    let provisional = rows(
        &f,
        "SELECT provisional FROM nuthatch.caches WHERE function = 'forecast' AND tier = 'root'",
    )
    .await;
    assert!(
        provisional[0][0].ends_with(&format!(" .. {}", day(0))),
        "the last two days are provisional: {provisional:?}"
    );
    f.reports();

    // Settled history is read.
    f.int(&format!(
        "SELECT count(*) FROM forecast('{}', '{}')",
        day(10),
        day(5)
    ))
    .await;
    assert_outcome(&f.report(), Outcome::Hit);
    // A call that reaches the provisional days computes them again.
    let n = f
        .int(&format!(
            "SELECT count(*) FROM forecast('{}', '{}')",
            day(4),
            day(1)
        ))
        .await;
    let report = f.report();
    assert_outcome(&report, Outcome::Extended);
    assert_eq!(n, 4 * 24, "{report}");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let values = rows(
        &f,
        &format!("SELECT count(*), count(DISTINCT time), min(value), max(value) FROM {all}"),
    )
    .await;
    // Reading them all reaches the provisional days again.
    assert_outcome(&f.report(), Outcome::Extended);
    assert_eq!(values, [["240", "240", "1.0", "3.0"]]);
    f.reports();

    // Bad settle values, and settle where nothing grows, are refused.
    let error = f
        .error(&format!(
            "SELECT * FROM forecast('{}', '{}', settle => 'soon')",
            day(3),
            day(1)
        ))
        .await;
    assert!(
        error.contains("settle takes a length of time such as '2 days'"),
        "{error}"
    );
    let error = f
        .error("SELECT * FROM series(NULL, NULL, settle => '1 day')")
        .await;
    assert!(error.contains("its coverage is not 'window'"), "{error}");
    let error = f
        .error(
            "CREATE CACHED FUNCTION bad(start_time TIMESTAMP, end_time TIMESTAMP) \
             WITH (timeseries = 'time', settle = '2 days') AS SELECT time FROM series(NULL, NULL)",
        )
        .await;
    assert!(
        error.contains("needs timeseries = '<column>' and coverage = 'window'"),
        "{error}"
    );
}

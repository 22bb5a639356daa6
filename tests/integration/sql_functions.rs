//! Cached functions defined in SQL, session settings, and SQL injection.

use nuthatch::Outcome;

use crate::support::{Fixture, assert_outcome};

const DEFINE_ROLLING: &str = "
    CREATE CACHED FUNCTION rolling(start_time TIMESTAMP, end_time TIMESTAMP, steps BIGINT DEFAULT 3, label VARCHAR DEFAULT 'r')
    WITH (cache_args = (steps, label), version = '2', timeseries = 'time')
    AS
    SELECT time, $label AS label,
           CASE WHEN count(value) OVER (ORDER BY time ROWS BETWEEN $steps - 1 PRECEDING AND CURRENT ROW) = $steps
                THEN avg(value) OVER (ORDER BY time ROWS BETWEEN $steps - 1 PRECEDING AND CURRENT ROW) END AS mean
    FROM series(NULL, NULL)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sql_function_binds_parameters_in_window_frames_and_caches_by_its_keys() {
    let f = Fixture::new();
    f.query(DEFINE_ROLLING).await.unwrap();
    let error = f.error(DEFINE_ROLLING).await;
    assert!(
        error.contains("already exists") && error.contains("CREATE OR REPLACE"),
        "{error}"
    );

    // values are 0,1,2,... so the mean of 3 steps ending at hour h is h-1.
    let sql = "SELECT mean FROM rolling('2020-01-01T05:00:00', '2020-01-01T05:00:00')";
    let batches = f.query(sql).await.unwrap();
    let shown = arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert!(shown.contains("| 4.0  |"), "{shown}");
    let outcomes: Vec<(String, Outcome)> = f.outcomes();
    assert_eq!(
        outcomes,
        vec![
            ("series/1.0_north".into(), Outcome::Computed),
            ("rolling/r_3".into(), Outcome::Computed)
        ]
    );
    assert_eq!(
        f.int("SELECT count(*) FROM rolling(NULL, NULL, 5) WHERE mean IS NULL")
            .await,
        4
    );
    assert_eq!(
        f.int("SELECT count(*) FROM rolling(NULL, NULL, steps => 3) WHERE mean IS NULL")
            .await,
        2
    );
    let last: Vec<Outcome> = f.reports().iter().map(|r| r.outcome).collect();
    assert_eq!(last.last(), Some(&Outcome::Hit));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arguments_cannot_inject_sql_into_a_body() {
    let f = Fixture::new();
    f.query(DEFINE_ROLLING).await.unwrap();
    let evil = "x''; DROP TABLE t; --";
    let sql = format!("SELECT DISTINCT label FROM rolling(NULL, NULL, label => '{evil}')");
    let batches = f.query(&sql).await.unwrap();
    let shown = arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert!(
        shown.contains("x'; DROP TABLE t; --"),
        "the argument stays one value: {shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_with_mistakes_are_refused_clearly() {
    let f = Fixture::new();
    let cases = [
        (
            "CREATE CACHED FUNCTION g(a INT) AS SELECT $b AS x",
            "uses $b, which is not a parameter",
        ),
        (
            "CREATE CACHED FUNCTION g(a INT) WITH (cache_args = (z)) AS SELECT $a AS x",
            "cache_args names 'z'",
        ),
        (
            "CREATE CACHED FUNCTION g(a BLOB) AS SELECT 1 AS x",
            "do not take",
        ),
        (
            "CREATE CACHED FUNCTION g(a INT DEFAULT 'x') AS SELECT 1 AS x",
            "default of a must be an integer",
        ),
        (
            "CREATE CACHED FUNCTION g(a INT) AS SELECT * FROM missing_table",
            "the body does not plan",
        ),
        (
            "CREATE CACHED FUNCTION g(cache_mode VARCHAR) AS SELECT 1 AS x",
            "reserved",
        ),
        (
            "CREATE CACHED FUNCTION g(start_time TIMESTAMP, end_time TIMESTAMP) WITH (timeseries = 'when') AS SELECT 1 AS x",
            "no timeseries column 'when'",
        ),
    ];
    let mut failures = Vec::new();
    for (sql, expected) in cases {
        let error = f.error(sql).await;
        if !error.contains(expected) {
            failures.push(format!("{sql}\n  expected {expected}\n  got {error}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(f.nuthatch.function("g").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cache_mode_applies_until_a_call_overrides_it() {
    let f = Fixture::new();
    f.query("SET nuthatch.cache_mode = 'off'").await.unwrap();
    let sql = "SELECT count(*) FROM series('2020-01-01', '2020-01-01')";
    assert_eq!(f.int(sql).await, 24);
    assert_outcome(&f.report(), Outcome::ComputedNotStored);
    assert_eq!(f.files(), Vec::<String>::new());
    assert_eq!(
        f.int("SELECT count(*) FROM series('2020-01-01', '2020-01-01', cache_mode => 'write')")
            .await,
        24
    );
    assert_outcome(&f.report(), Outcome::Computed);
    f.query("SET nuthatch.cache_mode = 'read_only'")
        .await
        .unwrap();
    assert_eq!(f.int(sql).await, 24);
    assert_outcome(&f.report(), Outcome::Hit);
    let error = f.error("SET nuthatch.cache_mode = 'whenever'").await;
    assert!(error.contains("invalid cache_mode 'whenever'"), "{error}");
    assert_eq!(f.int(sql).await, 24, "the last valid setting stays");
    assert_outcome(&f.report(), Outcome::Hit);
    assert_eq!(f.computes(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedding_program_installs_nuthatch_into_its_own_context() {
    let f = Fixture::new();
    let ctx = datafusion::prelude::SessionContext::new();
    let installed = f.engine.install(&ctx).unwrap();
    let batches = ctx
        .sql("SELECT count(*) FROM series('2020-01-01', '2020-01-01', station => 'mine')")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(batches[0].num_rows(), 1);
    let reports = installed.take_reports();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_outcome(&reports[0], Outcome::Computed);
    assert!(
        f.reports().is_empty(),
        "another session's calls are not ours"
    );
    ctx.sql("SET nuthatch.cache_mode = 'off'")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert!(f.files().contains(&"series/1.0_mine.parquet".to_string()));
    // The system tables, DELETE included, work in the program's own
    // context, not only through a nuthatch session.
    let run = |sql: &'static str| {
        let ctx = ctx.clone();
        async move {
            let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
            arrow::util::pretty::pretty_format_batches(&batches)
                .unwrap()
                .to_string()
        }
    };
    let listed = run("SELECT key, tier FROM nuthatch.caches").await;
    assert!(listed.contains("| series/1.0_mine | root |"), "{listed}");
    assert!(
        run("SELECT key FROM nuthatch.calls")
            .await
            .contains("series/1.0_mine")
    );
    assert!(
        run("DELETE FROM nuthatch.caches WHERE key = 'series/1.0_mine'")
            .await
            .contains("| 1     |")
    );
    assert!(!f.files().contains(&"series/1.0_mine.parquet".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_values_are_arguments_and_never_sql() {
    use datafusion::common::ScalarValue;
    let f = Fixture::new();
    let call = "SELECT count(*) AS n FROM series(?, ?, station => ?)";
    let count = |values: Vec<ScalarValue>| {
        let f = &f;
        async move {
            let frame = f.nuthatch.sql_with_params(call, &values).await?;
            let rows = crate::system::text_rows(&frame.collect().await?);
            Ok::<String, datafusion::error::DataFusionError>(rows[0][0].clone())
        }
    };
    let day = |station: &str| {
        vec![
            ScalarValue::from("2020-01-02"),
            ScalarValue::TimestampMicrosecond(Some(1_578_009_600_000_000), None),
            ScalarValue::from(station),
        ]
    };
    // 2020-01-02 to 2020-01-03T00:00 inclusive: 25 hours.
    assert_eq!(count(day("north")).await.unwrap(), "25");
    assert_outcome(&f.report(), Outcome::Computed);
    // A hostile station is one more key, stored and listed as given.
    let hostile = "x'); DELETE FROM nuthatch.caches; --";
    assert_eq!(count(day(hostile)).await.unwrap(), "25");
    let keys = f
        .int("SELECT count(*) FROM nuthatch.caches WHERE function = 'series'")
        .await;
    assert_eq!(keys, 2);
    let error = count(day("north")[..2].to_vec())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("has 3 parameter(s) and 2 value(s) were given"),
        "{error}"
    );
}

//! A cached result is the computed result: what each backend keeps of the
//! values it is given, what it says when it cannot keep one, and `exact`,
//! which refuses instead. The property test over generated results is in
//! `roundtrip.rs`.

use nuthatch::Outcome;

use crate::support::{Fixture, assert_outcome, each_case};
use crate::system::text_rows;

/// `edges()`: three rows whose values some formats cannot hold: a
/// nanosecond, NaN, -0.0, a null flag, the smallest INT.
fn define_edges(backend: &str) -> String {
    let grid = match backend {
        "zarr" => ", dimensions = (t)",
        _ => "",
    };
    format!(
        "CREATE OR REPLACE CACHED FUNCTION edges() WITH (backend = '{backend}'{grid}) AS \
         SELECT CAST(t AS TIMESTAMP) AS t, CAST(x AS DOUBLE) AS x, \
                CAST(flag AS BOOLEAN) AS flag, CAST(n AS INT) AS n \
         FROM (VALUES ('2020-01-01T00:00:00.000000001', 'NaN', NULL, -2147483648), \
                      ('2020-01-01T00:00:01', '-0.0', 'true', 1), \
                      ('2020-01-01T00:00:02', '1.5', 'false', NULL)) AS v(t, x, flag, n)"
    )
}

/// Each backend's changes to `edges()`, as the call line says them.
const CHANGES: [(&str, &str); 5] = [
    ("parquet", ""),
    ("arrow", ""),
    (
        "sql",
        "t: nanoseconds truncated to microseconds (1 value); \
         x: NaN stored as missing, read back as null (1 value); x: -0.0 stored as 0.0 (1 value)",
    ),
    (
        "delta",
        "t: nanoseconds truncated to microseconds (1 value)",
    ),
    (
        "zarr",
        "x: NaN stored as missing, read back as null (1 value); \
         flag: nulls stored as false (1 value); \
         n: -2147483648, the fill value, stored as missing, read back as null (1 value)",
    ),
];

/// What the hit reads back, per backend: t, x as text, flag, n.
fn read_back(backend: &str) -> Vec<Vec<&'static str>> {
    let ns = "2020-01-01T00:00:00.000000001";
    let us = "2020-01-01T00:00:00";
    match backend {
        "parquet" | "arrow" => vec![
            vec![ns, "NaN", "NULL", "-2147483648"],
            vec!["2020-01-01T00:00:01", "-0.0", "true", "1"],
            vec!["2020-01-01T00:00:02", "1.5", "false", "NULL"],
        ],
        "sql" => vec![
            vec![us, "NULL", "NULL", "-2147483648"],
            vec!["2020-01-01T00:00:01", "0.0", "true", "1"],
            vec!["2020-01-01T00:00:02", "1.5", "false", "NULL"],
        ],
        "delta" => vec![
            vec![us, "NaN", "NULL", "-2147483648"],
            vec!["2020-01-01T00:00:01", "-0.0", "true", "1"],
            vec!["2020-01-01T00:00:02", "1.5", "false", "NULL"],
        ],
        _ => vec![
            vec![ns, "NULL", "false", "NULL"],
            vec!["2020-01-01T00:00:01", "-0.0", "true", "1"],
            vec!["2020-01-01T00:00:02", "1.5", "false", "NULL"],
        ],
    }
}

const READ: &str = "SELECT CAST(t AS VARCHAR) AS t, CAST(x AS VARCHAR), CAST(flag AS VARCHAR), \
                    CAST(n AS VARCHAR) FROM edges() ORDER BY 1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_backend_says_what_it_stored_changed() {
    let label = |(backend, _): &(&str, &str)| backend.to_string();
    each_case(CHANGES, label, |(backend, changes)| async move {
        let f = Fixture::new();
        f.query(&define_edges(backend)).await.unwrap();
        let computed = text_rows(&f.query(READ).await.unwrap());
        let report = f.report();
        assert_outcome(&report, Outcome::Computed);
        let said: Vec<String> = report.changes.iter().map(|c| c.to_string()).collect();
        assert_eq!(said.join("; "), changes, "{backend}: {report}");
        let line = report.to_string();
        assert_eq!(
            line.contains(&format!("WARNING stored changed: {changes}")),
            !changes.is_empty(),
            "{line}"
        );
        let logged = text_rows(
            &f.query("SELECT coalesce(changes, '') FROM nuthatch.calls WHERE function = 'edges'")
                .await
                .unwrap(),
        );
        assert_eq!(logged, [[changes.to_string()]], "{backend}");
        // The miss serves what was stored, and the hit reads the same.
        let hit = text_rows(&f.query(READ).await.unwrap());
        assert_outcome(&f.report(), Outcome::Hit);
        let want = read_back(backend);
        let hit = hit.iter().map(|row| {
            row.iter()
                .map(|v| v.replace(' ', "T"))
                .collect::<Vec<String>>()
        });
        assert_eq!(hit.collect::<Vec<_>>(), want, "{backend}");
        assert_eq!(computed.len(), 3);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_refuses_a_change_and_stores_nothing() {
    let f = Fixture::new();
    f.query(&define_edges("sql")).await.unwrap();
    let error = f.error("SELECT * FROM edges(exact => true)").await;
    assert!(
        error.contains(
            "the sql backend would change column t: nanoseconds truncated to microseconds"
        ) && error.contains("backend = 'parquet'"),
        "{error}"
    );
    let stored = f
        .int("SELECT count(*) FROM nuthatch.caches WHERE function = 'edges'")
        .await;
    assert_eq!(stored, 0);
    // Declared on the function, and kept by a format that holds it all.
    let exact = define_edges("parquet").replace("WITH (", "WITH (exact = true, ");
    f.query(&exact).await.unwrap();
    assert_eq!(f.int("SELECT count(*) FROM edges()").await, 3);
    let report = f.report();
    assert_outcome(&report, Outcome::Computed);
    assert!(report.changes.is_empty(), "{report}");
    let exact = define_edges("delta").replace("WITH (", "WITH (exact = true, ");
    f.query(&exact).await.unwrap();
    let error = f.error("SELECT count(*) FROM edges()").await;
    assert!(
        error.contains("delta backend would change column t"),
        "{error}"
    );
    let error = f
        .error("CREATE CACHED FUNCTION bad() WITH (exact = 'maybe') AS SELECT 1 AS x")
        .await;
    assert!(error.contains("exact"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dates_past_year_9999_are_refused_where_they_cannot_be_stored() {
    for backend in ["sql", "delta", "parquet"] {
        let f = Fixture::new();
        f.query(&format!(
            "CREATE CACHED FUNCTION far() WITH (backend = '{backend}') AS \
             SELECT arrow_cast(3000000, 'Date32') AS d"
        ))
        .await
        .unwrap();
        if backend == "parquet" {
            let far = text_rows(&f.query("SELECT CAST(d AS INT) FROM far()").await.unwrap());
            assert_eq!(far, [["3000000"]]);
            continue;
        }
        let error = f.error("SELECT * FROM far()").await;
        assert!(
            error.contains(&format!(
                "the {backend} backend cannot store column d: dates or times outside the \
                 years 1 to 9999 (1 value)"
            )) && error.contains("backend = 'parquet'"),
            "{error}"
        );
        let stored = f
            .int("SELECT count(*) FROM nuthatch.caches WHERE function = 'far'")
            .await;
        assert_eq!(stored, 0, "{backend}");
    }
}

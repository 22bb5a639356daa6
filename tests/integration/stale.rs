//! Staleness: definition fingerprints, lineage, what a call does with a
//! stale entry, and refresh, from SQL and the Rust API.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema};
use nuthatch::{CachedFunction, Outcome, ParamType, RefreshAction};

use crate::support::Fixture;
use crate::system::text_rows;

const BASE: &str = "CREATE OR REPLACE CACHED FUNCTION base()
    AS SELECT * FROM (VALUES (1, 10.0), (2, 20.0)) AS t(k, v)";

/// The same body, laid out and spelled differently, with a comment.
const BASE_RESTYLED: &str = "create or replace cached function base() as
    -- the same two rows
    select *   from (values (1, 10.0), (2, 20.0)) as t(k, v)";

const BASE_EDITED: &str = "CREATE OR REPLACE CACHED FUNCTION base()
    AS SELECT * FROM (VALUES (1, 10.0), (2, 30.0)) AS t(k, v)";

const DERIVED: &str = "CREATE OR REPLACE CACHED FUNCTION derived(n BIGINT)
    WITH (cache_args = (n))
    AS SELECT k, v * $n AS v FROM base()";

/// Every cell of every row of `sql`'s result as text (NULL as "NULL").
async fn rows(f: &Fixture, sql: &str) -> Vec<Vec<String>> {
    text_rows(&f.query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")))
}

async fn staleness(f: &Fixture) -> Vec<Vec<String>> {
    rows(
        f,
        "SELECT key, stale, stale_because FROM nuthatch.caches WHERE tier = 'root' ORDER BY key",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_input_makes_what_read_it_stale_and_refresh_recomputes_both_once() {
    let f = Fixture::new();
    f.query(BASE).await.unwrap();
    f.query(DERIVED).await.unwrap();
    assert_eq!(f.int("SELECT sum(v) FROM derived(2)").await, 60);
    f.reports();
    let fresh = vec![
        vec!["base/".to_string(), "false".into(), "NULL".into()],
        vec!["derived/2".to_string(), "false".into(), "NULL".into()],
    ];
    assert_eq!(staleness(&f).await, fresh);
    assert_eq!(
        rows(
            &f,
            "SELECT key, input_kind, input_function, input_key, input_tier, input_backend \
             FROM nuthatch.lineage WHERE function = 'derived'"
        )
        .await,
        vec![vec![
            "derived/2",
            "entry",
            "base",
            "base/",
            "root",
            "parquet"
        ]]
    );
    let fingerprints = rows(
        &f,
        "SELECT count(DISTINCT fingerprint) FROM nuthatch.caches",
    )
    .await;
    assert_eq!(fingerprints, vec![vec!["2"]]);

    // Comments, layout and keyword spelling are not the definition.
    f.query(BASE_RESTYLED).await.unwrap();
    assert_eq!(staleness(&f).await, fresh);

    f.query(BASE_EDITED).await.unwrap();
    let edited = "the definition of base changed";
    assert_eq!(
        staleness(&f).await,
        vec![
            vec!["base/".to_string(), "true".into(), edited.into()],
            vec![
                "derived/2".to_string(),
                "true".into(),
                format!("input base() is stale: {edited}")
            ],
        ]
    );
    assert_eq!(
        rows(
            &f,
            "SELECT key FROM nuthatch.caches WHERE stale ORDER BY key"
        )
        .await,
        vec![vec!["base/"], vec!["derived/2"]]
    );

    // The default policy serves it and says so, in the report and in
    // nuthatch.calls.
    assert_eq!(f.int("SELECT sum(v) FROM derived(2)").await, 60);
    let report = f.report();
    assert_eq!(report.outcome, Outcome::Hit);
    let because = format!("input base() is stale: {edited}");
    assert_eq!(report.stale.as_deref(), Some(because.as_str()));
    assert!(
        report.to_string().ends_with(&format!(" STALE: {because}")),
        "{report}"
    );
    assert_eq!(
        rows(
            &f,
            "SELECT stale FROM nuthatch.calls WHERE stale IS NOT NULL"
        )
        .await,
        vec![vec![because.clone()]]
    );

    // on_stale => 'error' refuses it, naming the cause and the fix.
    let error = f
        .error("SELECT * FROM derived(2, on_stale => 'error')")
        .await;
    assert!(
        error.contains("entry derived/n_2 on the root tier is stale: input base() is stale")
            && error.contains("nuthatch refresh derived"),
        "{error}"
    );
    let error = f
        .error("SELECT * FROM derived(2, on_stale => 'later')")
        .await;
    assert!(
        error.contains("use one of serve, warn, recompute, error"),
        "{error}"
    );

    // A dry run lists both, inputs first, with the calls it would make.
    let planned = rows(&f, "EXPLAIN REFRESH STALE derived").await;
    let steps: Vec<(&str, &str, &str)> = (planned.iter())
        .map(|r| (r[3].as_str(), r[6].as_str(), r[8].as_str()))
        .collect();
    assert_eq!(
        steps,
        vec![
            ("base/", "recompute", "NULL"),
            ("derived/2", "recompute", "NULL")
        ]
    );
    assert!(
        planned[1][7].starts_with("SELECT count(*) AS rows FROM derived(n => 2, recompute => true"),
        "{planned:?}"
    );
    assert_eq!(
        staleness(&f).await[1][1],
        "true",
        "a dry run changes nothing"
    );

    // The refresh recomputes each once, inputs first; then all is fresh
    // and the calls are hits again.
    let refreshed = rows(&f, "REFRESH STALE derived").await;
    let outcomes: Vec<(&str, &str)> = (refreshed.iter())
        .map(|r| (r[3].as_str(), r[8].as_str()))
        .collect();
    assert_eq!(
        outcomes,
        vec![("base/", "computed"), ("derived/2", "computed")]
    );
    assert_eq!(
        staleness(&f).await,
        fresh,
        "after the refresh nothing is stale"
    );
    assert_eq!(f.int("SELECT sum(v) FROM derived(2)").await, 80);
    let report = f.report();
    assert_eq!((report.outcome, report.stale), (Outcome::Hit, None));
    assert!(rows(&f, "REFRESH STALE").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_computed_again_or_removed_makes_its_readers_stale() {
    let f = Fixture::new();
    f.query(BASE).await.unwrap();
    f.query(DERIVED).await.unwrap();
    f.query("SELECT * FROM derived(3)").await.unwrap();
    f.reports();

    f.query("SELECT * FROM base(recompute => true, cache_mode => 'overwrite')")
        .await
        .unwrap();
    f.reports();
    let after = staleness(&f).await;
    assert_eq!(after[0][1], "false", "{after:?}");
    assert!(
        after[1][2].starts_with("input base() recomputed at ") && after[1][2].ends_with(" UTC"),
        "{after:?}"
    );

    // on_stale => 'recompute' computes it again, reading base as it is now.
    f.query("SELECT * FROM derived(3, on_stale => 'recompute')")
        .await
        .unwrap();
    let outcomes = f.outcomes();
    assert_eq!(
        outcomes,
        vec![
            ("base/".to_string(), Outcome::Hit),
            ("derived/3".to_string(), Outcome::Computed)
        ]
    );
    assert_eq!(staleness(&f).await[1][1], "false");

    f.query("DELETE FROM nuthatch.caches WHERE function = 'base'")
        .await
        .unwrap();
    assert_eq!(
        staleness(&f).await,
        vec![vec![
            "derived/3".to_string(),
            "true".into(),
            "input base() is no longer stored".into()
        ]]
    );
    // SET nuthatch.on_stale = 'serve' judges nothing.
    f.query("SET nuthatch.on_stale = 'serve'").await.unwrap();
    f.query("SELECT * FROM derived(3)").await.unwrap();
    assert_eq!(f.report().stale, None);
}

fn constant(fingerprint: &str) -> CachedFunction {
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]));
    let returned = Arc::clone(&schema);
    CachedFunction::builder("constant")
        .param("n", ParamType::Int)
        .cache_args(["n"])
        .fingerprint(fingerprint)
        .returns(schema)
        .compute(move |_ctx, args| {
            let schema = Arc::clone(&returned);
            async move {
                let n = args.i64("n")?;
                let column = Arc::new(arrow::array::Int64Array::from(vec![n]));
                Ok(vec![RecordBatch::try_new(schema, vec![column])?])
            }
        })
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_body_is_told_apart_by_the_fingerprint_its_author_gives() {
    let f = Fixture::new();
    f.nuthatch.register(constant("v1")).unwrap();
    f.query("SELECT * FROM constant(1)").await.unwrap();
    f.nuthatch.register(constant("v1")).unwrap();
    assert_eq!(staleness(&f).await[0][1], "false");
    f.nuthatch.register(constant("v2")).unwrap();
    assert_eq!(
        staleness(&f).await[0][1..],
        [
            "true".to_string(),
            "the definition of constant changed".into()
        ]
    );
    let steps = f.nuthatch.plan_refresh(&["constant".into()]).await.unwrap();
    assert_eq!(steps.len(), 1);
    assert!(
        matches!(&steps[0].action, RefreshAction::Recompute { sql } if sql.contains("constant(n => 1,")),
        "{steps:?}"
    );
    let mut seen = Vec::new();
    let outcomes = f
        .nuthatch
        .run_refresh(&steps, &mut |at, of, step, done| {
            if done.is_none() {
                seen.push(format!("{at}/{of} {}", step.describe()))
            }
        })
        .await
        .unwrap();
    assert_eq!(seen, vec!["1/1 constant/1 on root"]);
    assert_eq!(outcomes, vec![Some("computed".to_string())]);
    assert_eq!(staleness(&f).await[0][1], "false");

    let error = f.nuthatch.plan_refresh(&["nope".into()]).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("there is no cached function named nope; defined are: constant"),
        "{error}"
    );
}

/// Writes a Parquet file of one reading into `folder`.
async fn write(f: &Fixture, folder: &std::path::Path, name: &str, value: i64) {
    let path = folder.join(name);
    let sql = format!(
        "COPY (SELECT CAST({value} AS BIGINT) AS reading) TO '{}' STORED AS PARQUET",
        path.display()
    );
    f.query(&sql).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_the_body_read_that_changes_or_gains_a_neighbour_makes_the_entry_stale() {
    let f = Fixture::new();
    let data = f.dir.path().join("observations");
    std::fs::create_dir_all(&data).unwrap();
    write(&f, &data, "a.parquet", 1).await;
    f.query(&format!(
        "CREATE EXTERNAL TABLE observations STORED AS PARQUET LOCATION '{}/'",
        data.display()
    ))
    .await
    .unwrap();
    f.query("CREATE CACHED FUNCTION totals() AS SELECT sum(reading) AS total FROM observations")
        .await
        .unwrap();
    assert_eq!(f.int("SELECT total FROM totals()").await, 1);
    let edges = rows(
        &f,
        "SELECT input_kind, input_url, input_bytes > 0 FROM nuthatch.lineage",
    )
    .await;
    let a = format!("file://{}", data.join("a.parquet").display());
    assert_eq!(
        edges,
        vec![vec!["file".to_string(), a.clone(), "true".into()]]
    );
    assert_eq!(staleness(&f).await[0][1], "false");

    write(&f, &data, "b.parquet", 2).await;
    let b = format!("file://{}", data.join("b.parquet").display());
    assert_eq!(
        staleness(&f).await[0][2],
        format!("input file {b} appeared beside the files it read, after it was computed")
    );
    let refreshed = rows(&f, "REFRESH STALE totals").await;
    assert_eq!(refreshed.len(), 1, "{refreshed:?}");
    assert_eq!(f.int("SELECT total FROM totals()").await, 3);
    assert_eq!(staleness(&f).await[0][1], "false");

    // The same name, other contents.
    std::thread::sleep(std::time::Duration::from_millis(20));
    write(&f, &data, "a.parquet", 10).await;
    let because = &staleness(&f).await[0][2];
    assert!(
        because.starts_with(&format!("input file {a} changed at ")),
        "{because}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_of_a_lineage_that_loops_is_refused_naming_the_loop() {
    let f = Fixture::new();
    f.query("CREATE CACHED FUNCTION b() AS SELECT 1 AS x")
        .await
        .unwrap();
    f.query("CREATE CACHED FUNCTION a() AS SELECT x FROM b()")
        .await
        .unwrap();
    f.query("SELECT * FROM a()").await.unwrap();
    // b now reads a, which read the b before it: each entry's lineage
    // names the other.
    f.query("CREATE OR REPLACE CACHED FUNCTION b() AS SELECT x + 1 AS x FROM a()")
        .await
        .unwrap();
    f.query("SELECT * FROM b(recompute => true, cache_mode => 'overwrite')")
        .await
        .unwrap();
    let error = f.error("EXPLAIN REFRESH STALE").await;
    assert!(
        error.contains("the lineage of these entries is a cycle (")
            && error.contains("a() -> b() -> a()") | error.contains("b() -> a() -> b()"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_entries_on_a_mirror_are_judged_there_and_listed_never_refreshed() {
    // Another team's store, filled by its own engine.
    let team = Fixture::new();
    team.query(BASE).await.unwrap();
    team.query(DERIVED).await.unwrap();
    team.query("SELECT * FROM derived(2)").await.unwrap();
    let mirror = team.root().display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::with_config(dir, |root| {
        crate::tiers::with_mirrors(root, &[("team", mirror)])
    });
    f.query(BASE).await.unwrap();
    f.query(DERIVED).await.unwrap();
    let on_mirror = "SELECT key, stale, stale_because FROM nuthatch.caches \
                     WHERE tier = 'team' ORDER BY key";
    assert_eq!(
        rows(&f, on_mirror).await,
        vec![
            vec!["base/".to_string(), "false".into(), "NULL".into()],
            vec!["derived/2".to_string(), "false".into(), "NULL".into()],
        ],
        "the mirror's entries read their inputs on the mirror"
    );

    f.query(BASE_EDITED).await.unwrap();
    let stale: Vec<String> = (rows(&f, on_mirror).await.iter())
        .map(|r| r[2].clone())
        .collect();
    assert_eq!(
        stale,
        [
            "the definition of base changed",
            "input base() is stale: the definition of base changed"
        ]
    );
    let steps = f.nuthatch.plan_refresh(&[]).await.unwrap();
    let skipped: Vec<(&str, &str, bool)> = (steps.iter())
        .map(|s| {
            let mirror =
                matches!(&s.action, RefreshAction::Skip { why } if why.contains("on a mirror"));
            (s.key.as_str(), s.tier.as_str(), mirror)
        })
        .collect();
    assert_eq!(
        skipped,
        [("base/", "team", true), ("derived/2", "team", true)]
    );
    let before = crate::support::files_under(&team.root());
    let done = rows(&f, "REFRESH STALE").await;
    assert!(done.iter().all(|r| r[6].starts_with("skip: ")), "{done:?}");
    assert_eq!(crate::support::files_under(&team.root()), before);
}

/// Replaces the text column `column` of the metadata row at `path`.
fn rewrite_row(path: &std::path::Path, column: &str, value: &str) {
    let row = crate::compat::read_parquet(path);
    let index = row.schema().index_of(column).unwrap();
    let mut columns = row.columns().to_vec();
    columns[index] = Arc::new(arrow::array::StringArray::from(vec![value]));
    let row = RecordBatch::try_new(row.schema(), columns).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, row.schema(), None).unwrap();
    writer.write(&row).unwrap();
    writer.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_of_a_later_release_is_named_and_unknown_never_an_error() {
    let f = Fixture::new();
    f.query(BASE).await.unwrap();
    f.query(DERIVED).await.unwrap();
    f.query("SELECT * FROM derived(2)").await.unwrap();
    f.query("SELECT * FROM derived(3)").await.unwrap();
    let row = |n: u8| {
        f.root()
            .join(format!("nuthatch_metadata.nut/derived/{n}/parquet.parquet"))
    };
    rewrite_row(&row(2), "fingerprint", "9:from-a-later-release");
    rewrite_row(&row(3), "lineage", "nuthatch-lineage 7\nsomething new");
    assert_eq!(
        rows(&f, "SELECT key, stale, stale_because FROM nuthatch.caches WHERE function = 'derived' ORDER BY key").await,
        vec![
            vec![
                "derived/2".to_string(),
                "NULL".into(),
                "unknown: its fingerprint '9:from-a-later-release' is of a scheme this build does \
                 not compute"
                    .into()
            ],
            vec![
                "derived/3".to_string(),
                "NULL".into(),
                "unknown: its lineage is in a format this build does not read \
                 ('nuthatch-lineage 7')"
                    .into()
            ],
        ]
    );
    f.reports();
    f.query("SELECT * FROM derived(2, on_stale => 'error')")
        .await
        .unwrap();
    let report = f.report();
    assert_eq!((report.outcome, report.stale), (Outcome::Hit, None));
}

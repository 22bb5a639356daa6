//! Bad input gets a clear error that names the fix, and leaves nothing behind.

use nuthatch::{Config, Outcome, TierConfig};

use crate::support::{Fixture, assert_outcome};

async fn assert_error(fixture: &Fixture, sql: &str, expected: &[&str]) {
    let error = fixture.error(sql).await;
    for part in expected {
        assert!(
            error.contains(part),
            "{sql}\nerror: {error}\nmissing: {part}"
        );
    }
    assert_eq!(
        fixture.files(),
        Vec::<String>::new(),
        "{sql} left files behind"
    );
    assert_eq!(fixture.computes(), 0, "{sql} computed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argument_errors_name_the_parameter_and_its_type() {
    let f = Fixture::new();
    assert_error(
        &f,
        "SELECT * FROM sereis('2020-01-01', '2020-01-02')",
        &["sereis", "not found"],
    )
    .await;
    assert_error(
        &f,
        "SELECT * FROM series('2020-01-01', '2020-01-02', statoin => 'x')",
        &[
            "has no parameter 'statoin'",
            "start_time TIMESTAMP, end_time TIMESTAMP, station VARCHAR, scale DOUBLE",
        ],
    )
    .await;
    assert_error(
        &f,
        "SELECT * FROM series('2020-01-01')",
        &["missing argument 'end_time' (TIMESTAMP)"],
    )
    .await;
    assert_error(
        &f,
        "SELECT * FROM series('2020-01-01', '2020-01-02', station => 'a', station => 'b')",
        &["argument 'station' of series is given twice"],
    )
    .await;
    assert_error(
        &f,
        "SELECT * FROM series('2020-01-01', '2020-01-02', 'south', station => 'b')",
        &["argument 'station' of series is given twice"],
    )
    .await;
    assert_error(
        &f,
        "SELECT * FROM series('2020-01-01', '2020-01-02', scale => 'big')",
        &["argument 'scale' of series expects a number", "big"],
    )
    .await;
    assert_error(
        &f,
        "SELECT * FROM series('2020-01-01', '2020-01-02', 'a', 2.0, 'extra')",
        &["at most 4 positional arguments, got 5"],
    )
    .await;
    assert_error(
        &f,
        "SELECT * FROM series('2020-02-30', '2020-03-01')",
        &[
            "argument 'start_time' of series expects a timestamp such as '2013-01-01'",
            "2020-02-30",
        ],
    )
    .await;
    assert_error(
        &f,
        "SELECT * FROM series('2020-03-01', '2020-02-01')",
        &["end_time 2020-02-01T00:00:00 is before start_time 2020-03-01T00:00:00"],
    )
    .await;
    assert_error(
        &f,
        "SELECT * FROM series('2020-01-01', '2020-01-02', cache_mode => 'sometimes')",
        &["invalid cache_mode 'sometimes'", "overwrite"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_that_would_leave_the_store_are_refused() {
    let f = Fixture::new();
    for station in ["../../etc", "..", "a/b", "/abs", "a\\\\b"] {
        assert_error(
            &f,
            &format!("SELECT * FROM series('2020-01-01', '2020-01-02', station => '{station}')"),
            &["station", "cannot be part of a cache key"],
        )
        .await;
    }
    let long = "x".repeat(201);
    assert_error(
        &f,
        &format!("SELECT * FROM series('2020-01-01', '2020-01-02', station => '{long}')"),
        &["'station' is 201 characters long", "at most 200"],
    )
    .await;
    assert_error(
        &f,
        "SELECT * FROM series('2020-01-01', '2020-01-02', namespace => '../up')",
        &["namespace '../up' cannot be used"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_compute_commits_nothing_and_the_next_call_computes_again() {
    let f = Fixture::new();
    let sql = "SELECT count(*) FROM series('2020-01-01', '2020-01-02', station => 'broken')";
    let error = f.error(sql).await;
    assert!(error.contains("the station feed is down"), "{error}");
    assert!(error.contains("nothing was stored"), "{error}");
    assert_eq!(f.files(), Vec::<String>::new());
    let _ = f.error(sql).await;
    assert_eq!(f.computes(), 2, "a failed compute must not be cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_root_is_reported_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-folder");
    std::fs::write(&blocker, b"x").unwrap();
    let config = Config::with_root(blocker.join("root").display().to_string());
    let error = nuthatch::Engine::new(&config)
        .expect_err("root under a file cannot open")
        .to_string();
    assert!(
        error.contains("root tier") && error.contains("unreachable"),
        "{error}"
    );
    assert!(error.contains("NUTHATCH_ROOT_FILESYSTEM"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_root_serves_hits_and_refuses_writes_without_leaving_files() {
    let f = Fixture::new();
    let sql = "SELECT count(*) FROM series('2020-01-01', '2020-01-02')";
    assert_eq!(f.int(sql).await, 48);
    let stored = f.files();
    let read_only = Fixture::with_config(f.dir, |root| {
        let mut config = Config::with_root("unused");
        config.root = TierConfig::new(root.display().to_string()).read_only(true);
        config
    });
    assert_eq!(read_only.int(sql).await, 48);
    assert_outcome(&read_only.report(), Outcome::Hit);
    // Without a writable root the default mode is read_only_strict, as in
    // Python: a miss is an error, not a compute.
    let error = read_only
        .error("SELECT count(*) FROM series('2020-01-01', '2020-01-02', station => 'south')")
        .await;
    assert!(
        error.contains("read_only_strict") && error.contains("does not compute"),
        "{error}"
    );
    // Asking to store there names the fix.
    let error = read_only
        .error("SELECT count(*) FROM series('2020-01-01', '2020-01-02', station => 'south', cache_mode => 'write')")
        .await;
    assert!(
        error.contains("read-only") && error.contains("cache_mode => 'read_only'"),
        "{error}"
    );
    assert_eq!(read_only.files(), stored);
    assert_eq!(
        read_only.int("SELECT count(*) FROM series('2020-01-01', '2020-01-02', station => 'south', cache_mode => 'read_only')").await,
        48
    );
    assert_outcome(&read_only.report(), Outcome::ComputedNotStored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_strict_refuses_to_compute() {
    let f = Fixture::new();
    assert_error(
        &f,
        "SELECT * FROM series('2020-01-01', '2020-01-02', cache_mode => 'read_only_strict')",
        &[
            "no cache entry series/scale_1.0/station_north",
            "cache_mode => 'write'",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_metadata_is_reported_with_its_path_and_the_fix() {
    let f = Fixture::new();
    let sql = "SELECT count(*) FROM series('2020-01-01', '2020-01-02')";
    f.int(sql).await;
    let metadata = f
        .root()
        .join("nuthatch_metadata.nut/series/1.0_north/parquet.parquet");
    std::fs::write(&metadata, b"garbage").unwrap();
    let error = f.error(sql).await;
    assert!(
        error.contains("nuthatch_metadata.nut/series/1.0_north/parquet.parquet"),
        "{error}"
    );
    assert!(
        error.contains("is corrupt") && error.contains("recompute => true"),
        "{error}"
    );
    // The fix it names works.
    let fixed = "SELECT count(*) FROM series('2020-01-01', '2020-01-02', recompute => true, cache_mode => 'overwrite')";
    assert_eq!(f.int(fixed).await, 48);
    f.reports();
    assert_eq!(f.int(sql).await, 48);
    assert_outcome(&f.report(), Outcome::Hit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_without_metadata_is_never_served() {
    // What a crash between the data put and the metadata put leaves behind.
    let f = Fixture::new();
    let sql = "SELECT count(*) FROM series(NULL, NULL)";
    assert_eq!(f.int(sql).await, 1440);
    std::fs::remove_file(
        f.root()
            .join("nuthatch_metadata.nut/series/1.0_north/parquet.parquet"),
    )
    .unwrap();
    assert_eq!(f.int(sql).await, 1440);
    assert_outcome(&f.reports().pop().unwrap(), Outcome::Computed);
    assert_eq!(f.computes(), 2);
    // And metadata whose data is gone is a miss, not an error.
    std::fs::remove_file(f.root().join("series/1.0_north.parquet")).unwrap();
    assert_eq!(f.int(sql).await, 1440);
    assert_outcome(&f.reports().pop().unwrap(), Outcome::Computed);
    assert_eq!(f.computes(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recompute_that_fails_keeps_the_entry_it_would_replace() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let f = Fixture::new();
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&runs);
    let flaky = nuthatch::CachedFunction::builder("flaky")
        .returns(crate::support::series_schema())
        .compute(move |_ctx, _args| {
            let run = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if run > 0 {
                    return Err(datafusion::error::DataFusionError::Execution(
                        "the source is down".into(),
                    ));
                }
                let times = (0..24).map(|h| h * 3_600_000_000_000).collect();
                Ok(vec![crate::coverage::series_rows(times, "n", 1.0)?])
            }
        })
        .build()
        .unwrap();
    f.nuthatch.register(flaky).unwrap();
    assert_eq!(f.int("SELECT count(*) FROM flaky()").await, 24);
    let error = f
        .error("SELECT count(*) FROM flaky(recompute => true, cache_mode => 'overwrite')")
        .await;
    assert!(error.contains("the source is down"), "{error}");
    f.reports();
    assert_eq!(f.int("SELECT count(*) FROM flaky()").await, 24);
    assert_outcome(&f.report(), Outcome::Hit);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

/// A backend's section of a tier is checked by that backend when the
/// engine opens: unknown keys and unusable values are refused with the
/// setting named and what it takes, a section for no backend names those
/// there are, and Python's backends this build lacks are accepted unused.
#[test]
fn backend_sections_are_checked_by_their_backend_when_the_engine_opens() {
    let dir = tempfile::tempdir().unwrap();
    let open = |settings: &[(&str, &str)]| {
        let mut config = Config::with_root(dir.path().join("root").display().to_string());
        config.local = TierConfig::new(dir.path().join("local").display().to_string());
        for (key, value) in settings {
            config.set(key, value).unwrap();
        }
        nuthatch::Engine::new(&config)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    type Case<'a> = (&'a [(&'a str, &'a str)], Option<[&'a str; 2]>);
    let cases: [Case; 8] = [
        (
            &[("root.parquet.hots", "x")],
            Some(["'root.parquet.hots'", "filesystem_options"]),
        ),
        (
            &[("root.parqet.filesystem", "/x")],
            Some(["'root.parqet'", "parquet"]),
        ),
        (
            &[("root.sql.port", "five")],
            Some(["root.sql.port", "65535"]),
        ),
        (
            &[("root.sql.max_conections", "3")],
            Some(["max_conections", "max_connections"]),
        ),
        (
            &[("local.delta.retention_hours", "-1")],
            Some(["local.delta.retention_hours", "hours"]),
        ),
        (&[("root.delta.retention_hours", "0.5")], None),
        (
            &[("root.terracotta.host", "tiles"), ("root.basic.x", "1")],
            None,
        ),
        (
            &[
                ("root.host", "db"),
                ("root.port", "5432"),
                ("root.sql.password", "pw"),
            ],
            None,
        ),
    ];
    let mut failures = Vec::new();
    for (settings, expected) in cases {
        let got = open(settings);
        let fine = match (&got, expected) {
            (Ok(()), None) => true,
            (Err(err), Some(parts)) => parts.iter().all(|part| err.contains(part)),
            _ => false,
        };
        if !fine {
            failures.push(format!("{settings:?}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

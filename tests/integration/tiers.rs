//! Tiers and cache modes: for each mode and tier rule, what a call read and
//! what it left on each tier (the files in the root and local folders).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use nuthatch::{CachedFunction, Computed, Config, Outcome, ParamType, TierConfig};
use parquet::file::reader::{FileReader, SerializedFileReader};

use crate::support::{Fixture, SERIES_ROWS, assert_outcome, each_case, files_under};

pub(crate) const DAY: &str = "SELECT count(*) FROM series('2020-01-01', '2020-01-02'";
/// The root entry of `series` with default arguments.
const ROOT_DATA: &str = "series/1.0_north.parquet";
/// Its local copy: keyed by every argument, clipped to the window.
const LOCAL_DATA: &str = "series/2020-01-02_1.0_2020-01-01_north.parquet";

pub(crate) fn day_with(options: &str) -> String {
    if options.is_empty() {
        format!("{DAY})")
    } else {
        format!("{DAY}, {options})")
    }
}

fn rows_in(path: &std::path::Path) -> i64 {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    SerializedFileReader::new(file)
        .unwrap()
        .metadata()
        .file_metadata()
        .num_rows()
}

/// Data files (not metadata) of a tier folder.
fn data_files(root: &std::path::Path) -> Vec<String> {
    files_under(root)
        .into_iter()
        .filter(|f| !f.starts_with("nuthatch_metadata.nut"))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Start {
    Empty,
    RootHolds,
    LocalHolds,
}

/// (mode, starting state) -> (outcome or error text, copy tier, root data, local data)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_mode_reads_and_writes_the_tiers_of_its_row() {
    use Outcome::*;
    use Start::*;
    type Row = (
        &'static str,
        Start,
        Result<Outcome, &'static str>,
        bool,
        bool,
    );
    let table: Vec<Row> = vec![
        // mode, start, outcome, root holds after, local holds after
        ("write", Empty, Ok(Computed), true, false),
        ("write", RootHolds, Ok(Hit), true, false),
        ("write", LocalHolds, Ok(Computed), true, true),
        ("overwrite", Empty, Ok(Computed), true, false),
        ("overwrite", LocalHolds, Ok(Computed), true, true),
        ("local", Empty, Ok(Computed), false, true),
        ("local", RootHolds, Ok(Hit), true, true),
        ("local", LocalHolds, Ok(Hit), false, true),
        ("local_overwrite", Empty, Ok(Computed), false, true),
        ("local_overwrite", RootHolds, Ok(Hit), true, true),
        ("local_sync", Empty, Ok(Computed), false, true),
        ("local_sync", RootHolds, Ok(Hit), true, true),
        ("local_sync", LocalHolds, Ok(Computed), false, true),
        ("local_strict", Empty, Ok(Computed), false, true),
        ("local_strict", RootHolds, Ok(Computed), true, true),
        ("local_strict", LocalHolds, Ok(Hit), false, true),
        (
            "local_api",
            Empty,
            Err("cache_mode 'local_api' does not compute"),
            false,
            false,
        ),
        ("local_api", RootHolds, Ok(Hit), true, true),
        ("local_api", LocalHolds, Ok(Hit), false, true),
        ("read_only", Empty, Ok(ComputedNotStored), false, false),
        ("read_only", RootHolds, Ok(Hit), true, false),
        ("read_only", LocalHolds, Ok(Hit), false, true),
        (
            "read_only_strict",
            Empty,
            Err("does not compute"),
            false,
            false,
        ),
        ("read_only_strict", RootHolds, Ok(Hit), true, false),
        ("read_only_strict", LocalHolds, Ok(Hit), false, true),
        ("off", Empty, Ok(ComputedNotStored), false, false),
        ("off", RootHolds, Ok(ComputedNotStored), true, false),
        ("off", LocalHolds, Ok(ComputedNotStored), false, true),
    ];
    let label = |(mode, start, ..): &Row| format!("{mode} from {start:?}");
    each_case(
        table,
        label,
        |(mode, start, expected, root_after, local_after)| async move {
            let f = Fixture::new();
            match start {
                Empty => {}
                RootHolds => assert_eq!(f.int(&day_with("cache_mode => 'write'")).await, 48),
                LocalHolds => {
                    assert_eq!(f.int(&day_with("cache_mode => 'local_strict'")).await, 48)
                }
            }
            f.reports();
            let computes = f.computes();
            let sql = day_with(&format!("cache_mode => '{mode}'"));
            let case = format!("{mode} from {start:?}");
            match expected {
                Ok(outcome) => {
                    assert_eq!(f.int(&sql).await, 48, "{case}");
                    let report = f.report();
                    assert_eq!(report.outcome, outcome, "{case}: {report}");
                    let computed = matches!(outcome, Computed | ComputedNotStored);
                    assert_eq!(f.computes(), computes + computed as usize, "{case}");
                }
                Err(text) => {
                    let error = f.error(&sql).await;
                    assert!(error.contains(text), "{case}: {error}");
                    assert_eq!(f.computes(), computes, "{case}");
                }
            }
            let root = data_files(&f.root());
            let local = data_files(&f.local());
            assert_eq!(
                root.contains(&ROOT_DATA.to_string()),
                root_after,
                "{case}: root {root:?}"
            );
            assert_eq!(
                local.contains(&LOCAL_DATA.to_string()),
                local_after,
                "{case}: local {local:?}"
            );
            // Root holds whole results, local clipped ones.
            if root_after {
                assert_eq!(
                    rows_in(&f.root().join(ROOT_DATA)),
                    SERIES_ROWS as i64,
                    "{case}"
                );
            }
            if local_after {
                assert_eq!(rows_in(&f.local().join(LOCAL_DATA)), 48, "{case}");
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_copy_of_a_root_hit_is_reported_and_read_next_time() {
    let f = Fixture::new();
    f.int(&day_with("")).await;
    f.reports();
    assert_eq!(f.int(&day_with("cache_mode => 'local'")).await, 48);
    let report = f.report();
    assert_eq!(
        (
            report.outcome,
            report.tier.as_deref(),
            report.copied_to.as_deref()
        ),
        (Outcome::Hit, Some("root"), Some("local"))
    );
    assert!(report.to_string().contains("hit root->local"), "{report}");
    assert_eq!(f.int(&day_with("cache_mode => 'local'")).await, 48);
    let report = f.report();
    assert_eq!(
        (report.tier.as_deref(), report.copied_to),
        (Some("local"), None)
    );
    // Another window is another local entry; root still serves it.
    let week = "SELECT count(*) FROM series('2020-01-01', '2020-01-07', cache_mode => 'local')";
    assert_eq!(f.int(week).await, 7 * 24);
    assert_eq!(f.report().tier.as_deref(), Some("root"));
    assert_eq!(data_files(&f.local()).len(), 2);
    assert_eq!(f.computes(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modes_that_would_ask_refuse_and_overwriting_modes_replace() {
    let f = Fixture::new();
    f.int(&day_with("cache_mode => 'local'")).await;
    let before = std::fs::metadata(f.local().join(LOCAL_DATA))
        .unwrap()
        .modified()
        .unwrap();
    let error = f
        .error(&day_with("cache_mode => 'local', recompute => true"))
        .await;
    assert!(
        error.contains("already stored on the local tier")
            && error.contains("cache_mode => 'local_overwrite'"),
        "{error}"
    );
    assert_eq!(f.computes(), 1, "refused before computing");
    f.reports();
    assert_eq!(
        f.int(&day_with(
            "cache_mode => 'local_overwrite', recompute => true"
        ))
        .await,
        48
    );
    assert_outcome(&f.report(), Outcome::Computed);
    let after = std::fs::metadata(f.local().join(LOCAL_DATA))
        .unwrap()
        .modified()
        .unwrap();
    assert!(after > before, "the local entry was replaced");
    // `overwrite` without recompute still reads what is there.
    f.int(&day_with("")).await;
    f.reports();
    f.int(&day_with("cache_mode => 'overwrite'")).await;
    assert_outcome(&f.report(), Outcome::Hit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memoized_calls_are_served_from_memory_whatever_the_mode() {
    let f = Fixture::new();
    let memo = day_with("memoize => true, cache_mode => 'off'");
    assert_eq!(f.int(&memo).await, 48);
    assert_outcome(&f.report(), Outcome::ComputedNotStored);
    assert_eq!(f.int(&memo).await, 48);
    let report = f.report();
    assert_eq!(
        (report.outcome, report.tier.as_deref()),
        (Outcome::Hit, Some("memory"))
    );
    assert_eq!(f.computes(), 1);
    assert!(data_files(&f.root()).is_empty() && data_files(&f.local()).is_empty());
    // Filters and projections apply to the memoized rows.
    let noon = "SELECT count(*) FROM series('2020-01-01', '2020-01-02', memoize => true, \
                cache_mode => 'off') WHERE time >= '2020-01-01T12:00:00'";
    assert_eq!(f.int(noon).await, 36);
    // Keyed by every argument, namespace and version: another window or
    // namespace is not a memory hit (Python's memoizer shares namespaces).
    let other = "SELECT count(*) FROM series('2020-01-01', '2020-01-03', memoize => true, cache_mode => 'off')";
    assert_eq!(f.int(other).await, 72);
    f.int(&day_with(
        "memoize => true, cache_mode => 'off', namespace => 'b'",
    ))
    .await;
    assert_eq!(f.computes(), 3);
    f.reports();
    // recompute skips memory.
    f.int(&day_with(
        "memoize => true, cache_mode => 'off', recompute => true",
    ))
    .await;
    assert_eq!(f.computes(), 4);
    // A memoized root hit is read from the store once.
    f.int(&day_with("station => 'south'")).await;
    f.reports();
    f.int(&day_with("station => 'south', memoize => true"))
        .await;
    f.int(&day_with("station => 'south', memoize => true"))
        .await;
    let tiers: Vec<Option<String>> = f.reports().into_iter().map(|r| r.tier).collect();
    assert_eq!(tiers, vec![Some("root".into()), Some("memory".into())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_over_the_memory_budget_are_served_but_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::with_config(dir, |root| {
        let mut config = Config::with_root(root.display().to_string());
        config.memoize_limit = 1;
        config
    });
    for _ in 0..2 {
        assert_eq!(f.int(&day_with("memoize => true")).await, 48);
    }
    let tiers: Vec<Option<String>> = f.reports().into_iter().map(|r| r.tier).collect();
    assert_eq!(tiers, vec![Some("root".into()), Some("root".into())]);
    assert_eq!(f.engine.catalog().memory().usage(), (0, 0));
}

/// `maybe(n)`: no result for negative `n`.
pub(crate) fn maybe(computes: Arc<AtomicUsize>) -> CachedFunction {
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
    let returns = Arc::clone(&schema);
    CachedFunction::builder("maybe")
        .param("n", ParamType::Int)
        .cache_args(["n"])
        .returns(schema)
        .compute(move |_ctx, args| {
            let computes = Arc::clone(&computes);
            let schema = Arc::clone(&returns);
            async move {
                computes.fetch_add(1, Ordering::SeqCst);
                let n = args.i64("n")?;
                if n < 0 {
                    return Ok(Computed::Null);
                }
                let batch =
                    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![n]))])?;
                Ok(Computed::from(Some(vec![batch])))
            }
        })
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_results_are_markers_that_read_back_empty_until_retried() {
    let f = Fixture::new();
    let computes = Arc::new(AtomicUsize::new(0));
    f.nuthatch.register(maybe(Arc::clone(&computes))).unwrap();
    assert_eq!(f.int("SELECT count(*) FROM maybe(-1)").await, 0);
    assert_outcome(&f.report(), Outcome::ComputedNull);
    assert!(
        f.files()
            .contains(&"nuthatch_metadata.nut/maybe/-1.null".to_string())
    );
    assert_eq!(f.int("SELECT count(*) FROM maybe(-1)").await, 0);
    assert_outcome(&f.report(), Outcome::NullHit);
    assert_eq!(computes.load(Ordering::SeqCst), 1);
    f.int("SELECT count(*) FROM maybe(-1, retry_null_cache => true)")
        .await;
    assert_outcome(&f.report(), Outcome::ComputedNull);
    assert_eq!(computes.load(Ordering::SeqCst), 2);

    // A marker Python wrote counts, whatever data sits beside it.
    assert_eq!(f.int("SELECT count(*) FROM maybe(5)").await, 1);
    std::fs::write(f.root().join("nuthatch_metadata.nut/maybe/5.null"), b"").unwrap();
    f.reports();
    assert_eq!(f.int("SELECT count(*) FROM maybe(5)").await, 0);
    assert_outcome(&f.report(), Outcome::NullHit);
    // Retrying computes a real result, which removes the marker.
    assert_eq!(
        f.int("SELECT count(*) FROM maybe(5, retry_null_cache => true)")
            .await,
        1
    );
    assert!(!f.root().join("nuthatch_metadata.nut/maybe/5.null").exists());

    // In a local mode the marker goes to the local tier.
    assert_eq!(
        f.int("SELECT count(*) FROM maybe(-2, cache_mode => 'local')")
            .await,
        0
    );
    assert!(
        f.local()
            .join("nuthatch_metadata.nut/maybe/-2.null")
            .exists()
    );
    assert!(
        !f.root()
            .join("nuthatch_metadata.nut/maybe/-2.null")
            .exists()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_disable_if_and_fail_if_no_cache_follow_the_function_and_the_call() {
    let f = Fixture::new();
    f.nuthatch
        .sql(
            "CREATE CACHED FUNCTION squares(n BIGINT, label VARCHAR DEFAULT 'x')
             WITH (cache_args = (n), cache_disable_if = (n IN (0, 1)))
             AS SELECT value * value AS sq FROM generate_series(1, $n)",
        )
        .await
        .unwrap();
    assert_eq!(f.int("SELECT count(*) FROM squares(1)").await, 1);
    assert_outcome(&f.report(), Outcome::ComputedNotStored);
    assert_eq!(f.int("SELECT count(*) FROM squares(2)").await, 2);
    assert_outcome(&f.report(), Outcome::Computed);
    // Disabled calls still use the local tier.
    f.int("SELECT count(*) FROM squares(1, cache_mode => 'local')")
        .await;
    assert_outcome(&f.report(), Outcome::Computed);
    assert!(data_files(&f.local()).contains(&"squares/x_1.parquet".to_string()));
    // A condition on an argument that is not a key is refused.
    let error = f
        .nuthatch
        .sql(
            "CREATE CACHED FUNCTION bad(n BIGINT, label VARCHAR) WITH (cache_args = (n), \
             cache_disable_if = (label = 'x')) AS SELECT $n AS n",
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("'label', which is not one of the cache_args"),
        "{error}"
    );

    let error = f
        .error("SELECT count(*) FROM squares(3, fail_if_no_cache => true)")
        .await;
    assert!(
        error.contains("fail_if_no_cache") && error.contains("fail_if_no_cache => false"),
        "{error}"
    );
    f.nuthatch
        .sql(
            "CREATE CACHED FUNCTION strict_squares(n BIGINT) WITH (cache_args = (n), \
             fail_if_no_cache = true) AS SELECT value * value AS sq FROM generate_series(1, $n)",
        )
        .await
        .unwrap();
    let error = f.error("SELECT count(*) FROM strict_squares(3)").await;
    assert!(error.contains("does not compute"), "{error}");
    assert_eq!(
        f.int("SELECT count(*) FROM strict_squares(3, fail_if_no_cache => false)")
            .await,
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_backend_stores_a_copy_of_what_was_read() {
    let f = Fixture::new();
    f.int(&day_with("")).await;
    f.reports();
    assert_eq!(
        f.int(&day_with(
            "backend => 'parquet', storage_backend => 'arrow'"
        ))
        .await,
        48
    );
    let report = f.report();
    assert_eq!(
        (report.outcome, report.copied_to.as_deref()),
        (Outcome::Hit, Some("root"))
    );
    assert!(f.files().contains(&"series/1.0_north.arrow".to_string()));
    assert!(
        f.files()
            .contains(&"nuthatch_metadata.nut/series/1.0_north/arrow.parquet".to_string())
    );
    // Copied once: the next such read finds the arrow entry there.
    f.int(&day_with(
        "backend => 'parquet', storage_backend => 'arrow'",
    ))
    .await;
    assert_eq!(f.report().copied_to, None);
    assert_eq!(f.int(&day_with("backend => 'arrow'")).await, 48);
    assert_eq!(f.report().backend, "arrow");
    assert_eq!(f.computes(), 1);
}

async fn define_nested(f: &Fixture) {
    for sql in [
        "CREATE CACHED FUNCTION leaf(n BIGINT) WITH (cache_args = (n)) \
         AS SELECT time, value FROM series(NULL, NULL, scale => $n)",
        "CREATE CACHED FUNCTION mid(n BIGINT) WITH (cache_args = (n)) \
         AS SELECT time, value FROM leaf($n)",
        "CREATE CACHED FUNCTION top(n BIGINT) WITH (cache_args = (n)) \
         AS SELECT count(*) AS rows FROM mid($n)",
    ] {
        f.nuthatch.sql(sql).await.unwrap();
    }
}

fn by_function(f: &Fixture) -> Vec<(String, Outcome)> {
    let mut seen: Vec<(String, Outcome)> = f
        .reports()
        .into_iter()
        .map(|r| (r.function, r.outcome))
        .collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_calls_inherit_recompute_mode_and_retry_as_in_nuthatch() {
    use Outcome::*;
    let f = Fixture::new();
    define_nested(&f).await;
    f.int("SELECT * FROM top(2)").await;
    f.reports();
    let run = |options: &str| format!("SELECT * FROM top(2, cache_mode => 'overwrite', {options})");
    let named = |list: &[(&str, Outcome)]| -> Vec<(String, Outcome)> {
        list.iter().map(|(n, o)| (n.to_string(), *o)).collect()
    };
    // true: only the top-level call.
    f.int(&run("recompute => true")).await;
    assert_eq!(by_function(&f), named(&[("mid", Hit), ("top", Computed)]));
    // A name reaches that function if it runs: mid is read from cache, so
    // naming leaf alone does not reach it (Python's rule)...
    f.int(&run("recompute => 'leaf'")).await;
    assert_eq!(by_function(&f), named(&[("mid", Hit), ("top", Computed)]));
    // ...naming the path does.
    f.int(&run("recompute => ['mid', 'leaf']")).await;
    assert_eq!(
        by_function(&f),
        named(&[
            ("leaf", Computed),
            ("mid", Computed),
            ("series", Hit),
            ("top", Computed)
        ])
    );
    f.int(&run("recompute => '_all'")).await;
    assert_eq!(
        by_function(&f),
        named(&[
            ("leaf", Computed),
            ("mid", Computed),
            ("series", Computed),
            ("top", Computed)
        ])
    );
    // The top-level mode wins over the nested calls' own: off stores nothing.
    f.int("SELECT * FROM top(3, cache_mode => 'off')").await;
    assert_eq!(
        by_function(&f),
        named(&[
            ("leaf", ComputedNotStored),
            ("mid", ComputedNotStored),
            ("series", ComputedNotStored),
            ("top", ComputedNotStored)
        ])
    );
    assert!(!f.files().iter().any(|p| p.contains("/3.parquet")));
    // A memoize list reaches the named nested calls that run.
    let memo_mid =
        "SELECT * FROM top(2, recompute => true, cache_mode => 'overwrite', memoize => ['mid'])";
    f.int(memo_mid).await;
    f.reports();
    f.int(memo_mid).await;
    let tiers: Vec<(String, Option<String>)> = f
        .reports()
        .into_iter()
        .map(|r| (r.function, r.tier))
        .collect();
    assert!(
        tiers.contains(&("mid".to_string(), Some("memory".to_string()))),
        "{tiers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_settings_are_defaults_for_calls() {
    let f = Fixture::new();
    f.query("SET nuthatch.cache_mode = 'local'").await.unwrap();
    f.int(&day_with("")).await;
    assert!(data_files(&f.root()).is_empty());
    assert_eq!(data_files(&f.local()), vec![LOCAL_DATA.to_string()]);
    f.query("SET nuthatch.memoize = true").await.unwrap();
    f.int(&day_with("")).await;
    f.int(&day_with("")).await;
    let tiers: Vec<Option<String>> = f.reports().into_iter().map(|r| r.tier).collect();
    assert_eq!(tiers.last().unwrap().as_deref(), Some("memory"));
    let error = f
        .query("SET nuthatch.cache_mode = 'sometimes'")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("local_sync"), "{error}");
}

/// An engine whose root is `root` and whose mirrors are `mirrors`.
pub(crate) fn with_mirrors(root: &std::path::Path, mirrors: &[(&str, String)]) -> Config {
    let mut config = Config::with_root(root.display().to_string());
    config.mirrors = mirrors
        .iter()
        .map(|(name, at)| (name.to_string(), TierConfig::new(at.clone())))
        .collect();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_are_read_after_root_in_order_and_never_written() {
    // Two team stores, filled by their own engines.
    let team_a = Fixture::new();
    team_a.int(&day_with("scale => 2.0")).await;
    team_a.int(&day_with("station => 'south'")).await;
    let team_b = Fixture::new();
    team_b.int(&day_with("scale => 2.0")).await;
    team_b.int(&day_with("station => 'east'")).await;
    let (a, b) = (team_a.root(), team_b.root());
    let before = (files_under(&a), files_under(&b));
    let stamp = |dir: &std::path::Path| -> Vec<std::time::SystemTime> {
        files_under(dir)
            .iter()
            .map(|p| std::fs::metadata(dir.join(p)).unwrap().modified().unwrap())
            .collect()
    };
    let stamps = (stamp(&a), stamp(&b));
    // Not writable, for a user who is not root (CI runs as root, where the
    // snapshot below is the proof).
    for dir in [&a, &b] {
        set_mode(dir, 0o555);
    }

    let dir = tempfile::tempdir().unwrap();
    let (ma, mb) = (a.display().to_string(), b.display().to_string());
    let f = Fixture::with_config(dir, |root| {
        with_mirrors(root, &[("mirror-a", ma), ("mirror-b", mb)])
    });
    // In both mirrors: the first configured wins.
    assert_eq!(f.int(&day_with("scale => 2.0")).await, 48);
    let report = f.report();
    assert_eq!(
        (report.outcome, report.tier.as_deref()),
        (Outcome::Hit, Some("mirror-a"))
    );
    f.int(&day_with("station => 'east'")).await;
    assert_eq!(f.report().tier.as_deref(), Some("mirror-b"));
    // Found in a mirror, not copied to root (as in Python).
    assert!(data_files(&f.root()).is_empty());
    // A local mode copies it to local, never to the mirror.
    f.int(&day_with("station => 'south', cache_mode => 'local'"))
        .await;
    assert_eq!(f.report().copied_to.as_deref(), Some("local"));
    // A miss is computed into root.
    f.int(&day_with("station => 'west'")).await;
    assert_outcome(&f.report(), Outcome::Computed);
    assert_eq!(data_files(&f.root()), vec!["series/1.0_west.parquet"]);
    // Root comes first: root's null marker hides the mirror's data.
    std::fs::create_dir_all(f.root().join("nuthatch_metadata.nut/series")).unwrap();
    std::fs::write(
        f.root().join("nuthatch_metadata.nut/series/2.0_north.null"),
        b"",
    )
    .unwrap();
    assert_eq!(f.int(&day_with("scale => 2.0")).await, 0);
    assert_eq!(f.report().tier.as_deref(), Some("root"));
    // Retrying a null found on root recomputes into root; mirrors untouched.
    f.int(&day_with("scale => 2.0, retry_null_cache => true"))
        .await;
    assert_outcome(&f.report(), Outcome::Computed);

    for dir in [&a, &b] {
        set_mode(dir, 0o755);
    }
    assert_eq!((files_under(&a), files_under(&b)), before);
    assert_eq!((stamp(&a), stamp(&b)), stamps);
}

fn set_mode(dir: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            if entry.path().is_dir() {
                stack.push(entry.path());
            }
        }
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_mirror_is_skipped_and_corrupt_mirror_metadata_is_an_error() {
    let team = Fixture::new();
    team.int(&day_with("")).await;
    let dir = tempfile::tempdir().unwrap();
    let mirror = team.root().display().to_string();
    let f = Fixture::with_config(dir, |root| {
        let mut config = with_mirrors(root, &[("mirror-down", "s3://nowhere/caches".into())]);
        config.mirrors[0].1 = TierConfig::new("s3://nowhere/caches")
            .with_option("endpoint", "http://127.0.0.1:9")
            .with_option("allow_http", "true")
            .with_option("region", "us-east-1")
            .with_option("access_key_id", "test")
            .with_option("secret_access_key", "test");
        config
            .mirrors
            .push(("mirror".into(), TierConfig::new(mirror)));
        config
    });
    // The unreachable mirror is skipped (with a warning); the next serves.
    f.int(&day_with("cache_mode => 'read_only'")).await;
    assert_eq!(f.report().tier.as_deref(), Some("mirror"));

    std::fs::write(
        team.root()
            .join("nuthatch_metadata.nut/series/1.0_north/parquet.parquet"),
        b"not parquet",
    )
    .unwrap();
    let error = f.error(&day_with("cache_mode => 'read_only'")).await;
    assert!(
        error.contains("is corrupt")
            && error.contains("nuthatch_metadata.nut/series/1.0_north/parquet.parquet"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_values_that_cannot_be_keys_skip_the_local_tier() {
    let f = Fixture::new();
    // '/' cannot be in a key; station is a cache arg, so this is an error
    // on root, but as a non-key argument it only turns memory and local off.
    f.nuthatch
        .sql(
            "CREATE CACHED FUNCTION labelled(n BIGINT, label VARCHAR) WITH (cache_args = (n)) \
             AS SELECT $label AS label, $n AS n",
        )
        .await
        .unwrap();
    let sql = "SELECT count(*) FROM labelled(1, 'a/b', cache_mode => 'local')";
    assert_eq!(f.int(sql).await, 1);
    assert_outcome(&f.report(), Outcome::ComputedNotStored);
    assert!(data_files(&f.local()).is_empty());
}

/// `rust_total(n)`: a Rust body that calls `series` through its context.
fn rust_total() -> CachedFunction {
    let schema = Arc::new(Schema::new(vec![Field::new("rows", DataType::Int64, true)]));
    CachedFunction::builder("rust_total")
        .param("n", ParamType::Int)
        .cache_args(["n"])
        .returns(schema)
        .compute(|ctx, args| async move {
            let n = args.i64("n")?;
            ctx.sql(&format!(
                "SELECT count(*) AS rows FROM series(NULL, NULL, scale => {n})"
            ))
            .await
        })
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_bodies_pass_options_down_like_sql_bodies() {
    use Outcome::*;
    let f = Fixture::new();
    f.nuthatch.register(rust_total()).unwrap();
    f.int("SELECT * FROM rust_total(5)").await;
    f.reports();
    let overwrite = |options: &str| {
        format!("SELECT * FROM rust_total(5, cache_mode => 'overwrite', {options})")
    };
    f.int(&overwrite("recompute => true")).await;
    let seen = by_function(&f);
    assert_eq!(
        seen,
        vec![("rust_total".into(), Computed), ("series".into(), Hit)]
    );
    f.int(&overwrite("recompute => '_all'")).await;
    assert_eq!(
        by_function(&f),
        vec![("rust_total".into(), Computed), ("series".into(), Computed)]
    );
    f.int("SELECT * FROM rust_total(6, cache_mode => 'off')")
        .await;
    assert_eq!(
        by_function(&f),
        vec![
            ("rust_total".into(), ComputedNotStored),
            ("series".into(), ComputedNotStored)
        ]
    );
    // Unknown session settings are errors that name them.
    let error = f
        .query("SET nuthatch.cache_mood = 'local'")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("cache_mood"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_section_puts_that_backends_data_on_its_own_store() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = dir.path().join("arrow-store");
    let moved = elsewhere.display().to_string();
    let f = Fixture::with_config(tempfile::tempdir().unwrap(), |root| {
        let mut config = Config::with_root(root.display().to_string());
        config.set("root.arrow.filesystem", &moved).unwrap();
        config
    });
    assert_eq!(f.int(&day_with("backend => 'arrow'")).await, 48);
    assert_eq!(f.int(&day_with("backend => 'parquet'")).await, 48);
    // Arrow data went to its store, its metadata stayed with root's.
    assert_eq!(files_under(&elsewhere), vec!["series/1.0_north.arrow"]);
    assert_eq!(data_files(&f.root()), vec![ROOT_DATA]);
    assert!(
        f.files()
            .contains(&"nuthatch_metadata.nut/series/1.0_north/arrow.parquet".to_string())
    );
    f.reports();
    assert_eq!(f.int(&day_with("backend => 'arrow'")).await, 48);
    assert_outcome(&f.report(), Outcome::Hit);
}

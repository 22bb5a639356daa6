//! The catalog in SQL: the rows of `nuthatch.caches`, `functions`, `tiers`
//! and `calls` after known writes, what a listing reads, and what `DELETE`
//! removes and leaves.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use nuthatch::{Config, Outcome, TierConfig};

use crate::support::{Fixture, files_under};
use crate::tiers::{day_with, maybe, with_mirrors};

/// The rows of a query, each column as text (`NULL` for nulls).
async fn rows(f: &Fixture, sql: &str) -> Vec<Vec<String>> {
    let batches = f.query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    text_rows(&batches)
}

pub(crate) fn text_rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for i in 0..batch.num_rows() {
            out.push(formatters.iter().map(|f| f.value(i).to_string()).collect());
        }
    }
    out
}

fn listing(f: &Fixture) -> (u64, u64, u64, u64) {
    f.engine.catalog().listing_stats().snapshot()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_has_a_row_per_entry_per_tier_with_what_was_recorded_at_write_time() {
    let f = Fixture::new();
    f.nuthatch
        .register(maybe(Arc::default()))
        .expect("register maybe");
    f.int(&day_with("")).await;
    f.int(&day_with("station => 'south', cache_mode => 'local'"))
        .await;
    f.int("SELECT count(*) FROM maybe(-1)").await;
    f.reports();

    let found = rows(
        &f,
        "SELECT tier, role, function, key, namespace, version, backend, is_null, state, rows, \
         time_column, time_min, time_max, user IS NOT NULL, problem \
         FROM nuthatch.caches ORDER BY tier, key",
    )
    .await;
    let row = |cells: &[&str]| cells.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let whole = |station: &str| {
        row(&[
            "root",
            "root",
            "series",
            &format!("series/1.0_{station}"),
            "NULL",
            "1",
            "parquet",
            "false",
            "confirmed",
            "1440",
            "time",
            "2020-01-01T00:00:00",
            "2020-02-29T23:00:00",
            "true",
            "NULL",
        ])
    };
    let expected = vec![
        // The local copy: keyed by every argument, clipped to the window.
        row(&[
            "local",
            "local",
            "series",
            "series/2020-01-02_1.0_2020-01-01_south",
            "NULL",
            "1",
            "parquet",
            "false",
            "confirmed",
            "48",
            "time",
            "2020-01-01T00:00:00",
            "2020-01-02T23:00:00",
            "true",
            "NULL",
        ]),
        // A null marker has no metadata row.
        row(&[
            "root",
            "root",
            "maybe",
            "maybe/-1",
            "NULL",
            "NULL",
            "NULL",
            "true",
            "confirmed",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
            "false",
            "NULL",
        ]),
        // Whole results on root: all 60 days.
        whole("north"),
    ];
    assert_eq!(found, expected);

    // The recorded size is the stored file's; the uri names it.
    let sized = rows(
        &f,
        "SELECT bytes, uri FROM nuthatch.caches WHERE key = 'series/1.0_north'",
    )
    .await;
    let on_disk = std::fs::metadata(f.root().join("series/1.0_north.parquet"))
        .unwrap()
        .len();
    assert_eq!(sized[0][0], on_disk.to_string());
    assert!(
        sized[0][1].ends_with("/series/1.0_north.parquet"),
        "{sized:?}"
    );
    assert_eq!(f.int("SELECT count(*) FROM nuthatch.caches").await, 3);
}

/// A fixture with four entries: three stations' days and `maybe(3)`.
async fn four_entries() -> Fixture {
    let f = Fixture::new();
    f.nuthatch
        .register(maybe(Arc::default()))
        .expect("register maybe");
    for station in ["north", "south", "east"] {
        f.int(&day_with(&format!("station => '{station}'"))).await;
    }
    f.int("SELECT count(*) FROM maybe(3)").await;
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_on_function_and_tier_narrow_the_listing_and_counting_reads_no_metadata() {
    let f = four_entries().await;

    // count(*) needs no column of the metadata rows: LISTs only (of the
    // folders, on local tiers: see the next test).
    let before = listing(&f);
    assert_eq!(f.int("SELECT count(*) FROM nuthatch.caches").await, 4);
    let after = listing(&f);
    assert_eq!(after.2 - before.2, 0, "metadata rows read for count(*)");

    // One function on one tier: one LIST of its folder, its rows only.
    let before = listing(&f);
    let keys = rows(
        &f,
        "SELECT key, version FROM nuthatch.caches WHERE function = 'maybe' AND tier = 'root'",
    )
    .await;
    assert_eq!(keys, vec![vec!["maybe/3".to_string(), "NULL".into()]]);
    let after = listing(&f);
    assert_eq!((after.0 - before.0, after.1 - before.1), (1, 1));
    assert_eq!(after.2 + after.3 - before.2 - before.3, 1);

    // A second listing of an unchanged store decodes nothing again.
    rows(&f, "SELECT key, rows FROM nuthatch.caches").await;
    let before = listing(&f);
    rows(&f, "SELECT key, rows FROM nuthatch.caches").await;
    let after = listing(&f);
    assert_eq!((after.2 - before.2, after.3 - before.3), (0, 4));
}

/// Sets the time of every folder under `dir` an hour back, as if the
/// entries had been written long before.
fn age_folders(dir: &std::path::Path) {
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.file_type().unwrap().is_dir() {
            age_folders(&entry.path());
        }
    }
    std::fs::File::open(dir)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counting_lists_again_only_the_folders_that_changed() {
    let f = four_entries().await;
    let metastore = f.root().join("nuthatch_metadata.nut");
    for tier in [f.root(), f.local()] {
        // A metastore folder that does not exist yet is looked for on
        // every listing: give both tiers one.
        std::fs::create_dir_all(tier.join("nuthatch_metadata.nut")).unwrap();
        age_folders(&tier.join("nuthatch_metadata.nut"));
    }
    let count = "SELECT count(*) FROM nuthatch.caches";

    // The first count lists every folder; the second, none: their times
    // have not moved.
    let before = listing(&f);
    assert_eq!(f.int(count).await, 4);
    let first = listing(&f).0 - before.0;
    assert!(first >= 6, "each tier's metastore and its folders: {first}");
    let before = listing(&f);
    assert_eq!(f.int(count).await, 4);
    assert_eq!(listing(&f).0 - before.0, 0, "no folder changed");

    // What another process writes is counted: a null marker in a
    // function's folder, and an entry in a new folder inside an entry's;
    // a file that is neither, beside them, is not.
    std::fs::write(metastore.join("maybe/7.null"), b"").unwrap();
    std::fs::write(metastore.join("maybe/notes.txt"), b"not an entry").unwrap();
    let namespaced = metastore.join("maybe/3/elsewhere");
    std::fs::create_dir(&namespaced).unwrap();
    std::fs::write(namespaced.join("parquet.parquet"), b"a row").unwrap();
    let before = listing(&f);
    assert_eq!(f.int(count).await, 6);
    let lists = listing(&f).0 - before.0;
    assert!(
        lists <= 3,
        "maybe's folder, maybe/3 and the new one: {lists}"
    );
    let nulls = rows(&f, "SELECT function FROM nuthatch.caches WHERE is_null").await;
    assert_eq!(nulls, vec![vec!["maybe".to_string()]]);
    // The count, taken without building rows, agrees with the rows listed.
    let listed = rows(&f, "SELECT tier, function FROM nuthatch.caches").await;
    assert_eq!(listed.len(), 6, "{listed:?}");
    // Counting again lists nothing, and still counts what the listing
    // above found (the index keeps each folder's count).
    assert_eq!(f.int(count).await, 6);
    let per_function = "SELECT count(*) FROM nuthatch.caches WHERE function = 'maybe'";
    let maybe = (listed.iter()).filter(|r| r[1] == "maybe").count() as i64;
    assert_eq!(f.int(per_function).await, maybe);

    // A folder's time moves in ticks of its clock, so a change in the tick
    // of the last listing keeps the time that listing saw: it is seen all
    // the same, since a folder that recent is listed again until it
    // settles.
    let folder = metastore.join("maybe");
    let seen = std::fs::metadata(&folder).unwrap().modified().unwrap();
    std::fs::write(folder.join("9.null"), b"").unwrap();
    std::fs::File::open(&folder)
        .unwrap()
        .set_modified(seen)
        .unwrap();
    assert_eq!(f.int(count).await, 7);

    // And removals.
    std::fs::remove_dir_all(&namespaced).unwrap();
    assert_eq!(f.int(count).await, 6);
    for null in ["7.null", "9.null"] {
        std::fs::remove_file(folder.join(null)).unwrap();
    }
    assert_eq!(f.int(count).await, 4);
    let per_tier = rows(&f, "SELECT name, entries FROM nuthatch.tiers ORDER BY name").await;
    let entries: i64 = per_tier.iter().map(|r| r[1].parse::<i64>().unwrap()).sum();
    assert_eq!(entries, 4, "{per_tier:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_lists_definitions_with_their_body_and_file() {
    let f = Fixture::new();
    let file = f.dir.path().join("defs.sql");
    std::fs::write(
        &file,
        "CREATE CACHED FUNCTION doubled(n BIGINT, label VARCHAR DEFAULT 'x') \
         WITH (cache_args = (n), version = '0.2', namespace = 'team', memoize = true) \
         AS SELECT $n * 2 AS twice",
    )
    .unwrap();
    f.nuthatch.load_definitions(&file).await.unwrap();
    let found = rows(
        &f,
        "SELECT name, parameters, cache_args, version, namespace, timeseries, backend, memoize, \
         returns, language, body, source FROM nuthatch.functions ORDER BY name",
    )
    .await;
    assert_eq!(
        found[0][..10],
        [
            "doubled",
            "n BIGINT, label VARCHAR DEFAULT 'x'",
            "[n]",
            "0.2",
            "team",
            "NULL",
            "NULL",
            "true",
            "twice Int64",
            "sql"
        ]
    );
    assert!(found[0][10].contains("$n * 2"), "{:?}", found[0]);
    assert_eq!(found[0][11], file.display().to_string());
    assert_eq!(
        found[1],
        [
            "series",
            "start_time TIMESTAMP, end_time TIMESTAMP, station VARCHAR DEFAULT 'north', \
             scale DOUBLE DEFAULT 1.0",
            "[station, scale]",
            "1",
            "NULL",
            "time",
            "NULL",
            "false",
            "time Timestamp(ns), station Utf8, value Float64",
            "rust",
            "NULL",
            "NULL"
        ]
    );
}

/// Every option a definition takes has a column, and SQL values keep their
/// types on the way: a quoted text holding `=`, `;` and `,` stays one value,
/// an interval is a length of time, and lists stay lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_shows_every_option_as_the_definition_gave_it() {
    let f = Fixture::new();
    f.query(
        "CREATE CACHED FUNCTION grid(start_time TIMESTAMP, end_time TIMESTAMP, days BIGINT) \
         WITH (cache_args = (days), version = 'v=2; beta, rc', timeseries = 'time', \
               settle = INTERVAL '36 hours', exact = true, upsert_keys = (time, lat), \
               dimensions = (time, lat), chunking = (time = 365, lat = 10), \
               chunk_by_arg = ((days = 7, time = 52)), cache_disable_if = (days IN (1, 2)), \
               storage_backend = 'arrow') \
         AS SELECT CAST($start_time AS TIMESTAMP) AS time, 1.5 AS lat, $days AS v",
    )
    .await
    .unwrap();
    let found = rows(
        &f,
        "SELECT cache_args, version, settle, exact, upsert_keys, dimensions, chunking, \
         chunk_by_arg, cache_disable_if, storage_backend, coverage \
         FROM nuthatch.functions WHERE name = 'grid'",
    )
    .await;
    let expected = [
        "[days]",
        "v=2; beta, rc",
        "36 hours",
        "true",
        "time, lat",
        "time, lat",
        "lat = 10, time = 365",
        "(days = 7, time = 52)",
        "days IN (1, 2)",
        "arrow",
        "window",
    ];
    assert_eq!(found, [expected.map(str::to_string).to_vec()]);
    // An option only a call takes is named as such.
    let err = f
        .error("CREATE CACHED FUNCTION r() WITH (recompute = true) AS SELECT 1 AS x")
        .await;
    assert!(err.contains("recompute is given per call"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiers_shows_reachability_and_counts_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::with_config(dir, |root| {
        let mut config = Config::with_root(root.display().to_string());
        config.mirrors.push((
            "mirror-down".into(),
            TierConfig::new("s3://nowhere/caches")
                .with_option("endpoint", "http://127.0.0.1:9")
                .with_option("allow_http", "true")
                .with_option("region", "us-east-1")
                .with_option("access_key_id", "AKIASECRETID")
                .with_option("secret_access_key", "hunter2"),
        ));
        config
    });
    f.int(&day_with("")).await;
    f.int(&day_with("station => 'south', memoize => true"))
        .await;
    let found = rows(
        &f,
        "SELECT name, role, url, read_only, reachable, entries, null_markers, problem IS NULL \
         FROM nuthatch.tiers",
    )
    .await;
    let local = f.local().display().to_string();
    let root = f.root().display().to_string();
    assert_eq!(
        found,
        vec![
            vec!["local", "local", &local, "false", "true", "0", "0", "true"],
            vec!["root", "root", &root, "false", "true", "2", "0", "true"],
            vec![
                "mirror-down",
                "mirror",
                "s3://nowhere/caches",
                "true",
                "false",
                "NULL",
                "NULL",
                "false"
            ],
            vec![
                "memory", "memory", "NULL", "false", "true", "1", "0", "true"
            ],
        ]
    );
    let everything = text_rows(&f.query("SELECT * FROM nuthatch.tiers").await.unwrap());
    let shown = format!("{everything:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("AKIASECRETID"),
        "{shown}"
    );
    // The unreachable mirror is skipped in listings, with the rest intact.
    assert_eq!(f.int("SELECT count(*) FROM nuthatch.caches").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_the_sessions_own() {
    let f = Fixture::new();
    f.int(&day_with("")).await;
    f.int(&day_with("")).await;
    let found = rows(
        &f,
        "SELECT function, key, outcome, tier, backend, rows, row_groups_read <= row_groups_total, \
         elapsed_ms >= 0 FROM nuthatch.calls",
    )
    .await;
    assert_eq!(
        found,
        vec![
            vec![
                "series",
                "series/1.0_north",
                "computed",
                "root",
                "parquet",
                "48",
                // A miss serves the rows it stores: it reads no row group.
                "NULL",
                "true"
            ],
            vec![
                "series",
                "series/1.0_north",
                "hit",
                "root",
                "parquet",
                "48",
                "true",
                "true"
            ],
        ]
    );
    // Another session of the same engine has made no calls.
    let other = f.engine.session();
    let batches = other
        .sql("SELECT count(*) FROM nuthatch.calls")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(text_rows(&batches), vec![vec!["0".to_string()]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_exactly_what_its_filter_selects() {
    let f = Fixture::new();
    for station in ["north", "south", "east"] {
        f.int(&day_with(&format!("station => '{station}'"))).await;
    }
    f.int(&day_with("station => 'south', cache_mode => 'local'"))
        .await;
    f.reports();
    let before = files_under(&f.root());

    // EXPLAIN names what would go and removes nothing.
    let plan = text_rows(
        &f.query("EXPLAIN DELETE FROM nuthatch.caches WHERE key = 'series/1.0_south'")
            .await
            .unwrap(),
    );
    let plan = format!("{plan:?}");
    assert!(
        plan.contains("DeleteEntriesExec: entries=1 [root series/1.0_south parquet]"),
        "{plan}"
    );
    assert_eq!(files_under(&f.root()), before);

    // One root entry: its data and metadata go, everything else stays.
    assert_eq!(
        f.int("DELETE FROM nuthatch.caches WHERE tier = 'root' AND key = 'series/1.0_south'")
            .await,
        1
    );
    let gone: Vec<String> = before
        .iter()
        .filter(|p| !files_under(&f.root()).contains(p))
        .cloned()
        .collect();
    assert_eq!(
        gone,
        vec![
            "nuthatch_metadata.nut/series/1.0_south/parquet.parquet",
            "series/1.0_south.parquet"
        ]
    );
    assert_eq!(files_under(&f.local()).len(), 3, "the local copy stays");
    // The next call is a miss, computed again.
    f.int(&day_with("station => 'south'")).await;
    assert_eq!(f.report().outcome, Outcome::Computed);

    // Several at once, by any condition on the columns. (Deleting a root
    // entry also forgot what was memoized of its function: memory is keyed
    // by every argument, so it cannot tell which results came from it.)
    f.int(&day_with("station => 'east', memoize => true")).await;
    assert_eq!(
        f.int("SELECT count(*) FROM nuthatch.caches WHERE tier = 'memory'")
            .await,
        1
    );
    let deleted = f
        .int(
            "DELETE FROM nuthatch.caches WHERE version = '1' \
             AND last_modified < now() + interval '1 minute' AND tier IN ('local', 'memory')",
        )
        .await;
    assert_eq!(deleted, 2, "the local copy and the memoized result");
    assert!(
        files_under(&f.local())
            .iter()
            .all(|p| p.ends_with("exists.nut"))
    );
    f.reports();
    f.int(&day_with("station => 'east', memoize => true")).await;
    assert_eq!(
        f.report().tier.as_deref(),
        Some("root"),
        "no longer memoized"
    );

    // A filter that selects nothing deletes nothing.
    assert_eq!(
        f.int("DELETE FROM nuthatch.caches WHERE function = 'nothing'")
            .await,
        0
    );
    assert_eq!(
        f.int("SELECT count(*) FROM nuthatch.caches WHERE tier = 'root'")
            .await,
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_leaves_mirrors_alone_and_refuses_what_it_cannot_filter() {
    let team = Fixture::new();
    team.int(&day_with("")).await;
    team.int(&day_with("station => 'west'")).await;
    let mirror_files = files_under(&team.root());
    let dir = tempfile::tempdir().unwrap();
    let mirror = team.root().display().to_string();
    let f = Fixture::with_config(dir, |root| with_mirrors(root, &[("mirror", mirror)]));
    f.int(&day_with("station => 'south'")).await;

    assert_eq!(
        f.int("DELETE FROM nuthatch.caches WHERE function = 'series'")
            .await,
        1,
        "root's entry only"
    );
    assert_eq!(files_under(&team.root()), mirror_files);
    let error = f
        .error("DELETE FROM nuthatch.caches WHERE tier = 'mirror'")
        .await;
    assert!(
        error.contains("the DELETE selects 2 entries, all on mirrors")
            && error.contains("tier = 'root'"),
        "{error}"
    );
    let error = f
        .error(
            "DELETE FROM nuthatch.caches WHERE key IN \
             (SELECT key FROM nuthatch.caches WHERE tier = 'mirror')",
        )
        .await;
    assert!(
        error.contains("takes a WHERE on its own columns only")
            && error.contains("WHERE key IN ('f/1', 'f/2')"),
        "{error}"
    );
    assert_eq!(files_under(&team.root()), mirror_files);
    assert_eq!(f.int("SELECT count(*) FROM nuthatch.caches").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_metadata_is_listed_as_such_and_can_be_deleted() {
    let f = Fixture::new();
    f.int(&day_with("")).await;
    f.int(&day_with("station => 'south'")).await;
    let bad = f
        .root()
        .join("nuthatch_metadata.nut/series/1.0_south/parquet.parquet");
    std::fs::write(&bad, b"not parquet").unwrap();
    let found = rows(
        &f,
        "SELECT key, state, problem LIKE 'unreadable metadata nuthatch_metadata.nut/series/1.0_south/parquet.parquet: %' \
         FROM nuthatch.caches ORDER BY key",
    )
    .await;
    assert_eq!(
        found,
        vec![
            vec!["series/1.0_north", "confirmed", "NULL"],
            vec!["series/1.0_south", "corrupt", "true"],
        ]
    );
    assert_eq!(
        f.int("DELETE FROM nuthatch.caches WHERE state = 'corrupt'")
            .await,
        1
    );
    assert!(!bad.exists() && !f.root().join("series/1.0_south.parquet").exists());
    f.reports();
    f.int(&day_with("station => 'south'")).await;
    assert_eq!(f.report().outcome, Outcome::Computed);
}

//! Queries and cached-function bodies on a cluster of in-process workers
//! (datafusion-distributed's stages, encoded and sent over gRPC through
//! in-memory pipes): the same rows as one process, and plans that show
//! the stages.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use nuthatch::cluster::InMemoryCluster;
use nuthatch::{Config, Engine, Outcome, TierConfig};
use parquet::arrow::ArrowWriter;

use crate::support::{Fixture, analyzed, assert_outcome};
use crate::system::text_rows;

/// Writes `files` Parquet files of `rows` rows each under `dir`: an `id`,
/// a group `grp` (of 7) and a value `v`.
fn dataset(dir: &std::path::Path, files: usize, rows: i64) {
    std::fs::create_dir_all(dir).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("grp", DataType::Utf8, false),
        Field::new("v", DataType::Int64, false),
    ]));
    for file in 0..files as i64 {
        let ids: Vec<i64> = (file * rows..(file + 1) * rows).collect();
        let groups: Vec<String> = ids.iter().map(|i| format!("g{}", i % 7)).collect();
        let values: Vec<i64> = ids.iter().map(|i| (i * 7919) % 1000).collect();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(groups)),
                Arc::new(Int64Array::from(values)),
            ],
        )
        .unwrap();
        let path = dir.join(format!("part-{file}.parquet"));
        let mut writer =
            ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema.clone(), None)
                .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }
}

/// A fixture whose engine coordinates `workers` in-process workers (none:
/// one process), with the dataset at `obs` registered as table `obs`.
async fn fixture(workers: usize, obs: &std::path::Path) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::with_root(dir.path().join("root").display().to_string());
    config.local = TierConfig::new(dir.path().join("local").display().to_string());
    let engine = Engine::new(&config).unwrap();
    if workers > 0 {
        InMemoryCluster::attach(&engine, workers).unwrap();
    }
    let f = Fixture::with_engine(dir, engine);
    if workers > 0 {
        // Small files: a task per file rather than per 16 MiB, so that
        // this little data is spread over the workers.
        f.query("SET distributed.file_scan_config_bytes_per_partition = 1")
            .await
            .unwrap();
    }
    f.query(&format!(
        "CREATE EXTERNAL TABLE obs STORED AS PARQUET LOCATION '{}/'",
        obs.display()
    ))
    .await
    .unwrap();
    f.query(
        "CREATE CACHED FUNCTION totals(min_v BIGINT) WITH (cache_args = (min_v)) AS \
         SELECT o.grp, count(*) AS n, sum(o.v) AS total, max(p.v) AS peer_max \
         FROM obs o JOIN obs p ON o.id = p.id + 1 \
         WHERE o.v >= $min_v GROUP BY o.grp",
    )
    .await
    .unwrap();
    f.query(
        "CREATE CACHED FUNCTION picks(min_v BIGINT) WITH (cache_args = (min_v)) AS \
         SELECT id, grp, v FROM obs WHERE v >= $min_v",
    )
    .await
    .unwrap();
    f
}

/// The physical plan `EXPLAIN` shows for `sql`.
async fn explained(f: &Fixture, sql: &str) -> String {
    let rows = text_rows(&f.query(&format!("EXPLAIN {sql}")).await.unwrap());
    rows.iter()
        .filter(|row| row[0] == "physical_plan")
        .map(|row| row[1].clone())
        .collect()
}

const QUERY: &str = "SELECT o.grp, count(*) AS n, sum(o.v) AS total \
     FROM obs o JOIN obs p ON o.id = p.id + 1 WHERE p.v > 500 GROUP BY o.grp ORDER BY o.grp";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_and_a_body_give_the_same_rows_on_the_cluster_as_alone() {
    let data = tempfile::tempdir().unwrap();
    dataset(&data.path().join("obs"), 6, 20_000);
    let alone = fixture(0, &data.path().join("obs")).await;
    let cluster = fixture(3, &data.path().join("obs")).await;

    // A join and an aggregate over a Parquet dataset: stages on the workers.
    let expected = text_rows(&alone.query(QUERY).await.unwrap());
    assert_eq!(expected.len(), 7);
    assert_eq!(text_rows(&cluster.query(QUERY).await.unwrap()), expected);
    let plan = explained(&cluster, QUERY).await;
    assert!(plan.contains("DistributedExec"), "{plan}");
    assert!(plan.contains("NetworkShuffleExec"), "{plan}");
    assert!(!explained(&alone, QUERY).await.contains("DistributedExec"));

    // A cached function's body runs on the workers; the call resolves,
    // stores and serves here, and a hit reads what was stored.
    let call = "SELECT * FROM totals(100) ORDER BY grp";
    let expected = text_rows(&alone.query(call).await.unwrap());
    alone.reports();
    let plan = analyzed(&cluster, call).await;
    assert_outcome(&cluster.report(), Outcome::Computed);
    assert!(
        plan.contains("DistributedExec"),
        "the body ran distributed:\n{plan}"
    );
    assert_eq!(text_rows(&cluster.query(call).await.unwrap()), expected);
    assert_outcome(&cluster.report(), Outcome::Hit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_entry_is_read_on_the_workers_and_the_call_reports_what_it_served() {
    let data = tempfile::tempdir().unwrap();
    dataset(&data.path().join("obs"), 4, 20_000);
    let alone = fixture(0, &data.path().join("obs")).await;
    let cluster = fixture(2, &data.path().join("obs")).await;
    let call = "SELECT grp, count(*) AS n, sum(v) AS total FROM picks(900) \
                WHERE grp <> 'g3' GROUP BY grp ORDER BY grp";
    let expected = text_rows(&alone.query(call).await.unwrap());
    assert_eq!(expected.len(), 6);
    alone.reports();
    assert_eq!(text_rows(&alone.query(call).await.unwrap()), expected);
    let alone_hit = alone.report();
    assert_outcome(&alone_hit, Outcome::Hit);

    // The miss computes and stores; the hit is resolved here and its
    // entry's files are scanned by the workers, the filter pushed down.
    assert_eq!(text_rows(&cluster.query(call).await.unwrap()), expected);
    assert_outcome(&cluster.report(), Outcome::Computed);
    let plan = analyzed(&cluster, call).await;
    assert!(plan.contains("DistributedExec"), "{plan}");
    assert!(plan.contains("ServedCallExec: function=picks"), "{plan}");
    let hit = cluster.report();
    assert_outcome(&hit, Outcome::Hit);
    assert_eq!(
        hit.rows, alone_hit.rows,
        "rows counted on the workers: {hit}"
    );
    // The filter prunes no row group of the entry the workers wrote: what
    // they read, as counted there, is all of it.
    assert!(
        matches!(hit.row_groups_read, Some((read, total)) if read == total && total > 0),
        "{hit}"
    );
    assert_eq!(text_rows(&cluster.query(call).await.unwrap()), expected);
    assert_eq!(cluster.report().rows, alone_hit.rows);

    // A call served from memory stays here: nothing of it travels.
    let memoized = "SELECT count(*) FROM picks(900, memoize => true)";
    let counted = text_rows(&cluster.query(memoized).await.unwrap());
    assert_eq!(counted, text_rows(&alone.query(memoized).await.unwrap()));
    let plan = analyzed(&cluster, memoized).await;
    assert!(!plan.contains("ServedCallExec"), "{plan}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_is_written_by_the_workers_as_parts_of_one_entry() {
    let data = tempfile::tempdir().unwrap();
    dataset(&data.path().join("obs"), 4, 20_000);
    let alone = fixture(0, &data.path().join("obs")).await;
    let cluster = fixture(2, &data.path().join("obs")).await;
    let call = "SELECT grp, count(*) AS n, sum(v) AS total, min(id) AS first \
                FROM picks(500) GROUP BY grp ORDER BY grp";
    let expected = text_rows(&alone.query(call).await.unwrap());
    assert_eq!(expected.len(), 7);

    // Each task of the body's scan writes its rows where it runs; one
    // record lists the parts. The rows are the ones one process stores.
    assert_eq!(text_rows(&cluster.query(call).await.unwrap()), expected);
    let miss = cluster.report();
    assert_outcome(&miss, Outcome::Computed);
    let listed = text_rows(
        &cluster
            .query("SELECT parts, rows FROM nuthatch.caches WHERE function = 'picks'")
            .await
            .unwrap(),
    );
    assert_eq!(listed.len(), 1, "{listed:?}");
    let parts: i64 = listed[0][0].parse().unwrap();
    assert!(parts > 1, "written as {parts} part(s)");
    let stored: i64 = expected
        .iter()
        .map(|row| row[1].parse::<i64>().unwrap())
        .sum();
    assert_eq!(listed[0][1], stored.to_string());
    // Read back whole, on the workers.
    assert_eq!(text_rows(&cluster.query(call).await.unwrap()), expected);
    assert_outcome(&cluster.report(), Outcome::Hit);
    // A recompute replaces every part.
    let again = "SELECT count(*) FROM picks(500, recompute => true, cache_mode => 'overwrite')";
    assert_eq!(
        text_rows(&cluster.query(again).await.unwrap())[0][0],
        stored.to_string()
    );
    let entry = std::fs::read_dir(cluster.dir.path().join("root/picks"))
        .unwrap()
        .map(|item| item.unwrap().path())
        .find(|path| path.extension().is_some_and(|e| e == "parquet"))
        .expect("the entry's directory");
    let files = std::fs::read_dir(entry).unwrap().count();
    let listed = text_rows(
        &cluster
            .query("SELECT parts FROM nuthatch.caches WHERE function = 'picks'")
            .await
            .unwrap(),
    );
    assert_eq!(files.to_string(), listed[0][0], "no part is left unlisted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Python nuthatch: run bash scripts/test"]
async fn python_nuthatch_reads_an_entry_the_workers_wrote() {
    // An hour a row over January and February 2020, in four files.
    let data = tempfile::tempdir().unwrap();
    let hourly = data.path().join("hourly");
    std::fs::create_dir_all(&hourly).unwrap();
    dataset(&data.path().join("obs"), 1, 10);
    let cluster = fixture(2, &data.path().join("obs")).await;
    for quarter in 0..4 {
        let (first, last) = (quarter * 360, quarter * 360 + 359);
        cluster
            .query(&format!(
                "COPY (SELECT CAST(to_timestamp_seconds(1577836800 + value * 3600) AS TIMESTAMP) \
                 AS time, CAST(value AS DOUBLE) AS value \
                 FROM generate_series({first}, {last})) \
                 TO '{}/q{quarter}.parquet' STORED AS PARQUET",
                hourly.display()
            ))
            .await
            .unwrap();
    }
    cluster
        .query(&format!(
            "CREATE EXTERNAL TABLE hourly STORED AS PARQUET LOCATION '{}/'",
            hourly.display()
        ))
        .await
        .unwrap();
    // Python's `series`, here over the dataset: its name, parameters,
    // cache_args, version and time column.
    cluster
        .query(
            "CREATE OR REPLACE CACHED FUNCTION series(start_time TIMESTAMP, end_time TIMESTAMP, \
             station VARCHAR DEFAULT 'north', scale DOUBLE DEFAULT 1.0) \
             WITH (cache_args = (station, scale), version = '1', timeseries = 'time') AS \
             SELECT time, $station AS station, value * $scale AS value FROM hourly",
        )
        .await
        .unwrap();
    let sql =
        "SELECT count(*), sum(value) FROM series(NULL, NULL, station => 'workers', scale => 2)";
    let ours = text_rows(&cluster.query(sql).await.unwrap());
    assert_eq!(ours, [["1440", "2072160.0"]]);
    assert_outcome(&cluster.report(), Outcome::Computed);
    let parts = text_rows(
        &cluster
            .query("SELECT parts FROM nuthatch.caches WHERE function = 'series'")
            .await
            .unwrap(),
    );
    assert!(parts[0][0].parse::<i64>().unwrap() > 1, "{parts:?}");

    let root = cluster.dir.path().join("root").display().to_string();
    let read = crate::python::python(&["read", &root, "workers", "2.0", "", ""]);
    assert_eq!(read.lines().last(), Some("result 1440 2072160.0"), "{read}");
}

/// The README's calls, in the README's order.
const README_CALLS: [&str; 7] = [
    "SELECT count(DISTINCT time), avg(air) FROM agg_and_clip('2013-01-01', '2014-01-01', agg_days => 1)",
    "SELECT count(*), min(air), max(air) FROM agg_and_clip('2013-01-01', '2013-06-01', agg_days => 1)",
    "SELECT count(*), avg(air) FROM agg_and_clip('2013-03-01', '2013-03-31', agg_days => 1) WHERE lat > 40",
    "SELECT count(*), avg(air) FROM agg_and_clip(NULL, NULL, agg_days => 7)",
    "SELECT count(*), avg(air) FROM agg_and_clip('2013-01-01', '2013-01-01', agg_days => 7, \
     recompute => true, cache_mode => 'overwrite')",
    "SELECT count(*), avg(air) FROM agg_and_clip('2013-01-01', '2013-01-01', agg_days => 7, \
     namespace => 'experiment')",
    "SELECT time, lat, lon, air FROM agg_and_clip('2013-07-01', '2013-07-02', agg_days => 7) \
     WHERE lat = 50 ORDER BY time, lon",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_workflow_gives_the_same_rows_and_entries_on_the_cluster() {
    let readme = |workers: usize| async move {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::new(&Config::with_root(
            dir.path().join("root").display().to_string(),
        ))
        .unwrap();
        if workers > 0 {
            InMemoryCluster::attach(&engine, workers).unwrap();
        }
        let f = Fixture::with_engine(dir, engine);
        if workers > 0 {
            f.query("SET distributed.file_scan_config_bytes_per_partition = 1")
                .await
                .unwrap();
        }
        for function in nuthatch::demo::readme_functions().unwrap() {
            f.nuthatch.register(function).unwrap();
        }
        f
    };
    let (alone, cluster) = (readme(0).await, readme(3).await);
    for call in README_CALLS {
        let expected = text_rows(&alone.query(call).await.unwrap());
        assert_eq!(
            text_rows(&cluster.query(call).await.unwrap()),
            expected,
            "{call}"
        );
        let outcomes = |f: &Fixture| -> Vec<(String, Outcome, usize)> {
            f.reports()
                .into_iter()
                .map(|r| (r.key, r.outcome, r.rows))
                .collect()
        };
        assert_eq!(outcomes(&cluster), outcomes(&alone), "{call}");
    }
    // The same entries, with the same rows.
    let entries =
        "SELECT function, key, namespace, rows FROM nuthatch.caches ORDER BY key, namespace";
    let listed = text_rows(&alone.query(entries).await.unwrap());
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert_eq!(text_rows(&cluster.query(entries).await.unwrap()), listed);

    // A session that runs alone plans as one process does.
    let query = README_CALLS[1];
    assert!(analyzed(&cluster, query).await.contains("DistributedExec"));
    cluster.reports();
    cluster
        .query("SET nuthatch.distributed = false")
        .await
        .unwrap();
    assert!(!analyzed(&cluster, query).await.contains("DistributedExec"));
}

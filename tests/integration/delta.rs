//! The Delta backend as users meet it: entries stored as Delta tables whose
//! windows skip files, overwrites that add log versions, reads pinned to
//! the version the metadata records, upserts and window replacement (and
//! the same two on Parquet), a killed write, errors, and Python nuthatch's
//! Delta entries both ways.
//!
//! The Python tests are `#[ignore]`d for a bare `cargo test`; `bash
//! scripts/test` runs them with its venv's nuthatch and deltalake.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Float64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use nuthatch::demo::{LATS, LONS, air_schema, air_temperature};
use nuthatch::{CachedFunction, Config, CoverageKind, MetadataRow, Outcome, ParamType};

use crate::bodies::endless;
use crate::support::{
    Fixture, assert_outcome, example_binary, files_under, observations, revisions, series_schema,
};
use crate::system::text_rows;

fn demo_grid(name: &str, backend: &str, steps: usize) -> CachedFunction {
    CachedFunction::builder(name)
        .param("start_time", ParamType::Timestamp)
        .param("end_time", ParamType::Timestamp)
        .timeseries("time")
        .coverage(CoverageKind::Full)
        .backend(backend)
        .returns(air_schema())
        .compute(move |_ctx, _args| async move { air_temperature(steps) })
        .build()
        .unwrap()
}

/// The Delta log versions of the table at `table`.
fn log_versions(table: &Path) -> Vec<String> {
    let mut versions: Vec<String> = std::fs::read_dir(table.join("_delta_log"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".json")
                .map(str::to_string)
        })
        .collect();
    versions.sort();
    versions
}

fn metadata(root: &Path, key: &str) -> MetadataRow {
    let path = root.join(format!("nuthatch_metadata.nut/{key}/delta.parquet"));
    MetadataRow::decode(std::fs::read(path).unwrap().into()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_skips_the_files_outside_it() {
    let f = Fixture::new();
    let steps = 730;
    f.nuthatch
        .register(demo_grid("grid_delta", "delta", steps))
        .unwrap();
    f.nuthatch
        .register(demo_grid("grid_parquet", "parquet", steps))
        .unwrap();
    let whole = "count(*), sum(air), min(time), max(time), count(DISTINCT lat)";
    let delta = text_rows(
        &f.query(&format!("SELECT {whole} FROM grid_delta(NULL, NULL)"))
            .await
            .unwrap(),
    );
    let report = f.report();
    assert_outcome(&report, Outcome::Computed);
    assert_eq!(report.backend, "delta");
    assert_eq!(report.data_version, Some(0), "{report}");
    let parquet = text_rows(
        &f.query(&format!("SELECT {whole} FROM grid_parquet(NULL, NULL)"))
            .await
            .unwrap(),
    );
    f.reports();
    assert_eq!(delta, parquet);
    assert_eq!(delta[0][0], (steps * LATS * LONS).to_string());

    // A Delta table at the zero-argument key, with the protocol Python's
    // deltalake gives naive timestamps (timestamp_ntz: reader 3, writer 7).
    let table = f.root().join("grid_delta/.delta");
    assert_eq!(log_versions(&table), ["00000000000000000000"]);
    let log = std::fs::read_to_string(table.join("_delta_log/00000000000000000000.json")).unwrap();
    assert!(log.contains(r#""minReaderVersion":3"#), "{log}");
    assert!(log.contains("timestampNtz"), "{log}");
    assert_eq!(
        metadata(&f.root(), "grid_delta").recorded.data_version,
        Some(0)
    );

    // A week reads a few of the files, and the same rows as Parquet.
    let week = "'2013-03-01', '2013-03-07T18:00:00'";
    let sql = |name: &str| format!("SELECT count(*), sum(air) FROM {name}({week}) WHERE lat > 40");
    let from_delta = text_rows(&f.query(&sql("grid_delta")).await.unwrap());
    let report = f.report();
    assert_outcome(&report, Outcome::Hit);
    let (read, total) = report.files_read.expect("a Delta scan reports its files");
    assert!(total >= 4, "the entry is split into files: {report}");
    // File boundaries follow the writer's byte counts, so a week may
    // straddle two files.
    assert!(
        read * 2 <= total,
        "a week of two years reads few files: {report}"
    );
    let from_parquet = text_rows(&f.query(&sql("grid_parquet")).await.unwrap());
    f.reports();
    assert_eq!(from_delta, from_parquet);
    let calls = text_rows(
        &f.query(
            "SELECT files_read, files_total, data_version FROM nuthatch.calls \
             WHERE function = 'grid_delta' ORDER BY finished_at DESC LIMIT 1",
        )
        .await
        .unwrap(),
    );
    assert_eq!(calls[0], [read.to_string(), total.to_string(), "0".into()]);

    // A window starting half a microsecond after a step leaves that step
    // out, though Delta keeps times to the microsecond: the bound is not
    // cut down to one that would keep it.
    let after = "'2013-03-01T00:00:00.0000005', '2013-03-02'";
    let sql = |name: &str| format!("SELECT count(*), min(time) FROM {name}({after})");
    let from_delta = text_rows(&f.query(&sql("grid_delta")).await.unwrap());
    let from_parquet = text_rows(&f.query(&sql("grid_parquet")).await.unwrap());
    f.reports();
    assert_eq!(from_delta, from_parquet);
    assert_eq!(from_delta[0][1], "2013-03-01T06:00:00");
    // And an upper bound half a microsecond past a step keeps that step.
    let below = "WHERE time >= TIMESTAMP '2013-03-01' \
                 AND time < TIMESTAMP '2013-03-01T06:00:00.0000005'";
    let sql = |name: &str| format!("SELECT count(*), max(time) FROM {name}(NULL, NULL) {below}");
    let from_delta = text_rows(&f.query(&sql("grid_delta")).await.unwrap());
    let from_parquet = text_rows(&f.query(&sql("grid_parquet")).await.unwrap());
    f.reports();
    assert_eq!(from_delta, from_parquet);
    assert_eq!(from_delta[0][1], "2013-03-01T06:00:00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overwrite_adds_a_version_and_reads_keep_to_the_recorded_one() {
    let f = Fixture::new();
    f.nuthatch.register(observations("obs", "delta")).unwrap();
    let day = "'2020-01-01', '2020-01-01T23:00:00'";
    f.query(&format!("SELECT * FROM obs({day})")).await.unwrap();
    f.reports();
    let table = f.root().join("obs/.delta");
    let files_before = files_under(&table);

    // recompute + overwrite: a second version; the first version's files
    // stay for readers still on it (retention: 7 days by default).
    f.query(&format!(
        "SELECT * FROM obs({day}, revision => 2, recompute => true, cache_mode => 'overwrite')"
    ))
    .await
    .unwrap();
    let report = f.report();
    assert_outcome(&report, Outcome::Computed);
    assert_eq!(report.data_version, Some(1), "{report}");
    assert_eq!(log_versions(&table).len(), 2);
    for file in &files_before {
        assert!(table.join(file).exists(), "{file} was removed too soon");
    }
    assert_eq!(revisions(&f, "obs").await, ["2:48"]);

    // A commit that no metadata vouches for (a writer killed between its
    // commit and its metadata) is not read: readers open version 1.
    let delta = Arc::clone(f.engine.catalog().backend("delta").unwrap());
    let at = nuthatch::Location {
        version: None,
        ..f.engine
            .catalog()
            .root()
            .data_location(delta.as_ref(), "obs/.delta".into())
    };
    let stray = futures::stream::once(async {
        let batch = RecordBatch::try_new(
            series_schema(),
            vec![
                Arc::new(TimestampNanosecondArray::from(vec![0])),
                Arc::new(StringArray::from(vec!["stray"])),
                Arc::new(Float64Array::from(vec![99.0])),
            ],
        )?;
        Ok(batch)
    });
    let stray = Box::pin(
        datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(series_schema(), stray),
    );
    let written = delta.write(&at, stray, &Default::default()).await.unwrap();
    assert_eq!(written.version, Some(2));
    assert_eq!(revisions(&f, "obs").await, ["2:48"]);
    assert_eq!(metadata(&f.root(), "obs/").recorded.data_version, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_what_old_versions_needed() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::with_config(dir, |root| {
        let mut config = Config::with_root(root.display().to_string());
        config.set("root.delta.retention_hours", "0").unwrap();
        config
    });
    f.nuthatch.register(observations("obs", "delta")).unwrap();
    let day = "'2020-01-01', '2020-01-01T23:00:00'";
    f.query(&format!("SELECT * FROM obs({day})")).await.unwrap();
    let table = f.root().join("obs/.delta");
    let first: Vec<String> = files_under(&table)
        .into_iter()
        .filter(|p| p.ends_with(".parquet"))
        .collect();
    f.query(&format!(
        "SELECT * FROM obs({day}, revision => 2, cache_mode => 'overwrite', recompute => true)"
    ))
    .await
    .unwrap();
    f.reports();
    for file in &first {
        assert!(
            !table.join(file).exists(),
            "{file} outlived a 0-hour retention"
        );
    }
    assert_eq!(revisions(&f, "obs").await, ["2:48"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upsert_updates_matching_keys_and_inserts_new_ones() {
    let f = Fixture::new();
    f.nuthatch.register(observations("obs", "delta")).unwrap();
    f.nuthatch
        .register(observations("obs_pq", "parquet"))
        .unwrap();
    for name in ["obs", "obs_pq"] {
        f.query(&format!(
            "SELECT * FROM {name}('2020-01-01', '2020-01-01T23:00:00')"
        ))
        .await
        .unwrap();
        f.reports();
        assert_eq!(revisions(&f, name).await, ["1:48"]);
    }
    // The second half of the day again, and the first half of the next.
    let call = "('2020-01-01T12:00:00', '2020-01-02T11:00:00', revision => 2, upsert => true)";
    let served = f.int(&format!("SELECT count(*) FROM obs{call}")).await;
    let report = f.report();
    assert_outcome(&report, Outcome::Upserted);
    assert_eq!(
        (report.updated, report.inserted),
        (Some(24), Some(24)),
        "{report}"
    );
    assert_eq!(report.data_version, Some(1));
    // The call serves its window of the merged entry.
    assert_eq!(served, 48);
    assert_eq!(revisions(&f, "obs").await, ["1:24", "2:48"]);
    assert_eq!(log_versions(&f.root().join("obs/.delta")).len(), 2);
    let range = metadata(&f.root(), "obs/").recorded;
    assert_eq!(
        (range.rows, range.time_min),
        (Some(72), Some(1_577_836_800_000_000))
    );

    // Parquet keeps Python nuthatch's upsert: new keys are added, stored
    // rows are never updated.
    f.int(&format!("SELECT count(*) FROM obs_pq{call}")).await;
    let report = f.report();
    assert_outcome(&report, Outcome::Upserted);
    assert_eq!(
        (report.updated, report.inserted),
        (Some(0), Some(24)),
        "{report}"
    );
    assert_eq!(revisions(&f, "obs_pq").await, ["1:48", "2:24"]);

    // An upsert into nothing stores the result.
    f.nuthatch.register(observations("fresh", "delta")).unwrap();
    f.int(&format!("SELECT count(*) FROM fresh{call}")).await;
    assert_eq!(f.report().data_version, Some(0));
    assert_eq!(revisions(&f, "fresh").await, ["2:48"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_window_replaces_that_window_only() {
    let f = Fixture::new();
    f.nuthatch.register(observations("obs", "delta")).unwrap();
    f.nuthatch
        .register(observations("obs_pq", "parquet"))
        .unwrap();
    for name in ["obs", "obs_pq"] {
        f.query(&format!(
            "SELECT * FROM {name}('2020-01-01', '2020-01-01T23:00:00')"
        ))
        .await
        .unwrap();
        f.reports();
        // Six hours, recomputed with a body that also returns a row outside
        // them (revision -1): that row is not stored.
        let served = f
            .int(&format!(
                "SELECT count(*) FROM {name}('2020-01-01T06:00:00', '2020-01-01T11:00:00', \
                 revision => -1, replace_window => true)"
            ))
            .await;
        let report = f.report();
        assert_outcome(&report, Outcome::WindowReplaced);
        assert_eq!(served, 12);
        assert_eq!(revisions(&f, name).await, ["-1:12", "1:36"], "{name}");
    }
    assert_eq!(log_versions(&f.root().join("obs/.delta")).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merging_calls_say_what_is_wrong() {
    let f = Fixture::new();
    f.nuthatch.register(observations("obs", "delta")).unwrap();
    f.nuthatch.register(demo_grid("grid", "delta", 8)).unwrap();
    let err = f
        .error("SELECT * FROM grid(NULL, NULL, upsert => true)")
        .await;
    assert!(err.contains("upsert_keys"), "{err}");
    let err = f
        .error("SELECT * FROM obs(NULL, NULL, replace_window => true)")
        .await;
    assert!(
        err.contains("needs a window: pass start_time and end_time"),
        "{err}"
    );
    let err = f
        .error(
            "SELECT * FROM obs('2020-01-01', '2020-01-02', upsert => true, replace_window => true)",
        )
        .await;
    assert!(err.contains("cannot be combined"), "{err}");
    let err = f
        .error("SELECT * FROM obs('2020-01-01', '2020-01-02', upsert => true, cache_mode => 'off')")
        .await;
    assert!(
        err.contains("stores nothing") && err.contains("cache_mode => 'write'"),
        "{err}"
    );
    let err = f
        .error("SELECT * FROM obs('2020-01-01', '2020-01-02', upsert => true, backend => 'zarr')")
        .await;
    assert!(err.contains("zarr entries cannot upsert"), "{err}");
    let err = CachedFunction::builder("bad")
        .returns(series_schema())
        .upsert_keys(["time", "place"])
        .compute(|_ctx, _args| async { Ok(Vec::<RecordBatch>::new()) })
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("'place', which is not a column"), "{err}");

    // A table whose log is corrupt: the error names the table, and the
    // fix.
    f.query("SELECT * FROM obs('2020-01-01', '2020-01-01T03:00:00')")
        .await
        .unwrap();
    f.reports();
    let log = f
        .root()
        .join("obs/.delta/_delta_log/00000000000000000000.json");
    std::fs::write(&log, "{ not json").unwrap();
    // This engine keeps the version it wrote open; another process reads
    // the log.
    let mut config = nuthatch::Config::with_root(f.root().display().to_string());
    config.local = nuthatch::TierConfig::new(f.local().display().to_string());
    let other = nuthatch::Engine::new(&config).unwrap().session();
    other.register(observations("obs", "delta")).unwrap();
    let err = match other.sql("SELECT * FROM obs(NULL, NULL)").await {
        Ok(frame) => frame.collect().await.unwrap_err().to_string(),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("delta") && err.contains("obs"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_definition_overwrites_with_a_new_schema_and_refuses_to_merge_into_the_old() {
    let f = Fixture::new();
    f.nuthatch.register(observations("obs", "delta")).unwrap();
    f.query("SELECT * FROM obs('2020-01-01', '2020-01-01T23:00:00')")
        .await
        .unwrap();
    f.reports();
    // Same key, value now an integer count, plus a column.
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            true,
        ),
        Field::new("station", DataType::Utf8, true),
        Field::new("value", DataType::Utf8, true),
    ]));
    let returned = Arc::clone(&schema);
    let changed = CachedFunction::builder("obs")
        .param("start_time", ParamType::Timestamp)
        .param("end_time", ParamType::Timestamp)
        .timeseries("time")
        .coverage(CoverageKind::Full)
        .backend("delta")
        .upsert_keys(["time", "station"])
        .returns(Arc::clone(&schema))
        .compute(move |_ctx, _args| {
            let schema = Arc::clone(&returned);
            async move {
                Ok(vec![RecordBatch::try_new(
                    schema,
                    vec![
                        Arc::new(TimestampNanosecondArray::from(vec![
                            1_577_836_800_000_000_000,
                        ])),
                        Arc::new(StringArray::from(vec!["a"])),
                        Arc::new(StringArray::from(vec!["new"])),
                    ],
                )?])
            }
        })
        .build()
        .unwrap();
    f.nuthatch.register(changed).unwrap();
    let err = f
        .error("SELECT * FROM obs('2020-01-01', '2020-01-01T23:00:00', upsert => true)")
        .await;
    assert!(err.to_lowercase().contains("value"), "{err}");
    assert_eq!(log_versions(&f.root().join("obs/.delta")).len(), 1);
    // An overwrite stores the new shape as the next version.
    let count = f
        .int("SELECT count(*) FROM obs(NULL, NULL, recompute => true, cache_mode => 'overwrite') WHERE value = 'new'")
        .await;
    assert_eq!(count, 1);
    assert_eq!(f.report().data_version, Some(1));
}

/// The child half of `a_killed_write_leaves_the_previous_version`: when
/// `NUTHATCH_KILLED_WRITE_ROOT` names a root, overwrites `endless` there
/// with a body that streams until the process is killed. Otherwise does
/// nothing.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_write_leaves_the_previous_version() {
    let f = Fixture::new();
    f.nuthatch.register(endless(false)).unwrap();
    assert_eq!(f.int("SELECT count(*) FROM endless()").await, 100_000);
    f.reports();
    let table = f.root().join("endless/.delta");
    let parquet_files = || {
        files_under(&table)
            .into_iter()
            .filter(|p| p.ends_with(".parquet"))
            .count()
    };
    let before = parquet_files();

    // Another process overwrites the entry; it is killed once the new
    // version has data files but before it can commit.
    /// Kills the child however the test ends.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = Command::new(example_binary("test_child"))
        .arg("overwrite-endlessly")
        .arg(f.root())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    let started = std::time::Instant::now();
    while parquet_files() <= before + 1 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the child wrote no data files"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    assert_eq!(log_versions(&table), ["00000000000000000000"]);
    assert_eq!(
        metadata(&f.root(), "endless/").recorded.data_version,
        Some(0)
    );

    // The entry reads as before, and the next write commits version 1.
    assert_eq!(f.int("SELECT count(*) FROM endless()").await, 100_000);
    assert_outcome(&f.report(), Outcome::Hit);
    f.query("SELECT count(*) FROM endless(recompute => true, cache_mode => 'overwrite')")
        .await
        .unwrap();
    assert_eq!(f.report().data_version, Some(1));
}

fn python(args: &[&str], root: &Path) -> String {
    let python = std::env::var("NUTHATCH_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let mut command = Command::new(python);
    command
        .arg(dir.join("nuthatch_store.py"))
        .args(args.iter().take(1))
        .arg(root)
        .args(args.iter().skip(1));
    let output = command.output().expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Python nuthatch (scripts/test installs it)"]
async fn python_delta_entries_read_here_and_ours_read_in_python() {
    let f = Fixture::new();
    python(&["write-delta"], &f.root());
    // Python's frame: value = hour * scale (+ 1000); delta2 was overwritten
    // with values ten times larger, so its log has two versions.
    let hours = 1440.0_f64;
    let expected = |factor: f64| (hours - 1.0) * hours / 2.0 * factor + 1000.0 * hours;
    // delta3's files lack the partition column: delta-rs reads that table.
    for (station, factor) in [("delta1", 1.0), ("delta2", 10.0), ("delta3", 1.0)] {
        let rows = text_rows(
            &f.query(&format!(
                "SELECT count(*), sum(value), CAST(min(time) AS VARCHAR), min(station) \
                 FROM series(NULL, NULL, station => '{station}', backend => 'delta')"
            ))
            .await
            .unwrap(),
        );
        let report = f.report();
        assert_outcome(&report, Outcome::Hit);
        assert_eq!(report.backend, "delta");
        assert_eq!(rows[0][0], "1440");
        assert_eq!(
            rows[0][1].parse::<f64>().unwrap(),
            expected(factor),
            "{station}"
        );
        assert_eq!(rows[0][2], "2020-01-01T00:00:00");
        assert_eq!(rows[0][3], station);
    }
    assert_eq!(
        log_versions(&f.root().join("series/1.0_delta2.delta")).len(),
        2
    );
    assert_eq!(f.computes(), 0);

    // Ours, in Python's read_only_strict mode (a miss would fail there).
    let ours = f
        .int("SELECT count(*) FROM series(NULL, NULL, station => 'rust', backend => 'delta')")
        .await;
    assert_eq!(ours, 1440);
    let sum = (hours - 1.0) * hours / 2.0;
    let read = python(&["read-delta", "rust", "1.0", "", ""], &f.root());
    assert!(
        read.lines().any(|l| l == format!("result 1440 {sum:?}")),
        "{read}"
    );
}

//! One store shared with the real Python nuthatch (0.4.11), both ways: entries
//! Python writes are hits here, entries written here are hits in Python.
//!
//! `tests/python/nuthatch_store.py` drives Python nuthatch. These tests are
//! `#[ignore]`d for a bare `cargo test`; `bash scripts/test` installs nuthatch
//! into its venv, exports `NUTHATCH_TEST_PYTHON` and runs them.

use std::path::{Path, PathBuf};
use std::process::Command;

use nuthatch::Outcome;

use crate::support::{Fixture, SERIES_ROWS, assert_outcome};
use crate::system::text_rows;

/// What the Python side adds to every value, so a read of its entry cannot be
/// mistaken for a recompute here.
const PYTHON_OFFSET: f64 = 1000.0;

fn python_dir() -> PathBuf {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo test");
    Path::new(&manifest_dir).join("tests/python")
}

/// Runs the driver script and returns its standard output.
pub(crate) fn python(args: &[&str]) -> String {
    python_at_home(args, None)
}

/// Runs the driver with `$HOME` at `home`: Python nuthatch's local tier is
/// always `$HOME/.nuthatch/caches`.
fn python_at_home(args: &[&str], home: Option<&Path>) -> String {
    let interpreter = std::env::var("NUTHATCH_TEST_PYTHON").expect(
        "NUTHATCH_TEST_PYTHON is unset: run `bash scripts/test`, which installs Python nuthatch",
    );
    let dir = python_dir();
    let mut command = Command::new(&interpreter);
    command.arg(dir.join("nuthatch_store.py")).args(args);
    if let Some(home) = home {
        command.env("HOME", home);
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {interpreter}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "python nuthatch failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// (count, sum of value) that Python nuthatch reads for one `series` call.
fn python_reads(
    root: &Path,
    station: &str,
    scale: &str,
    window: (&str, &str),
    ns: &str,
) -> (i64, f64) {
    let root = root.display().to_string();
    let mut args = vec!["read", &root, station, scale, window.0, window.1];
    if !ns.is_empty() {
        args.push(ns);
    }
    let stdout = python(&args);
    let result = stdout
        .lines()
        .find_map(|l| l.strip_prefix("result "))
        .unwrap_or_else(|| panic!("no result line in {stdout}"));
    let (count, sum) = result.split_once(' ').unwrap();
    (count.parse().unwrap(), sum.parse().unwrap())
}

async fn count_and_sum(f: &Fixture, call: &str) -> (i64, f64) {
    let sql = format!("SELECT count(*), sum(value) FROM {call}");
    let batches = f.query(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let count =
        arrow::compute::cast(batches[0].column(0), &arrow::datatypes::DataType::Int64).unwrap();
    let count = count
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0);
    let sum = batches[0]
        .column(1)
        .as_any()
        .downcast_ref::<arrow::array::Float64Array>()
        .unwrap()
        .value(0);
    (count, sum)
}

/// Sum of `i * scale + offset` over the hours `first..=last`.
fn expected_sum(first: i64, last: i64, scale: f64, offset: f64) -> f64 {
    (first..=last).map(|i| i as f64 * scale + offset).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Python nuthatch: run bash scripts/test"]
async fn entries_written_by_python_nuthatch_are_hits() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.root()).unwrap();
    python(&["write", &f.root().display().to_string()]);
    let last = SERIES_ROWS as i64 - 1;

    // Listed with what Python's metadata holds: no recorded rows, size or
    // time range, which Python does not write.
    let listed = text_rows(
        &f.query(
            "SELECT key, namespace, version, backend, state, rows, bytes, time_min, \
             user IS NOT NULL AND commit IS NOT NULL, uri LIKE '%.parquet' \
             FROM nuthatch.caches ORDER BY key, namespace",
        )
        .await
        .unwrap(),
    );
    let row = |key: &str, ns: &str| {
        [
            key,
            ns,
            "1",
            "parquet",
            "confirmed",
            "NULL",
            "NULL",
            "NULL",
            "true",
            "true",
        ]
        .map(String::from)
        .to_vec()
    };
    assert_eq!(
        listed,
        vec![
            row("series/1.0_west", "NULL"),
            row("series/2.0_east", "NULL"),
            row("series/3.0_west", "trial"),
        ]
    );

    // A dask frame: nuthatch's parquet default, a directory of part files.
    let (count, sum) = count_and_sum(&f, "series(NULL, NULL, station => 'west')").await;
    assert_eq!(count, SERIES_ROWS as i64);
    assert_eq!(sum, expected_sum(0, last, 1.0, PYTHON_OFFSET));
    let report = f.report();
    assert_outcome(&report, Outcome::Hit);
    assert_eq!(report.key, "series/1.0_west");
    // Python records no fingerprint or lineage: whether it is stale is
    // unknown, which is neither an error nor a warning.
    assert_eq!(report.stale, None);
    let staleness = text_rows(
        &f.query("SELECT DISTINCT stale, stale_because FROM nuthatch.caches")
            .await
            .unwrap(),
    );
    assert_eq!(
        staleness,
        vec![vec![
            "NULL".to_string(),
            "unknown: no fingerprint recorded (written by Python nuthatch or an earlier \
             release)"
                .into()
        ]]
    );

    // A pandas frame written with backend='parquet': a single file, clipped
    // to an exact window here.
    let (count, sum) = count_and_sum(
        &f,
        "series('2020-01-02', '2020-01-02T05:00:00', station => 'east', scale => 2)",
    )
    .await;
    assert_eq!((count, sum), (6, expected_sum(24, 29, 2.0, PYTHON_OFFSET)));
    assert_outcome(&f.report(), Outcome::Hit);

    // A namespaced entry.
    let (count, sum) = count_and_sum(
        &f,
        "series(NULL, NULL, station => 'west', scale => 3, namespace => 'trial')",
    )
    .await;
    assert_eq!(count, SERIES_ROWS as i64);
    assert_eq!(sum, expected_sum(0, last, 3.0, PYTHON_OFFSET));
    assert_outcome(&f.report(), Outcome::Hit);

    assert_eq!(f.computes(), 0, "every call read Python's entry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Python nuthatch: run bash scripts/test"]
async fn entries_written_here_are_hits_for_python_nuthatch() {
    let f = Fixture::new();
    f.int("SELECT count(*) FROM series(NULL, NULL, station => 'south', scale => 2)")
        .await;
    f.int("SELECT count(*) FROM series(NULL, NULL, station => 'south', scale => 2, namespace => 'trial')")
        .await;
    assert_eq!(f.computes(), 2);
    let root = f.root();

    // Python reads in read_only_strict mode: a miss would fail, a recompute
    // would add its offset.
    assert_eq!(
        python_reads(&root, "south", "2", ("", ""), ""),
        (
            SERIES_ROWS as i64,
            expected_sum(0, SERIES_ROWS as i64 - 1, 2.0, 0.0)
        )
    );
    assert_eq!(
        python_reads(
            &root,
            "south",
            "2",
            ("2020-01-01T01:00:00", "2020-01-01T03:00:00"),
            "trial"
        ),
        (3, expected_sum(1, 3, 2.0, 0.0))
    );
    // Python's DataFrame path stops a date-only end at midnight; this crate
    // keeps the whole end day (docs/timeseries.md, "Time windows").
    assert_eq!(
        python_reads(&root, "south", "2", ("2020-01-01", "2020-01-02"), "").0,
        25
    );
    assert_eq!(
        count_and_sum(
            &f,
            "series('2020-01-01', '2020-01-02', station => 'south', scale => 2)"
        )
        .await
        .0,
        48
    );
    // A record a killed replacement left pending is no entry to Python: its
    // strict read misses rather than read data the record may not describe.
    let record = root.join("nuthatch_metadata.nut/series/2.0_south/parquet.parquet");
    let confirmed = nuthatch::MetadataRow::decode(std::fs::read(&record).unwrap().into()).unwrap();
    let pending = nuthatch::MetadataRow {
        state: "pending".into(),
        replacing: Some(nuthatch::crates::catalog::Replacing {
            stamp: None,
            previous: Box::new(confirmed.clone()),
            staged: None,
        }),
        ..confirmed
    };
    std::fs::write(&record, pending.encode().unwrap()).unwrap();
    let interpreter = std::env::var("NUTHATCH_TEST_PYTHON").unwrap();
    let root_text = root.display().to_string();
    let strict = Command::new(&interpreter)
        .arg(python_dir().join("nuthatch_store.py"))
        .args(["read", &root_text, "south", "2", "", ""])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&strict.stderr);
    assert!(
        !strict.status.success() && said.contains("cache doesn't exist"),
        "Python read a pending entry: {}{said}",
        String::from_utf8_lossy(&strict.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Python nuthatch: run bash scripts/test"]
async fn an_entry_python_pickled_is_reported_with_the_fix_not_missed() {
    let f = Fixture::new();
    python(&["write-basic", &f.root().display().to_string()]);
    assert!(
        f.root().join("counts/3.pkl").is_file(),
        "Python stored a pickle: {:?}",
        f.files()
    );
    f.query(
        "CREATE CACHED FUNCTION counts(n BIGINT) WITH (cache_args = (n), version = '1') \
         AS SELECT value FROM generate_series(0, $n - 1)",
    )
    .await
    .unwrap();
    let error = f.error("SELECT * FROM counts(3)").await;
    assert!(
        error.contains("entry counts/n_3 on the root tier was stored by Python as a pickle"),
        "{error}"
    );
    assert!(error.contains("recompute => true"), "{error}");
    // The fix it names works, and leaves Python's entry alone.
    assert_eq!(
        f.int("SELECT count(*) FROM counts(3, recompute => true)")
            .await,
        3
    );
    assert_outcome(&f.report(), Outcome::Computed);
    assert_eq!(f.int("SELECT count(*) FROM counts(3)").await, 3);
    assert_outcome(&f.report(), Outcome::Hit);
    assert!(f.root().join("counts/3.pkl").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Python nuthatch: run bash scripts/test"]
async fn local_entries_are_shared_with_python_nuthatch_both_ways() {
    // Both sides use the local tier under one $HOME.
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let local = home.join(".nuthatch/caches");
    let f = Fixture::with_config(tempfile::tempdir().unwrap(), |root| {
        let mut config = nuthatch::Config::with_root(root.display().to_string());
        config.local = nuthatch::TierConfig::new(local.display().to_string());
        config
    });
    let root = f.root().display().to_string();

    // Python computes into local (clipped, keyed by every argument); we
    // read it in local_strict mode, which reads only local.
    python_at_home(&["local-write", &root], Some(&home));
    assert!(
        local
            .join("series/2020-01-02_1.0_2020-01-01_localpy.parquet")
            .is_file()
    );
    let call =
        "series('2020-01-01', '2020-01-02', station => 'localpy', cache_mode => 'local_strict')";
    assert_eq!(
        count_and_sum(&f, call).await,
        (25, expected_sum(0, 24, 1.0, PYTHON_OFFSET))
    );
    assert_eq!(f.report().tier.as_deref(), Some("local"));
    assert_eq!(f.computes(), 0);

    // We compute into local; Python reads it in local_strict mode (a
    // compute would fail) and clips its DataFrame to the end midnight.
    f.int("SELECT count(*) FROM series('2020-01-01', '2020-01-02', station => 'localrs', cache_mode => 'local')")
        .await;
    assert_eq!(f.computes(), 1);
    let stdout = python_at_home(
        &[
            "local-read",
            &root,
            "localrs",
            "1.0",
            "2020-01-01",
            "2020-01-02",
        ],
        Some(&home),
    );
    assert!(
        stdout.contains(&format!("result 25 {:?}", expected_sum(0, 24, 1.0, 0.0))),
        "{stdout}"
    );
}

/// `series` as a body that computes only its window (value = hours since
/// 2020-01-01 times `scale`), stored as `backend`, under Python's key.
pub(crate) fn windowed_series(backend: &str) -> nuthatch::CachedFunction {
    use std::sync::Arc;

    use arrow::array::{Float64Array, RecordBatch, StringArray, TimestampNanosecondArray};
    use nuthatch::{CachedFunction, ParamType, Value};

    CachedFunction::builder("series")
        .param("start_time", ParamType::Timestamp)
        .param("end_time", ParamType::Timestamp)
        .param_default("station", ParamType::String, Value::String("north".into()))
        .param_default("scale", ParamType::Float, Value::Float(1.0))
        .cache_args(["station", "scale"])
        .version("1")
        .timeseries("time")
        .backend(backend)
        .returns(crate::support::series_schema())
        .compute(|_ctx, args| async move {
            let origin = 1_577_836_800_i64 * 1_000_000_000;
            let hour = 3_600_000_000_000_i64;
            let nanos = |name| -> datafusion::error::Result<i64> {
                let at = args.timestamp(name)?.expect("a bound");
                Ok(at.and_utc().timestamp_nanos_opt().unwrap())
            };
            let (start, end) = (nanos("start_time")?, nanos("end_time")?);
            let hours: Vec<i64> =
                ((start - origin + hour - 1) / hour..=(end - origin) / hour).collect();
            let station = args.str("station")?.to_string();
            let scale = args.f64("scale")?;
            Ok(vec![RecordBatch::try_new(
                crate::support::series_schema(),
                vec![
                    Arc::new(TimestampNanosecondArray::from_iter_values(
                        hours.iter().map(|h| origin + h * hour),
                    )),
                    Arc::new(StringArray::from(vec![station.as_str(); hours.len()])),
                    Arc::new(Float64Array::from_iter_values(
                        hours.iter().map(|h| *h as f64 * scale),
                    )),
                ],
            )?])
        })
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Python nuthatch: run bash scripts/test"]
async fn entries_extended_here_read_whole_in_python_nuthatch() {
    for (backend, command) in [("parquet", "read"), ("delta", "read-delta")] {
        let f = Fixture::new();
        f.nuthatch.register(windowed_series(backend)).unwrap();
        let call = |from: &str, to: &str| {
            format!("series('{from}', '{to}', station => 'grow', scale => 2)")
        };
        count_and_sum(&f, &call("2020-01-10", "2020-01-20")).await;
        let ours = count_and_sum(&f, &call("2020-01-05", "2020-01-25")).await;
        let report = f.reports().pop().unwrap();
        assert_outcome(&report, Outcome::Extended);
        // Hours 96 (Jan 5) to 599 (Jan 25, 23:00).
        assert_eq!(
            ours,
            (21 * 24, expected_sum(96, 599, 2.0, 0.0)),
            "{backend}"
        );
        let root = f.root().display().to_string();
        let read = python(&[command, &root, "grow", "2", "", ""]);
        let (count, sum) = ours;
        assert!(
            read.lines().any(|l| l == format!("result {count} {sum:?}")),
            "{backend}: {read}"
        );
    }
}

//! A session over a fresh temporary root, with a small timeseries function
//! whose computations are counted.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{
    Array, Float64Array, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray,
};
use arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result};
use nuthatch::{
    CachedFunction, CallReport, Config, CoverageKind, Engine, Outcome, ParamType, Session,
    TierConfig, Value,
};
use tempfile::TempDir;

pub struct Fixture {
    pub dir: TempDir,
    pub engine: Engine,
    /// The session the tests query through.
    pub nuthatch: Session,
    pub computes: Arc<AtomicUsize>,
}

pub use crate::bodies::series_schema;

/// Hourly readings from 2020-01-01T00 for 60 days.
pub const SERIES_ROWS: usize = 60 * 24;

/// `series(start_time, end_time, station => 'north', scale => 1.0)`,
/// keyed by station and scale.
pub fn series(computes: Arc<AtomicUsize>) -> CachedFunction {
    CachedFunction::builder("series")
        .param("start_time", ParamType::Timestamp)
        .param("end_time", ParamType::Timestamp)
        .param_default("station", ParamType::String, Value::String("north".into()))
        .param_default("scale", ParamType::Float, Value::Float(1.0))
        .cache_args(["station", "scale"])
        .version("1")
        .timeseries("time")
        // Every call computes all 60 days, whatever its window.
        .coverage(CoverageKind::Full)
        .returns(series_schema())
        .compute(move |_ctx, args| {
            let computes = Arc::clone(&computes);
            async move {
                computes.fetch_add(1, Ordering::SeqCst);
                let station = args.str("station")?.to_string();
                if station == "broken" {
                    return Err(DataFusionError::Execution(
                        "the station feed is down".into(),
                    ));
                }
                let scale = args.f64("scale")?;
                let start = 1_577_836_800_i64 * 1_000_000_000;
                let hour = 3_600_000_000_000_i64;
                let times: Vec<i64> = (0..SERIES_ROWS as i64).map(|i| start + i * hour).collect();
                let values: Vec<f64> = (0..SERIES_ROWS).map(|i| i as f64 * scale).collect();
                let batch = RecordBatch::try_new(
                    series_schema(),
                    vec![
                        Arc::new(TimestampNanosecondArray::from(times)),
                        Arc::new(StringArray::from(vec![station.as_str(); SERIES_ROWS])),
                        Arc::new(Float64Array::from(values)),
                    ],
                )?;
                Ok(vec![batch])
            }
        })
        .build()
        .expect("series is a valid definition")
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        Fixture::with_config(dir, |root| Config::with_root(root.display().to_string()))
    }

    /// A fixture whose config `config` makes from the root folder; the
    /// local tier is the fixture's `local` folder unless it says otherwise,
    /// so no test touches `~/.nuthatch`.
    pub fn with_config(dir: TempDir, config: impl FnOnce(&Path) -> Config) -> Fixture {
        let root = dir.path().join("root");
        let mut config = config(&root);
        if config.local == Config::with_root("x").local {
            config.local = TierConfig::new(dir.path().join("local").display().to_string());
        }
        Fixture::with_engine(dir, Engine::new(&config).expect("engine opens"))
    }

    /// A fixture over an engine built by the test (one with backends of
    /// its own), whose tiers are under `dir`.
    pub fn with_engine(dir: TempDir, engine: Engine) -> Fixture {
        let nuthatch = engine.session();
        let computes = Arc::new(AtomicUsize::new(0));
        nuthatch
            .register(series(Arc::clone(&computes)))
            .expect("register series");
        Fixture {
            dir,
            engine,
            nuthatch,
            computes,
        }
    }

    pub fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("root")
    }

    pub fn local(&self) -> std::path::PathBuf {
        self.dir.path().join("local")
    }

    pub fn computes(&self) -> usize {
        self.computes.load(Ordering::SeqCst)
    }

    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        self.nuthatch.sql(sql).await?.collect().await
    }

    /// The single integer a query returns.
    pub async fn int(&self, sql: &str) -> i64 {
        let batches = self
            .query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let column = batches[0].column(0);
        let column = arrow::compute::cast(column, &DataType::Int64).unwrap();
        let ints = column.as_any().downcast_ref::<Int64Array>().unwrap();
        assert!(ints.is_valid(0), "{sql} returned NULL");
        ints.value(0)
    }

    pub async fn error(&self, sql: &str) -> String {
        match self.query(sql).await {
            Ok(_) => panic!("{sql} should fail"),
            Err(e) => e.to_string(),
        }
    }

    pub fn reports(&self) -> Vec<CallReport> {
        self.nuthatch.take_reports()
    }

    /// (key, outcome) of each call since the last look, in finishing order.
    pub fn outcomes(&self) -> Vec<(String, Outcome)> {
        self.reports()
            .into_iter()
            .map(|r| (r.key, r.outcome))
            .collect()
    }

    /// The one report of the last statement's only cached call.
    ///
    /// A call whose stream a LIMIT dropped is reported when DataFusion's
    /// spawned tasks let go of it, which can be just after `collect`
    /// returns; so an empty log is given a moment to fill.
    pub fn report(&self) -> CallReport {
        let mut reports = self.reports();
        for _ in 0..200 {
            if !reports.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            reports = self.reports();
        }
        assert_eq!(reports.len(), 1, "{reports:?}");
        reports.remove(0)
    }

    /// Every file under the root, relative and sorted.
    pub fn files(&self) -> Vec<String> {
        files_under(&self.root())
    }
}

/// Every file under `root`, relative and sorted.
pub fn files_under(root: &Path) -> Vec<String> {
    {
        let root = root.to_path_buf();
        let mut files = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    files.push(path.strip_prefix(&root).unwrap().display().to_string());
                }
            }
        }
        files.sort();
        files
    }
}

/// The plan `EXPLAIN ANALYZE` prints for `sql`, with each node's metrics.
pub async fn analyzed(f: &Fixture, sql: &str) -> String {
    let batches = f.query(&format!("EXPLAIN ANALYZE {sql}")).await.unwrap();
    let plans = batches[0]
        .column(1)
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .expect("the plan column is text");
    plans.value(0).to_string()
}

pub fn assert_outcome(report: &CallReport, outcome: Outcome) {
    assert_eq!(report.outcome, outcome, "{report}");
}

/// `name(start_time, end_time, revision => 1)`: hourly readings of
/// stations `a` and `b` over the window, each valued `revision`, keyed by
/// nothing (neither the window nor the revision is a cache argument), rows
/// identified by time and station. A revision of -1 also returns a row a
/// day after the window.
pub fn observations(name: &str, backend: &str) -> CachedFunction {
    CachedFunction::builder(name)
        .param("start_time", ParamType::Timestamp)
        .param("end_time", ParamType::Timestamp)
        .param_default("revision", ParamType::Int, Value::Int(1))
        .timeseries("time")
        .backend(backend)
        .upsert_keys(["time", "station"])
        .returns(series_schema())
        .compute(|_ctx, args| async move {
            let start = args.timestamp("start_time")?.expect("a start");
            let end = args.timestamp("end_time")?.expect("an end");
            let revision = args.i64("revision")?;
            let mut hours = Vec::new();
            let mut at = start;
            while at <= end {
                hours.push(at);
                at += chrono::Duration::hours(1);
            }
            if revision < 0 {
                hours.push(end + chrono::Duration::days(1));
            }
            let mut times = Vec::new();
            let mut stations = Vec::new();
            for hour in &hours {
                for station in ["a", "b"] {
                    times.push(hour.and_utc().timestamp_nanos_opt().unwrap());
                    stations.push(station);
                }
            }
            let values = vec![revision as f64; times.len()];
            Ok(vec![RecordBatch::try_new(
                series_schema(),
                vec![
                    Arc::new(TimestampNanosecondArray::from(times)),
                    Arc::new(StringArray::from(stations)),
                    Arc::new(Float64Array::from(values)),
                ],
            )?])
        })
        .build()
        .unwrap()
}

/// Rows per value of `value` in the stored entry, as "value:count" text.
pub async fn revisions(f: &Fixture, name: &str) -> Vec<String> {
    let sql = format!(
        "SELECT CAST(value AS BIGINT) AS v, count(*) FROM {name}(NULL, NULL) GROUP BY v ORDER BY v"
    );
    let rows =
        crate::system::text_rows(&f.query(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")));
    f.reports();
    rows.iter().map(|r| format!("{}:{}", r[0], r[1])).collect()
}

/// The encodings of column `column` of entry `<name>/.parquet` in its
/// first row group.
pub fn column_encodings(f: &Fixture, name: &str, column: usize) -> String {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let file = std::fs::File::open(f.root().join(format!("{name}/.parquet"))).unwrap();
    let reader = SerializedFileReader::new(file).unwrap();
    let group = reader.metadata().row_group(0);
    format!("{:?}", group.column(column).encodings().collect::<Vec<_>>())
}

/// Runs a table-driven test's cases, each as a task of its own, and fails
/// naming every case that failed with its message, not only the first.
pub async fn each_case<T, F, Fut>(
    cases: impl IntoIterator<Item = T>,
    label: impl Fn(&T) -> String,
    run: F,
) where
    T: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut failures = Vec::new();
    let mut count = 0;
    for case in cases {
        count += 1;
        let name = label(&case);
        if let Err(error) = tokio::spawn(run(case)).await {
            let message = match error.try_into_panic() {
                Ok(panic) => panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default(),
                Err(error) => error.to_string(),
            };
            failures.push(format!("{name}: {message}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The example binary `name`, which `cargo test` builds beside this test
/// binary (the runnable examples, and `test_child`).
pub fn example_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(|deps| deps.parent()).unwrap();
    profile.join("examples").join(name)
}

/// The first column of the first row of `sql` in `session`, as a number.
pub async fn count_in(session: &nuthatch::Session, sql: &str) -> datafusion::error::Result<i64> {
    let batches = session.sql(sql).await?.collect().await?;
    let column = arrow::compute::cast(batches[0].column(0), &arrow::datatypes::DataType::Int64)?;
    Ok(column
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0))
}

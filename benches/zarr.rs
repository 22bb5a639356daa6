//! Zarr benchmark, as ratios measured in one run. Run with
//! `cargo bench --bench zarr` (the test venv's Python, `NUTHATCH_TEST_PYTHON`,
//! for part 2).
//!
//! 1. The README grid (2920 six-hourly steps × 25 × 53, 3.87 M cells) stored
//!    as Zarr against Parquet: write (a miss), bytes on disk, full read, and a
//!    one-month window read, with the share of chunks (row groups) the window
//!    reads. Target: under 10% of the chunks.
//! 2. The same grid written by Python nuthatch (xarray + zarr-python 3):
//!    reading it here against xarray reading it, full and one month, each
//!    timed inside its own process after opening.
//!
//! Each timing is the median of a few runs.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{ms, size_under};
use datafusion::error::Result;
use nuthatch::demo::{TIME_STEPS, air_schema, air_temperature};
use nuthatch::{CachedFunction, Config, CoverageKind, Engine, ParamType, Session};

const RUNS: usize = 5;
const MONTH: &str = "'2014-03-01', '2014-03-31T18:00:00'";

fn grid(name: &str, backend: &str) -> Result<CachedFunction> {
    let mut builder = CachedFunction::builder(name)
        .param("start_time", ParamType::Timestamp)
        .param("end_time", ParamType::Timestamp)
        .timeseries("time")
        .coverage(CoverageKind::Full)
        .backend(backend)
        .returns(air_schema())
        .compute(|_ctx, _args| async move { air_temperature(TIME_STEPS) });
    if backend == "zarr" {
        builder = builder.dimensions(["time", "lat", "lon"]);
    }
    builder.build()
}

async fn run(session: &Session, sql: &str) -> Result<(usize, Option<(usize, usize)>)> {
    let batches = session.sql(sql).await?.collect().await?;
    let reports = session.take_reports();
    let parts = reports
        .last()
        .and_then(|r| r.chunks_read.or(r.row_groups_read));
    Ok((batches.iter().map(|b| b.num_rows()).sum(), parts))
}

async fn median(session: &Session, sql: &str) -> Result<(Duration, Option<(usize, usize)>)> {
    let mut times = Vec::new();
    let mut parts = None;
    for _ in 0..RUNS {
        let started = Instant::now();
        parts = run(session, sql).await?.1;
        times.push(started.elapsed());
    }
    times.sort();
    Ok((times[RUNS / 2], parts))
}

const PYTHON: &str = r#"
import os, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np, pandas as pd, xarray as xr
root = sys.argv[1]
os.environ["NUTHATCH_ROOT_FILESYSTEM"] = root
from nuthatch import cache

@cache(backend="zarr")
def py_grid():
    time_ = pd.date_range("2013-01-01", periods=2920, freq="6h")
    lat = np.arange(75.0, 14.9, -2.5, dtype="float32")
    lon = np.arange(200.0, 330.1, 2.5, dtype="float32")
    air = (250 + 30 * np.random.default_rng(0).random((2920, 25, 53))).astype("float32")
    return xr.Dataset({"air": (("time", "lat", "lon"), air)},
                      coords={"time": time_, "lat": lat, "lon": lon})

if sys.argv[2] == "write":
    py_grid()
    sys.exit()
path = os.path.join(root, "py_grid", ".zarr")
def timed(select):
    times = []
    for _ in range(5):
        start = time.perf_counter()
        ds = xr.open_zarr(path)
        frame = select(ds).to_dataframe()
        times.append(time.perf_counter() - start)
    return sorted(times)[2] * 1e3, len(frame)
full = timed(lambda ds: ds)
month = timed(lambda ds: ds.sel(time=slice("2014-03-01", "2014-03-31")))
print("xarray", full[0], full[1], month[0], month[1])
"#;

fn python(root: &std::path::Path, command: &str) -> Option<String> {
    let interpreter = std::env::var("NUTHATCH_TEST_PYTHON").ok()?;
    let output = Command::new(interpreter)
        .args(["-c", PYTHON])
        .arg(root)
        .arg(command)
        .output()
        .ok()?;
    if !output.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        return None;
    }
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[tokio::main]
async fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    let engine = Engine::new(&Config::with_root(root.display().to_string()))?;
    let session = engine.session();
    session.register(grid("grid_zarr", "zarr")?)?;
    session.register(grid("grid_parquet", "parquet")?)?;

    println!("| | Parquet | Zarr | Zarr / Parquet |");
    println!("|---|---|---|---|");
    let mut write = Vec::new();
    for name in ["grid_parquet", "grid_zarr"] {
        let mut times = Vec::new();
        for run in 0..3 {
            let started = Instant::now();
            self::run(
                &session,
                &format!("SELECT count(*) FROM {name}(NULL, NULL, namespace => 'w{run}')"),
            )
            .await?;
            times.push(started.elapsed());
        }
        times.sort();
        write.push(times[1]);
    }
    println!(
        "| write (a miss, ms) | {:.0} | {:.0} | {:.2} |",
        ms(write[0]),
        ms(write[1]),
        ms(write[1]) / ms(write[0])
    );
    let bytes = [
        size_under(&root.join("w0/grid_parquet/.parquet")),
        size_under(&root.join("w0/grid_zarr/.zarr")),
    ];
    println!(
        "| bytes on disk (MB) | {:.1} | {:.1} | {:.2} |",
        bytes[0] as f64 / 1e6,
        bytes[1] as f64 / 1e6,
        bytes[1] as f64 / bytes[0] as f64
    );
    let read =
        |name: &str, window: &str| format!("SELECT * FROM {name}({window}, namespace => 'w0')");
    let parquet_full = median(&session, &read("grid_parquet", "NULL, NULL")).await?;
    let zarr_full = median(&session, &read("grid_zarr", "NULL, NULL")).await?;
    println!(
        "| full read (ms) | {:.1} | {:.1} | {:.2} |",
        ms(parquet_full.0),
        ms(zarr_full.0),
        ms(zarr_full.0) / ms(parquet_full.0)
    );
    let parquet_month = median(&session, &read("grid_parquet", MONTH)).await?;
    let zarr_month = median(&session, &read("grid_zarr", MONTH)).await?;
    println!(
        "| one-month window (ms) | {:.2} | {:.2} | {:.2} |",
        ms(parquet_month.0),
        ms(zarr_month.0),
        ms(zarr_month.0) / ms(parquet_month.0)
    );
    let share = |parts: Option<(usize, usize)>| {
        parts.map_or("-".to_string(), |(r, t)| {
            format!("{r}/{t} ({:.1}%)", 100.0 * r as f64 / t as f64)
        })
    };
    println!(
        "| parts the month reads | {} | {} | |",
        share(parquet_month.1),
        share(zarr_month.1)
    );

    // Python's own store, read here and by xarray.
    if python(&root, "write").is_none() {
        println!("\n(skipped Python: set NUTHATCH_TEST_PYTHON to the test venv's python)");
        return Ok(());
    }
    let py_grid = CachedFunction::builder("py_grid")
        .param("start_time", ParamType::Timestamp)
        .param("end_time", ParamType::Timestamp)
        .timeseries("time")
        .coverage(CoverageKind::Full)
        .backend("zarr")
        .dimensions(["time", "lat", "lon"])
        .returns(air_schema())
        .compute(|_ctx, _args| async move {
            Err::<Vec<arrow::array::RecordBatch>, _>(datafusion::error::DataFusionError::Execution(
                "py_grid is read from Python's store".into(),
            ))
        })
        .build()?;
    session.register(py_grid)?;
    let ours_full = median(&session, "SELECT * FROM py_grid(NULL, NULL)").await?;
    let ours_month = median(&session, &format!("SELECT * FROM py_grid({MONTH})")).await?;
    let line = python(&root, "read").unwrap_or_default();
    let fields: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    if let [full, _, month, _] = fields[..] {
        println!(
            "\n| Python nuthatch's store | xarray + zarr-python | nuthatch | xarray / nuthatch |"
        );
        println!("|---|---|---|---|");
        println!(
            "| full read to a table (ms) | {full:.0} | {:.1} | {:.1} |",
            ms(ours_full.0),
            full / ms(ours_full.0)
        );
        println!(
            "| one month (ms) | {month:.1} | {:.2} | {:.1} |",
            ms(ours_month.0),
            month / ms(ours_month.0)
        );
    }
    Ok(())
}

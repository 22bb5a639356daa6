//! Terracotta benchmark, as ratios measured in one run. Run with
//! `cargo bench --features terracotta --bench terracotta`; with the test
//! venv's Python (`NUTHATCH_TEST_PYTHON`, which has Python nuthatch and
//! Terracotta) and `NUTHATCH_TEST_PG_*` set (`source scripts/postgres.sh;
//! start_postgres /tmp`), Python nuthatch's write is measured beside ours,
//! both into that PostgreSQL (the only database Python's terracotta
//! backend can use).
//!
//! 1. Writing a year of the README grid (1,464 six-hourly steps × 25 × 53)
//!    as a Terracotta entry: one COG per step and its dataset registered,
//!    the miss timed from the call to its last row, against Python nuthatch
//!    writing the same grid with its terracotta backend (timed inside its
//!    process, from the call to its return).
//! 2. Reading one time step's pixels back from the entry, against reading
//!    the same step from the same grid stored as Zarr.
//!
//! Each timing is the median of a few runs; every write run starts from an
//! empty store.

#[allow(dead_code)] // sizes on disk: the file formats' benches
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::ms;
use datafusion::error::Result;
use nuthatch::demo::{air_schema, air_temperature};
use nuthatch::{CachedFunction, Config, Engine, Session};

/// A year of six-hourly steps (2013 has 365 days; the issue's figure is a
/// leap year's 1,464).
const STEPS: usize = 1464;
const RUNS: usize = 3;
const STEP: &str = "TIMESTAMP '2013-07-01T00:00:00'";

fn grid(name: &str, backend: &str) -> Result<CachedFunction> {
    CachedFunction::builder(name)
        .backend(backend)
        .dimensions(["time", "lat", "lon"])
        .returns(air_schema())
        .compute(|_ctx, _args| async move { air_temperature(STEPS) })
        .build()
}

/// The PostgreSQL the test command starts, when its settings are set.
struct Pg {
    port: String,
    database: String,
    user: String,
    password: String,
}

fn pg() -> Option<Pg> {
    let var = |n: &str| std::env::var(format!("NUTHATCH_TEST_PG_{n}")).ok();
    Some(Pg {
        port: var("PORT")?,
        database: var("DATABASE")?,
        user: var("WRITER")?,
        password: var("WRITER_PASSWORD")?,
    })
}

fn session(root: &std::path::Path, pg: Option<&Pg>) -> Result<Session> {
    let mut config = Config::with_root(root.display().to_string());
    if let Some(pg) = pg {
        config.set("root.terracotta.driver", "postgresql")?;
        config.set("root.terracotta.host", "127.0.0.1")?;
        config.set("root.terracotta.port", &pg.port)?;
        config.set("root.terracotta.database", &pg.database)?;
        config.set("root.terracotta.username", &pg.user)?;
        config.set_secret("root.terracotta.password", &pg.password)?;
    }
    let engine = Engine::new(&config)?;
    let session = engine.session();
    session.register(grid("tc_grid", "terracotta")?)?;
    session.register(grid("zarr_grid", "zarr")?)?;
    Ok(session)
}

async fn rows(session: &Session, sql: &str) -> Result<usize> {
    let batches = session.sql(sql).await?.collect().await?;
    Ok(batches.iter().map(|b| b.num_rows()).sum())
}

/// Our write: a fresh store each run.
async fn write_here(pg: Option<&Pg>) -> Result<(Duration, usize)> {
    let mut times = Vec::new();
    let mut files = 0;
    for _ in 0..RUNS {
        let dir = tempfile::tempdir()?;
        let session = session(dir.path(), pg)?;
        let started = Instant::now();
        rows(&session, "SELECT count(*) FROM tc_grid()").await?;
        times.push(started.elapsed());
        session.finish_writes().await;
        files = std::fs::read_dir(dir.path().join("tc_grid/.terracotta"))?.count();
    }
    times.sort();
    Ok((times[RUNS / 2], files))
}

const PYTHON: &str = r#"
import os, sys, tempfile, time, warnings
warnings.filterwarnings("ignore")
import numpy as np, pandas as pd, xarray as xr
# nuthatch reads its root from the environment when it is imported; each
# run overwrites the entry (files and datasets) in place.
root = tempfile.mkdtemp()
os.environ["NUTHATCH_ROOT_FILESYSTEM"] = root
from nuthatch import cache

@cache(backend="terracotta")
def py_grid():
    times = pd.date_range("2013-01-01", periods=int(sys.argv[1]), freq="6h").values.astype("datetime64[ns]")
    lat = np.arange(75.0, 14.9, -2.5, dtype="float32")
    lon = np.arange(-160.0, -29.9, 2.5, dtype="float32")
    air = (250 + 30 * np.random.default_rng(0).random((len(times), 25, 53))).astype("float32")
    return xr.Dataset({"air": (("time", "lat", "lon"), air)},
                      coords={"time": times, "lat": lat, "lon": lon})

times = []
for _ in range(int(sys.argv[2])):
    start = time.perf_counter()
    py_grid(recompute=True, cache_mode="overwrite")
    times.append(time.perf_counter() - start)
    files = len(os.listdir(os.path.join(root, "py_grid", ".terracotta")))
print("python", sorted(times)[len(times) // 2] * 1e3, files)
"#;

/// Python nuthatch's write of the same grid, in ms, and the files it wrote.
fn write_in_python(pg: &Pg) -> Option<(f64, usize)> {
    let interpreter = std::env::var("NUTHATCH_TEST_PYTHON").ok()?;
    let output = Command::new(interpreter)
        .args(["-c", PYTHON, &STEPS.to_string(), &RUNS.to_string()])
        .env("NUTHATCH_ROOT_TERRACOTTA_DRIVER", "postgresql")
        .env("NUTHATCH_ROOT_TERRACOTTA_HOST", "127.0.0.1")
        .env("NUTHATCH_ROOT_TERRACOTTA_PORT", &pg.port)
        .env("NUTHATCH_ROOT_TERRACOTTA_DATABASE", &pg.database)
        .env("NUTHATCH_ROOT_TERRACOTTA_USERNAME", &pg.user)
        .env("NUTHATCH_ROOT_TERRACOTTA_PASSWORD", &pg.password)
        .output()
        .ok()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().find(|l| l.starts_with("python "));
    let Some(line) = line else {
        eprintln!(
            "Python nuthatch's write failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        return None;
    };
    let fields: Vec<&str> = line.split(' ').collect();
    Some((fields[1].parse().ok()?, fields[2].parse().ok()?))
}

/// One step read back, from the Terracotta entry and from Zarr.
async fn read_step() -> Result<(Duration, Duration, usize, usize)> {
    let dir = tempfile::tempdir()?;
    let session = session(dir.path(), None)?;
    for name in ["tc_grid", "zarr_grid"] {
        rows(&session, &format!("SELECT count(*) FROM {name}()")).await?;
    }
    session.finish_writes().await;
    let mut medians = Vec::new();
    let mut counts = Vec::new();
    for name in ["tc_grid", "zarr_grid"] {
        let sql = format!("SELECT * FROM {name}() WHERE time = {STEP}");
        let mut times = Vec::new();
        let mut count = 0;
        for _ in 0..5 {
            let started = Instant::now();
            count = rows(&session, &sql).await?;
            times.push(started.elapsed());
        }
        times.sort();
        medians.push(times[2]);
        counts.push(count);
    }
    Ok((medians[0], medians[1], counts[0], counts[1]))
}

#[tokio::main]
async fn main() -> Result<()> {
    let pg = pg();
    let database = if pg.is_some() { "PostgreSQL" } else { "SQLite" };
    println!("1. A year of the README grid ({STEPS} steps) written as a Terracotta entry\n");
    let (ours, files) = write_here(pg.as_ref()).await?;
    println!("| writer | datasets | ms | ratio |\n|---|---|---|---|");
    println!(
        "| nuthatch ({database}) | {files} | {:.0} | 1.00 |",
        ms(ours)
    );
    match pg.as_ref().and_then(write_in_python) {
        Some((python, files)) => println!(
            "| Python nuthatch 0.4.11 (PostgreSQL) | {files} | {python:.0} | {:.2} |",
            python / (ours.as_secs_f64() * 1e3)
        ),
        None => println!(
            "(Python nuthatch not measured: NUTHATCH_TEST_PYTHON or NUTHATCH_TEST_PG_* unset)"
        ),
    }

    println!("\n2. One time step's pixels read back\n");
    let (tc, zarr, tc_rows, zarr_rows) = read_step().await?;
    println!("| entry | rows | ms | ratio |\n|---|---|---|---|");
    println!("| Zarr | {zarr_rows} | {:.1} | 1.00 |", ms(zarr));
    println!(
        "| Terracotta | {tc_rows} | {:.1} | {:.2} |",
        ms(tc),
        tc.as_secs_f64() / zarr.as_secs_f64()
    );
    Ok(())
}

//! The README workflow against its peers, as ratios measured in one run.
//!
//! 1. Each step of the workflow, with the SQL definitions of
//!    `examples/readme_functions.sql`, against the real Python nuthatch
//!    0.4.11 doing the same step on the same data (its zarr, parquet and
//!    delta paths; the fastest counts). Each repeat starts from an empty
//!    store; times are in-process, from the call to the end of the
//!    reductions the README's queries compute (rows, first and last time,
//!    mean air).
//! 2. Reading the daily entry this engine wrote, against DuckDB reading the
//!    same file: a five-month window and the whole entry, as `count(*)` and
//!    `avg(air)`, and materialised as Arrow.
//! 3. Writing that entry's rows, held in memory, to Parquet with Snappy: a
//!    cached call's miss over them, under a query that only counts its
//!    rows (with its CPU time) and under the README query, against DuckDB's
//!    `COPY ... TO` and Polars' `write_parquet` of the same rows, with each
//!    writer's file described (size, row groups, encodings).
//!
//! Run it through the script that installs the peers:
//! `bash scripts/peers cargo bench --workspace --bench peers`.
//! `NUTHATCH_PEERS_WRITES_ONLY=1` runs only part 3 (over a first compute's
//! daily entry), for profiling the write.
//! Without `NUTHATCH_PEERS_PYTHON` only this engine's side runs. With
//! `NUTHATCH_PEERS_EXPLAIN=1` it first prints `EXPLAIN ANALYZE` of each
//! step (where a miss spends its time, in this optimised build).

#[allow(dead_code)] // sizes and times: the format benches
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use datafusion::error::{DataFusionError, Result};
use nuthatch::{Config, Engine, Outcome, Session};

use common::peer;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

const REPEATS: usize = 5;
const READ_REPEATS: usize = 20;

/// The README's steps, in order, as (name, the `agg_and_clip` call's
/// arguments, its expected outcome). Each step runs [`query`] over its call.
const STEPS: &[(&str, &str, Outcome)] = &[
    (
        "first_compute",
        "'2013-01-01', '2014-01-01', agg_days => 1",
        Outcome::Computed,
    ),
    (
        "full_hit",
        "'2013-01-01', '2014-01-01', agg_days => 1",
        Outcome::Hit,
    ),
    (
        "clipped_hit",
        "'2013-01-01', '2013-06-01', agg_days => 1",
        Outcome::Hit,
    ),
    (
        "weekly_compute",
        "'2013-01-01', '2014-01-01', agg_days => 7",
        Outcome::Computed,
    ),
    (
        "recompute_overwrite",
        "'2013-01-01', '2014-01-01', agg_days => 7, recompute => true, \
         cache_mode => 'overwrite'",
        Outcome::Computed,
    ),
];

/// Timed second: the first keeps the result in memory.
const MEMOIZED: &str = "'2013-01-01', '2014-01-01', agg_days => 7, memoize => true";

/// What the README's queries compute over a call with `args`.
fn query(args: &str) -> String {
    format!("SELECT count(*), min(time), max(time), avg(air) FROM agg_and_clip({args})")
}

fn definitions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/readme_functions.sql")
}

async fn session(root: &Path) -> Result<Session> {
    let config = Config::with_root(root.display().to_string());
    let session = Engine::new(&config)?.session();
    session.load_definitions(&definitions()).await?;
    Ok(session)
}

async fn timed(session: &Session, sql: &str) -> Result<Duration> {
    let started = Instant::now();
    session.sql(sql).await?.collect().await?;
    Ok(started.elapsed())
}

/// The outcome of the `agg_and_clip` call of the last statement.
fn outcome(session: &Session) -> Option<Outcome> {
    session
        .take_reports()
        .into_iter()
        .rev()
        .find(|r| r.function == "agg_and_clip")
        .map(|r| r.outcome)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn median_ms(mut ms: Vec<f64>) -> f64 {
    ms.sort_by(f64::total_cmp);
    ms[ms.len() / 2]
}

/// Every step, `REPEATS` times from an empty store; the daily entry of the
/// last repeat stays in `keep` for the read comparison.
async fn our_steps(keep: &Path) -> Result<Steps> {
    let mut times: BTreeMap<&'static str, Vec<Duration>> = BTreeMap::new();
    let mut cpu: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    for repeat in 0..REPEATS {
        let root = keep.join(format!("run{repeat}"));
        let session = session(&root).await?;
        for (name, args, expected) in STEPS {
            let used = cpu_ms();
            let took = timed(&session, &query(args)).await?;
            cpu.entry(name).or_default().push(cpu_ms() - used);
            let got = outcome(&session);
            if got != Some(*expected) {
                return Err(DataFusionError::Execution(format!(
                    "{name}: expected {expected:?}, got {got:?}"
                )));
            }
            times.entry(name).or_default().push(took);
        }
        timed(&session, &query(MEMOIZED)).await?;
        session.take_reports();
        let took = timed(&session, &query(MEMOIZED)).await?;
        let reports = session.take_reports();
        if reports.iter().any(|r| r.tier.as_deref() != Some("memory")) {
            return Err(DataFusionError::Execution(format!(
                "memoized_recall read a store: {reports:?}"
            )));
        }
        times.entry("memoized_recall").or_default().push(took);
    }
    Ok(Steps {
        wall: times.into_iter().map(|(k, v)| (k, median(v))).collect(),
        cpu: cpu.into_iter().map(|(k, v)| (k, median_ms(v))).collect(),
    })
}

/// Medians per step: wall time, and the CPU time of the whole process
/// (milliseconds) over the step, which says how well it used the cores.
struct Steps {
    wall: BTreeMap<&'static str, Duration>,
    cpu: BTreeMap<&'static str, f64>,
}

fn seconds(value: &serde_json::Value) -> Option<Duration> {
    value.as_f64().map(Duration::from_secs_f64)
}

/// Python nuthatch's fastest path per step, and its name.
fn fastest(python: &serde_json::Value, step: &str) -> Option<(Duration, String)> {
    python["steps"][step]
        .as_object()?
        .iter()
        .filter_map(|(path, s)| Some((seconds(s)?, path.clone())))
        .min()
}

async fn reads(session: &Session) -> Result<BTreeMap<&'static str, Duration>> {
    let window = "agg_and_clip('2013-01-01', '2013-06-01', agg_days => 1)";
    let full = "agg_and_clip(NULL, NULL, agg_days => 1)";
    let queries = [
        (
            "window_hit",
            format!("SELECT count(*), avg(air) FROM {window}"),
        ),
        ("full_hit", format!("SELECT count(*), avg(air) FROM {full}")),
        ("window_arrow", format!("SELECT * FROM {window}")),
        ("full_arrow", format!("SELECT * FROM {full}")),
    ];
    let mut times = BTreeMap::new();
    for (name, sql) in queries {
        timed(session, &sql).await?;
        let mut runs = Vec::new();
        for _ in 0..READ_REPEATS {
            runs.push(timed(session, &sql).await?);
        }
        session.take_reports();
        times.insert(name, median(runs));
    }
    Ok(times)
}

/// The README query over the daily entry's rows held in memory.
const OVER_ROWS: &str = "SELECT count(*), min(time), max(time), avg(air) FROM";

/// The least a query can ask of a miss: that its rows were written, as a
/// `COPY` reports.
const COUNT_ROWS: &str = "SELECT count(*) FROM";

/// What [`writes`] measured, medians of `REPEATS`.
struct Writes {
    /// A miss whose query counts its rows: the write itself.
    counted: Duration,
    /// The process's CPU time over that miss, in milliseconds, and over
    /// the hit that checks it was stored (a `count(*)` the footer answers).
    counted_cpu: f64,
    /// A miss under the README query, which also aggregates the rows.
    queried: Duration,
    /// The README query over the rows in memory, no cache involved.
    alone: Duration,
}

/// The rows of the daily entry at `file`, held in memory, written by a
/// cached call whose body only reads them (timed under a query that counts
/// them and under the README query), and the README query alone: medians
/// of `REPEATS`, each on an empty store, each after a first such miss in
/// the same session (DuckDB and Polars warm up with a first write too). A
/// miss serves its query the rows it stores as they are written. With
/// `NUTHATCH_PEERS_EXPLAIN` set, the first repeat prints the
/// `EXPLAIN ANALYZE` of a miss.
async fn writes(file: &Path, root: &Path) -> Result<Writes> {
    // One partition, so that the batches come in the file's order.
    let config = datafusion::prelude::SessionConfig::new().with_target_partitions(1);
    let ctx = datafusion::prelude::SessionContext::new_with_config(config);
    let options = datafusion::prelude::ParquetReadOptions::default();
    let read = ctx
        .read_parquet(file.display().to_string(), options)
        .await?;
    let schema = read.schema().inner().clone();
    // In time order, as the entry holds them, and known to be: a body's
    // rows in order are written as they come.
    let time = datafusion::prelude::col("time").sort(true, false);
    let rows = datafusion::datasource::MemTable::try_new(schema, vec![read.collect().await?])?
        .with_sort_order(vec![vec![time]]);
    let rows = std::sync::Arc::new(rows);
    let (mut counted, mut queried, mut alone) = (Vec::new(), Vec::new(), Vec::new());
    let mut counted_cpu = Vec::new();
    for repeat in 0..REPEATS {
        let session = session(&root.join(format!("write{repeat}"))).await?;
        session
            .context()
            .register_table("daily_rows", rows.clone())?;
        for name in ["warm_copy", "daily_copy", "queried_copy", "explained_copy"] {
            let define = format!(
                "CREATE CACHED FUNCTION {name}() WITH (order_by = (time)) \
                 AS SELECT * FROM daily_rows"
            );
            session.sql(&define).await?.collect().await?;
        }
        stored_miss(&session, COUNT_ROWS, "warm_copy").await?;
        let used = cpu_ms();
        counted.push(stored_miss(&session, COUNT_ROWS, "daily_copy").await?);
        counted_cpu.push(cpu_ms() - used);
        queried.push(stored_miss(&session, OVER_ROWS, "queried_copy").await?);
        alone.push(timed(&session, &format!("{OVER_ROWS} daily_rows")).await?);
        if repeat == 0 && std::env::var_os("NUTHATCH_PEERS_EXPLAIN").is_some() {
            let sql = format!("EXPLAIN ANALYZE {COUNT_ROWS} explained_copy()");
            println!("== a miss over the daily rows");
            print_plans(session.sql(&sql).await?.collect().await?)?;
        }
    }
    Ok(Writes {
        counted: median(counted),
        counted_cpu: median_ms(counted_cpu),
        queried: median(queried),
        alone: median(alone),
    })
}

/// The time of `query` over a first call of `name()`, checked to be
/// computed and then stored (a second call hits).
async fn stored_miss(session: &Session, query: &str, name: &str) -> Result<Duration> {
    let call = format!("{query} {name}()");
    let took = timed(session, &call).await?;
    session.finish_writes().await;
    let computed = (session.take_reports().iter())
        .any(|r| r.function == name && r.outcome == Outcome::Computed);
    timed(session, &call).await?;
    let stored =
        (session.take_reports().iter()).any(|r| r.function == name && r.outcome == Outcome::Hit);
    if !computed || !stored {
        return Err(DataFusionError::Execution(format!(
            "{name}() was not computed and stored"
        )));
    }
    Ok(took)
}

fn row(name: &str, ours: Duration, peer: Option<(Duration, String)>, target: &str) {
    match peer {
        Some((theirs, path)) => println!(
            "  {name:<20} {:>9.1} ms  {:>9.1} ms {:<8} {:>7.2}   {target}",
            ms(ours),
            ms(theirs),
            format!("({path})"),
            ours.as_secs_f64() / theirs.as_secs_f64()
        ),
        None => println!("  {name:<20} {:>9.1} ms", ms(ours)),
    }
}

/// CPU time the whole process has used, in milliseconds.
fn cpu_ms() -> f64 {
    ms(common::process_cpu())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    if !from.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Each step's `EXPLAIN ANALYZE`, on an empty store.
async fn explain(root: &Path) -> Result<()> {
    let session = session(root).await?;
    for (name, args, _) in STEPS {
        // CPU time against wall time of the step itself, on a copy of the
        // store as it was before the step.
        let copy = root.with_extension(name);
        copy_dir(root, &copy)?;
        let other = self::session(&copy).await?;
        let (cpu, started) = (cpu_ms(), Instant::now());
        other.sql(&query(args)).await?.collect().await?;
        println!(
            "== {name}: {:.1} ms wall, {:.1} ms CPU",
            ms(started.elapsed()),
            cpu_ms() - cpu
        );
        let plans = session
            .sql(&format!("EXPLAIN ANALYZE {}", query(args)))
            .await?
            .collect()
            .await?;
        print_plans(plans)?;
    }
    Ok(())
}

/// The plans `EXPLAIN ANALYZE` returned, as text.
fn print_plans(plans: Vec<datafusion::arrow::array::RecordBatch>) -> Result<()> {
    for batch in plans {
        let plan = batch.column(1);
        let plan = datafusion::arrow::util::display::ArrayFormatter::try_new(
            plan.as_ref(),
            &Default::default(),
        )?;
        for row in 0..batch.num_rows() {
            println!("{}", plan.value(row));
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    if std::env::var_os("NUTHATCH_PEERS_WRITES_ONLY").is_some() {
        // The daily entry of a first compute, then only the writes.
        let root = dir.path().join("run0");
        timed(&session(&root).await?, &query(STEPS[0].1)).await?;
        return write_comparison(dir.path(), &root.join("agg_and_clip/1.parquet")).await;
    }
    if std::env::var_os("NUTHATCH_PEERS_EXPLAIN").is_some() {
        explain(&dir.path().join("explain")).await?;
    }
    let ours = our_steps(dir.path()).await?;
    let python = peer(
        "python_nuthatch.py",
        &[
            dir.path().join("python").display().to_string(),
            "--repeats".into(),
            REPEATS.to_string(),
        ],
    );
    if let Err(why) = &python {
        println!("(Python nuthatch not run: {why})");
    }
    println!("README workflow, median of {REPEATS}: ours, Python nuthatch's fastest path, ratio");
    for (name, _, _) in STEPS {
        // The miss proper (the grid already cached) at most half of
        // Python's; every other step at least as fast.
        let target = if matches!(*name, "weekly_compute" | "recompute_overwrite") {
            "(target <= 0.5)"
        } else {
            "(target <= 1.0)"
        };
        let theirs = python.as_ref().ok().and_then(|p| fastest(p, name));
        row(name, ours.wall[name], theirs, target);
    }
    let theirs = python
        .as_ref()
        .ok()
        .and_then(|p| fastest(p, "memoized_recall"));
    row(
        "memoized_recall",
        ours.wall["memoized_recall"],
        theirs,
        "(target <= 1.0)",
    );

    println!("CPU time over each step (both cores), median:");
    for (name, cpu) in &ours.cpu {
        println!("  {name:<20} {cpu:>9.1} ms");
    }

    // The daily entry the last repeat wrote, read here and by DuckDB. The
    // window's date-only end keeps the whole day; DuckDB's bounds are
    // inclusive, so its end is that day's last six-hourly step.
    let root = dir.path().join(format!("run{}", REPEATS - 1));
    let session = session(&root).await?;
    let ours = reads(&session).await?;
    let file = root.join("agg_and_clip/1.parquet");
    let duck = peer(
        "duckdb_window.py",
        &[
            file.display().to_string(),
            "2013-01-01 00:00:00".into(),
            "2013-06-01 18:00:00".into(),
            "--repeats".into(),
            READ_REPEATS.to_string(),
        ],
    );
    if let Err(why) = &duck {
        println!("(DuckDB not run: {why})");
    }
    println!(
        "Reading the daily entry, median of {READ_REPEATS}: ours, DuckDB on the same file, ratio"
    );
    for (name, target) in [
        ("window_hit", "(target <= 0.8)"),
        ("full_hit", "(target <= 1.0)"),
        ("window_arrow", "(target <= 1.0)"),
        ("full_arrow", "(target <= 1.0)"),
    ] {
        let theirs = duck
            .as_ref()
            .ok()
            .and_then(|d| Some((seconds(&d[name])?, "duckdb".to_string())));
        row(name, ours[name], theirs, target);
    }

    write_comparison(dir.path(), &file).await
}

/// The daily rows of the entry at `file` written to Parquet with Snappy by
/// this engine (a miss over them), by DuckDB's COPY and by Polars.
async fn write_comparison(dir: &Path, file: &Path) -> Result<()> {
    let writes_at = dir.join("writes");
    let measured = writes(file, &writes_at).await?;
    let miss = measured.counted;
    let ours = writes_at.join(format!("write{}/daily_copy/.parquet", REPEATS - 1));
    let writers = peer(
        "parquet_writers.py",
        &[
            file.display().to_string(),
            dir.join("peer_writes").display().to_string(),
            "--repeats".into(),
            REPEATS.to_string(),
            "--ours".into(),
            ours.display().to_string(),
        ],
    );
    if let Err(why) = &writers {
        println!("(DuckDB and Polars writes not run: {why})");
    }
    println!(
        "Writing the daily entry's rows from memory, median of {REPEATS}: ours, theirs, ratio"
    );
    let theirs = |name: &str| {
        let writers = writers.as_ref().ok()?;
        Some((seconds(&writers[name])?, name.to_string()))
    };
    for peer in ["duckdb", "polars"] {
        row("write", miss, theirs(peer), "(target <= 1.0)");
    }
    let cpu = |name: &str| {
        let seconds = writers.as_ref().ok()?["cpu"][name].as_f64()?;
        Some(format!("{name} {:.1} ms", seconds * 1e3))
    };
    let peers_cpu: Vec<String> = ["duckdb", "polars"].into_iter().filter_map(cpu).collect();
    println!(
        "  (CPU over the miss {:.1} ms; over a write, {})",
        measured.counted_cpu,
        peers_cpu.join(", ")
    );
    println!(
        "  (under the README query {:.1} ms; that query over the rows alone {:.1} ms)",
        ms(measured.queried),
        ms(measured.alone)
    );
    // What a miss adds over DuckDB's COPY of the same rows, as a share of
    // the COPY: negative when the miss is faster.
    if let Some((duck, _)) = theirs("duckdb") {
        let beyond = (miss.as_secs_f64() - duck.as_secs_f64()) / duck.as_secs_f64();
        println!("  beyond DuckDB's COPY {beyond:>+43.2}   (target <= 0.2)");
    }
    if let Ok(writers) = &writers {
        describe_files(&writers["files"]);
    }
    Ok(())
}

/// Each writer's file: its size, row groups and the encodings of each
/// column, as `parquet_writers.py` read them from the footers.
fn describe_files(files: &serde_json::Value) {
    let Some(files) = files.as_object() else {
        return;
    };
    for (writer, file) in files {
        let mb = file["bytes"].as_f64().unwrap_or(0.0) / 1e6;
        println!("  {writer}: {mb:.1} MB, {} row groups", file["row_groups"]);
        for (column, about) in file["columns"].as_object().into_iter().flatten() {
            let kb = about["bytes"].as_f64().unwrap_or(0.0) / 1e3;
            println!("    {column:<5} {kb:>8.0} kB {}", about["encodings"]);
        }
    }
}

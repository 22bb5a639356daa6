//! Write-path benchmark: what a miss costs, reported as ratios measured in
//! one run. Run with `cargo bench --bench write_path`.
//!
//! 1. A miss (compute, stream into the store, read back) against the same
//!    compute alone (`cache_mode => 'off'`), for the README's weekly
//!    `agg_and_clip` and for a 30-million-row timeseries result.
//!    Target: at most 1.3 times.
//! 2. Peak resident memory of a miss whose result is four times the memory
//!    limit, against the limit (measured in a child process, so nothing else
//!    of this run counts). Target: within 1.5 times.
//! 3. The Parquet and Arrow IPC backends side by side: write (a miss), full
//!    read, bytes on disk, one-month window read.
//!
//! Each timing is the median of a few runs; every miss uses a fresh
//! namespace so that it really is a miss.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::error::Result;
use nuthatch::{CachedFunction, Config, CoverageKind, Engine, ParamType, Session, demo};

const RUNS: usize = 3;

async fn rows(session: &Session, sql: &str) -> Result<usize> {
    let batches = session.sql(sql).await?.collect().await?;
    session.take_reports();
    Ok(batches.iter().map(|b| b.num_rows()).sum())
}

/// The median time of `RUNS` runs of `sql(i)`.
async fn median(session: &Session, sql: impl Fn(usize) -> String) -> Result<Duration> {
    let mut times = Vec::new();
    for run in 0..RUNS {
        let started = Instant::now();
        rows(session, &sql(run)).await?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok(times[RUNS / 2])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// (time, id, v): 24 bytes a row in Arrow.
fn readings() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            true,
        ),
        Field::new("id", DataType::Int64, true),
        Field::new("v", DataType::Float64, true),
    ]))
}

/// `series30m(start_time, end_time)`: 30 million rows, one a second.
fn series30m() -> Result<CachedFunction> {
    let schema = readings();
    CachedFunction::builder("series30m")
        .param("start_time", ParamType::Timestamp)
        .param("end_time", ParamType::Timestamp)
        .timeseries("time")
        .coverage(CoverageKind::Full)
        .returns(schema)
        .compute(|ctx, _args| async move {
            ctx.sql(
                "SELECT to_timestamp_seconds(1577836800 + value) AS time, value AS id, \
                        CAST(value AS DOUBLE) * 0.5 AS v \
                 FROM generate_series(0, 29999999)",
            )
            .await
        })
        .build()
}

/// `shuffled(start_time, end_time, n)`: `n` rows whose times arrive in
/// scrambled order, so storing them needs a full sort.
fn shuffled() -> Result<CachedFunction> {
    let schema = readings();
    CachedFunction::builder("shuffled")
        .param("start_time", ParamType::Timestamp)
        .param("end_time", ParamType::Timestamp)
        .param("n", ParamType::Int)
        .cache_args(["n"])
        .timeseries("time")
        .coverage(CoverageKind::Full)
        .returns(schema)
        .compute(|ctx, args| async move {
            let n = args.i64("n")?;
            // 1_000_003 is prime, so for n not a multiple of it the times
            // are a permutation of 0..n seconds.
            ctx.sql(&format!(
                "SELECT to_timestamp_seconds(1577836800 + (value * 1000003) % {n}) AS time, \
                        value AS id, CAST(value AS DOUBLE) / 3 AS v \
                 FROM generate_series(0, {n} - 1)"
            ))
            .await
        })
        .build()
}

/// Peak resident set of this process, in bytes.
fn peak_rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The child of measurement 2: one miss under a memory limit; prints the
/// peak resident set before and after.
async fn memory_child(limit: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = Config::with_root(dir.path().display().to_string());
    config.memory_limit = Some(limit);
    let session = Engine::new(&config)?.session();
    session.register(shuffled()?)?;
    let before = peak_rss();
    // 24 bytes a row in Arrow: four times the limit.
    let n = 4 * limit / 24 + 1;
    rows(
        &session,
        &format!("SELECT count(*) FROM shuffled(NULL, NULL, {n})"),
    )
    .await?;
    println!("rss {before} {} {n}", peak_rss());
    Ok(())
}

async fn miss_against_compute(session: &Session) -> Result<()> {
    println!("1. miss against compute alone (median of {RUNS})");
    println!(
        "| result | compute alone | miss (compute + store + read back) | ratio (target <= 1.3) |"
    );
    println!("|---|---|---|---|");
    let cases = [
        (
            "README weekly agg_and_clip, 3.87M rows",
            "agg_and_clip(NULL, NULL, agg_days => 7",
        ),
        ("30M-row timeseries", "series30m(NULL, NULL"),
    ];
    for (what, call) in cases {
        let alone = median(session, |_| {
            format!("SELECT count(*) FROM {call}, cache_mode => 'off')")
        })
        .await?;
        let miss = median(session, |run| {
            format!("SELECT count(*) FROM {call}, namespace => 'miss{run}')")
        })
        .await?;
        println!(
            "| {what} | {:.0} ms | {:.0} ms | {:.2} |",
            ms(alone),
            ms(miss),
            miss.as_secs_f64() / alone.as_secs_f64()
        );
    }
    Ok(())
}

fn memory_against_limit() -> Result<()> {
    println!("\n2. peak resident memory of a miss four times the memory limit");
    println!(
        "| limit | result rows | result in Arrow | process before | peak | peak / limit (target <= 1.5) |"
    );
    println!("|---|---|---|---|---|---|");
    let limit: usize = 256 << 20;
    let output = std::process::Command::new(std::env::current_exe()?)
        .args(["--memory-child", &limit.to_string()])
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(line) = stdout.lines().find_map(|l| l.strip_prefix("rss ")) else {
        println!(
            "the child failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        return Ok(());
    };
    let numbers: Vec<usize> = line.split(' ').filter_map(|n| n.parse().ok()).collect();
    let (before, peak, n) = (numbers[0], numbers[1], numbers[2]);
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    println!(
        "| {:.0} MiB | {n} | {:.0} MiB | {:.0} MiB | {:.0} MiB | {:.2} |",
        mib(limit),
        mib(n * 24),
        mib(before),
        mib(peak),
        peak as f64 / limit as f64
    );
    Ok(())
}

async fn parquet_against_arrow(session: &Session, root: &std::path::Path) -> Result<()> {
    println!("\n3. Parquet against Arrow IPC: the daily agg_and_clip entry, 3.87M rows");
    println!("| backend | write (miss) | full read | bytes on disk | one-month window |");
    println!("|---|---|---|---|---|");
    for backend in ["parquet", "arrow"] {
        let write = median(session, |run| {
            format!(
                "SELECT count(*) FROM agg_and_clip(NULL, NULL, agg_days => 1, \
                 backend => '{backend}', namespace => '{backend}{run}')"
            )
        })
        .await?;
        let full = median(session, |_| {
            format!(
                "SELECT * FROM agg_and_clip(NULL, NULL, agg_days => 1, \
                 backend => '{backend}', namespace => '{backend}0')"
            )
        })
        .await?;
        let month = median(session, |_| {
            format!(
                "SELECT * FROM agg_and_clip('2013-03-01', '2013-03-31', agg_days => 1, \
                 backend => '{backend}', namespace => '{backend}0')"
            )
        })
        .await?;
        let file = root.join(format!("{backend}0/agg_and_clip/1.{backend}"));
        let bytes = std::fs::metadata(&file)?.len();
        println!(
            "| {backend} | {:.0} ms | {:.1} ms | {:.1} MiB | {:.1} ms |",
            ms(write),
            ms(full),
            bytes as f64 / (1 << 20) as f64,
            ms(month)
        );
    }
    Ok(())
}

/// CPU time of this process so far, in milliseconds.
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // utime and stime are fields 14 and 15, after the command in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks: f64 = fields.get(11..13).map_or(0.0, |t| {
        t.iter().filter_map(|v| v.parse::<f64>().ok()).sum()
    });
    ticks * 10.0
}

/// With `NUTHATCH_WRITE_PATH_EXPLAIN` set: wall and CPU time, and the
/// `EXPLAIN ANALYZE`, of the 30M-row miss and of its compute alone.
async fn explain(session: &Session) -> Result<()> {
    for (what, call) in [
        (
            "compute alone",
            "series30m(NULL, NULL, cache_mode => 'off')",
        ),
        ("miss", "series30m(NULL, NULL, namespace => 'explain0')"),
    ] {
        let (cpu, started) = (cpu_ms(), Instant::now());
        rows(session, &format!("SELECT count(*) FROM {call}")).await?;
        println!(
            "== {what}: {:.1} ms wall, {:.0} ms CPU",
            ms(started.elapsed()),
            cpu_ms() - cpu
        );
        let call = call.replace("explain0", "explain1");
        let plans = session
            .sql(&format!("EXPLAIN ANALYZE SELECT count(*) FROM {call}"))
            .await?
            .collect()
            .await?;
        session.take_reports();
        print!("{}", arrow::util::pretty::pretty_format_batches(&plans)?);
        println!();
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--memory-child") {
        let limit = args[i + 1].parse().expect("a byte count");
        return memory_child(limit).await;
    }
    let dir = tempfile::tempdir()?;
    let session = Engine::new(&Config::with_root(dir.path().display().to_string()))?.session();
    for function in demo::readme_functions()? {
        session.register(function)?;
    }
    session.register(series30m()?)?;
    // The grid agg_and_clip reads is cached first, as in the README.
    rows(&session, "SELECT count(*) FROM my_first_cache()").await?;
    if std::env::var_os("NUTHATCH_WRITE_PATH_EXPLAIN").is_some() {
        return explain(&session).await;
    }

    miss_against_compute(&session).await?;
    memory_against_limit()?;
    parquet_against_arrow(&session, dir.path()).await?;
    Ok(())
}

//! Cluster benchmark: one process against a coordinator with two worker
//! processes on loopback, over a generated Parquet dataset of 100 million
//! rows (`NUTHATCH_BENCH_CLUSTER_ROWS` for another size). Run with
//! `cargo bench --features distributed --bench cluster`.
//!
//! 1. The dataset's aggregate, as a plain query: what DataFusion's stages
//!    cost across processes, without the cache.
//! 2. A miss whose body aggregates it (a few rows stored).
//! 3. A miss whose result is half of it, 50 million rows: written by one
//!    writer alone, by both workers as parts on the cluster.
//! 4. A hit of that entry, summed.
//!
//! Each is the median of three runs, alone and on the cluster side by side;
//! every miss uses a fresh namespace so that it really is a miss. The
//! workers are this program, started again with `NUTHATCH_BENCH_WORKER`,
//! so they run the same build. On one machine the cluster has no cores the
//! single process lacks: the ratios are the cost of going through it, and
//! the rows a second are what each worker sustains sharing the machine.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use datafusion::error::Result;
use nuthatch::{Config, Engine, Session};

const RUNS: usize = 3;
const WORKERS: usize = 2;

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    if let Ok(root) = std::env::var("NUTHATCH_BENCH_WORKER") {
        return runtime.block_on(serve_worker(&root));
    }
    runtime.block_on(run())
}

/// A worker on a free loopback port, over the store at `root`; prints its
/// URL for the parent.
async fn serve_worker(root: &str) -> Result<()> {
    let engine = Engine::new(&Config::with_root(root.to_string()))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("http://{}", listener.local_addr()?);
    nuthatch::cluster::serve_worker(&engine, listener, None, std::future::pending()).await
}

struct Worker(Child, String);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_worker(root: &Path) -> Worker {
    let mut child = Command::new(std::env::current_exe().expect("this program"))
        .env("NUTHATCH_BENCH_WORKER", root)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("a worker starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("its output"))
        .read_line(&mut line)
        .expect("the worker's URL");
    Worker(child, line.trim().to_string())
}

async fn run() -> Result<()> {
    let rows: u64 = std::env::var("NUTHATCH_BENCH_CLUSTER_ROWS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000_000);
    let data = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cluster-{rows}"));
    let scratch = tempfile::tempdir()?;
    let alone = session(&scratch.path().join("alone"), &[])?;
    generate(&alone, &data, rows).await?;

    let cluster_root = scratch.path().join("cluster");
    std::fs::create_dir_all(&cluster_root)?;
    let workers: Vec<Worker> = (0..WORKERS).map(|_| start_worker(&cluster_root)).collect();
    let urls: Vec<String> = workers.iter().map(|w| w.1.clone()).collect();
    let cluster = session(&cluster_root, &urls)?;
    for session in [&alone, &cluster] {
        define(session, &data).await?;
    }
    println!(
        "cluster benchmark: {rows} rows, one process against a coordinator and {WORKERS} workers"
    );
    println!("| measure | alone | cluster | cluster / alone | rows/s per worker |");
    println!("|---|---|---|---|---|");
    let query = "SELECT grp, count(*), sum(v) FROM obs WHERE v >= 500 GROUP BY grp".to_string();
    compare(&alone, &cluster, "plain aggregate (no cache)", rows, |_| {
        query.clone()
    })
    .await?;
    compare(&alone, &cluster, "miss, aggregate body", rows, |run| {
        format!("SELECT * FROM totals(500, namespace => 'agg{run}')")
    })
    .await?;
    compare(
        &alone,
        &cluster,
        "miss, half the rows stored",
        rows,
        |run| format!("SELECT count(*) FROM picks(500, namespace => 'half{run}')"),
    )
    .await?;
    compare(
        &alone,
        &cluster,
        "hit of that entry, summed",
        rows / 2,
        |_| "SELECT count(*), sum(v) FROM picks(500, namespace => 'half0')".to_string(),
    )
    .await?;
    drop(workers);
    Ok(())
}

/// A session over the store at `root`, coordinating `workers` if any.
fn session(root: &Path, workers: &[String]) -> Result<Session> {
    let mut config = Config::with_root(root.display().to_string());
    config.distributed.workers = workers.to_vec();
    let engine = Engine::new(&config)?;
    nuthatch::cluster::attach(&engine)?;
    Ok(engine.session())
}

/// The dataset: `rows` rows of (id, grp of 7, v in 0..1000), written once
/// and kept in the target folder for later runs.
async fn generate(session: &Session, data: &Path, rows: u64) -> Result<()> {
    if data.join("done").exists() {
        return Ok(());
    }
    let started = Instant::now();
    let _ = std::fs::remove_dir_all(data);
    let copy = format!(
        "COPY (SELECT value AS id, value % 7 AS grp, (value * 7919) % 1000 AS v \
         FROM generate_series(0, {})) TO '{}/' STORED AS PARQUET",
        rows - 1,
        data.display()
    );
    session.sql(&copy).await?.collect().await?;
    std::fs::write(data.join("done"), "")?;
    println!(
        "generated {rows} rows in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn define(session: &Session, data: &Path) -> Result<()> {
    let statements = [
        format!(
            "CREATE EXTERNAL TABLE obs STORED AS PARQUET LOCATION '{}/'",
            data.display()
        ),
        "CREATE CACHED FUNCTION totals(min_v BIGINT) WITH (cache_args = (min_v)) AS \
         SELECT grp, count(*) AS n, sum(v) AS total FROM obs WHERE v >= $min_v GROUP BY grp"
            .to_string(),
        "CREATE CACHED FUNCTION picks(min_v BIGINT) WITH (cache_args = (min_v)) AS \
         SELECT id, v FROM obs WHERE v >= $min_v"
            .to_string(),
    ];
    for sql in statements {
        session.sql(&sql).await?.collect().await?;
    }
    Ok(())
}

/// The median time of `RUNS` runs of `sql(run)`.
async fn median(session: &Session, sql: &impl Fn(usize) -> String) -> Result<Duration> {
    let mut times = Vec::new();
    for run in 0..RUNS {
        let started = Instant::now();
        session.sql(&sql(run)).await?.collect().await?;
        times.push(started.elapsed());
        session.take_reports();
    }
    times.sort();
    Ok(times[RUNS / 2])
}

/// One row of the table: `sql` alone and on the cluster, and what each
/// worker sustains over `rows` rows.
async fn compare(
    alone: &Session,
    cluster: &Session,
    measure: &str,
    rows: u64,
    sql: impl Fn(usize) -> String,
) -> Result<()> {
    let one = median(alone, &sql).await?;
    let many = median(cluster, &sql).await?;
    let per_worker = rows as f64 / many.as_secs_f64() / WORKERS as f64;
    println!(
        "| {measure} | {:.2} s | {:.2} s | {:.2} | {:.1} M |",
        one.as_secs_f64(),
        many.as_secs_f64(),
        many.as_secs_f64() / one.as_secs_f64(),
        per_worker / 1e6
    );
    Ok(())
}

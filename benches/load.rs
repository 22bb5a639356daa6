//! Load: 50 real ADBC clients against `nuthatch serve`'s Flight SQL service
//! for a few minutes, each on its own connection (so its own session),
//! mixing hits, misses of a few keys and listings of the catalog.
//!
//! What it checks and reports: no query fails; each missing key is
//! computed once however many clients ask for it at once (its body counts
//! its runs, and sleeps long enough that they do ask at once); the
//! server's peak memory beside the configured memory limit; latency
//! percentiles per kind of query and the rate of queries. A benchmark, not
//! a test: it prints the table the docs show.
//!
//! The clients come from the test command's venv (`~/.cache/nuthatch-venv`,
//! made by `bash scripts/test`) or `$NUTHATCH_TEST_PYTHON`.
//! `NUTHATCH_LOAD_SECONDS` sets the duration (120 unless set).
//!
//! Run with `cargo bench --features flight --bench load`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::error::{DataFusionError, Result};
use nuthatch::crates::flight::{self, ServeOptions};
use nuthatch::{CachedFunction, Computed, Config, Engine, ParamType, TierConfig, demo};

const CLIENTS: usize = 50;
/// The keys the misses spread over.
const KEYS: i64 = 8;
const MEMORY_LIMIT: usize = 512 << 20;

/// Each client thread: its own connection, queries drawn from the mix until
/// the deadline; prints one JSON line of every latency by kind, and errors.
const CLIENTS_SCRIPT: &str = r#"
import json, random, sys, threading, time
import adbc_driver_flightsql.dbapi as flight_sql
uri, clients, seconds, keys = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
hit = "SELECT count(*), avg(air) FROM agg_and_clip('2013-03-01', '2013-03-31', agg_days => 1)"
listing = "SELECT count(*) FROM nuthatch.caches"
results, errors, lock = {"hit": [], "miss": [], "listing": []}, [], threading.Lock()
start = threading.Barrier(clients)
def client(index):
    rng = random.Random(index)
    conn = flight_sql.connect(uri, autocommit=True)
    cur = conn.cursor()
    start.wait()
    deadline = time.monotonic() + seconds
    mine = {"hit": [], "miss": [], "listing": []}
    while time.monotonic() < deadline:
        draw = rng.random()
        if draw < 0.6:
            kind, sql = "hit", hit
        elif draw < 0.8:
            kind, sql = "miss", f"SELECT count(*) FROM load_miss({rng.randrange(keys)})"
        else:
            kind, sql = "listing", listing
        began = time.perf_counter()
        try:
            cur.execute(sql)
            cur.fetchall()
            mine[kind].append(time.perf_counter() - began)
        except Exception as e:
            with lock:
                errors.append(f"{kind}: {e}"[:300])
    cur.close()
    conn.close()
    with lock:
        for kind, times in mine.items():
            results[kind].extend(times)
threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"results": results, "errors": errors}))
"#;

/// `load_miss(k)`: 20,000 rows after a pause long enough that other
/// clients ask for the same key meanwhile; counts its runs per key.
fn load_miss(runs: Arc<Mutex<BTreeMap<i64, usize>>>) -> Result<CachedFunction> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("i", DataType::Int64, false),
    ]));
    let returned = Arc::clone(&schema);
    CachedFunction::builder("load_miss")
        .param("k", ParamType::Int)
        .cache_args(["k"])
        .returns(schema)
        .compute(move |_ctx, args| {
            let (runs, schema) = (Arc::clone(&runs), Arc::clone(&returned));
            async move {
                let k = args.i64("k")?;
                *runs.lock().expect("runs").entry(k).or_default() += 1;
                tokio::time::sleep(Duration::from_millis(1500)).await;
                let batch = RecordBatch::try_new(
                    schema,
                    vec![
                        Arc::new(Int64Array::from(vec![k; 20_000])),
                        Arc::new(Int64Array::from_iter_values(0..20_000)),
                    ],
                )?;
                Ok(Computed::Batches(vec![batch]))
            }
        })
        .build()
}

/// The process's peak resident memory, from `/proc` (Linux).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn python() -> Result<String> {
    let python = std::env::var("NUTHATCH_TEST_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/nuthatch-venv/bin/python")
    });
    match std::path::Path::new(&python).exists() {
        true => Ok(python),
        false => Err(DataFusionError::Configuration(format!(
            "no Python ADBC client at {python}: run `bash scripts/test` once (it makes the \
             venv), or set NUTHATCH_TEST_PYTHON to a Python with adbc-driver-flightsql"
        ))),
    }
}

/// The `q`-quantile of sorted `times`, in milliseconds.
fn quantile(times: &[f64], q: f64) -> f64 {
    let at = ((times.len() as f64 - 1.0) * q).round() as usize;
    times[at] * 1e3
}

#[tokio::main]
async fn main() -> Result<()> {
    let python = python()?;
    let seconds: u64 = std::env::var("NUTHATCH_LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let dir = tempfile::tempdir()?;
    let mut config = Config::with_root(dir.path().display().to_string());
    config.local = TierConfig::new(dir.path().join("local").display().to_string());
    config.memory_limit = Some(MEMORY_LIMIT);
    let engine = Engine::new(&config)?;
    for function in demo::readme_functions()? {
        engine.register(function)?;
    }
    let runs: Arc<Mutex<BTreeMap<i64, usize>>> = Arc::default();
    engine.register(load_miss(Arc::clone(&runs))?)?;
    // The hit's entry, stored before the clients come.
    let month = "SELECT count(*) FROM agg_and_clip('2013-03-01', '2013-03-31', agg_days => 1)";
    engine.session().sql(month).await?.collect().await?;

    let listener = flight::bind("127.0.0.1:0".parse().expect("an address")).await?;
    let uri = format!("grpc://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(flight::serve(
        engine.clone(),
        listener,
        ServeOptions::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let before = peak_rss();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&python)
            .args(["-c", CLIENTS_SCRIPT, &uri])
            .args([CLIENTS.to_string(), seconds.to_string(), KEYS.to_string()])
            .output()
    })
    .await
    .map_err(|e| DataFusionError::External(Box::new(e)))??;
    if !output.status.success() {
        return Err(DataFusionError::Execution(format!(
            "the clients failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    let errors = report["errors"].as_array().cloned().unwrap_or_default();
    let computes = runs.lock().expect("runs").clone();

    println!(
        "{CLIENTS} ADBC clients for {seconds} s against nuthatch serve (memory limit 512 MiB)"
    );
    println!(
        "  {:<10} {:>8} {:>10} {:>10} {:>10} {:>10}",
        "query", "count", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    let mut total = 0;
    for kind in ["hit", "miss", "listing"] {
        let mut times: Vec<f64> = report["results"][kind]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
            .unwrap_or_default();
        times.sort_by(f64::total_cmp);
        total += times.len();
        if times.is_empty() {
            println!("  {kind:<10} {:>8}", 0);
            continue;
        }
        println!(
            "  {kind:<10} {:>8} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
            times.len(),
            quantile(&times, 0.5),
            quantile(&times, 0.95),
            quantile(&times, 0.99),
            quantile(&times, 1.0)
        );
    }
    println!(
        "  {total} queries, {:.0} a second",
        total as f64 / seconds as f64
    );
    println!("  errors: {}", errors.len());
    for error in errors.iter().take(5) {
        println!("    {error}");
    }
    let once = computes.values().all(|&n| n == 1) && computes.len() == KEYS as usize;
    println!("  computes per missing key: {computes:?} (each once: {once})");
    let mib = |b: Option<u64>| b.map_or("?".into(), |b| format!("{} MiB", b >> 20));
    println!(
        "  server peak resident memory: {} before the clients, {} after",
        mib(before),
        mib(peak_rss())
    );
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), server).await;
    if !errors.is_empty() || !once {
        return Err(DataFusionError::Execution(
            "the load run had errors or computed a key more than once".into(),
        ));
    }
    Ok(())
}

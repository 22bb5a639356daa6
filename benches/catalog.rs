//! Catalog listing benchmark, reported as ratios to a plain LIST of the
//! same prefix, measured in the same run.
//!
//! A root holding `ENTRIES` entries (100 functions, metadata rows and small
//! data files written straight to the store) is queried through the system
//! tables:
//!
//! 1. `SELECT count(*) FROM nuthatch.caches`: no metadata read; on the
//!    local store, from the folder index (the first of the runs lists
//!    every folder, the others only stat them).
//! 2. `... WHERE function = 'f7'` reading metadata columns: one LIST of one
//!    function's folder and its rows; cold (decoded) and warm (remembered).
//! 3. `... WHERE version = '1'` over every entry: every row, cold and warm.
//!
//! On the local store by default (100,000 entries, target: count under
//! 200 ms); on an S3-compatible server when `NUTHATCH_BENCH_S3_ENDPOINT`
//! is set, with `NUTHATCH_BENCH_S3_ENTRIES` entries (default 10,000).
//!
//! Run with `cargo bench --bench catalog`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::error::Result;
use futures::{StreamExt, TryStreamExt};
use nuthatch::crates::catalog::metastore::{CONFIRMED, MetadataRow, Recorded};
use nuthatch::{Config, Engine, Session, TierConfig};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

const RUNS: usize = 5;
const FUNCTIONS: usize = 100;

async fn median(mut run: impl AsyncFnMut() -> Result<usize>) -> Result<(Duration, usize)> {
    let mut times = Vec::new();
    let mut found = 0;
    for _ in 0..RUNS {
        let started = Instant::now();
        found = run().await?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok((times[RUNS / 2], found))
}

async fn once(run: impl AsyncFnOnce() -> Result<usize>) -> Result<(Duration, usize)> {
    let started = Instant::now();
    let found = run().await?;
    Ok((started.elapsed(), found))
}

/// Writes `entries` entries straight to `store`, 64 puts at a time.
async fn fill(store: Arc<dyn ObjectStore>, location: &str, entries: usize) -> Result<()> {
    let data = PutPayload::from_static(b"PAR1 not read by listings");
    let started = Instant::now();
    futures::stream::iter(0..entries)
        .map(|i| {
            let store = Arc::clone(&store);
            let data = data.clone();
            async move {
                let function = format!("f{}", i % FUNCTIONS);
                let key = format!("{function}/{i}");
                let row = MetadataRow {
                    cache_key: key.clone(),
                    namespace: None,
                    version: Some("1".into()),
                    backend: "parquet".into(),
                    state: CONFIRMED.into(),
                    last_modified: 1.7e15,
                    commit_hash: "no_git_repo".into(),
                    user: "bench".into(),
                    path: format!("{location}/{key}.parquet"),
                    recorded: Recorded {
                        rows: Some(24),
                        bytes: Some(25),
                        ..Recorded::default()
                    },
                    replacing: None,
                };
                let meta = Path::from(format!("nuthatch_metadata.nut/{key}/parquet.parquet"));
                store.put(&meta, PutPayload::from(row.encode()?)).await?;
                store
                    .put(&Path::from(format!("{key}.parquet")), data)
                    .await?;
                Ok::<_, datafusion::error::DataFusionError>(())
            }
        })
        .buffer_unordered(64)
        .try_collect::<Vec<_>>()
        .await?;
    eprintln!(
        "wrote {entries} entries in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn rows(session: &Session, sql: &str) -> Result<usize> {
    let batches = session.sql(sql).await?.collect().await?;
    Ok(batches.iter().map(|b| b.num_rows()).sum())
}

async fn count(session: &Session, sql: &str) -> Result<usize> {
    let batches = session.sql(sql).await?.collect().await?;
    let column = arrow::compute::cast(batches[0].column(0), &arrow::datatypes::DataType::Int64)?;
    Ok(column
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .expect("int64")
        .value(0) as usize)
}

async fn measure(label: &str, config: Config, entries: usize) -> Result<()> {
    let engine = Engine::new(&config)?;
    let session = engine.session();
    let root = engine.catalog().root().clone();
    fill(Arc::clone(root.store()), root.url(), entries).await?;
    let prefix = Path::from("nuthatch_metadata.nut");
    let (list, listed) = median(async || {
        Ok(root
            .store()
            .list(Some(&prefix))
            .try_collect::<Vec<_>>()
            .await?
            .len())
    })
    .await?;
    assert!(listed >= entries, "the LIST sees every metadata row");

    let (counted, n) =
        median(async || count(&session, "SELECT count(*) FROM nuthatch.caches").await).await?;
    assert_eq!(n, entries);
    let one = "SELECT key, version, rows, bytes FROM nuthatch.caches WHERE function = 'f7'";
    let (one_cold, n) = once(async || rows(&session, one).await).await?;
    assert_eq!(n, entries / FUNCTIONS);
    let (one_warm, _) = median(async || rows(&session, one).await).await?;
    let all = "SELECT count(*) FROM nuthatch.caches WHERE version = '1'";
    let (all_cold, n) = once(async || count(&session, all).await).await?;
    assert_eq!(n, entries);
    let (all_warm, _) = median(async || count(&session, all).await).await?;

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let ratio = |d: Duration| d.as_secs_f64() / list.as_secs_f64();
    println!("\n{label}: {entries} entries");
    println!("| query | time | ratio to LIST |");
    println!("|---|---:|---:|");
    println!(
        "| plain LIST of the metastore | {:.1} ms | 1.00 |",
        ms(list)
    );
    for (name, time) in [
        ("`count(*)` (no metadata read)", counted),
        ("one function's rows, cold", one_cold),
        ("one function's rows, warm", one_warm),
        ("every row, cold", all_cold),
        ("every row, warm", all_warm),
    ] {
        println!("| {name} | {:.1} ms | {:.2} |", ms(time), ratio(time));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = Config::with_root(dir.path().join("root").display().to_string());
    config.local = TierConfig::new(dir.path().join("local").display().to_string());
    let entries = std::env::var("NUTHATCH_BENCH_ENTRIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    measure("local store", config, entries).await?;

    if let Ok(endpoint) = std::env::var("NUTHATCH_BENCH_S3_ENDPOINT") {
        let entries = std::env::var("NUTHATCH_BENCH_S3_ENTRIES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(10_000);
        let bucket = std::env::var("NUTHATCH_BENCH_S3_BUCKET").unwrap_or("nuthatch-test".into());
        let mut config = Config::with_root("unused");
        config.root = TierConfig::new(format!("s3://{bucket}/bench/caches"))
            .with_option("endpoint", &endpoint)
            .with_option("access_key_id", "testing")
            .with_option("secret_access_key", "testing")
            .with_option("region", "us-east-1")
            .with_option("allow_http", "true");
        config.local = TierConfig::new(dir.path().join("local-s3").display().to_string());
        measure("S3-compatible server (moto)", config, entries).await?;
    }
    Ok(())
}

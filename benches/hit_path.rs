//! Hit-path and pruning benchmark, reported as ratios measured in one run.
//!
//! 1. `SELECT * FROM my_first_cache()` served from the cache, against
//!    DataFusion reading the same Parquet file directly (target: within 10%).
//! 2. A one-month window of `agg_and_clip` against the full two years: the
//!    share of row groups read (target: under 10%) and the time ratio.
//! 3. The same month from each tier: a root hit (the two-year entry, pruned
//!    to the month), a local-tier hit (the month's own clipped copy) and a
//!    memoized recall, as ratios to the root hit.
//! 4. The root hit of that month judged for staleness (`on_stale` left at
//!    `warn`: the entry's fingerprint compared, its input's row read and
//!    judged in turn) against the same hit served unjudged (`on_stale =>
//!    'serve'`) (target: within 10%).
//!
//! Run with `cargo bench --bench hit_path`.

use std::time::{Duration, Instant};

use datafusion::error::Result;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use nuthatch::{Config, Engine, TierConfig, demo};

const RUNS: usize = 7;

async fn median_time(mut run: impl AsyncFnMut() -> Result<usize>) -> Result<(Duration, usize)> {
    let mut times = Vec::new();
    let mut rows = 0;
    for _ in 0..RUNS {
        let started = Instant::now();
        rows = run().await?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok((times[RUNS / 2], rows))
}

async fn count_rows(frame: datafusion::dataframe::DataFrame) -> Result<usize> {
    Ok(frame.collect().await?.iter().map(|b| b.num_rows()).sum())
}

#[tokio::main]
async fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = Config::with_root(dir.path().display().to_string());
    config.local = TierConfig::new(dir.path().join("local").display().to_string());
    let nuthatch = Engine::new(&config)?.session();
    for function in demo::readme_functions()? {
        nuthatch.register(function)?;
    }
    // Fill the cache once.
    count_rows(
        nuthatch
            .sql("SELECT * FROM agg_and_clip(NULL, NULL, agg_days => 1)")
            .await?,
    )
    .await?;
    nuthatch.take_reports();

    let file = dir.path().join("my_first_cache/.parquet");
    let direct = SessionContext::new();
    direct
        .register_parquet(
            "direct",
            file.display().to_string(),
            ParquetReadOptions::default(),
        )
        .await?;
    let (direct_time, direct_rows) =
        median_time(async || count_rows(direct.sql("SELECT * FROM direct").await?).await).await?;
    let (hit_time, hit_rows) = median_time(async || {
        count_rows(nuthatch.sql("SELECT * FROM my_first_cache()").await?).await
    })
    .await?;
    assert_eq!(direct_rows, hit_rows);
    println!("hit path: {hit_rows} rows");
    println!(
        "  direct parquet read  {:>8.1} ms",
        direct_time.as_secs_f64() * 1e3
    );
    println!(
        "  cached function hit  {:>8.1} ms",
        hit_time.as_secs_f64() * 1e3
    );
    println!(
        "  ratio hit/direct     {:>8.3}  (target <= 1.10)",
        hit_time.as_secs_f64() / direct_time.as_secs_f64()
    );

    let full_sql = "SELECT * FROM agg_and_clip(NULL, NULL, agg_days => 1)";
    let month_sql = "SELECT * FROM agg_and_clip('2013-03-01', '2013-03-31', agg_days => 1)";
    nuthatch.take_reports();
    let (full_time, _) =
        median_time(async || count_rows(nuthatch.sql(full_sql).await?).await).await?;
    let (month_time, month_rows) =
        median_time(async || count_rows(nuthatch.sql(month_sql).await?).await).await?;
    let reports = nuthatch.take_reports();
    let last = reports.last().expect("the window call reported");
    let (read, total) = last.row_groups_read.unwrap_or((0, 0));
    println!("one-month window: {month_rows} rows");
    println!(
        "  row groups read      {read} of {total} ({:.1}%, target < 10%)",
        100.0 * read as f64 / total.max(1) as f64
    );
    println!(
        "  ratio month/full     {:>8.3}",
        month_time.as_secs_f64() / full_time.as_secs_f64()
    );

    // 3. The month from each tier. The first local call copies the month
    // from root; the first memoized call keeps it in memory.
    let month = |options: &str| {
        format!("SELECT * FROM agg_and_clip('2013-03-01', '2013-03-31', agg_days => 1, {options})")
    };
    let local_sql = month("cache_mode => 'local'");
    let memo_sql = month("memoize => true");
    count_rows(nuthatch.sql(&local_sql).await?).await?;
    count_rows(nuthatch.sql(&memo_sql).await?).await?;
    nuthatch.take_reports();
    let (root_time, root_rows) =
        median_time(async || count_rows(nuthatch.sql(month_sql).await?).await).await?;
    let (local_time, local_rows) =
        median_time(async || count_rows(nuthatch.sql(&local_sql).await?).await).await?;
    let (memo_time, memo_rows) =
        median_time(async || count_rows(nuthatch.sql(&memo_sql).await?).await).await?;
    assert_eq!((root_rows, local_rows), (memo_rows, memo_rows));
    let tiers: Vec<Option<String>> = nuthatch
        .take_reports()
        .into_iter()
        .map(|r| r.tier)
        .collect();
    assert_eq!(tiers[0].as_deref(), Some("root"));
    assert_eq!(tiers[RUNS].as_deref(), Some("local"));
    assert_eq!(tiers[2 * RUNS].as_deref(), Some("memory"));
    println!("one month from each tier: {memo_rows} rows");
    for (name, time) in [
        ("root hit", root_time),
        ("local hit", local_time),
        ("memoized", memo_time),
    ] {
        println!(
            "  {name:<10} {:>8.1} ms   ratio to root {:>6.3}",
            time.as_secs_f64() * 1e3,
            time.as_secs_f64() / root_time.as_secs_f64()
        );
    }

    // 4. Staleness checking on a hit, against none: alternated, so that
    // both see the same state of the disk's cache.
    let unjudged_sql = month("on_stale => 'serve'");
    let mut judged = Vec::new();
    let mut unjudged = Vec::new();
    for _ in 0..3 * RUNS {
        let started = Instant::now();
        count_rows(nuthatch.sql(month_sql).await?).await?;
        judged.push(started.elapsed());
        let started = Instant::now();
        count_rows(nuthatch.sql(&unjudged_sql).await?).await?;
        unjudged.push(started.elapsed());
    }
    let reports = nuthatch.take_reports();
    assert!(
        reports.iter().all(|r| r.stale.is_none()),
        "nothing is stale"
    );
    judged.sort();
    unjudged.sort();
    let (judged, unjudged) = (judged[judged.len() / 2], unjudged[unjudged.len() / 2]);
    println!("one month, judged for staleness against served unjudged:");
    println!(
        "  judged {:>6.2} ms   unjudged {:>6.2} ms   ratio {:>6.3}  (target <= 1.10)",
        judged.as_secs_f64() * 1e3,
        unjudged.as_secs_f64() * 1e3,
        judged.as_secs_f64() / unjudged.as_secs_f64()
    );
    Ok(())
}

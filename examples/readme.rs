//! The README workflow, on the embedded default store (`./.nuthatch`, unless
//! a nuthatch.toml or NUTHATCH_ROOT_FILESYSTEM says otherwise).
//!
//! Run it with `cargo run --example readme`; run it twice to see the second
//! run served from the cache.

use std::time::Instant;

use nuthatch::Engine;

const STEPS: [(&str, &str); 5] = [
    (
        "daily means for 2013: computed, along with my_first_cache()",
        "SELECT count(*) AS rows, min(time) AS first, max(time) AS last, avg(air) AS mean_air \
         FROM agg_and_clip('2013-01-01', '2014-01-01', agg_days => 1)",
    ),
    (
        "the same entry clipped to January..June 2013: a hit that reads a few row groups",
        "SELECT count(*) AS rows, min(time) AS first, max(time) AS last, avg(air) AS mean_air \
         FROM agg_and_clip('2013-01-01', '2013-06-01', agg_days => 1)",
    ),
    (
        "weekly means: a new key, computed from the cached grid",
        "SELECT count(*) AS rows, min(time) AS first, max(time) AS last, avg(air) AS mean_air \
         FROM agg_and_clip('2013-01-01', '2014-01-01', agg_days => 7)",
    ),
    (
        "weekly means again, recomputed and overwritten",
        "SELECT count(*) AS rows, avg(air) AS mean_air \
         FROM agg_and_clip('2013-01-01', '2014-01-01', agg_days => 7, \
                           recompute => true, cache_mode => 'overwrite')",
    ),
    (
        "weekly means in a new namespace: a separate entry",
        "SELECT count(*) AS rows, avg(air) AS mean_air \
         FROM agg_and_clip('2013-01-01', '2014-01-01', agg_days => 7, namespace => 'experiment')",
    ),
];

#[tokio::main]
async fn main() -> datafusion::error::Result<()> {
    let engine = Engine::discover()?;
    println!("root tier: {}\n", engine.catalog().root().url());
    for function in nuthatch::demo::readme_functions()? {
        engine.register(function)?;
    }
    let session = engine.session();
    for (what, sql) in STEPS {
        println!("-- {what}\n{sql}");
        let started = Instant::now();
        session.sql(sql).await?.show().await?;
        for report in session.take_reports() {
            println!("nuthatch: {report}");
        }
        println!("took {:.2}s\n", started.elapsed().as_secs_f64());
    }
    // Every query above read its rows to the end, so its misses are
    // stored; a program whose queries may stop early waits here.
    session.finish_writes().await;
    Ok(())
}

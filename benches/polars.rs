//! Polars benchmark, as ratios measured in one run. Run with
//! `cargo bench --features polars --bench polars`.
//!
//! 1. The README's `my_first_cache()` (2920 × 25 × 53, 3.87M rows) served
//!    from the cache: collected as Arrow batches (the baseline), as a
//!    Polars frame, and the conversion alone against copying the batches
//!    once (`concat_batches`), which is what a conversion that copied
//!    would cost at least.
//! 2. A cached function whose body is Polars (a lazy scan of the cached
//!    grid, grouped by cell) against the same function in SQL, both
//!    computed afresh each run (`run` is a cache argument).
//!
//! Each timing is the median of a few runs.

#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::{DataType, Field, Schema};
use common::ms;
use datafusion::error::Result;
use nuthatch::polars::{PolarsBody, SessionPolars, to_polars};
use nuthatch::{CachedFunction, Config, Engine, ParamType};
use polars::prelude::col;

const RUNS: usize = 5;
const GRID: &str = "SELECT * FROM my_first_cache()";

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn cell_means_polars() -> Result<CachedFunction> {
    CachedFunction::builder("cell_means_polars")
        .param("run", ParamType::Int)
        .cache_args(["run"])
        .returns(cell_means_schema())
        .compute_polars(|polars, _args| async move {
            let grid = polars.lazy(GRID).await?;
            Ok(grid
                .group_by([col("lat"), col("lon")])
                .agg([col("air").mean().alias("air")]))
        })
        .build()
}

fn cell_means_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("lat", DataType::Float32, true),
        Field::new("lon", DataType::Float32, true),
        Field::new("air", DataType::Float64, true),
    ]))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = Config::with_root(dir.path().join("root").display().to_string());
    config.local = nuthatch::TierConfig::new(dir.path().join("local").display().to_string());
    let engine = Engine::new(&config)?;
    for function in nuthatch::demo::readme_functions()? {
        engine.register(function)?;
    }
    engine.register(cell_means_polars()?)?;
    let session = engine.session();
    session
        .sql(
            "CREATE CACHED FUNCTION cell_means_sql(run BIGINT) WITH (cache_args = (run)) AS \
             SELECT lat, lon, avg(air) AS air FROM my_first_cache() GROUP BY lat, lon",
        )
        .await?;
    let batches = session.sql(GRID).await?.collect().await?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let polars = session.polars();

    let (mut arrow, mut frame, mut convert, mut copy) = (vec![], vec![], vec![], vec![]);
    for _ in 0..RUNS {
        let start = Instant::now();
        let batches = session.sql(GRID).await?.collect().await?;
        arrow.push(start.elapsed());

        let start = Instant::now();
        let converted = polars.frame(GRID).await?;
        frame.push(start.elapsed());
        assert_eq!(converted.height(), rows);

        let schema = batches[0].schema();
        let start = Instant::now();
        let converted = to_polars(&schema, &batches)?;
        convert.push(start.elapsed());
        drop(converted);

        let start = Instant::now();
        let copied = arrow::compute::concat_batches(&schema, &batches)?;
        copy.push(start.elapsed());
        drop(copied);
    }
    let arrow = median(arrow);
    let ratio = |d: Duration| ms(d) / ms(arrow);
    println!("\n{rows} rows of my_first_cache(), from the cache:\n");
    println!("| | time | ratio to Arrow |");
    println!("|---|---:|---:|");
    for (what, d) in [
        ("collected as Arrow batches", arrow),
        ("as a Polars DataFrame", median(frame)),
        ("the conversion alone", median(convert)),
        ("one copy of the batches", median(copy)),
    ] {
        println!("| {what} | {:.1} ms | {:.3} |", ms(d), ratio(d));
    }

    let (mut in_sql, mut in_polars) = (vec![], vec![]);
    for run in 0..RUNS {
        for (name, times) in [
            ("cell_means_sql", &mut in_sql),
            ("cell_means_polars", &mut in_polars),
        ] {
            let start = Instant::now();
            let result = session
                .sql(&format!("SELECT count(*) FROM {name}(run => {run})"))
                .await?
                .collect()
                .await?;
            times.push(start.elapsed());
            assert_eq!(result[0].num_rows(), 1);
        }
        session.take_reports();
    }
    let (in_sql, in_polars) = (median(in_sql), median(in_polars));
    println!("\nMean air per cell over the grid, computed and stored:\n");
    println!("| body | time | ratio to SQL |");
    println!("|---|---:|---:|");
    println!("| SQL | {:.1} ms | 1.00 |", ms(in_sql));
    println!(
        "| Polars (lazy scan, group by) | {:.1} ms | {:.2} |",
        ms(in_polars),
        ms(in_polars) / ms(in_sql)
    );
    Ok(())
}

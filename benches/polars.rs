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
//! 3. The group-by alone over the same rows already in memory, in
//!    DataFusion and in each Polars engine: the floor under (2), since a
//!    Polars body fetches its scans before Polars aggregates.
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
use polars::prelude::{DataFrame, IntoLazy, col};

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

/// Polars' cell means of `grid`, collected by `engine`, off the runtime.
async fn polars_cell_means(grid: DataFrame, engine: polars::prelude::Engine) -> Duration {
    let start = Instant::now();
    let means = tokio::task::spawn_blocking(move || {
        grid.lazy()
            .group_by([col("lat"), col("lon")])
            .agg([col("air").mean().alias("air")])
            .collect_with_engine(engine)
            .map(|result| result.unwrap_single())
    })
    .await
    .expect("the group-by ran")
    .expect("Polars grouped the grid");
    assert_eq!(means.height(), nuthatch::demo::LATS * nuthatch::demo::LONS);
    start.elapsed()
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

    let columns = "SELECT lat, lon, air FROM my_first_cache()";
    let grid = polars.frame(columns).await?;
    let cells = session.sql(columns).await?.collect().await?;
    let in_memory = datafusion::datasource::MemTable::try_new(cells[0].schema(), vec![cells])?;
    session
        .context()
        .register_table("grid_in_memory", Arc::new(in_memory))?;
    let (mut datafusion, mut streaming, mut in_memory) = (vec![], vec![], vec![]);
    for _ in 0..RUNS {
        let start = Instant::now();
        session
            .sql("SELECT lat, lon, avg(air) FROM grid_in_memory GROUP BY lat, lon")
            .await?
            .collect()
            .await?;
        datafusion.push(start.elapsed());
        streaming.push(polars_cell_means(grid.clone(), polars::prelude::Engine::Streaming).await);
        in_memory.push(polars_cell_means(grid.clone(), polars::prelude::Engine::InMemory).await);
    }
    let datafusion = median(datafusion);
    println!("\nThe same group-by alone, over the rows already in memory:\n");
    println!("| engine | time | ratio to DataFusion |");
    println!("|---|---:|---:|");
    for (what, d) in [
        ("DataFusion", datafusion),
        ("Polars, streaming engine", median(streaming)),
        ("Polars, in-memory engine", median(in_memory)),
    ] {
        println!(
            "| {what} | {:.1} ms | {:.2} |",
            ms(d),
            ms(d) / ms(datafusion)
        );
    }
    Ok(())
}

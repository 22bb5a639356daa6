//! SQL backend benchmark, as ratios measured in one run. Run with
//! `cargo bench --features sql --bench sql`; with `NUTHATCH_TEST_PG_*` set
//! (`source scripts/postgres.sh; start_postgres /tmp` starts a server and
//! sets them) PostgreSQL is measured beside SQLite.
//!
//! For the README grid (2920 six-hourly steps × 25 × 53, 3.87M rows):
//! 1. write (a miss) and full read, SQLite and PostgreSQL against Parquet;
//! 2. a one-month window read with the window in the statement, against
//!    the same month asked for by a filter the database cannot evaluate
//!    (so every row is fetched and filtered here), with the rows the
//!    database sent for each.

#[allow(dead_code)] // sizes on disk: the file formats' benches
mod common;

use std::time::{Duration, Instant};

use datafusion::error::Result;
use nuthatch::demo::{air_schema, air_temperature};
use nuthatch::{CachedFunction, Config, CoverageKind, Engine, Session};

use common::ms;

const TIME_STEPS: usize = 2920;
const RUNS: usize = 3;
const MONTH: &str = "'2014-03-01', '2014-03-31T18:00:00'";

fn grid(name: &str, backend: &str) -> Result<CachedFunction> {
    CachedFunction::builder(name)
        .param("start_time", nuthatch::ParamType::Timestamp)
        .param("end_time", nuthatch::ParamType::Timestamp)
        .timeseries("time")
        .coverage(CoverageKind::Full)
        .backend(backend)
        .returns(air_schema())
        .compute(|_ctx, _args| async move { air_temperature(TIME_STEPS) })
        .build()
}

/// The median time of `runs` runs of `sql`, and the last run's rows
/// fetched from the database.
async fn median(session: &Session, runs: usize, sql: &str) -> Result<(Duration, Option<usize>)> {
    let mut times = Vec::new();
    let mut fetched = None;
    for _ in 0..runs {
        let started = Instant::now();
        session.sql(sql).await?.collect().await?;
        times.push(started.elapsed());
        fetched = session.take_reports().last().and_then(|r| r.rows_fetched);
    }
    times.sort();
    Ok((times[runs / 2], fetched))
}

#[tokio::main]
async fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    let mut config = Config::with_root(root.display().to_string());
    let pg = std::env::var("NUTHATCH_TEST_PG_PORT").ok();
    let mut engines = vec![("SQLite", Engine::new(&config)?)];
    if let Some(port) = &pg {
        let var = |n: &str| std::env::var(format!("NUTHATCH_TEST_PG_{n}")).unwrap_or_default();
        config.set(
            "root.filesystem",
            &dir.path().join("pg").display().to_string(),
        )?;
        config.set("root.sql.driver", "postgresql")?;
        config.set("root.sql.host", "127.0.0.1")?;
        config.set("root.sql.port", port)?;
        config.set("root.sql.database", &var("DATABASE"))?;
        config.set("root.sql.username", &var("WRITER"))?;
        config.set_secret("root.sql.password", &var("WRITER_PASSWORD"))?;
        engines.push(("PostgreSQL", Engine::new(&config)?));
    } else {
        println!("(NUTHATCH_TEST_PG_* unset: SQLite only)\n");
    }

    println!("| | Parquet | SQL | SQL / Parquet |");
    println!("|---|---:|---:|---:|");
    for (label, engine) in &engines {
        let session = engine.session();
        session.register(grid("bench_grid_parquet", "parquet")?)?;
        session.register(grid("bench_grid_sql", "sql")?)?;
        let mut write = Vec::new();
        let mut full = Vec::new();
        for name in ["bench_grid_parquet", "bench_grid_sql"] {
            let miss = format!("SELECT count(*) FROM {name}(NULL, NULL, recompute => true)");
            write.push(median(&session, 1, &miss).await?.0);
            let read = format!("SELECT * FROM {name}(NULL, NULL)");
            full.push(median(&session, RUNS, &read).await?.0);
        }
        println!(
            "| {label}: write (a miss) | {:.0} ms | {:.0} ms | {:.2} |",
            ms(write[0]),
            ms(write[1]),
            ms(write[1]) / ms(write[0])
        );
        println!(
            "| {label}: full read | {:.0} ms | {:.0} ms | {:.2} |",
            ms(full[0]),
            ms(full[1]),
            ms(full[1]) / ms(full[0])
        );
    }

    println!("\n| one month | pushed into the statement | filtered here | pushed / here |");
    println!("|---|---:|---:|---:|");
    for (label, engine) in &engines {
        let session = engine.session();
        session.register(grid("bench_grid_sql", "sql")?)?;
        let pushed = format!("SELECT * FROM bench_grid_sql({MONTH})");
        // date_trunc keeps the same rows but is not evaluated by the
        // database, so every row comes back.
        let here = "SELECT * FROM bench_grid_sql(NULL, NULL) \
                    WHERE date_trunc('second', time) BETWEEN TIMESTAMP '2014-03-01' \
                    AND TIMESTAMP '2014-03-31T18:00:00'";
        let (pushed_time, pushed_rows) = median(&session, RUNS, &pushed).await?;
        let (here_time, here_rows) = median(&session, RUNS, here).await?;
        println!(
            "| {label}: time | {:.1} ms | {:.1} ms | {:.3} |",
            ms(pushed_time),
            ms(here_time),
            ms(pushed_time) / ms(here_time)
        );
        let (p, h) = (pushed_rows.unwrap_or(0), here_rows.unwrap_or(0));
        println!(
            "| {label}: rows fetched | {p} | {h} | {:.3} |",
            p as f64 / h.max(1) as f64
        );
    }
    Ok(())
}

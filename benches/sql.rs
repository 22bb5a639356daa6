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
//!    database sent for each;
//! 3. run through `bash scripts/peers`, the same full and month reads by
//!    the ADBC drivers (`adbc_driver_sqlite`, `adbc_driver_postgresql`)
//!    and connectorx into Arrow, and the ADBC drivers' bulk ingest of the
//!    same rows against our write less the body's own time
//!    (`benches/peers/sql_peers.py`).

#[allow(dead_code)] // sizes on disk: the file formats' benches
mod common;

use std::time::{Duration, Instant};

use datafusion::error::{DataFusionError, Result};
use nuthatch::demo::{air_schema, air_temperature};
use nuthatch::{CachedFunction, Config, CoverageKind, Engine, Session};

use common::{ms, peer};

const TIME_STEPS: usize = 2920;
const RUNS: usize = 3;
const MONTH: &str = "'2014-03-01', '2014-03-31T18:00:00'";
/// The same month as the peers' statements bound it.
const MONTH_START: &str = "2014-03-01 00:00:00";
const MONTH_END: &str = "2014-03-31 18:00:00";

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

/// One database's figures, against Parquet's in the same engine.
struct Figures {
    label: &'static str,
    /// Parquet, then SQL.
    write: [Duration; 2],
    full: [Duration; 2],
    /// The window pushed into the statement, then filtered here.
    month: [(Duration, Option<usize>); 2],
}

async fn measure(label: &'static str, engine: &Engine) -> Result<Figures> {
    let session = engine.session();
    session.register(grid("bench_grid_parquet", "parquet")?)?;
    session.register(grid("bench_grid_sql", "sql")?)?;
    let mut write = [Duration::ZERO; 2];
    let mut full = [Duration::ZERO; 2];
    for (i, name) in ["bench_grid_parquet", "bench_grid_sql"].iter().enumerate() {
        let miss = format!("SELECT count(*) FROM {name}(NULL, NULL, recompute => true)");
        write[i] = median(&session, 1, &miss).await?.0;
        let read = format!("SELECT * FROM {name}(NULL, NULL)");
        full[i] = median(&session, RUNS, &read).await?.0;
    }
    let pushed = format!("SELECT * FROM bench_grid_sql({MONTH})");
    // date_trunc keeps the same rows but is not evaluated by the database,
    // so every row comes back.
    let here = "SELECT * FROM bench_grid_sql(NULL, NULL) \
                WHERE date_trunc('second', time) BETWEEN TIMESTAMP '2014-03-01' \
                AND TIMESTAMP '2014-03-31T18:00:00'";
    let month = [
        median(&session, RUNS, &pushed).await?,
        median(&session, RUNS, here).await?,
    ];
    Ok(Figures {
        label,
        write,
        full,
        month,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    let mut config = Config::with_root(root.display().to_string());
    let mut engines = vec![("SQLite", Engine::new(&config)?)];
    let pg_uri = match std::env::var("NUTHATCH_TEST_PG_PORT") {
        Ok(port) => {
            let var = |n: &str| std::env::var(format!("NUTHATCH_TEST_PG_{n}")).unwrap_or_default();
            let pg = dir.path().join("pg").display().to_string();
            config.set("root.filesystem", &pg)?;
            config.set("root.sql.driver", "postgresql")?;
            config.set("root.sql.host", "127.0.0.1")?;
            config.set("root.sql.port", &port)?;
            config.set("root.sql.database", &var("DATABASE"))?;
            config.set("root.sql.username", &var("WRITER"))?;
            config.set_secret("root.sql.password", &var("WRITER_PASSWORD"))?;
            engines.push(("PostgreSQL", Engine::new(&config)?));
            // The peers read the password from the environment they
            // inherit, never from an argument or a message.
            let (user, db) = (var("WRITER"), var("DATABASE"));
            format!("postgresql://{user}@127.0.0.1:{port}/{db}")
        }
        Err(_) => {
            println!("(NUTHATCH_TEST_PG_* unset: SQLite only)\n");
            "-".to_string()
        }
    };
    let mut figures = Vec::new();
    for (label, engine) in &engines {
        figures.push(measure(label, engine).await?);
    }
    print_figures(&figures);

    let peers = match std::env::var("NUTHATCH_PEERS_PYTHON") {
        Ok(_) => {
            let parquet = dir.path().join("grid.parquet").display().to_string();
            let session = engines[0].1.session();
            session.register(grid("bench_grid_parquet", "parquet")?)?;
            let copy = format!(
                "COPY (SELECT * FROM bench_grid_parquet(NULL, NULL)) TO '{parquet}' \
                 STORED AS PARQUET"
            );
            session.sql(&copy).await?.collect().await?;
            let sqlite = root
                .join(nuthatch::crates::backends::sql::SQLITE_FILE)
                .display()
                .to_string();
            let args = [
                &RUNS.to_string(),
                &sqlite,
                &pg_uri,
                &parquet,
                MONTH_START,
                MONTH_END,
            ];
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            peer("sql_peers.py", &args).map_err(DataFusionError::Execution)?
        }
        Err(_) => {
            println!(
                "\n(NUTHATCH_PEERS_PYTHON unset: run through `bash scripts/peers` for the ADBC drivers and connectorx)"
            );
            return Ok(());
        }
    };
    print_peers(&figures, &peers, body_alone()?);
    Ok(())
}

/// The body's own time: the grid's batches made and dropped.
fn body_alone() -> Result<Duration> {
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        drop(air_temperature(TIME_STEPS)?);
        times.push(started.elapsed());
    }
    times.sort();
    Ok(times[RUNS / 2])
}

fn print_figures(figures: &[Figures]) {
    println!("| | Parquet | SQL | SQL / Parquet |");
    println!("|---|---:|---:|---:|");
    for f in figures {
        for (what, [parquet, sql]) in [("write (a miss)", f.write), ("full read", f.full)] {
            println!(
                "| {}: {what} | {:.0} ms | {:.0} ms | {:.2} |",
                f.label,
                ms(parquet),
                ms(sql),
                ms(sql) / ms(parquet)
            );
        }
    }
    println!("\n| one month | pushed into the statement | filtered here | pushed / here |");
    println!("|---|---:|---:|---:|");
    for f in figures {
        let [(pushed, p), (here, h)] = f.month;
        println!(
            "| {}: time | {:.1} ms | {:.1} ms | {:.3} |",
            f.label,
            ms(pushed),
            ms(here),
            ms(pushed) / ms(here)
        );
        let (p, h) = (p.unwrap_or(0), h.unwrap_or(0));
        println!(
            "| {}: rows fetched | {p} | {h} | {:.3} |",
            f.label,
            p as f64 / h.max(1) as f64
        );
    }
}

/// Ours against the fastest peer of each measure: reads against the ADBC
/// driver and connectorx, the write (less the body's own time) against
/// the ADBC driver's ingest of the same rows, alone and followed by the
/// time index our write also builds.
fn print_peers(figures: &[Figures], peers: &serde_json::Value, body: Duration) {
    println!("\n| | nuthatch | fastest peer | nuthatch / peer |");
    println!("|---|---:|---:|---:|");
    for f in figures {
        let Some(by_peer) = peers[f.label].as_object() else {
            continue;
        };
        let fastest = |measure: &str| {
            by_peer
                .iter()
                .filter_map(|(name, m)| Some((m[measure].as_f64()?, name.as_str())))
                .min_by(|a, b| a.0.total_cmp(&b.0))
        };
        let ours = [
            ("full read", "full", ms(f.full[1])),
            ("one month", "month", ms(f.month[0].0)),
            (
                "write, less the body",
                "ingest",
                ms(f.write[1].saturating_sub(body)),
            ),
            (
                "write, against an ingest and the same index",
                "indexed",
                ms(f.write[1].saturating_sub(body)),
            ),
        ];
        for (what, measure, ours) in ours {
            if let Some((theirs, name)) = fastest(measure) {
                println!(
                    "| {}: {what} | {ours:.0} ms | {theirs:.0} ms ({name}) | **{:.2}** |",
                    f.label,
                    ours / theirs
                );
            }
        }
    }
    println!("\n(the body alone: {:.0} ms)", ms(body));
}

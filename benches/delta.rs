//! Delta benchmark, as ratios measured in one run. Run with
//! `cargo bench --features delta --bench delta`.
//!
//! 1. The README grid (2920 six-hourly steps × 25 × 53, 3.87M rows) stored
//!    as Delta against Parquet: write (a miss), bytes on disk, full read,
//!    and a one-month window read, with the share of files (row groups)
//!    the window reads.
//! 2. An upsert of 1% of the rows (30 time steps) into the Delta entry
//!    against rewriting the whole entry (recompute and overwrite), and the
//!    same upsert into the Parquet entry (which rewrites its file).
//!
//! Each timing is the median of a few runs.

mod common;

use std::time::{Duration, Instant};

use common::{ms, size_under};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{col, lit};
use nuthatch::demo::{TIME_STEPS, air_schema, air_temperature};
use nuthatch::{CachedFunction, Config, Engine, ParamType, Session, Value};

/// Reads take 2-20 ms, so their medians are of more runs than the writes'.
const RUNS: usize = 21;
const MONTH: &str = "'2014-03-01', '2014-03-31T18:00:00'";
/// 30 of the 2,920 time steps: 1.03% of the rows.
const SLICE: &str = "'2014-03-01', '2014-03-08T06:00:00'";

/// The README grid, clipped by the body to the call's window (the whole
/// grid without one) with `bump` added to every value; rows identified by
/// their cell.
fn grid(name: &str, backend: &str) -> Result<CachedFunction> {
    CachedFunction::builder(name)
        .param("start_time", ParamType::Timestamp)
        .param("end_time", ParamType::Timestamp)
        .param_default("bump", ParamType::Float, Value::Float(0.0))
        .timeseries("time")
        .backend(backend)
        .upsert_keys(["time", "lat", "lon"])
        .returns(air_schema())
        .compute(|ctx, args| async move {
            let mut frame = ctx.read_batches(air_temperature(TIME_STEPS)?)?;
            let at = |t: chrono::NaiveDateTime| {
                lit(ScalarValue::TimestampNanosecond(
                    t.and_utc().timestamp_nanos_opt(),
                    None,
                ))
            };
            if let Some(start) = args.timestamp("start_time")? {
                frame = frame.filter(col("time").gt_eq(at(start)))?;
            }
            if let Some(end) = args.timestamp("end_time")? {
                frame = frame.filter(col("time").lt_eq(at(end)))?;
            }
            let bump = args.f64("bump")?;
            let frame = frame.select(vec![
                col("time"),
                col("lat"),
                col("lon"),
                (col("air") + lit(bump as f32)).alias("air"),
            ])?;
            Ok(frame)
        })
        .build()
}

async fn run(session: &Session, sql: &str) -> Result<Option<(usize, usize)>> {
    session.sql(sql).await?.collect().await?;
    let reports = session.take_reports();
    Ok(reports
        .last()
        .and_then(|r| r.files_read.or(r.row_groups_read)))
}

async fn median(
    session: &Session,
    runs: usize,
    sql: &dyn Fn(usize) -> String,
) -> Result<(Duration, Option<(usize, usize)>)> {
    let mut times = Vec::new();
    let mut parts = None;
    for i in 0..runs {
        let started = Instant::now();
        parts = run(session, &sql(i)).await?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok((times[runs / 2], parts))
}

fn row(label: &str, parquet: f64, delta: f64, digits: usize) {
    println!(
        "| {label} | {parquet:.digits$} | {delta:.digits$} | {:.2} |",
        delta / parquet
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    let engine = Engine::new(&Config::with_root(root.display().to_string()))?;
    let session = engine.session();
    session.register(grid("grid_parquet", "parquet")?)?;
    session.register(grid("grid_delta", "delta")?)?;
    let names = ["grid_parquet", "grid_delta"];

    println!("| | Parquet | Delta | Delta / Parquet |");
    println!("|---|---|---|---|");
    let mut write = Vec::new();
    for name in names {
        let miss =
            |run: usize| format!("SELECT count(*) FROM {name}(NULL, NULL, namespace => 'w{run}')");
        write.push(median(&session, 3, &miss).await?.0);
    }
    row("write (a miss, ms)", ms(write[0]), ms(write[1]), 0);
    let bytes = [
        size_under(&root.join("w0/grid_parquet/.parquet")) as f64 / 1e6,
        size_under(&root.join("w0/grid_delta/.delta")) as f64 / 1e6,
    ];
    row("bytes on disk (MB)", bytes[0], bytes[1], 1);
    let mut full = Vec::new();
    let mut month = Vec::new();
    for name in names {
        let read = |window: &'static str| {
            move |_: usize| format!("SELECT * FROM {name}({window}, namespace => 'w0')")
        };
        full.push(median(&session, RUNS, &read("NULL, NULL")).await?);
        month.push(median(&session, RUNS, &read(MONTH)).await?);
    }
    row("full read (ms)", ms(full[0].0), ms(full[1].0), 1);
    row("one-month window (ms)", ms(month[0].0), ms(month[1].0), 2);
    let share = |parts: Option<(usize, usize)>| {
        parts.map_or("-".to_string(), |(r, t)| {
            format!("{r}/{t} ({:.1}%)", 100.0 * r as f64 / t as f64)
        })
    };
    println!(
        "| parts the month reads | {} row groups | {} files | |",
        share(month[0].1),
        share(month[1].1)
    );

    // 1% of the rows upserted, against rewriting the whole entry.
    let upsert = |name: &'static str| {
        move |run: usize| {
            format!(
                "SELECT count(*) FROM {name}({SLICE}, bump => {}.0, upsert => true, namespace => 'w0')",
                run + 1
            )
        }
    };
    let rewrite = |run: usize| {
        format!(
            "SELECT count(*) FROM grid_delta(NULL, NULL, bump => {}.5, recompute => true, \
             cache_mode => 'overwrite', namespace => 'w0')",
            run
        )
    };
    let delta_upsert = median(&session, 3, &upsert("grid_delta")).await?.0;
    let delta_rewrite = median(&session, 3, &rewrite).await?.0;
    let parquet_upsert = median(&session, 3, &upsert("grid_parquet")).await?.0;
    println!("\n| 1% of the rows changed | time | against rewriting the Delta entry |");
    println!("|---|---|---|");
    println!(
        "| Delta: recompute and overwrite the entry | {:.0} ms | 1.00 |",
        ms(delta_rewrite)
    );
    println!(
        "| Delta: upsert the 1% | {:.0} ms | {:.2} |",
        ms(delta_upsert),
        ms(delta_upsert) / ms(delta_rewrite)
    );
    println!(
        "| Parquet: upsert the 1% (rewrites the file) | {:.0} ms | {:.2} |",
        ms(parquet_upsert),
        ms(parquet_upsert) / ms(delta_rewrite)
    );
    Ok(())
}

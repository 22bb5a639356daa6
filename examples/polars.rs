//! Polars over cached calls: a query as a `DataFrame` and as a `LazyFrame`
//! whose filters reach the call, a cached function whose body is Polars, and
//! Polars SQL with cached calls as table functions.
//!
//! Run it with `cargo run --example polars`. It works in a temporary folder
//! on a small grid of the README's air temperatures, so it leaves nothing
//! behind.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use chrono::NaiveDate;
use nuthatch::demo::{air_schema, air_temperature};
use nuthatch::polars::{PolarsBody, SessionPolars};
use nuthatch::{CachedFunction, Config, Engine, TierConfig};
use polars::prelude::*;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let folder = tempfile::tempdir()?;
    let mut config = Config::with_root(folder.path().join("root").display().to_string());
    config.local = TierConfig::new(folder.path().join("local").display().to_string());
    let engine = Engine::new(&config)?;
    let grid = CachedFunction::builder("grid")
        .returns(air_schema())
        .order_by(["time"])
        .compute(|_ctx, _args| async move { air_temperature(40) })
        .build()?;
    engine.register(grid)?;
    let session = engine.session();
    let polars = session.polars();

    // A query as a frame, executed now: the grid is computed and stored.
    let north = polars.frame("SELECT * FROM grid() WHERE lat > 70").await?;
    println!("-- the northern rows, a DataFrame: {:?}", north.shape());

    // A lazy frame: Polars' filter and columns go into the cached call,
    // which reads only the row groups from January 5 on.
    let jan_5 = NaiveDate::from_ymd_opt(2013, 1, 5)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let later = polars
        .lazy("SELECT * FROM grid()")
        .await?
        .filter(col("time").gt_eq(lit(jan_5)))
        .select([col("time"), col("air")])
        .collect()?;
    println!(
        "-- from January 5, a LazyFrame collected: {} rows",
        later.height()
    );

    // A cached function whose body is Polars, reading the grid through a
    // nested cached call.
    let means = Arc::new(Schema::new(vec![
        Field::new("lat", DataType::Float32, true),
        Field::new("mean_air", DataType::Float32, true),
    ]));
    let lat_means = CachedFunction::builder("lat_means")
        .returns(means)
        .compute_polars(|polars, _args| async move {
            let grid = polars.lazy("SELECT lat, air FROM grid()").await?;
            Ok(grid
                .group_by([col("lat")])
                .agg([col("air").mean().alias("mean_air")])
                .sort(["lat"], Default::default()))
        })
        .build()?;
    engine.register(lat_means)?;
    let computed = polars.frame("SELECT * FROM lat_means()").await?;
    println!(
        "-- lat_means(), a Polars body: {} latitudes",
        computed.height()
    );

    // Polars SQL: the session's cached functions are table functions, beside
    // Polars' own tables.
    let mut sql = polars.sql_context();
    let zones = df!("lat" => [75.0f32, 72.5, 15.0], "zone" => ["arctic", "arctic", "tropics"])?;
    sql.register("zones", zones.lazy());
    let joined = sql
        .execute(
            "SELECT z.zone, avg(m.mean_air) AS air \
             FROM lat_means() m JOIN zones z ON m.lat = z.lat GROUP BY z.zone ORDER BY z.zone",
        )
        .await?
        .collect()?;
    // Shown through Arrow, which formats tables in any build.
    let shown =
        arrow::util::pretty::pretty_format_batches(&nuthatch::polars::from_polars(joined)?)?;
    println!("-- Polars SQL over a cached call\n{shown}");

    for report in session.take_reports() {
        println!("nuthatch: {report}");
    }
    session.finish_writes().await;
    Ok(())
}

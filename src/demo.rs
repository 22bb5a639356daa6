//! The functions of the README: a port of the Python package's workflow.
//!
//! `my_first_cache()` returns an air-temperature grid shaped like xarray's
//! `air_temperature` tutorial data set (which cannot be downloaded here):
//! six-hourly `time` from 2013-01-01T00 to 2014-12-31T18 (2920 steps), `lat`
//! from 75.0 down to 15.0 by 2.5 (25), `lon` from 200.0 to 330.0 by 2.5 (53),
//! and `air` in kelvin. The values are deterministic: a seasonal and daily
//! cycle that depends on latitude, plus hashed noise.
//!
//! `agg_and_clip(start_time, end_time, agg_days)` is the rolling mean of
//! `air` over `agg_days` time steps per (lat, lon), null for the first
//! `agg_days - 1` steps as xarray's rolling mean is, cached by `agg_days`
//! and clipped to the requested window.

use std::sync::Arc;

use arrow::array::{Float32Array, RecordBatch, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::error::Result;

use crate::{CachedFunction, CoverageKind, ParamType, Value};

/// Six-hourly time steps over 2013 and 2014.
pub const TIME_STEPS: usize = 2920;
/// Latitudes, 75.0 down to 15.0 by 2.5.
pub const LATS: usize = 25;
/// Longitudes, 200.0 to 330.0 by 2.5.
pub const LONS: usize = 53;
const SIX_HOURS_NS: i64 = 6 * 3600 * 1_000_000_000;
/// 2013-01-01T00:00:00 in nanoseconds since the epoch.
const START_NS: i64 = 1_356_998_400 * 1_000_000_000;

/// The grid's columns: `time`, `lat`, `lon` and `air` (kelvin).
pub fn air_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            true,
        ),
        Field::new("lat", DataType::Float32, true),
        Field::new("lon", DataType::Float32, true),
        Field::new("air", DataType::Float32, true),
    ]))
}

/// The first `steps` time steps of the grid, one batch per time step group.
pub fn air_temperature(steps: usize) -> Result<Vec<RecordBatch>> {
    let schema = air_schema();
    let mut batches = Vec::new();
    let per_batch = 64;
    for first in (0..steps).step_by(per_batch) {
        let last = (first + per_batch).min(steps);
        let rows = (last - first) * LATS * LONS;
        let (mut time, mut lat, mut lon, mut air) = (
            Vec::with_capacity(rows),
            Vec::with_capacity(rows),
            Vec::with_capacity(rows),
            Vec::with_capacity(rows),
        );
        for step in first..last {
            let t = START_NS + step as i64 * SIX_HOURS_NS;
            let day_of_year = (step / 4) as f64 % 365.25;
            let hour = (step % 4) as f64 * 6.0;
            for i in 0..LATS {
                let la = 75.0 - 2.5 * i as f64;
                for j in 0..LONS {
                    let lo = 200.0 + 2.5 * j as f64;
                    let seasonal = -18.0
                        * la.to_radians().sin()
                        * (2.0 * std::f64::consts::PI * (day_of_year - 15.0) / 365.25).cos();
                    let daily = 2.5 * (2.0 * std::f64::consts::PI * (hour - 14.0) / 24.0).cos();
                    let value = 273.15 + 32.0 * la.to_radians().cos() - 8.0
                        + seasonal
                        + daily
                        + 3.0 * (3.0 * lo.to_radians()).sin()
                        + noise(step, i, j);
                    time.push(t);
                    lat.push(la as f32);
                    lon.push(lo as f32);
                    air.push(value as f32);
                }
            }
        }
        batches.push(RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(TimestampNanosecondArray::from(time)),
                Arc::new(Float32Array::from(lat)),
                Arc::new(Float32Array::from(lon)),
                Arc::new(Float32Array::from(air)),
            ],
        )?);
    }
    Ok(batches)
}

/// Deterministic noise in [-1.5, 1.5] from a hash of the grid position.
fn noise(step: usize, lat: usize, lon: usize) -> f64 {
    let mut x = (step as u64) << 32 | (lat as u64) << 16 | lon as u64;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    (x as f64 / u64::MAX as f64) * 3.0 - 1.5
}

/// `my_first_cache()`: the whole grid.
pub fn my_first_cache() -> Result<CachedFunction> {
    CachedFunction::builder("my_first_cache")
        // Kept in time order, so per-series windows over it need no sort.
        .order_by(["time"])
        .returns(air_schema())
        .compute(|_ctx, _args| async move { air_temperature(TIME_STEPS) })
        .build()
}

/// `agg_and_clip(start_time, end_time, agg_days => 7)`.
pub fn agg_and_clip() -> Result<CachedFunction> {
    CachedFunction::builder("agg_and_clip")
        .param("start_time", ParamType::Timestamp)
        .param("end_time", ParamType::Timestamp)
        .param_default("agg_days", ParamType::Int, Value::Int(7))
        .cache_args(["agg_days"])
        .version("0.1.0")
        .timeseries("time")
        // The rolling mean is computed over the whole grid and clipped.
        .coverage(CoverageKind::Full)
        .returns(air_schema())
        .compute(|ctx, args| async move {
            let days = args.i64("agg_days")?;
            if days < 1 {
                return Err(datafusion::error::DataFusionError::Execution(format!(
                    "agg_days must be at least 1, got {days}"
                )));
            }
            // `days` is an integer, so formatting it into SQL is safe.
            let window = format!(
                "PARTITION BY lat, lon ORDER BY time ROWS BETWEEN {} PRECEDING AND CURRENT ROW",
                days - 1
            );
            ctx.sql(&format!(
                "SELECT time, lat, lon, \
                        CASE WHEN count(air) OVER ({window}) = {days} \
                             THEN CAST(avg(air) OVER ({window}) AS FLOAT) END AS air \
                 FROM my_first_cache()"
            ))
            .await
        })
        .build()
}

/// Both README functions.
pub fn readme_functions() -> Result<Vec<CachedFunction>> {
    Ok(vec![my_first_cache()?, agg_and_clip()?])
}

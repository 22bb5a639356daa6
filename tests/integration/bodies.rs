//! Cached functions shared by the integration tests and by the child
//! process some of them start (`tests/child`, built as the `test_child`
//! example): the same bodies, so that a parent and its child compute
//! the same entries.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Float64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::NaiveDateTime;
use nuthatch::{CachedFunction, ParamType};

/// Hourly readings: `time`, `station`, `value`.
pub fn series_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            true,
        ),
        Field::new("station", DataType::Utf8, true),
        Field::new("value", DataType::Float64, true),
    ]))
}

/// Rows of `series_schema()` at `times` (epoch nanoseconds), of `station`,
/// each valued `value`.
pub fn series_rows(
    times: Vec<i64>,
    station: &str,
    value: f64,
) -> datafusion::error::Result<RecordBatch> {
    let n = times.len();
    Ok(RecordBatch::try_new(
        series_schema(),
        vec![
            Arc::new(TimestampNanosecondArray::from(times)),
            Arc::new(StringArray::from(vec![station; n])),
            Arc::new(Float64Array::from(vec![value; n])),
        ],
    )?)
}

/// The whole hours from `start` to `end`, both included, in epoch
/// nanoseconds.
pub fn hours(start: NaiveDateTime, end: NaiveDateTime) -> Vec<i64> {
    let hour = 3_600_000_000_000_i64;
    let nanos = |at: NaiveDateTime| at.and_utc().timestamp_nanos_opt().unwrap();
    let first = nanos(start).div_euclid(hour) + i64::from(nanos(start).rem_euclid(hour) != 0);
    (first..=nanos(end).div_euclid(hour))
        .map(|h| h * hour)
        .collect()
}

/// `slow(start_time, end_time)`: hourly rows of its window (value 1), after
/// a pause of `pause_ms`; when `endless`, rows from the start on, one
/// batch at a time, until the process is killed.
pub fn slow(pause_ms: u64, endless: bool) -> CachedFunction {
    CachedFunction::builder("slow")
        .param("start_time", ParamType::Timestamp)
        .param("end_time", ParamType::Timestamp)
        .timeseries("time")
        .returns(series_schema())
        .compute(move |_ctx, args| async move {
            tokio::time::sleep(std::time::Duration::from_millis(pause_ms)).await;
            let start = args.timestamp("start_time")?.expect("a start");
            let end = args.timestamp("end_time")?.expect("an end");
            let times = hours(start, end);
            if !endless {
                return Ok(nuthatch::Computed::Batches(vec![series_rows(
                    times, "s", 1.0,
                )?]));
            }
            let first = times[0];
            let batches = futures::stream::unfold(first, move |at| async move {
                if at > first {
                    println!("streaming");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Some((series_rows(vec![at], "s", 1.0), at + 3_600_000_000_000))
            });
            let stream = datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                series_schema(),
                batches,
            );
            Ok(nuthatch::Computed::Stream(Box::pin(stream)))
        })
        .build()
        .unwrap()
}

/// `endless()`, whose body, when `forever`, streams batches until it is
/// stopped; otherwise 100,000 rows. Not a timeseries: a timeseries result
/// is sorted before it is written, which never ends for an endless one.
pub fn endless(forever: bool) -> CachedFunction {
    let schema = series_schema();
    let returned = Arc::clone(&schema);
    CachedFunction::builder("endless")
        .backend("delta")
        .returns(schema)
        .compute(move |_ctx, _args| {
            let schema = Arc::clone(&returned);
            async move {
                let batches = futures::stream::unfold(0i64, move |i| {
                    let schema = Arc::clone(&schema);
                    async move {
                        if !forever && i >= 10 {
                            return None;
                        }
                        if forever && i > 50 {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        if forever && i > 3_000 {
                            // Never killed (the parent failed): fail the
                            // write rather than run on.
                            let stop = datafusion::error::DataFusionError::Execution(
                                "the child was not killed".into(),
                            );
                            return Some((Err(stop), i + 1));
                        }
                        let n = 10_000i64;
                        let times: Vec<i64> =
                            (i * n..(i + 1) * n).map(|t| t * 1_000_000_000).collect();
                        let values: Vec<f64> = (0..n)
                            .map(|v| ((v * 7919 + i) % 10007) as f64 / 3.0)
                            .collect();
                        let batch = RecordBatch::try_new(
                            schema,
                            vec![
                                Arc::new(TimestampNanosecondArray::from(times)),
                                Arc::new(StringArray::from(vec!["x"; n as usize])),
                                Arc::new(Float64Array::from(values)),
                            ],
                        );
                        Some((batch.map_err(Into::into), i + 1))
                    }
                });
                let stream = datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                    series_schema(),
                    batches,
                );
                Ok(nuthatch::Computed::Stream(Box::pin(stream)))
            }
        })
        .build()
        .unwrap()
}

/// `name(n, depth)` keyed by `n` alone: its body waits `pause_ms`, then
/// calls `other(n, depth - 1)` while `depth` is above zero. Called
/// one after the other, `ping(1, 1)` and `pong(1, 1)` are fine; at once,
/// each body waits for the entry the other leads.
pub fn ping_pong(name: &'static str, other: &'static str, pause_ms: u64) -> CachedFunction {
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
    CachedFunction::builder(name)
        .param("n", ParamType::Int)
        .param("depth", ParamType::Int)
        .cache_args(["n"])
        .returns(schema)
        .compute(move |ctx, args| async move {
            tokio::time::sleep(Duration::from_millis(pause_ms)).await;
            let n = args.i64("n")?;
            let depth = args.i64("depth")?;
            match depth {
                0 => ctx.sql(&format!("SELECT CAST({n} AS BIGINT) AS n")).await,
                _ => {
                    let sql = format!("SELECT n FROM {other}({n}, {})", depth - 1);
                    ctx.sql(&sql).await
                }
            }
        })
        .build()
        .unwrap()
}

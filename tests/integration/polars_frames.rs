//! Polars: bodies written in Polars, results as Polars frames, Polars SQL
//! over cached calls, and the types that cross between Arrow and Polars.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, DictionaryArray,
    DurationMicrosecondArray, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array,
    Int64Array, IntervalDayTimeArray, LargeListArray, LargeStringArray, ListArray, RecordBatch,
    StringArray, StringViewArray, StructArray, Time64NanosecondArray, TimestampMillisecondArray,
    TimestampNanosecondArray, TimestampSecondArray, UInt8Array, UInt16Array, UInt32Array,
    UInt64Array,
};
use arrow::datatypes::{DataType, Field, Int32Type, IntervalDayTime, Schema, TimeUnit};
use nuthatch::polars::{PolarsBody, PolarsComputed, SessionPolars, from_polars, to_polars};
use nuthatch::{CachedFunction, CoverageKind, Outcome, ParamType};
use polars::prelude::{DataType as PlType, IntoLazy, TimeUnit as PlTimeUnit, col, lit};

use crate::support::{Fixture, assert_outcome};

/// Rows of `ticks()`: a minute apart from 2020-01-01, enough for several
/// row groups.
const TICKS: i64 = 400_000;

fn ticks() -> CachedFunction {
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            true,
        ),
        Field::new("value", DataType::Int64, true),
    ]));
    let returns = Arc::clone(&schema);
    CachedFunction::builder("ticks")
        .timeseries("time")
        .coverage(CoverageKind::Full)
        .param("start_time", ParamType::Timestamp)
        .param("end_time", ParamType::Timestamp)
        .returns(schema)
        .compute(move |_ctx, _args| {
            let schema = Arc::clone(&returns);
            async move {
                let start = 1_577_836_800_000_000_000_i64;
                let minute = 60_000_000_000_i64;
                let times: Vec<i64> = (0..TICKS).map(|i| start + i * minute).collect();
                let batch = RecordBatch::try_new(
                    schema,
                    vec![
                        Arc::new(TimestampNanosecondArray::from(times)),
                        Arc::new(Int64Array::from_iter_values(0..TICKS)),
                    ],
                )?;
                Ok(vec![batch])
            }
        })
        .build()
        .unwrap()
}

/// Daily means of a station's series, computed in Polars from the cached
/// `series` call.
fn daily() -> CachedFunction {
    let schema = Arc::new(Schema::new(vec![
        Field::new("station", DataType::Utf8, true),
        Field::new("hours", DataType::Int64, true),
        Field::new("mean", DataType::Float64, true),
    ]));
    CachedFunction::builder("daily")
        .param("station", ParamType::String)
        .cache_args(["station"])
        .returns(schema)
        .compute_polars(|polars, args| async move {
            let station = args.str("station")?.to_string();
            let series = polars
                .lazy(&format!(
                    "SELECT * FROM series(NULL, NULL, station => '{station}')"
                ))
                .await?;
            Ok(series
                .filter(col("value").lt(lit(48.0)))
                .group_by([col("station")])
                .agg([
                    col("value").count().cast(PlType::Int64).alias("hours"),
                    col("value").mean().alias("mean"),
                ]))
        })
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polars_body_is_stored_and_read_back_as_a_hit() {
    let f = Fixture::new();
    f.nuthatch.register(daily()).unwrap();
    let query = "SELECT station, hours, mean FROM daily('west')";
    for outcome in [Outcome::Computed, Outcome::Hit] {
        let batches = f.query(query).await.unwrap();
        let frame = to_polars(&batches[0].schema(), &batches).unwrap();
        assert_eq!(frame.height(), 1);
        let hours = frame.column("hours").unwrap().i64().unwrap().get(0);
        let mean = frame.column("mean").unwrap().f64().unwrap().get(0);
        // Values 0..47 are the first 48 hours.
        assert_eq!((hours, mean), (Some(48), Some(23.5)));
        let reports = f.reports();
        let daily = reports.iter().find(|r| r.function == "daily").unwrap();
        assert_outcome(daily, outcome);
    }
    assert_eq!(f.computes(), 1, "the nested series call computed once");

    // A body that builds its frame in Polars and returns it lazily is
    // collected by Polars' streaming engine.
    let doubled = CachedFunction::builder("doubled")
        .param("n", ParamType::Int)
        .cache_args(["n"])
        .returns(Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int64, true),
            Field::new("twice", DataType::Int64, true),
        ])))
        .compute_polars(|_polars, args| async move {
            let n = args.i64("n")?;
            let frame = polars::df!("i" => (0..n).collect::<Vec<i64>>()).unwrap();
            Ok(frame.lazy().with_column((col("i") * lit(2)).alias("twice")))
        })
        .build()
        .unwrap();
    f.nuthatch.register(doubled).unwrap();
    assert_eq!(
        f.int("SELECT sum(twice) FROM doubled(n => 1000)").await,
        999_000
    );
    assert_outcome(&f.report(), Outcome::Computed);

    // A body may return nothing, stored as Python stores None.
    let nothing = CachedFunction::builder("nothing")
        .returns(Arc::new(Schema::new(vec![Field::new(
            "x",
            DataType::Int64,
            true,
        )])))
        .compute_polars(|_polars, _args| async move { Ok(PolarsComputed::Null) })
        .build()
        .unwrap();
    f.nuthatch.register(nothing).unwrap();
    assert_eq!(f.int("SELECT count(*) FROM nothing()").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_scan_pushes_its_filter_into_the_entry() {
    let f = Fixture::new();
    f.nuthatch.register(ticks()).unwrap();
    let polars = f.nuthatch.polars();

    // The whole entry, as a frame: computed (and served as it is stored),
    // then read whole, every row group.
    let mut reports = Vec::new();
    for _ in 0..2 {
        let all = polars
            .frame("SELECT * FROM ticks(NULL, NULL)")
            .await
            .unwrap();
        assert_eq!(all.height(), TICKS as usize);
        reports.push(f.report());
    }
    assert_outcome(&reports[0], Outcome::Computed);
    let full = reports.pop().unwrap();
    assert_outcome(&full, Outcome::Hit);
    let (_, total) = full.row_groups_read.unwrap();
    assert!(total >= 4, "{full}");

    // A filter on time in Polars reaches the stored row groups.
    let day = chrono::NaiveDate::from_ymd_opt(2020, 3, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let lazy = polars
        .lazy("SELECT * FROM ticks(NULL, NULL)")
        .await
        .unwrap();
    let march = lazy
        .filter(col("time").gt_eq(lit(day)))
        .filter(col("time").lt(lit(day + chrono::Duration::days(1))))
        .select([col("value")])
        .collect()
        .unwrap();
    assert_eq!(march.height(), 24 * 60);
    assert_eq!(march.width(), 1, "only the selected column");
    let first = march
        .column("value")
        .unwrap()
        .i64()
        .unwrap()
        .get(0)
        .unwrap();
    assert_eq!(first, 60 * 24 * 60, "March 1 is day 60");
    let report = f.report();
    assert_outcome(&report, Outcome::Hit);
    let (read, of) = report.row_groups_read.unwrap();
    assert_eq!(of, total);
    assert!(read < total, "the filter pruned row groups: {report}");
    assert!(
        report.rows * 10 < TICKS as usize,
        "little more than the day left the scan: {report}"
    );

    // What cannot be pushed is still applied, by Polars.
    let lazy = polars
        .lazy("SELECT * FROM ticks(NULL, NULL)")
        .await
        .unwrap();
    let even = lazy
        .filter((col("value") % lit(2_i64)).eq(lit(0_i64)))
        .filter(col("value").lt(lit(10_i64)))
        .collect()
        .unwrap();
    assert_eq!(even.height(), 5);

    // A session's functions are callable from a LazyFrame made before a
    // query ran; a broken query is an error when planned, not collected.
    let error = polars
        .lazy("SELECT * FROM ticks(NULL, NULL, nope => 1)")
        .await
        .err()
        .expect("an unknown argument is refused");
    assert!(error.to_string().contains("nope"), "{error}");
}

/// A week of `ticks()` (from March 1, 2020), without the values that are
/// multiples of three, counted by `value % 2000`: more groups than Polars'
/// in-memory engine aggregates in parallel.
fn week_slots() -> CachedFunction {
    CachedFunction::builder("week_slots")
        .returns(Arc::new(Schema::new(vec![
            Field::new("slot", DataType::Int64, true),
            Field::new("n", DataType::Int64, true),
        ])))
        .compute_polars(|polars, _args| async move {
            let day = chrono::NaiveDate::from_ymd_opt(2020, 3, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap();
            let ticks = polars.lazy("SELECT * FROM ticks(NULL, NULL)").await?;
            Ok(ticks
                .filter(col("time").gt_eq(lit(day)))
                .filter(col("time").lt(lit(day + chrono::Duration::days(7))))
                .filter((col("value") % lit(3_i64)).neq(lit(0_i64)))
                .group_by([(col("value") % lit(2000_i64)).alias("slot")])
                .agg([col("value").count().cast(PlType::Int64).alias("n")]))
        })
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polars_body_reads_only_what_its_plan_uses() {
    let f = Fixture::new();
    f.nuthatch.register(ticks()).unwrap();
    f.nuthatch.register(week_slots()).unwrap();
    let stored = f.int("SELECT count(*) FROM ticks(NULL, NULL)").await;
    assert_eq!(stored, TICKS);
    f.reports();

    let slots = f
        .query("SELECT count(*), sum(n), max(n) FROM week_slots()")
        .await
        .unwrap();
    let first = 60 * 24 * 60;
    let mut per_slot = std::collections::BTreeMap::<i64, i64>::new();
    for value in (first..first + 7 * 24 * 60).filter(|v| v % 3 != 0) {
        *per_slot.entry(value % 2000).or_default() += 1;
    }
    let column = |i: usize| {
        slots[0]
            .column(i)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0)
    };
    assert_eq!(column(0), per_slot.len() as i64);
    assert_eq!(column(1), per_slot.values().sum::<i64>());
    assert_eq!(column(2), *per_slot.values().max().unwrap());

    // The body's scan of ticks() read the week, not the entry: the filters
    // Polars pushed into it reached the stored row groups.
    let reports = f.reports();
    let scan = reports.iter().find(|r| r.function == "ticks").unwrap();
    assert_outcome(scan, Outcome::Hit);
    let (read, of) = scan.row_groups_read.unwrap();
    assert!(of >= 4, "the entry has several row groups: {scan}");
    assert!(read < of, "the week pruned row groups: {scan}");
    assert!(scan.rows * 10 < TICKS as usize, "{scan}");
    let body = reports.iter().find(|r| r.function == "week_slots").unwrap();
    assert_outcome(body, Outcome::Computed);
    let scans = reports.iter().filter(|r| r.function == "ticks").count();
    assert_eq!(scans, 1, "the body's plan ran its scan once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polars_sql_joins_two_cached_calls() {
    let f = Fixture::new();
    let mut sql = f.nuthatch.polars().sql_context();
    let joined = sql
        .execute(
            "SELECT n.time, n.value, w.value AS doubled \
             FROM series('2020-01-01', '2020-01-02', station => 'north') AS n \
             JOIN SERIES('2020-01-01', '2020-01-02', station => 'west', scale => 2.0) AS w \
               ON n.time = w.time \
             WHERE n.value >= 10 ORDER BY n.time",
        )
        .await
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(joined.height(), 48 - 10);
    let value = joined.column("value").unwrap().f64().unwrap();
    let doubled = joined.column("doubled").unwrap().f64().unwrap();
    assert_eq!(value.get(0), Some(10.0));
    for i in 0..joined.height() {
        assert_eq!(doubled.get(i), value.get(i).map(|v| v * 2.0));
    }
    let mut keys: Vec<String> = f.reports().into_iter().map(|r| r.key).collect();
    keys.sort();
    assert_eq!(keys, ["series/1.0_north", "series/2.0_west"]);

    // Polars' own tables sit beside cached calls.
    let names = polars::df!("station" => ["north"], "label" => ["N"]).unwrap();
    sql.register("labels", names.lazy());
    let labelled = sql
        .execute(
            "SELECT label, count(*) AS n FROM series('2020-01-01', '2020-01-01') s \
             JOIN labels USING (station) GROUP BY label",
        )
        .await
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(
        labelled.column("n").unwrap().u32().unwrap().get(0),
        Some(24)
    );

    let error = sql
        .execute("SELECT * FROM series('2020-01-01', '2020-01-01', statoin => 'x')")
        .await
        .err()
        .expect("a misspelt argument is refused");
    assert!(error.to_string().contains("statoin"), "{error}");
}

/// A batch of every type that crosses, and what Polars holds each as.
fn every_type() -> (RecordBatch, Vec<PlType>) {
    let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
        Some(vec![Some(1), None]),
        None,
        Some(vec![]),
    ]);
    let large_list = LargeListArray::from_iter_primitive::<Int32Type, _, _>(vec![
        Some(vec![Some(7)]),
        Some(vec![]),
        None,
    ]);
    let point = StructArray::from(vec![
        (
            Arc::new(Field::new("x", DataType::Float64, true)),
            Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0])) as ArrayRef,
        ),
        (
            Arc::new(Field::new("label", DataType::Utf8, true)),
            Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])) as ArrayRef,
        ),
    ]);
    let columns: Vec<(&str, ArrayRef, PlType)> = vec![
        (
            "bool",
            Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
            PlType::Boolean,
        ),
        (
            "i8",
            Arc::new(Int8Array::from(vec![-1, 0, 1])),
            PlType::Int8,
        ),
        (
            "i16",
            Arc::new(Int16Array::from(vec![-1, 0, 1])),
            PlType::Int16,
        ),
        (
            "i32",
            Arc::new(Int32Array::from(vec![Some(-1), None, Some(1)])),
            PlType::Int32,
        ),
        (
            "i64",
            Arc::new(Int64Array::from(vec![i64::MIN, 0, i64::MAX])),
            PlType::Int64,
        ),
        (
            "u8",
            Arc::new(UInt8Array::from(vec![0, 1, 255])),
            PlType::UInt8,
        ),
        (
            "u16",
            Arc::new(UInt16Array::from(vec![0, 1, 65535])),
            PlType::UInt16,
        ),
        (
            "u32",
            Arc::new(UInt32Array::from(vec![0, 1, u32::MAX])),
            PlType::UInt32,
        ),
        (
            "u64",
            Arc::new(UInt64Array::from(vec![0, 1, u64::MAX])),
            PlType::UInt64,
        ),
        (
            "f32",
            Arc::new(Float32Array::from(vec![f32::NAN, -0.5, 1e30])),
            PlType::Float32,
        ),
        (
            "f64",
            Arc::new(Float64Array::from(vec![Some(f64::NAN), None, Some(2.5)])),
            PlType::Float64,
        ),
        (
            "utf8",
            Arc::new(StringArray::from(vec![Some("α"), None, Some("")])),
            PlType::String,
        ),
        (
            "large_utf8",
            Arc::new(LargeStringArray::from(vec!["a", "b", "c"])),
            PlType::String,
        ),
        (
            "view",
            Arc::new(StringViewArray::from(vec![
                "a string longer than twelve bytes",
                "b",
                "c",
            ])),
            PlType::String,
        ),
        (
            "binary",
            Arc::new(BinaryArray::from(vec![&b"\x00\x01"[..], b"", b"z"])),
            PlType::Binary,
        ),
        (
            "date",
            Arc::new(Date32Array::from(vec![Some(0), None, Some(19_000)])),
            PlType::Date,
        ),
        (
            "ts_ns",
            Arc::new(TimestampNanosecondArray::from(vec![
                Some(1),
                None,
                Some(-1),
            ])),
            PlType::Datetime(PlTimeUnit::Nanoseconds, None),
        ),
        (
            "ts_utc",
            Arc::new(TimestampMillisecondArray::from(vec![0, 1, 2]).with_timezone("+00:00")),
            PlType::Datetime(
                PlTimeUnit::Milliseconds,
                polars::prelude::TimeZone::opt_try_new(Some("UTC")).unwrap(),
            ),
        ),
        (
            "ts_paris",
            Arc::new(TimestampMillisecondArray::from(vec![0, 1, 2]).with_timezone("Europe/Paris")),
            PlType::Datetime(
                PlTimeUnit::Milliseconds,
                polars::prelude::TimeZone::opt_try_new(Some("Europe/Paris")).unwrap(),
            ),
        ),
        (
            "ts_s",
            Arc::new(TimestampSecondArray::from(vec![0, 1, 2])),
            PlType::Datetime(PlTimeUnit::Milliseconds, None),
        ),
        (
            "duration",
            Arc::new(DurationMicrosecondArray::from(vec![0, -5, 5])),
            PlType::Duration(PlTimeUnit::Microseconds),
        ),
        (
            "time",
            Arc::new(Time64NanosecondArray::from(vec![
                0,
                1_000,
                86_399_999_999_999,
            ])),
            PlType::Time,
        ),
        (
            "decimal",
            Arc::new(
                Decimal128Array::from(vec![Some(12_345), None, Some(-1)])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
            PlType::Decimal(10, 2),
        ),
        (
            "list",
            Arc::new(list),
            PlType::List(Box::new(PlType::Int32)),
        ),
        (
            "large_list",
            Arc::new(large_list),
            PlType::List(Box::new(PlType::Int32)),
        ),
        (
            "struct",
            Arc::new(point),
            PlType::Struct(vec![
                polars::prelude::Field::new("x".into(), PlType::Float64),
                polars::prelude::Field::new("label".into(), PlType::String),
            ]),
        ),
        (
            "dictionary",
            Arc::new(
                vec![Some("low"), None, Some("low")]
                    .into_iter()
                    .collect::<DictionaryArray<Int32Type>>(),
            ),
            PlType::String,
        ),
        (
            "null",
            Arc::new(arrow::array::NullArray::new(3)),
            PlType::Null,
        ),
    ];
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, array, _)| Field::new(*name, array.data_type().clone(), true))
        .collect();
    let arrays = columns.iter().map(|(_, a, _)| Arc::clone(a)).collect();
    let types = columns.into_iter().map(|(_, _, t)| t).collect();
    (
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap(),
        types,
    )
}

#[test]
fn every_supported_type_crosses_both_ways() {
    let (batch, types) = every_type();
    let schema = batch.schema();
    // Two batches: each column becomes one Series of two chunks.
    let frame = to_polars(&schema, &[batch.clone(), batch.clone()]).unwrap();
    assert_eq!(frame.height(), 6);
    for (field, expected) in schema.fields().iter().zip(&types) {
        let column = frame.column(field.name()).unwrap();
        assert_eq!(column.dtype(), expected, "{}", field.name());
    }

    let back = from_polars(frame).unwrap();
    assert_eq!(back.iter().map(|b| b.num_rows()).sum::<usize>(), 6);
    let back = arrow::compute::concat_batches(&back[0].schema(), &back).unwrap();
    for (i, field) in schema.fields().iter().enumerate() {
        let original = batch.column(i);
        let returned = back.column(i).slice(0, 3);
        // Polars names the UTC offset by its zone name.
        if let (DataType::Timestamp(_, Some(sent)), DataType::Timestamp(_, Some(came))) =
            (field.data_type(), returned.data_type())
        {
            let renamed = if sent.as_ref() == "+00:00" {
                "UTC"
            } else {
                sent.as_ref()
            };
            assert_eq!(came.as_ref(), renamed, "{}", field.name());
        }
        // Polars holds some types its own way; compare in the original's.
        let returned = match field.data_type() {
            DataType::Timestamp(TimeUnit::Second, _) => {
                arrow::compute::cast(&returned, &DataType::Timestamp(TimeUnit::Millisecond, None))
                    .unwrap()
            }
            _ => arrow::compute::cast(&returned, field.data_type()).unwrap(),
        };
        let expected = match field.data_type() {
            DataType::Timestamp(TimeUnit::Second, _) => {
                arrow::compute::cast(original, &DataType::Timestamp(TimeUnit::Millisecond, None))
                    .unwrap()
            }
            _ => Arc::clone(original),
        };
        assert!(
            expected.to_data() == returned.to_data(),
            "column {}: {expected:?} came back as {returned:?}",
            field.name()
        );
    }
}

#[test]
fn numbers_cross_without_a_copy() {
    let values = Float64Array::from_iter_values((0..100_000).map(|i| i as f64));
    let address = values.values().as_ptr();
    let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Float64, false)]));
    let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(values)]).unwrap();
    let frame = to_polars(&schema, &[batch]).unwrap();
    let held = frame.column("v").unwrap().f64().unwrap();
    assert_eq!(
        held.cont_slice().unwrap().as_ptr(),
        address,
        "Arrow to Polars"
    );
    let back = from_polars(frame).unwrap();
    let back = back[0]
        .column(0)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    assert_eq!(back.values().as_ptr(), address, "and back to Arrow");
}

#[test]
fn what_polars_cannot_hold_is_refused_by_name() {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "gap",
        DataType::Interval(arrow::datatypes::IntervalUnit::DayTime),
        true,
    )]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(IntervalDayTimeArray::from(vec![
            IntervalDayTime::new(1, 0),
        ]))],
    )
    .unwrap();
    let error = to_polars(&schema, &[batch]).unwrap_err().to_string();
    assert!(
        error.contains("column 'gap'") && error.contains("CAST(gap AS"),
        "{error}"
    );

    let schema = Arc::new(Schema::new(vec![
        Field::new("v", DataType::Int64, true),
        Field::new("v", DataType::Int64, true),
    ]));
    let error = to_polars(&schema, &[]).unwrap_err().to_string();
    assert!(
        error.contains("'v' appears twice") && error.contains("AS"),
        "{error}"
    );
}

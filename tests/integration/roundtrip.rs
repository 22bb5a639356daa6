//! The round-trip property: a generated result (every type a backend
//! stores, nulls, NaN, infinities, -0.0, extreme numbers, dates and times,
//! quotes, unicode, very long text, empty and one-row results) is cached
//! through each backend; the miss and the hit return exactly the body's
//! rows, or the changes the backend documents, each of them reported on
//! the call; and so does the same query read as a Polars frame. (The
//! Flight SQL server's side is `adbc_client.py`'s `roundtrip` scenario.)
//!
//! The expected changes are written out here, apart from the code that
//! counts them, so that the two check each other. Cases per backend:
//! `NUTHATCH_TEST_ROUNDTRIP_CASES` (16 by default; docs/backends.md gives a longer
//! run). A case that ever failed is kept in `roundtrip.regressions` and is
//! run first every time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Date64Array, Float32Array, Float64Array,
    Int8Array, Int16Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, TimestampNanosecondArray, UInt8Array, UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use nuthatch::polars::SessionPolars;
use nuthatch::{CachedFunction, Outcome};
use proptest::prelude::*;
use proptest::test_runner::{Config as Runner, FileFailurePersistence, TestCaseError, TestRunner};

use crate::support::Fixture;

/// The column types generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int8,
    Int16,
    Int32,
    Int64,
    UInt8,
    UInt32,
    UInt64,
    Float32,
    Float64,
    Text,
    Binary,
    Date,
    DateMs,
    TimeNs,
    TimeUtcUs,
}

const ALL: [Kind; 16] = [
    Kind::Bool,
    Kind::Int8,
    Kind::Int16,
    Kind::Int32,
    Kind::Int64,
    Kind::UInt8,
    Kind::UInt32,
    Kind::UInt64,
    Kind::Float32,
    Kind::Float64,
    Kind::Text,
    Kind::Binary,
    Kind::Date,
    Kind::DateMs,
    Kind::TimeNs,
    Kind::TimeUtcUs,
];

/// Zarr stores numbers, booleans and timestamps.
const GRID: [Kind; 12] = [
    Kind::Bool,
    Kind::Int8,
    Kind::Int16,
    Kind::Int32,
    Kind::Int64,
    Kind::UInt8,
    Kind::UInt32,
    Kind::UInt64,
    Kind::Float32,
    Kind::Float64,
    Kind::TimeNs,
    Kind::TimeUtcUs,
];

/// One generated column's values.
#[derive(Debug, Clone)]
enum Values {
    Bool(Vec<Option<bool>>),
    Int8(Vec<Option<i8>>),
    Int16(Vec<Option<i16>>),
    Int32(Vec<Option<i32>>),
    Int64(Vec<Option<i64>>),
    UInt8(Vec<Option<u8>>),
    UInt32(Vec<Option<u32>>),
    UInt64(Vec<Option<u64>>),
    Float32(Vec<Option<f32>>),
    Float64(Vec<Option<f64>>),
    Text(Vec<Option<String>>),
    Binary(Vec<Option<Vec<u8>>>),
    Date(Vec<Option<i32>>),
    DateMs(Vec<Option<i64>>),
    TimeNs(Vec<Option<i64>>),
    TimeUtcUs(Vec<Option<i64>>),
}

fn cells<T: std::fmt::Debug + Clone + 'static>(
    value: impl Strategy<Value = T> + 'static,
    rows: usize,
) -> impl Strategy<Value = Vec<Option<T>>> {
    proptest::collection::vec(proptest::option::weighted(0.85, value), rows)
}

fn f64s() -> impl Strategy<Value = f64> {
    use proptest::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(f64::MAX),
        Just(f64::MIN),
        Just(1e308),
        Just(f64::MIN_POSITIVE),
        POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO,
    ]
}

fn texts() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("it's \"quoted\", a;b=c \\ back".to_string()),
        Just("ünïcødé 🦀 日本語 Ωμέγα".to_string()),
        Just("long ".repeat(4_000)),
        "\\PC{0,24}",
    ]
}

/// Days from 0001-01-01 to 9999-12-31.
const FIRST_DAY: i32 = -719_162;
const LAST_DAY: i32 = 2_932_896;

fn values(kind: Kind, rows: usize) -> BoxedStrategy<Values> {
    let micros = (FIRST_DAY as i64) * 86_400_000_000..(LAST_DAY as i64 + 1) * 86_400_000_000;
    match kind {
        Kind::Bool => cells(any::<bool>(), rows).prop_map(Values::Bool).boxed(),
        Kind::Int8 => cells(prop_oneof![Just(i8::MIN), Just(i8::MAX), any::<i8>()], rows)
            .prop_map(Values::Int8)
            .boxed(),
        Kind::UInt8 => cells(prop_oneof![Just(0), Just(u8::MAX), any::<u8>()], rows)
            .prop_map(Values::UInt8)
            .boxed(),
        Kind::UInt64 => cells(
            prop_oneof![
                Just(0),
                Just(u64::MAX),
                Just(i64::MAX as u64),
                any::<u64>(),
                0..=i64::MAX as u64
            ],
            rows,
        )
        .prop_map(Values::UInt64)
        .boxed(),
        Kind::Binary => cells(
            prop_oneof![
                Just(Vec::new()),
                Just(vec![0u8; 3]),
                proptest::collection::vec(any::<u8>(), 0..40)
            ],
            rows,
        )
        .prop_map(Values::Binary)
        .boxed(),
        Kind::DateMs => {
            let day = 86_400_000_i64;
            let midnights = (FIRST_DAY as i64..=LAST_DAY as i64).prop_map(move |d| d * day);
            let any_time = FIRST_DAY as i64 * day..(LAST_DAY as i64 + 1) * day;
            cells(
                prop_oneof![10 => midnights, 10 => any_time, 1 => any::<i64>()],
                rows,
            )
            .prop_map(Values::DateMs)
            .boxed()
        }
        Kind::Int16 => cells(
            prop_oneof![Just(i16::MIN), Just(i16::MAX), any::<i16>()],
            rows,
        )
        .prop_map(Values::Int16)
        .boxed(),
        Kind::Int32 => cells(
            prop_oneof![Just(i32::MIN), Just(i32::MAX), any::<i32>()],
            rows,
        )
        .prop_map(Values::Int32)
        .boxed(),
        Kind::Int64 => cells(
            prop_oneof![Just(i64::MIN), Just(i64::MAX), any::<i64>()],
            rows,
        )
        .prop_map(Values::Int64)
        .boxed(),
        Kind::UInt32 => cells(prop_oneof![Just(0), Just(u32::MAX), any::<u32>()], rows)
            .prop_map(Values::UInt32)
            .boxed(),
        Kind::Float32 => cells(f64s().prop_map(|v| v as f32), rows)
            .prop_map(Values::Float32)
            .boxed(),
        Kind::Float64 => cells(f64s(), rows).prop_map(Values::Float64).boxed(),
        Kind::Text => cells(texts(), rows).prop_map(Values::Text).boxed(),
        Kind::Date => cells(
            prop_oneof![
                20 => prop_oneof![Just(FIRST_DAY), Just(LAST_DAY), FIRST_DAY..=LAST_DAY],
                1 => prop_oneof![Just(i32::MIN), Just(i32::MAX), any::<i32>()],
            ],
            rows,
        )
        .prop_map(Values::Date)
        .boxed(),
        Kind::TimeNs => cells(prop_oneof![Just(-1), Just(1), any::<i64>()], rows)
            .prop_map(Values::TimeNs)
            .boxed(),
        Kind::TimeUtcUs => cells(
            prop_oneof![
                20 => prop_oneof![Just(-1), micros],
                1 => prop_oneof![Just(i64::MAX), Just(i64::MIN + 1), any::<i64>()],
            ],
            rows,
        )
        .prop_map(Values::TimeUtcUs)
        .boxed(),
    }
}

/// A generated result: its columns after `id`, which numbers the rows.
fn results(kinds: &'static [Kind]) -> impl Strategy<Value = Vec<Values>> {
    let rows = prop_oneof![Just(0usize), Just(1usize), 2usize..12];
    (
        rows,
        proptest::collection::vec(proptest::sample::select(kinds), 1..10),
    )
        .prop_flat_map(|(rows, kinds)| {
            kinds
                .into_iter()
                .map(|kind| values(kind, rows))
                .collect::<Vec<_>>()
        })
}

impl Values {
    fn len(&self) -> usize {
        match self {
            Values::Bool(v) => v.len(),
            Values::Int8(v) => v.len(),
            Values::UInt8(v) => v.len(),
            Values::UInt64(v) => v.len(),
            Values::Binary(v) => v.len(),
            Values::Int16(v) => v.len(),
            Values::Int32(v) => v.len(),
            Values::Int64(v) | Values::TimeNs(v) | Values::TimeUtcUs(v) | Values::DateMs(v) => {
                v.len()
            }
            Values::UInt32(v) => v.len(),
            Values::Float32(v) => v.len(),
            Values::Float64(v) => v.len(),
            Values::Text(v) => v.len(),
            Values::Date(v) => v.len(),
        }
    }

    fn array(&self) -> ArrayRef {
        match self {
            Values::Bool(v) => Arc::new(BooleanArray::from(v.clone())),
            Values::Int8(v) => Arc::new(Int8Array::from(v.clone())),
            Values::UInt8(v) => Arc::new(UInt8Array::from(v.clone())),
            Values::UInt64(v) => Arc::new(UInt64Array::from(v.clone())),
            Values::Binary(v) => Arc::new(BinaryArray::from_iter(v.iter().map(|b| b.as_deref()))),
            Values::DateMs(v) => Arc::new(Date64Array::from(v.clone())),
            Values::Int16(v) => Arc::new(Int16Array::from(v.clone())),
            Values::Int32(v) => Arc::new(Int32Array::from(v.clone())),
            Values::Int64(v) => Arc::new(Int64Array::from(v.clone())),
            Values::UInt32(v) => Arc::new(UInt32Array::from(v.clone())),
            Values::Float32(v) => Arc::new(Float32Array::from(v.clone())),
            Values::Float64(v) => Arc::new(Float64Array::from(v.clone())),
            Values::Text(v) => Arc::new(StringArray::from(v.clone())),
            Values::Date(v) => Arc::new(Date32Array::from(v.clone())),
            Values::TimeNs(v) => Arc::new(TimestampNanosecondArray::from(v.clone())),
            Values::TimeUtcUs(v) => {
                Arc::new(TimestampMicrosecondArray::from(v.clone()).with_timezone("UTC"))
            }
        }
    }

    /// Dates and times outside the years 1 to 9999.
    fn beyond_years(&self) -> usize {
        let day = 86_400_000_000_i64;
        let outside = |d: i64| !(FIRST_DAY as i64..=LAST_DAY as i64).contains(&d);
        match self {
            Values::Date(v) => v.iter().flatten().filter(|d| outside(**d as i64)).count(),
            Values::TimeUtcUs(v) => (v.iter().flatten())
                .filter(|us| outside(us.div_euclid(day)))
                .count(),
            Values::DateMs(v) => (v.iter().flatten())
                .filter(|ms| outside(ms.div_euclid(86_400_000)))
                .count(),
            _ => 0,
        }
    }

    /// The values as `backend` documents storing them, and what it says
    /// it changed: (description, values changed).
    fn stored(&self, backend: &str) -> (Values, Vec<(&'static str, usize)>) {
        let mut said = Vec::new();
        let mut note = |what: &'static str, n: usize| {
            if n > 0 {
                said.push((what, n));
            }
        };
        let changed = |v: &[Option<f64>], f: &dyn Fn(f64) -> bool| {
            v.iter().flatten().filter(|x| f(**x)).count()
        };
        let stored = match (backend, self) {
            ("sql", Values::Float64(v)) => {
                note("NaN", changed(v, &|x| x.is_nan()));
                note("-0.0", changed(v, &|x| x == 0.0 && x.is_sign_negative()));
                Values::Float64(
                    v.iter()
                        .map(|x| x.filter(|x| !x.is_nan()).map(|x| x + 0.0))
                        .collect(),
                )
            }
            ("sql", Values::Float32(v)) => {
                let wide: Vec<Option<f64>> = v.iter().map(|x| x.map(f64::from)).collect();
                note("NaN", changed(&wide, &|x| x.is_nan()));
                note(
                    "-0.0",
                    changed(&wide, &|x| x == 0.0 && x.is_sign_negative()),
                );
                Values::Float32(
                    v.iter()
                        .map(|x| x.filter(|x| !x.is_nan()).map(|x| x + 0.0))
                        .collect(),
                )
            }
            ("sql" | "delta" | "postgres", Values::TimeNs(v)) => {
                note(
                    "nanoseconds",
                    v.iter().flatten().filter(|ns| *ns % 1_000 != 0).count(),
                );
                // Rounded down: an instant before 1970 keeps its microsecond.
                Values::TimeNs(
                    v.iter()
                        .map(|ns| ns.map(|ns| ns - ns.rem_euclid(1_000)))
                        .collect(),
                )
            }
            ("zarr", Values::Float64(v)) => {
                note("NaN", changed(v, &|x| x.is_nan()));
                Values::Float64(v.iter().map(|x| x.filter(|x| !x.is_nan())).collect())
            }
            ("zarr", Values::Float32(v)) => {
                note("NaN", v.iter().flatten().filter(|x| x.is_nan()).count());
                Values::Float32(v.iter().map(|x| x.filter(|x| !x.is_nan())).collect())
            }
            ("zarr", Values::Bool(v)) => {
                note("nulls", v.iter().filter(|x| x.is_none()).count());
                Values::Bool(v.iter().map(|x| Some(x.unwrap_or(false))).collect())
            }
            ("zarr", Values::Int16(v)) => {
                note("fill", v.iter().filter(|x| **x == Some(i16::MIN)).count());
                Values::Int16(v.iter().map(|x| x.filter(|x| *x != i16::MIN)).collect())
            }
            ("zarr", Values::Int32(v)) => {
                note("fill", v.iter().filter(|x| **x == Some(i32::MIN)).count());
                Values::Int32(v.iter().map(|x| x.filter(|x| *x != i32::MIN)).collect())
            }
            ("zarr", Values::Int64(v)) => {
                note("fill", v.iter().filter(|x| **x == Some(i64::MIN)).count());
                Values::Int64(v.iter().map(|x| x.filter(|x| *x != i64::MIN)).collect())
            }
            ("zarr", Values::TimeNs(v)) => {
                note("fill", v.iter().filter(|x| **x == Some(i64::MIN)).count());
                Values::TimeNs(v.iter().map(|x| x.filter(|x| *x != i64::MIN)).collect())
            }
            ("sql" | "delta" | "postgres", Values::DateMs(v)) => {
                let day = 86_400_000;
                note(
                    "time of day",
                    v.iter().flatten().filter(|ms| *ms % day != 0).count(),
                );
                // Rounded down: a time before 1970 keeps its day.
                Values::DateMs(
                    v.iter()
                        .map(|ms| ms.map(|ms| ms - ms.rem_euclid(day)))
                        .collect(),
                )
            }
            ("zarr", Values::Int8(v)) => {
                note("fill", v.iter().filter(|x| **x == Some(i8::MIN)).count());
                Values::Int8(v.iter().map(|x| x.filter(|x| *x != i8::MIN)).collect())
            }
            ("zarr", Values::UInt8(v)) => {
                note("fill", v.iter().filter(|x| **x == Some(u8::MAX)).count());
                Values::UInt8(v.iter().map(|x| x.filter(|x| *x != u8::MAX)).collect())
            }
            ("zarr", Values::UInt64(v)) => {
                note("fill", v.iter().filter(|x| **x == Some(u64::MAX)).count());
                Values::UInt64(v.iter().map(|x| x.filter(|x| *x != u64::MAX)).collect())
            }
            ("zarr", Values::UInt32(v)) => {
                note("fill", v.iter().filter(|x| **x == Some(u32::MAX)).count());
                Values::UInt32(v.iter().map(|x| x.filter(|x| *x != u32::MAX)).collect())
            }
            (_, same) => same.clone(),
        };
        (stored, said)
    }
}

/// The generated result as a batch: `id`, then `c0`, `c1`, ...
fn batch(columns: &[Values]) -> RecordBatch {
    let rows = columns.first().map_or(0, Values::len);
    let mut fields = vec![Field::new("id", DataType::Int64, true)];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values(0..rows as i64))];
    for (i, column) in columns.iter().enumerate() {
        let array = column.array();
        fields.push(Field::new(format!("c{i}"), array.data_type().clone(), true));
        arrays.push(array);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
}

/// Each column's cells as text: exact for every type (ns timestamps,
/// -0.0, NaN), and null apart from any value.
fn texts_of(batches: &[RecordBatch], schema: &SchemaRef) -> Vec<Vec<String>> {
    let options = FormatOptions::default().with_null("∅");
    (0..schema.fields().len())
        .map(|c| {
            batches
                .iter()
                .flat_map(|b| {
                    // Times as their numbers: exact, at any range.
                    let column = match b.column(c).data_type() {
                        DataType::Timestamp(..) => {
                            arrow::compute::cast(b.column(c), &DataType::Int64).unwrap()
                        }
                        DataType::Date32 => {
                            arrow::compute::cast(b.column(c), &DataType::Int32).unwrap()
                        }
                        DataType::Date64 => {
                            arrow::compute::cast(b.column(c), &DataType::Int64).unwrap()
                        }
                        _ => Arc::clone(b.column(c)),
                    };
                    let formatter = ArrayFormatter::try_new(&column, &options).unwrap();
                    (0..b.num_rows())
                        .map(|r| formatter.value(r).to_string())
                        .collect::<Vec<_>>()
                })
                .collect()
        })
        .collect()
}

/// What `backend` says of each loss, by the test's short name.
fn described(short: &str) -> &'static str {
    match short {
        "NaN" => "NaN stored as missing, read back as null",
        "-0.0" => "-0.0 stored as 0.0",
        "nanoseconds" => "nanoseconds truncated to microseconds",
        "nulls" => "nulls stored as false",
        "time of day" => "time of day dropped from dates",
        _ => "the fill value, stored as missing, read back as null",
    }
}

static CASE: AtomicUsize = AtomicUsize::new(0);

/// Caches `columns` through `backend` and checks the miss and the hit.
async fn round_trip(f: &Fixture, backend: &str, columns: &[Values]) -> Result<(), TestCaseError> {
    let input = batch(columns);
    let name = format!("rt{}", CASE.fetch_add(1, Ordering::SeqCst));
    let mut builder = CachedFunction::builder(&name)
        .backend(if backend == "postgres" {
            "sql"
        } else {
            backend
        })
        .returns(input.schema());
    if backend == "zarr" {
        builder = builder.dimensions(["id"]);
    }
    let body = input.clone();
    let function = builder
        .compute(move |_ctx, _args| {
            let body = body.clone();
            async move { Ok(vec![body]) }
        })
        .build()
        .unwrap();
    f.nuthatch.register(function).unwrap();
    // Formats that keep dates and times of years 1 to 9999 refuse others
    // (all but Parquet and Arrow),
    // naming the first column that has them; nothing is stored.
    let refused = matches!(backend, "sql" | "postgres" | "delta" | "zarr")
        .then(|| {
            (columns.iter().enumerate())
                .map(|(i, c)| (i, c.beyond_years()))
                .find(|(_, n)| *n > 0)
        })
        .flatten();
    // Their integers are signed: a UInt64 above Int64's range fails the
    // write, naming the column.
    let too_big = matches!(backend, "sql" | "postgres" | "delta")
        .then(|| {
            columns.iter().position(|c| {
                matches!(c, Values::UInt64(v) if v.iter().flatten().any(|x| *x > i64::MAX as u64))
            })
        })
        .flatten();
    if let (None, Some(i)) = (refused, too_big) {
        let error = match f.query(&format!("SELECT * FROM {name}()")).await {
            Ok(_) => return Err(TestCaseError::fail(format!("{backend} stored c{i}"))),
            Err(e) => e.to_string(),
        };
        prop_assert!(
            error.contains(&format!("column c{i}")),
            "{}: {}",
            backend,
            error
        );
        return Ok(());
    }
    if let Some((i, n)) = refused {
        let sql = format!("SELECT * FROM {name}()");
        let error = match f.query(&sql).await {
            Ok(_) => return Err(TestCaseError::fail(format!("{backend} stored c{i}"))),
            Err(e) => e.to_string(),
        };
        let plural = if n == 1 { "" } else { "s" };
        let says = format!(
            "cannot store column c{i}: dates or times outside the years 1 to 9999 ({n} value{plural})"
        );
        prop_assert!(error.contains(&says), "{}: {}", backend, error);
        let stored = f
            .query(&format!(
                "SELECT * FROM nuthatch.caches WHERE function = '{name}'"
            ))
            .await
            .unwrap();
        prop_assert_eq!(stored.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
        return Ok(());
    }
    let mut want_columns = vec![Values::Int64(
        (0..input.num_rows() as i64).map(Some).collect(),
    )];
    let mut want_said = Vec::new();
    for (i, column) in columns.iter().enumerate() {
        let (stored, said) = column.stored(backend);
        want_columns.push(stored);
        for (what, n) in said {
            let plural = if n == 1 { "" } else { "s" };
            let loss = match what {
                "fill" => fill_text(column),
                other => described(other).to_string(),
            };
            want_said.push(format!("c{i}: {loss} ({n} value{plural})"));
        }
    }
    let want = batch(&want_columns[1..]);
    let want = texts_of(std::slice::from_ref(&want), &want.schema());
    let sql = format!("SELECT * FROM {name}() ORDER BY id");
    // A case that failed early (while shrinking) left its reports.
    f.reports();
    for (round, outcome) in [("miss", Outcome::Computed), ("hit", Outcome::Hit)] {
        let got = f
            .query(&sql)
            .await
            .map_err(|e| TestCaseError::fail(format!("{backend} {round}: {e}")))?;
        let report = crate::coverage::report_of(f, &name);
        prop_assert_eq!(report.outcome, outcome, "{} {}: {}", backend, round, report);
        let schema = input.schema();
        for batch in &got {
            let types = |s: &Schema| -> Vec<DataType> {
                s.fields().iter().map(|f| f.data_type().clone()).collect()
            };
            prop_assert_eq!(types(&batch.schema()), types(&schema));
        }
        let got = texts_of(&got, &schema);
        let got = if input.num_rows() == 0 {
            vec![Vec::new(); schema.fields().len()]
        } else {
            got
        };
        prop_assert_eq!(&got, &want, "{} {}", backend, round);
        if round == "miss" {
            let mut said: Vec<String> = report.changes.iter().map(|c| c.to_string()).collect();
            said.sort();
            let mut wanted = want_said.clone();
            wanted.sort();
            prop_assert_eq!(said, wanted, "{}: {}", backend, report);
        }
    }
    // The same rows as a Polars frame, converted back.
    if input.num_rows() > 0 {
        let frame = (f.nuthatch.polars().frame(&sql).await)
            .map_err(|e| TestCaseError::fail(format!("{backend} polars: {e}")))?;
        let batches = nuthatch::polars::from_polars(frame).unwrap();
        prop_assert_eq!(
            texts_of(&batches, &input.schema()),
            want,
            "{} polars",
            backend
        );
        f.reports();
    }
    Ok(())
}

fn fill_text(column: &Values) -> String {
    let fill: i128 = match column {
        Values::Int8(_) => i8::MIN.into(),
        Values::UInt8(_) => u8::MAX.into(),
        Values::UInt64(_) => u64::MAX.into(),
        Values::Int16(_) => i16::MIN.into(),
        Values::Int32(_) => i32::MIN.into(),
        Values::UInt32(_) => u32::MAX.into(),
        _ => i64::MIN.into(),
    };
    format!("{fill}, the fill value, stored as missing, read back as null")
}

/// Runs the property for `backend` over results of `kinds`.
fn property(backend: &'static str, kinds: &'static [Kind], fixture: impl Fn() -> Fixture) {
    let cases = std::env::var("NUTHATCH_TEST_ROUNDTRIP_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(16);
    let mut runner = TestRunner::new(Runner {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/integration/roundtrip.regressions",
        ))),
        ..Runner::default()
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let f = fixture();
    let result = runner.run(&results(kinds), |columns| {
        runtime.block_on(round_trip(&f, backend, &columns))
    });
    if let Err(e) = result {
        panic!("{backend}: {e}");
    }
}

#[test]
fn parquet_returns_every_value_as_computed() {
    property("parquet", &ALL, Fixture::new);
}

#[test]
fn arrow_returns_every_value_as_computed() {
    property("arrow", &ALL, Fixture::new);
}

#[test]
fn sqlite_returns_every_value_or_says_what_it_changed() {
    property("sql", &ALL, Fixture::new);
}

#[test]
fn delta_returns_every_value_or_says_what_it_changed() {
    property("delta", &ALL, Fixture::new);
}

#[test]
fn zarr_returns_every_value_or_says_what_it_changed() {
    property("zarr", &GRID, Fixture::new);
}

#[test]
#[ignore = "needs PostgreSQL: run bash scripts/test"]
fn postgres_returns_every_value_or_says_what_it_changed() {
    property("postgres", &ALL, crate::sql::writer_fixture);
}

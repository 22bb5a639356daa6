//! One engine, many sessions: identical computes collapse, sessions keep
//! their own settings and reports, recursion is refused, and a result
//! larger than the memory limit streams through to the store and back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arrow::array::{Float64Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use nuthatch::{CachedFunction, Config, CoverageKind, Engine, Outcome, ParamType};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::statistics::Statistics;

use crate::support::{Fixture, assert_outcome};

/// Fails a test that would otherwise hang.
async fn within<T>(what: &str, work: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), work)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish: it hangs"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_join_of_one_call_computes_once_and_commits_once() {
    let f = Fixture::new();
    let sql = "SELECT count(*) FROM series(NULL, NULL, station => 'twin') a \
               JOIN series(NULL, NULL, station => 'twin') b ON a.time = b.time";
    assert_eq!(within("the self-join", f.int(sql)).await, 1440);
    assert_eq!(f.computes(), 1, "two calls of one entry ran the body once");
    let mut outcomes: Vec<Outcome> = f.reports().iter().map(|r| r.outcome).collect();
    outcomes.sort_by_key(|o| o.name());
    assert_eq!(outcomes, vec![Outcome::Computed, Outcome::Hit]);
    assert_eq!(
        f.files(),
        vec![
            "nuthatch_metadata.nut/exists.nut",
            "nuthatch_metadata.nut/series/1.0_twin/parquet.parquet",
            "series/1.0_twin.parquet",
        ]
    );
}

/// `slow()`: takes a while, so that two sessions' misses overlap.
fn slow(computes: Arc<AtomicUsize>) -> CachedFunction {
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
    let returns = Arc::clone(&schema);
    CachedFunction::builder("slow")
        .param("n", ParamType::Int)
        .cache_args(["n"])
        .returns(schema)
        .compute(move |_ctx, args| {
            let computes = Arc::clone(&computes);
            let schema = Arc::clone(&returns);
            async move {
                computes.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(500)).await;
                let n = args.i64("n")?;
                Ok(vec![RecordBatch::try_new(
                    schema,
                    vec![Arc::new(Int64Array::from_iter_values(0..n))],
                )?])
            }
        })
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_keep_their_settings_and_reports_and_share_one_compute() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(&Config::with_root(dir.path().display().to_string())).unwrap();
    let computes = Arc::new(AtomicUsize::new(0));
    engine.register(slow(Arc::clone(&computes))).unwrap();
    let (alice, bob) = (engine.session(), engine.session());

    // The same miss from two sessions at once: one computes, one waits.
    let sql = "SELECT sum(n) FROM slow(1000)";
    async fn run(
        session: &nuthatch::Session,
        sql: &str,
    ) -> datafusion::error::Result<Vec<RecordBatch>> {
        session.sql(sql).await?.collect().await
    }
    let (a, b) = within("two sessions", async {
        tokio::join!(run(&alice, sql), run(&bob, sql))
    })
    .await;
    assert_eq!(a.unwrap()[0].num_rows(), 1);
    assert_eq!(b.unwrap()[0].num_rows(), 1);
    assert_eq!(computes.load(Ordering::SeqCst), 1, "computed once for both");
    let (from_alice, from_bob) = (alice.take_reports(), bob.take_reports());
    assert_eq!(from_alice.len(), 1, "each session sees its own call only");
    assert_eq!(from_bob.len(), 1);
    let mut outcomes = vec![from_alice[0].outcome, from_bob[0].outcome];
    outcomes.sort_by_key(|o| o.name());
    assert_eq!(outcomes, vec![Outcome::Computed, Outcome::Hit]);

    // A setting changed in one session is that session's only.
    alice
        .sql("SET nuthatch.cache_mode = 'off'")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let again = "SELECT count(*) FROM slow(1000)";
    alice.sql(again).await.unwrap().collect().await.unwrap();
    bob.sql(again).await.unwrap().collect().await.unwrap();
    assert_outcome(&alice.take_reports()[0], Outcome::ComputedNotStored);
    assert_outcome(&bob.take_reports()[0], Outcome::Hit);
    assert_eq!(computes.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recursive_definition_fails_with_the_cycle_named() {
    let f = Fixture::new();
    for sql in [
        "CREATE CACHED FUNCTION loop_b() AS SELECT 1 AS x",
        "CREATE CACHED FUNCTION loop_a() AS SELECT x FROM loop_b()",
        "CREATE OR REPLACE CACHED FUNCTION loop_b() AS SELECT x FROM loop_a()",
    ] {
        f.query(sql).await.unwrap();
    }
    let error = within("a recursive call", f.error("SELECT * FROM loop_a()")).await;
    assert!(
        error.contains("recursive cached call: loop_a -> loop_b -> loop_a"),
        "{error}"
    );
    assert!(error.contains("cannot call itself"), "{error}");
    assert_eq!(f.files(), Vec::<String>::new(), "nothing was stored");
    // Once the cycle is broken, both compute.
    f.query("CREATE OR REPLACE CACHED FUNCTION loop_b() AS SELECT 2 AS x")
        .await
        .unwrap();
    assert_eq!(f.int("SELECT x FROM loop_a()").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_call_runs_in_a_child_session_that_knows_its_caller() {
    // A Rust body that calls a cached function: the inner call is planned
    // in a child session whose stack holds the outer call.
    let f = Fixture::new();
    let seen: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let record = Arc::clone(&seen);
    let outer = CachedFunction::builder("outer")
        .returns(Arc::new(Schema::new(vec![Field::new(
            "n",
            DataType::Int64,
            true,
        )])))
        .compute(move |ctx, _args| {
            let record = Arc::clone(&record);
            async move {
                let stack = nuthatch::crates::udf::CallStack::of(ctx.state().config());
                record
                    .lock()
                    .unwrap()
                    .extend(stack.frames().iter().map(|frame| frame.to_string()));
                ctx.sql("SELECT count(*) AS n FROM series(NULL, NULL)")
                    .await
            }
        })
        .build()
        .unwrap();
    f.nuthatch.register(outer).unwrap();
    assert_eq!(f.int("SELECT n FROM outer()").await, 1440);
    assert_eq!(*seen.lock().unwrap(), vec!["outer".to_string()]);
    let keys: Vec<String> = f.reports().into_iter().map(|r| r.key).collect();
    assert_eq!(keys, vec!["series/1.0_north", "outer/"]);
}

const BIG_ROWS: i64 = 3_000_000;
const LIMIT: usize = 16 << 20;

/// `big(start_time, end_time)`: 3 million rows of three 8-byte columns
/// (72 MB in Arrow, over four times the limit) whose times arrive shuffled.
fn big() -> CachedFunction {
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            true,
        ),
        Field::new("id", DataType::Int64, true),
        Field::new("v", DataType::Float64, true),
    ]));
    CachedFunction::builder("big")
        .param("start_time", ParamType::Timestamp)
        .param("end_time", ParamType::Timestamp)
        .timeseries("time")
        .coverage(CoverageKind::Full)
        .returns(schema)
        .compute(|ctx, _args| async move {
            // 7919 is prime to BIG_ROWS, so the times are a permutation.
            ctx.sql(&format!(
                "SELECT to_timestamp_seconds(1577836800 + (value * 7919) % {BIG_ROWS}) AS time, \
                        value AS id, CAST(value AS DOUBLE) / 3 AS v \
                 FROM generate_series(0, {BIG_ROWS} - 1)"
            ))
            .await
        })
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_larger_than_the_memory_limit_is_stored_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let mut config = Config::with_root(root.display().to_string());
    config.memory_limit = Some(LIMIT);
    let session = Engine::new(&config).unwrap().session();
    session.register(big()).unwrap();
    let totals = "SELECT count(*), sum(id), min(time) = TIMESTAMP '2020-01-01T00:00:00', \
                  max(time) = TIMESTAMP '2020-01-01T00:00:00' + INTERVAL '2999999 seconds' \
                  FROM big(NULL, NULL)";
    let check = |batches: Vec<RecordBatch>| {
        let row = &batches[0];
        let count = row.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        let sum = row.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(count.value(0), BIG_ROWS);
        assert_eq!(sum.value(0), BIG_ROWS * (BIG_ROWS - 1) / 2);
        for column in [2, 3] {
            let flag = arrow::compute::cast(row.column(column), &DataType::Int64).unwrap();
            assert_eq!(
                flag.as_any().downcast_ref::<Int64Array>().unwrap().value(0),
                1,
                "the time range survives"
            );
        }
    };
    let computed = within("a miss larger than memory", async {
        session.sql(totals).await?.collect().await
    })
    .await
    .unwrap();
    check(computed);
    let report = session.take_reports().remove(0);
    assert_outcome(&report, Outcome::Computed);
    assert!(
        report.spilled_bytes > 0,
        "the sort spilled to stay within the limit: {report}"
    );

    // Stored sorted by time, in row groups a window can skip.
    let file = std::fs::File::open(root.join("big/.parquet")).unwrap();
    let reader = SerializedFileReader::new(file).unwrap();
    let mut last_max = i64::MIN;
    for group in reader.metadata().row_groups() {
        let Some(Statistics::Int64(stats)) = group.column(0).statistics() else {
            panic!("time statistics are written")
        };
        assert!(
            *stats.min_opt().unwrap() >= last_max,
            "row groups are in time order"
        );
        last_max = *stats.max_opt().unwrap();
    }
    assert!(reader.metadata().num_row_groups() >= 40);
    // Encodings chosen per column: the sorted time column as deltas, the
    // distinct ids and measurements without a dictionary, the floats split
    // into byte streams.
    let group = reader.metadata().row_group(0);
    let encodings = |i: usize| format!("{:?}", group.column(i).encodings().collect::<Vec<_>>());
    let dictionary = |i: usize| group.column(i).dictionary_page_offset().is_some();
    assert!(
        encodings(0).contains("DELTA_BINARY_PACKED"),
        "{}",
        encodings(0)
    );
    assert!(
        encodings(2).contains("BYTE_STREAM_SPLIT"),
        "{}",
        encodings(2)
    );
    assert_eq!(
        (dictionary(0), dictionary(1), dictionary(2)),
        (false, false, false)
    );

    let hit = session.sql(totals).await.unwrap().collect().await.unwrap();
    check(hit);
    assert_outcome(&session.take_reports().remove(0), Outcome::Hit);
    let window = "SELECT count(*) FROM big('2020-01-02', '2020-01-02')";
    let batches = session.sql(window).await.unwrap().collect().await.unwrap();
    let count = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    assert_eq!(count.value(0), 86_400, "one day of seconds");
    let report = session.take_reports().remove(0);
    let (read, total) = report.row_groups_read.expect("the window prunes");
    assert!(read * 10 < total, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compute_that_fails_midway_through_its_write_leaves_nothing() {
    // Enough data to be mid-upload when the stream fails.
    let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Float64, true)]));
    let returns = Arc::clone(&schema);
    let failing = CachedFunction::builder("failing")
        .returns(schema)
        .compute(move |_ctx, _args| {
            let schema = Arc::clone(&returns);
            async move {
                let batch_schema = Arc::clone(&schema);
                let batches = (0..40).map(move |i| {
                    if i == 39 {
                        return Err(datafusion::error::DataFusionError::Execution(
                            "the upstream feed broke".into(),
                        ));
                    }
                    // Pseudo-random doubles do not compress: ~1 MB a batch.
                    let values = (0..131_072u64).map(|j| {
                        ((i * 131_072 + j).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64
                    });
                    Ok(RecordBatch::try_new(
                        Arc::clone(&batch_schema),
                        vec![Arc::new(Float64Array::from_iter_values(values))],
                    )?)
                });
                let stream = futures::stream::iter(batches);
                let stream: datafusion::execution::SendableRecordBatchStream = Box::pin(
                    datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                        Arc::clone(&schema),
                        stream,
                    ),
                );
                Ok(stream)
            }
        })
        .build()
        .unwrap();
    let f = Fixture::new();
    f.nuthatch.register(failing).unwrap();
    let error = f.error("SELECT count(*) FROM failing()").await;
    assert!(error.contains("the upstream feed broke"), "{error}");
    assert!(error.contains("nothing was stored"), "{error}");
    let mut left = Vec::new();
    let mut folders = vec![f.root()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                folders.push(entry.path());
            } else {
                left.push(entry.path().display().to_string());
            }
        }
    }
    assert_eq!(left, Vec::<String>::new(), "not even a staged part is left");
}

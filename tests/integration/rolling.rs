//! Rolling windows per series: the same results as DataFusion's own window
//! exec, to the bit, and no sort when the cached input is in time order.

use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray, TimestampSecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use nuthatch::{CachedFunction, ParamType};

use crate::support::Fixture;

/// Three series, interleaved in time order, with nulls and a series that
/// starts late; `value` cycles through awkward floats so sums that retract
/// and re-add show any difference in the order of operations.
fn readings() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("time", DataType::Timestamp(TimeUnit::Second, None), true),
        Field::new("site", DataType::Utf8, true),
        Field::new("depth", DataType::Int64, true),
        Field::new("value", DataType::Float64, true),
    ]));
    let (mut time, mut site, mut depth, mut value) = (vec![], vec![], vec![], vec![]);
    for t in 0..400i64 {
        for (s, d) in [("a", 1i64), ("a", 2), ("b", 1)] {
            if s == "b" && t < 50 {
                continue;
            }
            time.push(t * 3600);
            site.push(s);
            depth.push(d);
            let i = t * 7 + d;
            value.push((i % 11 != 3).then_some((i as f64) * 0.1 + 1e15 * ((i % 5) as f64 - 2.0)));
        }
    }
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(TimestampSecondArray::from(time)),
            Arc::new(StringArray::from(site)),
            Arc::new(Int64Array::from(depth)),
            Arc::new(Float64Array::from(value)),
        ],
    )
    .unwrap()
}

/// Counts beside a mean over the same values and frame (`n5`, and `n5_real`
/// through the mean's cast) are read from the mean's frame; counts of other
/// values or over other frames (`depths5`, `n3`) keep their own.
const WINDOWS: &str = "SELECT time, site, depth, value,
        count(value) OVER (PARTITION BY site, depth ORDER BY time ROWS BETWEEN 5 PRECEDING AND CURRENT ROW) AS n5,
        avg(value) OVER (PARTITION BY site, depth ORDER BY time ROWS BETWEEN 5 PRECEDING AND CURRENT ROW) AS mean5,
        sum(value) OVER (PARTITION BY site, depth ORDER BY time ROWS BETWEEN 5 PRECEDING AND CURRENT ROW) AS sum5,
        count(*) OVER (PARTITION BY site, depth ORDER BY time ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS rows2,
        count(value) OVER (PARTITION BY site, depth ORDER BY time ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS n3,
        count(depth) OVER (PARTITION BY site, depth ORDER BY time ROWS BETWEEN 5 PRECEDING AND CURRENT ROW) AS depths5,
        count(abs(CAST(value AS REAL))) OVER (PARTITION BY site, depth ORDER BY time ROWS BETWEEN 5 PRECEDING AND CURRENT ROW) AS n5_real,
        avg(abs(CAST(value AS REAL))) OVER (PARTITION BY site, depth ORDER BY time ROWS BETWEEN 5 PRECEDING AND CURRENT ROW) AS mean5_real,
        sum(value) OVER (PARTITION BY site, depth ORDER BY time ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running,
        avg(depth) OVER (PARTITION BY site, depth ORDER BY time ROWS BETWEEN CURRENT ROW AND CURRENT ROW) AS itself
    FROM readings";

async fn plan_text(ctx: &SessionContext, sql: &str) -> String {
    let plan = ctx
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    datafusion::physical_plan::displayable(plan.as_ref())
        .indent(true)
        .to_string()
}

async fn sorted_rows(ctx: &SessionContext, sql: &str) -> RecordBatch {
    let sql = format!("SELECT * FROM ({sql}) ORDER BY site, depth, time");
    let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_windows_equal_datafusions_to_the_bit() {
    let f = Fixture::new();
    let table =
        || Arc::new(MemTable::try_new(readings().schema(), vec![vec![readings()]]).unwrap());
    let plain = SessionContext::new();
    plain.register_table("readings", table()).unwrap();
    let ours = f.nuthatch.context();
    ours.register_table("readings", table()).unwrap();

    let shown = plan_text(ours, WINDOWS).await;
    assert!(shown.contains("RollingWindowExec"), "{shown}");
    assert!(!shown.contains("BoundedWindowAggExec"), "{shown}");
    assert!(
        plan_text(&plain, WINDOWS)
            .await
            .contains("BoundedWindowAggExec")
    );

    let expected = sorted_rows(&plain, WINDOWS).await;
    let got = sorted_rows(ours, WINDOWS).await;
    assert_eq!(got.num_rows(), 1150);
    assert_eq!(got.schema(), expected.schema());
    for (i, field) in expected.schema().fields().iter().enumerate() {
        assert_eq!(got.column(i), expected.column(i), "column {}", field.name());
    }

    // Frames carry across batches, and a batch may end inside a cycle of
    // series: seven rows per batch splits the three series' cycles anywhere.
    ours.sql("SET datafusion.execution.batch_size = 7")
        .await
        .unwrap();
    let got = sorted_rows(ours, WINDOWS).await;
    for (i, field) in expected.schema().fields().iter().enumerate() {
        assert_eq!(
            got.column(i),
            expected.column(i),
            "small batches, column {}",
            field.name()
        );
    }
    ours.sql("SET datafusion.execution.batch_size = 8192")
        .await
        .unwrap();

    // A session can turn the rule off: DataFusion's window then computes
    // the same rows.
    let shown = plan_text(ours, WINDOWS).await;
    assert!(
        shown.contains("off with nuthatch.rolling_windows = false"),
        "{shown}"
    );
    ours.sql("SET nuthatch.rolling_windows = false")
        .await
        .unwrap();
    let shown = plan_text(ours, WINDOWS).await;
    assert!(shown.contains("BoundedWindowAggExec"), "{shown}");
    assert!(!shown.contains("RollingWindowExec"), "{shown}");
    let got = sorted_rows(ours, WINDOWS).await;
    for (i, field) in expected.schema().fields().iter().enumerate() {
        assert_eq!(
            got.column(i),
            expected.column(i),
            "rule off, column {}",
            field.name()
        );
    }
    ours.sql("SET nuthatch.rolling_windows = true")
        .await
        .unwrap();

    // What it does not compute stays DataFusion's.
    let filtered = "SELECT sum(value) FILTER (WHERE depth = 1) OVER (PARTITION BY site ORDER BY time \
                    ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) FROM readings";
    let shown = plan_text(ours, filtered).await;
    assert!(shown.contains("BoundedWindowAggExec"), "{shown}");
    let following = "SELECT avg(value) OVER (PARTITION BY site ORDER BY time \
                     ROWS BETWEEN 2 PRECEDING AND 1 FOLLOWING) FROM readings";
    assert!(
        !plan_text(ours, following)
            .await
            .contains("RollingWindowExec")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_over_an_entry_kept_in_time_order_sorts_nothing() {
    let f = Fixture::new();
    let grid = CachedFunction::builder("grid")
        .order_by(["time"])
        .returns(readings().schema())
        .compute(|_ctx, _args| async move { Ok(vec![readings()]) })
        .build()
        .unwrap();
    f.nuthatch.register(grid).unwrap();
    let unordered = CachedFunction::builder("unordered_grid")
        .param_default("n", ParamType::Int, nuthatch::Value::Int(1))
        .returns(readings().schema())
        .compute(|_ctx, _args| async move { Ok(vec![readings()]) })
        .build()
        .unwrap();
    f.nuthatch.register(unordered).unwrap();
    let windows = |source: &str| WINDOWS.replace("FROM readings", &format!("FROM {source}()"));

    // Computed, then a hit: the same rows either way, equal to a sort-based
    // window over the unordered function.
    let reference = sorted_rows(f.nuthatch.context(), &windows("unordered_grid")).await;
    for _ in 0..2 {
        let got = sorted_rows(f.nuthatch.context(), &windows("grid")).await;
        assert_eq!(got.num_rows(), reference.num_rows());
        for (i, field) in reference.schema().fields().iter().enumerate() {
            assert_eq!(
                got.column(i),
                reference.column(i),
                "column {}",
                field.name()
            );
        }
    }
    let shown = plan_text(f.nuthatch.context(), &windows("grid")).await;
    assert!(shown.contains("RollingWindowExec"), "{shown}");
    // The call serves one partition in time order: nothing merges it.
    assert!(!shown.contains("SortPreservingMergeExec"), "{shown}");
    assert!(!shown.contains("SortExec:"), "{shown}");
    assert!(!shown.contains("RepartitionExec"), "{shown}");
    // The catalog shows the declared order.
    let declared = f
        .query("SELECT order_by FROM nuthatch.functions WHERE name = 'grid'")
        .await
        .unwrap();
    let declared = arrow::util::pretty::pretty_format_batches(&declared)
        .unwrap()
        .to_string();
    assert!(declared.contains("| time     |"), "{declared}");
    // Without a declared order the input is sorted by series first.
    let shown = plan_text(f.nuthatch.context(), &windows("unordered_grid")).await;
    assert!(shown.contains("SortExec"), "{shown}");
    f.reports();
}

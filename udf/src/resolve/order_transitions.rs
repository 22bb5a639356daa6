//! Every transition of the stored-order check, driven as a sink drives it:
//! read the stream; if it fails, write what the rewrite slot holds.

use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch};
use arrow::compute::SortOptions;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::expressions::col;
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;

use super::in_stored_order;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("t", DataType::Int64, true)]))
}

fn batch(values: &[i64]) -> RecordBatch {
    let column = Arc::new(Int64Array::from(values.to_vec()));
    RecordBatch::try_new(schema(), vec![column]).unwrap()
}

fn ordering() -> LexOrdering {
    let options = SortOptions {
        descending: false,
        nulls_first: false,
    };
    let key = PhysicalSortExpr::new(col("t", &schema()).unwrap(), options);
    LexOrdering::new([key]).unwrap()
}

/// A source of these partitions, each a list of batches; `proved` declares
/// them ordered by `t`.
fn source(partitions: &[&[&[i64]]], proved: bool) -> Arc<dyn ExecutionPlan> {
    let partitions: Vec<Vec<RecordBatch>> = partitions
        .iter()
        .map(|p| p.iter().map(|values| batch(values)).collect())
        .collect();
    let mut config = MemorySourceConfig::try_new(&partitions, schema(), None).unwrap();
    if proved {
        config = config.try_with_sort_information(vec![ordering()]).unwrap();
    }
    datafusion::datasource::source::DataSourceExec::from_data_source(config)
}

/// What a sink ends up writing, whether it had to write it again, and the
/// check's counters.
#[derive(Debug, PartialEq)]
struct Outcome {
    rows: Vec<i64>,
    rewritten: bool,
    rows_sorted: usize,
    rows_rewritten: usize,
}

async fn write(plan: Arc<dyn ExecutionPlan>, memory_limit: Option<usize>) -> (Outcome, String) {
    let context: Arc<TaskContext> = match memory_limit {
        None => Arc::new(TaskContext::default()),
        Some(bytes) => {
            let runtime = RuntimeEnvBuilder::new()
                .with_memory_limit(bytes, 1.0)
                .build_arc()
                .unwrap();
            SessionContext::new_with_config_rt(SessionConfig::new(), runtime).task_ctx()
        }
    };
    let (plan, rewrite) = in_stored_order(plan, ordering(), memory_limit.is_some()).unwrap();
    let shape = plan.name().to_string();
    let mut rows = Vec::new();
    let mut stream = plan.execute(0, Arc::clone(&context)).unwrap();
    let mut rewritten = false;
    while let Some(next) = stream.next().await {
        match next {
            Ok(batch) => rows.extend(values(&batch)),
            Err(error) => {
                // The sink abandons what it wrote and writes this instead.
                let slot = rewrite.as_ref().expect("only a checked plan fails");
                let mut again = slot
                    .take()
                    .unwrap_or_else(|| panic!("{error} left no rows arranged"));
                rows.clear();
                while let Some(batch) = again.next().await {
                    rows.extend(values(&batch.unwrap()));
                }
                rewritten = true;
                break;
            }
        }
    }
    let counter = |name: &str| {
        plan.metrics()
            .and_then(|m| m.sum_by_name(name))
            .map_or(0, |v| v.as_usize())
    };
    let outcome = Outcome {
        rows,
        rewritten,
        rows_sorted: counter("rows_sorted"),
        rows_rewritten: counter("rows_rewritten"),
    };
    (outcome, shape)
}

fn values(batch: &RecordBatch) -> Vec<i64> {
    let column = batch
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    (0..column.len()).map(|i| column.value(i)).collect()
}

/// Each case: the partitions, whether the plan proves the order, the memory
/// limit, and what the sink must end up with: the plan's shape, whether it
/// wrote twice, rows sorted and rows written in vain. Every case's rows
/// come out ascending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_transition_ends_with_the_rows_in_order() {
    type Case<'a> = (
        &'a str,
        &'a [&'a [&'a [i64]]],
        bool,
        Option<usize>,
        (&'a str, bool, usize, usize),
    );
    let cases: [Case; 10] = [
        (
            "proved, one partition: left as it is",
            &[&[&[1, 2], &[3]]],
            true,
            None,
            ("DataSourceExec", false, 0, 0),
        ),
        (
            "proved, two partitions: merged",
            &[&[&[1, 4]], &[&[2, 3]]],
            true,
            None,
            ("SortPreservingMergeExec", false, 0, 0),
        ),
        (
            "in order: passed on as it comes",
            &[&[&[1, 2], &[3, 4]]],
            false,
            None,
            ("StoredOrderExec", false, 0, 0),
        ),
        (
            "partitions taking turns: passed on interleaved",
            &[&[&[1, 2], &[5, 6]], &[&[3, 4], &[7]]],
            false,
            None,
            ("StoredOrderExec", false, 0, 0),
        ),
        (
            "partitions overlapping before any pass: merged",
            &[&[&[1, 5]], &[&[3, 4]]],
            false,
            None,
            ("StoredOrderExec", false, 0, 0),
        ),
        (
            "partitions overlapping after a pass: merged and written again",
            &[&[&[1, 2], &[5, 8]], &[&[3, 6]]],
            false,
            None,
            ("StoredOrderExec", true, 0, 2),
        ),
        (
            "out of order at once: sorted, written once",
            &[&[&[2, 1], &[3]]],
            false,
            None,
            ("StoredOrderExec", false, 3, 0),
        ),
        (
            "out of order after a pass: sorted and written again",
            &[&[&[1, 2], &[3, 4], &[2, 9]]],
            false,
            None,
            ("StoredOrderExec", true, 6, 4),
        ),
        (
            "memory limit, in order: end to end",
            &[&[&[1, 2]], &[&[3, 4]]],
            false,
            Some(64 << 20),
            ("StoredOrderExec", false, 0, 0),
        ),
        (
            "memory limit, out of order: sorted",
            &[&[&[4, 3]], &[&[1, 2]]],
            false,
            Some(64 << 20),
            ("StoredOrderExec", false, 4, 0),
        ),
    ];
    let mut failures = Vec::new();
    for (what, partitions, proved, limit, (shape, rewritten, sorted, in_vain)) in cases {
        let (got, got_shape) = write(source(partitions, proved), limit).await;
        let mut rows: Vec<i64> = partitions
            .iter()
            .flat_map(|p| p.iter())
            .flat_map(|b| b.iter())
            .copied()
            .collect();
        rows.sort();
        let expected = Outcome {
            rows,
            rewritten,
            rows_sorted: sorted,
            rows_rewritten: in_vain,
        };
        if got != expected || got_shape != shape {
            failures.push(format!(
                "{what}: expected {shape} {expected:?}, got {got_shape} {got:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Past what it keeps of the rows passed on, a rewrite computes the input
/// again rather than hold it: the rows still come out whole and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrite_past_what_is_kept_computes_the_input_again() {
    let ascending: Vec<i64> = (0..1000).collect();
    let partitions: &[&[&[i64]]] = &[&[&ascending, &[3, 1]]];
    let (got, _) = write(source(partitions, false), None).await;
    let mut rows = ascending.clone();
    rows.extend([1, 3]);
    rows.sort();
    assert_eq!(got.rows, rows);
    assert!(got.rewritten);
    assert_eq!(got.rows_rewritten, 1000, "{got:?}");
}

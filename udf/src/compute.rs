//! Running a function body.
//!
//! The body runs in a child session: the caller's session with this call
//! pushed on its [`CallStack`], sharing its settings, report log and
//! runtime (so its memory limit). Calls of other cached functions from the
//! body are planned there and know their caller.
//!
//! A body plans with the files its tables hold now: the runtime's
//! remembered file listings are dropped first (see `forget_listings`).
//!
//! Whatever the body returns becomes one [`DataFrame`] in the declared
//! schema (columns picked by name and cast), never collected: the caller
//! streams it into a backend or straight into the query.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::{DataFusionError, Result};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::MemTable;
use datafusion::execution::context::{SessionContext, SessionState};
use datafusion::logical_expr::{cast as cast_expr, col};

use crate::args::Args;
use crate::call::Call;
use crate::function::{Body, CachedFunction, Computed};

/// The session a body of `call` runs in.
pub fn child_session(call: &Call, parent: &SessionState) -> SessionContext {
    let mut state = parent.clone();
    state
        .config_mut()
        .set_extension(Arc::new(call.stack.push(call.frame())));
    SessionContext::new_with_state(state)
}

/// Runs the body of `call` and returns its result, unexecuted, in the
/// function's declared schema; `None` when the body returned no result.
pub async fn body_frame(call: &Call, parent: &SessionState) -> Result<Option<DataFrame>> {
    body_frame_with(call, call.body_args(), parent).await
}

/// [`body_frame`] with the body handed `args` instead of the call's (a
/// time range an entry is missing).
pub async fn body_frame_with(
    call: &Call,
    args: Args,
    parent: &SessionState,
) -> Result<Option<DataFrame>> {
    let function = &call.function;
    forget_listings(parent);
    let ctx = child_session(call, parent);
    let computed = match function.body() {
        Body::Rust(body) => body(ctx.clone(), args).await?,
        Body::Sql(body) => Computed::Frame(DataFrame::new(
            ctx.state(),
            body.plan(&ctx.state(), &args).await?,
        )),
    };
    let schema = function.schema();
    let frame = match computed {
        Computed::Null => return Ok(None),
        Computed::Frame(frame) => conform(function, frame),
        Computed::Batches(batches) => {
            let batches = batches
                .into_iter()
                .map(|batch| conform_batch(function, &batch))
                .collect::<Result<Vec<_>>>()?;
            let table = MemTable::try_new(Arc::clone(schema), vec![batches])?;
            ctx.read_table(Arc::new(table))
        }
        Computed::Stream(stream) => {
            let table = nuthatch_backends::once::table_once(stream)?;
            conform(function, ctx.read_table(table)?)
        }
    };
    frame.map(Some)
}

/// Drops the file listings the runtime remembers. DataFusion keeps the
/// files of a listed table for the life of the runtime, so a body that
/// reads a dataset growing by a file a day would, in a long-running
/// process, compute from the files of the first day; a compute lists
/// afresh instead (its cost is small beside a compute's).
fn forget_listings(state: &SessionState) {
    if let Some(listings) = state.runtime_env().cache_manager.get_list_files_cache() {
        listings.clear();
    }
}

fn missing(function: &CachedFunction, have: &Schema, want: &str) -> DataFusionError {
    let names: Vec<&str> = have.fields().iter().map(|f| f.name().as_str()).collect();
    DataFusionError::Execution(format!(
        "the body of {} returned no column '{want}'; it returned {}",
        function.name(),
        names.join(", ")
    ))
}

/// The frame's columns in the declared order and types: a body may return
/// columns in any order and of castable types; what is stored is always
/// the declared schema.
fn conform(function: &CachedFunction, frame: DataFrame) -> Result<DataFrame> {
    let mut columns = Vec::new();
    for field in function.schema().fields() {
        if frame
            .schema()
            .as_arrow()
            .field_with_name(field.name())
            .is_err()
        {
            return Err(missing(function, frame.schema().as_arrow(), field.name()));
        }
        let column = col(datafusion::common::Column::new_unqualified(field.name()));
        columns.push(cast_expr(column, field.data_type().clone()).alias(field.name()));
    }
    frame.select(columns)
}

fn conform_batch(function: &CachedFunction, batch: &RecordBatch) -> Result<RecordBatch> {
    let schema: &SchemaRef = function.schema();
    let mut columns = Vec::new();
    for field in schema.fields() {
        let column = batch
            .column_by_name(field.name())
            .ok_or_else(|| missing(function, &batch.schema(), field.name()))?;
        columns.push(cast(column, field.data_type())?);
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

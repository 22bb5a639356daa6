//! A Polars body's `LazyFrame`, collected by Polars' streaming engine even
//! when it scans nuthatch queries.
//!
//! [`Polars::lazy`](crate::Polars::lazy) hands Polars a scan defined
//! outside Polars (an `AnonymousScan`), which Polars 0.55's streaming
//! engine cannot run. Its in-memory engine can, but that engine's group-by
//! gives up its partitioned, parallel aggregation once it estimates more
//! than 1,000 groups: a grid grouped by its 1,325 cells took 3.7 times the
//! same body in SQL, against 1.4 to 1.8 with the aggregation kept.
//!
//! So a body's plan is optimized as the streaming engine would run it, and
//! each nuthatch scan left in it is fetched with what the optimizer pushed
//! into it (its columns, its filters and a leading row limit, exactly what
//! the in-memory engine would have passed) and put back into the plan as
//! an in-memory frame, which the streaming engine reads in parallel
//! morsels. The streaming engine then runs the whole plan. A plan that also
//! holds a scan nuthatch did not make, or a scan window the in-memory
//! engine itself would refuse, is collected by the in-memory engine, as
//! before.
//!
//! The other shape, waiting for Polars to take external sources in its
//! streaming engine, would also overlap the fetch with the aggregation;
//! until then the fetch comes first.

use std::sync::Arc;

use polars::polars_utils::arena::Node;
use polars::polars_utils::slice_enum::Slice;
use polars::prelude::{
    AnonymousScan, AnonymousScanArgs, DataFrame, Engine, LazyFrame, PolarsResult,
};
use polars_plan::dsl::FileScanIR;
use polars_plan::plans::{ArenaLpIter, IRPlan, IR};

use crate::frames::QueryScan;

/// Collects `lazy`, whose plan may hold the scans in `scans` (those the
/// body's [`crate::Polars`] handle made). A scan of another handle, or of
/// the body's own making, sends the plan to the in-memory engine, which
/// runs any scan (the streaming engine would stop at it).
pub(crate) fn collect(lazy: LazyFrame, scans: &[Arc<QueryScan>]) -> PolarsResult<DataFrame> {
    let mut plan = lazy.clone().with_streaming(true).to_alp_optimized()?;
    let Some(found) = nuthatch_scans(&plan, scans) else {
        return Ok(lazy.collect_with_engine(Engine::InMemory)?.unwrap_single());
    };
    for (node, scan) in found {
        fetch_into_plan(&mut plan, node, scan.as_ref())?;
    }
    plan.ensure_root_node_is_sink();
    let result = polars_stream::run_query(plan.lp_top, &mut plan.lp_arena, &mut plan.expr_arena)?;
    Ok(result.unwrap_single())
}

/// Every scan in `plan`, each once, with the nuthatch scan it is; `None`
/// if one is not a nuthatch scan or asks for rows the fetch cannot give.
fn nuthatch_scans(plan: &IRPlan, scans: &[Arc<QueryScan>]) -> Option<Vec<(Node, Arc<QueryScan>)>> {
    let mut found: Vec<(Node, Arc<QueryScan>)> = Vec::new();
    for (node, ir) in plan.lp_arena.iter(plan.lp_top) {
        let IR::Scan {
            scan_type,
            unified_scan_args,
            ..
        } = ir
        else {
            continue;
        };
        let FileScanIR::Anonymous { function, .. } = scan_type.as_ref() else {
            // A file scan Polars runs itself.
            continue;
        };
        let ours = scans
            .iter()
            .find(|scan| std::ptr::addr_eq(Arc::as_ptr(function), Arc::as_ptr(*scan)))?;
        let leading = match &unified_scan_args.pre_slice {
            None | Some(Slice::Positive { offset: 0, .. }) => true,
            Some(_) => false,
        };
        // A cached subplan is reached once per use.
        if leading && !found.iter().any(|(seen, _)| *seen == node) {
            found.push((node, Arc::clone(ours)));
        } else if !leading {
            return None;
        }
    }
    Some(found)
}

/// Runs `scan` with what the optimizer pushed into the scan at `node`, and
/// puts its rows in the scan's place.
fn fetch_into_plan(plan: &mut IRPlan, node: Node, scan: &QueryScan) -> PolarsResult<()> {
    let IR::Scan {
        file_info,
        output_schema,
        predicate,
        unified_scan_args,
        ..
    } = plan.lp_arena.get(node)
    else {
        unreachable!("nuthatch_scans found a scan at {node:?}");
    };
    let schema = output_schema.clone().unwrap_or(file_info.schema.clone());
    let args = AnonymousScanArgs {
        n_rows: unified_scan_args.pre_slice.as_ref().map(Slice::len),
        with_columns: unified_scan_args.projection.clone(),
        schema: file_info.schema.clone(),
        output_schema: output_schema.clone(),
        predicate: predicate.as_ref().map(|p| p.to_expr(&plan.expr_arena)),
    };
    // The columns in the order the plan above expects them.
    let rows = scan.scan(args)?.select(schema.iter_names_cloned())?;
    plan.lp_arena.replace(
        node,
        IR::DataFrameScan {
            df: Arc::new(rows),
            schema,
            output_schema: None,
        },
    );
    Ok(())
}

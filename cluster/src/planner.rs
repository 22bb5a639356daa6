//! Which queries go to the workers.
//!
//! datafusion-distributed's planner cuts any plan into stages, and a stage
//! is sent to a worker as protobuf: an operator with no encoding fails the
//! query when it runs. Rather than let it fail, [`ClusterPlanner`] plans the
//! query as one process would, tries to encode that plan, and distributes
//! it only when every operator encodes; otherwise the query runs in this
//! process, exactly as without a cluster.
//!
//! A query that reads cached calls cannot travel as planned: the coordinator
//! resolves its calls first and sends the scans that serve them instead
//! ([`crate::served`]). Plain `EXPLAIN` resolves nothing, so it shows such
//! a query as this process would run it; `EXPLAIN ANALYZE` runs it, and
//! shows the stages.
//!
//! The plan is made once, here, and handed to datafusion-distributed's
//! planner to be cut into stages: its planner wraps whatever planner came
//! before it, so a planner that gives back the plan already made is all it
//! takes.

use std::sync::Arc;

use std::sync::Mutex;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::DFSchema;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::context::SessionState;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::{EmptyRelation, Explain, LogicalPlan, PlanType, StringifiedPlan};
use datafusion::physical_plan::analyze::AnalyzeExec;
use datafusion::physical_plan::displayable;
use datafusion::physical_plan::explain::ExplainExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion_distributed::{DistributedCodec, SessionStateBuilderExt};
use datafusion_proto::bytes::physical_plan_to_bytes_with_proto_converter;
use datafusion_proto::physical_plan::DeduplicatingProtoConverter;
use futures::future::BoxFuture;
use nuthatch_udf::parallel::Spread;
use nuthatch_udf::settings::NuthatchOptions;

use crate::served::{find_distributed, serve_calls_here, CallsReportedExec};

/// Distributes a query when its plan can travel to workers, and plans it
/// for this process otherwise (module docs).
#[derive(Debug, Default)]
pub struct ClusterPlanner;

#[async_trait]
impl QueryPlanner for ClusterPlanner {
    async fn create_physical_plan(
        &self,
        logical: &LogicalPlan,
        state: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let planner = DefaultPhysicalPlanner::default();
        if !NuthatchOptions::of(state.config()).distributed {
            return planner.create_physical_plan(logical, state).await;
        }
        if let LogicalPlan::Explain(explain) = logical {
            let local = planner.create_physical_plan(&explain.plan, state).await?;
            if !encodes(&local, state) {
                return planner.create_physical_plan(logical, state).await;
            }
            return explain_distributed(explain, local, state).await;
        }
        let local = planner.create_physical_plan(logical, state).await?;
        if encodes(&local, state) {
            return distribute(local, logical, state).await;
        }
        // Resolving a call may compute it: done only for a query that runs.
        let Some((served, calls)) = serve_calls_here(&local).await? else {
            return Ok(local);
        };
        if !encodes(&served, state) {
            return Ok(local);
        }
        let distributed = distribute(served, logical, state).await?;
        if find_distributed(&distributed).is_none() {
            // Too small to be worth stages: the calls serve here, as resolved.
            return Ok(local);
        }
        Ok(Arc::new(CallsReportedExec::new(distributed, calls)))
    }
}

/// Whether every operator of `plan` can be sent to a worker (the
/// `EXPLAIN ANALYZE` above it stays here).
fn encodes(plan: &Arc<dyn ExecutionPlan>, state: &dyn Session) -> bool {
    let plan = match plan.downcast_ref::<AnalyzeExec>() {
        Some(analyze) => analyze.input(),
        None => plan,
    };
    let codec = DistributedCodec::new_combined_with_user(state.config());
    let converter = DeduplicatingProtoConverter::default();
    match physical_plan_to_bytes_with_proto_converter(Arc::clone(plan), &codec, &converter) {
        Ok(_) => true,
        Err(why) => {
            tracing::debug!(
                "runs in this process, not on the workers: {}",
                why.message()
            );
            false
        }
    }
}

/// `plan`, made for `logical`, cut into stages by datafusion-distributed
/// (module docs); as it is when it is too small to be worth them.
pub(crate) async fn distribute(
    plan: Arc<dyn ExecutionPlan>,
    logical: &LogicalPlan,
    state: &dyn Session,
) -> Result<Arc<dyn ExecutionPlan>> {
    let mut builder = SessionStateBuilder::new()
        .with_query_planner(Arc::new(Made(Mutex::new(Some(plan)))))
        .with_distributed_planner();
    let distributed = builder
        .query_planner()
        .take()
        .expect("the distributed planner was just set");
    distributed.create_physical_plan(logical, state).await
}

/// A planner that gives back a plan already made, once.
#[derive(Debug)]
struct Made(Mutex<Option<Arc<dyn ExecutionPlan>>>);

#[async_trait]
impl QueryPlanner for Made {
    async fn create_physical_plan(
        &self,
        _logical: &LogicalPlan,
        _state: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.0
            .lock()
            .expect("made plan poisoned")
            .take()
            .ok_or_else(|| DataFusionError::Internal("a made plan is given once".into()))
    }
}

/// `EXPLAIN` of a distributed query: the logical plans as DataFusion shows
/// them, and the distributed physical plan, whose stages say what runs on
/// the workers (DataFusion's own explain would plan the query again for
/// this process).
async fn explain_distributed(
    explain: &Explain,
    local: Arc<dyn ExecutionPlan>,
    state: &dyn Session,
) -> Result<Arc<dyn ExecutionPlan>> {
    let physical = distribute(local, &explain.plan, state).await?;
    let mut plans = explain.stringified_plans.clone();
    let shown = displayable(physical.as_ref())
        .indent(explain.verbose)
        .to_string();
    plans.push(StringifiedPlan::new(PlanType::FinalPhysicalPlan, shown));
    let schema = Arc::clone(explain.schema.inner());
    Ok(Arc::new(ExplainExec::new(schema, plans, explain.verbose)))
}

/// Spreads plans the resolver builds (a miss written by the workers) as
/// queries are: see [`nuthatch_udf::parallel`].
#[derive(Debug)]
pub(crate) struct ClusterSpread;

impl Spread for ClusterSpread {
    fn spread<'a>(
        &'a self,
        plan: Arc<dyn ExecutionPlan>,
        state: &'a SessionState,
    ) -> BoxFuture<'a, Result<Option<Arc<dyn ExecutionPlan>>>> {
        Box::pin(async move {
            if !NuthatchOptions::of(state.config()).distributed || !encodes(&plan, state) {
                return Ok(None);
            }
            // The plan is made; the logical one only passes through.
            let nothing = LogicalPlan::EmptyRelation(EmptyRelation {
                produce_one_row: false,
                schema: Arc::new(DFSchema::empty()),
            });
            let spread = distribute(plan, &nothing, state).await?;
            Ok(find_distributed(&spread).is_some().then_some(spread))
        })
    }
}

//! Which queries go to the workers.
//!
//! datafusion-distributed's planner cuts any plan into stages, and a stage
//! is sent to a worker as protobuf: an operator with no encoding fails the
//! query when it runs. Rather than let it fail, [`ClusterPlanner`] plans the
//! query as one process would, tries to encode that plan, and distributes
//! it only when every operator encodes; otherwise the query runs in this
//! process, exactly as without a cluster. The plan is made twice for a
//! distributed query; planning costs milliseconds, the queries worth a
//! cluster seconds or more.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::Result;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::{Explain, LogicalPlan, PlanType, StringifiedPlan};
use datafusion::physical_plan::displayable;
use datafusion::physical_plan::explain::ExplainExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion_distributed::DistributedCodec;
use datafusion_proto::bytes::physical_plan_to_bytes_with_proto_converter;
use datafusion_proto::physical_plan::DeduplicatingProtoConverter;

/// Distributes a query when its plan can travel to workers, and plans it
/// for this process otherwise (module docs).
pub struct ClusterPlanner {
    distributed: Arc<dyn QueryPlanner + Send + Sync>,
}

impl std::fmt::Debug for ClusterPlanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterPlanner")
    }
}

impl ClusterPlanner {
    /// Over datafusion-distributed's planner, `distributed`.
    pub fn new(distributed: Arc<dyn QueryPlanner + Send + Sync>) -> ClusterPlanner {
        ClusterPlanner { distributed }
    }
}

impl ClusterPlanner {
    /// `EXPLAIN` of a distributed query: the logical plans as DataFusion
    /// shows them, and the distributed physical plan, whose stages say
    /// what runs on the workers (DataFusion's own explain would plan the
    /// query again for this process).
    async fn explain(
        &self,
        explain: &Explain,
        state: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let physical = self
            .distributed
            .create_physical_plan(&explain.plan, state)
            .await?;
        let mut plans = explain.stringified_plans.clone();
        let shown = displayable(physical.as_ref())
            .indent(explain.verbose)
            .to_string();
        plans.push(StringifiedPlan::new(PlanType::FinalPhysicalPlan, shown));
        let schema = Arc::clone(explain.schema.inner());
        Ok(Arc::new(ExplainExec::new(schema, plans, explain.verbose)))
    }
}

#[async_trait]
impl QueryPlanner for ClusterPlanner {
    async fn create_physical_plan(
        &self,
        logical: &LogicalPlan,
        state: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // `EXPLAIN [ANALYZE]` is distributed when what it explains can be:
        // datafusion-distributed's planner then explains the stages.
        let query = match logical {
            LogicalPlan::Explain(explain) => explain.plan.as_ref(),
            LogicalPlan::Analyze(analyze) => analyze.input.as_ref(),
            other => other,
        };
        let planner = DefaultPhysicalPlanner::default();
        let local = planner.create_physical_plan(query, state).await?;
        let codec = DistributedCodec::new_combined_with_user(state.config());
        let converter = DeduplicatingProtoConverter::default();
        match physical_plan_to_bytes_with_proto_converter(Arc::clone(&local), &codec, &converter) {
            Ok(_) => match logical {
                LogicalPlan::Explain(explain) => self.explain(explain, state).await,
                _ => self.distributed.create_physical_plan(logical, state).await,
            },
            Err(why) => {
                tracing::debug!(
                    "runs in this process, not on the workers: {}",
                    why.message()
                );
                if std::ptr::eq(query, logical) {
                    return Ok(local);
                }
                planner.create_physical_plan(logical, state).await
            }
        }
    }
}

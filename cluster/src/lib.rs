//! Queries, and the bodies of cached functions, run across workers.
//!
//! This crate owns the cluster: the coordinator's side (which queries go to
//! workers, and how they are reached), the worker's side (what
//! `nuthatch worker` serves), and an in-process cluster for tests. It is
//! built on datafusion-distributed rather than a scheduler of its own:
//! planning stays in the process that planned the query, where the table
//! functions, tiers, modes and credentials are, and the physical plan is
//! cut into stages at its repartitions, each sent to workers over gRPC and
//! run there on their own DataFusion runtime. Ballista was the other
//! choice; it takes over planning in a scheduler process, which would move
//! tier lookups and cache modes away from the front end that asked.
//!
//! What runs where (this step of the work):
//!
//! - A query whose every operator can be sent to a worker (DataFusion's
//!   own scans, joins, aggregates, windows) is distributed: `EXPLAIN` shows
//!   `DistributedExec` and its stages.
//! - A query that reads cached calls has them resolved here first (the
//!   tiers, modes and credentials are here); the scan each call serves from
//!   a stored Parquet entry then travels in its place (module `served`).
//! - A query holding something that cannot travel (rows served from
//!   memory, a miss served while it is written, a format's own scan, the
//!   rolling-window operator, a system table) runs in the coordinator, as
//!   without a cluster. A cached call's body plans in a session of its own,
//!   so a body over large inputs is distributed when its plan can travel.
//!
//! [`attach`] makes an [`Engine`]'s sessions coordinators, from
//! `[distributed] workers`; [`worker`] is what a worker process serves.

mod in_memory;
mod planner;
mod served;

use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::SessionStateBuilder;
use datafusion_distributed::{
    grpc, ChannelResolver, DistributedExt, SessionStateBuilderExt, Worker, WorkerQueryContext,
    WorkerResolver,
};
use nuthatch_udf::Engine;
use url::Url;

pub use in_memory::InMemoryCluster;
pub use planner::ClusterPlanner;
pub use served::{ServedCallCodec, ServedCallExec};

/// The workers a coordinator sends stages to: a fixed list of URLs.
#[derive(Debug, Clone)]
pub struct Workers(Vec<Url>);

impl Workers {
    /// The URLs `[distributed] workers` lists; an error names one that is
    /// not a URL.
    pub fn parse(urls: &[String]) -> Result<Workers> {
        let parsed = urls
            .iter()
            .map(|text| {
                Url::parse(text).map_err(|e| {
                    DataFusionError::Configuration(format!(
                        "distributed.workers: '{text}' is not a worker URL ({e}); write \
                         http://host:port, as `nuthatch worker` prints it"
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Workers(parsed))
    }

    pub fn urls(&self) -> &[Url] {
        &self.0
    }
}

impl WorkerResolver for Workers {
    fn get_urls(&self) -> Result<Vec<Url>> {
        Ok(self.0.clone())
    }
}

/// Makes every session `engine` makes from now on a coordinator of the
/// workers its configuration lists (`[distributed] workers`,
/// `NUTHATCH_DISTRIBUTED_WORKERS`). Returns the workers, or `None` when
/// none are configured and queries run alone.
pub fn attach(engine: &Engine) -> Result<Option<Workers>> {
    let urls = &engine.config().distributed.workers;
    if urls.is_empty() {
        return Ok(None);
    }
    let workers = Workers::parse(urls)?;
    let channels = Channels(Arc::new(NamedChannels::default()));
    attach_to(engine, workers.clone(), channels);
    Ok(Some(workers))
}

/// datafusion-distributed's gRPC connections, with an error that names the
/// worker that cannot be reached and what to do about it.
#[derive(Default)]
struct NamedChannels(grpc::DefaultChannelResolver);

#[async_trait::async_trait]
impl ChannelResolver for NamedChannels {
    async fn get_worker_client_for_url(
        &self,
        url: &Url,
    ) -> Result<Box<dyn datafusion_distributed::WorkerChannel>> {
        match self.0.get_worker_client_for_url(url).await {
            Ok(client) => Ok(client),
            Err(e) => {
                let cause = why_unreachable(url)
                    .await
                    .unwrap_or_else(|| e.message().into());
                Err(DataFusionError::Execution(format!(
                    "worker {url} cannot be reached ({cause}); start it there with `nuthatch \
                     worker --listen HOST:PORT`, or take it out of distributed.workers"
                )))
            }
        }
    }
}

/// Why a TCP connection to `url` fails (refused, no such host, timed out),
/// which gRPC's error leaves out; `None` when it connects.
async fn why_unreachable(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    let connect = tokio::net::TcpStream::connect((host, port));
    match tokio::time::timeout(std::time::Duration::from_secs(5), connect).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("no answer within 5s".into()),
    }
}

/// How a coordinator reaches its workers: gRPC connections, or the
/// in-process cluster's pipes.
#[derive(Clone)]
pub(crate) struct Channels(Arc<dyn ChannelResolver + Send + Sync>);

#[async_trait::async_trait]
impl ChannelResolver for Channels {
    async fn get_worker_client_for_url(
        &self,
        url: &Url,
    ) -> Result<Box<dyn datafusion_distributed::WorkerChannel>> {
        self.0.get_worker_client_for_url(url).await
    }
}

/// Makes `engine`'s sessions coordinators of `workers`, reached through
/// `channels`.
pub(crate) fn attach_to(engine: &Engine, workers: Workers, channels: Channels) {
    engine.set_session_hook(Arc::new(move |builder: SessionStateBuilder| {
        builder
            .with_distributed_planner()
            .with_query_planner(Arc::new(ClusterPlanner))
            .with_distributed_worker_resolver(workers.clone())
            .with_distributed_channel_resolver(channels.clone())
            .with_distributed_user_codec(ServedCallCodec)
    }));
}

/// A worker's session for one task: the coordinator's stages run on
/// `runtime`, and what nuthatch adds to a plan decodes.
pub(crate) fn worker_session(
    builder: SessionStateBuilder,
    runtime: Arc<RuntimeEnv>,
) -> SessionStateBuilder {
    builder
        .with_runtime_env(runtime)
        .with_distributed_user_codec(ServedCallCodec)
}

/// What a worker process serves: stages of queries planned by
/// coordinators, run on `engine`'s runtime, whose object stores are the
/// tiers the project's configuration names (with this process's
/// credentials).
pub fn worker(engine: &Engine) -> Worker {
    let runtime = Arc::clone(engine.runtime());
    Worker::from_session_builder(move |ctx: WorkerQueryContext| {
        let runtime = Arc::clone(&runtime);
        async move { Ok(worker_session(ctx.builder, runtime).build()) }
    })
    .with_runtime_env(Arc::clone(engine.runtime()))
    .with_version(env!("CARGO_PKG_VERSION"))
}

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

mod codec;
mod connect;
mod in_memory;
mod planner;
mod served;

use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion_distributed::{
    ChannelResolver, DistributedExt, SessionStateBuilderExt, Worker, WorkerQueryContext,
    WorkerResolver,
};
use datafusion_proto::physical_plan::PhysicalExtensionCodec;
use nuthatch_udf::parallel::ParallelWrites;
use nuthatch_udf::Engine;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use url::Url;

pub use codec::NuthatchCodec;
use connect::{Dialer, TokenCheck};
pub use in_memory::InMemoryCluster;
pub use planner::ClusterPlanner;
pub use served::ServedCallExec;

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
/// `NUTHATCH_DISTRIBUTED_WORKERS`), reached with its token and TLS
/// settings. Returns the workers, or `None` when none are configured and
/// queries run alone.
pub fn attach(engine: &Engine) -> Result<Option<Workers>> {
    let config = &engine.config().distributed;
    if config.workers.is_empty() {
        return Ok(None);
    }
    let workers = Workers::parse(&config.workers)?;
    let channels = Channels(Arc::new(Dialer::new(config)?));
    attach_to(engine, workers.clone(), channels);
    Ok(Some(workers))
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
    let codec = codec(engine);
    engine.set_session_hook(Arc::new(move |builder: SessionStateBuilder| {
        let mut builder = builder
            .with_distributed_planner()
            .with_query_planner(Arc::new(ClusterPlanner))
            .with_distributed_worker_resolver(workers.clone())
            .with_distributed_channel_resolver(channels.clone())
            .with_distributed_user_codec_arc(codec.clone());
        // Misses are written by the workers, as parts of one entry.
        let writes = ParallelWrites(Arc::new(planner::ClusterSpread));
        builder
            .config()
            .get_or_insert_default()
            .set_extension(Arc::new(writes));
        builder
    }));
}

/// The codec of nuthatch's operators, with `engine`'s formats.
fn codec(engine: &Engine) -> Arc<dyn PhysicalExtensionCodec> {
    Arc::new(NuthatchCodec::new(engine.catalog().backends().clone()))
}

/// A worker's session for one task: the coordinator's stages run on
/// `engine`'s runtime, and what nuthatch adds to a plan decodes.
pub(crate) fn worker_session(builder: SessionStateBuilder, engine: &Engine) -> SessionStateBuilder {
    builder
        .with_runtime_env(Arc::clone(engine.runtime()))
        .with_distributed_user_codec_arc(codec(engine))
}

/// What a worker process serves: stages of queries planned by
/// coordinators, run on `engine`'s runtime, whose object stores are the
/// tiers the project's configuration names (with this process's
/// credentials). It reaches other workers as a coordinator does.
pub fn worker(engine: &Engine) -> Result<Worker> {
    let channels = Channels(Arc::new(Dialer::new(&engine.config().distributed)?));
    let own = engine.clone();
    Ok(
        Worker::from_session_builder(move |ctx: WorkerQueryContext| {
            let (engine, channels) = (own.clone(), channels.clone());
            async move {
                Ok(worker_session(ctx.builder, &engine)
                    .with_distributed_channel_resolver(channels)
                    .build())
            }
        })
        .with_runtime_env(Arc::clone(engine.runtime()))
        .with_version(env!("CARGO_PKG_VERSION")),
    )
}

/// Serves [`worker`] on `listener` until `shutdown` completes: over TLS
/// when `identity` (a PEM certificate chain and key) is given, and only to
/// coordinators and workers presenting `distributed.token` when one is
/// set.
pub async fn serve_worker(
    engine: &Engine,
    listener: tokio::net::TcpListener,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let check = TokenCheck::new(engine.config().distributed.token.as_deref())?;
    let service = InterceptedService::new(worker(engine)?.into_worker_server(), check);
    let mut server = Server::builder();
    if let Some((cert, key)) = identity {
        install_crypto();
        server = server
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
            .map_err(|e| {
                DataFusionError::Configuration(format!(
                    "the worker's TLS certificate and key cannot be used: {e}"
                ))
            })?;
    }
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    server
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| DataFusionError::Execution(format!("the worker stopped: {e}")))
}

/// Picks rustls's cryptography: a build whose features bring in more than
/// one provider has none chosen for it. Once is enough; later calls find
/// it set.
pub(crate) fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

//! A cluster inside this process, for tests: workers served over in-memory
//! pipes instead of TCP. Stages still travel encoded through gRPC, as to
//! workers on other machines, so what cannot be encoded fails here too.

use std::sync::{Arc, Mutex};

use datafusion::common::{DataFusionError, Result};
use datafusion_distributed::{
    grpc, ChannelResolver, DistributedExt, Worker, WorkerChannel, WorkerQueryContext,
};
use hyper_util::rt::TokioIo;
use nuthatch_udf::Engine;
use tonic::transport::{Endpoint, Server};
use url::Url;

use crate::{attach_to, worker_session, Channels, Workers};

/// Where the in-process workers claim to be; no socket is opened.
const PIPE_URL: &str = "http://in-process-worker:7400";

/// A cluster of in-process workers (module docs).
pub struct InMemoryCluster;

impl InMemoryCluster {
    /// Makes `engine`'s sessions coordinators of `workers` in-process
    /// workers, which run their stages on `engine`'s runtime. Needs a
    /// Tokio runtime: the workers' server runs on it.
    pub fn attach(engine: &Engine, workers: usize) -> Result<()> {
        let url = Url::parse(PIPE_URL).expect("a valid URL");
        // Distinct URLs, so that the planner counts distinct workers; the
        // pipe answers for all of them.
        let urls = (0..workers.max(1))
            .map(|i| Url::parse(&format!("http://in-process-worker-{i}:7400")))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| DataFusionError::Internal(e.to_string()))?;
        let pipe = Pipe::open(engine, url)?;
        attach_to(engine, Workers(urls), Channels(Arc::new(pipe)));
        Ok(())
    }
}

/// gRPC clients over one in-memory duplex, served by one worker.
#[derive(Clone)]
struct Pipe {
    channel: grpc::BoxCloneSyncChannel,
}

impl Pipe {
    fn open(engine: &Engine, url: Url) -> Result<Pipe> {
        let (client, server) = tokio::io::duplex(1024 * 1024);
        let client = Mutex::new(Some(client));
        let channel = Endpoint::try_from(url.to_string())
            .map_err(|e| DataFusionError::Internal(e.to_string()))?
            .connect_with_connector_lazy(tower::service_fn(move |_| {
                let taken = client.lock().expect("pipe").take();
                async move {
                    let client = taken.ok_or_else(|| {
                        std::io::Error::other("the in-process pipe connects once")
                    })?;
                    Ok::<_, std::io::Error>(TokioIo::new(client))
                }
            }));
        let pipe = Pipe {
            channel: grpc::BoxCloneSyncChannel::new(channel),
        };
        let own = engine.clone();
        let dialing = pipe.clone();
        let worker = Worker::from_session_builder(move |ctx: WorkerQueryContext| {
            let (engine, dialing) = (own.clone(), dialing.clone());
            async move {
                Ok(worker_session(ctx.builder, &engine)
                    .with_distributed_channel_resolver(dialing)
                    .build())
            }
        })
        .with_runtime_env(Arc::clone(engine.runtime()));
        tokio::spawn(async move {
            let served = Server::builder()
                .add_service(worker.into_worker_server())
                .serve_with_incoming(tokio_stream::once(Ok::<_, std::io::Error>(server)))
                .await;
            if let Err(e) = served {
                tracing::warn!("the in-process worker stopped: {e}");
            }
        });
        Ok(pipe)
    }
}

#[async_trait::async_trait]
impl ChannelResolver for Pipe {
    async fn get_worker_client_for_url(&self, _url: &Url) -> Result<Box<dyn WorkerChannel>> {
        Ok(grpc::create_worker_client(self.channel.clone()))
    }
}

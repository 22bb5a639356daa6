//! `nuthatch worker`: serves the stages of queries that coordinators send,
//! with this project's configuration: the same tiers, read and written
//! with this process's credentials.

use std::net::SocketAddr;

use clap::Args as ClapArgs;
use datafusion::error::{DataFusionError, Result};
use nuthatch::Session;

#[derive(Debug, Clone, ClapArgs)]
pub struct WorkerArgs {
    /// Address to listen on; coordinators list it in `[distributed]
    /// workers` as http://HOST:PORT [default: 127.0.0.1:7400, loopback
    /// unless you say otherwise].
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub listen: SocketAddr,
}

/// Serves until Ctrl-C.
pub async fn run(session: &Session, args: &WorkerArgs) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| {
            DataFusionError::Execution(format!(
                "cannot listen on {}: {e}; pick another address with --listen",
                args.listen
            ))
        })?;
    let addr = listener.local_addr().unwrap_or(args.listen);
    eprintln!("nuthatch: worker on http://{addr}; Ctrl-C stops");
    let worker = nuthatch::cluster::worker(session.engine());
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tonic::transport::Server::builder()
        .add_service(worker.into_worker_server())
        .serve_with_incoming_shutdown(incoming, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| DataFusionError::Execution(format!("the worker stopped: {e}")))
}

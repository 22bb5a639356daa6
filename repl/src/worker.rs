//! `nuthatch worker`: serves the stages of queries that coordinators send,
//! with this project's configuration: the same tiers, read and written
//! with this process's credentials, and the cluster's token and TLS.

use std::net::SocketAddr;
use std::path::PathBuf;

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
    /// PEM certificate chain for TLS (with --tls-key); coordinators then
    /// list this worker as https://HOST:PORT [default: distributed.tls_cert].
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS [default: distributed.tls_key].
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// Serves until Ctrl-C. Coordinators and other workers must present the
/// cluster's token (`distributed.token`, `$NUTHATCH_DISTRIBUTED_TOKEN`)
/// when there is one.
pub async fn run(session: &Session, args: &WorkerArgs) -> Result<()> {
    let settings = &session.engine().config().distributed;
    let (cert, key) = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => (Some(cert), Some(key)),
        _ => (settings.tls_cert.as_ref(), settings.tls_key.as_ref()),
    };
    let identity = match (cert, key) {
        (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
        (None, None) => None,
        _ => {
            return Err(DataFusionError::Configuration(
                "distributed.tls_cert and distributed.tls_key go together; set both or neither"
                    .into(),
            ))
        }
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| {
            DataFusionError::Execution(format!(
                "cannot listen on {}: {e}; pick another address with --listen",
                args.listen
            ))
        })?;
    let addr = listener.local_addr().unwrap_or(args.listen);
    let scheme = if identity.is_some() { "https" } else { "http" };
    let auth = if settings.token.is_some() {
        ", token required"
    } else {
        ""
    };
    eprintln!("nuthatch: worker on {scheme}://{addr}{auth}; Ctrl-C stops");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    nuthatch::cluster::serve_worker(session.engine(), listener, identity, shutdown).await
}

fn read(path: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| DataFusionError::Configuration(format!("cannot read {}: {e}", path.display())))
}

//! `nuthatch serve`: the Arrow Flight SQL server over the same
//! configuration, definitions and catalog as the prompt, for ADBC clients.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args as ClapArgs;
use datafusion::error::{DataFusionError, Result};
use nuthatch::crates::flight::{self, ServeOptions};
use nuthatch::Session;

#[derive(Debug, Clone, ClapArgs)]
pub struct Serve {
    /// Address to listen on; loopback unless you say otherwise.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub addr: SocketAddr,
    /// PEM certificate chain for TLS (with --tls-key); clients then use
    /// grpc+tls://.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// Serves until Ctrl-C. Clients must present $NUTHATCH_SERVER_TOKEN as
/// `Bearer <token>` when it is set.
pub async fn run(session: &Session, serve: &Serve) -> Result<()> {
    let token = std::env::var("NUTHATCH_SERVER_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty());
    let tls = match (&serve.tls_cert, &serve.tls_key) {
        (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
        _ => None,
    };
    let listener = flight::bind(serve.addr).await?;
    let scheme = if tls.is_some() { "grpc+tls" } else { "grpc" };
    let auth = if token.is_some() {
        ", token required"
    } else {
        ""
    };
    eprintln!(
        "nuthatch: Flight SQL on {scheme}://{}{auth}; Ctrl-C stops",
        listener.local_addr().map_or(serve.addr, |a| a)
    );
    let options = ServeOptions { token, tls };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    flight::serve(session.engine().clone(), listener, options, shutdown).await
}

fn read(path: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| DataFusionError::Configuration(format!("cannot read {}: {e}", path.display())))
}

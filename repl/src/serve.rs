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
    /// Address to listen on [default: server.addr, else 127.0.0.1:50051,
    /// loopback unless you say otherwise].
    #[arg(long)]
    pub addr: Option<SocketAddr>,
    /// PEM certificate chain for TLS (with --tls-key); clients then use
    /// grpc+tls:// [default: server.tls_cert].
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS [default: server.tls_key].
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// The address when neither the flag nor the configuration names one.
const DEFAULT_ADDR: &str = "127.0.0.1:50051";

/// Serves until Ctrl-C. Clients must present the configured token
/// (`server.token`, `$NUTHATCH_SERVER_TOKEN`) as `Bearer <token>` when
/// there is one.
pub async fn run(session: &Session, serve: &Serve) -> Result<()> {
    let settings = &session.engine().config().server;
    let addr = match (serve.addr, &settings.addr) {
        (Some(addr), _) => addr,
        (None, configured) => {
            let text = configured.as_deref().unwrap_or(DEFAULT_ADDR);
            text.parse().map_err(|_| {
                DataFusionError::Configuration(format!(
                    "server.addr '{text}' is not host:port (such as 127.0.0.1:50051)"
                ))
            })?
        }
    };
    let tls = match (&serve.tls_cert, &serve.tls_key) {
        (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
        _ => match (&settings.tls_cert, &settings.tls_key) {
            (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
            (None, None) => None,
            _ => {
                return Err(DataFusionError::Configuration(
                    "server.tls_cert and server.tls_key go together; set both or neither".into(),
                ))
            }
        },
    };
    let token = settings.token.clone();
    let listener = flight::bind(addr).await?;
    let scheme = if tls.is_some() { "grpc+tls" } else { "grpc" };
    let auth = if token.is_some() {
        ", token required"
    } else {
        ""
    };
    eprintln!(
        "nuthatch: Flight SQL on {scheme}://{}{auth}; Ctrl-C stops",
        listener.local_addr().map_or(addr, |a| a)
    );
    let options = ServeOptions {
        token,
        tls,
        session_idle: settings.session_idle,
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    flight::serve(session.engine().clone(), listener, options, shutdown).await
}

fn read(path: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| DataFusionError::Configuration(format!("cannot read {}: {e}", path.display())))
}

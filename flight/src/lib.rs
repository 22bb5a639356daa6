//! An Arrow Flight SQL server over nuthatch sessions, so that notebooks
//! reach cached functions through ADBC (`adbc_driver_flightsql`).
//!
//! Built on arrow-flight's `FlightSqlService` rather than
//! datafusion-flight-sql-server: that crate plans SQL itself (so `CREATE
//! CACHED FUNCTION` cannot pass), makes a new context per request (so `SET`
//! is lost), re-plans a prepared statement at every step, and cannot send
//! the response header that pins a client to its session.
//!
//! - **Sessions** ([`clients`]): gRPC has no connection id, so the first
//!   response to a client carries `authorization: Bearer <session token>`,
//!   which the ADBC driver sends back from then on. Each token is one
//!   nuthatch [`Session`](nuthatch_udf::Session) of the shared engine: its
//!   own `SET nuthatch.*` and call reports, the engine's catalog and
//!   in-flight computes. Sessions idle too long end on a timer (and when a
//!   client arrives). With a server token configured, a client must
//!   present it first; it is compared in constant time and never logged.
//! - **Statements** ([`service`]): a prepared statement is planned once,
//!   when prepared; each execution makes one physical plan, whose schema is
//!   announced in the FlightInfo exactly as the stream encodes it. Commands
//!   (DDL, `SET`, `CREATE CACHED FUNCTION`) run when executed, not when
//!   prepared. Results stream; a client that goes away drops the stream and
//!   so cancels the query.
//! - **Parameters** ([`nuthatch_udf::params`]): a statement with `?` or `$n` placeholders
//!   is parsed when prepared and planned at each execution, with the values
//!   the client bound (a DoPut) put into the parsed statement as literals;
//!   a cached call's arguments must be known to plan the call, which
//!   DataFusion's after-planning binding cannot give.
//! - **Metadata** ([`metadata`]): GetSqlInfo, catalogs, schemas, tables
//!   (with their schemas), table types.
//! - **Errors** ([`status`]): the same one-line text as the binary, with a
//!   gRPC code the client maps to the right exception.

pub mod clients;
pub mod metadata;
pub mod service;
pub mod status;

use std::net::SocketAddr;

use arrow_flight::flight_service_server::FlightServiceServer;
use datafusion::error::{DataFusionError, Result};
use nuthatch_udf::Engine;
use tonic::transport::{Identity, Server, ServerTlsConfig};

/// The arrow-flight this server is built on, for programs that reach it.
pub use arrow_flight;
pub use service::FlightSqlServer;

/// How `nuthatch serve` listens.
#[derive(Clone, Default)]
pub struct ServeOptions {
    /// A token clients must present (`authorization: Bearer <token>`).
    pub token: Option<String>,
    /// PEM certificate chain and private key, for TLS.
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    /// How long a session lives without a request (a day if `None`).
    pub session_idle: Option<std::time::Duration>,
}

impl std::fmt::Debug for ServeOptions {
    // The token and the key are secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("tls", &self.tls.is_some())
            .field("session_idle", &self.session_idle)
            .finish()
    }
}

/// Serves `engine` on `listener` until `shutdown` completes.
pub async fn serve(
    engine: Engine,
    listener: tokio::net::TcpListener,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<()> {
    let server = FlightSqlServer::new(engine, &options);
    let service = FlightServiceServer::new(server)
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024);
    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .tcp_nodelay(true);
    if let Some((cert, key)) = &options.tls {
        // rustls picks its cryptography by feature, and a build that also
        // has the Delta backend carries two (ring, and aws-lc-rs through
        // delta-rs' HTTP client), so it cannot pick: name tonic's. An
        // embedding program that installed one keeps it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
            .map_err(|e| DataFusionError::Configuration(format!("TLS certificate or key: {e}")))?;
    }
    let incoming = tokio_stream_of(listener);
    builder
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| DataFusionError::Execution(format!("the Flight SQL server stopped: {e}")))
}

/// The listener's connections, as tonic takes them.
fn tokio_stream_of(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| {
            let _ = stream.set_nodelay(true);
            stream
        });
        Some((accepted, listener))
    })
}

/// Binds `addr`, saying what to change when it cannot.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        DataFusionError::Configuration(format!(
            "cannot listen on {addr}: {e}; choose another --addr"
        ))
    })
}

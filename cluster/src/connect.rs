//! How workers are reached, and who may reach them.
//!
//! Coordinators dial workers, and workers dial each other (a stage reads
//! the rows of the stage below from the workers that ran it), so both sides
//! use the same [`Dialer`]: one gRPC connection per worker, kept; TLS for an
//! `https://` worker, trusting `distributed.tls_ca` or else the system's
//! roots; the cluster's token (`distributed.token`) on every request; and a
//! connection that fails names the worker and why, within seconds. A
//! worker, in turn, refuses a request without the token
//! ([`TokenCheck`]), as `nuthatch serve` refuses a client.
//!
//! datafusion-distributed's own resolver does the first of these only; its
//! connections cannot carry a header or TLS, so this one replaces it.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use datafusion::common::{DataFusionError, Result};
use datafusion_distributed::{grpc, ChannelResolver, WorkerChannel};
use http_body_util::BodyExt;
use nuthatch_catalog::config::DistributedConfig;
use tonic::body::Body;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};
use url::Url;

/// How long a worker has to accept a connection before it is named as
/// unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections to workers (module docs).
pub(crate) struct Dialer {
    /// `Bearer <token>`, marked sensitive so that no log shows it.
    authorization: Option<http::HeaderValue>,
    tls: ClientTlsConfig,
    channels: tokio::sync::Mutex<HashMap<Url, grpc::BoxCloneSyncChannel>>,
}

impl Dialer {
    /// From the project's `[distributed]` settings; an error names a CA
    /// file that cannot be read.
    pub(crate) fn new(config: &DistributedConfig) -> Result<Dialer> {
        let authorization = match &config.token {
            Some(token) => {
                let mut value =
                    http::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                        DataFusionError::Configuration(
                            "distributed.token holds characters a header cannot carry; use \
                             letters, digits and punctuation"
                                .into(),
                        )
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let tls = match &config.tls_ca {
            Some(path) => {
                ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(path, "tls_ca")?))
            }
            None => ClientTlsConfig::new().with_native_roots(),
        };
        Ok(Dialer {
            authorization,
            tls,
            channels: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The connection to `url`, made on first use.
    async fn channel(&self, url: &Url) -> Result<grpc::BoxCloneSyncChannel> {
        let mut channels = self.channels.lock().await;
        if let Some(channel) = channels.get(url) {
            return Ok(channel.clone());
        }
        let channel = self.connect(url).await?;
        let authorization = self.authorization.clone();
        let worker = url.clone();
        let authorized = tower::ServiceBuilder::new()
            .map_request(move |mut request: http::Request<Body>| {
                if let Some(value) = &authorization {
                    request
                        .headers_mut()
                        .insert(http::header::AUTHORIZATION, value.clone());
                }
                request
            })
            .map_response(move |response: http::Response<Body>| {
                let worker = worker.clone();
                response.map(|body| {
                    Body::new(body.map_err(move |cause| Dropped {
                        worker: worker.clone(),
                        cause: cause.to_string(),
                    }))
                })
            })
            .service(channel);
        let channel = grpc::BoxCloneSyncChannel::new(authorized);
        channels.insert(url.clone(), channel.clone());
        Ok(channel)
    }

    async fn connect(&self, url: &Url) -> Result<tonic::transport::Channel> {
        let unreachable = |cause: String| {
            DataFusionError::Execution(format!(
                "worker {url} cannot be reached ({cause}); start it there with `nuthatch worker \
                 --listen HOST:PORT`, or take it out of distributed.workers"
            ))
        };
        let mut endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| unreachable(e.to_string()))?
            .connect_timeout(CONNECT_TIMEOUT);
        if url.scheme() == "https" {
            crate::install_crypto();
            endpoint = endpoint
                .tls_config(self.tls.clone())
                .map_err(|e| unreachable(chain(&e)))?;
        }
        let error = match endpoint.connect().await {
            Ok(channel) => return Ok(channel),
            Err(e) => e,
        };
        // A worker that takes the TCP connection and fails the call anyway
        // failed its TLS handshake: say so, rather than suggest starting it.
        match why_unreachable(url).await {
            Some(cause) => Err(unreachable(cause)),
            None if url.scheme() == "https" => Err(DataFusionError::Execution(format!(
                "worker {url} answers but its TLS cannot be trusted ({}); if its certificate \
                 is signed by an authority of your own, give that authority's certificate as \
                 distributed.tls_ca",
                chain(&error)
            ))),
            None => Err(unreachable(chain(&error))),
        }
    }
}

#[async_trait::async_trait]
impl ChannelResolver for Dialer {
    async fn get_worker_client_for_url(&self, url: &Url) -> Result<Box<dyn WorkerChannel>> {
        Ok(grpc::create_worker_client(self.channel(url).await?))
    }
}

/// A worker's stream that broke off mid-query (the worker died, or its
/// connection did): the error names the worker, whose own error (a broken
/// pipe) would not. It keeps its cause as text, not as a source, so that
/// gRPC takes this message rather than the cause's.
#[derive(Debug)]
struct Dropped {
    worker: Url,
    cause: String,
}

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "worker {} stopped answering mid-query ({}); nothing the query was storing was \
             kept: restart the worker, or take it out of distributed.workers, and run it again",
            self.worker, self.cause
        )
    }
}

impl std::error::Error for Dropped {}

/// An error and its causes, one after another: tonic's own text for a
/// failed connection is only "transport error".
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        // Causes often repeat what the error above them said.
        let said = inner.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = inner.source();
    }
    text
}

/// Why a TCP connection to `url` fails (refused, no such host, timed out),
/// which gRPC's error leaves out; `None` when it connects.
async fn why_unreachable(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    let connect = tokio::net::TcpStream::connect((host, port));
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("no answer within 5s".into()),
    }
}

/// A worker's check of the cluster's token on every request (module docs).
#[derive(Clone)]
pub(crate) struct TokenCheck {
    expected: Option<AsciiMetadataValue>,
}

impl TokenCheck {
    pub(crate) fn new(token: Option<&str>) -> Result<TokenCheck> {
        let expected = match token {
            Some(token) => Some(MetadataValue::try_from(format!("Bearer {token}")).map_err(
                |_| {
                    DataFusionError::Configuration(
                        "distributed.token holds characters a header cannot carry".into(),
                    )
                },
            )?),
            None => None,
        };
        Ok(TokenCheck { expected })
    }
}

impl tonic::service::Interceptor for TokenCheck {
    fn call(&mut self, request: Request<()>) -> std::result::Result<Request<()>, Status> {
        let Some(expected) = &self.expected else {
            return Ok(request);
        };
        let presented = request.metadata().get("authorization");
        // Compared in full whatever differs, so that the time taken tells
        // nothing about the token.
        let matches = presented.is_some_and(|presented| {
            let (a, b) = (presented.as_bytes(), expected.as_bytes());
            a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
        });
        if matches {
            Ok(request)
        } else {
            Err(Status::unauthenticated(
                "this worker needs the cluster's token: set distributed.token \
                 (NUTHATCH_DISTRIBUTED_TOKEN) to the same value on the coordinator and every \
                 worker",
            ))
        }
    }
}

/// The bytes of a PEM file a setting names; an error names both.
fn read(path: &Path, setting: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        DataFusionError::Configuration(format!(
            "distributed.{setting}: cannot read {}: {e}",
            path.display()
        ))
    })
}

//! `[nuthatch.distributed]`: the workers a coordinator sends query stages
//! to, and how it reaches them.
//!
//! Kept with the rest of the configuration so that one project file (or
//! `NUTHATCH_DISTRIBUTED_WORKERS` in a deployment) points every front end
//! of a project at the same cluster; without workers, queries run in the
//! process that plans them.

use std::fmt;
use std::path::{Path, PathBuf};

use super::access;

/// The cluster's settings; all optional.
#[derive(Clone, Default, PartialEq)]
pub struct DistributedConfig {
    /// The workers' URLs (`http://host:port`), as `nuthatch worker`
    /// prints them when it starts.
    pub workers: Vec<String>,
    /// The token a worker requires of coordinators (`authorization: Bearer
    /// <token>`). A secret: masked wherever settings are shown.
    pub token: Option<String>,
    /// PEM certificate of the authority that signed the workers'
    /// certificates, for `https://` workers whose certificates the system's
    /// roots do not vouch for.
    pub tls_ca: Option<PathBuf>,
    /// A worker's PEM certificate chain and private key: `nuthatch worker`
    /// then serves TLS, and coordinators list it as `https://`.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl fmt::Debug for DistributedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DistributedConfig")
            .field("workers", &self.workers)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("tls_ca", &self.tls_ca)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .finish()
    }
}

impl DistributedConfig {
    /// Applies the keys of a `distributed` table; paths are relative to
    /// `base`.
    pub(super) fn apply(
        &mut self,
        table: &toml::Table,
        base: &Path,
    ) -> std::result::Result<(), String> {
        for (key, value) in table {
            let path = || {
                value
                    .as_str()
                    .map(|text| base.join(text))
                    .ok_or_else(|| format!("'distributed.{key}' must be a file name"))
            };
            match key.as_str() {
                "workers" => self.workers = workers(value)?,
                "token" => {
                    let text = value
                        .as_str()
                        .ok_or("'distributed.token' must be a string")?;
                    self.token = access::token(text);
                }
                "tls_ca" => self.tls_ca = Some(path()?),
                "tls_cert" => self.tls_cert = Some(path()?),
                "tls_key" => self.tls_key = Some(path()?),
                other => {
                    return Err(format!(
                        "unknown setting 'distributed.{other}'; it takes workers (a list of \
                         URLs such as [\"http://10.0.0.5:7400\"]), token, tls_ca, tls_cert \
                         and tls_key"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The settings as `(name, value)` rows, the token masked unless
    /// `show_secrets`.
    pub(super) fn describe(&self, show_secrets: bool, rows: &mut Vec<(String, String)>) {
        if !self.workers.is_empty() {
            rows.push(("distributed.workers".into(), self.workers.join(", ")));
        }
        let files = [
            ("tls_ca", &self.tls_ca),
            ("tls_cert", &self.tls_cert),
            ("tls_key", &self.tls_key),
        ];
        access::describe(
            "distributed",
            self.token.as_ref(),
            &files,
            show_secrets,
            rows,
        );
    }
}

/// A list of URLs, or one text of them separated by commas (how an
/// environment variable gives a list).
fn workers(value: &toml::Value) -> std::result::Result<Vec<String>, String> {
    let wrong = || {
        "'distributed.workers' takes worker URLs, as [\"http://10.0.0.5:7400\"] or \
         \"http://10.0.0.5:7400,http://10.0.0.6:7400\""
            .to_string()
    };
    let texts: Vec<&str> = match value {
        toml::Value::String(text) => text.split(',').collect(),
        toml::Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().ok_or_else(wrong))
            .collect::<std::result::Result<_, _>>()?,
        _ => return Err(wrong()),
    };
    let mut urls = Vec::new();
    for text in texts.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
        let scheme = text.split_once("://").map(|(scheme, _)| scheme);
        if !matches!(scheme, Some("http" | "https")) {
            return Err(format!(
                "{}; '{text}' is not one (write http://host:port)",
                wrong()
            ));
        }
        urls.push(text.to_string());
    }
    Ok(urls)
}

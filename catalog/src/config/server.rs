//! `[nuthatch.server]`: how `nuthatch serve` listens.
//!
//! Kept with the rest of the configuration so that a team's project file
//! (or `NUTHATCH_SERVER_*` in the environment of a deployment) says where
//! the server listens and which token clients need; the binary's flags win
//! over both.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::access;

/// The server's settings; all optional.
#[derive(Clone, Default, PartialEq)]
pub struct ServerConfig {
    /// `host:port` to listen on.
    pub addr: Option<String>,
    /// The token clients present as `authorization: Bearer <token>`. A
    /// secret: masked wherever settings are shown.
    pub token: Option<String>,
    /// PEM certificate chain and private key, for TLS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// How long a client's session lives without a request (`90s`, `30m`,
    /// `24h`, `7d`).
    pub session_idle: Option<Duration>,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("session_idle", &self.session_idle)
            .finish()
    }
}

impl ServerConfig {
    /// Applies the keys of a `server` table; paths are relative to `base`.
    pub(super) fn apply(
        &mut self,
        table: &toml::Table,
        base: &Path,
    ) -> std::result::Result<(), String> {
        for (key, value) in table {
            let text = value
                .as_str()
                .ok_or_else(|| format!("'server.{key}' must be a string"))?;
            match key.as_str() {
                "addr" => self.addr = Some(text.to_string()),
                "token" => self.token = access::token(text),
                "tls_cert" => self.tls_cert = Some(base.join(text)),
                "tls_key" => self.tls_key = Some(base.join(text)),
                "session_idle" => self.session_idle = Some(duration(text)?),
                other => {
                    return Err(format!(
                        "unknown setting 'server.{other}'; the server takes addr, token, \
                         tls_cert, tls_key and session_idle"
                    ))
                }
            }
        }
        Ok(())
    }

    /// The settings as `(name, value)` rows, the token masked unless
    /// `show_secrets`.
    pub(super) fn describe(&self, show_secrets: bool, rows: &mut Vec<(String, String)>) {
        if let Some(addr) = &self.addr {
            rows.push(("server.addr".into(), addr.clone()));
        }
        if let Some(idle) = self.session_idle {
            rows.push(("server.session_idle".into(), format!("{}s", idle.as_secs())));
        }
        let files = [("tls_cert", &self.tls_cert), ("tls_key", &self.tls_key)];
        access::describe("server", self.token.as_ref(), &files, show_secrets, rows);
    }
}

/// `90s`, `30m`, `24h`, `7d`, or plain seconds.
fn duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let scale = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if scale > 0 && n > 0 => Ok(Duration::from_secs(n * scale)),
        _ => Err(format!(
            "'server.session_idle' takes a duration such as 90s, 30m, 24h or 7d, got '{text}'"
        )),
    }
}

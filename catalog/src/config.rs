//! Where the tiers are and how calls behave, read the way Python nuthatch
//! reads it, with its bugs left out.
//!
//! Sources, each later one winning key by key:
//!
//! 1. the embedded default: root is a `.nuthatch` folder in the working
//!    directory, local is `~/.nuthatch/caches`;
//! 2. the user's `~/.nuthatch.toml` (`[tool.nuthatch]` or `[nuthatch]`);
//! 3. the project's file: the first `nuthatch.toml` (`[nuthatch]`) or
//!    `pyproject.toml` (`[tool.nuthatch]`) walking up from the working
//!    directory;
//! 4. environment variables `NUTHATCH_<LOCATION>_<PARAM>` and
//!    `NUTHATCH_<LOCATION>_<BACKEND>_<PARAM>` (plus `NUTHATCH_MEMORY_LIMIT`,
//!    `NUTHATCH_MEMOIZE_LIMIT`);
//! 5. settings made in code ([`Config::set`], [`Config::set_secret`],
//!    [`Config::set_dynamic`]).
//!
//! A session's `SET nuthatch.*` then sets defaults for its calls (in the
//! udf crate). Unlike Python, sources merge key by key rather than table by
//! table, the environment beats files, and a `local` filesystem is honoured.
//!
//! Locations are `root`, `local` and any name starting with `mirror`. In
//! each, `filesystem`, `filesystem_options` and `read_only`, Python's
//! database parameters, and a table per backend whose keys override the
//! location's for that backend's data (one backend on another store). Keys
//! outside any location belong to root, as in Python. A key nuthatch does
//! not know is an error that names it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nuthatch_backends::Backends;

use crate::error::{Error, Result};
use crate::memory::DEFAULT_MEMOIZE_LIMIT;

mod access;
mod distributed;
mod server;
pub use distributed::DistributedConfig;
pub use server::ServerConfig;

/// The folder used as root when nothing is configured.
pub const EMBEDDED_ROOT: &str = ".nuthatch";

/// Python nuthatch's local tier location.
pub const DEFAULT_LOCAL: &str = "~/.nuthatch/caches";

/// Parameters Python nuthatch shares among a location's backends (database
/// and terracotta settings): each backend reads those it takes.
const BACKEND_PARAMS: [&str; 9] = [
    "driver",
    "host",
    "port",
    "database",
    "username",
    "password",
    "write_username",
    "write_password",
    "override_path",
];

/// Keys Python nuthatch reads that have no meaning here; accepted so a
/// Python project's file works unchanged.
const PYTHON_ONLY: [&str; 5] = [
    "dynamic_config_path",
    "remote_cache_size",
    "local_cache_size",
    "skipped_filesystems",
    "allow_installed_package_configuration",
];

/// One backend's overrides within a location.
#[derive(Clone, Default, PartialEq)]
pub struct BackendConfig {
    /// Where this backend's data goes, when not where the location is.
    pub filesystem: Option<String>,
    pub options: BTreeMap<String, String>,
    pub params: BTreeMap<String, String>,
}

/// One tier's location and settings.
#[derive(Clone, PartialEq)]
pub struct TierConfig {
    /// A path or an object-store URL (`file://`, `memory://`, `s3://`).
    pub filesystem: String,
    /// Object-store settings; may hold secrets, so never printed.
    pub options: BTreeMap<String, String>,
    /// Refuse writes to this tier even if the store would accept them.
    pub read_only: bool,
    /// Backend parameters (database settings), shared by its backends.
    pub params: BTreeMap<String, String>,
    /// Per-backend overrides.
    pub backends: BTreeMap<String, BackendConfig>,
}

impl TierConfig {
    pub fn new(filesystem: impl Into<String>) -> Self {
        TierConfig {
            filesystem: filesystem.into(),
            options: BTreeMap::new(),
            read_only: false,
            params: BTreeMap::new(),
            backends: BTreeMap::new(),
        }
    }

    pub fn with_option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.insert(key.into(), value.into());
        self
    }

    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// The filesystem and options `backend`'s data uses on this tier, when
    /// its section moves it elsewhere.
    pub fn backend_store(&self, backend: &str) -> Option<TierConfig> {
        let section = self.backends.get(backend)?;
        let filesystem = section.filesystem.clone()?;
        let mut options = self.options.clone();
        options.extend(section.options.clone());
        Some(TierConfig {
            filesystem,
            options,
            read_only: self.read_only,
            params: BTreeMap::new(),
            backends: BTreeMap::new(),
        })
    }
}

impl fmt::Debug for TierConfig {
    // Options and parameters carry credentials: show their names only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TierConfig")
            .field("filesystem", &crate::tier::redact(&self.filesystem))
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .field("read_only", &self.read_only)
            .field("params", &self.params.keys().collect::<Vec<_>>())
            .field("backends", &self.backends.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A value computed when the engine opens its tiers (a token fetched from a
/// vault, a path built at run time), as Python's `config_parameter`.
pub type DynamicValue = Arc<dyn Fn() -> std::result::Result<String, DynamicError> + Send + Sync>;

/// Why a dynamic setting could not be computed.
pub type DynamicError = Box<dyn std::error::Error + Send + Sync>;

/// The whole configuration.
#[derive(Clone)]
pub struct Config {
    pub root: TierConfig,
    /// This machine's copies (the `local*` modes).
    pub local: TierConfig,
    /// Read-only stores read after root, in order, by location name.
    pub mirrors: Vec<(String, TierConfig)>,
    /// SQL files with `CREATE CACHED FUNCTION` statements to load at start.
    pub definitions: Vec<PathBuf>,
    /// The project file this came from, if any.
    pub source: Option<PathBuf>,
    /// Bytes of memory the engine's operators may hold (sorts, joins,
    /// aggregates spill to disk beyond it); `None` is unbounded.
    pub memory_limit: Option<usize>,
    /// Bytes of memoized results kept in memory.
    pub memoize_limit: usize,
    /// How `nuthatch serve` listens.
    pub server: ServerConfig,
    /// The workers queries run on, if any.
    pub distributed: DistributedConfig,
    /// Keys whose values are masked wherever settings are shown.
    secrets: BTreeSet<String>,
    /// Settings computed when the tiers open.
    dynamic: Vec<(String, DynamicValue)>,
}

impl PartialEq for Config {
    fn eq(&self, other: &Self) -> bool {
        self.root == other.root
            && self.local == other.local
            && self.mirrors == other.mirrors
            && self.definitions == other.definitions
            && self.memory_limit == other.memory_limit
            && self.memoize_limit == other.memoize_limit
            && self.server == other.server
            && self.distributed == other.distributed
            && self.secrets == other.secrets
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("root", &self.root)
            .field("local", &self.local)
            .field("mirrors", &self.mirrors)
            .field("definitions", &self.definitions)
            .field("memory_limit", &self.memory_limit)
            .field("memoize_limit", &self.memoize_limit)
            .field("server", &self.server)
            .field("distributed", &self.distributed)
            .finish()
    }
}

impl Config {
    /// A root at `filesystem`, local at `~/.nuthatch/caches`, nothing else.
    pub fn with_root(filesystem: impl Into<String>) -> Self {
        Config {
            root: TierConfig::new(filesystem),
            local: TierConfig::new(expand_home(DEFAULT_LOCAL)),
            mirrors: Vec::new(),
            definitions: Vec::new(),
            source: None,
            memory_limit: None,
            memoize_limit: DEFAULT_MEMOIZE_LIMIT,
            server: ServerConfig::default(),
            distributed: DistributedConfig::default(),
            secrets: BTreeSet::new(),
            dynamic: Vec::new(),
        }
    }

    /// The embedded default: a `.nuthatch` folder in the working directory.
    pub fn embedded() -> Self {
        Config::with_root(EMBEDDED_ROOT)
    }

    /// Reads every source from the user's file to the environment.
    pub fn discover() -> Result<Self> {
        let cwd = std::env::current_dir()
            .map_err(|e| Error::Config(format!("cannot read the working directory: {e}")))?;
        let mut config = Config::embedded();
        if let Some(home) = std::env::var_os("HOME") {
            let user = Path::new(&home).join(".nuthatch.toml");
            if user.is_file() {
                config.apply_file(&user)?;
            }
        }
        if let Some(project) = find_config_file(&cwd) {
            config.apply_file(&project)?;
            config.source = Some(project);
        }
        config.apply_env(std::env::vars())?;
        Ok(config)
    }

    /// The embedded default with one file applied.
    pub fn from_file(path: &Path) -> Result<Self> {
        let mut config = Config::embedded();
        config.root.filesystem = path
            .parent()
            .unwrap_or(Path::new("."))
            .join(EMBEDDED_ROOT)
            .display()
            .to_string();
        config.apply_file(path)?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Applies a `nuthatch.toml`, `pyproject.toml` or `~/.nuthatch.toml`.
    /// Relative paths in it are relative to the file.
    pub fn apply_file(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let section = parse_section(&text, path)?;
        self.apply_table(&section, base)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Applies a nuthatch table (the contents of `[tool.nuthatch]`).
    pub(crate) fn apply_table(
        &mut self,
        table: &toml::Table,
        base: &Path,
    ) -> std::result::Result<(), String> {
        let mut locations: Vec<(&String, &toml::Table)> = Vec::new();
        for (key, value) in table {
            match key.as_str() {
                "definitions" => {
                    self.definitions = match value {
                        toml::Value::String(s) => vec![base.join(s)],
                        toml::Value::Array(items) => items
                            .iter()
                            .map(|i| i.as_str().map(|s| base.join(s)))
                            .collect::<Option<_>>()
                            .ok_or("'definitions' must list file names")?,
                        _ => return Err("'definitions' must be a file name or a list".into()),
                    }
                }
                "memory_limit" => self.memory_limit = Some(size(key, value)?),
                "memoize_limit" => self.memoize_limit = size(key, value)?,
                "server" => self
                    .server
                    .apply(value.as_table().ok_or("'server' must be a table")?, base)?,
                "distributed" => self.distributed.apply(
                    value
                        .as_table()
                        .ok_or("'distributed' must be a table, as [nuthatch.distributed]")?,
                    base,
                )?,
                name if is_location(name) => {
                    let inner = value
                        .as_table()
                        .ok_or_else(|| format!("'{name}' must be a table"))?;
                    locations.push((key, inner));
                }
                // Anything else belongs to root, as in Python.
                _ => self.apply_location_key("root", key, value, base)?,
            }
        }
        // Explicit location tables beat the keys hoisted into root.
        for (name, inner) in locations {
            for (key, value) in inner {
                self.apply_location_key(name, key, value, base)?;
            }
        }
        Ok(())
    }

    fn location_mut(&mut self, name: &str) -> &mut TierConfig {
        match name {
            "root" => &mut self.root,
            "local" => &mut self.local,
            mirror => {
                if let Some(i) = self.mirrors.iter().position(|(n, _)| n == mirror) {
                    return &mut self.mirrors[i].1;
                }
                self.mirrors
                    .push((mirror.to_string(), TierConfig::new(String::new())));
                &mut self.mirrors.last_mut().expect("just pushed").1
            }
        }
    }

    fn apply_location_key(
        &mut self,
        location: &str,
        key: &str,
        value: &toml::Value,
        base: &Path,
    ) -> std::result::Result<(), String> {
        let tier = self.location_mut(location);
        match key {
            "filesystem" => tier.filesystem = resolve_local(text(location, key, value)?, base),
            "filesystem_options" => options_into(&mut tier.options, location, value)?,
            "read_only" => tier.read_only = boolean(location, key, value)?,
            param if BACKEND_PARAMS.contains(&param) => {
                tier.params
                    .insert(param.to_string(), scalar(location, key, value)?);
            }
            // Any other table is a backend's section. Which backends there
            // are is known when the tiers open, and each checks its own
            // keys then (`nuthatch_backends::Backend::configure`).
            backend if value.is_table() => {
                let inner = value.as_table().expect("checked");
                let section = tier.backends.entry(backend.to_string()).or_default();
                let at = format!("{location}.{backend}");
                for (k, v) in inner {
                    match k.as_str() {
                        "filesystem" => {
                            section.filesystem = Some(resolve_local(text(&at, k, v)?, base))
                        }
                        "filesystem_options" => options_into(&mut section.options, &at, v)?,
                        setting => {
                            section
                                .params
                                .insert(setting.to_string(), scalar(&at, k, v)?);
                        }
                    }
                }
            }
            python if PYTHON_ONLY.contains(&python) => {
                tracing::debug!("{location}.{python} is read by Python nuthatch only");
            }
            other => return Err(unknown(&format!("{location}.{other}"))),
        }
        Ok(())
    }

    /// Applies `NUTHATCH_*` environment variables: `NUTHATCH_MEMORY_LIMIT`,
    /// `NUTHATCH_MEMOIZE_LIMIT`, `NUTHATCH_<LOCATION>_<PARAM>`,
    /// `NUTHATCH_<LOCATION>_<BACKEND>_<PARAM>`,
    /// `NUTHATCH_<LOCATION>[_<BACKEND>]_FILESYSTEM_OPTIONS_<NAME>` and
    /// `NUTHATCH_<BACKEND>_<PARAM>` (root's). A variable that names a
    /// location but no setting nuthatch knows is an error; other
    /// `NUTHATCH_` variables are left alone with a warning.
    pub fn apply_env(&mut self, vars: impl IntoIterator<Item = (String, String)>) -> Result<()> {
        for (name, value) in vars {
            let Some(rest) = name.strip_prefix("NUTHATCH_") else {
                continue;
            };
            let lower = rest.to_ascii_lowercase();
            let parts: Vec<&str> = lower.split('_').collect();
            let result = match parts.as_slice() {
                ["memory", "limit"] | ["memoize", "limit"] => {
                    let key = lower.as_str();
                    self.set(key, &value)
                }
                // The binary's own variables, and Python's.
                ["log"]
                | ["pager"]
                | ["history", "file"]
                | ["allow", "installed", "package", "configuration"] => Ok(()),
                [first, ..] if first.starts_with("test") => Ok(()),
                ["server", rest @ ..] if !rest.is_empty() => {
                    self.set(&format!("server.{}", rest.join("_")), &value)
                }
                ["distributed", rest @ ..] if !rest.is_empty() => {
                    self.set(&format!("distributed.{}", rest.join("_")), &value)
                }
                [location, rest @ ..] if is_location(location) && !rest.is_empty() => {
                    self.set(&env_key(location, rest), &value)
                }
                [backend, rest @ ..] if Backends::is_known(backend) && !rest.is_empty() => {
                    self.set(&env_key("root", &parts), &value)
                }
                _ => {
                    tracing::warn!("{name} is not a nuthatch setting; ignoring it");
                    Ok(())
                }
            };
            result.map_err(|e| Error::Config(format!("{name}: {e}")))?;
        }
        Ok(())
    }

    /// Sets one setting by its dotted name, as it would be written in a
    /// file: `root.filesystem`, `local.filesystem`,
    /// `mirror-public.filesystem`, `root.filesystem_options.region`,
    /// `root.arrow.filesystem`, `memory_limit`, ... Names nuthatch does not
    /// know are an error.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let mut table = toml::Table::new();
        let parts: Vec<&str> = key.split('.').collect();
        let typed = match parts.last() {
            Some(&"read_only") => toml::Value::Boolean(parse_bool(value).ok_or_else(|| {
                Error::Config(format!("{key} takes true or false, got '{value}'"))
            })?),
            _ => toml::Value::String(value.to_string()),
        };
        let mut node = typed;
        for part in parts.iter().skip(1).rev() {
            let mut t = toml::Table::new();
            t.insert(part.to_string(), node);
            node = toml::Value::Table(t);
        }
        table.insert(parts[0].to_string(), node);
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        self.apply_table(&table, &cwd)
            .map_err(|e| Error::Config(format!("{key}: {e}")))
    }

    /// Sets a secret: like [`Config::set`], and masked wherever settings
    /// are shown.
    pub fn set_secret(&mut self, key: &str, value: &str) -> Result<()> {
        self.set(key, value)?;
        self.secrets.insert(key.to_string());
        Ok(())
    }

    /// Registers a setting computed when an engine opens the tiers, as
    /// Python's `config_parameter`; `secret` masks it wherever settings are
    /// shown. The name is checked now.
    pub fn set_dynamic(
        &mut self,
        key: &str,
        secret: bool,
        value: impl Fn() -> std::result::Result<String, DynamicError> + Send + Sync + 'static,
    ) -> Result<()> {
        // Check the name now; the value comes later.
        self.clone().set(key, "")?;
        if secret {
            self.secrets.insert(key.to_string());
        }
        self.dynamic.push((key.to_string(), Arc::new(value)));
        Ok(())
    }

    /// This configuration with its dynamic settings computed.
    pub fn resolved(&self) -> Result<Config> {
        let mut config = self.clone();
        for (key, value) in &self.dynamic {
            let computed = value()
                .map_err(|e| Error::Config(format!("the dynamic setting {key} failed: {e}")))?;
            config.set(key, &computed)?;
        }
        config.dynamic.clear();
        Ok(config)
    }

    /// Every setting as `(name, value)`, secrets masked unless
    /// `show_secrets`; dynamic settings show as `<dynamic>`.
    pub fn describe(&self, show_secrets: bool) -> Vec<(String, String)> {
        let mut rows = Vec::new();
        let mut tier = |name: &str, t: &TierConfig| {
            let mut push = |key: String, value: &str, secret: bool| {
                let shown = if secret && !show_secrets {
                    "*".repeat(value.chars().count().clamp(3, 12))
                } else {
                    value.to_string()
                };
                rows.push((key, shown));
            };
            let filesystem = if show_secrets {
                t.filesystem.clone()
            } else {
                crate::tier::redact(&t.filesystem)
            };
            push(format!("{name}.filesystem"), &filesystem, false);
            push(format!("{name}.read_only"), &t.read_only.to_string(), false);
            for (k, v) in &t.options {
                let key = format!("{name}.filesystem_options.{k}");
                let secret = self.secrets.contains(&key) || looks_secret(k);
                push(key, v, secret);
            }
            for (k, v) in &t.params {
                let key = format!("{name}.{k}");
                let secret = self.secrets.contains(&key) || looks_secret(k);
                push(key, v, secret);
            }
            for (backend, section) in &t.backends {
                if let Some(fs) = &section.filesystem {
                    let fs = if show_secrets {
                        fs.clone()
                    } else {
                        crate::tier::redact(fs)
                    };
                    push(format!("{name}.{backend}.filesystem"), &fs, false);
                }
                for (k, v) in section.options.iter().chain(&section.params) {
                    let key = format!("{name}.{backend}.{k}");
                    let secret = self.secrets.contains(&key) || looks_secret(k);
                    push(key, v, secret);
                }
            }
        };
        tier("root", &self.root);
        tier("local", &self.local);
        for (name, mirror) in &self.mirrors {
            tier(name, mirror);
        }
        self.server.describe(show_secrets, &mut rows);
        self.distributed.describe(show_secrets, &mut rows);
        for (key, _) in &self.dynamic {
            rows.push((key.clone(), "<dynamic>".to_string()));
        }
        rows
    }
}

/// A location key: `root`, `local`, or a name starting with `mirror`.
fn is_location(name: &str) -> bool {
    name == "root" || name == "local" || name.starts_with("mirror")
}

/// `NUTHATCH_ROOT_ARROW_FILESYSTEM_OPTIONS_REGION` as
/// `root.arrow.filesystem_options.region`: what follows the location is
/// the location's own setting when it names one, else the first word names
/// a backend (so a backend whose name holds `_` is set in a file).
fn env_key(location: &str, parts: &[&str]) -> String {
    let own = |param: &str| {
        ["filesystem", "read_only"].contains(&param)
            || BACKEND_PARAMS.contains(&param)
            || param.starts_with("filesystem_options_")
    };
    let (backend, rest) = match parts {
        [b, rest @ ..] if !own(&parts.join("_")) && !rest.is_empty() => (Some(*b), rest),
        rest => (None, rest),
    };
    let param = rest.join("_");
    let param = match param.strip_prefix("filesystem_options_") {
        Some(option) => format!("filesystem_options.{option}"),
        None => param,
    };
    match backend {
        Some(b) => format!("{location}.{b}.{param}"),
        None => format!("{location}.{param}"),
    }
}

fn unknown(key: &str) -> String {
    format!(
        "unknown setting '{key}'; a location (root, local, mirror...) takes filesystem, \
         filesystem_options, read_only, {}, and a table per backend ([root.sql], ...) with \
         filesystem, filesystem_options and the backend's own settings",
        BACKEND_PARAMS.join(", "),
    )
}

/// Option and parameter names whose values are credentials.
fn looks_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "secret",
        "password",
        "token",
        "key",
        "credential",
        "session",
    ]
    .iter()
    .any(|word| name.contains(word))
}

fn text<'a>(at: &str, key: &str, value: &'a toml::Value) -> std::result::Result<&'a str, String> {
    value
        .as_str()
        .ok_or_else(|| format!("'{at}.{key}' must be a string"))
}

/// A parameter as text: strings as they are, numbers and booleans written
/// out (Python's environment gives them as strings anyway).
fn scalar(at: &str, key: &str, value: &toml::Value) -> std::result::Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
            Ok(value.to_string())
        }
        _ => Err(format!("'{at}.{key}' must be a string or a number")),
    }
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "t" | "yes" => Some(true),
        "false" | "0" | "f" | "no" => Some(false),
        _ => None,
    }
}

fn boolean(at: &str, key: &str, value: &toml::Value) -> std::result::Result<bool, String> {
    match value {
        toml::Value::Boolean(b) => Ok(*b),
        toml::Value::String(s) => {
            parse_bool(s).ok_or_else(|| format!("'{at}.{key}' must be true or false"))
        }
        _ => Err(format!("'{at}.{key}' must be true or false")),
    }
}

fn size(key: &str, value: &toml::Value) -> std::result::Result<usize, String> {
    match value {
        toml::Value::String(s) => memory_size(s),
        toml::Value::Integer(n) if *n > 0 => Ok(*n as usize),
        _ => Err(format!("'{key}' must be a size such as \"2G\" or \"512M\"")),
    }
}

fn options_into(
    options: &mut BTreeMap<String, String>,
    at: &str,
    value: &toml::Value,
) -> std::result::Result<(), String> {
    match value {
        toml::Value::Table(table) => {
            for (k, v) in table {
                let text = match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                options.insert(k.clone(), text);
            }
            Ok(())
        }
        _ => Err(format!("'{at}.filesystem_options' must be a table")),
    }
}

/// Reads a memory size the way datafusion-cli's `--memory-limit` does: a
/// number of bytes with an optional `K`, `M`, `G` or `T` suffix (powers of
/// 1024), such as `512M` or `2G`.
pub fn parse_memory_limit(text: &str) -> Result<usize> {
    memory_size(text).map_err(Error::Config)
}

fn memory_size(text: &str) -> std::result::Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" => 10,
        "M" | "MB" => 20,
        "G" | "GB" => 30,
        "T" | "TB" => 40,
        other => {
            return Err(format!(
                "unknown unit '{other}' in memory size '{text}'; use K, M, G or T, as in 2G"
            ))
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a memory size; write it like 512M or 2G"))?;
    let bytes = value * (1u64 << shift) as f64;
    if bytes.is_nan() || bytes < 1.0 {
        return Err(format!("memory size '{text}' must be positive"));
    }
    Ok(bytes as usize)
}

/// Walks up from `start` looking, in each folder, for `pyproject.toml` with a
/// `[tool.nuthatch]` table or a `nuthatch.toml`.
pub fn find_config_file(start: &Path) -> Option<PathBuf> {
    for dir in start.ancestors() {
        let pyproject = dir.join("pyproject.toml");
        if pyproject.is_file() {
            let has_section = std::fs::read_to_string(&pyproject)
                .ok()
                .and_then(|t| t.parse::<toml::Table>().ok())
                .is_some_and(|t| t.get("tool").and_then(|t| t.get("nuthatch")).is_some());
            if has_section {
                return Some(pyproject);
            }
        }
        let own = dir.join("nuthatch.toml");
        if own.is_file() {
            return Some(own);
        }
    }
    None
}

fn parse_section(text: &str, path: &Path) -> Result<toml::Table> {
    let table: toml::Table = text
        .parse()
        .map_err(|e| Error::Config(format!("{} is not valid TOML: {e}", path.display())))?;
    let section = table
        .get("nuthatch")
        .or_else(|| table.get("tool").and_then(|t| t.get("nuthatch")))
        .cloned();
    match section {
        Some(toml::Value::Table(t)) => Ok(t),
        Some(_) => Err(Error::Config(format!(
            "{}: the nuthatch section must be a table",
            path.display()
        ))),
        None => Ok(toml::Table::new()),
    }
}

fn expand_home(path: &str) -> String {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest).display().to_string(),
        _ => path.to_string(),
    }
}

/// Relative local paths in a config file are relative to that file, so a
/// committed project file means the same thing from any subfolder.
fn resolve_local(filesystem: &str, base: &Path) -> String {
    if filesystem.contains("://") || Path::new(filesystem).is_absolute() {
        filesystem.to_string()
    } else if filesystem.starts_with("~/") {
        expand_home(filesystem)
    } else {
        base.join(filesystem).display().to_string()
    }
}

#[cfg(test)]
mod tests;

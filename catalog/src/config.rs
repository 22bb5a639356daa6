//! Where the tiers are, read the way Python nuthatch reads it.
//!
//! Sources, later ones winning: the embedded default (a `.nuthatch` folder in
//! the working directory), the first `nuthatch.toml` (`[nuthatch]` table) or
//! `pyproject.toml` (`[tool.nuthatch]` table) found walking up from the
//! working directory, then `NUTHATCH_ROOT_FILESYSTEM` and
//! `NUTHATCH_ROOT_FILESYSTEM_OPTIONS_<NAME>` from the environment.
//!
//! Keys understood: `filesystem` (top level or in `[root]`),
//! `filesystem_options` (a table of object-store settings such as
//! `endpoint`, `access_key_id`, `secret_access_key`, `region`,
//! `allow_http`), `read_only`, and `definitions` (SQL files of
//! `CREATE CACHED FUNCTION` statements, relative to the config file).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The folder used as root when nothing is configured.
pub const EMBEDDED_ROOT: &str = ".nuthatch";

/// One tier's location and settings.
#[derive(Clone, PartialEq)]
pub struct TierConfig {
    /// A path or an object-store URL (`file://`, `memory://`, `s3://`).
    pub filesystem: String,
    /// Object-store settings; may hold secrets, so never printed.
    pub options: BTreeMap<String, String>,
    /// Refuse writes to this tier even if the store would accept them.
    pub read_only: bool,
}

impl TierConfig {
    pub fn new(filesystem: impl Into<String>) -> Self {
        TierConfig {
            filesystem: filesystem.into(),
            options: BTreeMap::new(),
            read_only: false,
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
}

impl fmt::Debug for TierConfig {
    // Options carry credentials: show their names, never their values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TierConfig")
            .field("filesystem", &self.filesystem)
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .field("read_only", &self.read_only)
            .finish()
    }
}

/// Python nuthatch's local tier location.
pub const DEFAULT_LOCAL: &str = "~/.nuthatch/caches";

/// The whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub root: TierConfig,
    /// This machine's copies (the `local*` modes).
    pub local: TierConfig,
    /// Read-only stores read after root, in order, by location name.
    pub mirrors: Vec<(String, TierConfig)>,
    /// Bytes of memoized results kept in memory.
    pub memoize_limit: usize,
    /// SQL files with `CREATE CACHED FUNCTION` statements to load at start.
    pub definitions: Vec<PathBuf>,
    /// The file this came from, if any.
    pub source: Option<PathBuf>,
    /// Bytes of memory the engine's operators may hold (sorts, joins,
    /// aggregates spill to disk beyond it); `None` is unbounded.
    pub memory_limit: Option<usize>,
}

impl Config {
    /// A root at `filesystem` and nothing else.
    pub fn with_root(filesystem: impl Into<String>) -> Self {
        Config {
            root: TierConfig::new(filesystem),
            local: TierConfig::new(resolve_local(DEFAULT_LOCAL, Path::new("."))),
            mirrors: Vec::new(),
            memoize_limit: crate::memory::DEFAULT_MEMOIZE_LIMIT,
            definitions: Vec::new(),
            source: None,
            memory_limit: None,
        }
    }

    /// The embedded default: a `.nuthatch` folder in the working directory.
    pub fn embedded() -> Self {
        Config::with_root(EMBEDDED_ROOT)
    }

    /// Finds the configuration from the working directory and environment.
    pub fn discover() -> Result<Self> {
        let cwd = std::env::current_dir()
            .map_err(|e| Error::Config(format!("cannot read the working directory: {e}")))?;
        let mut config = match find_config_file(&cwd) {
            Some(path) => Config::from_file(&path)?,
            None => Config::embedded(),
        };
        config.apply_env(std::env::vars())?;
        Ok(config)
    }

    /// Reads a `nuthatch.toml` or `pyproject.toml`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let section = parse_section(&text, path)?;
        let mut config = Config::from_table(&section, base)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    fn from_table(table: &toml::Table, base: &Path) -> std::result::Result<Self, String> {
        let root_table = match table.get("root") {
            Some(toml::Value::Table(t)) => Some(t),
            Some(_) => return Err("'root' must be a table".into()),
            None => None,
        };
        // An explicit [root] key beats a top-level one, as in Python.
        let lookup = |key: &str| {
            root_table
                .and_then(|t| t.get(key))
                .or_else(|| table.get(key))
        };
        let mut root = TierConfig::new(EMBEDDED_ROOT);
        if let Some(value) = lookup("filesystem") {
            let text = value.as_str().ok_or("'filesystem' must be a string")?;
            root.filesystem = resolve_local(text, base);
        } else {
            root.filesystem = base.join(EMBEDDED_ROOT).display().to_string();
        }
        if let Some(value) = lookup("filesystem_options") {
            let options = value
                .as_table()
                .ok_or("'filesystem_options' must be a table")?;
            for (k, v) in options {
                let text = match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                root.options.insert(k.clone(), text);
            }
        }
        if let Some(value) = lookup("read_only") {
            root.read_only = value.as_bool().ok_or("'read_only' must be true or false")?;
        }
        let mut definitions = Vec::new();
        match table.get("definitions") {
            None => {}
            Some(toml::Value::String(s)) => definitions.push(base.join(s)),
            Some(toml::Value::Array(items)) => {
                for item in items {
                    let s = item.as_str().ok_or("'definitions' must list file names")?;
                    definitions.push(base.join(s));
                }
            }
            Some(_) => return Err("'definitions' must be a file name or a list of them".into()),
        }
        let memory_limit = match table.get("memory_limit") {
            None => None,
            Some(toml::Value::String(s)) => Some(parse_memory_limit(s)?),
            Some(toml::Value::Integer(n)) if *n > 0 => Some(*n as usize),
            Some(_) => {
                return Err("'memory_limit' must be a size such as \"2G\" or \"512M\"".into())
            }
        };
        let mut config = Config::with_root(root.filesystem.clone());
        config.root = root;
        config.definitions = definitions;
        config.memory_limit = memory_limit;
        Ok(config)
    }

    /// Applies `NUTHATCH_ROOT_FILESYSTEM`,
    /// `NUTHATCH_ROOT_FILESYSTEM_OPTIONS_<NAME>` and `NUTHATCH_MEMORY_LIMIT`
    /// overrides.
    pub fn apply_env(&mut self, vars: impl IntoIterator<Item = (String, String)>) -> Result<()> {
        for (name, value) in vars {
            if name == "NUTHATCH_MEMORY_LIMIT" {
                self.memory_limit = Some(
                    parse_memory_limit(&value)
                        .map_err(|e| Error::Config(format!("NUTHATCH_MEMORY_LIMIT: {e}")))?,
                );
            } else if name == "NUTHATCH_ROOT_FILESYSTEM" {
                self.root.filesystem = value;
            } else if let Some(option) = name.strip_prefix("NUTHATCH_ROOT_FILESYSTEM_OPTIONS_") {
                self.root.options.insert(option.to_ascii_lowercase(), value);
            }
        }
        Ok(())
    }
}

/// Reads a memory size the way datafusion-cli's `--memory-limit` does: a
/// number of bytes with an optional `K`, `M`, `G` or `T` suffix (powers of
/// 1024), such as `512M` or `2G`.
pub fn parse_memory_limit(text: &str) -> std::result::Result<usize, String> {
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

/// Relative local paths in a config file are relative to that file, so a
/// committed project file means the same thing from any subfolder.
fn resolve_local(filesystem: &str, base: &Path) -> String {
    if filesystem.contains("://") || Path::new(filesystem).is_absolute() {
        filesystem.to_string()
    } else if let Some(rest) = filesystem.strip_prefix("~/") {
        match std::env::var_os("HOME") {
            Some(home) => Path::new(&home).join(rest).display().to_string(),
            None => filesystem.to_string(),
        }
    } else {
        base.join(filesystem).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_table_beats_top_level_and_paths_are_relative_to_the_file() {
        let table: toml::Table = r#"
            filesystem = "top"
            definitions = ["functions.sql"]
            [root]
            filesystem = "caches"
            read_only = true
            [root.filesystem_options]
            secret_access_key = "hunter2"
        "#
        .parse()
        .unwrap();
        let config = Config::from_table(&table, Path::new("/project")).unwrap();
        assert_eq!(config.root.filesystem, "/project/caches");
        assert!(config.root.read_only);
        assert_eq!(
            config.definitions,
            vec![PathBuf::from("/project/functions.sql")]
        );
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut config = Config::with_root("/a");
        let applied = config.apply_env([
            (
                "NUTHATCH_ROOT_FILESYSTEM".to_string(),
                "memory://".to_string(),
            ),
            (
                "NUTHATCH_ROOT_FILESYSTEM_OPTIONS_REGION".to_string(),
                "eu".to_string(),
            ),
            ("NUTHATCH_MEMORY_LIMIT".to_string(), "1.5G".to_string()),
        ]);
        assert!(applied.is_ok());
        assert_eq!(config.memory_limit, Some(3 << 29));
        assert_eq!(config.root.filesystem, "memory://");
        assert_eq!(config.root.options["region"], "eu");
    }
}

#[cfg(test)]
mod memory_tests {
    use super::parse_memory_limit;

    #[test]
    fn memory_sizes_read_like_datafusion_cli() {
        assert_eq!(parse_memory_limit("512M"), Ok(512 << 20));
        assert_eq!(parse_memory_limit("2g"), Ok(2 << 30));
        assert_eq!(parse_memory_limit("1000"), Ok(1000));
        let err = parse_memory_limit("2X").unwrap_err();
        assert!(err.contains("K, M, G or T"), "{err}");
        assert!(parse_memory_limit("lots").is_err());
        assert!(parse_memory_limit("0").is_err());
    }
}

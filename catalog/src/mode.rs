//! Cache modes: which tiers a call may read and write.
//!
//! The names and flags are Python nuthatch's (inventory §2.4). The modes that
//! need a local tier are recognised but refused until that tier exists.

use std::fmt;
use std::str::FromStr;

use datafusion::common::config::{ConfigField, Visit};
use datafusion::common::{DataFusionError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// Read root; compute and write root on a miss.
    #[default]
    Write,
    /// Like `write`, but a recomputed result replaces an existing entry.
    Overwrite,
    /// Read only; compute on a miss without storing.
    ReadOnly,
    /// Read only; a miss is an error.
    ReadOnlyStrict,
    /// Neither read nor write: always compute.
    Off,
    Local,
    LocalOverwrite,
    LocalSync,
    LocalStrict,
    LocalApi,
}

impl CacheMode {
    pub const ALL: [CacheMode; 10] = [
        CacheMode::Write,
        CacheMode::Overwrite,
        CacheMode::ReadOnly,
        CacheMode::ReadOnlyStrict,
        CacheMode::Off,
        CacheMode::Local,
        CacheMode::LocalOverwrite,
        CacheMode::LocalSync,
        CacheMode::LocalStrict,
        CacheMode::LocalApi,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CacheMode::Write => "write",
            CacheMode::Overwrite => "overwrite",
            CacheMode::ReadOnly => "read_only",
            CacheMode::ReadOnlyStrict => "read_only_strict",
            CacheMode::Off => "off",
            CacheMode::Local => "local",
            CacheMode::LocalOverwrite => "local_overwrite",
            CacheMode::LocalSync => "local_sync",
            CacheMode::LocalStrict => "local_strict",
            CacheMode::LocalApi => "local_api",
        }
    }

    /// What the mode allows, as data.
    pub fn policy(self) -> Policy {
        let (read, compute, write, replace) = match self {
            CacheMode::Write => (true, true, true, false),
            CacheMode::Overwrite => (true, true, true, true),
            CacheMode::ReadOnly => (true, true, false, false),
            CacheMode::ReadOnlyStrict => (true, false, false, false),
            CacheMode::Off => (false, true, false, false),
            // Refused by `check_supported` until the local tier exists.
            CacheMode::Local
            | CacheMode::LocalOverwrite
            | CacheMode::LocalSync
            | CacheMode::LocalStrict
            | CacheMode::LocalApi => (false, true, false, false),
        };
        Policy {
            read,
            compute,
            write,
            replace,
        }
    }

    /// Refuses the modes this build cannot honour yet.
    pub fn check_supported(self) -> Result<Self> {
        match self {
            CacheMode::Local
            | CacheMode::LocalOverwrite
            | CacheMode::LocalSync
            | CacheMode::LocalStrict
            | CacheMode::LocalApi => Err(DataFusionError::Plan(format!(
                "cache_mode '{}' needs a local tier, which nuthatch does not have yet; use one of \
                 write, overwrite, read_only, read_only_strict, off",
                self.name()
            ))),
            mode => Ok(mode),
        }
    }
}

/// What a cache mode lets a call do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Look for a stored entry before computing.
    pub read: bool,
    /// Compute on a miss (otherwise a miss is an error).
    pub compute: bool,
    /// Store what was computed.
    pub write: bool,
    /// A recomputed result may replace a valid entry. `write` keeps the old
    /// one: the Python package would ask, and we never prompt.
    pub replace: bool,
}

/// Lets the mode be a DataFusion session setting (`SET nuthatch.cache_mode
/// = 'overwrite'`), checked when it is set.
impl ConfigField for CacheMode {
    fn visit<V: Visit>(&self, v: &mut V, key: &str, description: &'static str) {
        v.some(key, self, description)
    }

    fn set(&mut self, _key: &str, value: &str) -> Result<()> {
        *self = value.parse()?;
        Ok(())
    }
}

impl fmt::Display for CacheMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CacheMode {
    type Err = DataFusionError;

    fn from_str(text: &str) -> Result<Self> {
        CacheMode::ALL
            .into_iter()
            .find(|mode| mode.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| {
                let names: Vec<_> = CacheMode::ALL.iter().map(|m| m.name()).collect();
                DataFusionError::Plan(format!(
                    "invalid cache_mode '{text}': use one of {}",
                    names.join(", ")
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_is_one_row_of_the_policy_table() {
        let table: Vec<(&str, bool, bool, bool, bool)> = CacheMode::ALL
            .iter()
            .filter(|m| m.check_supported().is_ok())
            .map(|m| {
                let p = m.policy();
                (m.name(), p.read, p.compute, p.write, p.replace)
            })
            .collect();
        assert_eq!(
            table,
            vec![
                ("write", true, true, true, false),
                ("overwrite", true, true, true, true),
                ("read_only", true, true, false, false),
                ("read_only_strict", true, false, false, false),
                ("off", false, true, false, false),
            ]
        );
    }

    #[test]
    fn names_parse_case_insensitively_and_mistakes_list_the_modes() {
        assert_eq!(
            " Overwrite ".parse::<CacheMode>().unwrap(),
            CacheMode::Overwrite
        );
        let err = "whenever".parse::<CacheMode>().unwrap_err().to_string();
        assert!(
            err.contains("read_only_strict") && err.contains("local_api"),
            "{err}"
        );
    }
}

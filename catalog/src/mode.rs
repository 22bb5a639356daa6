//! Cache modes: which tiers a call may read and write.
//!
//! The names and the table are Python nuthatch's: a mode is
//! one row of [`CacheMode::policy`], so the rules live in data and the code
//! that resolves a call only asks the policy. "Global" tiers are root and
//! the mirrors; "local" is the per-machine copy.
//!
//! Where Python asks on the terminal before overwriting a valid entry
//! ([`Overwrite::Ask`]), nuthatch never prompts from library code: the call
//! fails, naming the mode that overwrites.

use std::fmt;
use std::str::FromStr;

use datafusion::common::{DataFusionError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// Read root and mirrors; compute and store to root on a miss.
    #[default]
    Write,
    /// Like `write`, but a recomputed result replaces an existing entry.
    Overwrite,
    /// Read local, root and mirrors; store computed results and what was
    /// read from root or a mirror to local.
    Local,
    /// Like `local`, replacing existing local entries.
    LocalOverwrite,
    /// Read root and mirrors only, and refresh the local copy.
    LocalSync,
    /// Local only: root and mirrors are neither read nor written.
    LocalStrict,
    /// Like `local`, but a miss everywhere is an error.
    LocalApi,
    /// Read everything; compute on a miss without storing.
    ReadOnly,
    /// Read everything; a miss is an error.
    ReadOnlyStrict,
    /// Neither read nor write a tier: always compute.
    Off,
}

/// What happens when a write finds a valid entry already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    /// Python would prompt; nuthatch refuses and names the overwriting mode.
    Ask,
    /// Replace it.
    Replace,
    /// Keep it (the mode writes nothing anyway).
    Keep,
}

impl CacheMode {
    pub const ALL: [CacheMode; 10] = [
        CacheMode::Write,
        CacheMode::Overwrite,
        CacheMode::Local,
        CacheMode::LocalOverwrite,
        CacheMode::LocalSync,
        CacheMode::LocalStrict,
        CacheMode::LocalApi,
        CacheMode::ReadOnly,
        CacheMode::ReadOnlyStrict,
        CacheMode::Off,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CacheMode::Write => "write",
            CacheMode::Overwrite => "overwrite",
            CacheMode::Local => "local",
            CacheMode::LocalOverwrite => "local_overwrite",
            CacheMode::LocalSync => "local_sync",
            CacheMode::LocalStrict => "local_strict",
            CacheMode::LocalApi => "local_api",
            CacheMode::ReadOnly => "read_only",
            CacheMode::ReadOnlyStrict => "read_only_strict",
            CacheMode::Off => "off",
        }
    }

    /// What the mode allows, as data: one row of Python's table.
    pub fn policy(self) -> Policy {
        use Overwrite::*;
        let (read_global, read_local, write_global, write_local, overwrite, fail_if_no_cache) =
            match self {
                CacheMode::Write => (true, false, true, false, Ask, false),
                CacheMode::Overwrite => (true, false, true, false, Replace, false),
                CacheMode::Local => (true, true, false, true, Ask, false),
                CacheMode::LocalOverwrite => (true, true, false, true, Replace, false),
                CacheMode::LocalSync => (true, false, false, true, Replace, false),
                CacheMode::LocalStrict => (false, true, false, true, Ask, false),
                CacheMode::LocalApi => (true, true, false, true, Ask, true),
                CacheMode::ReadOnly => (true, true, false, false, Keep, false),
                CacheMode::ReadOnlyStrict => (true, true, false, false, Keep, true),
                CacheMode::Off => (false, false, false, false, Keep, false),
            };
        Policy {
            read_global,
            read_local,
            write_global,
            write_local,
            overwrite,
            fail_if_no_cache,
        }
    }

    /// The mode that would overwrite where this one stops to ask.
    pub fn overwriting(self) -> CacheMode {
        if self.policy().write_local {
            CacheMode::LocalOverwrite
        } else {
            CacheMode::Overwrite
        }
    }
}

/// What a cache mode lets a call do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Read root and the mirrors.
    pub read_global: bool,
    /// Read the local tier.
    pub read_local: bool,
    /// Store computed results to root.
    pub write_global: bool,
    /// Store results to the local tier: computed ones, and ones read from
    /// root or a mirror.
    pub write_local: bool,
    /// What a write does to a valid entry already there.
    pub overwrite: Overwrite,
    /// A miss is an error instead of a compute.
    pub fail_if_no_cache: bool,
}

text_setting!(CacheMode);

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
    fn each_mode_is_one_row_of_pythons_table() {
        let t = true;
        let f = false;
        let table: Vec<_> = CacheMode::ALL
            .iter()
            .map(|m| {
                let p = m.policy();
                let row = (
                    p.read_global,
                    p.read_local,
                    p.write_global,
                    p.write_local,
                    p.overwrite,
                    p.fail_if_no_cache,
                );
                (m.name(), row)
            })
            .collect();
        use Overwrite::*;
        assert_eq!(
            table,
            vec![
                ("write", (t, f, t, f, Ask, f)),
                ("overwrite", (t, f, t, f, Replace, f)),
                ("local", (t, t, f, t, Ask, f)),
                ("local_overwrite", (t, t, f, t, Replace, f)),
                ("local_sync", (t, f, f, t, Replace, f)),
                ("local_strict", (f, t, f, t, Ask, f)),
                ("local_api", (t, t, f, t, Ask, t)),
                ("read_only", (t, t, f, f, Keep, f)),
                ("read_only_strict", (t, t, f, f, Keep, t)),
                ("off", (f, f, f, f, Keep, f)),
            ]
        );
        assert_eq!(CacheMode::Local.overwriting(), CacheMode::LocalOverwrite);
        assert_eq!(CacheMode::Write.overwriting(), CacheMode::Overwrite);
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

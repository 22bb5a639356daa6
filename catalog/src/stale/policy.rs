//! `on_stale`: what a call does with a stale entry it finds.

use std::fmt;

/// What a call does with a stale entry it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnStale {
    /// Serves it without judging (costs nothing).
    Serve,
    /// Serves it, and the call's report says it is stale and why.
    #[default]
    Warn,
    /// Computes it again, as `recompute => true` would.
    Recompute,
    /// Fails, naming the causes.
    Error,
}

impl OnStale {
    pub const ALL: [OnStale; 4] = [
        OnStale::Serve,
        OnStale::Warn,
        OnStale::Recompute,
        OnStale::Error,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OnStale::Serve => "serve",
            OnStale::Warn => "warn",
            OnStale::Recompute => "recompute",
            OnStale::Error => "error",
        }
    }
}

impl fmt::Display for OnStale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for OnStale {
    type Err = datafusion::common::DataFusionError;

    fn from_str(text: &str) -> datafusion::common::Result<Self> {
        OnStale::ALL
            .into_iter()
            .find(|policy| policy.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| {
                datafusion::common::DataFusionError::Plan(format!(
                    "invalid on_stale '{text}': use one of serve, warn, recompute, error"
                ))
            })
    }
}

text_setting!(OnStale);

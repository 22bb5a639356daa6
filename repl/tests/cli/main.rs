//! The `nuthatch` binary, run as a user runs it, in a fresh project folder:
//! with arguments and pipes ([`batch`]), in a real terminal driven
//! through tmux ([`terminal`]), as a Flight SQL server for the real
//! Python ADBC client ([`flight`]), as workers of a cluster
//! ([`cluster`]), and killed at random moments of its writes ([`crash`]).

mod batch;
mod cluster;
mod crash;
mod flight;
mod terminal;

use std::path::Path;
use std::process::{Command, Output};

/// The binary in `dir`, on the embedded default root whatever the caller's
/// environment says.
pub fn command(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nuthatch"));
    command
        .current_dir(dir)
        .env_remove("NUTHATCH_ROOT_FILESYSTEM")
        .env("NUTHATCH_LOCAL_FILESYSTEM", dir.join("local"));
    command
}

pub fn nuthatch(dir: &Path, args: &[&str]) -> Output {
    command(dir).args(args).output().expect("the binary runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

pub const FUNCTIONS: &str = "
CREATE CACHED FUNCTION hourly(start_time TIMESTAMP, end_time TIMESTAMP, step BIGINT DEFAULT 1)
WITH (cache_args = (step), version = 'a', timeseries = 'time')
AS SELECT t.value AS time, $step AS step
   FROM generate_series(TIMESTAMP '2020-01-01T00:00:00', TIMESTAMP '2020-01-10T23:00:00', INTERVAL '1 hour') AS t;
";

/// A project folder whose nuthatch.toml loads [`FUNCTIONS`] and `extra`.
pub fn project(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("functions.sql"),
        format!("{FUNCTIONS}{extra}"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("nuthatch.toml"),
        "[nuthatch]\ndefinitions = [\"functions.sql\"]\n",
    )
    .unwrap();
    dir
}

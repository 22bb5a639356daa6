//! Crash trials: the real binary overwriting an entry is killed with
//! SIGKILL at a random moment of the write, again and again, for every
//! backend (Parquet, Arrow, Zarr, Delta, SQLite, and PostgreSQL when the
//! suite runs it). After each kill the entry must read as exactly the last
//! committed version or the one being written, every row of one version,
//! never a mixture or a part, and never no entry: a replacement keeps the
//! old record until a pending one takes its place right before the data is
//! published (see the catalog's `commit` module). The trials count how
//! often each version was left.
//!
//! The suite runs a few trials per backend; a long run sets the count:
//! `NUTHATCH_CRASH_TRIALS=100 cargo test -p nuthatch-repl --test cli crash`
//! (add the `NUTHATCH_TEST_PG_*` variables `scripts/test` exports for
//! PostgreSQL). The random moments come from a seed printed on failure and
//! set with `NUTHATCH_CRASH_SEED`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{command, stderr, stdout};

/// Rows each version has.
const ROWS: u64 = 200_000;

/// A backend under trial: its name in the definition, the options the
/// definition needs, and the environment that points it at its store.
struct Trial {
    backend: &'static str,
    options: &'static str,
    env: Vec<(String, String)>,
}

fn trials() -> Vec<Trial> {
    let plain = |backend, options| Trial {
        backend,
        options,
        env: Vec::new(),
    };
    let mut trials = vec![
        plain("parquet", ""),
        plain("arrow", ""),
        plain("zarr", ", dimensions = (id)"),
        plain("delta", ""),
        plain("sql", ""),
    ];
    let pg = |name: &str| std::env::var(format!("NUTHATCH_TEST_PG_{name}")).ok();
    if let (Some(port), Some(database), Some(user), Some(password)) = (
        pg("PORT"),
        pg("DATABASE"),
        pg("WRITER"),
        pg("WRITER_PASSWORD"),
    ) {
        let env = [
            ("DRIVER", "postgresql".to_string()),
            ("HOST", "127.0.0.1".to_string()),
            ("PORT", port),
            ("DATABASE", database),
            ("USERNAME", user),
            ("PASSWORD", password),
        ];
        trials.push(Trial {
            backend: "sql",
            options: "",
            env: env
                .into_iter()
                .map(|(k, v)| (format!("NUTHATCH_ROOT_SQL_{k}"), v))
                .collect(),
        });
    }
    trials
}

impl Trial {
    fn name(&self) -> &str {
        match (self.backend, self.env.is_empty()) {
            ("sql", true) => "sqlite",
            ("sql", false) => "postgresql",
            (backend, _) => backend,
        }
    }

    /// The definition: every row of version `v` says `v`; only `tag` keys
    /// the entry, so each call with another `v` overwrites the same one.
    fn definition(&self) -> String {
        format!(
            "CREATE CACHED FUNCTION crash(tag VARCHAR, v BIGINT) \
             WITH (cache_args = (tag), backend = '{}'{}) \
             AS SELECT value AS id, $v AS v FROM generate_series(1, {ROWS})",
            self.backend, self.options
        )
    }

    fn binary(&self, dir: &Path, sql: &str) -> Command {
        let mut binary = command(dir);
        binary.envs(self.env.iter().map(|(k, v)| (k, v)));
        binary.args(["-c", &self.definition(), "-c", sql]);
        binary
    }

    /// Writes version `v`, and how long the process took.
    fn write(&self, dir: &Path, v: u64) -> Duration {
        let started = Instant::now();
        let sql = format!(
            "SELECT count(*) FROM crash('t', {v}, recompute => true, cache_mode => 'overwrite')"
        );
        let output = self.binary(dir, &sql).output().unwrap();
        assert!(
            output.status.success(),
            "{}: {}",
            self.name(),
            stderr(&output)
        );
        started.elapsed()
    }

    /// The version the entry holds, checking that it holds all of one;
    /// `None` when there is no entry.
    fn stored_version(&self, dir: &Path, context: &str) -> Option<u64> {
        let sql = "SELECT count(*) AS n, min(v) AS low, max(v) AS high \
                   FROM crash('t', 0, cache_mode => 'read_only_strict')";
        let output = self
            .binary(dir, sql)
            .args(["--format", "csv"])
            .output()
            .unwrap();
        let out = stdout(&output);
        if stderr(&output).contains("no cache entry crash/tag_t") {
            return None;
        }
        assert!(
            output.status.success(),
            "{context}: {}{out}",
            stderr(&output)
        );
        let row = out.lines().nth(1).unwrap_or_default().to_string();
        let values: Vec<u64> = row
            .split(',')
            .filter_map(|v| v.trim().parse().ok())
            .collect();
        assert_eq!(values.len(), 3, "{context}: {out}");
        assert_eq!(
            values[0], ROWS,
            "{context}: a part of a version is visible: {row}"
        );
        assert_eq!(values[1], values[2], "{context}: versions are mixed: {row}");
        Some(values[1])
    }
}

/// A small generator of kill moments, reproducible from its seed.
struct Moments(u64);

impl Moments {
    fn next_within(&mut self, span: Duration) -> Duration {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let fraction = (self.0 >> 11) as f64 / (1u64 << 53) as f64;
        span.mul_f64(fraction)
    }
}

#[test]
fn every_backend_keeps_the_old_or_the_new_version_whenever_a_write_is_killed() {
    let count: u64 = std::env::var("NUTHATCH_CRASH_TRIALS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(4);
    let seed: u64 = std::env::var("NUTHATCH_CRASH_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| std::process::id() as u64 * 7919);
    let mut moments = Moments(seed);
    for trial in trials() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        // Version 0, whole; its time (start-up included) spans the kills.
        let span = trial.write(dir, 0).mul_f64(1.2);
        let mut committed = Some(0);
        let mut landed = 0;
        for v in 1..=count {
            let sql = format!(
                "SELECT count(*) FROM crash('t', {v}, recompute => true, cache_mode => 'overwrite')"
            );
            let mut process = trial
                .binary(dir, &sql)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let moment = moments.next_within(span);
            std::thread::sleep(moment);
            let _ = process.kill();
            let status = process.wait().unwrap();
            let context = format!(
                "{} trial {v} (seed {seed}), killed after {moment:?} of {span:?}",
                trial.name()
            );
            // Whole (checked by stored_version): the old version or the
            // new one, never none.
            let stored = trial.stored_version(dir, &context);
            assert!(
                stored == committed || stored == Some(v),
                "{context}: holds version {stored:?}, not {committed:?} or {v}"
            );
            if stored == Some(v) {
                landed += 1;
            }
            // A process that ended by itself before the kill committed.
            if status.success() {
                assert_eq!(
                    stored,
                    Some(v),
                    "{context}: exited cleanly, yet did not commit"
                );
            }
            committed = stored;
        }
        // After every kill, a write completes, and vacuum leaves the entry.
        trial.write(dir, count + 1);
        assert_eq!(trial.stored_version(dir, trial.name()), Some(count + 1));
        let swept = {
            let mut binary = command(dir);
            binary.envs(trial.env.iter().map(|(k, v)| (k, v)));
            binary
                .args(["vacuum", "--older-than", "0s"])
                .output()
                .unwrap()
        };
        assert!(swept.status.success(), "{}", stderr(&swept));
        assert_eq!(trial.stored_version(dir, trial.name()), Some(count + 1));
        let staged = walkdir(dir).into_iter().find(|p| p.contains(".next"));
        assert_eq!(staged, None, "{}: a staged copy was left", trial.name());
        eprintln!(
            "{}: {count} kills over {span:?}: the new version {landed} times, the old one {} \
             times, whole every time",
            trial.name(),
            count - landed
        );
    }
}

/// Every path under `dir`, relative to it.
fn walkdir(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            found.push(path.strip_prefix(dir).unwrap().display().to_string());
            if path.is_dir() {
                pending.push(path);
            }
        }
    }
    found
}

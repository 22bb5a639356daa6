//! The `nuthatch` binary, run as a user runs it, in a fresh project folder.

use std::path::Path;
use std::process::{Command, Output};

/// The binary in `dir`, on the embedded default root whatever the caller's
/// environment says.
fn command(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nuthatch"));
    command
        .current_dir(dir)
        .env_remove("NUTHATCH_ROOT_FILESYSTEM");
    command
}

fn nuthatch(dir: &Path, args: &[&str]) -> Output {
    command(dir).args(args).output().expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

const FUNCTIONS: &str = "
CREATE CACHED FUNCTION hourly(start_time TIMESTAMP, end_time TIMESTAMP, step BIGINT DEFAULT 1)
WITH (cache_args = (step), version = 'a', timeseries = 'time')
AS SELECT t.value AS time, $step AS step
   FROM generate_series(TIMESTAMP '2020-01-01T00:00:00', TIMESTAMP '2020-01-10T23:00:00', INTERVAL '1 hour') AS t;
";

#[test]
fn definitions_from_the_project_file_are_cached_in_the_embedded_root() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("functions.sql"), FUNCTIONS).unwrap();
    std::fs::write(
        dir.path().join("nuthatch.toml"),
        "[nuthatch]\ndefinitions = [\"functions.sql\"]\n",
    )
    .unwrap();
    let sql = "SELECT count(*) AS n FROM hourly('2020-01-02', '2020-01-03', step => 2)";

    let first = nuthatch(dir.path(), &["-c", sql]);
    assert!(first.status.success(), "{}", stderr(&first));
    let out = stdout(&first);
    assert!(out.contains("| 48 |"), "{out}");
    assert!(
        out.contains("nuthatch: hourly: computed root parquet hourly/2 rows=48"),
        "{out}"
    );
    assert!(out.contains("1 row(s) fetched."), "{out}");
    assert!(
        dir.path().join(".nuthatch/hourly/2.parquet").is_file(),
        "embedded root in the working directory"
    );

    let second = nuthatch(dir.path(), &["-c", sql]);
    let out = stdout(&second);
    assert!(
        out.contains("nuthatch: hourly: hit root parquet hourly/2 rows=48"),
        "{out}"
    );
}

#[test]
fn files_run_in_order_and_the_first_error_stops_with_a_failure_code() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("functions.sql"), FUNCTIONS).unwrap();
    std::fs::write(
        dir.path().join("queries.sql"),
        "SELECT count(*) FROM hourly(NULL, NULL);\nSELECT * FROM hourly(NULL, NULL, stpe => 3);\nSELECT 'never';",
    )
    .unwrap();
    let output = nuthatch(
        dir.path(),
        &[
            "-f",
            "functions.sql",
            "-f",
            "queries.sql",
            "--root",
            "cache",
        ],
    );
    assert!(!output.status.success());
    assert!(stdout(&output).contains("| 240 "), "{}", stdout(&output));
    assert!(!stdout(&output).contains("never"));
    assert!(
        stderr(&output).contains("hourly has no parameter 'stpe'"),
        "{}",
        stderr(&output)
    );
    assert!(dir.path().join("cache/hourly/1.parquet").is_file());
}

#[test]
fn csv_output_and_quiet_mode() {
    let dir = tempfile::tempdir().unwrap();
    let output = nuthatch(
        dir.path(),
        &["-q", "--format", "csv", "-c", "SELECT 1 AS a, 'x' AS b"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "a,b\n1,x\n");
}

#[test]
fn the_interactive_prompt_reads_statements_across_lines() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let mut child = command(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT 40 + 2\n  AS answer;\nSELECT * FROM nope();\n\\q\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("| 42     |"),
        "{}",
        stdout(&output)
    );
    assert!(
        stderr(&output).contains("nope"),
        "errors are shown and the prompt goes on: {}",
        stderr(&output)
    );
}

#[test]
fn the_readme_sql_files_define_and_run_the_workflow() {
    let dir = tempfile::tempdir().unwrap();
    // Read at run time, not compile time: a target dir shared between two
    // checkouts keeps test binaries built in the other one.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo test");
    let examples = Path::new(&manifest_dir).join("../examples");
    let functions = examples.join("readme_functions.sql");
    let sql =
        "SELECT count(DISTINCT time) AS steps, count(*) FILTER (WHERE air IS NULL) AS warmup \
               FROM agg_and_clip('2013-01-01', '2013-06-01', agg_days => 3)";
    let output = nuthatch(dir.path(), &["-f", functions.to_str().unwrap(), "-c", sql]);
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(
        out.contains("| 608   | 2650   |"),
        "608 steps, 2 null steps per grid point: {out}"
    );
    assert!(
        out.contains("my_first_cache: computed root parquet my_first_cache/ rows=3869000"),
        "{out}"
    );
    assert!(
        out.contains("agg_and_clip: computed root parquet agg_and_clip/3 rows=805600"),
        "{out}"
    );
}

#[test]
fn a_compute_killed_midway_leaves_no_entry() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    // Long enough that the kill below always lands while it computes.
    let slow = "CREATE CACHED FUNCTION slow() AS \
                SELECT sum(a.value * b.value) AS total \
                FROM generate_series(1, 1000000) a CROSS JOIN generate_series(1, 1000000) b;";
    let mut child = command(dir.path())
        .args(["-c", slow, "-c", "SELECT * FROM slow();"])
        .env("NUTHATCH_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains("computing") {
            break;
        }
    }
    assert!(log.contains("computing"), "the compute started: {log}");
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success());

    let root = dir.path().join(".nuthatch");
    let mut left = Vec::new();
    let mut folders = vec![root.clone()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                folders.push(entry.path());
            } else {
                left.push(
                    entry
                        .path()
                        .strip_prefix(&root)
                        .unwrap()
                        .display()
                        .to_string(),
                );
            }
        }
    }
    assert!(
        left.iter().all(|f| f == "nuthatch_metadata.nut/exists.nut"),
        "nothing of the entry is on the store: {left:?}"
    );
    let again = nuthatch(
        dir.path(),
        &[
            "-c",
            slow,
            "-c",
            "SELECT * FROM slow(cache_mode => 'read_only_strict');",
        ],
    );
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("no cache entry slow on the root tier"),
        "{}",
        stderr(&again)
    );
}

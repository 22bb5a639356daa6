//! `nuthatch serve` with the real Python ADBC client (adbc_driver_flightsql,
//! from the test command's venv) connecting over loopback.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::*;

struct Server {
    child: Child,
    uri: String,
    log: PathBuf,
}

impl Server {
    /// Starts the server in `dir`, with debug logs to a file.
    fn start(dir: &Path, token: Option<&str>) -> Server {
        Server::start_with(dir, token, &[], &[])
    }

    /// Starts the server with extra `args` and environment `vars`.
    fn start_with(dir: &Path, token: Option<&str>, args: &[&str], vars: &[(&str, &str)]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("serve.log");
        let mut command = command(dir);
        command
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .args(args)
            .envs(vars.iter().copied())
            .env("NUTHATCH_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(token) = token {
            command.env("NUTHATCH_SERVER_TOKEN", token);
        }
        let mut child = command.spawn().expect("the binary runs");
        // Wait for the listening line, then keep the log in a file.
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut first = String::new();
        let scheme = loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap() == 0 {
                panic!("the server exited: {first}");
            }
            first.push_str(&line);
            if let Some(at) = line.find("Flight SQL on ") {
                let rest = &line[at + "Flight SQL on ".len()..];
                break rest[..rest.find("://").unwrap()].to_string();
            }
        };
        let mut file = std::fs::File::create(&log).unwrap();
        std::io::Write::write_all(&mut file, first.as_bytes()).unwrap();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut stderr, &mut file);
        });
        Server {
            child,
            uri: format!("{scheme}://127.0.0.1:{port}"),
            log,
        }
    }

    /// The Python client running a scenario of tests/python/adbc_client.py
    /// with `options` (`token=...`, `root_certs=...`).
    fn python(&self, scenario: &str, options: &[String]) -> std::process::Command {
        let python = std::env::var("NUTHATCH_TEST_PYTHON").expect("run by bash scripts/test");
        let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
        let script = Path::new(&manifest_dir).join("../tests/python/adbc_client.py");
        let mut command = std::process::Command::new(python);
        command
            .arg(script)
            .arg(&self.uri)
            .arg(scenario)
            .args(options);
        command
    }

    /// Runs a scenario to its end (two minutes at most); returns its JSON.
    fn client_with(&self, scenario: &str, options: &[String]) -> String {
        let mut child = self
            .python(scenario, options)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the client {scenario} did not finish: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    }

    fn client(&self, scenario: &str, token: Option<&str>) -> String {
        let options: Vec<String> = token.iter().map(|t| format!("token={t}")).collect();
        self.client_with(scenario, &options)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (a minute at most) until every one of `needles` is in one line
    /// of the log.
    fn wait_for_log(&self, needles: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = self.log();
            if log.lines().any(|l| needles.iter().all(|n| l.contains(n))) {
                return;
            }
            assert!(Instant::now() < deadline, "{needles:?} never logged: {log}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs the Python ADBC client: run bash scripts/test"]
fn a_client_cancel_stops_the_query_and_stores_nothing() {
    let dir = project(
        "CREATE CACHED FUNCTION slow(n BIGINT, size BIGINT) WITH (cache_args = (n))
         AS SELECT value AS v FROM generate_series(1, $size);",
    );
    let server = Server::start(dir.path(), None);
    let seen = server.client_with("cancel", &["after=2".into()]);
    assert!(!seen.contains(r#""cancelled": null"#), "{seen}");
    assert!(seen.contains(r#""after": [{"one": 1}]"#), "{seen}");
    assert!(seen.contains(r#""stored": [{"n": 0}]"#), "{seen}");
    server.wait_for_log(&["query cancelled: the client went away"]);
}

#[test]
#[ignore = "needs the Python ADBC client: run bash scripts/test"]
fn bound_parameters_are_values_from_the_dbapi_pandas_and_polars() {
    let dir = project("");
    let server = Server::start(dir.path(), None);
    let seen = server.client("params", None);
    let hostile = r#"x'); DELETE FROM nuthatch.caches; --"#;
    for expected in [
        // A datetime at midnight ends the window there (25 hours); the
        // date alone would take the whole day, as in SQL text.
        r#""bound": [{"step": 2, "n": 25}]"#.to_string(),
        r#""again": [{"step": 3, "n": 13}]"#.to_string(),
        r#""numbered": [{"n": 48}]"#.to_string(),
        format!(
            r#""hostile": [{{"label": "{hostile}", "n": {}}}]"#,
            hostile.len()
        ),
        r#""after_errors": [{"one": 1}]"#.to_string(),
        r#""left": [{"key": "hourly/2"}]"#.to_string(),
        r#""pandas": 48"#.to_string(),
        r#""polars": 48"#.to_string(),
        "has 3 parameter(s) and 1 value(s) were given".to_string(),
    ] {
        assert!(seen.contains(&expected), "{expected} in {seen}");
    }
    assert!(
        seen.contains("argument 'step' of hourly expects an integer; got the string two"),
        "{seen}"
    );
    // One log line per query, naming the session; no bound value at info
    // level or above (the test server also logs plans at debug).
    server.wait_for_log(&["query done", "session=", "rows=1", "ms="]);
    let log = server.log();
    let shown: Vec<&str> = (log.lines())
        .filter(|l| {
            [" INFO ", " WARN ", " ERROR "]
                .iter()
                .any(|level| l.contains(level))
        })
        .filter(|l| l.contains("DELETE FROM nuthatch.caches; --"))
        .collect();
    assert!(shown.is_empty(), "{shown:?}");
}

#[test]
#[ignore = "needs the Python ADBC client: run bash scripts/test"]
fn adbc_clients_query_cached_functions_each_in_its_own_session() {
    let dir = project("");
    let server = Server::start(dir.path(), None);
    let seen = server.client("session", None);
    for expected in [
        r#""hourly": [{"step": 2, "n": 48}]"#,
        r#""schema": ["time:timestamp[ns]", "step:int64"]"#,
        r#""after_error": [{"one": 1}]"#,
        r#""squares": [{"total": 14}]"#,
        // This session's calls only; the other session has none.
        r#""calls": [{"function": "hourly", "outcome": "computed"}, {"function": "hourly", "outcome": "hit"}, {"function": "squares", "outcome": "computed"}]"#,
        r#""other_session_calls": []"#,
        // Definitions are the engine's: the other session calls it too.
        r#""other_session_squares": [{"total": 14}]"#,
        r#""vendor": "nuthatch""#,
    ] {
        assert!(seen.contains(expected), "{expected} in {seen}");
    }
    assert!(
        seen.contains(
            "ProgrammingError: INVALID_ARGUMENT: [FlightSQL] hourly has no parameter 'stepz'"
        ),
        "{seen}"
    );
    assert!(
        seen.contains(r#""table_schema": ["tier", "role", "function", "key""#),
        "{seen}"
    );
    assert!(
        seen.contains(r#""nuthatch.caches""#) && seen.contains(r#""nuthatch.functions""#),
        "{seen}"
    );
}

#[test]
#[ignore = "needs the Python ADBC client: run bash scripts/test"]
fn a_notebook_grows_a_timeseries_entry_over_adbc() {
    let dir = project("");
    let server = Server::start(dir.path(), None);
    let seen = server.client("extend", None);
    for expected in [
        r#""may": [{"n": 31}]"#,
        r#""spring": [{"n": 91}]"#,
        r#"{"outcome": "extended", "ranges_computed": "2020-04-01 .. 2020-05-01, 2020-06-01 .. 2020-07-01", "rows_inserted": 60}"#,
        r#""coverage": [{"coverage": "2020-04-01 .. 2020-07-01"}]"#,
    ] {
        assert!(seen.contains(expected), "{expected} in {seen}");
    }
}

#[test]
#[ignore = "needs the Python ADBC client: run bash scripts/test"]
fn a_notebook_receives_what_the_body_computed_or_what_changed() {
    let dir = project("");
    let server = Server::start(dir.path(), None);
    let seen = server.client("roundtrip", None);
    // Parquet and Arrow: the miss and the hit are what the body computed,
    // nanoseconds, NaN, -0.0, the extreme integers and the text included.
    for backend in ["parquet", "arrow"] {
        let exact = format!(r#""{backend}": {{"miss_is_off": true, "hit_is_miss": true"#);
        assert!(seen.contains(&exact), "{exact} in {seen}");
    }
    assert!(
        seen.contains(
            r#"["1577836800000000001", "nan", "'it\\'s \"quoted\"'", "-9223372036854775808", "None"]"#
        ),
        "{seen}"
    );
    // SQLite and Delta: what they cannot hold comes back changed, the
    // same on the miss as on the hit, and the call said what changed.
    for expected in [
        r#""sql": {"miss_is_off": false, "hit_is_miss": true"#,
        r#"["1577836800000000000", "None", "'it\\'s \"quoted\"'", "-9223372036854775808", "None"], ["1577836801000000000", "0.0""#,
        r#"{"outcome": "computed", "changes": "t: nanoseconds truncated to microseconds (1 value); x: NaN stored as missing, read back as null (1 value); x: -0.0 stored as 0.0 (1 value)"}"#,
        r#""delta": {"miss_is_off": false, "hit_is_miss": true"#,
        r#"{"outcome": "computed", "changes": "t: nanoseconds truncated to microseconds (1 value)"}"#,
    ] {
        assert!(seen.contains(expected), "{expected} in {seen}");
    }
}

#[test]
#[ignore = "needs the Python ADBC client: run bash scripts/test"]
fn ten_concurrent_clients_share_one_compute() {
    let dir = project("");
    let server = Server::start(dir.path(), None);
    let seen = server.client("concurrent", None);
    assert!(
        seen.contains(r#""counts": [240, 240, 240, 240, 240, 240, 240, 240, 240, 240]"#),
        "{seen}"
    );
    assert!(
        seen.contains(r#""outcomes": ["computed", "hit", "hit", "hit", "hit", "hit", "hit", "hit", "hit", "hit"]"#),
        "identical misses compute once: {seen}"
    );
    assert!(seen.contains(r#""errors": []"#), "{seen}");
}

#[test]
#[ignore = "needs the Python ADBC client: run bash scripts/test"]
fn a_server_token_is_required_and_never_logged() {
    let dir = project("");
    let secret = "s3cret-token-4d1f";
    let server = Server::start(dir.path(), Some(secret));
    let refused = server.client("auth", None);
    assert!(
        refused.contains("UNAUTHENTICATED") && refused.contains("this server needs a token"),
        "{refused}"
    );
    let wrong = server.client("auth", Some("not-the-token"));
    assert!(wrong.contains("UNAUTHENTICATED"), "{wrong}");
    let allowed = server.client("auth", Some(secret));
    assert!(allowed.contains(r#""rows": [{"answer": 42}]"#), "{allowed}");
    assert!(!server.log().contains(secret), "{}", server.log());
}

#[test]
#[ignore = "needs the Python ADBC client: run bash scripts/test"]
fn a_client_killed_mid_stream_cancels_its_query() {
    let dir = project(
        "CREATE CACHED FUNCTION slow(n BIGINT, size BIGINT) WITH (cache_args = (n))
         AS SELECT value AS v FROM generate_series(1, $size);",
    );
    let server = Server::start(dir.path(), None);
    let mut held = server
        .python("hold", &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    server.wait_for_log(&["computing", "slow"]);
    held.kill().unwrap();
    held.wait().unwrap();
    server.wait_for_log(&["query cancelled: the client went away"]);
    server.wait_for_log(&["compute abandoned"]);
    // The entry is free again: this call leads its own compute instead of
    // waiting for five billion rows.
    let seen = server.client("after_kill", None);
    assert!(seen.contains(r#""rows": [{"n": 10}]"#), "{seen}");
    assert!(seen.contains(r#""outcomes": ["computed"]"#), "{seen}");
}

#[test]
#[ignore = "needs the Python ADBC client and openssl: run bash scripts/test"]
fn tls_clients_verify_the_server_certificate() {
    let dir = project("");
    let status = std::process::Command::new("openssl")
        .current_dir(dir.path())
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success());
    let args = ["--tls-cert", "cert.pem", "--tls-key", "key.pem"];
    let server = Server::start_with(dir.path(), None, &args, &[]);
    assert!(server.uri.starts_with("grpc+tls://"), "{}", server.uri);
    let trusted = format!("root_certs={}", dir.path().join("cert.pem").display());
    let seen = server.client_with("auth", &[trusted]);
    assert!(seen.contains(r#""rows": [{"answer": 42}]"#), "{seen}");
    // Without the certificate among its roots, the client refuses the server.
    let seen = server.client_with("auth", &[]);
    assert!(seen.contains("certificate"), "{seen}");
}

#[test]
#[ignore = "needs the Python ADBC client: run bash scripts/test"]
fn idle_sessions_end_on_the_servers_timer() {
    let dir = project("");
    let vars = [("NUTHATCH_SERVER_SESSION_IDLE", "2s")];
    let server = Server::start_with(dir.path(), None, &[], &vars);
    let seen = server.client_with("idle", &["sleep=4".into()]);
    assert!(
        seen.contains(r#""before": [{"function": "hourly", "outcome": "computed"}]"#),
        "{seen}"
    );
    // The client carries on in a new session: the old one's reports are gone.
    assert!(seen.contains(r#""after": []"#), "{seen}");
    server.wait_for_log(&["ended idle client sessions"]);
}

#[test]
#[ignore = "needs the Python ADBC client: run bash scripts/test"]
fn the_notebook_example_runs() {
    let dir = project("");
    let server = Server::start(dir.path(), None);
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let python = std::env::var("NUTHATCH_TEST_PYTHON").expect("run by bash scripts/test");
    let output = std::process::Command::new(python)
        .arg(Path::new(&manifest_dir).join("../examples/notebook.py"))
        .arg(&server.uri)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let seen = stdout(&output);
    // Daily means over 2013 at 25 x 53 points, the same clipped to five
    // months, weekly means.
    for expected in [
        "daily means, 2013    1,939,800 rows",
        "the same, Jan-May      805,600 rows",
        "weekly means, 2013   1,939,800 rows",
        "2013-01     1.6 C  #\n",
        "2013-07    26.5 C  ########################################\n",
    ] {
        assert!(seen.contains(expected), "{expected} in {seen}");
    }
    // The call report: each call once, the grid computed with the first.
    let calls: Vec<String> = seen
        .lines()
        .filter(|l| l.starts_with('│'))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('│').split('┆').map(str::trim).collect();
            format!("{} {} {}", cells[0], cells[1], cells[3])
        })
        .collect();
    assert_eq!(
        calls,
        [
            "function outcome key",
            "my_first_cache computed my_first_cache/",
            "agg_and_clip computed agg_and_clip/1",
            "agg_and_clip hit agg_and_clip/1",
            "my_first_cache hit my_first_cache/",
            "agg_and_clip computed agg_and_clip/7",
            "agg_and_clip hit agg_and_clip/1",
        ],
        "{seen}"
    );
}

#[test]
#[ignore = "needs the Python ADBC client: run bash scripts/test"]
fn the_server_coordinates_the_workers_for_its_clients() {
    use crate::cluster::{dataset, worker, QUERY, SPLIT};
    let dir = project("");
    let table = dataset(dir.path(), 200_000);
    let alone = nuthatch(dir.path(), &["-c", &table, "-c", QUERY]);
    assert!(alone.status.success(), "{}", stderr(&alone));
    let workers = [worker(dir.path()), worker(dir.path())];
    let urls = format!("{},{}", workers[0].url, workers[1].url);
    let vars = [("NUTHATCH_DISTRIBUTED_WORKERS", urls.as_str())];
    let server = Server::start_with(dir.path(), None, &[], &vars);
    let session = |last: &str| {
        let statements = [
            table.trim_end_matches(';'),
            SPLIT.trim_end_matches(';'),
            last,
        ];
        server.client_with("statements", &[format!("sql={}", statements.join(";;"))])
    };
    // The client's rows are one process's, and its plan has stages.
    let seen = session(QUERY);
    let expected: Vec<String> = stdout(&alone)
        .lines()
        .filter(|l| l.starts_with("| g") && !l.starts_with("| grp"))
        .map(|l| l.split('|').nth(2).unwrap().trim().to_string())
        .collect();
    assert_eq!(expected.len(), 7);
    for n in &expected {
        assert!(seen.contains(&format!("\"n\": {n}")), "{n} in {seen}");
    }
    let plan = session(&format!("EXPLAIN ANALYZE {QUERY}"));
    assert!(
        plan.contains("DistributedExec") && plan.contains("Stage 1"),
        "{plan}"
    );
}

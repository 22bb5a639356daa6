//! `nuthatch serve` with the real Python ADBC client (adbc_driver_flightsql,
//! from the test command's venv) connecting over loopback.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use super::*;

struct Server {
    child: Child,
    uri: String,
    log: PathBuf,
}

impl Server {
    /// Starts the server in `dir`, with debug logs to a file.
    fn start(dir: &Path, token: Option<&str>) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("serve.log");
        let mut command = command(dir);
        command
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
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
        loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap() == 0 {
                panic!("the server exited: {first}");
            }
            first.push_str(&line);
            if line.contains("Flight SQL on grpc://") {
                break;
            }
        }
        let mut file = std::fs::File::create(&log).unwrap();
        std::io::Write::write_all(&mut file, first.as_bytes()).unwrap();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut stderr, &mut file);
        });
        Server {
            child,
            uri: format!("grpc://127.0.0.1:{port}"),
            log,
        }
    }

    /// Runs a scenario of tests/python/adbc_client.py; returns its JSON.
    fn client(&self, scenario: &str, token: Option<&str>) -> String {
        let python = std::env::var("NUTHATCH_TEST_PYTHON").expect("run by bash scripts/test");
        let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
        let script = Path::new(&manifest_dir).join("../tests/python/adbc_client.py");
        let mut command = std::process::Command::new(python);
        command.arg(script).arg(&self.uri).arg(scenario);
        if let Some(token) = token {
            command.arg(token);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
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

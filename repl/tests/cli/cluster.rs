//! `nuthatch worker` processes on loopback, and the binary coordinating
//! them: the same rows as one process, a plan that shows the stages, a
//! miss written by the workers to an S3 root, a worker killed while it
//! writes, an unreachable worker named in the error without a wait, and
//! workers that take only TLS and the cluster's token.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::{command, nuthatch, project, stderr, stdout};

/// A worker process, stopped when dropped.
pub(crate) struct Worker {
    child: Child,
    pub(crate) url: String,
    /// Its log, line by line, as it comes.
    log: std::sync::mpsc::Receiver<String>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Worker {
    /// Forgets what it logged so far.
    fn drain(&self) {
        while self.log.try_recv().is_ok() {}
    }

    /// Waits for a line of its log holding `marker`.
    fn wait_for(&self, marker: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while let Ok(line) = self.log.recv_timeout(deadline - Instant::now()) {
            if line.contains(marker) {
                return;
            }
        }
        panic!("the worker never logged '{marker}'");
    }
}

/// Starts `nuthatch worker` in `dir` on a free loopback port and reads the
/// URL it prints.
pub(crate) fn worker(dir: &Path) -> Worker {
    worker_with(dir, &[], &[])
}

/// [`worker`], with more flags and environment variables.
fn worker_with(dir: &Path, flags: &[&str], vars: &[(&str, &str)]) -> Worker {
    let mut child = command(dir)
        .args(["worker", "--listen", "127.0.0.1:0"])
        .args(flags)
        .envs(vars.iter().copied())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the worker printed its address")
            .unwrap();
        if let Some(rest) = line.strip_prefix("nuthatch: worker on ") {
            break rest.split([';', ',']).next().unwrap().to_string();
        }
    };
    // The rest of its output is passed on as it comes, so that it never
    // blocks, whether or not anyone reads it.
    let (sender, log) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    Worker { child, url, log }
}

/// Writes a Parquet dataset of `rows` rows (`id`, a group `grp` of 7, a
/// value `v`) under `dir/obs` with the binary, and returns the statement
/// that makes it a table.
pub(crate) fn dataset(dir: &Path, rows: u64) -> String {
    let data = dir.join("obs");
    let write = format!(
        "COPY (SELECT value AS id, 'g' || CAST(value % 7 AS VARCHAR) AS grp, \
         (value * 7919) % 1000 AS v FROM generate_series(0, {})) \
         TO '{}/' STORED AS PARQUET",
        rows - 1,
        data.display()
    );
    let out = nuthatch(dir, &["-c", &write]);
    assert!(out.status.success(), "{}", stderr(&out));
    format!(
        "CREATE EXTERNAL TABLE obs STORED AS PARQUET LOCATION '{}/';",
        data.display()
    )
}

/// Splits scans into a task per worker however small the files are (the
/// default is a task per 16 MiB); only a coordinator has the setting.
pub(crate) const SPLIT: &str = "SET distributed.file_scan_config_bytes_per_partition = 1;";

pub(crate) const QUERY: &str = "SELECT o.grp, count(*) AS n, sum(o.v) AS total \
     FROM obs o JOIN obs p ON o.id = p.id + 1 WHERE p.v > 500 GROUP BY o.grp ORDER BY o.grp";

#[test]
fn two_workers_give_the_rows_one_process_gives() {
    let dir = project("");
    let table = dataset(dir.path(), 200_000);
    let alone = nuthatch(dir.path(), &["-c", &table, "-c", QUERY]);
    assert!(alone.status.success(), "{}", stderr(&alone));

    let workers = [worker(dir.path()), worker(dir.path())];
    let urls: Vec<&str> = workers.iter().map(|w| w.url.as_str()).collect();
    let on_cluster = |sql: &str| {
        command(dir.path())
            .env("NUTHATCH_DISTRIBUTED_WORKERS", urls.join(","))
            .args(["-c", &table, "-c", SPLIT, "-c", sql])
            .output()
            .unwrap()
    };
    let distributed = on_cluster(QUERY);
    assert!(distributed.status.success(), "{}", stderr(&distributed));
    let rows = |text: String| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("| g") && !l.starts_with("| grp"))
            .map(str::to_string)
            .collect()
    };
    let expected = rows(stdout(&alone));
    assert_eq!(expected.len(), 7, "{}", stdout(&alone));
    assert_eq!(rows(stdout(&distributed)), expected);
    let plan = stdout(&on_cluster(&format!("EXPLAIN {QUERY}")));
    assert!(
        plan.contains("DistributedExec") && plan.contains("NetworkShuffleExec"),
        "{plan}"
    );
}

#[test]
fn a_worker_that_cannot_be_reached_is_named_and_nothing_waits_for_it() {
    let dir = project("");
    let table = dataset(dir.path(), 100_000);
    // One worker is up; nothing listens on the other's port (discard).
    let live = worker(dir.path());
    let started = Instant::now();
    let out = command(dir.path())
        .env(
            "NUTHATCH_DISTRIBUTED_WORKERS",
            format!("{},http://127.0.0.1:9", live.url),
        )
        .args(["-c", &table, "-c", SPLIT, "-c", QUERY])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let error = stderr(&out);
    assert!(
        error.contains("worker http://127.0.0.1:9/ cannot be reached (Connection refused")
            && error.contains("nuthatch worker --listen"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
#[ignore = "needs openssl: run bash scripts/test"]
fn workers_on_tls_take_only_coordinators_with_the_token() {
    let dir = project("");
    authority_and_certificate(dir.path());
    let table = dataset(dir.path(), 100_000);
    let alone = nuthatch(dir.path(), &["-c", &table, "-c", QUERY]);
    assert!(alone.status.success(), "{}", stderr(&alone));

    // Workers dial each other too, so they take the token and the CA.
    const TOKEN: &str = "wren-7c1f-token";
    let secured = [
        ("NUTHATCH_DISTRIBUTED_TOKEN", TOKEN),
        ("NUTHATCH_DISTRIBUTED_TLS_CA", "ca.pem"),
    ];
    let tls = ["--tls-cert", "cert.pem", "--tls-key", "key.pem"];
    let workers = [
        worker_with(dir.path(), &tls, &secured),
        worker_with(dir.path(), &tls, &secured),
    ];
    assert!(
        workers[0].url.starts_with("https://127.0.0.1:"),
        "{}",
        workers[0].url
    );
    let urls: Vec<&str> = workers.iter().map(|w| w.url.as_str()).collect();
    let on_cluster = |vars: &[(&str, &str)]| {
        command(dir.path())
            .env("NUTHATCH_DISTRIBUTED_WORKERS", urls.join(","))
            .envs(vars.iter().copied())
            .args(["-c", &table, "-c", SPLIT, "-c", QUERY])
            .output()
            .unwrap()
    };

    let out = on_cluster(&secured);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = |text: String| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("| g"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(rows(stdout(&out)), rows(stdout(&alone)));

    // Without the token: refused, and told what to set.
    let out = on_cluster(&[("NUTHATCH_DISTRIBUTED_TLS_CA", "ca.pem")]);
    assert!(!out.status.success());
    let error = stderr(&out);
    assert!(
        error.contains("needs the cluster's token: set distributed.token"),
        "{error}"
    );
    // With the wrong one: the same, and neither token is shown.
    let out = on_cluster(&[
        ("NUTHATCH_DISTRIBUTED_TLS_CA", "ca.pem"),
        ("NUTHATCH_DISTRIBUTED_TOKEN", "guessed"),
    ]);
    let error = stderr(&out);
    assert!(error.contains("needs the cluster's token"), "{error}");
    assert!(
        !error.contains(TOKEN) && !error.contains("guessed"),
        "{error}"
    );
    // Without the authority that signed the workers' certificate: named.
    let out = on_cluster(&[("NUTHATCH_DISTRIBUTED_TOKEN", TOKEN)]);
    assert!(!out.status.success());
    let error = stderr(&out);
    assert!(
        error.contains("answers but its TLS cannot be trusted")
            && error.contains("distributed.tls_ca"),
        "{error}"
    );
}

/// An authority of the project's own (`ca.pem`) and a certificate it signed
/// for the workers on loopback (`cert.pem`, `key.pem`), made with openssl.
fn authority_and_certificate(dir: &Path) {
    let openssl = |args: &str| {
        let status = std::process::Command::new("openssl")
            .current_dir(dir)
            .args(args.split(' '))
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl {args}");
    };
    openssl(
        "req -x509 -newkey rsa:2048 -nodes -days 1 -keyout ca-key.pem -out ca.pem \
         -subj /CN=nuthatch-test-authority",
    );
    openssl("req -newkey rsa:2048 -nodes -keyout key.pem -out worker.csr -subj /CN=localhost");
    std::fs::write(
        dir.join("worker.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        "x509 -req -in worker.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 1 \
         -out cert.pem -extfile worker.ext",
    );
}

#[test]
#[ignore = "needs an S3 server: run bash scripts/test"]
fn workers_write_a_miss_to_s3_and_one_killed_midway_leaves_nothing() {
    let endpoint = std::env::var("NUTHATCH_TEST_S3_ENDPOINT").expect("run by bash scripts/test");
    let dir = project("");
    let table = dataset(dir.path(), 2_000_000);
    let root = format!("s3://nuthatch-test/cluster-{}", std::process::id());
    let s3 = [
        ("NUTHATCH_ROOT_FILESYSTEM", root.as_str()),
        (
            "NUTHATCH_ROOT_FILESYSTEM_OPTIONS_ENDPOINT",
            endpoint.as_str(),
        ),
        ("NUTHATCH_ROOT_FILESYSTEM_OPTIONS_ACCESS_KEY_ID", "testing"),
        (
            "NUTHATCH_ROOT_FILESYSTEM_OPTIONS_SECRET_ACCESS_KEY",
            "testing",
        ),
        ("NUTHATCH_ROOT_FILESYSTEM_OPTIONS_REGION", "us-east-1"),
        ("NUTHATCH_ROOT_FILESYSTEM_OPTIONS_ALLOW_HTTP", "true"),
        ("NUTHATCH_LOG", "info,nuthatch_backends=debug"),
    ];
    let workers = [
        worker_with(dir.path(), &[], &s3),
        worker_with(dir.path(), &[], &s3),
    ];
    let define = "CREATE CACHED FUNCTION noisy(min_v BIGINT) WITH (cache_args = (min_v)) AS \
                  SELECT id, grp, v, random() AS a, random() AS b FROM obs WHERE v >= $min_v;";
    let run = |urls: &[&str], sql: &str| {
        command(dir.path())
            .envs(s3.iter().copied())
            .env("NUTHATCH_DISTRIBUTED_WORKERS", urls.join(","))
            .args(["-c", &table, "-c", SPLIT, "-c", define, "-c", sql])
            .output()
            .unwrap()
    };
    let both = [workers[0].url.as_str(), workers[1].url.as_str()];
    let count = "SELECT count(*) AS n FROM noisy(0);";

    // The miss: both workers write parts of it, and one record lists them.
    let out = run(&both, count);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("| 2000000 "), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("noisy: computed root parquet"),
        "{}",
        stderr(&out)
    );
    let listed = run(
        &both,
        "SELECT parts, rows FROM nuthatch.caches WHERE function = 'noisy';",
    );
    let shown = stdout(&listed);
    let row = shown
        .lines()
        .find(|l| l.contains("| 2000000 "))
        .unwrap_or_else(|| panic!("{shown}"));
    let parts: u32 = row.split('|').nth(1).unwrap().trim().parse().unwrap();
    assert!(parts > 1, "{shown}");
    // The hit reads it whole.
    let out = run(&both, count);
    assert!(stdout(&out).contains("| 2000000 "), "{}", stdout(&out));
    assert!(stderr(&out).contains("noisy: hit root"), "{}", stderr(&out));

    // Another key; the second worker is killed once it is uploading.
    workers[1].drain();
    let other = "SELECT count(*) AS n FROM noisy(1);";
    let coordinator = command(dir.path())
        .envs(s3.iter().copied())
        .env("NUTHATCH_DISTRIBUTED_WORKERS", both.join(","))
        .args(["-c", &table, "-c", SPLIT, "-c", define, "-c", other])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let [live, mut doomed] = workers;
    doomed.wait_for("uploading");
    let _ = doomed.child.kill();
    let out = coordinator.wait_with_output().unwrap();
    assert!(!out.status.success(), "{}", stdout(&out));
    let error = stderr(&out);
    let named = format!("worker {}/ stopped answering mid-query", doomed.url);
    assert!(
        error.contains(&named) && error.contains("nothing was stored"),
        "{error}"
    );
    // Nothing of it is visible: a strict read finds no entry.
    let strict = run(
        &[live.url.as_str()],
        "SELECT count(*) FROM noisy(1, cache_mode => 'read_only_strict');",
    );
    assert!(!strict.status.success());
    assert!(
        stderr(&strict).contains("no cache entry noisy"),
        "{}",
        stderr(&strict)
    );
    // The retry, without the dead worker, computes and stores it.
    let out = run(&[live.url.as_str()], other);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("noisy: computed root parquet"),
        "{}",
        stderr(&out)
    );
}

//! Store faults, injected between the engine and a real S3-compatible
//! server: a proxy on loopback forwards each request to the test server,
//! unless a rule says to answer 503, reset the connection or wait first.
//! Transient faults are retried (the tier's `max_retries`, `backoff_*`), a
//! lasting one fails the call naming the tier and leaves nothing visible,
//! and the next call succeeds once the fault is gone.
//!
//! `#[ignore]`d for a bare `cargo test`; `bash scripts/test` runs them
//! against its moto server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nuthatch::{Config, Engine, Outcome, Session, TierConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{assert_outcome, count_in, series};

const SECRET: &str = "f4ult-s3cr3t";

/// What the proxy does to a request a rule matches.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Answers `503 SlowDown`, as S3 does under load.
    Unavailable,
    /// Closes the connection without answering (a reset).
    Reset,
    /// Waits this long, then forwards.
    Delay(Duration),
}

/// Requests with `method` whose path contains `path`: the first `skip` go
/// through, the next `times` get `fault`.
struct Rule {
    method: &'static str,
    path: String,
    skip: usize,
    times: usize,
    fault: Fault,
    matched: AtomicUsize,
}

#[derive(Default)]
struct Rules {
    rules: Mutex<Vec<Arc<Rule>>>,
    injected: AtomicUsize,
}

impl Rules {
    /// The fault for the request `method path`, if a rule gives it one.
    fn fault_for(&self, method: &str, path: &str) -> Option<Fault> {
        let rules = self.rules.lock().unwrap();
        let rule = rules
            .iter()
            .find(|rule| rule.method == method && path.contains(&rule.path))?;
        let seen = rule.matched.fetch_add(1, Ordering::SeqCst);
        let faulted = seen >= rule.skip && seen - rule.skip < rule.times;
        faulted.then(|| {
            self.injected.fetch_add(1, Ordering::SeqCst);
            rule.fault
        })
    }
}

/// The proxy, listening until dropped with the test's runtime.
struct FaultProxy {
    port: u16,
    rules: Arc<Rules>,
}

impl FaultProxy {
    async fn start(upstream: &str) -> FaultProxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let rules = Arc::new(Rules::default());
        let shared = Arc::clone(&rules);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (rules, upstream) = (Arc::clone(&shared), upstream.clone());
                tokio::spawn(async move {
                    let _ = serve(client, &upstream, &rules).await;
                });
            }
        });
        FaultProxy { port, rules }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn inject(&self, method: &'static str, path: &str, skip: usize, times: usize, fault: Fault) {
        self.rules.rules.lock().unwrap().push(Arc::new(Rule {
            method,
            path: path.to_string(),
            skip,
            times,
            fault,
            matched: AtomicUsize::new(0),
        }));
    }

    fn clear(&self) {
        self.rules.rules.lock().unwrap().clear();
    }

    /// How many faults were injected so far.
    fn injected(&self) -> usize {
        self.rules.injected.load(Ordering::SeqCst)
    }
}

/// One request of `client`: read, judged, answered or forwarded with the
/// connection closed after it (so each request is one connection).
async fn serve(mut client: TcpStream, upstream: &str, rules: &Rules) -> std::io::Result<()> {
    let (head, body) = read_message(&mut client).await?;
    let request_line = head.lines().next().unwrap_or_default().to_string();
    let mut words = request_line.split(' ');
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    match rules.fault_for(method, path) {
        Some(Fault::Unavailable) => {
            let xml = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.\
                       </Message></Error>";
            let answer = format!(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                xml.len()
            );
            client.write_all(answer.as_bytes()).await?;
            return client.shutdown().await;
        }
        Some(Fault::Reset) => {
            client.set_zero_linger()?;
            drop(client);
            return Ok(());
        }
        Some(Fault::Delay(wait)) => tokio::time::sleep(wait).await,
        None => {}
    }
    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(closing(&head).as_bytes()).await?;
    server.write_all(&body).await?;
    let (answer_head, answer_body) = read_head(&mut server).await?;
    client.write_all(closing(&answer_head).as_bytes()).await?;
    client.write_all(&answer_body).await?;
    tokio::io::copy(&mut server, &mut client).await?;
    client.shutdown().await
}

/// `head` with `Connection: close` in place of any connection header.
fn closing(head: &str) -> String {
    let mut lines: Vec<&str> = head
        .split("\r\n")
        .filter(|line| !line.is_empty())
        .filter(|line| !line.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    format!("{}\r\n\r\n", lines.join("\r\n"))
}

/// A message's head, and what of its body came with it.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).to_string();
            return Ok((head, bytes[end + 4..].to_vec()));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
}

/// A whole request: its head and its body (`Content-Length` bytes).
async fn read_message(stream: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let (head, mut body) = read_head(stream).await?;
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while body.len() < length {
        let mut chunk = vec![0u8; length - body.len()];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok((head, body))
}

/// A root on the test bucket through `proxy`, under its own folder, with
/// quick retries.
fn through(proxy: &FaultProxy, folder: &str, retries: usize) -> Config {
    let mut config = Config::with_root("unused");
    config.root = TierConfig::new(format!("s3://nuthatch-test/{folder}"))
        .with_option("endpoint", proxy.endpoint())
        .with_option("access_key_id", "testing")
        .with_option("secret_access_key", SECRET)
        .with_option("region", "us-east-1")
        .with_option("allow_http", "true")
        .with_option("max_retries", retries.to_string())
        .with_option("backoff_initial", "10ms")
        .with_option("backoff_max", "100ms");
    config
}

fn session(config: &Config) -> Session {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config.clone();
    config.local = TierConfig::new(dir.keep().display().to_string());
    let session = Engine::new(&config).unwrap().session();
    session.register(series(Arc::default())).unwrap();
    session
}

fn endpoint() -> String {
    std::env::var("NUTHATCH_TEST_S3_ENDPOINT").expect("run by bash scripts/test")
}

/// The data object of `series(station => ...)` under `folder`, as
/// requests name it (its metadata is under `folder/nuthatch_metadata.nut`).
fn data(folder: &str) -> String {
    format!("{folder}/series/1.0_")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an S3 server: run bash scripts/test"]
async fn transient_s3_faults_are_retried_and_reads_and_writes_succeed() {
    let proxy = FaultProxy::start(&endpoint()).await;
    let folder = format!("transient-{}", std::process::id());
    let config = through(&proxy, &folder, 3);
    let sql = "SELECT count(*) FROM series('2020-01-01', '2020-01-02', station => 'retried')";
    // The data's upload answers 503 twice and the metadata's once resets.
    proxy.inject("PUT", &data(&folder), 0, 2, Fault::Unavailable);
    proxy.inject("PUT", "parquet.parquet", 0, 1, Fault::Reset);
    let writer = session(&config);
    assert_eq!(count_in(&writer, sql).await.unwrap(), 48);
    assert_outcome(&writer.take_reports()[0], Outcome::Computed);
    assert_eq!(proxy.injected(), 3, "every fault was met and retried");

    // Reading: the data's first two reads reset.
    proxy.clear();
    proxy.inject("GET", &data(&folder), 0, 2, Fault::Reset);
    let reader = session(&config);
    assert_eq!(count_in(&reader, sql).await.unwrap(), 48);
    assert_outcome(&reader.take_reports()[0], Outcome::Hit);
    assert_eq!(proxy.injected(), 5);

    // A recompute uploads its data as a multipart upload and completes it
    // last: a 503 on the completion is retried too.
    proxy.clear();
    proxy.inject("POST", "uploadId=", 0, 1, Fault::Unavailable);
    let again = sql.replace(
        "'retried')",
        "'retried', recompute => true, cache_mode => 'overwrite')",
    );
    assert_eq!(count_in(&writer, &again).await.unwrap(), 48);
    assert_outcome(&writer.take_reports().pop().unwrap(), Outcome::Computed);
    assert_eq!(proxy.injected(), 6, "the completion met its fault");
    assert_eq!(count_in(&session(&config), sql).await.unwrap(), 48);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an S3 server: run bash scripts/test"]
async fn lasting_s3_faults_fail_naming_the_tier_and_leave_nothing_visible() {
    let proxy = FaultProxy::start(&endpoint()).await;
    let folder = format!("lasting-{}", std::process::id());
    let config = through(&proxy, &folder, 1);
    let sql = "SELECT count(*) FROM series('2020-01-01', '2020-01-02', station => 'lasting')";
    proxy.inject("PUT", &data(&folder), 0, usize::MAX, Fault::Unavailable);
    let writer = session(&config);
    let error = count_in(&writer, sql).await.unwrap_err().to_string();
    assert!(
        error.contains(&format!("root tier at s3://nuthatch-test/{folder}")),
        "{error}"
    );
    assert!(!error.contains(SECRET), "{error}");
    // Nothing is visible: a strict read finds no entry.
    proxy.clear();
    let strict = sql.replace("'lasting')", "'lasting', cache_mode => 'read_only_strict')");
    let error = count_in(&session(&config), &strict)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("no cache entry"), "{error}");
    // The fault gone, the next call computes and stores.
    assert_eq!(count_in(&writer, sql).await.unwrap(), 48);
    assert_outcome(&writer.take_reports().pop().unwrap(), Outcome::Computed);

    // A store that stops answering reads fails the read, naming the tier;
    // a store that answers too slowly times out.
    proxy.inject("GET", &data(&folder), 0, usize::MAX, Fault::Reset);
    let error = count_in(&session(&config), sql)
        .await
        .unwrap_err()
        .to_string();
    let named = format!(
        "reading entry series: series/scale_1.0/station_lasting from the root tier at s3://nuthatch-test/{folder} failed"
    );
    assert!(error.contains(&named), "{error}");
    assert!(error.contains("max_retries"), "{error}");
    assert!(!error.contains(SECRET), "{error}");
    proxy.clear();
    let mut impatient = config.clone();
    impatient.root = impatient.root.with_option("timeout", "1s");
    proxy.inject(
        "GET",
        &data(&folder),
        0,
        usize::MAX,
        Fault::Delay(Duration::from_secs(5)),
    );
    let started = std::time::Instant::now();
    let error = count_in(&session(&impatient), sql)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains(&named), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    proxy.clear();
    assert_eq!(count_in(&session(&config), sql).await.unwrap(), 48);
}

/// A Zarr replacement whose copy into place fails for good, the store in
/// place half copied: the call fails, and the entry reads as the new
/// version from its staged copy, whole, until the next replacement
/// succeeds and removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an S3 server: run bash scripts/test"]
async fn a_zarr_replacement_failing_mid_copy_leaves_a_whole_entry() {
    let proxy = FaultProxy::start(&endpoint()).await;
    let folder = format!("midcopy-{}", std::process::id());
    let config = through(&proxy, &folder, 1);
    let writer = session(&config);
    let define = "CREATE CACHED FUNCTION grid_copy(tag VARCHAR, v BIGINT) \
                  WITH (cache_args = (tag), backend = 'zarr', dimensions = (id)) \
                  AS SELECT value AS id, $v AS v FROM generate_series(1, 300000)";
    writer.sql(define).await.unwrap();
    let write = |v: u64| {
        format!(
            "SELECT count(*) FROM grid_copy('t', {v}, recompute => true, cache_mode => 'overwrite')"
        )
    };
    let read = "SELECT count(*), min(v), max(v) FROM grid_copy('t', 0, \
                cache_mode => 'read_only_strict')";
    let versions = |batches: Vec<arrow::array::RecordBatch>| -> Vec<String> {
        let rows = arrow::util::pretty::pretty_format_batches(&batches).unwrap();
        let line = rows.to_string().lines().nth(3).unwrap().to_string();
        line.split('|')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    };
    count_in(&writer, &write(1)).await.unwrap();
    // The copies into place are puts to the store's own path; the first
    // two go through.
    proxy.inject(
        "PUT",
        "grid_copy/t.zarr/",
        2,
        usize::MAX,
        Fault::Unavailable,
    );
    let error = count_in(&writer, &write(2)).await.unwrap_err().to_string();
    assert!(error.contains("root tier"), "{error}");
    proxy.clear();
    let reader = session(&config);
    reader.sql(define).await.unwrap();
    let held = reader.sql(read).await.unwrap().collect().await.unwrap();
    assert_eq!(versions(held), ["300000", "2", "2"]);
    count_in(&writer, &write(3)).await.unwrap();
    let held = reader.sql(read).await.unwrap().collect().await.unwrap();
    assert_eq!(versions(held), ["300000", "3", "3"]);
}

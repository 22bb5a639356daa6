//! Flight SQL delivery benchmark, reported as ratios measured in one run.
//!
//! A cached call served by `nuthatch serve`'s Flight SQL service to the real
//! Python ADBC client (`adbc_driver_flightsql`, reading Arrow batches into
//! pyarrow), against the same query collected in-process from a session of
//! the same engine: rows per second (target: the client gets at least 0.6
//! of the in-process rate) and the time to the first batch.
//!
//! The client comes from the test command's venv (`~/.cache/nuthatch-venv`,
//! made by `bash scripts/test`) or `$NUTHATCH_TEST_PYTHON`.
//!
//! Two more rows place the gap: the same stream encoded as Flight messages
//! in-process but not sent (the server's share), and pyarrow's C++ Flight
//! client (the transport without the ADBC driver). Each client's run is
//! also reported as CPU time, the client's and the server's: the two share
//! the machine's cores.
//!
//! Run with `cargo bench --features flight --bench flight`.

#[allow(dead_code)] // sizes and peers: the other benches
mod common;

use std::time::{Duration, Instant};

use datafusion::error::{DataFusionError, Result};
use datafusion::physical_plan::execute_stream;
use futures::StreamExt;
use nuthatch::crates::flight::{self, ServeOptions};
use nuthatch::{Config, Engine, TierConfig, demo};

const RUNS: usize = 7;

/// The client's side: runs `sql` RUNS times after one warm-up, timing the
/// first batch and the whole result; prints medians as JSON.
const CLIENT: &str = r#"
import json, sys, time
uri, sql, runs, driver = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if driver == "adbc":
    import adbc_driver_flightsql.dbapi as flight_sql
    cur = flight_sql.connect(uri, autocommit=True).cursor()
    def batches():
        cur.execute(sql)
        reader = cur.fetch_record_batch()
        yield reader.read_next_batch()
        yield from reader
else:
    # pyarrow's C++ Flight client, speaking Flight SQL by hand: the
    # statement is a protobuf Any of CommandStatementQuery.
    import pyarrow.flight as fl
    def field(number, data):
        length, size = b"", len(data)
        while size > 0x7F:
            length += bytes([size & 0x7F | 0x80])
            size >>= 7
        return bytes([number << 3 | 2]) + length + bytes([size]) + data
    url = b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"
    command = field(1, url) + field(2, field(1, sql.encode()))
    client = fl.connect(uri)
    def batches():
        info = client.get_flight_info(fl.FlightDescriptor.for_command(command))
        for chunk in client.do_get(info.endpoints[0].ticket):
            yield chunk.data
first, total, cpu = [], [], []
for _ in range(runs + 1):
    started, used = time.perf_counter(), time.process_time()
    rows = None
    for batch in batches():
        if rows is None:
            rows = 0
            first.append(time.perf_counter() - started)
        rows += batch.num_rows
    total.append(time.perf_counter() - started)
    cpu.append(time.process_time() - used)
median = lambda xs: sorted(xs[1:])[runs // 2]
print(json.dumps({"first": median(first), "total": median(total), "cpu": median(cpu), "rows": rows}))
"#;

struct Timing {
    first: Duration,
    total: Duration,
    rows: usize,
}

/// What a client's run cost in CPU: the client process's (every thread of
/// it, the driver's included), and this process's, the server's, averaged
/// over the client's runs and its warm-up.
struct Cpu {
    client: Duration,
    server: Duration,
}

/// In-process: the session executes the plan and collects every batch.
async fn in_process(session: &nuthatch::Session, sql: &str) -> Result<Timing> {
    let mut firsts = Vec::new();
    let mut totals = Vec::new();
    let mut rows = 0;
    for run in 0..=RUNS {
        let started = Instant::now();
        let frame = session.sql(sql).await?;
        let task = frame.task_ctx();
        let mut stream = execute_stream(frame.create_physical_plan().await?, task.into())?;
        let mut batches = Vec::new();
        let mut first = None;
        while let Some(batch) = stream.next().await {
            first.get_or_insert_with(|| started.elapsed());
            batches.push(batch?);
        }
        rows = batches.iter().map(|b| b.num_rows()).sum();
        if run > 0 {
            firsts.push(first.unwrap_or_default());
            totals.push(started.elapsed());
        }
    }
    firsts.sort();
    totals.sort();
    Ok(Timing {
        first: firsts[RUNS / 2],
        total: totals[RUNS / 2],
        rows,
    })
}

/// The server's share: the stream encoded as Flight messages, not sent.
async fn encode_only(session: &nuthatch::Session, sql: &str) -> Result<Duration> {
    use nuthatch::crates::flight::arrow_flight::encode::FlightDataEncoderBuilder;
    let mut totals = Vec::new();
    for run in 0..=RUNS {
        let started = Instant::now();
        let frame = session.sql(sql).await?;
        let stream = frame.execute_stream().await?;
        let schema = stream.schema();
        let stream = stream.map(|b| {
            b.map_err(|e| {
                nuthatch::crates::flight::arrow_flight::error::FlightError::ExternalError(Box::new(
                    e,
                ))
            })
        });
        let mut encoded = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(stream);
        let mut bytes = 0;
        while let Some(message) = encoded.next().await {
            bytes += message
                .map_err(|e| DataFusionError::External(Box::new(e)))?
                .data_body
                .len();
        }
        assert!(bytes > 0);
        if run > 0 {
            totals.push(started.elapsed());
        }
    }
    totals.sort();
    Ok(totals[RUNS / 2])
}

/// Over the wire: the Python client in its own process.
fn over_the_wire(python: &str, uri: &str, sql: &str, driver: &str) -> Result<(Timing, Cpu)> {
    let used = common::process_cpu();
    let output = std::process::Command::new(python)
        .args(["-c", CLIENT, uri, sql, &RUNS.to_string(), driver])
        .output()?;
    let server = (common::process_cpu() - used) / (RUNS as u32 + 1);
    if !output.status.success() {
        return Err(DataFusionError::Execution(format!(
            "the ADBC client failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| -> f64 {
        let at = text
            .find(&format!("\"{name}\": "))
            .expect("the client's JSON")
            + name.len()
            + 4;
        let end = text[at..].find([',', '}']).expect("the client's JSON");
        text[at..at + end].trim().parse().expect("a number")
    };
    let timing = Timing {
        first: Duration::from_secs_f64(field("first")),
        total: Duration::from_secs_f64(field("total")),
        rows: field("rows") as usize,
    };
    let client = Duration::from_secs_f64(field("cpu"));
    Ok((timing, Cpu { client, server }))
}

fn python() -> Result<String> {
    let python = std::env::var("NUTHATCH_TEST_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/nuthatch-venv/bin/python")
    });
    if std::path::Path::new(&python).exists() {
        Ok(python)
    } else {
        Err(DataFusionError::Configuration(format!(
            "no Python ADBC client at {python}: run `bash scripts/test` once (it makes the \
             venv), or set NUTHATCH_TEST_PYTHON to a Python with adbc-driver-flightsql"
        )))
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let python = python()?;
    let dir = tempfile::tempdir()?;
    let mut config = Config::with_root(dir.path().display().to_string());
    config.local = TierConfig::new(dir.path().join("local").display().to_string());
    let engine = Engine::new(&config)?;
    for function in demo::readme_functions()? {
        engine.register(function)?;
    }
    let session = engine.session();
    // Fill the cache once: two years of daily means.
    let full = "SELECT * FROM agg_and_clip(NULL, NULL, agg_days => 1)";
    session.sql(full).await?.collect().await?;

    let listener = flight::bind("127.0.0.1:0".parse().expect("an address")).await?;
    let uri = format!("grpc://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(flight::serve(
        engine.clone(),
        listener,
        ServeOptions::default(),
        async {
            let _ = stopped.await;
        },
    ));

    let month = "SELECT * FROM agg_and_clip('2013-03-01', '2013-03-31', agg_days => 1)";
    println!("cached calls over Flight SQL against in-process (medians of {RUNS})");
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    for (name, sql) in [("two years", full), ("one month", month)] {
        let local = in_process(&session, sql).await?;
        let encoded = encode_only(&session, sql).await?;
        let client = |driver: &'static str| {
            let (python, uri, sql) = (python.clone(), uri.clone(), sql.to_string());
            tokio::task::spawn_blocking(move || over_the_wire(&python, &uri, &sql, driver))
        };
        let join = |e: tokio::task::JoinError| DataFusionError::External(Box::new(e));
        let (adbc, adbc_cpu) = client("adbc").await.map_err(join)??;
        let (cpp, cpp_cpu) = client("pyarrow").await.map_err(join)??;
        assert_eq!(
            (local.rows, local.rows),
            (adbc.rows, cpp.rows),
            "all read it all"
        );
        println!("{name}: {} rows", local.rows);
        println!(
            "  {:<32} {:>10} {:>12} {:>13}",
            "", "all rows", "ratio", "first batch"
        );
        let row = |what: &str, total: Duration, first: Option<Duration>| {
            let ratio = local.total.as_secs_f64() / total.as_secs_f64();
            let first = first.map_or("".to_string(), ms);
            println!("  {what:<32} {:>10} {ratio:>12.2} {first:>13}", ms(total));
        };
        row("in-process (baseline)", local.total, Some(local.first));
        row("encoded in-process, not sent", encoded, None);
        row(
            "Python ADBC client (target 0.6)",
            adbc.total,
            Some(adbc.first),
        );
        row("pyarrow.flight C++ client", cpp.total, Some(cpp.first));
        for (what, cpu) in [("ADBC", adbc_cpu), ("pyarrow.flight", cpp_cpu)] {
            println!(
                "  CPU a run, {what}: client {}, server {}",
                ms(cpu.client),
                ms(cpu.server)
            );
        }
    }
    println!("(ratio: rows per second over the in-process rate)");
    let _ = stop.send(());
    server
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))??;
    Ok(())
}

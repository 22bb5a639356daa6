//! One compute per entry across sessions and processes: a second process
//! waits for the first's compute and reads it, a killed holder's lease is
//! taken over, `lease_wait` ends a wait as the session says, and calls
//! that would wait for each other in a cycle fail one of them.

use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{DataType, Field, Schema};
use nuthatch::{CachedFunction, Outcome, ParamType};

use crate::bodies::slow;
use crate::coverage::rows;
use crate::support::{Fixture, assert_outcome, example_binary};

/// The child process calling `slow` over `window` on `f`'s root; with
/// `endless` its body streams until it is killed.
fn child(f: &Fixture, window: &str, endless: bool) -> std::process::Child {
    let mode = if endless {
        "extend-endlessly"
    } else {
        "extend"
    };
    std::process::Command::new(example_binary("test_child"))
        .args([mode, &f.root().display().to_string(), window])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits for a lease file of `function` to appear under the root.
fn wait_for_lease(f: &Fixture, function: &str) {
    let prefix = format!("nuthatch_metadata.nut/{function}/");
    for _ in 0..600 {
        let files = f.files();
        if files
            .iter()
            .any(|file| file.starts_with(&prefix) && file.ends_with(".lease"))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no lease of {function} appeared: {:?}", f.files());
}

/// A child that computes `slow` and streams until killed, holding the
/// entry's lease.
fn holding_child(f: &Fixture, window: &str) -> std::process::Child {
    let mut process = child(f, window, true);
    let mut out = std::io::BufReader::new(process.stdout.take().unwrap()).lines();
    for line in out.by_ref() {
        if line.unwrap() == "streaming" {
            break;
        }
    }
    // Keep reading: a closed pipe would end the child at its next line.
    std::thread::spawn(move || out.for_each(drop));
    process
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_waits_for_the_first_compute_and_reads_it() {
    let f = Fixture::new();
    f.nuthatch.register(slow(2500, false)).unwrap();
    let window = "'2020-03-01', '2020-03-02'";
    let sql = format!("SELECT count(*) FROM slow({window})");
    let session = f.engine.session();
    session.register(slow(2500, false)).unwrap();
    let first = tokio::spawn(async move {
        let n = session.sql(&sql).await.unwrap().collect().await.unwrap();
        (n, session.take_reports())
    });
    wait_for_lease(&f, "slow");
    let second = child(&f, window, false);
    let output = second.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "{said}");
    let (_, reports) = first.await.unwrap();
    assert_outcome(&reports[0], Outcome::Computed);
    // The child computed nothing: it waited for this process and read.
    let holder = format!(":{}", std::process::id());
    assert!(said.contains("slow: hit root parquet"), "{said}");
    assert!(said.contains("waited="), "{said}");
    assert!(said.contains(&holder), "{said}");
    // No lease is left behind.
    assert!(
        !f.files().iter().any(|file| file.ends_with(".lease")),
        "{:?}",
        f.files()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_holder_s_lease_is_taken_over_and_waits_show_in_calls() {
    let f = Fixture::new();
    f.nuthatch.register(slow(0, false)).unwrap();
    let window = "'2020-04-01', '2020-04-03'";
    let mut holder = holding_child(&f, window);
    let pid = holder.id();
    holder.kill().unwrap();
    holder.wait().unwrap();
    let n = f.int(&format!("SELECT count(*) FROM slow({window})")).await;
    assert_eq!(n, 72);
    let report = f.report();
    assert_outcome(&report, Outcome::Computed);
    let waited = report.waited.expect("the call met the dead holder's lease");
    assert!(waited.holder.ends_with(&format!(":{pid}")), "{waited:?}");
    let seen = rows(
        &f,
        "SELECT waited_for, waited_ms IS NOT NULL FROM nuthatch.calls WHERE function = 'slow'",
    )
    .await;
    assert_eq!(seen, [[waited.holder.clone(), "true".to_string()]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_wait_fails_naming_the_holder_or_computes_anyway() {
    let f = Fixture::new();
    f.nuthatch.register(slow(0, false)).unwrap();
    let window = "'2020-05-01', '2020-05-01'";
    let mut holder = holding_child(&f, window);
    f.query("SET nuthatch.lease_wait = '1s'").await.unwrap();
    let sql = format!("SELECT count(*) FROM slow({window})");
    let error = f.error(&sql).await;
    let pid = holder.id();
    assert!(
        error.contains(&format!(":{pid} on the root tier")),
        "{error}"
    );
    assert!(error.contains("SET nuthatch.lease_wait = '2h'"), "{error}");
    assert!(
        error.contains("nuthatch.on_lease_wait = 'compute'"),
        "{error}"
    );
    let bad = f.error("SET nuthatch.lease_wait = 'soon'").await;
    assert!(bad.contains("such as 500ms, 30s"), "{bad}");

    f.query("SET nuthatch.on_lease_wait = 'compute'")
        .await
        .unwrap();
    assert_eq!(f.int(&sql).await, 24);
    assert_outcome(&f.report(), Outcome::Computed);
    holder.kill().unwrap();
    holder.wait().unwrap();
}

/// `name(n, depth)` keyed by `n` alone: its body waits a little, then
/// calls `other(n, depth - 1)` while `depth` is above zero. Called
/// one after the other, `ping(1, 1)` and `pong(1, 1)` are fine; at once,
/// each body waits for the entry the other leads.
fn ping_pong(name: &'static str, other: &'static str) -> CachedFunction {
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
    CachedFunction::builder(name)
        .param("n", ParamType::Int)
        .param("depth", ParamType::Int)
        .cache_args(["n"])
        .returns(schema)
        .compute(move |ctx, args| async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let n = args.i64("n")?;
            let depth = args.i64("depth")?;
            match depth {
                0 => ctx.sql(&format!("SELECT CAST({n} AS BIGINT) AS n")).await,
                _ => {
                    let sql = format!("SELECT n FROM {other}({n}, {})", depth - 1);
                    ctx.sql(&sql).await
                }
            }
        })
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_waiting_for_each_other_fail_one_and_name_the_cycle() {
    let f = Fixture::new();
    let first = f.engine.session();
    let second = f.engine.session();
    for session in [&first, &second, &f.nuthatch] {
        session.register(ping_pong("ping", "pong")).unwrap();
        session.register(ping_pong("pong", "ping")).unwrap();
    }
    let run = |session: nuthatch::Session, sql: &'static str| async move {
        let result = match session.sql(sql).await {
            Ok(frame) => frame.collect().await.map(|_| ()),
            Err(e) => Err(e),
        };
        result.map_err(|e| e.to_string())
    };
    let (a, b) = tokio::join!(
        tokio::spawn(run(first, "SELECT * FROM ping(1, 1)")),
        tokio::spawn(run(second, "SELECT * FROM pong(1, 1)")),
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    let failed: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert_eq!(failed.len(), 1, "{outcomes:?}");
    let error = failed[0];
    assert!(
        error.contains("calls wait for each other in a cycle"),
        "{error}"
    );
    assert!(
        error.contains("ping: ping/n_1") && error.contains("pong: pong/n_1"),
        "{error}"
    );
    // The call that went on computed the other entry itself.
    assert_eq!(f.int("SELECT count(*) FROM ping(1, 0)").await, 1);
    assert_eq!(f.int("SELECT count(*) FROM pong(1, 0)").await, 1);
}

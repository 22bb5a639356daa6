//! Growing entries stored as parts: a part per range added, parts skipped
//! outside a window, compaction, and what other processes do meanwhile
//! (two extending at once, one killed while extending).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use nuthatch::Outcome;

use crate::bodies::slow;
use crate::coverage::{
    agrees_with_series, coverage, days_ago, define_readings, forecast, report_of, rows,
};
use crate::support::{Fixture, assert_outcome, example_binary};

/// The files of the entry `readings/...` under the root: its parts.
fn data_files(f: &Fixture, function: &str) -> Vec<String> {
    f.files()
        .into_iter()
        .filter(|file| file.starts_with(&format!("{function}/")) && file.ends_with(".parquet"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_grows_a_part_at_a_time_and_compacts() {
    let f = Fixture::new();
    f.query(&define_readings("parquet")).await.unwrap();
    f.int("SELECT count(*) FROM readings('2020-01-10', '2020-01-20')")
        .await;
    f.int("SELECT count(*) FROM readings('2020-02-01', '2020-02-10')")
        .await;
    f.int("SELECT count(*) FROM readings('2020-01-21', '2020-01-31')")
        .await;
    f.reports();
    assert_eq!(parts_of(&f, "readings").await, "3");
    assert_eq!(data_files(&f, "readings").len(), 3, "{:?}", f.files());

    // A window inside one part opens that part alone.
    f.int("SELECT count(*) FROM readings('2020-02-02', '2020-02-03')")
        .await;
    let report = report_of(&f, "readings");
    assert_outcome(&report, Outcome::Hit);
    assert_eq!(report.row_groups_read, Some((1, 1)), "{report}");
    let all = agrees_with_series(&f, "readings(NULL, NULL)", "2020-01-10", "2020-02-11").await;
    assert_eq!(all, 32 * 24);

    // Compacted on demand: one part, the same rows and coverage.
    let n = f
        .int("SELECT count(*) FROM readings(NULL, NULL, compact => true)")
        .await;
    assert_eq!(n, 32 * 24);
    assert_outcome(&report_of(&f, "readings"), Outcome::Hit);
    assert_eq!(parts_of(&f, "readings").await, "1");
    assert_eq!(data_files(&f, "readings").len(), 1, "{:?}", f.files());
    assert_eq!(coverage(&f, "readings").await, "2020-01-10 .. 2020-02-11");
    agrees_with_series(&f, "readings(NULL, NULL)", "2020-01-10", "2020-02-11").await;
    let error = f
        .error("SELECT * FROM readings(NULL, NULL, compact => true, cache_mode => 'read_only')")
        .await;
    assert!(
        error.contains("compact => true rewrites the entry's parts on root"),
        "{error}"
    );

    // Hour after hour: compacted by itself once it has too many parts.
    let mut most = 0;
    for hour in 0..60 {
        let at = chrono::NaiveDate::from_ymd_opt(2020, 2, 11)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            + chrono::Duration::hours(hour);
        let at = at.format("%Y-%m-%dT%H:%M:%S");
        let n = f
            .int(&format!("SELECT count(*) FROM readings('{at}', '{at}')"))
            .await;
        assert_eq!(n, 1);
        let parts: usize = parts_of(&f, "readings").await.parse().unwrap();
        assert!(parts <= 48, "{parts} parts after {at}");
        most = most.max(parts);
    }
    assert_eq!(most, 48);
    f.reports();
    let n = f
        .int("SELECT count(*) FROM readings('2020-02-11T00:00:00', '2020-02-13T11:00:00')")
        .await;
    assert_eq!(n, 60);
}

/// How many parts `nuthatch.caches` says entry `function` on root has.
async fn parts_of(f: &Fixture, function: &str) -> String {
    let sql = format!(
        "SELECT parts FROM nuthatch.caches WHERE function = '{function}' AND tier = 'root'"
    );
    rows(f, &sql).await[0][0].clone()
}

/// Starts the child process calling `slow` over `window` on `f`'s root
/// (endlessly: its body streams until the process is killed).
pub(crate) fn child(f: &Fixture, window: &str, endless: bool) -> std::process::Child {
    let mode = if endless {
        "extend-endlessly"
    } else {
        "extend"
    };
    std::process::Command::new(example_binary("test_child"))
        .arg(mode)
        .arg(f.root())
        .arg(window)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_extending_at_once_add_each_row_once() {
    let f = Fixture::new();
    f.nuthatch.register(slow(0, false)).unwrap();
    f.int("SELECT count(*) FROM slow('2020-01-10', '2020-01-10')")
        .await;
    f.reports();
    // Both compute Jan 11 and 12; whichever commits second looks again.
    let first = child(&f, "'2020-01-01', '2020-01-12'", false);
    let second = child(&f, "'2020-01-08', '2020-01-20'", false);
    for process in [first, second] {
        let output = process.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(output.status.success(), "{said}");
        assert!(said.contains("slow: extended root parquet"), "{said}");
    }
    let got = rows(
        &f,
        "SELECT count(*), count(DISTINCT time) FROM slow('2020-01-01', '2020-01-20')",
    )
    .await;
    assert_eq!(got, [["480", "480"]]);
    assert_outcome(&f.report(), Outcome::Hit);
    assert_eq!(coverage(&f, "slow").await, "2020-01-01 .. 2020-01-21");
    let listed: usize = parts_of(&f, "slow").await.parse().unwrap();
    assert_eq!(data_files(&f, "slow").len(), listed, "{:?}", f.files());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_while_extending_leaves_the_entry_as_it_was() {
    use std::io::BufRead;
    let f = Fixture::new();
    f.nuthatch.register(slow(0, false)).unwrap();
    f.int("SELECT count(*) FROM slow('2020-01-10', '2020-01-10')")
        .await;
    f.reports();
    let mut process = child(&f, "'2020-01-05', '2020-01-20'", true);
    let out = std::io::BufReader::new(process.stdout.take().unwrap());
    for line in out.lines() {
        if line.unwrap() == "streaming" {
            break;
        }
    }
    process.kill().unwrap();
    process.wait().unwrap();

    assert_eq!(coverage(&f, "slow").await, "2020-01-10 .. 2020-01-11");
    let n = f
        .int("SELECT count(*) FROM slow('2020-01-10', '2020-01-10')")
        .await;
    assert_outcome(&f.report(), Outcome::Hit);
    assert_eq!(n, 24);
    // A part a killed write left is never read, and goes at the next commit.
    let kept = data_files(&f, "slow");
    let orphan = f.root().join(kept[0].replace("part-", "part-0-orphan-"));
    std::fs::copy(f.root().join(&kept[0]), &orphan).unwrap();
    // So is a part a killed upload left where parts are written before
    // they move in, once nothing has written to it for a while; one being
    // written now stays.
    let (entry, part) = kept[0].rsplit_once('/').unwrap();
    let staging = f.root().join(format!("{entry}.staging"));
    std::fs::create_dir_all(&staging).unwrap();
    let stale = staging.join(format!("{part}#7"));
    let fresh = staging.join(format!("{part}#8"));
    for staged in [&stale, &fresh] {
        std::fs::write(staged, b"PAR1 half a part").unwrap();
    }
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    assert_eq!(
        f.int("SELECT count(*) FROM slow('2020-01-10', '2020-01-10')")
            .await,
        24
    );
    f.reports();
    let got = rows(
        &f,
        "SELECT count(*), count(DISTINCT time) FROM slow('2020-01-05', '2020-01-20')",
    )
    .await;
    assert_eq!(got, [["384", "384"]]);
    assert!(!orphan.exists(), "{:?}", f.files());
    assert!(!stale.exists() && fresh.exists(), "{:?}", f.files());
    let listed: usize = parts_of(&f, "slow").await.parse().unwrap();
    assert_eq!(data_files(&f, "slow").len(), listed, "{:?}", f.files());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recomputing_recent_time_rewrites_only_the_parts_that_hold_it() {
    let f = Fixture::new();
    let runs = Arc::new(AtomicUsize::new(0));
    f.nuthatch.register(forecast(Arc::clone(&runs))).unwrap();
    let day = days_ago;
    f.int(&format!(
        "SELECT count(*) FROM forecast('{}', '{}')",
        day(10),
        day(6)
    ))
    .await;
    f.int(&format!(
        "SELECT count(*) FROM forecast('{}', '{}')",
        day(5),
        day(1)
    ))
    .await;
    f.reports();
    let before = data_files(&f, "forecast");
    assert_eq!(before.len(), 2, "{before:?}");
    f.int(&format!(
        "SELECT count(*) FROM forecast('{}', '{}')",
        day(2),
        day(1)
    ))
    .await;
    assert_outcome(&f.report(), Outcome::Extended);
    let after = data_files(&f, "forecast");
    assert_eq!(after.len(), 2, "{after:?}");
    let kept: Vec<&String> = after.iter().filter(|file| before.contains(file)).collect();
    // The settled days' part stays as it was.
    assert_eq!(kept.len(), 1, "one part kept: {before:?} -> {after:?}");
    let values = rows(
        &f,
        &format!(
            "SELECT count(*), count(DISTINCT time), min(value), max(value) FROM forecast('{}', '{}', cache_mode => 'read_only_strict')",
            day(10),
            day(6)
        ),
    )
    .await;
    assert_eq!(values, [["120", "120", "1.0", "1.0"]]);
    assert_eq!(parts_of(&f, "forecast").await, "2");
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_of_other_columns_are_never_added_to_an_entry() {
    let f = Fixture::new();
    f.query(&define_readings("parquet")).await.unwrap();
    f.int("SELECT count(*) FROM readings('2020-01-10', '2020-01-20')")
        .await;
    f.reports();
    // Redefined with one more column and the same version.
    f.query(
        "CREATE OR REPLACE CACHED FUNCTION readings(start_time TIMESTAMP, end_time TIMESTAMP, \
                                                   station VARCHAR DEFAULT 'north') \
         WITH (cache_args = (station), timeseries = 'time') \
         AS SELECT time, station, value, value * 2 AS doubled \
            FROM series(NULL, NULL, station => $station) \
            WHERE time BETWEEN $start_time AND $end_time",
    )
    .await
    .unwrap();
    let error = f
        .error("SELECT count(*) FROM readings('2020-01-05', '2020-01-25')")
        .await;
    assert!(
        error.contains("column 'doubled' differs") && error.contains("nothing was computed"),
        "{error}"
    );
    assert_eq!(coverage(&f, "readings").await, "2020-01-10 .. 2020-01-21");
}

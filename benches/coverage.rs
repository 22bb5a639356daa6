//! Growing timeseries entries: what adding a day costs, and what reading a
//! grown entry costs, as ratios measured side by side in one run. Run with
//! `bash scripts/peers cargo bench --bench coverage` (the Python column
//! needs the peers venv; without it the bench says so and goes on).
//!
//! `daily_air(start_time, end_time)` reads its window from the README grid
//! (`my_first_cache()`, cached once): 1,325 rows per six-hourly step.
//!
//! 1. **Daily append.** 2013 is computed, then 30 calls each ask for the
//!    next day of 2014, which the entry lacks. Each call's time against
//!    computing that day alone: the body's query over the cached grid,
//!    stored nowhere (target at most 1.3), and the day as an entry of its
//!    own, computed and stored (a first call for that day alone);
//!    and against what Python nuthatch must do to add a day: recompute the
//!    whole range with `recompute=True`, timed in the real package (and
//!    here, for reference).
//! 2. **Window hits on a grown entry.** An entry grown day by day over 365
//!    calls against the same entry computed in one call: a one-month window
//!    read (target at most 1.5), then the same after `compact => true`
//!    (target at most 1.05).

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use datafusion::error::Result;
use nuthatch::{Config, Engine, Outcome, Session, demo};

const DAILY_AIR: &str = "CREATE CACHED FUNCTION daily_air(start_time TIMESTAMP, end_time TIMESTAMP) \
     WITH (timeseries = 'time', coverage = 'window') \
     AS SELECT time, lat, lon, air FROM my_first_cache() \
        WHERE time BETWEEN $start_time AND $end_time";

const DAYS_ADDED: i64 = 30;
const MONTH: &str = "'2013-06-01', '2013-06-30'";
const READS: usize = 9;

/// Runs `sql` to its end; its time, and the outcome of the last call of
/// `daily_air` in it.
async fn timed(session: &Session, sql: &str) -> Result<(Duration, Option<Outcome>)> {
    let started = Instant::now();
    session.sql(sql).await?.collect().await?;
    let took = started.elapsed();
    let outcome = session
        .take_reports()
        .into_iter()
        .rev()
        .find(|r| r.function == "daily_air")
        .map(|r| r.outcome);
    Ok((took, outcome))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn day(offset: i64) -> String {
    let first = NaiveDate::from_ymd_opt(2013, 1, 1).unwrap();
    (first + chrono::Duration::days(offset))
        .format("%Y-%m-%d")
        .to_string()
}

/// Step 1: medians of each day added, that day's query alone, that day
/// as an entry of its own, the range recomputed, and the day read back.
async fn daily_append(session: &Session) -> Result<[Duration; 5]> {
    let (_, outcome) = timed(
        session,
        "SELECT count(*) FROM daily_air('2013-01-01', '2013-12-31')",
    )
    .await?;
    assert_eq!(outcome, Some(Outcome::Computed));
    let (mut added, mut alone, mut recomputed) = (Vec::new(), Vec::new(), Vec::new());
    let (mut read, mut missed) = (Vec::new(), Vec::new());
    for n in 0..DAYS_ADDED {
        let new_day = day(365 + n);
        // The call asks for the new day only, so it serves what the compute
        // alone serves: the difference is storing the day, and the lookup.
        let (took, outcome) = timed(
            session,
            &format!("SELECT count(*) FROM daily_air('{new_day}', '{new_day}')"),
        )
        .await?;
        assert_eq!(outcome, Some(Outcome::Extended), "{new_day}");
        added.push(took);
        let (took, outcome) = timed(
            session,
            &format!("SELECT count(*) FROM daily_air('{new_day}', '{new_day}')"),
        )
        .await?;
        assert_eq!(outcome, Some(Outcome::Hit), "{new_day}");
        read.push(took);
        // The body alone, over the cached grid (`cache_mode => 'off'`
        // would pass down to the grid and compute it too).
        let sql = format!(
            "SELECT count(*) FROM (SELECT time, lat, lon, air FROM my_first_cache() \
             WHERE time BETWEEN TIMESTAMP '{new_day}' AND TIMESTAMP '{new_day}T23:59:59.999999')"
        );
        alone.push(timed(session, &sql).await?.0);
        // The day as an entry of its own: computed and stored, as a first
        // call for that day alone would be.
        let sql = format!(
            "SELECT count(*) FROM daily_air('{new_day}', '{new_day}', namespace => 'day{n}')"
        );
        let (took, outcome) = timed(session, &sql).await?;
        assert_eq!(outcome, Some(Outcome::Computed), "{new_day}");
        missed.push(took);
        let sql = format!(
            "SELECT count(*) FROM daily_air('2013-01-01', '{new_day}', recompute => true, \
             cache_mode => 'overwrite', namespace => 'recomputed')"
        );
        recomputed.push(timed(session, &sql).await?.0);
    }
    Ok([added, alone, missed, recomputed, read].map(median))
}

/// Step 2: month reads of (the entry computed once, grown, compacted), and
/// how many parts the grown one had.
async fn grown_reads(session: &Session) -> Result<(Duration, Duration, Duration, String)> {
    let once = "namespace => 'once'";
    let grown = "namespace => 'grown'";
    timed(
        session,
        &format!("SELECT count(*) FROM daily_air('2013-01-01', '2013-12-31', {once})"),
    )
    .await?;
    for n in 0..365 {
        let sql = format!(
            "SELECT count(*) FROM daily_air('2013-01-01', '{}', {grown})",
            day(n)
        );
        timed(session, &sql).await?;
    }
    let parts = session
        .sql("SELECT parts FROM nuthatch.caches WHERE function = 'daily_air' AND namespace = 'grown' AND tier = 'root'")
        .await?
        .collect()
        .await?;
    let parts = arrow::util::pretty::pretty_format_batches(&parts)?.to_string();
    let parts = parts
        .lines()
        .nth(3)
        .unwrap_or_default()
        .trim_matches(['|', ' '])
        .to_string();
    let read = |namespace: &'static str| async move {
        let sql = format!("SELECT count(*), avg(air) FROM daily_air({MONTH}, {namespace})");
        let mut times = Vec::new();
        for _ in 0..READS {
            let (took, outcome) = timed(session, &sql).await?;
            assert_eq!(outcome, Some(Outcome::Hit));
            times.push(took);
        }
        Ok::<_, datafusion::error::DataFusionError>(median(times))
    };
    // Interleaved, so that a drift of the machine's speed hits both.
    let (once_read, grown_read) = (read(once).await?, read(grown).await?);
    timed(
        session,
        &format!("SELECT count(*) FROM daily_air(NULL, NULL, {grown}, compact => true)"),
    )
    .await?;
    let compacted = read(grown).await?;
    let once_again = read(once).await?;
    Ok((once_read.min(once_again), grown_read, compacted, parts))
}

/// Python nuthatch's time to recompute 2013 and one day more, from
/// `benches/peers/python_append.py`.
fn python_recompute(dir: &std::path::Path) -> std::result::Result<Duration, String> {
    let python = std::env::var("NUTHATCH_PEERS_PYTHON").map_err(|_| {
        "NUTHATCH_PEERS_PYTHON is unset; run through bash scripts/peers".to_string()
    })?;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/python_append.py");
    let output = std::process::Command::new(python)
        .arg(script)
        .arg(dir)
        .arg(DAYS_ADDED.min(5).to_string())
        .output()
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let json: serde_json::Value = serde_json::from_str(text.trim()).map_err(|e| e.to_string())?;
    json["recompute_with_day"]
        .as_f64()
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("no recompute_with_day in {text}"))
}

#[tokio::main]
async fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let engine = Engine::new(&Config::with_root(
        dir.path().join("root").display().to_string(),
    ))?;
    for function in demo::readme_functions()? {
        engine.register(function)?;
    }
    let session = engine.session();
    session.sql(DAILY_AIR).await?.collect().await?;
    timed(&session, "SELECT count(*) FROM my_first_cache()").await?;

    let [added, alone, missed, recomputed, read] = daily_append(&session).await?;
    let python = python_recompute(&dir.path().join("python"));
    println!("Daily append ({DAYS_ADDED} days added to 2013), medians:");
    println!(
        "  one day added        {:>8.1} ms\n  that day alone       {:>8.1} ms   ratio {:.2} (target <= 1.3)",
        ms(added),
        ms(alone),
        added.as_secs_f64() / alone.as_secs_f64()
    );
    println!(
        "  that day's own entry {:>8.1} ms   ratio {:.2} (computed and stored, a miss)",
        ms(missed),
        added.as_secs_f64() / missed.as_secs_f64()
    );
    println!("  the day read again   {:>8.1} ms", ms(read));
    println!(
        "  recompute, ours      {:>8.1} ms   day added / recompute {:.3}",
        ms(recomputed),
        added.as_secs_f64() / recomputed.as_secs_f64()
    );
    match python {
        Ok(theirs) => println!(
            "  recompute, Python    {:>8.1} ms   day added / Python's recompute {:.3}",
            ms(theirs),
            added.as_secs_f64() / theirs.as_secs_f64()
        ),
        Err(why) => println!("  (Python nuthatch not run: {why})"),
    }

    let (once, grown, compacted, parts) = grown_reads(&session).await?;
    println!("One-month window hit, median of {READS}:");
    println!("  computed once        {:>8.2} ms", ms(once));
    println!(
        "  grown over 365 calls {:>8.2} ms   ratio {:.2} (target <= 1.5), {parts} parts",
        ms(grown),
        grown.as_secs_f64() / once.as_secs_f64()
    );
    println!(
        "  after compaction     {:>8.2} ms   ratio {:.2} (target <= 1.05)",
        ms(compacted),
        compacted.as_secs_f64() / once.as_secs_f64()
    );
    Ok(())
}

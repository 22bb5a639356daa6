//! The README workflow on the generated air-temperature grid: compute,
//! clipped hits with row-group pruning, recompute, namespaces.

use nuthatch::{Outcome, demo};

use crate::support::{Fixture, assert_outcome};

const GRID: i64 = (demo::LATS * demo::LONS) as i64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_workflow() {
    let f = Fixture::new();
    for function in demo::readme_functions().unwrap() {
        f.nuthatch.register(function).unwrap();
    }

    // Daily means for 2013: computes agg_and_clip, and my_first_cache inside it.
    let year =
        "SELECT count(DISTINCT time) FROM agg_and_clip('2013-01-01', '2014-01-01', agg_days => 1)";
    assert_eq!(
        f.int(year).await,
        365 * 4 + 4,
        "2013 plus all of 2014-01-01"
    );
    let reports = f.reports();
    let summary: Vec<(String, Outcome)> =
        reports.iter().map(|r| (r.key.clone(), r.outcome)).collect();
    assert_eq!(
        summary,
        vec![
            ("my_first_cache/".to_string(), Outcome::Computed),
            ("agg_and_clip/1".to_string(), Outcome::Computed)
        ]
    );
    assert_eq!(reports[1].rows, (365 * 4 + 4) * GRID as usize);

    // Clipped to 2013-01-01..2013-06-01: the whole end day (608 steps), from the cache.
    let spring =
        "SELECT count(DISTINCT time) FROM agg_and_clip('2013-01-01', '2013-06-01', agg_days => 1)";
    assert_eq!(f.int(spring).await, 608);
    assert_outcome(&f.report(), Outcome::Hit);
    // An exact end stops at midnight, as nuthatch's DataFrame path does (605).
    let exact = "SELECT count(DISTINCT time) FROM agg_and_clip('2013-01-01', '2013-06-01T00:00:00', agg_days => 1)";
    assert_eq!(f.int(exact).await, 605);
    f.reports();

    // A one-month window reads under 10% of the two-year entry's row groups.
    let month = "SELECT count(*) FROM agg_and_clip('2013-03-01', '2013-03-31', agg_days => 1)";
    assert_eq!(f.int(month).await, 31 * 4 * GRID);
    let report = f.report();
    assert_outcome(&report, Outcome::Hit);
    let (read, total) = report
        .row_groups_read
        .expect("the window prunes row groups");
    assert!(total >= 50, "{report}");
    assert!(
        read * 10 < total,
        "a month should read under 10% of the row groups: {report}"
    );

    // A WHERE on time prunes the same way, without window arguments.
    let filtered = "SELECT count(*) FROM agg_and_clip(NULL, NULL, agg_days => 1) \
                    WHERE time >= '2014-07-01' AND time < '2014-08-01'";
    assert_eq!(f.int(filtered).await, 31 * 4 * GRID);
    let report = f.report();
    let (read, total) = report.row_groups_read.unwrap();
    assert!(read * 10 < total, "{report}");

    // Other WHERE filters are applied (lat is not sorted, so nothing is pruned).
    let north = "SELECT count(*) FROM agg_and_clip('2013-03-01', '2013-03-01', agg_days => 1) WHERE lat > 40";
    assert_eq!(f.int(north).await, 4 * 14 * demo::LONS as i64);
    f.reports();

    // Weekly means: a new key; the grid comes from the cache.
    let week = "SELECT count(*) FROM agg_and_clip(NULL, NULL, agg_days => 7) WHERE air IS NULL";
    assert_eq!(
        f.int(week).await,
        6 * GRID,
        "the first agg_days - 1 steps are null"
    );
    let outcomes: Vec<(String, Outcome)> = f.outcomes();
    assert_eq!(
        outcomes,
        vec![
            ("my_first_cache/".to_string(), Outcome::Hit),
            ("agg_and_clip/7".to_string(), Outcome::Computed)
        ]
    );
    // The rolling mean is the mean of the last 7 steps.
    let check = "SELECT CAST(round(abs(a.air - m.mean) * 1000) AS BIGINT) FROM \
                 agg_and_clip('2013-01-03', '2013-01-03', agg_days => 7) a \
                 JOIN (SELECT lat, lon, avg(air) AS mean FROM my_first_cache() \
                       WHERE time BETWEEN '2013-01-01T12:00:00' AND '2013-01-03T00:00:00' GROUP BY lat, lon) m \
                 ON a.lat = m.lat AND a.lon = m.lon \
                 WHERE a.time = '2013-01-03T00:00:00' AND a.lat = 50 AND a.lon = 250";
    assert_eq!(f.int(check).await, 0);
    f.reports();

    // Recompute with overwrite replaces the entry; namespaces are separate entries.
    let recompute = "SELECT count(*) FROM agg_and_clip('2013-01-01', '2013-01-01', agg_days => 7, \
                     recompute => true, cache_mode => 'overwrite')";
    assert_eq!(f.int(recompute).await, 4 * GRID);
    let outcomes: Vec<(String, Outcome)> = f.outcomes();
    assert_eq!(
        outcomes,
        vec![
            ("my_first_cache/".to_string(), Outcome::Hit),
            ("agg_and_clip/7".to_string(), Outcome::Computed)
        ],
        "recompute reaches only the called function, as in nuthatch"
    );
    let namespaced = "SELECT count(*) FROM agg_and_clip('2013-01-01', '2013-01-01', agg_days => 7, namespace => 'experiment')";
    assert_eq!(f.int(namespaced).await, 4 * GRID);
    let report = f.reports().pop().unwrap();
    assert_outcome(&report, Outcome::Computed);
    assert_eq!(report.namespace.as_deref(), Some("experiment"));
    assert!(
        f.files()
            .contains(&"experiment/agg_and_clip/7.parquet".to_string())
    );
    assert!(
        f.files().contains(
            &"nuthatch_metadata.nut/agg_and_clip/7/experiment/parquet.parquet".to_string()
        )
    );

    // `write` with recompute over an existing entry: nuthatch would ask;
    // we refuse before computing, naming the mode that overwrites.
    let ask = "SELECT count(*) FROM agg_and_clip('2013-01-01', '2013-01-01', agg_days => 7, recompute => true)";
    let error = f.error(ask).await;
    assert!(
        error.contains("already stored on the root tier")
            && error.contains("cache_mode => 'overwrite'"),
        "{error}"
    );
}

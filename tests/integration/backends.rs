//! Backends through the one trait: Parquet and Arrow IPC, chosen per
//! function or per call, and what a store holds in formats we cannot read.

use std::collections::BTreeMap;

use nuthatch::crates::catalog::EntryId;
use nuthatch::{KeyValue, Outcome, cache_key};

use crate::support::{Fixture, assert_outcome};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_can_store_its_entry_as_arrow_ipc_and_read_it_back() {
    let f = Fixture::new();
    let sql =
        "SELECT count(*), sum(value) FROM series('2020-01-01', '2020-01-02', backend => 'arrow')";
    let first = f.query(sql).await.unwrap();
    let report = f.report();
    assert_outcome(&report, Outcome::Computed);
    assert_eq!(report.backend, "arrow");
    assert_eq!(
        f.files(),
        vec![
            "nuthatch_metadata.nut/exists.nut",
            "nuthatch_metadata.nut/series/1.0_north/arrow.parquet",
            "series/1.0_north.arrow",
        ]
    );
    let again = f.query(sql).await.unwrap();
    assert_eq!(first, again);
    let report = f.report();
    assert_outcome(&report, Outcome::Hit);
    assert_eq!(report.backend, "arrow");
    // A call that names no backend finds the arrow entry, as Python infers
    // a backend from the metadata it finds.
    assert_eq!(
        f.int("SELECT count(*) FROM series('2020-01-01', '2020-01-02')")
            .await,
        48
    );
    assert_eq!(f.report().backend, "arrow");
    assert_eq!(f.computes(), 1);
    // Naming parquet is another entry.
    assert_eq!(
        f.int("SELECT count(*) FROM series(NULL, NULL, backend => 'parquet')")
            .await,
        1440
    );
    assert_outcome(&f.report(), Outcome::Computed);
    assert!(f.files().contains(&"series/1.0_north.parquet".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_arrow_scan_reads_only_the_projected_columns() {
    let f = Fixture::new();
    f.int("SELECT count(*) FROM series(NULL, NULL, backend => 'arrow')")
        .await;
    let args = BTreeMap::from([
        ("station".to_string(), KeyValue::Scalar("north".into())),
        ("scale".to_string(), KeyValue::Scalar("1.0".into())),
    ]);
    let id = EntryId {
        key: cache_key("series", &args).unwrap(),
        namespace: None,
        version: Some("1".into()),
    };
    let schema = f.nuthatch.function("series").unwrap().schema().clone();
    let catalog = f.engine.catalog();
    let arrow = catalog.backend("arrow").unwrap();
    let entry = catalog
        .find_on(catalog.root(), &id, arrow, &schema)
        .await
        .unwrap()
        .expect("the arrow entry is there");
    let state = f.nuthatch.context().state();
    let plan = entry
        .provider
        .scan(&state, Some(&vec![2]), &[], None)
        .await
        .unwrap();
    let shown = datafusion::physical_plan::displayable(plan.as_ref())
        .indent(true)
        .to_string();
    assert!(shown.contains("file_type=arrow"), "{shown}");
    assert!(shown.contains("projection=[value]"), "{shown}");
    let batches = datafusion::physical_plan::collect(plan, state.task_ctx())
        .await
        .unwrap();
    assert!(batches.iter().all(|b| b.num_columns() == 1));
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1440);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_defined_with_the_arrow_backend_stores_arrow() {
    let f = Fixture::new();
    f.query(
        "CREATE CACHED FUNCTION squares(n BIGINT) WITH (cache_args = (n), backend = 'arrow') \
         AS SELECT value * value AS sq FROM generate_series(1, $n)",
    )
    .await
    .unwrap();
    assert_eq!(f.int("SELECT sum(sq) FROM squares(10)").await, 385);
    assert_eq!(f.report().backend, "arrow");
    assert!(f.files().contains(&"squares/10.arrow".to_string()));
    assert_eq!(f.int("SELECT sum(sq) FROM squares(10)").await, 385);
    assert_outcome(&f.report(), Outcome::Hit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_backend_names_the_ones_there_are() {
    let f = Fixture::new();
    let error = f
        .error("SELECT * FROM series(NULL, NULL, backend => 'feather')")
        .await;
    assert!(
        error.contains("unknown backend 'feather'") && error.contains("arrow, delta, parquet"),
        "{error}"
    );
    let error = f
        .error("CREATE CACHED FUNCTION f() WITH (backend = 'pickle') AS SELECT 1 AS x")
        .await;
    assert!(error.contains("unknown backend 'pickle'"), "{error}");
    assert!(f.nuthatch.function("f").is_none());
}

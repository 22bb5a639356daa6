//! A backend written outside the workspace's crates (the JSON-lines format
//! of `examples/jsonl_backend`), registered by the program that uses it:
//! definitions, misses, hits, settings, listing, `DELETE` and reported
//! changes work with it as with a built-in format.

#[path = "../../examples/jsonl_backend/jsonl.rs"]
mod jsonl;

use std::sync::Arc;

use nuthatch::{Backends, Config, Engine, Outcome, TierConfig};

use crate::support::{Fixture, assert_outcome};

fn config(dir: &std::path::Path) -> Config {
    let mut config = Config::with_root(dir.join("root").display().to_string());
    config.local = TierConfig::new(dir.join("local").display().to_string());
    config
}

fn with_jsonl() -> Backends {
    Backends::builtin().with(Arc::new(jsonl::JsonLines))
}

fn fixture(settings: &[(&str, &str)]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    for (key, value) in settings {
        config.set(key, value).unwrap();
    }
    let engine = Engine::with_backends(&config, with_jsonl()).unwrap();
    Fixture::with_engine(dir, engine)
}

const SQUARES: &str = "CREATE CACHED FUNCTION squares(n BIGINT) \
     WITH (backend = 'jsonl', cache_args = (n)) AS \
     SELECT x, x * x AS square, CASE WHEN x % 2 = 0 THEN 'even' END AS tag \
     FROM (VALUES (1), (2), (3), (4), (5), (6), (7)) AS t(x) WHERE x <= $n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_from_outside_stores_serves_lists_and_deletes_entries() {
    let f = fixture(&[("root.jsonl.explicit_nulls", "true")]);
    f.query(SQUARES).await.unwrap();

    // A miss is computed and written by the format, where its key says.
    let total = "SELECT sum(square) FROM squares(5)";
    assert_eq!(f.int(total).await, 55);
    assert_outcome(&f.report(), Outcome::Computed);
    let file = f.root().join("squares/5.jsonl");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count(), 5, "{text}");
    // The tier's setting, read by the format when the tier opened.
    assert!(text.contains(r#""tag":null"#), "{text}");

    // A hit reads the file back, rows and types as computed.
    assert_eq!(f.int(total).await, 55);
    let report = f.report();
    assert_outcome(&report, Outcome::Hit);
    assert_eq!(report.backend, "jsonl");
    assert_eq!(
        f.int("SELECT count(*) FROM squares(5) WHERE tag = 'even' AND x > 1")
            .await,
        2
    );
    assert_outcome(&f.report(), Outcome::Hit);

    // Listed like any entry, and deleted like one: data and metadata go,
    // and the next call computes again.
    assert_eq!(
        f.int("SELECT rows FROM nuthatch.caches WHERE backend = 'jsonl' AND key = 'squares/5'")
            .await,
        5
    );
    assert_eq!(
        f.int("DELETE FROM nuthatch.caches WHERE function = 'squares'")
            .await,
        1
    );
    assert!(!file.exists());
    assert_eq!(f.int("SELECT count(*) FROM nuthatch.caches").await, 0);
    assert_eq!(f.int(total).await, 55);
    assert_outcome(&f.report(), Outcome::Computed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_from_outside_reports_what_it_stores_changed_and_is_named_when_missing() {
    let f = fixture(&[]);
    // What the format declares it stores changed is reported by the call.
    f.query(
        "CREATE CACHED FUNCTION ratio() WITH (backend = 'jsonl') AS \
         SELECT CAST('NaN' AS DOUBLE) AS v UNION ALL SELECT 1.5",
    )
    .await
    .unwrap();
    f.query("SELECT * FROM ratio()").await.unwrap();
    let report = f.report();
    assert_outcome(&report, Outcome::Computed);
    let changes: Vec<String> = report.changes.iter().map(|c| c.to_string()).collect();
    assert!(
        changes.iter().any(|c| c.contains("v") && c.contains("NaN")),
        "{changes:?}"
    );
    assert_eq!(f.int("SELECT count(v) FROM ratio()").await, 1);

    // Its settings are checked by it, and an engine without it names the
    // formats it has.
    let dir = tempfile::tempdir().unwrap();
    let mut bad = config(dir.path());
    bad.set("root.jsonl.explicit_nuls", "true").unwrap();
    let err = Engine::with_backends(&bad, with_jsonl())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'root.jsonl.explicit_nuls'") && err.contains("explicit_nulls"),
        "{err}"
    );
    let plain = Fixture::new();
    let err = plain
        .error("CREATE CACHED FUNCTION j() WITH (backend = 'jsonl') AS SELECT 1 AS x")
        .await;
    assert!(
        err.contains("unknown backend 'jsonl'") && err.contains("parquet"),
        "{err}"
    );
}

//! Root tiers on object stores: `memory://`, `file://`, and `s3://` against a
//! real S3-compatible server.
//!
//! The S3 tests are `#[ignore]`d for a bare `cargo test`; `bash scripts/test`
//! starts a moto S3 server on loopback, creates the bucket, exports
//! `NUTHATCH_TEST_S3_ENDPOINT` and runs them with `--include-ignored`.

use std::sync::Arc;

use futures::TryStreamExt;
use nuthatch::{Config, Engine, Outcome, Session, TierConfig};
use object_store::aws::AmazonS3Builder;
use object_store::ObjectStore;

use crate::support::{assert_outcome, series};

/// A secret that must never show up anywhere.
const SECRET: &str = "s3cr3t-never-printed";
const BUCKET: &str = "nuthatch-test";

async fn count(nuthatch: &Session, sql: &str) -> datafusion::error::Result<i64> {
    let batches = nuthatch.sql(sql).await?.collect().await?;
    let column = arrow::compute::cast(batches[0].column(0), &arrow::datatypes::DataType::Int64)?;
    Ok(column
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0))
}

fn session(config: &Config) -> Session {
    let nuthatch = Engine::new(config).unwrap().session();
    nuthatch.register(series(Arc::default())).unwrap();
    nuthatch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_root_caches_within_the_session() {
    let nuthatch = session(&Config::with_root("memory://"));
    let sql = "SELECT count(*) FROM series('2020-01-01', '2020-01-01')";
    assert_eq!(count(&nuthatch, sql).await.unwrap(), 24);
    assert_outcome(&nuthatch.take_reports()[0], Outcome::Computed);
    assert_eq!(count(&nuthatch, sql).await.unwrap(), 24);
    assert_outcome(&nuthatch.take_reports()[0], Outcome::Hit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_url_root_is_a_local_folder() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/cache", dir.path().display());
    let nuthatch = session(&Config::with_root(url));
    assert_eq!(
        count(&nuthatch, "SELECT count(*) FROM series(NULL, NULL)")
            .await
            .unwrap(),
        1440
    );
    assert!(dir.path().join("cache/series/1.0_north.parquet").is_file());
}

fn endpoint() -> String {
    std::env::var("NUTHATCH_TEST_S3_ENDPOINT").expect(
        "NUTHATCH_TEST_S3_ENDPOINT is unset: run `bash scripts/test`, which starts an S3 server",
    )
}

fn s3_config(bucket: &str, endpoint: &str) -> Config {
    let mut config = Config::with_root("unused");
    config.root = TierConfig::new(format!("s3://{bucket}/team/caches"))
        .with_option("endpoint", endpoint)
        .with_option("access_key_id", "testing")
        .with_option("secret_access_key", SECRET)
        .with_option("region", "us-east-1")
        .with_option("allow_http", "true");
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an S3 server: run bash scripts/test"]
async fn an_s3_root_stores_entries_in_the_bucket_layout() {
    let endpoint = endpoint();
    let config = s3_config(BUCKET, &endpoint);
    let sql = "SELECT count(*) FROM series('2020-01-01', '2020-01-02', station => 's3')";
    let first = session(&config);
    assert_eq!(count(&first, sql).await.unwrap(), 48);
    assert_outcome(&first.take_reports()[0], Outcome::Computed);
    // A new session (another user, another day) hits the same entry.
    let second = session(&config);
    assert_eq!(count(&second, sql).await.unwrap(), 48);
    let report = second.take_reports().remove(0);
    assert_outcome(&report, Outcome::Hit);
    assert!(!format!("{report:?}").contains(SECRET));

    let bucket = AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_endpoint(&endpoint)
        .with_access_key_id("testing")
        .with_secret_access_key(SECRET)
        .with_region("us-east-1")
        .with_allow_http(true)
        .build()
        .unwrap();
    let mut keys: Vec<String> = bucket
        .list(Some(&"team/caches".into()))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap();
    keys.sort();
    assert!(
        keys.contains(&"team/caches/series/1.0_s3.parquet".to_string()),
        "{keys:?}"
    );
    assert!(
        keys.contains(
            &"team/caches/nuthatch_metadata.nut/series/1.0_s3/parquet.parquet".to_string()
        ),
        "{keys:?}"
    );
    assert!(
        format!("{config:?}").contains("secret_access_key")
            && !format!("{config:?}").contains(SECRET)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an S3 server: run bash scripts/test"]
async fn s3_failures_name_the_tier_and_never_the_secret() {
    let endpoint = endpoint();
    // A bucket that does not exist: the write fails, clearly, nothing is committed.
    let missing = session(&s3_config("no-such-bucket", &endpoint));
    let error = count(&missing, "SELECT count(*) FROM series(NULL, NULL)")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("root tier at s3://no-such-bucket/team/caches"),
        "{error}"
    );
    assert!(!error.contains(SECRET), "{error}");
    // An endpoint nobody listens on: unreachable, in seconds.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let started = std::time::Instant::now();
    let unreachable = session(&s3_config(BUCKET, &format!("http://127.0.0.1:{port}")));
    let error = count(&unreachable, "SELECT count(*) FROM series(NULL, NULL)")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("root tier") && error.contains("unreachable"),
        "{error}"
    );
    assert!(!error.contains(SECRET), "{error}");
    assert!(
        started.elapsed().as_secs() < 60,
        "gave up after {:?}",
        started.elapsed()
    );
    // A misspelt option is refused when the session opens.
    let mut typo = s3_config(BUCKET, &endpoint);
    typo.root
        .options
        .insert("endpiont".into(), endpoint.clone());
    let error = Engine::new(&typo).err().unwrap().to_string();
    assert!(error.contains("'endpiont' is not an s3 option"), "{error}");
    assert!(!error.contains(SECRET), "{error}");
}

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
use object_store::{ObjectStore, ObjectStoreExt};

use crate::support::{assert_outcome, count_in, series};

/// A secret that must never show up anywhere.
const SECRET: &str = "s3cr3t-never-printed";
const BUCKET: &str = "nuthatch-test";

fn session(config: &Config) -> Session {
    let nuthatch = Engine::new(config).unwrap().session();
    nuthatch.register(series(Arc::default())).unwrap();
    nuthatch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_root_caches_within_the_session() {
    let nuthatch = session(&Config::with_root("memory://"));
    let sql = "SELECT count(*) FROM series('2020-01-01', '2020-01-01')";
    assert_eq!(count_in(&nuthatch, sql).await.unwrap(), 24);
    assert_outcome(&nuthatch.take_reports()[0], Outcome::Computed);
    assert_eq!(count_in(&nuthatch, sql).await.unwrap(), 24);
    assert_outcome(&nuthatch.take_reports()[0], Outcome::Hit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_url_root_is_a_local_folder() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/cache", dir.path().display());
    let nuthatch = session(&Config::with_root(url));
    assert_eq!(
        count_in(&nuthatch, "SELECT count(*) FROM series(NULL, NULL)")
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

/// The test bucket, to look at what a test left in it.
fn test_bucket(endpoint: &str) -> object_store::aws::AmazonS3 {
    AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_endpoint(endpoint)
        .with_access_key_id("testing")
        .with_secret_access_key(SECRET)
        .with_region("us-east-1")
        .with_allow_http(true)
        .build()
        .unwrap()
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
    assert_eq!(count_in(&first, sql).await.unwrap(), 48);
    assert_outcome(&first.take_reports()[0], Outcome::Computed);
    // A new session (another user, another day) hits the same entry.
    let second = session(&config);
    assert_eq!(count_in(&second, sql).await.unwrap(), 48);
    let report = second.take_reports().remove(0);
    assert_outcome(&report, Outcome::Hit);
    assert!(!format!("{report:?}").contains(SECRET));

    let bucket = test_bucket(&endpoint);
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

/// A timeseries entry on S3 grows by parts, each committed under a lock
/// made with a put-if-absent, which the S3 server must honour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an S3 server: run bash scripts/test"]
async fn a_growing_entry_on_s3_adds_a_part_per_range_under_a_lock() {
    let endpoint = endpoint();
    const GROWS: &str = "CREATE CACHED FUNCTION grows(start_time TIMESTAMP, end_time TIMESTAMP) \
         WITH (timeseries = 'time') \
         AS SELECT time, value FROM series(NULL, NULL, station => 'grows') \
            WHERE time BETWEEN $start_time AND $end_time";
    let nuthatch = session(&s3_config(BUCKET, &endpoint));
    nuthatch.sql(GROWS).await.unwrap();
    let window = "SELECT count(*), count(DISTINCT time) FROM grows('2020-01-05', '2020-01-25')";
    count_in(
        &nuthatch,
        "SELECT count(*) FROM grows('2020-01-10', '2020-01-20')",
    )
    .await
    .unwrap();
    nuthatch.take_reports();
    assert_eq!(count_in(&nuthatch, window).await.unwrap(), 21 * 24);
    let report = nuthatch
        .take_reports()
        .into_iter()
        .find(|r| r.function == "grows")
        .unwrap();
    assert_outcome(&report, Outcome::Extended);

    let bucket = test_bucket(&endpoint);
    let keys: Vec<String> = bucket
        .list(Some(&"team/caches".into()))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap();
    let parts: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with("team/caches/grows/") && k.ends_with(".parquet"))
        .collect();
    assert_eq!(parts.len(), 2, "{keys:?}");
    assert!(!keys.iter().any(|k| k.ends_with(".lock")), "{keys:?}");
    // Another session reads every row once.
    let other = session(&s3_config(BUCKET, &endpoint));
    other.sql(GROWS).await.unwrap();
    let batches = other.sql(window).await.unwrap().collect().await.unwrap();
    let distinct =
        arrow::compute::cast(batches[0].column(1), &arrow::datatypes::DataType::Int64).unwrap();
    let distinct = distinct
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap();
    assert_eq!(distinct.value(0), 21 * 24);
}

/// Delta commits through the tier's own S3 store: a put-if-absent of each
/// log file, which the S3 server must honour.
#[cfg(feature = "delta")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an S3 server: run bash scripts/test"]
async fn delta_entries_version_and_upsert_on_s3() {
    let endpoint = endpoint();
    let config = s3_config(BUCKET, &endpoint);
    let call = |extra: &str| {
        format!(
            "SELECT count(*) FROM series('2020-01-01', '2020-01-02', station => 's3delta', \
             backend => 'delta'{extra})"
        )
    };
    let first = session(&config);
    assert_eq!(count_in(&first, &call("")).await.unwrap(), 48);
    let report = first.take_reports().remove(0);
    assert_outcome(&report, Outcome::Computed);
    assert_eq!(report.data_version, Some(0));
    let overwrite = ", recompute => true, cache_mode => 'overwrite'";
    assert_eq!(count_in(&first, &call(overwrite)).await.unwrap(), 48);
    assert_eq!(first.take_reports()[0].data_version, Some(1));
    // Another session reads the recorded version.
    let second = session(&config);
    assert_eq!(count_in(&second, &call("")).await.unwrap(), 48);
    let report = second.take_reports().remove(0);
    assert_outcome(&report, Outcome::Hit);
    assert_eq!(report.data_version, Some(1));

    let bucket = test_bucket(&endpoint);
    let log: Vec<String> = bucket
        .list(Some(
            &"team/caches/series/1.0_s3delta.delta/_delta_log".into(),
        ))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        log.iter().filter(|k| k.ends_with(".json")).count(),
        2,
        "{log:?}"
    );
}

/// Replacements on S3 publish the way a kill cannot break: Parquet as a
/// completed multipart upload behind a pending record, Zarr as a staged
/// copy copied into place server-side; each ends confirmed, whole, with
/// nothing staged left in the bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an S3 server: run bash scripts/test"]
async fn replacements_on_s3_end_confirmed_whole_and_leave_nothing_staged() {
    let endpoint = endpoint();
    let config = s3_config(BUCKET, &endpoint);
    let nuthatch = session(&config);
    let bucket = test_bucket(&endpoint);
    for backend in ["parquet", "zarr"] {
        let function = format!("replaced_on_s3_{backend}");
        let dimensions = if backend == "zarr" {
            ", dimensions = (id)"
        } else {
            ""
        };
        nuthatch
            .sql(&format!(
                "CREATE CACHED FUNCTION {function}(tag VARCHAR, v BIGINT) \
                 WITH (cache_args = (tag), backend = '{backend}'{dimensions}) \
                 AS SELECT value AS id, $v AS v FROM generate_series(1, 1000)"
            ))
            .await
            .unwrap();
        for v in 1..=3 {
            let write = format!(
                "SELECT count(*) FROM {function}('t', {v}, recompute => true, \
                 cache_mode => 'overwrite')"
            );
            count_in(&nuthatch, &write).await.unwrap();
            let read = format!(
                "SELECT count(*) FROM {function}('t', 0, cache_mode => 'read_only_strict') \
                 WHERE v = {v}"
            );
            assert_eq!(
                count_in(&nuthatch, &read).await.unwrap(),
                1000,
                "{backend} v{v}"
            );
        }
        let keys: Vec<String> = bucket
            .list(Some(&format!("team/caches/{function}").into()))
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .unwrap();
        assert!(!keys.iter().any(|k| k.contains(".next")), "{keys:?}");
        let record = format!("team/caches/nuthatch_metadata.nut/{function}/t/{backend}.parquet");
        let bytes = bucket
            .get(&record.into())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let row = nuthatch::MetadataRow::decode(bytes).unwrap();
        assert_eq!((row.state.as_str(), row.replacing), ("confirmed", None));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an S3 server: run bash scripts/test"]
async fn the_catalog_of_an_s3_root_is_listed_and_deleted_from_in_the_bucket() {
    let endpoint = endpoint();
    let mut config = s3_config(BUCKET, &endpoint);
    config.root.filesystem = format!("s3://{BUCKET}/catalog/caches");
    let nuthatch = session(&config);
    for station in ["kept", "dropped"] {
        let sql = format!("SELECT count(*) FROM series(NULL, NULL, station => '{station}')");
        assert_eq!(count_in(&nuthatch, &sql).await.unwrap(), 1440);
    }
    let listed = crate::system::text_rows(
        &nuthatch
            .sql(
                "SELECT tier, key, rows, uri FROM nuthatch.caches WHERE tier = 'root' ORDER BY key",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap(),
    );
    let uri = |station: &str| format!("s3://{BUCKET}/catalog/caches/series/1.0_{station}.parquet");
    assert_eq!(
        listed,
        vec![
            vec![
                "root".to_string(),
                "series/1.0_dropped".into(),
                "1440".into(),
                uri("dropped")
            ],
            vec![
                "root".to_string(),
                "series/1.0_kept".into(),
                "1440".into(),
                uri("kept")
            ],
        ]
    );
    let tiers = crate::system::text_rows(
        &nuthatch
            .sql("SELECT * FROM nuthatch.tiers WHERE name = 'root'")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap(),
    );
    let shown = format!("{tiers:?}");
    assert!(
        shown.contains(&format!("s3://{BUCKET}/catalog/caches")) && !shown.contains(SECRET),
        "{shown}"
    );
    assert_eq!(
        count_in(
            &nuthatch,
            "DELETE FROM nuthatch.caches WHERE key = 'series/1.0_dropped'"
        )
        .await
        .unwrap(),
        1
    );
    let bucket = test_bucket(&endpoint);
    let mut keys: Vec<String> = bucket
        .list(Some(&"catalog/caches".into()))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap();
    keys.sort();
    assert_eq!(
        keys,
        [
            "catalog/caches/nuthatch_metadata.nut/exists.nut",
            "catalog/caches/nuthatch_metadata.nut/series/1.0_kept/parquet.parquet",
            "catalog/caches/series/1.0_kept.parquet",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an S3 server: run bash scripts/test"]
async fn s3_failures_name_the_tier_and_never_the_secret() {
    let endpoint = endpoint();
    // A bucket that does not exist: the write fails, clearly, nothing is committed.
    let missing = session(&s3_config("no-such-bucket", &endpoint));
    let error = count_in(&missing, "SELECT count(*) FROM series(NULL, NULL)")
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
    let error = count_in(&unreachable, "SELECT count(*) FROM series(NULL, NULL)")
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

/// A tier config for the IAM-enforcing server's bucket, signed by the
/// writer's or the reader's key.
fn iam_tier(prefix: &str, writer: bool) -> TierConfig {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} is set by bash scripts/test"))
    };
    let who = if writer { "WRITER" } else { "READER" };
    TierConfig::new(format!(
        "s3://{}/{prefix}",
        var("NUTHATCH_TEST_IAM_S3_BUCKET")
    ))
    .with_option("endpoint", var("NUTHATCH_TEST_IAM_S3_ENDPOINT"))
    .with_option(
        "access_key_id",
        var(&format!("NUTHATCH_TEST_IAM_{who}_KEY")),
    )
    .with_option(
        "secret_access_key",
        var(&format!("NUTHATCH_TEST_IAM_{who}_SECRET")),
    )
    .with_option("region", "us-east-1")
    .with_option("allow_http", "true")
}

/// Every object of the IAM bucket with its size and tag, as the writer sees it.
async fn iam_objects() -> Vec<(String, u64, Option<String>)> {
    let config = iam_tier("", true);
    let bucket = AmazonS3Builder::new()
        .with_bucket_name(std::env::var("NUTHATCH_TEST_IAM_S3_BUCKET").unwrap())
        .with_endpoint(&config.options["endpoint"])
        .with_access_key_id(&config.options["access_key_id"])
        .with_secret_access_key(&config.options["secret_access_key"])
        .with_region("us-east-1")
        .with_allow_http(true)
        .build()
        .unwrap();
    let mut objects: Vec<(String, u64, Option<String>)> = bucket
        .list(None)
        .map_ok(|m| (m.location.to_string(), m.size, m.e_tag))
        .try_collect()
        .await
        .unwrap();
    objects.sort();
    objects
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an IAM-enforcing S3 server: run bash scripts/test"]
async fn a_mirror_with_read_only_credentials_is_read_and_never_written() {
    // The other team fills its bucket with its writer's key.
    let mut team = Config::with_root("unused");
    team.root = iam_tier("team-b/caches", true);
    let writer = session(&team);
    let day =
        |options: &str| format!("SELECT count(*) FROM series('2020-01-01', '2020-01-02'{options})");
    assert_eq!(count_in(&writer, &day("")).await.unwrap(), 48);
    let before = iam_objects().await;
    assert!(
        before
            .iter()
            .any(|(k, _, _)| k == "team-b/caches/series/1.0_north.parquet")
    );

    // We read it as a mirror, with a key that may only read.
    let dir = tempfile::tempdir().unwrap();
    let mut ours = Config::with_root(dir.path().join("root").display().to_string());
    ours.local = TierConfig::new(dir.path().join("local").display().to_string());
    ours.mirrors = vec![("mirror-team-b".into(), iam_tier("team-b/caches", false))];
    let reader = session(&ours);
    assert_eq!(count_in(&reader, &day("")).await.unwrap(), 48);
    let report = reader.take_reports().remove(0);
    assert_eq!(
        (report.outcome, report.tier.as_deref()),
        (Outcome::Hit, Some("mirror-team-b"))
    );
    // Local modes copy to local; misses are computed into our root.
    assert_eq!(
        count_in(&reader, &day(", cache_mode => 'local'"))
            .await
            .unwrap(),
        48
    );
    assert_eq!(reader.take_reports()[0].copied_to.as_deref(), Some("local"));
    assert_eq!(
        count_in(&reader, &day(", station => 'ours'"))
            .await
            .unwrap(),
        48
    );
    assert_outcome(&reader.take_reports()[0], Outcome::Computed);
    assert!(dir.path().join("root/series/1.0_ours.parquet").is_file());
    assert_eq!(iam_objects().await, before, "the mirror is untouched");

    // The same read-only key as root: the default mode becomes
    // read_only_strict (root takes no writes), hits are served, misses and
    // forced writes fail, and nothing is written.
    let mut read_only_root = Config::with_root("unused");
    read_only_root.root = iam_tier("team-b/caches", false);
    read_only_root.local = TierConfig::new(dir.path().join("local2").display().to_string());
    let strict = session(&read_only_root);
    assert_eq!(count_in(&strict, &day("")).await.unwrap(), 48);
    let error = count_in(&strict, &day(", station => 'new'"))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("read_only_strict"), "{error}");
    let error = count_in(&strict, &day(", station => 'new', cache_mode => 'write'"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("cannot write") && error.contains("Nothing was stored"),
        "{error}"
    );
    assert!(!error.contains(&read_only_root.root.options["secret_access_key"]));
    assert_eq!(iam_objects().await, before, "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs an S3 server: run bash scripts/test"]
async fn two_tiers_root_on_s3_local_on_disk_and_a_mirror_folder() {
    let endpoint = endpoint();
    let dir = tempfile::tempdir().unwrap();
    // A mirror folder another team filled.
    let mirror = dir.path().join("mirror");
    let team = session(&Config::with_root(mirror.display().to_string()));
    let sql = |station: &str, options: &str| {
        format!(
            "SELECT count(*) FROM series('2020-01-01', '2020-01-02', station => '{station}'{options})"
        )
    };
    assert_eq!(count_in(&team, &sql("mirrored", "")).await.unwrap(), 48);

    let mut config = s3_config(BUCKET, &endpoint);
    config.root = TierConfig::new(format!("s3://{BUCKET}/two-tier"))
        .with_option("endpoint", &endpoint)
        .with_option("access_key_id", "testing")
        .with_option("secret_access_key", SECRET)
        .with_option("region", "us-east-1")
        .with_option("allow_http", "true");
    config.local = TierConfig::new(dir.path().join("local").display().to_string());
    config.mirrors = vec![(
        "mirror".into(),
        TierConfig::new(mirror.display().to_string()),
    )];
    let first = session(&config);
    let outcome = |s: &Session| {
        let r = s.take_reports().remove(0);
        (r.outcome, r.tier, r.copied_to)
    };
    // Computed into root on S3 (write), then copied to local (local).
    assert_eq!(count_in(&first, &sql("s3two", "")).await.unwrap(), 48);
    assert_eq!(
        outcome(&first),
        (Outcome::Computed, Some("root".into()), None)
    );
    assert_eq!(
        count_in(&first, &sql("s3two", ", cache_mode => 'local'"))
            .await
            .unwrap(),
        48
    );
    assert_eq!(
        outcome(&first),
        (Outcome::Hit, Some("root".into()), Some("local".into()))
    );
    assert_eq!(
        count_in(&first, &sql("s3two", ", cache_mode => 'local'"))
            .await
            .unwrap(),
        48
    );
    assert_eq!(outcome(&first), (Outcome::Hit, Some("local".into()), None));
    // The mirror folder serves what neither tier has.
    assert_eq!(count_in(&first, &sql("mirrored", "")).await.unwrap(), 48);
    assert_eq!(outcome(&first), (Outcome::Hit, Some("mirror".into()), None));
    // A second engine with a fresh local tier hits root on S3.
    let mut other = config.clone();
    other.local = TierConfig::new(dir.path().join("local-2").display().to_string());
    let second = session(&other);
    assert_eq!(
        count_in(&second, &sql("s3two", ", cache_mode => 'local_api'"))
            .await
            .unwrap(),
        48
    );
    assert_eq!(
        outcome(&second),
        (Outcome::Hit, Some("root".into()), Some("local".into()))
    );
}

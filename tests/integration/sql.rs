//! The SQL backend as users meet it: entries as tables in the SQLite file
//! beside a local root and in a real PostgreSQL server, windows, filters
//! and limits in the statement sent (counted in `fetched`), upserts and
//! window replacement, namespaces as schemas, values that try to inject
//! SQL, a read-only role, a server that goes away, bounded pools, and
//! Python nuthatch's `to_sql` tables both ways.
//!
//! The PostgreSQL tests are `#[ignore]`d for a bare `cargo test`; `bash
//! scripts/test` starts a private server, exports `NUTHATCH_TEST_PG_*` and
//! runs them.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Float64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use futures::StreamExt;
use nuthatch::{CachedFunction, Config, Outcome, ParamType, Value};
use sqlx::Row;

use crate::support::{Fixture, assert_outcome, observations, revisions, series_schema};

/// A hostile text: quotes of both kinds, a statement separator, a comment.
const HOSTILE: &str = "x'\"; DROP TABLE \"obs\"; --";

/// Rows of the whole `observations` entry the tests store: 10 days of
/// hours, two stations.
const STORED: i64 = 480;

async fn stores_then_pushes_down(f: &Fixture, name: &str) {
    let n = f
        .int(&format!(
            "SELECT count(*) FROM {name}('2020-01-01', '2020-01-10T23:00:00')"
        ))
        .await;
    assert_eq!(n, STORED);
    let report = f.report();
    assert_outcome(&report, Outcome::Computed);
    assert_eq!(report.backend, "sql");

    // A window: the database sends that day's rows only.
    let day = f
        .int(&format!(
            "SELECT count(value) FROM {name}('2020-01-02', '2020-01-02T23:00:00')"
        ))
        .await;
    let report = f.report();
    assert_outcome(&report, Outcome::Hit);
    assert_eq!((day, report.rows_fetched), (48, Some(48)), "{report}");
    // The database applies the window exactly, so a count of the window's
    // rows is the database's count, one row.
    let day = f
        .int(&format!(
            "SELECT count(*) FROM (SELECT * FROM {name}('2020-01-02', '2020-01-02T23:00:00'))"
        ))
        .await;
    let report = f.report();
    assert_eq!((day, report.rows_fetched), (48, Some(1)), "{report}");

    // Filters on columns go into the statement; a function of a column
    // stays with DataFusion.
    let sql = format!("SELECT * FROM {name}(NULL, NULL) WHERE station = 'a' AND value > 0");
    assert_eq!(
        f.query(&sql)
            .await
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        240
    );
    assert_eq!(f.report().rows_fetched, Some(240));
    let sql = format!("SELECT * FROM {name}(NULL, NULL) WHERE upper(station) = 'A'");
    assert_eq!(
        f.query(&sql)
            .await
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        240
    );
    assert_eq!(f.report().rows_fetched, Some(STORED as usize));

    // A limit goes down too (when no filter stays above the scan).
    let sql = format!("SELECT * FROM {name}(NULL, NULL) LIMIT 5");
    assert_eq!(
        f.query(&sql)
            .await
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        5
    );
    assert_eq!(f.report().rows_fetched, Some(5));

    // A count reads no row at all.
    assert_eq!(
        f.int(&format!("SELECT count(*) FROM {name}(NULL, NULL)"))
            .await,
        STORED
    );
    assert_eq!(f.report().rows_fetched, Some(1));

    // Values with quotes stay values.
    let sql = format!(
        "SELECT count(*) FROM {name}(NULL, NULL) WHERE station = '{}'",
        HOSTILE.replace('\'', "''")
    );
    assert_eq!(f.int(&sql).await, 0);
    f.reports();
}

async fn merges(f: &Fixture, name: &str) {
    // The second half of day one again, and the first half of day two,
    // as revision 2: 24 stored rows updated, 24 rows new (the entry holds
    // day one only here).
    let call = "('2020-01-01T12:00:00', '2020-01-02T11:00:00', revision => 2, upsert => true)";
    f.query(&format!("SELECT * FROM {name}('2020-01-01', '2020-01-01T23:00:00', recompute => true, cache_mode => 'overwrite')"))
        .await
        .unwrap();
    f.reports();
    let served = f.int(&format!("SELECT count(*) FROM {name}{call}")).await;
    let report = f.report();
    assert_outcome(&report, Outcome::Upserted);
    assert_eq!(
        (report.updated, report.inserted),
        (Some(24), Some(24)),
        "{report}"
    );
    assert_eq!(served, 48);
    assert_eq!(revisions(f, name).await, ["1:24", "2:48"]);

    // Six hours replaced by a body that also returns a row outside them.
    let served = f
        .int(&format!(
            "SELECT count(*) FROM {name}('2020-01-01T06:00:00', '2020-01-01T11:00:00', \
             revision => -1, replace_window => true)"
        ))
        .await;
    assert_outcome(&f.report(), Outcome::WindowReplaced);
    assert_eq!(served, 12);
    assert_eq!(revisions(f, name).await, ["-1:12", "1:12", "2:48"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_beside_a_local_root_holds_entries_as_tables() {
    let f = Fixture::new();
    f.nuthatch.register(observations("obs", "sql")).unwrap();
    stores_then_pushes_down(&f, "obs").await;
    merges(&f, "obs").await;

    // The table is the cache key, in the root's SQLite file.
    let file = f.root().join(nuthatch::crates::backends::sql::SQLITE_FILE);
    let db = sqlx::SqlitePool::connect(&format!("sqlite:{}", file.display()))
        .await
        .unwrap();
    let stored: i64 = sqlx::query("SELECT count(*) FROM \"obs/\"")
        .fetch_one(&db)
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 72);

    // Hostile cache arguments and namespaces name tables, nothing more.
    let sql = format!(
        "SELECT count(*) FROM series(NULL, NULL, station => '{}', namespace => '{}', backend => 'sql')",
        HOSTILE.replace('\'', "''"),
        HOSTILE.replace('\'', "''")
    );
    assert_eq!(f.int(&sql).await, 1440);
    f.reports();
    assert_eq!(f.int(&sql).await, 1440);
    assert_outcome(&f.report(), Outcome::Hit);
    let tables: i64 = sqlx::query("SELECT count(*) FROM sqlite_master WHERE type = 'table'")
        .fetch_one(&db)
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 2, "the entry's table and the hostile one");

    // A replacement measures its table inside its transaction: the size
    // recorded is the table's.
    let again = sql.replace(
        "backend => 'sql')",
        "backend => 'sql', recompute => true, cache_mode => 'overwrite')",
    );
    assert_eq!(f.int(&again).await, 1440);
    let sizes = crate::coverage::rows(
        &f,
        "SELECT bytes FROM nuthatch.caches WHERE backend = 'sql' AND function = 'series'",
    )
    .await;
    let size: i64 = sizes[0][0].parse().unwrap();
    let hostile_table = "SELECT sum(pgsize) FROM dbstat WHERE name <> 'obs/' AND name IN \
                         (SELECT name FROM sqlite_master WHERE type = 'table')";
    let pages: i64 = sqlx::query(hostile_table)
        .fetch_one(&db)
        .await
        .unwrap()
        .get(0);
    assert!(
        size > 0 && size == pages,
        "recorded {size}, the table has {pages}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_named_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::with_config(dir, |root| {
        let mut config = Config::with_root(root.display().to_string());
        for (key, value) in [
            ("root.sql.driver", "postgresql"),
            ("root.sql.host", "127.0.0.1"),
            ("root.sql.port", "1"),
            ("root.sql.database", "cache"),
            ("root.sql.username", "team"),
        ] {
            config.set(key, value).unwrap();
        }
        config
            .set_secret("root.sql.password", "hunter2-secret")
            .unwrap();
        config
    });
    f.nuthatch.register(observations("obs", "sql")).unwrap();
    let err = f
        .error("SELECT * FROM obs('2020-01-01', '2020-01-02')")
        .await;
    assert!(err.contains("postgres://team@127.0.0.1:1/cache"), "{err}");
    assert!(err.contains("cannot be reached"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    let tiers = crate::system::text_rows(&f.query("SELECT * FROM nuthatch.tiers").await.unwrap());
    assert!(!format!("{tiers:?}").contains("hunter2"));
}

/// The PostgreSQL server scripts/test started.
pub(crate) struct Pg {
    pub(crate) port: String,
    pub(crate) database: String,
    pub(crate) writer: (String, String),
    reader: (String, String),
    admin: (String, String),
}

pub(crate) fn pg() -> Pg {
    let var = |name: &str| {
        std::env::var(format!("NUTHATCH_TEST_PG_{name}")).unwrap_or_else(|_| {
            panic!(
                "NUTHATCH_TEST_PG_{name} is unset: run `bash scripts/test`, which starts PostgreSQL"
            )
        })
    };
    Pg {
        port: var("PORT"),
        database: var("DATABASE"),
        writer: (var("WRITER"), var("WRITER_PASSWORD")),
        reader: (var("READER"), var("READER_PASSWORD")),
        admin: (var("ADMIN"), var("ADMIN_PASSWORD")),
    }
}

impl Pg {
    /// A root whose sql entries go to the server, read as `user` and
    /// written as `writer` when given.
    pub(crate) fn fixture(
        &self,
        user: &(String, String),
        writer: Option<&(String, String)>,
        extra: &[(&str, &str)],
    ) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        Fixture::with_config(dir, |root| {
            let mut config = Config::with_root(root.display().to_string());
            for (key, value) in [
                ("root.sql.driver", "postgresql"),
                ("root.sql.host", "127.0.0.1"),
                ("root.sql.port", self.port.as_str()),
                ("root.sql.database", self.database.as_str()),
                ("root.sql.username", user.0.as_str()),
            ]
            .into_iter()
            .chain(extra.iter().copied())
            {
                config.set(key, value).unwrap();
            }
            config.set_secret("root.sql.password", &user.1).unwrap();
            if let Some((name, password)) = writer {
                config.set("root.sql.write_username", name).unwrap();
                config
                    .set_secret("root.sql.write_password", password)
                    .unwrap();
            }
            config
        })
    }

    pub(crate) async fn admin(&self) -> sqlx::PgPool {
        let options = sqlx::postgres::PgConnectOptions::new()
            .host("127.0.0.1")
            .port(self.port.parse().unwrap())
            .database(&self.database)
            .username(&self.admin.0)
            .password(&self.admin.1);
        sqlx::PgPool::connect_with(options).await.unwrap()
    }
}

/// A fixture whose sql entries go to the test server, as its writer.
pub(crate) fn writer_fixture() -> Fixture {
    let pg = pg();
    pg.fixture(&pg.writer, None, &[])
}

async fn count(db: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(db)
        .await
        .unwrap()
        .get(0)
}

/// `name(start_time, end_time, rows => n)`: `n` rows (forever when -1),
/// in batches of 1000 with a pause between them, keyed by nothing.
fn stream_of(name: &str) -> CachedFunction {
    CachedFunction::builder(name)
        .param("start_time", ParamType::Timestamp)
        .param("end_time", ParamType::Timestamp)
        .param_default("rows", ParamType::Int, Value::Int(10))
        // Not a timeseries: its result would be sorted before the write,
        // and an endless one never written.
        .backend("sql")
        .returns(series_schema())
        .compute(|_ctx, args| async move {
            let rows = args.i64("rows")?;
            let batches = futures::stream::iter(0..)
                .take_while(move |i| futures::future::ready(rows < 0 || i * 1000 < rows))
                .then(move |i: i64| async move {
                    if rows < 0 {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    let n = if rows < 0 {
                        1000
                    } else {
                        (rows - i * 1000).min(1000)
                    };
                    let times: Vec<i64> = (0..n).map(|j| (i * 1000 + j) * 1_000_000_000).collect();
                    let batch = RecordBatch::try_new(
                        series_schema(),
                        vec![
                            Arc::new(TimestampNanosecondArray::from(times)),
                            Arc::new(StringArray::from(vec!["s"; n as usize])),
                            Arc::new(Float64Array::from(vec![1.0; n as usize])),
                        ],
                    );
                    batch.map_err(Into::into)
                });
            let stream = datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                series_schema(),
                batches,
            );
            Ok(nuthatch::Computed::Stream(Box::pin(stream)))
        })
        .build()
        .unwrap()
}

/// Ten years of hours (many of the time index's page ranges), a month
/// in the middle replaced and a week upserted: each window read after
/// them gets exactly its rows, and fetches only them.
async fn windows_after_merges(f: &Fixture, admin: &sqlx::PgPool, name: &str) {
    const HOURS: i64 = 3652 * 24;
    let all = format!("SELECT count(*) FROM {name}('2001-01-01', '2010-12-31T23:00:00')");
    assert_eq!(f.int(&all).await, 2 * HOURS);
    f.reports();
    let index = sqlx::query("SELECT indexdef FROM pg_indexes WHERE tablename = $1")
        .bind(format!("{name}/"))
        .fetch_one(admin)
        .await
        .unwrap()
        .get::<String, _>(0);
    assert!(index.contains("USING brin (\"time\")"), "{index}");
    // Analyzed in the write: without statistics the planner would not
    // know the time column's order and would scan the table for a window.
    let analyzed =
        sqlx::query("SELECT correlation FROM pg_stats WHERE tablename = $1 AND attname = 'time'")
            .bind(format!("{name}/"))
            .fetch_one(admin)
            .await
            .unwrap()
            .get::<f32, _>(0);
    assert!(analyzed > 0.99, "{analyzed}");

    let june = "('2005-06-01', '2005-06-30T23:00:00'";
    let replaced =
        format!("SELECT count(*) FROM {name}{june}, revision => -1, replace_window => true)");
    assert_eq!(f.int(&replaced).await, 2 * 720);
    assert_outcome(&f.report(), Outcome::WindowReplaced);
    let upserted = format!(
        "SELECT count(*) FROM {name}('2008-01-01', '2008-01-07T23:00:00', revision => 2, upsert => true)"
    );
    assert_eq!(f.int(&upserted).await, 2 * 168);
    let report = f.report();
    assert_eq!(
        (report.updated, report.inserted),
        (Some(336), Some(0)),
        "{report}"
    );

    let sum = |window: &str| format!("SELECT CAST(sum(value) AS BIGINT) FROM {name}{window})");
    assert_eq!(f.int(&sum(june)).await, -1440);
    assert_eq!(f.report().rows_fetched, Some(1440));
    let january = "('2008-01-01', '2008-01-31T23:00:00'";
    assert_eq!(f.int(&sum(january)).await, 2 * 336 + (1488 - 336));
    assert_eq!(f.report().rows_fetched, Some(1488));
    let unchanged = 2 * HOURS - 1440 - 336;
    assert_eq!(
        revisions(f, name).await,
        [
            "-1:1440".to_string(),
            format!("1:{unchanged}"),
            "2:336".into()
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run `bash scripts/test`"]
async fn postgres_holds_entries_as_tables_safely() {
    let pg = pg();
    let admin = pg.admin().await;

    // Pushdown, merges, and hostile values, as the writer.
    let f = pg.fixture(&pg.writer, None, &[]);
    f.nuthatch.register(observations("obs_pg", "sql")).unwrap();
    stores_then_pushes_down(&f, "obs_pg").await;
    merges(&f, "obs_pg").await;
    f.nuthatch
        .register(observations("obs_years", "sql"))
        .unwrap();
    windows_after_merges(&f, &admin, "obs_years").await;
    let sql = format!(
        "SELECT count(*) FROM obs_pg('2020-01-01', '2020-01-01T23:00:00', namespace => '{}')",
        HOSTILE.replace('\'', "''")
    );
    assert_eq!(
        f.int(&sql).await,
        48,
        "a namespaced call computes its own entry"
    );
    assert_outcome(&f.report(), Outcome::Computed);
    // The namespace is a schema holding the key's table.
    let q = format!(
        "SELECT count(*) FROM pg_tables WHERE schemaname = '{}' AND tablename = 'obs_pg/'",
        HOSTILE.replace('\'', "''")
    );
    assert_eq!(count(&admin, &q).await, 1);
    assert_eq!(
        count(&admin, "SELECT count(*) FROM public.\"obs_pg/\"").await,
        72
    );
    drop(f);

    // The reader alone may not write; the error says how to fix it.
    let f = pg.fixture(&pg.reader, None, &[]);
    f.nuthatch.register(observations("obs_ro", "sql")).unwrap();
    let err = f
        .error("SELECT * FROM obs_ro('2020-01-01', '2020-01-02')")
        .await;
    assert!(
        err.contains("permission denied") && err.contains("write_username"),
        "{err}"
    );
    assert!(!err.contains(&pg.reader.1), "{err}");
    drop(f);
    // With a writer beside it, writes go as the writer and reads as the
    // reader.
    let f = pg.fixture(
        &pg.reader,
        Some(&pg.writer),
        &[("root.sql.max_connections", "2")],
    );
    f.nuthatch.register(observations("obs_ro", "sql")).unwrap();
    assert_eq!(
        f.int("SELECT count(*) FROM obs_ro('2020-01-01', '2020-01-01T23:00:00')")
            .await,
        48
    );
    let owner = sqlx::query("SELECT tableowner::text FROM pg_tables WHERE tablename = 'obs_ro/'")
        .fetch_one(&admin)
        .await
        .unwrap()
        .get::<String, _>(0);
    assert_eq!(owner, pg.writer.0);

    // Pools are bounded and reused: six reads at once, twice, on at most
    // two reader connections, the same ones both times.
    let readers = "SELECT pid FROM pg_stat_activity WHERE application_name = 'nuthatch' \
                   AND usename = 'nuthatch_reader' ORDER BY pid";
    let mut seen = Vec::new();
    for _ in 0..2 {
        let reads =
            (0..6).map(|_| f.int("SELECT count(*) FROM (SELECT * FROM obs_ro(NULL, NULL))"));
        for n in futures::future::join_all(reads).await {
            assert_eq!(n, 48);
        }
        let pids: Vec<i32> = sqlx::query(readers)
            .fetch_all(&admin)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(!pids.is_empty() && pids.len() <= 2, "{pids:?}");
        seen.push(pids);
    }
    assert_eq!(
        seen[0], seen[1],
        "the second round reused the first's connections"
    );
    f.reports();
    drop(f);

    // A server that drops the writer mid-load: the call fails saying so,
    // and the previous table is left whole.
    let f = pg.fixture(&pg.writer, None, &[]);
    f.nuthatch.register(stream_of("killed_pg")).unwrap();
    assert_eq!(
        f.int("SELECT count(*) FROM killed_pg(NULL, NULL, rows => 2500)")
            .await,
        2500
    );
    let write = f.error("SELECT count(*) FROM killed_pg(NULL, NULL, rows => -1, recompute => true, cache_mode => 'overwrite')");
    let kill = async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let killed = count(
                &admin,
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = 'nuthatch' AND query LIKE 'COPY%') AS k",
            )
            .await;
            if killed > 0 {
                break;
            }
        }
    };
    let (err, ()) = tokio::join!(write, kill);
    assert!(err.contains("the entry was not changed"), "{err}");
    assert!(!err.contains(&pg.writer.1), "{err}");
    // The old table is whole: the load's transaction was rolled back.
    // (Its metadata went before the write, as for every atomic format, so
    // the next call computes again.)
    assert_eq!(
        count(&admin, "SELECT count(*) FROM \"killed_pg/\"").await,
        2500
    );
    f.reports();

    // One that drops a reader mid-read: the read fails saying so.
    f.query("SELECT count(*) FROM killed_pg(NULL, NULL, rows => 400000, recompute => true, cache_mode => 'overwrite')")
        .await
        .unwrap();
    f.reports();
    let mut stream = after_first_batch(&f, "SELECT * FROM killed_pg(NULL, NULL)").await;
    let killed = count(
        &admin,
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'nuthatch' AND query LIKE 'COPY (SELECT%killed_pg%') AS k",
    )
    .await;
    assert_eq!(killed, 1, "the read is one COPY");
    let mut failure = None;
    while let Some(batch) = stream.next().await {
        if let Err(e) = batch {
            failure = Some(e.to_string());
            break;
        }
    }
    let err = failure.expect("the read fails");
    assert!(err.contains("lost") || err.contains("terminat"), "{err}");
    drop(stream);

    // A read dropped after its first batch leaves the rest of its COPY
    // unread; its connection is closed rather than handed back, and the
    // next reads get every row.
    for _ in 0..3 {
        drop(after_first_batch(&f, "SELECT * FROM killed_pg(NULL, NULL)").await);
    }
    let rows = f.int("SELECT count(time) FROM killed_pg(NULL, NULL)").await;
    assert_eq!(rows, 400_000);
}

/// The stream of `sql`'s rows once its first batch has arrived.
async fn after_first_batch(
    f: &Fixture,
    sql: &str,
) -> datafusion::execution::SendableRecordBatchStream {
    let frame = f.nuthatch.sql(sql).await.unwrap();
    let mut stream = frame.execute_stream().await.unwrap();
    stream.next().await.unwrap().unwrap();
    stream
}

fn python_sql(args: &[&str], root: &Path, pg: &Pg) -> String {
    let python = std::env::var("NUTHATCH_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/nuthatch_store.py");
    let out = Command::new(python)
        .arg(script)
        .arg(args[0])
        .arg(root)
        .args(&args[1..])
        .env("NUTHATCH_ROOT_SQL_DRIVER", "postgresql+psycopg2")
        .env("NUTHATCH_ROOT_SQL_HOST", "127.0.0.1")
        .env("NUTHATCH_ROOT_SQL_PORT", &pg.port)
        .env("NUTHATCH_ROOT_SQL_DATABASE", &pg.database)
        .env("NUTHATCH_ROOT_SQL_USERNAME", &pg.writer.0)
        .env("NUTHATCH_ROOT_SQL_PASSWORD", &pg.writer.1)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "python {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL and Python nuthatch: run `bash scripts/test`"]
async fn python_sql_entries_read_here_and_ours_read_in_python() {
    let pg = pg();
    let f = pg.fixture(&pg.writer, None, &[]);
    python_sql(&["write-sql"], &f.root(), &pg);
    // Python's offset of 1000 tells its rows from a recompute.
    let sql = "SELECT count(*), CAST(sum(value) AS BIGINT) FROM series(NULL, NULL, station => 'sql1', backend => 'sql')";
    let rows = crate::system::text_rows(&f.query(sql).await.unwrap());
    assert_eq!(rows, [["1440", "2476080"]]);
    assert_outcome(&f.report(), Outcome::Hit);
    assert_eq!(f.computes(), 0);

    let sql = "SELECT count(*) FROM series(NULL, NULL, station => 'rustsql', backend => 'sql')";
    assert_eq!(f.int(sql).await, 1440);
    let read = python_sql(&["read-sql", "rustsql", "1.0", "", ""], &f.root(), &pg);
    assert_eq!(read.lines().last(), Some("result 1440 1036080.0"), "{read}");

    // An entry extended here (its table grown in one transaction) reads
    // whole in Python: hours 96 (Jan 5) to 599 (Jan 25, 23:00), doubled.
    f.nuthatch
        .register(crate::python::windowed_series("sql"))
        .unwrap();
    let call = |to: &str| {
        format!(
            "SELECT count(*) FROM series('2020-01-05', '{to}', station => 'growsql', scale => 2)"
        )
    };
    f.int(&call("2020-01-15")).await;
    assert_eq!(f.int(&call("2020-01-25")).await, 21 * 24);
    let extended = f
        .reports()
        .into_iter()
        .any(|r| r.outcome == Outcome::Extended);
    assert!(extended);
    let sum: f64 = (96..=599).map(|h| h as f64 * 2.0).sum();
    let read = python_sql(&["read-sql", "growsql", "2", "", ""], &f.root(), &pg);
    assert_eq!(
        read.lines().last(),
        Some(format!("result 504 {sum:?}").as_str()),
        "{read}"
    );
}

/// A PostgreSQL cluster of one test's own, started with the suite's
/// script, which the test may stop and start again without disturbing the
/// suite's shared server; removed when dropped.
struct PrivatePg {
    pg: Pg,
    data: String,
    bin: String,
}

impl PrivatePg {
    fn start() -> PrivatePg {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/postgres.sh");
        let logs = tempfile::tempdir().unwrap();
        let output = Command::new("bash")
            .args([
                "-c",
                "source \"$1\" && start_postgres \"$2\" >/dev/null && \
                 printf 'PG_DATA=%s\\nPG_BIN=%s\\n' \"$pg_data\" \"$pg_bin\" && \
                 env | grep '^NUTHATCH_TEST_PG_'",
                "private-pg",
                script,
                &logs.path().display().to_string(),
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        let var = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("{name} in {text}"))
                .to_string()
        };
        let user = |role: &str| {
            (
                var(&format!("NUTHATCH_TEST_PG_{role}")),
                var(&format!("NUTHATCH_TEST_PG_{role}_PASSWORD")),
            )
        };
        PrivatePg {
            pg: Pg {
                port: var("NUTHATCH_TEST_PG_PORT"),
                database: var("NUTHATCH_TEST_PG_DATABASE"),
                writer: user("WRITER"),
                reader: user("READER"),
                admin: user("ADMIN"),
            },
            data: var("PG_DATA"),
            bin: var("PG_BIN"),
        }
    }

    /// `pg_ctl` with `args`, as the cluster's owner.
    fn pg_ctl(&self, args: &[&str]) {
        let pg_ctl = format!("{}/pg_ctl", self.bin);
        let mut command = match unsafe { libc::geteuid() } {
            0 => {
                let mut runuser = Command::new("runuser");
                runuser.args(["-u", "nuthatch-pg", "--", &pg_ctl]);
                runuser
            }
            _ => Command::new(&pg_ctl),
        };
        let cluster = format!("{}/cluster", self.data);
        let status = command.args(["-D", &cluster]).args(args).output().unwrap();
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
    }

    /// Stops the server at once, as a crash or a restart would.
    fn stop(&self) {
        self.pg_ctl(&["-m", "immediate", "stop"]);
    }

    fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=60",
            self.pg.port, self.data
        );
        let log = format!("{}/server.log", self.data);
        self.pg_ctl(&["-l", &log, "-w", "-o", &options, "start"]);
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let cluster = format!("{}/cluster", self.data);
        let pg_ctl = format!("{}/pg_ctl", self.bin);
        let _ = match unsafe { libc::geteuid() } {
            0 => Command::new("runuser")
                .args([
                    "-u",
                    "nuthatch-pg",
                    "--",
                    &pg_ctl,
                    "-D",
                    &cluster,
                    "-m",
                    "immediate",
                    "stop",
                ])
                .output(),
            _ => Command::new(&pg_ctl)
                .args(["-D", &cluster, "-m", "immediate", "stop"])
                .output(),
        };
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run `bash scripts/test`"]
async fn a_database_stopped_mid_write_fails_the_call_keeps_the_entry_and_recovers() {
    let private = PrivatePg::start();
    let pg = &private.pg;
    let f = pg.fixture(&pg.writer, None, &[]);
    f.nuthatch.register(stream_of("flowing")).unwrap();
    let stored = "SELECT count(*) FROM flowing(NULL, NULL, rows => 5000)";
    assert_eq!(f.int(stored).await, 5000);
    f.reports();
    // An endless recompute of the same entry, and the server stopped under it.
    let session = f.engine.session();
    let writing = tokio::spawn(async move {
        let sql = "SELECT count(*) FROM flowing(NULL, NULL, rows => -1, recompute => true, \
                   cache_mode => 'overwrite')";
        session.sql(sql).await?.collect().await
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !writing.is_finished(),
        "the write runs until the server stops"
    );
    private.stop();
    let error = writing.await.unwrap().unwrap_err().to_string();
    assert!(error.contains("on the root tier"), "{error}");
    assert!(error.contains("sql"), "{error}");
    assert!(!error.contains(&pg.writer.1), "no password: {error}");
    // Back up, the entry is the one stored before, whole, and the next
    // write goes through.
    private.start_again();
    assert_eq!(f.int(stored).await, 5000);
    assert_outcome(&f.report(), Outcome::Hit);
    let again = "SELECT count(*) FROM flowing(NULL, NULL, rows => 7000, recompute => true, \
                 cache_mode => 'overwrite')";
    assert_eq!(f.int(again).await, 7000);
    assert_outcome(&f.reports().pop().unwrap(), Outcome::Computed);
}

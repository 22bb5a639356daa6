//! Nothing computed twice, nothing lost silently: a second process waits
//! for the first's compute and reads it, a killed holder's lease is taken
//! over, `lease_wait` ends a wait as the session says, calls that would
//! wait for each other in a cycle fail one of them, a session dropped with
//! writes under way finishes them, and a write that panics says so.

use std::io::BufRead;

use futures::StreamExt;
use std::time::Duration;

use nuthatch::{MetadataRow, Outcome};

use crate::bodies::{ping_pong, slow};
use crate::coverage::rows;
use crate::parts::child;
use crate::support::{Fixture, assert_outcome, example_binary};

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
    f.nuthatch.register(slow(4000, false)).unwrap();
    let window = "'2020-03-01', '2020-03-02'";
    let sql = format!("SELECT count(*) FROM slow({window})");
    let session = f.engine.session();
    session.register(slow(4000, false)).unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_waiting_for_each_other_fail_one_and_name_the_cycle() {
    let f = Fixture::new();
    let first = f.engine.session();
    let second = f.engine.session();
    for session in [&first, &second, &f.nuthatch] {
        session.register(ping_pong("ping", "pong", 400)).unwrap();
        session.register(ping_pong("pong", "ping", 400)).unwrap();
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

#[test]
fn processes_waiting_for_each_other_fail_one_and_name_the_cycle() {
    let f = Fixture::new();
    let root = f.root().display().to_string();
    let start = |first: &str| {
        std::process::Command::new(example_binary("test_child"))
            .args(["ping-pong", &root, first])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let (ping, pong) = (start("ping"), start("pong"));
    let said: Vec<String> = [ping, pong]
        .into_iter()
        .map(|process| {
            let output = process.wait_with_output().unwrap();
            String::from_utf8_lossy(&output.stdout).to_string()
        })
        .collect();
    let failed: Vec<&String> = said.iter().filter(|s| s.starts_with("failed")).collect();
    assert_eq!(failed.len(), 1, "{said:?}");
    // Both see the cycle; the one whose lease sorts first gives way.
    assert!(said[0].starts_with("failed"), "{said:?}");
    assert!(
        said[0].contains("calls wait for each other in a cycle: ping: ping/n_1 -> pong: pong/n_1 -> ping: ping/n_1"),
        "{said:?}"
    );
    assert!(said[1].starts_with("ok"), "{said:?}");
    assert!(
        !f.files().iter().any(|file| file.ends_with(".lease")),
        "{:?}",
        f.files()
    );
}

/// `boom()`: a body whose stream panics after its first batch, when
/// `panics`; otherwise three batches of `series_rows`.
fn boom(panics: bool) -> nuthatch::CachedFunction {
    nuthatch::CachedFunction::builder("boom")
        .returns(crate::bodies::series_schema())
        .compute(move |_ctx, _args| async move {
            let batches = futures::stream::iter(0..3).map(move |i| {
                if panics && i == 1 {
                    panic!("the body hit a bug");
                }
                crate::bodies::series_rows(vec![i * 3_600_000_000_000], "s", 1.0)
            });
            let stream = datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                crate::bodies::series_schema(),
                batches,
            );
            Ok(nuthatch::Computed::Stream(Box::pin(stream)))
        })
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_panics_fails_with_the_panic_and_stores_nothing() {
    let f = Fixture::new();
    f.nuthatch.register(boom(true)).unwrap();
    let error = f.error("SELECT count(*) FROM boom()").await;
    assert!(error.contains("the body hit a bug"), "{error}");
    assert!(!error.contains("cancelled"), "{error}");
    // Its report, and nuthatch.calls, say it failed and why. The report is
    // made when the call's plan is dropped, which the error can outrun.
    let mut seen = Vec::new();
    for _ in 0..100 {
        let sql = "SELECT outcome, error FROM nuthatch.calls WHERE function = 'boom'";
        seen = rows(&f, sql).await;
        if !seen.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0][0], "failed");
    assert!(seen[0][1].contains("the body hit a bug"), "{seen:?}");
    assert!(
        !f.files().iter().any(|file| file.contains("boom")),
        "{:?}",
        f.files()
    );
    // Fixed, the next call computes and stores it.
    f.nuthatch.register(boom(false)).unwrap();
    assert_eq!(f.int("SELECT count(*) FROM boom()").await, 3);
    let last = f.reports().pop().unwrap();
    assert_outcome(&last, Outcome::Computed);
    assert_eq!(last.rows, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_dropped_with_writes_under_way_finishes_them() {
    let f = Fixture::new();
    let session = f.engine.session();
    session.register(slow(0, false)).unwrap();
    session
        .sql("CREATE CACHED FUNCTION big() AS SELECT value AS id FROM generate_series(1, 3000000)")
        .await
        .unwrap();
    // The query stops after one batch; the write goes on in the background.
    let mut stream = session
        .sql("SELECT * FROM big() LIMIT 1")
        .await
        .unwrap()
        .execute_stream()
        .await
        .unwrap();
    let _ = stream.next().await.unwrap().unwrap();
    drop(stream);
    drop(session);
    // Dropping the session waited for the write: the entry is there.
    assert!(f.root().join("big/.parquet").is_file(), "{:?}", f.files());
    assert_eq!(f.int("SELECT count(*) FROM big()").await, 3_000_000);
    assert_outcome(&f.report(), Outcome::Hit);
}

/// Sets the modification time of the file or folder at `path` to a day ago.
fn age(path: &std::path::Path) {
    let day_ago = std::time::SystemTime::now() - Duration::from_secs(86_400 + 60);
    let file = std::fs::File::open(path).unwrap();
    file.set_modified(day_ago).unwrap();
}

/// `(kind, path, action)` of what a vacuum statement found (columns
/// tier, kind, path, bytes, modified, action), sorted.
async fn vacuumed(f: &Fixture, sql: &str) -> Vec<[String; 3]> {
    let mut found: Vec<[String; 3]> = rows(f, sql)
        .await
        .into_iter()
        .map(|row| [row[1].clone(), row[2].clone(), row[5].clone()])
        .collect();
    found.sort();
    found
}

/// The files under `f`'s root whose path starts with `prefix`.
fn files_starting(f: &Fixture, prefix: &str) -> Vec<String> {
    f.files()
        .into_iter()
        .filter(|file| file.starts_with(prefix))
        .collect()
}

#[cfg(feature = "delta")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuum_removes_what_killed_and_superseded_writes_left_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let mirror = dir.path().join("mirror");
    let f = Fixture::with_config(dir, |root| {
        let mut config = nuthatch::Config::with_root(root.display().to_string());
        config.mirrors = vec![(
            "mirror-team".into(),
            nuthatch::TierConfig::new(mirror.display().to_string()),
        )];
        config
    });
    f.nuthatch.register(slow(0, false)).unwrap();
    f.nuthatch.register(crate::bodies::endless(false)).unwrap();
    // A Delta entry overwritten twice, then by a process killed before it
    // could commit: superseded files, files no version has, a dead lease.
    for _ in 0..3 {
        f.query("SELECT count(*) FROM endless(recompute => true, cache_mode => 'overwrite')")
            .await
            .unwrap();
    }
    let before = files_starting(&f, "endless/").len();
    let mut killed = std::process::Command::new(example_binary("test_child"))
        .args(["overwrite-endlessly", &f.root().display().to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    while files_starting(&f, "endless/").len() <= before + 1 {
        std::thread::sleep(Duration::from_millis(50));
    }
    killed.kill().unwrap();
    killed.wait().unwrap();
    // An entry whose metadata is gone (its data is an orphan), a staged
    // file, an empty folder.
    f.int("SELECT count(*) FROM series(NULL, NULL)").await;
    let root = f.root();
    let data = files_starting(&f, "series/").remove(0);
    std::fs::remove_dir_all(root.join("nuthatch_metadata.nut/series")).unwrap();
    age(&root.join(&data));
    std::fs::write(root.join("series/other.parquet#7"), b"half a write").unwrap();
    age(&root.join("series/other.parquet#7"));
    std::fs::create_dir_all(root.join("left/empty")).unwrap();
    age(&root.join("left/empty"));
    // A live holder's lease, and what it writes, are never touched.
    let mut live = holding_child(&f, "'2020-08-01', '2020-08-01'");
    // The mirror's orphan is not ours to list.
    std::fs::create_dir_all(mirror.join("g")).unwrap();
    std::fs::write(mirror.join("g/1.parquet"), b"theirs").unwrap();

    let explained = vacuumed(&f, "EXPLAIN VACUUM").await;
    let expected = |kind: &str, path: &str, action: &str| {
        [kind.to_string(), path.to_string(), action.to_string()]
    };
    assert!(explained.contains(&expected("data without metadata", &data, "would remove")));
    assert!(explained.contains(&expected(
        "dead lease",
        "nuthatch_metadata.nut/endless/delta.lease",
        "would remove"
    )));
    assert!(explained.contains(&expected(
        "staged file",
        "series/other.parquet#7",
        "would remove"
    )));
    assert!(explained.contains(&expected("empty folder", "left/empty", "would remove")));
    // Superseded Delta files are younger than a day: not yet.
    assert!(
        !explained
            .iter()
            .any(|[kind, ..]| kind == "unreferenced file"),
        "{explained:?}"
    );
    assert!(
        root.join("series/other.parquet#7").exists(),
        "a dry run removes nothing"
    );

    let swept = vacuumed(&f, "VACUUM OLDER THAN '0s'").await;
    let unreferenced: Vec<&String> = (swept.iter())
        .filter(|[kind, ..]| kind == "unreferenced file")
        .map(|[_, path, _]| path)
        .collect();
    assert!(unreferenced.len() >= 3, "{swept:?}");
    assert!(
        unreferenced
            .iter()
            .all(|path| path.starts_with("endless/.delta/")),
        "{swept:?}"
    );
    for [kind, path, action] in &swept {
        let kept = kind == "data without metadata";
        let said = if kept {
            "kept: VACUUM ORPHANS removes it"
        } else {
            "removed"
        };
        assert_eq!(action, said, "{kind} {path}");
        assert!(
            !path.starts_with("slow") && !path.contains("/slow/"),
            "{path}"
        );
        assert!(!path.starts_with("g/"), "{path}");
    }
    assert!(!root.join("series/other.parquet#7").exists());
    assert!(!root.join("left").exists());
    assert!(root.join(&data).exists());
    // The live lease holds: a call still waits for its holder.
    f.query("SET nuthatch.lease_wait = '1s'").await.unwrap();
    let error = f
        .error("SELECT count(*) FROM slow('2020-08-01', '2020-08-01')")
        .await;
    assert!(
        error.contains(&format!(":{} on the root tier", live.id())),
        "{error}"
    );
    // The overwritten entry still reads, at its last version.
    assert_eq!(f.int("SELECT count(*) FROM endless()").await, 100_000);
    assert_outcome(&f.reports().pop().unwrap(), Outcome::Hit);

    let orphans = vacuumed(&f, "VACUUM ORPHANS OLDER THAN '0s'").await;
    assert!(
        orphans.contains(&expected("data without metadata", &data, "removed")),
        "{orphans:?}"
    );
    assert!(!root.join(&data).exists());
    assert!(
        mirror.join("g/1.parquet").exists(),
        "mirrors are never touched"
    );
    live.kill().unwrap();
    live.wait().unwrap();
}

/// The record of `function`'s entry `t` stored with `backend` under `f`'s
/// root, and where it is.
fn record(f: &Fixture, function: &str, backend: &str) -> (std::path::PathBuf, MetadataRow) {
    let path = f.root().join(format!(
        "nuthatch_metadata.nut/{function}/t/{backend}.parquet"
    ));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}: {:?}", f.files()));
    (path, MetadataRow::decode(bytes.into()).unwrap())
}

/// `state, rows` of `function`'s entry in `nuthatch.caches`, and `count(*),
/// min(v), max(v)` read from it.
async fn as_read(f: &Fixture, function: &str) -> (Vec<String>, Vec<String>) {
    let listed = rows(
        f,
        &format!("SELECT state, rows FROM nuthatch.caches WHERE function = '{function}'"),
    )
    .await;
    let read = rows(
        f,
        &format!(
            "SELECT count(*), min(v), max(v) FROM {function}('t', 0, cache_mode => 'read_only_strict')"
        ),
    )
    .await;
    (listed[0].clone(), read[0].clone())
}

/// A replacement puts a pending record right before it publishes; a
/// process killed then leaves it. It reads as the old entry while the data
/// still bears the old data's stamp, and as the new entry once it does not
/// (Parquet). A Zarr replacement's pending record reads the staged copy,
/// whatever the copy into place reached; vacuum leaves that copy while a
/// record reads it, and the next replacement removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_killed_before_its_record_is_confirmed_reads_as_the_old_entry_or_the_new() {
    use nuthatch::crates::catalog::metastore::{PENDING, Replacing};
    let f = Fixture::new();
    let catalog = std::sync::Arc::clone(f.engine.catalog());
    let key = nuthatch::CacheKey::stored("replaced_parquet/t").unwrap();
    for backend in ["parquet", "zarr"] {
        let function = format!("replaced_{backend}");
        let dimensions = if backend == "zarr" {
            ", dimensions = (id)"
        } else {
            ""
        };
        f.query(&format!(
            "CREATE CACHED FUNCTION {function}(tag VARCHAR, v BIGINT) \
             WITH (cache_args = (tag), backend = '{backend}'{dimensions}) \
             AS SELECT value AS id, $v AS v FROM generate_series(1, $v * 10)"
        ))
        .await
        .unwrap();
        let write = |v: u64| {
            format!(
                "SELECT count(*) FROM {function}('t', {v}, recompute => true, cache_mode => 'overwrite')"
            )
        };
        f.query(&write(1)).await.unwrap();
        let (path, old) = record(&f, &function, backend);
        f.query(&write(2)).await.unwrap();
        let (_, new) = record(&f, &function, backend);
        let pending = |replacing: Replacing| MetadataRow {
            state: PENDING.into(),
            replacing: Some(replacing),
            ..new.clone()
        };
        let put = |row: MetadataRow| std::fs::write(&path, row.encode().unwrap()).unwrap();
        let text = |values: &[&str]| values.iter().map(|v| v.to_string()).collect::<Vec<_>>();
        if backend == "parquet" {
            let store = catalog.backend("parquet").unwrap();
            let at = catalog.root().entry_location(&**store, &key, None);
            let stamp = store.stamp(&at).await.unwrap();
            assert!(stamp.is_some());
            // Killed before publishing: the data bears the stamp the old
            // record vouches for (here the new data's, to tell them apart).
            put(pending(Replacing {
                stamp: stamp.clone(),
                previous: Box::new(old.clone()),
                staged: None,
            }));
            let (listed, _) = as_read(&f, &function).await;
            assert_eq!(listed, text(&["confirmed", "10"]), "the old record holds");
            // Killed after publishing: the data bears another stamp.
            put(pending(Replacing {
                stamp: Some("\"the old data\"".into()),
                previous: Box::new(old.clone()),
                staged: None,
            }));
            let (listed, read) = as_read(&f, &function).await;
            assert_eq!(listed, text(&["confirmed", "20"]), "the new record holds");
            assert_eq!(read, text(&["20", "2", "2"]));
            continue;
        }
        // Zarr, killed while copying version 3 into place: the staged copy
        // is whole, the store in place is not.
        f.query(&write(3)).await.unwrap();
        let (_, third) = record(&f, &function, backend);
        let root = f.root();
        let (data, staged) = (
            root.join(format!("{function}/t.zarr")),
            format!("{function}/t.zarr.next/killed"),
        );
        copy_folder(&data, &root.join(&staged));
        std::fs::remove_dir_all(data.join("v")).unwrap();
        put(MetadataRow {
            state: PENDING.into(),
            replacing: Some(Replacing {
                stamp: None,
                previous: Box::new(new.clone()),
                staged: Some(staged.clone()),
            }),
            ..third
        });
        let (listed, read) = as_read(&f, &function).await;
        assert_eq!(listed, text(&["confirmed", "30"]));
        assert_eq!(read, text(&["30", "3", "3"]));
        // A staged copy no record reads is a killed write's; this one stays.
        let unread = root.join(format!("{function}/t.zarr.next/unread"));
        copy_folder(&root.join(&staged), &unread);
        let swept = vacuumed(&f, "VACUUM OLDER THAN '0s'").await;
        let staged_swept: Vec<&String> = (swept.iter())
            .filter(|[kind, ..]| kind == "staged file")
            .map(|[_, path, _]| path)
            .collect();
        assert_eq!(
            staged_swept,
            [&format!("{function}/t.zarr.next/unread")],
            "{swept:?}"
        );
        assert!(root.join(&staged).exists() && !unread.exists());
        // The next replacement confirms, and the staged copies go.
        f.query(&write(4)).await.unwrap();
        assert_eq!(as_read(&f, &function).await.1, text(&["40", "4", "4"]));
        assert!(!root.join(format!("{function}/t.zarr.next")).exists());
    }
}

fn copy_folder(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        match entry.file_type().unwrap().is_dir() {
            true => copy_folder(&entry.path(), &target),
            false => {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
}

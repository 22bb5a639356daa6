//! `-c`, `-f`, pipes and the management commands.

use std::path::Path;
use std::process::{Command, Output};

use super::*;

#[test]
fn definitions_from_the_project_file_are_cached_in_the_embedded_root() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("functions.sql"), FUNCTIONS).unwrap();
    std::fs::write(
        dir.path().join("nuthatch.toml"),
        "[nuthatch]\ndefinitions = [\"functions.sql\"]\n",
    )
    .unwrap();
    let sql = "SELECT count(*) AS n FROM hourly('2020-01-02', '2020-01-03', step => 2)";

    let first = nuthatch(dir.path(), &["-c", sql]);
    assert!(first.status.success(), "{}", stderr(&first));
    let out = stdout(&first);
    assert!(out.contains("| 48 |"), "{out}");
    assert!(
        out.contains("nuthatch: hourly: computed root parquet hourly/2 rows=48"),
        "{out}"
    );
    assert!(out.contains("1 row(s) fetched."), "{out}");
    assert!(
        dir.path().join(".nuthatch/hourly/2.parquet").is_file(),
        "embedded root in the working directory"
    );

    let second = nuthatch(dir.path(), &["-c", sql]);
    let out = stdout(&second);
    assert!(
        out.contains("nuthatch: hourly: hit root parquet hourly/2 rows=48"),
        "{out}"
    );
}

#[test]
fn files_run_in_order_and_the_first_error_stops_with_a_failure_code() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("functions.sql"), FUNCTIONS).unwrap();
    std::fs::write(
        dir.path().join("queries.sql"),
        "SELECT count(*) FROM hourly(NULL, NULL);\nSELECT * FROM hourly(NULL, NULL, stpe => 3);\nSELECT 'never';",
    )
    .unwrap();
    let output = nuthatch(
        dir.path(),
        &[
            "-f",
            "functions.sql",
            "-f",
            "queries.sql",
            "--root",
            "cache",
        ],
    );
    assert!(!output.status.success());
    assert!(stdout(&output).contains("| 240 "), "{}", stdout(&output));
    assert!(!stdout(&output).contains("never"));
    assert!(
        stderr(&output).contains("hourly has no parameter 'stpe'"),
        "{}",
        stderr(&output)
    );
    assert!(dir.path().join("cache/hourly/1.parquet").is_file());
}

#[test]
fn csv_output_and_quiet_mode() {
    let dir = tempfile::tempdir().unwrap();
    let output = nuthatch(
        dir.path(),
        &["-q", "--format", "csv", "-c", "SELECT 1 AS a, 'x' AS b"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "a,b\n1,x\n");
}

#[test]
fn sql_piped_into_stdin_runs_like_a_file_and_stops_at_the_first_error() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let mut child = command(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT 40 + 2\n  AS answer;\n\\timing off\nSELECT 7 AS seven;\nSELECT * FROM nope();\nSELECT 3 AS never;\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success(), "an error fails the run");
    let out = stdout(&output);
    assert!(out.contains("| 42     |"), "{out}");
    assert!(out.contains("Timing is off."), "{out}");
    assert!(
        out.contains("| 7     |\n+-------+\n1 row(s) fetched.\n"),
        "\\timing off drops the elapsed time: {out}"
    );
    assert!(!out.contains("never"), "{out}");
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn every_format_prints_only_data_on_stdout_and_notes_on_stderr() {
    let dir = project("");
    let sql = "SELECT step, count(*) AS n FROM hourly('2020-01-02', '2020-01-02T02:00:00', step => 3) GROUP BY step";
    let expected = [
        ("csv", "step,n\n3,3\n"),
        ("tsv", "step\tn\n3\t3\n"),
        ("json", "[{\"step\":3,\"n\":3}]\n"),
        ("nd-json", "{\"step\":3,\"n\":3}\n"),
    ];
    for (format, data) in expected {
        let output = nuthatch(dir.path(), &["--format", format, "-c", sql]);
        assert!(output.status.success(), "{}", stderr(&output));
        assert_eq!(stdout(&output), data, "{format}");
        let err = stderr(&output);
        assert!(err.contains("nuthatch: hourly: "), "{format}: {err}");
        assert!(err.contains("1 row(s) fetched."), "{format}: {err}");
        assert!(
            !err.contains("computing ·"),
            "no progress line off a terminal: {err}"
        );
    }
    // An empty result still names its columns.
    let output = nuthatch(
        dir.path(),
        &["--format", "csv", "-c", "SELECT 1 AS a WHERE false"],
    );
    assert_eq!(stdout(&output), "a\n");
    // Commands work in -c too, and change the format from there on.
    let output = nuthatch(
        dir.path(),
        &[
            "-q",
            "-c",
            "SELECT 1 AS a;\n\\pset format nd-json\nSELECT 2 AS a;",
        ],
    );
    assert_eq!(
        stdout(&output),
        "+---+\n| a |\n+---+\n| 1 |\n+---+\n{\"a\":2}\n"
    );
}

#[test]
fn syntax_errors_are_one_line_that_says_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let output = nuthatch(dir.path(), &["-c", "SELEC 1"]);
    assert!(!output.status.success());
    assert_eq!(
        stderr(&output),
        "Error: SQL syntax error: Expected: an SQL statement, found: SELEC at Line: 1, Column: 1\n"
    );
}

#[test]
fn the_readme_sql_files_define_and_run_the_workflow() {
    let dir = tempfile::tempdir().unwrap();
    // Read at run time, not compile time: a target dir shared between two
    // checkouts keeps test binaries built in the other one.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo test");
    let examples = Path::new(&manifest_dir).join("../examples");
    let functions = examples.join("readme_functions.sql");
    let sql =
        "SELECT count(DISTINCT time) AS steps, count(*) FILTER (WHERE air IS NULL) AS warmup \
               FROM agg_and_clip('2013-01-01', '2013-06-01', agg_days => 3)";
    let output = nuthatch(dir.path(), &["-f", functions.to_str().unwrap(), "-c", sql]);
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(
        out.contains("| 608   | 2650   |"),
        "608 steps, 2 null steps per grid point: {out}"
    );
    assert!(
        out.contains("my_first_cache: computed root parquet my_first_cache/ rows=3869000"),
        "{out}"
    );
    assert!(
        out.contains("agg_and_clip: computed root parquet agg_and_clip/3 rows=805600"),
        "{out}"
    );
}

#[test]
fn the_tiers_example_shows_local_copies_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo test");
    let script = Path::new(&manifest_dir).join("../examples/tiers.sql");
    let output = nuthatch(dir.path(), &["-f", script.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    let reports: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("nuthatch: hourly: "))
        .map(|l| l.split(" rows=").next().unwrap())
        .collect();
    assert_eq!(
        reports,
        [
            "computed root parquet hourly/north",
            "hit root->local parquet hourly/north",
            "hit local parquet hourly/north",
            "hit root parquet hourly/north",
            "hit memory hourly/north",
            "hit root->local parquet hourly/north",
        ],
        "{out}"
    );
    let local = dir.path().join("local/hourly");
    assert!(local.join("2020-01-02_2020-01-01_north.parquet").is_file());
    assert!(local.join("None_None_north.parquet").is_file());
}

/// Runs `command` with logs on, reads its log until `marker` has appeared
/// `times` times, then kills it (SIGKILL: nothing of it runs after).
fn kill_after_log(mut command: Command, log_filter: &str, marker: &str, times: usize) {
    use std::io::{BufRead, BufReader};
    let mut child = command
        .env("NUTHATCH_LOG", log_filter)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = String::new();
    let mut seen = 0;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains(marker) {
            seen += 1;
            if seen == times {
                break;
            }
        }
    }
    assert_eq!(seen, times, "'{marker}' never showed {times} times: {log}");
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success());
}

#[test]
fn a_compute_killed_midway_leaves_no_entry() {
    let dir = tempfile::tempdir().unwrap();
    // Long enough that the kill below always lands while it computes.
    let slow = "CREATE CACHED FUNCTION slow() AS \
                SELECT sum(a.value * b.value) AS total \
                FROM generate_series(1, 1000000) a CROSS JOIN generate_series(1, 1000000) b;";
    let mut started = command(dir.path());
    started.args(["-c", slow, "-c", "SELECT * FROM slow();"]);
    kill_after_log(started, "info", "computing", 1);

    // The killed compute's lease stays: the next call takes it over.
    let left = files_under(&dir.path().join(".nuthatch"));
    assert!(
        left.iter().all(|f| {
            f == "nuthatch_metadata.nut/exists.nut"
                || f == "nuthatch_metadata.nut/slow/parquet.lease"
        }),
        "nothing of the entry is on the store: {left:?}"
    );
    let again = nuthatch(
        dir.path(),
        &[
            "-c",
            slow,
            "-c",
            "SELECT * FROM slow(cache_mode => 'read_only_strict');",
        ],
    );
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("no cache entry slow on the")
            && stderr(&again).contains("root tier at"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn definitions_run_from_a_file_print_no_empty_table() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("functions.sql"), FUNCTIONS).unwrap();
    let output = nuthatch(dir.path(), &["-f", "functions.sql"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(!out.contains("++"), "no empty table: {out}");
    assert!(out.contains("0 row(s) fetched."), "{out}");
    assert!(!out.contains("1 row(s) fetched."), "{out}");
}

/// Files under `root`, relative, sorted; staged uploads included.
fn files_under(root: &Path) -> Vec<String> {
    let mut left = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                folders.push(entry.path());
            } else {
                let path = entry.path();
                left.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    left.sort();
    left
}

/// About 60 MB of Parquet that does not compress, so the write goes up in
/// several parts.
const NOISE: &str = "CREATE CACHED FUNCTION noise() AS \
                     SELECT random() AS a, random() AS b FROM generate_series(1, 4000000);";

/// Starts `noise()` and kills the process once the write has uploaded
/// parts of the entry.
fn kill_during_the_write(mut command: Command) {
    command.args(["-c", NOISE, "-c", "SELECT count(*) FROM noise();"]);
    kill_after_log(command, "info,nuthatch_backends=debug", "uploading", 2);
}

fn strict_read_says_no_entry(mut command: Command) {
    let again = command
        .args([
            "-c",
            NOISE,
            "-c",
            "SELECT count(*) FROM noise(cache_mode => 'read_only_strict');",
        ])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("no cache entry noise on the")
            && stderr(&again).contains("root tier at"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn a_write_killed_midway_leaves_nothing_visible_and_the_next_write_tidies_up() {
    let dir = tempfile::tempdir().unwrap();
    kill_during_the_write(command(dir.path()));
    let root = dir.path().join(".nuthatch");
    let left = files_under(&root);
    assert!(
        left.iter().all(|f| {
            f.starts_with("noise/.parquet#") || f == "nuthatch_metadata.nut/noise/parquet.lease"
        }),
        "at most a staged upload, which no reader sees, and the lease: {left:?}"
    );
    strict_read_says_no_entry(command(dir.path()));

    let done = nuthatch(
        dir.path(),
        &["-c", NOISE, "-c", "SELECT count(*) FROM noise();"],
    );
    assert!(done.status.success(), "{}", stderr(&done));
    assert!(stdout(&done).contains("| 4000000 "), "{}", stdout(&done));
    assert_eq!(
        files_under(&root),
        vec![
            "noise/.parquet",
            "nuthatch_metadata.nut/exists.nut",
            "nuthatch_metadata.nut/noise/parquet.parquet",
        ],
        "what the killed write staged is gone, and its lease was taken over and released"
    );
}

#[test]
#[ignore = "needs an S3 server: run bash scripts/test"]
fn a_multipart_upload_killed_midway_is_never_visible_on_s3() {
    let endpoint = std::env::var("NUTHATCH_TEST_S3_ENDPOINT").expect("run by bash scripts/test");
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("killed-{}", std::process::id());
    let on_s3 = |dir: &Path| {
        let mut command = command(dir);
        command
            .env(
                "NUTHATCH_ROOT_FILESYSTEM",
                format!("s3://nuthatch-test/{prefix}"),
            )
            .env("NUTHATCH_ROOT_FILESYSTEM_OPTIONS_ENDPOINT", &endpoint)
            .env("NUTHATCH_ROOT_FILESYSTEM_OPTIONS_ACCESS_KEY_ID", "testing")
            .env(
                "NUTHATCH_ROOT_FILESYSTEM_OPTIONS_SECRET_ACCESS_KEY",
                "testing",
            )
            .env("NUTHATCH_ROOT_FILESYSTEM_OPTIONS_REGION", "us-east-1")
            .env("NUTHATCH_ROOT_FILESYSTEM_OPTIONS_ALLOW_HTTP", "true");
        command
    };
    kill_during_the_write(on_s3(dir.path()));
    strict_read_says_no_entry(on_s3(dir.path()));
    // What the bucket holds: no object of the entry (only the killed
    // writer's lease, which the next call takes over), and the upload the
    // kill interrupted, incomplete and so invisible.
    let python = std::env::var("NUTHATCH_TEST_PYTHON").expect("run by bash scripts/test");
    let listing = Command::new(python)
        .args(["-c", LIST_BUCKET, &endpoint, &prefix])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listing.stdout).to_string();
    assert!(
        listing.status.success(),
        "{}",
        String::from_utf8_lossy(&listing.stderr)
    );
    let lease = format!("objects ['{prefix}/nuthatch_metadata.nut/noise/parquet.lease']");
    assert!(listed.contains(&lease), "{listed}");
    assert!(
        listed.contains(&format!("uploads ['{prefix}/noise/.parquet']")),
        "{listed}"
    );

    // Vacuum lists the upload and the dead lease, then aborts and removes
    // them: the bucket holds nothing of the killed write.
    let dry = on_s3(dir.path())
        .args(["vacuum", "--dry-run", "--older-than", "0s"])
        .output()
        .unwrap();
    assert!(dry.status.success(), "{}", stderr(&dry));
    let said = stdout(&dry);
    assert!(
        said.contains("incomplete upload") && said.contains("noise/.parquet"),
        "{said}"
    );
    assert!(
        said.contains("dead lease") && said.contains("would remove"),
        "{said}"
    );
    let done = on_s3(dir.path())
        .args(["vacuum", "--older-than", "0s"])
        .output()
        .unwrap();
    assert!(done.status.success(), "{}", stderr(&done));
    assert_eq!(
        stdout(&done).matches("| removed").count(),
        2,
        "{}",
        stdout(&done)
    );
    assert!(!stderr(&done).contains("testing"), "no secret in the log");
    let listing = Command::new(std::env::var("NUTHATCH_TEST_PYTHON").unwrap())
        .args(["-c", LIST_BUCKET, &endpoint, &prefix])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listing.stdout).to_string();
    assert!(listed.contains("objects []\nuploads []"), "{listed}");
}

/// Prints the objects and incomplete uploads under a prefix of the test
/// bucket: `python -c LIST_BUCKET <endpoint> <prefix>`.
const LIST_BUCKET: &str = "import sys, boto3\n\
     s3 = boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='testing', \
                       aws_secret_access_key='testing', region_name='us-east-1')\n\
     objects = s3.list_objects_v2(Bucket='nuthatch-test', Prefix=sys.argv[2]).get('Contents', [])\n\
     uploads = s3.list_multipart_uploads(Bucket='nuthatch-test', Prefix=sys.argv[2]).get('Uploads', [])\n\
     print('objects', sorted(o['Key'] for o in objects))\n\
     print('uploads', sorted(u['Key'] for u in uploads))";

/// `nuthatch` in `dir` with the `team` folder as a read-only mirror.
fn with_mirror(dir: &Path, team: &Path, args: &[&str]) -> Output {
    command(dir)
        .env("NUTHATCH_MIRROR_FILESYSTEM", team)
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn management_commands_list_delete_import_and_print_config() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path();
    std::fs::write(project.join("functions.sql"), FUNCTIONS).unwrap();
    std::fs::write(
        project.join("nuthatch.toml"),
        "[nuthatch]\ndefinitions = [\"functions.sql\"]\n",
    )
    .unwrap();
    let team = project.join("team");
    let call = |step: u32| format!("SELECT count(*) FROM hourly(NULL, NULL, step => {step})");
    let team_root = team.display().to_string();
    for step in [1, 2] {
        let made = nuthatch(project, &["--root", &team_root, "-c", &call(step)]);
        assert!(made.status.success(), "{}", stderr(&made));
    }
    let made = nuthatch(project, &["-c", &call(3)]);
    assert!(made.status.success(), "{}", stderr(&made));
    let team_files = files_under(&team);

    let listed = with_mirror(project, &team, &["list", "hourly", "--format", "csv"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    // Sizes depend on the Parquet writer: the first seven columns exactly,
    // then a positive size.
    let out = stdout(&listed);
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split(',').collect()).collect();
    let firsts: Vec<String> = lines.iter().map(|l| l[..7].join(",")).collect();
    assert_eq!(
        firsts,
        [
            "tier,function,key,namespace,version,backend,rows",
            "mirror,hourly,hourly/1,,a,parquet,240",
            "mirror,hourly,hourly/2,,a,parquet,240",
            "root,hourly,hourly/3,,a,parquet,240",
        ]
    );
    assert!(
        lines[1..]
            .iter()
            .all(|l| l[7].parse::<u64>().is_ok_and(|n| n > 0)),
        "{out}"
    );
    let none = with_mirror(project, &team, &["list", "nothing"]);
    assert_eq!(stdout(&none), "No cache entries found.\n");

    // delete: a dry run lists and keeps; without a terminal it will not
    // guess; mirrors are never its business.
    let dry = with_mirror(project, &team, &["delete", "hourly", "--dry-run"]);
    let out = stdout(&dry);
    assert!(
        out.contains("| root | hourly/3 |") && !out.contains("mirror"),
        "{out}"
    );
    assert!(out.contains("Dry run: 1 entry would be deleted."), "{out}");
    assert!(project.join(".nuthatch/hourly/3.parquet").is_file());
    let unasked = with_mirror(project, &team, &["delete", "hourly"]);
    assert!(!unasked.status.success());
    assert!(
        stderr(&unasked).contains("pass --yes"),
        "{}",
        stderr(&unasked)
    );
    let mirror = with_mirror(
        project,
        &team,
        &["delete", "hourly/*", "--tier", "mirror", "--yes"],
    );
    assert!(!mirror.status.success());
    assert!(
        stderr(&mirror).contains("all on mirrors, which nuthatch reads and never changes"),
        "{}",
        stderr(&mirror)
    );

    // import: from the configured mirror, then from a location given
    // directly, where everything is already in root.
    let imported = with_mirror(
        project,
        &team,
        &["import", "hourly/1", "--from", "mirror", "--yes"],
    );
    assert!(imported.status.success(), "{}", stderr(&imported));
    assert!(
        stdout(&imported).contains("Imported 1 entry into root (0 already there)."),
        "{}",
        stdout(&imported)
    );
    let again = nuthatch(
        project,
        &["import", "hourly", "--from", &team_root, "--yes"],
    );
    assert!(
        stdout(&again).contains("Imported 1 entry into root (1 already there)."),
        "{}{}",
        stdout(&again),
        stderr(&again)
    );
    let hit = nuthatch(project, &["-c", &call(2)]);
    assert!(
        stdout(&hit).contains("hourly: hit root parquet hourly/2 rows=240"),
        "{}",
        stdout(&hit)
    );

    let deleted = with_mirror(project, &team, &["delete", "hourly", "--yes"]);
    assert!(
        stdout(&deleted).contains("Deleted 3 entries."),
        "{}",
        stdout(&deleted)
    );
    assert!(files_under(&project.join(".nuthatch"))
        .iter()
        .all(|f| f.starts_with("nuthatch_metadata.nut")));
    assert_eq!(files_under(&team), team_files, "the mirror is untouched");

    // print-config: secrets masked unless asked for.
    let config = command(project)
        .env(
            "NUTHATCH_ROOT_FILESYSTEM_OPTIONS_SECRET_ACCESS_KEY",
            "hunter2",
        )
        .args(["print-config", "--location", "root"])
        .output()
        .unwrap();
    let out = stdout(&config);
    assert!(out.contains("root.filesystem = .nuthatch\n"), "{out}");
    assert!(
        out.contains("root.filesystem_options.secret_access_key = *******\n")
            && !out.contains("hunter2")
            && !out.contains("local."),
        "{out}"
    );
    let shown = command(project)
        .env(
            "NUTHATCH_ROOT_FILESYSTEM_OPTIONS_SECRET_ACCESS_KEY",
            "hunter2",
        )
        .args(["print-config", "--show-secrets"])
        .output()
        .unwrap();
    assert!(stdout(&shown).contains("= hunter2"), "{}", stdout(&shown));
}

#[test]
fn a_delete_killed_midway_leaves_every_entry_whole_or_gone() {
    use nuthatch::crates::catalog::metastore::{MetadataRow, CONFIRMED};
    const ENTRIES: usize = 3000;
    let dir = tempfile::tempdir().unwrap();
    let made = nuthatch(
        dir.path(),
        &[
            "-c",
            FUNCTIONS,
            "-c",
            "SELECT count(*) FROM hourly(NULL, NULL, step => 0)",
        ],
    );
    assert!(made.status.success(), "{}", stderr(&made));
    // Many entries, quickly: copies of the one computed, each with its own
    // metadata row.
    let root = dir.path().join(".nuthatch");
    let data = std::fs::read(root.join("hourly/0.parquet")).unwrap();
    for step in 1..ENTRIES {
        std::fs::write(root.join(format!("hourly/{step}.parquet")), &data).unwrap();
        let row = MetadataRow {
            cache_key: format!("hourly/{step}"),
            namespace: None,
            version: Some("a".into()),
            backend: "parquet".into(),
            state: CONFIRMED.into(),
            last_modified: 0.0,
            commit_hash: "no_git_repo".into(),
            user: "test".into(),
            path: format!("{}/hourly/{step}.parquet", root.display()),
            recorded: Default::default(),
            replacing: None,
        };
        let meta = root.join(format!("nuthatch_metadata.nut/hourly/{step}"));
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(meta.join("parquet.parquet"), row.encode().unwrap()).unwrap();
    }

    let mut delete = command(dir.path());
    delete.args(["delete", "hourly", "--yes"]);
    kill_after_log(delete, "nuthatch_catalog=debug", "removed metadata", 50);

    let left = files_under(&root);
    let metadata: Vec<&String> = left
        .iter()
        .filter(|f| f.ends_with("/parquet.parquet"))
        .collect();
    assert!(
        metadata.len() < ENTRIES - 49 && !metadata.is_empty(),
        "killed midway: {} entries left",
        metadata.len()
    );
    // No metadata without its data: every entry still listed is whole.
    for meta in &metadata {
        let step = meta.split('/').nth(2).unwrap();
        assert!(
            root.join(format!("hourly/{step}.parquet")).is_file(),
            "{meta} vouches for data that is gone"
        );
    }
    let listed = nuthatch(dir.path(), &["list", "hourly", "--format", "csv"]);
    assert_eq!(stdout(&listed).lines().count() - 1, metadata.len());
    // An entry whose metadata went is a miss, computed again.
    let gone = (0..ENTRIES)
        .find(|s| {
            !root
                .join(format!("nuthatch_metadata.nut/hourly/{s}/parquet.parquet"))
                .exists()
        })
        .unwrap();
    let sql = format!("SELECT count(*) FROM hourly(NULL, NULL, step => {gone})");
    let recomputed = nuthatch(dir.path(), &["-c", FUNCTIONS, "-c", &sql]);
    assert!(
        stdout(&recomputed).contains(&format!("computed root parquet hourly/{gone} rows=240")),
        "{}{}",
        stdout(&recomputed),
        stderr(&recomputed)
    );
    // Running the delete again finishes the job.
    let finished = nuthatch(dir.path(), &["delete", "hourly", "--yes"]);
    assert!(
        stdout(&finished).contains(&format!("Deleted {} entries.", metadata.len() + 1)),
        "{}",
        stdout(&finished)
    );
}

#[test]
fn a_wider_call_extends_the_entry_and_says_what_it_computed() {
    let dir = project(
        "CREATE CACHED FUNCTION daily(start_time TIMESTAMP, end_time TIMESTAMP)
         WITH (timeseries = 'time')
         AS SELECT t.value AS time
            FROM generate_series(TIMESTAMP '2020-01-01', TIMESTAMP '2020-12-31', INTERVAL '1 day') AS t
            WHERE t.value BETWEEN $start_time AND $end_time;",
    );
    let first = nuthatch(
        dir.path(),
        &[
            "-c",
            "SELECT count(*) AS n FROM daily('2020-01-10', '2020-01-19')",
        ],
    );
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stdout(&first).contains("| 10 |"), "{}", stdout(&first));

    // Another process asks for more: the days missing on both sides.
    let wider = nuthatch(
        dir.path(),
        &[
            "-c",
            "SELECT count(*) AS n FROM daily('2020-01-05', '2020-01-25')",
        ],
    );
    let out = stdout(&wider);
    assert!(out.contains("| 21 |"), "{out}");
    assert!(
        out.contains(
            "nuthatch: daily: extended root parquet daily/ rows=21 \
             computed=[2020-01-05 .. 2020-01-10, 2020-01-20 .. 2020-01-26] added=11"
        ),
        "{out}"
    );
    let listed = nuthatch(
        dir.path(),
        &[
            "--format",
            "csv",
            "-c",
            "SELECT coverage, rows FROM nuthatch.caches WHERE function = 'daily'",
        ],
    );
    assert!(
        stdout(&listed).contains("2020-01-05 .. 2020-01-26,21"),
        "{}",
        stdout(&listed)
    );
}

#[test]
fn a_value_stored_changed_is_said_on_the_call_line_and_exact_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let define = "CREATE CACHED FUNCTION odd() WITH (backend = 'sql') AS \
                  SELECT CAST(x AS DOUBLE) AS x FROM (VALUES ('NaN'), ('1.5')) AS v(x)";
    let output = nuthatch(dir.path(), &["-c", define, "-c", "SELECT * FROM odd()"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(
        out.contains("nuthatch: odd: computed root sql odd/ rows=2 fetched=2 in ")
            && out.contains(
                "WARNING stored changed: x: NaN stored as missing, read back as null (1 value)"
            ),
        "{out}"
    );
    let output = nuthatch(
        dir.path(),
        &[
            "-c",
            define,
            "-c",
            "SELECT * FROM odd(exact => true, recompute => true, cache_mode => 'overwrite')",
        ],
    );
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains("the sql backend would change column x: NaN stored as missing")
            && err.contains("exact = true"),
        "{err}"
    );
    // The refused replacement lost nothing: the entry is still there.
    let output = nuthatch(dir.path(), &["-c", define, "-c", "SELECT * FROM odd()"]);
    let out = stdout(&output);
    assert!(out.contains("nuthatch: odd: hit root sql odd/"), "{out}");
}

#[test]
fn editing_my_first_cache_makes_agg_and_clip_stale_and_refresh_recomputes_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo test");
    let readme = Path::new(&manifest_dir).join("../examples/readme_functions.sql");
    let functions = std::fs::read_to_string(readme).unwrap();
    std::fs::write(dir.path().join("functions.sql"), &functions).unwrap();
    std::fs::write(
        dir.path().join("nuthatch.toml"),
        "[nuthatch]\ndefinitions = [\"functions.sql\"]\n",
    )
    .unwrap();
    let weekly = "SELECT count(*) FROM agg_and_clip('2013-01-01', '2014-01-01', agg_days => 7)";
    let output = nuthatch(dir.path(), &["-c", weekly]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = nuthatch(dir.path(), &["refresh"]);
    assert_eq!(stdout(&output), "Nothing is stale.\n");

    // A different body for my_first_cache, without a new version.
    let edited = functions.replace("- 8.0 + 3.0", "- 8.5 + 3.0");
    assert_ne!(edited, functions);
    std::fs::write(dir.path().join("functions.sql"), edited).unwrap();
    let output = nuthatch(dir.path(), &["-c", weekly]);
    let out = stdout(&output);
    assert!(
        out.contains(
            "nuthatch: agg_and_clip: hit root parquet agg_and_clip/7 rows=1939800 \
             row_groups=30/60"
        ) && out.contains(
            " STALE: input my_first_cache() is stale: the definition of my_first_cache changed\n"
        ),
        "{out}"
    );

    let output = nuthatch(dir.path(), &["refresh", "agg_and_clip", "--dry-run"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    let steps: Vec<&str> = out.lines().filter(|l| l.starts_with("  ")).collect();
    assert_eq!(
        steps[0],
        "  1. my_first_cache() on root: the definition of my_first_cache changed"
    );
    assert_eq!(
        steps[2],
        "  2. agg_and_clip/7 on root: input my_first_cache() is stale: the definition of \
         my_first_cache changed"
    );
    assert!(out.ends_with("Dry run: nothing was computed.\n"), "{out}");

    let output = nuthatch(dir.path(), &["refresh", "agg_and_clip"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("Refreshed 2 entries in "),
        "{}",
        stdout(&output)
    );
    let progress: Vec<String> = (stderr(&output).lines())
        .filter(|l| l.starts_with("refresh ") && !l.ends_with(" ..."))
        .map(|l| l.split(" rows=").next().unwrap().to_string())
        .collect();
    assert_eq!(
        progress,
        [
            "refresh 1/2: my_first_cache: computed root parquet my_first_cache/",
            "refresh 2/2: agg_and_clip: computed root parquet agg_and_clip/7",
        ]
    );
    let output = nuthatch(dir.path(), &["-c", weekly]);
    let out = stdout(&output);
    assert!(
        out.contains("nuthatch: agg_and_clip: hit root parquet agg_and_clip/7")
            && !out.contains("STALE"),
        "{out}"
    );
    let output = nuthatch(dir.path(), &["refresh", "my_first_cash"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(
            "there is no cached function named my_first_cash; defined are: agg_and_clip, \
             my_first_cache"
        ),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_readme_map_is_written_listed_imported_and_read_with_its_datasets() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path();
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo test");
    let examples = Path::new(&manifest_dir).join("../examples");
    let functions = examples.join("readme_functions.sql");
    let map = examples.join("map.sql");
    std::fs::write(
        project.join("nuthatch.toml"),
        format!(
            "[nuthatch]\ndefinitions = [{:?}, {:?}]\n",
            functions.display().to_string(),
            map.display().to_string()
        ),
    )
    .unwrap();
    // The team computes the map into its store; the project imports it.
    let team = project.join("team");
    let team_root = team.display().to_string();
    let made = nuthatch(
        project,
        &[
            "--root",
            &team_root,
            "-c",
            "SELECT count(*) FROM air_map(7)",
        ],
    );
    assert!(made.status.success(), "{}", stderr(&made));
    assert!(
        stdout(&made).contains("air_map: computed root terracotta air_map/7 rows="),
        "{}",
        stdout(&made)
    );
    assert!(team.join("terracotta.sqlite").is_file());
    let imported = nuthatch(
        project,
        &["import", "air_map", "--from", &team_root, "--yes"],
    );
    assert!(imported.status.success(), "{}", stderr(&imported));
    assert!(
        stdout(&imported).contains("Imported 1 entry into root (0 already there)."),
        "{}",
        stdout(&imported)
    );
    // Imported with its datasets, registered where the project's copies are.
    let datasets = nuthatch(
        project,
        &[
            "--format",
            "csv",
            "-c",
            "SELECT count(*) AS datasets, count(DISTINCT key) AS keys, \
             min(starts_with(path, '/')) AS absolute, min(strpos(path, 'team') = 0) AS ours \
             FROM nuthatch.terracotta WHERE tier = 'root'",
        ],
    );
    assert!(datasets.status.success(), "{}", stderr(&datasets));
    assert_eq!(
        stdout(&datasets),
        "datasets,keys,absolute,ours\n124,124,true,true\n",
        "31 days of four steps"
    );
    let hit = nuthatch(
        project,
        &[
            "-c",
            "SELECT count(*) FROM air_map(7) WHERE time < TIMESTAMP '2013-07-02'",
        ],
    );
    assert!(
        stdout(&hit).contains("air_map: hit root terracotta air_map/7")
            && stdout(&hit).contains("files=4/124"),
        "{}",
        stdout(&hit)
    );
}

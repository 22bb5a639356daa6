//! The prompt in a real terminal: tmux runs the binary in a pane, the test
//! types into it and reads the screen, as a person would.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::*;

/// One tmux server (on its own socket) with the binary in a 160x50 pane.
struct Screen {
    socket: PathBuf,
}

impl Screen {
    /// Starts `nuthatch args` in `dir` with `env` set. When it exits the
    /// pane stays, showing `[exited N]`.
    fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Screen {
        let socket = dir.join("tmux.sock");
        let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
        let mut script = format!(
            "cd {} && env -u NUTHATCH_ROOT_FILESYSTEM ",
            quote(dir.to_str().unwrap())
        );
        script.push_str(&format!(
            "NUTHATCH_LOCAL_FILESYSTEM={} ",
            quote(dir.join("local").to_str().unwrap())
        ));
        for (name, value) in env {
            script.push_str(&format!("{name}={} ", quote(value)));
        }
        script.push_str(&quote(env!("CARGO_BIN_EXE_nuthatch")));
        for arg in args {
            script.push(' ');
            script.push_str(&quote(arg));
        }
        script.push_str("; echo \"[exited $?]\"; sleep 600");
        let started = Command::new("tmux")
            .arg("-S")
            .arg(&socket)
            .args([
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "160",
                "-y",
                "50",
            ])
            .arg(script)
            .status()
            .expect("tmux runs the terminal tests: install tmux (scripts/test does)");
        assert!(started.success(), "tmux could not start a session");
        Screen { socket }
    }

    fn tmux(&self, args: &[&str]) -> String {
        let output = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "tmux {args:?}: {}",
            stderr(&output)
        );
        stdout(&output)
    }

    /// Types `text` as it is (a `;` at the end would end tmux's command).
    fn type_text(&self, text: &str) {
        let escaped = match text.strip_suffix(';') {
            Some(rest) => format!("{rest}\\;"),
            None => text.to_string(),
        };
        self.tmux(&["send-keys", "-l", &escaped]);
    }

    /// Presses keys such as `Enter`, `Tab`, `C-c`, `Up`.
    fn press(&self, key: &str) {
        self.tmux(&["send-keys", key]);
    }

    /// Types a line and presses Enter.
    fn enter(&self, text: &str) {
        self.type_text(text);
        self.press("Enter");
    }

    /// The screen with its scrollback, wrapped lines joined.
    fn text(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-J", "-S", "-2000"])
    }

    /// The visible screen with its colours as escape sequences.
    fn colored_text(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-e"])
    }

    /// The screen once `ready` holds for it, failing after a minute with
    /// `what` and the screen.
    fn poll(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = self.text();
            if ready(&text) {
                return text;
            }
            assert!(Instant::now() < deadline, "{what}, on:\n{text}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The screen once it shows `needle`.
    fn wait_for(&self, needle: &str) -> String {
        self.poll(&format!("the screen never showed {needle:?}"), |text| {
            text.contains(needle)
        })
    }

    /// The screen once it shows `needle` `times` times.
    fn wait_count(&self, needle: &str, times: usize) -> String {
        self.poll(&format!("{needle:?} never showed {times} times"), |text| {
            text.matches(needle).count() >= times
        })
    }

    /// The screen once the `count`th prompt is there, idle.
    fn wait_prompt(&self, count: usize) -> String {
        self.poll(&format!("no prompt #{count}"), |text| {
            text.matches("nuthatch> ").count() >= count && text.trim_end().ends_with("nuthatch>")
        })
    }

    /// What the screen shows after the last `mark` (the line being edited
    /// when `mark` is the prompt).
    /// The prompt's line once it reads `expected`: typed keys and Tab
    /// echo a moment after they are sent, later on a loaded machine.
    fn line_becomes(&self, expected: &str) {
        let what = format!("the prompt line never read {expected:?}");
        self.poll(&what, |text| last_from(text, "nuthatch> ") == expected);
    }
}

/// `text` from the last `mark` on, without trailing blanks.
fn last_from(text: &str, mark: &str) -> String {
    let at = text.rfind(mark).unwrap_or(0);
    text[at..].trim_end().to_string()
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .status();
    }
}

const SLOW: &str = "
CREATE CACHED FUNCTION slow(n BIGINT) WITH (cache_args = (n), version = '1')
AS SELECT value AS v, value * 2 AS w FROM generate_series(1, $n);
";

#[test]
fn statements_commands_and_tab_completion_at_the_prompt() {
    let dir = project("");
    std::fs::write(
        dir.path().join("more.sql"),
        "SELECT 'from a file' AS included;\n",
    )
    .unwrap();
    let history = dir.path().join("history");
    let screen = Screen::start(
        dir.path(),
        &[],
        &[("NUTHATCH_HISTORY_FILE", history.to_str().unwrap())],
    );
    screen.wait_for("\\? for help");

    // A statement across two lines runs when the ; is typed.
    screen.enter("SELECT 40 + 2");
    screen.enter("  AS answer;");
    screen.wait_for("| 42     |");

    screen.enter("\\d");
    let text = screen.wait_for("nuthatch.tiers");
    assert!(text.contains("| hourly              | cached function | (start_time TIMESTAMP, end_time TIMESTAMP, step BIGINT DEFAULT 1) version a |"), "{text}");
    assert!(
        text.contains("| nuthatch.caches     | system table    | 25 columns"),
        "{text}"
    );

    screen.enter("\\d hourly");
    let text =
        screen.wait_for("  body\n    SELECT t.value AS time, $step AS step FROM generate_series(");
    for line in [
        "Cached function hourly(start_time TIMESTAMP, end_time TIMESTAMP, step BIGINT DEFAULT 1)",
        "  cache_args   step",
        "  version      a",
        "  timeseries   time",
        "  backend      parquet (default)",
        "  returns      time Timestamp(ns), step Int64",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
    screen.enter("\\d nuthatch.tiers");
    // The last row: the table is printed a line at a time.
    let text = screen.wait_for("| problem      | Utf8      | YES         |");
    assert!(
        text.contains("| reachable    | Boolean   | NO          |"),
        "{text}"
    );

    // Tab completes keywords in the case typed, and columns of the tables
    // the statement names.
    screen.type_text("sel");
    screen.press("Tab");
    screen.type_text(" count(*) AS entries FROM nuthatch.caches WHERE backe");
    screen.press("Tab");
    screen.line_becomes("nuthatch> select count(*) AS entries FROM nuthatch.caches WHERE backend");
    screen.enter(" = 'parquet';");
    screen.wait_for("| 0       |");

    // Tab completes the function, its parameter and a mode name.
    screen.type_text("SELECT count(*) AS n FROM hour");
    screen.press("Tab");
    screen.type_text("'2020-01-02', '2020-01-03', st");
    screen.press("Tab");
    screen.type_text("2, cache_mode => 'ov");
    screen.press("Tab");
    screen.line_becomes(
        "nuthatch> SELECT count(*) AS n FROM hourly('2020-01-02', '2020-01-03', step => 2, cache_mode => 'overwrite'",
    );
    screen.enter(");");
    let text = screen.wait_for("nuthatch: hourly: computed root parquet hourly/2 rows=48");
    assert!(text.contains("| 48 |"), "{text}");
    screen.line_becomes("nuthatch>");

    // Two Tabs list what fits: the modes.
    screen.type_text("SELECT * FROM hourly(cache_mode => ");
    screen.press("Tab");
    screen.press("Tab");
    let text = screen.wait_for("'read_only_strict'");
    assert!(text.contains("'local_overwrite'"), "{text}");
    screen.press("C-c");
    // Keys typed before the fresh prompt is drawn are the terminal's to drop.
    screen.line_becomes("nuthatch>");

    // SET completes the nuthatch settings, then a setting's values; \h
    // explains them.
    screen.type_text("SET nuthatch.on_s");
    screen.press("Tab");
    screen.type_text(" = 'rec");
    screen.press("Tab");
    screen.line_becomes("nuthatch> SET nuthatch.on_stale = 'recompute'");
    screen.enter(";");
    screen.enter("\\h set");
    // The help's last line (the typed SET names the setting too).
    let text = screen.wait_for("  nuthatch.on_stale ");
    assert!(text.contains("  nuthatch.cache_mode "), "{text}");
    screen.enter("\\h create");
    screen.wait_for("chunk_by_arg");

    screen.enter("\\functions");
    screen.wait_for("| hourly | start_time TIMESTAMP, end_time TIMESTAMP, step BIGINT DEFAULT 1 | [step]     | a       |");
    screen.enter("\\caches hourly");
    screen.wait_for("| root | hourly   | hourly/2 |");

    // A command that prints nothing: the next line is typed once its
    // prompt is back, since keys typed before are the terminal's to drop.
    screen.enter("\\pset format csv");
    screen.wait_for("nuthatch> \\pset format csv\nnuthatch> ");
    screen.enter("SELECT 1 AS a, 'x' AS b;");
    screen.wait_for("a,b\n1,x\n");
    screen.enter("\\pset format table");
    screen.wait_for("nuthatch> \\pset format table\nnuthatch> ");
    screen.enter("\\timing off");
    screen.wait_for("Timing is off.");
    screen.enter("\\i more.sql");
    screen.wait_for("| from a file |\n+-------------+\n1 row(s) fetched.\n");

    screen.enter("\\quiet on");
    screen.wait_for("Quiet mode is on.");
    screen.enter("SELECT 'no footer' AS q;");
    // No reports, no footer: the prompt follows the table.
    screen.wait_for("| no footer |\n+-----------+\nnuthatch>");
    screen.enter("\\quiet off");
    screen.wait_for("Quiet mode is off.");

    screen.enter("\\?");
    screen.wait_for("\\caches [FUNCTION]");
    screen.enter("SELEC 1;");
    screen.wait_for(
        "Error: SQL syntax error: Expected: an SQL statement, found: SELEC at Line: 1, Column: 1\nnuthatch>",
    );
    screen.enter("\\nope");
    screen.wait_for("Error: unknown command \\nope; \\? lists the commands");
    screen.enter("\\q");
    screen.wait_for("[exited 0]");

    // The history was saved, multi-line entries whole.
    let saved = std::fs::read_to_string(&history).unwrap();
    assert!(saved.contains("SELECT 40 + 2"), "{saved}");
    assert!(saved.contains("\\functions"), "{saved}");
}

#[test]
fn progress_shows_while_computing_and_ctrl_c_cancels_without_storing() {
    let dir = project(SLOW);
    let screen = Screen::start(dir.path(), &[], &[]);
    screen.wait_for("\\? for help");
    screen.enter("SELECT count(*) FROM slow(5000000000);");
    let text = screen.wait_for(" rows · ");
    let line = text
        .lines()
        .find(|l| l.contains("slow: computing · "))
        .unwrap();
    assert!(line.contains(" written · "), "{line}");
    screen.press("C-c");
    screen.wait_for("Cancelled (Ctrl-C); calls that had not finished stored nothing.");
    let text = screen.wait_prompt(2);
    assert!(
        !text.contains("slow: computing"),
        "the progress line is gone:\n{text}"
    );
    // Rows print as they arrive: the first 40 are on the screen while the
    // statement still runs (and is cancelled).
    screen.enter("SELECT value FROM generate_series(1, 5000000000);");
    let text = screen.wait_for("| 40    |\n+-------+");
    assert!(!text.contains("row(s) fetched"), "still running:\n{text}");
    screen.press("C-c");
    screen.wait_count("Cancelled (Ctrl-C)", 2);

    // A statement stopped before its first row: a LIMIT reads the entry
    // back, so the call computes and stores it while the plan is made.
    screen.enter("SELECT v FROM slow(5000000000) LIMIT 1;");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    screen.press("C-c");
    screen.wait_count("Cancelled (Ctrl-C)", 3);

    // The prompt goes on, and nothing of the cancelled call is visible.
    screen.enter("SELECT count(*) AS entries FROM nuthatch.caches WHERE function = 'slow';");
    screen.wait_for("| 0       |");

    // Where Python asks before overwriting, the prompt asks: n computes
    // without storing, y replaces.
    let call = "SELECT count(*) AS n FROM hourly('2020-01-02', '2020-01-03', step => 4, recompute => true);";
    screen.enter("SELECT count(*) AS n FROM hourly('2020-01-02', '2020-01-03', step => 4);");
    screen.wait_for("computed root parquet hourly/4");
    screen.enter(call);
    let question = "hourly: entry hourly/step_4 is already stored on the root tier. Replace it with the recomputed result? (y/n)";
    screen.wait_for(question);
    screen.enter("n");
    screen.wait_for("nuthatch: hourly: computed (not stored) parquet hourly/4");
    screen.enter(call);
    screen.wait_count(question, 2);
    screen.enter("y");
    screen.wait_for("nuthatch: hourly: computed root parquet hourly/4 rows=48");
}

#[test]
fn history_rc_files_the_pager_and_ctrl_d() {
    let dir = project("");
    let history = dir.path().join("state/history");
    std::fs::create_dir_all(history.parent().unwrap()).unwrap();
    std::fs::write(&history, "SELECT 'remembered' AS r;\n").unwrap();
    std::fs::write(
        dir.path().join("rc.sql"),
        "\\timing off\n\\pset maxrows inf\n",
    )
    .unwrap();
    let screen = Screen::start(
        dir.path(),
        &[
            "-r",
            "rc.sql",
            "--pager",
            "--color",
            "--history-file",
            history.to_str().unwrap(),
        ],
        &[("NUTHATCH_PAGER", "less -SFRX")],
    );
    screen.wait_for("Timing is off.");
    // The last session's statement is one Up away.
    screen.wait_prompt(1);
    screen.press("Up");
    screen.wait_for("nuthatch> SELECT 'remembered' AS r;");
    // --color highlights the keywords and the string as they are edited.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let colored = screen.colored_text();
        let line = colored
            .lines()
            .find(|l| l.contains("remembered"))
            .unwrap_or("");
        if line.contains("SELECT\u{1b}[") && line.contains("\u{1b}[32m'remembered'") {
            break;
        }
        assert!(Instant::now() < deadline, "no colours: {line:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    screen.press("Enter");
    screen.wait_for("| remembered |");

    // A result taller than the screen opens in the pager; q returns.
    screen.enter("SELECT value FROM generate_series(1, 200);");
    let text = screen.wait_for("| 45    |");
    assert!(
        !text.contains("| 200   |"),
        "the pager shows one screen:\n{text}"
    );
    screen.press("q");
    screen.wait_for("200 row(s) fetched.");
    // Ctrl-D quits.
    screen.press("C-d");
    screen.wait_for("[exited 0]");
    let saved = std::fs::read_to_string(&history).unwrap();
    assert!(saved.contains("generate_series(1, 200)"), "{saved}");
}

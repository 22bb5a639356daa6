//! The runnable examples, run as a user runs them: `cargo test` builds them
//! beside this binary, and each must finish and print what its docs say.

use std::process::Command;

use crate::support::example_binary;

/// Runs the example `name` and returns what it printed.
fn run_example(name: &str) -> String {
    let example = example_binary(name);
    let output = Command::new(&example)
        .env_remove("NUTHATCH_ROOT_FILESYSTEM")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", example.display()));
    let printed = String::from_utf8_lossy(&output.stdout).to_string();
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{name}: {printed}\n{errors}");
    printed
}

#[test]
fn the_polars_example_uses_frames_a_polars_body_and_polars_sql() {
    let printed = run_example("polars");
    let expected = [
        "a DataFrame: (4240, 4)",
        "a LazyFrame collected: 31800 rows",
        "a Polars body: 25 latitudes",
        "| arctic  |",
        "nuthatch: lat_means: computed",
        "nuthatch: lat_means: hit",
    ];
    let missing: Vec<&str> = expected
        .into_iter()
        .filter(|e| !printed.contains(e))
        .collect();
    assert!(missing.is_empty(), "missing {missing:?} in\n{printed}");
}

#[test]
fn the_backend_example_stores_lists_and_deletes_with_its_own_format() {
    let printed = run_example("jsonl_backend");
    let expected = [
        "nuthatch: squares: computed root jsonl squares/5",
        "nuthatch: squares: hit root jsonl squares/5",
        "| squares  | squares/5 | jsonl   | 5    |",
    ];
    let missing: Vec<&str> = expected
        .into_iter()
        .filter(|e| !printed.contains(e))
        .collect();
    assert!(missing.is_empty(), "missing {missing:?} in\n{printed}");
}

//! A storage format of one's own: the JSON-lines backend in `jsonl.rs`,
//! registered by this program and used from SQL like a built-in one.
//!
//! Run it with `cargo run --example jsonl_backend`. It works in a temporary
//! folder, so it leaves nothing behind.

mod jsonl;

use std::sync::Arc;

use nuthatch::{Backends, Config, Engine, TierConfig};

const STEPS: [(&str, &str); 5] = [
    (
        "a function stored as JSON lines",
        "CREATE CACHED FUNCTION squares(n BIGINT) WITH (backend = 'jsonl', cache_args = (n)) AS \
         SELECT x, x * x AS square, CASE WHEN x % 2 = 0 THEN 'even' END AS tag \
         FROM (VALUES (1), (2), (3), (4), (5), (6), (7)) AS t(x) WHERE x <= $n",
    ),
    (
        "computed and written to squares/5.jsonl",
        "SELECT * FROM squares(5)",
    ),
    (
        "read back from the file",
        "SELECT sum(square) AS total FROM squares(5)",
    ),
    (
        "listed like any entry",
        "SELECT function, key, backend, rows FROM nuthatch.caches",
    ),
    (
        "and deleted like any entry",
        "DELETE FROM nuthatch.caches WHERE function = 'squares'",
    ),
];

#[tokio::main]
async fn main() -> datafusion::error::Result<()> {
    let folder = tempfile::tempdir()?;
    let mut config = Config::with_root(folder.path().join("root").display().to_string());
    config.local = TierConfig::new(folder.path().join("local").display().to_string());
    // The format's own setting, read by it when the tiers open.
    config.set("root.jsonl.explicit_nulls", "true")?;
    let backends = Backends::builtin().with(Arc::new(jsonl::JsonLines));
    let engine = Engine::with_backends(&config, backends)?;
    let session = engine.session();
    for (what, sql) in STEPS {
        println!("-- {what}\n{sql}");
        session.sql(sql).await?.show().await?;
        for report in session.take_reports() {
            println!("nuthatch: {report}");
        }
        println!();
    }
    Ok(())
}

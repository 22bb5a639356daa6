//! The second process of the integration tests that need one: two
//! processes extending one entry at once, and a writer killed midway. Not a
//! user example: it is built as the `test_child` example so that `cargo
//! test` builds it beside the tests, which start it with what to do as its
//! arguments and kill it when they mean to.

#[path = "../integration/bodies.rs"]
mod bodies;

use nuthatch::{Config, Engine};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["extend", root, window] => extend(root, window, false).await,
        ["extend-endlessly", root, window] => extend(root, window, true).await,
        ["overwrite-endlessly", root] => overwrite_endlessly(root).await,
        ["ping-pong", root, first] => ping_pong(root, first).await,
        _ => {
            eprintln!(
                "usage: test_child extend ROOT WINDOW | extend-endlessly ROOT WINDOW | \
                 overwrite-endlessly ROOT | ping-pong ROOT ping|pong"
            );
            std::process::exit(2);
        }
    }
}

/// Calls `slow` over `window` on `root` and prints what the call did; with
/// `endlessly`, its body streams until the process is killed.
async fn extend(root: &str, window: &str, endlessly: bool) {
    let engine = Engine::new(&Config::with_root(root)).unwrap();
    let session = engine.session();
    session.register(bodies::slow(300, endlessly)).unwrap();
    let sql = format!("SELECT count(*) FROM slow({window})");
    session.sql(&sql).await.unwrap().collect().await.unwrap();
    for report in session.take_reports() {
        println!("{report}");
    }
}

/// Overwrites `endless()`'s Delta entry on `root` with a body that streams
/// until the process is killed.
async fn overwrite_endlessly(root: &str) {
    let engine = Engine::new(&Config::with_root(root)).unwrap();
    let session = engine.session();
    session.register(bodies::endless(true)).unwrap();
    let _ = session
        .sql("SELECT count(*) FROM endless(recompute => true, cache_mode => 'overwrite')")
        .await
        .unwrap()
        .collect()
        .await;
    unreachable!("the body never ends");
}

/// Calls `first(1, 1)` (`ping` or `pong`), whose body calls the other
/// after a pause, and prints `ok` or `failed: <error>`.
async fn ping_pong(root: &str, first: &str) {
    let engine = Engine::new(&Config::with_root(root)).unwrap();
    let session = engine.session();
    session
        .register(bodies::ping_pong("ping", "pong", 3000))
        .unwrap();
    session
        .register(bodies::ping_pong("pong", "ping", 3000))
        .unwrap();
    let sql = format!("SELECT * FROM {first}(1, 1)");
    let result = match session.sql(&sql).await {
        Ok(frame) => frame.collect().await.map(|_| ()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => println!("ok"),
        Err(e) => println!("failed: {e}"),
    }
}

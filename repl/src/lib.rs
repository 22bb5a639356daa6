//! The `nuthatch` command-line program.
//!
//! It runs SQL in a [`Session`] of an [`Engine`] the way datafusion-cli
//! does, and is a library too, so its parts can be reused:
//!
//! - [`args`]: the flags; [`print`]: results printed as they stream, in
//!   table, CSV, TSV, JSON or ND-JSON, optionally through a pager;
//! - [`shell`]: statements and backslash commands ([`commands`]) from any
//!   source, with the call reports and footer after each statement;
//! - [`interactive`]: the prompt (rustyline, with [`helper`] for multi-line
//!   input, highlighting and Tab completion from [`complete`]), with a
//!   [`progress`] line, Ctrl-C to cancel, and questions before overwrites;
//! - [`manage`]: the subcommands `list`, `delete`, `import`,
//!   `print-config` over the same session, and [`serve`], the Flight SQL
//!   server.
//!
//! `-c` and `-f` (and SQL piped into stdin) run and exit, non-zero on the
//! first error, printing only data on stdout in the machine formats.

pub mod args;
pub mod commands;
pub mod complete;
pub mod helper;
pub mod interactive;
pub mod manage;
pub mod print;
pub mod progress;
pub mod serve;
pub mod shell;
pub mod topics;
pub mod worker;

use std::io::Read;

use datafusion::error::{DataFusionError, Result};
use nuthatch::{Config, Engine, Session};

pub use args::{Args, Format, Source};

use crate::commands::Flow;
use crate::print::PrintOptions;
use crate::shell::Shell;

/// Opens the session the arguments describe and loads the project's
/// definitions files. With an `import` command, also names the tier it
/// imports from.
pub async fn open(args: &Args) -> Result<(Session, Option<String>)> {
    let mut config = Config::discover()?;
    if let Some(root) = &args.root {
        config.root = nuthatch::TierConfig {
            filesystem: root.clone(),
            ..config.root
        };
    }
    if let Some(limit) = args.memory_limit {
        config.memory_limit = Some(limit);
    }
    let source = args
        .command
        .as_ref()
        .and_then(|command| manage::configure(command, &mut config));
    let engine = Engine::new(&config)?;
    // A worker serves stages; every other command coordinates the
    // configured workers, if there are any.
    let serves_stages = matches!(args.command, Some(manage::Command::Worker(_)));
    if !serves_stages {
        if let Some(workers) = nuthatch::cluster::attach(&engine)? {
            tracing::info!(
                workers = workers.urls().len(),
                "queries run across the workers"
            );
        }
    }
    let session = engine.session();
    for path in &config.definitions {
        let count = session.load_definitions(path).await?;
        tracing::info!(path = %path.display(), count, "loaded definitions");
    }
    Ok((session, source))
}

/// Runs `-c` and `-f` in the order given, or SQL piped into stdin when
/// there are none, stopping at the first error.
pub async fn run_batch(session: &Session, sources: &[Source], args: &Args) -> Result<()> {
    let mut shell = Shell::new(session, PrintOptions::from_args(args));
    if sources.is_empty() {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| DataFusionError::Execution(format!("cannot read stdin: {e}")))?;
        shell.run_text(&text).await?;
        return Ok(());
    }
    for source in sources {
        let text = match source {
            Source::Command(sql) => sql.clone(),
            Source::File(file) => std::fs::read_to_string(file).map_err(|e| {
                DataFusionError::Execution(format!("cannot read {}: {e}", file.display()))
            })?,
        };
        if shell.run_text(&text).await? == Flow::Quit {
            break;
        }
    }
    Ok(())
}

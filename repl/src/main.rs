//! Entry point of the `nuthatch` binary; see the `nuthatch_repl` crate docs.

use std::io::IsTerminal;

use nuthatch_repl::{interactive, manage, open, run_batch, Args};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Delta's log reader logs each error it also returns, backtrace and
    // all; the returned error is reported once, with its entry named.
    let default = "warn,buoyant_kernel=off";
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("NUTHATCH_LOG").unwrap_or_else(|_| EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        // Colour codes only where a terminal reads them, not in log files.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let (args, sources) = Args::parse_ordered();
    let result = async {
        if args.command.is_some() && !sources.is_empty() {
            return Err(datafusion::error::DataFusionError::Plan(
                "-c and -f run SQL; they do not go with a management command".into(),
            ));
        }
        let (session, source) = open(&args).await?;
        let ran = if let Some(command) = &args.command {
            manage::run(
                &session,
                command,
                source.as_deref(),
                &args,
                &mut std::io::stdout(),
            )
            .await
        } else if sources.is_empty() && std::io::stdin().is_terminal() {
            interactive::run(&session, &args).await
        } else {
            run_batch(&session, &sources, &args).await
        };
        // Misses whose query stopped reading early are still being stored.
        session.finish_writes().await;
        ran
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", nuthatch_repl::shell::error_text(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

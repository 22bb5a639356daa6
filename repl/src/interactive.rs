//! The interactive prompt.
//!
//! Input is read by rustyline ([`crate::helper`]) until it is complete;
//! every complete input is one history entry, saved at once to the history
//! file so that a killed session keeps it. Before each input the prompt
//! gathers the names Tab offers, so tables and functions created a moment
//! ago complete. Ctrl-C at the prompt clears the input; while a statement
//! runs it cancels the statement ([`crate::shell`]). Ctrl-D or `\q` quits.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::error::{DataFusionError, Result};
use nuthatch::Session;
use rustyline::error::ReadlineError;
use rustyline::{CompletionType, Config};
use tokio::sync::mpsc;

use crate::commands::{self, Flow};
use crate::complete::Names;
use crate::helper::{PromptEditor, PromptHelper};
use crate::print::PrintOptions;
use crate::shell::{error_text, Shell, Terminal, TerminalPrompt};
use crate::Args;

const PROMPT: &str = "nuthatch> ";

pub async fn run(session: &Session, args: &Args) -> Result<()> {
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .auto_add_history(false)
        .max_history_size(10_000)
        .map_err(|e| DataFusionError::Execution(format!("cannot start the prompt: {e}")))?
        .build();
    let mut editor = PromptEditor::with_config(config)
        .map_err(|e| DataFusionError::Execution(format!("cannot start the prompt: {e}")))?;
    editor.set_helper(Some(PromptHelper::new(args.color)));
    let history = args.history_path();
    if let Some(path) = &history {
        // A first session has no history yet.
        let _ = editor.load_history(path);
    }

    let (asker, questions) = mpsc::unbounded_channel();
    session.set_overwrite_prompt(Arc::new(TerminalPrompt(asker)));
    let mut shell = Shell::new(session, PrintOptions::from_args(args));
    shell.questions = Some(questions);
    shell.terminal = Some(Terminal {
        editor,
        shows_progress: std::io::stdout().is_terminal() && std::io::stderr().is_terminal(),
    });

    for rc in args.rc_files() {
        if let Err(e) = run_file(&mut shell, &rc).await {
            eprintln!("{} ({})", error_text(&e), rc.display());
        }
    }
    if !args.quiet {
        println!(
            "nuthatch {} — SQL over cached functions. \\? for help, \\q to quit.",
            env!("CARGO_PKG_VERSION")
        );
    }

    let mut warned = false;
    loop {
        let names = gather_names(session).await;
        let terminal = shell.terminal.as_mut().expect("the prompt has a terminal");
        if let Some(helper) = terminal.editor.helper_mut() {
            helper.names = names;
        }
        let read = tokio::task::block_in_place(|| terminal.editor.readline(PROMPT));
        let text = match read {
            Ok(text) => text,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(DataFusionError::Execution(format!("prompt failed: {e}"))),
        };
        if text.trim().is_empty() {
            continue;
        }
        let _ = terminal.editor.add_history_entry(text.trim_end());
        if let Some(path) = &history {
            if let Err(e) = save_history(&mut terminal.editor, path) {
                if !warned {
                    eprintln!("Warning: cannot save history to {}: {e}", path.display());
                    warned = true;
                }
            }
        }
        if matches!(text.trim().to_ascii_lowercase().as_str(), "quit" | "exit") {
            break;
        }
        match shell.run_text(&text).await {
            Ok(Flow::Quit) => break,
            Ok(Flow::Continue) => {}
            Err(e) => eprintln!("{}", error_text(&e)),
        }
    }
    Ok(())
}

async fn run_file(shell: &mut Shell<'_>, path: &Path) -> Result<Flow> {
    commands::run(shell, commands::Command::Include(PathBuf::from(path))).await
}

fn save_history(editor: &mut PromptEditor, path: &Path) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    editor.save_history(path).map_err(std::io::Error::other)
}

/// What Tab offers: the session's tables with their columns, its cached
/// functions with their parameters, and the backends.
async fn gather_names(session: &Session) -> Names {
    let tables = commands::tables(session).await.unwrap_or_default();
    let mut functions: Vec<(String, Vec<String>)> = session
        .engine()
        .functions()
        .iter()
        .map(|f| {
            let params = f.params().iter().map(|p| p.name.clone()).collect();
            (f.name().to_string(), params)
        })
        .collect();
    functions.sort();
    Names {
        tables: tables
            .into_iter()
            .map(|t| {
                let columns = t.columns.iter().map(|c| c.name().clone()).collect();
                (t.name, columns)
            })
            .collect(),
        functions,
        backends: session
            .engine()
            .catalog()
            .backends()
            .names()
            .into_iter()
            .map(String::from)
            .collect(),
    }
}

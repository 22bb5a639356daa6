//! The `nuthatch` command-line program.
//!
//! It runs SQL in a [`Session`] of an [`Engine`] the way datafusion-cli does:
//! `-c "SQL"` and `-f file.sql` run statements and exit (non-zero on the
//! first error); with neither, an interactive prompt reads statements ending
//! in `;`. After each statement it prints the result, one line per cached
//! call (hit or computed, tier, backend, key, rows, time), and a footer.
//! The management commands (`list`, `delete`, `import`, `print-config`)
//! are subcommands over the same session ([`manage`]).

pub mod manage;

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use arrow::util::pretty::pretty_format_batches;
use clap::Parser;
use datafusion::arrow::array::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use nuthatch::{split_statements, Config, Engine, Session};

#[derive(Debug, Parser)]
#[command(
    name = "nuthatch",
    version,
    about = "Run SQL over nuthatch cached functions, and manage their caches"
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<manage::Command>,
    /// Execute the given SQL and exit (may be repeated).
    #[arg(short = 'c', long = "command")]
    pub commands: Vec<String>,
    /// Execute the SQL in the given file and exit (may be repeated).
    #[arg(short = 'f', long = "file")]
    pub files: Vec<PathBuf>,
    /// Root tier: a folder or object-store URL, overriding nuthatch.toml and
    /// NUTHATCH_ROOT_FILESYSTEM.
    #[arg(long, global = true)]
    pub root: Option<String>,
    /// Memory the engine's operators may hold, such as 512M or 2G; sorts
    /// and aggregates spill to disk beyond it (overrides memory_limit in
    /// nuthatch.toml and NUTHATCH_MEMORY_LIMIT).
    #[arg(short = 'm', long, value_parser = parse_memory_limit, global = true)]
    pub memory_limit: Option<usize>,
    /// Output format of results.
    #[arg(long, value_enum, default_value = "table", global = true)]
    pub format: Format,
    /// Rows of a result to print in table format (0: all).
    #[arg(long, default_value_t = 40, global = true)]
    pub maxrows: usize,
    /// Print only results: no call reports and no footer.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    NdJson,
}

fn parse_memory_limit(text: &str) -> std::result::Result<usize, String> {
    nuthatch::crates::catalog::config::parse_memory_limit(text)
}

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
    let session = Engine::new(&config)?.session();
    for path in &config.definitions {
        let count = session.load_definitions(path).await?;
        tracing::info!(path = %path.display(), count, "loaded definitions");
    }
    Ok((session, source))
}

/// Runs one statement and prints what it produced.
pub async fn run_statement(
    session: &Session,
    sql: &str,
    args: &Args,
    out: &mut impl Write,
) -> Result<()> {
    let started = Instant::now();
    let batches = session.sql(sql).await?.collect().await?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    print_batches(&batches, args, out)?;
    if !args.quiet {
        for report in session.take_reports() {
            writeln!(out, "nuthatch: {report}")?;
        }
        writeln!(
            out,
            "{rows} row(s) fetched. Elapsed {:.3} seconds.\n",
            started.elapsed().as_secs_f64()
        )?;
    } else {
        session.take_reports();
    }
    Ok(())
}

pub(crate) fn print_batches(
    batches: &[RecordBatch],
    args: &Args,
    out: &mut impl Write,
) -> Result<()> {
    if batches.iter().all(|b| b.num_rows() == 0)
        && batches.first().is_none_or(|b| b.num_columns() == 0)
    {
        return Ok(());
    }
    match args.format {
        Format::Table => {
            let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
            let shown = limit_rows(
                batches,
                if args.maxrows == 0 {
                    total
                } else {
                    args.maxrows
                },
            );
            writeln!(out, "{}", pretty_format_batches(&shown)?)?;
            if shown.iter().map(RecordBatch::num_rows).sum::<usize>() < total {
                writeln!(
                    out,
                    "Showing {} of {total} rows (--maxrows {}).",
                    args.maxrows, args.maxrows
                )?;
            }
        }
        Format::Csv => {
            let mut writer = arrow::csv::Writer::new(&mut *out);
            for batch in batches {
                writer.write(batch)?;
            }
        }
        Format::Json => {
            let mut writer = arrow::json::ArrayWriter::new(&mut *out);
            writer.write_batches(&batches.iter().collect::<Vec<_>>())?;
            writer.finish()?;
            writeln!(out)?;
        }
        Format::NdJson => {
            let mut writer = arrow::json::LineDelimitedWriter::new(&mut *out);
            writer.write_batches(&batches.iter().collect::<Vec<_>>())?;
            writer.finish()?;
        }
    }
    Ok(())
}

fn limit_rows(batches: &[RecordBatch], mut left: usize) -> Vec<RecordBatch> {
    let mut shown = Vec::new();
    for batch in batches {
        if left == 0 {
            break;
        }
        let take = batch.num_rows().min(left);
        shown.push(batch.slice(0, take));
        left -= take;
    }
    shown
}

/// A `-c` or `-f` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Command(String),
    File(PathBuf),
}

impl Args {
    /// Parses the process arguments, remembering the order of `-c` and `-f`.
    pub fn parse_ordered() -> (Args, Vec<Source>) {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Args::command().get_matches();
        let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        let mut sources: Vec<(usize, Source)> = Vec::new();
        if let Some(indices) = matches.indices_of("commands") {
            sources.extend(indices.zip(args.commands.iter().cloned().map(Source::Command)));
        }
        if let Some(indices) = matches.indices_of("files") {
            sources.extend(indices.zip(args.files.iter().cloned().map(Source::File)));
        }
        sources.sort_by_key(|(index, _)| *index);
        (
            args,
            sources.into_iter().map(|(_, source)| source).collect(),
        )
    }
}

/// Runs `-c` and `-f` statements in the order given, stopping at the first
/// error.
pub async fn run_batch(
    session: &Session,
    sources: &[Source],
    args: &Args,
    out: &mut impl Write,
) -> Result<()> {
    for source in sources {
        let text = match source {
            Source::Command(sql) => sql.clone(),
            Source::File(file) => std::fs::read_to_string(file).map_err(|e| {
                DataFusionError::Execution(format!("cannot read {}: {e}", file.display()))
            })?,
        };
        for statement in split_statements(&text)? {
            run_statement(session, &statement, args, out).await?;
        }
    }
    Ok(())
}

/// The interactive prompt: statements end with `;`, `\q` quits.
pub async fn run_interactive(session: &Session, args: &Args) -> Result<()> {
    let mut editor = rustyline::DefaultEditor::new()
        .map_err(|e| DataFusionError::Execution(format!("cannot start the prompt: {e}")))?;
    let history = PathBuf::from(".history");
    let _ = editor.load_history(&history);
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "nuthatch> "
        } else {
            "       -> "
        };
        match editor.readline(prompt) {
            Ok(line) => {
                if buffer.is_empty() && matches!(line.trim(), "\\q" | "quit" | "exit") {
                    break;
                }
                buffer.push_str(&line);
                buffer.push('\n');
                if !line.trim_end().ends_with(';') {
                    continue;
                }
                let _ = editor.add_history_entry(buffer.trim());
                let mut stdout = std::io::stdout();
                let statements = match split_statements(&buffer) {
                    Ok(statements) => statements,
                    Err(e) => {
                        eprintln!("Error: {}", nuthatch::error_message(&e));
                        Vec::new()
                    }
                };
                for statement in statements {
                    if let Err(e) = run_statement(session, &statement, args, &mut stdout).await {
                        eprintln!("Error: {}", nuthatch::error_message(&e));
                    }
                }
                buffer.clear();
            }
            Err(rustyline::error::ReadlineError::Interrupted) => buffer.clear(),
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(e) => return Err(DataFusionError::Execution(format!("prompt failed: {e}"))),
        }
    }
    let _ = editor.save_history(&history);
    Ok(())
}

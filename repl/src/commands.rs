//! The prompt's backslash commands, after datafusion-cli's and psql's:
//! `\q`, `\?`, `\h [topic]`, `\d [name]`, `\i file`, `\pset`, `\timing`, `\quiet`, and
//! nuthatch's own `\functions` and `\caches [function]`. They work in `-c`,
//! `-f` and rc files too, on lines of their own.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use nuthatch::crates::udf::Body;
use nuthatch::{CachedFunction, Session};

use crate::args::{parse_maxrows, Format};
use crate::print::{print_batches, Pager};
use crate::shell::Shell;

/// Whether the shell goes on after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Quit,
    Help,
    /// `\h [topic]`: help on nuthatch's SQL.
    SqlHelp(Option<String>),
    /// `\d`: everything a query can name; `\d name`: one of them.
    Describe(Option<String>),
    Include(PathBuf),
    /// `\pset` alone shows the settings.
    Pset(Option<(String, String)>),
    Timing(Option<bool>),
    Quiet(Option<bool>),
    Functions,
    Caches(Option<String>),
}

const HELP: &str = "\
Commands (on a line of their own; SQL statements end with ;):
  \\q                    quit (or Ctrl-D)
  \\?                    this help
  \\h [TOPIC]            help on nuthatch's SQL: create, call, set, tables, refresh
  \\d                    list tables, cached functions and system tables
  \\d NAME               describe a table, or a cached function (signature,
                        cache_args, version, backend, body)
  \\i FILE               run the statements and commands in FILE
  \\pset [NAME VALUE]    show or set: format table|csv|tsv|json|nd-json,
                        maxrows N|inf, pager on|off
  \\timing [on|off]      show how long each statement took (on by default)
  \\quiet [on|off]       hide call reports and footers
  \\functions            list cached functions
  \\caches [FUNCTION]    list cache entries (SELECT ... FROM nuthatch.caches)
Tab completes keywords, tables, columns, cached functions, their arguments
and option values. Ctrl-C cancels the running statement.";

impl Command {
    pub fn parse(line: &str) -> Result<Command> {
        let mut words = line.split_whitespace();
        let name = words.next().unwrap_or("");
        let rest: Vec<&str> = words.collect();
        let arg = rest.first().map(|s| s.to_string());
        let switch = |value: Option<&&str>| -> Result<Option<bool>> {
            match value.map(|v| v.to_ascii_lowercase()) {
                None => Ok(None),
                Some(v) if matches!(v.as_str(), "on" | "true") => Ok(Some(true)),
                Some(v) if matches!(v.as_str(), "off" | "false") => Ok(Some(false)),
                Some(v) => Err(usage(&format!("{name} takes on or off, not '{v}'"))),
            }
        };
        Ok(match name {
            "\\q" | "\\quit" => Command::Quit,
            "\\?" | "\\help" => Command::Help,
            "\\h" => Command::SqlHelp(arg),
            "\\d" => Command::Describe(arg),
            "\\i" => match arg {
                Some(file) => Command::Include(PathBuf::from(file)),
                None => return Err(usage("\\i needs a file: \\i queries.sql")),
            },
            "\\pset" => match rest.as_slice() {
                [] => Command::Pset(None),
                [setting, value] => Command::Pset(Some((setting.to_string(), value.to_string()))),
                _ => {
                    return Err(usage(
                        "\\pset takes a setting and a value: \\pset format csv",
                    ))
                }
            },
            "\\timing" => Command::Timing(switch(rest.first())?),
            "\\quiet" => Command::Quiet(switch(rest.first())?),
            "\\functions" => Command::Functions,
            "\\caches" => Command::Caches(arg),
            other => {
                return Err(usage(&format!(
                    "unknown command {other}; \\? lists the commands"
                )))
            }
        })
    }
}

fn usage(text: &str) -> DataFusionError {
    DataFusionError::Plan(text.to_string())
}

pub async fn run(shell: &mut Shell<'_>, command: Command) -> Result<Flow> {
    match command {
        Command::Quit => return Ok(Flow::Quit),
        Command::Help => println!("{HELP}"),
        Command::SqlHelp(topic) => match crate::topics::help(topic.as_deref()) {
            Ok(text) => println!("{text}"),
            Err(message) => return Err(usage(&message)),
        },
        Command::Describe(None) => {
            let batch = everything(shell.session).await?;
            print_batches(&[batch], &shell.options, &mut std::io::stdout())?;
        }
        Command::Describe(Some(name)) => describe(shell, &name).await?,
        Command::Include(file) => {
            let text = std::fs::read_to_string(&file).map_err(|e| {
                DataFusionError::Execution(format!("cannot read {}: {e}", file.display()))
            })?;
            return Box::pin(shell.run_text(&text)).await;
        }
        Command::Pset(None) => {
            let options = &shell.options;
            println!("format   {}", options.format.name());
            println!("maxrows  {}", options.maxrows);
            println!(
                "pager    {}",
                options
                    .pager
                    .as_deref()
                    .map_or("off".into(), |p| format!("on ({p})"))
            );
        }
        Command::Pset(Some((setting, value))) => pset(shell, &setting, &value)?,
        Command::Timing(on) => {
            shell.options.timing = on.unwrap_or(!shell.options.timing);
            println!(
                "Timing is {}.",
                if shell.options.timing { "on" } else { "off" }
            );
        }
        Command::Quiet(on) => {
            shell.options.quiet = on.unwrap_or(!shell.options.quiet);
            println!(
                "Quiet mode is {}.",
                if shell.options.quiet { "on" } else { "off" }
            );
        }
        Command::Functions => {
            let sql = "SELECT name, parameters, cache_args, version, backend, timeseries \
                       FROM nuthatch.functions ORDER BY name";
            shell.run_sql(sql).await?;
        }
        Command::Caches(function) => {
            let started = Instant::now();
            let sql = crate::manage::caches_query(function.as_deref());
            let frame = shell.session.sql(&sql).await?;
            shell.print_frame(frame, started).await?;
        }
    }
    Ok(Flow::Continue)
}

fn pset(shell: &mut Shell<'_>, setting: &str, value: &str) -> Result<()> {
    let options = &mut shell.options;
    match setting {
        "format" => {
            options.format = Format::parse(value).ok_or_else(|| {
                usage(&format!(
                    "unknown format '{value}'; use one of {}",
                    Format::NAMES.join(", ")
                ))
            })?;
        }
        "maxrows" => options.maxrows = parse_maxrows(value).map_err(|e| usage(&e))?,
        "pager" => match value.to_ascii_lowercase().as_str() {
            "on" | "true" => options.pager = Some(Pager::command()),
            "off" | "false" => options.pager = None,
            other => {
                return Err(usage(&format!(
                    "\\pset pager takes on or off, not '{other}'"
                )))
            }
        },
        other => {
            return Err(usage(&format!(
                "unknown setting '{other}'; \\pset takes format, maxrows or pager"
            )))
        }
    }
    Ok(())
}

/// A table a query can name.
pub struct TableInfo {
    /// Bare in the current schema, qualified elsewhere.
    pub name: String,
    pub kind: &'static str,
    pub columns: Vec<Arc<Field>>,
}

/// Every table of the session's catalogs, system tables included, named
/// as a query of this session would name it.
pub async fn tables(session: &Session) -> Result<Vec<TableInfo>> {
    let options = session.context().state().config_options().catalog.clone();
    let mut found = Vec::new();
    for table in session.tables().await? {
        let name = if table.catalog != options.default_catalog {
            format!("{}.{}.{}", table.catalog, table.schema, table.name)
        } else if table.schema != options.default_schema {
            format!("{}.{}", table.schema, table.name)
        } else {
            table.name.clone()
        };
        let kind = if table.schema == nuthatch::crates::catalog::system::SCHEMA {
            "system table"
        } else {
            match table.provider.table_type() {
                TableType::View => "view",
                TableType::Temporary => "temporary table",
                TableType::Base => "table",
            }
        };
        found.push(TableInfo {
            name,
            kind,
            columns: table.provider.schema().fields().iter().cloned().collect(),
        });
    }
    found.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    Ok(found)
}

/// `\d`: tables, cached functions and system tables.
async fn everything(session: &Session) -> Result<RecordBatch> {
    let mut rows: Vec<(String, String, String)> = Vec::new();
    for table in tables(session).await? {
        let columns = format!("{} columns", table.columns.len());
        rows.push((table.name, table.kind.to_string(), columns));
    }
    let mut functions = session.engine().functions();
    functions.sort_by(|a, b| a.name().cmp(b.name()));
    for function in functions {
        let mut details = format!("({})", function.parameters());
        if let Some(version) = function.version() {
            details.push_str(&format!(" version {version}"));
        }
        rows.push((
            function.name().to_string(),
            "cached function".to_string(),
            details,
        ));
    }
    // Cached functions after tables, system tables last.
    let rank = |kind: &str| match kind {
        "cached function" => 1,
        "system table" => 2,
        _ => 0,
    };
    rows.sort_by(|a, b| (rank(&a.1), &a.0).cmp(&(rank(&b.1), &b.0)));
    let column = |pick: fn(&(String, String, String)) -> &str| {
        Arc::new(StringArray::from_iter_values(rows.iter().map(pick))) as ArrayRef
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("details", DataType::Utf8, false),
    ]));
    Ok(RecordBatch::try_new(
        schema,
        vec![column(|r| &r.0), column(|r| &r.1), column(|r| &r.2)],
    )?)
}

/// `\d name`: a cached function's definition, or a table's columns.
async fn describe(shell: &mut Shell<'_>, name: &str) -> Result<()> {
    if let Some(function) = shell.session.function(name) {
        let default_backend = shell
            .session
            .engine()
            .catalog()
            .backends()
            .default_backend()
            .name();
        let text = function_text(&function, default_backend);
        let mut out = std::io::stdout().lock();
        write!(out, "{text}")?;
        return Ok(());
    }
    let table = tables(shell.session)
        .await?
        .into_iter()
        .find(|t| t.name.eq_ignore_ascii_case(name));
    let Some(table) = table else {
        return Err(usage(&format!(
            "no table or cached function named '{name}'; \\d lists them"
        )));
    };
    let text = |values: Vec<String>| Arc::new(StringArray::from(values)) as ArrayRef;
    let schema = Arc::new(Schema::new(vec![
        Field::new("column_name", DataType::Utf8, false),
        Field::new("data_type", DataType::Utf8, false),
        Field::new("is_nullable", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            text(table.columns.iter().map(|f| f.name().clone()).collect()),
            text(
                table
                    .columns
                    .iter()
                    .map(|f| f.data_type().to_string())
                    .collect(),
            ),
            text(
                table
                    .columns
                    .iter()
                    .map(|f| if f.is_nullable() { "YES" } else { "NO" }.to_string())
                    .collect(),
            ),
        ],
    )?;
    print_batches(&[batch], &shell.options, &mut std::io::stdout())
}

/// A cached function as `\d` shows it.
fn function_text(function: &CachedFunction, default_backend: &str) -> String {
    let mut lines = vec![format!("Cached function {}", function.signature())];
    let mut field = |name: &str, value: String| lines.push(format!("  {name:<12} {value}"));
    let cache_args = function.cache_args().join(", ");
    field(
        "cache_args",
        if cache_args.is_empty() {
            "(none: one entry for all arguments)".into()
        } else {
            cache_args
        },
    );
    field("version", function.version().unwrap_or("(none)").into());
    if let Some(namespace) = function.namespace() {
        field("namespace", namespace.into());
    }
    if let Some(column) = function.timeseries() {
        field("timeseries", column.into());
    }
    if let Some(coverage) = function.coverage() {
        field("coverage", coverage.name().into());
    }
    field(
        "backend",
        match function.backend() {
            Some(backend) => backend.into(),
            None => format!("{default_backend} (default)"),
        },
    );
    if let Some(storage) = function.storage_backend() {
        field("storage", storage.into());
    }
    field("returns", function.returns());
    if let Some(source) = function.source() {
        field("defined in", source.display().to_string());
    }
    match function.body() {
        Body::Sql(body) => {
            lines.push("  body".into());
            lines.extend(body.text().lines().map(|l| format!("    {l}")));
        }
        _ => lines.push("  body         (Rust)".into()),
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_mistakes_say_what_to_type() {
        assert_eq!(Command::parse("\\q").unwrap(), Command::Quit);
        assert_eq!(
            Command::parse("\\d agg_and_clip").unwrap(),
            Command::Describe(Some("agg_and_clip".into()))
        );
        assert_eq!(
            Command::parse("\\timing off").unwrap(),
            Command::Timing(Some(false))
        );
        assert_eq!(
            Command::parse("\\pset format csv").unwrap(),
            Command::Pset(Some(("format".into(), "csv".into())))
        );
        let err = Command::parse("\\x").unwrap_err().to_string();
        assert!(err.contains("\\? lists the commands"), "{err}");
        let err = Command::parse("\\i").unwrap_err().to_string();
        assert!(err.contains("\\i queries.sql"), "{err}");
    }
}

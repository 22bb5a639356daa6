//! Command-line flags, after datafusion-cli's where they mean the same:
//! `-c`, `-f`, `-r/--rc`, `--format`, `--maxrows`, `--color`, `-q`.
//! nuthatch adds `--root`, `-m`, `--pager` and `--history-file`.

use std::path::PathBuf;

use clap::Parser;

use crate::manage;

#[derive(Debug, Parser)]
#[command(
    name = "nuthatch",
    version,
    about = "Run SQL over nuthatch cached functions, and manage their caches",
    long_about = "Run SQL over nuthatch cached functions, and manage their caches.\n\n\
                  With no SQL to run (-c, -f) and no command, starts the interactive \
                  prompt; type \\? there for its commands."
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
    /// Run these files when the interactive prompt starts, instead of
    /// ~/.nuthatchrc (may be repeated).
    #[arg(short = 'r', long = "rc")]
    pub rc: Vec<PathBuf>,
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
    /// Rows of a result to print in table format: a number, or inf (0 also
    /// means all).
    #[arg(long, default_value = "40", value_parser = parse_maxrows, global = true)]
    pub maxrows: MaxRows,
    /// Highlight SQL as it is typed at the prompt.
    #[arg(long)]
    pub color: bool,
    /// Print only results: no call reports and no footer.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Page results through a pager when the output is a terminal, as psql
    /// does: $NUTHATCH_PAGER, else $PAGER, else "less -SFRX" (which exits
    /// at once for results that fit the screen).
    #[arg(long)]
    pub pager: bool,
    /// Where the prompt keeps its history (default: $NUTHATCH_HISTORY_FILE,
    /// else nuthatch/history under the user's data directory).
    #[arg(long, env = "NUTHATCH_HISTORY_FILE")]
    pub history_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Tsv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    NdJson,
}

impl Format {
    pub const NAMES: [&'static str; 5] = ["table", "csv", "tsv", "json", "nd-json"];

    pub fn parse(text: &str) -> Option<Format> {
        use clap::ValueEnum;
        Format::from_str(text, true).ok()
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Json => "json",
            Format::NdJson => "nd-json",
        }
    }
}

/// How many rows of a result the table format prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxRows {
    Limit(usize),
    Unlimited,
}

impl MaxRows {
    pub fn limit(self) -> Option<usize> {
        match self {
            MaxRows::Limit(n) => Some(n),
            MaxRows::Unlimited => None,
        }
    }
}

impl std::fmt::Display for MaxRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MaxRows::Limit(n) => write!(f, "{n}"),
            MaxRows::Unlimited => f.write_str("inf"),
        }
    }
}

pub(crate) fn parse_maxrows(text: &str) -> Result<MaxRows, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "inf" | "infinite" | "none" | "0" => Ok(MaxRows::Unlimited),
        number => number
            .parse()
            .map(MaxRows::Limit)
            .map_err(|_| format!("'{text}' is not a row count; use a number or inf")),
    }
}

fn parse_memory_limit(text: &str) -> nuthatch::crates::catalog::Result<usize> {
    nuthatch::crates::catalog::config::parse_memory_limit(text)
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

    /// The rc files the prompt runs first: those given, else ~/.nuthatchrc
    /// if there is one.
    pub fn rc_files(&self) -> Vec<PathBuf> {
        if !self.rc.is_empty() {
            return self.rc.clone();
        }
        std::env::home_dir()
            .map(|home| home.join(".nuthatchrc"))
            .filter(|path| path.is_file())
            .into_iter()
            .collect()
    }

    /// Where the prompt's history lives.
    pub fn history_path(&self) -> Option<PathBuf> {
        if let Some(path) = &self.history_file {
            return Some(path.clone());
        }
        data_dir().map(|dir| dir.join("nuthatch").join("history"))
    }
}

/// The user's data directory: $XDG_DATA_HOME, else ~/.local/share (on
/// macOS, ~/Library/Application Support).
fn data_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let home = std::env::home_dir()?;
    Some(if cfg!(target_os = "macos") {
        home.join("Library").join("Application Support")
    } else {
        home.join(".local").join("share")
    })
}

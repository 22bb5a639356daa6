//! The management commands: `list`, `delete`, `import`, `refresh`,
//! `vacuum`, `print-config`.
//!
//! Each is a thin layer over the `nuthatch` system tables: its options
//! become a `WHERE` on `nuthatch.caches` (values quoted, never spliced),
//! `list` prints that query, `delete` previews it and runs the matching
//! `DELETE`, `import` previews it on the source tier and copies what it
//! selected. Options follow Python nuthatch's CLI where they make sense;
//! unlike it, `--yes` is honoured, null markers are listed and deleted, and
//! namespaced and zero-argument entries are listed without special flags.

use std::collections::HashSet;
use std::io::{BufRead, IsTerminal, Write};

use arrow::array::{Array, AsArray, RecordBatch};
use clap::{Args as ClapArgs, Subcommand};
use datafusion::error::{DataFusionError, Result};
use futures::StreamExt;
use nuthatch::crates::catalog::{Imported, Listed};
use nuthatch::{Config, RefreshAction, RefreshStep, Session};

use crate::print::{print_batches, PrintOptions};
use crate::Args;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List cache entries: a query of nuthatch.caches.
    List {
        #[command(flatten)]
        select: Selector,
        /// Show every column of nuthatch.caches.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Delete cache entries (metadata first, then data); mirrors are never
    /// touched.
    Delete {
        #[command(flatten)]
        select: Selector,
        /// List what would be deleted and stop.
        #[arg(long)]
        dry_run: bool,
        /// Delete without asking.
        #[arg(short, long)]
        yes: bool,
    },
    /// Copy entries from a mirror or another store into root.
    Import {
        #[command(flatten)]
        select: Selector,
        /// The configured tier to copy from (a mirror's name), or the
        /// location of another store (a folder or object-store URL).
        #[arg(long)]
        from: String,
        /// List what would be imported and stop.
        #[arg(long)]
        dry_run: bool,
        /// Import without asking.
        #[arg(short, long)]
        yes: bool,
    },
    /// Compute stale entries again, inputs first, each once (entries on
    /// mirrors are listed, never written).
    Refresh {
        /// Only the stale entries of these functions (and the stale
        /// entries they read); all stale entries when none are named.
        functions: Vec<String>,
        /// List what would be computed again, and why, and stop.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove what killed and superseded writes left on root and local:
    /// incomplete uploads, staged files, dead leases, unreferenced Delta
    /// files, empty folders; data without metadata is listed (removed with
    /// --orphans). Mirrors are never touched.
    Vacuum {
        /// List what would be removed and stop.
        #[arg(long)]
        dry_run: bool,
        /// Also remove data that has no metadata.
        #[arg(long)]
        orphans: bool,
        /// Only what has not changed for this long (30m, 24h, 7d).
        #[arg(long, default_value = "24h")]
        older_than: String,
    },
    /// Print the configuration, secrets masked.
    PrintConfig {
        /// Only this location: root, local, or a mirror's name.
        #[arg(long)]
        location: Option<String>,
        /// Only this backend's section.
        #[arg(long)]
        backend: Option<String>,
        /// Show secret values (keys, passwords, tokens) as they are.
        #[arg(short, long)]
        show_secrets: bool,
    },
    /// Serve SQL over Arrow Flight SQL, for ADBC clients (notebooks).
    Serve(crate::serve::Serve),
    /// Run a worker: stages of queries that coordinators (the prompt,
    /// scripts, `serve`, programs) send, over this project's tiers.
    Worker(crate::worker::WorkerArgs),
}

/// Which entries a command is about.
#[derive(Debug, Clone, Default, ClapArgs)]
pub struct Selector {
    /// A function name, or a key (`function/values`); `*` matches any run
    /// of characters.
    pub target: Option<String>,
    /// Only entries of this namespace.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Only entries stored with this backend (`null` for null markers).
    #[arg(long)]
    pub backend: Option<String>,
    /// Only entries on this tier (root, local, a mirror's name); repeatable.
    #[arg(long = "tier")]
    pub tiers: Vec<String>,
    /// Only entries of this version.
    #[arg(long)]
    pub version: Option<String>,
    /// Any further condition on the columns of nuthatch.caches, in SQL,
    /// such as "last_modified < now() - interval '7 days'".
    #[arg(long = "where")]
    pub condition: Option<String>,
}

/// A SQL string literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A LIKE pattern matching `glob`, whose only wildcard is `*`.
fn like(glob: &str) -> String {
    let mut pattern = String::new();
    for c in glob.chars() {
        match c {
            '*' => pattern.push('%'),
            '%' | '_' | '\\' => {
                pattern.push('\\');
                pattern.push(c);
            }
            c => pattern.push(c),
        }
    }
    format!("{} ESCAPE '\\'", quote(&pattern))
}

impl Selector {
    /// The `WHERE` clause, `extra` conditions included (empty when there
    /// is no condition at all).
    pub fn where_clause(&self, extra: &[String]) -> String {
        let mut conditions: Vec<String> = extra.to_vec();
        if let Some(target) = &self.target {
            match target.split_once('/') {
                Some((function, _)) => {
                    if !function.contains('*') {
                        // Narrows the listing to the function's folder.
                        conditions.push(format!("function = {}", quote(function)));
                    }
                    conditions.push(if target.contains('*') {
                        format!("key LIKE {}", like(target))
                    } else {
                        format!("key = {}", quote(target))
                    });
                }
                None if target.contains('*') => {
                    conditions.push(format!("function LIKE {}", like(target)))
                }
                None => conditions.push(format!("function = {}", quote(target))),
            }
        }
        if let Some(ns) = &self.namespace {
            conditions.push(format!("namespace = {}", quote(ns)));
        }
        match self.backend.as_deref() {
            Some("null") => conditions.push("is_null".into()),
            Some(backend) => conditions.push(format!("backend = {}", quote(backend))),
            None => {}
        }
        if !self.tiers.is_empty() {
            let tiers: Vec<String> = self.tiers.iter().map(|t| quote(t)).collect();
            conditions.push(format!("tier IN ({})", tiers.join(", ")));
        }
        if let Some(version) = &self.version {
            conditions.push(format!("version = {}", quote(version)));
        }
        if let Some(condition) = &self.condition {
            conditions.push(format!("({condition})"));
        }
        if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        }
    }
}

const SHORT_COLUMNS: &str =
    "tier, function, key, namespace, version, backend, rows, bytes, last_modified, coverage";
const ORDER: &str = " ORDER BY tier, key, namespace, backend";

/// The listing `nuthatch list [FUNCTION]` prints, as SQL; the prompt's
/// `\caches [FUNCTION]` runs the same.
pub(crate) fn caches_query(function: Option<&str>) -> String {
    let filter = function
        .map(|f| format!(" WHERE function = {}", quote(f)))
        .unwrap_or_default();
    format!("SELECT {SHORT_COLUMNS} FROM nuthatch.caches{filter}{ORDER}")
}

/// Adjusts the configuration a command needs before the engine opens:
/// `import --from <location>` reads that location as a mirror.
pub fn configure(command: &Command, config: &mut Config) -> Option<String> {
    let Command::Import { from, .. } = command else {
        return None;
    };
    let configured =
        from == "root" || from == "local" || config.mirrors.iter().any(|(name, _)| name == from);
    if configured {
        return Some(from.clone());
    }
    let name = "mirror-import".to_string();
    config.mirrors.push((
        name.clone(),
        nuthatch::TierConfig::new(from.clone()).read_only(true),
    ));
    Some(name)
}

/// Runs a management command.
pub async fn run(
    session: &Session,
    command: &Command,
    source: Option<&str>,
    args: &Args,
    out: &mut impl Write,
) -> Result<()> {
    match command {
        Command::List { select, verbose } => {
            let columns = if *verbose { "*" } else { SHORT_COLUMNS };
            let sql = format!(
                "SELECT {columns} FROM nuthatch.caches{}{ORDER}",
                select.where_clause(&[])
            );
            let batches = query(session, &sql).await?;
            if count(&batches) == 0 {
                writeln!(out, "No cache entries found.")?;
            } else {
                print_batches(&batches, &PrintOptions::from_args(args), out)?;
            }
        }
        Command::Delete {
            select,
            dry_run,
            yes,
        } => {
            // Mirrors are never deleted from; leave them out unless named,
            // in which case the DELETE says why it refuses.
            let extra = if select.tiers.is_empty() {
                vec!["role <> 'mirror'".to_string()]
            } else {
                Vec::new()
            };
            let filter = select.where_clause(&extra);
            let preview = query(
                session,
                &format!("SELECT tier, key, namespace, backend, version FROM nuthatch.caches{filter}{ORDER}"),
            )
            .await?;
            let n = count(&preview);
            if n == 0 {
                writeln!(out, "Nothing to delete.")?;
                return Ok(());
            }
            print_batches(&preview, &PrintOptions::from_args(args), out)?;
            if *dry_run {
                writeln!(out, "Dry run: {} would be deleted.", entries(n))?;
                return Ok(());
            }
            if !confirmed(*yes, &format!("Delete {}?", entries(n)))? {
                writeln!(out, "Nothing deleted.")?;
                return Ok(());
            }
            let result = query(session, &format!("DELETE FROM nuthatch.caches{filter}")).await?;
            let deleted = first_u64(&result).unwrap_or(0);
            writeln!(out, "Deleted {}.", entries(deleted as usize))?;
        }
        Command::Import {
            select,
            dry_run,
            yes,
            ..
        } => {
            let from = source.expect("configure names the source tier of an import");
            import(session, select, from, *dry_run, *yes, args, out).await?;
        }
        Command::Refresh { functions, dry_run } => {
            refresh(session, functions, *dry_run, out).await?;
        }
        Command::Vacuum {
            dry_run,
            orphans,
            older_than,
        } => {
            let sql = format!(
                "{}VACUUM{} OLDER THAN {}",
                if *dry_run { "EXPLAIN " } else { "" },
                if *orphans { " ORPHANS" } else { "" },
                quote(older_than)
            );
            let found = query(session, &sql).await?;
            if count(&found) == 0 {
                writeln!(out, "Nothing to remove.")?;
                return Ok(());
            }
            print_batches(&found, &PrintOptions::from_args(args), out)?;
        }
        Command::PrintConfig {
            location,
            backend,
            show_secrets,
        } => {
            let config = session.engine().config();
            let mut shown = 0;
            for (key, value) in config.describe(*show_secrets) {
                let mut parts = key.split('.');
                let at = parts.next().unwrap_or_default();
                if location.as_deref().is_some_and(|l| l != at) {
                    continue;
                }
                if let Some(backend) = backend {
                    if parts.next() != Some(backend.as_str()) {
                        continue;
                    }
                }
                writeln!(out, "{key} = {value}")?;
                shown += 1;
            }
            if shown == 0 {
                writeln!(out, "No settings match.")?;
            }
        }
        Command::Serve(serve) => crate::serve::run(session, serve).await?,
        Command::Worker(worker) => crate::worker::run(session, worker).await?,
    }
    Ok(())
}

/// `nuthatch refresh`: the plan, then (unless a dry run) each step with a
/// progress line on stderr, as it starts and as it ends.
async fn refresh(
    session: &Session,
    functions: &[String],
    dry_run: bool,
    out: &mut impl Write,
) -> Result<()> {
    let steps = session.plan_refresh(functions).await?;
    if steps.is_empty() {
        writeln!(out, "Nothing is stale.")?;
        return Ok(());
    }
    writeln!(out, "{} stale, inputs first:", entries(steps.len()))?;
    for (at, step) in steps.iter().enumerate() {
        writeln!(out, "{:>3}. {}: {}", at + 1, step.describe(), step.because)?;
        match &step.action {
            RefreshAction::Recompute { sql } => writeln!(out, "     {sql}")?,
            RefreshAction::Skip { why } => writeln!(out, "     skipped: {why}")?,
        }
    }
    if dry_run {
        writeln!(out, "Dry run: nothing was computed.")?;
        return Ok(());
    }
    let started = std::time::Instant::now();
    // Progress goes to stderr, as it goes; the summary to the output.
    let mut progress = |at: usize, of: usize, step: &RefreshStep, done: Option<&str>| match done {
        None => eprintln!("refresh {at}/{of}: {} ...", step.describe()),
        Some(report) => eprintln!("refresh {at}/{of}: {report}"),
    };
    let outcomes = session.run_refresh(&steps, &mut progress).await?;
    let done = outcomes.iter().filter(|o| o.is_some()).count();
    let skipped = outcomes.len() - done;
    write!(
        out,
        "Refreshed {} in {:.1}s",
        entries(done),
        started.elapsed().as_secs_f64()
    )?;
    match skipped {
        0 => writeln!(out, ".")?,
        n => writeln!(out, "; {} skipped.", entries(n))?,
    }
    Ok(())
}

async fn import(
    session: &Session,
    select: &Selector,
    from: &str,
    dry_run: bool,
    yes: bool,
    args: &Args,
    out: &mut impl Write,
) -> Result<()> {
    let catalog = session.engine().catalog();
    let tier = catalog
        .tiers()
        .find(|t| t.name() == from)
        .cloned()
        .ok_or_else(|| DataFusionError::Plan(format!("there is no tier named {from}")))?;
    let mut select = select.clone();
    select.tiers = vec![from.to_string()];
    let preview = query(
        session,
        &format!(
            "SELECT key, namespace, backend, version, rows, bytes FROM nuthatch.caches{}{ORDER}",
            select.where_clause(&[])
        ),
    )
    .await?;
    let n = count(&preview);
    if n == 0 {
        writeln!(out, "Nothing to import from {from}.")?;
        return Ok(());
    }
    print_batches(&preview, &PrintOptions::from_args(args), out)?;
    if dry_run {
        writeln!(out, "Dry run: {} would be imported into root.", entries(n))?;
        return Ok(());
    }
    if !confirmed(yes, &format!("Import {} into root?", entries(n)))? {
        writeln!(out, "Nothing imported.")?;
        return Ok(());
    }
    // The query chose the entries; the listing they came from is read
    // again here to copy them.
    let chosen: HashSet<(String, Option<String>, Option<String>)> = identities(&preview);
    let function = select
        .target
        .as_deref()
        .map(|t| t.split('/').next().unwrap_or(t))
        .filter(|f| !f.contains('*'));
    let mut listed = catalog.list(&tier, function).await?;
    catalog.read_rows(&mut listed).await?;
    let chosen: Vec<Listed> = listed
        .into_iter()
        .filter(|l| {
            let (key, namespace) = l.key();
            chosen.contains(&(key, namespace, l.backend().map(str::to_string)))
        })
        .collect();
    let root = catalog.root().clone();
    let mut results = futures::stream::iter(chosen.iter().map(|l| catalog.import_listed(l, &root)))
        .buffer_unordered(8);
    let (mut copied, mut present, mut done) = (0, 0, 0);
    while let Some(result) = results.next().await {
        match result.map_err(|e| DataFusionError::External(Box::new(e)))? {
            Imported::Copied => copied += 1,
            Imported::AlreadyThere => present += 1,
        }
        done += 1;
        if done % 100 == 0 {
            eprintln!("imported {done} of {}", chosen.len());
        }
    }
    writeln!(
        out,
        "Imported {} into root ({present} already there).",
        entries(copied)
    )?;
    Ok(())
}

/// `(key, namespace, backend)` of each preview row.
fn identities(batches: &[RecordBatch]) -> HashSet<(String, Option<String>, Option<String>)> {
    let mut found = HashSet::new();
    for batch in batches {
        let text = |name: &str| {
            let column = batch.column_by_name(name).expect("selected column");
            column.as_string::<i32>().clone()
        };
        let (keys, namespaces, backends) = (text("key"), text("namespace"), text("backend"));
        for i in 0..batch.num_rows() {
            let value =
                |a: &arrow::array::StringArray| a.is_valid(i).then(|| a.value(i).to_string());
            found.insert((
                keys.value(i).to_string(),
                value(&namespaces),
                value(&backends),
            ));
        }
    }
    found
}

fn entries(n: usize) -> String {
    if n == 1 {
        "1 entry".into()
    } else {
        format!("{n} entries")
    }
}

async fn query(session: &Session, sql: &str) -> Result<Vec<RecordBatch>> {
    tracing::debug!(sql, "management query");
    session.sql(sql).await?.collect().await
}

fn count(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

fn first_u64(batches: &[RecordBatch]) -> Option<u64> {
    let batch = batches.iter().find(|b| b.num_rows() > 0)?;
    let column = batch
        .column(0)
        .as_primitive_opt::<arrow::datatypes::UInt64Type>()?;
    Some(column.value(0))
}

/// Asks on the terminal unless `yes`; without a terminal to ask on,
/// refuses rather than guess.
fn confirmed(yes: bool, question: &str) -> Result<bool> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(DataFusionError::Plan(
            "not asking without a terminal: pass --yes to go ahead, or --dry-run to only list"
                .into(),
        ));
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_become_a_quoted_where_clause() {
        let select = Selector {
            target: Some("hourly/it's*".into()),
            namespace: Some("ns".into()),
            backend: Some("null".into()),
            tiers: vec!["root".into(), "local".into()],
            version: None,
            condition: Some("rows > 10".into()),
        };
        assert_eq!(
            select.where_clause(&[]),
            " WHERE function = 'hourly' AND key LIKE 'hourly/it''s%' ESCAPE '\\' AND \
             namespace = 'ns' AND is_null AND tier IN ('root', 'local') AND (rows > 10)"
        );
        let function = Selector {
            target: Some("hour_ly".into()),
            ..Selector::default()
        };
        assert_eq!(function.where_clause(&[]), " WHERE function = 'hour_ly'");
        assert_eq!(Selector::default().where_clause(&[]), "");
        assert_eq!(like("a_b*"), "'a\\_b%' ESCAPE '\\'");
    }
}

//! Refreshing stale entries: `nuthatch refresh`, `REFRESH STALE` and
//! `EXPLAIN REFRESH STALE` in SQL.
//!
//! A refresh plans first ([`Session::plan_refresh`]): every entry of the
//! tiers is judged ([`nuthatch_catalog::stale`]); the stale entries of the
//! functions asked for (all, when none are named) are taken, with the
//! stale entries they read, however deep, since an entry computed again
//! from a stale input would be stale still. They are ordered inputs
//! first, each once; a lineage that loops is refused. Each step then
//! calls its function again with the arguments its entry recorded,
//! `recompute => true`, in the mode that writes its tier (`overwrite` for
//! root, `local_overwrite` for local), with its backend and namespace
//! ([`Session::run_refresh`]). Entries on mirrors are never written, and
//! entries whose arguments were not recorded (Python's, or an earlier
//! release's) cannot be called again; both are listed as skipped, with
//! why.
//!
//! The plan is made of SQL calls a user could type, so a dry run shows
//! exactly what a refresh runs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{plan_err, DataFusionError, Result};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::MemTable;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;
use nuthatch_catalog::system::caches::{list_rows, CacheRow, Selection};
use nuthatch_catalog::{Input, Lineage, Listed, MetadataRow, Staleness, TierRole};

use crate::session::Session;
use crate::value::Value;

/// One entry a refresh computes again, or leaves and says why.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshStep {
    pub tier: String,
    pub function: String,
    pub key: String,
    pub namespace: Option<String>,
    pub backend: String,
    /// Why the entry is stale.
    pub because: String,
    pub action: RefreshAction,
}

/// What a refresh does with one stale entry.
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshAction {
    /// Runs this query, which computes the entry again.
    Recompute { sql: String },
    /// Leaves the entry; why.
    Skip { why: String },
}

impl RefreshStep {
    /// `function: key [namespace]` on its tier, for progress lines.
    pub fn describe(&self) -> String {
        let name = nuthatch_catalog::stale::entry_name(&self.key, self.namespace.as_deref());
        format!("{name} on {}", self.tier)
    }
}

/// Told of each step of a refresh: its number, how many there are, the
/// step, and `None` as it starts or how it ended.
pub type RefreshProgress<'a> = dyn FnMut(usize, usize, &RefreshStep, Option<&str>) + Send + 'a;

/// A parsed `[EXPLAIN] REFRESH STALE [function, ...]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshStatement {
    pub explain: bool,
    pub functions: Vec<String>,
}

impl RefreshStatement {
    /// Parses `sql` if it is a refresh; `None` for any other statement.
    pub fn parse(sql: &str) -> Result<Option<RefreshStatement>> {
        let dialect = GenericDialect {};
        let mut parser = Parser::new(&dialect).try_with_sql(sql)?;
        let explain = is_word(&parser.peek_token().token, "EXPLAIN");
        if explain {
            parser.next_token();
        }
        if !is_word(&parser.peek_token().token, "REFRESH")
            || !is_word(&parser.peek_nth_token(1).token, "STALE")
        {
            return Ok(None);
        }
        parser.next_token();
        parser.next_token();
        let mut functions = Vec::new();
        loop {
            match parser.next_token().token {
                Token::EOF | Token::SemiColon => break,
                Token::Comma if !functions.is_empty() => continue,
                Token::Word(word) => functions.push(word.value.to_ascii_lowercase()),
                other => {
                    return plan_err!(
                        "REFRESH STALE takes the names of cached functions, separated by \
                         commas; found {other}"
                    )
                }
            }
        }
        Ok(Some(RefreshStatement { explain, functions }))
    }
}

fn is_word(token: &Token, word: &str) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

/// A stale entry found by the listing, with its place in the lineage.
struct Stale {
    listed: Listed,
    row: Arc<MetadataRow>,
    because: String,
}

/// How an entry is named across listings and lineage records.
fn identity(tier: &str, key: &str, namespace: Option<&str>, backend: &str) -> String {
    format!("{tier}|{key}|{}|{backend}", namespace.unwrap_or(""))
}

impl Session {
    /// The steps a refresh of `functions` (every function, when empty)
    /// takes, inputs first (see the module docs); nothing is run.
    pub async fn plan_refresh(&self, functions: &[String]) -> Result<Vec<RefreshStep>> {
        for name in functions {
            if self.function(name).is_none() {
                let mut known: Vec<String> = (self.engine().functions().iter())
                    .map(|f| f.name().to_string())
                    .collect();
                known.sort();
                return plan_err!(
                    "refresh: there is no cached function named {name}; defined are: {}",
                    if known.is_empty() {
                        "(none)".to_string()
                    } else {
                        known.join(", ")
                    }
                );
            }
        }
        let catalog = self.engine().catalog();
        let selection = Selection {
            only_stale: true,
            files: Some(self.context().runtime_env()),
            ..Selection::default().judging(true)
        };
        let mut stale: BTreeMap<String, Stale> = BTreeMap::new();
        for listing in list_rows(catalog, &selection).await? {
            let (CacheRow::Stored(listed), Some(Staleness::Stale(_))) =
                (&listing.row, &listing.staleness)
            else {
                continue;
            };
            let Some(row) = listed.metadata() else {
                continue;
            };
            let (key, namespace) = listed.key();
            let id = identity(listed.tier.name(), &key, namespace.as_deref(), &row.backend);
            let because = (listing.staleness.as_ref()).and_then(Staleness::because);
            stale.insert(
                id,
                Stale {
                    row: Arc::new(row.clone()),
                    listed: (**listed).clone(),
                    because: because.unwrap_or_default(),
                },
            );
        }
        let wanted: Vec<String> = (stale.iter())
            .filter(|(_, s)| functions.is_empty() || functions.contains(&s.listed.function))
            .map(|(id, _)| id.clone())
            .collect();
        let mut order = Vec::new();
        let mut done = BTreeSet::new();
        for id in wanted {
            visit(&id, &stale, &mut Vec::new(), &mut done, &mut order)?;
        }
        Ok(order.into_iter().map(|id| self.step(&stale[&id])).collect())
    }

    /// The step that refreshes `entry`.
    fn step(&self, entry: &Stale) -> RefreshStep {
        let (key, namespace) = entry.listed.key();
        let tier = &entry.listed.tier;
        let function = entry.listed.function.clone();
        let action = match (tier.role(), &entry.row.recorded.arguments) {
            (TierRole::Mirror, _) => RefreshAction::Skip {
                why: "it is on a mirror, which nuthatch reads and never writes; refresh it \
                      where that store is written"
                    .into(),
            },
            (_, None) => RefreshAction::Skip {
                why: format!(
                    "its arguments were not recorded (written by Python nuthatch or an \
                     earlier release); call {function} with recompute => true"
                ),
            },
            (_, Some(arguments)) => match self.function(&function) {
                None => RefreshAction::Skip {
                    why: format!("{function} is not defined here"),
                },
                Some(defined) => RefreshAction::Recompute {
                    sql: recompute_sql(&defined, &entry.row, arguments, tier.role()),
                },
            },
        };
        RefreshStep {
            tier: tier.name().to_string(),
            function,
            key,
            namespace,
            backend: entry.row.backend.clone(),
            because: entry.because.clone(),
            action,
        }
    }

    /// Runs `steps` in order, calling `progress` with each step's number
    /// as it starts (`None`) and as it ends (its outcome, or `skipped`);
    /// returns each step's outcome (`None` for a skipped one). A step that
    /// fails stops the refresh, naming it; what was refreshed before stays
    /// refreshed.
    pub async fn run_refresh(
        &self,
        steps: &[RefreshStep],
        progress: &mut RefreshProgress<'_>,
    ) -> Result<Vec<Option<String>>> {
        let mut outcomes = Vec::new();
        for (at, step) in steps.iter().enumerate() {
            progress(at + 1, steps.len(), step, None);
            let RefreshAction::Recompute { sql } = &step.action else {
                progress(at + 1, steps.len(), step, Some("skipped"));
                outcomes.push(None);
                continue;
            };
            // A plain query: the context plans it, with no statement of ours.
            let ran = async { self.context().sql(sql).await?.collect().await }.await;
            let reports = self.take_reports();
            if let Err(e) = ran {
                return Err(DataFusionError::Plan(format!(
                    "refresh stopped at step {} of {} ({}): {}; the {} steps before it were done",
                    at + 1,
                    steps.len(),
                    step.describe(),
                    crate::error_message(&e),
                    at
                )));
            }
            let report = (reports.iter().rev()).find(|r| r.function == step.function);
            let line = report.map_or_else(|| "done".to_string(), |r| r.to_string());
            progress(at + 1, steps.len(), step, Some(&line));
            outcomes.push(Some(
                report.map_or_else(|| "done".to_string(), |r| r.outcome_name().to_string()),
            ));
        }
        Ok(outcomes)
    }

    /// Carries out a `[EXPLAIN] REFRESH STALE` statement: its steps as a
    /// table, with what each did unless explained only.
    pub(crate) async fn refresh_statement(&self, statement: RefreshStatement) -> Result<DataFrame> {
        let steps = self.plan_refresh(&statement.functions).await?;
        let outcomes = match statement.explain {
            true => vec![None; steps.len()],
            false => {
                let mut log = |at: usize, of: usize, step: &RefreshStep, done: Option<&str>| {
                    if let Some(done) = done {
                        tracing::info!("refresh {at}/{of}: {}: {done}", step.describe());
                    }
                };
                self.run_refresh(&steps, &mut log).await?
            }
        };
        let batch = steps_batch(&steps, &outcomes)?;
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        self.context().read_table(Arc::new(table))
    }
}

/// Puts `id` after its stale inputs in `order`, each once; `path` is the
/// chain being followed, to refuse a loop.
fn visit(
    id: &str,
    stale: &BTreeMap<String, Stale>,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
    order: &mut Vec<String>,
) -> Result<()> {
    if done.contains(id) {
        return Ok(());
    }
    let entry = &stale[id];
    let (key, namespace) = entry.listed.key();
    let name = nuthatch_catalog::stale::entry_name(&key, namespace.as_deref());
    if path.contains(&name) {
        path.push(name);
        return plan_err!(
            "refresh: the lineage of these entries is a cycle ({}), which is refused; \
             recompute one of them with recompute => true first",
            path.join(" -> ")
        );
    }
    path.push(name);
    if let Lineage::Recorded(inputs) = &entry.row.recorded.lineage {
        let reader = &entry.listed.tier;
        for input in inputs {
            let Input::Entry(input) = input else { continue };
            // As staleness reads it: "root" of an entry on a mirror is
            // that mirror.
            let tier = match (reader.role(), input.tier.as_str()) {
                (TierRole::Mirror, "root") => reader.name(),
                _ => input.tier.as_str(),
            };
            let input_id = identity(tier, &input.key, input.namespace.as_deref(), &input.backend);
            if stale.contains_key(&input_id) {
                visit(&input_id, stale, path, done, order)?;
            }
        }
    }
    path.pop();
    done.insert(id.to_string());
    order.push(id.to_string());
    Ok(())
}

/// The call that computes `row`'s entry again: its recorded arguments (a
/// body that computes its window gets the whole time the entry covers),
/// its backend and namespace, in the mode that overwrites `role`'s tier.
fn recompute_sql(
    function: &crate::CachedFunction,
    row: &MetadataRow,
    arguments: &[(String, String)],
    role: TierRole,
) -> String {
    let mut named: Vec<(String, String)> = arguments.to_vec();
    if function.covers_windows() {
        if let Some(coverage) = &row.recorded.coverage {
            let hull = coverage.hull();
            let literal = |micros: Option<i64>| match micros
                .and_then(chrono::DateTime::from_timestamp_micros)
            {
                Some(at) => Value::Timestamp {
                    at: at.naive_utc(),
                    date_only: false,
                }
                .sql_literal(),
                None => "NULL".to_string(),
            };
            for (name, value) in &mut named {
                match name.as_str() {
                    "start_time" => *value = literal(hull.start),
                    "end_time" => *value = literal(hull.end.map(|end| end - 1)),
                    _ => {}
                }
            }
        }
    }
    let mode = match role {
        TierRole::Local => "local_overwrite",
        _ => "overwrite",
    };
    let mut args: Vec<String> = (named.iter())
        .map(|(name, literal)| format!("{name} => {literal}"))
        .collect();
    args.push("recompute => true".into());
    args.push(format!("cache_mode => '{mode}'"));
    args.push(format!("backend => '{}'", row.backend));
    if let Some(ns) = &row.namespace {
        args.push(format!("namespace => '{}'", ns.replace('\'', "''")));
    }
    format!(
        "SELECT count(*) AS rows FROM {}({})",
        function.name(),
        args.join(", ")
    )
}

/// The steps as the SQL form returns them.
fn steps_batch(steps: &[RefreshStep], outcomes: &[Option<String>]) -> Result<RecordBatch> {
    let text = |f: &dyn Fn(usize, &RefreshStep) -> Option<String>| {
        Arc::new(StringArray::from_iter(
            steps.iter().enumerate().map(|(i, s)| f(i, s)),
        )) as ArrayRef
    };
    let field = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    let schema = Arc::new(Schema::new(vec![
        Field::new("step", DataType::Int64, false),
        field("tier", false),
        field("function", false),
        field("key", false),
        field("namespace", true),
        field("stale_because", false),
        field("action", false),
        field("call", true),
        field("outcome", true),
    ]));
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(1..=steps.len() as i64)),
            text(&|_, s| Some(s.tier.clone())),
            text(&|_, s| Some(s.function.clone())),
            text(&|_, s| Some(s.key.clone())),
            text(&|_, s| s.namespace.clone()),
            text(&|_, s| Some(s.because.clone())),
            text(&|_, s| {
                Some(match &s.action {
                    RefreshAction::Recompute { .. } => "recompute".to_string(),
                    RefreshAction::Skip { why } => format!("skip: {why}"),
                })
            }),
            text(&|_, s| match &s.action {
                RefreshAction::Recompute { sql } => Some(sql.clone()),
                RefreshAction::Skip { .. } => None,
            }),
            text(&|i, _| outcomes.get(i).cloned().flatten()),
        ],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_statements_parse() {
        let parsed = RefreshStatement::parse("EXPLAIN REFRESH STALE agg_and_clip, My_First_Cache;")
            .unwrap()
            .unwrap();
        assert!(parsed.explain);
        assert_eq!(parsed.functions, vec!["agg_and_clip", "my_first_cache"]);
        let all = RefreshStatement::parse("refresh stale").unwrap().unwrap();
        assert!(!all.explain && all.functions.is_empty());
        assert!(RefreshStatement::parse("EXPLAIN SELECT 1")
            .unwrap()
            .is_none());
        assert!(RefreshStatement::parse("REFRESH STALE 'x'").is_err());
    }
}

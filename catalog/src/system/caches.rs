//! `nuthatch.caches`: one row per entry per tier.
//!
//! Rows come from [`Catalog::list`] on each tier, plus what the memory tier
//! holds. `WHERE function = ...` and `WHERE tier = ...` (or `IN` lists) are
//! pushed into the listing, so they LIST only those folders and tiers; they
//! are applied again above the scan. Metadata rows are read only when a
//! column needs them: `count(*)`, or a query of `tier`, `role`,
//! `function`, `backend` and `is_null`, is one LIST per tier.
//!
//! `stale` and `stale_because` judge each entry ([`crate::stale`]): they
//! read the rows of the entries' inputs, once each, and only when a query
//! asks for them; `WHERE stale` is pushed into the listing, which then
//! returns stale entries only.
//!
//! `DELETE FROM nuthatch.caches WHERE ...` selects rows the same way and
//! removes those entries ([`super::delete`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, RecordBatchOptions, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use futures::FutureExt;

use super::{allowed_values, lazy_scan, restricts};
use crate::listing::Listed;
use crate::memory::MemoryEntry;
use crate::stale::Staleness;
use crate::tier::TierRole;
use crate::Catalog;

/// Columns that come from the path alone; every other needs the metadata
/// row.
const PATH_COLUMNS: [&str; 5] = ["tier", "role", "function", "backend", "is_null"];

/// The listing tier name of memoized results.
pub const MEMORY: &str = "memory";

/// One row of the table.
#[derive(Debug, Clone)]
pub enum CacheRow {
    Stored(Box<Listed>),
    Memoized(MemoryEntry),
}

impl CacheRow {
    pub fn tier(&self) -> &str {
        match self {
            CacheRow::Stored(listed) => listed.tier.name(),
            CacheRow::Memoized(_) => MEMORY,
        }
    }

    /// Whether a `DELETE` may remove it.
    pub fn is_deletable(&self) -> bool {
        match self {
            CacheRow::Stored(listed) => !listed.tier.is_read_only(),
            CacheRow::Memoized(_) => true,
        }
    }

    /// `tier key [backend]`, for messages and plans.
    pub fn describe(&self) -> String {
        match self {
            CacheRow::Stored(listed) => {
                let (key, namespace) = listed.key();
                let ns = namespace
                    .map(|ns| format!(" namespace={ns}"))
                    .unwrap_or_default();
                let what = listed.backend().unwrap_or("null");
                format!("{} {key}{ns} {what}", listed.tier.name())
            }
            CacheRow::Memoized(entry) => format!("{MEMORY} {}", entry.key),
        }
    }
}

/// Which tiers and functions a query asks for.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub tiers: Option<BTreeSet<String>>,
    pub roles: Option<BTreeSet<String>>,
    pub functions: Option<BTreeSet<String>>,
    /// Whether metadata rows must be read.
    pub rows: bool,
    /// Whether entries must be judged stale or not ([`crate::stale`]).
    pub judges: bool,
    /// Only stale entries are wanted (`WHERE stale`).
    pub only_stale: bool,
    /// Where judging finds the files entries read (the session's stores).
    pub files: Option<Arc<datafusion::execution::runtime_env::RuntimeEnv>>,
}

impl Selection {
    pub fn from_filters(filters: &[Expr], rows: bool) -> Selection {
        Selection {
            tiers: allowed_values(filters, "tier"),
            roles: allowed_values(filters, "role"),
            functions: allowed_values(filters, "function"),
            rows,
            judges: filters.iter().any(mentions_staleness),
            only_stale: filters.iter().any(wants_stale),
            files: None,
        }
    }

    /// Judges staleness too (a query of `stale` or `stale_because`).
    pub fn judging(mut self, judges: bool) -> Selection {
        self.judges |= judges;
        self.rows |= self.judges;
        self
    }

    fn wants(&self, tier: &str, role: &str) -> bool {
        self.tiers.as_ref().is_none_or(|t| t.contains(tier))
            && self.roles.as_ref().is_none_or(|r| r.contains(role))
    }
}

#[derive(Debug)]
pub struct CachesTable {
    catalog: Arc<Catalog>,
    schema: SchemaRef,
}

impl CachesTable {
    pub fn new(catalog: Arc<Catalog>) -> CachesTable {
        CachesTable {
            catalog,
            schema: caches_schema(),
        }
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }
}

pub fn caches_schema() -> SchemaRef {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    let micros = |name: &str, tz: Option<&str>| {
        Field::new(
            name,
            DataType::Timestamp(TimeUnit::Microsecond, tz.map(Into::into)),
            true,
        )
    };
    Arc::new(Schema::new(vec![
        text("tier", false),
        text("role", false),
        text("function", false),
        text("key", false),
        text("namespace", true),
        text("version", true),
        text("backend", true),
        Field::new("is_null", DataType::Boolean, false),
        text("state", true),
        text("uri", true),
        Field::new("rows", DataType::Int64, true),
        Field::new("bytes", DataType::Int64, true),
        micros("last_modified", Some("UTC")),
        text("user", true),
        text("commit", true),
        text("time_column", true),
        micros("time_min", None),
        micros("time_max", None),
        text("coverage", true),
        text("provisional", true),
        Field::new("parts", DataType::Int64, true),
        text("problem", true),
        text("fingerprint", true),
        Field::new("stale", DataType::Boolean, true),
        text("stale_because", true),
    ]))
}

/// Lists what `selection` asks for: the LISTs of every tier and function
/// at once, then the metadata rows if asked, then the memory tier.
pub async fn list_rows(catalog: &Catalog, selection: &Selection) -> Result<Vec<Listing>> {
    let lists = listings_of(catalog, selection)
        .into_iter()
        .map(|(tier, function)| async move {
            match selection.rows {
                true => catalog.list(tier, function.as_deref()).await,
                false => catalog.list_paths(tier, function.as_deref()).await,
            }
        });
    let mut listed: Vec<Listed> = futures::future::try_join_all(lists)
        .await?
        .into_iter()
        .flatten()
        .collect();
    if selection.rows {
        catalog.read_rows(&mut listed).await?;
    }
    let verdicts = match selection.judges {
        true => judge_all(catalog, &listed, selection.files.clone()).await,
        false => vec![None; listed.len()],
    };
    let mut rows: Vec<Listing> = (listed.into_iter().zip(verdicts))
        .map(|(l, staleness)| Listing {
            row: CacheRow::Stored(Box::new(l)),
            staleness,
        })
        .filter(|l| !selection.only_stale || l.staleness.as_ref().is_some_and(|s| s.is_stale()))
        .collect();
    rows.extend(memoized(catalog, selection).map(|entry| Listing {
        row: CacheRow::Memoized(entry),
        staleness: None,
    }));
    Ok(rows)
}

/// How many rows [`list_rows`] would return, without building them when
/// no row is read or judged: a local tier's count then costs each unchanged
/// folder its `stat` ([`Catalog::count_paths`]).
async fn count_rows(catalog: &Catalog, selection: &Selection) -> Result<usize> {
    if selection.rows || selection.judges || selection.only_stale {
        return Ok(list_rows(catalog, selection).await?.len());
    }
    let counts = listings_of(catalog, selection)
        .into_iter()
        .map(
            |(tier, function)| async move { catalog.count_paths(tier, function.as_deref()).await },
        );
    let stored: usize = futures::future::try_join_all(counts).await?.iter().sum();
    Ok(stored + memoized(catalog, selection).count())
}

/// The listings a selection takes: each tier it wants, for each function
/// it names (all functions at once when it names none).
fn listings_of<'a>(
    catalog: &'a Catalog,
    selection: &Selection,
) -> Vec<(&'a crate::tier::Tier, Option<String>)> {
    let functions: Vec<Option<String>> = match &selection.functions {
        Some(names) => names.iter().cloned().map(Some).collect(),
        None => vec![None],
    };
    let tiers = catalog
        .tiers()
        .filter(|t| selection.wants(t.name(), t.role().name()));
    tiers
        .flat_map(|tier| functions.iter().map(move |f| (tier, f.clone())))
        .collect()
}

/// The memoized results a selection takes.
fn memoized<'a>(
    catalog: &Catalog,
    selection: &'a Selection,
) -> impl Iterator<Item = MemoryEntry> + 'a {
    let wanted = selection.wants(MEMORY, MEMORY) && !selection.only_stale;
    let entries = if wanted {
        catalog.memory().list()
    } else {
        Vec::new()
    };
    entries.into_iter().filter(|entry| {
        let function = entry.key.split('/').next().unwrap_or_default();
        selection
            .functions
            .as_ref()
            .is_none_or(|f| f.contains(function))
    })
}

/// A row of the table with, when asked, whether its entry is stale.
#[derive(Debug, Clone)]
pub struct Listing {
    pub row: CacheRow,
    pub staleness: Option<Staleness>,
}

/// The staleness of each listed entry, judged together so that an input
/// many entries read is read once; null markers and rows that did not
/// read have none.
async fn judge_all(
    catalog: &Catalog,
    listed: &[Listed],
    files: Option<Arc<datafusion::execution::runtime_env::RuntimeEnv>>,
) -> Vec<Option<Staleness>> {
    let mut judge = catalog.judge();
    if let Some(runtime) = files {
        judge = judge.with_files(runtime);
    }
    let mut verdicts = Vec::with_capacity(listed.len());
    for entry in listed {
        verdicts.push(match entry.metadata() {
            Some(row) => Some(judge.staleness(&entry.tier, row).await),
            None => None,
        });
    }
    verdicts
}

/// Does `filter` read `stale` or `stale_because`?
fn mentions_staleness(filter: &Expr) -> bool {
    filter
        .column_refs()
        .iter()
        .any(|c| c.name == "stale" || c.name == "stale_because")
}

/// Is `filter` `stale` or `stale = true`, which keeps stale entries only?
fn wants_stale(filter: &Expr) -> bool {
    let is_stale = |e: &Expr| matches!(e, Expr::Column(c) if c.name == "stale");
    match filter {
        Expr::Column(_) => is_stale(filter),
        Expr::BinaryExpr(b) if b.op == datafusion::logical_expr::Operator::Eq => {
            let truth = |e: &Expr| {
                matches!(
                    e,
                    Expr::Literal(datafusion::common::ScalarValue::Boolean(Some(true)), _)
                )
            };
            (is_stale(&b.left) && truth(&b.right)) || (is_stale(&b.right) && truth(&b.left))
        }
        Expr::IsTrue(inner) => is_stale(inner),
        _ => false,
    }
}

/// The rows as a batch of [`caches_schema`].
pub fn rows_batch(listings: &[Listing]) -> Result<RecordBatch> {
    let mut tier = Vec::new();
    let mut role = Vec::new();
    let mut function = Vec::new();
    let mut key = Vec::new();
    let mut namespace = Vec::new();
    let mut version = Vec::new();
    let mut backend = Vec::new();
    let mut is_null = Vec::new();
    let mut state = Vec::new();
    let mut uri = Vec::new();
    let mut count = Vec::new();
    let mut bytes = Vec::new();
    let mut modified = Vec::new();
    let mut user = Vec::new();
    let mut commit = Vec::new();
    let mut time_column = Vec::new();
    let mut time_min = Vec::new();
    let mut time_max = Vec::new();
    let mut coverage = Vec::new();
    let mut provisional = Vec::new();
    let mut parts = Vec::new();
    let mut problem = Vec::new();
    let mut fingerprint = Vec::new();
    let mut stale = Vec::new();
    let mut stale_because = Vec::new();
    for listing in listings {
        stale.push(listing.staleness.as_ref().and_then(Staleness::flag));
        stale_because.push(listing.staleness.as_ref().and_then(Staleness::because));
        match &listing.row {
            CacheRow::Stored(listed) => {
                let (k, ns) = listed.key();
                let meta = listed.metadata();
                tier.push(Some(listed.tier.name().to_string()));
                role.push(Some(listed.tier.role().name().to_string()));
                function.push(Some(listed.function.clone()));
                key.push(Some(k));
                namespace.push(ns);
                version.push(meta.and_then(|m| m.version.clone()));
                backend.push(listed.backend().map(str::to_string));
                is_null.push(listed.is_null());
                state.push(match (listed.is_null(), meta, listed.corruption()) {
                    (true, _, _) => Some("confirmed".to_string()),
                    (_, Some(m), _) => Some(m.state.clone()),
                    (_, None, Some(_)) => Some("corrupt".to_string()),
                    (_, None, None) => None,
                });
                uri.push(meta.map(|m| m.path.clone()));
                count.push(meta.and_then(|m| m.recorded.rows));
                bytes.push(meta.and_then(|m| m.recorded.bytes));
                modified.push(match meta {
                    Some(m) => Some(m.last_modified as i64),
                    None if listed.is_null() => Some(listed.object_modified.timestamp_micros()),
                    None => None,
                });
                user.push(meta.map(|m| m.user.clone()));
                commit.push(meta.map(|m| m.commit_hash.clone()));
                time_column.push(meta.and_then(|m| m.recorded.time_column.clone()));
                time_min.push(meta.and_then(|m| m.recorded.time_min));
                time_max.push(meta.and_then(|m| m.recorded.time_max));
                let shown = |c: &Option<nuthatch_backends::coverage::Coverage>| {
                    c.as_ref().map(|c| c.to_string())
                };
                coverage.push(meta.and_then(|m| shown(&m.recorded.coverage)));
                provisional.push(meta.and_then(|m| shown(&m.recorded.provisional)));
                parts.push(meta.and_then(|m| m.recorded.parts.as_ref().map(|p| p.len() as i64)));
                fingerprint.push(
                    meta.and_then(|m| m.recorded.fingerprint.as_ref().map(|f| f.whole.clone())),
                );
                problem.push(
                    listed
                        .corruption()
                        .map(|reason| format!("unreadable metadata {}: {reason}", listed.object)),
                );
            }
            CacheRow::Memoized(entry) => {
                tier.push(Some(MEMORY.to_string()));
                role.push(Some(MEMORY.to_string()));
                function.push(Some(
                    entry.key.split('/').next().unwrap_or_default().to_string(),
                ));
                key.push(Some(entry.key.clone()));
                namespace.push(entry.namespace.clone());
                version.push(entry.version.clone());
                backend.push(None);
                is_null.push(false);
                state.push(Some("confirmed".to_string()));
                uri.push(None);
                count.push(Some(entry.rows as i64));
                bytes.push(Some(entry.bytes as i64));
                for column in [
                    &mut user,
                    &mut commit,
                    &mut time_column,
                    &mut coverage,
                    &mut provisional,
                    &mut problem,
                    &mut fingerprint,
                ] {
                    column.push(None);
                }
                modified.push(Some(entry.kept_at.timestamp_micros()));
                parts.push(None);
                time_min.push(None);
                time_max.push(None);
            }
        }
    }
    let text = |values: Vec<Option<String>>| Arc::new(StringArray::from(values)) as ArrayRef;
    let micros = |values: Vec<Option<i64>>, tz: Option<&str>| {
        let array = TimestampMicrosecondArray::from(values);
        Arc::new(match tz {
            Some(tz) => array.with_timezone(tz),
            None => array,
        }) as ArrayRef
    };
    Ok(RecordBatch::try_new(
        caches_schema(),
        vec![
            text(tier),
            text(role),
            text(function),
            text(key),
            text(namespace),
            text(version),
            text(backend),
            Arc::new(BooleanArray::from(is_null)),
            text(state),
            text(uri),
            Arc::new(Int64Array::from(count)),
            Arc::new(Int64Array::from(bytes)),
            micros(modified, Some("UTC")),
            text(user),
            text(commit),
            text(time_column),
            micros(time_min, None),
            micros(time_max, None),
            text(coverage),
            text(provisional),
            Arc::new(Int64Array::from(parts)),
            text(problem),
            text(fingerprint),
            Arc::new(BooleanArray::from(stale)),
            text(stale_because),
        ],
    )?)
}

#[async_trait]
impl TableProvider for CachesTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    /// Filters on `tier`, `role` and `function` narrow the listing; all are
    /// applied again above it.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|filter| {
                if ["tier", "role", "function"]
                    .iter()
                    .any(|column| restricts(filter, column))
                    || wants_stale(filter)
                {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let needs_rows = projection.is_none_or(|columns| {
            columns
                .iter()
                .any(|&i| !PATH_COLUMNS.contains(&self.schema.field(i).name().as_str()))
        });
        let judges = projection.is_none_or(|columns| {
            columns.iter().any(|&i| {
                let name = self.schema.field(i).name();
                name == "stale" || name == "stale_because"
            })
        });
        let mut selection = Selection::from_filters(filters, needs_rows).judging(judges);
        selection.files = Some(state.runtime_env().clone());
        let selection = Arc::new(selection);
        let catalog = Arc::clone(&self.catalog);
        if projection.is_some_and(|columns| columns.is_empty()) {
            return count_scan(state, catalog, selection, limit).await;
        }
        lazy_scan(
            state,
            Arc::clone(&self.schema),
            projection,
            limit,
            Arc::new(move || {
                let catalog = Arc::clone(&catalog);
                let selection = Arc::clone(&selection);
                async move { rows_batch(&list_rows(&catalog, &selection).await?) }.boxed()
            }),
        )
        .await
    }

    async fn delete_from(
        &self,
        state: &dyn Session,
        filters: Vec<Expr>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        super::delete::plan_delete(&self.catalog, state, filters).await
    }
}

/// A scan that yields no column, only how many rows there are (what
/// `count(*)` asks for): building 25 columns of 100,000 rows to drop them
/// cost more than finding the rows.
async fn count_scan(
    state: &dyn Session,
    catalog: Arc<Catalog>,
    selection: Arc<Selection>,
    limit: Option<usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let none = Arc::new(Schema::empty());
    let produced = Arc::clone(&none);
    let count: super::Produce = Arc::new(move || {
        let (catalog, selection) = (Arc::clone(&catalog), Arc::clone(&selection));
        let schema = Arc::clone(&produced);
        async move {
            let rows = count_rows(&catalog, &selection).await?;
            let options = RecordBatchOptions::new().with_row_count(Some(rows));
            Ok(RecordBatch::try_new_with_options(schema, vec![], &options)?)
        }
        .boxed()
    });
    lazy_scan(state, none, None, limit, count).await
}

/// Whether a listed role is a mirror's, for messages.
pub fn is_mirror(row: &CacheRow) -> bool {
    matches!(row, CacheRow::Stored(l) if l.tier.role() == TierRole::Mirror)
}

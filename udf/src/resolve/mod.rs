//! Resolving a call: its mode's [`Policy`] applied to the tiers.
//!
//! In Python nuthatch's order:
//!
//! 1. **memory**, when the call memoizes and does not recompute;
//! 2. the tiers the mode reads, **local → root → mirrors**: the first null
//!    marker or valid entry wins (`retry_null_cache` removes a null marker
//!    and computes instead);
//! 3. what was found is served; a local mode first copies it, clipped, to
//!    the local tier, and a `storage_backend` other than the entry's stores
//!    a copy on root;
//! 4. on a miss, a strict mode (or `fail_if_no_cache`) fails; otherwise the
//!    body is computed and streamed into the tier the mode writes (root,
//!    raw; or local, clipped), or straight into the query when it writes
//!    none. A body that returns no result leaves a null marker.
//!
//! A memoizing call keeps what it serves (clipped to its window) in the
//! memory tier. Writes that would replace a valid entry under a mode that
//! asks first fail before computing, naming the mode that overwrites.
//!
//! What a found entry is judged by (`on_stale`) and what a stored one
//! records of where it came from is `judged`'s.
//!
//! Calls that merge into the stored entry (`upsert`, `replace_window`)
//! read nothing first: they compute and merge ([`merge`]).

mod clip;
mod decide;
mod extend;
mod judged;
mod lease;
mod merge;
mod order;
mod passing;
mod sink;
mod spread;
mod through;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use arrow::compute::SortOptions;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::MemTable;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::expressions::{col as physical_col, Column};
use datafusion::physical_expr::{LexOrdering, Partitioning, PhysicalSortExpr};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{collect, ExecutionPlan, ExecutionPlanProperties, PhysicalExpr};
use nuthatch_backends::coverage::Coverage;
use nuthatch_backends::fidelity::Change;
use nuthatch_backends::files::PortableScans;
use nuthatch_backends::{Backend, WriteMode, Written};
use nuthatch_catalog::{
    CacheMode, Claim, Entry, EntryId, Error, Followed, Found, Memoized, Outcome, Overwrite, Phase,
    Policy, Running, Tier, TierRole,
};

use crate::call::Call;
use crate::compute::body_frame;
use crate::settings::Prompter;
pub use clip::{as_filters, WindowClipExec};
use judged::{note_read, read_input};
pub(crate) use sink::compute_failed;
use sink::{Keep, WritePlan};

/// How the stored data is to be read for one call.
#[derive(Debug, Clone)]
pub struct ScanShape {
    /// Columns read from the entry (`None`: all).
    pub scan_indices: Option<Vec<usize>>,
    pub scan_schema: SchemaRef,
    /// Columns of the scan kept in the output, when the scan read the time
    /// column only for the window.
    pub output_indices: Option<Vec<usize>>,
    /// The query's filters and the window, over the full schema, for the
    /// backend to prune with.
    pub filters: Vec<Expr>,
    /// The clip window over the scan schema, applied exactly.
    pub window_filter: Option<Arc<dyn PhysicalExpr>>,
    /// The window alone, as filters over the full schema, for reading a
    /// whole clipped result (local copies, memoized results).
    pub window_exprs: Vec<Expr>,
    /// The clip window over the full schema.
    pub full_window: Option<Arc<dyn PhysicalExpr>>,
    pub limit: Option<usize>,
    pub partitions: usize,
    /// The order each partition of the call's output keeps, over its
    /// output schema: the function's `order_by`, as far as the output
    /// holds its leading columns.
    pub ordering: Option<LexOrdering>,
}

impl ScanShape {
    /// The columns of the full schema the call outputs: the scan's, less
    /// the time column if only the window needed it.
    fn output_projection(&self) -> Option<Vec<usize>> {
        match (&self.output_indices, &self.scan_indices) {
            (Some(output), Some(scan)) => Some(output.iter().map(|&i| scan[i]).collect()),
            (Some(output), None) => Some(output.clone()),
            (None, scan) => scan.clone(),
        }
    }
}

/// The inner plan of a resolved call, and what the report says about it.
pub(crate) struct Prepared {
    pub plan: Arc<dyn ExecutionPlan>,
    /// The compute that ran, if any (for its metrics).
    pub compute: Option<Arc<dyn ExecutionPlan>>,
    pub outcome: Outcome,
    pub tier: Option<String>,
    pub copied_to: Option<String>,
    pub backend: String,
    pub started: Instant,
    /// What the call wrote, when it merged into an entry.
    pub written: Option<Written>,
    /// The rows are served while the write runs ([`through`]): the call
    /// is computing until its streams end.
    pub storing: bool,
    /// The version of a versioned entry served.
    pub data_version: Option<i64>,
    /// For an extension: the time computed because the entry did not
    /// cover it.
    pub computed_ranges: Option<Coverage>,
    /// Why the entry served is stale, when it is and the call serves it
    /// anyway (`on_stale = 'warn'`).
    pub stale: Option<String>,
}

/// Resolves `call` as its mode's policy says.
pub(crate) async fn prepare(
    call: Arc<Call>,
    state: Arc<SessionState>,
    shape: ScanShape,
    running: Arc<Running>,
) -> Result<Prepared> {
    let started = Instant::now();
    let mode = match call.mode {
        Some(mode) => mode,
        None => call.catalog.default_mode().await,
    };
    let resolver = Resolver {
        call: &call,
        state: &state,
        shape: &shape,
        mode,
        policy: mode.policy(),
        started,
        running: &running,
        recompute: call.recompute,
        replaces_stale: false,
    };
    resolver.run().await
}

struct Resolver<'a> {
    call: &'a Call,
    state: &'a SessionState,
    shape: &'a ScanShape,
    mode: CacheMode,
    policy: Policy,
    started: Instant,
    /// What a progress display sees of this call.
    running: &'a Running,
    /// The call computes again whatever is stored: it says so
    /// (`recompute`), or what is stored is stale and its policy recomputes.
    recompute: bool,
    /// What is stored is stale and the call's policy replaces it: a mode
    /// that asks before replacing an entry need not ask.
    replaces_stale: bool,
}

/// Where the rows a call serves come from.
enum Source {
    Entry(Box<Entry>),
    Unstored(Arc<dyn ExecutionPlan>),
}

/// What the leading call of a compute did.
enum Led {
    /// Computed and stored this entry.
    Stored(Entry, Arc<dyn ExecutionPlan>, Vec<Change>),
    /// Found it stored after all (another process, or a leader that just
    /// finished).
    Found(Entry),
    /// Is storing it, and serves the rows as they are stored.
    Storing(through::Storing),
    /// The body returned no result; a null marker was stored.
    Null,
}

impl Resolver<'_> {
    async fn run(&self) -> Result<Prepared> {
        let call = self.call;
        if call.merges() {
            return self.merge_into().await;
        }
        self.check_compact()?;
        if call.memoize && !self.recompute {
            if let Some(id) = &call.local_id {
                if let Some(memoized) = call.catalog.memory().get(id) {
                    return self
                        .serve_memory(memoized, Outcome::Hit, Some("memory".into()), None)
                        .await;
                }
            }
        }
        if !self.recompute {
            match self.read_tiers().await? {
                Some(Found::Null(tier)) => {
                    return self.serve_null(Outcome::NullHit, Some(tier.name().to_string()))
                }
                Some(Found::Entry(entry)) => return self.serve_judged(*entry).await,
                None => {}
            }
        }
        self.miss().await
    }

    /// Serves an entry found on a tier: extended if it lacks time the
    /// call asks for, compacted if due, else as it is.
    async fn serve_any(&self, entry: Entry) -> Result<Prepared> {
        if let Some(missing) = self.uncovered(&entry) {
            return self.extend(entry, missing).await;
        }
        if self.compaction_due(&entry) {
            return self.compact_found(entry).await;
        }
        self.serve_found(entry).await
    }

    /// The tiers the mode reads, in order, for this call.
    fn read_tiers_list(&self) -> Vec<&Tier> {
        let call = self.call;
        call.catalog.read_order(
            self.policy.read_local && call.local_id.is_some(),
            self.policy.read_global && call.cache,
        )
    }

    /// The first null marker or valid entry on the tiers the mode reads.
    async fn read_tiers(&self) -> Result<Option<Found>> {
        let call = self.call;
        let schema = call.function.schema();
        for tier in self.read_tiers_list() {
            let Some(id) = call.id_on(tier) else { continue };
            match call
                .catalog
                .lookup(tier, id, call.backend.as_ref().map(|b| b.name()), schema)
                .await?
            {
                None => {}
                Some(Found::Null(tier)) if call.retry_null_cache => {
                    // Mirrors keep theirs: never written, never deleted from.
                    if !tier.is_read_only() {
                        call.catalog.delete_null(&tier, id).await?;
                    }
                    tracing::info!(key = %id.key, tier = tier.name(), "retrying a null result");
                    return Ok(None);
                }
                found => return Ok(found),
            }
        }
        Ok(None)
    }

    /// Serves an entry found on a tier, after the copies the mode makes.
    async fn serve_found(&self, mut entry: Entry) -> Result<Prepared> {
        let call = self.call;
        let catalog = &call.catalog;
        let schema = call.function.schema();
        let read_from = entry.tier.name().to_string();
        let mut copied_to = None;
        let storage = call.write_backend();
        let other_backend =
            call.storage_backend.is_some() && storage.name() != entry.backend.name();
        // A copy in the storage backend on root, once: Python writes one
        // on every such read.
        if self.policy.write_global
            && call.cache
            && entry.tier.role().is_global()
            && other_backend
            && catalog
                .find_on(catalog.root(), &call.id, &storage, schema)
                .await?
                .is_none()
        {
            let raw = entry.provider.scan(self.state, None, &[], None).await?;
            let keep = Keep {
                copied_from: Some(Resolver::copy_provenance(&entry)),
                ..Keep::all(entry.metadata.recorded.coverage.clone())
            };
            self.store_plan(
                catalog.root(),
                &call.id,
                &storage,
                raw,
                keep,
                WriteMode::Replace,
            )
            .await?;
            copied_to = Some("root".to_string());
        }
        if let (true, Some(local_id)) = (self.policy.write_local, &call.local_id) {
            // What is read from root or a mirror refreshes local (local_sync
            // relies on it); a local entry in another backend is copied once.
            let copy = entry.tier.role().is_global()
                || (other_backend
                    && catalog
                        .find_on(catalog.local(), local_id, &storage, schema)
                        .await?
                        .is_none());
            if copy {
                self.running.set_phase(Phase::Copying);
                let scan = entry
                    .provider
                    .scan(self.state, None, &self.shape.window_exprs, None)
                    .await?;
                let keep = Keep {
                    copied_from: Some(Resolver::copy_provenance(&entry)),
                    ..self.keep_window()
                };
                let (local, _, _) = self
                    .store_plan(
                        catalog.local(),
                        local_id,
                        &storage,
                        scan,
                        keep,
                        WriteMode::Replace,
                    )
                    .await?;
                entry = local;
                copied_to = Some("local".to_string());
            }
        }
        self.serve(
            Source::Entry(Box::new(entry)),
            None,
            Outcome::Hit,
            Some(read_from),
            copied_to,
        )
        .await
    }

    /// Nothing to read: fail, or compute and store where the mode writes.
    async fn miss(&self) -> Result<Prepared> {
        let call = self.call;
        let catalog = &call.catalog;
        let schema = call.function.schema();
        let policy = self.policy;
        if (call.fail_if_no_cache || policy.fail_if_no_cache) && call.cache {
            return Err(self.strict_miss().into());
        }
        let Some(tier) = self.write_target() else {
            return self.compute_unstored().await;
        };
        let id = call.id_on(tier).expect("a local target has a local key");
        let backend = call.write_backend();
        // Fail before computing, not after, when nothing could be stored.
        catalog.check_writable(tier, id)?;
        let may_exist = decide::may_exist(self.recompute, call.storage_backend.is_some());
        if policy.overwrite == Overwrite::Ask
            && !self.replaces_stale
            && may_exist
            // An entry that does not open (corrupt) would be overwritten too.
            && catalog
                .find_on(tier, id, &backend, schema)
                .await
                .map_or(true, |found| found.is_some())
        {
            let Some(prompt) = Prompter::of(self.state.config()) else {
                return Err(Error::WouldOverwrite {
                    key: id.key.display().to_string(),
                    tier: tier.name().to_string(),
                    mode: self.mode.to_string(),
                    instead: self.mode.overwriting().to_string(),
                }
                .into());
            };
            let (function, key) = (call.function.name(), id.key.display());
            if !prompt.confirm_overwrite(function, key, tier.name()).await {
                tracing::info!(
                    function,
                    key,
                    "kept the stored entry; not storing the result"
                );
                return self.compute_unstored().await;
            }
        }
        let inflight_key = call.inflight_key(tier, id, backend.as_ref());
        loop {
            match self.claim(&inflight_key, id)? {
                Claim::Follow(follow) => {
                    tracing::debug!(key = %id.key, "waiting for an identical compute");
                    match follow.wait().await {
                        Followed::Stored => {
                            match catalog
                                .lookup(tier, id, Some(backend.name()), schema)
                                .await?
                            {
                                Some(Found::Entry(entry)) => {
                                    return self.serve_stored(*entry).await
                                }
                                Some(Found::Null(tier)) => {
                                    let name = Some(tier.name().to_string());
                                    return self.serve_null(Outcome::NullHit, name);
                                }
                                None => {}
                            }
                        }
                        // A leader that gave way to break a cycle of waits
                        // left the entry to be computed: claim it again.
                        Followed::Failed(error) if Error::is_deadlock(&error) => {}
                        Followed::Failed(error) => return Err(DataFusionError::Shared(error)),
                        Followed::Abandoned => {}
                    }
                }
                Claim::Lead(mut lead) => {
                    let led = match self.lease(&mut lead, tier, id, backend.as_ref()).await {
                        Ok(_) => self.lead_compute(tier, id, &backend).await,
                        Err(error) => Err(error),
                    };
                    let tier_name = Some(tier.name().to_string());
                    return match led {
                        Ok(Led::Stored(entry, compute, changes)) => {
                            lead.finish(Ok(())).await;
                            let source = Source::Entry(Box::new(entry));
                            let outcome = Outcome::Computed;
                            let served =
                                self.serve(source, Some(compute), outcome, tier_name, None);
                            let mut prepared = served.await?;
                            // A first write reports what it changed, and
                            // no counts of rows merged.
                            prepared.written = Some(Written {
                                changes,
                                ..Written::default()
                            });
                            Ok(prepared)
                        }
                        Ok(Led::Storing(storing)) => {
                            Ok(self.store_in_background(storing, lead, backend.name(), tier_name))
                        }
                        Ok(Led::Found(entry)) => {
                            lead.finish(Ok(())).await;
                            self.serve_stored(entry).await
                        }
                        Ok(Led::Null) => {
                            lead.finish(Ok(())).await;
                            self.serve_null(Outcome::ComputedNull, tier_name)
                        }
                        Err(error) => {
                            let error = Arc::new(error);
                            lead.finish(Err(Arc::clone(&error))).await;
                            Err(DataFusionError::Shared(error))
                        }
                    };
                }
            }
        }
    }

    /// The tier the mode stores computed results on, if any.
    fn write_target(&self) -> Option<&Tier> {
        let call = self.call;
        match decide::write_role(&self.policy, call.cache, call.local_id.is_some())? {
            TierRole::Root => Some(call.catalog.root()),
            _ => Some(call.catalog.local()),
        }
    }

    fn strict_miss(&self) -> Error {
        let call = self.call;
        let tiers: Vec<String> = self
            .read_tiers_list()
            .iter()
            .map(|t| format!("{} tier at {}", t.name(), t.url()))
            .collect();
        let reason = if self.policy.fail_if_no_cache {
            format!(
                "cache_mode '{}' does not compute; call with cache_mode => 'write' (or 'local') \
                 to compute it",
                self.mode
            )
        } else {
            "fail_if_no_cache does not compute; call with fail_if_no_cache => false to compute it"
                .to_string()
        };
        Error::StrictMiss {
            function: call.function.name().to_string(),
            key: call.id.key.display().to_string(),
            tiers: if tiers.is_empty() {
                "tiers (none are read)".to_string()
            } else {
                tiers.join(", ")
            },
            reason,
        }
    }

    async fn lead_compute(
        &self,
        tier: &Tier,
        id: &EntryId,
        backend: &Arc<dyn Backend>,
    ) -> Result<Led> {
        let call = self.call;
        let schema = call.function.schema();
        let was_read = self
            .read_tiers_list()
            .iter()
            .any(|t| t.name() == tier.name());
        if !self.recompute && was_read {
            // Another session or process may have stored it meanwhile.
            if let Some(entry) = call.catalog.find_on(tier, id, backend, schema).await? {
                return Ok(Led::Found(entry));
            }
        }
        tracing::info!(function = call.function.name(), key = %id.key, tier = tier.name(), "computing");
        self.running.set_phase(Phase::Computing);
        let failed = compute_failed(id.key.display().to_string());
        let Some(frame) = body_frame(call, self.state).await.map_err(&failed)? else {
            call.catalog.store_null(tier, id).await?;
            return Ok(Led::Null);
        };
        if let Some((entry, compute, written)) =
            self.store_in_parallel(tier, id, backend, &frame).await?
        {
            return Ok(Led::Stored(entry, compute, written.changes));
        }
        let plan = frame.create_physical_plan().await.map_err(&failed)?;
        let keep = self.keep_computed(tier, backend);
        if let Some(storing) = self.through(tier, id, backend, Arc::clone(&plan), &keep)? {
            return Ok(Led::Storing(storing));
        }
        let (entry, compute, written) = self
            .store_plan(tier, id, backend, plan, keep, WriteMode::Replace)
            .await?;
        Ok(Led::Stored(entry, compute, written.changes))
    }

    /// Streams `plan` (the rows `keep` keeps, sorted by the time column)
    /// into `tier` as `id`, as `mode` says; returns the stored entry, the
    /// plan that ran and what was written.
    async fn store_plan(
        &self,
        tier: &Tier,
        id: &EntryId,
        backend: &Arc<dyn Backend>,
        plan: Arc<dyn ExecutionPlan>,
        keep: Keep,
        mode: WriteMode,
    ) -> Result<(Entry, Arc<dyn ExecutionPlan>, Written)> {
        let plan = self.clipped(id, plan, &keep)?;
        let write = self.write_plan(tier, id, backend, plan, mode, &keep)?;
        let (written, entry) = write.run(self.state.task_ctx()).await?;
        Ok((entry, write.plan, written))
    }

    /// Computes and serves the result without storing it.
    async fn compute_unstored(&self) -> Result<Prepared> {
        let call = self.call;
        tracing::info!(function = call.function.name(), key = %call.id.key, "computing (not stored)");
        self.running.set_phase(Phase::Computing);
        let failed = compute_failed(call.id.key.display().to_string());
        let failed = |source| -> DataFusionError { failed(source).into() };
        let Some(frame) = body_frame(call, self.state).await.map_err(&failed)? else {
            return self.serve_null(Outcome::ComputedNull, None);
        };
        let compute = frame.create_physical_plan().await.map_err(&failed)?;
        self.serve(
            Source::Unstored(compute),
            None,
            Outcome::ComputedNotStored,
            None,
            None,
        )
        .await
    }

    async fn serve_entry(&self, entry: Entry, outcome: Outcome) -> Result<Prepared> {
        let tier = Some(entry.tier.name().to_string());
        self.serve(Source::Entry(Box::new(entry)), None, outcome, tier, None)
            .await
    }

    /// The plan serving `source` to the query, memoized if the call says so.
    async fn serve(
        &self,
        source: Source,
        compute: Option<Arc<dyn ExecutionPlan>>,
        outcome: Outcome,
        tier: Option<String>,
        copied_to: Option<String>,
    ) -> Result<Prepared> {
        let shape = self.shape;
        let backend = match &source {
            Source::Entry(entry) => entry.backend.name().to_string(),
            Source::Unstored(_) => self.call.write_backend().name().to_string(),
        };
        let data_version = match &source {
            Source::Entry(entry) => entry.metadata.recorded.data_version,
            Source::Unstored(_) => None,
        };
        if let Source::Entry(entry) = &source {
            note_read(self.call, entry);
        }
        if let (true, Some(id)) = (self.call.memoize, &self.call.local_id) {
            let whole = match &source {
                Source::Entry(entry) => {
                    entry
                        .provider
                        .scan(self.state, None, &shape.window_exprs, None)
                        .await?
                }
                Source::Unstored(plan) => Arc::clone(plan),
            };
            let clipped = match &shape.full_window {
                Some(window) => clip::within(whole, window)?,
                None => whole,
            };
            let batches = collect(Arc::clone(&clipped), self.state.task_ctx()).await?;
            let schema = clipped.schema();
            let source_entry = match &source {
                Source::Entry(entry) => Some(read_input(entry)),
                Source::Unstored(_) => None,
            };
            let memoized = Memoized::new(schema, batches).read_from(source_entry);
            self.call.catalog.memory().insert(id, memoized.clone());
            let mut prepared = self
                .serve_memory(memoized, outcome, tier, copied_to)
                .await?;
            prepared.compute = compute.or(Some(clipped));
            prepared.backend = backend;
            prepared.data_version = data_version;
            return Ok(prepared);
        }
        let plan = match source {
            Source::Entry(entry) => {
                let travels = crate::parallel::may_travel(self.state.config());
                let session = scan_session(self.state, shape.partitions, travels);
                // An entry that reads only the rows within the window needs
                // neither the clip nor the time column it would read.
                let exact = !travels && clips_itself(entry.provider.as_ref(), shape)?;
                let projection = if exact {
                    shape.output_projection()
                } else {
                    shape.scan_indices.clone()
                };
                let scan = entry
                    .provider
                    .scan(
                        session.as_ref(),
                        projection.as_ref(),
                        &shape.filters,
                        shape.limit,
                    )
                    .await
                    .map_err(|e| crate::exec::read_failed(self.call, entry.tier.name(), e))?;
                if exact {
                    scan
                } else {
                    clip(scan, shape)?
                }
            }
            Source::Unstored(plan) => unstored(plan, shape)?,
        };
        Ok(Prepared {
            plan: in_order(fit(plan, shape.partitions)?, shape)?,
            compute,
            outcome,
            tier,
            copied_to,
            backend,
            started: self.started,
            written: None,
            storing: false,
            data_version,
            computed_ranges: None,
            stale: None,
        })
    }

    async fn serve_memory(
        &self,
        memoized: Memoized,
        outcome: Outcome,
        tier: Option<String>,
        copied_to: Option<String>,
    ) -> Result<Prepared> {
        let shape = self.shape;
        // Rows kept in memory come from an entry the caller read.
        if let (Some(source), Some(caller)) = (&memoized.source, self.call.stack.caller()) {
            caller.reads.note(source.clone());
        }
        let batches = memoized.batches.as_ref().clone();
        let table = MemTable::try_new(memoized.schema, vec![batches])?;
        let projection = shape.scan_indices.as_ref();
        let plan = table
            .scan(self.state, projection, &shape.filters, shape.limit)
            .await?;
        Ok(Prepared {
            plan: in_order(fit(clip(plan, shape)?, shape.partitions)?, shape)?,
            compute: None,
            outcome,
            tier,
            copied_to,
            backend: "memory".to_string(),
            started: self.started,
            written: None,
            storing: false,
            data_version: None,
            computed_ranges: None,
            stale: None,
        })
    }

    fn serve_null(&self, outcome: Outcome, tier: Option<String>) -> Result<Prepared> {
        let shape = self.shape;
        let empty = Arc::new(EmptyExec::new(Arc::clone(&shape.scan_schema)));
        Ok(Prepared {
            plan: in_order(fit(clip(empty, shape)?, shape.partitions)?, shape)?,
            compute: None,
            outcome,
            tier,
            copied_to: None,
            backend: "null".to_string(),
            started: self.started,
            written: None,
            storing: false,
            data_version: None,
            computed_ranges: None,
            stale: None,
        })
    }
}

/// Ascending by `columns`, nulls last (what `ORDER BY` means by default,
/// so plans that need the order recognise it), over `schema`.
pub(crate) fn ascending(columns: &[String], schema: &SchemaRef) -> Result<Option<LexOrdering>> {
    let keys = columns
        .iter()
        .map(|column| {
            Ok(PhysicalSortExpr::new(
                physical_col(column, schema)?,
                SortOptions {
                    descending: false,
                    nulls_first: false,
                },
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(LexOrdering::new(keys))
}

fn project(input: Arc<dyn ExecutionPlan>, indices: &[usize]) -> Result<Arc<dyn ExecutionPlan>> {
    let schema = input.schema();
    let exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = indices
        .iter()
        .map(|&i| {
            let name = schema.field(i).name().clone();
            (
                Arc::new(Column::new(&name, i)) as Arc<dyn PhysicalExpr>,
                name,
            )
        })
        .collect();
    Ok(Arc::new(ProjectionExec::try_new(exprs, input)?))
}

/// The session an entry is scanned in: with one target partition when the
/// call serves one (a plan asked it for one ordered stream), so that a
/// sorted file is read front to back instead of in ranges merged again;
/// asking for a scan that can be sent to workers when it may be.
fn scan_session(state: &SessionState, partitions: usize, portable: bool) -> Cow<'_, SessionState> {
    let one = partitions == 1 && state.config().target_partitions() != 1;
    if !one && !portable {
        return Cow::Borrowed(state);
    }
    let mut session = state.clone();
    if one {
        session
            .config_mut()
            .options_mut()
            .execution
            .target_partitions = 1;
    }
    if portable {
        session.config_mut().set_extension(Arc::new(PortableScans));
    }
    Cow::Owned(session)
}

/// Whether `provider` keeps only the rows within the call's window itself
/// (it says the window's filters are exact), as a Parquet entry sorted by
/// the time column does.
fn clips_itself(provider: &dyn TableProvider, shape: &ScanShape) -> Result<bool> {
    if shape.window_exprs.is_empty() {
        return Ok(false);
    }
    let window: Vec<&Expr> = shape.window_exprs.iter().collect();
    Ok(provider
        .supports_filters_pushdown(&window)?
        .iter()
        .all(|support| *support == TableProviderFilterPushDown::Exact))
}

/// A computed result as the call serves it: its columns, clipped to the
/// window, in the partitions the call declared.
fn unstored(plan: Arc<dyn ExecutionPlan>, shape: &ScanShape) -> Result<Arc<dyn ExecutionPlan>> {
    let plan = match &shape.scan_indices {
        Some(indices) => project(plan, indices)?,
        None => plan,
    };
    fit(clip(plan, shape)?, shape.partitions)
}

/// Applies the window exactly and drops the time column if only the window
/// needed it.
fn clip(input: Arc<dyn ExecutionPlan>, shape: &ScanShape) -> Result<Arc<dyn ExecutionPlan>> {
    let mut plan = input;
    if let Some(window) = &shape.window_filter {
        plan = clip::within(plan, window)?;
    }
    if let Some(indices) = &shape.output_indices {
        plan = project(plan, indices)?;
    }
    Ok(plan)
}

/// Gives the inner plan the partition count the exec declared when it was
/// planned (before anyone knew what the entry or the compute would give),
/// keeping each partition in order if the plan's are.
fn fit(plan: Arc<dyn ExecutionPlan>, partitions: usize) -> Result<Arc<dyn ExecutionPlan>> {
    if plan.output_partitioning().partition_count() == partitions {
        return Ok(plan);
    }
    Ok(Arc::new(
        RepartitionExec::try_new(plan, Partitioning::RoundRobinBatch(partitions))?
            .with_preserve_order(),
    ))
}

/// Makes each partition of `plan` keep the order the call declared (the
/// function's `order_by`): an entry written in it says so itself; anything
/// else (an entry Python wrote, a compute served unstored, another
/// format) is sorted here.
fn in_order(plan: Arc<dyn ExecutionPlan>, shape: &ScanShape) -> Result<Arc<dyn ExecutionPlan>> {
    let Some(ordering) = &shape.ordering else {
        return Ok(plan);
    };
    if plan
        .equivalence_properties()
        .ordering_satisfy(ordering.clone())?
    {
        return Ok(plan);
    }
    Ok(Arc::new(
        SortExec::new(ordering.clone(), plan).with_preserve_partitioning(true),
    ))
}

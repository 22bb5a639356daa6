//! Timeseries entries that grow: a call is served only from time its entry
//! covers.
//!
//! An entry of a function whose body computes the window it is handed
//! ([`crate::function::CoverageKind::Window`]) records the time its rows
//! were computed for. A call whose window reaches past that time finds the
//! missing spans ([`Coverage::missing`]; an open side of the call stops at
//! the edge of what is covered, so only holes between are missing), and:
//!
//! - under a mode that stores on root, computes each span with its own body
//!   call (the span's bounds handed as `start_time`/`end_time`), keeps the
//!   rows within it, and adds them to the entry: as a part of their own
//!   when the entry is stored as parts (Parquet, Arrow), so adding a day
//!   writes a day; a Zarr grid grown at its end along time, when the spans
//!   all lie after what it covers; otherwise as a replacement of exactly
//!   those spans
//!   ([`WriteMode::ReplaceWhere`]), which Delta and SQL merge in one commit
//!   or transaction and other formats apply by rewriting the entry. Time
//!   computed again (provisional) replaces the rows it had: in the formats
//!   that merge, the same way; in an entry of parts, the parts holding it
//!   become one new part with their other rows and the new ones.
//!   Replacing rather than appending keeps an extension idempotent where
//!   a format has no parts: rows a killed extension left in a span are
//!   replaced, never doubled; parts a killed write left are listed by no
//!   record, so never read. The entry then records the spans covered too
//!   (see [`nuthatch_catalog::Catalog::store`] for why the old record stays
//!   readable throughout, and how parts are committed across processes);
//!   past [`COMPACT_PARTS`] parts, or on `compact => true`, the parts are
//!   rewritten as one;
//! - under a mode that does not store there, computes the spans and serves
//!   them beside the stored rows;
//! - under a mode that does not compute, fails naming what is missing.
//!
//! One call per entry extends it at a time in this process: a call that
//! waited for another looks again before computing.

use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::{provider_as_source, MemTable};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::physical_plan::ExecutionPlan;
use nuthatch_backends::coverage::Coverage;
use nuthatch_backends::{Backend, Commit, WriteMode, Written};
use nuthatch_catalog::{columns_of, Claim, Entry, Error, Outcome, Phase, Tier, TierRole};

use super::merge::rewritten;
use super::{compute_failed, Keep, Prepared, Resolver, Source};
use crate::compute::body_frame_with;
use crate::timeseries::{coverage_predicate, handing, span_predicates};

/// Times a call looks again after another process committed to the
/// entry it was extending first.
const CONFLICT_RETRIES: usize = 3;

/// Parts past which an entry is compacted into one when it grows: each part
/// costs a scan a file to open.
pub const COMPACT_PARTS: usize = 48;

/// What extending an entry came to.
enum Extension {
    /// Another call covered the time meanwhile.
    Covered(Entry),
    /// The missing time, if any, was computed and added, and the parts
    /// compacted if due.
    Stored {
        entry: Entry,
        added: Option<Box<Added>>,
        missing: Option<Coverage>,
    },
}

/// The missing time, computed and written into an entry.
struct Added {
    /// The entry with the time added.
    entry: Entry,
    /// The compute that ran, for the call's report.
    compute: Arc<dyn ExecutionPlan>,
    written: Written,
    /// The rows added, kept for the query when they are all it asks for.
    served: Option<Arc<dyn ExecutionPlan>>,
}

impl Resolver<'_> {
    /// The time the call asks for that `entry` does not cover, if any. Only
    /// entries on root and mirrors are asked: local ones are keyed by the
    /// window itself; entries that record no coverage (Python's) are read
    /// as Python reads them.
    pub(super) fn uncovered(&self, entry: &Entry) -> Option<Coverage> {
        if !self.call.function.covers_windows() || !entry.tier.role().is_global() {
            return None;
        }
        let recorded = &entry.metadata.recorded;
        let covered = recorded.coverage.as_ref()?;
        // Provisional time is computed again by the next call reaching it.
        let settled = match &recorded.provisional {
            Some(provisional) => covered.subtract(provisional),
            None => covered.clone(),
        };
        let missing = settled.missing(covered.bounded(self.call.span()));
        (!missing.is_empty()).then_some(missing)
    }

    /// Serves an entry that a compute of this call found stored, extended
    /// first if it does not cover the call.
    pub(super) async fn serve_stored(&self, entry: Entry) -> Result<Prepared> {
        match self.uncovered(&entry) {
            Some(missing) => self.extend(entry, missing).await,
            None => self.serve_entry(entry, Outcome::Hit).await,
        }
    }

    /// Serves `entry` with the `missing` time computed, as the module docs
    /// say.
    pub(super) async fn extend(&self, entry: Entry, missing: Coverage) -> Result<Prepared> {
        let call = self.call;
        if (call.fail_if_no_cache || self.policy.fail_if_no_cache) && call.cache {
            return Err(self.uncovered_error(&entry, &missing).into());
        }
        let stores = self.stores_on(&entry.tier);
        // A format rewritten in place cannot be read while it is rewritten;
        // one that grows at its end can add time after what it covers.
        let extendable = entry.backend.merges()
            || entry.backend.commit() == Commit::Atomic
            || (entry.backend.grows_at_end() && grows_into(&entry, &missing));
        if stores && !extendable {
            tracing::warn!(
                key = %call.id.key,
                backend = entry.backend.name(),
                "{} entries grow only at their end; time missing before or inside what the \
                 entry covers is computed and served, not stored (to store it, call once \
                 with recompute => true over the whole range)",
                entry.backend.name()
            );
        }
        if stores && extendable {
            self.extend_stored(entry).await
        } else {
            self.extend_unstored(entry, missing).await
        }
    }

    /// Whether this call stores on `tier`: root, under a mode that writes
    /// it.
    fn stores_on(&self, tier: &Tier) -> bool {
        self.policy.write_global
            && self.call.cache
            && tier.role() == TierRole::Root
            && !tier.is_read_only()
    }

    /// Serves `entry`, which covers the call, after compacting its parts
    /// where this call writes it.
    pub(super) async fn compact_found(&self, entry: Entry) -> Result<Prepared> {
        if self.stores_on(&entry.tier) {
            return self.extend_stored(entry).await;
        }
        self.serve_found(entry).await
    }

    /// A call that asks to compact must be one that writes root.
    pub(super) fn check_compact(&self) -> Result<()> {
        if !self.call.compact || (self.policy.write_global && self.call.cache) {
            return Ok(());
        }
        Err(DataFusionError::Plan(format!(
            "{}: compact => true rewrites the entry's parts on root, and cache_mode '{}' does \
             not write there; call with cache_mode => 'write'",
            self.call.function.name(),
            self.mode
        )))
    }

    /// Computes what `found` is missing, adds it to the entry (compacting
    /// its parts when due) and serves it.
    pub(super) async fn extend_stored(&self, found: Entry) -> Result<Prepared> {
        let call = self.call;
        let (tier, backend) = (found.tier.clone(), Arc::clone(&found.backend));
        let inflight_key = call.inflight_key(&tier, &call.id, backend.as_ref());
        let mut waited = false;
        let mut lead = loop {
            match self.claim(&inflight_key, &call.id)? {
                Claim::Lead(lead) => break lead,
                Claim::Follow(follow) => {
                    waited = true;
                    let _ = follow.wait().await;
                }
            }
        };
        match self
            .lease(&mut lead, &tier, &call.id, backend.as_ref())
            .await
        {
            Ok(leased_after_wait) => waited |= leased_after_wait,
            Err(error) => {
                let error = Arc::new(error);
                lead.finish(Err(Arc::clone(&error))).await;
                return Err(DataFusionError::Shared(error));
            }
        }
        let found = (!waited).then_some(found);
        let mut extended = self.extend_entry(&tier, &backend, found).await;
        // Another process committed to the entry first: look again, and
        // compute what is still missing.
        for _ in 0..CONFLICT_RETRIES {
            match &extended {
                Err(e) if matches!(Error::find(e), Some(Error::Conflict { .. })) => {
                    tracing::info!(key = %call.id.key, "{e}; looking again");
                    extended = self.extend_entry(&tier, &backend, None).await;
                }
                _ => break,
            }
        }
        let extension = match extended {
            Ok(extension) => extension,
            Err(error) => {
                let error = Arc::new(error);
                lead.finish(Err(Arc::clone(&error))).await;
                return Err(DataFusionError::Shared(error));
            }
        };
        lead.finish(Ok(())).await;
        let (entry, added, missing) = match extension {
            Extension::Covered(entry) => return self.serve_entry(entry, Outcome::Hit).await,
            Extension::Stored {
                entry,
                added,
                missing,
            } => (entry, added, missing),
        };
        let outcome = match missing {
            Some(_) => Outcome::Extended,
            None => Outcome::Hit,
        };
        let tier = Some(tier.name().to_string());
        let backend = entry.backend.name().to_string();
        let (source, compute, written) = match added.map(|added| *added) {
            Some(Added {
                served: Some(served),
                compute,
                written,
                ..
            }) => (Source::Unstored(served), Some(compute), Some(written)),
            Some(added) => (
                Source::Entry(Box::new(entry)),
                Some(added.compute),
                Some(added.written),
            ),
            None => (Source::Entry(Box::new(entry)), None, None),
        };
        let mut prepared = self.serve(source, compute, outcome, tier, None).await?;
        prepared.backend = backend;
        prepared.written = written;
        prepared.computed_ranges = missing;
        Ok(prepared)
    }

    /// Holding the entry's claim: computes what it is missing and writes it
    /// in, then compacts it if due. `found` is the entry as the call found
    /// it, or `None` to look again (another call held the claim).
    async fn extend_entry(
        &self,
        tier: &Tier,
        backend: &Arc<dyn Backend>,
        found: Option<Entry>,
    ) -> Result<Extension> {
        let call = self.call;
        let current = match found {
            Some(found) => found,
            None => call
                .catalog
                .find_on(tier, &call.id, backend, call.function.schema())
                .await?
                .ok_or_else(|| {
                    DataFusionError::Execution(format!(
                        "entry {} was removed while this call waited to extend it; run the \
                         query again to compute it",
                        call.id.key.display()
                    ))
                })?,
        };
        let missing = self.uncovered(&current);
        if missing.is_none() && !self.compaction_due(&current) {
            return Ok(Extension::Covered(current));
        }
        let added = match &missing {
            Some(missing) => Some(Box::new(
                self.add_missing(tier, backend, &current, missing).await?,
            )),
            None => None,
        };
        let entry = match &added {
            Some(added) => added.entry.clone(),
            None => current,
        };
        let entry = match self.compaction_due(&entry) {
            true => self.compact(tier, backend, entry).await?,
            false => entry,
        };
        Ok(Extension::Stored {
            entry,
            added,
            missing,
        })
    }

    /// Whether `entry` has parts to compact: asked for (`compact => true`),
    /// or more than [`COMPACT_PARTS`].
    pub(super) fn compaction_due(&self, entry: &Entry) -> bool {
        let parts = entry.metadata.recorded.parts.as_ref().map_or(0, Vec::len);
        parts > COMPACT_PARTS || (self.call.compact && parts > 1)
    }

    /// Rewrites the parts of `entry` as one, keeping what it covers, in one
    /// commit that fails if another process changed the entry meanwhile.
    async fn compact(
        &self,
        tier: &Tier,
        backend: &Arc<dyn Backend>,
        entry: Entry,
    ) -> Result<Entry> {
        let recorded = &entry.metadata.recorded;
        let parts = recorded.parts.as_ref().map_or(0, Vec::len);
        let keep = Keep {
            covers: recorded.coverage.clone(),
            provisional: recorded.provisional.clone(),
            amends: true,
            parts: true,
            window: false,
            based_on: Some(entry.metadata.last_modified),
            replaces: Vec::new(),
            // Compacted rows are the entry's own: it keeps its record's
            // provenance.
            copied_from: Some(Resolver::kept_provenance(&entry)),
        };
        let plan = self.stored_frame(&entry)?.create_physical_plan().await?;
        let (entry, _, _) = self
            .store_plan(tier, &self.call.id, backend, plan, keep, WriteMode::Replace)
            .await?;
        tracing::info!(key = %self.call.id.key, parts, "compacted the entry's parts into one");
        Ok(entry)
    }

    /// Computes `missing` and writes it into `current`: as a new part of an
    /// entry stored as parts, by the format's merge, or by rewriting it.
    async fn add_missing(
        &self,
        tier: &Tier,
        backend: &Arc<dyn Backend>,
        current: &Entry,
        missing: &Coverage,
    ) -> Result<Added> {
        let call = self.call;
        let schema = call.function.schema();
        tracing::info!(function = call.function.name(), key = %call.id.key, tier = tier.name(), missing = %missing, "extending");
        self.check_columns(current)?;
        self.running.set_phase(Phase::Computing);
        let gaps = self.gaps_frame(missing).await?;
        let column = call.function.timeseries().unwrap_or_default();
        let mode = WriteMode::ReplaceWhere {
            predicate: coverage_predicate(column, missing, schema)?,
        };
        let recorded = &current.metadata.recorded;
        let stored_rows = recorded.rows;
        // Time computed again (provisional) replaces rows stored; time
        // never covered only adds rows.
        let replaces = (recorded.coverage.as_ref())
            .is_some_and(|covered| missing.spans().iter().any(|s| covered.overlaps(*s)));
        let parts = recorded.parts.is_some() && backend.parts();
        let rewrite = replaced_parts(current, missing).filter(|_| parts && replaces);
        let mut covers = missing.clone();
        let grows = backend.grows_at_end() && grows_into(current, missing);
        let (frame, write_mode, replaced) = if grows {
            (gaps, WriteMode::Append, Vec::new())
        } else if let Some((names, held)) = rewrite {
            // The parts holding the time computed again become one new
            // part: their other rows, and the new ones.
            let kept = held.subtract(missing);
            let column = call.function.timeseries().unwrap_or_default();
            let hull = conjunction(span_predicates(column, held.hull(), schema)?);
            let mut stored = self.stored_frame(current)?;
            if let Some(hull) = hull {
                stored = stored.filter(hull)?;
            }
            let stored = stored.filter(coverage_predicate(column, &kept, schema)?)?;
            covers = held.union(missing);
            (stored.union(gaps)?, WriteMode::Append, names)
        } else if parts && !replaces {
            (gaps, WriteMode::Append, Vec::new())
        } else if backend.merges() {
            (gaps, mode, Vec::new())
        } else {
            let stored = self.stored_frame(current)?;
            (
                rewritten(stored, gaps, &mode)?,
                WriteMode::Replace,
                Vec::new(),
            )
        };
        let failed = compute_failed(format!("{} for {missing}", call.id.key.display()));
        let plan = frame.create_physical_plan().await.map_err(&failed)?;
        // Rows that only add time are the rows served, when the call asks
        // for nothing else.
        let adds_only = write_mode == WriteMode::Append && replaced.is_empty();
        let keep = Keep {
            parts,
            based_on: Some(current.metadata.last_modified),
            replaces: replaced,
            ..Keep::amending(Some(covers), call.settle)
        };
        let asked = recorded
            .coverage
            .clone()
            .unwrap_or_default()
            .bounded(call.span());
        let asked_within = adds_only && missing.missing(asked).is_empty();
        let (entry, compute, mut written, served) = self
            .store_kept(tier, backend, plan, keep, write_mode, asked_within)
            .await?;
        let total = entry.metadata.recorded.rows;
        written.inserted = stored_rows
            .zip(total)
            .map(|(before, after)| after.saturating_sub(before) as u64);
        Ok(Added {
            entry,
            compute,
            written,
            served,
        })
    }

    /// Serves `entry` and the `missing` time computed beside it, storing
    /// nothing.
    async fn extend_unstored(&self, entry: Entry, missing: Coverage) -> Result<Prepared> {
        let tier = Some(entry.tier.name().to_string());
        let mut stored = self.stored_frame(&entry)?;
        if let Some(window) = conjunction(self.shape.window_exprs.iter().cloned()) {
            stored = stored.filter(window)?;
        }
        let frame = stored.union(self.gaps_frame(&missing).await?)?;
        let plan = frame.create_physical_plan().await?;
        let mut prepared = self
            .serve(
                Source::Unstored(plan),
                None,
                Outcome::ExtendedNotStored,
                tier,
                None,
            )
            .await?;
        prepared.computed_ranges = Some(missing);
        prepared.data_version = entry.metadata.recorded.data_version;
        Ok(prepared)
    }

    /// The rows of `missing`: one body call per span, handed the span's
    /// bounds, its rows kept within the span (a row outside belongs to
    /// time another span holds). A body returning no result adds no rows
    /// and still covers its span.
    async fn gaps_frame(&self, missing: &Coverage) -> Result<DataFrame> {
        let call = self.call;
        let function = &call.function;
        let schema = function.schema();
        let column = function.timeseries().unwrap_or_default();
        let key = call.id.key.display();
        // Bodies that compute before returning (Rust) run side by side.
        let bodies = missing.spans().iter().map(|span| async move {
            let args = handing(&call.args, function.params(), *span);
            let failed = compute_failed(format!("{key} for {span}"));
            let Some(frame) = body_frame_with(call, args, self.state)
                .await
                .map_err(&failed)?
            else {
                return Ok(None);
            };
            let frame = match conjunction(span_predicates(column, *span, schema)?) {
                Some(within) => frame.filter(within).map_err(&failed)?,
                None => frame,
            };
            Ok::<_, DataFusionError>(Some(frame))
        });
        let mut gaps: Option<DataFrame> = None;
        for frame in futures::future::try_join_all(bodies)
            .await?
            .into_iter()
            .flatten()
        {
            gaps = Some(match gaps {
                Some(all) => all.union(frame)?,
                None => frame,
            });
        }
        match gaps {
            Some(gaps) => Ok(gaps),
            None => {
                let empty = MemTable::try_new(Arc::clone(schema), vec![vec![]])?;
                self.frame_of(Arc::new(empty))
            }
        }
    }

    /// Refuses to add to `entry` rows whose columns differ from those it
    /// was stored with (the function was redefined without a new version).
    fn check_columns(&self, entry: &Entry) -> Result<()> {
        let Some(stored) = &entry.metadata.recorded.columns else {
            return Ok(());
        };
        let call = self.call;
        let now = columns_of(call.function.schema());
        if *stored == now {
            return Ok(());
        }
        let differs = (now.iter().map(Some).chain(std::iter::repeat(None)))
            .zip(stored.iter().map(Some).chain(std::iter::repeat(None)))
            .take(now.len().max(stored.len()))
            .find(|(a, b)| a != b)
            .map(|(a, b)| a.or(b).cloned().unwrap_or_default())
            .unwrap_or_default();
        let column = differs.split(':').next().unwrap_or_default();
        Err(DataFusionError::Plan(format!(
            "{}: entry {} was stored with columns ({}), and the function now returns ({}); \
             column '{column}' differs, so nothing was computed or added. Recompute the entry \
             (recompute => true, cache_mode => 'overwrite'), or give the changed function a \
             new version",
            call.function.name(),
            call.id.key.display(),
            stored.join(", "),
            now.join(", ")
        )))
    }

    /// The stored rows of `entry`, as a frame to merge with.
    fn stored_frame(&self, entry: &Entry) -> Result<DataFrame> {
        self.frame_of(Arc::clone(&entry.provider))
    }

    fn frame_of(&self, table: Arc<dyn datafusion::catalog::TableProvider>) -> Result<DataFrame> {
        let scan = LogicalPlanBuilder::scan("stored", provider_as_source(table), None)?.build()?;
        Ok(DataFrame::new(self.state.clone(), scan))
    }

    fn uncovered_error(&self, entry: &Entry, missing: &Coverage) -> Error {
        let call = self.call;
        let reason = if self.policy.fail_if_no_cache {
            format!(
                "cache_mode '{}' does not compute; call with cache_mode => 'write' to compute it \
                 and add it to the entry, or 'read_only' to compute it without storing",
                self.mode
            )
        } else {
            "fail_if_no_cache does not compute; call with fail_if_no_cache => false to compute \
             it and add it to the entry"
                .to_string()
        };
        let covered = entry.metadata.recorded.coverage.clone().unwrap_or_default();
        Error::Uncovered {
            entry: format!(
                "{}: entry {} on the {} tier",
                call.function.name(),
                call.id.key.display(),
                entry.tier.name()
            ),
            covered: covered.to_string(),
            missing: missing.to_string(),
            reason,
        }
    }
}

/// The parts of `entry` holding time of `missing` (their names, and the
/// time they hold together), when every part records its time.
fn replaced_parts(entry: &Entry, missing: &Coverage) -> Option<(Vec<String>, Coverage)> {
    let mut names = Vec::new();
    let mut held = Coverage::empty();
    for part in entry.metadata.recorded.parts.iter().flatten() {
        let covers = part.covers.as_ref()?;
        if missing.spans().iter().any(|span| covers.overlaps(*span)) {
            names.push(part.name.clone());
            held = held.union(covers);
        }
    }
    Some((names, held))
}

/// Whether a format that grows at its end can take `missing`: nothing the
/// entry holds from the first missing instant on is outside `missing`.
/// Time after the coverage qualifies, and so does a provisional tail
/// computed again, since growing from an instant drops what the store held
/// from there on.
fn grows_into(entry: &Entry, missing: &Coverage) -> bool {
    let Some(covered) = entry.metadata.recorded.coverage.as_ref() else {
        return false;
    };
    let Some(from) = missing.hull().start else {
        return false;
    };
    covered.since(from).subtract(missing).is_empty()
}

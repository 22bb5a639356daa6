//! The write protocol: how a computed result becomes an entry that readers
//! see whole or not at all, and how an entry grows.
//!
//! [`Catalog::store`] is the one place it lives. A first write puts the
//! data, visible at once when complete, then the metadata row. A write
//! that replaces an entry keeps the old one readable throughout when the
//! format publishes its data in one step at the end
//! ([`Backend::publishes_late`]): right before that step
//! ([`WriteOptions::before_publish`]) a *pending* row takes the old row's
//! place, describing the new data and carrying the old row with the stamp
//! of the data it vouches for ([`Backend::stamp`], [`Replacing`]); the
//! data is published, and the row confirmed. A process killed in between
//! leaves the pending row, which readers settle (`Catalog::settled`): the
//! data still bears the old stamp, so the old row is the entry, or it
//! bears another, so the new one is. A format that publishes by copying a
//! staged copy into place (Zarr) names the copy instead, and readers read
//! it until the row is confirmed. So a replacement leaves the old entry or
//! the new one, never none. The data path is Python's and fixed, which is
//! why two rows cannot simply be switched; Python reads only confirmed
//! rows, so to Python a pending entry is missing. Formats that write in
//! place (Terracotta) have the old row removed before they start. A
//! replacement that fails ([`WriteOptions::restores`]) before anything was
//! published leaves the old data, and its row is put back. A write that
//! amends an entry ([`WriteOptions::amends`]) keeps the old row throughout:
//! the old row stays true of the new data, since the new data only adds
//! rows outside the time the old row covers, or replaces rows (what a
//! merge is for).
//!
//! An entry stored as parts ([`Backend::parts`]) grows by a part at a
//! time: the part is written under a name of its own, then the new row,
//! listing it beside the parts already listed, is committed under the
//! entry's lock ([`crate::lock`]) after checking, on the row as it is now,
//! that no other process added the same time meanwhile (their parts would
//! double each other's rows) and that the part is still there. Parts no
//! row lists (replaced, or left by a killed write) are removed after the
//! commit, so that Python's readers, which read every file of the
//! directory, read what the row lists.
//!
//! On the way to the backend the rows are counted against what the format
//! cannot hold ([`nuthatch_backends::fidelity`]): the write reports the
//! values it stored changed ([`Written::changes`]), or, for a function that
//! asks for exact results or a value the format cannot hold at all, fails
//! before anything becomes visible ([`Error::Inexact`],
//! [`Error::Unstorable`]).

use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use datafusion::common::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use nuthatch_backends::coverage::Coverage;
use nuthatch_backends::fidelity::Counter;
use nuthatch_backends::{Backend, Commit, Location, Part, WriteMode, WriteOptions, Written};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

use crate::lineage::{Input, Lineage, Provenance};
use crate::lock::EntryLock;
use crate::metastore::{self, data_path, metadata_dir, metadata_path, Replacing, CONFIRMED};
use crate::time_range::TimeRange;
use crate::{Catalog, Entry, EntryId, Error, MetadataRow, Recorded, Result, Tier};

/// Where one write goes, and what it is to record.
pub(crate) struct Target<'a> {
    pub(crate) tier: &'a Tier,
    pub(crate) id: &'a EntryId,
    pub(crate) backend: &'a Arc<dyn Backend>,
    pub(crate) options: &'a WriteOptions,
    /// The data path, relative to the tier.
    pub(crate) path: Path,
    pub(crate) at: Location,
    /// The columns written ([`columns_of`]).
    pub(crate) columns: Vec<String>,
    /// What the row records of where the rows came from.
    pub(crate) provenance: &'a Provenance,
}

impl Catalog {
    /// Stores the result stream `data` as the entry `id` on `tier`, as the
    /// module docs say. The result is computed while it is written: an
    /// error of the stream is a [`Error::ComputeFailed`], and it leaves
    /// nothing stored. Returns what was written and the new entry, opened
    /// to be read as `schema`. The row records `provenance`, its lineage
    /// as it stands once the stream has ended.
    #[allow(clippy::too_many_arguments)]
    pub async fn store(
        &self,
        tier: &Tier,
        id: &EntryId,
        backend: &Arc<dyn Backend>,
        data: SendableRecordBatchStream,
        options: &WriteOptions,
        provenance: &Provenance,
        schema: &SchemaRef,
    ) -> Result<(Written, Entry)> {
        self.check_writable(tier, id)?;
        let meta_path = metadata_path(&id.key, id.namespace.as_deref(), backend.name());
        let versioned = backend.commit() == Commit::Versioned;
        // What a write that amends the entry adds to: its time range and
        // coverage add to the stored ones.
        let amends = options.amends || options.mode != WriteMode::Replace;
        // A part added reads the row under the entry's lock instead.
        let previous = match amends && !(options.mode == WriteMode::Append && options.parts) {
            false => None,
            true => self.valid_metadata(tier, id, backend.name()).await?,
        };
        let keeps_record = versioned || options.amends;
        // A format that replaces its data at once still holds the old data
        // when the write fails (the body's error, a value refused): its row
        // is put back then, so a failed replacement loses nothing.
        // (A row that does not read, corrupt, is not worth restoring.)
        let restores =
            options.restores && (backend.commit() == Commit::Atomic || backend.publishes_late());
        let hidden = match !keeps_record && restores {
            true => (self.valid_metadata(tier, id, backend.name()).await).unwrap_or(None),
            false => None,
        };
        // The old record (and a null marker) go before the new data is
        // visible: at once, or, for a format that publishes at the end,
        // only then, so the old entry reads while the new one is computed.
        let mut hiding = vec![];
        if !keeps_record {
            hiding.push(meta_path.clone());
        }
        // An entry that is there to amend has no null marker.
        if !amends {
            self.check_writable(tier, id)?;
            hiding.push(metastore::null_path(&id.key, id.namespace.as_deref()));
        }
        // Only a replacement has an old entry to keep readable; a first
        // write hides nothing that is there, and publishes the cheapest way.
        let late = backend.publishes_late() && options.restores && !hiding.is_empty();
        let at = tier.entry_location(&**backend, &id.key, id.namespace.as_deref());
        // An entry of one object or table, replaced, keeps a record
        // throughout: right before the new data is published, a pending
        // record naming the old one and its data's stamp takes its place.
        let replacing = match (late && !options.parts, &hidden) {
            (true, Some(previous)) => Some(Replacing {
                stamp: (backend.stamp(&at).await)
                    .map_err(|e| self.backend_error(backend.name(), id, tier, e))?,
                previous: Box::new(previous.clone()),
                staged: None,
            }),
            _ => None,
        };
        let (requests_to, mut requests) = tokio::sync::mpsc::unbounded_channel();
        let late_options;
        let options = match late {
            true => {
                let mut with_hook = options.clone();
                with_hook.before_publish = Some(match &replacing {
                    Some(_) => ask_before_publish(requests_to),
                    None => hide_before_publish(tier, hiding.clone()),
                });
                late_options = with_hook;
                &late_options
            }
            false => {
                for path in &hiding {
                    match tier.store().delete(path).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(Catalog::unwritable(tier, path, e)),
                    }
                }
                options
            }
        };
        let target = Target {
            tier,
            id,
            backend,
            options,
            path: data_path(&id.key, id.namespace.as_deref(), backend.extension()),
            at,
            columns: columns_of(&data.schema()),
            provenance,
        };
        let mut pending_put = false;
        let publishing = replacing.clone().map(|replacing| Publishing {
            requests: &mut requests,
            replacing,
            hiding: hiding.into_iter().filter(|p| *p != meta_path).collect(),
            put: &mut pending_put,
        });
        let (written, range) = match self.write_data(&target, data, publishing).await {
            Ok(done) => done,
            Err(error) => {
                // Once a pending record is put, it settles to the old entry
                // or the new by itself; it is replaced by the old record only
                // while the data is surely untouched.
                // (A format without stamps, Zarr, may have cleared the data
                // in place: its pending record reads the staged copy.)
                let untouched = match (pending_put, &replacing) {
                    (false, _) => true,
                    (true, Some(replacing)) if replacing.stamp.is_some() => {
                        (backend.stamp(&target.at).await).is_ok_and(|s| s == replacing.stamp)
                    }
                    (true, _) => false,
                };
                if let Some(row) = hidden.filter(|_| untouched) {
                    if let Err(e) = self.put_row(&target, &row).await {
                        tracing::warn!(key = %id.key, "could not restore the entry's record: {e}");
                    }
                }
                return Err(error);
            }
        };
        self.ensure_marker(tier).await?;
        let row = match &written.part {
            Some(part) => {
                self.commit_part(&target, &written, part, previous, range)
                    .await?
            }
            None => {
                let row = target.row(&written, previous.as_ref(), range);
                if let Err(e) = self.put_row(&target, &row).await {
                    // The data is unreachable without metadata; remove it
                    // so a failed commit leaves nothing behind. A kept
                    // record still vouches for the data it had.
                    if !keeps_record {
                        let _ = backend.delete(&target.at).await;
                    }
                    return Err(e);
                }
                row
            }
        };
        if late {
            if let Err(e) = backend.discard_staged(&target.at).await {
                tracing::warn!(key = %id.key, "could not remove the staged copy: {e}");
            }
        }
        tracing::debug!(key = %id.key, tier = tier.name(), rows = written.rows, bytes = written.bytes, "stored entry");
        let entry = self.open_stored(tier, id, backend, row, schema).await?;
        Ok((written, entry))
    }

    /// The entry just committed as `row`, opened to be read as `schema`.
    pub(crate) async fn open_stored(
        &self,
        tier: &Tier,
        id: &EntryId,
        backend: &Arc<dyn Backend>,
        row: MetadataRow,
        schema: &SchemaRef,
    ) -> Result<Entry> {
        self.open_data(tier, id, backend, row, schema)
            .await?
            .ok_or_else(|| {
                let vanished = "the data vanished right after it was stored";
                self.backend_error(
                    backend.name(),
                    id,
                    tier,
                    DataFusionError::Execution(vanished.into()),
                )
            })
    }

    /// The metadata row of `id` on `tier` for `backend`, if it is a valid
    /// entry of `id`'s version.
    async fn valid_metadata(
        &self,
        tier: &Tier,
        id: &EntryId,
        backend: &str,
    ) -> Result<Option<MetadataRow>> {
        Ok(self
            .read_metadata(tier, id, backend)
            .await?
            .filter(|row| row.is_valid_for(id.version.as_deref())))
    }

    /// Streams `data` through the backend; notes the time range on the way,
    /// so that listing the catalog later reads no data.
    async fn write_data(
        &self,
        target: &Target<'_>,
        data: SendableRecordBatchStream,
        publishing: Option<Publishing<'_>>,
    ) -> Result<(Written, TimeRange)> {
        let (tier, id, backend, options) = (target.tier, target.id, target.backend, target.options);
        // Errors of the stream are the compute's; keep them apart from the
        // backend's own.
        let compute_error: Arc<Mutex<Option<DataFusionError>>> = Arc::default();
        let seen = Arc::clone(&compute_error);
        let fidelity = Arc::new(Counter::new(&**backend, &target.at, &data.schema()));
        let counted = Arc::clone(&fidelity);
        let exact = options.exact;
        let range = Arc::new(Mutex::new(TimeRange::default()));
        let time_column = options.sorted_by.clone();
        let noted = Arc::clone(&range);
        let progress = options.progress.clone();
        let stream_schema = data.schema();
        let tagged = data.map(move |batch| {
            if let (Ok(batch), Some(column)) = (&batch, &time_column) {
                noted.lock().expect("time range").note(batch, column);
            }
            if let Ok(batch) = &batch {
                if let Some(change) = counted.count(batch, exact) {
                    return Err(DataFusionError::Execution(format!(
                        "refused to store a changed value: {change}"
                    )));
                }
            }
            if let (Ok(batch), Some(progress)) = (&batch, &progress) {
                progress.rows.fetch_add(
                    batch.num_rows() as u64,
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
            batch.map_err(|e| {
                let text = e.to_string();
                seen.lock().expect("compute error slot").get_or_insert(e);
                DataFusionError::Execution(format!("the computed result failed: {text}"))
            })
        });
        let data = Box::pin(RecordBatchStreamAdapter::new(stream_schema, tagged));
        // This process holds the entry's in-flight claim, so no write of it
        // here is staged; what is staged is a killed process's.
        tier.sweep_staged(backend.name(), &target.path);
        let write = backend.write(&target.at, data, options);
        let outcome = match publishing {
            None => write.await,
            Some(publishing) => {
                let range = || *range.lock().expect("time range");
                self.write_pending(target, write, publishing, range).await
            }
        };
        match outcome {
            Ok(mut written) => {
                let range = std::mem::take(&mut *range.lock().expect("time range"));
                written.changes = fidelity.changes();
                for change in &written.changes {
                    tracing::warn!(key = %id.key, backend = backend.name(), "stored changed: {change}");
                }
                Ok((written, range))
            }
            Err(_) if fidelity.refused().is_some() => {
                let change = fidelity.refused().expect("a refusal");
                let (key, backend) = (id.key.display().to_string(), backend.name().to_string());
                let exact_backends = self.backends().offer(|b| b.exact_rows());
                Err(match change.loss.refuses() {
                    true => Error::Unstorable {
                        key,
                        backend,
                        change: change.to_string(),
                        exact_backends,
                    },
                    false => Error::Inexact {
                        key,
                        backend,
                        change: change.to_string(),
                        exact_backends,
                    },
                })
            }
            Err(source) => {
                let computed = compute_error.lock().expect("compute error slot").take();
                Err(match computed {
                    Some(source) => Error::ComputeFailed {
                        key: id.key.display().to_string(),
                        source: Box::new(source),
                    },
                    None => self.backend_error(backend.name(), id, tier, source),
                })
            }
        }
    }

    /// Runs `write`, answering its request to publish
    /// ([`ask_before_publish`]) with the pending record of what it is
    /// about to publish, over the time range seen so far (`range`).
    async fn write_pending(
        &self,
        target: &Target<'_>,
        write: impl std::future::Future<Output = datafusion::common::Result<Written>>,
        publishing: Publishing<'_>,
        range: impl Fn() -> TimeRange,
    ) -> datafusion::common::Result<Written> {
        let Publishing {
            requests,
            mut replacing,
            hiding,
            put,
        } = publishing;
        let mut write = std::pin::pin!(write);
        loop {
            tokio::select! {
                outcome = &mut write => return outcome,
                Some((published, reply)) = requests.recv() => {
                    let written = Written {
                        rows: published.rows,
                        bytes: published.bytes.unwrap_or_default(),
                        ..Written::default()
                    };
                    let mut row = target.row(&written, None, range());
                    row.recorded.bytes = published.bytes.map(|b| b as i64);
                    row.state = metastore::PENDING.to_string();
                    replacing.staged = published.staged.as_ref().map(|p| p.to_string());
                    row.replacing = Some(replacing.clone());
                    // Without a stamp of the old data, or a staged copy, a
                    // pending record could not be settled: the old record
                    // is hidden instead (a format of another crate that
                    // publishes late but keeps no stamps).
                    let settles = replacing.stamp.is_some() || replacing.staged.is_some();
                    *put = settles;
                    let put = async {
                        match settles {
                            true => self.put_row(target, &row).await?,
                            false => self.hide_row(target).await?,
                        }
                        // A null marker goes once the pending record holds
                        // the entry.
                        for path in &hiding {
                            match target.tier.store().delete(path).await {
                                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                                Err(e) => return Err(Catalog::unwritable(target.tier, path, e)),
                            }
                        }
                        Ok(())
                    };
                    let _ = reply.send(put.await);
                }
            }
        }
    }

    /// Removes the record of the entry `target` writes.
    async fn hide_row(&self, target: &Target<'_>) -> Result<()> {
        let id = target.id;
        let path = metadata_path(&id.key, id.namespace.as_deref(), target.backend.name());
        match target.tier.store().delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Catalog::unwritable(target.tier, &path, e)),
        }
    }

    pub(crate) async fn put_row(&self, target: &Target<'_>, row: &MetadataRow) -> Result<()> {
        let (tier, id) = (target.tier, target.id);
        let meta_path = metadata_path(&id.key, id.namespace.as_deref(), target.backend.name());
        let encoded = row
            .encode()
            .map_err(|e| self.backend_error("metastore", id, tier, e))?;
        tier.store()
            .put(&meta_path, PutPayload::from(encoded))
            .await
            .map_err(|e| Catalog::unwritable(tier, &meta_path, e))?;
        Ok(())
    }

    /// Commits the new `part` under the entry's lock (see the module
    /// docs); the part is removed if the commit fails.
    async fn commit_part(
        &self,
        target: &Target<'_>,
        written: &Written,
        part: &str,
        read: Option<MetadataRow>,
        range: TimeRange,
    ) -> Result<MetadataRow> {
        let (tier, id, backend) = (target.tier, target.id, target.backend);
        let lock_path =
            metadata_dir(&id.key, id.namespace.as_deref()).join(format!("{}.lock", backend.name()));
        let lock = EntryLock::acquire(tier, lock_path).await?;
        let amends = target.options.amends || target.options.mode != WriteMode::Replace;
        let committed = async {
            let current = self.valid_metadata(tier, id, backend.name()).await?;
            self.check_part(target, part, read.as_ref(), current.as_ref())
                .await?;
            // A write that replaces the entry owes nothing to what is there.
            let current = current.filter(|_| amends);
            let row = target.row(written, current.as_ref(), range);
            self.put_row(target, &row).await?;
            Ok(row)
        }
        .await;
        lock.release().await;
        match committed {
            Ok(row) => {
                let keep: Vec<String> = (row.recorded.parts.iter().flatten())
                    .map(|p| p.name.clone())
                    .collect();
                if let Err(e) = backend.remove_parts(&target.at, &keep).await {
                    tracing::warn!(key = %id.key, "could not remove replaced parts: {e}");
                }
                let staging = nuthatch_backends::files::staging(&target.path);
                tier.sweep_staged_parts(backend.name(), &staging);
                Ok(row)
            }
            Err(error) => {
                let _ = tier
                    .store()
                    .delete(&target.at.path.clone().join(part))
                    .await;
                Err(error)
            }
        }
    }

    /// Whether `part` can be committed over the row as it is now
    /// (`current`), when the write began from `read`.
    async fn check_part(
        &self,
        target: &Target<'_>,
        part: &str,
        read: Option<&MetadataRow>,
        current: Option<&MetadataRow>,
    ) -> Result<()> {
        let conflict = |detail: String| Error::Conflict {
            key: target.id.key.display().to_string(),
            tier: target.tier.name().to_string(),
            detail,
        };
        // Another commit removes the parts its row does not list.
        if let Err(e) = target
            .tier
            .store()
            .head(&target.at.path.clone().join(part))
            .await
        {
            return Err(conflict(format!("the part written is gone: {e}")));
        }
        let options = target.options;
        match (&options.mode, current) {
            (WriteMode::Append, None) => Err(conflict("the entry was removed".into())),
            (WriteMode::Append, Some(current)) if current.recorded.parts.is_none() => {
                Err(conflict("it is no longer stored as parts".into()))
            }
            (WriteMode::Append, Some(current)) => {
                // A part adds only time the row did not cover, beside the
                // time of the parts it replaces, which must still be there.
                let listed = current.recorded.parts.iter().flatten();
                let replaced: Vec<&Part> = listed
                    .filter(|part| options.replaces.contains(&part.name))
                    .collect();
                if replaced.len() != options.replaces.len() {
                    return Err(conflict(
                        "another write replaced its parts meanwhile".into(),
                    ));
                }
                let held = Coverage::of(
                    replaced
                        .iter()
                        .flat_map(|part| part.covers.iter().flat_map(|c| c.spans().to_vec())),
                );
                let covered = current.recorded.coverage.clone().unwrap_or_default();
                let added = options.covers.clone().unwrap_or_else(Coverage::all);
                let fresh = added.subtract(&held);
                match fresh.spans().iter().any(|span| covered.overlaps(*span)) {
                    true => Err(conflict(format!(
                        "another write added part of {fresh} meanwhile"
                    ))),
                    false => Ok(()),
                }
            }
            // A rewrite of the whole entry must be of the row it read.
            (_, current) if options.amends => {
                let read = options.based_on.or(read.map(|r| r.last_modified));
                match current.map(|r| r.last_modified) == read {
                    true => Ok(()),
                    false => Err(conflict("another write committed meanwhile".into())),
                }
            }
            _ => Ok(()),
        }
    }
}

impl Target<'_> {
    /// The metadata row of the entry once `written` is committed over
    /// `previous` (the row as it is now, for a write that amends it).
    pub(crate) fn row(
        &self,
        written: &Written,
        previous: Option<&MetadataRow>,
        mut range: TimeRange,
    ) -> MetadataRow {
        let (tier, id, options) = (self.tier, self.id, self.options);
        let appended = options.mode == WriteMode::Append;
        let stored = previous.map(|p| &p.recorded);
        if let Some(stored) = stored.filter(|s| s.time_column.is_some()) {
            range.widen(stored.time_min, stored.time_max);
        }
        // An entry that recorded no coverage (Python's) still records none.
        let (coverage, provisional) = match stored {
            None => (options.covers.clone(), options.provisional.clone()),
            Some(stored) => merged_coverage(stored, options),
        };
        // Parts an append replaces leave the list, and their rows the count.
        let mut kept = stored.and_then(|s| s.parts.clone()).unwrap_or_default();
        kept.retain(|part| !options.replaces.contains(&part.name));
        let replaced_rows: Option<i64> = (stored.and_then(|s| s.parts.as_ref()).into_iter())
            .flatten()
            .filter(|part| options.replaces.contains(&part.name))
            .map(|part| part.rows.map(|n| n as i64))
            .sum();
        let parts = written.part.as_ref().map(|name| {
            let part = Part {
                name: name.clone(),
                covers: if appended {
                    options.covers.clone()
                } else {
                    coverage.clone()
                },
                rows: Some(written.rows),
            };
            let mut parts = if appended { kept } else { Vec::new() };
            parts.push(part);
            parts
        });
        let sum = |of: fn(&Recorded) -> Option<i64>, now: u64| match (appended, stored) {
            (true, Some(stored)) => of(stored).map(|before| before + now as i64),
            _ => Some(now as i64),
        };
        let rows = match appended {
            true => sum(|r| r.rows, written.rows)
                .zip(replaced_rows)
                .map(|(n, less)| n - less),
            false => Some(written.rows as i64),
        };
        MetadataRow {
            cache_key: id.key.as_str().to_string(),
            namespace: id.namespace.clone(),
            version: id.version.clone(),
            backend: self.backend.name().to_string(),
            state: CONFIRMED.to_string(),
            last_modified: chrono::Utc::now().timestamp_micros() as f64,
            commit_hash: metastore::current_commit_hash(),
            user: metastore::current_user(),
            path: format!("{}/{}", tier.url().trim_end_matches('/'), self.path),
            replacing: None,
            recorded: Recorded {
                rows,
                bytes: sum(|r| r.bytes, written.bytes),
                time_column: options.sorted_by.clone(),
                time_min: range.min,
                time_max: range.max,
                data_version: written.version.map(|v| v as i64),
                // A merge interleaves new rows with stored ones, and parts
                // each keep their own order.
                sort_order: match (&options.mode, &parts) {
                    (WriteMode::Replace, None) => options.order.clone(),
                    (WriteMode::Replace, Some(parts)) if parts.len() == 1 => options.order.clone(),
                    _ => Vec::new(),
                },
                coverage,
                provisional,
                parts,
                columns: Some(self.columns.clone()),
                fingerprint: self.provenance.fingerprint.clone(),
                arguments: self.provenance.arguments.clone(),
                lineage: amended_lineage(stored, self.provenance.lineage()),
            },
        }
    }
}

/// The lineage of an entry whose stored rows (`stored`) a write amends
/// with rows computed from `added`: every input of either, an entry read
/// by both at its earlier stamp, since rows computed from it are still
/// there.
fn amended_lineage(stored: Option<&Recorded>, added: Lineage) -> Lineage {
    let (Some(Lineage::Recorded(before)), Lineage::Recorded(mut inputs)) =
        (stored.map(|s| &s.lineage), added.clone())
    else {
        return added;
    };
    for old in before {
        let same = inputs.iter().position(|new| match (new, old) {
            (Input::Entry(a), Input::Entry(b)) => a.same_entry(b),
            (Input::File(a), Input::File(b)) => a.url == b.url,
            _ => false,
        });
        match same {
            Some(at) => inputs[at] = old.clone(),
            None => inputs.push(old.clone()),
        }
    }
    Lineage::Recorded(inputs)
}

/// What an entry covers after a merge added the rows `options` describe
/// to `stored`: the union, with what the merge recomputed no longer
/// provisional unless it is again.
fn merged_coverage(
    stored: &Recorded,
    options: &WriteOptions,
) -> (
    Option<nuthatch_backends::coverage::Coverage>,
    Option<nuthatch_backends::coverage::Coverage>,
) {
    let (Some(covered), Some(added)) = (&stored.coverage, &options.covers) else {
        return (None, None);
    };
    let earlier = stored.provisional.clone().unwrap_or_default();
    let provisional = earlier
        .subtract(added)
        .union(&options.provisional.clone().unwrap_or_default());
    let provisional = (!provisional.is_empty()).then_some(provisional);
    (Some(covered.union(added)), provisional)
}

/// `schema`'s columns as a metadata row records them: `name: type`.
pub fn columns_of(schema: &arrow::datatypes::Schema) -> Vec<String> {
    (schema.fields().iter())
        .map(|field| format!("{}: {}", field.name(), field.data_type()))
        .collect()
}

/// What a replacement's write is to do right before it publishes
/// ([`Catalog::write_pending`]).
struct Publishing<'a> {
    /// The write's requests to publish ([`ask_before_publish`]).
    requests: &'a mut tokio::sync::mpsc::UnboundedReceiver<PublishRequest>,
    replacing: Replacing,
    /// The null marker, which goes once the pending record is put.
    hiding: Vec<Path>,
    /// Set once the pending record may have been put.
    put: &'a mut bool,
}

/// A write about to publish, and where its go-ahead is to be sent.
type PublishRequest = (
    nuthatch_backends::Published,
    tokio::sync::oneshot::Sender<Result<()>>,
);

/// Hands the write's request to publish to the store that began it, which
/// puts the pending record, and waits for its answer.
fn ask_before_publish(
    requests: tokio::sync::mpsc::UnboundedSender<PublishRequest>,
) -> nuthatch_backends::BeforePublish {
    nuthatch_backends::BeforePublish(Arc::new(move |published| {
        let requests = requests.clone();
        Box::pin(async move {
            let (reply, answer) = tokio::sync::oneshot::channel();
            let gone = || DataFusionError::Execution("the write's commit ended early".into());
            requests.send((published, reply)).map_err(|_| gone())?;
            match answer.await {
                Ok(put) => put.map_err(|e| DataFusionError::External(Box::new(e))),
                Err(_) => Err(gone()),
            }
        })
    }))
}

/// Removes `paths` (an entry's old record and null marker) from `tier`
/// when the write's data is about to appear ([`WriteOptions::before_publish`]).
fn hide_before_publish(tier: &Tier, paths: Vec<Path>) -> nuthatch_backends::BeforePublish {
    let store = std::sync::Arc::clone(tier.store());
    let (name, location) = (tier.name().to_string(), tier.url().to_string());
    nuthatch_backends::BeforePublish(Arc::new(move |_| {
        let (store, paths) = (Arc::clone(&store), paths.clone());
        let (name, location) = (name.clone(), location.clone());
        Box::pin(async move {
            for path in &paths {
                match store.delete(path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => {
                        return Err(DataFusionError::External(Box::new(Error::Unwritable {
                            tier: name,
                            location,
                            what: path.to_string(),
                            detail: e.to_string(),
                        })))
                    }
                }
            }
            Ok(())
        })
    }))
}

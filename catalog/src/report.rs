//! One line per cached call: what happened, where, and how much was read.
//!
//! Calls append their report when their result stream ends; front ends (the
//! `nuthatch` binary, the README example, tests) drain the log after each
//! statement. Calls under way are on the log too ([`Running`]), so that a
//! front end can show what a long statement is doing while it runs.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use nuthatch_backends::coverage::Coverage;
use nuthatch_backends::fidelity::Change;
use nuthatch_backends::WriteProgress;

use crate::background::Background;

/// How a call was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Read from a stored entry.
    Hit,
    /// Computed and stored.
    Computed,
    /// Computed and not stored (modes `off` and `read_only`, a call whose
    /// root and mirrors are disabled).
    ComputedNotStored,
    /// A null marker: the function returned no result before; served as
    /// an empty table.
    NullHit,
    /// Computed, and the function returned no result.
    ComputedNull,
    /// Computed and merged into the stored entry by key (`upsert`).
    Upserted,
    /// Computed for the call's window, which replaced that window of the
    /// stored entry (`replace_window`).
    WindowReplaced,
    /// Read from a stored entry, after computing the time the call asked
    /// for that the entry did not cover and adding it to the entry.
    Extended,
    /// Read from a stored entry and from a compute of the time it did not
    /// cover, which was not stored (a mode that does not write the tier
    /// the entry is on).
    ExtendedNotStored,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Computed => "computed",
            Outcome::ComputedNotStored => "computed (not stored)",
            Outcome::NullHit => "null hit",
            Outcome::ComputedNull => "computed null",
            Outcome::Upserted => "upserted",
            Outcome::WindowReplaced => "window replaced",
            Outcome::Extended => "extended",
            Outcome::ExtendedNotStored => "extended (not stored)",
        }
    }
}

/// The report of one cached call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallReport {
    pub function: String,
    pub outcome: Outcome,
    /// The tier read (`memory` for a memoized result) or, for a compute,
    /// written, if any.
    pub tier: Option<String>,
    /// The tier a result read elsewhere was copied to (`local` in the local
    /// modes; `root` when storing with another backend).
    pub copied_to: Option<String>,
    pub backend: String,
    pub key: String,
    pub namespace: Option<String>,
    /// Rows the call returned (after clipping and filters).
    pub rows: usize,
    /// Row groups of the entry that the scan read, and how many it has.
    pub row_groups_read: Option<(usize, usize)>,
    /// Chunks of a Zarr entry that the scan read, and how many it has.
    pub chunks_read: Option<(usize, usize)>,
    /// Files of a Delta version that the scan read, and how many it has.
    pub files_read: Option<(usize, usize)>,
    /// Rows a database sent for the scan (SQL entries), after the filters
    /// it evaluated.
    pub rows_fetched: Option<usize>,
    /// The version of a versioned entry (Delta) that was read or written.
    pub data_version: Option<i64>,
    /// For an upsert: stored rows it updated, and rows it inserted; for an
    /// extension, the rows it added.
    pub updated: Option<u64>,
    pub inserted: Option<u64>,
    /// For an extension: the time computed because the entry did not
    /// cover it.
    pub computed_ranges: Option<Coverage>,
    /// Chunks read that were not in the store, which Zarr reads as the
    /// array's fill value.
    pub chunks_missing: usize,
    /// Bytes the scan read from the store.
    pub bytes_scanned: Option<usize>,
    /// Bytes the compute spilled to disk to stay within the memory limit.
    pub spilled_bytes: usize,
    /// Values the backend stored other than as computed (see
    /// [`nuthatch_backends::fidelity`]).
    pub changes: Vec<Change>,
    /// Why the entry served is stale, when the call served it anyway
    /// ([`crate::stale`]).
    pub stale: Option<String>,
    /// The other process whose compute of the entry this call waited for
    /// (its lease), and how long.
    pub waited: Option<crate::lease::Waited>,
    /// The error that ended the call's rows, when it failed after it was
    /// resolved (a compute that failed while stored); nothing was stored.
    pub failed: Option<String>,
    pub elapsed: Duration,
}

impl CallReport {
    /// How the call was served, or `failed`.
    pub fn outcome_name(&self) -> &'static str {
        match self.failed {
            Some(_) => "failed",
            None => self.outcome.name(),
        }
    }
}

impl fmt::Display for CallReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.function, self.outcome_name())?;
        if let Some(tier) = &self.tier {
            write!(f, " {tier}")?;
        }
        if let Some(copy) = &self.copied_to {
            write!(f, "->{copy}")?;
        }
        // Memoized results and null markers have no storage format.
        if !matches!(self.backend.as_str(), "memory" | "null") {
            write!(f, " {}", self.backend)?;
        }
        write!(f, " {}", self.key)?;
        if let Some(ns) = &self.namespace {
            write!(f, " namespace={ns}")?;
        }
        if let Some(version) = self.data_version {
            write!(f, " version={version}")?;
        }
        write!(f, " rows={}", self.rows)?;
        if let Some(ranges) = &self.computed_ranges {
            write!(f, " computed=[{ranges}]")?;
        }
        match (self.inserted, self.outcome) {
            (Some(added), Outcome::Extended) => write!(f, " added={added}")?,
            (Some(inserted), _) => write!(f, " inserted={inserted}")?,
            (None, _) => {}
        }
        if let Some(updated) = self.updated {
            write!(f, " updated={updated}")?;
        }
        if let Some((read, total)) = self.files_read {
            write!(f, " files={read}/{total}")?;
        }
        if let Some(fetched) = self.rows_fetched {
            write!(f, " fetched={fetched}")?;
        }
        if let Some((read, total)) = self.row_groups_read {
            write!(f, " row_groups={read}/{total}")?;
        }
        if let Some((read, total)) = self.chunks_read {
            write!(f, " chunks={read}/{total}")?;
        }
        if self.chunks_missing > 0 {
            write!(
                f,
                " missing_chunks={} (read as fill value)",
                self.chunks_missing
            )?;
        }
        if self.spilled_bytes > 0 {
            write!(
                f,
                " spilled={:.1}MiB",
                self.spilled_bytes as f64 / (1 << 20) as f64
            )?;
        }
        if let Some(waited) = &self.waited {
            let seconds = waited.waited.as_secs_f64();
            write!(f, " waited={seconds:.3}s for {}", waited.holder)?;
        }
        write!(f, " in {:.3}s", self.elapsed.as_secs_f64())?;
        if let Some(changes) = changes_text(&self.changes) {
            write!(f, " WARNING stored changed: {changes}")?;
        }
        if let Some(because) = &self.stale {
            write!(f, " STALE: {because}")?;
        }
        if let Some(error) = &self.failed {
            let first = error.lines().next().unwrap_or_default();
            write!(f, " ERROR: {first}")?;
        }
        Ok(())
    }
}

/// What a write changed, one change after another; `None` for none.
pub fn changes_text(changes: &[Change]) -> Option<String> {
    let text: Vec<String> = changes.iter().map(Change::to_string).collect();
    (!text.is_empty()).then(|| text.join("; "))
}

/// How many calls a session remembers for `nuthatch.calls`.
pub const HISTORY: usize = 10_000;

/// A session's call reports: those not yet drained by its front end, and
/// the last [`HISTORY`] calls with when they finished.
#[derive(Debug, Default)]
pub struct ReportLog {
    reports: Mutex<Vec<CallReport>>,
    history: Mutex<VecDeque<(DateTime<Utc>, CallReport)>>,
    /// Calls started and not finished. Weak, so a call whose plan is
    /// dropped midway (a cancelled query) leaves by itself.
    running: Mutex<Vec<Weak<Running>>>,
    /// Writes of this session's misses still under way.
    pub background: Background,
}

/// What a running call is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Looking for an entry on the tiers its mode reads.
    LookingUp,
    /// Running the body, and streaming its result into a tier if stored.
    Computing,
    /// Copying an entry read elsewhere to the local tier.
    Copying,
    /// Serving rows to the query.
    Reading,
    /// Waiting for another process that computes the entry (its lease).
    Waiting,
}

impl Phase {
    const ALL: [Phase; 5] = [
        Phase::LookingUp,
        Phase::Computing,
        Phase::Copying,
        Phase::Reading,
        Phase::Waiting,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::LookingUp => "looking up",
            Phase::Computing => "computing",
            Phase::Copying => "copying",
            Phase::Reading => "reading",
            Phase::Waiting => "waiting for another process",
        }
    }
}

/// A cached call under way, as a progress display sees it. The counters
/// are advanced by the call as it goes and only read here.
#[derive(Debug)]
pub struct Running {
    pub function: String,
    pub key: String,
    pub started: Instant,
    phase: AtomicU8,
    finished: AtomicBool,
    /// Rows taken from the body and bytes encoded, while it is stored.
    pub written: Arc<WriteProgress>,
    /// Rows served to the query.
    pub served: AtomicU64,
    /// The holder of the lease this call waits or waited for.
    pub waited: Mutex<Option<crate::lease::Waited>>,
}

impl Running {
    pub fn phase(&self) -> Phase {
        Phase::ALL[self.phase.load(Ordering::Relaxed) as usize]
    }

    pub fn set_phase(&self, phase: Phase) {
        let index = Phase::ALL.iter().position(|p| *p == phase).unwrap_or(0);
        self.phase.store(index as u8, Ordering::Relaxed);
    }

    /// The call is done; it leaves the running list.
    pub fn finish(&self) {
        self.finished.store(true, Ordering::Relaxed);
    }
}

impl ReportLog {
    pub fn push(&self, report: CallReport) {
        tracing::info!(target: "nuthatch::call", "{report}");
        {
            let mut history = self.history.lock().expect("report log poisoned");
            if history.len() == HISTORY {
                history.pop_front();
            }
            history.push_back((Utc::now(), report.clone()));
        }
        self.reports
            .lock()
            .expect("report log poisoned")
            .push(report);
    }

    /// Takes every report logged since the last drain.
    pub fn drain(&self) -> Vec<CallReport> {
        std::mem::take(&mut *self.reports.lock().expect("report log poisoned"))
    }

    /// Notes a call that starts now; it is running until [`Running::finish`]
    /// or until the returned handle is dropped.
    pub fn begin(&self, function: &str, key: &str) -> Arc<Running> {
        let running = Arc::new(Running {
            function: function.to_string(),
            key: key.to_string(),
            started: Instant::now(),
            phase: AtomicU8::new(0),
            finished: AtomicBool::new(false),
            written: Arc::default(),
            served: AtomicU64::new(0),
            waited: Mutex::new(None),
        });
        let mut list = self.running.lock().expect("report log poisoned");
        list.retain(|call| call.strong_count() > 0);
        list.push(Arc::downgrade(&running));
        running
    }

    /// The calls under way, in the order they started.
    pub fn running(&self) -> Vec<Arc<Running>> {
        let list = self.running.lock().expect("report log poisoned");
        list.iter()
            .filter_map(Weak::upgrade)
            .filter(|call| !call.finished.load(Ordering::Relaxed))
            .collect()
    }

    /// The remembered calls, oldest first, with when each finished.
    pub fn history(&self) -> Vec<(DateTime<Utc>, CallReport)> {
        self.history
            .lock()
            .expect("report log poisoned")
            .iter()
            .cloned()
            .collect()
    }
}

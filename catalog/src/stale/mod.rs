//! Staleness: whether an entry still holds what its function would compute
//! now, and if not, why.
//!
//! An entry is stale when the definition that computed it is not the
//! function's current one (the fingerprints differ), when an entry it read
//! has been written again since (its row carries another commit stamp) or
//! is gone, or when an entry it read is itself stale, through however many
//! inputs. Each reason is a [`Cause`], nested along the path it was found
//! through. An entry that recorded no fingerprint or lineage (Python's, or
//! one written before they were kept) is [`Staleness::Unknown`], never an
//! error, and so is one whose record does not read.
//!
//! Judging reads nothing of the store beyond the rows of the inputs, one
//! small GET each (and each once per [`Judge`], which a query or a listing
//! makes once); the function's own fingerprint comes from the engine's
//! definitions ([`Definitions`]), which this crate does not know.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use datafusion::execution::runtime_env::RuntimeEnv;
use futures::future::BoxFuture;
use futures::FutureExt;

mod files;
mod policy;

pub use policy::OnStale;

use crate::key::CacheKey;
use crate::lineage::{Input, InputEntry, InputFile, Lineage};
use crate::{Catalog, EntryId, MetadataRow, Tier, TierRole};

/// What the engine knows of the functions' definitions now.
pub trait Definitions: Send + Sync + fmt::Debug {
    /// The current fingerprint of `function`; `None` when it is not
    /// defined here.
    fn fingerprint(&self, function: &str) -> Option<Fingerprint>;
}

/// A function's fingerprint, and what it is made of: the definition's
/// own, and the whole fingerprint of each cached function its body calls.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fingerprint {
    pub whole: String,
    pub own: String,
    pub calls: Vec<(String, String)>,
}

impl Fingerprint {
    /// The parts as the `fingerprint_parts` column holds them: `own` and
    /// each callee, one `name\tfingerprint` per line.
    pub fn encode_parts(&self) -> String {
        let mut lines = vec![format!("\t{}", self.own)];
        lines.extend(self.calls.iter().map(|(name, fp)| format!("{name}\t{fp}")));
        lines.join("\n")
    }

    /// Reads a row's `fingerprint` and `fingerprint_parts`.
    pub fn decode(whole: String, parts: Option<&str>) -> Fingerprint {
        let mut fingerprint = Fingerprint {
            whole,
            ..Fingerprint::default()
        };
        for line in parts.unwrap_or_default().lines() {
            match line.split_once('\t') {
                Some(("", own)) => fingerprint.own = own.to_string(),
                Some((name, fp)) => fingerprint.calls.push((name.to_string(), fp.to_string())),
                None => {}
            }
        }
        fingerprint
    }
}

/// Whether an entry is stale.
#[derive(Debug, Clone, PartialEq)]
pub enum Staleness {
    Fresh,
    Stale(Vec<Cause>),
    /// Cannot be told; why.
    Unknown(String),
}

impl Staleness {
    pub fn is_stale(&self) -> bool {
        matches!(self, Staleness::Stale(_))
    }

    /// `Some(true)` stale, `Some(false)` fresh, `None` unknown: the
    /// `stale` column of `nuthatch.caches`.
    pub fn flag(&self) -> Option<bool> {
        match self {
            Staleness::Fresh => Some(false),
            Staleness::Stale(_) => Some(true),
            Staleness::Unknown(_) => None,
        }
    }

    /// The causes, or why it cannot be told; `None` when fresh.
    pub fn because(&self) -> Option<String> {
        match self {
            Staleness::Fresh => None,
            Staleness::Stale(causes) => Some(joined(causes)),
            Staleness::Unknown(why) => Some(format!("unknown: {why}")),
        }
    }
}

/// One reason an entry is stale.
#[derive(Debug, Clone, PartialEq)]
pub enum Cause {
    /// The function's definition is not the one that computed the entry.
    DefinitionChanged { function: String },
    /// The definition of a cached function the body calls changed.
    CalleeChanged { function: String, callee: String },
    /// An input entry was written again after this entry read it.
    InputRewritten { input: String, at: f64 },
    /// An input entry is no longer stored (deleted, or replaced by a null
    /// result or another version).
    InputGone { input: String },
    /// An input entry is itself stale.
    InputStale { input: String, causes: Vec<Cause> },
    /// A file the compute read changed, went, or has a new neighbour the
    /// same scan would read.
    FileChanged { url: String, how: String },
}

impl Cause {
    /// The input the cause is about, `None` for the entry's own definition.
    pub fn input(&self) -> Option<&str> {
        match self {
            Cause::DefinitionChanged { .. }
            | Cause::CalleeChanged { .. }
            | Cause::FileChanged { .. } => None,
            Cause::InputRewritten { input, .. }
            | Cause::InputGone { input }
            | Cause::InputStale { input, .. } => Some(input),
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::DefinitionChanged { function } => {
                write!(f, "the definition of {function} changed")
            }
            Cause::CalleeChanged { function, callee } => {
                write!(
                    f,
                    "the definition of {callee}, which {function} calls, changed"
                )
            }
            Cause::InputRewritten { input, at } => {
                let at = chrono::DateTime::from_timestamp_micros(*at as i64)
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_else(|| "an unknown time".into());
                write!(f, "input {input} recomputed at {at}")
            }
            Cause::InputGone { input } => write!(f, "input {input} is no longer stored"),
            Cause::FileChanged { url, how } => write!(f, "input file {url} {how}"),
            Cause::InputStale { input, causes } => {
                write!(f, "input {input} is stale: {}", joined(causes))
            }
        }
    }
}

/// The scheme a fingerprint is written in: what precedes its `:`.
fn scheme(fingerprint: &str) -> &str {
    fingerprint.split_once(':').map_or("", |(scheme, _)| scheme)
}

/// The callees whose fingerprints differ between `was` and `now` (or that
/// one of them calls and the other does not).
fn changed_callees(was: &Fingerprint, now: &Fingerprint) -> Vec<String> {
    let mut changed: Vec<String> = Vec::new();
    for (name, _) in was.calls.iter().chain(&now.calls) {
        let before = was.calls.iter().find(|(n, _)| n == name).map(|(_, f)| f);
        let after = now.calls.iter().find(|(n, _)| n == name).map(|(_, f)| f);
        if before != after && !changed.contains(name) {
            changed.push(name.clone());
        }
    }
    changed
}

fn joined(causes: &[Cause]) -> String {
    let text: Vec<String> = causes.iter().map(Cause::to_string).collect();
    text.join("; ")
}

/// An entry as messages name it: `function()` for a zero-argument key,
/// else the key, with its namespace.
pub fn entry_name(key: &str, namespace: Option<&str>) -> String {
    let base = match key.strip_suffix('/') {
        Some(function) if !function.contains('/') => format!("{function}()"),
        _ => key.to_string(),
    };
    match namespace {
        Some(ns) => format!("{base} (namespace {ns})"),
        None => base,
    }
}

/// Judges entries, remembering each input's verdict, so a query or a
/// listing reads each input row once.
pub struct Judge<'a> {
    catalog: &'a Catalog,
    memo: Mutex<HashMap<String, Staleness>>,
    /// Where the files entries read are looked up; without it, files are
    /// not checked and an entry that read some is unknown.
    files: Option<files::Files>,
}

impl Catalog {
    /// Lets staleness see the functions' current fingerprints: set once,
    /// by the engine that owns the functions.
    pub fn set_definitions(&self, definitions: Arc<dyn Definitions>) {
        let _ = self.definitions.set(definitions);
    }

    /// A judge of staleness, for one query or listing.
    pub fn judge(&self) -> Judge<'_> {
        Judge {
            catalog: self,
            memo: Mutex::default(),
            files: None,
        }
    }

    /// The current fingerprint of `function`, if the engine defines it.
    pub fn current_fingerprint(&self, function: &str) -> Option<Fingerprint> {
        (self.definitions.get()).and_then(|d| d.fingerprint(function))
    }

    /// The configured tier called `name`, if any.
    pub fn tier_named(&self, name: &str) -> Option<&Tier> {
        self.tiers().find(|tier| tier.name() == name)
    }
}

impl Judge<'_> {
    /// Checks the files entries read too, in the stores `runtime` knows
    /// (one LIST per folder of them).
    pub fn with_files(mut self, runtime: Arc<RuntimeEnv>) -> Self {
        self.files = Some(files::Files::new(runtime));
        self
    }

    /// Whether the entry whose row is `row`, on `tier`, is stale.
    pub async fn staleness(&self, tier: &Tier, row: &MetadataRow) -> Staleness {
        self.judge(tier, row, Vec::new()).await
    }

    fn judge<'b>(
        &'b self,
        tier: &'b Tier,
        row: &'b MetadataRow,
        path: Vec<String>,
    ) -> BoxFuture<'b, Staleness> {
        async move {
            let memo_key = format!(
                "{}|{}|{}|{}|{}",
                tier.name(),
                row.cache_key,
                row.namespace.as_deref().unwrap_or(""),
                row.backend,
                row.last_modified
            );
            if let Some(known) = self.memo.lock().expect("memo").get(&memo_key) {
                return known.clone();
            }
            let verdict = self.judged(tier, row, path).await;
            self.memo
                .lock()
                .expect("memo")
                .insert(memo_key, verdict.clone());
            verdict
        }
        .boxed()
    }

    async fn judged(&self, tier: &Tier, row: &MetadataRow, mut path: Vec<String>) -> Staleness {
        let function = row
            .cache_key
            .split_once('/')
            .map_or(row.cache_key.as_str(), |(f, _)| f);
        let mut causes = Vec::new();
        let mut unknown = None;
        let mut callees = Vec::new();
        match (
            &row.recorded.fingerprint,
            self.catalog.current_fingerprint(function),
        ) {
            (None, _) => {
                unknown = Some(
                    "no fingerprint recorded (written by Python nuthatch or an earlier release)"
                        .to_string(),
                )
            }
            (Some(_), None) => unknown = Some(format!("{function} is not defined here")),
            (Some(was), Some(now)) if scheme(&was.whole) != scheme(&now.whole) => {
                unknown = Some(format!(
                    "its fingerprint '{}' is of a scheme this build does not compute",
                    was.whole
                ))
            }
            (Some(was), Some(now)) if was.whole != now.whole => {
                callees = changed_callees(was, &now);
                if was.own != now.own || callees.is_empty() {
                    causes.push(Cause::DefinitionChanged {
                        function: function.to_string(),
                    });
                }
            }
            _ => {}
        }
        path.push(entry_name(&row.cache_key, row.namespace.as_deref()));
        match &row.recorded.lineage {
            Lineage::Unrecorded => {
                unknown.get_or_insert_with(|| "no lineage recorded".to_string());
            }
            Lineage::Unreadable(why) => unknown = Some(why.clone()),
            Lineage::Recorded(inputs) => {
                for input in inputs {
                    let Input::Entry(input) = input else { continue };
                    match self.input(tier, input, &path).await {
                        Ok(Some(cause)) => causes.push(cause),
                        Ok(None) => {}
                        Err(why) => unknown = Some(why),
                    }
                }
                let read: Vec<&InputFile> = (inputs.iter())
                    .filter_map(|input| match input {
                        Input::File(file) => Some(file),
                        Input::Entry(_) => None,
                    })
                    .collect();
                match (&self.files, read.is_empty()) {
                    (_, true) => {}
                    (None, false) => {
                        unknown = Some("the files it read were not checked here".to_string())
                    }
                    (Some(files), false) => match files.changes(&read, row.last_modified).await {
                        Ok(changed) => causes.extend(changed),
                        Err(why) => unknown = Some(why),
                    },
                }
            }
        }
        // A callee whose changed definition shows as a stale input is
        // said once, with the path it was found through.
        for callee in callees {
            let through_input = causes.iter().any(|cause| {
                cause.input().is_some_and(|input| {
                    input.starts_with(&format!("{callee}("))
                        || input.starts_with(&format!("{callee}/"))
                })
            });
            if !through_input {
                causes.push(Cause::CalleeChanged {
                    function: function.to_string(),
                    callee,
                });
            }
        }
        match (causes.is_empty(), unknown) {
            (false, _) => Staleness::Stale(causes),
            (true, Some(why)) => Staleness::Unknown(why),
            (true, None) => Staleness::Fresh,
        }
    }

    /// Why `input` makes its reader stale, if it does; `Err` when that
    /// cannot be told.
    async fn input(
        &self,
        reader: &Tier,
        input: &InputEntry,
        path: &[String],
    ) -> Result<Option<Cause>, String> {
        let name = entry_name(&input.key, input.namespace.as_deref());
        if path.contains(&name) {
            let mut cycle = path.to_vec();
            cycle.push(name);
            return Err(format!(
                "its lineage is a cycle ({}), which is refused",
                cycle.join(" -> ")
            ));
        }
        // An entry on a mirror was written where that store is root: its
        // inputs on "root" are on the same store, the mirror.
        let on_reader = reader.role() == TierRole::Mirror && input.tier == "root";
        let tier = match on_reader {
            true => Some(reader),
            false => self.catalog.tier_named(&input.tier),
        };
        let Some(tier) = tier else {
            return Err(format!(
                "input {name} was read from tier '{}', which is not configured here",
                input.tier
            ));
        };
        let key = CacheKey::stored(&input.key)
            .map_err(|e| format!("input {name} has a key that does not read: {e}"))?;
        let id = EntryId {
            key,
            namespace: input.namespace.clone(),
            version: input.version.clone(),
        };
        let now = match self.catalog.read_metadata(tier, &id, &input.backend).await {
            Ok(row) => row.filter(|row| row.is_valid_for(input.version.as_deref())),
            Err(e) => return Err(format!("input {name} cannot be read: {e}")),
        };
        let Some(now) = now else {
            return Ok(Some(Cause::InputGone { input: name }));
        };
        if now.last_modified != input.committed {
            return Ok(Some(Cause::InputRewritten {
                input: name,
                at: now.last_modified,
            }));
        }
        match self.judge(tier, &now, path.to_vec()).await {
            Staleness::Fresh => Ok(None),
            Staleness::Stale(causes) => Ok(Some(Cause::InputStale {
                input: name,
                causes,
            })),
            Staleness::Unknown(why) => Err(format!("input {name}: {why}")),
        }
    }
}

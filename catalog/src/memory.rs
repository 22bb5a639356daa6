//! The memory tier: memoized results, in this process, within a byte budget.
//!
//! Python nuthatch's memoizer has no bound that holds (it measures objects
//! shallowly and can loop forever evicting) and keys results
//! by arguments alone, so a call in one namespace can return another's. Here
//! a result is keyed by the all-arguments key together with namespace and
//! version, its size is the Arrow memory it holds, and the least recently
//! used results are evicted to make room. A result larger than the whole
//! budget is not kept. Results are shared, never copied: Arrow arrays are
//! immutable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use crate::EntryId;

/// Default budget: 1 GiB.
pub const DEFAULT_MEMOIZE_LIMIT: usize = 1 << 30;

/// A memoized result.
#[derive(Debug, Clone)]
pub struct Memoized {
    pub schema: SchemaRef,
    pub batches: Arc<Vec<RecordBatch>>,
    pub bytes: usize,
    /// When the result was kept.
    pub kept_at: chrono::DateTime<chrono::Utc>,
    /// The stored entry the rows were read from, if any: what a body that
    /// reads them read, for its lineage.
    pub source: Option<crate::lineage::Input>,
}

impl Memoized {
    /// A result, measured as the Arrow memory it holds.
    pub fn new(schema: SchemaRef, batches: Vec<RecordBatch>) -> Self {
        let bytes = batches.iter().map(RecordBatch::get_array_memory_size).sum();
        Memoized {
            schema,
            batches: Arc::new(batches),
            bytes,
            kept_at: chrono::Utc::now(),
            source: None,
        }
    }

    /// The result, read from the stored entry `source`.
    pub fn read_from(mut self, source: Option<crate::lineage::Input>) -> Self {
        self.source = source;
        self
    }
}

/// Where a result is kept: its key, namespace and version, which no key
/// part contains a NUL of.
fn slot_key(key: &str, namespace: Option<&str>, version: Option<&str>) -> String {
    format!(
        "{key}\u{0}{}\u{0}{}",
        namespace.unwrap_or(""),
        version.unwrap_or("")
    )
}

/// One memoized result, as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryEntry {
    /// The all-arguments key.
    pub key: String,
    pub namespace: Option<String>,
    pub version: Option<String>,
    pub rows: usize,
    pub bytes: usize,
    pub kept_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug)]
pub struct MemoryTier {
    budget: usize,
    slots: Mutex<Slots>,
}

#[derive(Debug, Default)]
struct Slots {
    entries: HashMap<String, (Memoized, u64)>,
    clock: u64,
    used: usize,
}

impl MemoryTier {
    pub fn new(budget: usize) -> Self {
        MemoryTier {
            budget,
            slots: Mutex::default(),
        }
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    fn key(id: &EntryId) -> String {
        slot_key(
            id.key.as_str(),
            id.namespace.as_deref(),
            id.version.as_deref(),
        )
    }

    /// The memoized result of `id`, marked as just used.
    pub fn get(&self, id: &EntryId) -> Option<Memoized> {
        let mut slots = self.slots.lock().expect("memory tier poisoned");
        slots.clock += 1;
        let now = slots.clock;
        let (found, used_at) = slots.entries.get_mut(&MemoryTier::key(id))?;
        *used_at = now;
        Some(found.clone())
    }

    /// Keeps `memoized` as the result of `id`, evicting the least recently
    /// used results to make room. Returns whether it was kept: a result
    /// larger than the budget is not.
    pub fn insert(&self, id: &EntryId, memoized: Memoized) -> bool {
        let bytes = memoized.bytes;
        let key = MemoryTier::key(id);
        let mut slots = self.slots.lock().expect("memory tier poisoned");
        if let Some((old, _)) = slots.entries.remove(&key) {
            slots.used -= old.bytes;
        }
        if bytes > self.budget {
            tracing::warn!(
                key = %id.key,
                bytes,
                budget = self.budget,
                "result too large to memoize (memoize_limit); it was served but not kept"
            );
            return false;
        }
        while slots.used + bytes > self.budget {
            let oldest = slots
                .entries
                .iter()
                .min_by_key(|(_, (_, used_at))| *used_at)
                .map(|(k, _)| k.clone());
            let Some(oldest) = oldest else { break };
            if let Some((evicted, _)) = slots.entries.remove(&oldest) {
                slots.used -= evicted.bytes;
                tracing::debug!(bytes = evicted.bytes, "evicted a memoized result");
            }
        }
        slots.clock += 1;
        let now = slots.clock;
        slots.used += bytes;
        slots.entries.insert(key, (memoized, now));
        true
    }

    /// How many results are kept, and their bytes.
    pub fn usage(&self) -> (usize, usize) {
        let slots = self.slots.lock().expect("memory tier poisoned");
        (slots.entries.len(), slots.used)
    }

    /// What is memoized, by all-arguments key, namespace and version, with
    /// rows and bytes, least recently used first.
    pub fn list(&self) -> Vec<MemoryEntry> {
        let slots = self.slots.lock().expect("memory tier poisoned");
        let mut listed: Vec<(u64, MemoryEntry)> = slots
            .entries
            .iter()
            .map(|(key, (memoized, used_at))| {
                let mut parts = key.split('\u{0}');
                let mut next = || parts.next().unwrap_or("").to_string();
                let (key, namespace, version) = (next(), next(), next());
                let entry = MemoryEntry {
                    key,
                    namespace: (!namespace.is_empty()).then_some(namespace),
                    version: (!version.is_empty()).then_some(version),
                    rows: memoized.batches.iter().map(RecordBatch::num_rows).sum(),
                    bytes: memoized.bytes,
                    kept_at: memoized.kept_at,
                };
                (*used_at, entry)
            })
            .collect();
        listed.sort_by_key(|(used_at, _)| *used_at);
        listed.into_iter().map(|(_, entry)| entry).collect()
    }

    /// Forgets one memoized result; whether there was one.
    pub fn forget(&self, entry: &MemoryEntry) -> bool {
        let key = slot_key(
            &entry.key,
            entry.namespace.as_deref(),
            entry.version.as_deref(),
        );
        let mut slots = self.slots.lock().expect("memory tier poisoned");
        match slots.entries.remove(&key) {
            Some((memoized, _)) => {
                slots.used -= memoized.bytes;
                true
            }
            None => false,
        }
    }

    /// Forgets the memoized results of `function` (keys start with its
    /// name), after its stored entries changed under it.
    pub fn forget_function(&self, function: &str) {
        let prefix = format!("{function}/");
        let mut slots = self.slots.lock().expect("memory tier poisoned");
        let mut freed = 0;
        slots.entries.retain(|key, (memoized, _)| {
            let keep = !key.starts_with(&prefix);
            if !keep {
                freed += memoized.bytes;
            }
            keep
        });
        slots.used -= freed;
    }

    /// Forgets every memoized result.
    pub fn clear(&self) {
        let mut slots = self.slots.lock().expect("memory tier poisoned");
        slots.entries.clear();
        slots.used = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{cache_key, KeyValue};
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::collections::BTreeMap;

    fn id(n: i64, namespace: Option<&str>) -> EntryId {
        let mut args = BTreeMap::new();
        args.insert("n".to_string(), KeyValue::Scalar(n.to_string()));
        EntryId {
            key: cache_key("f", &args).unwrap(),
            namespace: namespace.map(str::to_string),
            version: None,
        }
    }

    fn rows(n: usize) -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        let values = Int64Array::from_iter_values(0..n as i64);
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(values)]).unwrap();
        (schema, vec![batch])
    }

    #[test]
    fn least_recently_used_results_make_room_and_oversized_ones_are_not_kept() {
        let (schema, batch) = rows(1000);
        let size: usize = batch.iter().map(RecordBatch::get_array_memory_size).sum();
        let memory = MemoryTier::new(size * 2 + size / 2);
        assert!(memory.insert(
            &id(1, None),
            Memoized::new(Arc::clone(&schema), batch.clone())
        ));
        assert!(memory.insert(
            &id(2, None),
            Memoized::new(Arc::clone(&schema), batch.clone())
        ));
        // Touch 1, so 2 is the least recently used when 3 needs room.
        assert!(memory.get(&id(1, None)).is_some());
        assert!(memory.insert(
            &id(3, None),
            Memoized::new(Arc::clone(&schema), batch.clone())
        ));
        assert!(memory.get(&id(2, None)).is_none());
        assert!(memory.get(&id(1, None)).is_some() && memory.get(&id(3, None)).is_some());
        assert_eq!(memory.usage(), (2, size * 2));
        // Namespaces do not share results (Python's memoizer does).
        assert!(memory.get(&id(1, Some("other"))).is_none());
        let (schema, big) = rows(10_000);
        assert!(!memory.insert(&id(4, None), Memoized::new(schema, big)));
        assert_eq!(memory.usage().0, 2);
    }
}

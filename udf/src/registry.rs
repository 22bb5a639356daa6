//! The cached functions an engine knows, by lower-case name.
//!
//! Every session plans against this one registry. A generation number
//! changes with each definition, so a session can tell cheaply whether its
//! DataFusion context has the current set of table functions.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::function::CachedFunction;

#[derive(Debug, Default)]
pub struct Registry {
    functions: RwLock<BTreeMap<String, Arc<CachedFunction>>>,
    generation: AtomicU64,
}

impl Registry {
    pub fn get(&self, name: &str) -> Option<Arc<CachedFunction>> {
        self.functions
            .read()
            .expect("registry poisoned")
            .get(&name.to_ascii_lowercase())
            .cloned()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.functions
            .read()
            .expect("registry poisoned")
            .contains_key(&name.to_ascii_lowercase())
    }

    /// Adds or replaces a function; returns the one it replaced.
    pub fn insert(&self, function: Arc<CachedFunction>) -> Option<Arc<CachedFunction>> {
        let name = function.name().to_ascii_lowercase();
        let mut functions = self.functions.write().expect("registry poisoned");
        let replaced = functions.insert(name, function);
        self.generation.fetch_add(1, Ordering::AcqRel);
        replaced
    }

    pub fn all(&self) -> Vec<Arc<CachedFunction>> {
        self.functions
            .read()
            .expect("registry poisoned")
            .values()
            .cloned()
            .collect()
    }

    /// Changes whenever a function is added or replaced.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

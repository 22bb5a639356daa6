//! The cached functions a session knows, by lower-case name.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::function::CachedFunction;

#[derive(Debug, Default)]
pub struct Registry {
    functions: RwLock<BTreeMap<String, Arc<CachedFunction>>>,
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
        self.functions
            .write()
            .expect("registry poisoned")
            .insert(name, function)
    }

    pub fn remove(&self, name: &str) -> Option<Arc<CachedFunction>> {
        self.functions
            .write()
            .expect("registry poisoned")
            .remove(&name.to_ascii_lowercase())
    }

    pub fn all(&self) -> Vec<Arc<CachedFunction>> {
        self.functions
            .read()
            .expect("registry poisoned")
            .values()
            .cloned()
            .collect()
    }
}

//! Storage formats for nuthatch cache entries.
//!
//! This crate owns the bytes of an entry: how a result is encoded on an
//! [`object_store::ObjectStore`], how it is found again, and how it is turned
//! back into a DataFusion scan with projection, predicate and limit pushed
//! down. It knows nothing about cached functions, keys or tiers: callers hand
//! it a store and a path.
//!
//! Only the Parquet backend exists so far; its layout matches what the Python
//! nuthatch package writes (`<key>.parquet`, either a single file or a
//! directory of part files).

pub mod parquet;

use std::fmt;

/// The storage formats nuthatch knows by name. The name is what the metastore
/// records in its `backend` column and what the metadata file is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    Parquet,
}

impl BackendKind {
    /// Every backend, in the order nuthatch infers them from metadata
    /// (alphabetical, as the Python package's glob does).
    pub const ALL: [BackendKind; 1] = [BackendKind::Parquet];

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Parquet => "parquet",
        }
    }

    /// The extension of the data object: `<key>.<extension>`.
    pub fn extension(self) -> &'static str {
        match self {
            BackendKind::Parquet => "parquet",
        }
    }

    pub fn parse(name: &str) -> Option<BackendKind> {
        BackendKind::ALL
            .into_iter()
            .find(|kind| kind.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

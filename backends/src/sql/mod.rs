//! The SQL backend (feature `sql`): an entry is a table in a database, for
//! dashboards and services that speak SQL, as Python nuthatch's `sql`
//! backend stores it.
//!
//! The database is a tier's setting (see [`database`]): PostgreSQL for a
//! shared store, or a SQLite file beside a local tier when none is set.
//! The entry's metadata stays in the tier's metastore like every other
//! format's; only the rows live in the database, in one table per entry
//! named after the cache key (its md5 when the key is too long for
//! PostgreSQL's names), in a schema named after the namespace.
//!
//! - [`read`] serves a table through a `TableProvider` whose scans send
//!   the projection, the filters the database can evaluate exactly, and
//!   the limit, and stream rows back in batches.
//! - [`write`] writes in one transaction per write: a replacement, an
//!   upsert by key columns, or the replacement of a time window.
//! - [`filter`] turns DataFusion filters into SQL whose values are all
//!   bound parameters.
//! - [`types`] maps columns between Arrow and SQL.
//! - `copy` encodes and decodes PostgreSQL's binary `COPY` format, the
//!   path of loads and of reads.
//! - `lite` drives SQLite through its C API for bulk reads and loads, on
//!   a connection of the same pools.
//!
//! Writes are [`Commit::Atomic`]: the transaction makes the new table
//! visible at once. They are also merges ([`Backend::merges`]), and the
//! data is not objects in the tier's store, so entries cannot be imported
//! byte for byte.

mod copy;
pub mod database;
pub mod filter;
mod lite;
pub mod read;
pub mod types;
pub mod write;

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::common::Result;
use datafusion::execution::SendableRecordBatchStream;

use crate::fidelity::Loss;
use crate::{Backend, Commit, Location, Section, TierSettings, WriteOptions, Written};
use database::Dialect;

pub use database::SQLITE_FILE;
pub use read::{SqlScan, SqlTable};

/// The backend; it keeps the pools of every database it has been pointed
/// at, so all calls on one tier share a bounded set of connections.
#[derive(Debug, Default)]
pub struct SqlBackend {
    databases: database::Databases,
}

#[async_trait]
impl Backend for SqlBackend {
    fn name(&self) -> &'static str {
        "sql"
    }

    /// Only named in the metadata row's path; no file has it.
    fn extension(&self) -> &'static str {
        "sql"
    }

    /// The object (or the transaction) appears whole at the end.
    fn publishes_late(&self) -> bool {
        true
    }

    fn setting_names(&self) -> &'static [&'static str] {
        &database::SqlSettings::NAMES
    }

    fn configure(&self, section: Section<'_>) -> Result<TierSettings> {
        Ok(TierSettings::new(database::SqlSettings::read(section)?))
    }

    fn commit(&self) -> Commit {
        Commit::Atomic
    }

    fn merges(&self) -> bool {
        true
    }

    /// Both databases keep time to the microsecond and dates as days;
    /// SQLite has no NaN (it stores null) and no -0.0, and its dates and
    /// times are text of years 1 to 9999 (the range both keep).
    fn losses(&self, at: &Location, field: &Field) -> Vec<Loss> {
        let sqlite = self
            .databases
            .get(at)
            .is_ok_and(|database| database.dialect() == Dialect::Sqlite);
        // SQLite keeps dates and times as text of four-digit years; the
        // same range holds on PostgreSQL, so an entry moves between them.
        let years = vec![Loss::BeyondYears];
        match field.data_type() {
            DataType::Timestamp(TimeUnit::Nanosecond, _) => [vec![Loss::SubMicros], years].concat(),
            DataType::Date64 => [vec![Loss::TimeOfDay], years].concat(),
            DataType::Timestamp(..) | DataType::Date32 => years,
            DataType::Float16 | DataType::Float32 | DataType::Float64 if sqlite => {
                vec![Loss::NanAsNull, Loss::NegativeZero]
            }
            _ => Vec::new(),
        }
    }

    fn stores_objects(&self) -> bool {
        false
    }

    async fn open(
        &self,
        at: &Location,
        schema: SchemaRef,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        let database = self.databases.get(at)?;
        match read::find(&database, at).await? {
            Some(table) => Ok(Some(Arc::new(SqlTable::new(database, table, schema)?))),
            None => Ok(None),
        }
    }

    async fn write(
        &self,
        at: &Location,
        data: SendableRecordBatchStream,
        options: &WriteOptions,
    ) -> Result<Written> {
        let database = self.databases.get(at)?;
        write::write(&database, at, data, options).await
    }

    async fn delete(&self, at: &Location) -> Result<()> {
        let database = self.databases.get(at)?;
        write::delete(&database, at).await
    }

    async fn stamp(&self, at: &Location) -> Result<Option<String>> {
        let database = self.databases.get(at)?;
        read::stamp(&database, at).await
    }
}

//! The `arrow` backend: Arrow IPC files, `<key>.arrow`.
//!
//! The file holds the record batches as Arrow lays them out in memory, so
//! reading costs no decoding; in exchange it is larger than Parquet and has
//! no statistics, so a time window reads every batch and filters. The IPC
//! footer lists each batch's offset, which lets a scan split the file into
//! byte ranges read in parallel and read only the projected columns.
//!
//! Python nuthatch has no such backend: its `basic` backend pickles, which
//! nothing outside Python can read.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::writer::FileWriter;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::physical_plan::{ArrowSource, FileSource};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::PhysicalExpr;
use object_store::ObjectStore;

use crate::files::{self, Encoder, FileFormatSource};
use crate::{Backend, Location, WriteOptions, Written};

#[derive(Debug, Clone, Copy, Default)]
pub struct ArrowBackend;

#[derive(Debug, Clone, Copy)]
struct ArrowFormat;

#[async_trait::async_trait]
impl FileFormatSource for ArrowFormat {
    fn source(
        &self,
        _session: &dyn Session,
        _store: Arc<dyn ObjectStore>,
        schema: SchemaRef,
        _predicate: Option<Arc<dyn PhysicalExpr>>,
    ) -> Arc<dyn FileSource> {
        Arc::new(ArrowSource::new_file_source(schema))
    }

    fn prunes(&self) -> bool {
        false
    }
}

/// Arrow IPC into memory, one message per batch.
struct IpcEncoder {
    writer: FileWriter<Vec<u8>>,
    batches: u64,
}

impl Encoder for IpcEncoder {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.batches += 1;
        Ok(self.writer.write(batch)?)
    }

    fn buffered(&self) -> usize {
        self.writer.get_ref().len()
    }

    fn take(&mut self) -> Vec<u8> {
        std::mem::take(self.writer.get_mut())
    }

    fn finish(&mut self) -> Result<u64> {
        self.writer.finish()?;
        Ok(self.batches)
    }
}

#[async_trait]
impl Backend for ArrowBackend {
    fn name(&self) -> &'static str {
        "arrow"
    }

    fn extension(&self) -> &'static str {
        "arrow"
    }

    /// The object (or the transaction) appears whole at the end.
    fn publishes_late(&self) -> bool {
        true
    }

    async fn open(
        &self,
        at: &Location,
        schema: SchemaRef,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        files::open_entry(ArrowFormat, self.extension(), at, schema).await
    }

    async fn write(
        &self,
        at: &Location,
        data: SendableRecordBatchStream,
        options: &WriteOptions,
    ) -> Result<Written> {
        let (target, part) = files::write_target(at, options, self.extension()).await?;
        let writer = FileWriter::try_new(Vec::new(), &data.schema())?;
        let encoder = IpcEncoder { writer, batches: 0 };
        let written = files::write_encoded(&target, data, encoder, options).await?;
        files::place_part(at, &target, part.as_deref()).await?;
        Ok(Written { part, ..written })
    }

    async fn delete(&self, at: &Location) -> Result<()> {
        files::delete(at).await
    }

    async fn stamp(&self, at: &Location) -> Result<Option<String>> {
        files::stamp(at).await
    }

    fn exact_rows(&self) -> bool {
        true
    }

    fn parts(&self) -> bool {
        true
    }

    async fn remove_parts(&self, at: &Location, keep: &[String]) -> Result<()> {
        files::remove_parts(at, keep).await
    }
}

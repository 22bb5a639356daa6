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

use arrow::datatypes::SchemaRef;
use arrow::ipc::writer::FileWriter;
use async_trait::async_trait;
use bytes::Bytes;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::physical_plan::{ArrowSource, FileSource};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::PhysicalExpr;
use futures::StreamExt;

use crate::files::{self, prefetch, FileEntry, FileFormatSource, Upload, UPLOAD_CHUNK};
use crate::{Backend, Location, WriteOptions, Written};

#[derive(Debug, Clone, Copy, Default)]
pub struct ArrowBackend;

#[derive(Debug, Clone, Copy)]
struct ArrowFormat;

impl FileFormatSource for ArrowFormat {
    fn source(
        &self,
        _session: &dyn Session,
        schema: SchemaRef,
        _predicate: Option<Arc<dyn PhysicalExpr>>,
    ) -> Arc<dyn FileSource> {
        Arc::new(ArrowSource::new_file_source(schema))
    }

    fn prunes(&self) -> bool {
        false
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

    async fn open(
        &self,
        at: &Location,
        schema: SchemaRef,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(found) = files::locate(at.store.as_ref(), &at.path, self.extension()).await?
        else {
            return Ok(None);
        };
        Ok(Some(Arc::new(FileEntry::new(
            ArrowFormat,
            at,
            found,
            schema,
        ))))
    }

    async fn write(
        &self,
        at: &Location,
        data: SendableRecordBatchStream,
        _options: &WriteOptions,
    ) -> Result<Written> {
        let schema = data.schema();
        let mut encoder = FileWriter::try_new(Vec::new(), &schema)?;
        let mut upload = Upload::new(at);
        let mut data = prefetch(data);
        let (mut rows, mut parts) = (0u64, 0u64);
        let encoded: Result<()> = async {
            while let Some(batch) = data.next().await {
                let batch = batch?;
                if batch.num_rows() == 0 {
                    continue;
                }
                rows += batch.num_rows() as u64;
                parts += 1;
                encoder.write(&batch)?;
                if encoder.get_mut().len() >= UPLOAD_CHUNK {
                    let chunk = std::mem::take(encoder.get_mut());
                    upload.put(Bytes::from(chunk)).await?;
                }
            }
            encoder.finish()?;
            let tail = std::mem::take(encoder.get_mut());
            upload.put(Bytes::from(tail)).await
        }
        .await;
        if let Err(e) = encoded {
            upload.abort().await;
            return Err(e);
        }
        let bytes = upload.finish().await?;
        Ok(Written { rows, bytes, parts })
    }

    async fn delete(&self, at: &Location) -> Result<()> {
        files::delete(at).await
    }
}

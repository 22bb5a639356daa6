//! Uploading one new object so that it appears whole or not at all.
//!
//! By default the bytes go through object_store's `BufWriter`: a small
//! object is one put at the end, a larger one a multipart upload (a local
//! folder stages the file under a temporary name and renames it into
//! place). A write that must do something right before its data appears
//! ([`WriteOptions::before_publish`]: the catalog hides the entry's old
//! record then) uploads as a multipart upload whatever the size, so that
//! every byte is on the store before that step and publishing is only the
//! upload's completion (a rename, or S3's `CompleteMultipartUpload`): the
//! moment in which a crash leaves neither the old record nor the new data
//! is as short as the store allows.

use bytes::Bytes;
use datafusion::common::{DataFusionError, Result};
use futures::future::BoxFuture;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStoreExt, PutPayload};
use std::sync::Arc;

use crate::{BeforePublish, Location, WriteOptions};

/// Bytes handed to the store in one piece; also the size of a multipart
/// upload's parts.
pub const UPLOAD_CHUNK: usize = 10 * 1024 * 1024;

/// Parts of a staged upload on their way at once.
const PARTS_IN_FLIGHT: usize = 2;

/// One new object being uploaded; see the module docs. The object appears
/// when [`Upload::finish`] returns, and [`Upload::abort`] (or an error)
/// leaves nothing visible.
pub struct Upload {
    sink: Sink,
    path: Path,
    bytes: u64,
}

enum Sink {
    Buffered(BufWriter),
    /// A multipart upload fed chunk by chunk, published after `hook`.
    Staged {
        upload: Box<dyn MultipartUpload>,
        chunk: Vec<u8>,
        in_flight: Vec<BoxFuture<'static, object_store::Result<()>>>,
        hook: BeforePublish,
    },
}

fn failed(doing: &str, path: &Path, e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Execution(format!("{doing} {path}: {e}"))
}

impl Upload {
    /// An upload through object_store's `BufWriter`.
    pub fn new(at: &Location) -> Upload {
        Upload {
            sink: Sink::Buffered(BufWriter::with_capacity(
                Arc::clone(&at.store),
                at.path.clone(),
                UPLOAD_CHUNK,
            )),
            path: at.path.clone(),
            bytes: 0,
        }
    }

    /// The upload `options` call for: staged when the write has a step to
    /// run before it is published, buffered otherwise.
    pub async fn start(at: &Location, options: &WriteOptions) -> Result<Upload> {
        let Some(hook) = options.before_publish.clone() else {
            return Ok(Upload::new(at));
        };
        let upload = (at.store.put_multipart(&at.path).await)
            .map_err(|e| failed("starting the upload of", &at.path, e))?;
        Ok(Upload {
            sink: Sink::Staged {
                upload,
                chunk: Vec::new(),
                in_flight: Vec::new(),
                hook,
            },
            path: at.path.clone(),
            bytes: 0,
        })
    }

    /// Bytes handed over so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub async fn put(&mut self, bytes: Bytes) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.bytes += bytes.len() as u64;
        tracing::debug!(path = %self.path, bytes = self.bytes, "uploading");
        match &mut self.sink {
            Sink::Buffered(writer) => writer
                .put(bytes)
                .await
                .map_err(|e| DataFusionError::External(Box::new(e))),
            Sink::Staged {
                upload,
                chunk,
                in_flight,
                ..
            } => {
                chunk.extend_from_slice(&bytes);
                while chunk.len() >= UPLOAD_CHUNK {
                    let rest = chunk.split_off(UPLOAD_CHUNK);
                    let part = std::mem::replace(chunk, rest);
                    in_flight.push(upload.put_part(PutPayload::from(part)));
                    if in_flight.len() >= PARTS_IN_FLIGHT {
                        let first = in_flight.remove(0);
                        first
                            .await
                            .map_err(|e| failed("uploading", &self.path, e))?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Completes the upload of a file holding `rows`; returns the bytes
    /// stored. A staged upload sends its last part and waits for every
    /// part, runs the write's before-publish step, and only then completes.
    pub async fn finish(self, rows: u64) -> Result<u64> {
        let Upload { sink, path, bytes } = self;
        match sink {
            Sink::Buffered(mut writer) => {
                use tokio::io::AsyncWriteExt;
                writer
                    .shutdown()
                    .await
                    .map_err(|e| failed("completing the upload of", &path, e))?;
            }
            Sink::Staged {
                mut upload,
                chunk,
                mut in_flight,
                hook,
            } => {
                let staged = async {
                    if !chunk.is_empty() || bytes == 0 {
                        in_flight.push(upload.put_part(PutPayload::from(chunk)));
                    }
                    for part in in_flight {
                        part.await.map_err(|e| failed("uploading", &path, e))?;
                    }
                    let bytes = Some(bytes);
                    hook.run(crate::Published {
                        rows,
                        bytes,
                        staged: None,
                    })
                    .await
                }
                .await;
                if let Err(e) = staged {
                    let _ = upload.abort().await;
                    return Err(e);
                }
                (upload.complete().await)
                    .map_err(|e| failed("completing the upload of", &path, e))?;
            }
        }
        Ok(bytes)
    }

    /// Abandons the upload; nothing becomes visible.
    pub async fn abort(self) {
        let aborted = match self.sink {
            Sink::Buffered(mut writer) => writer.abort().await,
            Sink::Staged { mut upload, .. } => upload.abort().await,
        };
        if let Err(e) = aborted {
            tracing::warn!(path = %self.path, "aborting an upload failed: {e}");
        }
    }
}

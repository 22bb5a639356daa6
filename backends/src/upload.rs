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
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStoreExt, PutPayloadMut};
use std::sync::Arc;

use crate::{BeforePublish, Location, WriteOptions};

/// Bytes handed to the store in one piece; also the size of a multipart
/// upload's parts.
pub const UPLOAD_CHUNK: usize = 10 * 1024 * 1024;

/// Parts of a staged upload on their way at once.
const PARTS_IN_FLIGHT: usize = 2;

/// Part uploads running on the runtime; dropping the set cancels them.
type PartsInFlight = tokio::task::JoinSet<object_store::Result<()>>;

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
        /// Bytes not yet sent as a part, kept as handed over (no copy).
        chunk: PutPayloadMut,
        /// Parts already cut, uploading while the next is filled: a part
        /// is a task of its own, as in object_store's `WriteMultipart`, so
        /// the last 10 MiB of a file do not all reach the store after its
        /// last row group is encoded.
        in_flight: PartsInFlight,
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
                chunk: PutPayloadMut::new(),
                in_flight: PartsInFlight::new(),
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

    pub async fn put(&mut self, mut bytes: Bytes) -> Result<()> {
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
                // Parts of exactly UPLOAD_CHUNK bytes, as some stores
                // require every part but the last to be the same size.
                while !bytes.is_empty() {
                    let room = UPLOAD_CHUNK - chunk.content_length();
                    if bytes.len() < room {
                        chunk.push(bytes);
                        break;
                    }
                    chunk.push(bytes.split_to(room));
                    let part = std::mem::take(chunk).freeze();
                    in_flight.spawn(upload.put_part(part));
                    while in_flight.len() >= PARTS_IN_FLIGHT {
                        part_uploaded(in_flight, &self.path).await?;
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
                        in_flight.spawn(upload.put_part(chunk.freeze()));
                    }
                    while !in_flight.is_empty() {
                        part_uploaded(&mut in_flight, &path).await?;
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
                    in_flight.shutdown().await;
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
    pub async fn abort(mut self) {
        // Parts still being written would race the removal of what they
        // write to.
        if let Sink::Staged { in_flight, .. } = &mut self.sink {
            in_flight.shutdown().await;
        }
        let aborted = match self.sink {
            Sink::Buffered(mut writer) => writer.abort().await,
            Sink::Staged { mut upload, .. } => upload.abort().await,
        };
        if let Err(e) = aborted {
            tracing::warn!(path = %self.path, "aborting an upload failed: {e}");
        }
    }
}

/// Waits for one of the parts `in_flight` to be uploaded.
async fn part_uploaded(in_flight: &mut PartsInFlight, path: &Path) -> Result<()> {
    match in_flight.join_next().await {
        Some(Ok(uploaded)) => uploaded.map_err(|e| failed("uploading", path, e)),
        Some(Err(e)) => Err(failed("uploading", path, e)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BeforePublish, Location, Published};
    use datafusion::execution::object_store::ObjectStoreUrl;
    use object_store::memory::InMemory;
    use object_store::ObjectStore;
    use std::sync::Mutex;

    #[tokio::test]
    async fn a_staged_upload_sends_its_bytes_in_order_across_parts() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let url = ObjectStoreUrl::parse("memory://").unwrap();
        let at = Location::new(Arc::clone(&store), url, Path::from("entry.parquet"));
        let published = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&published);
        let hook = BeforePublish(Arc::new(move |p: Published| {
            seen.lock().unwrap().push(p);
            Box::pin(async { Ok(()) })
        }));
        let options = WriteOptions {
            before_publish: Some(hook),
            ..WriteOptions::default()
        };
        // Pieces that straddle the part boundaries, one of them a whole
        // part and more; the bytes count up so that a misplaced piece shows.
        let sizes = [7 << 20, 7 << 20, 100, 12 << 20];
        let total: usize = sizes.iter().sum();
        let all: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        let mut upload = Upload::start(&at, &options).await.unwrap();
        let mut start = 0;
        for size in sizes {
            let piece = Bytes::copy_from_slice(&all[start..start + size]);
            upload.put(piece).await.unwrap();
            start += size;
        }
        assert!(store.head(&at.path).await.is_err(), "visible before finish");
        assert_eq!(upload.finish(7).await.unwrap(), total as u64);
        let stored = store.get(&at.path).await.unwrap().bytes().await.unwrap();
        assert!(stored == all, "the stored bytes differ from those put");
        let published = published.lock().unwrap().clone();
        assert_eq!(
            published,
            [Published {
                rows: 7,
                bytes: Some(total as u64),
                staged: None
            }]
        );
    }
}

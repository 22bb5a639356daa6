//! A local folder as a store: listed in key order, written in pieces.
//!
//! The catalog wraps every local folder tier in [`FolderStore`], which
//! mends two ways a folder behind object_store's `LocalFileSystem` differs
//! from a bucket:
//!
//! - **Listings in key order.** S3 and the in-memory store list in
//!   lexicographic key order, and some readers rely on it: Delta's log
//!   reader finds a table's versions by listing `_delta_log/` from an
//!   offset, and sorts by itself only for `file://` URLs. Tiers are reached
//!   under `nuthatch://` URLs, and a folder lists in directory order.
//!   Sorting holds one listing in memory.
//! - **Writes in pieces of at most [`WRITE_PIECE`].** `LocalFileSystem`
//!   writes each `Bytes` of a payload with one `write` call, and our
//!   writers hand over 10 MiB at a time (a multipart part). On the
//!   machine of docs/benchmarks.md, writes of 2 MiB or more into a new
//!   file took 40-60 ms per 10 MiB in some minutes and 3-4 ms in others,
//!   while 1 MiB writes taking turns with them took 3-4 ms throughout. The
//!   likely cause: a write covering a whole 2 MiB-aligned stretch lets
//!   Linux back it with one large page-cache folio, and finding such a
//!   block of free memory is at times slow. The pieces are slices of the
//!   same buffers, so nothing is copied, and a bucket's upload is
//!   unchanged (this store is only used for folders).

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result, UploadPart,
};

/// The most a single `write` to a file is handed; see the module docs.
pub const WRITE_PIECE: usize = 1024 * 1024;

/// Delegates everything to `inner`, a local folder, sorting what it lists
/// and cutting what it writes into pieces (see the module docs).
#[derive(Debug)]
pub struct FolderStore {
    inner: Arc<dyn ObjectStore>,
}

impl FolderStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        FolderStore { inner }
    }
}

impl fmt::Display for FolderStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FolderStore({})", self.inner)
    }
}

/// `payload` as slices of at most [`WRITE_PIECE`] bytes, sharing its buffers.
fn in_pieces(payload: PutPayload) -> PutPayload {
    if payload.iter().all(|bytes| bytes.len() <= WRITE_PIECE) {
        return payload;
    }
    let mut pieces = Vec::new();
    for bytes in payload.iter() {
        let mut start = 0;
        while start < bytes.len() {
            let end = (start + WRITE_PIECE).min(bytes.len());
            pieces.push(bytes.slice(start..end));
            start = end;
        }
    }
    PutPayload::from_iter(pieces)
}

/// A multipart upload into a folder whose parts are written in pieces.
#[derive(Debug)]
struct InPieces(Box<dyn MultipartUpload>);

#[async_trait]
impl MultipartUpload for InPieces {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.0.put_part(in_pieces(data))
    }

    async fn complete(&mut self) -> Result<PutResult> {
        self.0.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.0.abort().await
    }
}

fn sorted(
    listing: BoxStream<'static, Result<ObjectMeta>>,
) -> BoxStream<'static, Result<ObjectMeta>> {
    futures::stream::once(async move {
        let mut all: Vec<ObjectMeta> = listing.try_collect().await?;
        all.sort_by(|a, b| a.location.cmp(&b.location));
        Ok::<_, object_store::Error>(futures::stream::iter(all.into_iter().map(Ok)))
    })
    .try_flatten()
    .boxed()
}

#[async_trait]
impl ObjectStore for FolderStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner
            .put_opts(location, in_pieces(payload), opts)
            .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(InPieces(upload)))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        sorted(self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        sorted(self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let mut listing = self.inner.list_with_delimiter(prefix).await?;
        listing.objects.sort_by(|a, b| a.location.cmp(&b.location));
        listing.common_prefixes.sort();
        Ok(listing)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::local::LocalFileSystem;
    use object_store::ObjectStoreExt;

    /// Bytes `0, 1, 2, ...` (mod 251, so that a misplaced piece shows).
    fn counting(len: usize) -> Bytes {
        Bytes::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
    }

    #[test]
    fn a_payload_is_cut_into_slices_of_its_own_buffers() {
        let big = counting(3 * WRITE_PIECE + 10);
        let small = counting(100);
        let payload = PutPayload::from_iter([big.clone(), small.clone()]);
        let pieces: Vec<Bytes> = in_pieces(payload).iter().cloned().collect();
        let lengths: Vec<usize> = pieces.iter().map(Bytes::len).collect();
        assert_eq!(lengths, [WRITE_PIECE, WRITE_PIECE, WRITE_PIECE, 10, 100]);
        let joined: Vec<u8> = pieces.iter().flat_map(|p| p.iter().copied()).collect();
        assert_eq!(joined, [&big[..], &small[..]].concat());
        // Slices, not copies: each piece points into the buffer it came from.
        let within = |piece: &Bytes, of: &Bytes| {
            let range = of.as_ptr_range();
            range.contains(&piece.as_ptr())
        };
        assert!(pieces[..4].iter().all(|piece| within(piece, &big)));
        assert!(within(&pieces[4], &small));
    }

    #[tokio::test]
    async fn a_folder_stores_what_it_was_handed_whole() {
        let dir = tempfile::tempdir().unwrap();
        let folder: Arc<dyn ObjectStore> =
            Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let store = FolderStore::new(folder);
        let (first, second) = (counting(2 * WRITE_PIECE + 7), counting(5 * WRITE_PIECE / 2));

        let put = Path::from("entry/put.parquet");
        store.put(&put, first.clone().into()).await.unwrap();
        let read = store.get(&put).await.unwrap().bytes().await.unwrap();
        assert_eq!(read, first);

        let staged = Path::from("entry/staged.parquet");
        let mut upload = store.put_multipart(&staged).await.unwrap();
        upload.put_part(first.clone().into()).await.unwrap();
        upload.put_part(second.clone().into()).await.unwrap();
        upload.complete().await.unwrap();
        let read = store.get(&staged).await.unwrap().bytes().await.unwrap();
        assert_eq!(read, [&first[..], &second[..]].concat());
    }
}

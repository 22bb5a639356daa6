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
//! - **A replaced file let go of off the write's path.** An object put
//!   over another is a new file renamed over the old one, and on ext4 the
//!   rename itself frees the old file: its blocks, its pages, and any of
//!   them still being written back. For a 12 MB entry replaced a moment
//!   after it was written (a `recompute`), that took 9-19 ms on the
//!   machine of docs/benchmarks.md, against 0.5 ms while the old file was
//!   still open. The old file is opened before the rename, so the rename
//!   only swaps the name, and closed on a blocking thread afterwards;
//!   readers see exactly what they saw before, the old data until the
//!   rename and the new after it.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
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
    files: Option<Arc<OnDisk>>,
}

impl FolderStore {
    /// `inner` keeps its objects in `folder`.
    pub fn new(inner: Arc<dyn ObjectStore>, folder: &std::path::Path) -> Self {
        let files = (std::path::absolute(folder).ok())
            .and_then(|absolute| Path::from_absolute_path(absolute).ok())
            .map(|prefix| {
                Arc::new(OnDisk {
                    files: LocalFileSystem::new(),
                    prefix,
                })
            });
        FolderStore { inner, files }
    }

    /// The file at `location`, opened if it is there, to be let go of
    /// later ([`let_go`]).
    fn hold(&self, location: &Path) -> Option<std::fs::File> {
        let path = self.files.as_ref()?.file(location)?;
        std::fs::File::open(path).ok()
    }
}

/// Where the folder's objects are on disk.
#[derive(Debug)]
struct OnDisk {
    /// Maps object paths to files as the folder's own store does.
    files: LocalFileSystem,
    prefix: Path,
}

impl OnDisk {
    fn file(&self, location: &Path) -> Option<std::path::PathBuf> {
        let full: Path = self.prefix.parts().chain(location.parts()).collect();
        self.files.path_to_filesystem(&full).ok()
    }
}

/// Closes a file that was replaced on a blocking thread, where freeing it
/// holds nothing up (see the module docs).
fn let_go(held: Option<std::fs::File>) {
    let Some(file) = held else { return };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn_blocking(move || drop(file))),
        Err(_) => drop(file),
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
struct InPieces {
    upload: Box<dyn MultipartUpload>,
    store: FolderStore,
    location: Path,
}

#[async_trait]
impl MultipartUpload for InPieces {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.upload.put_part(in_pieces(data))
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let held = self.store.hold(&self.location);
        let completed = self.upload.complete().await;
        let_go(held);
        completed
    }

    async fn abort(&mut self) -> Result<()> {
        self.upload.abort().await
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
        let held = self.hold(location);
        let put = self
            .inner
            .put_opts(location, in_pieces(payload), opts)
            .await;
        let_go(held);
        put
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(InPieces {
            upload,
            store: FolderStore {
                inner: Arc::clone(&self.inner),
                files: self.files.clone(),
            },
            location: location.clone(),
        }))
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
        let store = FolderStore::new(folder, dir.path());
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

    #[tokio::test]
    async fn the_file_held_through_a_replacement_is_the_one_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let folder: Arc<dyn ObjectStore> =
            Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let store = FolderStore::new(folder, dir.path());
        // A part that object_store spells with an escape.
        let at = Path::from_iter(["agg_and_clip", "ns=a b%", "7.parquet"]);
        let (old, new) = (counting(3 * WRITE_PIECE), counting(WRITE_PIECE + 3));
        store.put(&at, old.clone().into()).await.unwrap();

        let held = store.hold(&at).expect("the stored file, found and opened");
        let mut upload = store.put_multipart(&at).await.unwrap();
        upload.put_part(new.clone().into()).await.unwrap();
        upload.complete().await.unwrap();
        // The old file, still open, kept its bytes; the name has the new.
        let mut kept = Vec::new();
        std::io::Read::read_to_end(&mut &held, &mut kept).unwrap();
        assert!(kept == old, "the held file is not the replaced one");
        let read = store.get(&at).await.unwrap().bytes().await.unwrap();
        assert!(read == new, "the replacement did not take the name");
        assert!(store.hold(&Path::from("missing.parquet")).is_none());
    }
}

//! Storage formats for nuthatch cache entries.
//!
//! This crate owns the bytes of an entry: how a result stream is written to
//! an [`object_store::ObjectStore`] and how a stored entry is opened again as
//! a DataFusion [`TableProvider`] that does its own projection, filter and
//! limit pushdown. It knows nothing about cached functions, keys or tiers:
//! callers hand a backend a [`Location`] and a stream.
//!
//! Every format is a [`Backend`]; [`Backends::builtin`] lists the ones this
//! build carries, and [`Backends::with`] adds one a program brings (the
//! workspace's `examples/jsonl_backend` is such a format, outside these
//! crates). Adding a format means one module implementing the trait and
//! one line in that list: nothing else in the workspace matches on format
//! names. A format reads its own section of a tier's configuration when the
//! tier opens ([`Backend::configure`], into a type of its own carried by
//! [`TierSettings`]), and checks what a definition asks of it
//! ([`Backend::check_layout`]). The layouts match what Python nuthatch
//! writes (`<key>.parquet`, a single file or a directory of part files).
//!
//! Formats differ in how a write becomes visible ([`Commit`]), whether
//! they give back exactly the rows written ([`Backend::exact_rows`]) or
//! store grids ([`Backend::grid`]), whether they can merge rows into what
//! is stored ([`Backend::merges`]), and how
//! a growing timeseries entry takes new rows: as parts of their own
//! ([`Backend::parts`]), or at the end of a grid ([`Backend::grows_at_end`]).
//! The catalog and the resolver read these to choose the write protocol,
//! so no caller matches on a format's name. What time a write's rows cover
//! is [`coverage`]'s; which values a format stores other than as given
//! ([`Backend::losses`]) is [`fidelity`]'s.

pub mod arrow_ipc;
pub mod bounds;
pub mod coverage;
#[cfg(feature = "delta")]
pub mod delta;
pub mod fidelity;
pub mod files;
pub mod files_read;
pub mod folder;
pub mod once;
pub mod parquet;
pub mod python;
#[cfg(feature = "sql")]
pub mod sql;
#[cfg(feature = "terracotta")]
pub mod terracotta;
pub mod upload;
#[cfg(feature = "zarr")]
pub mod zarr;

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::datatypes::{Field, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::object_store::ObjectStoreUrl;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::Expr;
use object_store::path::Path;
use object_store::ObjectStore;

/// Where an entry's data lives: a path in one tier's store, and the URL
/// under which that store is registered in DataFusion's runtime (which is
/// how scans reach it); for formats that keep data outside the store (a
/// database), the entry's key and the tier's settings for the format.
#[derive(Debug, Clone)]
pub struct Location {
    pub store: Arc<dyn ObjectStore>,
    pub store_url: ObjectStoreUrl,
    /// The data path inside the store, `[<namespace>/]<key>.<extension>`.
    pub path: Path,
    /// For a format with its own log of versions ([`Commit::Versioned`]),
    /// the version to read: the one the entry's metadata vouches for, so
    /// that a commit whose metadata never got written stays unseen. `None`
    /// reads the latest (entries Python wrote record no version).
    pub version: Option<u64>,
    /// The entry's cache key and namespace, for formats that name what they
    /// store after the key rather than a path (database tables).
    pub key: String,
    pub namespace: Option<String>,
    /// The tier's settings for this format, as [`Backend::configure`]
    /// read them (a database's address and credentials).
    pub settings: TierSettings,
    /// The local folder the store is rooted at, when it is one; formats
    /// that need a file of their own beside the tier (SQLite) put it there.
    pub folder: Option<PathBuf>,
    /// Where the tier is, as configured and without credentials
    /// (`s3://bucket/caches`), for formats that record where their files
    /// are for others to open (Terracotta's datasets).
    pub root: Option<String>,
    /// The columns the entry's rows were written in ascending order of
    /// (nulls last), as its metadata records; formats that read rows back
    /// in the order they were written declare it to DataFusion.
    pub sort_order: Vec<String>,
    /// For an entry stored as parts ([`Backend::parts`]), the parts its
    /// metadata lists, by file name under `path`, each with the time its
    /// rows lie in when known: only these are read (a part a killed write
    /// left behind is not), and a scan skips parts outside its window
    /// before opening them. `None` reads whatever is at `path`: a file, or
    /// every part of a directory, as Python wrote it.
    pub parts: Option<Vec<Part>>,
    /// The timeseries column the parts' times are of.
    pub time_column: Option<String>,
    /// When the entry was committed (epoch microseconds), from its
    /// metadata. Readers that cache a file's metadata key it on the size
    /// and this, which changes with every write, rather than on the
    /// store's modification time, which some stores keep to the second.
    pub committed: Option<i64>,
}

impl Location {
    /// `path` in `store`, with no key, settings or folder.
    pub fn new(store: Arc<dyn ObjectStore>, store_url: ObjectStoreUrl, path: Path) -> Location {
        Location {
            store,
            store_url,
            path,
            version: None,
            key: String::new(),
            namespace: None,
            settings: TierSettings::default(),
            folder: None,
            root: None,
            sort_order: Vec::new(),
            parts: None,
            time_column: None,
            committed: None,
        }
    }
}

/// One part of an entry stored as parts: a file under the entry's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    /// The time its rows lie in, for a timeseries entry.
    pub covers: Option<coverage::Coverage>,
    /// How many rows it holds, when recorded.
    pub rows: Option<u64>,
}

/// One format's section of a tier's configuration, as written: the keys
/// of the format's own section (`[root.sql]`), over the location's
/// parameters that Python nuthatch shares among its backends (`host`,
/// `password`, ...). Values may be credentials: nothing here is printed.
#[derive(Clone, Copy)]
pub struct Section<'a> {
    /// Where the section is, for messages: `root.sql`.
    pub at: &'a str,
    pub own: &'a BTreeMap<String, String>,
    pub shared: &'a BTreeMap<String, String>,
}

impl Section<'_> {
    /// The value of `name`, the section's own before the location's;
    /// blank values count as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        [self.own, self.shared]
            .into_iter()
            .filter_map(|map| map.get(name))
            .map(|value| value.trim())
            .find(|value| !value.is_empty())
    }

    /// A message for a value of `name` that cannot be used, naming where it
    /// was set and what it takes.
    pub fn invalid(&self, name: &str, takes: &str, got: &str) -> DataFusionError {
        DataFusionError::Configuration(format!("{}.{name} takes {takes}, got '{got}'", self.at))
    }
}

/// A format's own settings on one tier, read once when the tier opens
/// ([`Backend::configure`]) and handed back with every [`Location`] of that
/// tier. Each format keeps its own type inside and takes it out with
/// [`TierSettings::get`]; the catalog never looks in.
#[derive(Clone, Default)]
pub struct TierSettings(Option<Arc<dyn Any + Send + Sync>>);

impl TierSettings {
    pub fn new<T: Any + Send + Sync>(settings: T) -> TierSettings {
        TierSettings(Some(Arc::new(settings)))
    }

    /// The settings, when they are a `T`.
    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.as_deref()?.downcast_ref()
    }
}

impl Debug for TierSettings {
    /// Settings may hold credentials: only whether there are any shows.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = if self.0.is_some() { "set" } else { "none" };
        write!(f, "TierSettings({shown})")
    }
}

/// What a write does with the rows the entry already holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum WriteMode {
    /// The stream becomes the entry.
    #[default]
    Replace,
    /// The stream is merged in by these key columns: a row whose keys are
    /// stored replaces the stored row, any other row is added.
    Upsert { keys: Vec<String> },
    /// The stored rows for which `predicate` holds are replaced by the
    /// stream, whose rows must all satisfy it; the other rows stay.
    ReplaceWhere { predicate: Expr },
    /// The stream becomes a new part of the entry, beside the parts stored
    /// (which stay). Only formats that store parts ([`Backend::parts`])
    /// are handed it, for entries already stored as parts.
    Append,
}

impl WriteMode {
    /// How the mode is called in messages.
    pub fn describe(&self) -> &'static str {
        match self {
            WriteMode::Replace => "replace",
            WriteMode::Upsert { .. } => "upsert",
            WriteMode::ReplaceWhere { .. } => "replace a window",
            WriteMode::Append => "append",
        }
    }
}

/// What a cached function's definition asks of the format that stores its
/// results ([`Backend::check_layout`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Layout<'a> {
    /// The grid dimensions, outermost first ([`WriteOptions::dimensions`]).
    pub dimensions: &'a [String],
    /// Columns the rows are to be read back in ascending order of.
    pub order: &'a [String],
    /// Columns an upsert merges by.
    pub upsert_keys: &'a [String],
}

/// How a format's write becomes visible to readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// The new data replaces the old at once (one object put or upload,
    /// or a rename into place): a reader sees the old data or the new.
    Atomic,
    /// Many objects, cleared and rewritten in place: the entry is not
    /// readable while it is written, so the catalog hides it first.
    InPlace,
    /// Each write commits a new version to the format's own log, and older
    /// versions stay readable by number: the catalog leaves the entry
    /// readable at its recorded version throughout, and moves the record to
    /// the new version once the commit is done.
    Versioned,
}
/// How a result is to be written.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// The timeseries column: formats that keep statistics per block do
    /// so for it, so that time windows prune.
    pub sorted_by: Option<String>,
    /// The stream arrives sorted ascending (nulls last) by these columns;
    /// formats that can record a sort order do (Parquet's sorting columns).
    pub order: Vec<String>,
    /// Advanced as the write goes, for whoever shows progress: rows taken
    /// from the stream and bytes encoded so far.
    pub progress: Option<Arc<WriteProgress>>,
    /// The grid dimensions of a gridded result, outermost first (the
    /// stream arrives sorted by them); formats that store arrays (Zarr)
    /// need them, others ignore them.
    pub dimensions: Vec<String>,
    /// Chunk length per dimension; a dimension not named gets the format's
    /// default.
    pub chunking: BTreeMap<String, u64>,
    /// What happens to the rows already stored. Only formats that merge
    /// ([`Backend::merges`]) are handed anything but `Replace`.
    pub mode: WriteMode,
    /// The time the rows were computed for, when recorded (a timeseries
    /// result): what the entry covers after the write, or for a write that
    /// amends the entry, what it adds.
    pub covers: Option<coverage::Coverage>,
    /// The part of `covers` computed while it was recent, which a later
    /// call computes again.
    pub provisional: Option<coverage::Coverage>,
    /// The write amends the stored entry: its rows are the entry's with
    /// rows added or replaced (a merge, or a timeseries entry extended,
    /// even when a format writes it whole again). The entry's previous
    /// record stays true of what it covers until the new one replaces it,
    /// so the catalog leaves the entry readable while writing.
    pub amends: bool,
    /// Store the entry as a directory of parts, so that later writes can
    /// add to it ([`WriteMode::Append`]); for formats that store parts.
    pub parts: bool,
    /// For a write of the whole entry that amends it (a compaction, a merge
    /// rewritten whole): the commit stamp (`last_modified`) of the entry's
    /// record its stored rows were read under. The commit fails if the
    /// record changed since, rather than drop what another write added.
    pub based_on: Option<f64>,
    /// For [`WriteMode::Append`]: stored parts the new part takes the place
    /// of. It holds their rows, less the time it computes again, so a
    /// range recomputed rewrites the parts that hold it and no others.
    pub replaces: Vec<String>,
    /// Refuse, rather than report, values the format would store changed
    /// ([`Backend::losses`]): the write fails and stores nothing.
    pub exact: bool,
    /// The write replaces an entry that is there (a recompute): should it
    /// fail, the catalog puts the entry's record back where the format
    /// still holds the old data. Only then is the record read first, so a
    /// first miss costs no extra read.
    pub restores: bool,
    /// Called right before the new data becomes visible, by formats that
    /// say so ([`Backend::publishes_late`]): the catalog puts the pending
    /// record of what is about to appear then, rather than hiding the old
    /// entry before the compute, so the old entry stays readable for as
    /// long as the new one is computed and encoded.
    pub before_publish: Option<BeforePublish>,
}

/// What a write runs right before its data becomes visible
/// ([`WriteOptions::before_publish`]), told what is about to appear; its
/// error fails the write, which then publishes nothing.
#[derive(Clone)]
pub struct BeforePublish(
    pub Arc<dyn Fn(Published) -> futures::future::BoxFuture<'static, Result<()>> + Send + Sync>,
);

impl BeforePublish {
    pub async fn run(&self, published: Published) -> Result<()> {
        (self.0)(published).await
    }
}

/// What a write is about to publish, as [`Written`] will say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub rows: u64,
    pub bytes: Option<u64>,
    /// Where the new data already sits whole, for a format that publishes
    /// by copying it into place (Zarr): readers are sent there until the
    /// write is confirmed ([`Backend::discard_staged`]).
    pub staged: Option<Path>,
}

impl std::fmt::Debug for BeforePublish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BeforePublish")
    }
}

/// Runs `options`' [`WriteOptions::before_publish`], if any.
pub async fn before_publish(options: &WriteOptions, published: Published) -> Result<()> {
    match &options.before_publish {
        Some(hook) => hook.run(published).await,
        None => Ok(()),
    }
}

/// How far a write has got. Counters only grow; readers poll them.
#[derive(Debug, Default)]
pub struct WriteProgress {
    pub rows: AtomicU64,
    pub bytes: AtomicU64,
}

impl WriteProgress {
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// What a write produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Written {
    pub rows: u64,
    /// Bytes stored.
    pub bytes: u64,
    /// Independently readable parts: row groups, record batches, chunks,
    /// files.
    pub parts: u64,
    /// The version committed, for a [`Commit::Versioned`] format.
    pub version: Option<u64>,
    /// For a merge: stored rows the stream replaced, and rows it added.
    pub updated: Option<u64>,
    pub inserted: Option<u64>,
    /// Time spent encoding, summed over the threads that encoded side by
    /// side, for formats that measure it apart from the compute feeding
    /// them (Parquet).
    pub encode_time: Option<std::time::Duration>,
    /// The part written, for an entry stored as parts.
    pub part: Option<String>,
    /// Values the format stored other than as given, by column.
    pub changes: Vec<fidelity::Change>,
}

impl Written {
    /// A whole entry of `rows` in `bytes` and `parts` stored, as a format
    /// that measures its bytes once the write is done reports it; the
    /// write's progress takes the bytes too.
    pub fn whole(options: &WriteOptions, rows: u64, bytes: u64, parts: u64) -> Written {
        if let Some(progress) = &options.progress {
            progress.bytes.store(bytes, Ordering::Relaxed);
        }
        Written {
            rows,
            bytes,
            parts,
            ..Written::default()
        }
    }
}

/// A storage format.
///
/// Contract for [`Backend::write`]: a write that fails, or whose input
/// stream fails, leaves no part of the new data behind. Single-file
/// formats also make the data visible atomically (object stores give this
/// for a single put and for a completed multipart upload; a local folder
/// for a rename), so a reader sees the previous data or the new data.
/// Formats made of many objects cannot: Zarr writes a replacement whole
/// beside the entry and copies it into place after the catalog's pending
/// record has sent readers to it ([`Published::staged`]); Terracotta relies
/// on the catalog removing the entry's metadata before its data is written
/// and putting it back after, so no reader is directed to a half-written
/// store.
/// Versioned formats (Delta) commit atomically to their own log; see
/// [`Commit`].
#[async_trait]
pub trait Backend: Debug + Send + Sync {
    /// The name in the metastore's `backend` column and in the metadata
    /// file name, as Python nuthatch spells it.
    fn name(&self) -> &'static str;

    /// The data path's extension: `<key>.<extension>`.
    fn extension(&self) -> &'static str;

    /// The keys the format's section of a tier takes (`[root.<name>]`),
    /// besides `filesystem` and `filesystem_options`, which say where its
    /// data goes and which the catalog reads. A key not listed is refused
    /// when the tier opens, with this list in the message.
    fn setting_names(&self) -> &'static [&'static str] {
        &[]
    }

    /// Reads the format's settings on one tier into its own type, once,
    /// when the tier opens; a value that cannot be used is an error then,
    /// naming the setting. The result comes back with every [`Location`] of
    /// the tier. Formats without settings take the default.
    fn configure(&self, section: Section<'_>) -> Result<TierSettings> {
        let _ = section;
        Ok(TierSettings::default())
    }

    /// Checks what a definition asks of the format that will store its
    /// results, when the definition is registered: an error says what to
    /// change. Every layout suits a format that stores rows as given.
    fn check_layout(&self, layout: &Layout<'_>) -> Result<()> {
        let _ = layout;
        Ok(())
    }

    /// How a write becomes visible.
    fn commit(&self) -> Commit {
        Commit::Atomic
    }

    /// Whether `write` runs [`WriteOptions::before_publish`] right before
    /// its data becomes visible: a format whose last step publishes
    /// everything at once (saying so by its [`Backend::stamp`]), or one
    /// that copies a whole staged copy into place ([`Published::staged`]).
    /// Those that do keep the entry they replace readable while they
    /// compute and encode; the others hide it before they start.
    fn publishes_late(&self) -> bool {
        false
    }

    /// What identifies the data stored at `at` as it is now, changing
    /// whenever a write replaces it (an object's ETag, a table's
    /// generation); `None` when nothing is there or the format keeps no
    /// such mark. A format that publishes late says: the catalog compares
    /// the stamps before and after a write to tell, after a crash between
    /// publishing the data and its record, which of the two the data is.
    /// A format that publishes late in one step and keeps no stamp has the
    /// old record hidden right before it publishes instead, so a crash
    /// then leaves no entry.
    async fn stamp(&self, at: &Location) -> Result<Option<String>> {
        let _ = at;
        Ok(None)
    }

    /// Removes what replacements of the entry at `at` staged
    /// ([`Published::staged`]): called once the catalog has confirmed the
    /// entry's new record, when no record points there any more.
    async fn discard_staged(&self, at: &Location) -> Result<()> {
        let _ = at;
        Ok(())
    }

    /// Whether [`Backend::write`] applies [`WriteMode::Upsert`] and
    /// [`WriteMode::ReplaceWhere`] itself. A format that does not, but
    /// commits atomically, is merged into by reading the stored entry and
    /// writing it whole again.
    fn merges(&self) -> bool {
        false
    }

    /// Whether the entry's data is objects under its path in the tier's
    /// store, which an import copies byte for byte. Formats that keep it
    /// elsewhere (a database) say no.
    fn stores_objects(&self) -> bool {
        true
    }

    /// Whether reading an entry back gives exactly the rows the write was
    /// handed, every value as it was (see [`fidelity`]). A caller may then
    /// serve the rows it wrote instead of reading them back.
    fn exact_rows(&self) -> bool {
        false
    }

    /// Whether the format stores a result as arrays over grid dimensions
    /// ([`WriteOptions::dimensions`]), so that the write needs the rows
    /// sorted by them.
    fn grid(&self) -> bool {
        false
    }

    /// Whether the format can store an entry as a directory of parts
    /// ([`WriteOptions::parts`]), add a part to it without rewriting the
    /// others ([`WriteMode::Append`]), and read only the parts a
    /// [`Location`] lists. A timeseries entry that grows a day at a time
    /// then costs a day's write per day.
    fn parts(&self) -> bool {
        false
    }

    /// Whether the format takes [`WriteMode::Append`] for rows that all lie
    /// after every stored row along the entry's first grid dimension,
    /// growing the entry in place (a Zarr grid along time).
    fn grows_at_end(&self) -> bool {
        false
    }

    /// The ways the format stores values of a column `field` other than as
    /// given, at `at` (see [`fidelity`]); none for formats that keep every
    /// value.
    fn losses(&self, at: &Location, field: &Field) -> Vec<fidelity::Loss> {
        let _ = (at, field);
        Vec::new()
    }

    /// A table of the format's own in the `nuthatch` schema
    /// (`nuthatch.<name>`), over what it keeps beside the entries of each
    /// of `tiers`: a tier's name and the location of its root for this
    /// format. Terracotta lists its datasets; most formats have none.
    fn system_table(&self, tiers: Vec<(String, Location)>) -> Option<SystemTable> {
        let _ = tiers;
        None
    }

    /// Makes data just copied byte for byte into `at` (an import from
    /// another tier) the format's own there: registers what the format
    /// keeps beside the store (Terracotta's datasets). Nothing for formats
    /// whose objects are the whole entry.
    async fn adopt(&self, _at: &Location) -> Result<()> {
        Ok(())
    }

    /// The files of the entry at `at` that no version of it references any
    /// more and that have not changed for `older_than` (a versioned
    /// format's superseded files, a killed write's files), as paths under
    /// the store; removed unless `dry_run`. Formats whose entry is exactly
    /// its objects have none.
    async fn vacuum(
        &self,
        _at: &Location,
        _older_than: std::time::Duration,
        _dry_run: bool,
    ) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// Removes the parts of the entry at `at` that `keep` does not name:
    /// those a write replaced, and those a killed write left. Nothing for
    /// formats without parts.
    async fn remove_parts(&self, _at: &Location, _keep: &[String]) -> Result<()> {
        Ok(())
    }

    /// Opens the entry stored at `at`, to be read as `schema`. `Ok(None)`
    /// when no data is there. Opening may read the format's own metadata,
    /// never the data.
    async fn open(
        &self,
        at: &Location,
        schema: SchemaRef,
    ) -> Result<Option<Arc<dyn TableProvider>>>;

    /// Writes `data` as the entry at `at`, replacing what is there.
    async fn write(
        &self,
        at: &Location,
        data: SendableRecordBatchStream,
        options: &WriteOptions,
    ) -> Result<Written>;

    /// Removes the entry's data; removing nothing is not an error.
    async fn delete(&self, at: &Location) -> Result<()>;
}

/// A format's table in the `nuthatch` schema ([`Backend::system_table`]).
pub type SystemTable = (&'static str, Arc<dyn TableProvider>);

/// The formats an engine can read and write, by name.
#[derive(Debug, Clone)]
pub struct Backends {
    by_name: BTreeMap<&'static str, Arc<dyn Backend>>,
}

impl Backends {
    /// The name used when neither the function nor the call picks one.
    pub const DEFAULT: &'static str = "parquet";

    /// Every format this build carries.
    pub fn builtin() -> Backends {
        Backends::new(vec![
            Arc::new(parquet::ParquetBackend),
            Arc::new(arrow_ipc::ArrowBackend),
            #[cfg(feature = "zarr")]
            Arc::new(zarr::ZarrBackend),
            #[cfg(feature = "delta")]
            Arc::new(delta::DeltaBackend::default()),
            #[cfg(feature = "sql")]
            Arc::new(sql::SqlBackend::default()),
            #[cfg(feature = "terracotta")]
            Arc::new(terracotta::TerracottaBackend::default()),
        ])
    }

    /// Formats Python nuthatch writes that this build does not carry, each
    /// with how Python stores a result in it, for the message about such
    /// an entry. A tier's section for one of them is accepted and unused,
    /// so a Python project's configuration works unchanged.
    pub fn not_built(name: &str) -> Option<&'static str> {
        match name {
            "basic" => Some("as a pickle (the basic backend)"),
            #[cfg(not(feature = "terracotta"))]
            "terracotta" => Some(
                "as map tiles (the terracotta backend; this build lacks nuthatch's `terracotta` \
                 feature)",
            ),
            #[cfg(not(feature = "zarr"))]
            "zarr" => Some("with its zarr backend (this build lacks nuthatch's `zarr` feature)"),
            #[cfg(not(feature = "delta"))]
            "delta" => Some("with its delta backend (this build lacks nuthatch's `delta` feature)"),
            #[cfg(not(feature = "sql"))]
            "sql" => Some("with its sql backend (this build lacks nuthatch's `sql` feature)"),
            _ => None,
        }
    }

    /// Whether `name` is a built-in format or one of Python's
    /// ([`Backends::not_built`]): the names a `NUTHATCH_<BACKEND>_<SETTING>`
    /// variable may start with.
    pub fn is_known(name: &str) -> bool {
        Backends::builtin().get(name).is_some() || Backends::not_built(name).is_some()
    }

    /// These formats and `extra`, which replace built-in ones of the same
    /// name: how an embedding program adds a format of its own.
    pub fn with(&self, extra: Arc<dyn Backend>) -> Backends {
        let mut by_name = self.by_name.clone();
        by_name.insert(extra.name(), extra);
        Backends { by_name }
    }

    pub fn new(backends: Vec<Arc<dyn Backend>>) -> Backends {
        Backends {
            by_name: backends.into_iter().map(|b| (b.name(), b)).collect(),
        }
    }

    /// The backend called `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Backend>> {
        let name = name.trim().to_ascii_lowercase();
        self.by_name.get(name.as_str())
    }

    pub fn default_backend(&self) -> &Arc<dyn Backend> {
        self.by_name
            .get(Self::DEFAULT)
            .expect("the default backend is always registered")
    }

    /// Names in alphabetical order, which is also the order Python nuthatch
    /// infers a backend from the metadata it finds.
    pub fn names(&self) -> Vec<&'static str> {
        self.by_name.keys().copied().collect()
    }

    /// The names of the formats `which` picks, for a message that offers
    /// them, the default first: `'parquet' or 'arrow'`.
    pub fn offer(&self, which: impl Fn(&dyn Backend) -> bool) -> String {
        let default = self.by_name.get(Self::DEFAULT).into_iter();
        let others = self.iter().filter(|b| b.name() != Self::DEFAULT);
        let names: Vec<String> = default
            .chain(others)
            .filter(|backend| which(backend.as_ref()))
            .map(|backend| format!("'{}'", backend.name()))
            .collect();
        match names.split_last() {
            None => String::new(),
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Backend>> {
        self.by_name.values()
    }
}

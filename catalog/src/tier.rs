//! Tiers: the stores a catalog reads entries from and writes them to.
//!
//! A tier wraps one object store rooted at the tier's location, so every path
//! inside it is relative (`nuthatch_metadata.nut/...`, `<key>.parquet`). Each
//! tier is registered in DataFusion's runtime under a URL of its own, which is
//! how scans find it.
//!
//! Roles: **local** is a folder on this machine, keyed by
//! all arguments and holding clipped results; **root** is the shared store;
//! **mirrors** are other stores read after root and never written. Opening
//! a tier contacts nothing: only root's folder is created at once (so a
//! misconfigured root fails at start); the local folder appears with its
//! first entry, and a mirror that is not there is skipped when it is read.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::common::DataFusionError;
use datafusion::datasource::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;
use object_store::{BackoffConfig, RetryConfig};
use url::Url;

use nuthatch_backends::folder::FolderStore;
use nuthatch_backends::{Backend, Backends, Location, Section, TierSettings};

use crate::config::TierConfig;
use crate::error::{Error, Result};
use crate::key::CacheKey;
use crate::metastore::data_path;
use crate::vacuum::S3Uploads;

/// A staged part untouched this long was left by a write that died: a live
/// one writes to it at least every upload piece.
pub const STAGED_PART_AGE: Duration = Duration::from_secs(600);

/// The same for the same texts in every process and every build (FNV-1a):
/// a tier's store is registered under a URL made of it, which a plan sent
/// to a worker names, and the worker, which opened the same tier from the
/// same configuration, must find the store under the same URL. Catalogs
/// of different tiers sharing one runtime still get apart URLs.
fn stable_hash(texts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for text in texts {
        for byte in text.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// The role a tier plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierRole {
    /// This machine's copies, keyed by all arguments.
    Local,
    /// The shared store computed entries are written to.
    Root,
    /// A store read after root, never written.
    Mirror,
}

impl TierRole {
    pub fn name(self) -> &'static str {
        match self {
            TierRole::Local => "local",
            TierRole::Root => "root",
            TierRole::Mirror => "mirror",
        }
    }

    /// Root and mirrors: the tiers keyed by `cache_args`.
    pub fn is_global(self) -> bool {
        !matches!(self, TierRole::Local)
    }
}

/// One object store of a tier, registered in the runtime under its URL.
#[derive(Debug, Clone)]
struct Store {
    store: Arc<dyn ObjectStore>,
    url: ObjectStoreUrl,
    /// The folder, when the store is a local one.
    folder: Option<std::path::PathBuf>,
    /// Its incomplete uploads, when it is on S3 (for vacuum).
    uploads: Option<Arc<crate::vacuum::S3Uploads>>,
}

/// An opened tier.
#[derive(Debug, Clone)]
pub struct Tier {
    role: TierRole,
    /// The location's name in the configuration: `local`, `root`,
    /// `mirror`, `mirror-public`, ...
    name: String,
    /// Where the metastore and, unless a backend's section moves them,
    /// the data are.
    main: Store,
    /// Backends whose data the configuration puts on another store.
    backend_stores: BTreeMap<String, Store>,
    location: String,
    read_only: bool,
    /// Each backend's settings on this tier, read when it opened.
    settings: BTreeMap<&'static str, TierSettings>,
}

impl Tier {
    /// Opens the store a tier config names, under the location name `name`,
    /// and the stores its backend sections name; each of `backends` reads
    /// its settings. Root's folder is created if it is missing, as Python
    /// nuthatch does.
    pub fn open(
        role: TierRole,
        name: &str,
        config: &TierConfig,
        backends: &Backends,
    ) -> Result<Tier> {
        let main = open_store(role, name, config)?;
        let mut backend_stores = BTreeMap::new();
        for backend in config.backends.keys() {
            if backends.get(backend).is_none() {
                if Backends::not_built(backend).is_none() {
                    return Err(Error::Config(format!(
                        "'{name}.{backend}' names no backend; this build has {}",
                        backends.names().join(", ")
                    )));
                }
                tracing::debug!("{name}.{backend} is for a backend this build lacks");
                continue;
            }
            if let Some(moved) = config.backend_store(backend) {
                backend_stores.insert(backend.clone(), open_store(role, name, &moved)?);
            }
        }
        let mut settings = BTreeMap::new();
        for backend in backends.iter() {
            settings.insert(backend.name(), configure(backend.as_ref(), name, config)?);
        }
        Ok(Tier {
            role,
            name: name.to_string(),
            main,
            backend_stores,
            location: redact(&config.filesystem),
            read_only: config.read_only || role == TierRole::Mirror,
            settings,
        })
    }

    pub fn role(&self) -> TierRole {
        self.role
    }

    /// The location's name: `local`, `root`, `mirror-public`, ...
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store of the metastore (and of data, see [`Tier::data_location`]).
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.main.store
    }

    /// Where the tier is, safe to print (no credentials).
    pub fn url(&self) -> &str {
        &self.location
    }

    /// Mirrors always are; local and root when configured so.
    /// The folder of the tier's main store, when it is a local one.
    pub fn folder(&self) -> Option<&std::path::Path> {
        self.main.folder.as_deref()
    }

    /// The incomplete uploads of the tier's main store, when it is on S3.
    pub(crate) fn uploads(&self) -> Option<&Arc<S3Uploads>> {
        self.main.uploads.as_ref()
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Where `backend` keeps the data at `path`: the main store, or the
    /// store the backend's section of the configuration names, with the
    /// backend's settings on this tier.
    pub fn data_location(&self, backend: &dyn Backend, path: ObjectPath) -> Location {
        let store = self
            .backend_stores
            .get(backend.name())
            .unwrap_or(&self.main);
        let mut at = Location::new(Arc::clone(&store.store), store.url.clone(), path);
        at.settings = self
            .settings
            .get(backend.name())
            .cloned()
            .unwrap_or_default();
        at.folder = store.folder.clone();
        at.root = Some(self.location.clone());
        at
    }

    /// Where `backend` keeps the entry `key` of `namespace` on this tier.
    pub fn entry_location(
        &self,
        backend: &dyn Backend,
        key: &CacheKey,
        namespace: Option<&str>,
    ) -> Location {
        let path = data_path(key, namespace, backend.extension());
        let mut at = self.data_location(backend, path);
        at.key = key.as_str().to_string();
        at.namespace = namespace.map(str::to_string);
        at
    }

    /// The error for a store operation that failed on this tier.
    pub fn unreachable(&self, doing: &str, error: object_store::Error) -> Error {
        Error::TierUnreachable {
            tier: self.name.clone(),
            env: env_name(&self.name),
            location: self.location.clone(),
            detail: format!("{doing}: {error}"),
        }
    }

    /// Removes what a killed write of `path` left on a local folder: the
    /// store stages a file as `<name>#<n>` and renames it into place, and a
    /// process killed before the rename cannot remove it. Such files are
    /// invisible to every reader; this only tidies the folder. Object
    /// stores keep an unfinished multipart upload invisible and bill for its
    /// parts until a lifecycle rule aborts it.
    pub fn sweep_staged(&self, backend: &str, path: &ObjectPath) {
        let store = self.backend_stores.get(backend).unwrap_or(&self.main);
        let (Some(folder), Some(name)) = (&store.folder, path.filename()) else {
            return;
        };
        let target = folder.join(path.as_ref());
        let Some(dir) = target.parent() else { return };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let prefix = format!("{name}#");
        for entry in entries.flatten() {
            let file = entry.file_name();
            let Some(suffix) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
                continue;
            };
            if !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()) {
                tracing::info!(file = %entry.path().display(), "removing what a killed write left");
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Removes what killed writes left in the folder at `path` on a local
    /// folder, where an entry's parts are written before they move in:
    /// staged files (`<part>#<n>`) and parts never moved. Another process
    /// may be writing one right now, so only those left untouched for
    /// [`STAGED_PART_AGE`] go.
    pub fn sweep_staged_parts(&self, backend: &str, path: &ObjectPath) {
        let store = self.backend_stores.get(backend).unwrap_or(&self.main);
        let Some(folder) = &store.folder else { return };
        let Ok(entries) = std::fs::read_dir(folder.join(path.as_ref())) else {
            return;
        };
        for entry in entries.flatten() {
            let idle = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|at| at.elapsed().ok())
                .is_some_and(|idle| idle > STAGED_PART_AGE);
            if idle {
                tracing::info!(file = %entry.path().display(), "removing a part a killed write left");
                let _ = std::fs::remove_file(entry.path());
            }
        }
        // Gone once empty; a write that needs it again makes it again.
        let _ = std::fs::remove_dir(folder.join(path.as_ref()));
    }

    /// Makes the tier's store reachable from scans run in `runtime`.
    pub fn register(&self, runtime: &RuntimeEnv) {
        for store in std::iter::once(&self.main).chain(self.backend_stores.values()) {
            runtime.register_object_store(store.url.as_ref(), Arc::clone(&store.store));
        }
    }
}

/// Opens one store of a tier.
/// `backend`'s settings on the tier `name`: the keys of its section are
/// checked against those it takes, then it reads them with the location's
/// shared parameters.
fn configure(backend: &dyn Backend, name: &str, config: &TierConfig) -> Result<TierSettings> {
    let empty = BTreeMap::new();
    let own = config
        .backends
        .get(backend.name())
        .map_or(&empty, |section| &section.params);
    let at = format!("{name}.{}", backend.name());
    let takes = backend.setting_names();
    if let Some(unknown) = own.keys().find(|key| !takes.contains(&key.as_str())) {
        let mut names = vec!["filesystem", "filesystem_options"];
        names.extend(takes);
        return Err(Error::Config(format!(
            "'{at}.{unknown}' is not a setting of the {} backend; its section takes {}",
            backend.name(),
            names.join(", ")
        )));
    }
    let section = Section {
        at: &at,
        own,
        shared: &config.params,
    };
    backend.configure(section).map_err(|e| match e {
        DataFusionError::Configuration(message) => Error::Config(message),
        other => Error::Config(other.strip_backtrace()),
    })
}

fn open_store(role: TierRole, name: &str, config: &TierConfig) -> Result<Store> {
    let location = redact(&config.filesystem);
    let unreachable = |detail: String| Error::TierUnreachable {
        tier: name.to_string(),
        env: env_name(name),
        location: location.clone(),
        detail,
    };
    let create = role == TierRole::Root;
    let mut folder = None;
    let mut uploads = None;
    let store: Arc<dyn ObjectStore> = match Url::parse(&config.filesystem) {
        Ok(url) if url.scheme() == "file" => {
            let path = url
                .to_file_path()
                .map_err(|_| unreachable("not a local path".to_string()))?;
            folder = Some(path.clone());
            local_store(&path, create).map_err(unreachable)?
        }
        Ok(url) if matches!(url.scheme(), "s3" | "s3a") => {
            let (store, prefix, s3) = s3_store(&url, config).map_err(unreachable)?;
            uploads = Some(s3);
            if prefix.as_ref().is_empty() {
                store
            } else {
                Arc::new(PrefixStore::new(store, prefix))
            }
        }
        // One letter before ':' is a Windows drive, not a scheme.
        Ok(url) if url.scheme().len() > 1 => {
            let (store, prefix) = object_store::parse_url_opts(&url, config.options.iter())
                .map_err(|e| unreachable(e.to_string()))?;
            if prefix.as_ref().is_empty() {
                Arc::from(store)
            } else {
                Arc::new(PrefixStore::new(store, prefix))
            }
        }
        _ => {
            let path = std::path::PathBuf::from(&config.filesystem);
            folder = Some(path.clone());
            local_store(&path, create).map_err(unreachable)?
        }
    };
    let url = ObjectStoreUrl::parse(format!(
        "nuthatch://{}-{:016x}",
        role.name(),
        stable_hash(&[name, &location])
    ))
    .map_err(|e| unreachable(e.to_string()))?;
    Ok(Store {
        store,
        url,
        folder,
        uploads,
    })
}

/// An S3 store, the tier's folder in its bucket, and its uploads.
type S3Store = (Arc<dyn ObjectStore>, ObjectPath, Arc<S3Uploads>);

/// An S3 (or S3-compatible) store: credentials and region from the `AWS_*`
/// environment, then the tier's options, whose names must be ones
/// object_store knows (`endpoint`, `access_key_id`, `secret_access_key`,
/// `region`, `allow_http`, ...), so a misspelt option is an error rather than
/// silently ignored. Retries are bounded so an unreachable endpoint fails in
/// seconds, not minutes.
fn s3_store(url: &Url, config: &TierConfig) -> std::result::Result<S3Store, String> {
    let mut builder = AmazonS3Builder::from_env().with_url(url.as_str());
    let mut retry = RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(20),
        backoff: BackoffConfig::default(),
    };
    for (name, value) in &config.options {
        let name = name.to_ascii_lowercase();
        if retry_option(&mut retry, &name, value)? {
            continue;
        }
        let key: AmazonS3ConfigKey = name.parse().map_err(|_| {
            format!(
                "'{name}' is not an s3 option (see object_store's AmazonS3ConfigKey, or \
                 max_retries, retry_timeout, backoff_initial, backoff_max)"
            )
        })?;
        builder = builder.with_config(key, value);
    }
    let builder = builder.with_retry(retry);
    let store = Arc::new(builder.clone().build().map_err(|e| e.to_string())?);
    let prefix =
        ObjectPath::parse(url.path().trim_start_matches('/')).map_err(|e| e.to_string())?;
    let bucket = url.host_str().unwrap_or_default();
    let uploads = S3Uploads::new(&builder, Arc::clone(&store), bucket, prefix.clone());
    Ok((store, prefix, Arc::new(uploads)))
}

/// Sets `retry` from the option `name`, if it is one of object_store's
/// retry settings, which it does not take as options: how many times a
/// failed request (a 5xx answer, a reset connection, a timeout) is tried
/// again, for how long at most, and the backoff between tries.
fn retry_option(
    retry: &mut RetryConfig,
    name: &str,
    value: &str,
) -> std::result::Result<bool, String> {
    let period = || -> std::result::Result<Duration, String> {
        let period: crate::lease::Period =
            (value.parse()).map_err(|e: DataFusionError| format!("'{name}': {}", e.message()))?;
        Ok(period.0)
    };
    match name {
        "max_retries" => {
            retry.max_retries = value
                .trim()
                .parse()
                .map_err(|_| format!("'max_retries' takes a number of retries, got '{value}'"))?
        }
        "retry_timeout" => retry.retry_timeout = period()?,
        "backoff_initial" => retry.backoff.init_backoff = period()?,
        "backoff_max" => retry.backoff.max_backoff = period()?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// A folder as a store. With `create` the folder is made now; without, a
/// missing folder is read as empty and made by the first write.
fn local_store(
    path: &std::path::Path,
    create: bool,
) -> std::result::Result<Arc<dyn ObjectStore>, String> {
    if create {
        std::fs::create_dir_all(path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    }
    // Listed in key order, as buckets are, and written in pieces that the
    // page cache takes quickly (see `FolderStore`).
    let store: Arc<dyn ObjectStore> = if path.is_dir() {
        // Deleting an entry's last file removes the folders it leaves
        // empty (up to the tier's own folder), as object stores have none.
        let folder = LocalFileSystem::new_with_prefix(path).map_err(|e| e.to_string())?;
        Arc::new(folder.with_automatic_cleanup(true))
    } else {
        let absolute = std::path::absolute(path).map_err(|e| e.to_string())?;
        let prefix = ObjectPath::from_absolute_path(&absolute).map_err(|e| e.to_string())?;
        Arc::new(PrefixStore::new(LocalFileSystem::new(), prefix))
    };
    Ok(Arc::new(FolderStore::new(store, path)))
}

/// How a location is spelt in `NUTHATCH_<LOCATION>_...` variables.
fn env_name(location: &str) -> String {
    location.to_ascii_uppercase().replace('-', "_")
}

/// Drops user info and query strings, where URLs may carry credentials.
pub fn redact(filesystem: &str) -> String {
    match Url::parse(filesystem) {
        Ok(mut url) if url.scheme().len() > 1 => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.to_string()
        }
        _ => filesystem.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_not_shown() {
        let shown = redact("s3://AKIA:hunter2@bucket/caches?token=abc");
        assert!(!shown.contains("hunter2") && !shown.contains("AKIA") && !shown.contains("abc"));
        assert!(shown.starts_with("s3://bucket/caches"), "{shown}");
    }

    #[test]
    fn a_root_under_a_regular_file_is_unreachable_with_the_fix_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"x").unwrap();
        let config = TierConfig::new(file.join("root").display().to_string());
        let err = Tier::open(TierRole::Root, "root", &config, &Backends::builtin())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("root tier") && err.contains("unreachable"),
            "{err}"
        );
        assert!(err.contains("NUTHATCH_ROOT_FILESYSTEM"), "{err}");
    }
}

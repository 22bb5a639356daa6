//! One compute of an entry across processes and machines.
//!
//! [`crate::inflight`] makes the calls of one process compute a missing
//! entry once. Two processes (two notebooks, a worker and a cron job) do
//! not see each other's claims, so before computing, the leading call also
//! takes a *lease* on the entry in the tier it writes: a small object next
//! to the entry's metadata (`<backend>.lease`, which Python nuthatch's
//! listing ignores as it ignores our commit locks), created only if absent
//! (`PutMode::Create`). Another process that finds the lease waits until
//! it is gone and then looks for the entry, which is usually there.
//!
//! **Liveness without clocks.** The holder rewrites the lease every third
//! of its `ttl` for as long as it computes. A waiter does not compare
//! timestamps (the two machines' clocks and the store's may disagree): it
//! watches the lease's ETag, and one that has not changed for a whole `ttl`
//! by the waiter's own clock belongs to a holder that died. Taking it over
//! is guarded by a marker object named after that ETag, created only if
//! absent, so of several waiters exactly one takes over.
//!
//! **Deadlocks across processes.** A lease says which lease its holder's
//! body is waiting for (`waits_for`). A waiter follows that chain from the
//! lease it waits for; reaching a lease its own call holds closes a cycle.
//! Every member of the cycle sees it, so only the one whose lease sorts
//! first fails, which frees the others. Within a process the same check
//! runs on [`crate::inflight`]'s waits.
//!
//! Mirrors and read-only tiers take no lease (nothing computes into them),
//! nor does the memory tier (one process). A store that cannot create
//! objects conditionally gets none either, with a warning.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::error::{Error, Result};
use crate::tier::Tier;

/// What a call does once it has waited `lease_wait` for another holder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnLeaseWait {
    /// Fail, naming the holder (the default: the other compute is alive).
    #[default]
    Fail,
    /// Compute anyway, without a lease; the atomic commit keeps the store
    /// consistent and the last commit wins.
    Compute,
}

impl std::fmt::Display for OnLeaseWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OnLeaseWait::Fail => "fail",
            OnLeaseWait::Compute => "compute",
        })
    }
}

impl std::str::FromStr for OnLeaseWait {
    type Err = datafusion::common::DataFusionError;
    fn from_str(text: &str) -> datafusion::common::Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "fail" => Ok(OnLeaseWait::Fail),
            "compute" => Ok(OnLeaseWait::Compute),
            other => Err(datafusion::common::DataFusionError::Configuration(format!(
                "on_lease_wait is 'fail' or 'compute', got '{other}'"
            ))),
        }
    }
}

text_setting!(OnLeaseWait);

/// How a call takes and waits for leases: the session's settings.
#[derive(Debug, Clone, Copy)]
pub struct LeaseOptions {
    /// How long a lease lives unrenewed: a dead holder's lease is taken
    /// over after this long.
    pub ttl: Duration,
    /// How long to wait for another holder before `on_wait`.
    pub wait: Duration,
    pub on_wait: OnLeaseWait,
}

impl Default for LeaseOptions {
    fn default() -> Self {
        LeaseOptions {
            ttl: Duration::from_secs(30),
            wait: Duration::from_secs(3600),
            on_wait: OnLeaseWait::Fail,
        }
    }
}

/// A duration setting: `500ms`, `30s`, `10m`, `2h`, `1d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period(pub Duration);

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0.as_millis();
        match ms {
            ms if ms % 86_400_000 == 0 && ms > 0 => write!(f, "{}d", ms / 86_400_000),
            ms if ms % 3_600_000 == 0 && ms > 0 => write!(f, "{}h", ms / 3_600_000),
            ms if ms % 60_000 == 0 && ms > 0 => write!(f, "{}m", ms / 60_000),
            ms if ms % 1000 == 0 => write!(f, "{}s", ms / 1000),
            ms => write!(f, "{ms}ms"),
        }
    }
}

impl std::str::FromStr for Period {
    type Err = datafusion::common::DataFusionError;
    fn from_str(text: &str) -> datafusion::common::Result<Self> {
        let text = text.trim();
        let at = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(at);
        let scale = match unit.trim() {
            "ms" => 1,
            "" | "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => 0,
        };
        match number.parse::<u64>() {
            Ok(n) if scale > 0 => Ok(Period(Duration::from_millis(n * scale))),
            _ => Err(datafusion::common::DataFusionError::Configuration(format!(
                "a duration such as 500ms, 30s, 10m, 2h or 1d is expected, got '{text}'"
            ))),
        }
    }
}

text_setting!(Period);

/// What a lease object says.
#[derive(Debug, Clone, Default, PartialEq)]
struct Content {
    /// `host:pid`, and the entry, for people and error messages.
    holder: String,
    entry: String,
    ttl: Duration,
    /// The lease (URL) the holder's body is waiting for, if any.
    waits_for: Option<String>,
}

impl Content {
    fn encode(&self) -> PutPayload {
        let mut text = format!(
            "holder={}\nentry={}\nttl_ms={}\n",
            self.holder,
            self.entry,
            self.ttl.as_millis()
        );
        if let Some(url) = &self.waits_for {
            text.push_str(&format!("waits_for={url}\n"));
        }
        PutPayload::from(text.into_bytes())
    }

    fn decode(bytes: &[u8]) -> Content {
        let mut content = Content {
            ttl: LeaseOptions::default().ttl,
            ..Content::default()
        };
        for line in String::from_utf8_lossy(bytes).lines() {
            match line.split_once('=') {
                Some(("holder", v)) => content.holder = v.to_string(),
                Some(("entry", v)) => content.entry = v.to_string(),
                Some(("ttl_ms", v)) => {
                    if let Ok(ms) = v.parse() {
                        content.ttl = Duration::from_millis(ms);
                    }
                }
                Some(("waits_for", v)) => content.waits_for = Some(v.to_string()),
                _ => {}
            }
        }
        content
    }
}

/// This process, as leases name their holder.
pub fn this_process() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string());
    format!("{}:{}", host.trim(), std::process::id())
}

/// Whether `holder` (`host:pid`) is a process of this machine that no
/// longer runs: a killed holder's lease is taken over at once rather than
/// after its ttl. Only where `/proc` shows processes; a reused pid merely
/// looks alive, and the ttl still applies.
fn holder_is_gone(holder: &str) -> bool {
    let Some((host, pid)) = holder.rsplit_once(':') else {
        return false;
    };
    let this = this_process();
    let this_host = this.rsplit_once(':').map_or("", |(host, _)| host);
    let proc = std::path::Path::new("/proc");
    host == this_host
        && proc.join("self").exists()
        && pid.parse::<u32>().is_ok()
        && !proc.join(pid).exists()
}

/// Whether the lease at `path` belongs to a process of this machine that
/// is gone (for vacuum: such a lease is dead whatever its age).
pub async fn held_by_the_dead(store: &dyn ObjectStore, path: &Path) -> bool {
    match read(store, path).await {
        Some((content, _)) => holder_is_gone(&content.holder),
        None => false,
    }
}

/// A held lease, renewed in the background until released or dropped.
#[derive(Debug)]
pub struct Lease {
    shared: Arc<Held>,
    renewer: tokio::task::JoinHandle<()>,
}

/// What the holder and its renewer share.
#[derive(Debug)]
pub struct Held {
    store: Arc<dyn ObjectStore>,
    path: Path,
    /// Where the lease is, as other leases name it.
    url: String,
    content: Mutex<Content>,
}

impl Held {
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Notes (or clears) which lease the holder's body now waits for, so
    /// that other processes can see a cycle through it.
    pub async fn set_waits_for(&self, url: Option<String>) {
        let payload = {
            let mut content = self.content.lock().expect("lease poisoned");
            if content.waits_for == url {
                return;
            }
            content.waits_for = url;
            content.encode()
        };
        self.write(payload).await;
    }

    async fn renew(&self) {
        let payload = self.content.lock().expect("lease poisoned").encode();
        self.write(payload).await;
    }

    async fn write(&self, payload: PutPayload) {
        if let Err(e) = self.store.put(&self.path, payload).await {
            // A missed renewal is retried at the next; only a holder that
            // misses a whole ttl loses its lease.
            tracing::warn!(lease = %self.url, "could not renew the lease: {e}");
        }
    }
}

impl Lease {
    pub fn held(&self) -> &Arc<Held> {
        &self.shared
    }

    /// Lets the lease go: waiters find the entry committed.
    pub async fn release(self) {
        self.renewer.abort();
        if let Err(e) = self.shared.store.delete(&self.shared.path).await {
            tracing::warn!(lease = %self.shared.url, "could not remove the lease: {e}");
        }
    }
}

impl Drop for Lease {
    /// A compute abandoned midway still lets go, so waiters need not wait
    /// for the ttl.
    fn drop(&mut self) {
        if self.renewer.is_finished() {
            return;
        }
        self.renewer.abort();
        let shared = Arc::clone(&self.shared);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = shared.store.delete(&shared.path).await;
            });
        }
    }
}

/// Who held the lease a call waited for, and how long it waited.
#[derive(Debug, Clone, PartialEq)]
pub struct Waited {
    pub holder: String,
    pub waited: Duration,
}

/// Where the lease a URL names is: its store and path, if this process
/// knows the tier ([`crate::Catalog::lease_at`]).
pub type FindLease<'a> = dyn Fn(&str) -> Option<(Arc<dyn ObjectStore>, Path)> + Sync + 'a;

/// A lease being taken: the entry's, on one tier.
pub struct LeaseRequest<'a> {
    pub tier: &'a Tier,
    /// The lease object's path on the tier.
    pub path: Path,
    /// The entry, as error messages and other holders name it.
    pub entry: String,
    pub options: LeaseOptions,
    /// The leases the calls around this one hold (their bodies are what
    /// waits), for the waits-for chain.
    pub mine: Vec<Arc<Held>>,
}

/// How taking a lease ended.
pub enum Taken {
    /// Held: compute, then release.
    Held(Lease, Option<Waited>),
    /// Compute without one: the store cannot create objects conditionally,
    /// or the wait ran out under `on_lease_wait = 'compute'`.
    Without(Option<Waited>),
}

/// The URL of a lease at `path` on `tier`, as `waits_for` names it.
pub fn lease_url(tier: &Tier, path: &Path) -> String {
    format!("{}/{path}", tier.url().trim_end_matches('/'))
}

/// Takes the lease, waiting while another process holds it. `on_wait` is
/// told the holder whenever that changes, for the progress line.
pub async fn take<'a>(
    request: LeaseRequest<'a>,
    read_lease: &FindLease<'_>,
    on_wait: &(dyn Fn(&str) + Sync),
) -> Result<Taken> {
    let LeaseRequest {
        tier,
        path,
        entry,
        options,
        mine,
    } = request;
    let store = Arc::clone(tier.store());
    let url = lease_url(tier, &path);
    let content = Content {
        holder: this_process(),
        entry: entry.clone(),
        ttl: options.ttl,
        waits_for: None,
    };
    let started = Instant::now();
    let mut watched: Option<(String, Instant)> = None;
    let mut last_holder: Option<String> = None;
    let mut pause = Duration::from_millis(50);
    let waited = |holder: &Option<String>| {
        holder.as_ref().map(|holder| Waited {
            holder: holder.clone(),
            waited: started.elapsed(),
        })
    };
    let clear_mine = || async {
        for held in &mine {
            held.set_waits_for(None).await;
        }
    };
    loop {
        let options_create = PutOptions::from(PutMode::Create);
        match store
            .put_opts(&path, content.encode(), options_create)
            .await
        {
            Ok(_) => {
                clear_mine().await;
                let shared = Arc::new(Held {
                    store: Arc::clone(&store),
                    path: path.clone(),
                    url: url.clone(),
                    content: Mutex::new(content),
                });
                let renewer = tokio::spawn(renew_until_dropped(Arc::clone(&shared), options.ttl));
                return Ok(Taken::Held(Lease { shared, renewer }, waited(&last_holder)));
            }
            Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(object_store::Error::NotImplemented { .. }) => {
                tracing::warn!(
                    tier = tier.name(),
                    "the store cannot create objects conditionally; two processes may both \
                     compute a missing entry there"
                );
                return Ok(Taken::Without(None));
            }
            // Refused: the write would be too, so say so before computing.
            Err(
                e @ (object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }),
            ) => {
                return Err(Error::Unwritable {
                    tier: tier.name().to_string(),
                    location: tier.url().to_string(),
                    what: path.to_string(),
                    detail: e.to_string(),
                })
            }
            Err(e) => return Err(tier.unreachable(&format!("taking the lease {path}"), e)),
        }
        let Some((other, etag)) = read(store.as_ref(), &path).await else {
            continue; // released meanwhile
        };
        if last_holder.as_deref() != Some(other.holder.as_str()) {
            on_wait(&other.holder);
            last_holder = Some(other.holder.clone());
            for held in &mine {
                held.set_waits_for(Some(url.clone())).await;
            }
        }
        // A renewal changes the ETag; one unchanged for a whole ttl is dead.
        let since = match &watched {
            Some((seen, since)) if *seen == etag => *since,
            _ => {
                watched = Some((etag.clone(), Instant::now()));
                Instant::now()
            }
        };
        if since.elapsed() > other.ttl || holder_is_gone(&other.holder) {
            if take_over(store.as_ref(), &path, &etag, &other).await {
                watched = None;
                continue;
            }
            // Another waiter is taking over: wait as for a live holder.
            tokio::time::sleep(pause).await;
            continue;
        }
        if let Some(cycle) = cycle_through(&url, &other, &mine, read_lease).await {
            clear_mine().await;
            return Err(Error::Deadlock {
                cycle: cycle.join(" -> "),
            });
        }
        if started.elapsed() > options.wait {
            clear_mine().await;
            if options.on_wait == OnLeaseWait::Compute {
                tracing::warn!(
                    entry,
                    holder = other.holder,
                    "waited lease_wait for another process's compute; computing anyway"
                );
                return Ok(Taken::Without(waited(&last_holder)));
            }
            return Err(Error::LeaseWait {
                entry,
                tier: tier.name().to_string(),
                holder: other.holder,
                waited: started.elapsed().as_secs(),
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2)
            .min(Duration::from_millis(500))
            .min(options.ttl / 4);
    }
}

/// Rewrites the lease every third of `ttl`.
async fn renew_until_dropped(held: Arc<Held>, ttl: Duration) {
    let mut every = tokio::time::interval(ttl / 3);
    every.tick().await; // the first tick is now: the lease was just written
    loop {
        every.tick().await;
        held.renew().await;
    }
}

/// The lease at `path` and its ETag, if there is one.
async fn read(store: &dyn ObjectStore, path: &Path) -> Option<(Content, String)> {
    let got = store.get(path).await.ok()?;
    let etag = got.meta.e_tag.clone().unwrap_or_default();
    let bytes = got.bytes().await.ok()?;
    Some((Content::decode(&bytes), etag))
}

/// Replaces the dead lease `etag` at `path`; whether this waiter did. The
/// marker makes the takeover of one dead lease happen once; the lease is
/// read again after it, since the holder may have come back meanwhile.
async fn take_over(store: &dyn ObjectStore, path: &Path, etag: &str, dead: &Content) -> bool {
    let marker = Path::from(format!("{path}.{}", marker_name(etag)));
    let create = PutOptions::from(PutMode::Create);
    let mine = PutPayload::from(this_process().into_bytes());
    match store.put_opts(&marker, mine, create).await {
        Ok(_) => {}
        Err(object_store::Error::AlreadyExists { .. }) => {
            // Another waiter is taking over, or died doing it: a marker
            // whose maker is gone, or that outlived any takeover, goes, and
            // the next round tries again.
            if let Ok(got) = store.get(&marker).await {
                let age = chrono::Utc::now() - got.meta.last_modified;
                let maker = got.bytes().await.unwrap_or_default();
                let stale = age
                    .to_std()
                    .is_ok_and(|age| age > dead.ttl.max(MARKER_LIFE));
                if holder_is_gone(&String::from_utf8_lossy(&maker)) || stale {
                    tracing::warn!(marker = %marker, "removing a takeover marker left by a process that died");
                    let _ = store.delete(&marker).await;
                }
            }
            return false;
        }
        Err(_) => return false,
    }
    let still_dead = matches!(read(store, path).await, Some((_, now)) if now == etag);
    if still_dead {
        tracing::warn!(
            lease = %path,
            holder = dead.holder,
            "taking over the lease of a process that stopped renewing it"
        );
        let _ = store.delete(path).await;
    }
    let _ = store.delete(&marker).await;
    still_dead
}

/// A takeover takes milliseconds; a marker older than this (or than the
/// lease's ttl) was left by a waiter that died taking over.
const MARKER_LIFE: Duration = Duration::from_secs(60);

/// An ETag as a file name.
fn marker_name(etag: &str) -> String {
    let cleaned: String = etag
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("takeover-{cleaned}")
}

/// The cycle of waits this wait would close, when this call is the one of
/// the cycle that should fail: the chain from the lease waited for, through
/// what each holder waits for, back to a lease of `mine`.
async fn cycle_through(
    url: &str,
    first: &Content,
    mine: &[Arc<Held>],
    read_lease: &FindLease<'_>,
) -> Option<Vec<String>> {
    if mine.is_empty() {
        return None;
    }
    let mut chain = vec![(url.to_string(), first.entry.clone())];
    let mut next = first.waits_for.clone();
    // Bounded: a chain longer than this is not one we can close.
    for _ in 0..32 {
        let at = next?;
        if let Some(own) = mine.iter().find(|held| held.url == at) {
            let own_entry = own.content.lock().expect("lease poisoned").entry.clone();
            chain.insert(0, (at.clone(), own_entry.clone()));
            // Every member sees the cycle; the one whose lease sorts first
            // fails, so exactly one call does.
            let first_url = chain.iter().map(|(url, _)| url).min()?;
            if *first_url != at {
                return None;
            }
            let mut names: Vec<String> = chain.into_iter().map(|(_, entry)| entry).collect();
            names.push(own_entry);
            return Some(names);
        }
        if chain.iter().any(|(seen, _)| *seen == at) {
            return None; // a cycle among others: theirs to break
        }
        let (store, path) = read_lease(&at)?;
        let (content, _) = read(store.as_ref(), &path).await?;
        chain.push((at, content.entry.clone()));
        next = content.waits_for;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_takeover_left_halfway_by_a_dead_waiter_does_not_block_the_next() {
        use crate::config::TierConfig;
        use crate::tier::TierRole;
        let backends = nuthatch_backends::Backends::builtin();
        let config = TierConfig::new("memory://");
        let tier = Tier::open(TierRole::Root, "root", &config, &backends).unwrap();
        let store = tier.store();
        let path = Path::from("nuthatch_metadata.nut/f/parquet.lease");
        // A holder, and a waiter that died while taking over from it: both
        // processes of this machine that no longer run.
        let this = this_process();
        let dead = format!("{}:999999999", this.rsplit_once(':').unwrap().0);
        let lease = Content {
            holder: dead.clone(),
            entry: "f: f/".into(),
            ttl: Duration::from_secs(30),
            waits_for: None,
        };
        store.put(&path, lease.encode()).await.unwrap();
        let etag = store.head(&path).await.unwrap().e_tag.unwrap();
        let marker = Path::from(format!("{path}.{}", marker_name(&etag)));
        store
            .put(&marker, PutPayload::from(dead.into_bytes()))
            .await
            .unwrap();
        let request = LeaseRequest {
            tier: &tier,
            path,
            entry: "f: f/".into(),
            options: LeaseOptions {
                wait: Duration::from_secs(5),
                ..LeaseOptions::default()
            },
            mine: Vec::new(),
        };
        let taking = take(request, &|_| None, &|_| {});
        let taken = tokio::time::timeout(Duration::from_secs(10), taking)
            .await
            .expect("the dead waiter's marker does not block the takeover")
            .unwrap();
        let Taken::Held(held, Some(waited)) = taken else {
            panic!("the lease is taken over, after meeting the dead holder")
        };
        assert!(waited.holder.ends_with(":999999999"));
        held.release().await;
    }

    #[test]
    fn content_round_trips() {
        let content = Content {
            holder: "host:12".into(),
            entry: "f: f/1".into(),
            ttl: Duration::from_millis(1500),
            waits_for: Some("file:///tmp/x/a.lease".into()),
        };
        let bytes: bytes::Bytes = content.encode().into();
        assert_eq!(Content::decode(&bytes), content);
    }
}

//! The leap second list the server uses: loading it from disk, swapping it, refreshing it.
//!
//! This module owns all leap-second I/O: reading the system list (tzdata) and the cached
//! download at start-up and on SIGHUP, the optional periodic HTTP(S) refresh, and the atomic
//! cache write. The list in use sits behind an [`ArcSwapOption`], so the request hot path
//! ([`LeapStore::info`]) is lock-free and allocation-free. Every failure is logged with what
//! failed, where and what to do, and leaves the list in use (and the cache file) unchanged.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http_body_util::Empty;
use hyper::header::{HeaderValue, ACCEPT, HOST, LOCATION, USER_AGENT};
use hyper::{Request, StatusCode};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{format_unix_date, LeapError, LeapInfo, LeapList};
use crate::clock::{Clock, SharedClock};
use crate::files::{Limit, ReadError};
use crate::net;
use crate::net::connect::{ConnectError, ConnectOptions, Scheme, Target};
use crate::net::http1::{Http1, Http1Error};
use crate::sync::Timestamp;

/// Largest list accepted, from disk or the network (today's list is about 5 KiB).
pub const MAX_LIST_BYTES: usize = 256 * 1024;

/// Shortest refresh or retry interval honoured, so a zero in the configuration cannot turn
/// the refresh into a busy loop against someone else's server.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// What to do about the fix when no valid list could be loaded.
const LOAD_ADVICE: &str = "install or update the tzdata package (it ships \
     /usr/share/zoneinfo/leap-seconds.list), point --leap-seconds at a valid leap-seconds.list, \
     or set a refresh URL";

/// Where the leap second list comes from, and how it is kept fresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeapConfig {
    /// The system's list (default `/usr/share/zoneinfo/leap-seconds.list`, from tzdata).
    pub file: PathBuf,
    /// Where to download fresh lists from; `None` (the default) disables refreshing, so the
    /// server never reaches the internet unless told to.
    pub url: Option<String>,
    /// Where downloaded lists are kept (default `/var/lib/webntpd/leap-seconds.list`); used
    /// instead of `file` when it is newer.
    pub cache: PathBuf,
    /// Time between successful refreshes (default 1 day).
    pub refresh_interval: Duration,
    /// Time before retrying a failed refresh (default 1 hour).
    pub retry_interval: Duration,
    /// Limit for one download, connection to last byte (default 30 s).
    pub fetch_timeout: Duration,
}

impl Default for LeapConfig {
    fn default() -> Self {
        LeapConfig {
            file: PathBuf::from("/usr/share/zoneinfo/leap-seconds.list"),
            url: None,
            cache: PathBuf::from("/var/lib/webntpd/leap-seconds.list"),
            refresh_interval: Duration::from_secs(24 * 3600),
            retry_interval: Duration::from_secs(3600),
            fetch_timeout: Duration::from_secs(30),
        }
    }
}

/// Where the list in use was loaded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeapSource {
    /// The system list ([`LeapConfig::file`]).
    File(PathBuf),
    /// The cached download ([`LeapConfig::cache`]).
    Cache(PathBuf),
    /// Downloaded from this URL (and written to the cache).
    Download(String),
    /// Handed over in memory ([`LeapStore::from_list`]).
    Memory,
}

impl fmt::Display for LeapSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeapSource::File(p) => write!(f, "{}", p.display()),
            LeapSource::Cache(p) => write!(f, "{} (cached download)", p.display()),
            LeapSource::Download(url) => write!(f, "{url}"),
            LeapSource::Memory => f.write_str("a list given in memory"),
        }
    }
}

/// Why a list could not be loaded from disk.
#[derive(Debug, thiserror::Error)]
pub enum LeapLoadError {
    /// The file could not be read: missing, unreadable, not a regular file (a FIFO, a
    /// device...), or larger than [`MAX_LIST_BYTES`].
    #[error("{0}")]
    Read(ReadError),
    /// The file is not a valid list.
    #[error("{}: {error}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        error: LeapError,
    },
}

/// What a successful refresh did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// A newer list was downloaded, written to the cache and put in use.
    Updated {
        /// Its last update (`#$`), Unix seconds.
        updated_unix: i64,
        /// Its expiry (`#@`), Unix seconds.
        expires_unix: i64,
    },
    /// The server has the list already in use; nothing was written.
    UpToDate,
}

/// Why a refresh changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// No URL is configured.
    #[error("no leap-seconds.list refresh URL is configured")]
    NoUrl,
    /// The URL cannot be used.
    #[error("invalid leap-seconds.list URL `{url}`: {reason}")]
    InvalidUrl {
        /// The configured URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// TLS could not be set up (e.g. no root certificates).
    #[error("cannot fetch {url}: {reason}")]
    Tls {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// Connecting or sending the request failed.
    #[error("GET {url} failed: {reason}")]
    Request {
        /// The URL.
        url: String,
        /// What failed, with its causes.
        reason: String,
    },
    /// No complete answer within [`LeapConfig::fetch_timeout`].
    #[error("GET {url}: no complete answer within {}", humantime::format_duration(*.timeout))]
    Timeout {
        /// The URL.
        url: String,
        /// The limit.
        timeout: Duration,
    },
    /// An HTTP status other than 200.
    #[error("GET {url}: HTTP {status}, expected 200 OK{}", redirect_hint(.location.as_deref()))]
    Status {
        /// The URL.
        url: String,
        /// The status received.
        status: StatusCode,
        /// The `Location` header of a redirect (not followed).
        location: Option<String>,
    },
    /// The body was cut short or failed mid-way.
    #[error("GET {url}: incomplete body: {reason}")]
    Body {
        /// The URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The body is larger than [`MAX_LIST_BYTES`].
    #[error("GET {url}: body larger than {limit} bytes; this is not a leap-seconds.list")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// The body is not a valid list.
    #[error("the list downloaded from {url} is not valid: {error}")]
    Invalid {
        /// The URL.
        url: String,
        /// What is wrong with it.
        error: LeapError,
    },
    /// The download is older than the list in use.
    #[error(
        "refusing the list from {url}: last updated {}, older than the list in use (last \
         updated {}); the URL serves a stale copy",
        format_unix_date(*.downloaded_unix),
        format_unix_date(*.current_unix)
    )]
    Older {
        /// The URL.
        url: String,
        /// The download's `#$`, Unix seconds.
        downloaded_unix: i64,
        /// The list in use's `#$`, Unix seconds.
        current_unix: i64,
    },
    /// The cache file could not be written; the download is not used.
    #[error(
        "cannot write the cache {}: {error}; make its directory writable by webntpd or set \
         another cache path (the download is not used until it can be kept)",
        path.display()
    )]
    WriteCache {
        /// The cache file.
        path: PathBuf,
        /// What the OS said.
        error: io::Error,
    },
}

fn redirect_hint(location: Option<&str>) -> String {
    match location {
        Some(to) => format!(" (redirects are not followed; set the refresh URL to `{to}`)"),
        None => String::new(),
    }
}

/// The list in use and where it came from, swapped as one.
#[derive(Debug)]
struct Loaded {
    list: Arc<LeapList>,
    source: LeapSource,
}

/// The leap second list in use, shared by every request handler.
#[derive(Debug, Default)]
pub struct LeapStore {
    current: ArcSwapOption<Loaded>,
    /// Names the list in `current`: a value no other list in this process ever had (0: no
    /// list), set after each change, so a per-thread cache can tell that its answer is stale.
    generation: std::sync::atomic::AtomicU64,
}

/// Where list generations come from: unique across every store in the process.
static GENERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl LeapStore {
    /// A store with no list: [`LeapStore::info`] reports [`LeapInfo::NONE`].
    pub fn empty() -> LeapStore {
        LeapStore::default()
    }

    /// A store serving `list`.
    pub fn from_list(list: LeapList) -> LeapStore {
        let store = LeapStore::empty();
        store.current.store(Some(Arc::new(Loaded {
            list: Arc::new(list),
            source: LeapSource::Memory,
        })));
        store.next_generation();
        store
    }

    /// The list in `current` changed: give it a new generation (after the change, with
    /// release ordering, so a reader that sees the new generation sees the new list).
    fn next_generation(&self) {
        use std::sync::atomic::Ordering;
        let g = GENERATIONS.fetch_add(1, Ordering::Relaxed);
        self.generation.store(g, Ordering::Release);
    }

    /// Load the list at start-up. Never fails.
    ///
    /// Reads [`LeapConfig::file`], or the cache if that holds a valid, newer list. With no
    /// valid list it serves [`LeapInfo::NONE`] and logs a warning saying what to do; an
    /// expired list is used, with a warning.
    pub fn load(cfg: &LeapConfig, clock: &dyn Clock) -> LeapStore {
        let store = LeapStore::empty();
        match choose(cfg) {
            Ok((list, source)) => store.install(list, source, clock),
            Err(e) => warn!("{}", no_list_message(&e)),
        }
        store
    }

    /// Load the list again (for SIGHUP), choosing between file and cache as [`load`] does.
    /// On error the list in use is kept (and the error logged).
    ///
    /// [`load`]: LeapStore::load
    pub fn reload(&self, cfg: &LeapConfig, clock: &dyn Clock) -> Result<(), LeapLoadError> {
        match choose(cfg) {
            Ok((list, source)) => {
                self.install(list, source, clock);
                Ok(())
            }
            Err(e) => {
                warn!("{}", reload_failed_message(&e));
                Err(e)
            }
        }
    }

    /// What to report at `now`. Lock-free and allocation-free: the request hot path. The
    /// answer is remembered per thread for the rest of the second (until the list changes).
    pub fn info(&self, now: Timestamp) -> LeapInfo {
        type Cached = Option<(u64, i64, LeapInfo)>;
        thread_local! {
            static CACHE: std::cell::Cell<Cached> = const { std::cell::Cell::new(None) };
        }
        let generation = self.generation.load(std::sync::atomic::Ordering::Acquire);
        let second = now.unix_seconds();
        if let Some((g, s, info)) = CACHE.get() {
            if g == generation && s == second {
                return info;
            }
        }
        let info = match &*self.current.load() {
            Some(loaded) => loaded.list.info_at(second),
            None => LeapInfo::NONE,
        };
        CACHE.set(Some((generation, second, info)));
        info
    }

    /// The list in use, if any.
    pub fn current(&self) -> Option<Arc<LeapList>> {
        self.current.load().as_ref().map(|l| Arc::clone(&l.list))
    }

    /// Where the list in use came from, if any.
    pub fn source(&self) -> Option<LeapSource> {
        self.current.load().as_ref().map(|l| l.source.clone())
    }

    /// Download the list from [`LeapConfig::url`] once.
    ///
    /// The download is used only if it is a complete HTTP 200 body of at most
    /// [`MAX_LIST_BYTES`], a valid list, and not older than the list in use. A newer list is
    /// written to [`LeapConfig::cache`] atomically, then put in use. The outcome is logged
    /// here (failures as warnings, with the URL and reason); on any failure nothing changes.
    pub async fn refresh_once(
        &self,
        cfg: &LeapConfig,
        clock: &dyn Clock,
    ) -> Result<RefreshOutcome, RefreshError> {
        let result = self.try_refresh(cfg, clock).await;
        match &result {
            Ok(RefreshOutcome::UpToDate) => {
                debug!(url = cfg.url.as_deref(), "leap second list is up to date");
            }
            Ok(RefreshOutcome::Updated { .. }) => {}
            Err(e) => warn!("{}", refresh_failed_message(e)),
        }
        result
    }

    /// Refresh at once, then every [`LeapConfig::refresh_interval`], or after
    /// [`LeapConfig::retry_interval`] when a refresh failed, until `cancel` fires. Intervals
    /// below one second are raised to one second.
    ///
    /// Returns `None` (and starts nothing) when no URL is configured.
    ///
    /// # Panics
    /// Outside a Tokio runtime, like [`tokio::spawn`].
    pub fn spawn_refresh(
        self: Arc<Self>,
        cfg: LeapConfig,
        clock: SharedClock,
        cancel: CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let url = cfg.url.clone()?;
        info!(
            "leap second list refresh from {url} every {}",
            humantime::format_duration(cfg.refresh_interval)
        );
        Some(tokio::spawn(async move {
            loop {
                let result = tokio::select! {
                    () = cancel.cancelled() => break,
                    r = self.refresh_once(&cfg, &*clock) => r,
                };
                let delay = match result {
                    Ok(_) => cfg.refresh_interval,
                    Err(_) => cfg.retry_interval,
                }
                .max(MIN_INTERVAL);
                debug!(
                    "next leap second list refresh from {url} in {}",
                    humantime::format_duration(delay)
                );
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(delay) => {}
                }
            }
            debug!("leap second list refresh from {url} stopped");
        }))
    }

    /// Watch the list in use for expiry while the server runs: warn once it expires (a
    /// list that was valid at start-up can expire during a long run), and again every day
    /// while it stays expired. Runs until `cancel`.
    ///
    /// # Panics
    /// Outside a Tokio runtime, like [`tokio::spawn`].
    pub fn spawn_expiry_watch(
        self: Arc<Self>,
        clock: SharedClock,
        cancel: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            // Loading already warned about a list that was expired then.
            let mut first = true;
            loop {
                let now = clock.realtime().unix_seconds();
                let current = self.current.load_full();
                let (wait, warning) = expiry_check(current.as_deref(), now);
                if let (Some(w), false) = (warning, first) {
                    warn!("{w}");
                }
                first = false;
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        })
    }

    async fn try_refresh(
        &self,
        cfg: &LeapConfig,
        clock: &dyn Clock,
    ) -> Result<RefreshOutcome, RefreshError> {
        let url = cfg.url.as_deref().ok_or(RefreshError::NoUrl)?;
        let body = fetch(url, cfg.fetch_timeout).await?;
        let list = LeapList::parse_bytes(&body).map_err(|error| RefreshError::Invalid {
            url: url.to_owned(),
            error,
        })?;
        if let Some(current) = self.current() {
            if list.updated_unix() < current.updated_unix() {
                return Err(RefreshError::Older {
                    url: url.to_owned(),
                    downloaded_unix: list.updated_unix(),
                    current_unix: current.updated_unix(),
                });
            }
            if list.updated_unix() == current.updated_unix() {
                return Ok(RefreshOutcome::UpToDate);
            }
        }

        let path = cfg.cache.clone();
        let written = tokio::task::spawn_blocking(move || write_atomic(&path, &body))
            .await
            .unwrap_or_else(|e| Err(io::Error::other(format!("writer task failed: {e}"))));
        written.map_err(|error| RefreshError::WriteCache {
            path: cfg.cache.clone(),
            error,
        })?;

        let outcome = RefreshOutcome::Updated {
            updated_unix: list.updated_unix(),
            expires_unix: list.expires_unix(),
        };
        self.install(list, LeapSource::Download(url.to_owned()), clock);
        Ok(outcome)
    }

    /// Put `list` in use, unless a list at least as new was installed meanwhile by a
    /// concurrent refresh (a reload always installs: the files on disk are the truth).
    fn install(&self, list: LeapList, source: LeapSource, clock: &dyn Clock) {
        let now = clock.realtime().unix_seconds();
        let downloaded = matches!(source, LeapSource::Download(_));
        let new = Arc::new(Loaded {
            list: Arc::new(list),
            source,
        });
        let mut installed = true;
        self.current.rcu(|cur| match cur {
            Some(c) if downloaded && c.list.updated_unix() >= new.list.updated_unix() => {
                installed = false;
                Some(Arc::clone(c))
            }
            _ => {
                installed = true;
                Some(Arc::clone(&new))
            }
        });
        if !installed {
            return;
        }
        self.next_generation();
        info!("{}", in_use_message(&new.list, &new.source, now));
        if let Some(expired) = expired_message(&new.list, &new.source, now) {
            warn!("{expired}");
        }
    }
}

/// How often the expiry watch looks again, at most: also picks up reloaded lists.
const EXPIRY_CHECK_PERIOD: Duration = Duration::from_secs(86_400);

/// For the expiry watch: how long to sleep, and the warning to log now, if any.
fn expiry_check(current: Option<&Loaded>, now_unix: i64) -> (Duration, Option<String>) {
    let Some(loaded) = current else {
        return (EXPIRY_CHECK_PERIOD, None);
    };
    if let Some(w) = expired_message(&loaded.list, &loaded.source, now_unix) {
        return (EXPIRY_CHECK_PERIOD, Some(w));
    }
    // Wake just after the expiry instant (or in a day, whichever is sooner).
    let until = u64::try_from(loaded.list.expires_unix() - now_unix).unwrap_or(0) + 1;
    (Duration::from_secs(until).min(EXPIRY_CHECK_PERIOD), None)
}

/// Logged when no valid list could be loaded at start-up.
fn no_list_message(e: &LeapLoadError) -> String {
    format!(
        "{e}; serving no leap second information (leap 0, next 0) until a valid list is \
         loaded. To fix: {LOAD_ADVICE}"
    )
}

/// Logged when a reload (SIGHUP) failed.
fn reload_failed_message(e: &LeapLoadError) -> String {
    format!("leap second list reload failed: {e}; keeping the list in use. To fix: {LOAD_ADVICE}")
}

/// Logged when a refresh failed.
fn refresh_failed_message(e: &RefreshError) -> String {
    format!("leap second list refresh failed: {e}; keeping the list in use")
}

/// Logged when a list is put in use.
fn in_use_message(list: &LeapList, source: &LeapSource, now_unix: i64) -> String {
    format!(
        "leap second list: using {source}, last updated {}, expires {}, TAI-UTC now {} s",
        format_unix_date(list.updated_unix()),
        format_unix_date(list.expires_unix()),
        list.tai_utc_at(now_unix)
    )
}

/// Logged (as a warning) when the list put in use has expired; `None` if it has not.
fn expired_message(list: &LeapList, source: &LeapSource, now_unix: i64) -> Option<String> {
    list.is_expired(now_unix).then(|| {
        format!(
            "leap second list {source} expired on {}: the leap seconds it lists are still \
             right, but one announced since would be missed. Get a fresh list: update the \
             tzdata package, or set a refresh URL",
            format_unix_date(list.expires_unix())
        )
    })
}

/// The list to use: the file, or the cache when it is valid and newer (or the file is bad).
fn choose(cfg: &LeapConfig) -> Result<(LeapList, LeapSource), LeapLoadError> {
    let file = read_list(&cfg.file);
    let cache = match read_list(&cfg.cache) {
        Ok(list) => Some(list),
        Err(LeapLoadError::Read(e)) if e.is_not_found() => None,
        Err(e) => {
            warn!(
                "ignoring the cached leap second list: {e}; the next successful refresh \
                 replaces it (or delete it)"
            );
            None
        }
    };
    match (file, cache) {
        (Ok(f), Some(c)) if c.updated_unix() > f.updated_unix() => {
            Ok((c, LeapSource::Cache(cfg.cache.clone())))
        }
        (Ok(f), _) => Ok((f, LeapSource::File(cfg.file.clone()))),
        (Err(e), Some(c)) => {
            warn!(
                "{e}; using the cached download {} instead",
                cfg.cache.display()
            );
            Ok((c, LeapSource::Cache(cfg.cache.clone())))
        }
        (Err(e), None) => Err(e),
    }
}

/// How [`read_list`] reads a list from disk.
const LIST_FILE: Limit = Limit {
    bytes: MAX_LIST_BYTES as u64,
    what: "leap-seconds list",
};

/// Read and verify a list from disk, as [`crate::files::read`] reads: a regular file only (a
/// FIFO or a device is refused, never waited on), at most [`MAX_LIST_BYTES`]. Blocking but
/// bounded; `webntpd check-config` uses it too.
pub fn read_list(path: &Path) -> Result<LeapList, LeapLoadError> {
    let bytes = crate::files::read(path, LIST_FILE).map_err(LeapLoadError::Read)?;
    LeapList::parse_bytes(&bytes).map_err(|error| LeapLoadError::Invalid {
        path: path.to_owned(),
        error,
    })
}

/// Replace `path` with `bytes` atomically: a temporary file in the same directory, fsync,
/// rename, fsync of the directory. Creates the directory if missing.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the cache path has no file name",
        )
    })?;
    std::fs::create_dir_all(dir)?;
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = dir.join(tmp_name);

    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        // Best effort: the temporary file is ours and useless now.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // Make the rename itself durable. The new file is already in place, so a failure here
    // is only worth a note.
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        debug!("cannot fsync directory {}: {e}", dir.display());
    }
    Ok(())
}

fn invalid_url(url: &str, reason: String) -> RefreshError {
    RefreshError::InvalidUrl {
        url: url.to_owned(),
        reason,
    }
}

/// Check a [`LeapConfig::url`]: an http:// or https:// URL the refresh can fetch.
pub fn parse_list_url(url: &str) -> Result<Target, RefreshError> {
    let invalid = |reason| invalid_url(url, reason);
    let target = Target::parse(url).map_err(|e| invalid(e.to_string()))?;
    if !matches!(target.scheme, Scheme::Http | Scheme::Https) {
        return Err(invalid(
            "only http:// and https:// URLs are supported".into(),
        ));
    }
    Ok(target)
}

/// GET `url` and return its complete body, within `timeout`.
async fn fetch(url: &str, timeout: Duration) -> Result<Vec<u8>, RefreshError> {
    let target = parse_list_url(url)?;
    let invalid = |reason| invalid_url(url, reason);
    let request = Request::get(target.path_and_query.as_str())
        .header(
            HOST,
            HeaderValue::from_str(&target.authority()).map_err(|e| invalid(e.to_string()))?,
        )
        .header(
            USER_AGENT,
            HeaderValue::from_static(concat!("webntpd/", env!("CARGO_PKG_VERSION"))),
        )
        .header(ACCEPT, HeaderValue::from_static("text/plain, */*"))
        .body(Empty::<Bytes>::new())
        .map_err(|e| invalid(format!("{e}")))?;

    match tokio::time::timeout(timeout, exchange(&target, request, url)).await {
        Ok(result) => result,
        Err(_) => Err(RefreshError::Timeout {
            url: url.to_owned(),
            timeout,
        }),
    }
}

/// A connection failure as a refresh error: TLS that could not be set up at all (no root
/// certificates) is [`RefreshError::Tls`], everything else a failed request.
fn connect_error(url: &str, e: ConnectError) -> RefreshError {
    match e {
        ConnectError::TlsConfig { .. } => RefreshError::Tls {
            url: url.to_owned(),
            reason: e.to_string(),
        },
        e => RefreshError::Request {
            url: url.to_owned(),
            reason: e.to_string(),
        },
    }
}

/// Connect to `target` the way the WebNTP client does (the system's trust store, proxies from
/// the environment, every address of the name), send `request` on an HTTP/1.1 connection and
/// read the whole body, bounded by [`MAX_LIST_BYTES`] ([`Http1::request`], the client's own).
async fn exchange(
    target: &Target,
    request: Request<Empty<Bytes>>,
    url: &str,
) -> Result<Vec<u8>, RefreshError> {
    let io = net::open(target, &ConnectOptions::default())
        .await
        .map_err(|e| connect_error(url, e))?;
    let failed = |e: Http1Error| match e {
        Http1Error::TooLarge { limit } => RefreshError::TooLarge {
            url: url.to_owned(),
            limit,
        },
        Http1Error::Closed(when) if when.contains("body") => RefreshError::Body {
            url: url.to_owned(),
            reason: format!("the server closed the connection {when}"),
        },
        e => RefreshError::Request {
            url: url.to_owned(),
            reason: e.to_string(),
        },
    };
    let mut http = Http1::handshake(io).await.map_err(failed)?;
    let response = http
        .request(request, MAX_LIST_BYTES)
        .await
        .map_err(failed)?;
    if response.status != StatusCode::OK {
        let location = response
            .headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(super::quote);
        return Err(RefreshError::Status {
            url: url.to_owned(),
            status: response.status,
            location,
        });
    }
    Ok(response.body.to_vec())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::convert::Infallible;
    use std::sync::atomic::AtomicUsize;

    use http_body_util::combinators::BoxBody;
    use http_body_util::BodyExt;
    use http_body_util::{Full, StreamBody};
    use hyper::body::Frame;
    use hyper::body::Incoming;
    use hyper::service::service_fn;
    use hyper::Response;
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::clock::ManualClock;
    use crate::leap::test_util::{make_list, ntp, DEBIAN_LIST};
    use crate::leap::LeapEntry;

    /// 2026-11-21 00:00:00 UTC: the Debian list expired on 2026-06-28.
    const TODAY: i64 = 1_795_305_600;
    const JUL_2015: i64 = 1_435_708_800;
    const JAN_2017: i64 = 1_483_228_800;
    /// 2028-01-01, a made-up future leap second.
    const JAN_2028: i64 = 1_830_297_600;
    const DEBIAN_UPDATED_NTP: u64 = 3_960_835_200;
    const DEBIAN_EXPIRES_NTP: u64 = 3_991_593_600;
    const DAY: u64 = 86_400;

    #[test]
    fn the_per_thread_answer_follows_a_new_list_and_another_store() {
        let clock = ManualClock::new(Timestamp::from_secs(TODAY));
        let now = Timestamp::from_secs(TODAY);
        // Lists that differ only in when their one leap second happened.
        let list = |event_ntp: u64| {
            let text = make_list(
                DEBIAN_UPDATED_NTP,
                DEBIAN_EXPIRES_NTP,
                &[(2_272_060_800, 10), (event_ntp, 11)],
            );
            LeapList::parse(&text).unwrap()
        };
        let event = |ntp: u64| ntp as i64 - 2_208_988_800;
        let store = LeapStore::from_list(list(3_692_217_600));
        assert_eq!(store.info(now).next_unix, event(3_692_217_600));
        // Same thread, same second, a new list: the new answer, not the remembered one.
        store.install(list(3_644_697_600), LeapSource::Memory, &clock);
        assert_eq!(store.info(now).next_unix, event(3_644_697_600));
        // Another store in the same second answers from its own list.
        let other = LeapStore::from_list(list(3_550_089_600));
        assert_eq!(other.info(now).next_unix, event(3_550_089_600));
        assert_eq!(store.info(now).next_unix, event(3_644_697_600));
        assert_eq!(LeapStore::empty().info(now), LeapInfo::NONE);
    }

    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/leap-seconds.list")
    }

    fn today() -> ManualClock {
        ManualClock::new(Timestamp::from_secs(TODAY))
    }

    fn debian_data() -> Vec<(u64, i32)> {
        let list = LeapList::parse(DEBIAN_LIST).unwrap();
        list.entries()
            .iter()
            .map(|&LeapEntry { ntp, tai_utc }| (ntp, tai_utc))
            .collect()
    }

    /// The Debian data plus a leap second on 2028-01-01, published 30 days after Debian's.
    fn newer_list() -> String {
        let mut data = debian_data();
        data.push((ntp(JAN_2028), 38));
        make_list(
            DEBIAN_UPDATED_NTP + 30 * DAY,
            DEBIAN_EXPIRES_NTP + 400 * DAY,
            &data,
        )
    }

    /// The Debian data, published a day earlier.
    fn older_list() -> String {
        make_list(
            DEBIAN_UPDATED_NTP - DAY,
            DEBIAN_EXPIRES_NTP - DAY,
            &debian_data(),
        )
    }

    fn cfg(dir: &Path) -> LeapConfig {
        LeapConfig {
            file: fixture(),
            url: None,
            cache: dir.join("state").join("leap-seconds.list"),
            fetch_timeout: Duration::from_secs(5),
            ..LeapConfig::default()
        }
    }

    // ---- load / reload ----

    #[test]
    fn defaults() {
        let c = LeapConfig::default();
        assert_eq!(c.file, Path::new("/usr/share/zoneinfo/leap-seconds.list"));
        assert_eq!(c.cache, Path::new("/var/lib/webntpd/leap-seconds.list"));
        assert_eq!(c.url, None);
        assert_eq!(c.refresh_interval, Duration::from_secs(86_400));
        assert_eq!(c.retry_interval, Duration::from_secs(3_600));
        assert_eq!(c.fetch_timeout, Duration::from_secs(30));
        assert_eq!(
            LeapStore::empty().info(Timestamp::from_secs(TODAY)),
            LeapInfo::NONE
        );
    }

    // Log lines are checked through the functions that build them: capturing `tracing`
    // output with a thread-local subscriber is unreliable while tests run in parallel.

    #[test]
    fn load_expired_list_is_used_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let store = LeapStore::load(&cfg(dir.path()), &today());
        let source = LeapSource::File(fixture());
        assert_eq!(store.source(), Some(source.clone()));
        let info = |t| store.info(Timestamp::from_secs(t));
        assert_eq!(
            info(TODAY),
            LeapInfo {
                leap: 36,
                next_unix: JAN_2017,
                step: 1
            }
        );
        assert_eq!(
            store.info(Timestamp::from_nanos(
                i128::from(JUL_2015) * 1_000_000_000 - 1
            )),
            LeapInfo {
                leap: 35,
                next_unix: JUL_2015,
                step: 1
            }
        );

        let list = store.current().unwrap();
        assert_eq!(
            in_use_message(&list, &source, TODAY),
            format!(
                "leap second list: using {}, last updated 2025-07-07T00:00:00Z, expires \
                 2026-06-28T00:00:00Z, TAI-UTC now 37 s",
                fixture().display()
            )
        );
        assert_eq!(
            expired_message(&list, &source, TODAY).unwrap(),
            format!(
                "leap second list {} expired on 2026-06-28T00:00:00Z: the leap seconds it lists \
                 are still right, but one announced since would be missed. Get a fresh list: \
                 update the tzdata package, or set a refresh URL",
                fixture().display()
            )
        );
        // 2026-01-01: not expired yet, no warning.
        assert_eq!(expired_message(&list, &source, 1_767_225_600), None);
    }

    #[test]
    fn load_missing_file_serves_none_and_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cfg(dir.path());
        c.file = dir.path().join("no-such-file");
        let store = LeapStore::load(&c, &today());
        assert!(store.current().is_none());
        assert_eq!(store.source(), None);
        assert_eq!(store.info(Timestamp::from_secs(TODAY)), LeapInfo::NONE);

        let msg = no_list_message(&read_list(&c.file).unwrap_err());
        assert!(
            msg.starts_with(&format!(
                "cannot read {}: No such file or directory",
                c.file.display()
            )),
            "{msg}"
        );
        assert!(msg.contains("serving no leap second information"), "{msg}");
        assert!(msg.contains("tzdata"), "{msg}");
        assert!(msg.contains("--leap-seconds"), "{msg}");
        assert!(msg.contains("refresh URL"), "{msg}");
    }

    #[test]
    fn load_corrupt_file_serves_none() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cfg(dir.path());
        c.file = dir.path().join("leap.html");
        std::fs::write(&c.file, "<html><body>502 Bad Gateway</body></html>\n").unwrap();
        let store = LeapStore::load(&c, &today());
        assert_eq!(store.info(Timestamp::from_secs(TODAY)), LeapInfo::NONE);
        assert_eq!(
            read_list(&c.file).unwrap_err().to_string(),
            format!(
                "{}: line 1: expected `<NTP seconds> <TAI-UTC>`, found `<html><body>502 Bad \
                 Gateway</body></html>`",
                c.file.display()
            )
        );

        std::fs::write(&c.file, vec![b'#'; MAX_LIST_BYTES + 1]).unwrap();
        assert!(matches!(
            read_list(&c.file),
            Err(LeapLoadError::Read(ReadError::TooLarge { .. }))
        ));
    }

    #[test]
    fn newer_cache_wins_older_or_corrupt_cache_loses() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path());
        std::fs::create_dir_all(c.cache.parent().unwrap()).unwrap();

        std::fs::write(&c.cache, newer_list()).unwrap();
        let store = LeapStore::load(&c, &today());
        assert_eq!(store.source(), Some(LeapSource::Cache(c.cache.clone())));
        assert_eq!(
            store.info(Timestamp::from_secs(TODAY)),
            LeapInfo {
                leap: 37,
                next_unix: JAN_2028,
                step: 1
            }
        );

        std::fs::write(&c.cache, older_list()).unwrap();
        let store = LeapStore::load(&c, &today());
        assert_eq!(store.source(), Some(LeapSource::File(fixture())));

        std::fs::write(&c.cache, DEBIAN_LIST).unwrap();
        let store = LeapStore::load(&c, &today());
        assert_eq!(store.source(), Some(LeapSource::File(fixture())));

        std::fs::write(&c.cache, "garbage\n").unwrap();
        let store = LeapStore::load(&c, &today());
        assert_eq!(store.source(), Some(LeapSource::File(fixture())));

        // No system list at all: the cached download is better than nothing.
        std::fs::write(&c.cache, older_list()).unwrap();
        let mut no_file = c.clone();
        no_file.file = dir.path().join("missing");
        let store = LeapStore::load(&no_file, &today());
        assert_eq!(store.source(), Some(LeapSource::Cache(c.cache.clone())));
    }

    #[test]
    fn a_fifo_or_a_device_is_refused_at_once_at_load_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cfg(dir.path());
        let fifo = dir.path().join("fifo.list");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .is_ok_and(|s| s.success());
        assert!(made, "mkfifo");
        let good = c.file.clone();
        // At start: no list, and the reason names the FIFO. Without the non-blocking
        // reader this open would wait for a writer forever.
        c.file = fifo.clone();
        let store = LeapStore::load(&c, &today());
        assert_eq!(store.info(Timestamp::from_secs(TODAY)), LeapInfo::NONE);
        let e = read_list(&fifo).unwrap_err();
        assert!(e.to_string().contains("is a FIFO (named pipe)"), "{e}");
        // A FIFO as the cache is ignored like a corrupt cache: the file is used.
        c.file = good.clone();
        c.cache = fifo.clone();
        let store = LeapStore::load(&c, &today());
        assert_eq!(store.source(), Some(LeapSource::File(good.clone())));
        // At reload: the list in use stays.
        let before = store.current().unwrap();
        for bad in [fifo.as_path(), Path::new("/dev/zero")] {
            c.file = bad.to_path_buf();
            c.cache = dir.path().join("no-cache.list");
            let e = store.reload(&c, &today()).unwrap_err();
            assert!(e.to_string().contains("not a regular file"), "{e}");
            assert!(Arc::ptr_eq(&store.current().unwrap(), &before));
        }
    }

    #[test]
    fn reload_keeps_the_old_list_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cfg(dir.path());
        let store = LeapStore::load(&c, &today());
        let before = store.current().unwrap();

        c.file = dir.path().join("edited.list");
        std::fs::write(&c.file, DEBIAN_LIST.replace("37", "38")).unwrap();
        let err = store.reload(&c, &today()).unwrap_err();
        assert!(err.to_string().contains("hash mismatch"), "{err}");
        assert!(
            reload_failed_message(&err).contains("keeping the list in use"),
            "{err}"
        );
        assert!(Arc::ptr_eq(&store.current().unwrap(), &before));

        std::fs::write(&c.file, newer_list()).unwrap();
        store.reload(&c, &today()).unwrap();
        assert_eq!(store.source(), Some(LeapSource::File(c.file.clone())));
        assert_eq!(store.info(Timestamp::from_secs(TODAY)).next_unix, JAN_2028);
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/leap-seconds.list");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
        // A parent that is a file: an error, nothing left behind.
        let blocked = dir.path().join("a/b/leap-seconds.list/x");
        assert!(write_atomic(&blocked, b"three").is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
    }

    // ---- refresh ----

    type Body = BoxBody<Bytes, io::Error>;

    fn full(status: u16, body: impl Into<Bytes>) -> Response<Body> {
        let mut r = Response::new(Full::new(body.into()).map_err(|e| match e {}).boxed());
        *r.status_mut() = StatusCode::from_u16(status).unwrap();
        r
    }

    /// A local hyper server answering `routes` (path -> 200 body), plus `/404`, `/moved`
    /// and `/huge-chunked` (a chunked body over the limit). Returns its base URL and a hit count.
    async fn http_server(routes: HashMap<&'static str, String>) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let routes = Arc::new(routes);
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let routes = Arc::clone(&routes);
                let counter = Arc::clone(&counter);
                let service = service_fn(move |req: Request<Incoming>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let reply = match req.uri().path() {
                        "/moved" => {
                            let mut r = full(301, "");
                            r.headers_mut().insert(
                                LOCATION,
                                HeaderValue::from_static("https://example.org/leap-seconds.list"),
                            );
                            r
                        }
                        "/huge-chunked" => {
                            // 300 KiB in 1 KiB chunks, no Content-Length: chunked encoding.
                            let line = Bytes::from("#".repeat(1023) + "\n");
                            let chunks = (0..300).map(move |_| Ok(Frame::data(line.clone())));
                            let body = StreamBody::new(futures_util::stream::iter(chunks));
                            Response::new(BodyExt::boxed(body))
                        }
                        path => match routes.get(path) {
                            Some(text) => full(200, text.clone()),
                            None => full(404, "not found"),
                        },
                    };
                    async move { Ok::<_, Infallible>(reply) }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (base, hits)
    }

    /// A raw TCP server that reads a request, writes `response` and closes the connection;
    /// or, with `None`, never answers.
    async fn raw_server(response: Option<Vec<u8>>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/leap-seconds.list",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let response = response.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    match response {
                        Some(r) => {
                            let _ = stream.write_all(&r).await;
                            let _ = stream.shutdown().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                });
            }
        });
        url
    }

    /// The cache file's bytes, or `None` if absent; and the cache directory's entries.
    fn cache_state(c: &LeapConfig) -> (Option<Vec<u8>>, Vec<OsString>) {
        let bytes = std::fs::read(&c.cache).ok();
        let mut names: Vec<OsString> = std::fs::read_dir(c.cache.parent().unwrap())
            .map(|d| d.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        names.sort();
        (bytes, names)
    }

    type Check = fn(&RefreshError) -> bool;

    /// Every way a refresh must fail; checks that nothing changed after each.
    async fn assert_failures_change_nothing(
        store: &LeapStore,
        base_cfg: &LeapConfig,
        cases: &[(String, Check)],
    ) {
        let clock = today();
        for (url, check) in cases {
            let before = store.current().unwrap();
            let before_cache = cache_state(base_cfg);
            let c = LeapConfig {
                url: Some(url.clone()),
                ..base_cfg.clone()
            };
            let result = store.refresh_once(&c, &clock).await;
            match &result {
                Err(e) => assert!(check(e), "{url}: unexpected error: {e}"),
                Ok(o) => panic!("{url}: expected an error, got {o:?}"),
            }
            let err = result.unwrap_err().to_string();
            assert!(
                err.contains(url.as_str()),
                "{url}: error does not name the URL: {err}"
            );
            assert!(Arc::ptr_eq(&store.current().unwrap(), &before), "{url}");
            assert_eq!(cache_state(base_cfg), before_cache, "{url}");
        }
    }

    #[tokio::test]
    async fn refresh_uses_only_complete_valid_newer_lists() {
        let dir = tempfile::tempdir().unwrap();
        let base_cfg = cfg(dir.path());
        let clock = today();
        let store = LeapStore::load(&base_cfg, &clock);
        let newer = newer_list();
        let bad_hash = {
            let hash_line = newer.lines().last().unwrap();
            let broken = format!("{} 00000000", &hash_line[..hash_line.len() - 9]);
            newer.replace(hash_line, &broken)
        };
        let routes = HashMap::from([
            ("/newer", newer.clone()),
            ("/older", older_list()),
            ("/debian", DEBIAN_LIST.to_owned()),
            (
                "/html",
                "<!DOCTYPE html>\n<html><body>Hello</body></html>\n".to_owned(),
            ),
            ("/empty", String::new()),
            ("/bad-hash", bad_hash),
            ("/huge", "#\n".repeat(MAX_LIST_BYTES / 2 + 1)),
        ]);
        let (base, _) = http_server(routes).await;
        // The whole (valid, newer) list, but less than the advertised length, then close.
        let truncated = {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                newer.len() + 100
            );
            raw_server(Some([head.as_bytes(), newer.as_bytes()].concat())).await
        };
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/leap-seconds.list", l.local_addr().unwrap())
        };
        let url = |p: &str| format!("{base}{p}");

        let mut cases: Vec<(String, Check)> = vec![
            (url("/older"), |e| matches!(e, RefreshError::Older { .. })),
            (
                url("/404"),
                |e| matches!(e, RefreshError::Status { status, .. } if status.as_u16() == 404),
            ),
            (url("/moved"), |e| {
                e.to_string().ends_with(
                    "HTTP 301 Moved Permanently, expected 200 OK (redirects are not followed; \
                     set the refresh URL to `https://example.org/leap-seconds.list`)",
                )
            }),
            (url("/html"), |e| {
                e.to_string().ends_with(
                    "is not valid: line 1: expected `<NTP seconds> <TAI-UTC>`, found \
                     `<!DOCTYPE html>`",
                )
            }),
            (url("/empty"), |e| {
                matches!(
                    e,
                    RefreshError::Invalid {
                        error: LeapError::Empty,
                        ..
                    }
                )
            }),
            (url("/bad-hash"), |e| {
                matches!(
                    e,
                    RefreshError::Invalid {
                        error: LeapError::HashMismatch { .. },
                        ..
                    }
                )
            }),
            (url("/huge"), |e| matches!(e, RefreshError::TooLarge { .. })),
            (url("/huge-chunked"), |e| {
                matches!(e, RefreshError::TooLarge { .. })
            }),
            (truncated, |e| matches!(e, RefreshError::Body { .. })),
            (
                closed,
                |e| matches!(e, RefreshError::Request { reason, .. } if reason.contains("refused")),
            ),
            ("ftp://example.org/leap-seconds.list".to_owned(), |e| {
                matches!(e, RefreshError::InvalidUrl { .. })
            }),
            ("not a url".to_owned(), |e| {
                matches!(e, RefreshError::InvalidUrl { .. })
            }),
            // TLS to a plain HTTP server: the handshake fails (or, on a machine without root
            // certificates, the TLS set-up does).
            (url("/debian").replace("http://", "https://"), |e| {
                matches!(e, RefreshError::Request { .. } | RefreshError::Tls { .. })
            }),
        ];
        // Before the update: a missing cache must stay missing.
        assert_failures_change_nothing(&store, &base_cfg, &cases).await;
        assert_eq!(cache_state(&base_cfg), (None, vec![]));

        // The same list: up to date, nothing written.
        let c = LeapConfig {
            url: Some(url("/debian")),
            ..base_cfg.clone()
        };
        assert_eq!(
            store.refresh_once(&c, &clock).await.unwrap(),
            RefreshOutcome::UpToDate
        );
        assert_eq!(cache_state(&base_cfg), (None, vec![]));

        // A newer list: written to the cache (directory created), then used.
        let c = LeapConfig {
            url: Some(url("/newer")),
            ..base_cfg.clone()
        };
        let expected_new = LeapList::parse(&newer).unwrap();
        assert_eq!(
            store.refresh_once(&c, &clock).await.unwrap(),
            RefreshOutcome::Updated {
                updated_unix: expected_new.updated_unix(),
                expires_unix: expected_new.expires_unix(),
            }
        );
        assert_eq!(
            cache_state(&base_cfg),
            (
                Some(newer.clone().into_bytes()),
                vec!["leap-seconds.list".into()]
            )
        );
        assert_eq!(*store.current().unwrap(), expected_new);
        assert_eq!(store.source(), Some(LeapSource::Download(url("/newer"))));
        assert_eq!(
            store.info(Timestamp::from_secs(TODAY)),
            LeapInfo {
                leap: 37,
                next_unix: JAN_2028,
                step: 1
            }
        );
        assert_eq!(
            store.refresh_once(&c, &clock).await.unwrap(),
            RefreshOutcome::UpToDate
        );

        // After the update: the failures leave memory and the cache file alone; the
        // Debian list is now older than the one in use.
        cases.push((url("/debian"), |e| matches!(e, RefreshError::Older { .. })));
        assert_failures_change_nothing(&store, &base_cfg, &cases).await;

        // A restart picks the cached download over the older system list.
        let reloaded = LeapStore::load(&base_cfg, &clock);
        assert_eq!(
            reloaded.source(),
            Some(LeapSource::Cache(base_cfg.cache.clone()))
        );
        assert_eq!(*reloaded.current().unwrap(), expected_new);
    }

    #[tokio::test]
    async fn refresh_times_out_and_logs_the_url() {
        let dir = tempfile::tempdir().unwrap();
        let silent = raw_server(None).await;
        let c = LeapConfig {
            url: Some(silent.clone()),
            fetch_timeout: Duration::from_millis(300),
            ..cfg(dir.path())
        };
        let store = LeapStore::from_list(LeapList::parse(DEBIAN_LIST).unwrap());
        let err = store.refresh_once(&c, &today()).await.unwrap_err();
        assert!(matches!(err, RefreshError::Timeout { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!("GET {silent}: no complete answer within 300ms")
        );
        assert_eq!(
            refresh_failed_message(&err),
            format!(
                "leap second list refresh failed: GET {silent}: no complete answer within \
                 300ms; keeping the list in use"
            )
        );
        assert_eq!(store.source(), Some(LeapSource::Memory));
    }

    #[tokio::test]
    async fn refresh_that_cannot_write_the_cache_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (base, _) = http_server(HashMap::from([("/newer", newer_list())])).await;
        let blocker = dir.path().join("not-a-directory");
        std::fs::write(&blocker, "").unwrap();
        let c = LeapConfig {
            url: Some(format!("{base}/newer")),
            cache: blocker.join("leap-seconds.list"),
            ..cfg(dir.path())
        };
        let store = LeapStore::load(&c, &today());
        let before = store.current().unwrap();
        let err = store.refresh_once(&c, &today()).await.unwrap_err();
        assert!(matches!(err, RefreshError::WriteCache { .. }), "{err}");
        assert!(err.to_string().contains("writable"), "{err}");
        assert!(Arc::ptr_eq(&store.current().unwrap(), &before));
    }

    #[tokio::test]
    async fn refresh_into_an_empty_store_accepts_any_valid_list() {
        let dir = tempfile::tempdir().unwrap();
        let (base, _) = http_server(HashMap::from([("/older", older_list())])).await;
        let c = LeapConfig {
            url: Some(format!("{base}/older")),
            ..cfg(dir.path())
        };
        let store = LeapStore::empty();
        let outcome = store.refresh_once(&c, &today()).await.unwrap();
        assert!(matches!(outcome, RefreshOutcome::Updated { .. }));
        assert_eq!(store.info(Timestamp::from_secs(TODAY)).next_unix, JAN_2017);
        assert!(matches!(
            store.refresh_once(&cfg(dir.path()), &today()).await,
            Err(RefreshError::NoUrl)
        ));
    }

    /// Wait until `hits` reaches `n`, or fail after `limit`.
    async fn wait_for_hits(hits: &AtomicUsize, n: usize, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while hits.load(Ordering::SeqCst) < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} requests",
                hits.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Run the refresh task until the server has seen three requests, then stop it and check
    /// it ends promptly.
    async fn refresh_until_hits(
        store: &Arc<LeapStore>,
        c: LeapConfig,
        hits: &Arc<AtomicUsize>,
        cancel: CancellationToken,
    ) {
        let task = Arc::clone(store)
            .spawn_refresh(c, Arc::new(today()), cancel.clone())
            .unwrap();
        wait_for_hits(hits, 3, Duration::from_secs(10)).await;
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn spawn_refresh_keeps_firing_until_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let (base, hits) = http_server(HashMap::from([("/debian", DEBIAN_LIST.to_owned())])).await;
        let c = LeapConfig {
            url: Some(format!("{base}/debian")),
            refresh_interval: Duration::ZERO, // raised to the 1 s floor
            retry_interval: Duration::from_secs(3600),
            ..cfg(dir.path())
        };
        let store = Arc::new(LeapStore::load(&c, &today()));
        let cancel = CancellationToken::new();
        refresh_until_hits(&store, c, &hits, cancel).await;
        assert_eq!(store.source(), Some(LeapSource::File(fixture())));
    }

    #[tokio::test]
    async fn spawn_refresh_retries_after_failures() {
        let dir = tempfile::tempdir().unwrap();
        let (base, hits) = http_server(HashMap::new()).await;
        let c = LeapConfig {
            url: Some(format!("{base}/404")),
            refresh_interval: Duration::from_secs(3600),
            retry_interval: Duration::from_secs(1),
            ..cfg(dir.path())
        };
        let store = Arc::new(LeapStore::empty());
        let cancel = CancellationToken::new();
        refresh_until_hits(&store, c.clone(), &hits, cancel).await;

        let no_url = LeapConfig { url: None, ..c };
        assert!(store
            .spawn_refresh(no_url, Arc::new(today()), CancellationToken::new())
            .is_none());
    }

    #[test]
    fn expiry_watch_wakes_at_expiry_and_then_warns_daily() {
        let list = LeapList::parse(DEBIAN_LIST).unwrap();
        let expires = list.expires_unix();
        let loaded = Loaded {
            list: Arc::new(list),
            source: LeapSource::Memory,
        };
        // Nothing loaded: look again in a day, say nothing.
        assert_eq!(expiry_check(None, TODAY), (EXPIRY_CHECK_PERIOD, None));
        // Ten seconds before expiry: wake just after it, no warning yet.
        assert_eq!(
            expiry_check(Some(&loaded), expires - 10),
            (Duration::from_secs(11), None)
        );
        // Months before: no more than a day's sleep (a reload may change the list).
        assert_eq!(
            expiry_check(Some(&loaded), expires - 100 * DAY as i64).0,
            EXPIRY_CHECK_PERIOD
        );
        // At and after expiry: the warning, then a day's sleep.
        for now in [expires, TODAY] {
            let (wait, warning) = expiry_check(Some(&loaded), now);
            assert_eq!(wait, EXPIRY_CHECK_PERIOD);
            assert!(warning.is_some_and(|w| w.contains("expired on 2026-06-28")));
        }
    }
}

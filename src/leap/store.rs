//! The leap second list the server uses: the list in use behind an [`ArcSwapOption`], so the
//! request hot path ([`LeapStore::info`]) is lock-free and allocation-free; loading it from
//! disk (tzdata's list, or the refreshed cache when newer) at start-up and on SIGHUP; and
//! putting a new one in use. Every failure is logged with what failed, where and what to do,
//! and leaves the list in use unchanged. Refreshing is [`super::refresh`]'s, downloading
//! [`super::download`]'s.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tracing::{info, warn};

use super::list::{format_unix_date, LeapError, LeapList};
use crate::clock::Clock;
use crate::files::{Limit, ReadError};
use crate::sync::leap::LeapInfo;
use crate::sync::Timestamp;

/// Largest list accepted, from disk or the network (today's list is about 5 KiB).
pub const MAX_LIST_BYTES: usize = 256 * 1024;

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

/// The list in use and where it came from, swapped as one.
#[derive(Debug)]
pub(super) struct Loaded {
    pub(super) list: Arc<LeapList>,
    pub(super) source: LeapSource,
}

/// The leap second list in use, shared by every request handler.
#[derive(Debug, Default)]
pub struct LeapStore {
    pub(super) current: ArcSwapOption<Loaded>,
    /// Names the list in `current`: a value no other list in this process ever had (0: no
    /// list), set after each change, so a per-thread cache can tell that its answer is stale.
    generation: std::sync::atomic::AtomicU64,
    /// The last refresh from the URL: when (Unix seconds) and whether it worked (metrics).
    pub(super) refreshed: std::sync::Mutex<Option<(f64, bool)>>,
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

    /// The last refresh from the URL, if one ran: when (Unix seconds) and whether it worked
    /// (an up-to-date list counts as working).
    pub fn last_refresh(&self) -> Option<(f64, bool)> {
        // Nothing panics while holding the lock; a poisoned one is still consistent.
        *self
            .refreshed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where the list in use came from, if any.
    pub fn source(&self) -> Option<LeapSource> {
        self.current.load().as_ref().map(|l| l.source.clone())
    }

    /// Put `list` in use, unless a list at least as new was installed meanwhile by a
    /// concurrent refresh (a reload always installs: the files on disk are the truth).
    pub(super) fn install(&self, list: LeapList, source: LeapSource, clock: &dyn Clock) {
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
pub(super) fn expired_message(
    list: &LeapList,
    source: &LeapSource,
    now_unix: i64,
) -> Option<String> {
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

/// What the store's and the refresh's tests share: dates, the test list and its variants, a
/// configuration in a temporary directory.
#[cfg(test)]
pub(super) mod test_support {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use super::LeapConfig;
    use crate::clock::ManualClock;
    use crate::leap::test_util::{make_list, ntp, DEBIAN_LIST};
    use crate::leap::{LeapEntry, LeapList};
    use crate::sync::Timestamp;

    /// 2026-11-21 00:00:00 UTC: the Debian list expired on 2026-06-28.
    pub(crate) const TODAY: i64 = 1_795_305_600;
    pub(crate) const JUL_2015: i64 = 1_435_708_800;
    pub(crate) const JAN_2017: i64 = 1_483_228_800;
    /// 2028-01-01, a made-up future leap second.
    pub(crate) const JAN_2028: i64 = 1_830_297_600;
    pub(crate) const DEBIAN_UPDATED_NTP: u64 = 3_960_835_200;
    pub(crate) const DEBIAN_EXPIRES_NTP: u64 = 3_991_593_600;
    pub(crate) const DAY: u64 = 86_400;

    pub(crate) fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/leap-seconds.list")
    }

    pub(crate) fn today() -> ManualClock {
        ManualClock::new(Timestamp::from_secs(TODAY))
    }

    pub(crate) fn debian_data() -> Vec<(u64, i32)> {
        let list = LeapList::parse(DEBIAN_LIST).unwrap();
        list.entries()
            .iter()
            .map(|&LeapEntry { ntp, tai_utc }| (ntp, tai_utc))
            .collect()
    }

    /// The Debian data plus a leap second on 2028-01-01, published 30 days after Debian's.
    pub(crate) fn newer_list() -> String {
        let mut data = debian_data();
        data.push((ntp(JAN_2028), 38));
        make_list(
            DEBIAN_UPDATED_NTP + 30 * DAY,
            DEBIAN_EXPIRES_NTP + 400 * DAY,
            &data,
        )
    }

    /// What the server answers today from [`newer_list`].
    pub(crate) const NEWER_ANSWER: crate::sync::leap::LeapInfo = crate::sync::leap::LeapInfo {
        leap: 37,
        next_unix: JAN_2028,
        step: 1,
    };

    /// The Debian data, published a day earlier.
    pub(crate) fn older_list() -> String {
        make_list(
            DEBIAN_UPDATED_NTP - DAY,
            DEBIAN_EXPIRES_NTP - DAY,
            &debian_data(),
        )
    }

    pub(crate) fn cfg(dir: &Path) -> LeapConfig {
        LeapConfig {
            file: fixture(),
            url: None,
            cache: dir.join("state").join("leap-seconds.list"),
            fetch_timeout: Duration::from_secs(5),
            ..LeapConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::clock::ManualClock;
    use crate::leap::test_util::{make_list, DEBIAN_LIST};

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
        assert_eq!(store.info(Timestamp::from_secs(TODAY)), NEWER_ANSWER);

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
}

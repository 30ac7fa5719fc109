//! Keeping the list fresh: the optional periodic HTTP(S) refresh, the atomic cache write, and
//! the watch that warns when the list in use expires. A download is used only if it is
//! complete, valid and not older than the list in use; on any failure nothing changes.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::download::fetch;
use super::list::{format_unix_date, LeapError, LeapList};
use super::store::{expired_message, LeapConfig, LeapSource, LeapStore, Loaded};
use crate::clock::{Clock, SharedClock};

/// Shortest refresh or retry interval honoured, so a zero in the configuration cannot turn
/// the refresh into a busy loop against someone else's server.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

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
    /// The body is larger than [`super::MAX_LIST_BYTES`].
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

impl LeapStore {
    /// Download the list from [`LeapConfig::url`] once.
    ///
    /// The download is used only if it is a complete HTTP 200 body of at most
    /// [`super::MAX_LIST_BYTES`], a valid list, and not older than the list in use. A newer list is
    /// written to [`LeapConfig::cache`] atomically, then put in use. The outcome is logged
    /// here (failures as warnings, with the URL and reason); on any failure nothing changes.
    pub async fn refresh_once(
        &self,
        cfg: &LeapConfig,
        clock: &dyn Clock,
    ) -> Result<RefreshOutcome, RefreshError> {
        let result = self.try_refresh(cfg, clock).await;
        *self
            .refreshed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((clock.realtime().as_secs_f64(), result.is_ok()));
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

/// Logged when a refresh failed.
fn refresh_failed_message(e: &RefreshError) -> String {
    format!("leap second list refresh failed: {e}; keeping the list in use")
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

    use bytes::Bytes;
    use hyper::header::{HeaderValue, LOCATION};
    use hyper::Request;

    use super::*;
    use crate::leap::store::test_support::*;
    use crate::leap::test_util::DEBIAN_LIST;
    use crate::leap::MAX_LIST_BYTES;
    use crate::sync::Timestamp;

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
        assert_eq!(store.info(Timestamp::from_secs(TODAY)), NEWER_ANSWER);
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

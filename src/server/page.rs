//! The clock page for browsers (`--clock-page`, default `/clock`), and its leap-second state.
//!
//! The page is one self-contained file, `clock.html` beside this one: markup, style and
//! script inline, nothing loaded from anywhere else. In the browser it measures this
//! browser's clock against the server over WebSocket (over HTTP when that is blocked), and
//! shows the corrected time, the offset with its error bound, the round trip, the leap-second
//! state, its samples, and the answers of the configured peers. `<page>/leap` gives it the
//! server's leap-second state with the list's expiry, as JSON: the expiry is not in the
//! WebNTP reply, whose bytes stay go-webntp's, and it changes once a day at most, so it has
//! no business in every sample.
//!
//! Everything is prepared once, at start ([`ClockPage::new`]): the peers written into the
//! page, the Content-Security-Policy (the SHA-256 of the inline script and style; `'self'`
//! and the peers' origins in `connect-src`; nothing else may load) and the ETag. Serving the
//! page copies nothing (the body is a shared [`Bytes`]), and no other route pays for it but
//! two string comparisons.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::StatusCode;

use super::activity::InFlight;
use super::body::ReplyBody;
use super::reply::{fixed, Cors, Fixed, Head, Reply, HTML, JSON, NOSNIFF, NO_CACHE};
use super::Shared;
use crate::leap::store::LeapStore;
use crate::net::connect::{is_loopback_host, Scheme, Target};
use crate::sync::Timestamp;

/// The page: HTML with its style and script inline.
const ASSET: &str = include_str!("clock.html");

/// Where the page is served unless configured otherwise.
pub const DEFAULT_PATH: &str = "/clock";

/// Most peers the page asks besides its own server.
pub const MAX_PEERS: usize = 8;

/// Longest page path accepted.
const MAX_PATH: usize = 128;

/// Under the page's path: the leap-second state.
const LEAP_SUFFIX: &str = "/leap";

/// In the asset: where the peers' URLs go (space-separated).
const PEERS_SLOT: &str = "data-peers=\"\"";

static REVALIDATE: Fixed = fixed!("cache-control", "no-cache");
static NO_REFERRER: Fixed = fixed!("referrer-policy", "no-referrer");
// Cross-origin isolation: the page loads nothing that could object, and in return browsers
// give it finer timers (Chromium: 5 us instead of 100 us). Only in a secure context: sent
// elsewhere, Chromium ignores the headers and says so in the console as an error.
static COOP: Fixed = fixed!("cross-origin-opener-policy", "same-origin");
static COEP: Fixed = fixed!("cross-origin-embedder-policy", "require-corp");
static CSP: HeaderName = header::CONTENT_SECURITY_POLICY;

/// Where the page is served: a path, or nowhere (`off`: every path answers WebNTP JSON, as
/// go-webntp's do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagePath(pub Option<String>);

impl Default for PagePath {
    fn default() -> Self {
        PagePath(Some(DEFAULT_PATH.to_string()))
    }
}

impl FromStr for PagePath {
    type Err = String;

    /// `off`, or an absolute path of letters, digits and `-._~/` that is not `/`, not under
    /// `/cgi-bin/` (NICT's paths) and not `/.well-known/time`.
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "off" {
            return Ok(PagePath(None));
        }
        let expected = "expected `off` or a path such as /clock";
        let plain = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b));
        if !s.starts_with('/') || s.len() < 2 || s.len() > MAX_PATH || !plain {
            return Err(format!(
                "`{s}`: {expected} (letters, digits and -._~/, at most {MAX_PATH} characters; `/` is the WebNTP endpoint)"
            ));
        }
        if s.ends_with('/') || s.contains("//") || s.split('/').any(|seg| seg == "." || seg == "..")
        {
            return Err(format!(
                "`{s}`: {expected}, without a trailing `/`, `//`, `.` or `..`"
            ));
        }
        if s == "/cgi-bin" || s.starts_with("/cgi-bin/") || s == "/.well-known/time" {
            return Err(format!(
                "`{s}`: that path belongs to NICT's endpoints or Time over HTTPS; pick another, \
                 such as /clock"
            ));
        }
        Ok(PagePath(Some(s.to_string())))
    }
}

impl fmt::Display for PagePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_deref().unwrap_or("off"))
    }
}

/// A server the page also asks, as configured (`--clock-peer`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Peer {
    /// The URL as the page uses it: scheme, host, the port unless it is the scheme's default,
    /// the path.
    url: String,
    /// Its HTTP and WebSocket origins, for `connect-src`.
    origins: [String; 2],
}

/// Check a peer URL for the page: `http://`, `https://`, `ws://` or `wss://`, a host name or
/// IP address, an optional port and path, no query, no user name. The page asks it over
/// WebSocket first and over HTTP when that fails, whichever scheme is written. Returns the
/// URL as the page will use it.
pub fn parse_peer(url: &str) -> Result<String, String> {
    peer(url).map(|p| p.url)
}

fn peer(url: &str) -> Result<Peer, String> {
    let target = Target::parse(url).map_err(|e| e.to_string())?;
    let bad = |why: &str| Err(format!("clock peer `{url}`: {why}"));
    let host_ok = if target.host.contains(':') {
        target
            .host
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        target
            .host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    if !host_ok {
        return bad("the host must be a name of letters, digits, `-` and `.`, or an IP address");
    }
    if target.path_and_query.contains('?') {
        return bad("no query: the page adds its own timestamp");
    }
    if !target
        .path_and_query
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b))
    {
        return bad("the path may hold letters, digits and -._~/ only");
    }
    let (http, ws) = match target.scheme {
        Scheme::Http | Scheme::Ws => ("http", "ws"),
        Scheme::Https | Scheme::Wss => ("https", "wss"),
    };
    let authority = target.authority();
    Ok(Peer {
        url: target.to_string(),
        origins: [
            format!("{http}://{authority}"),
            format!("{ws}://{authority}"),
        ],
    })
}

/// The page, ready to serve.
pub(crate) struct ClockPage {
    /// Where it is served.
    path: String,
    /// Where its leap-second state is served: the path plus `/leap`.
    leap_path: String,
    /// The page with the peers written in.
    html: Bytes,
    /// Its Content-Security-Policy.
    csp: HeaderValue,
    /// Its entity tag: a digest of `html`.
    etag: HeaderValue,
}

impl ClockPage {
    /// Prepare the page served at `path` that also asks `peers` (URLs, see [`parse_peer`]).
    pub(crate) fn new(path: &str, peers: &[String]) -> Result<ClockPage, String> {
        let path = match path.parse::<PagePath>()?.0 {
            Some(p) => p,
            None => return Err("the clock page's path is `off`".to_string()),
        };
        if peers.len() > MAX_PEERS {
            return Err(format!(
                "{} clock peers: the page asks at most {MAX_PEERS}",
                peers.len()
            ));
        }
        let peers = peers
            .iter()
            .map(|p| peer(p))
            .collect::<Result<Vec<_>, _>>()?;
        let urls: Vec<&str> = peers.iter().map(|p| p.url.as_str()).collect();
        let html = ASSET.replacen(PEERS_SLOT, &format!("data-peers=\"{}\"", urls.join(" ")), 1);
        let mut connect = vec!["'self'".to_string()];
        for origin in peers.iter().flat_map(|p| p.origins.iter()) {
            if !connect.contains(origin) {
                connect.push(origin.clone());
            }
        }
        let csp = format!(
            "default-src 'none'; script-src '{}'; style-src '{}'; img-src data:; \
             connect-src {}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            inline_hash(&html, "script"),
            inline_hash(&html, "style"),
            connect.join(" ")
        );
        let digest = ring::digest::digest(&ring::digest::SHA256, html.as_bytes());
        let etag: String = digest.as_ref()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let value =
            |s: String| HeaderValue::try_from(s).map_err(|e| format!("clock page header: {e}"));
        Ok(ClockPage {
            leap_path: format!("{path}{LEAP_SUFFIX}"),
            path,
            html: Bytes::from(html),
            csp: value(csp)?,
            etag: value(format!("\"{etag}\""))?,
        })
    }

    /// Whether `path` is the page's or its leap state's.
    pub(crate) fn owns(&self, path: &str) -> bool {
        path == self.path || path == self.leap_path
    }

    /// The page, or `304 Not Modified` when the browser has it; or the leap-second state.
    /// For `GET` and `HEAD` of a path this page [`owns`](Self::owns), on a TLS connection
    /// or not.
    pub(crate) fn answer<H: Head>(
        &self,
        req: &H,
        shared: &Shared,
        busy: InFlight,
        cors: &Cors,
        tls: bool,
    ) -> Reply {
        if req.path() == self.leap_path {
            let now = shared.clock.realtime();
            let mut reply = Reply::new(
                StatusCode::OK,
                ReplyBody::fixed(leap_state(&shared.leap, now), busy),
            );
            reply.fixed(&JSON);
            reply.fixed(&NO_CACHE);
            reply.fixed(&NOSNIFF);
            cors.apply(&mut reply);
            return reply;
        }
        let fresh = req
            .header(&header::IF_NONE_MATCH)
            .is_some_and(|tags| matches_etag(tags, self.etag.as_bytes()));
        let mut reply = if fresh {
            Reply::new(StatusCode::NOT_MODIFIED, ReplyBody::empty(busy))
        } else {
            // A HEAD gets the length and not the body: from hyper, and from the fast path.
            let mut reply = Reply::new(StatusCode::OK, ReplyBody::fixed(self.html.clone(), busy));
            reply.fixed(&HTML);
            reply.insert(CSP.clone(), self.csp.clone());
            reply.fixed(&NOSNIFF);
            reply.fixed(&NO_REFERRER);
            if tls || req.header(&header::HOST).is_some_and(names_loopback) {
                reply.fixed(&COOP);
                reply.fixed(&COEP);
            }
            reply
        };
        reply.insert(header::ETAG, self.etag.clone());
        reply.fixed(&REVALIDATE);
        reply
    }
}

/// `'sha256-<base64>'` of the text between the first `<tag>` and `</tag>` of `html`: what
/// CSP wants to allow that inline element and nothing else.
fn inline_hash(html: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let inner = html
        .split_once(&open)
        .and_then(|(_, rest)| rest.split_once(&close))
        .map_or("", |(inner, _)| inner);
    let digest = ring::digest::digest(&ring::digest::SHA256, inner.as_bytes());
    use base64::Engine;
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    )
}

/// Whether a `Host` value names this machine (`localhost`, `127.0.0.1:8080`, `[::1]`):
/// browsers treat such a page as a secure context without TLS.
fn names_loopback(host: &[u8]) -> bool {
    let Ok(host) = std::str::from_utf8(host) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    is_loopback_host(name)
}

/// Whether an `If-None-Match` value names `etag` (weakly, as RFC 9110 13.1.2 says a GET
/// compares), or is `*`.
fn matches_etag(tags: &[u8], etag: &[u8]) -> bool {
    tags.split(|b| *b == b',').any(|t| {
        let t = t.trim_ascii();
        t == b"*" || t.strip_prefix(b"W/").unwrap_or(t) == etag
    })
}

/// The server's leap-second state at `now`, for the page:
/// `{"leap":36,"list":{"expired":true,"expires":1782604800,"updated":1736208000},"next":1483228800,"step":1,"tai_utc":37}`
/// (`leap`, `next`, `step` as in every WebNTP reply; `tai_utc` now; `list` and `tai_utc`
/// null without a list).
fn leap_state(store: &LeapStore, now: Timestamp) -> Vec<u8> {
    let info = store.info(now);
    let secs = now.unix_seconds();
    let list = store.current();
    let state = serde_json::json!({
        "leap": info.leap,
        "next": info.next_unix,
        "step": info.step,
        "tai_utc": list.as_ref().map(|l| l.tai_utc_at(secs)),
        "list": list.as_ref().map(|l| serde_json::json!({
            "updated": l.updated_unix(),
            "expires": l.expires_unix(),
            "expired": l.is_expired(secs),
        })),
    });
    let mut body = state.to_string().into_bytes();
    body.push(b'\n');
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_paths() {
        assert_eq!("/clock".parse(), Ok(PagePath(Some("/clock".into()))));
        assert_eq!(
            "/time/jst-clock".parse(),
            Ok(PagePath(Some("/time/jst-clock".into())))
        );
        assert_eq!("off".parse(), Ok(PagePath(None)));
        assert_eq!(PagePath::default().to_string(), DEFAULT_PATH);
        assert_eq!(PagePath(None).to_string(), "off");
        for bad in [
            "",
            "/",
            "clock",
            "/clock/",
            "//clock",
            "/a/../b",
            "/cgi-bin/clock",
            "/cgi-bin",
            "/.well-known/time",
            "/clock?x",
            "/clo ck",
            "/<x>",
            "/\"",
            "/%41",
        ] {
            assert!(bad.parse::<PagePath>().is_err(), "{bad:?}");
        }
        assert!(format!("/{}", "a".repeat(MAX_PATH))
            .parse::<PagePath>()
            .is_err());
    }

    #[test]
    fn peers_give_both_origins_and_nothing_that_could_break_out() {
        let p = peer("https://Time.Example.org/").unwrap();
        assert_eq!(p.url, "https://time.example.org/");
        assert_eq!(
            p.origins,
            ["https://time.example.org", "wss://time.example.org"]
        );
        let p = peer("ws://127.0.0.1:8123/ntp").unwrap();
        assert_eq!(p.url, "ws://127.0.0.1:8123/ntp");
        assert_eq!(p.origins, ["http://127.0.0.1:8123", "ws://127.0.0.1:8123"]);
        let p = peer("http://[::1]:8080").unwrap();
        assert_eq!(p.origins[1], "ws://[::1]:8080");
        for bad in [
            "ftp://a.example/",
            "a.example",
            "https://a.example/?x=1",
            "https://user@a.example/",
            "https://a.example/\"onload=",
            "https://a.example/a'b",
            "https://a.example/a;b",
            "https://a_b.example/",
            "https://a.example/<script>",
        ] {
            assert!(peer(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_page_carries_its_peers_and_a_policy_that_lets_nothing_else_in() {
        let page = ClockPage::new(
            "/clock",
            &["https://a.example/".into(), "ws://127.0.0.1:81/".into()],
        )
        .unwrap();
        let html = std::str::from_utf8(&page.html).unwrap();
        assert!(html.contains("data-peers=\"https://a.example/ ws://127.0.0.1:81/\""));
        let csp = page.csp.to_str().unwrap();
        assert!(
            csp.starts_with("default-src 'none'; script-src 'sha256-"),
            "{csp}"
        );
        assert!(
            csp.contains(
                "connect-src 'self' https://a.example wss://a.example http://127.0.0.1:81 \
                 ws://127.0.0.1:81;"
            ),
            "{csp}"
        );
        assert_eq!(page.leap_path, "/clock/leap");
        assert!(page.owns("/clock") && page.owns("/clock/leap"));
        assert!(!page.owns("/") && !page.owns("/clock/") && !page.owns("/clockx"));
        // Another configuration, another entity tag.
        let other = ClockPage::new("/clock", &[]).unwrap();
        assert_ne!(page.etag, other.etag);
        assert!(ClockPage::new("/clock", &vec!["http://a.example/".to_string(); 9]).is_err());
        assert!(ClockPage::new("off", &[]).is_err());
    }

    /// The asset is what the policy expects: one inline script and one inline style, each
    /// hashed; no external URL anywhere; no inline event handlers or style attributes, which
    /// the policy would block.
    #[test]
    fn the_asset_is_self_contained() {
        for tag in ["script", "style"] {
            assert_eq!(ASSET.matches(&format!("<{tag}>")).count(), 1, "{tag}");
            assert_eq!(ASSET.matches(&format!("<{tag}")).count(), 1, "{tag}");
            assert_eq!(ASSET.matches(&format!("</{tag}>")).count(), 1, "{tag}");
        }
        assert_eq!(ASSET.matches(PEERS_SLOT).count(), 1);
        for banned in [
            " src=",
            "@import",
            "url(",
            " style=",
            " onclick=",
            " onload=",
            "https://",
        ] {
            assert!(!ASSET.contains(banned), "{banned}");
        }
        // The one link is the empty icon (else browsers fetch /favicon.ico).
        assert_eq!(ASSET.matches("href=").count(), 1);
        assert!(ASSET.contains("<link rel=\"icon\" href=\"data:,\">"));
        // The one absolute URL is SVG's namespace, which loads nothing.
        assert_eq!(ASSET.matches("http://").count(), 1);
        assert!(ASSET.contains("'http://www.w3.org/2000/svg'"));
        // Small, and kept so: docs/operating.md states its size.
        assert!(ASSET.len() < 40 * 1024, "the page is {} bytes", ASSET.len());
        let hash = inline_hash(ASSET, "script");
        assert_eq!(hash.len(), "sha256-".len() + 44);
        assert_ne!(hash, inline_hash("", "script"));
    }

    #[test]
    fn loopback_hosts() {
        for yes in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:18301",
            "127.1.2.3",
            "[::1]:80",
            "[::1]",
            "a.localhost:1",
        ] {
            assert!(names_loopback(yes.as_bytes()), "{yes}");
        }
        for no in [
            "time.example.org",
            "192.168.1.2:80",
            "[2001:db8::1]:80",
            "localhost.example",
            "",
        ] {
            assert!(!names_loopback(no.as_bytes()), "{no}");
        }
        assert!(!names_loopback(b"\xff"));
    }

    #[test]
    fn if_none_match() {
        let etag = b"\"abc\"";
        assert!(matches_etag(b"\"abc\"", etag));
        assert!(matches_etag(b"W/\"abc\"", etag));
        assert!(matches_etag(b"\"x\", \"abc\"", etag));
        assert!(matches_etag(b"*", etag));
        assert!(!matches_etag(b"\"abcd\"", etag));
        assert!(!matches_etag(b"abc", etag));
    }

    #[test]
    fn leap_state_names_the_list_and_its_expiry() {
        let list = crate::leap::LeapList::parse(crate::leap::test_util::DEBIAN_LIST).unwrap();
        let store = LeapStore::from_list(list);
        let now = Timestamp::from_secs(1_795_270_670);
        let v: serde_json::Value = serde_json::from_slice(&leap_state(&store, now)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "leap": 36, "next": 1_483_228_800_i64, "step": 1, "tai_utc": 37,
                "list": {"updated": 1_751_846_400_i64, "expires": 1_782_604_800_i64, "expired": true},
            })
        );
        let v: serde_json::Value =
            serde_json::from_slice(&leap_state(&LeapStore::empty(), now)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"leap": 0, "next": 0, "step": 0, "tai_utc": null, "list": null})
        );
    }
}

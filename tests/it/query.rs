//! `webntpd query`, the real binary against the real server: the text lines users know from
//! go-webntp, `--json` for scripts, exit codes, `--cacert`, `--proxy`, and a known clock
//! error injected into the server process with libfaketime.

use std::process::Output;
use std::time::Duration;

use crate::common::*;

async fn query(args: &[&str]) -> Output {
    let out = tokio::process::Command::new(binary())
        .arg("query")
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("all_proxy")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("query finished within 60 s")
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `S.ssssss` with an optional `-`.
fn is_secs6(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    matches!(s.split_once('.'), Some((a, b)) if !a.is_empty() && a.bytes().all(|c| c.is_ascii_digit()) && b.len() == 6 && b.bytes().all(|c| c.is_ascii_digit()))
}

#[tokio::test]
async fn text_output_is_go_webntps_line_plus_jitter_and_samples() {
    let srv = ChildServer::start(&[]);
    let http = format!("http://{}/", srv.authority());
    let ws = format!("ws://{}/", srv.authority());
    let out = query(&["-n", "4", &http, &ws]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for (line, url) in lines.iter().zip([&http, &ws]) {
        // server URL, offset S, delay S, jitter S, samples K/N, error S
        let rest = line
            .strip_prefix(&format!("server {url}, offset "))
            .unwrap_or_else(|| panic!("{line}"));
        let parts: Vec<&str> = rest.split(", ").collect();
        assert_eq!(parts.len(), 5, "{line}");
        // The true offset (0) lies within the error bound.
        let error = parts[4].strip_prefix("error ").unwrap();
        assert!(is_secs6(error), "{line}");
        let off: f64 = parts[0].parse().unwrap();
        assert!(off.abs() <= error.parse::<f64>().unwrap() + 1e-6, "{line}");
        assert!(is_secs6(parts[0]), "{line}");
        assert!(is_secs6(parts[1].strip_prefix("delay ").unwrap()), "{line}");
        assert!(
            is_secs6(parts[2].strip_prefix("jitter ").unwrap()),
            "{line}"
        );
        assert!(
            parts[3].starts_with("samples ") && parts[3].ends_with("/4"),
            "{line}"
        );
        // Same host: the offset is a few microseconds at most.
        let offset: f64 = parts[0].parse().unwrap();
        assert!(offset.abs() < 0.005, "{line}");
    }
    // The corrected local time, the best server and its offset.
    let last = lines[2];
    assert!(
        last.contains(", server ") && last.contains(", offset "),
        "{last}"
    );
    assert!(
        last.as_bytes()[4] == b'-' && last.as_bytes()[10] == b' ',
        "{last}"
    );
}

#[tokio::test]
async fn json_output_has_one_object_per_server() {
    let srv = ChildServer::start(&[]);
    let http = format!("http://{}/", srv.authority());
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/", l.local_addr().unwrap())
    };
    let out = query(&["--json", "-n", "3", "--timeout", "2", &http, &dead]).await;
    // One server answered: success.
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let objects: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(objects.len(), 2);
    let ok = &objects[0];
    assert_eq!(ok["url"], http.as_str());
    assert!(ok["error"].is_null());
    assert!(ok["offset"].as_f64().unwrap().abs() < 0.005, "{ok}");
    assert!(ok["delay"].as_f64().unwrap() > 0.0, "{ok}");
    assert!(ok["jitter"].as_f64().unwrap() >= 0.0, "{ok}");
    assert_eq!(ok["samples"], 3);
    assert_eq!(ok["leap"], 36);
    assert_eq!(ok["next"], 1_483_228_800);
    assert_eq!(ok["step"], 1);
    let bad = &objects[1];
    assert_eq!(bad["url"], dead.as_str());
    assert!(bad["offset"].is_null());
    assert!(bad["error"].as_str().unwrap().contains("refused"), "{bad}");
    assert!(text(&out.stderr).contains(&dead), "{}", text(&out.stderr));
}

#[tokio::test]
async fn no_answer_exits_69_and_says_so() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/", l.local_addr().unwrap())
    };
    let out = query(&["-n", "2", &dead]).await;
    assert_eq!(out.status.code(), Some(69));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains(&dead) && err.contains("no server gave a usable answer"),
        "{err}"
    );
    // A bad URL is reported the same way.
    let out = query(&["ftp://example.org/"]).await;
    assert_eq!(out.status.code(), Some(69));
    assert!(text(&out.stderr).contains("ftp"), "{}", text(&out.stderr));
}

#[tokio::test]
async fn https_with_cacert_and_through_a_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "query");
    let ca = pki.paths().0;
    let srv = ChildServer::start_tls(&pki, &["--listen", "127.0.0.1:0"]);
    // Plain listeners are bound first.
    let plain = srv.urls[0].clone();
    let port = srv.urls[1]
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/');
    let https = format!("https://localhost:{port}/");
    let out = query(&["--json", "-n", "2", "--cacert", &ca, &https]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let without = query(&["-n", "2", &https]).await;
    assert_eq!(without.status.code(), Some(69));
    assert!(
        text(&without.stderr).contains("certificate"),
        "{}",
        text(&without.stderr)
    );

    let (proxy, tunnels) = start_connect_proxy().await;
    let out = query(&["-n", "2", "--proxy", &format!("http://{proxy}"), &plain]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(tunnels.load(std::sync::atomic::Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn a_server_whose_process_clock_is_shifted_is_measured_end_to_end() {
    // The real binary, its realtime clock 250 ms ahead (monotonic untouched), measured by the
    // real binary: the pipeline server -> client -> report, no Clock trait involved.
    let srv = ChildServer::start_shifted("+0.25");
    for scheme in ["http", "ws"] {
        let url = format!("{scheme}://{}/", srv.authority());
        let out = query(&["--json", "-n", "8", &url]).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let offset = v["offset"].as_f64().unwrap();
        let bound = v["error_bound"].as_f64().unwrap();
        assert!(
            (offset - 0.25).abs() <= bound,
            "{scheme}: measured {offset} s +- {bound} s, injected 0.25 s"
        );
    }
}

/// A webntpd server in this process whose clock is `shift_ns` off the system's.
async fn shifted(shift_ns: i64) -> (TestServer, String) {
    use std::sync::Arc;
    use webntpd::clock::{ShiftedClock, SystemClock};
    let clock = Arc::new(ShiftedClock::new(SystemClock::shared(), shift_ns));
    let srv = start_with(
        config(),
        clock,
        Arc::new(webntpd::leap::store::LeapStore::empty()),
    )
    .await;
    let url = format!("http://{}/", srv.addr);
    (srv, url)
}

/// A chrony-style SOCK socket in `dir`; `received` drains what came.
struct Sock(std::os::unix::net::UnixDatagram, String);

impl Sock {
    fn bind(dir: &std::path::Path) -> Sock {
        let path = dir.join("chrony.sock");
        let s = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        s.set_nonblocking(true).unwrap();
        Sock(s, path.to_str().unwrap().to_string())
    }

    /// The offsets of every sample received so far.
    fn received(&self) -> Vec<f64> {
        let mut buf = [0u8; 64];
        let mut out = Vec::new();
        while let Ok(40) = self.0.recv(&mut buf) {
            out.push(f64::from_ne_bytes(buf[16..24].try_into().unwrap()));
        }
        out
    }
}

const YEAR_NS: i64 = 365 * 86_400 * 1_000_000_000;

#[tokio::test]
async fn query_writes_nothing_the_daemon_would_not() {
    // The sanity rules and selection apply to `query --sock/--shm` as to the daemon: a lone
    // server 50 years back (exit 69) or 73 ahead (65) is refused, an outvoted one is named and
    // not written, two that disagree write nothing.
    let dir = tempfile::tempdir().unwrap();
    let sock = Sock::bind(dir.path());
    let (_back, back) = shifted(-50 * YEAR_NS).await;
    let (_ahead, ahead) = shifted(73 * YEAR_NS).await;
    let (_second, second) = shifted(1_000_000_000).await;
    let honest: Vec<(TestServer, String)> = vec![shifted(0).await, shifted(0).await];

    // A time before this build is refused at the exchange: no usable answer.
    let out = query(&["-n", "3", "--sock", &sock.1, &back]).await;
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{err}");
    assert!(err.contains("before this build"), "{err}");
    assert!(err.contains("no server gave a usable answer"), "{err}");
    assert!(err.contains("one server decides alone"), "{err}");

    let out = query(&["-n", "3", "--sock", &sock.1, &ahead]).await;
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{err}");
    assert!(
        err.contains("nothing written") && err.contains("panic threshold"),
        "{err}"
    );
    assert_eq!(sock.received(), Vec::<f64>::new(), "no sample written");

    // --allow-step lets a far-off first sample through (ntpd -g), loudly; the floor stays.
    let out = query(&["-n", "3", "--allow-step", "--sock", &sock.1, &ahead]).await;
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("--allow-step was given"), "{err}");
    let got = sock.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        (got[0] - (73 * YEAR_NS) as f64 / 1e9).abs() < 0.01,
        "{got:?}"
    );
    let out = query(&["-n", "3", "--allow-step", "--sock", &sock.1, &back]).await;
    assert_eq!(out.status.code(), Some(69), "{}", text(&out.stderr));
    assert!(sock.received().is_empty());

    // One liar (+1 s) among three: named, outvoted, the honest offset written.
    let out = query(&[
        "-n",
        "3",
        "--sock",
        &sock.1,
        &honest[0].1,
        &second,
        &honest[1].1,
    ])
    .await;
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("{second}: falseticker")),
        "the liar is named: {err}"
    );
    let got = sock.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].abs() < 0.001,
        "the honest offset, not the liar's: {got:?}"
    );

    // Two that disagree: no majority, nothing written.
    let out = query(&["-n", "3", "--sock", &sock.1, &honest[0].1, &second]).await;
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{err}");
    assert!(err.contains("disagree"), "{err}");
    assert!(sock.received().is_empty());
}

//! The metrics end to end: `webntpd run` with `[metrics]` polling a server whose clock
//! libfaketime shifts by +0.25 s and a source that refuses connections, and `webntpd serve
//! --metrics` answering known requests; every scrape parsed by Python's prometheus_client
//! (Debian's python3-prometheus-client; `.ci/run` installs it), the parser Prometheus'
//! own client library ships, and its names, types and values checked.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{binary, get, request, ChildServer, Daemon};
use nix::sys::signal::Signal;
use serde_json::Value;

/// Parses the text on stdin (OpenMetrics with `openmetrics`, else the Prometheus text
/// format) and prints its families as JSON: name -> {type, samples: [[name, labels, value]]}.
const PARSE: &str = r#"
import json, math, sys
kind = sys.argv[1]
if kind == "openmetrics":
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
else:
    from prometheus_client.parser import text_string_to_metric_families
out = {}
for f in text_string_to_metric_families(sys.stdin.read()):
    value = lambda v: None if math.isinf(v) else v
    out[f.name] = {"type": f.type, "unit": f.unit,
                   "samples": [[s.name, s.labels, value(s.value)] for s in f.samples]}
print(json.dumps(out))
"#;

/// The families of `text`, parsed by prometheus_client.
fn parse(text: &str, openmetrics: bool) -> Value {
    let python = "/usr/bin/python3";
    let present = Command::new(python)
        .args(["-c", "import prometheus_client"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        present,
        "these tests parse the metrics with Python's prometheus_client: apt-get install \
         python3-prometheus-client (or run .ci/run, which does)"
    );
    let mut child = Command::new(python)
        .args([
            "-c",
            PARSE,
            if openmetrics {
                "openmetrics"
            } else {
                "prometheus"
            },
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The value of the sample `name` (in whichever family) whose labels include `labels`.
fn sample(families: &Value, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    families
        .as_object()?
        .values()
        .flat_map(|f| f["samples"].as_array().into_iter().flatten())
        .find(|s| s[0] == name && labels.iter().all(|(k, v)| s[1][*k].as_str() == Some(*v)))
        .and_then(|s| s[2].as_f64())
}

/// The family's type, as the parser read it.
fn kind<'a>(families: &'a Value, family: &str) -> &'a str {
    families[family]["type"].as_str().unwrap_or("(absent)")
}

/// `GET /metrics` on `addr`, as Prometheus asks (OpenMetrics first): (status, content type,
/// body).
async fn scrape(addr: SocketAddr) -> (u16, String, String) {
    let r = request(
        addr,
        "GET",
        "/metrics",
        "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n",
    )
    .await;
    let content_type = r.header("content-type").unwrap_or_default().to_owned();
    (r.status, content_type, r.text())
}

/// The address the metrics endpoint said it listens on, from the log.
fn metrics_addr(log: impl Fn() -> String) -> SocketAddr {
    crate::common::wait_for(
        Duration::from_secs(10),
        "the metrics endpoint",
        &log,
        || {
            let log = log();
            let line = log.lines().find(|l| l.contains("metrics on http://"))?;
            let addr = line.split("http://").nth(1)?.trim_end_matches("/metrics");
            addr.trim().parse().ok()
        },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_exports_its_sources_selection_outputs_and_server() {
    let dir = tempfile::tempdir().unwrap();
    let shifted = ChildServer::start_shifted("+0.25");
    let good = format!("http://{}/", shifted.authority());
    let refused = "http://127.0.0.1:1/".to_owned();
    let sock = dir.path().join("chrony.sock");
    let _chrony = std::os::unix::net::UnixDatagram::bind(&sock).unwrap();
    let source = |url: &str| {
        format!(
            "[[source]]\nurl = \"{url}\"\npoll = \"2s\"\npoll_min = \"2s\"\npoll_max = \"4s\"\n\
             samples = 2\ntimeout = \"300ms\"\n"
        )
    };
    let config = format!(
        "{}{}[[output]]\ntype = \"sock\"\npath = \"{}\"\n\n[server]\nlisten = \
         [\"127.0.0.1:0\"]\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
        source(&good),
        source(&refused),
        sock.display()
    );
    let daemon = Daemon::start(dir.path(), &config, &[]);
    let status = daemon.wait_for(
        Duration::from_secs(20),
        "both sources polled twice, a combined offset written",
        |s| {
            s["sources"]
                .as_array()
                .is_some_and(|a| a.iter().all(|x| x["polls"].as_u64() >= Some(2)))
                && !s["combined"].is_null()
        },
    );
    let addr = metrics_addr(|| daemon.log_text());
    let server: SocketAddr = status["server"][0]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    assert_eq!(get(server, "/?1489217288.328757").await.status, 200);

    let (code, content_type, text) = scrape(addr).await;
    assert_eq!(code, 200, "{text}");
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    let m = parse(&text, true);
    let good_labels = [("url", good.as_str()), ("mode", "json")];
    let refused_labels = [("url", refused.as_str()), ("mode", "json")];

    assert_eq!(kind(&m, "webntpd_source_offset_seconds"), "gauge");
    assert_eq!(m["webntpd_source_offset_seconds"]["unit"], "seconds");
    let offset = sample(&m, "webntpd_source_offset_seconds", &good_labels)
        .unwrap_or_else(|| panic!("no offset for {good}:\n{text}"));
    assert!((offset - 0.25).abs() < 0.02, "offset {offset}");
    let combined = sample(&m, "webntpd_combined_offset_seconds", &[]).unwrap();
    assert!((combined - 0.25).abs() < 0.02, "combined {combined}");
    assert_eq!(sample(&m, "webntpd_combined_survivors", &[]), Some(1.0));
    for (labels, state) in [(&good_labels, "selected"), (&refused_labels, "unreachable")] {
        let mut with_state = labels.to_vec();
        with_state.push(("state", state));
        assert_eq!(
            sample(&m, "webntpd_source_state", &with_state),
            Some(1.0),
            "{state}:\n{text}"
        );
    }
    assert_eq!(
        sample(&m, "webntpd_source_reach", &refused_labels),
        Some(0.0)
    );
    // The refused source has no measurement: no offset series at all, not a zero.
    assert_eq!(
        sample(&m, "webntpd_source_offset_seconds", &refused_labels),
        None
    );
    assert_eq!(kind(&m, "webntpd_source_failures"), "counter");
    let mut connect = refused_labels.to_vec();
    connect.push(("reason", "connect"));
    let failures = sample(&m, "webntpd_source_failures_total", &connect);
    assert!(failures >= Some(2.0), "{failures:?}:\n{text}");
    let polls = sample(&m, "webntpd_source_polls_total", &good_labels);
    assert!(polls >= Some(2.0), "{polls:?}");
    let last_success = sample(
        &m,
        "webntpd_source_last_success_timestamp_seconds",
        &good_labels,
    )
    .unwrap();
    assert!(
        (last_success - crate::common::unix_now()).abs() < 10.0,
        "{last_success}"
    );
    let writes = m["webntpd_output_writes"]["samples"][0][2].as_f64();
    assert!(writes >= Some(1.0), "{text}");
    assert_eq!(kind(&m, "webntpd_output_writes"), "counter");

    // The built-in server's families are there, with the request just made.
    assert_eq!(kind(&m, "webntpd_server_requests"), "counter");
    let json = sample(&m, "webntpd_server_requests_total", &[("kind", "json")]);
    assert!(json >= Some(1.0), "{text}");
    assert_eq!(
        kind(&m, "webntpd_server_reply_latency_seconds"),
        "histogram"
    );
    assert!(
        sample(&m, "webntpd_server_leap_list_expiry_timestamp_seconds", &[])
            .is_some_and(|e| e > 1.7e9),
        "{text}"
    );
    assert_eq!(kind(&m, "webntpd_build"), "info");

    // A reload is counted, with its result.
    daemon.signal(Signal::SIGHUP);
    let context = || daemon.log_text();
    crate::common::wait_for(
        Duration::from_secs(10),
        "the reload counted",
        context,
        || {
            let text = std::process::Command::new(binary())
                .args(["status", "--format", "prometheus", "-c"])
                .arg(&daemon.config)
                .output()
                .ok()?;
            let text = String::from_utf8(text.stdout).ok()?;
            // The textfile collector's format: Prometheus text, the same families.
            let p = parse(&text, false);
            (kind(&p, "webntpd_source_offset_seconds") == "gauge"
                && sample(&p, "webntpd_reloads_total", &[("result", "ok")]) == Some(1.0)
                && sample(&p, "webntpd_reload_success", &[]) == Some(1.0))
            .then_some(())
        },
    );

    // Only GET /metrics.
    assert_eq!(get(addr, "/").await.status, 404);
    assert_eq!(request(addr, "POST", "/metrics", "").await.status, 405);
    let plain = get(addr, "/metrics").await;
    assert_eq!(
        plain.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    parse(&plain.text(), false);
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_exports_requests_by_kind_refusals_and_latency() {
    let server = ChildServer::start(&["--metrics", "127.0.0.1:0"]);
    let addr = metrics_addr(|| server.log_text());
    let web: SocketAddr = server.authority().parse().unwrap();
    assert_eq!(get(web, "/?1489217288.328757").await.status, 200);
    assert_eq!(get(web, "/?1489217288.328757").await.status, 200);
    assert_eq!(get(web, "/?callback=cb").await.status, 200);
    assert_eq!(get(web, "/cgi-bin/json").await.status, 200);
    assert_eq!(
        request(web, "HEAD", "/.well-known/time", "").await.status,
        204
    );
    assert_eq!(request(web, "DELETE", "/", "").await.status, 405);
    assert_eq!(get(web, "/?callback=a(b").await.status, 400);

    let (code, _, text) = scrape(addr).await;
    assert_eq!(code, 200);
    let m = parse(&text, true);
    let mut counts = BTreeMap::new();
    for kind in ["json", "jsonp", "nict", "toh", "head", "ws"] {
        counts.insert(
            kind,
            sample(&m, "webntpd_server_requests_total", &[("kind", kind)]).unwrap_or(-1.0),
        );
    }
    let want: BTreeMap<_, _> = [
        ("json", 2.0),
        ("jsonp", 1.0),
        ("nict", 1.0),
        ("toh", 1.0),
        ("head", 0.0),
        ("ws", 0.0),
    ]
    .into_iter()
    .collect();
    assert_eq!(counts, want, "{text}");
    for (reason, n) in [("method", 1.0), ("query", 1.0), ("host", 0.0)] {
        assert_eq!(
            sample(&m, "webntpd_server_rejected_total", &[("reason", reason)]),
            Some(n),
            "{reason}: {text}"
        );
    }
    // Every stamped reply is in the histogram: four JSON bodies and the HEAD's X-HTTPSTIME.
    let count = sample(&m, "webntpd_server_reply_latency_seconds_count", &[]);
    assert_eq!(count, Some(5.0), "{text}");
    let inf = sample(
        &m,
        "webntpd_server_reply_latency_seconds_bucket",
        &[("le", "+Inf")],
    );
    assert_eq!(inf, Some(5.0), "{text}");
    assert_eq!(
        sample(&m, "webntpd_server_connections_max", &[]),
        Some(10_000.0)
    );
    // No daemon, no daemon families.
    assert!(!text.contains("webntpd_source_"), "{text}");
}

#[test]
fn a_metrics_address_in_use_fails_serve_with_the_fix() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--metrics", &addr])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{err}");
    assert!(
        err.contains(&format!("cannot listen on {addr}")) && err.contains("choose another port"),
        "{err}"
    );
}

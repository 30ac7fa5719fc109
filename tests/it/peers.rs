//! The real `webntpd` binary driven by clients nobody here wrote: curl (HTTP/1.1, HTTP/2,
//! HTTPS with ALPN) and Python's `websockets` library (ws:// and wss://), plus the process
//! life cycle: SIGTERM closes WebSockets with 1001, exits 0, and releases the port.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::*;
use nix::sys::signal::Signal;
use webntpd::sync::Timestamp;

const SUBPROTOCOL: &str = "webntp.shogo82148.com";

// ---------------------------------------------------------------------------------------
// Helpers.

/// Seconds since the epoch on this machine's clock.
fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// What curl printed for one request.
#[derive(Debug)]
struct CurlReply {
    status: u16,
    /// (lower-case name, value), in order.
    headers: Vec<(String, String)>,
    body: String,
    /// `%{http_version}`: "1.1" or "2".
    http_version: String,
}

impl CurlReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

const VERSION_MARK: &str = "\n--curl-http-version:";

/// Run curl with `args` (plus `-sS -i --max-time 5`) and parse what it printed.
fn curl_run(args: &[&str]) -> CurlReply {
    let out = Command::new(curl())
        .args(["-sS", "-i", "--max-time", "5", "--globoff"])
        .args(["-w", &format!("{VERSION_MARK}%{{http_version}}")])
        .args(args)
        .output()
        .expect("curl runs");
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (response, version) = stdout
        .rsplit_once(VERSION_MARK)
        .unwrap_or_else(|| panic!("no version mark in {stdout:?}"));
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {response:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line {status_line:?}"));
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    CurlReply {
        status,
        headers,
        body: body.to_string(),
        http_version: version.trim().to_string(),
    }
}

/// Check one WebNTP reply object (without its trailing newline) against a live server
/// clock: valid JSON, go-webntp's field order, six decimals, `id` and `it` as expected,
/// st == time, rt <= st, and st within a few seconds of this machine's clock.
fn check_live_reply(object: &str, id: &str, it: &str) {
    let v: serde_json::Value = serde_json::from_str(object).expect("the reply is JSON");
    assert_eq!(v["id"].as_str(), Some(id), "{object}");
    let f = fields(object);
    let names: Vec<&str> = f.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["id", "it", "st", "time", "leap", "next", "step", "rt"],
        "{object}"
    );
    let get = |name: &str| f.iter().find(|(k, _)| k == name).unwrap().1.as_str();
    for name in ["it", "st", "time", "next", "rt"] {
        let frac = get(name).split_once('.').map(|(_, d)| d).unwrap_or("");
        assert!(
            frac.len() == 6 && frac.bytes().all(|b| b.is_ascii_digit()),
            "{name} has six decimals: {object}"
        );
    }
    for name in ["leap", "step"] {
        assert!(
            get(name).parse::<i64>().is_ok(),
            "{name} is an integer: {object}"
        );
    }
    assert_eq!(get("it"), it, "{object}");
    assert_eq!(get("st"), get("time"), "{object}");
    let st = Timestamp::parse(get("st")).unwrap();
    let rt = Timestamp::parse(get("rt")).unwrap();
    assert!(rt <= st, "rt <= st: {object}");
    let now = now_secs();
    assert!(
        (st.as_secs_f64() - now).abs() < 5.0,
        "st {st} is the server's (this machine's) clock, now {now}"
    );
}

/// A Python process running an inline script, its stdout lines delivered as they come.
struct Python {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Python {
    fn start(script: &str, args: &[&str]) -> Python {
        let mut child = Command::new(python_with_websockets())
            .arg("-c")
            .arg(script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python starts");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => {
                        if tx.send(l).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Python {
            child,
            lines,
            stderr,
        }
    }

    /// The next JSON line the script printed, within `within`.
    fn next(&mut self, within: Duration) -> serde_json::Value {
        match self.lines.recv_timeout(within) {
            Ok(line) => serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("python printed {line:?}, not JSON: {e}")),
            Err(e) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stderr = std::mem::replace(&mut self.stderr, std::thread::spawn(String::new));
                panic!(
                    "no line from python within {within:?} ({e}); it said:\n{}",
                    stderr.join().unwrap_or_default()
                );
            }
        }
    }

    /// Wait for the script to finish (within `within`), requiring success.
    fn finish(mut self, within: Duration) {
        let t0 = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let stderr = std::mem::replace(&mut self.stderr, std::thread::spawn(String::new));
                let stderr = stderr.join().unwrap_or_default();
                assert!(status.success(), "python failed ({status}):\n{stderr}");
                let extra: Vec<String> = self.lines.try_iter().collect();
                assert!(extra.is_empty(), "python printed more: {extra:#?}");
                return;
            }
            assert!(
                t0.elapsed() < within,
                "python did not finish within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Python helpers shared by the scripts: `out(**fields)` prints one JSON line, and
/// `until_closed(ws)` reads until the server closes, returning the close frame it sent.
const PY_PRELUDE: &str = r#"
import asyncio, json, ssl, sys
import websockets

def out(**kw):
    print(json.dumps(kw), flush=True)

async def until_closed(ws):
    try:
        while True:
            m = await asyncio.wait_for(ws.recv(), 5)
            out(event="unexpected", data=m if isinstance(m, str) else m.hex())
    except websockets.ConnectionClosed as e:
        if e.rcvd is None:
            return {"code": None, "reason": None}
        return {"code": e.rcvd.code, "reason": e.rcvd.reason}

def connect(uri, **kw):
    return websockets.connect(uri, subprotocols=["webntp.shogo82148.com"],
                              open_timeout=5, close_timeout=2, **kw)
"#;

/// The 100 timestamps the sessions send.
fn hundred_timestamps() -> Vec<String> {
    (0..100u64)
        .map(|i| format!("{}.{:06}", 1_558_915_619 + i, (i * 7919) % 1_000_000))
        .collect()
}

// ---------------------------------------------------------------------------------------
// curl over plain HTTP.

#[test]
fn curl_gets_the_json_reply_with_its_headers() {
    let srv = ChildServer::start(&[]);
    let auth = srv.authority();
    let r = curl_run(&[&format!("http://{auth}/?1489217288.328757")]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.http_version, "1.1");
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(r.header("cache-control"), Some("no-cache, no-store"));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let date = r.header("date").expect("a Date header");
    assert!(date.ends_with(" GMT"), "{date}");
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    let object = r.body.strip_suffix('\n').expect("a trailing newline");
    assert!(!object.contains('\n'), "one line: {:?}", r.body);
    // `id` is the Host header curl sent.
    check_live_reply(object, &auth, "1489217288.328757");

    // Rounding with carry, and no timestamp at all (it = 0, as go-webntp).
    let r = curl_run(&[&format!("http://{auth}/?1489217288.9999996")]);
    check_live_reply(r.body.trim_end(), &auth, "1489217289.000000");
    let r = curl_run(&[&format!("http://{auth}/")]);
    check_live_reply(r.body.trim_end(), &auth, "0.000000");
}

#[test]
fn curl_reply_id_is_the_configured_id() {
    let srv = ChildServer::start(&["--id", "time.example"]);
    let r = curl_run(&[&format!("http://{}/?1.5", srv.authority())]);
    assert_eq!(r.status, 200);
    check_live_reply(r.body.trim_end(), "time.example", "1.500000");
}

#[test]
fn curl_head_well_known_time_has_x_httpstime() {
    let srv = ChildServer::start(&[]);
    let before = now_secs();
    let r = curl_run(&[
        "-I",
        &format!("http://{}/.well-known/time", srv.authority()),
    ]);
    let after = now_secs();
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.body, "");
    let stamp = r.header("x-httpstime").expect("X-HTTPSTIME");
    let (secs, frac) = stamp.split_once('.').expect("a decimal point");
    assert!(
        !secs.is_empty() && secs.bytes().all(|b| b.is_ascii_digit()),
        "{stamp}"
    );
    assert!(
        frac.len() == 6 && frac.bytes().all(|b| b.is_ascii_digit()),
        "{stamp}"
    );
    let t = Timestamp::parse(stamp).unwrap().as_secs_f64();
    assert!(
        t >= before - 1.0 && t <= after + 1.0,
        "{stamp} not in [{before}, {after}]"
    );
}

#[test]
fn curl_gets_jsonp_from_cgi_bin_jsont_and_callback() {
    let srv = ChildServer::start(&[]);
    let auth = srv.authority();
    let r = curl_run(&[&format!("http://{auth}/cgi-bin/jsont?1489217288.328757")]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("content-type"),
        Some("application/javascript; charset=utf-8")
    );
    // NICT's layout (tests/it/http.rs checks it byte for byte on a frozen clock).
    let object = r
        .body
        .strip_prefix("jsont( ")
        .and_then(|b| b.strip_suffix(" )"))
        .unwrap_or_else(|| panic!("not jsont( {{...}} ): {:?}", r.body));
    let v: serde_json::Value = serde_json::from_str(object).expect("the object is JSON");
    assert_eq!(v["id"].as_str(), Some(auth.as_str()), "{object}");
    assert_eq!(object.lines().count(), 6, "one field per line: {object}");
    assert!(object.contains("\n\"it\": 1489217288.329,\n"), "{object}");
    let st = v["st"].as_f64().expect("st is a number");
    assert!(
        (st - now_secs()).abs() < 5.0,
        "st is the server's time: {object}"
    );

    let r = curl_run(&[&format!("http://{auth}/?callback=app.onTime&1.5")]);
    assert_eq!(r.status, 200, "{r:?}");
    let object = r
        .body
        .strip_prefix("app.onTime(")
        .and_then(|b| b.strip_suffix(");\n"))
        .unwrap_or_else(|| panic!("not app.onTime({{...}});\\n: {:?}", r.body));
    check_live_reply(object, &auth, "1.500000");
}

#[test]
fn curl_hostile_callback_gets_400_json_error() {
    let srv = ChildServer::start(&[]);
    let auth = srv.authority();
    for query in [
        "callback=alert(1)",
        "callback=alert(1)%3B//&1.5",
        "callback=%3Cscript%3E",
        "callback=a.b(c)",
    ] {
        let r = curl_run(&[&format!("http://{auth}/?{query}")]);
        assert_eq!(r.status, 400, "{query}: {r:?}");
        assert_eq!(
            r.header("content-type"),
            Some("application/json; charset=utf-8"),
            "{query}"
        );
        let v: serde_json::Value = serde_json::from_str(&r.body).expect("a JSON error body");
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{query}: {}",
            r.body
        );
        assert!(!r.body.contains("alert("), "{query}: reflected: {}", r.body);
        assert!(!r.body.contains('<'), "{query}: reflected: {}", r.body);
    }
}

#[test]
fn curl_gets_the_nict_jst_page() {
    let srv = ChildServer::start(&[]);
    let auth = srv.authority();
    let before = now_secs();
    let r = curl_run(&[&format!("http://{auth}/cgi-bin/jst")]);
    let after = now_secs();
    assert_eq!(r.status, 200, "{r:?}");
    let lines: Vec<&str> = r.body.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == "<BODY>")
        .unwrap_or_else(|| panic!("no <BODY> line: {:?}", r.body));
    let value = lines[at + 1];
    let (secs, frac) = value.split_once('.').expect("a decimal point");
    assert!(
        !secs.is_empty() && secs.bytes().all(|b| b.is_ascii_digit()),
        "{value}"
    );
    assert!(
        frac.len() == 3 && frac.bytes().all(|b| b.is_ascii_digit()),
        "three decimals: {value}"
    );
    let t: f64 = value.parse().unwrap();
    assert!(
        t >= before - 1.0 && t <= after + 1.0,
        "{value} not in [{before}, {after}]"
    );
    assert_eq!(
        r.body,
        format!("<HTML>\n<HEAD><TITLE>{auth}</TITLE></HEAD>\n<BODY>\n{value}\n</BODY>\n</HTML>\n")
    );
}

#[test]
fn curl_http2_prior_knowledge() {
    let srv = ChildServer::start(&[]);
    let auth = srv.authority();
    let r = curl_run(&[
        "--http2-prior-knowledge",
        &format!("http://{auth}/?1489217288.328757"),
    ]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.http_version, "2");
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    // Over HTTP/2 the id comes from :authority.
    check_live_reply(
        r.body.strip_suffix('\n').expect("a trailing newline"),
        &auth,
        "1489217288.328757",
    );
}

// ---------------------------------------------------------------------------------------
// Python websockets over ws://.

const PY_SESSION: &str = r#"
async def main():
    uri = sys.argv[1]
    sent = ["%d.%06d" % (1558915619 + i, (i * 7919) % 1000000) for i in range(100)]
    async with connect(uri) as ws:
        out(event="open", subprotocol=ws.subprotocol)
        for s in sent:
            await ws.send(s)
        for s in sent:
            out(event="reply", reply=await asyncio.wait_for(ws.recv(), 5))
    for case, msg in [("oversize", "1" * 2000), ("hello", "hello")]:
        async with connect(uri) as ws:
            await ws.send(msg)
            out(event="closed", case=case, **(await until_closed(ws)))

asyncio.run(asyncio.wait_for(main(), 20))
"#;

#[test]
fn python_websockets_session() {
    let srv = ChildServer::start(&[]);
    let auth = srv.authority();
    let mut py = Python::start(
        &format!("{PY_PRELUDE}{PY_SESSION}"),
        &[&format!("ws://{auth}/")],
    );
    let open = py.next(Duration::from_secs(8));
    assert_eq!(open["event"], "open", "{open}");
    assert_eq!(open["subprotocol"], SUBPROTOCOL, "{open}");
    for ts in hundred_timestamps() {
        let line = py.next(Duration::from_secs(5));
        assert_eq!(line["event"], "reply", "{line}");
        let reply = line["reply"].as_str().unwrap();
        let object = reply
            .strip_suffix('\n')
            .unwrap_or_else(|| panic!("reply ends with a newline: {reply:?}"));
        check_live_reply(object, &auth, &ts);
    }
    let oversize = py.next(Duration::from_secs(5));
    assert_eq!(oversize["case"], "oversize", "{oversize}");
    assert_eq!(oversize["code"], 1009, "{oversize}");
    let hello = py.next(Duration::from_secs(5));
    assert_eq!(hello["case"], "hello", "{hello}");
    assert_eq!(hello["code"], 1007, "{hello}");
    assert!(
        hello["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{hello}"
    );
    py.finish(Duration::from_secs(5));
}

const PY_WAIT_FOR_CLOSE: &str = r#"
async def main():
    async with connect(sys.argv[1]) as ws:
        await ws.send("1558915619.944235")
        out(event="reply", subprotocol=ws.subprotocol,
            reply=await asyncio.wait_for(ws.recv(), 5))
        closed = await until_closed(ws)
        out(event="closed", **closed)

asyncio.run(asyncio.wait_for(main(), 20))
"#;

#[test]
fn sigterm_closes_python_websocket_with_1001_and_exits_0() {
    let mut srv = ChildServer::start(&["--shutdown-timeout", "10s"]);
    let auth = srv.authority();
    let mut py = Python::start(
        &format!("{PY_PRELUDE}{PY_WAIT_FOR_CLOSE}"),
        &[&format!("ws://{auth}/")],
    );
    let first = py.next(Duration::from_secs(8));
    assert_eq!(first["event"], "reply", "{first}");
    check_live_reply(
        first["reply"].as_str().unwrap().trim_end(),
        &auth,
        "1558915619.944235",
    );
    let t0 = Instant::now();
    srv.signal(Signal::SIGTERM);
    let closed = py.next(Duration::from_secs(5));
    assert_eq!(closed["event"], "closed", "{closed}");
    assert_eq!(closed["code"], 1001, "{closed}");
    // The shutdown timeout is 10 s: exiting within 5 s means the server did not wait for it.
    let code = srv.wait_exit(Duration::from_secs(5));
    assert_eq!(code, 0, "exit code; log:\n{}", srv.log_text());
    assert!(t0.elapsed() < Duration::from_secs(5));
    py.finish(Duration::from_secs(5));
}

// ---------------------------------------------------------------------------------------
// TLS: curl (HTTP/1.1 and HTTP/2 by ALPN) and Python over wss://.

const PY_WSS: &str = r#"
async def main():
    ctx = ssl.create_default_context(cafile=sys.argv[2])
    async with connect(sys.argv[1], ssl=ctx) as ws:
        await ws.send("1558915619.944235")
        out(event="reply", subprotocol=ws.subprotocol,
            reply=await asyncio.wait_for(ws.recv(), 5))

asyncio.run(asyncio.wait_for(main(), 20))
"#;

#[test]
fn tls_serves_https_h1_h2_and_wss() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "peers");
    let ca = pki.paths().0;
    let srv = ChildServer::start_tls(&pki, &[]);
    let url = &srv.urls[0];
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let auth = srv.authority();
    let port = auth.rsplit_once(':').unwrap().1;
    let resolve = format!("localhost:{port}:127.0.0.1");
    let https = format!("https://localhost:{port}/?1489217288.328757");
    let name = format!("localhost:{port}");

    let r = curl_run(&["--cacert", &ca, "--resolve", &resolve, "--http1.1", &https]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.http_version, "1.1");
    check_live_reply(r.body.trim_end(), &name, "1489217288.328757");

    let r = curl_run(&["--cacert", &ca, "--resolve", &resolve, "--http2", &https]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.http_version, "2", "ALPN chose h2");
    check_live_reply(r.body.trim_end(), &name, "1489217288.328757");

    // Without the CA, curl must refuse the certificate: the trust above is real.
    let out = Command::new(curl())
        .args(["-sS", "--max-time", "5", "--resolve", &resolve, &https])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "curl trusted a certificate from an unknown CA"
    );

    let mut py = Python::start(
        &format!("{PY_PRELUDE}{PY_WSS}"),
        &[&format!("wss://{auth}/"), &ca],
    );
    let line = py.next(Duration::from_secs(8));
    assert_eq!(line["event"], "reply", "{line}");
    assert_eq!(line["subprotocol"], SUBPROTOCOL, "{line}");
    check_live_reply(
        line["reply"].as_str().unwrap().trim_end(),
        &auth,
        "1558915619.944235",
    );
    py.finish(Duration::from_secs(5));
}

// ---------------------------------------------------------------------------------------
// Process life cycle.

#[test]
fn sigterm_exits_0_and_releases_the_port() {
    let mut first = ChildServer::start(&[]);
    let auth = first.authority();
    // A keep-alive connection the server has to close itself at shutdown (which leaves a
    // TIME_WAIT socket on the server's port: rebinding needs SO_REUSEADDR).
    let mut conn = std::net::TcpStream::connect(&auth).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(format!("GET /?1.5 HTTP/1.1\r\nHost: {auth}\r\n\r\n").as_bytes())
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = conn.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200 "),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );

    first.signal(Signal::SIGTERM);
    let code = first.wait_exit(Duration::from_secs(5));
    assert_eq!(code, 0, "exit code; log:\n{}", first.log_text());
    // The server closed the idle keep-alive connection.
    let n = conn.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(&buf[..n]));
    drop(conn);

    let second = ChildServer::start(&["--listen", &auth]);
    assert_eq!(second.authority(), auth);
    let r = curl_run(&[&format!("http://{auth}/?1.5")]);
    assert_eq!(r.status, 200);
    check_live_reply(r.body.trim_end(), &auth, "1.500000");
}

#[test]
fn sighup_reloads_the_certificate_curl_sees() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let live = tempfile::tempdir().unwrap();
    let (ca1, cert1, key1) = make_pki(first.path(), "first").paths();
    let (ca2, cert2, key2) = make_pki(second.path(), "second").paths();
    let cert = live.path().join("cert.pem");
    let key = live.path().join("key.pem");
    std::fs::copy(&cert1, &cert).unwrap();
    std::fs::copy(&key1, &key).unwrap();
    let srv = ChildServer::start(&[
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let port = srv.authority().rsplit_once(':').unwrap().1.to_string();
    let resolve = format!("localhost:{port}:127.0.0.1");
    let https = format!("https://localhost:{port}/?1.5");
    let trusted = |ca: &str| {
        Command::new(curl())
            .args(["-sS", "-o", "/dev/null", "--max-time", "5"])
            .args(["--cacert", ca, "--resolve", &resolve, &https])
            .status()
            .unwrap()
            .success()
    };
    assert!(trusted(&ca1) && !trusted(&ca2));

    std::fs::copy(&cert2, &cert).unwrap();
    std::fs::copy(&key2, &key).unwrap();
    srv.signal(Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !srv.log_text().contains("TLS certificate reloaded") {
        assert!(
            Instant::now() < deadline,
            "no reload logged: {}",
            srv.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        trusted(&ca2) && !trusted(&ca1),
        "new connections get the new certificate"
    );
    // The leap-seconds list is re-read on the same signal.
    assert!(srv.log_text().contains("SIGHUP"), "{}", srv.log_text());
}

//! The NTP server (`[[output]] type = "ntp"` and `webntpd serve --ntp`) against NTP clients
//! nobody here wrote: chronyd as a client (`-x`, `noselect`, read with `chronyc
//! sourcestats`), ntpsec's `ntpdig` (Python, from the unpacked ntpsec package and
//! python3-ntp), and `webntpd query ntp://`; and its safety rules (access lists, rate limit
//! with Kiss-o'-Death, malformed, oversize, mode 6 and other versions) against raw datagrams,
//! counted in `webntpd status`.
//!
//! The daemon is fed by `webntpd serve` with its clock shifted by libfaketime, so the offset
//! every client must see is known. `ntpdig` has no port option, so the test that drives it
//! runs in network and IPC namespaces of its own ([`crate::refclock::in_own_namespace`]),
//! where 127.0.0.1:123 is free; the others bind port 0. Nothing sets the clock: chronyd runs
//! with `-x` and without CAP_SYS_TIME, as does the daemon.
//!
//! systemd-timesyncd (unpacked from its package into `target/peers/timesyncd`, as it
//! conflicts with chrony) runs as `nobody`, without CAP_SYS_TIME even in its bounding set,
//! in a mount namespace whose `/run` holds its configuration: it measures, logs the offset,
//! and its `clock_adjtime` is refused. ntpd-rs is not packaged for Debian 12 and takes
//! minutes to build, so it is a manual check (docs/operating.md).

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use crate::refclock::{in_own_namespace, ntpsec_dir, quick_source, start_daemon, text, Chronyd};
use webntpd::wire::ntp::{client_request, Header};

/// The daemon's NTP output in a status, and its local address.
fn ntp_output(status: &serde_json::Value) -> (&serde_json::Value, SocketAddr) {
    let ntp = &status["outputs"][0]["ntp"];
    let listen = ntp["listen"][0].as_str().unwrap_or_default();
    let addr = listen
        .trim_start_matches("udp://")
        .parse()
        .unwrap_or_else(|_| {
            panic!("no NTP listener in {status:#}");
        });
    (ntp, addr)
}

/// A daemon polling a source whose clock is `shift` (libfaketime's syntax) ahead, serving
/// NTP on `listen` with `extra` keys; once its NTP output answers as synchronised, with the
/// source (kept alive), its directory and its output's address.
fn gateway(
    shift: &str,
    listen: &str,
    extra: &str,
) -> (Daemon, ChildServer, tempfile::TempDir, SocketAddr) {
    let source = ChildServer::start_shifted(shift);
    let url = format!("http://{}/", source.authority());
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}[[output]]\ntype = \"ntp\"\nlisten = \"{listen}\"\nclock = \"free\"\n{extra}",
        quick_source(&url)
    );
    let daemon = start_daemon(dir.path(), &config);
    let status = daemon.wait_for(
        Duration::from_secs(20),
        "the NTP output answers as synchronised",
        |s| s["outputs"][0]["ntp"]["synchronised"] == true,
    );
    let (_, addr) = ntp_output(&status);
    (daemon, source, dir, addr)
}

/// `webntpd query --json ntp://ADDR`: the offset and delay (seconds).
fn query_ntp(addr: &str) -> (f64, f64) {
    let out = Command::new(binary())
        .args(["query", "--json", "-n", "4", "--timeout", "2"])
        .arg(format!("ntp://{addr}"))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("query: {}{}", text(&out.stdout), text(&out.stderr)));
    let (offset, delay) = (json["offset"].as_f64(), json["delay"].as_f64());
    match (offset, delay) {
        (Some(o), Some(d)) => (o, d),
        _ => panic!("query ntp://{addr} measured nothing: {json:#}"),
    }
}

/// chronyd as an NTP client of `addr` (noselect: it only measures), until it has `samples`
/// samples; the offset it sees, as the source's clock minus the local one (seconds).
fn chrony_sees(dir: &std::path::Path, addr: SocketAddr, samples: u32) -> f64 {
    let line = format!(
        "server {} port {} iburst minpoll -2 maxpoll -2 noselect",
        addr.ip(),
        addr.port()
    );
    let chronyd = Chronyd::start(dir, &[line]);
    let name = addr.ip().to_string();
    let stats = wait_for(
        Duration::from_secs(30),
        "chronyd collects NTP samples from the gateway",
        || format!("{:?}\n{}", chronyd.sourcestats(), chronyd.log()),
        || {
            let s = chronyd.sourcestats()?.remove(&name)?;
            (s.samples >= samples).then_some(s)
        },
    );
    // sourcestats' offset is the local clock minus the source's.
    -stats.offset_s
}

/// `expected` within `within` seconds, or a failure naming `who`.
fn assert_near(who: &str, got: f64, expected: f64, within: f64) {
    assert!(
        (got - expected).abs() < within,
        "{who} sees an offset of {got:+.6} s; the source's clock is {expected:+.3} s ahead \
         (allowed: {within} s)"
    );
}

#[test]
fn chronyd_ntpdig_and_query_see_the_offset_the_daemon_measured() {
    if !in_own_namespace() {
        return;
    }
    let ntpdig = ntpsec_dir().join("usr/bin/ntpdig");
    assert!(
        ntpdig.is_file()
            && Command::new("/usr/bin/python3")
                .args(["-c", "import ntp"])
                .status()
                .is_ok_and(|s| s.success()),
        "this test drives ntpsec's ntpdig, unpacked into {}, with python3-ntp: run .ci/run",
        ntpsec_dir().display()
    );
    // chronyd polls four times a second: no rate limit for it.
    let (daemon, _source, dir, addr) =
        gateway("+0.1", "127.0.0.1:123", "rate_interval = \"off\"\n");
    let (offset, delay) = query_ntp("127.0.0.1");
    assert_near("webntpd query ntp://", offset, 0.1, 0.003);
    assert!(delay < 0.005, "delay {delay} s over loopback");

    let out = Command::new("/usr/bin/python3")
        .arg(&ntpdig)
        .args(["-j", "-p", "3", "-t", "2", "127.0.0.1"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("ntpdig: {}{}", text(&out.stdout), text(&out.stderr)));
    let offset = json["offset"].as_f64().unwrap_or(f64::NAN);
    assert_near("ntpdig", offset, 0.1, 0.003);
    assert_eq!(json["stratum"], 3, "{json:#}");

    let chrony_dir = dir.path().join("chrony");
    std::fs::create_dir(&chrony_dir).unwrap();
    let offset = chrony_sees(&chrony_dir, addr, 6);
    assert_near("chronyd", offset, 0.1, 0.003);
    println!("chronyd sees {offset:+.6} s");

    // Every one of them was answered, nothing dropped (the status is published after each
    // poll).
    let status = daemon.wait_for(Duration::from_secs(5), "every request counted", |s| {
        s["outputs"][0]["ntp"]["served"].as_u64().unwrap_or(0) >= 6 + 3 + 4
    });
    let (ntp, _) = ntp_output(&status);
    let dropped: u64 = ntp["dropped"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|v| v.as_u64())
        .sum();
    assert_eq!(dropped, 0, "{ntp:#}");
    assert_eq!(ntp["reference_id"], "WNTP");
}

/// Where systemd-timesyncd is unpacked (`.ci/run` does it).
fn timesyncd() -> std::path::PathBuf {
    let dir = std::env::var_os("WEBNTPD_TIMESYNCD_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/peers/timesyncd")
        });
    let program = dir.join("lib/systemd/systemd-timesyncd");
    assert!(
        program.is_file(),
        "this test drives systemd-timesyncd, unpacked into {d}: `apt-get download \
         systemd-timesyncd && dpkg -x systemd-timesyncd_*.deb {d}` (installing it would \
         remove chrony), or set WEBNTPD_TIMESYNCD_DIR; .ci/run does this",
        d = dir.display()
    );
    program
}

#[test]
fn timesyncd_sees_the_offset_the_daemon_measured() {
    if !in_own_namespace() {
        return;
    }
    let program = timesyncd();
    let (_daemon, _source, dir, _) = gateway("+0.05", "127.0.0.1:123", "");
    let conf = dir.path().join("timesyncd.conf");
    // timesyncd 252 takes no port: 127.0.0.1:123 is this namespace's own.
    std::fs::write(&conf, "[Time]\nNTP=127.0.0.1\nFallbackNTP=\n").unwrap();
    let script = format!(
        "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/timesyncd.conf.d && \
         cp {conf} /run/systemd/timesyncd.conf.d/webntpd.conf && \
         exec capsh --drop=cap_sys_time -- -c 'exec setpriv --reuid=nobody --regid=nogroup \
         --clear-groups --bounding-set=-sys_time {program}'",
        conf = conf.display(),
        program = program.display()
    );
    let mut child = Command::new("unshare")
        .args(["-m", "--", "sh", "-c", &script])
        .env("SYSTEMD_LOG_LEVEL", "debug")
        .env("SYSTEMD_LOG_TARGET", "console")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("unshare runs");
    let log = collect_stderr(&mut child);
    // "interval/delta/delay/jitter/drift 32s/+0.050s/0.000s/0.000s/+0ppm"
    let delta = wait_for(
        Duration::from_secs(15),
        "timesyncd measures the gateway",
        || log.lock().unwrap().join("\n"),
        || {
            log.lock().unwrap().iter().find_map(|l| {
                let fields = l.split_once("interval/delta/delay/jitter/drift ")?.1;
                let delta = fields.split('/').nth(1)?.trim_end_matches('s');
                delta.parse::<f64>().ok()
            })
        },
    );
    let _ = child.kill();
    let _ = child.wait();
    // timesyncd logs milliseconds.
    assert_near("systemd-timesyncd", delta, 0.05, 0.0025);
    let log = log.lock().unwrap().join("\n");
    assert!(
        log.contains("Operation not permitted"),
        "timesyncd was refused the clock: {log}"
    );
}

#[test]
fn chronyd_sees_a_few_milliseconds_behind_on_port_0() {
    let (_daemon, _source, dir, addr) =
        gateway("-0.005", "127.0.0.1:0", "rate_interval = \"off\"\n");
    assert_ne!(addr.port(), 0);
    let (offset, _) = query_ntp(&addr.to_string());
    assert_near("webntpd query ntp://", offset, -0.005, 0.001);
    let offset = chrony_sees(dir.path(), addr, 6);
    assert_near("chronyd", offset, -0.005, 0.001);
}

/// Send `request` from `client` to `to`; the reply, if one comes within 300 ms.
fn ask(client: &UdpSocket, to: SocketAddr, request: &[u8]) -> Option<Header> {
    client.send_to(request, to).unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = client.recv_from(&mut buf).ok()?;
    assert_eq!(
        n, 48,
        "a reply is a bare header, never larger than the request"
    );
    Header::parse(&buf[..n])
}

#[test]
fn access_lists_rate_limits_and_bad_packets_are_dropped_and_counted() {
    let (daemon, _source, _dir, addr) = gateway(
        "+0",
        "127.0.0.1:0",
        "deny = \"127.0.0.2\"\nrate_interval = \"10s\"\nrate_burst = 4\nkod = true\n",
    );
    let from = |ip: &str| UdpSocket::bind((ip, 0)).unwrap();
    let request = client_request(0x0123_4567_89ab_cdef);

    // A denied address gets nothing.
    assert!(ask(&from("127.0.0.2"), addr, &request).is_none());

    // Four at once, then one Kiss-o'-Death RATE, then silence.
    let client = from("127.0.0.3");
    for i in 0..4 {
        let h = ask(&client, addr, &request).unwrap_or_else(|| panic!("request {i} unanswered"));
        assert_eq!((h.mode, h.stratum), (4, 3), "request {i}");
    }
    let kiss = ask(&client, addr, &request).expect("a Kiss-o'-Death");
    assert_eq!((kiss.stratum, &kiss.reference_id), (0, b"RATE"));
    assert!(ask(&client, addr, &request).is_none());

    // Each from an address of its own, so the rate limit is not what drops them.
    let mut mode6 = request;
    mode6[0] = (2 << 3) | 6;
    let mut version2 = request;
    version2[0] = (2 << 3) | 3;
    let mut symmetric = request;
    symmetric[0] = (4 << 3) | 1;
    let mut oversize = request.to_vec();
    oversize.resize(1025, 0);
    let garbage: [(&str, &[u8]); 5] = [
        ("127.0.0.4", &mode6),
        ("127.0.0.5", &version2),
        ("127.0.0.6", &symmetric),
        ("127.0.0.7", &request[..47]),
        ("127.0.0.8", &oversize),
    ];
    for (ip, bytes) in garbage {
        assert!(ask(&from(ip), addr, bytes).is_none(), "{ip} was answered");
    }
    // A v3 request with a MAC-sized tail is a request like any other.
    let mut v3 = request.to_vec();
    v3[0] = (3 << 3) | 3;
    v3.extend_from_slice(&[0; 20]);
    assert!(ask(&from("127.0.0.9"), addr, &v3).is_some_and(|h| h.version == 3));

    // A reply is counted after it is sent, so wait for the last one's count too.
    let status = daemon.wait_for(Duration::from_secs(5), "the drops counted", |s| {
        s["outputs"][0]["ntp"]["dropped"]["oversize"] == 1 && s["outputs"][0]["ntp"]["served"] == 5
    });
    let (ntp, _) = ntp_output(&status);
    let dropped = &ntp["dropped"];
    for (reason, n) in [
        ("denied", 1),
        ("rate-limited", 1),
        ("mode 6/7", 1),
        ("bad version", 1),
        ("other mode", 1),
        ("too short", 1),
        ("oversize", 1),
    ] {
        assert_eq!(dropped[reason], n, "{reason}: {ntp:#}");
    }
    assert_eq!(
        (ntp["served"].as_u64(), ntp["kisses"].as_u64()),
        (Some(5), Some(1))
    );

    // The table webntpd status prints says the same.
    let out = Command::new(binary())
        .args(["status", "-c"])
        .arg(&daemon.config)
        .output()
        .unwrap();
    let table = text(&out.stdout);
    assert!(
        table.contains(
            "5 served (0 unsynchronised), 7 dropped (1 denied, 1 rate-limited, 1 mode 6/7"
        ),
        "{table}"
    );
    assert!(table.contains("1 Kiss-o'-Death"), "{table}");

    // And so do the metrics (issue 17), with snake-case reasons.
    let out = Command::new(binary())
        .args(["status", "--format", "prometheus", "-c"])
        .arg(&daemon.config)
        .output()
        .unwrap();
    let metrics = text(&out.stdout);
    let output = status["outputs"][0]["name"].as_str().unwrap_or_default();
    for reason in [
        "denied",
        "rate_limited",
        "control",
        "bad_version",
        "other_mode",
        "too_short",
        "oversize",
    ] {
        let line =
            format!("webntpd_ntp_dropped_total{{output=\"{output}\",reason=\"{reason}\"}} 1");
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }
    let served = format!("webntpd_ntp_served_total{{output=\"{output}\"}} 5");
    assert!(
        metrics.lines().any(|l| l == served),
        "no {served:?} in\n{metrics}"
    );
}

#[test]
fn serve_answers_ntp_from_its_local_clock() {
    // A server whose clock is 5 ms ahead, vouched for by the operator.
    let mut cmd = Command::new(binary());
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--ntp",
        "127.0.0.1:0",
        "--ntp-clock",
        "local",
    ])
    .env("LD_PRELOAD", libfaketime())
    .env("FAKETIME", "+0.005")
    .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
    .env_remove("RUST_LOG")
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped());
    let srv = ChildServer::spawn(cmd, 2);
    let ntp = srv
        .urls
        .iter()
        .find_map(|u| u.strip_prefix("udp://"))
        .unwrap_or_else(|| panic!("no NTP listener in {:?}", srv.urls))
        .to_string();
    let (offset, _) = query_ntp(&ntp);
    assert_near("webntpd query ntp://", offset, 0.005, 0.001);

    // By default the kernel vouches for the clock, or nothing does.
    let srv = ChildServer::spawn(
        {
            let mut cmd = Command::new(binary());
            cmd.args(["serve", "--listen", "127.0.0.1:0", "--ntp", "127.0.0.1:0"])
                .env_remove("RUST_LOG")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped());
            cmd
        },
        2,
    );
    let ntp = srv
        .urls
        .iter()
        .find_map(|u| u.strip_prefix("udp://"))
        .unwrap()
        .to_string();
    let out = Command::new(binary())
        .args(["query", "-n", "2", "--timeout", "1"])
        .arg(format!("ntp://{ntp}"))
        .output()
        .unwrap();
    let synced = webntpd::refclock::timex::read().is_ok_and(|k| k.synchronised());
    if synced {
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    } else {
        assert!(
            text(&out.stderr)
                .contains("not synchronised (leap indicator 3, stratum 16, reference ID UNSY)"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn a_reload_rebinds_a_changed_ntp_output_and_keeps_an_unchanged_one() {
    let (daemon, _source, _dir, addr) = gateway("+0", "127.0.0.1:0", "");
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let request = client_request(7);
    assert_eq!(ask(&client, addr, &request).map(|h| h.stratum), Some(3));
    // Same configuration: the socket stays.
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    assert!(ask(&client, addr, &request).is_some());
    // A new stratum on a fixed port: the old socket is given up, the new one answers there,
    // synchronised at once from the last estimate (the source polls every 2 s; the check
    // below comes sooner).
    let port = addr.port();
    let text = std::fs::read_to_string(&daemon.config).unwrap().replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\"\nstratum = 4"),
    );
    std::fs::write(&daemon.config, text).unwrap();
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    let answer = wait_for(
        Duration::from_secs(1),
        "the new stratum served",
        || daemon.log_text(),
        || ask(&client, addr, &request).filter(|h| h.stratum == 4),
    );
    assert_eq!(answer.leap, 0, "synchronised from the last estimate");
}

//! TLS listeners in-process: HTTP/1.1 and HTTP/2 chosen by ALPN, certificate reload, and a
//! handshake that never finishes being cut off.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use http_body_util::BodyExt;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use webntpd::clock::SystemClock;
use webntpd::leap::store::LeapStore;
use webntpd::server::{Server, ServerConfig, TlsFiles};

fn client_config(ca: &CertificateDer<'static>, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

async fn connect(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Result<Tls, std::io::Error> {
    let tcp = TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

async fn tls_server(files: TlsFiles) -> (Server, std::net::SocketAddr) {
    let config = ServerConfig {
        listen_tls: vec![any_port()],
        tls: Some(files),
        ..ServerConfig::default()
    };
    let server = Server::bind(config, SystemClock::shared(), Arc::new(LeapStore::empty()))
        .await
        .unwrap();
    let addr = server.local_addrs()[0].0;
    assert!(server.local_addrs()[0].1, "the listener is TLS");
    (server, addr)
}

async fn get_over(tls: Tls, h2: bool) -> (http::Version, String) {
    let io = hyper_util::rt::TokioIo::new(tls);
    let req = http::Request::get("https://localhost/?1.5")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = if h2 {
        let (mut s, c) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .unwrap();
        tokio::spawn(c);
        s.send_request(req).await.unwrap()
    } else {
        let (mut s, c) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(c);
        let mut req = req;
        req.headers_mut().insert(
            http::header::HOST,
            http::HeaderValue::from_static("localhost"),
        );
        s.send_request(req).await.unwrap()
    };
    let version = resp.version();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (version, String::from_utf8(body.to_vec()).unwrap())
}

/// Shut the server down and wait for it, failing after 3 s.
async fn stop_and_wait(
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
) {
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(3), task)
        .await
        .expect("server stopped within 3 s")
        .expect("server task did not panic");
}

fn peer_cert_cn_contains(tls: &Tls, tag: &str) -> bool {
    let der = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    // The tag is in the subject's common name, stored as plain ASCII in the DER.
    der.as_ref().windows(tag.len()).any(|w| w == tag.as_bytes())
}

#[tokio::test]
async fn https_speaks_http1_and_http2_by_alpn() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "one");
    let (server, addr) = tls_server(pki.files.clone()).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(server.run(stop.clone()));

    let tls = connect(addr, client_config(&pki.ca_der, &[b"h2", b"http/1.1"]))
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (v, body) = get_over(tls, true).await;
    assert_eq!(v, http::Version::HTTP_2);
    assert!(
        body.starts_with("{\"id\":\"localhost\",\"it\":1.500000,"),
        "{body}"
    );

    let tls = connect(addr, client_config(&pki.ca_der, &[b"http/1.1"]))
        .await
        .unwrap();
    let (v, body) = get_over(tls, false).await;
    assert_eq!(v, http::Version::HTTP_11);
    assert!(body.contains("\"it\":1.500000,"), "{body}");

    // A client that does not trust the CA is refused by its own verifier: we present only
    // the configured certificate.
    let other = make_pki(dir.path(), "stranger");
    assert!(connect(addr, client_config(&other.ca_der, &[]))
        .await
        .is_err());

    stop_and_wait(stop, task).await;
}

#[tokio::test]
async fn sighup_style_reload_swaps_the_certificate_and_keeps_it_on_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let first = make_pki(dir.path(), "first");
    // The server reads from fixed paths; the test rewrites those files.
    let live = TlsFiles {
        cert: dir.path().join("live.crt"),
        key: dir.path().join("live.key"),
    };
    let copy = |from: &TlsFiles| {
        std::fs::copy(&from.cert, &live.cert).unwrap();
        std::fs::copy(&from.key, &live.key).unwrap();
    };
    copy(&first.files);
    let (server, addr) = tls_server(live.clone()).await;
    let reloader = server.tls_reloader().expect("TLS server has a reloader");
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(server.run(stop.clone()));

    let tls = connect(addr, client_config(&first.ca_der, &[]))
        .await
        .unwrap();
    assert!(peer_cert_cn_contains(&tls, "localhost first"));

    let second = make_pki(dir.path(), "second");
    copy(&second.files);
    reloader.reload().unwrap();
    let tls = connect(addr, client_config(&second.ca_der, &[]))
        .await
        .unwrap();
    assert!(peer_cert_cn_contains(&tls, "localhost second"));

    // Broken files: reload fails with a reason, and the second certificate stays.
    std::fs::write(&live.key, "garbage").unwrap();
    let err = reloader.reload().unwrap_err().to_string();
    assert!(err.contains("live.key"), "{err}");
    let tls = connect(addr, client_config(&second.ca_der, &[]))
        .await
        .unwrap();
    assert!(peer_cert_cn_contains(&tls, "localhost second"));

    stop_and_wait(stop, task).await;
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "stall");
    let config = ServerConfig {
        listen_tls: vec![any_port()],
        tls: Some(pki.files),
        limits: quick_limits(),
        ..ServerConfig::default()
    };
    let srv = start(config).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let t0 = Instant::now();
    // Send nothing: no ClientHello ever comes.
    read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
}

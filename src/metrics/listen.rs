//! The metrics endpoint: a small HTTP/1.1 server on a listener of its own that answers
//! `GET /metrics` and nothing else (404 for other paths, 405 for other methods), one request
//! per connection.
//!
//! It is bounded like the WebNTP server, at a scale fit for a few scrapers: at most
//! [`MAX_CONNECTIONS`] at once (a slot is taken before `accept()`, so more wait in the
//! backlog), a request head of at most [`MAX_HEAD`] bytes (431 past it), and
//! [`CONNECTION_TIMEOUT`] for the whole exchange. The listening socket is bound as the
//! server's are (`server::bind`: the same errors and hints).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Format, Snapshot};
use crate::server::{ListenAddr, ServerError};

/// Scrapes served at once.
pub const MAX_CONNECTIONS: usize = 8;
/// Largest request head.
pub const MAX_HEAD: usize = 8192;
/// Time allowed for one connection: the request head, rendering and the reply.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the metrics endpoint could not start.
pub type MetricsError = ServerError;

type Render = dyn Fn() -> Snapshot + Send + Sync;

/// A running metrics endpoint, until [`MetricsServer::stop`].
pub struct MetricsServer {
    addr: SocketAddr,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsServer {
    /// Listen on `addr` and answer every scrape with what `render` returns then.
    pub async fn start(
        addr: ListenAddr,
        render: impl Fn() -> Snapshot + Send + Sync + 'static,
    ) -> Result<MetricsServer, MetricsError> {
        let listener = crate::server::bind(addr.0)?;
        let addr = listener.local_addr().unwrap_or(addr.0);
        tracing::info!("metrics on http://{addr}/metrics");
        let cancel = CancellationToken::new();
        let task = tokio::spawn(serve(listener, Arc::new(render), cancel.clone()));
        Ok(MetricsServer { addr, cancel, task })
    }

    /// The address listened on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop listening; scrapes in progress are cut off.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

async fn serve(listener: TcpListener, render: Arc<Render>, cancel: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let tasks = TaskTracker::new();
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => break,
            a = async {
                let slot = slots.clone().acquire_owned().await.ok()?;
                Some((slot, listener.accept().await))
            } => a,
        };
        let Some((slot, accepted)) = accepted else {
            break;
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(5);
                let render = render.clone();
                let cancel = cancel.clone();
                tasks.spawn(async move {
                    let _slot = slot;
                    let exchange = tokio::time::timeout(CONNECTION_TIMEOUT, answer(stream, &*render));
                    tokio::select! {
                        r = exchange => match r {
                            Ok(Err(e)) => tracing::debug!("metrics: {peer}: {e}"),
                            Err(_) => tracing::debug!("metrics: {peer}: not done within {CONNECTION_TIMEOUT:?}; closed"),
                            Ok(Ok(())) => {}
                        },
                        () = cancel.cancelled() => {}
                    }
                });
            }
            Err(e) => {
                tracing::warn!("metrics: accept failed: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
    tasks.close();
    tasks.wait().await;
}

/// Read one request head and answer it.
async fn answer(mut stream: TcpStream, render: &Render) -> io::Result<()> {
    let mut buf = vec![0u8; MAX_HEAD];
    let mut have = 0;
    let reply = loop {
        let n = stream.read(&mut buf[have..]).await?;
        if n == 0 {
            return Ok(());
        }
        have += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..have]) {
            Ok(httparse::Status::Complete(_)) => break route(&req, render),
            Ok(httparse::Status::Partial) if have == buf.len() => {
                break plain(
                    "431 Request Header Fields Too Large",
                    "request head too large\n",
                )
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => break plain("400 Bad Request", &format!("{e}\n")),
        }
    };
    stream.write_all(&reply).await?;
    stream.shutdown().await
}

/// The reply to a complete request head.
fn route(req: &httparse::Request<'_, '_>, render: &Render) -> Vec<u8> {
    let path = req.path.unwrap_or("");
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    if path != "/metrics" {
        return plain("404 Not Found", "not found: the metrics are at /metrics\n");
    }
    if req.method != Some("GET") {
        return reply(
            "405 Method Not Allowed",
            "allow: GET\r\n",
            TEXT,
            b"use GET\n",
        );
    }
    let accept = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("accept"))
        .map(|h| h.value);
    let format = Format::from_accept(accept);
    let body = render().render(format);
    reply("200 OK", "", format.content_type(), body.as_bytes())
}

const TEXT: &str = "text/plain; charset=utf-8";

fn plain(status: &str, body: &str) -> Vec<u8> {
    reply(status, "", TEXT, body.as_bytes())
}

/// A whole reply: the status line, `extra` header lines, the body.
fn reply(status: &str, extra: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         cache-control: no-store\r\nconnection: close\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn start() -> MetricsServer {
        let any = ListenAddr(SocketAddr::from(([127, 0, 0, 1], 0)));
        MetricsServer::start(any, Snapshot::default).await.unwrap()
    }

    /// Send `request` on a new connection and read the reply to the end.
    async fn send(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).await.unwrap();
        reply
    }

    #[tokio::test]
    async fn a_head_over_the_limit_gets_431() {
        let server = start().await;
        let mut head = b"GET /metrics HTTP/1.1\r\nX-Long: ".to_vec();
        head.resize(MAX_HEAD, b'a');
        let reply = send(server.local_addr(), &head).await;
        assert!(reply.starts_with("HTTP/1.1 431 "), "{reply}");
        let reply = send(server.local_addr(), b"GET /metrics HTTP/1.1\r\n\r\n").await;
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        assert!(reply.contains("webntpd_build_info"), "{reply}");
        server.stop().await;
    }

    #[tokio::test]
    async fn past_the_connection_cap_a_scrape_waits_for_a_slot() {
        let server = start().await;
        let addr = server.local_addr();
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        let scrape = tokio::spawn(send(addr, b"GET /metrics HTTP/1.1\r\n\r\n"));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!scrape.is_finished(), "answered past the cap");
        drop(idle.pop());
        let reply = tokio::time::timeout(Duration::from_secs(5), scrape)
            .await
            .unwrap()
            .unwrap();
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        server.stop().await;
    }
}

//! The network layer both ends stand on: stream wrappers that observe traffic
//! ([`observe`]), kernel receive timestamps ([`rxstamp`]) and the client's send/receive edges
//! ([`stamp`]), opening connections to a URL (names, proxies, TLS: [`connect`]), one
//! bounded HTTP/1 request ([`http1`]), the WebSocket settings both ends use, and the NTP
//! server's UDP side ([`ntp`]: sockets, access lists, rate limits, counters; the packets are
//! `crate::wire::ntp`'s, the time served `crate::sync::serve`'s). It knows nothing of
//! WebNTP's formats (`crate::wire::reply`) or of time-keeping rules (`crate::sync`).

pub mod connect;
pub mod http1;
pub mod ntp;
pub mod observe;
pub mod rxstamp;
pub mod stamp;

use std::sync::Arc;

use connect::{ConnectError, ConnectOptions, Target};

use crate::clock::SharedClock;

/// A connection's byte stream: TCP or TLS over TCP.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + Sync {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + Sync> Io for T {}

/// Open a connection to `target` (through a proxy if `opts` say so), put the timestamping
/// wrapper on the TCP stream (kernel receive stamps below it), then TLS on top for https
/// and wss: the client's timestamps are taken where the bytes leave and arrive, below TLS.
pub async fn open_stamped(
    target: &Target,
    opts: &ConnectOptions,
    clock: &SharedClock,
) -> Result<(Box<dyn Io>, Arc<stamp::Stamps>), ConnectError> {
    let tcp = connect::open_tcp(target, opts).await?;
    let (tcp, rx) = rxstamp::RxStamped::new(tcp);
    let (io, stamps) = stamp::stamped(tcp, clock.clone(), Some(rx));
    let io: Box<dyn Io> = if target.scheme.is_tls() {
        Box::new(connect::tls_handshake(io, target, opts, &[b"http/1.1"]).await?)
    } else {
        Box::new(io)
    };
    Ok((io, stamps))
}

/// Open a plain connection to `target` (proxies and TLS as [`open_stamped`], no stamps).
pub async fn open(target: &Target, opts: &ConnectOptions) -> Result<Box<dyn Io>, ConnectError> {
    let tcp = connect::open_tcp(target, opts).await?;
    Ok(if target.scheme.is_tls() {
        Box::new(connect::tls_handshake(tcp, target, opts, &[b"http/1.1"]).await?)
    } else {
        Box::new(tcp)
    })
}

/// WebSocket settings for the client's WebSockets (the server frames its own,
/// `server::ws`): messages and frames up to `max_message` bytes; `read_buffer` bytes of read
/// buffer instead of tungstenite's 128 KiB, which it allocates at once and keeps; each
/// message written at once (every send is flushed anyway), with at most 64 KiB queued when
/// writes fail.
pub fn ws_config(
    max_message: usize,
    read_buffer: usize,
) -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
        .read_buffer_size(read_buffer)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024)
}

/// The client's WebSocket read buffer: one connection per source, 4 KiB each.
pub const WS_CLIENT_READ_BUFFER: usize = 4096;

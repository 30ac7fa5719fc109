//! The WebSocket transport: one connection per burst (kept while it lasts), subprotocol
//! `webntp.shogo82148.com` offered, one text message `<t1>` per exchange.
//!
//! A server that selects no subprotocol is still a WebNTP server: RFC 6455 4.1 fails a
//! connection only when the server picks one that was not offered, and go-webntp's client
//! (gorilla) accepts such servers. tungstenite refuses them, so the transport then connects
//! once more without offering it, and keeps doing so for that server.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use http::HeaderValue;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError, SubProtocolError};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::{
    bounded, connect_bounded, exchange_from, request_stamp, ClientError, ClientOptions, Reply,
    Transport,
};
use crate::clock::SharedClock;
use crate::net::connect::{Scheme, Target};
use crate::net::stamp::Stamps;
use crate::net::{open_stamped, Io};
use crate::wire::reply::parse_reply;
use crate::wire::WS_SUBPROTOCOL;

struct Conn {
    ws: WebSocketStream<Box<dyn Io>>,
    stamps: Arc<Stamps>,
}

/// How a handshake failed: the one case worth another try, or for good.
enum Handshake {
    NoSubprotocol,
    Failed(ClientError),
}

impl From<ClientError> for Handshake {
    fn from(e: ClientError) -> Self {
        Handshake::Failed(e)
    }
}

impl Handshake {
    fn into_client_error(self) -> ClientError {
        match self {
            Handshake::NoSubprotocol => ClientError::Ws(
                "handshake: the server selected no subprotocol, even when none was offered".into(),
            ),
            Handshake::Failed(e) => e,
        }
    }
}

/// A WebNTP server over ws:// or wss://.
pub(crate) struct WsTransport {
    target: Target,
    opts: ClientOptions,
    clock: SharedClock,
    conn: Option<Conn>,
    /// Offer `webntp.shogo82148.com`; off once the server was seen to select none.
    offer_subprotocol: bool,
}

impl WsTransport {
    pub(crate) fn new(target: Target, opts: ClientOptions, clock: SharedClock) -> Self {
        WsTransport {
            target,
            opts,
            clock,
            conn: None,
            offer_subprotocol: true,
        }
    }

    fn url(&self) -> String {
        let scheme = match self.target.scheme {
            Scheme::Https | Scheme::Wss => "wss",
            Scheme::Http | Scheme::Ws => "ws",
        };
        format!(
            "{scheme}://{}{}",
            self.target.authority(),
            self.target.path_and_query
        )
    }

    /// Connect and shake hands; without the subprotocol if the server selects none.
    async fn connect(&mut self) -> Result<Conn, ClientError> {
        match self.handshake().await {
            Err(Handshake::NoSubprotocol) if self.offer_subprotocol => {
                tracing::debug!(
                    "{}: the server selects no WebSocket subprotocol; not offering it again",
                    self.target.authority()
                );
                self.offer_subprotocol = false;
                self.handshake().await.map_err(Handshake::into_client_error)
            }
            other => other.map_err(Handshake::into_client_error),
        }
    }

    async fn handshake(&self) -> Result<Conn, Handshake> {
        let (io, stamps) = open_stamped(&self.target, &self.opts.connect, &self.clock)
            .await
            .map_err(ClientError::from)?;
        let mut request = self
            .url()
            .into_client_request()
            .map_err(|e| ClientError::Ws(format!("request: {e}")))?;
        if self.offer_subprotocol {
            request.headers_mut().insert(
                http::header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(WS_SUBPROTOCOL),
            );
        }
        let config = crate::net::ws_config(self.opts.max_body, crate::net::WS_CLIENT_READ_BUFFER);
        match tokio_tungstenite::client_async_with_config(request, io, Some(config)).await {
            Ok((ws, _resp)) => Ok(Conn { ws, stamps }),
            Err(WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(
                SubProtocolError::NoSubProtocol,
            ))) => Err(Handshake::NoSubprotocol),
            Err(WsError::Http(resp)) => Err(ClientError::Ws(format!(
                "handshake refused with HTTP status {} (is this a WebSocket URL?)",
                resp.status().as_u16()
            ))
            .into()),
            Err(e) => Err(ClientError::Ws(format!("handshake: {e}")).into()),
        }
    }

    async fn once(&self, conn: &mut Conn) -> Result<Reply, ClientError> {
        let sent = request_stamp(&self.clock);
        let work = async {
            conn.stamps.arm();
            conn.ws
                .send(Message::text(sent.to_micros_string()))
                .await
                .map_err(|e| ClientError::Ws(format!("send: {e}")))?;
            loop {
                match conn.ws.next().await {
                    Some(Ok(Message::Text(t))) => return Ok(t),
                    Some(Ok(Message::Binary(b))) => {
                        return String::from_utf8(b.to_vec())
                            .map(Into::into)
                            .map_err(|_| ClientError::Ws("binary reply is not UTF-8".into()))
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return Err(ClientError::Closed(match frame {
                            Some(f) => format!(" with {} \"{}\"", u16::from(f.code), f.reason),
                            None => String::new(),
                        }))
                    }
                    Some(Ok(_)) => continue, // ping, pong
                    Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake))) => {
                        return Err(ClientError::Closed(
                            " without a WebSocket close frame".into(),
                        ))
                    }
                    Some(Err(e)) => return Err(ClientError::Ws(format!("receive: {e}"))),
                    None => return Err(ClientError::Closed(String::new())),
                }
            }
        };
        let text = bounded("exchange", self.opts.sample_timeout, work).await?;
        let edges = conn.stamps.take();
        let reply = parse_reply(text.as_bytes())?;
        let exchange = exchange_from(Some(sent), edges, Some(reply.it), reply.rt, reply.st)?;
        Ok(Reply {
            exchange,
            leap: reply.leap,
        })
    }
}

impl Transport for WsTransport {
    async fn exchange(&mut self) -> Result<Reply, ClientError> {
        if let Some(mut conn) = self.conn.take() {
            let r = self.once(&mut conn).await;
            // Keep the connection unless it is gone.
            if !matches!(r, Err(ClientError::Closed(_) | ClientError::Ws(_))) {
                self.conn = Some(conn);
            }
            return r;
        }
        let opts = self.opts.clone();
        let mut conn = connect_bounded(&opts, self.connect()).await?;
        // Warm-up (see the module comment of `client`).
        self.once(&mut conn).await?;
        let reply = self.once(&mut conn).await?;
        self.conn = Some(conn);
        Ok(reply)
    }
}

//! The WebSocket transport: one connection per burst (kept while it lasts), subprotocol
//! `webntp.shogo82148.com` offered, one text message `<t1>` per exchange.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use http::HeaderValue;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::connect::{Scheme, Target};
use super::stamp::Stamps;
use super::{
    bounded, connect_bounded, exchange_from, open_stamped, request_stamp, ClientError,
    ClientOptions, Io, Reply, Transport,
};
use crate::clock::SharedClock;
use crate::wire::reply::parse_reply;
use crate::wire::WS_SUBPROTOCOL;

struct Conn {
    ws: WebSocketStream<Box<dyn Io>>,
    stamps: Arc<Stamps>,
}

/// A WebNTP server over ws:// or wss://.
pub(crate) struct WsTransport {
    target: Target,
    opts: ClientOptions,
    clock: SharedClock,
    conn: Option<Conn>,
}

impl WsTransport {
    pub(crate) fn new(target: Target, opts: ClientOptions, clock: SharedClock) -> Self {
        WsTransport {
            target,
            opts,
            clock,
            conn: None,
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

    async fn connect(&self) -> Result<Conn, ClientError> {
        let (io, stamps) = open_stamped(&self.target, &self.opts, &self.clock).await?;
        let mut request = self
            .url()
            .into_client_request()
            .map_err(|e| ClientError::Ws(format!("request: {e}")))?;
        request.headers_mut().insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(WS_SUBPROTOCOL),
        );
        let config = crate::wire::ws_config(self.opts.max_body);
        let (ws, _resp) = tokio_tungstenite::client_async_with_config(request, io, Some(config))
            .await
            .map_err(|e| ClientError::Ws(format!("handshake: {e}")))?;
        Ok(Conn { ws, stamps })
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
        let mut conn = connect_bounded(&self.opts, self.connect()).await?;
        // Warm-up (see the module comment of `client`).
        self.once(&mut conn).await?;
        let reply = self.once(&mut conn).await?;
        self.conn = Some(conn);
        Ok(reply)
    }
}

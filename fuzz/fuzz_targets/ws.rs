//! The WebSocket session (src/server/ws/): a client that upgrades, through the fast path (as
//! on a plain connection) or through hyper (as on TLS), then sends a fuzzed sequence of
//! frames, on an in-memory stream, to a server whose clock stands still.
//!
//! Checked: the session ends (no hang, no panic) once the client stops sending; the upgrade is
//! answered 101; what the server sends is a sequence of well-formed unmasked frames: text
//! replies, pongs and at most one close, nothing after the close; reply k answers the k-th
//! data message: its `it` is that message's timestamp (to the microsecond, or its own text
//! when in wire form) and `st` = `rt` = the clock's time; no reply to a message after one that
//! is not a timestamp, and then the close says 1007; a close code is one of the server's
//! (1000, 1001, 1002, 1007, 1009) or the client's own, echoed.

#![no_main]

mod common;

use std::sync::Arc;
use std::time::Duration;

use arbitrary::Arbitrary;
use common::{micros, runtime, NOW};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use webntpd::fuzzing::Server;
use webntpd::leap::LeapStore;
use webntpd::sync::Timestamp;
use webntpd::wire::reply::parse_reply;
use webntpd::wire::timestamp::is_wire_form;

const HANDSHAKE: &[u8] = b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n\
Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Protocol: webntp.shogo82148.com\r\n\r\n";

#[derive(Arbitrary, Debug)]
enum Frame<'a> {
    /// A whole text message: usually a timestamp.
    Text(&'a str),
    /// A timestamp the server must answer (also as a message with white space around).
    Timestamp {
        ns: i64,
        padded: bool,
    },
    Binary(&'a [u8]),
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    Close {
        code: Option<u16>,
        reason: &'a str,
    },
    /// Anything, framed by hand: opcode, flags and payload as given.
    Raw {
        head: u8,
        masked: bool,
        payload: &'a [u8],
    },
    /// Bytes with no framing at all.
    Garbage(&'a [u8]),
}

/// A client frame: FIN and `opcode` in `head`, masked with a fixed key unless told.
fn encode(out: &mut Vec<u8>, head: u8, masked: bool, payload: &[u8]) {
    out.push(head);
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    if masked {
        out.extend_from_slice(&KEY);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ KEY[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
}

/// One server frame: (FIN and opcode byte, payload, length in bytes), or `None` if `data`
/// holds no whole frame.
fn decode(data: &[u8]) -> Option<(u8, &[u8], usize)> {
    let head = *data.first()?;
    let len_byte = *data.get(1)?;
    assert_eq!(len_byte & 0x80, 0, "server frames are never masked");
    let (len, at) = match len_byte & 0x7f {
        126 => (
            usize::from(u16::from_be_bytes([*data.get(2)?, *data.get(3)?])),
            4,
        ),
        127 => {
            let b: [u8; 8] = data.get(2..10)?.try_into().ok()?;
            (usize::try_from(u64::from_be_bytes(b)).ok()?, 10)
        }
        n => (usize::from(n), 2usize),
    };
    let payload = data.get(at..at.checked_add(len)?)?;
    Some((head, payload, at + len))
}

/// What a data message expects: a reply with this `it`, or the end (not a timestamp).
fn expected_it(text: &str) -> Option<Timestamp> {
    let t = text.trim_ascii();
    let it = Timestamp::parse(t).ok()?;
    if is_wire_form(t) {
        Some(it)
    } else {
        micros(it)
    }
}

fuzz_target!(|input: (bool, Vec<Frame<'_>>)| {
    let (fast, frames) = input;
    let mut input = Vec::new();
    // The replies the model is sure of: data messages before anything the model does not
    // follow (raw frames, garbage, oversize or fragmented messages).
    let mut expect: Vec<Timestamp> = Vec::new();
    let mut modelled = true;
    let mut invalid = false;
    // Close codes the client sent.
    let mut client_codes: Vec<u16> = Vec::new();
    for f in &frames {
        let data_text: Option<String> = match f {
            Frame::Text(t) => {
                encode(&mut input, 0x81, true, t.as_bytes());
                Some(t.to_string())
            }
            Frame::Timestamp { ns, padded } => {
                let t = Timestamp::from_nanos(i128::from(*ns)).to_micros_string();
                let t = if *padded { format!(" {t}\r\n") } else { t };
                encode(&mut input, 0x81, true, t.as_bytes());
                Some(t)
            }
            Frame::Binary(b) => {
                encode(&mut input, 0x82, true, b);
                match std::str::from_utf8(b) {
                    Ok(t) => Some(t.to_string()),
                    // Too big is refused (1009) before the content is looked at.
                    Err(_) if b.len() > 1024 => {
                        modelled = false;
                        None
                    }
                    Err(_) => {
                        if modelled {
                            invalid = true;
                        }
                        modelled = false;
                        None
                    }
                }
            }
            Frame::Ping(p) => {
                encode(&mut input, 0x89, true, &p[..p.len().min(125)]);
                None
            }
            Frame::Pong(p) => {
                encode(&mut input, 0x8a, true, &p[..p.len().min(125)]);
                None
            }
            Frame::Close { code, reason } => {
                let mut payload = Vec::new();
                if let Some(c) = code {
                    client_codes.push(*c);
                    payload.extend_from_slice(&c.to_be_bytes());
                    payload.extend_from_slice(reason.as_bytes());
                }
                payload.truncate(125);
                encode(&mut input, 0x88, true, &payload);
                modelled = false;
                None
            }
            Frame::Raw {
                head,
                masked,
                payload,
            } => {
                // A close framed by hand is echoed like any other (found by fuzzing: a raw
                // close with 1011 came back as 1011).
                if head & 0x0f == 0x8 {
                    if let Some(c) = payload.get(..2) {
                        client_codes.push(u16::from_be_bytes([c[0], c[1]]));
                    }
                }
                encode(&mut input, *head, *masked, payload);
                modelled = false;
                None
            }
            Frame::Garbage(g) => {
                input.extend_from_slice(g);
                modelled = false;
                None
            }
        };
        if let Some(text) = data_text {
            if modelled {
                if text.len() > 1024 {
                    modelled = false;
                } else {
                    match expected_it(&text) {
                        Some(it) => expect.push(it),
                        None => {
                            invalid = true;
                            modelled = false;
                        }
                    }
                }
            }
        }
    }

    let server = Server::new(NOW, Arc::new(LeapStore::empty()), None);
    let out = runtime().block_on(async {
        let (mut client, conn) = tokio::io::duplex(1 << 20);
        let serve = async {
            if fast {
                let mut conn = conn;
                let handed = server.serve_fast(&mut conn).await?;
                assert_eq!(handed, None, "the fast path handed the handshake to hyper");
                Ok(())
            } else {
                server.serve_http(conn).await
            }
        };
        let talk = async {
            // The frames after the 101, as clients do: hyper drops a connection whose client
            // half-closes before the upgrade is answered.
            let _ = client.write_all(HANDSHAKE).await;
            let mut out = Vec::new();
            let mut buf = [0u8; 4096];
            while !out.windows(4).any(|w| w == b"\r\n\r\n") {
                match client.read(&mut buf).await {
                    Ok(0) | Err(_) => return out,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                }
            }
            let _ = client.write_all(&input).await;
            let _ = client.shutdown().await;
            let _ = client.read_to_end(&mut out).await;
            out
        };
        match tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(serve, talk) })
            .await
        {
            Ok((Ok(()), out)) => out,
            Ok((Err(e), _)) => panic!("no connection: {e}"),
            Err(_) => panic!("WebSocket session still open 10 s after the client stopped"),
        }
    });

    let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") else {
        panic!("no response head: {:?}", String::from_utf8_lossy(&out));
    };
    assert!(
        out.starts_with(b"HTTP/1.1 101 "),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
    let mut rest = &out[end + 4..];
    let mut replies = 0;
    let mut close: Option<Option<u16>> = None;
    while let Some((head, payload, len)) = decode(rest) {
        assert!(close.is_none(), "a frame after the close");
        match head {
            0x81 => {
                let r = match parse_reply(payload) {
                    Ok(r) => r,
                    Err(e) => panic!(
                        "reply does not parse ({e}): {:?}",
                        String::from_utf8_lossy(payload)
                    ),
                };
                assert_eq!(Some(r.st), micros(NOW));
                assert_eq!(r.rt, micros(NOW));
                assert_eq!(r.id.as_deref(), Some("h"));
                if let Some(want) = expect.get(replies) {
                    assert_eq!(r.it, *want, "reply {replies}");
                } else {
                    assert!(
                        !invalid || replies < expect.len(),
                        "a reply after an invalid message"
                    );
                }
                replies += 1;
            }
            0x8a => {}
            0x88 => {
                let code = payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                if let Some(c) = code {
                    // The server's own reasons (1008: a message in too many fragments), or
                    // the client's code echoed (any code RFC 6455 lets a client send, 1012
                    // "service restart" included).
                    assert!(
                        matches!(c, 1000 | 1001 | 1002 | 1007 | 1008 | 1009)
                            || client_codes.contains(&c),
                        "close code {c}, client sent {client_codes:?}"
                    );
                }
                close = Some(code);
            }
            other => panic!("server sent frame type {other:#x}"),
        }
        rest = &rest[len..];
    }
    assert!(rest.is_empty(), "a partial frame at the end: {rest:?}");
    if modelled {
        // Every message answered.
        assert_eq!(replies, expect.len());
    } else {
        assert!(
            replies >= expect.len(),
            "{replies} replies, {} expected at least; the server sent {:?}",
            expect.len(),
            String::from_utf8_lossy(&out[..out.len().min(400)])
        );
    }
    if invalid && replies == expect.len() {
        assert_eq!(
            close,
            Some(Some(1007)),
            "an invalid message not closed with 1007"
        );
    }
});

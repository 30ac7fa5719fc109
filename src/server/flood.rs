//! Flood protection for what h2 and tungstenite answer without limit.
//!
//! **HTTP/2 control frames.** Every SETTINGS and PING an HTTP/2 client sends makes the
//! server write an acknowledgement, and h2 (hyper's HTTP/2) answers as many as it is sent:
//! one client streaming 100,000 of them kept a server worker busy for 400 ms at a time (a
//! debug build), and requests from other clients waited behind it. h2 already bounds rapid
//! resets, oversize and endless header blocks; [`FrameCounter`] bounds the rest, as nginx
//! and Go's server do: once a connection has sent more frames that carry no request than a
//! token bucket allows ([`BURST`], refilled at [`PER_SECOND`]), it is ended. Counted:
//! SETTINGS, PING, PRIORITY, RST_STREAM, WINDOW_UPDATE, and empty DATA frames without
//! END_STREAM. Not counted: HEADERS, CONTINUATION (h2 limits those), DATA with a payload. A
//! connection that does not start with the HTTP/2 preface is not looked at.
//!
//! **WebSocket fragments.** tungstenite assembles a message from as many fragments as the
//! client sends, in one call that does not yield: ten clients sending 10,000 empty
//! fragments each held requests on other connections up to 176 ms. Messages here are at
//! most `ws_max_message` (1024) bytes, so [`WsFragments`] refuses a message in more than
//! [`MAX_FRAGMENTS`] frames; the session closes with 1008.
//!
//! Both read the frame headers on their way to the protocol library ([`Guard`]). The bytes
//! before the frame that passed the limit still reach the library, so what the client sent
//! in good order is answered; the next read fails, with an error [`is_flood`] recognises.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Frames carrying no request a connection may send at once.
pub(crate) const BURST: u32 = 1000;
/// How fast that allowance comes back.
pub(crate) const PER_SECOND: u32 = 100;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Where the parser is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Matching the preface; this many bytes matched so far.
    Preface(usize),
    /// Reading a frame header; this many of its 9 bytes are in `header`.
    Header(usize),
    /// Skipping this many payload bytes.
    Payload(usize),
    /// Not HTTP/2: pass everything through.
    Off,
    /// Over the allowance: every later read fails too.
    Flooded,
}

/// Counts an HTTP/2 connection's frames from the bytes it sends (sans I/O).
#[derive(Debug)]
pub(crate) struct FrameCounter {
    state: State,
    /// Where, in the data of the current `feed`, the frame being read began (0: in an
    /// earlier one).
    frame_start: usize,
    header: [u8; 9],
    /// Allowance left, in thousandths of a frame.
    tokens_milli: u64,
    /// When the allowance was last refilled, in ms since `epoch`.
    refilled_ms: u64,
}

/// A client went past a limit: what it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flood(pub(crate) &'static str);

impl std::fmt::Display for Flood {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Flood {}

/// Whether `e` is a read refused by a [`Guard`].
pub(crate) fn is_flood(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Flood>())
}

/// Counts a connection's frames from the bytes its client sends (sans I/O).
pub(crate) trait Count {
    /// Account for `data`, the next bytes the client sent, at `now_ms`.
    fn feed(&mut self, data: &[u8], now_ms: u64) -> Result<(), Flood>;

    /// After `feed` failed: how many bytes of its `data` came before the frame that passed
    /// the limit (those may still be passed on).
    fn before_flood(&self) -> usize;
}

const H2_FLOOD: Flood = Flood(
    "HTTP/2 flood: more than 1000 frames without a request (SETTINGS, PING, RST_STREAM, \
     ...), 100 a second after that",
);

impl Count for FrameCounter {
    fn feed(&mut self, data: &[u8], now_ms: u64) -> Result<(), Flood> {
        self.frame_start = 0;
        self.feed_h2(data, now_ms)
    }

    fn before_flood(&self) -> usize {
        self.frame_start
    }
}

impl FrameCounter {
    pub(crate) fn new() -> Self {
        FrameCounter {
            state: State::Preface(0),
            frame_start: 0,
            header: [0; 9],
            tokens_milli: u64::from(BURST) * 1000,
            refilled_ms: 0,
        }
    }

    fn feed_h2(&mut self, mut data: &[u8], now_ms: u64) -> Result<(), Flood> {
        let total = data.len();
        while !data.is_empty() {
            match self.state {
                State::Off => return Ok(()),
                State::Flooded => return Err(H2_FLOOD),
                State::Preface(matched) => {
                    let n = (PREFACE.len() - matched).min(data.len());
                    if data[..n] != PREFACE[matched..matched + n] {
                        self.state = State::Off;
                        return Ok(());
                    }
                    data = &data[n..];
                    self.state = if matched + n == PREFACE.len() {
                        State::Header(0)
                    } else {
                        State::Preface(matched + n)
                    };
                }
                State::Header(have) => {
                    if have == 0 {
                        self.frame_start = total - data.len();
                    }
                    let n = (9 - have).min(data.len());
                    self.header[have..have + n].copy_from_slice(&data[..n]);
                    data = &data[n..];
                    if have + n < 9 {
                        self.state = State::Header(have + n);
                        continue;
                    }
                    let h = self.header;
                    let len =
                        (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
                    if carries_no_request(h[3], h[4], len) {
                        self.spend(now_ms)?;
                    }
                    self.state = if len == 0 {
                        State::Header(0)
                    } else {
                        State::Payload(len)
                    };
                }
                State::Payload(left) => {
                    let n = left.min(data.len());
                    data = &data[n..];
                    self.state = if n == left {
                        State::Header(0)
                    } else {
                        State::Payload(left - n)
                    };
                }
            }
        }
        Ok(())
    }

    /// Refill the allowance for the time since the last frame, then take one frame from it.
    fn spend(&mut self, now_ms: u64) -> Result<(), Flood> {
        let elapsed = now_ms.saturating_sub(self.refilled_ms);
        self.refilled_ms = now_ms;
        let full = u64::from(BURST) * 1000;
        self.tokens_milli = (self.tokens_milli + elapsed * u64::from(PER_SECOND)).min(full);
        if self.tokens_milli < 1000 {
            self.state = State::Flooded;
            return Err(H2_FLOOD);
        }
        self.tokens_milli -= 1000;
        Ok(())
    }
}

/// Whether a frame of `kind` with `flags` and a payload of `len` bytes asks nothing of the
/// application (see the module comment).
fn carries_no_request(kind: u8, flags: u8, len: usize) -> bool {
    const DATA: u8 = 0;
    const END_STREAM: u8 = 1;
    match kind {
        // PRIORITY, RST_STREAM, SETTINGS, PING, WINDOW_UPDATE.
        2 | 3 | 4 | 6 | 8 => true,
        DATA => len == 0 && flags & END_STREAM == 0,
        _ => false,
    }
}

/// Most frames one WebSocket message may come in.
pub(crate) const MAX_FRAGMENTS: u32 = 128;

const WS_FLOOD: Flood = Flood("WebSocket message in more than 128 fragments");

/// Counts the fragments of each WebSocket message a client sends (sans I/O). Frame syntax
/// beyond the header is tungstenite's to judge; this only needs to find the headers.
#[derive(Debug)]
pub(crate) struct WsFragments {
    /// Header bytes gathered so far (at most 2 + 8 + 4).
    header: [u8; 14],
    have: usize,
    /// Payload bytes of the current frame still to skip.
    skip: u64,
    /// Data frames of the message in progress; 0 between messages.
    fragments: u32,
    flooded: bool,
    /// Where, in the data of the current `feed`, the frame being read began (0: in an
    /// earlier one).
    frame_start: usize,
}

impl WsFragments {
    pub(crate) fn new() -> Self {
        WsFragments {
            header: [0; 14],
            have: 0,
            skip: 0,
            fragments: 0,
            flooded: false,
            frame_start: 0,
        }
    }

    /// The header length implied by its first two bytes.
    fn header_len(&self) -> usize {
        let ext = match self.header[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if self.header[1] & 0x80 != 0 { 4 } else { 0 };
        2 + ext + mask
    }

    /// A whole header is in `header`: account for its frame.
    fn frame(&mut self) -> Result<(), Flood> {
        let (b0, b1) = (self.header[0], self.header[1]);
        self.skip = match b1 & 0x7f {
            126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
            127 => {
                let mut l = [0u8; 8];
                l.copy_from_slice(&self.header[2..10]);
                u64::from_be_bytes(l)
            }
            n => u64::from(n),
        };
        let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0f);
        // Control frames (8-15) may come between fragments and do not count.
        if opcode < 8 {
            self.fragments += 1;
            if self.fragments > MAX_FRAGMENTS {
                self.flooded = true;
                return Err(WS_FLOOD);
            }
            if fin {
                self.fragments = 0;
            }
        }
        Ok(())
    }
}

impl Count for WsFragments {
    fn before_flood(&self) -> usize {
        self.frame_start
    }

    fn feed(&mut self, mut data: &[u8], _now_ms: u64) -> Result<(), Flood> {
        let total = data.len();
        self.frame_start = 0;
        while !data.is_empty() {
            if self.flooded {
                return Err(WS_FLOOD);
            }
            if self.skip > 0 {
                let n = usize::try_from(self.skip)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                data = &data[n..];
                self.skip -= n as u64;
                continue;
            }
            if self.have == 0 {
                self.frame_start = total - data.len();
            }
            // Two bytes first, to know how long the header is.
            let want = if self.have < 2 { 2 } else { self.header_len() };
            let n = (want - self.have).min(data.len());
            self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have >= 2 && self.have == self.header_len() {
                self.have = 0;
                self.frame()?;
            }
        }
        if self.flooded {
            return Err(WS_FLOOD);
        }
        Ok(())
    }
}

/// A stream whose reads go through a [`Count`]: past its limit, reads fail with a
/// [`Flood`] error (see [`is_flood`]).
pub(crate) struct Guard<T, C> {
    inner: T,
    counter: C,
    epoch: Instant,
    /// The limit was passed in a read that still delivered what came before: the next read
    /// fails with this.
    flooded: Option<Flood>,
}

impl<T, C> Guard<T, C> {
    pub(crate) fn new(inner: T, counter: C) -> Self {
        Guard {
            inner,
            counter,
            epoch: Instant::now(),
            flooded: None,
        }
    }
}

impl<T: AsyncRead + Unpin, C: Count + Unpin> AsyncRead for Guard<T, C> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let refuse = |flood| Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, flood)));
        if let Some(flood) = this.flooded {
            return refuse(flood);
        }
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            let now_ms = this.epoch.elapsed().as_millis() as u64;
            if let Err(flood) = this.counter.feed(&buf.filled()[before..], now_ms) {
                // What came before the offending frame goes on; the rest is dropped.
                let good = this.counter.before_flood();
                buf.set_filled(before + good);
                this.flooded = Some(flood);
                if good == 0 {
                    return refuse(flood);
                }
            }
        }
        res
    }
}

impl<T: AsyncWrite + Unpin, C: Unpin> AsyncWrite for Guard<T, C> {
    crate::net::observe::forward_writes!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            flags,
            0,
            0,
            0,
            1,
        ];
        f.extend_from_slice(payload);
        f
    }

    fn pings(n: usize) -> Vec<u8> {
        (0..n).flat_map(|_| frame(6, 0, &[0; 8])).collect()
    }

    #[test]
    fn a_burst_is_allowed_one_frame_more_is_not() {
        let mut c = FrameCounter::new();
        let mut bytes = PREFACE.to_vec();
        bytes.extend(pings(BURST as usize));
        assert_eq!(c.feed(&bytes, 0), Ok(()));
        assert_eq!(c.feed(&pings(1), 0), Err(H2_FLOOD));
        // And stays refused, whatever comes next.
        assert_eq!(c.feed(&frame(1, 4, &[0x82]), 1_000_000), Err(H2_FLOOD));
    }

    #[test]
    fn the_allowance_comes_back_over_time() {
        let mut c = FrameCounter::new();
        let mut bytes = PREFACE.to_vec();
        bytes.extend(pings(BURST as usize));
        assert_eq!(c.feed(&bytes, 0), Ok(()));
        // 10 ms later: one frame more.
        assert_eq!(c.feed(&pings(1), 10), Ok(()));
        assert_eq!(c.feed(&pings(1), 10), Err(H2_FLOOD));
        // A client pinging 50 times a second for a minute is never refused.
        let mut c = FrameCounter::new();
        assert_eq!(c.feed(PREFACE, 0), Ok(()));
        for i in 0..3000 {
            assert_eq!(c.feed(&pings(1), i * 20), Ok(()), "ping {i}");
        }
    }

    #[test]
    fn requests_and_their_data_are_not_counted() {
        let mut c = FrameCounter::new();
        assert_eq!(c.feed(PREFACE, 0), Ok(()));
        for _ in 0..10 * BURST {
            let mut f = frame(1, 4, &[0x82, 0x86, 0x84]);
            f.extend(frame(9, 4, &[0x41, 1, b'h']));
            f.extend(frame(0, 0, b"body"));
            f.extend(frame(0, 1, b""));
            assert_eq!(c.feed(&f, 0), Ok(()));
        }
        // Empty DATA without END_STREAM is counted.
        let empty: Vec<u8> = (0..=BURST).flat_map(|_| frame(0, 0, b"")).collect();
        assert_eq!(c.feed(&empty, 0), Err(H2_FLOOD));
    }

    #[test]
    fn frames_split_anywhere_are_counted_the_same() {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(1, 4, &[0; 300]));
        bytes.extend(pings(BURST as usize + 1));
        for step in [1, 2, 7, 9, 10, 4096] {
            let mut c = FrameCounter::new();
            let got = bytes
                .chunks(step)
                .map(|b| c.feed(b, 0))
                .find(|r| r.is_err());
            assert_eq!(got, Some(Err(H2_FLOOD)), "in pieces of {step}");
        }
    }

    #[test]
    fn http1_is_never_looked_at() {
        let mut c = FrameCounter::new();
        let mut bytes = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n".to_vec();
        bytes.extend(pings(10 * BURST as usize));
        assert_eq!(c.feed(&bytes, 0), Ok(()));
        assert_eq!(c.state, State::Off);
        // A preface that diverges late is not HTTP/2 either.
        let mut c = FrameCounter::new();
        assert_eq!(c.feed(b"PRI * HTTP/2.0\r\n\r\nXX", 0), Ok(()));
        assert_eq!(c.state, State::Off);
    }

    fn ws(first: u8, payload_len: usize) -> Vec<u8> {
        let mut f = vec![first];
        match payload_len {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n < 65536 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&[1, 2, 3, 4]);
        f.extend(std::iter::repeat_n(b'x', payload_len));
        f
    }

    /// A message in `n` data frames (the first text, the rest continuations, the last FIN),
    /// each with `len` bytes, and a ping between every two.
    fn message(n: u32, len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            let opcode = if i == 0 { 0x01 } else { 0x00 };
            let fin = if i + 1 == n { 0x80 } else { 0 };
            out.extend(ws(fin | opcode, len));
            out.extend(ws(0x89, 4));
        }
        out
    }

    #[test]
    fn ws_messages_of_up_to_128_fragments_pass_one_more_does_not() {
        let mut c = WsFragments::new();
        for n in [1, 2, MAX_FRAGMENTS] {
            for len in [0, 5, 125, 126, 300, 70_000] {
                assert_eq!(c.feed(&message(n, len), 0), Ok(()), "{n} x {len}");
            }
        }
        assert_eq!(c.feed(&message(MAX_FRAGMENTS + 1, 0), 0), Err(WS_FLOOD));
        assert_eq!(c.feed(&ws(0x81, 3), 0), Err(WS_FLOOD), "and stays refused");
    }

    #[test]
    fn ws_fragments_split_anywhere_are_counted_the_same() {
        let mut bytes = message(MAX_FRAGMENTS, 200);
        bytes.extend(message(MAX_FRAGMENTS + 1, 1));
        for step in [1, 2, 3, 13, 14, 4096] {
            let mut c = WsFragments::new();
            let got = bytes
                .chunks(step)
                .map(|b| c.feed(b, 0))
                .find(|r| r.is_err());
            assert_eq!(got, Some(Err(WS_FLOOD)), "in pieces of {step}");
        }
        // Many single-frame messages are never a flood.
        let mut c = WsFragments::new();
        let many: Vec<u8> = (0..10_000).flat_map(|_| ws(0x81, 3)).collect();
        assert_eq!(c.feed(&many, 0), Ok(()));
    }

    #[test]
    fn what_came_before_the_flooding_frame_is_passed_on() {
        // WebSocket: two whole messages, then a message in too many fragments: the bytes up
        // to the fragment that passes the limit may go on.
        let mut c = WsFragments::new();
        let good: Vec<u8> = (0..2).flat_map(|_| ws(0x81, 3)).collect();
        let flood = message(MAX_FRAGMENTS + 1, 0);
        let bytes = [good.clone(), flood.clone()].concat();
        assert_eq!(c.feed(&bytes, 0), Err(WS_FLOOD));
        // `message` puts a ping after each fragment: the 129th data frame starts after 128
        // (fragment, ping) pairs.
        let pair = ws(0x00, 0).len() + ws(0x89, 4).len();
        assert_eq!(c.before_flood(), good.len() + 128 * pair);
        // Within the flooding message itself, its first 128 fragments still pass.
        let mut c = WsFragments::new();
        assert_eq!(c.feed(&flood, 0), Err(WS_FLOOD));
        assert_eq!(c.before_flood(), 128 * pair);

        // HTTP/2: the preface and the allowance pass; the frame past it does not.
        let mut c = FrameCounter::new();
        let mut bytes = PREFACE.to_vec();
        bytes.extend(pings(BURST as usize + 5));
        assert_eq!(c.feed(&bytes, 0), Err(H2_FLOOD));
        assert_eq!(
            c.before_flood(),
            PREFACE.len() + BURST as usize * pings(1).len()
        );
    }

    #[test]
    fn floods_are_recognised_as_io_errors() {
        let e = io::Error::new(io::ErrorKind::InvalidData, WS_FLOOD);
        assert!(is_flood(&e));
        assert!(e.to_string().contains("128 fragments"));
        assert!(!is_flood(&io::Error::other("other")));
    }
}

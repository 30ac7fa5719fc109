//! Flood protection for what h2 answers without limit: HTTP/2 control frames.
//!
//! Every SETTINGS and PING an HTTP/2 client sends makes the server write an
//! acknowledgement, and h2 (hyper's HTTP/2) answers as many as it is sent: one client
//! streaming 100,000 of them kept a server worker busy for 400 ms at a time (a debug build),
//! and requests from other clients waited behind it. h2 already bounds rapid resets, oversize
//! and endless header blocks; [`FrameCounter`] bounds the rest, as nginx and Go's server do:
//! once a connection has sent more frames that carry no request than a token bucket allows
//! ([`BURST`], refilled at [`PER_SECOND`]), it is ended. Counted: SETTINGS, PING, PRIORITY,
//! RST_STREAM, WINDOW_UPDATE, and empty DATA frames without END_STREAM. Not counted: HEADERS,
//! CONTINUATION (h2 limits those), DATA with a payload. A connection that does not start with
//! the HTTP/2 preface is not looked at.
//!
//! The counter reads the frame headers on their way to h2 ([`Guard`]). The bytes before the
//! frame that passed the limit still reach h2, so what the client sent in good order is
//! answered; the next read fails.
//!
//! (WebSocket messages in endless fragments are bounded by the server's own frame reader,
//! `ws::frame`.)

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

    #[test]
    fn what_came_before_the_flooding_frame_is_passed_on() {
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
}

//! WebSocket frames as this server reads and writes them (RFC 6455 section 5), sans I/O.
//!
//! [`Reader`] takes the bytes a client sent and returns one event per frame: a whole data
//! message (unmasked in place when it came in one frame, assembled when it came in several),
//! a ping, a close, or nothing (a pong, a fragment). Everything the RFC makes a protocol
//! error is refused with the status code the session closes with:
//!
//! | what the client sent | code |
//! |---|---|
//! | reserved bits set (no extension is negotiated), an unmasked frame, a reserved opcode, a fragmented or over-125-byte control frame, a continuation without a message or a new message inside one, a 64-bit length with its top bit set, a 1-byte close payload or a close code a client may not send | 1002 |
//! | a message over the limit (refused from its frame header, before its payload is read) | 1009 |
//! | a message in more than [`MAX_FRAGMENTS`] frames (control frames between them not counted) | 1008 |
//! | a close reason that is not UTF-8 | 1007 |
//!
//! The writers build the server's frames: unmasked, final, with the shortest length.

use std::borrow::Cow;

/// Most frames one message may come in. Messages are small (`ws_max_message`, 1024 bytes
/// by default), so no client needs more; without a bound, one message of 10,000 empty
/// fragments is 10,000 frames read for one request.
pub(crate) const MAX_FRAGMENTS: u32 = 128;

/// Longest control frame payload (RFC 6455 section 5.5).
const MAX_CONTROL: u64 = 125;

/// Longest close reason: a close frame's payload is a control frame's, less the code.
pub(crate) const MAX_REASON: usize = 123;

/// Status codes this server closes with (RFC 6455 section 7.4.1).
pub(crate) mod code {
    pub(crate) const NORMAL: u16 = 1000;
    pub(crate) const AWAY: u16 = 1001;
    pub(crate) const PROTOCOL: u16 = 1002;
    pub(crate) const INVALID: u16 = 1007;
    pub(crate) const POLICY: u16 = 1008;
    pub(crate) const SIZE: u16 = 1009;
}

const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// Why the session closes: the status code and a reason for the close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) code: u16,
    pub(crate) reason: Cow<'static, str>,
}

impl Refusal {
    pub(crate) fn new(code: u16, reason: impl Into<Cow<'static, str>>) -> Self {
        Refusal {
            code,
            reason: reason.into(),
        }
    }

    fn protocol(reason: &'static str) -> Self {
        Refusal::new(code::PROTOCOL, reason)
    }
}

/// What one frame amounts to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event<'a> {
    /// A whole data message, unmasked: `text` for a text message, else binary.
    Message { text: bool, payload: Cow<'a, [u8]> },
    /// A ping, to be answered with a pong carrying its payload.
    Ping(&'a [u8]),
    /// The client's close, with its status code if it sent one (checked).
    Close(Option<u16>),
    /// Nothing to answer: a pong, or a fragment of a message not complete yet.
    Nothing,
}

/// A message arriving in fragments.
#[derive(Debug)]
struct Partial {
    text: bool,
    payload: Vec<u8>,
    frames: u32,
}

/// Reads a client's frames, one at a time, from the bytes it sent.
#[derive(Debug)]
pub(crate) struct Reader {
    /// Largest message, in bytes.
    limit: usize,
    /// The message arriving in fragments, if one is: on the heap only while one is.
    partial: Option<Box<Partial>>,
}

impl Reader {
    pub(crate) fn new(limit: usize) -> Self {
        Reader {
            limit,
            partial: None,
        }
    }

    /// Between messages: nothing is held for a message in fragments.
    pub(crate) fn is_between_messages(&self) -> bool {
        self.partial.is_none()
    }

    /// Read the frame at the start of `buf`, unmasking its payload in place: the bytes it took
    /// and its event, `None` if the frame is not all there yet (read more and call again with
    /// the same start), or why the session must close.
    pub(crate) fn next<'a>(
        &mut self,
        buf: &'a mut [u8],
    ) -> Result<Option<(usize, Event<'a>)>, Refusal> {
        let [b0, b1, ..] = *buf else {
            return Ok(None);
        };
        let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0f);
        if b0 & 0x70 != 0 {
            return Err(Refusal::protocol(
                "reserved bits set, but no extension was negotiated",
            ));
        }
        if b1 & 0x80 == 0 {
            return Err(Refusal::protocol(
                "client frames must be masked (RFC 6455 section 5.1)",
            ));
        }
        let (ext, len) = match b1 & 0x7f {
            126 => (2, None),
            127 => (8, None),
            n => (0, Some(u64::from(n))),
        };
        let head = 2 + ext + 4;
        if buf.len() < head {
            return Ok(None);
        }
        let len = match len {
            Some(n) => n,
            None if ext == 2 => u64::from(u16::from_be_bytes([buf[2], buf[3]])),
            None => {
                let mut l = [0u8; 8];
                l.copy_from_slice(&buf[2..10]);
                let l = u64::from_be_bytes(l);
                if l >> 63 != 0 {
                    return Err(Refusal::protocol("frame length with its top bit set"));
                }
                l
            }
        };
        match opcode {
            CLOSE | PING | PONG => {
                if !fin {
                    return Err(Refusal::protocol("fragmented control frame"));
                }
                if len > MAX_CONTROL {
                    return Err(Refusal::protocol("control frame over 125 bytes"));
                }
            }
            TEXT | BINARY | CONTINUATION => {
                let so_far = match (&self.partial, opcode) {
                    (Some(_), TEXT | BINARY) => {
                        return Err(Refusal::protocol(
                            "a new message began before the last fragment of the previous one",
                        ))
                    }
                    (None, CONTINUATION) => {
                        return Err(Refusal::protocol(
                            "continuation frame without a message to continue",
                        ))
                    }
                    (Some(p), _) => {
                        if p.frames >= MAX_FRAGMENTS {
                            return Err(Refusal::new(
                                code::POLICY,
                                "WebSocket message in more than 128 fragments",
                            ));
                        }
                        p.payload.len()
                    }
                    (None, _) => 0,
                };
                if (so_far as u64).saturating_add(len) > self.limit as u64 {
                    return Err(Refusal::new(
                        code::SIZE,
                        format!("message larger than {} bytes", self.limit),
                    ));
                }
            }
            other => {
                return Err(Refusal::new(
                    code::PROTOCOL,
                    format!("reserved opcode {other:#x}"),
                ))
            }
        }
        // Bounded: a data frame by the limit, a control frame by 125.
        let len = len as usize;
        let total = head + len;
        if buf.len() < total {
            return Ok(None);
        }
        let (header, rest) = buf.split_at_mut(head);
        let payload = &mut rest[..len];
        let mask = [
            header[head - 4],
            header[head - 3],
            header[head - 2],
            header[head - 1],
        ];
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
        let payload = &*payload;
        let event = match opcode {
            PING => Event::Ping(payload),
            PONG => Event::Nothing,
            CLOSE => Event::Close(close_code(payload)?),
            TEXT | BINARY if fin => Event::Message {
                text: opcode == TEXT,
                payload: Cow::Borrowed(payload),
            },
            TEXT | BINARY => {
                self.partial = Some(Box::new(Partial {
                    text: opcode == TEXT,
                    payload: payload.to_vec(),
                    frames: 1,
                }));
                Event::Nothing
            }
            _ => {
                // A continuation: the message in progress was checked above.
                let Some(p) = self.partial.as_mut() else {
                    return Err(Refusal::protocol(
                        "continuation frame without a message to continue",
                    ));
                };
                p.payload.extend_from_slice(payload);
                p.frames += 1;
                if fin {
                    let p = self.partial.take().map(|p| *p);
                    match p {
                        Some(p) => Event::Message {
                            text: p.text,
                            payload: Cow::Owned(p.payload),
                        },
                        None => Event::Nothing,
                    }
                } else {
                    Event::Nothing
                }
            }
        };
        Ok(Some((total, event)))
    }
}

/// The status code of a client's close frame payload, checked (RFC 6455 sections 5.5.1 and
/// 7.4).
fn close_code(payload: &[u8]) -> Result<Option<u16>, Refusal> {
    match payload {
        [] => Ok(None),
        [_] => Err(Refusal::protocol("close frame with a 1-byte payload")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            // Codes a peer may send: the defined ones that are not reserved for local use,
            // and those registered (3000-3999) or private (4000-4999).
            if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
                return Err(Refusal::new(
                    code::PROTOCOL,
                    format!("close code {code} may not be sent (RFC 6455 section 7.4)"),
                ));
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(Refusal::new(code::INVALID, "close reason is not UTF-8"));
            }
            Ok(Some(code))
        }
    }
}

/// Append a server frame (final, unmasked) with `opcode` and `payload` to `out`.
fn write(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.push(0x80 | opcode);
    write_len(out, 0, payload.len());
    out.extend_from_slice(payload);
}

/// Append a frame's second byte (`mask_bit` and the length, or 126/127) and its extended
/// length, in the shortest form.
fn write_len(out: &mut Vec<u8>, mask_bit: u8, len: usize) {
    match len {
        n @ 0..=125 => out.push(mask_bit | n as u8),
        n @ 126..=0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
}

/// Append a text message to `out`.
pub(crate) fn text(out: &mut Vec<u8>, payload: &[u8]) {
    write(out, TEXT, payload);
}

/// Append the pong answering a ping with `payload` (at most 125 bytes, as the ping's).
pub(crate) fn pong(out: &mut Vec<u8>, payload: &[u8]) {
    write(out, PONG, payload);
}

/// Append a close frame to `out`: `code`, if any, and `reason` cut to [`MAX_REASON`] bytes
/// at a character boundary.
pub(crate) fn close(out: &mut Vec<u8>, code: Option<u16>, reason: &str) {
    let Some(code) = code else {
        write(out, CLOSE, &[]);
        return;
    };
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = [0u8; 2 + MAX_REASON];
    payload[..2].copy_from_slice(&code.to_be_bytes());
    payload[2..2 + end].copy_from_slice(&reason.as_bytes()[..end]);
    write(out, CLOSE, &payload[..2 + end]);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A client frame: `first` (FIN, RSV, opcode), masked `payload`.
    fn client(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![first];
        write_len(&mut f, 0x80, payload.len());
        f.extend_from_slice(&MASK);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
        f
    }

    /// Every event in `bytes`, fed whole; the refusal that ended them, if any.
    fn read_all(limit: usize, mut bytes: Vec<u8>) -> (Vec<String>, Option<Refusal>) {
        let mut r = Reader::new(limit);
        let mut seen = Vec::new();
        let mut start = 0;
        loop {
            match r.next(&mut bytes[start..]) {
                Ok(Some((used, ev))) => {
                    seen.push(describe(&ev));
                    start += used;
                }
                Ok(None) => return (seen, None),
                Err(e) => return (seen, Some(e)),
            }
        }
    }

    fn describe(ev: &Event<'_>) -> String {
        match ev {
            Event::Message { text, payload } => {
                format!(
                    "{}:{}",
                    if *text { "text" } else { "binary" },
                    String::from_utf8_lossy(payload)
                )
            }
            Event::Ping(p) => format!("ping:{}", String::from_utf8_lossy(p)),
            Event::Close(c) => format!("close:{c:?}"),
            Event::Nothing => "-".into(),
        }
    }

    #[test]
    fn whole_messages_pings_and_closes_are_read_in_order() {
        let mut bytes = client(0x81, b"1.5");
        bytes.extend(client(0x82, b"2.5"));
        bytes.extend(client(0x89, b"hi"));
        bytes.extend(client(0x8a, b"pong"));
        bytes.extend(client(0x81, &[b'7'; 200]));
        bytes.extend(client(0x88, &[0x03, 0xe8, b'b', b'y', b'e']));
        let (seen, end) = read_all(1024, bytes);
        assert_eq!(end, None);
        let long = format!("text:{}", "7".repeat(200));
        assert_eq!(
            seen,
            [
                "text:1.5",
                "binary:2.5",
                "ping:hi",
                "-",
                &long,
                "close:Some(1000)"
            ]
        );
    }

    #[test]
    fn fragments_are_assembled_with_control_frames_between() {
        let mut bytes = client(0x01, b"15589");
        bytes.extend(client(0x89, b""));
        bytes.extend(client(0x00, b"15619."));
        bytes.extend(client(0x80, b"944235"));
        let (seen, end) = read_all(1024, bytes);
        assert_eq!(end, None);
        assert_eq!(seen, ["-", "ping:", "-", "text:1558915619.944235"]);
    }

    #[test]
    fn a_frame_split_anywhere_reads_the_same() {
        let mut bytes = client(0x81, &[b'3'; 130]);
        bytes.extend(client(0x01, b"ab"));
        bytes.extend(client(0x80, b"cd"));
        for cut in 0..bytes.len() {
            let mut r = Reader::new(1024);
            let mut buf = bytes[..cut].to_vec();
            let mut seen = Vec::new();
            let mut start = 0;
            // Feed the first `cut` bytes, then everything.
            while let Some((used, ev)) = r.next(&mut buf[start..]).unwrap() {
                seen.push(describe(&ev));
                start += used;
            }
            let mut buf = [&buf[start..], &bytes[cut..]].concat();
            let mut at = 0;
            while let Some((used, ev)) = r.next(&mut buf[at..]).unwrap() {
                seen.push(describe(&ev));
                at += used;
            }
            assert_eq!(at, buf.len(), "cut at {cut}");
            let long = format!("text:{}", "3".repeat(130));
            assert_eq!(seen, [long.as_str(), "-", "text:abcd"], "cut at {cut}");
        }
    }

    #[test]
    fn protocol_violations_are_refused_with_1002() {
        let mut unmasked = client(0x81, b"1");
        unmasked[1] &= 0x7f;
        let huge = {
            let mut f = vec![0x81, 0x80 | 127];
            f.extend_from_slice(&(1u64 << 63).to_be_bytes());
            f.extend_from_slice(&MASK);
            f
        };
        let cases: [(&str, Vec<u8>); 10] = [
            ("reserved bit", client(0xc1, b"1")),
            ("unmasked", unmasked),
            ("reserved data opcode", client(0x83, b"1")),
            ("reserved control opcode", client(0x8b, b"")),
            ("fragmented ping", client(0x09, b"x")),
            ("long ping", client(0x89, &[0; 126])),
            ("continuation alone", client(0x80, b"1")),
            (
                "new message inside one",
                [client(0x01, b"1"), client(0x81, b"2")].concat(),
            ),
            ("top bit length", huge),
            ("1-byte close", client(0x88, &[3])),
        ];
        for (what, bytes) in cases {
            let (_, end) = read_all(1 << 20, bytes);
            let end = end.unwrap_or_else(|| panic!("{what}: accepted"));
            assert_eq!(end.code, code::PROTOCOL, "{what}: {end:?}");
        }
        for bad in [0u16, 999, 1004, 1005, 1006, 1015, 2999, 5000, 65535] {
            let (_, end) = read_all(1024, client(0x88, &bad.to_be_bytes()));
            assert_eq!(
                end.map(|e| e.code),
                Some(code::PROTOCOL),
                "close code {bad}"
            );
        }
        for good in [1000u16, 1001, 1003, 1007, 1011, 1014, 3000, 4999] {
            let (seen, end) = read_all(1024, client(0x88, &good.to_be_bytes()));
            assert_eq!((seen, end), (vec![format!("close:Some({good})")], None));
        }
        let (_, end) = read_all(1024, client(0x88, &[0x03, 0xe8, 0xff]));
        assert_eq!(end.map(|e| e.code), Some(code::INVALID), "reason not UTF-8");
        let (seen, _) = read_all(1024, client(0x88, b""));
        assert_eq!(seen, ["close:None"]);
    }

    #[test]
    fn the_limit_holds_for_whole_and_fragmented_messages_before_the_payload() {
        let (seen, end) = read_all(1024, client(0x81, &[b'1'; 1024]));
        assert_eq!((seen.len(), end), (1, None), "exactly the limit");
        // Refused from the header alone: the payload has not arrived.
        let mut head = client(0x81, &[b'1'; 1025]);
        head.truncate(8);
        let (_, end) = read_all(1024, head);
        assert_eq!(end.map(|e| e.code), Some(code::SIZE));
        let bytes = [client(0x01, &[b'1'; 1000]), client(0x80, &[b'1'; 25])].concat();
        let (seen, end) = read_all(1024, bytes);
        assert_eq!(seen, ["-"]);
        let end = end.expect("refused");
        assert_eq!(end.code, code::SIZE);
        assert!(end.reason.contains("1024"), "{end:?}");
    }

    #[test]
    fn a_message_may_come_in_128_fragments_not_129() {
        for (n, refused) in [(128, false), (129, true)] {
            let mut bytes = client(0x01, b"1");
            for _ in 1..n - 1 {
                bytes.extend(client(0x00, b""));
                // Control frames between fragments do not count.
                bytes.extend(client(0x8a, b""));
            }
            bytes.extend(client(0x80, b".5"));
            let (seen, end) = read_all(1024, bytes);
            if refused {
                let end = end.expect("refused");
                assert_eq!(end.code, code::POLICY);
                assert!(end.reason.contains("128 fragments"));
            } else {
                assert_eq!(end, None);
                assert_eq!(seen.last().map(String::as_str), Some("text:1.5"));
            }
        }
    }

    #[test]
    fn server_frames_use_the_shortest_length_and_no_mask() {
        for (len, head) in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let mut out = Vec::new();
            text(&mut out, &vec![b'x'; len]);
            assert_eq!(out.len(), head + len, "{len}");
            assert_eq!(out[0], 0x81);
            assert_eq!(out[1] & 0x80, 0, "unmasked");
        }
        let mut out = Vec::new();
        pong(&mut out, b"p");
        assert_eq!(out, [0x8a, 1, b'p']);
    }

    #[test]
    fn close_reasons_are_cut_to_123_bytes_at_a_character() {
        let mut out = Vec::new();
        close(&mut out, Some(code::NORMAL), "idle timeout");
        assert_eq!(&out[..4], &[0x88, 14, 0x03, 0xe8]);
        assert_eq!(&out[4..], b"idle timeout");
        let long = "é".repeat(100);
        out.clear();
        close(&mut out, Some(code::INVALID), &long);
        let payload = &out[2..];
        assert!(payload.len() <= 125);
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
        out.clear();
        close(&mut out, None, "ignored");
        assert_eq!(out, [0x88, 0]);
    }
}

//! NTP's packet (RFC 5905 section 7.3) for webntpd's NTP server and `webntpd query ntp://`:
//! the 48-byte header, NTP's 64-bit timestamps and 32-bit short format, and [`respond`], the
//! server's answer to one datagram as a pure function: request bytes, the receive time and
//! what to serve ([`Served`], [`crate::sync::serve`]'s rules) in, reply bytes or the reason
//! to stay silent out. No sockets, no clocks.
//!
//! What is answered: client requests (mode 3) of NTP versions 3 and 4, 48 bytes up to
//! [`MAX_REQUEST_LEN`] (extension fields and MACs are allowed and ignored). The reply is the
//! 48-byte header alone, so it is never larger than the request: nobody can use the server
//! to amplify traffic towards a spoofed address. Control and private queries (modes 6 and 7:
//! ntpq's and ntpdc's, the classic amplification vectors), every other mode, other
//! versions, short and oversize datagrams are dropped, each with its [`Dropped`] reason.
//!
//! The transmit timestamp is written last ([`Reply::stamp_transmit`]), by the caller, as
//! late as possible before the datagram goes to the kernel.

use crate::sync::leap::Leap;
use crate::sync::serve::Served;
use crate::sync::Timestamp;

use super::NTP_UNIX_OFFSET_SECS;

/// The NTP header's length, and every reply's.
pub const HEADER_LEN: usize = 48;

/// The longest request answered: a header with extension fields or a MAC. Longer datagrams
/// (the server reads up to one byte more, to tell) are dropped.
pub const MAX_REQUEST_LEN: usize = 1024;

/// Mode 3: a client's request.
pub const MODE_CLIENT: u8 = 3;
/// Mode 4: a server's reply.
pub const MODE_SERVER: u8 = 4;
/// Mode 6: a control query (ntpq).
pub const MODE_CONTROL: u8 = 6;
/// Mode 7: a private query (ntpdc, `monlist`).
pub const MODE_PRIVATE: u8 = 7;

/// The precision stated in every reply, log2 seconds: -18 is 3.8 us, which covers how far
/// the kernel's receive stamps may be from the clock the transmit time is read from
/// ([`crate::sync::exchange::KERNEL_STAMP_AGREEMENT_NS`], 3 us); clock readings themselves
/// are nanoseconds.
pub const PRECISION: i8 = -18;

/// The kiss code of a rate-limited client's Kiss-o'-Death.
pub const KISS_RATE: [u8; 4] = *b"RATE";

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// A time as NTP's 64-bit timestamp: seconds since 1900 modulo 2^32 (the era is implied),
/// and a 32-bit fraction. Truncated to the 2^-32 s (0.23 ns) below.
pub fn to_ntp(t: Timestamp) -> u64 {
    let ns = t.as_nanos();
    let secs = ns.div_euclid(NANOS_PER_SEC) + i128::from(NTP_UNIX_OFFSET_SECS);
    let frac = (ns.rem_euclid(NANOS_PER_SEC) << 32) / NANOS_PER_SEC;
    // The era wraps every 2^32 s: only the low 32 bits of the seconds are sent.
    ((secs.rem_euclid(1 << 32) as u64) << 32) | frac as u64
}

/// An NTP timestamp as a time: of the eras it could be in, the one that puts it nearest
/// `near` (within 68 years of it). Rounded to the nearest nanosecond.
pub fn from_ntp(v: u64, near: Timestamp) -> Timestamp {
    let secs = i128::from(v >> 32) - i128::from(NTP_UNIX_OFFSET_SECS);
    let frac_ns = ((i128::from(v & 0xFFFF_FFFF) * NANOS_PER_SEC) + (1 << 31)) >> 32;
    let era0 = secs * NANOS_PER_SEC + frac_ns;
    let span = (1i128 << 32) * NANOS_PER_SEC;
    let eras = (near.as_nanos() - era0 + span / 2).div_euclid(span);
    Timestamp::from_nanos(era0 + eras * span)
}

/// Nanoseconds in NTP's 32-bit short format (16 bits of seconds, 16 of fraction), rounded
/// up so a stated error is never smaller than the one meant; 0 below zero, the largest
/// value (about 18 hours) above it.
pub fn to_short(ns: i64) -> u32 {
    if ns <= 0 {
        return 0;
    }
    let units = ((i128::from(ns) << 16) + NANOS_PER_SEC - 1) / NANOS_PER_SEC;
    u32::try_from(units).unwrap_or(u32::MAX)
}

/// A short-format value in nanoseconds.
pub fn from_short(v: u32) -> i64 {
    ((i128::from(v) * NANOS_PER_SEC) >> 16) as i64
}

/// The NTP header's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// The leap indicator, 0-3.
    pub leap: u8,
    /// The version, 0-7.
    pub version: u8,
    /// The association mode, 0-7.
    pub mode: u8,
    /// 0 (a Kiss-o'-Death), 1-15, 16 (unsynchronised).
    pub stratum: u8,
    /// log2 of the poll interval in seconds.
    pub poll: i8,
    /// log2 of the clock's precision in seconds.
    pub precision: i8,
    /// Root delay, short format.
    pub root_delay: u32,
    /// Root dispersion, short format.
    pub root_dispersion: u32,
    /// The reference ID (a kiss code with stratum 0).
    pub reference_id: [u8; 4],
    /// When the clock was last set, NTP timestamp.
    pub reference: u64,
    /// The request's transmit timestamp, echoed.
    pub origin: u64,
    /// When the request arrived.
    pub receive: u64,
    /// When the reply left.
    pub transmit: u64,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    (u64::from(u32_at(b, at)) << 32) | u64::from(u32_at(b, at + 4))
}

impl Header {
    /// The header at the start of `bytes`; `None` when there are fewer than 48.
    pub fn parse(bytes: &[u8]) -> Option<Header> {
        let b = bytes.get(..HEADER_LEN)?;
        Some(Header {
            leap: b[0] >> 6,
            version: (b[0] >> 3) & 7,
            mode: b[0] & 7,
            stratum: b[1],
            poll: b[2] as i8,
            precision: b[3] as i8,
            root_delay: u32_at(b, 4),
            root_dispersion: u32_at(b, 8),
            reference_id: [b[12], b[13], b[14], b[15]],
            reference: u64_at(b, 16),
            origin: u64_at(b, 24),
            receive: u64_at(b, 32),
            transmit: u64_at(b, 40),
        })
    }

    /// The 48 bytes on the wire.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0] = (self.leap & 3) << 6 | (self.version & 7) << 3 | (self.mode & 7);
        b[1] = self.stratum;
        b[2] = self.poll as u8;
        b[3] = self.precision as u8;
        b[4..8].copy_from_slice(&self.root_delay.to_be_bytes());
        b[8..12].copy_from_slice(&self.root_dispersion.to_be_bytes());
        b[12..16].copy_from_slice(&self.reference_id);
        b[16..24].copy_from_slice(&self.reference.to_be_bytes());
        b[24..32].copy_from_slice(&self.origin.to_be_bytes());
        b[32..40].copy_from_slice(&self.receive.to_be_bytes());
        b[40..48].copy_from_slice(&self.transmit.to_be_bytes());
        b
    }
}

/// Why a datagram gets no reply. Each is counted, none is logged per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dropped {
    /// Fewer than 48 bytes: a reply would be larger than the request.
    TooShort,
    /// More than [`MAX_REQUEST_LEN`] bytes.
    Oversize,
    /// An NTP version other than 3 or 4.
    Version,
    /// A control or private query (mode 6 or 7), never answered.
    Control,
    /// Any other mode than a client's request (symmetric, broadcast, a server's reply).
    Mode,
    /// The client's address is not allowed (`allow`/`deny`).
    Denied,
    /// The client sends faster than the rate limit, and gets no Kiss-o'-Death this time.
    RateLimited,
}

impl Dropped {
    /// Every reason, in the order `webntpd status` lists them.
    pub const ALL: [Dropped; 7] = [
        Dropped::Denied,
        Dropped::RateLimited,
        Dropped::Control,
        Dropped::Mode,
        Dropped::Version,
        Dropped::TooShort,
        Dropped::Oversize,
    ];

    /// Its name in `webntpd status` and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Dropped::TooShort => "too short",
            Dropped::Oversize => "oversize",
            Dropped::Version => "bad version",
            Dropped::Control => "mode 6/7",
            Dropped::Mode => "other mode",
            Dropped::Denied => "denied",
            Dropped::RateLimited => "rate-limited",
        }
    }

    /// The same reason as a metric label (`webntpd_ntp_dropped_total{reason}`): snake case,
    /// `control` for modes 6 and 7.
    pub fn label(self) -> &'static str {
        match self {
            Dropped::TooShort => "too_short",
            Dropped::Oversize => "oversize",
            Dropped::Version => "bad_version",
            Dropped::Control => "control",
            Dropped::Mode => "other_mode",
            Dropped::Denied => "denied",
            Dropped::RateLimited => "rate_limited",
        }
    }
}

/// A reply, complete but for its transmit timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    bytes: [u8; HEADER_LEN],
    /// Added to the local clock's reading of the transmit time; `None` for a Kiss-o'-Death,
    /// whose transmit timestamp is set already.
    offset_ns: Option<i64>,
}

impl Reply {
    /// Write the transmit timestamp: `local_now`, the local clock read just before sending,
    /// plus the offset served. A Kiss-o'-Death keeps the one it has.
    pub fn stamp_transmit(&mut self, local_now: Timestamp) -> &[u8] {
        if let Some(offset_ns) = self.offset_ns {
            let t = to_ntp(local_now.add_nanos(i128::from(offset_ns)));
            self.bytes[40..48].copy_from_slice(&t.to_be_bytes());
        }
        &self.bytes
    }

    /// The bytes as they are (the transmit timestamp zero until stamped).
    pub fn bytes(&self) -> &[u8; HEADER_LEN] {
        &self.bytes
    }
}

/// The request's header, if the datagram is a request this server answers.
fn request(datagram: &[u8]) -> Result<Header, Dropped> {
    if datagram.len() > MAX_REQUEST_LEN {
        return Err(Dropped::Oversize);
    }
    let h = Header::parse(datagram).ok_or(Dropped::TooShort)?;
    match h.mode {
        MODE_CONTROL | MODE_PRIVATE => return Err(Dropped::Control),
        MODE_CLIENT => {}
        _ => return Err(Dropped::Mode),
    }
    if !(3..=4).contains(&h.version) {
        return Err(Dropped::Version);
    }
    Ok(h)
}

/// Check a datagram without answering it: whether it is a request this server answers.
pub fn check(datagram: &[u8]) -> Result<(), Dropped> {
    request(datagram).map(|_| ())
}

/// The answer to `datagram`, received at local time `received`, serving `served`: a mode 4
/// header with the request's version and poll, its transmit timestamp as the origin, and
/// every other field from `served` (the local times moved by its offset). The transmit
/// timestamp is left for [`Reply::stamp_transmit`].
pub fn respond(datagram: &[u8], received: Timestamp, served: &Served) -> Result<Reply, Dropped> {
    let req = request(datagram)?;
    let leap = served.leap.code() as u8;
    let header = Header {
        leap,
        version: req.version,
        mode: MODE_SERVER,
        stratum: served.stratum,
        poll: req.poll,
        precision: PRECISION,
        root_delay: to_short(served.root_delay_ns),
        root_dispersion: to_short(served.root_dispersion_ns),
        reference_id: served.reference_id,
        reference: served.reference_time.map_or(0, to_ntp),
        origin: req.transmit,
        receive: to_ntp(received.add_nanos(i128::from(served.offset_ns))),
        transmit: 0,
    };
    Ok(Reply {
        bytes: header.encode(),
        offset_ns: Some(served.offset_ns),
    })
}

/// A Kiss-o'-Death with `code` (stratum 0, leap indicator 3) for `datagram`, if it is a
/// request this server answers. Its receive and transmit timestamps are the client's own
/// transmit timestamp, as chrony sends them: a client that does not understand the kiss
/// learns no time from it.
pub fn kiss(datagram: &[u8], code: [u8; 4]) -> Result<Reply, Dropped> {
    let req = request(datagram)?;
    let header = Header {
        leap: Leap::Unsynchronised.code() as u8,
        version: req.version,
        mode: MODE_SERVER,
        stratum: 0,
        poll: req.poll,
        precision: PRECISION,
        reference_id: code,
        origin: req.transmit,
        receive: req.transmit,
        transmit: req.transmit,
        ..Header::default()
    };
    Ok(Reply {
        bytes: header.encode(),
        offset_ns: None,
    })
}

/// A client's request: version 4, mode 3, the given transmit timestamp, everything else
/// zero (as SNTP clients send it).
pub fn client_request(transmit: u64) -> [u8; HEADER_LEN] {
    Header {
        version: 4,
        mode: MODE_CLIENT,
        transmit,
        ..Header::default()
    }
    .encode()
}

/// A server's reply, as `webntpd query ntp://` reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerReply {
    /// The header.
    pub header: Header,
}

/// Why a datagram is not a usable answer to our request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyProblem {
    /// Not a server reply to a request we sent (wrong length, mode or origin): ignored.
    #[error("not a reply to our request")]
    NotOurs,
    /// A Kiss-o'-Death.
    #[error("the server sent a Kiss-o'-Death {0}{hint}", hint = kiss_hint(.0))]
    Kiss(String),
    /// The server says it is not synchronised.
    #[error("the server is not synchronised (leap indicator {leap}, stratum {stratum}, reference ID {refid})")]
    Unsynchronised {
        /// Its leap indicator.
        leap: u8,
        /// Its stratum.
        stratum: u8,
        /// Its reference ID, as text when it is ASCII.
        refid: String,
    },
    /// No transmit or receive time.
    #[error("the reply has no receive or transmit timestamp")]
    NoTimestamps,
}

fn kiss_hint(code: &str) -> &'static str {
    match code {
        "RATE" => ": it rate-limits this client; ask less often (fewer --samples)",
        "DENY" | "RSTR" => ": it refuses this client",
        _ => "",
    }
}

/// A reference ID as text: four ASCII letters as they are, else an IPv4 address's form.
pub fn refid_text(id: [u8; 4]) -> String {
    let letters = id.iter().take_while(|b| **b != 0).count();
    if letters > 0 && id[..letters].iter().all(|b| b.is_ascii_graphic()) {
        String::from_utf8_lossy(&id[..letters]).into_owned()
    } else {
        std::net::Ipv4Addr::from(id).to_string()
    }
}

/// Read `datagram` as the server's reply to a request whose transmit timestamp was `sent`.
pub fn read_reply(datagram: &[u8], sent: u64) -> Result<ServerReply, ReplyProblem> {
    let h = Header::parse(datagram).ok_or(ReplyProblem::NotOurs)?;
    if h.mode != MODE_SERVER || h.origin != sent || datagram.len() > MAX_REQUEST_LEN {
        return Err(ReplyProblem::NotOurs);
    }
    if h.stratum == 0 {
        return Err(ReplyProblem::Kiss(refid_text(h.reference_id)));
    }
    if h.leap == Leap::Unsynchronised.code() as u8 || h.stratum >= 16 {
        return Err(ReplyProblem::Unsynchronised {
            leap: h.leap,
            stratum: h.stratum,
            refid: refid_text(h.reference_id),
        });
    }
    if h.receive == 0 || h.transmit == 0 {
        return Err(ReplyProblem::NoTimestamps);
    }
    Ok(ServerReply { header: h })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::serve::{Unsynchronised, STRATUM_UNSYNCHRONISED};

    const MS: i64 = 1_000_000;
    /// 2026-12-01 00:00:00 UTC.
    const NOW: Timestamp = Timestamp::from_secs(1_796_083_200);

    fn served() -> Served {
        Served {
            leap: Leap::InsertSecond,
            stratum: 3,
            reference_id: *b"WNTP",
            reference_time: Some(NOW.add_nanos(-5_000_000_000)),
            root_delay_ns: 2 * MS,
            root_dispersion_ns: 3 * MS,
            offset_ns: 100 * MS,
            unsynchronised: None,
        }
    }

    fn req(version: u8, mode: u8, len: usize) -> Vec<u8> {
        let mut b = Header {
            version,
            mode,
            poll: 6,
            transmit: 0x1122_3344_5566_7788,
            ..Header::default()
        }
        .encode()
        .to_vec();
        b.resize(len, 0xAB);
        b
    }

    #[test]
    fn timestamps_convert_both_ways_across_eras() {
        // The Unix epoch is NTP's 2208988800.
        assert_eq!(to_ntp(Timestamp::ZERO), 2_208_988_800u64 << 32);
        // Half a second is half the fraction.
        assert_eq!(
            to_ntp(Timestamp::from_nanos(500_000_000)) & 0xFFFF_FFFF,
            1 << 31
        );
        for t in [
            NOW,
            NOW.add_nanos(123_456_789),
            Timestamp::from_secs(2_085_978_495), // the last second of era 0 (2036-02-07)
            Timestamp::from_secs(2_085_978_496), // era 1 begins
            Timestamp::from_secs(2_085_978_496 + 86_400 * 365),
        ] {
            let back = from_ntp(to_ntp(t), NOW);
            assert!(
                back.nanos_since(t).abs() <= 1,
                "{t:?} -> {:#x} -> {back:?}",
                to_ntp(t)
            );
        }
        // Era 1 wraps to small seconds.
        assert_eq!(to_ntp(Timestamp::from_secs(2_085_978_496)) >> 32, 0);
    }

    #[test]
    fn short_format_rounds_up_and_saturates() {
        assert_eq!(to_short(0), 0);
        assert_eq!(to_short(-5), 0);
        assert_eq!(to_short(1_000_000_000), 1 << 16);
        assert_eq!(
            to_short(1),
            1,
            "a nanosecond is stated as one unit, not zero"
        );
        assert_eq!(to_short(i64::MAX), u32::MAX);
        let v = to_short(1_500_000);
        assert!(from_short(v) >= 1_500_000 && from_short(v) < 1_500_000 + 15_300);
    }

    #[test]
    fn a_header_round_trips() {
        let h = Header {
            leap: 2,
            version: 4,
            mode: 4,
            stratum: 3,
            poll: -2,
            precision: -18,
            root_delay: 0x0001_8000,
            root_dispersion: 7,
            reference_id: *b"WNTP",
            reference: 1,
            origin: 2,
            receive: 3,
            transmit: u64::MAX,
        };
        let b = h.encode();
        assert_eq!(b[0], 0b10_100_100);
        assert_eq!(Header::parse(&b), Some(h));
        assert_eq!(Header::parse(&b[..47]), None);
    }

    #[test]
    fn every_field_of_a_reply() {
        let request = req(4, MODE_CLIENT, 48);
        let received = NOW.add_nanos(1_000);
        let mut reply = respond(&request, received, &served()).unwrap();
        let sent_at = NOW.add_nanos(9_000);
        let bytes = reply.stamp_transmit(sent_at).to_vec();
        assert_eq!(bytes.len(), HEADER_LEN);
        let h = Header::parse(&bytes).unwrap();
        assert_eq!(h.leap, 1);
        assert_eq!(h.version, 4);
        assert_eq!(h.mode, MODE_SERVER);
        assert_eq!(h.stratum, 3);
        assert_eq!(h.poll, 6, "the request's poll, echoed");
        assert_eq!(h.precision, PRECISION);
        assert_eq!(h.root_delay, to_short(2 * MS));
        assert_eq!(h.root_dispersion, to_short(3 * MS));
        assert_eq!(&h.reference_id, b"WNTP");
        assert_eq!(h.reference, to_ntp(NOW.add_nanos(-5_000_000_000)));
        assert_eq!(
            h.origin, 0x1122_3344_5566_7788,
            "the client's transmit time"
        );
        assert_eq!(h.receive, to_ntp(received.add_nanos(100_000_000)));
        assert_eq!(h.transmit, to_ntp(sent_at.add_nanos(100_000_000)));
        // Version 3 is answered in version 3.
        let h3 = Header::parse(
            respond(&req(3, MODE_CLIENT, 48), NOW, &served())
                .unwrap()
                .bytes(),
        )
        .unwrap();
        assert_eq!(h3.version, 3);
    }

    #[test]
    fn an_unsynchronised_server_says_so_in_every_field() {
        let s = Served::unsynchronised(Unsynchronised::NoUpdate);
        let mut reply = respond(&req(4, MODE_CLIENT, 48), NOW, &s).unwrap();
        let h = Header::parse(reply.stamp_transmit(NOW)).unwrap();
        assert_eq!((h.leap, h.stratum), (3, STRATUM_UNSYNCHRONISED));
        assert_eq!(&h.reference_id, b"INIT");
        assert_eq!((h.reference, h.root_delay, h.root_dispersion), (0, 0, 0));
        assert_eq!(h.transmit, to_ntp(NOW));
    }

    #[test]
    fn the_reply_is_never_larger_than_the_request() {
        for len in [48, 60, 68, 72, 200, MAX_REQUEST_LEN] {
            let r = respond(&req(4, MODE_CLIENT, len), NOW, &served()).unwrap();
            assert!(r.bytes().len() <= len);
        }
    }

    #[test]
    fn every_drop_reason() {
        let s = served();
        let cases = [
            (req(4, MODE_CLIENT, 47), Dropped::TooShort),
            (Vec::new(), Dropped::TooShort),
            (req(4, MODE_CLIENT, MAX_REQUEST_LEN + 1), Dropped::Oversize),
            (req(2, MODE_CLIENT, 48), Dropped::Version),
            (req(5, MODE_CLIENT, 48), Dropped::Version),
            (req(0, MODE_CLIENT, 48), Dropped::Version),
            (req(2, MODE_CONTROL, 48), Dropped::Control),
            (req(2, MODE_PRIVATE, 48), Dropped::Control),
            (req(4, MODE_CONTROL, 12), Dropped::TooShort),
            (req(4, MODE_SERVER, 48), Dropped::Mode),
            (req(4, 1, 48), Dropped::Mode),
            (req(4, 5, 48), Dropped::Mode),
            (req(4, 0, 48), Dropped::Mode),
        ];
        for (bytes, want) in cases {
            assert_eq!(
                respond(&bytes, NOW, &s).err(),
                Some(want),
                "{} bytes, first {:#04x}",
                bytes.len(),
                bytes.first().copied().unwrap_or(0)
            );
            assert_eq!(check(&bytes), Err(want));
            assert_eq!(kiss(&bytes, KISS_RATE).err(), Some(want));
        }
        // Every reason has a name, and the list has them all once.
        let names: std::collections::HashSet<_> = Dropped::ALL.iter().map(|d| d.as_str()).collect();
        assert_eq!(names.len(), Dropped::ALL.len());
    }

    #[test]
    fn a_kiss_of_death_gives_no_time() {
        let mut k = kiss(&req(4, MODE_CLIENT, 48), KISS_RATE).unwrap();
        let h = Header::parse(k.stamp_transmit(NOW)).unwrap();
        assert_eq!((h.leap, h.stratum, h.mode), (3, 0, MODE_SERVER));
        assert_eq!(&h.reference_id, b"RATE");
        let t = 0x1122_3344_5566_7788;
        assert_eq!((h.origin, h.receive, h.transmit), (t, t, t));
    }

    #[test]
    fn a_client_request_is_what_sntp_clients_send() {
        let b = client_request(42);
        assert_eq!(b[0], 0x23, "LI 0, version 4, mode 3");
        assert_eq!(Header::parse(&b).unwrap().transmit, 42);
        assert!(check(&b).is_ok());
    }

    #[test]
    fn a_client_reads_only_a_synchronised_reply_to_its_own_request() {
        let served = Served {
            leap: Leap::NoWarning,
            stratum: 3,
            reference_id: *b"WNTP",
            reference_time: Some(NOW),
            root_delay_ns: 2 * MS,
            root_dispersion_ns: 3 * MS,
            offset_ns: 0,
            unsynchronised: None,
        };
        let req = client_request(0x1234_5678_9abc_def0);
        let mut reply = respond(&req, NOW, &served).unwrap();
        let bytes = reply.stamp_transmit(NOW).to_vec();
        let got = read_reply(&bytes, 0x1234_5678_9abc_def0).unwrap();
        assert_eq!((got.header.stratum, got.header.reference_id), (3, *b"WNTP"));
        assert_eq!(read_reply(&bytes, 1), Err(ReplyProblem::NotOurs));
        assert_eq!(
            read_reply(&req, 0x1234_5678_9abc_def0),
            Err(ReplyProblem::NotOurs)
        );
        assert_eq!(
            read_reply(&bytes[..40], 0x1234_5678_9abc_def0),
            Err(ReplyProblem::NotOurs)
        );
        let k = kiss(&req, KISS_RATE).unwrap();
        let e = read_reply(k.bytes(), 0x1234_5678_9abc_def0).unwrap_err();
        assert!(
            e.to_string().contains("Kiss-o'-Death RATE: it rate-limits"),
            "{e}"
        );
        let unsync = Served::unsynchronised(Unsynchronised::NoUpdate);
        let mut r = respond(&req, NOW, &unsync).unwrap();
        let e = read_reply(r.stamp_transmit(NOW), 0x1234_5678_9abc_def0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the server is not synchronised (leap indicator 3, stratum 16, reference ID INIT)"
        );
        assert_eq!(refid_text([127, 0, 0, 1]), "127.0.0.1");
    }
}

//! Sans-IO wire formats: everything webntpd writes to or reads from a peer, as pure functions
//! over bytes. No sockets and no clocks in here; callers pass the timestamps in.
//!
//! - [`timestamp`]: the decimal timestamp text (`1489217288.328757`).
//! - [`reply`]: the WebNTP JSON object, JSONP wrapping, error bodies, request queries.
//! - [`nict`]: NICT's plain-text endpoints (`/cgi-bin/ntp`, `/cgi-bin/jst`, `/cgi-bin/time`).
//! - [`ntp`]: NTP's binary packet, and the NTP server's answer to one datagram.

pub mod nict;
pub mod ntp;
pub mod reply;
pub mod timestamp;

pub use timestamp::TimestampError;

/// Time over HTTPS' response header carrying the server's time (`X-HTTPSTIME: 1558915632.285965`).
pub const HTTPSTIME_HEADER: &str = "x-httpstime";

/// The WebSocket subprotocol go-webntp's clients offer.
pub const WS_SUBPROTOCOL: &str = "webntp.shogo82148.com";

/// Seconds between the NTP era 0 epoch (1900-01-01) and the Unix epoch (1970-01-01).
pub const NTP_UNIX_OFFSET_SECS: i64 = 2_208_988_800;

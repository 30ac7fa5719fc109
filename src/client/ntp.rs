//! `ntp://host[:port]`: one NTP client request (mode 3, version 4) per exchange, for checking
//! an NTP server such as webntpd's own gateway with `webntpd query`. The reply is read by
//! [`crate::wire::ntp::read_reply`]; `t4` is the kernel's receive stamp when it may be used.
//! The request's transmit timestamp is a random cookie, not the local time (the server
//! echoes it back; nothing else reads it), as chrony and ntpd-rs send it.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use tokio::io::Interest;
use tokio::net::UdpSocket;

use super::{bounded, ClientError, ClientOptions, Reply, Transport, XorShift};
use crate::clock::SharedClock;
use crate::net::rxstamp;
use crate::sync::exchange::Exchange;
use crate::wire::ntp::{self, ReplyProblem};

/// NTP's port.
pub const DEFAULT_PORT: u16 = 123;

/// `host:port` of `ntp://host[:port][/]`, or why not.
pub fn parse_url(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .trim()
        .strip_prefix("ntp://")
        .ok_or("expected ntp://HOST[:PORT]")?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return Err("expected ntp://HOST[:PORT], with no path, query or user".to_owned());
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or("an IPv6 address needs its `]`")?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => return Err("write an IPv6 address in brackets: ntp://[::1]:123".into()),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(p) => p
            .parse()
            .map_err(|_| format!("`{p}` is not a port (0-65535)"))?,
        None => DEFAULT_PORT,
    };
    if host.is_empty() {
        return Err("no host".to_owned());
    }
    Ok((host.to_owned(), port))
}

/// One UDP socket to one server, for a burst.
pub struct NtpTransport {
    host: String,
    port: u16,
    opts: ClientOptions,
    clock: SharedClock,
    socket: Option<UdpSocket>,
    rng: XorShift,
}

impl NtpTransport {
    /// A transport to `host:port`; nothing is sent yet.
    pub fn new(host: String, port: u16, opts: ClientOptions, clock: SharedClock) -> Self {
        let rng = XorShift::seeded(clock.monotonic_ns() as u64 ^ u64::from(port) << 17);
        NtpTransport {
            host,
            port,
            opts,
            clock,
            socket: None,
            rng,
        }
    }

    /// The socket, resolved, bound and connected on first use.
    async fn socket(&mut self) -> Result<&UdpSocket, ClientError> {
        if self.socket.is_none() {
            let limit = self.opts.connect.connect_timeout;
            let target = (self.host.as_str(), self.port);
            let addrs: Vec<SocketAddr> = bounded("name lookup", limit, async {
                tokio::net::lookup_host(target)
                    .await
                    .map(|a| a.collect())
                    .map_err(|e| ClientError::Ntp(format!("cannot resolve {}: {e}", self.host)))
            })
            .await?;
            let addr = *addrs
                .first()
                .ok_or_else(|| ClientError::Ntp(format!("{} has no address", self.host)))?;
            let local: SocketAddr = match addr {
                SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
                SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
            };
            let io = |what: &str, e: std::io::Error| ClientError::Ntp(format!("{what}: {e}"));
            let socket = UdpSocket::bind(local)
                .await
                .map_err(|e| io("cannot open a UDP socket", e))?;
            socket
                .connect(addr)
                .await
                .map_err(|e| io(&format!("cannot reach udp://{addr}"), e))?;
            // Without kernel stamps t4 includes the wake-up; still a measurement.
            let _ = rxstamp::stamp_datagrams(&socket);
            self.socket = Some(socket);
        }
        self.socket
            .as_ref()
            .ok_or_else(|| ClientError::Ntp("no socket".to_owned()))
    }
}

impl Transport for NtpTransport {
    async fn exchange(&mut self) -> Result<Reply, ClientError> {
        let cookie = self.rng.next();
        let request = ntp::client_request(cookie);
        let clock = self.clock.clone();
        let timeout = self.opts.sample_timeout;
        let socket = self.socket().await?;
        let (t1, m1) = (clock.realtime(), clock.monotonic_ns());
        socket
            .send(&request)
            .await
            .map_err(|e| ClientError::Ntp(format!("send failed: {e}")))?;
        let fd = socket.as_raw_fd();
        let mut buf = [0u8; ntp::MAX_REQUEST_LEN + 1];
        let mut cmsg = rxstamp::datagram_cmsg();
        let read = async {
            loop {
                socket
                    .readable()
                    .await
                    .map_err(|e| ClientError::Ntp(format!("receive failed: {e}")))?;
                let got = socket.try_io(Interest::READABLE, || {
                    rxstamp::recv_datagram(fd, &mut buf, &mut cmsg)
                });
                let d = match got {
                    Ok(d) => d,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    // ICMP port unreachable, reported on the connected socket.
                    Err(e) => return Err(ClientError::Ntp(format!("no NTP server answers: {e}"))),
                };
                let (now, m4) = (clock.realtime(), clock.monotonic_ns());
                let t4 = rxstamp::datagram_arrival(clock.as_ref(), d.stamp_ns);
                // What the kernel stamp saved of the wake-up, off the monotonic round trip.
                let woke = i64::try_from(now.nanos_since(t4).max(0)).unwrap_or(0);
                match ntp::read_reply(&buf[..d.len], cookie) {
                    Ok(r) => return Ok((r, t4, m4.saturating_sub(woke))),
                    // A stray or late datagram: wait for ours.
                    Err(ReplyProblem::NotOurs) => continue,
                    Err(e) => return Err(ClientError::Ntp(e.to_string())),
                }
            }
        };
        let (reply, t4, m4) = bounded("NTP reply", timeout, read).await?;
        let h = reply.header;
        let round_trip_ns = m4.saturating_sub(m1);
        Ok(Reply {
            exchange: Exchange {
                t1,
                t4,
                round_trip_ns,
                rt: Some(ntp::from_ntp(h.receive, t1)),
                st: ntp::from_ntp(h.transmit, t1),
            },
            leap: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::parse_url;

    #[test]
    fn urls() {
        let ok = |u: &str, host: &str, port: u16| {
            assert_eq!(parse_url(u), Ok((host.to_owned(), port)), "{u}");
        };
        ok("ntp://time.example.org", "time.example.org", 123);
        ok("ntp://127.0.0.1:10123/", "127.0.0.1", 10123);
        ok("ntp://[::1]:123", "::1", 123);
        ok("ntp://[fe80::1]", "fe80::1", 123);
        for bad in [
            "ntp://",
            "ntp://a/b",
            "ntp://::1",
            "ntp://a:x",
            "ntp://[::1",
            "http://a",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}

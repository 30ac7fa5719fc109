//! The NTP server's UDP side: the sockets, the receive loop, the access lists and the rate
//! limit, and the counters `webntpd status` shows. The answer to a datagram is
//! [`crate::wire::ntp::respond`]'s; what time to serve is asked of a [`Source`] (the
//! daemon's combined offset, or the local clock for `webntpd serve`) at every request.
//!
//! Per datagram, in one thread per socket (blocked in `recvmsg` until a datagram arrives:
//! one wake-up per request, no event loop and no hand-over between threads, which cost a
//! tokio task about a sixth of its throughput against chronyd): `recvmsg` with the kernel's receive stamp
//! ([`crate::net::rxstamp`]: used only while the process's clock is proven to be the
//! kernel's, so the receive and transmit times never come from two clocks), the access
//! lists, the checks that need no state (length, version, mode), the client's rate limit,
//! then the answer; the transmit time is read from the clock just before `sendto`. Nothing
//! is logged per datagram: each drop is counted by reason, and a summary of what was
//! dropped is logged at most once per [`SUMMARY_INTERVAL`].

pub mod access;
pub mod ratelimit;

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::sync::serve::Served;
use crate::sync::Timestamp;
use crate::wire::ntp::{self, Dropped, KISS_RATE, MAX_REQUEST_LEN};
use access::AccessList;
use ratelimit::{RateLimit, RateTable, Verdict};

/// At most one log line per this long about dropped requests.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

/// What the server serves at each request.
pub trait Source: Send + Sync + 'static {
    /// What to serve at local time `now` (realtime) and `now_mono` (monotonic), read
    /// together.
    fn served(&self, now: Timestamp, now_mono: i64) -> Served;
}

/// Who is answered, and how often.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The `allow`/`deny` lists.
    pub access: AccessList,
    /// The per-client limit; `None`: no limit.
    pub rate: Option<RateLimit>,
    /// Clients the rate-limit table holds (per socket).
    pub rate_clients: usize,
}

/// Whom an NTP server answers and how often, as configured: the same for the daemon's ntp
/// output and for `serve --ntp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// Address blocks answered (empty: all).
    pub allow: Vec<access::Cidr>,
    /// Address blocks not answered.
    pub deny: Vec<access::Cidr>,
    /// A client's average request interval; zero turns rate limiting off.
    pub rate_interval: Duration,
    /// Requests a client may send at once.
    pub rate_burst: u32,
    /// Clients the rate-limit table holds.
    pub rate_clients: usize,
    /// Send a Kiss-o'-Death RATE to a rate-limited client.
    pub kod: bool,
}

impl Policy {
    /// Answer `allow` but not `deny` (empty `allow`: everyone); at most `rate_burst`
    /// requests at once per client, then one per `rate_interval` (zero: no limit), with a
    /// Kiss-o'-Death RATE to the limited when `kod`; a table of `rate_clients` clients.
    pub fn new(a: &Admission) -> Policy {
        Policy {
            access: AccessList::new(&a.allow, &a.deny),
            rate: (!a.rate_interval.is_zero()).then(|| RateLimit {
                interval_ns: i64::try_from(a.rate_interval.as_nanos()).unwrap_or(i64::MAX),
                burst: a.rate_burst,
                kod: a.kod,
            }),
            rate_clients: a.rate_clients,
        }
    }
}

/// What the server did, since it started.
#[derive(Debug, Default)]
pub struct Counters {
    served: AtomicU64,
    unsynchronised: AtomicU64,
    kisses: AtomicU64,
    dropped: [AtomicU64; Dropped::ALL.len()],
    send_errors: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests answered with the time (unsynchronised answers included).
    pub served: u64,
    /// Of those, answered as unsynchronised (leap indicator 3, stratum 16).
    pub unsynchronised: u64,
    /// Kiss-o'-Death RATE replies sent.
    pub kisses: u64,
    /// Requests dropped, by reason, in [`Dropped::ALL`]'s order.
    pub dropped: [u64; Dropped::ALL.len()],
    /// Replies the kernel refused to send.
    pub send_errors: u64,
}

impl Counts {
    /// Every drop, whatever the reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }

    /// `12 rate-limited, 3 mode 6/7` for the reasons that have a count, or `none`.
    pub fn describe_drops(&self) -> String {
        let parts: Vec<String> = Dropped::ALL
            .iter()
            .zip(self.dropped)
            .filter(|(_, n)| *n > 0)
            .map(|(d, n)| format!("{n} {}", d.as_str()))
            .collect();
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(", ")
        }
    }

    /// What happened since `earlier`.
    pub fn since(&self, earlier: &Counts) -> Counts {
        let mut dropped = self.dropped;
        for (d, e) in dropped.iter_mut().zip(earlier.dropped) {
            *d = d.saturating_sub(e);
        }
        Counts {
            served: self.served.saturating_sub(earlier.served),
            unsynchronised: self.unsynchronised.saturating_sub(earlier.unsynchronised),
            kisses: self.kisses.saturating_sub(earlier.kisses),
            dropped,
            send_errors: self.send_errors.saturating_sub(earlier.send_errors),
        }
    }
}

fn index(d: Dropped) -> usize {
    Dropped::ALL.iter().position(|x| *x == d).unwrap_or(0)
}

impl Counters {
    /// The counts now.
    pub fn snapshot(&self) -> Counts {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut dropped = [0; Dropped::ALL.len()];
        for (d, a) in dropped.iter_mut().zip(&self.dropped) {
            *d = load(a);
        }
        Counts {
            served: load(&self.served),
            unsynchronised: load(&self.unsynchronised),
            kisses: load(&self.kisses),
            dropped,
            send_errors: load(&self.send_errors),
        }
    }

    fn count_drop(&self, d: Dropped) {
        self.dropped[index(d)].fetch_add(1, Ordering::Relaxed);
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for NTP on udp://{addr}: {source}{hint}")]
pub struct BindError {
    /// The address.
    pub addr: SocketAddr,
    /// The OS error.
    pub source: io::Error,
    /// What to do about it.
    pub hint: &'static str,
}

impl BindError {
    /// The sysexits code: 77 for a port that needs privileges, 69 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self.source.kind() {
            io::ErrorKind::PermissionDenied => crate::exit::NOPERM,
            _ => crate::exit::UNAVAILABLE,
        }
    }
}

/// Bind a blocking UDP socket on `addr` with kernel receive stamps.
fn bind(addr: SocketAddr) -> Result<std::net::UdpSocket, BindError> {
    let fail = |source: io::Error| {
        let hint = match source.kind() {
            io::ErrorKind::PermissionDenied => {
                "; port 123 (any port below 1024) needs root or CAP_NET_BIND_SERVICE: under \
                 systemd, add it with a drop-in (docs/operating.md, \"The NTP server\"), or \
                 listen on a port above 1023"
            }
            io::ErrorKind::AddrInUse => {
                "; another NTP server (chronyd, ntpd, systemd-timesyncd does not) listens \
                 there: stop its server side (chrony: `port 0`) or choose another address"
            }
            io::ErrorKind::AddrNotAvailable => {
                "; this machine has no such address: check the IP (use :PORT for every address)"
            }
            _ => "",
        };
        BindError { addr, source, hint }
    };
    let socket = std::net::UdpSocket::bind(addr).map_err(fail)?;
    if let Err(e) = crate::net::rxstamp::stamp_datagrams(&socket) {
        tracing::warn!(
            "NTP server on {addr}: the kernel refuses receive timestamps ({e}): receive times \
             include the program's wake-up"
        );
    }
    Ok(socket)
}

/// A running NTP server: one thread per socket and a summary task, until
/// [`NtpServer::stop`] (or drop).
pub struct NtpServer {
    addrs: Vec<SocketAddr>,
    counters: Arc<Counters>,
    cancel: CancellationToken,
    /// Tells the threads to end; their sockets, to wake them with `shutdown`.
    stop: Arc<AtomicBool>,
    sockets: Vec<Arc<std::net::UdpSocket>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    summary: Option<JoinHandle<()>>,
}

impl NtpServer {
    /// Bind every address of `listen` and start answering from `source`, as `policy` says,
    /// reading the clock from `clock`; `name` names the server in log lines.
    pub fn start(
        listen: &[SocketAddr],
        policy: &Policy,
        source: Arc<dyn Source>,
        clock: SharedClock,
        name: &str,
    ) -> Result<NtpServer, BindError> {
        let sockets = listen
            .iter()
            .map(|a| bind(*a))
            .collect::<Result<Vec<_>, _>>()?;
        let addrs: Vec<SocketAddr> = sockets.iter().filter_map(|s| s.local_addr().ok()).collect();
        let counters = Arc::new(Counters::default());
        let cancel = CancellationToken::new();
        let stop = Arc::new(AtomicBool::new(false));
        let sockets: Vec<_> = sockets.into_iter().map(Arc::new).collect();
        let mut threads = Vec::new();
        for socket in &sockets {
            let addr = socket.local_addr().ok();
            if let Some(a) = addr {
                tracing::info!("{name}: listening on udp://{a}");
            }
            let rate = policy
                .rate
                .map(|limit| RateTable::new(limit, policy.rate_clients));
            let responder = Responder {
                access: policy.access.clone(),
                rate,
                source: source.clone(),
                counters: counters.clone(),
            };
            let (socket, clock, ending) = (socket.clone(), clock.clone(), stop.clone());
            let thread = std::thread::Builder::new()
                .name("webntpd-ntp".to_owned())
                .spawn(move || serve(&socket, responder, clock, &ending));
            match thread {
                Ok(t) => threads.push(t),
                Err(source) => {
                    shut(&stop, &sockets);
                    return Err(BindError {
                        addr: addr.unwrap_or(listen[0]),
                        source,
                        hint: "; the system refuses another thread: raise its limits",
                    });
                }
            }
        }
        let summary = tokio::spawn(summarise(
            counters.clone(),
            name.to_string(),
            cancel.clone(),
        ));
        Ok(NtpServer {
            addrs,
            counters,
            cancel,
            stop,
            sockets,
            threads,
            summary: Some(summary),
        })
    }

    /// The bound addresses (useful with port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The counters.
    pub fn counts(&self) -> Counts {
        self.counters.snapshot()
    }

    /// Stop answering and close the sockets.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        shut(&self.stop, &self.sockets);
        let threads = std::mem::take(&mut self.threads);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        if let Some(s) = self.summary.take() {
            let _ = s.await;
        }
    }
}

impl Drop for NtpServer {
    fn drop(&mut self) {
        self.cancel.cancel();
        shut(&self.stop, &self.sockets);
    }
}

/// Tell the socket threads to end, and wake each from `recvmsg`: `shutdown(SHUT_RD)` makes
/// a blocked receive on a UDP socket return at once.
fn shut(stop: &AtomicBool, sockets: &[Arc<std::net::UdpSocket>]) {
    stop.store(true, Ordering::Release);
    for s in sockets {
        let _ = nix::sys::socket::shutdown(s.as_raw_fd(), nix::sys::socket::Shutdown::Read);
    }
}

/// Everything that decides the answer to one datagram, but the socket.
struct Responder {
    access: AccessList,
    rate: Option<RateTable>,
    source: Arc<dyn Source>,
    counters: Arc<Counters>,
}

/// What to send back, if anything.
enum Answer {
    Time(ntp::Reply),
    Kiss(ntp::Reply),
}

impl Responder {
    /// The answer to `datagram` from `from`, received at local time `received`; the clock
    /// read `now`/`now_mono` just now.
    fn answer(
        &mut self,
        datagram: &[u8],
        from: SocketAddr,
        received: Timestamp,
        now: Timestamp,
        now_mono: i64,
    ) -> Result<Answer, Dropped> {
        let ip = from.ip();
        if !self.access.allows(ip) {
            return Err(Dropped::Denied);
        }
        // What needs no state first: garbage never touches the rate table.
        ntp::check(datagram)?;
        match self
            .rate
            .as_mut()
            .map_or(Verdict::Pass, |t| t.check(ip, now_mono))
        {
            Verdict::Pass => {}
            Verdict::Kiss => return ntp::kiss(datagram, KISS_RATE).map(Answer::Kiss),
            Verdict::Limited => return Err(Dropped::RateLimited),
        }
        let served = self.source.served(now, now_mono);
        if !served.is_synchronised() {
            self.counters.unsynchronised.fetch_add(1, Ordering::Relaxed);
        }
        ntp::respond(datagram, received, &served).map(Answer::Time)
    }
}

/// Datagrams read per `recvmmsg`, as chrony does.
const BATCH: usize = 16;

/// Answer on `socket` until `stop`.
fn serve(
    socket: &std::net::UdpSocket,
    mut responder: Responder,
    clock: SharedClock,
    stop: &AtomicBool,
) {
    use nix::sys::socket::{sendto, MsgFlags, SockaddrStorage};
    let mut bufs = vec![[0u8; MAX_REQUEST_LEN + 1]; BATCH];
    let mut got = Vec::with_capacity(BATCH);
    let fd = socket.as_raw_fd();
    let mut failing = false;
    while !stop.load(Ordering::Acquire) {
        if let Err(e) = crate::net::rxstamp::recv_datagrams_waiting(fd, &mut bufs, &mut got) {
            // ICMP errors reported on the socket (a client's port unreachable) and the
            // like: nothing to answer; say so once per episode.
            if !failing && e.kind() != io::ErrorKind::Interrupted {
                tracing::debug!("NTP server: receive failed: {e}");
            }
            failing = true;
            continue;
        }
        failing = false;
        for (d, buf) in got.iter().zip(&bufs) {
            // No sender: the wake-up of `shut`.
            let Some(from) = d.from else { continue };
            let received = crate::net::rxstamp::datagram_arrival(clock.as_ref(), d.stamp_ns);
            let (now, now_mono) = (clock.realtime(), clock.monotonic_ns());
            let len = if d.truncated { buf.len() } else { d.len };
            let answer = responder.answer(&buf[..len], from, received, now, now_mono);
            let (mut reply, counter) = match answer {
                Ok(Answer::Time(r)) => (r, &responder.counters.served),
                Ok(Answer::Kiss(k)) => (k, &responder.counters.kisses),
                Err(d) => {
                    responder.counters.count_drop(d);
                    continue;
                }
            };
            // The transmit time, as late as the reply can be stamped; never wait to send.
            let bytes = reply.stamp_transmit(clock.realtime());
            let to = SockaddrStorage::from(from);
            match sendto(fd, bytes, &to, MsgFlags::MSG_DONTWAIT) {
                Ok(_) => counter.fetch_add(1, Ordering::Relaxed),
                Err(_) => responder
                    .counters
                    .send_errors
                    .fetch_add(1, Ordering::Relaxed),
            };
        }
    }
}

/// Log what was dropped (and replies that could not be sent) at most once per
/// [`SUMMARY_INTERVAL`], when anything was.
async fn summarise(counters: Arc<Counters>, name: String, cancel: CancellationToken) {
    let mut last = Counts::default();
    let mut tick = tokio::time::interval(SUMMARY_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = counters.snapshot();
        let new = now.since(&last);
        if new.dropped_total() > 0 || new.send_errors > 0 || new.kisses > 0 {
            tracing::info!(
                served = new.served,
                dropped = new.dropped_total(),
                kisses = new.kisses,
                "{name}: in the last {} s: {} answered, {} dropped ({}), {} Kiss-o'-Death \
                 RATE sent, {} replies not sent",
                SUMMARY_INTERVAL.as_secs(),
                new.served,
                new.dropped_total(),
                new.describe_drops(),
                new.kisses,
                new.send_errors,
            );
        }
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, SystemClock};
    use crate::sync::leap::Leap;
    use crate::wire::ntp::{client_request, Header};
    use tokio::net::UdpSocket;

    struct Fixed(Served);
    impl Source for Fixed {
        fn served(&self, _now: Timestamp, _mono: i64) -> Served {
            self.0
        }
    }

    fn served() -> Served {
        Served {
            leap: Leap::NoWarning,
            stratum: 3,
            reference_id: *b"WNTP",
            reference_time: None,
            root_delay_ns: 0,
            root_dispersion_ns: 1_000,
            offset_ns: 250_000_000,
            unsynchronised: None,
        }
    }

    fn responder(policy: &Policy) -> Responder {
        Responder {
            access: policy.access.clone(),
            rate: policy.rate.map(|l| RateTable::new(l, policy.rate_clients)),
            source: Arc::new(Fixed(served())),
            counters: Arc::new(Counters::default()),
        }
    }

    fn open() -> Policy {
        Policy {
            access: AccessList::default(),
            rate: None,
            rate_clients: 64,
        }
    }

    const FROM: &str = "192.0.2.1:40000";

    #[test]
    fn the_access_list_is_asked_first_then_the_packet_then_the_rate() {
        let mut policy = open();
        policy.access = AccessList::new(&[], &["192.0.2.0/24".parse().unwrap()]);
        policy.rate = Some(RateLimit {
            interval_ns: 1_000_000_000,
            burst: 1,
            kod: true,
        });
        let mut r = responder(&policy);
        let now = Timestamp::from_secs(1_796_083_200);
        let req = client_request(7);
        let denied = r.answer(&req, FROM.parse().unwrap(), now, now, 0);
        assert!(matches!(denied, Err(Dropped::Denied)));
        let other: SocketAddr = "198.51.100.1:123".parse().unwrap();
        // Garbage is dropped for what it is and uses none of the client's burst.
        assert!(matches!(
            r.answer(&req[..20], other, now, now, 0),
            Err(Dropped::TooShort)
        ));
        assert!(matches!(
            r.answer(&req, other, now, now, 0),
            Ok(Answer::Time(_))
        ));
        assert!(matches!(
            r.answer(&req, other, now, now, 1),
            Ok(Answer::Kiss(_))
        ));
        assert!(matches!(
            r.answer(&req, other, now, now, 2),
            Err(Dropped::RateLimited)
        ));
    }

    #[test]
    fn counts_describe_their_drops() {
        let mut c = Counts::default();
        assert_eq!(c.describe_drops(), "none");
        c.dropped[index(Dropped::RateLimited)] = 12;
        c.dropped[index(Dropped::Control)] = 3;
        assert_eq!(c.describe_drops(), "12 rate-limited, 3 mode 6/7");
        assert_eq!(c.dropped_total(), 15);
        let later = Counts { served: 5, ..c };
        assert_eq!(later.since(&c).served, 5);
        assert_eq!(later.since(&c).dropped_total(), 0);
    }

    #[tokio::test]
    async fn a_request_over_loopback_is_answered_with_kernel_stamps_and_counted() {
        let server = NtpServer::start(
            &["127.0.0.1:0".parse().unwrap()],
            &open(),
            Arc::new(Fixed(served())),
            SystemClock::shared(),
            "test NTP server",
        )
        .unwrap();
        let addr = server.local_addrs()[0];
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // The kernel switches stamping on in a deferred work item.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut buf = [0u8; 128];
        for (request, answered) in [
            (client_request(42).to_vec(), true),
            (vec![0x16; 48], false), // mode 6
            (client_request(43)[..40].to_vec(), false),
            (client_request(44).to_vec(), true),
        ] {
            let t1 = SystemClock.realtime();
            client.send_to(&request, addr).await.unwrap();
            let got =
                tokio::time::timeout(Duration::from_millis(300), client.recv_from(&mut buf)).await;
            let t4 = SystemClock.realtime();
            match got {
                Ok(Ok((n, _))) => {
                    assert!(answered, "{request:?} was answered");
                    assert_eq!(n, 48);
                    let h = Header::parse(&buf[..n]).unwrap();
                    assert_eq!(h.origin, Header::parse(&request).unwrap().transmit);
                    let rx = ntp::from_ntp(h.receive, t1).add_nanos(-250_000_000);
                    let tx = ntp::from_ntp(h.transmit, t1).add_nanos(-250_000_000);
                    assert!(
                        t1 <= rx && rx <= tx && tx <= t4,
                        "{t1:?} {rx:?} {tx:?} {t4:?}"
                    );
                }
                _ => assert!(!answered, "{request:?} got no answer"),
            }
        }
        // A reply is counted after it is sent, so the client can read it first: wait (bounded)
        // for the second count (found failing on a fresh clone's CI run).
        let mut c = server.counts();
        for _ in 0..100 {
            if c.served == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            c = server.counts();
        }
        assert_eq!(c.served, 2);
        assert_eq!(c.dropped[index(Dropped::Control)], 1);
        assert_eq!(c.dropped[index(Dropped::TooShort)], 1);
        server.stop().await;
    }
}

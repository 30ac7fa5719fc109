//! Kernel receive timestamps on TCP sockets (`SO_TIMESTAMPNS`).
//!
//! A receive time read in user space after a read returns includes the time the receiving
//! task took to wake up and be scheduled: tens of microseconds on an idle machine, more under
//! load, and not the same on the two ends of an exchange, so on the offset it does not cancel
//! out. The kernel stamps each packet as it comes up the network stack instead (on loopback,
//! within the sender's own `send`). [`RxStamped`] reads a TCP stream with `recvmsg` and keeps
//! the kernel's stamp of the last bytes read in an [`RxStamp`]; the client's `t4` and the
//! server's `rt` are then moved back by the *age* of those bytes, measured against the same
//! system clock the kernel used.
//!
//! # Two clocks that must be one
//! The kernel stamps with its own realtime clock; the program's times (`st`, `t1`) come from
//! the process's clock. They are the same clock on any normal system, but not under a
//! time-faking library such as libfaketime, which shifts `clock_gettime` and not the kernel:
//! mixing them then puts the shift into `rt` or `t4`, silently (a server's `rt` before its
//! own `st` by the shift, a client's round trip negative). So stamps are used only while a
//! *calibration* proves the two clocks agree to within [`AGREEMENT_NS`]:
//!
//! - A datagram sent to ourselves over an `AF_UNIX` pair is stamped by the kernel inside
//!   `send` (late in it, about 0.7 us before it returns; a UDP datagram is stamped half-way
//!   through a send twice as long). The process's clock read just before and just after the
//!   `send` brackets the stamp, so the process clock minus the kernel's lies in
//!   `[before - stamp, after - stamp]`. [`ROUNDS`] rounds are intersected: on this project's
//!   2-core test machines the interval is about [-1.8, +0.7] us wide, loaded or not.
//! - The clocks agree when that interval contains 0 and lies within +-[`AGREEMENT_NS`] (3 us).
//!   A skew of a few microseconds or more is then seen for what it is (0.1 ms is 30 times
//!   the bound), and below the bound it cannot move `rt` or `t4` by more than the bound, an
//!   allowance every error bound carries ([`crate::sync::exchange::TIMESTAMP_SLACK_NS`]).
//! - A calibrator thread repeats this every [`RECALIBRATE`] (one second), so a skew that
//!   appears later (libfaketime's offset file changed) stops the stamps within a second; the
//!   first calibration runs before the first stamp is used, and until one succeeds no stamp
//!   is used.
//! - While they do not agree, or agreement cannot be shown, receive times are read in user
//!   space, wake-up included: worse, but honest, since a late receive time lengthens the
//!   measured delay by as much as it moves the offset, and so stays inside the error bound.
//!   (Taking the measured skew out of every age was tried before: the calibration's own
//!   error then went into `rt` unseen.)
//!
//! An age outside `0..=MAX_AGE_NS` means the stamp is not on the program's time scale (the
//! clock was stepped in between) or the bytes waited unusually long; then the stamp is not
//! used either and the user-space reading stands.

use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
use nix::sys::time::TimeSpec;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::clock::Clock;
use crate::sync::Timestamp;

/// The most one read asks for. Requests and replies here are a few hundred bytes.
const READ_CHUNK: usize = 16 * 1024;

/// The oldest bytes whose kernel stamp is used: 100 ms.
pub const MAX_AGE_NS: i64 = 100_000_000;

// Kernel stamps are used only while the process's clock is proven to be within this of the
// kernel's: 3 us, the allowance every error bound carries for it.
use crate::sync::exchange::KERNEL_STAMP_AGREEMENT_NS as AGREEMENT_NS;

/// Datagrams per calibration; their intervals are intersected.
pub const ROUNDS: usize = 16;

/// How often the calibrator thread checks the clocks again.
pub const RECALIBRATE: Duration = Duration::from_secs(1);

/// The process's own UDP socket with stamping on, held for the life of the process: Linux
/// stamps incoming TCP and UDP packets only while some such socket asks for stamps, and
/// switches this on and off in a deferred work item as the first one opens and the last one
/// closes, so the first packets after a switch-on go unstamped (a client opening one
/// connection per burst would flip it every burst). (`AF_UNIX` sockets do not count.)
fn keep_stamping_on() {
    static HOLDER: OnceLock<Option<std::net::UdpSocket>> = OnceLock::new();
    HOLDER.get_or_init(|| {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
        setsockopt(&socket, sockopt::ReceiveTimestampns, &true).ok()?;
        Some(socket)
    });
}

/// What the last calibration showed about the process's clock against the kernel's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agreement {
    /// No calibration has succeeded yet (or the last one saw the clock jump).
    Unknown,
    /// The same clock: the process's minus the kernel's is within `bound_ns` of 0
    /// (at most [`AGREEMENT_NS`]).
    Agree {
        /// The largest skew the calibration could not rule out.
        bound_ns: i64,
    },
    /// The interval the skew lies in does not contain 0: another clock (a time-faking
    /// library), `skew_ns` (the interval's middle) off.
    Differ {
        /// Process clock minus kernel clock, about.
        skew_ns: i64,
    },
    /// The interval contains 0 but is wider than [`AGREEMENT_NS`] allows: agreement cannot
    /// be shown (very slow clock reads, a heavily loaded machine).
    Unproven {
        /// The largest skew the calibration could not rule out.
        bound_ns: i64,
    },
}

impl Agreement {
    /// What an interval `[low_ns, high_ns]` for the skew says; an empty interval (the clock
    /// moved during the calibration) says nothing.
    pub fn from_interval(low_ns: i64, high_ns: i64) -> Agreement {
        if low_ns > high_ns {
            return Agreement::Unknown;
        }
        if low_ns > 0 || high_ns < 0 {
            return Agreement::Differ {
                skew_ns: low_ns + (high_ns - low_ns) / 2,
            };
        }
        let bound_ns = low_ns.saturating_abs().max(high_ns);
        if bound_ns <= AGREEMENT_NS {
            Agreement::Agree { bound_ns }
        } else {
            Agreement::Unproven { bound_ns }
        }
    }

    fn code(self) -> u8 {
        match self {
            Agreement::Unknown => 0,
            Agreement::Agree { .. } => 1,
            Agreement::Differ { .. } => 2,
            Agreement::Unproven { .. } => 3,
        }
    }
}

/// The calibrator's verdict, read on every stamped receive: [`Agreement::code`].
static VERDICT: AtomicU8 = AtomicU8::new(0);

/// Whether kernel stamps may be used now (the last calibration proved agreement).
pub fn stamps_usable() -> bool {
    VERDICT.load(Ordering::Relaxed) == 1
}

/// The calibration pair: a datagram from `tx` arrives at `rx` stamped by the kernel.
struct Pair {
    tx: UnixDatagram,
    rx: UnixDatagram,
    cmsg: Vec<u8>,
}

impl Pair {
    fn new() -> io::Result<Pair> {
        let (tx, rx) = UnixDatagram::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        setsockopt(&rx, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)?;
        Ok(Pair {
            tx,
            rx,
            cmsg: nix::cmsg_space!(TimeSpec),
        })
    }

    /// One calibration: the skew's interval from [`ROUNDS`] bracketed stamps; `None` when
    /// the kernel gave no stamp or a call failed.
    fn interval(&mut self) -> Option<(i64, i64)> {
        let mut byte = [0u8; 1];
        // A datagram left by a calibration that failed half-way would pass for this one's.
        while recv_stamped(self.rx.as_raw_fd(), &mut byte, &mut self.cmsg).is_ok() {}
        let (mut low, mut high) = (i64::MIN, i64::MAX);
        for _ in 0..ROUNDS {
            let before = system_now_ns()?;
            self.tx.send(&[0]).ok()?;
            let after = system_now_ns()?;
            let (_, stamp) = recv_stamped(self.rx.as_raw_fd(), &mut byte, &mut self.cmsg).ok()?;
            let stamp = stamp?;
            low = low.max(before - stamp);
            high = high.min(after - stamp);
        }
        Some((low, high))
    }
}

/// Calibrate once and publish the verdict, logging a change.
fn calibrate(pair: &mut Pair) -> Agreement {
    let now = match pair.interval() {
        Some((low, high)) => Agreement::from_interval(low, high),
        None => Agreement::Unknown,
    };
    let before = VERDICT.swap(now.code(), Ordering::Relaxed);
    if before != now.code() {
        report_change(before, now);
    }
    now
}

/// One log line per change of verdict.
fn report_change(before: u8, now: Agreement) {
    const TARGET: &str = "webntpd::net::rxstamp";
    match now {
        Agreement::Differ { skew_ns } => tracing::warn!(target: TARGET,
            "this process's clock is {:+.6} s off the kernel's (a time-faking library?): kernel \
             receive stamps are not used while it is, and receive times include the program's \
             wake-up", skew_ns as f64 / 1e9),
        Agreement::Unproven { bound_ns } => tracing::warn!(target: TARGET,
            "cannot show that this process's clock is the kernel's (the calibration only bounds \
             their difference by {:.1} us, more than the {:.1} us allowed): kernel receive \
             stamps are not used until it can, and receive times include the program's wake-up",
            bound_ns as f64 / 1e3, AGREEMENT_NS as f64 / 1e3),
        Agreement::Agree { bound_ns } if before != 0 => tracing::info!(target: TARGET,
            "this process's clock agrees with the kernel's again (within {:.1} us): kernel \
             receive stamps are used", bound_ns as f64 / 1e3),
        Agreement::Agree { .. } => {}
        Agreement::Unknown => tracing::debug!(target: TARGET,
            "no clock calibration this time (no kernel stamp, or the clock moved)"),
    }
}

/// Start the calibrator once per process: the first calibration runs now, on the caller's
/// thread (about 50 us), so no stamp is used before a verdict; a thread named
/// `webntpd-rxclock` repeats it every [`RECALIBRATE`].
fn start_calibrator() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let mut pair = match Pair::new() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(target: "webntpd::net::rxstamp", "cannot calibrate the clock against kernel receive stamps ({e}): they are not used");
                return;
            }
        };
        calibrate(&mut pair);
        let spawned = std::thread::Builder::new()
            .name("webntpd-rxclock".into())
            .stack_size(64 * 1024)
            .spawn(move || loop {
                std::thread::sleep(RECALIBRATE);
                calibrate(&mut pair);
            });
        if let Err(e) = spawned {
            // Without re-checks a skew appearing later would go unseen: use no stamps.
            VERDICT.store(0, Ordering::Relaxed);
            tracing::warn!(target: "webntpd::net::rxstamp", "cannot start the clock calibrator ({e}): kernel receive stamps are not used");
        }
    });
}

/// The process's realtime clock, in nanoseconds since 1970.
fn system_now_ns() -> Option<i64> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    i64::try_from(now.as_nanos()).ok()
}

/// The kernel's receive stamp of the last bytes read from one socket.
#[derive(Debug, Default)]
pub struct RxStamp {
    /// Realtime nanoseconds since 1970; 0 while nothing stamped has been read.
    last_ns: AtomicI64,
}

impl RxStamp {
    /// Record the stamp of the bytes just read; `None` (the kernel gave none) forgets the
    /// previous one, which belongs to other bytes.
    fn set(&self, ns: Option<i64>) {
        self.last_ns.store(ns.unwrap_or(0), Ordering::Relaxed);
    }

    /// When the last bytes read reached this host, on `clock`: `clock`'s time now, moved back
    /// by their [age](RxStamp::age_ns) when known.
    pub fn received(&self, clock: &dyn Clock) -> Timestamp {
        match self.arrival() {
            Some((at, age)) => clock.realtime_back_to(at, age),
            None => clock.realtime(),
        }
    }

    /// How long ago, in nanoseconds, the last bytes read reached this host, if the kernel
    /// stamped them and the age is plausible (see the module comment).
    pub fn age_ns(&self) -> Option<i64> {
        self.arrival().map(|(_, age)| age)
    }

    /// When the last bytes read arrived, on the process's realtime clock, and how long ago
    /// that is, in nanoseconds; `None` as for [`age_ns`](RxStamp::age_ns). One clock reading.
    pub fn arrival(&self) -> Option<(Timestamp, i64)> {
        match self.last_ns.load(Ordering::Relaxed) {
            0 => None,
            stamped => arrival(stamped),
        }
    }
}

/// When bytes the kernel stamped `stamped` (realtime nanoseconds) arrived, on the process's
/// realtime clock, and how long ago; `None` while stamps are not proven usable or the age
/// is implausible (see the module comment). One clock reading.
fn arrival(stamped: i64) -> Option<(Timestamp, i64)> {
    if !stamps_usable() {
        // Not proven to be on this process's time scale (see the module comment).
        return None;
    }
    let age = system_now_ns()? - stamped;
    (0..=MAX_AGE_NS)
        .contains(&age)
        .then(|| (Timestamp::from_nanos(i128::from(stamped)), age))
}

/// Ask the kernel to stamp every datagram `socket` receives (`SO_TIMESTAMPNS`), and start
/// the calibration that decides whether the stamps may be used. On error the socket still
/// works; receive times are then read in user space ([`datagram_arrival`] without a stamp).
pub fn stamp_datagrams(socket: &impl std::os::fd::AsFd) -> io::Result<()> {
    keep_stamping_on();
    start_calibrator();
    setsockopt(socket, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)
}

/// One datagram read by [`recv_datagram`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    /// Bytes read into the buffer.
    pub len: usize,
    /// Whether the datagram was longer than the buffer (the rest is lost).
    pub truncated: bool,
    /// The sender.
    pub from: Option<std::net::SocketAddr>,
    /// The kernel's receive stamp (realtime nanoseconds), if it gave one.
    pub stamp_ns: Option<i64>,
}

/// One `recvmsg` of a datagram from `fd` into `dst`, without waiting: its length, sender and
/// kernel stamp. `cmsg` is room for the stamp ([`datagram_cmsg`]), reused between reads.
pub fn recv_datagram(fd: RawFd, dst: &mut [u8], cmsg: &mut Vec<u8>) -> io::Result<Datagram> {
    use nix::sys::socket::SockaddrStorage;
    let mut iov = [IoSliceMut::new(dst)];
    let msg = recvmsg::<SockaddrStorage>(fd, &mut iov, Some(cmsg), MsgFlags::MSG_DONTWAIT)?;
    Ok(datagram(&msg))
}

/// Up to `bufs.len()` datagrams from a blocking socket in one `recvmmsg`: waits for the
/// first, then takes what else is queued (a thread of its own sleeps in the kernel until a
/// datagram arrives, and under load reads a batch per system call). `out` gets one
/// [`Datagram`] per buffer filled, in order.
pub fn recv_datagrams_waiting<const N: usize>(
    fd: RawFd,
    bufs: &mut [[u8; N]],
    out: &mut Vec<Datagram>,
) -> io::Result<()> {
    use nix::sys::socket::{recvmmsg, MultiHeaders, SockaddrStorage};
    out.clear();
    // Fresh headers each call: the kernel shortens their address and control lengths to
    // what each datagram used.
    let mut headers =
        MultiHeaders::<SockaddrStorage>::preallocate(bufs.len(), Some(datagram_cmsg()));
    let mut iovs: Vec<[IoSliceMut; 1]> = bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
    let received = recvmmsg(
        fd,
        &mut headers,
        iovs.iter_mut(),
        MsgFlags::MSG_WAITFORONE,
        None,
    )?;
    out.extend(received.map(|msg| datagram(&msg)));
    Ok(())
}

/// What one received message says.
fn datagram(
    msg: &nix::sys::socket::RecvMsg<'_, '_, nix::sys::socket::SockaddrStorage>,
) -> Datagram {
    let from = msg.address.and_then(|a| {
        if let Some(v4) = a.as_sockaddr_in() {
            Some(std::net::SocketAddr::V4((*v4).into()))
        } else {
            a.as_sockaddr_in6()
                .map(|v6| std::net::SocketAddr::V6((*v6).into()))
        }
    });
    let mut stamp_ns = None;
    // A truncated control message (ENOBUFS) only loses the stamp, never data.
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmTimestampns(ts) = c {
                stamp_ns = Some(ts.tv_sec() * 1_000_000_000 + ts.tv_nsec());
            }
        }
    }
    Datagram {
        len: msg.bytes,
        truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
        from,
        stamp_ns,
    }
}

/// Room for one datagram's receive stamp, for [`recv_datagram`].
pub fn datagram_cmsg() -> Vec<u8> {
    nix::cmsg_space!(TimeSpec)
}

/// When a datagram arrived, on `clock`: moved back from now by its age when the kernel
/// stamped it and the stamp may be used, else `clock`'s time now (the wake-up included).
pub fn datagram_arrival(clock: &dyn Clock, stamp_ns: Option<i64>) -> Timestamp {
    match stamp_ns.and_then(arrival) {
        Some((at, age)) => clock.realtime_back_to(at, age),
        None => clock.realtime(),
    }
}

/// A TCP stream whose reads record the kernel's receive stamp in an [`RxStamp`].
pub struct RxStamped {
    inner: TcpStream,
    stamp: Arc<RxStamp>,
}

thread_local! {
    /// Room for one `SCM_TIMESTAMPNS` control message, for every stamped read on this
    /// thread: borrowed only within one `recvmsg`, so that an idle connection does not keep
    /// one of its own (issue 18).
    static CMSG: std::cell::RefCell<Vec<u8>> =
        std::cell::RefCell::new(nix::cmsg_space!(TimeSpec));
}

impl RxStamped {
    /// Ask the kernel to stamp what `stream` receives. If the socket refuses (a kernel or
    /// sandbox without `SO_TIMESTAMPNS`), the stream still works and its stamp stays empty,
    /// so receive times are read in user space; the first refusal in the process is logged
    /// as a warning, later ones at debug level.
    pub fn new(stream: TcpStream) -> (Self, Arc<RxStamp>) {
        keep_stamping_on();
        start_calibrator();
        if let Err(e) = setsockopt(&stream, sockopt::ReceiveTimestampns, &true) {
            static WARNED: AtomicBool = AtomicBool::new(false);
            if WARNED.swap(true, Ordering::Relaxed) {
                tracing::debug!(target: "webntpd::net::rxstamp", "no kernel receive timestamps on a connection: {e}");
            } else {
                tracing::warn!(target: "webntpd::net::rxstamp", "the kernel refuses receive timestamps (SO_TIMESTAMPNS: {e}): receive times are read when the program gets to the bytes, which adds its wake-up time (tens of microseconds) to measurements");
            }
        }
        let stamp = Arc::new(RxStamp::default());
        let io = RxStamped {
            inner: stream,
            stamp: stamp.clone(),
        };
        (io, stamp)
    }
}

impl RxStamped {
    /// A stream that was [`RxStamped::new`] before (its socket still asks for stamps), with
    /// the stamp its connection already shares.
    pub fn resume(stream: TcpStream, stamp: Arc<RxStamp>) -> Self {
        RxStamped {
            inner: stream,
            stamp,
        }
    }

    /// The stream, without the stamping.
    pub fn into_inner(self) -> TcpStream {
        self.inner
    }
}

/// One `recvmsg` from `fd` into `dst`: the bytes read and the kernel's stamp, if it gave one.
fn recv_stamped(fd: RawFd, dst: &mut [u8], cmsg: &mut Vec<u8>) -> io::Result<(usize, Option<i64>)> {
    let mut iov = [IoSliceMut::new(dst)];
    let msg = recvmsg::<()>(fd, &mut iov, Some(cmsg), MsgFlags::MSG_DONTWAIT)?;
    let mut stamp = None;
    // A truncated control message (ENOBUFS) only loses the stamp, never data.
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmTimestampns(ts) = c {
                stamp = Some(ts.tv_sec() * 1_000_000_000 + ts.tv_nsec());
            }
        }
    }
    Ok((msg.bytes, stamp))
}

impl AsyncRead for RxStamped {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            ready!(this.inner.poll_read_ready(cx))?;
            // `recvmsg` needs initialized memory: at most READ_CHUNK of a fresh buffer is
            // zeroed per read (hyper hands over uninitialized ones each time).
            let dst = buf.initialize_unfilled_to(buf.remaining().min(READ_CHUNK));
            let asked = dst.len();
            let inner = &this.inner;
            let mut got = None;
            let res = inner.try_io(Interest::READABLE, || {
                let (n, stamp) =
                    CMSG.with_borrow_mut(|cmsg| recv_stamped(inner.as_raw_fd(), dst, cmsg))?;
                got = Some((n, stamp));
                if n > 0 && n < asked {
                    // Fewer bytes than asked: the socket is drained. Reporting `WouldBlock`
                    // makes `try_io` clear the readiness now, as tokio's own `TcpStream`
                    // reads do, instead of the next read finding out with a `recvmsg` that
                    // fails with `EAGAIN`: one system call per request saved. On
                    // edge-triggered epoll that is exact, and a closed peer stays visible
                    // (tokio never clears the closed states).
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(())
            });
            match (got, res) {
                (Some((n, stamp)), _) => {
                    if n > 0 {
                        this.stamp.set(stamp);
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                (None, Err(e)) if e.kind() != io::ErrorKind::WouldBlock => {
                    return Poll::Ready(Err(e))
                }
                // Readiness was stale: `try_io` cleared it, so wait for the next. (`got` is
                // always set when the closure succeeds.)
                (None, _) => continue,
            }
        }
    }
}

impl AsyncWrite for RxStamped {
    crate::net::observe::forward_writes!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reads_carry_the_kernels_receive_stamp() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (mut server, stamp) = RxStamped::new(server);
        assert_eq!(stamp.age_ns(), None, "nothing read yet");
        // The kernel switches stamping on in a deferred work item (see `keep_stamping_on`).
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;

        client.write_all(b"hello").await.unwrap();
        // Let the bytes wait in the socket: their age must show it.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut buf = [0u8; 16];
        let n = server.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hello");
        let age = stamp.age_ns().expect("a plausible stamp");
        assert!(
            (20_000_000..=MAX_AGE_NS).contains(&age),
            "the bytes waited at least 20 ms, and not 100: age {age} ns"
        );
        // The receive time is on the given clock, a shifted one included.
        let clock = crate::clock::ShiftedClock::new(crate::clock::SystemClock::shared(), 1 << 30);
        let now = crate::clock::SystemClock.realtime().as_nanos() + (1 << 30);
        let received = stamp.received(&clock).as_nanos();
        assert!(
            now - received >= 20_000_000 && now - received < 1_000_000_000,
            "received {} ns before now on the shifted clock",
            now - received
        );

        // Writing passes through; end of stream reads 0 and leaves the stamp alone.
        server.write_all(b"back").await.unwrap();
        let n = client.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"back");
        drop(client);
        assert_eq!(server.read(&mut buf).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_large_transfer_in_small_and_large_reads_arrives_whole_then_ends() {
        // Short reads clear the readiness (see `poll_read`): no byte and no end of stream
        // may be missed because of it, whatever the read sizes.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (mut server, _stamp) = RxStamped::new(server);
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            for chunk in sent.chunks(7_001) {
                client.write_all(chunk).await.unwrap();
            }
            // Dropping the stream closes it: the reader must see the end.
        });
        let mut got = Vec::with_capacity(data.len());
        let mut sizes = [100usize, 64 * 1024, 1, 20_000].iter().cycle();
        let read_all = async {
            loop {
                let mut buf = vec![0u8; *sizes.next().unwrap()];
                let n = server.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(20), read_all)
            .await
            .expect("every byte and the end of stream, without hanging");
        writer.await.unwrap();
        assert!(
            got == data,
            "{} bytes of {} arrived intact",
            got.len(),
            data.len()
        );
    }

    #[test]
    fn the_verdict_follows_the_interval_the_skew_lies_in() {
        // One clock: the stamp lies between the two readings (as measured here: 1.8 us
        // after the first, 0.7 us before the second).
        assert_eq!(
            Agreement::from_interval(-1_800, 700),
            Agreement::Agree { bound_ns: 1_800 }
        );
        // A process clock ahead or behind by more than the bracket: another clock, at every
        // magnitude the tests inject (0.1 ms to 1 s) and down to a few microseconds.
        for skew in [
            2_000i64,
            5_000,
            100_000,
            5_000_000,
            250_000_000,
            1_000_000_000,
        ] {
            for sign in [1, -1] {
                let s = sign * skew;
                assert!(
                    matches!(
                        Agreement::from_interval(s - 1_800, s + 700),
                        Agreement::Differ { skew_ns } if (skew_ns - s).abs() < 1_000
                    ),
                    "skew {s} ns"
                );
            }
        }
        assert_eq!(
            Agreement::from_interval(4_200, 6_700),
            Agreement::Differ { skew_ns: 5_450 }
        );
        // Wide enough to hide a skew above the allowance: not proven.
        assert_eq!(
            Agreement::from_interval(-9_000, 500),
            Agreement::Unproven { bound_ns: 9_000 }
        );
        assert_eq!(
            Agreement::from_interval(-100, AGREEMENT_NS + 1),
            Agreement::Unproven {
                bound_ns: AGREEMENT_NS + 1
            }
        );
        // Empty: the clock was stepped during the calibration.
        assert_eq!(Agreement::from_interval(10, -10), Agreement::Unknown);
    }

    #[test]
    fn this_process_runs_on_the_kernels_clock() {
        start_calibrator();
        let mut pair = Pair::new().unwrap();
        let (low, high) = pair
            .interval()
            .expect("AF_UNIX datagrams are always stamped");
        assert!(low <= 0 && high >= 0, "skew interval [{low}, {high}] ns");
        assert!(
            matches!(
                Agreement::from_interval(low, high),
                Agreement::Agree { .. } | Agreement::Unproven { .. }
            ),
            "[{low}, {high}]"
        );
    }

    #[test]
    fn an_implausible_stamp_is_not_used() {
        start_calibrator();
        let stamp = RxStamp::default();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        // In the future (clock stepped back, or a faked clock running behind).
        stamp.set(Some(now + 1_000_000_000));
        assert_eq!(stamp.age_ns(), None);
        // Too old (a faked clock running ahead, as with FAKETIME=+0.25).
        stamp.set(Some(now - 250_000_000));
        assert_eq!(stamp.age_ns(), None);
        stamp.set(Some(now - 1_000));
        assert!(stamp.age_ns().is_some_and(|a| a >= 1_000));
        // Bytes read without a stamp forget the earlier one.
        stamp.set(None);
        assert_eq!(stamp.age_ns(), None);
    }
}

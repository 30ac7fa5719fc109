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
//! The age, not the kernel's stamp itself, is what is applied: it is subtracted from a reading
//! of the program's [`Clock`](crate::clock::Clock), so a shifted test clock stays shifted.
//! Under a time-faking library such as libfaketime the process's clock is not the kernel's:
//! the difference is measured once ([`clock_skew_ns`]), and if there is one the stamps are
//! not used at all. (Taking it out of every age was tried: the measurement's own error of a
//! few microseconds then went into `rt` unseen, and a client's error bound no longer held
//! the true offset.) An age
//! outside `0..=MAX_AGE_NS` means the stamp is not on the program's time scale (the clock was
//! stepped in between) or the bytes waited unusually long; then the stamp is not used and the
//! user-space reading stands.

use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
use nix::sys::time::TimeSpec;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::clock::Clock;
use crate::wire::Timestamp;

/// The most one read asks for. Requests and replies here are a few hundred bytes.
const READ_CHUNK: usize = 16 * 1024;

/// The oldest bytes whose kernel stamp is used: 100 ms.
pub const MAX_AGE_NS: i64 = 100_000_000;

/// Clocks closer than this are one clock (the difference is the calibration's own noise).
const SAME_CLOCK_NS: i64 = 10_000_000;

/// Calibration attempts before the clocks are taken to agree without a measurement.
const CALIBRATION_ATTEMPTS: u32 = 1_000;

/// The process's own socket, stamped and connected to itself.
///
/// It keeps the kernel's packet stamping switched on for the life of the process: Linux
/// stamps incoming packets only while some socket asks for stamps, and switches this on and
/// off in a deferred work item as the first such socket opens and the last one closes, so the
/// first packets after a switch-on go unstamped (a client opening one connection per burst
/// would flip it every burst). And it measures the [skew](clock_skew_ns): one datagram to
/// itself, stamped by the kernel inside the `send`.
struct Holder {
    socket: std::net::UdpSocket,
    /// Serializes calibrations, so that each reads back its own datagram.
    calibrating: Mutex<Vec<u8>>,
}

fn holder() -> Option<&'static Holder> {
    static HOLDER: OnceLock<Option<Holder>> = OnceLock::new();
    HOLDER
        .get_or_init(|| {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
            socket.connect(socket.local_addr().ok()?).ok()?;
            socket.set_nonblocking(true).ok()?;
            setsockopt(&socket, sockopt::ReceiveTimestampns, &true).ok()?;
            Some(Holder {
                socket,
                calibrating: Mutex::new(nix::cmsg_space!(TimeSpec)),
            })
        })
        .as_ref()
}

/// "Not measured yet" in [`SKEW_NS`].
const UNKNOWN: i64 = i64::MIN;

/// The process's realtime clock minus the kernel's (see [`clock_skew_ns`]).
static SKEW_NS: AtomicI64 = AtomicI64::new(UNKNOWN);

/// The process's realtime clock minus the kernel's, in nanoseconds: 0 on any normal system,
/// where both are the same clock; the shift under a time-faking library such as libfaketime,
/// which fakes `clock_gettime` but not the kernel's stamps. Measured once, by sending a
/// datagram to ourselves between two readings of the process's clock; `None` until a
/// measurement succeeds (the kernel may not stamp the very first packets).
fn clock_skew_ns() -> Option<i64> {
    static ATTEMPTS: AtomicU32 = AtomicU32::new(0);
    let known = SKEW_NS.load(Ordering::Relaxed);
    if known != UNKNOWN {
        return Some(known);
    }
    if ATTEMPTS.fetch_add(1, Ordering::Relaxed) >= CALIBRATION_ATTEMPTS {
        tracing::debug!(target: "webntpd::rxstamp", "no clock calibration after {CALIBRATION_ATTEMPTS} attempts: taking the process's clock to be the kernel's");
        SKEW_NS.store(0, Ordering::Relaxed);
        return Some(0);
    }
    let holder = holder()?;
    let mut cmsg = holder.calibrating.try_lock().ok()?;
    let mut byte = [0u8; 1];
    // A datagram left by an attempt that failed half-way would pass for this one's.
    while recv_stamped(holder.socket.as_raw_fd(), &mut byte, &mut cmsg).is_ok() {}
    let before = system_now_ns()?;
    holder.socket.send(&[0]).ok()?;
    let after = system_now_ns()?;
    let (_, stamp) = recv_stamped(holder.socket.as_raw_fd(), &mut byte, &mut cmsg).ok()?;
    let skew = skew_from(before, after, stamp?);
    if skew != 0 {
        tracing::warn!(target: "webntpd::rxstamp", "this process's clock is {:.6} s off the kernel's (a time-faking library?): kernel receive stamps are not used, and receive times include the program's wake-up", skew as f64 / 1e9);
    }
    SKEW_NS.store(skew, Ordering::Relaxed);
    Some(skew)
}

/// The skew from a kernel stamp taken between two readings of the process's clock.
fn skew_from(before_ns: i64, after_ns: i64, kernel_ns: i64) -> i64 {
    let skew = before_ns + (after_ns - before_ns) / 2 - kernel_ns;
    if skew.abs() < SAME_CLOCK_NS {
        0
    } else {
        skew
    }
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
        let stamped = self.last_ns.load(Ordering::Relaxed);
        if stamped == 0 {
            return None;
        }
        if clock_skew_ns().unwrap_or(0) != 0 {
            // Not on this process's time scale (see the module comment).
            return None;
        }
        let at = stamped;
        let age = system_now_ns()? - at;
        (0..=MAX_AGE_NS)
            .contains(&age)
            .then(|| (Timestamp::from_nanos(i128::from(at)), age))
    }
}

/// A TCP stream whose reads record the kernel's receive stamp in an [`RxStamp`].
pub struct RxStamped {
    inner: TcpStream,
    stamp: Arc<RxStamp>,
    /// Room for one `SCM_TIMESTAMPNS` control message, reused by every read.
    cmsg: Vec<u8>,
}

impl RxStamped {
    /// Ask the kernel to stamp what `stream` receives. If the socket refuses (a kernel or
    /// sandbox without `SO_TIMESTAMPNS`), the stream still works and its stamp stays empty,
    /// so receive times are read in user space; the first refusal in the process is logged
    /// as a warning, later ones at debug level.
    pub fn new(stream: TcpStream) -> (Self, Arc<RxStamp>) {
        // Keeps packet stamping on (see `Holder`).
        let _ = holder();
        if let Err(e) = setsockopt(&stream, sockopt::ReceiveTimestampns, &true) {
            static WARNED: AtomicBool = AtomicBool::new(false);
            if WARNED.swap(true, Ordering::Relaxed) {
                tracing::debug!(target: "webntpd::rxstamp", "no kernel receive timestamps on a connection: {e}");
            } else {
                tracing::warn!(target: "webntpd::rxstamp", "the kernel refuses receive timestamps (SO_TIMESTAMPNS: {e}): receive times are read when the program gets to the bytes, which adds its wake-up time (tens of microseconds) to measurements");
            }
        }
        let stamp = Arc::new(RxStamp::default());
        let io = RxStamped {
            inner: stream,
            stamp: stamp.clone(),
            cmsg: nix::cmsg_space!(TimeSpec),
        };
        (io, stamp)
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
            let (inner, cmsg) = (&this.inner, &mut this.cmsg);
            let mut got = None;
            let res = inner.try_io(Interest::READABLE, || {
                let (n, stamp) = recv_stamped(inner.as_raw_fd(), dst, cmsg)?;
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
    crate::observe::forward_writes!();
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
    fn the_skew_is_zero_for_one_clock_and_the_shift_for_a_faked_one() {
        let kernel = 1_795_000_000_000_000_000;
        // The kernel stamps inside the send, between the process's two readings.
        assert_eq!(skew_from(kernel - 3_000, kernel + 5_000, kernel), 0);
        // A process clock 250 ms ahead (FAKETIME=+0.25), read 8 us apart around the stamp.
        let ahead = 250_000_000;
        let skew = skew_from(kernel + ahead - 3_000, kernel + ahead + 5_000, kernel);
        assert_eq!(skew, ahead + 1_000);
        assert_eq!(
            skew_from(kernel - ahead, kernel - ahead + 2, kernel),
            -ahead + 1
        );
    }

    #[test]
    fn this_process_runs_on_the_kernels_clock() {
        // The first datagrams may go unstamped while the kernel switches stamping on.
        let mut skew = None;
        for _ in 0..200 {
            skew = clock_skew_ns();
            if skew.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(skew, Some(0));
    }

    #[test]
    fn an_implausible_stamp_is_not_used() {
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

//! chrony's SOCK reference clock: one `struct sock_sample` per datagram, sent to the Unix
//! datagram socket chronyd creates for `refclock SOCK PATH`.
//!
//! Better than SHM where chrony is the reader: chronyd owns the socket (root's, mode 0755
//! unless changed), so only root can feed it, and a sample arrives the moment it is sent.
//! ntpd-rs reads the same format.
//!
//! A failed send is returned, never fatal: chronyd may be restarted at any time. The writer
//! remembers the last failure, so the caller can log a failure once and stay quiet while it
//! repeats.

use std::fmt;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use libc::{c_int, timeval};

use super::LastFailure;
use crate::sync::refsample::{split, RefSample};

/// `struct sock_sample` from chrony's refclock_sock.c.
#[repr(C)]
struct SockSample {
    /// Local time of the measurement.
    tv: timeval,
    /// Reference minus local time, in seconds.
    offset: f64,
    /// 1 for a pulse-per-second event (the offset is then the pulse's): always 0 here.
    pulse: c_int,
    /// The leap indicator.
    leap: c_int,
    /// Padding, 0.
    pad: c_int,
    /// [`MAGIC`].
    magic: c_int,
}

/// "SOCK": chronyd drops datagrams without it.
pub const MAGIC: c_int = 0x534f_434b;

/// `sizeof(struct sock_sample)` on this target; chronyd drops datagrams of any other length.
pub const SIZE: usize = std::mem::size_of::<SockSample>();

// The x86_64 and aarch64 layout: tv_sec@0, tv_usec@8, offset@16, pulse@24, leap@28,
// pad@32, magic@36, 40 bytes.
#[cfg(target_pointer_width = "64")]
const _: () = {
    use std::mem::offset_of;
    assert!(SIZE == 40);
    assert!(offset_of!(SockSample, tv) + offset_of!(timeval, tv_sec) == 0);
    assert!(offset_of!(SockSample, tv) + offset_of!(timeval, tv_usec) == 8);
    assert!(offset_of!(SockSample, offset) == 16);
    assert!(offset_of!(SockSample, pulse) == 24);
    assert!(offset_of!(SockSample, leap) == 28);
    assert!(offset_of!(SockSample, pad) == 32);
    assert!(offset_of!(SockSample, magic) == 36);
};

/// The datagram for `s`: `tv` is the receive time (microseconds truncated), `offset` the
/// sample's offset in seconds, native byte order, laid out as the C compiler lays out
/// `struct sock_sample`.
pub fn encode(s: &RefSample) -> [u8; SIZE] {
    use std::mem::offset_of;
    let (secs, nanos) = split(s.receive);
    let tv = offset_of!(SockSample, tv);
    let mut b = [0u8; SIZE];
    let mut put = |at: usize, bytes: &[u8]| b[at..at + bytes.len()].copy_from_slice(bytes);
    put(
        tv + offset_of!(timeval, tv_sec),
        &(secs as libc::time_t).to_ne_bytes(),
    );
    put(
        tv + offset_of!(timeval, tv_usec),
        &libc::suseconds_t::from(nanos / 1000).to_ne_bytes(),
    );
    // The one place a float appears: chrony's format wants seconds as a double.
    let offset = s.offset_ns as f64 / 1e9;
    put(offset_of!(SockSample, offset), &offset.to_ne_bytes());
    // pulse and pad stay 0.
    put(offset_of!(SockSample, leap), &s.leap.code().to_ne_bytes());
    put(offset_of!(SockSample, magic), &MAGIC.to_ne_bytes());
    b
}

/// Why a sample did not reach chronyd, by what the remedy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockFailure {
    /// No socket at the path (ENOENT): chronyd is not running or not configured for it.
    NoSocket,
    /// The socket file exists but no one reads it (ECONNREFUSED): chronyd stopped.
    Refused,
    /// Not allowed to write to the socket (EACCES, EPERM).
    PermissionDenied,
    /// chronyd's receive queue is full (EAGAIN, ENOBUFS): the sample was dropped.
    QueueFull,
    /// Anything else.
    Other(io::ErrorKind),
}

impl SockFailure {
    fn of(e: &io::Error) -> SockFailure {
        match e.raw_os_error() {
            Some(libc::ENOENT) => SockFailure::NoSocket,
            Some(libc::ECONNREFUSED) => SockFailure::Refused,
            Some(libc::EACCES | libc::EPERM) => SockFailure::PermissionDenied,
            Some(libc::EAGAIN | libc::ENOBUFS) => SockFailure::QueueFull,
            _ => SockFailure::Other(e.kind()),
        }
    }
}

/// A sample that was not delivered.
#[derive(Debug, thiserror::Error)]
#[error("cannot send to chronyd's SOCK refclock {}: {source}: {}", path.display(), remedy(*kind, path))]
pub struct SockError {
    /// The socket path.
    pub path: PathBuf,
    /// What went wrong.
    pub kind: SockFailure,
    /// The system's error.
    pub source: io::Error,
    /// The previous send failed the same way: the caller has logged this already.
    pub repeated: bool,
}

fn remedy(kind: SockFailure, path: &Path) -> String {
    let p = path.display();
    match kind {
        SockFailure::NoSocket => format!(
            "chronyd is not listening there; start it with `refclock SOCK {p}` in chrony.conf"
        ),
        SockFailure::Refused => format!(
            "the socket is there but nothing reads it (chronyd stopped or crashed); start \
             chronyd with `refclock SOCK {p}` in chrony.conf"
        ),
        SockFailure::PermissionDenied => format!(
            "chronyd creates the socket writable by root only; run webntpd as root (or \
             `chmod o+w {p}` after every chronyd start)"
        ),
        SockFailure::QueueFull => {
            "chronyd is not reading its socket; this sample was dropped".to_string()
        }
        SockFailure::Other(_) => "the sample was dropped".to_string(),
    }
}

impl SockError {
    /// The sysexits code a command exits with for this error.
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            SockFailure::PermissionDenied => crate::exit::NOPERM,
            SockFailure::NoSocket | SockFailure::Refused | SockFailure::QueueFull => {
                crate::exit::UNAVAILABLE
            }
            SockFailure::Other(_) => crate::exit::OSERR,
        }
    }
}

/// Sends samples to one chronyd SOCK refclock path.
#[derive(Debug)]
pub struct SockWriter {
    /// The socket chronyd listens on.
    path: PathBuf,
    /// An unbound, non-blocking datagram socket: a full queue drops a sample instead of
    /// stalling the caller.
    socket: UnixDatagram,
    /// How the last send failed, if it did.
    last_failure: LastFailure<SockFailure>,
}

impl SockWriter {
    /// A writer for `path`. Nothing is sent yet, so chronyd need not be running.
    pub fn open(path: &Path) -> io::Result<SockWriter> {
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(SockWriter {
            path: path.to_path_buf(),
            socket,
            last_failure: LastFailure::none(),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the last send failed (so the next success is worth a "delivering again").
    pub fn failing(&self) -> bool {
        self.last_failure.is_failing()
    }

    /// Send one sample.
    pub fn write(&mut self, sample: &RefSample) -> Result<(), SockError> {
        let datagram = encode(sample);
        let result = match self.socket.send_to(&datagram, &self.path) {
            Ok(n) if n == datagram.len() => Ok(()),
            Ok(n) => Err(io::Error::other(format!(
                "sent {n} of {} bytes",
                datagram.len()
            ))),
            Err(e) => Err(e),
        };
        let Err(source) = result else {
            self.last_failure.ok();
            return Ok(());
        };
        let kind = SockFailure::of(&source);
        Err(SockError {
            path: self.path.clone(),
            kind,
            source,
            repeated: self.last_failure.failed(kind),
        })
    }
}

impl fmt::Display for SockWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SOCK {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::leap::Leap;
    use crate::sync::Timestamp;

    fn sample() -> RefSample {
        RefSample {
            receive: Timestamp::from_nanos(1_795_270_670_123_456_789),
            offset_ns: -250_000_500,
            leap: Leap::DeleteSecond,
            precision: -15,
        }
    }

    #[test]
    fn the_datagram_is_chronys_struct() {
        let b = encode(&sample());
        assert_eq!(b.len(), 40);
        let i64_at = |at: usize| i64::from_ne_bytes(b[at..at + 8].try_into().unwrap());
        let i32_at = |at: usize| i32::from_ne_bytes(b[at..at + 4].try_into().unwrap());
        assert_eq!(i64_at(0), 1_795_270_670);
        assert_eq!(i64_at(8), 123_456);
        assert_eq!(
            f64::from_ne_bytes(b[16..24].try_into().unwrap()),
            -0.2500005
        );
        assert_eq!(i32_at(24), 0, "pulse");
        assert_eq!(i32_at(28), 2, "leap");
        assert_eq!(i32_at(32), 0, "pad");
        assert_eq!(i32_at(36), 0x534f_434b, "magic");
    }

    #[test]
    fn a_missing_chronyd_is_an_error_value_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chrony.sock");
        let mut w = SockWriter::open(&path).unwrap();
        let e = w.write(&sample()).unwrap_err();
        assert_eq!(e.kind, SockFailure::NoSocket);
        assert!(!e.repeated);
        let m = e.to_string();
        assert!(m.contains(&path.display().to_string()), "{m}");
        assert!(m.contains("refclock SOCK"), "{m}");
        assert_eq!(e.exit_code(), crate::exit::UNAVAILABLE);
        assert!(w.write(&sample()).unwrap_err().repeated);
        assert!(w.failing());

        // A socket file no one reads any more.
        let listener = UnixDatagram::bind(&path).unwrap();
        drop(listener);
        let e = w.write(&sample()).unwrap_err();
        assert_eq!(e.kind, SockFailure::Refused);
        assert!(!e.repeated, "a different failure is news");
        let m = e.to_string();
        assert!(
            m.contains("nothing reads it (chronyd stopped or crashed)"),
            "{m}"
        );

        // chronyd back: delivered, and a later failure is news again.
        std::fs::remove_file(&path).unwrap();
        let listener = UnixDatagram::bind(&path).unwrap();
        w.write(&sample()).unwrap();
        assert!(!w.failing());
        let mut got = [0u8; 64];
        let n = listener.recv(&mut got).unwrap();
        assert_eq!(&got[..n], &encode(&sample())[..]);
        drop(listener);
        std::fs::remove_file(&path).unwrap();
        assert!(!w.write(&sample()).unwrap_err().repeated);
    }
}

//! Reference-clock outputs: how a measured offset reaches the daemon that disciplines the
//! system clock.
//!
//! Every output is handed a [`Reference`]: a [`RefSample`] (receive time, offset, leap
//! warning, precision; the rules that make one are [`crate::sync::refsample`]'s), which SHM
//! and SOCK encode, with the error bound, delay and leap data the NTP server needs too.
//!
//! - [`shm`]: the SHM refclock of ntpd, ntpsec and chrony (System V shared memory; its `sys`
//!   submodule and [`timex`] hold the project's only unsafe code).
//! - [`sock`]: chrony's SOCK refclock (a datagram to a Unix socket).
//! - [`ntp`]: an NTP server answering from the combined offset, for clients that read no
//!   reference clock (systemd-timesyncd, ntpd-rs, other hosts).
//! - [`timex`]: the kernel's clock-discipline state, read with `adjtimex` (unsafe, one call),
//!   which tells the NTP server whether a time daemon keeps the local clock.
//!
//! [`Output`] puts them behind one type so a caller can feed several at once, for example
//! SHM unit 2 for ntpd and SOCK for chrony. A sample is written only after a good
//! measurement: when measuring fails nothing is written, and readers see the source go stale.
//!
//! Outputs outlive their readers: a write checks that the segment or socket is still there,
//! returns an error (not fatal) when it is not, and recovers by itself at a later write once
//! it is back. [`OutputError::is_repeat`] tells a caller which failures it has reported
//! already, so a daemon logs each change once, not every write.

pub mod ntp;
pub mod shm;
pub mod sock;
pub mod timex;

use std::fmt;
use std::path::PathBuf;

use crate::clock::SharedClock;
#[cfg(doc)]
use crate::sync::refsample::RefSample;
use crate::sync::serve::Reference;

pub use ntp::{NtpConfig, NtpOutput};
pub use shm::{ShmError, ShmWriteError, ShmWriter};
pub use sock::{SockError, SockFailure, SockWriter};

/// How an output's last write failed, if it did: tells a new failure from the same one
/// again, so each is reported once.
#[derive(Debug, Clone, Copy)]
struct LastFailure<K>(Option<K>);

impl<K: Copy + PartialEq> LastFailure<K> {
    fn none() -> Self {
        LastFailure(None)
    }

    /// A write succeeded.
    fn ok(&mut self) {
        self.0 = None;
    }

    /// A write failed as `kind`; whether the previous one failed the same way.
    fn failed(&mut self, kind: K) -> bool {
        self.0.replace(kind) == Some(kind)
    }

    fn is_failing(&self) -> bool {
        self.0.is_some()
    }
}

/// Where to write samples: one `[[output]]` of the configuration (read and checked by
/// `crate::config`), or one `--shm`/`--sock` of `webntpd query`; or an NTP server to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputConfig {
    /// `type = "shm"`: an SHM unit of ntpd, ntpsec or chrony, created with `perm` (default
    /// [`shm::default_perm`]) if no reader has made it yet.
    Shm {
        /// 0..=255; key `0x4E545030 + unit`; ntpd's `127.127.28.UNIT`, chrony's
        /// `refclock SHM UNIT`.
        unit: u8,
        /// Permission bits for a segment webntpd creates.
        perm: Option<u32>,
    },
    /// `type = "sock"`: chronyd's `refclock SOCK` socket.
    Sock {
        /// The socket's path, as in chrony.conf.
        path: PathBuf,
    },
    /// `type = "ntp"`: an NTP server answering from the combined offset.
    Ntp(NtpConfig),
}

impl OutputConfig {
    /// Whether this output feeds a time daemon that disciplines the clock (SHM, SOCK).
    pub fn feeds_time_daemon(&self) -> bool {
        matches!(self, OutputConfig::Shm { .. } | OutputConfig::Sock { .. })
    }
}

impl fmt::Display for OutputConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputConfig::Shm { unit, .. } => write!(f, "SHM unit {unit}"),
            OutputConfig::Sock { path } => write!(f, "SOCK {}", path.display()),
            OutputConfig::Ntp(c) => write!(f, "NTP {}", c.describe_listen()),
        }
    }
}

/// An open output.
#[derive(Debug)]
pub enum Output {
    /// An attached SHM segment.
    Shm(ShmWriter),
    /// A socket to send to chronyd with.
    Sock(SockWriter),
    /// An NTP server.
    Ntp(Box<NtpOutput>),
}

/// Why an output could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// SHM: the segment cannot be used.
    #[error(transparent)]
    Shm(#[from] ShmError),
    /// SHM: a sample was not written (the segment went away and the one at its key now
    /// cannot be used).
    #[error(transparent)]
    ShmWrite(#[from] ShmWriteError),
    /// SOCK: a sample was not delivered.
    #[error(transparent)]
    Sock(#[from] SockError),
    /// SOCK: no socket to send with.
    #[error("cannot create a datagram socket for {path}: {source}")]
    Socket {
        /// The socket path configured.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// NTP: a listener cannot be bound.
    #[error(transparent)]
    Ntp(#[from] crate::net::ntp::BindError),
}

impl OutputError {
    /// The sysexits code a command exits with for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            OutputError::Shm(e) => e.exit_code(),
            OutputError::ShmWrite(e) => e.exit_code(),
            OutputError::Sock(e) => e.exit_code(),
            OutputError::Socket { .. } => crate::exit::OSERR,
            OutputError::Ntp(e) => e.exit_code(),
        }
    }

    /// The previous write to this output failed the same way, so the failure has been
    /// reported already: a daemon logs an error once, not at every poll.
    pub fn is_repeat(&self) -> bool {
        match self {
            OutputError::ShmWrite(e) => e.repeated,
            OutputError::Sock(e) => e.repeated,
            OutputError::Shm(_) | OutputError::Socket { .. } | OutputError::Ntp(_) => false,
        }
    }
}

impl Output {
    /// Open an output: attach the SHM segment (failing on a segment that cannot be used),
    /// make the socket to send to chronyd with, or bind the NTP server's sockets and start
    /// answering (in the current tokio runtime) with `clock`.
    pub fn open(config: &OutputConfig, clock: &SharedClock) -> Result<Output, OutputError> {
        match config {
            OutputConfig::Ntp(c) => Ok(Output::Ntp(Box::new(NtpOutput::open(c, clock.clone())?))),
            OutputConfig::Shm { unit, perm } => Ok(Output::Shm(ShmWriter::open(*unit, *perm)?)),
            OutputConfig::Sock { path } => {
                SockWriter::open(path)
                    .map(Output::Sock)
                    .map_err(|source| OutputError::Socket {
                        path: path.display().to_string(),
                        source,
                    })
            }
        }
    }

    /// For a one-shot write: leave an SHM segment at its key on drop, for a reader that
    /// attaches later (see [`ShmWriter::keep_on_drop`]). Nothing to do for SOCK.
    pub fn keep_on_drop(&mut self) {
        if let Output::Shm(w) = self {
            w.keep_on_drop();
        }
    }

    /// Hand over one combined estimate: SHM and SOCK write its sample, the NTP server
    /// serves from it until the next.
    pub fn write(&mut self, reference: &Reference) -> Result<(), OutputError> {
        match self {
            Output::Shm(w) => Ok(w.write(&reference.sample)?),
            Output::Sock(w) => Ok(w.write(&reference.sample)?),
            Output::Ntp(n) => {
                n.update(reference);
                Ok(())
            }
        }
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Shm(w) => w.fmt(f),
            Output::Sock(w) => w.fmt(f),
            Output::Ntp(n) => n.fmt(f),
        }
    }
}

//! `webntpd serve --ntp ADDR` (and `ntp` in `[server]`): NTP beside WebNTP, answering from
//! the local clock as the HTTP side does. The socket side (access lists, rate limit, kernel
//! receive stamps) is [`crate::net::ntp`]'s; what each reply says is
//! [`crate::sync::serve::from_kernel`]'s (`--ntp-clock kernel`, the default: synchronised
//! only while the kernel says a time daemon vouches for the clock, with that daemon's
//! maximum error as the root dispersion) or [`crate::sync::serve::from_local`]'s
//! (`--ntp-clock local`: the operator vouches for the clock, as chrony's `local stratum`).
//! The leap warning comes from the server's leap-seconds list, or from the kernel's flags
//! without one.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::leap::store::LeapStore;
use crate::net::ntp::{Admission, BindError, Counts, NtpServer, Policy, Source};
use crate::refclock::ntp::KernelWatch;
use crate::sync::serve::{self, Rules, Served};
use crate::sync::Timestamp;

/// The reference ID with `--ntp-clock kernel`: the clock a time daemon keeps in the kernel.
pub const REFERENCE_ID_KERNEL: [u8; 4] = *b"KERN";
/// The reference ID with `--ntp-clock local`: the local clock, as ntpd's LOCAL driver.
pub const REFERENCE_ID_LOCAL: [u8; 4] = *b"LOCL";

/// Whose word the served time rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NtpClock {
    /// The kernel's: synchronised while a time daemon vouches for the clock.
    #[default]
    Kernel,
    /// The operator's: always synchronised.
    Local,
}

impl FromStr for NtpClock {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "kernel" => Ok(NtpClock::Kernel),
            "local" => Ok(NtpClock::Local),
            _ => Err(format!("`{s}`: expected kernel or local")),
        }
    }
}

/// The NTP side of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtpServeConfig {
    /// UDP addresses.
    pub listen: Vec<SocketAddr>,
    /// Whose word the time rests on.
    pub clock: NtpClock,
    /// The stratum served while synchronised.
    pub stratum: u8,
    /// Whom it answers and how often (a table of [`RATE_CLIENTS`] clients).
    pub admission: Admission,
}

/// Clients the rate-limit table of `webntpd serve` holds.
pub const RATE_CLIENTS: usize = 8192;

/// The local clock, as [`NtpClock`] says, for every request.
struct LocalSource {
    rules: Rules,
    clock: NtpClock,
    kernel: Arc<KernelWatch>,
    leap: Arc<LeapStore>,
}

impl Source for LocalSource {
    fn served(&self, now: Timestamp, _now_mono: i64) -> Served {
        let kernel = self.kernel.get();
        // Without a list the kernel's own leap flags speak.
        let leap = self.leap.current().map(|_| self.leap.info(now));
        match self.clock {
            NtpClock::Kernel => serve::from_kernel(kernel.as_ref(), leap, &self.rules, now),
            NtpClock::Local => serve::from_local(kernel.as_ref(), leap, &self.rules, now),
        }
    }
}

/// A running NTP side of a server.
pub struct NtpServe {
    server: NtpServer,
    cancel: CancellationToken,
}

impl NtpServe {
    /// Bind every address and start answering.
    pub fn start(
        config: &NtpServeConfig,
        leap: Arc<LeapStore>,
        clock: SharedClock,
    ) -> Result<NtpServe, BindError> {
        let cancel = CancellationToken::new();
        let mode = config.clock;
        // Log once per change of what the kernel lets the server say.
        let mut last = None;
        let (kernel, _task) = KernelWatch::start(cancel.clone(), move |k| {
            let synced = k.is_some_and(|k| k.synchronised());
            if mode != NtpClock::Kernel || last.replace(synced) == Some(synced) {
                return;
            }
            if synced {
                tracing::info!(
                    "NTP: the kernel says a time daemon vouches for the clock: answering as \
                     synchronised"
                );
            } else {
                tracing::warn!(
                    "NTP: answering as unsynchronised (leap 3, stratum 16): the kernel says no \
                     time daemon vouches for this clock, or cannot be asked; run one, or give \
                     --ntp-clock local (ntp_clock = \"local\") to vouch for the clock yourself"
                );
            }
        });
        let source = LocalSource {
            rules: Rules {
                stratum: config.stratum,
                reference_id: match mode {
                    NtpClock::Kernel => REFERENCE_ID_KERNEL,
                    NtpClock::Local => REFERENCE_ID_LOCAL,
                },
                max_age_ns: i64::MAX,
            },
            clock: mode,
            kernel,
            leap,
        };
        let policy = Policy::new(&config.admission);
        let server = NtpServer::start(&config.listen, &policy, Arc::new(source), clock, "NTP")
            .inspect_err(|_| cancel.cancel())?;
        Ok(NtpServe { server, cancel })
    }

    /// The bound addresses.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        self.server.local_addrs()
    }

    /// Requests answered and dropped.
    pub fn counts(&self) -> Counts {
        self.server.counts()
    }

    /// Stop answering and close the sockets.
    pub async fn stop(self) {
        self.cancel.cancel();
        self.server.stop().await;
    }
}

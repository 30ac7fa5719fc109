//! The NTP server output (`[[output]] type = "ntp"`): the daemon's combined offset served
//! over NTP to hosts whose time daemon cannot read SHM or SOCK (systemd-timesyncd, ntpd-rs,
//! Windows, routers) or that sit behind a firewall that lets only the gateway out.
//!
//! Each write hands the output a [`Reference`]; every request is then answered from the
//! latest one by [`crate::sync::serve::from_reference`]'s rules, with the clock taken as
//! free or disciplined as [`crate::sync::serve::resolve`] decides from the `clock` setting,
//! whether the daemon also feeds a time daemon, and the kernel's state, read again every
//! [`KERNEL_CHECK`] (a time daemon may start or stop under a running webntpd); each change is
//! logged once. The sockets, access lists and rate limit are [`crate::net::ntp`]'s.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::net::ntp::{Admission, BindError, Counts, NtpServer, Policy, Source};
use crate::sync::serve::{
    self, ClockSetting, Discipline, DisciplineReason, KernelClock, Reference, Rules, Served,
    Unsynchronised,
};
use crate::sync::Timestamp;

/// How often the kernel's clock state is read again.
pub const KERNEL_CHECK: Duration = Duration::from_secs(8);

/// The reference ID served while synchronised: "WNTP", as the chrony and ntpd refclock lines
/// in webntpd's documentation name its SHM and SOCK outputs, so `chronyc sources` or
/// `ntpq -p` on a client shows where the time comes from. (At stratum 2 and up NTP's
/// reference ID is the upstream server's IPv4 address, for loop detection; webntpd's
/// upstreams are HTTPS URLs, which no NTP client can loop back through.)
pub const REFERENCE_ID: [u8; 4] = *b"WNTP";

/// One `[[output]] type = "ntp"`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtpConfig {
    /// The UDP addresses to answer on.
    pub listen: Vec<SocketAddr>,
    /// The stratum served while synchronised, 1-15.
    pub stratum: u8,
    /// Who keeps the local clock.
    pub clock: ClockSetting,
    /// Whom it answers and how often.
    pub admission: Admission,
    /// An update older than this makes the server unsynchronised.
    pub max_age: Duration,
    /// Whether the configuration also feeds a time daemon (an shm or sock output): with
    /// `clock = "auto"` the clock is then taken as disciplined.
    pub feeds_time_daemon: bool,
}

impl NtpConfig {
    /// The access lists and rate limit.
    pub fn policy(&self) -> Policy {
        Policy::new(&self.admission)
    }

    fn rules(&self) -> Rules {
        Rules {
            stratum: self.stratum,
            reference_id: REFERENCE_ID,
            max_age_ns: i64::try_from(self.max_age.as_nanos()).unwrap_or(i64::MAX),
        }
    }

    /// `udp://127.0.0.1:123, udp://[::1]:123`.
    pub fn describe_listen(&self) -> String {
        describe(&self.listen)
    }
}

/// `udp://ADDR` for each address, comma-separated.
pub fn describe(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(|a| format!("udp://{a}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The kernel's clock state, read every [`KERNEL_CHECK`] by a task, for the request path.
pub struct KernelWatch {
    state: ArcSwap<Option<KernelClock>>,
}

impl KernelWatch {
    /// Read the kernel now, and log once why it cannot be read, if it cannot.
    fn new() -> Arc<KernelWatch> {
        let w = Arc::new(KernelWatch {
            state: ArcSwap::from_pointee(None),
        });
        w.refresh(true);
        w
    }

    /// Read the kernel again; `first`: log a failure (later ones are the same failure).
    fn refresh(&self, first: bool) {
        let read = super::timex::read();
        if let (Err(e), true) = (&read, first) {
            tracing::info!(
                "the kernel's clock state cannot be read ({e}; systemd's ProtectClock= and \
                 SystemCallFilter=@system-service refuse adjtimex): the NTP server cannot \
                 ask it whether a time daemon disciplines this clock"
            );
        }
        self.state.store(Arc::new(read.ok()));
    }

    /// The last reading (`None`: the kernel cannot be read).
    pub fn get(&self) -> Option<KernelClock> {
        **self.state.load()
    }

    /// Start a watch, re-reading the kernel every [`KERNEL_CHECK`] until `cancel`, calling
    /// `changed` after each reading.
    pub fn start(
        cancel: CancellationToken,
        mut changed: impl FnMut(Option<KernelClock>) + Send + 'static,
    ) -> (Arc<KernelWatch>, JoinHandle<()>) {
        let watch = KernelWatch::new();
        changed(watch.get());
        let w = watch.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(KERNEL_CHECK);
            tick.tick().await;
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    _ = tick.tick() => {}
                }
                w.refresh(false);
                changed(w.get());
            }
        });
        (watch, task)
    }
}

/// What every request is answered from.
struct Shared {
    rules: Rules,
    reference: ArcSwap<Result<Reference, Unsynchronised>>,
    /// [`Discipline`] as 0 (free) or 1 (disciplined).
    discipline: AtomicU8,
}

impl Shared {
    fn discipline(&self) -> Discipline {
        match self.discipline.load(Ordering::Relaxed) {
            0 => Discipline::Free,
            _ => Discipline::Disciplined,
        }
    }
}

impl Source for Shared {
    fn served(&self, now: Timestamp, now_mono: i64) -> Served {
        let reference = self.reference.load();
        let reference = match &**reference {
            Ok(r) => Ok(r),
            Err(why) => Err(*why),
        };
        serve::from_reference(reference, self.discipline(), &self.rules, now, now_mono)
    }
}

/// A running NTP output.
pub struct NtpOutput {
    config: NtpConfig,
    shared: Arc<Shared>,
    server: Option<NtpServer>,
    clock: SharedClock,
    cancel: CancellationToken,
    /// Who keeps the clock now and why, as last logged.
    decided: Arc<std::sync::Mutex<(Discipline, DisciplineReason)>>,
}

impl NtpOutput {
    /// Bind every listener and start answering (unsynchronised until the first write).
    pub fn open(config: &NtpConfig, clock: SharedClock) -> Result<NtpOutput, BindError> {
        let shared = Arc::new(Shared {
            rules: config.rules(),
            reference: ArcSwap::from_pointee(Err(Unsynchronised::NoUpdate)),
            discipline: AtomicU8::new(1),
        });
        let cancel = CancellationToken::new();
        let (setting, feeds) = (config.clock, config.feeds_time_daemon);
        let decided = Arc::new(std::sync::Mutex::new((
            Discipline::Disciplined,
            DisciplineReason::Configured,
        )));
        let server = NtpServer::start(
            &config.listen,
            &config.policy(),
            shared.clone(),
            clock.clone(),
            "NTP output",
        )?;
        let (s, d) = (shared.clone(), decided.clone());
        let mut first = true;
        let mut on_kernel = move |kernel: Option<KernelClock>| {
            let now = serve::resolve(setting, feeds, kernel.as_ref());
            s.discipline.store(
                u8::from(now.0 == Discipline::Disciplined),
                Ordering::Relaxed,
            );
            let mut last = d.lock().unwrap_or_else(|p| p.into_inner());
            if first || last.0 != now.0 {
                tracing::info!(
                    "NTP output: the local clock is served as {} ({}): {}",
                    now.0.as_str(),
                    now.1.describe(),
                    match now.0 {
                        Discipline::Free => "webntpd's combined offset is added to it",
                        Discipline::Disciplined =>
                            "served as it is, with webntpd's offset in the root dispersion",
                    }
                );
            }
            first = false;
            *last = now;
        };
        if setting == ClockSetting::Auto {
            // The task ends with `cancel`.
            let _ = KernelWatch::start(cancel.clone(), on_kernel);
        } else {
            on_kernel(None);
        }
        Ok(NtpOutput {
            config: config.clone(),
            shared,
            server: Some(server),
            clock,
            cancel,
            decided,
        })
    }

    /// Serve from `reference` until the next.
    pub fn update(&self, reference: &Reference) {
        self.shared.reference.store(Arc::new(Ok(*reference)));
    }

    /// The daemon lost its combined offset (its selection failed, or the sanity rules refuse
    /// it): answer as unsynchronised until the next update.
    pub fn lose(&self) {
        self.shared
            .reference
            .store(Arc::new(Err(Unsynchronised::Lost)));
    }

    /// What a request would be answered with now.
    pub fn serving(&self) -> Served {
        self.shared
            .served(self.clock.realtime(), self.clock.monotonic_ns())
    }

    /// Who keeps the clock, and why.
    pub fn discipline(&self) -> (Discipline, DisciplineReason) {
        *self.decided.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The addresses answered on.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        self.server.as_ref().map_or(&[], |s| s.local_addrs())
    }

    /// Requests answered and dropped so far.
    pub fn counts(&self) -> Counts {
        self.server
            .as_ref()
            .map(NtpServer::counts)
            .unwrap_or_default()
    }

    /// The configuration it runs.
    pub fn config(&self) -> &NtpConfig {
        &self.config
    }

    /// Stop answering and close the sockets (for a reload that binds them again).
    pub async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
    }
}

impl Drop for NtpOutput {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl fmt::Display for NtpOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NTP {}", describe(self.local_addrs()))
    }
}

impl fmt::Debug for NtpOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NtpOutput")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

//! A started server with its companions: the leap-seconds store with its refresh and expiry
//! watch, and the TLS reloader. What `webntpd serve` and the daemon's `[server]` both run.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::ntp::NtpServe;
use super::{Server, ServerConfig, ServerError, ServerMetrics, TlsReloadHandle};
use crate::clock::SharedClock;
use crate::leap::store::{LeapConfig, LeapStore};

/// A server that is listening, until [`RunningServer::stop`].
pub struct RunningServer {
    leap: Arc<LeapStore>,
    leap_cfg: LeapConfig,
    clock: SharedClock,
    tls: Option<TlsReloadHandle>,
    addrs: Vec<(SocketAddr, bool)>,
    metrics: ServerMetrics,
    ntp: Option<NtpServe>,
    shutdown: CancellationToken,
    run: JoinHandle<()>,
}

impl RunningServer {
    /// Load the leap-seconds list as `leap_cfg` says, bind every listener of `config` and
    /// start serving.
    pub async fn start(
        config: ServerConfig,
        leap_cfg: LeapConfig,
        clock: SharedClock,
    ) -> Result<Self, ServerError> {
        let leap = Arc::new(LeapStore::load(&leap_cfg, clock.as_ref()));
        if let Some(limit) = super::raise_nofile_limit() {
            if limit < config.limits.max_connections as u64 + 64 {
                tracing::warn!(
                    "open-files limit is {limit}, below max_connections {}; raise it \
                     (LimitNOFILE= in the systemd unit, ulimit -n) or lower max_connections",
                    config.limits.max_connections
                );
            }
        }
        let ntp_config = config.ntp.clone();
        let server = Server::bind(config, clock.clone(), leap.clone()).await?;
        let ntp = match &ntp_config {
            Some(c) => Some(NtpServe::start(c, leap.clone(), clock.clone())?),
            None => None,
        };
        let shutdown = CancellationToken::new();
        // Both watch tasks end when `shutdown` is cancelled.
        let _refresh =
            leap.clone()
                .spawn_refresh(leap_cfg.clone(), clock.clone(), shutdown.clone());
        let _expiry = leap
            .clone()
            .spawn_expiry_watch(clock.clone(), shutdown.clone());
        let tls = server.tls_reloader();
        let addrs = server.local_addrs();
        let metrics = server.metrics();
        let run = tokio::spawn(server.run(shutdown.clone()));
        Ok(RunningServer {
            leap,
            leap_cfg,
            clock,
            tls,
            addrs,
            metrics,
            ntp,
            shutdown,
            run,
        })
    }

    /// The addresses listened on, each with whether it speaks TLS.
    pub fn local_addrs(&self) -> &[(SocketAddr, bool)] {
        &self.addrs
    }

    /// What the metrics endpoint reads of this server.
    pub fn metrics(&self) -> &ServerMetrics {
        &self.metrics
    }

    /// Every address served on, `http://ADDR`, `https://ADDR` and `udp://ADDR (NTP)`.
    pub fn describe_addrs(&self) -> String {
        self.addr_list().join(", ")
    }

    /// Every address served on, as [`RunningServer::describe_addrs`] names them.
    pub fn addr_list(&self) -> Vec<String> {
        let web = self
            .addrs
            .iter()
            .map(|(a, tls)| format!("{}://{a}", if *tls { "https" } else { "http" }));
        let ntp = self
            .ntp
            .iter()
            .flat_map(|n| n.local_addrs())
            .map(|a| format!("udp://{a} (NTP)"));
        web.chain(ntp).collect()
    }

    /// The NTP side, if any.
    pub fn ntp(&self) -> Option<&NtpServe> {
        self.ntp.as_ref()
    }

    /// The leap-seconds store the server answers from.
    pub fn leap(&self) -> &Arc<LeapStore> {
        &self.leap
    }

    /// SIGHUP: reload the leap-seconds list and the TLS certificate. Failures are logged and
    /// leave the old ones in use.
    pub fn reload(&self) {
        // The store logs the outcome itself (and keeps the old list on failure).
        let _ = self.leap.reload(&self.leap_cfg, self.clock.as_ref());
        if let Some(tls) = &self.tls {
            if let Err(e) = tls.reload() {
                tracing::warn!("TLS certificate not reloaded, keeping the old one: {e}");
            }
        }
    }

    /// Stop accepting, finish in-flight requests, close WebSockets with 1001, within the
    /// configured shutdown timeout. `false` if the server task failed.
    pub async fn stop(self) -> bool {
        self.shutdown.cancel();
        if let Some(ntp) = self.ntp {
            ntp.stop().await;
        }
        match self.run.await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!("server task failed: {e}");
                false
            }
        }
    }
}

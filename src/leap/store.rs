//! PLACEHOLDER
use super::LeapInfo;
use crate::wire::Timestamp;
use std::path::PathBuf;
use std::time::Duration;
#[derive(Debug, Clone)]
pub struct LeapConfig {
    pub file: PathBuf,
    pub url: Option<String>,
    pub cache: PathBuf,
    pub refresh_interval: Duration,
    pub retry_interval: Duration,
    pub fetch_timeout: Duration,
}
impl Default for LeapConfig {
    fn default() -> Self {
        LeapConfig {
            file: "/usr/share/zoneinfo/leap-seconds.list".into(),
            url: None,
            cache: "/var/lib/webntpd/leap-seconds.list".into(),
            refresh_interval: Duration::from_secs(86400),
            retry_interval: Duration::from_secs(3600),
            fetch_timeout: Duration::from_secs(30),
        }
    }
}
pub struct LeapStore;
impl LeapStore {
    pub fn empty() -> Self {
        LeapStore
    }
    pub fn info(&self, _now: Timestamp) -> LeapInfo {
        LeapInfo::NONE
    }
}
impl LeapStore {
    pub fn load(_cfg: &LeapConfig, _clock: &dyn crate::clock::Clock) -> LeapStore {
        LeapStore
    }
    pub fn reload(
        &self,
        _cfg: &LeapConfig,
        _clock: &dyn crate::clock::Clock,
    ) -> Result<(), String> {
        Ok(())
    }
    pub fn spawn_refresh(
        self: std::sync::Arc<Self>,
        _cfg: LeapConfig,
        _clock: crate::clock::SharedClock,
        _cancel: tokio_util::sync::CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        None
    }
}

//! SIGHUP: the configuration read again and applied, or refused with the running one kept.

use super::{notify, Daemon, OutputSlot};
use crate::config::Config;

impl Daemon {
    /// SIGHUP: load the configuration again. A configuration that does not load, or whose
    /// outputs cannot be attached, is refused and the running one stays. Sources whose
    /// settings did not change keep their filter and reachability.
    pub(super) fn reload(&mut self) {
        notify::reloading();
        tracing::info!("SIGHUP: reloading {}", self.config.path.display());
        let applied = match Config::load(&self.config.path) {
            Err(e) => {
                tracing::error!("configuration not reloaded, the running one stays: {e}");
                false
            }
            Ok(loaded) => {
                for w in &loaded.warnings {
                    tracing::warn!("{}", w.as_warning());
                }
                let applied = self.apply(loaded.config);
                if let Err(e) = &applied {
                    tracing::error!("configuration not reloaded, the running one stays: {e}");
                }
                applied.is_ok()
            }
        };
        let r = &mut self.reloads;
        *if applied { &mut r.ok } else { &mut r.failed } += 1;
        r.last = Some((self.clock.realtime().as_secs_f64(), applied));
        self.select_and_write(None);
        self.publish();
        notify::ready(&self.status_line());
    }

    fn apply(&mut self, new: Config) -> Result<(), String> {
        // Outputs first: the only part that can still fail. Keep open ones that did not change.
        let mut old_outputs = std::mem::take(&mut self.outputs);
        let mut outputs = Vec::new();
        for c in &new.outputs {
            match old_outputs.iter().position(|o| &o.config == c) {
                Some(i) => outputs.push(old_outputs.swap_remove(i)),
                None => match OutputSlot::open(c) {
                    Ok(slot) => outputs.push(slot),
                    Err(e) => {
                        // Put everything back as it was.
                        old_outputs.extend(outputs);
                        self.outputs = old_outputs;
                        return Err(e.to_string());
                    }
                },
            }
        }
        for o in &old_outputs {
            tracing::info!("output {} detached", o.output);
        }
        drop(old_outputs);
        self.outputs = outputs;

        // Sources: keep the unchanged, stop the removed, start the new.
        let mut old = std::mem::take(&mut self.sources);
        for c in &new.sources {
            // A source whose task could not start (cancelled from birth) is started again.
            match old
                .iter()
                .position(|s| &s.config == c && !s.cancel.is_cancelled())
            {
                Some(i) => self.sources.push(old.remove(i)),
                None => {
                    tracing::info!("source {} added", c.url);
                    self.add_source(c.clone());
                }
            }
        }
        for s in old {
            tracing::info!("source {} removed", s.config.url);
            s.cancel.cancel();
        }

        if new.server != self.config.server {
            tracing::warn!(
                "[server] changed: restart webntpd to apply it (systemctl restart webntpd); \
                 the server keeps its old settings"
            );
        } else if let Some(server) = &self.server {
            server.reload();
        }
        if new.status != self.config.status {
            tracing::warn!("[status] changed: restart webntpd to apply it");
        }
        if new.log != self.config.log {
            tracing::warn!("[log] changed: restart webntpd to apply it");
        }
        if new.metrics != self.config.metrics {
            tracing::warn!("[metrics] changed: restart webntpd to apply it");
        }
        let (server, status, log, metrics) = (
            self.config.server.clone(),
            self.config.status.clone(),
            self.config.log,
            self.config.metrics.clone(),
        );
        self.config = Config {
            server,
            status,
            log,
            metrics,
            ..new
        };
        self.gate.set_policy(self.policy());
        tracing::info!("configuration reloaded: {}", self.config.summary());
        Ok(())
    }
}

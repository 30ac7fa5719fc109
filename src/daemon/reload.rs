//! SIGHUP: the configuration read again and applied, or refused with the running one kept.

use super::{notify, Daemon, OutputSlot};
use crate::config::Config;
use crate::refclock::Output;

impl Daemon {
    /// SIGHUP: load the configuration again. A configuration that does not load, or whose
    /// outputs cannot be attached, is refused and the running one stays. Sources whose
    /// settings did not change keep their filter and reachability.
    pub(super) async fn reload(&mut self) {
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
                let applied = self.apply(loaded.config).await;
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

    async fn apply(&mut self, new: Config) -> Result<(), String> {
        // Outputs first: the only part that can still fail. Keep open ones that did not change.
        let mut old_outputs = std::mem::take(&mut self.outputs);
        // An NTP server that changes gives its sockets up first: the new one may want the
        // same addresses. If the new configuration fails it is started again as it was.
        let mut stopped = Vec::new();
        let mut i = 0;
        while i < old_outputs.len() {
            let changed = !new.outputs.contains(&old_outputs[i].config);
            if changed && matches!(old_outputs[i].output, Output::Ntp(_)) {
                let slot = old_outputs.swap_remove(i);
                tracing::info!("output {} stopped, to be replaced", slot.output);
                if let Output::Ntp(n) = slot.output {
                    (*n).stop().await;
                }
                stopped.push(slot.config);
            } else {
                i += 1;
            }
        }
        // Each with whether it was opened just now.
        let mut outputs: Vec<(OutputSlot, bool)> = Vec::new();
        for c in &new.outputs {
            match old_outputs.iter().position(|o| &o.config == c) {
                Some(i) => outputs.push((old_outputs.swap_remove(i), false)),
                None => match OutputSlot::open(c, &self.clock) {
                    Ok(slot) => {
                        // A new NTP server serves the last estimate until the next burst.
                        if let (Output::Ntp(n), Some(r)) = (&slot.output, &self.last_reference) {
                            n.update(r);
                        }
                        outputs.push((slot, true))
                    }
                    Err(e) => {
                        // Put everything back as it was: close what was opened, keep the rest.
                        for (slot, opened) in outputs {
                            match (opened, slot.output) {
                                (true, Output::Ntp(n)) => (*n).stop().await,
                                (true, _) => {}
                                (false, output) => old_outputs.push(OutputSlot { output, ..slot }),
                            }
                        }
                        for c in &stopped {
                            match OutputSlot::open(c, &self.clock) {
                                Ok(slot) => old_outputs.push(slot),
                                Err(again) => tracing::error!(
                                    "output {c} cannot be started again as it was: {again}"
                                ),
                            }
                        }
                        self.outputs = old_outputs;
                        return Err(e.to_string());
                    }
                },
            }
        }
        for o in &old_outputs {
            tracing::info!("output {} detached", o.output);
        }
        for o in old_outputs {
            if let Output::Ntp(n) = o.output {
                (*n).stop().await;
            }
        }
        self.outputs = outputs.into_iter().map(|(slot, _)| slot).collect();

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

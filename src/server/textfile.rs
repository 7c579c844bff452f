//! The Prometheus textfile (`--metrics-file`), for node-exporter's textfile
//! collector: rewritten every interval from the loop, as a hidden temporary
//! file in the same directory renamed over the old one, so a reader never
//! sees half a file. A few kilobytes to a tmpfs such as /var/prometheus: the
//! write costs the loop microseconds.

use super::Server;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub(super) struct Textfile {
    path: PathBuf,
    tmp: PathBuf,
    every: Duration,
    next: Option<Instant>,
    /// The last write failed (logged once until a write succeeds again).
    failing: bool,
}

impl Textfile {
    pub(super) fn new(path: PathBuf, every: Duration) -> Textfile {
        let name = path.file_name().map_or_else(|| "metrics".into(), |n| n.to_string_lossy().into_owned());
        let tmp = path.with_file_name(format!(".{name}.tmp"));
        Textfile { path, tmp, every, next: None, failing: false }
    }

    fn write(&self, text: &str) -> std::io::Result<()> {
        let mut f = std::fs::File::create(&self.tmp)?;
        f.write_all(text.as_bytes())?;
        drop(f);
        std::fs::rename(&self.tmp, &self.path)
    }
}

impl Server {
    /// Once a second: the control and web clients' deadlines, and the metrics file.
    pub(super) fn observe_tick(&mut self, now: Instant) {
        if let Some(c) = self.control.as_mut() {
            c.expire(now, self.poll.registry());
        }
        #[cfg(feature = "web")]
        if let Some(w) = self.web.as_mut() {
            w.expire(now, self.poll.registry());
        }
        if self.metrics_file.as_ref().is_none_or(|m| m.next.is_some_and(|t| now < t)) {
            return;
        }
        let text = crate::observe::metrics::render(&self.status(now));
        let Some(m) = self.metrics_file.as_mut() else { return };
        m.next = Some(now + m.every);
        match m.write(&text) {
            Ok(()) => m.failing = false,
            Err(e) if !m.failing => {
                m.failing = true;
                log::warn!("cannot write the metrics file {}: {e}", m.path.display());
            }
            Err(_) => {}
        }
    }
}

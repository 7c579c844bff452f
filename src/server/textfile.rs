//! The Prometheus textfile (`--metrics-file`), for node-exporter's textfile
//! collector: rewritten every interval as a hidden temporary file in the
//! same directory renamed over the old one, so a reader never sees half a
//! file. The loop only renders the text; a thread of its own does the disk
//! work, as the path may be on flash or a network file system.

use super::Server;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

pub(super) struct Textfile {
    every: Duration,
    next: Option<Instant>,
    /// To the thread that writes; None when it could not be started.
    to_writer: Option<SyncSender<String>>,
}

impl Textfile {
    pub(super) fn new(path: PathBuf, every: Duration) -> Textfile {
        // One text in hand at most: while a write is under way the next
        // interval's text is dropped, never queued behind a slow disk.
        let (tx, rx) = sync_channel::<String>(1);
        let spawned =
            std::thread::Builder::new().name("btestd-metrics".into()).stack_size(64 * 1024).spawn(move || {
                let name = path.file_name().map_or_else(|| "metrics".into(), |n| n.to_string_lossy().into_owned());
                let tmp = path.with_file_name(format!(".{name}.tmp"));
                let mut failing = false;
                for text in rx {
                    match write(&tmp, &path, &text) {
                        Ok(()) => failing = false,
                        Err(e) if !failing => {
                            failing = true;
                            log::warn!("cannot write the metrics file {}: {e}", path.display());
                        }
                        Err(_) => {}
                    }
                }
            });
        let to_writer = match spawned {
            Ok(_) => Some(tx),
            Err(e) => {
                log::warn!("no metrics file: cannot start its writer thread: {e}");
                None
            }
        };
        Textfile { every, next: None, to_writer }
    }
}

/// Writes `text` to `tmp`, then renames it over `path`.
fn write(tmp: &Path, path: &Path, text: &str) -> std::io::Result<()> {
    let mut f = std::fs::File::create(tmp)?;
    f.write_all(text.as_bytes())?;
    drop(f);
    std::fs::rename(tmp, path)
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
        if self.metrics_file.as_ref().is_none_or(|m| m.to_writer.is_none() || m.next.is_some_and(|t| now < t)) {
            return;
        }
        let text = crate::observe::metrics::render(&self.status(now));
        let Some(m) = self.metrics_file.as_mut() else { return };
        m.next = Some(now + m.every);
        let gone =
            m.to_writer.as_ref().is_some_and(|tx| matches!(tx.try_send(text), Err(TrySendError::Disconnected(_))));
        if gone {
            m.to_writer = None;
        }
    }
}

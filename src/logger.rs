//! The log sink: one line per record on stderr, which procd, daemon(8) and
//! systemd all collect, as `2026-11-24T09:40:57.566105Z [INFO] message`.
//!
//! Hand-written rather than taken from a logging crate: this is all btestd
//! needs, and the formatting libraries cost about 20 KB of router flash.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::quota::period::Date;

struct StderrLogger {
    timestamps: bool,
}

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut line = String::with_capacity(160);
        if self.timestamps {
            let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            line.push_str(&timestamp(since.as_secs(), since.subsec_micros()));
            line.push(' ');
        }
        let _ = writeln!(line, "[{}] {}", record.level(), record.args());
        // One write per line, so lines from the writer thread never interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Installs the logger for the process; a second call changes nothing.
/// `timestamps: false` is for one-shot commands whose output a person reads.
pub fn init(level: log::LevelFilter, timestamps: bool) {
    static WITH_TIME: StderrLogger = StderrLogger { timestamps: true };
    static WITHOUT_TIME: StderrLogger = StderrLogger { timestamps: false };
    if log::set_logger(if timestamps { &WITH_TIME } else { &WITHOUT_TIME }).is_ok() {
        log::set_max_level(level);
    }
}

/// RFC 3339 UTC time with microseconds.
fn timestamp(unix_secs: u64, micros: u32) -> String {
    let days = i64::try_from(unix_secs / 86_400).unwrap_or(i64::MAX);
    let date = Date::from_days(days);
    let secs = unix_secs % 86_400;
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        date.year,
        date.month,
        date.day,
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        micros
    )
}

#[cfg(test)]
mod tests {
    use super::timestamp;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(timestamp(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(timestamp(1_795_513_257, 566_105), "2026-11-24T09:40:57.566105Z");
        // A leap day and the last second of a day.
        assert_eq!(timestamp(951_782_400 + 86_399, 999_999), "2000-02-29T23:59:59.999999Z");
    }
}

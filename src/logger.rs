//! The log sink: one line per record on stderr, which procd, daemon(8) and
//! systemd all collect, as `2026-11-24T09:40:57.566105Z [INFO] message`; or,
//! with `serve --syslog`, one syslog(3) record per line at the record's own
//! priority, so `logread` and syslogd filters see errors as errors.
//!
//! Hand-written rather than taken from a logging crate: this is all btestd
//! needs, and the formatting libraries cost about 20 KB of router flash.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::quota::period::Date;

/// Where records go.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Sink {
    /// stderr; `timestamps: false` is for one-shot commands whose output a person reads.
    Stderr { timestamps: bool },
    /// syslog(3) as `btestd[PID]`, facility daemon; syslogd adds the time.
    Syslog,
}

struct Logger {
    sink: Sink,
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut line = String::with_capacity(160);
        match self.sink {
            Sink::Stderr { timestamps } => {
                if timestamps {
                    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
                    line.push_str(&timestamp(since.as_secs(), since.subsec_micros()));
                    line.push(' ');
                }
                let _ = write!(line, "[{}] ", record.level());
                push_message(&mut line, record.args());
                line.push('\n');
                // One write per line, so lines from the writer thread never interleave.
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
            Sink::Syslog => {
                push_message(&mut line, record.args());
                // Escaping left no NUL byte, so the conversion cannot fail.
                if let Ok(msg) = std::ffi::CString::new(line) {
                    // SAFETY: a constant "%s" format with one NUL-terminated
                    // string; syslog(3) is thread-safe in glibc, musl and FreeBSD.
                    unsafe { libc::syslog(priority(record.level()), c"%s".as_ptr(), msg.as_ptr()) };
                }
            }
        }
    }

    fn flush(&self) {}
}

/// Appends a record's message with its control bytes escaped: a control
/// byte (a peer's newline, a terminal escape) must not start a forged line
/// or reach the operator's terminal. Every sink writes messages through here.
fn push_message(line: &mut String, args: &std::fmt::Arguments) {
    let start = line.len();
    let _ = write!(line, "{args}");
    if line[start..].bytes().any(|b| b < 0x20 || b == 0x7f) {
        let msg = line.split_off(start);
        let _ = write!(line, "{}", Escaped::controls(&msg));
    }
}

/// The syslog priority of a record's level (the facility comes from openlog).
fn priority(level: log::Level) -> libc::c_int {
    match level {
        log::Level::Error => libc::LOG_ERR,
        log::Level::Warn => libc::LOG_WARNING,
        log::Level::Info => libc::LOG_INFO,
        log::Level::Debug | log::Level::Trace => libc::LOG_DEBUG,
    }
}

/// A string as it may appear in a log line: bytes below 0x20, 0x7f and
/// (for strings a peer chose) bytes from 0x80 up are written as `\xNN`, as
/// nginx and OpenSSH do, so a peer can neither forge a line nor send the
/// operator's terminal an escape sequence.
pub struct Escaped<'a> {
    text: &'a str,
    high: bool,
}

impl<'a> Escaped<'a> {
    /// For strings a peer chose (user names, anything off the wire).
    pub fn peer(text: &'a str) -> Escaped<'a> {
        Escaped { text, high: true }
    }

    /// For btestd's own messages: only control bytes are escaped.
    fn controls(text: &'a str) -> Escaped<'a> {
        Escaped { text, high: false }
    }
}

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut rest = self.text;
        while let Some(i) = rest.bytes().position(|b| b < 0x20 || b == 0x7f || (self.high && b >= 0x80)) {
            f.write_str(&rest[..i])?;
            let tail = &rest.as_bytes()[i..];
            // A whole UTF-8 sequence is escaped byte by byte, so the split stays on a char boundary.
            let len = if tail[0] < 0x80 { 1 } else { rest[i..].chars().next().map_or(1, char::len_utf8) };
            for b in &tail[..len] {
                write!(f, "\\x{b:02x}")?;
            }
            rest = &rest[i + len..];
        }
        f.write_str(rest)
    }
}

/// Installs the stderr logger for the process; a second call changes nothing.
/// `timestamps: false` is for one-shot commands whose output a person reads.
pub fn init(level: log::LevelFilter, timestamps: bool) {
    static WITH_TIME: Logger = Logger { sink: Sink::Stderr { timestamps: true } };
    static WITHOUT_TIME: Logger = Logger { sink: Sink::Stderr { timestamps: false } };
    install(level, if timestamps { &WITH_TIME } else { &WITHOUT_TIME });
}

/// Installs the syslog(3) logger (`serve --syslog`); a second call changes nothing.
pub fn init_syslog(level: log::LevelFilter) {
    static SYSLOG: Logger = Logger { sink: Sink::Syslog };
    install(level, &SYSLOG);
    // syslog(3) drops records silently when no syslogd listens; say so once
    // where the operator still looks (syslogd may also just start later).
    if !std::path::Path::new(SYSLOG_SOCKET).exists() {
        eprintln!("btestd: --syslog, but there is no {SYSLOG_SOCKET} yet: records are lost until syslogd runs");
    }
}

/// Where the C library's syslog(3) sends records.
const SYSLOG_SOCKET: &str = if cfg!(target_os = "freebsd") { "/var/run/log" } else { "/dev/log" };

fn install(level: log::LevelFilter, logger: &'static Logger) {
    if log::set_logger(logger).is_ok() {
        if logger.sink == Sink::Syslog {
            // SAFETY: the ident is a 'static C string, as openlog(3) requires.
            // No LOG_NDELAY: the socket opens with the first record and
            // reopens after syslogd restarts.
            unsafe { libc::openlog(c"btestd".as_ptr(), libc::LOG_PID, libc::LOG_DAEMON) };
        }
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
    use super::{Escaped, priority, push_message, timestamp};

    #[test]
    fn peer_strings_cannot_forge_lines_or_send_escapes() {
        let forged = "bob\n2026-11-24T09:40:57.566105Z [INFO] session 1 ended";
        assert_eq!(Escaped::peer(forged).to_string(), "bob\\x0a2026-11-24T09:40:57.566105Z [INFO] session 1 ended");
        assert_eq!(Escaped::peer("\x1b[2J\x7f").to_string(), "\\x1b[2J\\x7f");
        assert_eq!(Escaped::peer("Jos\u{e9}").to_string(), "Jos\\xc3\\xa9");
        assert_eq!(Escaped::peer("\u{fffd}x").to_string(), "\\xef\\xbf\\xbdx");
        assert_eq!(Escaped::peer("plain-user_1").to_string(), "plain-user_1");
        // btestd's own messages keep their UTF-8 but lose control bytes.
        assert_eq!(Escaped::controls("address in use \u{2014} a\rb").to_string(), "address in use \u{2014} a\\x0db");
    }

    #[test]
    fn every_sink_escapes_control_bytes_in_messages() {
        let mut line = String::from("[INFO] ");
        push_message(&mut line, &format_args!("a\nb\u{2014}{}", 7));
        assert_eq!(line, "[INFO] a\\x0ab\u{2014}7");
    }

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(priority(log::Level::Error), 3);
        assert_eq!(priority(log::Level::Warn), 4);
        assert_eq!(priority(log::Level::Info), 6);
        assert_eq!(priority(log::Level::Debug), 7);
        assert_eq!(priority(log::Level::Trace), 7);
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(timestamp(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(timestamp(1_795_513_257, 566_105), "2026-11-24T09:40:57.566105Z");
        // A leap day and the last second of a day.
        assert_eq!(timestamp(951_782_400 + 86_399, 999_999), "2000-02-29T23:59:59.999999Z");
    }
}

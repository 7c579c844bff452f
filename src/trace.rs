//! Protocol traces for chosen peers (`serve --trace ADDR`, `client --trace`):
//! every control-plane message decoded and in hex, logged at INFO under a
//! fixed `trace ` prefix, so that owners of RouterOS devices can settle what
//! no published source says. Secrets never appear: authentication messages
//! that carry proofs or keys are traced by length only. Code that has no
//! tracer does nothing but check an `Option`.

use crate::proto::{Command, Status};
use std::fmt::{self, Write as _};
use std::time::{Duration, Instant};

/// Where trace lines of one peer, test or connection go, and the clock they
/// are stamped with.
#[derive(Debug, Clone)]
pub struct Trace {
    /// Names the subject: `127.0.0.1:50000`, `session 3 conn 1`, ...
    label: String,
    /// Lines say how long after this they happened.
    start: Instant,
    /// When the next per-second byte count is due.
    next_tick: Instant,
    /// The byte counts of the last tick, for the deltas.
    last: (u64, u64),
}

impl Trace {
    pub fn new(label: String, start: Instant) -> Trace {
        Trace { label, start, next_tick: start + Duration::from_secs(1), last: (0, 0) }
    }

    /// A tracer for a part of this subject (`conn 2`) on the same clock.
    pub fn child(&self, part: String) -> Trace {
        Trace { label: format!("{} {part}", self.label), ..self.clone() }
    }

    /// Logs one trace line.
    pub fn line(&self, what: fmt::Arguments<'_>) {
        let ms = self.start.elapsed().as_millis();
        log::info!("trace {} +{ms}ms: {what}", self.label);
    }

    /// Logs the connection's byte counts once a second (cumulative, and
    /// what moved since the last line); call it whenever bytes move.
    pub fn tick(&mut self, rx: u64, tx: u64) {
        let now = Instant::now();
        if now < self.next_tick {
            return;
        }
        while self.next_tick <= now {
            self.next_tick += Duration::from_secs(1);
        }
        let (lrx, ltx) = std::mem::replace(&mut self.last, (rx, tx));
        self.line(format_args!("bytes rx={rx} tx={tx} (+{} +{})", rx - lrx, tx - ltx));
    }
}

/// `[07 8f 00 00]`: bytes as space-separated lowercase hex in brackets.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + bytes.len() * 3);
    s.push('[');
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{b:02x}");
    }
    s.push(']');
    s
}

/// The 16-byte command decoded field by field, then in hex; a command that
/// does not parse says why.
pub fn command(raw: &[u8; 16]) -> String {
    match Command::parse(raw) {
        Ok(c) => format!(
            "command proto={} dir={} random={} conn_count={} tx_size={} client_buf_size={} remote_tx_speed={} local_tx_speed={} {}",
            c.proto,
            c.direction,
            c.random,
            c.conn_count,
            c.tx_size,
            c.client_buf_size,
            c.remote_tx_speed,
            c.local_tx_speed,
            hex(raw)
        ),
        Err(e) => format!("command (unparsed: {e}) {}", hex(raw)),
    }
}

/// A 12-byte status decoded: the sequence number read both ways (which
/// one RouterOS uses is open), the CPU byte raw and as a load, the byte
/// count, then the hex.
pub fn status(raw: &[u8; Status::LEN]) -> String {
    let seq_be = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]);
    match Status::parse(raw) {
        Ok(s) => {
            let cpu = s.cpu.map_or_else(|| "none".to_string(), |c| format!("{c}%"));
            format!("status seq={} (be {seq_be}) cpu={:#04x}({cpu}) bytes={} {}", s.seq, raw[1], s.bytes, hex(raw))
        }
        Err(e) => format!("status (unparsed: {e}) {}", hex(raw)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_bracketed_spaced_lowercase() {
        assert_eq!(hex(&[]), "[]");
        assert_eq!(hex(&[0x07]), "[07]");
        assert_eq!(hex(&[0x07, 0x8f, 0x00, 0xAB]), "[07 8f 00 ab]");
    }

    #[test]
    fn status_shows_fields_and_raw_bytes() {
        let raw = Status { cpu: Some(15), seq: 2, bytes: 123_456 }.emit();
        assert_eq!(
            status(&raw),
            "status seq=2 (be 33554432) cpu=0x8f(15%) bytes=123456 [07 8f 00 00 02 00 00 00 40 e2 01 00]"
        );
        let none = Status { cpu: None, seq: 1, bytes: 0 }.emit();
        assert!(status(&none).contains("cpu=0x00(none)"), "{}", status(&none));
        assert!(status(&[0xff; 12]).starts_with("status (unparsed"));
    }

    #[test]
    fn command_shows_every_field() {
        let raw = [1, 1, 1, 2, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let s = command(&raw);
        for field in ["conn_count=2", "tx_size=32768", "random=false", "remote_tx_speed=0", "[01 01 01 02 00 80"] {
            assert!(s.contains(field), "{field} in {s}");
        }
    }
}

//! Per-second lines and the summary, as text for people or CSV for scripts.

use super::Summary;
use std::io::Write;

/// One reporting interval (normally one second).
#[derive(Debug, Clone, Copy, Default)]
pub struct Interval {
    pub second: u32,
    /// Time since the data phase began.
    pub seconds: f64,
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    /// Bytes the server said it received in this interval.
    pub remote_rx_bytes: u64,
    pub local_cpu: Option<u8>,
    pub remote_cpu: Option<u8>,
    pub lost_packets: u64,
}

impl Interval {
    /// Byte and loss counters of `self` (running totals) minus `earlier`'s.
    pub fn minus(&self, earlier: &Interval) -> Interval {
        Interval {
            tx_bytes: self.tx_bytes.saturating_sub(earlier.tx_bytes),
            rx_bytes: self.rx_bytes.saturating_sub(earlier.rx_bytes),
            remote_rx_bytes: self.remote_rx_bytes.saturating_sub(earlier.remote_rx_bytes),
            lost_packets: self.lost_packets.saturating_sub(earlier.lost_packets),
            ..Interval::default()
        }
    }
}

pub trait Reporter {
    fn interval(&mut self, iv: &Interval);
    fn summary(&mut self, s: &Summary);
}

fn mbps(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 { bytes as f64 * 8.0 / secs / 1e6 } else { 0.0 }
}

fn cpu(c: Option<u8>) -> String {
    c.map_or_else(|| "-".to_string(), |c| format!("{c}%"))
}

/// Aligned text for a terminal.
pub struct Text<W: Write>(pub W);

impl<W: Write> Reporter for Text<W> {
    fn interval(&mut self, iv: &Interval) {
        let _ = writeln!(
            self.0,
            "{:>4}s  tx {:>9.2} Mbit/s  rx {:>9.2} Mbit/s  cpu local {:>4} remote {:>4}{}",
            iv.second,
            mbps(iv.tx_bytes, 1.0),
            mbps(iv.rx_bytes, 1.0),
            cpu(iv.local_cpu),
            cpu(iv.remote_cpu),
            if iv.lost_packets > 0 { format!("  lost {}", iv.lost_packets) } else { String::new() }
        );
        let _ = self.0.flush();
    }

    fn summary(&mut self, s: &Summary) {
        let _ = writeln!(
            self.0,
            "summary: {:.2} s  tx {} bytes ({:.2} Mbit/s)  rx {} bytes ({:.2} Mbit/s)  server reported {} bytes received  lost {}{}",
            s.seconds,
            s.tx_bytes,
            mbps(s.tx_bytes, s.seconds),
            s.rx_bytes,
            mbps(s.rx_bytes, s.seconds),
            s.remote_rx_bytes,
            s.lost_packets,
            if s.ended_by_server { "  (the server ended the test early)" } else { "" }
        );
        let _ = self.0.flush();
    }
}

/// Comma-separated values with a header line.
pub struct Csv<W: Write> {
    out: W,
    header: bool,
}

impl<W: Write> Csv<W> {
    pub fn new(out: W) -> Csv<W> {
        Csv { out, header: false }
    }

    fn header(&mut self) {
        if !self.header {
            self.header = true;
            let _ = writeln!(
                self.out,
                "kind,seconds,tx_bytes,rx_bytes,tx_mbps,rx_mbps,local_cpu,remote_cpu,remote_rx_bytes,lost_packets,ended_by_server"
            );
        }
    }
}

fn opt(c: Option<u8>) -> String {
    c.map_or_else(String::new, |c| c.to_string())
}

impl<W: Write> Reporter for Csv<W> {
    fn interval(&mut self, iv: &Interval) {
        self.header();
        let _ = writeln!(
            self.out,
            "interval,{:.3},{},{},{:.3},{:.3},{},{},{},{},",
            iv.seconds,
            iv.tx_bytes,
            iv.rx_bytes,
            mbps(iv.tx_bytes, 1.0),
            mbps(iv.rx_bytes, 1.0),
            opt(iv.local_cpu),
            opt(iv.remote_cpu),
            iv.remote_rx_bytes,
            iv.lost_packets
        );
        let _ = self.out.flush();
    }

    fn summary(&mut self, s: &Summary) {
        self.header();
        let _ = writeln!(
            self.out,
            "summary,{:.3},{},{},{:.3},{:.3},{},{},{},{},{}",
            s.seconds,
            s.tx_bytes,
            s.rx_bytes,
            mbps(s.tx_bytes, s.seconds),
            mbps(s.rx_bytes, s.seconds),
            opt(s.local_cpu),
            opt(s.remote_cpu),
            s.remote_rx_bytes,
            s.lost_packets,
            u8::from(s.ended_by_server)
        );
        let _ = self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_header_once_and_fixed_columns() {
        let mut buf = Vec::new();
        {
            let mut r = Csv::new(&mut buf);
            r.interval(&Interval { second: 1, seconds: 1.0, tx_bytes: 125_000, ..Default::default() });
            r.summary(&Summary { seconds: 2.0, tx_bytes: 250_000, remote_cpu: Some(7), ..Default::default() });
        }
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let cols = lines[0].split(',').count();
        assert!(lines.iter().all(|l| l.split(',').count() == cols), "{text}");
        assert!(lines[1].starts_with("interval,1.000,125000,0,1.000,"));
        assert_eq!(lines[2], "summary,2.000,250000,0,1.000,0.000,,7,0,0,0");
    }
}

//! The daemon's state at one moment, as `btestd status` shows it: the
//! running tests with their rates over the last second, handshakes, and the
//! refusal and ban counters since the start. Rendered as a text table or as
//! one JSON document whose field names are documented in the README.

use crate::json::Json;
use crate::proto::{Direction, Protocol};
use crate::quota::format_amount;
use std::fmt::Write;
use std::net::SocketAddr;

/// One test that has not ended yet.
#[derive(Debug, Clone)]
pub struct LiveTest {
    pub id: u64,
    pub peer: SocketAddr,
    pub user: Option<String>,
    pub proto: Protocol,
    pub direction: Direction,
    /// `joining`, `running` or `draining`.
    pub phase: &'static str,
    pub connections: usize,
    pub connections_wanted: usize,
    /// When it was admitted (Unix seconds).
    pub started_unix: i64,
    /// Seconds since its data phase began (0 while joining).
    pub elapsed_secs: u64,
    /// Bits per second the server received / transmitted over the last second.
    pub rx_bps: u64,
    pub tx_bps: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Bytes left of the tightest budget of the user (or of anonymous
    /// tests) and of the client address; None: no budget applies.
    pub user_left: Option<u64>,
    pub address_left: Option<u64>,
}

/// Tests ended since the start, by protocol, direction and how they ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub proto: Protocol,
    pub direction: Direction,
    pub result: &'static str,
    pub count: u64,
}

#[derive(Debug, Clone)]
pub struct Status {
    pub version: &'static str,
    pub now_unix: i64,
    pub uptime_secs: u64,
    pub handshakes_pending: usize,
    pub tests: Vec<LiveTest>,
    /// Refusals since the start by reason, every reason listed.
    pub refused: Vec<(&'static str, u64)>,
    pub auth_failures: u64,
    pub bans_started: u64,
    pub bans_active: usize,
    pub ended: Vec<Ended>,
    /// Bytes (received, transmitted) of all tests since the start, running ones included.
    pub bytes_total: (u64, u64),
    /// btestd's resident memory, where the system tells it.
    pub resident_bytes: Option<u64>,
}

/// `12.3 Mbit/s`, decimal units.
pub fn format_rate(bps: u64) -> String {
    crate::decimal::format_prefixed(bps, "bit/s", &["kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"])
}

/// `1h02m03s`, `4m05s`, `7s`.
pub fn format_secs(s: u64) -> String {
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec:02}s"),
        (h, m, sec) => format!("{h}h{m:02}m{sec:02}s"),
    }
}

fn left(b: Option<u64>) -> String {
    b.map_or_else(|| "-".into(), format_amount)
}

impl Status {
    /// The text `btestd status` prints: a summary, a table of the running
    /// tests, then the counters.
    pub fn text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "btestd {}, up {}", self.version, format_secs(self.uptime_secs));
        let _ = writeln!(o, "tests running: {}, handshakes pending: {}", self.tests.len(), self.handshakes_pending);
        if !self.tests.is_empty() {
            let head = ["ID", "PEER", "USER", "PROTO", "DIR", "PHASE", "CONNS", "RX/S", "TX/S", "RX", "TX", "SECS"];
            let mut rows: Vec<Vec<String>> = vec![head.iter().map(|h| h.to_string()).collect()];
            rows[0].extend(["LEFT USER".into(), "LEFT ADDR".into()]);
            for t in &self.tests {
                rows.push(vec![
                    t.id.to_string(),
                    t.peer.to_string(),
                    t.user.clone().unwrap_or_else(|| "-".into()),
                    t.proto.to_string(),
                    t.direction.to_string(),
                    t.phase.into(),
                    format!("{}/{}", t.connections, t.connections_wanted),
                    format_rate(t.rx_bps),
                    format_rate(t.tx_bps),
                    format_amount(t.rx_bytes),
                    format_amount(t.tx_bytes),
                    t.elapsed_secs.to_string(),
                    left(t.user_left),
                    left(t.address_left),
                ]);
            }
            aligned(&mut o, &rows);
        }
        let refused: Vec<String> =
            self.refused.iter().filter(|(_, n)| *n > 0).map(|(r, n)| format!("{r} {n}")).collect();
        let total: u64 = self.refused.iter().map(|(_, n)| n).sum();
        let _ = write!(o, "refused: {total}");
        if !refused.is_empty() {
            let _ = write!(o, " ({})", refused.join(", "));
        }
        let _ = writeln!(
            o,
            "\nfailed logins: {}, bans started: {}, bans active: {}",
            self.auth_failures, self.bans_started, self.bans_active
        );
        o
    }

    /// The JSON document of `btestd status --format json`.
    pub fn json(&self) -> String {
        let mut j = Json::new();
        j.begin_object();
        self.write_fields(&mut j);
        j.end_object();
        j.finish()
    }

    /// The members of [`Status::json`], inside an object the caller opened.
    pub fn write_fields(&self, j: &mut Json) {
        j.key("version").str(self.version);
        j.key("time").time(self.now_unix);
        j.key("uptime_secs").u64(self.uptime_secs);
        j.key("handshakes_pending").u64(self.handshakes_pending as u64);
        self.write_tests(j);
        j.key("refused").begin_object();
        for (reason, n) in &self.refused {
            j.key(reason).u64(*n);
        }
        j.end_object();
        j.key("auth_failures").u64(self.auth_failures);
        j.key("bans_started").u64(self.bans_started);
        j.key("bans_active").u64(self.bans_active as u64);
        j.key("rx_bytes_total").u64(self.bytes_total.0);
        j.key("tx_bytes_total").u64(self.bytes_total.1);
    }

    /// The `tests` member.
    pub fn write_tests(&self, j: &mut Json) {
        j.key("tests").begin_array();
        for t in &self.tests {
            j.begin_object();
            j.key("id").u64(t.id);
            j.key("peer").str(&t.peer.to_string());
            j.key("peer_ip").str(&t.peer.ip().to_string());
            j.key("user").opt_str(t.user.as_deref());
            j.key("protocol").str(&t.proto.to_string());
            j.key("direction").str(&t.direction.to_string());
            j.key("phase").str(t.phase);
            j.key("connections").u64(t.connections as u64);
            j.key("connections_wanted").u64(t.connections_wanted as u64);
            j.key("started").time(t.started_unix);
            j.key("elapsed_secs").u64(t.elapsed_secs);
            j.key("rx_bps").u64(t.rx_bps);
            j.key("tx_bps").u64(t.tx_bps);
            j.key("rx_bytes").u64(t.rx_bytes);
            j.key("tx_bytes").u64(t.tx_bytes);
            j.key("user_budget_left_bytes").opt_u64(t.user_left);
            j.key("address_budget_left_bytes").opt_u64(t.address_left);
            j.end_object();
        }
        j.end_array();
    }
}

/// Appends `rows` as columns aligned on their widest cell, two spaces
/// apart; the last cell of a row is not padded.
pub fn aligned(o: &mut String, rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|f| f.chars().count()).max().unwrap_or(0)).collect();
    for r in rows {
        for (c, f) in r.iter().enumerate() {
            o.push_str(f);
            if c + 1 < r.len() {
                o.extend(std::iter::repeat_n(' ', widths[c] - f.chars().count() + 2));
            }
        }
        o.push('\n');
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Status {
        Status {
            version: "9.9.9",
            now_unix: 1_795_478_400,
            uptime_secs: 3723,
            handshakes_pending: 2,
            tests: vec![LiveTest {
                id: 7,
                peer: "192.0.2.1:40000".parse().unwrap(),
                user: Some("ann \"x\"".into()),
                proto: Protocol::Udp,
                direction: Direction::Both,
                phase: "running",
                connections: 1,
                connections_wanted: 1,
                started_unix: 1_795_478_390,
                elapsed_secs: 9,
                rx_bps: 12_345_678,
                tx_bps: 999,
                rx_bytes: 15_000_000,
                tx_bytes: 1200,
                user_left: Some(5_000_000_000),
                address_left: None,
            }],
            refused: vec![("server-full", 3), ("banned", 0), ("budget", 1)],
            auth_failures: 4,
            bans_started: 1,
            bans_active: 1,
            ended: vec![Ended {
                proto: Protocol::Tcp,
                direction: Direction::ServerToClient,
                result: "peer-closed",
                count: 5,
            }],
            bytes_total: (20_000_000, 3_000),
            resident_bytes: Some(4 << 20),
        }
    }

    #[test]
    fn text_lists_tests_and_counters() {
        let t = sample().text();
        assert!(t.starts_with("btestd 9.9.9, up 1h02m03s\ntests running: 1, handshakes pending: 2\n"), "{t}");
        let row = t.lines().find(|l| l.starts_with("7 ")).expect(&t);
        for cell in
            ["192.0.2.1:40000", "udp", "both", "running", "1/1", "12.3 Mbit/s", "999 bit/s", "15.0 MB", "5.0 GB"]
        {
            assert!(row.contains(cell), "{cell} in {row}");
        }
        assert!(t.contains("refused: 4 (server-full 3, budget 1)\n"), "{t}");
        assert!(t.ends_with("failed logins: 4, bans started: 1, bans active: 1\n"), "{t}");
    }

    #[test]
    fn json_has_the_documented_fields() {
        let v: serde_json::Value = serde_json::from_str(&sample().json()).unwrap();
        assert_eq!(v["version"], "9.9.9");
        assert_eq!(v["time"], "2026-11-24T00:00:00Z");
        assert_eq!(v["handshakes_pending"], 2);
        let t = &v["tests"][0];
        assert_eq!(t["user"], "ann \"x\"");
        assert_eq!(t["rx_bps"], 12_345_678);
        assert_eq!(t["started"], "2026-11-23T23:59:50Z");
        assert_eq!(t["direction"], "both");
        assert!(t["address_budget_left_bytes"].is_null());
        assert_eq!(t["user_budget_left_bytes"], 5_000_000_000u64);
        assert_eq!(v["refused"]["server-full"], 3);
        assert_eq!(v["refused"]["banned"], 0);
        assert_eq!(v["bans_active"], 1);
    }

    #[test]
    fn rates_and_durations_read_easily() {
        assert_eq!(format_rate(0), "0 bit/s");
        assert_eq!(format_rate(1_000), "1.0 kbit/s");
        assert_eq!(format_rate(999_960), "1.0 Mbit/s");
        assert_eq!(format_rate(9_400_000_000), "9.4 Gbit/s");
        assert_eq!(format_secs(7), "7s");
        assert_eq!(format_secs(245), "4m05s");
    }
}

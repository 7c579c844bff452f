//! The Prometheus text exposition (format 0.0.4) of a [`Status`]: low
//! cardinality on purpose, so no label names a user or an address.

use super::Status;
use crate::proto::Protocol;
use std::fmt::Write;

fn family(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value with `\`, `"` and newlines escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The exposition text; every family has HELP and TYPE lines.
pub fn render(s: &Status) -> String {
    let mut o = String::with_capacity(2048);
    family(&mut o, "btestd_build_info", "gauge", "Always 1; the version of the running btestd.");
    let _ = writeln!(o, "btestd_build_info{{version=\"{}\"}} 1", label(s.version));
    family(&mut o, "btestd_start_time_seconds", "gauge", "When btestd started, in Unix seconds.");
    let _ = writeln!(o, "btestd_start_time_seconds {}", s.now_unix - s.uptime_secs as i64);
    family(&mut o, "btestd_sessions_active", "gauge", "Tests admitted and not yet ended.");
    for p in [Protocol::Tcp, Protocol::Udp] {
        let n = s.tests.iter().filter(|t| t.proto == p).count();
        let _ = writeln!(o, "btestd_sessions_active{{proto=\"{p}\"}} {n}");
    }
    family(&mut o, "btestd_sessions_total", "counter", "Tests ended, by protocol, direction and how they ended.");
    for e in &s.ended {
        let _ = writeln!(
            o,
            "btestd_sessions_total{{proto=\"{}\",direction=\"{}\",result=\"{}\"}} {}",
            e.proto, e.direction, e.result, e.count
        );
    }
    family(&mut o, "btestd_bytes_total", "counter", "Test payload bytes the server received (rx) and sent (tx).");
    let _ = writeln!(o, "btestd_bytes_total{{direction=\"rx\"}} {}", s.bytes_total.0);
    let _ = writeln!(o, "btestd_bytes_total{{direction=\"tx\"}} {}", s.bytes_total.1);
    family(&mut o, "btestd_handshakes_pending", "gauge", "Connections still in their handshake.");
    let _ = writeln!(o, "btestd_handshakes_pending {}", s.handshakes_pending);
    family(&mut o, "btestd_refused_total", "counter", "Connections and tests refused, by reason.");
    for (reason, n) in &s.refused {
        let _ = writeln!(o, "btestd_refused_total{{reason=\"{reason}\"}} {n}");
    }
    family(&mut o, "btestd_auth_failures_total", "counter", "Failed logins, wrong join tokens included.");
    let _ = writeln!(o, "btestd_auth_failures_total {}", s.auth_failures);
    family(&mut o, "btestd_bans_total", "counter", "Bans started after repeated failed logins.");
    let _ = writeln!(o, "btestd_bans_total {}", s.bans_started);
    family(&mut o, "btestd_bans_active", "gauge", "Addresses banned now.");
    let _ = writeln!(o, "btestd_bans_active {}", s.bans_active);
    if let Some(m) = s.resident_bytes {
        family(&mut o, "btestd_process_resident_memory_bytes", "gauge", "Memory btestd alone holds.");
        let _ = writeln!(o, "btestd_process_resident_memory_bytes {m}");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_typed_and_samples_carry_their_labels() {
        let text = render(&crate::observe::status::tests::sample());
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = name.strip_suffix("_total").map_or(name.to_string(), |n| format!("{n}_total"));
            assert!(text.contains(&format!("# TYPE {family} ")), "{line}");
        }
        assert!(text.contains("btestd_sessions_active{proto=\"udp\"} 1\n"));
        assert!(text.contains("btestd_sessions_active{proto=\"tcp\"} 0\n"));
        assert!(
            text.contains("btestd_sessions_total{proto=\"tcp\",direction=\"transmit\",result=\"peer-closed\"} 5\n")
        );
        assert!(text.contains("btestd_bytes_total{direction=\"rx\"} 20000000\n"));
        assert!(text.contains("btestd_refused_total{reason=\"server-full\"} 3\n"));
        assert!(text.contains("btestd_process_resident_memory_bytes 4194304\n"));
        assert!(!text.contains("192.0.2.1") && !text.contains("ann \""), "no per-address or per-user labels");
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}

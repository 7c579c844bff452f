//! `serve --trace ADDR` and `client --trace` against a real server: the
//! trace lines carry the handshake, replies, statuses and byte counts of a
//! traced peer, never an authentication secret, and nothing for others.

mod common;

use common::*;
use std::time::Duration;

const LOG_WAIT: Duration = Duration::from_secs(10);

/// The lines with the trace prefix.
fn traces(lines: &[String]) -> Vec<String> {
    lines.iter().filter(|l| l.contains("] trace ")).cloned().collect()
}

/// The value of `key=` in the first line containing all of `needles`.
fn field(lines: &[String], needles: &[&str], key: &str) -> u64 {
    let line = lines
        .iter()
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .unwrap_or_else(|| panic!("no line with {needles:?} in {lines:#?}"));
    num(&kv(line), key)
}

/// No trace line shows more than `max` hex bytes in a row: an MD5 response
/// (48 bytes) or an EC-SRP5 message would be longer than any reply (20).
fn longest_hex(lines: &[String]) -> usize {
    let dump = |l: &String| l.split('[').nth(2).and_then(|h| h.split(']').next()).map(|h| h.split(' ').count());
    lines.iter().filter_map(dump).max().unwrap_or(0)
}

#[test]
fn a_traced_peer_gets_its_exchanges_logged_without_secrets() {
    let server = Server::start(&[
        "--no-db",
        "--trace",
        "127.0.0.1",
        "--user",
        "alice",
        "--password",
        "s3cret",
        "--auth-scheme",
        "md5",
    ]);
    let auth = ["--user", "alice", "--password", "s3cret", "--trace"];
    let mut args = vec!["--connections", "2", "--direction", "both", "--duration", "3"];
    args.extend(auth);
    let tcp = client(server.addr, &args);
    assert_eq!(tcp.code, 0, "{tcp:?}");
    server.session_end(1, LOG_WAIT);
    let mut args =
        vec!["--proto", "udp", "--direction", "both", "--duration", "3", "--speed", "5M", "--remote-speed", "5M"];
    args.extend(auth);
    let udp = client(server.addr, &args);
    assert_eq!(udp.code, 0, "{udp:?}");
    server.session_end(2, LOG_WAIT);
    let log = traces(&server.log());

    // The handshake: HELLO, the command's fields and bytes, the challenge.
    assert!(log.iter().any(|l| l.contains("tx HELLO [01 00 00 00]")), "{log:#?}");
    let cmd = log.iter().find(|l| l.contains("rx command proto=tcp")).expect("tcp command traced");
    for f in ["dir=both", "conn_count=2", "tx_size=32768", "random=false", "[01 03 01 02 00 80 00 00"] {
        assert!(cmd.contains(f), "{f} in {cmd}");
    }
    assert!(log.iter().any(|l| l.contains("rx command proto=udp") && l.contains("remote_tx_speed=5000000")));
    assert_eq!(field(&log, &["tx md5 challenge"], "len"), 20);
    assert_eq!(field(&log, &["rx md5-response"], "len"), 48);
    assert!(longest_hex(&log) <= 20, "a long hex dump in {log:#?}");
    // The OK with the token, to the primary and to the joining connection.
    let ok = log.iter().find(|l| l.contains("session 1 conn 1") && l.contains("tx OK token=")).expect("OK");
    let token: u16 = ok.split("token=").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert_ne!(token, 0, "a multi-connection test gets a token: {ok}");
    let hex = format!("[01 {:02x} {:02x} 00]", token >> 8, token & 0xff);
    assert!(ok.ends_with(&hex), "{ok} carries {hex}");
    assert!(log.iter().any(|l| l.contains("session 1 conn 2") && l.contains("joined") && l.ends_with(&hex)));
    assert!(log.iter().any(|l| l.contains("session 2 conn 1") && l.contains("tx udp port=")));
    // Statuses both ways, decoded, with their bytes; the clock is the test's.
    let tx = log.iter().find(|l| l.contains("session 1 conn 2") && l.contains("tx status seq=1")).expect("tx status");
    assert!(tx.contains(" +1") && tx.contains("cpu=0x") && tx.contains("[07 "), "{tx}");
    assert!(field(&log, &["session 1 conn 1", "tx status seq=1"], "bytes") > 0);
    assert!(field(&log, &["session 2 conn 1", "rx status seq=1"], "bytes") > 0, "client's UDP status");
    assert!(field(&log, &["session 2 conn 1", "udp rx="], "rx") > 0);
    // Byte counts once a second on each connection.
    for conn in ["session 1 conn 1 ", "session 1 conn 2 "] {
        assert!(field(&log, &[conn, "bytes rx="], "tx") > 0, "{conn}");
        let ticks = log.iter().filter(|l| l.contains(conn) && l.contains(": bytes rx=")).count();
        assert!((2..=4).contains(&ticks), "{ticks} ticks on {conn}");
    }

    // The client traces its side the same way, on stderr.
    let c = traces(&tcp.stderr.lines().map(String::from).collect::<Vec<_>>());
    assert!(c.iter().any(|l| l.contains("rx HELLO [01 00 00 00]")), "{c:#?}");
    assert!(c.iter().any(|l| l.contains("tx command proto=tcp") && l.contains("conn_count=2")));
    assert_eq!(field(&c, &["rx md5 challenge"], "len"), 16);
    assert!(c.iter().any(|l| l.contains("tx md5 response len=48 (contents withheld)")));
    assert!(c.iter().any(|l| l.contains("rx authentication result") && l.ends_with(&hex)));
    assert!(c.iter().any(|l| l.contains("conn 2") && l.contains("tx join token=")));
    assert!(c.iter().any(|l| l.contains("conn 1") && l.contains("rx status seq=1")));
    assert!(longest_hex(&c) <= 16, "a long hex dump in {c:#?}");
    assert!(!tcp.stderr.contains("s3cret") && !server.log().iter().any(|l| l.contains("s3cret")));
}

#[test]
fn untraced_peers_leave_no_trace_lines() {
    for args in [&[][..], &["--trace", "192.0.2.0/24"][..]] {
        let server = Server::start(&[&["--no-db"][..], args].concat());
        let c = client(server.addr, &["--connections", "2", "--duration", "2"]);
        assert_eq!(c.code, 0, "{c:?}");
        server.session_end(1, LOG_WAIT);
        let c = client(server.addr, &["--proto", "udp", "--duration", "2", "--remote-speed", "5M"]);
        assert_eq!(c.code, 0, "{c:?}");
        server.session_end(2, LOG_WAIT);
        assert_eq!(traces(&server.log()), Vec::<String>::new(), "{args:?}");
        assert!(!c.stderr.contains("trace "), "client without --trace: {}", c.stderr);
    }
}

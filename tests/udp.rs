//! UDP tests against a real `btestd serve`: the client, and raw sockets
//! playing RouterOS (or a lossy path, or a stranger).

mod common;

use common::*;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const LOG_WAIT: Duration = Duration::from_secs(10);

/// Starts a raw UDP test; returns the control connection and the server's UDP address.
fn raw_udp(server: &Server, cmd: &[u8; 16]) -> (Raw, SocketAddr) {
    let (mut r, rep) = Raw::command(server.addr, cmd);
    assert_eq!(rep, [1, 0, 0, 0]);
    let p = r.read_n(2);
    let port = u16::from_be_bytes([p[0], p[1]]);
    (r, SocketAddr::new(server.addr.ip(), port))
}

fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 * 8.0 / secs / 1e6
}

#[test]
fn every_direction_counts_match() {
    let server = Server::start(&[]);
    for (i, dir) in ["send", "receive", "both"].iter().enumerate() {
        let c = client(
            server.addr,
            &["--proto", "udp", "--direction", dir, "--duration", "2", "--speed", "20M", "--remote-speed", "20M"],
        );
        assert_eq!(c.code, 0, "{dir}: {c:?}");
        let end = server.session_end(i as u64 + 1, LOG_WAIT);
        assert_eq!(end["proto"], "udp");
        let (srv_rx, srv_tx) = (num(&end, "rx_bytes"), num(&end, "tx_bytes"));
        if *dir != "receive" {
            // Every datagram the client sent arrived (loopback, 20 Mbit/s), bar the last in flight.
            assert!(srv_rx <= c.tx_bytes && srv_rx as f64 >= c.tx_bytes as f64 * 0.99, "{dir}: srv_rx={srv_rx} {c:?}");
            assert!((mbps(c.tx_bytes, c.seconds) - 20.0).abs() < 1.0, "{dir}: {c:?}");
            // The server's statuses on the control connection carry what it received.
            assert!(c.remote_rx_bytes > 0 && c.remote_rx_bytes <= srv_rx, "{dir}: {c:?}");
            assert_eq!(end["lost"], "0");
        } else {
            assert_eq!(srv_rx, 0);
        }
        if *dir != "send" {
            assert!(c.rx_bytes <= srv_tx && c.rx_bytes as f64 >= srv_tx as f64 * 0.99, "{dir}: srv_tx={srv_tx} {c:?}");
            assert!((mbps(c.rx_bytes, c.seconds) - 20.0).abs() < 1.0, "{dir}: {c:?}");
            assert_eq!(c.lost, 0, "{dir}: {c:?}");
        }
        // Both sides send a status each second whatever the direction.
        assert!(num(&end, "peer_statuses") >= 1, "{dir}: {end:?}");
    }
}

#[test]
fn commanded_speeds_are_met_within_five_percent() {
    let server = Server::start(&[]);
    for (speed, want) in [("1M", 1.0), ("10M", 10.0), ("100M", 100.0)] {
        let c = client(
            server.addr,
            &["--proto", "udp", "--direction", "receive", "--duration", "4", "--remote-speed", speed],
        );
        assert_eq!(c.code, 0, "{c:?}");
        let got = mbps(c.rx_bytes, c.seconds);
        assert!((got - want).abs() <= want * 0.05, "asked {speed}, got {got:.3} Mbit/s: {c:?}");
        let c = client(server.addr, &["--proto", "udp", "--direction", "send", "--duration", "4", "--speed", speed]);
        let got = mbps(c.tx_bytes, c.seconds);
        assert!((got - want).abs() <= want * 0.05, "client at {speed} sent {got:.3} Mbit/s: {c:?}");
    }
}

#[test]
fn unlimited_adapts_to_what_arrives() {
    let server = Server::start(&[]);
    let c = client(server.addr, &["--proto", "udp", "--direction", "receive", "--duration", "3"]);
    assert_eq!(c.code, 0, "{c:?}");
    assert!(mbps(c.rx_bytes, c.seconds) > 200.0, "{c:?}");
    let end = server.session_end(1, LOG_WAIT);
    assert!(num(&end, "tx_bytes") >= c.rx_bytes);
}

#[test]
fn operator_rate_cap_bounds_unlimited_requests() {
    let server = Server::start(&["--max-rate", "5M"]);
    let c = client(server.addr, &["--proto", "udp", "--direction", "receive", "--duration", "3"]);
    let got = mbps(c.rx_bytes, c.seconds);
    assert!((got - 5.0).abs() < 0.5, "{got} Mbit/s: {c:?}");
}

#[test]
fn loss_reordering_and_duplicates_are_accounted() {
    let server = Server::start(&[]);
    let (r, udp) = raw_udp(&server, &udp_cmd(1, 1500, 0));
    let peer = r.s.local_addr().unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    // A lossy path: every 10th datagram dropped; one pair reordered; two
    // duplicates; one datagram far too late to place.
    let mut seqs: Vec<u32> = (1..=1000).filter(|s| s % 10 != 0).collect();
    seqs.swap(100, 101);
    seqs.push(999);
    seqs.push(998);
    seqs.push(5);
    for s in &seqs {
        sock.send_to(&datagram(*s, 1472), udp).unwrap();
        if s % 100 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    // A stranger's datagrams are ignored.
    let stranger = UdpSocket::bind("127.0.0.2:0").unwrap();
    for s in 0..50 {
        stranger.send_to(&datagram(s, 1472), udp).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    drop(r);
    let end = server.session_end_of(peer, LOG_WAIT);
    // 1000 sent minus 100 dropped; the last one (1000) was dropped, so 99 gaps are visible.
    assert_eq!(end["lost"], "99", "{end:?}");
    assert_eq!(num(&end, "rx_bytes"), 900 * 1500, "{end:?}");
    server.wait_log("ignored 50 datagrams from other addresses", LOG_WAIT);
}

#[test]
fn nat_client_port_is_learned_from_first_datagram() {
    let server = Server::start(&[]);
    let (mut r, udp) = raw_udp(&server, &udp_cmd(2, 1000, 1_000_000));
    // Not the protocol's port + 256: as if a NAT had rewritten it.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.send_to(&[], udp).unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = sock.recv_from(&mut buf).expect("server datagram at the learned port");
    assert_eq!(from, udp);
    assert_eq!(n, 1000 - 28);
    r.send(&[0x07, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn two_concurrent_udp_tests_get_different_ports() {
    let server = Server::start(&[]);
    let a = client_spawn(
        server.addr,
        &["--proto", "udp", "--direction", "both", "--duration", "2", "--speed", "10M", "--remote-speed", "10M"],
    );
    let b = client_spawn(
        server.addr,
        &["--proto", "udp", "--direction", "both", "--duration", "2", "--speed", "10M", "--remote-speed", "10M"],
    );
    let (a, b) = (client_wait(a), client_wait(b));
    for c in [&a, &b] {
        assert_eq!(c.code, 0, "{c:?}");
        assert!(mbps(c.rx_bytes, c.seconds) > 9.0 && mbps(c.tx_bytes, c.seconds) > 9.0, "{c:?}");
        assert_eq!(c.lost, 0);
    }
    let ports: Vec<String> =
        server.wait_log_count("udp_port=", 2, LOG_WAIT).iter().map(|l| kv(l)["udp_port"].clone()).collect();
    assert_ne!(ports[0], ports[1]);
}

#[test]
fn ports_are_reused_over_five_hundred_sequential_tests() {
    let server = Server::start(&["--udp-port-base", "31000", "--udp-port-count", "3"]);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..500 {
        let (mut r, udp) = raw_udp(&server, &udp_cmd(2, 1500, 8000));
        seen.insert(udp.port());
        r.s.shutdown(std::net::Shutdown::Write).unwrap();
        let (_, closed) = r.read_to_close(Duration::from_secs(5));
        assert!(closed);
    }
    assert!(seen.iter().all(|p| (31000..31003).contains(p)), "{seen:?}");
    assert_eq!(server.wait_log_count(" ended: ", 500, LOG_WAIT).len(), 500);
}

#[test]
fn port_exhaustion_is_a_clear_refusal() {
    let server = Server::start(&["--udp-port-base", "31100", "--udp-port-count", "1"]);
    let (_held, _) = raw_udp(&server, &udp_cmd(2, 1500, 8000));
    let (mut r, rep) = Raw::command(server.addr, &udp_cmd(2, 1500, 8000));
    assert_eq!(rep, [0, 0, 0, 0]);
    assert!(r.read_to_close(Duration::from_secs(5)).1);
    server.wait_log("all UDP ports 31100-31100 are in use", LOG_WAIT);
}

#[test]
fn silent_udp_peer_is_timed_out_and_its_port_freed() {
    let server = Server::start(&["--idle-timeout", "1", "--udp-port-base", "31200", "--udp-port-count", "1"]);
    let t0 = Instant::now();
    let (r, udp) = raw_udp(&server, &udp_cmd(2, 1500, 100_000));
    let peer = r.s.local_addr().unwrap();
    let end = server.session_end_of(peer, LOG_WAIT);
    assert_eq!(end["reason"], "idle-timeout");
    assert!(t0.elapsed() < Duration::from_secs(4));
    // The single port is free again.
    let (_r2, udp2) = raw_udp(&server, &udp_cmd(2, 1500, 100_000));
    assert_eq!(udp2, udp);
}

#[test]
fn portable_io_fallback_moves_the_same_traffic() {
    let server = Server::start(&["--udp-io", "portable"]);
    let c = client(
        server.addr,
        &["--proto", "udp", "--direction", "both", "--duration", "2", "--speed", "20M", "--remote-speed", "20M"],
    );
    assert_eq!(c.code, 0, "{c:?}");
    let end = server.session_end(1, LOG_WAIT);
    assert!(num(&end, "rx_bytes") as f64 >= c.tx_bytes as f64 * 0.99, "{end:?} {c:?}");
    assert!((mbps(c.rx_bytes, c.seconds) - 20.0).abs() < 1.0, "{c:?}");
}

#[test]
fn largest_and_smallest_tx_sizes_work() {
    let server = Server::start(&[]);
    for size in ["64000", "28"] {
        let c = client(
            server.addr,
            &[
                "--proto",
                "udp",
                "--direction",
                "both",
                "--duration",
                "2",
                "--tx-size",
                size,
                "--speed",
                "2M",
                "--remote-speed",
                "2M",
            ],
        );
        assert_eq!(c.code, 0, "{size}: {c:?}");
        assert!(c.rx_bytes > 0 && c.tx_bytes > 0, "{size}: {c:?}");
        assert_eq!(c.lost, 0, "{size}: {c:?}");
    }
    // On the wire: a 64000-byte IP packet is a 63972-byte UDP payload.
    let (_r, udp) = raw_udp(&server, &udp_cmd(2, 64000, 1_000_000));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.send_to(&[], udp).unwrap();
    let mut buf = vec![0u8; 65536];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert_eq!(n, 63972);
}

#[test]
fn udp_with_md5_and_ecsrp5_sends_port_after_ok() {
    for scheme in ["md5", "ecsrp5"] {
        let server =
            Server::start(&["--user", "u", "--password", "p", "--auth-scheme", scheme, "--udp-port-base", "31300"]);
        let c = client(
            server.addr,
            &[
                "--proto",
                "udp",
                "--direction",
                "both",
                "--duration",
                "1.5",
                "--user",
                "u",
                "--password",
                "p",
                "--speed",
                "5M",
                "--remote-speed",
                "5M",
            ],
        );
        assert_eq!(c.code, 0, "{scheme}: {c:?}");
        assert!(c.rx_bytes > 0 && c.tx_bytes > 0, "{scheme}: {c:?}");
        if scheme == "md5" {
            let (mut r, rep) = Raw::command(server.addr, &udp_cmd(3, 1500, 0));
            assert_eq!(rep, [2, 0, 0, 0]);
            let ch: [u8; 16] = r.read_n(16).try_into().unwrap();
            r.send(&btestd::auth::md5::emit_response(b"u", b"p", &ch));
            assert_eq!(r.read_n(4), [1, 0, 0, 0]);
            let port = r.read_n(2);
            assert!(u16::from_be_bytes([port[0], port[1]]) >= 31300);
        }
    }
}

/// Mbit in each whole second of a client's per-second rows.
fn per_second_mbit(bytes: &[u64]) -> Vec<f64> {
    bytes.iter().map(|&b| b as f64 * 8.0 / 1e6).collect()
}

#[test]
fn an_unlimited_udp_test_starts_low_and_ramps_up_on_reports() {
    let server = Server::start(&[]);
    // The server sends: its first second is a ramp from 10 Mbit/s, not a flood.
    let c = client(server.addr, &["--proto", "udp", "--direction", "receive", "--duration", "4"]);
    assert_eq!(c.code, 0, "{c:?}");
    let rx = per_second_mbit(&c.interval_rx);
    assert!(rx.len() >= 3, "{c:?}");
    assert!(rx[0] > 20.0 && rx[0] < 60.0, "first second {:.1} Mbit: {c:?}", rx[0]);
    assert!(rx[2] > 2.0 * rx[0], "grows while the reports keep up: {rx:?}");
    let end = server.session_end(1, LOG_WAIT);
    let tx = num(&end, "tx_bytes");
    assert!(tx as f64 <= c.rx_bytes as f64 * 1.5, "sent {tx}, received {}: nothing flooded", c.rx_bytes);
    // The client sends: the same ramp.
    let c = client(server.addr, &["--proto", "udp", "--direction", "send", "--duration", "3"]);
    assert_eq!(c.code, 0, "{c:?}");
    let tx = per_second_mbit(&c.interval_tx);
    assert!(tx[0] > 20.0 && tx[0] < 60.0, "client's first second {:.1} Mbit: {c:?}", tx[0]);
    assert!(tx[2] > 2.0 * tx[0], "{tx:?}");
    let end = server.session_end(2, LOG_WAIT);
    assert!(num(&end, "rx_bytes") as f64 >= c.tx_bytes as f64 * 0.9, "{end:?} {c:?}");
}

#[test]
fn a_udp_receiver_that_never_reports_is_sent_little() {
    let server = Server::start(&["--idle-timeout", "5", "--udp-port-base", "31400", "--udp-port-count", "4"]);
    let t0 = Instant::now();
    let (r, udp) = raw_udp(&server, &udp_cmd(2, 1500, 0));
    let peer = r.s.local_addr().unwrap();
    // Receive at the protocol's port, never send a datagram or a status.
    let sock = UdpSocket::bind(SocketAddr::new(udp.ip(), udp.port() + 256)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = vec![0u8; 2048];
    let mut bits = [0u64; 9];
    while t0.elapsed() < Duration::from_millis(4500) {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let half_second = (t0.elapsed().as_millis() / 500) as usize;
            bits[half_second.min(8)] += (n as u64 + 28) * 8;
        }
    }
    let mbps = |from: usize, to: usize| bits[from..to].iter().sum::<u64>() as f64 / 1e6 / ((to - from) as f64 / 2.0);
    // A ramp in the first second, then, with no report, the start rate.
    assert!(mbps(0, 2) < 60.0, "first second {:.1} Mbit/s: {bits:?}", mbps(0, 2));
    let later = mbps(4, 8);
    assert!(later > 5.0 && later < 12.0, "seconds 2-4 at {later:.1} Mbit/s: {bits:?}");
    let end = server.session_end_of(peer, LOG_WAIT);
    assert_eq!(end["reason"], "idle-timeout");
    let sent = num(&end, "tx_bytes") as f64 * 8.0 / 1e6;
    // About 54 Mbit in the first second, 80 until the report is overdue, then 10 Mbit/s.
    assert!(sent < 200.0, "{sent:.0} Mbit sent to a receiver that never reported: {end:?}");
    drop(r);
}

//! Operator limits and abuse protection, through a real server.

mod common;

use common::*;
use std::time::{Duration, Instant};

const LOG_WAIT: Duration = Duration::from_secs(10);

/// Connects and reports whether the server greeted us (HELLO) or hung up.
fn greeted(r: &mut Raw) -> bool {
    let (data, _) = r.read_to_close(Duration::from_millis(500));
    data.starts_with(&[1, 0, 0, 0])
}

#[test]
fn denied_and_not_allowed_networks_get_no_hello() {
    let server = Server::start(&["--deny", "127.0.0.2/32"]);
    let mut r = Raw::connect_from("127.0.0.2".parse().unwrap(), server.addr);
    assert!(!greeted(&mut r));
    server.wait_log("127.0.0.2", LOG_WAIT);
    assert!(server.log().iter().any(|l| l.contains("refused: address is in a --deny network")));
    let mut ok = Raw::connect(server.addr);
    assert_eq!(ok.read_n(4), [1, 0, 0, 0]);

    let server = Server::start(&["--allow", "127.0.0.1"]);
    let mut r = Raw::connect_from("127.0.0.2".parse().unwrap(), server.addr);
    assert!(!greeted(&mut r));
    server.wait_log("address is in no --allow network", LOG_WAIT);
    let mut ok = Raw::connect_from("127.0.0.1".parse().unwrap(), server.addr);
    assert_eq!(ok.read_n(4), [1, 0, 0, 0]);
}

/// One MD5 login attempt with a wrong password; returns how long the failure took.
fn wrong_login(server: &Server) -> Option<Duration> {
    let mut r = Raw::connect(server.addr);
    let (hello, closed) = {
        let mut b = [0u8; 4];
        match std::io::Read::read_exact(&mut r.s, &mut b) {
            Ok(()) => (b, false),
            Err(_) => (b, true),
        }
    };
    if closed || hello != [1, 0, 0, 0] {
        return None;
    }
    r.send(&tcp_cmd(2, true, 0, 0));
    assert_eq!(r.read_n(4), [2, 0, 0, 0]);
    let ch: [u8; 16] = r.read_n(16).try_into().unwrap();
    let t0 = Instant::now();
    r.send(&btestd::auth::md5::emit_response(b"u", b"wrong", &ch));
    assert_eq!(r.read_n(4), [0, 0, 0, 0]);
    Some(t0.elapsed())
}

#[test]
fn repeated_failed_logins_slow_down_then_ban_the_address() {
    let server = Server::start(&[
        "--user",
        "u",
        "--password",
        "p",
        "--auth-scheme",
        "md5",
        "--auth-fail-limit",
        "3",
        "--auth-ban",
        "2",
    ]);
    let first = wrong_login(&server).expect("first attempt is served");
    let second = wrong_login(&server).expect("second attempt is served");
    assert!(first < Duration::from_millis(300), "{first:?}");
    assert!(second >= Duration::from_millis(450), "second failure is delayed: {second:?}");
    wrong_login(&server).expect("third attempt is served");
    server.wait_log("127.0.0.1: banned for 2 s after repeated failed logins", LOG_WAIT);
    assert_eq!(server.log().iter().filter(|l| l.contains("banned for")).count(), 1, "logged once per ban");
    // Banned: no HELLO, even for the right password.
    assert!(wrong_login(&server).is_none());
    let c = client(server.addr, &["--user", "u", "--password", "p", "--duration", "1"]);
    assert_eq!(c.code, 1, "{c:?}");
    std::thread::sleep(Duration::from_millis(2200));
    let c = client(server.addr, &["--user", "u", "--password", "p", "--duration", "1", "--remote-speed", "1M"]);
    assert_eq!(c.code, 0, "ban over: {c:?}");
}

#[test]
fn handshakes_per_address_are_capped() {
    let server = Server::start(&["--max-handshakes-per-ip", "2"]);
    let mut a = Raw::connect(server.addr);
    let mut b = Raw::connect(server.addr);
    assert_eq!(a.read_n(4), [1, 0, 0, 0]);
    assert_eq!(b.read_n(4), [1, 0, 0, 0]);
    let mut c = Raw::connect(server.addr);
    assert!(!greeted(&mut c));
    server.wait_log("2 connections already in handshake (--max-handshakes-per-ip)", LOG_WAIT);
    // Another address is unaffected.
    let mut d = Raw::connect_from("127.0.0.2".parse().unwrap(), server.addr);
    assert_eq!(d.read_n(4), [1, 0, 0, 0]);
}

fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 * 8.0 / secs / 1e6
}

#[test]
fn per_test_rate_cap_applies_both_ways() {
    let server = Server::start(&["--max-rate", "10M"]);
    let c = client(server.addr, &["--direction", "receive", "--duration", "3"]);
    assert!((mbps(c.rx_bytes, c.seconds) - 10.0).abs() < 1.5, "{c:?}");
    // The server reads no faster than the cap, so TCP slows the sender.
    let c = client(server.addr, &["--direction", "send", "--duration", "3"]);
    // What the server read each second (its statuses), and over the whole test.
    assert!((mbps(c.remote_rx_bytes, 3.0) - 10.0).abs() < 1.5, "{c:?}");
    let end = server.session_end(2, LOG_WAIT);
    let got: f64 = end["rx_mbps"].parse().unwrap();
    assert!((got - 10.0).abs() < 1.5, "{got} Mbit/s: {c:?}");
    // A UDP sender is told at most the cap in the server's statuses.
    // After its first second's ramp, our client holds 105 % of what the
    // server reports, and the server reports at most 10 Mbit/s.
    let c = client(server.addr, &["--proto", "udp", "--direction", "send", "--duration", "4"]);
    let last = *c.interval_tx.last().unwrap();
    assert!(mbps(last, 1.0) <= 15.5, "UDP sender should adapt to the cap: {c:?}");
    // Each of the server's statuses (at most one per second) reports at most 1.25 MB.
    assert!(c.remote_rx_bytes <= 1_250_000 * (c.intervals as u64 + 1), "{c:?}");
}

#[test]
fn total_rate_cap_is_shared_by_all_tests() {
    let server = Server::start(&["--max-rate-total", "20M"]);
    let a = client_spawn(server.addr, &["--direction", "receive", "--duration", "3"]);
    let b = client_spawn(server.addr, &["--direction", "receive", "--duration", "3"]);
    let (a, b) = (client_wait(a), client_wait(b));
    let sum = mbps(a.rx_bytes, a.seconds) + mbps(b.rx_bytes, b.seconds);
    assert!((sum - 20.0).abs() < 3.0, "together {sum} Mbit/s: {a:?} {b:?}");
    assert!(mbps(a.rx_bytes, a.seconds) > 4.0 && mbps(b.rx_bytes, b.seconds) > 4.0, "both get a share");
}

#[test]
fn max_duration_ends_long_tests() {
    let server = Server::start(&["--max-duration", "1"]);
    let t0 = Instant::now();
    let c = client(server.addr, &["--duration", "10", "--remote-speed", "5M"]);
    assert_eq!(c.code, 2, "ended by the server: {c:?}");
    assert!(t0.elapsed() < Duration::from_secs(4));
    let end = server.session_end(1, LOG_WAIT);
    assert_eq!(end["reason"], "max-duration");
}

#[test]
fn global_session_limit_refuses_extra_tests() {
    let server = Server::start(&["--max-sessions", "1"]);
    let (_a, rep) = Raw::command(server.addr, &tcp_cmd(1, true, 0, 0));
    assert_eq!(rep, [1, 0, 0, 0]);
    let (_b, rep) = Raw::command(server.addr, &tcp_cmd(1, true, 0, 0));
    assert_eq!(rep, [0, 0, 0, 0]);
    server.wait_log("server is full: 1 tests running (--max-sessions)", LOG_WAIT);
}

/// Idle connections held until the server cannot accept any more.
fn starve(server: &Server) -> Vec<std::net::TcpStream> {
    let held = (0..40)
        .filter_map(|_| std::net::TcpStream::connect_timeout(&server.addr, Duration::from_secs(2)).ok())
        .collect();
    server.wait_log("cannot accept connections", LOG_WAIT);
    held
}

/// Clients of the control socket and the web page that come while the
/// descriptors are used up wait in their listeners' queues and are answered
/// once some are free: a listener reports readiness once, so the server
/// must retry each listener itself.
#[test]
fn control_and_web_clients_queued_while_descriptors_ran_out_are_answered() {
    use std::io::{Read, Write};
    let server = Server::start_with_fd_limit(28, &["--http", "127.0.0.1:0"]);
    let web = server.web_addr();
    server.wait_log("control socket ", LOG_WAIT);
    let held = starve(&server);
    let mut ctl = std::os::unix::net::UnixStream::connect(server.control_path()).unwrap();
    ctl.write_all(b"status json\n").unwrap();
    let mut page = std::net::TcpStream::connect_timeout(&web, Duration::from_secs(2)).unwrap();
    page.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    // Unanswered while the descriptors stay used up.
    ctl.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
    let mut one = [0u8; 1];
    assert!(ctl.read(&mut one).is_err(), "answered with no descriptor free?");
    drop(held);
    ctl.set_read_timeout(Some(LOG_WAIT)).unwrap();
    page.set_read_timeout(Some(LOG_WAIT)).unwrap();
    for (name, stream, want) in [
        ("control", &mut ctl as &mut dyn Read, "\"tests\":["),
        ("web", &mut page as &mut dyn Read, "btestd_build_info"),
    ] {
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply);
        assert!(reply.contains(want), "{name}: {reply:?}");
    }
}

#[test]
fn running_out_of_file_descriptors_refuses_new_connections_only() {
    // Room for the listener, the database and a handful of connections.
    let server = Server::start_with_fd_limit(24, &BUSY);
    let running = client_spawn(server.addr, &["--duration", "4", "--remote-speed", "2M"]);
    server.wait_log("session 1: ", LOG_WAIT);
    let held = starve(&server);
    // The running test is unaffected.
    let c = client_wait(running);
    assert_eq!(c.code, 0, "{c:?}");
    assert!(c.rx_bytes > 800_000, "{c:?}");
    // Once descriptors are free again, new tests are served (retried each second).
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let c = client(server.addr, &["--duration", "1", "--remote-speed", "1M"]);
        if c.code == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "server did not recover: {c:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    // The episode ends after a second without a refused accept.
    server.wait_log("accepting connections again, after", LOG_WAIT);
    let log = server.log();
    let warnings = log.iter().filter(|l| l.contains("cannot accept connections")).count();
    assert_eq!(warnings, 1, "one warning per episode, not one per refused attempt: {log:?}");
}

#[test]
fn memory_budget_refuses_new_tests_with_a_reason() {
    // Any real server holds more than 1 kB of its own memory.
    let server = Server::start(&["--max-memory", "1k"]);
    let (_c, rep) = Raw::command(server.addr, &tcp_cmd(1, true, 0, 0));
    assert_eq!(rep, [0, 0, 0, 0], "refused after the HELLO, as other limits are");
    server.wait_log("more than --max-memory 1.0 kB; running tests go on", LOG_WAIT);

    // 0 turns the budget off; the default is far above what a test needs.
    for args in [&["--max-memory", "0"][..], &[]] {
        let server = Server::start(args);
        let c = client(server.addr, &["--duration", "1", "--remote-speed", "1M"]);
        assert_eq!(c.code, 0, "{args:?}: {c:?}");
        assert!(c.rx_bytes > 100_000, "{args:?}: {c:?}");
    }
}

/// The kernel's send and receive buffer sizes (`tb`, `rb` of `ss -m`) of
/// the server's established TCP connections on `port`.
fn server_socket_buffers(port: u16) -> Vec<(u64, u64)> {
    let out = std::process::Command::new("ss")
        .args(["-tmnH", "state", "established", &format!("sport = :{port}")])
        .output()
        .expect("ss (iproute2) lists sockets");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |mem: &str, key: &str| -> u64 {
        mem.split(',').find_map(|f| f.strip_prefix(key)).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    text.split("skmem:(")
        .skip(1)
        .map(|m| m.split(')').next().unwrap_or(""))
        .map(|m| (field(m, "tb"), field(m, "rb")))
        .collect()
}

#[test]
fn data_sockets_share_the_socket_memory_budget() {
    let server = Server::start(&["--max-socket-memory", "4MiB"]);
    // The kernel doubles each size it is given. 16 connections the server
    // sends on: (4 MiB / 2 - 16 receive buffers of 64 KiB) / 16 = 64 KiB.
    let many = client_spawn(server.addr, &["--connections", "16", "--duration", "2", "--remote-speed", "10M"]);
    server.wait_log("session 1: ", LOG_WAIT);
    std::thread::sleep(Duration::from_millis(800));
    let bufs = server_socket_buffers(server.addr.port());
    assert_eq!(bufs.len(), 16, "{bufs:?}");
    assert!(bufs.iter().all(|&b| b == (2 << 16, 2 << 16)), "64 KiB each, doubled by the kernel: {bufs:?}");
    assert_eq!(client_wait(many).code, 0);
    server.wait_log("session 1 ended", LOG_WAIT);
    // One connection alone: its send buffer gets what the budget allows
    // below the autotuning ceiling (1 MiB), its receive buffer carries only
    // the client's statuses and keeps the floor.
    let one = client_spawn(server.addr, &["--duration", "3", "--remote-speed", "10M"]);
    server.wait_log("session 2: ", LOG_WAIT);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(server_socket_buffers(server.addr.port()), vec![(2 << 20, 2 << 16)]);
    // 4 connections the server receives on join: (4 MiB / 2 - 5 idle
    // buffers of 64 KiB) / 5 = 345 KiB -> 256 KiB. The running socket is
    // lowered on its sending side only; the new ones get it on their
    // receiving side.
    let joining =
        client_spawn(server.addr, &["--direction", "send", "--connections", "4", "--duration", "1", "--speed", "10M"]);
    server.wait_log("session 3: ", LOG_WAIT);
    std::thread::sleep(Duration::from_millis(500));
    let mut bufs = server_socket_buffers(server.addr.port());
    bufs.sort();
    assert_eq!(bufs, [vec![(2 << 16, 2 << 18); 4], vec![(2 << 18, 2 << 16)]].concat(), "{bufs:?}");
    assert_eq!(client_wait(joining).code, 0);
    assert_eq!(client_wait(one).code, 0);
    server.wait_log("session 2 ended", LOG_WAIT);
    server.wait_log("session 3 ended", LOG_WAIT);
    // Both ways, payload fills both buffers: 4 MiB / 2 / 8 = 256 KiB each.
    let both = client_spawn(
        server.addr,
        &["--direction", "both", "--connections", "4", "--duration", "2", "--remote-speed", "10M", "--speed", "10M"],
    );
    server.wait_log("session 4: ", LOG_WAIT);
    std::thread::sleep(Duration::from_millis(800));
    let bufs = server_socket_buffers(server.addr.port());
    assert_eq!(bufs, vec![(2 << 18, 2 << 18); 4], "{bufs:?}");
    assert_eq!(client_wait(both).code, 0);
}

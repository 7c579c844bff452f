//! TCP tests against a real `btestd serve`, driven by `btestd client` and by
//! raw sockets speaking the exact bytes of the protocol.

mod common;

use common::*;
use std::time::{Duration, Instant};

const LOG_WAIT: Duration = Duration::from_secs(10);

/// Runs every direction x {1, 4} connections x {zeros, random} against one
/// server and checks the byte counts both sides report.
fn matrix(server: &Server, auth: &[&str]) {
    let mut id = 0;
    for dir in ["send", "receive", "both"] {
        for conns in ["1", "4"] {
            for random in [false, true] {
                id += 1;
                let mut args = vec!["--direction", dir, "--connections", conns, "--duration", "1.5"];
                args.extend_from_slice(&["--speed", "40M", "--remote-speed", "40M"]);
                if random {
                    args.push("--random");
                }
                args.extend_from_slice(auth);
                let c = client(server.addr, &args);
                let what = format!("{dir} conns={conns} random={random}: {c:?}");
                assert_eq!(c.code, 0, "{what}");
                assert!(c.intervals >= 1, "{what}");
                let end = server.session_end(id, LOG_WAIT);
                assert_eq!(end["conns"], conns, "{what}");
                assert_eq!(end["reason"], "peer-closed", "{what}");
                let (srv_rx, srv_tx) = (num(&end, "rx_bytes"), num(&end, "tx_bytes"));
                // 40 Mbit/s for 1.5 s is 7.5 MB; allow the pacer's burst and timing slack.
                let expect = 7_500_000u64;
                if dir != "receive" {
                    // Everything the client wrote reached the server.
                    assert_eq!(srv_rx, c.tx_bytes, "{what}");
                    assert!(c.tx_bytes.abs_diff(expect) < expect / 5, "{what}");
                    // The server's per-second statuses reported what it received.
                    assert!(c.remote_rx_bytes > 0 && c.remote_rx_bytes <= srv_rx, "{what}");
                }
                if dir != "send" {
                    assert!(c.rx_bytes <= srv_tx && srv_tx - c.rx_bytes < 8_000_000, "{what} srv_tx={srv_tx}");
                    assert!(c.rx_bytes.abs_diff(expect) < expect / 5, "{what}");
                } else {
                    // Only status messages flow back: 12 bytes per connection per second.
                    assert!(c.rx_bytes > 0 && c.rx_bytes <= 12 * 4 * 2, "{what}");
                }
            }
        }
    }
}

#[test]
fn every_direction_and_connection_count_without_auth() {
    let server = Server::start(&[]);
    matrix(&server, &[]);
}

#[test]
fn every_direction_and_connection_count_with_md5() {
    let server = Server::start(&["--user", "tester", "--password", "s3cret", "--auth-scheme", "md5"]);
    matrix(&server, &["--user", "tester", "--password", "s3cret"]);
    let log = server.log().join("\n");
    assert!(log.contains("user=tester"), "{log}");
}

#[test]
fn md5_wrong_password_gets_failure_reply_and_close() {
    let server = Server::start(&["--user", "tester", "--password", "s3cret", "--auth-scheme", "md5"]);
    let c = client(server.addr, &["--user", "tester", "--password", "nope", "--duration", "1"]);
    assert_eq!(c.code, 1, "{c:?}");
    assert!(c.stderr.contains("refused"), "{c:?}");
    server.wait_log("authentication failed for user 'tester': wrong password", LOG_WAIT);

    // Byte-exact: challenge, a wrong response, then 00 00 00 00 and EOF.
    let (mut r, rep) = Raw::command(server.addr, &tcp_cmd(2, true, 0, 0));
    assert_eq!(rep, [2, 0, 0, 0]);
    let challenge = r.read_n(16);
    assert_ne!(challenge, vec![0u8; 16]);
    let mut resp = [0u8; 48];
    resp[16..22].copy_from_slice(b"tester");
    r.send(&resp);
    let (rest, closed) = r.read_to_close(Duration::from_secs(5));
    assert_eq!(rest, vec![0, 0, 0, 0]);
    assert!(closed);

    // No credentials at all: the client says so.
    let c = client(server.addr, &["--duration", "1"]);
    assert_eq!(c.code, 1);
    assert!(c.stderr.contains("requires authentication (md5)"), "{c:?}");
}

#[test]
fn md5_right_password_byte_exact() {
    let server = Server::start(&["--user", "u", "--password", "p", "--auth-scheme", "md5"]);
    let (mut r, rep) = Raw::command(server.addr, &tcp_cmd(2, true, 0, 0));
    assert_eq!(rep, [2, 0, 0, 0]);
    let challenge: [u8; 16] = r.read_n(16).try_into().unwrap();
    r.send(&btestd::auth::md5::emit_response(b"u", b"p", &challenge));
    assert_eq!(r.read_n(4), [1, 0, 0, 0]);
    // Zero payload follows.
    let data = r.read_n(100_000);
    assert!(data.iter().all(|&b| b == 0));
}

#[test]
fn unauthenticated_receive_is_byte_exact() {
    let server = Server::start(&[]);
    // Captured RouterOS command: TCP receive, zeros.
    let cmd = [1, 2, 1, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let (mut r, rep) = Raw::command(server.addr, &cmd);
    assert_eq!(rep, [1, 0, 0, 0]);
    // The server only transmits: pure zeros, no status message, for well
    // over two status intervals (tests/status.rs checks where statuses go
    // when the server also receives).
    let until = Instant::now() + Duration::from_millis(2500);
    let mut total = 0usize;
    while Instant::now() < until {
        let chunk = r.read_n(65536);
        assert!(chunk.iter().all(|&b| b == 0), "non-zero byte after {total} bytes");
        total += chunk.len();
    }
    assert!(total > 1 << 20, "only {total} bytes in 2.5 s");
}

#[test]
fn random_payload_is_random_and_blocks_never_start_with_the_tag() {
    let server = Server::start(&[]);
    let (mut r, rep) = Raw::command(server.addr, &tcp_cmd(2, false, 0, 0));
    assert_eq!(rep, [1, 0, 0, 0]);
    let data = r.read_n(32768 * 8);
    let zeros = data.iter().filter(|&&b| b == 0).count();
    assert!(zeros < data.len() / 100, "payload is not random: {zeros} zero bytes");
    for block in data.chunks(32768) {
        assert_ne!(block[0], 0x07);
    }
}

#[test]
fn multi_connection_token_join_byte_exact() {
    let server = Server::start(&[]);
    let (mut p, rep) = Raw::command(server.addr, &tcp_cmd(1, true, 3, 0));
    assert_eq!(rep[0], 1);
    assert_eq!(rep[3], 0);
    assert!(rep[1] >= 2, "token high byte must not look like a protocol byte: {rep:02x?}");
    assert_ne!(rep[2], 0);
    // Secondary per RouterOS: HI LO 02 00 ...
    let mut join = [0u8; 16];
    join[..2].copy_from_slice(&rep[1..3]);
    join[2] = 2;
    let (mut s1, rep1) = Raw::command(server.addr, &join);
    assert_eq!(rep1, rep);
    // The third connection joins by the token too (a repeated command would
    // start a test of its own: tests/multi.rs).
    let (mut s2, rep2) = Raw::command(server.addr, &join);
    assert_eq!(rep2, rep);
    // Send data on all three, then close; the server counted all of it.
    let chunk = vec![0u8; 10_000];
    for r in [&mut p, &mut s1, &mut s2] {
        r.send(&chunk);
    }
    let peer = p.s.local_addr().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop((p, s1, s2));
    let end = server.session_end_of(peer, LOG_WAIT);
    assert_eq!(end["conns"], "3");
    assert_eq!(num(&end, "rx_bytes"), 30_000);

    // The token is gone after the session started: a late join is refused.
    let (mut late, _) = {
        let mut r = Raw::connect(server.addr);
        assert_eq!(r.read_n(4), [1, 0, 0, 0]);
        r.send(&join);
        (r, ())
    };
    let (rest, closed) = late.read_to_close(Duration::from_secs(5));
    assert!(rest.is_empty() && closed, "late join got {rest:02x?}");
}

#[test]
fn secondary_connection_from_other_ip_is_refused() {
    let server = Server::start(&[]);
    let (p, rep) = Raw::command(server.addr, &tcp_cmd(2, true, 2, 0));
    let mut join = [0u8; 16];
    join[..2].copy_from_slice(&rep[1..3]);
    join[2] = 2;
    let mut r = Raw::connect_from("127.0.0.2".parse().unwrap(), server.addr);
    assert_eq!(r.read_n(4), [1, 0, 0, 0]);
    r.send(&join);
    let (rest, closed) = r.read_to_close(Duration::from_secs(5));
    assert!(rest.is_empty() && closed, "join from another IP got {rest:02x?}");
    server.wait_log("invalid command", LOG_WAIT);
    drop(p);
}

#[test]
fn incomplete_multi_connection_test_starts_after_join_timeout() {
    let server = Server::start(&["--join-timeout", "1"]);
    let (mut p, rep) = Raw::command(server.addr, &tcp_cmd(2, true, 4, 0));
    let mut join = [0u8; 16];
    join[..2].copy_from_slice(&rep[1..3]);
    join[2] = 2;
    let (mut s1, rep1) = Raw::command(server.addr, &join);
    assert_eq!(rep1, rep);
    let t0 = Instant::now();
    // Data starts only after the join timeout, on both joined connections.
    p.read_n(1);
    s1.read_n(1);
    assert!(t0.elapsed() >= Duration::from_millis(700), "started before the join timeout");
    server.wait_log("starting with 2 of 4 connections", LOG_WAIT);
}

#[test]
fn rate_limited_tests_are_within_ten_percent() {
    let server = Server::start(&[]);
    let c = client(server.addr, &["--direction", "receive", "--remote-speed", "20M", "--duration", "4"]);
    assert_eq!(c.code, 0, "{c:?}");
    let rate = c.rx_bytes as f64 * 8.0 / c.seconds;
    assert!((rate - 20e6).abs() < 2e6, "server sent at {rate} bit/s, asked 20M: {c:?}");

    let c = client(server.addr, &["--direction", "send", "--speed", "30M", "--duration", "4"]);
    assert_eq!(c.code, 0, "{c:?}");
    let rate = c.tx_bytes as f64 * 8.0 / c.seconds;
    assert!((rate - 30e6).abs() < 3e6, "client sent at {rate} bit/s, asked 30M: {c:?}");
    let end = server.session_end(2, LOG_WAIT);
    assert_eq!(num(&end, "rx_bytes"), c.tx_bytes);
}

#[test]
fn split_status_message_from_peer_is_detected() {
    let server = Server::start(&[]);
    let (mut r, rep) = Raw::command(server.addr, &tcp_cmd(1, true, 0, 0));
    assert_eq!(rep, [1, 0, 0, 0]);
    let status = [0x07, 0x80 | 42, 0, 0, 1, 0, 0, 0, 0x10, 0, 0, 0];
    r.send(&[0u8; 5000]);
    r.send(&status[..5]);
    std::thread::sleep(Duration::from_millis(100));
    r.send(&status[5..]);
    r.send(&[0u8; 5000]);
    std::thread::sleep(Duration::from_millis(100));
    let peer = r.s.local_addr().unwrap();
    drop(r);
    let end = server.session_end_of(peer, LOG_WAIT);
    assert_eq!(end["peer_statuses"], "1");
    assert_eq!(end["peer_cpu"], "42");
    assert_eq!(num(&end, "rx_bytes"), 10_012);
}

#[test]
fn malformed_command_closes_only_that_connection() {
    let server = Server::start(&[]);
    let mut bad = [0u8; 16];
    bad[0] = 5;
    bad[1] = 1;
    let mut r = Raw::connect(server.addr);
    assert_eq!(r.read_n(4), [1, 0, 0, 0]);
    r.send(&bad);
    let (rest, closed) = r.read_to_close(Duration::from_secs(5));
    assert!(rest.is_empty() && closed);
    server.wait_log("invalid command: protocol byte 0x05", LOG_WAIT);

    let mut bad_dir = tcp_cmd(0, true, 0, 0);
    bad_dir[1] = 9;
    let mut r = Raw::connect(server.addr);
    r.read_n(4);
    r.send(&bad_dir);
    assert!(r.read_to_close(Duration::from_secs(5)).1);
    server.wait_log("direction byte 0x09", LOG_WAIT);

    // Truncated command, then the peer goes away.
    let mut r = Raw::connect(server.addr);
    r.read_n(4);
    r.send(&[1, 2, 1]);
    drop(r);
    server.wait_log("closed the connection during the handshake (command)", LOG_WAIT);

    // The server still serves real tests.
    let c = client(server.addr, &["--duration", "1", "--remote-speed", "10M"]);
    assert_eq!(c.code, 0, "{c:?}");
    assert!(c.rx_bytes > 0);
}

#[test]
fn silent_peer_hits_handshake_deadline() {
    let server = Server::start(&["--handshake-timeout", "1"]);
    let mut r = Raw::connect(server.addr);
    assert_eq!(r.read_n(4), [1, 0, 0, 0]);
    let t0 = Instant::now();
    let (rest, closed) = r.read_to_close(Duration::from_secs(5));
    assert!(rest.is_empty() && closed);
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(3), "{waited:?}");
    server.wait_log("handshake not completed within 1 s (waiting for command)", LOG_WAIT);
}

#[test]
fn peer_disappearing_mid_test_ends_only_its_session() {
    let server = Server::start(&[]);
    let other = client_spawn(server.addr, &["--duration", "3", "--remote-speed", "10M"]);
    let (mut r, _) = Raw::command(server.addr, &tcp_cmd(3, true, 0, 0));
    r.read_n(50_000);
    let peer = r.s.local_addr().unwrap();
    drop(r);
    let end = server.session_end_of(peer, LOG_WAIT);
    assert_eq!(end["reason"], "peer-closed");
    let c = client_wait(other);
    assert_eq!(c.code, 0, "{c:?}");
    assert!(c.rx_bytes > 3_000_000, "{c:?}");
}

#[test]
fn idle_peer_is_timed_out() {
    let server = Server::start(&["--idle-timeout", "1"]);
    // Server receives; the client sends nothing after the command.
    let (mut r, rep) = Raw::command(server.addr, &tcp_cmd(1, true, 0, 0));
    assert_eq!(rep, [1, 0, 0, 0]);
    let peer = r.s.local_addr().unwrap();
    let end = server.session_end_of(peer, LOG_WAIT);
    assert_eq!(end["reason"], "idle-timeout");
    assert!(r.read_to_close(Duration::from_secs(5)).1);
}

#[test]
fn two_hundred_concurrent_low_rate_sessions_complete() {
    let server = Server::start(&BUSY);
    let children: Vec<_> = (0..200)
        .map(|i| {
            let dir = ["receive", "send", "both"][i % 3];
            client_spawn(server.addr, &["--direction", dir, "--duration", "3", "--speed", "1M", "--remote-speed", "1M"])
        })
        .collect();
    let runs: Vec<ClientRun> = children.into_iter().map(client_wait).collect();
    for (i, c) in runs.iter().enumerate() {
        assert_eq!(c.code, 0, "client {i}: {c:?}");
        // 1 Mbit/s for 3 s is 375 kB; each side moved at least 60% of it.
        assert!(c.rx_bytes.max(c.tx_bytes) > 225_000, "client {i}: {c:?}");
    }
    let ended = server.wait_log_count(" ended: ", 200, Duration::from_secs(20));
    assert!(ended.iter().all(|l| l.contains("reason=peer-closed")), "{ended:?}");
}

#[test]
fn sigterm_and_sigint_stop_cleanly() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut server = Server::start(&[]);
        let running = client_spawn(server.addr, &["--duration", "20", "--remote-speed", "10M"]);
        server.wait_log("session 1: ", LOG_WAIT);
        std::thread::sleep(Duration::from_millis(300));
        server.signal(sig);
        let c = client_wait(running);
        assert_eq!(c.code, 2, "client should see the server end the test: {c:?}");
        let (status, log) = server.stop();
        assert!(status.success(), "{status:?}");
        let log = log.join("\n");
        assert!(log.contains("reason=server-shutdown"), "{log}");
        assert!(log.contains("server stopped"), "{log}");
    }
}

#[test]
fn too_many_connections_is_refused_with_failure_reply() {
    let server = Server::start(&["--max-connections", "4"]);
    let (mut r, rep) = Raw::command(server.addr, &tcp_cmd(2, true, 5, 0));
    assert_eq!(rep, [0, 0, 0, 0]);
    assert!(r.read_to_close(Duration::from_secs(5)).1);
    server.wait_log("asks for 5 TCP connections, the limit is 4", LOG_WAIT);
}

#[test]
fn per_ip_session_limit_refuses_extra_tests() {
    let server = Server::start(&["--max-sessions-per-ip", "1"]);
    let (_first, rep) = Raw::command(server.addr, &tcp_cmd(1, true, 0, 0));
    assert_eq!(rep, [1, 0, 0, 0]);
    let (_second, rep) = Raw::command(server.addr, &tcp_cmd(1, true, 0, 0));
    assert_eq!(rep, [0, 0, 0, 0]);
    server.wait_log("tests already running from this address", LOG_WAIT);
}

#[test]
fn default_listen_is_port_2000_on_ipv4_and_ipv6() {
    let mut server = std::process::Command::new(BIN).arg("serve").stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut r = None;
    for _ in 0..50 {
        if let Ok(s) = std::net::TcpStream::connect("127.0.0.1:2000") {
            r = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: signals only the child we started.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let status = wait_bounded(&mut server, Duration::from_secs(10));
    let mut err = String::new();
    std::io::Read::read_to_string(server.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(r.is_some(), "nothing listening on 127.0.0.1:2000: {err}");
    assert!(err.contains("listening on 0.0.0.0:2000"), "{err}");
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        assert!(err.contains("listening on [::]:2000"), "{err}");
    }
    assert!(status.success());
}

#[test]
fn every_direction_and_connection_count_with_ecsrp5() {
    // EC-SRP5 is the default scheme when credentials are set.
    let server = Server::start(&["--user", "tester", "--password", "s3cret"]);
    matrix(&server, &["--user", "tester", "--password", "s3cret"]);
}

#[test]
fn handshake_state_changes_are_logged_at_debug_level() {
    let server = Server::start(&["-v", "--user", "tester", "--password", "s3cret"]);
    let c = client(server.addr, &["--user", "tester", "--password", "s3cret", "--duration", "1"]);
    assert_eq!(c.code, 0, "{c:?}");
    server.wait_log("handshake command -> ecsrp5-hello", LOG_WAIT);
    server.wait_log("handshake ecsrp5-hello -> ecsrp5-confirm", LOG_WAIT);
    server.wait_log("handshake ecsrp5-confirm -> done", LOG_WAIT);
}

#[test]
fn ecsrp5_wrong_password_and_unknown_user_fail_at_confirmation() {
    let server = Server::start(&["--user", "tester", "--password", "s3cret"]);
    let c = client(server.addr, &["--user", "tester", "--password", "wrong", "--duration", "1"]);
    assert_eq!(c.code, 1, "{c:?}");
    assert!(c.stderr.contains("refused"), "{c:?}");
    server.wait_log("authentication failed for user 'tester': wrong password", LOG_WAIT);

    // Unknown user: the exchange looks normal until the confirmation.
    let (mut r, rep) = Raw::command(server.addr, &tcp_cmd(2, true, 0, 0));
    assert_eq!(rep, [3, 0, 0, 0]);
    let (_, msg1) = btestd::auth::ecsrp5::ClientHandshake::start(b"mallory", b"x", &[7; 32]).unwrap();
    let mut frame = vec![msg1.len() as u8];
    frame.extend_from_slice(&msg1);
    r.send(&frame);
    let msg2 = r.read_n(50);
    assert_eq!(msg2[0], 0x31);
    let mut confirm = vec![0x20u8];
    confirm.extend_from_slice(&[0xab; 32]);
    r.send(&confirm);
    let (rest, closed) = r.read_to_close(Duration::from_secs(5));
    assert_eq!(rest, vec![0, 0, 0, 0]);
    assert!(closed);
    server.wait_log("authentication failed for user 'mallory': unknown user", LOG_WAIT);

    // A client point that is not on the curve is a failed login too.
    let (mut r, _) = Raw::command(server.addr, &tcp_cmd(2, true, 0, 0));
    let mut x = [0u8; 32];
    x[31] = 2;
    r.send(&ecsrp5_hello(b"tester", &x));
    assert_eq!(r.read_to_close(Duration::from_secs(5)), (vec![0, 0, 0, 0], true));
    server.wait_log("client key refused: EC-SRP5 message 1 (client hello): public key is not a curve point", LOG_WAIT);
}

/// A one-connection stand-in for an EC-SRP5 server that answers message 1
/// with `server_u` as its key; returns whether the client then sent
/// anything (a confirmation) before closing.
fn forged_ecsrp5_server(server_u: [u8; 32]) -> (std::net::SocketAddr, std::thread::JoinHandle<bool>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let serve = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&[1, 0, 0, 0]).unwrap();
        let mut cmd = [0u8; 16];
        s.read_exact(&mut cmd).unwrap();
        s.write_all(&[3, 0, 0, 0]).unwrap();
        let mut len = [0u8; 1];
        s.read_exact(&mut len).unwrap();
        let mut msg1 = vec![0u8; usize::from(len[0])];
        s.read_exact(&mut msg1).unwrap();
        let mut msg2 = vec![0x31];
        msg2.extend_from_slice(&server_u);
        msg2.push(0);
        msg2.extend_from_slice(&[0x5a; 16]);
        s.write_all(&msg2).unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        !rest.is_empty()
    });
    (addr, serve)
}

#[test]
fn ecsrp5_client_refuses_forged_server_keys() {
    let mut p = [0xff; 32];
    p[0] = 0x7f;
    p[31] = 0xed;
    for (u, why) in [([0u8; 32], "public key is a point of small order"), (p, "public key is not reduced")] {
        let (addr, serve) = forged_ecsrp5_server(u);
        let c = client(addr, &["--user", "tester", "--password", "s3cret", "--duration", "1"]);
        assert_eq!(c.code, 1, "{c:?}");
        assert!(c.stderr.contains("EC-SRP5 message 2 (server hello)") && c.stderr.contains(why), "{c:?}");
        assert!(!serve.join().unwrap(), "the client answered a forged server key");
    }
}

/// EC-SRP5 message 1, framed: `user`, NUL, the key's u and parity 0.
fn ecsrp5_hello(user: &[u8], u: &[u8; 32]) -> Vec<u8> {
    let mut hello = vec![(user.len() + 34) as u8];
    hello.extend_from_slice(user);
    hello.push(0);
    hello.extend_from_slice(u);
    hello.push(0);
    hello
}

#[test]
fn ecsrp5_forged_client_keys_get_the_failure_reply_and_count_as_failed_logins() {
    let server =
        Server::start(&["--user", "tester", "--password", "s3cret", "--auth-fail-limit", "3", "--auth-ban", "30"]);
    let mut one = [0u8; 32];
    one[31] = 1;
    let mut p = [0xff; 32];
    p[0] = 0x7f;
    p[31] = 0xed;
    // u = 0 (order 2), u = p (not reduced), u = 1 (order 4); an unknown user
    // gets the same answer as an existing one.
    for (user, u) in [(&b"tester"[..], [0u8; 32]), (b"mallory", p), (b"tester", one)] {
        let (mut r, rep) = Raw::command(server.addr, &tcp_cmd(2, true, 0, 0));
        assert_eq!(rep, [3, 0, 0, 0]);
        r.send(&ecsrp5_hello(user, &u));
        assert_eq!(r.read_to_close(Duration::from_secs(5)), (vec![0, 0, 0, 0], true), "{u:02x?}");
    }
    server.wait_log(
        "'tester': client key refused: EC-SRP5 message 1 (client hello): public key is a point of small order",
        LOG_WAIT,
    );
    server.wait_log(
        "'mallory': client key refused: EC-SRP5 message 1 (client hello): public key is not reduced",
        LOG_WAIT,
    );
    // Three failed logins reach --auth-fail-limit: the address is banned.
    server.wait_log("127.0.0.1: banned for 30 s after repeated failed logins", LOG_WAIT);
    let mut r = Raw::connect(server.addr);
    assert_eq!(r.read_to_close(Duration::from_secs(5)), (vec![], true), "banned: no HELLO");
}

//! Multi-connection TCP tests as RouterOS runs them: extra connections
//! opened all at once, several identical tests from one (NAT) address,
//! servers that answer nothing on extra connections, and every connection
//! count a command can carry.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const LOG_WAIT: Duration = Duration::from_secs(10);

/// Reads HELLO; false when the server closed the connection instead.
fn greeted(r: &mut Raw) -> bool {
    r.s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 4];
    match r.s.read_exact(&mut b) {
        Ok(()) => {
            assert_eq!(b, [1, 0, 0, 0], "HELLO");
            true
        }
        Err(e) if matches!(e.kind(), std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset) => false,
        Err(e) => panic!("neither HELLO nor a close: {e}"),
    }
}

/// The join request for the test answered with `ok` (`01 HI LO 00`).
fn join(ok: [u8; 4]) -> [u8; 16] {
    let mut j = [0u8; 16];
    j[..2].copy_from_slice(&ok[1..3]);
    j[2] = 2;
    j
}

fn from(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// The session id in a `session N ended:` line.
fn session_id(line: &str) -> u64 {
    let rest = line.split("session ").nth(1).expect("a session line");
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn twenty_connections_opened_at_once_all_join_with_default_flags() {
    let server = Server::start(&[]);
    let (mut p, ok) = Raw::command(server.addr, &tcp_cmd(2, true, 20, 0));
    assert!(ok[0] == 1 && ok[1] >= 2 && ok[3] == 0, "{ok:02x?}");
    let t0 = Instant::now();
    // All 19 are in their handshake together before any sends its join.
    let mut joins: Vec<Raw> = (0..19).map(|_| Raw::connect(server.addr)).collect();
    let greeted_count = joins.iter_mut().map(greeted).filter(|&g| g).count();
    assert_eq!(greeted_count, 19, "joins closed before HELLO; log:\n{}", server.log().join("\n"));
    for r in &mut joins {
        r.send(&join(ok));
    }
    for r in &mut joins {
        assert_eq!(r.read_n(4), ok);
    }
    // The test starts once all have joined, not at the 5 s join timeout.
    p.read_n(1);
    assert!(t0.elapsed() < Duration::from_secs(3), "data began after {:?}", t0.elapsed());
    let peer = p.s.local_addr().unwrap();
    drop((p, joins));
    assert_eq!(server.session_end_of(peer, LOG_WAIT)["conns"], "20");
    let log = server.log();
    assert!(!log.iter().any(|l| l.contains("refused") || l.contains("join timeout")), "{}", log.join("\n"));
}

#[test]
fn join_allowance_is_what_joining_tests_miss_and_only_while_they_join() {
    let server = Server::start(&["--max-handshakes-per-ip", "2", "--join-timeout", "2"]);
    let (p, _) = Raw::command(server.addr, &tcp_cmd(2, true, 4, 0));
    // Two regular handshakes and the three connections the test misses.
    let mut held = Vec::new();
    for i in 0..5 {
        let mut r = Raw::connect(server.addr);
        assert!(greeted(&mut r), "connection {i}");
        held.push(r);
    }
    assert!(!greeted(&mut Raw::connect(server.addr)), "one over the allowance");
    server.wait_log("refused: 2 connections already in handshake (--max-handshakes-per-ip)", LOG_WAIT);
    // Another address has no share in it.
    let mut other: Vec<Raw> = (0..2).map(|_| Raw::connect_from(from(2), server.addr)).collect();
    assert!(other.iter_mut().all(greeted));
    assert!(!greeted(&mut Raw::connect_from(from(2), server.addr)));
    // The join time runs out: the test starts alone and the allowance is gone.
    server.wait_log("starting with 1 of 4 connections", LOG_WAIT);
    drop(held);
    server.wait_log_count("closed the connection during the handshake", 5, LOG_WAIT);
    let mut again: Vec<Raw> = (0..2).map(|_| Raw::connect(server.addr)).collect();
    assert!(again.iter_mut().all(greeted));
    assert!(!greeted(&mut Raw::connect(server.addr)), "an allowance outlived the joining");
    drop((p, other));
}

#[test]
fn joins_pass_a_full_handshake_table_without_filling_it() {
    let server = Server::start(&["--max-handshakes", "2"]);
    let (mut p, ok) = Raw::command(server.addr, &tcp_cmd(2, true, 4, 0));
    let mut others = vec![Raw::connect_from(from(2), server.addr), Raw::connect_from(from(3), server.addr)];
    assert!(others.iter_mut().all(greeted));
    assert!(!greeted(&mut Raw::connect_from(from(4), server.addr)), "the table is full");
    server.wait_log("refused: 2 connections already in handshake (--max-handshakes)", LOG_WAIT);
    // The test's joins still come in...
    let mut joins: Vec<Raw> = (0..3).map(|_| Raw::connect(server.addr)).collect();
    assert!(joins.iter_mut().all(greeted), "log:\n{}", server.log().join("\n"));
    // ...and take no room from other clients.
    drop(others.remove(0));
    server.wait_log("closed the connection during the handshake", LOG_WAIT);
    let mut newcomer = Raw::connect_from(from(4), server.addr);
    assert!(greeted(&mut newcomer), "joins filled the table");
    for r in &mut joins {
        r.send(&join(ok));
        assert_eq!(r.read_n(4), ok);
    }
    p.read_n(1);
    assert!(!greeted(&mut Raw::connect(server.addr)), "the test has all it asked for: no allowance left");
    let peer = p.s.local_addr().unwrap();
    drop((p, joins));
    assert_eq!(server.session_end_of(peer, LOG_WAIT)["conns"], "4");
    drop((others, newcomer));
}

#[test]
fn identical_commands_from_one_address_start_tests_of_their_own() {
    let server = Server::start(&[]);
    let cmd = tcp_cmd(1, true, 3, 0);
    let (mut a, ok_a) = Raw::command(server.addr, &cmd);
    let (mut b, ok_b) = Raw::command(server.addr, &cmd);
    assert!(ok_b[0] == 1 && ok_b[1] >= 2 && ok_b[3] == 0, "{ok_b:02x?}");
    assert_ne!(ok_a, ok_b, "the second control connection was handed the first test's token");
    // Each test takes its own two joins, by its token.
    let mut joins = Vec::new();
    for ok in [ok_a, ok_b] {
        for _ in 0..2 {
            let (r, rep) = Raw::command(server.addr, &join(ok));
            assert_eq!(rep, ok);
            joins.push(r);
        }
    }
    // Test a moves 1000 bytes per connection, test b 2000.
    a.send(&[0; 1000]);
    b.send(&[0; 2000]);
    for (i, r) in joins.iter_mut().enumerate() {
        r.send(&vec![0u8; if i < 2 { 1000 } else { 2000 }]);
    }
    std::thread::sleep(Duration::from_millis(200));
    let (peer_a, peer_b) = (a.s.local_addr().unwrap(), b.s.local_addr().unwrap());
    drop((a, b, joins));
    let line_a = server.wait_log(&format!("ended: peer={peer_a} "), LOG_WAIT);
    let line_b = server.wait_log(&format!("ended: peer={peer_b} "), LOG_WAIT);
    assert_ne!(session_id(&line_a), session_id(&line_b));
    for (line, rx) in [(&line_a, "3000"), (&line_b, "6000")] {
        let end = kv(line);
        assert_eq!((end["conns"].as_str(), end["rx_bytes"].as_str()), ("3", rx), "{line}");
    }
}

#[test]
fn simultaneous_identical_twenty_connection_clients_from_one_address_all_succeed() {
    let server = Server::start(&[]);
    const CLIENTS: usize = 4;
    const ROUNDS: usize = 2;
    let args = ["--connections", "20", "--duration", "1", "--remote-speed", "20M"];
    for round in 0..ROUNDS {
        let kids: Vec<_> = (0..CLIENTS).map(|_| client_spawn(server.addr, &args)).collect();
        for k in kids {
            let c = client_wait(k);
            assert_eq!(c.code, 0, "round {round}: {c:?}\nserver log:\n{}", server.log().join("\n"));
            assert!(c.rx_bytes > 0, "{c:?}");
        }
    }
    let ends = server.wait_log_count(" ended: ", CLIENTS * ROUNDS, LOG_WAIT);
    let mut ids: Vec<u64> = ends.iter().map(|l| session_id(l)).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), CLIENTS * ROUNDS, "{ends:?}");
    for l in &ends {
        let end = kv(l);
        assert_eq!((end["conns"].as_str(), end["reason"].as_str()), ("20", "peer-closed"), "{l}");
    }
    let log = server.log();
    assert!(!log.iter().any(|l| l.contains("refused") || l.contains("join timeout")), "{}", log.join("\n"));
}

/// The OK a fake server answers: token 5a a5.
const FAKE_OK: [u8; 4] = [1, 0x5a, 0xa5, 0];

/// What a fake server does on each extra connection of its test.
#[derive(Clone, Default)]
struct Extra {
    /// Send HELLO on accepting it.
    hello: bool,
    /// Close it after reading its join request.
    refuse: bool,
    /// Bytes sent once every join request has arrived, ahead of `data`.
    ahead: Vec<u8>,
    /// Test data; its first byte goes out alone, 200 ms before the rest.
    data: Vec<u8>,
}

fn accept_within(l: &TcpListener, timeout: Duration) -> TcpStream {
    let deadline = Instant::now() + timeout;
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                return s;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("fake server: no connection: {e}"),
        }
    }
}

/// A one-test btest server on 127.0.0.1 that answers the primary's
/// `conns`-connection command with [`FAKE_OK`], then does what `extra`
/// says on the other connections, sending nothing after HELLO until every
/// join request has arrived. Yields the bytes each connection received
/// after its handshake, once the client has closed them all.
fn fake_server(conns: usize, primary_data: Vec<u8>, extra: Extra) -> (SocketAddr, JoinHandle<Vec<u64>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let mut p = accept_within(&l, Duration::from_secs(10));
        p.write_all(&[1, 0, 0, 0]).unwrap();
        let mut cmd = [0u8; 16];
        p.read_exact(&mut cmd).unwrap();
        assert_eq!((cmd[0], usize::from(cmd[3])), (1, conns), "command {cmd:02x?}");
        p.write_all(&FAKE_OK).unwrap();
        let mut socks = vec![p];
        for _ in 1..conns {
            let mut s = accept_within(&l, Duration::from_secs(10));
            if extra.hello {
                s.write_all(&[1, 0, 0, 0]).unwrap();
            }
            let mut j = [0u8; 16];
            s.read_exact(&mut j).expect("a join request, unanswered until all have come");
            assert_eq!(j, join(FAKE_OK), "join request");
            if !extra.refuse {
                socks.push(s);
            }
        }
        socks[0].write_all(&primary_data).unwrap();
        for s in &mut socks[1..] {
            s.write_all(&extra.ahead).unwrap();
            s.write_all(&extra.data[..extra.data.len().min(1)]).unwrap();
        }
        std::thread::sleep(Duration::from_millis(200));
        for s in &mut socks[1..] {
            s.write_all(&extra.data[extra.data.len().min(1)..]).unwrap();
        }
        let mut buf = vec![0u8; 65536];
        socks
            .iter_mut()
            .map(|s| {
                let mut n = 0u64;
                while let Ok(k @ 1..) = s.read(&mut buf) {
                    n += k as u64;
                }
                n
            })
            .collect()
    });
    (addr, h)
}

#[test]
fn client_joins_all_at_once_and_needs_no_join_reply() {
    let data = vec![0u8; 50_000];
    let extra = Extra { hello: true, data: data.clone(), ..Extra::default() };
    let (addr, fake) = fake_server(20, data, extra);
    let c = client(addr, &["--connections", "20", "--duration", "1"]);
    assert_eq!(c.code, 0, "{c:?}");
    assert_eq!(c.rx_bytes, 20 * 50_000, "{c:?}");
    assert_eq!(fake.join().unwrap().len(), 20);
}

#[test]
fn client_needs_not_even_hello_on_extra_connections() {
    let data = vec![0u8; 50_000];
    let extra = Extra { data: data.clone(), ..Extra::default() };
    let (addr, fake) = fake_server(4, data, extra);
    let c = client(addr, &["--connections", "4", "--duration", "1"]);
    assert_eq!(c.code, 0, "{c:?}");
    assert_eq!(c.rx_bytes, 4 * 50_000, "{c:?}");
    fake.join().unwrap();
}

#[test]
fn data_that_repeats_the_join_reply_after_it_is_counted() {
    // HELLO, the reply, then data that begins with the reply's bytes again.
    let data: Vec<u8> = FAKE_OK.iter().copied().chain(std::iter::repeat_n(0x55, 1000)).collect();
    let extra = Extra { hello: true, ahead: FAKE_OK.to_vec(), data: data.clone(), ..Extra::default() };
    let (addr, fake) = fake_server(4, vec![0x55; 1000], extra);
    let c = client(addr, &["--connections", "4", "--duration", "1", "--random"]);
    assert_eq!(c.code, 0, "{c:?}");
    assert_eq!(c.rx_bytes, 1000 + 3 * 1004, "{c:?}");
    fake.join().unwrap();
}

#[test]
fn data_that_begins_like_a_join_reply_is_counted_even_split() {
    // No HELLO, no reply; data starts 01 5a a5 01, its first byte alone.
    let data: Vec<u8> = [1, 0x5a, 0xa5, 1].into_iter().chain(std::iter::repeat_n(0x55, 1000)).collect();
    let extra = Extra { data: data.clone(), ..Extra::default() };
    let (addr, fake) = fake_server(4, vec![0x55; 1000], extra);
    let c = client(addr, &["--connections", "4", "--duration", "1", "--random"]);
    assert_eq!(c.code, 0, "{c:?}");
    assert_eq!(c.rx_bytes, 1000 + 3 * 1004, "{c:?}");
    fake.join().unwrap();
}

#[test]
fn client_transmits_on_extra_connections_before_any_reply() {
    // Data from the server begins with a status message (it only receives).
    let status = [0x07, 0x80 | 5, 0, 0, 1, 0, 0, 0, 0xe8, 0x03, 0, 0];
    let extra = Extra { hello: true, data: status.to_vec(), ..Extra::default() };
    let (addr, fake) = fake_server(4, Vec::new(), extra);
    let c = client(addr, &["--connections", "4", "--duration", "1", "--direction", "send", "--speed", "8M"]);
    assert_eq!(c.code, 0, "{c:?}");
    assert_eq!(c.rx_bytes, 3 * 12, "the statuses are data, not replies: {c:?}");
    assert_eq!(c.remote_rx_bytes, 3 * 1000, "{c:?}");
    let received = fake.join().unwrap();
    assert!(received.iter().all(|&n| n > 0), "a connection carried nothing: {received:?}");
    assert_eq!(received.iter().sum::<u64>(), c.tx_bytes);
}

#[test]
fn a_join_the_server_closes_fails_the_client_with_a_reason() {
    let extra = Extra { hello: true, refuse: true, data: vec![0; 10], ..Extra::default() };
    let (addr, fake) = fake_server(3, vec![0; 10], extra);
    let c = client(addr, &["--connections", "3", "--duration", "2"]);
    assert_eq!(c.code, 1, "{c:?}");
    assert!(c.stderr.contains("instead of joining it to the test"), "{c:?}");
    fake.join().unwrap();
}

#[test]
fn every_connection_count_is_answered_with_default_flags() {
    let server = Server::start(&[]);
    let mut admitted = 0u64;
    for n in 1..=u8::MAX {
        let (mut r, rep) = Raw::command(server.addr, &tcp_cmd(2, true, n, 0));
        if n <= 32 {
            assert!(rep[0] == 1 && rep[1] >= 2 && rep[3] == 0, "{n} connections: {rep:02x?}");
            admitted += 1;
            drop(r);
            // One at a time, under --max-sessions-per-ip.
            server.wait_log(&format!("session {admitted} ended:"), LOG_WAIT);
        } else {
            assert_eq!(rep, [0, 0, 0, 0], "{n} connections");
            let (rest, closed) = r.read_to_close(Duration::from_secs(5));
            assert!(closed && rest.is_empty(), "{n} connections: {rest:02x?}");
        }
    }
    // Refusals of unauthenticated commands are logged at most five a second
    // per address: the first ones in full, the rest counted.
    server.wait_log("similar log lines suppressed", LOG_WAIT);
    let log = server.log();
    for n in 33..=37 {
        let line = format!("test refused: asks for {n} TCP connections, the limit is 32 (--max-connections)");
        assert!(log.iter().any(|l| l.contains(&line)), "no {line:?}");
    }
}

#[test]
fn the_connection_limit_goes_up_to_255() {
    let server = Server::start(&["--max-connections", "255"]);
    let (r, rep) = Raw::command(server.addr, &tcp_cmd(2, true, 255, 0));
    assert!(rep[0] == 1 && rep[1] >= 2 && rep[3] == 0, "{rep:02x?}");
    server.wait_log("conns=255", LOG_WAIT);
    drop(r);
}

#[test]
fn a_real_twenty_connection_test_with_default_flags() {
    let server = Server::start(&[]);
    let args =
        ["--connections", "20", "--direction", "both", "--duration", "1.5", "--speed", "40M", "--remote-speed", "40M"];
    let c = client(server.addr, &args);
    assert_eq!(c.code, 0, "{c:?}");
    assert!(c.tx_bytes > 0 && c.rx_bytes > 0, "{c:?}");
    let end = server.session_end(1, LOG_WAIT);
    assert_eq!((end["conns"].as_str(), end["reason"].as_str()), ("20", "peer-closed"));
    assert_eq!(num(&end, "rx_bytes"), c.tx_bytes, "every byte sent on the 20 connections arrived");
    let log = server.log();
    assert!(!log.iter().any(|l| l.contains("refused") || l.contains("join timeout")), "{}", log.join("\n"));
}

//! Attacks a public server meets, against default flags, through a real
//! server on loopback (many 127.0.0.x addresses stand for many hosts).
//! `BTESTD_SERVE_BIN=/path/to/old/btestd cargo test --test attack` runs the
//! same attacks against another build and prints what it measured.

mod common;

use common::*;
use std::io::Write;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const LOG_WAIT: Duration = Duration::from_secs(10);

fn addr(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// HELLO, a command, an MD5 challenge: the connection waits for a response.
fn md5_challenged(server: &Server, from: Ipv4Addr) -> (Raw, [u8; 16]) {
    let mut r = Raw::connect_from(from, server.addr);
    assert_eq!(r.read_n(4), [1, 0, 0, 0], "HELLO");
    r.send(&tcp_cmd(2, true, 0, 0));
    assert_eq!(r.read_n(4), [2, 0, 0, 0], "MD5 challenge");
    let challenge = r.read_n(16).try_into().unwrap();
    (r, challenge)
}

const MD5_USER: [&str; 6] = ["--user", "u", "--password", "p", "--auth-scheme", "md5"];

#[test]
fn peer_chosen_user_names_cannot_forge_log_lines_or_send_escapes() {
    let server = Server::start(&MD5_USER);
    let (mut r, ch) = md5_challenged(&server, addr(1));
    let name = b"a\n[INFO] forged\x1b[2J\x7f";
    r.send(&btestd::auth::md5::emit_response(name, b"x", &ch));
    assert_eq!(r.read_n(4), [0, 0, 0, 0]);
    let line = server.wait_log("authentication failed for user", LOG_WAIT);
    assert!(line.contains(r"'a\x0a[INFO] forged\x1b[2J\x7f'"), "escaped in place: {line}");
    let log = server.log();
    assert!(!log.iter().any(|l| l.starts_with("[INFO] forged")), "no forged line: {log:?}");
    assert!(!log.iter().any(|l| l.bytes().any(|b| b < 0x20 || b == 0x7f)), "no raw control bytes: {log:?}");
}

#[test]
fn one_address_cannot_flood_the_log() {
    let server = Server::start(&[]);
    let start = Instant::now();
    let mut attempts = 0;
    while start.elapsed() < Duration::from_secs(3) && attempts < 3000 {
        // Connect, take HELLO, hang up: one log line each on an unlimited server.
        // HELLO, or a refusal once its handshakes are over the per-address cap.
        let mut r = Raw::connect_from(addr(9), server.addr);
        r.s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let _ = std::io::Read::read(&mut r.s, &mut [0u8; 4]);
        drop(r);
        attempts += 1;
        if attempts == 100 {
            let mut other = Raw::connect_from(addr(10), server.addr);
            assert_eq!(other.read_n(4), [1, 0, 0, 0]);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    server.wait_log("127.0.0.10:", LOG_WAIT);
    server.wait_log("similar log lines suppressed in the last second", LOG_WAIT);
    let flood = server.log().iter().filter(|l| l.contains("127.0.0.9:")).count();
    println!("{attempts} connections from one address in {secs:.1} s: {flood} log lines about it");
    assert!(attempts >= 300, "the flood ran: {attempts}");
    // Five a second, one more second for a window that was open at the start.
    assert!(flood as f64 <= 5.0 * (secs + 2.0), "{flood} lines about one address in {secs:.1} s");
}

/// Sends one byte a second on `r` until the server closes it; returns how long that took.
fn trickle(mut r: Raw, limit: Duration) -> Duration {
    let start = Instant::now();
    r.s.set_nonblocking(true).unwrap();
    while start.elapsed() < limit {
        if r.s.write(&[0]).is_err() {
            return start.elapsed();
        }
        let mut buf = [0u8; 1];
        // A server that closed shows as EOF (or a reset) on read.
        match std::io::Read::read(&mut r.s, &mut buf) {
            Ok(0) => return start.elapsed(),
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => return start.elapsed(),
            _ => {}
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    start.elapsed()
}

#[test]
fn tests_that_trickle_end_at_the_idle_timeout() {
    let server = Server::start(&[]);
    // The server receives, and the client sends a byte a second.
    let (receive, rep) = Raw::command(server.addr, &tcp_cmd(1, true, 0, 0));
    assert_eq!(rep, [1, 0, 0, 0]);
    // The server transmits to a client that never reads and sends a byte a second.
    let (transmit, rep) = Raw::command(server.addr, &tcp_cmd(2, true, 0, 0));
    assert_eq!(rep, [1, 0, 0, 0]);
    let _ = transmit.s.set_read_timeout(Some(Duration::from_millis(1)));
    let limit = Duration::from_secs(40);
    let a = std::thread::spawn(move || trickle(receive, limit));
    let mut stalled = transmit.s.try_clone().unwrap();
    let b = std::thread::spawn(move || {
        // Never read: only write a byte a second until the server hangs up.
        let start = Instant::now();
        while start.elapsed() < limit {
            if stalled.write(&[0]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
            if server_closed_unread(&transmit) {
                break;
            }
        }
        start.elapsed()
    });
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    println!("trickling receive test ended after {a:.1?}, stalled transmit test after {b:.1?}");
    for id in [1, 2] {
        let end = server.session_end(id, LOG_WAIT);
        assert_eq!(end["reason"], "idle-timeout", "session {id}: {end:?}");
    }
    assert!(a < Duration::from_secs(25) && b < Duration::from_secs(25), "{a:?} {b:?}");
}

#[test]
fn a_ban_stops_the_guesses_in_flight() {
    let server = Server::start(&MD5_USER);
    let mut guesses: Vec<(Raw, [u8; 16])> = (0..16).map(|_| md5_challenged(&server, addr(20))).collect();
    for (r, ch) in &mut guesses {
        r.send(&btestd::auth::md5::emit_response(b"u", b"wrong", ch));
    }
    let answered = guesses
        .iter_mut()
        .map(|(r, _)| r.read_to_close(Duration::from_secs(5)).0)
        .filter(|b| b == &[0, 0, 0, 0])
        .count();
    println!("16 parallel guesses: {answered} answered");
    server.wait_log("127.0.0.20: banned for", LOG_WAIT);
    assert_eq!(answered, 5, "the ban (after 5 failures) stops the other guesses unanswered");
    let failed = server.log().iter().filter(|l| l.contains("authentication failed")).count();
    assert_eq!(failed, 5, "only five guesses were evaluated");
}

#[test]
fn a_valid_login_between_guesses_does_not_reset_the_count() {
    let server = Server::start(&MD5_USER);
    let guess = |pw: &[u8]| {
        let (mut r, ch) = md5_challenged(&server, addr(21));
        r.send(&btestd::auth::md5::emit_response(b"u", pw, &ch));
        r.read_n(4)
    };
    // Two guesses, a valid login, two guesses, a valid login, a fifth guess.
    for failures in 1..=5 {
        assert_eq!(guess(b"wrong"), [0, 0, 0, 0], "guess {failures}");
        if failures % 2 == 0 {
            assert_eq!(guess(b"p"), [1, 0, 0, 0], "the right password still works before the ban");
        }
    }
    server.wait_log("127.0.0.21: banned for", LOG_WAIT);
}

#[test]
fn held_handshakes_from_crowded_addresses_give_way_to_a_newcomer() {
    let server = Server::start(&[]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let target = server.addr;
    // 30 addresses, each holding 16 handshakes (its cap), reconnecting as
    // they are dropped: 480 against the table's 256.
    let attacker = std::thread::spawn(move || {
        let mut slots: Vec<Option<Raw>> = (0..480).map(|_| None).collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !flag.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
            for (i, slot) in slots.iter_mut().enumerate() {
                if slot.as_ref().is_none_or(server_closed_unread) {
                    *slot = Some(Raw::connect_from(addr(100 + (i / 16) as u8), target));
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    std::thread::sleep(Duration::from_secs(2));
    let mut served = 0;
    for _ in 0..12 {
        let mut r = Raw::connect_from(addr(200), server.addr);
        r.s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut hello = [0u8; 4];
        if std::io::Read::read_exact(&mut r.s, &mut hello).is_ok() && hello == [1, 0, 0, 0] {
            r.send(&tcp_cmd(2, true, 0, 1_000_000));
            let mut rep = [0u8; 4];
            if std::io::Read::read_exact(&mut r.s, &mut rep).is_ok() && rep == [1, 0, 0, 0] {
                served += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(400));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    attacker.join().unwrap();
    println!("a newcomer among 480 held handshakes from 30 addresses: served {served} of 12");
    assert!(served >= 11, "served {served} of 12");
}

/// Whether the server closed a connection we do not read from: a reset, or
/// EOF once the HELLO still waiting in it is taken off (data of a running
/// test stays unread).
fn server_closed_unread(r: &Raw) -> bool {
    let mut probe = [0u8; 8];
    // SAFETY: a non-blocking peek into a local buffer on a socket we own.
    let n = unsafe {
        libc::recv(
            std::os::fd::AsRawFd::as_raw_fd(&r.s),
            probe.as_mut_ptr().cast(),
            probe.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    // HELLO (4 bytes) stays unread; a close shows as EOF after it, so read it off first.
    if n == 4 {
        let _ = std::io::Read::read(&mut &r.s, &mut probe[..4]);
        return server_closed_unread(r);
    }
    n == 0 || (n < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EAGAIN))
}

#[test]
fn join_token_guesses_get_a_few_tries_not_the_join_window() {
    let server = Server::start(&[]);
    let (mut primary, rep) = Raw::command(server.addr, &tcp_cmd(2, true, 4, 1_000_000));
    assert_eq!((rep[0], rep[3]), (1, 0), "{rep:02x?}");
    let token = u16::from_be_bytes([rep[1], rep[2]]);
    let start = Instant::now();
    for guess in (0x0201u16..).filter(|&t| t != token && t & 0xff != 0).take(3) {
        let mut r = Raw::connect(server.addr);
        assert_eq!(r.read_n(4), [1, 0, 0, 0]);
        r.send(&btestd::proto::command::emit_join(guess));
        let (reply, closed) = r.read_to_close(Duration::from_secs(5));
        assert!(closed && reply.is_empty(), "a wrong token gets no reply: {reply:02x?}");
    }
    server.wait_log("the join window ends", LOG_WAIT);
    server.wait_log("starting with 1 of 4 connections", LOG_WAIT);
    println!("join window ended after 3 wrong tokens, {:.1?}", start.elapsed());
    assert!(start.elapsed() < Duration::from_secs(4), "well before the 5 s join timeout");
    // The test runs on the primary.
    assert!(primary.read_n(4096).len() == 4096);
}

#[test]
fn user_names_with_bytes_from_0x80_are_escaped() {
    let server = Server::start(&MD5_USER);
    let (mut r, ch) = md5_challenged(&server, addr(2));
    // UTF-8 C1 control CSI (c2 9b), which some terminals obey.
    r.send(&btestd::auth::md5::emit_response("x\u{9b}2J".as_bytes(), b"x", &ch));
    assert_eq!(r.read_n(4), [0, 0, 0, 0]);
    let line = server.wait_log("authentication failed for user", LOG_WAIT);
    assert!(line.contains(r"'x\xc2\x9b2J'"), "{line}");
}

//! A session's clocks, phases, counts and statuses, over real loopback sockets.

use super::*;
use crate::proto::{Direction, Protocol, Status};
use crate::server::rates::Rates;

fn cmd(conns: u8) -> Command {
    Command::example(Protocol::Tcp, Direction::Both, conns)
}

fn session(conns: u8, join: Duration, t0: Instant) -> Session {
    let tcp = Transport::Tcp { pacer: TokenBucket::new(0, 1, t0) };
    Session::new(1, "127.0.0.1:1".parse().unwrap(), None, cmd(conns), tcp, 0, join, t0)
}

/// A connected loopback pair: the server's end and the client's.
fn pair() -> (Stream, std::net::TcpStream) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (server, _) = l.accept().unwrap();
    server.set_nonblocking(true).unwrap();
    (Stream::new(mio::net::TcpStream::from_std(server), 1, false, 1), client)
}

#[test]
fn deadline_is_earliest_clock() {
    let t0 = Instant::now();
    let until = t0 + Duration::from_millis(300);
    let mut s = session(4, Duration::from_millis(300), t0);
    assert_eq!(s.next_deadline(Duration::from_secs(10), None), until);
    s.set_phase(Phase::Running { since: t0 }, t0);
    assert_eq!(s.next_deadline(Duration::from_secs(10), None), t0 + Duration::from_secs(1));
    assert_eq!(s.next_deadline(Duration::from_millis(500), None), t0 + Duration::from_millis(500));
    assert_eq!(
        s.next_deadline(Duration::from_secs(10), Some(Duration::from_millis(200))),
        t0 + Duration::from_millis(200)
    );
    s.pace_wake = Some(t0 + Duration::from_millis(5));
    assert_eq!(s.next_deadline(Duration::from_secs(10), None), t0 + Duration::from_millis(5));
}

#[test]
fn status_clock_catches_up_after_stall() {
    let t0 = Instant::now();
    let mut s = session(0, Duration::ZERO, t0);
    s.set_phase(Phase::Running { since: t0 }, t0);
    s.advance_status_clock(t0 + Duration::from_secs(1));
    assert_eq!(s.next_status, t0 + Duration::from_secs(2));
    let late = t0 + Duration::from_secs(10);
    s.advance_status_clock(late);
    assert_eq!(s.next_status, late + Duration::from_secs(1));
    assert!(!s.is_complete(), "no connection has joined yet");
    let (stream, _client) = pair();
    s.attach(7, stream);
    assert!(s.is_complete());
}

#[test]
fn a_closed_connection_drains_the_others_then_ends() {
    let t0 = Instant::now();
    let mut s = session(2, Duration::from_secs(5), t0);
    let (a, _ca) = pair();
    let (b, _cb) = pair();
    s.attach(1, a);
    s.attach(2, b);
    s.start(t0);
    s.conns[0].eof = true;
    assert_eq!(s.peer_closed(t0), Ok(()));
    assert_eq!(s.phase(), Phase::Draining { until: t0 + DRAIN_GRACE, since: Some(t0) });
    assert_eq!(s.since(), Some(t0), "draining keeps the start for rates and max-duration");
    assert_eq!(s.next_deadline(Duration::from_secs(10), None), t0 + DRAIN_GRACE);
    s.conns[1].eof = true;
    assert_eq!(s.peer_closed(t0), Err(EndReason::PeerClosed));
}

/// A running one-connection session and the client's end of it.
fn running_with_conn(t0: Instant) -> (Session, std::net::TcpStream) {
    let mut s = session(0, Duration::ZERO, t0);
    let (stream, client) = pair();
    s.attach(1, stream);
    s.start(t0);
    (s, client)
}

#[test]
fn uncharged_bytes_are_handed_out_once() {
    let (mut s, _client) = running_with_conn(Instant::now());
    s.conns[0].stream.rx_bytes = 1000;
    s.conns[0].stream.tx_bytes = 10;
    assert_eq!(s.take_uncharged(), (1000, 10));
    assert_eq!(s.take_uncharged(), (0, 0));
    s.conns[0].stream.rx_bytes = 1500;
    assert_eq!(s.take_uncharged(), (500, 0));
    assert_eq!(s.bytes(), (1500, 10));
}

#[test]
fn the_status_reports_the_bytes_read_since_the_last_one() {
    use std::io::{Read, Write};
    let t0 = Instant::now();
    let (mut s, mut client) = running_with_conn(t0);
    // The server only receives: nothing but statuses goes out.
    s.cmd.direction = Direction::ClientToServer;
    let limits = crate::server::Limits::default();
    let (mut bufs, mut rates, mut ready) = (Buffers::new(), Rates::new(&limits, t0), Vec::new());
    let mut io = Io { now: t0, bufs: &mut bufs, rates: &mut rates, ready: &mut ready, skey: 0 };
    client.write_all(&[0u8; 1000]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.bytes().0 < 1000 && Instant::now() < deadline {
        s.read(0, &mut io).unwrap();
    }
    assert_eq!(s.bytes().0, 1000);
    for (second, expect) in [(1, 1000u32), (2, 0)] {
        s.queue_statuses(Some(7), 0, t0 + Duration::from_secs(second));
        s.write(0, &mut io).unwrap();
        let mut st = [0u8; Status::LEN];
        client.read_exact(&mut st).unwrap();
        let st = Status::parse(&st).unwrap();
        assert_eq!((st.seq, st.bytes, st.cpu), (second as u32, expect, Some(7)));
    }
}

#[test]
fn a_tcp_server_that_only_transmits_queues_no_status() {
    let t0 = Instant::now();
    for (direction, carries) in
        [(Direction::ServerToClient, false), (Direction::ClientToServer, true), (Direction::Both, true)]
    {
        let (mut s, _client) = running_with_conn(t0);
        s.cmd.direction = direction;
        s.queue_statuses(Some(1), 0, t0 + Duration::from_secs(1));
        assert_eq!(s.conns[0].stream.has_pending(), carries, "{direction:?}");
        assert_eq!(s.next_status, t0 + Duration::from_secs(2), "the status clock runs either way");
    }
}

#[test]
fn caps_change_the_pacers() {
    let t0 = Instant::now();
    let mut s = session(0, Duration::ZERO, t0);
    s.set_caps(8_000_000, 16_000_000, t0);
    let Transport::Tcp { pacer } = &s.transport else { unreachable!() };
    assert_eq!(pacer.rate_bps(), 8_000_000);
    assert_eq!(s.rx_pacer.rate_bps(), 16_000_000);
}

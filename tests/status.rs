//! Status messages through the real binary: where the server puts its own
//! in a capped TCP stream and whether their byte counts add up, the CPU
//! byte in both forms, a UDP test's control connection with stray bytes on
//! it (server and client), and a UDP client that reports every 5 s.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LOG_WAIT: Duration = Duration::from_secs(10);
const BLOCK: usize = 32768;

/// A server status found in a TCP stream, and the payload bytes before it.
#[derive(Debug, Clone, Copy)]
struct Found {
    payload_offset: usize,
    seq: u32,
    bytes: u32,
}

/// Walks a server's TCP stream: btestd's payload (zeros, or random bytes)
/// never contains the tag 0x07, so every tag starts a status.
fn statuses_in(stream: &[u8]) -> (Vec<Found>, usize) {
    let (mut found, mut payload, mut i) = (Vec::new(), 0, 0);
    while i < stream.len() {
        if stream[i] == 0x07 {
            let st = stream.get(i..i + 12).expect("a whole status before the end");
            assert_eq!(&st[2..4], &[0, 0], "status padding at {i}");
            let le = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap());
            found.push(Found { payload_offset: payload, seq: le(&st[4..8]), bytes: le(&st[8..12]) });
            i += 12;
        } else {
            payload += 1;
            i += 1;
        }
    }
    (found, payload)
}

/// A TCP "both" test capped at `remote_bps` for the server's sending:
/// the raw client sends 8 KiB every 250 ms for 4 s, stops, keeps reading
/// until `close_at`, then closes. Returns the server's statuses, the
/// payload bytes received and what the client sent.
fn capped_both_test(random: bool, remote_bps: u32, close_at: Duration) -> (Vec<Found>, usize, u64, Server) {
    let server = Server::start(&[]);
    let (r, rep) = Raw::command(server.addr, &tcp_cmd(3, !random, 0, remote_bps));
    assert_eq!(rep, [1, 0, 0, 0]);
    let t0 = Instant::now();
    let mut reader = r.s.try_clone().unwrap();
    reader.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let received = std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = reader.read_to_end(&mut all);
        all
    });
    let mut w = r.s;
    let mut sent = 0u64;
    for _ in 0..16 {
        w.write_all(&[0u8; 8192]).unwrap();
        sent += 8192;
        std::thread::sleep(Duration::from_millis(250));
    }
    std::thread::sleep(close_at.saturating_sub(t0.elapsed()));
    w.shutdown(std::net::Shutdown::Write).unwrap();
    let all = received.join().unwrap();
    let end = server.session_end(1, LOG_WAIT);
    assert_eq!(num(&end, "rx_bytes"), sent, "{end:?}");
    let (found, payload) = statuses_in(&all);
    (found, payload, sent, server)
}

fn assert_counts_add_up(found: &[Found], sent: u64) {
    let seqs: Vec<u32> = found.iter().map(|f| f.seq).collect();
    let want: Vec<u32> = (1..=found.len() as u32).collect();
    assert_eq!(seqs, want, "sequence numbers without gaps: {found:?}");
    let reported: u64 = found.iter().map(|f| u64::from(f.bytes)).sum();
    assert_eq!(reported, sent, "the statuses report every byte the server read: {found:?}");
}

#[test]
fn capped_zero_stream_statuses_come_every_second_and_add_up() {
    // 100 kbit/s: one 32768-byte block takes 2.6 s; statuses must not wait
    // for its end when the server is out of tokens.
    let (found, payload, sent, _server) = capped_both_test(false, 100_000, Duration::from_millis(6300));
    assert_counts_add_up(&found, sent);
    assert!(found.len() >= 5, "about one status a second for 6 s: {found:?}");
    assert!(found.iter().any(|f| f.payload_offset % BLOCK != 0), "a status went out mid-block: {found:?}");
    // The cap holds: 12.5 kB/s plus the pacer's burst.
    assert!(payload <= 12_500 * 7 + 1500, "{payload} payload bytes");
}

#[test]
fn capped_random_stream_statuses_sit_on_block_boundaries_and_add_up() {
    // 200 kbit/s: a block takes 1.3 s, so one status must wait for the
    // next block boundary while a later one is queued: they merge.
    let (found, payload, sent, _server) = capped_both_test(true, 200_000, Duration::from_millis(7000));
    assert_counts_add_up(&found, sent);
    assert!(found.len() >= 3, "{found:?}");
    for f in &found {
        assert_eq!(f.payload_offset % BLOCK, 0, "random payload: statuses only between blocks: {found:?}");
    }
    assert!(payload <= 25_000 * 8 + 1500, "{payload} payload bytes");
}

#[test]
fn unlimited_status_sits_on_a_block_boundary_when_the_server_also_receives() {
    // Zeros and tokens to spare: the status waits for the end of the block
    // (as the tested implementation does), here within microseconds.
    let server = Server::start(&[]);
    let (mut r, rep) = Raw::command(server.addr, &tcp_cmd(3, true, 0, 0));
    assert_eq!(rep, [1, 0, 0, 0]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut offset, mut buf) = (0usize, vec![0u8; 65536]);
    let (pos, st) = loop {
        assert!(Instant::now() < deadline, "no status message in the stream");
        let n = r.s.read(&mut buf).unwrap();
        assert!(n > 0, "server closed");
        if let Some(p) = buf[..n].iter().position(|&b| b != 0) {
            let mut st = buf[p..n].to_vec();
            while st.len() < 12 {
                st.extend(r.read_n(1));
            }
            break (offset + p, st);
        }
        offset += n;
    };
    assert_eq!(&st[..1], &[0x07]);
    assert_eq!(&st[2..8], &[0, 0, 1, 0, 0, 0], "{st:02x?}");
    assert_eq!(pos % BLOCK, 0, "status at offset {pos}");
}

#[test]
fn raw_load_cpu_byte_from_a_raw_client_is_read() {
    let server = Server::start(&[]);
    let (mut r, rep) = Raw::command(server.addr, &tcp_cmd(1, true, 0, 0));
    assert_eq!(rep, [1, 0, 0, 0]);
    let peer = r.s.local_addr().unwrap();
    r.send(&[0u8; 5000]);
    r.send(&status(0x80 | 30, 1, 100));
    r.send(&[0u8; 5000]);
    // A raw load (89 %) without the flag, as some RouterOS sources describe.
    r.send(&status(0x59, 2, 200));
    r.send(&[0u8; 5000]);
    std::thread::sleep(Duration::from_millis(100));
    drop(r);
    let end = server.session_end_of(peer, LOG_WAIT);
    assert_eq!(end["peer_statuses"], "2", "{end:?}");
    assert_eq!(end["peer_cpu"], "89", "{end:?}");
    assert_eq!(num(&end, "rx_bytes"), 15_024);
}

/// A UDP command with the payload kind chosen (`random_data` byte 0 = random).
fn udp_cmd_payload(dir: u8, random: bool, remote: u32) -> [u8; 16] {
    let mut c = udp_cmd(dir, 1500, remote);
    c[2] = u8::from(!random);
    c
}

fn raw_udp(server: &Server, cmd: &[u8; 16]) -> (Raw, SocketAddr) {
    let (mut r, rep) = Raw::command(server.addr, cmd);
    assert_eq!(rep, [1, 0, 0, 0]);
    let p = r.read_n(2);
    (r, SocketAddr::new(server.addr.ip(), u16::from_be_bytes([p[0], p[1]])))
}

#[test]
fn bytes_that_are_no_status_on_a_udp_control_connection_hide_no_status() {
    for random in [true, false] {
        let server = Server::start(&[]);
        let (mut r, _udp) = raw_udp(&server, &udp_cmd_payload(1, random, 0));
        let peer = r.s.local_addr().unwrap();
        // A stray byte, a 12-byte frame that is no status, a tag that
        // starts nothing: none may cost a status after it.
        r.send(&[0x42]);
        r.send(&status(0x80 | 10, 1, 0));
        r.send(&[0x55; 12]);
        r.send(&status(0x80 | 20, 2, 0));
        r.send(&[0x07, 0x07]);
        r.send(&status(0x59, 3, 0));
        // The server's own statuses come as back-to-back frames, numbered from 1.
        let mine = r.read_n(24);
        for (i, st) in mine.chunks(12).enumerate() {
            assert_eq!(&st[..1], &[0x07], "{mine:02x?}");
            assert_eq!(&st[2..8], &[0, 0, i as u8 + 1, 0, 0, 0], "{mine:02x?}");
        }
        drop(r);
        let end = server.session_end_of(peer, LOG_WAIT);
        assert_eq!(end["peer_statuses"], "3", "random={random}: {end:?}");
        assert_eq!(end["peer_cpu"], "89", "random={random}: {end:?}");
        server.wait_log("skipped 15 bytes on the control connection that were not statuses", LOG_WAIT);
    }
}

#[test]
fn client_reads_raw_load_statuses_after_junk_from_a_udp_server() {
    // A stand-in server: handshake, a port, then junk and four statuses
    // with a raw CPU byte on the control connection.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = udp.local_addr().unwrap().port();
    let fake = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&[1, 0, 0, 0]).unwrap();
        let mut cmd = [0u8; 16];
        s.read_exact(&mut cmd).unwrap();
        s.write_all(&[1, 0, 0, 0]).unwrap();
        s.write_all(&port.to_be_bytes()).unwrap();
        s.write_all(&[0x42, 0x07]).unwrap();
        for seq in 1..=4u32 {
            std::thread::sleep(Duration::from_millis(250));
            s.write_all(&status(0x59, seq, 1000 * seq)).unwrap();
        }
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        (cmd, rest)
    });
    let c = client(addr, &["--proto", "udp", "--direction", "receive", "--duration", "2", "--random"]);
    let (cmd, from_client) = fake.join().unwrap();
    drop(udp);
    assert_eq!(c.code, 0, "{c:?}");
    assert_eq!(&cmd[..3], &[0, 2, 0], "UDP, server transmits, random payload");
    assert_eq!(c.remote_cpu, Some(89), "{c:?}");
    assert_eq!(c.remote_rx_bytes, 10_000, "{c:?}");
    // The client's own statuses: back-to-back frames, numbered from 1.
    assert!(from_client.len() >= 12 && from_client.len() % 12 == 0, "{from_client:02x?}");
    for (i, st) in from_client.chunks(12).enumerate() {
        assert_eq!(st[0], 0x07);
        assert_eq!(u32::from_le_bytes(st[4..8].try_into().unwrap()), i as u32 + 1);
    }
}

/// Makes closing `s` send a reset, as when a client is killed with unread data.
fn reset_on_close(s: &std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt on a descriptor we own, with a correctly sized value.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}

fn mbps_between(arrivals: &[(Instant, usize)], from: Instant, to: Instant) -> f64 {
    let bytes: usize = arrivals.iter().filter(|(t, _)| *t >= from && *t < to).map(|(_, n)| n + 28).sum();
    bytes as f64 * 8.0 / (to - from).as_secs_f64() / 1e6
}

#[test]
fn udp_transmit_survives_a_client_reporting_every_five_seconds() {
    // Idle timeout 7 s: the client's statuses, 5 s apart, are what keeps the
    // test alive; the server's own sending does not count.
    let server = Server::start(&["--idle-timeout", "7"]);
    let (mut r, udp) = raw_udp(&server, &udp_cmd(2, 1500, 10_000_000));
    let peer = r.s.local_addr().unwrap();
    let t0 = Instant::now();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    sock.send_to(&[], udp).unwrap();
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rx = {
        let (arrivals, stop) = (arrivals.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(n) = sock.recv(&mut buf) {
                    arrivals.lock().unwrap().push((Instant::now(), n));
                }
            }
        })
    };
    // Each report covers the 5 s since the last: 2.5 MB, i.e. the path
    // delivers 4 Mbit/s of the 10 the server starts at. The server should
    // then send 1.5 x 4 = 6 Mbit/s, not take 2.5 MB as one second's worth.
    for (seq, at) in [(1u32, 5u64), (2, 10)] {
        std::thread::sleep((t0 + Duration::from_secs(at)).saturating_duration_since(Instant::now()));
        r.send(&status(0x80, seq, 2_500_000));
    }
    std::thread::sleep((t0 + Duration::from_secs(13)).saturating_duration_since(Instant::now()));
    // The server's statuses meanwhile: one a second, numbered without gaps,
    // reporting nothing received (it only transmits).
    r.s.set_nonblocking(true).unwrap();
    let mut theirs = Vec::new();
    let _ = r.s.read_to_end(&mut theirs);
    // The client vanishes: a reset on the control connection ends the test.
    reset_on_close(&r.s);
    drop(r);
    let closed = Instant::now();
    let end = server.session_end_of(peer, LOG_WAIT);
    let ended_after = closed.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    rx.join().unwrap();
    let arrivals = arrivals.lock().unwrap().clone();

    assert_eq!(end["reason"], "peer-closed", "{end:?}");
    assert!(ended_after < Duration::from_secs(2), "ended {ended_after:?} after the reset");
    assert_eq!(num(&end, "peer_statuses"), 2, "{end:?}");
    let secs: f64 = end["secs"].parse().unwrap();
    assert!(secs > 12.5, "the test outlived the idle timeout by far: {end:?}");
    assert!(arrivals.iter().all(|(t, _)| *t < closed + Duration::from_millis(300)), "sending stopped");
    let got: u64 = arrivals.iter().map(|(_, n)| *n as u64 + 28).sum();
    let sent = num(&end, "tx_bytes");
    assert!(got <= sent && got as f64 >= sent as f64 * 0.99, "client got {got} of {sent}");

    let before = mbps_between(&arrivals, t0 + Duration::from_millis(1500), t0 + Duration::from_millis(4500));
    let after = mbps_between(&arrivals, t0 + Duration::from_millis(6500), t0 + Duration::from_millis(9500));
    // The pacer never gets ahead of its rate, but on a loaded machine it can
    // fall behind: the bounds are tight above and loose below. Taking the
    // report as one second's worth would keep the rate at the 10 Mbit/s cap.
    assert!(before <= 10.5 && before > 6.6, "before the first report: {before:.2} Mbit/s, want 10");
    assert!(after <= 6.6 && after > 4.0, "after 2.5 MB in 5 s: {after:.2} Mbit/s, want 6");

    assert!(theirs.len() >= 11 * 12 && theirs.len() % 12 == 0, "{} bytes of statuses", theirs.len());
    for (i, st) in theirs.chunks(12).enumerate() {
        assert_eq!(&st[..1], &[0x07]);
        assert_eq!(u32::from_le_bytes(st[4..8].try_into().unwrap()), i as u32 + 1);
        assert_eq!(&st[8..12], &[0, 0, 0, 0], "received nothing");
    }
}

//! The TCP data path both ways it runs: zero-copy (payload spliced from a
//! pipe, received payload dropped in the kernel) and portable
//! (`BTESTD_TCP_IO=portable`, the path of systems and kernels without the
//! calls), through a real server and client. Which path moved the bytes is
//! seen from outside: strace, attached to the server for each test, sums
//! what each system call moved; the receive mode is logged when it changes.

mod common;

use common::*;
use std::time::{Duration, Instant};

const LOG_WAIT: Duration = Duration::from_secs(10);
const ZERO_COPY: &str = "TCP data path: zero-copy send, receive discards in the kernel";
const PORTABLE: &str = "TCP data path: portable";

/// One throughput-measuring test at a time: unlimited runs beside
/// rate-limited ones starve them of CPU on a small machine.
static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    ZeroCopy,
    Portable,
}

fn server(path: Path, args: &[&str]) -> Server {
    let (value, line) = match path {
        Path::ZeroCopy => ("zero-copy", ZERO_COPY),
        Path::Portable => ("portable", PORTABLE),
    };
    let s = Server::start_with_env(&[("BTESTD_TCP_IO", value)], args);
    s.wait_log(line, LOG_WAIT);
    s
}

/// Payload bytes the server's system calls moved, as strace saw them.
#[derive(Debug, Default)]
struct Moved {
    /// splice(2): zero-copy sends.
    spliced: u64,
    /// The most one splice moved.
    largest_splice: u64,
    /// send(2) (sendto): portable sends, statuses and replies.
    sent: u64,
    /// recv(2) with MSG_TRUNC: dropped in the kernel, unread.
    dropped: u64,
    /// recv(2) into a buffer: read and scanned.
    read: u64,
}

/// strace attached to the server while `run` runs; None (the caller skips
/// its system call checks) where strace is not installed, but not in CI.
fn traced<T>(pid: u32, run: impl FnOnce() -> T) -> (T, Option<Moved>) {
    let out = std::env::temp_dir().join(format!("btestd-strace-{}-{pid}", std::process::id()));
    let spawned = std::process::Command::new("strace")
        .args(["-f", "-e", "trace=splice,sendto,recvfrom", "-e", "signal=none", "-o"])
        .arg(&out)
        .args(["-p", &pid.to_string()])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let Ok(mut strace) = spawned else {
        assert!(std::env::var_os("CI").is_none(), "CI must install strace (.ci/run does)");
        eprintln!("SKIP: strace is not installed; which system calls moved the payload goes unchecked");
        return (run(), None);
    };
    // It reports on stderr once attached; the rest of stderr is drained so
    // that it never blocks.
    let (tx, rx) = std::sync::mpsc::channel();
    let err = strace.stderr.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let attached = rx.recv_timeout(LOG_WAIT).unwrap_or_default();
    assert!(attached.contains("attached"), "strace did not attach: {attached:?}");
    let result = run();
    // SAFETY: a signal to the strace process this test started.
    unsafe { libc::kill(strace.id() as i32, libc::SIGINT) };
    wait_bounded(&mut strace, LOG_WAIT);
    let text = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    let mut moved = Moved::default();
    for line in text.lines() {
        // "PID splice(16, NULL, 12, NULL, 1048576, SPLICE_F_NONBLOCK) = 1048576"
        let Some((call, ret)) = line.rsplit_once(" = ") else { continue };
        let Ok(n) = ret.split(' ').next().unwrap_or("").parse::<u64>() else { continue };
        let slot = if call.contains(" splice(") {
            &mut moved.spliced
        } else if call.contains(" sendto(") {
            &mut moved.sent
        } else if call.contains(" recvfrom(") && call.contains("MSG_TRUNC") {
            &mut moved.dropped
        } else if call.contains(" recvfrom(") {
            &mut moved.read
        } else {
            panic!("a line strace wrote in pieces or of another call: {line}");
        };
        *slot += n;
        if call.contains(" splice(") {
            moved.largest_splice = moved.largest_splice.max(n);
        }
    }
    (result, Some(moved))
}

/// Every direction x zeros/random x rate-limited/unlimited on one path:
/// byte counts both sides agree on, the server's statuses found in the
/// stream, rates, and the system calls that carried the payload.
fn matrix(path: Path) {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let mut server = server(path, &[]);
    let mut id = 0;
    for dir in ["receive", "send", "both"] {
        for random in [false, true] {
            for limited in [true, false] {
                id += 1;
                // Unlimited zero tests outlast the server's watch for statuses.
                let secs = if limited { "2" } else { "4" };
                let mut args = vec!["--direction", dir, "--duration", secs];
                if limited {
                    args.extend_from_slice(&["--speed", "50M", "--remote-speed", "50M"]);
                }
                if random {
                    args.push("--random");
                }
                let (c, moved) = traced(server.pid(), || client(server.addr, &args));
                let what = format!("{path:?} {dir} random={random} limited={limited}: {c:?}");
                assert_eq!(c.code, 0, "{what}");
                let end = server.session_end(id, LOG_WAIT);
                assert_eq!(end["reason"], "peer-closed", "{what}");
                let (srv_rx, srv_tx) = (num(&end, "rx_bytes"), num(&end, "tx_bytes"));
                let client_sends = dir != "receive";
                let server_sends = dir != "send";
                if client_sends {
                    assert_eq!(srv_rx, c.tx_bytes, "{what}: every byte the client wrote was counted");
                    assert!(c.remote_rx_bytes > 0 && c.remote_rx_bytes <= srv_rx, "{what}: server statuses");
                    check_rate(c.tx_bytes, c.seconds, limited, &what);
                }
                if server_sends {
                    let in_flight = if limited { 8_000_000 } else { 64_000_000 };
                    assert!(c.rx_bytes <= srv_tx && srv_tx - c.rx_bytes < in_flight, "{what} srv_tx={srv_tx}");
                    check_rate(c.rx_bytes, c.seconds, limited, &what);
                    // The server's statuses went out inside the payload at
                    // block boundaries, where the client found them.
                    if client_sends {
                        assert!(c.intervals >= 1, "{what}");
                    }
                }
                let Some(m) = moved else { continue };
                let what = format!("{what} srv_rx={srv_rx} srv_tx={srv_tx} {m:?}");
                // Handshake, replies and statuses are a few hundred bytes.
                let control = 4096;
                assert!(m.spliced + m.sent <= srv_tx + control && m.spliced + m.sent + control >= srv_tx, "{what}");
                assert!(m.dropped + m.read <= srv_rx + control && m.dropped + m.read + control >= srv_rx, "{what}");
                match path {
                    Path::ZeroCopy => {
                        assert!(m.sent <= control, "payload went out by splice: {what}");
                        // Zeros are watched for statuses for 1.5 s, then
                        // dropped; random payload is read at block
                        // boundaries only.
                        if client_sends && random {
                            assert!(m.read < srv_rx / 100, "only block boundaries read: {what}");
                        } else if client_sends {
                            assert!(m.dropped > srv_rx / 10, "zeros dropped after the watch: {what}");
                        }
                    }
                    Path::Portable => assert!(m.spliced == 0 && m.dropped == 0, "{what}"),
                }
            }
        }
    }
    let (_, log) = server.stop();
    let modes: Vec<&String> = log.iter().filter(|l| l.contains(": receive ")).collect();
    if path == Path::Portable {
        assert!(modes.is_empty(), "{modes:?}");
    }
}

/// Limited runs hold to the 50M asked; unlimited ones go well past it. Not
/// more: strace stops the server at every send and recv, and random payload
/// received takes two calls per 32 KiB block, so a traced unlimited run
/// measures strace (260 to 890 Mbit/s seen for the same build).
fn check_rate(bytes: u64, secs: f64, limited: bool, what: &str) {
    let rate = bytes as f64 * 8.0 / secs;
    if limited {
        assert!((rate - 50e6).abs() < 50e6 * 0.15, "{rate} bit/s, asked 50M: {what}");
    } else {
        assert!(rate > 2.0 * 50e6, "unlimited at only {rate} bit/s: {what}");
    }
}

#[test]
fn zero_copy_path_moves_every_direction_payload_and_rate() {
    matrix(Path::ZeroCopy);
}

#[test]
fn portable_path_moves_every_direction_payload_and_rate() {
    matrix(Path::Portable);
}

/// Seccomp filter instructions; a system call's arguments are loaded by
/// their low halves (little-endian).
#[cfg(all(target_os = "linux", target_endian = "little"))]
mod bpf {
    pub const LD: u32 = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    pub const JEQ: u32 = libc::BPF_JMP | libc::BPF_JEQ;
    pub const JSET: u32 = libc::BPF_JMP | libc::BPF_JSET;
    pub const RET: u32 = libc::BPF_RET;
    /// Offset of the system call's number, and of argument `i`'s low half.
    pub const NR: u32 = 0;
    pub const fn arg(i: u32) -> u32 {
        16 + 8 * i
    }

    pub fn op(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
        libc::sock_filter { code: code as u16, jt, jf, k }
    }

    /// Puts this process under `prog` (run between fork and exec: no allocation).
    pub fn install(prog: &[libc::sock_filter]) -> std::io::Result<()> {
        let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr().cast_mut() };
        // SAFETY: prctl with a live filter program; both calls only affect this process.
        let ok = unsafe {
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
                && libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &fprog as *const libc::sock_fprog) == 0
        };
        if ok { Ok(()) } else { Err(std::io::Error::last_os_error()) }
    }
}

/// A seccomp filter that refuses tee, splice and recv with MSG_TRUNC as
/// an old kernel or a container's policy would: "not implemented".
#[cfg(all(target_os = "linux", target_endian = "little"))]
fn refuse_zero_copy() -> std::io::Result<()> {
    use bpf::{JEQ, JSET, LD, NR, RET, arg, op};
    bpf::install(&[
        op(LD, NR, 0, 0),
        op(JEQ, libc::SYS_tee as u32, 5, 0),
        op(JEQ, libc::SYS_splice as u32, 4, 0),
        op(JEQ, libc::SYS_recvfrom as u32, 0, 2),
        op(LD, arg(3), 0, 0), // recvfrom's flags
        op(JSET, libc::MSG_TRUNC as u32, 1, 0),
        op(RET, libc::SECCOMP_RET_ALLOW, 0, 0),
        op(RET, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32, 0, 0),
    ])
}

/// fcntl(F_SETPIPE_SZ) refused, as it is for an unprivileged user above
/// fs.pipe-max-size: pipes keep their default size (64 KiB).
#[cfg(all(target_os = "linux", target_endian = "little"))]
fn refuse_pipe_resize() -> std::io::Result<()> {
    use bpf::{JEQ, LD, NR, RET, arg, op};
    bpf::install(&[
        op(LD, NR, 0, 0),
        op(JEQ, libc::SYS_fcntl as u32, 0, 3),
        op(LD, arg(1), 0, 0),
        op(JEQ, libc::F_SETPIPE_SZ as u32, 0, 1),
        op(RET, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32, 0, 0),
        op(RET, libc::SECCOMP_RET_ALLOW, 0, 0),
    ])
}

/// Pipes the system will not enlarge: zero-copy send goes on from the
/// default-sized ones, each call moving less, zeros and random payload alike.
#[cfg(all(target_os = "linux", target_endian = "little"))]
#[test]
fn a_refused_pipe_resize_still_sends_zero_copy() {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start_after(refuse_pipe_resize, &[]);
    server.wait_log(ZERO_COPY, LOG_WAIT);
    for (id, random) in [(1, false), (2, true)] {
        let args: &[&str] = if random { &["--duration", "2", "--random"] } else { &["--duration", "2"] };
        let (c, moved) = traced(server.pid(), || client(server.addr, args));
        let what = format!("random={random}: {c:?}");
        assert_eq!(c.code, 0, "{what}");
        let srv_tx = num(&server.session_end(id, LOG_WAIT), "tx_bytes");
        assert!(c.rx_bytes <= srv_tx && c.rx_bytes > 100_000_000, "{what} srv_tx={srv_tx}");
        let Some(m) = moved else { continue };
        let what = format!("{what} srv_tx={srv_tx} {m:?}");
        assert!(m.sent <= 4096 && m.spliced + m.sent + 4096 >= srv_tx, "payload went out by splice: {what}");
        assert!(m.largest_splice <= 64 << 10, "from 64 KiB pipes: {what}");
    }
    let log = server.log();
    assert!(!log.iter().any(|l| l.contains("unavailable")), "{log:#?}");
}

/// A kernel that refuses the zero-copy calls: the server finds out at the
/// first call, says so once, and moves every byte the portable way.
#[cfg(all(target_os = "linux", target_endian = "little"))]
#[test]
fn refused_zero_copy_calls_fall_back_to_the_portable_path() {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start_after(refuse_zero_copy, &[]);
    server.wait_log(ZERO_COPY, LOG_WAIT);
    for (id, dir) in [(1, "receive"), (2, "send"), (3, "receive")] {
        let (c, moved) = traced(server.pid(), || client(server.addr, &["--direction", dir, "--duration", "2"]));
        let what = format!("{dir}: {c:?}");
        assert_eq!(c.code, 0, "{what}");
        let end = server.session_end(id, LOG_WAIT);
        let (srv_rx, srv_tx) = (num(&end, "rx_bytes"), num(&end, "tx_bytes"));
        if dir == "send" {
            assert_eq!(srv_rx, c.tx_bytes, "{what}");
        } else {
            assert!(c.rx_bytes <= srv_tx && c.rx_bytes > 100_000_000, "{what} srv_tx={srv_tx}");
        }
        let Some(m) = moved else { continue };
        let what = format!("{what} srv_rx={srv_rx} srv_tx={srv_tx} {m:?}");
        assert!(m.spliced == 0 && m.dropped == 0, "{what}");
        assert!(m.sent + 4096 >= srv_tx && m.read + 4096 >= srv_rx, "{what}");
    }
    let log = server.log();
    for refused in ["zero-copy send unavailable (", "recv(MSG_TRUNC) unavailable ("] {
        let lines: Vec<&String> = log.iter().filter(|l| l.contains(refused)).collect();
        assert_eq!(lines.len(), 1, "said once: {refused} {log:#?}");
        assert!(lines[0].contains("not implemented"), "{lines:?}");
    }
}

/// Random payload from the server: not zeros, never the status tag, on
/// both paths (the payload file holds the same kind of bytes).
#[test]
fn random_payload_is_random_on_both_paths() {
    for path in [Path::ZeroCopy, Path::Portable] {
        let server = server(path, &[]);
        for random in [true, false] {
            let (mut r, rep) = Raw::command(server.addr, &tcp_cmd(2, !random, 0, 0));
            assert_eq!(rep, [1, 0, 0, 0]);
            let got = r.read_n(3 << 20);
            let zeros = got.iter().filter(|&&b| b == 0).count();
            if random {
                assert!(zeros < got.len() / 100, "{path:?}: {zeros} zero bytes of {}", got.len());
                assert!(!got.contains(&0x07), "{path:?}: the tag byte in random payload");
                // Not one block repeated at every write: 1 MiB apart differs
                // only if the file holds the buffer's copies; 4 KiB apart must.
                assert_ne!(got[..4096], got[4096..8192], "{path:?}");
            } else {
                assert_eq!(zeros, got.len(), "{path:?}: zeros");
            }
        }
    }
}

/// Random payload (32 KiB blocks) with fake frame starts inside every
/// block and real statuses at block boundaries: the zero-copy path reads
/// only the boundaries and still finds exactly the real ones.
#[test]
fn statuses_at_random_block_boundaries_are_found_on_both_paths() {
    for path in [Path::ZeroCopy, Path::Portable] {
        let server = server(path, &["--verbose"]);
        let (mut r, rep) = Raw::command(server.addr, &tcp_cmd(1, false, 0, 0));
        assert_eq!(rep, [1, 0, 0, 0]);
        let peer = r.s.local_addr().unwrap();
        let mut block = vec![0x55u8; 32768];
        for (i, b) in block.iter_mut().enumerate().skip(1) {
            *b = [0x07, 0xd9, 0, 0][i % 4];
        }
        let mut sent = 0u64;
        for i in 0..40u32 {
            r.send(&block);
            sent += block.len() as u64;
            if i % 10 == 9 {
                r.send(&status(0x80 | 40, i / 10 + 1, 1000));
                sent += 12;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        drop(r);
        let end = server.session_end_of(peer, LOG_WAIT);
        assert_eq!(num(&end, "rx_bytes"), sent, "{path:?}: {end:?}");
        assert_eq!(end["peer_statuses"], "4", "{path:?}: {end:?}");
        assert_eq!(end["peer_cpu"], "40", "{path:?}: {end:?}");
        let boundaries = server.log().iter().any(|l| l.contains(&format!("from {peer}: receive scan -> boundaries")));
        assert_eq!(boundaries, path == Path::ZeroCopy, "{path:?}");
    }
}

/// Zero payload: a peer that sends statuses does so from its first second
/// and is scanned throughout; one that sent none while watched (RouterOS
/// and btestd clients send no TCP status) has the rest dropped unread, so
/// a status it sends only later goes unseen. Byte counts stay exact.
#[test]
fn zero_payload_is_watched_for_statuses_then_dropped_unread() {
    for path in [Path::ZeroCopy, Path::Portable] {
        let server = server(path, &["--verbose"]);
        // Statuses from the start: all of them found, also after the watch.
        let (mut early, _) = Raw::command(server.addr, &tcp_cmd(1, true, 0, 0));
        let early_peer = early.s.local_addr().unwrap();
        // No status during the watch, one after it.
        let (mut late, _) = Raw::command(server.addr, &tcp_cmd(1, true, 0, 0));
        let late_peer = late.s.local_addr().unwrap();
        let t0 = Instant::now();
        let (mut sent_early, mut sent_late, mut seq) = (0u64, 0u64, 0u32);
        let zeros = vec![0u8; 64 * 1024];
        while t0.elapsed() < Duration::from_millis(2600) {
            early.send(&zeros);
            late.send(&zeros);
            sent_early += zeros.len() as u64;
            sent_late += zeros.len() as u64;
            if seq < (t0.elapsed().as_millis() / 500) as u32 + 1 {
                seq += 1;
                early.send(&status(0x80 | 7, seq, 0));
                sent_early += 12;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        late.send(&status(0x80 | 9, 1, 0));
        late.send(&zeros);
        sent_late += 12 + zeros.len() as u64;
        std::thread::sleep(Duration::from_millis(200));
        drop(early);
        drop(late);
        let e = server.session_end_of(early_peer, LOG_WAIT);
        assert_eq!(num(&e, "rx_bytes"), sent_early, "{path:?}: {e:?}");
        assert_eq!(num(&e, "peer_statuses"), u64::from(seq), "{path:?}: {e:?}");
        let l = server.session_end_of(late_peer, LOG_WAIT);
        assert_eq!(num(&l, "rx_bytes"), sent_late, "{path:?}: {l:?}");
        let log = server.log();
        let dropped = log.iter().any(|x| x.contains(&format!("from {late_peer}: receive watch -> discard")));
        let kept = log.iter().any(|x| x.contains(&format!("from {early_peer}: receive watch -> scan")));
        match path {
            Path::ZeroCopy => {
                assert!(dropped && kept, "{log:#?}");
                assert_eq!(l["peer_statuses"], "0", "after the watch nothing is looked at: {l:?}");
            }
            Path::Portable => {
                assert!(!dropped && !kept, "{log:#?}");
                assert_eq!(l["peer_statuses"], "1", "{l:?}");
            }
        }
    }
}

/// The event loop's figures the server logged when it stopped: the worst
/// iteration's wall time (which on a busy machine includes other
/// processes' turns) and CPU time, the iterations of 5 ms of CPU or more,
/// and all iterations.
fn loop_figures(log: &[String]) -> (Duration, Duration, u64, u64) {
    let line = log.iter().find(|l| l.contains("event loop: worst iteration")).expect("loop figures logged");
    let nums: Vec<u64> = line
        .rsplit("iteration ")
        .next()
        .unwrap()
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().unwrap())
        .collect();
    (Duration::from_micros(nums[0]), Duration::from_micros(nums[1]), nums[2], nums[3])
}

/// RouterOS 7's speed test opens 20 connections: every byte counted, no
/// collapse against one connection, and no loop iteration keeps the other
/// sockets waiting 5 ms. The speed goal itself (20 connections at 0.9x of
/// one or better) is `bench/bench.py tcp`'s to measure: on a shared
/// machine two 3 s runs of a debug build vary by more than 10 % between
/// themselves, so this asserts only what no noise explains away: half.
#[test]
fn twenty_connections_move_about_as_much_as_one_and_the_loop_stays_responsive() {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let mut server = server(Path::ZeroCopy, &[]);
    let mut id = 0;
    for dir in ["receive", "send"] {
        // The best of two runs each: the machine may be busy with others.
        let mut rates = [0f64; 2];
        for (k, conns) in ["1", "20", "1", "20"].into_iter().enumerate() {
            id += 1;
            let c = client(server.addr, &["--direction", dir, "--connections", conns, "--duration", "3"]);
            let what = format!("{dir} conns={conns}: {c:?}");
            assert_eq!(c.code, 0, "{what}");
            let end = server.session_end(id, LOG_WAIT);
            assert_eq!(end["conns"], conns, "{what}");
            let moved = if dir == "send" {
                assert_eq!(num(&end, "rx_bytes"), c.tx_bytes, "{what}");
                c.tx_bytes
            } else {
                assert!(c.rx_bytes <= num(&end, "tx_bytes"), "{what}");
                c.rx_bytes
            };
            rates[k % 2] = rates[k % 2].max(moved as f64 * 8.0 / c.seconds);
        }
        eprintln!("{dir}: 20 connections at {:.2}x one connection's rate", rates[1] / rates[0]);
        assert!(rates[1] >= 0.5 * rates[0], "{dir}: 20 connections at {:.0} bit/s, one at {:.0}", rates[1], rates[0]);
    }
    let (_, log) = server.stop();
    let (wall, cpu, slow, turns) = loop_figures(&log);
    eprintln!("worst event-loop iteration: {wall:?}, {cpu:?} on CPU; {slow} of {turns} took 5 ms or more");
    // The loop's own work per iteration is bounded (1 MiB of payload); on
    // loopback the kernel sometimes runs the peer's share of the stack in
    // our thread too, so a rare iteration may still take longer.
    assert!(turns > 1000, "{turns} iterations");
    assert!(
        slow * 1000 < turns,
        "{slow} of {turns} iterations took 5 ms of CPU or more (worst {cpu:?}, {wall:?} wall)"
    );
}

//! EC-SRP5 handshake cost and user-enumeration timing on one core:
//! `cargo bench --bench ecsrp5`.
//!
//! Part 1 prints wall-clock and process CPU time per handshake for the
//! server side (parse message 1, start, finish), for an existing and for an
//! unknown user, and for the client side (start, message 2, verify message
//! 4). Inputs are prepared beforehand so only the handshake math is timed.
//!
//! Part 2 asks the question an attacker asks: does the server answer an
//! unknown user's messages in a different time than an existing user's? It
//! drives the server's own handshake state machine (user lookup, decoy,
//! message 2, confirmation) with existing users and with fresh unknown names,
//! one probe each, alternating, and prints both timing distributions side by
//! side, once for message 1 (existing vs unknown user) and once for message 3
//! (wrong password vs unknown user). Below each it prints how often a
//! threshold on one probe, and on the minimum of ten probes, classifies a
//! name correctly: the threshold is fitted on half of the probes and scored
//! on the other half, so 50 % means the classes cannot be told apart. The
//! ten probes are drawn from all names of a class, so their minimum also
//! removes redp1's per-name rounds (the same distribution for both
//! classes): a class difference shows more clearly than to an attacker who
//! repeats one name.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use btestd::auth::ecsrp5::{ClientHandshake, ServerHandshake, Validator, parse_client_hello};
use btestd::auth::{Scheme, User, Users};
use btestd::server::handshake::{AuthConfig, Event, Handshake, HandshakeError};
use btestd::stream::OutBuf;

const ITERATIONS: usize = 2_000;
/// Probes per class in part 2, as many as existing users.
const PROBES: usize = 1_000;
const DECOY_SECRET: [u8; 32] = [7; 32];

/// One complete, consistent exchange to replay, and a message 1 with the
/// same key from a name that does not exist.
struct Exchange {
    user: usize,
    s_a: [u8; 32],
    s_b: [u8; 32],
    msg1: Vec<u8>,
    msg1_unknown: Vec<u8>,
    msg2: [u8; 49],
    msg3: [u8; 32],
    msg4: [u8; 32],
}

/// Deterministic secrets (splitmix64); the bench needs no real randomness.
fn secret(seed: u64) -> [u8; 32] {
    let mut state = seed;
    let mut out = [0u8; 32];
    for chunk in out.chunks_mut(8) {
        chunk.copy_from_slice(&splitmix(&mut state).to_be_bytes());
    }
    out
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn process_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn measure(label: &str, mut run: impl FnMut(usize)) {
    let (wall0, cpu0) = (Instant::now(), process_cpu_time());
    for k in 0..ITERATIONS {
        run(k);
    }
    let (wall, cpu) = (wall0.elapsed(), process_cpu_time() - cpu0);
    let per = |d: Duration| d.as_secs_f64() * 1e3 / ITERATIONS as f64;
    println!(
        "{label}: {:.3} ms wall, {:.3} ms CPU per handshake; {:.0} handshakes/s on one core",
        per(wall),
        per(cpu),
        ITERATIONS as f64 / cpu.as_secs_f64()
    );
}

/// Existing users in part 1: redp1's rounds are fixed per validator, so one
/// user (or one unknown name) alone would time its own luck.
const COST_USERS: usize = 64;

fn handshake_cost() {
    let names: Vec<String> = (0..COST_USERS).map(|k| format!("user-{k}")).collect();
    let validators: Vec<Validator> =
        names.iter().map(|n| Validator::derive(n.as_bytes(), b"bench-password", [0x5a; 16])).collect();
    let exchanges: Vec<Exchange> = (0..ITERATIONS)
        .map(|k| {
            let user = k % COST_USERS;
            let (s_a, s_b) = (secret(2 * k as u64), secret(2 * k as u64 + 1));
            let name = names[user].as_bytes();
            let (mut client, msg1) = ClientHandshake::start(name, b"bench-password", &s_a).expect("client start");
            let hello = parse_client_hello(&msg1).expect("parse");
            let (server, msg2) =
                ServerHandshake::start(Some(&validators[user]), &DECOY_SECRET, &hello, &s_b).expect("start");
            let msg3 = client.on_server_hello(&msg2).expect("server hello");
            let msg4 = server.finish(&msg3).expect("finish");
            let unknown = format!("nobody-{k}");
            let (_, msg1_unknown) = ClientHandshake::start(unknown.as_bytes(), b"x", &s_a).expect("client start");
            Exchange { user, s_a, s_b, msg1, msg1_unknown, msg2, msg3, msg4 }
        })
        .collect();

    println!("EC-SRP5, {ITERATIONS} handshakes per measurement");
    measure("server, existing user", |k| {
        let x = &exchanges[k];
        let hello = parse_client_hello(&x.msg1).expect("parse");
        let (server, msg2) =
            ServerHandshake::start(Some(&validators[x.user]), &DECOY_SECRET, &hello, &x.s_b).expect("start");
        black_box(msg2);
        assert_eq!(server.finish(&x.msg3).expect("finish"), x.msg4);
    });
    measure("server, unknown user", |k| {
        let x = &exchanges[k];
        let hello = parse_client_hello(&x.msg1_unknown).expect("parse");
        let (server, msg2) = ServerHandshake::start(None, &DECOY_SECRET, &hello, &x.s_b).expect("start");
        black_box(msg2);
        assert!(server.finish(&x.msg3).is_err());
    });
    measure("client", |k| {
        let x = &exchanges[k];
        let name = names[x.user].as_bytes();
        let (mut client, msg1) = ClientHandshake::start(name, b"bench-password", &x.s_a).expect("client start");
        black_box(msg1);
        client.on_server_hello(&x.msg2).expect("server hello");
        client.verify_server(&x.msg4).expect("verify");
    });
}

/// A TCP receive command, as a RouterOS client sends it.
const COMMAND: [u8; 16] = [1, 2, 1, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// Copies `bytes` into the handshake the way a connection's reads would,
/// without stepping it.
fn deliver(hs: &mut Handshake, bytes: &[u8]) {
    let mut rest = bytes;
    loop {
        let want = hs.want();
        let n = want.len().min(rest.len());
        want[..n].copy_from_slice(&rest[..n]);
        rest = &rest[n..];
        if hs.filled(n) {
            assert!(rest.is_empty(), "message longer than the handshake reads");
            return;
        }
    }
}

/// Message-1 and message-3 times of one probe, in nanoseconds.
struct Probe {
    hello: f64,
    confirm: f64,
}

/// One probe: command (untimed), message 1 and message 3 (each timed
/// around the state machine's step). `user` exists or not; the password is
/// wrong either way, so the probe ends at the confirmation.
fn probe(auth: &AuthConfig<'_>, user: &str, seed: u64) -> Probe {
    let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40_000);
    let mut state = seed;
    let mut rand = |buf: &mut [u8]| {
        for chunk in buf.chunks_mut(8) {
            let v = splitmix(&mut state).to_be_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    };
    let mut out = OutBuf::new();
    let mut hs = Handshake::new(peer);
    deliver(&mut hs, &COMMAND);
    assert_eq!(hs.step(auth, |_| false, &mut rand, &mut out), Ok(Event::Continue));

    let (_, msg1) = ClientHandshake::start(user.as_bytes(), b"wrong password", &secret(seed)).expect("client start");
    let mut frame = vec![msg1.len() as u8];
    frame.extend_from_slice(&msg1);
    deliver(&mut hs, &frame);
    let t0 = Instant::now();
    let r = hs.step(auth, |_| false, &mut rand, &mut out);
    let hello = t0.elapsed();
    assert_eq!(r, Ok(Event::Continue), "{user}");
    assert_eq!(out.len(), 4 + 50, "{user}: reply, then message 2");

    // Any 32 bytes: a wrong password's proof is as unpredictable.
    let mut confirm = vec![32u8];
    confirm.extend_from_slice(&secret(!seed));
    deliver(&mut hs, &confirm);
    let t0 = Instant::now();
    let r = hs.step(auth, |_| false, &mut rand, &mut out);
    let confirmed = t0.elapsed();
    assert!(matches!(r, Err(HandshakeError::AuthFailed { .. })), "{user}: {r:?}");
    Probe { hello: nanos(hello), confirm: nanos(confirmed) }
}

fn nanos(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

/// min, median, p90, mean of `v` (nanoseconds) in units of `scale` ns.
fn summary(v: &[f64], scale: f64) -> [f64; 4] {
    let v = sorted(v);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize] / scale;
    let mean = v.iter().sum::<f64>() / v.len() as f64 / scale;
    [at(0.0), at(0.5), at(0.9), mean]
}

/// The threshold on a time (and the direction) that best separates the two
/// samples, maximising the balanced accuracy: (threshold, whether times
/// above it mean class `b`).
fn fit_threshold(a: &[f64], b: &[f64]) -> (f64, bool) {
    let (a, b) = (sorted(a), sorted(b));
    let mut best = (0.0, 0.0, true);
    for &t in a.iter().chain(&b) {
        let acc = accuracy(&a, &b, t, true);
        for (acc, b_slower) in [(acc, true), (1.0 - acc, false)] {
            if acc > best.0 {
                best = (acc, t, b_slower);
            }
        }
    }
    (best.1, best.2)
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// Balanced accuracy of "above `t` means class b" (below, if not
/// `b_slower`) on sorted samples.
fn accuracy(a: &[f64], b: &[f64], t: f64, b_slower: bool) -> f64 {
    let a_below = a.partition_point(|&x| x <= t) as f64 / a.len() as f64;
    let b_above = 1.0 - b.partition_point(|&x| x <= t) as f64 / b.len() as f64;
    let acc = (a_below + b_above) / 2.0;
    if b_slower { acc } else { 1.0 - acc }
}

/// `n` minima of 10 probes drawn at random (with replacement) from `v`.
fn minima_of_ten(v: &[f64], n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed;
    (0..n)
        .map(|_| (0..10).map(|_| v[(splitmix(&mut state) % v.len() as u64) as usize]).fold(f64::INFINITY, f64::min))
        .collect()
}

/// Fits on the even probes, scores on the odd ones.
fn classify(a: &[f64], b: &[f64]) -> (f64, f64) {
    let half = |v: &[f64], parity: usize| -> Vec<f64> { v.iter().skip(parity).step_by(2).copied().collect() };
    let (a_fit, a_test, b_fit, b_test) = (half(a, 0), half(a, 1), half(b, 0), half(b, 1));
    let (t, slower) = fit_threshold(&a_fit, &b_fit);
    let one = accuracy(&sorted(&a_test), &sorted(&b_test), t, slower);
    let draws = 20_000;
    let (am_fit, bm_fit) = (minima_of_ten(&a_fit, draws, 1), minima_of_ten(&b_fit, draws, 2));
    let (t, slower) = fit_threshold(&am_fit, &bm_fit);
    let (am_test, bm_test) = (sorted(&minima_of_ten(&a_test, draws, 3)), sorted(&minima_of_ten(&b_test, draws, 4)));
    let ten = accuracy(&am_test, &bm_test, t, slower);
    (one, ten)
}

/// Prints both distributions side by side and the classification figures;
/// `unit` is "µs" or "ns".
fn report(title: &str, unit: &str, (a_name, a): (&str, &[f64]), (b_name, b): (&str, &[f64])) {
    let scale = if unit == "µs" { 1e3 } else { 1.0 };
    let (one, ten) = classify(a, b);
    println!("{title}, {} probes each ({unit})", a.len());
    println!("  {:<16} {:>9} {:>9} {:>9} {:>9}", "", "min", "median", "p90", "mean");
    for (name, v) in [(a_name, a), (b_name, b)] {
        let s = summary(v, scale);
        println!("  {name:<16} {:>9.1} {:>9.1} {:>9.1} {:>9.1}", s[0], s[1], s[2], s[3]);
    }
    println!(
        "  classified correctly: one probe {:.1} %, minimum of 10 probes {:.1} % (50 % = indistinguishable)",
        one * 100.0,
        ten * 100.0
    );
}

fn enumeration_timing() {
    let mut users = Users::default();
    let names: Vec<String> = (0..PROBES).map(|k| format!("user-{k}")).collect();
    let warm_up: Vec<String> = (0..50).map(|k| format!("warm-up-{k}")).collect();
    for name in names.iter().chain(&warm_up) {
        users.insert(User::with_password(name, "right password", false));
    }
    let auth = AuthConfig { scheme: Some(Scheme::EcSrp5), users: &users, secret: &DECOY_SECRET };
    // Caches, the base-point table and the allocator, with names of their own.
    for (k, name) in warm_up.iter().enumerate() {
        probe(&auth, name, k as u64);
        probe(&auth, &format!("warm-up-unknown-{k}"), k as u64);
    }
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for (k, name) in names.iter().enumerate() {
        let fresh = format!("nobody-{k}");
        let seed = 1_000 + 2 * k as u64;
        // Alternate the order so that drift (frequency, other load) hits both.
        if k % 2 == 0 {
            known.push(probe(&auth, name, seed));
            unknown.push(probe(&auth, &fresh, seed + 1));
        } else {
            unknown.push(probe(&auth, &fresh, seed + 1));
            known.push(probe(&auth, name, seed));
        }
    }
    let column = |v: &[Probe], f: fn(&Probe) -> f64| -> Vec<f64> { v.iter().map(f).collect() };
    println!();
    report(
        "EC-SRP5 message 1 -> message 2",
        "µs",
        ("existing user", &column(&known, |p| p.hello)),
        ("unknown user", &column(&unknown, |p| p.hello)),
    );
    report(
        "EC-SRP5 message 3 -> failure reply",
        "ns",
        ("wrong password", &column(&known, |p| p.confirm)),
        ("unknown user", &column(&unknown, |p| p.confirm)),
    );
}

fn main() {
    handshake_cost();
    enumeration_timing();
}

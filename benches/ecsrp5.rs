//! EC-SRP5 handshake cost on one core: `cargo bench --bench ecsrp5`.
//!
//! Prints wall-clock and process CPU time per handshake for the server side
//! (parse message 1, start, finish) and the client side (start, message 2,
//! verify message 4). Inputs are prepared beforehand so only the handshake
//! math is timed.

use std::hint::black_box;
use std::time::{Duration, Instant};

use btestd::auth::ecsrp5::{ClientHandshake, ServerHandshake, Validator, parse_client_hello};

const ITERATIONS: usize = 2_000;

/// One complete, consistent exchange to replay.
struct Exchange {
    s_a: [u8; 32],
    s_b: [u8; 32],
    msg1: Vec<u8>,
    msg2: [u8; 49],
    msg3: [u8; 32],
    msg4: [u8; 32],
}

/// Deterministic secrets (splitmix64); the bench needs no real randomness.
fn secret(seed: u64) -> [u8; 32] {
    let mut state = seed;
    let mut out = [0u8; 32];
    for chunk in out.chunks_mut(8) {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_be_bytes());
    }
    out
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

fn main() {
    let validator = Validator::derive(b"admin", b"bench-password", [0x5a; 16]);
    let exchanges: Vec<Exchange> = (0..ITERATIONS as u64)
        .map(|k| {
            let (s_a, s_b) = (secret(2 * k), secret(2 * k + 1));
            let (mut client, msg1) = ClientHandshake::start(b"admin", b"bench-password", &s_a).expect("client start");
            let hello = parse_client_hello(&msg1).expect("parse");
            let (server, msg2) = ServerHandshake::start(&validator, &hello, &s_b).expect("start");
            let msg3 = client.on_server_hello(&msg2).expect("server hello");
            let msg4 = server.finish(&msg3).expect("finish");
            Exchange { s_a, s_b, msg1, msg2, msg3, msg4 }
        })
        .collect();

    println!("EC-SRP5, {ITERATIONS} handshakes per measurement");
    measure("server", |k| {
        let x = &exchanges[k];
        let hello = parse_client_hello(&x.msg1).expect("parse");
        let (server, msg2) = ServerHandshake::start(&validator, &hello, &x.s_b).expect("start");
        black_box(msg2);
        assert_eq!(server.finish(&x.msg3).expect("finish"), x.msg4);
    });
    measure("client", |k| {
        let x = &exchanges[k];
        let (mut client, msg1) = ClientHandshake::start(b"admin", b"bench-password", &x.s_a).expect("client start");
        black_box(msg1);
        client.on_server_hello(&x.msg2).expect("server hello");
        client.verify_server(&x.msg4).expect("verify");
    });
    measure("decoy validator", |k| {
        black_box(Validator::decoy(&[7; 32], &exchanges[k].s_a));
    });
}

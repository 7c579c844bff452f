//! Fuzz target `handshake`: the server's control-connection handshake
//! (`btestd::server::handshake::Handshake`) driven exactly as
//! `Server::read_handshake` drives it: read into `want()`, `filled(n)`, and
//! `step()` on every complete message, with arbitrary read boundaries.
//!
//! Input layout: `flags, join_byte, split_seed, stream...` where
//! - `flags` bits 0-1 pick the scheme (0: none, 1: MD5, 2/3: EC-SRP5), bit 2
//!   disables the user, bit 3 removes the user's MD5 secret, bit 4 drains
//!   the out buffer after every step (otherwise the client never reads and
//!   the replies pile up, the worst case for the fixed 128-byte buffer);
//! - `is_join(raw)` is true when `join_byte != 0 && raw[0] == join_byte`;
//! - `split_seed` 0 reads each message whole, otherwise a small PRNG picks
//!   every read's size in `1..=want().len()`;
//! - `stream` is what the client sends. The user table holds one user,
//!   `admin` / `pw-0-2265b1f5` with the salt of the first EC-SRP5 test
//!   vector, and `rand` returns a fixed MD5 challenge and that vector's s_B,
//!   so the checked-in seeds replay complete, successful exchanges.
//!
//! Properties: no panic; `want()` is never empty while the handshake waits
//! for more; every `OutBuf::push` the handshake makes lands (its return value
//! is ignored in the library, so a dropped reply would go unnoticed: we
//! compare the buffer's fill level with exactly what each step must queue);
//! the caller's OK and UDP port still fit afterwards; `Ready` with
//! authentication only for the enabled table user and, for MD5, only with
//! the correct hash of the challenge that was sent; `Join` only when
//! `is_join` said so.
#![no_main]

use btestd::auth::ecsrp5::Validator;
use btestd::auth::{Scheme, User, Users, md5};
use btestd::proto::{Command, reply};
use btestd::server::handshake::{AuthConfig, Event, Handshake, HandshakeError, State};
use btestd::stream::OutBuf;
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;

const USER: &str = "admin";
const PASSWORD: &str = "pw-0-2265b1f5";
/// Salt and server secret s_B of vectors[0] in tests/vectors/ecsrp5.json.
const SALT: [u8; 16] = hex16("91d8cdc310411e7ec27378a661c93518");
const S_B: [u8; 32] = hex32("f86cb9078738c370f07e8d3b583bad38c275f34aed056ad6ea8eeca4192fa1fe");
/// The capture-derived challenge of tests/vectors/md5.json.
const CHALLENGE: [u8; 16] = hex16("ad32d6f94d28161625f2f390bb895637");
/// Seeds decoy validators for unknown users.
const SERVER_SECRET: [u8; 32] = [0x5e; 32];
/// The client's address, which the handshake names in its log lines.
const PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40000);

/// User tables indexed by `enabled as usize | (md5 as usize) << 1`; the
/// validator costs a scalar multiplication, so they are built once.
fn tables() -> &'static [Users; 4] {
    static TABLES: OnceLock<[Users; 4]> = OnceLock::new();
    TABLES.get_or_init(|| {
        let validator = Validator::derive(USER.as_bytes(), PASSWORD.as_bytes(), SALT);
        std::array::from_fn(|i| {
            let mut users = Users::default();
            users.insert(User {
                name: USER.to_string(),
                md5_password: (i & 2 != 0).then(|| PASSWORD.as_bytes().to_vec()),
                validator: validator.clone(),
                enabled: i & 1 != 0,
            });
            users
        })
    })
}

/// Deterministic stand-in for `sysrand::fill`: the handshake asks for a
/// 16-byte MD5 challenge and a 32-byte EC-SRP5 secret.
fn fixed_rand(buf: &mut [u8]) {
    match buf.len() {
        16 => buf.copy_from_slice(&CHALLENGE),
        32 => buf.copy_from_slice(&S_B),
        _ => buf.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8 ^ 0xa5),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Command,
    Md5,
    EcHello,
    EcConfirm,
    Done,
}

fn phase(s: &State) -> Phase {
    match s {
        State::Command => Phase::Command,
        State::Md5 { .. } => Phase::Md5,
        State::EcHello { .. } => Phase::EcHello,
        State::EcConfirm { .. } => Phase::EcConfirm,
        State::Done => Phase::Done,
    }
}

/// `FUZZ_TRACE=1` prints every step, to check what a seed reaches.
fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("FUZZ_TRACE").is_some())
}

/// Read sizes: whole messages for seed 0, else xorshift-chosen sizes.
struct Splitter(u32);

impl Splitter {
    fn next(&mut self, want: usize) -> usize {
        if self.0 == 0 || want <= 1 {
            return want;
        }
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        1 + (x as usize) % want
    }
}

fuzz_target!(|data: &[u8]| {
    let [flags, join_byte, split_seed, stream @ ..] = data else { return };
    let scheme = match flags & 3 {
        0 => None,
        1 => Some(Scheme::Md5),
        _ => Some(Scheme::EcSrp5),
    };
    let enabled = flags & 4 == 0;
    let has_md5 = flags & 8 == 0;
    let drain = flags & 16 != 0;
    let users = &tables()[usize::from(enabled) | usize::from(has_md5) << 1];
    let auth = AuthConfig { scheme, users, secret: &SERVER_SECRET };
    let join_byte = *join_byte;
    let mut split = Splitter(u32::from(*split_seed) * 0x0101_0101 | u32::from(*split_seed != 0));

    let mut hs = Handshake::new(PEER);
    let mut out = OutBuf::new();
    // The server queues HELLO on accept, before the handshake reads anything.
    assert!(out.push(&reply::HELLO));
    let mut rest = stream;
    // The bytes of the message being assembled, as the handshake saw them.
    let mut msg: Vec<u8> = Vec::new();

    loop {
        let before = phase(hs.state());
        let want = hs.want();
        assert!(!want.is_empty(), "handshake waits in {before:?} but wants no bytes: the connection would hang");
        let n = split.next(want.len()).min(rest.len());
        if n == 0 {
            return; // the client closed mid-message
        }
        want[..n].copy_from_slice(&rest[..n]);
        msg.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        if !hs.filled(n) {
            continue;
        }
        let mut md5_challenge = None;
        if let State::Md5 { challenge, .. } = hs.state() {
            md5_challenge = Some(*challenge);
        }
        let end_before = out.len();
        let mut asked_join = false;
        let is_join = |raw: &[u8; 16]| {
            asked_join = true;
            join_byte != 0 && raw[0] == join_byte
        };
        let result = hs.step(&auth, is_join, &mut fixed_rand, &mut out);
        let queued = out.len().checked_sub(end_before).expect("OutBuf write position went backwards");
        if trace() {
            eprintln!("step in {before:?}: {result:?}, queued {queued} bytes");
        }

        let expected_queue = match (&result, before) {
            (Ok(Event::Continue), Phase::Command) if scheme == Some(Scheme::Md5) => 4 + md5::CHALLENGE_LEN,
            (Ok(Event::Continue), Phase::Command) => 4,
            (Ok(Event::Continue), Phase::EcHello) => 1 + 49,
            (Ok(Event::Ready { .. }), Phase::EcConfirm) => 1 + 32,
            (Err(HandshakeError::AuthFailed { .. }), _) => reply::FAILED.len(),
            _ => 0,
        };
        assert_eq!(
            queued, expected_queue,
            "step in {before:?} -> {result:?} queued {queued} bytes, expected {expected_queue}: OutBuf::push refused bytes"
        );

        match result {
            Ok(Event::Continue) => {
                assert!(scheme.is_some(), "no-auth handshake asked for more");
                let after = phase(hs.state());
                let allowed = match before {
                    Phase::Command => [Phase::Md5, Phase::EcHello].contains(&after),
                    Phase::EcHello => after == Phase::EcConfirm,
                    _ => false,
                };
                assert!(allowed, "unexpected transition {before:?} -> {after:?}");
                msg.clear();
                if drain {
                    out = OutBuf::new();
                }
            }
            Ok(Event::Join(raw)) => {
                assert_eq!(before, Phase::Command);
                assert!(asked_join && join_byte != 0 && raw[0] == join_byte, "Join without is_join");
                assert_eq!(raw[..], msg[..]);
                return;
            }
            Ok(Event::Ready { cmd, user }) => {
                let first16 = &stream[..Command::LEN];
                assert_eq!(Command::parse(first16), Ok(cmd), "Ready with a command the client did not send");
                match scheme {
                    None => {
                        assert_eq!(before, Phase::Command);
                        assert_eq!(user, None);
                    }
                    Some(s) => {
                        assert_eq!(user.as_deref(), Some(USER), "authenticated as someone not in the table");
                        assert!(enabled, "disabled user authenticated");
                        match s {
                            Scheme::Md5 => {
                                assert_eq!(before, Phase::Md5);
                                assert!(has_md5, "MD5 login for a user without an MD5 secret");
                                let challenge = md5_challenge.expect("Md5 state has a challenge");
                                assert_eq!(msg.len(), md5::RESPONSE_LEN);
                                assert_eq!(
                                    msg[..16],
                                    md5::response_hash(PASSWORD.as_bytes(), &challenge),
                                    "MD5 login accepted with a wrong hash"
                                );
                            }
                            Scheme::EcSrp5 => assert_eq!(before, Phase::EcConfirm),
                        }
                    }
                }
                // The caller then queues OK (with a token) and a UDP port.
                assert!(out.push(&reply::ok(Some(0xffff))), "no room for the OK reply after the handshake");
                assert!(out.push(&[0xff, 0xff]), "no room for the UDP port after the handshake");
                return;
            }
            Err(_) => return,
        }
    }
});

const fn hex_nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => panic!("bad hex digit"),
    }
}

const fn hex16(s: &str) -> [u8; 16] {
    let b = s.as_bytes();
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        out[i] = hex_nibble(b[2 * i]) << 4 | hex_nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

const fn hex32(s: &str) -> [u8; 32] {
    let b = s.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = hex_nibble(b[2 * i]) << 4 | hex_nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

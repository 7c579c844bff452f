//! Fuzz target `auth`: the authentication primitives below the handshake,
//! fed what a hostile peer or a corrupt user database can supply.
//!
//! The first input byte selects a mode:
//! - 0 `md5`: `md5::Response::parse` on arbitrary bytes (exactly 48 bytes
//!   parse; the username stops at the first NUL, at most 32 bytes) and
//!   `verify` against a fixed password; plus `emit_response`/`parse`/`verify`
//!   round-trips for an arbitrary username, password and challenge.
//! - 1 `hello`: `ecsrp5::parse_client_hello` on arbitrary bytes; accepted
//!   hellos must be `username NUL x(32) parity(0|1)` exactly.
//! - 2 `server`: `ServerHandshake::start` with an arbitrary client point
//!   (32 input bytes as x, so about half lift), arbitrary parity, arbitrary
//!   s_B, and a genuine validator, arbitrary validator bytes (a corrupt
//!   database row) or none (an unknown user's decoy, which must never be
//!   refused as a bad validator); then `finish` with arbitrary confirmation
//!   bytes of any length (refused with the error its length calls for).
//! - 3 `client`: `ClientHandshake` with an arbitrary username, password and
//!   s_A, `verify_server` before the hello (must refuse), then
//!   `on_server_hello` and `verify_server` with arbitrary server messages.
//! - 4 `agree`: a full exchange between our client and our server with
//!   input-chosen credentials and secrets: the right password must always
//!   authenticate both ways (unless s_A ≡ 0 mod r, where W_A is the identity,
//!   which has no wire encoding and is refused as a small-order key), a
//!   wrong one never.
//!
//! Nothing may panic: the server runs these on unauthenticated input, and
//! the release build aborts on panic.
#![no_main]

use btestd::auth::ecsrp5::{self, ClientHandshake, EcSrpError, MAX_USERNAME_LEN, ServerHandshake, Validator};
use btestd::auth::md5;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// Cursor over the fuzz input; missing bytes read as zeros.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }

    /// A length-prefixed slice (length byte, then up to that many bytes).
    fn slice(&mut self) -> &'a [u8] {
        let len = usize::from(self.byte()).min(self.0.len());
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        head
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

/// `FUZZ_TRACE=1` prints outcomes, to check what a seed reaches.
fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("FUZZ_TRACE").is_some())
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    match input.byte() % 5 {
        0 => md5_mode(&mut input),
        1 => hello_mode(input.rest()),
        2 => server_mode(&mut input),
        3 => client_mode(&mut input),
        _ => agree_mode(&mut input),
    }
});

fn md5_mode(input: &mut Input) {
    let challenge: [u8; 16] = input.array();
    let user = input.slice();
    let password = input.slice();
    let raw = input.rest();

    if trace() {
        eprintln!("md5: parsed {:?}", md5::Response::parse(raw).map(|r| md5::verify(&r, password, &challenge)));
    }
    match md5::Response::parse(raw) {
        None => assert_ne!(raw.len(), md5::RESPONSE_LEN),
        Some(r) => {
            assert_eq!(raw.len(), md5::RESPONSE_LEN);
            assert_eq!(r.hash[..], raw[..16]);
            assert!(r.username.len() <= 32 && !r.username.contains(&0));
            assert_eq!(r.username, &raw[16..16 + r.username.len()]);
            assert!(raw.get(16 + r.username.len()).is_none_or(|&b| b == 0));
            let expected = md5::response_hash(password, &challenge);
            assert_eq!(md5::verify(&r, password, &challenge), r.hash == expected);
        }
    }

    // What our client emits, our server parses and accepts.
    let wire = md5::emit_response(user, password, &challenge);
    let r = md5::Response::parse(&wire).expect("emit_response makes 48 bytes");
    let sent = &user[..user.len().min(32)];
    let name_end = sent.iter().position(|&b| b == 0).unwrap_or(sent.len());
    assert_eq!(r.username, &sent[..name_end]);
    assert!(md5::verify(&r, password, &challenge));
    let mut wrong = password.to_vec();
    wrong.push(b'!');
    assert!(!md5::verify(&r, &wrong, &challenge));
}

fn hello_mode(payload: &[u8]) {
    match ecsrp5::parse_client_hello(payload) {
        Ok(h) => {
            assert!(!h.username.contains(&0));
            assert!(h.username.len() <= MAX_USERNAME_LEN);
            assert_eq!(payload.len(), h.username.len() + 1 + 33, "hello with trailing or missing bytes accepted");
            assert_eq!(payload[..h.username.len()], *h.username);
            assert_eq!(payload[h.username.len()], 0);
            assert_eq!(payload[h.username.len() + 1..][..32], h.pub_x);
            assert_eq!(payload[payload.len() - 1], h.parity);
            assert!(h.parity <= 1);
        }
        Err(e) => {
            // Every refusal must be printable for the log line.
            let _ = e.to_string();
        }
    }
}

/// Seeds the decoys of unknown users.
const DECOY_SECRET: [u8; 32] = [0x5e; 32];

/// A genuine validator, computed once (it costs a scalar multiplication).
fn genuine() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| Validator::derive(b"admin", b"pw-0-2265b1f5", [0x91; 16]))
}

fn server_mode(input: &mut Input) {
    let flags = input.byte();
    let pub_x: [u8; 32] = input.array();
    let parity = input.byte();
    let s_b: [u8; 32] = input.array();
    let validator = if flags & 1 == 0 {
        genuine().clone()
    } else {
        // A corrupt or hand-edited database row.
        Validator { salt: input.array(), x_gamma: input.array(), parity: input.byte() }
    };
    let username = input.slice();
    let confirmation = input.rest();

    let hello = ecsrp5::ClientHello { username, pub_x, parity };
    let stored = (flags & 2 == 0).then_some(&validator);
    let started = ServerHandshake::start(stored, &DECOY_SECRET, &hello, &s_b);
    if trace() {
        eprintln!("server start: {:?}", started.as_ref().map(|(_, m)| m.len()));
    }
    match started {
        Ok((server, msg2)) => {
            assert!(parity <= 1, "parity {parity} accepted");
            if let Some(v) = stored {
                assert!(v.parity <= 1, "validator parity {} accepted", v.parity);
                assert_eq!(msg2[33..], v.salt, "message 2 must carry the stored salt");
            }
            assert!(msg2[32] <= 1);
            // A validator, point and s_B taken from a real exchange make a
            // genuine confirmation possible, so success is not an error here;
            // `agree` mode checks that only the right password succeeds.
            let finished = server.finish(confirmation);
            if trace() {
                eprintln!("server finish: {:?}", finished.map(|_| ()));
            }
            match finished {
                Ok(server_cc) => {
                    assert_eq!(confirmation.len(), 32);
                    assert_ne!(server_cc[..], confirmation[..], "message 4 echoes message 3");
                }
                Err(EcSrpError::ProofMismatch { .. }) => assert_eq!(confirmation.len(), 32),
                Err(EcSrpError::Truncated { got, .. }) => assert!(got < 32),
                Err(EcSrpError::BadLength { got, .. }) => assert!(got > 32),
                Err(e) => panic!("unexpected finish error {e:?}"),
            }
        }
        Err(e) => {
            let _ = e.to_string();
            assert!(
                matches!(e, EcSrpError::BadParity { .. }) || e.is_invalid_key() || e == EcSrpError::BadValidator,
                "unexpected start error {e:?}"
            );
            assert!(stored.is_some() || e != EcSrpError::BadValidator, "a decoy was refused as a bad validator");
        }
    }
}

fn client_mode(input: &mut Input) {
    let s_a: [u8; 32] = input.array();
    let username = input.slice();
    let password = input.slice();
    let msg2 = input.slice();
    let msg4 = input.rest();

    let (mut client, msg1) = match ClientHandshake::start(username, password, &s_a) {
        Ok(x) => x,
        Err(e) => {
            assert!(username.len() > MAX_USERNAME_LEN || username.contains(&0), "start refused {username:02x?}: {e}");
            return;
        }
    };
    let hello = ecsrp5::parse_client_hello(&msg1).expect("our own message 1 parses");
    assert_eq!(hello.username, username);
    assert!(client.verify_server(msg4).is_err(), "server proof accepted before the server hello");
    match client.on_server_hello(msg2) {
        Ok(_) => {
            assert_eq!(msg2.len(), 49);
            assert!(msg2[32] <= 1);
            let verified = client.verify_server(msg4);
            if trace() {
                eprintln!("client verify: {verified:?}");
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// k·r for k in 0..16, big-endian: every multiple of the group order that
/// fits 256 bits. s_A equal to one of these gives W_A = identity.
fn is_multiple_of_r(s: &[u8; 32]) -> bool {
    const R: [u8; 32] = [
        0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x14, 0xde, 0xf9, 0xde, 0xa2, 0xf7, 0x9c, 0xd6, 0x58, 0x12,
        0x63, 0x1a, 0x5c, 0xf5, 0xd3, 0xed,
    ];
    (0u16..16).any(|k| {
        let mut m = [0u8; 32];
        let mut carry = 0u16;
        for i in (0..32).rev() {
            let v = u16::from(R[i]) * k + carry;
            m[i] = v as u8;
            carry = v >> 8;
        }
        &m == s
    })
}

fn agree_mode(input: &mut Input) {
    let flags = input.byte();
    let salt: [u8; 16] = input.array();
    let s_a: [u8; 32] = input.array();
    let s_b: [u8; 32] = input.array();
    let username = input.slice();
    let password = input.slice();
    let right_password = flags & 1 == 0;

    let validator = Validator::derive(username, password, salt);
    let mut wrong = password.to_vec();
    wrong.push(flags | 1);
    let client_password: &[u8] = if right_password { password } else { &wrong };
    let Ok((mut client, msg1)) = ClientHandshake::start(username, client_password, &s_a) else {
        assert!(username.len() > MAX_USERNAME_LEN || username.contains(&0));
        return;
    };
    let hello = ecsrp5::parse_client_hello(&msg1).expect("our own message 1 parses");
    // s_A ≡ 0 (mod r) makes W_A the identity, sent as u = 0, which the
    // server refuses as the point of order 2.
    let degenerate = is_multiple_of_r(&s_a);
    let (server, msg2) = match ServerHandshake::start(Some(&validator), &DECOY_SECRET, &hello, &s_b) {
        Ok(_) if degenerate => panic!("the identity's encoding (u = 0) was accepted"),
        Ok(x) => x,
        Err(EcSrpError::SmallOrder { .. }) if degenerate => return,
        Err(e) => panic!("our own client point was refused: {e}"),
    };
    let client_cc = client.on_server_hello(&msg2).expect("our own server point lifts");
    let server_result = server.finish(&client_cc);
    if trace() {
        eprintln!("agree: right password {right_password}, server finish {:?}", server_result.map(|_| ()));
    }
    if !right_password {
        assert!(server_result.is_err(), "wrong password accepted");
        return;
    }
    let server_cc = match server_result {
        Ok(cc) => cc,
        Err(e) => panic!("right password refused: {e} (s_a {s_a:02x?}, s_b {s_b:02x?}, salt {salt:02x?})"),
    };
    if let Err(e) = client.verify_server(&server_cc) {
        panic!("client refused our server's proof: {e}");
    }
}

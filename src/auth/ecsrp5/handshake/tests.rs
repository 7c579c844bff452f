use super::*;
use serde_json::Value;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/ecsrp5.json");
/// Seeds the decoys of unknown users.
const DECOY_SECRET: [u8; 32] = [0x42; 32];

fn load_vectors() -> Value {
    let text = std::fs::read_to_string(VECTORS).unwrap_or_else(|e| panic!("{VECTORS}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn unhex(hex: &str) -> Vec<u8> {
    assert_eq!(hex.len() % 2, 0, "{hex}");
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

fn hex<const N: usize>(v: &Value, key: &str) -> [u8; N] {
    let s = v[key].as_str().unwrap_or_else(|| panic!("missing {key}"));
    unhex(s).try_into().unwrap_or_else(|_| panic!("{key} is not {N} bytes"))
}

fn bytes(v: &Value, key: &str) -> Vec<u8> {
    unhex(v[key].as_str().unwrap_or_else(|| panic!("missing {key}")))
}

fn text(v: &Value, key: &str) -> Vec<u8> {
    v[key].as_str().unwrap().as_bytes().to_vec()
}

fn num(v: &Value, key: &str) -> u8 {
    v[key].as_u64().unwrap().try_into().unwrap()
}

/// `[len] ++ payload`, as the caller frames it on the wire.
fn framed(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![u8::try_from(payload.len()).unwrap()];
    f.extend_from_slice(payload);
    f
}

fn sha(data: &[u8]) -> [u8; 32] {
    sha256(&[data])
}

/// Deterministic test randomness (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next() as u8;
        }
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        self.fill(&mut a);
        a
    }

    fn vec(&mut self, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.fill(&mut v);
        v
    }
}

/// Runs the vector through client and server with its fixed secrets and
/// checks every intermediate value.
fn check_vector(n: usize, v: &Value) {
    let user = text(v, "username");
    let pass = text(v, "password");
    let salt: [u8; 16] = hex(v, "salt");
    let s_a: [u8; 32] = hex(v, "client_secret_s_a");
    let s_b: [u8; 32] = hex(v, "server_secret_s_b");
    let ctx = format!("vector {n} ({})", String::from_utf8_lossy(&user));

    // Validator.
    let i = validator_scalar(&salt, &credentials_hash(&user, &pass));
    assert_eq!(i, hex::<32>(v, "validator_priv_i"), "{ctx}: i");
    let validator = Validator::derive(&user, &pass, salt);
    assert_eq!(validator.x_gamma, hex::<32>(v, "validator_x_gamma"), "{ctx}: x_gamma");
    assert_eq!(validator.parity, num(v, "validator_parity"), "{ctx}: parity");
    assert_eq!(validator.salt, salt);

    // Message 1.
    let (mut client, msg1) = ClientHandshake::start(&user, &pass, &s_a).unwrap();
    assert_eq!(framed(&msg1), bytes(v, "wire_msg1"), "{ctx}: wire_msg1");
    let hello = parse_client_hello(&msg1).unwrap();
    assert_eq!(hello.username, &user[..]);
    assert_eq!(hello.pub_x, hex::<32>(v, "client_pub_x"), "{ctx}: client_pub_x");
    assert_eq!(hello.parity, num(v, "client_pub_parity"), "{ctx}: client parity");

    // Message 2 and the server's j and z.
    let keys = server_keys(Some(&validator), &DECOY_SECRET, &hello, &s_b).unwrap();
    assert_eq!(keys.msg2[..32], hex::<32>(v, "server_pub_x"), "{ctx}: server_pub_x");
    assert_eq!(keys.msg2[32], num(v, "server_pub_parity"), "{ctx}: server parity");
    assert_eq!(keys.j, hex::<32>(v, "j"), "{ctx}: server j");
    assert_eq!(keys.z, hex::<32>(v, "z"), "{ctx}: server z");
    let (server, msg2) = ServerHandshake::start(Some(&validator), &DECOY_SECRET, &hello, &s_b).unwrap();
    assert_eq!(framed(&msg2), bytes(v, "wire_msg2"), "{ctx}: wire_msg2");

    // The client's j and z, message 3.
    let keys = client.client_keys(&msg2).unwrap();
    assert_eq!(keys.j, hex::<32>(v, "j"), "{ctx}: client j");
    assert_eq!(keys.z, hex::<32>(v, "z"), "{ctx}: client z");
    let msg3 = client.on_server_hello(&msg2).unwrap();
    assert_eq!(msg3, hex::<32>(v, "client_cc"), "{ctx}: client_cc");
    assert_eq!(framed(&msg3), bytes(v, "wire_msg3"), "{ctx}: wire_msg3");

    // Message 4.
    let msg4 = server.finish(&msg3).unwrap();
    assert_eq!(msg4, hex::<32>(v, "server_cc"), "{ctx}: server_cc");
    assert_eq!(framed(&msg4), bytes(v, "wire_msg4"), "{ctx}: wire_msg4");
    client.verify_server(&msg4).unwrap();
}

#[test]
fn every_vector_matches_at_every_step_on_both_sides() {
    let all = load_vectors();
    let vectors = all["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 80);
    for (n, v) in vectors.iter().enumerate() {
        check_vector(n, v);
    }
}

#[test]
fn vectors_include_fields_with_leading_zero_bytes() {
    // The point of those vectors is 32-byte values that start with 00; make
    // sure the file still has them, so the test above exercises padding.
    let all = load_vectors();
    let with_zero = all["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| {
            ["validator_x_gamma", "client_pub_x", "server_pub_x", "j", "z", "client_cc", "server_cc"]
                .iter()
                .any(|k| v[k].as_str().unwrap().starts_with("00"))
        })
        .count();
    assert!(with_zero >= 20, "{with_zero}");
}

#[test]
fn routeros_stored_validator_is_reproduced() {
    let all = load_vectors();
    let list = all["routeros_validators"].as_array().unwrap();
    assert!(!list.is_empty());
    for v in list {
        let salt: [u8; 16] = hex(v, "salt");
        let (user, pass) = (text(v, "username"), text(v, "password"));
        let i = validator_scalar(&salt, &credentials_hash(&user, &pass));
        assert_eq!(i, hex::<32>(v, "validator_priv_i"));
        let validator = Validator::derive(&user, &pass, salt);
        assert_eq!(validator.x_gamma, hex::<32>(v, "validator_x_gamma"));
        assert_eq!(validator.parity, num(v, "validator_parity"));
    }
}

#[test]
fn leading_zero_validator_of_protocol_reference_5_10_4() {
    let mut salt = [0u8; 16];
    salt[15] = 0x10;
    let i = validator_scalar(&salt, &credentials_hash(b"admin", b"test"));
    assert_eq!(i.to_vec(), unhex("43b38a4112cf03f971862f686fd1ec97fa839d6cf77a4dec6d2a9b4a54009300"));
    let v = Validator::derive(b"admin", b"test", salt);
    assert_eq!(v.x_gamma.to_vec(), unhex("0070d4f0b971f4e7432d01ebe221888356930d77c315378b9164f844f6a3f833"));
    assert_eq!(v.parity, 1);
    // redp1 hashes all 32 bytes, leading zero included.
    assert_eq!(sha(&v.x_gamma).to_vec(), unhex("cbf2b083544aa812aeffa75e1aa2511f77f9ca0b4c2eb7875f4c20a11c26b528"));
    // And the handshake works with it.
    let (mut client, msg1) = ClientHandshake::start(b"admin", b"test", &[7; 32]).unwrap();
    let hello = parse_client_hello(&msg1).unwrap();
    let (server, msg2) = ServerHandshake::start(Some(&v), &DECOY_SECRET, &hello, &[9; 32]).unwrap();
    let msg3 = client.on_server_hello(&msg2).unwrap();
    client.verify_server(&server.finish(&msg3).unwrap()).unwrap();
}

/// Vector A of protocol-reference §5.10.3, including the z a server gets
/// when it lifts Γ with the wrong parity (MAN's former bug).
#[test]
fn protocol_reference_vector_a_and_the_wrong_parity_pitfall() {
    let s_a = sha(b"btest-spec client ephemeral");
    let s_b = sha(b"btest-spec server ephemeral");
    assert_eq!(s_a.to_vec(), unhex("39540edc6d8896062b5468401f771b6f91547edccc933be6788b418c73d26357"));
    let salt: [u8; 16] = unhex("ff59f30028643d54d7007b8227663844").try_into().unwrap();
    let v = Validator::derive(b"admin", b"", salt);
    assert_eq!(
        redp1(&v.x_gamma, 0).encode(),
        (unhex("7d8b546ed58458c0dedb7040c09f09e218eb8f570858c8763a6b32fb0660a2bc").try_into().unwrap(), 0)
    );
    let (mut client, msg1) = ClientHandshake::start(b"admin", b"", &s_a).unwrap();
    assert_eq!(
        framed(&msg1),
        unhex("2761646d696e0018c1dc66fe8b2b7958f73830a1f22d27dcf374b09b5d7fc43ac1c387109f3aaa01")
    );
    let hello = parse_client_hello(&msg1).unwrap();
    let (server, msg2) = ServerHandshake::start(Some(&v), &DECOY_SECRET, &hello, &s_b).unwrap();
    assert_eq!(
        framed(&msg2),
        unhex(
            "313f080a8fc8bd43993daa5a30b664536258d981cbc0596a786780f29adaf4472b00\
             ff59f30028643d54d7007b8227663844"
        )
    );
    let msg3 = client.on_server_hello(&msg2).unwrap();
    assert_eq!(framed(&msg3), unhex("20fcea45a66c93fc2b2654ba1eca3635764f9d594b88d63e9d1c34617a743f4fb5"));
    let msg4 = server.finish(&msg3).unwrap();
    assert_eq!(framed(&msg4), unhex("201f09f1b472ebfccdf5f14a8a18a900cbc930eaf0199fc327a78b9abc7ac6d2a5"));

    let wrong = Validator { parity: v.parity ^ 1, ..v.clone() };
    let keys = server_keys(Some(&wrong), &DECOY_SECRET, &hello, &s_b).unwrap();
    assert_eq!(keys.z.to_vec(), unhex("4646b2f5bfd9fe07bdab8b6f00515d372e258293a4ccffd3bed902c13ff0f71e"));
    let (server, _) = ServerHandshake::start(Some(&wrong), &DECOY_SECRET, &hello, &s_b).unwrap();
    assert_eq!(server.finish(&msg3), Err(EcSrpError::ProofMismatch { message: Message::ClientProof }));
}

/// Client and server in-process with random credentials and secrets; every
/// tenth round also tries a wrong password, which must fail at message 3.
fn random_handshakes(seed: u64, rounds: usize) {
    let mut rng = Rng(seed);
    for round in 0..rounds {
        let ulen = if round % 50 == 0 { MAX_USERNAME_LEN } else { rng.below(40) as usize };
        let mut user = rng.vec(ulen);
        for b in &mut user {
            *b = (*b).max(1);
        }
        let plen = rng.below(64) as usize;
        let pass = rng.vec(plen);
        let salt: [u8; 16] = rng.array();
        let (s_a, s_b): ([u8; 32], [u8; 32]) = (rng.array(), rng.array());
        let validator = Validator::derive(&user, &pass, salt);

        let (mut client, msg1) = ClientHandshake::start(&user, &pass, &s_a).unwrap();
        assert!(msg1.len() <= 255);
        let hello = parse_client_hello(&msg1).unwrap();
        assert_eq!(hello.username, &user[..]);
        let (server, msg2) = ServerHandshake::start(Some(&validator), &DECOY_SECRET, &hello, &s_b).unwrap();
        let msg3 = client.on_server_hello(&msg2).unwrap();
        let msg4 = server.finish(&msg3).unwrap_or_else(|e| panic!("seed {seed} round {round}: {e}"));
        client.verify_server(&msg4).unwrap();

        if round % 10 == 0 {
            let mut wrong = pass.clone();
            wrong.push(b'x');
            let (mut client, msg1) = ClientHandshake::start(&user, &wrong, &s_a).unwrap();
            let hello = parse_client_hello(&msg1).unwrap();
            let (server, msg2) = ServerHandshake::start(Some(&validator), &DECOY_SECRET, &hello, &s_b).unwrap();
            let msg3 = client.on_server_hello(&msg2).unwrap();
            assert_eq!(
                server.finish(&msg3),
                Err(EcSrpError::ProofMismatch { message: Message::ClientProof }),
                "seed {seed} round {round}"
            );
        }
    }
}

// 10,000 handshakes in two halves so the test harness can run them on two cores.
#[test]
fn random_handshakes_all_succeed_and_wrong_passwords_fail_part_1() {
    random_handshakes(0x0123_4567_89ab_cdef, 5_000);
}

#[test]
fn random_handshakes_all_succeed_and_wrong_passwords_fail_part_2() {
    random_handshakes(0xfedc_ba98_7654_3210, 5_000);
}

fn hello_payload(user: &[u8], tail: &[u8]) -> Vec<u8> {
    let mut p = user.to_vec();
    p.push(0);
    p.extend_from_slice(tail);
    p
}

fn g_key() -> [u8; 33] {
    let mut k = [0u8; 33];
    k[31] = 9;
    k
}

#[test]
fn client_hello_layout_is_enforced() {
    assert_eq!(
        parse_client_hello(&[]),
        Err(EcSrpError::Truncated { message: Message::ClientHello, expected: 33, got: 0 })
    );
    assert_eq!(parse_client_hello(b"admin"), Err(EcSrpError::MissingNul));
    assert_eq!(
        parse_client_hello(&hello_payload(b"admin", &[])),
        Err(EcSrpError::Truncated { message: Message::ClientHello, expected: 33, got: 0 })
    );
    assert_eq!(
        parse_client_hello(&hello_payload(b"admin", &g_key()[..32])),
        Err(EcSrpError::Truncated { message: Message::ClientHello, expected: 33, got: 32 })
    );
    let mut long = g_key().to_vec();
    long.push(0);
    assert_eq!(
        parse_client_hello(&hello_payload(b"admin", &long)),
        Err(EcSrpError::BadLength { message: Message::ClientHello, expected: 33, got: 34 })
    );
    let mut bad_parity = g_key();
    bad_parity[32] = 2;
    assert_eq!(
        parse_client_hello(&hello_payload(b"admin", &bad_parity)),
        Err(EcSrpError::BadParity { message: Message::ClientHello, value: 2 })
    );
    let payload = hello_payload(b"admin", &g_key());
    let hello = parse_client_hello(&payload).unwrap();
    assert_eq!(hello.username, b"admin");
    assert_eq!(hello.pub_x, <[u8; 32]>::try_from(&g_key()[..32]).unwrap());
    assert_eq!(hello.parity, 0);
    // An empty username parses; the user lookup decides.
    assert_eq!(parse_client_hello(&hello_payload(b"", &g_key())).unwrap().username, b"");
}

#[test]
fn username_length_limit_matches_a_255_byte_payload() {
    let max = vec![b'u'; MAX_USERNAME_LEN];
    let payload = hello_payload(&max, &g_key());
    assert_eq!(payload.len(), 255);
    assert_eq!(parse_client_hello(&payload).unwrap().username.len(), 221);
    let over = vec![b'u'; MAX_USERNAME_LEN + 1];
    assert_eq!(parse_client_hello(&hello_payload(&over, &g_key())), Err(EcSrpError::UsernameTooLong { len: 222 }));
    assert_eq!(ClientHandshake::start(&over, b"pw", &[1; 32]).unwrap_err(), EcSrpError::UsernameTooLong { len: 222 });
    assert_eq!(ClientHandshake::start(b"ad\0min", b"pw", &[1; 32]).unwrap_err(), EcSrpError::UsernameContainsNul);
    let (_, msg1) = ClientHandshake::start(&max, b"pw", &[1; 32]).unwrap();
    assert_eq!(msg1.len(), 255);
}

#[test]
fn garbage_never_panics() {
    let v = Validator::derive(b"admin", b"pw", [3; 16]);
    let mut rng = Rng(42);
    let mut inputs: Vec<Vec<u8>> = vec![vec![0xff; 255], vec![0; 255], vec![0; 300], vec![]];
    for len in 0..=300 {
        inputs.push(rng.vec(len));
        // Force a NUL in most of them so parsing gets past the username.
        let mut with_nul = rng.vec(len);
        if len > 0 {
            let at = rng.below(len as u64) as usize;
            with_nul[at] = 0;
        }
        inputs.push(with_nul);
    }
    for len in [221usize, 0, 5] {
        for _ in 0..50 {
            let mut tail = rng.vec(33);
            tail[32] &= 1;
            inputs.push(hello_payload(&vec![b'a'; len], &tail));
        }
    }
    let mut parsed = 0;
    for input in &inputs {
        if let Ok(hello) = parse_client_hello(input) {
            parsed += 1;
            // Random u: about half lift; all must return without panicking.
            if let Ok((server, _)) = ServerHandshake::start(Some(&v), &DECOY_SECRET, &hello, &[5; 32]) {
                assert!(server.finish(input).is_err());
            }
        }
        let (mut client, _) = ClientHandshake::start(b"admin", b"pw", &[6; 32]).unwrap();
        let _ = client.on_server_hello(input);
        let _ = client.verify_server(input);
    }
    assert!(parsed >= 150, "{parsed}");
}

#[test]
fn client_point_not_on_curve_is_rejected() {
    let v = Validator::derive(b"admin", b"pw", [3; 16]);
    // u = 2: 8 + 4A + 2 is not a square mod p.
    let mut key = [0u8; 33];
    key[31] = 2;
    let payload = hello_payload(b"admin", &key);
    let hello = parse_client_hello(&payload).unwrap();
    assert_eq!(
        ServerHandshake::start(Some(&v), &DECOY_SECRET, &hello, &[5; 32]).unwrap_err(),
        EcSrpError::NotOnCurve { message: Message::ClientHello }
    );
    // A caller-built hello with a bad parity is refused too.
    let forged = ClientHello { username: b"admin", pub_x: [0; 32], parity: 7 };
    assert_eq!(
        ServerHandshake::start(Some(&v), &DECOY_SECRET, &forged, &[5; 32]).unwrap_err(),
        EcSrpError::BadParity { message: Message::ClientHello, value: 7 }
    );
}

/// Public keys no honest peer sends, with the error each must get: the
/// small-order points (u = 0, order 2; u = 1, order 4; the two u of order
/// 8), u ≥ p (p itself, p + 9 which reduces to G, 2^256 − 1), and the
/// twist's point of order 4 (u = p − 1).
fn forged_keys(message: Message) -> Vec<([u8; 32], EcSrpError)> {
    let small = EcSrpError::SmallOrder { message };
    let non_canonical = EcSrpError::NotCanonical { message };
    let off_curve = EcSrpError::NotOnCurve { message };
    let mut one = [0u8; 32];
    one[31] = 1;
    let key = |hex: &str| -> [u8; 32] { unhex(hex).try_into().unwrap() };
    vec![
        ([0; 32], small),
        (one, small),
        (key("00b8495f16056286fdb1329ceb8d09da6ac49ff1fae35616aeb8413b7c7aebe0"), small),
        (key("57119fd0dd4e22d8868e1c58c45c44045bef839c55b1d0b1248c50a3bc959c5f"), small),
        (key("7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffed"), non_canonical),
        (key("7ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff6"), non_canonical),
        ([0xff; 32], non_canonical),
        (key("7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffec"), off_curve),
    ]
}

#[test]
fn forged_client_keys_are_refused_for_existing_and_unknown_users() {
    let v = Validator::derive(b"admin", b"pw", [3; 16]);
    for (u, expected) in forged_keys(Message::ClientHello) {
        for parity in [0, 1] {
            let mut key = [0u8; 33];
            key[..32].copy_from_slice(&u);
            key[32] = parity;
            for (user, stored) in [(&b"admin"[..], Some(&v)), (b"nobody", None)] {
                let payload = hello_payload(user, &key);
                let hello = parse_client_hello(&payload).unwrap();
                let err = ServerHandshake::start(stored, &DECOY_SECRET, &hello, &[5; 32]).unwrap_err();
                assert_eq!(err, expected, "{u:02x?} parity {parity}");
                assert!(err.is_invalid_key());
            }
        }
    }
    // Layout errors are not key errors.
    assert!(!EcSrpError::BadParity { message: Message::ClientHello, value: 2 }.is_invalid_key());
    assert!(!EcSrpError::BadValidator.is_invalid_key());
}

#[test]
fn forged_server_keys_are_refused_by_the_client() {
    let v = Validator::derive(b"admin", b"pw", [3; 16]);
    let (mut client, msg1) = ClientHandshake::start(b"admin", b"pw", &[1; 32]).unwrap();
    let hello = parse_client_hello(&msg1).unwrap();
    let (_, msg2) = ServerHandshake::start(Some(&v), &DECOY_SECRET, &hello, &[2; 32]).unwrap();
    for (u, expected) in forged_keys(Message::ServerHello) {
        for parity in [0, 1] {
            let mut forged = msg2;
            forged[..32].copy_from_slice(&u);
            forged[32] = parity;
            assert_eq!(client.on_server_hello(&forged), Err(expected), "{u:02x?} parity {parity}");
        }
    }
    // The refusals left the client usable: the genuine message 2 still works.
    assert!(client.on_server_hello(&msg2).is_ok());
}

#[test]
fn bad_stored_validators_are_reported() {
    let (_, msg1) = ClientHandshake::start(b"admin", b"pw", &[1; 32]).unwrap();
    let hello = parse_client_hello(&msg1).unwrap();
    let good = Validator::derive(b"admin", b"pw", [3; 16]);
    let bad_parity = Validator { parity: 2, ..good.clone() };
    assert_eq!(
        ServerHandshake::start(Some(&bad_parity), &DECOY_SECRET, &hello, &[5; 32]).unwrap_err(),
        EcSrpError::BadValidator
    );
    let mut off_curve = good;
    off_curve.x_gamma = [0; 32];
    off_curve.x_gamma[31] = 2;
    assert_eq!(
        ServerHandshake::start(Some(&off_curve), &DECOY_SECRET, &hello, &[5; 32]).unwrap_err(),
        EcSrpError::BadValidator
    );
}

#[test]
fn proofs_must_have_exact_length_and_value() {
    let v = Validator::derive(b"admin", b"pw", [3; 16]);
    let (mut client, msg1) = ClientHandshake::start(b"admin", b"pw", &[1; 32]).unwrap();
    let hello = parse_client_hello(&msg1).unwrap();
    let (server, msg2) = ServerHandshake::start(Some(&v), &DECOY_SECRET, &hello, &[2; 32]).unwrap();
    assert_eq!(client.verify_server(&[0; 32]), Err(EcSrpError::OutOfOrder));
    let msg3 = client.on_server_hello(&msg2).unwrap();

    assert_eq!(
        server.finish(&msg3[..31]),
        Err(EcSrpError::Truncated { message: Message::ClientProof, expected: 32, got: 31 })
    );
    assert_eq!(
        server.finish(&[msg3.as_slice(), &[0]].concat()),
        Err(EcSrpError::BadLength { message: Message::ClientProof, expected: 32, got: 33 })
    );
    assert!(matches!(server.finish(&[]), Err(EcSrpError::Truncated { .. })));
    for i in [0, 17, 31] {
        let mut wrong = msg3;
        wrong[i] ^= 1;
        assert_eq!(server.finish(&wrong), Err(EcSrpError::ProofMismatch { message: Message::ClientProof }));
    }
    let msg4 = server.finish(&msg3).unwrap();

    let mut wrong = msg4;
    wrong[0] ^= 0x80;
    assert_eq!(client.verify_server(&wrong), Err(EcSrpError::ProofMismatch { message: Message::ServerProof }));
    assert!(matches!(client.verify_server(&msg4[..5]), Err(EcSrpError::Truncated { .. })));
    client.verify_server(&msg4).unwrap();
}

#[test]
fn server_hello_layout_is_enforced() {
    let v = Validator::derive(b"admin", b"pw", [3; 16]);
    let (mut client, msg1) = ClientHandshake::start(b"admin", b"pw", &[1; 32]).unwrap();
    let hello = parse_client_hello(&msg1).unwrap();
    let (_, msg2) = ServerHandshake::start(Some(&v), &DECOY_SECRET, &hello, &[2; 32]).unwrap();
    assert_eq!(
        client.on_server_hello(&msg2[..48]),
        Err(EcSrpError::Truncated { message: Message::ServerHello, expected: 49, got: 48 })
    );
    assert_eq!(
        client.on_server_hello(&[msg2.as_slice(), &[0]].concat()),
        Err(EcSrpError::BadLength { message: Message::ServerHello, expected: 49, got: 50 })
    );
    let mut bad = msg2;
    bad[32] = 0xff;
    assert_eq!(client.on_server_hello(&bad), Err(EcSrpError::BadParity { message: Message::ServerHello, value: 0xff }));
    let mut off_curve = msg2;
    off_curve[..32].fill(0);
    off_curve[31] = 2;
    assert_eq!(client.on_server_hello(&off_curve), Err(EcSrpError::NotOnCurve { message: Message::ServerHello }));
    assert!(client.on_server_hello(&msg2).is_ok());
}

#[test]
fn decoy_validators_are_stable_per_user_and_fail_at_confirmation() {
    let secret = [0x42; 32];
    let a = Validator::decoy(&secret, b"nobody");
    assert_eq!(a, Validator::decoy(&secret, b"nobody"));
    assert_ne!(a.salt, Validator::decoy(&secret, b"nobody2").salt);
    assert_ne!(a.x_gamma, Validator::decoy(&secret, b"nobody2").x_gamma);
    assert_ne!(a, Validator::decoy(&[0x43; 32], b"nobody"));
    assert!(a.parity <= 1 && a.x_gamma[0] < 0x80);
    // The salt is derived as before decoys became cheap, so a name probed
    // across an upgrade keeps its salt (a stored user's salt never changes).
    assert_eq!(a.salt[..], sha256(&[b"btestd EC-SRP5 decoy salt\0", &secret, b"nobody"])[..16]);

    for password in [&b""[..], b"pw", b"nobody"] {
        let (mut client, msg1) = ClientHandshake::start(b"nobody", password, &[1; 32]).unwrap();
        let hello = parse_client_hello(&msg1).unwrap();
        let (server, msg2) = ServerHandshake::start(None, &secret, &hello, &[2; 32]).unwrap();
        assert_eq!(msg2[33..], a.salt);
        let msg3 = client.on_server_hello(&msg2).unwrap();
        assert_eq!(server.finish(&msg3), Err(EcSrpError::ProofMismatch { message: Message::ClientProof }));
    }
}

#[test]
fn decoys_whose_x_does_not_lift_still_answer() {
    // About half of all decoys have an x_gamma without a point; find some
    // of each kind and check that both give a normal message 2.
    let (mut lifting, mut not_lifting) = (0, 0);
    for k in 0..40u32 {
        let name = format!("nobody-{k}");
        let decoy = Validator::decoy(&DECOY_SECRET, name.as_bytes());
        match Point::lift_x(&decoy.x_gamma, decoy.parity) {
            Some(_) => lifting += 1,
            None => not_lifting += 1,
        }
        let (mut client, msg1) = ClientHandshake::start(name.as_bytes(), b"guess", &[1; 32]).unwrap();
        let hello = parse_client_hello(&msg1).unwrap();
        let (server, msg2) = ServerHandshake::start(None, &DECOY_SECRET, &hello, &[2; 32]).unwrap();
        assert_eq!(msg2[33..], decoy.salt);
        let msg3 = client.on_server_hello(&msg2).unwrap();
        assert!(server.finish(&msg3).is_err());
    }
    assert!(lifting > 5 && not_lifting > 5, "{lifting} {not_lifting}");
}

#[test]
fn existing_and_unknown_users_get_the_same_kind_of_message_2() {
    // The same client key and s_B: what differs is only what the validator
    // determines (salt and the blinding point), never the layout.
    let v = Validator::derive(b"admin", b"pw", [3; 16]);
    let (_, msg1) = ClientHandshake::start(b"admin", b"pw", &[1; 32]).unwrap();
    let hello = parse_client_hello(&msg1).unwrap();
    let (_, known) = ServerHandshake::start(Some(&v), &DECOY_SECRET, &hello, &[2; 32]).unwrap();
    let (_, unknown) = ServerHandshake::start(None, &DECOY_SECRET, &hello, &[2; 32]).unwrap();
    assert_eq!(known[33..], v.salt);
    assert_eq!(unknown[33..], Validator::decoy(&DECOY_SECRET, b"admin").salt);
    assert_ne!(known[..32], unknown[..32]);
    assert!(Point::decode_public(&unknown[..32].try_into().unwrap(), unknown[32]).is_ok());
}

#[test]
fn debug_output_hides_secrets() {
    let v = Validator::derive(b"admin", b"pw", [3; 16]);
    let shown = format!("{v:?}");
    assert!(shown.contains("salt") && !shown.contains("x_gamma"), "{shown}");
    let (client, msg1) = ClientHandshake::start(b"admin", b"pw", &[1; 32]).unwrap();
    assert_eq!(format!("{client:?}"), "ClientHandshake { .. }");
    let hello = parse_client_hello(&msg1).unwrap();
    let (server, _) = ServerHandshake::start(Some(&v), &DECOY_SECRET, &hello, &[2; 32]).unwrap();
    assert_eq!(format!("{server:?}"), "ServerHandshake { .. }");
}

#[test]
fn errors_explain_themselves() {
    let e = EcSrpError::ProofMismatch { message: Message::ClientProof };
    assert!(e.to_string().contains("wrong password"), "{e}");
    let e = EcSrpError::Truncated { message: Message::ClientHello, expected: 33, got: 3 };
    assert_eq!(e.to_string(), "EC-SRP5 message 1 (client hello): 3 bytes after the username, need 33 (truncated)");
    let e = EcSrpError::NotOnCurve { message: Message::ServerHello };
    assert!(e.to_string().starts_with("EC-SRP5 message 2 (server hello)"), "{e}");
}

//! The handshake state machine, message by message.

use super::*;
use crate::auth::User;
use crate::proto::{Direction, Protocol};

const SECRET: [u8; 32] = [9; 32];
const PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40000);

fn cmd() -> Command {
    Command::example(Protocol::Tcp, Direction::Both, 0)
}

/// EC-SRP5 message 1 (framed) from `user` with the key `u`, parity 0.
fn hello_with_key(user: &[u8], u: [u8; 32]) -> Vec<u8> {
    let mut hello = vec![(user.len() + 34) as u8];
    hello.extend_from_slice(user);
    hello.push(0);
    hello.extend_from_slice(&u);
    hello.push(0);
    hello
}

/// EC-SRP5 message 1 from alice whose key u = 2 is no curve point:
/// 2^3 + A*4 + 2 = 1946658 is a non-square mod p.
fn off_curve_hello() -> Vec<u8> {
    let mut x = [0u8; 32];
    x[31] = 2;
    hello_with_key(b"alice", x)
}

fn users(md5: bool, enabled: bool) -> Users {
    let mut u = Users::default();
    let mut user = User::with_password("alice", "wonder", md5);
    user.enabled = enabled;
    u.insert(user);
    u
}

fn fixed_rand(buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = i as u8 ^ 0x5a;
    }
}

/// Feeds `bytes` as one message and steps.
fn feed(hs: &mut Handshake, auth: &AuthConfig, bytes: &[u8], out: &mut OutBuf) -> Result<Event, HandshakeError> {
    let mut rest = bytes;
    loop {
        let want = hs.want();
        let n = want.len().min(rest.len());
        want[..n].copy_from_slice(&rest[..n]);
        rest = &rest[n..];
        if hs.filled(n) {
            assert!(rest.is_empty(), "message longer than the handshake reads");
            return hs.step(auth, |_| false, &mut fixed_rand, out);
        }
        assert!(!rest.is_empty(), "message shorter than the handshake needs");
    }
}

fn drain(out: &mut OutBuf) -> Vec<u8> {
    let v = out.pending().to_vec();
    out.consume(v.len());
    v
}

#[test]
fn no_auth_accepts_a_valid_command() {
    let u = Users::default();
    let auth = AuthConfig { scheme: None, users: &u, secret: &SECRET };
    let mut hs = Handshake::new(PEER);
    let mut out = OutBuf::new();
    let ev = feed(&mut hs, &auth, &cmd().emit(), &mut out).unwrap();
    assert_eq!(ev, Event::Ready { cmd: cmd(), user: None });
    assert!(out.is_empty());
}

#[test]
fn join_request_is_recognised_before_parsing() {
    let u = Users::default();
    let auth = AuthConfig { scheme: Some(Scheme::Md5), users: &u, secret: &SECRET };
    let mut hs = Handshake::new(PEER);
    let raw = crate::proto::command::emit_join(0x1234);
    hs.want().copy_from_slice(&raw);
    assert!(hs.filled(16));
    let ev = hs.step(&auth, |r| r[..2] == [0x12, 0x34], &mut fixed_rand, &mut OutBuf::new()).unwrap();
    assert_eq!(ev, Event::Join(raw));
}

#[test]
fn invalid_command_is_a_protocol_error_without_reply() {
    let u = Users::default();
    let auth = AuthConfig { scheme: None, users: &u, secret: &SECRET };
    let mut out = OutBuf::new();
    let err = feed(&mut Handshake::new(PEER), &auth, &[7u8; 16], &mut out).unwrap_err();
    assert_eq!(err, HandshakeError::Proto(ProtoError::BadProtocol(7)));
    assert!(out.is_empty());
}

fn md5_round(u: &Users, user: &[u8], password: &[u8]) -> (Result<Event, HandshakeError>, Vec<u8>) {
    let auth = AuthConfig { scheme: Some(Scheme::Md5), users: u, secret: &SECRET };
    let mut hs = Handshake::new(PEER);
    let mut out = OutBuf::new();
    assert_eq!(feed(&mut hs, &auth, &cmd().emit(), &mut out), Ok(Event::Continue));
    let sent = drain(&mut out);
    assert_eq!(&sent[..4], &reply::MD5_CHALLENGE);
    let challenge: [u8; 16] = sent[4..20].try_into().unwrap();
    let resp = md5::emit_response(user, password, &challenge);
    let r = feed(&mut hs, &auth, &resp, &mut out);
    (r, drain(&mut out))
}

#[test]
fn md5_outcomes() {
    let ok = md5_round(&users(true, true), b"alice", b"wonder");
    assert_eq!(ok.0, Ok(Event::Ready { cmd: cmd(), user: Some("alice".into()) }));
    assert!(ok.1.is_empty(), "the caller sends the OK after admission");

    let reason = |r: (Result<Event, HandshakeError>, Vec<u8>)| {
        assert_eq!(r.1, reply::FAILED);
        match r.0 {
            Err(HandshakeError::AuthFailed { reason, .. }) => reason,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(reason(md5_round(&users(true, true), b"alice", b"wrong")), AuthFailure::WrongPassword);
    assert_eq!(reason(md5_round(&users(true, true), b"bob", b"wonder")), AuthFailure::UnknownUser);
    assert_eq!(reason(md5_round(&users(true, false), b"alice", b"wonder")), AuthFailure::Disabled);
    assert_eq!(reason(md5_round(&users(false, true), b"alice", b"wonder")), AuthFailure::NoMd5Secret);
}

fn ecsrp5_round(u: &Users, user: &[u8], password: &[u8]) -> (Result<Event, HandshakeError>, Vec<u8>) {
    let auth = AuthConfig { scheme: Some(Scheme::EcSrp5), users: u, secret: &SECRET };
    let mut hs = Handshake::new(PEER);
    let mut out = OutBuf::new();
    assert_eq!(feed(&mut hs, &auth, &cmd().emit(), &mut out), Ok(Event::Continue));
    assert_eq!(drain(&mut out), reply::ECSRP5);
    let (mut client, msg1) = ecsrp5::ClientHandshake::start(user, password, &[3; 32]).unwrap();
    let mut frame = vec![msg1.len() as u8];
    frame.extend_from_slice(&msg1);
    assert_eq!(feed(&mut hs, &auth, &frame, &mut out), Ok(Event::Continue));
    let msg2 = drain(&mut out);
    assert_eq!(msg2.len(), 50);
    assert_eq!(msg2[0], 49);
    let cc = client.on_server_hello(&msg2[1..]).unwrap();
    let mut frame = vec![32u8];
    frame.extend_from_slice(&cc);
    let r = feed(&mut hs, &auth, &frame, &mut out);
    let sent = drain(&mut out);
    if r.is_ok() {
        assert_eq!(sent[0], 32);
        client.verify_server(&sent[1..]).expect("server proof");
    }
    (r, sent)
}

#[test]
fn ecsrp5_outcomes() {
    let r = ecsrp5_round(&users(false, true), b"alice", b"wonder");
    assert_eq!(r.0, Ok(Event::Ready { cmd: cmd(), user: Some("alice".into()) }));
    assert_eq!(r.1.len(), 33);

    for (u, user, pass, why) in [
        (users(false, true), &b"alice"[..], &b"nope"[..], AuthFailure::WrongPassword),
        (users(false, true), b"mallory", b"wonder", AuthFailure::UnknownUser),
        (users(false, false), b"alice", b"wonder", AuthFailure::Disabled),
    ] {
        let (r, sent) = ecsrp5_round(&u, user, pass);
        assert_eq!(sent, reply::FAILED);
        match r {
            Err(HandshakeError::AuthFailed { reason, .. }) => assert_eq!(reason, why),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn ecsrp5_malformed_messages_are_rejected() {
    let u = users(false, true);
    let auth = AuthConfig { scheme: Some(Scheme::EcSrp5), users: &u, secret: &SECRET };
    // Zero-length hello.
    let mut hs = Handshake::new(PEER);
    let mut out = OutBuf::new();
    feed(&mut hs, &auth, &cmd().emit(), &mut out).unwrap();
    assert!(matches!(feed(&mut hs, &auth, &[0], &mut out), Err(HandshakeError::BadAuthMessage(_))));
    // Garbage of every length never panics.
    for len in 0..=255usize {
        let mut hs = Handshake::new(PEER);
        feed(&mut hs, &auth, &cmd().emit(), &mut out).unwrap();
        let mut frame = vec![len as u8];
        frame.extend((0..len).map(|i| (i * 37 + len) as u8));
        let _ = feed(&mut hs, &auth, &frame, &mut out);
    }
}

/// Moves a fresh EC-SRP5 handshake past the command.
fn ecsrp5_hello_state(auth: &AuthConfig) -> Handshake {
    let mut hs = Handshake::new(PEER);
    let mut out = OutBuf::new();
    feed(&mut hs, auth, &cmd().emit(), &mut out).unwrap();
    assert_eq!(hs.state().to_string(), "ecsrp5-hello");
    hs
}

#[test]
fn malformed_messages_name_the_failed_check() {
    let u = users(false, true);
    let auth = AuthConfig { scheme: Some(Scheme::EcSrp5), users: &u, secret: &SECRET };
    let mut out = OutBuf::new();

    let mut hs = ecsrp5_hello_state(&auth);
    let err = feed(&mut hs, &auth, &[0], &mut out).unwrap_err();
    assert_eq!(
        err,
        HandshakeError::BadAuthMessage(AuthMessageError::EcSrp5(EcSrpError::Truncated {
            message: Message::ClientHello,
            expected: 33,
            got: 0
        }))
    );
    assert_eq!(
        err.to_string(),
        "malformed authentication message: EC-SRP5 message 1 (client hello): 0 bytes after the username, \
         need 33 (truncated)"
    );
    assert_eq!(hs.state().to_string(), "done");

    assert!(out.is_empty(), "a malformed message gets no reply");

    let mut hs = Handshake::new(PEER);
    hs.state = State::Done;
    let err = hs.step(&auth, |_| false, &mut fixed_rand, &mut out).unwrap_err();
    assert_eq!(err, HandshakeError::BadAuthMessage(AuthMessageError::AfterHandshake));
    assert_eq!(err.to_string(), "malformed authentication message: data after handshake");
}

#[test]
fn forged_client_keys_are_failed_logins_with_the_failure_reply() {
    let u = users(false, true);
    let auth = AuthConfig { scheme: Some(Scheme::EcSrp5), users: &u, secret: &SECRET };
    let mut p = [0xff; 32];
    p[0] = 0x7f;
    p[31] = 0xed;
    let mut one = [0u8; 32];
    one[31] = 1;
    let mut two = [0u8; 32];
    two[31] = 2;
    let cases = [
        ([0u8; 32], EcSrpError::SmallOrder { message: Message::ClientHello }),
        (one, EcSrpError::SmallOrder { message: Message::ClientHello }),
        (p, EcSrpError::NotCanonical { message: Message::ClientHello }),
        ([0xff; 32], EcSrpError::NotCanonical { message: Message::ClientHello }),
        (two, EcSrpError::NotOnCurve { message: Message::ClientHello }),
    ];
    // The same answer whether the user exists or not.
    for name in ["alice", "mallory"] {
        for (key, why) in cases {
            let mut hs = ecsrp5_hello_state(&auth);
            let mut out = OutBuf::new();
            let err = feed(&mut hs, &auth, &hello_with_key(name.as_bytes(), key), &mut out).unwrap_err();
            assert_eq!(err, HandshakeError::AuthFailed { user: name.into(), reason: AuthFailure::InvalidKey(why) });
            assert_eq!(drain(&mut out), reply::FAILED, "{name} {key:02x?}");
            assert_eq!(hs.state().to_string(), "done");
        }
    }
    let mut out = OutBuf::new();
    let err = feed(&mut ecsrp5_hello_state(&auth), &auth, &off_curve_hello(), &mut out).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "authentication failed for user 'alice': client key refused: EC-SRP5 message 1 (client hello): \
             public key is not a curve point"
        ),
        "{err}"
    );
    let err = feed(&mut ecsrp5_hello_state(&auth), &auth, &hello_with_key(b"alice", [0; 32]), &mut out).unwrap_err();
    assert!(err.to_string().contains("public key is a point of small order"), "{err}");
}

#[test]
fn confirmation_of_the_wrong_length_is_malformed_without_reply() {
    let u = users(false, true);
    let auth = AuthConfig { scheme: Some(Scheme::EcSrp5), users: &u, secret: &SECRET };
    // A known user and one that gets a decoy.
    for name in [&b"alice"[..], b"mallory"] {
        for len in [0usize, 31, 33, 255] {
            let mut hs = ecsrp5_hello_state(&auth);
            let mut out = OutBuf::new();
            let (_, msg1) = ecsrp5::ClientHandshake::start(name, b"wonder", &[3; 32]).unwrap();
            let mut frame = vec![msg1.len() as u8];
            frame.extend_from_slice(&msg1);
            assert_eq!(feed(&mut hs, &auth, &frame, &mut out), Ok(Event::Continue));
            assert_eq!(hs.state().to_string(), "ecsrp5-confirm");
            drain(&mut out);
            let mut frame = vec![len as u8];
            frame.resize(1 + len, 0xee);
            let expected = if len < 32 {
                EcSrpError::Truncated { message: Message::ClientProof, expected: 32, got: len }
            } else {
                EcSrpError::BadLength { message: Message::ClientProof, expected: 32, got: len }
            };
            let r = feed(&mut hs, &auth, &frame, &mut out);
            assert_eq!(r, Err(HandshakeError::BadAuthMessage(AuthMessageError::EcSrp5(expected))));
            assert!(out.is_empty(), "len {len}: no reply to a malformed confirmation");
        }
    }
}

#[test]
fn ecsrp5_reads_never_run_past_the_frame() {
    let u = users(false, true);
    let auth = AuthConfig { scheme: Some(Scheme::EcSrp5), users: &u, secret: &SECRET };
    let mut hs = ecsrp5_hello_state(&auth);
    assert_eq!(hs.want().len(), 1, "the length byte first");
    hs.want()[0] = 5;
    assert!(!hs.filled(1));
    assert_eq!(hs.want().len(), 5);
    hs.want()[..2].copy_from_slice(b"ab");
    assert!(!hs.filled(2));
    assert_eq!(hs.want().len(), 3);
    hs.want().copy_from_slice(b"cde");
    assert!(hs.filled(3));
    assert!(hs.want().is_empty(), "complete: nothing more is read before step");
}

#[test]
fn auth_message_errors_are_printable() {
    assert_eq!(AuthMessageError::Md5Length { got: 47 }.to_string(), "MD5 response is 47 bytes, expected 48");
    let e = AuthMessageError::Frame { message: Message::ClientHello, error: FrameError::Incomplete { more: 3 } };
    assert_eq!(e.to_string(), "EC-SRP5 message 1 (client hello): frame incomplete: 3 more bytes needed");
    let e = HandshakeError::BadAuthMessage(EcSrpError::BadValidator.into());
    assert!(e.to_string().starts_with("malformed authentication message: EC-SRP5 stored validator"), "{e}");
}

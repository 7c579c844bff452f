//! The server side of the control-connection handshake as a pure state
//! machine: it consumes exactly the bytes each message needs and produces
//! replies into an [`OutBuf`]; sockets and admission live in the caller.

use crate::auth::{Scheme, Users, ecsrp5, md5};
use crate::proto::frame::{self, FrameError};
use crate::proto::{Command, ProtoError, reply};
use crate::stream::OutBuf;
use ecsrp5::{EcSrpError, Message};
use std::fmt;
use std::net::SocketAddr;

/// Where the handshake is.
pub enum State {
    /// Waiting for the 16-byte command (or a secondary's join request).
    Command,
    /// MD5 challenge sent; waiting for the 48-byte response.
    Md5 { cmd: Command, challenge: [u8; md5::CHALLENGE_LEN] },
    /// `03 00 00 00` sent; waiting for EC-SRP5 message 1.
    EcHello { cmd: Command },
    /// Message 2 sent; waiting for the client's confirmation code.
    EcConfirm { cmd: Command, user: Option<String>, name: String, exchange: Box<ecsrp5::ServerHandshake> },
    /// Finished; the caller takes over the connection.
    Done,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Command => "command",
            State::Md5 { .. } => "md5-response",
            State::EcHello { .. } => "ecsrp5-hello",
            State::EcConfirm { .. } => "ecsrp5-confirm",
            State::Done => "done",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the caller should do after a complete message.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Replies were queued; keep reading.
    Continue,
    /// The 16 bytes are a join request of a pending multi-connection test.
    Join([u8; 16]),
    /// Command accepted; `user` is the authenticated user (None: no auth).
    Ready { cmd: Command, user: Option<String> },
}

/// Why a handshake failed; the caller logs it and closes the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// Malformed command: close without a reply.
    Proto(ProtoError),
    /// A malformed authentication message: close without a reply.
    BadAuthMessage(AuthMessageError),
    /// Credentials refused; `00 00 00 00` has been queued.
    AuthFailed { user: String, reason: AuthFailure },
}

/// What was wrong with an authentication message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMessageError {
    /// The MD5 response is not exactly [`md5::RESPONSE_LEN`] bytes.
    Md5Length { got: usize },
    /// The `[len][payload]` frame of this EC-SRP5 message is unusable.
    Frame { message: Message, error: FrameError },
    /// An EC-SRP5 message failed a check of its contents.
    EcSrp5(EcSrpError),
    /// A message arrived after the handshake had finished.
    AfterHandshake,
}

impl fmt::Display for AuthMessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthMessageError::Md5Length { got } => {
                write!(f, "MD5 response is {got} bytes, expected {}", md5::RESPONSE_LEN)
            }
            AuthMessageError::Frame { message, error } => write!(f, "EC-SRP5 {message}: {error}"),
            AuthMessageError::EcSrp5(e) => write!(f, "{e}"),
            AuthMessageError::AfterHandshake => f.write_str("data after handshake"),
        }
    }
}

impl From<EcSrpError> for AuthMessageError {
    fn from(e: EcSrpError) -> Self {
        AuthMessageError::EcSrp5(e)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    WrongPassword,
    UnknownUser,
    Disabled,
    /// The user exists but has no MD5 secret stored (EC-SRP5 only).
    NoMd5Secret,
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthFailure::WrongPassword => "wrong password",
            AuthFailure::UnknownUser => "unknown user",
            AuthFailure::Disabled => "user is disabled",
            AuthFailure::NoMd5Secret => {
                "user has no MD5 secret (add it with 'btestd user set NAME --md5' or use --auth-scheme ecsrp5)"
            }
        })
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Proto(e) => write!(f, "{e}"),
            HandshakeError::BadAuthMessage(what) => write!(f, "malformed authentication message: {what}"),
            HandshakeError::AuthFailed { user, reason } => {
                write!(f, "authentication failed for user '{user}': {reason}")
            }
        }
    }
}

/// What the handshake authenticates against.
pub struct AuthConfig<'a> {
    /// None: no authentication, every command is accepted.
    pub scheme: Option<Scheme>,
    pub users: &'a Users,
    /// Seeds EC-SRP5 decoys for unknown users.
    pub secret: &'a [u8; 32],
}

/// A connection's handshake: state plus the bytes of the message being read.
pub struct Handshake {
    peer: SocketAddr,
    state: State,
    /// Large enough for the longest message: a full EC-SRP5 frame.
    buf: [u8; frame::MAX_LEN],
    have: usize,
}

const _: () = assert!(frame::MAX_LEN >= Command::LEN && frame::MAX_LEN >= md5::RESPONSE_LEN);

impl Handshake {
    /// A handshake with the client at `peer` (named in log lines).
    pub fn new(peer: SocketAddr) -> Handshake {
        Handshake { peer, state: State::Command, buf: [0; frame::MAX_LEN], have: 0 }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Space for the rest of the current message. Reading into exactly this
    /// slice never consumes bytes that belong to the data phase.
    pub fn want(&mut self) -> &mut [u8] {
        let need = self.need();
        &mut self.buf[self.have..need]
    }

    /// Records `n` bytes read into [`Handshake::want`]; true when the
    /// current message is complete.
    pub fn filled(&mut self, n: usize) -> bool {
        self.have += n;
        self.have >= self.need()
    }

    fn need(&self) -> usize {
        match self.state {
            State::Command => Command::LEN,
            State::Md5 { .. } => md5::RESPONSE_LEN,
            State::EcHello { .. } | State::EcConfirm { .. } => match frame::parse(&self.buf[..self.have]) {
                Err(FrameError::Incomplete { more }) => self.have + more,
                // The frame is complete (and `have` never runs past it).
                _ => self.have,
            },
            State::Done => 0,
        }
    }

    /// The one place the state changes.
    fn set_state(&mut self, from: &'static str, to: State) {
        if from != to.name() {
            log::debug!("{}: handshake {from} -> {to}", self.peer);
        }
        self.state = to;
    }

    /// Handles the complete message in the buffer. `is_join` tells whether
    /// 16 bytes are a join request from this peer; `rand` fills buffers with
    /// secret random bytes.
    pub fn step(
        &mut self,
        auth: &AuthConfig<'_>,
        is_join: impl FnOnce(&[u8; 16]) -> bool,
        rand: &mut dyn FnMut(&mut [u8]),
        out: &mut OutBuf,
    ) -> Result<Event, HandshakeError> {
        let msg_len = std::mem::take(&mut self.have);
        let state = std::mem::replace(&mut self.state, State::Done);
        let from = state.name();
        let (next, result) = match advance(state, &self.buf[..msg_len], auth, is_join, rand, out) {
            Ok((event, next)) => (next, Ok(event)),
            Err(e) => (State::Done, Err(e)),
        };
        self.set_state(from, next);
        result
    }
}

/// The state after `msg` arrived in `state`, with the event for the caller.
fn advance(
    state: State,
    msg: &[u8],
    auth: &AuthConfig<'_>,
    is_join: impl FnOnce(&[u8; 16]) -> bool,
    rand: &mut dyn FnMut(&mut [u8]),
    out: &mut OutBuf,
) -> Result<(Event, State), HandshakeError> {
    use HandshakeError::BadAuthMessage;
    match state {
        State::Command => {
            let raw: [u8; 16] = crate::proto::take(msg).map_err(HandshakeError::Proto)?;
            if is_join(&raw) {
                return Ok((Event::Join(raw), State::Done));
            }
            let cmd = Command::parse(&raw).map_err(HandshakeError::Proto)?;
            match auth.scheme {
                None => Ok((Event::Ready { cmd, user: None }, State::Done)),
                Some(Scheme::Md5) => {
                    let mut challenge = [0u8; md5::CHALLENGE_LEN];
                    rand(&mut challenge);
                    out.push(&reply::MD5_CHALLENGE);
                    out.push(&challenge);
                    Ok((Event::Continue, State::Md5 { cmd, challenge }))
                }
                Some(Scheme::EcSrp5) => {
                    out.push(&reply::ECSRP5);
                    Ok((Event::Continue, State::EcHello { cmd }))
                }
            }
        }
        State::Md5 { cmd, challenge } => {
            let resp =
                md5::Response::parse(msg).ok_or(BadAuthMessage(AuthMessageError::Md5Length { got: msg.len() }))?;
            let name = String::from_utf8_lossy(resp.username).into_owned();
            let verdict = match auth.users.get(resp.username) {
                None => Err(AuthFailure::UnknownUser),
                Some(u) => match &u.md5_password {
                    None => Err(AuthFailure::NoMd5Secret),
                    Some(p) if !md5::verify(&resp, p, &challenge) => Err(AuthFailure::WrongPassword),
                    Some(_) if !u.enabled => Err(AuthFailure::Disabled),
                    Some(_) => Ok(()),
                },
            };
            finish(verdict, cmd, name, out)
        }
        State::EcHello { cmd } => {
            let payload = payload(msg, Message::ClientHello)?;
            let hello = ecsrp5::parse_client_hello(payload).map_err(|e| BadAuthMessage(e.into()))?;
            let name = String::from_utf8_lossy(hello.username).into_owned();
            let known = auth.users.get(hello.username);
            let validator = match known {
                Some(u) => u.validator.clone(),
                None => ecsrp5::Validator::decoy(auth.secret, hello.username),
            };
            let mut s_b = [0u8; 32];
            rand(&mut s_b);
            let (exchange, msg2) =
                ecsrp5::ServerHandshake::start(&validator, &hello, &s_b).map_err(|e| BadAuthMessage(e.into()))?;
            push_frame(&msg2, Message::ServerHello, out)?;
            let user = known.map(|u| u.name.clone());
            Ok((Event::Continue, State::EcConfirm { cmd, user, name, exchange: Box::new(exchange) }))
        }
        State::EcConfirm { cmd, user, name, exchange } => {
            let payload = payload(msg, Message::ClientProof)?;
            let verdict = match (exchange.finish(payload), &user) {
                // A confirmation of the wrong length is malformed, whoever sent it.
                (Err(e @ (EcSrpError::Truncated { .. } | EcSrpError::BadLength { .. })), _) => {
                    return Err(BadAuthMessage(e.into()));
                }
                (_, None) => Err(AuthFailure::UnknownUser),
                (Err(_), Some(_)) => Err(AuthFailure::WrongPassword),
                (Ok(server_cc), Some(u)) => {
                    if auth.users.get(u.as_bytes()).is_some_and(|u| u.enabled) {
                        push_frame(&server_cc, Message::ServerProof, out)?;
                        Ok(())
                    } else {
                        Err(AuthFailure::Disabled)
                    }
                }
            };
            finish(verdict, cmd, name, out)
        }
        State::Done => Err(BadAuthMessage(AuthMessageError::AfterHandshake)),
    }
}

/// The payload of the EC-SRP5 `message` framed in `msg`.
fn payload(msg: &[u8], message: Message) -> Result<&[u8], HandshakeError> {
    frame::parse(msg)
        .map(|(payload, _)| payload)
        .map_err(|error| HandshakeError::BadAuthMessage(AuthMessageError::Frame { message, error }))
}

/// Queues `payload` as the frame of the EC-SRP5 `message`.
fn push_frame(payload: &[u8], message: Message, out: &mut OutBuf) -> Result<(), HandshakeError> {
    let mut framed = Vec::with_capacity(frame::MAX_LEN);
    frame::emit(payload, &mut framed)
        .map_err(|error| HandshakeError::BadAuthMessage(AuthMessageError::Frame { message, error }))?;
    out.push(&framed);
    Ok(())
}

fn finish(
    verdict: Result<(), AuthFailure>,
    cmd: Command,
    user: String,
    out: &mut OutBuf,
) -> Result<(Event, State), HandshakeError> {
    match verdict {
        Ok(()) => Ok((Event::Ready { cmd, user: Some(user) }, State::Done)),
        Err(reason) => {
            out.push(&reply::FAILED);
            Err(HandshakeError::AuthFailed { user, reason })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::User;
    use crate::proto::{Direction, Protocol};

    const SECRET: [u8; 32] = [9; 32];
    const PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40000);

    fn cmd() -> Command {
        Command {
            proto: Protocol::Tcp,
            direction: Direction::Both,
            random: false,
            conn_count: 0,
            tx_size: 32768,
            client_buf_size: 0,
            remote_tx_speed: 0,
            local_tx_speed: 0,
        }
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
        // Hello with a point that is not on the curve (u = 2 has no point? try until one fails).
        let mut hs = Handshake::new(PEER);
        feed(&mut hs, &auth, &cmd().emit(), &mut out).unwrap();
        let mut hello = vec![39u8];
        hello.extend_from_slice(b"alice\0");
        let mut x = [0u8; 32];
        x[31] = 2;
        hello.extend_from_slice(&x);
        hello.push(0);
        let r = feed(&mut hs, &auth, &hello, &mut out);
        // u = 2 gives 2^3 + A*4 + 2 = 1946658, a non-square mod p.
        assert!(matches!(r, Err(HandshakeError::BadAuthMessage(_))), "{r:?}");
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

        let mut hs = ecsrp5_hello_state(&auth);
        let mut hello = vec![39u8];
        hello.extend_from_slice(b"alice\0");
        let mut x = [0u8; 32];
        x[31] = 2;
        hello.extend_from_slice(&x);
        hello.push(0);
        let err = feed(&mut hs, &auth, &hello, &mut out).unwrap_err();
        assert_eq!(
            err,
            HandshakeError::BadAuthMessage(AuthMessageError::EcSrp5(EcSrpError::NotOnCurve {
                message: Message::ClientHello
            }))
        );
        assert!(
            err.to_string().starts_with(
                "malformed authentication message: EC-SRP5 message 1 (client hello): public key is not a curve point"
            ),
            "{err}"
        );
        assert!(out.is_empty(), "a malformed message gets no reply");

        let mut hs = Handshake::new(PEER);
        hs.state = State::Done;
        let err = hs.step(&auth, |_| false, &mut fixed_rand, &mut out).unwrap_err();
        assert_eq!(err, HandshakeError::BadAuthMessage(AuthMessageError::AfterHandshake));
        assert_eq!(err.to_string(), "malformed authentication message: data after handshake");
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
}

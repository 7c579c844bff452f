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
    /// Message 2 sent; waiting for the client's confirmation code. `known`:
    /// the user exists (otherwise the exchange ran against a decoy).
    EcConfirm { cmd: Command, known: bool, name: String, exchange: Box<ecsrp5::ServerHandshake> },
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
    /// The EC-SRP5 client key is not on the curve, not canonical, or of
    /// small order: a forged key, answered and counted like a wrong password.
    InvalidKey(EcSrpError),
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthFailure::WrongPassword => f.write_str("wrong password"),
            AuthFailure::UnknownUser => f.write_str("unknown user"),
            AuthFailure::Disabled => f.write_str("user is disabled"),
            AuthFailure::NoMd5Secret => f.write_str(
                "user has no MD5 secret (add it with 'btestd user set NAME --md5' or use --auth-scheme ecsrp5)",
            ),
            AuthFailure::InvalidKey(e) => write!(f, "client key refused: {e}"),
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Proto(e) => write!(f, "{e}"),
            HandshakeError::BadAuthMessage(what) => write!(f, "malformed authentication message: {what}"),
            // The name is the peer's, sent before it proved anything.
            HandshakeError::AuthFailed { user, reason } => {
                write!(f, "authentication failed for user '{}': {reason}", crate::logger::Escaped::peer(user))
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

    /// The bytes of the message being read (complete once `filled` says so).
    pub fn message(&self) -> &[u8] {
        &self.buf[..self.have]
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
            // An unknown user gets a decoy inside `start`, with the same work.
            let stored = auth.users.get(hello.username).map(|u| &u.validator);
            let mut s_b = [0u8; 32];
            rand(&mut s_b);
            match ecsrp5::ServerHandshake::start(stored, auth.secret, &hello, &s_b) {
                Ok((exchange, msg2)) => {
                    push_frame(&msg2, Message::ServerHello, out)?;
                    let known = stored.is_some();
                    Ok((Event::Continue, State::EcConfirm { cmd, known, name, exchange: Box::new(exchange) }))
                }
                // A forged key is a login attempt, not a framing mistake.
                Err(e) if e.is_invalid_key() => finish(Err(AuthFailure::InvalidKey(e)), cmd, name, out),
                Err(e) => Err(BadAuthMessage(e.into())),
            }
        }
        State::EcConfirm { cmd, known, name, exchange } => {
            let payload = payload(msg, Message::ClientProof)?;
            // The proof is checked before anything else, so that an unknown
            // user and a wrong password cost the same.
            let verdict = match (exchange.finish(payload), known) {
                // A confirmation of the wrong length is malformed, whoever sent it.
                (Err(e @ (EcSrpError::Truncated { .. } | EcSrpError::BadLength { .. })), _) => {
                    return Err(BadAuthMessage(e.into()));
                }
                (_, false) => Err(AuthFailure::UnknownUser),
                (Err(_), true) => Err(AuthFailure::WrongPassword),
                (Ok(server_cc), true) => {
                    if auth.users.get(name.as_bytes()).is_some_and(|u| u.enabled) {
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
mod tests;

//! A connection before it belongs to a test: HELLO, command, authentication,
//! or the held reply of a failed login. Reads only what the handshake asks
//! for, so no data-phase byte is ever consumed here.

use super::guard::Slot;
use super::handshake::{AuthConfig, Event, Handshake, HandshakeError};
use super::session::IO_BUDGET;
use crate::stream::Stream;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

/// A slab entry: a connection in its handshake, or one of a session.
pub enum Conn {
    /// Boxed: data entries, the many, stay small.
    Pending(Box<Pending>),
    /// A data connection; its stream lives in the session.
    Data { session: usize, index: usize },
}

/// What a pending connection is doing, each with its own deadline.
pub enum Role {
    /// Reading the handshake until `deadline`.
    Handshake { hs: Box<Handshake>, deadline: Option<Instant> },
    /// A failed login holds its failure reply until `release`, which slows
    /// password guessing down.
    FailedLogin { release: Option<Instant> },
}

impl Role {
    fn name(&self) -> &'static str {
        match self {
            Role::Handshake { .. } => "handshake",
            Role::FailedLogin { .. } => "failed-login",
        }
    }
}

pub struct Pending {
    pub stream: Stream,
    pub peer: SocketAddr,
    /// When it was accepted: the oldest of a crowded address goes first.
    pub since: Instant,
    /// The handshake count this connection is held under until it ends.
    pub slot: Slot,
    role: Role,
    /// Set for traced peers: each handshake message is logged.
    pub trace: Option<Box<crate::trace::Trace>>,
}

/// What reading a pending connection came to.
#[derive(Debug)]
pub enum Read {
    /// Nothing to act on yet (replies, if any, are written).
    Waiting,
    /// The connection failed or the peer closed it.
    Closed(Closed),
    /// A secondary asks to join the test these 16 bytes name.
    Join([u8; 16]),
    /// The command passed authentication.
    Ready {
        cmd: crate::proto::Command,
        user: Option<String>,
    },
    Failed(HandshakeError),
}

/// Why a pending connection is gone, for the (rate-limited) log line.
#[derive(Debug)]
pub enum Closed {
    /// The peer closed while the handshake waited for this message.
    ByPeer {
        waiting_for: String,
    },
    ReadFailed(io::Error),
    WriteFailed(io::Error),
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Closed::ByPeer { waiting_for } => write!(f, "closed the connection during the handshake ({waiting_for})"),
            Closed::ReadFailed(e) => write!(f, "read failed during the handshake: {e}"),
            Closed::WriteFailed(e) => write!(f, "write failed during handshake: {e}"),
        }
    }
}

impl Pending {
    pub fn new(stream: Stream, peer: SocketAddr, slot: Slot, now: Instant) -> Pending {
        let role = Role::Handshake { hs: Box::new(Handshake::new(peer)), deadline: None };
        Pending { stream, peer, since: now, slot, role, trace: None }
    }

    /// The live deadline of the current role, as `Timers::schedule` keeps it.
    pub fn timer(&mut self) -> &mut Option<Instant> {
        match &mut self.role {
            Role::Handshake { deadline, .. } => deadline,
            Role::FailedLogin { release } => release,
        }
    }

    pub fn role(&self) -> &Role {
        &self.role
    }

    /// The one place the role changes.
    fn set_role(&mut self, role: Role) {
        log::debug!("{}: connection {} -> {}", self.peer, self.role.name(), role.name());
        self.role = role;
    }

    /// Holds the queued failure reply; the caller arms the release time.
    pub fn fail_login(&mut self) {
        self.set_role(Role::FailedLogin { release: None });
    }

    /// Writes queued replies.
    pub fn flush(&mut self) -> Result<(), Closed> {
        // A failed login keeps its reply until the delay is over.
        if let Role::FailedLogin { .. } = self.role {
            return Ok(());
        }
        self.stream.write(None, 0, IO_BUDGET).map(|_| ()).map_err(Closed::WriteFailed)
    }

    /// Reads and steps the handshake until it needs more bytes or has an
    /// outcome. `is_join` tells whether 16 bytes are a join request.
    pub fn read(&mut self, auth: &AuthConfig<'_>, is_join: impl Fn(&[u8; 16]) -> bool) -> Read {
        loop {
            let Role::Handshake { hs, .. } = &mut self.role else { return Read::Waiting };
            let want = hs.want();
            if want.is_empty() {
                return Read::Waiting;
            }
            let n = match io::Read::read(&mut self.stream.sock, want) {
                Ok(0) => return Read::Closed(Closed::ByPeer { waiting_for: hs.state().to_string() }),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Read::Waiting,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Read::Closed(Closed::ReadFailed(e)),
            };
            if !hs.filled(n) {
                continue;
            }
            let queued = self.stream.out.len();
            if let Some(t) = &self.trace {
                trace_rx(t, hs);
            }
            let step = hs.step(auth, &is_join, &mut crate::sysrand::fill, &mut self.stream.out);
            if let Some(t) = &self.trace {
                trace_tx(t, hs.state(), &self.stream.out.pending()[queued..]);
            }
            match step {
                Ok(Event::Continue) => {
                    if let Err(closed) = self.flush() {
                        return Read::Closed(closed);
                    }
                }
                Ok(Event::Join(raw)) => return Read::Join(raw),
                Ok(Event::Ready { cmd, user }) => return Read::Ready { cmd, user },
                Err(e) => return Read::Failed(e),
            }
        }
    }
}

/// Traces the complete handshake message about to be handled: commands
/// and join requests in full, authentication messages by length only
/// (they carry hashes, proofs and keys).
fn trace_rx(t: &crate::trace::Trace, hs: &Handshake) {
    use super::handshake::State;
    let msg = hs.message();
    match (hs.state(), <&[u8; 16]>::try_from(msg)) {
        (State::Command, Ok(raw)) => t.line(format_args!(
            "rx {} (or join token {})",
            crate::trace::command(raw),
            crate::proto::command::join_token(raw)
        )),
        (state, _) => t.line(format_args!("rx {state} message len={}", msg.len())),
    }
}

/// Traces what the handshake queued: 4-byte replies and the MD5 challenge
/// (random, not secret) in hex, EC-SRP5 messages by length only.
fn trace_tx(t: &crate::trace::Trace, next: &super::handshake::State, out: &[u8]) {
    use super::handshake::State;
    match (next, out.len()) {
        (_, 0) => {}
        (State::Md5 { .. }, _) => t.line(format_args!("tx md5 challenge len={} {}", out.len(), crate::trace::hex(out))),
        (_, 4) => t.line(format_args!("tx reply {}", crate::trace::hex(out))),
        (_, n) => t.line(format_args!("tx ecsrp5 message len={n} (contents withheld)")),
    }
}

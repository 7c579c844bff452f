//! The extra connections of a multi-connection TCP test: opened all at once,
//! their join requests sent without waiting for an answer, and what the
//! server sends ahead of data on them taken off the stream.
//!
//! btestd (and the servers written after it) send HELLO and then answer a
//! join with `01 HI LO 00`; a RouterOS server is reported to send nothing
//! before data on extra connections. Both are optional here, so no extra
//! connection ever waits for a reply: a test in which only the client
//! transmits gets nothing back for its first second.

use super::ClientError;
use crate::proto::reply;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Opens `count` connections to `addr` at once and waits, up to `timeout`
/// in all, until every one is established.
pub fn connect_all(addr: SocketAddr, count: usize, timeout: Duration) -> Result<Vec<TcpStream>, ClientError> {
    let connect_error = |source| ClientError::Connect { addr, source };
    let mut poll = Poll::new().map_err(ClientError::Io)?;
    let mut socks = Vec::with_capacity(count);
    for i in 0..count {
        let mut s = TcpStream::connect(addr).map_err(connect_error)?;
        poll.registry().register(&mut s, Token(i), Interest::WRITABLE).map_err(ClientError::Io)?;
        socks.push(s);
    }
    let deadline = Instant::now() + timeout;
    let mut connected = vec![false; count];
    let mut left = count;
    let mut events = Events::with_capacity(64);
    while left > 0 {
        let wait = deadline.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            return Err(connect_error(io::ErrorKind::TimedOut.into()));
        }
        match poll.poll(&mut events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ClientError::Io(e)),
        }
        for ev in events.iter() {
            let i = ev.token().0;
            let (Some(s), Some(done)) = (socks.get(i), connected.get_mut(i)) else { continue };
            if *done {
                continue;
            }
            if let Some(e) = s.take_error().map_err(ClientError::Io)? {
                return Err(connect_error(e));
            }
            match s.peer_addr() {
                Ok(_) => {
                    *done = true;
                    left -= 1;
                }
                // Not established yet: a later event will say.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                Err(e) => return Err(connect_error(e)),
            }
        }
    }
    for s in &mut socks {
        poll.registry().deregister(s).map_err(ClientError::Io)?;
        let _ = s.set_nodelay(true);
    }
    Ok(socks)
}

/// What may still come ahead of data on one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ahead {
    /// HELLO, or the join reply.
    HelloOrReply,
    /// The join reply (HELLO came).
    Reply,
    /// Nothing: data flows (or this is the primary).
    Nothing,
}

/// The optional messages ahead of data on an extra connection, matched
/// against the first bytes the server sent.
///
/// Data cannot be mistaken for them: a zeros payload starts with 00 and a
/// status message with 07, while both messages start with 01; only a random
/// payload can begin like one, with odds of 2^-32 per connection. A message
/// is taken only whole and only once, in order, so a first read that ends
/// inside `01 ..` waits for the rest instead of guessing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinReplies {
    reply: [u8; 4],
    ahead: Ahead,
}

/// What the first unconsumed bytes of a connection are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Too few bytes to tell (they begin like a message): wait for more.
    Wait,
    /// The first `n` bytes are a message: consume them and look again.
    Consume(usize),
    /// Data starts here.
    Data,
}

impl JoinReplies {
    /// An extra connection of the test whose token is `token`.
    pub fn new(token: u16) -> JoinReplies {
        JoinReplies { reply: reply::ok(Some(token)), ahead: Ahead::HelloOrReply }
    }

    /// A connection on which nothing is expected ahead of data.
    pub fn none() -> JoinReplies {
        JoinReplies { reply: reply::ok(None), ahead: Ahead::Nothing }
    }

    /// True once data may be read: nothing optional is still expected.
    pub fn is_done(&self) -> bool {
        self.ahead == Ahead::Nothing
    }

    /// Classifies `first`, the first bytes not yet consumed, and moves on
    /// past a message it finds.
    pub fn step(&mut self, first: &[u8]) -> Step {
        let expected: &[[u8; 4]] = match self.ahead {
            Ahead::Nothing => return Step::Data,
            Ahead::HelloOrReply => &[reply::HELLO, self.reply],
            Ahead::Reply => &[self.reply],
        };
        if first.is_empty() {
            return Step::Wait;
        }
        if let Some(m) = expected.iter().find(|m| first.starts_with(&m[..])) {
            self.ahead =
                if *m == reply::HELLO && self.ahead == Ahead::HelloOrReply { Ahead::Reply } else { Ahead::Nothing };
            return Step::Consume(m.len());
        }
        if first.len() < 4 && expected.iter().any(|m| m.starts_with(first)) {
            return Step::Wait;
        }
        self.ahead = Ahead::Nothing;
        Step::Data
    }
}

/// What [`skip_replies`] found on the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    /// Data may be read now.
    Data,
    /// Nothing decisive has arrived yet.
    Wait,
    /// The server closed the connection before its data began.
    Closed,
}

/// Consumes the optional messages ahead of data on `sock`, looking at the
/// received bytes without taking any that belong to the data.
pub fn skip_replies(
    sock: &mut TcpStream,
    replies: &mut JoinReplies,
    trace: Option<&crate::trace::Trace>,
) -> io::Result<Skipped> {
    let mut first = [0u8; 4];
    while !replies.is_done() {
        let n = match sock.peek(&mut first) {
            Ok(0) => return Ok(Skipped::Closed),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Skipped::Wait),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted) => {
                return Ok(Skipped::Closed);
            }
            Err(e) => return Err(e),
        };
        match replies.step(&first[..n]) {
            Step::Wait => return Ok(Skipped::Wait),
            Step::Data => {
                if let Some(t) = trace {
                    t.line(format_args!("rx data where a reply could be: {}", crate::trace::hex(&first[..n])));
                }
                return Ok(Skipped::Data);
            }
            // The peek showed these bytes are there: one read takes them all.
            Step::Consume(len) => {
                sock.read_exact(&mut first[..len])?;
                if let Some(t) = trace {
                    let what = if first[..len] == reply::HELLO { "HELLO" } else { "reply" };
                    t.line(format_args!("rx {what} {}", crate::trace::hex(&first[..len])));
                }
            }
        }
    }
    Ok(Skipped::Data)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: u16 = 0x04bc;
    const REPLY: [u8; 4] = [1, 0x04, 0xbc, 0];

    /// Feeds `bytes` to a fresh matcher as a socket would deliver them in
    /// one piece; returns how many were consumed and whether data follows.
    fn run(bytes: &[u8]) -> (usize, Step) {
        let mut r = JoinReplies::new(TOKEN);
        let mut at = 0;
        loop {
            let first = &bytes[at..bytes.len().min(at + 4)];
            match r.step(first) {
                Step::Consume(n) => at += n,
                other => return (at, other),
            }
        }
    }

    #[test]
    fn hello_and_reply_are_taken_off() {
        let mut b = reply::HELLO.to_vec();
        b.extend_from_slice(&REPLY);
        b.extend_from_slice(&[0; 8]);
        assert_eq!(run(&b), (8, Step::Data));
    }

    #[test]
    fn each_message_is_optional() {
        // Only the reply; only HELLO, then data; nothing at all.
        assert_eq!(run(&[&REPLY[..], &[0; 4]].concat()), (4, Step::Data));
        assert_eq!(run(&[&reply::HELLO[..], &[0; 4]].concat()), (4, Step::Data));
        assert_eq!(run(&[0; 8]), (0, Step::Data));
    }

    #[test]
    fn first_bytes_of_data_are_never_taken() {
        // A status message, zeros, and data that only begins like a message.
        let status = crate::proto::Status { cpu: Some(3), seq: 1, bytes: 0 }.emit();
        assert_eq!(run(&status), (0, Step::Data));
        assert_eq!(run(&[1, 0x04, 0xbc, 1, 9]), (0, Step::Data), "almost the reply");
        assert_eq!(run(&[1, 0x04, 0xbd, 0]), (0, Step::Data), "another test's reply");
        assert_eq!(run(&[1, 0, 0, 7]), (0, Step::Data), "almost HELLO");
        // After HELLO, a second HELLO is data.
        assert_eq!(run(&[&reply::HELLO[..], &reply::HELLO[..]].concat()), (4, Step::Data));
        // After the reply nothing more is looked at, whatever follows.
        let mut r = JoinReplies::new(TOKEN);
        assert_eq!(r.step(&REPLY), Step::Consume(4));
        assert!(r.is_done());
        assert_eq!(r.step(&REPLY), Step::Data);
    }

    #[test]
    fn a_partial_message_waits_and_a_partial_mismatch_is_data() {
        let mut r = JoinReplies::new(TOKEN);
        assert_eq!(r.step(&[]), Step::Wait);
        assert_eq!(r.step(&[1]), Step::Wait);
        assert_eq!(r.step(&[1, 0]), Step::Wait, "HELLO so far");
        assert_eq!(r.step(&[1, 4, 0xbc]), Step::Wait, "the reply so far");
        assert!(!r.is_done());
        assert_eq!(r.step(&[1, 4, 0xbc, 0]), Step::Consume(4));
        let mut r = JoinReplies::new(TOKEN);
        assert_eq!(r.step(&[1, 4, 0xbd]), Step::Data, "a prefix of neither");
        assert!(r.is_done());
    }

    #[test]
    fn the_primary_expects_nothing() {
        let mut r = JoinReplies::none();
        assert!(r.is_done());
        assert_eq!(r.step(&reply::HELLO), Step::Data);
    }
}

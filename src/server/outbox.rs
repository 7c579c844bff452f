//! A small reply (control socket, web page) written out over as many
//! writable events as the peer needs: the loop never waits on a slow reader.

use std::io::{self, Write};

/// What one pass over a client left to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    Wait,
    Done,
}

/// The reply and how much of it went out.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    bytes: Vec<u8>,
    sent: usize,
}

impl Outbox {
    pub(super) fn set(&mut self, reply: Vec<u8>) {
        self.bytes = reply;
        self.sent = 0;
    }

    /// Whether a reply is set (the request was answered).
    pub(super) fn is_set(&self) -> bool {
        !self.bytes.is_empty()
    }

    /// Writes what the socket takes: Done once all is out or the peer went
    /// away, Wait while the reply is unset or the socket is full.
    pub(super) fn write_to(&mut self, sock: &mut impl Write) -> Step {
        if self.bytes.is_empty() {
            return Step::Wait;
        }
        while self.sent < self.bytes.len() {
            match sock.write(&self.bytes[self.sent..]) {
                Ok(0) => return Step::Done,
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Step::Done,
            }
        }
        Step::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket taking at most `room` bytes per call, `calls` calls in all.
    struct Slow {
        got: Vec<u8>,
        room: usize,
        calls: usize,
    }

    impl Write for Slow {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.calls == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.calls -= 1;
            let n = buf.len().min(self.room);
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_socket_waits_and_the_rest_follows_in_order() {
        let mut out = Outbox::default();
        let mut sock = Slow { got: Vec::new(), room: 3, calls: 2 };
        assert_eq!(out.write_to(&mut sock), Step::Wait, "nothing to send yet");
        out.set(b"0123456789".to_vec());
        assert!(out.is_set());
        assert_eq!(out.write_to(&mut sock), Step::Wait);
        assert_eq!(sock.got, b"012345");
        sock.calls = 10;
        assert_eq!(out.write_to(&mut sock), Step::Done);
        assert_eq!(sock.got, b"0123456789");
    }
}

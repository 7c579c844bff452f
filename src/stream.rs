//! One TCP connection in the data phase, for either side: reads are counted
//! and scanned for the peer's status messages; writes send queued control
//! bytes first, then payload, inserting status messages only at the
//! boundaries of `chunk`-byte payload blocks.

use crate::proto::{Status, StatusScanner};
use mio::net::TcpStream;
use std::io::{self, Read, Write};

/// Control bytes (handshake replies, OK) that must precede everything else.
/// Small and fixed: the longest is EC-SRP5 message 2 (50 bytes).
#[derive(Debug)]
pub struct OutBuf {
    buf: [u8; 128],
    start: usize,
    end: usize,
}

impl OutBuf {
    pub fn new() -> OutBuf {
        OutBuf { buf: [0; 128], start: 0, end: 0 }
    }

    /// Appends bytes; false when they do not fit (a protocol bug, not input).
    pub fn push(&mut self, bytes: &[u8]) -> bool {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        let Some(dst) = self.buf.get_mut(self.end..self.end + bytes.len()) else {
            return false;
        };
        dst.copy_from_slice(bytes);
        self.end += bytes.len();
        true
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Bytes queued and not yet written.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub(crate) fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }
}

impl Default for OutBuf {
    fn default() -> Self {
        Self::new()
    }
}

/// A payload buffer: zeros, or random bytes that never contain the status
/// tag, so no payload block can be mistaken for a status message.
pub fn payload(len: usize, random: bool) -> Box<[u8]> {
    let mut b = vec![0u8; len].into_boxed_slice();
    if random {
        crate::sysrand::fill(&mut b);
        for x in b.iter_mut() {
            if *x == crate::proto::status::TAG {
                *x = !*x;
            }
        }
    }
    b
}

/// What a read pass found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadOutcome {
    pub bytes: u64,
    /// The peer closed its side.
    pub eof: bool,
    /// The read budget ran out before the socket was drained: call again.
    pub more: bool,
    /// Reading stopped at the byte limit; data may be waiting.
    pub throttled: bool,
}

/// What a write pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteOutcome {
    pub payload: u64,
    /// The socket buffer is full; wait for a writable event.
    pub blocked: bool,
    /// The write budget ran out while more could be written: call again.
    pub more: bool,
}

/// The latest status message the peer sent on this connection.
#[derive(Debug, Default, Clone, Copy)]
pub struct PeerStatus {
    pub last: Option<Status>,
    pub count: u32,
    /// Sum of the byte counts the peer reported.
    pub bytes: u64,
}

/// A data-phase TCP connection.
pub struct Stream {
    pub sock: TcpStream,
    /// Control bytes not counted as test traffic.
    pub out: OutBuf,
    /// A status message being inserted, and how much of it is written.
    status: Option<([u8; Status::LEN], usize)>,
    /// True after a write hit WouldBlock, until the next writable event.
    pub write_blocked: bool,
    /// Payload block size; statuses go only between blocks.
    chunk: u32,
    /// Bytes of the current payload block already written.
    chunk_pos: u32,
    scanner: StatusScanner,
    pub peer: PeerStatus,
    /// Test bytes read (payload and statuses) since the data phase began.
    pub rx_bytes: u64,
    /// Test bytes written (payload and statuses).
    pub tx_bytes: u64,
    /// Bytes read since the last status this side sent.
    rx_interval: u64,
}

impl Stream {
    /// `tx_chunk` is this side's write block size; `rx_random`/`rx_chunk`
    /// describe the peer's payload, which decides how statuses are found.
    pub fn new(sock: TcpStream, tx_chunk: u16, rx_random: bool, rx_chunk: u16) -> Stream {
        Stream {
            sock,
            out: OutBuf::new(),
            status: None,
            write_blocked: false,
            chunk: u32::from(tx_chunk.max(1)),
            chunk_pos: 0,
            scanner: if rx_random { StatusScanner::random(rx_chunk) } else { StatusScanner::zeros() },
            peer: PeerStatus::default(),
            rx_bytes: 0,
            tx_bytes: 0,
            rx_interval: 0,
        }
    }

    /// Sets how payload is cut into blocks once the command is known.
    pub fn set_payload(&mut self, tx_chunk: u16, rx_random: bool, rx_chunk: u16) {
        self.chunk = u32::from(tx_chunk.max(1));
        self.chunk_pos = 0;
        self.scanner = if rx_random { StatusScanner::random(rx_chunk) } else { StatusScanner::zeros() };
    }

    /// Queues a status to be written at the next payload block boundary,
    /// replacing one that has not started going out yet.
    pub fn queue_status(&mut self, status: &Status) {
        match self.status {
            Some((_, off)) if off > 0 => {}
            _ => self.status = Some((status.emit(), 0)),
        }
    }

    /// Drops the socket's registration, first trying once to send queued
    /// control bytes (such as a failure reply).
    pub fn close(&mut self, registry: &mio::Registry) {
        if !self.out.is_empty() {
            self.write_blocked = false;
            let _ = self.write(None, 0, 1);
        }
        let _ = registry.deregister(&mut self.sock);
    }

    /// True while control bytes or a status message wait to be written.
    pub fn has_pending(&self) -> bool {
        !self.out.is_empty() || self.status.is_some()
    }

    /// Reads until the socket is drained, EOF, `budget` reads or `limit` bytes.
    pub fn read(&mut self, scratch: &mut [u8], budget: u32, limit: u64) -> io::Result<ReadOutcome> {
        let mut res = ReadOutcome::default();
        for _ in 0..budget {
            let room = limit.saturating_sub(res.bytes);
            if room == 0 {
                res.throttled = true;
                self.account_rx(res.bytes);
                return Ok(res);
            }
            let len = scratch.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            match self.sock.read(&mut scratch[..len]) {
                Ok(0) => {
                    res.eof = true;
                    self.account_rx(res.bytes);
                    return Ok(res);
                }
                Ok(n) => {
                    res.bytes += n as u64;
                    let peer = &mut self.peer;
                    self.scanner.feed(&scratch[..n], |s| {
                        peer.last = Some(s);
                        peer.count += 1;
                        peer.bytes += u64::from(s.bytes);
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.account_rx(res.bytes);
                    return Ok(res);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.account_rx(res.bytes);
                    return Err(e);
                }
            }
        }
        self.account_rx(res.bytes);
        res.more = true;
        Ok(res)
    }

    /// Bytes read since the last call: what this side's next status reports.
    pub fn take_rx_interval(&mut self) -> u64 {
        std::mem::take(&mut self.rx_interval)
    }

    fn account_rx(&mut self, n: u64) {
        self.rx_bytes += n;
        self.rx_interval += n;
    }

    /// Writes control bytes, a due status, then up to `allowance` bytes of
    /// `payload` (repeated as needed), in at most `budget` write calls.
    pub fn write(&mut self, payload: Option<&[u8]>, mut allowance: u64, budget: u32) -> io::Result<WriteOutcome> {
        let mut res = WriteOutcome::default();
        if self.write_blocked {
            res.blocked = true;
            return Ok(res);
        }
        for _ in 0..budget {
            let (buf, kind) = if !self.out.is_empty() {
                (self.out.pending(), Kind::Control)
            } else if let Some((st, off)) = self.status.as_ref().filter(|_| self.chunk_pos == 0 || payload.is_none()) {
                (&st[*off..], Kind::Status)
            } else {
                let Some(p) = payload.filter(|p| !p.is_empty()) else { return Ok(res) };
                if allowance == 0 {
                    return Ok(res);
                }
                let mut len = (p.len() as u64).min(allowance);
                if self.status.is_some() {
                    len = len.min(u64::from(self.chunk - self.chunk_pos));
                }
                (&p[..len as usize], Kind::Payload)
            };
            match self.sock.write(buf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => match kind {
                    Kind::Control => self.out.consume(n),
                    Kind::Status => {
                        self.tx_bytes += n as u64;
                        if let Some((_, off)) = self.status.as_mut() {
                            *off += n;
                            if *off >= Status::LEN {
                                self.status = None;
                            }
                        }
                    }
                    Kind::Payload => {
                        self.tx_bytes += n as u64;
                        res.payload += n as u64;
                        allowance -= n as u64;
                        self.chunk_pos = ((u64::from(self.chunk_pos) + n as u64) % u64::from(self.chunk)) as u32;
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.write_blocked = true;
                    res.blocked = true;
                    return Ok(res);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        res.more = true;
        Ok(res)
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Control,
    Status,
    Payload,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbuf_refuses_overflow_and_reuses_space() {
        let mut o = OutBuf::new();
        assert!(o.push(&[1; 100]));
        assert!(!o.push(&[2; 29]));
        o.consume(100);
        assert!(o.is_empty());
        assert!(o.push(&[3; 128]));
        assert_eq!(o.pending().len(), 128);
    }
}

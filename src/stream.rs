//! One TCP connection in the data phase, for either side: reads are counted
//! and scanned for the peer's status messages; writes send queued control
//! bytes first, then payload, inserting this side's status messages where
//! the peer's scanner finds them (see [`Stream::write`]).

use crate::proto::{Status, StatusScanner};
use crate::zerocopy::{self, PayloadFile};
use mio::net::TcpStream;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// How long a zero stream is read and scanned before a peer that sent no
/// status in it is taken to send none: statuses come once a second.
pub const WATCH: Duration = Duration::from_millis(1500);
/// The most received data a reader lets wait before the kernel wakes it.
pub const MAX_READ_BATCH: u32 = 256 << 10;
/// Below this a batch saves too few wake-ups to be worth a system call.
const MIN_READ_BATCH: u32 = 16 << 10;

/// Payload to send: the bytes, and the same bytes in a payload file for
/// sending without a copy when there is one.
#[derive(Debug, Clone, Copy)]
pub struct Payload<'a> {
    pub bytes: &'a [u8],
    pub file: Option<&'a PayloadFile>,
}

/// How much of what the peer sends this side looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxMode {
    /// Every byte is read and scanned.
    Scan,
    /// Zero payload: scanned until the deadline (set at the first read).
    /// A status by then keeps `Scan`; none means the peer sends none
    /// (RouterOS and btestd clients send no TCP status), so `Discard`.
    Watch { until: Option<Instant> },
    /// Zero payload from a peer that sent no status: dropped in the kernel.
    Discard,
    /// Random payload: only block boundaries can hold a status, so the
    /// rest of each block is dropped in the kernel unread.
    Boundaries,
}

impl RxMode {
    fn name(self) -> &'static str {
        match self {
            RxMode::Scan => "scan",
            RxMode::Watch { .. } => "watch",
            RxMode::Discard => "discard",
            RxMode::Boundaries => "boundaries",
        }
    }
}

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

/// This side's statuses on their way out: at most one being written and one
/// waiting. A status queued while another waits is merged into it (bytes
/// added, latest CPU), so no byte count is lost and the sequence numbers
/// the peer sees have no gaps.
#[derive(Debug)]
struct Outgoing {
    /// The status being written, and how much of it is out.
    writing: Option<([u8; Status::LEN], usize)>,
    /// Queued, not started: the latest CPU figure and the bytes of every
    /// interval since the last status started.
    waiting: Option<(Option<u8>, u64)>,
    /// Bytes beyond what the last status's 32-bit field could carry, owed
    /// to the next one.
    carry: u64,
    /// Sequence number of the next status to start; the first is 1.
    seq: u32,
}

impl Outgoing {
    fn new() -> Outgoing {
        Outgoing { writing: None, waiting: None, carry: 0, seq: 1 }
    }

    fn queue(&mut self, cpu: Option<u8>, bytes: u64) {
        let before = self.waiting.map_or(0, |(_, b)| b);
        self.waiting = Some((cpu, before.saturating_add(bytes)));
    }

    /// Turns the waiting status into the one being written.
    fn start(&mut self) {
        if self.writing.is_some() {
            return;
        }
        let Some((cpu, bytes)) = self.waiting.take() else { return };
        let total = bytes.saturating_add(std::mem::take(&mut self.carry));
        let sent = u32::try_from(total).unwrap_or(u32::MAX);
        self.carry = total - u64::from(sent);
        self.writing = Some((Status { cpu, seq: self.seq, bytes: sent }.emit(), 0));
        self.seq = self.seq.wrapping_add(1);
    }

    /// Records `n` more bytes of the status being written.
    fn wrote(&mut self, n: usize) {
        if let Some((_, off)) = self.writing.as_mut() {
            *off += n;
            if *off >= Status::LEN {
                self.writing = None;
            }
        }
    }
}

/// The receive low-water mark for `bytes` read in `elapsed`: a
/// millisecond's worth rounded down to a power of two, between
/// [`MIN_READ_BATCH`] and the smaller of [`MAX_READ_BATCH`] and `cap`;
/// 1 (read whatever arrives) below that.
fn read_batch(bytes: u64, elapsed: Duration, cap: u32) -> u32 {
    let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX).max(1);
    let want = (bytes / ms).min(u64::from(cap.min(MAX_READ_BATCH)));
    if want < u64::from(MIN_READ_BATCH) {
        return 1;
    }
    1 << (63 - want.leading_zeros())
}

/// A data-phase TCP connection.
pub struct Stream {
    pub sock: TcpStream,
    /// Control bytes not counted as test traffic.
    pub out: OutBuf,
    statuses: Outgoing,
    /// True after a write hit WouldBlock, until the next writable event.
    pub write_blocked: bool,
    /// Payload block size; with random payload statuses go only between blocks.
    chunk: u32,
    /// Bytes of the current payload block already written.
    chunk_pos: u32,
    /// This side's payload is random (else zeros).
    random: bool,
    scanner: StatusScanner,
    pub peer: PeerStatus,
    /// Test bytes read (payload and statuses) since the data phase began.
    pub rx_bytes: u64,
    /// Test bytes written (payload and statuses).
    pub tx_bytes: u64,
    /// Bytes read since the last status this side sent.
    rx_interval: u64,
    /// Set for traced peers: statuses both ways and byte counts are logged.
    pub trace: Option<Box<crate::trace::Trace>>,
    rx_mode: RxMode,
    /// The peer's payload block size.
    rx_chunk: u16,
    /// The socket's receive low-water mark (1: the kernel's default).
    read_batch: u32,
    /// `rx_bytes` and the time when `read_batch` was last chosen.
    batch_mark: Option<(u64, Instant)>,
}

impl Stream {
    /// `tx_chunk` is this side's write block size, `rx_chunk` the peer's;
    /// `random` says whether the test's payload (both ways) is random,
    /// which decides where statuses go and how the peer's are found.
    pub fn new(sock: TcpStream, tx_chunk: u16, random: bool, rx_chunk: u16) -> Stream {
        let mut st = Stream {
            sock,
            out: OutBuf::new(),
            statuses: Outgoing::new(),
            write_blocked: false,
            chunk: 1,
            chunk_pos: 0,
            random: false,
            scanner: StatusScanner::zeros(),
            peer: PeerStatus::default(),
            rx_bytes: 0,
            tx_bytes: 0,
            rx_interval: 0,
            trace: None,
            rx_mode: RxMode::Scan,
            rx_chunk: 1,
            read_batch: 1,
            batch_mark: None,
        };
        st.set_payload(tx_chunk, random, rx_chunk);
        st
    }

    /// Sets how payload is cut into blocks once the command is known.
    pub fn set_payload(&mut self, tx_chunk: u16, random: bool, rx_chunk: u16) {
        self.chunk = u32::from(tx_chunk.max(1));
        self.chunk_pos = 0;
        self.random = random;
        self.rx_chunk = rx_chunk;
        self.rx_mode = RxMode::Scan;
        self.scanner = if random { StatusScanner::random(rx_chunk) } else { StatusScanner::zeros() };
    }

    /// Drops received payload in the kernel where no status can hide in it:
    /// every block's rest for random payload (blocks of at least 1 KiB, so
    /// that the reads at the boundaries stay few); for zeros, everything
    /// after [`WATCH`] when the peer sent no status by then.
    pub fn discard_unread_payload(&mut self) {
        if !zerocopy::discard_ok() {
            return;
        }
        let mode = match (self.random, self.rx_chunk) {
            (true, chunk) if chunk >= 1024 => RxMode::Boundaries,
            (true, _) => RxMode::Scan,
            (false, _) => RxMode::Watch { until: None },
        };
        self.set_rx_mode(mode);
    }

    /// The one place the receive mode changes.
    fn set_rx_mode(&mut self, mode: RxMode) {
        if mode.name() != self.rx_mode.name() {
            let peer = self.sock.peer_addr().map_or_else(|_| "?".into(), |a| a.to_string());
            log::debug!("data connection from {peer}: receive {} -> {}", self.rx_mode.name(), mode.name());
        }
        self.rx_mode = mode;
    }

    /// Ends a watch: a status seen keeps scanning, none by the deadline
    /// drops the rest unread.
    fn watch(&mut self, until: Option<Instant>) {
        if self.peer.count > 0 {
            self.set_rx_mode(RxMode::Scan);
            return;
        }
        let now = Instant::now();
        match until {
            None => self.rx_mode = RxMode::Watch { until: Some(now + WATCH) },
            Some(u) if now >= u => self.set_rx_mode(RxMode::Discard),
            Some(_) => {}
        }
    }

    /// Bytes that may be dropped unread now, at most `room`.
    fn blind(&self, room: u64) -> usize {
        let room = usize::try_from(room).unwrap_or(usize::MAX);
        match self.rx_mode {
            RxMode::Discard => room,
            RxMode::Boundaries => self.scanner.blind_run().min(room),
            RxMode::Scan | RxMode::Watch { .. } => 0,
        }
    }

    /// For a UDP test's control connection: no payload either way, so the
    /// peer's statuses are read as back-to-back frames, whatever payload
    /// the datagrams carry.
    pub fn set_statuses_only(&mut self) {
        self.set_payload(1, false, 1);
        self.scanner = StatusScanner::frames();
    }

    /// Queues this interval's status (`bytes` received, `cpu` load). One
    /// that has not started going out yet absorbs it instead, keeping the
    /// bytes of both.
    pub fn queue_status(&mut self, cpu: Option<u8>, bytes: u64) {
        self.statuses.queue(cpu, bytes);
    }

    /// Bytes the peer sent on a statuses-only connection that were not
    /// part of a status.
    pub fn peer_junk(&self) -> u64 {
        self.scanner.skipped()
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
        !self.out.is_empty() || self.statuses.writing.is_some() || self.statuses.waiting.is_some()
    }

    /// Reads until the socket is drained, EOF, `budget` reads or `limit` bytes.
    pub fn read(&mut self, scratch: &mut [u8], budget: u32, limit: u64) -> io::Result<ReadOutcome> {
        let mut res = ReadOutcome::default();
        if let RxMode::Watch { until } = self.rx_mode {
            self.watch(until);
        }
        let r = self.read_into(scratch, budget, limit, &mut res);
        self.account_rx(res.bytes);
        r.map(|()| res)
    }

    /// The reads of [`Stream::read`]; what they moved is in `res`, also on error.
    fn read_into(&mut self, scratch: &mut [u8], budget: u32, limit: u64, res: &mut ReadOutcome) -> io::Result<()> {
        for _ in 0..budget {
            let room = limit.saturating_sub(res.bytes);
            if room == 0 {
                res.throttled = true;
                return Ok(());
            }
            let blind = if zerocopy::discard_ok() { self.blind(room) } else { 0 };
            // Bytes nothing needs to see are dropped in the kernel; the rest
            // are read and scanned for statuses.
            let got = match (blind > 0).then(|| zerocopy::discard(self.sock.as_raw_fd(), blind)) {
                Some(Err(e)) if zerocopy::unsupported(&e) => {
                    zerocopy::disable_discard(&e);
                    self.read_scanned(scratch, room)
                }
                Some(r) => r.inspect(|&n| self.scanner.skip_blind(n)),
                None => self.read_scanned(scratch, room),
            };
            match got {
                Ok(0) => {
                    res.eof = true;
                    return Ok(());
                }
                Ok(n) => res.bytes += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        res.more = true;
        Ok(())
    }

    /// One read of at most `room` bytes into `scratch`, fed to the status scanner.
    fn read_scanned(&mut self, scratch: &mut [u8], room: u64) -> io::Result<usize> {
        let mut len = scratch.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        if self.rx_mode == RxMode::Boundaries && zerocopy::discard_ok() {
            // At a block boundary: a status's worth tells what follows.
            len = len.min(Status::LEN);
        }
        let n = self.sock.read(&mut scratch[..len])?;
        let (peer, trace) = (&mut self.peer, &self.trace);
        self.scanner.feed_raw(&scratch[..n], |s, raw| {
            peer.last = Some(s);
            peer.count += 1;
            peer.bytes += u64::from(s.bytes);
            if let Some(t) = trace {
                t.line(format_args!("rx {}", crate::trace::status(raw)));
            }
        });
        Ok(n)
    }

    /// Lets the kernel wake this side only once about a millisecond of
    /// the peer's data waits, `cap` bytes at most: at tens of Gbit/s a
    /// wake-up for every 64 KiB segment costs more CPU than the reads
    /// themselves. Called about once a second; the mark follows the rate
    /// measured since the last call, so a peer that slows down is read
    /// promptly again within a second. Linux only: there a reader whose
    /// window is full is woken whatever the mark, and data below it is
    /// still returned by a read.
    pub fn batch_reads(&mut self, now: Instant, cap: u32) {
        let Some((bytes, at)) = self.batch_mark.replace((self.rx_bytes, now)) else { return };
        let (bytes, elapsed) = (self.rx_bytes - bytes, now.saturating_duration_since(at));
        let mut want = read_batch(bytes, elapsed, cap);
        if want == self.read_batch || !cfg!(any(target_os = "linux", target_os = "android")) {
            return;
        }
        let fd = self.sock.as_raw_fd();
        if want > 1 {
            // Within a quarter of the buffer the kernel has now (it reports
            // it doubled): a mark it cannot hold makes Linux grow the buffer
            // and clamp the window to the mark.
            let buf = crate::net::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF).unwrap_or(0);
            want = read_batch(bytes, elapsed, cap.min(u32::try_from(buf / 4).unwrap_or(0)));
            if want == self.read_batch {
                return;
            }
        }
        let value = libc::c_int::try_from(want).unwrap_or(libc::c_int::MAX);
        match crate::net::setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVLOWAT, value) {
            Ok(()) => self.read_batch = want,
            // Nothing lost: reads stay as they were.
            Err(e) => log::debug!("SO_RCVLOWAT {want}: {e}"),
        }
    }

    /// Bytes read since the last call: what this side's next status reports.
    pub fn take_rx_interval(&mut self) -> u64 {
        std::mem::take(&mut self.rx_interval)
    }

    fn account_rx(&mut self, n: u64) {
        self.rx_bytes += n;
        self.rx_interval += n;
        if let Some(t) = self.trace.as_mut() {
            t.tick(self.rx_bytes, self.tx_bytes);
        }
    }

    /// Whether a waiting status may start at this write boundary: at a
    /// block boundary; or, mid-block, when no payload goes out now (none
    /// offered, or no allowance left: out of tokens under a rate cap) and
    /// the payload is zeros, in which the peer finds a status anywhere.
    /// Random payload keeps it for the end of the block, the only place
    /// the peer's scanner looks; statuses keep their bytes meanwhile.
    fn status_may_start(&self, payload: Option<&[u8]>, allowance: u64) -> bool {
        let sending = payload.is_some_and(|p| !p.is_empty());
        !sending || self.chunk_pos == 0 || (!self.random && allowance == 0)
    }

    /// Writes control bytes, a due status, then up to `allowance` bytes of
    /// `payload` (repeated as needed), in at most `budget` write calls.
    pub fn write(&mut self, payload: Option<&[u8]>, allowance: u64, budget: u32) -> io::Result<WriteOutcome> {
        self.write_from(payload.map(|bytes| Payload { bytes, file: None }), allowance, budget)
    }

    /// [`Stream::write`] with payload that may go out without a copy from its
    /// payload file: bytes of the same kind, cut at the same places.
    pub fn write_from(
        &mut self,
        payload: Option<Payload<'_>>,
        mut allowance: u64,
        budget: u32,
    ) -> io::Result<WriteOutcome> {
        let file = payload.and_then(|p| p.file).filter(|_| zerocopy::send_ok());
        let payload = payload.map(|p| p.bytes);
        let mut res = WriteOutcome::default();
        // A zero-copy call may take the whole file, which can exceed the bytes.
        let mut whole = 0;
        if let Some(t) = self.trace.as_mut() {
            t.tick(self.rx_bytes, self.tx_bytes);
        }
        if self.write_blocked {
            res.blocked = true;
            return Ok(res);
        }
        for _ in 0..budget {
            if self.out.is_empty() && self.statuses.waiting.is_some() && self.status_may_start(payload, allowance) {
                self.statuses.start();
                if let (Some(t), Some((st, 0))) = (&self.trace, &self.statuses.writing) {
                    t.line(format_args!("tx {}", crate::trace::status(st)));
                }
            }
            let (buf, kind) = match (&self.statuses.writing, self.out.is_empty()) {
                // A status partly out comes first: its bytes stay together.
                (Some((st, off)), _) if *off > 0 => (&st[*off..], Kind::Status),
                (_, false) => (self.out.pending(), Kind::Control),
                (Some((st, off)), true) => (&st[*off..], Kind::Status),
                (None, true) => {
                    let Some(p) = payload.filter(|p| !p.is_empty()) else { return Ok(res) };
                    if allowance == 0 {
                        return Ok(res);
                    }
                    let max = file.map_or(p.len(), |f| f.len().max(p.len()));
                    let mut len = (max as u64).min(allowance);
                    if self.statuses.waiting.is_some() {
                        // Stop at the block boundary, where the status goes.
                        len = len.min(u64::from(self.chunk - self.chunk_pos));
                    }
                    whole = len as usize;
                    (&p[..whole.min(p.len())], Kind::Payload)
                }
            };
            let sent = match (kind, file) {
                (Kind::Payload, Some(f)) if zerocopy::send_ok() => {
                    match zerocopy::send(self.sock.as_raw_fd(), f, whole) {
                        Err(e) if zerocopy::unsupported(&e) => {
                            zerocopy::disable_send(&e);
                            self.sock.write(buf)
                        }
                        other => other,
                    }
                }
                _ => self.sock.write(buf),
            };
            match sent {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => match kind {
                    Kind::Control => self.out.consume(n),
                    Kind::Status => {
                        self.tx_bytes += n as u64;
                        self.statuses.wrote(n);
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
    use std::io::ErrorKind;
    use std::time::{Duration, Instant};

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

    /// A connected loopback pair: our non-blocking stream (payload in
    /// `chunk`-byte blocks) and the peer's blocking end.
    fn pair(chunk: u16, random: bool) -> (Stream, std::net::TcpStream) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (ours, _) = l.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (Stream::new(TcpStream::from_std(ours), chunk, random, chunk), peer)
    }

    #[test]
    fn read_batches_follow_a_millisecond_of_the_rate() {
        let sec = Duration::from_secs(1);
        let gbit = |g: u64| g * 1_000_000_000 / 8;
        assert_eq!(read_batch(0, sec, MAX_READ_BATCH), 1);
        assert_eq!(read_batch(gbit(1) / 10, sec, MAX_READ_BATCH), 1, "100 Mbit/s: 12.5 kB per ms");
        assert_eq!(read_batch(gbit(1), sec, MAX_READ_BATCH), 64 << 10, "1 Gbit/s: 125 kB per ms");
        assert_eq!(read_batch(gbit(2), sec, MAX_READ_BATCH), 128 << 10, "2 Gbit/s: 250 kB per ms");
        assert_eq!(read_batch(gbit(40), sec, MAX_READ_BATCH), MAX_READ_BATCH, "capped");
        assert_eq!(read_batch(gbit(40), sec, 64 << 10), 64 << 10, "within a small socket buffer");
        assert_eq!(read_batch(gbit(40), sec, 1000), 1, "a buffer too small to batch");
        assert_eq!(read_batch(gbit(2), sec * 2, MAX_READ_BATCH), 64 << 10, "per millisecond of the time given");
        assert_eq!(read_batch(u64::MAX, Duration::ZERO, MAX_READ_BATCH), MAX_READ_BATCH);
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn a_fast_peer_is_read_in_batches_and_a_slow_one_at_once() {
        let lowat =
            |st: &Stream| crate::net::getsockopt_int(st.sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVLOWAT).unwrap();
        let (mut st, mut peer) = pair(1500, false);
        let t0 = Instant::now();
        st.batch_reads(t0, MAX_READ_BATCH);
        assert_eq!(lowat(&st), 1, "no rate measured yet");
        st.rx_bytes = 2_000_000_000 / 8;
        st.batch_reads(t0 + Duration::from_secs(1), MAX_READ_BATCH);
        let held = crate::net::getsockopt_int(st.sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF).unwrap();
        let quarter = 1 << (31 - (held / 4).leading_zeros());
        assert_eq!(lowat(&st), quarter.min(128 << 10), "2 Gbit/s: 128 KiB, within a quarter of {held}");
        // A small buffer bounds the mark: a quarter of what the kernel holds.
        let mut small = pair(1500, false).0;
        crate::net::setsockopt_int(small.sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, 128 << 10).unwrap();
        small.batch_reads(t0, MAX_READ_BATCH);
        small.rx_bytes = 40_000_000_000 / 8;
        small.batch_reads(t0 + Duration::from_secs(1), MAX_READ_BATCH);
        assert_eq!(lowat(&small), 64 << 10, "256 KiB held: 64 KiB");
        // Below the mark a read still returns what waits.
        peer.write_all(&[0u8; 3000]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = 0;
        while got < 3000 && Instant::now() < deadline {
            got += st.read(&mut [0u8; 4096], 1, u64::MAX).unwrap().bytes;
        }
        assert_eq!(got, 3000);
        st.batch_reads(t0 + Duration::from_secs(2), MAX_READ_BATCH);
        assert_eq!(lowat(&st), 1, "the peer slowed down");
    }

    fn read_exact(peer: &mut std::net::TcpStream, n: usize) -> Vec<u8> {
        let mut b = vec![0u8; n];
        peer.read_exact(&mut b).unwrap();
        b
    }

    /// Asserts nothing more arrives within a short while.
    fn nothing_more(peer: &mut std::net::TcpStream) {
        peer.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let err = peer.read(&mut [0u8; 64]).expect_err("no more bytes");
        assert!(matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{err}");
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }

    fn one_status(bytes: &[u8]) -> Status {
        Status::parse(bytes).unwrap()
    }

    #[test]
    fn statuses_queued_before_one_goes_out_are_merged_with_their_bytes() {
        let (mut st, mut peer) = pair(1, false);
        st.queue_status(Some(5), 100);
        st.queue_status(Some(6), 50);
        assert!(st.has_pending());
        st.write(None, 0, 16).unwrap();
        assert!(!st.has_pending());
        assert_eq!(one_status(&read_exact(&mut peer, 12)), Status { cpu: Some(6), seq: 1, bytes: 150 });
        nothing_more(&mut peer);
        st.queue_status(None, 7);
        st.write(None, 0, 16).unwrap();
        assert_eq!(one_status(&read_exact(&mut peer, 12)), Status { cpu: None, seq: 2, bytes: 7 });
        assert_eq!(st.tx_bytes, 24);
    }

    #[test]
    fn a_status_queued_while_one_is_written_follows_it() {
        let mut o = Outgoing::new();
        o.queue(Some(1), 10);
        o.start();
        o.wrote(5);
        o.queue(Some(2), 20);
        o.start();
        let (first, off) = o.writing.unwrap();
        assert_eq!((one_status(&first).bytes, off), (10, 5), "the first is finished, not replaced");
        o.wrote(7);
        assert!(o.writing.is_none());
        o.start();
        let (second, _) = o.writing.unwrap();
        assert_eq!(one_status(&second), Status { cpu: Some(2), seq: 2, bytes: 20 });
    }

    #[test]
    fn counts_beyond_32_bits_carry_to_the_next_status() {
        let mut o = Outgoing::new();
        o.queue(None, u64::from(u32::MAX) + 10);
        o.start();
        assert_eq!(one_status(&o.writing.unwrap().0).bytes, u32::MAX);
        o.wrote(12);
        o.queue(None, 5);
        o.start();
        assert_eq!(one_status(&o.writing.unwrap().0).bytes, 15);
    }

    #[test]
    fn zero_payload_status_goes_out_when_tokens_run_out_mid_block() {
        let (mut st, mut peer) = pair(1000, false);
        let payload = payload(4096, false);
        assert_eq!(st.write(Some(&payload), 300, 16).unwrap().payload, 300);
        st.queue_status(Some(9), 42);
        // No tokens left: the status goes now, 300 bytes into the block.
        assert_eq!(st.write(Some(&payload), 0, 16).unwrap().payload, 0);
        let got = read_exact(&mut peer, 312);
        assert!(got[..300].iter().all(|&b| b == 0));
        assert_eq!(one_status(&got[300..]), Status { cpu: Some(9), seq: 1, bytes: 42 });
        // With tokens, a due status waits for the block boundary.
        st.queue_status(Some(9), 1);
        assert_eq!(st.write(Some(&payload), 2000, 16).unwrap().payload, 2000);
        let got = read_exact(&mut peer, 2012);
        assert!(got[..700].iter().all(|&b| b == 0));
        assert_eq!(one_status(&got[700..712]).seq, 2);
        assert!(got[712..].iter().all(|&b| b == 0));
    }

    #[test]
    fn random_payload_status_waits_for_the_block_boundary() {
        let (mut st, mut peer) = pair(1000, true);
        let payload = payload(4096, true);
        assert_eq!(st.write(Some(&payload), 300, 16).unwrap().payload, 300);
        st.queue_status(Some(9), 42);
        st.write(Some(&payload), 0, 16).unwrap();
        st.queue_status(Some(10), 8);
        let mut got = read_exact(&mut peer, 300);
        nothing_more(&mut peer);
        // Tokens again: the block is finished, then the merged status.
        assert_eq!(st.write(Some(&payload), 2000, 16).unwrap().payload, 2000);
        got.extend(read_exact(&mut peer, 2012));
        assert_eq!(got.iter().position(|&b| b == crate::proto::status::TAG), Some(1000));
        assert_eq!(one_status(&got[1000..1012]), Status { cpu: Some(10), seq: 1, bytes: 50 });
        let mut found = Vec::new();
        StatusScanner::random(1000).feed(&got, |s| found.push(s));
        assert_eq!(found.len(), 1, "the peer's scanner finds it");
    }

    #[test]
    fn statuses_only_connection_reads_frames_after_junk() {
        let (mut st, mut peer) = pair(1, true);
        st.set_statuses_only();
        let good = Status { cpu: Some(3), seq: 1, bytes: 99 }.emit();
        peer.write_all(&[0x42]).unwrap();
        peer.write_all(&good).unwrap();
        peer.write_all(&good).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut scratch = [0u8; 64];
        while st.rx_bytes < 25 && Instant::now() < deadline {
            st.read(&mut scratch, 16, u64::MAX).unwrap();
        }
        assert_eq!((st.peer.count, st.peer.bytes, st.peer_junk()), (2, 198, 1));
        // Our statuses go out at once: no payload on this connection.
        st.queue_status(Some(1), 0);
        st.write(None, 0, 16).unwrap();
        assert_eq!(one_status(&read_exact(&mut peer, 12)).seq, 1);
    }
}

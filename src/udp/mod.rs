//! A UDP test flow, for either side: paced, sequence-numbered datagrams out
//! at the rate the peer's reports allow (`ramp.rs`), counted and
//! loss-tracked datagrams in, and the peer's address learned from the first
//! datagram of the control connection's IP (NAT).

pub mod batch;
pub mod loss;
pub mod ramp;

pub use batch::IoMode;

use crate::pacer::TokenBucket;
use crate::proto::udp as wire;
use mio::net::UdpSocket;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// What a send pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendOutcome {
    pub datagrams: u64,
    /// The socket buffer is full; wait for a writable event.
    pub blocked: bool,
    /// The budget ran out with more allowed: call again.
    pub more: bool,
    /// The pacer allows the next datagram at this time.
    pub wait: Option<Instant>,
    /// Sending stopped at the caller's byte limit.
    pub limited: bool,
}

/// What a receive pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecvOutcome {
    /// Datagrams from the peer, data or not.
    pub datagrams: u64,
    /// The budget ran out before the socket was drained.
    pub more: bool,
}

pub struct UdpFlow {
    pub sock: UdpSocket,
    mode: IoMode,
    sender: batch::Sender,
    /// Receive offload is on: datagrams may arrive coalesced.
    gro: bool,
    /// Only datagrams from this IP count, and only it is sent to.
    peer_ip: IpAddr,
    /// Where datagrams go: `peer_ip` at the protocol's port until the first
    /// datagram from `peer_ip` shows the real (possibly translated) port.
    pub dest: SocketAddr,
    learned: bool,
    ipv6: bool,
    /// UDP payload bytes per datagram sent, sequence number included.
    payload_len: usize,
    /// IP-level size of a sent datagram; rates and counters use it.
    wire_len: u64,
    next_seq: u32,
    pacer: TokenBucket,
    /// Decides the rate from the peer's reports; the pacer follows it.
    ramp: ramp::Ramp,
    /// The rate last given to the pacer, bits/s.
    paced_bps: u64,
    /// `tx_bytes` when the peer's last report arrived.
    tx_at_report: u64,
    /// The sum of the byte counts the peer reported so far.
    reported: u64,
    /// True after a send hit a full buffer, until a writable event.
    pub write_blocked: bool,
    /// IP-level bytes sent and received.
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    /// Received since the last status this side sent.
    rx_interval: u64,
    loss: loss::PerSource,
    /// Datagrams from other addresses, ignored.
    pub foreign: u64,
}

/// Datagram pacing rate for `bps`: below two datagrams a second, RouterOS
/// sends exactly one per second.
fn pace_bps(bps: u64, wire_len: u64) -> u64 {
    if bps > 0 && bps < wire_len * 8 * 2 { wire_len * 8 } else { bps }
}

/// About 4 ms of traffic and at least two datagrams, so that wakeups with a
/// poll's millisecond granularity, a millisecond late, lose nothing.
fn burst(bps: u64, wire_len: u64) -> u64 {
    (bps / 8 / 250).clamp(2 * wire_len, 4 << 20)
}

impl UdpFlow {
    /// `dest` is the peer's protocol port (server port + 256 for a server);
    /// `tx_size` the IP packet size of our datagrams; `asked` the rate the
    /// test asked for (bits/s), where sending starts and which it never
    /// exceeds, or 0 to ramp up from a low start; `limit` the operator's cap
    /// (0 = none).
    pub fn new(
        sock: UdpSocket,
        mode: IoMode,
        dest: SocketAddr,
        tx_size: u16,
        asked: u64,
        limit: u64,
        now: Instant,
    ) -> UdpFlow {
        let ipv6 = dest.is_ipv6();
        let payload_len = wire::payload_len(tx_size, ipv6);
        let wire_len = wire::wire_len(payload_len, ipv6) as u64;
        let ramp = ramp::Ramp::new(asked, limit, now);
        let rate = pace_bps(ramp.rate(now), wire_len);
        let gro = batch::enable_gro(&sock, mode);
        UdpFlow {
            sock,
            mode,
            sender: batch::Sender::new(mode),
            gro,
            peer_ip: dest.ip(),
            dest,
            learned: false,
            ipv6,
            payload_len,
            wire_len,
            next_seq: 0,
            pacer: TokenBucket::new(rate, burst(rate, wire_len), now),
            ramp,
            paced_bps: rate,
            tx_at_report: 0,
            reported: 0,
            write_blocked: false,
            tx_bytes: 0,
            rx_bytes: 0,
            rx_interval: 0,
            loss: loss::PerSource::default(),
            foreign: 0,
        }
    }

    /// Payload bytes a send needs from the shared buffer.
    pub fn payload_len(&self) -> usize {
        self.payload_len
    }

    pub fn rate_bps(&self) -> u64 {
        self.pacer.rate_bps()
    }

    /// Bytes received since the last call: what this side's next status reports.
    pub fn take_rx_interval(&mut self) -> u64 {
        std::mem::take(&mut self.rx_interval)
    }

    /// (lost, received) datagram counts.
    pub fn loss(&self) -> (u64, u64) {
        self.loss.totals()
    }

    /// Changes the operator's cap (0 = none; shared by more tests); a rate
    /// the test asked for stays a cap too.
    pub fn set_cap(&mut self, cap: u64, now: Instant) {
        self.ramp.set_limit(cap);
        self.pace(now);
    }

    /// Applies the peer's statuses: `reported` is the sum of the byte
    /// counts in all of them so far (a read can bring two at once), set
    /// against what we sent since the previous one arrived.
    pub fn adapt(&mut self, reported: u64, now: Instant) {
        let received = reported.saturating_sub(self.reported);
        self.reported = reported;
        let sent = self.tx_bytes - self.tx_at_report;
        self.tx_at_report = self.tx_bytes;
        self.ramp.report(received, sent, now);
        self.pace(now);
    }

    /// Gives the pacer the ramp's rate for `now`, keeping the tokens earned.
    fn pace(&mut self, now: Instant) {
        let bps = pace_bps(self.ramp.rate(now), self.wire_len);
        if bps != self.paced_bps {
            self.paced_bps = bps;
            self.pacer.set_rate(bps, burst(bps, self.wire_len), now);
        }
    }

    /// Sends as many datagrams as the pacer and `limit` (IP-level bytes)
    /// allow, in at most `budget` batches. `payload` must hold at least
    /// `payload_len() - 4` bytes.
    pub fn send(&mut self, payload: &[u8], now: Instant, budget: u32, mut limit: u64) -> io::Result<SendOutcome> {
        let mut out = SendOutcome::default();
        if self.write_blocked {
            out.blocked = true;
            return Ok(out);
        }
        self.pace(now);
        let body = &payload[..(self.payload_len - wire::MIN_PAYLOAD).min(payload.len())];
        for _ in 0..budget {
            let paced = self.pacer.available(now) / self.wire_len;
            if paced == 0 {
                out.wait = Some(self.pacer.ready_at(self.wire_len));
                return Ok(out);
            }
            let n = paced.min(limit / self.wire_len).min(batch::MAX_SEND as u64) as usize;
            if n == 0 {
                out.limited = true;
                return Ok(out);
            }
            let sent = match self.sender.send(&self.sock, self.dest, self.next_seq, body, n) {
                Ok(sent) => sent,
                // The interface queue is full: try again shortly (no event will say when).
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    out.wait = Some(now + Duration::from_millis(1));
                    return Ok(out);
                }
                Err(e) => return Err(e),
            };
            self.next_seq = self.next_seq.wrapping_add(sent as u32);
            let bytes = sent as u64 * self.wire_len;
            self.pacer.consume(bytes);
            limit -= bytes;
            self.tx_bytes += bytes;
            out.datagrams += sent as u64;
            if sent < n {
                self.write_blocked = true;
                out.blocked = true;
                return Ok(out);
            }
        }
        out.more = true;
        Ok(out)
    }

    /// Receives what is queued, in at most `budget` batches.
    pub fn recv(&mut self, scratch: &mut [u8], budget: u32) -> io::Result<RecvOutcome> {
        let mut out = RecvOutcome::default();
        let Self { sock, mode, gro, peer_ip, dest, learned, ipv6, rx_bytes, rx_interval, loss, foreign, .. } = self;
        for _ in 0..budget {
            let got = batch::recv(sock, *mode, *gro, scratch, batch::BATCH, &mut |d| {
                if d.src.ip().to_canonical() != *peer_ip {
                    *foreign += 1;
                    return;
                }
                out.datagrams += 1;
                if !*learned {
                    *learned = true;
                    if d.src != *dest {
                        log::debug!("UDP peer {} sends from {}; replying there", dest, d.src);
                    }
                    *dest = d.src;
                }
                if let Some(seq) = d.seq {
                    // Duplicates and datagrams too old to place are not test traffic.
                    if matches!(loss.record(d.src.port(), seq), loss::Arrival::New | loss::Arrival::Late) {
                        let n = wire::wire_len(d.len, *ipv6) as u64;
                        *rx_bytes += n;
                        *rx_interval += n;
                    }
                }
            })?;
            if got == 0 {
                return Ok(out);
            }
        }
        out.more = true;
        Ok(out)
    }
}

/// Asks the kernel for socket buffers big enough for fast tests; the
/// kernel caps the values at its own limits, which is fine.
pub fn grow_buffers(sock: &UdpSocket) {
    use std::os::fd::AsRawFd;
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        let _ = crate::net::setsockopt_int(sock.as_raw_fd(), libc::SOL_SOCKET, opt, 4 << 20);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_rates_send_one_datagram_per_second() {
        assert_eq!(pace_bps(8_000, 1500), 12_000);
        assert_eq!(pace_bps(23_999, 1500), 12_000);
        assert_eq!(pace_bps(24_000, 1500), 24_000);
        assert_eq!(pace_bps(0, 1500), 0);
    }

    fn flow(asked: u64, limit: u64) -> UdpFlow {
        let sock = crate::net::udp_socket("127.0.0.1:0".parse().unwrap()).unwrap();
        UdpFlow::new(sock, IoMode::Portable, "127.0.0.1:9".parse().unwrap(), 1500, asked, limit, Instant::now())
    }

    #[test]
    fn the_pacer_follows_the_ramp_under_the_caps() {
        let f = flow(0, 0);
        assert_eq!(f.rate_bps(), ramp::START_BPS, "no asked rate: a low start, never unlimited");
        let mut f = flow(10_000_000, 0);
        assert_eq!(f.rate_bps(), 10_000_000, "an asked rate is the start");
        let now = Instant::now();
        f.tx_bytes = 1_250_000;
        f.adapt(100_000, now + Duration::from_secs(1));
        assert_eq!(f.reported, 100_000);
        assert!(f.rate_bps().abs_diff(840_000) < 1000, "8 % arrived: held at 105 % of it: {}", f.rate_bps());
        f.set_cap(500_000, now);
        assert_eq!(f.rate_bps(), 500_000, "the operator's cap");
        let mut f = flow(0, 5_000_000);
        assert_eq!(f.rate_bps(), 5_000_000);
        f.set_cap(0, now);
        assert_eq!(f.rate_bps(), ramp::START_BPS);
    }

    #[test]
    fn sizes_follow_tx_size() {
        let f = flow(0, 0);
        assert_eq!(f.payload_len(), 1472);
        assert_eq!(f.wire_len, 1500);
    }
}

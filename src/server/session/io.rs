//! The session's data path: readiness and timer handlers. Each returns
//! `Err(EndReason)` when the test is over; only the loop ends sessions.

use super::{EndReason, Phase, Session, Transport, is_peer_close};
use crate::proto::Protocol;
use crate::server::config::Limits;
use crate::server::rates::Rates;
use crate::stream::Payload;
use crate::zerocopy::PayloadFile;
use std::time::Instant;

/// Reads or writes per readiness event before yielding to other sockets.
pub const IO_BUDGET: u32 = 16;
/// TCP bytes one loop iteration moves at most, over all connections, so
/// that no iteration keeps other sockets and timers waiting for more than
/// a millisecond or two. One connection may take all of it: a handler that
/// stops at the budget waits its turn in the `Ready` queue, which serves
/// connections first come first served, and large calls are what make
/// zero-copy sends and the kernel-side discard cheap (256 KiB calls cost a fifth
/// more CPU per GB sent than 1 MiB ones on loopback).
pub const ITERATION_BYTES: u64 = 1 << 20;
/// Size of the shared receive scratch and transmit payload buffers.
const BUF_LEN: usize = 256 * 1024;

/// Shared buffers: the loop is single-threaded, so one of each serves all.
pub struct Buffers {
    scratch: Box<[u8]>,
    zeros: Box<[u8]>,
    /// Random payload without the status tag byte, made on first use.
    random: Option<Box<[u8]>>,
    /// The payloads in payload files for zero-copy sends, made on first use;
    /// `None` inside when the file could not be made.
    zeros_file: Option<Option<PayloadFile>>,
    random_file: Option<Option<PayloadFile>>,
    /// TCP bytes this loop iteration may still move.
    turn_left: u64,
}

impl Buffers {
    pub fn new() -> Buffers {
        crate::zerocopy::init();
        Buffers {
            scratch: vec![0u8; BUF_LEN].into_boxed_slice(),
            zeros: vec![0u8; BUF_LEN].into_boxed_slice(),
            random: None,
            zeros_file: None,
            random_file: None,
            turn_left: ITERATION_BYTES,
        }
    }

    /// A new loop iteration: its TCP byte budget starts full.
    pub fn new_iteration(&mut self) {
        self.turn_left = ITERATION_BYTES;
    }

    /// This iteration's TCP byte budget is used up.
    pub fn iteration_spent(&self) -> bool {
        self.turn_left == 0
    }

    fn payload(&mut self, random: bool) -> &[u8] {
        if !random {
            return &self.zeros;
        }
        self.random.get_or_insert_with(|| crate::stream::payload(BUF_LEN, true))
    }

    /// The payload for a TCP write: with its payload file while zero-copy send is in use.
    fn tcp_payload(&mut self, random: bool) -> Payload<'_> {
        self.payload(random);
        let (bytes, file) = if random {
            (self.random.as_deref().unwrap_or(&self.zeros), &mut self.random_file)
        } else {
            (&self.zeros[..], &mut self.zeros_file)
        };
        if !crate::zerocopy::send_ok() {
            return Payload { bytes, file: None };
        }
        let file = file.get_or_insert_with(|| PayloadFile::for_sending(bytes));
        Payload { bytes, file: file.as_ref() }
    }
}

impl Default for Buffers {
    fn default() -> Self {
        Self::new()
    }
}

/// Work left over when an I/O budget ran out, done before the next poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// A data connection, by slab key.
    Read(usize),
    Write(usize),
    /// A session's UDP socket, by session key.
    UdpRead(usize),
    UdpWrite(usize),
}

/// What a handler needs from the loop.
pub struct Io<'a> {
    pub now: Instant,
    pub bufs: &'a mut Buffers,
    pub rates: &'a mut Rates,
    pub ready: &'a mut Vec<Ready>,
    /// This session's slab key, for its `Ready` entries.
    pub skey: usize,
}

/// What a timer did that the loop must finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timed {
    Nothing,
    /// The join deadline passed: start with the connections there are.
    JoinExpired,
}

impl Session {
    /// Reads connection `index` as far as budgets and caps allow.
    pub fn read(&mut self, index: usize, io: &mut Io<'_>) -> Result<(), EndReason> {
        let now = io.now;
        let Some(c) = self.conns.get_mut(index) else { return Ok(()) };
        if c.queued_read {
            // Its turn in the Ready queue comes: one turn per iteration.
            return Ok(());
        }
        let mut budget = io.rates.rx(&mut self.rx_pacer);
        let granted = budget.grant(now);
        let limit = granted.min(io.bufs.turn_left);
        let r = match c.stream.read(&mut io.bufs.scratch, IO_BUDGET, limit) {
            Ok(r) => r,
            Err(e) if is_peer_close(&e) => {
                c.eof = true;
                return self.peer_closed(now);
            }
            Err(e) => return Err(EndReason::from_io(&e)),
        };
        budget.spend(r.bytes);
        io.bufs.turn_left = io.bufs.turn_left.saturating_sub(r.bytes);
        // Stopped at the turn's share, not the rate: more next turn.
        let turn_over = r.throttled && granted > limit;
        let throttled_until = (r.throttled && !turn_over).then(|| budget.wake_at());
        let reported = c.stream.peer.count != self.peer_statuses;
        self.peer_statuses = c.stream.peer.count;
        if let (true, Transport::Udp { flow, .. }) = (reported, &mut self.transport) {
            // The client's statuses pace our datagrams: the sum of all of
            // them so far, as one read may bring two.
            flow.adapt(c.stream.peer.bytes, now);
        }
        // Only data in the test's own direction keeps it alive: for TCP what
        // the server receives; for UDP the control connection carries reports.
        let udp = self.cmd.proto == Protocol::Udp;
        if udp && reported && self.cmd.direction.server_transmits() {
            self.activity.alive(now);
        } else if !udp && self.cmd.direction.server_receives() {
            self.activity.progressed(r.bytes, now);
        }
        if r.eof {
            c.eof = true;
            return self.peer_closed(now);
        }
        if (r.more || turn_over) && !c.queued_read {
            c.queued_read = true;
            io.ready.push(Ready::Read(c.key));
        } else if let Some(wake) = throttled_until {
            // Stop reading (TCP flow control slows the sender) until tokens accrue.
            if self.rx_wake.is_none_or(|w| wake < w) {
                self.rx_wake = Some(wake);
            }
        }
        Ok(())
    }

    /// Writes control bytes, a due status and (while transmitting) paced
    /// payload on connection `index`.
    pub fn write(&mut self, index: usize, io: &mut Io<'_>) -> Result<(), EndReason> {
        let now = io.now;
        let transmitting = self.transmits_tcp();
        let random = self.cmd.random;
        let Some(c) = self.conns.get_mut(index) else { return Ok(()) };
        if c.queued_write {
            return Ok(());
        }
        let mut budget = match &mut self.transport {
            Transport::Tcp { pacer } if transmitting => Some(io.rates.tx(pacer)),
            _ => None,
        };
        let turn_left = io.bufs.turn_left;
        let (payload, granted) = match budget.as_mut() {
            Some(b) => (Some(io.bufs.tcp_payload(random)), b.grant(now)),
            None => (None, 0),
        };
        let allowance = granted.min(turn_left);
        match c.stream.write_from(payload, allowance, IO_BUDGET) {
            Ok(w) => {
                if let (Some(b), true) = (budget.as_mut(), w.payload > 0) {
                    b.spend(w.payload);
                }
                io.bufs.turn_left = io.bufs.turn_left.saturating_sub(w.payload);
                // A send that makes no progress (a peer that never reads) lets the idle timeout end the test.
                self.activity.progressed(w.payload, now);
                // Stopped at the turn's share with tokens left: more next turn.
                let turn_over = granted > allowance && w.payload >= allowance && !w.blocked;
                if w.more || turn_over {
                    if !c.queued_write {
                        c.queued_write = true;
                        io.ready.push(Ready::Write(c.key));
                    }
                } else if let Some(b) = budget.filter(|b| !w.blocked && b.is_limited()) {
                    // Out of tokens: wake when the emptier bucket has refilled half way.
                    let wake = b.wake_at();
                    if self.pace_wake.is_none_or(|w| wake < w) {
                        self.pace_wake = Some(wake);
                    }
                }
                Ok(())
            }
            Err(e) if is_peer_close(&e) => {
                c.eof = true;
                self.peer_closed(now)
            }
            Err(e) => Err(EndReason::from_io(&e)),
        }
    }

    /// Serves a connection queued in [`Ready`] (it stopped on its I/O budget).
    pub fn resume(&mut self, index: usize, write: bool, io: &mut Io<'_>) -> Result<(), EndReason> {
        let Some(c) = self.conns.get_mut(index) else { return Ok(()) };
        if write {
            c.queued_write = false;
            self.write(index, io)
        } else {
            c.queued_read = false;
            self.read(index, io)
        }
    }

    fn write_all(&mut self, io: &mut Io<'_>) -> Result<(), EndReason> {
        for index in 0..self.conns.len() {
            self.write(index, io)?;
        }
        Ok(())
    }

    /// Sends what is due at once: replies, statuses, payload, datagrams.
    pub fn kick(&mut self, io: &mut Io<'_>) -> Result<(), EndReason> {
        self.write_all(io)?;
        self.udp_send(io)
    }

    /// Sends paced datagrams while the test transmits over UDP.
    pub fn udp_send(&mut self, io: &mut Io<'_>) -> Result<(), EndReason> {
        if !self.is_running() || !self.cmd.direction.server_transmits() {
            return Ok(());
        }
        let Transport::Udp { flow, .. } = &mut self.transport else { return Ok(()) };
        let now = io.now;
        let payload = io.bufs.payload(self.cmd.random);
        let total = io.rates.shared_tx();
        let tx_before = flow.tx_bytes;
        let res = flow.send(payload, now, IO_BUDGET, total.grant(now));
        total.consume(flow.tx_bytes - tx_before);
        match res {
            Ok(out) => {
                let wait = if out.limited { Some(total.wake_at()) } else { out.wait };
                if out.more {
                    io.ready.push(Ready::UdpWrite(io.skey));
                } else if let Some(w) = wait {
                    if self.pace_wake.is_none_or(|p| w < p) {
                        self.pace_wake = Some(w);
                    }
                }
                Ok(())
            }
            Err(e) => {
                log::info!("session {}: UDP send to {} failed: {e}", self.id, flow.dest);
                Err(EndReason::from_io(&e))
            }
        }
    }

    /// Receives what the UDP socket holds.
    pub fn udp_recv(&mut self, io: &mut Io<'_>) -> Result<(), EndReason> {
        let Transport::Udp { flow, .. } = &mut self.transport else { return Ok(()) };
        match flow.recv(&mut io.bufs.scratch, IO_BUDGET) {
            Ok(r) => {
                if r.datagrams > 0 {
                    self.activity.alive(io.now);
                }
                if r.more {
                    io.ready.push(Ready::UdpRead(io.skey));
                }
                Ok(())
            }
            Err(e) => {
                log::info!("session {}: UDP receive failed: {e}", self.id);
                Err(EndReason::from_io(&e))
            }
        }
    }

    /// The session's deadline passed: timeouts, the status second, pacing
    /// and read-cap wakeups. `cpu` is this second's CPU load for statuses.
    pub fn on_timer(&mut self, io: &mut Io<'_>, limits: &Limits, cpu: Option<u8>) -> Result<Timed, EndReason> {
        let now = io.now;
        match self.phase {
            Phase::Joining { until } if now >= until => return Ok(Timed::JoinExpired),
            Phase::Draining { until, .. } if now >= until => return Err(EndReason::PeerClosed),
            _ => {}
        }
        if now >= self.activity.last + limits.idle_timeout {
            return Err(EndReason::IdleTimeout);
        }
        if let (Some(start), Some(max)) = (self.since(), limits.max_duration) {
            if now >= start + max {
                return Err(EndReason::MaxDuration);
            }
        }
        let status_due = self.is_running() && now >= self.next_status;
        let pace_due = self.pace_wake.is_some_and(|w| now >= w);
        let rx_due = self.rx_wake.is_some_and(|w| now >= w);
        if rx_due {
            self.rx_wake = None;
        }
        if status_due {
            self.queue_statuses(cpu, limits.max_rate_per_session / 8, now);
            self.batch_reads(now);
        }
        if pace_due {
            self.pace_wake = None;
        }
        if status_due || pace_due {
            self.write_all(io)?;
        }
        if pace_due {
            self.udp_send(io)?;
        }
        if rx_due {
            for index in 0..self.conns.len() {
                self.read(index, io)?;
            }
        }
        Ok(Timed::Nothing)
    }
}

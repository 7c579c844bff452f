//! One bandwidth test: its command, its connections and transport, its
//! clocks. The session owns its sockets; the loop hands it readiness and
//! timer events ([`io`]) and ends it when a handler returns an [`EndReason`].

mod io;

pub use io::{Buffers, IO_BUDGET, Io, Ready, Timed};

use crate::pacer::TokenBucket;
use crate::proto::{Command, Protocol};
use crate::store::SessionRecord;
use crate::stream::Stream;
use crate::udp::UdpFlow;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

/// How long the other connections of a test may still deliver data after
/// the peer closed one of them.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Wrong join tokens from a test's address that end its join window: a
/// token guesser gets a few tries, not the whole window.
const MAX_WRONG_TOKENS: u8 = 3;

/// Payload bytes in the test's own direction that count as the test moving:
/// one full-size packet. A peer that trickles a byte a second, or opens a
/// zero window a byte at a time, does not keep a test (and its slot) alive;
/// a real test as slow as 1 kbit/s still moves this much within the idle timeout.
const MIN_PROGRESS: u64 = 1500;

/// Lifecycle of a session; changed only through [`Session::set_phase`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Multi-connection TCP: waiting for secondaries until the deadline.
    Joining { until: Instant },
    /// Data flows; statuses go out every second.
    Running { since: Instant },
    /// The peer closed a connection: reading what is still in flight on
    /// the others, so usage counts every byte, until all close or `until`.
    /// `since` is when the test had started running, if it had.
    Draining { until: Instant, since: Option<Instant> },
}

impl Phase {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Joining { .. } => "joining",
            Phase::Running { .. } => "running",
            Phase::Draining { .. } => "draining",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a session ended, as the log and the usage record state it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    PeerClosed,
    IoError(String),
    IdleTimeout,
    MaxDuration,
    Shutdown,
    QuotaExhausted(String),
    /// Refused before it started (a limit, no UDP port).
    Refused,
}

/// A reset or broken pipe is how clients often stop (closing with unread
/// data), so it is the peer closing, not a fault.
pub fn is_peer_close(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionReset | BrokenPipe | ConnectionAborted | UnexpectedEof)
}

impl EndReason {
    /// The reason without its details, as a metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            EndReason::PeerClosed => "peer-closed",
            EndReason::IoError(_) => "io-error",
            EndReason::IdleTimeout => "idle-timeout",
            EndReason::MaxDuration => "max-duration",
            EndReason::Shutdown => "server-shutdown",
            EndReason::QuotaExhausted(_) => "quota-exhausted",
            EndReason::Refused => "refused",
        }
    }

    pub fn from_io(e: &std::io::Error) -> EndReason {
        if is_peer_close(e) { EndReason::PeerClosed } else { EndReason::IoError(e.to_string()) }
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndReason::PeerClosed => f.write_str("peer-closed"),
            EndReason::IoError(e) => write!(f, "io-error({e})"),
            EndReason::IdleTimeout => f.write_str("idle-timeout"),
            EndReason::MaxDuration => f.write_str("max-duration"),
            EndReason::Shutdown => f.write_str("server-shutdown"),
            EndReason::QuotaExhausted(which) => write!(f, "quota-exhausted({which})"),
            EndReason::Refused => f.write_str("refused"),
        }
    }
}

/// How the test's payload travels.
pub enum Transport {
    /// TCP: the server's sends on all connections are paced by one bucket.
    Tcp { pacer: TokenBucket },
    /// UDP: datagrams on a pool port; the TCP connection carries statuses only.
    Udp { flow: Box<UdpFlow>, port: u16 },
}

/// When the test last moved in its own direction: the idle timeout runs from here.
struct Activity {
    last: Instant,
    /// Payload bytes moved in the test's direction since `last`.
    progress: u64,
}

impl Activity {
    /// `n` payload bytes moved in the test's direction.
    fn progressed(&mut self, n: u64, now: Instant) {
        self.progress += n;
        if self.progress >= MIN_PROGRESS {
            self.progress = 0;
            self.last = now;
        }
    }

    /// A sign of life that counts on its own: a UDP datagram from the peer,
    /// or the peer's report on the datagrams we send.
    fn alive(&mut self, now: Instant) {
        self.progress = 0;
        self.last = now;
    }
}

/// A TCP connection of the test (the primary first, then secondaries).
struct DataConn {
    /// Slab key of the connection: its mio token and its `Ready` entries.
    key: usize,
    stream: Stream,
    /// The peer closed its side (EOF or reset).
    eof: bool,
    /// Already queued for another pass without a new readiness event.
    queued_read: bool,
    queued_write: bool,
}

pub struct Session {
    /// Monotonic id for log lines (slab keys are reused).
    id: u64,
    /// The primary connection's peer; secondaries must share its IP.
    peer: SocketAddr,
    user: Option<String>,
    cmd: Command,
    phase: Phase,
    conns: Vec<DataConn>,
    /// Token secondaries present while joining.
    token: Option<u16>,
    transport: Transport,
    /// Caps how fast this test's connections are read (operator limit).
    rx_pacer: TokenBucket,
    /// Wall-clock start, for the usage record.
    started_wall: SystemTime,
    /// Bytes (received, transmitted) already charged to budgets and usage.
    charged: (u64, u64),
    next_status: Instant,
    /// When the test's data last moved in its own direction.
    activity: Activity,
    /// The pacer asked to be woken at this time.
    pace_wake: Option<Instant>,
    /// Reading paused for the cap; resume at this time.
    rx_wake: Option<Instant>,
    /// Live timer deadline (see `timers::Timers::schedule`).
    armed: Option<Instant>,
    /// Peer statuses seen so far: a new one is a UDP test's sign of life.
    peer_statuses: u32,
    /// Kernel buffer size of the data sockets; None: left to the kernel.
    socket_share: Option<u32>,
    /// Wrong join tokens from this test's address while it joins.
    wrong_tokens: u8,
    /// Set for traced peers: when the test was admitted, the clock of its
    /// trace lines.
    trace: Option<Instant>,
    /// Bytes (received, transmitted) at the last once-a-second sample, and
    /// the rates in bits/s over the second before it, for `btestd status`.
    sampled: (u64, u64),
    bps: (u64, u64),
}

/// What a closed session leaves for the loop to clean up.
pub struct Closed {
    /// Slab keys of its connections.
    pub conn_keys: Vec<usize>,
    /// The UDP pool port it held.
    pub udp_port: Option<u16>,
    pub record: SessionRecord,
}

impl Session {
    /// A session that waits for its connections until `now + join_timeout`;
    /// `rx_cap` is the operator's cap on reading it (bits/s, 0 = none).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u64,
        peer: SocketAddr,
        user: Option<String>,
        cmd: Command,
        transport: Transport,
        rx_cap: u64,
        join_timeout: Duration,
        now: Instant,
    ) -> Session {
        Session {
            id,
            peer,
            user,
            cmd,
            phase: Phase::Joining { until: now + join_timeout },
            conns: Vec::with_capacity(cmd.connections()),
            trace: None,
            token: None,
            transport,
            rx_pacer: TokenBucket::new(rx_cap, TokenBucket::tcp_burst(rx_cap), now),
            started_wall: SystemTime::now(),
            charged: (0, 0),
            next_status: now + Duration::from_secs(1),
            activity: Activity { last: now, progress: 0 },
            pace_wake: None,
            rx_wake: None,
            armed: None,
            peer_statuses: 0,
            sampled: (0, 0),
            bps: (0, 0),
            socket_share: None,
            wrong_tokens: 0,
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    pub fn cmd(&self) -> &Command {
        &self.cmd
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// When the test was admitted, by the wall clock.
    pub fn started_wall(&self) -> SystemTime {
        self.started_wall
    }

    pub fn token(&self) -> Option<u16> {
        self.token
    }

    pub fn set_token(&mut self, token: u16) {
        self.token = Some(token);
    }

    pub fn udp_port(&self) -> Option<u16> {
        match self.transport {
            Transport::Udp { port, .. } => Some(port),
            Transport::Tcp { .. } => None,
        }
    }

    /// The UDP socket, for registering it with the poll.
    pub fn udp_socket(&mut self) -> Option<&mut mio::net::UdpSocket> {
        match &mut self.transport {
            Transport::Udp { flow, .. } => Some(&mut flow.sock),
            Transport::Tcp { .. } => None,
        }
    }

    /// A writable event on the UDP socket.
    pub fn udp_writable(&mut self) {
        if let Transport::Udp { flow, .. } = &mut self.transport {
            flow.write_blocked = false;
        }
    }

    /// A writable event on connection `index`.
    pub fn conn_writable(&mut self, index: usize) {
        if let Some(c) = self.conns.get_mut(index) {
            c.stream.write_blocked = false;
        }
    }

    /// The live timer record the loop's [`super::timers::Timers`] keeps.
    pub fn armed(&mut self) -> &mut Option<Instant> {
        &mut self.armed
    }

    /// The one place the phase changes.
    pub fn set_phase(&mut self, phase: Phase, now: Instant) {
        log::debug!("session {}: {} -> {}", self.id, self.phase, phase);
        if let Phase::Running { .. } = phase {
            self.next_status = now + Duration::from_secs(1);
            self.activity.alive(now);
        }
        self.phase = phase;
    }

    /// Starts the data phase, with whatever connections have joined.
    pub fn start(&mut self, now: Instant) {
        if !self.is_complete() {
            log::info!(
                "session {}: starting with {} of {} connections (join timeout)",
                self.id,
                self.conns.len(),
                self.cmd.connections()
            );
        }
        self.set_phase(Phase::Running { since: now }, now);
        self.batch_reads(now);
    }

    /// Lets each connection's reads follow its rate (see
    /// [`Stream::batch_reads`]), within half its share of socket memory.
    pub fn batch_reads(&mut self, now: Instant) {
        let cap = self.socket_share.map_or(crate::stream::MAX_READ_BATCH, |s| s / 2);
        for c in &mut self.conns {
            c.stream.batch_reads(now, cap);
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self.phase, Phase::Running { .. })
    }

    /// When the data phase began, if it did (also while draining).
    pub fn since(&self) -> Option<Instant> {
        match self.phase {
            Phase::Running { since } => Some(since),
            Phase::Draining { since, .. } => since,
            Phase::Joining { .. } => None,
        }
    }

    /// A wrong join token came from this test's address; true once there
    /// were enough that the join window must end now.
    pub fn wrong_token(&mut self) -> bool {
        self.wrong_tokens = self.wrong_tokens.saturating_add(1);
        self.wrong_tokens >= MAX_WRONG_TOKENS
    }

    /// Whether every connection the command asked for has joined.
    pub fn is_complete(&self) -> bool {
        self.conns.len() >= self.cmd.connections()
    }

    /// Adds a TCP connection of the test; returns its index. A UDP test's
    /// control connection carries only statuses: they are read as frames
    /// even when the datagrams' payload is random, so that one unexpected
    /// byte cannot hide the client's statuses for a whole "block".
    pub fn attach(&mut self, key: usize, mut stream: Stream) -> usize {
        if let Some(size) = self.socket_share {
            use std::os::fd::AsRawFd;
            super::socket_budget::apply(stream.sock.as_raw_fd(), size, super::socket_budget::Carries::of(&self.cmd));
        }
        match self.transport {
            Transport::Udp { .. } => stream.set_statuses_only(),
            Transport::Tcp { .. } => {
                let tx_size = self.cmd.tcp_block();
                stream.set_payload(tx_size, self.cmd.random, tx_size);
                // Traces keep every status the peer sends; the payload of a
                // test the server only sends in is too little to matter.
                if self.trace.is_none() && self.cmd.direction.server_receives() {
                    stream.discard_unread_payload();
                }
            }
        }
        if let Some(start) = self.trace {
            let label = format!("session {} conn {}", self.id, self.conns.len() + 1);
            stream.trace = Some(Box::new(crate::trace::Trace::new(label, start)));
        }
        self.conns.push(DataConn { key, stream, eof: false, queued_read: false, queued_write: false });
        self.conns.len() - 1
    }

    /// Traces this test from now on (call before the first `attach`).
    pub fn set_trace(&mut self, start: Instant) {
        self.trace = Some(start);
    }

    /// Connection `index`'s tracer, when the test is traced.
    pub fn trace(&self, index: usize) -> Option<&crate::trace::Trace> {
        self.conns.get(index)?.stream.trace.as_deref()
    }

    /// Queues control bytes (the OK reply, the UDP port) on the primary.
    pub fn reply(&mut self, bytes: &[u8]) {
        if let Some(c) = self.conns.first_mut() {
            c.stream.out.push(bytes);
        }
    }

    /// Queues control bytes on the last connection that joined.
    pub fn reply_last(&mut self, bytes: &[u8]) {
        if let Some(c) = self.conns.last_mut() {
            c.stream.out.push(bytes);
        }
    }

    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// Lowers the kernel buffers of every data socket, and of those that
    /// join later, to `size` (see `socket_budget`); a cap is never raised.
    pub fn set_socket_buffers(&mut self, size: u32) {
        use std::os::fd::AsRawFd;
        if self.socket_share.is_some_and(|s| s <= size) {
            return;
        }
        self.socket_share = Some(size);
        let carries = super::socket_budget::Carries::of(&self.cmd);
        for c in &self.conns {
            super::socket_budget::apply(c.stream.sock.as_raw_fd(), size, carries);
        }
    }

    /// The earliest of this session's clocks.
    pub fn next_deadline(&self, idle: Duration, max_duration: Option<Duration>) -> Instant {
        let mut t = self.activity.last + idle;
        match self.phase {
            Phase::Joining { until } | Phase::Draining { until, .. } => t = t.min(until),
            Phase::Running { .. } => t = t.min(self.next_status),
        }
        if let (Some(start), Some(max)) = (self.since(), max_duration) {
            t = t.min(start + max);
        }
        for w in [self.pace_wake, self.rx_wake].into_iter().flatten() {
            t = t.min(w);
        }
        t
    }

    /// Next status time: one second on, or one second from now after a stall.
    fn advance_status_clock(&mut self, now: Instant) {
        self.next_status += Duration::from_secs(1);
        if self.next_status <= now {
            self.next_status = now + Duration::from_secs(1);
        }
    }

    /// Queues this second's status on every connection that carries one
    /// (each stream numbers its own and merges one not yet sent into the
    /// next). `cap` is the operator's per-test cap in bytes/s (0 = none).
    fn queue_statuses(&mut self, cpu: Option<u8>, cap: u64, now: Instant) {
        self.advance_status_clock(now);
        let udp_bytes = match &mut self.transport {
            // UDP: the datagram bytes received, on the control connection,
            // whatever the direction (0 when only transmitting). A UDP
            // sender cannot be slowed by not reading, but it adapts to
            // what we report: report no more than the per-test cap allows.
            Transport::Udp { flow, .. } => {
                if let Some(t) = self.conns.first().and_then(|c| c.stream.trace.as_deref()) {
                    t.line(format_args!("udp rx={} tx={} peer={}", flow.rx_bytes, flow.tx_bytes, flow.dest));
                }
                Some(flow.take_rx_interval()).map(|b| if cap > 0 { b.min(cap) } else { b })
            }
            // TCP, server only transmits: pure data, no status. Best
            // evidence: btest-rs settled this against RouterOS clients
            // [ROS-tested; protocol-reference §8.2], tikoci's model agrees;
            // only jof/btest-rs sends them (§14.3, unverified), and what a
            // RouterOS server does is an open question (§16). Data that
            // arrives is still read and counted.
            Transport::Tcp { .. } if !self.cmd.direction.server_receives() => return,
            Transport::Tcp { .. } => None,
        };
        for c in &mut self.conns {
            let tcp_bytes = c.stream.take_rx_interval();
            c.stream.queue_status(cpu, udp_bytes.unwrap_or(tcp_bytes));
        }
    }

    /// Applies the operator's caps on what this test sends and reads (bits/s).
    pub fn set_caps(&mut self, tx: u64, rx: u64, now: Instant) {
        match &mut self.transport {
            Transport::Udp { flow, .. } => flow.set_cap(tx, now),
            Transport::Tcp { pacer } if pacer.rate_bps() != tx => pacer.set_rate(tx, TokenBucket::tcp_burst(tx), now),
            Transport::Tcp { .. } => {}
        }
        if self.rx_pacer.rate_bps() != rx {
            self.rx_pacer.set_rate(rx, TokenBucket::tcp_burst(rx), now);
        }
    }

    /// Takes the once-a-second sample: the rates since the last one,
    /// `ms` milliseconds ago; returns them (bits/s, received and transmitted).
    pub fn sample_rate(&mut self, ms: u64) -> (u64, u64) {
        let (rx, tx) = self.bytes();
        let bps = |now: u64, before: u64| now.saturating_sub(before).saturating_mul(8000) / ms.max(1);
        self.bps = (bps(rx, self.sampled.0), bps(tx, self.sampled.1));
        self.sampled = (rx, tx);
        self.bps
    }

    /// Rates (bits/s, received and transmitted) over the last sampled second.
    pub fn rate(&self) -> (u64, u64) {
        self.bps
    }

    /// Bytes the test moved so far: (received, transmitted).
    pub fn bytes(&self) -> (u64, u64) {
        if let Transport::Udp { flow, .. } = &self.transport {
            return (flow.rx_bytes, flow.tx_bytes);
        }
        self.conns.iter().fold((0, 0), |(r, t), c| (r + c.stream.rx_bytes, t + c.stream.tx_bytes))
    }

    /// Bytes (received, transmitted) moved since the last call: what is
    /// still to be charged to budgets and usage.
    pub fn take_uncharged(&mut self) -> (u64, u64) {
        let (rx, tx) = self.bytes();
        let delta = (rx.saturating_sub(self.charged.0), tx.saturating_sub(self.charged.1));
        self.charged = (rx, tx);
        delta
    }

    /// One connection was closed by the peer: the session ends once all
    /// are closed, or after a short grace for data in flight.
    fn peer_closed(&mut self, now: Instant) -> Result<(), EndReason> {
        if self.conns.iter().all(|c| c.eof) {
            return Err(EndReason::PeerClosed);
        }
        if !matches!(self.phase, Phase::Draining { .. }) {
            let since = self.since();
            self.set_phase(Phase::Draining { until: now + DRAIN_GRACE, since }, now);
        }
        Ok(())
    }

    /// Closes every socket of the session and logs its end; returns what
    /// the loop must release and record.
    pub fn close(self, reason: &EndReason, registry: &mio::Registry) -> Closed {
        let (rx, tx) = self.bytes();
        let secs = self.since().map_or(0.0, |t| t.elapsed().as_secs_f64());
        let (mut statuses, mut peer_cpu, mut junk) = (0, None, 0);
        for c in &self.conns {
            statuses += c.stream.peer.count;
            junk += c.stream.peer_junk();
            if let Some(st) = c.stream.peer.last {
                peer_cpu = st.cpu.or(peer_cpu);
            }
        }
        let mut conn_keys = Vec::with_capacity(self.conns.len());
        let conn_count = self.conns.len();
        // A test that stopped moving may have a peer that never reads: reset
        // its connections, so the kernel frees their unsent data at once.
        let abort = matches!(reason, EndReason::IdleTimeout);
        for mut c in self.conns {
            if abort {
                crate::net::abort_on_close(&c.stream.sock);
            }
            c.stream.close(registry);
            conn_keys.push(c.key);
        }
        let (mut lost, mut udp_port) = (0, None);
        if let Transport::Udp { mut flow, port } = self.transport {
            lost = flow.loss().0;
            if flow.foreign > 0 {
                log::info!("session {}: ignored {} datagrams from other addresses", self.id, flow.foreign);
            }
            if junk > 0 {
                log::info!(
                    "session {}: skipped {junk} bytes on the control connection that were not statuses",
                    self.id
                );
            }
            let _ = registry.deregister(&mut flow.sock);
            udp_port = Some(port);
        }
        let mbps = |b: u64| if secs > 0.0 { b as f64 * 8.0 / secs / 1e6 } else { 0.0 };
        log::info!(
            "session {} ended: peer={} user={} proto={} dir={} conns={} secs={:.2} rx_bytes={} tx_bytes={} rx_mbps={:.2} tx_mbps={:.2} lost={} peer_statuses={} peer_cpu={} reason={}",
            self.id,
            self.peer,
            crate::logger::Escaped::peer(self.user.as_deref().unwrap_or("-")),
            self.cmd.proto,
            self.cmd.direction,
            conn_count,
            secs,
            rx,
            tx,
            mbps(rx),
            mbps(tx),
            lost,
            statuses,
            peer_cpu.map_or("-".to_string(), |c| c.to_string()),
            reason
        );
        let record = SessionRecord {
            user: self.user,
            peer_ip: self.peer.ip(),
            proto: self.cmd.proto,
            direction: self.cmd.direction,
            started: self.started_wall,
            ended: SystemTime::now(),
            rx_bytes: rx,
            tx_bytes: tx,
            lost_packets: lost,
            end_reason: reason.to_string(),
        };
        Closed { conn_keys, udp_port, record }
    }

    fn transmits_tcp(&self) -> bool {
        self.is_running() && self.cmd.proto == Protocol::Tcp && self.cmd.direction.server_transmits()
    }
}

#[cfg(test)]
mod tests;

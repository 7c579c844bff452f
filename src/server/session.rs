//! One bandwidth test: its command, its connections, its clocks.

use crate::pacer::TokenBucket;
use crate::proto::Command;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Lifecycle of a session; changed only through [`Session::set_phase`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Multi-connection TCP: waiting for secondaries until the deadline.
    Joining { until: Instant },
    /// Data flows; statuses go out every second.
    Running,
    /// The peer closed a connection: reading what is still in flight on
    /// the others, so usage counts every byte, until all close or `until`.
    Draining { until: Instant },
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::Joining { .. } => f.write_str("joining"),
            Phase::Running => f.write_str("running"),
            Phase::Draining { .. } => f.write_str("draining"),
        }
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

pub struct Session {
    /// Monotonic id for log lines (slab keys are reused).
    pub id: u64,
    /// The primary connection's peer; secondaries must share its IP.
    pub peer: SocketAddr,
    pub user: Option<String>,
    pub cmd: Command,
    phase: Phase,
    /// Connection keys in join order; the primary is first.
    pub conns: Vec<usize>,
    /// Token secondaries present while joining.
    pub token: Option<u16>,
    /// Paces the server's transmissions (shared by all connections).
    pub pacer: TokenBucket,
    pub created: Instant,
    /// Wall-clock start, for the usage record.
    pub started_wall: std::time::SystemTime,
    /// Bytes (received, transmitted) already charged to budgets and usage.
    pub charged: (u64, u64),
    /// When the data phase began.
    pub running_since: Option<Instant>,
    pub next_status: Instant,
    /// Sequence number of the next status message (starts at 1).
    pub status_seq: u32,
    /// Last time any byte of test data moved either way.
    pub last_activity: Instant,
    /// The pacer asked to be woken at this time.
    pub pace_wake: Option<Instant>,
    /// Caps how fast this test's connections are read (operator limit).
    pub rx_pacer: TokenBucket,
    /// Reading paused for the cap; resume at this time.
    pub rx_wake: Option<Instant>,
    /// Live timer deadline (see `timers::Timers::schedule`).
    pub armed: Option<Instant>,
    /// The datagram flow of a UDP test, and the pool port it holds.
    pub udp: Option<crate::udp::UdpFlow>,
    pub udp_port: Option<u16>,
    /// Peer statuses already applied to the UDP pacer.
    pub peer_statuses: u32,
}

impl Session {
    pub fn new(
        id: u64,
        peer: SocketAddr,
        user: Option<String>,
        cmd: Command,
        phase: Phase,
        pacer: TokenBucket,
        now: Instant,
    ) -> Session {
        Session {
            id,
            peer,
            user,
            cmd,
            phase,
            conns: Vec::with_capacity(cmd.connections()),
            token: None,
            pacer,
            created: now,
            started_wall: std::time::SystemTime::now(),
            charged: (0, 0),
            running_since: None,
            next_status: now + Duration::from_secs(1),
            status_seq: 1,
            last_activity: now,
            pace_wake: None,
            rx_pacer: TokenBucket::new(0, 1, now),
            rx_wake: None,
            armed: None,
            udp: None,
            udp_port: None,
            peer_statuses: 0,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn set_phase(&mut self, phase: Phase, now: Instant) {
        log::debug!("session {}: {} -> {}", self.id, self.phase, phase);
        if phase == Phase::Running {
            self.running_since = Some(now);
            self.next_status = now + Duration::from_secs(1);
            self.last_activity = now;
        }
        self.phase = phase;
    }

    pub fn is_running(&self) -> bool {
        self.phase == Phase::Running
    }

    /// Whether every connection the command asked for has joined.
    pub fn is_complete(&self) -> bool {
        self.conns.len() >= self.cmd.connections()
    }

    /// The earliest of this session's clocks.
    pub fn next_deadline(&self, idle: Duration, max_duration: Option<Duration>) -> Instant {
        let mut t = self.last_activity + idle;
        match self.phase {
            Phase::Joining { until } | Phase::Draining { until } => t = t.min(until),
            Phase::Running => t = t.min(self.next_status),
        }
        if let (Some(start), Some(max)) = (self.running_since, max_duration) {
            t = t.min(start + max);
        }
        for w in [self.pace_wake, self.rx_wake].into_iter().flatten() {
            t = t.min(w);
        }
        t
    }

    /// Next status time: one second on, or one second from now after a stall.
    pub fn advance_status_clock(&mut self, now: Instant) {
        self.status_seq = self.status_seq.wrapping_add(1);
        self.next_status += Duration::from_secs(1);
        if self.next_status <= now {
            self.next_status = now + Duration::from_secs(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Direction, Protocol};

    fn cmd(conns: u8) -> Command {
        Command {
            proto: Protocol::Tcp,
            direction: Direction::Both,
            random: false,
            conn_count: conns,
            tx_size: 32768,
            client_buf_size: 0,
            remote_tx_speed: 0,
            local_tx_speed: 0,
        }
    }

    #[test]
    fn deadline_is_earliest_clock() {
        let t0 = Instant::now();
        let until = t0 + Duration::from_millis(300);
        let mut s = Session::new(
            1,
            "127.0.0.1:1".parse().unwrap(),
            None,
            cmd(4),
            Phase::Joining { until },
            TokenBucket::new(0, 1, t0),
            t0,
        );
        assert_eq!(s.next_deadline(Duration::from_secs(10), None), until);
        s.set_phase(Phase::Running, t0);
        assert_eq!(s.next_deadline(Duration::from_secs(10), None), t0 + Duration::from_secs(1));
        assert_eq!(s.next_deadline(Duration::from_millis(500), None), t0 + Duration::from_millis(500));
        assert_eq!(
            s.next_deadline(Duration::from_secs(10), Some(Duration::from_millis(200))),
            t0 + Duration::from_millis(200)
        );
        s.pace_wake = Some(t0 + Duration::from_millis(5));
        assert_eq!(s.next_deadline(Duration::from_secs(10), None), t0 + Duration::from_millis(5));
    }

    #[test]
    fn status_clock_catches_up_after_stall() {
        let t0 = Instant::now();
        let mut s = Session::new(
            1,
            "127.0.0.1:1".parse().unwrap(),
            None,
            cmd(0),
            Phase::Running,
            TokenBucket::new(0, 1, t0),
            t0,
        );
        s.set_phase(Phase::Running, t0);
        s.advance_status_clock(t0 + Duration::from_secs(1));
        assert_eq!(s.next_status, t0 + Duration::from_secs(2));
        assert_eq!(s.status_seq, 2);
        let late = t0 + Duration::from_secs(10);
        s.advance_status_clock(late);
        assert_eq!(s.next_status, late + Duration::from_secs(1));
        assert!(!s.is_complete(), "no connection has joined yet");
        s.conns.push(7);
        assert!(s.is_complete());
    }
}

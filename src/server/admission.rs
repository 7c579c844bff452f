//! Whether a connection may start a handshake and whether a test may start:
//! pure checks over the operator's limits, the current load, the command and
//! the peer. Every refusal the server makes is a [`Refusal`].

use super::config::Limits;
use super::guard::{self, Guard, Slot};
use super::ports::PoolError;
use crate::proto::{Command, Protocol};
use crate::quota::{Exceeded, format_amount};
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Why a connection or a test is turned away, worded for the operator:
/// each names the flag that would let it through.
#[derive(Debug)]
pub enum Refusal {
    /// Connections in the handshake, all clients together, are at the cap.
    Handshakes {
        pending: usize,
    },
    /// The address may not connect now (deny/allow lists, bans, its own handshakes).
    Guard(guard::Refusal),
    ServerFull {
        running: usize,
    },
    Memory {
        used: u64,
        limit: u64,
    },
    PerAddress {
        running: usize,
    },
    Connections {
        asked: usize,
        limit: u8,
    },
    UdpPayload {
        payload: usize,
        max: usize,
    },
    /// A byte budget of the user or the address is used up.
    Budget(Exceeded),
    UdpPort(PoolError),
    /// The UDP socket of the test could not be set up.
    UdpSocket(io::Error),
}

/// Every refusal reason as counters and metrics name it, in one fixed order.
pub const REASONS: [&str; 13] = [
    "handshakes",
    "denied",
    "not-allowed",
    "banned",
    "handshakes-per-ip",
    "server-full",
    "memory",
    "per-address",
    "connections",
    "udp-payload",
    "budget",
    "udp-port",
    "udp-socket",
];

impl Refusal {
    /// This refusal's index in [`REASONS`].
    pub fn reason(&self) -> usize {
        match self {
            Refusal::Handshakes { .. } => 0,
            Refusal::Guard(guard::Refusal::Denied) => 1,
            Refusal::Guard(guard::Refusal::NotAllowed) => 2,
            Refusal::Guard(guard::Refusal::Banned { .. }) => 3,
            Refusal::Guard(guard::Refusal::TooManyHandshakes(_)) => 4,
            Refusal::ServerFull { .. } => 5,
            Refusal::Memory { .. } => 6,
            Refusal::PerAddress { .. } => 7,
            Refusal::Connections { .. } => 8,
            Refusal::UdpPayload { .. } => 9,
            Refusal::Budget(_) => 10,
            Refusal::UdpPort(_) => 11,
            Refusal::UdpSocket(_) => 12,
        }
    }

    /// Refusals at the door close the connection before HELLO; the others
    /// answer the command with a failure.
    pub fn at_door(&self) -> bool {
        matches!(self, Refusal::Handshakes { .. } | Refusal::Guard(_))
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Handshakes { pending } => {
                write!(f, "{pending} connections already in handshake (--max-handshakes)")
            }
            Refusal::Guard(r) => write!(f, "{r}"),
            Refusal::ServerFull { running } => write!(f, "server is full: {running} tests running (--max-sessions)"),
            Refusal::Memory { used, limit } => write!(
                f,
                "btestd holds {} of memory, more than --max-memory {}; running tests go on",
                format_amount(*used),
                format_amount(*limit)
            ),
            Refusal::PerAddress { running } => {
                write!(f, "{running} tests already running from this address (--max-sessions-per-ip)")
            }
            Refusal::Connections { asked, limit } => {
                write!(f, "asks for {asked} TCP connections, the limit is {limit} (--max-connections)")
            }
            Refusal::UdpPayload { payload, max } => write!(
                f,
                "UDP datagrams of {payload} bytes exceed this system's limit of {max}; use a smaller \
                 remote-udp-tx-size (or raise net.inet.udp.maxdgram)"
            ),
            Refusal::Budget(e) => write!(f, "{e}"),
            Refusal::UdpPort(e) => write!(f, "{e}"),
            Refusal::UdpSocket(e) => write!(f, "cannot set up the test's UDP socket: {e}"),
        }
    }
}

/// What is running when a test asks to start.
#[derive(Debug, Clone, Copy, Default)]
pub struct Load {
    pub sessions: usize,
    /// Sessions of the asking client's address.
    pub from_peer: usize,
    /// btestd's own memory at the last sample.
    pub memory: Option<u64>,
}

/// May `ip` start a handshake, and under which slot? `missing` is how many
/// connections the multi-connection tests of this address, while they are
/// joining, still wait for.
///
/// Access lists and bans always apply. Then, as long as the address has
/// fewer join slots in use than its tests miss connections, the connection
/// takes a join slot, outside `--max-handshakes` and
/// `--max-handshakes-per-ip`: a client that opens all its extra connections
/// at once (RouterOS 7 opens 19 in quick succession) is served, and those
/// joins never crowd out regular handshakes. Join slots are bounded by the
/// missing connections of admitted tests, connections the address would
/// hold during its tests anyway, and they last only while those tests join.
pub fn door(limits: &Limits, guard: &Guard, ip: IpAddr, missing: usize, now: Instant) -> Result<Slot, Refusal> {
    guard.check(ip, now).map_err(Refusal::Guard)?;
    if guard.handshakes_of(ip).join < missing {
        return Ok(Slot::Join);
    }
    let pending = guard.handshakes().regular;
    if pending >= limits.max_handshakes {
        return Err(Refusal::Handshakes { pending });
    }
    guard.check_handshakes(ip).map_err(Refusal::Guard)?;
    Ok(Slot::Regular)
}

/// How long a new connection has for its handshake: the full timeout, or a
/// quarter of it (at least 2 s) once the table is three quarters full, so
/// that held handshakes turn over faster under pressure. RouterOS finishes
/// its handshake in a few round trips.
pub fn handshake_deadline(limits: &Limits, pending: usize) -> Duration {
    if pending.saturating_mul(4) >= limits.max_handshakes.saturating_mul(3) {
        (limits.handshake_timeout / 4).max(Duration::from_secs(2)).min(limits.handshake_timeout)
    } else {
        limits.handshake_timeout
    }
}

/// Under a full handshake table, whether a newcomer with `mine` pending
/// handshakes may take the place of the oldest one of the address that has
/// `crowded` (OpenSSH's MaxStartups idea, aimed at the crowded): only when
/// the newcomer's address is clearly less crowded, so crowded addresses
/// cannot evict each other in turn.
pub fn may_evict(mine: usize, crowded: usize) -> bool {
    mine + 1 < crowded
}

/// May the test `cmd` from `peer` start? `max_udp_payload` is this system's
/// datagram limit ([`crate::net::max_udp_payload`]).
pub fn test(
    limits: &Limits,
    load: &Load,
    cmd: &Command,
    peer: SocketAddr,
    max_udp_payload: usize,
) -> Result<(), Refusal> {
    if load.sessions >= limits.max_sessions {
        return Err(Refusal::ServerFull { running: load.sessions });
    }
    if let Some(used) = load.memory.filter(|&m| limits.max_memory > 0 && m > limits.max_memory) {
        return Err(Refusal::Memory { used, limit: limits.max_memory });
    }
    if load.from_peer >= limits.max_sessions_per_ip {
        return Err(Refusal::PerAddress { running: load.from_peer });
    }
    if cmd.connections() > usize::from(limits.max_connections_per_test) {
        return Err(Refusal::Connections { asked: cmd.connections(), limit: limits.max_connections_per_test });
    }
    if cmd.proto == Protocol::Udp && cmd.direction.server_transmits() {
        let payload = crate::proto::udp::payload_len(cmd.tx_size, peer.is_ipv6());
        if payload > max_udp_payload {
            return Err(Refusal::UdpPayload { payload, max: max_udp_payload });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Direction;

    fn cmd(proto: Protocol, direction: Direction, conn_count: u8, tx_size: u16) -> Command {
        Command { tx_size, ..Command::example(proto, direction, conn_count) }
    }

    fn tcp() -> Command {
        cmd(Protocol::Tcp, Direction::Both, 0, 32768)
    }

    const PEER: &str = "192.0.2.1:5000";
    const MAX_UDP: usize = 65507;

    fn check(limits: &Limits, load: Load, c: &Command) -> Result<(), Refusal> {
        test(limits, &load, c, PEER.parse().unwrap(), MAX_UDP)
    }

    #[test]
    fn an_idle_server_admits_a_test() {
        assert!(check(&Limits::default(), Load::default(), &tcp()).is_ok());
    }

    #[test]
    fn full_server() {
        let l = Limits { max_sessions: 2, ..Limits::default() };
        let r = check(&l, Load { sessions: 2, ..Load::default() }, &tcp()).unwrap_err();
        assert!(matches!(r, Refusal::ServerFull { running: 2 }));
        assert_eq!(r.to_string(), "server is full: 2 tests running (--max-sessions)");
        assert!(check(&l, Load { sessions: 1, ..Load::default() }, &tcp()).is_ok());
    }

    #[test]
    fn memory_budget() {
        let l = Limits { max_memory: 1000, ..Limits::default() };
        let r = check(&l, Load { memory: Some(1001), ..Load::default() }, &tcp()).unwrap_err();
        assert!(matches!(r, Refusal::Memory { used: 1001, limit: 1000 }));
        assert!(r.to_string().contains("more than --max-memory 1.0 kB; running tests go on"), "{r}");
        assert!(check(&l, Load { memory: Some(1000), ..Load::default() }, &tcp()).is_ok());
        let off = Limits { max_memory: 0, ..Limits::default() };
        assert!(check(&off, Load { memory: Some(u64::MAX), ..Load::default() }, &tcp()).is_ok(), "0 = no budget");
        assert!(check(&l, Load { memory: None, ..Load::default() }, &tcp()).is_ok(), "unknown memory admits");
    }

    #[test]
    fn per_address_cap() {
        let l = Limits { max_sessions_per_ip: 3, ..Limits::default() };
        let r = check(&l, Load { sessions: 3, from_peer: 3, ..Load::default() }, &tcp()).unwrap_err();
        assert!(matches!(r, Refusal::PerAddress { running: 3 }));
        assert!(r.to_string().contains("tests already running from this address"));
    }

    #[test]
    fn connection_count_cap() {
        let l = Limits { max_connections_per_test: 4, ..Limits::default() };
        let r = check(&l, Load::default(), &cmd(Protocol::Tcp, Direction::Both, 5, 32768)).unwrap_err();
        assert!(matches!(r, Refusal::Connections { asked: 5, limit: 4 }));
        assert!(r.to_string().contains("asks for 5 TCP connections, the limit is 4"));
        assert!(check(&l, Load::default(), &cmd(Protocol::Tcp, Direction::Both, 4, 32768)).is_ok());
    }

    #[test]
    fn every_connection_count_meets_the_operator_limit() {
        let l = Limits::default();
        let limit = l.max_connections_per_test;
        for n in 1..=u8::MAX {
            match check(&l, Load::default(), &cmd(Protocol::Tcp, Direction::Both, n, 32768)) {
                Ok(()) => assert!(n <= limit, "{n} admitted over the limit {limit}"),
                Err(Refusal::Connections { asked, limit: shown }) => {
                    assert!(n > limit && asked == usize::from(n) && shown == limit, "{n}");
                }
                Err(other) => panic!("{n} connections refused for another reason: {other}"),
            }
        }
        let all = Limits { max_connections_per_test: u8::MAX, ..Limits::default() };
        assert!(check(&all, Load::default(), &cmd(Protocol::Tcp, Direction::Both, u8::MAX, 32768)).is_ok());
    }

    #[test]
    fn udp_datagrams_above_the_system_limit() {
        let l = Limits::default();
        let big = cmd(Protocol::Udp, Direction::ServerToClient, 0, 9500);
        let r = test(&l, &Load::default(), &big, PEER.parse().unwrap(), 9216).unwrap_err();
        assert!(matches!(r, Refusal::UdpPayload { payload: 9472, max: 9216 }), "{r:?}");
        // Only datagrams the server sends are its business.
        let inbound = cmd(Protocol::Udp, Direction::ClientToServer, 0, 9500);
        assert!(test(&l, &Load::default(), &inbound, PEER.parse().unwrap(), 9216).is_ok());
    }

    #[test]
    fn first_failing_limit_is_reported() {
        let l = Limits { max_sessions: 1, max_sessions_per_ip: 1, ..Limits::default() };
        let r = check(&l, Load { sessions: 1, from_peer: 1, ..Load::default() }, &tcp()).unwrap_err();
        assert!(matches!(r, Refusal::ServerFull { .. }), "the global cap comes first: {r:?}");
    }

    #[test]
    fn per_address_handshake_cap_at_the_door() {
        let now = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let mut g = Guard::new(guard::GuardConfig { max_handshakes_per_ip: 2, ..guard::GuardConfig::default() });
        started(&mut g, ip, Slot::Regular, 2);
        let r = door(&Limits::default(), &g, ip, 0, now).unwrap_err();
        assert!(matches!(r, Refusal::Guard(guard::Refusal::TooManyHandshakes(2))) && r.at_door());
        assert_eq!(r.to_string(), "2 connections already in handshake (--max-handshakes-per-ip)");
        assert_eq!(door(&Limits::default(), &g, "192.0.2.2".parse().unwrap(), 0, now).unwrap(), Slot::Regular);
    }

    #[test]
    fn joins_of_a_joining_test_pass_both_caps_up_to_its_missing_connections() {
        let now = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let l = Limits { max_handshakes: 3, ..Limits::default() };
        let mut g = Guard::new(guard::GuardConfig { max_handshakes_per_ip: 1, ..guard::GuardConfig::default() });
        // Every cap is full: the address's own regular one and the global one.
        started(&mut g, ip, Slot::Regular, 1);
        started(&mut g, "192.0.2.9".parse().unwrap(), Slot::Regular, 2);
        assert!(door(&l, &g, ip, 0, now).is_err(), "no joining test, no allowance");
        // Its test misses 19 connections: exactly 19 join slots.
        for _ in 0..19 {
            assert_eq!(door(&l, &g, ip, 19, now).unwrap(), Slot::Join);
            g.handshake_started(ip, Slot::Join);
        }
        let r = door(&l, &g, ip, 19, now).unwrap_err();
        assert!(matches!(r, Refusal::Handshakes { pending: 3 }), "the 20th is over the allowance: {r:?}");
        // Joins are counted, apart from the regular table they do not fill.
        assert_eq!(g.handshakes(), guard::Handshakes { regular: 3, join: 19 });
        // Once the test stops joining (started, or ended) the allowance is gone.
        g.handshake_ended(ip, Slot::Join);
        assert!(door(&l, &g, ip, 0, now).is_err());
        // Another address never uses it.
        let r = door(&l, &g, "192.0.2.7".parse().unwrap(), 0, now).unwrap_err();
        assert!(matches!(r, Refusal::Handshakes { .. }), "{r:?}");
    }

    #[test]
    fn joins_take_their_slot_first_and_leave_the_regular_ones() {
        let now = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let mut g = Guard::new(guard::GuardConfig { max_handshakes_per_ip: 2, ..guard::GuardConfig::default() });
        started(&mut g, ip, Slot::Join, 1);
        assert_eq!(door(&Limits::default(), &g, ip, 2, now).unwrap(), Slot::Join);
        started(&mut g, ip, Slot::Join, 1);
        // The test's joins are in: another test's primary from behind the
        // same NAT still finds the regular slots free.
        assert_eq!(door(&Limits::default(), &g, ip, 2, now).unwrap(), Slot::Regular);
    }

    #[test]
    fn bans_and_access_lists_apply_to_joins_too() {
        let now = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let deny = Guard::new(guard::GuardConfig {
            deny: vec!["192.0.2.0/24".parse().unwrap()],
            ..guard::GuardConfig::default()
        });
        assert!(matches!(door(&Limits::default(), &deny, ip, 5, now), Err(Refusal::Guard(guard::Refusal::Denied))));
        let mut banned = Guard::new(guard::GuardConfig { fail_limit: 1, ..guard::GuardConfig::default() });
        banned.auth_failed(ip, now);
        let r = door(&Limits::default(), &banned, ip, 5, now).unwrap_err();
        assert!(matches!(r, Refusal::Guard(guard::Refusal::Banned { .. })), "{r:?}");
    }

    #[test]
    fn door_refusals() {
        let now = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let l = Limits { max_handshakes: 2, ..Limits::default() };
        let mut open = Guard::new(guard::GuardConfig::default());
        started(&mut open, other, Slot::Regular, 1);
        assert_eq!(door(&l, &open, ip, 0, now).unwrap(), Slot::Regular);
        started(&mut open, other, Slot::Regular, 1);
        let r = door(&l, &open, ip, 0, now).unwrap_err();
        assert!(matches!(r, Refusal::Handshakes { pending: 2 }) && r.at_door());
        assert_eq!(r.to_string(), "2 connections already in handshake (--max-handshakes)");
        let deny = Guard::new(guard::GuardConfig {
            deny: vec!["192.0.2.0/24".parse().unwrap()],
            ..guard::GuardConfig::default()
        });
        let r = door(&l, &deny, ip, 0, now).unwrap_err();
        assert!(matches!(r, Refusal::Guard(guard::Refusal::Denied)) && r.at_door());
        assert_eq!(r.to_string(), "address is in a --deny network");
    }

    fn started(guard: &mut Guard, ip: IpAddr, slot: Slot, n: usize) {
        for _ in 0..n {
            guard.handshake_started(ip, slot);
        }
    }

    #[test]
    fn handshakes_get_less_time_under_pressure() {
        let l = Limits { max_handshakes: 100, handshake_timeout: Duration::from_secs(10), ..Limits::default() };
        assert_eq!(handshake_deadline(&l, 74), Duration::from_secs(10));
        assert_eq!(handshake_deadline(&l, 75), Duration::from_millis(2500));
        let short = Limits { handshake_timeout: Duration::from_secs(1), ..l };
        assert_eq!(handshake_deadline(&short, 99), Duration::from_secs(1), "never longer than configured");
    }

    #[test]
    fn only_a_clearly_less_crowded_address_evicts() {
        assert!(may_evict(0, 16));
        assert!(may_evict(14, 16));
        assert!(!may_evict(15, 16), "crowded addresses cannot evict each other in turn");
        assert!(!may_evict(3, 3));
    }

    #[test]
    fn refusals_after_the_command_are_not_at_the_door() {
        assert!(!Refusal::ServerFull { running: 1 }.at_door());
        let e = PoolError::Exhausted { first: 1, last: 2 };
        let r = Refusal::UdpPort(e);
        assert!(!r.at_door());
        assert!(r.to_string().contains("all UDP ports 1-2 are in use"));
    }
}

//! Abuse protection at the door: allow/deny networks, a cap on handshakes
//! per address (the joins of an address's own multi-connection tests are
//! counted apart, as [`Slot::Join`]), and per-address bans after repeated
//! failed logins. Memory is bounded whatever the number of attacking
//! addresses.

use crate::cidr::{self, Cidr};
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Most addresses whose failed logins are remembered.
const MAX_TRACKED: usize = 4096;

#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// When non-empty, only these networks may connect.
    pub allow: Vec<Cidr>,
    /// These networks may never connect (checked first).
    pub deny: Vec<Cidr>,
    /// Failed logins within `fail_window` that start a ban; 0 = never ban.
    pub fail_limit: u32,
    pub fail_window: Duration,
    pub ban: Duration,
    /// Connections one address may have in the handshake at once.
    pub max_handshakes_per_ip: usize,
}

impl Default for GuardConfig {
    fn default() -> GuardConfig {
        GuardConfig {
            allow: Vec::new(),
            deny: Vec::new(),
            fail_limit: 5,
            fail_window: Duration::from_secs(60),
            ban: Duration::from_secs(300),
            max_handshakes_per_ip: 16,
        }
    }
}

/// Why a connection is turned away before HELLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Denied,
    NotAllowed,
    Banned { remaining: Duration },
    TooManyHandshakes(usize),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Denied => f.write_str("address is in a --deny network"),
            Refusal::NotAllowed => f.write_str("address is in no --allow network"),
            Refusal::Banned { remaining } => {
                write!(f, "banned after repeated failed logins ({} s left)", remaining.as_secs().max(1))
            }
            Refusal::TooManyHandshakes(n) => {
                write!(f, "{n} connections already in handshake (--max-handshakes-per-ip)")
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    window_start: Instant,
    last: Instant,
    banned_until: Option<Instant>,
}

/// What a failed login leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailOutcome {
    /// Hold the failure reply this long (slows password guessing).
    pub delay: Duration,
    /// A ban of this length starts now.
    pub banned: Option<Duration>,
}

/// Which allowance a connection in its handshake is counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Counted against `--max-handshakes` and `--max-handshakes-per-ip`.
    Regular,
    /// One of the connections that multi-connection tests of this address
    /// still miss: outside both caps, so that a client opening all its
    /// extra connections at once is served, and bounded by those missing
    /// connections (see `admission::door`).
    Join,
}

/// Connections in their handshake, by slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Handshakes {
    pub regular: usize,
    pub join: usize,
}

impl Handshakes {
    fn slot(&mut self, slot: Slot) -> &mut usize {
        match slot {
            Slot::Regular => &mut self.regular,
            Slot::Join => &mut self.join,
        }
    }
}

pub struct Guard {
    cfg: GuardConfig,
    failures: HashMap<IpAddr, Failures>,
    /// Connections in the handshake per address; an address with none has no entry.
    handshakes: HashMap<IpAddr, Handshakes>,
    /// The same, all addresses together.
    pending: Handshakes,
}

/// Bans, handshake counts and per-address limits apply to whole /64s: one
/// IPv6 host has them all.
pub fn address_key(ip: IpAddr) -> IpAddr {
    let ip = ip.to_canonical();
    if ip.is_ipv6() { cidr::mask(ip, 64) } else { ip }
}

/// Whether two addresses share bans and handshake counts.
pub fn same_client(a: IpAddr, b: IpAddr) -> bool {
    address_key(a) == address_key(b)
}

impl Guard {
    pub fn new(cfg: GuardConfig) -> Guard {
        Guard { cfg, failures: HashMap::new(), handshakes: HashMap::new(), pending: Handshakes::default() }
    }

    /// Whether `ip` may connect at all: the deny and allow lists and bans.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        if self.cfg.deny.iter().any(|n| n.contains(ip)) {
            return Err(Refusal::Denied);
        }
        if !self.cfg.allow.is_empty() && !self.cfg.allow.iter().any(|n| n.contains(ip)) {
            return Err(Refusal::NotAllowed);
        }
        let k = address_key(ip);
        if let Some(until) = self.failures.get(&k).and_then(|f| f.banned_until) {
            if until > now {
                return Err(Refusal::Banned { remaining: until - now });
            }
        }
        Ok(())
    }

    /// Whether `ip` may start one more regular handshake: its own cap.
    pub fn check_handshakes(&self, ip: IpAddr) -> Result<(), Refusal> {
        let n = self.handshakes_of(ip).regular;
        if n >= self.cfg.max_handshakes_per_ip {
            return Err(Refusal::TooManyHandshakes(n));
        }
        Ok(())
    }

    pub fn handshake_started(&mut self, ip: IpAddr, slot: Slot) {
        *self.handshakes.entry(address_key(ip)).or_default().slot(slot) += 1;
        *self.pending.slot(slot) += 1;
    }

    /// `slot` is the one the connection started under.
    pub fn handshake_ended(&mut self, ip: IpAddr, slot: Slot) {
        let k = address_key(ip);
        let Some(counts) = self.handshakes.get_mut(&k) else { return };
        let n = counts.slot(slot);
        if *n == 0 {
            return;
        }
        *n -= 1;
        *self.pending.slot(slot) -= 1;
        if *counts == Handshakes::default() {
            self.handshakes.remove(&k);
        }
    }

    /// Connections of `ip` (its /64 for IPv6) in the handshake.
    pub fn handshakes_of(&self, ip: IpAddr) -> Handshakes {
        self.handshakes.get(&address_key(ip)).copied().unwrap_or_default()
    }

    /// Records a failed login from `ip`.
    pub fn auth_failed(&mut self, ip: IpAddr, now: Instant) -> FailOutcome {
        let k = address_key(ip);
        if !self.failures.contains_key(&k) && self.failures.len() >= MAX_TRACKED {
            self.evict(now);
        }
        let f =
            self.failures.entry(k).or_insert(Failures { count: 0, window_start: now, last: now, banned_until: None });
        if now.duration_since(f.window_start) > self.cfg.fail_window {
            f.count = 0;
            f.window_start = now;
        }
        f.count += 1;
        f.last = now;
        // 0, 0.5, 1, ... 2 s: each further guess costs the attacker more time.
        let delay = Duration::from_millis(500 * u64::from(f.count.saturating_sub(1).min(4)));
        let mut banned = None;
        if self.cfg.fail_limit > 0 && f.count >= self.cfg.fail_limit && f.banned_until.is_none_or(|u| u <= now) {
            f.banned_until = Some(now + self.cfg.ban);
            f.count = 0;
            f.window_start = now;
            banned = Some(self.cfg.ban);
        }
        FailOutcome { delay, banned }
    }

    /// Whether `ip` is banned now (its pending connections must stop).
    pub fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        self.failures.get(&address_key(ip)).and_then(|f| f.banned_until).is_some_and(|u| u > now)
    }

    /// The address with the most regular handshakes, and how many.
    pub fn most_handshakes(&self) -> Option<(IpAddr, usize)> {
        self.handshakes.iter().map(|(k, h)| (*k, h.regular)).filter(|&(_, n)| n > 0).max_by_key(|&(_, n)| n)
    }

    /// Connections in the handshake, all addresses together.
    pub fn handshakes(&self) -> Handshakes {
        self.pending
    }

    /// Addresses banned at `now`.
    pub fn bans_active(&self, now: Instant) -> usize {
        self.failures.values().filter(|f| f.banned_until.is_some_and(|u| u > now)).count()
    }

    pub fn tracked(&self) -> usize {
        self.failures.len()
    }

    /// Drops expired entries, or the stalest one when none has expired.
    fn evict(&mut self, now: Instant) {
        let window = self.cfg.fail_window;
        self.failures
            .retain(|_, f| f.banned_until.is_some_and(|u| u > now) || now.duration_since(f.window_start) <= window);
        if self.failures.len() >= MAX_TRACKED {
            let stalest = self.failures.iter().filter(|(_, f)| f.banned_until.is_none()).min_by_key(|(_, f)| f.last);
            let victim = stalest.or_else(|| self.failures.iter().min_by_key(|(_, f)| f.last)).map(|(k, _)| *k);
            if let Some(k) = victim {
                self.failures.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn deny_then_allow_lists() {
        let g = Guard::new(GuardConfig {
            allow: vec!["10.0.0.0/8".parse().unwrap()],
            deny: vec!["10.6.6.0/24".parse().unwrap()],
            ..GuardConfig::default()
        });
        let now = Instant::now();
        assert_eq!(g.check(ip("10.1.1.1"), now), Ok(()));
        assert_eq!(g.check(ip("10.6.6.6"), now), Err(Refusal::Denied));
        assert_eq!(g.check(ip("192.0.2.1"), now), Err(Refusal::NotAllowed));
        assert_eq!(g.check(ip("::ffff:10.1.1.1"), now), Ok(()));
    }

    #[test]
    fn repeated_failures_ban_and_the_ban_expires() {
        let mut g = Guard::new(GuardConfig { fail_limit: 3, ban: Duration::from_secs(10), ..GuardConfig::default() });
        let t0 = Instant::now();
        let a = ip("192.0.2.9");
        assert_eq!(g.auth_failed(a, t0), FailOutcome { delay: Duration::ZERO, banned: None });
        assert_eq!(g.auth_failed(a, t0).delay, Duration::from_millis(500));
        let third = g.auth_failed(a, t0);
        assert_eq!(third.banned, Some(Duration::from_secs(10)));
        assert!(matches!(g.check(a, t0 + Duration::from_secs(1)), Err(Refusal::Banned { .. })));
        assert!(g.is_banned(a, t0 + Duration::from_secs(9)));
        assert!(g.check(a, t0 + Duration::from_secs(9)).is_err());
        assert_eq!(g.check(a, t0 + Duration::from_secs(11)), Ok(()));
        assert_eq!(g.check(ip("192.0.2.10"), t0), Ok(()));
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let mut g = Guard::new(GuardConfig { fail_limit: 3, ..GuardConfig::default() });
        let t0 = Instant::now();
        let a = ip("192.0.2.9");
        g.auth_failed(a, t0);
        g.auth_failed(a, t0);
        let later = t0 + Duration::from_secs(61);
        assert_eq!(g.auth_failed(a, later).banned, None);
        assert!(!g.is_banned(a, later));
    }

    #[test]
    fn failures_count_within_the_window_whatever_succeeds_between() {
        // fail2ban semantics: a valid login between guesses does not wipe
        // them, so one known password cannot launder unlimited guesses.
        let mut g = Guard::new(GuardConfig { fail_limit: 5, ..GuardConfig::default() });
        let t0 = Instant::now();
        let a = ip("192.0.2.9");
        let banned = (0..5).filter_map(|i| g.auth_failed(a, t0 + Duration::from_secs(i)).banned).count();
        assert_eq!(banned, 1, "the fifth failure within the window bans");
        assert!(g.is_banned(a, t0 + Duration::from_secs(5)));
    }

    #[test]
    fn the_most_crowded_address_is_found() {
        let mut g = Guard::new(GuardConfig::default());
        assert_eq!(g.most_handshakes(), None);
        g.handshake_started(ip("192.0.2.1"), Slot::Regular);
        g.handshake_started(ip("192.0.2.2"), Slot::Regular);
        g.handshake_started(ip("192.0.2.2"), Slot::Regular);
        g.handshake_started(ip("192.0.2.3"), Slot::Join);
        g.handshake_started(ip("192.0.2.3"), Slot::Join);
        g.handshake_started(ip("192.0.2.3"), Slot::Join);
        assert_eq!(g.most_handshakes(), Some((ip("192.0.2.2"), 2)), "joins are not crowding");
    }

    #[test]
    fn ipv6_hosts_of_one_prefix_share_a_ban() {
        let mut g = Guard::new(GuardConfig { fail_limit: 1, ..GuardConfig::default() });
        let t0 = Instant::now();
        g.auth_failed(ip("2001:db8:1:2::1"), t0);
        assert!(g.check(ip("2001:db8:1:2::ffff"), t0).is_err());
        assert_eq!(g.check(ip("2001:db8:1:3::1"), t0), Ok(()));
    }

    #[test]
    fn tracking_table_is_bounded() {
        let mut g = Guard::new(GuardConfig { fail_limit: 0, ..GuardConfig::default() });
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 500) {
            g.auth_failed(IpAddr::V4(i.into()), t0);
        }
        assert!(g.tracked() <= MAX_TRACKED);
    }

    #[test]
    fn handshakes_per_address_are_capped() {
        let mut g = Guard::new(GuardConfig { max_handshakes_per_ip: 2, ..GuardConfig::default() });
        let a = ip("192.0.2.1");
        g.handshake_started(a, Slot::Regular);
        g.handshake_started(a, Slot::Regular);
        assert_eq!(g.check_handshakes(a), Err(Refusal::TooManyHandshakes(2)));
        assert_eq!(g.check(a, Instant::now()), Ok(()), "the cap is not an access refusal");
        assert_eq!(g.handshakes().regular, 2);
        g.handshake_ended(a, Slot::Regular);
        assert_eq!(g.check_handshakes(a), Ok(()));
        g.handshake_ended(a, Slot::Regular);
        g.handshake_ended(a, Slot::Regular);
        assert_eq!(g.handshakes(), Handshakes::default(), "an unmatched end does not underflow");
        assert!(g.handshakes.is_empty());
    }

    #[test]
    fn join_slots_are_counted_apart_from_the_cap() {
        let mut g = Guard::new(GuardConfig { max_handshakes_per_ip: 1, ..GuardConfig::default() });
        let a = ip("2001:db8::1");
        g.handshake_started(a, Slot::Join);
        g.handshake_started(ip("2001:db8::2"), Slot::Join);
        assert_eq!(g.check_handshakes(a), Ok(()), "joins leave the regular cap alone");
        g.handshake_started(a, Slot::Regular);
        assert_eq!(g.handshakes_of(ip("2001:db8::ffff")), Handshakes { regular: 1, join: 2 }, "one /64");
        assert_eq!(g.handshakes(), Handshakes { regular: 1, join: 2 });
        // Ends that match no started handshake change nothing.
        g.handshake_ended(ip("192.0.2.1"), Slot::Join);
        g.handshake_ended(a, Slot::Join);
        g.handshake_ended(a, Slot::Join);
        g.handshake_ended(a, Slot::Join);
        assert_eq!(g.handshakes(), Handshakes { regular: 1, join: 0 });
        g.handshake_ended(a, Slot::Regular);
        assert!(g.handshakes.is_empty());
        assert!(same_client(ip("2001:db8::1"), ip("2001:db8::9")));
        assert!(!same_client(ip("2001:db8::1"), ip("2001:db8:0:1::1")));
        assert!(same_client(ip("::ffff:192.0.2.1"), ip("192.0.2.1")));
    }
}

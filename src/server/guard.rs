//! Abuse protection at the door: allow/deny networks, a cap on handshakes
//! per address, and per-address bans after repeated failed logins. Memory
//! is bounded whatever the number of attacking addresses.

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

pub struct Guard {
    cfg: GuardConfig,
    failures: HashMap<IpAddr, Failures>,
    /// Connections in the handshake, per address and in all.
    handshakes: HashMap<IpAddr, usize>,
    pending: usize,
}

/// Bans, handshake counts and per-address limits apply to whole /64s: one
/// IPv6 host has them all.
pub fn address_key(ip: IpAddr) -> IpAddr {
    let ip = ip.to_canonical();
    if ip.is_ipv6() { cidr::mask(ip, 64) } else { ip }
}

impl Guard {
    pub fn new(cfg: GuardConfig) -> Guard {
        Guard { cfg, failures: HashMap::new(), handshakes: HashMap::new(), pending: 0 }
    }

    /// Whether `ip` may open a connection now.
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
        let n = self.handshakes.get(&k).copied().unwrap_or(0);
        if n >= self.cfg.max_handshakes_per_ip {
            return Err(Refusal::TooManyHandshakes(n));
        }
        Ok(())
    }

    pub fn handshake_started(&mut self, ip: IpAddr) {
        *self.handshakes.entry(address_key(ip)).or_insert(0) += 1;
        self.pending += 1;
    }

    pub fn handshake_ended(&mut self, ip: IpAddr) {
        let k = address_key(ip);
        if let Some(n) = self.handshakes.get_mut(&k) {
            *n -= 1;
            self.pending -= 1;
            if *n == 0 {
                self.handshakes.remove(&k);
            }
        }
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

    /// Connections in the handshake from `ip`'s address.
    pub fn handshakes_from(&self, ip: IpAddr) -> usize {
        self.handshakes.get(&address_key(ip)).copied().unwrap_or(0)
    }

    /// The address with the most connections in the handshake, and how many.
    pub fn most_handshakes(&self) -> Option<(IpAddr, usize)> {
        self.handshakes.iter().max_by_key(|&(_, n)| *n).map(|(k, n)| (*k, *n))
    }

    /// Connections in the handshake, all addresses together.
    pub fn handshakes(&self) -> usize {
        self.pending
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
        let now = Instant::now();
        g.handshake_started(a);
        g.handshake_started(a);
        assert_eq!(g.check(a, now), Err(Refusal::TooManyHandshakes(2)));
        assert_eq!(g.handshakes(), 2);
        assert_eq!(g.handshakes_from(a), 2);
        g.handshake_started(ip("192.0.2.2"));
        assert_eq!(g.most_handshakes(), Some((a, 2)));
        g.handshake_ended(ip("192.0.2.2"));
        g.handshake_ended(a);
        assert_eq!(g.check(a, now), Ok(()));
        g.handshake_ended(a);
        g.handshake_ended(a);
        assert_eq!(g.handshakes(), 0, "an unmatched end does not underflow");
    }
}

//! The event loop's authoritative budget counters for the current periods.
//!
//! Single-threaded and disk-free: loaded once from the store at start, then
//! charged by the loop every second per running session. The store is only
//! the durable copy; admission and stopping decisions are made here.

use super::limits::{Dir, Limits, QuotaConfig};
use super::period::{Date, Period, PeriodKey, unix_secs};
use super::subject::{IpKey, Subject};
use crate::quota::amount::format_amount;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::SystemTime;

/// Stored usage of one subject in one period, as loaded at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub subject: Subject,
    pub key: PeriodKey,
    /// Bytes the server received.
    pub rx: u64,
    /// Bytes the server transmitted.
    pub tx: u64,
}

/// A budget that is used up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    pub subject: Subject,
    pub period: Period,
    pub key: PeriodKey,
    pub dir: Dir,
    pub limit: u64,
    pub used: u64,
}

impl Exceeded {
    /// Short form for end reasons and session records: `user-day-total`.
    pub fn short(&self) -> String {
        format!("{}-{}-{}", self.subject.scope(), self.period, self.dir)
    }
}

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} budget {} exhausted (used {})",
            self.subject,
            self.period,
            self.dir,
            format_amount(self.limit),
            format_amount(self.used)
        )
    }
}

impl std::error::Error for Exceeded {}

/// What one charge counted: the subjects, the day, the bytes, and any
/// budget now used up. The store saves exactly this, so stored usage is
/// grouped (IPv6 prefix, time zone) the way the ledger counted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The user, or [`Subject::Anonymous`] for a test without a user name.
    pub subject: Subject,
    /// The client address, IPv6 masked to the configured prefix.
    pub ip: IpKey,
    /// The date the bytes belong to, in the configured zone; the week and
    /// month follow from it.
    pub date: Date,
    /// Bytes the server received.
    pub rx: u64,
    /// Bytes the server transmitted.
    pub tx: u64,
    /// The first applicable budget that is now used up.
    pub exceeded: Option<Exceeded>,
}

/// Counters of one subject for the current day, week and month.
#[derive(Debug, Clone)]
struct Account {
    /// The period each row of `used` belongs to, by [`Period::index`].
    keys: [PeriodKey; 3],
    /// `[rx, tx]` bytes per period; never decreases within a period.
    used: [[u64; 2]; 3],
}

impl Account {
    fn new(keys: [PeriodKey; 3]) -> Account {
        Account { keys, used: [[0; 2]; 3] }
    }

    /// Starts a new period where `keys` is later. A clock stepped back
    /// keeps counting into the current period rather than resetting it.
    fn roll(&mut self, keys: &[PeriodKey; 3]) {
        for ((mine, used), new) in self.keys.iter_mut().zip(&mut self.used).zip(keys) {
            if new > mine {
                *mine = *new;
                *used = [0; 2];
            }
        }
    }

    fn add(&mut self, rx: u64, tx: u64) {
        for u in &mut self.used {
            u[0] = u[0].saturating_add(rx);
            u[1] = u[1].saturating_add(tx);
        }
    }

    fn is_empty(&self) -> bool {
        self.used.iter().flatten().all(|&b| b == 0)
    }

    /// The first exhausted budget: day before week before month, rx, tx, total.
    fn exhausted(&self, limits: &Limits) -> Option<(Period, PeriodKey, Dir, u64, u64)> {
        for p in Period::ALL {
            let [rx, tx] = self.used[p.index()];
            for d in Dir::ALL {
                let limit = limits.get(p, d);
                let used = d.of(rx, tx);
                if limit > 0 && used >= limit {
                    return Some((p, self.keys[p.index()], d, limit, used));
                }
            }
        }
        None
    }
}

/// Per-IP counters with the budget that applies to that address.
#[derive(Debug, Clone)]
struct IpAccount {
    account: Account,
    limits: Limits,
}

/// In-memory usage of the current periods per user, anonymous and client IP.
#[derive(Debug)]
pub struct Ledger {
    config: QuotaConfig,
    users: HashMap<String, Account>,
    anonymous: Account,
    ips: HashMap<IpKey, IpAccount>,
    /// The last second asked about, its date and that date's period keys.
    clock: (i64, Date, [PeriodKey; 3]),
}

fn verdict(subject: impl FnOnce() -> Subject, acc: &Account, limits: &Limits) -> Option<Exceeded> {
    acc.exhausted(limits).map(|(period, key, dir, limit, used)| Exceeded {
        subject: subject(),
        period,
        key,
        dir,
        limit,
        used,
    })
}

impl Ledger {
    /// A ledger for `config`, seeded with the stored usage of the periods
    /// current at `now` (rows of other periods are ignored).
    pub fn new(config: QuotaConfig, usage: &[UsageRow], now: SystemTime) -> Ledger {
        let unix = unix_secs(now);
        let date = Date::at(unix, config.zone().offset_at(unix));
        let keys = date.keys();
        let mut ledger = Ledger {
            config,
            users: HashMap::new(),
            anonymous: Account::new(keys),
            ips: HashMap::new(),
            clock: (unix, date, keys),
        };
        for row in usage {
            let i = row.key.period().index();
            if keys[i] != row.key {
                continue;
            }
            let acc = match &row.subject {
                Subject::User(n) => ledger.users.entry(n.clone()).or_insert_with(|| Account::new(keys)),
                Subject::Anonymous => &mut ledger.anonymous,
                Subject::Ip(k) => {
                    // Rows grouped under another IPv6 prefix are not this grouping's counters.
                    if matches!(k, IpKey::V6 { prefix, .. } if *prefix != ledger.config.ipv6_prefix) {
                        continue;
                    }
                    let limits = ledger.config.ip_limits(k.addr());
                    &mut ledger
                        .ips
                        .entry(*k)
                        .or_insert_with(|| IpAccount { account: Account::new(keys), limits })
                        .account
                }
            };
            acc.used[i][0] = acc.used[i][0].saturating_add(row.rx);
            acc.used[i][1] = acc.used[i][1].saturating_add(row.tx);
        }
        ledger
    }

    pub fn config(&self) -> &QuotaConfig {
        &self.config
    }

    /// Applies a reloaded configuration; counters are kept. A changed IPv6
    /// prefix regroups IPv6 counters (merging groups when it shortens); a
    /// changed time zone applies from the next charge on.
    pub fn set_config(&mut self, config: QuotaConfig) {
        let regroup = config.ipv6_prefix != self.config.ipv6_prefix;
        if config.utc != self.config.utc {
            // Recompute the date at the next call rather than next second.
            self.clock.0 = i64::MIN;
        }
        self.config = config;
        if regroup {
            let old = std::mem::take(&mut self.ips);
            for (k, mut ia) in old {
                let key = IpKey::new(k.addr(), self.config.ipv6_prefix);
                match self.ips.get_mut(&key) {
                    Some(existing) => {
                        existing.account.roll(&ia.account.keys);
                        ia.account.roll(&existing.account.keys);
                        for (e, o) in existing.account.used.iter_mut().zip(ia.account.used) {
                            e[0] = e[0].saturating_add(o[0]);
                            e[1] = e[1].saturating_add(o[1]);
                        }
                    }
                    None => {
                        self.ips.insert(key, ia);
                    }
                }
            }
        }
        for (k, ia) in &mut self.ips {
            ia.limits = self.config.ip_limits(k.addr());
        }
    }

    /// The date and period keys at `now`, computed at most once per second.
    fn keys_at(&mut self, now: SystemTime) -> (Date, [PeriodKey; 3]) {
        let unix = unix_secs(now);
        if unix != self.clock.0 {
            let date = Date::at(unix, self.config.zone().offset_at(unix));
            let keys = date.keys();
            let new_day = keys[0] > self.clock.2[0];
            self.clock = (unix, date, keys);
            if new_day {
                self.prune(&keys);
            }
        }
        (self.clock.1, self.clock.2)
    }

    /// Forgets accounts with nothing counted in the current periods, so the
    /// table holds only addresses seen this month.
    fn prune(&mut self, keys: &[PeriodKey; 3]) {
        self.ips.retain(|_, ia| {
            ia.account.roll(keys);
            !ia.account.is_empty()
        });
        self.users.retain(|_, a| {
            a.roll(keys);
            !a.is_empty()
        });
    }

    /// Admission: refuses a new test when any budget that applies to it
    /// (the user's or the anonymous one, and the client address's) has no
    /// bytes left.
    pub fn check(&mut self, user: Option<&str>, ip: IpAddr, now: SystemTime) -> Result<(), Exceeded> {
        let (_, keys) = self.keys_at(now);
        let key = IpKey::new(ip, self.config.ipv6_prefix);
        self.verdict(user, key, &keys, false, 0, 0).map_or(Ok(()), Err)
    }

    /// Counts `rx`/`tx` bytes of a running test (called about once a second
    /// per session, and at its end). The returned [`Charge`] says whom and
    /// which day the bytes were counted for, for the store to save, and the
    /// first applicable budget that is now used up — also when another
    /// session used it up — so the caller can stop the test.
    pub fn charge(&mut self, user: Option<&str>, ip: IpAddr, rx: u64, tx: u64, now: SystemTime) -> Charge {
        let (date, keys) = self.keys_at(now);
        let key = IpKey::new(ip, self.config.ipv6_prefix);
        let exceeded = self.verdict(user, key, &keys, true, rx, tx);
        Charge { subject: Subject::for_user(user), ip: key, date, rx, tx, exceeded }
    }

    fn verdict(
        &mut self,
        user: Option<&str>,
        key: IpKey,
        keys: &[PeriodKey; 3],
        charge: bool,
        rx: u64,
        tx: u64,
    ) -> Option<Exceeded> {
        let count = charge && (rx > 0 || tx > 0);
        let first = match user {
            Some(name) => {
                let limits = self.config.user_limits(name);
                if count && !self.users.contains_key(name) {
                    self.users.insert(name.to_string(), Account::new(*keys));
                }
                self.users.get_mut(name).and_then(|acc| {
                    acc.roll(keys);
                    if count {
                        acc.add(rx, tx);
                    }
                    verdict(|| Subject::User(name.to_string()), acc, &limits)
                })
            }
            None => {
                let acc = &mut self.anonymous;
                acc.roll(keys);
                if count {
                    acc.add(rx, tx);
                }
                verdict(|| Subject::Anonymous, acc, &self.config.anonymous)
            }
        };
        if count && !self.ips.contains_key(&key) {
            let limits = self.config.ip_limits(key.addr());
            self.ips.insert(key, IpAccount { account: Account::new(*keys), limits });
        }
        let by_ip = self.ips.get_mut(&key).and_then(|ia| {
            ia.account.roll(keys);
            if count {
                ia.account.add(rx, tx);
            }
            verdict(|| Subject::Ip(key), &ia.account, &ia.limits)
        });
        first.or(by_ip)
    }

    /// Bytes `[rx, tx]` counted for `subject` in the current `period`.
    pub fn used(&mut self, subject: &Subject, period: Period, now: SystemTime) -> [u64; 2] {
        let (_, keys) = self.keys_at(now);
        let acc = match subject {
            Subject::User(n) => self.users.get_mut(n.as_str()),
            Subject::Anonymous => Some(&mut self.anonymous),
            Subject::Ip(k) => self.ips.get_mut(k).map(|ia| &mut ia.account),
        };
        acc.map_or([0; 2], |a| {
            a.roll(&keys);
            a.used[period.index()]
        })
    }

    /// Bytes left of the tightest budget of `user` (None: the anonymous
    /// one) and of the address `ip`, this period; None where no budget applies.
    pub fn left(&mut self, user: Option<&str>, ip: IpAddr, now: SystemTime) -> (Option<u64>, Option<u64>) {
        let (_, keys) = self.keys_at(now);
        let tightest = |acc: Option<&mut Account>, limits: &Limits| {
            let used = acc.map_or([[0; 2]; 3], |a| {
                a.roll(&keys);
                a.used
            });
            limits.iter().map(|(p, d, l)| l.saturating_sub(d.of(used[p.index()][0], used[p.index()][1]))).min()
        };
        let subject = match user {
            Some(name) => {
                let limits = self.config.user_limits(name);
                tightest(self.users.get_mut(name), &limits)
            }
            None => tightest(Some(&mut self.anonymous), &self.config.anonymous.clone()),
        };
        let key = IpKey::new(ip, self.config.ipv6_prefix);
        let limits = self.ips.get(&key).map_or_else(|| self.config.ip_limits(key.addr()), |ia| ia.limits);
        (subject, tightest(self.ips.get_mut(&key).map(|ia| &mut ia.account), &limits))
    }

    /// Every subject with bytes counted this month, with `[rx, tx]` per
    /// period (by [`Period::index`]).
    pub fn accounts(&mut self, now: SystemTime) -> Vec<(Subject, [[u64; 2]; 3])> {
        let (_, keys) = self.keys_at(now);
        let mut out = Vec::new();
        for (name, a) in &mut self.users {
            a.roll(&keys);
            out.push((Subject::User(name.clone()), a.used));
        }
        self.anonymous.roll(&keys);
        out.push((Subject::Anonymous, self.anonymous.used));
        for (k, ia) in &mut self.ips {
            ia.account.roll(&keys);
            out.push((Subject::Ip(*k), ia.account.used));
        }
        out.retain(|(_, u)| u.iter().flatten().any(|&b| b > 0));
        out
    }

    /// How many client-address accounts are held (memory grows with this).
    pub fn ip_accounts(&self) -> usize {
        self.ips.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// 2026-11-24 (a Tuesday) 12:00 UTC.
    fn noon() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_478_400 + 12 * 3600)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn utc() -> QuotaConfig {
        QuotaConfig { utc: true, ..QuotaConfig::default() }
    }

    fn limits(p: Period, d: Dir, b: u64) -> Limits {
        let mut l = Limits::UNLIMITED;
        l.set(p, d, b);
        l
    }

    fn with_user(name: &str, l: Limits) -> QuotaConfig {
        let mut c = utc();
        c.users.insert(name.to_string(), l);
        c
    }

    const A: &str = "192.0.2.1";

    #[test]
    fn left_is_the_tightest_budget_of_the_subject_and_of_the_address() {
        let mut l = limits(Period::Day, Dir::Total, 1000);
        l.set(Period::Month, Dir::Rx, 700);
        let mut cfg = with_user("ann", l);
        cfg.ip_default = limits(Period::Week, Dir::Tx, 5000);
        let mut led = Ledger::new(cfg, &[], noon());
        assert_eq!(led.left(Some("ann"), ip(A), noon()), (Some(700), Some(5000)), "before any bytes");
        led.charge(Some("ann"), ip(A), 100, 400, noon());
        assert_eq!(led.left(Some("ann"), ip(A), noon()), (Some(500), Some(4600)));
        assert_eq!(led.left(Some("bob"), ip("192.0.2.9"), noon()), (None, Some(5000)), "bob has no budget");
        assert_eq!(led.left(None, ip(A), noon()), (None, Some(4600)), "anonymous is unlimited");
        led.charge(Some("ann"), ip(A), 0, 900, noon());
        assert_eq!(led.left(Some("ann"), ip(A), noon()).0, Some(0), "never below zero");
    }

    #[test]
    fn exhaustion_is_detected_at_the_exact_byte() {
        let mut l = Ledger::new(with_user("alice", limits(Period::Day, Dir::Total, 1000)), &[], noon());
        assert_eq!(l.charge(Some("alice"), ip(A), 500, 499, noon()).exceeded, None);
        assert!(l.check(Some("alice"), ip(A), noon()).is_ok());
        let e = l.charge(Some("alice"), ip(A), 1, 0, noon()).exceeded.unwrap();
        assert_eq!((e.period, e.dir, e.limit, e.used), (Period::Day, Dir::Total, 1000, 1000));
        assert_eq!(e.subject, Subject::User("alice".into()));
        assert_eq!(e.key.to_string(), "2026-11-24");
        assert_eq!(e.short(), "user-day-total");
    }

    #[test]
    fn a_test_with_no_budget_left_is_refused() {
        let mut l = Ledger::new(with_user("alice", limits(Period::Week, Dir::Rx, 10)), &[], noon());
        l.charge(Some("alice"), ip(A), 10, 0, noon());
        let e = l.check(Some("alice"), ip(A), noon()).unwrap_err();
        assert_eq!((e.period, e.dir), (Period::Week, Dir::Rx));
        // Another user and anonymous tests are not affected.
        assert!(l.check(Some("bob"), ip(A), noon()).is_ok());
        assert!(l.check(None, ip(A), noon()).is_ok());
    }

    #[test]
    fn directions_are_counted_separately() {
        let mut l = Ledger::new(with_user("alice", limits(Period::Day, Dir::Tx, 100)), &[], noon());
        assert_eq!(l.charge(Some("alice"), ip(A), 1_000_000, 99, noon()).exceeded, None, "rx does not use a tx budget");
        assert!(l.charge(Some("alice"), ip(A), 0, 1, noon()).exceeded.is_some());
        assert_eq!(l.used(&Subject::User("alice".into()), Period::Day, noon()), [1_000_000, 100]);
    }

    #[test]
    fn zero_means_unlimited() {
        let mut l = Ledger::new(with_user("alice", Limits::UNLIMITED), &[], noon());
        assert_eq!(l.charge(Some("alice"), ip(A), u64::MAX, u64::MAX, noon()).exceeded, None);
        assert_eq!(l.charge(Some("alice"), ip(A), 1, 1, noon()).exceeded, None, "saturates instead of wrapping");
        assert!(l.check(Some("alice"), ip(A), noon()).is_ok());
    }

    #[test]
    fn anonymous_tests_share_one_budget() {
        let mut c = utc();
        c.anonymous = limits(Period::Day, Dir::Total, 100);
        let mut l = Ledger::new(c, &[], noon());
        assert_eq!(l.charge(None, ip("192.0.2.1"), 60, 0, noon()).exceeded, None);
        let e = l.charge(None, ip("198.51.100.1"), 40, 0, noon()).exceeded.unwrap();
        assert_eq!(e.subject, Subject::Anonymous);
        assert!(l.check(None, ip("203.0.113.5"), noon()).is_err());
        assert!(l.check(Some("alice"), ip("203.0.113.5"), noon()).is_ok(), "users do not use the anonymous budget");
    }

    #[test]
    fn ip_budgets_apply_to_users_and_anonymous_alike() {
        let mut c = utc();
        c.ip_default = limits(Period::Month, Dir::Total, 100);
        let mut l = Ledger::new(c, &[], noon());
        assert_eq!(l.charge(Some("alice"), ip(A), 50, 0, noon()).exceeded, None);
        let e = l.charge(None, ip(A), 0, 50, noon()).exceeded.unwrap();
        assert_eq!(e.subject, Subject::Ip(IpKey::new(ip(A), 64)));
        assert_eq!(e.to_string(), "client 192.0.2.1 month total budget 100 B exhausted (used 100 B)");
        assert!(l.check(Some("bob"), ip(A), noon()).is_err());
        assert!(l.check(Some("bob"), ip("192.0.2.2"), noon()).is_ok());
    }

    #[test]
    fn ipv6_clients_of_one_64_share_a_budget() {
        let mut c = utc();
        c.ip_default = limits(Period::Day, Dir::Total, 100);
        let mut l = Ledger::new(c.clone(), &[], noon());
        l.charge(None, ip("2001:db8:0:1::a"), 100, 0, noon());
        assert!(l.check(None, ip("2001:db8:0:1::b"), noon()).is_err());
        assert!(l.check(None, ip("2001:db8:0:2::a"), noon()).is_ok());

        c.ipv6_prefix = 128;
        let mut l = Ledger::new(c, &[], noon());
        l.charge(None, ip("2001:db8:0:1::a"), 100, 0, noon());
        assert!(l.check(None, ip("2001:db8:0:1::b"), noon()).is_ok());
    }

    #[test]
    fn ipv4_mapped_clients_share_the_ipv4_budget() {
        let mut c = utc();
        c.ip_default = limits(Period::Day, Dir::Total, 100);
        let mut l = Ledger::new(c, &[], noon());
        l.charge(None, ip("::ffff:192.0.2.1"), 100, 0, noon());
        assert!(l.check(None, ip(A), noon()).is_err());
    }

    #[test]
    fn cidr_overrides_set_each_members_budget() {
        let mut c = utc();
        c.ip_default = limits(Period::Day, Dir::Total, 100);
        let mut o = super::super::PartialLimits::default();
        o.set(Period::Day, Dir::Total, Some(1000));
        c.ip_overrides.push(("10.0.0.0/8".parse().unwrap(), o));
        let mut l = Ledger::new(c, &[], noon());
        assert_eq!(l.charge(None, ip("10.0.0.1"), 500, 0, noon()).exceeded, None);
        assert_eq!(l.charge(None, ip("10.0.0.2"), 500, 0, noon()).exceeded, None, "members count separately");
        assert!(l.charge(None, ip("192.0.2.1"), 100, 0, noon()).exceeded.is_some());
        assert!(l.charge(None, ip("10.0.0.1"), 500, 0, noon()).exceeded.is_some());
    }

    #[test]
    fn counters_reset_when_the_period_rolls_over() {
        let mut c = with_user("alice", limits(Period::Day, Dir::Total, 100));
        c.users.get_mut("alice").unwrap().set(Period::Month, Dir::Total, 1000);
        let mut l = Ledger::new(c, &[], noon());
        assert!(l.charge(Some("alice"), ip(A), 100, 0, noon()).exceeded.is_some());
        let tomorrow = noon() + Duration::from_secs(12 * 3600);
        assert!(l.check(Some("alice"), ip(A), tomorrow).is_ok());
        assert_eq!(l.used(&Subject::User("alice".into()), Period::Day, tomorrow), [0, 0]);
        assert_eq!(l.used(&Subject::User("alice".into()), Period::Month, tomorrow), [100, 0]);
        // A clock stepped back does not reset today's counters.
        l.charge(Some("alice"), ip(A), 10, 0, tomorrow);
        assert_eq!(l.used(&Subject::User("alice".into()), Period::Day, noon()), [10, 0]);
        // December starts a new month.
        let december = noon() + Duration::from_secs(7 * 86_400);
        assert_eq!(l.used(&Subject::User("alice".into()), Period::Month, december), [0, 0]);
    }

    #[test]
    fn stored_usage_of_the_current_periods_is_loaded() {
        let today = Date::at(unix_secs(noon()), 0);
        let alice = Subject::User("alice".into());
        let rows = vec![
            UsageRow { subject: alice.clone(), key: today.key(Period::Day), rx: 900, tx: 50 },
            UsageRow { subject: alice.clone(), key: today.key(Period::Month), rx: 5000, tx: 0 },
            UsageRow { subject: alice.clone(), key: "2026-11-23".parse().unwrap(), rx: 77, tx: 0 },
            UsageRow { subject: Subject::Ip(IpKey::new(ip(A), 64)), key: today.key(Period::Day), rx: 1, tx: 2 },
        ];
        let mut l = Ledger::new(with_user("alice", limits(Period::Day, Dir::Total, 1000)), &rows, noon());
        assert_eq!(l.used(&alice, Period::Day, noon()), [900, 50]);
        assert_eq!(l.used(&alice, Period::Week, noon()), [0, 0]);
        assert_eq!(l.used(&alice, Period::Month, noon()), [5000, 0]);
        assert_eq!(l.used(&Subject::Ip(IpKey::new(ip(A), 64)), Period::Day, noon()), [1, 2]);
        assert!(l.charge(Some("alice"), ip(A), 50, 0, noon()).exceeded.is_some());
    }

    #[test]
    fn reload_keeps_counters_and_applies_new_limits() {
        let mut l = Ledger::new(with_user("alice", limits(Period::Day, Dir::Total, 1000)), &[], noon());
        l.charge(Some("alice"), ip(A), 600, 0, noon());
        l.set_config(with_user("alice", limits(Period::Day, Dir::Total, 500)));
        assert!(l.check(Some("alice"), ip(A), noon()).is_err());
        l.set_config(with_user("alice", Limits::UNLIMITED));
        assert!(l.check(Some("alice"), ip(A), noon()).is_ok());
        assert_eq!(l.used(&Subject::User("alice".into()), Period::Day, noon()), [600, 0]);

        let mut c = utc();
        c.ip_default = limits(Period::Day, Dir::Total, 100);
        l.set_config(c.clone());
        l.charge(None, ip("2001:db8:0:1::a"), 60, 0, noon());
        l.charge(None, ip("2001:db8:0:2::a"), 60, 0, noon());
        assert!(l.check(None, ip("2001:db8:0:1::a"), noon()).is_ok());
        c.ipv6_prefix = 48;
        l.set_config(c);
        assert!(l.check(None, ip("2001:db8:0:3::a"), noon()).is_err(), "regrouped into one /48");
    }

    #[test]
    fn concurrent_sessions_all_see_a_shared_budget_run_out() {
        let mut l = Ledger::new(with_user("alice", limits(Period::Day, Dir::Total, 100)), &[], noon());
        assert_eq!(l.charge(Some("alice"), ip(A), 60, 0, noon()).exceeded, None);
        assert!(l.charge(Some("alice"), ip("192.0.2.2"), 60, 0, noon()).exceeded.is_some());
        // The first session learns at its next charge, even with nothing new.
        assert!(l.charge(Some("alice"), ip(A), 0, 0, noon()).exceeded.is_some());
    }

    #[test]
    fn a_charge_names_the_subjects_and_the_day_it_counted() {
        let mut c = utc();
        c.ipv6_prefix = 56;
        let mut l = Ledger::new(c, &[], noon());
        let charge = l.charge(Some("alice"), ip("2001:db8:0:1ff::a"), 5, 6, noon());
        let expected = Charge {
            subject: Subject::User("alice".into()),
            ip: IpKey::new(ip("2001:db8:0:100::"), 56),
            date: Date { year: 2026, month: 11, day: 24 },
            rx: 5,
            tx: 6,
            exceeded: None,
        };
        assert_eq!(charge, expected);
        assert_eq!(charge.ip.to_string(), "2001:db8:0:100::/56");
        let late = noon() + Duration::from_secs(12 * 3600 - 1);
        let charge = l.charge(None, ip("::ffff:192.0.2.1"), 0, 1, late);
        assert_eq!((charge.subject, charge.ip), (Subject::Anonymous, IpKey::new(ip(A), 56)));
        assert_eq!(charge.date.to_string(), "2026-11-24", "23:59:59 UTC is still the 24th");

        // A reloaded zone applies from the next charge, even within the same second.
        l.set_config(QuotaConfig { utc: false, ipv6_prefix: 56, ..QuotaConfig::default() });
        let charge = l.charge(None, ip(A), 1, 0, late);
        assert_eq!(charge.date, Date::in_zone(late, super::super::Zone::Local));
    }

    #[test]
    fn idle_addresses_are_forgotten_at_the_next_day() {
        let mut c = utc();
        c.ip_default = limits(Period::Day, Dir::Total, 100);
        let mut l = Ledger::new(c, &[], noon());
        l.charge(None, ip(A), 1, 0, noon());
        assert_eq!(l.ip_accounts(), 1);
        let december = noon() + Duration::from_secs(7 * 86_400);
        l.check(None, ip(A), december).unwrap();
        assert_eq!(l.ip_accounts(), 0);
    }
}

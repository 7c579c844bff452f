//! Byte budgets: a period × direction table per subject, and the operator's
//! whole quota configuration.

use super::period::Period;
use super::subject::{Cidr, DEFAULT_IPV6_PREFIX};
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Direction of counted bytes, always from the server's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dir {
    /// Bytes the server received (client → server).
    Rx,
    /// Bytes the server transmitted (server → client).
    Tx,
    /// Both together.
    Total,
}

impl Dir {
    pub const ALL: [Dir; 3] = [Dir::Rx, Dir::Tx, Dir::Total];

    /// Column index in a [`Limits`] table.
    pub fn index(self) -> usize {
        match self {
            Dir::Rx => 0,
            Dir::Tx => 1,
            Dir::Total => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Dir::Rx => "rx",
            Dir::Tx => "tx",
            Dir::Total => "total",
        }
    }

    /// The bytes this direction counts out of a (rx, tx) pair.
    pub fn of(self, rx: u64, tx: u64) -> u64 {
        match self {
            Dir::Rx => rx,
            Dir::Tx => tx,
            Dir::Total => rx.saturating_add(tx),
        }
    }
}

impl fmt::Display for Dir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Dir {
    type Err = String;
    fn from_str(s: &str) -> Result<Dir, String> {
        match s {
            "rx" => Ok(Dir::Rx),
            "tx" => Ok(Dir::Tx),
            "total" => Ok(Dir::Total),
            _ => Err(format!("invalid direction '{s}': use rx, tx or total")),
        }
    }
}

/// Budgets in bytes by period and direction; 0 = unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// `bytes[period.index()][dir.index()]`.
    bytes: [[u64; 3]; 3],
}

impl Limits {
    pub const UNLIMITED: Limits = Limits { bytes: [[0; 3]; 3] };

    pub fn get(&self, period: Period, dir: Dir) -> u64 {
        self.bytes[period.index()][dir.index()]
    }

    pub fn set(&mut self, period: Period, dir: Dir, bytes: u64) {
        self.bytes[period.index()][dir.index()] = bytes;
    }

    pub fn is_unlimited(&self) -> bool {
        self.bytes.iter().flatten().all(|&b| b == 0)
    }

    /// Every (period, dir, bytes) with a budget.
    pub fn iter(&self) -> impl Iterator<Item = (Period, Dir, u64)> + '_ {
        Period::ALL
            .into_iter()
            .flat_map(move |p| Dir::ALL.into_iter().map(move |d| (p, d, self.get(p, d))))
            .filter(|(_, _, b)| *b > 0)
    }
}

/// Some cells of a [`Limits`] table; the rest inherit. Used for per-IP
/// overrides and for the CLI's "change only what was given".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PartialLimits {
    pub bytes: [[Option<u64>; 3]; 3],
}

impl PartialLimits {
    pub fn get(&self, period: Period, dir: Dir) -> Option<u64> {
        self.bytes[period.index()][dir.index()]
    }

    pub fn set(&mut self, period: Period, dir: Dir, bytes: Option<u64>) {
        self.bytes[period.index()][dir.index()] = bytes;
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.iter().flatten().all(Option::is_none)
    }

    /// Every cell that is set.
    pub fn iter(&self) -> impl Iterator<Item = (Period, Dir, u64)> + '_ {
        Period::ALL
            .into_iter()
            .flat_map(move |p| Dir::ALL.into_iter().map(move |d| (p, d, self.get(p, d))))
            .filter_map(|(p, d, b)| b.map(|b| (p, d, b)))
    }

    /// `base` with the cells set here replacing its cells.
    pub fn over(&self, base: &Limits) -> Limits {
        let mut out = *base;
        for (p, d, b) in self.iter() {
            out.set(p, d, b);
        }
        out
    }
}

/// Everything the ledger needs to know about budgets.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaConfig {
    /// Per-user budgets; users not listed are unlimited (IP budgets still apply).
    pub users: HashMap<String, Limits>,
    /// One shared budget for all tests without a user name.
    pub anonymous: Limits,
    /// Per-address budget for addresses no override covers.
    pub ip_default: Limits,
    /// Per-address budgets for addresses inside a block. A cell set by a
    /// more specific block wins; unset cells fall back to less specific
    /// blocks and then to `ip_default`. Each address (IPv6: each group)
    /// still has its own counters: a block sets the budget of each member,
    /// not one budget shared by the block.
    pub ip_overrides: Vec<(Cidr, PartialLimits)>,
    /// IPv6 clients share per-IP budgets and counters per this prefix (1..=128).
    pub ipv6_prefix: u8,
    /// Periods follow UTC instead of the server's local time.
    pub utc: bool,
}

impl Default for QuotaConfig {
    fn default() -> QuotaConfig {
        QuotaConfig {
            users: HashMap::new(),
            anonymous: Limits::UNLIMITED,
            ip_default: Limits::UNLIMITED,
            ip_overrides: Vec::new(),
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
            utc: false,
        }
    }
}

impl QuotaConfig {
    pub fn user_limits(&self, name: &str) -> Limits {
        self.users.get(name).copied().unwrap_or_default()
    }

    /// The budget of the address (or IPv6 group starting at) `ip`.
    pub fn ip_limits(&self, ip: IpAddr) -> Limits {
        let mut matching: Vec<&(Cidr, PartialLimits)> =
            self.ip_overrides.iter().filter(|(c, _)| c.contains(ip)).collect();
        if matching.is_empty() {
            return self.ip_default;
        }
        matching.sort_by_key(|(c, _)| c.prefix());
        matching.iter().fold(self.ip_default, |acc, (_, o)| o.over(&acc))
    }

    pub fn zone(&self) -> super::period::Zone {
        super::period::Zone::from_utc(self.utc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn partial(p: Period, d: Dir, b: u64) -> PartialLimits {
        let mut l = PartialLimits::default();
        l.set(p, d, Some(b));
        l
    }

    #[test]
    fn directions_count_the_right_bytes() {
        assert_eq!(Dir::Rx.of(5, 7), 5);
        assert_eq!(Dir::Tx.of(5, 7), 7);
        assert_eq!(Dir::Total.of(5, 7), 12);
        assert_eq!(Dir::Total.of(u64::MAX, 7), u64::MAX);
    }

    #[test]
    fn most_specific_override_wins_cell_by_cell() {
        let mut cfg = QuotaConfig::default();
        cfg.ip_default.set(Period::Day, Dir::Total, 100);
        cfg.ip_default.set(Period::Month, Dir::Total, 1000);
        cfg.ip_overrides.push(("10.1.0.0/16".parse().unwrap(), partial(Period::Day, Dir::Total, 20)));
        cfg.ip_overrides.push(("10.0.0.0/8".parse().unwrap(), partial(Period::Day, Dir::Total, 50)));
        cfg.ip_overrides.push(("10.0.0.0/8".parse().unwrap(), partial(Period::Week, Dir::Rx, 70)));
        cfg.ip_overrides.push(("192.0.2.9".parse().unwrap(), partial(Period::Month, Dir::Total, 0)));

        let plain = cfg.ip_limits(ip("8.8.8.8"));
        assert_eq!(plain, cfg.ip_default);
        let wide = cfg.ip_limits(ip("10.2.0.1"));
        assert_eq!(wide.get(Period::Day, Dir::Total), 50);
        assert_eq!(wide.get(Period::Week, Dir::Rx), 70);
        assert_eq!(wide.get(Period::Month, Dir::Total), 1000);
        let narrow = cfg.ip_limits(ip("10.1.0.1"));
        assert_eq!(narrow.get(Period::Day, Dir::Total), 20);
        assert_eq!(narrow.get(Period::Week, Dir::Rx), 70);
        let exempt = cfg.ip_limits(ip("::ffff:192.0.2.9"));
        assert_eq!(exempt.get(Period::Month, Dir::Total), 0, "an explicit 0 override means unlimited");
        assert_eq!(exempt.get(Period::Day, Dir::Total), 100);
    }

    #[test]
    fn limits_list_only_budgets() {
        let mut l = Limits::UNLIMITED;
        assert!(l.is_unlimited());
        l.set(Period::Week, Dir::Tx, 5);
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![(Period::Week, Dir::Tx, 5)]);
        assert!(!l.is_unlimited());
    }
}

//! Who a budget belongs to: a user, all anonymous tests together, or a
//! client address (IPv6 grouped by prefix, since one host usually owns a
//! whole /64).

pub use crate::cidr::Cidr;
use crate::cidr::mask_v6;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Default IPv6 grouping: one budget per /64.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// The address a per-IP budget is kept for: an IPv4 address, or an IPv6
/// address masked to the configured prefix. IPv4-mapped IPv6 is IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpKey {
    V4(Ipv4Addr),
    /// `net` has every bit past `prefix` cleared.
    V6 {
        net: Ipv6Addr,
        prefix: u8,
    },
}

impl IpKey {
    /// Groups `ip` with the IPv6 prefix `v6_prefix` (1..=128).
    pub fn new(ip: IpAddr, v6_prefix: u8) -> IpKey {
        match ip.to_canonical() {
            IpAddr::V4(a) => IpKey::V4(a),
            IpAddr::V6(a) => {
                let prefix = v6_prefix.clamp(1, 128);
                IpKey::V6 { net: mask_v6(a, prefix), prefix }
            }
        }
    }

    /// The first address of the group, for matching against CIDR overrides.
    pub fn addr(&self) -> IpAddr {
        match *self {
            IpKey::V4(a) => IpAddr::V4(a),
            IpKey::V6 { net, .. } => IpAddr::V6(net),
        }
    }
}

impl fmt::Display for IpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpKey::V4(a) => a.fmt(f),
            IpKey::V6 { net, prefix: 128 } => net.fmt(f),
            IpKey::V6 { net, prefix } => write!(f, "{net}/{prefix}"),
        }
    }
}

impl FromStr for IpKey {
    type Err = String;
    /// Parses the stored form: `192.0.2.7`, `2001:db8:1::/64` or `2001:db8::1`.
    fn from_str(s: &str) -> Result<IpKey, String> {
        let c: Cidr = s.parse()?;
        match c.addr() {
            IpAddr::V4(a) => Ok(IpKey::V4(a)),
            IpAddr::V6(net) => Ok(IpKey::V6 { net, prefix: c.prefix() }),
        }
    }
}

/// The owner of a budget and of usage counters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    User(String),
    /// Every test that logged in with no user name, together.
    Anonymous,
    Ip(IpKey),
}

impl Subject {
    /// The `scope` column of the database.
    pub fn scope(&self) -> &'static str {
        match self {
            Subject::User(_) => "user",
            Subject::Anonymous => "anonymous",
            Subject::Ip(_) => "ip",
        }
    }

    /// The `subject` column of the database: user name, IP key, or empty.
    pub fn column(&self) -> String {
        match self {
            Subject::User(n) => n.clone(),
            Subject::Anonymous => String::new(),
            Subject::Ip(k) => k.to_string(),
        }
    }

    /// Rebuilds a subject from its two database columns.
    pub fn from_columns(scope: &str, subject: &str) -> Option<Subject> {
        match scope {
            "user" => Some(Subject::User(subject.to_string())),
            "anonymous" => Some(Subject::Anonymous),
            "ip" => subject.parse().ok().map(Subject::Ip),
            _ => None,
        }
    }

    /// The user's subject, or [`Subject::Anonymous`] for tests without one.
    pub fn for_user(user: Option<&str>) -> Subject {
        match user {
            Some(u) => Subject::User(u.to_string()),
            None => Subject::Anonymous,
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::User(n) => write!(f, "user '{n}'"),
            Subject::Anonymous => f.write_str("anonymous tests'"),
            Subject::Ip(k) => write!(f, "client {k}"),
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
    fn ipv6_clients_are_grouped_by_prefix() {
        let a = IpKey::new(ip("2001:db8:1:2:aaaa::1"), 64);
        let b = IpKey::new(ip("2001:db8:1:2:bbbb::2"), 64);
        let c = IpKey::new(ip("2001:db8:1:3::1"), 64);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        assert_eq!(a.to_string().parse::<IpKey>(), Ok(a));
        let single = IpKey::new(ip("2001:db8::1"), 128);
        assert_eq!(single.to_string(), "2001:db8::1");
        assert_eq!(single.to_string().parse::<IpKey>(), Ok(single));
        assert_ne!(IpKey::new(ip("2001:db8::1"), 128), IpKey::new(ip("2001:db8::2"), 128));
        assert_eq!(IpKey::new(ip("2001:db8:1:2::1"), 48), IpKey::new(ip("2001:db8:1:ffff::1"), 48));
    }

    #[test]
    fn ipv4_mapped_ipv6_counts_as_ipv4() {
        assert_eq!(IpKey::new(ip("::ffff:192.0.2.7"), 64), IpKey::V4("192.0.2.7".parse().unwrap()));
        assert_eq!(IpKey::new(ip("192.0.2.7"), 64).to_string(), "192.0.2.7");
        let c: Cidr = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains(ip("10.1.2.3")));
        assert!("10.0.0.0/8".parse::<Cidr>().unwrap().contains(ip("::ffff:10.9.9.9")));
    }

    #[test]
    fn cidr_blocks_parse_and_match() {
        let c: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains(ip("10.255.0.1")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(!c.contains(ip("2001:db8::1")));
        assert_eq!("192.0.2.7".parse::<Cidr>().unwrap().to_string(), "192.0.2.7/32");
        assert_eq!("2001:db8::/32".parse::<Cidr>().unwrap().prefix(), 32);
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("2001:db8::/129".parse::<Cidr>().is_err());
        assert!("example.com".parse::<Cidr>().unwrap_err().contains("10.0.0.0/8"));
    }

    #[test]
    fn subjects_round_trip_through_their_columns() {
        for s in [
            Subject::User("alice".into()),
            Subject::Anonymous,
            Subject::Ip(IpKey::new(ip("192.0.2.1"), 64)),
            Subject::Ip(IpKey::new(ip("2001:db8::5"), 64)),
        ] {
            assert_eq!(Subject::from_columns(s.scope(), &s.column()), Some(s));
        }
        assert_eq!(Subject::from_columns("other", "x"), None);
    }
}

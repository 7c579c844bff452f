//! IP networks in CIDR notation, for allow/deny lists and per-network settings.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A network: an address with its host bits cleared and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Cidr> {
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then(|| Cidr { addr: mask(addr, prefix), prefix })
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` (IPv4-mapped IPv6 counts as IPv4) lies in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }
}

/// `ip` with all but the first `prefix` bits cleared.
pub fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix.min(128))) };
            IpAddr::V6((bits & m).into())
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    /// `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a single host).
    fn from_str(s: &str) -> Result<Cidr, String> {
        let bad = || format!("invalid network '{s}': use ADDRESS/PREFIX such as 192.0.2.0/24 or 2001:db8::/32");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim_matches(|c| c == '[' || c == ']').parse().map_err(|_| bad())?;
        let prefix = prefix.unwrap_or(if addr.to_canonical().is_ipv4() { 32 } else { 128 });
        Cidr::new(addr, prefix).ok_or_else(bad)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_normalises() {
        assert_eq!("192.0.2.77/24".parse::<Cidr>().unwrap().to_string(), "192.0.2.0/24");
        assert_eq!("2001:db8::1/32".parse::<Cidr>().unwrap().to_string(), "2001:db8::/32");
        assert_eq!("10.1.2.3".parse::<Cidr>().unwrap().to_string(), "10.1.2.3/32");
        assert_eq!(
            "::ffff:10.0.0.1/8".parse::<Cidr>().unwrap().to_string(),
            "::ffff:10.0.0.1/8".parse::<Cidr>().unwrap().to_string()
        );
        assert_eq!("0.0.0.0/0".parse::<Cidr>().unwrap().to_string(), "0.0.0.0/0");
        for bad in ["10.0.0.0/33", "2001:db8::/129", "nonsense", "10.0.0.0/x", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn containment_respects_family_and_mapping() {
        let n: Cidr = "192.0.2.0/24".parse().unwrap();
        assert!(n.contains(ip("192.0.2.200")));
        assert!(n.contains(ip("::ffff:192.0.2.1")));
        assert!(!n.contains(ip("192.0.3.1")));
        assert!(!n.contains(ip("::1")));
        let all4: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all4.contains(ip("8.8.8.8")) && !all4.contains(ip("2001:db8::1")));
        let v6: Cidr = "2001:db8:1::/48".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1:ffff::1")) && !v6.contains(ip("2001:db8:2::1")));
    }

    #[test]
    fn mask_clears_host_bits() {
        assert_eq!(mask(ip("2001:db8:aaaa:bbbb:1:2:3:4"), 64), ip("2001:db8:aaaa:bbbb::"));
        assert_eq!(mask(ip("10.9.8.7"), 0), ip("0.0.0.0"));
        assert_eq!(mask(ip("10.9.8.7"), 32), ip("10.9.8.7"));
    }
}

//! IP networks in CIDR notation, for allow/deny lists and per-network quotas.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

pub(crate) fn mask_v4(a: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let bits = u32::from(a);
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) };
    Ipv4Addr::from(bits & mask)
}

pub(crate) fn mask_v6(a: Ipv6Addr, prefix: u8) -> Ipv6Addr {
    let bits = u128::from(a);
    let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix.min(128))) };
    Ipv6Addr::from(bits & mask)
}

/// `ip` with all but the first `prefix` bits cleared.
pub fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => IpAddr::V4(mask_v4(a, prefix)),
        IpAddr::V6(a) => IpAddr::V6(mask_v6(a, prefix)),
    }
}

/// An address block such as `10.0.0.0/8` or `2001:db8::/32`; a bare
/// address is a /32 or /128. IPv4-mapped IPv6 blocks become IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// Network address: bits past `prefix` are zero.
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Cidr, String> {
        match addr {
            IpAddr::V4(a) if prefix <= 32 => Ok(Cidr { addr: IpAddr::V4(mask_v4(a, prefix)), prefix }),
            IpAddr::V6(a) if prefix <= 128 => {
                if let (Some(v4), true) = (a.to_ipv4_mapped(), prefix >= 96) {
                    return Cidr::new(IpAddr::V4(v4), prefix - 96);
                }
                Ok(Cidr { addr: IpAddr::V6(mask_v6(a, prefix)), prefix })
            }
            _ => Err(format!("invalid prefix length /{prefix} for {addr}")),
        }
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// True when `ip` (canonicalised) lies inside this block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(a)) => mask_v4(a, self.prefix) == net,
            (IpAddr::V6(net), IpAddr::V6(a)) => mask_v6(a, self.prefix) == net,
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let bad = || format!("invalid address or block '{s}': use e.g. 192.0.2.7, 10.0.0.0/8 or 2001:db8::/48");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim_matches(|c| c == '[' || c == ']').parse().map_err(|_| bad())?;
        let prefix = prefix.unwrap_or(if addr.is_ipv4() { 32 } else { 128 });
        Cidr::new(addr, prefix).map_err(|e| format!("{}: {e}", bad()))
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

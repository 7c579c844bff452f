//! Value parsers for command-line options. They return the message argh
//! prints after "Error parsing option", so each one says what to type.

use crate::proto::{DEFAULT_PORT, Direction, Protocol};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// Parses `100`, `10k`, `100M`, `1.5G` (decimal units) into bits/s.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let bad = || format!("invalid rate '{t}': use a number with an optional k, M or G suffix");
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_lowercase() {
                'k' => 1_000,
                'm' => 1_000_000,
                'g' => 1_000_000_000,
                _ => return Err(bad()),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let bits = crate::decimal::scaled(num, mult).ok_or_else(bad)?;
    u64::try_from(bits).map_err(|_| format!("rate '{t}' is too large"))
}

/// A rate the protocol carries in 32 bits (the client's speeds).
pub fn parse_rate32(s: &str) -> Result<u32, String> {
    let v = parse_rate(s)?;
    u32::try_from(v).map_err(|_| format!("rate '{s}' is above the protocol's maximum of 4294967295 bits/s"))
}

/// A byte amount such as `16MiB` or `10G` (see `quota::parse_amount`).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    crate::quota::parse_amount(s).map_err(|e| e.to_string())
}

/// Parses seconds with an optional fraction (`10`, `0.25`) to the microsecond.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let micros = crate::decimal::scaled(s.trim(), 1_000_000)
        .ok_or_else(|| format!("invalid duration '{s}': use a number of seconds such as 10 or 0.5"))?;
    u64::try_from(micros).map(Duration::from_micros).map_err(|_| format!("duration '{s}' is too long"))
}

/// `tcp` or `udp`.
pub fn parse_proto(s: &str) -> Result<Protocol, String> {
    match s {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        _ => Err(format!("invalid protocol '{s}': use tcp or udp")),
    }
}

/// Client-side direction words, turned into the server's view on the wire.
pub fn parse_direction(s: &str) -> Result<Direction, String> {
    match s {
        "send" | "transmit" => Ok(Direction::ClientToServer),
        "receive" => Ok(Direction::ServerToClient),
        "both" => Ok(Direction::Both),
        _ => Err(format!("invalid direction '{s}': use send, receive or both")),
    }
}

/// Parses `ADDR:PORT`, `[V6]:PORT`, `ADDR` or `:PORT`.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = s.trim_matches(|c| c == '[' || c == ']').parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    if let Some(port) = s.strip_prefix(':') {
        if let Ok(p) = port.parse::<u16>() {
            return Ok(SocketAddr::from(([0, 0, 0, 0], p)));
        }
    }
    Err(format!("invalid listen address '{s}': use ADDR:PORT, e.g. 0.0.0.0:2000 or [::]:2000"))
}

/// Resolves `HOST` or `HOST:PORT` (port 2000 by default).
pub fn resolve(server: &str) -> Result<SocketAddr, String> {
    let with_port = if server.parse::<std::net::IpAddr>().is_ok() || !server.contains(':') {
        let host = server.trim_matches(|c| c == '[' || c == ']');
        if host.contains(':') { format!("[{host}]:{DEFAULT_PORT}") } else { format!("{host}:{DEFAULT_PORT}") }
    } else {
        server.to_string()
    };
    with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{server}': {e}"))?
        .next()
        .ok_or_else(|| format!("'{server}' has no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_accept_decimal_suffixes() {
        assert_eq!(parse_rate("0"), Ok(0));
        assert_eq!(parse_rate("1500"), Ok(1500));
        assert_eq!(parse_rate("10k"), Ok(10_000));
        assert_eq!(parse_rate("100M"), Ok(100_000_000));
        assert_eq!(parse_rate("1.5G"), Ok(1_500_000_000));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("-1").is_err());
        assert!(parse_rate("10x").is_err());
        assert!(parse_rate32("5G").unwrap_err().contains("maximum"));
        assert!(parse_rate("1e6").is_err(), "no exponents: the number is parsed exactly");
    }

    #[test]
    fn seconds_take_fractions_to_the_microsecond() {
        assert_eq!(parse_seconds("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_seconds("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_seconds(" 1.5 "), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_seconds("0.0000001"), Ok(Duration::ZERO), "below a microsecond rounds down");
        for bad in ["", "-1", "ten", "1s", "1.2.3"] {
            assert!(parse_seconds(bad).unwrap_err().contains("seconds"), "{bad:?}");
        }
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen("127.0.0.1:2000").unwrap().to_string(), "127.0.0.1:2000");
        assert_eq!(parse_listen("[::]:2001").unwrap().to_string(), "[::]:2001");
        assert_eq!(parse_listen("10.0.0.1").unwrap().to_string(), "10.0.0.1:2000");
        assert_eq!(parse_listen("::1").unwrap().to_string(), "[::1]:2000");
        assert_eq!(parse_listen(":3000").unwrap().to_string(), "0.0.0.0:3000");
        assert!(parse_listen("nowhere").is_err());
    }

    #[test]
    fn server_addresses_default_to_port_2000() {
        assert_eq!(resolve("127.0.0.1").unwrap().to_string(), "127.0.0.1:2000");
        assert_eq!(resolve("127.0.0.1:2500").unwrap().to_string(), "127.0.0.1:2500");
        assert_eq!(resolve("::1").unwrap().to_string(), "[::1]:2000");
        assert_eq!(resolve("[::1]:2600").unwrap().to_string(), "[::1]:2600");
    }

    #[test]
    fn client_directions_map_to_server_view() {
        assert_eq!(parse_direction("send"), Ok(Direction::ClientToServer));
        assert_eq!(parse_direction("receive"), Ok(Direction::ServerToClient));
        assert_eq!(parse_direction("both"), Ok(Direction::Both));
        assert!(parse_direction("up").is_err());
    }
}

//! The 16-byte test command a client sends after HELLO.

use super::{ProtoError, take};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Udp,
    Tcp,
}

/// Which way data flows, named unambiguously (RouterOS's "transmit" is the
/// client's view and becomes [`Direction::ClientToServer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Wire value 1: the server receives.
    ClientToServer,
    /// Wire value 2: the server transmits.
    ServerToClient,
    /// Wire value 3.
    Both,
}

impl Direction {
    pub fn server_receives(self) -> bool {
        matches!(self, Direction::ClientToServer | Direction::Both)
    }

    pub fn server_transmits(self) -> bool {
        matches!(self, Direction::ServerToClient | Direction::Both)
    }

    fn from_wire(b: u8) -> Result<Direction, ProtoError> {
        match b {
            1 => Ok(Direction::ClientToServer),
            2 => Ok(Direction::ServerToClient),
            3 => Ok(Direction::Both),
            other => Err(ProtoError::BadDirection(other)),
        }
    }

    fn to_wire(self) -> u8 {
        match self {
            Direction::ClientToServer => 1,
            Direction::ServerToClient => 2,
            Direction::Both => 3,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Named from the server's side, as the server logs it.
        f.write_str(match self {
            Direction::ClientToServer => "receive",
            Direction::ServerToClient => "transmit",
            Direction::Both => "both",
        })
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
        })
    }
}

/// A parsed test command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command {
    pub proto: Protocol,
    pub direction: Direction,
    /// True when the client asked for random payload (wire byte 2 == 0).
    pub random: bool,
    /// Wire byte 3: 0 means one connection, N means N connections in total.
    pub conn_count: u8,
    /// Bytes per TCP write, or IP packet size of the server's UDP datagrams.
    pub tx_size: u16,
    /// Unused by every known implementation; kept for round-trips.
    pub client_buf_size: u16,
    /// Bits/s the server should transmit at; 0 = unlimited.
    pub remote_tx_speed: u32,
    /// Bits/s the client says it transmits at; informational.
    pub local_tx_speed: u32,
}

#[cfg(test)]
impl Command {
    /// A test command with RouterOS's defaults (32 KiB blocks, zeros, no
    /// speed limits), for unit tests elsewhere in the crate.
    pub(crate) fn example(proto: Protocol, direction: Direction, conn_count: u8) -> Command {
        Command {
            proto,
            direction,
            random: false,
            conn_count,
            tx_size: 32768,
            client_buf_size: 0,
            remote_tx_speed: 0,
            local_tx_speed: 0,
        }
    }
}

impl Command {
    pub const LEN: usize = 16;

    pub fn parse(buf: &[u8]) -> Result<Command, ProtoError> {
        let b: [u8; 16] = take(buf)?;
        let proto = match b[0] {
            0 => Protocol::Udp,
            1 => Protocol::Tcp,
            other => return Err(ProtoError::BadProtocol(other)),
        };
        // Every connection count (0..=255) is a valid command: whether it is
        // allowed is the operator's limit, refused with a reply that says so.
        let direction = Direction::from_wire(b[1])?;
        Ok(Command {
            proto,
            direction,
            random: b[2] == 0,
            conn_count: b[3],
            tx_size: u16::from_le_bytes([b[4], b[5]]),
            client_buf_size: u16::from_le_bytes([b[6], b[7]]),
            remote_tx_speed: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            local_tx_speed: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
        })
    }

    pub fn emit(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0] = match self.proto {
            Protocol::Udp => 0,
            Protocol::Tcp => 1,
        };
        b[1] = self.direction.to_wire();
        b[2] = if self.random { 0 } else { 1 };
        b[3] = self.conn_count;
        b[4..6].copy_from_slice(&self.tx_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.client_buf_size.to_le_bytes());
        b[8..12].copy_from_slice(&self.remote_tx_speed.to_le_bytes());
        b[12..16].copy_from_slice(&self.local_tx_speed.to_le_bytes());
        b
    }

    /// The TCP write block both sides cut payload into: `tx_size`, or
    /// RouterOS's 32768 for 0 (which would mean nothing). Statuses go
    /// between blocks, so a reader that looks only at block boundaries
    /// must use the same size as the writer.
    pub fn tcp_block(&self) -> u16 {
        if self.tx_size == 0 { 32768 } else { self.tx_size }
    }

    /// Number of TCP connections the test runs over (at least 1).
    pub fn connections(&self) -> usize {
        match self.proto {
            Protocol::Tcp => usize::from(self.conn_count.max(1)),
            Protocol::Udp => 1,
        }
    }

    /// Whether this is a multi-connection TCP test, answered with a session token.
    pub fn is_multi_connection(&self) -> bool {
        self.proto == Protocol::Tcp && self.conn_count > 0
    }
}

/// The 16 bytes a secondary connection of a multi-connection test sends:
/// the session token (`HI LO`), then `02`, then zeros.
pub fn emit_join(token: u16) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..2].copy_from_slice(&token.to_be_bytes());
    b[2] = 2;
    b
}

/// The session token a join request carries in its first two bytes.
pub fn join_token(buf: &[u8; 16]) -> u16 {
    u16::from_be_bytes([buf[0], buf[1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace().map(|h| u8::from_str_radix(h, 16).unwrap()).collect()
    }

    #[test]
    fn a_zero_tx_size_writes_routeros_blocks() {
        let mut c = Command::parse(&hex("01 02 01 00 00 00 00 00 00 00 00 00 00 00 00 00")).unwrap();
        assert_eq!(c.tcp_block(), 32768);
        c.tx_size = 1500;
        assert_eq!(c.tcp_block(), 1500);
    }

    #[test]
    fn parses_captured_routeros_commands() {
        let c = Command::parse(&hex("01 02 01 00 00 80 00 00 00 00 00 00 00 00 00 00")).unwrap();
        assert_eq!(c.proto, Protocol::Tcp);
        assert_eq!(c.direction, Direction::ServerToClient);
        assert!(!c.random);
        assert_eq!(c.tx_size, 32768);
        assert_eq!(c.connections(), 1);

        let c = Command::parse(&hex("00 03 01 00 dc 05 00 00 00 00 00 00 00 00 00 00")).unwrap();
        assert_eq!((c.proto, c.direction, c.tx_size), (Protocol::Udp, Direction::Both, 1500));

        let c = Command::parse(&hex("01 02 01 0a 00 80 00 00 00 00 00 00 00 00 00 00")).unwrap();
        assert_eq!(c.connections(), 10);
        assert!(c.is_multi_connection());

        let c = Command::parse(&hex("01 01 00 00 00 80 00 00 00 00 00 00 00 00 00 00")).unwrap();
        assert!(c.random);
        assert_eq!(c.direction, Direction::ClientToServer);

        let c = Command::parse(&hex("01 02 01 00 00 80 00 00 ff ff ff ff 01 00 00 00")).unwrap();
        assert_eq!(c.remote_tx_speed, u32::MAX);
        assert_eq!(c.local_tx_speed, 1);

        let c = Command::parse(&hex("00 02 01 00 00 fa 00 00 00 00 00 00 00 00 00 00")).unwrap();
        assert_eq!(c.tx_size, 64000);
    }

    #[test]
    fn emit_round_trips() {
        let raw = hex("01 03 00 14 00 80 ff ff 40 42 0f 00 01 00 00 00");
        let c = Command::parse(&raw).unwrap();
        assert_eq!(c.emit().to_vec(), raw);
    }

    #[test]
    fn rejects_invalid_bytes() {
        let mut raw = [0u8; 16];
        raw[0] = 2;
        raw[1] = 1;
        assert_eq!(Command::parse(&raw), Err(ProtoError::BadProtocol(2)));
        raw[0] = 1;
        raw[1] = 0;
        assert_eq!(Command::parse(&raw), Err(ProtoError::BadDirection(0)));
        raw[1] = 4;
        assert_eq!(Command::parse(&raw), Err(ProtoError::BadDirection(4)));
        assert_eq!(Command::parse(&raw[..15]), Err(ProtoError::Truncated { need: 16, got: 15 }));
    }

    #[test]
    fn every_connection_count_byte_parses() {
        for n in 0..=u8::MAX {
            let c = Command::parse(&hex(&format!("01 03 01 {n:02x} 00 80 00 00 00 00 00 00 00 00 00 00"))).unwrap();
            assert_eq!(c.connections(), usize::from(n.max(1)));
            assert_eq!(c.is_multi_connection(), n > 0);
            assert_eq!(c.emit()[3], n);
            // UDP tests run on one TCP connection whatever the byte says.
            let u = Command::parse(&hex(&format!("00 03 01 {n:02x} dc 05 00 00 00 00 00 00 00 00 00 00"))).unwrap();
            assert_eq!((u.connections(), u.is_multi_connection()), (1, false));
        }
    }

    #[test]
    fn join_request_carries_token_big_endian() {
        let j = emit_join(0x04bc);
        assert_eq!(&j[..4], &[0x04, 0xbc, 0x02, 0x00]);
        assert_eq!(join_token(&j), 0x04bc);
    }
}

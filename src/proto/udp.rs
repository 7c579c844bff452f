//! UDP data datagrams: a big-endian sequence number, then payload.

/// IPv4 + UDP header bytes: RouterOS's tx_size is the IP packet size.
pub const OVERHEAD_V4: usize = 28;
/// IPv6 + UDP header bytes.
pub const OVERHEAD_V6: usize = 48;
/// Smallest datagram payload: the sequence number.
pub const MIN_PAYLOAD: usize = 4;
/// The client's UDP port is the server's plus this offset.
pub const CLIENT_PORT_OFFSET: u16 = 256;

/// Header bytes the IP layer adds to each datagram.
pub fn overhead(ipv6: bool) -> usize {
    if ipv6 { OVERHEAD_V6 } else { OVERHEAD_V4 }
}

/// UDP payload length for a given tx_size (IP packet size), so that a
/// 1500-byte test fits a 1500-byte MTU without fragmenting.
pub fn payload_len(tx_size: u16, ipv6: bool) -> usize {
    usize::from(tx_size).saturating_sub(overhead(ipv6)).max(MIN_PAYLOAD)
}

/// Bytes a received datagram of `payload` bytes counts for (IP-level size).
pub fn wire_len(payload: usize, ipv6: bool) -> usize {
    payload + overhead(ipv6)
}

/// The sequence number of a datagram; `None` for datagrams shorter than 4
/// bytes (NAT probes), which carry no data.
pub fn seq(datagram: &[u8]) -> Option<u32> {
    let b: [u8; 4] = datagram.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// Writes the sequence number into the first 4 bytes of `datagram`.
pub fn set_seq(datagram: &mut [u8], seq: u32) {
    if let Some(h) = datagram.get_mut(..4) {
        h.copy_from_slice(&seq.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_ip_packet_size() {
        assert_eq!(payload_len(1500, false), 1472);
        assert_eq!(payload_len(1500, true), 1452);
        assert_eq!(payload_len(20, false), 4);
        assert_eq!(wire_len(1472, false), 1500);
    }

    #[test]
    fn seq_is_big_endian_and_short_datagrams_have_none() {
        let mut d = [0u8; 8];
        set_seq(&mut d, 0x01020304);
        assert_eq!(&d[..4], &[1, 2, 3, 4]);
        assert_eq!(seq(&d), Some(0x01020304));
        assert_eq!(seq(&[]), None);
        assert_eq!(seq(&[1, 2, 3]), None);
    }
}

//! Fuzz target `command`: the fixed-size control messages of `btestd::proto`.
//!
//! Properties checked, on arbitrary bytes (the peer controls all of them):
//! - `Command::parse` accepts exactly the 16-byte prefixes with protocol 0/1,
//!   direction 1..=3 (any connection count: the operator's limit is applied
//!   later, with a reply), and reports the first offending field; when it accepts, `emit()` reproduces
//!   the 16 input bytes except byte 2 (random_data), which the parser reduces
//!   to a boolean and `emit` writes back as 0 or 1. `parse(emit(c)) == c`.
//! - `Reply::parse` accepts exactly OK/MD5/EC-SRP5/FAILED, and each reply
//!   re-encodes to the 4 bytes it came from.
//! - `Status::parse` accepts exactly the 12-byte frames `07 ?? 00 00 ...`;
//!   `emit` normalises only the CPU byte (a load in the low seven bits, with
//!   or without the flag, becomes flag + load clamped to 100; 0x00 stays 0);
//!   `parse(emit(s)) == s`.
//! - Join tokens and UDP sequence numbers round-trip.
//!
//! These run on every connection before authentication, so a panic here
//! (the release build aborts) would take every session down.
#![no_main]

use btestd::proto::command::{emit_join, join_token};
use btestd::proto::reply::{self, Reply};
use btestd::proto::{Command, ProtoError, Protocol, Status, status, udp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_command(data);
    check_reply(data);
    check_status(data);
    check_small_helpers(data);
});

fn check_command(data: &[u8]) {
    let parsed = Command::parse(data);
    let Some(raw) = data.get(..Command::LEN) else {
        assert_eq!(parsed, Err(ProtoError::Truncated { need: Command::LEN, got: data.len() }));
        return;
    };
    // The parser's rules, written out independently, in the order it checks them.
    let expected_err = if raw[0] > 1 {
        Some(ProtoError::BadProtocol(raw[0]))
    } else if !(1..=3).contains(&raw[1]) {
        Some(ProtoError::BadDirection(raw[1]))
    } else {
        None
    };
    match (parsed, expected_err) {
        (Err(e), Some(want)) => assert_eq!(e, want, "wrong error for {raw:02x?}"),
        (Err(e), None) => panic!("valid command {raw:02x?} rejected: {e}"),
        (Ok(c), Some(want)) => panic!("invalid command {raw:02x?} accepted as {c:?}, expected {want}"),
        (Ok(c), None) => {
            let mut normalised = [0u8; Command::LEN];
            normalised.copy_from_slice(raw);
            normalised[2] = u8::from(raw[2] != 0);
            assert_eq!(c.emit(), normalised, "emit does not round-trip {raw:02x?} ({c:?})");
            assert_eq!(Command::parse(&c.emit()), Ok(c));
            assert_eq!(c.random, raw[2] == 0);
            let conns = c.connections();
            assert!(conns >= 1);
            if c.proto == Protocol::Udp {
                assert_eq!(conns, 1);
                assert!(!c.is_multi_connection());
            } else {
                assert_eq!(conns, usize::from(raw[3].max(1)));
            }
        }
    }
}

fn check_reply(data: &[u8]) {
    let parsed = Reply::parse(data);
    let Some(raw) = data.get(..4) else {
        assert_eq!(parsed, Err(ProtoError::Truncated { need: 4, got: data.len() }));
        return;
    };
    let raw: [u8; 4] = [raw[0], raw[1], raw[2], raw[3]];
    match parsed {
        Ok(Reply::Ok(token)) => {
            assert_ne!(token, Some(0), "a zero token must read as no token");
            assert_eq!(reply::ok(token), raw);
        }
        Ok(Reply::Md5Challenge) => assert_eq!(raw, reply::MD5_CHALLENGE),
        Ok(Reply::EcSrp5) => assert_eq!(raw, reply::ECSRP5),
        Ok(Reply::Failed) => assert_eq!(raw, reply::FAILED),
        Err(e) => {
            assert_eq!(e, ProtoError::BadReply(raw));
            assert!(!(raw[0] == 1 && raw[3] == 0), "OK reply {raw:02x?} rejected");
            assert!(![reply::MD5_CHALLENGE, reply::ECSRP5, reply::FAILED].contains(&raw));
        }
    }
}

fn check_status(data: &[u8]) {
    let parsed = Status::parse(data);
    let Some(raw) = data.get(..Status::LEN) else {
        assert_eq!(parsed, Err(ProtoError::Truncated { need: Status::LEN, got: data.len() }));
        return;
    };
    if raw[0] != status::TAG || raw[2] != 0 || raw[3] != 0 {
        assert_eq!(parsed, Err(ProtoError::BadStatus));
        return;
    }
    let s = match parsed {
        Ok(s) => s,
        Err(e) => panic!("status frame {raw:02x?} rejected: {e}"),
    };
    let mut normalised = [0u8; Status::LEN];
    normalised.copy_from_slice(raw);
    normalised[1] = if raw[1] != 0 { 0x80 | (raw[1] & 0x7f).min(100) } else { 0 };
    assert_eq!(s.emit(), normalised, "status emit of {raw:02x?} ({s:?})");
    assert_eq!(Status::parse(&s.emit()), Ok(s));
    assert!(s.cpu.is_none_or(|c| c <= 100));

    // Statuses built by our own side (any CPU value) survive the wire, clamped.
    let ours = Status { cpu: Some(raw[2]), seq: s.seq, bytes: s.bytes };
    let back = Status::parse(&ours.emit());
    assert_eq!(back, Ok(Status { cpu: Some(raw[2].min(100)), ..ours }));
}

fn check_small_helpers(data: &[u8]) {
    if let Some(&[hi, lo]) = data.get(..2) {
        let token = u16::from_be_bytes([hi, lo]);
        assert_eq!(join_token(&emit_join(token)), token);
    }
    let seq = udp::seq(data);
    assert_eq!(seq.is_some(), data.len() >= 4);
    if let Some(seq) = seq {
        let mut d = data.to_vec();
        udp::set_seq(&mut d, seq.rotate_left(7));
        assert_eq!(udp::seq(&d), Some(seq.rotate_left(7)));
        assert_eq!(d[4..], data[4..]);
    }
    if let Some(&[a, b]) = data.get(..2) {
        let tx_size = u16::from_le_bytes([a, b]);
        for ipv6 in [false, true] {
            let p = udp::payload_len(tx_size, ipv6);
            assert!(p >= udp::MIN_PAYLOAD);
            assert!(udp::wire_len(p, ipv6) >= usize::from(tx_size));
        }
    }
}

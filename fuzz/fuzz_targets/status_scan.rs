//! Fuzz target `status_scan`: `btestd::proto::StatusScanner`, which finds the
//! peer's 12-byte status messages inside a TCP data stream, or as the only
//! content of a UDP test's control connection.
//!
//! Input layout: `mode, chunk_lo, chunk_hi, split_seed, stream...`; mode
//! bits 0-1 pick the scanner: 0 zero payload (`StatusScanner::zeros()`),
//! 1 random payload (`StatusScanner::random(chunk)`, chunk 0..=1023),
//! 2 and 3 frames (`StatusScanner::frames()`); `split_seed` 0 feeds one byte
//! per read, otherwise a PRNG cuts the stream into reads of 1..=`max` bytes
//! (`max` from the seed's low bits).
//!
//! Key property: TCP delivers the same byte stream however the reads are cut,
//! so the statuses found must not depend on the cut. The stream is scanned
//! three ways and all must agree: fed whole, fed in arbitrary reads, and by
//! a straightforward reference model of the rules the scanner documents:
//! - a frame start is `07 ?? 00 00`; bytes past the end of the stream
//!   cannot refute it (such a status is never completed, so never reported);
//! - zero payload and frames: a frame start anywhere starts a status (12
//!   bytes, reported once complete); any other byte is skipped by itself
//!   (frames mode counts the skipped bytes, and so does the model);
//! - random payload: only positions at block boundaries are examined; there
//!   a frame start starts a status, anything else a `chunk`-byte data block.
//!
//! Frames mode also checks recovery: the stream, taken as junk, is followed
//! by three statuses whose bytes after the tag hold no tag byte; whatever
//! the junk, at most the first of them may be lost, and the others are the
//! last statuses found.
//!
//! A divergence means the server reports a peer status that was never sent
//! (or misses one), in random mode loses the block framing for the rest of
//! the test, and in frames mode lets one stray byte hide later statuses.
#![no_main]

use btestd::proto::{Status, StatusScanner};
use libfuzzer_sys::fuzz_target;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Zeros,
    Random(usize),
    Frames,
}

/// The documented scanning rules, over the whole stream at once: the
/// statuses and (frames mode) the bytes skipped.
fn reference(stream: &[u8], kind: Kind) -> (Vec<Status>, u64) {
    let mut found = Vec::new();
    let mut skipped = 0u64;
    let mut i = 0;
    while i < stream.len() {
        if Status::may_start(&stream[i..(i + 4).min(stream.len())]) {
            let Some(raw) = stream.get(i..i + Status::LEN) else { break };
            match Status::parse(raw) {
                Ok(s) => found.push(s),
                Err(e) => panic!("reference: frame start {raw:02x?} does not parse: {e}"),
            }
            i += Status::LEN;
        } else {
            match kind {
                Kind::Random(chunk) => i += chunk,
                Kind::Zeros => i += 1,
                Kind::Frames => {
                    i += 1;
                    skipped += 1;
                }
            }
        }
    }
    (found, skipped)
}

fn scan(scanner: &mut StatusScanner, reads: &[&[u8]]) -> Vec<Status> {
    let mut out = Vec::new();
    for r in reads {
        scanner.feed(r, |s| out.push(s));
    }
    out
}

/// Cuts `stream` into reads as `split_seed` says.
fn cut(stream: &[u8], split_seed: u8) -> Vec<&[u8]> {
    let mut reads = Vec::new();
    let mut rest = stream;
    let mut x = u32::from(split_seed) * 0x0101_0101;
    let max = usize::from(split_seed & 0x1f) + 1;
    while !rest.is_empty() {
        let n = if x == 0 {
            1
        } else {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            1 + (x as usize) % max
        };
        let (head, tail) = rest.split_at(n.min(rest.len()));
        reads.push(head);
        rest = tail;
    }
    reads
}

fn new_scanner(kind: Kind) -> StatusScanner {
    match kind {
        // random(0) behaves as random(1), as documented by `chunk.max(1)`.
        Kind::Random(chunk) => StatusScanner::random(chunk as u16),
        Kind::Zeros => StatusScanner::zeros(),
        Kind::Frames => StatusScanner::frames(),
    }
}

/// Checks one stream all three ways; returns what was found.
fn check(stream: &[u8], kind: Kind, split_seed: u8) -> Vec<Status> {
    let reads = cut(stream, split_seed);
    let (expected, skipped) = reference(stream, kind);
    let mut whole_sc = new_scanner(kind);
    let whole = scan(&mut whole_sc, &[stream]);
    let mut split_sc = new_scanner(kind);
    let split = scan(&mut split_sc, &reads);
    let lens: Vec<usize> = reads.iter().take(16).map(|r| r.len()).collect();
    assert_eq!(whole, expected, "whole-stream scan differs from the model ({kind:?})");
    assert_eq!(split, expected, "split scan differs from the model ({kind:?}, {} reads, first {lens:?})", reads.len());
    if let Kind::Frames = kind {
        assert_eq!(whole_sc.skipped(), skipped, "skipped bytes differ from the model (whole)");
        assert_eq!(split_sc.skipped(), skipped, "skipped bytes differ from the model (split)");
    } else {
        assert_eq!(whole_sc.skipped(), 0, "payload modes count no skipped bytes");
    }
    expected
}

fuzz_target!(|data: &[u8]| {
    let [mode, lo, hi, split_seed, stream @ ..] = data else { return };
    let chunk = u16::from_le_bytes([*lo, *hi & 0x03]);
    let kind = match mode & 3 {
        0 => Kind::Zeros,
        1 => Kind::Random(usize::from(chunk.max(1))),
        _ => Kind::Frames,
    };
    check(stream, kind, *split_seed);
    if let Kind::Frames = kind {
        // Three statuses with no tag byte after their first byte.
        let good: Vec<Status> = (1..=3u32).map(|seq| Status { cpu: Some(40), seq, bytes: 0x0100_0000 * seq }).collect();
        let mut tail = stream.to_vec();
        for s in &good {
            tail.extend_from_slice(&s.emit());
        }
        let found = check(&tail, kind, *split_seed);
        assert!(
            found.ends_with(&good[1..]),
            "junk {stream:02x?} hid more than the first status after it: found {found:?}"
        );
    }
});

//! Fuzz target `status_scan`: `btestd::proto::StatusScanner`, which finds the
//! peer's 12-byte status messages inside a TCP data stream.
//!
//! Input layout: `mode, chunk_lo, chunk_hi, split_seed, stream...`; mode bit
//! 0 picks random payload (`StatusScanner::random(chunk)`, chunk 0..=1023)
//! over zero payload (`StatusScanner::zeros()`); `split_seed` 0 feeds one
//! byte per read, otherwise a PRNG cuts the stream into reads of
//! 1..=`max` bytes (`max` from the seed's low bits).
//!
//! Key property: TCP delivers the same byte stream however the reads are cut,
//! so the statuses found must not depend on the cut. The stream is scanned
//! three ways and all must agree: fed whole, fed in arbitrary reads, and by
//! a straightforward reference model of the rules the scanner documents:
//! - zero payload: a tag byte followed by a plausible second byte (0x00, or
//!   the CPU flag 0x80 set), or by the end of the stream, starts a status
//!   (12 bytes, reported once complete); a tag followed by anything else is
//!   one stray data byte;
//! - random payload: only positions at block boundaries are examined; there
//!   a tag with a plausible (or not yet received) second byte starts a
//!   status, anything else starts a `chunk`-byte data block.
//!
//! A divergence means the server reports a peer status that was never sent
//! (or misses one), and in random mode loses the block framing for the rest
//! of the test.
#![no_main]

use btestd::proto::status::TAG;
use btestd::proto::{Status, StatusScanner};
use libfuzzer_sys::fuzz_target;

fn plausible_second_byte(b: u8) -> bool {
    b == 0 || b & 0x80 != 0
}

/// The documented scanning rules, over the whole stream at once.
fn reference(stream: &[u8], chunk: Option<usize>) -> Vec<Status> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < stream.len() {
        let starts_status = stream[i] == TAG && stream.get(i + 1).is_none_or(|&b| plausible_second_byte(b));
        if starts_status {
            let Some(raw) = stream.get(i..i + Status::LEN) else { break };
            match Status::parse(raw) {
                Ok(s) => found.push(s),
                Err(e) => panic!("reference: tagged bytes {raw:02x?} do not parse: {e}"),
            }
            i += Status::LEN;
        } else {
            i += chunk.unwrap_or(1);
        }
    }
    found
}

fn scan(scanner: &mut StatusScanner, reads: &[&[u8]]) -> Vec<Status> {
    let mut out = Vec::new();
    for r in reads {
        scanner.feed(r, |s| out.push(s));
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let [mode, lo, hi, split_seed, stream @ ..] = data else { return };
    let random = mode & 1 != 0;
    let chunk = u16::from_le_bytes([*lo, *hi & 0x03]);
    let new_scanner = || if random { StatusScanner::random(chunk) } else { StatusScanner::zeros() };
    // random(0) behaves as random(1), as documented by `chunk.max(1)`.
    let model_chunk = random.then(|| usize::from(chunk.max(1)));

    let mut reads: Vec<&[u8]> = Vec::new();
    let mut rest = stream;
    let mut x = u32::from(*split_seed) * 0x0101_0101;
    let max = usize::from(*split_seed & 0x1f) + 1;
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

    let expected = reference(stream, model_chunk);
    let whole = scan(&mut new_scanner(), &[stream]);
    let split = scan(&mut new_scanner(), &reads);
    let lens: Vec<usize> = reads.iter().take(16).map(|r| r.len()).collect();
    assert_eq!(whole, expected, "whole-stream scan differs from the model (random={random}, chunk={chunk})");
    assert_eq!(
        split,
        expected,
        "split scan differs from the model (random={random}, chunk={chunk}, {} reads, first {lens:?})",
        reads.len()
    );
});

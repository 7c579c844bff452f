//! Integers modulo the prime group order r = 2^252 + 27742317777372353535851937790883648493.
//!
//! The protocol reduces only the client's combined scalar k = (i·j + s_A)
//! mod r; other scalars multiply points as raw 256-bit integers. Scalars
//! for the fixed base G are reduced too, which is exact because G
//! has order r. Reduction is a constant-time shift-and-subtract: slower than
//! Barrett reduction but obviously correct, and it costs a few microseconds
//! next to a scalar multiplication.

use super::ct;

/// r as little-endian 32-bit words.
const R: [u32; 8] = [0x5cf5_d3ed, 0x5812_631a, 0xa2f7_9cd6, 0x14de_f9de, 0, 0, 0, 0x1000_0000];

/// (a·b + c) mod r for 32-byte big-endian a, b, c of any size.
pub(crate) fn mul_add(a: &[u8; 32], b: &[u8; 32], c: &[u8; 32]) -> [u8; 32] {
    let (a, b, c) = (words(a), words(b), words(c));
    // Schoolbook product; (2^256 − 1)^2 + 2^256 − 1 < 2^512, so adding c
    // cannot carry out of the 16 words.
    let mut wide = [0u32; 16];
    for (i, &ai) in a.iter().enumerate() {
        let mut carry = 0u64;
        for (j, &bj) in b.iter().enumerate() {
            let t = u64::from(wide[i + j]) + u64::from(ai) * u64::from(bj) + carry;
            wide[i + j] = t as u32;
            carry = t >> 32;
        }
        wide[i + 8] = carry as u32;
    }
    let mut carry = 0u64;
    for (k, w) in wide.iter_mut().enumerate() {
        let t = u64::from(*w) + u64::from(c.get(k).copied().unwrap_or(0)) + carry;
        *w = t as u32;
        carry = t >> 32;
    }
    bytes(&reduce_wide(&wide))
}

/// x mod r for a 32-byte big-endian x.
pub(crate) fn reduce(x: &[u8; 32]) -> [u8; 32] {
    bytes(&reduce_wide(&words(x)))
}

/// Remainder by r of a little-endian value of any number of words, one bit
/// at a time.
fn reduce_wide(x: &[u32]) -> [u32; 8] {
    // Invariant: rem < r < 2^253, so 2·rem + 1 still fits in 8 words.
    let mut rem = [0u32; 8];
    for bit in (0..32 * x.len()).rev() {
        let mut carry = (x[bit / 32] >> (bit % 32)) & 1;
        for w in rem.iter_mut() {
            let top = *w >> 31;
            *w = (*w << 1) | carry;
            carry = top;
        }
        let mut diff = [0u32; 8];
        let mut borrow = 0u64;
        for ((d, &w), &r) in diff.iter_mut().zip(&rem).zip(&R) {
            let t = u64::from(w).wrapping_sub(u64::from(r)).wrapping_sub(borrow);
            *d = t as u32;
            borrow = (t >> 63) & 1;
        }
        // A borrow means rem < r: keep rem, otherwise take rem − r.
        let keep = ct::bit_mask(borrow as u32);
        for (w, d) in rem.iter_mut().zip(diff) {
            *w = d ^ (keep & (d ^ *w));
        }
    }
    rem
}

fn words(b: &[u8; 32]) -> [u32; 8] {
    let mut w = [0u32; 8];
    for (k, chunk) in b.rchunks_exact(4).enumerate() {
        w[k] = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    w
}

fn bytes(w: &[u32; 8]) -> [u8; 32] {
    let mut b = [0u8; 32];
    for (chunk, word) in b.rchunks_exact_mut(4).zip(w) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(hex: &str) -> [u8; 32] {
        let mut b = [0u8; 32];
        for (i, out) in b.iter_mut().enumerate() {
            *out = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        b
    }

    // Expected values below were computed with Python 3 big integers
    // (`x % r`, `(a * b + c) % r`) when this module was written; the random
    // inputs come from `random.seed(2024); random.getrandbits(256)`.

    #[test]
    fn reduction_mod_r_matches_independent_big_integer_results() {
        let cases = [
            (
                "1000000000000000000000000000000014def9dea2f79cd65812631a5cf5d3ed", // r
                "0000000000000000000000000000000000000000000000000000000000000000",
            ),
            (
                "1000000000000000000000000000000014def9dea2f79cd65812631a5cf5d3ec", // r − 1
                "1000000000000000000000000000000014def9dea2f79cd65812631a5cf5d3ec",
            ),
            (
                "1000000000000000000000000000000014def9dea2f79cd65812631a5cf5d3ee", // r + 1
                "0000000000000000000000000000000000000000000000000000000000000001",
            ),
            (
                "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", // 2^256 − 1
                "0ffffffffffffffffffffffffffffffec6ef5bf4737dcf70d6ec31748d98951c",
            ),
            (
                "80000000000000000000000000000000a6f7cef517bce6b2c09318d2e7ae9f68", // 8r
                "0000000000000000000000000000000000000000000000000000000000000000",
            ),
            (
                "1000000000000000000000000000000000000000000000000000000000000000", // 2^252
                "1000000000000000000000000000000000000000000000000000000000000000",
            ),
            (
                "b938451ee325faa633406bc44dc2a627940eee3cba6f875c2e84496e7857dd86",
                "0938451ee325faa633406bc44dc2a626ae7a31abb9cbca2665ba074c79c7c257",
            ),
            (
                "a2da95a83ec33dd6887e840043e58844c2354e2bb7740a63c1d8fac168fb90d7",
                "02da95a83ec33dd6887e840043e58843f17f8b7959c7ea0451211bb9c7614995",
            ),
            (
                "9d9b532aba4e6c3686ff0de26a7698065aab0a377f90ade7bc38d756d0055979",
                "0d9b532aba4e6c3686ff0de26a7698059ed44163c4dc2a5ea3935b698b60e624",
            ),
        ];
        for (x, expected) in cases {
            assert_eq!(reduce(&unhex(x)), unhex(expected), "{x} mod r");
        }
    }

    #[test]
    fn mul_add_mod_r_matches_independent_big_integer_results() {
        let ff = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
        let r_minus_1 = "1000000000000000000000000000000014def9dea2f79cd65812631a5cf5d3ec";
        let zero = "0000000000000000000000000000000000000000000000000000000000000000";
        let one = "0000000000000000000000000000000000000000000000000000000000000001";
        let cases = [
            (ff, ff, ff, "0399411b7c309a3dceec73d217f5be671dfdb99197ff60ad252c438913f94dd1"),
            (r_minus_1, r_minus_1, zero, one),
            (
                "1000000000000000000000000000000014def9dea2f79cd65812631a5cf5d3ed",
                "0000000000000000000000000000000000000000000000000000000000003039",
                "1000000000000000000000000000000014def9dea2f79cd65812631a5cf5d3f2",
                "0000000000000000000000000000000000000000000000000000000000000005",
            ),
            (zero, ff, ff, "0ffffffffffffffffffffffffffffffec6ef5bf4737dcf70d6ec31748d98951c"),
            (one, one, r_minus_1, zero),
            (
                "131db61884f42b4b548a84a5b43d43188b3890644f3d4e7b37d72e4af6978770",
                "ba49c19fc0a9c8beb070e38434d57084ddfa7fa4ffe9ec11c63d5f77bb3a6a06",
                "88177abd25fbab1ba70b967adf354788d4dd79d3b5834f4cecb736d877f1caf0",
                "0f52141cd332d4095793f7cf2eabe50a03fa5b889429b9f9c6345c241dc775ba",
            ),
            (
                "a0f09780597538cbc54be01c0ef8e010faaced226972f683de11ee00366dadc0",
                "53bdf64dc34797c42393446abe564059b9ae5c8f1fca7da27744001a6aa45fe0",
                "6a1510446d4337155352d63f337e6853cb2d34ea5865585254b1070f63eb18aa",
                "0ae7eec5099b8eaf1100e8decc857e38ac38c45e91bd65ce9a6a0335b844441d",
            ),
            (
                "345986d33aa67f52682f860ede282d59e7b0dfa436cc71a5915405c051032369",
                "4245dc03dd8ba9d4f897181304f8c31cc30d0ea339a7ff57bffa07750a5d5bfe",
                "b4852afbcdebefa791f68f88f5d93c67c5bc543b51b8a7af8171a4c3d80dad42",
                "00591ace17d73a239c3b20fe7279e1c9a610b3a971e79bbf3684cc7f0936bc51",
            ),
            (
                "c7c64d559b509fbea7193cf4d9f181ea54c4c0c31cae4e659d1a8c836bc9e141",
                "5e684f9633fddcd922d7bd7f5d9f348076da03a0febdf93a3c6fc1733b08c157",
                "9fa71a5963243c73430e07f524329a26a0cb0b17d625c18a9871d7697e4ba594",
                "0a40a235ed6c7475ec09fb8d329ba2c78811b0820deabdf53ced3b1a28d4b93a",
            ),
        ];
        for (a, b, c, expected) in cases {
            assert_eq!(mul_add(&unhex(a), &unhex(b), &unhex(c)), unhex(expected), "({a} * {b} + {c}) mod r");
        }
    }
}

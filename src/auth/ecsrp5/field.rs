//! Arithmetic modulo p = 2^255 − 19 on ten 32-bit limbs.
//!
//! Radix 2^25.5 (limbs of 26, 25, 26, … bits, as in ref10 and donna-32): every
//! limb product fits a 32×32→64-bit multiply, which 32-bit MIPS does in one
//! instruction, and no `u128` is needed. Nothing branches on or indexes by
//! field values, so secrets may flow through every operation here.

use super::ct;

/// Bit offset of each limb within the 255-bit value.
const OFFSET: [u32; 10] = [0, 26, 51, 77, 102, 128, 153, 179, 204, 230];
/// Bit width of each limb in its tight form.
const WIDTH: [u32; 10] = [26, 25, 26, 25, 26, 25, 26, 25, 26, 25];
const MASK26: u32 = (1 << 26) - 1;
const MASK25: u32 = (1 << 25) - 1;

/// 4·p limb by limb; added before subtracting so no limb goes negative.
const FOUR_P: [u32; 10] = [
    4 * (MASK26 - 18),
    4 * MASK25,
    4 * MASK26,
    4 * MASK25,
    4 * MASK26,
    4 * MASK25,
    4 * MASK26,
    4 * MASK25,
    4 * MASK26,
    4 * MASK25,
];

/// An element of GF(2^255 − 19).
///
/// Invariant: every limb is below 2^26 (the bound `mul` and `square` rely on
/// to keep their 64-bit column sums from overflowing). The value is not
/// necessarily the canonical representative; `to_be_bytes` makes it so.
#[derive(Clone, Copy)]
pub(crate) struct Fe([u32; 10]);

impl Fe {
    pub(crate) const ZERO: Fe = Fe([0; 10]);
    pub(crate) const ONE: Fe = Fe([1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

    /// Parses 64 hex digits (big-endian) at compile time; for curve constants.
    pub(crate) const fn from_hex(hex: &str) -> Fe {
        let h = hex.as_bytes();
        assert!(h.len() == 64, "field constant needs 64 hex digits");
        let mut bytes = [0u8; 32];
        let mut i = 0;
        while i < 32 {
            bytes[i] = (hex_digit(h[2 * i]) << 4) | hex_digit(h[2 * i + 1]);
            i += 1;
        }
        Fe::from_be_bytes(&bytes)
    }

    /// A small integer; for constants such as the curve coefficient A.
    pub(crate) const fn from_u32(v: u32) -> Fe {
        Fe([v & MASK26, v >> 26, 0, 0, 0, 0, 0, 0, 0, 0])
    }

    /// Reads a 32-byte big-endian integer and reduces it mod p.
    ///
    /// All 256 bits count: bit 255 is worth 2^255 ≡ 19, so inputs up to
    /// 2^256 − 1 (such as SHA-256 outputs used as coordinates) reduce correctly.
    pub(crate) const fn from_be_bytes(bytes: &[u8; 32]) -> Fe {
        // Little-endian 32-bit words, with one zero word of padding so a limb
        // that straddles the last word can read one past it.
        let mut w = [0u32; 9];
        let mut k = 0;
        while k < 8 {
            let b = 28 - 4 * k;
            w[k] = u32::from_be_bytes([bytes[b], bytes[b + 1], bytes[b + 2], bytes[b + 3]]);
            k += 1;
        }
        let mut limbs = [0u32; 10];
        let mut i = 0;
        while i < 10 {
            let word = (OFFSET[i] / 32) as usize;
            let shift = OFFSET[i] % 32;
            let pair = (w[word] as u64) | ((w[word + 1] as u64) << 32);
            limbs[i] = ((pair >> shift) as u32) & ((1 << WIDTH[i]) - 1);
            i += 1;
        }
        limbs[0] += 19 * (w[7] >> 31);
        Fe(carry(limbs))
    }

    /// The canonical value in [0, p) as exactly 32 big-endian bytes.
    pub(crate) fn to_be_bytes(self) -> [u8; 32] {
        // Two carry passes leave every limb at its exact width, so the value
        // is below 2^255; then subtract p once if the value is at least p.
        let mut h = carry(carry(self.0));
        let mut q = (h[0] + 19) >> 26;
        for i in 1..10 {
            q = (h[i] + q) >> WIDTH[i];
        }
        h[0] += 19 * q;
        for i in 0..9 {
            h[i + 1] += h[i] >> WIDTH[i];
            h[i] &= (1 << WIDTH[i]) - 1;
        }
        h[9] &= MASK25;

        let mut le = [0u8; 32];
        let mut acc: u64 = 0;
        let mut bits = 0;
        let mut n = 0;
        for (limb, width) in h.iter().zip(WIDTH) {
            acc |= u64::from(*limb) << bits;
            bits += width;
            while bits >= 8 {
                le[n] = acc as u8;
                acc >>= 8;
                bits -= 8;
                n += 1;
            }
        }
        le[31] = acc as u8;
        le.reverse();
        le
    }

    /// Low bit of the canonical value (the "parity" of the wire encoding).
    pub(crate) fn is_odd(&self) -> u32 {
        u32::from(self.to_be_bytes()[31] & 1)
    }

    /// All-ones if the value is 0 mod p, else 0.
    pub(crate) fn is_zero_mask(&self) -> u32 {
        let acc = self.to_be_bytes().iter().fold(0u8, |a, b| a | b);
        ct::eq_mask(u32::from(acc), 0)
    }

    /// All-ones if both values are equal mod p, else 0.
    pub(crate) fn eq_mask(&self, other: &Fe) -> u32 {
        self.sub(other).is_zero_mask()
    }

    /// `other` where `mask` is all-ones, `self` where it is zero.
    // Limb loops below index plain arrays rather than zipping iterators: the
    // release build optimises for size, and at that level iterator adapters
    // stay out-of-line calls that would double the handshake's cost.
    pub(crate) fn select(&self, other: &Fe, mask: u32) -> Fe {
        let (mut r, b) = (self.0, other.0);
        for i in 0..10 {
            r[i] ^= mask & (r[i] ^ b[i]);
        }
        Fe(r)
    }

    pub(crate) fn add(&self, other: &Fe) -> Fe {
        let (mut r, b) = (self.0, other.0);
        for i in 0..10 {
            r[i] += b[i];
        }
        Fe(carry(r))
    }

    pub(crate) fn sub(&self, other: &Fe) -> Fe {
        let (mut r, b) = (self.0, other.0);
        for i in 0..10 {
            r[i] = r[i] + FOUR_P[i] - b[i];
        }
        Fe(carry(r))
    }

    pub(crate) fn neg(&self) -> Fe {
        Fe::ZERO.sub(self)
    }

    pub(crate) fn mul(&self, other: &Fe) -> Fe {
        let [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9] = self.0;
        let [g0, g1, g2, g3, g4, g5, g6, g7, g8, g9] = other.0;
        // Odd limbs sit half a bit high, so odd×odd products count twice;
        // columns past limb 9 wrap around times 19 (2^255 ≡ 19). The
        // multiples stay below 2^32 (limbs < 2^26), so every product is a
        // single 32×32→64-bit multiply, also on 32-bit targets.
        let f1_2 = 2 * f1;
        let f3_2 = 2 * f3;
        let f5_2 = 2 * f5;
        let f7_2 = 2 * f7;
        let f9_2 = 2 * f9;
        let g1_19 = 19 * g1;
        let g2_19 = 19 * g2;
        let g3_19 = 19 * g3;
        let g4_19 = 19 * g4;
        let g5_19 = 19 * g5;
        let g6_19 = 19 * g6;
        let g7_19 = 19 * g7;
        let g8_19 = 19 * g8;
        let g9_19 = 19 * g9;

        let h0 = m(f0, g0)
            + m(f1_2, g9_19)
            + m(f2, g8_19)
            + m(f3_2, g7_19)
            + m(f4, g6_19)
            + m(f5_2, g5_19)
            + m(f6, g4_19)
            + m(f7_2, g3_19)
            + m(f8, g2_19)
            + m(f9_2, g1_19);
        let h1 = m(f0, g1)
            + m(f1, g0)
            + m(f2, g9_19)
            + m(f3, g8_19)
            + m(f4, g7_19)
            + m(f5, g6_19)
            + m(f6, g5_19)
            + m(f7, g4_19)
            + m(f8, g3_19)
            + m(f9, g2_19);
        let h2 = m(f0, g2)
            + m(f1_2, g1)
            + m(f2, g0)
            + m(f3_2, g9_19)
            + m(f4, g8_19)
            + m(f5_2, g7_19)
            + m(f6, g6_19)
            + m(f7_2, g5_19)
            + m(f8, g4_19)
            + m(f9_2, g3_19);
        let h3 = m(f0, g3)
            + m(f1, g2)
            + m(f2, g1)
            + m(f3, g0)
            + m(f4, g9_19)
            + m(f5, g8_19)
            + m(f6, g7_19)
            + m(f7, g6_19)
            + m(f8, g5_19)
            + m(f9, g4_19);
        let h4 = m(f0, g4)
            + m(f1_2, g3)
            + m(f2, g2)
            + m(f3_2, g1)
            + m(f4, g0)
            + m(f5_2, g9_19)
            + m(f6, g8_19)
            + m(f7_2, g7_19)
            + m(f8, g6_19)
            + m(f9_2, g5_19);
        let h5 = m(f0, g5)
            + m(f1, g4)
            + m(f2, g3)
            + m(f3, g2)
            + m(f4, g1)
            + m(f5, g0)
            + m(f6, g9_19)
            + m(f7, g8_19)
            + m(f8, g7_19)
            + m(f9, g6_19);
        let h6 = m(f0, g6)
            + m(f1_2, g5)
            + m(f2, g4)
            + m(f3_2, g3)
            + m(f4, g2)
            + m(f5_2, g1)
            + m(f6, g0)
            + m(f7_2, g9_19)
            + m(f8, g8_19)
            + m(f9_2, g7_19);
        let h7 = m(f0, g7)
            + m(f1, g6)
            + m(f2, g5)
            + m(f3, g4)
            + m(f4, g3)
            + m(f5, g2)
            + m(f6, g1)
            + m(f7, g0)
            + m(f8, g9_19)
            + m(f9, g8_19);
        let h8 = m(f0, g8)
            + m(f1_2, g7)
            + m(f2, g6)
            + m(f3_2, g5)
            + m(f4, g4)
            + m(f5_2, g3)
            + m(f6, g2)
            + m(f7_2, g1)
            + m(f8, g0)
            + m(f9_2, g9_19);
        let h9 = m(f0, g9)
            + m(f1, g8)
            + m(f2, g7)
            + m(f3, g6)
            + m(f4, g5)
            + m(f5, g4)
            + m(f6, g3)
            + m(f7, g2)
            + m(f8, g1)
            + m(f9, g0);
        Fe(carry_wide([h0, h1, h2, h3, h4, h5, h6, h7, h8, h9]))
    }

    pub(crate) fn square(&self) -> Fe {
        let [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9] = self.0;
        // As in `mul`, with each cross product f_i·f_j (i < j) counted twice.
        let f0_2 = 2 * f0;
        let f1_2 = 2 * f1;
        let f2_2 = 2 * f2;
        let f3_2 = 2 * f3;
        let f4_2 = 2 * f4;
        let f5_2 = 2 * f5;
        let f6_2 = 2 * f6;
        let f7_2 = 2 * f7;
        let f8_2 = 2 * f8;
        let f6_19 = 19 * f6;
        let f7_19 = 19 * f7;
        let f8_19 = 19 * f8;
        let f9_19 = 19 * f9;
        let f5_38 = 38 * f5;
        let f7_38 = 38 * f7;
        let f9_38 = 38 * f9;

        let h0 = m(f0, f0) + m(f1_2, f9_38) + m(f2_2, f8_19) + m(f3_2, f7_38) + m(f4_2, f6_19) + m(f5, f5_38);
        let h1 = m(f0_2, f1) + m(f2_2, f9_19) + m(f3_2, f8_19) + m(f4_2, f7_19) + m(f5_2, f6_19);
        let h2 = m(f0_2, f2) + m(f1, f1_2) + m(f3_2, f9_38) + m(f4_2, f8_19) + m(f5_2, f7_38) + m(f6, f6_19);
        let h3 = m(f0_2, f3) + m(f1_2, f2) + m(f4_2, f9_19) + m(f5_2, f8_19) + m(f6_2, f7_19);
        let h4 = m(f0_2, f4) + m(f1_2, f3_2) + m(f2, f2) + m(f5_2, f9_38) + m(f6_2, f8_19) + m(f7, f7_38);
        let h5 = m(f0_2, f5) + m(f1_2, f4) + m(f2_2, f3) + m(f6_2, f9_19) + m(f7_2, f8_19);
        let h6 = m(f0_2, f6) + m(f1_2, f5_2) + m(f2_2, f4) + m(f3, f3_2) + m(f7_2, f9_38) + m(f8, f8_19);
        let h7 = m(f0_2, f7) + m(f1_2, f6) + m(f2_2, f5) + m(f3_2, f4) + m(f8_2, f9_19);
        let h8 = m(f0_2, f8) + m(f1_2, f7_2) + m(f2_2, f6) + m(f3_2, f5_2) + m(f4, f4) + m(f9, f9_38);
        let h9 = m(f0_2, f9) + m(f1_2, f8) + m(f2_2, f7) + m(f3_2, f6) + m(f4_2, f5);
        Fe(carry_wide([h0, h1, h2, h3, h4, h5, h6, h7, h8, h9]))
    }

    /// self^(2^k), k ≥ 1.
    fn square_times(&self, k: u32) -> Fe {
        let mut r = self.square();
        for _ in 1..k {
            r = r.square();
        }
        r
    }

    /// Returns (self^11, self^(2^250 − 1)), the shared prefix of the
    /// addition chains for inversion and square roots (ref10's chain).
    fn pow_2_250_minus_1(&self) -> (Fe, Fe) {
        let z2 = self.square();
        let z9 = z2.square_times(2).mul(self);
        let z11 = z9.mul(&z2);
        let z_5_0 = z11.square().mul(&z9); // 2^5 − 1
        let z_10_0 = z_5_0.square_times(5).mul(&z_5_0);
        let z_20_0 = z_10_0.square_times(10).mul(&z_10_0);
        let z_40_0 = z_20_0.square_times(20).mul(&z_20_0);
        let z_50_0 = z_40_0.square_times(10).mul(&z_10_0);
        let z_100_0 = z_50_0.square_times(50).mul(&z_50_0);
        let z_200_0 = z_100_0.square_times(100).mul(&z_100_0);
        let z_250_0 = z_200_0.square_times(50).mul(&z_50_0);
        (z11, z_250_0)
    }

    /// self^(p − 2): the inverse by Fermat, and 0 for 0 (which point
    /// encoding relies on to map the identity to u = 0).
    pub(crate) fn invert(&self) -> Fe {
        let (z11, z_250_0) = self.pow_2_250_minus_1();
        z_250_0.square_times(5).mul(&z11) // 2^255 − 32 + 11
    }

    /// A square root of `self` and an all-ones mask if one exists; otherwise
    /// some value and a zero mask.
    ///
    /// p ≡ 5 (mod 8): s = self^((p+3)/8) is a root of ±self; if s² = −self,
    /// s·√−1 is the root. The caller picks the sign.
    pub(crate) fn sqrt(&self) -> (Fe, u32) {
        let (_, z_250_0) = self.pow_2_250_minus_1();
        let s = z_250_0.square_times(2).mul(&self.square()); // 2^252 − 2
        let s2 = s.square();
        let direct = s2.eq_mask(self);
        let flipped = s2.eq_mask(&self.neg());
        let s = s.select(&s.mul(&SQRT_M1), flipped & !direct);
        (s, direct | flipped)
    }
}

/// √−1 = 2^((p−1)/4) mod p.
pub(crate) const SQRT_M1: Fe = Fe::from_hex("2b8324804fc1df0b2b4d00993dfbd7a72f431806ad2fe478c4ee1b274a0ea0b0");

const fn hex_digit(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => panic!("bad hex digit in field constant"),
    }
}

/// Brings limbs below 2^29 back under 2^26 (exact width except limb 1,
/// which may exceed its 25 bits by one), folding the top carry times 19.
/// Written out limb by limb: it runs after every addition, and a loop over
/// `WIDTH` is not unrolled at the size-optimised level.
const fn carry(h: [u32; 10]) -> [u32; 10] {
    let [mut h0, mut h1, mut h2, mut h3, mut h4, mut h5, mut h6, mut h7, mut h8, mut h9] = h;
    h1 += h0 >> 26;
    h0 &= MASK26;
    h2 += h1 >> 25;
    h1 &= MASK25;
    h3 += h2 >> 26;
    h2 &= MASK26;
    h4 += h3 >> 25;
    h3 &= MASK25;
    h5 += h4 >> 26;
    h4 &= MASK26;
    h6 += h5 >> 25;
    h5 &= MASK25;
    h7 += h6 >> 26;
    h6 &= MASK26;
    h8 += h7 >> 25;
    h7 &= MASK25;
    h9 += h8 >> 26;
    h8 &= MASK26;
    h0 += 19 * (h9 >> 25);
    h9 &= MASK25;
    h1 += h0 >> 26;
    h0 &= MASK26;
    [h0, h1, h2, h3, h4, h5, h6, h7, h8, h9]
}

/// 32×32→64-bit product.
#[inline(always)]
fn m(a: u32, b: u32) -> u64 {
    u64::from(a) * u64::from(b)
}

/// Reduces the 64-bit column sums of a product (each below 2^61) to limbs
/// below 2^26. Two interleaved carry chains (from limbs 0 and 4) halve the
/// dependency length, as in ref10.
fn carry_wide(h: [u64; 10]) -> [u32; 10] {
    let [mut h0, mut h1, mut h2, mut h3, mut h4, mut h5, mut h6, mut h7, mut h8, mut h9] = h;
    let m26 = u64::from(MASK26);
    let m25 = u64::from(MASK25);
    h1 += h0 >> 26;
    h0 &= m26;
    h5 += h4 >> 26;
    h4 &= m26;
    h2 += h1 >> 25;
    h1 &= m25;
    h6 += h5 >> 25;
    h5 &= m25;
    h3 += h2 >> 26;
    h2 &= m26;
    h7 += h6 >> 26;
    h6 &= m26;
    h4 += h3 >> 25;
    h3 &= m25;
    h8 += h7 >> 25;
    h7 &= m25;
    h5 += h4 >> 26;
    h4 &= m26;
    h9 += h8 >> 26;
    h8 &= m26;
    h0 += 19 * (h9 >> 25);
    h9 &= m25;
    h1 += h0 >> 26;
    h0 &= m26;
    [h0, h1, h2, h3, h4, h5, h6, h7, h8, h9].map(|l| l as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fe(hex: &str) -> Fe {
        Fe::from_be_bytes(&unhex(hex))
    }

    fn unhex(hex: &str) -> [u8; 32] {
        let mut b = [0u8; 32];
        for (i, out) in b.iter_mut().enumerate() {
            *out = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        b
    }

    fn eq(a: &Fe, b: &Fe) -> bool {
        a.to_be_bytes() == b.to_be_bytes()
    }

    /// Deterministic test randomness (splitmix64).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn bytes(&mut self) -> [u8; 32] {
            let mut b = [0u8; 32];
            for chunk in b.chunks_mut(8) {
                chunk.copy_from_slice(&self.next().to_be_bytes());
            }
            b
        }
    }

    const P: &str = "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffed";
    const P_MINUS_1: &str = "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffec";
    const P_PLUS_1: &str = "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffee";
    const TWO_255_MINUS_1: &str = "7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    const TWO_256_MINUS_1: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

    /// Edge values plus random ones, as raw 32-byte encodings (some ≥ p).
    fn samples() -> Vec<[u8; 32]> {
        let mut v: Vec<[u8; 32]> =
            [P, P_MINUS_1, P_PLUS_1, TWO_255_MINUS_1, TWO_256_MINUS_1].iter().map(|h| unhex(h)).collect();
        for small in [0u8, 1, 2, 3, 19, 38] {
            let mut b = [0u8; 32];
            b[31] = small;
            v.push(b);
        }
        v.push([0xff; 32]);
        v.push([0x80; 32]);
        let mut rng = Rng(0x5eed_f1e1d);
        for _ in 0..300 {
            v.push(rng.bytes());
        }
        v
    }

    /// Slow, obviously correct reference: 256-bit integers mod p by
    /// shift-and-add, independent of the limb code.
    mod reference {
        pub type U256 = [u64; 4]; // little-endian words

        const P: U256 = [0xffff_ffff_ffff_ffed, 0xffff_ffff_ffff_ffff, 0xffff_ffff_ffff_ffff, 0x7fff_ffff_ffff_ffff];

        pub fn from_be(b: &[u8; 32]) -> U256 {
            let mut w = [0u64; 4];
            for (k, word) in w.iter_mut().enumerate() {
                let s = 24 - 8 * k;
                *word = u64::from_be_bytes(b[s..s + 8].try_into().unwrap());
            }
            reduce(w)
        }

        pub fn to_be(w: &U256) -> [u8; 32] {
            let mut b = [0u8; 32];
            for (k, word) in w.iter().enumerate() {
                let s = 24 - 8 * k;
                b[s..s + 8].copy_from_slice(&word.to_be_bytes());
            }
            b
        }

        fn geq(a: &U256, b: &U256) -> bool {
            for k in (0..4).rev() {
                if a[k] != b[k] {
                    return a[k] > b[k];
                }
            }
            true
        }

        fn sub_raw(a: &U256, b: &U256) -> U256 {
            let mut r = [0u64; 4];
            let mut borrow = false;
            for k in 0..4 {
                let (d, b1) = a[k].overflowing_sub(b[k]);
                let (d, b2) = d.overflowing_sub(u64::from(borrow));
                r[k] = d;
                borrow = b1 || b2;
            }
            r
        }

        fn reduce(mut a: U256) -> U256 {
            while geq(&a, &P) {
                a = sub_raw(&a, &P);
            }
            a
        }

        /// (a + b) mod p for a, b < p (sum < 2^256, no overflow).
        pub fn add(a: &U256, b: &U256) -> U256 {
            let mut r = [0u64; 4];
            let mut carry = false;
            for k in 0..4 {
                let (s, c1) = a[k].overflowing_add(b[k]);
                let (s, c2) = s.overflowing_add(u64::from(carry));
                r[k] = s;
                carry = c1 || c2;
            }
            reduce(r)
        }

        pub fn mul(a: &U256, b: &U256) -> U256 {
            let mut acc = [0u64; 4];
            for bit in (0..256).rev() {
                acc = add(&acc, &acc);
                if (b[bit / 64] >> (bit % 64)) & 1 == 1 {
                    acc = add(&acc, a);
                }
            }
            acc
        }
    }

    /// (p − 1) / 2, the exponent of Euler's criterion.
    const HALF_P_MINUS_1: &str = "3ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff6";

    fn pow(a: &Fe, exp: &[u8; 32]) -> Fe {
        let mut r = Fe::ONE;
        for byte in exp {
            for bit in (0..8).rev() {
                r = r.square();
                if (byte >> bit) & 1 == 1 {
                    r = r.mul(a);
                }
            }
        }
        r
    }

    #[test]
    fn decoding_reduces_values_at_or_above_p() {
        let expect = |hex: &str, small: u8| {
            let mut b = [0u8; 32];
            b[31] = small;
            assert_eq!(fe(hex).to_be_bytes(), b, "{hex}");
        };
        expect(P, 0);
        expect(P_PLUS_1, 1);
        expect(TWO_255_MINUS_1, 18);
        expect(TWO_256_MINUS_1, 37);
    }

    #[test]
    fn encoding_is_canonical_and_keeps_leading_zeros() {
        assert_eq!(fe(P_MINUS_1).to_be_bytes(), unhex(P_MINUS_1));
        assert_eq!(Fe::ZERO.to_be_bytes(), [0u8; 32]);
        let mut one = [0u8; 32];
        one[31] = 1;
        assert_eq!(Fe::ONE.to_be_bytes(), one);
        // Values that are ≡ 0 but not in tight form still encode as zero.
        assert_eq!(fe(P).add(&fe(P)).to_be_bytes(), [0u8; 32]);
        assert_eq!(fe(P_MINUS_1).add(&Fe::ONE).to_be_bytes(), [0u8; 32]);
        assert_eq!(Fe::ZERO.sub(&Fe::ONE).to_be_bytes(), unhex(P_MINUS_1));
    }

    #[test]
    fn decode_encode_round_trips_for_canonical_values() {
        for b in samples() {
            let canonical = reference::to_be(&reference::from_be(&b));
            assert_eq!(Fe::from_be_bytes(&b).to_be_bytes(), canonical);
            assert_eq!(Fe::from_be_bytes(&canonical).to_be_bytes(), canonical);
        }
    }

    #[test]
    fn mul_add_sub_square_match_reference_arithmetic() {
        let s = samples();
        for (k, a) in s.iter().enumerate() {
            let b = &s[(k * 7 + 3) % s.len()];
            let (ra, rb) = (reference::from_be(a), reference::from_be(b));
            let (fa, fb) = (Fe::from_be_bytes(a), Fe::from_be_bytes(b));
            let prod = reference::to_be(&reference::mul(&ra, &rb));
            assert_eq!(fa.mul(&fb).to_be_bytes(), prod);
            assert_eq!(fa.square().to_be_bytes(), reference::to_be(&reference::mul(&ra, &ra)));
            assert_eq!(fa.add(&fb).to_be_bytes(), reference::to_be(&reference::add(&ra, &rb)));
            // (a − b) + b = a
            assert_eq!(fa.sub(&fb).add(&fb).to_be_bytes(), reference::to_be(&ra));
        }
    }

    #[test]
    fn ring_laws_hold_on_edge_and_random_values() {
        let s = samples();
        let n = s.len();
        for k in 0..n {
            let a = Fe::from_be_bytes(&s[k]);
            let b = Fe::from_be_bytes(&s[(k + 1) % n]);
            let c = Fe::from_be_bytes(&s[(k * 5 + 2) % n]);
            assert!(eq(&a.mul(&b).mul(&c), &a.mul(&b.mul(&c))));
            assert!(eq(&a.mul(&b.add(&c)), &a.mul(&b).add(&a.mul(&c))));
            assert!(eq(&a.mul(&b), &b.mul(&a)));
            assert!(eq(&a.sub(&b), &b.sub(&a).neg()));
            assert!(eq(&a.square(), &a.mul(&a)));
        }
    }

    #[test]
    fn inverse_times_value_is_one() {
        for b in samples() {
            let a = Fe::from_be_bytes(&b);
            if a.is_zero_mask() != 0 {
                assert_eq!(a.invert().to_be_bytes(), [0u8; 32]);
                continue;
            }
            assert!(eq(&a.mul(&a.invert()), &Fe::ONE));
        }
    }

    #[test]
    fn sqrt_of_square_is_plus_or_minus_the_value() {
        for b in samples() {
            let a = Fe::from_be_bytes(&b);
            let (s, ok) = a.square().sqrt();
            assert_eq!(ok, u32::MAX);
            assert!(eq(&s, &a) || eq(&s, &a.neg()));
        }
    }

    #[test]
    fn non_squares_are_detected() {
        // p ≡ 5 (mod 8), so 2 is a non-square; so is 2·a² for every a ≠ 0.
        let two = Fe::from_u32(2);
        assert_eq!(two.sqrt().1, 0);
        let mut squares = 0;
        for b in samples() {
            let a = Fe::from_be_bytes(&b);
            if a.is_zero_mask() != 0 {
                continue;
            }
            assert_eq!(two.mul(&a.square()).sqrt().1, 0);
            // Euler's criterion agrees with sqrt's verdict on arbitrary values.
            let is_square = eq(&pow(&a, &unhex(HALF_P_MINUS_1)), &Fe::ONE);
            assert_eq!(a.sqrt().1 == u32::MAX, is_square);
            squares += usize::from(is_square);
        }
        assert!(squares > 100 && squares < 230, "{squares}");
    }

    #[test]
    fn sqrt_m1_squares_to_minus_one() {
        assert!(eq(&SQRT_M1.square(), &Fe::ONE.neg()));
    }

    #[test]
    fn select_and_masks_follow_their_masks() {
        let a = Fe::from_u32(5);
        let b = Fe::from_u32(7);
        assert!(eq(&a.select(&b, 0), &a));
        assert!(eq(&a.select(&b, u32::MAX), &b));
        assert_eq!(a.eq_mask(&Fe::from_u32(5)), u32::MAX);
        assert_eq!(a.eq_mask(&b), 0);
        assert_eq!(fe(P).is_zero_mask(), u32::MAX);
        assert_eq!(Fe::from_u32(3).is_odd(), 1);
        assert_eq!(fe(P_MINUS_1).is_odd(), 0);
    }
}

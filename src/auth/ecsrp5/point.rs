//! The EC-SRP5 group: Curve25519 points, computed on edwards25519.
//!
//! The protocol (protocol-reference §5.2–5.4) describes the curve in short
//! Weierstrass form y² = x³ + a·x + b with x = u + A/3 and y = v, where (u, v)
//! is the Montgomery point v² = u³ + A·u² + u. Those forms and the twisted
//! Edwards curve −X² + Y² = 1 + d·X²·Y² are isomorphic groups, so we compute
//! on the Edwards side, whose addition law is complete (no special cases for
//! doubling, inverses, the identity or small-order points), and convert to
//! (u, v) only at the edges. The Montgomery↔Edwards maps use one fixed
//! √−486664 in both directions and keep v itself, so the parity of y on the
//! wire is exactly the protocol's.

use std::sync::OnceLock;

use super::field::Fe;
use super::{ct, scalar, sha256};

/// Montgomery coefficient A.
const A: Fe = Fe::from_u32(486_662);
/// c = √−(A + 2), the scale between Montgomery v and Edwards x (x = c·u/v).
const C: Fe = Fe::from_hex("0f26edf460a006bbd27b08dc03fc4f7ec5a1d3d14b7d1a82cc6e04aaff457e06");
/// 2·d with d = −121665/121666, the Edwards coefficient.
const D2: Fe = Fe::from_hex("2406d9dc56dffce7198e80f2eef3d13000e0149a8283b156ebd69b9426b2f159");

/// G = lift_x(9, 0) (the point with u = 9 and even v), in Edwards affine
/// coordinates and T = x·y; checked against `lift_x` in the tests.
const G: Point = Point {
    x: Fe::from_hex("216936d3cd6e53fec0a4e231fdd6dc5c692cc7609525a7b2c9562d608f25d51a"),
    y: Fe::from_hex("6666666666666666666666666666666666666666666666666666666666666658"),
    z: Fe::ONE,
    t: Fe::from_hex("67875f0fd78b766566ea4e8e64abe37d20f09f80775152f56dde8ab3a5b7dda3"),
};

/// Why 32 bytes and a parity are not an acceptable public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyDefect {
    /// u is p or more: some reduction of it would lift, but no honest peer
    /// sends it.
    NotCanonical,
    /// u³ + A·u² + u has no square root: u is on the twist, not the curve.
    NotOnCurve,
    /// The point's order divides 8.
    SmallOrder,
}

/// A curve point in extended Edwards coordinates.
///
/// Invariant: Z ≠ 0 and X·Y = Z·T; the affine point (X/Z, Y/Z) is on the curve.
#[derive(Clone, Copy)]
pub(crate) struct Point {
    x: Fe,
    y: Fe,
    z: Fe,
    t: Fe,
}

/// Projective (X : Y : Z) without T; enough as input to a doubling.
struct Projective {
    x: Fe,
    y: Fe,
    z: Fe,
}

/// Output of an addition or doubling before the final multiplications:
/// X = E·F, Y = G·H, Z = F·G, T = E·H.
struct Completed {
    e: Fe,
    f: Fe,
    g: Fe,
    h: Fe,
}

/// An addend prepared for the addition formula: (Y + X, Y − X, 2·Z, 2·d·T).
#[derive(Clone, Copy)]
struct Cached {
    y_plus_x: Fe,
    y_minus_x: Fe,
    z2: Fe,
    t2d: Fe,
}

impl Point {
    pub(crate) const IDENTITY: Point = Point { x: Fe::ZERO, y: Fe::ONE, z: Fe::ONE, t: Fe::ZERO };
    pub(crate) const GENERATOR: Point = G;

    /// The point with Montgomery u-coordinate `u` (32 bytes big-endian,
    /// reduced mod p) and v of parity `parity`, or `None` if u³ + A·u² + u is
    /// not a square. Only the low bit of `parity` is used.
    pub(crate) fn lift_x(u: &[u8; 32], parity: u8) -> Option<Point> {
        let (p, is_square) = Point::lift_x_masked(u, parity);
        (is_square != 0).then_some(p)
    }

    /// `lift_x` without a branch: the same operations whether or not `u`
    /// lifts, and an all-ones mask if it did (otherwise the point is
    /// meaningless). For values whose liftability must not show in the
    /// timing, such as a decoy validator's.
    pub(crate) fn lift_x_masked(u: &[u8; 32], parity: u8) -> (Point, u32) {
        let u = Fe::from_be_bytes(u);
        let rhs = u.mul(&u.add(&A).mul(&u).add(&Fe::ONE));
        let (s, is_square) = rhs.sqrt();
        let flip = s.is_odd() ^ u32::from(parity & 1);
        let v = s.select(&s.neg(), ct::bit_mask(flip));
        (Point::from_montgomery(&u, &v), is_square)
    }

    /// A peer's public key: `u` must be canonical (below p), lift with
    /// `parity`, and not be a point of small order.
    ///
    /// `lift_x` alone reduces u mod p (the protocol's hash-to-curve needs
    /// that) and lifts the eight points of order dividing 8 (u = 0, the
    /// point of order 2; u = 1, order 4; two u of order 8), on which the
    /// key agreement degenerates. The twist's small-order u (such as p − 1)
    /// do not lift at all.
    pub(crate) fn decode_public(u: &[u8; 32], parity: u8) -> Result<Point, KeyDefect> {
        if Fe::from_be_bytes(u).to_be_bytes() != *u {
            return Err(KeyDefect::NotCanonical);
        }
        let p = Point::lift_x(u, parity).ok_or(KeyDefect::NotOnCurve)?;
        if p.has_small_order() {
            return Err(KeyDefect::SmallOrder);
        }
        Ok(p)
    }

    /// Whether 8·self is the identity (the cofactor of Curve25519 is 8).
    fn has_small_order(&self) -> bool {
        let p = self.to_projective().double().to_projective().double().to_projective().double().to_projective();
        // The identity is (0 : Z : Z) in Edwards projective coordinates.
        (p.x.is_zero_mask() & p.y.eq_mask(&p.z)) != 0
    }

    /// Maps a Montgomery point to Edwards without inversions:
    /// (c·u/v, (u − 1)/(u + 1)) = (c·u·(u+1) : (u−1)·v : v·(u+1) : c·u·(u−1)).
    /// v = 0 only for (0, 0), the point of order 2, which is Edwards (0, −1).
    fn from_montgomery(u: &Fe, v: &Fe) -> Point {
        let u_plus_1 = u.add(&Fe::ONE);
        let u_minus_1 = u.sub(&Fe::ONE);
        let cu = C.mul(u);
        let generic = Point { x: cu.mul(&u_plus_1), y: u_minus_1.mul(v), z: v.mul(&u_plus_1), t: cu.mul(&u_minus_1) };
        let order_two = Point { x: Fe::ZERO, y: Fe::ONE.neg(), z: Fe::ONE, t: Fe::ZERO };
        generic.select(&order_two, v.is_zero_mask())
    }

    /// Montgomery (u, v), with one inversion: u = (Z+Y)/(Z−Y), v = c·u·Z/X.
    ///
    /// The identity (the Weierstrass point at infinity) has no (u, v); it
    /// comes out as (0, 0) because inverting 0 yields 0. Nothing in the
    /// protocol produces it except with negligible probability.
    fn to_montgomery(self) -> (Fe, Fe) {
        let z_plus_y = self.z.add(&self.y);
        let inv = self.z.sub(&self.y).mul(&self.x).invert();
        let u = z_plus_y.mul(&self.x).mul(&inv);
        let v = C.mul(&z_plus_y).mul(&self.z).mul(&inv);
        (u, v)
    }

    /// Wire encoding: Montgomery u as 32 bytes big-endian and the parity of v.
    pub(crate) fn encode(&self) -> ([u8; 32], u8) {
        let (u, v) = self.to_montgomery();
        (u.to_be_bytes(), v.is_odd() as u8)
    }

    pub(crate) fn add(&self, other: &Point) -> Point {
        self.add_cached(&other.cached()).to_extended()
    }

    #[cfg(test)]
    fn neg(&self) -> Point {
        Point { x: self.x.neg(), y: self.y, z: self.z, t: self.t.neg() }
    }

    /// scalar·self for a 256-bit big-endian scalar, used as is (no clamping,
    /// no reduction), so points with small-order components come out exactly.
    ///
    /// Signed 4-bit windows: 64 rounds of four doublings and one addition of
    /// ±(1..8)·self, chosen by masks, never by a secret-dependent index or
    /// branch.
    pub(crate) fn mul(&self, scalar: &[u8; 32]) -> Point {
        let mut table = [self.cached(); 8];
        let mut multiple = *self;
        for entry in table.iter_mut().skip(1) {
            multiple = multiple.add(self);
            *entry = multiple.cached();
        }
        let (digits, top) = signed_radix16(scalar);
        // Start from top·self (top ∈ {0, 1}); the 64 rounds below multiply
        // it by 16^64.
        let mut acc = Point::IDENTITY.select(self, ct::bit_mask(top));
        for &digit in digits.iter().rev() {
            acc = acc.times_16();
            acc = acc.add_cached(&select_cached(&table, digit)).to_extended();
        }
        acc
    }

    /// scalar·G using a precomputed table of multiples of G (ref10's
    /// method). The scalar is first reduced mod r, which is exact because G
    /// has order r.
    pub(crate) fn mul_base(scalar: &[u8; 32]) -> Point {
        let (digits, _) = signed_radix16(&scalar::reduce(scalar));
        let table = base_table();
        // Σ e_i·16^i·G: the odd-index digits are summed from the same rows as
        // the even ones (16^(2m)·G) and then multiplied by 16.
        let mut acc = Point::IDENTITY;
        for (row, pair) in table.iter().zip(digits.chunks_exact(2)) {
            acc = acc.add_niels(&select_niels(row, pair[1])).to_extended();
        }
        acc = acc.times_16();
        for (row, pair) in table.iter().zip(digits.chunks_exact(2)) {
            acc = acc.add_niels(&select_niels(row, pair[0])).to_extended();
        }
        acc
    }

    fn times_16(&self) -> Point {
        let mut p = self.to_projective().double().to_projective();
        p = p.double().to_projective();
        p = p.double().to_projective();
        p.double().to_extended()
    }

    fn to_projective(self) -> Projective {
        Projective { x: self.x, y: self.y, z: self.z }
    }

    fn cached(&self) -> Cached {
        Cached {
            y_plus_x: self.y.add(&self.x),
            y_minus_x: self.y.sub(&self.x),
            z2: self.z.add(&self.z),
            t2d: self.t.mul(&D2),
        }
    }

    /// Unified addition for a = −1 (Hisil–Wong–Carter–Dawson 2008, "add-2008-hwcd-3");
    /// complete on edwards25519 because d is not a square.
    fn add_cached(&self, q: &Cached) -> Completed {
        let a = self.y.sub(&self.x).mul(&q.y_minus_x);
        let b = self.y.add(&self.x).mul(&q.y_plus_x);
        let c = self.t.mul(&q.t2d);
        let d = self.z.mul(&q.z2);
        Completed { e: b.sub(&a), f: d.sub(&c), g: d.add(&c), h: b.add(&a) }
    }

    /// Mixed addition with an affine point (Z = 1), one multiplication
    /// cheaper than `add_cached`.
    fn add_niels(&self, q: &Niels) -> Completed {
        let a = self.y.sub(&self.x).mul(&q.y_minus_x);
        let b = self.y.add(&self.x).mul(&q.y_plus_x);
        let c = self.t.mul(&q.xy2d);
        let d = self.z.add(&self.z);
        Completed { e: b.sub(&a), f: d.sub(&c), g: d.add(&c), h: b.add(&a) }
    }

    /// `other` where `mask` is all-ones, `self` where it is zero.
    pub(crate) fn select(&self, other: &Point, mask: u32) -> Point {
        Point {
            x: self.x.select(&other.x, mask),
            y: self.y.select(&other.y, mask),
            z: self.z.select(&other.z, mask),
            t: self.t.select(&other.t, mask),
        }
    }
}

impl Projective {
    /// Doubling for a = −1 ("dbl-2008-hwcd").
    fn double(&self) -> Completed {
        let xx = self.x.square();
        let yy = self.y.square();
        let zz2 = self.z.square();
        let zz2 = zz2.add(&zz2);
        let h = xx.add(&yy).neg();
        let g = yy.sub(&xx);
        Completed { e: self.x.add(&self.y).square().add(&h), f: g.sub(&zz2), g, h }
    }
}

impl Completed {
    fn to_extended(&self) -> Point {
        Point { x: self.e.mul(&self.f), y: self.g.mul(&self.h), z: self.f.mul(&self.g), t: self.e.mul(&self.h) }
    }

    fn to_projective(&self) -> Projective {
        Projective { x: self.e.mul(&self.f), y: self.g.mul(&self.h), z: self.f.mul(&self.g) }
    }
}

impl Cached {
    fn select(&self, other: &Cached, mask: u32) -> Cached {
        Cached {
            y_plus_x: self.y_plus_x.select(&other.y_plus_x, mask),
            y_minus_x: self.y_minus_x.select(&other.y_minus_x, mask),
            z2: self.z2.select(&other.z2, mask),
            t2d: self.t2d.select(&other.t2d, mask),
        }
    }

    fn neg(&self) -> Cached {
        Cached { y_plus_x: self.y_minus_x, y_minus_x: self.y_plus_x, z2: self.z2, t2d: self.t2d.neg() }
    }
}

/// An affine point prepared for mixed addition: (y + x, y − x, 2d·x·y).
#[derive(Clone, Copy)]
struct Niels {
    y_plus_x: Fe,
    y_minus_x: Fe,
    xy2d: Fe,
}

impl Niels {
    const IDENTITY: Niels = Niels { y_plus_x: Fe::ONE, y_minus_x: Fe::ONE, xy2d: Fe::ZERO };

    fn select(&self, other: &Niels, mask: u32) -> Niels {
        Niels {
            y_plus_x: self.y_plus_x.select(&other.y_plus_x, mask),
            y_minus_x: self.y_minus_x.select(&other.y_minus_x, mask),
            xy2d: self.xy2d.select(&other.xy2d, mask),
        }
    }

    fn neg(&self) -> Niels {
        Niels { y_plus_x: self.y_minus_x, y_minus_x: self.y_plus_x, xy2d: self.xy2d.neg() }
    }
}

/// Rows of (1..=8)·256^m·G for m < 32, built on first use (about 30 KB;
/// 256 point additions and one batched inversion).
fn base_table() -> &'static [[Niels; 8]; 32] {
    static TABLE: OnceLock<Box<[[Niels; 8]; 32]>> = OnceLock::new();
    TABLE.get_or_init(build_base_table)
}

fn build_base_table() -> Box<[[Niels; 8]; 32]> {
    let mut points = Vec::with_capacity(256);
    let mut row_base = G;
    for _ in 0..32 {
        let mut multiple = row_base;
        for _ in 0..8 {
            points.push(multiple);
            multiple = multiple.add(&row_base);
        }
        row_base = row_base.times_16().times_16();
    }
    // Batch inversion of all Z: one inversion and three multiplications each.
    let mut prefix = Vec::with_capacity(points.len());
    let mut acc = Fe::ONE;
    for p in &points {
        prefix.push(acc);
        acc = acc.mul(&p.z);
    }
    let mut inv = acc.invert();
    let mut table = Box::new([[Niels::IDENTITY; 8]; 32]);
    for (k, p) in points.iter().enumerate().rev() {
        let z_inv = inv.mul(&prefix[k]);
        inv = inv.mul(&p.z);
        let (x, y) = (p.x.mul(&z_inv), p.y.mul(&z_inv));
        table[k / 8][k % 8] = Niels { y_plus_x: y.add(&x), y_minus_x: y.sub(&x), xy2d: x.mul(&y).mul(&D2) };
    }
    table
}

/// Radix-16 digits e_0..e_63 in [−8, 8) (least significant first) and a top
/// digit in {0, 1} with Σ e_i·16^i + top·16^64 = scalar. Branch-free.
fn signed_radix16(scalar: &[u8; 32]) -> ([i8; 64], u32) {
    let mut e = [0i8; 64];
    for (pair, byte) in e.chunks_exact_mut(2).zip(scalar.iter().rev()) {
        pair[0] = (byte & 0x0f) as i8;
        pair[1] = (byte >> 4) as i8;
    }
    let mut carry = 0i8;
    for d in e.iter_mut() {
        *d += carry;
        carry = (*d + 8) >> 4;
        *d -= carry << 4;
    }
    (e, carry as u32)
}

/// |digit| as an index and an all-ones mask if the digit is negative.
fn digit_parts(digit: i8) -> (u32, u32) {
    let neg = ((i32::from(digit)) >> 31) as u32;
    let abs = ((i32::from(digit) ^ neg as i32) - neg as i32) as u32;
    (abs, neg)
}

/// digit·P from table = [P, 2P, …, 8P], reading every entry so the access
/// pattern does not depend on the digit.
fn select_cached(table: &[Cached; 8], digit: i8) -> Cached {
    let (abs, neg) = digit_parts(digit);
    let mut r = Point::IDENTITY.cached();
    for (k, entry) in (1u32..).zip(table.iter()) {
        r = r.select(entry, ct::eq_mask(k, abs));
    }
    r.select(&r.neg(), neg)
}

/// The Niels counterpart of `select_cached`, for rows of the base table.
fn select_niels(row: &[Niels; 8], digit: i8) -> Niels {
    let (abs, neg) = digit_parts(digit);
    let mut r = Niels::IDENTITY;
    for (k, entry) in (1u32..).zip(row.iter()) {
        r = r.select(entry, ct::eq_mask(k, abs));
    }
    r.select(&r.neg(), neg)
}

/// Hash to curve (protocol-reference §5.4): h = SHA256(x), then the first
/// SHA256(h), SHA256(h + 1), … that lifts with the given parity.
///
/// Not cofactor-cleared, as RouterOS does it. The number of rounds depends
/// on `x` (about two on average); that is inherent to the protocol.
pub(crate) fn redp1(x: &[u8; 32], parity: u8) -> Point {
    let mut h = sha256(&[x]);
    loop {
        if let Some(p) = Point::lift_x(&sha256(&[&h]), parity) {
            return p;
        }
        increment_be(&mut h);
    }
}

/// h + 1 as a 256-bit big-endian integer (wrapping).
fn increment_be(h: &mut [u8; 32]) {
    for byte in h.iter_mut().rev() {
        let (v, overflow) = byte.overflowing_add(1);
        *byte = v;
        if !overflow {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex32(hex: &str) -> [u8; 32] {
        let mut b = [0u8; 32];
        for (i, out) in b.iter_mut().enumerate() {
            *out = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        b
    }

    fn same(p: &Point, q: &Point) -> bool {
        // Compare projectively: X1·Z2 = X2·Z1 and Y1·Z2 = Y2·Z1.
        p.x.mul(&q.z).eq_mask(&q.x.mul(&p.z)) == u32::MAX && p.y.mul(&q.z).eq_mask(&q.y.mul(&p.z)) == u32::MAX
    }

    fn is_identity(p: &Point) -> bool {
        same(p, &Point::IDENTITY)
    }

    fn scalar_u64(v: u64) -> [u8; 32] {
        let mut s = [0u8; 32];
        s[24..].copy_from_slice(&v.to_be_bytes());
        s
    }

    const R: &str = "1000000000000000000000000000000014def9dea2f79cd65812631a5cf5d3ed";

    /// Weierstrass coefficients from protocol-reference §5.2.
    const WA: &str = "2aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa984914a144";
    const WB: &str = "7b425ed097b425ed097b425ed097b425ed097b425ed097b4260b5e9c7710c864";
    const A_OVER_3: &str = "2aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaad2451";

    /// Affine Weierstrass (x, y) of a point that is not the identity.
    fn weierstrass(p: &Point) -> (Fe, Fe) {
        let (u, v) = p.to_montgomery();
        (u.add(&Fe::from_hex(A_OVER_3)), v)
    }

    /// The textbook affine Weierstrass chord rule of §5.3, for P ≠ ±Q.
    fn weierstrass_add(p: (Fe, Fe), q: (Fe, Fe)) -> (Fe, Fe) {
        let lambda = q.1.sub(&p.1).mul(&q.0.sub(&p.0).invert());
        let x3 = lambda.square().sub(&p.0).sub(&q.0);
        let y3 = lambda.mul(&p.0.sub(&x3)).sub(&p.1);
        (x3, y3)
    }

    fn weierstrass_double(p: (Fe, Fe)) -> (Fe, Fe) {
        let three_x2 = p.0.square().mul(&Fe::from_u32(3));
        let lambda = three_x2.add(&Fe::from_hex(WA)).mul(&p.1.add(&p.1).invert());
        let x3 = lambda.square().sub(&p.0).sub(&p.0);
        let y3 = lambda.mul(&p.0.sub(&x3)).sub(&p.1);
        (x3, y3)
    }

    fn fe_eq(a: &Fe, b: &Fe) -> bool {
        a.to_be_bytes() == b.to_be_bytes()
    }

    #[test]
    fn curve_constants_are_consistent() {
        let minus_a_minus_2 = A.add(&Fe::from_u32(2)).neg();
        assert!(fe_eq(&C.square(), &minus_a_minus_2));
        let d = Fe::from_u32(121_665).neg().mul(&Fe::from_u32(121_666).invert());
        assert!(fe_eq(&d.add(&d), &D2));
        assert!(fe_eq(&Fe::from_hex(A_OVER_3).mul(&Fe::from_u32(3)), &A));
    }

    #[test]
    fn generator_is_lift_of_nine_with_even_y() {
        let mut nine = [0u8; 32];
        nine[31] = 9;
        let lifted = Point::lift_x(&nine, 0).unwrap();
        assert!(same(&lifted, &G));
        assert!(fe_eq(&G.x.mul(&G.y), &G.t));
        assert_eq!(G.encode(), (nine, 0));
        // Weierstrass view: G.x = A/3 + 9 and G.y from §5.2.
        let (x, y) = weierstrass(&G);
        assert_eq!(x.to_be_bytes(), unhex32("2aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaad245a"));
        assert_eq!(y.to_be_bytes(), unhex32("5f51e65e475f794b1fe122d388b72eb36dc2b28192839e4dd6163a5d81312c14"));
    }

    #[test]
    fn points_satisfy_the_weierstrass_equation_of_the_spec() {
        let mut p = G;
        for k in 1..20u64 {
            let (x, y) = weierstrass(&p);
            let rhs = x.square().mul(&x).add(&Fe::from_hex(WA).mul(&x)).add(&Fe::from_hex(WB));
            assert!(fe_eq(&y.square(), &rhs), "{k}·G");
            p = p.add(&G);
        }
    }

    #[test]
    fn edwards_addition_agrees_with_affine_weierstrass_formulas() {
        let mut p = G;
        let q = redp1(&[0x02; 32], 0); // has an order-8 component
        for _ in 0..16 {
            let sum = weierstrass_add(weierstrass(&p), weierstrass(&q));
            let got = weierstrass(&p.add(&q));
            assert!(fe_eq(&sum.0, &got.0) && fe_eq(&sum.1, &got.1));
            let dbl = weierstrass_double(weierstrass(&p));
            let got = weierstrass(&p.add(&p));
            assert!(fe_eq(&dbl.0, &got.0) && fe_eq(&dbl.1, &got.1));
            p = p.add(&q).add(&G);
        }
    }

    #[test]
    fn addition_handles_inverse_identity_and_doubling() {
        let p = G.mul(&scalar_u64(12345));
        assert!(is_identity(&p.add(&p.neg())));
        assert!(same(&p.add(&Point::IDENTITY), &p));
        assert!(same(&Point::IDENTITY.add(&p), &p));
        assert!(is_identity(&Point::IDENTITY.add(&Point::IDENTITY)));
        assert!(same(&p.add(&p), &p.mul(&scalar_u64(2))));
        assert!(same(&p.to_projective().double().to_extended(), &p.add(&p)));
        // The identity encodes as u = 0, parity 0.
        assert_eq!(Point::IDENTITY.encode(), ([0u8; 32], 0));
    }

    #[test]
    fn negation_flips_the_parity_only() {
        let p = G.mul(&[0x37; 32]);
        let (u, parity) = p.encode();
        assert_eq!(p.neg().encode(), (u, parity ^ 1));
        assert!(same(&Point::lift_x(&u, parity ^ 1).unwrap(), &p.neg()));
    }

    #[test]
    fn scalar_multiplication_matches_repeated_addition() {
        let p = redp1(b"scalar multiplication base point", 1);
        let mut acc = Point::IDENTITY;
        for k in 0..40u64 {
            assert!(same(&p.mul(&scalar_u64(k)), &acc), "{k}");
            acc = acc.add(&p);
        }
        // (a + b)·P = a·P + b·P for full-width scalars (a + b < 2^256).
        let a = [0x7f; 32];
        let b = [0x80; 32];
        let sum = [0xff; 32];
        assert!(same(&p.mul(&sum), &p.mul(&a).add(&p.mul(&b))));
    }

    #[test]
    fn fixed_base_table_agrees_with_the_generic_ladder() {
        let r = unhex32(R);
        let mut r_plus_1 = r;
        r_plus_1[31] += 1;
        let mut scalars = vec![[0u8; 32], [0xff; 32], [0x01; 32], [0x80; 32], r, r_plus_1];
        scalars.push(scalar_u64(1));
        scalars.push(scalar_u64(8));
        scalars.push(scalar_u64(0x88));
        let mut s = [0u8; 32];
        for k in 0..40u8 {
            s = sha256(&[&s, &[k]]);
            scalars.push(s);
        }
        for s in &scalars {
            assert!(same(&Point::mul_base(s), &G.mul(s)), "{s:02x?}");
        }
    }

    #[test]
    fn signed_digits_recompose_the_scalar() {
        for s in [[0xff; 32], [0x88; 32], [0x77; 32], [0; 32]] {
            let (digits, top) = signed_radix16(&s);
            assert!(digits.iter().all(|&d| (-8..8).contains(&d)));
            // Recompose in 4-bit steps from the top, as big-endian nibbles.
            let mut value = [0i32; 65];
            for (k, &d) in digits.iter().enumerate() {
                value[k] += i32::from(d);
            }
            value[64] += top as i32;
            for k in 0..64 {
                let carry = value[k].div_euclid(16);
                value[k] = value[k].rem_euclid(16);
                value[k + 1] += carry;
            }
            assert_eq!(value[64], 0);
            for (k, byte) in s.iter().rev().enumerate() {
                assert_eq!(value[2 * k], i32::from(byte & 0x0f));
                assert_eq!(value[2 * k + 1], i32::from(byte >> 4));
            }
        }
    }

    #[test]
    fn generator_has_prime_order_r() {
        let r = unhex32(R);
        assert!(is_identity(&G.mul(&r)));
        let mut r_plus_1 = r;
        r_plus_1[31] += 1;
        assert!(same(&G.mul(&r_plus_1), &G));
    }

    #[test]
    fn small_order_points_work_unreduced() {
        // u = 0 is the point of order 2; u = 1 has order 4.
        let zero = [0u8; 32];
        let t2 = Point::lift_x(&zero, 0).unwrap();
        assert!(!is_identity(&t2));
        assert!(is_identity(&t2.add(&t2)));
        assert_eq!(t2.encode(), (zero, 0));
        let mut one = [0u8; 32];
        one[31] = 1;
        let t4 = Point::lift_x(&one, 0).unwrap();
        assert!(same(&t4.mul(&scalar_u64(2)), &t2));
        assert!(is_identity(&t4.mul(&scalar_u64(4))));
        // redp1([02]*32, 0) has an order-8 component: 4r·P ≠ ∞ but 8r·P = ∞
        // (8r < 2^256; found with the Python reference).
        let p = redp1(&[0x02; 32], 0);
        let r = unhex32(R);
        let four_r = unhex32("40000000000000000000000000000000537be77a8bde735960498c6973d74fb4");
        let eight_r = unhex32("80000000000000000000000000000000a6f7cef517bce6b2c09318d2e7ae9f68");
        assert!(!is_identity(&p.mul(&four_r)));
        assert!(is_identity(&p.mul(&eight_r)));
        // Scalars are not reduced mod r: (r + 1)·P ≠ P for such a point.
        let mut r_plus_1 = r;
        r_plus_1[31] += 1;
        assert!(!same(&p.mul(&r_plus_1), &p));
    }

    #[test]
    fn lift_rejects_u_without_a_point() {
        // u = p − 1 ≡ −1 gives A − 2, a non-square.
        let minus_one = unhex32("7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffec");
        assert!(Point::lift_x(&minus_one, 0).is_none());
        let mut two = [0u8; 32];
        two[31] = 2;
        // 8 + 4A + 2 = 1946658 is not a square mod p.
        assert!(Point::lift_x(&two, 1).is_none());
    }

    /// a + b for 32-byte big-endian values whose sum fits.
    fn add_be(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
        let mut sum = [0u8; 32];
        let mut carry = 0u16;
        for i in (0..32).rev() {
            let v = u16::from(a[i]) + u16::from(b[i]) + carry;
            sum[i] = v as u8;
            carry = v >> 8;
        }
        assert_eq!(carry, 0);
        sum
    }

    /// The u of every curve point whose order divides 8 and that has a wire
    /// encoding (the identity has none), big-endian: X25519's well-known
    /// list without its non-canonical and twist entries.
    const SMALL_ORDER_U: [&str; 4] = [
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000001",
        "00b8495f16056286fdb1329ceb8d09da6ac49ff1fae35616aeb8413b7c7aebe0",
        "57119fd0dd4e22d8868e1c58c45c44045bef839c55b1d0b1248c50a3bc959c5f",
    ];

    #[test]
    fn small_order_keys_are_refused_for_either_parity() {
        for (u, order) in SMALL_ORDER_U.iter().zip([2u64, 4, 8, 8]) {
            let u = unhex32(u);
            for parity in [0, 1] {
                // They are curve points of exactly that order...
                let p = Point::lift_x(&u, parity).unwrap();
                assert!(is_identity(&p.mul(&scalar_u64(order))), "{u:02x?}");
                assert!(!is_identity(&p.mul(&scalar_u64(order / 2))), "{u:02x?}");
                // ...and refused as keys.
                assert_eq!(Point::decode_public(&u, parity).err(), Some(KeyDefect::SmallOrder), "{u:02x?}");
            }
        }
    }

    #[test]
    fn keys_at_or_above_p_are_refused_even_if_their_reduction_lifts() {
        let p = unhex32("7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffed");
        let p_plus_small: Vec<[u8; 32]> = [0u8, 1, 9]
            .iter()
            .map(|&k| {
                let mut u = p;
                u[31] += k;
                u
            })
            .collect();
        assert!(Point::lift_x(&p_plus_small[2], 0).is_some(), "p + 9 reduces to G");
        // p + u for the small-order u that fit 256 bits: aliases of those points.
        let aliases: Vec<[u8; 32]> = SMALL_ORDER_U.iter().map(|u| add_be(&p, &unhex32(u))).collect();
        assert!(aliases.iter().all(|a| Point::lift_x(a, 0).is_some()));
        let all_ones = [0xff; 32];
        let top_bit = unhex32("8000000000000000000000000000000000000000000000000000000000000009");
        let two_255_minus_1 = unhex32("7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
        for u in p_plus_small.iter().chain(&aliases).chain([&all_ones, &top_bit, &two_255_minus_1]) {
            for parity in [0, 1] {
                assert_eq!(Point::decode_public(u, parity).err(), Some(KeyDefect::NotCanonical), "{u:02x?}");
            }
        }
    }

    #[test]
    fn twist_points_and_non_residues_are_not_on_the_curve() {
        // u = p − 1 is the twist's point of order 4; u = 2 has no point.
        let minus_one = unhex32("7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffec");
        let mut two = [0u8; 32];
        two[31] = 2;
        for u in [minus_one, two] {
            assert_eq!(Point::decode_public(&u, 0).err(), Some(KeyDefect::NotOnCurve));
        }
    }

    #[test]
    fn honest_keys_and_keys_with_a_torsion_component_are_accepted() {
        let mut s = [0u8; 32];
        for k in 0..50u8 {
            s = sha256(&[&s, &[k]]);
            let (u, parity) = Point::mul_base(&s).encode();
            let p = Point::decode_public(&u, parity).unwrap();
            assert_eq!(p.encode(), (u, parity));
        }
        assert!(Point::decode_public(&G.encode().0, 0).is_ok());
        // G plus the point of order 2 has order 2r: not small, so accepted
        // (the key agreement multiplies it by a full-size scalar anyway).
        let t2 = Point::lift_x(&[0; 32], 0).unwrap();
        let (u, parity) = G.add(&t2).encode();
        assert!(Point::decode_public(&u, parity).is_ok());
    }

    #[test]
    fn masked_lift_agrees_with_lift_and_reports_failure() {
        let mut u = [0u8; 32];
        let (mut lifted, mut refused) = (0, 0);
        for k in 0..64u8 {
            u = sha256(&[&u, &[k]]);
            let parity = k & 1;
            let (p, ok) = Point::lift_x_masked(&u, parity);
            match Point::lift_x(&u, parity) {
                Some(q) => {
                    assert_eq!(ok, u32::MAX);
                    assert!(same(&p, &q));
                    lifted += 1;
                }
                None => {
                    assert_eq!(ok, 0);
                    refused += 1;
                }
            }
        }
        assert!(lifted > 10 && refused > 10, "{lifted} {refused}");
    }

    #[test]
    fn select_picks_by_mask() {
        assert!(same(&G.select(&Point::IDENTITY, 0), &G));
        assert!(is_identity(&G.select(&Point::IDENTITY, u32::MAX)));
    }

    #[test]
    fn lift_reduces_u_modulo_p() {
        // p + 9 lifts to G.
        let p_plus_9 = unhex32("7ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff6");
        assert!(same(&Point::lift_x(&p_plus_9, 0).unwrap(), &G));
    }

    #[test]
    fn building_block_vectors_of_protocol_reference_5_10_3() {
        assert_eq!(
            G.mul(&[0x01; 32]).encode(),
            (unhex32("4bae9c1b86b688901a4ec45b37e30a05e64f5b40d4fc0c3f9c7113b70f24d19d"), 0)
        );
        assert_eq!(
            redp1(&[0x2a; 32], 0).encode(),
            (unhex32("13f2ac314144611a6446a754aa734e4ec4a3e349604cf9cff1552b1cf3520cbb"), 0)
        );
    }

    #[test]
    fn redp1_with_opposite_parity_is_the_negation() {
        let x = [0x5c; 32];
        let p = redp1(&x, 0);
        assert!(is_identity(&p.add(&redp1(&x, 1))));
    }

    #[test]
    fn increment_carries_and_wraps() {
        let mut h = [0u8; 32];
        h[31] = 0xff;
        h[30] = 0xff;
        increment_be(&mut h);
        let mut expect = [0u8; 32];
        expect[29] = 1;
        assert_eq!(h, expect);
        let mut all = [0xff; 32];
        increment_be(&mut all);
        assert_eq!(all, [0u8; 32]);
    }
}

//! Constant-time helpers: masks instead of branches for secret-dependent
//! choices.

use std::hint::black_box;

/// All-ones if `a == b`, else 0, without a data-dependent branch.
pub(crate) fn eq_mask(a: u32, b: u32) -> u32 {
    let x = a ^ b;
    // (x | −x) has its top bit set exactly when x ≠ 0.
    let nonzero = (x | x.wrapping_neg()) >> 31;
    // black_box keeps the optimiser from turning mask arithmetic back into
    // a branch.
    black_box(nonzero.wrapping_sub(1))
}

/// All-ones if `bit` (0 or 1) is 1, else 0.
pub(crate) fn bit_mask(bit: u32) -> u32 {
    black_box(0u32.wrapping_sub(bit & 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_are_all_ones_or_zero() {
        assert_eq!(eq_mask(7, 7), u32::MAX);
        assert_eq!(eq_mask(0, 0), u32::MAX);
        assert_eq!(eq_mask(0, 1 << 31), 0);
        assert_eq!(eq_mask(u32::MAX, 0), 0);
        assert_eq!(bit_mask(1), u32::MAX);
        assert_eq!(bit_mask(0), 0);
    }
}

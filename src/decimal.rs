//! Exact decimal numbers as operators type them (`1.5` in `1.5G`, `0.25`
//! seconds). Integer arithmetic only: `1.1G` is exactly 1,100,000,000, and
//! the binary carries no float parser.

/// `n` in `one` below 1000, else with one decimal in the largest of
/// `prefixed` (kilo, mega, ...) that keeps it under 1000: `999 B`,
/// `10.2 GB`, `1.0 Mbit/s`.
pub fn format_prefixed(n: u64, one: &str, prefixed: &[&str]) -> String {
    if n < 1000 || prefixed.is_empty() {
        return format!("{n} {one}");
    }
    let mut value = n as f64 / 1000.0;
    let mut unit = 0;
    // Move up while the rounded figure would print as 1000.0 or more.
    while value >= 999.95 && unit + 1 < prefixed.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", prefixed[unit])
}

/// `num` (digits with at most one `.`, no sign or exponent) times `mult`,
/// rounded down; `None` when it is not such a number or exceeds u128.
pub fn scaled(num: &str, mult: u64) -> Option<u128> {
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if (int.is_empty() && frac.is_empty()) || frac.len() > 18 {
        return None;
    }
    let digits = |d: &str| -> Option<u128> {
        if d.is_empty() {
            Some(0)
        } else if d.bytes().all(|b| b.is_ascii_digit()) {
            d.parse().ok()
        } else {
            None
        }
    };
    let mult = u128::from(mult);
    let frac_part = digits(frac)? * mult / 10u128.pow(frac.len() as u32);
    digits(int)?.checked_mul(mult)?.checked_add(frac_part)
}

#[cfg(test)]
mod tests {
    use super::scaled;

    #[test]
    fn integers_and_fractions_scale_exactly() {
        assert_eq!(scaled("0", 1000), Some(0));
        assert_eq!(scaled("42", 1), Some(42));
        assert_eq!(scaled("1.1", 1_000_000_000), Some(1_100_000_000));
        assert_eq!(scaled(".5", 1000), Some(500));
        assert_eq!(scaled("2.", 1000), Some(2000));
        assert_eq!(scaled("0.0015", 1000), Some(1), "rounds down");
        assert_eq!(scaled("0.123456789012345678", 1), Some(0));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in ["", ".", "-1", "+1", "1e6", "1.2.3", " 1", "1,5", "0.1234567890123456789", "ten"] {
            assert_eq!(scaled(bad, 1000), None, "{bad:?}");
        }
        assert_eq!(scaled("340282366920938463463374607431768211456", 1), None, "above u128");
        assert_eq!(scaled(&u128::MAX.to_string(), 2), None, "overflows when scaled");
    }
}

//! Byte amounts as operators type them (`10G`, `1.5TiB`) and as tables show
//! them (`10.0 GB`). Parsing is exact integer arithmetic so `1.1G` is
//! 1,100,000,000 bytes, not whatever a float rounds it to.

use std::fmt;

/// Largest amount accepted: SQLite stores signed 64-bit integers.
pub const MAX_AMOUNT: u64 = i64::MAX as u64;

/// Why an amount could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmountError(String);

impl fmt::Display for AmountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AmountError {}

fn unit_multiplier(unit: &str) -> Option<u64> {
    Some(match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        "ti" | "tib" => 1 << 40,
        _ => return None,
    })
}

/// Parses `0`, `1500`, `10k`, `10M`, `1.5G`, `1T` (powers of 1000) and
/// `512KiB`, `4GiB`, `1TiB` (powers of 1024); fractions round down to a byte.
pub fn parse_amount(s: &str) -> Result<u64, AmountError> {
    let bad = || {
        AmountError(format!(
            "invalid amount '{s}': use a number of bytes with an optional suffix k, M, G, T (powers of 1000) \
             or KiB, MiB, GiB, TiB (powers of 1024), e.g. 10G; 0 means unlimited"
        ))
    };
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult = unit_multiplier(unit.trim()).ok_or_else(bad)?;
    let bytes = crate::decimal::scaled(num, mult).ok_or_else(bad)?;
    if bytes > u128::from(MAX_AMOUNT) {
        return Err(AmountError(format!("amount '{s}' is too large (at most {})", format_amount(MAX_AMOUNT))));
    }
    Ok(bytes as u64)
}

/// Formats bytes with decimal units and one decimal: `999 B`, `10.0 GB`.
pub fn format_amount(bytes: u64) -> String {
    crate::decimal::format_prefixed(bytes, "B", &["kB", "MB", "GB", "TB", "PB", "EB"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_numbers_are_bytes() {
        assert_eq!(parse_amount("0"), Ok(0));
        assert_eq!(parse_amount("1500"), Ok(1500));
        assert_eq!(parse_amount(" 42 "), Ok(42));
        assert_eq!(parse_amount("42B"), Ok(42));
    }

    #[test]
    fn decimal_suffixes_are_powers_of_1000() {
        assert_eq!(parse_amount("10k"), Ok(10_000));
        assert_eq!(parse_amount("10K"), Ok(10_000));
        assert_eq!(parse_amount("10M"), Ok(10_000_000));
        assert_eq!(parse_amount("10G"), Ok(10_000_000_000));
        assert_eq!(parse_amount("10GB"), Ok(10_000_000_000));
        assert_eq!(parse_amount("1T"), Ok(1_000_000_000_000));
        assert_eq!(parse_amount("1.1G"), Ok(1_100_000_000));
        assert_eq!(parse_amount("0.5k"), Ok(500));
        assert_eq!(parse_amount(".5k"), Ok(500));
    }

    #[test]
    fn binary_suffixes_are_powers_of_1024() {
        assert_eq!(parse_amount("1KiB"), Ok(1024));
        assert_eq!(parse_amount("2MiB"), Ok(2 << 20));
        assert_eq!(parse_amount("4gib"), Ok(4 << 30));
        assert_eq!(parse_amount("1TiB"), Ok(1 << 40));
        assert_eq!(parse_amount("1.5KiB"), Ok(1536));
    }

    #[test]
    fn nonsense_is_refused_with_a_hint() {
        for s in ["", "G", "ten", "10X", "-1", "1.2.3", "10 GBs", "1e9"] {
            let e = parse_amount(s).unwrap_err().to_string();
            assert!(e.contains("KiB"), "{s}: {e}");
        }
        assert!(parse_amount("99999999999T").unwrap_err().to_string().contains("too large"));
        assert_eq!(parse_amount("9223372036854775807"), Ok(MAX_AMOUNT));
        assert!(parse_amount("9223372036854775808").is_err());
    }

    #[test]
    fn formatting_uses_one_decimal() {
        assert_eq!(format_amount(0), "0 B");
        assert_eq!(format_amount(999), "999 B");
        assert_eq!(format_amount(1000), "1.0 kB");
        assert_eq!(format_amount(10_000_000_000), "10.0 GB");
        assert_eq!(format_amount(10_200_000_000), "10.2 GB");
        assert_eq!(format_amount(999_960), "1.0 MB");
        assert_eq!(format_amount(u64::MAX), "18.4 EB");
    }
}

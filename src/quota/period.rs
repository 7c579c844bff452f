//! Calendar periods — day, ISO week, month — in the server's time zone or UTC.
//!
//! Budgets reset when the calendar says so (midnight, Monday, the 1st), not
//! on a rolling window. The UTC offset is looked up (crate::tz) for the
//! instant in question, so DST changes move midnight with the wall clock;
//! everything after that is pure date arithmetic on days since 1970.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// A budget period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    Day,
    Week,
    Month,
}

impl Period {
    pub const ALL: [Period; 3] = [Period::Day, Period::Week, Period::Month];

    /// Row index in a [`super::Limits`] table.
    pub fn index(self) -> usize {
        match self {
            Period::Day => 0,
            Period::Week => 1,
            Period::Month => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Period, String> {
        match s {
            "day" | "daily" => Ok(Period::Day),
            "week" | "weekly" => Ok(Period::Week),
            "month" | "monthly" => Ok(Period::Month),
            _ => Err(format!("invalid period '{s}': use day, week or month")),
        }
    }
}

/// Which clock periods follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// The server's local time zone (TZ, /etc/TZ, /etc/localtime), DST included.
    Local,
    Utc,
}

impl Zone {
    pub fn from_utc(utc: bool) -> Zone {
        if utc { Zone::Utc } else { Zone::Local }
    }

    /// Seconds east of UTC at the instant `unix`.
    pub fn offset_at(self, unix: i64) -> i32 {
        match self {
            Zone::Utc => 0,
            Zone::Local => local_offset(unix),
        }
    }
}

/// The local UTC offset at `unix`, from the zone btestd reads itself
/// (see [`crate::tz`]): the C library's idea of it differs between glibc
/// and a static musl build, which ignores OpenWrt's /etc/TZ.
fn local_offset(unix: i64) -> i32 {
    crate::tz::local().offset_at(unix)
}

/// Seconds since 1970 (negative before).
pub fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// A calendar date in the proleptic Gregorian calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Date {
    pub year: i32,
    /// 1..=12
    pub month: u8,
    /// 1..=31
    pub day: u8,
}

impl Date {
    /// The date `days` days after 1970-01-01 (Howard Hinnant's civil_from_days).
    pub fn from_days(days: i64) -> Date {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Date { year: year as i32, month: month as u8, day: day as u8 }
    }

    /// Days since 1970-01-01 (days_from_civil).
    pub fn to_days(self) -> i64 {
        let (m, d) = (i64::from(self.month), i64::from(self.day));
        let y = i64::from(self.year) - i64::from(m <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The wall-clock date at `unix` seconds for a UTC offset of `offset` seconds.
    pub fn at(unix: i64, offset: i32) -> Date {
        Date::from_days(unix.saturating_add(i64::from(offset)).div_euclid(86_400))
    }

    /// The date at `t` in `zone`.
    pub fn in_zone(t: SystemTime, zone: Zone) -> Date {
        let unix = unix_secs(t);
        Date::at(unix, zone.offset_at(unix))
    }

    /// ISO 8601 week-numbering year and week (1..=53): weeks start on
    /// Monday and week 1 holds the year's first Thursday.
    pub fn iso_week(self) -> (i32, u8) {
        let days = self.to_days();
        // 1970-01-01 was a Thursday; ISO weekday 1 = Monday .. 7 = Sunday.
        let weekday = (days + 3).rem_euclid(7) + 1;
        let thursday = Date::from_days(days - weekday + 4);
        let jan1 = Date { year: thursday.year, month: 1, day: 1 }.to_days();
        let week = (thursday.to_days() - jan1) / 7 + 1;
        (thursday.year, week as u8)
    }

    /// The key of the period of `period` that contains this date.
    pub fn key(self, period: Period) -> PeriodKey {
        match period {
            Period::Day => PeriodKey::Day(self),
            Period::Week => {
                let (year, week) = self.iso_week();
                PeriodKey::Week { year, week }
            }
            Period::Month => PeriodKey::Month { year: self.year, month: self.month },
        }
    }

    /// Day, week and month keys, indexed by [`Period::index`].
    pub fn keys(self) -> [PeriodKey; 3] {
        Period::ALL.map(|p| self.key(p))
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// One calendar period: `2026-11-24`, `2026-W48` or `2026-11`. The text
/// form is what the database stores; it sorts chronologically as text
/// within each period (for years 1000..=9999).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeriodKey {
    Day(Date),
    Week { year: i32, week: u8 },
    Month { year: i32, month: u8 },
}

impl PeriodKey {
    pub fn period(&self) -> Period {
        match self {
            PeriodKey::Day(_) => Period::Day,
            PeriodKey::Week { .. } => Period::Week,
            PeriodKey::Month { .. } => Period::Month,
        }
    }
}

impl fmt::Display for PeriodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeriodKey::Day(d) => d.fmt(f),
            PeriodKey::Week { year, week } => write!(f, "{year:04}-W{week:02}"),
            PeriodKey::Month { year, month } => write!(f, "{year:04}-{month:02}"),
        }
    }
}

impl FromStr for PeriodKey {
    type Err = String;
    fn from_str(s: &str) -> Result<PeriodKey, String> {
        let bad = || format!("invalid period '{s}': use YYYY-MM-DD, YYYY-Www or YYYY-MM");
        let num = |t: &str| t.parse::<u32>().map_err(|_| bad());
        let parts: Vec<&str> = s.split('-').collect();
        match parts.as_slice() {
            [y, m, d] => {
                let (year, month, day) = (num(y)? as i32, num(m)?, num(d)?);
                let date = Date { year, month: month as u8, day: day as u8 };
                // Round-trip through day numbers rejects 2026-02-30 and friends.
                if !(1..=12).contains(&month) || !(1..=31).contains(&day) || Date::from_days(date.to_days()) != date {
                    return Err(bad());
                }
                Ok(PeriodKey::Day(date))
            }
            [y, w] if w.starts_with('W') => {
                let week = num(&w[1..])?;
                if !(1..=53).contains(&week) {
                    return Err(bad());
                }
                Ok(PeriodKey::Week { year: num(y)? as i32, week: week as u8 })
            }
            [y, m] => {
                let month = num(m)?;
                if !(1..=12).contains(&month) {
                    return Err(bad());
                }
                Ok(PeriodKey::Month { year: num(y)? as i32, month: month as u8 })
            }
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(year: i32, month: u8, day: u8) -> Date {
        Date { year, month, day }
    }

    fn week(d: Date) -> String {
        d.key(Period::Week).to_string()
    }

    #[test]
    fn day_numbers_round_trip_over_four_centuries() {
        assert_eq!(date(1970, 1, 1).to_days(), 0);
        assert_eq!(Date::from_days(0), date(1970, 1, 1));
        assert_eq!(Date::from_days(-1), date(1969, 12, 31));
        let mut prev = Date::from_days(-200_000);
        for n in -199_999..200_000 {
            let d = Date::from_days(n);
            assert_eq!(d.to_days(), n);
            assert!(d > prev, "{d} after {prev}");
            prev = d;
        }
    }

    #[test]
    fn leap_years_follow_the_gregorian_rules() {
        assert_eq!(Date::from_days(date(2024, 2, 28).to_days() + 1), date(2024, 2, 29));
        assert_eq!(Date::from_days(date(2026, 2, 28).to_days() + 1), date(2026, 3, 1));
        assert_eq!(Date::from_days(date(2100, 2, 28).to_days() + 1), date(2100, 3, 1));
        assert_eq!(Date::from_days(date(2000, 2, 28).to_days() + 1), date(2000, 2, 29));
    }

    #[test]
    fn keys_have_the_stored_text_form() {
        let d = date(2026, 11, 24);
        assert_eq!(d.key(Period::Day).to_string(), "2026-11-24");
        assert_eq!(d.key(Period::Week).to_string(), "2026-W48");
        assert_eq!(d.key(Period::Month).to_string(), "2026-11");
        for k in d.keys() {
            assert_eq!(k.to_string().parse::<PeriodKey>(), Ok(k));
        }
        assert!("2026-02-30".parse::<PeriodKey>().is_err());
        assert!("2026-13".parse::<PeriodKey>().is_err());
        assert!("2026-W54".parse::<PeriodKey>().is_err());
    }

    #[test]
    fn iso_weeks_across_year_ends() {
        // 2026-01-01 is a Thursday: week 1 of 2026 starts Monday 2025-12-29.
        assert_eq!(week(date(2025, 12, 28)), "2025-W52");
        assert_eq!(week(date(2025, 12, 29)), "2026-W01");
        assert_eq!(week(date(2026, 1, 4)), "2026-W01");
        assert_eq!(week(date(2026, 1, 5)), "2026-W02");
        // 2021-01-01 is a Friday: it belongs to 2020's week 53.
        assert_eq!(week(date(2021, 1, 1)), "2020-W53");
        assert_eq!(week(date(2021, 1, 3)), "2020-W53");
        assert_eq!(week(date(2021, 1, 4)), "2021-W01");
        // 2020 has 53 weeks (starts on a Wednesday in a leap year).
        assert_eq!(week(date(2020, 12, 31)), "2020-W53");
        // 2026 ends on a Thursday: 2026 has week 53.
        assert_eq!(week(date(2026, 12, 31)), "2026-W53");
        assert_eq!(week(date(2027, 1, 3)), "2026-W53");
        assert_eq!(week(date(2027, 1, 4)), "2027-W01");
        // 2008-12-29 (Monday) is 2009's week 1.
        assert_eq!(week(date(2008, 12, 28)), "2008-W52");
        assert_eq!(week(date(2008, 12, 29)), "2009-W01");
    }

    #[test]
    fn weeks_start_on_monday() {
        // 2026-11-23 is a Monday.
        assert_eq!(week(date(2026, 11, 22)), "2026-W47");
        assert_eq!(week(date(2026, 11, 23)), "2026-W48");
        assert_eq!(week(date(2026, 11, 29)), "2026-W48");
        assert_eq!(week(date(2026, 11, 30)), "2026-W49");
    }

    #[test]
    fn midnight_follows_the_utc_offset() {
        // 2026-11-24T23:30:00Z
        let t = date(2026, 11, 24).to_days() * 86_400 + 23 * 3600 + 1800;
        assert_eq!(Date::at(t, 0), date(2026, 11, 24));
        assert_eq!(Date::at(t, 3600), date(2026, 11, 25));
        assert_eq!(Date::at(t - 24 * 3600, -5 * 3600), date(2026, 11, 23));
        // Month and year boundaries from an offset.
        let nye = date(2026, 12, 31).to_days() * 86_400 + 23 * 3600;
        assert_eq!(Date::at(nye, 3600).key(Period::Month).to_string(), "2027-01");
        assert_eq!(Date::at(nye, 0).key(Period::Month).to_string(), "2026-12");
        assert_eq!(Date::at(-1, 0), date(1969, 12, 31));
    }

    #[test]
    fn dst_style_offset_changes_move_midnight_with_the_wall_clock() {
        // Europe/Berlin on 2026-03-29: 01:00Z goes from +1 h to +2 h.
        // 22:30Z on the 28th is 23:30 local (+1): still the 28th.
        let base = date(2026, 3, 28).to_days() * 86_400;
        assert_eq!(Date::at(base + 22 * 3600 + 1800, 3600), date(2026, 3, 28));
        // 22:30Z on the 29th is 00:30 local (+2): already the 30th.
        assert_eq!(Date::at(base + 86_400 + 22 * 3600 + 1800, 7200), date(2026, 3, 30));
        // Same instant under the winter offset would still be the 29th.
        assert_eq!(Date::at(base + 86_400 + 22 * 3600 + 1800, 3600), date(2026, 3, 29));
    }

    #[test]
    fn utc_zone_has_no_offset_and_local_is_sane() {
        assert_eq!(Zone::Utc.offset_at(1_800_000_000), 0);
        assert!(Zone::Local.offset_at(1_800_000_000).abs() <= 26 * 3600);
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_795_478_400); // 2026-11-24T00:00:00Z
        assert_eq!(Date::in_zone(t, Zone::Utc), date(2026, 11, 24));
        assert_eq!(unix_secs(UNIX_EPOCH - std::time::Duration::from_secs(5)), -5);
    }

    #[test]
    fn periods_parse_from_operator_words() {
        assert_eq!("day".parse::<Period>(), Ok(Period::Day));
        assert_eq!("monthly".parse::<Period>(), Ok(Period::Month));
        assert!("year".parse::<Period>().unwrap_err().contains("day, week or month"));
    }
}

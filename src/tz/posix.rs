//! POSIX TZ strings (`CET-1CEST,M3.5.0,M10.5.0/3`), as OpenWrt keeps in
//! /etc/TZ and TZif files carry in their footer: a standard offset and
//! optionally a daylight-saving offset with the rules that start and end it.
//! Pure: bytes in, a zone or an error out.

use super::TzError;
use crate::quota::Date;

/// The day a daylight-saving change happens in a year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// `Jn`: day 1..=365, February 29 never counted.
    Julian1(u16),
    /// `n`: day 0..=365, February 29 counted in leap years.
    Julian0(u16),
    /// `Mm.w.d`: weekday `d` (0 = Sunday) of week `w` (1..=5, 5 = last) of month `m`.
    MonthWeek { month: u8, week: u8, weekday: u8 },
}

/// Daylight saving: its offset and when it starts and ends, each as a
/// rule and seconds after local midnight (may be negative or past 24 h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dst {
    pub offset: i32,
    pub start: (Rule, i32),
    pub end: (Rule, i32),
}

/// A POSIX TZ string's zone. Offsets are seconds east of UTC (the string
/// itself counts west: `CET-1` is UTC+1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PosixTz {
    pub std_offset: i32,
    pub dst: Option<Dst>,
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

impl Rule {
    /// Days since 1970 of this rule's day in `year`.
    fn day(self, year: i32) -> i64 {
        let jan1 = Date { year, month: 1, day: 1 }.to_days();
        match self {
            Rule::Julian1(n) => {
                let n = i64::from(n);
                jan1 + n - 1 + i64::from(is_leap(year.into()) && n >= 60)
            }
            Rule::Julian0(n) => jan1 + i64::from(n),
            Rule::MonthWeek { month, week, weekday } => {
                let first = Date { year, month, day: 1 }.to_days();
                // 1970-01-01 was a Thursday (4, with Sunday = 0).
                let first_wd = (first + 4).rem_euclid(7);
                let mut day = first + (i64::from(weekday) - first_wd).rem_euclid(7) + 7 * (i64::from(week) - 1);
                let (ny, nm) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
                let next = Date { year: ny, month: nm, day: 1 }.to_days();
                while day >= next {
                    day -= 7;
                }
                day
            }
        }
    }
}

impl PosixTz {
    /// Parses a POSIX TZ string (without a leading ':').
    pub fn parse(s: &[u8]) -> Result<PosixTz, TzError> {
        let mut p = Cursor { s, i: 0 };
        p.name()?;
        let std_offset = -p.offset()?;
        if p.done() {
            return Ok(PosixTz { std_offset, dst: None });
        }
        p.name()?;
        let offset = if p.done() || p.peek() == Some(b',') { std_offset + 3600 } else { -p.offset()? };
        // No rules: the US ones, as musl and tzcode assume.
        let (start, end) = if p.done() {
            (
                (Rule::MonthWeek { month: 3, week: 2, weekday: 0 }, 7200),
                (Rule::MonthWeek { month: 11, week: 1, weekday: 0 }, 7200),
            )
        } else {
            p.expect(b',')?;
            let start = p.rule()?;
            p.expect(b',')?;
            let end = p.rule()?;
            (start, end)
        };
        if !p.done() {
            return Err(TzError::Posix("text after the end rule"));
        }
        Ok(PosixTz { std_offset, dst: Some(Dst { offset, start, end }) })
    }

    /// Seconds east of UTC at `unix`.
    pub fn offset_at(&self, unix: i64) -> i32 {
        let Some(dst) = self.dst else { return self.std_offset };
        let year = Date::at(unix, self.std_offset).year;
        // The start is given in standard time, the end in daylight time.
        let start = dst.start.0.day(year) * 86_400 + i64::from(dst.start.1) - i64::from(self.std_offset);
        let end = dst.end.0.day(year) * 86_400 + i64::from(dst.end.1) - i64::from(dst.offset);
        let in_dst = if start <= end { unix >= start && unix < end } else { unix < end || unix >= start };
        if in_dst { dst.offset } else { self.std_offset }
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn done(&self) -> bool {
        self.i >= self.s.len()
    }

    fn expect(&mut self, b: u8) -> Result<(), TzError> {
        if self.peek() != Some(b) {
            return Err(TzError::Posix("a rule (Jn, n or Mm.w.d) is missing"));
        }
        self.i += 1;
        Ok(())
    }

    /// A zone abbreviation: 3 or more letters, or `<...>` of letters, digits, '+' and '-'.
    fn name(&mut self) -> Result<(), TzError> {
        let start = self.i;
        if self.peek() == Some(b'<') {
            self.i += 1;
            while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'+' || c == b'-') {
                self.i += 1;
            }
            if self.peek() != Some(b'>') || self.i - start < 4 {
                return Err(TzError::Posix("a zone name needs 3 or more letters"));
            }
            self.i += 1;
        } else {
            while matches!(self.peek(), Some(c) if c.is_ascii_alphabetic()) {
                self.i += 1;
            }
            if self.i - start < 3 {
                return Err(TzError::Posix("a zone name needs 3 or more letters"));
            }
        }
        Ok(())
    }

    fn number(&mut self, max: u32) -> Result<u32, TzError> {
        let start = self.i;
        let mut n: u32 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            n = n.saturating_mul(10).saturating_add(u32::from(c - b'0'));
            self.i += 1;
        }
        if self.i == start || n > max {
            return Err(TzError::Posix("a number is missing or out of range"));
        }
        Ok(n)
    }

    /// `[+-]hh[:mm[:ss]]` in seconds, hours up to `max_hours`.
    fn hms(&mut self, max_hours: u32) -> Result<i32, TzError> {
        let sign = match self.peek() {
            Some(b'-') => {
                self.i += 1;
                -1
            }
            Some(b'+') => {
                self.i += 1;
                1
            }
            _ => 1,
        };
        let mut secs = self.number(max_hours)? * 3600;
        for scale in [60, 1] {
            if self.peek() != Some(b':') {
                break;
            }
            self.i += 1;
            secs += self.number(59)? * scale;
        }
        Ok(sign * secs as i32)
    }

    fn offset(&mut self) -> Result<i32, TzError> {
        self.hms(24)
    }

    /// `Jn`, `n` or `Mm.w.d`, then an optional `/time` (default 02:00).
    fn rule(&mut self) -> Result<(Rule, i32), TzError> {
        let rule = match self.peek() {
            Some(b'J') => {
                self.i += 1;
                let n = self.number(365)?;
                if n == 0 {
                    return Err(TzError::Posix("a number is missing or out of range"));
                }
                Rule::Julian1(n as u16)
            }
            Some(b'M') => {
                self.i += 1;
                let month = self.number(12)?;
                self.dot()?;
                let week = self.number(5)?;
                self.dot()?;
                let weekday = self.number(6)?;
                if month == 0 || week == 0 {
                    return Err(TzError::Posix("a number is missing or out of range"));
                }
                Rule::MonthWeek { month: month as u8, week: week as u8, weekday: weekday as u8 }
            }
            _ => Rule::Julian0(self.number(365)? as u16),
        };
        let time = if self.peek() == Some(b'/') {
            self.i += 1;
            self.hms(167)?
        } else {
            7200
        };
        Ok((rule, time))
    }

    fn dot(&mut self) -> Result<(), TzError> {
        if self.peek() != Some(b'.') {
            return Err(TzError::Posix("a rule (Jn, n or Mm.w.d) is missing"));
        }
        self.i += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, m: u8, d: u8, hh: i64, mm: i64) -> i64 {
        Date { year: y, month: m, day: d }.to_days() * 86_400 + hh * 3600 + mm * 60
    }

    fn tz(s: &str) -> PosixTz {
        PosixTz::parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn central_europe_changes_on_the_last_sundays_at_the_right_hours() {
        let cet = tz("CET-1CEST,M3.5.0,M10.5.0/3");
        assert_eq!(cet.std_offset, 3600);
        assert_eq!(cet.dst.unwrap().offset, 7200);
        // 2026: summer time from 2026-03-29 01:00Z to 2026-10-25 01:00Z.
        assert_eq!(cet.offset_at(at(2026, 3, 29, 0, 59)), 3600);
        assert_eq!(cet.offset_at(at(2026, 3, 29, 1, 0)), 7200);
        assert_eq!(cet.offset_at(at(2026, 10, 25, 0, 59)), 7200);
        assert_eq!(cet.offset_at(at(2026, 10, 25, 1, 0)), 3600);
        assert_eq!(cet.offset_at(at(2026, 12, 2, 12, 0)), 3600);
        // A month with five Sundays: 2024-03-31 is the last.
        assert_eq!(cet.offset_at(at(2024, 3, 31, 0, 59)), 3600);
        assert_eq!(cet.offset_at(at(2024, 3, 31, 1, 0)), 7200);
    }

    #[test]
    fn us_eastern_with_and_without_rules() {
        for s in ["EST5EDT,M3.2.0,M11.1.0", "EST5EDT"] {
            let est = tz(s);
            assert_eq!(est.std_offset, -5 * 3600, "{s}");
            // 2026: 2026-03-08 07:00Z to 2026-11-01 06:00Z.
            assert_eq!(est.offset_at(at(2026, 3, 8, 6, 59)), -5 * 3600, "{s}");
            assert_eq!(est.offset_at(at(2026, 3, 8, 7, 0)), -4 * 3600, "{s}");
            assert_eq!(est.offset_at(at(2026, 11, 1, 5, 59)), -4 * 3600, "{s}");
            assert_eq!(est.offset_at(at(2026, 11, 1, 6, 0)), -5 * 3600, "{s}");
        }
    }

    #[test]
    fn quoted_names_minutes_and_fixed_zones() {
        assert_eq!(tz("<+0330>-3:30"), PosixTz { std_offset: 3 * 3600 + 1800, dst: None });
        assert_eq!(tz("UTC0"), PosixTz { std_offset: 0, dst: None });
        assert_eq!(tz("<-03>3"), PosixTz { std_offset: -3 * 3600, dst: None });
        assert_eq!(tz("NPT-5:45").std_offset, 5 * 3600 + 45 * 60);
        assert_eq!(tz("XXX+1:02:03").std_offset, -3723);
    }

    #[test]
    fn southern_hemisphere_summer_spans_the_new_year() {
        // Australia/Sydney: AEDT from the first Sunday of October to the first of April.
        let syd = tz("AEST-10AEDT,M10.1.0,M4.1.0/3");
        assert_eq!(syd.offset_at(at(2026, 1, 15, 0, 0)), 11 * 3600);
        assert_eq!(syd.offset_at(at(2026, 6, 15, 0, 0)), 10 * 3600);
        assert_eq!(syd.offset_at(at(2026, 12, 15, 0, 0)), 11 * 3600);
        // 2026-04-05 03:00 AEDT = 2026-04-04 16:00Z.
        assert_eq!(syd.offset_at(at(2026, 4, 4, 15, 59)), 11 * 3600);
        assert_eq!(syd.offset_at(at(2026, 4, 4, 16, 0)), 10 * 3600);
    }

    #[test]
    fn julian_day_forms_differ_only_in_leap_years() {
        // J60 is always March 1; 59 (zero-based) is February 29 in a leap year.
        assert_eq!(Rule::Julian1(60).day(2024), Date { year: 2024, month: 3, day: 1 }.to_days());
        assert_eq!(Rule::Julian1(60).day(2026), Date { year: 2026, month: 3, day: 1 }.to_days());
        assert_eq!(Rule::Julian0(59).day(2024), Date { year: 2024, month: 2, day: 29 }.to_days());
        assert_eq!(Rule::Julian0(59).day(2026), Date { year: 2026, month: 3, day: 1 }.to_days());
        let z = tz("AAA0BBB-1,J60/0,300/-1");
        let d = z.dst.unwrap();
        assert_eq!(d.start, (Rule::Julian1(60), 0));
        assert_eq!(d.end, (Rule::Julian0(300), -3600));
        assert_eq!(z.offset_at(at(2026, 2, 28, 23, 59)), 0);
        assert_eq!(z.offset_at(at(2026, 3, 1, 0, 0)), 3600);
    }

    #[test]
    fn rule_times_past_24_hours_are_allowed() {
        // Greenland-style: ends at -1 and starts at 22 on the day before, or tzcode's 25:00 forms.
        let z = tz("<-02>2<-01>,M3.5.0/-1,M10.5.0/0");
        assert_eq!(z.dst.unwrap().start.1, -3600);
        assert_eq!(tz("IST-2IDT,M3.4.4/26,M10.5.0").dst.unwrap().start.1, 26 * 3600);
    }

    #[test]
    fn malformed_strings_are_errors() {
        for bad in [
            "",
            "C-1",
            "CET",
            "CET-25",
            "CET-1CEST,M3.5.0",
            "CET-1CEST,M13.5.0,M10.5.0",
            "CET-1CEST,M3.6.0,M10.5.0",
            "CET-1CEST,M3.5.7,M10.5.0",
            "CET-1CEST,J0,J10",
            "CET-1CEST,366,1",
            "<+03-3",
            "<>0",
            "CET-1x",
            "CET-1CEST,M3.5.0,M10.5.0x",
            "CET-1:60",
        ] {
            assert!(PosixTz::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}

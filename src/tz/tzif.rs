//! TZif files (RFC 8536; /etc/localtime, /usr/share/zoneinfo): the UTC
//! offsets of a zone's past transitions, and the footer's POSIX TZ string
//! for the times after the last one. Pure: bytes in, a zone or an error out.

use super::TzError;
use super::posix::PosixTz;

/// A zone read from a TZif file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tzif {
    /// Transition instants (ascending) and the offset from each one on.
    transitions: Vec<(i64, i32)>,
    /// The offset before the first transition (or always, without any).
    initial: i32,
    /// After the last transition, when the file has a footer.
    footer: Option<PosixTz>,
}

struct Header {
    version: u8,
    isutcnt: usize,
    isstdcnt: usize,
    leapcnt: usize,
    timecnt: usize,
    typecnt: usize,
    charcnt: usize,
}

const HEADER: usize = 44;

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn header(b: &[u8]) -> Result<Header, TzError> {
    if b.len() < HEADER || &b[..4] != b"TZif" {
        return Err(TzError::Tzif("not a TZif file (no 'TZif' header)"));
    }
    let n = |i: usize| be32(&b[20 + 4 * i..]) as usize;
    let h = Header {
        version: b[4],
        isutcnt: n(0),
        isstdcnt: n(1),
        leapcnt: n(2),
        timecnt: n(3),
        typecnt: n(4),
        charcnt: n(5),
    };
    if h.typecnt == 0 {
        return Err(TzError::Tzif("damaged or cut short"));
    }
    Ok(h)
}

impl Header {
    /// Length of the 64-bit data block; u64, so huge counts cannot wrap.
    fn data_len(&self) -> u64 {
        let n = |c: usize| c as u64;
        n(self.timecnt) * 9
            + n(self.typecnt) * 6
            + n(self.charcnt)
            + n(self.leapcnt) * 12
            + n(self.isstdcnt)
            + n(self.isutcnt)
    }

    /// Length of the version 1 block (32-bit times) that comes first.
    fn v1_len(&self) -> u64 {
        let n = |c: usize| c as u64;
        n(self.timecnt) * 5
            + n(self.typecnt) * 6
            + n(self.charcnt)
            + n(self.leapcnt) * 8
            + n(self.isstdcnt)
            + n(self.isutcnt)
    }
}

/// `end` as an index into a file of `len` bytes, if the file is that long.
fn within(len: usize, end: u64) -> Result<usize, TzError> {
    usize::try_from(end).ok().filter(|&e| e <= len).ok_or(TzError::Tzif("damaged or cut short"))
}

impl Tzif {
    /// Parses version 2 and later (zic has written nothing older since
    /// 2005): the second, 64-bit block and the footer.
    pub fn parse(b: &[u8]) -> Result<Tzif, TzError> {
        let h1 = header(b)?;
        if h1.version < b'2' {
            return Err(TzError::Tzif("version 1, without 64-bit times"));
        }
        let b2 = &b[within(b.len(), HEADER as u64 + h1.v1_len())?..];
        let h = header(b2)?;
        let end = within(b2.len(), HEADER as u64 + h.data_len())?;
        let (data, rest) = (&b2[HEADER..end], &b2[end..]);
        let (times, data) = data.split_at(h.timecnt * 8);
        let (idx, types) = data.split_at(h.timecnt);
        let utoff = |i: usize| -> Result<i32, TzError> {
            let t =
                types.get(i * 6..i * 6 + 4).filter(|_| i < h.typecnt).ok_or(TzError::Tzif("damaged or cut short"))?;
            let off = be32(t) as i32;
            if off.unsigned_abs() > 26 * 3600 {
                return Err(TzError::Tzif("damaged or cut short"));
            }
            Ok(off)
        };
        let mut transitions = Vec::with_capacity(h.timecnt);
        for (at, &ti) in times.chunks_exact(8).zip(idx) {
            let at = i64::from_be_bytes(at.try_into().unwrap_or_default());
            if transitions.last().is_some_and(|&(prev, _)| at <= prev) {
                return Err(TzError::Tzif("transitions out of order"));
            }
            transitions.push((at, utoff(usize::from(ti))?));
        }
        let footer = match rest {
            [b'\n', tail @ ..] => {
                let end = memchr::memchr(b'\n', tail).ok_or(TzError::Tzif("damaged or cut short"))?;
                let s = &tail[..end];
                if s.is_empty() { None } else { Some(PosixTz::parse(s)?) }
            }
            _ => None,
        };
        Ok(Tzif { transitions, initial: utoff(0)?, footer })
    }

    /// Seconds east of UTC at `unix`.
    pub fn offset_at(&self, unix: i64) -> i32 {
        match self.transitions.partition_point(|&(at, _)| at <= unix) {
            0 => self.footer.filter(|_| self.transitions.is_empty()).map_or(self.initial, |f| f.offset_at(unix)),
            n if n == self.transitions.len() => self.footer.map_or(self.transitions[n - 1].1, |f| f.offset_at(unix)),
            n => self.transitions[n - 1].1,
        }
    }
}

/// A TZif file with the given transitions (instant, offset, is-DST) and
/// footer, version 2 (the v1 block left empty, as `zic -b slim` writes).
#[cfg(test)]
pub(crate) fn build(initial: i32, transitions: &[(i64, i32)], footer: &str) -> Vec<u8> {
    let mut types: Vec<i32> = vec![initial];
    for &(_, off) in transitions {
        if !types.contains(&off) {
            types.push(off);
        }
    }
    let head = |timecnt: usize, typecnt: usize, charcnt: usize| {
        let mut h = b"TZif2".to_vec();
        h.extend([0; 15]);
        for n in [0, 0, 0, timecnt, typecnt, charcnt] {
            h.extend((n as u32).to_be_bytes());
        }
        h
    };
    let mut out = head(0, 1, 1);
    out.extend([0, 0, 0, 0, 0, 0, 0]);
    out.extend(head(transitions.len(), types.len(), 4));
    for &(at, _) in transitions {
        out.extend(at.to_be_bytes());
    }
    for &(_, off) in transitions {
        out.push(types.iter().position(|&t| t == off).unwrap() as u8);
    }
    for &t in &types {
        out.extend(t.to_be_bytes());
        out.extend([0, 0]);
    }
    out.extend(b"ZZZ\0");
    out.push(b'\n');
    out.extend(footer.as_bytes());
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_follow_transitions_then_the_footer() {
        // Berlin-like: LMT until 1900, then CET, with the CET/CEST rule after 2000.
        let f = build(
            3208,
            &[(-2_208_988_800, 3600), (954_032_400, 7200), (972_781_200, 3600)],
            "CET-1CEST,M3.5.0,M10.5.0/3",
        );
        let z = Tzif::parse(&f).unwrap();
        assert_eq!(z.offset_at(-3_000_000_000), 3208);
        assert_eq!(z.offset_at(954_032_399), 3600);
        assert_eq!(z.offset_at(954_032_400), 7200);
        assert_eq!(z.offset_at(972_781_200), 3600);
        // 2026-07-01 from the footer's rule.
        assert_eq!(z.offset_at(1_782_864_000), 7200);
        assert_eq!(z.offset_at(1_795_478_400), 3600);
    }

    #[test]
    fn a_file_without_transitions_uses_its_footer_or_its_one_type() {
        assert_eq!(Tzif::parse(&build(19_800, &[], "<+0530>-5:30")).unwrap().offset_at(0), 19_800);
        assert_eq!(Tzif::parse(&build(-3600, &[], "")).unwrap().offset_at(1_800_000_000), -3600);
    }

    #[test]
    fn the_systems_files_parse_when_present() {
        for name in ["/usr/share/zoneinfo/Europe/Berlin", "/usr/share/zoneinfo/America/New_York"] {
            let Ok(b) = std::fs::read(name) else { continue };
            let z = Tzif::parse(&b).unwrap_or_else(|e| panic!("{name}: {e}"));
            let (winter, summer) = (z.offset_at(1_795_478_400), z.offset_at(1_782_864_000));
            assert_eq!(summer - winter, 3600, "{name}");
        }
    }

    #[test]
    fn damaged_files_are_errors() {
        let good = build(0, &[(100, 3600), (200, 0)], "UTC0");
        assert!(Tzif::parse(b"").is_err());
        assert!(Tzif::parse(b"TZjf").is_err());
        for cut in [10, 44, 60, good.len() - 30] {
            assert!(Tzif::parse(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad_order = build(0, &[(200, 3600), (100, 0)], "UTC0");
        assert!(Tzif::parse(&bad_order).is_err());
        let n = bad_order.len();
        bad_order[n - 2] = b'!';
        assert!(Tzif::parse(&bad_order).is_err());
        // Version 1 only, and counts that would overflow 32-bit arithmetic.
        let mut v1 = good.clone();
        v1[4] = 0;
        assert!(Tzif::parse(&v1).is_err());
        for field in 0..6 {
            let mut huge = good.clone();
            huge[20 + 4 * field..24 + 4 * field].copy_from_slice(&[0xff; 4]);
            assert!(Tzif::parse(&huge).is_err(), "count {field}");
            let second = 44 + 7;
            let mut huge2 = good.clone();
            huge2[second + 20 + 4 * field..second + 24 + 4 * field].copy_from_slice(&[0xff; 4]);
            assert!(Tzif::parse(&huge2).is_err(), "second header's count {field}");
        }
        // Every truncation is an error, never a panic.
        for cut in 0..good.len() {
            let _ = Tzif::parse(&good[..cut]);
        }
    }
}

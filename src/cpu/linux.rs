//! CPU counters from Linux's `/proc/stat`.
//!
//! The first line sums all CPUs, in USER_HZ ticks:
//! `cpu  user nice system idle iowait irq softirq steal guest guest_nice`.
//! Kernels before 2.6 print only the first four; later ones may append more.

use super::CpuTimes;

/// Columns summed into `total`. `guest` and `guest_nice` (columns 9 and 10)
/// are already counted in `user` and `nice`, so they are left out.
const SUMMED_COLUMNS: usize = 8;
/// Columns every kernel prints (`user nice system idle`).
const REQUIRED_COLUMNS: usize = 4;
/// Index of `idle`; `iowait` follows it and counts as idle too.
const IDLE: usize = 3;
const IOWAIT: usize = 4;

/// Parses the aggregate `cpu` line at the start of `/proc/stat`.
///
/// `total` is user + nice + system + idle + iowait + irq + softirq + steal,
/// `busy` is `total` minus idle and iowait. Missing trailing columns (old
/// kernels) count as zero; fewer than four columns, a first line that is not
/// the aggregate `cpu` line, or a field that is not a decimal number give `None`.
pub fn parse_proc_stat(stat: &[u8]) -> Option<CpuTimes> {
    let line = match memchr::memchr(b'\n', stat) {
        Some(end) => &stat[..end],
        None => stat,
    };
    let mut fields = line.split(u8::is_ascii_whitespace).filter(|f| !f.is_empty());
    if fields.next()? != b"cpu" {
        return None;
    }
    let mut columns = [0u64; SUMMED_COLUMNS];
    let mut present = 0;
    for (slot, field) in columns.iter_mut().zip(&mut fields) {
        *slot = parse_decimal(field)?;
        present += 1;
    }
    if present < REQUIRED_COLUMNS {
        return None;
    }
    let total = columns.iter().try_fold(0u64, |sum, &c| sum.checked_add(c))?;
    let idle = columns[IDLE].checked_add(columns[IOWAIT])?;
    Some(CpuTimes { busy: total - idle, total })
}

/// An unsigned decimal without sign or spaces; `None` on anything else or overflow.
fn parse_decimal(field: &[u8]) -> Option<u64> {
    if field.is_empty() {
        return None;
    }
    field.iter().try_fold(0u64, |n, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) use source::Source;

#[cfg(any(target_os = "linux", target_os = "android"))]
mod source {
    use super::{CpuTimes, parse_proc_stat};
    use std::fs::File;
    use std::io::ErrorKind;
    use std::os::unix::fs::FileExt;

    const PROC_STAT: &str = "/proc/stat";
    /// Room for the first line: "cpu" and ten 20-digit columns need about 220 bytes.
    const LINE_BUF: usize = 512;

    /// `/proc/stat`, opened once: a read at offset 0 makes procfs regenerate
    /// the text, so each sample costs one `pread` and no allocation.
    pub(in crate::cpu) struct Source {
        /// The open file; `None` until an open succeeds (no procfs in a chroot)
        /// and after a read error, so the next sample opens it afresh.
        file: Option<File>,
    }

    impl Source {
        pub(in crate::cpu) fn new() -> Source {
            Source { file: File::open(PROC_STAT).ok() }
        }

        pub(in crate::cpu) fn read(&mut self) -> Option<CpuTimes> {
            if self.file.is_none() {
                self.file = File::open(PROC_STAT).ok();
            }
            let mut buf = [0u8; LINE_BUF];
            let len = loop {
                match self.file.as_ref()?.read_at(&mut buf, 0) {
                    Ok(len) => break len,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => {
                        self.file = None;
                        return None;
                    }
                }
            };
            let text = &buf[..len];
            // A first line cut off by the buffer would have a truncated column.
            memchr::memchr(b'\n', text)?;
            parse_proc_stat(text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::busy_percent;

    /// proc(5)'s example: a 2-CPU machine, kernel 2.6.
    const PROC5_EXAMPLE: &[u8] = b"cpu  2255 34 2290 22625563 6290 127 456 0 0 0
cpu0 1132 34 1441 11311718 3675 127 438 0 0 0
cpu1 1123 0 849 11313845 2614 0 18 0 0 0
intr 114930548 113199788 3 0 5 263 0 4 [... lots more numbers ...]
ctxt 1990473
btime 1062191376
processes 2915
procs_running 1
procs_blocked 0
softirq 183433 0 21755 12 39 1137 231 21459 2263
";

    /// A single-core MIPS OpenWrt router during a btest, one second apart.
    const ROUTER_T0: &[u8] = b"cpu  50317 0 62466 3519846 0 0 24313 0 0 0
cpu0 50317 0 62466 3519846 0 0 24313 0 0 0
intr 3661087 0 0 0 0 0 0 1834525 0 1826562
ctxt 2976431
btime 1700000000
processes 5214
procs_running 2
procs_blocked 0
softirq 5013247 0 1768734 0 1643912 0 0 1 0 0 1600600
";
    const ROUTER_T1: &[u8] = b"cpu  50360 0 62512 3519856 0 0 24317 0 0 0
cpu0 50360 0 62512 3519856 0 0 24317 0 0 0
intr 3661994 0 0 0 0 0 0 1834980 0 1827014
";

    /// A KVM host: guest time (812450) is already inside user (4705356).
    const KVM_HOST: &[u8] = b"cpu  4705356 1296 1640532 187345029 71356 0 51291 2847 812450 17\n";

    #[test]
    fn parses_the_proc5_example() {
        let total = 2255 + 34 + 2290 + 22625563 + 6290 + 127 + 456;
        let idle = 22625563 + 6290;
        assert_eq!(parse_proc_stat(PROC5_EXAMPLE), Some(CpuTimes { busy: total - idle, total }));
    }

    #[test]
    fn guest_columns_are_not_counted_twice() {
        let total = 4705356 + 1296 + 1640532 + 187345029 + 71356 + 51291 + 2847;
        let busy = 4705356 + 1296 + 1640532 + 51291 + 2847;
        assert_eq!(parse_proc_stat(KVM_HOST), Some(CpuTimes { busy, total }));
    }

    #[test]
    fn router_busy_during_a_test() {
        let t0 = parse_proc_stat(ROUTER_T0).unwrap();
        let t1 = parse_proc_stat(ROUTER_T1).unwrap();
        // 43 user + 46 system + 4 softirq busy out of 103 ticks.
        assert_eq!(t1.total - t0.total, 103);
        assert_eq!(t1.busy - t0.busy, 93);
        assert_eq!(busy_percent(t0, t1), Some(90));
    }

    #[test]
    fn iowait_counts_as_idle() {
        let t0 = parse_proc_stat(b"cpu  100 0 100 1000 0 0 0 0\n").unwrap();
        let t1 = parse_proc_stat(b"cpu  110 0 110 1020 60 0 0 0\n").unwrap();
        assert_eq!(busy_percent(t0, t1), Some(20));
    }

    #[test]
    fn old_kernels_with_fewer_columns_parse() {
        // Linux 2.4: user nice system idle.
        assert_eq!(parse_proc_stat(b"cpu  1132 34 1441 11311718\n"), Some(CpuTimes { busy: 2607, total: 11314325 }));
        // Linux 2.6.0 to 2.6.10: no steal column yet.
        assert_eq!(parse_proc_stat(b"cpu  10 0 10 100 5 1 2\n"), Some(CpuTimes { busy: 23, total: 128 }));
    }

    #[test]
    fn columns_beyond_guest_nice_are_ignored() {
        assert_eq!(parse_proc_stat(b"cpu  1 2 3 4 5 6 7 8 9 10 11 12\n"), Some(CpuTimes { busy: 27, total: 36 }));
    }

    #[test]
    fn tabs_and_missing_final_newline_are_accepted() {
        assert_eq!(parse_proc_stat(b"cpu\t1 2 3 4"), Some(CpuTimes { busy: 6, total: 10 }));
    }

    #[test]
    fn short_line_is_refused() {
        assert_eq!(parse_proc_stat(b"cpu  2255 34 2290\ncpu0 1 2 3 4\n"), None);
        assert_eq!(parse_proc_stat(b"cpu\n"), None);
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(parse_proc_stat(b""), None);
        assert_eq!(parse_proc_stat(b"\n"), None);
        assert_eq!(parse_proc_stat(b"\xff\xfe\x00garbage\n"), None);
        // The per-CPU line is not the aggregate.
        assert_eq!(parse_proc_stat(b"cpu0 1132 34 1441 11311718 3675 127 438 0 0 0\n"), None);
        assert_eq!(parse_proc_stat(b"cpus 1 2 3 4\n"), None);
        assert_eq!(parse_proc_stat(b"intr 1 2 3 4\ncpu  1 2 3 4\n"), None);
        assert_eq!(parse_proc_stat(b"cpu  1 2 x3 4\n"), None);
        assert_eq!(parse_proc_stat(b"cpu  1 -2 3 4\n"), None);
        assert_eq!(parse_proc_stat(b"cpu  1 2 3 4.5\n"), None);
    }

    #[test]
    fn overflowing_numbers_are_refused() {
        assert_eq!(parse_proc_stat(b"cpu  1 2 3 18446744073709551616\n"), None);
        // Each fits, the sum does not.
        assert_eq!(parse_proc_stat(b"cpu  18446744073709551615 1 0 0\n"), None);
        assert_eq!(parse_proc_stat(b"cpu  0 0 0 18446744073709551615\n"), Some(CpuTimes { busy: 0, total: u64::MAX }));
    }
}

//! CPU counters from FreeBSD's `kern.cp_time` sysctl (pfSense, OPNsense).
//!
//! The sysctl returns `long cp_time[CPUSTATES]`, ticks summed over all CPUs in
//! the order user, nice, sys, intr, idle. `long` is 32 bits on 32-bit FreeBSD
//! (i386, armv7), so there the counters wrap at 2^32 within months of uptime.

use super::CpuTimes;
use libc::c_long;

/// Number of `cp_time` states (`CPUSTATES` in `<sys/resource.h>`).
pub const CP_STATES: usize = 5;
/// Index of `CP_IDLE`; the other four states are busy.
const CP_IDLE: usize = 4;

/// Converts a `kern.cp_time` reading; busy is user + nice + sys + intr.
///
/// Sums are taken modulo the width of `long`, so on 32-bit hosts they wrap
/// exactly when the kernel's counters do and [`super::busy_percent`] can undo it.
pub fn from_cp_time(cp_time: &[c_long; CP_STATES]) -> CpuTimes {
    let width = if size_of::<c_long>() >= 8 { u64::MAX } else { u64::from(u32::MAX) };
    // `as` keeps the two's-complement bits of a counter past `LONG_MAX`;
    // the mask drops the sign extension of a 32-bit `long`.
    let ticks = |state: c_long| state as u64 & width;
    let busy = cp_time[..CP_IDLE].iter().fold(0u64, |sum, &state| sum.wrapping_add(ticks(state))) & width;
    let total = busy.wrapping_add(ticks(cp_time[CP_IDLE])) & width;
    CpuTimes { busy, total }
}

#[cfg(target_os = "freebsd")]
pub(super) use source::Source;

#[cfg(target_os = "freebsd")]
mod source {
    use super::{CP_STATES, CpuTimes, from_cp_time};
    use libc::c_long;

    /// The `kern.cp_time` sysctl, read in-process (no `sysctl(8)` child per second).
    pub(in crate::cpu) struct Source;

    impl Source {
        pub(in crate::cpu) fn new() -> Source {
            Source
        }

        pub(in crate::cpu) fn read(&mut self) -> Option<CpuTimes> {
            let mut cp_time: [c_long; CP_STATES] = [0; CP_STATES];
            let mut len = size_of_val(&cp_time);
            // SAFETY: the name is NUL-terminated; `cp_time` is writable for
            // `len` bytes and the kernel writes at most `len`; no new value is set.
            let rc = unsafe {
                libc::sysctlbyname(c"kern.cp_time".as_ptr(), cp_time.as_mut_ptr().cast(), &mut len, std::ptr::null(), 0)
            };
            (rc == 0 && len == size_of_val(&cp_time)).then(|| from_cp_time(&cp_time))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::busy_percent;

    /// `sysctl kern.cp_time` on a 4-core OPNsense box forwarding traffic, one second apart.
    const OPNSENSE_T0: [c_long; CP_STATES] = [1_203_311, 412, 2_876_105, 1_460_722, 94_455_090];
    const OPNSENSE_T1: [c_long; CP_STATES] = [1_203_361, 412, 2_876_225, 1_460_862, 94_455_280];

    #[test]
    fn busy_is_everything_but_idle() {
        assert_eq!(from_cp_time(&[10, 20, 30, 40, 100]), CpuTimes { busy: 100, total: 200 });
        let t0 = from_cp_time(&OPNSENSE_T0);
        assert_eq!(t0.busy, 1_203_311 + 412 + 2_876_105 + 1_460_722);
        assert_eq!(t0.total, t0.busy + 94_455_090);
    }

    #[test]
    fn router_busy_during_a_test() {
        // 50 user + 120 sys + 140 intr busy, 190 idle: 310 of 500 ticks.
        let (t0, t1) = (from_cp_time(&OPNSENSE_T0), from_cp_time(&OPNSENSE_T1));
        assert_eq!(busy_percent(t0, t1), Some(62));
    }

    #[test]
    fn idle_machine_is_zero_percent() {
        let t0 = from_cp_time(&[5, 0, 5, 0, 1_000]);
        let t1 = from_cp_time(&[5, 0, 5, 0, 1_512]);
        assert_eq!(busy_percent(t0, t1), Some(0));
    }

    #[test]
    fn no_ticks_no_figure() {
        assert_eq!(busy_percent(from_cp_time(&OPNSENSE_T0), from_cp_time(&OPNSENSE_T0)), None);
    }

    /// A 32-bit `long` past `LONG_MAX` reads as negative; past `ULONG_MAX` it wraps to 0.
    #[cfg(target_pointer_width = "32")]
    #[test]
    fn thirty_two_bit_counters_wrap() {
        // idle crosses 2^31 (negative as a signed long): still counted unsigned.
        let t0 = from_cp_time(&[100, 0, 100, 0, c_long::MAX - 49]);
        let t1 = from_cp_time(&[150, 0, 150, 0, c_long::MIN + 50]);
        assert_eq!(t1.total - t0.total, 200);
        assert_eq!(busy_percent(t0, t1), Some(50));
        // idle wraps past 2^32 to a small value, and so does the total.
        let t0 = from_cp_time(&[20, 0, 30, 0, -100]);
        let t1 = from_cp_time(&[30, 0, 40, 0, 80]);
        assert_eq!((t0.total, t1.total), (u64::from(u32::MAX) - 49, 150));
        assert_eq!(busy_percent(t0, t1), Some(10));
        // The sum of the states wraps while each state is far from 2^32.
        let big = c_long::MAX / 2 + 1; // 2^30
        let t0 = from_cp_time(&[big, big, big, big - 300, 200]);
        let t1 = from_cp_time(&[big, big, big, big - 100, 300]);
        assert!(t0.total <= u64::from(u32::MAX) && t1.total < t0.total);
        assert_eq!(busy_percent(t0, t1), Some(67));
    }

    /// On 64-bit FreeBSD the same bit patterns are ordinary large counters.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn sixty_four_bit_counters_do_not_wrap_at_32_bits() {
        let past_u32 = c_long::from(u32::MAX) + 100;
        let t0 = from_cp_time(&[0, 0, 0, 0, past_u32 - 200]);
        let t1 = from_cp_time(&[100, 0, 0, 0, past_u32]);
        assert_eq!(t1.total - t0.total, 300);
        assert_eq!(busy_percent(t0, t1), Some(33));
    }

    #[test]
    fn the_sum_wraps_at_the_width_of_long() {
        let width = if size_of::<c_long>() >= 8 { u64::MAX } else { u64::from(u32::MAX) };
        let t = from_cp_time(&[c_long::MAX, c_long::MAX, 2, 0, 1]);
        // MAX + MAX + 2 is 2^bits, i.e. 0 modulo the width.
        assert_eq!(t, CpuTimes { busy: 0, total: 1 });
        assert!(t.total <= width);
    }
}

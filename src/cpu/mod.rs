//! Host CPU load sampling for the status message.
//!
//! The status message carries this host's CPU busy percentage over the last
//! second (protocol.md §8). The event loop owns one [`CpuSampler`] and calls
//! [`CpuSampler::sample`] once per second for all sessions; the counters come
//! from `/proc/stat` on Linux ([`linux`]) and from the `kern.cp_time` sysctl
//! on FreeBSD ([`freebsd`]). Elsewhere there is no figure.
//!
//! The parsers are pure and compiled on every target, so the FreeBSD
//! arithmetic is tested on Linux CI and the 32-bit wrap under `qemu-mips`.

pub mod freebsd;
pub mod linux;

#[cfg(target_os = "freebsd")]
use freebsd::Source;
#[cfg(any(target_os = "linux", target_os = "android"))]
use linux::Source;
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
use unsupported::Source;

/// Cumulative CPU tick counters as the OS reports them.
///
/// Both are sums over all CPUs since boot, in the OS's tick unit. Counters the
/// kernel keeps in 32 bits are summed modulo 2^32, so they wrap together with
/// the kernel's; [`busy_percent`] undoes such a wrap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuTimes {
    /// Ticks spent doing anything but idling (or waiting for I/O on Linux).
    pub busy: u64,
    /// All ticks, idle included; never less than `busy` in one sample.
    pub total: u64,
}

/// Samples once per call; the caller (the event loop) calls it once per second for all sessions.
pub struct CpuSampler {
    /// Where the counters come from (an open `/proc/stat` on Linux).
    source: Source,
    /// Counters at the previous call; `None` before the first call and after a failed read.
    last: Option<CpuTimes>,
}

impl CpuSampler {
    /// A sampler with no baseline yet: the first [`sample`](Self::sample) returns `None`.
    pub fn new() -> CpuSampler {
        CpuSampler { source: Source::new(), last: None }
    }

    /// Busy percentage (0..=100) since the previous call; None on the first call or when unavailable.
    pub fn sample(&mut self) -> Option<u8> {
        let now = self.source.read();
        let prev = std::mem::replace(&mut self.last, now);
        busy_percent(prev?, now?)
    }
}

impl Default for CpuSampler {
    fn default() -> CpuSampler {
        CpuSampler::new()
    }
}

/// Pure: busy% between two samples, handling counter wrap (32-bit counters on 32-bit FreeBSD `long`) and a zero/negative delta.
///
/// Rounds to the nearest percent and clamps to 100 (Linux's `iowait` may step
/// back, which makes `busy` grow faster than `total`). `None` when no tick
/// passed or a counter stepped back: there is no honest figure for that interval.
pub fn busy_percent(prev: CpuTimes, now: CpuTimes) -> Option<u8> {
    let total = ticks_between(prev.total, now.total)?;
    let busy = ticks_between(prev.busy, now.busy)?;
    if total == 0 {
        return None;
    }
    // In u128 so absurd deltas cannot overflow; this runs once per second.
    let (busy, total) = (u128::from(busy), u128::from(total));
    let percent = ((busy * 100 + total / 2) / total).min(100);
    // The min above makes the narrowing lossless.
    Some(percent as u8)
}

/// Ticks a monotonic counter advanced from `prev` to `now`, or `None` if it stepped back.
///
/// A counter kept in 32 bits wraps at 2^32: that shows as a step back from a
/// value that fits in 32 bits, but a short step forward modulo 2^32. A short
/// step back (Linux's `iowait`) stays a step back.
fn ticks_between(prev: u64, now: u64) -> Option<u64> {
    if now >= prev {
        return Some(now - prev);
    }
    let forward = u32::try_from(now).ok()?.wrapping_sub(u32::try_from(prev).ok()?);
    (forward < 1 << 31).then_some(u64::from(forward))
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
mod unsupported {
    use super::CpuTimes;

    /// No counter source on this OS: every read fails, so every sample is `None`.
    pub(super) struct Source;

    impl Source {
        pub(super) fn new() -> Source {
            Source
        }

        pub(super) fn read(&mut self) -> Option<CpuTimes> {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(busy: u64, total: u64) -> CpuTimes {
        CpuTimes { busy, total }
    }

    #[test]
    fn busy_percent_is_busy_share_of_elapsed_ticks() {
        assert_eq!(busy_percent(t(1_000, 10_000), t(1_050, 10_200)), Some(25));
        assert_eq!(busy_percent(t(5, 10), t(5, 410)), Some(0));
        assert_eq!(busy_percent(t(5, 10), t(405, 410)), Some(100));
    }

    #[test]
    fn busy_percent_rounds_to_nearest() {
        assert_eq!(busy_percent(t(0, 0), t(1, 200)), Some(1)); // 0.5 %
        assert_eq!(busy_percent(t(0, 0), t(1, 201)), Some(0)); // 0.497 %
        assert_eq!(busy_percent(t(0, 0), t(2, 3)), Some(67));
    }

    #[test]
    fn zero_elapsed_ticks_give_no_figure() {
        assert_eq!(busy_percent(t(7, 100), t(7, 100)), None);
    }

    #[test]
    fn counter_stepping_back_gives_no_figure() {
        assert_eq!(busy_percent(t(50, 1_000), t(50, 990)), None);
        assert_eq!(busy_percent(t(50, 1_000), t(40, 1_100)), None);
        // Large 64-bit counters (a busy 16-core box after a month) too.
        let big = 1u64 << 40;
        assert_eq!(busy_percent(t(big, big + 100), t(big, big + 90)), None);
    }

    #[test]
    fn busy_growing_faster_than_total_clamps_to_100() {
        // Linux iowait stepped back: idle shrank, so busy rose more than total.
        assert_eq!(busy_percent(t(100, 1_000), t(250, 1_100)), Some(100));
    }

    #[test]
    fn thirty_two_bit_wrap_is_a_short_step_forward() {
        let max = u64::from(u32::MAX);
        // total wrapped: 0xFFFF_FF00 -> 0x100 is 0x200 ticks forward; busy
        // advanced 0x100 without wrapping.
        let prev = t(max - 0x17F, max - 0xFF);
        let now = t(max - 0x7F, 0x100);
        assert_eq!(ticks_between(prev.total, now.total), Some(0x200));
        assert_eq!(busy_percent(prev, now), Some(50));
        // Both counters wrapped.
        assert_eq!(busy_percent(t(max - 9, max - 9), t(10, 30)), Some(50));
    }

    #[test]
    fn wrap_detection_refuses_what_cannot_be_a_32_bit_counter() {
        // A previous value above 2^32 cannot have wrapped at 2^32.
        assert_eq!(ticks_between(1 << 33, 5), None);
        // A step back of less than 2^31 is not a wrap.
        assert_eq!(ticks_between(1_000_000, 999_000), None);
        assert_eq!(ticks_between(u64::from(u32::MAX), 0), Some(1));
    }

    #[test]
    fn huge_deltas_do_not_overflow() {
        assert_eq!(busy_percent(t(0, 0), t(u64::MAX / 2, u64::MAX)), Some(50));
        assert_eq!(busy_percent(t(0, 0), t(u64::MAX, u64::MAX)), Some(100));
    }

    #[test]
    fn sampler_needs_two_samples() {
        let mut sampler = CpuSampler::new();
        assert_eq!(sampler.sample(), None);
        // The host may or may not have a counter source, and a second may not
        // have passed, but a figure is never above 100.
        assert!(sampler.sample().is_none_or(|p| p <= 100));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn linux_host_has_counters() {
        let mut source = Source::new();
        let first = source.read().expect("/proc/stat readable");
        assert!(first.busy <= first.total);
        let again = source.read().expect("/proc/stat readable twice through one fd");
        assert!(again.total >= first.total);
    }
}

//! Token-bucket rate limiting for TCP writes and UDP datagrams, driven by
//! the event loop's deadlines (no sleeping, no spinning).

use std::time::{Duration, Instant};

const NANOS: u128 = 1_000_000_000;
/// Longest refill considered at once; bounds the arithmetic.
const MAX_REFILL: Duration = Duration::from_secs(10);

/// A byte budget that refills at `rate` bytes/s up to `burst` bytes.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Bytes per second; 0 means unlimited.
    rate: u64,
    /// Largest number of tokens held, i.e. the biggest burst.
    burst: u64,
    tokens: u64,
    /// Time up to which refills have been credited.
    last: Instant,
}

impl TokenBucket {
    /// A bucket for `bits_per_sec` (0 = unlimited) that starts full.
    pub fn new(bits_per_sec: u64, burst: u64, now: Instant) -> TokenBucket {
        let rate = bits_per_sec / 8;
        let burst = burst.max(1);
        TokenBucket { rate, burst, tokens: burst, last: now }
    }

    /// The burst that suits a TCP writer at `bits_per_sec`: about 10 ms of
    /// traffic, at least one full-size packet, at most 1 MiB.
    pub fn tcp_burst(bits_per_sec: u64) -> u64 {
        (bits_per_sec / 8 / 100).clamp(1500, 1 << 20)
    }

    pub fn is_limited(&self) -> bool {
        self.rate > 0
    }

    /// Bits per second (0 = unlimited).
    pub fn rate_bps(&self) -> u64 {
        self.rate * 8
    }

    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// When a writer that stopped for lack of tokens should wake: at half a
    /// burst, so the other half absorbs a late wakeup (poll timeouts have
    /// millisecond granularity).
    pub fn wake_at(&self) -> Instant {
        self.ready_at(self.burst.div_ceil(2))
    }

    /// Changes rate and burst, keeping the tokens already earned (up to the new burst).
    pub fn set_rate(&mut self, bits_per_sec: u64, burst: u64, now: Instant) {
        self.refill(now);
        self.rate = bits_per_sec / 8;
        self.burst = burst.max(1);
        self.tokens = self.tokens.min(self.burst);
        self.last = now;
    }

    /// Tokens available now (`u64::MAX` when unlimited).
    pub fn available(&mut self, now: Instant) -> u64 {
        if self.rate == 0 {
            return u64::MAX;
        }
        self.refill(now);
        self.tokens
    }

    /// Tokens a writer may use now: all of them once at least half a burst
    /// has accrued, else none. Readiness events arrive far more often than
    /// the pace; spending every few accrued bytes at each of them would
    /// turn a paced stream into a flood of tiny writes.
    pub fn grant(&mut self, now: Instant) -> u64 {
        let avail = self.available(now);
        if self.rate == 0 || avail >= self.burst.div_ceil(2) { avail } else { 0 }
    }

    pub fn consume(&mut self, n: u64) {
        if self.rate > 0 {
            self.tokens = self.tokens.saturating_sub(n);
        }
    }

    /// When at least `need` tokens (capped at the burst) will be available.
    pub fn ready_at(&self, need: u64) -> Instant {
        let need = need.min(self.burst);
        if self.rate == 0 || self.tokens >= need {
            return self.last;
        }
        let missing = u128::from(need - self.tokens);
        let ns = (missing * NANOS).div_ceil(u128::from(self.rate));
        self.last + Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    fn refill(&mut self, now: Instant) {
        if now <= self.last {
            return;
        }
        if self.tokens >= self.burst {
            self.last = now;
            return;
        }
        let elapsed = (now - self.last).min(MAX_REFILL).as_nanos();
        let earned = elapsed * u128::from(self.rate) / NANOS;
        if earned == 0 {
            return;
        }
        let room = u128::from(self.burst - self.tokens);
        if earned >= room {
            self.tokens = self.burst;
            self.last = now;
        } else {
            self.tokens += earned as u64;
            // Credit exactly the time those tokens took, so no fraction is lost.
            let used = (earned * NANOS).div_ceil(u128::from(self.rate));
            self.last += Duration::from_nanos(used as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_is_always_available() {
        let now = Instant::now();
        let mut b = TokenBucket::new(0, 1000, now);
        assert!(!b.is_limited());
        assert_eq!(b.available(now), u64::MAX);
        b.consume(1 << 40);
        assert_eq!(b.available(now), u64::MAX);
    }

    #[test]
    fn long_run_rate_matches_configured_rate() {
        // 8 Mbit/s = 1 MB/s; consume in 1500-byte writes whenever allowed,
        // stepping time to each ready_at, over 10 simulated seconds.
        let t0 = Instant::now();
        let mut b = TokenBucket::new(8_000_000, 15_000, t0);
        let mut now = t0;
        let mut sent = 0u64;
        while now < t0 + Duration::from_secs(10) {
            let avail = b.available(now);
            if avail >= 1500 {
                b.consume(1500);
                sent += 1500;
            } else {
                now = b.ready_at(1500).max(now + Duration::from_nanos(1));
            }
        }
        // Initial burst (15 kB) plus 10 s at 1 MB/s, within one packet.
        let expected = 10_000_000 + 15_000;
        assert!(sent.abs_diff(expected) <= 1500, "sent {sent}, expected {expected}");
    }

    #[test]
    fn tokens_cap_at_burst_and_ready_at_is_exact() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(8_000, 500, t0); // 1000 B/s
        b.consume(500);
        assert_eq!(b.available(t0), 0);
        assert_eq!(b.ready_at(100), t0 + Duration::from_millis(100));
        assert_eq!(b.available(t0 + Duration::from_millis(100)), 100);
        assert_eq!(b.available(t0 + Duration::from_secs(60)), 500);
    }

    #[test]
    fn grant_waits_for_half_a_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(8_000, 1000, t0); // 1000 B/s
        assert_eq!(b.grant(t0), 1000);
        b.consume(1000);
        assert_eq!(b.grant(t0 + Duration::from_millis(100)), 0);
        assert_eq!(b.wake_at(), t0 + Duration::from_millis(500));
        assert_eq!(b.grant(t0 + Duration::from_millis(500)), 500);
        assert_eq!(TokenBucket::new(0, 1, t0).grant(t0), u64::MAX);
    }

    #[test]
    fn tcp_burst_is_bounded() {
        assert_eq!(TokenBucket::tcp_burst(8_000), 1500);
        assert_eq!(TokenBucket::tcp_burst(800_000_000), 1_000_000);
        assert_eq!(TokenBucket::tcp_burst(u32::MAX as u64 * 100), 1 << 20);
    }
}

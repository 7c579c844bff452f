//! Operator caps on the rate of every test and of all tests together, and
//! how the total is shared among running tests.

use super::config::Limits;
use crate::pacer::TokenBucket;
use crate::proto::Command;
use std::time::Instant;

/// The lower of two rates where 0 means unlimited.
pub fn min_rate(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (a, b) => a.min(b),
    }
}

/// The shared buckets of `--max-rate-total`, one per direction.
pub struct Rates {
    tx: TokenBucket,
    rx: TokenBucket,
    total: u64,
    per_session: u64,
}

/// A session's own bucket and the shared one, granted and spent together.
pub struct Budget<'a> {
    own: &'a mut TokenBucket,
    shared: &'a mut TokenBucket,
}

impl Budget<'_> {
    /// Bytes that may move now.
    pub fn grant(&mut self, now: Instant) -> u64 {
        self.own.grant(now).min(self.shared.grant(now))
    }

    pub fn spend(&mut self, n: u64) {
        self.own.consume(n);
        self.shared.consume(n);
    }

    pub fn is_limited(&self) -> bool {
        self.own.is_limited() || self.shared.is_limited()
    }

    /// When to go on after running out: once the emptier bucket has refilled half way.
    pub fn wake_at(&self) -> Instant {
        self.own.wake_at().max(self.shared.wake_at())
    }
}

impl Rates {
    pub fn new(limits: &Limits, now: Instant) -> Rates {
        let total = limits.max_rate_total;
        Rates {
            tx: TokenBucket::new(total, TokenBucket::tcp_burst(total), now),
            rx: TokenBucket::new(total, TokenBucket::tcp_burst(total), now),
            total,
            per_session: limits.max_rate_per_session,
        }
    }

    /// What the server sends, under `own` and the total.
    pub fn tx<'a>(&'a mut self, own: &'a mut TokenBucket) -> Budget<'a> {
        Budget { own, shared: &mut self.tx }
    }

    /// What the server reads, under `own` and the total.
    pub fn rx<'a>(&'a mut self, own: &'a mut TokenBucket) -> Budget<'a> {
        Budget { own, shared: &mut self.rx }
    }

    /// The total transmit bucket alone (a UDP flow paces itself).
    pub fn shared_tx(&mut self) -> &mut TokenBucket {
        &mut self.tx
    }

    /// A test's own transmit cap: the rate it asked for, under the per-test cap.
    pub fn tx_cap(&self, cmd: &Command) -> u64 {
        min_rate(u64::from(cmd.remote_tx_speed), self.per_session)
    }

    /// A test's own receive cap.
    pub fn rx_cap(&self) -> u64 {
        self.per_session
    }

    /// Each running test's part of the total, (transmit, receive), for
    /// `transmitting` and `receiving` tests; None without a total cap.
    /// With a total cap, each test gets an equal part as its own cap, so
    /// the test served first cannot take the whole budget; the shared
    /// bucket stays as the hard limit.
    pub fn parts(&self, transmitting: usize, receiving: usize) -> Option<(u64, u64)> {
        (self.total > 0).then(|| (self.total / transmitting.max(1) as u64, self.total / receiving.max(1) as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_unlimited() {
        assert_eq!(min_rate(0, 0), 0);
        assert_eq!(min_rate(0, 5), 5);
        assert_eq!(min_rate(7, 0), 7);
        assert_eq!(min_rate(7, 5), 5);
    }

    #[test]
    fn the_total_is_split_evenly_per_direction() {
        let now = Instant::now();
        let r = Rates::new(&Limits { max_rate_total: 90_000_000, ..Limits::default() }, now);
        assert_eq!(r.parts(3, 0), Some((30_000_000, 90_000_000)));
        assert_eq!(r.parts(0, 2), Some((90_000_000, 45_000_000)));
        let none = Rates::new(&Limits::default(), now);
        assert_eq!(none.parts(3, 3), None, "no total cap: nothing to share");
    }

    #[test]
    fn a_tests_own_cap_is_its_asked_rate_under_the_per_test_cap() {
        let now = Instant::now();
        let r = Rates::new(&Limits { max_rate_per_session: 10_000_000, ..Limits::default() }, now);
        use crate::proto::{Command, Direction, Protocol};
        let mut cmd = Command::example(Protocol::Tcp, Direction::ServerToClient, 0);
        assert_eq!(r.tx_cap(&cmd), 10_000_000, "unlimited ask: the operator's cap");
        cmd.remote_tx_speed = 1_000_000;
        assert_eq!(r.tx_cap(&cmd), 1_000_000);
        assert_eq!(r.rx_cap(), 10_000_000);
    }

    #[test]
    fn a_budget_grants_the_lower_of_both_buckets() {
        let now = Instant::now();
        let mut r = Rates::new(&Limits { max_rate_total: 8_000_000, ..Limits::default() }, now);
        let mut own = TokenBucket::new(0, 1, now);
        let mut b = r.tx(&mut own);
        assert!(b.is_limited());
        let granted = b.grant(now);
        assert_eq!(granted, TokenBucket::tcp_burst(8_000_000), "the shared bucket starts full");
        b.spend(granted);
        assert_eq!(b.grant(now), 0);
        assert!(b.wake_at() > now);
    }
}

//! How fast a UDP sender goes when the peer's statuses are all it learns
//! about the path. Without an asked rate it starts at 10 Mbit/s and grows
//! sixteenfold until the first status; each status is set against what was
//! sent since the one before it (the time between them measured, not
//! assumed): while they keep up the rate doubles per interval, once one
//! falls short the rate holds 105 % of what arrives (MikroTik documents its
//! own sender as sending "110% or more"). No status for an interval and a
//! half means the start rate. An asked rate is where it starts and a cap.
//!
//! Pure: time comes in as arguments, so every rule is tested below.

use std::fmt;
use std::time::{Duration, Instant};

/// Rate before any report, bits/s. 10 Mbit/s is carried by nearly every path
/// a bandwidth test runs over, and growing from it sixteenfold during the
/// first second (no status arrives sooner) passes 100 Mbit/s just before
/// the first report. From a lower start an 8 s test could not average
/// 90 Mbit/s through a 100 Mbit/s link; a higher one would flood slower
/// links harder while nothing is known.
pub const START_BPS: u64 = 10_000_000;
/// Before the first report the rate doubles this often...
const FIRST_DOUBLING: Duration = Duration::from_millis(250);
/// ...up to this multiple of the start rate.
const FIRST_CEILING: u64 = 16;
/// The status interval assumed until one is measured: the protocol's second.
const NOMINAL_INTERVAL: Duration = Duration::from_secs(1);
/// Statuses closer together than this are added to the next one: the time
/// between them says nothing (RouterOS's shortest interval is 20 ms).
const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// Held rate per received rate (percent): a bit above what arrives, so more
/// room is noticed, losing about 5 % at a bottleneck.
const HOLD_PERCENT: u64 = 105;
/// A report keeps up when it accounts for this share (percent) of what was
/// sent in its interval; the held 105 % leaves about 95 %.
const KEPT_UP_PERCENT: u64 = 98;
/// A held rate was really sent when at least this share (percent) of it
/// went out. Only then may a kept-up report raise it: 99 % of 105 % kept up
/// to 98 % is more than the bottleneck held at can carry, so a held rate
/// grows only when the path has room, not when a busy sender fell short.
const SENT_PERCENT: u64 = 99;
/// Growth (percent) over an interval whose report kept up: doubling, as
/// TCP's slow start does per round trip, the status interval being this
/// sender's round trip...
const GROWTH_PERCENT: u64 = 200;
/// ...and half again once a report fell short: the rate it fell short at
/// may already be the path's.
const GROWTH_AFTER_SHORT_PERCENT: u64 = 150;
/// Lowest rate the ramp settles at: a few datagrams a second still measure the path.
const FLOOR_BPS: u64 = 100_000;
/// Points at which an interval's rate profile is sampled.
const SAMPLES: usize = 64;
/// 2^(i/16) in 1/65536ths: the ramp grows in sixteenths of a doubling.
const FRACTIONS: [u64; 16] = [
    65536, 68438, 71468, 74632, 77936, 81386, 84990, 88752, 92682, 96785, 101070, 105545, 110218, 115098, 120194,
    125515,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// From `from` bits/s at `since`, doubling every `doubling`, up to `ceiling`.
    Growing { from: u64, since: Instant, doubling: Duration, ceiling: u64 },
    /// A steady rate, bits/s.
    Holding { rate: u64 },
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::Growing { from, ceiling, .. } => write!(f, "growing from {from} to {ceiling} bit/s"),
            Phase::Holding { rate } => write!(f, "holding {rate} bit/s"),
        }
    }
}

/// One interval between reports at a steady rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Steady {
    /// Bytes the peer received and we sent in it.
    received: u64,
    sent: u64,
    elapsed: Duration,
}

impl Steady {
    fn kept_up(&self) -> bool {
        u128::from(self.received) * 100 >= u128::from(self.sent) * u128::from(KEPT_UP_PERCENT)
    }
}

/// The rate controller of one UDP sender.
#[derive(Debug, Clone)]
pub struct Ramp {
    phase: Phase,
    /// When the last report arrived (the flow's start before the first).
    last_report: Instant,
    /// The time between the last two reports (nominal before there were two).
    interval: Duration,
    /// Bytes of reports too close to the previous one, for the next.
    carried: u64,
    /// A report has fallen short of what was sent: later growth is gentler,
    /// as the rate it fell short at may already be the path's.
    fell_short: bool,
    /// The previous interval if its rate was steady. A steady rate is judged
    /// on two intervals: a report counted late makes one look short and the
    /// next long, which must neither halve a held rate nor raise it.
    prev: Option<Steady>,
    /// The rate the test asked for (bits/s, 0 = none): the start and a hard cap.
    asked: u64,
    /// The operator's cap (bits/s, 0 = none).
    limit: u64,
}

/// The lower of two rates where 0 means unlimited.
fn min_rate(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (a, b) => a.min(b),
    }
}

/// `from` grown for `elapsed` at one doubling per `doubling`, in sixteenths.
fn grown(from: u64, elapsed: Duration, doubling: Duration) -> u64 {
    let steps = (elapsed.as_nanos() * 16 / doubling.as_nanos().max(1)).min(16 * 40) as usize;
    let r = (u128::from(from) * u128::from(FRACTIONS[steps % 16])) << (steps / 16) >> 16;
    u64::try_from(r).unwrap_or(u64::MAX)
}

/// `rate` times `percent` / 100, without overflow.
fn percent(rate: u64, percent: u64) -> u64 {
    u64::try_from(u128::from(rate) * u128::from(percent) / 100).unwrap_or(u64::MAX)
}

impl Ramp {
    /// A controller for a flow starting `now`. `asked` (bits/s) is the rate
    /// the test asked for: it starts there and never goes above it; 0 means
    /// it ramps up from [`START_BPS`]. `limit` is the operator's cap (0 = none).
    pub fn new(asked: u64, limit: u64, now: Instant) -> Ramp {
        let phase = if asked > 0 {
            Phase::Holding { rate: asked }
        } else {
            Phase::Growing { from: START_BPS, since: now, doubling: FIRST_DOUBLING, ceiling: START_BPS * FIRST_CEILING }
        };
        Ramp {
            phase,
            last_report: now,
            interval: NOMINAL_INTERVAL,
            carried: 0,
            fell_short: false,
            prev: None,
            asked,
            limit,
        }
    }

    /// Changes the operator's cap (0 = none); the asked rate stays a cap too.
    pub fn set_limit(&mut self, limit: u64) {
        self.limit = limit;
    }

    /// The highest rate allowed (0 = none).
    pub fn cap(&self) -> u64 {
        min_rate(self.asked, self.limit)
    }

    /// The rate to send at `now`, bits/s; never 0 (which pacers read as unlimited).
    pub fn rate(&self, now: Instant) -> u64 {
        let r = match self.phase {
            Phase::Growing { from, since, doubling, ceiling } => {
                grown(from, now.saturating_duration_since(since), doubling).min(ceiling)
            }
            Phase::Holding { rate } => rate,
        };
        // Silence: whatever was learnt is getting old; send no more than the start rate.
        let r = if now >= self.silent_after() { r.min(START_BPS) } else { r };
        min_rate(r.max(1), self.cap())
    }

    /// When the next report is overdue: half an interval late, and at
    /// least half a second (short intervals jitter).
    fn silent_after(&self) -> Instant {
        let late = (self.interval / 2).max(Duration::from_millis(500));
        self.last_report + self.interval + late
    }

    /// The peer reported `received` bytes for its last interval; `sent` is
    /// what we sent since the previous report, in the same units.
    pub fn report(&mut self, received: u64, sent: u64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last_report);
        if elapsed < MIN_INTERVAL {
            self.carried = self.carried.saturating_add(received);
            return;
        }
        let received = received.saturating_add(std::mem::take(&mut self.carried));
        let next = if sent == 0 {
            // Nothing of ours was in flight: nothing learnt about the path.
            None
        } else if received == 0 {
            // Nothing arrived: the path or the peer is gone, whatever it carried before.
            self.fell_short = false;
            self.prev = None;
            Some(Phase::Holding { rate: self.rate(now).min(START_BPS) })
        } else {
            let profile = self.profile(elapsed);
            let fell_behind = u128::from(sent) * 100 < profile_bytes(&profile, elapsed) * u128::from(SENT_PERCENT);
            let this = Steady { received, sent, elapsed };
            let prev = std::mem::take(&mut self.prev);
            if is_steady(&profile) {
                self.prev = Some(this);
                if this.kept_up() && fell_behind {
                    // All of less than the rate arrived: that says nothing
                    // about room above it (a busy sender, not a faster path).
                    None
                } else if this.kept_up() && prev.is_none_or(|p| p.kept_up()) {
                    Some(self.grow(level(&profile, received, sent, elapsed), now, elapsed))
                } else {
                    // Held at what arrived over both intervals.
                    let (r, t) = prev.map_or((received, elapsed), |p| {
                        (received.saturating_add(p.received), elapsed.saturating_add(p.elapsed))
                    });
                    Some(self.hold(received_bps(r, t)))
                }
            } else {
                let level = level(&profile, received, sent, elapsed);
                if this.kept_up() { Some(self.grow(level, now, elapsed)) } else { Some(self.hold(level)) }
            }
        };
        if let Some(next) = next {
            if std::mem::discriminant(&next) != std::mem::discriminant(&self.phase) {
                log::debug!("UDP rate: {} -> {}", self.phase, next);
            }
            self.phase = next;
        }
        self.last_report = now;
        self.interval = elapsed;
    }

    /// Growing from `level` (what got through) after a report kept up.
    fn grow(&self, level: u64, now: Instant, elapsed: Duration) -> Phase {
        let from = level.max(FLOOR_BPS);
        let growth = if self.fell_short { GROWTH_AFTER_SHORT_PERCENT } else { GROWTH_PERCENT };
        // Doubling within a quarter of the interval, so most of the next
        // interval tests the new rate.
        Phase::Growing { from, since: now, doubling: elapsed / 4, ceiling: percent(from, growth) }
    }

    /// Holding a little above `level` (what arrived) after a report fell short.
    fn hold(&mut self, level: u64) -> Phase {
        self.fell_short = true;
        Phase::Holding { rate: percent(level.max(FLOOR_BPS), HOLD_PERCENT) }
    }

    /// The rates we meant to send at over the `elapsed` since the last
    /// report, at evenly spaced points, lowest first.
    fn profile(&self, elapsed: Duration) -> [u64; SAMPLES] {
        let mut profile = [0u64; SAMPLES];
        for (i, p) in profile.iter_mut().enumerate() {
            let at = elapsed * (2 * i as u32 + 1) / (2 * SAMPLES as u32);
            *p = self.rate(self.last_report + at);
        }
        profile.sort_unstable();
        profile
    }
}

/// Whether a sorted `profile` is one rate (within 3 %).
fn is_steady(profile: &[u64; SAMPLES]) -> bool {
    u128::from(profile[0]) * 100 >= u128::from(profile[SAMPLES - 1]) * 97
}

/// The rate of `bytes` over `elapsed`, bits/s.
fn received_bps(bytes: u64, elapsed: Duration) -> u64 {
    u64::try_from(u128::from(bytes) * 8_000_000_000 / elapsed.as_nanos().max(1)).unwrap_or(u64::MAX)
}

/// Bytes a `profile` (bits/s) amounts to over `elapsed`.
fn profile_bytes(profile: &[u64; SAMPLES], elapsed: Duration) -> u128 {
    let sum: u128 = profile.iter().map(|&p| u128::from(p)).sum();
    sum.saturating_mul(elapsed.as_nanos()) / (SAMPLES as u128 * 8 * 1_000_000_000)
}

/// The path's rate as an interval shows it, bits/s: the level the sorted
/// rate `profile` of the interval, scaled to the bytes actually `sent`,
/// must be cut at for the part under the cut to be what arrived. For a
/// steady rate that is simply the received rate; for a ramp, the rate at
/// which it ran into the bottleneck. When all arrived, the highest rate.
fn level(profile: &[u64; SAMPLES], received: u64, sent: u64, elapsed: Duration) -> u64 {
    let intended: u128 = profile.iter().map(|&p| u128::from(p)).sum();
    if intended == 0 || sent == 0 || elapsed.is_zero() {
        return 0;
    }
    // The share of the profile that arrived, in profile units.
    let target = (intended.saturating_mul(u128::from(received)) / u128::from(sent)).min(intended);
    let mut cut = u128::from(profile[SAMPLES - 1]);
    let mut below = 0u128;
    for (k, &p) in profile.iter().enumerate() {
        let level = (target - below) / (SAMPLES - k) as u128;
        if level <= u128::from(p) {
            cut = level;
            break;
        }
        below += u128::from(p);
    }
    // Scale from the profile's average to the average actually sent.
    let sent_bps = u128::from(sent) * 8 * 1_000_000_000 / elapsed.as_nanos();
    let bps = cut.saturating_mul(sent_bps).saturating_mul(SAMPLES as u128) / intended;
    u64::try_from(bps).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Sends at the ramp's rate for `interval` in 1 ms steps over a path
    /// that carries `path_bps` and drops the rest, then reports what
    /// arrived; returns (sent, arrived) bytes.
    fn drive(r: &mut Ramp, t: &mut Instant, interval: Duration, path_bps: u64) -> (u64, u64) {
        let end = *t + interval;
        let (mut sent, mut arrived) = (0u64, 0u64);
        while *t < end {
            let bits = r.rate(*t) / 1000;
            sent += bits;
            arrived += bits.min(path_bps / 1000);
            *t += ms(1);
        }
        r.report(arrived / 8, sent / 8, *t);
        (sent / 8, arrived / 8)
    }

    fn within(got: u64, want: u64, pct: u64) -> bool {
        got.abs_diff(want) * 100 <= want * pct
    }

    const FAST_PATH: u64 = 100_000_000_000;

    #[test]
    fn growth_is_in_sixteenths_of_a_doubling() {
        assert_eq!(grown(1000, Duration::ZERO, SEC), 1000);
        assert_eq!(grown(1000, SEC, SEC), 2000);
        assert_eq!(grown(1000, SEC * 3, SEC), 8000);
        assert_eq!(grown(65536, SEC / 16, SEC), 68438);
        assert_eq!(grown(u64::MAX, SEC * 100, SEC), u64::MAX, "saturates");
    }

    #[test]
    fn it_starts_low_and_grows_sixteenfold_in_the_first_second() {
        let t0 = Instant::now();
        let mut r = Ramp::new(0, 0, t0);
        assert_eq!(r.rate(t0), START_BPS);
        assert_eq!(r.rate(t0 + ms(250)), 2 * START_BPS);
        assert_eq!(r.rate(t0 + SEC), 16 * START_BPS);
        assert_eq!(r.rate(t0 + ms(1400)), 16 * START_BPS, "no further before a report");
        // About 54 Mbit go out in the first second, not a line rate.
        let (sent, _) = drive(&mut r, &mut t0.clone(), SEC, FAST_PATH);
        assert!(within(sent * 8, 54_000_000, 3), "{sent}");
    }

    #[test]
    fn silence_brings_the_rate_down_to_the_start() {
        let t0 = Instant::now();
        let r = Ramp::new(0, 0, t0);
        assert_eq!(r.rate(t0 + ms(1499)), 16 * START_BPS);
        assert_eq!(r.rate(t0 + ms(1500)), START_BPS);
        assert_eq!(r.rate(t0 + SEC * 15), START_BPS);
        // Also for a rate the test asked for.
        let asked = Ramp::new(500_000_000, 0, t0);
        assert_eq!(asked.rate(t0 + SEC), 500_000_000);
        assert_eq!(asked.rate(t0 + SEC * 2), START_BPS);
    }

    #[test]
    fn kept_up_reports_double_the_rate_each_interval() {
        let t0 = Instant::now();
        let mut r = Ramp::new(0, 0, t0);
        let mut t = t0;
        for i in 1..=3 {
            let peak = r.rate(t + SEC - ms(1));
            drive(&mut r, &mut t, SEC, FAST_PATH);
            // It goes on from the highest rate that got through and doubles
            // within a quarter of the measured interval, no further.
            assert!(within(r.rate(t), peak, 2), "report {i}: {} vs {peak}", r.rate(t));
            assert!(within(r.rate(t + ms(250)), 2 * peak, 2));
            assert!(within(r.rate(t + ms(900)), 2 * peak, 2));
        }
        assert!(r.rate(t + ms(900)) > 1_000_000_000);
    }

    #[test]
    fn a_ramp_into_a_bottleneck_holds_five_percent_above_it() {
        for path in [10_000_000, 100_000_000, 1_000_000_000] {
            let t0 = Instant::now();
            let mut r = Ramp::new(0, 0, t0);
            let mut t = t0;
            let mut held = false;
            for _ in 0..8 {
                drive(&mut r, &mut t, SEC, path);
                held |= within(r.rate(t), path * 105 / 100, 3);
            }
            assert!(held, "{path}: ends at {}", r.rate(t));
            assert!(within(r.rate(t), path * 105 / 100, 1), "{path}: {}", r.rate(t));
            assert_eq!(r.rate(t + ms(900)), r.rate(t), "held, not growing");
        }
    }

    #[test]
    fn the_first_seconds_bottleneck_is_found_from_the_ramp_not_the_average() {
        let t0 = Instant::now();
        let mut r = Ramp::new(0, 0, t0);
        let mut t = t0;
        let (sent, arrived) = drive(&mut r, &mut t, SEC, 100_000_000);
        assert!(arrived < sent * 95 / 100, "the ramp passed the bottleneck");
        assert!(arrived * 8 < 60_000_000, "the average received is about half of it");
        assert!(within(r.rate(t), 105_000_000, 3), "{}", r.rate(t));
    }

    #[test]
    fn the_interval_is_measured_not_assumed() {
        let t0 = Instant::now();
        let mut r = Ramp::new(0, 0, t0);
        // RouterOS with interval=200ms over a 50 Mbit/s path.
        let mut t = t0;
        for _ in 0..6 {
            drive(&mut r, &mut t, ms(200), 50_000_000);
        }
        assert!(within(r.rate(t), 52_500_000, 2), "{}", r.rate(t));
        // Silence is judged by the measured interval too (half a second at least).
        assert_eq!(r.rate(t + ms(699)), r.rate(t));
        assert_eq!(r.rate(t + ms(700)), START_BPS);
        // A doubling takes a quarter of the measured interval.
        let mut fast = Ramp::new(0, 0, t0);
        let mut t = t0;
        drive(&mut fast, &mut t, ms(200), FAST_PATH);
        let from = fast.rate(t);
        assert!(within(fast.rate(t + ms(50)), 2 * from, 2));
    }

    #[test]
    fn after_falling_short_growth_is_gentler_and_waits_for_two_intervals() {
        let t0 = Instant::now();
        let mut r = Ramp::new(0, 0, t0);
        let mut t = t0;
        drive(&mut r, &mut t, SEC, 50_000_000);
        drive(&mut r, &mut t, SEC, 50_000_000);
        let held = r.rate(t);
        assert!(within(held, 52_500_000, 1), "{held}");
        // The path got faster. One interval that keeps up is not enough...
        drive(&mut r, &mut t, SEC, FAST_PATH);
        let once = r.rate(t + ms(900));
        assert!(once <= held * 105 / 100, "{once} from {held}");
        // ...two are, and then it grows by half.
        drive(&mut r, &mut t, SEC, FAST_PATH);
        assert!(within(r.rate(t), once, 1));
        assert!(within(r.rate(t + ms(900)), once * 3 / 2, 2), "{} from {once}", r.rate(t + ms(900)));
    }

    #[test]
    fn a_late_report_barely_moves_a_held_rate() {
        let t0 = Instant::now();
        let mut r = Ramp::new(0, 0, t0);
        let mut t = t0;
        for _ in 0..4 {
            drive(&mut r, &mut t, SEC, 100_000_000);
        }
        let held = r.rate(t);
        assert!(within(held, 105_000_000, 1), "{held}");
        // The peer counts a fifth of an interval late: one report short, the next long.
        let per_second = 100_000_000 / 8;
        let report = |r: &mut Ramp, t: &mut Instant, arrived: u64| {
            let sent = r.rate(*t) / 8;
            *t += SEC;
            r.report(arrived, sent, *t);
        };
        report(&mut r, &mut t, per_second * 8 / 10);
        assert!(within(r.rate(t), held * 9 / 10, 1), "half the shortfall: {}", r.rate(t));
        report(&mut r, &mut t, per_second * 12 / 10);
        assert!(within(r.rate(t), held, 1), "back: {}", r.rate(t));
        assert_eq!(r.rate(t + ms(900)), r.rate(t), "and the long interval was not room to grow into");
        // Two short intervals are a slower path.
        report(&mut r, &mut t, per_second / 2);
        report(&mut r, &mut t, per_second / 2);
        assert!(within(r.rate(t), 52_500_000, 1), "{}", r.rate(t));
    }

    #[test]
    fn a_report_of_nothing_falls_back_and_restarts() {
        let t0 = Instant::now();
        let mut r = Ramp::new(0, 0, t0);
        let mut t = t0;
        drive(&mut r, &mut t, SEC, 50_000_000);
        assert!(r.rate(t) > START_BPS);
        drive(&mut r, &mut t, SEC, 0);
        assert_eq!(r.rate(t), START_BPS);
        assert_eq!(r.rate(t + ms(900)), START_BPS, "no growth on nothing");
        // When data arrives again, it doubles again (not the gentler growth).
        drive(&mut r, &mut t, SEC, FAST_PATH);
        assert!(within(r.rate(t + ms(900)), 2 * START_BPS, 2), "{}", r.rate(t + ms(900)));
    }

    #[test]
    fn nothing_sent_teaches_nothing() {
        let t0 = Instant::now();
        let mut r = Ramp::new(0, 0, t0);
        r.report(0, 0, t0 + ms(500));
        assert_eq!(r.rate(t0 + ms(500)), Ramp::new(0, 0, t0).rate(t0 + ms(500)));
    }

    #[test]
    fn reports_close_together_count_as_one() {
        let t0 = Instant::now();
        let mut r = Ramp::new(0, 0, t0);
        let mut t = t0;
        let (sent, _) = drive(&mut r, &mut t, SEC, FAST_PATH);
        let after_first = r.clone();
        r.report(sent, 0, t + ms(2));
        assert_eq!(r.rate(t + ms(2)), after_first.rate(t + ms(2)));
        assert_eq!(r.carried, sent, "kept for the next report");
    }

    #[test]
    fn asked_rates_and_operator_caps_are_hard_caps() {
        let t0 = Instant::now();
        let mut r = Ramp::new(10_000_000, 0, t0);
        let mut t = t0;
        assert_eq!(r.rate(t0), 10_000_000, "starts at the asked rate");
        drive(&mut r, &mut t, SEC, FAST_PATH);
        assert_eq!(r.rate(t + ms(900)), 10_000_000, "kept up: stays at the asked rate");
        drive(&mut r, &mut t, SEC, 800_000);
        drive(&mut r, &mut t, SEC, 800_000);
        assert!(within(r.rate(t), 840_000, 1), "adapts below it: {}", r.rate(t));
        let mut op = Ramp::new(0, 5_000_000, t0);
        assert_eq!(op.rate(t0 + SEC), 5_000_000, "the operator's cap bounds the ramp");
        op.set_limit(2_000_000);
        assert_eq!(op.rate(t0 + SEC), 2_000_000);
        op.set_limit(0);
        assert_eq!(op.rate(t0 + SEC), 16 * START_BPS);
        let mut both = Ramp::new(8_000_000, 0, t0);
        both.set_limit(20_000_000);
        assert_eq!(both.cap(), 8_000_000, "a looser operator cap does not lift the asked rate");
    }
}

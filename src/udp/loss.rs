//! Loss accounting from UDP sequence numbers: gaps are losses, a late
//! datagram that fills a gap takes its loss back, duplicates count once.

/// How far behind the highest sequence a late datagram is still recognised.
const WINDOW: u32 = 128;
/// A forward jump this large means the sender restarted its numbering.
const RESYNC: u32 = 1 << 20;

/// What one datagram turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Newer than everything so far (possibly after a gap).
    New,
    /// Older than the newest, filling a gap counted as lost.
    Late,
    /// Seen before.
    Duplicate,
    /// Too old to tell; ignored.
    Stale,
}

/// Sequence state of one sender.
#[derive(Debug, Clone, Default)]
pub struct LossTracker {
    started: bool,
    /// Highest sequence number seen.
    highest: u32,
    /// Bit i set: `highest - i` was received.
    window: u128,
    /// Sequence numbers from the first (or restart) to `highest`; only a
    /// late datagram inside this span can fill a gap that was counted.
    span: u32,
    /// Datagrams missing (gaps not filled later).
    pub lost: u64,
    /// Distinct datagrams received.
    pub packets: u64,
    pub duplicates: u64,
    pub reordered: u64,
}

impl LossTracker {
    pub fn record(&mut self, seq: u32) -> Arrival {
        if !self.started {
            self.started = true;
            self.highest = seq;
            self.window = 1;
            self.span = 1;
            self.packets += 1;
            return Arrival::New;
        }
        let ahead = seq.wrapping_sub(self.highest);
        let behind = self.highest.wrapping_sub(seq);
        if ahead == 0 {
            self.duplicates += 1;
            Arrival::Duplicate
        } else if ahead < RESYNC {
            self.lost += u64::from(ahead - 1);
            self.window = if ahead >= WINDOW { 1 } else { (self.window << ahead) | 1 };
            self.highest = seq;
            self.span = self.span.saturating_add(ahead);
            self.packets += 1;
            Arrival::New
        } else if behind < WINDOW && behind < self.span {
            let bit = 1u128 << behind;
            if self.window & bit != 0 {
                self.duplicates += 1;
                Arrival::Duplicate
            } else {
                self.window |= bit;
                self.lost = self.lost.saturating_sub(1);
                self.reordered += 1;
                self.packets += 1;
                Arrival::Late
            }
        } else if behind < RESYNC {
            Arrival::Stale
        } else {
            // Far away in both directions: a restarted sender.
            self.highest = seq;
            self.window = 1;
            self.span = 1;
            self.packets += 1;
            Arrival::New
        }
    }
}

/// Trackers per source port, since RouterOS sends a multi-connection UDP
/// test from several ports; bounded so a spoofing peer cannot grow it.
#[derive(Debug, Default)]
pub struct PerSource {
    by_port: Vec<(u16, LossTracker)>,
    shared: LossTracker,
}

const MAX_SOURCES: usize = 32;

impl PerSource {
    pub fn record(&mut self, port: u16, seq: u32) -> Arrival {
        if let Some((_, t)) = self.by_port.iter_mut().find(|(p, _)| *p == port) {
            return t.record(seq);
        }
        if self.by_port.len() < MAX_SOURCES {
            let mut t = LossTracker::default();
            let a = t.record(seq);
            self.by_port.push((port, t));
            return a;
        }
        self.shared.record(seq)
    }

    /// Totals over all sources: (lost, packets).
    pub fn totals(&self) -> (u64, u64) {
        self.by_port.iter().map(|(_, t)| t).chain([&self.shared]).fold((0, 0), |(l, p), t| (l + t.lost, p + t.packets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seqs: &[u32]) -> LossTracker {
        let mut t = LossTracker::default();
        for &s in seqs {
            t.record(s);
        }
        t
    }

    #[test]
    fn in_order_from_any_start_has_no_loss() {
        for start in [0u32, 1, 1000, u32::MAX - 3] {
            let seqs: Vec<u32> = (0..10).map(|i| start.wrapping_add(i)).collect();
            let t = run(&seqs);
            assert_eq!((t.lost, t.packets), (0, 10), "start {start}");
        }
    }

    #[test]
    fn gaps_are_lost_and_late_arrivals_take_it_back() {
        let t = run(&[1, 2, 5, 6]);
        assert_eq!((t.lost, t.packets), (2, 4));
        let t = run(&[1, 2, 5, 3, 6, 4]);
        assert_eq!((t.lost, t.packets, t.reordered), (0, 6, 2));
    }

    #[test]
    fn datagrams_older_than_the_first_take_no_loss_back() {
        let mut t = run(&[10, 12]);
        assert_eq!(t.lost, 1);
        assert_eq!(t.record(9), Arrival::Stale);
        assert_eq!(t.lost, 1, "11 is still missing");
        assert_eq!(t.record(11), Arrival::Late);
        assert_eq!(t.lost, 0);
    }

    #[test]
    fn duplicates_count_once() {
        let t = run(&[1, 2, 2, 3, 1, 3]);
        assert_eq!((t.lost, t.packets, t.duplicates), (0, 3, 3));
    }

    #[test]
    fn every_nth_dropped() {
        let seqs: Vec<u32> = (0..1000).filter(|s| s % 10 != 0 || *s == 0).collect();
        let t = run(&seqs);
        assert_eq!(t.lost, 99);
        assert_eq!(t.packets, 901);
    }

    #[test]
    fn stale_and_restarted_senders() {
        let mut t = run(&[1000, 1001]);
        assert_eq!(t.record(500), Arrival::Stale);
        assert_eq!(t.lost, 0);
        // A sender that restarts from 0 much later is not a 4-billion loss.
        let mut t = run(&[3_000_000_000, 3_000_000_001]);
        assert_eq!(t.record(0), Arrival::New);
        assert_eq!(t.record(1), Arrival::New);
        assert_eq!(t.lost, 0);
    }

    #[test]
    fn sources_are_tracked_separately_and_bounded() {
        let mut p = PerSource::default();
        for s in 0..10 {
            p.record(3000, s);
            p.record(3001, s * 2);
        }
        assert_eq!(p.totals(), (9, 20));
        for port in 0..100u16 {
            p.record(port, 7);
        }
        assert_eq!(p.by_port.len(), MAX_SOURCES);
    }
}

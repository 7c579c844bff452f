//! Fuzz target `udp_accounting`: UDP loss accounting
//! (`btestd::udp::loss::{LossTracker, PerSource}`) fed (source port,
//! sequence number) pairs that a peer, or anyone spoofing it, controls.
//!
//! Input layout: `mode, ...`. Mode bit 0 clear is "narrow": a 4-byte base,
//! then 3-byte records `port, offset_lo, offset_hi` with the sequence number
//! `base + (offset & 0x3ff)` (wrapping), so a stream never resyncs and exact
//! answers are known. Mode bit 0 set is "wide": 5-byte records `port,
//! seq(4, LE)` anywhere in the 32-bit space, resyncs and wrap-around included.
//!
//! Properties, for `PerSource` and for one `LossTracker` per source mirrored
//! beside it (first 32 ports, then one shared tracker, as documented):
//! - no panic or overflow, and `PerSource::record` answers what the
//!   mirrored tracker answers; `totals()` is the sum of the mirrors;
//! - each arrival is classified as documented (relative to the highest
//!   sequence h: ahead by 1..2^20 is New, equal or already received within
//!   128 behind is Duplicate, not yet received within 128 behind is Late —
//!   both only within the span from the stream's first (or restart)
//!   datagram to h, since older ones never opened a gap — other numbers up
//!   to 2^20 behind are Stale, farther in both directions is a restart);
//! - `packets` = New + Late, `duplicates`, `reordered` = Late;
//!   `lost` lies between (gaps opened − Late arrivals) and gaps opened;
//! - narrow mode: a sequence number is counted at most once ever, and
//!   `lost` is exactly the number of sequence numbers missing between the
//!   first and the highest.
#![no_main]

use btestd::udp::loss::{Arrival, LossTracker, PerSource};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;

const WINDOW: u32 = 128;
const RESYNC: u32 = 1 << 20;
const MAX_SOURCES: usize = 32;

/// The documented classification, with explicit sets instead of a bitmap.
#[derive(Default)]
struct Model {
    started: bool,
    highest: u32,
    /// Received sequence numbers no more than WINDOW-1 behind `highest`.
    recent: BTreeSet<u32>,
    /// Every sequence number ever counted (New or Late), for narrow mode.
    ever: BTreeSet<u32>,
    first: u32,
    /// Sequence numbers from the first (or restart) to `highest`.
    span: u32,
    gaps: u64,
    new: u64,
    late: u64,
    duplicates: u64,
    /// Whether the stream restarted (wide mode only).
    resynced: bool,
    /// Narrow mode: the base, and the lowest offset from it ever counted.
    base: Option<u32>,
    lowest: u64,
}

impl Model {
    fn new(base: Option<u32>) -> Model {
        Model { base, lowest: u64::MAX, ..Model::default() }
    }

    fn classify(&mut self, seq: u32) -> Arrival {
        if !self.started {
            self.started = true;
            self.first = seq;
            self.span = 1;
            self.accept_new(seq);
            return Arrival::New;
        }
        let ahead = seq.wrapping_sub(self.highest);
        let behind = self.highest.wrapping_sub(seq);
        if ahead == 0 {
            self.duplicates += 1;
            Arrival::Duplicate
        } else if ahead < RESYNC {
            self.gaps += u64::from(ahead - 1);
            self.span = self.span.saturating_add(ahead);
            self.accept_new(seq);
            Arrival::New
        } else if behind < WINDOW && behind < self.span {
            if self.recent.insert(seq) {
                self.late += 1;
                self.count(seq);
                Arrival::Late
            } else {
                self.duplicates += 1;
                Arrival::Duplicate
            }
        } else if behind < RESYNC {
            Arrival::Stale
        } else {
            self.resynced = true;
            self.span = 1;
            self.recent.clear();
            self.accept_new(seq);
            Arrival::New
        }
    }

    fn accept_new(&mut self, seq: u32) {
        self.highest = seq;
        self.new += 1;
        self.recent.insert(seq);
        self.count(seq);
        self.recent.retain(|&s| seq.wrapping_sub(s) < WINDOW);
    }

    fn count(&mut self, seq: u32) {
        if let Some(base) = self.base {
            assert!(self.ever.insert(seq), "sequence number {seq} counted a second time");
            self.lowest = self.lowest.min(u64::from(seq.wrapping_sub(base)));
        }
    }

    fn check(&self, t: &LossTracker) {
        assert_eq!(t.packets, self.new + self.late, "packets");
        assert_eq!(t.duplicates, self.duplicates, "duplicates");
        assert_eq!(t.reordered, self.late, "reordered");
        assert!(t.lost <= self.gaps, "lost {} exceeds the {} gaps opened", t.lost, self.gaps);
        assert!(
            t.lost >= self.gaps.saturating_sub(self.late),
            "lost {} below gaps {} - late {}",
            t.lost,
            self.gaps,
            self.late
        );
        let Some(base) = self.base else { return };
        if !self.started {
            return;
        }
        assert!(!self.resynced, "a narrow stream resynced");
        assert_eq!(t.packets, self.ever.len() as u64, "a sequence number was counted twice");
        // Offsets from the base: narrow sequence numbers span < 1024.
        let off = |s: u32| u64::from(s.wrapping_sub(base));
        let (first, highest) = (off(self.first), off(self.highest));
        assert_eq!(self.lowest, first, "a sequence number older than the first was counted");
        let missing = highest - first + 1 - t.packets;
        assert_eq!(t.lost, missing, "lost must equal the sequence numbers missing in first..=highest");
    }
}

struct Source {
    port: Option<u16>,
    tracker: LossTracker,
    model: Model,
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let narrow = mode & 1 == 0;
    let (base, records, width) = if narrow {
        let Some((b, r)) = rest.split_first_chunk::<4>() else { return };
        (Some(u32::from_le_bytes(*b)), r, 3)
    } else {
        (None, rest, 5)
    };

    let mut per_source = PerSource::default();
    // Mirrors: one per port for the first MAX_SOURCES ports, then `shared`.
    let mut sources: Vec<Source> = Vec::new();
    let mut shared = Source { port: None, tracker: LossTracker::default(), model: Model::new(base) };
    for rec in records.chunks_exact(width) {
        let port = u16::from(rec[0]);
        let seq = match base {
            Some(base) => base.wrapping_add(u32::from(u16::from_le_bytes([rec[1], rec[2]]) & 0x3ff)),
            None => u32::from_le_bytes([rec[1], rec[2], rec[3], rec[4]]),
        };
        let got = per_source.record(port, seq);
        let src = match sources.iter().position(|s| s.port == Some(port)) {
            Some(i) => &mut sources[i],
            None if sources.len() < MAX_SOURCES => {
                sources.push(Source { port: Some(port), tracker: LossTracker::default(), model: Model::new(base) });
                sources.last_mut().expect("just pushed")
            }
            None => &mut shared,
        };
        let mirrored = src.tracker.record(seq);
        let expected = src.model.classify(seq);
        assert_eq!(got, mirrored, "PerSource disagrees with its tracker for port {port}, seq {seq}");
        assert_eq!(mirrored, expected, "port {port}: seq {seq} after highest {}", src.model.highest);
        src.model.check(&src.tracker);
    }
    let mut totals = (0u64, 0u64);
    for s in sources.iter().chain([&shared]) {
        s.model.check(&s.tracker);
        totals = (totals.0 + s.tracker.lost, totals.1 + s.tracker.packets);
    }
    assert_eq!(per_source.totals(), totals);
});

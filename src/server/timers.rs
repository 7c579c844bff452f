//! Deadlines of the event loop. The earliest deadline is the poll timeout.
//!
//! Each owner (a connection or session) has at most one live deadline;
//! rescheduling pushes a new heap entry and older entries are recognised as
//! stale when they surface, which keeps every operation O(log n).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Who a deadline belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Owner {
    /// A connection still in the handshake.
    Conn(usize),
    Session(usize),
    /// Once-a-second housekeeping (CPU sample, reloads).
    Tick,
    /// Charging running tests to budgets and usage.
    Account,
}

#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, Owner)>>,
}

impl Timers {
    pub fn new() -> Timers {
        Timers::default()
    }

    /// Arms `owner` at `at`; `armed` is the owner's record of its live
    /// deadline, so that an earlier live deadline is not duplicated.
    pub fn schedule(&mut self, owner: Owner, at: Instant, armed: &mut Option<Instant>) {
        if armed.is_some_and(|t| t <= at) {
            return;
        }
        *armed = Some(at);
        self.heap.push(Reverse((at, owner)));
    }

    /// The earliest deadline, stale or not (a stale one only costs a wakeup).
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((t, _))| *t)
    }

    /// Pops the next entry due at or before `now`. The caller checks it
    /// against the owner's armed deadline to drop stale entries.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, Owner)> {
        match self.heap.peek() {
            Some(Reverse((t, _))) if *t <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// Whether a popped entry is the owner's live deadline; clears it if so.
pub fn take_if_live(armed: &mut Option<Instant>, at: Instant) -> bool {
    if *armed == Some(at) {
        *armed = None;
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn earliest_first_and_stale_entries_detected() {
        let t0 = Instant::now();
        let mut timers = Timers::new();
        let mut armed_a = None;
        let mut armed_b = None;
        timers.schedule(Owner::Session(1), t0 + Duration::from_secs(5), &mut armed_a);
        timers.schedule(Owner::Session(2), t0 + Duration::from_secs(2), &mut armed_b);
        // Moving A earlier leaves a stale entry at +5 s.
        armed_a = None;
        timers.schedule(Owner::Session(1), t0 + Duration::from_secs(1), &mut armed_a);
        // A later deadline than the live one is not pushed.
        timers.schedule(Owner::Session(1), t0 + Duration::from_secs(3), &mut armed_a);
        assert_eq!(timers.len(), 3);
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(1)));

        let now = t0 + Duration::from_secs(10);
        let (at, owner) = timers.pop_due(now).unwrap();
        assert_eq!(owner, Owner::Session(1));
        assert!(take_if_live(&mut armed_a, at));
        let (at, owner) = timers.pop_due(now).unwrap();
        assert_eq!(owner, Owner::Session(2));
        assert!(take_if_live(&mut armed_b, at));
        let (at, owner) = timers.pop_due(now).unwrap();
        assert_eq!(owner, Owner::Session(1));
        assert!(!take_if_live(&mut armed_a, at), "stale entry");
        assert!(timers.pop_due(now).is_none());
    }

    #[test]
    fn nothing_due_before_deadline() {
        let t0 = Instant::now();
        let mut timers = Timers::new();
        let mut armed = None;
        timers.schedule(Owner::Tick, t0 + Duration::from_millis(10), &mut armed);
        assert!(timers.pop_due(t0).is_none());
    }
}

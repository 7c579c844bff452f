//! What the loop counts about itself for `btestd status` and the metrics:
//! refusals by reason, failed logins and bans, ended tests, and each test's
//! rate over the last second; and the [`Status`] snapshot built from them.

use super::Server;
use super::admission::{REASONS, Refusal};
use super::session::{EndReason, Session};
use super::slab::Slab;
use crate::observe::status::Ended;
use crate::observe::{LiveTest, Status};
#[cfg(feature = "web")]
use crate::proto::{Direction, Protocol};
use crate::quota::period::unix_secs;
#[cfg(feature = "web")]
use std::collections::VecDeque;
#[cfg(feature = "web")]
use std::net::IpAddr;
use std::time::{Instant, SystemTime};

/// Seconds of total throughput kept for the web page's chart.
#[cfg(feature = "web")]
const HISTORY: usize = 300;
/// Ended tests kept for the web page.
#[cfg(feature = "web")]
const RECENT: usize = 32;

/// A test that ended, as the web page lists it.
#[cfg(feature = "web")]
pub(super) struct Recent {
    pub ended_unix: i64,
    pub peer: IpAddr,
    pub user: Option<String>,
    pub proto: Protocol,
    pub direction: Direction,
    pub secs: u64,
    pub rx: u64,
    pub tx: u64,
    pub result: &'static str,
}

/// Counters since the start; one owner, the loop.
pub(super) struct Counters {
    started: Instant,
    refused: [u64; REASONS.len()],
    auth_failures: u64,
    bans: u64,
    ended: Vec<Ended>,
    /// Bytes (received, transmitted) of the tests that ended.
    ended_bytes: (u64, u64),
    last_tick: Instant,
    /// Total (received, transmitted) bits/s of each of the last seconds, oldest first.
    #[cfg(feature = "web")]
    history: VecDeque<(u64, u64)>,
    #[cfg(feature = "web")]
    recent: VecDeque<Recent>,
}

impl Counters {
    pub(super) fn new(now: Instant) -> Counters {
        Counters {
            started: now,
            refused: [0; REASONS.len()],
            auth_failures: 0,
            bans: 0,
            ended: Vec::new(),
            ended_bytes: (0, 0),
            last_tick: now,
            #[cfg(feature = "web")]
            history: VecDeque::with_capacity(HISTORY),
            #[cfg(feature = "web")]
            recent: VecDeque::with_capacity(RECENT),
        }
    }

    pub(super) fn refused(&mut self, why: &Refusal) {
        self.refused[why.reason()] += 1;
    }

    /// A failed login (or wrong join token); `banned` when it started a ban.
    pub(super) fn auth_failed(&mut self, banned: bool) {
        self.auth_failures += 1;
        self.bans += u64::from(banned);
    }

    /// A session ended; `bytes` is what it moved, (received, transmitted).
    pub(super) fn ended(&mut self, s: &Session, reason: &EndReason, bytes: (u64, u64)) {
        #[cfg(feature = "web")]
        if self.recent.len() >= RECENT {
            self.recent.pop_front();
        }
        #[cfg(feature = "web")]
        self.recent.push_back(Recent {
            ended_unix: unix_secs(SystemTime::now()),
            peer: s.peer().ip(),
            user: s.user().map(str::to_string),
            proto: s.cmd().proto,
            direction: s.cmd().direction,
            secs: s.since().map_or(0, |t| t.elapsed().as_secs()),
            rx: bytes.0,
            tx: bytes.1,
            result: reason.kind(),
        });
        self.ended_bytes = (self.ended_bytes.0 + bytes.0, self.ended_bytes.1 + bytes.1);
        let (proto, direction, result) = (s.cmd().proto, s.cmd().direction, reason.kind());
        match self.ended.iter_mut().find(|e| (e.proto, e.direction, e.result) == (proto, direction, result)) {
            Some(e) => e.count += 1,
            None => self.ended.push(Ended { proto, direction, result, count: 1 }),
        }
    }

    /// Once a second: each test's rate since the last tick.
    pub(super) fn tick(&mut self, sessions: &mut Slab<Session>, now: Instant) {
        let ms = now.saturating_duration_since(self.last_tick).as_millis() as u64;
        self.last_tick = now;
        let mut total = (0, 0);
        for (_, s) in sessions.iter_mut() {
            let (rx, tx) = s.sample_rate(ms);
            total = (total.0 + rx, total.1 + tx);
        }
        #[cfg(feature = "web")]
        {
            if self.history.len() >= HISTORY {
                self.history.pop_front();
            }
            self.history.push_back(total);
        }
        let _ = total;
    }

    /// Total throughput of the last seconds, oldest first.
    #[cfg(feature = "web")]
    pub(super) fn history(&self) -> impl Iterator<Item = &(u64, u64)> {
        self.history.iter()
    }

    /// The tests that ended last, newest first.
    #[cfg(feature = "web")]
    pub(super) fn recent(&self) -> impl Iterator<Item = &Recent> {
        self.recent.iter().rev()
    }
}

impl Server {
    /// The snapshot the control channel and the metrics report.
    pub(super) fn status(&mut self, now: Instant) -> Status {
        let wall = SystemTime::now();
        let c = &self.counters;
        let mut tests = Vec::with_capacity(self.sessions.len());
        let mut live_bytes = (0, 0);
        for (_, s) in self.sessions.iter() {
            let (rx, tx) = s.bytes();
            live_bytes = (live_bytes.0 + rx, live_bytes.1 + tx);
            let bps = s.rate();
            let (user_left, address_left) = match self.acct.as_mut() {
                Some(a) => a.ledger.left(s.user(), s.peer().ip(), wall),
                None => (None, None),
            };
            tests.push(LiveTest {
                id: s.id(),
                peer: s.peer(),
                user: s.user().map(str::to_string),
                proto: s.cmd().proto,
                direction: s.cmd().direction,
                phase: s.phase().name(),
                connections: s.conn_count(),
                connections_wanted: s.cmd().connections(),
                started_unix: unix_secs(s.started_wall()),
                elapsed_secs: s.since().map_or(0, |t| now.saturating_duration_since(t).as_secs()),
                rx_bps: bps.0,
                tx_bps: bps.1,
                rx_bytes: rx,
                tx_bytes: tx,
                user_left,
                address_left,
            });
        }
        let hs = self.guard.handshakes();
        Status {
            version: env!("CARGO_PKG_VERSION"),
            now_unix: unix_secs(wall),
            uptime_secs: now.saturating_duration_since(c.started).as_secs(),
            handshakes_pending: hs.regular + hs.join,
            tests,
            refused: REASONS.iter().copied().zip(c.refused).collect(),
            auth_failures: c.auth_failures,
            bans_started: c.bans,
            bans_active: self.guard.bans_active(now),
            ended: c.ended.clone(),
            bytes_total: (c.ended_bytes.0 + live_bytes.0, c.ended_bytes.1 + live_bytes.1),
            resident_bytes: self.vitals.mem_now,
        }
    }
}

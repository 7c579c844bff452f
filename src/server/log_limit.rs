//! Log lines a peer can cause at will (refusals, malformed input) are
//! rate-limited, so an attacker cannot flood the log or the flash it is on.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Log lines peers can cause at will (refusals, failed logins, malformed
/// or abandoned handshakes): a few per address each second and a cap in
/// all, then, once a second, a count of what was left out. One noisy
/// address cannot use up the lines other addresses' events need.
#[derive(Default)]
pub struct PeerLog {
    second: Option<Instant>,
    total: u32,
    /// Lines this second per address (IPv6 by /64, as bans count them);
    /// a short list, as only a few addresses can be noisy within a second
    /// before the total applies anyway.
    per_address: Vec<(IpAddr, u32)>,
    suppressed: u32,
    /// Addresses that had lines suppressed this second.
    noisy: u32,
}

impl PeerLog {
    pub const PER_ADDRESS: u32 = 5;
    pub const TOTAL: u32 = 20;
    /// Addresses counted separately in one second; beyond, only the total applies.
    const MAX_TRACKED: usize = 64;

    /// Whether a line about `ip` may be written now; counts those that may not.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        self.tick(now);
        let key = super::guard::address_key(ip);
        // Past the tracking bound only the total applies.
        let tracked = self.per_address.len();
        let mine = match self.per_address.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => {
                *n = n.saturating_add(1);
                *n
            }
            None if tracked < Self::MAX_TRACKED => {
                self.per_address.push((key, 1));
                1
            }
            None => 0,
        };
        if mine > Self::PER_ADDRESS || self.total >= Self::TOTAL {
            if mine == Self::PER_ADDRESS + 1 {
                self.noisy += 1;
            }
            self.suppressed += 1;
            return false;
        }
        self.total += 1;
        true
    }

    /// Starts a new second when one has passed, reporting what the last
    /// one suppressed. Called for every line and by the loop's tick.
    pub fn tick(&mut self, now: Instant) {
        if self.second.is_some_and(|s| now.duration_since(s) < Duration::from_secs(1)) {
            return;
        }
        if self.suppressed > 0 {
            log::warn!(
                "{} similar log lines suppressed in the last second ({} addresses over their {} lines)",
                self.suppressed,
                self.noisy,
                Self::PER_ADDRESS
            );
        }
        self.second = Some(now);
        self.total = 0;
        self.suppressed = 0;
        self.noisy = 0;
        self.per_address.clear();
    }

    pub fn warn(&mut self, ip: IpAddr, now: Instant, msg: fmt::Arguments<'_>) {
        if self.allow(ip, now) {
            log::warn!("{msg}");
        }
    }

    pub fn info(&mut self, ip: IpAddr, now: Instant, msg: fmt::Arguments<'_>) {
        if self.allow(ip, now) {
            log::info!("{msg}");
        }
    }
}

/// An episode of accepts failing for lack of file descriptors: one warning
/// when it starts and one when it ends, not one per attempt (each new
/// connection is an attempt).
#[derive(Default)]
pub struct FdStarved {
    episode: Option<Episode>,
}

struct Episode {
    refused: u64,
    /// An accept failed since the last tick.
    this_second: bool,
}

impl FdStarved {
    /// An accept failed with `e`.
    pub fn refused(&mut self, e: &std::io::Error) {
        let ep = self.episode.get_or_insert_with(|| {
            log::warn!(
                "cannot accept connections: {e}; raise the open-file limit (ulimit -n) or lower --max-sessions; \
                 running tests go on"
            );
            Episode { refused: 0, this_second: true }
        });
        ep.refused += 1;
        ep.this_second = true;
    }

    /// Called each tick: a whole second without a refused accept ends the episode.
    pub fn next_second(&mut self) {
        match &mut self.episode {
            Some(ep) if ep.this_second => ep.this_second = false,
            Some(ep) => {
                log::info!(
                    "accepting connections again, after {} attempts refused for lack of descriptors",
                    ep.refused
                );
                self.episode = None;
            }
            None => {}
        }
    }

    pub fn is_starved(&self) -> bool {
        self.episode.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_few_lines_per_address_and_a_cap_in_all() {
        let (t0, mut l) = (Instant::now(), PeerLog::default());
        let noisy = (0..100).filter(|_| l.allow(ip("192.0.2.1"), t0)).count();
        assert_eq!(noisy, PeerLog::PER_ADDRESS as usize);
        assert!(l.allow(ip("192.0.2.2"), t0), "another address still gets its lines");
        let others = (3..=50).filter(|i| l.allow(ip(&format!("192.0.2.{i}")), t0)).count();
        assert_eq!(others as u32 + PeerLog::PER_ADDRESS + 1, PeerLog::TOTAL, "the total caps all addresses");
        assert_eq!(l.noisy, 1);
        l.tick(t0 + Duration::from_secs(1));
        assert_eq!(l.suppressed, 0, "a new second starts afresh");
        assert!(l.allow(ip("192.0.2.1"), t0 + Duration::from_secs(1)));
    }

    #[test]
    fn ipv6_hosts_of_one_prefix_share_their_lines() {
        let (t0, mut l) = (Instant::now(), PeerLog::default());
        let n = (1..=20).filter(|i| l.allow(ip(&format!("2001:db8:1:2::{i:x}")), t0)).count();
        assert_eq!(n, PeerLog::PER_ADDRESS as usize);
        assert!(l.allow(ip("2001:db8:1:3::1"), t0));
    }

    #[test]
    fn tracking_is_bounded_by_many_addresses() {
        let (t0, mut l) = (Instant::now(), PeerLog::default());
        for i in 0..10_000u32 {
            l.allow(IpAddr::V4(i.into()), t0);
        }
        assert!(l.per_address.len() <= PeerLog::MAX_TRACKED);
        assert_eq!(l.total, PeerLog::TOTAL);
    }

    #[test]
    fn fd_starvation_is_one_episode_until_a_quiet_second() {
        let mut s = FdStarved::default();
        let e = std::io::Error::from_raw_os_error(libc::EMFILE);
        s.refused(&e);
        s.refused(&e);
        s.next_second();
        assert!(s.is_starved(), "refused during this second: the episode goes on");
        s.refused(&e);
        s.next_second();
        assert!(s.is_starved());
        s.next_second();
        assert!(!s.is_starved(), "a whole second without refusals ends it");
    }
}

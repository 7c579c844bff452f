//! Log lines a peer can cause at will (refusals, malformed input) are
//! rate-limited, so an attacker cannot flood the log or the flash it is on.

use std::fmt;
use std::time::{Duration, Instant};

/// At most a few lines per second, then a count of what was left out.
#[derive(Default)]
pub struct Quiet {
    second: Option<Instant>,
    lines: u32,
    suppressed: u32,
}

impl Quiet {
    pub const PER_SECOND: u32 = 20;

    /// Whether a line may be written now; counts the ones that may not.
    pub fn allow(&mut self, now: Instant) -> bool {
        if self.second.is_none_or(|s| now.duration_since(s) >= Duration::from_secs(1)) {
            if self.suppressed > 0 {
                log::warn!("{} similar log lines suppressed in the last second", self.suppressed);
            }
            self.second = Some(now);
            self.lines = 0;
            self.suppressed = 0;
        }
        self.lines += 1;
        if self.lines > Self::PER_SECOND {
            self.suppressed += 1;
            return false;
        }
        true
    }

    pub fn warn(&mut self, now: Instant, msg: fmt::Arguments<'_>) {
        if self.allow(now) {
            log::warn!("{msg}");
        }
    }

    pub fn info(&mut self, now: Instant, msg: fmt::Arguments<'_>) {
        if self.allow(now) {
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

    #[test]
    fn quiet_allows_a_burst_per_second_then_resets() {
        let (t0, mut q) = (Instant::now(), Quiet::default());
        let allowed = (0..100).filter(|_| q.allow(t0)).count();
        assert_eq!(allowed, Quiet::PER_SECOND as usize);
        assert_eq!(q.suppressed, 100 - Quiet::PER_SECOND);
        assert!(q.allow(t0 + Duration::from_secs(1)), "a new second starts a new allowance");
        assert_eq!(q.suppressed, 0);
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

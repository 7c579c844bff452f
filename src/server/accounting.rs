//! Usage accounting of running tests: budgets checked in memory by the
//! ledger, records written by the store's writer thread. The loop never
//! waits on either.

use super::config::Accounting;
use super::session::Session;
use crate::quota::Exceeded;
use crate::store::SessionRecord;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

/// How often running tests are charged to budgets and usage: a budget is
/// enforced this quickly, and a crash loses at most this plus one flush.
pub const ACCOUNT_EVERY: Duration = Duration::from_millis(250);

impl Accounting {
    /// Whether `user` (None: anonymous) from `ip` has budget left for a new test.
    pub fn check(&mut self, user: Option<&str>, ip: IpAddr) -> Result<(), Exceeded> {
        self.ledger.check(user, ip, SystemTime::now())
    }

    /// Charges what the session moved since the last charge; returns the
    /// budget it exhausted, if any.
    pub fn charge(&mut self, s: &mut Session) -> Option<Exceeded> {
        let (rx, tx) = s.take_uncharged();
        if rx == 0 && tx == 0 {
            return None;
        }
        let charge = self.ledger.charge(s.user(), s.peer().ip(), rx, tx, SystemTime::now());
        self.writer.record(&charge);
        charge.exceeded
    }

    /// Applies a configuration the writer reloaded from the database, if
    /// there is one: quotas to the ledger; the users are returned for the
    /// logins.
    pub fn poll_reload(&mut self) -> Option<crate::auth::Users> {
        let r = self.writer.poll_reload()?;
        self.ledger.set_config(r.quota);
        Some(r.users)
    }

    /// Queues a finished test's record.
    pub fn finished(&self, record: SessionRecord) {
        self.writer.session(record);
    }
}

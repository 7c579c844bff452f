//! Multi-connection tests still accepting secondaries, by the token their
//! primary was given.
//!
//! A secondary joins only by presenting its test's token. A connection that
//! sends a command, even byte for byte the command of a joining test, starts
//! a test of its own: two clients behind one NAT address that start the
//! same test at the same moment send identical commands, and each must get
//! its own test.

use super::session::{Phase, Session};
use super::slab::Slab;
use crate::proto::command;
use std::collections::HashMap;
use std::net::IpAddr;

#[derive(Default)]
pub struct Joining {
    /// Tokens of sessions in [`Phase::Joining`], to their session keys.
    by_token: HashMap<u16, usize>,
}

/// Whether `s` is still waiting for connections.
fn waiting(s: &Session) -> bool {
    matches!(s.phase(), Phase::Joining { .. }) && !s.is_complete()
}

impl Joining {
    /// Mints a token for session `skey` and opens it for secondaries.
    pub fn open(&mut self, skey: usize) -> u16 {
        let t = self.new_token();
        self.by_token.insert(t, skey);
        t
    }

    /// Stops accepting secondaries for `skey` under `token`.
    pub fn close(&mut self, token: u16, skey: usize) {
        if self.by_token.get(&token) == Some(&skey) {
            self.by_token.remove(&token);
        }
    }

    /// A session token that can never be mistaken for a command's first two
    /// bytes (those are 00/01), with no zero byte.
    fn new_token(&self) -> u16 {
        loop {
            let [a, b] = crate::sysrand::bytes::<2>();
            let t = u16::from_be_bytes([2 + a % 254, 1 + b % 255]);
            if !self.by_token.contains_key(&t) {
                return t;
            }
        }
    }

    /// The joining session whose token `raw` presents from `ip`, if any.
    pub fn target(&self, sessions: &Slab<Session>, ip: IpAddr, raw: &[u8; 16]) -> Option<usize> {
        let skey = *self.by_token.get(&command::join_token(raw))?;
        sessions.get(skey).is_some_and(|s| s.peer().ip() == ip && waiting(s)).then_some(skey)
    }

    /// The joining tests of clients matching `client`.
    pub fn of(&self, sessions: &Slab<Session>, client: impl Fn(IpAddr) -> bool) -> Vec<usize> {
        let waiting_of = |k: &usize| sessions.get(*k).is_some_and(|s| waiting(s) && client(s.peer().ip()));
        self.by_token.values().copied().filter(waiting_of).collect()
    }

    /// Connections that the joining tests of clients matching `client` still
    /// miss: the door's allowance for their joins.
    pub fn missing(&self, sessions: &Slab<Session>, client: impl Fn(IpAddr) -> bool) -> usize {
        let joining = self.by_token.values().filter_map(|&k| sessions.get(k));
        joining
            .filter(|s| waiting(s) && client(s.peer().ip()))
            .map(|s| s.cmd().connections().saturating_sub(s.conn_count()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacer::TokenBucket;
    use crate::proto::{Command, Direction, Protocol};
    use crate::server::session::Transport;
    use std::time::{Duration, Instant};

    fn cmd(conns: u8) -> Command {
        Command::example(Protocol::Tcp, Direction::Both, conns)
    }

    fn sessions(peer: &str, c: Command) -> (Slab<Session>, usize) {
        let now = Instant::now();
        let tcp = Transport::Tcp { pacer: TokenBucket::new(0, 1, now) };
        let mut slab = Slab::new();
        let k = slab.insert(Session::new(1, peer.parse().unwrap(), None, c, tcp, 0, Duration::from_secs(5), now));
        (slab, k)
    }

    #[test]
    fn tokens_never_look_like_a_command_and_have_no_zero_byte() {
        let mut j = Joining::default();
        for k in 0..2000 {
            let t = j.open(k).to_be_bytes();
            assert!(t[0] >= 2 && t[1] != 0, "{t:?}");
        }
        assert_eq!(j.by_token.len(), 2000, "tokens are unique");
    }

    #[test]
    fn a_secondary_joins_by_token_from_the_primarys_address_only() {
        let (slab, k) = sessions("192.0.2.1:1000", cmd(4));
        let mut j = Joining::default();
        let t = j.open(k);
        let join = command::emit_join(t);
        assert_eq!(j.target(&slab, "192.0.2.1".parse().unwrap(), &join), Some(k));
        assert_eq!(j.target(&slab, "192.0.2.2".parse().unwrap(), &join), None, "another address");
        let wrong = command::emit_join(t ^ 0x0101);
        assert_eq!(j.target(&slab, "192.0.2.1".parse().unwrap(), &wrong), None);
        j.close(t, k);
        assert_eq!(j.target(&slab, "192.0.2.1".parse().unwrap(), &join), None, "closed");
        assert!(j.by_token.is_empty());
    }

    #[test]
    fn repeating_the_primarys_command_does_not_join() {
        let (slab, k) = sessions("192.0.2.1:1000", cmd(4));
        let mut j = Joining::default();
        j.open(k);
        assert_eq!(j.target(&slab, "192.0.2.1".parse().unwrap(), &cmd(4).emit()), None);
    }

    #[test]
    fn missing_connections_of_joining_tests_by_client() {
        let (mut slab, k) = sessions("192.0.2.1:1000", cmd(20));
        let now = Instant::now();
        let tcp = Transport::Tcp { pacer: TokenBucket::new(0, 1, now) };
        let peer = "192.0.2.1:1001".parse().unwrap();
        let k2 = slab.insert(Session::new(2, peer, None, cmd(3), tcp, 0, Duration::from_secs(5), now));
        let mut j = Joining::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let from_a = |ip: IpAddr| ip == a;
        assert_eq!(j.missing(&slab, from_a), 0, "no test is joining yet");
        let t = j.open(k);
        j.open(k2);
        // Neither has its primary attached in this table: 20 + 3 missing.
        assert_eq!(j.missing(&slab, from_a), 23);
        assert_eq!(j.missing(&slab, |ip| ip != a), 0, "another client has none");
        j.close(t, k);
        assert_eq!(j.missing(&slab, from_a), 3, "a test that stopped joining gives no allowance");
        slab.get_mut(k2).unwrap().start(now);
        assert_eq!(j.missing(&slab, from_a), 0, "nor does one that started on its join timeout");
    }

    #[test]
    fn closing_under_another_sessions_key_keeps_the_token() {
        let (_, k) = sessions("192.0.2.1:1000", cmd(4));
        let mut j = Joining::default();
        let t = j.open(k);
        j.close(t, k + 1);
        assert_eq!(j.by_token.len(), 1);
    }
}

//! Multi-connection tests still accepting secondaries, by the token their
//! primary was given.

use super::session::Session;
use super::slab::Slab;
use crate::proto::command;
use std::collections::HashMap;
use std::net::IpAddr;

#[derive(Default)]
pub struct Joining {
    by_token: HashMap<u16, usize>,
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

    /// The joining session `raw` asks to join from `ip`, if any: by token, or
    /// (tolerantly) by repeating the primary's exact command.
    pub fn target(&self, sessions: &Slab<Session>, ip: IpAddr, raw: &[u8; 16]) -> Option<usize> {
        let open = |skey: &usize| sessions.get(*skey).is_some_and(|s| s.peer().ip() == ip && !s.is_complete());
        if let Some(&skey) = self.by_token.get(&command::join_token(raw)).filter(|k| open(k)) {
            return Some(skey);
        }
        self.by_token.values().copied().find(|k| open(k) && sessions.get(*k).is_some_and(|s| s.cmd().emit() == *raw))
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
    fn repeating_the_primarys_command_joins_too() {
        let (slab, k) = sessions("192.0.2.1:1000", cmd(4));
        let mut j = Joining::default();
        j.open(k);
        assert_eq!(j.target(&slab, "192.0.2.1".parse().unwrap(), &cmd(4).emit()), Some(k));
        assert_eq!(j.target(&slab, "192.0.2.1".parse().unwrap(), &cmd(3).emit()), None);
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

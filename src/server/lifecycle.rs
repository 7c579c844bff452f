//! How connections become tests and tests end: accepting, the handshake's
//! outcomes, admission, joining, starting, accounting and ending. Every
//! session starts and ends here.

use super::admission::{self, Load, Refusal};
use super::conn::{Closed, Conn, Pending, Read, Role};
use super::guard::{self, Slot};
use super::handshake::HandshakeError;
use super::rates::min_rate;
use super::session::{EndReason, Io, Session, Timed, Transport};
use super::timers::{Owner, take_if_live};
use super::{KIND_CONN, KIND_UDP, Server, token};
use crate::pacer::TokenBucket;
use crate::proto::{Command, ProtoError, Protocol, reply};
use crate::stream::Stream;
use crate::udp::UdpFlow;
use mio::Interest;
use mio::net::TcpStream;
use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::time::Instant;

impl Server {
    pub(super) fn accept(&mut self, idx: usize, now: Instant) {
        loop {
            let Some(listener) = self.listeners.get(idx) else { return };
            match listener.accept() {
                Ok((sock, peer)) => self.on_accept(sock, peer, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if is_fd_exhaustion(&e) => {
                    // The pending connection stays queued; the next tick retries.
                    self.fd_starved.refused(&e);
                    return;
                }
                Err(e) => log::debug!("accept: {e}"),
            }
        }
    }

    fn on_accept(&mut self, sock: TcpStream, peer: SocketAddr, now: Instant) {
        let peer = canonical(peer);
        let missing = self.joining.missing(&self.sessions, |ip| guard::same_client(ip, peer.ip()));
        let door = |s: &Server| admission::door(&s.limits, &s.guard, peer.ip(), missing, now);
        let mut verdict = door(self);
        if matches!(verdict, Err(Refusal::Handshakes { .. })) && self.make_room(peer.ip(), now) {
            verdict = door(self);
        }
        let slot = match verdict {
            Ok(slot) => slot,
            Err(why) => {
                self.counters.refused(&why);
                self.peer_log.warn(peer.ip(), now, format_args!("{peer}: refused: {why}"));
                return;
            }
        };
        let deadline = admission::handshake_deadline(&self.limits, self.guard.handshakes().regular);
        let _ = sock.set_nodelay(true);
        let pending = Pending::new(Stream::new(sock, 1, false, 1), peer, slot, now);
        let key = self.conns.insert(Conn::Pending(Box::new(pending)));
        let Some(Conn::Pending(p)) = self.conns.get_mut(key) else { return };
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self.poll.registry().register(&mut p.stream.sock, token(KIND_CONN, key), interest) {
            log::warn!("{peer}: cannot register connection: {e}");
            self.conns.remove(key);
            return;
        }
        self.guard.handshake_started(peer.ip(), slot);
        p.stream.out.push(&reply::HELLO);
        if self.trace.iter().any(|c| c.contains(peer.ip())) {
            let t = crate::trace::Trace::new(format!("{peer}"), now);
            t.line(format_args!("accepted; tx HELLO {}", crate::trace::hex(&reply::HELLO)));
            p.trace = Some(Box::new(t));
        }
        self.timers.schedule(Owner::Conn(key), now + deadline, p.timer());
        match slot {
            Slot::Regular => log::debug!("{peer}: connected"),
            Slot::Join => log::debug!("{peer}: connected (join slot: tests of this address miss {missing})"),
        }
        if let Err(why) = p.flush() {
            self.close_pending(key, why, now);
        }
    }

    pub(super) fn read_pending(&mut self, key: usize, now: Instant) {
        let Some(Conn::Pending(p)) = self.conns.get_mut(key) else { return };
        let peer = p.peer;
        let (joining, sessions) = (&self.joining, &self.sessions);
        let read = p.read(&self.logins.auth_config(), |raw| joining.target(sessions, peer.ip(), raw).is_some());
        match read {
            Read::Waiting => {}
            Read::Closed(why) => self.close_pending(key, why, now),
            Read::Join(raw) => self.join(key, &raw, now),
            Read::Ready { cmd, user } => self.admit(key, cmd, user, now),
            Read::Failed(e @ HandshakeError::AuthFailed { .. }) => {
                let outcome = self.guard.auth_failed(peer.ip(), now);
                self.counters.auth_failed(outcome.banned.is_some());
                self.peer_log.warn(peer.ip(), now, format_args!("{peer}: {e}"));
                if let Some(ban) = outcome.banned {
                    log::warn!("{}: banned for {} s after repeated failed logins", peer.ip(), ban.as_secs());
                    self.stop_guesses(key, peer.ip());
                }
                if outcome.delay.is_zero() {
                    self.close_conn(key);
                } else if let Some(Conn::Pending(p)) = self.conns.get_mut(key) {
                    // Hold the failure reply: slows down password guessing.
                    p.fail_login();
                    self.timers.schedule(Owner::Conn(key), now + outcome.delay, p.timer());
                }
            }
            Read::Failed(e) => {
                self.peer_log.info(peer.ip(), now, format_args!("{peer}: {e}; closing"));
                self.close_conn(key);
                if matches!(e, HandshakeError::Proto(ProtoError::BadProtocol(b)) if b >= 2) {
                    self.wrong_token(key, peer, now);
                }
            }
        }
    }

    /// The handshake table is full: closes the oldest handshake of the most
    /// crowded address if `ip`'s is clearly less crowded; true if it did.
    fn make_room(&mut self, ip: IpAddr, now: Instant) -> bool {
        let Some((crowded, n)) = self.guard.most_handshakes() else { return false };
        if !admission::may_evict(self.guard.handshakes_of(ip).regular, n) {
            return false;
        }
        let oldest = self.conns.iter().filter_map(|(k, c)| match c {
            Conn::Pending(p) if p.slot == Slot::Regular && guard::address_key(p.peer.ip()) == crowded => {
                Some((p.since, k))
            }
            _ => None,
        });
        let Some((_, victim)) = oldest.min() else { return false };
        let msg =
            format_args!("{crowded}: oldest of {n} handshakes dropped for a less crowded address (--max-handshakes)");
        self.peer_log.info(crowded, now, msg);
        self.close_conn(victim);
        true
    }

    /// 16 bytes that start like a join token (a command's first byte is 0
    /// or 1) while tests of this address are joining, but name none of them:
    /// a guess, or a join too late. It counts as a failed login, and a few
    /// of them end those tests' join windows, so guessing gets a few tries.
    fn wrong_token(&mut self, key: usize, peer: SocketAddr, now: Instant) {
        let joining = self.joining.of(&self.sessions, |ip| guard::same_client(ip, peer.ip()));
        if joining.is_empty() {
            return;
        }
        let outcome = self.guard.auth_failed(peer.ip(), now);
        self.counters.auth_failed(outcome.banned.is_some());
        if let Some(ban) = outcome.banned {
            log::warn!("{}: banned for {} s after repeated failed logins", peer.ip(), ban.as_secs());
            self.stop_guesses(key, peer.ip());
        }
        for skey in joining {
            let Some(s) = self.sessions.get_mut(skey) else { continue };
            if s.wrong_token() {
                log::info!("session {}: wrong join tokens from {}; the join window ends", s.id(), peer.ip());
                self.start_session(skey, now);
            }
        }
    }

    /// A ban started: the address's other handshakes in flight stop
    /// without being evaluated (a burst of parallel guesses gets no answers).
    fn stop_guesses(&mut self, except: usize, ip: IpAddr) {
        let banned = super::guard::address_key(ip);
        let victims: Vec<usize> = self
            .conns
            .iter()
            .filter(|&(k, c)| {
                k != except && matches!(c, Conn::Pending(p) if super::guard::address_key(p.peer.ip()) == banned)
            })
            .map(|(k, _)| k)
            .collect();
        if !victims.is_empty() {
            log::info!("{ip}: closing {} handshakes in flight from the banned address", victims.len());
        }
        for k in victims {
            self.close_conn(k);
        }
    }

    /// A pending connection's deadline: the handshake took too long, or a
    /// failed login's delay is over.
    pub(super) fn pending_timer(&mut self, key: usize, at: Instant, now: Instant) {
        let Some(Conn::Pending(p)) = self.conns.get_mut(key) else { return };
        if !take_if_live(p.timer(), at) {
            return;
        }
        if let Role::Handshake { hs, .. } = p.role() {
            let secs = at.saturating_duration_since(p.since).as_secs_f64().round();
            let msg = format_args!(
                "{}: handshake not completed within {secs} s (waiting for {}); closing",
                p.peer,
                hs.state()
            );
            self.peer_log.info(p.peer.ip(), now, msg);
        }
        self.close_conn(key);
    }

    /// A command passed authentication: apply the limits and start a session.
    fn admit(&mut self, key: usize, cmd: Command, user: Option<String>, now: Instant) {
        let Some(Conn::Pending(p)) = self.conns.get(key) else { return };
        let peer = p.peer;
        let load = Load {
            sessions: self.sessions.len(),
            from_peer: {
                let key = super::guard::address_key(peer.ip());
                self.sessions.iter().filter(|(_, s)| super::guard::address_key(s.peer().ip()) == key).count()
            },
            memory: self.vitals.mem_now,
        };
        if let Err(why) = admission::test(&self.limits, &load, &cmd, peer, crate::net::max_udp_payload()) {
            self.refuse(key, why, now);
            return;
        }
        let id = self.next_session_id;
        self.next_session_id += 1;
        if let Some(a) = self.acct.as_mut() {
            if let Err(e) = a.check(user.as_deref(), peer.ip()) {
                self.refuse(key, Refusal::Budget(e), now);
                return;
            }
        }
        let tx_cap = self.rates.tx_cap(&cmd);
        let transport = match cmd.proto {
            Protocol::Udp => match self.open_udp(key, &cmd, tx_cap, now) {
                Ok(t) => t,
                Err(why) => {
                    self.refuse(key, why, now);
                    return;
                }
            },
            Protocol::Tcp => Transport::Tcp { pacer: TokenBucket::new(tx_cap, TokenBucket::tcp_burst(tx_cap), now) },
        };
        let udp_port = match &transport {
            Transport::Udp { port, .. } => format!(" udp_port={port}"),
            Transport::Tcp { .. } => String::new(),
        };
        log::info!(
            "session {id}: {peer} user={} {} {} conns={} tx_size={} remote_tx_speed={} random={}{udp_port}",
            crate::logger::Escaped::peer(user.as_deref().unwrap_or("-")),
            cmd.proto,
            cmd.direction,
            cmd.connections(),
            cmd.tx_size,
            cmd.remote_tx_speed,
            cmd.random,
        );
        let buffers = self.lower_socket_buffers(&cmd);
        let traced = matches!(self.conns.get(key), Some(Conn::Pending(p)) if p.trace.is_some());
        let mut session =
            Session::new(id, peer, user, cmd, transport, self.rates.rx_cap(), self.limits.join_timeout, now);
        if let Some(size) = buffers {
            session.set_socket_buffers(size);
        }
        if traced {
            log::info!("trace {peer} is session {id}");
            session.set_trace(now);
        }
        let skey = self.sessions.insert(session);
        self.attach(key, skey);
        let Some(s) = self.sessions.get_mut(skey) else { return };
        if let Some(sock) = s.udp_socket() {
            let interest = Interest::READABLE | Interest::WRITABLE;
            if let Err(e) = self.poll.registry().register(sock, token(KIND_UDP, skey), interest) {
                log::warn!("{peer}: cannot register UDP socket: {e}");
                s.reply(&reply::FAILED);
                self.end_session(skey, EndReason::Refused);
                return;
            }
        }
        // Register the token before the OK goes out, so a fast secondary finds it.
        let tok = cmd.is_multi_connection().then(|| self.joining.open(skey));
        if let Some(t) = tok {
            s.set_token(t);
        }
        s.reply(&reply::ok(tok));
        if let Some(t) = s.trace(0) {
            t.line(format_args!("tx OK token={} {}", tok.unwrap_or(0), crate::trace::hex(&reply::ok(tok))));
        }
        if let Some(port) = s.udp_port() {
            s.reply(&port.to_be_bytes());
            if let Some(t) = s.trace(0) {
                t.line(format_args!("tx udp port={port} {}", crate::trace::hex(&port.to_be_bytes())));
            }
        }
        if s.is_complete() {
            self.start_session(skey, now);
        } else {
            self.drive(skey, now, |s, io| s.write(0, io));
        }
    }

    /// Answers `00 00 00 00` and closes: a limit or resource refused the test.
    fn refuse(&mut self, key: usize, why: Refusal, now: Instant) {
        self.counters.refused(&why);
        if let Some(Conn::Pending(p)) = self.conns.get_mut(key) {
            self.peer_log.warn(p.peer.ip(), now, format_args!("{}: test refused: {why}", p.peer));
            p.stream.out.push(&reply::FAILED);
            if let Some(t) = &p.trace {
                t.line(format_args!("test refused ({why}); tx failed {}", crate::trace::hex(&reply::FAILED)));
            }
        }
        self.close_conn(key);
    }

    /// A pending connection failed or was closed by its peer.
    pub(super) fn close_pending(&mut self, key: usize, why: Closed, now: Instant) {
        if let Some(Conn::Pending(p)) = self.conns.get(key) {
            self.peer_log.info(p.peer.ip(), now, format_args!("{}: {why}", p.peer));
        }
        self.close_conn(key);
    }

    /// Takes a pool port and binds it on the address the client reached us at.
    fn open_udp(&mut self, key: usize, cmd: &Command, rate: u64, now: Instant) -> Result<Transport, Refusal> {
        let Some(Conn::Pending(p)) = self.conns.get(key) else {
            return Err(Refusal::UdpSocket(io::ErrorKind::NotConnected.into()));
        };
        let local = p.stream.sock.local_addr().map_err(Refusal::UdpSocket)?;
        let peer = p.peer;
        let (port, sock) = self
            .ports
            .allocate(|port| crate::net::udp_socket(udp_addresses(local, peer, port).0))
            .map_err(Refusal::UdpPort)?;
        crate::udp::grow_buffers(&sock);
        let dest = udp_addresses(local, peer, port).1;
        let asked = u64::from(cmd.remote_tx_speed);
        let flow = Box::new(UdpFlow::new(sock, self.udp_io, dest, cmd.tx_size, asked, rate, now));
        Ok(Transport::Udp { flow, port })
    }

    /// Moves a pending connection's stream into session `skey`.
    fn attach(&mut self, key: usize, skey: usize) {
        let Some(slot) = self.conns.get_mut(key) else { return };
        if !matches!(slot, Conn::Pending(_)) {
            return;
        }
        let Conn::Pending(p) = std::mem::replace(slot, Conn::Data { session: skey, index: 0 }) else { return };
        self.guard.handshake_ended(p.peer.ip(), p.slot);
        let Some(s) = self.sessions.get_mut(skey) else {
            self.conns.remove(key);
            let mut stream = p.stream;
            stream.close(self.poll.registry());
            return;
        };
        let index = s.attach(key, p.stream);
        log::debug!("{}: connection handshake -> session {} (connection {})", p.peer, s.id(), index + 1);
        if let Some(Conn::Data { index: slot, .. }) = self.conns.get_mut(key) {
            *slot = index;
        }
    }

    fn join(&mut self, key: usize, raw: &[u8; 16], now: Instant) {
        let Some(Conn::Pending(p)) = self.conns.get(key) else { return };
        let peer = p.peer;
        let Some(skey) = self.joining.target(&self.sessions, peer.ip(), raw) else {
            self.close_conn(key);
            return;
        };
        self.attach(key, skey);
        let Some(s) = self.sessions.get_mut(skey) else { return };
        s.reply_last(&reply::ok(s.token()));
        let index = s.conn_count() - 1;
        if let Some(t) = s.trace(index) {
            let ok = reply::ok(s.token());
            t.line(format_args!(
                "joined from {peer}; tx OK token={} {}",
                s.token().unwrap_or(0),
                crate::trace::hex(&ok)
            ));
        }
        log::debug!("session {}: connection {}/{} joined from {peer}", s.id(), index + 1, s.cmd().connections());
        if s.is_complete() {
            self.start_session(skey, now);
        } else {
            self.drive(skey, now, |s, io| s.write(index, io));
        }
        // A client may send data right behind its join request, and the
        // readiness event that brought them both is spent.
        self.drive(skey, now, |s, io| s.read(index, io));
    }

    fn start_session(&mut self, skey: usize, now: Instant) {
        let Some(s) = self.sessions.get_mut(skey) else { return };
        if let Some(t) = s.token() {
            self.joining.close(t, skey);
        }
        s.start(now);
        self.rebalance(now);
        self.drive(skey, now, |s, io| s.kick(io));
    }

    /// Lowers every data socket to its share of `--max-socket-memory` once
    /// the test `cmd` joins the running ones (see `socket_budget`); returns
    /// the share for the new test's sockets.
    fn lower_socket_buffers(&mut self, cmd: &Command) -> Option<u32> {
        use super::socket_budget::{Carries, share};
        let (mut payload, mut idle) = Carries::of(cmd).buffers(cmd.connections());
        for (_, s) in self.sessions.iter() {
            let (p, i) = Carries::of(s.cmd()).buffers(s.conn_count());
            payload += p;
            idle += i;
        }
        let share = share(self.limits.max_socket_memory, payload, idle)?;
        for (_, s) in self.sessions.iter_mut() {
            s.set_socket_buffers(share);
        }
        Some(share)
    }

    /// Shares the total caps among the started tests; called whenever a
    /// test starts or a started one ends.
    fn rebalance(&mut self, now: Instant) {
        let started = self.sessions.iter().filter(|(_, s)| s.since().is_some());
        let (tx, rx) = started.fold((0, 0), |(t, r), (_, s)| {
            let d = s.cmd().direction;
            (t + usize::from(d.server_transmits()), r + usize::from(d.server_receives()))
        });
        let Some((tx_part, rx_part)) = self.rates.parts(tx, rx) else { return };
        for (_, s) in self.sessions.iter_mut().filter(|(_, s)| s.is_running()) {
            let tx = min_rate(self.rates.tx_cap(s.cmd()), tx_part);
            s.set_caps(tx, min_rate(self.rates.rx_cap(), rx_part), now);
        }
    }

    pub(super) fn session_timer(&mut self, skey: usize, now: Instant) {
        let Some(s) = self.sessions.get_mut(skey) else { return };
        let mut io = Io { now, bufs: &mut self.bufs, rates: &mut self.rates, ready: &mut self.ready, skey };
        match s.on_timer(&mut io, &self.limits, self.vitals.cpu_now) {
            Ok(Timed::Nothing) => self.reschedule(skey),
            Ok(Timed::JoinExpired) => self.start_session(skey, now),
            Err(reason) => self.end_session(skey, reason),
        }
    }

    /// Charges every session's new bytes to budgets and usage, ending those
    /// that exhausted a budget.
    pub(super) fn account_all(&mut self) {
        let Some(a) = self.acct.as_mut() else { return };
        let mut exhausted = Vec::new();
        for (skey, s) in self.sessions.iter_mut() {
            if let Some(e) = a.charge(s) {
                exhausted.push((skey, s.id(), e));
            }
        }
        for (skey, id, e) in exhausted {
            log::warn!("session {id}: {e}; ending the test");
            self.end_session(skey, EndReason::QuotaExhausted(e.short()));
        }
    }

    pub(super) fn end_session(&mut self, skey: usize, reason: EndReason) {
        let Some(mut s) = self.sessions.remove(skey) else { return };
        // The last partial second counts too; the session is over either way.
        if let Some(a) = self.acct.as_mut() {
            let _ = a.charge(&mut s);
        }
        if s.since().is_some() {
            self.rebalance(Instant::now());
        }
        if let Some(t) = s.token() {
            self.joining.close(t, skey);
        }
        self.counters.ended(&s, &reason, s.bytes());
        let closed = s.close(&reason, self.poll.registry());
        for key in closed.conn_keys {
            self.conns.remove(key);
        }
        if let Some(port) = closed.udp_port {
            self.ports.release(port);
        }
        if let Some(a) = &self.acct {
            a.finished(closed.record);
        }
    }

    /// Drops a pending connection, first trying once to send queued
    /// control bytes (such as the failure reply).
    pub(super) fn close_conn(&mut self, key: usize) {
        if !matches!(self.conns.get(key), Some(Conn::Pending(_))) {
            return;
        }
        if let Some(Conn::Pending(mut p)) = self.conns.remove(key) {
            self.guard.handshake_ended(p.peer.ip(), p.slot);
            p.stream.close(self.poll.registry());
        }
    }
}

/// IPv4-mapped IPv6 peers are logged and limited as the IPv4 they are;
/// other IPv6 peers keep their scope (a link-local client is reached through it).
fn canonical(peer: SocketAddr) -> SocketAddr {
    match peer.ip().to_canonical() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V4(v4), peer.port()),
        IpAddr::V6(_) => peer,
    }
}

/// Where a UDP test on pool `port` binds and where it sends: the address
/// the client reached (a v4 client on a v6 socket binds the v4 address),
/// and the client's address at our port + 256. IPv6 keeps the scope of a
/// link-local address on both sides.
fn udp_addresses(local: SocketAddr, peer: SocketAddr, port: u16) -> (SocketAddr, SocketAddr) {
    let bind = match (local, peer) {
        (SocketAddr::V6(l), SocketAddr::V4(_)) => match l.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), port),
            None => SocketAddr::V6(SocketAddrV6::new(*l.ip(), port, 0, l.scope_id())),
        },
        (SocketAddr::V6(l), _) => SocketAddr::V6(SocketAddrV6::new(*l.ip(), port, 0, l.scope_id())),
        (SocketAddr::V4(l), _) => SocketAddr::new(IpAddr::V4(*l.ip()), port),
    };
    let to = port.saturating_add(crate::proto::udp::CLIENT_PORT_OFFSET);
    let dest = match peer {
        SocketAddr::V6(p) => SocketAddr::V6(SocketAddrV6::new(*p.ip(), to, 0, p.scope_id())),
        SocketAddr::V4(p) => SocketAddr::new(IpAddr::V4(*p.ip()), to),
    };
    (bind, dest)
}

pub(super) fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_addresses_follow_the_control_connection() {
        let v4: SocketAddr = "192.0.2.1:2000".parse().unwrap();
        let client: SocketAddr = "198.51.100.7:40000".parse().unwrap();
        assert_eq!(
            udp_addresses(v4, client, 2001),
            ("192.0.2.1:2001".parse().unwrap(), "198.51.100.7:2257".parse().unwrap())
        );
        // A v4 client on a dual-stack socket.
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:2000".parse().unwrap();
        assert_eq!(udp_addresses(mapped, client, 2001).0, "192.0.2.1:2001".parse().unwrap());
        // A link-local client keeps its scope both ways.
        let local = SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 2000, 0, 3));
        let peer = SocketAddr::V6(SocketAddrV6::new("fe80::2".parse().unwrap(), 40000, 0, 3));
        let (bind, dest) = udp_addresses(local, peer, 2001);
        assert_eq!((bind.to_string(), dest.to_string()), ("[fe80::1%3]:2001".into(), "[fe80::2%3]:2257".into()));
        assert_eq!(canonical(peer), peer, "the scope is kept");
        let mapped_peer: SocketAddr = "[::ffff:198.51.100.7]:40000".parse().unwrap();
        assert_eq!(canonical(mapped_peer), client);
    }
}

//! The web listener (`--http ADDR:PORT`), served by the event loop like any
//! other socket, with strict bounds: few connections in all and per
//! address, a request rate per address, a small request head, a deadline
//! per connection, one request per connection. Operators (from the allowed
//! networks, or with the token) see everything; visitors, when
//! `--http-visitors` lets them in, see only their own address's tests,
//! usage and budget.

use super::config::WebConfig;
use super::outbox::{Outbox, Step};
use super::slab::Slab;
use super::{KIND_HTTP, Server, ServerError, token};
use crate::http::{self, Route};
use crate::json::Json;
use crate::quota::{IpKey, Period, Subject};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

/// Web connections at once, all addresses together.
const MAX_CONNS: usize = 32;
/// Web connections at once from one address (IPv6: its /64).
const MAX_CONNS_PER_ADDR: usize = 4;
/// A connection must have sent its request and taken the reply within this.
const CONN_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests per address: a burst of this many, then [`RATE_PER_SEC`] a second.
const RATE_BURST: f64 = 10.0;
const RATE_PER_SEC: f64 = 3.0;
/// Addresses whose request rate is remembered; beyond, the table is pruned.
const MAX_RATE_ENTRIES: usize = 1024;
/// Rows of each usage table on the operator page.
const USAGE_ROWS: usize = 20;

struct Conn {
    sock: TcpStream,
    /// The client's address group (see `guard::address_key`).
    addr: IpAddr,
    ip: IpAddr,
    request: Vec<u8>,
    out: Outbox,
    since: Instant,
}

/// A request-rate bucket of one address.
struct Bucket {
    tokens: f64,
    at: Instant,
}

pub(super) struct Web {
    listener: TcpListener,
    conns: Slab<Conn>,
    cfg: WebConfig,
    rate: HashMap<IpAddr, Bucket>,
}

impl Web {
    pub(super) fn open(cfg: WebConfig, registry: &Registry) -> Result<Web, ServerError> {
        let mut listener = crate::net::tcp_listener(cfg.listen, 64)
            .map_err(|source| ServerError::Bind { addr: cfg.listen, source })?;
        registry.register(&mut listener, token(KIND_HTTP, 0), Interest::READABLE).map_err(ServerError::Poll)?;
        Ok(Web { listener, conns: Slab::new(), cfg, rate: HashMap::new() })
    }

    pub(super) fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    fn close(&mut self, key: usize, registry: &Registry) {
        if let Some(mut c) = self.conns.remove(key) {
            let _ = registry.deregister(&mut c.sock);
        }
    }

    /// Closes connections past their deadline.
    pub(super) fn expire(&mut self, now: Instant, registry: &Registry) {
        for key in self.conns.keys() {
            if self.conns.get(key).is_some_and(|c| now.saturating_duration_since(c.since) >= CONN_TIMEOUT) {
                self.close(key, registry);
            }
        }
    }

    /// Takes one request from `addr`'s allowance; false when it is spent.
    fn take_request(&mut self, addr: IpAddr, now: Instant) -> bool {
        if self.rate.len() >= MAX_RATE_ENTRIES && !self.rate.contains_key(&addr) {
            let full = |b: &Bucket| b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * RATE_PER_SEC;
            self.rate.retain(|_, b| full(b) < RATE_BURST);
            if self.rate.len() >= MAX_RATE_ENTRIES {
                return false;
            }
        }
        let b = self.rate.entry(addr).or_insert(Bucket { tokens: RATE_BURST, at: now });
        b.tokens = (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * RATE_PER_SEC).min(RATE_BURST);
        b.at = now;
        if b.tokens < 1.0 {
            return false;
        }
        b.tokens -= 1.0;
        true
    }

    fn is_operator(&self, ip: IpAddr, token: Option<&str>) -> bool {
        self.cfg.operators.iter().any(|c| c.contains(ip))
            || matches!((&self.cfg.token, token), (Some(want), Some(got)) if same_secret(want, got))
    }
}

impl Server {
    pub(super) fn on_web_event(&mut self, id: usize, now: Instant) {
        if id == 0 {
            self.web_accept(now);
        } else {
            self.web_serve(id - 1, now);
        }
    }

    /// Accepts what is queued; also called each second, since a client left
    /// queued when descriptors ran out brings no new event.
    pub(super) fn web_accept(&mut self, now: Instant) {
        loop {
            let Some(web) = self.web.as_mut() else { return };
            let (mut sock, peer) = match web.listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if super::lifecycle::is_fd_exhaustion(&e) => {
                    // The client stays queued; the next tick retries.
                    self.fd_starved.refused(&e);
                    return;
                }
                Err(e) => {
                    log::debug!("web accept: {e}");
                    continue;
                }
            };
            let ip = peer.ip().to_canonical();
            let addr = super::guard::address_key(ip);
            let from_addr = web.conns.iter().filter(|(_, c)| c.addr == addr).count();
            if web.conns.len() >= MAX_CONNS || from_addr >= MAX_CONNS_PER_ADDR {
                // Best effort: a small reply fits the fresh socket's buffer.
                let _ = sock.write(&http::error(503, "Service Unavailable"));
                continue;
            }
            let conn = Conn { sock, addr, ip, request: Vec::new(), out: Outbox::default(), since: now };
            let key = web.conns.insert(conn);
            let Some(c) = web.conns.get_mut(key) else { return };
            let interest = Interest::READABLE | Interest::WRITABLE;
            if self.poll.registry().register(&mut c.sock, token(KIND_HTTP, key + 1), interest).is_err() {
                web.conns.remove(key);
                continue;
            }
            self.web_serve(key, now);
        }
    }

    fn web_serve(&mut self, key: usize, now: Instant) {
        let step = match self.web_read(key) {
            Some(Ok(req)) => {
                let reply = self.web_answer(key, req, now);
                self.web_reply(key, reply)
            }
            Some(Err(e)) => {
                let (code, reason) = e.status();
                self.web_reply(key, http::error(code, reason))
            }
            None => self.web_write(key),
        };
        if let (Step::Done, Some(web)) = (step, self.web.as_mut()) {
            web.close(key, self.poll.registry());
        }
    }

    /// The request once its head is complete (only once).
    fn web_read(&mut self, key: usize) -> Option<Result<http::Request, http::HttpError>> {
        let c = self.web.as_mut()?.conns.get_mut(key)?;
        if c.out.is_set() {
            return None;
        }
        let mut buf = [0u8; 1024];
        loop {
            let room = (http::MAX_REQUEST + 1).saturating_sub(c.request.len()).clamp(1, buf.len());
            match c.sock.read(&mut buf[..room]) {
                Ok(0) => return Some(Err(http::HttpError::Bad)),
                Ok(n) => {
                    c.request.extend_from_slice(&buf[..n]);
                    match http::parse(&c.request) {
                        Ok(None) => {}
                        r => return r.transpose(),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Some(Err(http::HttpError::Bad)),
            }
        }
    }

    fn web_answer(&mut self, key: usize, req: http::Request, now: Instant) -> Vec<u8> {
        let Some(web) = self.web.as_mut() else { return Vec::new() };
        let Some((ip, addr)) = web.conns.get(key).map(|c| (c.ip, c.addr)) else { return Vec::new() };
        if !web.take_request(addr, now) {
            return http::error(429, "Too Many Requests");
        }
        let operator = web.is_operator(ip, req.token.as_deref());
        if !operator && !web.cfg.visitors {
            return http::error(403, "Forbidden");
        }
        const JSON: &str = "application/json";
        match req.route {
            Route::Page => http::response(200, "OK", "text/html; charset=utf-8", http::PAGE.as_bytes()),
            Route::Status if operator => http::response(200, "OK", JSON, self.operator_view(now).as_bytes()),
            Route::Status => http::response(200, "OK", JSON, self.visitor_view(ip, now).as_bytes()),
            Route::Metrics if operator => {
                let text = crate::observe::metrics::render(&self.status(now));
                http::response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", text.as_bytes())
            }
            Route::Metrics => http::error(403, "Forbidden"),
            Route::NotFound => http::error(404, "Not Found"),
        }
    }

    fn web_reply(&mut self, key: usize, reply: Vec<u8>) -> Step {
        let Some(c) = self.web.as_mut().and_then(|w| w.conns.get_mut(key)) else { return Step::Done };
        c.out.set(reply);
        self.web_write(key)
    }

    fn web_write(&mut self, key: usize) -> Step {
        let Some(c) = self.web.as_mut().and_then(|w| w.conns.get_mut(key)) else { return Step::Done };
        if c.out.write_to(&mut c.sock) == Step::Wait {
            return Step::Wait;
        }
        let _ = c.sock.shutdown(std::net::Shutdown::Write);
        // Unread request bytes would make the close a reset, which can
        // discard the reply at the client: read what is already here.
        let mut sink = [0u8; 4096];
        for _ in 0..16 {
            if !matches!(c.sock.read(&mut sink), Ok(n) if n > 0) {
                break;
            }
        }
        Step::Done
    }

    fn ipv6_prefix(&self) -> u8 {
        self.acct.as_ref().map_or(crate::quota::DEFAULT_IPV6_PREFIX, |a| a.ledger.config().ipv6_prefix)
    }

    /// Everything, for operators: the status, the throughput history, the
    /// current usage of the busiest users and addresses, recent tests.
    fn operator_view(&mut self, now: Instant) -> String {
        let mut j = Json::new();
        j.begin_object().key("mode").str("operator");
        self.status(now).write_fields(&mut j);
        j.key("history").begin_array();
        for &(rx, tx) in self.counters.history() {
            j.begin_array().u64(rx).u64(tx).end_array();
        }
        j.end_array();
        j.key("usage").begin_array();
        if let Some(a) = self.acct.as_mut() {
            let mut all = a.ledger.accounts(SystemTime::now());
            let month = |u: &[[u64; 2]; 3]| u[Period::Month.index()][0] + u[Period::Month.index()][1];
            all.sort_by_key(|(_, u)| std::cmp::Reverse(month(u)));
            let (mut users, mut ips) = (0, 0);
            for (subject, used) in &all {
                let n = if matches!(subject, Subject::Ip(_)) { &mut ips } else { &mut users };
                *n += 1;
                if *n <= USAGE_ROWS {
                    j.begin_object().key("scope").str(subject.scope()).key("subject");
                    match subject {
                        Subject::Anonymous => j.null(),
                        s => j.str(&s.column()),
                    };
                    write_periods(&mut j, used);
                    j.end_object();
                }
            }
        }
        j.end_array();
        self.write_recent(&mut j, |_| true);
        j.end_object();
        j.finish()
    }

    /// Only the visitor's own address (IPv6: its group): its running tests,
    /// its usage and budget left, its recent tests.
    fn visitor_view(&mut self, ip: IpAddr, now: Instant) -> String {
        let prefix = self.ipv6_prefix();
        let key = IpKey::new(ip, prefix);
        let mine = |other: IpAddr| IpKey::new(other, prefix) == key;
        let mut status = self.status(now);
        status.tests.retain(|t| mine(t.peer.ip()));
        let mut j = Json::new();
        j.begin_object().key("mode").str("visitor").key("version").str(status.version);
        j.key("address").str(&key.to_string());
        status.write_tests(&mut j);
        let wall = SystemTime::now();
        let (mut used, mut left) = ([[0u64; 2]; 3], None);
        if let Some(a) = self.acct.as_mut() {
            for p in Period::ALL {
                used[p.index()] = a.ledger.used(&Subject::Ip(key), p, wall);
            }
            left = a.ledger.left(None, ip, wall).1;
        }
        j.key("usage").begin_object();
        write_periods(&mut j, &used);
        j.end_object();
        j.key("budget_left_bytes").opt_u64(left);
        self.write_recent(&mut j, mine);
        j.end_object();
        j.finish()
    }

    fn write_recent(&self, j: &mut Json, keep: impl Fn(IpAddr) -> bool) {
        j.key("recent").begin_array();
        for r in self.counters.recent().filter(|r| keep(r.peer)) {
            j.begin_object().key("ended").time(r.ended_unix).key("peer_ip").str(&r.peer.to_string());
            j.key("user").opt_str(r.user.as_deref()).key("protocol").str(&r.proto.to_string());
            j.key("direction").str(&r.direction.to_string()).key("secs").u64(r.secs);
            j.key("rx_bytes").u64(r.rx).key("tx_bytes").u64(r.tx).key("result").str(r.result);
            j.end_object();
        }
        j.end_array();
    }
}

/// Compares a secret in time that does not depend on where it differs.
fn same_secret(a: &str, b: &str) -> bool {
    crate::auth::ct_eq(a.as_bytes(), b.as_bytes())
}

/// `"day":[rx,tx],"week":[..],"month":[..]`.
fn write_periods(j: &mut Json, used: &[[u64; 2]; 3]) {
    for p in Period::ALL {
        let [rx, tx] = used[p.index()];
        j.key(p.as_str()).begin_array().u64(rx).u64(tx).end_array();
    }
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn secrets_match_only_exactly() {
        assert!(same_secret("s3cret-token-0123", "s3cret-token-0123"));
        assert!(!same_secret("s3cret-token-0123", "s3cret-token-0124"));
        assert!(!same_secret("s3cret-token-0123", "s3cret-token-012"));
        assert!(!same_secret("", "x"));
    }
}

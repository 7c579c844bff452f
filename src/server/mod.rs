//! The btest server: one mio event loop for every socket.
//!
//! Connections live in a slab indexed by their mio token; a connection is in
//! the handshake until its command is accepted (or it joins a session), then
//! belongs to a session. Sessions own the clocks (status, pacing, timeouts),
//! which feed one deadline heap whose earliest entry is the poll timeout.

pub mod guard;
pub mod handshake;
pub mod ports;
pub mod session;
pub mod signals;
pub mod slab;
pub mod timers;

use crate::auth::{Scheme, Users};
use crate::cpu::CpuSampler;
use crate::pacer::TokenBucket;
use crate::proto::{Command, Protocol, Status, command, reply};
use crate::quota::format_amount;
use crate::stream::Stream;
use crate::udp::{IoMode, UdpFlow};
use handshake::{AuthConfig, Event, Handshake, HandshakeError};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use session::{EndReason, Phase, Session};
use slab::Slab;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use timers::{Owner, Timers, take_if_live};

/// Operator limits; every one has a safe default.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A connection must finish its handshake within this time.
    pub handshake_timeout: Duration,
    /// A session with no test data moving either way for this long ends.
    pub idle_timeout: Duration,
    /// Secondaries of a multi-connection test must join within this time.
    pub join_timeout: Duration,
    /// Concurrent tests, all clients together.
    pub max_sessions: usize,
    /// Concurrent tests from one client IP.
    pub max_sessions_per_ip: usize,
    /// Largest TCP connection count a test may ask for.
    pub max_connections_per_test: u8,
    /// Connections still in their handshake, all clients together.
    pub max_handshakes: usize,
    /// Longest test; None = until the client stops it.
    pub max_duration: Option<Duration>,
    /// Cap on each test's rate in each direction, bits/s (0 = none).
    pub max_rate_per_session: u64,
    /// Cap on all tests together in each direction, bits/s (0 = none).
    pub max_rate_total: u64,
    /// New tests are refused while btestd's own memory is above this many bytes (0 = no budget).
    pub max_memory: u64,
}

/// Far above what the other default limits let btestd use (about 10 MB), so
/// it only trips on something unforeseen; routers may set it lower.
pub const DEFAULT_MAX_MEMORY: u64 = 64 << 20;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(15),
            join_timeout: Duration::from_secs(5),
            max_sessions: 100,
            max_sessions_per_ip: 10,
            max_connections_per_test: 32,
            max_handshakes: 256,
            max_duration: None,
            max_rate_per_session: 0,
            max_rate_total: 0,
            max_memory: DEFAULT_MAX_MEMORY,
        }
    }
}

/// Usage accounting: budgets checked in memory, records written by the
/// store's writer thread. The loop never waits on either.
pub struct Accounting {
    pub ledger: crate::quota::Ledger,
    pub writer: crate::store::Writer,
}

/// Everything `btestd serve` needs to run.
pub struct Config {
    pub listen: Vec<SocketAddr>,
    /// When false, addresses that fail to bind (e.g. IPv6 on a kernel
    /// without it) are skipped as long as one binds.
    pub listen_explicit: bool,
    /// The challenge sent when authentication is on.
    pub scheme: Scheme,
    /// Users from the database, and possibly one from the command line.
    pub users: Users,
    /// A user given on the command line: always required, kept across reloads.
    pub cli_user: Option<crate::auth::User>,
    /// Seed of EC-SRP5 decoys; the database keeps one across restarts.
    pub secret: Option<[u8; 32]>,
    pub accounting: Option<Accounting>,
    pub limits: Limits,
    /// First server UDP port; the client uses ours + 256.
    pub udp_port_base: u16,
    /// Size of the UDP port pool.
    pub udp_port_count: u16,
    pub udp_io: IoMode,
    pub guard: guard::GuardConfig,
}

impl Config {
    /// Listen on TCP 2000 on every IPv4 and IPv6 address.
    pub fn default_listen() -> Vec<SocketAddr> {
        vec![
            SocketAddr::from(([0, 0, 0, 0], crate::proto::DEFAULT_PORT)),
            SocketAddr::from(([0u16; 8], crate::proto::DEFAULT_PORT)),
        ]
    }
}

/// Why the server could not start or keep running.
#[derive(Debug)]
pub enum ServerError {
    Bind { addr: SocketAddr, source: io::Error },
    NoListeners,
    Poll(io::Error),
    Signals(io::Error),
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Bind { addr, source } if source.kind() == io::ErrorKind::AddrInUse => write!(
                f,
                "cannot listen on {addr}: address in use — is another btest server (or RouterOS's own) running? Use --listen to pick another address"
            ),
            ServerError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            ServerError::NoListeners => {
                write!(f, "no listening address could be bound; give one with --listen ADDR:PORT")
            }
            ServerError::Poll(e) => write!(f, "event loop failed: {e}"),
            ServerError::Signals(e) => write!(f, "cannot install signal handlers: {e}"),
        }
    }
}

impl std::error::Error for ServerError {}

/// Token kinds, in the low two bits of a mio token.
const KIND_LISTENER: usize = 0;
const KIND_CONN: usize = 1;
const KIND_UDP: usize = 2;
const KIND_SIGNAL: usize = 3;

fn token(kind: usize, id: usize) -> Token {
    Token(id << 2 | kind)
}

/// Reads or writes per readiness event before yielding to other sockets.
const IO_BUDGET: u32 = 16;
/// How long the other connections of a test may still deliver data after
/// the peer closed one of them.
const DRAIN_GRACE: Duration = Duration::from_secs(1);
/// How often running tests are charged to budgets and usage: a budget is
/// enforced this quickly, and a crash loses at most this plus one flush.
const ACCOUNT_EVERY: Duration = Duration::from_millis(250);
/// Size of the shared receive scratch and transmit payload buffers.
const BUF_LEN: usize = 256 * 1024;

enum Role {
    Handshake(Box<Handshake>),
    Data { session: usize },
}

struct Conn {
    stream: Stream,
    peer: SocketAddr,
    role: Role,
    /// Handshake deadline timer (or the end of a failed login's delay).
    armed: Option<Instant>,
    /// A failed login waiting to send its failure reply.
    linger: bool,
    /// The peer closed its side (EOF or reset).
    eof: bool,
    /// Already queued for another pass without a new readiness event.
    queued_read: bool,
    queued_write: bool,
}

/// At most a few log lines per second for events a peer can cause at will
/// (refusals, malformed input), then a count of what was left out.
/// An episode of accepts failing for lack of file descriptors.
struct FdStarved {
    refused: u64,
    /// An accept failed since the last tick.
    this_second: bool,
}

impl FdStarved {
    /// Called each tick: a whole second without a refused accept ends the episode.
    fn next_second(self) -> Option<FdStarved> {
        if self.this_second {
            Some(FdStarved { this_second: false, ..self })
        } else {
            log::info!("accepting connections again, after {} attempts refused for lack of descriptors", self.refused);
            None
        }
    }
}

#[derive(Default)]
struct Quiet {
    second: Option<Instant>,
    lines: u32,
    suppressed: u32,
}

impl Quiet {
    const PER_SECOND: u32 = 20;

    fn allow(&mut self, now: Instant) -> bool {
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

    fn warn(&mut self, now: Instant, msg: fmt::Arguments<'_>) {
        if self.allow(now) {
            log::warn!("{msg}");
        }
    }

    fn info(&mut self, now: Instant, msg: fmt::Arguments<'_>) {
        if self.allow(now) {
            log::info!("{msg}");
        }
    }
}

/// Work left over when an I/O budget ran out, done before the next poll.
#[derive(Clone, Copy)]
enum Ready {
    Read(usize),
    Write(usize),
    UdpRead(usize),
    UdpWrite(usize),
}

/// Shared buffers: the loop is single-threaded, so one of each serves all.
struct Buffers {
    scratch: Box<[u8]>,
    zeros: Box<[u8]>,
    /// Random payload without the status tag byte, made on first use.
    random: Option<Box<[u8]>>,
}

impl Buffers {
    fn payload(&mut self, random: bool) -> &[u8] {
        if !random {
            return &self.zeros;
        }
        self.random.get_or_insert_with(|| crate::stream::payload(BUF_LEN, true))
    }
}

pub struct Server {
    poll: Poll,
    listeners: Vec<TcpListener>,
    signals: signals::Signals,
    conns: Slab<Conn>,
    sessions: Slab<Session>,
    /// Multi-connection sessions still accepting secondaries, by token.
    joining: HashMap<u16, usize>,
    sessions_per_ip: HashMap<IpAddr, usize>,
    handshakes: usize,
    timers: Timers,
    tick_armed: Option<Instant>,
    account_armed: Option<Instant>,
    /// Sockets that used their I/O budget and must be served again.
    ready: Vec<Ready>,
    ports: ports::PortPool,
    udp_io: IoMode,
    guard: guard::Guard,
    /// Operator caps on all tests together, per direction.
    total_tx: TokenBucket,
    total_rx: TokenBucket,
    /// Running tests that transmit / receive: the total caps are shared among them.
    tx_active: usize,
    rx_active: usize,
    /// Rate limit for log lines that attackers can trigger at will.
    quiet: Quiet,
    /// Set while accepts fail for lack of file descriptors: one warning
    /// per episode, not one per attempt (each new connection is an attempt).
    fd_starved: Option<FdStarved>,
    bufs: Buffers,
    cpu: CpuSampler,
    cpu_now: Option<u8>,
    /// btestd's own memory at the last tick, for `Limits::max_memory`.
    mem_now: Option<u64>,
    /// None while there is no user to log in as: tests are anonymous.
    auth: Option<Scheme>,
    scheme: Scheme,
    users: Users,
    cli_user: Option<crate::auth::User>,
    acct: Option<Accounting>,
    secret: [u8; 32],
    limits: Limits,
    next_session_id: u64,
    stopping: bool,
}

impl Server {
    /// Binds every listening address and installs signal handlers.
    pub fn bind(config: Config) -> Result<Server, ServerError> {
        crate::sysrand::warm_up();
        let poll = Poll::new().map_err(ServerError::Poll)?;
        let mut listeners = Vec::new();
        for addr in &config.listen {
            match crate::net::tcp_listener(*addr, 1024) {
                Ok(l) => listeners.push(l),
                Err(source) if config.listen_explicit => return Err(ServerError::Bind { addr: *addr, source }),
                Err(source) if source.kind() == io::ErrorKind::AddrInUse => {
                    return Err(ServerError::Bind { addr: *addr, source });
                }
                Err(e) => log::warn!("not listening on {addr}: {e}"),
            }
        }
        if listeners.is_empty() {
            return Err(ServerError::NoListeners);
        }
        for (i, l) in listeners.iter_mut().enumerate() {
            poll.registry().register(l, token(KIND_LISTENER, i), Interest::READABLE).map_err(ServerError::Poll)?;
        }
        let signals = signals::Signals::install().map_err(ServerError::Signals)?;
        poll.registry()
            .register(&mut mio::unix::SourceFd(&signals.fd()), token(KIND_SIGNAL, 0), Interest::READABLE)
            .map_err(ServerError::Poll)?;
        let total = config.limits.max_rate_total;
        let users = config.users.clone();
        let mut server = Server {
            poll,
            listeners,
            signals,
            conns: Slab::new(),
            sessions: Slab::new(),
            joining: HashMap::new(),
            sessions_per_ip: HashMap::new(),
            handshakes: 0,
            timers: Timers::new(),
            tick_armed: None,
            account_armed: None,
            ready: Vec::new(),
            bufs: Buffers {
                scratch: vec![0u8; BUF_LEN].into_boxed_slice(),
                zeros: vec![0u8; BUF_LEN].into_boxed_slice(),
                random: None,
            },
            cpu: CpuSampler::new(),
            cpu_now: None,
            mem_now: crate::memory::own_resident(),
            auth: None,
            scheme: config.scheme,
            users: config.users,
            cli_user: config.cli_user,
            secret: config.secret.unwrap_or_else(crate::sysrand::bytes),
            acct: config.accounting,
            limits: config.limits,
            ports: ports::PortPool::new(config.udp_port_base, config.udp_port_count),
            udp_io: config.udp_io,
            guard: guard::Guard::new(config.guard),
            total_tx: TokenBucket::new(total, TokenBucket::tcp_burst(total), Instant::now()),
            total_rx: TokenBucket::new(total, TokenBucket::tcp_burst(total), Instant::now()),
            tx_active: 0,
            rx_active: 0,
            quiet: Quiet::default(),
            fd_starved: None,
            next_session_id: 1,
            stopping: false,
        };
        server.set_users(users);
        Ok(server)
    }

    /// Installs a user table (at start and on reloads): authentication is
    /// required exactly when there is someone to log in as.
    fn set_users(&mut self, mut users: Users) {
        if let Some(u) = &self.cli_user {
            users.insert(u.clone());
        }
        self.auth = (!users.is_empty()).then_some(self.scheme);
        self.users = users;
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().filter_map(|l| l.local_addr().ok()).collect()
    }

    /// Serves until SIGTERM or SIGINT.
    pub fn run(&mut self) -> Result<(), ServerError> {
        for a in self.local_addrs() {
            log::info!("listening on {a}");
        }
        match crate::net::raise_fd_limit() {
            Ok(n) => log::debug!("open-file limit {n}"),
            Err(e) => log::warn!("cannot read the open-file limit: {e}"),
        }
        match self.auth {
            None => log::info!("authentication disabled"),
            Some(s) => log::info!("authentication: {s}, {} user(s)", self.users.len()),
        }
        let mut events = Events::with_capacity(1024);
        let now = Instant::now();
        self.cpu.sample();
        self.timers.schedule(Owner::Tick, now + Duration::from_secs(1), &mut self.tick_armed);
        if self.acct.is_some() {
            self.timers.schedule(Owner::Account, now + ACCOUNT_EVERY, &mut self.account_armed);
        }
        while !self.stopping {
            let timeout = if self.ready.is_empty() {
                self.timers.next().map(|t| t.saturating_duration_since(Instant::now()))
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(ServerError::Poll(e));
            }
            let now = Instant::now();
            for ev in events.iter() {
                let (kind, id) = (ev.token().0 & 3, ev.token().0 >> 2);
                match kind {
                    KIND_LISTENER => self.accept(id, now),
                    KIND_CONN => {
                        if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                            if let Some(c) = self.conns.get_mut(id) {
                                c.stream.write_blocked = false;
                            }
                            self.on_writable(id, now);
                        }
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.on_readable(id, now);
                        }
                    }
                    KIND_UDP => {
                        if ev.is_writable() {
                            if let Some(u) = self.sessions.get_mut(id).and_then(|s| s.udp.as_mut()) {
                                u.write_blocked = false;
                            }
                            self.udp_send(id, now);
                        }
                        if ev.is_readable() || ev.is_error() {
                            self.udp_recv(id, now);
                        }
                    }
                    KIND_SIGNAL => self.on_signal(),
                    _ => {}
                }
            }
            self.serve_ready(now);
            self.run_timers(Instant::now());
        }
        self.shutdown();
        Ok(())
    }

    fn on_signal(&mut self) {
        let got = self.signals.drain();
        if got.stop {
            log::info!("stop signal received, closing listeners and sessions");
            self.stopping = true;
        }
        if got.reload {
            match &self.acct {
                Some(a) => {
                    log::info!("SIGHUP received: reloading users and quotas from the database");
                    a.writer.request_reload();
                }
                None => log::info!("SIGHUP received; nothing to reload without a user database"),
            }
        }
    }

    fn shutdown(&mut self) {
        for mut l in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(&mut l);
        }
        for key in self.sessions.keys() {
            self.end_session(key, EndReason::Shutdown);
        }
        for key in self.conns.keys() {
            self.close_conn(key);
        }
        if let Some(a) = self.acct.take() {
            log::info!("saving usage to the database");
            a.writer.shutdown();
        }
        log::info!("server stopped");
    }

    fn accept(&mut self, idx: usize, now: Instant) {
        loop {
            let Some(listener) = self.listeners.get(idx) else { return };
            match listener.accept() {
                Ok((sock, peer)) => self.on_accept(sock, peer, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if is_fd_exhaustion(&e) => {
                    // The pending connection stays queued; the next tick retries.
                    let starved = self.fd_starved.get_or_insert_with(|| {
                        log::warn!(
                            "cannot accept connections: {e}; raise the open-file limit (ulimit -n) or lower \
                             --max-sessions; running tests go on"
                        );
                        FdStarved { refused: 0, this_second: true }
                    });
                    starved.refused += 1;
                    starved.this_second = true;
                    return;
                }
                Err(e) => log::debug!("accept: {e}"),
            }
        }
    }

    fn on_accept(&mut self, sock: TcpStream, peer: SocketAddr, now: Instant) {
        let peer = canonical(peer);
        if self.handshakes >= self.limits.max_handshakes {
            self.quiet.warn(
                now,
                format_args!(
                    "{peer}: refused, {} connections already in handshake (--max-handshakes)",
                    self.handshakes
                ),
            );
            return;
        }
        if let Err(why) = self.guard.check(peer.ip(), now) {
            self.quiet.warn(now, format_args!("{peer}: refused: {why}"));
            return;
        }
        let _ = sock.set_nodelay(true);
        let key = self.conns.insert(Conn {
            stream: Stream::new(sock, 1, false, 1),
            peer,
            role: Role::Handshake(Box::default()),
            armed: None,
            linger: false,
            eof: false,
            queued_read: false,
            queued_write: false,
        });
        let Some(c) = self.conns.get_mut(key) else { return };
        if let Err(e) = self.poll.registry().register(
            &mut c.stream.sock,
            token(KIND_CONN, key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!("{peer}: cannot register connection: {e}");
            self.conns.remove(key);
            return;
        }
        self.handshakes += 1;
        self.guard.handshake_started(peer.ip());
        c.stream.out.push(&reply::HELLO);
        self.timers.schedule(Owner::Conn(key), now + self.limits.handshake_timeout, &mut c.armed);
        log::debug!("{peer}: connected");
        self.on_writable(key, now);
    }

    fn on_readable(&mut self, key: usize, now: Instant) {
        let Some(c) = self.conns.get_mut(key) else { return };
        match c.role {
            Role::Handshake(_) => self.read_handshake(key, now),
            Role::Data { session } => self.read_data(key, session, now),
        }
    }

    fn on_writable(&mut self, key: usize, now: Instant) {
        let Some(c) = self.conns.get_mut(key) else { return };
        match c.role {
            // A lingering failed login keeps its reply until the delay is over.
            Role::Handshake(_) if c.linger => {}
            Role::Handshake(_) => {
                if let Err(e) = c.stream.write(None, 0, IO_BUDGET) {
                    let peer = c.peer;
                    log::info!("{peer}: write failed during handshake: {e}");
                    self.close_conn(key);
                }
            }
            Role::Data { session } => self.write_data(key, session, now),
        }
    }

    fn read_handshake(&mut self, key: usize, now: Instant) {
        loop {
            let Some(c) = self.conns.get_mut(key) else { return };
            let Role::Handshake(hs) = &mut c.role else { return };
            let want = hs.want();
            if want.is_empty() {
                return;
            }
            let n = match io::Read::read(&mut c.stream.sock, want) {
                Ok(0) => {
                    log::info!("{}: closed the connection during the handshake ({})", c.peer, hs.state());
                    self.close_conn(key);
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::info!("{}: read failed during the handshake: {e}", c.peer);
                    self.close_conn(key);
                    return;
                }
            };
            if !hs.filled(n) {
                continue;
            }
            let peer = c.peer;
            let joining = &self.joining;
            let sessions = &self.sessions;
            let is_join = |raw: &[u8; 16]| join_target(joining, sessions, peer.ip(), raw).is_some();
            let auth = AuthConfig { scheme: self.auth, users: &self.users, secret: &self.secret };
            let step = hs.step(&auth, is_join, &mut crate::sysrand::fill, &mut c.stream.out);
            match step {
                Ok(Event::Continue) => self.on_writable(key, now),
                Ok(Event::Join(raw)) => {
                    self.join(key, &raw, now);
                    return;
                }
                Ok(Event::Ready { cmd, user }) => {
                    if user.is_some() {
                        self.guard.auth_succeeded(peer.ip());
                    }
                    self.admit(key, cmd, user, now);
                    return;
                }
                Err(e @ HandshakeError::AuthFailed { .. }) => {
                    let outcome = self.guard.auth_failed(peer.ip(), now);
                    self.quiet.warn(now, format_args!("{peer}: {e}"));
                    if let Some(ban) = outcome.banned {
                        log::warn!("{}: banned for {} s after repeated failed logins", peer.ip(), ban.as_secs());
                    }
                    if outcome.delay.is_zero() {
                        self.close_conn(key);
                    } else if let Some(c) = self.conns.get_mut(key) {
                        // Hold the failure reply: slows down password guessing.
                        c.linger = true;
                        c.armed = None;
                        self.timers.schedule(Owner::Conn(key), now + outcome.delay, &mut c.armed);
                    }
                    return;
                }
                Err(e) => {
                    self.quiet.info(now, format_args!("{peer}: {e}; closing"));
                    self.close_conn(key);
                    return;
                }
            }
        }
    }

    /// Turns a handshake connection into a data connection of `session`.
    fn attach(&mut self, key: usize, session: usize) {
        let (Some(s), Some(c)) = (self.sessions.get_mut(session), self.conns.get_mut(key)) else { return };
        if matches!(c.role, Role::Handshake(_)) {
            self.handshakes -= 1;
            self.guard.handshake_ended(c.peer.ip());
        }
        let tx_size = tcp_block(s.cmd.tx_size);
        c.stream.set_payload(tx_size, s.cmd.random, tx_size);
        c.role = Role::Data { session };
        c.armed = None;
        s.conns.push(key);
    }

    /// A command passed authentication: apply the limits and start a session.
    fn admit(&mut self, key: usize, cmd: Command, user: Option<String>, now: Instant) {
        let Some(peer) = self.conns.get(key).map(|c| c.peer) else { return };
        let per_ip = self.sessions_per_ip.get(&peer.ip()).copied().unwrap_or(0);
        let refusal = if self.sessions.len() >= self.limits.max_sessions {
            Some(format!("server is full: {} tests running (--max-sessions)", self.sessions.len()))
        } else if let Some(used) = self.mem_now.filter(|&m| self.limits.max_memory > 0 && m > self.limits.max_memory) {
            Some(format!(
                "btestd holds {} of memory, more than --max-memory {}; running tests go on",
                format_amount(used),
                format_amount(self.limits.max_memory)
            ))
        } else if per_ip >= self.limits.max_sessions_per_ip {
            Some(format!("{per_ip} tests already running from this address (--max-sessions-per-ip)"))
        } else if cmd.connections() > usize::from(self.limits.max_connections_per_test) {
            Some(format!(
                "asks for {} TCP connections, the limit is {} (--max-connections)",
                cmd.connections(),
                self.limits.max_connections_per_test
            ))
        } else if cmd.proto == Protocol::Udp && cmd.direction.server_transmits() {
            crate::net::udp_payload_refusal(crate::proto::udp::payload_len(cmd.tx_size, peer.is_ipv6()))
        } else {
            None
        };
        if let Some(why) = refusal {
            self.refuse(key, &why);
            return;
        }

        let id = self.next_session_id;
        self.next_session_id += 1;
        let rate = min_rate(u64::from(cmd.remote_tx_speed), self.limits.max_rate_per_session);
        let pacer = TokenBucket::new(rate, TokenBucket::tcp_burst(rate), now);
        let rx_cap = self.limits.max_rate_per_session;
        let rx_pacer = TokenBucket::new(rx_cap, TokenBucket::tcp_burst(rx_cap), now);
        if let Some(a) = self.acct.as_mut() {
            if let Err(e) = a.ledger.check(user.as_deref(), peer.ip(), std::time::SystemTime::now()) {
                self.refuse(key, &e.to_string());
                return;
            }
        }
        let udp = if cmd.proto == Protocol::Udp {
            match self.open_udp(key, &cmd, rate, now) {
                Ok(u) => Some(u),
                Err(why) => {
                    self.refuse(key, &why);
                    return;
                }
            }
        } else {
            None
        };
        let multi = cmd.is_multi_connection();
        let phase = Phase::Joining { until: now + self.limits.join_timeout };
        let complete_on_arrival = cmd.connections() == 1;
        log::info!(
            "session {id}: {peer} user={} {} {} conns={} tx_size={} remote_tx_speed={} random={}{}",
            user.as_deref().unwrap_or("-"),
            cmd.proto,
            cmd.direction,
            cmd.connections(),
            cmd.tx_size,
            cmd.remote_tx_speed,
            cmd.random,
            udp.as_ref().map_or(String::new(), |(port, _)| format!(" udp_port={port}"))
        );
        let mut session = Session::new(id, peer, user, cmd, phase, pacer, now);
        session.rx_pacer = rx_pacer;
        if let Some((port, flow)) = udp {
            session.udp_port = Some(port);
            session.udp = Some(flow);
        }
        let skey = self.sessions.insert(session);
        *self.sessions_per_ip.entry(peer.ip()).or_insert(0) += 1;
        if let Some(u) = self.sessions.get_mut(skey).and_then(|s| s.udp.as_mut()) {
            if let Err(e) = self.poll.registry().register(
                &mut u.sock,
                token(KIND_UDP, skey),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                log::warn!("{peer}: cannot register UDP socket: {e}");
                if let Some(c) = self.conns.get_mut(key) {
                    c.stream.out.push(&reply::FAILED);
                }
                self.attach(key, skey);
                self.end_session(skey, EndReason::Refused);
                return;
            }
        }
        // Register the token before the OK goes out, so a fast secondary finds it.
        let tok = multi.then(|| self.new_token());
        if let (Some(t), Some(s)) = (tok, self.sessions.get_mut(skey)) {
            s.token = Some(t);
            self.joining.insert(t, skey);
        }
        self.attach(key, skey);
        if let Some(c) = self.conns.get_mut(key) {
            c.stream.out.push(&reply::ok(tok));
            if let Some(port) = self.sessions.get(skey).and_then(|s| s.udp_port) {
                c.stream.out.push(&port.to_be_bytes());
            }
        }
        if complete_on_arrival {
            self.start_session(skey, now);
        } else {
            self.write_data(key, skey, now);
            self.reschedule(skey);
        }
    }

    /// Answers `00 00 00 00` and closes: a limit or resource refused the test.
    fn refuse(&mut self, key: usize, why: &str) {
        if let Some(c) = self.conns.get_mut(key) {
            log::warn!("{}: test refused: {why}", c.peer);
            c.stream.out.push(&reply::FAILED);
        }
        self.close_conn(key);
    }

    /// Takes a pool port and binds it on the address the client reached us at.
    fn open_udp(&mut self, key: usize, cmd: &Command, rate: u64, now: Instant) -> Result<(u16, UdpFlow), String> {
        let Some(c) = self.conns.get(key) else { return Err("connection gone".into()) };
        let local = c.stream.sock.local_addr().map_err(|e| e.to_string())?;
        let peer = c.peer;
        let local_ip = match (local.ip(), peer.ip()) {
            // A v4 client on a v6 socket: bind the v4 address it reached.
            (IpAddr::V6(v6), IpAddr::V4(_)) => v6.to_ipv4_mapped().map_or(local.ip(), IpAddr::V4),
            (ip, _) => ip,
        };
        let (port, sock) = self
            .ports
            .allocate(|port| crate::net::udp_socket(SocketAddr::new(local_ip, port)))
            .map_err(|e| e.to_string())?;
        crate::udp::grow_buffers(&sock);
        let dest = SocketAddr::new(peer.ip(), port.saturating_add(crate::proto::udp::CLIENT_PORT_OFFSET));
        Ok((port, UdpFlow::new(sock, self.udp_io, dest, cmd.tx_size, rate, now)))
    }

    fn udp_send(&mut self, skey: usize, now: Instant) {
        let Some(s) = self.sessions.get_mut(skey) else { return };
        if !s.is_running() || !s.cmd.direction.server_transmits() {
            return;
        }
        let Some(u) = s.udp.as_mut() else { return };
        let payload = if s.cmd.random {
            self.bufs.random.get_or_insert_with(|| crate::stream::payload(BUF_LEN, true))
        } else {
            &self.bufs.zeros
        };
        let tx_before = u.tx_bytes;
        let res = u.send(payload, now, IO_BUDGET, self.total_tx.grant(now));
        self.total_tx.consume(u.tx_bytes - tx_before);
        match res {
            Ok(out) => {
                let wait = if out.limited { Some(self.total_tx.wake_at()) } else { out.wait };
                if out.more {
                    self.ready.push(Ready::UdpWrite(skey));
                } else if let Some(w) = wait {
                    if s.pace_wake.is_none_or(|p| w < p) {
                        s.pace_wake = Some(w);
                        self.reschedule(skey);
                    }
                }
            }
            Err(e) => {
                log::info!("session {}: UDP send to {} failed: {e}", s.id, u.dest);
                self.end_session(skey, EndReason::from_io(&e));
            }
        }
    }

    fn udp_recv(&mut self, skey: usize, now: Instant) {
        let Some(s) = self.sessions.get_mut(skey) else { return };
        let Some(u) = s.udp.as_mut() else { return };
        match u.recv(&mut self.bufs.scratch, IO_BUDGET) {
            Ok(r) => {
                if r.datagrams > 0 {
                    s.last_activity = now;
                }
                if r.more {
                    self.ready.push(Ready::UdpRead(skey));
                }
            }
            Err(e) => {
                log::info!("session {}: UDP receive failed: {e}", s.id);
                self.end_session(skey, EndReason::from_io(&e));
            }
        }
    }

    /// A session token that can never be mistaken for a command's first two
    /// bytes (those are 00/01), with no zero byte.
    fn new_token(&self) -> u16 {
        loop {
            let [a, b] = crate::sysrand::bytes::<2>();
            let t = u16::from_be_bytes([2 + a % 254, 1 + b % 255]);
            if !self.joining.contains_key(&t) {
                return t;
            }
        }
    }

    fn join(&mut self, key: usize, raw: &[u8; 16], now: Instant) {
        let Some(peer) = self.conns.get(key).map(|c| c.peer) else { return };
        let Some(skey) = join_target(&self.joining, &self.sessions, peer.ip(), raw) else {
            self.close_conn(key);
            return;
        };
        self.attach(key, skey);
        let Some(s) = self.sessions.get(skey) else { return };
        let (tok, complete, id, n, want) = (s.token, s.is_complete(), s.id, s.conns.len(), s.cmd.connections());
        if let Some(c) = self.conns.get_mut(key) {
            c.stream.out.push(&reply::ok(tok));
        }
        log::debug!("session {id}: connection {n}/{want} joined from {peer}");
        if complete {
            self.start_session(skey, now);
        } else {
            self.write_data(key, skey, now);
        }
    }

    fn start_session(&mut self, skey: usize, now: Instant) {
        let Some(s) = self.sessions.get_mut(skey) else { return };
        if let Some(t) = s.token {
            self.joining.remove(&t);
        }
        if !s.is_complete() {
            log::info!(
                "session {}: starting with {} of {} connections (join timeout)",
                s.id,
                s.conns.len(),
                s.cmd.connections()
            );
        }
        s.set_phase(Phase::Running, now);
        self.tx_active += usize::from(s.cmd.direction.server_transmits());
        self.rx_active += usize::from(s.cmd.direction.server_receives());
        self.rebalance(now);
        let Some(s) = self.sessions.get_mut(skey) else { return };
        for ck in s.conns.clone() {
            self.write_data(ck, skey, now);
        }
        self.udp_send(skey, now);
        self.reschedule(skey);
    }

    /// With a total cap, each running test gets an equal part of it as its
    /// own cap, so the test served first cannot take the whole budget; the
    /// shared bucket stays as the hard limit.
    fn rebalance(&mut self, now: Instant) {
        let total = self.limits.max_rate_total;
        if total == 0 {
            return;
        }
        let per = self.limits.max_rate_per_session;
        let tx_part = total / self.tx_active.max(1) as u64;
        let rx_part = total / self.rx_active.max(1) as u64;
        for key in self.sessions.keys() {
            let Some(s) = self.sessions.get_mut(key) else { continue };
            if !s.is_running() {
                continue;
            }
            let tx = min_rate(min_rate(u64::from(s.cmd.remote_tx_speed), per), tx_part);
            match s.udp.as_mut() {
                Some(u) => u.set_cap(tx, now),
                None if s.pacer.rate_bps() != tx => s.pacer.set_rate(tx, TokenBucket::tcp_burst(tx), now),
                None => {}
            }
            let rx = min_rate(per, rx_part);
            if s.rx_pacer.rate_bps() != rx {
                s.rx_pacer.set_rate(rx, TokenBucket::tcp_burst(rx), now);
            }
        }
    }

    fn reschedule(&mut self, skey: usize) {
        let Some(s) = self.sessions.get_mut(skey) else { return };
        let at = s.next_deadline(self.limits.idle_timeout, self.limits.max_duration);
        self.timers.schedule(Owner::Session(skey), at, &mut s.armed);
    }

    fn read_data(&mut self, key: usize, skey: usize, now: Instant) {
        let (Some(c), Some(s)) = (self.conns.get_mut(key), self.sessions.get_mut(skey)) else { return };
        let limit = s.rx_pacer.grant(now).min(self.total_rx.grant(now));
        let r = match c.stream.read(&mut self.bufs.scratch, IO_BUDGET, limit) {
            Ok(r) => r,
            Err(e) if session::is_peer_close(&e) => {
                c.eof = true;
                self.peer_closed(skey, now);
                return;
            }
            Err(e) => {
                self.end_session(skey, EndReason::from_io(&e));
                return;
            }
        };
        if r.bytes > 0 {
            s.last_activity = now;
            s.rx_pacer.consume(r.bytes);
            self.total_rx.consume(r.bytes);
        }
        if let Some(u) = s.udp.as_mut() {
            // The client's statuses on the control connection pace our datagrams.
            if c.stream.peer.count != s.peer_statuses {
                s.peer_statuses = c.stream.peer.count;
                if let Some(st) = c.stream.peer.last {
                    u.adapt(st.bytes, now);
                }
            }
        }
        if r.eof {
            c.eof = true;
            self.peer_closed(skey, now);
        } else if r.more && !c.queued_read {
            c.queued_read = true;
            self.ready.push(Ready::Read(key));
        } else if r.throttled {
            // Stop reading (TCP flow control slows the sender) until tokens accrue.
            let wake = s.rx_pacer.wake_at().max(self.total_rx.wake_at());
            if s.rx_wake.is_none_or(|w| wake < w) {
                s.rx_wake = Some(wake);
                self.reschedule(skey);
            }
        }
    }

    /// One connection of a session was closed by the peer: end the session
    /// once all are closed, or after a short grace for data in flight.
    fn peer_closed(&mut self, skey: usize, now: Instant) {
        let Some(s) = self.sessions.get_mut(skey) else { return };
        if s.conns.iter().all(|k| self.conns.get(*k).is_none_or(|c| c.eof)) {
            self.end_session(skey, EndReason::PeerClosed);
        } else if !matches!(s.phase(), Phase::Draining { .. }) {
            s.set_phase(Phase::Draining { until: now + DRAIN_GRACE }, now);
            self.reschedule(skey);
        }
    }

    fn write_data(&mut self, key: usize, skey: usize, now: Instant) {
        let (Some(c), Some(s)) = (self.conns.get_mut(key), self.sessions.get_mut(skey)) else { return };
        let transmitting = s.is_running() && s.cmd.proto == Protocol::Tcp && s.cmd.direction.server_transmits();
        let (payload, allowance) = if transmitting {
            (Some(self.bufs.payload(s.cmd.random)), s.pacer.grant(now).min(self.total_tx.grant(now)))
        } else {
            (None, 0)
        };
        match c.stream.write(payload, allowance, IO_BUDGET) {
            Ok(w) => {
                if w.payload > 0 {
                    s.pacer.consume(w.payload);
                    self.total_tx.consume(w.payload);
                    s.last_activity = now;
                }
                if w.more {
                    if !c.queued_write {
                        c.queued_write = true;
                        self.ready.push(Ready::Write(key));
                    }
                } else if transmitting && !w.blocked && (s.pacer.is_limited() || self.total_tx.is_limited()) {
                    // Out of tokens: wake when the emptier bucket has refilled half way.
                    let wake = s.pacer.wake_at().max(self.total_tx.wake_at());
                    if s.pace_wake.is_none_or(|w| wake < w) {
                        s.pace_wake = Some(wake);
                        self.reschedule(skey);
                    }
                }
            }
            Err(e) if session::is_peer_close(&e) => {
                c.eof = true;
                self.peer_closed(skey, now);
            }
            Err(e) => self.end_session(skey, EndReason::from_io(&e)),
        }
    }

    /// Serves connections that stopped on their I/O budget.
    fn serve_ready(&mut self, now: Instant) {
        for r in std::mem::take(&mut self.ready) {
            match r {
                Ready::Read(key) | Ready::Write(key) => {
                    let Some(c) = self.conns.get_mut(key) else { continue };
                    let Role::Data { session } = c.role else { continue };
                    if let Ready::Read(_) = r {
                        c.queued_read = false;
                        self.read_data(key, session, now);
                    } else {
                        c.queued_write = false;
                        self.write_data(key, session, now);
                    }
                }
                Ready::UdpRead(skey) => self.udp_recv(skey, now),
                Ready::UdpWrite(skey) => self.udp_send(skey, now),
            }
        }
    }

    fn run_timers(&mut self, now: Instant) {
        while let Some((at, owner)) = self.timers.pop_due(now) {
            match owner {
                Owner::Conn(key) => {
                    let Some(c) = self.conns.get_mut(key) else { continue };
                    if !take_if_live(&mut c.armed, at) {
                        continue;
                    }
                    if c.linger {
                        self.close_conn(key);
                    } else if let Role::Handshake(hs) = &c.role {
                        log::info!(
                            "{}: handshake not completed within {} s (waiting for {}); closing",
                            c.peer,
                            self.limits.handshake_timeout.as_secs(),
                            hs.state()
                        );
                        self.close_conn(key);
                    }
                }
                Owner::Session(skey) => {
                    let Some(s) = self.sessions.get_mut(skey) else { continue };
                    if take_if_live(&mut s.armed, at) {
                        self.session_timer(skey, now);
                    }
                }
                Owner::Account => {
                    if take_if_live(&mut self.account_armed, at) {
                        self.account_all();
                        self.timers.schedule(Owner::Account, now + ACCOUNT_EVERY, &mut self.account_armed);
                    }
                }
                Owner::Tick => {
                    if take_if_live(&mut self.tick_armed, at) {
                        self.cpu_now = self.cpu.sample();
                        self.mem_now = crate::memory::own_resident();
                        self.apply_reload();
                        self.timers.schedule(Owner::Tick, now + Duration::from_secs(1), &mut self.tick_armed);
                        self.fd_starved = self.fd_starved.take().and_then(FdStarved::next_second);
                        for i in 0..self.listeners.len() {
                            self.accept(i, now);
                        }
                    }
                }
            }
        }
    }

    /// Charges every session's new bytes to budgets and usage, ending those
    /// that exhausted a budget.
    fn account_all(&mut self) {
        for skey in self.sessions.keys() {
            if let Some(e) = self.charge(skey) {
                let id = self.sessions.get(skey).map_or(0, |s| s.id);
                log::warn!("session {id}: {e}; ending the test");
                self.end_session(skey, EndReason::QuotaExhausted(e.short()));
            }
        }
    }

    fn apply_reload(&mut self) {
        let Some(r) = self.acct.as_ref().and_then(|a| a.writer.poll_reload()) else { return };
        if let Some(a) = self.acct.as_mut() {
            a.ledger.set_config(r.quota);
        }
        self.set_users(r.users);
        log::info!(
            "reloaded from the database: {} users, authentication {}",
            self.users.len(),
            match self.auth {
                Some(s) => s.to_string(),
                None => "off".to_string(),
            }
        );
    }

    /// Bytes the session's test moved so far: (received, transmitted).
    fn session_bytes(&self, s: &Session) -> (u64, u64) {
        if let Some(u) = &s.udp {
            return (u.rx_bytes, u.tx_bytes);
        }
        s.conns
            .iter()
            .filter_map(|k| self.conns.get(*k))
            .fold((0, 0), |(r, t), c| (r + c.stream.rx_bytes, t + c.stream.tx_bytes))
    }

    /// Records what the session moved since the last charge; returns the
    /// budget it exhausted, if any.
    fn charge(&mut self, skey: usize) -> Option<crate::quota::Exceeded> {
        let s = self.sessions.get(skey)?;
        let (rx, tx) = self.session_bytes(s);
        let acct = self.acct.as_mut()?;
        let s = self.sessions.get_mut(skey)?;
        let (drx, dtx) = (rx.saturating_sub(s.charged.0), tx.saturating_sub(s.charged.1));
        if drx == 0 && dtx == 0 {
            return None;
        }
        s.charged = (rx, tx);
        let now = std::time::SystemTime::now();
        let ip = s.peer.ip();
        acct.writer.delta(s.user.as_deref(), ip, drx, dtx, now);
        acct.ledger.charge(s.user.as_deref(), ip, drx, dtx, now)
    }

    fn session_timer(&mut self, skey: usize, now: Instant) {
        let Some(s) = self.sessions.get_mut(skey) else { return };
        match s.phase() {
            Phase::Joining { until } if now >= until => self.start_session(skey, now),
            Phase::Draining { until } if now >= until => {
                self.end_session(skey, EndReason::PeerClosed);
                return;
            }
            _ => {}
        }
        let Some(s) = self.sessions.get_mut(skey) else { return };
        if now >= s.last_activity + self.limits.idle_timeout {
            self.end_session(skey, EndReason::IdleTimeout);
            return;
        }
        if let (Some(start), Some(max)) = (s.running_since, self.limits.max_duration) {
            if now >= start + max {
                self.end_session(skey, EndReason::MaxDuration);
                return;
            }
        }
        let status_due = s.is_running() && now >= s.next_status;
        let pace_due = s.pace_wake.is_some_and(|w| now >= w);
        let rx_due = s.rx_wake.is_some_and(|w| now >= w);
        if rx_due {
            s.rx_wake = None;
        }
        if status_due {
            let st = Status { cpu: self.cpu_now, seq: s.status_seq, bytes: 0 };
            // UDP: the datagram bytes received, on the control connection.
            // A UDP sender cannot be slowed by not reading, but it adapts to
            // what we report: report no more than the per-test cap allows.
            let cap = self.limits.max_rate_per_session / 8;
            let udp_bytes = s
                .udp
                .as_mut()
                .map(|u| std::mem::take(&mut u.rx_interval))
                .map(|b| if cap > 0 { b.min(cap) } else { b });
            for &ck in &s.conns {
                if let Some(c) = self.conns.get_mut(ck) {
                    let interval = udp_bytes.unwrap_or(c.stream.rx_interval);
                    c.stream.rx_interval = 0;
                    c.stream.queue_status(&Status { bytes: u32::try_from(interval).unwrap_or(u32::MAX), ..st });
                }
            }
            s.advance_status_clock(now);
        }
        if pace_due {
            s.pace_wake = None;
        }
        if status_due || pace_due {
            for ck in s.conns.clone() {
                self.write_data(ck, skey, now);
            }
        }
        if pace_due {
            self.udp_send(skey, now);
        }
        if rx_due {
            for ck in self.sessions.get(skey).map(|s| s.conns.clone()).unwrap_or_default() {
                self.read_data(ck, skey, now);
            }
        }
        self.reschedule(skey);
    }

    fn end_session(&mut self, skey: usize, reason: EndReason) {
        // The last partial second counts too; the session is over either way.
        let _ = self.charge(skey);
        let Some(mut s) = self.sessions.remove(skey) else { return };
        if s.running_since.is_some() {
            self.tx_active -= usize::from(s.cmd.direction.server_transmits());
            self.rx_active -= usize::from(s.cmd.direction.server_receives());
            self.rebalance(Instant::now());
        }
        if let Some(t) = s.token {
            if self.joining.get(&t) == Some(&skey) {
                self.joining.remove(&t);
            }
        }
        if let Some(n) = self.sessions_per_ip.get_mut(&s.peer.ip()) {
            *n -= 1;
            if *n == 0 {
                self.sessions_per_ip.remove(&s.peer.ip());
            }
        }
        let (rx, tx) = self.session_bytes(&s);
        let (mut statuses, mut peer_cpu) = (0, None);
        for &ck in &s.conns {
            if let Some(c) = self.conns.get(ck) {
                statuses += c.stream.peer.count;
                if let Some(st) = c.stream.peer.last {
                    peer_cpu = st.cpu.or(peer_cpu);
                }
            }
        }
        for &ck in &s.conns {
            self.close_conn(ck);
        }
        let mut lost = 0;
        if let Some(u) = &mut s.udp {
            lost = u.loss().0;
            if u.foreign > 0 {
                log::info!("session {}: ignored {} datagrams from other addresses", s.id, u.foreign);
            }
            let _ = self.poll.registry().deregister(&mut u.sock);
        }
        if let Some(port) = s.udp_port {
            self.ports.release(port);
        }
        if let Some(a) = &self.acct {
            a.writer.session(crate::store::SessionRecord {
                user: s.user.clone(),
                peer_ip: s.peer.ip(),
                proto: s.cmd.proto,
                direction: s.cmd.direction,
                started: s.started_wall,
                ended: std::time::SystemTime::now(),
                rx_bytes: rx,
                tx_bytes: tx,
                lost_packets: lost,
                end_reason: reason.to_string(),
            });
        }
        let secs = s.running_since.map_or(0.0, |t| t.elapsed().as_secs_f64());
        let mbps = |b: u64| if secs > 0.0 { b as f64 * 8.0 / secs / 1e6 } else { 0.0 };
        log::info!(
            "session {} ended: peer={} user={} proto={} dir={} conns={} secs={:.2} rx_bytes={} tx_bytes={} rx_mbps={:.2} tx_mbps={:.2} lost={} peer_statuses={} peer_cpu={} reason={}",
            s.id,
            s.peer,
            s.user.as_deref().unwrap_or("-"),
            s.cmd.proto,
            s.cmd.direction,
            s.conns.len(),
            secs,
            rx,
            tx,
            mbps(rx),
            mbps(tx),
            lost,
            statuses,
            peer_cpu.map_or("-".to_string(), |c| c.to_string()),
            reason
        );
    }

    /// Drops a connection, first trying once to send queued control bytes
    /// (such as the failure reply).
    fn close_conn(&mut self, key: usize) {
        let Some(mut c) = self.conns.remove(key) else { return };
        if matches!(c.role, Role::Handshake(_)) {
            self.handshakes -= 1;
            self.guard.handshake_ended(c.peer.ip());
        }
        if !c.stream.out.is_empty() {
            c.stream.write_blocked = false;
            let _ = c.stream.write(None, 0, 1);
        }
        let _ = self.poll.registry().deregister(&mut c.stream.sock);
    }
}

/// The joining session `raw` asks to join from `ip`, if any: by token, or
/// (tolerantly) by repeating the primary's exact command.
fn join_target(joining: &HashMap<u16, usize>, sessions: &Slab<Session>, ip: IpAddr, raw: &[u8; 16]) -> Option<usize> {
    let open = |skey: &usize| sessions.get(*skey).is_some_and(|s| s.peer.ip() == ip && !s.is_complete());
    if let Some(&skey) = joining.get(&command::join_token(raw)).filter(|k| open(k)) {
        return Some(skey);
    }
    joining.values().copied().find(|k| open(k) && sessions.get(*k).is_some_and(|s| s.cmd.emit() == *raw))
}

/// The lower of two rates where 0 means unlimited.
fn min_rate(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (a, b) => a.min(b),
    }
}

/// TCP write block size: RouterOS sends 32768; 0 would mean nothing.
fn tcp_block(tx_size: u16) -> u16 {
    if tx_size == 0 { 32768 } else { tx_size }
}

/// IPv4-mapped IPv6 peers are logged and limited as the IPv4 they are.
fn canonical(peer: SocketAddr) -> SocketAddr {
    SocketAddr::new(peer.ip().to_canonical(), peer.port())
}

fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM))
}

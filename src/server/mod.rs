//! The btest server: one mio event loop for every socket.
//!
//! Connections live in a slab indexed by their mio token: a connection is
//! pending ([`conn`]) until its command is admitted ([`admission`]) or it
//! joins a test ([`joining`]); then its stream belongs to a [`session`],
//! which owns the test's clocks and data path. Handlers return what
//! happened; only this loop starts and ends sessions ([`lifecycle`]).
//! Deadlines feed one heap whose earliest entry is the poll timeout.

pub mod accounting;
pub mod admission;
pub mod config;
mod conn;
pub mod control;
pub mod guard;
pub mod handshake;
mod joining;
mod lifecycle;
pub mod log_limit;
mod logins;
mod observe;
mod outbox;
pub mod ports;
pub mod rates;
pub mod session;
pub mod signals;
pub mod slab;
pub mod socket_budget;
mod textfile;
pub mod timers;
#[cfg(feature = "web")]
mod web;

pub use config::{Accounting, Config, DEFAULT_MAX_DURATION_SECS, DEFAULT_MAX_MEMORY, Limits, ServerError, WebConfig};

use crate::cpu::CpuSampler;
use accounting::ACCOUNT_EVERY;
use conn::Conn;
use joining::Joining;
use log_limit::{FdStarved, PeerLog};
use logins::Logins;
use mio::event::Event;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use rates::Rates;
use session::{Buffers, EndReason, Io, Ready, Session};
use slab::Slab;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use timers::{Owner, Timers, take_if_live};

/// Token kinds, in the low three bits of a mio token.
const KIND_LISTENER: usize = 0;
const KIND_CONN: usize = 1;
const KIND_UDP: usize = 2;
const KIND_SIGNAL: usize = 3;
const KIND_CONTROL: usize = 4;
#[cfg(feature = "web")]
const KIND_HTTP: usize = 5;

fn token(kind: usize, id: usize) -> Token {
    Token(id << 3 | kind)
}

/// Readings taken once a second for all sessions.
struct Vitals {
    cpu: CpuSampler,
    /// This second's CPU load, for status messages.
    cpu_now: Option<u8>,
    /// btestd's own memory, for `Limits::max_memory`.
    mem_now: Option<u64>,
}

impl Vitals {
    fn sample(&mut self) {
        self.cpu_now = self.cpu.sample();
        self.mem_now = crate::memory::own_resident();
    }
}

pub struct Server {
    poll: Poll,
    listeners: Vec<TcpListener>,
    signals: signals::Signals,
    conns: Slab<Conn>,
    sessions: Slab<Session>,
    joining: Joining,
    timers: Timers,
    tick_armed: Option<Instant>,
    account_armed: Option<Instant>,
    /// Sockets that used their I/O budget and must be served again.
    ready: Vec<Ready>,
    ports: ports::PortPool,
    udp_io: crate::udp::IoMode,
    /// Peers whose tests are traced.
    trace: Vec<crate::cidr::Cidr>,
    guard: guard::Guard,
    rates: Rates,
    /// Rate limit for log lines that peers can cause at will.
    peer_log: PeerLog,
    fd_starved: FdStarved,
    bufs: Buffers,
    vitals: Vitals,
    logins: Logins,
    acct: Option<Accounting>,
    limits: Limits,
    next_session_id: u64,
    stopping: bool,
    /// What `btestd status` and the metrics report.
    counters: observe::Counters,
    control: Option<control::Control>,
    metrics_file: Option<textfile::Textfile>,
    #[cfg(feature = "web")]
    web: Option<web::Web>,
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
        let secret = config.secret.unwrap_or_else(crate::sysrand::bytes);
        let control = match &config.control {
            Some(cfg) => control::Control::open(cfg, poll.registry())?,
            None => None,
        };
        let metrics_file = config.metrics_file.map(|(path, every)| textfile::Textfile::new(path, every));
        #[cfg(feature = "web")]
        let web = match config.web {
            Some(cfg) => Some(web::Web::open(cfg, poll.registry())?),
            None => None,
        };
        Ok(Server {
            poll,
            listeners,
            signals,
            conns: Slab::new(),
            sessions: Slab::new(),
            joining: Joining::default(),
            timers: Timers::new(),
            tick_armed: None,
            account_armed: None,
            ready: Vec::new(),
            ports: ports::PortPool::new(config.udp_port_base, config.udp_port_count),
            udp_io: config.udp_io,
            trace: config.trace,
            guard: guard::Guard::new(config.guard),
            rates: Rates::new(&config.limits, Instant::now()),
            peer_log: PeerLog::default(),
            fd_starved: FdStarved::default(),
            bufs: Buffers::new(),
            vitals: Vitals { cpu: CpuSampler::new(), cpu_now: None, mem_now: crate::memory::own_resident() },
            logins: Logins::new(config.scheme, config.users, config.cli_user, secret),
            acct: config.accounting,
            limits: config.limits,
            next_session_id: 1,
            stopping: false,
            counters: observe::Counters::new(Instant::now()),
            control,
            metrics_file,
            #[cfg(feature = "web")]
            web,
        })
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().filter_map(|l| l.local_addr().ok()).collect()
    }

    /// Serves until SIGTERM or SIGINT.
    pub fn run(&mut self) -> Result<(), ServerError> {
        for a in self.local_addrs() {
            log::info!("listening on {a}");
        }
        if let Some(c) = &self.control {
            log::info!("control socket {}", c.path().display());
        }
        #[cfg(feature = "web")]
        if let Some(a) = self.web.as_ref().and_then(|w| w.local_addr()) {
            log::info!("web page on http://{a}/");
        }
        match crate::net::raise_fd_limit() {
            Ok(n) => log::debug!("open-file limit {n}"),
            Err(e) => log::warn!("cannot read the open-file limit: {e}"),
        }
        match self.logins.active() {
            None => log::info!("authentication disabled"),
            Some(s) => log::info!("authentication: {s}, {} user(s)", self.logins.user_count()),
        }
        let mut events = Events::with_capacity(1024);
        let now = Instant::now();
        self.vitals.cpu.sample();
        self.timers.schedule(Owner::Tick, now + Duration::from_secs(1), &mut self.tick_armed);
        if self.acct.is_some() {
            self.timers.schedule(Owner::Account, now + ACCOUNT_EVERY, &mut self.account_armed);
        }
        let (mut worst_turn, mut worst_cpu, mut cpu_before) = (Duration::ZERO, Duration::ZERO, thread_cpu());
        let (mut turns, mut slow_turns) = (0u64, 0u64);
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
            // Work left from the last iteration first, then the new events:
            // when the iteration's byte budget runs out, those queue behind.
            self.bufs.new_iteration();
            self.serve_ready(now);
            for ev in events.iter() {
                let (kind, id) = (ev.token().0 & 7, ev.token().0 >> 3);
                match kind {
                    KIND_LISTENER => self.accept(id, now),
                    KIND_CONN => self.on_conn_event(id, ev, now),
                    KIND_UDP => self.on_udp_event(id, ev, now),
                    KIND_SIGNAL => self.on_signal(),
                    KIND_CONTROL => self.on_control_event(id, now),
                    #[cfg(feature = "web")]
                    KIND_HTTP => self.on_web_event(id, now),
                    _ => {}
                }
            }
            self.run_timers(Instant::now());
            worst_turn = worst_turn.max(now.elapsed());
            let cpu = thread_cpu();
            let spent = cpu.saturating_sub(cpu_before);
            worst_cpu = worst_cpu.max(spent);
            cpu_before = cpu;
            turns += 1;
            slow_turns += u64::from(spent >= SLOW_TURN);
        }
        self.shutdown();
        // How long other sockets waited at most: the loop's latency bound;
        // on a busy machine the wall time includes other processes' turns.
        log::info!(
            "event loop: worst iteration {} us, {} us on CPU; {slow_turns} of {turns} iterations took {} ms of CPU or more",
            worst_turn.as_micros(),
            worst_cpu.as_micros(),
            SLOW_TURN.as_millis()
        );
        Ok(())
    }

    fn on_conn_event(&mut self, key: usize, ev: &Event, now: Instant) {
        let writable = ev.is_writable() || ev.is_write_closed() || ev.is_error();
        let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
        match self.conns.get_mut(key) {
            Some(&mut Conn::Data { session, index }) => {
                if writable {
                    if let Some(s) = self.sessions.get_mut(session) {
                        s.conn_writable(index);
                    }
                    self.drive(session, now, |s, io| s.write(index, io));
                }
                if readable {
                    self.drive(session, now, |s, io| s.read(index, io));
                }
            }
            Some(Conn::Pending(p)) => {
                if writable {
                    p.stream.write_blocked = false;
                    if let Err(why) = p.flush() {
                        self.close_pending(key, why, now);
                        return;
                    }
                }
                if readable {
                    self.read_pending(key, now);
                }
            }
            None => {}
        }
    }

    fn on_udp_event(&mut self, skey: usize, ev: &Event, now: Instant) {
        if ev.is_writable() {
            if let Some(s) = self.sessions.get_mut(skey) {
                s.udp_writable();
            }
            self.drive(skey, now, |s, io| s.udp_send(io));
        }
        if ev.is_readable() || ev.is_error() {
            self.drive(skey, now, |s, io| s.udp_recv(io));
        }
    }

    /// Runs a session handler, then acts on what it returned: reschedule
    /// the session's clocks, or end it.
    fn drive(
        &mut self,
        skey: usize,
        now: Instant,
        handler: impl FnOnce(&mut Session, &mut Io<'_>) -> Result<(), EndReason>,
    ) {
        let Some(s) = self.sessions.get_mut(skey) else { return };
        let mut io = Io { now, bufs: &mut self.bufs, rates: &mut self.rates, ready: &mut self.ready, skey };
        match handler(s, &mut io) {
            Ok(()) => self.reschedule(skey),
            Err(reason) => self.end_session(skey, reason),
        }
    }

    fn reschedule(&mut self, skey: usize) {
        let Some(s) = self.sessions.get_mut(skey) else { return };
        let at = s.next_deadline(self.limits.idle_timeout, self.limits.max_duration);
        self.timers.schedule(Owner::Session(skey), at, s.armed());
    }

    /// Serves sockets that stopped on their I/O budget.
    fn serve_ready(&mut self, now: Instant) {
        let mut queued = std::mem::take(&mut self.ready).into_iter();
        while let Some(r) = queued.next() {
            if self.bufs.iteration_spent() {
                // The rest keep their place at the front: served first next time.
                let mut rest: Vec<Ready> = std::iter::once(r).chain(queued).collect();
                rest.append(&mut self.ready);
                self.ready = rest;
                return;
            }
            match r {
                Ready::Read(key) | Ready::Write(key) => {
                    let Some(&Conn::Data { session, index }) = self.conns.get(key) else { continue };
                    let write = matches!(r, Ready::Write(_));
                    self.drive(session, now, |s, io| s.resume(index, write, io));
                }
                Ready::UdpRead(skey) => self.drive(skey, now, |s, io| s.udp_recv(io)),
                Ready::UdpWrite(skey) => self.drive(skey, now, |s, io| s.udp_send(io)),
            }
        }
    }

    fn run_timers(&mut self, now: Instant) {
        while let Some((at, owner)) = self.timers.pop_due(now) {
            match owner {
                Owner::Conn(key) => self.pending_timer(key, at, now),
                Owner::Session(skey) => {
                    let Some(s) = self.sessions.get_mut(skey) else { continue };
                    if take_if_live(s.armed(), at) {
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
                        self.vitals.sample();
                        self.counters.tick(&mut self.sessions, now);
                        self.observe_tick(now);
                        self.apply_reload();
                        self.timers.schedule(Owner::Tick, now + Duration::from_secs(1), &mut self.tick_armed);
                        self.fd_starved.next_second();
                        self.peer_log.tick(now);
                        for i in 0..self.listeners.len() {
                            self.accept(i, now);
                        }
                        self.control_accept(now);
                        #[cfg(feature = "web")]
                        self.web_accept(now);
                    }
                }
            }
        }
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

    fn apply_reload(&mut self) {
        let Some(users) = self.acct.as_mut().and_then(Accounting::poll_reload) else { return };
        self.logins.set_users(users);
        log::info!(
            "reloaded from the database: {} users, authentication {}",
            self.logins.user_count(),
            self.logins.describe()
        );
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
        if let Some(c) = self.control.take() {
            c.shutdown(self.poll.registry());
        }
        if let Some(a) = self.acct.take() {
            log::info!("saving usage to the database");
            a.writer.shutdown();
        }
        log::info!("server stopped");
    }
}

/// An iteration this long keeps other sockets and timers waiting too long.
const SLOW_TURN: Duration = Duration::from_millis(5);

/// CPU time this thread has used.
fn thread_cpu() -> Duration {
    // SAFETY: all-zero is a valid timespec, filled by clock_gettime.
    let mut t: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: t is a live, writable timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

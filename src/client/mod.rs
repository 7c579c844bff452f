//! `btestd client`: the client side of the protocol, used by the tests and
//! benchmarks and usable against RouterOS's own bandwidth server.
//!
//! The handshake is blocking (with timeouts); the data phase runs on a mio
//! loop of its own so one thread can drive many connections at full rate.

pub mod handshake;
pub mod join;
pub mod report;

pub use handshake::Credentials;

use crate::auth::ecsrp5::EcSrpError;
use crate::cpu::CpuSampler;
use crate::pacer::TokenBucket;
use crate::proto::{Command, Direction, Protocol, command};
use crate::stream::Stream;
use crate::udp::{IoMode, UdpFlow};
use join::{JoinReplies, Skipped};
use mio::{Events, Interest, Poll, Token};
use report::{Interval, Reporter};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What to test.
#[derive(Clone)]
pub struct Config {
    pub server: SocketAddr,
    pub proto: Protocol,
    /// Server's view, as on the wire.
    pub direction: Direction,
    pub duration: Duration,
    /// Number of TCP connections (1 = single).
    pub connections: u8,
    pub tx_size: u16,
    /// Our own transmit rate, bits/s (0 = unlimited).
    pub local_speed: u32,
    /// The rate we ask the server to transmit at, bits/s (0 = unlimited).
    pub remote_speed: u32,
    pub random: bool,
    pub credentials: Option<Credentials>,
    pub connect_timeout: Duration,
    /// Log every control-plane message and status (see [`crate::trace`]).
    pub trace: bool,
}

impl Config {
    pub fn command(&self) -> Command {
        Command {
            proto: self.proto,
            direction: self.direction,
            random: self.random,
            conn_count: if self.connections > 1 { self.connections } else { 0 },
            tx_size: self.tx_size,
            client_buf_size: 0,
            remote_tx_speed: self.remote_speed,
            local_tx_speed: self.local_speed,
        }
    }
}

/// Why a client run failed.
#[derive(Debug)]
pub enum ClientError {
    Connect {
        addr: SocketAddr,
        source: io::Error,
    },
    Handshake {
        what: &'static str,
        source: io::Error,
    },
    /// The server hung up while we waited for this message.
    Closed(&'static str),
    Protocol(String),
    /// An EC-SRP5 message could not be built or did not check out (shown
    /// as a protocol error).
    EcSrp5(EcSrpError),
    /// The server asked for credentials (scheme named) and none were given.
    AuthRequired(&'static str),
    /// The server answered `00 00 00 00`: wrong credentials or refused by a limit.
    Refused,
    /// EC-SRP5: the server could not prove it knows the validator.
    ServerProof,
    /// The server closed extra connection `connection` (2..=`of`) before
    /// any data: it did not join that connection to the test.
    JoinRefused {
        connection: usize,
        of: usize,
    },
    Unsupported(&'static str),
    Io(io::Error),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect { addr, source } => write!(f, "cannot connect to {addr}: {source}"),
            ClientError::Handshake { what, source } => {
                write!(f, "handshake failed while reading/sending the {what}: {source}")
            }
            ClientError::Closed(what) => write!(
                f,
                "the server closed the connection instead of sending the {what} (refused: address not allowed, banned, or too many connections; see the server's log)"
            ),
            ClientError::Protocol(m) => write!(f, "protocol error: {m}"),
            ClientError::EcSrp5(e) => write!(f, "protocol error: EC-SRP5: {e}"),
            ClientError::AuthRequired(s) => {
                write!(f, "the server requires authentication ({s}); give --user and --password")
            }
            ClientError::Refused => write!(
                f,
                "the server refused the test: authentication failed or a server limit was reached (see the server log)"
            ),
            ClientError::ServerProof => {
                write!(f, "the server failed to prove the password (EC-SRP5); it may be an impostor")
            }
            ClientError::JoinRefused { connection, of } => write!(
                f,
                "the server closed connection {connection} of {of} instead of joining it to the test (too many \
                 connections in handshake, or the test's join time ran out; see the server's log)"
            ),
            ClientError::Unsupported(m) => write!(f, "{m}"),
            ClientError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// Totals of a run.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub seconds: f64,
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    /// Sum of the byte counts in the server's status messages.
    pub remote_rx_bytes: u64,
    pub local_cpu: Option<u8>,
    pub remote_cpu: Option<u8>,
    pub lost_packets: u64,
    /// The server closed the test before the duration ended.
    pub ended_by_server: bool,
}

const IO_BUDGET: u32 = 16;
const BUF_LEN: usize = 256 * 1024;

/// Runs a test and reports each second through `reporter`.
pub fn run(config: &Config, reporter: &mut dyn Reporter) -> Result<Summary, ClientError> {
    let cmd = config.command();
    let trace = config.trace.then(|| crate::trace::Trace::new(format!("client {}", config.server), Instant::now()));
    let mut primary = handshake::connect(config.server, config.connect_timeout)?;
    let granted = handshake::primary(&mut primary, &cmd, config.credentials.as_ref(), trace.as_ref())?;
    if let Some(port) = granted.udp_port {
        return udp_data_phase(config, &cmd, primary, port, reporter, trace.as_ref());
    }
    // Every extra connection at once, as RouterOS does: their join
    // requests go out first thing in the data phase, answered or not.
    let mut joins = Vec::new();
    if cmd.connections() > 1 {
        let token = granted
            .token
            .ok_or_else(|| ClientError::Protocol("multi-connection OK carried no session token".into()))?;
        let socks = join::connect_all(config.server, cmd.connections() - 1, config.connect_timeout)?;
        joins = socks.into_iter().map(|s| (s, token)).collect();
    }
    primary.set_nonblocking(true).map_err(ClientError::Io)?;
    tcp_data_phase(config, &cmd, mio::net::TcpStream::from_std(primary), joins, reporter, trace.as_ref())
}

/// The tracer of connection `index` (0: the primary), when tracing.
fn conn_trace(trace: Option<&crate::trace::Trace>, index: usize) -> Option<Box<crate::trace::Trace>> {
    trace.map(|t| Box::new(t.child(format!("conn {}", index + 1))))
}

/// The TCP data phase over the primary and the extra connections, each
/// with the token of its join request.
fn tcp_data_phase(
    config: &Config,
    cmd: &Command,
    primary: mio::net::TcpStream,
    joins: Vec<(mio::net::TcpStream, u16)>,
    reporter: &mut dyn Reporter,
    trace: Option<&crate::trace::Trace>,
) -> Result<Summary, ClientError> {
    let mut poll = Poll::new().map_err(ClientError::Io)?;
    let block = cmd.tcp_block();
    let mut streams = Vec::with_capacity(joins.len() + 1);
    let mut replies = Vec::with_capacity(joins.len() + 1);
    let conns = std::iter::once((primary, None)).chain(joins.into_iter().map(|(s, t)| (s, Some(t))));
    for (i, (sock, token)) in conns.enumerate() {
        let mut st = Stream::new(sock, block, cmd.random, block);
        st.trace = conn_trace(trace, i);
        // As on the server: what cannot hold a status is dropped in the
        // kernel; a trace keeps every byte in view.
        if cmd.direction.server_transmits() && trace.is_none() {
            st.discard_unread_payload();
        }
        match token {
            Some(t) => {
                st.out.push(&command::emit_join(t));
                if let Some(tr) = &st.trace {
                    tr.line(format_args!("tx join token={t} {}", crate::trace::hex(&command::emit_join(t))));
                }
                replies.push(JoinReplies::new(t));
            }
            None => replies.push(JoinReplies::none()),
        }
        poll.registry()
            .register(&mut st.sock, Token(i), Interest::READABLE | Interest::WRITABLE)
            .map_err(ClientError::Io)?;
        streams.push(st);
    }
    let transmit = cmd.direction.server_receives();
    let payload = crate::stream::payload(BUF_LEN, config.random);
    // The same bytes in a payload file: sent without a copy each write.
    crate::zerocopy::init();
    let file = match transmit && crate::zerocopy::send_ok() {
        true => crate::zerocopy::PayloadFile::for_sending(&payload),
        false => None,
    };
    let mut scratch = vec![0u8; BUF_LEN].into_boxed_slice();
    let start = Instant::now();
    for st in &mut streams {
        st.batch_reads(start, crate::stream::MAX_READ_BATCH);
    }
    let end = start + config.duration;
    let mut pacer =
        TokenBucket::new(u64::from(config.local_speed), TokenBucket::tcp_burst(u64::from(config.local_speed)), start);
    let mut pace_wake: Option<Instant> = None;
    let mut cpu = CpuSampler::new();
    cpu.sample();
    let mut next_report = start + Duration::from_secs(1);
    let mut last = Interval::default();
    let mut second = 0u32;
    let mut summary = Summary::default();
    let mut seen_statuses = vec![0u32; streams.len()];
    let mut pending: Vec<(usize, bool)> = Vec::new();
    let mut events = Events::with_capacity(256);
    // Kick off writing on every connection.
    let mut writable: Vec<usize> = (0..streams.len()).collect();

    'run: loop {
        let now = Instant::now();
        // Write and read passes for connections that need one.
        let pass = std::mem::take(&mut writable);
        // The pass's tokens in equal parts: a paced test uses every
        // connection, not only the first one served.
        let mut tokens = if transmit { pacer.grant(now) } else { 0 };
        for (k, &i) in pass.iter().enumerate() {
            let Some(st) = streams.get_mut(i) else { continue };
            let allowance = tokens / (pass.len() - k) as u64;
            let w = st
                .write_from(
                    transmit.then_some(crate::stream::Payload { bytes: &payload, file: file.as_ref() }),
                    allowance,
                    IO_BUDGET,
                )
                .map_err(|e| stream_error(e, &replies, i))?;
            pacer.consume(w.payload);
            tokens = tokens.saturating_sub(w.payload);
            if w.more {
                pending.push((i, false));
            } else if transmit && !w.blocked && pacer.is_limited() {
                pace_wake = Some(pacer.wake_at());
            }
        }
        for (i, read) in std::mem::take(&mut pending) {
            if read {
                if read_stream(&mut streams, &mut replies, i, &mut scratch, &mut pending)? {
                    summary.ended_by_server = true;
                    break 'run;
                }
            } else {
                writable.push(i);
            }
        }
        let now = Instant::now();
        if now >= next_report || now >= end {
            let cur = totals(&streams, &mut seen_statuses, &mut summary);
            second += 1;
            let iv = Interval {
                second,
                seconds: (now - start).as_secs_f64().min(f64::from(second)),
                local_cpu: cpu.sample(),
                remote_cpu: summary.remote_cpu,
                ..cur.minus(&last)
            };
            summary.local_cpu = iv.local_cpu;
            if now < end || iv.tx_bytes + iv.rx_bytes > 0 {
                reporter.interval(&iv);
            }
            last = cur;
            next_report += Duration::from_secs(1);
            if now >= end {
                break;
            }
            for st in &mut streams {
                st.batch_reads(now, crate::stream::MAX_READ_BATCH);
            }
        }
        if pace_wake.is_some_and(|w| now >= w) {
            pace_wake = None;
            writable.extend(0..streams.len());
        }
        let mut deadline = next_report.min(end);
        if let Some(w) = pace_wake {
            deadline = deadline.min(w);
        }
        let timeout = if writable.is_empty() && pending.is_empty() {
            deadline.saturating_duration_since(Instant::now())
        } else {
            Duration::ZERO
        };
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(ClientError::Io(e));
        }
        for ev in events.iter() {
            let i = ev.token().0;
            if ev.is_writable() {
                if let Some(st) = streams.get_mut(i) {
                    st.write_blocked = false;
                }
                writable.push(i);
            }
            if (ev.is_readable() || ev.is_read_closed() || ev.is_error())
                && read_stream(&mut streams, &mut replies, i, &mut scratch, &mut pending)?
            {
                summary.ended_by_server = true;
                break 'run;
            }
        }
    }
    let t = totals(&streams, &mut seen_statuses, &mut summary);
    summary.seconds = start.elapsed().as_secs_f64().min(config.duration.as_secs_f64());
    summary.tx_bytes = t.tx_bytes;
    summary.rx_bytes = t.rx_bytes;
    summary.remote_rx_bytes = t.remote_rx_bytes;
    close_gracefully(&mut poll, &mut streams, &mut scratch);
    reporter.summary(&summary);
    Ok(summary)
}

/// The UDP data phase: datagrams on their own socket, one status a second
/// each way on the control connection.
fn udp_data_phase(
    config: &Config,
    cmd: &Command,
    control: std::net::TcpStream,
    port: u16,
    reporter: &mut dyn Reporter,
    trace: Option<&crate::trace::Trace>,
) -> Result<Summary, ClientError> {
    let local_ip = control.local_addr().map_err(ClientError::Io)?.ip();
    let server = control.peer_addr().map_err(ClientError::Io)?;
    let own_port = port.checked_add(crate::proto::udp::CLIENT_PORT_OFFSET).unwrap_or(0);
    // The protocol's port first; any port works with a server that learns it.
    let sock = crate::net::udp_socket(SocketAddr::new(local_ip, own_port))
        .or_else(|_| crate::net::udp_socket(SocketAddr::new(local_ip, 0)))
        .map_err(ClientError::Io)?;
    crate::udp::grow_buffers(&sock);
    let start = Instant::now();
    let dest = SocketAddr::new(server.ip(), port);
    let mut flow = UdpFlow::new(sock, IoMode::native(), dest, config.tx_size, u64::from(config.local_speed), 0, start);
    // Opens NAT mappings and tells the server where we are.
    let _ = flow.sock.send_to(&[], dest);

    let mut poll = Poll::new().map_err(ClientError::Io)?;
    control.set_nonblocking(true).map_err(ClientError::Io)?;
    // Only statuses travel on the control connection: read them as frames
    // (a stray byte must not hide the server's statuses), whatever payload
    // the datagrams carry.
    let mut ctrl = [Stream::new(mio::net::TcpStream::from_std(control), 1, false, 1)];
    ctrl[0].set_statuses_only();
    ctrl[0].trace = conn_trace(trace, 0);
    poll.registry()
        .register(&mut ctrl[0].sock, Token(0), Interest::READABLE | Interest::WRITABLE)
        .map_err(ClientError::Io)?;
    poll.registry()
        .register(&mut flow.sock, Token(1), Interest::READABLE | Interest::WRITABLE)
        .map_err(ClientError::Io)?;

    let transmit = cmd.direction.server_receives();
    let payload = crate::stream::payload(BUF_LEN.max(flow.payload_len()), config.random);
    let mut scratch = vec![0u8; 65536].into_boxed_slice();
    let end = start + config.duration;
    let mut cpu = CpuSampler::new();
    cpu.sample();
    let mut next_report = start + Duration::from_secs(1);
    let mut second = 0u32;
    let mut last = Interval::default();
    let mut seen = 0u32;
    let mut summary = Summary::default();
    let (mut send_due, mut recv_due) = (transmit, true);
    let mut pace_wake: Option<Instant> = None;
    let mut events = Events::with_capacity(64);
    loop {
        let now = Instant::now();
        if send_due {
            let out = flow.send(&payload, now, IO_BUDGET, u64::MAX).map_err(ClientError::Io)?;
            send_due = out.more;
            pace_wake = out.wait;
        }
        if recv_due {
            recv_due = flow.recv(&mut scratch, IO_BUDGET).map_err(ClientError::Io)?.more;
        }
        let st = &mut ctrl[0];
        if st.peer.count != seen {
            seen = st.peer.count;
            if let Some(p) = st.peer.last {
                summary.remote_cpu = p.cpu.or(summary.remote_cpu);
                if transmit {
                    // The sum of all statuses so far: one read may bring two.
                    flow.adapt(st.peer.bytes, now);
                }
            }
        }
        if now >= next_report || now >= end {
            second += 1;
            let local_cpu = cpu.sample();
            if let Some(t) = &st.trace {
                t.line(format_args!("udp rx={} tx={} peer={}", flow.rx_bytes, flow.tx_bytes, flow.dest));
            }
            st.queue_status(local_cpu, flow.take_rx_interval());
            let cur = Interval {
                tx_bytes: flow.tx_bytes,
                rx_bytes: flow.rx_bytes,
                remote_rx_bytes: st.peer.bytes,
                lost_packets: flow.loss().0,
                ..Interval::default()
            };
            let iv = Interval {
                second,
                seconds: (now - start).as_secs_f64().min(f64::from(second)),
                local_cpu,
                remote_cpu: summary.remote_cpu,
                ..cur.minus(&last)
            };
            summary.local_cpu = local_cpu;
            if now < end || iv.tx_bytes + iv.rx_bytes > 0 {
                reporter.interval(&iv);
            }
            last = cur;
            next_report += Duration::from_secs(1);
            if now >= end {
                break;
            }
        }
        st.write(None, 0, IO_BUDGET).map_err(ClientError::Io)?;
        if pace_wake.is_some_and(|w| now >= w) {
            pace_wake = None;
            send_due = transmit;
        }
        let mut deadline = next_report.min(end);
        if let Some(w) = pace_wake {
            deadline = deadline.min(w);
        }
        let timeout =
            if send_due || recv_due { Duration::ZERO } else { deadline.saturating_duration_since(Instant::now()) };
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(ClientError::Io(e));
        }
        for ev in events.iter() {
            match ev.token().0 {
                0 => {
                    if ev.is_writable() {
                        ctrl[0].write_blocked = false;
                    }
                    if (ev.is_readable() || ev.is_read_closed() || ev.is_error())
                        && read_stream(&mut ctrl, &mut [JoinReplies::none()], 0, &mut scratch, &mut Vec::new())?
                    {
                        summary.ended_by_server = true;
                    }
                }
                _ => {
                    if ev.is_writable() {
                        flow.write_blocked = false;
                        send_due = transmit;
                    }
                    if ev.is_readable() {
                        recv_due = true;
                    }
                }
            }
        }
        if summary.ended_by_server {
            break;
        }
    }
    summary.seconds = start.elapsed().as_secs_f64().min(config.duration.as_secs_f64());
    summary.tx_bytes = flow.tx_bytes;
    summary.rx_bytes = flow.rx_bytes;
    summary.remote_rx_bytes = ctrl[0].peer.bytes;
    summary.lost_packets = flow.loss().0;
    close_gracefully(&mut poll, &mut ctrl, &mut scratch);
    reporter.summary(&summary);
    Ok(summary)
}

/// Half-closes every connection and discards what the server still sends
/// until it closes too (bounded), so the server reads every byte we sent
/// instead of losing the tail to a reset.
fn close_gracefully(poll: &mut Poll, streams: &mut [Stream], scratch: &mut [u8]) {
    let mut open: Vec<bool> = streams.iter().map(|st| st.sock.shutdown(std::net::Shutdown::Write).is_ok()).collect();
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut events = Events::with_capacity(64);
    let mut check: Vec<usize> = (0..streams.len()).collect();
    while open.iter().any(|&o| o) {
        for i in std::mem::take(&mut check) {
            let Some(st) = streams.get_mut(i) else { continue };
            loop {
                match io::Read::read(&mut st.sock, scratch) {
                    Ok(0) => {
                        open[i] = false;
                        break;
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        open[i] = false;
                        break;
                    }
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !open.iter().any(|&o| o) {
            break;
        }
        if poll.poll(&mut events, Some(left)).is_err() {
            break;
        }
        check.extend(events.iter().map(|e| e.token().0));
    }
}

/// Reads one connection, first taking off what its server sent ahead of
/// data; true when the server closed it.
fn read_stream(
    streams: &mut [Stream],
    replies: &mut [JoinReplies],
    i: usize,
    scratch: &mut [u8],
    pending: &mut Vec<(usize, bool)>,
) -> Result<bool, ClientError> {
    let of = streams.len();
    let (Some(st), Some(ahead)) = (streams.get_mut(i), replies.get_mut(i)) else { return Ok(false) };
    match join::skip_replies(&mut st.sock, ahead, st.trace.as_deref()).map_err(ClientError::Io)? {
        Skipped::Data => {}
        Skipped::Wait => return Ok(false),
        Skipped::Closed => return Err(ClientError::JoinRefused { connection: i + 1, of }),
    }
    match st.read(scratch, IO_BUDGET, u64::MAX) {
        Ok(r) if r.eof => Ok(true),
        Ok(r) => {
            if r.more {
                pending.push((i, true));
            }
            Ok(false)
        }
        Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe) => Ok(true),
        Err(e) => Err(ClientError::Io(e)),
    }
}

/// A write on connection `i` failed: an extra connection the server drops
/// before its data began was refused, anything else is an I/O error.
fn stream_error(e: io::Error, replies: &[JoinReplies], i: usize) -> ClientError {
    let peer_closed = matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe);
    match replies.get(i) {
        Some(r) if peer_closed && !r.is_done() => ClientError::JoinRefused { connection: i + 1, of: replies.len() },
        _ => ClientError::Io(e),
    }
}

/// Running totals across connections; folds new peer statuses into `summary`.
fn totals(streams: &[Stream], seen: &mut [u32], summary: &mut Summary) -> Interval {
    let mut t = Interval::default();
    for (st, seen) in streams.iter().zip(seen.iter_mut()) {
        t.tx_bytes += st.tx_bytes;
        t.rx_bytes += st.rx_bytes;
        if st.peer.count != *seen {
            *seen = st.peer.count;
            if let Some(s) = st.peer.last {
                summary.remote_cpu = s.cpu.or(summary.remote_cpu);
            }
        }
        t.remote_rx_bytes += st.peer.bytes;
    }
    t
}

//! What `btestd serve` is told: listening addresses, users, operator
//! limits, accounting; and why it could not start.

use super::guard::GuardConfig;
use crate::auth::{Scheme, User, Users};
use crate::udp::IoMode;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

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
    /// Longest test; None = until the client stops it. A public server
    /// must not let a handful of endless tests hold its slots.
    pub max_duration: Option<Duration>,
    /// Cap on each test's rate in each direction, bits/s (0 = none).
    pub max_rate_per_session: u64,
    /// Cap on all tests together in each direction, bits/s (0 = none).
    pub max_rate_total: u64,
    /// New tests are refused while btestd's own memory is above this many bytes (0 = no budget).
    pub max_memory: u64,
    /// Kernel buffer memory all data sockets together may hold (0 = left to the kernel); see
    /// [`super::socket_budget`].
    pub max_socket_memory: u64,
}

/// Ten minutes: longer than any speed test RouterOS users run by hand;
/// `--max-duration 0` lifts it for soak tests.
pub const DEFAULT_MAX_DURATION_SECS: u64 = 600;

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
            max_duration: Some(Duration::from_secs(DEFAULT_MAX_DURATION_SECS)),
            max_rate_per_session: 0,
            max_rate_total: 0,
            max_memory: DEFAULT_MAX_MEMORY,
            max_socket_memory: super::socket_budget::DEFAULT_BUDGET,
        }
    }
}

/// Usage accounting: budgets checked in memory, records written by the
/// store's writer thread; its methods are in `accounting.rs`.
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
    pub cli_user: Option<User>,
    /// Seed of EC-SRP5 decoys; the database keeps one across restarts.
    pub secret: Option<[u8; 32]>,
    pub accounting: Option<Accounting>,
    pub limits: Limits,
    /// First server UDP port; the client uses ours + 256.
    pub udp_port_base: u16,
    /// Size of the UDP port pool.
    pub udp_port_count: u16,
    pub udp_io: IoMode,
    pub guard: GuardConfig,
    /// Peers whose tests are traced (`--trace`): see [`crate::trace`].
    pub trace: Vec<crate::cidr::Cidr>,
    /// The control socket `btestd status` asks; None: no socket.
    pub control: Option<super::control::ControlConfig>,
    /// A Prometheus textfile rewritten at this interval (`--metrics-file`).
    pub metrics_file: Option<(std::path::PathBuf, Duration)>,
    /// The web page (`--http`); only in builds with the `web` feature.
    pub web: Option<WebConfig>,
}

/// Who the web listener serves, and where.
#[derive(Debug, Clone)]
pub struct WebConfig {
    pub listen: SocketAddr,
    /// Networks whose clients see everything (default: this host only).
    pub operators: Vec<crate::cidr::Cidr>,
    /// A token that makes any client an operator (`?token=` or `Authorization: Bearer`).
    pub token: Option<String>,
    /// Clients outside `operators` see their own address's data instead of a refusal.
    pub visitors: bool,
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
    Control { path: std::path::PathBuf, source: io::Error },
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
            ServerError::Control { path, source } => write!(
                f,
                "cannot open the control socket {}: {source}; give another --control PATH (or --control none)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for ServerError {}

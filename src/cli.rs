//! Command-line interface: argument structs and their conversion into the
//! library's configurations. `main.rs` only parses and calls [`run`].

use crate::auth::{Scheme, User, Users};
use crate::cidr::Cidr;
use crate::client::{self, Credentials, report};
use crate::proto::{DEFAULT_PORT, Direction, Protocol};
use crate::server::{self, Limits};
use crate::udp::IoMode;
use argh::FromArgs;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// btestd: a MikroTik bandwidth-test (btest) server and client.
#[derive(FromArgs)]
pub struct Args {
    /// print version and exit
    #[argh(switch)]
    pub version: bool,
    #[argh(subcommand)]
    pub cmd: Option<Sub>,
}

#[derive(FromArgs)]
#[argh(subcommand)]
pub enum Sub {
    Serve(ServeArgs),
    Client(ClientArgs),
    User(crate::admin::UserArgs),
    Quota(crate::admin::QuotaArgs),
    Usage(crate::admin::UsageArgs),
}

/// Run the bandwidth-test server.
#[derive(FromArgs)]
#[argh(subcommand, name = "serve")]
pub struct ServeArgs {
    /// address to listen on, ADDR:PORT or [V6ADDR]:PORT (repeatable; default 0.0.0.0:2000 and [::]:2000)
    #[argh(option)]
    pub listen: Vec<String>,
    /// user name clients must log in with (enables authentication)
    #[argh(option)]
    pub user: Option<String>,
    /// password for --user
    #[argh(option)]
    pub password: Option<String>,
    /// authentication scheme offered to clients: ecsrp5 (RouterOS 6.43+, default) or md5 (older RouterOS)
    #[argh(option, default = "Scheme::EcSrp5")]
    pub auth_scheme: Scheme,
    /// most concurrent tests (default 100)
    #[argh(option, default = "100")]
    pub max_sessions: usize,
    /// most concurrent tests from one client IP (default 10)
    #[argh(option, default = "10")]
    pub max_sessions_per_ip: usize,
    /// most TCP connections one test may use (default 32; RouterOS 7 uses up to 20)
    #[argh(option, default = "32")]
    pub max_connections: u8,
    /// most connections in their handshake at once (default 256)
    #[argh(option, default = "256")]
    pub max_handshakes: usize,
    /// longest test in seconds, 0 = until the client stops it (default 0)
    #[argh(option, default = "0")]
    pub max_duration: u64,
    /// cap on each test's rate in each direction, bits/s with optional k/M/G suffix, 0 = none
    #[argh(option, default = "0", from_str_fn(parse_rate))]
    pub max_rate: u64,
    /// cap on all tests together in each direction, bits/s with optional k/M/G suffix, 0 = none
    #[argh(option, default = "0", from_str_fn(parse_rate))]
    pub max_rate_total: u64,
    /// refuse new tests while btestd's own memory is above this, e.g. 16MiB; 0 = no budget (default 64MiB)
    #[argh(option, default = "server::DEFAULT_MAX_MEMORY", from_str_fn(parse_bytes))]
    pub max_memory: u64,
    /// only clients in this network may connect, e.g. 192.0.2.0/24 (repeatable; default everyone)
    #[argh(option)]
    pub allow: Vec<Cidr>,
    /// clients in this network may never connect (repeatable)
    #[argh(option)]
    pub deny: Vec<Cidr>,
    /// failed logins from one address within a minute that start a ban, 0 = never (default 5)
    #[argh(option, default = "5")]
    pub auth_fail_limit: u32,
    /// seconds a ban lasts (default 300)
    #[argh(option, default = "300")]
    pub auth_ban: u64,
    /// connections one address may have in the handshake at once (default 16)
    #[argh(option, default = "16")]
    pub max_handshakes_per_ip: usize,
    /// seconds a connection may take to finish its handshake (default 10)
    #[argh(option, default = "10")]
    pub handshake_timeout: u64,
    /// seconds without test traffic after which a test ends (default 15)
    #[argh(option, default = "15")]
    pub idle_timeout: u64,
    /// seconds the secondary connections of a multi-connection test have to join (default 5)
    #[argh(option, default = "5")]
    pub join_timeout: u64,
    /// first UDP port handed to UDP tests (default 2001; the client uses port + 256)
    #[argh(option, default = "2001")]
    pub udp_port_base: u16,
    /// number of UDP ports from --udp-port-base (default 1000)
    #[argh(option, default = "1000")]
    pub udp_port_count: u16,
    /// UDP system calls: batched (sendmmsg/recvmmsg, Linux default) or portable
    #[argh(option, default = "IoMode::native()")]
    pub udp_io: IoMode,
    /// SQLite file of users, quotas and usage (default /var/lib/btestd/btestd.db; /var/db/btestd on FreeBSD)
    #[argh(option)]
    pub db: Option<std::path::PathBuf>,
    /// run without a database: no accounting, users only from --user
    #[argh(switch)]
    pub no_db: bool,
    /// seconds between usage writes to the database (default 1)
    #[argh(option, default = "Duration::from_secs(1)", from_str_fn(parse_seconds))]
    pub flush_interval: Duration,
    /// log debug details
    #[argh(switch, short = 'v')]
    pub verbose: bool,
    /// log warnings and errors only
    #[argh(switch, short = 'q')]
    pub quiet: bool,
}

/// Run a bandwidth test against a btest server (btestd or RouterOS).
#[derive(FromArgs)]
#[argh(subcommand, name = "client")]
pub struct ClientArgs {
    /// server as HOST or HOST:PORT (port 2000 by default)
    #[argh(positional)]
    pub server: String,
    /// tcp or udp (default tcp)
    #[argh(option, default = "Protocol::Tcp", from_str_fn(parse_proto))]
    pub proto: Protocol,
    /// send, receive or both, from this client's side (default receive)
    #[argh(option, default = "Direction::ServerToClient", from_str_fn(parse_direction))]
    pub direction: Direction,
    /// test length in seconds (default 10)
    #[argh(option, default = "Duration::from_secs(10)", from_str_fn(parse_seconds))]
    pub duration: Duration,
    /// number of TCP connections (default 1)
    #[argh(option, default = "1")]
    pub connections: u8,
    /// bytes per write (TCP, default 32768) or IP packet size (UDP, default 1500)
    #[argh(option)]
    pub tx_size: Option<u16>,
    /// our transmit rate in bits/s with optional k/M/G suffix, 0 = unlimited
    #[argh(option, default = "0", from_str_fn(parse_rate32))]
    pub speed: u32,
    /// the server's transmit rate in bits/s with optional k/M/G suffix, 0 = unlimited
    #[argh(option, default = "0", from_str_fn(parse_rate32))]
    pub remote_speed: u32,
    /// ask for random payload instead of zeros
    #[argh(switch)]
    pub random: bool,
    /// user name for servers that require authentication
    #[argh(option)]
    pub user: Option<String>,
    /// password for --user (default empty)
    #[argh(option, default = "String::new()")]
    pub password: String,
    /// output: text (default) or csv
    #[argh(option, default = "String::from(\"text\")")]
    pub format: String,
}

/// Parses `100`, `10k`, `100M`, `1.5G` (decimal units) into bits/s.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let bad = || format!("invalid rate '{t}': use a number with an optional k, M or G suffix");
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_lowercase() {
                'k' => 1_000,
                'm' => 1_000_000,
                'g' => 1_000_000_000,
                _ => return Err(bad()),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let bits = crate::decimal::scaled(num, mult).ok_or_else(bad)?;
    u64::try_from(bits).map_err(|_| format!("rate '{t}' is too large"))
}

/// A byte amount such as `16MiB` or `10G` (see `quota::parse_amount`).
pub(crate) fn parse_bytes(s: &str) -> Result<u64, String> {
    crate::quota::parse_amount(s).map_err(|e| e.to_string())
}

/// Parses seconds with an optional fraction (`10`, `0.25`) to the microsecond.
fn parse_seconds(s: &str) -> Result<Duration, String> {
    let micros = crate::decimal::scaled(s.trim(), 1_000_000)
        .ok_or_else(|| format!("invalid duration '{s}': use a number of seconds such as 10 or 0.5"))?;
    u64::try_from(micros).map(Duration::from_micros).map_err(|_| format!("duration '{s}' is too long"))
}

fn parse_rate32(s: &str) -> Result<u32, String> {
    let v = parse_rate(s)?;
    u32::try_from(v).map_err(|_| format!("rate '{s}' is above the protocol's maximum of 4294967295 bits/s"))
}

fn parse_proto(s: &str) -> Result<Protocol, String> {
    match s {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        _ => Err(format!("invalid protocol '{s}': use tcp or udp")),
    }
}

/// Client-side direction words, turned into the server's view on the wire.
fn parse_direction(s: &str) -> Result<Direction, String> {
    match s {
        "send" | "transmit" => Ok(Direction::ClientToServer),
        "receive" => Ok(Direction::ServerToClient),
        "both" => Ok(Direction::Both),
        _ => Err(format!("invalid direction '{s}': use send, receive or both")),
    }
}

/// Parses `ADDR:PORT`, `[V6]:PORT`, `ADDR` or `:PORT`.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = s.trim_matches(|c| c == '[' || c == ']').parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    if let Some(port) = s.strip_prefix(':') {
        if let Ok(p) = port.parse::<u16>() {
            return Ok(SocketAddr::from(([0, 0, 0, 0], p)));
        }
    }
    Err(format!("invalid listen address '{s}': use ADDR:PORT, e.g. 0.0.0.0:2000 or [::]:2000"))
}

/// Resolves `HOST` or `HOST:PORT` (port 2000 by default).
pub fn resolve(server: &str) -> Result<SocketAddr, String> {
    let with_port = if server.parse::<std::net::IpAddr>().is_ok() || !server.contains(':') {
        let host = server.trim_matches(|c| c == '[' || c == ']');
        if host.contains(':') { format!("[{host}]:{DEFAULT_PORT}") } else { format!("{host}:{DEFAULT_PORT}") }
    } else {
        server.to_string()
    };
    with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{server}': {e}"))?
        .next()
        .ok_or_else(|| format!("'{server}' has no address"))
}

/// Runs the parsed command line; returns the process exit code.
pub fn run(args: Args) -> i32 {
    if args.version {
        println!("btestd {} ({})", env!("CARGO_PKG_VERSION"), option_env!("BTESTD_GIT_REV").unwrap_or("unknown"));
        return 0;
    }
    match args.cmd {
        Some(Sub::Serve(a)) => serve(a),
        Some(Sub::Client(a)) => client(a),
        Some(Sub::User(a)) => crate::admin::user(a),
        Some(Sub::Quota(a)) => crate::admin::quota(a),
        Some(Sub::Usage(a)) => crate::admin::usage(a),
        None => {
            eprintln!("btestd: give a subcommand (serve, client, user, quota, usage); see btestd --help");
            1
        }
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Opens the usage database. An explicit `--db` that cannot be used stops
/// the start; the default path is only used when it can be (a newcomer
/// running without root gets a working server without accounting).
fn open_store(a: &ServeArgs) -> Result<Option<crate::store::Startup>, crate::store::StoreError> {
    use crate::store::{Startup, StoreError, WriterConfig};
    if a.no_db {
        log::info!("no database (--no-db): tests are not accounted and users come only from --user");
        return Ok(None);
    }
    let config = WriterConfig { flush_interval: a.flush_interval, ..WriterConfig::default() };
    match &a.db {
        Some(path) => Startup::open(path, config).map(Some),
        None => {
            let path = crate::store::default_db_path();
            let existed = path.exists();
            match Startup::open(&path, config) {
                Ok(st) => Ok(Some(st)),
                Err(
                    e @ (StoreError::CreateDir { .. } | StoreError::CannotOpen { .. } | StoreError::ReadOnly { .. }),
                ) if !existed => {
                    log::warn!("usage is not recorded: {e}; give --db PATH (or --no-db to silence this)");
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        }
    }
}

fn serve(a: ServeArgs) -> i32 {
    let level = if a.verbose {
        log::LevelFilter::Debug
    } else if a.quiet {
        log::LevelFilter::Warn
    } else {
        log::LevelFilter::Info
    };
    crate::logger::init(level, true);
    let listen: Result<Vec<SocketAddr>, String> = a.listen.iter().map(|s| parse_listen(s)).collect();
    let listen = match listen {
        Ok(l) => l,
        Err(e) => {
            log::error!("{e}");
            return 1;
        }
    };
    let cli_user = match (&a.user, &a.password) {
        (Some(u), Some(p)) => Some(User::with_password(u, p, a.auth_scheme == Scheme::Md5)),
        (None, None) => None,
        _ => {
            log::error!("--user and --password go together: give both to require authentication, or neither");
            return 1;
        }
    };
    if a.flush_interval.is_zero() || a.flush_interval > Duration::from_secs(3600) {
        log::error!("--flush-interval must be between 0 and 3600 seconds");
        return 1;
    }
    let (users, secret, accounting) = match open_store(&a) {
        Ok(Some(st)) => {
            (st.users, Some(st.server_secret), Some(server::Accounting { ledger: st.ledger, writer: st.writer }))
        }
        Ok(None) => (Users::default(), None, None),
        Err(e) => {
            log::error!("{e}");
            return 1;
        }
    };
    if a.udp_port_base == 0 || a.udp_port_count == 0 {
        log::error!("--udp-port-base and --udp-port-count must be at least 1");
        return 1;
    }
    if a.handshake_timeout == 0 || a.idle_timeout == 0 || a.join_timeout == 0 {
        log::error!("timeouts must be at least 1 second");
        return 1;
    }
    let config = server::Config {
        listen_explicit: !listen.is_empty(),
        listen: if listen.is_empty() { server::Config::default_listen() } else { listen },
        scheme: a.auth_scheme,
        users,
        cli_user,
        secret,
        accounting,
        limits: Limits {
            handshake_timeout: secs(a.handshake_timeout),
            idle_timeout: secs(a.idle_timeout),
            join_timeout: secs(a.join_timeout),
            max_sessions: a.max_sessions,
            max_sessions_per_ip: a.max_sessions_per_ip,
            max_connections_per_test: a.max_connections,
            max_handshakes: a.max_handshakes,
            max_duration: (a.max_duration > 0).then(|| secs(a.max_duration)),
            max_rate_per_session: a.max_rate,
            max_rate_total: a.max_rate_total,
            max_memory: a.max_memory,
        },
        guard: server::guard::GuardConfig {
            allow: a.allow,
            deny: a.deny,
            fail_limit: a.auth_fail_limit,
            fail_window: secs(60),
            ban: secs(a.auth_ban),
            max_handshakes_per_ip: a.max_handshakes_per_ip,
        },
        udp_port_base: a.udp_port_base,
        udp_port_count: a.udp_port_count,
        udp_io: a.udp_io,
    };
    let result = server::Server::bind(config).and_then(|mut s| s.run());
    match result {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e}");
            1
        }
    }
}

fn client(a: ClientArgs) -> i32 {
    crate::logger::init(log::LevelFilter::Warn, false);
    let server = match resolve(&a.server) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("btestd client: {e}");
            return 1;
        }
    };
    if a.duration.is_zero() {
        eprintln!("btestd client: --duration must be a positive number of seconds");
        return 1;
    }
    if a.connections == 0 {
        eprintln!("btestd client: --connections must be at least 1");
        return 1;
    }
    let config = client::Config {
        server,
        proto: a.proto,
        direction: a.direction,
        duration: a.duration,
        connections: a.connections,
        tx_size: a.tx_size.unwrap_or(match a.proto {
            Protocol::Tcp => 32768,
            Protocol::Udp => 1500,
        }),
        local_speed: a.speed,
        remote_speed: a.remote_speed,
        random: a.random,
        credentials: a.user.map(|user| Credentials { user, password: a.password }),
        connect_timeout: Duration::from_secs(10),
    };
    let stdout = std::io::stdout();
    let mut reporter: Box<dyn report::Reporter> = match a.format.as_str() {
        "text" => Box::new(report::Text(stdout.lock())),
        "csv" => Box::new(report::Csv::new(stdout.lock())),
        other => {
            eprintln!("btestd client: invalid --format '{other}': use text or csv");
            return 1;
        }
    };
    match client::run(&config, reporter.as_mut()) {
        Ok(s) if s.ended_by_server => 2,
        Ok(_) => 0,
        Err(e) => {
            eprintln!("btestd client: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_accept_decimal_suffixes() {
        assert_eq!(parse_rate("0"), Ok(0));
        assert_eq!(parse_rate("1500"), Ok(1500));
        assert_eq!(parse_rate("10k"), Ok(10_000));
        assert_eq!(parse_rate("100M"), Ok(100_000_000));
        assert_eq!(parse_rate("1.5G"), Ok(1_500_000_000));
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("-1").is_err());
        assert!(parse_rate("10x").is_err());
        assert!(parse_rate32("5G").unwrap_err().contains("maximum"));
        assert!(parse_rate("1e6").is_err(), "no exponents: the number is parsed exactly");
    }

    #[test]
    fn seconds_take_fractions_to_the_microsecond() {
        assert_eq!(parse_seconds("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_seconds("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_seconds(" 1.5 "), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_seconds("0.0000001"), Ok(Duration::ZERO), "below a microsecond rounds down");
        for bad in ["", "-1", "ten", "1s", "1.2.3"] {
            assert!(parse_seconds(bad).unwrap_err().contains("seconds"), "{bad:?}");
        }
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen("127.0.0.1:2000").unwrap().to_string(), "127.0.0.1:2000");
        assert_eq!(parse_listen("[::]:2001").unwrap().to_string(), "[::]:2001");
        assert_eq!(parse_listen("10.0.0.1").unwrap().to_string(), "10.0.0.1:2000");
        assert_eq!(parse_listen("::1").unwrap().to_string(), "[::1]:2000");
        assert_eq!(parse_listen(":3000").unwrap().to_string(), "0.0.0.0:3000");
        assert!(parse_listen("nowhere").is_err());
    }

    #[test]
    fn server_addresses_default_to_port_2000() {
        assert_eq!(resolve("127.0.0.1").unwrap().to_string(), "127.0.0.1:2000");
        assert_eq!(resolve("127.0.0.1:2500").unwrap().to_string(), "127.0.0.1:2500");
        assert_eq!(resolve("::1").unwrap().to_string(), "[::1]:2000");
        assert_eq!(resolve("[::1]:2600").unwrap().to_string(), "[::1]:2600");
    }

    #[test]
    fn client_directions_map_to_server_view() {
        assert_eq!(parse_direction("send"), Ok(Direction::ClientToServer));
        assert_eq!(parse_direction("receive"), Ok(Direction::ServerToClient));
        assert_eq!(parse_direction("both"), Ok(Direction::Both));
        assert!(parse_direction("up").is_err());
    }
}

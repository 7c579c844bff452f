//! `btestd serve`: the daemon's options and how they become a
//! `server::Config`; checks that need more than one option live here too.

use super::parse::{parse_bytes, parse_listen, parse_rate, parse_seconds};
use crate::auth::{Scheme, User, Users};
use crate::cidr::Cidr;
use crate::server::control::ControlConfig;
use crate::server::{self, Limits};
use crate::udp::IoMode;
use argh::FromArgs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// longest test in seconds, 0 = until the client stops it (default 600)
    #[argh(option, default = "server::DEFAULT_MAX_DURATION_SECS")]
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
    /// kernel buffer memory all test connections together may hold, e.g. 16MiB; 0 = left to the kernel (default 64MiB)
    #[argh(option, default = "server::socket_budget::DEFAULT_BUDGET", from_str_fn(parse_bytes))]
    pub max_socket_memory: u64,
    /// only clients in this network may connect, e.g. 192.0.2.0/24 (repeatable; default everyone)
    #[argh(option)]
    pub allow: Vec<Cidr>,
    /// clients in this network may never connect (repeatable)
    #[argh(option)]
    pub deny: Vec<Cidr>,
    /// log every control-plane message of tests with this address or network, decoded and in hex, e.g. 192.0.2.1 (repeatable)
    #[argh(option)]
    pub trace: Vec<Cidr>,
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
    pub db: Option<PathBuf>,
    /// run without a database: no accounting, users only from --user
    #[argh(switch)]
    pub no_db: bool,
    /// seconds between usage writes to the database (default 1)
    #[argh(option, default = "Duration::from_secs(1)", from_str_fn(parse_seconds))]
    pub flush_interval: Duration,
    /// control socket 'btestd status' asks, or none (default: beside the database, e.g. /var/lib/btestd/btestd.control)
    #[argh(option)]
    pub control: Option<String>,
    /// file to rewrite periodically with Prometheus metrics, e.g. /var/prometheus/btestd.prom (default none)
    #[argh(option)]
    pub metrics_file: Option<PathBuf>,
    /// seconds between rewrites of --metrics-file (default 10)
    #[argh(option, default = "Duration::from_secs(10)", from_str_fn(parse_seconds))]
    pub metrics_interval: Duration,
    /// serve the web page on ADDR:PORT, e.g. 127.0.0.1:8080 (default off)
    #[argh(option)]
    pub http: Option<String>,
    /// network whose web clients see everything (repeatable; default 127.0.0.0/8 and ::1)
    #[argh(option)]
    pub http_allow: Vec<Cidr>,
    /// file whose first line is a token that lets any web client see everything (?token=...)
    #[argh(option)]
    pub http_token_file: Option<PathBuf>,
    /// let other web clients see their own address's tests, usage and budget
    #[argh(switch)]
    pub http_visitors: bool,
    /// copy of --db (on flash, --db in RAM), restored if --db is missing; '' = none
    #[argh(option)]
    pub persist: Option<PathBuf>,
    /// seconds between saves of the --persist copy while tests run (default 3600)
    #[argh(option, default = "Duration::from_secs(3600)", from_str_fn(parse_seconds))]
    pub persist_interval: Duration,
    /// log debug details
    #[argh(switch, short = 'v')]
    pub verbose: bool,
    /// log warnings and errors only
    #[argh(switch, short = 'q')]
    pub quiet: bool,
    /// log through syslog(3) (facility daemon, each line at its own priority) instead of stderr
    #[argh(switch)]
    pub syslog: bool,
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Opens the usage database. An explicit `--db` that cannot be used stops
/// the start; the default path is only used when it can be (a newcomer
/// running without root gets a working server without accounting).
fn open_store(
    a: &ServeArgs,
    live: &Path,
    persist: Option<PathBuf>,
) -> Result<Option<crate::store::Startup>, crate::store::StoreError> {
    use crate::store::{Startup, StoreError, WriterConfig};
    if a.no_db {
        log::info!("no database (--no-db): tests are not accounted and users come only from --user");
        return Ok(None);
    }
    if let Some(flash) = &persist {
        if crate::store::persist::restore_if_missing(live, flash)? {
            log::info!("database {} restored from {}", live.display(), flash.display());
        }
    }
    let config = WriterConfig {
        flush_interval: a.flush_interval,
        persist,
        persist_interval: a.persist_interval,
        ..WriterConfig::default()
    };
    match &a.db {
        Some(_) => Startup::open(live, config).map(Some),
        None => {
            let existed = live.exists();
            match Startup::open(live, config) {
                Ok(st) => Ok(Some(st)),
                Err(
                    e @ (StoreError::CreateDir { .. } | StoreError::CannotOpen { .. } | StoreError::ReadOnly { .. }),
                ) if !existed => {
                    log::warn!("usage is not recorded: {e} (--no-db silences this)");
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        }
    }
}

/// The web listener's settings, if `--http` asks for it.
fn web_config(a: &ServeArgs) -> Result<Option<server::WebConfig>, String> {
    let Some(listen) = &a.http else {
        if !a.http_allow.is_empty() || a.http_token_file.is_some() || a.http_visitors {
            return Err("--http-allow, --http-token-file and --http-visitors need --http ADDR:PORT".into());
        }
        return Ok(None);
    };
    if !cfg!(feature = "web") {
        return Err("this btestd was built without the web page (cargo feature \"web\"); drop --http".into());
    }
    let listen = parse_listen(listen).map_err(|e| format!("--http: {e}"))?;
    let token = match &a.http_token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read --http-token-file {}: {e}", path.display()))?;
            let t = text.lines().next().unwrap_or("").trim().to_string();
            if t.len() < 16 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b)) {
                return Err(format!(
                    "--http-token-file {}: the token must be at least 16 characters of A-Z a-z 0-9 - _ . ~",
                    path.display()
                ));
            }
            Some(t)
        }
        None => None,
    };
    let operators = if a.http_allow.is_empty() {
        vec!["127.0.0.0/8".parse::<Cidr>()?, "::1/128".parse::<Cidr>()?]
    } else {
        a.http_allow.clone()
    };
    Ok(Some(server::WebConfig { listen, operators, token, visitors: a.http_visitors }))
}

/// Runs `btestd serve` until the server stops; 1 when it cannot start.
pub fn serve(a: ServeArgs) -> i32 {
    let level = if a.verbose {
        log::LevelFilter::Debug
    } else if a.quiet {
        log::LevelFilter::Warn
    } else {
        log::LevelFilter::Info
    };
    if a.syslog {
        crate::logger::init_syslog(level);
    } else {
        crate::logger::init(level, true);
    }
    crate::tz::local();
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
    if a.metrics_interval.is_zero() {
        log::error!("--metrics-interval must be at least 1 second");
        return 1;
    }
    if a.flush_interval.is_zero() || a.flush_interval > Duration::from_secs(3600) || a.persist_interval.as_secs() == 0 {
        log::error!("--flush-interval must be 1 to 3600 seconds, --persist-interval at least 1 second");
        return 1;
    }
    let live = crate::store::db_path(&a.db);
    let persist = crate::store::persist_path(&a.persist);
    if persist.as_ref().is_some_and(|p| *p == live) {
        log::error!("--persist names the database itself: give the copy its own path (on flash, with --db in RAM)");
        return 1;
    }
    let (users, secret, accounting) = match open_store(&a, &live, persist) {
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
    let web = match web_config(&a) {
        Ok(w) => w,
        Err(e) => {
            log::error!("{e}");
            return 1;
        }
    };
    let control = match a.control.as_deref() {
        Some("none") => None,
        Some(path) => Some(ControlConfig { path: path.into(), required: true }),
        None if accounting.is_some() => {
            Some(ControlConfig { path: server::control::default_path(&live), required: false })
        }
        None => None,
    };
    let config = server::Config {
        web,
        control,
        metrics_file: a.metrics_file.map(|p| (p, a.metrics_interval)),
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
            max_socket_memory: a.max_socket_memory,
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
        trace: a.trace,
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

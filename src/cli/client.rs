//! `btestd client`: one bandwidth test against a btest server, reported as
//! text or CSV on standard output.

use super::parse::{parse_direction, parse_proto, parse_rate32, parse_seconds, resolve};
use super::table::Format;
use crate::client::{self, Credentials, report};
use crate::proto::{Direction, Protocol};
use argh::FromArgs;
use std::time::Duration;

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
    /// log every control-plane message and status, decoded and in hex, to stderr
    #[argh(switch)]
    pub trace: bool,
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

/// Runs `btestd client`: 0 when the test ran its course, 2 when the server
/// ended it early, 1 on any error.
pub fn client(a: ClientArgs) -> i32 {
    let level = if a.trace { log::LevelFilter::Info } else { log::LevelFilter::Warn };
    crate::logger::init(level, false);
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
        trace: a.trace,
    };
    let stdout = std::io::stdout();
    let mut reporter: Box<dyn report::Reporter> = match a.format.parse() {
        Ok(Format::Text) => Box::new(report::Text(stdout.lock())),
        Ok(Format::Csv) => Box::new(report::Csv::new(stdout.lock())),
        Ok(Format::Json) => {
            eprintln!("btestd client: --format json is not available for the client; use text or csv");
            return 1;
        }
        Err(e) => {
            eprintln!("btestd client: {e}");
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

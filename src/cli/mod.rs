//! Command-line interface: argument structs and their conversion into the
//! library's configurations. `main.rs` only parses and calls [`run`].
//!
//! One module per command family; the value parsers, tables and password
//! prompt they share sit apart so that no command module depends on another
//! through this file.

pub mod client;
mod db;
mod exit;
pub mod parse;
mod password;
pub mod probe;
pub mod quota;
pub mod serve;
pub mod status;
mod table;
pub mod usage;
pub mod user;

use argh::FromArgs;

/// btestd: a MikroTik bandwidth-test (btest) server and client.
#[derive(FromArgs)]
pub struct Args {
    /// print version and exit
    #[argh(switch)]
    pub version: bool,
    #[argh(subcommand)]
    pub cmd: Option<Sub>,
}

/// Parsed once at start, so the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(FromArgs)]
#[argh(subcommand)]
pub enum Sub {
    Serve(serve::ServeArgs),
    Client(client::ClientArgs),
    User(user::UserArgs),
    Quota(quota::QuotaArgs),
    Usage(usage::UsageArgs),
    Status(status::StatusArgs),
    Probe(probe::ProbeArgs),
}

impl Args {
    /// Whether the command writes to sockets, where SIGPIPE must not end it.
    pub fn talks_to_sockets(&self) -> bool {
        matches!(self.cmd, Some(Sub::Serve(_) | Sub::Client(_) | Sub::Status(_) | Sub::Probe(_)))
    }
}

/// Runs the parsed command line; returns the process exit code.
pub fn run(args: Args) -> i32 {
    if args.version {
        println!("btestd {} ({})", env!("CARGO_PKG_VERSION"), option_env!("BTESTD_GIT_REV").unwrap_or("unknown"));
        return 0;
    }
    match args.cmd {
        Some(Sub::Serve(a)) => serve::serve(a),
        Some(Sub::Client(a)) => client::client(a),
        Some(Sub::User(a)) => user::user(a),
        Some(Sub::Quota(a)) => quota::quota(a),
        Some(Sub::Usage(a)) => usage::usage(a),
        Some(Sub::Status(a)) => status::status(a),
        Some(Sub::Probe(a)) => probe::probe(a),
        None => {
            eprintln!(
                "btestd: give a subcommand (serve, client, user, quota, usage, status, probe); see btestd --help"
            );
            1
        }
    }
}

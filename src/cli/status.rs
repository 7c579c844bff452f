//! `btestd status`: asks the running daemon over its control socket and
//! prints its answer. Exit codes: 0 answered, 1 an error, 3 no daemon answers.

use crate::observe::Request;
use argh::FromArgs;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

/// Exit code when no daemon answers on the control socket.
pub const NO_DAEMON: i32 = 3;

/// Largest answer read; a status of the most tests is far smaller.
const MAX_REPLY: u64 = 16 << 20;

/// Show the running daemon's tests, handshakes pending, refusals and bans.
#[derive(FromArgs)]
#[argh(subcommand, name = "status")]
pub struct StatusArgs {
    /// control socket of the daemon (default: beside --db's database, e.g. /var/lib/btestd/btestd.control)
    #[argh(option)]
    pub control: Option<PathBuf>,
    /// database of the daemon to ask; its control socket is beside it
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// output: text (default), json, or prometheus
    #[argh(option, default = "String::from(\"text\")")]
    pub format: String,
}

/// Runs `btestd status`.
pub fn status(a: StatusArgs) -> i32 {
    let req = match a.format.as_str() {
        "text" => Request::Status { json: false },
        "json" => Request::Status { json: true },
        "prometheus" => Request::Metrics,
        f => {
            eprintln!("btestd status: invalid --format '{f}': use text, json or prometheus");
            return 1;
        }
    };
    let path = a.control.unwrap_or_else(|| crate::server::control::default_path(&crate::store::db_path(&a.db)));
    match ask(&path, req) {
        Ok(reply) if reply.starts_with(b"error: ") => {
            eprintln!("btestd status: the daemon answered: {}", String::from_utf8_lossy(&reply[7..]).trim_end());
            1
        }
        Ok(reply) => match std::io::stdout().lock().write_all(&reply) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("btestd status: cannot write the output: {e}");
                1
            }
        },
        Err((code, msg)) => {
            eprintln!("btestd status: {msg}");
            code
        }
    }
}

fn ask(path: &std::path::Path, req: Request) -> Result<Vec<u8>, (i32, String)> {
    use std::io::ErrorKind::*;
    let p = path.display();
    let mut sock = std::os::unix::net::UnixStream::connect(path).map_err(|e| match e.kind() {
        NotFound | ConnectionRefused => (
            NO_DAEMON,
            format!("no daemon answers at {p} ({e}); is 'btestd serve' running, with this --db or --control?"),
        ),
        PermissionDenied => {
            (1, format!("cannot connect to {p}: permission denied; run as root or as the user btestd runs as"))
        }
        _ => (NO_DAEMON, format!("cannot connect to {p}: {e}")),
    })?;
    let timeout = Some(Duration::from_secs(5));
    let _ = sock.set_read_timeout(timeout);
    let _ = sock.set_write_timeout(timeout);
    let lost = |e: std::io::Error| match e.kind() {
        WouldBlock | TimedOut => (NO_DAEMON, format!("the daemon at {p} did not answer within 5 s")),
        _ => (NO_DAEMON, format!("the daemon at {p} closed the connection: {e}")),
    };
    // A daemon that refuses the request (busy) may answer and close before
    // it is written: its answer is still there to read.
    let sent = sock.write_all(req.line());
    let mut reply = Vec::new();
    let read = sock.take(MAX_REPLY).read_to_end(&mut reply);
    if reply.is_empty() {
        sent.map_err(lost)?;
        read.map_err(lost)?;
    }
    if reply.is_empty() {
        return Err((NO_DAEMON, format!("the daemon at {p} closed the connection without an answer")));
    }
    Ok(reply)
}

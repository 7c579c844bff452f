//! `btestd probe`: whether a server answers, for container health checks and
//! monitoring scripts that have no shell or netcat (a `FROM scratch` image).
//! It connects, waits for the server's HELLO and closes before sending a
//! command, so no test starts and nothing is accounted.

use super::exit::finish;
use super::parse::parse_seconds;
use crate::proto::reply::HELLO;
use argh::FromArgs;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Check that a server accepts connections and greets (exit 0), else exit 1.
#[derive(FromArgs)]
#[argh(subcommand, name = "probe")]
pub struct ProbeArgs {
    /// server address, ADDR:PORT or [V6ADDR]:PORT (default 127.0.0.1:2000)
    #[argh(positional, default = "SocketAddr::from(([127, 0, 0, 1], 2000))")]
    pub server: SocketAddr,
    /// seconds to wait for the connection and the greeting (default 3)
    #[argh(option, default = "Duration::from_secs(3)", from_str_fn(parse_seconds))]
    pub timeout: Duration,
}

pub fn probe(a: ProbeArgs) -> i32 {
    finish("probe", greet(a.server, a.timeout).map_err(|e| format!("{}: {e}", a.server)))
}

/// Connects and reads the 4-byte HELLO within `timeout` each.
fn greet(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let mut hello = [0u8; 4];
    s.read_exact(&mut hello).map_err(|e| format!("no greeting: {e}"))?;
    if hello != HELLO {
        return Err(format!("not a btest server (greeting {hello:02x?})"));
    }
    Ok(())
}

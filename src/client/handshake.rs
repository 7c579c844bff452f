//! The client side of the control-connection handshake, done with blocking
//! reads and timeouts before the data phase switches to the event loop.

use super::ClientError;
use crate::auth::{ecsrp5, md5};
use crate::proto::frame::{self, FrameError};
use crate::proto::{Command, Reply, reply};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Credentials for servers that ask for them.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

/// What the server granted.
pub struct Granted {
    pub token: Option<u16>,
    /// The server's UDP data port, for UDP tests.
    pub udp_port: Option<u16>,
}

pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, ClientError> {
    let s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| ClientError::Connect { addr, source: e })?;
    s.set_read_timeout(Some(timeout)).map_err(ClientError::Io)?;
    s.set_write_timeout(Some(timeout)).map_err(ClientError::Io)?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

fn read_exact<const N: usize>(s: &mut TcpStream, what: &'static str) -> Result<[u8; N], ClientError> {
    let mut b = [0u8; N];
    s.read_exact(&mut b).map_err(|e| handshake_error(what, e))?;
    Ok(b)
}

fn handshake_error(what: &'static str, e: std::io::Error) -> ClientError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        ClientError::Closed(what)
    } else {
        ClientError::Handshake { what, source: e }
    }
}

fn send(s: &mut TcpStream, bytes: &[u8], what: &'static str) -> Result<(), ClientError> {
    s.write_all(bytes).map_err(|e| ClientError::Handshake { what, source: e })
}

fn expect_hello(s: &mut TcpStream) -> Result<(), ClientError> {
    let hello = read_exact::<4>(s, "server hello")?;
    if hello != reply::HELLO {
        return Err(ClientError::Protocol(format!("server hello was {hello:02x?}, expected 01 00 00 00")));
    }
    Ok(())
}

/// Runs HELLO, command and authentication on the primary connection.
pub fn primary(s: &mut TcpStream, cmd: &Command, creds: Option<&Credentials>) -> Result<Granted, ClientError> {
    expect_hello(s)?;
    send(s, &cmd.emit(), "command")?;
    let mut rep = parse_reply(read_exact::<4>(s, "command reply")?)?;
    if matches!(rep, Reply::Md5Challenge | Reply::EcSrp5) {
        let scheme = if rep == Reply::Md5Challenge { "md5" } else { "ecsrp5" };
        let creds = creds.ok_or(ClientError::AuthRequired(scheme))?;
        match rep {
            Reply::Md5Challenge => md5_exchange(s, creds)?,
            _ => ecsrp5_exchange(s, creds)?,
        }
        rep = parse_reply(read_exact::<4>(s, "authentication result")?)?;
    }
    let token = match rep {
        Reply::Ok(token) => token,
        Reply::Failed => return Err(ClientError::Refused),
        other => return Err(ClientError::Protocol(format!("unexpected reply {other:?} after authentication"))),
    };
    let udp_port = match cmd.proto {
        crate::proto::Protocol::Udp => Some(u16::from_be_bytes(read_exact::<2>(s, "UDP port")?)),
        crate::proto::Protocol::Tcp => None,
    };
    Ok(Granted { token, udp_port })
}

fn parse_reply(b: [u8; 4]) -> Result<Reply, ClientError> {
    Reply::parse(&b).map_err(|e| ClientError::Protocol(e.to_string()))
}

fn md5_exchange(s: &mut TcpStream, creds: &Credentials) -> Result<(), ClientError> {
    let challenge = read_exact::<16>(s, "MD5 challenge")?;
    let resp = md5::emit_response(creds.user.as_bytes(), creds.password.as_bytes(), &challenge);
    send(s, &resp, "MD5 response")
}

/// Reads one `[len][payload]` frame, never a byte past it.
fn read_frame(s: &mut TcpStream, what: &'static str) -> Result<Vec<u8>, ClientError> {
    let mut buf = Vec::with_capacity(frame::MAX_LEN);
    loop {
        match frame::parse(&buf) {
            // A failure reply arrives where a frame was expected: `00 00 00 00`.
            Ok(([], _)) => return Err(ClientError::Refused),
            Ok((payload, _)) => return Ok(payload.to_vec()),
            Err(FrameError::Incomplete { more }) => {
                let start = buf.len();
                buf.resize(start + more, 0);
                s.read_exact(&mut buf[start..]).map_err(|e| handshake_error(what, e))?;
            }
            Err(e) => return Err(ClientError::Protocol(format!("{what}: {e}"))),
        }
    }
}

fn ecsrp5_exchange(s: &mut TcpStream, creds: &Credentials) -> Result<(), ClientError> {
    let s_a = crate::sysrand::bytes::<32>();
    let (mut hs, msg1) = ecsrp5::ClientHandshake::start(creds.user.as_bytes(), creds.password.as_bytes(), &s_a)
        .map_err(ClientError::EcSrp5)?;
    let mut out = Vec::with_capacity(frame::MAX_LEN);
    frame::emit(&msg1, &mut out).map_err(|_| ClientError::Protocol("user name too long for EC-SRP5".into()))?;
    send(s, &out, "EC-SRP5 client hello")?;
    let msg2 = read_frame(s, "EC-SRP5 server hello")?;
    let cc = hs.on_server_hello(&msg2).map_err(ClientError::EcSrp5)?;
    out.clear();
    frame::emit(&cc, &mut out).map_err(|e| ClientError::Protocol(format!("EC-SRP5 confirmation: {e}")))?;
    send(s, &out, "EC-SRP5 confirmation")?;
    let server_cc = read_frame(s, "EC-SRP5 server confirmation")?;
    hs.verify_server(&server_cc).map_err(|_| ClientError::ServerProof)
}

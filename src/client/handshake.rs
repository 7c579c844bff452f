//! The client side of the control-connection handshake, done with blocking
//! reads and timeouts before the data phase switches to the event loop.

use super::ClientError;
use crate::auth::{ecsrp5, md5};
use crate::proto::frame::{self, FrameError};
use crate::proto::{Command, Reply, reply};
use crate::trace::Trace;
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

fn expect_hello(s: &mut TcpStream, trace: Option<&Trace>) -> Result<(), ClientError> {
    let hello = read_exact::<4>(s, "server hello")?;
    if let Some(t) = trace {
        t.line(format_args!("rx HELLO {}", crate::trace::hex(&hello)));
    }
    if hello != reply::HELLO {
        return Err(ClientError::Protocol(format!("server hello was {hello:02x?}, expected 01 00 00 00")));
    }
    Ok(())
}

/// Runs HELLO, command and authentication on the primary connection.
pub fn primary(
    s: &mut TcpStream,
    cmd: &Command,
    creds: Option<&Credentials>,
    trace: Option<&Trace>,
) -> Result<Granted, ClientError> {
    let line = |what: std::fmt::Arguments<'_>| {
        if let Some(t) = trace {
            t.line(what);
        }
    };
    expect_hello(s, trace)?;
    let raw = cmd.emit();
    send(s, &raw, "command")?;
    if trace.is_some() {
        line(format_args!("tx {}", crate::trace::command(&raw)));
    }
    let raw = read_exact::<4>(s, "command reply")?;
    line(format_args!("rx reply {}", crate::trace::hex(&raw)));
    let mut rep = parse_reply(raw)?;
    if matches!(rep, Reply::Md5Challenge | Reply::EcSrp5) {
        let scheme = if rep == Reply::Md5Challenge { "md5" } else { "ecsrp5" };
        let creds = creds.ok_or(ClientError::AuthRequired(scheme))?;
        match rep {
            Reply::Md5Challenge => md5_exchange(s, creds, trace)?,
            _ => ecsrp5_exchange(s, creds, trace)?,
        }
        let raw = read_exact::<4>(s, "authentication result")?;
        line(format_args!("rx authentication result {}", crate::trace::hex(&raw)));
        rep = parse_reply(raw)?;
    }
    let token = match rep {
        Reply::Ok(token) => token,
        Reply::Failed => return Err(ClientError::Refused),
        // Only a challenge is left: the server asked again after our answer.
        _ => return Err(ClientError::Protocol("the server sent another challenge after authentication".into())),
    };
    let udp_port = match cmd.proto {
        crate::proto::Protocol::Udp => {
            let raw = read_exact::<2>(s, "UDP port")?;
            line(format_args!("rx udp port={} {}", u16::from_be_bytes(raw), crate::trace::hex(&raw)));
            Some(u16::from_be_bytes(raw))
        }
        crate::proto::Protocol::Tcp => None,
    };
    Ok(Granted { token, udp_port })
}

fn parse_reply(b: [u8; 4]) -> Result<Reply, ClientError> {
    Reply::parse(&b).map_err(|e| ClientError::Protocol(e.to_string()))
}

fn md5_exchange(s: &mut TcpStream, creds: &Credentials, trace: Option<&Trace>) -> Result<(), ClientError> {
    let challenge = read_exact::<16>(s, "MD5 challenge")?;
    let resp = md5::emit_response(creds.user.as_bytes(), creds.password.as_bytes(), &challenge);
    if let Some(t) = trace {
        t.line(format_args!("rx md5 challenge len={} {}", challenge.len(), crate::trace::hex(&challenge)));
        t.line(format_args!("tx md5 response len={} (contents withheld)", resp.len()));
    }
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

fn ecsrp5_exchange(s: &mut TcpStream, creds: &Credentials, trace: Option<&Trace>) -> Result<(), ClientError> {
    let line = |what: std::fmt::Arguments<'_>| {
        if let Some(t) = trace {
            t.line(what);
        }
    };
    let s_a = crate::sysrand::bytes::<32>();
    let (mut hs, msg1) = ecsrp5::ClientHandshake::start(creds.user.as_bytes(), creds.password.as_bytes(), &s_a)
        .map_err(ClientError::EcSrp5)?;
    let mut out = Vec::with_capacity(frame::MAX_LEN);
    frame::emit(&msg1, &mut out).map_err(|_| ClientError::Protocol("user name too long for EC-SRP5".into()))?;
    send(s, &out, "EC-SRP5 client hello")?;
    line(format_args!("tx ecsrp5 client hello len={} (contents withheld)", out.len()));
    let msg2 = read_frame(s, "EC-SRP5 server hello")?;
    line(format_args!("rx ecsrp5 server hello payload len={} (contents withheld)", msg2.len()));
    let cc = hs.on_server_hello(&msg2).map_err(ClientError::EcSrp5)?;
    out.clear();
    frame::emit(&cc, &mut out).map_err(|e| ClientError::Protocol(format!("EC-SRP5 confirmation: {e}")))?;
    send(s, &out, "EC-SRP5 confirmation")?;
    line(format_args!("tx ecsrp5 confirmation len={} (contents withheld)", out.len()));
    let server_cc = read_frame(s, "EC-SRP5 server confirmation")?;
    line(format_args!("rx ecsrp5 server confirmation payload len={} (contents withheld)", server_cc.len()));
    hs.verify_server(&server_cc).map_err(|_| ClientError::ServerProof)
}

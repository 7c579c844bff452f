//! The control socket `btestd status` talks to: a Unix socket (mode 0660,
//! owned by the user the daemon runs as) served by the event loop. Each
//! client sends one short request line and gets one document back, then
//! the server closes; requests are bounded, clients are few and each has a
//! deadline, so a client that never sends or never reads cannot stall the
//! loop or hold memory.

use super::outbox::{Outbox, Step};
use super::slab::Slab;
use super::{KIND_CONTROL, Server, ServerError, token};
use crate::observe::request::{self, MAX_REQUEST, Request};
use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Control clients served at once; more are closed at accept.
const MAX_CLIENTS: usize = 8;
/// A client must have sent its request and read the reply within this time.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the control socket goes.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    pub path: PathBuf,
    /// Given by the operator: a socket that cannot be set up stops the
    /// start. The default path is skipped with a warning instead.
    pub required: bool,
}

/// The default control socket: beside the database, in the directory the
/// service user owns (`/var/lib/btestd/btestd.control`).
pub fn default_path(db: &Path) -> PathBuf {
    db.with_extension("control")
}

struct Client {
    sock: UnixStream,
    request: Vec<u8>,
    out: Outbox,
    since: Instant,
}

pub(super) struct Control {
    listener: UnixListener,
    path: PathBuf,
    clients: Slab<Client>,
}

impl Control {
    /// Binds the socket; None when the default path cannot be used.
    pub(super) fn open(cfg: &ControlConfig, registry: &Registry) -> Result<Option<Control>, ServerError> {
        match bind(&cfg.path) {
            Ok(mut listener) => {
                registry
                    .register(&mut listener, token(KIND_CONTROL, 0), Interest::READABLE)
                    .map_err(ServerError::Poll)?;
                Ok(Some(Control { listener, path: cfg.path.clone(), clients: Slab::new() }))
            }
            Err(e) if !cfg.required => {
                log::warn!("no control socket ('btestd status' will not answer): {e}; give --control PATH");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Closes clients past their deadline.
    pub(super) fn expire(&mut self, now: Instant, registry: &Registry) {
        for key in self.clients.keys() {
            if self.clients.get(key).is_some_and(|c| now.saturating_duration_since(c.since) >= CLIENT_TIMEOUT) {
                log::debug!("control client timed out");
                self.close(key, registry);
            }
        }
    }

    fn close(&mut self, key: usize, registry: &Registry) {
        if let Some(mut c) = self.clients.remove(key) {
            let _ = registry.deregister(&mut c.sock);
        }
    }

    /// Stops listening and removes the socket file.
    pub(super) fn shutdown(mut self, registry: &Registry) {
        for key in self.clients.keys() {
            self.close(key, registry);
        }
        let _ = registry.deregister(&mut self.listener);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `path`, replacing a stale socket no daemon answers on; mode 0660.
fn bind(path: &Path) -> Result<UnixListener, ServerError> {
    let err = |source: io::Error| ServerError::Control { path: path.to_path_buf(), source };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(err(io::Error::new(io::ErrorKind::AlreadyExists, "exists and is not a socket")));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(err(io::Error::new(io::ErrorKind::AddrInUse, "another btestd answers on it")));
        }
        std::fs::remove_file(path).map_err(err)?;
    }
    let listener = UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(err)?;
    Ok(listener)
}

impl Server {
    /// A control socket event: id 0 is the listener, others are clients.
    pub(super) fn on_control_event(&mut self, id: usize, now: Instant) {
        if id == 0 {
            self.control_accept(now);
        } else {
            self.control_serve(id - 1, now);
        }
    }

    /// Accepts what is queued; also called each second, since a client left
    /// queued when descriptors ran out brings no new event.
    pub(super) fn control_accept(&mut self, now: Instant) {
        loop {
            let Some(ctl) = self.control.as_mut() else { return };
            let sock = match ctl.listener.accept() {
                Ok((sock, _)) => sock,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if super::lifecycle::is_fd_exhaustion(&e) => {
                    // The client stays queued; the next tick retries.
                    self.fd_starved.refused(&e);
                    return;
                }
                Err(e) => {
                    log::debug!("control accept: {e}");
                    continue;
                }
            };
            if ctl.clients.len() >= MAX_CLIENTS {
                log::debug!("control client refused: {MAX_CLIENTS} already served");
                // Best effort, into the fresh socket's buffer: busy, not absent.
                let _ = (&sock).write(b"error: busy, try again\n");
                continue;
            }
            let key = ctl.clients.insert(Client { sock, request: Vec::new(), out: Outbox::default(), since: now });
            let Some(c) = ctl.clients.get_mut(key) else { return };
            let interest = Interest::READABLE | Interest::WRITABLE;
            if self.poll.registry().register(&mut c.sock, token(KIND_CONTROL, key + 1), interest).is_err() {
                ctl.clients.remove(key);
                continue;
            }
            // The request may already be there: its readiness event is not guaranteed to follow.
            self.control_serve(key, now);
        }
    }

    /// Reads the client's request, answers it, and writes what the socket takes.
    fn control_serve(&mut self, key: usize, now: Instant) {
        let step = match self.control_read(key) {
            Some(Ok(req)) => {
                let reply = match req {
                    Request::Status { json: true } => self.status(now).json(),
                    Request::Status { json: false } => self.status(now).text(),
                    Request::Metrics => crate::observe::metrics::render(&self.status(now)),
                };
                self.control_reply(key, reply.into_bytes())
            }
            Some(Err(e)) => self.control_reply(key, format!("error: {e}\n").into_bytes()),
            None => self.control_write(key),
        };
        if let (Step::Done, Some(ctl)) = (step, self.control.as_mut()) {
            ctl.close(key, self.poll.registry());
        }
    }

    /// The request, once complete (and only once); None while waiting or
    /// after it was answered.
    fn control_read(&mut self, key: usize) -> Option<Result<Request, request::RequestError>> {
        let c = self.control.as_mut()?.clients.get_mut(key)?;
        if c.out.is_set() {
            return None;
        }
        let mut buf = [0u8; MAX_REQUEST];
        loop {
            let room = MAX_REQUEST - c.request.len();
            match c.sock.read(&mut buf[..room.max(1)]) {
                Ok(0) => return Some(request::parse_at_eof(&c.request)),
                Ok(n) => {
                    c.request.extend_from_slice(&buf[..n]);
                    if let Some(r) = request::parse(&c.request) {
                        return Some(r);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Some(Err(request::RequestError::Unknown)),
            }
        }
    }

    fn control_reply(&mut self, key: usize, reply: Vec<u8>) -> Step {
        let Some(c) = self.control.as_mut().and_then(|ctl| ctl.clients.get_mut(key)) else { return Step::Done };
        c.out.set(reply);
        self.control_write(key)
    }

    /// Writes the rest of the reply; Done once it is all out (or the client went away).
    fn control_write(&mut self, key: usize) -> Step {
        let Some(c) = self.control.as_mut().and_then(|ctl| ctl.clients.get_mut(key)) else { return Step::Done };
        c.out.write_to(&mut c.sock)
    }
}

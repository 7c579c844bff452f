//! TCP payload that never passes through user space: sent with sendfile(2)
//! from a memory file holding the payload block (Linux, FreeBSD), received
//! and dropped in the kernel with `recv(MSG_TRUNC)` (Linux). Each call
//! falls back to the portable read/write path for good the first time the
//! system refuses it (old kernels, seccomp filters, other systems).
//!
//! `BTESTD_TCP_IO=portable` in the environment forces the portable path
//! from the start: a test and debugging knob, read once.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// The environment variable that forces the portable path.
pub const ENV: &str = "BTESTD_TCP_IO";

static SEND_OFF: AtomicBool = AtomicBool::new(false);
static DISCARD_OFF: AtomicBool = AtomicBool::new(!cfg!(any(target_os = "linux", target_os = "android")));
static INIT: std::sync::Once = std::sync::Once::new();

/// Reads [`ENV`] once and logs which TCP data path is in use.
pub fn init() {
    INIT.call_once(|| {
        let forced = std::env::var_os(ENV).is_some_and(|v| v == "portable");
        if forced {
            SEND_OFF.store(true, Ordering::Relaxed);
            DISCARD_OFF.store(true, Ordering::Relaxed);
        }
        log::info!("TCP data path: {}", describe());
    });
}

/// The calls in use, for the log.
fn describe() -> &'static str {
    match (send_ok(), discard_ok()) {
        (true, true) => "sendfile, receive discards in the kernel",
        (true, false) => "sendfile, portable receive",
        (false, true) => "portable send, receive discards in the kernel",
        (false, false) => "portable",
    }
}

/// Whether payload goes out with sendfile(2).
pub fn send_ok() -> bool {
    cfg!(any(target_os = "linux", target_os = "android", target_os = "freebsd")) && !SEND_OFF.load(Ordering::Relaxed)
}

/// Whether unneeded payload is dropped in the kernel.
pub fn discard_ok() -> bool {
    !DISCARD_OFF.load(Ordering::Relaxed)
}

/// Errors that say the call is not available here rather than that the
/// connection failed: missing system call, a filter, a file or socket kind
/// the call does not take.
pub fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSYS | libc::EINVAL | libc::EPERM | libc::EACCES | libc::EOPNOTSUPP | libc::ENOTSOCK)
    ) || e.kind() == io::ErrorKind::Unsupported
}

/// Stops using sendfile after `e` (logged once).
pub fn disable_send(e: &io::Error) {
    if !SEND_OFF.swap(true, Ordering::Relaxed) {
        log::warn!("sendfile unavailable ({e}); TCP data path: {}", describe());
    }
}

/// Stops discarding in the kernel after `e` (logged once).
pub fn disable_discard(e: &io::Error) {
    if !DISCARD_OFF.swap(true, Ordering::Relaxed) {
        log::warn!("recv(MSG_TRUNC) unavailable ({e}); TCP data path: {}", describe());
    }
}

/// Copies of a payload buffer in its memory file: with 256 KiB buffers,
/// sendfile calls of up to 1 MiB, a quarter as many as writes would need.
pub const FILE_COPIES: usize = 4;

/// A payload block in an anonymous memory file, for sendfile. Its pages
/// live in the page cache, outside the process's RSS.
#[derive(Debug)]
pub struct PayloadFile {
    fd: OwnedFd,
    len: usize,
}

impl PayloadFile {
    /// A memory file holding `copies` copies of `bytes`.
    pub fn new(bytes: &[u8], copies: usize) -> io::Result<PayloadFile> {
        let fd = anon_file()?;
        let len = bytes.len() * copies;
        let mut at = 0;
        while at < len {
            let rest = &bytes[at % bytes.len()..];
            // SAFETY: rest is a live buffer of rest.len() bytes.
            let n = unsafe { libc::write(fd.as_raw_fd(), rest.as_ptr().cast(), rest.len()) };
            if n <= 0 {
                let e = io::Error::last_os_error();
                if n < 0 && e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            at += n as usize;
        }
        Ok(PayloadFile { fd, len })
    }

    /// The file sendfile sends `bytes` from: [`FILE_COPIES`] copies, so a
    /// call moves up to that many buffers. None (and sendfile off, logged)
    /// when the system cannot make it.
    pub fn for_sending(bytes: &[u8]) -> Option<PayloadFile> {
        PayloadFile::new(bytes, FILE_COPIES).map_err(|e| disable_send(&e)).ok()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn anon_file() -> io::Result<OwnedFd> {
    // The raw system call: not every libc the router builds use wraps it.
    // SAFETY: the name is NUL-terminated; the result is checked.
    let fd = unsafe { libc::syscall(libc::SYS_memfd_create, c"btestd-payload".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by memfd_create and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

#[cfg(target_os = "freebsd")]
fn anon_file() -> io::Result<OwnedFd> {
    // SAFETY: SHM_ANON asks for an unnamed object; the result is checked.
    let fd = unsafe { libc::shm_open(libc::SHM_ANON, libc::O_RDWR | libc::O_CLOEXEC, 0o600) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by shm_open and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn anon_file() -> io::Result<OwnedFd> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Sends the first `len` bytes of `file` on the non-blocking socket `sock`.
/// Returns the bytes sent; WouldBlock when the socket buffer is full.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn sendfile(sock: RawFd, file: &PayloadFile, len: usize) -> io::Result<usize> {
    let mut off: libc::off_t = 0;
    // SAFETY: both descriptors are open; off is a live, writable offset.
    let n = unsafe { libc::sendfile(sock, file.fd.as_raw_fd(), &mut off, len.min(file.len)) };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

/// FreeBSD's sendfile: the offset by value, the count sent through a
/// pointer, and EAGAIN after a partial send on a non-blocking socket.
#[cfg(target_os = "freebsd")]
pub fn sendfile(sock: RawFd, file: &PayloadFile, len: usize) -> io::Result<usize> {
    let mut sent: libc::off_t = 0;
    // SAFETY: both descriptors are open; sent is a live, writable count.
    let r =
        unsafe { libc::sendfile(file.fd.as_raw_fd(), sock, 0, len.min(file.len), std::ptr::null_mut(), &mut sent, 0) };
    if r == 0 || sent > 0 { Ok(sent as usize) } else { Err(io::Error::last_os_error()) }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
pub fn sendfile(_sock: RawFd, _file: &PayloadFile, _len: usize) -> io::Result<usize> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Drops up to `len` received bytes of TCP socket `sock` in the kernel,
/// without copying them. Returns how many; 0 at end of stream.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn discard(sock: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: with MSG_TRUNC a TCP socket writes nothing to the buffer.
    let n = unsafe { libc::recv(sock, std::ptr::null_mut(), len, libc::MSG_TRUNC) };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

/// Only Linux drops TCP data with MSG_TRUNC (elsewhere it would be read
/// into a null buffer or refused).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn discard(_sock: RawFd, _len: usize) -> io::Result<usize> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Duration;

    fn pair() -> (std::net::TcpStream, std::net::TcpStream) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (a, b)
    }

    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    #[test]
    fn sendfile_sends_a_prefix_of_the_file() {
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let file = PayloadFile::new(&bytes, 2).unwrap();
        assert_eq!(file.len(), 20_000);
        let (mut a, b) = pair();
        assert_eq!(sendfile(b.as_raw_fd(), &file, 3000).unwrap(), 3000);
        assert_eq!(sendfile(b.as_raw_fd(), &file, 50_000).unwrap(), 20_000, "at most the file");
        let mut got = vec![0u8; 23_000];
        a.read_exact(&mut got).unwrap();
        assert_eq!(&got[..3000], &bytes[..3000]);
        assert_eq!(&got[3000..13_000], &bytes[..]);
        assert_eq!(&got[13_000..], &bytes[..]);
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn discard_drops_bytes_without_reading_them() {
        let (mut a, mut b) = pair();
        a.write_all(&[1u8; 5000]).unwrap();
        a.write_all(b"end").unwrap();
        let mut dropped = 0;
        while dropped < 5000 {
            dropped += discard(b.as_raw_fd(), 5000 - dropped).unwrap();
        }
        let mut tail = [0u8; 3];
        b.read_exact(&mut tail).unwrap();
        assert_eq!(&tail, b"end");
        drop(a);
        assert_eq!(discard(b.as_raw_fd(), 100).unwrap(), 0, "end of stream");
    }

    #[test]
    fn refusals_are_told_from_failures() {
        assert!(unsupported(&io::Error::from_raw_os_error(libc::ENOSYS)));
        assert!(unsupported(&io::Error::from_raw_os_error(libc::EPERM)));
        assert!(!unsupported(&io::Error::from_raw_os_error(libc::ECONNRESET)));
        assert!(!unsupported(&io::ErrorKind::WouldBlock.into()));
    }
}

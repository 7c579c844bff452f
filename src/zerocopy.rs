//! TCP payload that never passes through user space: sent from pages the
//! kernel holds (Linux: tee(2) and splice(2) from a pipe; FreeBSD:
//! sendfile(2) from a memory object), received and dropped in the kernel
//! with `recv(MSG_TRUNC)` (Linux). Each call falls back to the portable
//! read/write path for good the first time the system refuses it (old
//! kernels, seccomp filters, other systems).
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
        (true, true) => "zero-copy send, receive discards in the kernel",
        (true, false) => "zero-copy send, portable receive",
        (false, true) => "portable send, receive discards in the kernel",
        (false, false) => "portable",
    }
}

/// Whether payload goes out without a copy.
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

/// Stops sending without a copy after `e` (logged once).
pub fn disable_send(e: &io::Error) {
    if !SEND_OFF.swap(true, Ordering::Relaxed) {
        log::warn!("zero-copy send unavailable ({e}); TCP data path: {}", describe());
    }
}

/// Stops discarding in the kernel after `e` (logged once).
pub fn disable_discard(e: &io::Error) {
    if !DISCARD_OFF.swap(true, Ordering::Relaxed) {
        log::warn!("recv(MSG_TRUNC) unavailable ({e}); TCP data path: {}", describe());
    }
}

/// Copies of a payload buffer in its payload file: with 256 KiB buffers,
/// calls of up to 1 MiB, a quarter as many as writes would need.
pub const FILE_COPIES: usize = 4;

/// A payload block the kernel sends without a copy. On Linux the block's
/// pages sit in a pipe that is never read: `tee(2)` references them into a
/// second pipe, the stock, which `splice(2)` hands to sockets. That skips
/// the page cache lookups sendfile makes for every page, a sixth of a
/// sending server's CPU. The stock is shared by every socket sending this
/// payload: any stretch of zeros or tag-free random bytes is valid payload
/// for each of them. FreeBSD sends from a shared memory object with
/// sendfile. Neither counts in the RSS.
#[derive(Debug)]
pub struct PayloadFile {
    /// Linux: the source pipe's read end; FreeBSD: the memory object.
    fd: OwnedFd,
    /// The stock pipe's read and write ends, and the bytes it holds.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    stock: (OwnedFd, OwnedFd, std::cell::Cell<usize>),
    len: usize,
}

impl PayloadFile {
    /// A payload file of `copies` copies of `bytes` (fewer where the
    /// system's pipes hold less).
    pub fn new(bytes: &[u8], copies: usize) -> io::Result<PayloadFile> {
        let want = bytes.len() * copies;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let (fd, fill, stock) = {
            let (source, fill) = pipe(want)?;
            let (r, w) = pipe(want)?;
            (source, fill, (r, w, std::cell::Cell::new(0)))
        };
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let fd = anon_file()?;
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let fill = fd.as_raw_fd();
        let mut len = 0;
        while len < want {
            let rest = &bytes[len % bytes.len()..];
            // SAFETY: rest is a live buffer of rest.len() bytes.
            let n = unsafe { libc::write(fill.as_raw_fd(), rest.as_ptr().cast(), rest.len()) };
            if n <= 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted if n < 0 => continue,
                    // A pipe smaller than asked for is full.
                    io::ErrorKind::WouldBlock if len > 0 => break,
                    _ => return Err(e),
                }
            }
            len += n as usize;
        }
        Ok(PayloadFile {
            fd,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            stock,
            len,
        })
    }

    /// The file payload is sent from: [`FILE_COPIES`] copies, so a call
    /// moves up to that many buffers. None (and zero-copy send off,
    /// logged) when the system cannot make it.
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

/// A non-blocking pipe of at least `size` bytes where the system allows:
/// (read end, write end).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn pipe(size: usize) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a live array of two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 just returned both descriptors, owned by nobody else.
    let ends = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // Refused above fs.pipe-max-size for unprivileged users: the pipe keeps
    // its default size and calls move less.
    // SAFETY: a plain fcntl on a descriptor just made.
    unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, size as libc::c_int) };
    Ok(ends)
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

/// Sends up to `len` bytes of `file`'s payload on the non-blocking socket
/// `sock`: from the stock, topped up from the source first. Returns the
/// bytes sent; WouldBlock when the socket buffer is full.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn send(sock: RawFd, file: &PayloadFile, len: usize) -> io::Result<usize> {
    let (out, into, held) = &file.stock;
    let want = len.min(file.len);
    let mut stocked = held.get();
    if stocked < want {
        // SAFETY: plain descriptors; no user memory is passed.
        let n = unsafe { libc::tee(file.fd.as_raw_fd(), into.as_raw_fd(), want - stocked, libc::SPLICE_F_NONBLOCK) };
        if n > 0 {
            stocked += n as usize;
            held.set(stocked);
        } else if stocked == 0 {
            // Never WouldBlock: an empty stock has room, and no socket
            // event would end the wait.
            let e = io::Error::last_os_error();
            return Err(if n < 0 && e.kind() != io::ErrorKind::WouldBlock {
                e
            } else {
                io::ErrorKind::Unsupported.into()
            });
        }
    }
    let null = std::ptr::null_mut();
    // SAFETY: plain descriptors; a pipe and a socket take no offsets.
    let n = unsafe { libc::splice(out.as_raw_fd(), null, sock, null, want.min(stocked), libc::SPLICE_F_NONBLOCK) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    held.set(stocked - n as usize);
    Ok(n as usize)
}

/// FreeBSD's sendfile: the offset by value, the count sent through a
/// pointer, and EAGAIN after a partial send on a non-blocking socket.
#[cfg(target_os = "freebsd")]
pub fn send(sock: RawFd, file: &PayloadFile, len: usize) -> io::Result<usize> {
    let mut sent: libc::off_t = 0;
    // SAFETY: both descriptors are open; sent is a live, writable count.
    let r =
        unsafe { libc::sendfile(file.fd.as_raw_fd(), sock, 0, len.min(file.len), std::ptr::null_mut(), &mut sent, 0) };
    if r == 0 || sent > 0 { Ok(sent as usize) } else { Err(io::Error::last_os_error()) }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
pub fn send(_sock: RawFd, _file: &PayloadFile, _len: usize) -> io::Result<usize> {
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
    fn a_send_moves_a_prefix_of_the_file() {
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let file = PayloadFile::new(&bytes, 2).unwrap();
        assert_eq!(file.len(), 20_000);
        let (mut a, b) = pair();
        assert_eq!(send(b.as_raw_fd(), &file, 3000).unwrap(), 3000);
        assert_eq!(send(b.as_raw_fd(), &file, 50_000).unwrap(), 20_000, "at most the file");
        let mut got = vec![0u8; 23_000];
        a.read_exact(&mut got).unwrap();
        assert_eq!(&got[..3000], &bytes[..3000]);
        assert_eq!(&got[3000..13_000], &bytes[..]);
        assert_eq!(&got[13_000..], &bytes[..]);
    }

    /// What a full socket refused stays in the stock and goes out with the
    /// next send, on whichever socket: nothing is lost or sent twice.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn bytes_a_full_socket_refused_go_out_with_the_next_send() {
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8 | 1).collect();
        let file = PayloadFile::new(&bytes, 2).unwrap();
        let pairs: Vec<_> = (0..2).map(|_| pair()).collect();
        for (_, b) in &pairs {
            b.set_nonblocking(true).unwrap();
            crate::net::setsockopt_int(b.as_raw_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, 16 << 10).unwrap();
        }
        let (mut sent, mut got, mut refused) = ([0u64; 2], [0u64; 2], 0);
        let mut buf = vec![0u8; 1 << 20];
        while got.iter().sum::<u64>() < 8_000_000 {
            for (i, (a, b)) in pairs.iter().enumerate() {
                match send(b.as_raw_fd(), &file, 150_000) {
                    Ok(n) => sent[i] += n as u64,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        assert!(file.stock.2.get() > 0, "teed bytes wait in the stock");
                        refused += 1;
                    }
                    Err(e) => panic!("{e}"),
                }
                while got[i] < sent[i] {
                    let n = (&*a).read(&mut buf).unwrap();
                    assert!(buf[..n].iter().all(|&x| x & 1 == 1), "only payload bytes");
                    got[i] += n as u64;
                }
            }
        }
        assert_eq!(got, sent);
        assert!(refused > 0, "the sockets filled up");
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

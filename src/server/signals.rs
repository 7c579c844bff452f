//! SIGTERM/SIGINT/SIGHUP delivered to the event loop through a self-pipe,
//! so signal handling is just another readable source.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = PIPE_WRITE.load(Ordering::Relaxed);
    if fd >= 0 {
        let saved = errno();
        let b = sig as u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is one local byte.
        unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
        set_errno(saved);
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn errno_ptr() -> *mut libc::c_int {
    // SAFETY: returns the calling thread's errno location.
    unsafe { libc::__errno_location() }
}

#[cfg(any(target_os = "freebsd", target_os = "macos"))]
fn errno_ptr() -> *mut libc::c_int {
    // SAFETY: returns the calling thread's errno location.
    unsafe { libc::__error() }
}

fn errno() -> libc::c_int {
    // SAFETY: errno_ptr points at this thread's errno.
    unsafe { *errno_ptr() }
}

fn set_errno(v: libc::c_int) {
    // SAFETY: as above.
    unsafe { *errno_ptr() = v }
}

/// Signals received since the last [`Signals::drain`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// SIGTERM or SIGINT: stop.
    pub stop: bool,
    /// SIGHUP: reload users and limits.
    pub reload: bool,
}

/// The read end of the self-pipe; register it with the poll.
pub struct Signals {
    read: OwnedFd,
    _write: OwnedFd,
}

impl Signals {
    /// Installs handlers for SIGTERM, SIGINT and SIGHUP. One instance per process.
    pub fn install() -> io::Result<Signals> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: fds has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created and are owned here.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        PIPE_WRITE.store(write.as_raw_fd(), Ordering::Relaxed);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            // SAFETY: a zeroed sigaction with a valid handler and empty mask.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        Ok(Signals { read, _write: write })
    }

    pub fn fd(&self) -> libc::c_int {
        self.read.as_raw_fd()
    }

    /// Reads every pending signal byte.
    pub fn drain(&self) -> Received {
        let mut got = Received::default();
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: buf is a writable local buffer of the given length.
            let n = unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return got;
            }
            for &s in &buf[..n as usize] {
                match libc::c_int::from(s) {
                    libc::SIGHUP => got.reload = true,
                    _ => got.stop = true,
                }
            }
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        // The write end closes with us; stop handlers from writing to a
        // descriptor number that may be reused.
        PIPE_WRITE.store(-1, Ordering::Relaxed);
    }
}

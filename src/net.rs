//! Socket creation that std and mio do not offer: IPv6 sockets bound with
//! IPV6_V6ONLY, so that `0.0.0.0:P` and `[::]:P` can both be bound.

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// A listening TCP socket on `addr` (non-blocking, SO_REUSEADDR, v6-only).
pub fn tcp_listener(addr: SocketAddr, backlog: i32) -> io::Result<mio::net::TcpListener> {
    let fd = bound_socket(addr, libc::SOCK_STREAM)?;
    // SAFETY: fd is a valid socket we own.
    if unsafe { libc::listen(raw(&fd), backlog) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(mio::net::TcpListener::from_std(std::net::TcpListener::from(fd)))
}

/// A bound UDP socket on `addr` (non-blocking, v6-only).
pub fn udp_socket(addr: SocketAddr) -> io::Result<mio::net::UdpSocket> {
    let fd = bound_socket(addr, libc::SOCK_DGRAM)?;
    Ok(mio::net::UdpSocket::from_std(std::net::UdpSocket::from(fd)))
}

fn raw(fd: &OwnedFd) -> libc::c_int {
    use std::os::fd::AsRawFd;
    fd.as_raw_fd()
}

fn bound_socket(addr: SocketAddr, ty: libc::c_int) -> io::Result<OwnedFd> {
    let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(family, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if ty == libc::SOCK_STREAM {
        setsockopt_int(raw(&fd), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    }
    if addr.is_ipv6() {
        setsockopt_int(raw(&fd), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
    }
    let (storage, len) = sockaddr(addr);
    // SAFETY: storage holds a valid sockaddr of length len.
    if unsafe { libc::bind(raw(&fd), (&storage as *const libc::sockaddr_storage).cast(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Sets an int socket option.
pub fn setsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: value lives for the duration of the call and its size is passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Reads an int socket option.
pub fn getsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and len are live and len holds value's size.
    let r = unsafe { libc::getsockopt(fd, level, name, (&raw mut value).cast(), &mut len) };
    if r == 0 { Ok(value) } else { Err(io::Error::last_os_error()) }
}

/// `addr` as a C socket address.
pub(crate) fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe { &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            #[cfg(any(target_os = "freebsd", target_os = "macos", target_os = "openbsd", target_os = "netbsd"))]
            {
                sin.sin_len = mem::size_of::<libc::sockaddr_in>() as u8;
            }
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            #[cfg(any(target_os = "freebsd", target_os = "macos", target_os = "openbsd", target_os = "netbsd"))]
            {
                sin6.sin6_len = mem::size_of::<libc::sockaddr_in6>() as u8;
            }
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// Raises the open-file limit to the hard limit: every test holds sockets,
/// and the usual soft limit of 1024 would cap a busy server. Returns the
/// limit now in force.
pub fn raise_fd_limit() -> io::Result<u64> {
    // SAFETY: all-zero is a valid rlimit, filled by getrlimit.
    let mut lim: libc::rlimit = unsafe { mem::zeroed() };
    // SAFETY: lim is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let wanted = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: wanted is a valid rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } == 0 {
            lim = wanted;
        }
    }
    Ok(lim.rlim_cur as u64)
}

/// Makes closing `sock` send a reset and drop unsent data (SO_LINGER 0).
pub fn abort_on_close(sock: &impl std::os::fd::AsRawFd) {
    let lg = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: lg lives for the duration of the call and its size is passed.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&lg as *const libc::linger).cast(),
            mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Largest UDP payload this system sends. FreeBSD caps datagrams at
/// `net.inet.udp.maxdgram` (9216 by default).
#[cfg(target_os = "freebsd")]
pub fn max_udp_payload() -> usize {
    let mut v: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>();
    // SAFETY: the name is NUL-terminated and v/len describe a writable int.
    let r = unsafe {
        libc::sysctlbyname(
            c"net.inet.udp.maxdgram".as_ptr(),
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
            std::ptr::null(),
            0,
        )
    };
    if r == 0 && v > 0 { v as usize } else { 9216 }
}

/// Largest UDP payload this system sends.
#[cfg(not(target_os = "freebsd"))]
pub fn max_udp_payload() -> usize {
    65507
}

/// A C socket address filled in by the kernel, as a `SocketAddr`.
/// Used by the Linux batched receive path (and its tests elsewhere).
#[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
pub(crate) fn from_sockaddr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::from((ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_and_v6_wildcards_bind_the_same_port() {
        let v4 = tcp_listener("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let port = v4.local_addr().unwrap().port();
        assert_eq!(v4.local_addr().unwrap().ip().to_string(), "127.0.0.1");
        // ::1 may be missing in minimal containers; only check when present.
        if let Ok(v6) = tcp_listener(format!("[::1]:{port}").parse().unwrap(), 16) {
            assert_eq!(v6.local_addr().unwrap().port(), port);
        }
        let u = udp_socket("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_ne!(u.local_addr().unwrap().port(), 0);
    }

    #[test]
    fn sockaddr_round_trips() {
        for a in ["192.0.2.7:2001", "[2001:db8::1]:65535", "0.0.0.0:0"] {
            let addr: SocketAddr = a.parse().unwrap();
            let (storage, _) = sockaddr(addr);
            assert_eq!(from_sockaddr(&storage), Some(addr));
        }
    }
}

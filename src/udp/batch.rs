//! Sending and receiving many datagrams per system call: sendmmsg/recvmmsg
//! on Linux, one sendmsg/recvfrom per datagram elsewhere. Both paths are
//! always compiled where possible so tests can exercise the portable one.

use crate::net;
use mio::net::UdpSocket;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

/// Datagrams received per batched system call, and sent per call without
/// segmentation offload.
pub const BATCH: usize = 32;
/// Most datagrams one [`send`] call takes.
pub const MAX_SEND: usize = 256;
/// Segmentation offload: one message of up to this many equal datagrams.
#[cfg(any(target_os = "linux", target_os = "android"))]
const GSO_MAX_SEGMENTS: usize = 64;
/// Messages per sendmmsg with segmentation offload.
#[cfg(any(target_os = "linux", target_os = "android"))]
const GSO_MESSAGES: usize = 4;
#[cfg(any(target_os = "linux", target_os = "android"))]
const UDP_SEGMENT: libc::c_int = 103;
#[cfg(any(target_os = "linux", target_os = "android"))]
const UDP_GRO: libc::c_int = 104;
/// Receive offload: room for one coalesced message (at most 64 KiB of
/// equal datagrams) in each of this many slots of the scratch buffer.
#[cfg(any(target_os = "linux", target_os = "android"))]
const GRO_SLOT: usize = 65536;

/// Which system calls move datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoMode {
    /// sendmmsg/recvmmsg (Linux), with UDP segmentation offload when the
    /// kernel has it: the kernel cuts one buffer into many equal datagrams.
    Batched,
    /// One call per datagram (every Unix).
    Portable,
}

impl IoMode {
    /// The fastest mode this OS offers.
    pub fn native() -> IoMode {
        if cfg!(any(target_os = "linux", target_os = "android")) { IoMode::Batched } else { IoMode::Portable }
    }
}

impl std::str::FromStr for IoMode {
    type Err = String;
    fn from_str(s: &str) -> Result<IoMode, String> {
        match s {
            "batched" => Ok(IoMode::Batched),
            "portable" => Ok(IoMode::Portable),
            _ => Err(format!("invalid UDP I/O mode '{s}': use batched or portable")),
        }
    }
}

/// Per-socket sending state: whether segmentation offload still works.
#[derive(Debug, Clone, Copy)]
pub struct Sender {
    pub mode: IoMode,
    /// Segmentation offload is Linux's; elsewhere this stays false, unread.
    #[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
    gso: bool,
}

impl Sender {
    pub fn new(mode: IoMode) -> Sender {
        Sender { mode, gso: mode == IoMode::Batched && gso_works() }
    }

    /// Sends `count` (at most [`MAX_SEND`]) datagrams to `dest`, the i-th
    /// made of the big-endian sequence `first_seq + i` and `payload`.
    /// Returns how many went out; fewer means the socket buffer is full.
    pub fn send(
        &mut self,
        sock: &UdpSocket,
        dest: SocketAddr,
        first_seq: u32,
        payload: &[u8],
        count: usize,
    ) -> io::Result<usize> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if self.gso && count > 1 {
            match send_gso(sock, dest, first_seq, payload, count) {
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EIO | libc::ENOPROTOOPT)) => {
                    log::debug!("UDP segmentation offload unavailable ({e}); sending datagrams one by one");
                    self.gso = false;
                }
                other => return other,
            }
        }
        send(sock, self.mode, dest, first_seq, payload, count)
    }
}

/// Whether the kernel really cuts offloaded sends into datagrams, checked
/// once over loopback. An emulator (qemu-user) or an odd kernel may accept
/// the option and ignore it, which would send one giant datagram instead.
fn gso_works() -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        static WORKS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *WORKS.get_or_init(|| {
            let probe = || -> io::Result<bool> {
                let rx = std::net::UdpSocket::bind("127.0.0.1:0")?;
                rx.set_read_timeout(Some(std::time::Duration::from_millis(200)))?;
                let tx = mio::net::UdpSocket::bind("127.0.0.1:0".parse().map_err(io::Error::other)?)?;
                let sent = send_gso(&tx, rx.local_addr()?, 7, &[0u8; 4], 2)?;
                let mut buf = [0u8; 64];
                let a = rx.recv(&mut buf)?;
                let b = rx.recv(&mut buf)?;
                Ok(sent == 2 && a == 8 && b == 8 && buf[..4] == 8u32.to_be_bytes())
            };
            probe().unwrap_or(false)
        })
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    false
}

/// Sends up to [`BATCH`] datagrams without segmentation offload.
pub fn send(
    sock: &UdpSocket,
    mode: IoMode,
    dest: SocketAddr,
    first_seq: u32,
    payload: &[u8],
    count: usize,
) -> io::Result<usize> {
    let count = count.min(BATCH);
    let mut hdrs = [[0u8; 4]; BATCH];
    for (i, h) in hdrs.iter_mut().enumerate().take(count) {
        *h = first_seq.wrapping_add(i as u32).to_be_bytes();
    }
    let (addr, addr_len) = net::sockaddr(dest);
    let mut iovs = [[empty_iovec(); 2]; BATCH];
    for (iov, h) in iovs.iter_mut().zip(hdrs.iter_mut()).take(count) {
        iov[0] = libc::iovec { iov_base: h.as_mut_ptr().cast(), iov_len: 4 };
        // The kernel only reads send buffers; the cast to *mut is an API formality.
        iov[1] = libc::iovec { iov_base: payload.as_ptr() as *mut libc::c_void, iov_len: payload.len() };
    }
    match mode {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        IoMode::Batched => send_batched(sock, &addr, addr_len, &mut iovs[..count]),
        _ => send_each(sock, &addr, addr_len, &mut iovs[..count]),
    }
}

fn empty_iovec() -> libc::iovec {
    libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }
}

fn msghdr(addr: &libc::sockaddr_storage, addr_len: libc::socklen_t, iov: &mut [libc::iovec]) -> libc::msghdr {
    // SAFETY: all-zero is a valid msghdr (some libcs have private padding fields).
    let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
    m.msg_name = (addr as *const libc::sockaddr_storage).cast_mut().cast();
    m.msg_namelen = addr_len;
    m.msg_iov = iov.as_mut_ptr();
    m.msg_iovlen = iov.len() as _;
    m
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

fn send_each(
    sock: &UdpSocket,
    addr: &libc::sockaddr_storage,
    addr_len: libc::socklen_t,
    iovs: &mut [[libc::iovec; 2]],
) -> io::Result<usize> {
    let mut sent = 0;
    for iov in iovs.iter_mut() {
        let m = msghdr(addr, addr_len, iov);
        loop {
            // SAFETY: m points at live iovecs and a live address for the call.
            let r = unsafe { libc::sendmsg(sock.as_raw_fd(), &m, 0) };
            if r >= 0 {
                sent += 1;
                break;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                _ if would_block(&e) => return Ok(sent),
                _ if sent > 0 => return Ok(sent),
                _ => return Err(e),
            }
        }
    }
    Ok(sent)
}

/// Up to [`GSO_MESSAGES`] messages of up to [`GSO_MAX_SEGMENTS`] datagrams,
/// each message one buffer (header, payload, header, payload, ...) that the
/// kernel segments at the datagram size.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_gso(sock: &UdpSocket, dest: SocketAddr, first_seq: u32, payload: &[u8], count: usize) -> io::Result<usize> {
    let seg_len = 4 + payload.len();
    // One message stays within the 64 KiB a UDP send can carry.
    let per_msg = (65_000 / seg_len).min(GSO_MAX_SEGMENTS);
    if per_msg < 2 {
        return send(sock, IoMode::Batched, dest, first_seq, payload, count);
    }
    let count = count.min(per_msg * GSO_MESSAGES).min(MAX_SEND);
    let mut hdrs = [[0u8; 4]; MAX_SEND];
    for (i, h) in hdrs.iter_mut().enumerate().take(count) {
        *h = first_seq.wrapping_add(i as u32).to_be_bytes();
    }
    let (addr, addr_len) = net::sockaddr(dest);
    let mut iovs = [empty_iovec(); 2 * MAX_SEND];
    for (pair, h) in iovs.chunks_exact_mut(2).zip(hdrs.iter_mut()).take(count) {
        pair[0] = libc::iovec { iov_base: h.as_mut_ptr().cast(), iov_len: 4 };
        pair[1] = libc::iovec { iov_base: payload.as_ptr() as *mut libc::c_void, iov_len: payload.len() };
    }
    // One cmsg per message carrying the segment size.
    #[repr(C, align(8))]
    struct Cmsg([u8; 32]);
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) } as usize;
    let mut cmsgs: [Cmsg; GSO_MESSAGES] = std::array::from_fn(|_| Cmsg([0; 32]));
    // SAFETY: all-zero is a valid mmsghdr.
    let mut msgs: [libc::mmsghdr; GSO_MESSAGES] = unsafe { std::mem::zeroed() };
    let mut sizes = [0usize; GSO_MESSAGES];
    let mut nmsgs = 0;
    let mut at = 0;
    while at < count {
        let segs = (count - at).min(per_msg);
        let m = &mut msgs[nmsgs];
        m.msg_hdr = msghdr(&addr, addr_len, &mut iovs[2 * at..2 * (at + segs)]);
        if segs > 1 {
            let c = &mut cmsgs[nmsgs];
            m.msg_hdr.msg_control = c.0.as_mut_ptr().cast();
            m.msg_hdr.msg_controllen = space as _;
            // SAFETY: msg_control points at `space` (<= 32) writable, aligned bytes.
            unsafe {
                let h = libc::CMSG_FIRSTHDR(&m.msg_hdr);
                (*h).cmsg_level = libc::SOL_UDP;
                (*h).cmsg_type = UDP_SEGMENT;
                (*h).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(h).cast::<u16>(), seg_len as u16);
            }
        }
        sizes[nmsgs] = segs;
        nmsgs += 1;
        at += segs;
    }
    loop {
        // SAFETY: the first nmsgs entries point at live iovecs, address and control data.
        let r = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), nmsgs as _, 0) };
        if r >= 0 {
            return Ok(sizes[..r as usize].iter().sum());
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            _ if would_block(&e) => return Ok(0),
            _ => return Err(e),
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_batched(
    sock: &UdpSocket,
    addr: &libc::sockaddr_storage,
    addr_len: libc::socklen_t,
    iovs: &mut [[libc::iovec; 2]],
) -> io::Result<usize> {
    // SAFETY: all-zero is a valid mmsghdr.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    let n = iovs.len();
    for (m, iov) in msgs.iter_mut().zip(iovs.iter_mut()) {
        m.msg_hdr = msghdr(addr, addr_len, iov);
    }
    loop {
        // SAFETY: the first n entries point at live iovecs and address.
        let r = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), n as _, 0) };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            _ if would_block(&e) => return Ok(0),
            _ => return Err(e),
        }
    }
}

/// One received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    pub src: SocketAddr,
    /// Full UDP payload length.
    pub len: usize,
    /// Sequence number, when the datagram carries one (at least 4 bytes).
    pub seq: Option<u32>,
}

/// Turns on receive offload for `sock` when the mode is batched and the
/// kernel really delivers coalesced datagrams with their segment size
/// (checked once); returns whether it is on.
pub fn enable_gro(sock: &UdpSocket, mode: IoMode) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if mode == IoMode::Batched && gro_works() {
        return net::setsockopt_int(sock.as_raw_fd(), libc::SOL_UDP, UDP_GRO, 1).is_ok();
    }
    let _ = (sock, mode);
    false
}

/// Whether a GRO socket gets an offloaded send as one message with its
/// segment size, checked once over loopback (an emulator may take the
/// option and drop the control message, which would miscount).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn gro_works() -> bool {
    static WORKS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WORKS.get_or_init(|| {
        let probe = || -> io::Result<bool> {
            if !gso_works() {
                return Ok(false);
            }
            let rx = net::udp_socket("127.0.0.1:0".parse().map_err(io::Error::other)?)?;
            net::setsockopt_int(rx.as_raw_fd(), libc::SOL_UDP, UDP_GRO, 1)?;
            let tx = mio::net::UdpSocket::bind("127.0.0.1:0".parse().map_err(io::Error::other)?)?;
            let sent = send_gso(&tx, rx.local_addr()?, 7, &[0u8; 4], 2)?;
            let mut scratch = vec![0u8; 2 * GRO_SLOT];
            let mut seqs = Vec::new();
            let deadline = std::time::Instant::now() + std::time::Duration::from_millis(200);
            while seqs.len() < 2 && std::time::Instant::now() < deadline {
                recv_gro(&rx, &mut scratch, &mut |d| seqs.push((d.seq, d.len)))?;
            }
            Ok(sent == 2 && seqs == [(Some(7), 8), (Some(8), 8)])
        };
        probe().unwrap_or(false)
    })
}

/// Receives up to `max` datagrams (one batch; with `gro`, up to a batch of
/// coalesced messages), calling `each`. Returns how many arrived; 0 means
/// the socket is drained.
pub fn recv(
    sock: &UdpSocket,
    mode: IoMode,
    gro: bool,
    scratch: &mut [u8],
    max: usize,
    each: &mut dyn FnMut(Datagram),
) -> io::Result<usize> {
    match mode {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        IoMode::Batched if gro && scratch.len() >= GRO_SLOT => recv_gro(sock, scratch, each),
        #[cfg(any(target_os = "linux", target_os = "android"))]
        IoMode::Batched => recv_batched(sock, max, each),
        _ => {
            let _ = gro;
            recv_each(sock, scratch, max, each)
        }
    }
}

/// Coalesced receive: each message is a run of equal datagrams (the last
/// may be shorter) with their size in a UDP_GRO control message; every
/// datagram's sequence number is read where it starts, so counts, sizes
/// and loss are exactly those of one datagram per message.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn recv_gro(sock: &UdpSocket, scratch: &mut [u8], each: &mut dyn FnMut(Datagram)) -> io::Result<usize> {
    const SLOTS: usize = 8;
    #[repr(C, align(8))]
    #[derive(Clone, Copy)]
    struct Cmsg([u8; 64]);
    let n = (scratch.len() / GRO_SLOT).clamp(1, SLOTS);
    // SAFETY: all-zero sockaddr_storage, iovec and mmsghdr values are valid.
    let mut addrs: [libc::sockaddr_storage; SLOTS] = unsafe { std::mem::zeroed() };
    let mut iovs = [empty_iovec(); SLOTS];
    let mut cmsgs = [Cmsg([0; 64]); SLOTS];
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; SLOTS] = unsafe { std::mem::zeroed() };
    for (i, slot) in scratch.chunks_exact_mut(GRO_SLOT).take(n).enumerate() {
        iovs[i] = libc::iovec { iov_base: slot.as_mut_ptr().cast(), iov_len: GRO_SLOT };
        let h = &mut msgs[i].msg_hdr;
        h.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
        h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        h.msg_iov = &mut iovs[i];
        h.msg_iovlen = 1;
        h.msg_control = cmsgs[i].0.as_mut_ptr().cast();
        h.msg_controllen = cmsgs[i].0.len() as _;
    }
    // SAFETY: the first n entries point at live buffers owned by this frame or the caller.
    let r = unsafe { recvmmsg(sock, &mut msgs[..n], 0)? };
    let mut datagrams = 0;
    for (i, slot) in scratch.chunks_exact(GRO_SLOT).take(r).enumerate() {
        let len = (msgs[i].msg_len as usize).min(GRO_SLOT);
        let Some(src) = net::from_sockaddr(&addrs[i]) else { continue };
        let seg = gro_segment(&msgs[i].msg_hdr).filter(|&s| s > 0 && s < len).unwrap_or(len.max(1));
        if len == 0 {
            datagrams += 1;
            each(Datagram { src, len: 0, seq: None });
            continue;
        }
        for d in slot[..len].chunks(seg) {
            datagrams += 1;
            each(Datagram { src, len: d.len(), seq: crate::proto::udp::seq(d) });
        }
    }
    Ok(datagrams)
}

/// The segment size a UDP_GRO control message reports, if any.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn gro_segment(h: &libc::msghdr) -> Option<usize> {
    // SAFETY: the kernel filled msg_control up to msg_controllen; the
    // CMSG_* macros stay within it.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == UDP_GRO {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                return usize::try_from(v).ok();
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

fn recv_each(sock: &UdpSocket, scratch: &mut [u8], max: usize, each: &mut dyn FnMut(Datagram)) -> io::Result<usize> {
    let mut got = 0;
    while got < max {
        match sock.recv_from(scratch) {
            Ok((len, src)) => {
                got += 1;
                each(Datagram { src, len, seq: crate::proto::udp::seq(&scratch[..len]) });
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if would_block(&e) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Only the sequence number is needed, so each datagram lands in a few
/// bytes and MSG_TRUNC reports its real length: no 64 KiB buffers.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn recv_batched(sock: &UdpSocket, max: usize, each: &mut dyn FnMut(Datagram)) -> io::Result<usize> {
    let n = max.clamp(1, BATCH);
    let mut heads = [[0u8; 16]; BATCH];
    // SAFETY: all-zero sockaddr_storage, iovec and mmsghdr values are valid.
    let mut addrs: [libc::sockaddr_storage; BATCH] = unsafe { std::mem::zeroed() };
    let mut iovs = [empty_iovec(); BATCH];
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for i in 0..n {
        iovs[i] = libc::iovec { iov_base: heads[i].as_mut_ptr().cast(), iov_len: heads[i].len() };
        let h = &mut msgs[i].msg_hdr;
        h.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
        h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        h.msg_iov = &mut iovs[i];
        h.msg_iovlen = 1;
    }
    // SAFETY: the first n entries point at live buffers owned by this frame.
    let r = unsafe { recvmmsg(sock, &mut msgs[..n], libc::MSG_TRUNC)? };
    for i in 0..r {
        let len = msgs[i].msg_len as usize;
        let Some(src) = net::from_sockaddr(&addrs[i]) else { continue };
        let head = &heads[i][..len.min(heads[i].len())];
        each(Datagram { src, len, seq: crate::proto::udp::seq(head) });
    }
    Ok(r)
}

/// recvmmsg(2) of `msgs`, retried when interrupted; 0 when nothing waits.
///
/// # Safety
/// Every header in `msgs` must point at buffers that live for the call.
#[cfg(any(target_os = "linux", target_os = "android"))]
unsafe fn recvmmsg(sock: &impl AsRawFd, msgs: &mut [libc::mmsghdr], flags: libc::c_int) -> io::Result<usize> {
    loop {
        // SAFETY: the caller's promise about the headers.
        let r = unsafe {
            libc::recvmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), msgs.len() as _, flags as _, std::ptr::null_mut())
        };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            _ if would_block(&e) => return Ok(0),
            _ => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (UdpSocket, UdpSocket) {
        let a = net::udp_socket("127.0.0.1:0".parse().unwrap()).unwrap();
        let b = net::udp_socket("127.0.0.1:0".parse().unwrap()).unwrap();
        (a, b)
    }

    fn exchange(mode: IoMode, gro: bool) {
        let (a, b) = pair();
        assert_eq!(enable_gro(&b, mode), gro, "receive offload on the receiver");
        assert_eq!(enable_gro(&a, mode), gro);
        let dest = b.local_addr().unwrap();
        let payload = vec![0u8; 1468];
        let mut sender = Sender::new(mode);
        // More than one batch and more than one offload message, received
        // as it goes so the receive buffer never overflows.
        let n = 150;
        let mut sent = 0;
        let mut got = Vec::new();
        let mut scratch = vec![0u8; 65536];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while got.len() < n && std::time::Instant::now() < deadline {
            if sent < n {
                let first = (u32::MAX - 1).wrapping_add(sent as u32);
                sent += sender.send(&a, dest, first, &payload, (n - sent).min(70)).unwrap();
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
            while recv(&b, mode, gro, &mut scratch, BATCH, &mut |d| got.push(d)).unwrap() > 0 {}
        }
        let seqs: Vec<u32> = got.iter().map(|d| d.seq.unwrap()).collect();
        let want: Vec<u32> = (0..n as u32).map(|i| (u32::MAX - 1).wrapping_add(i)).collect();
        assert_eq!(seqs, want);
        assert!(got.iter().all(|d| d.len == 1472 && d.src == a.local_addr().unwrap()));
        // An empty datagram (a NAT probe) has no sequence number.
        b.send_to(&[], a.local_addr().unwrap()).unwrap();
        let mut probe = Vec::new();
        while probe.is_empty() && std::time::Instant::now() < deadline {
            recv(&a, mode, gro, &mut scratch, BATCH, &mut |d| probe.push(d)).unwrap();
        }
        assert_eq!(probe, vec![Datagram { src: dest, len: 0, seq: None }]);
        // Drained socket: nothing, no error.
        assert_eq!(recv(&a, mode, gro, &mut scratch, BATCH, &mut |_| {}).unwrap(), 0);
    }

    #[test]
    fn batched_mode_sends_and_receives_sequenced_datagrams() {
        exchange(IoMode::native(), cfg!(any(target_os = "linux", target_os = "android")) && gro_works());
    }

    #[test]
    fn portable_mode_sends_and_receives_sequenced_datagrams() {
        exchange(IoMode::Portable, false);
    }

    /// A coalesced message whose last datagram is shorter, then a single
    /// datagram: each counted with its own size and sequence number.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn coalesced_datagrams_keep_their_sizes_and_sequence_numbers() {
        if !gro_works() {
            eprintln!("receive offload unavailable here: not tested");
            return;
        }
        let (a, b) = pair();
        assert!(enable_gro(&b, IoMode::Batched));
        let dest = b.local_addr().unwrap();
        let mut buf = vec![0u8; 2500];
        for (i, seq) in [(0usize, 40u32), (1000, 41), (2000, 43)] {
            buf[i..i + 4].copy_from_slice(&seq.to_be_bytes());
        }
        net::setsockopt_int(a.as_raw_fd(), libc::SOL_UDP, UDP_SEGMENT, 1000).unwrap();
        a.send_to(&buf, dest).unwrap();
        net::setsockopt_int(a.as_raw_fd(), libc::SOL_UDP, UDP_SEGMENT, 0).unwrap();
        a.send_to(&datagram_bytes(44, 300), dest).unwrap();
        let mut scratch = vec![0u8; 256 * 1024];
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while got.len() < 4 && std::time::Instant::now() < deadline {
            recv(&b, IoMode::Batched, true, &mut scratch, BATCH, &mut |d| got.push((d.seq, d.len))).unwrap();
        }
        assert_eq!(got, vec![(Some(40), 1000), (Some(41), 1000), (Some(43), 500), (Some(44), 300)]);
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn datagram_bytes(seq: u32, len: usize) -> Vec<u8> {
        let mut d = vec![0u8; len];
        d[..4].copy_from_slice(&seq.to_be_bytes());
        d
    }
}

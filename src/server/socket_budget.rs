//! Kernel memory held by the sockets of running tests, bounded.
//!
//! Linux grows a TCP socket's buffers up to `tcp_wmem`/`tcp_rmem` (4 MiB by
//! default) on its own; a peer that never reads pins the whole send buffer.
//! Hundreds of such connections would hold gigabytes of kernel memory that
//! no process limit shows. Data sockets therefore share a budget: while the
//! share is at least the autotuning ceiling they are left alone; below it a
//! new test's sockets get the share before any data flows, and open ones are
//! lowered to it. Sockets of a test that stopped moving are reset when it
//! ends, which frees their unsent data at once.

/// Where Linux autotuning stops by default: no cap is needed above it.
pub const AUTOTUNE_MAX: u32 = 4 << 20;
/// The smallest buffer a data socket is given (a few packets in flight).
pub const MIN_SHARE: u32 = 64 << 10;
/// Default budget for all data sockets together.
pub const DEFAULT_BUDGET: u64 = 64 << 20;

/// The buffer size for each of `conns` data sockets under `budget` bytes,
/// or None to leave them to the kernel. Each socket holds a send and a
/// receive buffer, and the kernel doubles what it is asked for (for its
/// bookkeeping), hence a quarter. Powers of two, so it changes rarely.
pub fn share(budget: u64, conns: usize) -> Option<u32> {
    if budget == 0 || conns == 0 {
        return None;
    }
    let each = budget / (4 * conns as u64);
    if each >= u64::from(AUTOTUNE_MAX) {
        return None;
    }
    let floor = 1u64 << (63 - each.max(1).leading_zeros());
    Some((floor as u32).max(MIN_SHARE))
}

/// Sets a socket's send and receive buffers.
pub fn apply(fd: std::os::fd::RawFd, size: u32) {
    let size = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    for opt in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        let _ = crate::net::setsockopt_int(fd, libc::SOL_SOCKET, opt, size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_connections_are_left_to_the_kernel() {
        assert_eq!(share(DEFAULT_BUDGET, 1), None);
        assert_eq!(share(DEFAULT_BUDGET, 4), None, "16 MiB each is above the autotuning ceiling");
        assert_eq!(share(0, 1000), None, "0 = no budget");
    }

    #[test]
    fn many_connections_share_the_budget_in_powers_of_two() {
        assert_eq!(share(DEFAULT_BUDGET, 20), Some(512 << 10), "RouterOS's 20 connections: 800 KiB -> 512 KiB");
        assert_eq!(share(DEFAULT_BUDGET, 640), Some(16 << 10).map(|s: u32| s.max(MIN_SHARE)));
        assert_eq!(share(DEFAULT_BUDGET, 5), Some(2 << 20));
        for n in 1..2000 {
            if let Some(s) = share(DEFAULT_BUDGET, n) {
                assert!(s.is_power_of_two() && s >= MIN_SHARE);
                assert!(s == MIN_SHARE || n as u64 * 4 * u64::from(s) <= DEFAULT_BUDGET, "{n}: {s}");
            }
        }
    }
}

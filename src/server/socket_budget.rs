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
//!
//! Only the buffers that carry payload take a share: a one-way test's other
//! direction, and a UDP test's control connection both ways, carry only
//! statuses and keep [`MIN_SHARE`]. An equal share for both would halve a
//! one-way test's window for memory its other direction never fills: with
//! RouterOS's 20 connections receiving on loopback, 512 KiB windows ran at
//! 0.4x one connection's rate.

use crate::proto::{Command, Protocol};

/// Where Linux autotuning stops by default: no cap is needed above it.
pub const AUTOTUNE_MAX: u32 = 4 << 20;
/// The smallest buffer a data socket is given (a few packets in flight).
pub const MIN_SHARE: u32 = 64 << 10;
/// Default budget for all data sockets together.
pub const DEFAULT_BUDGET: u64 = 64 << 20;

/// Which buffers of a test's data sockets carry payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Carries {
    pub send: bool,
    pub receive: bool,
}

impl Carries {
    pub fn of(cmd: &Command) -> Carries {
        let tcp = cmd.proto == Protocol::Tcp;
        Carries { send: tcp && cmd.direction.server_transmits(), receive: tcp && cmd.direction.server_receives() }
    }

    /// Buffers of `conns` such sockets: (carrying payload, carrying statuses only).
    pub fn buffers(self, conns: usize) -> (u64, u64) {
        let payload = u64::from(self.send) + u64::from(self.receive);
        (payload * conns as u64, (2 - payload) * conns as u64)
    }
}

/// The size of each of `payload` buffers under `budget` bytes, beside `idle`
/// buffers at [`MIN_SHARE`], or None to leave them all to the kernel. The
/// kernel doubles what it is asked for (for its bookkeeping), hence half
/// the budget. Powers of two, so it changes rarely.
pub fn share(budget: u64, payload: u64, idle: u64) -> Option<u32> {
    if budget == 0 || payload + idle == 0 {
        return None;
    }
    let each = (budget / 2).saturating_sub(idle * u64::from(MIN_SHARE)) / payload.max(1);
    if each >= u64::from(AUTOTUNE_MAX) {
        return None;
    }
    let floor = 1u64 << (63 - each.max(1).leading_zeros());
    Some((floor as u32).max(MIN_SHARE))
}

/// Sets a socket's send and receive buffers: `size` for those carrying
/// payload, [`MIN_SHARE`] for the others.
pub fn apply(fd: std::os::fd::RawFd, size: u32, carries: Carries) {
    for (opt, payload) in [(libc::SO_SNDBUF, carries.send), (libc::SO_RCVBUF, carries.receive)] {
        let size = libc::c_int::try_from(if payload { size } else { MIN_SHARE }).unwrap_or(libc::c_int::MAX);
        let _ = crate::net::setsockopt_int(fd, libc::SOL_SOCKET, opt, size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Direction;

    #[test]
    fn few_connections_are_left_to_the_kernel() {
        assert_eq!(share(DEFAULT_BUDGET, 2, 0), None);
        assert_eq!(share(DEFAULT_BUDGET, 8, 0), None, "4 both ways: 4 MiB each is the autotuning ceiling");
        assert_eq!(share(0, 1000, 1000), None, "0 = no budget");
    }

    #[test]
    fn only_payload_buffers_take_a_share() {
        let cmd = |proto, direction| Command::example(proto, direction, 20);
        let one_way = Carries::of(&cmd(Protocol::Tcp, Direction::ClientToServer));
        assert_eq!(one_way, Carries { send: false, receive: true });
        assert_eq!(one_way.buffers(20), (20, 20));
        // RouterOS's 20 connections one way: (32 MiB - 20 x 64 KiB) / 20 = 1.5 MiB -> 1 MiB.
        assert_eq!(share(DEFAULT_BUDGET, 20, 20), Some(1 << 20));
        let both = Carries::of(&cmd(Protocol::Tcp, Direction::Both));
        assert_eq!(both.buffers(20), (40, 0));
        assert_eq!(share(DEFAULT_BUDGET, 40, 0), Some(512 << 10), "both ways: 800 KiB -> 512 KiB");
        let udp = Carries::of(&cmd(Protocol::Udp, Direction::Both));
        assert_eq!(udp.buffers(1), (0, 2), "a UDP test's control connection carries statuses only");
        assert_eq!(share(DEFAULT_BUDGET, 0, 2), None);
    }

    #[test]
    fn many_connections_share_the_budget_in_powers_of_two() {
        assert_eq!(share(DEFAULT_BUDGET, 1280, 0), Some(MIN_SHARE), "640 both ways: 25 KiB -> the floor");
        assert_eq!(share(DEFAULT_BUDGET, 10, 0), Some(2 << 20));
        assert_eq!(share(DEFAULT_BUDGET, 1, 1000), Some(MIN_SHARE), "idle buffers above the budget: the floor");
        for n in 1..2000u64 {
            for (payload, idle) in [(n, n), (2 * n, 0), (n, 3 * n)] {
                if let Some(s) = share(DEFAULT_BUDGET, payload, idle) {
                    let held = 2 * (payload * u64::from(s) + idle * u64::from(MIN_SHARE));
                    assert!(s.is_power_of_two() && s >= MIN_SHARE);
                    assert!(s == MIN_SHARE || held <= DEFAULT_BUDGET, "{payload}+{idle}: {s}");
                }
            }
        }
    }
}

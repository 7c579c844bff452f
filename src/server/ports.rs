//! The pool of server UDP ports, one per running UDP test.
//!
//! Ports rotate from a cursor rather than reusing the lowest free one, so a
//! port just released is not handed out again while late datagrams of the
//! previous test may still arrive. Ports that fail to bind (used by someone
//! else) are skipped.

use std::fmt;
use std::io;

/// The client's port is ours + 256, so ours stays at most 65535 - 256.
const MAX_PORT: u16 = u16::MAX - crate::proto::udp::CLIENT_PORT_OFFSET;

pub struct PortPool {
    base: u16,
    /// Ports in the pool: `base .. base + count`.
    count: u16,
    /// Offset of the next candidate.
    cursor: u16,
    in_use: Vec<bool>,
    used: usize,
}

#[derive(Debug)]
pub enum PoolError {
    /// Every port of the range is taken by a running test.
    Exhausted { first: u16, last: u16 },
    /// Every free port failed to bind.
    Bind { first: u16, last: u16, last_error: io::Error },
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Exhausted { first, last } => write!(
                f,
                "all UDP ports {first}-{last} are in use by running tests; raise --udp-port-count or --max-sessions"
            ),
            PoolError::Bind { first, last, last_error } => write!(
                f,
                "no UDP port in {first}-{last} could be bound (last error: {last_error}); choose another --udp-port-base"
            ),
        }
    }
}

impl PortPool {
    pub fn new(base: u16, count: u16) -> PortPool {
        let base = base.clamp(1, MAX_PORT);
        let count = count.clamp(1, MAX_PORT - base + 1);
        PortPool { base, count, cursor: 0, in_use: vec![false; usize::from(count)], used: 0 }
    }

    pub fn range(&self) -> (u16, u16) {
        (self.base, self.base + (self.count - 1))
    }

    pub fn in_use(&self) -> usize {
        self.used
    }

    /// Takes the next free port that `bind` accepts.
    pub fn allocate<T>(&mut self, mut bind: impl FnMut(u16) -> io::Result<T>) -> Result<(u16, T), PoolError> {
        let (first, last) = self.range();
        let mut last_error = None;
        for _ in 0..self.count {
            let off = self.cursor;
            self.cursor = (self.cursor + 1) % self.count;
            if self.in_use[usize::from(off)] {
                continue;
            }
            let port = self.base + off;
            match bind(port) {
                Ok(t) => {
                    self.in_use[usize::from(off)] = true;
                    self.used += 1;
                    return Ok((port, t));
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(match last_error {
            None => PoolError::Exhausted { first, last },
            Some(last_error) => PoolError::Bind { first, last, last_error },
        })
    }

    pub fn release(&mut self, port: u16) {
        let Some(off) = port.checked_sub(self.base) else { return };
        if let Some(slot) = self.in_use.get_mut(usize::from(off)) {
            if *slot {
                *slot = false;
                self.used -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_reuses_and_reports_exhaustion() {
        let mut p = PortPool::new(2001, 3);
        let a = p.allocate(Ok).unwrap().0;
        let b = p.allocate(Ok).unwrap().0;
        assert_eq!((a, b), (2001, 2002));
        p.release(a);
        // The cursor moves on before coming back to a released port.
        assert_eq!(p.allocate(Ok).unwrap().0, 2003);
        assert_eq!(p.allocate(Ok).unwrap().0, 2001);
        assert!(matches!(p.allocate(Ok), Err(PoolError::Exhausted { first: 2001, last: 2003 })));
        p.release(2002);
        p.release(2002);
        assert_eq!(p.in_use(), 2);
        assert_eq!(p.allocate(Ok).unwrap().0, 2002);
    }

    #[test]
    fn skips_ports_that_fail_to_bind() {
        let mut p = PortPool::new(5000, 4);
        let got = p.allocate(|port| if port < 5002 { Err(io::Error::other("busy")) } else { Ok(()) }).unwrap();
        assert_eq!(got.0, 5002);
        let err = p.allocate(|_| Err::<(), _>(io::Error::other("busy"))).unwrap_err();
        assert!(err.to_string().contains("5000-5003"), "{err}");
    }

    #[test]
    fn keeps_the_client_port_in_range() {
        assert_eq!(PortPool::new(65400, 1000).range(), (65279, 65279));
        assert_eq!(PortPool::new(65000, 1000).range(), (65000, 65279));
    }
}

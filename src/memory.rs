//! The server's own resident memory, for the `--max-memory` budget.
//!
//! "Own" means pages only btestd holds: the binary's and libc's shared pages
//! stay in the page cache whatever btestd does, so on Linux they are left
//! out. The event loop samples this once per second; admission compares it
//! with the budget, so running tests are never cut for it.

/// Bytes of memory btestd holds now; None where the OS gives no figure.
pub fn own_resident() -> Option<u64> {
    os::read()
}

/// `/proc/self/statm` is "size resident shared text lib data dt" in pages:
/// resident minus shared (file-backed) pages is the private part.
pub fn from_statm(statm: &str, page_size: u64) -> Option<u64> {
    let mut fields = statm.split_ascii_whitespace().skip(1).map(|f| f.parse::<u64>().ok());
    let resident = fields.next()??;
    let shared = fields.next()??;
    Some(resident.saturating_sub(shared).saturating_mul(page_size))
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod os {
    pub(super) fn read() -> Option<u64> {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        super::from_statm(&statm, super::page_size())
    }
}

#[cfg(target_os = "freebsd")]
mod os {
    /// ki_rssize from the kern.proc.pid sysctl: resident pages, shared ones included.
    pub(super) fn read() -> Option<u64> {
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        let mib = [libc::CTL_KERN, libc::KERN_PROC, libc::KERN_PROC_PID, pid];
        // SAFETY: kinfo_proc is plain data; all zeroes is a valid value.
        let mut info: libc::kinfo_proc = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::kinfo_proc>();
        // SAFETY: mib names 4 integers; info and len describe a buffer we own.
        let rc = unsafe {
            libc::sysctl(mib.as_ptr(), mib.len() as libc::c_uint, (&raw mut info).cast(), &mut len, std::ptr::null(), 0)
        };
        if rc != 0 || len < std::mem::size_of::<libc::kinfo_proc>() {
            return None;
        }
        u64::try_from(info.ki_rssize).ok().map(|pages| pages.saturating_mul(super::page_size()))
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
mod os {
    pub(super) fn read() -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statm_private_pages_are_resident_minus_shared() {
        assert_eq!(from_statm("2400 870 620 317 0 340 0\n", 4096), Some(250 * 4096));
        assert_eq!(from_statm("10 5 9 1 0 1 0", 4096), Some(0), "shared above resident saturates");
        assert_eq!(from_statm("2400 870", 4096), None);
        assert_eq!(from_statm("", 4096), None);
        assert_eq!(from_statm("a b c", 4096), None);
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn growing_the_heap_shows_in_the_figure() {
        let before = own_resident().expect("Linux has /proc/self/statm");
        let mut block = vec![0u8; 8 << 20];
        // Touch every page so it is resident.
        for i in (0..block.len()).step_by(4096) {
            block[i] = 1;
        }
        let after = own_resident().expect("statm");
        assert!(after >= before + (4 << 20), "8 MiB touched: before {before}, after {after}");
        assert_eq!(std::hint::black_box(&block)[4096], 1);
    }
}

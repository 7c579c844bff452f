//! Random bytes from the operating system (challenges, secrets, tokens).

/// Fills `buf` with bytes from the OS CSPRNG.
///
/// Panics only if the kernel has no random source at all, which no supported
/// platform lacks; a weaker fallback would silently break authentication.
pub fn fill(buf: &mut [u8]) {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: the pointer and length describe the writable `rest` slice.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n > 0 {
            done += n as usize;
        } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            fill_from_urandom(rest);
            return;
        }
    }
}

/// Fallback for kernels without getrandom, opened once: a descriptor opened
/// per call could fail exactly when a flood has used them all up.
fn fill_from_urandom(buf: &mut [u8]) {
    use std::io::Read;
    static URANDOM: std::sync::OnceLock<std::io::Result<std::fs::File>> = std::sync::OnceLock::new();
    let ok = match URANDOM.get_or_init(|| std::fs::File::open("/dev/urandom")) {
        Ok(file) => {
            let mut f: &std::fs::File = file;
            f.read_exact(buf)
        }
        Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
    };
    if let Err(e) = ok {
        panic!("no operating-system random source: {e}");
    }
}

/// Draws once, so that a missing random source stops the start instead of a
/// session, and the fallback's descriptor is open before clients arrive.
pub fn warm_up() {
    let _ = bytes::<1>();
}

/// Returns `N` random bytes.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    fill(&mut b);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sources_fill_every_byte() {
        // 64 bytes all zero from a working source: probability 2^-512.
        let mut a = [0u8; 64];
        fill(&mut a);
        assert_ne!(a, [0u8; 64]);
        for _ in 0..2 {
            let mut b = [0u8; 64];
            fill_from_urandom(&mut b);
            assert_ne!(b, [0u8; 64]);
            assert_ne!(a, b);
        }
    }
}

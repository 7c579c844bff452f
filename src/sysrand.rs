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

fn fill_from_urandom(buf: &mut [u8]) {
    use std::io::Read;
    let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(buf));
    if let Err(e) = ok {
        panic!("no operating-system random source: {e}");
    }
}

/// Returns `N` random bytes.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    fill(&mut b);
    b
}

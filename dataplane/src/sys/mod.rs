//! Thin, safe wrappers over the system calls the running process makes outside the rings and
//! the BPF loader, so that their `unsafe` sits in one place with its reasons; and the tag both
//! io_uring tables put on their operations (`user_data`).

pub mod socket;
pub mod user_data;

/// Fills `buf` from the kernel's random source (`getrandom(2)`; blocks only until the pool is
/// first initialised, at boot).
pub fn random_bytes(buf: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: writes at most `rest.len()` bytes into `rest`, which is live and writable.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += n as usize;
    }
    Ok(())
}

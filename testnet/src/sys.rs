//! The syscalls of this crate, each a small safe function around one `unsafe` call: the only
//! place the crate touches libc.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

pub fn geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Moves the calling thread into the network namespace `ns` refers to.
pub fn setns_net(ns: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: setns on a descriptor that stays open for the call; CLONE_NEWNET changes only
    // the calling thread's network namespace, nothing the process shares.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// socket(2), owned.
pub fn socket(domain: i32, kind: i32, protocol: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked before it is owned.
    let fd = unsafe { libc::socket(domain, kind, protocol) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// bind(2) with a socket address structure `T` (a `sockaddr_ll`, a `sockaddr_nl`, ...).
pub fn bind<T>(fd: BorrowedFd<'_>, addr: &T) -> io::Result<()> {
    // SAFETY: the pointer and length describe one live `T`, which the callers only
    // instantiate with sockaddr types the kernel reads by the family in their first field.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (addr as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A receive buffer of `bytes`, past `rmem_max` (root): a burst the reader is late for is
/// queued rather than lost. Best effort: a smaller buffer still works.
pub fn force_rcvbuf(fd: BorrowedFd<'_>, bytes: i32) {
    let size: libc::c_int = bytes;
    // SAFETY: setsockopt with a pointer to a live c_int and its size.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// The index of interface `name` in the calling thread's network namespace.
pub fn if_index(name: &str) -> io::Result<u32> {
    let cname = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(index)
}

/// Waits up to `timeout` for `fd` to be readable; false on timeout or on a signal.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: poll(2) on one live pollfd, the count we pass.
    let r = unsafe { libc::poll(&mut pfd, 1, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(r > 0)
}

/// Waits up to `timeout` (to the nanosecond, ppoll(2)) for any of `fds` (at most 8) to be
/// readable; bit `i` of the result is set when `fds[i]` is. 0 on timeout or on a signal.
pub fn wait_any_readable(fds: &[BorrowedFd<'_>], timeout: Duration) -> io::Result<u32> {
    let mut pfds = [libc::pollfd {
        fd: -1,
        events: libc::POLLIN,
        revents: 0,
    }; 8];
    let n = fds.len().min(pfds.len());
    for (p, fd) in pfds.iter_mut().zip(fds) {
        p.fd = fd.as_raw_fd();
    }
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: ppoll(2) on the first `n` entries of a live pollfd array, with a live timespec
    // and no signal mask.
    let r = unsafe { libc::ppoll(pfds.as_mut_ptr(), n as libc::nfds_t, &ts, std::ptr::null()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(pfds[..n]
        .iter()
        .enumerate()
        .filter(|(_, p)| p.revents & libc::POLLIN != 0)
        .fold(0, |m, (i, _)| m | 1 << i))
}

/// recv(2) into `buf`, retried on EINTR.
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8], flags: i32) -> io::Result<usize> {
    loop {
        // SAFETY: recv(2) into a live, writable buffer of the length we pass.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// send(2) of all of `buf` in one datagram.
pub fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<()> {
    // SAFETY: send(2) from a live buffer of the length we pass.
    let n = unsafe { libc::send(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != buf.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("sent {n} of {} bytes", buf.len()),
        ));
    }
    Ok(())
}

/// TUNSETIFF on an open `/dev/net/tun`: makes it the TAP interface `name` (no packet-info
/// header, so each read or write is one Ethernet frame) in the calling thread's namespace.
pub fn tun_set_tap(fd: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    let bytes = name.as_bytes();
    let mut req: libc::ifreq = zeroed_sockaddr();
    if bytes.is_empty() || bytes.len() >= req.ifr_name.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {name:?}"),
        ));
    }
    for (dst, &b) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = b as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads (and writes back the name into) one live, initialised ifreq
    // that outlives the call; `fd` is an open /dev/net/tun.
    if unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TUNSETIFF,
            &mut req as *mut libc::ifreq,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Restricts thread `tid` (any thread of the system, e.g. a kernel thread) to one CPU.
pub fn pin_thread(tid: u32, cpu: usize) -> io::Result<()> {
    // SAFETY: an all-zero cpu_set_t is the empty set; CPU_SET writes inside it (it checks the
    // index against the set's size).
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above: `set` is a live cpu_set_t.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: sched_setaffinity reads one live cpu_set_t of the size passed.
    let rc = unsafe {
        libc::sched_setaffinity(
            tid as libc::pid_t,
            std::mem::size_of::<libc::cpu_set_t>(),
            &set,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// An all-zero value of a C struct whose fields are integers and arrays of them.
pub fn zeroed_sockaddr<T: SockAddr>() -> T {
    // SAFETY: `SockAddr` is implemented only for libc's sockaddr structs, made of integers,
    // for which all-zero bytes are a valid value.
    unsafe { std::mem::zeroed() }
}

/// The sockaddr structs of this crate ([`zeroed_sockaddr`]).
pub trait SockAddr {}
impl SockAddr for libc::sockaddr_ll {}
impl SockAddr for libc::sockaddr_nl {}
// An ifreq is a name array and a union of integers, structs of integers and a pointer; all
// zero is a valid value of each.
impl SockAddr for libc::ifreq {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn loopback_has_an_index_and_nonsense_has_none() {
        assert!(if_index("lo").unwrap() > 0);
        assert!(if_index("no-such-if-xyz").is_err());
        assert!(if_index("nul\0inside").is_err());
    }

    #[test]
    fn datagrams_go_through_send_wait_and_recv() {
        let mut fds = [0; 2];
        // SAFETY: socketpair(2) writing two descriptors into an array of two.
        let rc = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM, 0, fds.as_mut_ptr()) };
        assert_eq!(rc, 0);
        // SAFETY: both descriptors are new and owned by nobody else.
        let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        assert!(!wait_readable(b.as_fd(), Duration::from_millis(1)).unwrap());
        send(a.as_fd(), b"frame").unwrap();
        assert!(wait_readable(b.as_fd(), Duration::from_secs(1)).unwrap());
        let mut buf = [0u8; 16];
        let n = recv(b.as_fd(), &mut buf, libc::MSG_DONTWAIT).unwrap();
        assert_eq!(&buf[..n], b"frame");
        let e = recv(b.as_fd(), &mut buf, libc::MSG_DONTWAIT).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }
}

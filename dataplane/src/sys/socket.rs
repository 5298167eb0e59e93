//! Every socket call the gateway makes outside io_uring and AF_XDP: the listening sockets of
//! the served ports, of the kernel path and of the admin endpoint, the datagram socket
//! interface ioctls go through, and the per-connection calls of the kernel path (TCP_NODELAY,
//! shutdown, close) on the descriptors io_uring accepted.
//!
//! Hand-written on libc rather than with `socket2`: the process needs four calls (socket,
//! setsockopt SO_REUSEADDR and IPV6_V6ONLY, bind, listen) and an ioctl socket; a dependency would
//! not remove the ethtool ioctl's `unsafe`, which works on our own `repr(C)` struct. The
//! errors name the call that failed, as the operator's messages have always done.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A socket call that failed, with the OS error.
#[derive(Debug, thiserror::Error)]
#[error("{call}: {source}")]
pub struct SocketError {
    /// The failing call: "socket", "SO_REUSEADDR", "IPV6_V6ONLY", "bind" or "listen".
    pub call: &'static str,
    pub source: io::Error,
}

impl From<SocketError> for io::Error {
    /// Keeps the OS error's kind and names the call in the message ("bind: Address in use").
    fn from(e: SocketError) -> io::Error {
        io::Error::new(e.source.kind(), e.to_string())
    }
}

fn last_error(call: &'static str) -> SocketError {
    SocketError {
        call,
        source: io::Error::last_os_error(),
    }
}

/// A new close-on-exec socket of `family` (`AF_INET`, `AF_INET6`) and `kind` (`SOCK_STREAM`,
/// `SOCK_DGRAM`).
fn inet_socket(family: libc::c_int, kind: libc::c_int) -> Result<OwnedFd, SocketError> {
    // SAFETY: socket(2) with integer arguments; returns a new descriptor or -1.
    let fd = unsafe { libc::socket(family, kind | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(last_error("socket"));
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An integer socket option (`SO_REUSEADDR`, `IPV6_V6ONLY`); `call` names it in the error.
fn set_int_option(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
    call: &'static str,
) -> Result<(), SocketError> {
    // SAFETY: `fd` is our socket; the option value is a live c_int of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(last_error(call));
    }
    Ok(())
}

/// A listening TCP socket on `addr` with SO_REUSEADDR and the given backlog (clamped to
/// `i32::MAX`), close-on-exec and blocking.
///
/// The families, as an operator writes the address: an IPv4 address serves IPv4 alone; the
/// IPv6 unspecified address `::` serves both families (IPV6_V6ONLY off: IPv4 clients appear
/// as IPv4-mapped addresses, which [`peer_addr`] turns back into IPv4); any other IPv6
/// address serves IPv6 alone (IPV6_V6ONLY on, whatever the host's `bindv6only` default).
pub fn tcp_listener(addr: impl Into<SocketAddr>, backlog: u32) -> Result<TcpListener, SocketError> {
    let addr = addr.into();
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    let fd = inet_socket(family, libc::SOCK_STREAM)?;
    set_int_option(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1, "SO_REUSEADDR")?;
    let rc = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: `sin` is a live, initialised sockaddr_in and its size is passed.
            unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sin as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
        }
        SocketAddr::V6(a) => {
            let v6only = libc::c_int::from(!a.ip().is_unspecified());
            set_int_option(
                &fd,
                libc::IPPROTO_IPV6,
                libc::IPV6_V6ONLY,
                v6only,
                "IPV6_V6ONLY",
            )?;
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: `sin6` is a live, initialised sockaddr_in6 and its size is passed.
            unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sin6 as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    if rc != 0 {
        return Err(last_error("bind"));
    }
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    // SAFETY: listen(2) on our bound socket; no memory is passed.
    if unsafe { libc::listen(fd.as_raw_fd(), backlog) } != 0 {
        return Err(last_error("listen"));
    }
    Ok(TcpListener::from(fd))
}

/// TCP_CONGESTION: the socket's congestion control by its Linux module name (a listener's
/// passes to the connections it accepts). Fails if the module is not loaded and cannot be,
/// or if it is not in `tcp_allowed_congestion_control` and the process lacks CAP_NET_ADMIN.
pub fn set_congestion(fd: RawFd, name: &str) -> io::Result<()> {
    // SAFETY: setsockopt(2) reads `name.len()` bytes from the live string slice; a bad `fd`
    // is an error return, not undefined behaviour.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// TCP_NODELAY on an accepted connection: responses leave at once, not after Nagle's wait for
/// an ACK. Best effort: a connection that refuses it still works.
pub fn set_nodelay(fd: RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt(2) reads `one`, a live local, for the size given; a bad `fd` is an
    // error return, not undefined behaviour.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// The peer's address of a connected IPv4 or IPv6 socket (getpeername(2)); `None` on error
/// or another family. An IPv4 client of a dual-stack listener comes back as IPv4, not as
/// its IPv4-mapped IPv6 form: the access log, `X-Forwarded-For` and hashing by client see the
/// address the client has. One system call: the kernel path asks only when the access log or
/// the proxy needs it.
pub fn peer_addr(fd: RawFd) -> Option<std::net::SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    // SAFETY: an all-zero sockaddr_storage is a valid value of the type.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: getpeername(2) writes at most `len` bytes into `storage`, which is that large,
    // and updates `len`; a bad `fd` is an error return.
    let rc = unsafe {
        libc::getpeername(
            fd,
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which fits in it.
            let a: libc::sockaddr_in =
                unsafe { std::ptr::read((&storage as *const libc::sockaddr_storage).cast()) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6, which fits in it.
            let a: libc::sockaddr_in6 =
                unsafe { std::ptr::read((&storage as *const libc::sockaddr_storage).cast()) };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            let port = u16::from_be(a.sin6_port);
            Some(match ip.to_ipv4_mapped() {
                Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, port)),
                None => SocketAddr::V6(SocketAddrV6::new(
                    ip,
                    port,
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )),
            })
        }
        _ => None,
    }
}

/// shutdown(2) of one or both directions (`libc::SHUT_WR`, `libc::SHUT_RDWR`).
pub fn shutdown(fd: RawFd, how: libc::c_int) -> io::Result<()> {
    // SAFETY: shutdown(2) passes no memory; a bad `fd` is an error return.
    if unsafe { libc::shutdown(fd, how) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Closes a descriptor the caller owns as a raw number (one io_uring accepted) and will not
/// use again.
pub fn close_raw(fd: RawFd) {
    // SAFETY: the caller owns `fd` and closes it exactly once; close(2) passes no memory.
    unsafe { libc::close(fd) };
}

/// A datagram socket to issue interface ioctls on (`SIOCETHTOOL`, ...); closed when dropped.
pub fn ioctl_socket() -> io::Result<OwnedFd> {
    inet_socket(libc::AF_INET, libc::SOCK_DGRAM).map_err(|e| e.source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};

    /// The algorithm set on a listener is the one its accepted connections run (what the
    /// kernel path relies on), and an unknown one is refused.
    #[test]
    fn a_listeners_congestion_control_passes_to_what_it_accepts() {
        let l = tcp_listener(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0), 16).unwrap();
        // Reno is built in and always allowed, whatever the host's default.
        set_congestion(l.as_raw_fd(), "reno").unwrap();
        assert!(set_congestion(l.as_raw_fd(), "no-such-algorithm").is_err());
        let client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (accepted, _) = l.accept().unwrap();
        let name = |fd: RawFd| {
            let mut buf = [0u8; 16];
            let mut len = buf.len() as libc::socklen_t;
            // SAFETY: getsockopt(2) writes at most `len` bytes into the live `buf` and the
            // length into `len`.
            let rc = unsafe {
                libc::getsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_CONGESTION,
                    buf.as_mut_ptr().cast(),
                    &mut len,
                )
            };
            assert_eq!(rc, 0);
            let end = buf.iter().position(|&b| b == 0).unwrap_or(len as usize);
            String::from_utf8_lossy(&buf[..end]).into_owned()
        };
        assert_eq!(name(accepted.as_raw_fd()), "reno");
        drop(client);
    }

    #[test]
    fn a_listener_takes_its_backlog_and_a_taken_port_names_bind() {
        let l = tcp_listener(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0), 16).unwrap();
        let addr = match l.local_addr().unwrap() {
            std::net::SocketAddr::V4(a) => a,
            other => panic!("{other}"),
        };
        assert!(addr.port() > 0);
        // SO_REUSEADDR does not let a second socket listen on a port that is listening.
        let e = tcp_listener(addr, 16).unwrap_err();
        assert_eq!(e.call, "bind");
        assert_eq!(e.source.kind(), io::ErrorKind::AddrInUse);
        assert!(ioctl_socket().is_ok());
    }

    fn v6only(l: &TcpListener) -> libc::c_int {
        let mut v: libc::c_int = -1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt(2) writes at most `len` bytes into the live `v` and the length
        // into `len`.
        let rc = unsafe {
            libc::getsockopt(
                l.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_V6ONLY,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0);
        v
    }

    /// `::` serves both families and an IPv4 client is seen as IPv4; a given IPv6 address
    /// serves IPv6 alone, whatever the host's `bindv6only`.
    #[test]
    fn the_unspecified_ipv6_address_serves_both_families_and_a_given_one_ipv6_alone() {
        use std::net::{Ipv6Addr, SocketAddrV6, TcpStream};
        let both = tcp_listener(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0), 16).unwrap();
        let port = both.local_addr().unwrap().port();
        let v4 = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        let (accepted, _) = both.accept().unwrap();
        let peer = peer_addr(accepted.as_raw_fd()).unwrap();
        assert_eq!(
            peer,
            v4.local_addr().unwrap(),
            "an IPv4 client is seen as IPv4"
        );
        let v6 = TcpStream::connect((Ipv6Addr::LOCALHOST, port)).unwrap();
        let (accepted, _) = both.accept().unwrap();
        assert_eq!(
            peer_addr(accepted.as_raw_fd()).unwrap(),
            v6.local_addr().unwrap()
        );
        drop(both);

        let only6 = tcp_listener(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 0, 0, 0), 16).unwrap();
        assert_eq!(v6only(&only6), 1);
        let both = tcp_listener(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0), 16).unwrap();
        assert_eq!(v6only(&both), 0);
        let port = only6.local_addr().unwrap().port();
        let e = tcp_listener(SocketAddrV6::new(Ipv6Addr::LOCALHOST, port, 0, 0), 16).unwrap_err();
        assert_eq!(e.source.kind(), io::ErrorKind::AddrInUse);
    }
}

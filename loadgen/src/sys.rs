//! The system calls std does not wrap: epoll, timerfd, a non-blocking connect, the monotonic
//! clock in nanoseconds (the timerfd's clock), CPU affinity, per-thread CPU time and the
//! open-files limit. Every `unsafe` block of the crate is here.

use std::io;
use std::mem;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// CLOCK_MONOTONIC in nanoseconds: the clock of [`TimerFd`] deadlines and of every latency.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux, so
    // the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

pub const EPOLLIN: u32 = libc::EPOLLIN as u32;
pub const EPOLLOUT: u32 = libc::EPOLLOUT as u32;
pub const EPOLLRDHUP: u32 = libc::EPOLLRDHUP as u32;
pub const EPOLLERR: u32 = libc::EPOLLERR as u32;
pub const EPOLLHUP: u32 = libc::EPOLLHUP as u32;
pub const EPOLLET: u32 = libc::EPOLLET as u32;

/// One ready file descriptor: its events and the token it was registered with.
pub type Event = libc::epoll_event;

pub fn empty_events(n: usize) -> Vec<Event> {
    vec![Event { events: 0, u64: 0 }; n]
}

pub fn event_token(e: &Event) -> u64 {
    e.u64
}

pub fn event_flags(e: &Event) -> u32 {
    e.events
}

pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative result is a new descriptor
        // that nothing else owns.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` was just returned by epoll_create1 and is owned by nobody else.
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Registers `fd` for `events` with `token`. Closing `fd` removes it.
    pub fn add(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = Event { events, u64: token };
        // SAFETY: `ev` is a valid epoll_event that the kernel only reads during the call.
        cvt(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })?;
        Ok(())
    }

    /// Waits up to `timeout_ms` (-1: forever) and returns how many of `events` were filled.
    /// An interrupted wait returns 0.
    pub fn wait(&self, events: &mut [Event], timeout_ms: i32) -> io::Result<usize> {
        let max = libc::c_int::try_from(events.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `events` is a writable array of at least `max` epoll_events; the kernel
        // writes at most `max` of them.
        let n =
            unsafe { libc::epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), max, timeout_ms) };
        match cvt(n) {
            Ok(n) => Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }
}

/// A CLOCK_MONOTONIC timerfd armed at absolute deadlines (ns resolution); readable in epoll
/// once the deadline has passed.
pub struct TimerFd {
    fd: OwnedFd,
    armed_at: u64,
}

impl TimerFd {
    pub fn new() -> io::Result<TimerFd> {
        // SAFETY: timerfd_create takes no pointers; a non-negative result is a new descriptor.
        let fd = cvt(unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        })?;
        Ok(TimerFd {
            // SAFETY: `fd` was just returned by timerfd_create and is owned by nobody else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            armed_at: 0,
        })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Fires once at `deadline_ns` on [`now_ns`]'s clock (at once if it has passed); 0
    /// disarms. Does nothing if already armed at that deadline.
    pub fn arm_at(&mut self, deadline_ns: u64) -> io::Result<()> {
        if deadline_ns == self.armed_at {
            return Ok(());
        }
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: `spec` is a valid itimerspec read by the kernel during the call; the old
        // value is not asked for (null).
        cvt(unsafe {
            libc::timerfd_settime(
                self.fd.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        })?;
        self.armed_at = deadline_ns;
        Ok(())
    }

    /// Notes that the timer fired. Registered edge-triggered, the timer need not be read: the
    /// next expiry is a new edge, and re-arming resets its count.
    pub fn fired(&mut self) {
        self.armed_at = 0;
    }
}

/// Starts a TCP connection without blocking. Returns the socket and whether it is already
/// connected (otherwise it becomes writable, or reports an error, once the handshake ends).
pub fn connect_nonblocking(addr: &SocketAddr) -> io::Result<(TcpStream, bool)> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: socket(2) takes no pointers; a non-negative result is a new descriptor.
    let fd = cvt(unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_storage is plain data for which all-zero bytes are a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    // SAFETY: `storage` holds a valid socket address of `len` bytes, read during the call.
    let r = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&storage as *const libc::sockaddr_storage).cast(),
            len as libc::socklen_t,
        )
    };
    let connected = match cvt(r) {
        Ok(_) => true,
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => false,
        Err(e) => return Err(e),
    };
    let stream = TcpStream::from(fd);
    stream.set_nodelay(true)?;
    Ok((stream, connected))
}

/// Pins the calling thread to one CPU.
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("CPU {cpu} is beyond the largest CPU set"),
        ));
    }
    // SAFETY: cpu_set_t is a plain bit array for which all-zero bytes are the empty set.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    // SAFETY: `cpu` < CPU_SETSIZE (checked above), so CPU_SET stays inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed, read during the call; pid 0 is
    // the calling thread.
    cvt(unsafe { libc::sched_setaffinity(0, mem::size_of::<libc::cpu_set_t>(), &set) })?;
    Ok(())
}

/// Sets the calling thread's timer slack to 1 ns. The default slack (50 µs for normal
/// threads) lets the kernel fire a timerfd that much late to batch wake-ups, which the open
/// loop would count as latency.
pub fn minimise_timer_slack() -> io::Result<()> {
    // SAFETY: PR_SET_TIMERSLACK takes an integer argument, no pointers.
    cvt(unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) })?;
    Ok(())
}

/// User and system CPU time used so far by the calling thread.
pub fn thread_cpu_time() -> (Duration, Duration) {
    // SAFETY: rusage is plain data for which all-zero bytes are a valid value.
    let mut ru: libc::rusage = unsafe { mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage; RUSAGE_THREAD exists since Linux 2.6.26.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

/// Raises the soft limit on open files to the hard limit (many connections need many
/// descriptors; the soft default is often 1024). Returns the new soft limit.
pub fn raise_open_files_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit, read during the call.
        cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) })?;
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timerfd_fires_at_its_deadline_and_not_before() {
        let epoll = Epoll::new().unwrap();
        let mut timer = TimerFd::new().unwrap();
        epoll.add(timer.raw_fd(), EPOLLIN | EPOLLET, 7).unwrap();
        let mut events = empty_events(4);
        let deadline = now_ns() + 30_000_000;
        timer.arm_at(deadline).unwrap();
        let mut n = 0;
        while n == 0 {
            n = epoll.wait(&mut events, 1000).unwrap();
        }
        assert!(now_ns() >= deadline);
        assert_eq!(event_token(&events[0]), 7);
        timer.fired();
        // Edge-triggered: one event per expiry, without reading the timer.
        assert_eq!(epoll.wait(&mut events, 0).unwrap(), 0);
        timer.arm_at(now_ns() + 1_000_000).unwrap();
        let mut n = 0;
        while n == 0 {
            n = epoll.wait(&mut events, 1000).unwrap();
        }
        assert_eq!(event_token(&events[0]), 7);
    }

    #[test]
    fn connect_to_a_closed_port_fails() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let epoll = Epoll::new().unwrap();
        match connect_nonblocking(&addr) {
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused),
            Ok((s, _)) => {
                epoll
                    .add(s.as_raw_fd(), EPOLLOUT | EPOLLERR | EPOLLET, 1)
                    .unwrap();
                let mut events = empty_events(1);
                assert_eq!(epoll.wait(&mut events, 5000).unwrap(), 1);
                let err = s.take_error().unwrap().expect("an error");
                assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
            }
        }
    }
}

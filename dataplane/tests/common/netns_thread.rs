//! Rust clients inside a network namespace: a thread enters the namespace with `setns` and
//! runs a closure there, so a test can use `std::net::TcpStream` from the client netns. A
//! socket belongs to the namespace it was created in, so a stream connected on such a thread
//! can be handed back and used from any thread.

use std::fs::File;
use std::io;
use std::net::{SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::thread::JoinHandle;
use std::time::Duration;

/// Runs `f` on a new thread (named `name`) that first entered `/var/run/netns/<ns>`; panics
/// on that thread if the namespace cannot be entered (the join shows it).
pub fn spawn_in_netns<T: Send + 'static>(
    ns: &str,
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    let path = format!("/var/run/netns/{ns}");
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let target = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns on a descriptor we hold open; CLONE_NEWNET changes only this
            // thread's network namespace, and the thread ends with the closure.
            let rc = unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", io::Error::last_os_error());
            f()
        })
        .expect("spawning a thread")
}

/// Runs `f` inside `ns` and returns its result.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    match spawn_in_netns(ns, "in-netns", f).join() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// A TCP connection made from inside `ns` (connect timeout `timeout`), usable from any thread.
/// A namespace that cannot be entered (say, deleted under a client still running after a
/// test failed) is an error, not a panic.
pub fn connect_in(ns: &str, addr: SocketAddrV4, timeout: Duration) -> io::Result<TcpStream> {
    let target = File::open(format!("/var/run/netns/{ns}"))?;
    std::thread::scope(|s| {
        s.spawn(move || {
            // SAFETY: as in `spawn_in_netns`; this scoped thread ends right after the connect.
            let rc = unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            TcpStream::connect_timeout(&addr.into(), timeout)
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

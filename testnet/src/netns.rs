//! Code inside a named network namespace (`ip netns add <name>`, a file under `/run/netns`).
//!
//! A network namespace belongs to a thread, not to the process, so each helper here either
//! runs its closure on a thread of its own that enters the namespace and ends there, or moves
//! only the calling thread and moves it back ([`NetnsGuard`]). A socket belongs to the
//! namespace it was created in, so a stream connected or a socket opened on such a thread can
//! be handed back and used from any thread.

use std::fs::File;
use std::io;
use std::marker::PhantomData;
use std::net::{SocketAddrV4, TcpStream};
use std::os::fd::AsFd;
use std::sync::MutexGuard;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::sys;

/// Where `ip netns` keeps the namespace called `name`.
pub fn path(name: &str) -> String {
    format!("/run/netns/{name}")
}

fn open(name: &str) -> io::Result<File> {
    let p = path(name);
    File::open(&p).map_err(|e| io::Error::new(e.kind(), format!("{p}: {e}")))
}

/// Runs `f` on a scoped thread that first entered `ns`, and returns what it returned. A
/// namespace that cannot be entered (say, deleted under a client still running after a test
/// failed) is an error, not a panic; a panic in `f` is carried over to the caller.
pub fn run_in<T: Send>(ns: &str, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    let target = open(ns)?;
    std::thread::scope(|s| {
        s.spawn(move || {
            sys::setns_net(target.as_fd())?;
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Runs `f` on a new thread (named `name`) that first entered `ns`; panics on that thread if
/// the namespace cannot be entered (the join shows it).
pub fn spawn_in_netns<T: Send + 'static>(
    ns: &str,
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    let ns = ns.to_string();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let target = open(&ns).unwrap_or_else(|e| panic!("{e}"));
            sys::setns_net(target.as_fd()).unwrap_or_else(|e| panic!("setns {ns}: {e}"));
            f()
        })
        .expect("spawning a thread")
}

/// Runs `f` inside `ns` and returns its result (a panic in `f` goes on in the caller).
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    match spawn_in_netns(ns, "in-netns", f).join() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// A TCP connection made from inside `ns` (connect timeout `timeout`), usable from any thread.
pub fn connect_in(ns: &str, addr: SocketAddrV4, timeout: Duration) -> io::Result<TcpStream> {
    run_in(ns, move || {
        TcpStream::connect_timeout(&addr.into(), timeout)
    })
}

/// The calling thread moved into another namespace; dropping it (or [`leave`](Self::leave))
/// moves the thread back to the namespace it came from. Not `Send`: it belongs to the thread
/// it moved (dropped on another thread, it would move that one). `Sync`, as a shared
/// reference can do nothing with it.
#[derive(Debug)]
pub struct NetnsGuard {
    home: Option<File>,
    /// A `MutexGuard` is `!Send` and `Sync`, which is what this guard is.
    _not_send: PhantomData<MutexGuard<'static, ()>>,
}

impl NetnsGuard {
    /// Moves the calling thread into `ns`.
    pub fn enter(ns: &str) -> io::Result<NetnsGuard> {
        let home = File::open("/proc/thread-self/ns/net")?;
        let target = open(ns)?;
        sys::setns_net(target.as_fd())?;
        Ok(NetnsGuard {
            home: Some(home),
            _not_send: PhantomData,
        })
    }

    /// Back to the thread's own namespace.
    pub fn leave(mut self) -> io::Result<()> {
        self.go_home()
    }

    fn go_home(&mut self) -> io::Result<()> {
        match self.home.take() {
            Some(home) => sys::setns_net(home.as_fd()),
            None => Ok(()),
        }
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = self.go_home();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_that_does_not_exist_is_an_error_not_a_panic() {
        let ns = "xgate-testnet-no-such-netns";
        let e = run_in(ns, || Ok(())).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains(&path(ns)), "{e}");
        let addr = "127.0.0.1:9".parse().unwrap();
        assert!(connect_in(ns, addr, Duration::from_millis(10)).is_err());
        assert!(NetnsGuard::enter(ns).is_err());
        let t = spawn_in_netns(ns, "missing", || ());
        assert!(
            t.join().is_err(),
            "the thread panics on a missing namespace"
        );
    }

    #[test]
    fn namespaces_live_under_run_netns() {
        assert_eq!(path("abc"), "/run/netns/abc");
    }
}

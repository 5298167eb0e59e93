//! Active health checks' shared verdicts and the probe's bytes, sans-IO.
//!
//! One checker (in `dataplane`, a thread of its own) probes every server of each pool that
//! has a `[upstream.health_check]`: `GET path` with `Connection: close`, healthy when the
//! status line comes within the timeout and carries the expected status. Its verdicts go on a
//! [`HealthBoard`] every serving thread shares; each thread's `Forwarder` copies them into
//! its pools ([`Pool::set_active_health`](super::balance::Pool::set_active_health)) at its
//! sweep, when the board's version has moved. Verdicts are kept by pool name and server
//! address, so they carry over a reload that keeps the server. A server is up until a probe
//! says otherwise.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::balance::Health;

/// The active checks' verdicts, shared by the checker and every serving thread.
#[derive(Debug, Default)]
pub struct HealthBoard {
    /// Bumped on every change, so a thread re-reads only then.
    version: AtomicU64,
    states: Mutex<Vec<(String, SocketAddr, Health)>>,
}

impl HealthBoard {
    /// Records a verdict; true if it changed the server's state.
    pub fn set(&self, upstream: &str, server: SocketAddr, health: Health) -> bool {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let changed = match states
            .iter_mut()
            .find(|(u, s, _)| u == upstream && *s == server)
        {
            Some(entry) if entry.2 == health => false,
            Some(entry) => {
                entry.2 = health;
                true
            }
            None => {
                states.push((upstream.to_string(), server, health));
                health == Health::Down
            }
        };
        if changed {
            self.version.fetch_add(1, Ordering::Release);
        }
        changed
    }

    /// The server's state: `Up` until a probe said otherwise.
    pub fn get(&self, upstream: &str, server: SocketAddr) -> Health {
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        states
            .iter()
            .find(|(u, s, _)| u == upstream && *s == server)
            .map_or(Health::Up, |e| e.2)
    }

    /// Moves whenever a verdict changes.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }
}

/// The probe a checker sends: `GET path` for `host`, closing after the answer.
pub fn probe_request(path: &str, host: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: xgate-health-check\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n"
    )
}

/// The status of a response whose first bytes are `received`: `Some` once the status line
/// is complete and well formed (`HTTP/1.x NNN ...`), `None` while it is not (or never will
/// be: the caller's timeout ends the wait).
pub fn probe_status(received: &[u8]) -> Option<u16> {
    let line_end = received.windows(2).position(|w| w == b"\r\n")?;
    let line = &received[..line_end];
    let rest = line
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| line.strip_prefix(b"HTTP/1.0 "))?;
    let digits = rest.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) || rest.get(3).is_some_and(|&b| b != b' ') {
        return None;
    }
    let status = digits
        .iter()
        .fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    (100..=599).contains(&status).then_some(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "10.0.0.1:80";

    #[test]
    fn a_server_is_up_until_a_probe_says_otherwise_and_changes_move_the_version() {
        let b = HealthBoard::default();
        let a: SocketAddr = A.parse().unwrap();
        assert_eq!(b.get("api", a), Health::Up);
        assert!(!b.set("api", a, Health::Up), "up is no change");
        assert_eq!(b.version(), 0);
        assert!(b.set("api", a, Health::Down));
        assert_eq!(b.version(), 1);
        assert_eq!(b.get("api", a), Health::Down);
        assert_eq!(b.get("web", a), Health::Up, "kept per pool");
        assert!(!b.set("api", a, Health::Down));
        assert!(b.set("api", a, Health::Up));
        assert_eq!(b.version(), 2);
    }

    #[test]
    fn the_probe_reads_the_status_line_and_nothing_else() {
        assert_eq!(probe_status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(
            probe_status(b"HTTP/1.0 503 Service Unavailable\r\nX: y\r\n"),
            Some(503)
        );
        assert_eq!(probe_status(b"HTTP/1.1 204\r\n"), Some(204));
        assert_eq!(probe_status(b"HTTP/1.1 200 OK"), None, "line not complete");
        assert_eq!(probe_status(b"HTTP/2 200\r\n"), None);
        assert_eq!(probe_status(b"HTTP/1.1 20x OK\r\n"), None);
        assert_eq!(probe_status(b"HTTP/1.1 2000 OK\r\n"), None);
        assert_eq!(probe_status(b"HTTP/1.1 099 x\r\n"), None);
        assert_eq!(probe_status(b"SSH-2.0-OpenSSH\r\n"), None);
    }

    #[test]
    fn the_probe_asks_for_the_path_and_closes() {
        let r = probe_request("/health", "10.0.0.1:80");
        assert!(r.starts_with("GET /health HTTP/1.1\r\nHost: 10.0.0.1:80\r\n"));
        assert!(r.ends_with("Connection: close\r\n\r\n"));
    }
}

//! The active health checker: one thread per pool with a `[upstream.health_check]`, probing
//! every server of the pool each `interval` (the servers of one round in parallel, each probe
//! bounded by the pool's `timeout`), and writing the verdicts on the [`HealthBoard`] the
//! serving threads follow (see `proxy::health`). Blocking sockets on threads of their own:
//! a probe is a few system calls every few seconds, never on a serving thread.
//!
//! A reload stops the checker and starts one for the new pools; the board keeps the verdicts
//! of servers that stay (by pool name and address).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::proxy::balance::Health;
use crate::proxy::config::{HealthCheck, ProxyConfig};
use crate::proxy::health::{probe_request, probe_status, HealthBoard};

/// Bytes read of a probe's answer at most: the status line is all that is looked at.
const PROBE_READ_MAX: usize = 1024;

/// The running checker; dropping it stops its threads.
pub struct HealthChecker {
    stop: Arc<(Mutex<bool>, Condvar)>,
    threads: Vec<JoinHandle<()>>,
}

impl HealthChecker {
    /// Starts one thread per pool of `proxy` with a health check (none without any).
    pub fn start(proxy: &ProxyConfig, board: &Arc<HealthBoard>) -> std::io::Result<HealthChecker> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let mut threads = Vec::new();
        for upstream in &proxy.upstreams {
            let Some(check) = upstream.health_check.clone() else {
                continue;
            };
            let name = upstream.name.clone();
            let servers: Vec<SocketAddr> = upstream.pool.servers.iter().map(|s| s.addr).collect();
            let board = Arc::clone(board);
            let stop = Arc::clone(&stop);
            let thread = std::thread::Builder::new()
                .name(format!("xgate-health-{}", short(&name)))
                .spawn(move || check_pool(&name, &servers, &check, &board, &stop))?;
            threads.push(thread);
        }
        Ok(HealthChecker { stop, threads })
    }

    /// Stops the threads (a probe under way ends at its timeout at most).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        let (flag, cv) = &*self.stop;
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for HealthChecker {
    fn drop(&mut self) {
        self.halt();
    }
}

/// A thread name holds 15 bytes.
fn short(name: &str) -> &str {
    let mut end = name.len().min(2);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

fn check_pool(
    name: &str,
    servers: &[SocketAddr],
    check: &HealthCheck,
    board: &HealthBoard,
    stop: &(Mutex<bool>, Condvar),
) {
    let interval = Duration::from_micros(check.interval.as_micros() as u64);
    let timeout = Duration::from_micros(check.timeout.as_micros() as u64);
    let mut next = Instant::now();
    loop {
        {
            let (flag, cv) = stop;
            let mut stopped = flag.lock().unwrap_or_else(|e| e.into_inner());
            while !*stopped {
                let now = Instant::now();
                if now >= next {
                    break;
                }
                stopped = cv
                    .wait_timeout(stopped, next - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            if *stopped {
                return;
            }
        }
        let round = Instant::now();
        let verdicts: Vec<(SocketAddr, bool)> = std::thread::scope(|scope| {
            let probes: Vec<_> = servers
                .iter()
                .map(|&addr| {
                    let path = check.path.as_str();
                    scope.spawn(move || (addr, probe(addr, path, check.expect_status, timeout)))
                })
                .collect();
            probes.into_iter().filter_map(|p| p.join().ok()).collect()
        });
        for (addr, healthy) in verdicts {
            let health = if healthy { Health::Up } else { Health::Down };
            if board.set(name, addr, health) {
                match health {
                    Health::Down => tracing::warn!(
                        upstream = name,
                        server = %addr,
                        path = check.path,
                        "health check failed: server taken out of rotation"
                    ),
                    Health::Up => tracing::info!(
                        upstream = name,
                        server = %addr,
                        "health check passed: server back in rotation"
                    ),
                }
            }
        }
        next = round + interval;
    }
}

/// One probe: true when the status line comes within `timeout` with `expect` in it.
fn probe(addr: SocketAddr, path: &str, expect: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let Ok(mut s) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let left = |deadline: Instant| deadline.saturating_duration_since(Instant::now());
    if s.set_write_timeout(Some(left(deadline).max(Duration::from_millis(1))))
        .is_err()
        || s.write_all(probe_request(path, &addr.to_string()).as_bytes())
            .is_err()
    {
        return false;
    }
    let mut buf = [0u8; PROBE_READ_MAX];
    let mut got = 0;
    loop {
        let wait = left(deadline);
        if wait.is_zero() || s.set_read_timeout(Some(wait)).is_err() {
            return false;
        }
        match s.read(&mut buf[got..]) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got += n,
        }
        if let Some(status) = probe_status(&buf[..got]) {
            return status == expect;
        }
        if got == buf.len() {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn server(answer: &'static [u8]) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf);
                let _ = s.write_all(answer);
            }
        });
        addr
    }

    #[test]
    fn a_probe_passes_on_the_expected_status_only() {
        let ok = server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let bad = server(b"HTTP/1.1 500 Internal Server Error\r\n\r\n");
        let garbage = server(b"hello\r\n");
        let t = Duration::from_secs(2);
        assert!(probe(ok, "/health", 200, t));
        assert!(!probe(ok, "/health", 204, t));
        assert!(!probe(bad, "/health", 200, t));
        assert!(!probe(garbage, "/health", 200, t));
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(!probe(closed, "/health", 200, t), "refused");
    }

    #[test]
    fn a_silent_server_fails_the_probe_at_its_timeout() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let start = Instant::now();
        assert!(!probe(addr, "/", 200, Duration::from_millis(200)));
        assert!(start.elapsed() < Duration::from_secs(2));
        drop(l);
    }
}

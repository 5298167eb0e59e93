//! What the proxy suites' in-process upstreams share: a listener on the gateway's loopback
//! that serves each connection on a thread of its own, and the strict readers of a request's
//! bytes (up to a delimiter, a body by its length or its chunks).

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use xgate_testnet::netns::run_in;

use super::http_client::find;

/// A listener on 127.0.0.1 (an ephemeral port) in a netns; dropping it stops accepting
/// (connections already accepted run on to their end).
pub struct Listener {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Listener {
    /// Listens in the netns `ns` and runs `serve(stream, conn)` on a thread of its own for
    /// each connection, `conn` its number in accept order (0, 1, ...).
    pub fn start(ns: &str, serve: impl Fn(TcpStream, u64) + Send + Sync + 'static) -> Listener {
        let listener = run_in(ns, || TcpListener::bind("127.0.0.1:0")).expect("upstream bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local address");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let serve = Arc::new(serve);
        let accept = std::thread::spawn(move || {
            let mut next_conn = 0;
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false).expect("blocking");
                        let _ = s.set_nodelay(true);
                        let conn = next_conn;
                        next_conn += 1;
                        let serve = Arc::clone(&serve);
                        std::thread::spawn(move || serve(s, conn));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("upstream accept: {e}"),
                }
            }
        });
        Listener {
            addr,
            stop,
            accept: Some(accept),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Reads from `s` into `buf` until `buf` holds `n` bytes; false at EOF or error first.
pub fn fill_to(s: &mut impl Read, buf: &mut Vec<u8>, n: usize) -> bool {
    let mut chunk = [0u8; 16384];
    while buf.len() < n {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    }
    true
}

/// Reads from `s` into `buf` until `needle` is in it; its end offset, or `None` at EOF or
/// error first.
pub fn fill_until(s: &mut impl Read, buf: &mut Vec<u8>, needle: &[u8]) -> Option<usize> {
    let mut chunk = [0u8; 16384];
    loop {
        if let Some(i) = find(buf, needle) {
            return Some(i + needle.len());
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    }
}

/// A body of `n` bytes from `s` (after what `buf` holds); `None` at EOF or error first.
pub fn read_sized_body(s: &mut impl Read, buf: &mut Vec<u8>, n: usize) -> Option<Vec<u8>> {
    if !fill_to(s, buf, n) {
        return None;
    }
    Some(buf.drain(..n).collect())
}

/// A chunked body from `s` (after what `buf` holds), its chunks joined and its trailer
/// section read and dropped; `None` at EOF, error or a chunk size that is not hex first.
pub fn read_chunked_body(s: &mut impl Read, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let e = fill_until(s, buf, b"\r\n")?;
        let line = String::from_utf8_lossy(&buf[..e - 2]).into_owned();
        buf.drain(..e);
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            // The trailer section, up to its empty line.
            loop {
                let e = fill_until(s, buf, b"\r\n")?;
                buf.drain(..e);
                if e == 2 {
                    return Some(body);
                }
            }
        }
        if !fill_to(s, buf, size + 2) {
            return None;
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}

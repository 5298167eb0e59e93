//! A small HTTP/1.1 server for the tests: a thread per connection on 127.0.0.1, port 0, each
//! request answered as a handler says (including wrongly, on purpose). It counts what it
//! saw, so tests can check loadgen's claims against the server's.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use loadgen::response::pattern;
use loadgen::{Scenario, Stop, Target};

/// One request as the server read it.
pub struct Req<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub body: &'a [u8],
    /// 0-based over the whole server.
    pub index: u64,
    /// The request carried `Connection: close`.
    pub close: bool,
}

/// What to do with a request.
pub enum Reply {
    /// Write these bytes.
    Send(Vec<u8>),
    /// Write these bytes, then close the connection.
    SendThenClose(Vec<u8>),
    /// Reset the connection (SO_LINGER 0, close) without answering.
    Reset,
    /// Close the connection without answering.
    Close,
    /// Never answer; read and discard until the client goes.
    Stall,
    /// Wait, then write these bytes.
    After(Duration, Vec<u8>),
}

#[derive(Default)]
pub struct Counters {
    pub accepts: AtomicU64,
    pub requests: AtomicU64,
    /// Most complete requests found in the buffer at once (pipelining depth seen).
    pub max_batch: AtomicU64,
    /// Most requests on one connection.
    pub max_per_connection: AtomicU64,
    /// Requests that carried `Connection: close`.
    pub close_requests: AtomicU64,
}

pub struct Server {
    pub addr: SocketAddr,
    pub counters: Arc<Counters>,
}

impl Server {
    pub fn accepts(&self) -> u64 {
        self.counters.accepts.load(Ordering::SeqCst)
    }
    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::SeqCst)
    }
    pub fn max_batch(&self) -> u64 {
        self.counters.max_batch.load(Ordering::SeqCst)
    }

    /// A closed-loop scenario against this server, stopping after `requests` requests.
    pub fn scenario(&self, path: &str, requests: u64) -> Scenario {
        let mut s = Scenario::new(Target::from_addr(self.addr, path).unwrap());
        s.connections = 2;
        s.stop = Stop::Requests(requests);
        s
    }
}

pub type Handler = dyn Fn(&Req<'_>) -> Reply + Send + Sync;

/// A server answering with `handler`.
pub fn start(handler: impl Fn(&Req<'_>) -> Reply + Send + Sync + 'static) -> Server {
    start_with(Duration::ZERO, handler)
}

/// A server that waits `read_pause` before each read after the first on a connection, so
/// pipelined requests pile up in its socket.
pub fn start_with(
    read_pause: Duration,
    handler: impl Fn(&Req<'_>) -> Reply + Send + Sync + 'static,
) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let counters = Arc::new(Counters::default());
    let handler: Arc<Handler> = Arc::new(handler);
    let c = Arc::clone(&counters);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            c.accepts.fetch_add(1, Ordering::SeqCst);
            let c = Arc::clone(&c);
            let h = Arc::clone(&handler);
            std::thread::spawn(move || serve(stream, &c, &*h, read_pause));
        }
    });
    Server { addr, counters }
}

/// The gateway's answer to `GET /bytes/{n}`, `POST /echo` (the body back) or anything else
/// (`ok`).
pub fn gateway_like(req: &Req<'_>) -> Reply {
    if let Some(n) = req.path.strip_prefix("/bytes/") {
        return Reply::Send(ok(&pattern(n.parse().unwrap())));
    }
    if req.path == "/echo" {
        return Reply::Send(ok(req.body));
    }
    Reply::Send(ok(b"ok\n"))
}

pub fn ok(body: &[u8]) -> Vec<u8> {
    response(200, body, false)
}

pub fn response(status: u16, body: &[u8], close: bool) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

pub fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for c in body.chunks(chunk) {
        r.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        r.extend_from_slice(c);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"0\r\n\r\n");
    r
}

fn serve(mut stream: TcpStream, c: &Counters, handler: &Handler, read_pause: Duration) {
    let mut buf = Vec::new();
    let mut tmp = vec![0u8; 64 * 1024];
    let mut on_this_connection = 0;
    let mut first = true;
    loop {
        if !first && !read_pause.is_zero() {
            std::thread::sleep(read_pause);
        }
        first = false;
        let n = match stream.read(&mut tmp) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&tmp[..n]);
        let mut out = Vec::new();
        let mut batch = 0;
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            let head_len = match req.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => break,
                Err(_) => return,
            };
            let (body_len, close) = framing(&req);
            if buf.len() < head_len + body_len {
                break;
            }
            batch += 1;
            on_this_connection += 1;
            c.max_per_connection
                .fetch_max(on_this_connection, Ordering::SeqCst);
            if close {
                c.close_requests.fetch_add(1, Ordering::SeqCst);
            }
            let index = c.requests.fetch_add(1, Ordering::SeqCst);
            let reply = handler(&Req {
                method: req.method.unwrap(),
                path: req.path.unwrap(),
                body: &buf[head_len..head_len + body_len],
                index,
                close,
            });
            buf.drain(..head_len + body_len);
            match reply {
                Reply::Send(bytes) => out.extend_from_slice(&bytes),
                Reply::SendThenClose(bytes) => {
                    out.extend_from_slice(&bytes);
                    let _ = stream.write_all(&out);
                    close_politely(&mut stream, &mut tmp);
                    return;
                }
                Reply::Reset => {
                    let _ = stream.write_all(&out);
                    reset(&stream);
                    return;
                }
                Reply::Close => {
                    let _ = stream.write_all(&out);
                    close_politely(&mut stream, &mut tmp);
                    return;
                }
                Reply::Stall => {
                    let _ = stream.write_all(&out);
                    while matches!(stream.read(&mut tmp), Ok(n) if n > 0) {}
                    return;
                }
                Reply::After(wait, bytes) => {
                    let _ = stream.write_all(&out);
                    out.clear();
                    std::thread::sleep(wait);
                    out.extend_from_slice(&bytes);
                }
            }
        }
        c.max_batch.fetch_max(batch, Ordering::SeqCst);
        if stream.write_all(&out).is_err() {
            return;
        }
    }
}

/// FIN, then reads until the client closes too, so unread requests never turn the close into
/// a RST (which can destroy the response before the client reads it).
/// A parsed request head's body length (`Content-Length`, 0 without) and whether it asked for
/// `Connection: close`.
pub fn framing(req: &httparse::Request<'_, '_>) -> (usize, bool) {
    let mut body_len = 0;
    let mut close = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            body_len = std::str::from_utf8(h.value).unwrap().parse().unwrap();
        }
        if h.name.eq_ignore_ascii_case("connection") && h.value == b"close" {
            close = true;
        }
    }
    (body_len, close)
}

fn close_politely(stream: &mut TcpStream, tmp: &mut [u8]) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    while matches!(stream.read(tmp), Ok(n) if n > 0) {}
}

/// Makes the close that follows send a RST.
fn reset(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `linger` is a valid struct linger of the size passed, read during the call, on
    // a socket this thread owns.
    let r = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
}

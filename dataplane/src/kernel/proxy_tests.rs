//! The kernel path forwarding requests to an upstream on loopback: a small HTTP/1.1 server
//! of the test's own that says what it received, so each test checks both sides.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use super::*;
use crate::proxy::config::{ProxyConfig, UpstreamConfig};
use crate::proxy::route::{RouteSpec, RouteTable, UpstreamId};

/// An upstream that answers each request with `<method> <target> <body length>` (keep-alive,
/// Content-Length), counting the connections it accepted.
struct Upstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

fn upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || serve_upstream(stream));
        }
    });
    Upstream { addr, accepted }
}

/// The request line and the field lines of the next request head, CRLF trimmed; `None` when
/// the connection ends first.
fn read_head(reader: &mut BufReader<TcpStream>) -> Option<(String, Vec<String>)> {
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let mut fields = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return None;
        }
        if h == "\r\n" {
            return Some((line.trim_end().to_string(), fields));
        }
        fields.push(h.trim_end().to_string());
    }
}

fn serve_upstream(stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    while let Some((request_line, headers)) = read_head(&mut reader) {
        let length: usize = headers
            .iter()
            .find_map(|h| {
                h.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).unwrap();
        let mut parts = request_line.split(' ');
        let (method, target) = (parts.next().unwrap(), parts.next().unwrap());
        let answer = format!("{method} {target} {length} {}", headers.join("|"));
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn proxy_app(servers: &[SocketAddr]) -> App {
    let routes = RouteTable::new(vec![RouteSpec::prefix_to("/api", UpstreamId(0))]).unwrap();
    let config = ProxyConfig {
        upstreams: vec![UpstreamConfig::with_defaults("backend", servers)],
        routes,
    };
    let mut app = App::new(&crate::app::AppConfig::default()).unwrap();
    app.set_proxy(Arc::new(config));
    app
}

/// A kernel path serving `app` on its own thread; stopped when dropped.
struct Running {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<KernelPath>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(app: App) -> Running {
    let mut kp = KernelPath::new(KernelConfig::default(), app).unwrap();
    let addr = kp
        .listen(
            std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 0),
            64,
        )
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let thread = std::thread::spawn(move || {
        kp.run(&flag).unwrap();
        kp
    });
    Running {
        addr,
        stop,
        thread: Some(thread),
    }
}

/// Reads one response with a Content-Length body.
fn read_response(reader: &mut BufReader<TcpStream>) -> (String, String) {
    let mut head = String::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).unwrap();
    (head, String::from_utf8(body).unwrap())
}

fn client(addr: SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let r = BufReader::new(s.try_clone().unwrap());
    (s, r)
}

#[test]
fn requests_are_forwarded_over_one_pooled_upstream_connection() {
    let up = upstream();
    let gw = serve(proxy_app(&[up.addr]));
    let (mut s, mut r) = client(gw.addr);
    for i in 0..20 {
        let body = "x".repeat(i * 100);
        write!(
            s,
            "POST /api/item/{i} HTTP/1.1\r\nHost: shop\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let (head, answer) = read_response(&mut r);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("Via: 1.1 xgate\r\n"), "{head}");
        assert!(
            answer.starts_with(&format!("POST /api/item/{i} {} ", i * 100)),
            "{answer}"
        );
        assert!(answer.contains("X-Forwarded-For: 127.0.0.1"), "{answer}");
    }
    // The gateway's own routes are still its own.
    write!(s, "GET /health HTTP/1.1\r\nHost: shop\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut r).1, "ok");
    assert_eq!(
        up.accepted.load(Ordering::SeqCst),
        1,
        "one kept-alive upstream connection"
    );
}

#[test]
fn a_refused_upstream_is_a_502_and_the_other_server_takes_the_retry() {
    let up = upstream();
    // A port nothing listens on: bind, note, close.
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let gw = serve(proxy_app(&[dead, up.addr]));
    for _ in 0..4 {
        let (mut s, mut r) = client(gw.addr);
        write!(s, "GET /api/x HTTP/1.1\r\nHost: shop\r\n\r\n").unwrap();
        let (head, answer) = read_response(&mut r);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(answer.starts_with("GET /api/x 0 "), "{answer}");
    }
    // Only the dead server: a POST is not retried, and there is nowhere else to go.
    let gw = serve(proxy_app(&[dead]));
    let (mut s, mut r) = client(gw.addr);
    write!(
        s,
        "POST /api/x HTTP/1.1\r\nHost: shop\r\nContent-Length: 1\r\n\r\nz"
    )
    .unwrap();
    let (head, _) = read_response(&mut r);
    assert!(head.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{head}");
}

/// An upstream that waits before reading (its socket buffers fill and the gateway's upstream
/// send buffer with them), then reads one chunked request body whole and answers with the
/// length of its decoded data.
fn slow_chunked_sink(delay: std::time::Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        std::thread::sleep(delay);
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut out = stream;
        if read_head(&mut reader).is_none() {
            return;
        }
        let mut data = 0usize;
        loop {
            let mut size = String::new();
            if reader.read_line(&mut size).unwrap_or(0) == 0 {
                return;
            }
            let n = usize::from_str_radix(size.trim_end(), 16).unwrap();
            let mut chunk = vec![0u8; n + 2];
            reader.read_exact(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            data += n;
        }
        let answer = data.to_string();
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        let _ = out.write_all(reply.as_bytes());
    });
    addr
}

#[test]
fn a_chunked_body_waiting_for_a_slow_upstream_is_held_back_not_cut() {
    // More than the connection's input buffer and every socket buffer on the way can hold,
    // so the client's input waits in the gateway until the upstream reads.
    const BODY: usize = 4 * 1024 * 1024;
    let sink = slow_chunked_sink(std::time::Duration::from_millis(500));
    let gw = serve(proxy_app(&[sink]));
    let (mut s, mut r) = client(gw.addr);
    // A connection the gateway cut fails the writes instead of blocking them forever.
    s.set_write_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let writer = std::thread::spawn(move || -> std::io::Result<TcpStream> {
        write!(
            s,
            "POST /api/upload HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n"
        )?;
        let chunk = vec![b'z'; 40_000];
        let mut sent = 0;
        while sent < BODY {
            let n = chunk.len().min(BODY - sent);
            write!(s, "{n:x}\r\n")?;
            s.write_all(&chunk[..n])?;
            s.write_all(b"\r\n")?;
            sent += n;
        }
        s.write_all(b"0\r\n\r\n")?;
        Ok(s)
    });
    let sent = writer.join().unwrap();
    assert!(sent.is_ok(), "the gateway cut the upload: {sent:?}");
    let (head, answer) = read_response(&mut r);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(answer, BODY.to_string());
}

//! The HTTP connection as the engine and the kernel path use it, through the public API only:
//! a receive buffer that keeps unconsumed bytes, a small send buffer, the timers, EOF.

use xgate_core::app::{App, AppConfig, RouteConfig};
use xgate_core::http::{HttpConn, HttpLimits, Progress};
use xgate_core::time::{Duration, Instant};
/// A transport stand-in: bytes arrive in `segments`, output goes through a `window`-byte
/// buffer, and the loop stops when `process` makes no progress.
struct Transport {
    conn: HttpConn,
    rx: Vec<u8>,
    sent: Vec<u8>,
    window: usize,
}

impl Transport {
    fn new(window: usize) -> Self {
        Transport {
            conn: HttpConn::new(HttpLimits::default()),
            rx: Vec::new(),
            sent: Vec::new(),
            window,
        }
    }

    fn deliver(&mut self, now: Instant, app: &App, bytes: &[u8]) {
        self.rx.extend_from_slice(bytes);
        self.pump(now, app);
    }

    fn pump(&mut self, now: Instant, app: &App) {
        let mut tx = vec![0u8; self.window];
        loop {
            let Progress { consumed, produced } = self.conn.process(now, app, &self.rx, &mut tx);
            self.rx.drain(..consumed);
            self.sent.extend_from_slice(&tx[..produced]);
            if consumed == 0 && produced == 0 {
                break;
            }
        }
    }
}

fn app() -> App {
    let mut app = App::new(&AppConfig {
        routes: vec![RouteConfig {
            method: "GET".into(),
            path: "/static".into(),
            status: 200,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: b"static body".to_vec(),
        }],
        ..AppConfig::default()
    })
    .expect("valid config");
    app.set_date(1_700_000_000);
    app
}

#[test]
fn connection_state_owns_no_heap_memory() {
    // A type that needs no drop glue owns no Vec, Box or String: per-connection state is all
    // inline, so `reset()` reuses it without allocating. (The request path itself works on the
    // caller's buffers and stack arrays.)
    assert!(!std::mem::needs_drop::<HttpConn>());
    assert!(std::mem::size_of::<HttpConn>() < 1024);
}

/// Splits `bytes` into responses, using Content-Length / chunked framing.
fn responses(mut bytes: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        let n = match resp.parse(bytes).expect("well-formed head") {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("partial head"),
        };
        let code = resp.code.unwrap();
        let len = resp
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map(|h| {
                std::str::from_utf8(h.value)
                    .unwrap()
                    .parse::<usize>()
                    .unwrap()
            })
            .unwrap_or(0);
        out.push((code, bytes[n..n + len].to_vec()));
        bytes = &bytes[n + len..];
    }
    out
}

#[test]
fn pipelined_requests_through_a_small_window_are_answered_in_order() {
    let app = app();
    let mut t = Transport::new(5);
    let mut input = Vec::new();
    for i in 0..20 {
        match i % 4 {
            0 => input.extend_from_slice(b"GET /static HTTP/1.1\r\nHost: h\r\n\r\n"),
            1 => input.extend_from_slice(b"GET /bytes/1000 HTTP/1.1\r\nHost: h\r\n\r\n"),
            2 => input.extend_from_slice(
                b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz",
            ),
            _ => input.extend_from_slice(b"GET /missing HTTP/1.1\r\nHost: h\r\n\r\n"),
        }
    }
    for segment in input.chunks(13) {
        t.deliver(Instant::from_secs(1), &app, segment);
    }
    let got = responses(&t.sent);
    assert_eq!(got.len(), 20);
    for (i, (code, body)) in got.iter().enumerate() {
        match i % 4 {
            0 => assert_eq!((*code, body.as_slice()), (200, &b"static body"[..])),
            1 => {
                assert_eq!(*code, 200);
                assert_eq!(body.len(), 1000);
                assert!(body
                    .iter()
                    .enumerate()
                    .all(|(i, &b)| b == b'a' + (i % 26) as u8));
            }
            2 => assert_eq!((*code, body.as_slice()), (200, &b"xyz"[..])),
            _ => assert_eq!(*code, 404),
        }
    }
    assert!(!t.conn.wants_close());
    assert_eq!(t.conn.stats().requests, 20);
    assert!(String::from_utf8_lossy(&t.sent).contains("Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n"));
}

#[test]
fn timers_drive_408_and_idle_close() {
    let app = app();
    let limits = HttpLimits::default();

    let mut t = Transport::new(4096);
    let t0 = Instant::from_secs(10);
    t.deliver(t0, &app, b"GET /static HTTP/1.1\r\n");
    let deadline = t.conn.poll_timeout().expect("header timer");
    assert_eq!(deadline, t0 + limits.header_timeout);
    t.conn.handle_timeout(deadline);
    t.pump(deadline, &app);
    assert!(String::from_utf8_lossy(&t.sent).starts_with("HTTP/1.1 408 Request Timeout\r\n"));
    assert!(t.conn.wants_close());

    let mut t = Transport::new(4096);
    t.deliver(t0, &app, b"GET /static HTTP/1.1\r\nHost: h\r\n\r\n");
    let deadline = t.conn.poll_timeout().expect("idle timer");
    assert_eq!(deadline, t0 + limits.idle_timeout);
    t.conn.handle_timeout(deadline - Duration::from_micros(1));
    assert!(!t.conn.wants_close());
    t.conn.handle_timeout(deadline);
    assert!(t.conn.wants_close());
}

#[test]
fn eof_after_a_request_answers_it_then_closes() {
    let app = app();
    let mut t = Transport::new(3);
    t.rx.extend_from_slice(b"GET /static HTTP/1.1\r\nHost: h\r\n\r\n");
    // One call only: the answer is still mostly pending when the FIN arrives.
    let mut tx = [0u8; 3];
    let p = t.conn.process(Instant::ZERO, &app, &t.rx, &mut tx);
    t.rx.drain(..p.consumed);
    t.sent.extend_from_slice(&tx[..p.produced]);
    t.conn.peer_closed(Instant::ZERO);
    assert!(!t.conn.wants_close());
    t.pump(Instant::ZERO, &app);
    assert!(t.conn.wants_close());
    assert_eq!(responses(&t.sent), vec![(200, b"static body".to_vec())]);
}

#[test]
fn reset_makes_the_connection_reusable() {
    let app = app();
    let mut t = Transport::new(64);
    t.deliver(Instant::ZERO, &app, b"GET /static HTTP/1.0\r\n\r\n");
    assert!(t.conn.wants_close());
    t.conn.reset();
    t.sent.clear();
    t.deliver(
        Instant::ZERO,
        &app,
        b"GET /static HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    assert!(!t.conn.wants_close());
    assert_eq!(responses(&t.sent), vec![(200, b"static body".to_vec())]);
}

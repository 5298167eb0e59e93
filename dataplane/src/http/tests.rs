//! Behaviour tests. Every scenario is run whole, split at every byte boundary, byte by byte,
//! and with output buffers of 1, 7, 64 and 64 KiB bytes; all runs must give the same bytes.

use super::*;
use crate::app::{AppConfig, RouteConfig};

/// RFC 9110 §5.6.7's example date.
pub(crate) const DATE_SECS: u64 = 784_111_777;
const DATE: &str = "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n";
const TEXT: &str = "Content-Type: text/plain; charset=utf-8\r\n";
const OCTET: &str = "Content-Type: application/octet-stream\r\n";

pub(crate) fn app() -> App {
    let mut app = App::new(&AppConfig::default()).unwrap();
    app.set_date(DATE_SECS);
    app
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Run {
    pub out: Vec<u8>,
    pub closed: bool,
    pub left: usize,
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Calls `process` until it makes no progress, dropping consumed input like a caller would.
fn pump(
    conn: &mut HttpConn,
    app: &App,
    now: Instant,
    buf: &mut Vec<u8>,
    out: &mut Vec<u8>,
    obuf: &mut [u8],
) {
    for _ in 0..10_000_000 {
        let p = conn.process(now, app, buf, obuf);
        assert!(p.consumed <= buf.len() && p.produced <= obuf.len());
        buf.drain(..p.consumed);
        out.extend_from_slice(&obuf[..p.produced]);
        if p.consumed == 0 && p.produced == 0 {
            return;
        }
    }
    panic!("process never settles");
}

/// Feeds `input` cut at `cuts` (ascending), with `out_cap`-byte output buffers; then, with
/// `eof`, reports the peer's close.
pub(crate) fn run_with(
    app: &App,
    limits: HttpLimits,
    input: &[u8],
    cuts: &[usize],
    out_cap: usize,
    eof: bool,
) -> Run {
    let mut conn = HttpConn::new(limits);
    let now = Instant::from_secs(1);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut obuf = vec![0u8; out_cap];
    let mut at = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        buf.extend_from_slice(&input[at..cut]);
        at = cut;
        pump(&mut conn, app, now, &mut buf, &mut out, &mut obuf);
    }
    if eof {
        conn.peer_closed(now);
        pump(&mut conn, app, now, &mut buf, &mut out, &mut obuf);
    }
    Run {
        out,
        closed: conn.wants_close(),
        left: buf.len(),
    }
}

fn run(input: &[u8]) -> Run {
    run_with(&app(), HttpLimits::default(), input, &[], 65536, false)
}

/// Runs `input` every way and checks that all runs agree with the whole-input run, which is
/// returned. `every_split` is skipped for long inputs by the callers that pass false.
pub(crate) fn run_all_ways(
    app: &App,
    limits: HttpLimits,
    input: &[u8],
    eof: bool,
    every_split: bool,
) -> Run {
    let reference = run_with(app, limits, input, &[], 65536, eof);
    let check = |r: Run, how: &str| {
        assert!(
            r.out == reference.out && r.closed == reference.closed,
            "{how}: got\n{}\nclosed {}\nwant\n{}\nclosed {}",
            show(&r.out),
            r.closed,
            show(&reference.out),
            reference.closed
        );
    };
    for cap in [1, 7, 64, 65536] {
        check(
            run_with(app, limits, input, &[], cap, eof),
            &format!("whole, output {cap}"),
        );
        let bytewise: Vec<usize> = (1..input.len()).collect();
        check(
            run_with(app, limits, input, &bytewise, cap, eof),
            &format!("byte by byte, output {cap}"),
        );
    }
    if every_split {
        for cut in 1..input.len() {
            for cap in [1, 7, 64, 65536] {
                check(
                    run_with(app, limits, input, &[cut], cap, eof),
                    &format!("split at {cut}, output {cap}"),
                );
            }
        }
    }
    reference
}

fn all_ways(input: &[u8]) -> Run {
    run_all_ways(&app(), HttpLimits::default(), input, false, true)
}

fn health(conn: &str) -> String {
    format!("HTTP/1.1 200 OK\r\nServer: xgate\r\n{TEXT}{DATE}{conn}Content-Length: 2\r\n\r\nok")
}

pub(crate) fn error_response(status: u16, reason: &str) -> String {
    let body = format!("{reason}\n");
    format!(
        "HTTP/1.1 {status} {reason}\r\nServer: xgate\r\n{TEXT}{DATE}Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn assert_out(r: &Run, want: &str, closed: bool) {
    assert_eq!(show(&r.out), want);
    assert_eq!(r.closed, closed, "closed");
}

#[test]
fn rfc9112_9_3_http11_get_is_keep_alive_by_default() {
    let r = all_ways(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_out(&r, &health(""), false);
}

#[test]
fn rfc9112_9_3_persistent_connection_serves_requests_one_after_another() {
    let app = app();
    let mut conn = HttpConn::new(HttpLimits::default());
    let mut out = [0u8; 1024];
    for _ in 0..3 {
        let req = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
        let p = conn.process(Instant::from_secs(1), &app, req, &mut out);
        assert_eq!(p.consumed, req.len());
        assert_eq!(show(&out[..p.produced]), health(""));
        assert!(!conn.wants_close());
    }
    assert_eq!(conn.stats().requests, 3);
    assert_eq!(conn.stats().responses_class(2), 3);
}

#[test]
fn incomplete_head_consumes_nothing() {
    let app = app();
    let mut conn = HttpConn::new(HttpLimits::default());
    let mut out = [0u8; 1024];
    let req = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    for end in 0..req.len() {
        let p = conn.process(Instant::from_secs(1), &app, &req[..end], &mut out);
        assert_eq!(p, Progress::default(), "prefix of {end} bytes");
    }
}

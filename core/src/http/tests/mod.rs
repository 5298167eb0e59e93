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

// ---------------------------------------------------------------------------------------------
// Methods, versions, connection management

#[test]
fn rfc9110_9_3_2_head_has_same_content_length_and_no_body() {
    let r = all_ways(b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_out(
        &r,
        &format!("HTTP/1.1 200 OK\r\nServer: xgate\r\n{TEXT}{DATE}Content-Length: 2\r\n\r\n"),
        false,
    );
}

#[test]
fn rfc9112_9_3_http10_closes_unless_keep_alive() {
    let r = all_ways(b"GET /health HTTP/1.0\r\n\r\n");
    assert_out(&r, &health("Connection: close\r\n"), true);
}

#[test]
fn rfc9112_appendix_c_2_2_http10_keep_alive_is_answered_with_keep_alive() {
    let r = all_ways(
        b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /health HTTP/1.0\r\n\r\n",
    );
    let want = health("Connection: keep-alive\r\n") + &health("Connection: close\r\n");
    assert_out(&r, &want, true);
}

#[test]
fn rfc9112_9_6_connection_close_is_honoured_and_later_requests_ignored() {
    let r = all_ways(
        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Close\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_out(&r, &health("Connection: close\r\n"), true);
}

#[test]
fn rfc9112_9_3_2_pipelined_requests_answered_in_order() {
    let mut input = Vec::new();
    let mut want = String::new();
    for i in 0..10 {
        if i % 3 == 0 {
            input.extend_from_slice(b"GET /bytes/3 HTTP/1.1\r\nHost: x\r\n\r\n");
            want += &format!(
                "HTTP/1.1 200 OK\r\nServer: xgate\r\n{OCTET}{DATE}Content-Length: 3\r\n\r\nabc"
            );
        } else if i % 3 == 1 {
            input.extend_from_slice(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
            );
            want += &format!(
                "HTTP/1.1 200 OK\r\nServer: xgate\r\n{OCTET}{DATE}Content-Length: 2\r\n\r\nhi"
            );
        } else {
            input.extend_from_slice(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
            want += &health("");
        }
    }
    let r = run_all_ways(&app(), HttpLimits::default(), &input, false, false);
    assert_out(&r, &want, false);
    // Every split point too, with the smallest and a middling output buffer.
    for cut in 1..input.len() {
        for cap in [1, 64] {
            let split = run_with(&app(), HttpLimits::default(), &input, &[cut], cap, false);
            assert_eq!(split.out, r.out, "split {cut} output {cap}");
        }
    }
}

#[test]
fn backpressure_stops_reading_while_a_response_waits_for_output() {
    let app = app();
    let mut conn = HttpConn::new(HttpLimits::default());
    let two = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut out = [0u8; 10];
    let p = conn.process(Instant::from_secs(1), &app, two, &mut out);
    // The first head is consumed, the second is left alone until the first answer is out.
    assert_eq!(
        p,
        Progress {
            consumed: two.len() / 2,
            produced: 10
        }
    );
    assert_eq!(
        conn.poll_timeout(),
        None,
        "no timer while waiting for output space"
    );
    let p = conn.process(Instant::from_secs(1), &app, &two[two.len() / 2..], &mut []);
    assert_eq!(p, Progress::default());
}

#[test]
fn leading_empty_lines_are_ignored_rfc9112_2_2() {
    let r = all_ways(b"\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_out(&r, &health(""), false);
}

#[test]
fn rfc9112_3_2_2_absolute_form_target_and_query_are_routed_by_path() {
    let r = all_ways(b"GET http://example.com/health?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_out(&r, &health(""), false);
}

// ---------------------------------------------------------------------------------------------
// Built-in routes

fn bytes_body(n: usize) -> String {
    (0..n).map(|i| (b'a' + (i % 26) as u8) as char).collect()
}

#[test]
fn bytes_route_streams_the_pattern() {
    let r = all_ways(b"GET /bytes/30 HTTP/1.1\r\nHost: x\r\n\r\n");
    let want = format!(
        "HTTP/1.1 200 OK\r\nServer: xgate\r\n{OCTET}{DATE}Content-Length: 30\r\n\r\n{}",
        bytes_body(30)
    );
    assert_eq!(bytes_body(30), "abcdefghijklmnopqrstuvwxyzabcd");
    assert_out(&r, &want, false);
    let r = all_ways(b"HEAD /bytes/30 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_out(
        &r,
        &format!("HTTP/1.1 200 OK\r\nServer: xgate\r\n{OCTET}{DATE}Content-Length: 30\r\n\r\n"),
        false,
    );
    let r = all_ways(b"GET /bytes/0 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_out(
        &r,
        &format!("HTTP/1.1 200 OK\r\nServer: xgate\r\n{OCTET}{DATE}Content-Length: 0\r\n\r\n"),
        false,
    );
}

#[test]
fn bytes_route_large_body_across_small_outputs() {
    let input =
        b"GET /bytes/100000 HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    let want = format!(
        "HTTP/1.1 200 OK\r\nServer: xgate\r\n{OCTET}{DATE}Content-Length: 100000\r\n\r\n{}{}",
        bytes_body(100_000),
        health("")
    );
    for cap in [1, 7, 1500, 65536] {
        let r = run_with(&app(), HttpLimits::default(), input, &[10, 50], cap, false);
        assert_out(&r, &want, false);
    }
}

#[test]
fn bytes_route_limits_and_bad_numbers() {
    let mut app = App::new(&AppConfig {
        max_bytes_len: 100,
        ..AppConfig::default()
    })
    .unwrap();
    app.set_date(DATE_SECS);
    let keep = |status: u16, reason: &str| {
        let body = format!("{reason}\n");
        format!(
            "HTTP/1.1 {status} {reason}\r\nServer: xgate\r\n{TEXT}{DATE}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let cases: [(&[u8], String); 5] = [
        (
            b"GET /bytes/101 HTTP/1.1\r\nHost: x\r\n\r\n",
            keep(413, "Content Too Large"),
        ),
        (
            b"GET /bytes/99999999999999999999999 HTTP/1.1\r\nHost: x\r\n\r\n",
            keep(413, "Content Too Large"),
        ),
        (
            b"GET /bytes/abc HTTP/1.1\r\nHost: x\r\n\r\n",
            keep(400, "Bad Request"),
        ),
        (
            b"GET /bytes/-1 HTTP/1.1\r\nHost: x\r\n\r\n",
            keep(400, "Bad Request"),
        ),
        (
            b"GET /bytes/ HTTP/1.1\r\nHost: x\r\n\r\n",
            keep(400, "Bad Request"),
        ),
    ];
    for (input, want) in cases {
        let r = run_all_ways(&app, HttpLimits::default(), input, false, false);
        assert_out(&r, &want, false);
    }
    let r = run_all_ways(
        &app,
        HttpLimits::default(),
        b"GET /bytes/100 HTTP/1.1\r\nHost: x\r\n\r\n",
        false,
        false,
    );
    assert!(show(&r.out).ends_with(&bytes_body(100)));
}

#[test]
fn echo_content_length_body_is_streamed_back() {
    let r = all_ways(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world");
    assert_out(
        &r,
        &format!("HTTP/1.1 200 OK\r\nServer: xgate\r\n{OCTET}{DATE}Content-Length: 11\r\n\r\nhello world"),
        false,
    );
}

#[test]
fn rfc9110_8_6_identical_repeated_content_lengths_are_one_length() {
    let want =
        format!("HTTP/1.1 200 OK\r\nServer: xgate\r\n{OCTET}{DATE}Content-Length: 2\r\n\r\nhi");
    let r = all_ways(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi",
    );
    assert_out(&r, &want, false);
    let r = all_ways(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 2\r\n\r\nhi");
    assert_out(&r, &want, false);
}

#[test]
fn echo_streams_before_the_body_is_complete() {
    let app = app();
    let mut conn = HttpConn::new(HttpLimits::default());
    let mut out = [0u8; 4096];
    let head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc";
    let p = conn.process(Instant::from_secs(1), &app, head, &mut out);
    assert_eq!(p.consumed, head.len());
    assert!(show(&out[..p.produced]).ends_with("Content-Length: 10\r\n\r\nabc"));
    let p = conn.process(Instant::from_secs(1), &app, b"defghij", &mut out);
    assert_eq!(show(&out[..p.produced]), "defghij");
    assert!(!conn.wants_close());
}

#[test]
fn rfc9112_7_1_echo_chunked_request_gets_chunked_response() {
    let r = all_ways(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4;a=b\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: t\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let want = format!(
        "HTTP/1.1 200 OK\r\nServer: xgate\r\n{OCTET}{DATE}Transfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n{}",
        health("")
    );
    assert_out(&r, &want, false);
}

#[test]
fn echo_without_body_is_empty() {
    let r = all_ways(b"POST /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_out(
        &r,
        &format!("HTTP/1.1 200 OK\r\nServer: xgate\r\n{OCTET}{DATE}Content-Length: 0\r\n\r\n"),
        false,
    );
}

#[test]
fn index_page() {
    let r = run(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let s = show(&r.out);
    assert!(s.starts_with(&format!(
        "HTTP/1.1 200 OK\r\nServer: xgate\r\n{TEXT}{DATE}Content-Length: "
    )));
    assert!(s.contains("xgate"));
}

#[test]
fn rfc9110_15_5_5_unknown_path_is_404() {
    let r = all_ways(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_out(
        &r,
        &format!("HTTP/1.1 404 Not Found\r\nServer: xgate\r\n{TEXT}{DATE}Content-Length: 10\r\n\r\nNot Found\n"),
        false,
    );
}

#[test]
fn rfc9110_15_5_6_wrong_method_is_405_with_allow() {
    let r = all_ways(b"DELETE /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_out(
        &r,
        &format!("HTTP/1.1 405 Method Not Allowed\r\nServer: xgate\r\nAllow: GET, HEAD\r\n{TEXT}{DATE}Content-Length: 19\r\n\r\nMethod Not Allowed\n"),
        false,
    );
    let r = all_ways(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(show(&r.out).contains("Allow: POST\r\n"));
    let r = all_ways(b"POST /bytes/5 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(show(&r.out)
        .starts_with("HTTP/1.1 405 Method Not Allowed\r\nServer: xgate\r\nAllow: GET, HEAD\r\n"));
}

#[test]
fn refused_request_with_body_is_answered_and_closed_without_reading_the_body() {
    // A 405 does not use the body; not reading it means the connection must close.
    let r = all_ways(
        b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nGET /health HTTP/1.1\r\n",
    );
    let s = show(&r.out);
    assert!(s.starts_with("HTTP/1.1 405 "));
    assert!(s.contains("Connection: close\r\n"));
    assert_eq!(s.matches("HTTP/1.1").count(), 1);
    assert!(r.closed);
}

#[test]
fn body_of_a_static_route_is_skipped_and_the_connection_kept() {
    let mut app = App::new(&AppConfig {
        routes: vec![RouteConfig {
            method: "POST".into(),
            path: "/submit".into(),
            status: 202,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: b"queued".to_vec(),
        }],
        ..AppConfig::default()
    })
    .unwrap();
    app.set_date(DATE_SECS);
    let input = b"POST /submit HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nGET POST /submit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    let r = run_all_ways(&app, HttpLimits::default(), input, false, true);
    let accepted = format!("HTTP/1.1 202 Accepted\r\nServer: xgate\r\nContent-Type: text/plain\r\n{DATE}Content-Length: 6\r\n\r\nqueued");
    assert_out(&r, &format!("{accepted}{accepted}{}", health("")), false);
}

fn app_with_post_route() -> App {
    let mut app = App::new(&AppConfig {
        routes: vec![RouteConfig {
            method: "POST".into(),
            path: "/submit".into(),
            status: 200,
            headers: vec![],
            body: b"done".to_vec(),
        }],
        ..AppConfig::default()
    })
    .unwrap();
    app.set_date(DATE_SECS);
    app
}

mod access;
mod errors;
mod lifecycle;
mod props;
mod proxy;

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

// ---------------------------------------------------------------------------------------------
// Expect

#[test]
fn rfc9110_10_1_1_expect_100_continue_before_reading_the_body() {
    let r = all_ways(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
    );
    assert_out(
        &r,
        &format!("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nServer: xgate\r\n{OCTET}{DATE}Content-Length: 2\r\n\r\nhi"),
        false,
    );
    // Sent as soon as the head is in, before any body byte.
    let app = app();
    let mut conn = HttpConn::new(HttpLimits::default());
    let mut out = [0u8; 4096];
    let head =
        b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
    let p = conn.process(Instant::from_secs(1), &app, head, &mut out);
    assert!(show(&out[..p.produced]).starts_with("HTTP/1.1 100 Continue\r\n\r\n"));
}

#[test]
fn rfc9110_10_1_1_refused_request_gets_no_100_continue_and_closes() {
    let r = all_ways(
        b"POST /nope HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
    );
    let s = show(&r.out);
    assert!(s.starts_with("HTTP/1.1 404 Not Found\r\n"), "{s}");
    assert!(s.contains("Connection: close\r\n"));
    assert!(r.closed);
    // Too large: 413 at once, no 100.
    let r = all_ways(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 99999999999\r\n\r\n");
    assert_out(&r, &error_response(413, "Content Too Large"), true);
}

#[test]
fn rfc9110_10_1_1_expect_without_body_sends_no_100() {
    let r = all_ways(b"GET /health HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n");
    assert_out(&r, &health(""), false);
}

#[test]
fn rfc9110_10_1_1_http10_ignores_100_continue() {
    let r = all_ways(b"POST /echo HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi");
    assert!(show(&r.out).starts_with("HTTP/1.1 200 OK\r\n"));
}

#[test]
fn rfc9110_10_1_1_other_expectation_is_417() {
    let r = all_ways(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\nhi",
    );
    assert_out(&r, &error_response(417, "Expectation Failed"), true);
}

// ---------------------------------------------------------------------------------------------
// Errors

fn assert_refused(input: &[u8], status: u16, reason: &str) {
    let r = all_ways(input);
    assert_out(&r, &error_response(status, reason), true);
}

#[test]
fn rfc9112_3_2_missing_or_repeated_host_is_400() {
    assert_refused(b"GET /health HTTP/1.1\r\n\r\n", 400, "Bad Request");
    assert_refused(
        b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        400,
        "Bad Request",
    );
    // RFC 9110 §7.2: an invalid Host value.
    assert_refused(
        b"GET /health HTTP/1.1\r\nHost: a b\r\n\r\n",
        400,
        "Bad Request",
    );
    assert_refused(
        b"GET /health HTTP/1.1\r\nHost: a/b\r\n\r\n",
        400,
        "Bad Request",
    );
    assert_refused(
        b"GET /health HTTP/1.1\r\nHost: u@a\r\n\r\n",
        400,
        "Bad Request",
    );
    for ok in [
        &b"Host: [::1]:8080"[..],
        b"Host: example.com:80",
        b"Host: ",
        b"Host: 10.0.0.1",
    ] {
        let mut input = b"GET /health HTTP/1.1\r\n".to_vec();
        input.extend_from_slice(ok);
        input.extend_from_slice(b"\r\n\r\n");
        assert_out(&run(&input), &health(""), false);
    }
    // HTTP/1.0 may omit Host.
    assert!(show(&all_ways(b"GET /health HTTP/1.0\r\n\r\n").out).starts_with("HTTP/1.1 200 OK"));
}

#[test]
fn malformed_request_lines_are_400() {
    for input in [
        &b"GET  /health HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET /health\r\nHost: x\r\n\r\n",
        b"GET /hea lth HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /health HTTP/1.1 \r\nHost: x\r\n\r\n",
        b"/health HTTP/1.1\r\nHost: x\r\n\r\n",
        b"G(T /health HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /health FOO/1.1\r\nHost: x\r\n\r\n",
        b"GET example.com:80 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost x\r\n\r\n",
        b"GET /health HTTP/1.1\r\n: x\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\x7f\r\n\r\n",
        b"GET /h\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        assert_refused(input, 400, "Bad Request");
    }
}

#[test]
fn rfc9112_2_2_bare_cr_and_bare_lf_are_400() {
    assert_refused(b"GET /health HTTP/1.1\nHost: x\r\n\r\n", 400, "Bad Request");
    assert_refused(b"GET /health HTTP/1.1\r\nHost: x\n\r\n", 400, "Bad Request");
    assert_refused(b"GET /health HTTP/1.1\r\nHost: x\r\n\n", 400, "Bad Request");
    assert_refused(
        b"GET /health HTTP/1.1\r\nHost: x\rY: z\r\n\r\n",
        400,
        "Bad Request",
    );
    assert_refused(
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\r",
        400,
        "Bad Request",
    );
    assert_refused(
        b"\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
        "Bad Request",
    );
}

#[test]
fn rfc9112_5_1_whitespace_before_colon_is_400() {
    assert_refused(
        b"GET /health HTTP/1.1\r\nHost : x\r\n\r\n",
        400,
        "Bad Request",
    );
    assert_refused(
        b"GET /health HTTP/1.1\r\nHost\t: x\r\n\r\n",
        400,
        "Bad Request",
    );
}

#[test]
fn rfc9112_5_2_obs_fold_is_400() {
    assert_refused(
        b"GET /health HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
        400,
        "Bad Request",
    );
    assert_refused(
        b"GET /health HTTP/1.1\r\nHost: x\r\nX: a\r\n\tb\r\n\r\n",
        400,
        "Bad Request",
    );
    // RFC 9112 §2.2: whitespace between the start line and the first field.
    assert_refused(
        b"GET /health HTTP/1.1\r\n Host: x\r\n\r\n",
        400,
        "Bad Request",
    );
}

#[test]
fn nul_in_head_is_400() {
    assert_refused(
        b"GET /health HTTP/1.1\r\nHost: x\x00y\r\n\r\n",
        400,
        "Bad Request",
    );
    assert_refused(
        b"GET /he\x00alth HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
        "Bad Request",
    );
}

#[test]
fn rfc9112_2_3_unsupported_version_is_505() {
    assert_refused(
        b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n",
        505,
        "HTTP Version Not Supported",
    );
    assert_refused(
        b"GET /health HTTP/1.2\r\nHost: x\r\n\r\n",
        505,
        "HTTP Version Not Supported",
    );
    assert_refused(
        b"GET /health HTTP/0.9\r\nHost: x\r\n\r\n",
        505,
        "HTTP Version Not Supported",
    );
}

#[test]
fn rfc9110_9_1_unknown_method_is_501() {
    assert_refused(
        b"BREW /health HTTP/1.1\r\nHost: x\r\n\r\n",
        501,
        "Not Implemented",
    );
}

#[test]
fn rfc9112_6_1_unknown_transfer_coding_is_501() {
    assert_refused(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        501,
        "Not Implemented",
    );
    assert_refused(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n",
        501,
        "Not Implemented",
    );
}

#[test]
fn rfc9112_6_3_chunked_not_final_is_400() {
    assert_refused(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
        400,
        "Bad Request",
    );
    assert_refused(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "Bad Request");
    assert_refused(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        400,
        "Bad Request",
    );
}

#[test]
fn rfc9110_15_5_14_body_over_limit_is_413() {
    let limits = HttpLimits {
        max_body_len: 10,
        ..HttpLimits::default()
    };
    let r = run_all_ways(
        &app(),
        limits,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n",
        false,
        true,
    );
    assert_out(&r, &error_response(413, "Content Too Large"), true);
    // Chunked: the limit trips when a chunk size crosses it; the echo has started, so the
    // response is cut and the connection closed.
    let r = run_all_ways(
        &app(),
        limits,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n6\r\nabcdef\r\n0\r\n\r\n",
        false,
        true,
    );
    assert!(r.closed);
    assert!(show(&r.out).ends_with("5\r\nabcde\r\n"));
}

#[test]
fn rfc9112_3_uri_too_long_is_414() {
    let limits = HttpLimits {
        max_uri_len: 32,
        ..HttpLimits::default()
    };
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(32));
    let r = run_all_ways(&app(), limits, long.as_bytes(), false, true);
    assert_out(&r, &error_response(414, "URI Too Long"), true);
    // Decided before the request line ends.
    let very = format!("GET /{}", "a".repeat(200));
    let r = run_all_ways(&app(), limits, very.as_bytes(), false, false);
    assert_out(&r, &error_response(414, "URI Too Long"), true);
}

#[test]
fn rfc6585_5_too_many_or_too_large_headers_is_431() {
    let limits = HttpLimits {
        max_headers: 4,
        ..HttpLimits::default()
    };
    let input = b"GET /health HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    let r = run_all_ways(&app(), limits, input, false, true);
    assert_out(
        &r,
        &error_response(431, "Request Header Fields Too Large"),
        true,
    );
    let input = b"GET /health HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    let r = run_all_ways(&app(), limits, input, false, false);
    assert_out(&r, &health(""), false);

    let limits = HttpLimits {
        max_header_bytes: 64,
        ..HttpLimits::default()
    };
    let input = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
        "v".repeat(40)
    );
    let r = run_all_ways(&app(), limits, input.as_bytes(), false, true);
    assert_out(
        &r,
        &error_response(431, "Request Header Fields Too Large"),
        true,
    );
    // Exactly at the limit is fine.
    let input = b"GET /health HTTP/1.1\r\nHost: x\r\nX: vvvvvvvvvvvvvvvvvvvvvvvvvv\r\n\r\n";
    assert_eq!(input.len(), 64);
    let r = run_all_ways(&app(), limits, input, false, true);
    assert_out(&r, &health(""), false);
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

#[test]
fn rfc9112_7_1_bad_chunk_size_is_400() {
    // A skipped body is read before the answer starts, so any bad chunk gets a 400.
    let app = app_with_post_route();
    for body in [
        &b"zz\r\n"[..],
        b"3\r\nabc\r\nq\r\n",
        b"3\r\nabcd\r\n0\r\n\r\n",
        b"3\nabc\r\n0\r\n\r\n",
    ] {
        let mut input =
            b"POST /submit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        input.extend_from_slice(body);
        let r = run_all_ways(&app, HttpLimits::default(), &input, false, true);
        assert_out(&r, &error_response(400, "Bad Request"), true);
    }
    // /echo writes its head once the first chunk-size line is known to be good.
    assert_refused(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        400,
        "Bad Request",
    );
    // After that the response has started: it is cut and the connection closed.
    let r = all_ways(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\nzz\r\n",
    );
    assert!(r.closed);
    assert!(show(&r.out).ends_with("Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n"));
}

#[test]
fn rfc9112_7_1_chunked_body_over_limit_is_413() {
    let limits = HttpLimits {
        max_body_len: 10,
        ..HttpLimits::default()
    };
    let app = app_with_post_route();
    let input = b"POST /submit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n6\r\nabcdef\r\n0\r\n\r\n";
    let r = run_all_ways(&app, limits, input, false, true);
    assert_out(&r, &error_response(413, "Content Too Large"), true);
    let r = run_all_ways(
        &app,
        limits,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n",
        false,
        true,
    );
    assert_out(&r, &error_response(413, "Content Too Large"), true);
}

#[test]
fn rfc9110_10_1_1_continue_then_body_then_answer_for_skipped_bodies() {
    let app = app_with_post_route();
    let input = b"POST /submit HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabcGET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    let r = run_all_ways(&app, HttpLimits::default(), input, false, true);
    let want = format!(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nServer: xgate\r\n{DATE}Content-Length: 4\r\n\r\ndone{}",
        health("")
    );
    assert_out(&r, &want, false);
}

// ---------------------------------------------------------------------------------------------
// Timers and EOF

#[test]
fn rfc9110_15_5_9_header_timeout_sends_408_and_closes() {
    let app = app();
    let limits = HttpLimits::default();
    let mut conn = HttpConn::new(limits);
    let t0 = Instant::from_secs(100);
    let mut out = [0u8; 4096];
    let p = conn.process(t0, &app, b"GET /hea", &mut out);
    assert_eq!(p, Progress::default());
    assert_eq!(conn.poll_timeout(), Some(t0 + limits.header_timeout));
    conn.handle_timeout(t0 + Duration::from_secs(9));
    assert!(!conn.wants_close());
    conn.handle_timeout(t0 + limits.header_timeout);
    let p = conn.process(t0 + limits.header_timeout, &app, b"GET /hea", &mut out);
    assert_eq!(
        show(&out[..p.produced]),
        error_response(408, "Request Timeout")
    );
    assert!(conn.wants_close());
    assert_eq!(conn.stats().header_timeouts, 1);
    assert_eq!(conn.poll_timeout(), None);
}

#[test]
fn rfc9112_9_8_idle_keep_alive_timeout_closes_quietly() {
    let app = app();
    let limits = HttpLimits::default();
    let mut conn = HttpConn::new(limits);
    let mut out = [0u8; 4096];
    let t0 = Instant::from_secs(5);
    conn.start(t0);
    assert_eq!(conn.poll_timeout(), Some(t0 + limits.idle_timeout));
    let t1 = Instant::from_secs(7);
    let req = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    let p = conn.process(t1, &app, req, &mut out);
    assert_eq!(p.consumed, req.len());
    assert_eq!(conn.poll_timeout(), Some(t1 + limits.idle_timeout));
    conn.handle_timeout(t1 + limits.idle_timeout);
    assert!(conn.wants_close());
    assert_eq!(conn.stats().idle_timeouts, 1);
    let p = conn.process(t1 + limits.idle_timeout, &app, b"", &mut out);
    assert_eq!(p.produced, 0);
}

#[test]
fn rfc9110_15_5_9_stalled_skipped_body_gets_408() {
    let app = app_with_post_route();
    let limits = HttpLimits::default();
    let mut conn = HttpConn::new(limits);
    let mut out = [0u8; 4096];
    let t = Instant::from_secs(1);
    let p = conn.process(
        t,
        &app,
        b"POST /submit HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab",
        &mut out,
    );
    assert_eq!(p.produced, 0, "the answer waits for the body");
    assert_eq!(conn.poll_timeout(), Some(t + limits.idle_timeout));
    conn.handle_timeout(t + limits.idle_timeout);
    assert!(!conn.wants_close());
    let p = conn.process(t + limits.idle_timeout, &app, b"", &mut out);
    assert_eq!(
        show(&out[..p.produced]),
        error_response(408, "Request Timeout")
    );
    assert!(conn.wants_close());
    let s = conn.stats();
    assert_eq!((s.body_timeouts, s.responses), (1, [0, 0, 0, 1, 0]));
}

#[test]
fn stalled_body_closes_after_idle_timeout() {
    let app = app();
    let limits = HttpLimits::default();
    let mut conn = HttpConn::new(limits);
    let mut out = [0u8; 4096];
    let t = Instant::from_secs(1);
    conn.process(
        t,
        &app,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab",
        &mut out,
    );
    assert_eq!(conn.poll_timeout(), Some(t + limits.idle_timeout));
    conn.handle_timeout(t + limits.idle_timeout);
    assert!(conn.wants_close());
    assert_eq!(conn.stats().aborted, 1);
    assert_eq!(conn.stats().body_timeouts, 1);
}

#[test]
fn peer_close_mid_head_closes_without_answer() {
    let r = run_all_ways(
        &app(),
        HttpLimits::default(),
        b"GET /health HTTP/1.1\r\nHo",
        true,
        true,
    );
    assert_out(&r, "", true);
}

#[test]
fn peer_close_after_pipelined_requests_still_answers_them() {
    let input = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    let r = run_all_ways(&app(), HttpLimits::default(), input, true, true);
    assert_out(&r, &(health("") + &health("")), true);
    // Output-blocked when the FIN arrives: the rest is still written.
    let app = app();
    let mut conn = HttpConn::new(HttpLimits::default());
    let mut out = [0u8; 8];
    let mut buf = input.to_vec();
    let p = conn.process(Instant::ZERO, &app, &buf, &mut out);
    buf.drain(..p.consumed);
    let mut got = out[..p.produced].to_vec();
    conn.peer_closed(Instant::ZERO);
    assert!(!conn.wants_close());
    let mut obuf = vec![0u8; 8];
    pump(
        &mut conn,
        &app,
        Instant::ZERO,
        &mut buf,
        &mut got,
        &mut obuf,
    );
    assert_eq!(show(&got), health("") + &health(""));
    assert!(conn.wants_close());
}

#[test]
fn peer_close_mid_echo_cuts_the_response() {
    let r = run_all_ways(
        &app(),
        HttpLimits::default(),
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab",
        true,
        true,
    );
    assert!(r.closed);
    assert!(show(&r.out).ends_with("\r\n\r\nab"));
}

#[test]
fn stats_count_requests_and_response_classes() {
    let app = app();
    let mut conn = HttpConn::new(HttpLimits::default());
    let mut out = vec![0u8; 65536];
    let input = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nxGET / HTTP/3.0\r\n\r\n";
    let p = conn.process(Instant::ZERO, &app, input, &mut out);
    assert_eq!(p.consumed, input.len());
    let s = *conn.stats();
    assert_eq!(s.requests, 3);
    assert_eq!(s.responses, [1, 2, 0, 1, 1]);
    assert_eq!(s.rejected, 1);
    assert_eq!(s.bytes_out, p.produced as u64);
    assert!(conn.wants_close());
    conn.reset();
    assert_eq!(*conn.stats(), HttpStats::default());
    assert!(!conn.wants_close());
    let p = conn.process(
        Instant::ZERO,
        &app,
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        &mut out,
    );
    assert_eq!(show(&out[..p.produced]), health(""));
}

#[test]
fn date_is_refreshed_by_set_date() {
    let mut app = app();
    app.set_date(DATE_SECS + 86_400);
    let r = run_with(
        &app,
        HttpLimits::default(),
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        &[],
        4096,
        false,
    );
    assert!(show(&r.out).contains("Date: Mon, 07 Nov 1994 08:49:37 GMT\r\n"));
}

// ---------------------------------------------------------------------------------------------
// Request smuggling corpus: each must be refused with exactly one error response and a close,
// whatever follows (here, a request hidden in what a lenient peer would take as the body).

const SMUGGLED: &str = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";

fn smuggling_corpus() -> Vec<(&'static str, String, u16)> {
    let post = "POST /echo HTTP/1.1\r\nHost: x\r\n";
    let chunked_body = format!("0\r\n\r\n{SMUGGLED}");
    let cases: Vec<(&str, String, u16)> = vec![
        ("CL.TE", format!("{post}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n{chunked_body}"), 400),
        ("TE.CL", format!("{post}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n{chunked_body}"), 400),
        ("TE.TE xchunked + CL", format!("{post}Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\n{chunked_body}"), 400),
        ("TE xchunked", format!("{post}Transfer-Encoding: xchunked\r\n\r\n{chunked_body}"), 501),
        ("TE leading space in value + CL", format!("{post}Transfer-Encoding:  chunked\r\nContent-Length: 5\r\n\r\n{chunked_body}"), 400),
        ("TE chunked, identity", format!("{post}Transfer-Encoding: chunked, identity\r\n\r\n{chunked_body}"), 400),
        ("TE identity", format!("{post}Transfer-Encoding: identity\r\n\r\n{chunked_body}"), 501),
        ("TE twice, chunked first", format!("{post}Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n{chunked_body}"), 400),
        ("TE chunked twice", format!("{post}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n{chunked_body}"), 400),
        ("TE with parameters", format!("{post}Transfer-Encoding: chunked;q=1\r\n\r\n{chunked_body}"), 501),
        ("TE empty", format!("{post}Transfer-Encoding: \r\n\r\n{chunked_body}"), 400),
        ("TE vertical tab", format!("{post}Transfer-Encoding: \x0bchunked\r\n\r\n{chunked_body}"), 400),
        ("TE in HTTP/1.0", format!("POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n{chunked_body}"), 400),
        ("TE line starting with space (obs-fold)", format!("{post}X: y\r\n Transfer-Encoding: chunked\r\n\r\n{chunked_body}"), 400),
        ("TE space before colon", format!("{post}Transfer-Encoding : chunked\r\n\r\n{chunked_body}"), 400),
        ("TE tab before colon", format!("{post}Transfer-Encoding\t: chunked\r\n\r\n{chunked_body}"), 400),
        ("TE first field after whitespace", format!("POST /echo HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: x\r\n\r\n{chunked_body}"), 400),
        ("TE bare CR", format!("{post}Transfer-Encoding: chunked\rX: y\r\n\r\n{chunked_body}"), 400),
        ("TE bare LF", format!("{post}Transfer-Encoding: chunked\nX: y\r\n\r\n{chunked_body}"), 400),
        ("CL duplicate, differing", format!("{post}Content-Length: 0\r\nContent-Length: 33\r\n\r\n{SMUGGLED}"), 400),
        ("CL list, differing", format!("{post}Content-Length: 0, 33\r\n\r\n{SMUGGLED}"), 400),
        ("CL plus sign", format!("{post}Content-Length: +33\r\n\r\n{SMUGGLED}"), 400),
        ("CL negative", format!("{post}Content-Length: -1\r\n\r\n{SMUGGLED}"), 400),
        ("CL hex", format!("{post}Content-Length: 0x21\r\n\r\n{SMUGGLED}"), 400),
        ("CL inner space", format!("{post}Content-Length: 3 3\r\n\r\n{SMUGGLED}"), 400),
        ("CL empty", format!("{post}Content-Length: \r\n\r\n{SMUGGLED}"), 400),
        ("CL overflow", format!("{post}Content-Length: 18446744073709551616\r\n\r\n{SMUGGLED}"), 400),
        ("CL obs-fold", format!("{post}Content-Length: 0\r\n 33\r\n\r\n{SMUGGLED}"), 400),
        ("CL space before colon", format!("{post}Content-Length : 33\r\n\r\n{SMUGGLED}"), 400),
        ("NUL in field name", format!("{post}Content-Length\x00: 33\r\n\r\n{SMUGGLED}"), 400),
        ("NUL in field value", format!("{post}Content-Length: 3\x003\r\n\r\n{SMUGGLED}"), 400),
        ("bare LF ends the head", format!("{post}Content-Length: 0\n\n{SMUGGLED}"), 400),
        ("bare CR in request line", format!("POST /echo\rHTTP/1.1\r\nHost: x\r\n\r\n{SMUGGLED}"), 400),
        ("chunk size hex overflow", format!("{post}Transfer-Encoding: chunked\r\n\r\n1000000000000000000000000000021\r\n{SMUGGLED}"), 400),
        ("chunk size 2^64 - 1", format!("{post}Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n{SMUGGLED}"), 413),
        ("chunk size with sign", format!("{post}Transfer-Encoding: chunked\r\n\r\n+21\r\n{SMUGGLED}"), 400),
        ("chunk size 0x prefix", format!("{post}Transfer-Encoding: chunked\r\n\r\n0x21\r\n{SMUGGLED}"), 400),
        ("chunk size bare LF", format!("{post}Transfer-Encoding: chunked\r\n\r\n0\n\r\n{SMUGGLED}"), 400),
        ("two Host", format!("POST /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Length: 0\r\n\r\n{SMUGGLED}"), 400),
    ];
    cases
}

#[test]
fn request_smuggling_corpus_is_refused_with_one_answer_and_close() {
    let app = app();
    for (name, input, status) in smuggling_corpus() {
        let r = run_all_ways(&app, HttpLimits::default(), input.as_bytes(), false, false);
        let reason = crate::app::reason_phrase(status);
        assert_eq!(show(&r.out), error_response(status, reason), "{name}");
        assert!(r.closed, "{name}");
        // And with every split, for a few output sizes.
        for cut in 1..input.len() {
            for cap in [1, 64] {
                let s = run_with(
                    &app,
                    HttpLimits::default(),
                    input.as_bytes(),
                    &[cut],
                    cap,
                    false,
                );
                assert_eq!(s.out, r.out, "{name}: split {cut} output {cap}");
            }
        }
    }
}

#[test]
fn request_smuggling_corpus_on_a_body_skipping_route() {
    // Same shapes against a static POST route (body skipped rather than echoed).
    let app = app_with_post_route();
    for (name, input, status) in smuggling_corpus() {
        let input = input.replace("POST /echo", "POST /submit");
        let r = run_all_ways(&app, HttpLimits::default(), input.as_bytes(), false, false);
        let reason = crate::app::reason_phrase(status);
        assert_eq!(show(&r.out), error_response(status, reason), "{name}");
        assert!(r.closed, "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// Property tests

/// Checks that `out` is a sequence of well-formed responses. All but the last must be
/// complete; the last may be cut short only when `closed` (a response aborted by a close) or
/// when it is an echo waiting for input. Returns the statuses of the complete final responses.
pub(crate) fn check_responses(out: &[u8], closed: bool) -> Result<Vec<u16>, String> {
    let mut pos = 0;
    let mut finals = Vec::new();
    while pos < out.len() {
        let rest = &out[pos..];
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        let head_len = match resp.parse(rest) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Err(format!("incomplete head at {pos}")),
            Err(e) => return Err(format!("bad head at {pos}: {e}")),
        };
        if rest[..head_len]
            .windows(2)
            .any(|w| w[1] == b'\n' && w[0] != b'\r')
        {
            return Err("bare LF in response head".into());
        }
        let code = resp.code.ok_or("no status")?;
        if resp.version != Some(1) || !(100..=599).contains(&code) {
            return Err(format!("bad status line at {pos}"));
        }
        pos += head_len;
        if code < 200 {
            if resp.headers.iter().any(|h| !h.name.is_empty()) {
                return Err("headers on 100".into());
            }
            continue;
        }
        let find = |name: &str| {
            resp.headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
                .collect::<Vec<_>>()
        };
        if find("server") != [&b"xgate"[..]] || find("date").len() != 1 {
            return Err("missing Server/Date".into());
        }
        let cl = find("content-length");
        let te = find("transfer-encoding");
        let rest = &out[pos..];
        match (cl.as_slice(), te.as_slice()) {
            ([n], []) => {
                let n: usize = std::str::from_utf8(n)
                    .map_err(|e| e.to_string())?
                    .parse()
                    .map_err(|e: std::num::ParseIntError| e.to_string())?;
                if rest.len() < n {
                    return if closed || code == 200 {
                        Ok(finals.clone())
                    } else {
                        Err("short body".into())
                    };
                }
                pos += n;
            }
            ([], [b"chunked"]) => {
                let mut at = 0;
                loop {
                    let Some(eol) = rest[at..].windows(2).position(|w| w == b"\r\n") else {
                        return Ok(finals.clone()); // cut
                    };
                    let size = usize::from_str_radix(
                        std::str::from_utf8(&rest[at..at + eol]).map_err(|e| e.to_string())?,
                        16,
                    )
                    .map_err(|e| e.to_string())?;
                    at += eol + 2;
                    if size == 0 {
                        if rest.len() < at + 2 {
                            return Ok(finals.clone());
                        }
                        if &rest[at..at + 2] != b"\r\n" {
                            return Err("bad last chunk".into());
                        }
                        at += 2;
                        break;
                    }
                    if rest.len() < at + size + 2 {
                        return Ok(finals.clone());
                    }
                    if &rest[at + size..at + size + 2] != b"\r\n" {
                        return Err("bad chunk end".into());
                    }
                    at += size + 2;
                }
                pos += at;
            }
            _ => return Err(format!("bad framing at {pos}")),
        }
        finals.push(code);
    }
    Ok(finals.clone())
}

mod props {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::Index;

    const TEMPLATES: &[&str] = &[
        "GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /bytes/40 HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
        "POST /submit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
        "POST /submit HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
        "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "DELETE /echo HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ];

    /// Requests that keep the connection open, with the final status each gets.
    const KEEP_ALIVE: &[(&str, u16)] = &[
        ("GET /health HTTP/1.1\r\nHost: x\r\n\r\n", 200),
        ("GET /bytes/40 HTTP/1.1\r\nHost: x\r\n\r\n", 200),
        ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 200),
        ("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 200),
        ("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n", 200),
        ("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi", 200),
        ("POST /submit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n", 200),
        ("POST /submit HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc", 200),
        ("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        ("DELETE /echo HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        ("GET /bytes/x HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("\r\nGET /health?q HTTP/1.1\r\nHost: x\r\n\r\n", 200),
    ];

    fn structured() -> impl Strategy<Value = Vec<u8>> {
        (
            proptest::collection::vec(0..TEMPLATES.len(), 1..5),
            proptest::collection::vec((any::<Index>(), any::<u8>(), 0..3u8), 0..4),
        )
            .prop_map(|(picks, edits)| {
                let mut v: Vec<u8> = picks.iter().flat_map(|&i| TEMPLATES[i].bytes()).collect();
                for (at, byte, op) in edits {
                    if v.is_empty() {
                        break;
                    }
                    let i = at.index(v.len());
                    match op {
                        0 => v[i] = byte,
                        1 => v.insert(i, byte),
                        _ => {
                            v.remove(i);
                        }
                    }
                }
                v
            })
    }

    fn input_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![proptest::collection::vec(any::<u8>(), 0..200), structured()]
            // HEAD answers have a Content-Length and no body: the checker cannot tell them apart.
            .prop_filter("no HEAD", |v| {
                !v.windows(4).any(|w| w.eq_ignore_ascii_case(b"HEAD"))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            // PROPTEST_CASES overrides, for long runs.
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
            ..ProptestConfig::default()
        })]

        #[test]
        fn rfc9112_9_3_2_pipelined_requests_get_responses_in_order(
            picks in proptest::collection::vec(0..KEEP_ALIVE.len(), 1..12),
            cuts in proptest::collection::vec(any::<Index>(), 0..8),
            cap in prop_oneof![1usize..80, Just(65536usize)],
        ) {
            let app = app_with_post_route();
            let input: Vec<u8> = picks.iter().flat_map(|&i| KEEP_ALIVE[i].0.bytes()).collect();
            let want: Vec<u16> = picks.iter().map(|&i| KEEP_ALIVE[i].1).collect();
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
            cuts.sort_unstable();
            let r = run_with(&app, HttpLimits::default(), &input, &cuts, cap, false);
            prop_assert!(!r.closed);
            prop_assert_eq!(r.left, 0);
            let got = check_responses(&r.out, false);
            prop_assert_eq!(got, Ok(want));
        }

        #[test]
        fn arbitrary_input_in_arbitrary_splits_gives_well_formed_identical_output(
            input in input_bytes(),
            cuts in proptest::collection::vec(any::<Index>(), 0..6),
            cap in prop_oneof![1usize..80, Just(65536usize)],
            eof in any::<bool>(),
        ) {
            let app = app_with_post_route();
            let limits = HttpLimits { max_header_bytes: 512, max_uri_len: 64, max_body_len: 64, ..HttpLimits::default() };
            let whole = run_with(&app, limits, &input, &[], 65536, eof);
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
            cuts.sort_unstable();
            let split = run_with(&app, limits, &input, &cuts, cap, eof);
            prop_assert_eq!(&split.out, &whole.out);
            prop_assert_eq!(split.closed, whole.closed);
            if let Err(e) = check_responses(&whole.out, whole.closed) {
                prop_assert!(false, "{}\n{}", e, show(&whole.out));
            }
            if eof {
                prop_assert!(whole.closed, "EOF always ends the connection");
            }
        }
    }
}

#[test]
fn response_checker_catches_malformed_output() {
    let ok = format!("HTTP/1.1 100 Continue\r\n\r\n{}{}", health(""), health(""));
    assert_eq!(check_responses(ok.as_bytes(), false), Ok(vec![200, 200]));
    let bad: [&[u8]; 5] = [
        b"HTTP/1.1 200 OK\r\nServer: xgate\r\n\r\n",                       // no Date, no framing
        b"HTTP/1.1 200 OK\nServer: xgate\r\nDate: x\r\nContent-Length: 0\r\n\r\n", // bare LF
        b"HTTP/1.1 404 Not Found\r\nServer: xgate\r\nDate: x\r\nContent-Length: 5\r\n\r\nab", // short non-200 body
        b"HTTP/1.1 200 OK\r\nServer: xgate\r\nDate: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
        b"garbage",
    ];
    for b in bad {
        assert!(check_responses(b, false).is_err(), "{}", show(b));
    }
}

#[test]
fn extreme_limits_do_not_panic() {
    let input = b"\r\nPOST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;e\r\nabc\r\n0\r\nT: 1\r\n\r\nGET /bytes/9 HTTP/1.1\r\nHost: x\r\n\r\n";
    for limits in [
        HttpLimits {
            max_header_bytes: 0,
            max_headers: 0,
            max_uri_len: 0,
            max_body_len: 0,
            max_chunk_line_len: 0,
            max_trailer_bytes: 0,
            header_timeout: Duration::ZERO,
            idle_timeout: Duration::ZERO,
        },
        HttpLimits {
            max_header_bytes: usize::MAX,
            max_headers: usize::MAX,
            max_uri_len: usize::MAX,
            max_body_len: u64::MAX,
            max_chunk_line_len: u32::MAX,
            max_trailer_bytes: u32::MAX,
            header_timeout: Duration::MAX,
            idle_timeout: Duration::MAX,
        },
    ] {
        let r = run_all_ways(&app(), limits, input, true, false);
        assert!(check_responses(&r.out, r.closed).is_ok());
        let mut conn = HttpConn::new(limits);
        conn.start(Instant::from_micros(u64::MAX));
        let _ = conn.poll_timeout();
        conn.handle_timeout(Instant::from_micros(u64::MAX));
    }
}

/// Appends `input` to `buf` (what `conn` has not consumed yet) and drives `conn` through a
/// large output buffer; returns what it wrote.
fn feed(conn: &mut HttpConn, app: &App, buf: &mut Vec<u8>, input: &[u8]) -> String {
    buf.extend_from_slice(input);
    let mut out = Vec::new();
    let mut obuf = vec![0u8; 1 << 16];
    pump(conn, app, Instant::from_secs(1), buf, &mut out, &mut obuf);
    show(&out)
}

#[test]
fn rfc9112_9_6_drain_closes_a_connection_idle_between_requests() {
    let app = app();
    let mut conn = HttpConn::new(HttpLimits::default());
    let mut buf = Vec::new();
    let out = feed(
        &mut conn,
        &app,
        &mut buf,
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(out, health(""));
    assert!(!conn.wants_close());
    conn.begin_drain();
    assert!(
        conn.wants_close(),
        "idle keep-alive connection closes at once"
    );
}

#[test]
fn rfc9112_9_6_drain_lets_a_new_connection_send_one_request_and_says_close() {
    let app = app();
    let mut conn = HttpConn::new(HttpLimits::default());
    let mut buf = Vec::new();
    conn.begin_drain();
    assert!(!conn.wants_close(), "no request yet: it gets its chance");
    let out = feed(
        &mut conn,
        &app,
        &mut buf,
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(
        out,
        health("Connection: close\r\n"),
        "one answer, then closed"
    );
    assert!(conn.wants_close());
}

#[test]
fn rfc9112_9_6_drain_finishes_a_request_being_read_with_connection_close() {
    let app = app();
    // A head half received.
    let mut conn = HttpConn::new(HttpLimits::default());
    let mut buf = Vec::new();
    assert_eq!(
        feed(&mut conn, &app, &mut buf, b"GET /health HTTP/1.1\r\nHo"),
        ""
    );
    conn.begin_drain();
    assert!(!conn.wants_close());
    let out = feed(&mut conn, &app, &mut buf, b"st: x\r\n\r\n");
    assert_eq!(out, health("Connection: close\r\n"));
    assert!(conn.wants_close());
    // A body half received (its answer waits for the whole body).
    let mut app = App::new(&AppConfig {
        routes: vec![RouteConfig {
            method: "POST".into(),
            path: "/submit".into(),
            status: 202,
            headers: vec![],
            body: b"queued".to_vec(),
        }],
        ..AppConfig::default()
    })
    .unwrap();
    app.set_date(DATE_SECS);
    let mut conn = HttpConn::new(HttpLimits::default());
    let mut buf = Vec::new();
    let head = b"POST /submit HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab";
    assert_eq!(feed(&mut conn, &app, &mut buf, head), "");
    conn.begin_drain();
    let out = feed(&mut conn, &app, &mut buf, b"cd");
    assert!(out.starts_with("HTTP/1.1 202 "), "{out}");
    assert!(out.contains("Connection: close\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\nqueued"), "{out}");
    assert!(conn.wants_close());
}

#[test]
fn rfc9112_9_6_drain_lets_a_response_in_progress_finish_then_closes() {
    let app = app();
    let mut conn = HttpConn::new(HttpLimits::default());
    let mut buf = b"GET /bytes/100000 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    let mut obuf = vec![0u8; 1000];
    let now = Instant::from_secs(1);
    let p = conn.process(now, &app, &buf, &mut obuf);
    buf.drain(..p.consumed);
    let mut out = obuf[..p.produced].to_vec();
    conn.begin_drain();
    assert!(!conn.wants_close(), "the response is not cut");
    pump(&mut conn, &app, now, &mut buf, &mut out, &mut obuf);
    let text = show(&out);
    let body_at = text.find("\r\n\r\n").unwrap() + 4;
    assert_eq!(out.len() - body_at, 100_000, "the whole body");
    assert!(conn.wants_close());
}

#[test]
fn latency_is_measured_from_the_head_to_the_last_byte_of_the_answer() {
    use crate::histogram::BOUNDS_US;
    let app = app();
    let mut conn = HttpConn::new(HttpLimits::default());
    let t0 = Instant::from_secs(1);
    let get = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    // Answered within the call: 0 µs.
    let mut out = vec![0u8; 4096];
    let p = conn.process(t0, &app, get, &mut out);
    assert_eq!(p.consumed, get.len());
    // The next answer needs two calls, 3 ms apart (the transport had room for 20 bytes).
    let p = conn.process(t0, &app, get, &mut out[..20]);
    assert_eq!(p.produced, 20);
    conn.process(
        t0 + Duration::from_millis(3),
        &app,
        &get[p.consumed..],
        &mut out,
    );
    let h = conn.stats().latency;
    assert_eq!(h.count(), 2);
    assert_eq!(h.buckets[0], 1);
    let at_3ms = BOUNDS_US.iter().position(|&b| 3_000 <= b).unwrap();
    assert_eq!(h.buckets[at_3ms], 1);
    assert_eq!(h.sum_us, 3_000);
    // An interim 100 Continue is not an answer: one observation for the request.
    let mut conn = HttpConn::new(HttpLimits::default());
    let post =
        b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
    let p = conn.process(t0, &app, post, &mut out);
    assert!(out[..p.produced].starts_with(b"HTTP/1.1 100 Continue"));
    conn.process(t0 + Duration::from_millis(1), &app, b"hi", &mut out);
    assert_eq!(conn.stats().latency.count(), 1);
    assert_eq!(conn.stats().latency.sum_us, 1_000);
}

//! Timers, the peer's close, counters, the `Date`, and graceful drain (RFC 9112 §9.6).

use super::*;

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
fn no_input_between_requests_changes_nothing_but_ends_what_waited_for_it() {
    let app = app();
    let mut out = [0u8; 4096];
    let t0 = Instant::from_secs(5);
    // Between keep-alive requests: a call without input (a transport's extra round) leaves
    // the connection as it was, its timers included.
    let mut conn = HttpConn::new(HttpLimits::default());
    let p = conn.process(
        t0,
        &app,
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        &mut out,
    );
    assert!(p.produced > 0);
    let before = format!("{conn:?}");
    let p = conn.process(t0 + Duration::from_secs(1), &app, b"", &mut out);
    assert_eq!(p, Progress::default());
    assert_eq!(format!("{conn:?}"), before);
    // An answer that closes, a peer's EOF: the call without input still ends the connection.
    let mut conn = HttpConn::new(HttpLimits::default());
    let close = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let p = conn.process(t0, &app, close, &mut out[..40]);
    assert_eq!(p.produced, 40, "the answer waits for room");
    let p = conn.process(t0, &app, b"", &mut out);
    assert!(p.produced > 0);
    assert!(conn.wants_close());
    let mut conn = HttpConn::new(HttpLimits::default());
    let _ = conn.process(
        t0,
        &app,
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        &mut out,
    );
    conn.peer_closed(t0);
    let _ = conn.process(t0, &app, b"", &mut out);
    assert!(conn.wants_close());
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
    let _ = conn.process(
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
    let _ = conn.process(
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
    let _ = conn.process(t0 + Duration::from_millis(1), &app, b"hi", &mut out);
    assert_eq!(conn.stats().latency.count(), 1);
    assert_eq!(conn.stats().latency.sum_us, 1_000);
}

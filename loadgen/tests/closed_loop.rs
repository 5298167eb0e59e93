//! Closed loop and churn against test servers: exact counts, pipelining depth, one connection
//! per churned request, bodies verified byte for byte. Nothing here depends on speed.

mod common;

use std::time::Duration;

use common::{chunked, gateway_like, ok, response, start, start_with, Reply};
use loadgen::response::pattern;
use loadgen::{BodyCheck, ErrorCounts};

#[test]
fn a_request_count_is_exact_over_threads_and_connections() {
    let server = start(gateway_like);
    let mut s = server.scenario("/health", 1000);
    s.connections = 5;
    s.threads = 2;
    let r = loadgen::run(&s).unwrap();
    assert_eq!(r.requests, 1000);
    assert_eq!(r.ok, 1000);
    assert_eq!(r.errors, ErrorCounts::default());
    assert_eq!(server.requests(), 1000);
    assert_eq!(server.accepts(), 5, "keep-alive: one connection per slot");
    assert_eq!(r.latency_us.count, 1000);
    assert!(r.latency_us.max >= r.latency_us.p50 && r.latency_us.p50 > 0.0);
    assert!(r.throughput_rps > 0.0);
}

#[test]
fn pipelining_keeps_depth_requests_outstanding_and_no_more() {
    // The server reads only every 5 ms, so whatever loadgen has outstanding piles up in its
    // socket and arrives in one read.
    let server = start_with(Duration::from_millis(5), gateway_like);
    let mut s = server.scenario("/bytes/100", 400);
    s.pipeline = 8;
    s.expect.body = BodyCheck::Pattern;
    s.expect.body_len = Some(100);
    let r = loadgen::run(&s).unwrap();
    assert_eq!((r.ok, r.requests), (400, 400));
    assert_eq!(server.requests(), 400);
    let batch = server.max_batch();
    assert!(
        (2..=8).contains(&batch),
        "max requests seen at once: {batch}"
    );

    let server = start_with(Duration::from_millis(5), gateway_like);
    let mut s = server.scenario("/health", 40);
    s.pipeline = 1;
    let r = loadgen::run(&s).unwrap();
    assert_eq!(r.ok, 40);
    assert_eq!(server.max_batch(), 1, "no pipelining asked for");
}

#[test]
fn churn_opens_one_connection_per_request() {
    // A server that honours Connection: close, and one that ignores it (loadgen then closes).
    for honours_close in [true, false] {
        let server = start(move |req| {
            let body = pattern(10);
            if honours_close && req.close {
                Reply::SendThenClose(response(200, &body, true))
            } else {
                Reply::Send(response(200, &body, false))
            }
        });
        let mut s = server.scenario("/bytes/10", 200);
        s.churn = true;
        s.connections = 4;
        s.expect.body = BodyCheck::Pattern;
        s.expect.body_len = Some(10);
        let r = loadgen::run(&s).unwrap();
        assert_eq!(r.ok, 200, "{r:?}");
        assert_eq!(server.accepts(), 200);
        assert_eq!(server.requests(), 200);
        assert_eq!(
            server
                .counters
                .close_requests
                .load(std::sync::atomic::Ordering::SeqCst),
            200
        );
        assert_eq!(
            server
                .counters
                .max_per_connection
                .load(std::sync::atomic::Ordering::SeqCst),
            1
        );
        assert_eq!(r.connections.established, 200);
        assert_eq!(r.connect_latency_us.count, 200);
    }
}

#[test]
fn echo_and_chunked_bodies_are_verified_byte_for_byte() {
    let server = start(gateway_like);
    let mut s = server.scenario("/echo", 100);
    s.method = "POST".into();
    s.body_size = 70_000;
    s.pipeline = 2;
    s.expect.body = BodyCheck::Pattern;
    s.expect.body_len = s.implied_body_len();
    assert_eq!(s.expect.body_len, Some(70_000));
    let r = loadgen::run(&s).unwrap();
    assert_eq!(r.ok, 100, "{:?}", r.errors);
    assert!(r.bytes_sent >= 100 * 70_000);

    let server = start(|_| Reply::Send(chunked(&pattern(5000), 777)));
    let mut s = server.scenario("/bytes/5000", 100);
    s.pipeline = 4;
    s.expect.body = BodyCheck::Pattern;
    s.expect.body_len = Some(5000);
    let r = loadgen::run(&s).unwrap();
    assert_eq!(r.ok, 100, "{:?}", r.errors);
}

#[test]
fn every_response_is_checked_not_a_sample() {
    // One response in ten has one wrong byte, at a different place each time.
    let server = start(|req| {
        let mut body = pattern(1000);
        if req.index % 10 == 3 {
            body[(req.index as usize * 37) % 1000] ^= 0x20;
        }
        Reply::Send(ok(&body))
    });
    let mut s = server.scenario("/bytes/1000", 500);
    s.pipeline = 4;
    s.expect.body = BodyCheck::Pattern;
    s.expect.body_len = Some(1000);
    let r = loadgen::run(&s).unwrap();
    assert_eq!(r.errors.body_bytes, 50);
    assert_eq!(r.ok, 450);
    assert_eq!(r.requests, 500);
}

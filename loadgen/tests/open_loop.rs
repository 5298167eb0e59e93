//! The open loop: coordinated-omission correction, request counts set by the timetable (not
//! by the machine's speed), warm-up, churn, and no spinning. Assertions are on counts; the
//! only clock-related one (CPU time) has a bound a correct client misses by far.

mod common;

use std::time::Duration;

use common::{gateway_like, ok, start, Reply};
use loadgen::Stop;

#[test]
fn a_stall_counts_for_every_request_due_during_it() {
    // 200 requests per second on one connection; request 40 (due at 200 ms) is held 200 ms.
    // The 20 requests due in the first 100 ms of the stall cannot be answered before it ends,
    // so each took at least 100 ms counted from its due time. A client that measures from
    // the actual send (coordinated omission) sees only the stalled request that slow.
    let stall = Duration::from_millis(200);
    let server = start(move |req| {
        if req.index == 40 {
            Reply::After(stall, ok(b"late"))
        } else {
            Reply::Send(ok(b"ok"))
        }
    });
    let mut s = server.scenario("/", 0);
    s.connections = 1;
    s.rate = Some(200.0);
    s.stop = Stop::Duration(Duration::from_secs(1));
    let r = loadgen::run(&s).unwrap();
    assert_eq!(r.requests, 200, "{r:?}");
    assert_eq!(r.ok, 200, "{:?}", r.errors);

    let half = stall / 2;
    let corrected = r.count_at_least(half);
    let uncorrected = r.uncorrected_count_at_least(half);
    assert!(
        corrected >= 20,
        "corrected: {corrected} requests took >= 100 ms"
    );
    assert!(
        uncorrected < corrected,
        "uncorrected {uncorrected} vs corrected {corrected}"
    );
    assert!(r.count_at_least(stall) >= 1);
    assert!(r.latency_us.max >= stall.as_micros() as f64);
    // Those requests waited for the busy connection, and the send lag says so.
    let lag = r.send_lag_us.expect("open loop reports the send lag");
    assert!(lag.max >= half.as_micros() as f64, "{lag:?}");
}

#[test]
fn the_request_count_follows_the_rate_not_the_machine() {
    let server = start(gateway_like);
    let mut s = server.scenario("/health", 0);
    s.connections = 4;
    s.rate = Some(2000.0);
    s.stop = Stop::Duration(Duration::from_secs(2));
    let r = loadgen::run(&s).unwrap();
    // The timetable holds exactly 4000 requests; each is sent, late if need be, and counted.
    assert!((3900..=4100).contains(&r.requests), "{}", r.requests);
    assert!(r.ok >= 3900, "{:?}", r.errors);
    assert!((3900..=4100).contains(&server.requests()));
    // Not spinning: a client that polls would burn about one CPU second per second.
    let cpu = r.cpu.user_s + r.cpu.system_s;
    assert!(
        cpu < 0.5 * r.elapsed_s,
        "loadgen used {cpu:.2} s of CPU in {:.2} s",
        r.elapsed_s
    );
}

#[test]
fn a_request_count_and_two_threads_share_one_timetable() {
    let server = start(gateway_like);
    let mut s = server.scenario("/health", 300);
    s.connections = 4;
    s.threads = 2;
    s.rate = Some(1000.0);
    let r = loadgen::run(&s).unwrap();
    assert_eq!((r.requests, r.ok), (300, 300));
    assert_eq!(server.requests(), 300);
}

#[test]
fn warmup_requests_are_sent_but_not_counted() {
    let server = start(gateway_like);
    let mut s = server.scenario("/health", 0);
    s.rate = Some(200.0);
    s.warmup = Duration::from_millis(500);
    s.stop = Stop::Duration(Duration::from_millis(500));
    let r = loadgen::run(&s).unwrap();
    assert_eq!(r.requests, 100);
    assert_eq!(server.requests(), 200);
}

#[test]
fn open_loop_churn_opens_a_connection_per_due_request() {
    let server = start(|req| {
        if req.close {
            Reply::SendThenClose(common::response(200, b"bye", true))
        } else {
            Reply::Send(ok(b"?"))
        }
    });
    let mut s = server.scenario("/", 0);
    s.churn = true;
    s.connections = 4;
    s.rate = Some(200.0);
    s.stop = Stop::Duration(Duration::from_millis(500));
    let r = loadgen::run(&s).unwrap();
    assert_eq!((r.requests, r.ok), (100, 100), "{:?}", r.errors);
    assert_eq!(server.accepts(), 100);
    assert_eq!(r.connections.established, 100);
}

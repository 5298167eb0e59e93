//! Every way a request can fail lands in its own counter, and every counted request ends
//! exactly once (`requests == ok + failed`).

mod common;

use std::time::Duration;

use common::{ok, response, start, Reply};
use loadgen::response::pattern;
use loadgen::{Error, ErrorKind, Report, Scenario, Stop, Target};

fn only(r: &Report, kind: ErrorKind, n: u64) {
    assert_eq!(r.errors.get(kind), n, "{kind:?}: {:?}", r.errors);
    assert_eq!(r.errors.total(), n, "other kinds too: {:?}", r.errors);
    assert_eq!(r.requests, r.ok + r.failed);
}

#[test]
fn a_server_that_resets_gives_reset_errors() {
    let server = start(|_| Reply::Reset);
    let r = loadgen::run(&server.scenario("/", 20)).unwrap();
    only(&r, ErrorKind::Reset, 20);
    assert_eq!(r.ok, 0);
    assert_eq!(server.requests(), 20);
}

#[test]
fn a_server_that_stalls_gives_timeouts() {
    let server = start(|_| Reply::Stall);
    let mut s = server.scenario("/", 4);
    s.timeout = Duration::from_millis(300);
    let r = loadgen::run(&s).unwrap();
    only(&r, ErrorKind::Timeout, 4);
}

#[test]
fn a_wrong_status_is_a_status_error_and_the_connection_goes_on() {
    let server = start(|req| {
        if req.index % 2 == 0 {
            Reply::Send(response(503, b"busy", false))
        } else {
            Reply::Send(ok(b"fine"))
        }
    });
    let r = loadgen::run(&server.scenario("/", 100)).unwrap();
    only(&r, ErrorKind::Status, 50);
    assert_eq!(r.ok, 50);
    assert_eq!(
        server.accepts(),
        2,
        "a bad status does not cost the connection"
    );
}

#[test]
fn a_body_cut_short_is_a_short_body() {
    let server = start(|_| {
        let mut bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec();
        bytes.extend_from_slice(&pattern(50));
        Reply::SendThenClose(bytes)
    });
    let r = loadgen::run(&server.scenario("/bytes/100", 10)).unwrap();
    only(&r, ErrorKind::ShortBody, 10);
}

#[test]
fn a_complete_body_of_the_wrong_length_is_a_length_error() {
    let server = start(|_| Reply::Send(ok(&pattern(10))));
    let mut s = server.scenario("/bytes/20", 30);
    s.expect.body_len = Some(20);
    s.pipeline = 3;
    let r = loadgen::run(&s).unwrap();
    only(&r, ErrorKind::BodyLength, 30);
}

#[test]
fn a_close_without_an_answer_is_closed_and_garbage_is_protocol() {
    let server = start(|_| Reply::Close);
    let r = loadgen::run(&server.scenario("/", 10)).unwrap();
    only(&r, ErrorKind::Closed, 10);
    assert_eq!(r.connections.closed_by_server, 10);

    let server = start(|_| Reply::Send(b"HTTP/1.1 2OO OK\r\n\r\n".to_vec()));
    let r = loadgen::run(&server.scenario("/", 10)).unwrap();
    only(&r, ErrorKind::Protocol, 10);
}

#[test]
fn a_pipelined_close_fails_the_requests_behind_it() {
    // Every connection: the first response says Connection: close; loadgen had 4 out.
    let server = common::start_with(Duration::from_millis(20), |_| {
        Reply::SendThenClose(response(200, b"x", true))
    });
    let mut s = server.scenario("/", 40);
    s.pipeline = 4;
    s.connections = 1;
    let r = loadgen::run(&s).unwrap();
    assert_eq!(r.requests, 40);
    assert!(r.ok >= 10, "{r:?}");
    assert_eq!(r.ok + r.errors.closed, 40, "{:?}", r.errors);
}

#[test]
fn churn_against_a_closed_port_counts_connect_errors() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut s = Scenario::new(Target::from_addr(addr, "/").unwrap());
    s.churn = true;
    s.connections = 3;
    s.stop = Stop::Requests(50);
    let r = loadgen::run(&s).unwrap();
    only(&r, ErrorKind::Connect, 50);
    assert_eq!(r.connections.failed, 50);
    assert_eq!(r.connections.established, 0);

    // Keep-alive needs its connections before it starts: that is an error, not a report.
    s.churn = false;
    match loadgen::run(&s) {
        Err(Error::Connect { addr: a, .. }) => assert_eq!(a, addr),
        other => panic!("expected a connect error, got {other:?}"),
    }
}

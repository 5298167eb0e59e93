//! The access-log record of every answer: what it says, that every way of feeding the same
//! bytes gives the same records, and that answers ended outside `process` are not lost.

use super::*;
use crate::access::{AccessContext, AccessLogIo, AccessRecord, AccessSink, ConnLog, PathKind};

const CTX: AccessContext = AccessContext {
    client: None,
    port: 8080,
    path: PathKind::Kernel,
};

fn conn_log() -> ConnLog {
    let mut log = ConnLog::default();
    log.set_context(Some(CTX));
    log
}

/// Feeds `input` cut at `cuts` with `out_cap`-byte output, time advancing 1 ms per round,
/// then reports the close when `eof`; returns the records and the bytes written.
fn logged(input: &[u8], cuts: &[usize], out_cap: usize, eof: bool) -> (Vec<AccessRecord>, usize) {
    let app = app();
    let mut conn = HttpConn::new(HttpLimits::default());
    let mut log = conn_log();
    let mut sink = AccessSink::with_capacity(64);
    let mut now = Instant::from_secs(1);
    let mut buf = Vec::new();
    let mut obuf = vec![0u8; out_cap];
    let mut written = 0;
    let mut at = 0;
    let mut pump = |conn: &mut HttpConn,
                    buf: &mut Vec<u8>,
                    now: &mut Instant,
                    log: &mut ConnLog,
                    sink: &mut AccessSink| {
        for _ in 0..1_000_000 {
            *now += Duration::from_millis(1);
            let io = AccessLogIo {
                conn: &mut *log,
                sink: &mut *sink,
            };
            let p = conn.process_logged(*now, &app, buf, &mut obuf, io);
            buf.drain(..p.consumed);
            written += p.produced;
            if p.consumed == 0 && p.produced == 0 {
                return;
            }
        }
        panic!("process never settles");
    };
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        buf.extend_from_slice(&input[at..cut]);
        at = cut;
        pump(&mut conn, &mut buf, &mut now, &mut log, &mut sink);
    }
    if eof {
        conn.peer_closed(now);
        pump(&mut conn, &mut buf, &mut now, &mut log, &mut sink);
        if let Some(f) = conn.take_access_record() {
            sink.push(log.complete(f));
        }
    }
    (sink.records().to_vec(), written)
}

fn summary(r: &AccessRecord) -> (String, String, u16, u64, u64, bool) {
    (
        String::from_utf8_lossy(r.method()).into_owned(),
        String::from_utf8_lossy(r.target()).into_owned(),
        r.status,
        r.bytes_in,
        r.bytes_out,
        r.completed,
    )
}

#[test]
fn each_pipelined_answer_gets_one_record_with_its_own_bytes() {
    let a = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    let b = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    let c = "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n";
    let input = format!("{a}{b}{c}");
    let (records, written) = logged(input.as_bytes(), &[], 65536, false);
    let got: Vec<_> = records.iter().map(summary).collect();
    assert_eq!(got.len(), 3, "{records:?}");
    assert_eq!(
        (got[0].0.as_str(), got[0].1.as_str(), got[0].2),
        ("GET", "/health", 200)
    );
    assert_eq!((got[1].0.as_str(), got[1].2), ("POST", 200));
    assert_eq!((got[2].1.as_str(), got[2].2), ("/nowhere", 404));
    // Each request's head and body, each answer's bytes: they add up to the connection's.
    assert_eq!(got[0].3, a.len() as u64);
    assert_eq!(got[1].3, b.len() as u64);
    assert_eq!(got[2].3, c.len() as u64);
    assert_eq!(
        records.iter().map(|r| r.bytes_out).sum::<u64>(),
        written as u64
    );
    assert!(records
        .iter()
        .all(|r| r.completed && r.port == 8080 && r.path == PathKind::Kernel));
    assert!(records.iter().all(|r| r.version_minor == Some(1)));
    assert!(records[0].received <= records[1].received);
}

#[test]
fn records_do_not_depend_on_how_bytes_arrive() {
    let input = b"GET /bytes/3000 HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\n\
                  Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /health HTTP/1.0\r\n\r\n";
    let reference: Vec<_> = logged(input, &[], 65536, false)
        .0
        .iter()
        .map(summary)
        .collect();
    assert_eq!(reference.len(), 3);
    for cap in [1, 7, 64] {
        let bytewise: Vec<usize> = (1..input.len()).collect();
        let got: Vec<_> = logged(input, &bytewise, cap, false)
            .0
            .iter()
            .map(summary)
            .collect();
        assert_eq!(got, reference, "byte by byte, output {cap}");
    }
}

#[test]
fn a_refused_head_is_logged_with_its_status() {
    let (records, _) = logged(b"GET / HTTP/1.1\r\n\r\n", &[], 65536, false); // no Host
    assert_eq!(records.len(), 1);
    assert_eq!(summary(&records[0]).2, 400);
    assert_eq!(records[0].target(), b"/");
    let (records, _) = logged(b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n", &[], 65536, false);
    assert_eq!(
        (records[0].status, records[0].method()),
        (501, &b"BREW"[..])
    );
}

#[test]
fn an_answer_cut_by_the_transport_is_logged_as_cut() {
    // The connection goes away while a 1 MB answer is half written.
    let app = app();
    let mut conn = HttpConn::new(HttpLimits::default());
    let mut log = conn_log();
    let mut sink = AccessSink::with_capacity(4);
    let mut out = [0u8; 4096];
    let t0 = Instant::from_secs(1);
    let req = b"GET /bytes/1000000 HTTP/1.1\r\nHost: x\r\n\r\n";
    let io = AccessLogIo {
        conn: &mut log,
        sink: &mut sink,
    };
    let p = conn.process_logged(t0, &app, req, &mut out, io);
    assert_eq!((p.consumed, p.produced), (req.len(), out.len()));
    assert!(sink.is_empty(), "not finished yet");
    let f = conn
        .close_access(t0 + Duration::from_millis(5))
        .expect("a cut answer");
    let r = log.complete(f);
    assert!(!r.completed);
    assert_eq!(
        (r.status, r.bytes_in, r.bytes_out),
        (200, req.len() as u64, 4096)
    );
    assert_eq!((r.target(), r.port), (&b"/bytes/1000000"[..], 8080));
    assert_eq!(r.duration, Duration::from_millis(5));
    assert!(conn.close_access(t0).is_none(), "taken once");
}

#[test]
fn an_echo_body_that_goes_bad_half_way_is_logged_as_cut() {
    // The answer to a chunked echo starts with the first chunk; a bad chunk later cuts it.
    let input = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                  3\r\nabc\r\nZZ\r\n";
    let (records, written) = logged(input, &[], 65536, false);
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(!records[0].completed);
    assert_eq!(records[0].bytes_out, written as u64);
}

#[test]
fn a_header_timeout_is_logged_as_408_without_a_request_line() {
    let app = app();
    let mut conn = HttpConn::new(HttpLimits::default());
    let mut log = conn_log();
    let mut sink = AccessSink::with_capacity(4);
    let mut out = [0u8; 4096];
    let t0 = Instant::from_secs(1);
    let io = AccessLogIo {
        conn: &mut log,
        sink: &mut sink,
    };
    let p = conn.process_logged(t0, &app, b"GET / HT", &mut out, io);
    assert_eq!(p.consumed, 0);
    let late = t0 + HttpLimits::default().header_timeout;
    conn.handle_timeout(late);
    let io = AccessLogIo {
        conn: &mut log,
        sink: &mut sink,
    };
    let p = conn.process_logged(late, &app, b"GET / HT", &mut out, io);
    assert!(p.produced > 0);
    assert_eq!(sink.len(), 1);
    let r = &sink.records()[0];
    assert_eq!((r.status, r.method()), (408, &b""[..]));
    assert!(r.completed);
}

#[test]
fn an_unlogged_call_keeps_nothing_for_a_later_logged_one() {
    // Answers ended by `process` (no log lent) are not logged by a later `process_logged`.
    let app = app();
    let mut conn = HttpConn::new(HttpLimits::default());
    let mut log = conn_log();
    let mut sink = AccessSink::with_capacity(4);
    let mut out = [0u8; 4096];
    let req = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    let p = conn.process(Instant::from_secs(1), &app, req, &mut out);
    assert!(p.produced > 0);
    assert!(conn.take_access_record().is_none());
    let io = AccessLogIo {
        conn: &mut log,
        sink: &mut sink,
    };
    let p = conn.process_logged(Instant::from_secs(2), &app, req, &mut out, io);
    assert!(p.produced > 0);
    assert_eq!(sink.len(), 1, "only the logged call's answer");
    assert_eq!(sink.records()[0].received, Instant::from_secs(2));
}

#[test]
fn the_connection_state_stays_small_and_inline() {
    // The record's text is kept by the owner's ConnLog, not by every HttpConn.
    assert!(std::mem::size_of::<crate::access::LogMarks>() <= 96);
    assert!(!std::mem::needs_drop::<HttpConn>());
}

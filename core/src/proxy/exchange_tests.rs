//! Tests of `proxy::exchange`, each named after the rule it proves. The client's bytes are
//! checked as a client reads them: its head parsed with httparse, its body de-framed by the
//! small decoder below, independent of the code under test.

use super::*;
use crate::proxy::balance::Outcome;
use proptest::prelude::*;

const T0: Instant = Instant::from_secs(100);

fn via() -> ClientHeadRules<'static> {
    ClientHeadRules::new(crate::proxy::response::ViaName::new(b"gw").expect("a token"))
}

fn spec() -> ExchangeSpec {
    ExchangeSpec {
        request: RequestKind::Other,
        client_version_minor: 1,
        client_keep_alive: true,
        expect_continue: false,
        idempotent: true,
        body: BodyFraming::None,
        limits: UpstreamLimits::default(),
        timeouts: Timeouts::default(),
        reused_connection: false,
        date: None,
    }
}

/// An exchange whose connection is up at `T0`.
fn connected(spec: ExchangeSpec) -> Exchange {
    let mut ex = Exchange::new(T0, spec);
    ex.connected(T0);
    ex
}

/// The response as the client reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ClientView {
    /// Every head the client got (interim and final), byte for byte.
    heads: Vec<u8>,
    interim: Vec<u16>,
    status: u16,
    fields: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    /// The body's framing said it ended (close-delimited bodies: always).
    complete: bool,
}

impl ClientView {
    fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// De-chunks `b` (RFC 9112 §7.1, no extensions or trailers: the gateway writes none). Returns
/// the data, whether the last chunk and the empty trailer section were seen, and the bytes
/// used.
fn dechunk(b: &[u8]) -> (Vec<u8>, bool, usize) {
    let mut data = Vec::new();
    let mut at = 0;
    loop {
        let Some(eol) = b[at..].windows(2).position(|w| w == b"\r\n") else {
            return (data, false, at);
        };
        let line = std::str::from_utf8(&b[at..at + eol]).expect("ASCII size line");
        assert!(!line.is_empty(), "empty chunk-size line");
        let size = usize::from_str_radix(line, 16).expect("hex chunk size");
        let start = at + eol + 2;
        if size == 0 {
            if b.len() < start + 2 {
                return (data, false, at);
            }
            assert_eq!(&b[start..start + 2], b"\r\n", "trailer section not empty");
            return (data, true, start + 2);
        }
        if b.len() < start + size + 2 {
            return (data, false, at);
        }
        data.extend_from_slice(&b[start..start + size]);
        assert_eq!(
            &b[start + size..start + size + 2],
            b"\r\n",
            "chunk not ended by CRLF"
        );
        at = start + size + 2;
    }
}

/// Reads the client's bytes: interim heads, the final head, then the body by its framing.
/// Panics on anything a client could not read, or on bytes after a delimited body.
fn client_view(bytes: &[u8], request: RequestKind) -> ClientView {
    let mut at = 0;
    let mut interim = Vec::new();
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let n = match resp.parse(&bytes[at..]).expect("a valid head") {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("client head incomplete: {bytes:?}"),
        };
        assert_eq!(resp.version, Some(1), "the gateway speaks HTTP/1.1");
        let status = resp.code.expect("status");
        let fields: Vec<(String, Vec<u8>)> = resp
            .headers
            .iter()
            .map(|h| (h.name.to_string(), h.value.to_vec()))
            .collect();
        at += n;
        if status < 200 {
            interim.push(status);
            continue;
        }
        let mut view = ClientView {
            heads: bytes[..at].to_vec(),
            interim,
            status,
            fields,
            body: Vec::new(),
            complete: true,
        };
        let rest = &bytes[at..];
        let chunked = view
            .field("transfer-encoding")
            .is_some_and(|v| v.ends_with(b"chunked"));
        let bodiless = request == RequestKind::Head || status == 204 || status == 304;
        if bodiless {
            assert!(rest.is_empty(), "bytes after a bodiless response");
        } else if chunked {
            let (data, complete, used) = dechunk(rest);
            view.body = data;
            view.complete = complete;
            assert!(
                !complete || used == rest.len(),
                "bytes after the last chunk"
            );
        } else if let Some(len) = view.field("content-length") {
            let len: usize = std::str::from_utf8(len).unwrap().parse().unwrap();
            assert!(rest.len() <= len, "bytes after the Content-Length");
            view.body = rest.to_vec();
            view.complete = rest.len() == len;
        } else {
            assert_eq!(view.field("connection"), Some(&b"close"[..]));
            view.body = rest.to_vec();
        }
        return view;
    }
}

/// What a drive produced.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Run {
    client: Vec<u8>,
    end: Option<End>,
    /// Upstream bytes never consumed.
    left: usize,
}

/// Offers `buf` and client room (`size()` bytes, or what the exchange asked for) until
/// nothing moves; returns the first error.
fn pump(
    ex: &mut Exchange,
    buf: &mut Vec<u8>,
    client: &mut Vec<u8>,
    size: &mut dyn FnMut() -> usize,
) -> Option<Failure> {
    let mut need = 0;
    // Each round makes progress or asks for room it gets next round, or stops.
    loop {
        if ex.end().is_some() {
            return None;
        }
        let mut out = vec![0xAA; size().max(need)];
        match ex.upstream_data(T0, buf, &mut out, via()) {
            Err(f) => return Some(f),
            Ok(p) => {
                client.extend_from_slice(&out[..p.produced]);
                buf.drain(..p.consumed);
                need = p.room_needed.unwrap_or(0);
                if p.consumed == 0 && p.produced == 0 && p.room_needed.is_none() {
                    return None;
                }
            }
        }
    }
}

/// Delivers `upstream` in segments of the given sizes (cycled), pumping after each; then, if
/// `close`, the upstream's EOF and a last pump.
fn drive(
    ex: &mut Exchange,
    upstream: &[u8],
    segments: &[usize],
    size: &mut dyn FnMut() -> usize,
    close: bool,
) -> Run {
    let mut buf = Vec::new();
    let mut client = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < upstream.len() && ex.end().is_none() {
        let n = segments[i % segments.len()].max(1).min(upstream.len() - at);
        i += 1;
        buf.extend_from_slice(&upstream[at..at + n]);
        at += n;
        pump(ex, &mut buf, &mut client, size);
    }
    if close && ex.end().is_none() {
        ex.upstream_closed(T0);
        pump(ex, &mut buf, &mut client, size);
    }
    Run {
        client,
        end: ex.end(),
        left: buf.len() + (upstream.len() - at),
    }
}

/// The whole upstream response at once, a large client buffer.
fn run(spec: ExchangeSpec, upstream: &[u8], close: bool) -> (Exchange, Run) {
    let mut ex = connected(spec);
    let r = drive(
        &mut ex,
        upstream,
        &[upstream.len().max(1)],
        &mut || 1 << 16,
        close,
    );
    (ex, r)
}

fn failure(end: Option<End>) -> Failure {
    match end {
        Some(End::Failed(f)) => f,
        other => panic!("expected a failure, got {other:?}"),
    }
}

const DONE_REUSABLE: Option<End> = Some(End::Done {
    upstream_reusable: true,
});
const DONE_NOT_REUSABLE: Option<End> = Some(End::Done {
    upstream_reusable: false,
});

const LENGTH: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-A: 1\r\n\r\nhello world";
const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n\
4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\n";
const CHUNKED_DATA: &[u8] = b"Wikipedia in\r\n\r\nchunks.";
const UNTIL_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nuntil the upstream closes";

#[test]
fn is_idempotent_follows_rfc9110_9_2_2() {
    for m in ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"] {
        assert!(is_idempotent(m.as_bytes()), "{m}");
    }
    for m in ["POST", "PATCH", "CONNECT", "get", "FOO"] {
        assert!(!is_idempotent(m.as_bytes()), "{m}");
    }
}

#[test]
fn length_body_goes_to_the_client_with_its_content_length() {
    for minor in [0, 1] {
        let (ex, r) = run(
            ExchangeSpec {
                client_version_minor: minor,
                ..spec()
            },
            LENGTH,
            false,
        );
        assert_eq!(r.end, DONE_REUSABLE, "minor {minor}");
        let v = client_view(&r.client, RequestKind::Other);
        assert_eq!(v.status, 200);
        assert_eq!(v.body, b"hello world");
        assert!(v.complete);
        assert_eq!(v.field("content-length"), Some(&b"11"[..]));
        assert_eq!(v.field("x-a"), Some(&b"1"[..]));
        assert_eq!(v.field("via"), Some(&b"1.1 gw"[..]));
        let connection = (minor == 0).then_some(&b"keep-alive"[..]);
        assert_eq!(v.field("connection"), connection, "minor {minor}");
        assert_eq!(ex.balance_outcome(), Some(Outcome::Ok));
        assert_eq!(ex.bytes_to_client(), r.client.len() as u64);
        assert!(ex.client_keeps_connection());
        assert_eq!(r.left, 0);
    }
}

#[test]
fn chunked_body_is_rechunked_for_an_http11_client_byte_exact() {
    let (ex, r) = run(spec(), CHUNKED, false);
    assert_eq!(r.end, DONE_REUSABLE);
    let v = client_view(&r.client, RequestKind::Other);
    assert_eq!(v.body, CHUNKED_DATA);
    assert!(v.complete);
    assert_eq!(v.field("transfer-encoding"), Some(&b"chunked"[..]));
    assert_eq!(v.field("content-length"), None);
    assert!(ex.client_keeps_connection());
}

#[test]
fn until_close_body_is_chunked_for_an_http11_client_and_ends_at_the_close() {
    let (ex, r) = run(spec(), UNTIL_CLOSE, true);
    assert_eq!(r.end, DONE_NOT_REUSABLE);
    let v = client_view(&r.client, RequestKind::Other);
    assert_eq!(v.body, b"until the upstream closes");
    assert!(v.complete, "the last chunk was written after the close");
    assert!(ex.client_keeps_connection());
    // Before the close, the client has no end of body.
    let (_, open) = run(spec(), UNTIL_CLOSE, false);
    assert_eq!(open.end, None);
    assert!(!client_view(&open.client, RequestKind::Other).complete);
}

#[test]
fn rfc9112_6_1_http10_client_gets_chunked_and_until_close_bodies_close_delimited() {
    let s = ExchangeSpec {
        client_version_minor: 0,
        ..spec()
    };
    for (upstream, data, reusable) in [
        (CHUNKED, CHUNKED_DATA, true),
        (UNTIL_CLOSE, &b"until the upstream closes"[..], false),
    ] {
        let mut ex = connected(s);
        let mut r = drive(&mut ex, upstream, &[upstream.len()], &mut || 4096, false);
        if r.end.is_none() {
            ex.upstream_closed(T0); // the close-delimited upstream body ends here
            r.end = ex.end();
        }
        assert_eq!(
            r.end,
            Some(End::Done {
                upstream_reusable: reusable
            })
        );
        let v = client_view(&r.client, RequestKind::Other);
        assert_eq!(v.body, data);
        assert_eq!(v.field("transfer-encoding"), None);
        assert_eq!(v.field("connection"), Some(&b"close"[..]));
        assert!(
            !ex.client_keeps_connection(),
            "the body ends with the close"
        );
    }
}

#[test]
fn client_connection_close_is_written_when_the_client_is_not_kept() {
    let (ex, r) = run(
        ExchangeSpec {
            client_keep_alive: false,
            ..spec()
        },
        LENGTH,
        false,
    );
    let v = client_view(&r.client, RequestKind::Other);
    assert_eq!(v.field("connection"), Some(&b"close"[..]));
    assert!(!ex.client_keeps_connection());
}

#[test]
fn rfc9112_6_3_head_204_and_304_have_no_body() {
    let head = ExchangeSpec {
        request: RequestKind::Head,
        ..spec()
    };
    let (_, r) = run(
        head,
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
        false,
    );
    assert_eq!(r.end, DONE_REUSABLE);
    let v = client_view(&r.client, RequestKind::Head);
    assert_eq!(v.field("content-length"), Some(&b"10"[..]), "metadata kept");
    assert!(v.body.is_empty());
    for upstream in [
        &b"HTTP/1.1 204 No Content\r\n\r\n"[..],
        b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
    ] {
        let (_, r) = run(spec(), upstream, false);
        assert_eq!(r.end, DONE_REUSABLE);
        let v = client_view(&r.client, RequestKind::Other);
        assert!(v.body.is_empty());
        assert_eq!(v.field("transfer-encoding"), None);
    }
}

#[test]
fn rfc9110_15_2_every_1xx_is_forwarded_to_an_http11_client_and_none_to_http10() {
    // A proxy MUST forward 1xx responses it did not ask for itself, and MUST NOT send one to
    // an HTTP/1.0 client: two 100s, a 103 with its fields and a 102, then the answer.
    let upstream = [
        &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"[..],
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n",
        b"HTTP/1.1 102 Processing\r\n\r\n",
        LENGTH,
    ]
    .concat();
    let expect = ExchangeSpec {
        expect_continue: true,
        body: BodyFraming::Length(3),
        ..spec()
    };
    for s in [
        expect,
        ExchangeSpec {
            body: BodyFraming::Length(3),
            ..spec()
        },
        spec(),
    ] {
        let mut ex = connected(s);
        let r = drive(&mut ex, &upstream, &[upstream.len()], &mut || 4096, false);
        let v = client_view(&r.client, RequestKind::Other);
        assert_eq!(v.interim, [100, 100, 103, 102], "{s:?}");
        assert!(
            r.client.windows(5).any(|w| w == b"Link:"),
            "103's fields kept"
        );
        assert_eq!(v.body, b"hello world");
    }
    for s in [
        ExchangeSpec {
            client_version_minor: 0,
            ..expect
        },
        ExchangeSpec {
            client_version_minor: 0,
            ..spec()
        },
    ] {
        let (_, r) = run(s, &upstream, false);
        let v = client_view(&r.client, RequestKind::Other);
        assert!(v.interim.is_empty(), "{s:?}");
        assert_eq!((v.status, v.body.as_slice()), (200, &b"hello world"[..]));
    }
}

#[test]
fn rfc9110_6_6_1_an_answer_without_date_gets_the_gateways() {
    const DATE: &[u8; 29] = b"Sun, 06 Dec 2026 11:00:00 GMT";
    let (_, r) = run(
        ExchangeSpec {
            date: Some(*DATE),
            ..spec()
        },
        LENGTH,
        false,
    );
    let text = String::from_utf8_lossy(&r.client).into_owned();
    assert!(
        text.contains("\r\nDate: Sun, 06 Dec 2026 11:00:00 GMT\r\n"),
        "{text}"
    );
    let (_, r) = run(spec(), LENGTH, false);
    assert!(!String::from_utf8_lossy(&r.client).contains("Date:"));
}

#[test]
fn rfc9110_15_2_2_unrequested_101_is_a_502_with_no_client_byte() {
    let (ex, r) = run(
        spec(),
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
        false,
    );
    let f = failure(r.end);
    assert_eq!(
        f.cause,
        FailureCause::BadHead(ResponseError::UnrequestedUpgrade)
    );
    assert_eq!(f.client, ClientAction::Respond(GatewayStatus::BadGateway));
    assert!(r.client.is_empty());
    assert_eq!(ex.bytes_to_client(), 0);
}

#[test]
fn bad_upstream_framing_is_a_502_with_no_client_byte_and_a_failed_server() {
    for upstream in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
        b"HTTP/2.0 200 OK\r\n\r\n",
    ] {
        let (ex, r) = run(spec(), upstream, false);
        let f = failure(r.end);
        assert!(matches!(f.cause, FailureCause::BadHead(_)), "{f:?}");
        assert_eq!(f.client, ClientAction::Respond(GatewayStatus::BadGateway));
        assert!(!f.retryable, "a response byte arrived");
        assert!(r.client.is_empty());
        assert_eq!(ex.balance_outcome(), Some(Outcome::Failed));
    }
}

#[test]
fn bad_chunk_in_the_heads_own_call_is_still_a_502() {
    // The head and a broken chunk in one call: that call's output (the head) is dropped.
    let upstream = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    let mut ex = connected(spec());
    let mut out = [0u8; 4096];
    let f = ex.upstream_data(T0, upstream, &mut out, via()).unwrap_err();
    assert_eq!(f.cause, FailureCause::BadBody(BodyError::BadChunk));
    assert_eq!(f.client, ClientAction::Respond(GatewayStatus::BadGateway));
    assert_eq!(ex.bytes_to_client(), 0);
}

#[test]
fn truncated_or_broken_body_after_the_head_aborts_the_client() {
    for (upstream, cause) in [
        (
            &b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello"[..],
            BodyError::Truncated,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
            BodyError::Truncated,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n",
            BodyError::BadChunk,
        ),
    ] {
        let mut ex = connected(spec());
        // The head alone first, so the client's head has gone out.
        let split = upstream.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let r = drive(&mut ex, upstream, &[split, 1000], &mut || 4096, true);
        let f = failure(r.end);
        assert_eq!(f.cause, FailureCause::BadBody(cause));
        assert_eq!(f.client, ClientAction::Abort);
        assert!(!f.retryable);
        let v = client_view(&r.client, RequestKind::Other);
        assert!(!v.complete, "a cut body never looks complete");
        assert!(!ex.client_keeps_connection());
        assert_eq!(ex.balance_outcome(), Some(Outcome::Failed));
    }
}

#[test]
fn connect_failure_is_a_502_retryable_iff_idempotent() {
    for idempotent in [true, false] {
        let mut ex = Exchange::new(
            T0,
            ExchangeSpec {
                idempotent,
                ..spec()
            },
        );
        ex.connect_failed(T0);
        let f = failure(ex.end());
        assert_eq!(f.cause, FailureCause::ConnectFailed);
        assert_eq!(f.client, ClientAction::Respond(GatewayStatus::BadGateway));
        assert_eq!(f.retryable, idempotent);
        assert_eq!(ex.balance_outcome(), Some(Outcome::Failed));
        assert_eq!(ex.poll_timeout(), None);
    }
}

#[test]
fn reset_or_close_before_any_response_byte_is_retryable_iff_idempotent() {
    for idempotent in [true, false] {
        for close in [false, true] {
            let mut ex = Exchange::new(
                T0,
                ExchangeSpec {
                    idempotent,
                    reused_connection: true,
                    ..spec()
                },
            );
            if close {
                ex.upstream_closed(T0);
            } else {
                ex.upstream_reset(T0);
            }
            let f = failure(ex.end());
            let cause = if close {
                FailureCause::Closed
            } else {
                FailureCause::Reset
            };
            assert_eq!(f.cause, cause);
            assert_eq!(f.client, ClientAction::Respond(GatewayStatus::BadGateway));
            assert_eq!(
                f.retryable, idempotent,
                "idempotent {idempotent}, close {close}"
            );
        }
    }
}

#[test]
fn reset_after_a_response_byte_is_never_retried() {
    let mut ex = connected(spec());
    let mut out = [0u8; 4096];
    let p = ex
        .upstream_data(T0, b"HTTP/1.1 2", &mut out, via())
        .unwrap();
    assert_eq!(
        (p.consumed, p.produced),
        (0, 0),
        "a partial head is not consumed"
    );
    ex.upstream_reset(T0);
    let f = failure(ex.end());
    assert_eq!(f.cause, FailureCause::Reset);
    assert_eq!(f.client, ClientAction::Respond(GatewayStatus::BadGateway));
    assert!(!f.retryable);
    // After the head: the client's stream is aborted.
    let mut ex = connected(spec());
    let r = drive(
        &mut ex,
        &LENGTH[..LENGTH.len() - 3],
        &[1000],
        &mut || 4096,
        false,
    );
    assert_eq!(r.end, None);
    ex.upstream_reset(T0);
    let f = failure(ex.end());
    assert_eq!((f.client, f.retryable), (ClientAction::Abort, false));
}

#[test]
fn reset_after_the_whole_body_still_completes_the_client_but_not_the_pool() {
    let mut ex = connected(spec());
    let mut buf = CHUNKED.to_vec();
    let mut client = Vec::new();
    // One byte of client room at a time until the upstream body is all in but the client's
    // last chunk is not yet out.
    let upstream_done =
        |ex: &Exchange| matches!(ex.response, Response::Body { body, .. } if body.is_complete());
    let head_len = CHUNKED.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut out = [0u8; 4096];
    let p = ex
        .upstream_data(T0, &buf[..head_len], &mut out, via())
        .unwrap();
    client.extend_from_slice(&out[..p.produced]);
    buf.drain(..p.consumed);
    while !upstream_done(&ex) {
        let p = ex.upstream_data(T0, &buf, &mut out[..4], via()).unwrap();
        client.extend_from_slice(&out[..p.produced]);
        buf.drain(..p.consumed);
    }
    assert_eq!(ex.end(), None, "the last chunk is still to be written");
    ex.upstream_reset(T0);
    assert_eq!(ex.end(), None, "nothing of the response is lost");
    let mut out = [0u8; 64];
    let p = ex.upstream_data(T0, &buf, &mut out, via()).unwrap();
    client.extend_from_slice(&out[..p.produced]);
    assert_eq!(ex.end(), DONE_NOT_REUSABLE);
    let v = client_view(&client, RequestKind::Other);
    assert_eq!(v.body, CHUNKED_DATA);
    assert!(v.complete);
}

#[test]
fn connect_timeout_is_a_504_retryable_iff_idempotent() {
    for idempotent in [true, false] {
        let mut ex = Exchange::new(
            T0,
            ExchangeSpec {
                idempotent,
                ..spec()
            },
        );
        let at = T0 + Timeouts::default().connect;
        assert_eq!(ex.poll_timeout(), Some(at));
        ex.handle_timeout(at - Duration::from_micros(1));
        assert_eq!(ex.end(), None, "not before its deadline");
        ex.handle_timeout(at);
        let f = failure(ex.end());
        assert_eq!(f.cause, FailureCause::ConnectTimeout);
        assert_eq!(
            f.client,
            ClientAction::Respond(GatewayStatus::GatewayTimeout)
        );
        assert_eq!(f.retryable, idempotent);
    }
}

#[test]
fn no_head_within_the_read_timeout_is_a_504_not_retried() {
    let mut ex = connected(spec());
    let at = T0 + Timeouts::default().read;
    assert_eq!(ex.poll_timeout(), Some(at));
    // Partial head bytes do not extend the wait for the head.
    let mut out = [0u8; 4096];
    ex.upstream_data(T0 + Duration::from_secs(30), b"HTTP/1.1", &mut out, via())
        .unwrap();
    assert_eq!(ex.poll_timeout(), Some(at));
    ex.handle_timeout(at);
    let f = failure(ex.end());
    assert_eq!(f.cause, FailureCause::ReadTimeout);
    assert_eq!(
        f.client,
        ClientAction::Respond(GatewayStatus::GatewayTimeout)
    );
    assert!(!f.retryable);
    assert_eq!(ex.balance_outcome(), Some(Outcome::Failed));
}

#[test]
fn idle_body_past_the_idle_timeout_aborts_the_client() {
    let mut ex = connected(spec());
    let mut out = [0u8; 4096];
    let t1 = T0 + Duration::from_secs(1);
    let p = ex
        .upstream_data(t1, &LENGTH[..LENGTH.len() - 5], &mut out, via())
        .unwrap();
    assert!(p.produced > 0);
    let idle = Timeouts::default().idle;
    assert_eq!(ex.poll_timeout(), Some(t1 + idle));
    // A received byte restarts it.
    let t2 = t1 + Duration::from_secs(10);
    ex.upstream_data(t2, b"w", &mut out, via()).unwrap();
    assert_eq!(ex.poll_timeout(), Some(t2 + idle));
    ex.handle_timeout(t1 + idle);
    assert_eq!(ex.end(), None);
    ex.handle_timeout(t2 + idle);
    let f = failure(ex.end());
    assert_eq!(f.cause, FailureCause::IdleTimeout);
    assert_eq!(f.client, ClientAction::Abort);
    assert_eq!(ex.response_time(), Some(Duration::from_secs(1)));
}

#[test]
fn send_timeout_before_the_head_is_a_504() {
    let mut ex = connected(ExchangeSpec {
        body: BodyFraming::Length(10),
        ..spec()
    });
    let send = Timeouts::default().send;
    let mut up = [0u8; 64];
    let t1 = T0 + Duration::from_secs(5);
    ex.send_body(t1, b"abc", &mut up).unwrap();
    assert_eq!(ex.poll_timeout(), Some(t1 + send), "restarted by a write");
    ex.handle_timeout(t1 + send);
    let f = failure(ex.end());
    assert_eq!(f.cause, FailureCause::SendTimeout);
    assert_eq!(
        f.client,
        ClientAction::Respond(GatewayStatus::GatewayTimeout)
    );
    assert!(!f.retryable);
}

#[test]
fn length_request_body_is_copied_and_held_to_its_content_length() {
    let mut ex = connected(ExchangeSpec {
        body: BodyFraming::Length(10),
        ..spec()
    });
    let mut up = [0u8; 4];
    let p = ex.send_body(T0, b"0123456", &mut up).unwrap();
    assert_eq!(
        (p.consumed, p.produced),
        (4, 4),
        "bounded by the out buffer"
    );
    assert_eq!(&up, b"0123");
    assert_eq!(
        ex.send_body(T0, b"4567890", &mut [0u8; 64]),
        Err(RequestBodyError::LongerThanAnnounced)
    );
    assert_eq!(
        ex.finish_body(T0, &mut []),
        Err(RequestBodyError::ShorterThanAnnounced)
    );
    let mut up = [0u8; 64];
    let p = ex.send_body(T0, b"456789", &mut up).unwrap();
    assert_eq!(&up[..p.produced], b"456789");
    assert_eq!(ex.finish_body(T0, &mut []), Ok(Some(0)));
    assert_eq!(
        ex.send_body(T0, b"x", &mut up),
        Err(RequestBodyError::Finished)
    );
    assert_eq!(ex.bytes_to_upstream(), 10);
    // The request's end starts the wait for the head.
    assert_eq!(ex.poll_timeout(), Some(T0 + Timeouts::default().read));
}

#[test]
fn chunked_request_body_is_reframed_in_whole_chunks_as_room_allows() {
    let body: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
    for room in [6, 7, 20, 21, 22, 300, 4096] {
        let mut ex = connected(ExchangeSpec {
            body: BodyFraming::Chunked,
            ..spec()
        });
        let mut wire = Vec::new();
        let mut at = 0;
        while at < body.len() {
            let mut up = vec![0u8; room];
            let p = ex.send_body(T0, &body[at..], &mut up).unwrap();
            assert!(p.consumed > 0, "room {room}");
            assert!(p.produced <= room);
            wire.extend_from_slice(&up[..p.produced]);
            at += p.consumed;
        }
        assert_eq!(ex.finish_body(T0, &mut [0u8; 4]), Ok(None), "no room");
        let mut up = [0u8; 5];
        assert_eq!(ex.finish_body(T0, &mut up), Ok(Some(5)));
        wire.extend_from_slice(&up);
        let (data, complete, used) = dechunk(&wire);
        assert_eq!(data, body, "room {room}");
        assert!(complete && used == wire.len());
        assert_eq!(ex.bytes_to_upstream(), wire.len() as u64);
    }
    // Five bytes cannot carry a chunk and its CRLF.
    let mut ex = connected(ExchangeSpec {
        body: BodyFraming::Chunked,
        ..spec()
    });
    let p = ex.send_body(T0, b"abc", &mut [0u8; 5]).unwrap();
    assert_eq!((p.consumed, p.produced, p.room_needed), (0, 0, Some(6)));
}

#[test]
fn request_without_body_refuses_body_bytes() {
    let mut ex = connected(spec());
    assert!(!ex.may_send_body(T0));
    assert_eq!(
        ex.send_body(T0, b"x", &mut [0u8; 8]),
        Err(RequestBodyError::NoBody)
    );
}

#[test]
fn rfc9110_10_1_1_body_waits_for_100_continue_or_the_timer() {
    let s = ExchangeSpec {
        expect_continue: true,
        body: BodyFraming::Length(2),
        ..spec()
    };
    let mut ex = Exchange::new(T0, s);
    assert!(!ex.may_send_body(T0), "not before the connection");
    ex.connected(T0);
    assert!(!ex.may_send_body(T0));
    assert_eq!(
        ex.send_body(T0, b"ab", &mut [0u8; 8]),
        Err(RequestBodyError::NotYet)
    );
    let wait = Timeouts::default().expect_continue;
    assert_eq!(ex.poll_timeout(), Some(T0 + wait));
    assert!(
        ex.may_send_body(T0 + wait),
        "the body may go after the wait"
    );
    ex.handle_timeout(T0 + wait);
    assert_eq!(ex.end(), None);
    assert!(ex.may_send_body(T0 + wait));

    // The 100 releases it at once.
    let mut ex = connected(s);
    let mut out = [0u8; 4096];
    let p = ex
        .upstream_data(T0, b"HTTP/1.1 100 Continue\r\n\r\n", &mut out, via())
        .unwrap();
    assert!(p.produced > 0, "forwarded to the client that expects it");
    assert!(ex.may_send_body(T0));
    ex.send_body(T0, b"ab", &mut [0u8; 8]).unwrap();
    ex.finish_body(T0, &mut []).unwrap();
    let r = drive(&mut ex, LENGTH, &[LENGTH.len()], &mut || 4096, false);
    assert_eq!(r.end, DONE_REUSABLE);
}

#[test]
fn final_status_before_100_means_the_body_is_never_sent() {
    let mut ex = connected(ExchangeSpec {
        expect_continue: true,
        body: BodyFraming::Length(2),
        ..spec()
    });
    let r = drive(
        &mut ex,
        b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n",
        &[100],
        &mut || 4096,
        false,
    );
    assert_eq!(r.end, DONE_NOT_REUSABLE, "the upstream still awaits a body");
    assert!(!ex.may_send_body(T0 + Duration::from_secs(10)));
    assert_eq!(
        ex.send_body(T0, b"ab", &mut [0u8; 8]),
        Err(RequestBodyError::Ended)
    );
    // Before the response's end, the refusal says why.
    let mut ex = connected(ExchangeSpec {
        body: BodyFraming::Length(2),
        ..spec()
    });
    let head = b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 4\r\n\r\n";
    ex.upstream_data(T0, head, &mut [0u8; 4096], via()).unwrap();
    assert_eq!(ex.end(), None);
    assert_eq!(
        ex.send_body(T0, b"ab", &mut [0u8; 8]),
        Err(RequestBodyError::Answered)
    );
    assert_eq!(ex.finish_body(T0, &mut []), Err(RequestBodyError::Answered));
    assert_eq!(client_view(&r.client, RequestKind::Other).status, 417);
}

#[test]
fn upstream_5xx_is_passed_on_and_the_server_is_not_failed() {
    let (ex, r) = run(
        spec(),
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy",
        false,
    );
    assert_eq!(r.end, DONE_REUSABLE);
    assert_eq!(ex.status(), Some(503));
    assert_eq!(ex.balance_outcome(), Some(Outcome::Ok));
    assert_eq!(client_view(&r.client, RequestKind::Other).body, b"busy");
}

#[test]
fn upstream_reusable_only_when_everything_completed_and_keep_alive_allowed() {
    let (_, r) = run(spec(), LENGTH, false);
    assert_eq!(r.end, DONE_REUSABLE);
    let close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx";
    assert_eq!(run(spec(), close, false).1.end, DONE_NOT_REUSABLE);
    let http10 = b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx";
    assert_eq!(run(spec(), http10, false).1.end, DONE_NOT_REUSABLE);
    let http10_ka = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx";
    assert_eq!(run(spec(), http10_ka, false).1.end, DONE_REUSABLE);
    // Bytes past the response's end.
    let extra = [LENGTH, b"HTTP/1.1 200 OK\r\n"].concat();
    let (_, r) = run(spec(), &extra, false);
    assert_eq!(r.end, DONE_NOT_REUSABLE);
    assert_eq!(r.left, 17, "bytes past the end are not consumed");
    // The request body was not finished: an early response.
    let early = ExchangeSpec {
        body: BodyFraming::Length(5),
        ..spec()
    };
    let (_, r) = run(early, LENGTH, false);
    assert_eq!(r.end, DONE_NOT_REUSABLE);
}

#[test]
fn response_time_runs_from_the_request_end_to_the_final_head() {
    let mut ex = connected(ExchangeSpec {
        body: BodyFraming::Length(1),
        ..spec()
    });
    let t1 = T0 + Duration::from_millis(3);
    ex.send_body(t1, b"x", &mut [0u8; 4]).unwrap();
    ex.finish_body(t1, &mut []).unwrap();
    assert_eq!(ex.response_time(), None);
    let mut out = [0u8; 4096];
    ex.upstream_data(T0 + Duration::from_millis(10), LENGTH, &mut out, via())
        .unwrap();
    assert_eq!(ex.response_time(), Some(Duration::from_millis(7)));
    assert_eq!(ex.end(), DONE_REUSABLE);
}

/// Every response kind the backpressure tests stream, with the request kind and whether the
/// upstream closes after it.
fn responses() -> Vec<(Vec<u8>, bool)> {
    let long: Vec<u8> = (0..700u32).map(|i| b'a' + (i % 26) as u8).collect();
    let big_chunked = [
        &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2bc\r\n"[..],
        &long,
        b"\r\n1\r\nZ\r\n0\r\n\r\n",
    ]
    .concat();
    vec![
        (LENGTH.to_vec(), false),
        (CHUNKED.to_vec(), false),
        (UNTIL_CLOSE.to_vec(), true),
        (big_chunked, false),
        (
            [
                &b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"[..],
                b"HTTP/1.1 200 OK\r\nContent-Length: 700\r\n\r\n",
                &long,
            ]
            .concat(),
            false,
        ),
        ([&b"HTTP/1.1 200 OK\r\n\r\n"[..], &long].concat(), true),
    ]
}

/// A run as the client reads it: the heads byte for byte, the body de-framed (chunk
/// boundaries depend on the room each call had; the data may not), and how it ended.
fn as_read(r: &Run) -> (ClientView, Option<End>, usize) {
    (client_view(&r.client, RequestKind::Other), r.end, r.left)
}

fn reference(minor: u8, upstream: &[u8], close: bool) -> Run {
    let mut ex = connected(ExchangeSpec {
        client_version_minor: minor,
        ..spec()
    });
    drive(&mut ex, upstream, &[upstream.len()], &mut || 1 << 16, close)
}

#[test]
fn backpressure_every_client_buffer_size_gives_the_same_client_bytes() {
    for minor in [0, 1] {
        for (upstream, close) in responses() {
            let want = reference(minor, &upstream, close);
            assert!(matches!(want.end, Some(End::Done { .. })));
            for size in 1..=40 {
                let mut ex = connected(ExchangeSpec {
                    client_version_minor: minor,
                    ..spec()
                });
                let got = drive(&mut ex, &upstream, &[upstream.len()], &mut || size, close);
                assert_eq!(as_read(&got), as_read(&want), "minor {minor}, size {size}");
                if minor == 0 {
                    // Nothing is re-framed for an HTTP/1.0 client: every byte is the same.
                    assert_eq!(got.client, want.client, "size {size}");
                }
                assert_eq!(ex.bytes_to_client(), got.client.len() as u64);
            }
        }
    }
}

#[test]
fn chunk_size_line_goes_out_only_with_data() {
    // With three bytes of room, nothing of a new chunk is written.
    let mut ex = connected(spec());
    let head_len = CHUNKED.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut out = [0u8; 4096];
    let p = ex
        .upstream_data(T0, &CHUNKED[..head_len], &mut out, via())
        .unwrap();
    assert_eq!(p.consumed, head_len);
    let mut small = [0u8; 3];
    let p = ex
        .upstream_data(T0, &CHUNKED[head_len..], &mut small, via())
        .unwrap();
    assert_eq!((p.produced, p.room_needed), (0, Some(4)));
    let mut four = [0u8; 4];
    let p = ex
        .upstream_data(T0, &CHUNKED[head_len..], &mut four, via())
        .unwrap();
    assert_eq!(&four[..p.produced], b"1\r\nW");
}

#[test]
fn client_head_waits_for_room_and_says_how_much() {
    let mut ex = connected(spec());
    let mut out = [0u8; 8];
    let p = ex.upstream_data(T0, LENGTH, &mut out, via()).unwrap();
    let need = p.room_needed.expect("room asked for");
    assert_eq!((p.consumed, p.produced), (0, 0));
    let mut out = vec![0u8; need];
    let p = ex.upstream_data(T0, LENGTH, &mut out, via()).unwrap();
    assert_eq!(p.consumed, LENGTH.len());
    assert_eq!(ex.end(), DONE_REUSABLE);
}

proptest! {
    #[test]
    fn any_split_of_the_upstream_bytes_and_any_client_room_give_the_same_client_bytes(
        which in 0usize..6,
        minor in 0u8..2,
        segments in proptest::collection::vec(1usize..64, 1..8),
        sizes in proptest::collection::vec(1usize..64, 1..8),
    ) {
        let (upstream, close) = responses().swap_remove(which);
        let want = reference(minor, &upstream, close);
        let mut ex = connected(ExchangeSpec { client_version_minor: minor, ..spec() });
        let mut i = 0;
        let mut size = || {
            i += 1;
            sizes[i % sizes.len()]
        };
        let got = drive(&mut ex, &upstream, &segments, &mut size, close);
        prop_assert_eq!(as_read(&got), as_read(&want));
        if minor == 0 {
            prop_assert_eq!(got.client, want.client);
        }
    }
}

#[test]
fn client_head_fits_the_room_it_asks_for_even_from_the_tersest_upstream_head() {
    // Bare LFs, no space after the colons, no reason phrase: the client's copy grows most.
    let terse: Vec<u8> = [
        &b"HTTP/1.1 511 \n"[..],
        &b"a:\n".repeat(90),
        b"Transfer-Encoding:a,b,c,d,chunked\n\n0\r\n\r\n",
    ]
    .concat();
    let head_1xx: Vec<u8> = [&b"HTTP/1.1 103 \n"[..], &b"l:\n".repeat(90), b"\n", LENGTH].concat();
    let date = Some(*b"Sun, 06 Dec 2026 11:00:00 GMT");
    // A route's response fields add their length to the head.
    let ruled = crate::proxy::forward::ForwardRules::new(&crate::proxy::forward::ForwardConfig {
        response_set_headers: (0..20)
            .map(|i| (format!("X-Set-{i}"), "v".repeat(100)))
            .collect(),
        ..Default::default()
    })
    .unwrap();
    for (upstream, minor) in [(&terse, 1), (&terse, 0), (&head_1xx, 1)] {
        for (keep, date) in [(true, None), (false, None), (true, date), (false, date)] {
            for rules in [via(), ruled.client_head_rules()] {
                let mut ex = connected(ExchangeSpec {
                    client_version_minor: minor,
                    client_keep_alive: keep,
                    date,
                    ..spec()
                });
                let p = ex
                    .upstream_data(T0, upstream, &mut [0u8; 1], rules)
                    .unwrap();
                let need = p.room_needed.expect("the head does not fit one byte");
                let mut out = vec![0u8; need];
                let p = ex.upstream_data(T0, upstream, &mut out, rules).unwrap();
                assert!(
                    p.consumed > 0 && p.produced > 0,
                    "minor {minor}, keep {keep}, {} bytes of rules",
                    rules.added_len()
                );
            }
        }
    }
}

#[test]
fn until_close_body_past_the_body_limit_aborts_the_client() {
    let mut ex = connected(ExchangeSpec {
        limits: UpstreamLimits {
            max_body_len: 10,
            ..UpstreamLimits::default()
        },
        ..spec()
    });
    let upstream = b"HTTP/1.1 200 OK\r\n\r\n0123456789abc";
    let r = drive(&mut ex, upstream, &[19, 5, 100], &mut || 4096, true);
    let f = failure(r.end);
    assert_eq!(f.cause, FailureCause::BadBody(BodyError::TooLarge));
    assert_eq!(f.client, ClientAction::Abort);
    assert!(!client_view(&r.client, RequestKind::Other).complete);
}

proptest! {
    #[test]
    fn chunked_request_body_in_any_pieces_and_rooms_dechunks_to_the_same_body(
        body in proptest::collection::vec(any::<u8>(), 0..600),
        pieces in proptest::collection::vec(1usize..80, 1..6),
        rooms in proptest::collection::vec(6usize..90, 1..6),
    ) {
        let mut ex = connected(ExchangeSpec { body: BodyFraming::Chunked, ..spec() });
        let mut wire = Vec::new();
        let (mut at, mut i) = (0, 0);
        while at < body.len() {
            let piece = &body[at..(at + pieces[i % pieces.len()]).min(body.len())];
            let mut up = vec![0u8; rooms[i % rooms.len()]];
            i += 1;
            let p = ex.send_body(T0, piece, &mut up).unwrap();
            prop_assert!(p.consumed > 0, "six bytes always carry a one-byte chunk");
            wire.extend_from_slice(&up[..p.produced]);
            at += p.consumed;
        }
        let mut up = [0u8; 5];
        prop_assert_eq!(ex.finish_body(T0, &mut up), Ok(Some(5)));
        wire.extend_from_slice(&up);
        let (data, complete, used) = dechunk(&wire);
        prop_assert_eq!(data, body);
        prop_assert!(complete && used == wire.len());
    }
}

#[test]
fn a_chunked_put_with_expect_runs_in_the_documented_call_order_in_virtual_time() {
    let s = ExchangeSpec {
        expect_continue: true,
        idempotent: is_idempotent(b"PUT"),
        body: BodyFraming::Chunked,
        ..spec()
    };
    let mut ex = Exchange::new(T0, s);
    let mut now = T0 + Duration::from_millis(2);
    ex.connected(now);
    // Nothing from the upstream: wake at the expect timer, then send the body anyway.
    now = ex.poll_timeout().expect("the expect timer");
    assert_eq!(
        now,
        T0 + Duration::from_millis(2) + Timeouts::default().expect_continue
    );
    ex.handle_timeout(now);
    assert!(ex.may_send_body(now));
    let mut wire = Vec::new();
    let mut up = [0u8; 16];
    for piece in [&b"hello "[..], b"upstream"] {
        let mut at = 0;
        while at < piece.len() {
            let p = ex.send_body(now, &piece[at..], &mut up).unwrap();
            wire.extend_from_slice(&up[..p.produced]);
            at += p.consumed;
        }
    }
    let n = ex.finish_body(now, &mut up).unwrap().unwrap();
    wire.extend_from_slice(&up[..n]);
    assert_eq!(
        dechunk(&wire),
        (b"hello upstream".to_vec(), true, wire.len())
    );
    assert_eq!(ex.bytes_to_upstream(), wire.len() as u64);
    assert_eq!(ex.poll_timeout(), Some(now + Timeouts::default().read));
    // The upstream's 100 comes after the body: still forwarded, once, to the client that
    // asked for it (it may still be waiting).
    let upstream = [&b"HTTP/1.1 100 Continue\r\n\r\n"[..], CHUNKED].concat();
    let r = drive(&mut ex, &upstream, &[7], &mut || 9, false);
    assert_eq!(r.end, DONE_REUSABLE);
    let v = client_view(&r.client, RequestKind::Other);
    assert_eq!(v.interim, [100]);
    assert_eq!(v.body, CHUNKED_DATA);
    assert_eq!(ex.bytes_to_client(), r.client.len() as u64);
    assert_eq!(ex.poll_timeout(), None, "no timer after the end");
    assert_eq!(ex.balance_outcome(), Some(Outcome::Ok));
}

//! A request routed upstream, driven as a path drives it: `process_proxied` with the caller's
//! exchange and buffers, `start_upstream` when a head waits, the upstream's events reported to
//! the exchange. The upstream is the test: it reads what the gateway forwarded and writes its
//! answer. Each test is named after the rule it proves.

use super::*;

use crate::proxy::config::{ProxyConfig, UpstreamConfig};
use crate::proxy::exchange::FailureCause;
use crate::proxy::forward::ForwardConfig;
use crate::proxy::route::{RouteMatch, RouteSpec, RouteTable, RouteTarget, UpstreamId};
use std::net::SocketAddr;

const T0: Instant = Instant::from_secs(1_000);

/// `/api` goes upstream; `/gone` gets a configured 410; the rest is the gateway's own.
fn proxy_app() -> App {
    proxy_app_with(ForwardConfig::default())
}

/// [`proxy_app`] with `forward` the rules of the `/api` route.
fn proxy_app_with(forward: ForwardConfig) -> App {
    let routes = RouteTable::new(vec![
        RouteSpec {
            forward,
            ..RouteSpec::prefix_to("/api", UpstreamId(0))
        },
        RouteSpec {
            matches: RouteMatch {
                host: None,
                path_prefix: Some("/gone".into()),
            },
            target: RouteTarget::Respond {
                status: 410,
                body: b"gone\n"[..].into(),
            },
            forward: ForwardConfig::default(),
        },
    ])
    .unwrap();
    let backend = SocketAddr::from(([10, 0, 0, 2], 80));
    let mut app = app();
    app.set_proxy(std::sync::Arc::new(ProxyConfig {
        upstreams: vec![UpstreamConfig::with_defaults("backend", &[backend])],
        routes,
    }));
    app
}

/// The caller of one client connection with its upstream, all buffers as vectors.
struct Harness {
    app: App,
    http: HttpConn,
    exchange: Option<Exchange>,
    /// Exchanges that ended and were settled, in order.
    settled: Vec<Option<End>>,
    client_in: Vec<u8>,
    to_client: Vec<u8>,
    to_upstream: Vec<u8>,
    from_upstream: Vec<u8>,
    /// Bytes of room the upstream send buffer offers per call (backpressure).
    upstream_room: usize,
    /// Bytes of room the client send buffer offers per call.
    client_room: usize,
    /// Heads started (a retry starts one more).
    starts: usize,
    retry: bool,
    /// The forwarded head, kept for a retry.
    last_head: Vec<u8>,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            app: proxy_app(),
            http: HttpConn::new(HttpLimits::default()),
            exchange: None,
            settled: Vec::new(),
            client_in: Vec::new(),
            to_client: Vec::new(),
            to_upstream: Vec::new(),
            from_upstream: Vec::new(),
            upstream_room: 64 * 1024,
            client_room: 64 * 1024,
            starts: 0,
            retry: false,
            last_head: Vec::new(),
        }
    }

    fn start() -> UpstreamStart<'static> {
        UpstreamStart {
            client: ClientConn {
                peer: SocketAddr::from(([192, 0, 2, 7], 4711)),
                tls: false,
            },
            fallback_host: b"backend",
            upstream_keep_alive: true,
            reused_connection: false,
            timeouts: Timeouts::default(),
            limits: UpstreamLimits::default(),
        }
    }

    /// Runs the connection until nothing moves.
    fn pump(&mut self, now: Instant) {
        for _ in 0..100_000 {
            let mut out = vec![0u8; self.client_room];
            let mut up_out = vec![0u8; self.upstream_room];
            let mut moved = false;
            let p = match self.exchange.as_mut() {
                Some(exchange) => {
                    let mut io = UpstreamIo {
                        exchange,
                        input: &self.from_upstream,
                        output: &mut up_out,
                        retry: self.retry,
                        consumed: 0,
                        produced: 0,
                    };
                    let p = self.http.process_proxied(
                        now,
                        &self.app,
                        &self.client_in,
                        &mut out,
                        &mut io,
                        None,
                    );
                    let (uc, up) = (io.consumed, io.produced);
                    self.from_upstream.drain(..uc);
                    self.to_upstream.extend_from_slice(&up_out[..up]);
                    moved |= uc > 0 || up > 0;
                    p
                }
                None => self.http.process(now, &self.app, &self.client_in, &mut out),
            };
            self.client_in.drain(..p.consumed);
            self.to_client.extend_from_slice(&out[..p.produced]);
            moved |= p.consumed > 0 || p.produced > 0;
            // The exchange is over (or abandoned) once the connection stopped forwarding.
            if self.exchange.is_some() && !self.http.is_forwarding() {
                let ex = self.exchange.take().unwrap();
                self.settled.push(ex.end());
                moved = true;
            }
            if let Some(ex) = &self.exchange {
                if self.retry && matches!(ex.end(), Some(End::Failed(f)) if f.retryable) {
                    // Another server: the same request, a new exchange.
                    let spec = *ex.spec();
                    self.settled.push(ex.end());
                    self.exchange = Some(Exchange::new(now, spec));
                    self.to_upstream.extend_from_slice(&self.last_head.clone());
                    self.starts += 1;
                    self.retry = false;
                    moved = true;
                }
            }
            if self.http.upstream_request().is_some() && self.exchange.is_none() {
                let start = Harness::start();
                let mut head = vec![0u8; 16 * 1024];
                let started = self.http.start_upstream(
                    now,
                    &self.app,
                    &self.client_in,
                    &start,
                    &mut head,
                    &mut self.exchange,
                );
                match started {
                    UpstreamStarted::Forwarded { consumed, produced } => {
                        self.client_in.drain(..consumed);
                        self.to_upstream.extend_from_slice(&head[..produced]);
                        self.last_head = head[..produced].to_vec();
                        self.starts += 1;
                    }
                    UpstreamStarted::Answered => {}
                    UpstreamStarted::NotWaiting => panic!("a request was waiting"),
                }
                moved = true;
            }
            if !moved {
                return;
            }
        }
        panic!("never settles");
    }

    fn client(&mut self, now: Instant, bytes: &[u8]) {
        self.client_in.extend_from_slice(bytes);
        self.pump(now);
    }

    fn upstream(&mut self, now: Instant, bytes: &[u8]) {
        self.from_upstream.extend_from_slice(bytes);
        self.pump(now);
    }

    fn connected(&mut self, now: Instant) {
        self.exchange.as_mut().expect("an exchange").connected(now);
        self.pump(now);
    }

    fn take_upstream(&mut self) -> String {
        String::from_utf8(std::mem::take(&mut self.to_upstream)).unwrap()
    }

    fn take_client(&mut self) -> String {
        String::from_utf8(std::mem::take(&mut self.to_client)).unwrap()
    }
}

const OK_HELLO: &[u8] =
    b"HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 5\r\n\r\nhello";

fn client_ok_hello() -> String {
    "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 5\r\nVia: 1.1 xgate\r\n\r\nhello".into()
}

#[test]
fn a_routed_request_is_forwarded_with_via_and_x_forwarded_for_and_answered_by_the_upstream() {
    let mut h = Harness::new();
    h.client(
        T0,
        b"GET /api/items?x=1 HTTP/1.1\r\nHost: shop\r\nAccept: */*\r\n\r\n",
    );
    assert_eq!(h.take_upstream(), "GET /api/items?x=1 HTTP/1.1\r\nHost: shop\r\nAccept: */*\r\nVia: 1.1 xgate\r\nX-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: shop\r\n\r\n");
    assert_eq!(h.to_client, b"", "nothing before the upstream answers");
    h.connected(T0);
    h.upstream(T0, OK_HELLO);
    assert_eq!(h.take_client(), client_ok_hello());
    assert_eq!(
        h.settled,
        vec![Some(End::Done {
            upstream_reusable: true
        })]
    );
    assert!(!h.http.wants_close());
    assert_eq!(h.http.stats().requests, 1);
    assert_eq!(h.http.stats().responses, [0, 1, 0, 0, 0]);
    assert!(h.http.is_between_requests());
}

#[test]
fn every_field_of_a_head_with_more_fields_than_the_few_slots_is_forwarded_in_order() {
    // At the small slot array's size, one past it, and at the most the limits allow.
    let max = HttpLimits::default().max_headers;
    for count in [head::FEW_FIELDS, head::FEW_FIELDS + 1, max] {
        let mut h = Harness::new();
        let fields: String = (1..count).map(|i| format!("X-F{i}: v {i}\r\n")).collect();
        let request = format!("GET /api/many HTTP/1.1\r\nHost: shop\r\n{fields}\r\n");
        h.client(T0, request.as_bytes());
        assert_eq!(
            h.take_upstream(),
            format!(
                "GET /api/many HTTP/1.1\r\nHost: shop\r\n{fields}Via: 1.1 xgate\r\n\
                 X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\n\
                 X-Forwarded-Host: shop\r\n\r\n"
            ),
            "{count} fields"
        );
        h.connected(T0);
        h.upstream(T0, OK_HELLO);
        assert_eq!(h.take_client(), client_ok_hello(), "{count} fields");
    }
}

#[test]
fn the_routes_response_rules_set_and_remove_fields_of_the_upstreams_final_response() {
    let mut h = Harness::new();
    h.app = proxy_app_with(ForwardConfig {
        response_set_headers: vec![("X-Frame-Options".into(), "DENY".into())],
        response_remove_headers: vec!["server".into()],
        ..ForwardConfig::default()
    });
    h.client(
        T0,
        b"GET /api/x HTTP/1.1\r\nHost: shop\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
    );
    h.connected(T0);
    h.upstream(T0, b"HTTP/1.1 100 Continue\r\nServer: backend\r\n\r\n");
    assert_eq!(
        h.take_client(),
        "HTTP/1.1 100 Continue\r\nServer: backend\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nVia: 1.1 xgate\r\n\r\n",
        "an interim response gets Via (and the gateway's Date, RFC 9110 §6.6.1), not the rules"
    );
    h.client(T0, b"hi");
    h.upstream(
        T0,
        b"HTTP/1.1 200 OK\r\nServer: backend\r\nX-Frame-Options: ALLOW\r\nContent-Length: 2\r\n\r\nok",
    );
    assert_eq!(
        h.take_client(),
        "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 2\r\nVia: 1.1 xgate\r\nX-Frame-Options: DENY\r\n\r\nok"
    );
    assert!(h.http.is_between_requests());
}

#[test]
fn a_respond_route_answers_every_method_with_its_response() {
    let mut h = Harness::new();
    h.client(T0, b"DELETE /gone/x HTTP/1.1\r\nHost: x\r\n\r\n");
    let out = h.take_client();
    assert!(
        out.starts_with("HTTP/1.1 410 Gone\r\n") && out.ends_with("gone\n"),
        "{out}"
    );
    assert_eq!(h.starts, 0);
}

#[test]
fn routes_outside_the_prefix_are_answered_by_the_gateway_itself() {
    let mut h = Harness::new();
    h.client(
        T0,
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /apix HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(h.starts, 0);
    let out = h.take_client();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("HTTP/1.1 404 Not Found\r\n"), "{out}");
}

#[test]
fn a_method_the_gateway_does_not_know_is_forwarded_rather_than_refused_501() {
    let mut h = Harness::new();
    h.client(T0, b"PROPFIND /api/dav HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(h
        .take_upstream()
        .starts_with("PROPFIND /api/dav HTTP/1.1\r\n"));
    let mut own = Harness::new();
    own.client(T0, b"PROPFIND /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        own.take_client().starts_with("HTTP/1.1 501 "),
        "the gateway's own routes still refuse it"
    );
}

#[test]
fn pipelined_requests_are_forwarded_one_at_a_time_and_answered_in_order() {
    let mut h = Harness::new();
    h.client(
        T0,
        b"GET /api/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /api/2 HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let first = h.take_upstream();
    assert!(first.starts_with("GET /api/1 "), "{first}");
    assert!(
        !first.contains("/api/2"),
        "the second waits for the first's answer"
    );
    h.connected(T0);
    h.upstream(T0, OK_HELLO);
    let second = h.take_upstream();
    assert!(second.starts_with("GET /api/2 "), "{second}");
    h.connected(T0);
    h.upstream(T0, b"HTTP/1.1 204 No Content\r\nDate: x\r\n\r\n");
    let out = h.take_client();
    let order: Vec<usize> = [
        "hello",
        "HTTP/1.1 200 OK\r\nServer: xgate",
        "204 No Content",
    ]
    .iter()
    .map(|s| out.find(s).unwrap_or_else(|| panic!("{s} in {out}")))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{out}");
    assert_eq!(h.http.stats().requests, 3);
}

#[test]
fn a_content_length_body_reaches_the_upstream_byte_exact_through_one_byte_of_room() {
    let body: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let mut h = Harness::new();
    h.upstream_room = 1;
    let mut req = format!(
        "POST /api/up HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    h.client(T0, &req);
    let head = h.take_upstream();
    assert!(
        head.ends_with("\r\n\r\n") && head.contains("Content-Length: 5000\r\n"),
        "{head}"
    );
    assert!(
        h.client_in.len() > 4000,
        "the body waits for the connection"
    );
    h.connected(T0);
    assert_eq!(h.to_upstream, body);
    assert!(h.client_in.is_empty());
    h.upstream(T0, OK_HELLO);
    assert_eq!(h.take_client(), client_ok_hello());
    assert_eq!(
        h.settled,
        vec![Some(End::Done {
            upstream_reusable: true
        })]
    );
}

#[test]
fn a_chunked_body_is_forwarded_chunked_and_decodes_to_the_same_bytes() {
    let mut h = Harness::new();
    h.upstream_room = 7;
    h.client(
        T0,
        b"POST /api/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer-X: 1\r\n\r\n",
    );
    h.connected(T0);
    let sent = h.take_upstream();
    let (head, body) = sent.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
    // De-chunk what the upstream got, as it would.
    let mut rest = body.as_bytes();
    let mut decoded = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap(), 16).unwrap();
        rest = &rest[line_end + 2..];
        if size == 0 {
            assert_eq!(rest, b"\r\n");
            break;
        }
        decoded.extend_from_slice(&rest[..size]);
        assert_eq!(&rest[size..size + 2], b"\r\n");
        rest = &rest[size + 2..];
    }
    assert_eq!(decoded, b"hello world");
}

#[test]
fn a_connect_failure_is_a_502_and_the_connection_closes() {
    let mut h = Harness::new();
    h.client(T0, b"GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n");
    h.exchange.as_mut().unwrap().connect_failed(T0);
    h.pump(T0);
    let out = h.take_client();
    assert!(
        out.starts_with("HTTP/1.1 502 Bad Gateway\r\n") && out.contains("Connection: close"),
        "{out}"
    );
    assert!(h.http.wants_close());
    assert!(
        matches!(h.settled[..], [Some(End::Failed(f))] if f.cause == FailureCause::ConnectFailed)
    );
    assert_eq!(h.http.stats().responses, [0, 0, 0, 0, 1]);
}

#[test]
fn a_failed_exchange_is_answered_in_the_call_that_finds_it_failed() {
    // The call moves nothing of the exchange's, yet its refusal is written there and then: a
    // caller runs the connection again only when something changed, not to finish an answer.
    let mut h = Harness::new();
    h.client(T0, b"GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n");
    h.exchange.as_mut().unwrap().connect_failed(T0);
    let mut out = vec![0u8; 4096];
    let mut io = UpstreamIo {
        exchange: h.exchange.as_mut().unwrap(),
        input: &[],
        output: &mut [],
        retry: false,
        consumed: 0,
        produced: 0,
    };
    let p = h
        .http
        .process_proxied(T0, &h.app, &h.client_in, &mut out, &mut io, None);
    let answer = String::from_utf8_lossy(&out[..p.produced]);
    assert!(
        answer.starts_with("HTTP/1.1 502 Bad Gateway\r\n"),
        "{answer}"
    );
    assert!(!h.http.is_forwarding());
    let again = h.http.process(T0, &h.app, &[], &mut out);
    assert_eq!(
        (again.consumed, again.produced),
        (0, 0),
        "nothing left to write"
    );
}

#[test]
fn no_response_within_the_read_timeout_is_a_504() {
    let mut h = Harness::new();
    h.client(T0, b"GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n");
    h.connected(T0);
    assert_eq!(h.http.poll_timeout(), None, "the exchange's timers govern");
    let at = h.exchange.as_ref().unwrap().poll_timeout().unwrap();
    h.exchange.as_mut().unwrap().handle_timeout(at);
    h.pump(at);
    assert!(h
        .take_client()
        .starts_with("HTTP/1.1 504 Gateway Timeout\r\n"));
}

#[test]
fn an_idempotent_request_is_retried_on_a_new_exchange_when_the_caller_says_so() {
    let mut h = Harness::new();
    h.retry = true;
    h.client(T0, b"GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = h.take_upstream();
    h.exchange.as_mut().unwrap().connect_failed(T0);
    h.pump(T0);
    assert_eq!(h.to_client, b"", "a retried failure is not answered");
    assert_eq!(h.starts, 2);
    assert_eq!(
        h.take_upstream(),
        head,
        "the same head goes to the next server"
    );
    h.connected(T0);
    h.upstream(T0, OK_HELLO);
    assert_eq!(h.take_client(), client_ok_hello());
}

#[test]
fn an_upstream_cut_after_the_head_aborts_the_client_stream_short_of_its_length() {
    let mut h = Harness::new();
    h.client(T0, b"GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n");
    h.connected(T0);
    h.upstream(
        T0,
        b"HTTP/1.1 200 OK\r\nDate: x\r\nContent-Length: 10\r\n\r\nhal",
    );
    h.exchange.as_mut().unwrap().upstream_reset(T0);
    h.pump(T0);
    let out = h.take_client();
    assert!(out.ends_with("\r\n\r\nhal"), "{out}");
    assert!(h.http.wants_close());
    assert_eq!(h.http.stats().aborted, 1);
}

#[test]
fn an_early_final_answer_skips_the_body_and_closes_after_it() {
    let mut h = Harness::new();
    h.client(
        T0,
        b"POST /api/big HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc",
    );
    h.connected(T0);
    h.upstream(
        T0,
        b"HTTP/1.1 413 Content Too Large\r\nDate: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(h
        .take_client()
        .starts_with("HTTP/1.1 413 Content Too Large\r\n"));
    h.client(T0, &[b'z'; 97]);
    assert!(h.http.wants_close(), "the rest of the body is never read");
}

#[test]
fn a_bad_chunk_before_the_upstream_answers_is_a_400_and_the_exchange_is_abandoned() {
    let mut h = Harness::new();
    h.client(
        T0,
        b"POST /api/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    h.connected(T0);
    h.client(T0, b"zz\r\n");
    assert!(h.take_client().starts_with("HTTP/1.1 400 Bad Request\r\n"));
    assert_eq!(
        h.settled,
        vec![None],
        "not ended: the caller closes its connection"
    );
    assert!(h.http.wants_close());
}

#[test]
fn a_client_that_half_closes_after_its_request_still_gets_the_answer() {
    let mut h = Harness::new();
    h.client(T0, b"GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n");
    h.http.peer_closed(T0);
    assert!(!h.http.wants_close());
    h.connected(T0);
    h.upstream(T0, OK_HELLO);
    assert_eq!(h.take_client(), client_ok_hello());
    assert!(
        h.http.wants_close(),
        "then closes: no more requests can come"
    );
}

#[test]
fn a_client_that_closes_mid_body_ends_the_connection_and_abandons_the_exchange() {
    let mut h = Harness::new();
    h.client(
        T0,
        b"POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
    );
    h.connected(T0);
    h.http.peer_closed(T0);
    h.pump(T0);
    assert!(h.http.wants_close());
    assert_eq!(h.settled, vec![None]);
}

#[test]
fn head_gets_the_upstreams_head_without_a_body() {
    let mut h = Harness::new();
    h.client(T0, b"HEAD /api/x HTTP/1.1\r\nHost: x\r\n\r\n");
    h.connected(T0);
    h.upstream(
        T0,
        b"HTTP/1.1 200 OK\r\nDate: x\r\nContent-Length: 5\r\n\r\n",
    );
    assert_eq!(
        h.take_client(),
        "HTTP/1.1 200 OK\r\nDate: x\r\nContent-Length: 5\r\nVia: 1.1 xgate\r\n\r\n"
    );
    assert_eq!(
        h.settled,
        vec![Some(End::Done {
            upstream_reusable: true
        })]
    );
}

#[test]
fn an_http10_request_without_host_is_sent_the_fallback_host_and_closes() {
    let mut h = Harness::new();
    h.client(T0, b"GET /api/x HTTP/1.0\r\n\r\n");
    let head = h.take_upstream();
    assert!(
        head.starts_with("GET /api/x HTTP/1.1\r\nHost: backend\r\n"),
        "{head}"
    );
    h.connected(T0);
    h.upstream(T0, OK_HELLO);
    let out = h.take_client();
    assert!(
        out.starts_with("HTTP/1.1 200 OK\r\n") && out.ends_with("hello"),
        "{out}"
    );
    assert!(h.http.wants_close());
}

#[test]
fn an_absolute_form_target_is_forwarded_in_origin_form_with_its_authority_as_host() {
    let mut h = Harness::new();
    h.client(
        T0,
        b"GET http://shop:8080/api/x?q HTTP/1.1\r\nHost: other\r\n\r\n",
    );
    let head = h.take_upstream();
    assert!(
        head.starts_with("GET /api/x?q HTTP/1.1\r\nHost: shop:8080\r\n"),
        "{head}"
    );
}

#[test]
fn options_with_max_forwards_zero_is_answered_by_the_gateway() {
    let mut h = Harness::new();
    h.client(
        T0,
        b"OPTIONS /api/x HTTP/1.1\r\nHost: x\r\nMax-Forwards: 0\r\n\r\n",
    );
    assert_eq!(h.starts, 0);
    assert_eq!(h.to_upstream, b"");
    let out = h.take_client();
    assert!(out.starts_with("HTTP/1.1 404 Not Found\r\n"), "{out}");
}

#[test]
fn expect_100_continue_is_answered_by_the_upstreams_100_not_the_gateways() {
    let mut h = Harness::new();
    h.client(
        T0,
        b"PUT /api/x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
    );
    assert!(h.take_upstream().contains("Expect: 100-continue\r\n"));
    h.connected(T0);
    assert_eq!(h.to_client, b"", "no 100 of the gateway's own");
    h.upstream(T0, b"HTTP/1.1 100 Continue\r\n\r\n");
    assert!(h.take_client().starts_with("HTTP/1.1 100 Continue\r\n"));
    h.client(T0, b"abc");
    assert_eq!(h.take_upstream(), "abc");
    h.upstream(T0, OK_HELLO);
    assert_eq!(h.take_client(), client_ok_hello());
}

#[test]
fn a_slow_client_reader_slows_what_is_taken_from_the_upstream() {
    let mut h = Harness::new();
    h.client_room = 100;
    h.client(T0, b"GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n");
    h.connected(T0);
    let mut resp = b"HTTP/1.1 200 OK\r\nDate: x\r\nContent-Length: 100000\r\n\r\n".to_vec();
    resp.extend(std::iter::repeat_n(b'q', 100_000));
    h.from_upstream.extend_from_slice(&resp);
    // One round: the client takes at most its room per call; the rest stays upstream.
    let mut out = vec![0u8; 100];
    let mut up_out = vec![0u8; 100];
    let mut io = UpstreamIo {
        exchange: h.exchange.as_mut().unwrap(),
        input: &h.from_upstream,
        output: &mut up_out,
        retry: false,
        consumed: 0,
        produced: 0,
    };
    let p = h
        .http
        .process_proxied(T0, &h.app, &[], &mut out, &mut io, None);
    assert!(p.produced <= 100);
    assert!(
        io.consumed < 200,
        "taken only as the client's room allows: {}",
        io.consumed
    );
}

#[test]
fn draining_before_the_exchange_starts_tells_the_client_to_close() {
    let mut h = Harness::new();
    h.http.begin_drain();
    h.client(T0, b"GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n");
    h.connected(T0);
    h.upstream(T0, OK_HELLO);
    let out = h.take_client();
    assert!(out.contains("Connection: close\r\n"), "{out}");
    assert!(h.http.wants_close());
}

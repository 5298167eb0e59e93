//! Tests of `proxy::forwarder` over a table of fake upstream connections: the test plays the
//! upstream servers (what each connection was sent, what it answers, its events).

use super::*;
use crate::app::AppConfig;
use crate::http::HttpLimits;
use crate::proxy::balance::Policy;
use crate::proxy::config::UpstreamConfig;
use crate::proxy::exchange::Timeouts;

use crate::proxy::route::{RouteSpec, RouteTable};
use crate::time::Duration;

const T0: Instant = Instant::from_secs(1_000);
const A: &str = "10.0.0.1:80";
const B: &str = "10.0.0.2:80";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct FakeConn {
    addr: SocketAddr,
    owner: u64,
    received: Vec<u8>,
    sent: Vec<u8>,
    room: Vec<u8>,
    /// `Some(max_idle)` once released.
    released: Option<usize>,
    idle: bool,
}

#[derive(Default)]
struct FakeTable {
    conns: Vec<FakeConn>,
    max: usize,
    recv_capacity: usize,
}

impl UpstreamTable for FakeTable {
    type Conn = usize;

    fn checkout_idle(&mut self, addr: SocketAddr, owner: u64, _now: Instant) -> Option<usize> {
        let at = self.conns.iter().rposition(|c| c.idle && c.addr == addr)?;
        let c = &mut self.conns[at];
        c.idle = false;
        c.released = None;
        c.owner = owner;
        c.sent.clear();
        Some(at)
    }

    fn connect(&mut self, addr: SocketAddr, owner: u64) -> Option<usize> {
        let open = self
            .conns
            .iter()
            .filter(|c| c.released.is_none() || c.idle)
            .count();
        if open >= self.max {
            return None;
        }
        self.conns.push(FakeConn {
            addr,
            owner,
            received: Vec::new(),
            sent: Vec::new(),
            room: vec![0; 4096],
            released: None,
            idle: false,
        });
        Some(self.conns.len() - 1)
    }

    fn buffers(&mut self, conn: usize) -> (&[u8], &mut [u8]) {
        let c = &mut self.conns[conn];
        (&c.received, &mut c.room)
    }

    fn recv_capacity(&self) -> usize {
        self.recv_capacity
    }

    fn consume(&mut self, conn: usize, n: usize) {
        self.conns[conn].received.drain(..n);
    }

    fn commit_send(&mut self, conn: usize, n: usize) {
        let c = &mut self.conns[conn];
        let bytes = c.room[..n].to_vec();
        c.sent.extend_from_slice(&bytes);
    }

    fn idle_count(&self, addr: SocketAddr) -> usize {
        self.conns
            .iter()
            .filter(|c| c.idle && c.addr == addr)
            .count()
    }

    fn release(&mut self, conn: usize, max_idle: usize, _now: Instant) {
        let c = &mut self.conns[conn];
        c.released = Some(max_idle);
        c.idle = max_idle > 0;
    }
}

fn upstream(
    name: &str,
    servers: &[&str],
    policy: Policy,
    hash: Option<HashKeySource>,
) -> UpstreamConfig {
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| addr(s)).collect();
    let mut u = UpstreamConfig::with_defaults(name, &addrs);
    u.pool.policy = policy;
    u.hash_key = hash;
    u.keepalive = 8;
    u
}

fn config(upstream: UpstreamConfig) -> Arc<ProxyConfig> {
    let routes = RouteTable::new(vec![RouteSpec::prefix_to("/api", UpstreamId(0))]).unwrap();
    Arc::new(ProxyConfig {
        upstreams: vec![upstream],
        routes,
    })
}

fn app_with(proxy: Arc<ProxyConfig>) -> App {
    let mut app = App::new(&AppConfig::default()).unwrap();
    app.set_proxy(proxy);
    app
}

const CLIENT: &str = "192.0.2.7:4711";
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nDate: x\r\nContent-Length: 2\r\n\r\nok";

struct Rig {
    fwd: Forwarder<FakeTable>,
    app: App,
    http: HttpConn,
    client_in: Vec<u8>,
    to_client: Vec<u8>,
}

impl Rig {
    fn new(upstream: UpstreamConfig) -> Rig {
        Rig {
            fwd: Forwarder::new(
                FakeTable {
                    conns: Vec::new(),
                    max: 16,
                    recv_capacity: 64 * 1024,
                },
                HashKey([7; 16]),
            ),
            app: app_with(config(upstream)),
            http: HttpConn::new(HttpLimits::default()),
            client_in: Vec::new(),
            to_client: Vec::new(),
        }
    }

    fn pump(&mut self, now: Instant) {
        for _ in 0..1000 {
            let mut out = vec![0u8; 64 * 1024];
            let p = self.fwd.process(
                0,
                now,
                &self.app,
                &mut self.http,
                addr(CLIENT),
                &self.client_in,
                &mut out,
                None,
            );
            self.client_in.drain(..p.consumed);
            self.to_client.extend_from_slice(&out[..p.produced]);
            if p.consumed == 0 && p.produced == 0 {
                return;
            }
        }
        panic!("never settles");
    }

    fn client(&mut self, now: Instant, bytes: &[u8]) {
        self.client_in.extend_from_slice(bytes);
        self.pump(now);
    }

    /// The connection the client's request is on now.
    fn current(&self) -> usize {
        self.fwd
            .table()
            .conns
            .iter()
            .rposition(|c| c.released.is_none() && !c.idle)
            .expect("a connection in use")
    }

    fn event(&mut self, now: Instant, event: UpstreamEvent) {
        let conn = self.current();
        assert!(self.fwd.on_upstream(0, conn, event, now));
        self.pump(now);
    }

    fn answer(&mut self, now: Instant, bytes: &[u8]) {
        let conn = self.current();
        self.fwd.table_mut().conns[conn]
            .received
            .extend_from_slice(bytes);
        self.event(now, UpstreamEvent::Progress);
    }

    fn take_client(&mut self) -> String {
        String::from_utf8(std::mem::take(&mut self.to_client)).unwrap()
    }

    fn counters(&self, server: &str) -> ServerCounters {
        self.fwd
            .server_stats()
            .iter()
            .find(|s| s.server == addr(server))
            .unwrap()
            .counters
            .clone()
    }
}

const GET: &[u8] = b"GET /api/x HTTP/1.1\r\nHost: shop\r\n\r\n";

#[test]
fn a_request_goes_to_a_pool_server_and_its_connection_is_pooled_after_a_reusable_answer() {
    let mut r = Rig::new(upstream("shop", &[A], Policy::RoundRobin, None));
    r.client(T0, GET);
    let conn = r.current();
    assert_eq!(r.fwd.table().conns[conn].addr, addr(A));
    assert!(String::from_utf8_lossy(&r.fwd.table().conns[conn].sent)
        .starts_with("GET /api/x HTTP/1.1\r\nHost: shop\r\n"));
    r.event(T0, UpstreamEvent::Connected);
    r.answer(T0, OK);
    assert!(r.take_client().ends_with("\r\n\r\nok"));
    assert_eq!(
        r.fwd.table().conns[conn].released,
        Some(8),
        "kept among the pool's keepalive"
    );
    assert!(!r.fwd.is_forwarding(0));
    assert_eq!(r.fwd.in_flight(), 0);
    // The next request takes the pooled connection, already up.
    r.client(T0, GET);
    assert_eq!(r.current(), conn, "the pooled connection is reused");
    r.answer(T0, OK);
    assert!(r.take_client().ends_with("ok"));
    let c = r.counters(A);
    assert_eq!(
        (c.requests, c.reused, c.responses[1], c.in_flight),
        (2, 1, 2, 0)
    );
    let mut states = Vec::new();
    r.fwd.snapshot(T0, &mut states);
    assert_eq!(states.len(), 1);
    assert_eq!(
        (states[0].idle_connections, states[0].ejected_threads),
        (1, 0)
    );
    assert_eq!(states[0].server, A);
}

#[test]
fn round_robin_spreads_requests_over_the_servers() {
    let mut r = Rig::new(upstream("shop", &[A, B], Policy::RoundRobin, None));
    let mut seen = Vec::new();
    for _ in 0..4 {
        let before = r.fwd.table().conns.len();
        r.client(T0, GET);
        let conn = r.current();
        seen.push(r.fwd.table().conns[conn].addr);
        if r.fwd.table().conns.len() > before {
            r.event(T0, UpstreamEvent::Connected); // a new connection, not a pooled one
        }
        r.answer(T0, OK);
    }
    assert_eq!(
        seen.iter().filter(|&&a| a == addr(A)).count(),
        2,
        "{seen:?}"
    );
    assert_eq!(
        seen.iter().filter(|&&a| a == addr(B)).count(),
        2,
        "{seen:?}"
    );
}

#[test]
fn a_connect_failure_of_an_idempotent_request_is_retried_on_the_other_server_with_the_same_head() {
    let mut r = Rig::new(upstream("shop", &[A, B], Policy::RoundRobin, None));
    r.client(T0, GET);
    let first = r.current();
    let head = r.fwd.table().conns[first].sent.clone();
    r.event(T0, UpstreamEvent::ConnectFailed);
    assert_eq!(r.to_client, b"", "not answered: retried");
    let second = r.current();
    assert_ne!(first, second);
    assert_ne!(
        r.fwd.table().conns[first].addr,
        r.fwd.table().conns[second].addr
    );
    assert_eq!(r.fwd.table().conns[first].released, Some(0));
    assert_eq!(r.fwd.table().conns[second].sent, head);
    r.event(T0, UpstreamEvent::Connected);
    r.answer(T0, OK);
    assert!(r.take_client().starts_with("HTTP/1.1 200 OK\r\n"));
    let failed = r.fwd.table().conns[first].addr;
    let c = r.counters(&failed.to_string());
    assert_eq!((c.failures.connect_failed, c.retried), (1, 1));
}

#[test]
fn a_reset_before_any_response_byte_of_an_idempotent_request_is_retried_on_the_other_server() {
    let mut r = Rig::new(upstream("shop", &[A, B], Policy::RoundRobin, None));
    r.client(T0, GET);
    let first = r.current();
    let head = r.fwd.table().conns[first].sent.clone();
    r.event(T0, UpstreamEvent::Connected);
    r.event(T0, UpstreamEvent::Reset);
    assert_eq!(r.to_client, b"", "not answered: retried");
    let second = r.current();
    assert_ne!(first, second);
    assert_eq!(r.fwd.table().conns[first].released, Some(0));
    assert_eq!(r.fwd.table().conns[second].sent, head);
    r.event(T0, UpstreamEvent::Connected);
    r.answer(T0, OK);
    assert!(r.take_client().starts_with("HTTP/1.1 200 OK\r\n"));
}

#[test]
fn an_eof_before_any_response_byte_of_an_idempotent_request_is_retried_on_the_other_server() {
    let mut r = Rig::new(upstream("shop", &[A, B], Policy::RoundRobin, None));
    r.client(T0, GET);
    let first = r.current();
    r.event(T0, UpstreamEvent::Connected);
    r.event(T0, UpstreamEvent::Eof);
    assert_eq!(r.to_client, b"", "not answered: retried");
    let second = r.current();
    assert_ne!(first, second);
    r.event(T0, UpstreamEvent::Connected);
    r.answer(T0, OK);
    assert!(r.take_client().starts_with("HTTP/1.1 200 OK\r\n"));
}

#[test]
fn a_head_that_fills_the_receive_buffer_unfinished_is_a_502_at_once() {
    // The table holds 1 KiB of a response: a longer head could never complete there, and
    // waiting for it would end in a 504 at the read timeout.
    let mut r = Rig::new(upstream("shop", &[A], Policy::RoundRobin, None));
    r.fwd.table_mut().recv_capacity = 1024;
    r.client(T0, GET);
    r.event(T0, UpstreamEvent::Connected);
    let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
    head.resize(1024, b'x');
    r.answer(T0, &head);
    assert!(r.take_client().starts_with("HTTP/1.1 502 Bad Gateway\r\n"));
    assert_eq!(r.counters(A).failures.bad_head, 1);
}

#[test]
fn a_call_without_input_and_without_an_exchange_is_the_connections_own_call() {
    let mut r = Rig::new(upstream("shop", &[A], Policy::RoundRobin, None));
    let mut out = vec![0u8; 4096];
    // A slot never seen, idle: nothing happens, and it works as any other afterwards.
    let p = r.fwd.process(
        3,
        T0,
        &r.app,
        &mut r.http,
        addr(CLIENT),
        &[],
        &mut out,
        None,
    );
    assert_eq!(p, Progress::default());
    assert!(!r.fwd.is_forwarding(3));
    r.client(T0, b"GET /api/x HTTP/1.1\r\nHost: shop\r\n\r\n");
    assert!(r.fwd.is_forwarding(0));
    r.event(T0, UpstreamEvent::Connected);
    r.answer(T0, OK);
    assert!(r.take_client().starts_with("HTTP/1.1 200 OK\r\n"));
    // Between requests, a timeout's answer still comes of a call without input.
    let mut http = HttpConn::new(HttpLimits::default());
    let _ = http.process(T0, &r.app, b"GET /he", &mut out);
    let limits = HttpLimits::default();
    http.handle_timeout(T0 + limits.header_timeout);
    let p = r.fwd.process(
        0,
        T0 + limits.header_timeout,
        &r.app,
        &mut http,
        addr(CLIENT),
        &[],
        &mut out,
        None,
    );
    let answer = String::from_utf8_lossy(&out[..p.produced]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
}

#[test]
fn one_call_takes_an_exchange_to_its_end_and_the_answer_to_the_client() {
    // The call that settles an exchange, whether the upstream answered or failed, leaves
    // nothing for a next call: the rounds stop once nothing the connection works with changed.
    for failed in [false, true] {
        let mut r = Rig::new(upstream("shop", &[A], Policy::RoundRobin, None));
        r.client(
            T0,
            b"POST /api/x HTTP/1.1\r\nHost: shop\r\nContent-Length: 1\r\n\r\nz",
        );
        let conn = r.current();
        if failed {
            assert!(r.fwd.on_upstream(0, conn, UpstreamEvent::ConnectFailed, T0));
        } else {
            assert!(r.fwd.on_upstream(0, conn, UpstreamEvent::Connected, T0));
            r.fwd.table_mut().conns[conn]
                .received
                .extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
        let mut out = vec![0u8; 4096];
        let p = r.fwd.process(
            0,
            T0,
            &r.app,
            &mut r.http,
            addr(CLIENT),
            &[],
            &mut out,
            None,
        );
        let answer = String::from_utf8_lossy(&out[..p.produced]).into_owned();
        let status = if failed { "502 Bad Gateway" } else { "200 OK" };
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}\r\n")),
            "{answer}"
        );
        assert!(!r.fwd.is_forwarding(0), "settled");
        let again = r.fwd.process(
            0,
            T0,
            &r.app,
            &mut r.http,
            addr(CLIENT),
            &[],
            &mut out,
            None,
        );
        assert_eq!((again.consumed, again.produced), (0, 0));
    }
}

#[test]
fn a_post_is_never_retried_and_gets_the_502() {
    let mut r = Rig::new(upstream("shop", &[A, B], Policy::RoundRobin, None));
    r.client(
        T0,
        b"POST /api/x HTTP/1.1\r\nHost: shop\r\nContent-Length: 1\r\n\r\nz",
    );
    r.event(T0, UpstreamEvent::ConnectFailed);
    assert!(r.take_client().starts_with("HTTP/1.1 502 Bad Gateway\r\n"));
    assert_eq!(r.fwd.table().conns.len(), 1, "no second connection");
}

#[test]
fn when_every_server_failed_the_retry_ends_in_a_502_and_then_the_pool_answers_503() {
    let mut r = Rig::new(upstream("shop", &[A, B], Policy::RoundRobin, None));
    r.client(T0, GET);
    r.event(T0, UpstreamEvent::ConnectFailed);
    r.event(T0, UpstreamEvent::ConnectFailed);
    assert!(r.take_client().starts_with("HTTP/1.1 502 Bad Gateway\r\n"));
    assert_eq!(r.fwd.table().conns.len(), 2, "one try per server");
    // Both are ejected now (max_fails 1): a new client's request finds none.
    let mut next = HttpConn::new(HttpLimits::default());
    std::mem::swap(&mut r.http, &mut next);
    r.client(T0, GET);
    assert!(r
        .take_client()
        .starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
    assert_eq!(r.fwd.stats().no_server, 1);
}

#[test]
fn a_full_connection_table_is_a_502() {
    let mut r = Rig::new(upstream("shop", &[A], Policy::RoundRobin, None));
    r.fwd.table_mut().max = 0;
    r.client(T0, GET);
    assert!(r.take_client().starts_with("HTTP/1.1 502 Bad Gateway\r\n"));
    assert_eq!(r.fwd.stats().no_connection, 1);
}

#[test]
fn a_close_delimited_body_ends_at_the_upstreams_eof_and_the_connection_is_not_pooled() {
    let mut r = Rig::new(upstream("shop", &[A], Policy::RoundRobin, None));
    r.client(T0, GET);
    r.event(T0, UpstreamEvent::Connected);
    let conn = r.current();
    r.answer(T0, b"HTTP/1.1 200 OK\r\nDate: x\r\n\r\nuntil close");
    r.event(T0, UpstreamEvent::Eof);
    let out = r.take_client();
    assert!(out.contains("Transfer-Encoding: chunked"), "{out}");
    assert!(out.ends_with("b\r\nuntil close\r\n0\r\n\r\n"), "{out}");
    assert_eq!(r.fwd.table().conns[conn].released, Some(0));
}

#[test]
fn an_eof_after_a_partial_head_is_a_502_at_once() {
    let mut r = Rig::new(upstream("shop", &[A], Policy::RoundRobin, None));
    r.client(
        T0,
        b"POST /api/x HTTP/1.1\r\nHost: shop\r\nContent-Length: 0\r\n\r\n",
    );
    r.event(T0, UpstreamEvent::Connected);
    r.answer(T0, b"HTTP/1.1 200 OK\r\nContent-");
    assert_eq!(r.to_client, b"");
    r.event(T0, UpstreamEvent::Eof);
    assert!(r.take_client().starts_with("HTTP/1.1 502 Bad Gateway\r\n"));
    assert_eq!(r.counters(A).failures.closed, 1);
}

#[test]
fn a_request_in_flight_across_a_reload_ends_on_the_pool_it_started_with() {
    let mut r = Rig::new(upstream("shop", &[A], Policy::RoundRobin, None));
    r.client(T0, GET);
    r.event(T0, UpstreamEvent::Connected);
    // The reload: new pools, a different server. The connection keeps the old App (it is not
    // between requests), as `Answers` does.
    let old = std::mem::replace(
        &mut r.app,
        app_with(config(upstream("shop", &[B], Policy::RoundRobin, None))),
    );
    let new = std::mem::replace(&mut r.app, old);
    r.answer(T0, OK);
    assert!(r.take_client().ends_with("ok"));
    assert_eq!(r.fwd.in_flight(), 0);
    r.app = new;
    r.client(T0, GET);
    let conn = r.current();
    assert_eq!(r.fwd.table().conns[conn].addr, addr(B));
    assert_eq!(
        r.fwd.gens.len(),
        1,
        "the old generation is dropped once idle"
    );
}

#[test]
fn a_client_that_goes_away_abandons_the_exchange_without_blaming_the_server() {
    let mut r = Rig::new(upstream("shop", &[A], Policy::RoundRobin, None));
    r.client(T0, GET);
    r.event(T0, UpstreamEvent::Connected);
    let conn = r.current();
    r.fwd.close(0, T0);
    assert_eq!(r.fwd.table().conns[conn].released, Some(0));
    assert_eq!(r.counters(A).abandoned, 1);
    assert_eq!(r.fwd.in_flight(), 0);
    // Not ejected: the next request still goes there.
    let mut next = HttpConn::new(HttpLimits::default());
    std::mem::swap(&mut r.http, &mut next);
    r.client(T0, GET);
    assert_eq!(r.fwd.table().conns[r.current()].addr, addr(A));
}

#[test]
fn consistent_hashing_on_a_field_keeps_a_key_on_one_server() {
    let hash = Some(HashKeySource::Header("X-User".into()));
    let mut r = Rig::new(upstream(
        "shop",
        &[A, B, "10.0.0.3:80"],
        Policy::ConsistentHash,
        hash,
    ));
    let mut by_user = std::collections::HashMap::new();
    for round in 0..3 {
        for user in ["ann", "bob", "cy", "dee"] {
            r.client(
                T0,
                format!("GET /api/x HTTP/1.1\r\nHost: s\r\nx-user: {user}\r\n\r\n").as_bytes(),
            );
            let conn = r.current();
            let server = r.fwd.table().conns[conn].addr;
            if round == 0 {
                by_user.insert(user, server);
                r.event(T0, UpstreamEvent::Connected);
            } else {
                assert_eq!(by_user[user], server, "{user} moved");
            }
            r.answer(T0, OK);
        }
    }
}

#[test]
fn the_sweep_runs_the_exchanges_timers_and_a_silent_upstream_gets_a_504() {
    let mut r = Rig::new(upstream("shop", &[A], Policy::RoundRobin, None));
    r.client(T0, GET);
    r.event(T0, UpstreamEvent::Connected);
    let mut due = Vec::new();
    r.fwd.sweep(T0 + Duration::from_secs(1), &mut due);
    assert!(due.is_empty());
    let late = T0 + Timeouts::default().read + Duration::from_millis(1);
    r.fwd.sweep(late, &mut due);
    assert_eq!(due, vec![0]);
    r.pump(late);
    assert!(r
        .take_client()
        .starts_with("HTTP/1.1 504 Gateway Timeout\r\n"));
    assert_eq!(r.counters(A).failures.read_timeout, 1);
}

#[test]
fn header_values_are_found_without_regard_to_case_and_trimmed() {
    let head = b"GET / HTTP/1.1\r\nHost: h\r\nX-Key:  v 1 \r\n\r\n";
    assert_eq!(header_value(head, b"x-key"), Some(&b"v 1"[..]));
    assert_eq!(header_value(head, b"x-none"), None);
    assert_eq!(header_value(head, b"GET / HTTP/1.1"), None);
}

#[test]
fn a_server_the_health_check_says_is_down_takes_no_request_until_it_is_up_again() {
    let mut up = upstream("shop", &[A, B], Policy::RoundRobin, None);
    up.health_check = Some(crate::proxy::config::HealthCheck {
        path: "/health".into(),
        interval: Duration::from_secs(5),
        expect_status: 200,
        timeout: Duration::from_secs(2),
    });
    let mut r = Rig::new(up);
    let board = Arc::new(crate::proxy::health::HealthBoard::default());
    board.set("shop", addr(A), Health::Down);
    r.fwd.set_health_board(Arc::clone(&board));
    let mut servers = Vec::new();
    for _ in 0..4 {
        let before = r.fwd.table().conns.len();
        r.client(T0, GET);
        let conn = r.current();
        servers.push(r.fwd.table().conns[conn].addr);
        if r.fwd.table().conns.len() > before {
            r.event(T0, UpstreamEvent::Connected);
        }
        r.answer(T0, OK);
    }
    assert!(servers.iter().all(|&s| s == addr(B)), "{servers:?}");
    let mut states = Vec::new();
    r.fwd.snapshot(T0, &mut states);
    assert!(states.iter().any(|s| s.server == A && s.health_check_down));
    // Up again: the next sweep copies it into the pool.
    board.set("shop", addr(A), Health::Up);
    r.fwd.sweep(T0, &mut Vec::new());
    let mut seen_a = false;
    for _ in 0..4 {
        let before = r.fwd.table().conns.len();
        r.client(T0, GET);
        let conn = r.current();
        seen_a |= r.fwd.table().conns[conn].addr == addr(A);
        if r.fwd.table().conns.len() > before {
            r.event(T0, UpstreamEvent::Connected);
        }
        r.answer(T0, OK);
    }
    assert!(seen_a, "A is back in rotation");
}

#[test]
fn a_pool_without_keepalive_never_pools_a_connection_even_when_the_upstream_would_keep_it() {
    let mut up = upstream("shop", &[A], Policy::RoundRobin, None);
    up.keepalive = 0;
    let mut r = Rig::new(up);
    r.client(T0, GET);
    let conn = r.current();
    let head = String::from_utf8_lossy(&r.fwd.table().conns[conn].sent).into_owned();
    assert!(head.contains("Connection: close\r\n"), "{head}");
    r.event(T0, UpstreamEvent::Connected);
    // HTTP/1.1 without Connection: close, as Python's server answers.
    r.answer(T0, OK);
    assert!(r.take_client().ends_with("ok"));
    assert_eq!(r.fwd.table().conns[conn].released, Some(0));
}

#[test]
fn a_pooled_connection_the_upstream_closed_meanwhile_is_replaced_without_blaming_the_server() {
    // Two servers and max_fails 1: a blamed failure would eject A.
    let mut r = Rig::new(upstream("shop", &[A, B], Policy::RoundRobin, None));
    r.client(T0, GET);
    let first = r.current();
    let server = r.fwd.table().conns[first].addr;
    r.event(T0, UpstreamEvent::Connected);
    r.answer(T0, OK);
    assert!(r.take_client().ends_with("ok"));
    // Round robin would take the other server now; make it take the pooled one by asking
    // twice and following the pooled connection.
    let mut tries = 0;
    loop {
        tries += 1;
        let before = r.fwd.table().conns.len();
        r.client(T0, GET);
        if r.current() == first {
            break;
        }
        if r.fwd.table().conns.len() > before {
            r.event(T0, UpstreamEvent::Connected);
        }
        r.answer(T0, OK);
        r.take_client();
        assert!(tries < 4, "the pooled connection was never reused");
    }
    // The upstream had closed it: EOF before any response byte.
    r.event(T0, UpstreamEvent::Eof);
    let fresh = r.current();
    assert_ne!(fresh, first, "a new connection");
    assert_eq!(
        r.fwd.table().conns[fresh].addr,
        server,
        "to the same server"
    );
    r.event(T0, UpstreamEvent::Connected);
    r.answer(T0, OK);
    assert!(r.take_client().ends_with("ok"));
    let c = r.counters(&server.to_string());
    assert_eq!((c.stale_connections, c.retried), (1, 0));
    assert_eq!(
        c.failures,
        FailureCounts::default(),
        "not the server's failure"
    );
    let mut states = Vec::new();
    r.fwd.snapshot(T0, &mut states);
    assert!(states.iter().all(|s| s.ejected_threads == 0));
}

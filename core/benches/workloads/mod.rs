//! The engine workloads, one step each: shared by the criterion benchmark (`engine.rs`, wall
//! time) and the instruction counter (`examples/engine_instructions.rs`, run under
//! cachegrind), so both measure the same work.

use std::hint::black_box;

use xgate_core::app::{App, AppConfig};
use xgate_core::engine::{Engine, EngineConfig};
use xgate_core::testkit::ScriptedClient;
use xgate_core::time::{Duration, Instant};

const GET_HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n";
const GET_HEALTH_CLOSE: &[u8] = b"GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
const POST_ECHO_HEAD: &[u8] = b"POST /echo HTTP/1.1\r\nHost: bench\r\nContent-Length: 1024\r\n\r\n";
const ECHO_BODY_LEN: usize = 1024;
const GET_BYTES_16K: &[u8] = b"GET /bytes/16384 HTTP/1.1\r\nHost: bench\r\n\r\n";

fn engine(now: Instant) -> Engine {
    let app = App::new(&AppConfig::default()).expect("the default config is valid");
    let mut engine = Engine::new(EngineConfig::default(), app, [42u8; 32], now);
    engine.set_wall_clock(1_700_000_000);
    engine
}

/// The engine, the clock and the client's buffers every workload drives.
pub struct Rig {
    pub engine: Engine,
    pub now: Instant,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl Rig {
    fn new() -> Rig {
        let now = Instant::from_secs(1);
        Rig {
            engine: engine(now),
            now,
            buf: Vec::with_capacity(2048),
            out: vec![0u8; 2048],
        }
    }

    /// Hands every frame the engine wants to send to the client; returns how many there were.
    fn drain(&mut self, client: &mut ScriptedClient) -> usize {
        let mut frames = 0;
        while let Some(n) = self.engine.poll_transmit(self.now, &mut self.out) {
            client.receive(&self.out[..n], None);
            frames += 1;
        }
        while self.engine.poll_flow_event().is_some() {}
        frames
    }

    /// Sends `request` (which also acknowledges everything received so far) and hands the
    /// client every frame the engine answers with until `response_len` in-order bytes have
    /// arrived. The client acknowledges every second data segment, as a Linux receiver does
    /// (RFC 9293 §3.8.6.3: an ACK for at least every second full-sized segment), and once more
    /// whenever the server stops short of the whole response (the client's delayed-ACK timer).
    /// A last odd segment is acknowledged by the next request.
    fn exchange(&mut self, client: &mut ScriptedClient, request: &[u8], response_len: usize) {
        let start = client.server_next;
        let n = client.send(&mut self.buf, request);
        self.engine
            .handle_frame(self.now, black_box(&self.buf[..n]))
            .expect("request accepted");
        let mut unacked = 0;
        // Bounded: a round that ends short of the whole response has received segments it has
        // not acknowledged yet (else the assertion below fails), and the response is finite.
        loop {
            while let Some(n) = self.engine.poll_transmit(self.now, &mut self.out) {
                let got = client.receive(&self.out[..n], None);
                if got.is_some_and(|r| r.accepted > 0) {
                    unacked += 1;
                }
                if unacked == 2 {
                    self.ack(client);
                    unacked = 0;
                }
            }
            while self.engine.poll_flow_event().is_some() {}
            let got = client.server_next.distance_from(start).unwrap_or(0) as usize;
            assert!(got <= response_len, "more than the response arrived");
            if got == response_len {
                return;
            }
            assert!(unacked > 0, "the response stalled at {got} bytes");
            self.ack(client);
            unacked = 0;
        }
    }

    /// A pure ACK of everything received.
    fn ack(&mut self, client: &mut ScriptedClient) {
        let n = client.send(&mut self.buf, &[]);
        self.engine
            .handle_frame(self.now, black_box(&self.buf[..n]))
            .expect("ACK accepted");
    }

    /// One exchange whose response length is not known yet: the head says it (every workload
    /// answer carries `Content-Length`). Returns the response's bytes.
    fn first_exchange(&mut self, client: &mut ScriptedClient, request: &[u8]) -> Vec<u8> {
        let mut response = Vec::new();
        let start = client.server_next;
        let n = client.send(&mut self.buf, request);
        self.engine
            .handle_frame(self.now, &self.buf[..n])
            .expect("request accepted");
        // Bounded by the response's length: each round receives bytes or fails the assertion.
        loop {
            let before = client.server_next;
            while let Some(n) = self.engine.poll_transmit(self.now, &mut self.out) {
                client.receive(&self.out[..n], Some(&mut response));
            }
            while self.engine.poll_flow_event().is_some() {}
            if response_len(&response) == Some(response.len()) {
                break;
            }
            assert_ne!(client.server_next, before, "the first response stalled");
            self.ack(client);
        }
        assert_eq!(
            client.server_next.distance_from(start),
            Some(response.len() as u32)
        );
        assert!(response.starts_with(b"HTTP/1.1 200 OK\r\n"));
        response
    }

    fn handshake(&mut self, client: &mut ScriptedClient) {
        let n = client.syn(&mut self.buf, true);
        self.engine
            .handle_frame(self.now, &self.buf[..n])
            .expect("SYN accepted");
        self.drain(client);
        let n = client.send(&mut self.buf, &[]);
        self.engine
            .handle_frame(self.now, &self.buf[..n])
            .expect("cookie ACK accepted");
        self.drain(client);
    }
}

/// Keep-alive `GET /health` on one connection: the request frame in, the response frames out.
pub struct KeepAlive {
    pub rig: Rig,
    client: ScriptedClient,
}

impl KeepAlive {
    pub fn new() -> KeepAlive {
        let mut rig = Rig::new();
        let mut client = ScriptedClient::new(40000, 80, 1);
        rig.handshake(&mut client);
        KeepAlive { rig, client }
    }

    /// The same with the access log on: a record per request into a sink of `capacity`,
    /// emptied when full as the poller's hand-over would.
    pub fn logged(capacity: usize) -> KeepAlive {
        let mut rig = Rig::new();
        rig.engine.enable_access_log(capacity);
        let mut client = ScriptedClient::new(40000, 80, 1);
        rig.handshake(&mut client);
        KeepAlive { rig, client }
    }

    /// Empties the access log's sink when it is full (what a poller hands over); returns the
    /// records it held then (0 when it was not full).
    pub fn hand_over_if_full(&mut self) -> usize {
        match self.rig.engine.access_sink() {
            Some(sink) if sink.is_full() => {
                let n = sink.len();
                sink.clear();
                n
            }
            _ => 0,
        }
    }

    /// Records in the access log's sink now.
    pub fn logged_now(&mut self) -> usize {
        self.rig.engine.access_sink().map_or(0, |s| s.len())
    }

    pub fn step(&mut self) {
        let rig = &mut self.rig;
        // The request also acknowledges the previous response.
        let n = self.client.send(&mut rig.buf, GET_HEALTH);
        rig.engine
            .handle_frame(rig.now, black_box(&rig.buf[..n]))
            .expect("request accepted");
        let frames = rig.drain(&mut self.client);
        debug_assert!(frames >= 1);
        rig.now += Duration::from_micros(5);
    }
}

/// A whole connection per request: SYN, cookie SYN-ACK, ACK, request with `Connection:
/// close`, response + FIN, client FIN, final ACK.
pub struct Churn {
    pub rig: Rig,
    port: u16,
    generation: u32,
}

impl Churn {
    pub fn new() -> Churn {
        Churn {
            rig: Rig::new(),
            port: 1024,
            generation: 0,
        }
    }

    pub fn step(&mut self) {
        self.port = if self.port == u16::MAX {
            1024
        } else {
            self.port + 1
        };
        // A port comes back while its last connection may still be in TIME_WAIT; like a real
        // client, move the ISN and the timestamp clock forward (RFC 6191).
        self.generation = self.generation.wrapping_add(1);
        let mut client = ScriptedClient::new(self.port, 80, self.generation.wrapping_mul(1 << 20));
        client.ts = self.generation.wrapping_mul(1000);
        let rig = &mut self.rig;
        rig.handshake(&mut client);
        let n = client.send(&mut rig.buf, GET_HEALTH_CLOSE);
        rig.engine
            .handle_frame(rig.now, &rig.buf[..n])
            .expect("request accepted");
        rig.drain(&mut client);
        // The server closed after the response; acknowledge its FIN and close our side.
        let n = client.fin(&mut rig.buf);
        rig.engine
            .handle_frame(rig.now, &rig.buf[..n])
            .expect("FIN accepted");
        rig.drain(&mut client);
        rig.now += Duration::from_micros(20);
    }
}

/// A SYN answered with a cookie SYN-ACK (the cost of a SYN flood).
pub struct Syn {
    pub rig: Rig,
    port: u16,
}

impl Syn {
    pub fn new() -> Syn {
        Syn {
            rig: Rig::new(),
            port: 1024,
        }
    }

    pub fn step(&mut self) {
        self.port = self.port.wrapping_add(1).max(1024);
        let mut client = ScriptedClient::new(self.port, 80, 7);
        let rig = &mut self.rig;
        let n = client.syn(&mut rig.buf, true);
        rig.engine
            .handle_frame(rig.now, black_box(&rig.buf[..n]))
            .expect("SYN accepted");
        rig.drain(&mut client);
    }
}

/// The length of a response with `Content-Length` once its head has arrived.
fn response_len(response: &[u8]) -> Option<usize> {
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&response[..head_end]).ok()?;
    let value = head
        .split("\r\n")
        .find_map(|line| line.strip_prefix("Content-Length: "))?;
    Some(head_end + value.parse::<usize>().ok()?)
}

/// Keep-alive `POST /echo` with a 1 KiB body on one connection (one frame each way); each
/// step checks that the whole echoed response arrived.
pub struct Echo1k {
    pub rig: Rig,
    client: ScriptedClient,
    request: Vec<u8>,
    response_len: usize,
}

impl Echo1k {
    pub fn new() -> Echo1k {
        let mut rig = Rig::new();
        let mut client = ScriptedClient::new(40000, 80, 1);
        rig.handshake(&mut client);
        let mut request = POST_ECHO_HEAD.to_vec();
        request.extend((0..ECHO_BODY_LEN).map(|i| b'A' + (i % 26) as u8));
        let response = rig.first_exchange(&mut client, &request);
        assert!(response.ends_with(&request[POST_ECHO_HEAD.len()..]));
        Echo1k {
            rig,
            client,
            request,
            response_len: response.len(),
        }
    }

    pub fn step(&mut self) {
        let rig = &mut self.rig;
        rig.exchange(&mut self.client, &self.request, self.response_len);
        rig.now += Duration::from_micros(5);
    }
}

/// Keep-alive `GET /bytes/16384` on one connection: a dozen full-sized segments per response,
/// the client acknowledging every second one.
pub struct Bytes16k {
    pub rig: Rig,
    client: ScriptedClient,
    response_len: usize,
}

impl Bytes16k {
    pub fn new() -> Bytes16k {
        let mut rig = Rig::new();
        let mut client = ScriptedClient::new(40000, 80, 1);
        rig.handshake(&mut client);
        let response = rig.first_exchange(&mut client, GET_BYTES_16K);
        assert!(response.ends_with(b"xyzabcd"), "16384 bytes of the pattern");
        Bytes16k {
            rig,
            client,
            response_len: response.len(),
        }
    }

    pub fn step(&mut self) {
        let rig = &mut self.rig;
        rig.exchange(&mut self.client, GET_BYTES_16K, self.response_len);
        rig.now += Duration::from_micros(20);
    }
}

/// The upstream side of `ProxiedKeepAlive`: one connection to one server that answers each
/// complete request head at once with a canned response (the upstream's own work is not
/// counted; what is counted is the gateway's forwarding).
pub struct InstantUpstream {
    received: Vec<u8>,
    room: Vec<u8>,
    sent: usize,
    open: bool,
    idle: bool,
    /// The connection is up: requests are answered as they come.
    up: bool,
    /// A request came before the connection was up.
    waiting: bool,
}

impl InstantUpstream {
    /// The connection comes up: a request that waited is answered.
    fn come_up(&mut self) {
        self.up = true;
        if std::mem::take(&mut self.waiting) {
            self.received.extend_from_slice(UPSTREAM_OK);
        }
    }
}

const UPSTREAM_OK: &[u8] =
    b"HTTP/1.1 200 OK\r\nDate: Tue, 14 Nov 2023 22:13:20 GMT\r\nContent-Length: 2\r\n\r\nok";

impl xgate_core::proxy::forwarder::UpstreamTable for InstantUpstream {
    type Conn = u32;
    fn checkout_idle(&mut self, _: std::net::SocketAddr, _: u64, _: Instant) -> Option<u32> {
        if self.open && self.idle {
            self.idle = false;
            Some(0)
        } else {
            None
        }
    }
    fn connect(&mut self, _: std::net::SocketAddr, _: u64) -> Option<u32> {
        self.open = true;
        self.idle = false;
        Some(0)
    }
    fn buffers(&mut self, _: u32) -> (&[u8], &mut [u8]) {
        (&self.received, &mut self.room)
    }
    fn consume(&mut self, _: u32, n: usize) {
        self.received.drain(..n);
    }
    fn commit_send(&mut self, _: u32, n: usize) {
        // A request head ends with an empty line: answer it.
        self.sent += n;
        if n >= 4 && self.room[n - 4..n] == *b"\r\n\r\n" {
            if self.up {
                self.received.extend_from_slice(UPSTREAM_OK);
            } else {
                self.waiting = true;
            }
        }
    }
    fn release(&mut self, _: u32, max_idle: usize, _: Instant) {
        self.idle = max_idle > 0;
        self.open = max_idle > 0;
    }
    fn idle_count(&self, _: std::net::SocketAddr) -> usize {
        usize::from(self.idle)
    }
    fn recv_capacity(&self) -> usize {
        16 * 1024
    }
}

/// Keep-alive `GET /api/x` forwarded to an upstream that answers at once: the request frame
/// in, the forwarded head out to the upstream, its answer back as the client's response frames
/// (the forwarding's own cost beside `KeepAlive`'s `/health`).
pub struct ProxiedKeepAlive {
    pub rig: Rig,
    client: ScriptedClient,
    pub forwarder: xgate_core::proxy::forwarder::Forwarder<InstantUpstream>,
}

const GET_API: &[u8] = b"GET /api/x HTTP/1.1\r\nHost: bench\r\n\r\n";

impl ProxiedKeepAlive {
    pub fn new() -> ProxiedKeepAlive {
        use std::sync::Arc;
        use xgate_core::proxy::balance::HashKey;
        use xgate_core::proxy::config::{ProxyConfig, UpstreamConfig};
        use xgate_core::proxy::route::{RouteSpec, RouteTable, UpstreamId};
        let server = "127.0.0.1:8080".parse().expect("an address");
        let proxy = ProxyConfig {
            upstreams: vec![UpstreamConfig::with_defaults("bench", &[server])],
            routes: RouteTable::new(vec![RouteSpec::prefix_to("/api", UpstreamId(0))])
                .expect("a valid route"),
        };
        let now = Instant::from_secs(1);
        let mut app = App::new(&AppConfig::default()).expect("the default config is valid");
        app.set_proxy(Arc::new(proxy));
        let mut engine = Engine::new(EngineConfig::default(), app, [42u8; 32], now);
        engine.set_wall_clock(1_700_000_000);
        let mut rig = Rig {
            engine,
            now,
            buf: Vec::with_capacity(2048),
            out: vec![0u8; 2048],
        };
        let mut client = ScriptedClient::new(40000, 80, 1);
        rig.handshake(&mut client);
        let table = InstantUpstream {
            received: Vec::with_capacity(4096),
            room: vec![0u8; 16 * 1024],
            sent: 0,
            open: false,
            idle: false,
            up: false,
            waiting: false,
        };
        let mut forwarder = xgate_core::proxy::forwarder::Forwarder::new(table, HashKey([7; 16]));
        // The first request opens the upstream connection; from then on it is pooled.
        let n = client.send(&mut rig.buf, GET_API);
        rig.engine
            .handle_frame_driven(rig.now, &rig.buf[..n], &mut forwarder)
            .expect("request accepted");
        forwarder.table_mut().come_up();
        assert!(forwarder.on_upstream(
            0,
            0,
            xgate_core::proxy::forwarder::UpstreamEvent::Connected,
            rig.now
        ));
        rig.engine.service_slot(rig.now, 0, &mut forwarder);
        assert!(rig.drain(&mut client) >= 1);
        ProxiedKeepAlive {
            rig,
            client,
            forwarder,
        }
    }

    pub fn step(&mut self) {
        let rig = &mut self.rig;
        let n = self.client.send(&mut rig.buf, GET_API);
        rig.engine
            .handle_frame_driven(rig.now, black_box(&rig.buf[..n]), &mut self.forwarder)
            .expect("request accepted");
        // The upstream's answer is in: the client connection runs again (a poller does this
        // when the upstream ring reports the receive).
        self.forwarder.on_upstream(
            0,
            0,
            xgate_core::proxy::forwarder::UpstreamEvent::Progress,
            rig.now,
        );
        rig.engine.service_slot(rig.now, 0, &mut self.forwarder);
        let frames = rig.drain(&mut self.client);
        assert!(
            frames >= 1,
            "no answer after {} requests: {:?}",
            self.upstream_requests(),
            self.forwarder.server_stats().first().map(|s| &s.counters)
        );
        rig.now += Duration::from_micros(5);
    }

    /// Requests the upstream has answered (one per step after the first).
    pub fn upstream_requests(&self) -> u64 {
        self.forwarder
            .server_stats()
            .first()
            .map_or(0, |s| s.counters.responses[1])
    }
}

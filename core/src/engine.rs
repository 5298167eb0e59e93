//! The bypass path's sans-IO gateway: Ethernet frames in, Ethernet frames out.
//!
//! `Engine` joins the three layers the AF_XDP poller drives: one `tcp::Endpoint` for the RX
//! queue, one `http::HttpConn` per live connection (slots reused, never freed), and the `App`
//! that decides the answers. It moves bytes between a connection's TCP buffers and its HTTP
//! state directly, with no intermediate copy except when a request head straddles the end of
//! the receive ring (then up to `max_header_bytes` are made contiguous in one scratch buffer).
//!
//! Call order for the I/O layer (and the simulator): `handle_frame` for each received frame,
//! `handle_timeout` when `poll_timeout` is due, then `poll_transmit` until it returns `None`,
//! and `poll_flow_event` until it returns `None` (to keep the BPF `user_flows` map in step).

use std::collections::VecDeque;
use std::net::SocketAddr;

use crate::answers::Served;
use crate::app::App;
use crate::http::{HttpConn, HttpLimits, HttpStats};
use crate::proxy::forwarder::{Direct, HttpDriver};
use crate::sessions::{HttpSessions, SendStall, Session, SWEEP_PERIOD as HTTP_SWEEP_PERIOD};
use crate::tally::PortCount;
use crate::tcp::{
    ConnHandle, DropReason, Endpoint, Event, FlowKey, SendBacklog, TcpConfig, TcpStats,
};
use crate::time::Instant;
use crate::tls::{TlsConn, TlsStats, TlsThread};
use crate::wire::PmtuMessage;

/// Contiguous output room offered across the transmit ring's wrap: the most a proxied
/// response's head can need (twice a 16 KiB upstream head, with the fields added).
const OUT_SCRATCH_LEN: usize = 40 * 1024;

/// Everything the engine needs to know at start.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub tcp: TcpConfig,
    pub http: HttpLimits,
    /// TLS handshakes started per round of the poller's loop (0: no bound); see
    /// [`Engine::begin_round`].
    pub tls_handshakes_per_round: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            tcp: TcpConfig::default(),
            http: HttpLimits::default(),
            tls_handshakes_per_round: crate::tls::DEFAULT_HANDSHAKES_PER_ROUND,
        }
    }
}

/// A connection came or went: what the BPF `user_flows` map must learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowEvent {
    Added(FlowKey),
    Removed(FlowKey),
}

/// Engine-level counters (the TCP endpoint keeps its own, see [`Engine::tcp_stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// HTTP counters summed over connections that have closed.
    pub http_closed: HttpStats,
    /// Frames the TCP endpoint refused, by reason, are in `TcpStats`; this counts flow events
    /// lost because the I/O layer did not drain `poll_flow_event` (should stay zero).
    pub flow_events_dropped: u64,
    /// Times a request head or chunk line straddled the receive ring's wrap and was copied.
    pub linearized: u64,
    /// Times an answer written whole (a proxied response's head) was given contiguous room
    /// across the transmit ring's wrap, and copied into it.
    pub linearized_out: u64,
    /// Connections reset because the peer held its window at zero, with bytes waiting for
    /// it, for `http.idle_timeout` (a client that stops reading).
    pub send_timeouts: u64,
}

/// What a slot of [`HttpSessions`] holds on the bypass path.
struct TcpSession {
    conn: HttpConn,
    /// The TCP connection this slot serves while live.
    handle: Option<ConnHandle>,
    /// `Endpoint::close` was called; nothing more will be written.
    closing: bool,
    /// While bytes wait behind the peer's zero window: since when SND.UNA has not moved.
    send_stall: SendStall,
    /// The client's address (X-Forwarded-For, the pool's hashing).
    peer: SocketAddr,
    /// On a TLS port, the connection's TLS (idle otherwise).
    tls: TlsConn,
    /// The connection is in `Engine::tls_deferred` (its handshake waits for a round).
    tls_queued: bool,
}

impl TcpSession {
    /// The HTTP side is done and, on a TLS port, TLS has written its last bytes.
    fn wants_close(&self) -> bool {
        if self.tls.is_open() {
            self.tls.wants_close(self.conn.wants_close())
        } else {
            self.conn.wants_close()
        }
    }
}

/// Runs HTTP (through TLS on a TLS port) over one stretch of a connection's buffers.
#[allow(clippy::too_many_arguments)]
fn run_http<D: HttpDriver + ?Sized>(
    driver: &mut D,
    tls: &mut TlsThread,
    index: usize,
    now: Instant,
    app: &App,
    slot: &mut TcpSession,
    input: &[u8],
    output: &mut [u8],
    mut log: Option<crate::access::AccessLogIo<'_>>,
) -> crate::http::Progress {
    if !slot.tls.is_open() {
        return driver.process(
            index,
            now,
            app,
            &mut slot.conn,
            slot.peer,
            input,
            output,
            log,
        );
    }
    let peer = slot.peer;
    slot.tls
        .process(now, tls, input, output, &mut slot.conn, |http, i, o| {
            let lent = log.as_mut().map(|io| io.reborrow());
            driver.process(index, now, app, http, peer, i, o, lent)
        })
}

impl Session for TcpSession {
    fn http(&self) -> &HttpConn {
        &self.conn
    }
    fn http_mut(&mut self) -> &mut HttpConn {
        &mut self.conn
    }
}

pub struct Engine {
    tcp: Endpoint,
    /// The live connections' HTTP side: slots indexed by the TCP table's index, answers in
    /// up to two generations across a reload, per-port tally, deadline sweep, drain.
    sessions: HttpSessions<TcpSession>,
    flow_events: VecDeque<FlowEvent>,
    flow_event_cap: usize,
    /// Makes a request head that straddles the receive ring's wrap contiguous.
    scratch: Box<[u8]>,
    /// Gives an answer written whole (a proxied response's head) contiguous room when the
    /// transmit ring's free space wraps (see `service`).
    out_scratch: Box<[u8]>,
    stats: EngineStats,
    /// TLS counters and the round's handshake budget.
    tls: TlsThread,
    /// Connections whose ClientHello waits for a round's budget, oldest first (each once:
    /// `TcpSession::tls_queued`; a closed one is skipped when its turn comes).
    tls_deferred: VecDeque<ConnHandle>,
}

impl Engine {
    pub fn new(config: EngineConfig, app: App, secret: [u8; 32], now: Instant) -> Self {
        let max = config.tcp.max_connections;
        // Every Established is followed by exactly one Closed, so two events per connection
        // slot bound what can be pending if the I/O layer drains once per loop.
        let flow_event_cap = max.saturating_mul(2).max(16);
        Engine {
            tcp: Endpoint::new(config.tcp, secret, now),
            sessions: HttpSessions::new(app, config.http, now + HTTP_SWEEP_PERIOD, 0),
            flow_events: VecDeque::with_capacity(flow_event_cap.min(1 << 16)),
            flow_event_cap,
            scratch: vec![0u8; config.http.max_header_bytes + 1024].into_boxed_slice(),
            out_scratch: vec![0u8; OUT_SCRATCH_LEN].into_boxed_slice(),
            stats: EngineStats::default(),
            tls: TlsThread::new(config.tls_handshakes_per_round),
            tls_deferred: VecDeque::new(),
        }
    }

    /// A new round of the poller's loop, before its frames: the TLS handshake budget is whole
    /// again, and connections whose ClientHello waited for it take it first, oldest first (as
    /// many as it allows: the round's work stays bounded however long the queue is), so a
    /// flood of ClientHellos is served in turn while the round's other connections go on.
    pub fn begin_round<D: HttpDriver + ?Sized>(&mut self, now: Instant, driver: &mut D) {
        self.tls.begin_round();
        if self.tls_deferred.is_empty() {
            return;
        }
        // At most the queue's length at entry: a connection deferred again goes to the back
        // and waits for the next round.
        for _ in 0..self.tls_deferred.len() {
            if !self.tls.has_budget() {
                break;
            }
            let Some(conn) = self.tls_deferred.pop_front() else {
                break;
            };
            let Some(slot) = self.sessions.get_mut(conn.index()) else {
                continue;
            };
            if slot.handle != Some(conn) || !slot.tls_queued {
                continue; // closed meanwhile (the slot may serve another connection now)
            }
            slot.tls_queued = false;
            self.service(now, conn, driver);
        }
        self.drain_events(now, driver);
    }

    /// Connections wait for the next round's TLS handshake budget: the poller must not sleep
    /// (`begin_round` serves them).
    pub fn has_deferred_handshakes(&self) -> bool {
        !self.tls_deferred.is_empty()
    }

    /// The TLS ports' handshakes and failures on this engine.
    pub fn tls_stats(&self) -> &TlsStats {
        &self.tls.stats
    }

    /// Graceful shutdown (RFC 9112 §9.6): connections idle between requests close now (FIN),
    /// a response in progress finishes and closes its connection, a request being read (and
    /// the first one of a connection that has not sent it yet, including connections whose
    /// handshake completes later) is answered with `Connection: close`. New connections are
    /// not refused here: the steering stops sending SYNs (the port is `draining`).
    pub fn begin_drain(&mut self, now: Instant) {
        self.begin_drain_driven(now, &mut Direct);
    }

    /// [`begin_drain`](Self::begin_drain) for a thread whose requests may go upstream.
    pub fn begin_drain_driven<D: HttpDriver + ?Sized>(&mut self, now: Instant, driver: &mut D) {
        if self.sessions.is_draining() {
            return;
        }
        self.sessions.begin_drain();
        // Index loop: `Closed` events only arrive through `drain_events`, so `live` does not
        // change under it.
        for i in 0..self.sessions.len() {
            let index = self.sessions.live()[i] as usize;
            if let Some(conn) = self.sessions.get(index).and_then(|s| s.handle) {
                self.service(now, conn, driver);
            }
        }
        self.drain_events(now, driver);
    }

    /// Whether `begin_drain` was called.
    pub fn is_draining(&self) -> bool {
        self.sessions.is_draining()
    }

    /// Resets every connection that is still open (the end of a shutdown's grace period): the
    /// peers learn at once instead of at their next segment, and each connection's flow is
    /// removed (`FlowEvent::Removed`). Send the RSTs with `poll_transmit`.
    pub fn abort_all(&mut self, now: Instant) {
        self.abort_all_driven(now, &mut Direct);
    }

    /// [`abort_all`](Self::abort_all) for a thread whose requests may go upstream.
    pub fn abort_all_driven<D: HttpDriver + ?Sized>(&mut self, now: Instant, driver: &mut D) {
        for i in 0..self.sessions.len() {
            let index = self.sessions.live()[i] as usize;
            if let Some(conn) = self.sessions.get(index).and_then(|s| s.handle) {
                self.tcp.abort(conn);
            }
        }
        self.drain_events(now, driver);
    }

    /// One received Ethernet frame: a TCP segment, or an ICMP "fragmentation needed" /
    /// ICMPv6 "packet too big" quoting one of ours (the connection's send MSS may go down,
    /// `TcpStats::pmtu_*`). Refused frames are counted by the TCP endpoint.
    pub fn handle_frame(&mut self, now: Instant, frame: &[u8]) -> Result<(), DropReason> {
        self.handle_frame_driven(now, frame, &mut Direct)
    }

    /// [`handle_frame`](Self::handle_frame), running HTTP through `driver` (a thread's
    /// `Forwarder` when requests may go upstream).
    pub fn handle_frame_driven<D: HttpDriver + ?Sized>(
        &mut self,
        now: Instant,
        frame: &[u8],
        driver: &mut D,
    ) -> Result<(), DropReason> {
        let result = self.tcp.handle_frame(now, frame);
        self.drain_events(now, driver);
        result
    }

    /// Moves the connection in slot `index` forward (its upstream's answer came, or room for
    /// its request): what [`handle_frame`](Self::handle_frame) does for a segment.
    pub fn service_slot<D: HttpDriver + ?Sized>(
        &mut self,
        now: Instant,
        index: usize,
        driver: &mut D,
    ) {
        if let Some(conn) = self.sessions.get(index).and_then(|s| s.handle) {
            self.service(now, conn, driver);
            self.drain_events(now, driver);
        }
    }

    /// Writes the next frame to send into `buf` and returns its length.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        self.tcp.poll_transmit(now, buf)
    }

    /// The next instant `handle_timeout` has work to do.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let http = self.sessions.poll_timeout();
        match (self.tcp.poll_timeout(), http) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.handle_timeout_driven(now, &mut Direct);
    }

    /// [`handle_timeout`](Self::handle_timeout) for a thread whose requests may go upstream.
    /// True when the HTTP sweep ran (the caller runs its upstream side's sweep with it).
    pub fn handle_timeout_driven<D: HttpDriver + ?Sized>(
        &mut self,
        now: Instant,
        driver: &mut D,
    ) -> bool {
        self.tcp.handle_timeout(now);
        self.drain_events(now, driver);
        if self.sessions.sweep_due(now) {
            self.sweep_http_deadlines(now, driver);
            return true;
        }
        false
    }

    #[must_use]
    pub fn poll_flow_event(&mut self) -> Option<FlowEvent> {
        self.flow_events.pop_front()
    }

    /// Wall-clock seconds since the Unix epoch, for the `Date` header. Cheap when unchanged.
    pub fn set_wall_clock(&mut self, unix_secs: u64) {
        self.sessions.set_date(unix_secs);
    }

    pub fn connection_count(&self) -> usize {
        self.tcp.connection_count()
    }

    /// Keep path MTU messages about other queues' flows for [`poll_foreign_pmtu`]
    /// (`Endpoint::forward_foreign_pmtu`): for an engine that is one of several RX queues'.
    ///
    /// [`poll_foreign_pmtu`]: Self::poll_foreign_pmtu
    pub fn forward_foreign_pmtu(&mut self, on: bool) {
        self.tcp.forward_foreign_pmtu(on);
    }

    /// A path MTU message about a flow this engine does not hold, for the caller to hand to
    /// the engine that does ([`handle_forwarded_pmtu`](Self::handle_forwarded_pmtu)).
    #[must_use]
    pub fn poll_foreign_pmtu(&mut self) -> Option<PmtuMessage> {
        self.tcp.poll_foreign_pmtu()
    }

    /// A path MTU message another queue's engine received about one of this engine's
    /// connections; what it resends leaves through [`poll_transmit`](Self::poll_transmit).
    pub fn handle_forwarded_pmtu(&mut self, now: Instant, m: &PmtuMessage) {
        self.tcp.handle_forwarded_pmtu(now, m);
    }

    pub fn tcp_stats(&self) -> &TcpStats {
        self.tcp.stats()
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Requests accepted so far (a running total, cheap to read).
    pub fn requests(&self) -> u64 {
        self.sessions.requests()
    }

    /// Connections and requests by local port.
    pub fn port_counts(&self) -> &[PortCount] {
        self.sessions.port_counts()
    }

    /// HTTP counters of closed connections plus those of the live ones (one pass over the
    /// live connections).
    pub fn http_stats(&self) -> HttpStats {
        self.sessions.http_stats()
    }

    /// The routes new requests are answered with.
    pub fn app(&self) -> &App {
        self.sessions.app()
    }

    /// Reloads the routes and HTTP limits without dropping a connection: new connections and
    /// connections between requests use them at once; a request or response in progress
    /// finishes with the ones it started with (see [`crate::answers`]). A reload that comes
    /// while an earlier one still waits for such connections is applied after them.
    pub fn reload(&mut self, next: Served) {
        if self.sessions.reload(next) {
            self.apply_reload();
        }
    }

    /// Reloads applied so far.
    pub fn reloads_applied(&self) -> u64 {
        self.sessions.reloads_applied()
    }

    /// Turns the access log on for connections established from now on (see
    /// [`HttpSessions::enable_access_log`]).
    pub fn enable_access_log(&mut self, capacity: usize) {
        self.sessions
            .enable_access_log(crate::access::PathKind::Bypass, capacity);
    }

    /// The access-log records of this engine's connections since the owner last emptied it.
    pub fn access_sink(&mut self) -> Option<&mut crate::access::AccessSink> {
        self.sessions.access_sink()
    }

    fn apply_reload(&mut self) {
        let scratch = &mut self.scratch;
        self.sessions.apply_reload(|limits| {
            let need = limits.max_header_bytes + 1024;
            if scratch.len() < need {
                // Once per reload that raises the head limit, never per request.
                *scratch = vec![0u8; need].into_boxed_slice();
            }
        });
    }

    fn drain_events<D: HttpDriver + ?Sized>(&mut self, now: Instant, driver: &mut D) {
        while let Some(event) = self.tcp.poll_event() {
            match event {
                Event::Established { conn, flow } => {
                    self.open_slot(now, conn, flow.local_port(), flow.remote());
                    self.sessions.set_access_client(conn.index(), flow.remote());
                    self.push_flow_event(FlowEvent::Added(flow));
                    // The handshake-completing ACK may have carried a request.
                    self.service(now, conn, driver);
                }
                Event::Readable(conn) | Event::Writable(conn) => self.service(now, conn, driver),
                Event::PeerClosed(conn) => {
                    // HTTP must see the final input before it learns that no more will come.
                    self.service(now, conn, driver);
                    if let Some(slot) = self.sessions.get_mut(conn.index()) {
                        slot.conn.peer_closed(now);
                    }
                    self.service(now, conn, driver);
                }
                Event::Closed { conn, flow } => {
                    driver.closed(conn.index(), now);
                    self.close_slot(now, conn);
                    self.push_flow_event(FlowEvent::Removed(flow));
                }
            }
        }
    }

    fn push_flow_event(&mut self, event: FlowEvent) {
        if self.flow_events.len() >= self.flow_event_cap {
            self.stats.flow_events_dropped += 1;
            return;
        }
        self.flow_events.push_back(event);
    }

    fn open_slot(&mut self, now: Instant, conn: ConnHandle, port: u16, peer: SocketAddr) {
        let tally = self.sessions.tally_slot(port);
        // Slots grow once per index, up to the TCP table's bound; reused afterwards.
        let slot = self
            .sessions
            .open(conn.index(), now, tally, |limits| TcpSession {
                conn: HttpConn::new(limits),
                handle: None,
                closing: false,
                send_stall: SendStall::default(),
                peer,
                tls: TlsConn::default(),
                tls_queued: false,
            });
        slot.handle = Some(conn);
        slot.peer = peer;
        slot.closing = false;
        slot.send_stall.clear();
        // An entry of the slot's previous connection may still be in the queue: it is
        // skipped there (another handle), and this connection queues afresh.
        slot.tls_queued = false;
        let limits = slot.conn.limits();
        let max_head = limits
            .max_header_bytes
            .max(limits.max_trailer_bytes as usize);
        if let Some(settings) = self.sessions.app().tls_for(port).cloned() {
            if let Some(slot) = self.sessions.get_mut(conn.index()) {
                slot.tls
                    .open(settings, now, TlsConn::plain_capacity(max_head));
            }
        }
    }

    fn close_slot(&mut self, now: Instant, conn: ConnHandle) {
        if let Some(slot) = self.sessions.get_mut(conn.index()) {
            slot.tls.finish(&mut self.tls);
        }
        let ready = self.sessions.close(conn.index(), now);
        self.stats.http_closed = *self.sessions.http_closed();
        if ready {
            self.apply_reload();
        }
    }

    fn sweep_http_deadlines<D: HttpDriver + ?Sized>(&mut self, now: Instant, driver: &mut D) {
        // Index loop: `service` and `abort` may close connections, but `Closed` events only
        // arrive through `drain_events`, so `live` does not change under this loop.
        for i in 0..self.sessions.len() {
            let index = self.sessions.live()[i] as usize;
            let Some(slot) = self.sessions.get_mut(index) else {
                continue;
            };
            // The send timeout (see `SendStall`): here, bytes have waited for the peer and
            // SND.UNA has not moved for the HTTP idle timeout. TCP's idle timer counts the
            // peer's answers to the window probes or resends as traffic, so it never ends
            // such a connection. The window need not be zero: a Linux receiver that stops
            // reading keeps the right edge it announced (it never shrinks its window) and
            // drops what its full buffer cannot hold, so the window can stay a few bytes open
            // while nothing is taken.
            if let Some(conn) = slot.handle {
                let waiting = match self.tcp.send_backlog(conn) {
                    Some(SendBacklog { una, queued }) if queued > 0 => Some(u64::from(una.0)),
                    _ => None,
                };
                let limit = slot.conn.limits().idle_timeout;
                if slot.send_stall.check(now, waiting, limit) {
                    self.stats.send_timeouts += 1;
                    self.tcp.abort(conn);
                    continue;
                }
            }
            if slot.tls.handle_timeout(now, &mut self.tls) {
                if let Some(conn) = slot.handle {
                    self.service(now, conn, driver);
                }
                continue;
            }
            if self.sessions.handle_http_timeout(index, now) {
                if let Some(conn) = self.sessions.get(index).and_then(|s| s.handle) {
                    self.service(now, conn, driver);
                }
            }
        }
        self.drain_events(now, driver);
    }

    /// Moves bytes between the connection's TCP buffers and its HTTP state until neither side
    /// can make progress, then closes the TCP side if HTTP is done.
    fn service<D: HttpDriver + ?Sized>(&mut self, now: Instant, conn: ConnHandle, driver: &mut D) {
        let index = conn.index();
        let Some((slot, app, mut log)) = self
            .sessions
            .with_app_log(index)
            .filter(|(s, _, _)| s.handle == Some(conn))
        else {
            return;
        };
        if slot.closing {
            // Nothing more will be written; discard whatever still arrives.
            self.discard_input(conn);
            return;
        }
        let Some(io) = self.tcp.stream(conn) else {
            return;
        };
        let (rx_a, rx_b) = io.recv;
        let (tx_a, tx_b) = io.send;
        let mut consumed = 0usize;
        let mut produced = 0usize;
        let rx_total = rx_a.len() + rx_b.len();
        let tx_total = tx_a.len() + tx_b.len();
        // Bounded: each round either makes progress or breaks; progress is bounded by the
        // buffers' sizes, and one extra round per linearisation.
        loop {
            let input = ring_tail(rx_a, rx_b, consumed);
            let output = ring_tail_mut(tx_a, tx_b, produced);
            let lent = log.as_mut().map(|io| io.reborrow());
            let tls = &mut self.tls;
            let p = run_http(driver, tls, index, now, app, slot, input, output, lent);
            consumed += p.consumed;
            produced += p.produced;
            if p.consumed > 0 || p.produced > 0 {
                if consumed >= rx_total && produced >= tx_total {
                    break;
                }
                continue;
            }
            // No progress. If the free output room stops at the wrap, an answer that is written
            // whole (a proxied response's head) may fit only across it: offer contiguous room
            // and copy what it takes into both parts of the ring.
            if produced < tx_a.len() && !tx_b.is_empty() {
                let room = (tx_a.len() - produced + tx_b.len()).min(self.out_scratch.len());
                let input = ring_tail(rx_a, rx_b, consumed);
                let lent = log.as_mut().map(|io| io.reborrow());
                let out = &mut self.out_scratch[..room];
                let tls = &mut self.tls;
                let p = run_http(driver, tls, index, now, app, slot, input, out, lent);
                let first = (tx_a.len() - produced).min(p.produced);
                tx_a[produced..produced + first].copy_from_slice(&self.out_scratch[..first]);
                tx_b[..p.produced - first].copy_from_slice(&self.out_scratch[first..p.produced]);
                consumed += p.consumed;
                produced += p.produced;
                if p.consumed > 0 || p.produced > 0 {
                    self.stats.linearized_out += 1;
                    continue;
                }
            }
            // No progress. If the unconsumed input stops at the wrap, the HTTP parser may be
            // waiting for bytes that sit at the start of the ring: make them contiguous.
            let straddles = consumed < rx_a.len() && !rx_b.is_empty();
            if !straddles || produced >= tx_total {
                break;
            }
            let head = &rx_a[consumed..];
            if head.len() >= self.scratch.len() {
                break;
            }
            let take = rx_b.len().min(self.scratch.len() - head.len());
            self.scratch[..head.len()].copy_from_slice(head);
            self.scratch[head.len()..head.len() + take].copy_from_slice(&rx_b[..take]);
            self.stats.linearized += 1;
            let output = ring_tail_mut(tx_a, tx_b, produced);
            let input = &self.scratch[..head.len() + take];
            let lent = log.as_mut().map(|io| io.reborrow());
            let tls = &mut self.tls;
            let p = run_http(driver, tls, index, now, app, slot, input, output, lent);
            consumed += p.consumed;
            produced += p.produced;
            if p.consumed == 0 && p.produced == 0 {
                break;
            }
        }
        let close = slot.wants_close();
        if close {
            slot.closing = true;
        }
        if slot.tls.is_deferred() && !slot.tls_queued {
            slot.tls_queued = true;
            self.tls_deferred.push_back(conn);
        }
        let reload_ready = self.sessions.settle(index);
        self.tcp.stream_done(conn, consumed, produced);
        if close {
            self.tcp.close(conn);
            self.discard_input(conn);
        }
        if reload_ready {
            self.apply_reload();
        }
    }

    /// Drops every readable byte of a connection whose HTTP side will write nothing more
    /// (reopening the window, so the peer's FIN can still arrive).
    fn discard_input(&mut self, conn: ConnHandle) {
        let (a, b) = self.tcp.recv_slices(conn);
        let n = a.len() + b.len();
        self.tcp.consume(conn, n);
    }
}

/// The bytes from `offset` on of a ring buffer handed out as two slices, up to the end of
/// whichever slice `offset` falls in.
fn ring_tail<'a>(a: &'a [u8], b: &'a [u8], offset: usize) -> &'a [u8] {
    match offset.checked_sub(a.len()) {
        None => &a[offset..],
        Some(in_b) => &b[in_b..],
    }
}

/// [`ring_tail`] for the free space of the send ring.
fn ring_tail_mut<'a>(a: &'a mut [u8], b: &'a mut [u8], offset: usize) -> &'a mut [u8] {
    match offset.checked_sub(a.len()) {
        None => &mut a[offset..],
        Some(in_b) => &mut b[in_b..],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::AppConfig;
    use crate::testkit::{icmp_too_big, ScriptedClient};
    use crate::time::Duration;
    use crate::wire::TcpFlags;

    struct Harness {
        engine: Engine,
        now: Instant,
        buf: Vec<u8>,
        out: Vec<u8>,
    }

    impl Harness {
        fn new(config: EngineConfig) -> Self {
            let now = Instant::from_secs(100);
            let app = App::new(&AppConfig::default()).unwrap();
            let mut engine = Engine::new(config, app, [9u8; 32], now);
            engine.set_wall_clock(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
            Harness {
                engine,
                now,
                buf: Vec::new(),
                out: vec![0u8; 2048],
            }
        }

        /// Delivers everything the engine sends to `client`, collecting in-order payload.
        fn pump(&mut self, client: &mut ScriptedClient, sink: &mut Vec<u8>) -> usize {
            let mut frames = 0;
            while let Some(n) = self.engine.poll_transmit(self.now, &mut self.out) {
                client.receive(&self.out[..n], Some(sink));
                frames += 1;
            }
            frames
        }

        fn send(&mut self, client: &mut ScriptedClient, payload: &[u8]) {
            let n = client.send(&mut self.buf, payload);
            self.engine.handle_frame(self.now, &self.buf[..n]).unwrap();
        }

        fn connect(&mut self, port: u16) -> ScriptedClient {
            self.connect_to(port, 80)
        }

        fn connect_to(&mut self, port: u16, server_port: u16) -> ScriptedClient {
            let client = ScriptedClient::new(port, server_port, 1_000 * u32::from(port));
            self.handshake(client)
        }

        /// The handshake of `client` (SYN with timestamps, SYN-ACK, ACK).
        fn handshake(&mut self, mut client: ScriptedClient) -> ScriptedClient {
            let n = client.syn(&mut self.buf, true);
            self.engine.handle_frame(self.now, &self.buf[..n]).unwrap();
            self.pump(&mut client, &mut Vec::new());
            self.send(&mut client, &[]);
            client
        }

        /// [`pump`](Self::pump) through a hop that carries IP packets of at most `mtu` bytes:
        /// each longer frame is dropped and its router's ICMP error (`icmp_too_big`) goes to
        /// the engine after the burst, as it would arrive. Returns the frames delivered and
        /// the messages sent.
        fn pump_through_hop(
            &mut self,
            client: &mut ScriptedClient,
            sink: &mut Vec<u8>,
            mtu: usize,
        ) -> (usize, usize) {
            let mut delivered = 0;
            let mut messages = Vec::new();
            while let Some(n) = self.engine.poll_transmit(self.now, &mut self.out) {
                let frame = &self.out[..n];
                let eth = if frame[12..14] == [0x81, 0x00] {
                    18
                } else {
                    14
                };
                if n - eth > mtu {
                    let mut m = Vec::new();
                    icmp_too_big(frame, mtu as u32, &mut m).expect("an IP frame");
                    messages.push(m);
                    continue;
                }
                client.receive(frame, Some(sink));
                delivered += 1;
            }
            for m in &messages {
                self.engine.handle_frame(self.now, m).unwrap();
            }
            (delivered, messages.len())
        }

        /// Sends `payload` in MSS-sized segments, pumping replies after each.
        fn send_all(&mut self, client: &mut ScriptedClient, payload: &[u8], sink: &mut Vec<u8>) {
            for chunk in payload.chunks(1400) {
                self.send(client, chunk);
                self.pump(client, sink);
                // Acknowledge what arrived so the server's window keeps opening.
                self.send(client, &[]);
                self.pump(client, sink);
            }
        }
    }

    fn body_of(response: &[u8]) -> &[u8] {
        let end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        &response[end + 4..]
    }

    #[test]
    fn requests_and_connections_are_counted_per_port() {
        let mut h = Harness::new(EngineConfig::default());
        let mut a = h.connect_to(40_000, 80);
        let mut b = h.connect_to(40_001, 8080);
        let mut sink = Vec::new();
        let two = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\nGET /health HTTP/1.1\r\nHost: t\r\n\r\n";
        h.send_all(&mut a, two, &mut sink);
        h.send_all(
            &mut b,
            b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            &mut sink,
        );
        assert_eq!(h.engine.requests(), 3);
        assert_eq!(h.engine.requests(), h.engine.http_stats().requests);
        let by_port: Vec<_> = h
            .engine
            .port_counts()
            .iter()
            .map(|c| (c.port, c.live, c.total, c.requests))
            .collect();
        assert_eq!(by_port, vec![(80, 1, 1, 2), (8080, 1, 1, 1)]);
        // The client of 8080 closes its side too: the connection ends, the count stays.
        let n = b.fin(&mut h.buf);
        h.engine.handle_frame(h.now, &h.buf[..n]).unwrap();
        h.pump(&mut b, &mut sink);
        let c8080 = h.engine.port_counts()[1];
        assert_eq!((c8080.live, c8080.total, c8080.requests), (0, 1, 1));
    }

    /// A whole HTTP exchange with an IPv6 client through the engine: the handshake, a
    /// request answered (the client takes only frames addressed to it in IPv6), the access
    /// log naming the IPv6 client, a request with `Connection: close`, the close, and the
    /// flow events carrying the IPv6 flow.
    #[test]
    fn an_ipv6_client_is_served_through_the_engine() {
        let mut h = Harness::new(EngineConfig::default());
        h.engine.enable_access_log(4);
        let client_addr: SocketAddr = "[2001:db8::1]:40000".parse().unwrap();
        let mut c = h.handshake(ScriptedClient::new_ipv6(40_000, 80, 7_000));
        let flow = match h.engine.poll_flow_event() {
            Some(FlowEvent::Added(f)) => f,
            other => panic!("expected the flow added, got {other:?}"),
        };
        assert!(flow.is_ipv6());
        assert_eq!(flow.remote(), client_addr);
        assert_eq!(flow.local(), "[2001:db8::2]:80".parse().unwrap());
        assert_eq!(h.engine.connection_count(), 1);

        let mut got = Vec::new();
        h.send_all(&mut c, b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n", &mut got);
        let text = String::from_utf8_lossy(&got).into_owned();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        let sink = h.engine.access_sink().expect("the log is on");
        assert_eq!(sink.records().len(), 1);
        assert_eq!(sink.records()[0].client, Some(client_addr));
        assert_eq!(sink.records()[0].port, 80);

        let mut last = Vec::new();
        h.send_all(
            &mut c,
            b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            &mut last,
        );
        assert!(String::from_utf8_lossy(&last).contains("Connection: close\r\n"));
        assert!(c.server_fin, "the server closed after its answer");
        let n = c.fin(&mut h.buf);
        h.engine.handle_frame(h.now, &h.buf[..n]).unwrap();
        h.pump(&mut c, &mut Vec::new());
        assert_eq!(h.engine.connection_count(), 0);
        assert_eq!(h.engine.requests(), 2);
        assert!(matches!(h.engine.poll_flow_event(), Some(FlowEvent::Removed(f)) if f == flow));
    }

    #[test]
    fn the_access_log_names_each_bypass_client_and_port() {
        let mut h = Harness::new(EngineConfig::default());
        h.engine.enable_access_log(16);
        let mut a = h.connect_to(40_000, 80);
        let mut b = h.connect_to(40_001, 8080);
        let mut got = Vec::new();
        h.send_all(&mut a, b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n", &mut got);
        h.send_all(&mut b, b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", &mut got);
        let sink = h.engine.access_sink().expect("the log is on");
        let records: Vec<_> = sink
            .records()
            .iter()
            .map(|r| (r.client.map(|c| c.port()), r.port, r.status, r.path))
            .collect();
        use crate::access::PathKind::Bypass;
        assert_eq!(
            records,
            [
                (Some(40_000), 80, 200, Bypass),
                (Some(40_001), 8080, 404, Bypass)
            ]
        );
        assert_eq!(
            sink.records()[0].bytes_out as usize + sink.records()[1].bytes_out as usize,
            got.len()
        );
        sink.clear();
        assert!(h.engine.access_sink().unwrap().is_empty());
    }

    #[test]
    fn drain_closes_idle_connections_and_answers_the_rest_with_close_then_abort_resets() {
        let mut h = Harness::new(EngineConfig::default());
        let health = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n";
        // `idle` has been answered and waits; `fresh` has not sent its request yet.
        let mut idle = h.connect(40_000);
        let mut fresh = h.connect(40_001);
        let mut stuck = h.connect(40_002);
        let mut got = Vec::new();
        h.send_all(&mut idle, health, &mut got);
        assert!(!idle.server_fin);
        while h.engine.poll_flow_event().is_some() {}

        h.engine.begin_drain(h.now);
        h.pump(&mut idle, &mut got);
        assert!(
            idle.server_fin,
            "an idle keep-alive connection is closed at once"
        );
        assert!(!fresh.server_fin && !stuck.server_fin);

        let mut answer = Vec::new();
        h.send_all(&mut fresh, health, &mut answer);
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("Connection: close\r\n"), "{text}");
        assert!(fresh.server_fin, "closed after its one answer");

        // The grace period ends with `stuck` still open (and the other two closing): all are
        // reset and their flows removed.
        while h.engine.poll_flow_event().is_some() {}
        h.engine.abort_all(h.now);
        let mut rst_to_stuck = false;
        while let Some(n) = h.engine.poll_transmit(h.now, &mut h.out) {
            if let Some(r) = stuck.receive(&h.out[..n], None) {
                rst_to_stuck |= r.flags.contains(TcpFlags::RST);
            }
        }
        assert!(rst_to_stuck);
        assert_eq!(h.engine.connection_count(), 0);
        let mut removed = 0;
        while let Some(e) = h.engine.poll_flow_event() {
            assert!(matches!(e, FlowEvent::Removed(_)), "{e:?}");
            removed += 1;
        }
        assert_eq!(removed, 3);
    }

    #[test]
    fn reload_swaps_routes_for_new_requests_while_a_response_in_flight_finishes_unchanged() {
        use crate::app::answering_v;
        let mut h = Harness::new(EngineConfig::default());
        h.engine.reload(Served {
            app: answering_v(&"1".repeat(300_000)),
            limits: HttpLimits::default(),
        });
        assert_eq!(h.engine.reloads_applied(), 1);
        let mut long = h.connect(40_000);
        let mut other = h.connect(40_001);
        // `long` asks for the 300 kB body; only the initial window of it is sent.
        let mut got = Vec::new();
        h.send(&mut long, b"GET /v HTTP/1.1\r\nHost: t\r\n\r\n");
        h.pump(&mut long, &mut got);
        assert!(!got.is_empty() && got.len() < 300_000);

        h.engine.reload(Served {
            app: answering_v("2"),
            limits: HttpLimits::default(),
        });
        assert_eq!(h.engine.reloads_applied(), 2);
        let mut answer = Vec::new();
        h.send_all(
            &mut other,
            b"GET /v HTTP/1.1\r\nHost: t\r\n\r\n",
            &mut answer,
        );
        assert_eq!(body_of(&answer), b"2", "a new request gets the new routes");

        // The old response finishes byte-exact, then the same connection gets the new routes.
        for _ in 0..1000 {
            h.send(&mut long, &[]);
            if h.pump(&mut long, &mut got) == 0 {
                break;
            }
        }
        assert_eq!(body_of(&got).len(), 300_000);
        assert!(body_of(&got).iter().all(|&b| b == b'1'));
        let mut again = Vec::new();
        h.send_all(&mut long, b"GET /v HTTP/1.1\r\nHost: t\r\n\r\n", &mut again);
        assert_eq!(body_of(&again), b"2");
    }

    /// RFC 1191 / RFC 8201 through the whole gateway: a download whose path narrows to a hop
    /// of `mtu` bytes. The hop drops the first flight and its router says so for each frame;
    /// the first message lowers the connection's MSS and the flight goes again at once, the
    /// others change nothing, no frame too large for the hop is sent after it, no timer is
    /// needed, and the body arrives byte-exact.
    #[test]
    fn rfc1191_rfc8201_a_download_through_a_narrower_hop_completes_byte_exact() {
        const LEN: usize = 300_000;
        for (v6, mtu) in [(false, 1400), (false, 1006), (true, 1280), (true, 1450)] {
            let mut h = Harness::new(EngineConfig::default());
            let client = if v6 {
                ScriptedClient::new_ipv6(40_000, 80, 5_000)
            } else {
                ScriptedClient::new(40_000, 80, 5_000)
            };
            let mut client = h.handshake(client);
            let request = format!("GET /bytes/{LEN} HTTP/1.1\r\nHost: t\r\n\r\n");
            h.send(&mut client, request.as_bytes());
            let mut got = Vec::new();
            let mut messages = 0;
            let mut rounds = 0;
            while got.len() < LEN || body_of(&got).len() < LEN {
                rounds += 1;
                assert!(rounds < 10_000, "v6 {v6} mtu {mtu}: never finished");
                let lowered_before = h.engine.tcp_stats().pmtu_lowered;
                let (delivered, sent) = h.pump_through_hop(&mut client, &mut got, mtu);
                assert!(
                    lowered_before == 0 || sent == 0,
                    "v6 {v6} mtu {mtu}: a frame too large after the MSS went down"
                );
                assert!(delivered + sent > 0, "v6 {v6} mtu {mtu}: stalled");
                messages += sent;
                h.send(&mut client, &[]);
            }
            let body = body_of(&got);
            assert_eq!(body.len(), LEN);
            assert!(
                body.iter()
                    .enumerate()
                    .all(|(i, &b)| b == b'a' + (i % 26) as u8),
                "v6 {v6} mtu {mtu}: the body is not the one sent"
            );
            let st = h.engine.tcp_stats();
            assert!(messages >= 2, "the whole first flight was dropped");
            assert_eq!(st.pmtu_lowered, 1, "v6 {v6} mtu {mtu}");
            assert_eq!(st.pmtu_unchanged as usize, messages - 1);
            assert_eq!(st.pmtu_ignored, st.pmtu_unchanged);
            assert_eq!((st.rto_timeouts, st.fast_retransmits), (0, 0));
            assert!(st.pmtu_retransmits > 0);
            assert_eq!(
                (st.accepted_ipv4, st.accepted_ipv6),
                if v6 { (0, 1) } else { (1, 0) }
            );
        }
    }

    #[test]
    fn get_health_is_answered_and_the_flow_reported() {
        let mut h = Harness::new(EngineConfig::default());
        let mut client = h.connect(40_000);
        assert_eq!(h.engine.connection_count(), 1);
        assert!(
            matches!(h.engine.poll_flow_event(), Some(FlowEvent::Added(f)) if f.remote_port() == 40_000)
        );
        let mut got = Vec::new();
        h.send_all(
            &mut client,
            b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n",
            &mut got,
        );
        assert!(
            got.starts_with(b"HTTP/1.1 200 OK\r\n"),
            "{}",
            String::from_utf8_lossy(&got)
        );
        assert!(got
            .windows(35)
            .any(|w| w == b"Date: Sun, 06 Nov 1994 08:49:37 GMT"));
        assert_eq!(body_of(&got), b"ok");
        assert_eq!(h.engine.http_stats().requests, 1);
    }

    #[test]
    fn pipelined_echoes_survive_the_receive_ring_wrapping() {
        // A small receive ring and several segment sizes make request heads straddle the
        // ring's wrap point; every echo must still come back whole and in order.
        let mut linearized = 0;
        for (i, piece) in [7usize, 13, 97, 333, 1000].into_iter().enumerate() {
            let mut config = EngineConfig::default();
            config.tcp.rx_buffer = 4096;
            let mut h = Harness::new(config);
            let mut client = h.connect(41_000 + i as u16);
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            // Mostly head bytes, so that wrap points fall inside heads.
            for i in 0..200u8 {
                let len = if i % 20 == 0 {
                    700
                } else {
                    (37 * usize::from(i)) % 40
                };
                let body: Vec<u8> = (0..len).map(|j| (j as u8) ^ i).collect();
                stream.extend_from_slice(
                    format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\n\r\n")
                        .as_bytes(),
                );
                stream.extend_from_slice(&body);
                expected.push(body);
            }
            let mut got = Vec::new();
            for chunk in stream.chunks(piece) {
                h.send_all(&mut client, chunk, &mut got);
            }
            let mut rest = &got[..];
            for body in &expected {
                let head_end = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                assert!(rest.starts_with(b"HTTP/1.1 200 OK\r\n"));
                assert_eq!(&rest[head_end..head_end + body.len()], &body[..]);
                rest = &rest[head_end + body.len()..];
            }
            assert!(rest.is_empty());
            linearized += h.engine.stats().linearized;
        }
        assert!(linearized > 0, "no segment size exercised the wrap");
    }

    #[test]
    fn connection_close_request_ends_with_fin_and_frees_everything() {
        let mut h = Harness::new(EngineConfig::default());
        let mut client = h.connect(40_002);
        let mut got = Vec::new();
        h.send_all(
            &mut client,
            b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            &mut got,
        );
        assert!(client.server_fin, "the server closed after the response");
        assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
        let n = client.fin(&mut h.buf);
        h.engine.handle_frame(h.now, &h.buf[..n]).unwrap();
        h.pump(&mut client, &mut got);
        // Run every timer out (TIME_WAIT included).
        while let Some(t) = h.engine.poll_timeout() {
            h.now = h.now.max(t);
            h.engine.handle_timeout(h.now);
            h.pump(&mut client, &mut got);
        }
        assert_eq!(h.engine.connection_count(), 0);
        let events: Vec<_> = std::iter::from_fn(|| h.engine.poll_flow_event()).collect();
        assert!(matches!(events[..], [FlowEvent::Added(a), FlowEvent::Removed(r)] if a == r));
        assert_eq!(h.engine.http_stats().requests, 1);
    }

    #[test]
    fn peer_fin_after_a_complete_request_still_gets_the_answer() {
        let mut h = Harness::new(EngineConfig::default());
        let mut client = h.connect(40_003);
        let n = client.send(&mut h.buf, b"GET /bytes/10 HTTP/1.1\r\nHost: t\r\n\r\n");
        h.engine.handle_frame(h.now, &h.buf[..n]).unwrap();
        let n = client.fin(&mut h.buf);
        h.engine.handle_frame(h.now, &h.buf[..n]).unwrap();
        let mut got = Vec::new();
        h.pump(&mut client, &mut got);
        h.send(&mut client, &[]);
        h.pump(&mut client, &mut got);
        assert_eq!(body_of(&got), b"abcdefghij");
        assert!(client.server_fin);
    }

    /// Runs the engine's timers from `h.now` on, answering every probe as a receiver that
    /// takes nothing (an ACK of nothing new with `client.window`: the bytes sent are dropped),
    /// until `client`'s connection is gone or `limit` has passed. Returns how long it took.
    fn hold_taking_nothing(
        h: &mut Harness,
        client: &mut ScriptedClient,
        limit: Duration,
    ) -> Duration {
        let start = h.now;
        while h.engine.connection_count() > 0 && h.now - start < limit {
            let t = h
                .engine
                .poll_timeout()
                .expect("a live connection has a deadline");
            h.now = h.now.max(t);
            h.engine.handle_timeout(h.now);
            let mut sent = false;
            while h.engine.poll_transmit(h.now, &mut h.out).is_some() {
                sent = true;
            }
            if sent && h.engine.connection_count() > 0 {
                h.send(client, &[]);
            }
        }
        h.now - start
    }

    #[test]
    fn rfc6429_client_holding_a_zero_window_is_reset_after_the_idle_timeout() {
        // RFC 9293 §3.8.6.1: TCP keeps probing a zero window as long as the peer answers,
        // and every answer counts as traffic for TCP's idle timer; RFC 6429 leaves ending
        // such a connection to the application. A client that asks for a large answer and
        // never reads must not hold its slot (and 2 x 256 KiB of buffers) forever.
        let mut config = EngineConfig::default();
        config.http.idle_timeout = Duration::from_secs(5);
        let mut h = Harness::new(config);
        let mut client = h.connect(40_010);
        let _ = h.engine.poll_flow_event();
        client.window = 0;
        h.send(
            &mut client,
            b"GET /bytes/1000000 HTTP/1.1\r\nHost: t\r\n\r\n",
        );
        let took = hold_taking_nothing(&mut h, &mut client, Duration::from_secs(120));
        assert_eq!(h.engine.connection_count(), 0, "still held after {took:?}");
        assert!(
            took >= Duration::from_secs(5)
                && took <= Duration::from_secs(5) + HTTP_SWEEP_PERIOD * 2,
            "reset after {took:?}"
        );
        assert_eq!(h.engine.stats().send_timeouts, 1);
        assert!(
            matches!(h.engine.poll_flow_event(), Some(FlowEvent::Removed(f)) if f.remote_port() == 40_010)
        );

        // The same once HTTP is done: the answer fits the send buffer, HTTP closes after its
        // idle timeout, and the FIN waits behind bytes the client never takes.
        let mut client = h.connect(40_011);
        let _ = h.engine.poll_flow_event();
        client.window = 0;
        h.send(
            &mut client,
            b"GET /bytes/100000 HTTP/1.1\r\nHost: t\r\n\r\n",
        );
        let took = hold_taking_nothing(&mut h, &mut client, Duration::from_secs(120));
        assert_eq!(h.engine.connection_count(), 0, "still held after {took:?}");
        assert_eq!(h.engine.stats().send_timeouts, 2);
    }

    #[test]
    fn rfc6429_client_whose_window_stays_open_but_takes_nothing_is_reset_after_the_idle_timeout() {
        // A receiver that stops reading need not announce a zero window: Linux never shrinks
        // the right edge it announced, and drops what its full buffer cannot hold, so a few
        // bytes of window can stay open while SND.UNA never moves. The send timeout is about
        // bytes not taken, not about the window's size.
        let mut config = EngineConfig::default();
        config.http.idle_timeout = Duration::from_secs(5);
        let mut h = Harness::new(config);
        let mut client = h.connect(40_013);
        let _ = h.engine.poll_flow_event();
        client.window = 1; // x 2^7: 128 bytes, never taken
        h.send(
            &mut client,
            b"GET /bytes/1000000 HTTP/1.1\r\nHost: t\r\n\r\n",
        );
        let took = hold_taking_nothing(&mut h, &mut client, Duration::from_secs(120));
        assert_eq!(h.engine.connection_count(), 0, "still held after {took:?}");
        assert!(
            took <= Duration::from_secs(5) + HTTP_SWEEP_PERIOD * 2,
            "reset after {took:?}"
        );
        assert_eq!(h.engine.stats().send_timeouts, 1);
    }

    #[test]
    fn a_slow_reader_that_keeps_taking_bytes_is_not_cut() {
        let mut config = EngineConfig::default();
        config.http.idle_timeout = Duration::from_secs(5);
        let mut h = Harness::new(config);
        let mut client = h.connect(40_012);
        client.window = 12; // x 2^7: one full segment at a time
        let mut got = Vec::new();
        h.send(&mut client, b"GET /bytes/30000 HTTP/1.1\r\nHost: t\r\n\r\n");
        let start = h.now;
        while !client.server_fin {
            // Takes one segment every 2 s: far from keeping up, but never holding the
            // window shut.
            h.now += Duration::from_secs(2);
            h.engine.handle_timeout(h.now);
            h.pump(&mut client, &mut got);
            h.send(&mut client, &[]);
            assert!(h.now - start < Duration::from_secs(600), "never finished");
        }
        assert!(h.now - start > Duration::from_secs(20));
        assert_eq!(body_of(&got).len(), 30_000);
        assert_eq!(h.engine.stats().send_timeouts, 0);
    }

    #[test]
    fn idle_connection_is_closed_by_the_http_idle_timeout() {
        let mut config = EngineConfig::default();
        config.http.idle_timeout = Duration::from_secs(5);
        let mut h = Harness::new(config);
        let mut client = h.connect(40_004);
        let start = h.now;
        while !client.server_fin {
            let t = h
                .engine
                .poll_timeout()
                .expect("an open connection has a deadline");
            h.now = h.now.max(t);
            h.engine.handle_timeout(h.now);
            h.pump(&mut client, &mut Vec::new());
            assert!(
                h.now - start < Duration::from_secs(30),
                "no close within 30 s"
            );
        }
        let waited = h.now - start;
        assert!(
            waited >= Duration::from_secs(5)
                && waited <= Duration::from_secs(5) + HTTP_SWEEP_PERIOD
        );
        assert_eq!(h.engine.http_stats().idle_timeouts, 1);
    }

    #[test]
    fn garbage_request_gets_400_and_close_without_touching_another_connection() {
        let mut h = Harness::new(EngineConfig::default());
        let mut good = h.connect(40_005);
        let mut bad = h.connect(40_006);
        let mut bad_got = Vec::new();
        h.send_all(
            &mut bad,
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            &mut bad_got,
        );
        assert!(
            bad_got.starts_with(b"HTTP/1.1 400 "),
            "{}",
            String::from_utf8_lossy(&bad_got)
        );
        assert!(bad.server_fin);
        let mut got = Vec::new();
        h.send_all(
            &mut good,
            b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n",
            &mut got,
        );
        assert_eq!(body_of(&got), b"ok");
        assert!(!good.server_fin);
        let _ = TcpFlags::ACK;
    }
}

//! The upstream side of one serving thread (issue 13, plan step 3), sans-IO: which server of
//! which pool a client connection's request goes to, over which upstream connection, and what
//! becomes of both when the exchange ends. Each path (the bypass poller, the kernel path)
//! owns one [`Forwarder`] over its own table of upstream connections ([`UpstreamTable`],
//! io_uring sockets in `dataplane`) and calls [`Forwarder::process`] where it would call
//! `HttpConn::process`.
//!
//! Per client connection (by the caller's slot index) a [`Forwarder`] keeps a leg: the
//! [`Exchange`] of the request being forwarded, the upstream connection it runs on, the
//! pool's [`Ticket`], the servers tried, and a copy of the forwarded head for a retry. The
//! rules it applies:
//!
//! - **Server choice**: the pool of the route's upstream, in the configuration generation of
//!   the `App` that routed the request (`App::proxy`): a reload builds new pools for new
//!   requests, and a request in flight ends on the pool it started with. Each generation's
//!   pools are built on a thread when it first routes a request with it and dropped once no
//!   request of it is in flight and a newer one exists. Consistent hashing takes the client's
//!   IP address or a request field as the pool's configuration says.
//! - **Connection**: an idle pooled connection to that server if the table has one (the
//!   exchange then starts connected), else a new one. No server eligible: 503. No connection
//!   possible (the table is full, a socket error): 502.
//! - **Retry** (RFC 9110 §9.2.2, issue 13): an idempotent request without a body whose
//!   exchange failed retryably (connect failure or timeout, reset or close before any
//!   response byte) goes to another server of the pool, once per server at most, with the
//!   same forwarded head; when no other server is eligible the failure is answered (502 or
//!   504).
//! - **End**: the upstream connection goes back to the table reusable only when the exchange
//!   says so; the pool learns the outcome (a request the client abandoned is not the server's
//!   failure); the server's counters are kept per upstream name and address, across reloads.
//! - **Upstream EOF**: reported to the exchange only once the bytes received before it were
//!   offered and nothing more was taken (`Exchange::upstream_closed`'s contract).
//! - **Timers**: the exchanges' deadlines run at the caller's sweep ([`Forwarder::sweep`]),
//!   which says which client connections to move forward.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::balance::{HashKey, Health, Outcome, Pool, ServerId, Ticket, Tried};
use super::config::{HashKeySource, ProxyConfig};
use super::exchange::{End, Exchange, FailureCause};
use super::health::HealthBoard;
use super::response::UpstreamLimits;
use super::route::{RouteTarget, UpstreamId};
use crate::access::AccessLogIo;
use crate::app::App;
use crate::histogram::LatencyHistogram;
use crate::http::syntax::trim_ows;
use crate::http::{HttpConn, Progress, UpstreamIo, UpstreamStart, UpstreamStarted};
use crate::time::Instant;
use serde::{Deserialize, Serialize};

/// A server of a pool in one configuration generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServerRef {
    pub upstream: UpstreamId,
    pub server: ServerId,
}

/// The caller's table of upstream connections (kernel TCP sockets over io_uring in
/// `dataplane`). `owner` is the client connection's slot index, which the table hands back
/// with the connection's events. Idle connections are kept by the server's address: one to
/// `10.0.0.1:80` serves any pool, of any generation, that has that server.
pub trait UpstreamTable {
    type Conn: Copy + Eq + std::fmt::Debug;
    /// An idle pooled connection to `server`, if one is still open.
    fn checkout_idle(&mut self, addr: SocketAddr, owner: u64, now: Instant) -> Option<Self::Conn>;
    /// A new connection to `addr`, connecting; `None` when none can be opened now.
    fn connect(&mut self, addr: SocketAddr, owner: u64) -> Option<Self::Conn>;
    /// The connection's received bytes not consumed yet, and the free room of its send buffer.
    fn buffers(&mut self, conn: Self::Conn) -> (&[u8], &mut [u8]);
    /// The most received bytes a connection holds unconsumed: a response head (consumed only
    /// whole) longer than this could never complete, so it is refused at this size.
    fn recv_capacity(&self) -> usize;
    fn consume(&mut self, conn: Self::Conn, n: usize);
    /// `n` bytes were written at the start of the send room: send them.
    fn commit_send(&mut self, conn: Self::Conn, n: usize);
    /// Back to the pool, newest of its server's idle connections, of which the oldest are
    /// closed beyond `max_idle` (the pool's `keepalive`); closed if `max_idle` is 0 or the
    /// connection is not clean. The connection is not the caller's anymore.
    fn release(&mut self, conn: Self::Conn, max_idle: usize, now: Instant);
    /// Idle pooled connections to `addr` (for the status).
    fn idle_count(&self, addr: SocketAddr) -> usize;
}

/// What happened to an upstream connection, as the caller's table reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamEvent {
    Connected,
    ConnectFailed,
    /// Bytes arrived, or send room freed: the client connection has work.
    Progress,
    Eof,
    Reset,
}

/// Failed exchanges of one server, by cause (the [`FailureCause`]s without their details).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FailureCounts {
    pub connect_failed: u64,
    pub connect_timeout: u64,
    pub send_timeout: u64,
    pub read_timeout: u64,
    pub idle_timeout: u64,
    pub reset: u64,
    pub closed: u64,
    pub bad_head: u64,
    pub bad_body: u64,
    pub client_head: u64,
}

impl FailureCounts {
    fn count(&mut self, cause: FailureCause) {
        *match cause {
            FailureCause::ConnectFailed => &mut self.connect_failed,
            FailureCause::ConnectTimeout => &mut self.connect_timeout,
            FailureCause::SendTimeout => &mut self.send_timeout,
            FailureCause::ReadTimeout => &mut self.read_timeout,
            FailureCause::IdleTimeout => &mut self.idle_timeout,
            FailureCause::Reset => &mut self.reset,
            FailureCause::Closed => &mut self.closed,
            FailureCause::BadHead(_) => &mut self.bad_head,
            FailureCause::BadBody(_) => &mut self.bad_body,
            FailureCause::ClientHead(_) => &mut self.client_head,
        } += 1;
    }

    /// (name, count) of each cause, for the metrics page.
    pub fn by_name(&self) -> [(&'static str, u64); 10] {
        [
            ("connect_failed", self.connect_failed),
            ("connect_timeout", self.connect_timeout),
            ("send_timeout", self.send_timeout),
            ("read_timeout", self.read_timeout),
            ("idle_timeout", self.idle_timeout),
            ("reset", self.reset),
            ("closed", self.closed),
            ("bad_head", self.bad_head),
            ("bad_body", self.bad_body),
            ("client_head", self.client_head),
        ]
    }

    fn add(&mut self, o: &FailureCounts) {
        self.connect_failed += o.connect_failed;
        self.connect_timeout += o.connect_timeout;
        self.send_timeout += o.send_timeout;
        self.read_timeout += o.read_timeout;
        self.idle_timeout += o.idle_timeout;
        self.reset += o.reset;
        self.closed += o.closed;
        self.bad_head += o.bad_head;
        self.bad_body += o.bad_body;
        self.client_head += o.client_head;
    }
}

/// One upstream server's counters on one thread, across reloads (and, added up, the
/// gateway's: [`UpstreamServerState::add`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerCounters {
    /// Exchanges started (a retry is one more).
    pub requests: u64,
    /// Final responses passed on, by class `[1xx..5xx]`.
    pub responses: [u64; 5],
    pub failures: FailureCounts,
    /// Exchanges the client abandoned (it went away, or its body was bad).
    pub abandoned: u64,
    /// Requests that went on another server after failing here.
    pub retried: u64,
    /// Started on a pooled connection rather than a new one.
    pub reused: u64,
    /// Pooled connections found closed by the upstream when a request went on them (the
    /// request went again on a new connection; not counted as the server's failure).
    pub stale_connections: u64,
    /// Exchanges under way now.
    pub in_flight: u64,
    /// From the request's end to the response head.
    pub response_time: LatencyHistogram,
}

/// A server's counters with who it is.
#[derive(Debug, Clone)]
pub struct ServerStatsEntry {
    pub upstream: Arc<str>,
    pub server: SocketAddr,
    pub counters: ServerCounters,
}

/// What the status and the metrics show of one upstream server: its counters summed over the
/// serving threads, with its idle pooled connections and its health as each thread sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpstreamServerState {
    pub upstream: String,
    pub server: String,
    #[serde(flatten)]
    pub counters: ServerCounters,
    /// Pooled connections waiting for a request.
    pub idle_connections: u64,
    /// Serving threads that have it out of rotation now (passive ejection), of `threads`.
    pub ejected_threads: u64,
    pub threads: u64,
    /// The active health check's last verdict was "down".
    pub health_check_down: bool,
}

impl UpstreamServerState {
    /// Adds `o`'s figures (the same server on another thread).
    pub fn add(&mut self, o: &UpstreamServerState) {
        let (c, d) = (&mut self.counters, &o.counters);
        c.requests += d.requests;
        for (a, b) in c.responses.iter_mut().zip(d.responses) {
            *a += b;
        }
        c.failures.add(&d.failures);
        c.abandoned += d.abandoned;
        c.retried += d.retried;
        c.reused += d.reused;
        c.stale_connections += d.stale_connections;
        c.in_flight += d.in_flight;
        c.response_time.add(&d.response_time);
        self.idle_connections += o.idle_connections;
        self.ejected_threads += o.ejected_threads;
        self.threads += o.threads;
        self.health_check_down |= o.health_check_down;
    }

    /// `states` of several threads merged by (upstream, server), in first-seen order.
    pub fn merge<'a>(
        states: impl IntoIterator<Item = &'a UpstreamServerState>,
    ) -> Vec<UpstreamServerState> {
        let mut out: Vec<UpstreamServerState> = Vec::new();
        for s in states {
            match out
                .iter_mut()
                .find(|o| o.upstream == s.upstream && o.server == s.server)
            {
                Some(o) => o.add(s),
                None => out.push(s.clone()),
            }
        }
        out
    }
}

/// Requests the forwarder answered itself, for the lack of a server or a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForwarderStats {
    /// 503: no server of the pool was eligible.
    pub no_server: u64,
    /// 502: no connection could be opened (the table full, a socket error).
    pub no_connection: u64,
}

/// How an exchange leaves its leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settle {
    /// It ended (done or failed): the server answers for it.
    Ended,
    /// The client went away (or its body was bad): not the server's doing.
    Abandoned,
    /// Its pooled connection had been closed by the upstream: it goes again on a new one.
    Stale,
}

/// One configuration generation's pools on this thread.
struct PoolGen {
    config: Arc<ProxyConfig>,
    pools: Vec<Pool>,
    /// `stats` index of each pool's servers.
    stat_index: Vec<Vec<usize>>,
    in_flight: usize,
}

/// A client connection's forwarded request.
struct Leg<C> {
    exchange: Option<Exchange>,
    conn: Option<C>,
    /// The generation (its `Arc` address) the request was routed by.
    gen: usize,
    server: Option<ServerRef>,
    ticket: Option<Ticket>,
    tried: Tried,
    /// The forwarded head, kept for a retry (allocated once per slot, reused).
    head: Vec<u8>,
    retryable: bool,
    upstream_eof: bool,
    eof_told: bool,
    /// No other server could take a retry: the failure is answered.
    retries_exhausted: bool,
    /// The pool's `keepalive`: idle connections kept per server (0: the forwarded head asked
    /// for `Connection: close`).
    keepalive: usize,
    /// The request went again on a fresh connection after a stale pooled one failed.
    stale_retried: bool,
}

impl<C> Default for Leg<C> {
    fn default() -> Self {
        Leg {
            exchange: None,
            conn: None,
            gen: 0,
            server: None,
            ticket: None,
            tried: Tried::NONE,
            head: Vec::new(),
            retryable: false,
            upstream_eof: false,
            eof_told: false,
            retries_exhausted: false,
            keepalive: 0,
            stale_retried: false,
        }
    }
}

/// The upstream side of one serving thread. See the module documentation.
pub struct Forwarder<T: UpstreamTable> {
    table: T,
    hash_key: HashKey,
    gens: Vec<PoolGen>,
    legs: Vec<Leg<T::Conn>>,
    stats: Vec<ServerStatsEntry>,
    counts: ForwarderStats,
    /// The active health checks' verdicts, when a checker runs.
    health: Option<Arc<HealthBoard>>,
    /// The board's version last copied into the pools.
    health_seen: u64,
}

/// The identity of a configuration generation.
fn gen_id(config: &Arc<ProxyConfig>) -> usize {
    Arc::as_ptr(config) as usize
}

/// The value of field `name` in a complete request head (checked by the server side), OWS
/// trimmed; the first such field.
fn header_value<'h>(head: &'h [u8], name: &[u8]) -> Option<&'h [u8]> {
    head.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line.iter().position(|&b| b == b':')?;
        line[..colon]
            .eq_ignore_ascii_case(name)
            .then(|| trim_ows(&line[colon + 1..]))
    })
}

impl<T: UpstreamTable> Forwarder<T> {
    /// `hash_key`: the same on every thread, so consistent hashing agrees across threads.
    pub fn new(table: T, hash_key: HashKey) -> Self {
        Forwarder {
            table,
            hash_key,
            gens: Vec::new(),
            legs: Vec::new(),
            stats: Vec::new(),
            counts: ForwarderStats::default(),
            health: None,
            health_seen: 0,
        }
    }

    /// The active health checks' verdicts this thread's pools follow (see [`super::health`]).
    pub fn set_health_board(&mut self, board: Arc<HealthBoard>) {
        self.health = Some(board);
        self.health_seen = u64::MAX;
    }

    /// Copies the board's verdicts into every generation's pools when they changed (or
    /// `force`, for pools just built).
    fn sync_health(&mut self, force: bool) {
        let Some(board) = &self.health else {
            return;
        };
        let version = board.version();
        if version == self.health_seen && !force {
            return;
        }
        self.health_seen = version;
        for g in &mut self.gens {
            for (upstream, pool) in g.config.upstreams.iter().zip(&mut g.pools) {
                if upstream.health_check.is_none() {
                    continue;
                }
                // Few servers, and only when a verdict changed: collected, then applied.
                let verdicts: Vec<(ServerId, Health)> = pool
                    .servers()
                    .map(|(id, spec)| (id, board.get(&upstream.name, spec.addr)))
                    .collect();
                for (id, health) in verdicts {
                    pool.set_active_health(id, health);
                }
            }
        }
    }

    pub fn table(&self) -> &T {
        &self.table
    }

    pub fn table_mut(&mut self) -> &mut T {
        &mut self.table
    }

    /// Each upstream server's counters on this thread.
    pub fn server_stats(&self) -> &[ServerStatsEntry] {
        &self.stats
    }

    pub fn stats(&self) -> ForwarderStats {
        self.counts
    }

    /// Requests being forwarded now.
    pub fn in_flight(&self) -> usize {
        self.gens.iter().map(|g| g.in_flight).sum()
    }

    /// Each upstream server as this thread sees it, for the status: its counters, its idle
    /// pooled connections, whether the newest pools have it out of rotation at `now`.
    pub fn snapshot(&self, now: Instant, out: &mut Vec<UpstreamServerState>) {
        out.clear();
        let newest = self.gens.last();
        for e in &self.stats {
            let ejected = newest.is_some_and(|g| {
                g.config.upstreams.iter().zip(&g.pools).any(|(u, pool)| {
                    *u.name == *e.upstream
                        && pool
                            .servers()
                            .any(|(id, spec)| spec.addr == e.server && !pool.is_eligible(id, now))
                })
            });
            let down = self
                .health
                .as_ref()
                .is_some_and(|b| b.get(&e.upstream, e.server) == Health::Down);
            out.push(UpstreamServerState {
                upstream: e.upstream.to_string(),
                server: e.server.to_string(),
                health_check_down: down,
                counters: e.counters.clone(),
                idle_connections: self.table.idle_count(e.server) as u64,
                ejected_threads: u64::from(ejected),
                threads: 1,
            });
        }
    }

    /// Whether the client connection in `slot` has a request at an upstream.
    pub fn is_forwarding(&self, slot: usize) -> bool {
        self.legs.get(slot).is_some_and(|l| l.exchange.is_some())
    }

    /// Runs the client connection in `slot` where a path would call `HttpConn::process`
    /// (`process_logged` with `log`): forwards the requests its routes send upstream, starts
    /// and settles their exchanges, retries. `input` and `output` as for `HttpConn::process`.
    #[allow(clippy::too_many_arguments)]
    pub fn process(
        &mut self,
        slot: usize,
        now: Instant,
        app: &App,
        http: &mut HttpConn,
        client: SocketAddr,
        input: &[u8],
        output: &mut [u8],
        log: Option<AccessLogIo<'_>>,
    ) -> Progress {
        let no_exchange = self.legs.get(slot).is_none_or(|leg| leg.exchange.is_none());
        if input.is_empty() && no_exchange && http.waits_for_a_head() {
            // No request can come of no input, and no exchange runs: the connection's own
            // call is all there is (a transport's extra rounds end here, without the legs').
            return match log {
                Some(io) => http.process_logged(now, app, input, output, io),
                None => http.process(now, app, input, output),
            };
        }
        self.run_legs(slot, now, app, http, client, input, output, log)
    }

    /// [`process`](Self::process) in rounds over the connection and its leg.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn run_legs(
        &mut self,
        slot: usize,
        now: Instant,
        app: &App,
        http: &mut HttpConn,
        client: SocketAddr,
        input: &[u8],
        output: &mut [u8],
        mut log: Option<AccessLogIo<'_>>,
    ) -> Progress {
        if self.legs.len() <= slot {
            self.legs.resize_with(slot + 1, Leg::default);
        }
        let mut total = Progress::default();
        // `HttpConn` runs each call until it stops moving, so a round runs it again only when
        // something it works with changed since: an exchange started or retried, or the
        // upstream's buffers or state moved under a running exchange. A request is started,
        // retried and settled once each, so the rounds are few; the bound is a backstop.
        for _ in 0..64 {
            let moved = self.run_http(slot, now, app, http, input, output, &mut total, &mut log);
            let mut again = false;
            if self.legs[slot].exchange.is_some() {
                let log_conn = log.as_mut().map(|l| &mut *l.conn);
                let changed = self.after_exchange(slot, now, http, log_conn);
                // Settled: the connection is where its last call left it, with nothing new.
                again = self.legs[slot].exchange.is_some() && (moved || changed);
            }
            if self.legs[slot].exchange.is_none() {
                if let Some(req) = http.upstream_request() {
                    let head = &input[total.consumed..];
                    let log_conn = log.as_mut().map(|l| &mut *l.conn);
                    if let Some(consumed) =
                        self.start(slot, now, app, http, client, head, req, log_conn)
                    {
                        total.consumed += consumed;
                    }
                    again = true;
                }
            }
            if !again {
                break;
            }
        }
        total
    }

    /// One `HttpConn` call, with the leg's exchange when a request is being forwarded.
    #[allow(clippy::too_many_arguments)]
    fn run_http(
        &mut self,
        slot: usize,
        now: Instant,
        app: &App,
        http: &mut HttpConn,
        input: &[u8],
        output: &mut [u8],
        total: &mut Progress,
        log: &mut Option<AccessLogIo<'_>>,
    ) -> bool {
        let input = &input[total.consumed..];
        let output = &mut output[total.produced..];
        let leg = &mut self.legs[slot];
        let log = log.as_mut().map(|l| l.reborrow());
        let (p, upstream_moved) = match leg.exchange.as_mut() {
            Some(exchange) if http.is_forwarding() => {
                let retry = leg.retryable && !leg.retries_exhausted;
                let (received, room): (&[u8], &mut [u8]) = match leg.conn {
                    Some(conn) => self.table.buffers(conn),
                    None => (&[], &mut []),
                };
                let offered = received.len();
                let mut io = UpstreamIo {
                    exchange,
                    input: received,
                    output: room,
                    retry,
                    consumed: 0,
                    produced: 0,
                };
                let room_left = output.len();
                let p = http.process_proxied(now, app, input, output, &mut io, log);
                let (consumed, produced) = (io.consumed, io.produced);
                if let Some(conn) = leg.conn {
                    self.table.consume(conn, consumed);
                    self.table.commit_send(conn, produced);
                }
                // EOF goes to the exchange once what came before it was offered and no more
                // was taken while the client had room (a partial head or nothing left).
                let mut told = false;
                if leg.upstream_eof
                    && !leg.eof_told
                    && (consumed == offered || (consumed == 0 && p.produced < room_left))
                {
                    if let Some(ex) = leg.exchange.as_mut() {
                        ex.upstream_closed(now);
                        leg.eof_told = true;
                        told = true;
                    }
                }
                (p, consumed > 0 || produced > 0 || told)
            }
            _ => {
                let p = match log {
                    Some(io) => http.process_logged(now, app, input, output, io),
                    None => http.process(now, app, input, output),
                };
                (p, false)
            }
        };
        total.consumed += p.consumed;
        total.produced += p.produced;
        upstream_moved || p.consumed > 0 || p.produced > 0
    }

    /// Settles an exchange the connection is done with, or retries a failed one. True if the
    /// leg changed.
    fn after_exchange(
        &mut self,
        slot: usize,
        now: Instant,
        http: &HttpConn,
        log_conn: Option<&mut crate::access::ConnLog>,
    ) -> bool {
        let leg = &self.legs[slot];
        let Some(ex) = leg.exchange.as_ref() else {
            return false;
        };
        if !http.is_forwarding() {
            self.settle(slot, now, Settle::Ended);
            return true;
        }
        match ex.end() {
            Some(End::Failed(f)) if f.retryable && leg.retryable && !leg.retries_exhausted => {
                // A pooled connection the upstream closed meanwhile: not the server's fault,
                // so the same server again, on a new connection, once.
                let stale = ex.spec().reused_connection
                    && matches!(f.cause, FailureCause::Closed | FailureCause::Reset)
                    && !leg.stale_retried;
                if let Some(addr) = self.retry(slot, now, stale) {
                    if let Some(log) = log_conn {
                        log.set_upstream_server(addr);
                    }
                }
                true
            }
            _ => false,
        }
    }

    /// Starts the request `http` has waiting: a server, a connection, the forwarded head.
    /// Returns the input consumed (the head), `None` when the gateway answered instead.
    #[allow(clippy::too_many_arguments)]
    fn start(
        &mut self,
        slot: usize,
        now: Instant,
        app: &App,
        http: &mut HttpConn,
        client: SocketAddr,
        input: &[u8],
        req: crate::http::UpstreamRequest,
        log_conn: Option<&mut crate::access::ConnLog>,
    ) -> Option<usize> {
        let Some(config) = app.proxy() else {
            http.answer_upstream_request(app, 502);
            return None;
        };
        let RouteTarget::Upstream(upstream) = *config.routes.target(req.route) else {
            http.answer_upstream_request(app, 502);
            return None;
        };
        let gen = self.gen_index(config);
        let spec = &self.gens[gen].config.upstreams[upstream.index()];
        let ip_bytes;
        let key: Option<&[u8]> = match &spec.hash_key {
            None => None,
            Some(HashKeySource::ClientAddress) => {
                ip_bytes = match client.ip() {
                    IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
                    IpAddr::V6(a) => a.octets(),
                };
                Some(&ip_bytes[..])
            }
            Some(HashKeySource::Header(name)) => {
                header_value(&input[..req.head_len.min(input.len())], name.as_bytes())
            }
        };
        let pool = &mut self.gens[gen].pools[upstream.index()];
        let Some(server) = pool.pick(now, key, Tried::NONE) else {
            self.counts.no_server += 1;
            http.answer_upstream_request(app, 503);
            return None;
        };
        let leg = &mut self.legs[slot];
        leg.gen = gen_id(&self.gens[gen].config);
        leg.tried = Tried::NONE;
        leg.retries_exhausted = false;
        leg.stale_retried = false;
        leg.retryable = req.idempotent && !req.has_body;
        let addr = self.gens[gen].pools[upstream.index()].spec(server).addr;
        let target = ServerRef { upstream, server };
        let Some((conn, reused)) = self.open(slot, addr, now) else {
            self.counts.no_connection += 1;
            http.answer_upstream_request(app, 502);
            return None;
        };
        let spec = &self.gens[gen].config.upstreams[upstream.index()];
        self.legs[slot].keepalive = spec.keepalive;
        let start = UpstreamStart {
            client: crate::proxy::forward::ClientConn {
                peer: client,
                tls: http.is_tls(),
            },
            fallback_host: spec.name.as_bytes(),
            upstream_keep_alive: spec.keepalive > 0,
            reused_connection: reused,
            timeouts: spec.timeouts,
            limits: self.limits(),
        };
        let leg = &mut self.legs[slot];
        let (_, room) = self.table.buffers(conn);
        match http.start_upstream(now, app, input, &start, room, &mut leg.exchange) {
            UpstreamStarted::Forwarded { consumed, produced } => {
                if leg.retryable {
                    leg.head.clear();
                    leg.head.extend_from_slice(&room[..produced]);
                }
                self.table.commit_send(conn, produced);
                let pool = &mut self.gens[gen].pools[upstream.index()];
                leg.ticket = Some(pool.on_request_start(server, now));
                leg.conn = Some(conn);
                leg.server = Some(target);
                leg.tried = leg.tried.with(server);
                leg.upstream_eof = false;
                leg.eof_told = false;
                self.gens[gen].in_flight += 1;
                let stat = self.gens[gen].stat_index[upstream.index()][server.index()];
                self.stats[stat].counters.requests += 1;
                self.stats[stat].counters.in_flight += 1;
                self.stats[stat].counters.reused += u64::from(reused);
                if let Some(log) = log_conn {
                    log.set_upstream_server(addr);
                }
                Some(consumed)
            }
            UpstreamStarted::Answered | UpstreamStarted::NotWaiting => {
                // Nothing was written: a pooled connection is as good as before.
                let max_idle = if reused { leg.keepalive } else { 0 };
                self.table.release(conn, max_idle, now);
                None
            }
        }
    }

    /// What an upstream may send: the defaults, with a head no longer than the table's
    /// receive buffer (a longer one would wait there, never complete, until the read
    /// timeout: a 504 for what is a bad response).
    fn limits(&self) -> UpstreamLimits {
        let limits = UpstreamLimits::default();
        UpstreamLimits {
            max_head_bytes: limits.max_head_bytes.min(self.table.recv_capacity()),
            ..limits
        }
    }

    /// A pooled connection to `addr`, or a new one: `(conn, reused)`.
    fn open(&mut self, slot: usize, addr: SocketAddr, now: Instant) -> Option<(T::Conn, bool)> {
        let owner = slot as u64;
        if let Some(conn) = self.table.checkout_idle(addr, owner, now) {
            return Some((conn, true));
        }
        self.table.connect(addr, owner).map(|c| (c, false))
    }

    /// The failed exchange of `slot` goes to another server with the same head (`stale`: to
    /// the same server on a new connection, its pooled one having been closed under it).
    /// Returns the server it went to, `None` when it could not go anywhere.
    fn retry(&mut self, slot: usize, now: Instant, stale: bool) -> Option<SocketAddr> {
        let Some(gen) = self
            .gens
            .iter()
            .position(|g| gen_id(&g.config) == self.legs[slot].gen)
        else {
            self.legs[slot].retries_exhausted = true;
            return None;
        };
        let Some(old) = self.legs[slot].server else {
            self.legs[slot].retries_exhausted = true;
            return None;
        };
        let pool = &mut self.gens[gen].pools[old.upstream.index()];
        let server = if stale {
            old.server
        } else {
            let Some(server) = pool.pick(now, None, self.legs[slot].tried) else {
                self.legs[slot].retries_exhausted = true;
                return None;
            };
            server
        };
        let addr = pool.spec(server).addr;
        let target = ServerRef {
            upstream: old.upstream,
            server,
        };
        let opened = if stale {
            // Not another pooled one: it could be as stale.
            self.table.connect(addr, slot as u64).map(|c| (c, false))
        } else {
            self.open(slot, addr, now)
        };
        let Some((conn, reused)) = opened else {
            self.legs[slot].retries_exhausted = true;
            return None;
        };
        // The failed exchange ends here: its server learns it (unless the connection was only
        // stale), its connection is closed.
        let stat = self.gens[gen].stat_index[old.upstream.index()][old.server.index()];
        let how = if stale {
            self.stats[stat].counters.stale_connections += 1;
            self.legs[slot].stale_retried = true;
            Settle::Stale
        } else {
            self.stats[stat].counters.retried += 1;
            Settle::Ended
        };
        let spec = self.legs[slot].exchange.as_ref().map(|ex| *ex.spec());
        self.settle_exchange(slot, now, how);
        let Some(mut spec) = spec else {
            let max_idle = if reused { self.legs[slot].keepalive } else { 0 };
            self.table.release(conn, max_idle, now);
            return None;
        };
        spec.reused_connection = reused;
        let leg = &mut self.legs[slot];
        let (_, room) = self.table.buffers(conn);
        let n = leg.head.len().min(room.len());
        room[..n].copy_from_slice(&leg.head[..n]);
        self.table.commit_send(conn, n);
        leg.exchange = Some(Exchange::new(now, spec));
        let pool = &mut self.gens[gen].pools[old.upstream.index()];
        leg.ticket = Some(pool.on_request_start(server, now));
        leg.conn = Some(conn);
        leg.server = Some(target);
        leg.tried = leg.tried.with(server);
        leg.upstream_eof = false;
        leg.eof_told = false;
        self.gens[gen].in_flight += 1;
        let stat = self.gens[gen].stat_index[old.upstream.index()][server.index()];
        self.stats[stat].counters.requests += 1;
        self.stats[stat].counters.in_flight += 1;
        self.stats[stat].counters.reused += u64::from(reused);
        Some(addr)
    }

    /// The leg's exchange is over (or abandoned): its connection back or closed, its server's
    /// outcome and counters.
    fn settle(&mut self, slot: usize, now: Instant, how: Settle) {
        self.settle_exchange(slot, now, how);
        self.drop_old_gens();
    }

    /// [`settle`](Self::settle) without dropping generations.
    fn settle_exchange(&mut self, slot: usize, now: Instant, how: Settle) {
        let leg = &mut self.legs[slot];
        // Read where it is and cleared at the end: the exchange is not moved out (a copy of a
        // few hundred bytes per request).
        let Some(ex) = leg.exchange.as_ref() else {
            return;
        };
        let end = match how {
            Settle::Ended => ex.end(),
            Settle::Abandoned | Settle::Stale => None,
        };
        // Pooled only when the head asked for keep-alive (the upstream may answer without
        // `Connection: close` and close all the same) and the exchange allows it.
        let reusable = matches!(
            end,
            Some(End::Done {
                upstream_reusable: true
            })
        );
        if let Some(conn) = leg.conn.take() {
            let max_idle = if reusable { leg.keepalive } else { 0 };
            self.table.release(conn, max_idle, now);
        }
        let gen = self.gens.iter().position(|g| gen_id(&g.config) == leg.gen);
        if let (Some(gen), Some(server), Some(ticket)) = (gen, leg.server.take(), leg.ticket.take())
        {
            let g = &mut self.gens[gen];
            // A request the client abandoned says nothing against the server.
            let outcome = end.map_or(Outcome::Ok, |_| ex.balance_outcome().unwrap_or(Outcome::Ok));
            g.pools[server.upstream.index()].on_request_end(ticket, now, outcome);
            g.in_flight = g.in_flight.saturating_sub(1);
            let c = &mut self.stats[g.stat_index[server.upstream.index()][server.server.index()]]
                .counters;
            c.in_flight = c.in_flight.saturating_sub(1);
            match end {
                None if how == Settle::Stale => {}
                None => c.abandoned += 1,
                Some(End::Done { .. }) => {}
                Some(End::Failed(f)) => c.failures.count(f.cause),
            }
            if let Some(status) = ex.status() {
                c.responses[usize::from(status / 100).clamp(1, 5) - 1] += 1;
            }
            if let Some(t) = ex.response_time() {
                c.response_time.record(t);
            }
        }
        leg.exchange = None;
    }

    /// The generation of `config` on this thread, built on first use.
    fn gen_index(&mut self, config: &Arc<ProxyConfig>) -> usize {
        if let Some(at) = self
            .gens
            .iter()
            .position(|g| Arc::ptr_eq(&g.config, config))
        {
            return at;
        }
        let mut pools = Vec::with_capacity(config.upstreams.len());
        let mut stat_index = Vec::with_capacity(config.upstreams.len());
        for upstream in &config.upstreams {
            // Checked when the configuration was read: the same spec builds here.
            let pool = upstream
                .pool(self.hash_key)
                .expect("pools are checked with the configuration");
            let mut index = Vec::with_capacity(upstream.pool.servers.len());
            for server in &upstream.pool.servers {
                let at = self
                    .stats
                    .iter()
                    .position(|s| *s.upstream == *upstream.name && s.server == server.addr)
                    .unwrap_or_else(|| {
                        self.stats.push(ServerStatsEntry {
                            upstream: upstream.name.as_str().into(),
                            server: server.addr,
                            counters: ServerCounters::default(),
                        });
                        self.stats.len() - 1
                    });
                index.push(at);
            }
            pools.push(pool);
            stat_index.push(index);
        }
        self.gens.push(PoolGen {
            config: Arc::clone(config),
            pools,
            stat_index,
            in_flight: 0,
        });
        self.sync_health(true);
        self.drop_old_gens();
        self.gens
            .iter()
            .position(|g| Arc::ptr_eq(&g.config, config))
            .unwrap_or(self.gens.len() - 1)
    }

    /// Generations older than the newest with nothing in flight are dropped.
    fn drop_old_gens(&mut self) {
        let newest = self.gens.len().saturating_sub(1);
        let mut i = 0;
        self.gens.retain(|g| {
            let keep = i == newest || g.in_flight > 0;
            i += 1;
            keep
        });
    }

    /// An upstream connection's event for the client connection in `slot` (the table's owner
    /// of `conn`). True if that client connection should be moved forward now.
    pub fn on_upstream(
        &mut self,
        slot: usize,
        conn: T::Conn,
        event: UpstreamEvent,
        now: Instant,
    ) -> bool {
        let Some(leg) = self.legs.get_mut(slot) else {
            return false;
        };
        if leg.conn != Some(conn) {
            return false;
        }
        let Some(ex) = leg.exchange.as_mut() else {
            return false;
        };
        match event {
            UpstreamEvent::Connected => ex.connected(now),
            UpstreamEvent::ConnectFailed => ex.connect_failed(now),
            UpstreamEvent::Reset => ex.upstream_reset(now),
            UpstreamEvent::Eof => leg.upstream_eof = true,
            UpstreamEvent::Progress => {}
        }
        true
    }

    /// The client connection in `slot` is gone: its exchange, if any, is abandoned (the
    /// upstream connection closed, the server not blamed).
    pub fn close(&mut self, slot: usize, now: Instant) {
        if self.is_forwarding(slot) {
            self.settle(slot, now, Settle::Abandoned);
        }
    }

    /// The exchanges' deadlines due at `now` run; the slots whose exchange moved are pushed
    /// to `due` (move those client connections forward).
    pub fn sweep(&mut self, now: Instant, due: &mut Vec<u32>) {
        self.sync_health(false);
        for (slot, leg) in self.legs.iter_mut().enumerate() {
            let Some(ex) = leg.exchange.as_mut() else {
                continue;
            };
            if ex.poll_timeout().is_some_and(|t| t <= now) {
                ex.handle_timeout(now);
                due.push(slot as u32);
            }
        }
    }
}

/// How a serving thread runs one client connection's HTTP: straight through
/// `HttpConn::process` ([`Direct`]), or through its [`Forwarder`] when requests may go
/// upstream. The bypass engine takes one per call, so the poller keeps its forwarder (and the
/// connection table's I/O) to itself.
pub trait HttpDriver {
    /// `HttpConn::process` (or `process_logged` with `log`) for the connection in `slot`.
    #[allow(clippy::too_many_arguments)]
    fn process(
        &mut self,
        slot: usize,
        now: Instant,
        app: &App,
        http: &mut HttpConn,
        client: SocketAddr,
        input: &[u8],
        output: &mut [u8],
        log: Option<AccessLogIo<'_>>,
    ) -> Progress;

    /// The client connection in `slot` is gone.
    fn closed(&mut self, slot: usize, now: Instant);
}

/// A thread with no upstream side: a request routed upstream is answered 502 (the gateway
/// cannot reach the pool).
#[derive(Debug, Clone, Copy, Default)]
pub struct Direct;

impl HttpDriver for Direct {
    #[inline]
    fn process(
        &mut self,
        _slot: usize,
        now: Instant,
        app: &App,
        http: &mut HttpConn,
        _client: SocketAddr,
        input: &[u8],
        output: &mut [u8],
        mut log: Option<AccessLogIo<'_>>,
    ) -> Progress {
        let lent = log.as_mut().map(|io| io.reborrow());
        let mut p = http.process_with_log(now, app, input, output, lent);
        if http.upstream_request().is_some() {
            http.answer_upstream_request(app, 502);
            let (input, output) = (&input[p.consumed..], &mut output[p.produced..]);
            let q = http.process_with_log(now, app, input, output, log);
            p.consumed += q.consumed;
            p.produced += q.produced;
        }
        p
    }

    fn closed(&mut self, _slot: usize, _now: Instant) {}
}

impl<T: UpstreamTable> HttpDriver for Forwarder<T> {
    fn process(
        &mut self,
        slot: usize,
        now: Instant,
        app: &App,
        http: &mut HttpConn,
        client: SocketAddr,
        input: &[u8],
        output: &mut [u8],
        log: Option<AccessLogIo<'_>>,
    ) -> Progress {
        Forwarder::process(self, slot, now, app, http, client, input, output, log)
    }

    fn closed(&mut self, slot: usize, now: Instant) {
        self.close(slot, now);
    }
}

#[cfg(test)]
#[path = "forwarder_tests.rs"]
mod tests;

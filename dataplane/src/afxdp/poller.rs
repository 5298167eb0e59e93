//! The bypass path's poller: one thread per RX queue, shared-nothing, driving one
//! [`Engine`] from one [`XskQueue`].
//!
//! One round of [`Poller::run`]'s loop, in this order:
//! 1. the `Date` wall clock, when the second changed;
//! 2. up to `batch_size` RX descriptors, each frame handed to `Engine::handle_frame` straight
//!    from UMEM (no copy here); the frames go back to the fill ring;
//! 3. `Engine::handle_timeout` when `poll_timeout` is due;
//! 4. the engine's flow events applied to the BPF `user_flows` map (`Added` ->
//!    `add_user_flow`, `Removed` -> `remove_user_flow`), so the map is in step before the next
//!    RX batch and before the answers go out;
//! 5. `Engine::poll_transmit` drained into TX descriptors, written directly into UMEM frames;
//!    a full TX ring or an empty frame pool stops the drain until the next round (the engine
//!    keeps what it could not send: it is asked only once a slot and a frame are secured);
//! 6. a TX kick (`sendto`, MSG_DONTWAIT) only when the ring holds unsent descriptors and the
//!    kernel needs a system call to send them (copy mode always does; zero-copy only when
//!    need_wakeup says so);
//! 7. completions reclaimed into the frame pool, and the fill ring topped up.
//!
//! A round that did anything counts as busy, and the loop spins on. After `idle_spin` of idle
//! rounds (none by default) the poller sleeps in `poll(2)` on its AF_XDP socket and its
//! [`Waker`], for at most the engine's next deadline or `max_sleep`, so an idle gateway costs
//! close to no CPU. Measured with `loadgen compare` (docs/architecture.md): sleeping at once
//! costs no throughput at saturation (the loop is never idle then) and a third less machine
//! CPU per request at a moderate rate than spinning 200 µs; on a dedicated core, spinning can
//! still shave the wake-up latency off a lightly loaded gateway.
//!
//! The engine answers each frame with its L2 addresses swapped; nothing here touches frame
//! contents. No allocation per packet: the rings, pool and batch buffers are sized at start.
//! Time comes from [`Clock`], converted to `time::Instant` at this edge.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::answers::ReloadMailbox;
use crate::bpf::SteeringMaps;
use crate::engine::{Engine, FlowEvent};
use crate::gateway::access_log::{AccessLink, AccessLinks};
use crate::http::HttpStats;
use crate::logging::RateLimiter;
use crate::proxy::forwarder::{Direct, HttpDriver, UpstreamServerState};
use crate::tally::PortCount;
use crate::tcp::{DropReason, TcpStats};
use crate::time::{Duration, Instant};
use crate::tls::TlsStats;
use crate::upstream::{UpstreamSide, UpstreamSideConfig};

use super::{AfXdpError, Clock, PmtuRelay, TxOutcome, Waker, XskQueue};

/// How often the engine-level gauges (connections, requests, TCP counters) are copied into
/// [`PollerStats`] while busy. They are always copied before a sleep and when the loop ends.
const ENGINE_PUBLISH_PERIOD: Duration = Duration::from_millis(100);
/// How often the HTTP counters are summed over the live connections and published: the sum
/// walks every connection (O(connections)), so less often than the rest.
const HTTP_PUBLISH_PERIOD: Duration = Duration::from_secs(1);
/// How often the socket's kernel statistics (`XDP_STATISTICS`) are read: a system call, so
/// not before every sleep, which at low rates is once per request.
const SOCKET_STATS_PERIOD: Duration = Duration::from_secs(1);

/// How one poller runs.
#[derive(Debug, Clone)]
pub struct PollerConfig {
    /// CPU to pin the poller thread to (`sched_setaffinity`); `None` leaves it to the scheduler.
    pub core: Option<usize>,
    /// RX descriptors taken per batch.
    pub batch_size: usize,
    /// How long the loop keeps spinning with nothing to do before it sleeps.
    pub idle_spin: Duration,
    /// Longest sleep, even when the engine has no deadline (bounds how stale the published
    /// counters can get, and how long a missed wake-up could last).
    pub max_sleep: Duration,
    /// The engine's connection table size (`tcp.max_connections`), named in the warning a
    /// refusal for a full table logs.
    pub connection_limit: usize,
}

impl Default for PollerConfig {
    /// No pinning, batches of 64, no idle spin, sleeps of at most 1 s, the TCP defaults' table.
    fn default() -> Self {
        Self {
            core: None,
            batch_size: 64,
            idle_spin: Duration::ZERO,
            max_sleep: Duration::from_secs(1),
            connection_limit: crate::tcp::TcpConfig::default().max_connections,
        }
    }
}

/// Why a poller stopped early.
#[derive(Debug, thiserror::Error)]
pub enum PollerError {
    /// `sched_setaffinity` refused the configured CPU.
    #[error("pinning the poller of queue {queue} to CPU {core}: {source}")]
    Affinity {
        /// RX queue.
        queue: u32,
        /// CPU asked for.
        core: usize,
        /// The OS error.
        source: io::Error,
    },
    /// An AF_XDP operation failed (e.g. the TX kick).
    #[error("poller of queue {queue}: {source}")]
    AfXdp {
        /// RX queue.
        queue: u32,
        /// The error.
        source: AfXdpError,
    },
    /// Sleeping in `poll(2)` failed.
    #[error("poll(2) in the poller of queue {queue}: {source}")]
    Poll {
        /// RX queue.
        queue: u32,
        /// The OS error.
        source: io::Error,
    },
    /// The eventfd behind the [`Waker`] could not be created.
    #[error("creating the poller's waker: {0}")]
    Waker(io::Error),
}

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident, )*) => {
        /// A poller's counters at one moment (plain values; see [`PollerStats::snapshot`]).
        /// All are monotonic except the gauges `connections` and `thread_id`.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct PollerCounters {
            $( $(#[$doc])* pub $name: u64, )*
        }

        /// A poller's counters, readable from any thread while it runs. The poller keeps plain
        /// counters and stores them here (relaxed) once per busy round and before sleeping.
        #[derive(Debug, Default)]
        pub struct PollerStats {
            $( $name: AtomicU64, )*
            /// Connections and requests by port, copied from the engine with the gauges.
            ports: Mutex<Vec<PortCount>>,
            /// The engine's TCP counters (drops by reason and all), copied with the gauges.
            tcp: Mutex<TcpStats>,
            /// The engine's HTTP counters (status classes, latency...), copied with the gauges.
            http: Mutex<HttpStats>,
            /// Each upstream server as this poller sees it, copied with the HTTP counters.
            upstreams: Mutex<Vec<UpstreamServerState>>,
            /// The engine's TLS counters, copied with the gauges.
            tls: Mutex<TlsStats>,
        }

        impl PollerStats {
            fn publish(&self, c: &PollerCounters) {
                $( self.$name.store(c.$name, Ordering::Relaxed); )*
            }

            /// Connections and requests by port, as last published.
            pub fn port_counts(&self) -> Vec<PortCount> {
                self.ports.lock().unwrap_or_else(|e| e.into_inner()).clone()
            }

            /// The engine's HTTP counters as last published.
            pub fn http_stats(&self) -> HttpStats {
                *self.http.lock().unwrap_or_else(|e| e.into_inner())
            }

            /// The engine's TLS counters as last published.
            pub fn tls_stats(&self) -> TlsStats {
                *self.tls.lock().unwrap_or_else(|e| e.into_inner())
            }

            /// The upstream servers as last published.
            pub fn upstream_states(&self) -> Vec<UpstreamServerState> {
                self.upstreams.lock().unwrap_or_else(|e| e.into_inner()).clone()
            }

            /// The engine's TCP counters as last published.
            pub fn tcp_stats(&self) -> TcpStats {
                self.tcp.lock().unwrap_or_else(|e| e.into_inner()).clone()
            }

            /// The counters as last published.
            pub fn snapshot(&self) -> PollerCounters {
                PollerCounters { $( $name: self.$name.load(Ordering::Relaxed), )* }
            }
        }
    };
}

counters! {
    /// Frames received from the RX ring.
    rx_frames,
    /// Non-empty RX batches.
    rx_batches,
    /// Received frames the engine refused (malformed, bad cookie, out of window...; the
    /// reasons are in the engine's `TcpStats`).
    rx_refused,
    /// Frames put on the TX ring.
    tx_frames,
    /// Bytes put on the TX ring.
    tx_bytes,
    /// Rounds whose TX drain stopped on a full TX ring.
    tx_ring_full,
    /// Rounds whose TX drain stopped for lack of a free UMEM frame.
    tx_no_frame,
    /// TX kicks (`sendto`).
    tx_kicks,
    /// TX frames whose completion came back to the pool.
    tx_completed,
    /// Rounds that ended with an empty fill ring (received frames would be dropped).
    fill_ring_empty,
    /// The kernel's count (`XDP_STATISTICS`, read once a second) of frames it dropped at this
    /// socket because the RX ring was full: the poller did not keep up.
    socket_rx_ring_full,
    /// Frames the kernel dropped at this socket for want of a fill-ring frame.
    socket_rx_fill_ring_empty,
    /// Frames the kernel dropped at this socket for other reasons (e.g. larger than a frame).
    socket_rx_dropped,
    /// RX and TX descriptors the kernel found invalid (a bug on our side if ever non-zero).
    socket_rx_invalid_descs,
    socket_tx_invalid_descs,
    /// Rounds that ran `Engine::handle_timeout`.
    timer_runs,
    /// `user_flows` entries added.
    flows_added,
    /// `user_flows` entries removed.
    flows_removed,
    /// `user_flows` updates that failed (map full: the connection is not steered by rule 2).
    flow_map_errors,
    /// Rounds that did some work.
    busy_loops,
    /// Rounds that found nothing to do (spinning before a sleep).
    idle_loops,
    /// Sleeps in `poll(2)`.
    sleeps,
    /// Sleeps that ended because the socket or the waker became ready (not by timeout).
    wakeups,
    /// Gauge: live TCP connections in the engine.
    connections,
    /// HTTP requests the engine accepted (live and closed connections).
    http_requests,
    /// TCP segments the engine received.
    tcp_segments_in,
    /// TCP segments the engine sent.
    tcp_segments_out,
    /// Connections established (valid cookie ACKs).
    tcp_established,
    /// TCP retransmissions.
    tcp_retransmits,
    /// RSTs the engine sent.
    tcp_rsts_out,
    /// Gauge: Linux thread id of the poller (0 until it runs), to find it in /proc.
    thread_id,
    /// Reloads the engine has applied (one waits while older responses finish).
    reloads,
    /// Submissions of the upstream connections' ring that failed.
    upstream_submit_errors,
    /// Requests routed upstream answered 503: no server of the pool was eligible.
    upstream_no_server,
    /// Requests routed upstream answered 502: no connection could be opened.
    upstream_no_connection,
    /// Path MTU errors about another queue's connection, posted to that queue's poller.
    pmtu_relayed,
    /// The same, dropped because that poller's inbox was full.
    pmtu_relay_dropped,
}

impl PollerCounters {
    /// Share of loop rounds that did work (0 when the loop has not run).
    pub fn busy_ratio(&self) -> f64 {
        let total = self.busy_loops + self.idle_loops;
        if total == 0 {
            0.0
        } else {
            self.busy_loops as f64 / total as f64
        }
    }
}

/// The poller of one RX queue: its AF_XDP socket, its engine, its own handles on the steering
/// maps. Build it on any thread, then move it to the thread that calls [`run`](Self::run).
pub struct Poller {
    queue: XskQueue,
    engine: Engine,
    maps: SteeringMaps,
    config: PollerConfig,
    clock: Clock,
    waker: Waker,
    stats: Arc<PollerStats>,
    counters: PollerCounters,
    next_wall: Instant,
    next_publish: Instant,
    next_http_publish: Instant,
    next_socket_stats: Instant,
    /// Set by whoever holds [`Poller::drain_flag`]: the engine begins its graceful shutdown.
    drain: Arc<AtomicBool>,
    /// New routes and limits for the engine ([`Engine::reload`]).
    reload: Arc<ReloadMailbox>,
    /// Per-packet log events (refused frames, failed map updates), rate-limited.
    refused_log: RateLimiter,
    flow_map_log: RateLimiter,
    /// Connections refused because the table is full: an operator's warning, rate-limited.
    table_full_log: RateLimiter,
    /// The hand-over of the engine's access-log records to the writer thread, when the log is on.
    access: Option<AccessLink>,
    /// The upstream side (forwarder and upstream connections), built when the first request
    /// is routed upstream.
    upstream: UpstreamSide,
    /// Every poller's inbox of path MTU errors (this one's at its queue's index), when the
    /// interface has several queues.
    pmtu_relay: Option<PmtuRelay>,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller")
            .field("queue", &self.queue)
            .field("config", &self.config)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Poller {
    /// A poller for `queue`. `engine` must have been created with a `now` read from `clock`.
    /// `maps` should be this poller's own handles ([`SteeringMaps::try_clone`]).
    pub fn new(
        queue: XskQueue,
        engine: Engine,
        maps: SteeringMaps,
        config: PollerConfig,
        clock: Clock,
    ) -> Result<Self, PollerError> {
        let waker = Waker::new().map_err(PollerError::Waker)?;
        Ok(Self {
            queue,
            engine,
            maps,
            config,
            clock,
            waker,
            stats: Arc::new(PollerStats::default()),
            counters: PollerCounters::default(),
            next_wall: Instant::ZERO,
            next_publish: Instant::ZERO,
            next_http_publish: Instant::ZERO,
            next_socket_stats: Instant::ZERO,
            drain: Arc::new(AtomicBool::new(false)),
            reload: Arc::new(ReloadMailbox::default()),
            refused_log: RateLimiter::new(10, Duration::from_secs(1)),
            flow_map_log: RateLimiter::new(5, Duration::from_secs(1)),
            table_full_log: RateLimiter::new(1, crate::logging::WARNING_PERIOD),
            access: None,
            upstream: UpstreamSide::new(None),
            pmtu_relay: None,
        })
    }

    /// Joins the pollers of the other queues (`pmtu_relay`'s module documentation): path MTU
    /// errors about their connections go to them, theirs about this poller's come in.
    pub fn join_pmtu_relay(&mut self, relay: PmtuRelay) {
        if let Some(inbox) = relay.get(self.queue.queue() as usize) {
            inbox.set_waker(self.waker.clone());
        }
        self.engine.forward_foreign_pmtu(true);
        self.pmtu_relay = Some(relay);
    }

    /// Sets how the upstream side will be built (the process's hash key); without it, the
    /// first request routed upstream builds it with the defaults and a key of its own.
    pub fn configure_proxy(&mut self, config: UpstreamSideConfig) {
        self.upstream = UpstreamSide::new(Some(config));
    }

    /// Turns the access log on: the engine keeps `capacity` records between two hand-overs,
    /// made at each publish (every 100 ms while busy, and before each sleep) through a link
    /// of the same capacity made on this poller's clock.
    pub fn enable_access_log(&mut self, links: &mut AccessLinks, capacity: usize) {
        self.engine.enable_access_log(capacity);
        self.access = Some(links.link(self.clock.now(), capacity));
    }

    /// A handle that interrupts this poller's sleep (use it after setting the stop flag).
    pub fn waker(&self) -> Waker {
        self.waker.clone()
    }

    /// Setting this flag (then waking the poller) starts the engine's graceful shutdown
    /// ([`Engine::begin_drain`]): idle connections close, the others after their response.
    pub fn drain_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.drain)
    }

    /// Where new routes and limits are posted (then wake the poller): the engine takes them
    /// on its next round ([`Engine::reload`]).
    pub fn reload_mailbox(&self) -> Arc<ReloadMailbox> {
        Arc::clone(&self.reload)
    }

    /// The counters, shared with whoever watches the poller.
    pub fn stats(&self) -> Arc<PollerStats> {
        Arc::clone(&self.stats)
    }

    /// The counters as this thread sees them.
    pub fn counters(&self) -> PollerCounters {
        self.counters
    }

    /// The engine (its `tcp_stats`, `http_stats`, `connection_count`).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The AF_XDP socket.
    pub fn queue(&self) -> &XskQueue {
        &self.queue
    }

    /// The configuration.
    pub fn config(&self) -> &PollerConfig {
        &self.config
    }

    /// Pins the calling thread to the configured core; nothing without one. [`run`](Self::run)
    /// does it too; calling it first lets a caller learn of a bad core before traffic flows.
    pub fn pin_thread(&self) -> Result<(), PollerError> {
        if let Some(core) = self.config.core {
            pin_to_core(core).map_err(|source| PollerError::Affinity {
                queue: self.queue.queue(),
                core,
                source,
            })?;
        }
        Ok(())
    }

    /// Runs the loop until `stop` is set (then wake the poller with its [`Waker`] so it does
    /// not finish a sleep first). Pins the calling thread first when a core is configured.
    /// When the loop ends, for any reason, the socket is taken out of `xsks`, so the queue's
    /// new connections fall back to the kernel instead of a socket nobody reads.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<(), PollerError> {
        self.pin_thread()?;
        self.counters.thread_id = thread_id();
        let now = self.clock.now();
        self.publish_all(now);

        let mut idle_since: Option<Instant> = None;
        let result = loop {
            if stop.load(Ordering::Relaxed) {
                break self.reset_all();
            }
            let now = self.clock.now();
            if !self.engine.is_draining() && self.drain.load(Ordering::Relaxed) {
                let mut direct = Direct;
                let driver: &mut dyn HttpDriver = match self.upstream.built() {
                    Some(f) => f,
                    None => &mut direct,
                };
                self.engine.begin_drain_driven(now, driver);
            }
            if let Some(next) = self.reload.take() {
                self.engine.reload(next);
            }
            let work = match self.poll_once(now) {
                Ok(work) => work,
                Err(e) => break Err(e),
            };
            if work > 0 {
                self.counters.busy_loops += 1;
                idle_since = None;
                self.hand_over_access_if_half_full();
                if now >= self.next_publish {
                    self.publish_all(now);
                } else {
                    self.stats.publish(&self.counters);
                }
                continue;
            }
            self.counters.idle_loops += 1;
            let since = *idle_since.get_or_insert(now);
            if now - since < self.config.idle_spin {
                std::hint::spin_loop();
                continue;
            }
            self.publish_all(now);
            if let Err(e) = self.sleep(now) {
                break Err(e);
            }
            // Spin a little again after each wake-up: it usually brings more work.
            idle_since = None;
        };
        // A poller that no longer reads its socket must not keep it in `xsks`: its queue's
        // new connections go back to the kernel (the socket itself lives on with the Poller
        // value until that is dropped).
        let _ = self.maps.remove_xsk(self.queue.queue());
        self.publish_all(self.clock.now());
        result
    }

    /// At stop: the connections still open are reset and the RSTs sent (a few rounds, in
    /// case the TX ring fills), so their peers learn now rather than at their next segment.
    fn reset_all(&mut self) -> Result<(), PollerError> {
        let now = self.clock.now();
        let mut direct = Direct;
        let driver: &mut dyn HttpDriver = match self.upstream.built() {
            Some(f) => f,
            None => &mut direct,
        };
        self.engine.abort_all_driven(now, driver);
        for _ in 0..16 {
            if self.poll_once(now)? == 0 {
                break;
            }
        }
        Ok(())
    }

    /// One round of the loop at `now` (see the module documentation); returns how much it
    /// did (frames received and sent, timers run, flow events applied, completions...), zero
    /// when there was nothing to do.
    pub fn poll_once(&mut self, now: Instant) -> Result<usize, PollerError> {
        let mut work = 0usize;
        if now >= self.next_wall {
            let (secs, to_next) = self.clock.wall();
            self.engine.set_wall_clock(secs);
            self.next_wall = now + to_next;
        }

        // The upstream side is built before the first request routed upstream is parsed.
        if self.engine.app().proxy().is_some() {
            let _ = self.upstream.get();
        }
        // Each driver is its own copy of the engine's code: no indirect call per request.
        let mut forwarder = self.upstream.built();

        // A new round: TLS handshakes that waited for the round's budget go first.
        if self.engine.has_deferred_handshakes() {
            work += 1;
        }
        match forwarder.as_mut() {
            Some(f) => self.engine.begin_round(now, &mut **f),
            None => self.engine.begin_round(now, &mut Direct),
        }

        // RX: frames are borrowed from UMEM for the length of handle_frame.
        let engine = &mut self.engine;
        let refused = &mut self.counters.rx_refused;
        let log = &mut self.refused_log;
        let table_full_log = &mut self.table_full_log;
        let limit = self.config.connection_limit;
        let queue = self.queue.queue();
        let n = self.queue.recv_batch(self.config.batch_size, |frame| {
            let result = match forwarder.as_mut() {
                Some(f) => engine.handle_frame_driven(now, frame, &mut **f),
                None => engine.handle_frame_driven(now, frame, &mut Direct),
            };
            if let Err(reason) = result {
                *refused += 1;
                if reason == DropReason::TableFull {
                    if let Some(suppressed) = table_full_log.allow(now) {
                        // Cold: parsed again only for the line that gets out.
                        let port =
                            crate::wire::parse_tcp_frame(frame).map_or(0, |f| f.tcp.dst_port);
                        tracing::warn!(
                            queue,
                            port,
                            limit,
                            refused_since_last = suppressed,
                            "bypass: connection refused, the connection table is full \
                             (tcp.max_connections per queue)"
                        );
                    }
                }
                // The level check first: a relaxed load when debug is off.
                if tracing::enabled!(tracing::Level::DEBUG) {
                    if let Some(suppressed) = log.allow(now) {
                        tracing::debug!(
                            queue,
                            reason = reason.name(),
                            len = frame.len(),
                            suppressed,
                            "frame refused"
                        );
                    }
                }
            }
        });
        if n > 0 {
            self.counters.rx_frames += n as u64;
            self.counters.rx_batches += 1;
            work += n;
        }

        work += self.relay_path_mtu(now);

        // Upstream answers (or room for requests): their client connections run again.
        let ready = self.upstream.take_ready(now);
        if let Some(f) = self.upstream.built() {
            for &slot in &ready {
                self.engine.service_slot(now, slot as usize, f);
            }
        }
        work += ready.len();
        self.upstream.put_back(ready);

        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            let mut direct = Direct;
            let driver: &mut dyn HttpDriver = match self.upstream.built() {
                Some(f) => f,
                None => &mut direct,
            };
            if self.engine.handle_timeout_driven(now, driver) {
                let due = self.upstream.take_due(now);
                if let Some(f) = self.upstream.built() {
                    for &slot in &due {
                        self.engine.service_slot(now, slot as usize, f);
                    }
                }
                self.upstream.put_back(due);
            }
            self.counters.timer_runs += 1;
            work += 1;
        }
        if self.upstream.flush().is_err() {
            self.counters.upstream_submit_errors += 1;
        }

        work += self.apply_flow_events();

        // TX: the engine writes each frame straight into a UMEM frame.
        loop {
            let engine = &mut self.engine;
            match self
                .queue
                .try_send_with(|buf| engine.poll_transmit(now, buf))
            {
                TxOutcome::Sent(len) => {
                    self.counters.tx_frames += 1;
                    self.counters.tx_bytes += len as u64;
                    work += 1;
                }
                TxOutcome::Nothing => break,
                TxOutcome::RingFull => {
                    self.counters.tx_ring_full += 1;
                    work += 1;
                    break;
                }
                TxOutcome::NoFrame => {
                    self.counters.tx_no_frame += 1;
                    work += 1;
                    break;
                }
            }
        }
        if self.queue.wants_tx_kick() {
            self.queue.kick_tx().map_err(|source| PollerError::AfXdp {
                queue: self.queue.queue(),
                source,
            })?;
            self.counters.tx_kicks += 1;
            work += 1;
        }

        let done = self.queue.reclaim();
        self.counters.tx_completed += done as u64;
        work += done;
        let ring = self.queue.ring_size() as usize;
        self.queue.refill(ring);
        if self.queue.fill_ring_frames() == 0 {
            self.counters.fill_ring_empty += 1;
        }
        Ok(work)
    }

    /// Path MTU errors between pollers: those the engine kept for other queues' flows go to
    /// the owner's inbox (the owner from `user_flows`), those others posted here go to the
    /// engine. Returns the messages handled.
    fn relay_path_mtu(&mut self, now: Instant) -> usize {
        let Some(relay) = &self.pmtu_relay else {
            return 0;
        };
        let own = self.queue.queue();
        let mut n = 0;
        while let Some(m) = self.engine.poll_foreign_pmtu() {
            n += 1;
            let owner = self.maps.user_flow_owner(m.flow).ok().flatten();
            match owner
                .filter(|&q| q != own)
                .and_then(|q| relay.get(q as usize))
            {
                Some(inbox) => {
                    if inbox.post(m) {
                        self.counters.pmtu_relayed += 1;
                    } else {
                        self.counters.pmtu_relay_dropped += 1;
                    }
                }
                // Nobody else owns it (gone, or never a bypass flow): counted here.
                None => self.engine.handle_forwarded_pmtu(now, &m),
            }
        }
        let engine = &mut self.engine;
        n + relay[own as usize].drain(|m| engine.handle_forwarded_pmtu(now, m))
    }

    /// Keeps `user_flows` in step with the engine's connections; returns the events applied.
    fn apply_flow_events(&mut self) -> usize {
        let mut n = 0;
        while let Some(event) = self.engine.poll_flow_event() {
            n += 1;
            let queue = self.queue.queue();
            let (ok, count) = match event {
                FlowEvent::Added(flow) => (
                    self.maps.add_user_flow(flow, queue).is_ok(),
                    &mut self.counters.flows_added,
                ),
                FlowEvent::Removed(flow) => (
                    self.maps.remove_user_flow(flow).is_ok(),
                    &mut self.counters.flows_removed,
                ),
            };
            if ok {
                *count += 1;
            } else {
                self.counters.flow_map_errors += 1;
                if let Some(suppressed) = self.flow_map_log.allow(self.clock.now()) {
                    tracing::warn!(
                        queue,
                        event = ?event,
                        suppressed,
                        "user_flows update failed: this connection is not steered by its 4-tuple"
                    );
                }
            }
        }
        n
    }

    /// Sleeps in `poll(2)` until the socket has RX frames, the waker is woken, or the engine's
    /// next deadline (at most `max_sleep`).
    fn sleep(&mut self, now: Instant) -> Result<(), PollerError> {
        let timeout = match self.engine.poll_timeout() {
            Some(t) if t <= now => return Ok(()),
            Some(t) => (t - now).min(self.config.max_sleep),
            None => self.config.max_sleep,
        };
        // Rounded up: waking a little late is fine, waking early only to sleep again is not.
        let ms = i32::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        // The upstream ring's descriptor last, when there is one (-1 is ignored by poll(2)).
        let mut fds = [
            libc::pollfd {
                fd: self.queue.raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.waker.raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.upstream.ring_fd().unwrap_or(-1),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        self.counters.sleeps += 1;
        // SAFETY: `fds` is a live array of three initialised pollfds, and its length is passed.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(PollerError::Poll {
                queue: self.queue.queue(),
                source: err,
            });
        }
        if rc > 0 {
            self.counters.wakeups += 1;
            if fds[1].revents != 0 {
                self.waker.drain();
            }
        }
        Ok(())
    }

    /// Between publish points, a busy poller hands its access-log records over once its sink
    /// is half full, so a fast one does not drop them for want of a publish.
    fn hand_over_access_if_half_full(&mut self) {
        if let Some(link) = self.access.as_mut() {
            if let Some(sink) = self.engine.access_sink().filter(|s| s.is_half_full()) {
                link.hand_over(sink);
            }
        }
    }

    /// Copies the engine's gauges into the counters and publishes everything.
    fn publish_all(&mut self, now: Instant) {
        let c = &mut self.counters;
        c.connections = self.engine.connection_count() as u64;
        c.http_requests = self.engine.requests();
        c.reloads = self.engine.reloads_applied();
        // Never wait on the reader: a busy lock only delays this copy to the next period.
        if let Ok(mut ports) = self.stats.ports.try_lock() {
            ports.clear();
            ports.extend_from_slice(self.engine.port_counts());
        }
        let tcp = self.engine.tcp_stats();
        if let Ok(mut shared) = self.stats.tcp.try_lock() {
            shared.clone_from(tcp);
        }
        // A plain copy (no allocation), with the TCP counters: a failure is visible at once.
        if let Ok(mut shared) = self.stats.tls.try_lock() {
            *shared = *self.engine.tls_stats();
        }
        if now >= self.next_http_publish {
            if let Ok(mut shared) = self.stats.http.try_lock() {
                *shared = self.engine.http_stats();
                self.next_http_publish = now + HTTP_PUBLISH_PERIOD;
            }
            if let Some(f) = self.upstream.built_ref() {
                let counts = f.stats();
                c.upstream_no_server = counts.no_server;
                c.upstream_no_connection = counts.no_connection;
                // Once a second, and only once the proxy is in use: the copy allocates.
                let mut states = Vec::new();
                f.snapshot(now, &mut states);
                if let Ok(mut shared) = self.stats.upstreams.try_lock() {
                    *shared = states;
                }
            }
        }
        c.tcp_segments_in = tcp.segments_in;
        c.tcp_segments_out = tcp.segments_out;
        c.tcp_established = tcp.connections_established;
        c.tcp_retransmits = tcp.retransmits;
        c.tcp_rsts_out = tcp.rsts_out;
        if let (Some(link), Some(sink)) = (self.access.as_mut(), self.engine.access_sink()) {
            link.hand_over(sink);
        }
        if now >= self.next_socket_stats {
            self.next_socket_stats = now + SOCKET_STATS_PERIOD;
            // A failed read keeps the last values: the counters are monotonic, and the
            // socket is the one this loop reads, so it cannot be gone.
            if let Ok(k) = self.queue.statistics() {
                c.socket_rx_ring_full = k.rx_ring_full();
                c.socket_rx_fill_ring_empty = k.rx_fill_ring_empty_descs();
                c.socket_rx_dropped = k.rx_dropped();
                c.socket_rx_invalid_descs = k.rx_invalid_descs();
                c.socket_tx_invalid_descs = k.tx_invalid_descs();
            }
        }
        self.stats.publish(c);
        self.next_publish = now + ENGINE_PUBLISH_PERIOD;
    }
}

/// Pins the calling thread to `core` (also used for the kernel path's thread).
pub fn pin_to_core(core: usize) -> io::Result<()> {
    if core >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `core` is below CPU_SETSIZE (checked above), so CPU_SET stays inside `set`.
    unsafe { libc::CPU_SET(core, &mut set) };
    // SAFETY: pid 0 is the calling thread; `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The calling thread's Linux thread id.
fn thread_id() -> u64 {
    // SAFETY: gettid has no arguments and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    u64::try_from(tid).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_publish_and_snapshot_agree() {
        let stats = PollerStats::default();
        let c = PollerCounters {
            rx_frames: 3,
            busy_loops: 1,
            idle_loops: 3,
            thread_id: 7,
            ..Default::default()
        };
        stats.publish(&c);
        assert_eq!(stats.snapshot(), c);
        assert!((c.busy_ratio() - 0.25).abs() < 1e-9);
        assert_eq!(PollerCounters::default().busy_ratio(), 0.0);
    }

    #[test]
    fn pinning_to_an_impossible_core_is_an_error() {
        assert!(pin_to_core(libc::CPU_SETSIZE as usize).is_err());
        assert!(thread_id() > 0);
    }
}

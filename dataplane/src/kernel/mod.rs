//! The kernel path: the ports' listening sockets driven by io_uring, answered by the same
//! sans-IO `http` and `app` code as the bypass path.
//!
//! [`KernelPath`] is a thin driver: it owns one io_uring (`ring`), the listening sockets (one
//! per port, added with [`KernelPath::listen`] *after* the BPF sock_ops program is attached,
//! so that it sees them), and a bounded table of connections ([`HttpSessions`], shared with the
//! bypass engine), each a socket plus a sans-IO [`StreamConn`] that holds its HTTP state,
//! buffers and lifecycle. The driver moves bytes between the two and turns the stream's wishes
//! into operations. Each listener has one multishot accept in flight. Each connection has at
//! most one receive and one send in flight:
//!
//! - receives take a buffer from a registered ring of provided buffers; the bytes are handed
//!   to `HttpConn::process` straight from that buffer, and only what it leaves unconsumed (a
//!   head cut by the buffer's end, or input held back while output waits) is copied into the
//!   connection's input buffer, which keeps unconsumed bytes contiguous. When the kernel
//!   refuses buffer rings, each receive goes straight into the connection's input buffer;
//! - a receive is posted only while the input buffer has room for a whole receive buffer, so
//!   a peer that does not read its answers stops being read (TCP backpressure) instead of
//!   growing a queue;
//! - responses are written into the connection's output buffer and sent from there; the
//!   output buffer is refilled only once the previous send has completed.
//!
//! A connection ends in one of three ways (the stream's [`Lifecycle`]). When `HttpConn` is
//! done and everything is sent (`Finishing`), the socket's write side is shut (our FIN goes
//! after the queued bytes) and the connection *lingers*, reading and dropping input until the
//! peer's FIN or [`KernelConfig::linger`]: closing with unread input would make the kernel
//! reset the connection and drop the end of the response still in the send buffer. The
//! server closes first (RFC 9112 §9.6), right behind the response: when the stream says a
//! send carries the connection's last bytes, that send (`MSG_WAITALL`, so a short one fails
//! the link; `MSG_MORE`, so its last segment waits for the FIN) goes with an
//! `IORING_OP_SHUTDOWN` linked behind it: the FIN rides on the response's last segment,
//! instead of leaving a loop turn later, by which time a quick client has read the response
//! and closed first, keeping the TIME_WAIT on its side. A broken link (the shutdown completes
//! with `-ECANCELED`) sends the rest the same way. When the
//! peer resets, an operation fails, the peer stops reading for the idle timeout, or a shutdown
//! deadline passes, the connection is cut (`Aborted`). Either way its operations are cancelled
//! and the socket is closed once they have completed.
//!
//! Completions are matched to connections by `user_data` = operation, slot index and the
//! slot's generation (see `ring`), and a slot is reused only once none of its operations is in
//! flight, so a late completion never touches the next connection in the slot.
//!
//! Two ways to drive it: [`KernelPath::poll`] submits and reaps without blocking (from the
//! AF_XDP poller's loop), [`KernelPath::run`] blocks in `io_uring_enter` with a timeout (on its
//! own thread). Use one or the other for a given `KernelPath`: `poll` takes the caller's
//! clock, `run` reads its own. HTTP header and idle deadlines are checked by a sweep every
//! [`SWEEP_PERIOD`], as the bypass engine does.

mod bufring;
mod proxy;
mod ring;

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use io_uring::{cqueue, opcode, squeue, types};

use crate::access::{AccessSink, PathKind};
use crate::answers::Served;
use crate::app::App;
use crate::http::{HttpConn, HttpLimits, HttpStats};
use crate::logging::RateLimiter;
use crate::proxy::forwarder::{Direct, HttpDriver};
use crate::sessions::{HttpSessions, Session};
use crate::stream::{AbortReason, Advance, Lifecycle, StreamConfig, StreamConn};
use crate::sys::socket;
use crate::tally::{PortCount, TallySlot};
use crate::time::{Duration, Instant};
use crate::tls::{TlsStats, TlsThread};
use crate::upstream::UpstreamSide;
use bufring::BufRing;
use ring::{split_user_data, user_data, Op, Ring, GEN_MASK, REAP_BATCH};

/// How often HTTP deadlines are checked, and the longest `run` sleeps in the kernel.
pub const SWEEP_PERIOD: Duration = crate::sessions::SWEEP_PERIOD;

/// Everything the kernel path needs to know at start.
#[derive(Debug, Clone)]
pub struct KernelConfig {
    pub http: HttpLimits,
    /// Live connections at most; beyond it a new connection is accepted and closed at once.
    pub max_connections: usize,
    /// Submission queue entries (the completion queue gets four times as many).
    pub ring_entries: u32,
    /// Provided receive buffers in the registered ring: a power of two, at most 32768.
    pub recv_buffers: u16,
    /// Bytes per receive buffer (and per receive in the fallback mode).
    pub recv_buffer_len: usize,
    /// Per-connection output buffer: the most one send carries.
    pub output_buffer_len: usize,
    /// After the last response of a connection, how long to keep reading (and dropping)
    /// what the peer still sends while waiting for its FIN: closing with unread input would
    /// reset the connection and lose the end of the response still in the send buffer.
    pub linger: Duration,
    /// Skip the buffer ring and receive into per-connection buffers (the fallback mode, for
    /// kernels that refuse buffer rings; settable to test it).
    pub per_connection_recv: bool,
    /// The congestion control given to the listeners (and so to the connections they
    /// accept), by Linux module name: the bypass's `[tcp] congestion`, so a port behaves
    /// alike on either path. `None` keeps the host's default (the admin endpoint's).
    pub congestion: Option<&'static str>,
    /// TLS handshakes started per turn of the loop (0: no bound): the `[tls]` key of the
    /// same name, as the pollers'.
    pub tls_handshakes_per_round: u32,
}

impl Default for KernelConfig {
    fn default() -> Self {
        KernelConfig {
            http: HttpLimits::default(),
            max_connections: 4096,
            ring_entries: 1024,
            recv_buffers: 1024,
            recv_buffer_len: 16 * 1024,
            output_buffer_len: 64 * 1024,
            linger: Duration::from_secs(2),
            per_connection_recv: false,
            congestion: None,
            tls_handshakes_per_round: crate::tls::DEFAULT_HANDSHAKES_PER_ROUND,
        }
    }
}

/// How receives get their buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvMode {
    /// From the registered ring of provided buffers.
    BufferRing,
    /// Into each connection's own input buffer (the kernel refused buffer rings, or the
    /// configuration asked for it).
    PerConnection,
}

/// Errors by kind. Each closes at most the connection it happened on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelErrors {
    /// Accept completions with an error (EMFILE, ENFILE, ENOMEM, ...).
    pub accept: u64,
    /// Receive errors other than a reset.
    pub recv: u64,
    /// Send errors other than a reset.
    pub send: u64,
    /// Peer resets (ECONNRESET, EPIPE) seen by a receive or a send.
    pub reset: u64,
    /// Receives that found the buffer ring empty (re-posted on the next turn).
    pub no_buffers: u64,
    /// Connections closed because unconsumed input filled the input buffer.
    pub input_overflow: u64,
    /// Connections closed because the peer stopped reading for the idle timeout.
    pub send_timeout: u64,
    /// Connections cut by the shutdown deadline.
    pub shutdown_cut: u64,
    /// Submissions that failed, and close completions with an error.
    pub submit: u64,
    pub close: u64,
}

/// Counters an operator reads. `active` is [`KernelPath::connection_count`]; request counts are
/// in [`KernelPath::http_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Connections taken into the table.
    pub accepted: u64,
    /// Connections accepted and closed at once because the table was full.
    pub refused: u64,
    /// Connections closed (by either side, for any reason).
    pub closed: u64,
    /// Bytes received and sent on connections.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// HTTP counters summed over connections that have closed.
    pub http_closed: HttpStats,
    pub errors: KernelErrors,
}

struct Listener {
    fd: Option<OwnedFd>,
    addr: SocketAddr,
    /// The multishot accept is in flight.
    armed: bool,
    /// The port's place in `KernelPath::tally`.
    tally: TallySlot,
}

/// What a slot of [`HttpSessions`] holds on the kernel path: the socket, its operations in
/// flight, and the connection's stream state.
struct KernelConn {
    stream: StreamConn,
    fd: RawFd,
    /// Bumped each time the slot is reused: completions of an earlier connection carry an
    /// older one.
    gen: u32,
    recv_pending: bool,
    send_pending: bool,
    /// A write-side shutdown linked behind the last send is in flight.
    shut_pending: bool,
    /// A receive could not be posted (no buffer, full queue): post it on the next turn.
    recv_deferred: bool,
    /// The connection is in `tls_deferred` (its ClientHello waits for a turn's budget).
    tls_queued: bool,
    /// The client's address, when the access log or the proxy needs it.
    peer: std::net::SocketAddr,
}

impl Session for KernelConn {
    fn http(&self) -> &HttpConn {
        self.stream.http()
    }
    fn http_mut(&mut self) -> &mut HttpConn {
        self.stream.http_mut()
    }
}

impl KernelConn {
    /// Nothing more will be read or written; the slot is released once no operation of it is
    /// in flight.
    fn closing(&self) -> bool {
        self.stream.is_ended()
    }
}

/// The io_uring kernel path. See the module documentation.
pub struct KernelPath {
    ring: Ring,
    /// The live connections: HTTP state, answers in up to two generations across a reload,
    /// per-port tally, deadline sweep. Slot indices come from `free` or grow by one.
    sessions: HttpSessions<KernelConn>,
    /// A connection's release made a pending reload ready: applied at the end of the turn.
    reload_ready: bool,
    config: KernelConfig,
    bufs: Option<BufRing>,
    /// The kernel takes a shutdown linked behind a send (see `Ring::links_shutdown`); else
    /// the write side is shut by a system call once the last send has completed.
    link_shutdown: bool,
    listeners: Vec<Listener>,
    free: Vec<u32>,
    deferred: Vec<(u32, u32)>,
    /// The other half of `deferred`'s double buffer (no allocation while retrying).
    deferred_spare: Vec<(u32, u32)>,
    /// TLS counters and the turn's handshake budget.
    tls: TlsThread,
    /// Connections (slot, generation) whose ClientHello waits for a turn's budget, oldest
    /// first (each once: `KernelConn::tls_queued`).
    tls_deferred: std::collections::VecDeque<(u32, u32)>,
    /// Shutdown deadline once `begin_shutdown` was called.
    draining: Option<Instant>,
    /// Clock of `run`.
    clock: std::time::Instant,
    stats: KernelStats,
    /// The access log is on: accepted connections' peers are asked for (getpeername).
    access_log: bool,
    /// The upstream side, built when the first request is routed upstream.
    upstream: UpstreamSide,
    /// The wake-up poll on the upstream ring is in flight (see `kernel::proxy`).
    upstream_poll_armed: bool,
    /// Connections refused because the table is full: an operator's warning, rate-limited.
    table_full_log: RateLimiter,
}

impl KernelPath {
    /// Creates the ring and, unless configured otherwise or refused by the kernel, the ring of
    /// provided receive buffers. No listener yet: see [`KernelPath::listen`].
    /// Fails on a configuration out of range (`InvalidInput`) or when io_uring is unavailable;
    /// a kernel that refuses buffer rings only changes [`KernelPath::recv_mode`].
    pub fn new(config: KernelConfig, app: App) -> io::Result<Self> {
        let valid = config.max_connections > 0
            && config.max_connections <= u32::MAX as usize
            && config.recv_buffers.is_power_of_two()
            && config.recv_buffers <= 32768
            && config.recv_buffer_len > 0
            && config.recv_buffer_len <= 1 << 30
            && config.output_buffer_len >= 64
            && config.output_buffer_len <= 1 << 30;
        if !valid {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "kernel path: max_connections, recv_buffers (a power of two up to 32768), \
                 recv_buffer_len or output_buffer_len out of range",
            ));
        }
        let ring = Ring::new(config.ring_entries)?;
        let bufs = if config.per_connection_recv {
            None
        } else {
            BufRing::register(
                ring.io_uring(),
                0,
                config.recv_buffers,
                config.recv_buffer_len,
            )
            .ok()
        };
        let max = config.max_connections;
        let clock = std::time::Instant::now();
        Ok(KernelPath {
            link_shutdown: ring.links_shutdown(),
            ring,
            sessions: HttpSessions::new(app, config.http, Instant::ZERO, max),
            reload_ready: false,
            bufs,
            listeners: Vec::new(),
            free: Vec::new(),
            deferred: Vec::with_capacity(max.min(1 << 16)),
            deferred_spare: Vec::with_capacity(max.min(1 << 16)),
            tls: TlsThread::new(config.tls_handshakes_per_round),
            tls_deferred: std::collections::VecDeque::new(),
            draining: None,
            clock,
            stats: KernelStats::default(),
            access_log: false,
            upstream: UpstreamSide::new(None),
            upstream_poll_armed: false,
            table_full_log: RateLimiter::new(1, crate::logging::WARNING_PERIOD),
            config,
        })
    }

    /// [`KernelPath::new`] and a [`KernelPath::listen`] on each address. For a gateway whose
    /// sock_ops program must see the listeners, call this only after attaching it.
    pub fn bind(
        config: KernelConfig,
        app: App,
        addrs: &[SocketAddr],
        backlog: u32,
    ) -> io::Result<(Self, Vec<SocketAddr>)> {
        let mut this = KernelPath::new(config, app)?;
        let bound = addrs
            .iter()
            .map(|&a| this.listen(a, backlog))
            .collect::<io::Result<Vec<_>>>()?;
        Ok((this, bound))
    }

    /// Binds a listening socket (SO_REUSEADDR, non-blocking, close-on-exec) with the given
    /// backlog, and starts accepting on it. Returns the bound address (port 0 picks one). The
    /// address's family decides which clients it serves (`socket::tcp_listener`: `::` both).
    pub fn listen(&mut self, addr: impl Into<SocketAddr>, backlog: u32) -> io::Result<SocketAddr> {
        let listener = socket::tcp_listener(addr, backlog)?;
        listener.set_nonblocking(true)?;
        self.add_listener(OwnedFd::from(listener))
    }

    /// Starts accepting on a socket the caller has bound and put in the listening state.
    pub fn add_listener(&mut self, fd: OwnedFd) -> io::Result<SocketAddr> {
        let addr = std::net::TcpListener::from(fd.try_clone()?).local_addr()?;
        if let Some(cc) = self.config.congestion {
            if let Err(e) = socket::set_congestion(fd.as_raw_fd(), cc) {
                // Serving matters more than the algorithm: the host's default stays.
                tracing::warn!(
                    port = addr.port(),
                    congestion = cc,
                    error = %e,
                    "the kernel path keeps the host's congestion control on this port \
                     (TCP_CONGESTION refused; is the tcp_{cc} module available?)"
                );
            }
        }
        let tally = self.sessions.tally_slot(addr.port());
        self.listeners.push(Listener {
            fd: Some(fd),
            addr,
            armed: false,
            tally,
        });
        self.arm_accepts();
        self.submit();
        Ok(addr)
    }

    /// Addresses of the listeners still open.
    pub fn local_addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.listeners
            .iter()
            .filter(|l| l.fd.is_some())
            .map(|l| l.addr)
    }

    pub fn recv_mode(&self) -> RecvMode {
        if self.bufs.is_some() {
            RecvMode::BufferRing
        } else {
            RecvMode::PerConnection
        }
    }

    pub fn stats(&self) -> &KernelStats {
        &self.stats
    }

    /// The TLS ports' handshakes and failures on the kernel path.
    pub fn tls_stats(&self) -> TlsStats {
        self.tls.stats
    }

    /// Live connections.
    pub fn connection_count(&self) -> usize {
        self.sessions.len()
    }

    /// Requests accepted so far (a running total, cheap to read).
    pub fn requests(&self) -> u64 {
        self.sessions.requests()
    }

    /// Connections and requests by listening port.
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

    /// Reloads the routes and HTTP limits without dropping a connection, as
    /// [`Engine::reload`](crate::engine::Engine::reload) does on the bypass path.
    pub fn reload(&mut self, next: Served) {
        if self.sessions.reload(next) {
            self.apply_reload();
        }
    }

    /// Reloads applied so far.
    pub fn reloads_applied(&self) -> u64 {
        self.sessions.reloads_applied()
    }

    /// Turns the access log on for connections accepted from now on (records collect in a
    /// sink of `capacity`, emptied by the owner through [`access_sink`](Self::access_sink)).
    pub fn enable_access_log(&mut self, capacity: usize) {
        self.sessions.enable_access_log(PathKind::Kernel, capacity);
        self.access_log = true;
    }

    /// The access-log records of this path's connections since the owner last emptied it.
    pub fn access_sink(&mut self) -> Option<&mut AccessSink> {
        self.sessions.access_sink()
    }

    fn apply_reload(&mut self) {
        self.reload_ready = false;
        self.sessions.apply_reload(|_| {});
    }

    /// When `poll` next has timed work (on the caller's clock): the HTTP deadline sweep while
    /// connections are open or a shutdown is draining, `Instant::ZERO` (due now) while a
    /// receive waits to be re-posted. `None`: only completions can bring work, and the ring's
    /// descriptor ([`AsRawFd`]) turns readable for them.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.deferred.is_empty() || !self.tls_deferred.is_empty() {
            return Some(Instant::ZERO);
        }
        (!self.sessions.is_empty() || self.draining.is_some()).then_some(self.sessions.next_sweep())
    }

    /// One non-blocking turn, for a caller with its own loop (the AF_XDP poller): reaps
    /// completions, runs due deadlines, submits. `now` is the caller's monotonic clock,
    /// `unix_secs` the wall clock for the `Date` header. Returns the completions handled.
    pub fn poll(&mut self, now: Instant, unix_secs: u64) -> usize {
        self.sessions.set_date(unix_secs);
        let n = self.turn(now);
        self.submit();
        n
    }

    /// Serves until `stop` is set, sleeping in the kernel when there is nothing to do (at most
    /// [`SWEEP_PERIOD`] at a time, so deadlines fire and `stop` is seen when idle too). Uses its
    /// own clock; do not mix with [`KernelPath::poll`].
    pub fn run(&mut self, stop: &AtomicBool) -> io::Result<()> {
        while !stop.load(Ordering::Relaxed) {
            self.run_once()?;
        }
        Ok(())
    }

    /// Stops accepting (listeners closed) and closes connections once their responses are
    /// sent; connections still busy at `now + grace` are cut. Keep driving (`poll` or
    /// `run_once`) until [`KernelPath::is_shut_down`].
    pub fn begin_shutdown(&mut self, now: Instant, grace: Duration) {
        if self.draining.is_some() {
            return;
        }
        self.draining = Some(now + grace);
        for i in 0..self.listeners.len() {
            if self.listeners[i].armed {
                let ud = user_data(Op::Accept, i as u32, 0);
                self.push_cancel(ud);
            }
            // The socket closes once the cancelled accept lets go of it.
            self.listeners[i].fd = None;
        }
        // The answer in progress (or the next) of every connection says `Connection: close`.
        self.sessions.begin_drain();
        for pos in (0..self.sessions.len()).rev() {
            let Some(&i) = self.sessions.live().get(pos) else {
                continue;
            };
            self.pump(i as usize, now);
        }
        self.submit();
    }

    /// True once shutdown has closed every connection and no operation is in flight.
    pub fn is_shut_down(&self) -> bool {
        self.draining.is_some() && self.sessions.is_empty() && self.ring.inflight() == 0
    }

    /// Blocking graceful shutdown on `run`'s clock: [`KernelPath::begin_shutdown`], then serve
    /// until every connection is closed or `grace` has passed (then cut the rest).
    pub fn shutdown(&mut self, grace: Duration) -> io::Result<()> {
        let now = self.now();
        self.begin_shutdown(now, grace);
        // After the deadline cuts everything, cancelled operations complete promptly.
        let give_up = now + grace + Duration::from_secs(5);
        while !self.is_shut_down() {
            if self.now() >= give_up {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.run_once()?;
        }
        Ok(())
    }

    /// One blocking turn of [`KernelPath::run`].
    pub fn run_once(&mut self) -> io::Result<()> {
        let now = self.now();
        self.sessions.set_date(unix_now());
        self.turn(now);
        if !self.tls_deferred.is_empty() {
            // Handshakes wait for the next turn's budget: no sleep.
            self.submit();
            return Ok(());
        }
        let wait = self
            .sessions
            .next_sweep()
            .saturating_duration_since(now)
            .clamp(Duration::from_millis(1), SWEEP_PERIOD);
        self.submit_and_wait(wait)
    }

    /// `run`'s clock: what this path's connections' instants are measured on.
    pub fn now(&self) -> Instant {
        Instant::from_micros(u64::try_from(self.clock.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    fn submit_and_wait(&mut self, wait: Duration) -> io::Result<()> {
        self.flush_upstream();
        self.ring.submit_and_wait(wait)
    }

    /// Reaps and handles every completion, then runs due deadlines and deferred work.
    fn turn(&mut self, now: Instant) -> usize {
        let mut handled = 0;
        self.retry_tls_deferred(now);
        let mut batch = [(0u64, 0i32, 0u32); REAP_BATCH];
        loop {
            let n = self.ring.reap(&mut batch);
            for &(ud, res, flags) in &batch[..n] {
                self.complete(now, ud, res, flags);
            }
            handled += n;
            if n < REAP_BATCH {
                break;
            }
        }
        self.turn_upstream(now);
        if self.sessions.sweep_due(now) {
            self.sweep(now);
            self.sweep_upstream(now);
        }
        self.retry_deferred();
        if self.reload_ready {
            self.apply_reload();
        }
        if self.draining.is_none() {
            self.arm_accepts();
        }
        handled
    }

    /// One completion (the ring has already counted the operation it ends).
    fn complete(&mut self, now: Instant, ud: u64, res: i32, flags: u32) {
        let (op, index, gen) = split_user_data(ud);
        match op {
            Some(Op::Accept) => self.on_accept(now, index as usize, res, flags),
            Some(Op::Recv) => self.on_recv(now, index as usize, gen, res, flags),
            Some(Op::Send) => self.on_send(now, index as usize, gen, res),
            Some(Op::Shutdown) => self.on_shutdown(now, index as usize, gen, res),
            Some(Op::Close) => {
                if res < 0 {
                    self.stats.errors.close += 1;
                }
            }
            Some(Op::UpstreamPoll) => self.on_upstream_poll(flags),
            Some(Op::Timer) | Some(Op::Cancel) | None => {}
        }
    }

    fn arm_accepts(&mut self) {
        for i in 0..self.listeners.len() {
            let l = &self.listeners[i];
            let Some(fd) = l.fd.as_ref().map(|fd| fd.as_raw_fd()) else {
                continue;
            };
            if l.armed {
                continue;
            }
            let entry = opcode::AcceptMulti::new(types::Fd(fd))
                .flags(libc::SOCK_CLOEXEC)
                .build()
                .user_data(user_data(Op::Accept, i as u32, 0));
            if self.push(&entry) {
                self.listeners[i].armed = true;
            }
        }
    }

    fn on_accept(&mut self, now: Instant, listener: usize, res: i32, flags: u32) {
        if !cqueue::more(flags) {
            // Re-armed on the next turn, unless shutting down.
            if let Some(l) = self.listeners.get_mut(listener) {
                l.armed = false;
            }
        }
        if res < 0 {
            if res != -libc::ECANCELED {
                self.stats.errors.accept += 1;
            }
            return;
        }
        let fd: RawFd = res;
        if self.draining.is_some() || self.sessions.len() >= self.config.max_connections {
            self.stats.refused += 1;
            socket::close_raw(fd);
            if self.draining.is_none() {
                if let Some(suppressed) = self.table_full_log.allow(now) {
                    tracing::warn!(
                        port = self.listeners[listener].addr.port(),
                        limit = self.config.max_connections,
                        refused_since_last = suppressed,
                        "kernel path: connection refused, the connection table is full \
                         (kernel_path.max_connections)"
                    );
                }
            }
            return;
        }
        socket::set_nodelay(fd);
        let recv_len = self.config.recv_buffer_len;
        let in_cap = StreamConn::input_capacity(&self.sessions.limits(), recv_len);
        let index = match self.free.pop() {
            Some(i) => i as usize,
            None => self.sessions.slot_count(),
        };
        let stream = StreamConfig {
            recv_len,
            output_len: self.config.output_buffer_len,
            linger: self.config.linger,
        };
        let tally = self.listeners[listener].tally;
        // Grows once per slot, up to `max_connections`; reused afterwards.
        let c = self.sessions.open(index, now, tally, |limits| KernelConn {
            stream: StreamConn::new(limits, stream),
            fd: -1,
            gen: 0,
            recv_pending: false,
            send_pending: false,
            shut_pending: false,
            recv_deferred: false,
            tls_queued: false,
            peer: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
        });
        c.fd = fd;
        c.gen = c.gen.wrapping_add(1) & GEN_MASK;
        c.stream.open(in_cap);
        c.tls_queued = false;
        let port = self.listeners[listener].addr.port();
        if let Some(settings) = self.sessions.app().tls_for(port).cloned() {
            if let Some(c) = self.sessions.get_mut(index) {
                c.stream.open_tls(settings, now);
            }
        }
        let Some(c) = self.sessions.get_mut(index) else {
            return;
        };
        c.recv_pending = false;
        c.send_pending = false;
        c.shut_pending = false;
        c.recv_deferred = false;
        let proxied = self.sessions.app().proxy().is_some();
        if self.access_log || proxied {
            let peer = KernelPath::client_addr(fd);
            if let Some(c) = self.sessions.get_mut(index) {
                c.peer = peer;
            }
            if self.access_log {
                self.sessions.set_access_client(index, peer);
            }
        }
        self.stats.accepted += 1;
        self.arm_recv(index);
    }

    /// Posts a receive if none is in flight and the stream wants one (it has room in its
    /// input buffer for a whole receive).
    fn arm_recv(&mut self, index: usize) {
        let Some(c) = self.sessions.get_mut(index) else {
            return;
        };
        if c.recv_pending || c.recv_deferred || !c.stream.wants_recv() {
            return; // input is held back; re-armed once `process` consumes it
        }
        let ud = user_data(Op::Recv, index as u32, c.gen);
        let entry = match &self.bufs {
            Some(bufs) => opcode::Recv::new(types::Fd(c.fd), std::ptr::null_mut(), 0)
                .buf_group(bufs.bgid())
                .build()
                .flags(squeue::Flags::BUFFER_SELECT)
                .user_data(ud),
            None => {
                let room = c.stream.recv_buffer();
                // SAFETY: the kernel writes into `room`, the free end of this slot's boxed
                // input buffer. The box is replaced only by `StreamConn::open`, when the slot
                // is reused, which waits until none of its operations is in flight; the
                // stream never writes at or after `room` until `handle_recv_in_place`; the
                // slots live as long as the `KernelPath`, and `Drop` waits for in-flight
                // receives or leaks them.
                opcode::Recv::new(types::Fd(c.fd), room.as_mut_ptr(), room.len() as u32)
                    .build()
                    .user_data(ud)
            }
        };
        if self.ring.push(&entry) {
            c.recv_pending = true;
        } else {
            self.stats.errors.submit += 1;
            self.defer_recv(index);
        }
    }

    fn defer_recv(&mut self, index: usize) {
        let Some(c) = self.sessions.get_mut(index) else {
            return;
        };
        if !c.recv_deferred {
            c.recv_deferred = true;
            self.deferred.push((index as u32, c.gen));
        }
    }

    /// A new turn: the TLS handshake budget is whole again, and the connections whose
    /// ClientHello waited for it take it first, oldest first, as many as it allows (the
    /// turn's work stays bounded however long the queue is).
    fn retry_tls_deferred(&mut self, now: Instant) {
        self.tls.begin_round();
        // At most the queue's length at entry: a connection deferred again goes to the back
        // and waits for the next turn.
        for _ in 0..self.tls_deferred.len() {
            if !self.tls.has_budget() {
                break;
            }
            let Some((index, gen)) = self.tls_deferred.pop_front() else {
                break;
            };
            let Some(c) = self.sessions.get_mut(index as usize) else {
                continue;
            };
            if c.gen == gen && c.tls_queued {
                c.tls_queued = false;
                self.pump(index as usize, now);
            }
        }
    }

    fn retry_deferred(&mut self) {
        if self.deferred.is_empty() {
            return;
        }
        std::mem::swap(&mut self.deferred, &mut self.deferred_spare);
        for k in 0..self.deferred_spare.len() {
            let (index, gen) = self.deferred_spare[k];
            let Some(c) = self.sessions.get_mut(index as usize) else {
                continue;
            };
            if c.gen == gen && c.recv_deferred {
                c.recv_deferred = false;
                self.arm_recv(index as usize);
            }
        }
        self.deferred_spare.clear();
    }

    fn on_recv(&mut self, now: Instant, index: usize, gen: u32, res: i32, flags: u32) {
        let bid = cqueue::buffer_select(flags);
        let Some((c, app, log)) = self
            .sessions
            .with_app_log(index)
            .filter(|(c, _, _)| c.gen == gen && c.recv_pending)
        else {
            // Cannot happen while slots wait for their operations; never touch the slot.
            if let (Some(bid), Some(bufs)) = (bid, self.bufs.as_mut()) {
                bufs.recycle(bid);
            }
            return;
        };
        c.recv_pending = false;
        if res <= 0 {
            if let (Some(bid), Some(bufs)) = (bid, self.bufs.as_mut()) {
                bufs.recycle(bid);
            }
            match -res {
                0 => c.stream.handle_eof(),
                libc::ECANCELED => {}
                libc::ENOBUFS => {
                    self.stats.errors.no_buffers += 1;
                    if !c.closing() {
                        self.defer_recv(index);
                        return;
                    }
                }
                libc::EAGAIN | libc::EINTR => {}
                libc::ECONNRESET | libc::EPIPE | libc::ETIMEDOUT => {
                    self.stats.errors.reset += 1;
                    self.close_conn(index, true);
                    return;
                }
                _ => {
                    self.stats.errors.recv += 1;
                    self.close_conn(index, true);
                    return;
                }
            }
            self.pump(index, now);
            return;
        }
        let n = res as usize;
        self.stats.bytes_in += n as u64;
        match (bid, self.bufs.as_mut()) {
            (Some(bid), Some(bufs)) => {
                // Dropped by the stream unless open (lingering reads only to see the FIN).
                c.stream.handle_recv_logged(now, app, bufs.get(bid, n), log);
                bufs.recycle(bid);
                self.sessions.tally_requests(index);
            }
            (None, None) => c.stream.handle_recv_in_place(n),
            // A buffer-select receive without a buffer, or the reverse: nothing to read.
            (Some(_), None) | (None, Some(_)) => self.stats.errors.recv += 1,
        }
        self.pump(index, now);
    }

    fn on_send(&mut self, now: Instant, index: usize, gen: u32, res: i32) {
        let Some(c) = self
            .sessions
            .get_mut(index)
            .filter(|c| c.gen == gen && c.send_pending)
        else {
            return;
        };
        c.send_pending = false;
        if res <= 0 {
            match -res {
                libc::ECANCELED => {}
                libc::ECONNRESET | libc::EPIPE | libc::ETIMEDOUT => self.stats.errors.reset += 1,
                _ => self.stats.errors.send += 1,
            }
            self.close_conn(index, true);
            return;
        }
        let n = c.stream.handle_sent(res as usize);
        self.stats.bytes_out += n as u64;
        self.pump(index, now);
    }

    /// The write-side shutdown linked behind the last send completed: done (linger once the
    /// send is reported, if it is not yet), cancelled because the send was short or failed
    /// (its completion says which: the rest goes the same way, or the connection is cut), or
    /// failed.
    fn on_shutdown(&mut self, now: Instant, index: usize, gen: u32, res: i32) {
        let Some(c) = self
            .sessions
            .get_mut(index)
            .filter(|c| c.gen == gen && c.shut_pending)
        else {
            return;
        };
        c.shut_pending = false;
        match -res {
            0 => c.stream.handle_write_shut(now),
            libc::ECANCELED => {}
            libc::ENOTCONN | libc::ECONNRESET | libc::EPIPE => {
                self.stats.errors.reset += 1;
                self.close_conn(index, true);
                return;
            }
            _ => {
                self.stats.errors.send += 1;
                self.close_conn(index, true);
                return;
            }
        }
        self.pump(index, now);
    }

    /// Moves the connection forward as far as it can go without waiting: lets its stream run
    /// HTTP (settling the connection's generation after each run), acts on the stream's end
    /// (shut the write side, close, cut), sends pending output, posts a receive.
    fn pump(&mut self, index: usize, now: Instant) {
        let draining = self.draining.is_some();
        if self.sessions.app().proxy().is_some() {
            let _ = self.upstream.get();
        }
        loop {
            let Some((c, app, mut log)) = self.sessions.with_app_log(index) else {
                return;
            };
            if c.closing() {
                self.release_if_idle(index);
                return;
            }
            let advance = match self.upstream.built() {
                Some(forwarder) if app.proxy().is_some() || forwarder.is_forwarding(index) => {
                    let peer = c.peer;
                    let tls = &mut self.tls;
                    c.stream
                        .advance_with(now, draining, tls, |http, input, output| {
                            let log = log.as_mut().map(|io| io.reborrow());
                            forwarder.process(index, now, app, http, peer, input, output, log)
                        })
                }
                // No upstream side: a request routed upstream is answered 502 (`Direct`).
                _ => {
                    let peer = c.peer;
                    let tls = &mut self.tls;
                    c.stream
                        .advance_with(now, draining, tls, |http, input, output| {
                            let log = log.as_mut().map(|io| io.reborrow());
                            Direct.process(index, now, app, http, peer, input, output, log)
                        })
                }
            };
            if advance != Advance::Waiting {
                self.reload_ready |= self.sessions.settle(index);
            }
            if advance != Advance::Again {
                break;
            }
        }
        let Some(c) = self.sessions.get_mut(index) else {
            return;
        };
        if c.stream.is_tls_deferred() && !c.tls_queued {
            c.tls_queued = true;
            self.tls_deferred.push_back((index as u32, c.gen));
        }
        match c.stream.state() {
            Lifecycle::Open | Lifecycle::Lingering { .. } => {}
            // The FIN is already queued behind the last send: linger once it is done.
            Lifecycle::Finishing if c.shut_pending => {}
            Lifecycle::Finishing => {
                // Everything has been sent and the peer has not closed: queue our FIN and
                // linger, reading, until the peer's FIN.
                if socket::shutdown(c.fd, libc::SHUT_WR).is_err() {
                    self.close_conn(index, true);
                    return;
                }
                c.stream.handle_write_shut(now);
            }
            Lifecycle::Closed => {
                self.close_conn(index, false);
                return;
            }
            Lifecycle::Aborted(reason) => {
                if reason == AbortReason::InputOverflow {
                    self.stats.errors.input_overflow += 1;
                }
                self.close_conn(index, true);
                return;
            }
        }
        // Nothing is sent while a linked shutdown is in flight: it is either done (nothing
        // more to send) or about to be cancelled by a short send, whose rest goes after it.
        if !c.send_pending && !c.shut_pending {
            if let Some(pending) = c.stream.poll_transmit(now) {
                let (ptr, len) = (pending.as_ptr(), pending.len() as u32);
                // The last bytes of a closing connection take the FIN linked behind them.
                // MSG_WAITALL: a short send fails the link, so the shutdown never goes before
                // all the bytes. MSG_MORE holds the last segment back for the shutdown, which
                // sends it with the FIN set: the client sees the end of the answer and our FIN
                // at once (without it, the FIN a few microseconds later still lost the race to
                // a client on another core). The linked shutdown runs as soon as the send
                // completes, so the segment is held that long only; a broken link re-sends the
                // rest the same way, or ends in a close, which pushes it too.
                let last = self.link_shutdown && c.stream.sending_last();
                let msg_flags = if last {
                    libc::MSG_NOSIGNAL | libc::MSG_WAITALL | libc::MSG_MORE
                } else {
                    libc::MSG_NOSIGNAL
                };
                // SAFETY: the kernel reads `ptr..ptr + len` (`pending`), part of this slot's
                // boxed output buffer, which is allocated once per slot and never freed or
                // resized while the `KernelPath` lives. Until `handle_sent`, the stream neither
                // writes the output buffer nor moves the bytes handed out, and the slot is not
                // reused; `Drop` waits for in-flight sends or leaks the slots.
                let send = opcode::Send::new(types::Fd(c.fd), ptr, len)
                    .flags(msg_flags)
                    .build()
                    .user_data(user_data(Op::Send, index as u32, c.gen));
                let pushed = if last {
                    // The write side only: lingering reads on until the peer's FIN.
                    let shut = opcode::Shutdown::new(types::Fd(c.fd), libc::SHUT_WR)
                        .build()
                        .user_data(user_data(Op::Shutdown, index as u32, c.gen));
                    let pushed = self
                        .ring
                        .push_chain(&[send.flags(squeue::Flags::IO_LINK), shut]);
                    c.shut_pending = pushed;
                    pushed
                } else {
                    self.ring.push(&send)
                };
                if pushed {
                    c.send_pending = true;
                } else {
                    self.stats.errors.submit += 1;
                    self.close_conn(index, true);
                    return;
                }
            }
        }
        self.arm_recv(index);
    }

    /// Stops the connection: cancels its receive (and, when `abort`, its send); the slot and
    /// the socket are released once both have completed.
    fn close_conn(&mut self, index: usize, abort: bool) {
        let Some(c) = self.sessions.get_mut(index) else {
            return;
        };
        c.stream.abort(AbortReason::Transport); // a no-op if the stream ended by itself
        let gen = c.gen;
        let (recv, send) = (c.recv_pending, c.send_pending && abort);
        if recv {
            self.push_cancel(user_data(Op::Recv, index as u32, gen));
        }
        if send {
            self.push_cancel(user_data(Op::Send, index as u32, gen));
        }
        self.release_if_idle(index);
    }

    fn release_if_idle(&mut self, index: usize) {
        let Some(c) = self.sessions.get_mut(index) else {
            return;
        };
        // A linked shutdown names the descriptor too: it must not be closed (and its number
        // reused) under it.
        if !c.closing() || c.recv_pending || c.send_pending || c.shut_pending {
            return;
        }
        c.recv_deferred = false;
        c.stream.finish_tls(&mut self.tls);
        let fd = c.fd;
        c.fd = -1;
        let now = self.now();
        self.upstream.close(index, now);
        self.reload_ready |= self.sessions.close(index, now);
        self.stats.http_closed = *self.sessions.http_closed();
        self.stats.closed += 1;
        self.free.push(index as u32);
        let entry = opcode::Close::new(types::Fd(fd))
            .build()
            .user_data(user_data(Op::Close, index as u32, 0));
        if !self.push(&entry) {
            socket::close_raw(fd);
        }
    }

    fn push_cancel(&mut self, target: u64) {
        let entry = opcode::AsyncCancel::new(target)
            .build()
            .user_data(user_data(Op::Cancel, 0, 0));
        if !self.push(&entry) {
            // Without the cancel, a receive could wait forever: wake it through the socket.
            let (op, index, _) = split_user_data(target);
            let fd = match op {
                Some(Op::Accept) => self.listeners[index as usize]
                    .fd
                    .as_ref()
                    .map_or(-1, |fd| fd.as_raw_fd()),
                _ => self.sessions.get(index as usize).map_or(-1, |c| c.fd),
            };
            if fd >= 0 {
                let _ = socket::shutdown(fd, libc::SHUT_RDWR);
            }
        }
    }

    fn push(&mut self, entry: &squeue::Entry) -> bool {
        let pushed = self.ring.push(entry);
        if !pushed {
            self.stats.errors.submit += 1;
        }
        pushed
    }

    /// Submits what is queued (without a system call when there is nothing to do).
    fn submit(&mut self) {
        self.flush_upstream();
        if self.ring.submit().is_err() {
            self.stats.errors.submit += 1;
        }
    }

    /// Header/idle deadlines, peers that stopped reading, and the shutdown deadline.
    fn sweep(&mut self, now: Instant) {
        let cut = self.draining.is_some_and(|deadline| now >= deadline);
        let send_limit = self.sessions.limits().idle_timeout;
        // Backwards: closing a connection moves the last live one into its place.
        for pos in (0..self.sessions.len()).rev() {
            let Some(&index) = self.sessions.live().get(pos) else {
                continue;
            };
            let index = index as usize;
            let Some(c) = self.sessions.get_mut(index) else {
                continue;
            };
            if c.closing() {
                continue;
            }
            if cut {
                self.stats.errors.shutdown_cut += 1;
                self.close_conn(index, true);
                continue;
            }
            let http_due = c.stream.handle_timeout(now, send_limit, &mut self.tls);
            match c.stream.state() {
                // The linger deadline passed.
                Lifecycle::Closed => self.close_conn(index, false),
                Lifecycle::Aborted(AbortReason::SendTimeout) => {
                    self.stats.errors.send_timeout += 1;
                    self.close_conn(index, true);
                }
                _ if http_due => self.pump(index, now),
                _ => {}
            }
        }
    }
}

impl AsRawFd for KernelPath {
    /// The io_uring's descriptor: readable when completions are waiting (for a poller that
    /// sleeps in poll/epoll).
    fn as_raw_fd(&self) -> RawFd {
        self.ring.io_uring().as_raw_fd()
    }
}

impl Drop for KernelPath {
    fn drop(&mut self) {
        // Nothing the kernel may still write or read can be freed: cancel everything, wait
        // (bounded) for the completions, and leak the buffers if some never come.
        for l in &mut self.listeners {
            l.fd = None;
        }
        for &i in self.sessions.live() {
            if let Some(c) = self.sessions.get(i as usize) {
                if c.fd >= 0 {
                    // Wakes any receive still waiting.
                    let _ = socket::shutdown(c.fd, libc::SHUT_RDWR);
                }
            }
        }
        let stuck = self
            .ring
            .cancel_all_and_wait(std::time::Duration::from_secs(2));
        for &i in self.sessions.live() {
            if let Some(c) = self.sessions.get(i as usize) {
                if c.fd >= 0 {
                    socket::close_raw(c.fd);
                }
            }
        }
        if stuck > 0 {
            // The kernel may still touch these: leak rather than free under it.
            std::mem::forget(self.sessions.take_sessions());
            std::mem::forget(self.bufs.take());
        } else if let Some(bufs) = &self.bufs {
            let _ = bufs.unregister(self.ring.io_uring());
        }
    }
}

/// The kernel path runs on a thread of its own (or the poller's): it must move there.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<KernelPath>();
};

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proxy_tests;

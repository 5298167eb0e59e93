//! The kernel path: the ports' listening sockets driven by io_uring, answered by the same
//! sans-IO `http` and `app` code as the bypass path.
//!
//! [`KernelPath`] owns one `IoUring`, the listening sockets (one per port, added with
//! [`KernelPath::listen`] *after* the BPF sock_ops program is attached, so that it sees them),
//! and a bounded slab of connections. Each listener has one multishot accept in flight. Each
//! connection has at most one receive and one send in flight:
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
//! A connection ends in one of three ways. When `HttpConn` is done and everything is sent,
//! the socket's write side is shut (our FIN goes after the queued bytes) and the connection
//! *lingers*, reading and dropping input until the peer's FIN or [`KernelConfig::linger`]:
//! closing with unread input would make the kernel reset the connection and drop the end of
//! the response still in the send buffer. When the peer resets, an operation fails, the peer
//! stops reading for the idle timeout, or a shutdown deadline passes, the connection is cut.
//! Either way its operations are cancelled and the socket is closed once they have completed.
//!
//! Completions are matched to connections by `user_data` = operation, slot index and the
//! slot's generation, and a slot is reused only once none of its operations is in flight, so
//! a late completion never touches the next connection in the slot.
//!
//! Two ways to drive it: [`KernelPath::poll`] submits and reaps without blocking (from the
//! AF_XDP poller's loop), [`KernelPath::run`] blocks in `io_uring_enter` with a timeout (on its
//! own thread). Use one or the other for a given `KernelPath`: `poll` takes the caller's
//! clock, `run` reads its own. HTTP header and idle deadlines are checked by a sweep every
//! [`SWEEP_PERIOD`], as the bypass engine does.

mod bufring;

use std::io;
use std::net::{SocketAddrV4, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use crate::app::App;
use crate::http::{HttpConn, HttpLimits, HttpStats};
use crate::reload::{Answers, Generation, Served};
use crate::tally::{PortCount, PortTally, TallySlot};
use crate::time::{Duration, Instant};
use bufring::BufRing;

/// How often HTTP deadlines are checked, and the longest `run` sleeps in the kernel.
pub const SWEEP_PERIOD: Duration = Duration::from_millis(250);

/// Completions taken off the ring per batch (a stack array, no allocation).
const REAP_BATCH: usize = 128;

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

/// What an in-flight operation is, in the top byte of its `user_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Accept = 1,
    Recv = 2,
    Send = 3,
    Cancel = 4,
    Close = 5,
    Timer = 6,
}

impl Op {
    fn from_u8(v: u8) -> Option<Op> {
        Some(match v {
            1 => Op::Accept,
            2 => Op::Recv,
            3 => Op::Send,
            4 => Op::Cancel,
            5 => Op::Close,
            6 => Op::Timer,
            _ => return None,
        })
    }
}

const GEN_MASK: u32 = 0x00FF_FFFF;

/// `user_data`: operation (8 bits), slot generation (24 bits), slot index (32 bits).
fn user_data(op: Op, index: u32, gen: u32) -> u64 {
    (op as u64) << 56 | u64::from(gen & GEN_MASK) << 32 | u64::from(index)
}

fn split_user_data(ud: u64) -> (Option<Op>, u32, u32) {
    (
        Op::from_u8((ud >> 56) as u8),
        ud as u32,
        (ud >> 32) as u32 & GEN_MASK,
    )
}

struct Listener {
    fd: Option<OwnedFd>,
    addr: SocketAddrV4,
    /// The multishot accept is in flight.
    armed: bool,
    /// The port's place in `KernelPath::tally`.
    tally: TallySlot,
}

struct Conn {
    fd: RawFd,
    gen: u32,
    open: bool,
    /// Nothing more will be read or written; the slot is released once no operation of it
    /// is in flight.
    closing: bool,
    http: HttpConn,
    /// Unconsumed input, contiguous from index 0.
    input: Box<[u8]>,
    in_len: usize,
    /// Per-connection receive mode: where the receive in flight writes (`in_len` then; input
    /// consumed meanwhile moves `in_len` down, never into that region).
    recv_at: usize,
    /// Response bytes `out_pos..out_len` are still to be sent.
    output: Box<[u8]>,
    out_pos: usize,
    out_len: usize,
    recv_pending: bool,
    send_pending: bool,
    send_since: Instant,
    /// The peer sent FIN; `eof_told` once `HttpConn::peer_closed` has been called.
    eof: bool,
    eof_told: bool,
    /// A receive could not be posted (no buffer, full queue): post it on the next turn.
    recv_deferred: bool,
    /// All output sent and our FIN queued (`shutdown(SHUT_WR)`): input is read and dropped
    /// until the peer's FIN or this deadline, then the socket is closed.
    linger_until: Option<Instant>,
    live_pos: usize,
    /// The connection's port in `KernelPath::tally`.
    tally: TallySlot,
    /// `http.stats().requests` already added to the tally.
    requests_tallied: u64,
    /// Which generation of `KernelPath::answers` the connection is answered with.
    generation: Generation,
}

/// The io_uring kernel path. See the module documentation.
pub struct KernelPath {
    ring: IoUring,
    /// The routes and HTTP limits, in up to two generations across a reload.
    answers: Answers,
    /// A connection's release made a pending reload ready: applied at the end of the turn.
    reload_ready: bool,
    config: KernelConfig,
    bufs: Option<BufRing>,
    listeners: Vec<Listener>,
    conns: Vec<Conn>,
    free: Vec<u32>,
    live: Vec<u32>,
    deferred: Vec<(u32, u32)>,
    /// The other half of `deferred`'s double buffer (no allocation while retrying).
    deferred_spare: Vec<(u32, u32)>,
    /// Operations submitted whose final completion has not arrived.
    inflight: usize,
    next_sweep: Instant,
    /// Shutdown deadline once `begin_shutdown` was called.
    draining: Option<Instant>,
    /// Clock of `run`.
    clock: std::time::Instant,
    /// For the timeout operation, when `submit_with_args` timeouts are unsupported.
    timer: Box<types::Timespec>,
    timer_armed: bool,
    stats: KernelStats,
    tally: PortTally,
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
        let entries = config.ring_entries.max(8).next_power_of_two();
        // Cooperative task running: completions are posted when this thread next enters the
        // kernel instead of interrupting it (a busy poller is not kicked for each one); the
        // TASKRUN flag tells `submit` when entering is needed. Older kernels refuse it.
        let ring = IoUring::builder()
            .setup_cqsize(entries.saturating_mul(4))
            .setup_coop_taskrun()
            .setup_taskrun_flag()
            .build(entries)
            .or_else(|_| {
                IoUring::builder()
                    .setup_cqsize(entries.saturating_mul(4))
                    .build(entries)
            })?;
        let bufs = if config.per_connection_recv {
            None
        } else {
            BufRing::register(&ring, 0, config.recv_buffers, config.recv_buffer_len).ok()
        };
        let max = config.max_connections;
        let clock = std::time::Instant::now();
        Ok(KernelPath {
            ring,
            answers: Answers::new(app, config.http),
            reload_ready: false,
            bufs,
            listeners: Vec::new(),
            conns: Vec::new(),
            free: Vec::new(),
            live: Vec::with_capacity(max.min(1 << 16)),
            deferred: Vec::with_capacity(max.min(1 << 16)),
            deferred_spare: Vec::with_capacity(max.min(1 << 16)),
            inflight: 0,
            next_sweep: Instant::ZERO,
            draining: None,
            clock,
            timer: Box::new(types::Timespec::new()),
            timer_armed: false,
            stats: KernelStats::default(),
            tally: PortTally::default(),
            config,
        })
    }

    /// [`KernelPath::new`] and a [`KernelPath::listen`] on each address. For a gateway whose
    /// sock_ops program must see the listeners, call this only after attaching it.
    pub fn bind(
        config: KernelConfig,
        app: App,
        addrs: &[SocketAddrV4],
        backlog: u32,
    ) -> io::Result<(Self, Vec<SocketAddrV4>)> {
        let mut this = KernelPath::new(config, app)?;
        let bound = addrs
            .iter()
            .map(|&a| this.listen(a, backlog))
            .collect::<io::Result<Vec<_>>>()?;
        Ok((this, bound))
    }

    /// Binds a listening socket (SO_REUSEADDR, non-blocking, close-on-exec) with the given
    /// backlog, and starts accepting on it. Returns the bound address (port 0 picks one).
    pub fn listen(&mut self, addr: SocketAddrV4, backlog: u32) -> io::Result<SocketAddrV4> {
        // std sets SO_REUSEADDR and listens with its own backlog; listen(2) again to set ours.
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
        // SAFETY: listen(2) on a socket this function owns; no memory is passed.
        if unsafe { libc::listen(listener.as_raw_fd(), backlog) } != 0 {
            return Err(io::Error::last_os_error());
        }
        self.add_listener(OwnedFd::from(listener))
    }

    /// Starts accepting on a socket the caller has bound and put in the listening state.
    pub fn add_listener(&mut self, fd: OwnedFd) -> io::Result<SocketAddrV4> {
        let addr = match std::net::TcpListener::from(fd.try_clone()?).local_addr()? {
            std::net::SocketAddr::V4(a) => a,
            std::net::SocketAddr::V6(_) => return Err(io::ErrorKind::Unsupported.into()),
        };
        let tally = self.tally.slot(addr.port());
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
    pub fn local_addrs(&self) -> impl Iterator<Item = SocketAddrV4> + '_ {
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

    /// Live connections.
    pub fn connection_count(&self) -> usize {
        self.live.len()
    }

    /// Requests accepted so far (a running total, cheap to read).
    pub fn requests(&self) -> u64 {
        self.tally.requests()
    }

    /// Connections and requests by listening port.
    pub fn port_counts(&self) -> &[PortCount] {
        self.tally.counts()
    }

    /// HTTP counters of closed connections plus those of the live ones (one pass over the
    /// live connections).
    pub fn http_stats(&self) -> HttpStats {
        let mut total = self.stats.http_closed;
        for &i in &self.live {
            total.add(self.conns[i as usize].http.stats());
        }
        total
    }

    /// The routes new requests are answered with.
    pub fn app(&self) -> &App {
        &self.answers.current().app
    }

    /// Reloads the routes and HTTP limits without dropping a connection, as
    /// [`Engine::reload`](crate::engine::Engine::reload) does on the bypass path.
    pub fn reload(&mut self, next: Served) {
        if self.answers.offer(next) {
            self.apply_reload();
        }
    }

    /// Reloads applied so far.
    pub fn reloads_applied(&self) -> u64 {
        self.answers.applied()
    }

    fn apply_reload(&mut self) {
        self.reload_ready = false;
        loop {
            self.answers.rotate();
            for &i in &self.live {
                let c = &mut self.conns[i as usize];
                self.answers.adopt(&mut c.generation, &mut c.http);
            }
            if !self.answers.settle() {
                break;
            }
        }
    }

    /// When `poll` next has timed work (on the caller's clock): the HTTP deadline sweep while
    /// connections are open or a shutdown is draining, `Instant::ZERO` (due now) while a
    /// receive waits to be re-posted. `None`: only completions can bring work, and the ring's
    /// descriptor ([`AsRawFd`]) turns readable for them.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.deferred.is_empty() {
            return Some(Instant::ZERO);
        }
        (!self.live.is_empty() || self.draining.is_some()).then_some(self.next_sweep)
    }

    /// One non-blocking turn, for a caller with its own loop (the AF_XDP poller): reaps
    /// completions, runs due deadlines, submits. `now` is the caller's monotonic clock,
    /// `unix_secs` the wall clock for the `Date` header. Returns the completions handled.
    pub fn poll(&mut self, now: Instant, unix_secs: u64) -> usize {
        self.answers.set_date(unix_secs);
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
        for pos in (0..self.live.len()).rev() {
            let i = self.live[pos] as usize;
            // The answer in progress (or the next) says `Connection: close`.
            self.conns[i].http.begin_drain();
            self.pump(i, now);
        }
        self.submit();
    }

    /// True once shutdown has closed every connection and no operation is in flight.
    pub fn is_shut_down(&self) -> bool {
        self.draining.is_some() && self.live.is_empty() && self.inflight == 0
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
        self.answers.set_date(unix_now());
        self.turn(now);
        let wait = self
            .next_sweep
            .saturating_duration_since(now)
            .clamp(Duration::from_millis(1), SWEEP_PERIOD);
        self.submit_and_wait(wait)
    }

    /// `run`'s clock.
    fn now(&self) -> Instant {
        Instant::from_micros(u64::try_from(self.clock.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    fn submit_and_wait(&mut self, wait: Duration) -> io::Result<()> {
        let result = if self.ring.params().is_feature_ext_arg() {
            let ts = types::Timespec::from(wait);
            let args = types::SubmitArgs::new().timespec(&ts);
            self.ring.submitter().submit_with_args(1, &args)
        } else {
            if !self.timer_armed {
                *self.timer = types::Timespec::from(wait);
                // SAFETY: the timespec is boxed in `self.timer` and not changed while the
                // timeout is armed (`timer_armed`); `Drop` waits for it or leaks the box.
                let entry = opcode::Timeout::new(&*self.timer as *const types::Timespec)
                    .build()
                    .user_data(user_data(Op::Timer, 0, 0));
                if self.push(&entry) {
                    self.timer_armed = true;
                }
            }
            self.ring.submit_and_wait(1)
        };
        match result {
            Ok(_) => Ok(()),
            Err(e) => match e.raw_os_error() {
                Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN) => {
                    Ok(())
                }
                _ => Err(e),
            },
        }
    }

    /// Reaps and handles every completion, then runs due deadlines and deferred work.
    fn turn(&mut self, now: Instant) -> usize {
        let mut handled = 0;
        let mut batch = [(0u64, 0i32, 0u32); REAP_BATCH];
        loop {
            let mut n = 0;
            {
                let mut cq = self.ring.completion();
                for slot in batch.iter_mut() {
                    match cq.next() {
                        Some(cqe) => {
                            *slot = (cqe.user_data(), cqe.result(), cqe.flags());
                            n += 1;
                        }
                        None => break,
                    }
                }
            }
            for &(ud, res, flags) in &batch[..n] {
                self.complete(now, ud, res, flags);
            }
            handled += n;
            if n < REAP_BATCH {
                break;
            }
        }
        if now >= self.next_sweep {
            self.next_sweep = now + SWEEP_PERIOD;
            self.sweep(now);
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

    fn complete(&mut self, now: Instant, ud: u64, res: i32, flags: u32) {
        let (op, index, gen) = split_user_data(ud);
        let multishot_goes_on = op == Some(Op::Accept) && cqueue::more(flags);
        if !multishot_goes_on {
            self.inflight = self.inflight.saturating_sub(1);
        }
        match op {
            Some(Op::Accept) => self.on_accept(now, index as usize, res, flags),
            Some(Op::Recv) => self.on_recv(now, index as usize, gen, res, flags),
            Some(Op::Send) => self.on_send(now, index as usize, gen, res),
            Some(Op::Close) => {
                if res < 0 {
                    self.stats.errors.close += 1;
                }
            }
            Some(Op::Timer) => self.timer_armed = false,
            Some(Op::Cancel) | None => {}
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
        if self.draining.is_some() || self.live.len() >= self.config.max_connections {
            self.stats.refused += 1;
            close_now(fd);
            return;
        }
        set_nodelay(fd);
        let limits = self.answers.current().limits;
        let in_cap = limits
            .max_header_bytes
            .max(limits.max_trailer_bytes as usize)
            + self.config.recv_buffer_len;
        let index = match self.free.pop() {
            Some(i) => i as usize,
            None => {
                // Grows once per slot, up to `max_connections`; reused afterwards.
                self.conns.push(Conn {
                    fd: -1,
                    gen: 0,
                    open: false,
                    closing: false,
                    http: HttpConn::new(limits),
                    generation: Generation::Current,
                    input: Box::default(),
                    in_len: 0,
                    recv_at: 0,
                    output: vec![0u8; self.config.output_buffer_len].into_boxed_slice(),
                    out_pos: 0,
                    out_len: 0,
                    recv_pending: false,
                    send_pending: false,
                    send_since: Instant::ZERO,
                    eof: false,
                    eof_told: false,
                    recv_deferred: false,
                    linger_until: None,
                    live_pos: 0,
                    tally: TallySlot::default(),
                    requests_tallied: 0,
                });
                self.conns.len() - 1
            }
        };
        let c = &mut self.conns[index];
        c.fd = fd;
        c.gen = c.gen.wrapping_add(1) & GEN_MASK;
        c.open = true;
        c.closing = false;
        if c.input.len() < in_cap {
            // A new slot, or a reload raised the head limits: once per slot, not per request.
            c.input = vec![0u8; in_cap].into_boxed_slice();
        }
        c.http.reset();
        c.http.set_limits(limits);
        c.generation = Generation::Current;
        c.http.start(now);
        c.in_len = 0;
        c.out_pos = 0;
        c.out_len = 0;
        c.recv_pending = false;
        c.send_pending = false;
        c.eof = false;
        c.eof_told = false;
        c.recv_deferred = false;
        c.linger_until = None;
        c.tally = self.listeners[listener].tally;
        c.requests_tallied = 0;
        self.tally.opened(c.tally);
        c.live_pos = self.live.len();
        self.live.push(index as u32);
        self.stats.accepted += 1;
        self.arm_recv(index);
    }

    /// Posts a receive if none is in flight and the input buffer has room for a whole one.
    fn arm_recv(&mut self, index: usize) {
        let c = &mut self.conns[index];
        let recv_len = self.config.recv_buffer_len;
        if !c.open || c.closing || c.eof || c.recv_pending || c.recv_deferred {
            return;
        }
        if c.input.len() - c.in_len < recv_len {
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
                c.recv_at = c.in_len;
                let room = &mut c.input[c.in_len..];
                // SAFETY: the kernel writes into `room`, part of this slot's boxed input
                // buffer. The box is allocated once per slot and never freed or resized while
                // the `KernelPath` lives; the slot is not reused and `in_len` not changed
                // while `recv_pending`; `Drop` waits for in-flight receives or leaks the slab.
                opcode::Recv::new(types::Fd(c.fd), room.as_mut_ptr(), room.len() as u32)
                    .build()
                    .user_data(ud)
            }
        };
        if push_entry(&mut self.ring, &mut self.stats, &mut self.inflight, &entry) {
            self.conns[index].recv_pending = true;
        } else {
            self.defer_recv(index);
        }
    }

    fn defer_recv(&mut self, index: usize) {
        let c = &mut self.conns[index];
        if !c.recv_deferred {
            c.recv_deferred = true;
            self.deferred.push((index as u32, c.gen));
        }
    }

    fn retry_deferred(&mut self) {
        if self.deferred.is_empty() {
            return;
        }
        std::mem::swap(&mut self.deferred, &mut self.deferred_spare);
        for k in 0..self.deferred_spare.len() {
            let (index, gen) = self.deferred_spare[k];
            let c = &mut self.conns[index as usize];
            if c.open && c.gen == gen && c.recv_deferred {
                c.recv_deferred = false;
                self.arm_recv(index as usize);
            }
        }
        self.deferred_spare.clear();
    }

    fn on_recv(&mut self, now: Instant, index: usize, gen: u32, res: i32, flags: u32) {
        let bid = cqueue::buffer_select(flags);
        let Some(c) = self
            .conns
            .get_mut(index)
            .filter(|c| c.open && c.gen == gen && c.recv_pending)
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
                0 => c.eof = true,
                libc::ECANCELED => {}
                libc::ENOBUFS => {
                    self.stats.errors.no_buffers += 1;
                    if !c.closing {
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
                let data = bufs.get(bid, n);
                if !c.closing && c.linger_until.is_none() {
                    take_input(c, &self.answers.for_conn(c.generation).app, now, data);
                    tally_requests(&mut self.tally, c);
                }
                bufs.recycle(bid);
            }
            (None, None) => {
                // The bytes landed at `recv_at`; input consumed meanwhile moved `in_len` down.
                let n = n.min(c.input.len() - c.recv_at);
                c.input.copy_within(c.recv_at..c.recv_at + n, c.in_len);
                c.in_len += n;
            }
            // A buffer-select receive without a buffer, or the reverse: nothing to read.
            (Some(_), None) | (None, Some(_)) => self.stats.errors.recv += 1,
        }
        self.pump(index, now);
    }

    fn on_send(&mut self, now: Instant, index: usize, gen: u32, res: i32) {
        let Some(c) = self
            .conns
            .get_mut(index)
            .filter(|c| c.open && c.gen == gen && c.send_pending)
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
        let n = (res as usize).min(c.out_len - c.out_pos);
        c.out_pos += n;
        self.stats.bytes_out += n as u64;
        self.pump(index, now);
    }

    /// Moves the connection forward as far as it can go without waiting: sends pending
    /// output, lets `HttpConn` produce more, closes when it is done, posts a receive.
    fn pump(&mut self, index: usize, now: Instant) {
        let draining = self.draining.is_some();
        loop {
            let c = &mut self.conns[index];
            if !c.open {
                return;
            }
            if c.closing {
                self.release_if_idle(index);
                return;
            }
            if c.linger_until.is_some() {
                // Dropping input until the peer's FIN.
                c.in_len = 0;
                if c.eof {
                    self.close_conn(index, false);
                    return;
                }
                break;
            }
            if c.send_pending {
                break;
            }
            if c.out_pos < c.out_len {
                self.post_send(index, now);
                break;
            }
            c.out_pos = 0;
            c.out_len = 0;
            let p = c.http.process(
                now,
                &self.answers.for_conn(c.generation).app,
                &c.input[..c.in_len],
                &mut c.output,
            );
            self.reload_ready |= self.answers.release(&mut c.generation, &mut c.http);
            tally_requests(&mut self.tally, c);
            consume_input(c, p.consumed);
            c.out_len = p.produced;
            if c.eof && !c.eof_told {
                c.eof_told = true;
                c.http.peer_closed(now);
                if c.out_len == 0 {
                    continue;
                }
            }
            if c.out_len > 0 {
                continue; // send it
            }
            if c.http.wants_close() || (draining && c.in_len == 0) {
                self.finish(index, now);
                return;
            }
            if c.input.len() - c.in_len < self.config.recv_buffer_len && !c.eof {
                // Nothing consumed with the whole output buffer free: the peer's input can
                // never fit (limits larger than the buffer); give up on this connection.
                self.stats.errors.input_overflow += 1;
                self.close_conn(index, true);
                return;
            }
            break;
        }
        self.arm_recv(index);
    }

    /// Everything has been sent: close at once if the peer has closed its side, else queue
    /// our FIN and linger, reading, until the peer's FIN.
    fn finish(&mut self, index: usize, now: Instant) {
        let c = &mut self.conns[index];
        if c.eof {
            self.close_conn(index, false);
            return;
        }
        // SAFETY: shutdown(2) on a socket we own; no memory is passed.
        if unsafe { libc::shutdown(c.fd, libc::SHUT_WR) } != 0 {
            self.close_conn(index, true);
            return;
        }
        c.linger_until = Some(now + self.config.linger);
        c.in_len = 0;
        self.arm_recv(index);
    }

    fn post_send(&mut self, index: usize, now: Instant) {
        let c = &mut self.conns[index];
        let pending = &c.output[c.out_pos..c.out_len];
        // SAFETY: the kernel reads `pending`, part of this slot's boxed output buffer, which is
        // allocated once per slot and never freed or resized while the `KernelPath` lives.
        // While `send_pending`, `pump` neither writes the output buffer nor moves
        // `out_pos..out_len`, and the slot is not reused; `Drop` waits for in-flight sends or
        // leaks the slab.
        let entry = opcode::Send::new(types::Fd(c.fd), pending.as_ptr(), pending.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data(Op::Send, index as u32, c.gen));
        if push_entry(&mut self.ring, &mut self.stats, &mut self.inflight, &entry) {
            let c = &mut self.conns[index];
            c.send_pending = true;
            c.send_since = now;
        } else {
            self.close_conn(index, true);
        }
    }

    /// Stops the connection: cancels its receive (and, when `abort`, its send); the slot and
    /// the socket are released once both have completed.
    fn close_conn(&mut self, index: usize, abort: bool) {
        let c = &mut self.conns[index];
        if !c.open {
            return;
        }
        c.closing = true;
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
        let c = &mut self.conns[index];
        if !c.open || !c.closing || c.recv_pending || c.send_pending {
            return;
        }
        c.open = false;
        c.recv_deferred = false;
        let fd = c.fd;
        c.fd = -1;
        self.stats.http_closed.add(c.http.stats());
        self.reload_ready |= self.answers.forget(&mut c.generation);
        self.stats.closed += 1;
        self.tally.closed(c.tally);
        let pos = c.live_pos;
        self.live.swap_remove(pos);
        if let Some(&moved) = self.live.get(pos) {
            self.conns[moved as usize].live_pos = pos;
        }
        self.free.push(index as u32);
        let entry = opcode::Close::new(types::Fd(fd))
            .build()
            .user_data(user_data(Op::Close, index as u32, 0));
        if !push_entry(&mut self.ring, &mut self.stats, &mut self.inflight, &entry) {
            close_now(fd);
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
                _ => self.conns.get(index as usize).map_or(-1, |c| c.fd),
            };
            if fd >= 0 {
                // SAFETY: shutdown(2) on a socket we own; no memory is passed.
                unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
            }
        }
    }

    fn push(&mut self, entry: &squeue::Entry) -> bool {
        push_entry(&mut self.ring, &mut self.stats, &mut self.inflight, entry)
    }

    /// Submits what is queued. A no-op without a system call when nothing is queued and the
    /// kernel has no overflowed completions or task work waiting for one (the polling loop's
    /// common case).
    fn submit(&mut self) {
        {
            let sq = self.ring.submission();
            if sq.is_empty() && !sq.cq_overflow() && !sq.taskrun() {
                return;
            }
        }
        if let Err(e) = self.ring.submit() {
            if !matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::EAGAIN)) {
                self.stats.errors.submit += 1;
            }
        }
    }

    /// Header/idle deadlines, peers that stopped reading, and the shutdown deadline.
    fn sweep(&mut self, now: Instant) {
        let cut = self.draining.is_some_and(|deadline| now >= deadline);
        let send_limit = self.answers.current().limits.idle_timeout;
        // Backwards: closing a connection moves the last live one into its place.
        for pos in (0..self.live.len()).rev() {
            let Some(&index) = self.live.get(pos) else {
                continue;
            };
            let index = index as usize;
            let c = &mut self.conns[index];
            if c.closing {
                continue;
            }
            if cut {
                self.stats.errors.shutdown_cut += 1;
                self.close_conn(index, true);
                continue;
            }
            if c.linger_until.is_some_and(|t| now >= t) {
                self.close_conn(index, false);
                continue;
            }
            if c.send_pending && now.saturating_duration_since(c.send_since) >= send_limit {
                self.stats.errors.send_timeout += 1;
                self.close_conn(index, true);
                continue;
            }
            if c.http.poll_timeout().is_some_and(|t| t <= now) {
                c.http.handle_timeout(now);
                self.pump(index, now);
            }
        }
    }
}

impl AsRawFd for KernelPath {
    /// The io_uring's descriptor: readable when completions are waiting (for a poller that
    /// sleeps in poll/epoll).
    fn as_raw_fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }
}

impl Drop for KernelPath {
    fn drop(&mut self) {
        // Nothing the kernel may still write or read can be freed: cancel everything, wait
        // (bounded) for the completions, and leak the buffers if some never come.
        for l in &mut self.listeners {
            l.fd = None;
        }
        let cancel_all = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(user_data(Op::Cancel, 0, 0));
        let _ = self.push(&cancel_all);
        for &i in &self.live {
            let fd = self.conns[i as usize].fd;
            if fd >= 0 {
                // SAFETY: shutdown(2) on a socket we own; wakes any receive still waiting.
                unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
            }
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while self.inflight > 0 && std::time::Instant::now() < deadline {
            let ts = types::Timespec::from(std::time::Duration::from_millis(50));
            let args = types::SubmitArgs::new().timespec(&ts);
            let _ = self.ring.submitter().submit_with_args(1, &args);
            let mut cq = self.ring.completion();
            for cqe in &mut cq {
                let (op, _, _) = split_user_data(cqe.user_data());
                if !(op == Some(Op::Accept) && cqueue::more(cqe.flags())) {
                    self.inflight = self.inflight.saturating_sub(1);
                }
            }
        }
        for &i in &self.live {
            let fd = self.conns[i as usize].fd;
            if fd >= 0 {
                close_now(fd);
            }
        }
        if self.inflight > 0 {
            // The kernel may still touch these: leak rather than free under it.
            std::mem::forget(std::mem::take(&mut self.conns));
            std::mem::forget(self.bufs.take());
            std::mem::forget(std::mem::replace(
                &mut self.timer,
                Box::new(types::Timespec::new()),
            ));
        } else if let Some(bufs) = &self.bufs {
            let _ = bufs.unregister(&self.ring);
        }
    }
}

/// The kernel path runs on a thread of its own (or the poller's): it must move there.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<KernelPath>();
};

/// Queues an entry, submitting first when the queue is full. False if it could not be queued.
fn push_entry(
    ring: &mut IoUring,
    stats: &mut KernelStats,
    inflight: &mut usize,
    entry: &squeue::Entry,
) -> bool {
    for _ in 0..2 {
        // SAFETY: every entry built in this module references either no memory or memory
        // whose lifetime is argued at the place the entry is built.
        if unsafe { ring.submission().push(entry) }.is_ok() {
            *inflight += 1;
            return true;
        }
        if ring.submit().is_err() {
            break;
        }
    }
    stats.errors.submit += 1;
    false
}

/// Hands freshly received bytes to the connection: straight from the receive buffer when
/// nothing is waiting before them, then keeps what is left in the input buffer.
fn take_input(c: &mut Conn, app: &App, now: Instant, data: &[u8]) {
    let mut data = data;
    if c.in_len == 0 && !c.send_pending && c.out_pos == c.out_len && !c.eof {
        c.out_pos = 0;
        let p = c.http.process(now, app, data, &mut c.output);
        c.out_len = p.produced;
        data = &data[p.consumed.min(data.len())..];
    }
    let room = c.input.len() - c.in_len;
    // A receive is posted only with room for a whole buffer, so this always fits.
    let n = data.len().min(room);
    c.input[c.in_len..c.in_len + n].copy_from_slice(&data[..n]);
    c.in_len += n;
}

/// Adds the requests `c` accepted since the last call to its port's count.
fn tally_requests(tally: &mut PortTally, c: &mut Conn) {
    let requests = c.http.stats().requests;
    tally.answered(c.tally, requests - c.requests_tallied);
    c.requests_tallied = requests;
}

fn consume_input(c: &mut Conn, n: usize) {
    let n = n.min(c.in_len);
    if n > 0 {
        // Only `..in_len`: in the per-connection receive mode the kernel may be writing after it.
        c.input[..c.in_len].copy_within(n.., 0);
        c.in_len -= n;
    }
}

fn set_nodelay(fd: RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt(2) reads `one`, a live local, for the size given.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

fn close_now(fd: RawFd) {
    // SAFETY: `fd` was accepted by us and is closed exactly once (it is not in the table).
    unsafe { libc::close(fd) };
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips_and_generations_wrap_within_their_bits() {
        for (op, index, gen) in [
            (Op::Recv, 0u32, 1u32),
            (Op::Send, u32::MAX, GEN_MASK),
            (Op::Accept, 7, 0),
            (Op::Close, 123_456, 0x00AB_CDEF),
        ] {
            let ud = user_data(op, index, gen);
            assert_eq!(split_user_data(ud), (Some(op), index, gen));
        }
        // A generation past 24 bits is masked the same way on both sides.
        let gen = (GEN_MASK + 5) & GEN_MASK;
        assert_eq!(split_user_data(user_data(Op::Recv, 3, gen)).2, 4);
        // Different generations of one slot never share a user_data.
        assert_ne!(user_data(Op::Recv, 3, 1), user_data(Op::Recv, 3, 2));
        assert_eq!(split_user_data(0).0, None);
    }

    fn poll_until(
        kp: &mut KernelPath,
        now: &mut Instant,
        mut what: impl FnMut(&KernelPath) -> bool,
    ) {
        for _ in 0..5000 {
            *now += Duration::from_millis(1);
            kp.poll(*now, 0);
            if what(kp) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        panic!("condition not reached");
    }

    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
    }

    #[test]
    fn no_descriptor_outlives_its_connection_or_the_kernel_path() {
        use std::io::{Read, Write};
        let baseline = open_fds();
        let app = App::new(&crate::app::AppConfig::default()).unwrap();
        let config = KernelConfig {
            max_connections: 8,
            ..KernelConfig::default()
        };
        let mut kp = KernelPath::new(config, app).unwrap();
        let addr = kp
            .listen(SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 0), 64)
            .unwrap();
        let mut now = Instant::from_secs(1);
        for i in 0..300 {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            if i % 2 == 0 {
                s.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    .unwrap();
                s.set_nonblocking(true).unwrap();
                let mut got = Vec::new();
                poll_until(&mut kp, &mut now, |_| {
                    let mut buf = [0u8; 512];
                    match s.read(&mut buf) {
                        Ok(0) => true,
                        Ok(n) => {
                            got.extend_from_slice(&buf[..n]);
                            false
                        }
                        Err(_) => false,
                    }
                });
                assert!(got.ends_with(b"ok"));
            }
            drop(s);
            poll_until(&mut kp, &mut now, |kp| kp.connection_count() == 0);
        }
        assert_eq!(kp.stats().closed, 300);
        // Listener, ring and the closed connections' sockets: a few, not hundreds.
        let serving = open_fds();
        assert!(
            serving < baseline + 20,
            "{baseline} -> {serving} descriptors"
        );
        drop(kp);
        let after = open_fds();
        assert!(
            after < baseline + 10,
            "{baseline} -> {after} descriptors after drop"
        );
    }

    #[test]
    fn completions_of_an_earlier_generation_never_touch_the_reused_slot() {
        use std::io::{Read, Write};
        let app = App::new(&crate::app::AppConfig::default()).unwrap();
        let mut kp = KernelPath::new(KernelConfig::default(), app).unwrap();
        let addr = kp
            .listen(SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 0), 16)
            .unwrap();
        let mut now = Instant::from_secs(1);
        // Completions for slots that do not exist are ignored.
        kp.complete(now, user_data(Op::Recv, 9, 1), 100, 0);
        kp.complete(now, user_data(Op::Send, 9, 1), 100, 0);

        let first = std::net::TcpStream::connect(addr).unwrap();
        poll_until(&mut kp, &mut now, |kp| kp.connection_count() == 1);
        let old_gen = kp.conns[0].gen;
        drop(first);
        poll_until(&mut kp, &mut now, |kp| kp.connection_count() == 0);

        let mut second = std::net::TcpStream::connect(addr).unwrap();
        poll_until(&mut kp, &mut now, |kp| kp.connection_count() == 1);
        assert_eq!(kp.free.len(), 0, "the slot was reused");
        assert_ne!(kp.conns[0].gen, old_gen);
        let before = kp.stats;
        // Late completions of the first connection: a receive with data, a send, an error.
        kp.complete(now, user_data(Op::Recv, 0, old_gen), 50, 0);
        kp.complete(now, user_data(Op::Send, 0, old_gen), 10, 0);
        kp.complete(now, user_data(Op::Recv, 0, old_gen), -libc::ECONNRESET, 0);
        assert_eq!(kp.stats, before);
        assert!(kp.conns[0].open && !kp.conns[0].closing);

        second
            .write_all(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        second
            .set_read_timeout(Some(std::time::Duration::from_millis(1)))
            .unwrap();
        let mut got = Vec::new();
        poll_until(&mut kp, &mut now, |_| {
            let mut buf = [0u8; 512];
            match (&second).read(&mut buf) {
                Ok(0) => true,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    false
                }
                Err(_) => false,
            }
        });
        assert!(got.ends_with(b"\r\n\r\nok"));
    }
}

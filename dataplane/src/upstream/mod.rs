//! Connections to upstream servers, one table per serving thread (each AF_XDP poller and the
//! kernel-path thread), driven by an io_uring of its own.
//!
//! An owner (a client connection of the gateway, named by a `u64` of its choosing) asks for a
//! connection to a server ([`UpstreamConns::checkout_idle`] for a pooled one,
//! [`UpstreamConns::connect`] for a new one), writes its request straight into the
//! connection's send buffer ([`UpstreamConns::send_room`], [`UpstreamConns::commit_send`]),
//! reads the response from its receive buffer as it arrives ([`UpstreamConns::received`],
//! [`UpstreamConns::consume`]), and gives the connection back with
//! [`UpstreamConns::release`]: to its server's idle list (keep-alive) or closed. Every
//! [`ConnId`] handed out is given back that way, whatever happened to the connection.
//!
//! One loop round of the owner's thread, all non-blocking:
//! 1. [`UpstreamConns::poll`]: completions become [`UpstreamEvent`]s for owned connections;
//!    idle ones that broke are closed here, silently;
//! 2. the owner acts on the events (reads, writes, releases);
//! 3. [`UpstreamConns::flush`]: sends and receives for what changed, then one submission for
//!    the whole batch;
//! 4. now and then, [`UpstreamConns::expire_idle`] (due at [`UpstreamConns::next_expiry`]);
//! 5. sleep in poll(2) on [`UpstreamConns::ring_fd`] (with the thread's other descriptors):
//!    it turns readable when a completion is waiting.
//!
//! Per connection there is at most one connect, or one send and one receive, in flight:
//! - a send carries every byte committed and not yet sent; a short send continues from where
//!   it stopped, and bytes committed meanwhile go with the next one;
//! - a receive writes into the free room of the receive buffer and is posted only while
//!   there is room, so an owner that does not consume stops reading, and the upstream's TCP
//!   window closes (backpressure). The bytes move to the front of the buffer only while no
//!   receive is in flight.
//!
//! A slot (its buffers, allocated the first time the slot is used and reused afterwards, and
//! its socket address) is reused only once none of its operations is in flight: releasing a
//! connection cancels them, and the socket is closed when the last completes. Completions
//! carry the slot's socket generation (see `ring`), and each hand-out of a connection has a
//! lease generation of its own (in [`ConnId`]): a late completion never reaches another
//! socket, and an owner's stale `ConnId` never reaches the next owner of the slot.
//!
//! Idle connections keep a receive posted: an upstream that closes (or resets) an idle
//! connection is seen at once and the connection leaves the pool. Bytes arriving on an idle
//! connection mean the upstream broke the protocol (nothing was asked): it is closed too.

mod buffer;
mod idle;
mod ring;
mod side;
mod table;

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

use io_uring::{opcode, types};

use crate::sys::socket;
use crate::time::{Duration, Instant};
use buffer::ByteBuf;
use idle::IdlePool;
use ring::{split_user_data, user_data, Op, Ring, GEN_MASK, REAP_BATCH};
pub use side::{UpstreamSide, UpstreamSideConfig};

/// `IORING_RECVSEND_POLL_FIRST` (linux/io_uring.h, since 5.19): a receive waits for the
/// socket to be readable before its first attempt (the io-uring crate does not export it).
const RECVSEND_POLL_FIRST: u16 = 1;

/// The sizes and bounds of one thread's table.
#[derive(Debug, Clone)]
pub struct UpstreamConnsConfig {
    /// Open connections at most (owned, idle, and closing ones whose operations have not yet
    /// completed): the hard bound; [`UpstreamConns::connect`] fails beyond it.
    pub max_connections: usize,
    /// Per-connection send buffer: the most a request's bytes can be ahead of the upstream.
    pub send_buffer_len: usize,
    /// Per-connection receive buffer: the most of a response held before the owner consumes.
    pub recv_buffer_len: usize,
    /// Submission queue entries (rounded up to a power of two).
    pub ring_entries: u32,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
}

impl Default for UpstreamConnsConfig {
    fn default() -> Self {
        UpstreamConnsConfig {
            max_connections: 1024,
            send_buffer_len: 16 * 1024,
            recv_buffer_len: 16 * 1024,
            ring_entries: 256,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// An upstream server, by its address: idle connections are kept per key, and one to an
/// address serves any pool (of any configuration generation) that has that server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServerKey(pub SocketAddr);

/// One hand-out of a connection: its slot and the lease generation. Stale once released:
/// every call with it is then a no-op (empty slices, `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    index: u32,
    generation: u32,
}

/// What happened to an owned connection. After `ConnectFailed`, `Eof` or `Reset` the owner
/// still reads what was received, and releases the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamEvent {
    /// The connection is established; committed bytes are being sent.
    Connected(ConnId),
    /// The connect failed, with the errno (`ECONNREFUSED`, `ETIMEDOUT`, `ENETUNREACH`, ...).
    ConnectFailed(ConnId, i32),
    /// New bytes are in the receive buffer.
    Received(ConnId),
    /// A send completed: bytes left the send buffer, which has room again.
    Sent(ConnId),
    /// The upstream closed its side: nothing more will be received.
    Eof(ConnId),
    /// The connection broke, with the errno (`ECONNRESET`, `EPIPE`, ...): nothing more is
    /// sent or received.
    Reset(ConnId, i32),
}

impl UpstreamEvent {
    pub fn id(&self) -> ConnId {
        match *self {
            UpstreamEvent::Connected(id)
            | UpstreamEvent::ConnectFailed(id, _)
            | UpstreamEvent::Received(id)
            | UpstreamEvent::Sent(id)
            | UpstreamEvent::Eof(id)
            | UpstreamEvent::Reset(id, _) => id,
        }
    }
}

/// Why [`UpstreamConns::connect`] could not start a connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnsError {
    /// `max_connections` are open (closing ones count until their operations complete).
    #[error("upstream connection table full")]
    TableFull,
    /// socket(2) failed (EMFILE, ENFILE, ENOBUFS, ...).
    #[error("upstream socket: {0}")]
    Socket(io::Error),
    /// The connect could not be queued on the ring.
    #[error("upstream connect could not be queued")]
    Submit,
}

/// Counters and gauges of one table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpstreamStats {
    /// Slots holding a socket: owned, idle, or closing with operations in flight.
    pub open: usize,
    /// Connections owned (connecting or established).
    pub in_use: usize,
    /// Connections in the idle lists.
    pub idle: usize,
    /// Connects started, and those that failed (refused, unreachable, timed out).
    pub connects: u64,
    pub connect_failures: u64,
    /// Idle connections handed out again.
    pub reuses: u64,
    /// Idle connections closed: by the upstream (EOF, reset) or because it sent bytes
    /// unasked; past the idle timeout; beyond the keep-alive bound.
    pub idle_broken: u64,
    pub idle_expired: u64,
    pub idle_evicted: u64,
    /// Sockets closed (for any reason).
    pub closed: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Operations that could not be queued, and closes that failed.
    pub submit_errors: u64,
    pub close_errors: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No socket; the slot is on the free list.
    Free,
    /// Owned, the connect in flight.
    Connecting,
    /// Owned and established (or broken: see `eof`, `broken`).
    Open,
    /// In its server's idle list.
    Idle,
    /// Released for good: waits for its operations, then the socket is closed.
    Closing,
}

/// A socket address for IORING_OP_CONNECT, boxed in its slot so that it stays put while the
/// connect is in flight. Written through the union's fields (safe), read by the kernel.
#[repr(C)]
#[derive(Clone, Copy)]
union RawAddr {
    v4: libc::sockaddr_in,
    v6: libc::sockaddr_in6,
}

struct SockAddr {
    raw: RawAddr,
    len: libc::socklen_t,
}

impl SockAddr {
    fn empty() -> Self {
        SockAddr {
            raw: RawAddr {
                v6: libc::sockaddr_in6 {
                    sin6_family: 0,
                    sin6_port: 0,
                    sin6_flowinfo: 0,
                    sin6_addr: libc::in6_addr { s6_addr: [0; 16] },
                    sin6_scope_id: 0,
                },
            },
            len: 0,
        }
    }

    fn set(&mut self, addr: SocketAddr) {
        match addr {
            SocketAddr::V4(a) => {
                self.raw.v4 = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(*a.ip()).to_be(),
                    },
                    sin_zero: [0; 8],
                };
                self.len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            SocketAddr::V6(a) => {
                self.raw.v6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                self.len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
        }
    }

    fn as_ptr(&self) -> *const libc::sockaddr {
        (&self.raw as *const RawAddr).cast()
    }
}

/// One slot of the table: a socket, its buffers and operations, who owns it.
struct ConnSlot {
    state: State,
    /// Bumped for each new socket in the slot; carried in `user_data`.
    sock_gen: u32,
    /// Bumped at each hand-out; carried in `ConnId`.
    lease: u32,
    fd: RawFd,
    server: ServerKey,
    owner: u64,
    addr: Box<SockAddr>,
    send: ByteBuf,
    recv: ByteBuf,
    connect_pending: bool,
    send_pending: bool,
    recv_pending: bool,
    /// The last receive took less than it asked for: the socket had nothing more, and the
    /// next bytes come only after the next request, so the next receive waits for them
    /// (`IORING_RECVSEND_POLL_FIRST`) instead of first failing an attempt on an empty socket.
    recv_drained: bool,
    /// What the receive in flight asked for.
    recv_asked: u32,
    /// The upstream closed its side.
    eof: bool,
    /// The connect failed or the connection reset: no more operations.
    broken: bool,
    /// In `UpstreamConns::dirty`: `flush` looks at its send and receive.
    dirty: bool,
}

impl ConnSlot {
    fn new(send_len: usize, recv_len: usize) -> Self {
        ConnSlot {
            state: State::Free,
            sock_gen: 0,
            lease: 0,
            fd: -1,
            server: ServerKey(SocketAddr::V4(std::net::SocketAddrV4::new(
                std::net::Ipv4Addr::UNSPECIFIED,
                0,
            ))),
            owner: 0,
            addr: Box::new(SockAddr::empty()),
            send: ByteBuf::new(send_len),
            recv: ByteBuf::new(recv_len),
            connect_pending: false,
            send_pending: false,
            recv_pending: false,
            recv_drained: true,
            recv_asked: 0,
            eof: false,
            broken: false,
            dirty: false,
        }
    }

    fn owned(&self) -> bool {
        matches!(self.state, State::Connecting | State::Open)
    }

    fn quiet(&self) -> bool {
        !self.connect_pending && !self.send_pending && !self.recv_pending
    }
}

/// One thread's upstream connections. See the module documentation.
pub struct UpstreamConns {
    ring: Ring,
    /// Grows by one slot at a time up to `max_connections`; never shrinks, so buffers are
    /// allocated once per slot.
    slots: Vec<ConnSlot>,
    free: Vec<u32>,
    idle: IdlePool,
    /// Slots whose send or receive may need posting at the next `flush`.
    dirty: Vec<u32>,
    /// The other half of `dirty`'s double buffer (no allocation while flushing).
    dirty_spare: Vec<u32>,
    config: UpstreamConnsConfig,
    stats: UpstreamStats,
}

impl UpstreamConns {
    /// Creates the ring; slots come as connections need them. Fails on a configuration out of
    /// range (`InvalidInput`) or when io_uring is unavailable.
    pub fn new(config: UpstreamConnsConfig) -> io::Result<Self> {
        let valid = config.max_connections > 0
            && config.max_connections <= 1 << 24
            && (1..=1 << 30).contains(&config.send_buffer_len)
            && (1..=1 << 30).contains(&config.recv_buffer_len);
        if !valid {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "upstream connections: max_connections (1..=2^24), send_buffer_len or \
                 recv_buffer_len (1..=2^30) out of range",
            ));
        }
        // Up to two operations per connection, plus its cancels and close: the completion
        // queue holds them all without overflowing (the kernel clamps a huge one).
        let cq = u32::try_from(config.max_connections.saturating_mul(4)).unwrap_or(u32::MAX);
        let ring = Ring::new(config.ring_entries, cq)?;
        let max = config.max_connections;
        Ok(UpstreamConns {
            ring,
            slots: Vec::new(),
            free: Vec::new(),
            idle: IdlePool::new(),
            dirty: Vec::with_capacity(max.min(1 << 16)),
            dirty_spare: Vec::with_capacity(max.min(1 << 16)),
            config,
            stats: UpstreamStats::default(),
        })
    }

    /// The io_uring's descriptor: readable when completions are waiting (for a thread that
    /// sleeps in poll(2) or epoll on it with its other descriptors).
    pub fn ring_fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }

    pub fn stats(&self) -> UpstreamStats {
        UpstreamStats {
            idle: self.idle.total(),
            ..self.stats
        }
    }

    /// Idle connections kept for `server`.
    pub fn idle_count(&self, server: ServerKey) -> usize {
        self.idle.count(server)
    }

    /// Operations submitted or queued whose completion has not been reaped.
    pub fn inflight(&self) -> usize {
        self.ring.inflight()
    }

    /// The owner of a connection, `None` once `id` is stale.
    pub fn owner(&self, id: ConnId) -> Option<u64> {
        self.slot(id).map(|s| s.owner)
    }

    /// The newest idle connection to `server` still open and not past its idle timeout at
    /// `now`, now owned by `owner`; expired ones met on the way are closed.
    pub fn checkout_idle(&mut self, server: ServerKey, owner: u64, now: Instant) -> Option<ConnId> {
        while let Some((index, since)) = self.idle.pop_newest(server) {
            if since + self.config.idle_timeout <= now {
                self.stats.idle_expired += 1;
                self.close_slot(index);
                continue;
            }
            let s = &mut self.slots[index as usize];
            s.state = State::Open;
            s.owner = owner;
            s.lease = s.lease.wrapping_add(1);
            self.stats.in_use += 1;
            self.stats.reuses += 1;
            return Some(ConnId {
                index,
                generation: s.lease,
            });
        }
        None
    }

    /// Starts a new connection to `addr` for `owner` (non-blocking socket, TCP_NODELAY, the
    /// connect queued for the next `flush`). The owner may commit its request at once: it is
    /// sent when the connection is established ([`UpstreamEvent::Connected`]).
    pub fn connect(
        &mut self,
        server: ServerKey,
        addr: SocketAddr,
        owner: u64,
    ) -> Result<ConnId, ConnsError> {
        if self.free.is_empty() && self.slots.len() >= self.config.max_connections {
            return Err(ConnsError::TableFull);
        }
        let fd = tcp_socket(addr).map_err(ConnsError::Socket)?;
        socket::set_nodelay(fd);
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                // Once per slot, up to `max_connections`.
                self.slots.push(ConnSlot::new(
                    self.config.send_buffer_len,
                    self.config.recv_buffer_len,
                ));
                (self.slots.len() - 1) as u32
            }
        };
        let s = &mut self.slots[index as usize];
        s.state = State::Connecting;
        s.sock_gen = s.sock_gen.wrapping_add(1) & GEN_MASK;
        s.lease = s.lease.wrapping_add(1);
        s.fd = fd;
        s.server = server;
        s.owner = owner;
        s.addr.set(addr);
        s.send.clear();
        s.recv.clear();
        s.eof = false;
        s.broken = false;
        s.recv_drained = true;
        let entry = opcode::Connect::new(types::Fd(fd), s.addr.as_ptr(), s.addr.len)
            .build()
            .user_data(user_data(Op::Connect, index, s.sock_gen));
        // SAFETY: the kernel reads the socket address, boxed in the slot: the box is neither
        // replaced nor freed while the slot lives, the address is rewritten only by the next
        // `connect` in this slot, which waits until the slot is free (no operation in flight),
        // and `Drop` waits for in-flight operations or leaks the slots.
        if !unsafe { self.ring.push(&entry) } {
            socket::close_raw(fd);
            s.fd = -1;
            s.state = State::Free;
            self.free.push(index);
            self.stats.submit_errors += 1;
            return Err(ConnsError::Submit);
        }
        s.connect_pending = true;
        self.stats.connects += 1;
        self.stats.in_use += 1;
        self.stats.open += 1;
        Ok(ConnId {
            index,
            generation: s.lease,
        })
    }

    /// Free room in the connection's send buffer, to write request bytes into; then
    /// [`commit_send`](Self::commit_send) what was written. Empty when the buffer is full or
    /// `id` is stale.
    pub fn send_room(&mut self, id: ConnId) -> &mut [u8] {
        let Some(s) = self.slot_mut(id) else {
            return &mut [];
        };
        if !s.send_pending {
            s.send.compact();
        }
        s.send.room_mut()
    }

    /// [`received`](Self::received) and [`send_room`](Self::send_room) at once, for a caller
    /// that reads the response and writes the request body in one call.
    pub fn buffers(&mut self, id: ConnId) -> (&[u8], &mut [u8]) {
        let Some(s) = self.slot_mut(id) else {
            return (&[], &mut []);
        };
        if !s.send_pending {
            s.send.compact();
        }
        (s.recv.filled(), s.send.room_mut())
    }

    /// `n` bytes were written at the start of [`send_room`](Self::send_room); sent from the
    /// next [`flush`](Self::flush) on.
    pub fn commit_send(&mut self, id: ConnId, n: usize) {
        debug_assert!(self.slot(id).is_none_or(|s| n <= s.send.room_len()));
        if n > 0 && self.slot(id).is_some() {
            self.slots[id.index as usize].send.commit(n);
            self.mark(id.index);
        }
    }

    /// Bytes committed and not yet sent (the kernel has not taken them).
    pub fn unsent(&self, id: ConnId) -> usize {
        self.slot(id).map_or(0, |s| s.send.len())
    }

    /// The bytes received and not yet consumed, in order. Empty when `id` is stale.
    pub fn received(&self, id: ConnId) -> &[u8] {
        self.slot(id).map_or(&[], |s| s.recv.filled())
    }

    /// `n` received bytes were used: their room takes more of the response.
    pub fn consume(&mut self, id: ConnId, n: usize) {
        if n > 0 && self.slot(id).is_some() {
            let s = &mut self.slots[id.index as usize];
            // A receive in flight writes at the buffer's `end`: it must not move.
            let rewind = !s.recv_pending;
            s.recv.consume(n, rewind);
            self.mark(id.index);
        }
    }

    /// Gives a connection back, to be kept idle among at most `max_idle` of its server's (the
    /// pool's `keepalive`; the exchange ended cleanly at a message boundary, else 0): it joins
    /// its server's idle list, newest, if `max_idle` is not 0 and it is established,
    /// unbroken, and holds no byte either way; the list's oldest are closed beyond the bound.
    /// Otherwise its operations are cancelled and its socket closed once they have completed.
    /// `id` is stale from here on.
    pub fn release(&mut self, id: ConnId, max_idle: usize, now: Instant) {
        let Some(s) = self.slot_mut(id) else {
            return;
        };
        let keep = max_idle > 0
            && s.state == State::Open
            && !s.eof
            && !s.broken
            && !s.send_pending
            && s.send.is_empty()
            && s.recv.is_empty();
        let server = s.server;
        if keep {
            s.state = State::Idle;
            s.owner = 0;
        }
        self.stats.in_use -= 1;
        if !keep {
            self.close_slot(id.index);
            return;
        }
        self.mark(id.index);
        while let Some(evicted) = self.idle.pop_over(server, max_idle - 1) {
            self.stats.idle_evicted += 1;
            self.close_slot(evicted);
        }
        let pushed = self.idle.push(server, id.index, now, max_idle);
        debug_assert_eq!(pushed, None, "room was made for it");
    }

    /// Closes idle connections whose idle timeout has passed at `now`.
    pub fn expire_idle(&mut self, now: Instant) {
        while let Some(index) = self.idle.pop_expired(now, self.config.idle_timeout) {
            self.stats.idle_expired += 1;
            self.close_slot(index);
        }
    }

    /// When [`expire_idle`](Self::expire_idle) next has work, if any connection is idle.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.idle.next_expiry(self.config.idle_timeout)
    }

    /// Posts the sends and receives that changes since the last call made possible, then
    /// submits everything queued in one system call (none when nothing is queued).
    pub fn flush(&mut self) -> io::Result<()> {
        std::mem::swap(&mut self.dirty, &mut self.dirty_spare);
        for k in 0..self.dirty_spare.len() {
            let index = self.dirty_spare[k];
            self.slots[index as usize].dirty = false;
            self.arm(index);
        }
        self.dirty_spare.clear();
        self.ring.submit()
    }

    /// Reaps every completion without blocking; events of owned connections are appended to
    /// `events`. Returns the completions handled.
    pub fn poll(&mut self, events: &mut Vec<UpstreamEvent>) -> usize {
        let mut handled = 0;
        let mut batch = [(0u64, 0i32); REAP_BATCH];
        loop {
            let n = self.ring.reap(&mut batch);
            for &(ud, res) in &batch[..n] {
                self.complete(ud, res, events);
            }
            handled += n;
            if n < REAP_BATCH {
                return handled;
            }
        }
    }

    fn slot(&self, id: ConnId) -> Option<&ConnSlot> {
        self.slots
            .get(id.index as usize)
            .filter(|s| s.lease == id.generation && s.owned())
    }

    fn slot_mut(&mut self, id: ConnId) -> Option<&mut ConnSlot> {
        self.slots
            .get_mut(id.index as usize)
            .filter(|s| s.lease == id.generation && s.owned())
    }

    fn id_of(&self, index: u32) -> ConnId {
        ConnId {
            index,
            generation: self.slots[index as usize].lease,
        }
    }

    fn mark(&mut self, index: u32) {
        let s = &mut self.slots[index as usize];
        if !s.dirty {
            s.dirty = true;
            self.dirty.push(index);
        }
    }

    /// Posts the slot's send (bytes waiting, none in flight) and receive (room, none in
    /// flight), as far as its state allows. What cannot be queued waits for the next flush.
    fn arm(&mut self, index: u32) {
        let s = &mut self.slots[index as usize];
        let live = matches!(s.state, State::Open | State::Idle) && !s.broken;
        if !live {
            return;
        }
        let mut retry = false;
        if s.state == State::Open && !s.send_pending && !s.send.is_empty() {
            let len = u32::try_from(s.send.len()).unwrap_or(u32::MAX);
            let entry = opcode::Send::new(types::Fd(s.fd), s.send.filled_ptr(), len)
                .flags(libc::MSG_NOSIGNAL)
                .build()
                .user_data(user_data(Op::Send, index, s.sock_gen));
            // SAFETY: the kernel reads `len` bytes from the start of the bytes held in the
            // slot's boxed send buffer, which is never freed or resized while the table lives.
            // While `send_pending`, `start` does not move and nothing is compacted (only
            // appended after `end`); the slot is not reused until the completion; `Drop` waits
            // for in-flight operations or leaks the slots.
            if unsafe { self.ring.push(&entry) } {
                s.send_pending = true;
            } else {
                retry = true;
            }
        }
        if !s.eof && !s.recv_pending {
            if s.recv.wants_compact() {
                s.recv.compact();
            }
            if s.recv.room_len() > 0 {
                let len = u32::try_from(s.recv.room_len()).unwrap_or(u32::MAX);
                let entry = opcode::Recv::new(types::Fd(s.fd), s.recv.room_ptr(), len)
                    .ioprio(if s.recv_drained {
                        RECVSEND_POLL_FIRST
                    } else {
                        0
                    })
                    .build()
                    .user_data(user_data(Op::Recv, index, s.sock_gen));
                // SAFETY: the kernel writes at most `len` bytes into the free room of the
                // slot's boxed receive buffer, never freed or resized while the table lives.
                // While `recv_pending`, `end` does not move and nothing is compacted (the owner
                // only reads and consumes before `end`); the slot is not reused until the
                // completion; `Drop` waits for in-flight operations or leaks the slots.
                if unsafe { self.ring.push(&entry) } {
                    s.recv_pending = true;
                    s.recv_asked = len;
                } else {
                    retry = true;
                }
            }
        }
        if retry {
            self.stats.submit_errors += 1;
            self.mark(index);
        }
    }

    /// Stops the slot's socket (owned, or already out of the idle list): cancels its
    /// operations; the socket is closed once they have completed.
    fn close_slot(&mut self, index: u32) {
        let s = &mut self.slots[index as usize];
        s.state = State::Closing;
        s.owner = 0;
        let (fd, gen) = (s.fd, s.sock_gen);
        for (pending, op) in [
            (s.connect_pending, Op::Connect),
            (s.recv_pending, Op::Recv),
            (s.send_pending, Op::Send),
        ] {
            if pending {
                self.push_cancel(user_data(op, index, gen), fd);
            }
        }
        self.finish_close(index);
    }

    fn push_cancel(&mut self, target: u64, fd: RawFd) {
        let entry = opcode::AsyncCancel::new(target)
            .build()
            .user_data(user_data(Op::Cancel, 0, 0));
        // SAFETY: a cancel references no memory, only the target's `user_data`.
        if !unsafe { self.ring.push(&entry) } {
            self.stats.submit_errors += 1;
            // Without the cancel, a receive could wait forever: wake it through the socket
            // (a connect in progress is aborted the same way).
            let _ = socket::shutdown(fd, libc::SHUT_RDWR);
        }
    }

    fn complete(&mut self, ud: u64, res: i32, events: &mut Vec<UpstreamEvent>) {
        let (op, index, gen) = split_user_data(ud);
        let op = match op {
            Some(Op::Close) => {
                if res < 0 {
                    self.stats.close_errors += 1;
                }
                return;
            }
            Some(Op::Cancel) | None => return,
            Some(op) => op,
        };
        let Some(s) = self
            .slots
            .get_mut(index as usize)
            .filter(|s| s.sock_gen == gen && s.state != State::Free)
        else {
            // Cannot happen while slots wait for their operations; never touch the slot.
            return;
        };
        match op {
            Op::Connect => s.connect_pending = false,
            Op::Send => s.send_pending = false,
            Op::Recv => s.recv_pending = false,
            Op::Cancel | Op::Close => {}
        }
        if s.state == State::Closing {
            self.finish_close(index);
            return;
        }
        let idle = s.state == State::Idle;
        match op {
            Op::Connect if res == 0 => {
                s.state = State::Open;
                self.mark(index);
                events.push(UpstreamEvent::Connected(self.id_of(index)));
            }
            Op::Connect => {
                s.broken = true;
                self.stats.connect_failures += 1;
                events.push(UpstreamEvent::ConnectFailed(self.id_of(index), -res));
            }
            Op::Send if res > 0 => {
                // The send just completed and it is the only operation on this buffer.
                s.send.consume(res as usize, true);
                self.stats.bytes_sent += res as u64;
                if !s.send.is_empty() {
                    self.mark(index);
                }
                events.push(UpstreamEvent::Sent(self.id_of(index)));
            }
            Op::Recv if res > 0 => {
                s.recv_drained = (res as u32) < s.recv_asked;
                s.recv.commit(res as usize);
                self.stats.bytes_received += res as u64;
                if idle {
                    // Bytes nobody asked for: the upstream broke the protocol.
                    self.close_idle(index);
                } else {
                    self.mark(index);
                    events.push(UpstreamEvent::Received(self.id_of(index)));
                }
            }
            Op::Recv if res == 0 => {
                s.eof = true;
                if idle {
                    self.close_idle(index);
                } else if !s.broken {
                    // After a reset the socket reads as closed: the reset was already told.
                    events.push(UpstreamEvent::Eof(self.id_of(index)));
                }
            }
            // Not a failure: try again at the next flush.
            Op::Send | Op::Recv
                if matches!(-res, 0 | libc::EAGAIN | libc::EINTR | libc::ECANCELED) =>
            {
                self.mark(index);
            }
            Op::Send | Op::Recv => {
                // Told once: the other direction's operation may fail the same way.
                let first = !s.broken;
                s.broken = true;
                if idle {
                    self.close_idle(index);
                } else if first {
                    events.push(UpstreamEvent::Reset(self.id_of(index), -res));
                }
            }
            Op::Cancel | Op::Close => {}
        }
    }

    /// An idle connection broke (closed, reset, or bytes unasked): out of the pool, closed.
    fn close_idle(&mut self, index: u32) {
        let server = self.slots[index as usize].server;
        if self.idle.remove(server, index) {
            self.stats.idle_broken += 1;
        }
        self.close_slot(index);
    }

    /// Once a closing slot has no operation left in flight, its socket is closed and the slot
    /// is free.
    fn finish_close(&mut self, index: u32) {
        let s = &mut self.slots[index as usize];
        if s.state != State::Closing || !s.quiet() {
            return;
        }
        let fd = s.fd;
        s.fd = -1;
        s.state = State::Free;
        self.free.push(index);
        self.stats.open -= 1;
        self.stats.closed += 1;
        let entry = opcode::Close::new(types::Fd(fd))
            .build()
            .user_data(user_data(Op::Close, index, 0));
        // SAFETY: a close references no memory, only the descriptor, which nothing else uses
        // from here on.
        if !unsafe { self.ring.push(&entry) } {
            self.stats.submit_errors += 1;
            socket::close_raw(fd);
        }
    }
}

impl Drop for UpstreamConns {
    fn drop(&mut self) {
        // Nothing the kernel may still read or write can be freed: wake and cancel every
        // operation, wait (bounded) for the completions, and leak the slots if some never
        // come.
        for index in 0..self.slots.len() as u32 {
            let s = &self.slots[index as usize];
            if s.fd < 0 {
                continue;
            }
            // Wakes a waiting receive or send and aborts a connect in progress.
            let _ = socket::shutdown(s.fd, libc::SHUT_RDWR);
            let (fd, gen) = (s.fd, s.sock_gen);
            for (pending, op) in [
                (s.connect_pending, Op::Connect),
                (s.recv_pending, Op::Recv),
                (s.send_pending, Op::Send),
            ] {
                if pending {
                    self.push_cancel(user_data(op, index, gen), fd);
                }
            }
        }
        let stuck = self.ring.drain(std::time::Duration::from_secs(2));
        for s in &mut self.slots {
            if s.fd >= 0 {
                socket::close_raw(s.fd);
                s.fd = -1;
            }
        }
        if stuck > 0 {
            // The kernel may still touch these buffers and addresses: leak rather than free
            // under it.
            std::mem::forget(std::mem::take(&mut self.slots));
        }
    }
}

/// A non-blocking, close-on-exec TCP socket of `addr`'s family.
fn tcp_socket(addr: SocketAddr) -> io::Result<RawFd> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    let kind = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: socket(2) with constant arguments; returns a new descriptor or -1.
    let fd = unsafe { libc::socket(family, kind, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// The table lives on its serving thread, created before the thread starts: it must move.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<UpstreamConns>();
};

#[cfg(test)]
mod tests;

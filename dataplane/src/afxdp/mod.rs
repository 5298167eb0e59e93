//! AF_XDP sockets: one UMEM and one socket per RX queue (xsk-rs), a frame pool, and the
//! socket placed in the steering program's `xsks` map.
//!
//! Each [`XskQueue`] is shared-nothing: its own UMEM, rings and free frames, meant to be owned
//! by the poller thread of its queue. libxdp's own XDP program is never loaded
//! (`XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD`): the socket goes into *our* `xsks` map, so the
//! steering rules decide what it receives.
//!
//! Bind mode: [`BindMode::Auto`] tries zero-copy first and falls back to copy mode (veth and
//! most virtual devices only do copy); need_wakeup likewise ([`Wakeup::Auto`]).
//!
//! The only `unsafe` here is at the ring boundary (xsk-rs's ring and frame accessors), each
//! with the reason it holds: a frame descriptor is owned by exactly one of the pool, the fill
//! ring, the RX ring (until consumed), the TX ring or the completion ring at a time.

mod channels;
mod clock;
mod pmtu_relay;
mod poller;
mod waker;

use std::num::NonZeroU32;
use std::os::fd::AsRawFd;

use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue, Umem};

use crate::bpf::SteeringMaps;

pub use channels::rx_queue_count;
pub use clock::Clock;
pub use pmtu_relay::{PmtuInbox, PmtuRelay};
pub use poller::{pin_to_core, Poller, PollerConfig, PollerCounters, PollerError, PollerStats};
pub use waker::Waker;

/// Zero-copy or copy mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindMode {
    /// Zero-copy when the driver supports it, copy otherwise.
    #[default]
    Auto,
    /// Zero-copy or fail.
    ZeroCopy,
    /// Copy mode.
    Copy,
}

/// Whether the rings use need_wakeup (the kernel says when it must be kicked, so an idle
/// poller can sleep and a busy one makes fewer system calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wakeup {
    /// On when the kernel accepts it.
    #[default]
    Auto,
    /// On or fail.
    On,
    /// Off.
    Off,
}

/// Sizes and modes of one AF_XDP socket and its UMEM.
#[derive(Debug, Clone)]
pub struct XskConfig {
    /// Interface to bind to.
    pub ifname: String,
    /// UMEM frames per socket (fill ring + RX + TX in flight + pool).
    pub frame_count: u32,
    /// Bytes per frame (2048 or 4096).
    pub frame_size: u32,
    /// Descriptors in each of the four rings (power of two).
    pub ring_size: u32,
    /// Zero-copy or copy.
    pub bind_mode: BindMode,
    /// need_wakeup.
    pub wakeup: Wakeup,
}

impl XskConfig {
    /// Defaults: 4096 frames of 2048 bytes, rings of 2048, auto modes.
    pub fn new(ifname: impl Into<String>) -> Self {
        Self {
            ifname: ifname.into(),
            frame_count: 4096,
            frame_size: 2048,
            ring_size: 2048,
            bind_mode: BindMode::Auto,
            wakeup: Wakeup::Auto,
        }
    }
}

/// Why an AF_XDP socket could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum AfXdpError {
    /// A size in [`XskConfig`] is not acceptable.
    #[error("bad AF_XDP configuration: {0}")]
    Config(String),
    /// The UMEM could not be created.
    #[error("creating UMEM ({frames} frames): {source}")]
    Umem {
        /// Frames asked for.
        frames: u32,
        /// xsk-rs's error.
        source: xsk_rs::umem::UmemCreateError,
    },
    /// No bind mode that was allowed worked.
    #[error("binding AF_XDP socket to {ifname}/{queue} ({tried}): {source}")]
    Bind {
        /// Interface.
        ifname: String,
        /// RX queue.
        queue: u32,
        /// Modes tried.
        tried: String,
        /// The last error.
        source: xsk_rs::socket::SocketCreateError,
    },
    /// The socket shares a UMEM that already has its rings (not how xgate builds them).
    #[error("AF_XDP socket on {ifname}/{queue} got no fill/completion rings")]
    NoRings {
        /// Interface.
        ifname: String,
        /// RX queue.
        queue: u32,
    },
    /// Putting the socket in `xsks` failed.
    #[error(transparent)]
    Steering(#[from] crate::bpf::SteeringError),
    /// A system call on the socket failed.
    #[error("AF_XDP socket {what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

fn set_cloexec(fd: i32) -> std::io::Result<()> {
    // SAFETY: fcntl on a descriptor we own, with integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// How a socket ended up bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// Zero-copy (else copy mode).
    pub zero_copy: bool,
    /// need_wakeup in force.
    pub need_wakeup: bool,
}

/// Free UMEM frames of one socket. Holds every descriptor it was built with, so giving one
/// back never allocates.
#[derive(Debug)]
pub struct FramePool {
    free: Vec<FrameDesc>,
}

impl FramePool {
    fn new(frames: Vec<FrameDesc>) -> Self {
        Self { free: frames }
    }
    /// A free frame, if any.
    pub fn alloc(&mut self) -> Option<FrameDesc> {
        self.free.pop()
    }
    /// Returns a frame. The pool's capacity is the UMEM's frame count, so this never grows it.
    pub fn free(&mut self, desc: FrameDesc) {
        debug_assert!(self.free.len() < self.free.capacity());
        self.free.push(desc);
    }
    /// Free frames.
    pub fn len(&self) -> usize {
        self.free.len()
    }
    /// No free frames.
    pub fn is_empty(&self) -> bool {
        self.free.is_empty()
    }
}

/// What [`XskQueue::try_send_with`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxOutcome {
    /// A frame of this many bytes went on the TX ring.
    Sent(usize),
    /// The writer had nothing to send (the frame went back to the pool).
    Nothing,
    /// The TX ring has no free slot; the writer was not called.
    RingFull,
    /// The pool has no free frame; the writer was not called.
    NoFrame,
}

/// One AF_XDP socket on one RX queue, with its UMEM, rings and free frames.
pub struct XskQueue {
    queue: u32,
    ring_size: u32,
    bound: Bound,
    tx: TxQueue,
    rx: RxQueue,
    fill: FillQueue,
    comp: CompQueue,
    pool: FramePool,
    /// Scratch descriptors for batched ring operations, allocated once.
    batch: Vec<FrameDesc>,
    /// Where the completion ring is read into: a ring's worth, filled once at start and
    /// overwritten by each read (reclaim runs every round; re-filling a ring's worth of
    /// descriptors each time cost 5% of the poller at saturation).
    completions: Box<[FrameDesc]>,
    umem: Umem,
}

impl std::fmt::Debug for XskQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskQueue")
            .field("queue", &self.queue)
            .field("bound", &self.bound)
            .field("free_frames", &self.pool.len())
            .finish_non_exhaustive()
    }
}

impl XskQueue {
    /// Creates the UMEM and the socket for `queue`, fills the fill ring with half the frames,
    /// and puts the socket in `xsks` at `queue`.
    pub fn open(config: &XskConfig, queue: u32, maps: &SteeringMaps) -> Result<Self, AfXdpError> {
        let q = Self::bind(config, queue)?;
        maps.insert_xsk(queue, q.raw_fd())?;
        Ok(q)
    }

    /// Creates the UMEM and socket without touching any map (the caller inserts
    /// [`raw_fd`](Self::raw_fd) itself).
    pub fn bind(config: &XskConfig, queue: u32) -> Result<Self, AfXdpError> {
        let bad = |what: String| AfXdpError::Config(what);
        let ring = QueueSize::new(config.ring_size)
            .map_err(|e| bad(format!("ring size {}: {e}", config.ring_size)))?;
        let frame_size = FrameSize::new(config.frame_size)
            .map_err(|e| bad(format!("frame size {}: {e}", config.frame_size)))?;
        let frames =
            NonZeroU32::new(config.frame_count).ok_or_else(|| bad("frame count 0".to_string()))?;
        if config.frame_count < 2 * config.ring_size {
            return Err(bad(format!(
                "{} frames cannot fill a ring of {} and keep as many for TX",
                config.frame_count, config.ring_size
            )));
        }
        let umem_config = UmemConfig::builder()
            .frame_size(frame_size)
            .fill_queue_size(ring)
            .comp_queue_size(ring)
            .build()
            .map_err(|e| bad(format!("UMEM: {e}")))?;
        let ifname: Interface = config
            .ifname
            .parse()
            .map_err(|_| bad(format!("interface name {:?}", config.ifname)))?;

        let copy_modes: &[bool] = match config.bind_mode {
            BindMode::Auto => &[true, false],
            BindMode::ZeroCopy => &[true],
            BindMode::Copy => &[false],
        };
        let wakeup_modes: &[bool] = match config.wakeup {
            Wakeup::Auto => &[true, false],
            Wakeup::On => &[true],
            Wakeup::Off => &[false],
        };

        let mut tried = Vec::new();
        let mut last_err = None;
        for &zero_copy in copy_modes {
            for &need_wakeup in wakeup_modes {
                let mut flags = if zero_copy {
                    BindFlags::XDP_ZEROCOPY
                } else {
                    BindFlags::XDP_COPY
                };
                if need_wakeup {
                    flags |= BindFlags::XDP_USE_NEED_WAKEUP;
                }
                let socket_config = SocketConfig::builder()
                    .rx_queue_size(ring)
                    .tx_queue_size(ring)
                    .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
                    .bind_flags(flags)
                    .build();
                // A fresh UMEM per attempt: a failed bind leaves libxdp's ring context
                // behind on the UMEM it was given.
                let (umem, descs) =
                    Umem::new(umem_config, frames, false).map_err(|source| AfXdpError::Umem {
                        frames: config.frame_count,
                        source,
                    })?;
                // SAFETY: the UMEM is not shared (fresh, one socket), which is the case the
                // constructor's contract allows without further conditions; libxdp's program
                // load is inhibited as well.
                let created = unsafe { xsk_rs::Socket::new(socket_config, &umem, &ifname, queue) };
                tried.push(format!(
                    "{}{}",
                    if zero_copy { "zero-copy" } else { "copy" },
                    if need_wakeup { "+need_wakeup" } else { "" }
                ));
                match created {
                    Ok((tx, rx, Some((fill, comp)))) => {
                        // libxdp opens the socket without SOCK_CLOEXEC: a child process
                        // would inherit it and keep it (and its xsks slot) alive after we
                        // close it, defeating the fail-safe.
                        set_cloexec(rx.fd().as_raw_fd()).map_err(|source| AfXdpError::Io {
                            what: "FD_CLOEXEC",
                            source,
                        })?;
                        let bound = Bound {
                            zero_copy,
                            need_wakeup,
                        };
                        let mut q = Self {
                            queue,
                            ring_size: config.ring_size,
                            bound,
                            tx,
                            rx,
                            fill,
                            comp,
                            pool: FramePool::new(descs),
                            batch: Vec::with_capacity(config.ring_size as usize),
                            completions: vec![FrameDesc::default(); config.ring_size as usize]
                                .into_boxed_slice(),
                            umem,
                        };
                        q.refill(config.ring_size as usize);
                        return Ok(q);
                    }
                    Ok((_, _, None)) => {
                        return Err(AfXdpError::NoRings {
                            ifname: config.ifname.clone(),
                            queue,
                        })
                    }
                    Err(e) => last_err = Some(e),
                }
            }
        }
        Err(AfXdpError::Bind {
            ifname: config.ifname.clone(),
            queue,
            tried: tried.join(", "),
            source: last_err.expect("at least one mode tried"),
        })
    }

    /// RX queue id.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Descriptors per ring.
    pub fn ring_size(&self) -> u32 {
        self.ring_size
    }

    /// How the socket is bound.
    pub fn bound(&self) -> Bound {
        self.bound
    }

    /// The socket's file descriptor (what `xsks` holds; pollable).
    pub fn raw_fd(&self) -> i32 {
        self.rx.fd().as_raw_fd()
    }

    /// Free frames in the pool.
    pub fn free_frames(&self) -> usize {
        self.pool.len()
    }

    /// Moves up to `max` frames from the pool to the fill ring; returns how many. Kicks the
    /// kernel when need_wakeup asks for it.
    pub fn refill(&mut self, max: usize) -> usize {
        let want = max.min(self.pool.len());
        let want = want.min(self.fill.nb_free(want as u32) as usize);
        if want == 0 {
            return 0;
        }
        self.batch.clear();
        for _ in 0..want {
            if let Some(d) = self.pool.alloc() {
                self.batch.push(d);
            }
        }
        // SAFETY: every descriptor came from this socket's pool, i.e. belongs to this UMEM
        // and is referenced by nothing else; once produced it belongs to the kernel until it
        // comes back on the RX ring.
        let n = unsafe { self.fill.produce(&self.batch) };
        for d in self.batch.drain(n..) {
            self.pool.free(d);
        }
        if n > 0 && self.bound.need_wakeup && self.fill.needs_wakeup() {
            let _ = self.fill.wakeup(self.rx.fd_mut(), 0);
        }
        n
    }

    /// Receives up to `max` frames, hands each one's bytes to `f`, then returns them to the
    /// pool and refills the fill ring. Returns the number received. No allocation.
    pub fn recv_batch(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> usize {
        let max = max.min(self.batch.capacity());
        self.batch.clear();
        self.batch.resize(max, FrameDesc::default());
        // SAFETY: the RX ring only carries descriptors of this socket's UMEM, which the
        // kernel hands back to us here.
        let n = unsafe { self.rx.consume(&mut self.batch[..max]) };
        for d in &self.batch[..n] {
            // SAFETY: `d` came off this socket's RX ring, so it is a frame of `self.umem`,
            // and nothing (kernel or user space) writes it until we give it back below.
            let data = unsafe { self.umem.data(d) };
            f(data.contents());
        }
        for d in self.batch.drain(..n) {
            self.pool.free(d);
        }
        self.batch.clear();
        if n > 0 {
            self.refill(n);
        }
        n
    }

    /// Waits up to `timeout_ms` for RX frames (need_wakeup sleep). Returns whether any are ready.
    pub fn poll_rx(&mut self, timeout_ms: i32) -> Result<bool, AfXdpError> {
        self.rx.poll(timeout_ms).map_err(|source| AfXdpError::Io {
            what: "poll",
            source,
        })
    }

    /// Writes one frame with `write` (which gets the frame's buffer and returns the length it
    /// wrote) and queues it on the TX ring. Returns false when no frame or TX slot is free.
    /// Call [`kick_tx`](Self::kick_tx) after a batch.
    pub fn send_with(&mut self, write: impl FnOnce(&mut [u8]) -> usize) -> bool {
        matches!(
            self.try_send_with(|buf| Some(write(buf))),
            TxOutcome::Sent(_)
        )
    }

    /// Like [`send_with`](Self::send_with), but says why nothing was sent: `write` is called
    /// only once a TX slot and a free frame are secured, so a producer such as
    /// `Engine::poll_transmit` never loses a frame to a full ring. `write` returns `None` (or
    /// `Some(0)`) when it has nothing to send. No allocation.
    pub fn try_send_with(&mut self, write: impl FnOnce(&mut [u8]) -> Option<usize>) -> TxOutcome {
        if self.tx.nb_free(1) == 0 {
            return TxOutcome::RingFull;
        }
        let Some(mut d) = self.pool.alloc() else {
            return TxOutcome::NoFrame;
        };
        let written = {
            // SAFETY: `d` came from the pool, so it is a frame of `self.umem` that neither the
            // kernel nor any other descriptor refers to.
            let mut data = unsafe { self.umem.data_mut(&mut d) };
            // Open the data segment to the whole frame, let `write` fill it, then set the
            // descriptor's length to what was written.
            let cap = {
                let mut cursor = data.cursor();
                let cap = cursor.buf_len();
                cursor.set_pos(cap);
                cap
            };
            let n = write(data.contents_mut()).unwrap_or(0).min(cap);
            data.cursor().set_pos(n);
            n
        };
        if written == 0 {
            self.pool.free(d);
            return TxOutcome::Nothing;
        }
        // SAFETY: `d` describes a frame of `self.umem` that we just wrote; after produce it
        // belongs to the kernel until it returns on the completion ring.
        let n = unsafe { self.tx.produce_one(&d) };
        if n == 0 {
            // Cannot happen after nb_free said there was a slot; give the frame back anyway.
            self.pool.free(d);
            return TxOutcome::RingFull;
        }
        TxOutcome::Sent(written)
    }

    /// Descriptors on the TX ring that the kernel has not consumed yet (no system call: it
    /// reads the ring's shared consumer position).
    pub fn tx_unsent(&mut self) -> u32 {
        self.ring_size
            .saturating_sub(self.tx.nb_free(self.ring_size))
    }

    /// Frames the kernel holds in the fill ring for future RX; zero means received frames are
    /// being dropped for lack of buffers.
    pub fn fill_ring_frames(&mut self) -> u32 {
        self.ring_size
            .saturating_sub(self.fill.nb_free(self.ring_size))
    }

    /// Whether [`kick_tx`](Self::kick_tx) would do anything useful now: the TX ring holds
    /// unsent descriptors and the kernel needs a system call to send them (always in copy
    /// mode, where `sendto` is what transmits, and each call sends a bounded batch; in
    /// zero-copy mode only when need_wakeup is off or the ring asks for it).
    pub fn wants_tx_kick(&mut self) -> bool {
        if self.tx_unsent() == 0 {
            return false;
        }
        !self.bound.zero_copy || !self.bound.need_wakeup || self.tx.needs_wakeup()
    }

    /// Copies `frame` into a UMEM frame and queues it on the TX ring.
    pub fn send(&mut self, frame: &[u8]) -> bool {
        self.send_with(|buf| {
            if frame.len() > buf.len() {
                return 0;
            }
            buf[..frame.len()].copy_from_slice(frame);
            frame.len()
        })
    }

    /// Tells the kernel to transmit what the TX ring holds (`sendto`, MSG_DONTWAIT). In copy
    /// mode this is always needed; with need_wakeup only when the ring says so. EAGAIN (which
    /// copy mode also returns after a batch of 32 frames when more are waiting), EBUSY,
    /// ENOBUFS and ENETDOWN are not errors: the descriptors stay on the ring for the next kick.
    /// The same kick made through io_uring was measured slower (`bench-results/tx-kick.md`).
    pub fn kick_tx(&mut self) -> Result<(), AfXdpError> {
        if !self.bound.need_wakeup || self.tx.needs_wakeup() || !self.bound.zero_copy {
            self.tx.wakeup().map_err(|source| AfXdpError::Io {
                what: "TX kick",
                source,
            })?;
        }
        Ok(())
    }

    /// Moves transmitted frames from the completion ring back to the pool; returns how many.
    pub fn reclaim(&mut self) -> usize {
        // SAFETY: the completion ring only returns descriptors of this UMEM that we produced
        // on the TX ring; the kernel is done with them.
        let n = unsafe { self.comp.consume(&mut self.completions[..]) };
        for &d in &self.completions[..n] {
            self.pool.free(d);
        }
        n
    }

    /// Kernel statistics of the socket (drops for lack of fill frames, invalid descriptors...).
    pub fn statistics(&self) -> Result<xsk_rs::socket::XdpStatistics, AfXdpError> {
        self.rx
            .fd()
            .xdp_statistics()
            .map_err(|source| AfXdpError::Io {
                what: "XDP_STATISTICS",
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each queue is handed to its own pinned poller thread, and steering state may be shared.
    #[test]
    fn queues_move_to_poller_threads() {
        fn send<T: Send>() {}
        send::<XskQueue>();
        send::<crate::bpf::Steering>();
        send::<crate::bpf::SteeringMaps>();
        send::<Poller>();
        send::<crate::gateway::Bypass>();
    }
}

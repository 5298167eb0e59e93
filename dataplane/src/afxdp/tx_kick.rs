//! The TX kick as an io_uring operation ([`TxKick::IoUring`](super::TxKick::IoUring) and
//! [`TxKick::IoUringSqpoll`](super::TxKick::IoUringSqpoll)).
//!
//! The kick is what `sendto(fd, NULL, 0, MSG_DONTWAIT)` does for an AF_XDP socket: the kernel's
//! `xsk_sendmsg` transmits a bounded batch from the TX ring (copy mode) or wakes the driver
//! (zero-copy). Here the same `sendmsg` is an `IORING_OP_SEND` of zero bytes with MSG_DONTWAIT
//! on the socket, flagged `IOSQE_CQE_SKIP_SUCCESS`: a kick that worked posts no completion, so
//! there is nothing to reap; only a failed one does, and it is read from the completion ring
//! in shared memory (no system call) at the next kick. MSG_DONTWAIT also makes io_uring answer
//! `-EAGAIN` in the completion instead of parking the request until the socket is writable, so
//! no request outlives its kick.
//!
//! The socket is *not* a registered (fixed) file: a ring holds its fixed files until its
//! asynchronous teardown, so the AF_XDP socket outlived `close` and binding the queue again
//! right after a gateway stopped failed (seen in `tests/tx_kick.rs`); it would also delay the
//! socket leaving `xsks` when the process dies. Looking the descriptor up per kick is what
//! `sendto` does too.
//!
//! - [`UringKick::new`] with `sqpoll: None`: one `io_uring_enter` per kick (submit, never
//!   wait). The ring is `SINGLE_ISSUER | DEFER_TASKRUN` when the kernel accepts it, created
//!   disabled and enabled by the first kick, so the issuer is the poller thread, not the
//!   thread that built the queue. That first kick also registers the ring's descriptor with
//!   the poller thread (`IORING_REGISTER_RING_FDS`), so that `io_uring_enter` skips the file
//!   lookup of the ring, which `sendto` has no counterpart of. Dropping the kick on that thread
//!   unregisters it; elsewhere the kernel drops it when the thread exits (a poller's queue is
//!   dropped after its thread ended).
//! - with `sqpoll: Some(..)`: a kernel thread polls the submission ring and issues the kick on
//!   its own CPU; the poller only writes an entry (a system call only when that thread went to
//!   sleep after its idle time). A kick still waiting in the submission ring is not doubled.
//!
//! Errors are those of the `sendto` kick (xsk-rs's `TxQueue::wakeup`): EAGAIN, EBUSY, ENOBUFS
//! and ENETDOWN mean "try again later" (the poller kicks again while the TX ring holds unsent
//! descriptors); any other error is returned. Frames sent by a kick come back on the AF_XDP
//! completion ring whichever way the kick was made, so reclaim does not change.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use io_uring::{opcode, squeue, types, IoUring};

/// Errors of a kick that only mean "try again later", as the `sendto` kick treats them.
pub(super) fn is_transient(errno: i32) -> bool {
    matches!(
        errno,
        libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::ENETDOWN | libc::EINTR
    )
}

/// Submission and completion entries: one kick is ever in flight, failed ones are reaped at the
/// next kick, so a handful is plenty.
const ENTRIES: u32 = 4;
const CQ_ENTRIES: u32 = 16;

/// The io_uring of one AF_XDP socket's TX kick.
pub(super) struct UringKick {
    ring: IoUring,
    /// The AF_XDP socket (owned by the `XskQueue` that owns this ring).
    fd: RawFd,
    /// Created disabled; enabled by the first kick, from the thread that will issue them all.
    disabled: bool,
    sqpoll: bool,
    /// The ring's index among the registered rings of the thread that registered it (by
    /// [`thread_mark`]), once registered.
    registered: Option<(u32, usize)>,
    /// Kicks that failed with a transient error.
    transient: u64,
}

impl std::fmt::Debug for UringKick {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringKick")
            .field("sqpoll", &self.sqpoll)
            .field("transient", &self.transient)
            .finish_non_exhaustive()
    }
}

impl Drop for UringKick {
    fn drop(&mut self) {
        if let Some((index, mark)) = self.registered {
            if mark == thread_mark() {
                unregister_ring_fd(self.ring.as_raw_fd(), index);
            }
        }
    }
}

impl UringKick {
    /// A ring that kicks `fd`. `sqpoll`: `Some((cpu, idle_ms))` for a submission-polling kernel
    /// thread (pinned to `cpu` when given) that sleeps after `idle_ms` without work.
    pub(super) fn new(fd: RawFd, sqpoll: Option<(Option<u32>, u32)>) -> io::Result<Self> {
        let (ring, disabled) = match sqpoll {
            Some((cpu, idle_ms)) => {
                let mut b = IoUring::builder();
                b.setup_cqsize(CQ_ENTRIES).setup_sqpoll(idle_ms);
                if let Some(cpu) = cpu {
                    b.setup_sqpoll_cpu(cpu);
                }
                (b.build(ENTRIES)?, false)
            }
            None => match IoUring::builder()
                .setup_cqsize(CQ_ENTRIES)
                .setup_single_issuer()
                .setup_defer_taskrun()
                .setup_r_disabled()
                .build(ENTRIES)
            {
                Ok(ring) => (ring, true),
                // Kernels before 6.1 refuse these flags; a plain ring kicks just as well.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (
                    IoUring::builder().setup_cqsize(CQ_ENTRIES).build(ENTRIES)?,
                    false,
                ),
                Err(e) => return Err(e),
            },
        };
        Ok(Self {
            ring,
            fd,
            disabled,
            sqpoll: sqpoll.is_some(),
            registered: None,
            transient: 0,
        })
    }

    /// Kicks that failed with a transient error so far.
    pub(super) fn transient_errors(&self) -> u64 {
        self.transient
    }

    /// Queues one zero-length send with MSG_DONTWAIT and submits it without waiting. Returns
    /// an error only for what the `sendto` kick would also fail on.
    pub(super) fn kick(&mut self) -> io::Result<()> {
        if self.disabled {
            self.ring.submitter().register_enable_rings()?;
            self.disabled = false;
            // Without it, kicks enter through the ring's descriptor: slower, not wrong.
            self.registered = register_ring_fd(self.ring.as_raw_fd())
                .ok()
                .map(|index| (index, thread_mark()));
        }
        // Failed kicks (successes post nothing).
        let mut fatal = None;
        for cqe in self.ring.completion() {
            let res = cqe.result();
            if res < 0 {
                if is_transient(-res) {
                    self.transient += 1;
                } else {
                    fatal.get_or_insert(io::Error::from_raw_os_error(-res));
                }
            }
        }
        if let Some(e) = fatal {
            return Err(e);
        }

        let mut sq = self.ring.submission();
        sq.sync();
        // A kick the kernel has not taken yet (the SQPOLL thread is behind, or the last enter
        // failed transiently) transmits what is on the TX ring when it runs: no second one.
        if sq.is_empty() {
            let entry = opcode::Send::new(types::Fd(self.fd), std::ptr::null(), 0)
                .flags(libc::MSG_DONTWAIT)
                .build()
                .flags(squeue::Flags::SKIP_SUCCESS);
            // SAFETY: the entry points at no memory (null buffer, length 0), and `fd` is the
            // socket of the `XskQueue` that owns this ring and drops it before the socket.
            if unsafe { sq.push(&entry) }.is_err() {
                // Cannot happen on an empty queue.
                return Ok(());
            }
        }
        let pending = sq.len();
        drop(sq);
        let submitted = match self.registered {
            // A registered index means something only to the thread that registered it.
            Some((index, mark)) if mark == thread_mark() => enter_registered(index, pending),
            _ => self.ring.submit(),
        };
        match submitted {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error().is_some_and(is_transient) => {
                self.transient += 1;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// Tells threads apart without a system call: the address of a thread-local.
fn thread_mark() -> usize {
    thread_local! {
        static MARK: u8 = const { 0 };
    }
    MARK.with(|m| m as *const u8 as usize)
}

/// `IORING_(UN)REGISTER_RING_FDS` and `IORING_ENTER_REGISTERED_RING` (linux/io_uring.h, 5.18).
const IORING_REGISTER_RING_FDS: libc::c_uint = 20;
const IORING_UNREGISTER_RING_FDS: libc::c_uint = 21;
const IORING_ENTER_REGISTERED_RING: libc::c_uint = 1 << 4;

/// `struct io_uring_rsrc_update`.
#[repr(C)]
struct RsrcUpdate {
    offset: u32,
    resv: u32,
    data: u64,
}

/// Registers `ring_fd` with the calling thread; returns its index. (io-uring's
/// `Submitter::register_ring_fd` keeps the index in a short-lived `Submitter`, which a ring
/// kept in a struct cannot hold on to.)
fn register_ring_fd(ring_fd: RawFd) -> io::Result<u32> {
    let mut up = RsrcUpdate {
        offset: u32::MAX, // any free slot
        resv: 0,
        data: ring_fd as u64,
    };
    // SAFETY: io_uring_register with a live ring descriptor and a pointer to one initialised
    // io_uring_rsrc_update, whose length (1) is passed; the kernel writes the slot into it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            ring_fd,
            IORING_REGISTER_RING_FDS,
            &mut up as *mut RsrcUpdate,
            1u32,
        )
    };
    match rc {
        1 => Ok(up.offset),
        rc if rc < 0 => Err(io::Error::last_os_error()),
        _ => Err(io::Error::other(
            "IORING_REGISTER_RING_FDS registered nothing",
        )),
    }
}

/// Undoes [`register_ring_fd`] on the thread that did it.
fn unregister_ring_fd(ring_fd: RawFd, index: u32) {
    let up = RsrcUpdate {
        offset: index,
        resv: 0,
        data: 0,
    };
    // SAFETY: io_uring_register with a live ring descriptor and a pointer to one initialised
    // io_uring_rsrc_update, whose length (1) is passed. A failure leaves the registration to
    // the thread's exit.
    unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            ring_fd,
            IORING_UNREGISTER_RING_FDS,
            &up as *const RsrcUpdate,
            1u32,
        )
    };
}

/// `io_uring_enter(index, to_submit, 0, IORING_ENTER_REGISTERED_RING)`: submits without
/// waiting through the calling thread's registered ring `index`.
fn enter_registered(index: u32, to_submit: usize) -> io::Result<usize> {
    // SAFETY: io_uring_enter with no argument pointer (null, size 0); `index` is a ring this
    // thread registered (kicks run on the thread that enabled and registered the ring).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_io_uring_enter,
            index,
            to_submit as libc::c_uint,
            0 as libc::c_uint,
            IORING_ENTER_REGISTERED_RING,
            std::ptr::null::<libc::c_void>(),
            0usize,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

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
//!   thread that built the queue.
//! - with `sqpoll: Some(..)`: a kernel thread polls the submission ring and issues the kick on
//!   its own CPU; the poller only writes an entry (a system call only when that thread went to
//!   sleep after its idle time). A kick still waiting in the submission ring is not doubled.
//!
//! Errors are those of the `sendto` kick (xsk-rs's `TxQueue::wakeup`): EAGAIN, EBUSY, ENOBUFS
//! and ENETDOWN mean "try again later" (the poller kicks again while the TX ring holds unsent
//! descriptors); any other error is returned. Frames sent by a kick come back on the AF_XDP
//! completion ring whichever way the kick was made, so reclaim does not change.

use std::io;
use std::os::fd::RawFd;

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
        drop(sq);
        match self.ring.submit() {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error().is_some_and(is_transient) => {
                self.transient += 1;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

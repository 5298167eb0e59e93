//! The kernel path's io_uring plumbing: the ring, what an operation's `user_data` says, and
//! the count of operations in flight.
//!
//! Completions are matched to connections by `user_data` = operation, slot index and the
//! slot's generation ([`user_data`]), so that a late completion of a closed connection is
//! recognised and never touches the next connection in the slot. [`Ring`] counts operations
//! whose final completion has not arrived (a multishot accept counts once, until its last
//! completion): nothing they may read or write can be freed while it is not zero.

use std::io;

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use crate::time::Duration;

/// Completions taken off the ring per batch (a stack array, no allocation).
pub(super) const REAP_BATCH: usize = 128;

/// What an in-flight operation is, in the top byte of its `user_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Accept = 1,
    Recv = 2,
    Send = 3,
    Cancel = 4,
    Close = 5,
    Timer = 6,
    /// A write-side shutdown linked behind a connection's last send.
    Shutdown = 7,
    /// The multishot poll on the upstream connections' ring (see `kernel::proxy`).
    UpstreamPoll = 8,
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
            7 => Op::Shutdown,
            8 => Op::UpstreamPoll,
            _ => return None,
        })
    }
}

pub(super) use crate::sys::user_data::GEN_MASK;

/// `user_data` (`sys::user_data`): this operation on slot `index` of generation `gen`.
pub(super) fn user_data(op: Op, index: u32, gen: u32) -> u64 {
    crate::sys::user_data::pack(op as u8, index, gen)
}

pub(super) fn split_user_data(ud: u64) -> (Option<Op>, u32, u32) {
    let (op, index, gen) = crate::sys::user_data::unpack(ud);
    (Op::from_u8(op), index, gen)
}

/// One completion: `user_data`, result, flags.
pub(super) type Completion = (u64, i32, u32);

/// The io_uring and its operations in flight.
pub(super) struct Ring {
    ring: IoUring,
    /// Operations submitted whose final completion has not arrived.
    inflight: usize,
    /// For the timeout operation, when `submit_with_args` timeouts are unsupported.
    timer: Box<types::Timespec>,
    timer_armed: bool,
}

impl Ring {
    /// A ring of `entries` submission entries (rounded up to a power of two, at least 8) and
    /// four times as many completion entries.
    pub(super) fn new(entries: u32) -> io::Result<Self> {
        let entries = entries.max(8).next_power_of_two();
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
        Ok(Ring {
            ring,
            inflight: 0,
            timer: Box::new(types::Timespec::new()),
            timer_armed: false,
        })
    }

    pub(super) fn io_uring(&self) -> &IoUring {
        &self.ring
    }

    /// Operations whose final completion has not arrived.
    pub(super) fn inflight(&self) -> usize {
        self.inflight
    }

    /// Queues an entry, submitting first when the queue is full. False if it could not be
    /// queued.
    pub(super) fn push(&mut self, entry: &squeue::Entry) -> bool {
        for _ in 0..2 {
            // SAFETY: every entry built in this module or its parent references either no
            // memory or memory whose lifetime is argued at the place the entry is built.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                self.inflight += 1;
                return true;
            }
            if self.ring.submit().is_err() {
                break;
            }
        }
        false
    }

    /// Queues a chain (entries linked with `IO_LINK` but the last) as a whole: submitting
    /// first to make room for all of it, so that a submission never cuts it (the first part
    /// would run unlinked). False if it could not be queued; nothing was then.
    pub(super) fn push_chain(&mut self, chain: &[squeue::Entry]) -> bool {
        for _ in 0..2 {
            // SAFETY: as in `push`: each entry's memory is argued where it is built.
            if unsafe { self.ring.submission().push_multiple(chain) }.is_ok() {
                self.inflight += chain.len();
                return true;
            }
            if self.ring.submit().is_err() {
                break;
            }
        }
        false
    }

    /// Whether a send can carry the write-side shutdown linked behind it: the kernel has
    /// IORING_OP_SHUTDOWN (5.11) and fails the link on a short `MSG_WAITALL` send (5.12),
    /// told here by an opcode of 5.15 (MKDIRAT): on an older kernel, a short send could be
    /// followed by the FIN and lose the rest of the answer.
    pub(super) fn links_shutdown(&self) -> bool {
        let mut probe = io_uring::Probe::new();
        self.ring.submitter().register_probe(&mut probe).is_ok()
            && probe.is_supported(opcode::Shutdown::CODE)
            && probe.is_supported(opcode::MkDirAt::CODE)
    }

    /// Submits what is queued. A no-op without a system call when nothing is queued and the
    /// kernel has no overflowed completions or task work waiting for one (the polling loop's
    /// common case). Err only for a failure other than a busy ring.
    pub(super) fn submit(&mut self) -> io::Result<()> {
        {
            let sq = self.ring.submission();
            if sq.is_empty() && !sq.cq_overflow() && !sq.taskrun() {
                return Ok(());
            }
        }
        match self.ring.submit() {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::EAGAIN)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Submits and sleeps in the kernel until a completion arrives or `wait` has passed.
    pub(super) fn submit_and_wait(&mut self, wait: Duration) -> io::Result<()> {
        let result = if self.ring.params().is_feature_ext_arg() {
            let ts = types::Timespec::from(wait);
            let args = types::SubmitArgs::new().timespec(&ts);
            self.ring.submitter().submit_with_args(1, &args)
        } else {
            if !self.timer_armed {
                *self.timer = types::Timespec::from(wait);
                // SAFETY: the timespec is boxed in `self.timer` and not changed while the
                // timeout is armed (`timer_armed`); `Drop` leaks the box if it may still be.
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

    /// Takes up to a batch of completions off the ring, counting the operations they end.
    /// Returns how many were taken; fewer than `REAP_BATCH` means the queue is empty.
    pub(super) fn reap(&mut self, batch: &mut [Completion; REAP_BATCH]) -> usize {
        let mut n = 0;
        let mut cq = self.ring.completion();
        for slot in batch.iter_mut() {
            let Some(cqe) = cq.next() else {
                break;
            };
            *slot = (cqe.user_data(), cqe.result(), cqe.flags());
            n += 1;
        }
        drop(cq);
        for &(ud, _, flags) in &batch[..n] {
            self.ended(ud, flags);
        }
        n
    }

    /// Counts the operation a completion ends (all but a multishot accept that goes on).
    fn ended(&mut self, ud: u64, flags: u32) {
        let (op, _, _) = split_user_data(ud);
        if !(op == Some(Op::Accept) && cqueue::more(flags)) {
            self.inflight = self.inflight.saturating_sub(1);
        }
        if op == Some(Op::Timer) {
            self.timer_armed = false;
        }
    }

    /// Cancels every operation in flight and waits (up to `limit`) for their completions.
    /// Returns the operations that never completed: what they may touch must then be leaked.
    pub(super) fn cancel_all_and_wait(&mut self, limit: std::time::Duration) -> usize {
        let cancel_all = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(user_data(Op::Cancel, 0, 0));
        let _ = self.push(&cancel_all);
        let deadline = std::time::Instant::now() + limit;
        while self.inflight > 0 && std::time::Instant::now() < deadline {
            let ts = types::Timespec::from(std::time::Duration::from_millis(50));
            let args = types::SubmitArgs::new().timespec(&ts);
            let _ = self.ring.submitter().submit_with_args(1, &args);
            let mut batch = [(0u64, 0i32, 0u32); REAP_BATCH];
            while self.reap(&mut batch) > 0 {}
        }
        self.inflight
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        if self.inflight > 0 {
            // The kernel may still read the timespec: leak rather than free under it.
            std::mem::forget(std::mem::replace(
                &mut self.timer,
                Box::new(types::Timespec::new()),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_round_trips_through_user_data() {
        for op in [
            Op::Accept,
            Op::Recv,
            Op::Send,
            Op::Cancel,
            Op::Close,
            Op::Timer,
            Op::Shutdown,
            Op::UpstreamPoll,
        ] {
            let ud = user_data(op, 7, GEN_MASK);
            assert_eq!(split_user_data(ud), (Some(op), 7, GEN_MASK));
        }
        assert_eq!(split_user_data(0).0, None);
    }
}

//! The upstream table's io_uring: what an operation's `user_data` says, and the count of
//! operations in flight.
//!
//! The kernel path's scheme (`kernel::ring`), with a connect and without accepts or timers:
//! `user_data` = operation, slot index and the slot's socket generation, so that a late
//! completion is recognised as belonging to an earlier socket of its slot. Every operation
//! here is single-shot, so each completion ends exactly one; [`Ring::inflight`] counts those
//! submitted whose completion has not been reaped, and nothing they may read or write can be
//! freed while it is not zero.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use io_uring::{squeue, types, IoUring};

/// Completions taken off the ring per batch (a stack array, no allocation).
pub(super) const REAP_BATCH: usize = 64;

/// What an in-flight operation is, in the top byte of its `user_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Connect = 1,
    Recv = 2,
    Send = 3,
    Cancel = 4,
    Close = 5,
}

impl Op {
    fn from_u8(v: u8) -> Option<Op> {
        Some(match v {
            1 => Op::Connect,
            2 => Op::Recv,
            3 => Op::Send,
            4 => Op::Cancel,
            5 => Op::Close,
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

/// One completion: `user_data` and result.
pub(super) type Completion = (u64, i32);

/// The io_uring and its operations in flight.
pub(super) struct Ring {
    ring: IoUring,
    /// Operations submitted (or queued) whose completion has not been reaped.
    inflight: usize,
}

impl Ring {
    /// A ring of `entries` submission entries (rounded up to a power of two, at least 8) and
    /// `cq_entries` completion entries (at least four times as many; the kernel clamps).
    ///
    /// Cooperative task running, as on the kernel path: a receive's data arrives in the
    /// sender's context (on loopback, the upstream's own send), and without `COOP_TASKRUN`
    /// io_uring interrupts this thread there and then with an inter-processor interrupt to
    /// post the completion, paid on both cores once per response. With it the completion
    /// waits as task work until this thread next enters the kernel; [`Ring::reap`] enters
    /// when the kernel's TASKRUN flag says work waits, and a thread asleep in poll(2) on the
    /// ring's descriptor is still woken to run it
    /// (`tests::ring_fd_is_readable_once_a_completion_is_ready`,
    /// `tests::flagged_task_work_is_posted_by_the_next_poll`). Kernels before 5.19
    /// refuse the flags: the ring is then made without them.
    pub(super) fn new(entries: u32, cq_entries: u32) -> io::Result<Self> {
        let entries = entries.max(8).next_power_of_two();
        let cq = cq_entries
            .max(entries.saturating_mul(4))
            .next_power_of_two();
        let ring = IoUring::builder()
            .setup_cqsize(cq)
            .setup_clamp()
            .setup_coop_taskrun()
            .setup_taskrun_flag()
            .build(entries)
            .or_else(|_| {
                IoUring::builder()
                    .setup_cqsize(cq)
                    .setup_clamp()
                    .build(entries)
            })?;
        Ok(Ring { ring, inflight: 0 })
    }

    /// Operations whose completion has not been reaped.
    pub(super) fn inflight(&self) -> usize {
        self.inflight
    }

    /// Queues an entry, submitting first when the queue is full. False if it could not be
    /// queued.
    ///
    /// # Safety
    /// Whatever memory the entry references (a buffer, a socket address) must stay valid and
    /// unmoved until its completion is reaped.
    pub(super) unsafe fn push(&mut self, entry: &squeue::Entry) -> bool {
        for _ in 0..2 {
            // SAFETY: the caller guarantees the entry's memory (this function's contract).
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

    /// Submits what is queued; a no-op without a system call when nothing is queued and no
    /// completion overflowed. Err only for a failure other than a busy ring.
    pub(super) fn submit(&mut self) -> io::Result<()> {
        {
            let sq = self.ring.submission();
            if sq.is_empty() && !sq.cq_overflow() {
                return Ok(());
            }
        }
        match self.ring.submit() {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::EAGAIN)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Takes up to a batch of completions off the ring, counting the operations they end.
    /// Returns how many were taken; fewer than `REAP_BATCH` means the queue is empty.
    pub(super) fn reap(&mut self, batch: &mut [Completion; REAP_BATCH]) -> usize {
        // Completions waiting as task work are posted when this thread enters the kernel:
        // one system call, only when the kernel flagged some (see `new`).
        if self.ring.submission().taskrun() {
            let _ = self.ring.submit();
        }
        let mut n = 0;
        for (slot, cqe) in batch.iter_mut().zip(self.ring.completion()) {
            *slot = (cqe.user_data(), cqe.result());
            n += 1;
        }
        self.inflight = self.inflight.saturating_sub(n);
        n
    }

    /// Whether the kernel says completions wait as task work (tests only).
    #[cfg(test)]
    pub(super) fn task_work_flagged(&mut self) -> bool {
        self.ring.submission().taskrun()
    }

    /// Completions posted and not yet reaped (tests only).
    #[cfg(test)]
    pub(super) fn posted(&mut self) -> usize {
        self.ring.completion().len()
    }

    /// Submits what is queued and waits (up to `limit`) until every operation has completed,
    /// dropping the completions. Returns the operations still in flight: what they may touch
    /// must then be leaked.
    pub(super) fn drain(&mut self, limit: std::time::Duration) -> usize {
        let deadline = std::time::Instant::now() + limit;
        let mut batch = [(0u64, 0i32); REAP_BATCH];
        while self.inflight > 0 && std::time::Instant::now() < deadline {
            if self.ring.params().is_feature_ext_arg() {
                let ts = types::Timespec::from(std::time::Duration::from_millis(20));
                let args = types::SubmitArgs::new().timespec(&ts);
                let _ = self.ring.submitter().submit_with_args(1, &args);
            } else {
                let _ = self.ring.submit();
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            while self.reap(&mut batch) > 0 {}
        }
        self.inflight
    }
}

impl AsRawFd for Ring {
    fn as_raw_fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_round_trips_through_user_data() {
        for op in [Op::Connect, Op::Recv, Op::Send, Op::Cancel, Op::Close] {
            let ud = user_data(op, 7, GEN_MASK);
            assert_eq!(split_user_data(ud), (Some(op), 7, GEN_MASK));
        }
        assert_eq!(split_user_data(0).0, None);
    }
}

//! The kernel path's upstream side ([`UpstreamSide`]): the forwarder and its own io_uring of
//! upstream connections, built when the first request is routed upstream.
//!
//! Waking: the path sleeps in its own ring; a multishot poll on the upstream ring's
//! descriptor, queued in that ring, completes whenever upstream completions are waiting, so
//! an upstream answer wakes the path at once. Each turn reaps the upstream ring without a
//! system call and moves the client connections its events concern.

use std::net::SocketAddr;
use std::os::fd::RawFd;

use io_uring::{cqueue, opcode, types};

use super::ring::{user_data, Op};
use super::KernelPath;
use crate::proxy::forwarder::{ForwarderStats, UpstreamServerState};
use crate::time::Instant;
use crate::upstream::UpstreamSideConfig;

impl KernelPath {
    /// Sets how the upstream side will be built (before serving: a gateway passes the
    /// process's hash key). Without it, the first request routed upstream builds it with the
    /// defaults and a key of this path's own.
    pub fn configure_proxy(&mut self, config: UpstreamSideConfig) {
        self.upstream = crate::upstream::UpstreamSide::new(Some(config));
    }

    /// The requests the upstream side answered itself (503, 502).
    pub fn forwarder_stats(&self) -> ForwarderStats {
        self.upstream
            .built_ref()
            .map(|f| f.stats())
            .unwrap_or_default()
    }

    /// Each upstream server as this path sees it (allocates: for the status).
    pub fn upstream_states(&self) -> Vec<UpstreamServerState> {
        let mut out = Vec::new();
        if let Some(f) = self.upstream.built_ref() {
            f.snapshot(self.now(), &mut out);
        }
        out
    }

    /// Reaps the upstream ring and moves the client connections its events concern; re-arms
    /// the wake-up poll. Called every turn.
    pub(super) fn turn_upstream(&mut self, now: Instant) {
        let ready = self.upstream.take_ready(now);
        for &slot in &ready {
            self.pump(slot as usize, now);
        }
        self.upstream.put_back(ready);
        self.arm_upstream_poll();
    }

    /// Runs the exchanges' deadlines and the idle connections' expiry (at the sweep).
    pub(super) fn sweep_upstream(&mut self, now: Instant) {
        let due = self.upstream.take_due(now);
        for &slot in &due {
            self.pump(slot as usize, now);
        }
        self.upstream.put_back(due);
    }

    /// Sends what the client connections wrote for their upstreams.
    pub(super) fn flush_upstream(&mut self) {
        if self.upstream.flush().is_err() {
            self.stats.errors.submit += 1;
        }
    }

    /// The wake-up poll's completion: re-armed at the end of the turn once it has ended.
    pub(super) fn on_upstream_poll(&mut self, flags: u32) {
        if !cqueue::more(flags) {
            self.upstream_poll_armed = false;
        }
    }

    fn arm_upstream_poll(&mut self) {
        let Some(fd) = self.upstream.ring_fd() else {
            return;
        };
        if self.upstream_poll_armed {
            return;
        }
        let entry = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(user_data(Op::UpstreamPoll, 0, 0));
        if self.push(&entry) {
            self.upstream_poll_armed = true;
        }
    }

    /// The client's address, for `X-Forwarded-For` and the pool's consistent hashing.
    pub(super) fn client_addr(fd: RawFd) -> SocketAddr {
        crate::sys::socket::peer_addr(fd).unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)))
    }
}

//! The kernel path's upstream side: its [`Forwarder`] over a table of upstream connections
//! ([`UpstreamConns`], an io_uring of its own), built when the first request is routed
//! upstream (a gateway without `[[upstream]]` never opens it).
//!
//! Waking: the path sleeps in its own ring; a multishot poll on the upstream ring's
//! descriptor, queued in that ring, completes whenever upstream completions are waiting, so
//! an upstream answer wakes the path at once. Each turn reaps the upstream ring without a
//! system call and moves the client connections its events concern.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use io_uring::{cqueue, opcode, types};

use super::ring::{user_data, Op};
use super::KernelPath;
use crate::proxy::balance::HashKey;
use crate::proxy::forwarder::{Forwarder, UpstreamEvent as Event};
use crate::time::Instant;
use crate::upstream::{UpstreamConns, UpstreamConnsConfig, UpstreamEvent};

/// What the kernel path's upstream side is made with.
#[derive(Debug, Clone)]
pub struct KernelProxyConfig {
    pub conns: UpstreamConnsConfig,
    /// Consistent hashing's key: the same on every serving thread of the process.
    pub hash_key: HashKey,
}

/// The upstream side once built, with what the turn needs beside it.
pub(super) struct KernelProxy {
    pub(super) forwarder: Forwarder<UpstreamConns>,
    events: Vec<UpstreamEvent>,
    due: Vec<u32>,
    /// The multishot poll on the upstream ring's descriptor is in flight.
    poll_armed: bool,
}

impl KernelProxy {
    fn ring_fd(&self) -> RawFd {
        self.forwarder.table().ring_fd()
    }
}

impl KernelPath {
    /// Sets how the upstream side will be built (before serving; a gateway with `[[upstream]]`
    /// calls it with the process's hash key). Without it, the first request routed upstream
    /// builds it with the defaults and a key of this path's own.
    pub fn configure_proxy(&mut self, config: KernelProxyConfig) {
        self.proxy_config = Some(config);
    }

    /// The upstream side, built on first use; `None` if its ring cannot be made (the
    /// requests routed upstream then get 502).
    pub(super) fn proxy(&mut self) -> Option<&mut KernelProxy> {
        if self.proxy.is_none() && !self.proxy_failed {
            match self.build_proxy() {
                Ok(p) => self.proxy = Some(p),
                Err(e) => {
                    self.proxy_failed = true;
                    tracing::error!(error = %e, "kernel path: the upstream connection table could not be made; requests routed upstream get 502");
                }
            }
        }
        self.proxy.as_mut()
    }

    fn build_proxy(&self) -> io::Result<KernelProxy> {
        let config = match &self.proxy_config {
            Some(c) => c.clone(),
            None => {
                let mut key = [0u8; 16];
                crate::sys::random_bytes(&mut key)?;
                KernelProxyConfig {
                    conns: UpstreamConnsConfig::default(),
                    hash_key: HashKey(key),
                }
            }
        };
        let conns = UpstreamConns::new(config.conns)?;
        Ok(KernelProxy {
            forwarder: Forwarder::new(conns, config.hash_key),
            events: Vec::with_capacity(256),
            due: Vec::with_capacity(256),
            poll_armed: false,
        })
    }

    /// Reaps the upstream ring and moves the client connections its events concern; re-arms
    /// the wake-up poll. Called every turn.
    pub(super) fn turn_upstream(&mut self, now: Instant) {
        let Some(p) = self.proxy.as_mut() else {
            return;
        };
        let mut events = std::mem::take(&mut p.events);
        events.clear();
        p.forwarder.table_mut().poll(&mut events);
        for e in &events {
            let id = e.id();
            let Some(p) = self.proxy.as_mut() else {
                break;
            };
            let Some(owner) = p.forwarder.table().owner(id) else {
                continue;
            };
            let kind = match e {
                UpstreamEvent::Connected(_) => Event::Connected,
                UpstreamEvent::ConnectFailed(..) => Event::ConnectFailed,
                UpstreamEvent::Received(_) | UpstreamEvent::Sent(_) => Event::Progress,
                UpstreamEvent::Eof(_) => Event::Eof,
                UpstreamEvent::Reset(..) => Event::Reset,
            };
            let slot = owner as usize;
            if p.forwarder.on_upstream(slot, id, kind, now) {
                self.pump(slot, now);
            }
        }
        if let Some(p) = self.proxy.as_mut() {
            p.events = events;
        }
        self.arm_upstream_poll();
    }

    /// Runs the exchanges' deadlines and the idle connections' expiry (at the sweep).
    pub(super) fn sweep_upstream(&mut self, now: Instant) {
        let Some(p) = self.proxy.as_mut() else {
            return;
        };
        p.forwarder.table_mut().expire_idle(now);
        let mut due = std::mem::take(&mut p.due);
        due.clear();
        p.forwarder.sweep(now, &mut due);
        for &slot in &due {
            self.pump(slot as usize, now);
        }
        if let Some(p) = self.proxy.as_mut() {
            p.due = due;
        }
    }

    /// Sends what the client connections wrote for their upstreams.
    pub(super) fn flush_upstream(&mut self) {
        if let Some(p) = self.proxy.as_mut() {
            if p.forwarder.table_mut().flush().is_err() {
                self.stats.errors.submit += 1;
            }
        }
    }

    /// The client connection in `slot` is gone: its exchange, if any, is abandoned.
    pub(super) fn close_upstream(&mut self, slot: usize, now: Instant) {
        if let Some(p) = self.proxy.as_mut() {
            p.forwarder.close(slot, now);
        }
    }

    /// The wake-up poll's completion: re-armed at the end of the turn once it has ended.
    pub(super) fn on_upstream_poll(&mut self, flags: u32) {
        if !cqueue::more(flags) {
            if let Some(p) = self.proxy.as_mut() {
                p.poll_armed = false;
            }
        }
    }

    fn arm_upstream_poll(&mut self) {
        let Some(p) = self.proxy.as_ref() else {
            return;
        };
        if p.poll_armed {
            return;
        }
        let entry = opcode::PollAdd::new(types::Fd(p.ring_fd()), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(user_data(Op::UpstreamPoll, 0, 0));
        if self.push(&entry) {
            if let Some(p) = self.proxy.as_mut() {
                p.poll_armed = true;
            }
        }
    }

    /// The client's address, for `X-Forwarded-For` and the pool's consistent hashing.
    pub(super) fn client_addr(fd: RawFd) -> SocketAddr {
        crate::sys::socket::peer_addr(fd).unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)))
    }
}

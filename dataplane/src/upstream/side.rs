//! A serving thread's upstream side, as both paths hold it: the core's
//! [`Forwarder`] over this thread's [`UpstreamConns`], built when the first request is routed
//! upstream (a gateway without `[[route]]` never opens the ring), and the translation of the
//! table's completions into the forwarder's events.
//!
//! The owner drives it from its loop: [`UpstreamSide::take_ready`] each round (the client
//! connections whose upstream moved, to be run again), [`UpstreamSide::take_due`] at its
//! deadline sweep, [`UpstreamSide::flush`] before it sleeps or submits, and it sleeps on
//! [`UpstreamSide::ring_fd`] beside its own descriptors.

use std::io;
use std::os::fd::RawFd;

use super::{UpstreamConns, UpstreamConnsConfig, UpstreamEvent};
use std::sync::Arc;

use crate::proxy::balance::HashKey;
use crate::proxy::forwarder::{Forwarder, UpstreamEvent as Event};
use crate::proxy::health::HealthBoard;
use crate::time::Instant;

/// What a thread's upstream side is made with.
#[derive(Debug, Clone)]
pub struct UpstreamSideConfig {
    pub conns: UpstreamConnsConfig,
    /// Consistent hashing's key: the same on every serving thread of the process.
    pub hash_key: HashKey,
    /// The active health checks' verdicts, shared with the checker (none without checks).
    pub health: Option<Arc<HealthBoard>>,
}

impl UpstreamSideConfig {
    /// The default table and a key of its own (for a thread used alone, as in tests).
    pub fn with_random_key() -> io::Result<Self> {
        let mut key = [0u8; 16];
        crate::sys::random_bytes(&mut key)?;
        Ok(UpstreamSideConfig {
            conns: UpstreamConnsConfig::default(),
            hash_key: HashKey(key),
            health: None,
        })
    }
}

/// See the module documentation.
pub struct UpstreamSide {
    config: Option<UpstreamSideConfig>,
    forwarder: Option<Forwarder<UpstreamConns>>,
    /// Building failed once (logged): requests routed upstream get 502 from then on.
    failed: bool,
    events: Vec<UpstreamEvent>,
    ready: Vec<u32>,
}

impl UpstreamSide {
    /// `None`: built with the defaults and a key of its own when first needed.
    pub fn new(config: Option<UpstreamSideConfig>) -> Self {
        UpstreamSide {
            config,
            forwarder: None,
            failed: false,
            events: Vec::new(),
            ready: Vec::new(),
        }
    }

    /// The forwarder, built on first use; `None` when its ring could not be made.
    pub fn get(&mut self) -> Option<&mut Forwarder<UpstreamConns>> {
        if self.forwarder.is_none() && !self.failed {
            match self.build() {
                Ok(f) => self.forwarder = Some(f),
                Err(e) => {
                    self.failed = true;
                    tracing::error!(error = %e, "the upstream connection table could not be made: requests routed upstream get 502");
                }
            }
        }
        self.forwarder.as_mut()
    }

    /// The forwarder if it was built.
    pub fn built(&mut self) -> Option<&mut Forwarder<UpstreamConns>> {
        self.forwarder.as_mut()
    }

    pub fn built_ref(&self) -> Option<&Forwarder<UpstreamConns>> {
        self.forwarder.as_ref()
    }

    fn build(&mut self) -> io::Result<Forwarder<UpstreamConns>> {
        let config = match self.config.take() {
            Some(c) => c,
            None => UpstreamSideConfig::with_random_key()?,
        };
        let conns = UpstreamConns::new(config.conns.clone())?;
        self.events = Vec::with_capacity(256);
        self.ready = Vec::with_capacity(256);
        let mut forwarder = Forwarder::new(conns, config.hash_key);
        if let Some(board) = config.health {
            forwarder.set_health_board(board);
        }
        Ok(forwarder)
    }

    /// The table's descriptor, readable when its completions wait.
    pub fn ring_fd(&self) -> Option<RawFd> {
        self.forwarder.as_ref().map(|f| f.table().ring_fd())
    }

    /// Reaps the table's completions, hands them to the forwarder, and returns the client
    /// connections (slots) to run again; give the vector back with [`put_back`](Self::put_back).
    pub fn take_ready(&mut self, now: Instant) -> Vec<u32> {
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        let Some(f) = self.forwarder.as_mut() else {
            return ready;
        };
        self.events.clear();
        f.table_mut().poll(&mut self.events);
        for e in &self.events {
            let id = e.id();
            let Some(owner) = f.table().owner(id) else {
                continue;
            };
            let event = match e {
                UpstreamEvent::Connected(_) => Event::Connected,
                UpstreamEvent::ConnectFailed(..) => Event::ConnectFailed,
                UpstreamEvent::Received(_) | UpstreamEvent::Sent(_) => Event::Progress,
                UpstreamEvent::Eof(_) => Event::Eof,
                UpstreamEvent::Reset(..) => Event::Reset,
            };
            let slot = owner as usize;
            if f.on_upstream(slot, id, event, now) && ready.last() != Some(&(slot as u32)) {
                ready.push(slot as u32);
            }
        }
        ready
    }

    /// The exchanges' deadlines and the idle connections' expiry at `now`: the client
    /// connections to run again (give the vector back with [`put_back`](Self::put_back)).
    pub fn take_due(&mut self, now: Instant) -> Vec<u32> {
        let mut due = std::mem::take(&mut self.ready);
        due.clear();
        if let Some(f) = self.forwarder.as_mut() {
            f.table_mut().expire_idle(now);
            f.sweep(now, &mut due);
        }
        due
    }

    /// Returns the vector [`take_ready`](Self::take_ready) or [`take_due`](Self::take_due)
    /// lent, so its room is reused.
    pub fn put_back(&mut self, v: Vec<u32>) {
        self.ready = v;
    }

    /// Submits what the client connections wrote for their upstreams.
    pub fn flush(&mut self) -> io::Result<()> {
        match self.forwarder.as_mut() {
            Some(f) => f.table_mut().flush(),
            None => Ok(()),
        }
    }

    /// The client connection in `slot` is gone: its exchange, if any, is abandoned.
    pub fn close(&mut self, slot: usize, now: Instant) {
        if let Some(f) = self.forwarder.as_mut() {
            f.close(slot, now);
        }
    }
}

//! Per-port counters of one path (a bypass engine or the kernel path): connections live and
//! taken, requests answered. `xgate status` shows them per port and per path.
//!
//! A connection is given its port's [`TallySlot`] once, when it opens, so counting a request
//! is one add into a small array: no lookup and no allocation per request. The table grows
//! the first time a port is seen (the ports a gateway serves are few and fixed by its
//! configuration) and stops at [`MAX_TALLIED_PORTS`]: further ports share one entry with
//! port 0, so a misconfiguration cannot grow it without bound.

use serde::{Deserialize, Serialize};

/// Distinct ports counted separately; more are counted together under port 0.
pub const MAX_TALLIED_PORTS: usize = 64;

/// One port's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortCount {
    /// The local port; 0 for the shared entry of ports beyond [`MAX_TALLIED_PORTS`].
    pub port: u16,
    /// Connections open now.
    pub live: u64,
    /// Connections taken so far.
    pub total: u64,
    /// HTTP requests accepted so far.
    pub requests: u64,
}

/// Where a connection's counts go: an index into its path's [`PortTally`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TallySlot(u8);

/// The counters of one path, by port.
#[derive(Debug, Clone, Default)]
pub struct PortTally {
    ports: Vec<PortCount>,
    requests: u64,
}

impl PortTally {
    /// A tally with room reserved for the ports a path is configured with.
    pub fn with_ports(ports: impl IntoIterator<Item = u16>) -> Self {
        let mut t = PortTally::default();
        for p in ports {
            t.slot(p);
        }
        t
    }

    /// The slot of `port`, added on first sight.
    pub fn slot(&mut self, port: u16) -> TallySlot {
        if let Some(i) = self.ports.iter().position(|c| c.port == port) {
            return TallySlot(i as u8);
        }
        if self.ports.len() < MAX_TALLIED_PORTS {
            self.ports.push(PortCount {
                port,
                ..PortCount::default()
            });
            return TallySlot((self.ports.len() - 1) as u8);
        }
        // Full: the shared entry (port 0), made once by taking the last place.
        if let Some(i) = self.ports.iter().position(|c| c.port == 0) {
            return TallySlot(i as u8);
        }
        let last = self.ports.len() - 1;
        let folded = self.ports[last];
        self.ports[last] = PortCount { port: 0, ..folded };
        TallySlot(last as u8)
    }

    /// A connection of `slot` opened.
    /// The port of a slot made by [`slot`](Self::slot) (0 for one this tally did not make).
    pub fn port_of(&self, slot: TallySlot) -> u16 {
        self.ports.get(usize::from(slot.0)).map_or(0, |c| c.port)
    }

    pub fn opened(&mut self, slot: TallySlot) {
        if let Some(c) = self.ports.get_mut(usize::from(slot.0)) {
            c.live += 1;
            c.total += 1;
        }
    }

    /// A connection of `slot` closed.
    pub fn closed(&mut self, slot: TallySlot) {
        if let Some(c) = self.ports.get_mut(usize::from(slot.0)) {
            c.live = c.live.saturating_sub(1);
        }
    }

    /// `n` more requests accepted on a connection of `slot`.
    pub fn answered(&mut self, slot: TallySlot, n: u64) {
        if n == 0 {
            return;
        }
        self.requests += n;
        if let Some(c) = self.ports.get_mut(usize::from(slot.0)) {
            c.requests += n;
        }
    }

    /// Requests accepted on every port.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    pub fn counts(&self) -> &[PortCount] {
        &self.ports
    }
}

/// Sums the tallies of several engines (one per RX queue) by port, into `into` (reused).
pub fn merge(into: &mut Vec<PortCount>, tallies: &[&[PortCount]]) {
    into.clear();
    for counts in tallies {
        for c in *counts {
            match into.iter_mut().find(|m| m.port == c.port) {
                Some(m) => {
                    m.live += c.live;
                    m.total += c.total;
                    m.requests += c.requests;
                }
                None => into.push(*c),
            }
        }
    }
    into.sort_unstable_by_key(|c| c.port);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_connections_and_requests_per_port() {
        let mut t = PortTally::with_ports([80, 443]);
        let a = t.slot(443);
        let b = t.slot(80);
        t.opened(a);
        t.opened(a);
        t.opened(b);
        t.answered(a, 3);
        t.answered(b, 1);
        t.closed(a);
        assert_eq!(t.requests(), 4);
        assert_eq!(
            t.counts(),
            &[
                PortCount {
                    port: 80,
                    live: 1,
                    total: 1,
                    requests: 1
                },
                PortCount {
                    port: 443,
                    live: 1,
                    total: 2,
                    requests: 3
                }
            ]
        );
    }

    #[test]
    fn ports_beyond_the_bound_share_one_entry() {
        let mut t = PortTally::default();
        for p in 1..=(MAX_TALLIED_PORTS as u16 + 10) {
            let s = t.slot(p);
            t.opened(s);
            t.answered(s, 1);
        }
        assert_eq!(t.counts().len(), MAX_TALLIED_PORTS);
        let shared = t.counts().iter().find(|c| c.port == 0).unwrap();
        // The port that gave up its place plus the ten beyond the bound.
        assert_eq!((shared.total, shared.requests), (11, 11));
        assert_eq!(t.requests(), MAX_TALLIED_PORTS as u64 + 10);
        let total: u64 = t.counts().iter().map(|c| c.total).sum();
        assert_eq!(total, MAX_TALLIED_PORTS as u64 + 10, "nothing lost");
    }

    #[test]
    fn merge_sums_by_port_and_sorts() {
        let mut a = PortTally::default();
        let s = a.slot(8080);
        a.opened(s);
        a.answered(s, 5);
        let mut b = PortTally::default();
        let s = b.slot(8080);
        b.opened(s);
        b.answered(s, 2);
        let s = b.slot(81);
        b.opened(s);
        let mut out = vec![PortCount::default(); 7];
        merge(&mut out, &[a.counts(), b.counts()]);
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].port, out[0].total), (81, 1));
        assert_eq!((out[1].port, out[1].total, out[1].requests), (8080, 2, 7));
    }
}

//! What path MTU messages taught about each destination, for the connections that come after
//! (RFC 1191 §5 and RFC 8201 §5.2 associate a path MTU with the destination; Linux keeps it
//! in the route for ten minutes, `ip_rt_mtu_expires`): a new connection to a client whose
//! path was found smaller starts with that MSS instead of losing its first full-sized flight
//! to the same black hole.
//!
//! A direct-mapped table of [`CAPACITY`] slots chosen by a keyed hash of the address,
//! allocated once: an entry that collides replaces the older one, so the table's memory never
//! grows, and an attacker (who must get a quote of its own connection past RFC 5927's checks
//! to write a slot) can at worst evict entries, which only makes their destinations learn
//! again. Entries expire after [`LIFETIME`]; the MSS is never raised by the table (RFC 4821
//! probing is not done), only forgotten.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;

use crate::time::{Duration, Instant};

/// Destinations remembered per endpoint (one per RX queue).
pub const CAPACITY: usize = 1024;

/// How long a learned MSS holds: Linux's `ip_rt_mtu_expires` (RFC 1191 §6.3's ten minutes
/// before a larger MTU may be tried).
pub const LIFETIME: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy)]
struct Entry {
    addr: IpAddr,
    mss: u16,
    until: Instant,
}

/// See the module documentation.
#[derive(Debug)]
pub(super) struct PmtuCache {
    slots: Vec<Option<Entry>>,
    hasher: RandomState,
}

impl PmtuCache {
    pub(super) fn new() -> Self {
        PmtuCache {
            slots: vec![None; CAPACITY],
            hasher: RandomState::new(),
        }
    }

    fn slot(&self, addr: IpAddr) -> usize {
        (self.hasher.hash_one(addr) as usize) % CAPACITY
    }

    /// `addr`'s path takes segments of `mss` at most, learned `now`.
    pub(super) fn learn(&mut self, addr: IpAddr, mss: u16, now: Instant) {
        let i = self.slot(addr);
        self.slots[i] = Some(Entry {
            addr,
            mss,
            until: now + LIFETIME,
        });
    }

    /// The MSS learned for `addr` and not yet expired.
    pub(super) fn mss_for(&self, addr: IpAddr, now: Instant) -> Option<u16> {
        match self.slots[self.slot(addr)] {
            Some(e) if e.addr == addr && now < e.until => Some(e.mss),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_holds_for_its_lifetime_and_for_its_address_alone() {
        let mut c = PmtuCache::new();
        let a: IpAddr = "10.0.0.2".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        let t0 = Instant::from_secs(10);
        c.learn(a, 1160, t0);
        assert_eq!(c.mss_for(a, t0), Some(1160));
        assert_eq!(c.mss_for(b, t0), None);
        assert_eq!(
            c.mss_for(a, t0 + LIFETIME - Duration::from_secs(1)),
            Some(1160)
        );
        assert_eq!(c.mss_for(a, t0 + LIFETIME), None, "expired");
        c.learn(a, 1000, t0);
        assert_eq!(c.mss_for(a, t0), Some(1000), "the latest lesson");
    }

    #[test]
    fn the_table_never_grows_and_a_colliding_entry_replaces_the_older() {
        let mut c = PmtuCache::new();
        let now = Instant::from_secs(1);
        for i in 0..(4 * CAPACITY) as u32 {
            c.learn(IpAddr::from(std::net::Ipv4Addr::from(i)), 1200, now);
        }
        assert_eq!(c.slots.len(), CAPACITY);
        let kept = (0..(4 * CAPACITY) as u32)
            .filter(|&i| {
                c.mss_for(IpAddr::from(std::net::Ipv4Addr::from(i)), now)
                    .is_some()
            })
            .count();
        assert!(kept <= CAPACITY, "{kept}");
        assert!(kept > CAPACITY / 2, "most slots hold someone: {kept}");
    }
}

//! The SYN cache (FreeBSD's syncache, Linux's request sockets): a SYN that arrives while the
//! endpoint is not flooded gets a small entry holding exactly what it asked for (MSS, window
//! scale, SACK, its TSval), its SYN-ACK is sent from the entry and retransmitted on a timer,
//! and the handshake-completing ACK that matches the entry creates the connection with those
//! options. A cookie (`syncookie.rs`) is still the ISN of every SYN-ACK, so an ACK whose entry
//! is gone (expired, or never made) completes as a cookie ACK, with the options the cookie
//! could keep.
//!
//! # The bound
//!
//! `capacity` entries (`TcpConfig::syn_cache`), allocated once, in buckets of
//! [`BUCKET_WAYS`] chosen by a keyed hash of the flow: a blind attacker cannot aim at one
//! bucket, and one bucket holds at most [`BUCKET_WAYS`] entries whatever it is sent. Nothing is
//! allocated per SYN. The deadlines sit in an indexed heap sized for the capacity.
//!
//! # When a SYN gets an entry
//!
//! A SYN is cached when its bucket has a free way *and* fewer than `TcpConfig::syn_cache_rate`
//! SYNs were cached in the current second (a per-second budget, like the RFC 5961 challenge-ACK
//! one). Otherwise it gets today's stateless cookie SYN-ACK and `syn_cache_overflows` counts
//! it: a flood fills the cache at most at the budget's rate, its entries expire after their
//! retransmissions (nothing of an attacker's is kept longer than a genuine entry), and beyond
//! that the endpoint is exactly as stateless as with cookies alone.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use super::deadlines::Deadlines;
use crate::tcp::challenge::ChallengeLimiter;
use crate::tcp::FlowKey;
use crate::time::Instant;
use crate::wire::{EthernetAddress, FrameAddrs, SeqNumber, VlanTag};

/// Entries per hash bucket: the most one bucket can hold.
pub const BUCKET_WAYS: usize = 8;

/// A SYN-RECEIVED flow: what its SYN asked for and what we answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SynEntry {
    pub flow: FlowKey,
    /// Link-layer addressing of the SYN-ACK (the SYN's, reversed); its IP addresses are the
    /// flow's, kept once (`reply_addrs`).
    pub reply_link: LinkAddrs,
    /// The client's ISN (IRS).
    pub irs: SeqNumber,
    /// Our ISN (ISS): the cookie for this SYN.
    pub iss: SeqNumber,
    /// The client's MSS option, exact.
    pub mss: Option<u16>,
    /// The client's window scale shift (clamped to 14), if it offered one.
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    /// The TSval of the client's latest SYN, if it offered timestamps.
    pub ts_recent: Option<u32>,
    /// Our timestamp clock's per-flow offset (`SynCookies::ts_offset`), kept so neither the
    /// SYN-ACKs nor the connection hash the flow for it again.
    pub ts_offset: u32,
    /// SYN-ACK retransmissions so far.
    pub retries: u8,
    /// The SYN asked for ECN (ECE and CWR, RFC 3168 §6.1.1) and `TcpConfig::ecn` accepts.
    pub ecn: bool,
}

/// The Ethernet part of a frame's addressing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LinkAddrs {
    pub eth_src: EthernetAddress,
    pub eth_dst: EthernetAddress,
    pub vlan: Option<VlanTag>,
}

impl LinkAddrs {
    /// The link-layer part of `addrs`.
    pub fn of(addrs: &FrameAddrs) -> LinkAddrs {
        LinkAddrs {
            eth_src: addrs.eth_src,
            eth_dst: addrs.eth_dst,
            vlan: addrs.vlan,
        }
    }
}

impl SynEntry {
    /// The whole addressing of the SYN-ACK and of every other reply from the entry.
    pub fn reply_addrs(&self) -> FrameAddrs {
        FrameAddrs {
            eth_src: self.reply_link.eth_src,
            eth_dst: self.reply_link.eth_dst,
            vlan: self.reply_link.vlan,
            ip: self.flow.outbound_ips(),
        }
    }
}

/// Where a flow stands in the cache, from one hash and one scan of its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Lookup {
    /// The flow's entry.
    pub found: Option<u32>,
    /// A free way of the flow's bucket.
    pub free: Option<u32>,
}

/// Fixed-capacity, set-associative table of [`SynEntry`]s with one deadline each.
pub(super) struct SynCache {
    entries: Box<[Option<SynEntry>]>,
    buckets: usize,
    hasher: RandomState,
    deadlines: Deadlines,
    admitted: ChallengeLimiter,
    len: usize,
}

impl SynCache {
    /// Room for `capacity` entries (rounded down to whole buckets; 0 disables the cache) and
    /// at most `rate` new entries per second.
    pub fn new(capacity: usize, rate: u32, now: Instant) -> Self {
        let buckets = capacity / BUCKET_WAYS;
        let n = buckets * BUCKET_WAYS;
        SynCache {
            entries: vec![None; n].into_boxed_slice(),
            buckets,
            hasher: RandomState::new(),
            deadlines: Deadlines::new(n),
            admitted: ChallengeLimiter::new(rate, now),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it can hold anything (a capacity of at least one bucket).
    pub fn enabled(&self) -> bool {
        self.buckets > 0
    }

    /// The entry indices of `flow`'s bucket (empty when the cache is disabled).
    fn bucket(&self, flow: &FlowKey) -> core::ops::Range<usize> {
        if self.buckets == 0 {
            return 0..0;
        }
        let b = (self.hasher.hash_one(flow) % self.buckets as u64) as usize;
        b * BUCKET_WAYS..(b + 1) * BUCKET_WAYS
    }

    /// `flow`'s entry, or else a free way of its bucket.
    pub fn lookup(&self, flow: &FlowKey) -> Lookup {
        let r = self.bucket(flow);
        let start = r.start;
        let mut l = Lookup {
            found: None,
            free: None,
        };
        for (i, e) in self.entries.get(r).unwrap_or_default().iter().enumerate() {
            match e {
                Some(e) if e.flow == *flow => {
                    l.found = Some((start + i) as u32);
                    break;
                }
                None if l.free.is_none() => l.free = Some((start + i) as u32),
                _ => {}
            }
        }
        l
    }

    /// Where `flow`'s entry is, if it has one.
    #[cfg(test)]
    pub fn find(&self, flow: &FlowKey) -> Option<u32> {
        self.lookup(flow).found
    }

    pub fn get(&self, idx: u32) -> Option<&SynEntry> {
        self.entries.get(idx as usize)?.as_ref()
    }

    pub fn get_mut(&mut self, idx: u32) -> Option<&mut SynEntry> {
        self.entries.get_mut(idx as usize)?.as_mut()
    }

    /// Stores `entry` with its first deadline in the free way `idx` (from [`Self::lookup`]) if
    /// this second's budget allows; `false` means: answer with a cookie alone.
    pub fn insert_at(
        &mut self,
        now: Instant,
        idx: u32,
        entry: SynEntry,
        deadline: Instant,
    ) -> bool {
        let Some(slot @ None) = self.entries.get_mut(idx as usize) else {
            return false;
        };
        if !self.admitted.allow(now) {
            return false;
        }
        *slot = Some(entry);
        self.len += 1;
        self.deadlines.set(idx, Some(deadline));
        true
    }

    #[cfg(test)]
    pub fn insert(&mut self, now: Instant, entry: SynEntry, deadline: Instant) -> Option<u32> {
        let idx = self.lookup(&entry.flow).free?;
        self.insert_at(now, idx, entry, deadline).then_some(idx)
    }

    /// Removes the entry at `idx` and returns it.
    pub fn remove(&mut self, idx: u32) -> Option<SynEntry> {
        let e = self.entries.get_mut(idx as usize)?.take()?;
        self.len -= 1;
        self.deadlines.set(idx, None);
        Some(e)
    }

    /// Moves the entry's deadline.
    pub fn set_deadline(&mut self, idx: u32, at: Instant) {
        if self.get(idx).is_some() {
            self.deadlines.set(idx, Some(at));
        }
    }

    /// The earliest deadline of any entry.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| at)
    }

    /// An entry whose deadline is at or before `now`, its deadline cleared (the caller sets a
    /// new one or removes it).
    pub fn pop_due(&mut self, now: Instant) -> Option<u32> {
        let (at, idx) = self.deadlines.first()?;
        if at > now {
            return None;
        }
        self.deadlines.set(idx, None);
        Some(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;
    use core::net::{Ipv4Addr, SocketAddrV4};

    fn flow(port: u16) -> FlowKey {
        FlowKey::new_v4(
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80),
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), port),
        )
    }

    fn entry(port: u16) -> SynEntry {
        SynEntry {
            flow: flow(port),
            reply_link: LinkAddrs {
                eth_src: EthernetAddress([0; 6]),
                eth_dst: EthernetAddress([0; 6]),
                vlan: None,
            },
            irs: SeqNumber(u32::from(port)),
            iss: SeqNumber(7),
            mss: Some(1240),
            window_scale: None,
            sack_permitted: false,
            ts_recent: None,
            ts_offset: 0,
            retries: 0,
            ecn: false,
        }
    }

    #[test]
    fn bucket_holds_at_most_bucket_ways_and_total_at_most_capacity() {
        let now = Instant::from_secs(1);
        let mut c = SynCache::new(64, u32::MAX, now);
        let mut stored = 0;
        let mut per_bucket = [0usize; 8];
        for port in 0..10_000u16 {
            if let Some(i) = c.insert(now, entry(port), now) {
                stored += 1;
                per_bucket[i as usize / BUCKET_WAYS] += 1;
                assert_eq!(c.find(&flow(port)), Some(i));
                assert_eq!(c.get(i).map(|e| e.irs), Some(SeqNumber(u32::from(port))));
            }
        }
        assert_eq!(stored, 64);
        assert_eq!(c.len(), 64);
        assert!(per_bucket.iter().all(|&n| n == BUCKET_WAYS));
        // Removing frees the way for the next SYN of that bucket.
        let i = c.find(&flow(0)).or_else(|| c.find(&flow(1))).unwrap();
        let gone = c.remove(i).unwrap();
        assert_eq!(c.find(&gone.flow), None);
        assert_eq!(c.remove(i), None);
        assert_eq!(c.len(), 63);
    }

    #[test]
    fn lookup_finds_the_entry_or_a_free_way_and_insert_at_takes_only_a_free_way() {
        let now = Instant::from_secs(1);
        let mut c = SynCache::new(BUCKET_WAYS, u32::MAX, now);
        let l = c.lookup(&flow(1));
        assert_eq!(l.found, None);
        let idx = l.free.unwrap();
        assert!(c.insert_at(now, idx, entry(1), now));
        assert_eq!(
            c.lookup(&flow(1)),
            Lookup {
                found: Some(idx),
                free: None
            }
        );
        // Not over an entry, not outside the table.
        assert!(!c.insert_at(now, idx, entry(2), now));
        assert!(!c.insert_at(now, BUCKET_WAYS as u32, entry(2), now));
        for port in 2..=BUCKET_WAYS as u16 {
            assert!(c.insert(now, entry(port), now).is_some());
        }
        assert_eq!(c.lookup(&flow(100)).free, None, "one bucket, full");
    }

    /// The memory bound of an entry: 84 bytes on x86-64 since a flow can be IPv6 (its two
    /// addresses alone are 32 bytes; 64 an entry before, as docs/tcp.md still says).
    #[test]
    fn an_entry_stays_small() {
        let size = core::mem::size_of::<Option<SynEntry>>();
        assert!(size <= 84, "{size} bytes");
    }

    #[test]
    fn per_second_budget_limits_new_entries() {
        let now = Instant::from_secs(1);
        let mut c = SynCache::new(4096, 10, now);
        let n = (0..100u16)
            .filter(|&p| c.insert(now, entry(p), now).is_some())
            .count();
        assert_eq!(n, 10);
        let later = now + Duration::from_secs(1);
        assert!(c.insert(later, entry(200), later).is_some());
    }

    #[test]
    fn disabled_cache_stores_nothing() {
        let now = Instant::from_secs(1);
        let mut c = SynCache::new(BUCKET_WAYS - 1, u32::MAX, now);
        assert_eq!(c.insert(now, entry(1), now), None);
        assert_eq!(c.find(&flow(1)), None);
        assert_eq!(c.next_deadline(), None);
        assert_eq!(c.get(0), None);
    }

    #[test]
    fn deadlines_come_out_in_order_and_leave_with_their_entry() {
        let t = Instant::from_secs(1);
        let mut c = SynCache::new(64, u32::MAX, t);
        let a = c.insert(t, entry(1), t + Duration::from_secs(3)).unwrap();
        let b = c.insert(t, entry(2), t + Duration::from_secs(1)).unwrap();
        let d = c.insert(t, entry(3), t + Duration::from_secs(2)).unwrap();
        assert_eq!(c.next_deadline(), Some(t + Duration::from_secs(1)));
        c.remove(b);
        assert_eq!(c.next_deadline(), Some(t + Duration::from_secs(2)));
        assert_eq!(c.pop_due(t + Duration::from_secs(1)), None);
        assert_eq!(c.pop_due(t + Duration::from_secs(5)), Some(d));
        c.set_deadline(d, t + Duration::from_secs(9));
        assert_eq!(c.pop_due(t + Duration::from_secs(5)), Some(a));
        assert_eq!(c.pop_due(t + Duration::from_secs(5)), None);
        assert_eq!(c.next_deadline(), Some(t + Duration::from_secs(9)));
    }
}

//! TIME_WAIT without a connection (RFC 9293 §3.6): when a connection reaches TIME_WAIT its
//! slot and buffers are freed and a compact record keeps only what the state still needs --
//! enough to re-ACK a retransmitted FIN and to judge a RST or a new SYN (RFC 5961, RFC 6191).
//! The records are bounded (`TcpConfig::max_time_wait`, the oldest goes first) and expire in
//! one FIFO, since all last equally long. Every change leaves a live entry at the FIFO's front
//! (stale ones, of records removed or restarted, are dropped there), so `next_expiry` is exact
//! without a check on every segment.

use std::collections::{HashMap, VecDeque};

use super::{Endpoint, Reply};
use crate::tcp::config::DropReason;
use crate::tcp::conn::Seg;
use crate::tcp::FlowKey;
use crate::time::{Duration, Instant};
use crate::wire::{FrameAddrs, SeqNumber, TcpFlags, TcpHeader, TcpOptions};

/// Compact TIME_WAIT record (RFC 9293 §3.6): enough to re-ACK a FIN, judge RST and SYN.
pub(super) struct TimeWait {
    pub(super) addrs: FrameAddrs,
    pub(super) snd_nxt: SeqNumber,
    pub(super) rcv_nxt: SeqNumber,
    pub(super) window: u16,
    pub(super) ts_recent: Option<u32>,
    pub(super) ts_offset: u32,
    /// Matches the live entry in the expiry FIFO.
    pub(super) id: u64,
    /// A new SYN was answered with a cookie: a cookie ACK may take the flow over.
    pub(super) syn_answered: bool,
}

/// The TIME_WAIT records by flow, with their expiry FIFO.
pub(super) struct TimeWaitRecords {
    records: HashMap<FlowKey, TimeWait>,
    /// (expiry, flow, id) in expiry order (all TIME_WAITs last equally long).
    fifo: VecDeque<(Instant, FlowKey, u64)>,
    fifo_cap: usize,
    next_id: u64,
    /// `TcpConfig::max_time_wait`.
    max: usize,
    /// `TcpConfig::time_wait`: 2*MSL.
    lifetime: Duration,
}

impl TimeWaitRecords {
    pub fn new(max: usize, lifetime: Duration) -> Self {
        let fifo_cap = max.saturating_mul(2);
        TimeWaitRecords {
            records: HashMap::with_capacity(max),
            fifo: VecDeque::with_capacity(fifo_cap),
            fifo_cap,
            next_id: 0,
            max,
            lifetime,
        }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn contains(&self, flow: &FlowKey) -> bool {
        self.records.contains_key(flow)
    }

    pub fn get(&self, flow: &FlowKey) -> Option<&TimeWait> {
        self.records.get(flow)
    }

    pub fn get_mut(&mut self, flow: &FlowKey) -> Option<&mut TimeWait> {
        self.records.get_mut(flow)
    }

    /// Forgets a record (its FIFO entry goes stale and is dropped once it reaches the front).
    pub fn remove(&mut self, flow: &FlowKey) {
        self.records.remove(flow);
        self.prune();
    }

    /// Adds a record expiring 2*MSL from `now`, evicting the oldest while the table (or the
    /// FIFO) is full. Returns how many live records were evicted.
    #[must_use]
    pub fn insert(&mut self, now: Instant, flow: FlowKey, mut tw: TimeWait) -> u64 {
        let mut evicted = 0;
        if self.max == 0 {
            return evicted;
        }
        while self.records.len() >= self.max || self.fifo.len() >= self.fifo_cap {
            let Some((_, old, id)) = self.fifo.pop_front() else {
                break;
            };
            if self.records.get(&old).is_some_and(|t| t.id == id) {
                self.records.remove(&old);
                evicted += 1;
            }
        }
        self.next_id = self.next_id.wrapping_add(1);
        tw.id = self.next_id;
        self.fifo.push_back((now + self.lifetime, flow, tw.id));
        self.records.insert(flow, tw);
        self.prune();
        evicted
    }

    /// Restart the 2*MSL timer of a record (RFC 9293: a retransmitted FIN in TIME-WAIT).
    pub fn restart(&mut self, now: Instant, flow: FlowKey) {
        if self.fifo.len() >= self.fifo_cap {
            return;
        }
        self.next_id = self.next_id.wrapping_add(1);
        let id = self.next_id;
        if let Some(tw) = self.records.get_mut(&flow) {
            tw.id = id;
            self.fifo.push_back((now + self.lifetime, flow, id));
        }
        self.prune();
    }

    /// Drops stale FIFO fronts, so `next_expiry` is exact.
    fn prune(&mut self) {
        while let Some(&(_, flow, id)) = self.fifo.front() {
            if self.records.get(&flow).is_some_and(|t| t.id == id) {
                break;
            }
            self.fifo.pop_front();
        }
    }

    /// When the oldest record expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.fifo.front().map(|(at, _, _)| *at)
    }

    /// Frees the records whose 2*MSL ran out by `now`.
    pub fn expire(&mut self, now: Instant) {
        // The FIFO is in expiry order.
        while let Some(&(at, flow, id)) = self.fifo.front() {
            if at > now {
                break;
            }
            self.fifo.pop_front();
            if self.records.get(&flow).is_some_and(|t| t.id == id) {
                self.records.remove(&flow);
            }
        }
        self.prune();
    }
}

impl Endpoint {
    fn time_wait_ack(&mut self, now: Instant, flow: FlowKey, t: &TcpHeader) {
        let Some(tw) = self.time_wait.get(&flow) else {
            return;
        };
        let mut options = TcpOptions::default();
        if let Some(recent) = tw.ts_recent {
            options.timestamps =
                Some(((now.as_millis() as u32).wrapping_add(tw.ts_offset), recent));
        }
        let hdr = TcpHeader {
            src_port: t.dst_port,
            dst_port: t.src_port,
            seq: tw.snd_nxt,
            ack: tw.rcv_nxt,
            flags: TcpFlags::ACK,
            window: tw.window,
            urgent: 0,
            options,
        };
        let addrs = tw.addrs;
        self.queue_reply(Reply { addrs, hdr });
    }

    /// TIME_WAIT (RFC 9293 §3.10.7.4, RFC 5961, RFC 6191).
    pub(super) fn time_wait_segment(
        &mut self,
        now: Instant,
        flow: FlowKey,
        addrs: &FrameAddrs,
        t: &TcpHeader,
        seg: &Seg,
    ) -> Result<(), DropReason> {
        let Some(tw) = self.time_wait.get(&flow) else {
            return Ok(());
        };
        let rcv_nxt = tw.rcv_nxt;
        let window = u32::from(tw.window).max(1);
        let ts_recent = tw.ts_recent;
        let syn_answered = tw.syn_answered;
        match (seg.rst, seg.syn, seg.ack) {
            // RST: RFC 5961 §3.2 -- exactly RCV.NXT closes (RFC 9293: "enter the CLOSED
            // state"), elsewhere in the window gets a challenge ACK, else silence.
            (true, _, _) => {
                self.stats.rsts_in += 1;
                if seg.seq == rcv_nxt {
                    self.time_wait.remove(&flow);
                    return Ok(());
                }
                if seg.seq.in_window(rcv_nxt, window)
                    && self.challenge.allow_challenge(now, &mut self.stats)
                {
                    self.time_wait_ack(now, flow, t);
                }
                Err(DropReason::RstNotExact)
            }
            // New SYN: RFC 6191 §2 -- acceptable if its TSval is above TS.Recent, or equal to
            // it with a sequence number above RCV.NXT (timestamps), or, without timestamps, if
            // its sequence number is above RCV.NXT (RFC 9293 §3.6.1). Then answer with a fresh
            // cookie (the record stays until a cookie ACK takes the flow over). Otherwise
            // RFC 5961 §4: challenge ACK.
            (false, true, None) => {
                let seq_above = seg.seq.diff(rcv_nxt) > 0;
                let newer = match (ts_recent, seg.ts) {
                    (Some(recent), Some((tsval, _))) => {
                        let d = tsval.wrapping_sub(recent) as i32;
                        d > 0 || (d == 0 && seq_above)
                    }
                    _ => seq_above,
                };
                if newer {
                    let r = self.send_cookie(now, flow, addrs, t, seg);
                    if let Some(tw) = self.time_wait.get_mut(&flow) {
                        tw.syn_answered = true;
                    }
                    r
                } else {
                    if self.challenge.allow_challenge(now, &mut self.stats) {
                        self.time_wait_ack(now, flow, t);
                    }
                    Err(DropReason::SynInSync)
                }
            }
            (false, true, Some(_)) => {
                self.time_wait_ack(now, flow, t);
                Err(DropReason::SynInSync)
            }
            // A cookie ACK after we answered a new SYN: the old incarnation is over.
            (false, false, Some(ack))
                if syn_answered
                    && self
                        .cookies
                        .validate(now, &flow, seg.seq, ack, seg.ts.map(|(_, e)| e))
                        .is_ok() =>
            {
                self.time_wait.remove(&flow);
                self.cookie_ack(now, flow, addrs, t, seg, ack)
            }
            // Retransmitted FIN: "Acknowledge it, and restart the 2 MSL timeout."
            (false, false, _) if seg.fin => {
                self.time_wait_ack(now, flow, t);
                self.time_wait.restart(now, flow);
                Ok(())
            }
            // Data: nothing can be accepted any more; ACK so the peer learns where we are.
            (false, false, _) if !seg.payload.is_empty() => {
                self.time_wait_ack(now, flow, t);
                Err(DropReason::TimeWait)
            }
            // A pure ACK needs no answer (and answering would start an ACK loop).
            _ => Err(DropReason::TimeWait),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::EthernetAddress;
    use core::net::Ipv4Addr;

    fn flow(port: u16) -> FlowKey {
        FlowKey::from_inbound_v4(
            Ipv4Addr::new(10, 0, 0, 1),
            port,
            Ipv4Addr::new(10, 0, 0, 2),
            80,
        )
    }

    fn record() -> TimeWait {
        let mac = EthernetAddress([2, 0, 0, 0, 0, 1]);
        TimeWait {
            addrs: FrameAddrs {
                eth_src: mac,
                eth_dst: mac,
                vlan: None,
                ip: crate::wire::IpPair::V4 {
                    src: Ipv4Addr::new(10, 0, 0, 2),
                    dst: Ipv4Addr::new(10, 0, 0, 1),
                },
            },
            snd_nxt: SeqNumber(1),
            rcv_nxt: SeqNumber(1),
            window: 0,
            ts_recent: None,
            ts_offset: 0,
            id: 0,
            syn_answered: false,
        }
    }

    #[test]
    fn next_expiry_is_the_oldest_live_record_after_every_change() {
        let life = Duration::from_secs(60);
        let mut tw = TimeWaitRecords::new(2, life);
        let t = |s| Instant::from_secs(s);
        assert_eq!(tw.insert(t(1), flow(1), record()), 0);
        assert_eq!(tw.insert(t(2), flow(2), record()), 0);
        assert_eq!(tw.next_expiry(), Some(t(1) + life));
        // Restarting the oldest makes the other one the next to expire.
        tw.restart(t(3), flow(1));
        assert_eq!(tw.next_expiry(), Some(t(2) + life));
        tw.remove(&flow(2));
        assert_eq!(tw.next_expiry(), Some(t(3) + life));
        // A full table evicts the oldest live record.
        assert_eq!(tw.insert(t(4), flow(4), record()), 0);
        assert_eq!(tw.insert(t(5), flow(5), record()), 1);
        assert!(!tw.contains(&flow(1)));
        assert_eq!(tw.next_expiry(), Some(t(4) + life));
        tw.expire(t(4) + life);
        assert_eq!(tw.next_expiry(), Some(t(5) + life));
        tw.remove(&flow(5));
        assert_eq!(tw.next_expiry(), None);
        assert_eq!(tw.len(), 0);
    }
}

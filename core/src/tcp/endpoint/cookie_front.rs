//! The stateless front (RFC 4987 §3.6): a segment for a flow with neither a connection, a
//! TIME_WAIT record nor a SYN cache entry (`syn_received.rs`). A SYN the SYN cache has no room
//! for is answered with a cookie SYN-ACK and nothing is kept; an ACK that
//! returns a valid cookie creates the connection, and whatever data (or FIN) it carries goes
//! through the state machine. Two departures from a plain cookie check keep genuine clients
//! alive when their first segments are reordered or lost: the SYN hints (a lossy table of
//! recent client ISNs) and the early-data check (a first-flight segment that overtook the
//! handshake ACK is dropped, not reset). Anything else gets the RFC 9293 §3.10.7.1/2 answer.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use super::{ConnHandle, Endpoint, Event, Reply};
use crate::tcp::config::{DropReason, EARLY_DATA_MAX_SEGMENTS};
use crate::tcp::conn::{Conn, Negotiated, Seg};
use crate::tcp::syncookie::{cookie_mss_of, CookieParams, CookieRequest, SynCookie};
use crate::tcp::FlowKey;
use crate::time::Instant;
use crate::wire::{FrameAddrs, SeqNumber, TcpFlags, TcpHeader, TcpOptions};

fn flags(bits: &[TcpFlags]) -> TcpFlags {
    bits.iter().fold(TcpFlags::default(), |a, b| a | *b)
}

/// Client ISNs of recent SYNs, direct-mapped by a keyed hash of the flow, fixed size
/// (`TcpConfig::syn_hints`); see `cookie_ack`.
pub(super) struct SynHints {
    slots: Box<[Option<(FlowKey, SeqNumber)>]>,
    hasher: RandomState,
}

impl SynHints {
    pub fn new(n: usize) -> Self {
        SynHints {
            slots: vec![None; n].into_boxed_slice(),
            hasher: RandomState::new(),
        }
    }

    /// The slot of `flow` in the SYN hint table.
    fn slot(&self, flow: &FlowKey) -> Option<usize> {
        let n = self.slots.len();
        if n == 0 {
            return None;
        }
        Some((self.hasher.hash_one(flow) % n as u64) as usize)
    }

    /// Remembers the client ISN of `flow`'s latest SYN (overwriting whatever shared the slot).
    pub fn remember(&mut self, flow: FlowKey, isn: SeqNumber) {
        if let Some(i) = self.slot(&flow) {
            if let Some(h) = self.slots.get_mut(i) {
                *h = Some((flow, isn));
            }
        }
    }

    /// The client ISN remembered for `flow`, if its slot still holds it.
    pub fn get(&self, flow: &FlowKey) -> Option<SeqNumber> {
        let (f, isn) = (*self.slots.get(self.slot(flow)?)?)?;
        (f == *flow).then_some(isn)
    }

    /// Forgets `flow`'s hint (not another flow's that shares the slot).
    pub fn forget(&mut self, flow: &FlowKey) {
        if let Some(h) = self.slot(flow).and_then(|i| self.slots.get_mut(i)) {
            if h.is_some_and(|(f, _)| f == *flow) {
                *h = None;
            }
        }
    }
}

impl Endpoint {
    /// RFC 9293 §3.10.7.1 (CLOSED): "If the ACK bit is off, <SEQ=0><ACK=SEG.SEQ+SEG.LEN>
    /// <CTL=RST,ACK>; if the ACK bit is on, <SEQ=SEG.ACK><CTL=RST>". Never a RST for a RST.
    pub(super) fn queue_rst(&mut self, addrs: &FrameAddrs, t: &TcpHeader, seg: &Seg) {
        if seg.rst {
            return;
        }
        let (seq, ack, fl) = match seg.ack {
            Some(ack) => (ack, SeqNumber(0), TcpFlags::RST),
            None => (
                SeqNumber(0),
                seg.seq + seg.len(),
                flags(&[TcpFlags::RST, TcpFlags::ACK]),
            ),
        };
        let hdr = TcpHeader {
            src_port: t.dst_port,
            dst_port: t.src_port,
            seq,
            ack,
            flags: fl,
            window: 0,
            urgent: 0,
            options: TcpOptions::default(),
        };
        self.queue_reply(Reply {
            addrs: addrs.reversed(),
            hdr,
        });
    }

    /// The front for flows with no connection and no TIME_WAIT record: a flow in the SYN
    /// cache goes there; else SYN -> SYN cache entry or cookie SYN-ACK, cookie ACK ->
    /// connection, anything else the LISTEN answer.
    pub(super) fn unknown_segment(
        &mut self,
        now: Instant,
        flow: FlowKey,
        addrs: &FrameAddrs,
        t: &TcpHeader,
        seg: &Seg,
    ) -> Result<(), DropReason> {
        let cached = self.syn_cache.lookup(&flow);
        if let Some(idx) = cached.found {
            return self.syn_received_segment(now, idx, addrs, t, seg);
        }
        if seg.rst {
            // CLOSED: "An incoming segment containing a RST is discarded."
            self.stats.rsts_in += 1;
            return Err(DropReason::NoConnection);
        }
        match (seg.syn, seg.ack) {
            // LISTEN, SYN: a SYN cache entry, or a cookie and nothing kept (RFC 4987 §3.6).
            (true, None) => self.syn_in_listen(now, flow, addrs, t, seg, cached.free),
            // LISTEN, ACK: "Any acknowledgment is bad if it arrives on a connection still in
            // the LISTEN state" -- unless it returns a valid cookie.
            (false, Some(ack)) => self.cookie_ack(now, flow, addrs, t, seg, ack),
            // SYN-ACK: the ACK bit is on, so "<SEQ=SEG.ACK><CTL=RST>" (§3.10.7.2, second).
            (true, Some(_)) => {
                self.queue_rst(addrs, t, seg);
                Err(DropReason::NoConnection)
            }
            // Neither SYN, ACK nor RST (a bare FIN, data without ACK): the engine only sees
            // ports with a listener, so this is LISTEN, not CLOSED: "Any other control or
            // text-bearing segment (not containing SYN) must have an ACK and thus would be
            // discarded by the ACK processing ... drop the segment and return" (RFC 9293
            // §3.10.7.2, fourth). Linux drops it too; a RST would answer a spoofed source.
            (false, None) => Err(DropReason::NoConnection),
        }
    }

    /// A cookie SYN-ACK and nothing kept (TIME_WAIT's answer to an acceptable new SYN).
    pub(super) fn send_cookie(
        &mut self,
        now: Instant,
        flow: FlowKey,
        addrs: &FrameAddrs,
        t: &TcpHeader,
        seg: &Seg,
    ) -> Result<(), DropReason> {
        let (req, cookie) = self.syn_cookie(now, &flow, t, seg)?;
        self.reply_cookie(flow, addrs, seg, &req, cookie)
    }

    /// What a SYN asks for and its cookie, when the stateless reply queue has room for the
    /// SYN-ACK (every SYN-ACK's ISN is a cookie, from the SYN cache or not).
    pub(super) fn syn_cookie(
        &mut self,
        now: Instant,
        flow: &FlowKey,
        t: &TcpHeader,
        seg: &Seg,
    ) -> Result<(CookieRequest, SynCookie), DropReason> {
        if self.stateless.len() >= self.cfg.max_stateless_replies {
            self.stats.stateless_queue_overflows += 1;
            return Err(DropReason::StatelessQueueFull);
        }
        let req = CookieRequest::of_syn(&t.options);
        let cookie = self.cookies.generate(now, flow, seg.seq, &req);
        Ok((req, cookie))
    }

    /// Queues the SYN-ACK of `cookie` (the same options a SYN cache entry would answer with)
    /// and remembers the SYN's ISN as a hint.
    pub(super) fn reply_cookie(
        &mut self,
        flow: FlowKey,
        addrs: &FrameAddrs,
        seg: &Seg,
        req: &CookieRequest,
        cookie: SynCookie,
    ) -> Result<(), DropReason> {
        let hdr = self.syn_ack_header(
            &flow,
            cookie.isn,
            seg.seq,
            req.offered_window_scale().is_some(),
            req.offered_sack(),
            cookie.tsval.zip(req.tsval),
            // A cookie has no bit for ECN: declined (`tcp/ecn.rs`).
            false,
        );
        self.stats.cookies_sent += 1;
        self.syn_hints.remember(flow, seg.seq);
        self.queue_reply(Reply {
            addrs: addrs.reversed(),
            hdr,
        });
        Ok(())
    }

    pub(super) fn cookie_ack(
        &mut self,
        now: Instant,
        flow: FlowKey,
        addrs: &FrameAddrs,
        t: &TcpHeader,
        seg: &Seg,
        ack: SeqNumber,
    ) -> Result<(), DropReason> {
        let tsecr = seg.ts.map(|(_, e)| e);
        let params = match self.cookies.validate(now, &flow, seg.seq, ack, tsecr) {
            Ok(p) => p,
            // A segment of a genuine client whose handshake ACK has not arrived (lost, or
            // overtaken): the SYN hint table remembers the client ISN of recent SYNs, so the
            // cookie can be checked for it and the connection created now; the segment is
            // then ordinary out-of-order data (or a pure ACK). Lossy and fixed-size: under a
            // SYN flood hints are overwritten and this falls through to the checks below.
            Err(_) => match self.syn_hint(now, &flow, ack, tsecr) {
                Some(p) => p,
                None => {
                    // Departure from RFC 9293 §3.10.7.2 (which resets any ACK in LISTEN):
                    // a data segment of the client's first flight that overtook the
                    // handshake-completing ACK carries the cookie but not the client ISN + 1.
                    // If the cookie validates for the ISN the segment would have as the j-th
                    // full-sized segment (this segment's size, or the send MSS the cookie
                    // encodes), it is dropped silently: the client retransmits it once the
                    // connection exists, where a RST would kill a healthy connection. Bounded
                    // work: at most 32 extra hashes, only for segments with data, and at most
                    // `early_data_checks` such segments per second.
                    if self.early_data(now, &flow, seg, ack, tsecr) {
                        return Err(DropReason::EarlyData);
                    }
                    // RFC 9293 §3.10.7.2 (LISTEN, ACK): <SEQ=SEG.ACK><CTL=RST>.
                    self.stats.cookies_failed += 1;
                    self.queue_rst(addrs, t, seg);
                    return Err(DropReason::BadCookie);
                }
            },
        };
        self.stats.cookies_validated += 1;
        let neg = Negotiated {
            iss: params.isn,
            irs: params.client_isn,
            peer_mss: params.mss,
            window_scale: params.window_scale,
            sack_permitted: params.sack_permitted,
            timestamps: params.timestamps,
            ts_offset: self.cookies.ts_offset(&flow),
            ecn: false,
        };
        self.establish(now, flow, addrs, t, seg, &neg)
    }

    /// Creates the connection `neg` describes (from a cookie or a SYN cache entry) and runs
    /// the segment that completed the handshake through it; a full table gets a RST.
    pub(super) fn establish(
        &mut self,
        now: Instant,
        flow: FlowKey,
        addrs: &FrameAddrs,
        t: &TcpHeader,
        seg: &Seg,
        neg: &Negotiated,
    ) -> Result<(), DropReason> {
        let Some(idx) = self.free.pop() else {
            self.stats.table_full += 1;
            self.queue_rst(addrs, t, seg);
            return Err(DropReason::TableFull);
        };
        // The connection sends at most `TcpConfig::mss`, an IPv4 figure; over IPv6 the same
        // frames hold 20 bytes less, which the peer's MSS is held to here.
        // And to what path MTU messages taught about this client's path (`pmtu_cache.rs`).
        let learned = self
            .pmtu_cache
            .mss_for(flow.remote().ip(), now)
            .unwrap_or(u16::MAX);
        let neg = &Negotiated {
            peer_mss: neg.peer_mss.min(flow.local_mss(self.cfg.mss)).min(learned),
            ..*neg
        };
        let slot = &mut self.slots[idx as usize];
        let handle = ConnHandle {
            index: idx,
            generation: slot.generation,
        };
        let reply_addrs = addrs.reversed();
        match slot.conn.as_deref_mut() {
            Some(c) => c.reinit(handle, flow, reply_addrs, neg, &self.cfg, now),
            None => {
                slot.conn = Some(Box::new(Conn::new(
                    handle,
                    flow,
                    reply_addrs,
                    neg,
                    &self.cfg,
                    now,
                    None,
                )))
            }
        }
        slot.live = true;
        if let (true, Some((tsval, _)), Some(c)) =
            (neg.timestamps, seg.ts, slot.conn.as_deref_mut())
        {
            c.set_ts_recent(tsval, now);
        }
        self.table.insert(flow, idx);
        // The hint has served its purpose: it is for segments that arrive before the
        // connection exists. Kept, it would let a stale segment of this connection that
        // arrives after it closed (a reordered or duplicated ACK, within the cookie's lifetime)
        // create a phantom connection that nobody talks to until the idle timeout (found by
        // the engine simulation); without it such a segment gets the RFC 9293 §3.10.7.2 RST.
        self.syn_hints.forget(&flow);
        self.stats.connections_established += 1;
        if flow.is_ipv6() {
            self.stats.accepted_ipv6 += 1;
        } else {
            self.stats.accepted_ipv4 += 1;
        }
        self.events
            .push_back(Event::Established { conn: handle, flow });
        // The ACK may carry data (and even a FIN): run it through the state machine.
        self.conn_segment(now, idx, seg)
    }

    /// Cookie parameters for `flow` from the client ISN its latest SYN had, if remembered and
    /// the cookie validates for it.
    fn syn_hint(
        &self,
        now: Instant,
        flow: &FlowKey,
        ack: SeqNumber,
        tsecr: Option<u32>,
    ) -> Option<CookieParams> {
        let isn = self.syn_hints.get(flow)?;
        self.cookies
            .validate(now, flow, isn + 1u32, ack, tsecr)
            .ok()
    }

    fn early_data(
        &mut self,
        now: Instant,
        flow: &FlowKey,
        seg: &Seg,
        ack: SeqNumber,
        tsecr: Option<u32>,
    ) -> bool {
        let len = seg.payload.len() as u32;
        if len == 0 || !self.early_limiter.allow(now) {
            return false;
        }
        let cookie_mss = flow.peer_mss(Some(cookie_mss_of(ack - 1u32)));
        let cookie_mss = u32::from(cookie_mss.min(flow.local_mss(self.cfg.mss)));
        let full = cookie_mss.saturating_sub(if tsecr.is_some() { 12 } else { 0 });
        let steps = [if len >= 512 { len } else { 0 }, full];
        for (i, &step) in steps.iter().enumerate() {
            if step == 0 || (i == 1 && step == steps[0]) {
                continue;
            }
            for j in 1..=EARLY_DATA_MAX_SEGMENTS {
                let cand = seg.seq - j.saturating_mul(step);
                if self.cookies.validate(now, flow, cand, ack, tsecr).is_ok() {
                    return true;
                }
            }
        }
        false
    }
}

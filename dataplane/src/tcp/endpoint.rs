//! The endpoint: stateless SYN-cookie front, connection table (slab + generation handles),
//! compact TIME_WAIT records, stateless reply queue, timer heap, ready queue, events.
//!
//! Call order (quinn-proto style): feed frames with `handle_frame`, then drain `poll_event`
//! and `poll_transmit` until they return `None`; sleep until `poll_timeout`, then call
//! `handle_timeout`. Application calls (`consume`, `commit_send`, `close`, `abort`) may queue
//! output too, so drain `poll_transmit` after them.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::BuildHasher;

use super::challenge::ChallengeLimiter;
use super::config::{DropReason, TcpConfig, TcpStats, EARLY_DATA_MAX_SEGMENTS};
use super::conn::{Conn, Ctx, Negotiated, Outcome, Seg};
use super::syncookie::{CookieParams, CookieRequest, SynCookies, MSS_TABLE};
use super::FlowKey;
use crate::time::Instant;
use crate::wire::{self, FrameAddrs, SeqNumber, TcpFlags, TcpHeader, TcpOptions, WireError};

/// A connection slot and the generation it had when the connection was created: a handle to
/// a connection that has since been freed (and its slot reused) is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnHandle {
    pub(super) index: u32,
    pub(super) generation: u32,
}

impl ConnHandle {
    pub fn index(&self) -> usize {
        self.index as usize
    }
}

/// What the application learns from `poll_event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// After a valid cookie ACK: the connection exists.
    Established { conn: ConnHandle, flow: FlowKey },
    /// New bytes in `recv_slices`.
    Readable(ConnHandle),
    /// Transmit space freed after it ran low.
    Writable(ConnHandle),
    /// FIN received: no more input will come.
    PeerClosed(ConnHandle),
    /// The connection's state is freed; exactly once per `Established`.
    Closed { conn: ConnHandle, flow: FlowKey },
}

/// What a connection still owes its peer (see [`Endpoint::send_backlog`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendBacklog {
    /// SND.UNA: moves only when the peer acknowledges bytes.
    pub una: SeqNumber,
    /// Bytes queued and not yet acknowledged.
    pub queued: usize,
    /// The peer's last advertised window is zero.
    pub zero_window: bool,
}

/// A connection's readable bytes and free transmit space, borrowed together (see
/// [`Endpoint::stream`]). Each side is two slices, in order, as a ring buffer hands them out.
pub struct Stream<'a> {
    pub recv: (&'a [u8], &'a [u8]),
    pub send: (&'a mut [u8], &'a mut [u8]),
}

struct Slot {
    generation: u32,
    live: bool,
    in_ready: bool,
    /// The deadline this slot has in the heap (lazy deletion: other entries are stale).
    heap_at: Option<Instant>,
    /// Allocated on the slot's first use and reused (buffers included) afterwards.
    conn: Option<Box<Conn>>,
}

/// A segment we answer without connection state: cookie SYN-ACK, RST, TIME_WAIT ACK.
struct Reply {
    addrs: FrameAddrs,
    hdr: TcpHeader,
}

/// Compact TIME_WAIT record (RFC 9293 §3.6): enough to re-ACK a FIN, judge RST and SYN.
struct TimeWait {
    addrs: FrameAddrs,
    snd_nxt: SeqNumber,
    rcv_nxt: SeqNumber,
    window: u16,
    ts_recent: Option<u32>,
    ts_offset: u32,
    /// Matches the live entry in the expiry FIFO.
    id: u64,
    /// A new SYN was answered with a cookie: a cookie ACK may take the flow over.
    syn_answered: bool,
}

pub struct Endpoint {
    cfg: TcpConfig,
    cookies: SynCookies,
    slots: Vec<Slot>,
    free: Vec<u32>,
    table: HashMap<FlowKey, u32>,
    time_wait: HashMap<FlowKey, TimeWait>,
    /// (expiry, flow, id) in expiry order (all TIME_WAITs last equally long).
    tw_fifo: VecDeque<(Instant, FlowKey, u64)>,
    tw_fifo_cap: usize,
    tw_next_id: u64,
    stateless: VecDeque<Reply>,
    ready: VecDeque<u32>,
    heap: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    events: VecDeque<Event>,
    stats: TcpStats,
    challenge: ChallengeLimiter,
    /// Client ISNs of recent SYNs, direct-mapped by a keyed hash of the flow, fixed size
    /// (`TcpConfig::syn_hints`); see `cookie_ack`.
    syn_hints: Box<[Option<(FlowKey, SeqNumber)>]>,
    /// Budget of early-data checks (`TcpConfig::early_data_checks`).
    early_limiter: ChallengeLimiter,
    ip_id: u16,
    /// Latest time handed in; application calls (which carry no time) arm timers from it.
    now: Instant,
}

fn flags(bits: &[TcpFlags]) -> TcpFlags {
    bits.iter().fold(TcpFlags::default(), |a, b| a | *b)
}

impl Endpoint {
    pub fn new(mut config: TcpConfig, secret: [u8; 32], now: Instant) -> Self {
        // Keep odd configurations inside what the protocol allows.
        config.window_scale = config.window_scale.min(14);
        config.mss = config.mss.max(88);
        config.max_rto = config.max_rto.max(config.min_rto);
        config.max_connections = config.max_connections.min(u32::MAX as usize);
        let n = config.max_connections;
        let slots = (0..n)
            .map(|_| Slot {
                generation: 0,
                live: false,
                in_ready: false,
                heap_at: None,
                conn: None,
            })
            .collect();
        let free = (0..n as u32).rev().collect();
        let tw_fifo_cap = config.max_time_wait.saturating_mul(2);
        Endpoint {
            cookies: SynCookies::new(secret),
            slots,
            free,
            table: HashMap::with_capacity(n),
            time_wait: HashMap::with_capacity(config.max_time_wait),
            tw_fifo: VecDeque::with_capacity(tw_fifo_cap),
            tw_fifo_cap,
            tw_next_id: 0,
            stateless: VecDeque::with_capacity(config.max_stateless_replies),
            ready: VecDeque::with_capacity(n),
            heap: BinaryHeap::with_capacity(2 * n + 16),
            events: VecDeque::with_capacity((4 * n).min(1 << 16)),
            stats: TcpStats::default(),
            challenge: ChallengeLimiter::new(config.challenge_ack_limit, now),
            early_limiter: ChallengeLimiter::new(config.early_data_checks, now),
            syn_hints: vec![None; config.syn_hints].into_boxed_slice(),
            ip_id: 0,
            now,
            cfg: config,
        }
    }

    pub fn stats(&self) -> &TcpStats {
        &self.stats
    }

    pub fn connection_count(&self) -> usize {
        self.table.len()
    }

    /// What a connection still owes its peer: SND.UNA, the bytes queued and not yet
    /// acknowledged, and whether the peer's window is closed. `None` for a stale handle.
    /// SND.UNA moves only when the peer takes bytes, so a caller can tell a peer that holds
    /// its window at zero from a slow one.
    pub fn send_backlog(&self, conn: ConnHandle) -> Option<SendBacklog> {
        self.valid(conn).map(|c| SendBacklog {
            una: c.snd_una,
            queued: c.tx.len(),
            zero_window: c.peer_window() == 0,
        })
    }

    /// TIME_WAIT records currently held.
    pub fn time_wait_count(&self) -> usize {
        self.time_wait.len()
    }

    fn drop_with(&mut self, reason: DropReason) -> Result<(), DropReason> {
        self.stats.count_drop(reason);
        Err(reason)
    }

    /// One inbound Ethernet frame.
    pub fn handle_frame(&mut self, now: Instant, frame: &[u8]) -> Result<(), DropReason> {
        self.now = self.now.max(now);
        self.stats.segments_in += 1;
        let f = match wire::parse_tcp_frame(frame) {
            Ok(f) => f,
            // A checksum that does not verify is usually damage on the wire; anything else
            // is a frame that was never valid: separate counters tell them apart.
            Err(WireError::TcpChecksum | WireError::IpChecksum) => {
                return self.drop_with(DropReason::BadChecksum)
            }
            Err(_) => return self.drop_with(DropReason::Malformed),
        };
        let t = &f.tcp;
        let fl = t.flags;
        let seg = Seg {
            seq: t.seq,
            ack: fl.contains(TcpFlags::ACK).then_some(t.ack),
            syn: fl.contains(TcpFlags::SYN),
            fin: fl.contains(TcpFlags::FIN),
            rst: fl.contains(TcpFlags::RST),
            window: t.window,
            ts: t.options.timestamps,
            sack: t.options.sack(),
            payload: f.payload,
        };
        // Combinations no state accepts (RFC 9293 leaves them undefined; Linux drops them).
        if seg.syn && (seg.rst || seg.fin) {
            return self.drop_with(DropReason::BadFlags);
        }
        let flow = FlowKey::from_inbound(f.addrs.ip_src, t.src_port, f.addrs.ip_dst, t.dst_port);
        let result = if let Some(&idx) = self.table.get(&flow) {
            self.conn_segment(now, idx, &seg)
        } else if self.time_wait.contains_key(&flow) {
            self.time_wait_segment(now, flow, &f.addrs, t, &seg)
        } else {
            self.unknown_segment(now, flow, &f.addrs, t, &seg)
        };
        if let Err(r) = result {
            self.stats.count_drop(r);
        }
        self.prune();
        result
    }

    fn ctx(&mut self, now: Instant) -> (Ctx<'_>, &mut Vec<Slot>) {
        (
            Ctx {
                now,
                cfg: &self.cfg,
                stats: &mut self.stats,
                events: &mut self.events,
                challenge: &mut self.challenge,
            },
            &mut self.slots,
        )
    }

    fn conn_segment(&mut self, now: Instant, idx: u32, seg: &Seg) -> Result<(), DropReason> {
        let (mut cx, slots) = self.ctx(now);
        let Some(conn) = slots
            .get_mut(idx as usize)
            .filter(|s| s.live)
            .and_then(|s| s.conn.as_deref_mut())
        else {
            return Ok(());
        };
        let (outcome, drop) = conn.handle_segment(&mut cx, seg);
        self.after(now, idx, outcome);
        drop.map_or(Ok(()), Err)
    }

    /// Applies an outcome and reschedules the connection (ready queue, timer heap).
    fn after(&mut self, now: Instant, idx: u32, outcome: Outcome) {
        match outcome {
            Outcome::Keep => self.schedule(idx),
            Outcome::Closed => self.free_slot(idx),
            Outcome::Abort => {
                if let Some(c) = self.slot_conn(idx) {
                    let reply = Reply {
                        addrs: c.addrs,
                        hdr: c.rst_header(),
                    };
                    self.queue_reply(reply);
                }
                self.free_slot(idx);
            }
            Outcome::TimeWait { ack } => {
                let tw = self.slot_conn_mut(idx).map(|c| {
                    let hdr = c.final_ack_header(now);
                    let (snd_nxt, rcv_nxt, ts_recent, ts_offset) = c.time_wait_params();
                    (c.flow, c.addrs, hdr, snd_nxt, rcv_nxt, ts_recent, ts_offset)
                });
                if let Some((flow, addrs, hdr, snd_nxt, rcv_nxt, ts_recent, ts_offset)) = tw {
                    let window = hdr.window;
                    if ack {
                        self.queue_reply(Reply { addrs, hdr });
                    }
                    self.insert_time_wait(
                        now,
                        flow,
                        TimeWait {
                            addrs,
                            snd_nxt,
                            rcv_nxt,
                            window,
                            ts_recent,
                            ts_offset,
                            id: 0,
                            syn_answered: false,
                        },
                    );
                }
                self.free_slot(idx);
            }
        }
    }

    fn slot_conn(&self, idx: u32) -> Option<&Conn> {
        self.slots
            .get(idx as usize)
            .filter(|s| s.live)
            .and_then(|s| s.conn.as_deref())
    }

    fn slot_conn_mut(&mut self, idx: u32) -> Option<&mut Conn> {
        self.slots
            .get_mut(idx as usize)
            .filter(|s| s.live)
            .and_then(|s| s.conn.as_deref_mut())
    }

    fn schedule(&mut self, idx: u32) {
        let Some(slot) = self.slots.get_mut(idx as usize) else {
            return;
        };
        let Some(conn) = slot.conn.as_deref_mut().filter(|_| slot.live) else {
            return;
        };
        conn.update_timers(self.now);
        if conn.wants_transmit() && !slot.in_ready {
            slot.in_ready = true;
            self.ready.push_back(idx);
        }
        let next = conn.timers.next();
        if next != slot.heap_at {
            slot.heap_at = next;
            if let Some(at) = next {
                if self.heap.len() >= self.heap.capacity() {
                    let slots = &self.slots;
                    self.heap
                        .retain(|Reverse((at, i, g))| heap_entry_valid(slots, *at, *i, *g));
                }
                let g = self.slots[idx as usize].generation;
                self.heap.push(Reverse((at, idx, g)));
            }
        }
    }

    fn free_slot(&mut self, idx: u32) {
        let Some(slot) = self.slots.get_mut(idx as usize) else {
            return;
        };
        if !slot.live {
            return;
        }
        slot.live = false;
        slot.heap_at = None;
        let handle = ConnHandle {
            index: idx,
            generation: slot.generation,
        };
        slot.generation = slot.generation.wrapping_add(1);
        if let Some(c) = slot.conn.as_deref() {
            let flow = c.flow;
            self.table.remove(&flow);
            self.events.push_back(Event::Closed { conn: handle, flow });
        }
        self.free.push(idx);
        self.stats.connections_closed += 1;
    }

    /// Drops stale heap tops and TIME_WAIT FIFO fronts so `poll_timeout` is exact.
    fn prune(&mut self) {
        while let Some(Reverse((at, i, g))) = self.heap.peek().copied() {
            if heap_entry_valid(&self.slots, at, i, g) {
                break;
            }
            self.heap.pop();
        }
        while let Some(&(_, flow, id)) = self.tw_fifo.front() {
            if self.time_wait.get(&flow).is_some_and(|t| t.id == id) {
                break;
            }
            self.tw_fifo.pop_front();
        }
    }

    fn queue_reply(&mut self, reply: Reply) -> bool {
        if self.stateless.len() >= self.cfg.max_stateless_replies {
            self.stats.stateless_queue_overflows += 1;
            self.stats.count_drop(DropReason::StatelessQueueFull);
            return false;
        }
        self.stateless.push_back(reply);
        true
    }

    /// RFC 9293 §3.10.7.1 (CLOSED): "If the ACK bit is off, <SEQ=0><ACK=SEG.SEQ+SEG.LEN>
    /// <CTL=RST,ACK>; if the ACK bit is on, <SEQ=SEG.ACK><CTL=RST>". Never a RST for a RST.
    fn queue_rst(&mut self, addrs: &FrameAddrs, t: &TcpHeader, seg: &Seg) {
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

    /// The stateless front: SYN -> cookie SYN-ACK, cookie ACK -> connection, else RST.
    fn unknown_segment(
        &mut self,
        now: Instant,
        flow: FlowKey,
        addrs: &FrameAddrs,
        t: &TcpHeader,
        seg: &Seg,
    ) -> Result<(), DropReason> {
        if seg.rst {
            // CLOSED: "An incoming segment containing a RST is discarded."
            self.stats.rsts_in += 1;
            return Err(DropReason::NoConnection);
        }
        match (seg.syn, seg.ack) {
            // LISTEN, SYN: answer with a cookie, keep nothing (RFC 4987 §3.6).
            (true, None) => self.send_cookie(now, flow, addrs, t, seg),
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

    fn send_cookie(
        &mut self,
        now: Instant,
        flow: FlowKey,
        addrs: &FrameAddrs,
        t: &TcpHeader,
        seg: &Seg,
    ) -> Result<(), DropReason> {
        if self.stateless.len() >= self.cfg.max_stateless_replies {
            self.stats.stateless_queue_overflows += 1;
            return Err(DropReason::StatelessQueueFull);
        }
        let req = CookieRequest {
            mss: t.options.mss,
            window_scale: t.options.window_scale,
            sack_permitted: t.options.sack_permitted,
            tsval: t.options.timestamps.map(|(v, _)| v),
        };
        let cookie = self.cookies.generate(now, &flow, seg.seq, &req);
        let mut options = TcpOptions {
            mss: Some(self.cfg.mss),
            ..TcpOptions::default()
        };
        if req.offered_window_scale().is_some() {
            options.window_scale = Some(self.cfg.window_scale.min(14));
        }
        options.sack_permitted = req.offered_sack();
        if let (Some(ours), Some(theirs)) = (cookie.tsval, req.tsval) {
            options.timestamps = Some((ours, theirs));
        }
        let hdr = TcpHeader {
            src_port: t.dst_port,
            dst_port: t.src_port,
            seq: cookie.isn,
            ack: seg.seq + 1u32,
            flags: flags(&[TcpFlags::SYN, TcpFlags::ACK]),
            // RFC 7323 §2.2: the window in a SYN-ACK is never scaled.
            window: self.cfg.syn_window(),
            urgent: 0,
            options,
        };
        self.stats.cookies_sent += 1;
        if let Some(i) = self.hint_slot(&flow) {
            if let Some(h) = self.syn_hints.get_mut(i) {
                *h = Some((flow, seg.seq));
            }
        }
        self.queue_reply(Reply {
            addrs: addrs.reversed(),
            hdr,
        });
        Ok(())
    }

    fn cookie_ack(
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
        let Some(idx) = self.free.pop() else {
            self.stats.table_full += 1;
            self.queue_rst(addrs, t, seg);
            return Err(DropReason::TableFull);
        };
        let neg = Negotiated {
            iss: params.isn,
            irs: params.client_isn,
            peer_mss: params.mss,
            window_scale: params.window_scale,
            sack_permitted: params.sack_permitted,
            timestamps: params.timestamps,
            ts_offset: self.cookies.ts_offset(&flow),
        };
        let slot = &mut self.slots[idx as usize];
        let handle = ConnHandle {
            index: idx,
            generation: slot.generation,
        };
        let reply_addrs = addrs.reversed();
        match slot.conn.as_deref_mut() {
            Some(c) => c.reinit(handle, flow, reply_addrs, &neg, &self.cfg, now),
            None => {
                slot.conn = Some(Box::new(Conn::new(
                    handle,
                    flow,
                    reply_addrs,
                    &neg,
                    &self.cfg,
                    now,
                    None,
                )))
            }
        }
        slot.live = true;
        if let (true, Some((tsval, _)), Some(c)) =
            (params.timestamps, seg.ts, slot.conn.as_deref_mut())
        {
            c.set_ts_recent(tsval, now);
        }
        self.table.insert(flow, idx);
        // The hint has served its purpose: it is for segments that arrive before the
        // connection exists. Kept, it would let a stale segment of this connection that
        // arrives after it closed (a reordered or duplicated ACK, within the cookie's lifetime)
        // create a phantom connection that nobody talks to until the idle timeout (found by
        // the engine simulation); without it such a segment gets the RFC 9293 §3.10.7.2 RST.
        if let Some(h) = self
            .hint_slot(&flow)
            .and_then(|i| self.syn_hints.get_mut(i))
        {
            if h.is_some_and(|(f, _)| f == flow) {
                *h = None;
            }
        }
        self.stats.connections_established += 1;
        self.events
            .push_back(Event::Established { conn: handle, flow });
        // The ACK may carry data (and even a FIN): run it through the state machine.
        self.conn_segment(now, idx, seg)
    }

    /// The slot of `flow` in the SYN hint table.
    fn hint_slot(&self, flow: &FlowKey) -> Option<usize> {
        let n = self.syn_hints.len();
        if n == 0 {
            return None;
        }
        Some((self.table.hasher().hash_one(flow) % n as u64) as usize)
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
        let (f, isn) = (*self.syn_hints.get(self.hint_slot(flow)?)?)?;
        if f != *flow {
            return None;
        }
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
        let idx = (((ack - 1u32).0 >> 28) & 3) as usize;
        let cookie_mss = u32::from(MSS_TABLE[idx].min(self.cfg.mss));
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

    fn insert_time_wait(&mut self, now: Instant, flow: FlowKey, mut tw: TimeWait) {
        if self.cfg.max_time_wait == 0 {
            return;
        }
        while self.time_wait.len() >= self.cfg.max_time_wait
            || self.tw_fifo.len() >= self.tw_fifo_cap
        {
            let Some((_, old, id)) = self.tw_fifo.pop_front() else {
                break;
            };
            if self.time_wait.get(&old).is_some_and(|t| t.id == id) {
                self.time_wait.remove(&old);
                self.stats.time_wait_overflows += 1;
            }
        }
        self.tw_next_id = self.tw_next_id.wrapping_add(1);
        tw.id = self.tw_next_id;
        self.tw_fifo
            .push_back((now + self.cfg.time_wait, flow, tw.id));
        self.time_wait.insert(flow, tw);
    }

    /// Restart the 2*MSL timer of a record (RFC 9293: a retransmitted FIN in TIME-WAIT).
    fn restart_time_wait(&mut self, now: Instant, flow: FlowKey) {
        if self.tw_fifo.len() >= self.tw_fifo_cap {
            return;
        }
        self.tw_next_id = self.tw_next_id.wrapping_add(1);
        let id = self.tw_next_id;
        if let Some(tw) = self.time_wait.get_mut(&flow) {
            tw.id = id;
            self.tw_fifo.push_back((now + self.cfg.time_wait, flow, id));
        }
    }

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
    fn time_wait_segment(
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
                    self.prune();
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
                self.prune();
                self.cookie_ack(now, flow, addrs, t, seg, ack)
            }
            // Retransmitted FIN: "Acknowledge it, and restart the 2 MSL timeout."
            (false, false, _) if seg.fin => {
                self.time_wait_ack(now, flow, t);
                self.restart_time_wait(now, flow);
                self.prune();
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

    /// Writes one frame into `buf`: stateless replies first, then connections with output.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        self.now = self.now.max(now);
        while let Some(r) = self.stateless.pop_front() {
            self.ip_id = self.ip_id.wrapping_add(1);
            if let Ok(n) =
                wire::emit_tcp_frame(buf, &r.addrs, self.ip_id, self.cfg.ttl, &r.hdr, [&[], &[]])
            {
                self.stats.segments_out += 1;
                if r.hdr.flags.contains(TcpFlags::RST) {
                    self.stats.rsts_out += 1;
                }
                return Some(n);
            }
        }
        while let Some(idx) = self.ready.pop_front() {
            if let Some(slot) = self.slots.get_mut(idx as usize) {
                slot.in_ready = false;
            }
            self.ip_id = self.ip_id.wrapping_add(1);
            let ip_id = self.ip_id;
            let (mut cx, slots) = self.ctx(now);
            let Some(conn) = slots
                .get_mut(idx as usize)
                .filter(|s| s.live)
                .and_then(|s| s.conn.as_deref_mut())
            else {
                continue;
            };
            let n = conn.poll_transmit(&mut cx, buf, ip_id);
            if n.is_some() {
                self.schedule(idx);
                self.prune();
                return n;
            }
            self.schedule(idx);
        }
        self.prune();
        None
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let conn = self.heap.peek().map(|Reverse((at, _, _))| *at);
        let tw = self.tw_fifo.front().map(|(at, _, _)| *at);
        match (conn, tw) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        // TIME_WAIT expiry: the FIFO is in expiry order.
        while let Some(&(at, flow, id)) = self.tw_fifo.front() {
            if at > now {
                break;
            }
            self.tw_fifo.pop_front();
            if self.time_wait.get(&flow).is_some_and(|t| t.id == id) {
                self.time_wait.remove(&flow);
            }
        }
        let mut budget = self.heap.len().saturating_mul(2).saturating_add(16);
        while let Some(Reverse((at, idx, g))) = self.heap.peek().copied() {
            if at > now || budget == 0 {
                break;
            }
            budget -= 1;
            self.heap.pop();
            if !heap_entry_valid(&self.slots, at, idx, g) {
                continue;
            }
            self.slots[idx as usize].heap_at = None;
            let (mut cx, slots) = self.ctx(now);
            let Some(conn) = slots
                .get_mut(idx as usize)
                .and_then(|s| s.conn.as_deref_mut())
            else {
                continue;
            };
            let outcome = conn.handle_timeout(&mut cx);
            self.after(now, idx, outcome);
        }
        self.prune();
    }

    /// Next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        let ev = self.events.pop_front()?;
        match ev {
            Event::Readable(h) => {
                if let Some(c) = self.conn_mut(h) {
                    c.readable_signalled = false;
                }
            }
            Event::Writable(h) => {
                if let Some(c) = self.conn_mut(h) {
                    c.writable_signalled = false;
                }
            }
            _ => {}
        }
        Some(ev)
    }

    fn valid(&self, h: ConnHandle) -> Option<&Conn> {
        self.slots
            .get(h.index as usize)
            .filter(|s| s.live && s.generation == h.generation)
            .and_then(|s| s.conn.as_deref())
    }

    fn conn_mut(&mut self, h: ConnHandle) -> Option<&mut Conn> {
        self.slots
            .get_mut(h.index as usize)
            .filter(|s| s.live && s.generation == h.generation)
            .and_then(|s| s.conn.as_deref_mut())
    }

    /// The readable bytes, in order (empty for a stale handle).
    pub fn recv_slices(&self, conn: ConnHandle) -> (&[u8], &[u8]) {
        match self.valid(conn) {
            Some(c) => c.rx.as_slices(),
            None => (&[], &[]),
        }
    }

    /// The application is done with `n` readable bytes; the window reopens.
    pub fn consume(&mut self, conn: ConnHandle, n: usize) {
        let (now, delay) = (self.now, self.cfg.delayed_ack);
        if let Some(c) = self.conn_mut(conn) {
            c.consume(n, now, delay);
            self.schedule(conn.index);
            self.prune();
        }
    }

    /// Free transmit space to write into (empty after `close` or for a stale handle).
    pub fn send_space(&mut self, conn: ConnHandle) -> (&mut [u8], &mut [u8]) {
        match self.conn_mut(conn) {
            Some(c) if c.can_send() => c.tx.writable_slices(),
            _ => (&mut [], &mut []),
        }
    }

    /// Both sides of a connection at once, for a caller that moves bytes from one to the
    /// other without a copy in between (the HTTP layer reads requests and writes responses in
    /// one pass). Follow with `consume` and `commit_send`. `None` for a stale handle.
    pub fn stream(&mut self, conn: ConnHandle) -> Option<Stream<'_>> {
        let c = self.conn_mut(conn)?;
        let can_send = c.can_send();
        let recv = c.rx.as_slices();
        let send = if can_send {
            c.tx.writable_slices()
        } else {
            (&mut [][..], &mut [][..])
        };
        Some(Stream { recv, send })
    }

    /// Queues the first `n` bytes written into `send_space`.
    pub fn commit_send(&mut self, conn: ConnHandle, n: usize) {
        if let Some(c) = self.conn_mut(conn) {
            if c.can_send() {
                c.commit_send(n);
            }
            self.schedule(conn.index);
            self.prune();
        }
    }

    /// FIN after the queued data (RFC 9293 §3.10.4).
    pub fn close(&mut self, conn: ConnHandle) {
        if let Some(c) = self.conn_mut(conn) {
            c.close();
            self.schedule(conn.index);
            self.prune();
        }
    }

    /// RST now (RFC 9293 §3.10.5) and free the connection.
    pub fn abort(&mut self, conn: ConnHandle) {
        if let Some(c) = self.valid(conn) {
            let reply = Reply {
                addrs: c.addrs,
                hdr: c.rst_header(),
            };
            self.queue_reply(reply);
            self.free_slot(conn.index);
            self.prune();
        }
    }

    #[cfg(test)]
    pub(crate) fn conn_for_test(&self, h: ConnHandle) -> Option<&Conn> {
        self.valid(h)
    }

    #[cfg(test)]
    pub(crate) fn heap_len(&self) -> usize {
        self.heap.len()
    }
}

fn heap_entry_valid(slots: &[Slot], at: Instant, idx: u32, generation: u32) -> bool {
    slots
        .get(idx as usize)
        .is_some_and(|s| s.live && s.generation == generation && s.heap_at == Some(at))
}

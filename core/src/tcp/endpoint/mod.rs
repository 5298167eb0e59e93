//! The endpoint: connection table (slab + generation handles), stateless reply queue, the
//! connections' deadlines (`deadlines.rs`), ready queue, events; segments for unknown flows go
//! to the SYN cache (`syn_cache.rs`, rules in `syn_received.rs`) or the stateless SYN-cookie
//! front (`cookie_front.rs`), segments for flows in TIME_WAIT to their compact records
//! (`time_wait.rs`); ICMP path MTU messages to the connection whose segment they quote
//! (`conn/path_mtu.rs`).
//!
//! Call order (quinn-proto style): feed frames with `handle_frame`, then drain `poll_event`
//! and `poll_transmit` until they return `None`; sleep until `poll_timeout`, then call
//! `handle_timeout`. Application calls (`consume`, `commit_send`, `close`, `abort`) may queue
//! output too, so drain `poll_transmit` after them.

mod cookie_front;
mod deadlines;
mod pmtu_cache;
mod syn_cache;
mod syn_received;
mod time_wait;

use std::collections::{HashMap, VecDeque};

use super::buffer_budget::BufferBudget;
use super::challenge::ChallengeLimiter;
use super::config::{DropReason, TcpConfig, TcpStats};
use super::conn::{Conn, Ctx, Outcome, PmtuVerdict, Seg};
use super::syncookie::SynCookies;
use super::FlowKey;
use crate::time::Instant;
use crate::wire::{
    self, FrameAddrs, IcmpMessage, PmtuMessage, SeqNumber, TcpFlags, TcpHeader, WireError,
};
use cookie_front::SynHints;
use deadlines::Deadlines;
use pmtu_cache::PmtuCache;
use syn_cache::SynCache;
use time_wait::{TimeWait, TimeWaitRecords};

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
    /// After the handshake-completing ACK (of a SYN cache entry or a valid cookie): the
    /// connection exists.
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
    /// Allocated on the slot's first use and reused (buffers included) afterwards.
    conn: Option<Box<Conn>>,
}

/// A segment we answer without connection state: cookie SYN-ACK, RST, TIME_WAIT ACK.
struct Reply {
    addrs: FrameAddrs,
    hdr: TcpHeader,
}

pub struct Endpoint {
    cfg: TcpConfig,
    cookies: SynCookies,
    slots: Vec<Slot>,
    free: Vec<u32>,
    table: HashMap<FlowKey, u32>,
    time_wait: TimeWaitRecords,
    stateless: VecDeque<Reply>,
    ready: VecDeque<u32>,
    /// Each live connection's next timer deadline (`Conn::timers`' earliest).
    deadlines: Deadlines,
    events: VecDeque<Event>,
    stats: TcpStats,
    challenge: ChallengeLimiter,
    /// Send-ring growth all connections hold together (`TcpConfig::buffer_budget`).
    budget: BufferBudget,
    syn_hints: SynHints,
    /// SYN-RECEIVED flows with their exact options (`TcpConfig::syn_cache`).
    syn_cache: SynCache,
    /// Budget of early-data checks (`TcpConfig::early_data_checks`).
    early_limiter: ChallengeLimiter,
    ip_id: u16,
    /// Latest time handed in; application calls (which carry no time) arm timers from it.
    now: Instant,
    /// Path MTU messages about flows this endpoint does not hold, kept for the caller to hand
    /// to the endpoint that does (another RX queue's: [`Endpoint::forward_foreign_pmtu`]);
    /// `None`: counted as `pmtu_unknown_flow` at once. Bounded by [`FOREIGN_PMTU_MAX`].
    foreign_pmtu: Option<VecDeque<PmtuMessage>>,
    /// The send MSS path MTU messages taught per destination, for the next connections.
    pmtu_cache: PmtuCache,
}

/// Path MTU messages an endpoint keeps for another queue between two polls; beyond that they
/// are counted as `pmtu_unknown_flow` (a burst of ICMP about other queues' flows costs no
/// more than this).
pub const FOREIGN_PMTU_MAX: usize = 16;

impl Endpoint {
    pub fn new(mut config: TcpConfig, secret: [u8; 32], now: Instant) -> Self {
        // Keep odd configurations inside what the protocol allows.
        config.window_scale = config.window_scale.min(14);
        config.mss = config.mss.max(88);
        config.max_rto = config.max_rto.max(config.min_rto);
        config.tx_buffer_max = config.tx_buffer_max.max(config.tx_buffer);
        config.rx_buffer_max = config.rx_buffer_max.max(config.rx_buffer);
        config.max_connections = config.max_connections.min(u32::MAX as usize);
        // Entry indices are u32 in the deadline heap.
        config.syn_cache = config.syn_cache.min(1 << 24);
        let n = config.max_connections;
        let slots = (0..n)
            .map(|_| Slot {
                generation: 0,
                live: false,
                in_ready: false,
                conn: None,
            })
            .collect();
        let free = (0..n as u32).rev().collect();
        Endpoint {
            cookies: SynCookies::new(secret),
            slots,
            free,
            table: HashMap::with_capacity(n),
            time_wait: TimeWaitRecords::new(config.max_time_wait, config.time_wait),
            stateless: VecDeque::with_capacity(config.max_stateless_replies),
            ready: VecDeque::with_capacity(n),
            deadlines: Deadlines::new(n),
            events: VecDeque::with_capacity((4 * n).min(1 << 16)),
            stats: TcpStats::default(),
            challenge: ChallengeLimiter::new(config.challenge_ack_limit, now),
            budget: BufferBudget::new(config.buffer_budget),
            early_limiter: ChallengeLimiter::new(config.early_data_checks, now),
            syn_hints: SynHints::new(config.syn_hints),
            syn_cache: SynCache::new(config.syn_cache, config.syn_cache_rate, now),
            ip_id: 0,
            now,
            foreign_pmtu: None,
            pmtu_cache: PmtuCache::new(),
            cfg: config,
        }
    }

    /// Keeps path MTU messages about flows this endpoint does not hold for
    /// [`poll_foreign_pmtu`](Self::poll_foreign_pmtu), instead of counting them as unknown:
    /// for an endpoint that is one of several RX queues' (a NIC hashes an ICMP error by its
    /// addresses, not by the quoted connection's ports, so it can land on another queue).
    pub fn forward_foreign_pmtu(&mut self, on: bool) {
        self.foreign_pmtu = on.then(|| VecDeque::with_capacity(FOREIGN_PMTU_MAX));
    }

    /// A path MTU message kept for another endpoint (see
    /// [`forward_foreign_pmtu`](Self::forward_foreign_pmtu)).
    pub fn poll_foreign_pmtu(&mut self) -> Option<PmtuMessage> {
        self.foreign_pmtu.as_mut()?.pop_front()
    }

    /// A path MTU message another endpoint received about a flow of this one's: applied as
    /// if it had arrived here, and counted here (`pmtu_unknown_flow` if the flow is gone).
    pub fn handle_forwarded_pmtu(&mut self, now: Instant, m: &PmtuMessage) {
        self.now = now;
        self.apply_path_mtu(now, m);
    }

    pub fn stats(&self) -> &TcpStats {
        &self.stats
    }

    pub fn connection_count(&self) -> usize {
        self.table.len()
    }

    /// What a connection still owes its peer: SND.UNA and the bytes queued and not yet
    /// acknowledged. `None` for a stale handle. SND.UNA moves only when the peer takes bytes,
    /// so a caller can tell a peer that stopped reading from a slow one.
    pub fn send_backlog(&self, conn: ConnHandle) -> Option<SendBacklog> {
        self.valid(conn).map(|c| SendBacklog {
            una: c.snd_una,
            queued: c.tx.len(),
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
            // Off the hot path: an IP packet that is not TCP may be an ICMP error the XDP
            // program steered here because it quotes one of our segments.
            Err(WireError::NotTcp) => return self.icmp_frame(now, frame),
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
            ecn_flags: TcpFlags::from_bits(
                fl.bits() & (TcpFlags::ECE.bits() | TcpFlags::CWR.bits()),
            ),
            ecn: f.ecn,
        };
        // Combinations no state accepts (RFC 9293 leaves them undefined; Linux drops them).
        if seg.syn && (seg.rst || seg.fin) {
            return self.drop_with(DropReason::BadFlags);
        }
        let flow = FlowKey::from_inbound(f.addrs.ip, t.src_port, t.dst_port);
        let result = if let Some(&idx) = self.table.get(&flow) {
            self.conn_segment(now, idx, &seg)
        } else if self.time_wait.contains(&flow) {
            self.time_wait_segment(now, flow, &f.addrs, t, &seg)
        } else {
            self.unknown_segment(now, flow, &f.addrs, t, &seg)
        };
        if let Err(r) = result {
            self.stats.count_drop(r);
        }
        result
    }

    /// A frame that is IP but not TCP. A path MTU message (RFC 1191, RFC 8201) goes to the
    /// connection it quotes, and is counted by what it did (`TcpStats::pmtu_*`) rather than
    /// as a drop; anything else, ICMP or not, is `Malformed` as before.
    fn icmp_frame(&mut self, now: Instant, frame: &[u8]) -> Result<(), DropReason> {
        match wire::parse_icmp_frame(frame) {
            Ok(IcmpMessage::PacketTooBig(m)) => {
                self.path_mtu(now, &m);
                Ok(())
            }
            Ok(IcmpMessage::Other { .. }) => self.drop_with(DropReason::Malformed),
            Err(WireError::IcmpChecksum | WireError::IpChecksum) => {
                self.drop_with(DropReason::BadChecksum)
            }
            Err(_) => self.drop_with(DropReason::Malformed),
        }
    }

    /// Hands a path MTU message to the connection of the quoted flow. TIME_WAIT records and
    /// SYN cache entries send nothing a router could have dropped for its size (a SYN-ACK
    /// has no payload), so only live connections are asked.
    fn path_mtu(&mut self, now: Instant, m: &PmtuMessage) {
        if !self.table.contains_key(&m.flow) {
            if let Some(foreign) = self.foreign_pmtu.as_mut() {
                if foreign.len() < FOREIGN_PMTU_MAX {
                    foreign.push_back(*m);
                    return;
                }
            }
        }
        self.apply_path_mtu(now, m);
    }

    /// [`path_mtu`](Self::path_mtu) for a flow this endpoint is the one to ask about.
    fn apply_path_mtu(&mut self, now: Instant, m: &PmtuMessage) {
        let idx = self.table.get(&m.flow).copied();
        let verdict = idx.and_then(|idx| {
            let (mut cx, slots) = self.ctx(now);
            let conn = slots
                .get_mut(idx as usize)
                .filter(|s| s.live)
                .and_then(|s| s.conn.as_deref_mut())?;
            Some(conn.on_path_mtu(&mut cx, m.mtu, m.seq))
        });
        if let (Some(idx), Some(_)) = (idx, verdict) {
            self.schedule(idx);
        }
        let st = &mut self.stats;
        match verdict {
            Some(PmtuVerdict::Lowered(mss)) => {
                st.pmtu_lowered += 1;
                self.pmtu_cache.learn(m.flow.remote().ip(), mss, now);
                return;
            }
            Some(PmtuVerdict::Unchanged) => st.pmtu_unchanged += 1,
            Some(PmtuVerdict::Stale) => st.pmtu_stale += 1,
            Some(PmtuVerdict::BelowMinimum) => st.pmtu_below_minimum += 1,
            None => st.pmtu_unknown_flow += 1,
        }
        st.pmtu_ignored += 1;
    }

    fn ctx(&mut self, now: Instant) -> (Ctx<'_>, &mut Vec<Slot>) {
        (
            Ctx {
                now,
                cfg: &self.cfg,
                stats: &mut self.stats,
                events: &mut self.events,
                challenge: &mut self.challenge,
                budget: &mut self.budget,
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

    /// Applies an outcome and reschedules the connection (ready queue, deadline).
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
                    self.stats.time_wait_overflows += self.time_wait.insert(
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

    /// After anything that may have changed a live connection: its timers made consistent
    /// (the one place `Conn::update_timers` is called), the ready queue if it has something to
    /// send, its deadline.
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
        self.deadlines.set(idx, conn.timers.next());
    }

    fn free_slot(&mut self, idx: u32) {
        let Some(slot) = self.slots.get_mut(idx as usize) else {
            return;
        };
        if !slot.live {
            return;
        }
        slot.live = false;
        self.deadlines.set(idx, None);
        let handle = ConnHandle {
            index: idx,
            generation: slot.generation,
        };
        slot.generation = slot.generation.wrapping_add(1);
        if let Some(c) = slot.conn.as_deref_mut() {
            let flow = c.flow;
            self.table.remove(&flow);
            self.events.push_back(Event::Closed { conn: handle, flow });
            // A grown send ring goes back to its first size, and its growth to the budget.
            let grown = c.release_grown_buffers(&self.cfg);
            if grown > 0 {
                self.budget.give_back(grown);
                self.stats.buffer_grown_bytes = self.budget.used() as u64;
            }
        }
        self.free.push(idx);
        self.stats.connections_closed += 1;
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

    /// Writes one frame into `buf`: stateless replies first, then connections with output.
    #[must_use]
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
        // Each connection queued now gets one turn: one that asked to send but produced
        // nothing goes back to the queue for the next call, never around this loop again
        // (a `wants_transmit` that a `poll_transmit` cannot honour would otherwise spin here).
        let mut turns = self.ready.len();
        while turns > 0 {
            turns -= 1;
            let Some(idx) = self.ready.pop_front() else {
                break;
            };
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
                return n;
            }
            self.schedule(idx);
        }
        None
    }

    /// The earliest deadline of any connection or TIME_WAIT record: call `handle_timeout`
    /// then.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let conn = self.deadlines.first().map(|(at, _)| at);
        let tw = self.time_wait.next_expiry();
        let syn = self.syn_cache.next_deadline();
        [conn, tw, syn].into_iter().flatten().min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        self.time_wait.expire(now);
        self.syn_cache_timeouts(now);
        // A connection whose timers fired is rescheduled after `now` or freed; the budget
        // bounds the loop even if a timer were re-armed at or before `now`.
        let mut budget = self.deadlines.len().saturating_mul(2).saturating_add(16);
        while let Some((at, idx)) = self.deadlines.first() {
            if at > now || budget == 0 {
                break;
            }
            budget -= 1;
            self.deadlines.set(idx, None);
            let (mut cx, slots) = self.ctx(now);
            let Some(conn) = slots
                .get_mut(idx as usize)
                .filter(|s| s.live)
                .and_then(|s| s.conn.as_deref_mut())
            else {
                continue;
            };
            let outcome = conn.handle_timeout(&mut cx);
            self.after(now, idx, outcome);
        }
    }

    /// Next event for the application.
    #[must_use]
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
        let delay = self.cfg.delayed_ack;
        if let Some((c, mut cx)) = self.conn_with_ctx(conn) {
            c.consume(&mut cx, n, delay);
            self.schedule(conn.index);
        }
    }

    /// A live connection with the context its calls need (counters, budget); `None` for a
    /// stale handle.
    fn conn_with_ctx(&mut self, h: ConnHandle) -> Option<(&mut Conn, Ctx<'_>)> {
        let now = self.now;
        let (cx, slots) = self.ctx(now);
        let c = slots
            .get_mut(h.index as usize)
            .filter(|s| s.live && s.generation == h.generation)
            .and_then(|s| s.conn.as_deref_mut())?;
        Some((c, cx))
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
    /// one pass). Follow with `stream_done`. `None` for a stale handle.
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

    /// Ends what `stream` lent: the first `consumed` readable bytes are done with (as
    /// `consume`) and the first `produced` bytes of the free space are queued (as
    /// `commit_send`), with one reschedule for both.
    pub fn stream_done(&mut self, conn: ConnHandle, consumed: usize, produced: usize) {
        let delay = self.cfg.delayed_ack;
        if let Some((c, mut cx)) = self.conn_with_ctx(conn) {
            c.consume(&mut cx, consumed, delay);
            if c.can_send() {
                c.commit_send(produced);
            }
            self.schedule(conn.index);
        }
    }

    /// Queues the first `n` bytes written into `send_space`.
    pub fn commit_send(&mut self, conn: ConnHandle, n: usize) {
        if let Some(c) = self.conn_mut(conn) {
            if c.can_send() {
                c.commit_send(n);
            }
            self.schedule(conn.index);
        }
    }

    /// FIN after the queued data (RFC 9293 §3.10.4).
    pub fn close(&mut self, conn: ConnHandle) {
        if let Some(c) = self.conn_mut(conn) {
            c.close();
            self.schedule(conn.index);
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
        }
    }

    #[cfg(test)]
    pub(crate) fn conn_for_test(&self, h: ConnHandle) -> Option<&Conn> {
        self.valid(h)
    }

    #[cfg(test)]
    pub(crate) fn syn_cache_len(&self) -> usize {
        self.syn_cache.len()
    }

    #[cfg(test)]
    pub(crate) fn heap_len(&self) -> usize {
        self.deadlines.len()
    }
}

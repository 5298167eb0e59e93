//! One synchronized connection: RFC 9293 state machine from ESTABLISHED onwards (the handshake
//! is stateless, see `endpoint/cookie_front.rs`), RFC 5961 checks, RFC 7323 PAWS, loss
//! recovery (RFC 5681 §3.2, RFC 6582, RFC 6675-lite, RFC 8985 RACK-TLP), the timers.
//!
//! This file is the state machine: what one segment or one timer does to the connection. The
//! pieces it drives live beside it: `receive.rs` (the text into the receive ring, delayed ACK,
//! window updates), `transmit.rs` (the next segment and its header) and `loss_detection.rs`
//! (RACK, the tail loss probe and D-SACK on the sender's side), `path_mtu.rs` (the send MSS
//! an ICMP "too big" lowers, and the resend at the new size); the RTO estimator
//! (`tcp/rtt.rs`), the congestion window (`tcp/congestion/`), the SACK scoreboard
//! (`tcp/sack.rs`), the send log (`tcp/send_log.rs`), RACK's state (`tcp/rack.rs`) and the
//! probe's (`tcp/tlp.rs`) are types of their own.

mod loss_detection;
mod path_mtu;
mod receive;
mod transmit;

pub use path_mtu::PmtuVerdict;

use std::collections::VecDeque;

use super::assembler::Assembler;
use super::buffer_budget::BufferBudget;
use super::challenge::ChallengeLimiter;
use super::config::{DropReason, TcpConfig, TcpStats};
use super::congestion::{AckSample, Congestion, CongestionControl, FlightPeak};
use super::ecn::EcnState;
use super::prr::Prr;
use super::push_marks::PushMarks;
use super::quick_ack::QuickAck;
use super::rack::Rack;
use super::rcv_rtt::RcvRtt;
use super::ring::RingBuffer;
use super::rtt::RttEstimator;
use super::sack::{self, Scoreboard};
use super::send_log::{self, sent_after, Delivered, SendLog};
use super::timer::{Timer, TimerTable, TIMERS};
use super::tlp::LossProbe;
use super::{ConnHandle, Event, FlowKey};
use crate::time::{Duration, Instant};
use crate::wire::{Ecn, FrameAddrs, SackBlock, SeqNumber, TcpFlags};

/// Synchronized states. SYN_RECEIVED never exists (cookies), TIME_WAIT lives in a compact
/// record outside the connection table (`endpoint::time_wait::TimeWait`), CLOSED is a free slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Established,
    CloseWait,
    LastAck,
    FinWait1,
    FinWait2,
    Closing,
    /// Transient: the endpoint turns the connection into a TIME_WAIT record right away.
    TimeWait,
}

/// What the endpoint must do with the connection after an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Keep,
    /// Turn into a TIME_WAIT record, free the slot; `ack`: ACK the peer's FIN statelessly
    /// (not when the FIN was ACKed already and this is the ACK of ours, from CLOSING).
    TimeWait {
        ack: bool,
    },
    /// Free the slot quietly (RST received, LAST_ACK done, FIN_WAIT_2 timeout).
    Closed,
    /// Send a RST and free the slot (retransmissions exhausted, idle, app abort).
    Abort,
}

/// A parsed inbound segment, as the state machine needs it.
#[derive(Debug, Clone, Copy)]
pub struct Seg<'a> {
    pub seq: SeqNumber,
    pub ack: Option<SeqNumber>,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    pub window: u16,
    pub ts: Option<(u32, u32)>,
    /// The peer's SACK blocks (RFC 2018), at most 4.
    pub sack: &'a [SackBlock],
    pub payload: &'a [u8],
    /// The segment's ECE and CWR flags (RFC 3168), as received.
    pub ecn_flags: TcpFlags,
    /// The IP header's ECN field.
    pub ecn: Ecn,
}

impl Seg<'_> {
    /// SEG.LEN: payload plus one for each of SYN and FIN.
    pub fn len(&self) -> u32 {
        (self.payload.len() as u32)
            .saturating_add(u32::from(self.syn))
            .saturating_add(u32::from(self.fin))
    }
}

/// Everything of the endpoint a connection may touch while it handles an input.
pub struct Ctx<'a> {
    pub now: Instant,
    pub cfg: &'a TcpConfig,
    pub stats: &'a mut TcpStats,
    pub events: &'a mut VecDeque<Event>,
    pub challenge: &'a mut ChallengeLimiter,
    pub budget: &'a mut BufferBudget,
}

/// What a cookie validated: the parameters a new connection starts with.
#[derive(Debug, Clone, Copy)]
pub struct Negotiated {
    pub iss: SeqNumber,
    pub irs: SeqNumber,
    pub peer_mss: u16,
    /// Peer's shift when both sides sent the option (RFC 7323 §2.2), else `None`.
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    pub timestamps: bool,
    /// Our TSval at `now` minus `now` in ms (so `ts_now` continues the cookie's clock).
    pub ts_offset: u32,
    /// ECN (RFC 3168) agreed in the handshake.
    pub ecn: bool,
}

/// 24 days: TS.Recent older than this is invalid for PAWS (RFC 7323 §5.5).
const PAWS_IDLE: Duration = Duration::from_secs(24 * 24 * 3600);
/// PAWS tolerance (RFC 7323 §5.3 R1), in the peer's timestamp ticks: a segment whose TSval is
/// at most this much older than TS.Recent is not treated as an old duplicate. Reordering within
/// one burst of the peer's makes such segments ordinary: TS.Recent can be advanced by a segment
/// sent a few ms after others that are still on their way (a fast retransmission that fills
/// the hole at RCV.NXT, say), and dropping those others loses new data that a peer without
/// SACK only resends after its RTO -- which, backed off, was a 60 s stall in the engine
/// simulation (seed 2754, `reorder25`). Linux tolerates 1 tick (TCP_PAWS_WINDOW). PAWS guards
/// against duplicates from a previous wrap of the sequence space; at 1 ms per tick this keeps
/// that guard for any connection slower than 2^32 bytes per 16 ms (over 2 Tbit/s).
const PAWS_REORDER_TICKS: i32 = 16;

pub struct Conn {
    pub handle: ConnHandle,
    pub flow: FlowKey,
    /// Addressing of every frame we send (the first inbound frame's, reversed).
    pub addrs: FrameAddrs,
    pub state: State,

    // Send sequence space (RFC 9293 §3.3.1). `snd_max` is the highest SND.NXT ever reached;
    // `snd_nxt` goes back to SND.UNA on a retransmission timeout (go-back-N).
    pub snd_una: SeqNumber,
    pub snd_nxt: SeqNumber,
    pub snd_max: SeqNumber,
    snd_wnd: u32,
    snd_wl1: SeqNumber,
    snd_wl2: SeqNumber,
    max_snd_wnd: u32,
    /// The end of the last segment sent with PSH: see `push_due` (transmit.rs).
    pushed_seq: SeqNumber,
    /// The ends of the application's writes not sent yet (`push_marks.rs`).
    push_marks: PushMarks,
    snd_wscale: u8,
    /// Largest payload per segment before option bytes: min(peer MSS, our MSS), or less once
    /// a path MTU message lowered it (`path_mtu.rs`; never raised again).
    smss: u32,
    /// `close()` was called: a FIN follows the queued data.
    fin_queued: bool,
    /// Our FIN has been acknowledged.
    fin_acked: bool,

    // Receive sequence space.
    pub rcv_nxt: SeqNumber,
    rcv_wscale: u8,
    /// Right edge of the window we advertised; never moves left (RFC 9293 §3.8.6.2.2).
    rcv_right: SeqNumber,
    /// Sequence number of a FIN received out of order, processed when RCV.NXT reaches it.
    rx_fin: Option<SeqNumber>,
    last_ack_sent: SeqNumber,

    // Options.
    ts_enabled: bool,
    ts_recent: u32,
    ts_recent_at: Instant,
    ts_offset: u32,
    sack_ok: bool,
    /// The peer has sent a SACK block on this connection (so its ACKs without one say it
    /// holds nothing above the cumulative ACK).
    peer_sacks: bool,

    pub rx: RingBuffer,
    pub tx: RingBuffer,
    asm: Assembler,

    // ACK generation.
    ack_now: bool,
    unacked_bytes: usize,
    /// Every data segment ACKed at once while the peer starts (up), as Linux's quick ACKs.
    quick_ack: QuickAck,

    // RTT / RTO (RFC 6298).
    rtt: RttEstimator,
    retries: u32,

    // Congestion control: the window is `cc`'s; loss recovery (RFC 5681 §3.2, RFC 6582) is
    // ours.
    cc: Congestion,
    /// The largest flight this round trip, for the controller's "window in use" test.
    flight_peak: FlightPeak,
    dupacks: u32,
    in_recovery: bool,
    recover: SeqNumber,
    /// Retransmit one segment at SND.UNA (fast retransmit, NewReno partial ACK).
    rtx_one: bool,
    /// RFC 6937: what SACK recovery may send on each ACK.
    prr: Prr,
    /// SACK scoreboard (RFC 2018 / RFC 6675-lite): sorted, disjoint ranges above SND.UNA the
    /// peer reported holding.
    sacked: Scoreboard,
    /// Highest sequence number retransmitted in this recovery (RFC 6675 HighRxt).
    high_rxt: SeqNumber,
    /// Each outstanding segment's transmit time and state, for RACK-TLP (kept only when the
    /// peer sends SACK, which RACK-TLP relies on).
    log: SendLog,
    /// RFC 8985 §6 RACK.
    rack: Rack,
    /// RFC 8985 §7 tail loss probe in flight.
    probe: LossProbe,
    /// The PTO fired: the next transmission is a loss probe.
    probe_due: bool,
    /// RFC 2883: a duplicate segment arrived; the next ACK's first SACK block names it.
    dsack_out: Option<(SeqNumber, SeqNumber)>,
    /// RFC 3168 ECN, both halves (`tcp/ecn.rs`).
    ecn: EcnState,
    /// Send even against the window / SWS rule (zero-window probe, SWS override timer).
    force_send: bool,
    /// The go-back-N under way was started by a path MTU message, not a timeout (which
    /// counter its resends go to).
    pmtu_resend: bool,
    persist_backoff: Duration,

    pub timers: TimerTable,
    last_rx: Instant,

    // Event de-duplication.
    pub readable_signalled: bool,
    pub writable_signalled: bool,
    want_writable: bool,
    /// The application filled the send ring: it had at least as much to send as the ring
    /// holds (the condition for growing it).
    tx_filled: bool,
    /// Bytes the send ring grew by, held from the endpoint's `BufferBudget`.
    tx_grown: usize,
    /// A growth was refused for the budget (counted once per connection).
    growth_refused: bool,
    /// Bytes the receive ring grew by, held from the endpoint's `BufferBudget`.
    rx_grown: usize,
    /// The receiver's round-trip estimate (see `RcvRtt`), for receive-buffer autotuning.
    rcv_rtt: RcvRtt,
    /// Receive-buffer autotuning's current round: when it began and what the application
    /// has read since.
    rcv_round: (Instant, usize),
    /// The most the application read in one receiver round trip so far (Linux's
    /// `rcvq_space.space`; ten segments to begin with).
    rcv_space: usize,
}

/// What a connection allocates once, sized from the configuration, and hands on to the next
/// connection in its slot (cleared): no allocation per connection once the slots are warm.
pub struct ConnBuffers {
    rx: RingBuffer,
    tx: RingBuffer,
    asm: Assembler,
    log: SendLog,
    sacked: Scoreboard,
}

/// Linux's `rcvq_space.space` at the start: `TCP_INIT_CWND` segments.
const INITIAL_RCV_SPACE_SEGMENTS: usize = 10;

/// The receive window Linux's dynamic right-sizing aims at (`tcp_rcv_space_adjust`) when the
/// application read `read` bytes in a receiver round trip, more than the `prev` most of any
/// earlier round: twice that to ride out a loss, 16 segments of cushion, and twice the
/// growth over `prev` in proportion again, for a sender still in slow start (its next round
/// is larger than this one, and our ACKs now are what let it send that one).
fn drs_window(read: usize, prev: usize, mss: usize) -> usize {
    let base = read
        .saturating_mul(2)
        .saturating_add(mss.saturating_mul(16));
    let rise = read.saturating_sub(prev) as u128;
    let grow = (base as u128 * rise / prev.max(1) as u128).min(usize::MAX as u128) as usize;
    base.saturating_add(grow.saturating_mul(2))
}

/// A ring of `cap` bytes that should hold `want`: its size doubled as often as that takes,
/// at most `max`; `None` if it holds enough already (or may not grow).
fn grown_capacity(cap: usize, want: usize, max: usize) -> Option<usize> {
    let want = want.min(max);
    if want <= cap {
        return None;
    }
    let mut new_cap = cap.max(4096);
    while new_cap < want {
        new_cap = new_cap.saturating_mul(2);
    }
    Some(new_cap.min(max))
}

impl Conn {
    /// A fresh connection in ESTABLISHED, reusing `rx`/`tx`/`asm`/the send log (cleared).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        handle: ConnHandle,
        flow: FlowKey,
        addrs: FrameAddrs,
        neg: &Negotiated,
        cfg: &TcpConfig,
        now: Instant,
        buffers: Option<ConnBuffers>,
    ) -> Conn {
        let ConnBuffers {
            mut rx,
            mut tx,
            mut asm,
            mut log,
            mut sacked,
        } = buffers.unwrap_or_else(|| ConnBuffers {
            rx: RingBuffer::new(cfg.rx_buffer),
            tx: RingBuffer::new(cfg.tx_buffer),
            asm: Assembler::new(cfg.max_ooo_bytes),
            log: SendLog::new(send_log::capacity_for(cfg.tx_buffer, cfg.mss)),
            sacked: Scoreboard::with_capacity(sack::capacity_for(cfg.tx_buffer)),
        });
        rx.clear();
        tx.clear();
        asm.clear();
        log.clear();
        sacked.clear();
        let (snd_wscale, rcv_wscale) = match neg.window_scale {
            // RFC 7323 §2.3: a shift above 14 is used as 14.
            Some(ws) => (ws.min(14), cfg.window_scale.min(14)),
            None => (0, 0),
        };
        let smss = u32::from(neg.peer_mss.min(cfg.mss)).max(64);
        let iss1 = neg.iss + 1u32;
        let mut c = Conn {
            handle,
            flow,
            addrs,
            state: State::Established,
            snd_una: iss1,
            snd_nxt: iss1,
            snd_max: iss1,
            snd_wnd: 0,
            snd_wl1: neg.irs,
            snd_wl2: iss1,
            max_snd_wnd: 0,
            pushed_seq: iss1,
            push_marks: PushMarks::default(),
            snd_wscale,
            smss,
            fin_queued: false,
            fin_acked: false,
            rcv_nxt: neg.irs + 1u32,
            rcv_wscale,
            rcv_right: neg.irs + 1u32,
            rx_fin: None,
            last_ack_sent: neg.irs + 1u32,
            ts_enabled: neg.timestamps,
            ts_recent: 0,
            ts_recent_at: now,
            ts_offset: neg.ts_offset,
            sack_ok: neg.sack_permitted,
            peer_sacks: false,
            rx,
            tx,
            asm,
            ack_now: false,
            unacked_bytes: 0,
            quick_ack: QuickAck::default(),
            rtt: RttEstimator::new(cfg.initial_rto),
            retries: 0,
            cc: Congestion::new(cfg.congestion, cfg.hystart, smss),
            flight_peak: FlightPeak::new(iss1),
            dupacks: 0,
            in_recovery: false,
            recover: iss1,
            rtx_one: false,
            prr: Prr::default(),
            sacked,
            high_rxt: iss1,
            log,
            rack: Rack::default(),
            probe: LossProbe::default(),
            probe_due: false,
            dsack_out: None,
            ecn: EcnState::new(neg.ecn),
            force_send: false,
            pmtu_resend: false,
            persist_backoff: cfg.initial_rto,
            timers: TimerTable::default(),
            last_rx: now,
            readable_signalled: false,
            writable_signalled: false,
            want_writable: false,
            tx_filled: false,
            tx_grown: 0,
            growth_refused: false,
            rx_grown: 0,
            rcv_rtt: RcvRtt::default(),
            rcv_round: (now, 0),
            rcv_space: INITIAL_RCV_SPACE_SEGMENTS * usize::from(cfg.mss),
        };
        // The SYN-ACK advertised `syn_window()`, unscaled (RFC 7323 §2.2).
        let syn_wnd = u32::from(cfg.syn_window());
        c.rcv_right = c.rcv_nxt + syn_wnd;
        c.timers.set(Timer::Idle, now + cfg.idle_timeout);
        c
    }

    /// Starts a new connection in this (reused) slot, keeping the allocated buffers.
    pub fn reinit(
        &mut self,
        handle: ConnHandle,
        flow: FlowKey,
        addrs: FrameAddrs,
        neg: &Negotiated,
        cfg: &TcpConfig,
        now: Instant,
    ) {
        let bufs = ConnBuffers {
            rx: std::mem::replace(&mut self.rx, RingBuffer::new(0)),
            tx: std::mem::replace(&mut self.tx, RingBuffer::new(0)),
            asm: std::mem::replace(&mut self.asm, Assembler::new(0)),
            log: std::mem::replace(&mut self.log, SendLog::new(0)),
            sacked: std::mem::replace(&mut self.sacked, Scoreboard::with_capacity(0)),
        };
        *self = Conn::new(handle, flow, addrs, neg, cfg, now, Some(bufs));
    }

    /// Send-buffer autotuning (see `BufferBudget`): when the application keeps the ring full
    /// and the congestion window needs more than half of it, the ring doubles (or more, to
    /// twice the window) up to `tx_buffer_max`, as Linux's `tcp_sndbuf_expand` sizes a send
    /// buffer at twice the window: one window in flight, one being written behind it. The
    /// send log and the SACK scoreboard grow with it, sized as `Conn::new` sizes them.
    fn grow_send_buffer(&mut self, cx: &mut Ctx) {
        let cap = self.tx.capacity();
        let max = cx.cfg.tx_buffer_max;
        if !self.tx_filled || cap >= max {
            return;
        }
        let Some(new_cap) = grown_capacity(cap, 2 * self.cc.window() as usize, max) else {
            return;
        };
        if !self.take_growth(cx, new_cap - cap) {
            return;
        }
        self.tx.grow(new_cap);
        self.log.grow(send_log::capacity_for(new_cap, cx.cfg.mss));
        self.sacked.grow(sack::capacity_for(new_cap));
        self.tx_grown += new_cap - cap;
        self.tx_filled = false;
        cx.stats.send_buffer_growths += 1;
    }

    /// Takes `bytes` of ring growth from the endpoint's budget; a refusal is counted once per
    /// connection.
    fn take_growth(&mut self, cx: &mut Ctx, bytes: usize) -> bool {
        if cx.budget.try_take(bytes) {
            cx.stats.buffer_grown_bytes = cx.budget.used() as u64;
            return true;
        }
        if !self.growth_refused {
            self.growth_refused = true;
            cx.stats.buffer_refusals += 1;
        }
        false
    }

    /// Receive-buffer autotuning after Linux's dynamic right-sizing (`tcp_rcv_space_adjust`):
    /// once per receiver round trip, if the application read more in it than in any earlier
    /// round, the ring (which bounds the window) grows to what `drs_window` says -- twice the
    /// round's reading, 16 segments more, and a slow-start term -- up to `rx_buffer_max` and
    /// what the window scale can announce. Called as the application reads; the larger window
    /// goes out with the next ACK (`consume`'s window-update rule). Before the receiver has a
    /// round-trip sample it uses the sender's SRTT (a connection that also sends). With twice
    /// the reading alone (before e76e110), a Linux client uploading over 80 ms at 10 Mbit/s
    /// met a window of 256 KiB in its first loss recovery and sent nothing new for a round
    /// trip, where the kernel path's window had grown to 600 KB: 1.05x in every repetition.
    fn grow_receive_buffer(&mut self, cx: &mut Ctx, read: usize) {
        let (start, so_far) = self.rcv_round;
        let so_far = so_far.saturating_add(read);
        let Some(rtt) = self.rcv_rtt.get().or(self.rtt.srtt()) else {
            self.rcv_round = (start, so_far);
            return;
        };
        if cx.now.saturating_duration_since(start) < rtt {
            self.rcv_round = (start, so_far);
            return;
        }
        self.rcv_round = (cx.now, 0);
        if so_far <= self.rcv_space {
            return;
        }
        let want = drs_window(so_far, self.rcv_space, usize::from(cx.cfg.mss));
        self.rcv_space = so_far;
        let cap = self.rx.capacity();
        let max = cx.cfg.rx_buffer_max.min(65535usize << self.rcv_wscale);
        let Some(new_cap) = grown_capacity(cap, want, max) else {
            return;
        };
        if !self.take_growth(cx, new_cap - cap) {
            return;
        }
        self.rx.grow(new_cap);
        self.rx_grown += new_cap - cap;
        // Out-of-order bytes live in the ring: a grown window must be able to hold what
        // arrives beyond a hole (a sender's whole flight after one loss), or what the window
        // invited is dropped and sent again. Only the byte bound moves; no memory is added.
        self.asm
            .set_max_bytes(cx.cfg.max_ooo_bytes.saturating_add(self.rx_grown));
        cx.stats.recv_buffer_growths += 1;
    }

    /// The slot is being freed: a grown ring (the send ring with its log and scoreboard)
    /// goes back to the configured size, so a freed slot holds no more than a fresh one.
    /// Returns the bytes of growth to give back to the budget.
    pub fn release_grown_buffers(&mut self, cfg: &TcpConfig) -> usize {
        let tx_grown = std::mem::take(&mut self.tx_grown);
        if tx_grown > 0 {
            self.tx = RingBuffer::new(cfg.tx_buffer);
            self.log = SendLog::new(send_log::capacity_for(cfg.tx_buffer, cfg.mss));
            self.sacked = Scoreboard::with_capacity(sack::capacity_for(cfg.tx_buffer));
        }
        let rx_grown = std::mem::take(&mut self.rx_grown);
        if rx_grown > 0 {
            self.rx = RingBuffer::new(cfg.rx_buffer);
            self.asm.clear();
            self.asm.set_max_bytes(cfg.max_ooo_bytes);
        }
        self.tx_filled = false;
        self.growth_refused = false;
        tx_grown + rx_grown
    }

    pub fn ts_now(&self, now: Instant) -> u32 {
        (now.as_millis() as u32).wrapping_add(self.ts_offset)
    }

    /// Sets TS.Recent from the handshake-completing ACK.
    pub fn set_ts_recent(&mut self, tsval: u32, now: Instant) {
        self.ts_recent = tsval;
        self.ts_recent_at = now;
    }

    pub fn ts_recent(&self) -> Option<u32> {
        self.ts_enabled.then_some(self.ts_recent)
    }

    /// Current receive window: up to the right edge we advertised.
    fn rcv_wnd(&self) -> u32 {
        self.rcv_right.distance_from(self.rcv_nxt).unwrap_or(0)
    }

    fn data_end(&self) -> SeqNumber {
        self.snd_una + self.tx.len()
    }

    fn fin_sent(&self) -> bool {
        self.fin_queued && (self.fin_acked || self.snd_max.diff(self.data_end()) > 0)
    }

    /// The FIN still has to go out (first time, or again after a go-back-N rewind).
    fn fin_pending(&self) -> bool {
        self.fin_queued && !self.fin_acked && self.snd_nxt.diff(self.data_end()) <= 0
    }

    fn outstanding(&self) -> bool {
        self.snd_max != self.snd_una
    }

    fn flight(&self) -> u32 {
        self.snd_nxt.distance_from(self.snd_una).unwrap_or(0)
    }

    /// SACK-based loss recovery (RFC 6675) is running: the peer sends SACK and a fast
    /// retransmit began recovery. Without SACK, recovery is RFC 6582's NewReno.
    fn sack_recovery(&self) -> bool {
        self.sack_ok && self.in_recovery
    }

    /// RFC 6675 §4 `IsLost`: a hole is lost once more than (DupThresh - 1) * SMSS bytes
    /// above it are SACKed.
    fn lost_threshold(&self) -> u32 {
        2 * self.smss
    }

    /// What the congestion window is measured against: during SACK recovery RFC 6675's
    /// `pipe` -- the bytes sent and not acknowledged, less those SACKed and those in holes
    /// taken as lost and not yet retransmitted (a retransmission in flight counts) -- else the
    /// FlightSize. Counting SACKed data as in flight would hold new data back for half a
    /// window after every loss and end recovery with almost nothing in flight.
    fn pipe(&self) -> u32 {
        let flight = self.flight();
        if !self.sack_recovery() {
            return flight;
        }
        let from = self.high_rxt.max(self.snd_una);
        // Lost: what RACK marked (RFC 8985 §6.2) below HighRxt -- retransmissions it found
        // lost -- and above it the larger of RACK's and RFC 6675 `IsLost`'s counts (the two
        // mostly name the same holes; the larger stands for their union without counting a
        // hole twice).
        let (rack_below, rack_above) = self.log.lost_bytes(from);
        let islost = self.sacked.lost_bytes(from, self.lost_threshold());
        flight
            .saturating_sub(self.sacked.sacked_bytes())
            .saturating_sub(islost.max(rack_above))
            .saturating_sub(rack_below)
    }

    /// The next lost hole, when the congestion window has room for it: the lowest segment
    /// RACK marked lost (RFC 8985 §6.2; a lost retransmission too), else the next hole above
    /// HighRxt RFC 6675 §4 `IsLost` names (§5 NextSeg rule 1).
    fn lost_hole_ready(&self) -> Option<(SeqNumber, u32)> {
        if !self.sack_recovery() || !self.prr.may_send() {
            return None;
        }
        if let Some((start, end)) = self.log.first_lost(self.data_end()) {
            let start = start.max(self.snd_una);
            if let Some(len) = end.distance_from(start).filter(|&l| l > 0) {
                return Some((start, len));
            }
        }
        let from = self.high_rxt.max(self.snd_una);
        self.sacked.next_lost_hole(from, self.lost_threshold())
    }

    fn push_event(&self, events: &mut VecDeque<Event>, ev: Event) {
        events.push_back(ev);
    }

    fn challenge_ack(&mut self, cx: &mut Ctx) {
        if cx.challenge.allow_challenge(cx.now, cx.stats) {
            self.ack_now = true;
        }
    }

    /// Handles one inbound segment (RFC 9293 §3.10.7.4, "Otherwise" branch). Returns what to
    /// do with the connection and, if (part of) the segment was refused, why. The endpoint
    /// brings the timers up to date afterwards (`update_timers`).
    #[must_use]
    pub fn handle_segment(&mut self, cx: &mut Ctx, seg: &Seg) -> (Outcome, Option<DropReason>) {
        let now = cx.now;

        // RFC 7323 §5.3 R1 (PAWS) and §3.2: with timestamps in use, a non-RST segment without
        // TSopt is dropped, and one whose TSval is older than TS.Recent (by more than
        // `PAWS_REORDER_TICKS`) is ACKed and dropped.
        if self.ts_enabled && !seg.rst {
            match seg.ts {
                None => return (Outcome::Keep, Some(DropReason::Paws)),
                Some((tsval, _)) => {
                    let older = (self.ts_recent.wrapping_sub(tsval) as i32) > PAWS_REORDER_TICKS;
                    let recent_valid = now.saturating_duration_since(self.ts_recent_at) < PAWS_IDLE;
                    if older && recent_valid {
                        self.ack_now = true;
                        return (Outcome::Keep, Some(DropReason::Paws));
                    }
                }
            }
        }

        let wnd = self.rcv_wnd();
        let seg_len = seg.len();

        // RFC 5961 §3.2 (RST): exactly RCV.NXT resets; elsewhere in the window gets a
        // challenge ACK; outside the window it is dropped silently.
        if seg.rst {
            cx.stats.rsts_in += 1;
            if seg.seq == self.rcv_nxt {
                return (Outcome::Closed, None);
            }
            if seg.seq.in_window(self.rcv_nxt, wnd.max(1)) {
                self.challenge_ack(cx);
            }
            return (Outcome::Keep, Some(DropReason::RstNotExact));
        }

        // RFC 5961 §4.2 (SYN in a synchronized state): challenge ACK whatever the sequence number.
        if seg.syn {
            self.challenge_ack(cx);
            return (Outcome::Keep, Some(DropReason::SynInSync));
        }

        // RFC 9293 §3.10.7.4 first check: segment acceptability table.
        let acceptable = match (seg_len, wnd) {
            (0, 0) => seg.seq == self.rcv_nxt,
            (0, _) => seg.seq.in_window(self.rcv_nxt, wnd),
            (_, 0) => false,
            (_, _) => {
                seg.seq.in_window(self.rcv_nxt, wnd)
                    || (seg.seq + (seg_len - 1)).in_window(self.rcv_nxt, wnd)
            }
        };
        if !acceptable {
            // "If an incoming segment is not acceptable, an acknowledgment should be sent in
            // reply" (also the answer to the peer's zero-window probes). RFC 9293: with
            // RCV.WND zero "special allowance should be made to accept valid ACKs". We extend
            // that allowance to any small or closed window: the ACK field of a segment at or
            // somewhat beyond RCV.NXT (a probe, or a peer that sent past our window and moved
            // its SND.NXT) still updates SND.UNA / SND.WND if it passes the RFC 5961 §5 range
            // check. Without this, a peer that waits for our window while we wait for its ACK
            // (our app cannot read until it can write, and it cannot write until the tx ring
            // drains) deadlocks; both were found by the engine simulation.
            self.ack_now = true;
            self.note_old_duplicate(seg);
            if !seg.payload.is_empty() {
                // Old or beyond the window: the peer missed our ACKs (Linux's `out_of_window`).
                let window = self.rx.free() as u32;
                self.quick_ack.on_duplicate(window, self.full_segment());
            }
            let near = seg
                .seq
                .in_window(self.rcv_nxt, (self.rx.capacity() as u32).max(wnd).max(1));
            if near {
                if let Some(ack) = seg.ack {
                    if ack.diff(self.snd_max) <= 0 && ack.diff(self.snd_una - self.max_snd_wnd) >= 0
                    {
                        if let Some(o) = self.on_ack(cx, seg, ack, true) {
                            return (o, Some(DropReason::OutOfWindow));
                        }
                    }
                }
            }
            return (Outcome::Keep, Some(DropReason::OutOfWindow));
        }
        self.last_rx = now;

        // RFC 9293 §3.10.7.4 fifth check: "if the ACK bit is off, drop the segment".
        let Some(ack) = seg.ack else {
            return (Outcome::Keep, Some(DropReason::NoAck));
        };

        // RFC 5961 §5.2: SND.UNA - MAX.SND.WND <= SEG.ACK <= SND.NXT, else ACK and drop (the
        // upper bound is also RFC 9293's "ACK of something not yet sent").
        if ack.diff(self.snd_max) > 0 || ack.diff(self.snd_una - self.max_snd_wnd) < 0 {
            self.challenge_ack(cx);
            return (Outcome::Keep, Some(DropReason::BadAck));
        }

        // RFC 7323 §4.3: TS.Recent takes TSval of a segment that covers Last.ACK.sent.
        if let (true, Some((tsval, _))) = (self.ts_enabled, seg.ts) {
            if seg.seq.diff(self.last_ack_sent) <= 0
                && (tsval.wrapping_sub(self.ts_recent) as i32) >= 0
            {
                self.ts_recent = tsval;
                self.ts_recent_at = now;
            }
        }

        if let Some(o) = self.on_ack(cx, seg, ack, false) {
            return (o, None);
        }

        // RFC 3168 §6.1.3: a CE mark is echoed until the sender's CWR.
        if self.ecn.enabled() {
            if seg.ecn == Ecn::Ce {
                cx.stats.ecn_ce_received += 1;
            }
            if self.ecn.on_segment(seg.ecn, seg.ecn_flags) {
                self.ack_now = true;
            }
        }

        // States after the ACK (RFC 9293 §3.10.7.4 fifth check, per state).
        match self.state {
            // FIN_WAIT_1: "if the FIN segment is now acknowledged, then enter FIN-WAIT-2".
            State::FinWait1 if self.fin_acked => {
                self.state = State::FinWait2;
                self.timers
                    .set(Timer::FinWait2, now + cx.cfg.fin_wait_2_timeout);
            }
            // CLOSING: "if the ACK acknowledges our FIN, then enter the TIME-WAIT state".
            // The peer's FIN was ACKed when it arrived; this ACK needs no answer.
            State::Closing if self.fin_acked => {
                self.state = State::TimeWait;
                return (Outcome::TimeWait { ack: false }, None);
            }
            // LAST_ACK: "if our FIN is now acknowledged, delete the TCB ... and return".
            State::LastAck if self.fin_acked => return (Outcome::Closed, None),
            _ => {}
        }

        // Sixth check (URG): ignored; urgent data is ordinary data (RFC 6093 §5 allows it).
        // Seventh check: segment text, only while we can still receive.
        let mut drop = None;
        match self.state {
            State::Established | State::FinWait1 | State::FinWait2 => {
                drop = self.receive_data(cx, seg);
            }
            // CLOSE_WAIT, CLOSING, LAST_ACK: "this should not occur, since a FIN has been
            // received from the remote side. Ignore the segment text." A retransmitted FIN is
            // acknowledged again.
            _ => {
                if seg.fin || !seg.payload.is_empty() {
                    self.ack_now = true;
                }
            }
        }

        // Eighth check: FIN, once RCV.NXT reaches it.
        if let Some(fin_seq) = self.rx_fin {
            if fin_seq == self.rcv_nxt {
                self.rx_fin = None;
                self.rcv_nxt = self.rcv_nxt + 1u32;
                if self.rcv_right.diff(self.rcv_nxt) < 0 {
                    self.rcv_right = self.rcv_nxt;
                }
                self.ack_now = true;
                self.push_event(cx.events, Event::PeerClosed(self.handle));
                match self.state {
                    // ESTABLISHED: "Enter the CLOSE-WAIT state".
                    State::Established => self.state = State::CloseWait,
                    // FIN_WAIT_1: "If our FIN has been ACKed ... enter TIME-WAIT ... otherwise,
                    // enter the CLOSING state" (simultaneous close).
                    State::FinWait1 if self.fin_acked => {
                        self.state = State::TimeWait;
                        return (Outcome::TimeWait { ack: true }, drop);
                    }
                    State::FinWait1 => self.state = State::Closing,
                    // FIN_WAIT_2: "Enter the TIME-WAIT state".
                    State::FinWait2 => {
                        self.state = State::TimeWait;
                        return (Outcome::TimeWait { ack: true }, drop);
                    }
                    _ => {}
                }
            }
        }
        (Outcome::Keep, drop)
    }

    /// ACK field processing (RFC 9293 §3.10.7.4 fifth check, ESTABLISHED rules), RTT, cwnd.
    /// Returns an outcome only when the connection must end.
    fn on_ack(&mut self, cx: &mut Ctx, seg: &Seg, ack: SeqNumber, probe: bool) -> Option<Outcome> {
        let now = cx.now;
        let seg_wnd = u32::from(seg.window) << self.snd_wscale;
        let acked = ack.distance_from(self.snd_una).unwrap_or(0);
        let flight_before = self.snd_max.distance_from(self.snd_una).unwrap_or(0);
        // RFC 6937 DeliveredData: the cumulative ACK's advance plus the change in SACKed bytes.
        let sacked_bytes_before = self.sacked.sacked_bytes();
        if acked > 0 {
            self.sacked.prune(ack);
        }
        // RFC 2883 §4: a first block that reports a duplicate is no news of data held.
        let dsack = self.dsack_block(seg, ack);
        let blocks = match dsack {
            Some(_) => seg.sack.get(1..).unwrap_or(&[]),
            None => seg.sack,
        };
        let mut new_sack = false;
        self.peer_sacks |= self.sack_ok && !blocks.is_empty();
        // What the cumulative ACK delivered, from the send log (and how many segments it
        // held SACKed before), for the RTT sample and RACK.
        let mut delivered = Delivered::default();
        let sacked_before = self.log.sacked_segs();
        if self.sack_ok {
            for b in blocks {
                new_sack |= self.sacked.add(b.left, b.right, self.snd_una, self.snd_max);
            }
        }

        if acked > 0 {
            let data_acked = (acked as usize).min(self.tx.len());
            if self.fin_queued && acked as usize > self.tx.len() {
                self.fin_acked = true;
            }
            self.tx.consume(data_acked);
            cx.stats.bytes_out += data_acked as u64;
            self.snd_una = ack;
            if self.snd_nxt.diff(self.snd_una) < 0 {
                self.snd_nxt = self.snd_una;
            }
            self.retries = 0;

            // RTT (RFC 7323 §4.1 from TSecr, else -- with SACK, so a send log -- the newest
            // segment this ACK delivered, else one Karn-timed segment, RFC 6298 §3).
            let timed = self.rtt.take_timed_sample(ack, now);
            if self.sack_ok {
                delivered = self.log.take_acked(ack);
            }
            let sample = match (self.ts_enabled, seg.ts) {
                (true, Some((_, tsecr))) if tsecr != 0 => {
                    let ms = self.ts_now(now).wrapping_sub(tsecr);
                    (ms < 60_000).then(|| Duration::from_millis(u64::from(ms)))
                }
                _ if self.sack_ok => delivered.rtt_sample(now),
                _ => timed,
            };
            if let Some(r) = sample {
                self.rtt.sample(r, cx.cfg);
            } else {
                self.rtt.refresh(cx.cfg);
            }

            // Congestion control.
            if self.in_recovery {
                if ack.diff(self.recover) >= 0 {
                    // RFC 6582 §3.2 step 3 full acknowledgment: deflate the window, to
                    // min(ssthresh, FlightSize + SMSS) -- or, its option (2), to ssthresh.
                    // With SACK, option (2): a recovery the peer's window held back (its
                    // out-of-order data fills the buffer the window is counted in) ends with
                    // little in flight, and option (1) would then slow-start again from a few
                    // segments after every loss; Linux ends recovery at ssthresh too
                    // (`tcp_end_cwnd_reduction`).
                    let flight = self.snd_max.distance_from(self.snd_una).unwrap_or(0);
                    let flight = if self.sack_ok {
                        flight.max(self.cc.ssthresh())
                    } else {
                        flight
                    };
                    self.cc.on_recovery_end(flight);
                    self.rack.on_recovery_end();
                    self.in_recovery = false;
                } else {
                    // Step 3 partial acknowledgment: retransmit the first unacknowledged
                    // segment, deflate by the amount acked, add back one SMSS if that was at
                    // least one SMSS, reset the retransmission timer. RFC 6582 guesses that
                    // segment lost because nothing tells it better; with a peer that SACKs,
                    // the send log does: the segment is lost only if it was last sent before
                    // what this ACK delivered (RACK's rule, RFC 8985 §6.2, taken here for
                    // the retransmission RACK's own step 2 may doubt). Otherwise it is on its
                    // way: resending it on every partial ACK resent the rest of the window,
                    // one segment per ACK, all of it delivered already (seen at 20 ms, 1%
                    // loss: 22 needless resends in a row). What this ACK delivered is taken
                    // as RACK's step 2 takes it: a resent segment's ACK that may be for its
                    // earlier copy says nothing of what was sent after the original. Taken
                    // at the resend's time, it made the next segment look lost, and that
                    // segment's resend the one after it, for a whole window (traced at
                    // 80 ms, 1% loss: 29 segments resent behind a doubly resent one, all of
                    // them delivered already). With SACK nothing was inflated, so nothing is
                    // deflated.
                    let latest = loss_detection::latest_delivered(
                        &delivered,
                        &self.rack,
                        self.tsecr_of(seg),
                        self.ts_offset,
                        now,
                    );
                    let head_lost = !self.peer_sacks
                        || match (self.log.first(), latest) {
                            (Some(head), Some(d)) => sent_after(d.xmit, d.end, head.xmit, head.end),
                            _ => false,
                        };
                    if head_lost
                        && self.high_rxt.diff(self.snd_una) <= 0
                        && !self.sacked.covers(self.snd_una, self.snd_una + 1u32)
                    {
                        self.rtx_one = true;
                    }
                    if !self.sack_ok {
                        self.cc.on_partial_ack(acked);
                    }
                    self.timers.set(Timer::Retransmit, now + self.rtt.rto());
                }
            } else {
                // RFC 5681 §3.1 slow start or congestion avoidance.
                let hystart = self.cc.on_ack(&AckSample {
                    acked,
                    flight: flight_before.max(self.flight_peak.bytes()),
                    srtt: self.rtt.srtt(),
                    rtt: sample,
                    ack,
                    snd_max: self.snd_max,
                    now,
                });
                if let Some(event) = hystart {
                    // An exit sets ssthresh to the window it ended at (cwnd may have grown
                    // past it on the same ACK, in congestion avoidance).
                    let segments = self.cc.ssthresh() / self.smss.max(1);
                    cx.stats.count_hystart(event, u64::from(segments));
                }
            }
            self.dupacks = 0;

            // RFC 6298 §5.2/5.3: all acked -> stop the timer, else restart it.
            if self.outstanding() {
                self.timers.set(Timer::Retransmit, now + self.rtt.rto());
            } else {
                self.timers.stop(Timer::Retransmit);
            }
            self.grow_send_buffer(cx);
            if self.want_writable && self.tx.free() >= self.tx.capacity() / 2 {
                self.want_writable = false;
                // The application is told it may write again; whether it fills the ring is
                // seen anew (Linux clears SOCK_NOSPACE at this wakeup).
                self.tx_filled = false;
                if !self.writable_signalled {
                    self.writable_signalled = true;
                    self.push_event(cx.events, Event::Writable(self.handle));
                }
            }
        } else if !probe
            && ack == self.snd_una
            && seg.payload.is_empty()
            && !seg.fin
            && (seg_wnd == self.snd_wnd || new_sack)
            && self.outstanding()
        {
            // RFC 5681 §2 duplicate ACK (RFC 6675 §2: an ACK with new SACK information counts
            // too, even if the window changed); RFC 5681 §3.2 / RFC 6582 §3.2 fast retransmit.
            self.dupacks = self.dupacks.saturating_add(1);
            // RFC 6675 §5 (C): with SACK, recovery also begins once the first unacknowledged
            // segment `IsLost`, before the third duplicate ACK (a receiver that ACKs every
            // other segment, or ACKs lost on the way, send fewer).
            let lost_at_una = self.sack_ok
                && self
                    .sacked
                    .next_lost_hole(self.snd_una, self.lost_threshold())
                    .is_some_and(|(seq, _)| seq == self.snd_una);
            if self.in_recovery {
                // With SACK the pipe accounts for what left the network; without it, RFC 5681
                // §3.2 step 4 inflates the window by a segment.
                if !self.sack_ok {
                    self.cc.on_dup_ack_in_recovery();
                }
            } else if (self.dupacks >= 3 || lost_at_una) && ack.diff(self.recover) >= 0 {
                // RFC 6582 §3.2 step 2: only if the ACK covers `recover` (no second fast
                // retransmit for losses of the same window).
                self.enter_recovery(cx, true);
            }
        }
        // RFC 3168 §6.1.2: an ECN-Echo reduces the window once per window of data.
        if self
            .ecn
            .on_ack(seg.ecn_flags, ack, self.snd_max, self.in_recovery)
        {
            let flight = self.snd_max.distance_from(self.snd_una).unwrap_or(0);
            self.cc.on_ecn_echo(flight, now);
            cx.stats.ecn_reductions += 1;
        }
        self.detect_losses_on_ack(cx, seg, ack, acked, (&delivered, sacked_before), dsack);
        if self.sack_recovery() {
            let delivered_data =
                (acked + self.sacked.sacked_bytes()).saturating_sub(sacked_bytes_before);
            self.prr
                .on_ack(delivered_data, self.pipe(), self.cc.ssthresh(), self.smss);
        }

        // RFC 9293 §3.10.7.4: update the send window if SND.WL1 < SEG.SEQ or (SND.WL1 =
        // SEG.SEQ and SND.WL2 =< SEG.ACK).
        if self.snd_wl1.diff(seg.seq) < 0
            || (self.snd_wl1 == seg.seq && self.snd_wl2.diff(ack) <= 0)
        {
            let opened = self.snd_wnd == 0 && seg_wnd > 0;
            self.snd_wnd = seg_wnd;
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = ack;
            self.max_snd_wnd = self.max_snd_wnd.max(seg_wnd);
            if opened {
                // A zero-window probe the peer did not take is sent again right away.
                if ack == self.snd_una {
                    self.snd_nxt = self.snd_una;
                }
                self.persist_backoff = self.rtt.rto();
                self.timers.stop(Timer::Persist);
            }
        }
        None
    }

    pub fn commit_send(&mut self, n: usize) -> usize {
        if self.fin_queued {
            return 0;
        }
        let n = self.tx.commit(n);
        if n > 0 {
            self.push_marks.on_write(self.data_end());
        }
        if self.tx.free() < self.tx.capacity() / 2 {
            self.want_writable = true;
        }
        if self.tx.is_full() {
            self.tx_filled = true;
        }
        self.writable_signalled = false;
        n
    }

    /// The application closes: FIN after the queued data (RFC 9293 §3.10.4).
    pub fn close(&mut self) {
        if self.fin_queued {
            return;
        }
        self.fin_queued = true;
        match self.state {
            // ESTABLISHED: "queue this until all preceding SENDs have been segmentized, then
            // form a FIN segment and send it. In any case, enter FIN-WAIT-1 state."
            State::Established => self.state = State::FinWait1,
            // CLOSE_WAIT: "... send a FIN segment, enter LAST-ACK state" (after queued data).
            State::CloseWait => self.state = State::LastAck,
            _ => {}
        }
    }

    pub fn can_send(&self) -> bool {
        matches!(self.state, State::Established | State::CloseWait) && !self.fin_queued
    }

    /// Fast recovery begins (RFC 6582 §3.2 step 2, RFC 6675 §5 step 4, or RACK marked a loss
    /// RFC 8985 §6.2): the congestion controller is told, and `rtx_una` retransmits the
    /// segment at SND.UNA first (a RACK loss goes out through the lost-hole path instead).
    fn enter_recovery(&mut self, cx: &mut Ctx, rtx_una: bool) {
        let flight = self.snd_max.distance_from(self.snd_una).unwrap_or(0);
        self.cc.on_fast_retransmit(flight, cx.now);
        if self.sack_ok {
            self.cc.on_sack_recovery();
        }
        self.recover = self.snd_max;
        self.in_recovery = true;
        self.prr.start(flight);
        self.ecn.on_loss_reduction(self.snd_max);
        self.rtx_one = rtx_una;
        self.high_rxt = self.snd_una;
        self.rtt.stop_timing();
        // RFC 8985 §7.2: no probe during recovery.
        self.probe_due = false;
        self.timers.stop(Timer::LossProbe);
        cx.stats.fast_retransmits += 1;
    }

    /// Timers due at `now` (RFC 6298 §5.4-5.7, RFC 9293 §3.8.6.1, §3.8.6.3, RFC 8985 §6.3,
    /// §7.3).
    #[must_use]
    pub fn handle_timeout(&mut self, cx: &mut Ctx) -> Outcome {
        let now = cx.now;
        let mut out = Outcome::Keep;
        for t in TIMERS {
            if !self.timers.expired(t, now) {
                continue;
            }
            self.timers.stop(t);
            match t {
                Timer::Retransmit => {
                    if !self.outstanding() {
                        continue;
                    }
                    // Whatever a path MTU message rewound, what goes again now is the
                    // timeout's.
                    self.pmtu_resend = false;
                    if self.snd_wnd == 0 {
                        // A zero-window probe went unanswered or was answered with a zero
                        // window: probe again with backoff; RFC 9293 §3.8.6.1 forbids giving up
                        // while the peer answers (the idle timeout bounds a silent peer).
                        cx.stats.zero_window_probes += 1;
                        self.snd_nxt = self.snd_una;
                        self.force_send = true;
                        self.rtt.back_off(cx.cfg.max_rto);
                        self.timers.set(Timer::Retransmit, now + self.rtt.rto());
                        continue;
                    }
                    self.retries = self.retries.saturating_add(1);
                    if self.retries > cx.cfg.max_retransmissions {
                        cx.stats.rto_aborts += 1;
                        return Outcome::Abort;
                    }
                    cx.stats.rto_timeouts += 1;
                    // RFC 5681 §3.1 eq. 4 and loss window; RFC 6582 §3.2 step 4.
                    let flight = self.snd_max.distance_from(self.snd_una).unwrap_or(0);
                    self.cc.on_rto(flight, now);
                    self.ecn.on_loss_reduction(self.snd_max);
                    self.in_recovery = false;
                    self.recover = self.snd_max;
                    self.dupacks = 0;
                    // Go back N: resend from SND.UNA; Karn: no RTT sample from these. RFC 2018
                    // §8 says the SACKed bits SHOULD be forgotten after a timeout (the peer may
                    // have reneged). Like Linux, the first timeout keeps them, and the resend
                    // skips what the peer holds: after a burst into a small bottleneck queue,
                    // that is most of the window, and resending it all from a one-segment
                    // window cost the bypass a slow start through data already delivered. A
                    // second timeout in a row forgets them, so a receiver that did renege gets
                    // its data one backoff later. The left edge is resent either way (RFC 2018
                    // §8's MUST: it is never SACKed).
                    self.snd_nxt = self.snd_una;
                    if self.retries >= 2 {
                        self.sacked.clear();
                        self.log.clear_sacked();
                    }
                    // The go-back-N resend repairs what a probe or RACK would have.
                    self.probe.clear();
                    self.probe_due = false;
                    self.timers.stop(Timer::LossProbe);
                    self.timers.stop(Timer::Reorder);
                    self.rtx_one = false;
                    self.rtt.stop_timing();
                    // RFC 6298 §5.5: back off the timer.
                    self.rtt.back_off(cx.cfg.max_rto);
                    self.timers.set(Timer::Retransmit, now + self.rtt.rto());
                }
                Timer::Persist => {
                    cx.stats.zero_window_probes += 1;
                    self.force_send = true;
                    self.persist_backoff =
                        self.persist_backoff.saturating_mul(2).min(cx.cfg.max_rto);
                }
                Timer::Reorder => self.detect_losses(cx),
                Timer::LossProbe => {
                    if self.outstanding() && !self.in_recovery {
                        self.probe_due = true;
                    }
                }
                Timer::DelayedAck => {
                    self.ack_now = true;
                    // Not for a window update (`consume` arms the timer too): only an ACK of
                    // data nothing answered in time says the peer is not asking.
                    if self.unacked_bytes > 0 {
                        self.quick_ack.on_delayed_ack_timeout();
                    }
                }
                Timer::FinWait2 => out = Outcome::Closed,
                Timer::Idle => {
                    let deadline = self.last_rx + cx.cfg.idle_timeout;
                    if deadline <= now {
                        cx.stats.idle_timeouts += 1;
                        return Outcome::Abort;
                    }
                    self.timers.set(Timer::Idle, deadline);
                }
            }
        }
        out
    }

    /// Keeps the retransmit / persist timers consistent with what is in flight. The endpoint
    /// calls it once after each input, timeout or transmission that keeps the connection
    /// (`Endpoint::schedule`), before it reads the next deadline.
    pub fn update_timers(&mut self, now: Instant) {
        if self.outstanding() {
            if self.timers.get(Timer::Retransmit).is_none() {
                self.timers.set(Timer::Retransmit, now + self.rtt.rto());
            }
            self.timers.stop(Timer::Persist);
        } else {
            self.timers.stop(Timer::Retransmit);
            self.timers.stop(Timer::LossProbe);
            self.timers.stop(Timer::Reorder);
            let blocked = self.has_unsent() && self.send_candidate().is_none();
            if blocked {
                if self.timers.get(Timer::Persist).is_none() {
                    self.timers.set(Timer::Persist, now + self.persist_backoff);
                }
            } else {
                self.timers.stop(Timer::Persist);
            }
        }
        if self.ack_now {
            self.timers.stop(Timer::DelayedAck);
        }
    }

    /// Receive-side fields the TIME_WAIT record keeps.
    pub fn time_wait_params(&self) -> (SeqNumber, SeqNumber, Option<u32>, u32) {
        (self.snd_max, self.rcv_nxt, self.ts_recent(), self.ts_offset)
    }

    #[cfg(test)]
    pub fn debug_cwnd(&self) -> (u32, u32, bool) {
        (self.cc.window(), self.cc.ssthresh(), self.in_recovery)
    }

    #[cfg(test)]
    pub fn debug_smss(&self) -> u32 {
        self.smss
    }

    #[cfg(test)]
    pub fn debug_snd_max(&self) -> SeqNumber {
        self.snd_max
    }

    #[cfg(test)]
    pub fn debug_recover(&self) -> SeqNumber {
        self.recover
    }

    #[cfg(test)]
    pub fn debug_snd_wscale(&self) -> u8 {
        self.snd_wscale
    }

    #[cfg(test)]
    pub fn debug_rto(&self) -> Duration {
        self.rtt.rto()
    }

    #[cfg(test)]
    pub fn debug_snd_wnd(&self) -> u32 {
        self.snd_wnd
    }
}

#[cfg(test)]
mod drs_tests {
    use super::drs_window;

    #[test]
    fn drs_window_is_linuxs_tcp_rcv_space_adjust() {
        // Twice the round's reading, 16 segments, and twice the growth in proportion:
        // 2 * 100000 + 16 * 1448 = 223168; it doubled, so 223168 * 2 more.
        assert_eq!(drs_window(100_000, 50_000, 1448), 669_504);
        // No growth over the last measure: the loss term and the cushion alone.
        assert_eq!(drs_window(100_000, 100_000, 1448), 223_168);
        // Huge or zero inputs saturate rather than wrap or divide by zero.
        assert_eq!(drs_window(usize::MAX, 1, 1448), usize::MAX);
        assert_eq!(
            drs_window(10, 0, 1448),
            20 + 16 * 1448 + 2 * (20 + 16 * 1448) * 10
        );
    }
}

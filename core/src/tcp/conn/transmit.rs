//! What a connection sends: the choice of the next segment (fast retransmit, a lost hole, a
//! tail loss probe, new data within the send and congestion windows and the sender SWS rule,
//! or a bare ACK), the headers it carries (window field, timestamps, SACK blocks with a
//! D-SACK first) and the RST and final ACK the endpoint sends on its behalf.

use super::{Conn, Ctx, State, Timer};
use crate::tcp::congestion::CongestionControl;
use crate::time::Instant;
use crate::wire::{self, SackBlock, SeqNumber, TcpFlags, TcpHeader, TcpOptions};

/// What sent a segment again: loss recovery (a fast retransmit, a lost hole, a partial ACK),
/// the go-back-N after a timeout or after a path MTU message, or a tail loss probe.
enum ResendKind {
    Recovery,
    Timeout,
    PathMtu,
    Probe,
}

impl Conn {
    /// The next lost hole (RACK's or RFC 6675's) to retransmit during recovery, when the
    /// window has room for it: data only, so a hole that is only the FIN (or lies past the
    /// data) is none -- the RTO resends a FIN.
    fn next_hole(&self) -> Option<(SeqNumber, usize)> {
        let (seq, hole) = self.lost_hole_ready()?;
        let off = seq.distance_from(self.snd_una)? as usize;
        let len = (hole as usize)
            .min(self.max_payload() as usize)
            .min(self.tx.len().saturating_sub(off));
        (len > 0).then_some((seq, len))
    }

    /// [`next_hole`](Self::next_hole), taken: HighRxt moves past it.
    fn take_hole(&mut self) -> Option<(SeqNumber, usize)> {
        let (seq, len) = self.next_hole()?;
        // A lost retransmission RACK found lies below HighRxt: it does not move it back.
        self.high_rxt = self.high_rxt.max(seq + len);
        Some((seq, len))
    }

    pub(super) fn has_unsent(&self) -> bool {
        self.snd_nxt.diff(self.data_end()) < 0 || self.fin_pending()
    }

    /// Option bytes of a segment we send (RFC 6691: the MSS excludes options).
    fn option_len(&self) -> u32 {
        let mut n = 0;
        if self.ts_enabled {
            n += 12;
        }
        let blocks = self.sack_block_count() as u32;
        if blocks > 0 {
            n += (2 + 8 * blocks + 3) & !3;
        }
        n
    }

    fn sack_block_count(&self) -> usize {
        if !self.sack_ok {
            return 0;
        }
        let max = if self.ts_enabled { 3 } else { 4 };
        let dsack = usize::from(self.dsack_out.is_some());
        (self.asm.sack_ranges().take(max).count() + dsack).min(max)
    }

    pub(super) fn max_payload(&self) -> u32 {
        self.smss.saturating_sub(self.option_len()).max(1)
    }

    /// Next new (or go-back-N) segment: (length, with FIN). `None` if nothing may go now.
    #[inline]
    pub(super) fn send_candidate(&self) -> Option<(usize, bool)> {
        if self.state == State::TimeWait {
            return None;
        }
        let data_end = self.data_end();
        let from = self.next_send_seq();
        let unsent = data_end.distance_from(from).unwrap_or(0) as usize;
        let fin_pending = self.fin_pending();
        if unsent == 0 && !fin_pending {
            return None;
        }
        // The peer's window bounds the sequence space in flight, the congestion window the
        // pipe (the same thing outside SACK recovery).
        let congestion_room = if self.sack_recovery() {
            // RFC 6937: during SACK recovery PRR's budget, a segment at a time.
            if self.prr.may_send() {
                u32::MAX
            } else {
                0
            }
        } else {
            self.cc.window().saturating_sub(self.pipe())
        };
        let usable = self
            .snd_wnd
            .saturating_sub(self.flight())
            .min(congestion_room) as usize;
        let mss = self.max_payload() as usize;
        // A go-back-N resend stops where the next SACKed range begins.
        let resend_room = if from.diff(self.snd_max) < 0 {
            self.sacked.room(from)
        } else {
            usize::MAX
        };
        let mut len = unsent.min(usable).min(mss).min(resend_room);
        if self.force_send {
            len = len.max(unsent.min(1));
        } else if len < unsent && len < mss && (len as u32) < self.max_snd_wnd / 2 {
            // RFC 9293 §3.8.6.2.1 sender SWS avoidance: send only a full segment, all that is
            // queued, or at least half the largest window the peer offered; else wait for the
            // window or the override (persist) timer.
            len = 0;
        }
        let fin = fin_pending && len == unsent;
        if len == 0 && !fin {
            return None;
        }
        Some((len, fin))
    }

    /// Where the next new (or go-back-N) segment starts: SND.NXT, past any SACKed range it
    /// falls in while a timeout's resend is under way.
    fn next_send_seq(&self) -> SeqNumber {
        if self.snd_nxt.diff(self.snd_max) < 0 {
            self.sacked.skip(self.snd_nxt)
        } else {
            self.snd_nxt
        }
    }

    pub fn wants_transmit(&self) -> bool {
        self.ack_now
            || self.rtx_one
            || self.probe_due
            // What `take_hole` would send, not just a hole: a lost FIN alone is no segment,
            // and a connection that wants to send but cannot would be polled forever.
            || self.next_hole().is_some()
            || self.send_candidate().is_some()
    }

    fn window_field(&mut self) -> u16 {
        let ws = u32::from(self.rcv_wscale);
        let unit = 1u32 << ws;
        let cur = self.rcv_wnd();
        let free = self.rx.free() as u32;
        let thresh = (self.rx.capacity() as u32 / 2).min(self.smss);
        // Never move the right edge left (RFC 9293 §3.8.6.2.2): at least `cur`, rounded up to
        // the scale unit -- unless rounding up would offer bytes the ring cannot hold; then
        // round down (the edge moves left by less than 2^wscale, which RFC 7323 §2.4 makes
        // the sender tolerate; `rcv_right` keeps the old edge, so such bytes stay acceptable).
        // Grow only by the receiver SWS threshold.
        let keep_up = cur.div_ceil(unit);
        let keep = if (keep_up << ws) <= free {
            keep_up
        } else {
            free.min(cur) >> ws
        };
        let grown = free >> ws;
        let field = if free.saturating_sub(cur) >= thresh {
            grown.max(keep)
        } else {
            keep
        };
        let field = field.min(65535);
        let right = self.rcv_nxt + (field << ws);
        if right.diff(self.rcv_right) > 0 {
            self.rcv_right = right;
        }
        field as u16
    }

    /// Whether a segment of data `[seq, end)` carries PSH: it ends one of the application's
    /// writes (`push_marks.rs`, RFC 9293 §3.9.1.2), or the queue (MUST-61: a resend of the
    /// last data too), or more than half the largest window the peer offered has gone
    /// unpushed (Linux's `forced_push`: a receiver that waits for PSH to wake its reader is
    /// not kept waiting by a stream that never runs dry).
    fn push_due(&mut self, seq: SeqNumber, end: SeqNumber, data_end: SeqNumber) -> bool {
        let ends_a_write = self.push_marks.on_send(seq, end);
        ends_a_write
            || end.diff(data_end) >= 0
            || end.diff(self.pushed_seq) > (self.max_snd_wnd / 2) as i32
    }

    /// Writes the connection's next segment into `buf`. `None` if nothing is due or `buf` is
    /// too small for even a header.
    #[must_use]
    pub fn poll_transmit(&mut self, cx: &mut Ctx, buf: &mut [u8], ip_id: u16) -> Option<usize> {
        let now = cx.now;
        let data_end = self.data_end();
        let mut probe = false;
        // Which retransmission this is, for the counters.
        let mut resend_kind = ResendKind::Recovery;
        let (seq, len, fin, is_rtx) = if self.rtx_one {
            self.rtx_one = false;
            let outstanding_data = self
                .snd_max
                .distance_from(self.snd_una)
                .unwrap_or(0)
                .min(self.tx.len() as u32) as usize;
            let len = outstanding_data
                .min(self.max_payload() as usize)
                .min(self.sacked.room(self.snd_una));
            let fin = self.fin_sent() && !self.fin_acked && len == self.tx.len();
            let end = self.snd_una + len;
            self.high_rxt = self.high_rxt.max(end);
            (self.snd_una, len, fin, true)
        } else if let Some((seq, len)) = self.take_hole() {
            (seq, len, false, true)
        } else if let Some(p) = self.take_probe() {
            probe = true;
            resend_kind = ResendKind::Probe;
            p
        } else if let Some((len, fin)) = self.send_candidate() {
            self.force_send = false;
            self.snd_nxt = self.next_send_seq();
            let is_rtx = self.snd_nxt.diff(self.snd_max) < 0;
            resend_kind = if self.pmtu_resend {
                ResendKind::PathMtu
            } else {
                ResendKind::Timeout
            };
            (self.snd_nxt, len, fin, is_rtx)
        } else if self.ack_now {
            // A bare ACK carries SND.MAX, not a SND.NXT that a timeout rewound (as Linux's
            // `tcp_acceptable_seq`): below what the peer already holds it is an old segment
            // there, unacceptable, and its ACK is ignored -- with a peer whose own ACKs were
            // also below our RCV.NXT (its FIN unacknowledged), each side ignored the other
            // for good (found by the engine simulation, with SACK recovery).
            (self.snd_max, 0, false, false)
        } else {
            return None;
        };

        let mut hdr = self.header(now);
        hdr.seq = seq;
        if self.dsack_out.take().is_some() && hdr.options.sack_len > 0 {
            cx.stats.dsacks_sent += 1;
        }
        let mut flags = TcpFlags::ACK;
        // Fit the payload into the caller's buffer.
        let room = buf
            .len()
            .checked_sub(wire::tcp_frame_len(&self.addrs, &hdr, 0))?;
        let len = len.min(room);
        let fin = fin && seq + len == data_end;
        if len > 0 && self.push_due(seq, seq + len, data_end) {
            flags |= TcpFlags::PSH;
            if (seq + len).diff(self.pushed_seq) > 0 {
                self.pushed_seq = seq + len;
            }
        }
        if fin {
            flags |= TcpFlags::FIN;
        }
        // RFC 3168: ECT(0) and CWR only on new data (not a retransmission, §6.1.5, nor a
        // window probe, §6.1.6); ECE on everything while a CE is being echoed.
        let new_data = len > 0 && !is_rtx && self.snd_wnd > 0;
        let (ecn_flags, ect) = self.ecn.outgoing(new_data);
        hdr.flags = flags | ecn_flags;
        let off = seq.distance_from(self.snd_una).unwrap_or(0) as usize;
        let (a, b) = self.tx.slices_at(off, len);
        let n = wire::emit_tcp_frame_ecn(buf, &self.addrs, ip_id, cx.cfg.ttl, ect, &hdr, [a, b])
            .ok()?;
        cx.stats.segments_out += 1;

        let end = seq + len + u32::from(fin);
        if len > 0 {
            self.quick_ack.on_data_sent(now, cx.cfg.delayed_ack);
        }
        if len > 0 || fin {
            if self.sack_recovery() {
                self.prr.on_sent(len as u32 + u32::from(fin));
            }
            if is_rtx {
                // Karn: nothing timed across a retransmission.
                cx.stats.retransmits += 1;
                match resend_kind {
                    ResendKind::Recovery => {}
                    ResendKind::Timeout => cx.stats.timeout_retransmits += 1,
                    ResendKind::PathMtu => cx.stats.pmtu_retransmits += 1,
                    ResendKind::Probe => cx.stats.probe_retransmits += 1,
                }
                self.rtt.stop_timing();
            } else if !self.ts_enabled {
                self.rtt.start_timing(seq, now);
            }
            if seq == self.snd_nxt {
                self.snd_nxt = end;
            }
            if self.snd_nxt.diff(self.snd_max) >= 0 {
                // The go-back-N, if one was under way, has caught up.
                self.pmtu_resend = false;
            }
            if end.diff(self.snd_max) > 0 {
                self.snd_max = end;
            }
            self.flight_peak.on_send(self.snd_una, self.snd_max);
            if self.timers.get(Timer::Retransmit).is_none() {
                self.timers.set(Timer::Retransmit, now + self.rtt.rto());
            }
            if self.sack_ok {
                self.log.on_send(seq, end, now);
                if probe {
                    self.probe_sent(cx, is_rtx);
                } else if !is_rtx {
                    self.arm_probe(now);
                }
            }
        }
        // Every segment carries the ACK.
        if self.unacked_bytes > 0 {
            self.quick_ack.on_ack_sent();
        }
        self.ack_now = false;
        self.unacked_bytes = 0;
        self.timers.stop(Timer::DelayedAck);
        self.last_ack_sent = self.rcv_nxt;
        Some(n)
    }

    /// A header with our ports, ACK = RCV.NXT, window and options (timestamps, SACK).
    fn header(&mut self, now: Instant) -> TcpHeader {
        let window = self.window_field();
        let mut options = TcpOptions::default();
        if self.ts_enabled {
            options.timestamps = Some((self.ts_now(now), self.ts_recent));
        }
        if self.sack_ok {
            let max = if self.ts_enabled { 3 } else { 4 };
            let mut n = 0;
            // RFC 2883 §4: the D-SACK block first, then (2) the block of held data that
            // contains it, if any, then the others as RFC 2018 orders them.
            let mut containing = None;
            if let Some((left, right)) = self.dsack_out {
                options.sack_blocks[0] = SackBlock { left, right };
                n = 1;
                for (off, len) in self.asm.sack_ranges() {
                    let (a, b) = (self.rcv_nxt + off, self.rcv_nxt + off + len);
                    if a.diff(left) <= 0 && right.diff(b) <= 0 && n < max {
                        options.sack_blocks[n] = SackBlock { left: a, right: b };
                        n += 1;
                        containing = Some(off);
                        break;
                    }
                }
            }
            for (off, len) in self.asm.sack_ranges() {
                if n >= max {
                    break;
                }
                if containing == Some(off) {
                    continue;
                }
                let left = self.rcv_nxt + off;
                options.sack_blocks[n] = SackBlock {
                    left,
                    right: left + len,
                };
                n += 1;
            }
            options.sack_len = n as u8;
        }
        TcpHeader {
            src_port: self.flow.local_port(),
            dst_port: self.flow.remote_port(),
            seq: self.snd_nxt,
            ack: self.rcv_nxt,
            flags: TcpFlags::ACK,
            window,
            urgent: 0,
            options,
        }
    }

    /// The RST `abort` sends (RFC 9293 §3.10.5: SEQ = SND.NXT).
    pub fn rst_header(&self) -> TcpHeader {
        TcpHeader {
            src_port: self.flow.local_port(),
            dst_port: self.flow.remote_port(),
            seq: self.snd_max,
            ack: self.rcv_nxt,
            flags: TcpFlags::RST | TcpFlags::ACK,
            window: 0,
            urgent: 0,
            options: TcpOptions::default(),
        }
    }

    /// The ACK that answers the FIN which moved us to TIME_WAIT.
    pub fn final_ack_header(&mut self, now: Instant) -> TcpHeader {
        let mut h = self.header(now);
        h.seq = self.snd_max;
        h
    }
}

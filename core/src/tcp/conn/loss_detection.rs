//! Loss detection beyond the duplicate-ACK count: RACK (RFC 8985 §6) on each ACK and on the
//! reordering timer, the tail loss probe (§7) and D-SACK (RFC 2883) on both sides. All of it
//! runs only on connections that negotiated SACK: RACK-TLP is built on SACK information, and
//! without it the RFC 5681 / RFC 6582 rules in `mod.rs` stay as they were.
//!
//! A segment RACK marks lost is retransmitted through the same path as an RFC 6675 hole
//! (`take_hole`), and the first such mark outside recovery enters fast recovery the way the
//! third duplicate ACK does, congestion controller included.

use super::{Conn, Ctx, Seg, Timer};
use crate::tcp::congestion::CongestionControl;
use crate::tcp::rack::Rack;
use crate::tcp::send_log::{Delivered, Sent};
use crate::tcp::tlp::{self, ProbeAck};
use crate::time::Instant;
use crate::wire::{SackBlock, SeqNumber};

impl Conn {
    /// RFC 2883 §4 (sender side): the ACK's first SACK block reports a duplicate segment
    /// when it lies below the cumulative ACK or inside the second block. Blocks that are
    /// malformed or name data never sent are not taken as one.
    pub(super) fn dsack_block(&self, seg: &Seg, ack: SeqNumber) -> Option<(SeqNumber, SeqNumber)> {
        if !self.sack_ok {
            return None;
        }
        let &SackBlock { left, right } = seg.sack.first()?;
        let len = right.distance_from(left).filter(|&l| l > 0)?;
        let sent = right.diff(self.snd_max) <= 0 && len as usize <= self.tx.capacity();
        let below = right.diff(ack) <= 0;
        let inside = seg
            .sack
            .get(1)
            .is_some_and(|b| b.left.diff(left) <= 0 && right.diff(b.right) <= 0);
        (sent && (below || inside)).then_some((left, right))
    }

    /// The TSecr of `seg`, an ACK, if timestamps are in use and it echoes one.
    pub(super) fn tsecr_of(&self, seg: &Seg) -> Option<u32> {
        match (self.ts_enabled, seg.ts) {
            (true, Some((_, tsecr))) if tsecr != 0 => Some(tsecr),
            _ => None,
        }
    }

    /// Everything an ACK feeds loss detection, after the cumulative ACK and the SACK blocks
    /// were taken in: RACK's state (RFC 8985 §6.2 steps 1-4), the probe's answer (§7.4), then
    /// RACK's detect-loss (step 5) and the probe timer (§7.2).
    pub(super) fn detect_losses_on_ack(
        &mut self,
        cx: &mut Ctx,
        seg: &Seg,
        ack: SeqNumber,
        acked: u32,
        (delivered, sacked_before): (&Delivered, u32),
        dsack: Option<(SeqNumber, SeqNumber)>,
    ) {
        if !self.sack_ok {
            return;
        }
        let now = cx.now;
        let (tsecr, ts_offset) = (self.tsecr_of(seg), self.ts_offset);
        let echo = move |sent: &Sent| echoes_last_transmission(tsecr, ts_offset, sent);
        if acked > 0 {
            // In order, nothing SACKed (before this ACK: a hole filled by its original is
            // reordering), no recovery or probe under way: nothing outstanding was sent before
            // what this ACK delivers, so only min_RTT learns from it (the first SACK or
            // recovery sets RACK.xmit_ts and rtt afresh).
            let in_order = seg.sack.is_empty()
                && sacked_before == 0
                && !self.in_recovery
                && !self.probe.in_flight();
            if in_order {
                self.rack.on_in_order_ack(delivered, now);
            } else {
                self.rack.on_cumulative_ack(delivered, now, echo);
            }
        }
        if !seg.sack.is_empty() {
            let rack = &mut self.rack;
            self.log.mark_sacked(&self.sacked, |sent| {
                rack.on_delivered(sent, now, echo(sent))
            });
        }
        if dsack.is_some() {
            cx.stats.dsacks_received += 1;
            self.rack.on_dsack(self.snd_una, self.snd_max);
        }

        let dupack_without_sack = acked == 0 && seg.sack.is_empty() && seg.payload.is_empty();
        if self.probe.on_ack(ack, dsack, dupack_without_sack) == ProbeAck::RepairedLoss
            && !self.in_recovery
        {
            // RFC 8985 §7.4.2: the probe repaired a loss: congestion control reacts as to a
            // recovery that began and ended at once.
            let flight = self.snd_max.distance_from(self.snd_una).unwrap_or(0);
            self.cc
                .on_fast_retransmit(flight.saturating_add(acked), now);
            self.cc.on_sack_recovery();
            self.cc.on_recovery_end(flight.max(self.cc.ssthresh()));
            self.rack.on_recovery_end();
        }

        self.detect_losses(cx);
        if acked > 0 {
            self.arm_probe(now);
        }
    }

    /// RFC 8985 §6.2 step 5 and §6.3: marks what RACK says is lost, arms the reordering
    /// timer for what is not lost yet, and enters recovery when something was marked.
    pub(super) fn detect_losses(&mut self, cx: &mut Ctx) {
        // With nothing SACKed and no recovery under way, every delivered segment was
        // delivered in order: nothing sent before it is outstanding.
        let latest = self
            .rack
            .latest()
            .filter(|_| self.log.sacked_segs() > 0 || self.in_recovery);
        let Some((xmit, end)) = latest else {
            self.timers.stop(Timer::Reorder);
            return;
        };
        let wait = self
            .rack
            .wait(self.in_recovery, self.log.sacked_segs(), self.rtt.srtt());
        let (marked, timeout) = self.log.detect_loss(xmit, end, wait, cx.now);
        match timeout {
            Some(left) => self.timers.set(Timer::Reorder, cx.now + left),
            None => self.timers.stop(Timer::Reorder),
        }
        if marked == 0 {
            return;
        }
        cx.stats.rack_lost += u64::from(marked);
        // After a timeout, until the cumulative ACK passes what was outstanding then, the
        // go-back-N resend repairs the losses (RFC 6582 §3.2 step 2's guard, as for the
        // duplicate-ACK entry).
        if !self.in_recovery && self.snd_una.diff(self.recover) >= 0 {
            self.enter_recovery(cx, false);
        }
    }

    /// RFC 8985 §7.2 `TLP_schedule`: (re)arms the PTO after new data was sent or ACKed,
    /// unless the connection is in fast or RTO recovery, has SACKed segments (RACK is on it),
    /// the peer's window is closed or a probe is already in flight; stops it otherwise.
    pub(super) fn arm_probe(&mut self, now: Instant) {
        // A closed peer window is the persist timer's and the RTO's (zero-window probes).
        let eligible = self.sack_ok
            && self.snd_wnd > 0
            && self.outstanding()
            && !self.in_recovery
            && self.retries == 0
            && self.log.sacked_segs() == 0
            && !self.probe.in_flight();
        if !eligible {
            self.timers.stop(Timer::LossProbe);
            return;
        }
        let rto_at = self
            .timers
            .get(Timer::Retransmit)
            .unwrap_or(now + self.rtt.rto());
        let flight = self.snd_max.distance_from(self.snd_una).unwrap_or(0);
        let at = tlp::pto(self.rtt.srtt(), flight <= self.smss, now, rto_at);
        self.timers.set(Timer::LossProbe, at);
    }

    /// RFC 8985 §7.3: the probe the PTO asked for, `(seq, len, fin, is_retransmission)`: one
    /// new segment if there is unsent data and the peer's window has room for it (the
    /// congestion window is not asked), else the last segment sent again.
    pub(super) fn take_probe(&mut self) -> Option<(SeqNumber, usize, bool, bool)> {
        if !std::mem::take(&mut self.probe_due) || !self.outstanding() || self.in_recovery {
            return None;
        }
        let data_end = self.data_end();
        let mss = self.max_payload() as usize;
        if self.snd_nxt == self.snd_max {
            let unsent = data_end.distance_from(self.snd_max).unwrap_or(0) as usize;
            let room = self.snd_wnd.saturating_sub(self.flight()) as usize;
            let len = unsent.min(mss).min(room);
            if len > 0 {
                let fin = self.fin_pending() && len == unsent;
                return Some((self.snd_max, len, fin, false));
            }
        }
        let (start, end) = self.log.last().unwrap_or((self.snd_una, self.snd_max));
        let start = start.max(self.snd_una).max(end - mss as u32);
        let len = data_end.min(end).distance_from(start).unwrap_or(0) as usize;
        let fin = self.fin_sent() && !self.fin_acked && end.diff(data_end) > 0;
        (len > 0 || fin).then_some((start, len, fin, true))
    }

    /// The probe went out: RFC 8985 §7.3 records it and rearms the RTO (not the PTO).
    pub(super) fn probe_sent(&mut self, cx: &mut Ctx, is_retrans: bool) {
        self.probe.sent(self.snd_max, is_retrans);
        cx.stats.loss_probes += 1;
        self.timers.stop(Timer::LossProbe);
        self.timers.set(Timer::Retransmit, cx.now + self.rtt.rto());
    }

    /// RFC 2883 §4 (receiver side): a segment whose text lies wholly below RCV.NXT (an
    /// unacceptable one) is a duplicate; the next ACK's first SACK block names it. Only
    /// within the receive buffer's reach below RCV.NXT: anything older is not ours to name.
    pub(super) fn note_old_duplicate(&mut self, seg: &Seg) {
        if !self.sack_ok || seg.payload.is_empty() {
            return;
        }
        let end = seg.seq + seg.payload.len();
        let age = self.rcv_nxt.diff(seg.seq);
        if end.diff(self.rcv_nxt) <= 0 && age > 0 && age as usize <= 2 * self.rx.capacity() {
            self.dsack_out = Some((seg.seq, end));
        }
    }
}

/// Whether an ACK echoing `tsecr` echoes the TSval of `sent`'s last transmission or a later
/// one (TSvals are the send time in milliseconds plus `ts_offset`); `None` without
/// timestamps.
pub(super) fn echoes_last_transmission(
    tsecr: Option<u32>,
    ts_offset: u32,
    sent: &Sent,
) -> Option<bool> {
    let sent_ts = (sent.xmit.as_millis() as u32).wrapping_add(ts_offset);
    tsecr.map(|ts| ts.wrapping_sub(sent_ts) as i32 >= 0)
}

/// The most recently sent segment a cumulative ACK at `now` is known to have delivered, as
/// RACK's step 2 (RFC 8985 §6.2) knows it: the latest if it was an original or the ACK can
/// be for its last copy (`Rack::acks_last_transmission`), else the latest original it newly
/// delivered (segments SACKed before are not among them: `SendLog::take_acked`), or none. A
/// segment sent before it and still outstanding was lost; one sent after it may be on its
/// way. With none, the partial-ACK rule takes nothing as lost and RACK's own state (which
/// holds the SACKed deliveries) decides, on this ACK or by its reordering timer.
pub(super) fn latest_delivered(
    d: &Delivered,
    rack: &Rack,
    tsecr: Option<u32>,
    ts_offset: u32,
    now: Instant,
) -> Option<Sent> {
    d.latest
        .filter(|l| {
            rack.acks_last_transmission(l, now, echoes_last_transmission(tsecr, ts_offset, l))
        })
        .or(d.latest_original)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::send_log::SendLog;

    const SEG: u32 = 1000;

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    /// Segment 0 sent at 0 ms and resent at 100 and 200 ms; segments 1-3 sent at 0 ms,
    /// segment 4 at 150 ms. A cumulative ACK at 201 ms of segments 0-3 that echoes the
    /// timestamp of the first resend (100 ms) delivered that copy: the latest segment it is
    /// known to have delivered is segment 3 (0 ms), so segment 4 is not sent before it.
    #[test]
    fn rfc8985_s6_2_step2_an_ack_of_an_earlier_copy_is_not_taken_as_the_last_ones() {
        let mut log = SendLog::new(64);
        for i in 0..4 {
            log.on_send(SeqNumber(i * SEG), SeqNumber((i + 1) * SEG), ms(0));
        }
        log.on_send(SeqNumber(0), SeqNumber(SEG), ms(100));
        log.on_send(SeqNumber(4 * SEG), SeqNumber(5 * SEG), ms(150));
        log.on_send(SeqNumber(0), SeqNumber(SEG), ms(200));
        let d = log.take_acked(SeqNumber(4 * SEG));
        let mut rack = Rack::default();
        // A round trip of 100 ms seen before.
        let first = log.first().expect("segment 4 left");
        rack.on_delivered(&first, ms(250), None);
        let offset = 7;
        let echo_first_resend = Some(100 + offset);
        let latest = latest_delivered(&d, &rack, echo_first_resend, offset, ms(201));
        assert_eq!(
            latest.map(|l| (l.end, l.xmit)),
            Some((SeqNumber(4 * SEG), ms(0)))
        );
        // Echoing the last copy's timestamp, a round trip after it: that copy was delivered.
        let echo_last = Some(200 + offset);
        let latest = latest_delivered(&d, &rack, echo_last, offset, ms(300));
        assert_eq!(
            latest.map(|l| (l.end, l.xmit)),
            Some((SeqNumber(SEG), ms(200)))
        );
        // Without timestamps, an ACK sooner after the resend than the least round trip is
        // for an earlier copy (step 2's second test).
        let latest = latest_delivered(&d, &rack, None, offset, ms(201));
        assert_eq!(latest.map(|l| l.xmit), Some(ms(0)));
        let latest = latest_delivered(&d, &rack, None, offset, ms(300));
        assert_eq!(latest.map(|l| l.xmit), Some(ms(200)));
    }
}

//! RACK's state (RFC 8985 §6): the most recently sent segment the peer delivered (its
//! transmit time, end and RTT), the reordering window and what adapts it (reordering seen,
//! D-SACK rounds). The send log (`send_log.rs`) holds the segments; the connection feeds this
//! type each delivered segment and asks it how long to wait before a segment sent earlier is
//! lost.
//!
//! Time-based loss detection is what the duplicate-ACK count cannot give: a lost
//! retransmission (a later segment, sent after the retransmission, is delivered and the
//! retransmission is not), and the last segments of a burst (with a tail loss probe, §7).

use super::send_log::{sent_after, Delivered, Sent};
use crate::time::{Duration, Instant};
use crate::wire::SeqNumber;

/// RFC 8985 §6.2 step 4: D-SACK rounds a widened reordering window lasts for.
const REO_WND_PERSIST: u8 = 16;
/// RFC 6675's DupThresh, in segments.
const DUP_THRESH: u32 = 3;
/// A resend's ACK counts as its own down to min_RTT minus min_RTT / this (see
/// `Rack::acks_last_transmission`).
const RESEND_RTT_SLACK: u32 = 8;

#[derive(Debug, Clone, Copy)]
pub struct Rack {
    /// RACK.xmit_ts and RACK.end_seq: the most recently sent segment delivered so far.
    latest: Option<(Instant, SeqNumber)>,
    /// RACK.rtt: that segment's RTT.
    rtt: Duration,
    /// RACK.min_RTT: the least RTT measured (over the connection: no windowed filter).
    min_rtt: Option<Duration>,
    /// RACK.fack: the highest end delivered.
    fack: Option<SeqNumber>,
    /// RACK.reordering_seen.
    reordering_seen: bool,
    /// RACK.reo_wnd_mult (at least 1).
    reo_wnd_mult: u32,
    /// RACK.reo_wnd_persist.
    reo_wnd_persist: u8,
    /// RACK.dsack_round: a D-SACK round runs until SND.UNA passes this.
    dsack_round: Option<SeqNumber>,
}

impl Default for Rack {
    fn default() -> Self {
        Rack {
            latest: None,
            rtt: Duration::ZERO,
            min_rtt: None,
            fack: None,
            reordering_seen: false,
            reo_wnd_mult: 1,
            reo_wnd_persist: 0,
            dsack_round: None,
        }
    }
}

impl Rack {
    /// RFC 8985 §6.2 step 2: whether an ACK at `now` that delivered `seg` can be for its
    /// last transmission. An original's can; a retransmitted segment's may be for an earlier
    /// copy, and is not taken as the last one's when the ACK echoes an older timestamp
    /// (`tsecr_at_or_after == Some(false)`) or came sooner after the resend than any round
    /// trip has taken. Taken as the last, its transmit time would be too late: its RTT too
    /// short, and everything sent before the resend would look sent before what was
    /// delivered.
    ///
    /// "Sooner than any round trip" allows an eighth of min_RTT (`RESEND_RTT_SLACK`), a
    /// departure from the RFC's `< RACK.min_RTT` on purpose: over a path of steady delay the
    /// resend's ACK comes exactly one min_RTT after it, and microseconds of jitter decided
    /// whether RACK saw it. Unseen, the segments sent before the resend and lost with it
    /// waited for the RTO (a 64 KiB download over 80 ms with 1% loss: 0.70 s against the
    /// kernel path's 0.43 s, whose loss fell elsewhere). An original's ACK that late would
    /// have to trail the resend's send by more than 7/8 of the path's least round trip.
    pub fn acks_last_transmission(
        &self,
        seg: &Sent,
        now: Instant,
        tsecr_at_or_after: Option<bool>,
    ) -> bool {
        if !seg.retransmitted() {
            return true;
        }
        let rtt = now.saturating_duration_since(seg.xmit);
        tsecr_at_or_after != Some(false)
            && self
                .min_rtt
                .is_none_or(|m| rtt >= m.saturating_sub(m / RESEND_RTT_SLACK))
    }

    /// RFC 8985 §6.2 steps 2 and 3 for one segment this ACK delivered. `tsecr_at_or_after`
    /// says whether the ACK echoes a timestamp at least as recent as the segment's last
    /// transmission (`None` without timestamps).
    pub fn on_delivered(&mut self, seg: &Sent, now: Instant, tsecr_at_or_after: Option<bool>) {
        // Step 3: an original transmission delivered below the highest delivered end was
        // reordered.
        match self.fack {
            Some(fack) if seg.end.diff(fack) < 0 => {
                if !seg.retransmitted() {
                    self.reordering_seen = true;
                }
            }
            _ => self.fack = Some(seg.end),
        }
        if !self.acks_last_transmission(seg, now, tsecr_at_or_after) {
            return;
        }
        let rtt = now.saturating_duration_since(seg.xmit);
        // A resend's sample taken within the slack below min_RTT does not lower it: the
        // slack would otherwise ratchet min_RTT down resend by resend.
        if !seg.retransmitted() || self.min_rtt.is_none() {
            self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        }
        // RACK.rtt follows RACK.xmit_ts: the segments go by in sequence, not transmit, order,
        // so the RTT kept is that of the most recently sent one, as the RFC's ascending walk
        // leaves it.
        let newer = self
            .latest
            .is_none_or(|(t, end)| sent_after(seg.xmit, seg.end, t, end));
        if newer {
            self.latest = Some((seg.xmit, seg.end));
            self.rtt = rtt;
        }
    }

    /// Steps 2 and 3 for what one cumulative ACK delivered (`SendLog::take_acked`): the
    /// reordering check against the highest end delivered before this ACK, then the samples
    /// in transmit order (the latest original, then the latest if it was a resend).
    pub fn on_cumulative_ack(
        &mut self,
        d: &Delivered,
        now: Instant,
        echo: impl Fn(&Sent) -> Option<bool>,
    ) {
        if let (Some(fack), Some(end)) = (self.fack, d.first_original_end) {
            if end.diff(fack) < 0 {
                self.reordering_seen = true;
            }
        }
        if let Some(o) = d.latest_original.filter(|o| Some(*o) != d.latest) {
            self.on_delivered(&o, now, echo(&o));
        }
        if let Some(l) = d.latest {
            self.on_delivered(&l, now, echo(&l));
        }
        if let Some(h) = d.highest_end {
            if self.fack.is_none_or(|f| h.diff(f) > 0) {
                self.fack = Some(h);
            }
        }
    }

    /// What a cumulative ACK delivered in order, with nothing SACKed and no recovery: only
    /// the RTT sample of the most recently sent original counts (min_RTT). RACK.xmit_ts, rtt
    /// and fack can stay behind: no segment outstanding was sent before these, and the next
    /// SACK or recovery moves them past them.
    pub fn on_in_order_ack(&mut self, d: &Delivered, now: Instant) {
        if let Some(o) = d.latest_original {
            let rtt = now.saturating_duration_since(o.xmit);
            self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        }
    }

    /// The most recently sent delivered segment, for `SendLog::detect_loss`.
    pub fn latest(&self) -> Option<(Instant, SeqNumber)> {
        self.latest
    }

    /// RFC 8985 §6.2 step 4, first half: a D-SACK starts a round (if none is running) that
    /// widens the reordering window by min_RTT / 4 for the next 16 recoveries.
    pub fn on_dsack(&mut self, snd_una: SeqNumber, snd_nxt: SeqNumber) {
        if self.dsack_round.is_some_and(|r| snd_una.diff(r) >= 0) {
            self.dsack_round = None;
        }
        if self.dsack_round.is_none() {
            self.dsack_round = Some(snd_nxt);
            self.reo_wnd_mult = self.reo_wnd_mult.saturating_add(1);
            self.reo_wnd_persist = REO_WND_PERSIST;
        }
    }

    /// RFC 8985 §6.2 step 4, second half: leaving a recovery counts down the persistence;
    /// at zero the window returns to its base.
    pub fn on_recovery_end(&mut self) {
        self.reo_wnd_persist = self.reo_wnd_persist.saturating_sub(1);
        if self.reo_wnd_persist == 0 {
            self.reo_wnd_mult = 1;
        }
    }

    /// RFC 8985 §6.2 `RACK_update_reo_wnd`'s value: 0 while no reordering was seen and the
    /// connection is in recovery or has DupThresh segments SACKed (then it behaves as RFC
    /// 6675 would), else reo_wnd_mult * min_RTT / 4, at most SRTT.
    pub fn reo_wnd(&self, in_recovery: bool, segs_sacked: u32, srtt: Option<Duration>) -> Duration {
        if !self.reordering_seen && (in_recovery || segs_sacked >= DUP_THRESH) {
            return Duration::ZERO;
        }
        let base = self.min_rtt.unwrap_or(Duration::ZERO) / 4;
        let wnd = base.saturating_mul(self.reo_wnd_mult);
        srtt.map_or(wnd, |s| wnd.min(s))
    }

    /// RACK.rtt + the reordering window: how long after its transmission a segment sent
    /// before the latest delivered one is lost.
    pub fn wait(&self, in_recovery: bool, segs_sacked: u32, srtt: Option<Duration>) -> Duration {
        self.rtt
            .saturating_add(self.reo_wnd(in_recovery, segs_sacked, srtt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::sack::Scoreboard;
    use crate::tcp::send_log::SendLog;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }
    fn t(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    /// Delivers everything of a log below the cumulative ACK `to`.
    fn deliver(rack: &mut Rack, log: &mut SendLog, to: u32, now: Instant) {
        let d = log.take_acked(SeqNumber(to));
        rack.on_cumulative_ack(&d, now, |_| None);
    }

    #[test]
    fn rfc8985_s6_2_step2_latest_is_the_most_recently_sent_delivered_segment() {
        let mut rack = Rack::default();
        let mut log = SendLog::new(8);
        log.on_send(SeqNumber(0), SeqNumber(10), t(0));
        log.on_send(SeqNumber(10), SeqNumber(20), t(5));
        deliver(&mut rack, &mut log, 20, t(30));
        assert_eq!(rack.latest(), Some((t(5), SeqNumber(20))));
        assert_eq!(rack.rtt, ms(25));
        assert_eq!(rack.min_rtt, Some(ms(25)));
    }

    #[test]
    fn rfc8985_s6_2_step2_a_retransmission_acked_sooner_than_min_rtt_gives_no_sample() {
        let mut rack = Rack::default();
        let mut log = SendLog::new(8);
        log.on_send(SeqNumber(0), SeqNumber(10), t(0));
        deliver(&mut rack, &mut log, 10, t(100));
        log.on_send(SeqNumber(10), SeqNumber(20), t(200));
        log.on_send(SeqNumber(10), SeqNumber(20), t(290));
        // Acked 10 ms after the retransmission: the original's ACK, not the resend's.
        deliver(&mut rack, &mut log, 20, t(300));
        assert_eq!(rack.latest(), Some((t(0), SeqNumber(10))));
        assert_eq!(rack.rtt, ms(100));
        // An echoed timestamp older than the resend says the same.
        let mut log = SendLog::new(8);
        log.on_send(SeqNumber(20), SeqNumber(30), t(400));
        log.on_send(SeqNumber(20), SeqNumber(30), t(600));
        let d = log.take_acked(SeqNumber(30));
        rack.on_cumulative_ack(&d, t(800), |_| Some(false));
        assert_eq!(rack.latest(), Some((t(0), SeqNumber(10))));
    }

    #[test]
    fn rfc8985_s6_2_step2_a_resends_ack_within_jitter_of_min_rtt_is_its_own() {
        // min_RTT 80 ms; the resend is acked 79.9 ms after it: the path's round trip less
        // some jitter, not the original's ACK. Its RTT is kept, min_RTT is not lowered.
        let mut rack = Rack::default();
        let mut log = SendLog::new(8);
        log.on_send(SeqNumber(0), SeqNumber(10), t(0));
        deliver(&mut rack, &mut log, 10, t(80));
        assert_eq!(rack.min_rtt, Some(ms(80)));
        log.on_send(SeqNumber(10), SeqNumber(20), t(100));
        log.on_send(SeqNumber(10), SeqNumber(20), t(300));
        let at = t(300) + Duration::from_micros(79_900);
        deliver(&mut rack, &mut log, 20, at);
        assert_eq!(rack.latest(), Some((t(300), SeqNumber(20))));
        assert_eq!(rack.rtt, Duration::from_micros(79_900));
        assert_eq!(rack.min_rtt, Some(ms(80)));
        // Below the slack (7/8 of min_RTT, 70 ms) it is still taken for the original's.
        log.on_send(SeqNumber(20), SeqNumber(30), t(400));
        log.on_send(SeqNumber(20), SeqNumber(30), t(600));
        deliver(&mut rack, &mut log, 30, t(669));
        assert_eq!(rack.latest(), Some((t(300), SeqNumber(20))));
    }

    #[test]
    fn rfc8985_s6_2_step3_an_original_delivered_below_fack_is_reordering() {
        let mut rack = Rack::default();
        let mut log = SendLog::new(8);
        for i in 0..3u32 {
            log.on_send(SeqNumber(i * 10), SeqNumber(i * 10 + 10), t(u64::from(i)));
        }
        let mut sb = Scoreboard::default();
        sb.add(SeqNumber(20), SeqNumber(30), SeqNumber(0), SeqNumber(30));
        log.mark_sacked(&sb, |e| rack.on_delivered(e, t(50), None));
        assert!(!rack.reordering_seen);
        deliver(&mut rack, &mut log, 20, t(51));
        assert!(rack.reordering_seen);
    }

    #[test]
    fn rfc8985_s6_2_step3_a_cumulative_ack_past_fack_still_sees_the_original_it_skipped() {
        // [10, 20) SACKed first; then one ACK delivers [0, 10) and [20, 30): the latest is
        // above fack, the lowest original below it.
        let mut rack = Rack::default();
        let mut log = SendLog::new(8);
        for i in 0..3u32 {
            log.on_send(SeqNumber(i * 10), SeqNumber(i * 10 + 10), t(u64::from(i)));
        }
        let mut sb = Scoreboard::default();
        sb.add(SeqNumber(10), SeqNumber(20), SeqNumber(0), SeqNumber(30));
        log.mark_sacked(&sb, |e| rack.on_delivered(e, t(50), None));
        deliver(&mut rack, &mut log, 30, t(51));
        assert!(rack.reordering_seen);
        assert_eq!(rack.fack, Some(SeqNumber(30)));
    }

    #[test]
    fn rfc8985_s6_2_step4_reo_wnd_is_zero_in_recovery_until_reordering_then_a_quarter_min_rtt() {
        let mut rack = Rack {
            min_rtt: Some(ms(40)),
            ..Rack::default()
        };
        assert_eq!(rack.reo_wnd(false, 0, Some(ms(50))), ms(10));
        assert_eq!(rack.reo_wnd(true, 0, Some(ms(50))), ms(0));
        assert_eq!(rack.reo_wnd(false, 3, Some(ms(50))), ms(0));
        rack.reordering_seen = true;
        assert_eq!(rack.reo_wnd(true, 3, Some(ms(50))), ms(10));
        // Capped by SRTT.
        assert_eq!(rack.reo_wnd(true, 3, Some(ms(5))), ms(5));
    }

    #[test]
    fn rfc8985_s6_2_step4_a_dsack_round_widens_reo_wnd_for_16_recoveries() {
        let mut rack = Rack {
            min_rtt: Some(ms(40)),
            ..Rack::default()
        };
        rack.on_dsack(SeqNumber(0), SeqNumber(1000));
        assert_eq!(rack.reo_wnd(false, 0, None), ms(20));
        // A second D-SACK in the same round changes nothing; after SND.UNA passes the
        // round's end, the next one widens again.
        rack.on_dsack(SeqNumber(500), SeqNumber(1500));
        assert_eq!(rack.reo_wnd(false, 0, None), ms(20));
        rack.on_dsack(SeqNumber(1000), SeqNumber(2000));
        assert_eq!(rack.reo_wnd(false, 0, None), ms(30));
        for _ in 0..15 {
            rack.on_recovery_end();
        }
        assert_eq!(rack.reo_wnd(false, 0, None), ms(30));
        rack.on_recovery_end();
        assert_eq!(rack.reo_wnd(false, 0, None), ms(10));
    }
}

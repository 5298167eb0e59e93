//! Proportional Rate Reduction (RFC 6937): how much a connection may send on each ACK of a
//! SACK recovery. Without it (RFC 6675 alone) the window drops to ssthresh at once: nothing
//! goes out until the pipe has drained below it, then every ACK that reports a segment
//! delivered *and* a hole below it lost frees two segments -- twice what left the
//! bottleneck, so a queue that overflowed overflows again and the retransmissions are lost
//! with it (seen: a slow start that lost every other segment of a window lost every other
//! retransmission too). PRR spreads the reduction over the round trip instead: while the
//! pipe is above ssthresh, `ssthresh / RecoverFS` of what is delivered is sent; below it,
//! slow start back up to ssthresh, at most one segment more than what was delivered
//! (PRR-SSRB, the RFC's recommended bound). Linux does the same (`tcp_cwnd_reduction`).
//!
//! The budget is counted in bytes and spent a segment at a time: a segment goes out while
//! any budget is left, and the overdraft comes off the next ACK's budget (`prr_out` is the
//! running total, so the proportion holds over the recovery).

/// PRR's state for one recovery episode.
#[derive(Debug, Clone, Copy, Default)]
pub struct Prr {
    /// `RecoverFS`: the FlightSize when recovery began.
    recover_fs: u32,
    /// `prr_delivered`: bytes the peer reported delivered since recovery began.
    delivered: u64,
    /// `prr_out`: bytes sent since recovery began.
    out: u64,
    /// What may still be sent before the next ACK.
    budget: u32,
}

impl Prr {
    /// Recovery begins with `flight` bytes outstanding. The segment that begins it (the fast
    /// retransmit, RFC 5681 §3.2 step 2) may go before any ACK has paid for it.
    pub fn start(&mut self, flight: u32) {
        *self = Prr {
            recover_fs: flight.max(1),
            delivered: 0,
            out: 0,
            budget: 1,
        };
    }

    /// An ACK during recovery reported `delivered` bytes newly delivered (the cumulative ACK's
    /// advance plus the newly SACKed bytes, RFC 6937 `DeliveredData`); `pipe` is RFC 6675's
    /// estimate after it. Sets the budget until the next ACK (RFC 6937 §3.1).
    pub fn on_ack(&mut self, delivered: u32, pipe: u32, ssthresh: u32, smss: u32) {
        self.delivered += u64::from(delivered);
        let sndcnt = if pipe > ssthresh {
            // Proportional part: CEIL(prr_delivered * ssthresh / RecoverFS) - prr_out.
            let due = (self.delivered * u64::from(ssthresh)).div_ceil(u64::from(self.recover_fs));
            due.saturating_sub(self.out)
        } else {
            // PRR-SSRB: MIN(ssthresh - pipe, MAX(prr_delivered - prr_out, DeliveredData) + MSS).
            let limit = self
                .delivered
                .saturating_sub(self.out)
                .max(u64::from(delivered))
                + u64::from(smss);
            u64::from(ssthresh - pipe).min(limit)
        };
        self.budget = u32::try_from(sndcnt).unwrap_or(u32::MAX);
        if self.out == 0 && self.budget == 0 {
            // Nothing sent yet in this recovery: the fast retransmit still goes (Linux's
            // `tcp_cwnd_reduction` does the same).
            self.budget = 1;
        }
    }

    /// Whether a segment may go now.
    pub fn may_send(&self) -> bool {
        self.budget > 0
    }

    /// A segment of `len` bytes was sent during recovery.
    pub fn on_sent(&mut self, len: u32) {
        self.out += u64::from(len);
        self.budget = self.budget.saturating_sub(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;

    #[test]
    fn rfc6937_the_first_segment_goes_before_any_ack_pays_for_it() {
        let mut p = Prr::default();
        p.start(20 * MSS);
        assert!(p.may_send());
        p.on_sent(MSS);
        assert!(!p.may_send());
    }

    #[test]
    fn rfc6937_above_ssthresh_sends_ssthresh_over_recoverfs_of_what_is_delivered() {
        // RecoverFS 20 segments, ssthresh 14 (CUBIC's 0.7): 7 segments for every 10
        // delivered, spread over the ACKs.
        let mut p = Prr::default();
        p.start(20 * MSS);
        let (mut sent, mut pipe) = (0, 20 * MSS);
        for _ in 0..10 {
            pipe -= MSS;
            p.on_ack(MSS, pipe, 14 * MSS, MSS);
            while p.may_send() {
                p.on_sent(MSS);
                pipe += MSS;
                sent += 1;
            }
        }
        assert_eq!(sent, 7);
        assert!(
            pipe > 14 * MSS,
            "still above ssthresh: proportional all along"
        );
    }

    #[test]
    fn rfc6937_every_other_segment_lost_sends_from_the_first_ack_and_keeps_the_pipe_in_bounds() {
        // Each ACK SACKs one segment and marks the hole below it lost: the pipe drops by two
        // segments an ACK. RFC 6675 alone (cwnd = ssthresh at once) would send nothing for
        // the first 6 ACKs, then two on each; PRR sends from the first ACK, in proportion,
        // and never lets the pipe past ssthresh.
        let mut p = Prr::default();
        p.start(40 * MSS);
        let (mut pipe, mut first_send, mut sent) = (40 * MSS, None, 0);
        for i in 0..20 {
            pipe -= 2 * MSS;
            p.on_ack(MSS, pipe, 28 * MSS, MSS);
            while p.may_send() {
                p.on_sent(MSS);
                pipe += MSS;
                sent += 1;
                first_send.get_or_insert(i);
                assert!(pipe <= 28 * MSS || i < 9, "ACK {i}: pipe {pipe}");
            }
        }
        assert_eq!(first_send, Some(0));
        assert!(pipe <= 28 * MSS, "{pipe}");
        assert!(sent <= 28, "{sent}");
    }

    #[test]
    fn rfc6937_ssrb_below_ssthresh_grows_by_at_most_one_segment_more_than_delivered() {
        let mut p = Prr::default();
        p.start(20 * MSS);
        // A pipe far below ssthresh (losses beyond the reduction): one ACK of one segment
        // lets two out, not the whole gap.
        p.on_ack(MSS, 2 * MSS, 14 * MSS, MSS);
        let mut n = 0;
        while p.may_send() {
            p.on_sent(MSS);
            n += 1;
        }
        assert_eq!(n, 2);
        // Never past ssthresh.
        p.on_ack(10 * MSS, 13 * MSS + 500, 14 * MSS, MSS);
        p.on_sent(MSS);
        assert!(!p.may_send());
    }

    #[test]
    fn an_overdraft_comes_off_the_next_budget() {
        let mut p = Prr::default();
        p.start(10 * MSS);
        // Half a segment due: a whole one goes; the next half-segment ACK pays it off.
        p.on_ack(MSS, 9 * MSS, 5 * MSS, MSS);
        assert!(p.may_send());
        p.on_sent(MSS);
        p.on_ack(MSS, 8 * MSS, 5 * MSS, MSS);
        assert!(!p.may_send(), "1000 due, 1000 sent");
        p.on_ack(MSS, 7 * MSS, 5 * MSS, MSS);
        assert!(p.may_send());
    }
}

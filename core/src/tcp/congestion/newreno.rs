//! NewReno (RFC 5681 window growth and reduction, RFC 6582 fast recovery), the window
//! arithmetic of the events the connection reports; the retransmissions themselves are the
//! connection's.

use super::hystart::{AckSample, HyStart, HyStartEvent, SlowStartStep};
use super::{initial_window, partial_ack_window, recovery_end_window, rescale, CongestionControl};
use crate::time::Instant;

#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct NewReno {
    /// First, as in every controller: see `Congestion`.
    cwnd: u32,
    ssthresh: u32,
    /// Sender MSS: the unit of growth and of the loss window.
    smss: u32,
    /// RFC 9406 in the first slow start.
    hystart: HyStart,
}

impl NewReno {
    /// A fresh controller; its first slow start uses HyStart++ if `hystart`.
    pub fn new(smss: u32, hystart: bool) -> Self {
        NewReno {
            cwnd: initial_window(smss),
            ssthresh: u32::MAX,
            smss,
            hystart: HyStart::new(hystart),
        }
    }

    /// RFC 5681 §3.1 eq. 4: ssthresh = max(FlightSize / 2, 2*SMSS). A loss also ends
    /// HyStart++ for good (RFC 9406 §4.3).
    fn halve(&mut self, flight: u32) {
        self.ssthresh = (flight / 2).max(2 * self.smss);
        self.hystart.on_congestion();
    }
}

impl CongestionControl for NewReno {
    fn window(&self) -> u32 {
        self.cwnd
    }

    fn ssthresh(&self) -> u32 {
        self.ssthresh
    }

    fn on_ack(&mut self, s: &AckSample) -> Option<HyStartEvent> {
        let smss = self.smss;
        if self.cwnd < self.ssthresh {
            // RFC 5681 §3.1 slow start, with appropriate byte counting (L = 1 SMSS), or
            // HyStart++'s (RFC 9406) until it ends in congestion avoidance at this window.
            let (step, event) = self.hystart.on_ack(s, smss, self.cwnd);
            match step {
                SlowStartStep::Grow(bytes) => self.cwnd = self.cwnd.saturating_add(bytes),
                SlowStartStep::EnterCongestionAvoidance => self.ssthresh = self.cwnd,
            }
            return event;
        }
        // Congestion avoidance: about one SMSS per RTT.
        let inc = (u64::from(smss) * u64::from(smss) / u64::from(self.cwnd.max(1))).max(1);
        self.cwnd = self.cwnd.saturating_add(inc as u32);
        None
    }

    fn on_fast_retransmit(&mut self, flight: u32, _now: Instant) {
        // RFC 6582 §3.2 step 2 (RFC 5681 §3.2 steps 2-3): halve, then inflate by the three
        // segments the duplicate ACKs say have left the network.
        self.halve(flight);
        self.cwnd = self.ssthresh.saturating_add(3 * self.smss);
    }

    fn on_sack_recovery(&mut self) {
        self.cwnd = self.ssthresh;
    }

    fn on_dup_ack_in_recovery(&mut self) {
        // RFC 5681 §3.2 step 4 (RFC 6582 §3.2 step 3): inflate by one SMSS.
        self.cwnd = self.cwnd.saturating_add(self.smss);
    }

    fn on_partial_ack(&mut self, acked: u32) {
        self.cwnd = partial_ack_window(self.cwnd, acked, self.smss);
    }

    fn on_recovery_end(&mut self, flight: u32) {
        self.cwnd = recovery_end_window(self.ssthresh, flight, self.smss);
    }

    fn on_rto(&mut self, flight: u32, _now: Instant) {
        // RFC 5681 §3.1 eq. 4 and loss window; RFC 6582 §3.2 step 4.
        self.halve(flight);
        self.cwnd = self.smss;
    }

    fn on_ecn_echo(&mut self, flight: u32, _now: Instant) {
        // RFC 3168 §6.1.2: halve the window and set ssthresh, as for a loss, without the
        // fast-recovery inflation (nothing is retransmitted).
        self.halve(flight);
        self.cwnd = self.ssthresh;
    }

    fn on_mss_change(&mut self, smss: u32) {
        let old = self.smss;
        self.cwnd = rescale(self.cwnd, old, smss);
        self.ssthresh = rescale(self.ssthresh, old, smss);
        self.smss = smss;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    const SMSS: u32 = 1000;

    fn t() -> Instant {
        Instant::from_secs(1)
    }

    #[test]
    fn rfc6928_initial_window_is_ten_segments_up_to_14600_bytes() {
        assert_eq!(NewReno::new(1000, false).window(), 10_000);
        assert_eq!(NewReno::new(1460, false).window(), 14_600);
        assert_eq!(NewReno::new(9000, false).window(), 18_000, "at least 2*MSS");
        assert_eq!(NewReno::new(SMSS, false).ssthresh(), u32::MAX);
    }

    #[test]
    fn rfc3168_s6_1_2_ecn_echo_halves_without_inflation() {
        let mut c = NewReno::new(SMSS, true);
        c.on_ecn_echo(30 * SMSS, t());
        assert_eq!(c.ssthresh(), 15 * SMSS);
        assert_eq!(
            c.window(),
            15 * SMSS,
            "cwnd = ssthresh: nothing to retransmit"
        );
        c.on_ecn_echo(SMSS, t());
        assert_eq!(c.window(), 2 * SMSS, "at least two segments");
    }

    #[test]
    fn rfc1191_a_lower_mss_keeps_the_window_in_segments() {
        let mut c = NewReno::new(SMSS, false);
        assert_eq!(c.ssthresh(), u32::MAX);
        c.on_mss_change(SMSS / 2);
        assert_eq!(c.window(), 5 * SMSS, "IW10 of the smaller segments");
        assert_eq!(
            c.ssthresh(),
            u32::MAX,
            "still unbounded: slow start goes on"
        );
        c.on_fast_retransmit(20 * SMSS, t());
        c.on_recovery_end(20 * SMSS);
        c.on_mss_change(SMSS / 4);
        // The reduction's 20 segments of 500 bytes are 20 segments of 250.
        assert_eq!((c.window(), c.ssthresh()), (20 * SMSS / 4, 20 * SMSS / 4));
        // Growth is in the new segments: about one per window in congestion avoidance
        // (SMSS^2 / cwnd per ACK, rounded down).
        let before = c.window();
        for _ in 0..20 {
            c.on_ack(&AckSample::plain(SMSS / 4, c.window(), None, t()));
        }
        let grown = c.window() - before;
        assert!((200..=SMSS / 4).contains(&grown), "{grown}");
    }

    #[test]
    fn rfc5681_slow_start_grows_by_at_most_one_smss_per_ack() {
        let mut c = NewReno::new(SMSS, false);
        c.on_ack(&AckSample::plain(500, u32::MAX, None, t()));
        assert_eq!(c.window(), 10_500);
        c.on_ack(&AckSample::plain(5 * SMSS, u32::MAX, None, t()));
        assert_eq!(c.window(), 11_500, "appropriate byte counting, L = 1 SMSS");
    }

    #[test]
    fn rfc5681_congestion_avoidance_grows_by_smss_squared_over_cwnd() {
        let mut c = NewReno::new(SMSS, false);
        c.on_rto(20 * SMSS, t());
        c.on_ack(&AckSample::plain(SMSS, u32::MAX, None, t()));
        // cwnd 1000 < ssthresh 10000: slow start first.
        assert_eq!(c.window(), 2 * SMSS);
        let mut c = NewReno {
            cwnd: 10 * SMSS,
            ssthresh: 10 * SMSS,
            smss: SMSS,
            hystart: HyStart::new(false),
        };
        c.on_ack(&AckSample::plain(SMSS, u32::MAX, None, t()));
        assert_eq!(c.window(), 10 * SMSS + 100);
    }

    #[test]
    fn rfc6582_fast_recovery_inflates_deflates_and_ends_at_ssthresh() {
        let mut c = NewReno::new(SMSS, false);
        c.on_fast_retransmit(10 * SMSS, t());
        assert_eq!(c.ssthresh(), 5 * SMSS);
        assert_eq!(c.window(), 8 * SMSS);
        c.on_dup_ack_in_recovery();
        assert_eq!(c.window(), 9 * SMSS);
        c.on_partial_ack(2 * SMSS);
        assert_eq!(c.window(), 8 * SMSS, "deflated by 2 SMSS, one added back");
        c.on_partial_ack(SMSS / 2);
        assert_eq!(
            c.window(),
            7 * SMSS + SMSS / 2,
            "less than one SMSS: none back"
        );
        c.on_recovery_end(SMSS);
        assert_eq!(
            c.window(),
            2 * SMSS,
            "min(ssthresh, max(flight, SMSS) + SMSS)"
        );
        c.on_recovery_end(10 * SMSS);
        assert_eq!(c.window(), 5 * SMSS, "at most ssthresh");
    }

    /// One slow-start ACK of a segment at `rtt_ms`; the `n`th ends its round.
    fn hystart_ack(c: &mut NewReno, n: u32, ends_round: bool, rtt_ms: u64) {
        let una = match c.hystart.window_end() {
            Some(end) if ends_round => end.0,
            _ => n,
        };
        c.on_ack(&AckSample {
            acked: SMSS,
            flight: c.window(),
            srtt: None,
            rtt: Some(Duration::from_millis(rtt_ms)),
            ack: crate::wire::SeqNumber(una),
            snd_max: crate::wire::SeqNumber(una + 1000 * SMSS),
            now: t(),
        });
    }

    #[test]
    fn rfc9406_hystart_css_and_no_hystart_after_a_loss() {
        // A round at 40 ms, then one at 60 ms: CSS from its eighth ACK, a quarter of the
        // growth.
        let mut c = NewReno::new(SMSS, true);
        for i in 0..10 {
            hystart_ack(&mut c, i, i == 9, 40);
        }
        let w = c.window();
        for i in 0..12 {
            hystart_ack(&mut c, 100 + i, false, 60);
        }
        assert_eq!(c.window(), w + 8 * SMSS + 4 * SMSS / 4);
        // §4.3: a loss ends HyStart++; the next slow start is RFC 5681's, no CSS.
        c.on_fast_retransmit(100 * SMSS, t());
        c.on_recovery_end(100 * SMSS);
        c.cwnd = SMSS;
        for i in 0..12 {
            hystart_ack(&mut c, 200 + i, false, 100);
        }
        assert_eq!(c.window(), 13 * SMSS);
    }

    #[test]
    fn rfc5681_rto_sets_loss_window_and_ssthresh_at_least_two_segments() {
        let mut c = NewReno::new(SMSS, false);
        c.on_rto(SMSS, t());
        assert_eq!(c.window(), SMSS);
        assert_eq!(c.ssthresh(), 2 * SMSS);
    }
}

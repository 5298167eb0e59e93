//! The retransmission timeout of one connection (RFC 6298): SRTT / RTTVAR from RTT samples,
//! the RTO derived from them and backed off on a timeout, and the one segment timed when
//! timestamps do not give a sample on every ACK (Karn's algorithm, RFC 6298 §3).
//!
//! Kept apart from the connection as smoltcp keeps its `RttEstimator`: the state machine
//! decides *when* a sample exists (TSecr, RFC 7323 §4.1, or the timed segment), this type
//! only turns samples into a timeout. Plain `Copy` data, no allocation.

use crate::time::{Duration, Instant};
use crate::wire::SeqNumber;

use super::config::TcpConfig;

/// RFC 6298 clock granularity G.
const CLOCK_G: Duration = Duration::from_millis(1);

#[derive(Debug, Clone, Copy)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
    /// The segment being timed: its sequence number and when it was first sent.
    timed: Option<(SeqNumber, Instant)>,
}

impl RttEstimator {
    /// No sample yet: the RTO starts at `initial_rto` (RFC 6298 §2.1).
    pub fn new(initial_rto: Duration) -> Self {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            rto: initial_rto,
            timed: None,
        }
    }

    /// The smoothed RTT, once there has been a sample.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The current retransmission timeout.
    pub fn rto(&self) -> Duration {
        self.rto
    }

    /// Starts timing the segment at `seq` sent at `now`, unless one is being timed already.
    pub fn start_timing(&mut self, seq: SeqNumber, now: Instant) {
        if self.timed.is_none() {
            self.timed = Some((seq, now));
        }
    }

    /// Karn: nothing is timed across a retransmission (or a loss event).
    pub fn stop_timing(&mut self) {
        self.timed = None;
    }

    /// The sample the timed segment gives if `ack` covers it (and it is no longer timed
    /// then); `None` otherwise.
    #[must_use]
    pub fn take_timed_sample(&mut self, ack: SeqNumber, now: Instant) -> Option<Duration> {
        let sample = match self.timed {
            Some((seq, sent)) if ack.diff(seq) > 0 => Some(now.saturating_duration_since(sent)),
            _ => None,
        };
        if self.timed.is_some_and(|(seq, _)| ack.diff(seq) > 0) {
            self.timed = None;
        }
        sample
    }

    /// RFC 6298 §2.2/2.3: folds sample `r` into SRTT and RTTVAR and recomputes the RTO.
    pub fn sample(&mut self, r: Duration, cfg: &TcpConfig) {
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(r);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + r) / 8);
            }
        }
        self.rto = self.rto_from_estimate(cfg);
    }

    /// New data was acknowledged without a sample: the RTO is recomputed from the estimate,
    /// which drops any backoff.
    pub fn refresh(&mut self, cfg: &TcpConfig) {
        self.rto = self.rto_from_estimate(cfg);
    }

    /// RFC 6298 §5.5: back off the timer (doubled, at most `max_rto`).
    pub fn back_off(&mut self, max_rto: Duration) {
        self.rto = self.rto.saturating_mul(2).min(max_rto);
    }

    fn rto_from_estimate(&self, cfg: &TcpConfig) -> Duration {
        match self.srtt {
            Some(srtt) => srtt
                .saturating_add(self.rttvar.saturating_mul(4).max(CLOCK_G))
                .max(cfg.min_rto)
                .min(cfg.max_rto),
            None => cfg.initial_rto.max(cfg.min_rto).min(cfg.max_rto),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> TcpConfig {
        TcpConfig {
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(60),
            ..TcpConfig::default()
        }
    }

    #[test]
    fn rfc6298_first_sample_sets_srtt_and_half_rttvar() {
        let cfg = cfg();
        let mut e = RttEstimator::new(cfg.initial_rto);
        assert_eq!(e.rto(), Duration::from_secs(1));
        e.sample(Duration::from_millis(100), &cfg);
        // RTO = SRTT + 4 * RTTVAR = 100 + 4 * 50 ms.
        assert_eq!(e.rto(), Duration::from_millis(300));
    }

    #[test]
    fn rfc6298_later_samples_smooth_with_alpha_and_beta() {
        let cfg = cfg();
        let mut e = RttEstimator::new(cfg.initial_rto);
        e.sample(Duration::from_millis(100), &cfg);
        e.sample(Duration::from_millis(200), &cfg);
        // RTTVAR = 3/4 * 50 + 1/4 * 100 = 62.5; SRTT = 7/8 * 100 + 1/8 * 200 = 112.5.
        assert_eq!(e.rto(), Duration::from_micros(112_500 + 4 * 62_500));
    }

    #[test]
    fn rfc6298_rto_is_clamped_to_min_and_max() {
        let cfg = cfg();
        let mut e = RttEstimator::new(cfg.initial_rto);
        e.sample(Duration::from_millis(1), &cfg);
        assert_eq!(e.rto(), cfg.min_rto);
        e.sample(Duration::from_secs(100), &cfg);
        assert_eq!(e.rto(), cfg.max_rto);
    }

    #[test]
    fn rfc6298_backoff_doubles_up_to_max_and_refresh_undoes_it() {
        let cfg = cfg();
        let mut e = RttEstimator::new(cfg.initial_rto);
        e.sample(Duration::from_millis(100), &cfg);
        e.back_off(cfg.max_rto);
        assert_eq!(e.rto(), Duration::from_millis(600));
        for _ in 0..20 {
            e.back_off(cfg.max_rto);
        }
        assert_eq!(e.rto(), cfg.max_rto);
        e.refresh(&cfg);
        assert_eq!(e.rto(), Duration::from_millis(300));
    }

    #[test]
    fn karn_timed_segment_gives_one_sample_only_when_acked() {
        let t0 = Instant::from_millis(1_000);
        let mut e = RttEstimator::new(Duration::from_secs(1));
        e.start_timing(SeqNumber(100), t0);
        // A second segment does not replace the one being timed.
        e.start_timing(SeqNumber(200), t0 + Duration::from_millis(5));
        let later = t0 + Duration::from_millis(40);
        assert_eq!(e.take_timed_sample(SeqNumber(100), later), None);
        assert!(e.timed.is_some());
        assert_eq!(
            e.take_timed_sample(SeqNumber(101), later),
            Some(Duration::from_millis(40))
        );
        assert!(e.timed.is_none());
        e.start_timing(SeqNumber(300), later);
        e.stop_timing();
        assert_eq!(e.take_timed_sample(SeqNumber(400), later), None);
    }
}

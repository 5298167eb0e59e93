//! CUBIC (RFC 9438): after a reduction the window follows W_cubic(t) = C*(t-K)^3 + W_max, a
//! function of the time since congestion avoidance resumed rather than of the RTT, so a
//! long-fat path regains its window in seconds where NewReno's one segment per RTT takes
//! minutes. Reductions are by beta_cubic = 0.7 instead of a half.
//!
//! What the connection's events mean here:
//! - `on_ack` outside recovery: slow start below ssthresh (§4.10) -- HyStart++ (RFC 9406,
//!   `hystart.rs`) in the first one unless configured off, RFC 5681's otherwise -- else the
//!   cubic growth towards W_cubic(t + RTT) (§4.2), or the Reno-friendly window W_est when that
//!   is larger (§4.3); neither while the flight the ACK reports shows that the application or
//!   the peer's window, not cwnd, limits the sender, and such periods are not part of t
//!   (§5.8).
//! - `on_fast_retransmit`: the multiplicative decrease (§4.6) with fast convergence (§4.7);
//!   the fast-recovery arithmetic around it (inflation by the duplicate ACKs, deflation on
//!   partial and full ACKs) is RFC 6582's, shared with NewReno.
//! - `on_rto`: RFC 5681's loss window with ssthresh set by beta_cubic, and the next
//!   congestion avoidance starts with K = 0 and W_max = the window it starts with (§4.8).
//!
//! Not implemented: §4.9 spurious congestion events. Undoing a reduction needs to know that
//! a retransmission was spurious (Eifel timestamps, F-RTO or D-SACK), and the connection does
//! not detect that yet, so the interface carries no such event.
//!
//! When HyStart++ ends the first slow start without a loss (after its Conservative Slow
//! Start), §4.10's special case applies: ssthresh = cwnd_prior = cwnd, and the first
//! congestion avoidance starts with K = 0 and W_max = cwnd, on the convex side, as after a
//! timeout -- there is no reduction, and no W_max from a loss.
//!
//! Arithmetic is integer. Windows are bytes (RFC 9438 counts segments; a window of `w`
//! segments is `w * SMSS` bytes, so W_cubic in bytes is C*SMSS*(t-K)^3 + W_max). Time is
//! microseconds, so the cube needs `u128`; K is an integer cube root. Sub-byte growth is
//! carried over in fractions of 1/1024 byte so that small increments on each ACK add up.

use super::hystart::{AckSample, HyStart, HyStartEvent, SlowStartStep};
use super::{partial_ack_window, recovery_end_window, rescale, CongestionControl};
use crate::time::Instant;

/// RFC 9438 §5.1 C = 0.4 (segments per second cubed), as a fraction.
const C_NUM: u128 = 2;
const C_DEN: u128 = 5;
/// RFC 9438 §5.1 beta_cubic = 0.7, as a fraction.
const BETA_NUM: u64 = 7;
const BETA_DEN: u64 = 10;
/// RFC 9438 §4.3 alpha_cubic = 3 * (1 - beta_cubic) / (1 + beta_cubic) = 0.9 / 1.7 = 9/17.
const ALPHA_NUM: u64 = 3 * (BETA_DEN - BETA_NUM);
const ALPHA_DEN: u64 = BETA_DEN + BETA_NUM;
/// Fractional bits kept of W_est and of the cubic growth.
const FRAC_BITS: u32 = 10;
const MICROS_PER_SEC: u128 = 1_000_000;
/// |t - K| is capped here (about 71 minutes) so the cube cannot overflow; W_cubic saturates
/// at `u32::MAX` bytes long before that.
const MAX_DT_MICROS: u128 = 1 << 32;

#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct Cubic {
    /// First, as in every controller: see `Congestion`.
    cwnd: u32,
    ssthresh: u32,
    smss: u32,
    /// W_max: the window just before the last reduction (after fast convergence, §4.7).
    w_max: u32,
    /// cwnd_prior: the window when ssthresh was last set (§4.6), where alpha_cubic becomes 1.
    cwnd_prior: u32,
    /// The last reduction was a timeout: the next stage starts with K = 0 (§4.8).
    after_rto: bool,
    /// A congestion avoidance stage has begun: `epoch` is its. (A flag beside the fields
    /// rather than an `Option`, which would not fit the padding.)
    in_stage: bool,
    epoch: Epoch,
    /// RFC 9406 in the first slow start.
    hystart: HyStart,
}

/// One congestion avoidance stage: what §4.2 and §4.3 measure from its start.
#[derive(Debug, Clone, Copy, Default)]
struct Epoch {
    /// t in microseconds: the stage's time so far, counting only time in which the window
    /// limited the sender (§5.8).
    t_micros: u64,
    /// The last ACK of the stage, from which the next one measures.
    last_ack: Instant,
    /// K, the time W_cubic takes to reach W_max again, in microseconds (saturating at about
    /// 71 minutes, far beyond any window a u32 can hold: 2^32 bytes of 64-byte segments give
    /// K = 9 minutes).
    k_micros: u32,
    /// W_est (§4.3) in bytes << FRAC_BITS.
    w_est: u64,
    /// Growth towards the cubic target not yet added to cwnd, in 1/1024 byte (below one byte).
    carry: u32,
}

impl Cubic {
    /// A fresh controller; its first slow start uses HyStart++ if `hystart`.
    pub fn new(smss: u32, hystart: bool) -> Self {
        let cwnd = super::initial_window(smss);
        Cubic {
            cwnd,
            ssthresh: u32::MAX,
            smss,
            w_max: cwnd,
            cwnd_prior: cwnd,
            after_rto: false,
            in_stage: false,
            epoch: Epoch::default(),
            hystart: HyStart::new(hystart),
        }
    }

    /// RFC 9438 §4.2 Figure 1 in bytes: W_cubic(t) = C*SMSS*(t-K)^3 + W_max, `t` and `k` in
    /// microseconds, saturating at `u32::MAX`.
    fn w_cubic(&self, t_micros: u64, k_micros: u64) -> u32 {
        let (t, k) = (u128::from(t_micros), u128::from(k_micros));
        let dt = t.abs_diff(k).min(MAX_DT_MICROS);
        let per_sec3 = MICROS_PER_SEC * MICROS_PER_SEC * MICROS_PER_SEC;
        let delta = C_NUM * u128::from(self.smss) * dt * dt * dt / (C_DEN * per_sec3);
        let w_max = u128::from(self.w_max);
        let w = if t >= k {
            w_max.saturating_add(delta)
        } else {
            w_max.saturating_sub(delta)
        };
        u32::try_from(w).unwrap_or(u32::MAX)
    }

    /// RFC 9438 §4.2 Figure 2: K = cbrt((W_max - cwnd_epoch) / C) seconds, with the windows in
    /// segments; in microseconds, cbrt((W_max - cwnd_epoch) / (C * SMSS) * 10^18).
    fn k_micros(&self, cwnd_epoch: u32) -> u64 {
        let gap = u128::from(self.w_max.saturating_sub(cwnd_epoch));
        let per_sec3 = MICROS_PER_SEC * MICROS_PER_SEC * MICROS_PER_SEC;
        let cube = gap * C_DEN * per_sec3 / (C_NUM * u128::from(self.smss.max(1)));
        integer_cbrt(cube)
    }

    /// Congestion avoidance resumes at `now` with the current window as cwnd_epoch.
    fn begin_epoch(&mut self, now: Instant) -> Epoch {
        let cwnd_epoch = self.cwnd;
        // §4.8: the first stage after a timeout starts with K = 0 and W_max = cwnd_epoch. A
        // window that already exceeds W_max (slow start overshot it) starts on the convex
        // side the same way rather than jumping back down to W_max.
        if self.after_rto || cwnd_epoch >= self.w_max {
            self.w_max = cwnd_epoch;
        }
        self.after_rto = false;
        let epoch = Epoch {
            t_micros: 0,
            last_ack: now,
            k_micros: u32::try_from(self.k_micros(cwnd_epoch)).unwrap_or(u32::MAX),
            // §4.3: W_est starts at cwnd_epoch.
            w_est: u64::from(cwnd_epoch) << FRAC_BITS,
            carry: 0,
        };
        self.epoch = epoch;
        self.in_stage = true;
        epoch
    }

    /// RFC 9438 §4.6 Figure 5 with §4.7 Figure 6: the reduction on a congestion event.
    fn reduce(&mut self, flight: u32) {
        // §4.7 fast convergence: a window that stopped short of the previous W_max means
        // another flow is taking bandwidth; release some by remembering a lower W_max.
        self.w_max = if self.cwnd < self.w_max {
            (u64::from(self.cwnd) * (BETA_DEN + BETA_NUM) / (2 * BETA_DEN)) as u32
        } else {
            self.cwnd
        };
        self.cwnd_prior = self.cwnd;
        // §4.6: ssthresh = flight_size * beta_cubic, at least 2 segments.
        let reduced = (u64::from(flight) * BETA_NUM / BETA_DEN) as u32;
        self.ssthresh = reduced.max(2 * self.smss);
        self.in_stage = false;
        // RFC 9406 §4.2/§4.3: a loss ends HyStart++ for good.
        self.hystart.on_congestion();
    }

    /// Growth in congestion avoidance (§4.2-§4.3), for an ACK that found the window in use
    /// (`using_window`) or not.
    fn avoid_congestion(&mut self, s: &AckSample, using_window: bool) {
        let (acked, srtt, now) = (s.acked, s.srtt, s.now);
        let mut epoch = if self.in_stage {
            self.epoch
        } else if using_window {
            self.begin_epoch(now)
        } else {
            return;
        };
        // §5.8: t MUST NOT include application-limited or idle periods. Time between ACKs
        // counts only when this ACK found the window in use, and at most one SRTT of it: a
        // longer gap between ACKs had nothing in flight for the rest (a window-limited
        // sender hears at least one ACK per round trip).
        let since = now.saturating_duration_since(epoch.last_ack);
        epoch.last_ack = now;
        if !using_window {
            self.epoch = epoch;
            return;
        }
        let counted = since.min(srtt.unwrap_or(since));
        epoch.t_micros = epoch
            .t_micros
            .saturating_add(u64::try_from(counted.as_micros()).unwrap_or(u64::MAX));

        let cwnd = u64::from(self.cwnd.max(1));
        let acked = u64::from(acked);
        let smss = u64::from(self.smss);

        // §4.3: W_est grows by alpha_cubic segments per window of ACKed data, alpha_cubic
        // becoming 1 once W_est reaches cwnd_prior.
        let (num, den) = if epoch.w_est >> FRAC_BITS >= u64::from(self.cwnd_prior) {
            (1, 1)
        } else {
            (ALPHA_NUM, ALPHA_DEN)
        };
        let w_est_inc = ((num * acked * smss) << FRAC_BITS) / (den * cwnd);
        epoch.w_est = epoch.w_est.saturating_add(w_est_inc);
        let w_est = u32::try_from(epoch.w_est >> FRAC_BITS).unwrap_or(u32::MAX);

        if self.w_cubic(epoch.t_micros, u64::from(epoch.k_micros)) < w_est {
            // §4.3 Reno-friendly region: cwnd follows W_est. (Never downwards: an ACK does not
            // shrink the window.)
            self.cwnd = self.cwnd.max(w_est);
        } else {
            // §4.2: the target is W_cubic one RTT ahead, kept within [cwnd, 1.5 * cwnd], and
            // cwnd moves (target - cwnd) / cwnd segments per segment ACKed, so it reaches
            // the target in about one RTT.
            let rtt = srtt.map_or(0, |r| u64::try_from(r.as_micros()).unwrap_or(u64::MAX));
            let ahead_micros = epoch.t_micros.saturating_add(rtt);
            let w = u64::from(self.w_cubic(ahead_micros, u64::from(epoch.k_micros)));
            let target = w.clamp(cwnd, cwnd + cwnd / 2);
            // A cumulative ACK of more than a window moves cwnd to the target, not past it.
            let gap = u128::from(target - cwnd);
            let grow = ((gap * u128::from(acked)) << FRAC_BITS) / u128::from(cwnd)
                + u128::from(epoch.carry);
            epoch.carry = (grow & ((1 << FRAC_BITS) - 1)) as u32;
            let bytes = (grow >> FRAC_BITS).min(gap);
            self.cwnd = self.cwnd.saturating_add(bytes as u32);
        }
        self.epoch = epoch;
    }
}

impl CongestionControl for Cubic {
    fn window(&self) -> u32 {
        self.cwnd
    }

    fn ssthresh(&self) -> u32 {
        self.ssthresh
    }

    fn on_ack(&mut self, s: &AckSample) -> Option<HyStartEvent> {
        // §5.8: no growth while the application (or the peer's window), not cwnd, limits what
        // is in flight -- else a window nothing has tested grows without bound (and becomes
        // the next W_max). `flight` is the round's peak (`FlightPeak`). In congestion
        // avoidance, within two segments of cwnd counts as using it (segments carry less than
        // SMSS once options are in, and the ACK may have found one in the making). In slow
        // start the window doubles within a round, so a peak above half of it is the window
        // in use (Linux's `tcp_is_cwnd_limited`; RFC 7661 calls such a window validated).
        let (flight, cwnd) = (u64::from(s.flight), u64::from(self.cwnd));
        let using_window = if self.cwnd < self.ssthresh {
            cwnd < 2 * flight
        } else {
            flight + 2 * u64::from(self.smss) >= cwnd
        };
        let mut event = None;
        if self.cwnd < self.ssthresh {
            // §4.10: below ssthresh, slow start: HyStart++'s growth (and its exit), or RFC
            // 5681's (appropriate byte counting, L = 1 SMSS).
            let step;
            (step, event) = self.hystart.on_ack(s, self.smss, self.cwnd);
            match step {
                SlowStartStep::Grow(bytes) => {
                    if using_window {
                        self.cwnd = self.cwnd.saturating_add(bytes);
                    }
                    return event;
                }
                SlowStartStep::EnterCongestionAvoidance => {
                    // §4.10 with HyStart++: W_max undefined, so cwnd_prior = cwnd, and the
                    // stage that `avoid_congestion` begins below has K = 0 and W_max = cwnd
                    // (`begin_epoch`: no loss yet, so W_max is still the initial window,
                    // below cwnd).
                    self.ssthresh = self.cwnd;
                    self.cwnd_prior = self.cwnd;
                }
            }
        }
        self.avoid_congestion(s, using_window);
        event
    }

    fn on_fast_retransmit(&mut self, flight: u32, _now: Instant) {
        self.reduce(flight);
        // RFC 5681 §3.2 step 3 / RFC 6582 §3.2 step 2: inflate by the three segments the
        // duplicate ACKs say have left the network.
        self.cwnd = self.ssthresh.saturating_add(3 * self.smss);
    }

    fn on_sack_recovery(&mut self) {
        self.cwnd = self.ssthresh;
    }

    fn on_dup_ack_in_recovery(&mut self) {
        // RFC 5681 §3.2 step 4.
        self.cwnd = self.cwnd.saturating_add(self.smss);
    }

    fn on_partial_ack(&mut self, acked: u32) {
        self.cwnd = partial_ack_window(self.cwnd, acked, self.smss);
    }

    fn on_recovery_end(&mut self, flight: u32) {
        self.cwnd = recovery_end_window(self.ssthresh, flight, self.smss);
    }

    fn on_rto(&mut self, flight: u32, _now: Instant) {
        // §4.8: ssthresh by beta_cubic (§4.6), the window to RFC 5681's loss window.
        self.reduce(flight);
        self.cwnd = self.smss;
        self.after_rto = true;
    }

    fn on_ecn_echo(&mut self, flight: u32, _now: Instant) {
        // §4.6: an ECN-Echo is a congestion event like a loss (W_max, K and ssthresh as
        // there), and with nothing lost the window is ssthresh at once.
        self.reduce(flight);
        self.cwnd = self.ssthresh;
    }

    fn on_mss_change(&mut self, smss: u32) {
        // Every window of the curve in segments stays what it was: W_max - cwnd_epoch over
        // C * SMSS keeps K, and W_est keeps its place against cwnd and cwnd_prior.
        let old = self.smss;
        self.cwnd = rescale(self.cwnd, old, smss);
        self.ssthresh = rescale(self.ssthresh, old, smss);
        self.w_max = rescale(self.w_max, old, smss);
        self.cwnd_prior = rescale(self.cwnd_prior, old, smss);
        self.epoch.w_est =
            u64::try_from(u128::from(self.epoch.w_est) * u128::from(smss) / u128::from(old.max(1)))
                .unwrap_or(u64::MAX);
        self.epoch.carry = 0;
        self.smss = smss;
    }
}

/// The largest `r` with `r^3 <= n`.
fn integer_cbrt(n: u128) -> u64 {
    // n < 2^128 has a cube root below 2^43; a cube that overflows is above n.
    let (mut lo, mut hi) = (0u64, 1u64 << 43);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        let m = u128::from(mid);
        let cube = m.checked_mul(m).and_then(|sq| sq.checked_mul(m));
        if cube.is_some_and(|c| c <= n) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    const SMSS: u32 = 1000;
    /// RFC 9438 §5.1 constants, as the tests compute expected values from them.
    const C: f64 = 0.4;
    const BETA: f64 = 0.7;

    fn at(ms: u64) -> Instant {
        Instant::from_secs(10) + Duration::from_millis(ms)
    }

    /// A connection that lost a segment with `w_max_segs` in flight and has just ended fast
    /// recovery: congestion avoidance starts on the next ACK.
    fn after_loss(w_max_segs: u32) -> Cubic {
        let mut c = Cubic::new(SMSS, false);
        c.cwnd = w_max_segs * SMSS;
        c.w_max = c.cwnd;
        c.on_fast_retransmit(w_max_segs * SMSS, at(0));
        c.on_recovery_end(w_max_segs * SMSS);
        c
    }

    #[test]
    fn integer_cube_root_is_exact_and_rounds_down() {
        assert_eq!(integer_cbrt(0), 0);
        assert_eq!(integer_cbrt(26), 2);
        assert_eq!(integer_cbrt(27), 3);
        assert_eq!(integer_cbrt(1_000_000_000_000_000_000), 1_000_000);
        assert_eq!(integer_cbrt(u128::MAX), 6_981_463_658_331);
    }

    #[test]
    fn rfc9438_4_6_multiplicative_decrease_by_beta() {
        let mut c = Cubic::new(SMSS, false);
        c.cwnd = 100 * SMSS;
        c.on_fast_retransmit(100 * SMSS, at(0));
        let expected = (100.0 * BETA * f64::from(SMSS)) as u32;
        assert_eq!(c.ssthresh(), expected, "ssthresh = flight_size * 0.7");
        assert_eq!(c.window(), expected + 3 * SMSS, "plus the three dup ACKs");
        c.on_recovery_end(100 * SMSS);
        assert_eq!(c.window(), expected);
        // At least two segments.
        let mut c = Cubic::new(SMSS, false);
        c.on_fast_retransmit(2 * SMSS, at(0));
        assert_eq!(c.ssthresh(), 2 * SMSS);
    }

    #[test]
    fn rfc9438_4_2_k_is_the_cube_root_of_the_reduction_over_c() {
        let c = after_loss(100);
        // W_max 100 segments, cwnd_epoch 70: K = cbrt(30 / 0.4) s = 4.217 s.
        let k = ((100.0 - 100.0 * BETA) / C).cbrt();
        let k_micros = c.k_micros(c.cwnd) as f64;
        assert!((k_micros / 1e6 - k).abs() < 1e-5, "{k_micros} vs {k}");
        // A wrong beta (0.5) or C (0.3) moves K well beyond the tolerance.
        assert!((((100.0 - 50.0) / C).cbrt() - k).abs() > 0.5);
        assert!((((100.0 - 70.0) / 0.3f64).cbrt() - k).abs() > 0.3);
    }

    /// RFC 9438 §4.2-§4.3 per ACK in floating point, segments and seconds: the reference the
    /// integer implementation is held to.
    struct RfcModel {
        cwnd: f64,
        w_max: f64,
        k: f64,
        w_est: f64,
        cwnd_prior: f64,
    }

    impl RfcModel {
        /// Congestion avoidance after a loss at `w_max` segments (cwnd_prior), starting at
        /// cwnd_epoch = beta * w_max.
        fn after_loss(w_max: f64) -> Self {
            let cwnd_epoch = BETA * w_max;
            RfcModel {
                cwnd: cwnd_epoch,
                w_max,
                // Figure 2.
                k: ((w_max - cwnd_epoch) / C).cbrt(),
                // §4.3: W_est starts at cwnd_epoch.
                w_est: cwnd_epoch,
                cwnd_prior: w_max,
            }
        }

        /// Figure 1.
        fn w_cubic(&self, t: f64) -> f64 {
            C * (t - self.k).powi(3) + self.w_max
        }

        /// One ACK of one segment at `t` seconds into the stage.
        fn ack(&mut self, t: f64, rtt: f64) {
            let alpha = if self.w_est >= self.cwnd_prior {
                1.0
            } else {
                3.0 * (1.0 - BETA) / (1.0 + BETA)
            };
            // Figure 4.
            self.w_est += alpha / self.cwnd;
            if self.w_cubic(t) < self.w_est {
                self.cwnd = self.cwnd.max(self.w_est);
            } else {
                // Figure 3, then (target - cwnd) / cwnd per ACK.
                let target = self.w_cubic(t + rtt).clamp(self.cwnd, 1.5 * self.cwnd);
                self.cwnd += (target - self.cwnd) / self.cwnd;
            }
        }
    }

    /// Runs the implementation and the model side by side, one window of one-segment ACKs
    /// per `rtt`, for `rounds`; returns both windows (segments) after each round.
    fn side_by_side(w_max: u32, rtt: Duration, rounds: u64) -> Vec<(f64, f64)> {
        let mut c = after_loss(w_max);
        let mut m = RfcModel::after_loss(f64::from(w_max));
        let mut out = Vec::new();
        for round in 0..rounds {
            let t = rtt.saturating_mul(round as u32);
            for _ in 0..c.window() / SMSS {
                c.on_ack(&AckSample::plain(SMSS, c.window(), Some(rtt), at(0) + t));
                m.ack(t.as_secs_f64(), rtt.as_secs_f64());
            }
            out.push((f64::from(c.window()) / f64::from(SMSS), m.cwnd));
        }
        out
    }

    #[test]
    fn rfc9438_4_2_window_grows_as_cubic_of_time_since_reduction() {
        // 100 ms RTT, 100 segments lost at: K = 4.2 s, so 8 s covers the concave and the
        // convex region.
        let rounds = side_by_side(100, Duration::from_millis(100), 80);
        for (i, (got, want)) in rounds.iter().enumerate() {
            assert!(
                (got - want).abs() <= 0.005 * want + 0.01,
                "round {i}: cwnd {got} segments, RFC 9438 gives {want}"
            );
        }
        let (at_k, _) = rounds[42];
        assert!((at_k - 100.0).abs() < 1.5, "about W_max at K: {at_k}");
        let (end, _) = rounds[79];
        assert!(end > 100.0 + C * 3.0f64.powi(3), "convex past K: {end}");
        // Concave: the growth per round shrinks towards K.
        let g = |i: usize| rounds[i + 1].0 - rounds[i].0;
        assert!(
            g(5) > g(20) && g(20) > g(38),
            "{} {} {}",
            g(5),
            g(20),
            g(38)
        );
    }

    #[test]
    fn rfc9438_4_3_reno_friendly_region() {
        // A 1 ms RTT makes W_cubic grow slower than Reno: the window follows W_est, which
        // rises alpha_cubic = 3 * (1 - 0.7) / (1 + 0.7) segments per window ACKed.
        let rounds = side_by_side(100, Duration::from_millis(1), 20);
        for (i, (got, want)) in rounds.iter().enumerate() {
            assert!(
                (got - want).abs() <= 0.005 * want,
                "round {i}: cwnd {got} segments, RFC 9438 gives {want}"
            );
        }
        let alpha = 3.0 * (1.0 - BETA) / (1.0 + BETA);
        let (end, _) = rounds[19];
        assert!((end - (70.0 + 20.0 * alpha)).abs() < 0.3, "{end}");
        assert!(
            end < 70.0 + 20.0 * 0.9,
            "alpha is not 1 below cwnd_prior: {end}"
        );
    }

    #[test]
    fn rfc9438_4_3_alpha_becomes_one_at_cwnd_prior() {
        let mut c = after_loss(10);
        c.cwnd_prior = 7 * SMSS;
        // W_est starts at cwnd_epoch = 7 segments = cwnd_prior: Reno's one segment per window.
        let start = c.window();
        let mut acked = 0;
        while acked < start {
            c.on_ack(&AckSample::plain(
                SMSS,
                c.window(),
                Some(Duration::from_micros(100)),
                at(0),
            ));
            acked += SMSS;
        }
        let got = c.window();
        assert!(
            (7 * SMSS + 900..=8 * SMSS).contains(&got),
            "one segment per window: {got}"
        );
    }

    #[test]
    fn rfc9438_4_7_fast_convergence_lowers_wmax() {
        let mut c = Cubic::new(SMSS, false);
        c.cwnd = 100 * SMSS;
        c.w_max = 100 * SMSS;
        c.on_fast_retransmit(100 * SMSS, at(0));
        assert_eq!(c.w_max, 100 * SMSS, "cwnd reached W_max: W_max = cwnd");
        c.on_recovery_end(100 * SMSS);
        // The next loss comes at 80 segments, short of W_max: W_max = cwnd * (1 + beta) / 2.
        c.cwnd = 80 * SMSS;
        c.on_fast_retransmit(80 * SMSS, at(1000));
        assert_eq!(
            c.w_max,
            (80.0 * (1.0 + BETA) / 2.0 * f64::from(SMSS)) as u32
        );
        assert_eq!(c.w_max, 68 * SMSS);
    }

    #[test]
    fn rfc9438_4_8_timeout_sets_loss_window_and_k_zero() {
        let mut c = Cubic::new(SMSS, false);
        c.cwnd = 100 * SMSS;
        c.w_max = 100 * SMSS;
        c.on_rto(100 * SMSS, at(0));
        assert_eq!(c.window(), SMSS, "RFC 5681 loss window");
        assert_eq!(c.ssthresh(), 70 * SMSS, "ssthresh by beta_cubic");
        // Slow start back to ssthresh.
        while c.window() < c.ssthresh() {
            c.on_ack(&AckSample::plain(
                SMSS,
                c.window(),
                Some(Duration::from_millis(50)),
                at(10),
            ));
        }
        assert_eq!(c.window(), 70 * SMSS);
        // The first congestion avoidance: K = 0, W_max = cwnd_epoch = 70 segments, so the
        // window is convex from the start: W_cubic(t) = 70 + C t^3.
        c.on_ack(&AckSample::plain(
            SMSS,
            c.window(),
            Some(Duration::ZERO),
            at(20),
        ));
        assert!(c.in_stage, "congestion avoidance began");
        let e = c.epoch;
        assert_eq!(e.k_micros, 0);
        assert_eq!(c.w_max, 70 * SMSS);
        let w2 = f64::from(c.w_cubic(2_000_000, u64::from(e.k_micros)));
        assert!(
            (w2 - (70.0 + C * 8.0) * f64::from(SMSS)).abs() <= 1.0,
            "{w2}"
        );
        assert!(!c.after_rto);
    }

    #[test]
    fn rfc1191_a_lower_mss_keeps_the_cubic_curve_in_segments() {
        // Congestion avoidance after a loss at 100 segments; then the path MTU halves the
        // segment. The same ACKs, each of one (smaller) segment, must follow the same curve
        // in segments: W_max, cwnd_prior, W_est and K keep their places.
        let rtt = Some(Duration::from_millis(50));
        let mut big = after_loss(100);
        big.on_ack(&AckSample::plain(SMSS, big.window(), rtt, at(10)));
        assert!(big.in_stage);
        let mut small = big;
        small.on_mss_change(SMSS / 2);
        assert_eq!(small.window(), big.window() / 2);
        assert_eq!(small.ssthresh(), big.ssthresh() / 2);
        assert_eq!(
            (small.w_max, small.cwnd_prior),
            (big.w_max / 2, big.cwnd_prior / 2)
        );
        let k = |c: &Cubic| c.k_micros(c.cwnd) as f64;
        assert!((k(&small) - k(&big)).abs() / k(&big) < 1e-3);
        for i in 1..=400u64 {
            let t = at(10 + i * 25);
            big.on_ack(&AckSample::plain(SMSS, big.window(), rtt, t));
            small.on_ack(&AckSample::plain(SMSS / 2, small.window(), rtt, t));
        }
        let segs = |c: &Cubic| f64::from(c.window()) / f64::from(c.smss);
        assert!(segs(&big) > 95.0, "the curve went back towards W_max");
        assert!(
            (segs(&big) - segs(&small)).abs() / segs(&big) < 0.01,
            "{} vs {} segments",
            segs(&big),
            segs(&small)
        );
    }

    #[test]
    fn rfc9438_4_10_slow_start_below_ssthresh() {
        let mut c = Cubic::new(SMSS, false);
        assert_eq!(c.window(), 10 * SMSS, "RFC 6928 initial window");
        c.on_ack(&AckSample::plain(500, c.window(), None, at(0)));
        assert_eq!(c.window(), 10 * SMSS + 500);
        c.on_ack(&AckSample::plain(5 * SMSS, c.window(), None, at(0)));
        assert_eq!(c.window(), 11 * SMSS + 500, "at most one SMSS per ACK");
        assert!(!c.in_stage, "no congestion avoidance before ssthresh");
    }

    #[test]
    fn rfc9438_5_8_no_growth_while_the_application_limits_the_flight() {
        // Slow start: half the window in flight.
        let mut c = Cubic::new(SMSS, false);
        c.on_ack(&AckSample::plain(SMSS, 5 * SMSS, None, at(0)));
        assert_eq!(c.window(), 10 * SMSS);
        c.on_ack(&AckSample::plain(SMSS, 8 * SMSS, None, at(0)));
        assert_eq!(c.window(), 11 * SMSS, "within two segments of cwnd: in use");
        // Congestion avoidance: no W_est growth, no cubic growth, and no stage begins.
        let mut c = after_loss(100);
        let srtt = Some(Duration::from_millis(100));
        for ms in (0..5000).step_by(100) {
            c.on_ack(&AckSample::plain(SMSS, 10 * SMSS, srtt, at(ms)));
        }
        assert_eq!(c.window(), 70 * SMSS);
        assert!(!c.in_stage);
    }

    #[test]
    fn rfc9438_5_8_idle_time_is_not_part_of_t() {
        // Stages ACKed alike, one round per 100 ms, except that after round 10 the second
        // sender falls silent for 30 s (nothing in flight, no ACKs) and then, in one variant,
        // has less than a window to send for 20 rounds.
        let srtt = Duration::from_millis(100);
        for app_limited_rounds in [0, 20] {
            let mut busy = after_loss(100);
            let mut idle = after_loss(100);
            let mut idle_now = at(0);
            for round in 0..30u64 {
                let now = at(0) + srtt.saturating_mul(round as u32);
                for _ in 0..busy.window() / SMSS {
                    busy.on_ack(&AckSample::plain(SMSS, busy.window(), Some(srtt), now));
                }
                if round == 10 {
                    idle_now += Duration::from_secs(30);
                    for _ in 0..app_limited_rounds {
                        idle_now += srtt;
                        idle.on_ack(&AckSample::plain(SMSS, 5 * SMSS, Some(srtt), idle_now));
                    }
                }
                for _ in 0..idle.window() / SMSS {
                    idle.on_ack(&AckSample::plain(SMSS, idle.window(), Some(srtt), idle_now));
                }
                idle_now += srtt;
            }
            // Counting the 30 s would have put t far past K (4.2 s): 1.5x per round from
            // there.
            let (b, i) = (busy.window(), idle.window());
            assert!(
                b.abs_diff(i) <= SMSS,
                "{app_limited_rounds} app-limited rounds: busy {b}, idle {i}"
            );
            assert!(i < 100 * SMSS, "still below W_max: {i}");
        }
    }

    #[test]
    fn rfc6582_recovery_arithmetic_is_newrenos() {
        let mut c = Cubic::new(SMSS, false);
        c.cwnd = 10 * SMSS;
        c.on_fast_retransmit(10 * SMSS, at(0));
        assert_eq!(c.window(), 10 * SMSS, "7 + 3");
        c.on_dup_ack_in_recovery();
        assert_eq!(c.window(), 11 * SMSS);
        c.on_partial_ack(2 * SMSS);
        assert_eq!(c.window(), 10 * SMSS);
        c.on_recovery_end(3 * SMSS);
        assert_eq!(c.window(), 4 * SMSS, "min(ssthresh, flight + SMSS)");
    }

    #[test]
    fn rfc9438_4_2_an_ack_of_several_windows_stops_at_the_target() {
        let mut c = after_loss(100);
        // An SRTT above the ACKs' spacing, so all of it counts towards t.
        let srtt = Some(Duration::from_secs(2));
        c.on_ack(&AckSample::plain(SMSS, c.window(), srtt, at(0)));
        let start = c.window();
        let t = at(1000);
        // Three windows at once (W_est, 0.53 segments per window, stays below W_cubic).
        c.on_ack(&AckSample::plain(3 * start, start, srtt, t));
        // Target: W_cubic(1 s + RTT), within [cwnd, 1.5 cwnd].
        assert!(c.in_stage, "congestion avoidance");
        let e = c.epoch;
        let target = c
            .w_cubic(3_000_000, u64::from(e.k_micros))
            .clamp(start, start + start / 2);
        assert!(target > start + SMSS, "{target} {start}");
        assert_eq!(c.window(), target);
    }

    /// HyStart++ slow start, one round per call: `acks` ACKs of one segment each with RTT
    /// `rtt_ms`, the last reaching the round's end (RFC 9406 §4.2 windowEnd).
    struct SlowStartRounds {
        una: u32,
    }

    impl SlowStartRounds {
        fn round(&mut self, c: &mut Cubic, acks: u32, rtt_ms: u64) {
            self.acks(c, acks, rtt_ms, true);
        }

        /// `acks` ACKs in the round under way, the last ending it if `end`.
        fn acks(&mut self, c: &mut Cubic, acks: u32, rtt_ms: u64, end: bool) {
            for i in 0..acks {
                self.una = match c.hystart.window_end() {
                    Some(window_end) if end && i + 1 == acks => window_end.0,
                    _ => self.una + 1,
                };
                let snd_max = self.una + 1000 * SMSS;
                c.on_ack(&AckSample {
                    acked: SMSS,
                    flight: c.window(),
                    srtt: Some(Duration::from_millis(rtt_ms)),
                    rtt: Some(Duration::from_millis(rtt_ms)),
                    ack: crate::wire::SeqNumber(self.una),
                    snd_max: crate::wire::SeqNumber(snd_max),
                    now: at(u64::from(self.una % 1_000_000)),
                });
            }
        }
    }

    #[test]
    fn rfc9438_4_10_hystart_exit_is_congestion_avoidance_with_k_zero() {
        let mut c = Cubic::new(SMSS, true);
        let mut r = SlowStartRounds { una: 0 };
        r.round(&mut c, 10, 40);
        let before_css = c.window();
        // 20 ms more: CSS from the eighth ACK on, a quarter of slow start's growth.
        r.round(&mut c, 20, 60);
        assert_eq!(c.window(), before_css + 8 * SMSS + 12 * SMSS / 4);
        for _ in 0..3 {
            r.round(&mut c, 20, 60);
        }
        r.acks(&mut c, 19, 60, false);
        assert_eq!(c.ssthresh(), u32::MAX, "still slow start (CSS)");
        let at_exit = c.window();
        // The ACK that ends the fifth CSS round: congestion avoidance, no reduction.
        r.round(&mut c, 1, 60);
        assert_eq!(c.ssthresh(), at_exit, "ssthresh = cwnd");
        assert!(c.window() >= at_exit);
        assert!(c.in_stage, "congestion avoidance began");
        assert_eq!(c.epoch.k_micros, 0, "K = 0");
        assert_eq!(c.w_max, at_exit, "W_max = cwnd at the start of the stage");
        assert_eq!(c.cwnd_prior, at_exit, "cwnd_prior = cwnd");
        // From here, cubic growth: far less than a segment per ACK.
        let w = c.window();
        r.round(&mut c, 10, 60);
        assert!(c.window() < w + 2 * SMSS, "{} vs {w}", c.window());
    }

    #[test]
    fn rfc9406_s4_3_no_hystart_after_loss() {
        // A timeout and a fast retransmit each end HyStart++: the slow start that follows is
        // RFC 5681's (one SMSS per ACK however much it covers, no CSS on a rising RTT).
        for fast in [false, true] {
            let mut c = Cubic::new(SMSS, true);
            let mut r = SlowStartRounds { una: 0 };
            r.round(&mut c, 10, 40);
            c.cwnd = 20 * SMSS;
            if fast {
                c.on_fast_retransmit(200 * SMSS, at(0));
                c.cwnd = SMSS;
            } else {
                c.on_rto(200 * SMSS, at(0));
            }
            assert_eq!(c.window(), SMSS);
            c.on_ack(&AckSample::plain(4 * SMSS, u32::MAX, None, at(1)));
            assert_eq!(
                c.window(),
                2 * SMSS,
                "fast {fast}: at most one SMSS per ACK"
            );
            r.round(&mut c, 10, 40);
            let w = c.window();
            // HyStart++ would enter CSS on the eighth ACK of this round.
            r.round(&mut c, 12, 100);
            assert_eq!(c.window(), w + 12 * SMSS, "fast {fast}: no CSS");
        }
    }

    #[test]
    fn rfc9438_s4_6_ecn_echo_is_a_congestion_event_without_inflation() {
        let mut c = Cubic::new(SMSS, true);
        c.cwnd = 40 * SMSS;
        c.on_ecn_echo(40 * SMSS, at(0));
        assert_eq!(c.ssthresh(), 28 * SMSS, "flight x beta_cubic (0.7)");
        assert_eq!(
            c.window(),
            28 * SMSS,
            "cwnd = ssthresh: nothing to retransmit"
        );
        assert_eq!(
            c.w_max,
            40 * SMSS,
            "W_max is the window before the reduction"
        );
    }

    #[test]
    fn extreme_inputs_saturate_without_panicking() {
        let mut c = Cubic::new(64, false);
        c.cwnd = u32::MAX - 10;
        c.on_fast_retransmit(u32::MAX, at(0));
        c.on_recovery_end(u32::MAX);
        for s in [0u64, 1, 1000, 100_000_000] {
            c.on_ack(&AckSample::plain(
                u32::MAX,
                u32::MAX,
                Some(Duration::MAX),
                Instant::from_secs(s),
            ));
        }
        assert!(c.window() >= c.ssthresh());
        c.on_rto(0, Instant::from_secs(u64::MAX / 2_000_000));
        c.on_ack(&AckSample::plain(0, 0, None, Instant::ZERO));
        c.on_ack(&AckSample::plain(
            u32::MAX,
            u32::MAX,
            None,
            Instant::from_micros(u64::MAX),
        ));
        let mut c = Cubic::new(64, false);
        c.on_fast_retransmit(0, at(0));
        c.on_recovery_end(0);
        c.on_ack(&AckSample::plain(
            1,
            u32::MAX,
            Some(Duration::from_secs(1)),
            at(5),
        ));
        assert!(c.window() >= 64);
    }
}

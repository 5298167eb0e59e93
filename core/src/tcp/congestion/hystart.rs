//! HyStart++ (RFC 9406): slow start that leaves before it overshoots, on a rise in the RTT.
//!
//! Why: standard slow start doubles the window every round trip until a loss says stop. Into
//! a drop-tail bottleneck whose queue holds about one bandwidth-delay product, the last
//! doubling sends twice what the path plus its queue can hold, and a large part of that
//! window is lost at once. The path comparison (`bench-results/paths.md`: a curl client
//! downloading 1 MiB through a 10 Mbit/s bottleneck with a 64 KiB queue, 1 ms and 20 ms base
//! RTT, no random loss) showed exactly that: the bypass took about 1.45 times the Linux
//! kernel's time, with thousands of timeout retransmissions, because recovering that many
//! holes ended in RTOs. Linux's CUBIC does not pace on its own (no `fq`, no BBR there) and
//! so does not differ in the bursts it sends: the difference is its HyStart, which sees the
//! queue fill as a rising RTT and leaves slow start before the queue overflows. This is the
//! RFC's version of the same idea.
//!
//! The algorithm (§4.2), run by the congestion controller on each ACK of new data while
//! `cwnd < ssthresh`:
//! - Rounds: a round ends when the ACK reaches `windowEnd`, the highest sequence sent when the
//!   round began (the connection's SND.MAX). Each round keeps the least RTT sample it saw
//!   (`currentRoundMinRTT`) and the previous round's (`lastRoundMinRTT`).
//! - In slow start, once a round has `N_RTT_SAMPLE` samples, a minimum that rose by at least
//!   `RttThresh = clamp(lastRoundMinRTT / MIN_RTT_DIVISOR, MIN_RTT_THRESH, MAX_RTT_THRESH)`
//!   over the last round's means a queue is building: Conservative Slow Start (CSS) begins,
//!   with that minimum as its baseline.
//! - CSS grows the window at a quarter of slow start's rate (`CSS_GROWTH_DIVISOR`). If a CSS
//!   round's minimum (again after `N_RTT_SAMPLE` samples) falls below the baseline, the rise
//!   was jitter: slow start resumes. After `CSS_ROUNDS` rounds (the partial round CSS began
//!   in counts) the controller enters congestion avoidance with ssthresh = cwnd: no
//!   reduction, nothing was lost.
//! - Growth per ACK is min(N, L * SMSS) for N newly acknowledged bytes, with L = 2 where
//!   §4.3 recommends 8 for a sender that does not pace (xgate does not). What L does depends
//!   on how often the receiver ACKs: a Linux receiver ACKs every second segment, and every
//!   segment its reader takes that carried PSH (`push_marks.rs`). While every segment
//!   carried PSH, real clients ACKed each one and L = 1 doubled the window per round trip,
//!   as Linux's slow start does (it counts every segment ACKed, with no L). With fewer ACKs,
//!   L = 1 grows the window only 1.5 times per round trip (traced: a 1 MiB download at
//!   20 ms and 100 Mbit/s took 3-4% longer than the kernel path's); L = 2 doubles it against
//!   an ACK for every second segment. Not 8: the deterministic simulation of the bench's
//!   paths (`core/tests/sim/flight.rs`: 1 MiB, 10 Mbit/s, 64 KiB queue, 1/20/80 ms, a
//!   client that ACKs every second segment) showed that larger bursts against stretch ACKs
//!   defeat the delay signal: a round's minimum RTT comes from its first segments, sent
//!   while the previous round's queue was still small, so the rise shows one round after
//!   the round that overflows a one-BDP queue (L = 8 dropped 13/100/25 segments at 1/20/80
//!   ms where L = 1 dropped 2/4/8, measured before PRR; L = 2 drops 13/39/47 there now,
//!   standard slow start 26/34/94). L = 2 is RFC 3465's (experimental) limit. Outside
//!   HyStart++ (a slow start after a timeout, or HyStart++ configured off) RFC 5681 §3.1's
//!   L = 1 holds.
//!
//! §4.3: only the first slow start of a connection (while ssthresh is still its initial
//! "arbitrarily high" value) uses HyStart++. Any loss or timeout turns it off for good: the
//! later slow starts stop at the ssthresh the loss set, which is where the overshoot problem
//! is already solved. The restart window after idle (which §4.3 also allows) does not apply:
//! the connection does not restart from an idle window.
//!
//! The other constants are the RFC's §4.3 recommendations, unchanged: they are what Linux,
//! Windows and the QUIC stacks that ship HyStart++ use, and a 4 ms threshold floor is what keeps
//! millisecond-granular timestamp samples (RFC 7323 TSecr, one clock tick is 1 ms here) from
//! reading one tick of jitter as a queue.
//!
//! RTT samples are what the connection takes anyway (TSecr on every ACK with timestamps, else
//! the one Karn-timed segment); RTTs are kept in microseconds as `u32` (about 71 minutes,
//! saturating) so the state stays small inside every connection slot.

use crate::time::{Duration, Instant};
use crate::wire::SeqNumber;

/// §4.3: the floor of the RTT rise that counts as a queue building.
const MIN_RTT_THRESH: u32 = 4_000;
/// §4.3: the ceiling of that threshold.
const MAX_RTT_THRESH: u32 = 16_000;
/// §4.3: the threshold is lastRoundMinRTT / MIN_RTT_DIVISOR between the two bounds.
const MIN_RTT_DIVISOR: u32 = 8;
/// §4.3: RTT samples a round needs before its minimum is compared.
const N_RTT_SAMPLE: u8 = 8;
/// §4.3: CSS grows the window this many times slower than slow start.
const CSS_GROWTH_DIVISOR: u32 = 4;
/// §4.3: rounds of CSS before congestion avoidance.
const CSS_ROUNDS: u8 = 5;
/// §4.2 L: segments of growth one ACK may bring. RFC 3465's 2 rather than §4.3's 8 for a
/// sender that does not pace: see the module doc.
const L: u32 = 2;
/// An RTT not seen yet ("infinity" in the RFC).
const NO_RTT: u32 = u32::MAX;
/// ACK train (Linux's `hystart_ack_delta_us`): ACKs at most this far apart (µs) belong to
/// one train, the bottleneck busy without a pause.
const ACK_TRAIN_GAP: u32 = 2_000;
/// ACK train: allowance (µs) for ACKs a receiver or its NIC held back (Linux's
/// `hystart_ack_delay`, at most a millisecond).
const ACK_TRAIN_ACK_DELAY: u64 = 1_000;
/// ACK train: the least RTT (µs) it assumes. Timestamp samples are whole milliseconds, so
/// a sub-millisecond path reads 0 or 1 ms; below a millisecond the poller's own pauses (a
/// batch, a send ring growing) would be as long as a train.
const ACK_TRAIN_RTT_FLOOR: u64 = 1_000;
/// ACK train: not below this many segments of cwnd (Linux's `hystart_low_window`).
const ACK_TRAIN_LOW_WINDOW: u32 = 16;

/// `now` in microseconds, wrapping at about 71 minutes: enough for differences within a round.
fn micros32(now: Instant) -> u32 {
    now.as_micros() as u32
}

/// One ACK of new data, as the connection reports it to its congestion controller.
#[derive(Debug, Clone, Copy)]
pub struct AckSample {
    /// Bytes newly acknowledged.
    pub acked: u32,
    /// How much of the window the sender is using: the larger of FlightSize before this ACK
    /// and the round's peak flight ([`super::FlightPeak`]).
    pub flight: u32,
    /// The smoothed RTT (RFC 6298), once there has been a sample.
    pub srtt: Option<Duration>,
    /// The RTT sample this ACK gave, if any (TSecr, or the Karn-timed segment).
    pub rtt: Option<Duration>,
    /// SEG.ACK.
    pub ack: SeqNumber,
    /// SND.MAX: the highest sequence sent so far (HyStart++'s `windowEnd` when a round starts).
    pub snd_max: SeqNumber,
    pub now: Instant,
}

impl AckSample {
    /// An ACK without an RTT sample or sequence numbers: for tests of growth outside
    /// HyStart++.
    #[cfg(test)]
    pub fn plain(acked: u32, flight: u32, srtt: Option<Duration>, now: Instant) -> Self {
        AckSample {
            acked,
            flight,
            srtt,
            rtt: None,
            ack: SeqNumber(0),
            snd_max: SeqNumber(0),
            now,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    /// RFC 5681 slow start: HyStart++ was not configured, or a loss ended it (§4.3).
    Off,
    /// §4.2 standard slow start, watching the RTT.
    SlowStart,
    /// §4.2 Conservative Slow Start.
    Css,
}

/// What one ACK of slow start does to the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowStartStep {
    /// Grow cwnd by this many bytes.
    Grow(u32),
    /// CSS is over (§4.2), or the ACK train ended slow start: set ssthresh = cwnd and
    /// continue in congestion avoidance.
    EnterCongestionAvoidance,
}

/// What slow start decided on one ACK, for the connection's counters: how a first slow start
/// ended (Linux counts the same in `TCPHystartTrainDetect` and `TCPHystartDelayDetect`, with
/// the window at the exit in `TCPHystartTrainCwnd` and `TCPHystartDelayCwnd`), and how often
/// a rise in the RTT proved to be jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HyStartEvent {
    /// §4.2: a round's minimum RTT rose by RttThresh: Conservative Slow Start began.
    CssEntered,
    /// §4.2: a CSS round's minimum fell below the baseline: back to standard slow start.
    CssAbandoned,
    /// The ACK train ended slow start (congestion avoidance at this window).
    TrainExit,
    /// CSS ran its `CSS_ROUNDS`: congestion avoidance at this window.
    DelayExit,
}

// One event per ACK: the ACK that enters CSS ends at most its first CSS round, so CSS cannot
// also end on it (nor on the ACK that abandons it, which leaves CSS).
const _: () = assert!(CSS_ROUNDS >= 2);

/// HyStart++ state of one connection: 36 bytes, inline in the controller.
#[derive(Debug, Clone, Copy)]
pub struct HyStart {
    phase: Phase,
    /// RTT samples in the current round (saturating).
    samples: u8,
    /// CSS rounds ended, the partial first one included.
    css_rounds: u8,
    /// A round is under way: `window_end` is its end.
    in_round: bool,
    window_end: SeqNumber,
    /// Microseconds, `NO_RTT` until a sample.
    current_round_min_rtt: u32,
    last_round_min_rtt: u32,
    css_baseline_min_rtt: u32,
    /// The connection's least RTT sample (µs): the ACK train's yardstick.
    min_rtt: u32,
    /// The ACK train's own round (see `ack_train_ends_slow_start`): it ends with the first
    /// ACK of data sent after `train_end`; when it began (µs, wrapping: only differences
    /// under a minute are used) and how far into it the last ACK of the train came.
    train_end: SeqNumber,
    train_start: u32,
    train_micros: u32,
}

impl HyStart {
    /// HyStart++ on (`enabled`) or RFC 5681 slow start.
    pub fn new(enabled: bool) -> Self {
        HyStart {
            phase: if enabled {
                Phase::SlowStart
            } else {
                Phase::Off
            },
            samples: 0,
            css_rounds: 0,
            in_round: false,
            window_end: SeqNumber(0),
            current_round_min_rtt: NO_RTT,
            last_round_min_rtt: NO_RTT,
            css_baseline_min_rtt: NO_RTT,
            min_rtt: NO_RTT,
            train_end: SeqNumber(0),
            train_start: 0,
            train_micros: 0,
        }
    }

    /// Still in the first slow start with HyStart++ on.
    #[cfg(test)]
    pub fn active(&self) -> bool {
        self.phase != Phase::Off
    }

    /// The end of the round under way, if one is.
    #[cfg(test)]
    pub fn window_end(&self) -> Option<SeqNumber> {
        self.in_round.then_some(self.window_end)
    }

    /// In Conservative Slow Start.
    #[cfg(test)]
    pub fn in_css(&self) -> bool {
        self.phase == Phase::Css
    }

    /// §4.2 "If loss or ECN-marking is observed anytime during standard slow start or CSS,
    /// enter congestion avoidance" (the controller reduces), and §4.3: HyStart++ is not used
    /// again.
    pub fn on_congestion(&mut self) {
        self.phase = Phase::Off;
    }

    /// §4.2: a round begins at `now`, to end with the ACK of `window_end`.
    fn start_round(&mut self, window_end: SeqNumber) {
        self.in_round = true;
        self.window_end = window_end;
        self.last_round_min_rtt = self.current_round_min_rtt;
        self.current_round_min_rtt = NO_RTT;
        self.samples = 0;
    }

    /// The ACK train (a departure from RFC 9406, which watches delay alone; Linux's CUBIC
    /// runs both, `HYSTART_ACK_TRAIN`): ACKs that keep arriving without a pause, from the
    /// first ACK of a flight, for more than half the least RTT mean the flight took that
    /// long to cross the bottleneck, so the window is about a bandwidth-delay product: slow
    /// start ends before the queue overflows. The delay signal comes too late there: a
    /// round's minimum RTT is its first segments', sent before the last round's queue built
    /// up. Traced at 20 ms and 100 Mbit/s with a one-BDP queue: Linux's train ended slow start
    /// at 241 segments (`TCPHystartTrainCwnd`) and nothing was lost; HyStart++ alone grew to
    /// 285, lost every other segment of the last burst, and took a round trip longer for
    /// 1 MiB.
    ///
    /// The least RTT counts as at least a millisecond (`ACK_TRAIN_RTT_FLOOR`): with
    /// timestamps it is whole milliseconds, 0 on a sub-millisecond path, and a train of half
    /// a millisecond would be within the poller's own pauses. (Turning the train off under
    /// 4 ms instead cost 1 ms / 100 Mbit/s paths their slow start's end: the 64 KiB queue
    /// overflowed and 1 MiB downloads took 1.10-1.47x the kernel path's time.)
    ///
    /// The train's round is Linux's, not §4.2's: it ends with the first ACK beyond its end
    /// (`after(snd_una, end_seq)`), which is the first ACK of the next flight. Ended at the
    /// ACK of its last byte instead (§4.2's rule), the next flight's ACKs begin most of a
    /// round trip later and no train ever starts with the round.
    fn ack_train_ends_slow_start(&mut self, s: &AckSample, cwnd: u32, smss: u32) -> bool {
        let now = micros32(s.now);
        if s.ack.diff(self.train_end) > 0 {
            self.train_end = s.snd_max;
            self.train_start = now;
            self.train_micros = 0;
        }
        if self.min_rtt == NO_RTT || cwnd < ACK_TRAIN_LOW_WINDOW.saturating_mul(smss) {
            return false;
        }
        let into_train = now.wrapping_sub(self.train_start);
        if into_train.saturating_sub(self.train_micros) > ACK_TRAIN_GAP {
            return false;
        }
        self.train_micros = into_train;
        let least_rtt = u64::from(self.min_rtt).max(ACK_TRAIN_RTT_FLOOR);
        u64::from(into_train) > (least_rtt + ACK_TRAIN_ACK_DELAY) / 2
    }

    /// One ACK of new data while cwnd < ssthresh (`cwnd` bytes): how much the window grows,
    /// or that slow start is over. Without HyStart++ it is RFC 5681's min(N, SMSS).
    /// With it, what HyStart++ decided on this ACK, if anything.
    pub fn on_ack(
        &mut self,
        s: &AckSample,
        smss: u32,
        cwnd: u32,
    ) -> (SlowStartStep, Option<HyStartEvent>) {
        if self.phase == Phase::Off {
            return (SlowStartStep::Grow(s.acked.min(smss)), None);
        }
        // §4.2 rounds: the first one begins with the first ACK; each ends with the ACK of
        // its windowEnd, and the next begins there, ending at what has been sent by then.
        if !self.in_round {
            self.start_round(s.snd_max);
            // The ACK train's first round too: `train_end` means nothing before the first
            // ACK (sequence numbers start anywhere, from the ISS).
            self.train_end = s.snd_max;
            self.train_start = micros32(s.now);
            self.train_micros = 0;
        }
        let limit = L.saturating_mul(smss);
        let grow = match self.phase {
            Phase::Css => s.acked.min(limit) / CSS_GROWTH_DIVISOR,
            _ => s.acked.min(limit),
        };
        if let Some(rtt) = s.rtt {
            let micros = u32::try_from(rtt.as_micros()).unwrap_or(NO_RTT - 1);
            self.current_round_min_rtt = self.current_round_min_rtt.min(micros);
            self.min_rtt = self.min_rtt.min(micros);
            self.samples = self.samples.saturating_add(1);
        }
        // The train is watched in CSS too: CSS begun on a round's first samples, and then
        // abandoned as jitter, would otherwise hide the round in which the train ends slow
        // start, and the full-rate growth resumed afterwards overflows the queue.
        if self.ack_train_ends_slow_start(s, cwnd, smss) {
            self.phase = Phase::Off;
            return (
                SlowStartStep::EnterCongestionAvoidance,
                Some(HyStartEvent::TrainExit),
            );
        }
        let mut event = None;
        if self.samples >= N_RTT_SAMPLE
            && self.current_round_min_rtt != NO_RTT
            && self.last_round_min_rtt != NO_RTT
        {
            match self.phase {
                Phase::SlowStart => {
                    let last = self.last_round_min_rtt;
                    let thresh = (last / MIN_RTT_DIVISOR).clamp(MIN_RTT_THRESH, MAX_RTT_THRESH);
                    if self.current_round_min_rtt >= last.saturating_add(thresh) {
                        self.css_baseline_min_rtt = self.current_round_min_rtt;
                        self.phase = Phase::Css;
                        self.css_rounds = 0;
                        event = Some(HyStartEvent::CssEntered);
                    }
                }
                Phase::Css => {
                    if self.current_round_min_rtt < self.css_baseline_min_rtt {
                        // The rise was jitter: back to slow start.
                        self.css_baseline_min_rtt = NO_RTT;
                        self.phase = Phase::SlowStart;
                        event = Some(HyStartEvent::CssAbandoned);
                    }
                }
                Phase::Off => {}
            }
        }
        if s.ack.diff(self.window_end) >= 0 {
            if self.phase == Phase::Css {
                // The partial round CSS began in counts towards CSS_ROUNDS.
                self.css_rounds = self.css_rounds.saturating_add(1);
                if self.css_rounds >= CSS_ROUNDS {
                    self.phase = Phase::Off;
                    return (
                        SlowStartStep::EnterCongestionAvoidance,
                        Some(HyStartEvent::DelayExit),
                    );
                }
            }
            self.start_round(s.snd_max);
        }
        (SlowStartStep::Grow(grow), event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMSS: u32 = 1000;

    /// Drives a HyStart++ sender one round at a time: every ACK acknowledges one segment
    /// and carries the round's RTT; the last reaches the round's windowEnd (§4.2) and so
    /// ends it.
    struct Rounds {
        h: HyStart,
        una: u32,
        grown: u64,
        exited: bool,
        events: Vec<HyStartEvent>,
    }

    impl Rounds {
        fn new() -> Self {
            Rounds {
                h: HyStart::new(true),
                una: 0,
                grown: 0,
                exited: false,
                events: Vec::new(),
            }
        }

        /// One round of `acks` one-segment ACKs with RTT `rtt_ms`.
        fn round(&mut self, acks: u32, rtt_ms: u64) {
            self.acks(acks, rtt_ms, true);
        }

        /// `acks` ACKs in the round under way, the last ending it if `end`.
        fn acks(&mut self, acks: u32, rtt_ms: u64, end: bool) {
            for i in 0..acks {
                self.una = if end && i + 1 == acks && self.h.in_round {
                    self.h.window_end.0
                } else {
                    self.una + 1
                };
                let snd_max = self.una + 100 * SMSS;
                let s = AckSample {
                    acked: SMSS,
                    flight: u32::MAX,
                    srtt: None,
                    rtt: Some(Duration::from_millis(rtt_ms)),
                    ack: SeqNumber(self.una),
                    snd_max: SeqNumber(snd_max),
                    now: Instant::ZERO,
                };
                let (step, event) = self.h.on_ack(&s, SMSS, 0);
                match step {
                    SlowStartStep::Grow(b) => self.grown += u64::from(b),
                    SlowStartStep::EnterCongestionAvoidance => self.exited = true,
                }
                self.events.extend(event);
            }
        }
    }

    #[test]
    fn rfc9406_s4_2_rtt_increase_above_threshold_enters_css() {
        let mut r = Rounds::new();
        r.round(10, 40);
        assert!(!r.h.in_css());
        // 40 ms / 8 = 5 ms threshold: 44 ms is jitter.
        r.round(20, 44);
        assert!(!r.h.in_css(), "a rise below the threshold");
        // 44 ms / 8 = 5.5 ms: 49 ms is not enough, 49.5 ms is.
        let mut below = Rounds::new();
        below.round(10, 40);
        below.round(20, 44);
        below.round(20, 49);
        assert!(!below.h.in_css(), "44 + 5 ms < 44 + 5.5 ms");
        r.round(40, 50);
        assert!(r.h.in_css(), "44 + 5.5 ms: CSS");
        assert_eq!(r.h.css_baseline_min_rtt, 50_000);
    }

    #[test]
    fn rfc9406_s4_2_threshold_is_clamped_to_4_and_16_ms() {
        // 1 ms base: the 4 ms floor; 3 ms more is not enough.
        let mut r = Rounds::new();
        r.round(10, 1);
        r.round(20, 4);
        assert!(!r.h.in_css(), "1 + 3 ms < 1 + 4 ms");
        r.round(40, 8);
        assert!(r.h.in_css(), "4 + 4 ms");
        // 200 ms base: 200 / 8 = 25 ms, capped at 16 ms.
        let mut r = Rounds::new();
        r.round(10, 200);
        r.round(20, 215);
        assert!(!r.h.in_css(), "200 + 15 ms");
        r.round(20, 231);
        assert!(r.h.in_css(), "215 + 16 ms (not 215 / 8 = 26.9 ms)");
    }

    #[test]
    fn rfc9406_s4_2_needs_n_rtt_sample_samples_per_round() {
        let mut r = Rounds::new();
        r.round(10, 40);
        // Seven samples of a large rise: not enough to compare.
        r.round(7, 100);
        assert!(!r.h.in_css());
        let mut r = Rounds::new();
        r.round(10, 40);
        r.round(8, 100);
        assert!(r.h.in_css(), "the eighth sample decides");
    }

    #[test]
    fn rfc9406_s4_2_css_grows_a_quarter_and_l_limits_each_ack() {
        let mut h = HyStart::new(true);
        let mut s = AckSample::plain(20 * SMSS, u32::MAX, None, Instant::ZERO);
        s.ack = SeqNumber(SMSS);
        s.snd_max = SeqNumber(100 * SMSS);
        assert_eq!(
            h.on_ack(&s, SMSS, 0).0,
            SlowStartStep::Grow(2 * SMSS),
            "L = 2"
        );
        s.acked = 3 * SMSS / 2;
        assert_eq!(h.on_ack(&s, SMSS, 0).0, SlowStartStep::Grow(3 * SMSS / 2));
        h.phase = Phase::Css;
        s.acked = 20 * SMSS;
        assert_eq!(
            h.on_ack(&s, SMSS, 0).0,
            SlowStartStep::Grow(2 * SMSS / 4),
            "L / 4"
        );
        s.acked = 2 * SMSS / 5;
        assert_eq!(h.on_ack(&s, SMSS, 0).0, SlowStartStep::Grow(SMSS / 10));
        // Off: RFC 5681, at most one SMSS.
        let mut h = HyStart::new(false);
        s.acked = 20 * SMSS;
        assert_eq!(h.on_ack(&s, SMSS, 0).0, SlowStartStep::Grow(SMSS));
    }

    #[test]
    fn rfc9406_s4_2_css_rounds_then_congestion_avoidance() {
        let mut r = Rounds::new();
        r.round(10, 40);
        // CSS begins on the eighth ACK of this round: that partial round is the first.
        r.round(20, 60);
        assert!(r.h.in_css());
        assert_eq!(r.h.css_rounds, 1);
        for _ in 0..3 {
            r.round(20, 60);
            assert!(r.h.in_css() && !r.exited);
        }
        // The ACK that ends the fifth CSS round starts congestion avoidance.
        r.acks(19, 60, false);
        assert!(r.h.in_css() && !r.exited, "the fifth round is under way");
        r.round(1, 60);
        assert!(r.exited, "after CSS_ROUNDS = 5 rounds");
        assert!(!r.h.active(), "HyStart++ is over");
        assert_eq!(
            r.events,
            [HyStartEvent::CssEntered, HyStartEvent::DelayExit],
            "what the connection counts"
        );
        let grown = r.grown;
        r.round(5, 60);
        assert_eq!(r.grown - grown, 5 * u64::from(SMSS), "RFC 5681 from here");
    }

    #[test]
    fn rfc9406_s4_2_rtt_back_below_baseline_resumes_slow_start() {
        let mut r = Rounds::new();
        r.round(10, 40);
        r.round(20, 60);
        assert!(r.h.in_css());
        // A CSS round whose minimum stays at the baseline: still CSS.
        r.round(20, 60);
        assert!(r.h.in_css());
        // Its minimum below the baseline: the rise was jitter.
        r.round(20, 59);
        assert!(!r.h.in_css() && r.h.active(), "slow start again");
        assert_eq!(r.h.css_baseline_min_rtt, NO_RTT);
        assert_eq!(
            r.events,
            [HyStartEvent::CssEntered, HyStartEvent::CssAbandoned]
        );
        let grown = r.grown;
        r.round(4, 59);
        assert_eq!(
            r.grown - grown,
            4 * u64::from(SMSS),
            "full slow start growth"
        );
    }

    #[test]
    fn rfc9406_s4_3_no_hystart_after_loss() {
        let mut r = Rounds::new();
        r.round(10, 40);
        r.h.on_congestion();
        assert!(!r.h.active());
        // A rise that would have meant CSS: RFC 5681 slow start, one SMSS per ACK.
        let grown = r.grown;
        r.round(20, 100);
        assert!(!r.h.in_css());
        assert_eq!(r.grown - grown, 20 * u64::from(SMSS), "full growth, no CSS");
    }

    /// ACKs every `gap_us` from t = 0 with RTT samples of 20 ms and `cwnd`; the time (µs) of
    /// the ACK that ended slow start, if one did within `acks`.
    fn train(gap_us: u64, cwnd: u32, acks: u64) -> Option<u64> {
        train_from(0, gap_us, cwnd, acks)
    }

    /// `train` with sequence numbers from `iss` (they start anywhere).
    fn train_from(iss: u32, gap_us: u64, cwnd: u32, acks: u64) -> Option<u64> {
        let mut h = HyStart::new(true);
        // The connection is 5 s old: nothing may read the clock as if it began at 0.
        let t0 = 5_000_000;
        (0..acks).find_map(|i| {
            let now = Instant::from_micros(t0 + i * gap_us);
            let s = AckSample {
                acked: SMSS,
                flight: u32::MAX,
                srtt: None,
                rtt: Some(Duration::from_millis(20)),
                ack: SeqNumber(iss.wrapping_add((i as u32 + 1) * SMSS)),
                snd_max: SeqNumber(iss.wrapping_add(1 << 30)),
                now,
            };
            let (step, event) = h.on_ack(&s, SMSS, cwnd);
            let ended = step == SlowStartStep::EnterCongestionAvoidance;
            assert_eq!(
                event,
                ended.then_some(HyStartEvent::TrainExit),
                "the exit is counted as the train's, and nothing else happens in a train"
            );
            ended.then_some(now.as_micros() - t0)
        })
    }

    #[test]
    fn ack_train_longer_than_half_the_least_rtt_ends_slow_start() {
        // (20 ms + 1 ms of ACK delay) / 2 = 10.5 ms of ACKs without a pause: the bottleneck
        // has been busy that long in this round.
        assert_eq!(train(200, 100 * SMSS, 200), Some(10_600));
        // A pause over 2 ms between ACKs: no train, whatever the round's length.
        assert_eq!(train(2_100, 100 * SMSS, 200), None);
        // Below 16 segments of window the train is not watched (Linux's hystart_low_window).
        assert_eq!(train(200, 15 * SMSS, 200), None);
        // Sequence numbers in the upper half of the space (the train's end starts at the
        // first ACK, not at 0), and across the wrap.
        assert_eq!(train_from(0x9000_0000, 200, 100 * SMSS, 200), Some(10_600));
        assert_eq!(
            train_from(u32::MAX - 5000, 200, 100 * SMSS, 200),
            Some(10_600)
        );
    }

    #[test]
    fn ack_train_takes_the_least_rtt_as_at_least_a_millisecond() {
        // A timestamp sample of 0 ms (a sub-millisecond path): the train must last (1 ms +
        // 1 ms) / 2, not 0.5 ms.
        let ended_at = |rtt: Duration| {
            let mut h = HyStart::new(true);
            (0..200u64).find_map(|i| {
                let s = AckSample {
                    acked: SMSS,
                    flight: u32::MAX,
                    srtt: None,
                    rtt: Some(rtt),
                    ack: SeqNumber((i as u32 + 1) * SMSS),
                    snd_max: SeqNumber(1 << 30),
                    now: Instant::from_micros(i * 100),
                };
                (h.on_ack(&s, SMSS, 100 * SMSS).0 == SlowStartStep::EnterCongestionAvoidance)
                    .then_some(i * 100)
            })
        };
        assert_eq!(ended_at(Duration::ZERO), Some(1_100));
        assert_eq!(ended_at(Duration::from_millis(3)), Some(2_100));
    }

    #[test]
    fn ack_train_round_begins_with_the_first_ack_of_the_next_flight() {
        // A flight of 100 segments is acknowledged; the ACK of its last byte comes at 0, the
        // next flight's ACKs from 15 ms on, every 200 µs. Its train is 10.6 ms long at 25.6 ms:
        // slow start ends there. Had the round begun at the ACK of the last byte (§4.2's
        // boundary), the 15 ms gap would have broken every train.
        let mut h = HyStart::new(true);
        let ack = |h: &mut HyStart, us: u64, ack: u32, snd_max: u32| {
            let s = AckSample {
                acked: SMSS,
                flight: u32::MAX,
                srtt: None,
                rtt: Some(Duration::from_millis(20)),
                ack: SeqNumber(ack),
                snd_max: SeqNumber(snd_max),
                now: Instant::from_micros(us),
            };
            h.on_ack(&s, SMSS, 100 * SMSS).0
        };
        let first_end = 100 * SMSS;
        assert_eq!(
            ack(&mut h, 0, SMSS, first_end),
            SlowStartStep::Grow(SMSS),
            "the first flight's train begins"
        );
        assert_eq!(
            ack(&mut h, 0, first_end, 300 * SMSS),
            SlowStartStep::Grow(SMSS)
        );
        let mut ended = None;
        for i in 1..=200u32 {
            let us = 15_000 + u64::from(i - 1) * 200;
            if ack(&mut h, us, first_end + i * SMSS, 300 * SMSS)
                == SlowStartStep::EnterCongestionAvoidance
            {
                ended = Some(us);
                break;
            }
        }
        assert_eq!(ended, Some(25_600));
    }

    #[test]
    fn ack_train_ends_slow_start_in_css_too() {
        // A first round at 20 ms; in the second, the RTT has risen 10 ms (a queue from the
        // first flight's burst): CSS begins at its eighth sample. Its ACKs keep coming every
        // 200 µs, and the train still ends slow start 10.6 ms into the round. (Watched in
        // standard slow start only, it was hidden by CSS; traced at 20 ms / 100 Mbit/s: CSS
        // was abandoned a round later, full-rate growth resumed, and the tail of a 1 MiB
        // download was lost to the queue, costing a probe timeout.)
        let mut h = HyStart::new(true);
        let mut events = Vec::new();
        let mut ack = |h: &mut HyStart, us: u64, ack: u32, snd_max: u32, rtt_ms: u64| {
            let s = AckSample {
                acked: SMSS,
                flight: u32::MAX,
                srtt: None,
                rtt: Some(Duration::from_millis(rtt_ms)),
                ack: SeqNumber(ack),
                snd_max: SeqNumber(snd_max),
                now: Instant::from_micros(us),
            };
            let (step, event) = h.on_ack(&s, SMSS, 100 * SMSS);
            events.extend(event);
            step
        };
        // Round one: 10 ACKs at 20 ms, widely spaced (no train), the last ending it.
        let first_end = 10 * SMSS;
        for i in 1..=10u32 {
            // By its last ACK the second flight has been sent.
            let snd_max = if i == 10 { 400 * SMSS } else { first_end };
            let step = ack(&mut h, u64::from(i) * 3_000, i * SMSS, snd_max, 20);
            assert_eq!(step, SlowStartStep::Grow(SMSS));
        }
        // Round two: from 50 ms, an ACK every 200 µs at 30 ms.
        let mut ended = None;
        for i in 1..=200u32 {
            let us = 50_000 + u64::from(i - 1) * 200;
            if ack(&mut h, us, first_end + i * SMSS, 400 * SMSS, 30)
                == SlowStartStep::EnterCongestionAvoidance
            {
                ended = Some(us);
                break;
            }
        }
        assert_eq!(ended, Some(60_600));
        assert_eq!(events, [HyStartEvent::CssEntered, HyStartEvent::TrainExit]);
    }

    #[test]
    fn extreme_samples_saturate() {
        let mut h = HyStart::new(true);
        let mut s = AckSample::plain(u32::MAX, u32::MAX, None, Instant::ZERO);
        s.rtt = Some(Duration::MAX);
        for i in 0..40u32 {
            s.ack = SeqNumber(i.wrapping_mul(0x4000_0000));
            s.snd_max = SeqNumber(i.wrapping_mul(0x7000_0000));
            let _ = h.on_ack(&s, u32::MAX, u32::MAX);
        }
        s.rtt = Some(Duration::ZERO);
        let _ = h.on_ack(&s, 0, 0);
    }
}

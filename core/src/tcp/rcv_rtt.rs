//! The receiver's estimate of the round trip, for receive-buffer autotuning (Linux's
//! `rcv_rtt_est`).
//!
//! A receiver that only ACKs takes no RTT samples of its own (those come from data it sends
//! being acknowledged), yet it needs the round trip to tell how much the peer sends per round,
//! which is what the receive window must cover. Two ways, as Linux measures it:
//! - with timestamps, a data segment echoes (TSecr) the TSval of the ACK the peer last saw,
//!   so the time since that TSval is a round trip (`tcp_rcv_rtt_measure_ts`);
//! - without, the time until the peer has sent everything the announced window allowed when
//!   the measurement began is at least a round trip (`tcp_rcv_rtt_measure`).
//!
//! As Linux's `tcp_rcv_rtt_update`, a lower sample is taken at once; a higher one moves a
//! timestamp estimate by an eighth and is ignored without timestamps (that measure is an
//! upper bound whenever the sender paused, so only its minimum means anything). A timestamp
//! sample is taken once per distinct TSecr, from full-sized segments only, and only under a
//! minute (Linux's checks: a stale or hostile echo moves the estimate at most an eighth per
//! new TSecr); a window-based sample of zero (the window arrived in one batch) is no sample.

use crate::time::{Duration, Instant};
use crate::wire::SeqNumber;

/// The longest timestamp sample believed (RFC 6298's RTO ceiling is the same minute).
const MAX_TS_SAMPLE_MS: u32 = 60_000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RcvRtt {
    estimate: Option<Duration>,
    /// Without timestamps: the right edge announced when the measurement began, and when.
    mark: Option<(SeqNumber, Instant)>,
    /// The TSecr last sampled (each is sampled once).
    last_tsecr: u32,
}

impl RcvRtt {
    pub fn get(&self) -> Option<Duration> {
        self.estimate
    }

    /// In-order data arrived at `now`: `ts` the segment's timestamps option (if negotiated),
    /// `full` whether it carried a full-sized segment, `ts_now` our timestamp clock now,
    /// `rcv_nxt` the new RCV.NXT, `rcv_right` the right edge of the window we announced.
    pub fn on_data(
        &mut self,
        now: Instant,
        ts: Option<(u32, u32)>,
        full: bool,
        ts_now: u32,
        rcv_nxt: SeqNumber,
        rcv_right: SeqNumber,
    ) {
        if let Some((_, tsecr)) = ts {
            // A TSecr of 0 echoes nothing; one from the future (it wraps to a huge value) or
            // over a minute old is not believed.
            let ms = ts_now.wrapping_sub(tsecr);
            if full && tsecr != 0 && tsecr != self.last_tsecr && ms <= MAX_TS_SAMPLE_MS {
                self.last_tsecr = tsecr;
                self.sample(Duration::from_millis(u64::from(ms.max(1))), false);
            }
            return;
        }
        match self.mark {
            Some((edge, since)) if rcv_nxt.diff(edge) >= 0 => {
                let took = now.saturating_duration_since(since);
                if !took.is_zero() {
                    self.sample(took, true);
                }
                self.mark = Some((rcv_right, now));
            }
            Some(_) => {}
            None => self.mark = Some((rcv_right, now)),
        }
    }

    /// `window_dependent`: a sample from the window's arrival time (an upper bound).
    fn sample(&mut self, s: Duration, window_dependent: bool) {
        self.estimate = Some(match self.estimate {
            Some(e) if s >= e && window_dependent => e,
            Some(e) if s >= e => e - e / 8 + s / 8,
            _ => s,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    /// A full-sized segment with timestamps (`tsecr`) arriving when our clock reads 1000.
    fn ts_data(r: &mut RcvRtt, tsecr: u32) {
        let seq = SeqNumber(100);
        r.on_data(at(0), Some((5, tsecr)), true, 1000, seq, seq);
    }

    #[test]
    fn timestamps_give_the_time_since_the_echoed_tsval() {
        let mut r = RcvRtt::default();
        ts_data(&mut r, 0);
        assert_eq!(r.get(), None, "TSecr 0 echoes nothing");
        ts_data(&mut r, 920);
        assert_eq!(r.get(), Some(Duration::from_millis(80)));
        ts_data(&mut r, 960);
        assert_eq!(
            r.get(),
            Some(Duration::from_millis(40)),
            "lower: taken at once"
        );
        ts_data(&mut r, 920);
        assert_eq!(
            r.get(),
            Some(Duration::from_millis(45)),
            "higher: an eighth"
        );
        ts_data(&mut r, 920);
        assert_eq!(
            r.get(),
            Some(Duration::from_millis(45)),
            "one sample per TSecr"
        );
        ts_data(&mut r, 2000);
        assert_eq!(
            r.get(),
            Some(Duration::from_millis(45)),
            "from the future: ignored"
        );
        ts_data(&mut r, 1000u32.wrapping_sub(60_001));
        assert_eq!(
            r.get(),
            Some(Duration::from_millis(45)),
            "over a minute: ignored"
        );
        let seq = SeqNumber(100);
        r.on_data(at(0), Some((5, 990)), false, 1000, seq, seq);
        assert_eq!(
            r.get(),
            Some(Duration::from_millis(45)),
            "a short segment: ignored"
        );
    }

    #[test]
    fn without_timestamps_a_window_of_data_takes_a_round_trip() {
        let mut r = RcvRtt::default();
        let una = SeqNumber(u32::MAX - 1000); // across the wrap
                                              // The window announced reaches una + 64 KiB when the measure begins.
        r.on_data(at(100), None, true, 0, una, una + 65536u32);
        r.on_data(at(150), None, true, 0, una + 30_000u32, una + 90_000u32);
        assert_eq!(r.get(), None, "the window is not used up yet");
        r.on_data(at(180), None, true, 0, una + 65536u32, una + 130_000u32);
        assert_eq!(r.get(), Some(Duration::from_millis(80)));
        // A longer one is an upper bound: ignored. A shorter one is taken.
        r.on_data(at(300), None, true, 0, una + 130_000u32, una + 200_000u32);
        assert_eq!(r.get(), Some(Duration::from_millis(80)));
        r.on_data(at(360), None, true, 0, una + 200_000u32, una + 260_000u32);
        assert_eq!(r.get(), Some(Duration::from_millis(60)));
        // A window that arrived in one batch (no time passed): no sample.
        r.on_data(at(360), None, true, 0, una + 260_000u32, una + 300_000u32);
        assert_eq!(r.get(), Some(Duration::from_millis(60)));
    }
}

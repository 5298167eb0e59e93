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
//! The estimate follows lower samples at once and higher ones slowly (an eighth), since a
//! sample is an upper bound more often than not (delayed ACKs, an idle sender).

use crate::time::{Duration, Instant};
use crate::wire::SeqNumber;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RcvRtt {
    estimate: Option<Duration>,
    /// Without timestamps: the right edge announced when the measurement began, and when.
    mark: Option<(SeqNumber, Instant)>,
}

impl RcvRtt {
    pub fn get(&self) -> Option<Duration> {
        self.estimate
    }

    /// In-order data arrived at `now`: `ts` the segment's timestamps option, `ts_now` our
    /// timestamp clock now, `rcv_nxt` the new RCV.NXT, `rcv_right` the right edge of the
    /// window we announced.
    pub fn on_data(
        &mut self,
        now: Instant,
        ts: Option<(u32, u32)>,
        ts_now: u32,
        rcv_nxt: SeqNumber,
        rcv_right: SeqNumber,
    ) {
        if let Some((_, tsecr)) = ts {
            // A TSecr of 0 echoes nothing; one from the future (or older than about 12 days)
            // is not ours to trust.
            let ms = ts_now.wrapping_sub(tsecr);
            if tsecr != 0 && ms < 1 << 30 {
                self.sample(Duration::from_millis(u64::from(ms.max(1))));
            }
            return;
        }
        match self.mark {
            Some((edge, since)) if rcv_nxt.diff(edge) >= 0 => {
                self.sample(now.saturating_duration_since(since));
                self.mark = Some((rcv_right, now));
            }
            Some(_) => {}
            None => self.mark = Some((rcv_right, now)),
        }
    }

    fn sample(&mut self, s: Duration) {
        self.estimate = Some(match self.estimate {
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

    #[test]
    fn timestamps_give_the_time_since_the_echoed_tsval() {
        let mut r = RcvRtt::default();
        let seq = SeqNumber(100);
        r.on_data(at(0), Some((5, 0)), 1000, seq, seq);
        assert_eq!(r.get(), None, "TSecr 0 echoes nothing");
        r.on_data(at(0), Some((5, 920)), 1000, seq, seq);
        assert_eq!(r.get(), Some(Duration::from_millis(80)));
        r.on_data(at(0), Some((5, 960)), 1000, seq, seq);
        assert_eq!(
            r.get(),
            Some(Duration::from_millis(40)),
            "lower: taken at once"
        );
        r.on_data(at(0), Some((5, 920)), 1000, seq, seq);
        assert_eq!(
            r.get(),
            Some(Duration::from_millis(45)),
            "higher: an eighth"
        );
        r.on_data(at(0), Some((5, 2000)), 1000, seq, seq);
        assert_eq!(
            r.get(),
            Some(Duration::from_millis(45)),
            "from the future: ignored"
        );
    }

    #[test]
    fn without_timestamps_a_window_of_data_takes_a_round_trip() {
        let mut r = RcvRtt::default();
        let una = SeqNumber(u32::MAX - 1000); // across the wrap
                                              // The window announced reaches una + 64 KiB when the measure begins.
        r.on_data(at(100), None, 0, una, una + 65536u32);
        r.on_data(at(150), None, 0, una + 30_000u32, una + 90_000u32);
        assert_eq!(r.get(), None, "the window is not used up yet");
        r.on_data(at(180), None, 0, una + 65536u32, una + 130_000u32);
        assert_eq!(r.get(), Some(Duration::from_millis(80)));
    }
}

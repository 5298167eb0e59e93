//! Congestion control: how large the congestion window is, apart from when the connection
//! retransmits.
//!
//! The connection runs loss recovery -- it counts duplicate ACKs, decides when fast
//! retransmit and fast recovery start and end (RFC 5681 §3.2, RFC 6582 `recover`), what to
//! retransmit, and when the retransmission timer fires -- and reports each of those events
//! here. A [`CongestionControl`] answers only with window arithmetic: `cwnd` and `ssthresh`.
//! That is the split Linux makes between its recovery state machine and its
//! `tcp_congestion_ops`, and smoltcp between its socket and its `congestion` controllers, and
//! it is what lets CUBIC (RFC 9438, the default) replace NewReno's growth and reduction
//! without touching recovery. Both share RFC 6582's fast-recovery arithmetic (the window
//! inflated by duplicate ACKs and deflated by partial and full ACKs); only the reduction that
//! starts recovery and the growth after it differ.
//!
//! Dispatch is static: [`Congestion`] is an enum over the implementations, stored inline in
//! the connection. A `Box<dyn CongestionControl>` would be one more heap allocation per
//! connection and an indirect call on every ACK; a generic `Conn<C>` would make the endpoint
//! and its slot table generic too, and fix one algorithm per endpoint where comparing two
//! wants them side by side. With one variant
//! the `match` compiles away; with two it is a predictable branch on a byte the connection
//! already has in cache. The events carry `now` because a time-based algorithm (CUBIC's
//! W_cubic(t)) needs it, and an ACK carries the smoothed RTT because CUBIC aims one RTT
//! ahead (RFC 9438 §4.2) and the flight because CUBIC does not grow a window the sender is
//! not using (§5.8); NewReno ignores all three.

mod cubic;
mod flight_peak;
mod hystart;
mod newreno;

pub use cubic::Cubic;
pub use flight_peak::FlightPeak;
pub use hystart::{AckSample, HyStartEvent};
pub use newreno::NewReno;

use crate::time::Instant;

/// Which congestion controller new connections get (`TcpConfig::congestion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CongestionAlgorithm {
    /// RFC 9438: the default, as in Linux, Windows and Apple's stacks; regains the window
    /// after a loss in time independent of the RTT.
    #[default]
    Cubic,
    /// RFC 5681 / RFC 6582.
    NewReno,
}

impl CongestionAlgorithm {
    /// The Linux module of the same algorithm (`TCP_CONGESTION`'s name): what the kernel
    /// path's sockets are given, so a port behaves alike whichever path serves it.
    pub fn linux_name(self) -> &'static str {
        match self {
            CongestionAlgorithm::Cubic => "cubic",
            CongestionAlgorithm::NewReno => "reno",
        }
    }
}

/// RFC 6928 IW10 (RFC 5681 §3.1 allows up to 4 segments; the IW10 experiment is what Linux
/// ships): min(10*MSS, max(2*MSS, 14600)).
fn initial_window(smss: u32) -> u32 {
    (10 * smss).min((2 * smss).max(14600))
}

/// RFC 6582 §3.2 step 3 partial acknowledgment: deflate by the amount acked, add back one
/// SMSS if that was at least one SMSS.
fn partial_ack_window(cwnd: u32, acked: u32, smss: u32) -> u32 {
    let cwnd = cwnd.saturating_sub(acked);
    if acked >= smss {
        cwnd.saturating_add(smss)
    } else {
        cwnd
    }
}

/// RFC 6582 §3.2 step 3 full acknowledgment: deflate the window to
/// min(ssthresh, max(FlightSize, SMSS) + SMSS).
fn recovery_end_window(ssthresh: u32, flight: u32, smss: u32) -> u32 {
    ssthresh.min(flight.max(smss).saturating_add(smss))
}

/// A window of `bytes` at segments of `old` bytes, counted again at segments of `new` bytes:
/// the same number of segments. `u32::MAX` (an ssthresh not yet set) stays unbounded.
fn rescale(bytes: u32, old: u32, new: u32) -> u32 {
    if bytes == u32::MAX {
        return bytes;
    }
    u32::try_from(u64::from(bytes) * u64::from(new) / u64::from(old.max(1))).unwrap_or(u32::MAX)
}

/// The events a connection reports to its congestion controller, and the two values it asks
/// for. Sizes are in bytes; `flight` is RFC 5681's FlightSize (SND.MAX - SND.UNA).
pub trait CongestionControl {
    /// The congestion window, cwnd.
    fn window(&self) -> u32;

    /// The slow start threshold, ssthresh.
    fn ssthresh(&self) -> u32;

    /// New data was acknowledged outside fast recovery: `s.acked` bytes, with `s.flight` the
    /// FlightSize before this ACK (how much of the window the sender was using), `s.srtt` the
    /// connection's smoothed RTT (RFC 6298), and what HyStart++ (RFC 9406) reads: this ACK's
    /// RTT sample, SEG.ACK and SND.MAX. Returns what HyStart++ decided, if anything, for the
    /// connection's counters.
    fn on_ack(&mut self, s: &AckSample) -> Option<HyStartEvent>;

    /// The third duplicate ACK: fast retransmit, and fast recovery begins.
    fn on_fast_retransmit(&mut self, flight: u32, now: Instant);

    /// Recovery is SACK-based (RFC 6675 §5, step 4.2): the window is ssthresh, without the
    /// three segments of inflation `on_fast_retransmit` added, and no duplicate ACK inflates
    /// it further: the connection's pipe counts what has left the network.
    fn on_sack_recovery(&mut self);

    /// A further duplicate ACK during fast recovery (without SACK): one more segment has
    /// left the network.
    fn on_dup_ack_in_recovery(&mut self);

    /// An ACK of new data that does not end fast recovery (RFC 6582 partial acknowledgment).
    fn on_partial_ack(&mut self, acked: u32);

    /// An ACK that covers everything outstanding when recovery began: fast recovery ends.
    fn on_recovery_end(&mut self, flight: u32);

    /// The retransmission timer expired (with data outstanding, window open).
    fn on_rto(&mut self, flight: u32, now: Instant);

    /// An ACK carried ECN-Echo (RFC 3168 §6.1.2): a router marked a segment instead of
    /// dropping it. The same reduction as a loss, once per window of data (the connection
    /// decides when), with nothing to retransmit: cwnd = ssthresh at once.
    fn on_ecn_echo(&mut self, flight: u32, now: Instant);

    /// A path MTU message lowered the sender's MSS to `smss` (RFC 1191, RFC 8201). Not a
    /// congestion signal: the window keeps its number of segments, as Linux's does (its
    /// cwnd and ssthresh are counted in packets, and `tcp_simple_retransmit` leaves them
    /// alone), so every byte figure the controller holds is scaled by the new SMSS over the
    /// old. Fewer bytes then fit the same window: the packets the path dropped were the
    /// larger ones, and the same count of smaller ones puts no more data in flight.
    fn on_mss_change(&mut self, smss: u32);
}

/// The congestion controller a connection holds, inline (see the module doc for why an enum).
///
/// `repr(C)` puts every variant's payload at one offset, and each controller keeps `cwnd` as
/// its first field (also `repr(C)`), so `window()` -- asked for on every transmission -- is the
/// same load whatever the variant and compiles to no branch.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub enum Congestion {
    NewReno(NewReno),
    Cubic(Cubic),
}

impl Congestion {
    /// A fresh controller of `algorithm` for a connection sending `smss`-byte segments; its
    /// first slow start uses HyStart++ (RFC 9406) if `hystart`.
    pub fn new(algorithm: CongestionAlgorithm, hystart: bool, smss: u32) -> Self {
        match algorithm {
            CongestionAlgorithm::Cubic => Congestion::Cubic(Cubic::new(smss, hystart)),
            CongestionAlgorithm::NewReno => Congestion::NewReno(NewReno::new(smss, hystart)),
        }
    }
}

impl CongestionControl for Congestion {
    fn window(&self) -> u32 {
        match self {
            Congestion::NewReno(c) => c.window(),
            Congestion::Cubic(c) => c.window(),
        }
    }

    fn ssthresh(&self) -> u32 {
        match self {
            Congestion::NewReno(c) => c.ssthresh(),
            Congestion::Cubic(c) => c.ssthresh(),
        }
    }

    fn on_ack(&mut self, s: &AckSample) -> Option<HyStartEvent> {
        match self {
            Congestion::NewReno(c) => c.on_ack(s),
            Congestion::Cubic(c) => c.on_ack(s),
        }
    }

    fn on_fast_retransmit(&mut self, flight: u32, now: Instant) {
        match self {
            Congestion::NewReno(c) => c.on_fast_retransmit(flight, now),
            Congestion::Cubic(c) => c.on_fast_retransmit(flight, now),
        }
    }

    fn on_sack_recovery(&mut self) {
        match self {
            Congestion::NewReno(c) => c.on_sack_recovery(),
            Congestion::Cubic(c) => c.on_sack_recovery(),
        }
    }

    fn on_dup_ack_in_recovery(&mut self) {
        match self {
            Congestion::NewReno(c) => c.on_dup_ack_in_recovery(),
            Congestion::Cubic(c) => c.on_dup_ack_in_recovery(),
        }
    }

    fn on_partial_ack(&mut self, acked: u32) {
        match self {
            Congestion::NewReno(c) => c.on_partial_ack(acked),
            Congestion::Cubic(c) => c.on_partial_ack(acked),
        }
    }

    fn on_recovery_end(&mut self, flight: u32) {
        match self {
            Congestion::NewReno(c) => c.on_recovery_end(flight),
            Congestion::Cubic(c) => c.on_recovery_end(flight),
        }
    }

    fn on_rto(&mut self, flight: u32, now: Instant) {
        match self {
            Congestion::NewReno(c) => c.on_rto(flight, now),
            Congestion::Cubic(c) => c.on_rto(flight, now),
        }
    }

    fn on_ecn_echo(&mut self, flight: u32, now: Instant) {
        match self {
            Congestion::NewReno(c) => c.on_ecn_echo(flight, now),
            Congestion::Cubic(c) => c.on_ecn_echo(flight, now),
        }
    }

    fn on_mss_change(&mut self, smss: u32) {
        match self {
            Congestion::NewReno(c) => c.on_mss_change(smss),
            Congestion::Cubic(c) => c.on_mss_change(smss),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cubic_is_the_default_and_each_algorithm_builds_its_controller() {
        assert_eq!(CongestionAlgorithm::default(), CongestionAlgorithm::Cubic);
        assert_eq!(
            crate::tcp::TcpConfig::default().congestion,
            CongestionAlgorithm::Cubic
        );
        assert!(matches!(
            Congestion::new(CongestionAlgorithm::Cubic, true, 1000),
            Congestion::Cubic(_)
        ));
        assert!(matches!(
            Congestion::new(CongestionAlgorithm::NewReno, true, 1000),
            Congestion::NewReno(_)
        ));
    }

    #[test]
    fn the_controller_stays_small() {
        // It lives inline in every connection slot: CUBIC's 64 bytes plus HyStart++'s 36
        // (RFC 9406's round and RTT state, and the ACK train's), under two cache lines.
        let size = std::mem::size_of::<Congestion>();
        assert!(size <= 104, "{size} bytes");
    }
}

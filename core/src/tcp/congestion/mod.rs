//! Congestion control: how large the congestion window is, apart from when the connection
//! retransmits.
//!
//! The connection runs loss recovery -- it counts duplicate ACKs, decides when fast
//! retransmit and fast recovery start and end (RFC 5681 §3.2, RFC 6582 `recover`), what to
//! retransmit, and when the retransmission timer fires -- and reports each of those events
//! here. A [`CongestionControl`] answers only with window arithmetic: `cwnd` and `ssthresh`.
//! That is the split Linux makes between its recovery state machine and its
//! `tcp_congestion_ops`, and smoltcp between its socket and its `congestion` controllers, and
//! it is what lets a second algorithm (CUBIC, RFC 9438, from a later issue) replace NewReno's
//! growth and reduction without touching recovery.
//!
//! Dispatch is static: [`Congestion`] is an enum over the implementations, stored inline in
//! the connection. A `Box<dyn CongestionControl>` would be one more heap allocation per
//! connection and an indirect call on every ACK; a generic `Conn<C>` would make the endpoint
//! and its slot table generic too, and fix one algorithm per endpoint where comparing two
//! wants them side by side. With one variant
//! the `match` compiles away; with two it is a predictable branch on a byte the connection
//! already has in cache. The events carry `now` because a time-based algorithm (CUBIC's
//! W_cubic(t)) needs it; NewReno ignores it.

mod newreno;

pub use newreno::NewReno;

use crate::time::Instant;

/// The events a connection reports to its congestion controller, and the two values it asks
/// for. Sizes are in bytes; `flight` is RFC 5681's FlightSize (SND.MAX - SND.UNA).
pub trait CongestionControl {
    /// The congestion window, cwnd.
    fn window(&self) -> u32;

    /// The slow start threshold, ssthresh. Only tests read it for now (the connection needs
    /// the window alone); comparing algorithms will.
    #[cfg_attr(not(test), allow(dead_code))]
    fn ssthresh(&self) -> u32;

    /// `acked` bytes of new data were acknowledged outside fast recovery.
    fn on_ack(&mut self, acked: u32, now: Instant);

    /// The third duplicate ACK: fast retransmit, and fast recovery begins.
    fn on_fast_retransmit(&mut self, flight: u32, now: Instant);

    /// A further duplicate ACK during fast recovery: one more segment has left the network.
    fn on_dup_ack_in_recovery(&mut self);

    /// An ACK of new data that does not end fast recovery (RFC 6582 partial acknowledgment).
    fn on_partial_ack(&mut self, acked: u32);

    /// An ACK that covers everything outstanding when recovery began: fast recovery ends.
    fn on_recovery_end(&mut self, flight: u32);

    /// The retransmission timer expired (with data outstanding, window open).
    fn on_rto(&mut self, flight: u32, now: Instant);
}

/// The congestion controller a connection holds, inline (see the module doc for why an enum).
#[derive(Debug, Clone, Copy)]
pub enum Congestion {
    NewReno(NewReno),
}

impl CongestionControl for Congestion {
    fn window(&self) -> u32 {
        match self {
            Congestion::NewReno(c) => c.window(),
        }
    }

    fn ssthresh(&self) -> u32 {
        match self {
            Congestion::NewReno(c) => c.ssthresh(),
        }
    }

    fn on_ack(&mut self, acked: u32, now: Instant) {
        match self {
            Congestion::NewReno(c) => c.on_ack(acked, now),
        }
    }

    fn on_fast_retransmit(&mut self, flight: u32, now: Instant) {
        match self {
            Congestion::NewReno(c) => c.on_fast_retransmit(flight, now),
        }
    }

    fn on_dup_ack_in_recovery(&mut self) {
        match self {
            Congestion::NewReno(c) => c.on_dup_ack_in_recovery(),
        }
    }

    fn on_partial_ack(&mut self, acked: u32) {
        match self {
            Congestion::NewReno(c) => c.on_partial_ack(acked),
        }
    }

    fn on_recovery_end(&mut self, flight: u32) {
        match self {
            Congestion::NewReno(c) => c.on_recovery_end(flight),
        }
    }

    fn on_rto(&mut self, flight: u32, now: Instant) {
        match self {
            Congestion::NewReno(c) => c.on_rto(flight, now),
        }
    }
}

//! Quick ACKs: the receiver ACKs every data segment at once while a sender is starting up, as
//! Linux's quick-ACK mode does (`tcp_incr_quickack`, `tcp_enter_quickack_mode`).
//!
//! RFC 5681 §4.2 asks for an ACK at least every second full-sized segment and allows one for
//! every segment. Delaying every other ACK costs a sender in slow start (or one starting again
//! after an idle period) its growth: its window grows per ACK or per acknowledged byte, and the
//! odd segment at the end of each flight waits for the next flight or the delayed-ACK timer,
//! so it stays in flight and takes room in the next round. Measured with a Linux client
//! uploading 64 KiB over 20 ms (`loadgen paths`): with an ACK every second segment the second
//! round carried 18 segments where Linux's receiver, ACKing each, got 20, and the upload ended
//! 2-3 ms later in every repetition.
//!
//! So, as Linux: the first data of a connection, and the first after a silence longer than the
//! RTO (the sender restarts from a small window, RFC 5681 §4.1), grant
//! `min(window / (2 * MSS), 16)` quick ACKs (2 when that is 0); so does a duplicate segment
//! (the sender may be recovering, and our ACKs were lost or late), which also ends the
//! interactive mode below, as Linux's `tcp_enter_quickack_mode` does. Each ACK of new
//! in-order data that goes out spends one (Linux counts any ACK sent while one was due, so
//! ours errs towards more quick ACKs); `window` is the room the receive ring has, which is
//! what the window we announce grows to. A request answered within the same poll round
//! spends one on the answer it rides on, so it costs no extra segment; one answered later
//! (a proxied request waiting on its upstream) gets its bare ACK at once, as from Linux.
//!
//! A connection whose data we answer within the delayed-ACK time is interactive (Linux's
//! "pingpong" mode): its requests are answered soon enough for the ACK to ride on the answer,
//! so quick ACKs are not used there -- a proxied request after an idle pause would otherwise
//! cost a bare ACK before its answer. It stops being interactive when a delayed ACK has to be
//! sent on its own (nothing answered in time: the peer is sending, not asking), as Linux's
//! `tcp_delack_timer_handler` leaves pingpong mode.

use crate::time::{Duration, Instant};

/// Linux's `TCP_MAX_QUICKACKS`.
pub const MAX_QUICK_ACKS: u8 = 16;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuickAck {
    /// Quick ACKs left to send.
    left: u8,
    /// When data last arrived (none yet: the next is the connection's first).
    last_data: Option<Instant>,
    /// We answered data within the delayed-ACK time: request-response, no quick ACKs.
    interactive: bool,
}

impl QuickAck {
    /// New in-order data arrived at `now`; `window` the receive window we can announce,
    /// `mss` the peer's full segment, `rto` our retransmission timeout. Returns whether this
    /// segment is to be acknowledged at once.
    pub fn on_data(&mut self, now: Instant, window: u32, mss: u32, rto: Duration) -> bool {
        let restart = match self.last_data {
            None => true,
            Some(last) => now.saturating_duration_since(last) > rto,
        };
        self.last_data = Some(now);
        if restart {
            self.grant(window, mss);
        }
        self.left > 0 && !self.interactive
    }

    /// We sent data at `now`: within `delack` of the peer's last data it answers it, and
    /// the connection is interactive.
    pub fn on_data_sent(&mut self, now: Instant, delack: Duration) {
        if self
            .last_data
            .is_some_and(|last| now.saturating_duration_since(last) < delack)
        {
            self.interactive = true;
        }
    }

    /// The delayed-ACK timer fired with an ACK of data due: nothing answered it in time.
    pub fn on_delayed_ack_timeout(&mut self) {
        self.interactive = false;
    }

    /// A segment whose text we already held: the peer resent it, so its recovery goes better
    /// with our ACKs at once (Linux enters quick-ACK mode on old data).
    pub fn on_duplicate(&mut self, window: u32, mss: u32) {
        self.interactive = false;
        self.grant(window, mss);
    }

    /// An ACK of new data went out: one quick ACK spent.
    pub fn on_ack_sent(&mut self) {
        self.left = self.left.saturating_sub(1);
    }

    /// Quick ACKs left.
    #[cfg(test)]
    pub fn left(&self) -> u8 {
        self.left
    }

    fn grant(&mut self, window: u32, mss: u32) {
        let n = match window / mss.max(1).saturating_mul(2) {
            0 => 2,
            n => n.min(u32::from(MAX_QUICK_ACKS)) as u8,
        };
        self.left = self.left.max(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1448;
    const RTO: Duration = Duration::from_millis(200);

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn rfc5681_4_2_the_first_data_grants_sixteen_quick_acks_with_a_64k_window() {
        let mut q = QuickAck::default();
        for n in 0..16 {
            assert!(q.on_data(t(n), 65535, MSS, RTO), "segment {n}");
            q.on_ack_sent();
        }
        assert!(
            !q.on_data(t(17), 65535, MSS, RTO),
            "the 17th waits (delayed ACK)"
        );
    }

    #[test]
    fn a_small_window_grants_fewer() {
        let mut q = QuickAck::default();
        q.on_data(t(0), 8 * MSS, MSS, RTO);
        assert_eq!(q.left(), 4);
        let mut q = QuickAck::default();
        q.on_data(t(0), 3 * MSS, MSS, RTO);
        assert_eq!(q.left(), 1, "Linux's rounding: 3 / 2");
        let mut q = QuickAck::default();
        q.on_data(t(0), MSS, MSS, RTO);
        assert_eq!(q.left(), 2, "none would be 2");
    }

    #[test]
    fn rfc5681_4_1_data_after_a_silence_longer_than_the_rto_grants_them_again() {
        let mut q = QuickAck::default();
        q.on_data(t(0), 65535, MSS, RTO);
        for _ in 0..16 {
            q.on_ack_sent();
        }
        assert!(!q.on_data(t(150), 65535, MSS, RTO), "150 ms: not a restart");
        assert!(
            !q.on_data(t(350), 65535, MSS, RTO),
            "200 ms since the last: not beyond"
        );
        assert!(
            q.on_data(t(551), 65535, MSS, RTO),
            "201 ms: the sender restarts"
        );
        assert_eq!(q.left(), 16);
    }

    #[test]
    fn a_duplicate_segment_grants_them_and_never_lowers_what_is_left() {
        let mut q = QuickAck::default();
        q.on_data(t(0), 65535, MSS, RTO);
        for _ in 0..16 {
            q.on_ack_sent();
        }
        q.on_duplicate(4 * MSS, MSS);
        assert_eq!(q.left(), 2);
        q.on_duplicate(65535, MSS);
        q.on_duplicate(4 * MSS, MSS);
        assert_eq!(q.left(), 16);
        assert!(q.on_data(t(1), 65535, MSS, RTO));
    }

    #[test]
    fn an_answered_connection_gets_no_quick_acks_until_a_delayed_ack_goes_alone() {
        const DELACK: Duration = Duration::from_millis(40);
        let mut q = QuickAck::default();
        assert!(q.on_data(t(0), 65535, MSS, RTO));
        q.on_data_sent(t(41), DELACK);
        assert!(
            q.on_data(t(50), 65535, MSS, RTO),
            "answered after 41 ms: not interactive"
        );
        q.on_data_sent(t(51), DELACK);
        assert!(
            !q.on_data(t(1000), 65535, MSS, RTO),
            "answered in 1 ms: interactive"
        );
        q.on_delayed_ack_timeout();
        assert!(
            q.on_data(t(1001), 65535, MSS, RTO),
            "a lone delayed ACK: quick again"
        );
        q.on_data_sent(t(1002), DELACK);
        assert!(!q.on_data(t(2000), 65535, MSS, RTO), "interactive again");
        q.on_duplicate(65535, MSS);
        assert!(
            q.on_data(t(2001), 65535, MSS, RTO),
            "a resent segment ends it (Linux)"
        );
    }

    #[test]
    fn spending_stops_at_zero() {
        let mut q = QuickAck::default();
        q.on_ack_sent();
        assert_eq!(q.left(), 0);
        assert!(
            q.on_data(t(0), 0, 0, RTO),
            "a zero window or MSS still grants two"
        );
    }
}

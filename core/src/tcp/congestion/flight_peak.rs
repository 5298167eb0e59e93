//! The largest flight of the current round trip: what tells a congestion controller whether
//! the sender is using its window (RFC 9438 §5.8; RFC 7661's "validated" window), measured
//! when segments go out rather than when ACKs come in.
//!
//! The flight just before one ACK is a poor witness. ACKs often arrive together -- a
//! receiver's GRO, a router's queue, or simply the poller reading a batch of frames before it
//! transmits -- and the sender sends nothing between them, so each ACK of the batch sees the
//! flight the earlier ones shrank. From the third ACK on, the window looked unused and slow
//! start stopped growing: traced through the path emulator at 80 ms and 100 Mbit/s, the bypass
//! sent 18, 29, 56 segments in its second to fourth round trips where Linux sent 20, 40, 80.
//! Linux keeps the same peak (`max_packets_out`, held until `max_packets_seq` is acknowledged,
//! in `tcp_cwnd_validate`).

use crate::wire::SeqNumber;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlightPeak {
    /// The largest flight (SND.MAX - SND.UNA, bytes) seen after a transmission this round.
    bytes: u32,
    /// SND.MAX when `bytes` was set: once SND.UNA reaches it, that round is over and the next
    /// transmission starts a new peak.
    until: SeqNumber,
}

impl FlightPeak {
    /// A connection's first peak: nothing sent yet, the round ends at `snd_una`.
    pub fn new(snd_una: SeqNumber) -> Self {
        FlightPeak {
            bytes: 0,
            until: snd_una,
        }
    }

    /// After a transmission: `snd_max` and `snd_una` as they now stand.
    pub fn on_send(&mut self, snd_una: SeqNumber, snd_max: SeqNumber) {
        let flight = snd_max.distance_from(snd_una).unwrap_or(0);
        if snd_una.diff(self.until) >= 0 || flight > self.bytes {
            self.bytes = flight;
            self.until = snd_max;
        }
    }

    /// The peak, in bytes.
    pub fn bytes(&self) -> u32 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMSS: u32 = 1448;

    #[test]
    fn a_batch_of_acks_does_not_lower_the_peak_within_the_round() {
        let una = SeqNumber(1000);
        let mut peak = FlightPeak::new(una);
        peak.on_send(una, una + 10 * SMSS);
        assert_eq!(peak.bytes(), 10 * SMSS);
        // Three ACKs arrive before the next transmission: the round (up to una + 10 SMSS) is
        // not over, so the peak stays, and a larger flight raises it.
        peak.on_send(una + 3 * SMSS, una + 10 * SMSS);
        assert_eq!(peak.bytes(), 10 * SMSS, "held within the round");
        peak.on_send(una + 3 * SMSS, una + 16 * SMSS);
        assert_eq!(peak.bytes(), 13 * SMSS, "raised by a larger flight");
    }

    #[test]
    fn a_new_round_starts_from_the_flight_it_finds() {
        let una = SeqNumber(u32::MAX - 5000); // across the wrap
        let mut peak = FlightPeak::new(una);
        peak.on_send(una, una + 20 * SMSS);
        // Everything of that round acknowledged; the application sends little now.
        peak.on_send(una + 20 * SMSS, una + 22 * SMSS);
        assert_eq!(
            peak.bytes(),
            2 * SMSS,
            "the application-limited round shows"
        );
    }
}

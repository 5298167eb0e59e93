//! The tail loss probe (RFC 8985 §7): when the last segments of a flight are lost, no later
//! segment draws the duplicate ACKs or SACK blocks that would reveal them, and without a probe
//! only the RTO (at least 200 ms here) resends them. Two smoothed RTTs after the last
//! transmission or ACK, the sender probes with one segment (new data if the peer's window
//! allows, else the last segment again); the ACK that answers carries SACK information RACK
//! turns into losses. This type holds the probe's state and decides its timeout and what its
//! ACK means; the connection sends it.

use crate::time::{Duration, Instant};
use crate::wire::SeqNumber;

/// RFC 8985 §7.2 WCDelAckT: the worst-case delayed-ACK time a PTO allows for when a single
/// segment is outstanding (the peer may be holding its ACK).
pub const WC_DEL_ACK_T: Duration = Duration::from_millis(200);
/// RFC 8985 §7.2: the PTO without an RTT sample.
const PTO_NO_SRTT: Duration = Duration::from_secs(1);

/// RFC 8985 §7.2 `TLP_calc_PTO`: 2 SRTT (1 s without a sample), plus WCDelAckT when one
/// segment is outstanding, and never later than the RTO would fire.
pub fn pto(
    srtt: Option<Duration>,
    one_segment_out: bool,
    now: Instant,
    rto_at: Instant,
) -> Instant {
    // In microseconds: this runs for every segment of new data sent.
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let mut pto = srtt.map_or(micros(PTO_NO_SRTT), |s| micros(s).saturating_mul(2));
    if one_segment_out {
        pto = pto.saturating_add(micros(WC_DEL_ACK_T));
    }
    Instant::from_micros(now.as_micros().saturating_add(pto)).min(rto_at)
}

/// What an ACK says about the probe in flight (RFC 8985 §7.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeAck {
    /// Nothing yet (or no probe).
    Pending,
    /// The probe is answered and repaired nothing (new data, or a redundant resend).
    Done,
    /// The resent probe repaired a lost segment: congestion control must react to a loss.
    RepairedLoss,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct LossProbe {
    /// TLP.end_seq: SND.NXT after the probe went out; `None` when none is in flight.
    end_seq: Option<SeqNumber>,
    /// TLP.is_retrans: the probe resent data.
    is_retrans: bool,
}

impl LossProbe {
    pub fn in_flight(&self) -> bool {
        self.end_seq.is_some()
    }

    /// A probe went out; `end` is SND.NXT after it.
    pub fn sent(&mut self, end: SeqNumber, is_retrans: bool) {
        self.end_seq = Some(end);
        self.is_retrans = is_retrans;
    }

    pub fn clear(&mut self) {
        self.end_seq = None;
    }

    /// RFC 8985 §7.4.2 `TLP_process_ack`. `dsack` is the ACK's D-SACK block if it has one,
    /// `dupack_without_sack` whether it is a duplicate ACK carrying no SACK option.
    pub fn on_ack(
        &mut self,
        ack: SeqNumber,
        dsack: Option<(SeqNumber, SeqNumber)>,
        dupack_without_sack: bool,
    ) -> ProbeAck {
        let Some(end) = self.end_seq else {
            return ProbeAck::Pending;
        };
        if ack.diff(end) < 0 {
            return ProbeAck::Pending;
        }
        let answer = if !self.is_retrans {
            // A probe of new data delivered.
            ProbeAck::Done
        } else if dsack.is_some_and(|(_, right)| right == end) {
            // The peer had the original: the resend was redundant.
            ProbeAck::Done
        } else if ack.diff(end) > 0 {
            // The probe repaired the single loss.
            ProbeAck::RepairedLoss
        } else if dupack_without_sack {
            ProbeAck::Done
        } else {
            return ProbeAck::Pending;
        };
        self.end_seq = None;
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn rfc8985_s7_2_pto_is_two_srtt_plus_wcdelackt_for_one_segment_capped_by_rto() {
        let now = Instant::from_secs(100);
        let far = now + ms(10_000);
        assert_eq!(pto(Some(ms(30)), false, now, far), now + ms(60));
        assert_eq!(pto(Some(ms(30)), true, now, far), now + ms(260));
        assert_eq!(pto(None, false, now, far), now + ms(1000));
        assert_eq!(pto(Some(ms(300)), false, now, now + ms(250)), now + ms(250));
    }

    #[test]
    fn rfc8985_s7_4_2_an_ack_beyond_a_resent_probe_is_a_repaired_loss() {
        let mut p = LossProbe::default();
        p.sent(SeqNumber(1000), true);
        assert_eq!(p.on_ack(SeqNumber(900), None, false), ProbeAck::Pending);
        // Covering the probe exactly, with SACK: could still be the original's; wait.
        assert_eq!(p.on_ack(SeqNumber(1000), None, false), ProbeAck::Pending);
        assert_eq!(
            p.on_ack(SeqNumber(1100), None, false),
            ProbeAck::RepairedLoss
        );
        assert!(!p.in_flight());
    }

    #[test]
    fn rfc8985_s7_4_2_a_dsack_of_the_probe_or_a_plain_dupack_means_it_was_redundant() {
        let mut p = LossProbe::default();
        p.sent(SeqNumber(1000), true);
        let dsack = Some((SeqNumber(900), SeqNumber(1000)));
        assert_eq!(p.on_ack(SeqNumber(1000), dsack, false), ProbeAck::Done);
        p.sent(SeqNumber(1000), true);
        assert_eq!(p.on_ack(SeqNumber(1000), None, true), ProbeAck::Done);
        // A probe of new data: delivered is all it means.
        p.sent(SeqNumber(2000), false);
        assert_eq!(p.on_ack(SeqNumber(2500), None, false), ProbeAck::Done);
    }
}

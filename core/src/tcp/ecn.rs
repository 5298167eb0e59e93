//! Explicit Congestion Notification (RFC 3168) on one connection, both halves.
//!
//! Negotiation happens in the handshake (`endpoint/syn_received.rs`): a client that sends an
//! ECN-setup SYN (ECE and CWR both set, §6.1.1) gets an ECN-setup SYN-ACK (ECE alone) from
//! the SYN cache when `TcpConfig::ecn` is on -- Linux's default, `tcp_ecn = 2`, answers the
//! same way and never asks itself, which is also all a server needs. A SYN answered by a
//! cookie alone (a flood, or the cache full) declines: the cookie has no bit left for it
//! (`syncookie.rs`), and declining costs only the marking, never correctness (Linux keeps
//! ECN in cookies only inside its timestamp, so a client without timestamps is declined
//! there too).
//!
//! Once negotiated:
//! - As the data sender (§6.1.1, §6.1.2): new data goes out ECT(0); retransmissions (§6.1.5),
//!   pure ACKs (§6.1.4) and window probes (§6.1.6) go out Not-ECT. An ACK with ECE reduces
//!   the window as a loss would, at most once per window of data (until SND.UNA passes what
//!   was outstanding at the reduction), and not again inside loss recovery, which already
//!   reduced it; the first new data segment after a reduction carries CWR.
//! - As the receiver (§6.1.3): a segment marked CE makes every ACK carry ECE until a
//!   segment with CWR arrives. The first CE is ACKed at once (Linux's quick ACK), so the
//!   sender hears of it within a round trip rather than a delayed-ACK timer later.
//!
//! What this state is: four bits and a sequence number, inline in the connection.

use crate::wire::{Ecn, SeqNumber, TcpFlags};

/// RFC 3168 state of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EcnState {
    /// Negotiated in the handshake.
    enabled: bool,
    /// Receiver: a CE arrived and no CWR since; every ACK carries ECE.
    echo: bool,
    /// Sender: the window was reduced; the next new data segment carries CWR.
    cwr_due: bool,
    /// Sender: a reduction happened and SND.UNA has not passed `recover` yet.
    reduced: bool,
    /// SND.MAX when the window was last reduced.
    recover: SeqNumber,
}

impl EcnState {
    pub fn new(enabled: bool) -> Self {
        EcnState {
            enabled,
            echo: false,
            cwr_due: false,
            reduced: false,
            recover: SeqNumber(0),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Receiver side of an arriving segment (§6.1.3): CWR ends the echo, CE (re)starts it
    /// (in that order, so a segment with both keeps it). Returns whether the ACK should go at
    /// once: the first CE of an echo.
    pub fn on_segment(&mut self, ecn: Ecn, flags: TcpFlags) -> bool {
        if !self.enabled {
            return false;
        }
        if flags.contains(TcpFlags::CWR) {
            self.echo = false;
        }
        if ecn == Ecn::Ce && !self.echo {
            self.echo = true;
            return true;
        }
        false
    }

    /// Sender side of an ACK (§6.1.2): whether its ECE calls for a window reduction now.
    /// Not while a reduction's window is still being acknowledged, nor in loss recovery.
    pub fn on_ack(
        &mut self,
        flags: TcpFlags,
        ack: SeqNumber,
        snd_max: SeqNumber,
        in_recovery: bool,
    ) -> bool {
        if !self.enabled {
            return false;
        }
        // The window of data the reduction answered is acknowledged only when the ACK covers
        // something sent after it (with nothing outstanding then, the ECEs that follow are
        // still echoes of the same mark, until our CWR reaches the receiver).
        if self.reduced && ack.diff(self.recover) > 0 {
            self.reduced = false;
        }
        if !flags.contains(TcpFlags::ECE) || self.reduced || in_recovery {
            return false;
        }
        self.reduced = true;
        self.recover = snd_max;
        self.cwr_due = true;
        true
    }

    /// A loss reduced the window (fast recovery or a timeout): §6.1.2 asks for CWR after any
    /// reduction, and the ECE that follows the same congestion is no second one.
    pub fn on_loss_reduction(&mut self, snd_max: SeqNumber) {
        if self.enabled {
            self.reduced = true;
            self.recover = snd_max;
            self.cwr_due = true;
        }
    }

    /// The flags and IP ECN field of an outgoing segment: `new_data` when it carries bytes
    /// never sent before (not a retransmission, not a window probe). ECE on every segment
    /// while echoing; CWR once, on the first new data after a reduction; ECT(0) on new data.
    pub fn outgoing(&mut self, new_data: bool) -> (TcpFlags, Ecn) {
        if !self.enabled {
            return (TcpFlags::empty(), Ecn::NotEct);
        }
        let mut flags = TcpFlags::empty();
        if self.echo {
            flags |= TcpFlags::ECE;
        }
        if !new_data {
            return (flags, Ecn::NotEct);
        }
        if self.cwr_due {
            self.cwr_due = false;
            flags |= TcpFlags::CWR;
        }
        (flags, Ecn::Ect0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    #[test]
    fn rfc3168_s6_1_3_ce_is_echoed_on_every_ack_until_cwr() {
        let mut e = EcnState::new(true);
        assert!(!e.on_segment(Ecn::Ect0, TcpFlags::ACK));
        assert_eq!(e.outgoing(false), (TcpFlags::empty(), Ecn::NotEct));
        assert!(
            e.on_segment(Ecn::Ce, TcpFlags::ACK),
            "the first CE is ACKed at once"
        );
        assert!(
            !e.on_segment(Ecn::Ce, TcpFlags::ACK),
            "later ones ride the echo"
        );
        for _ in 0..3 {
            assert_eq!(e.outgoing(false).0, TcpFlags::ECE);
        }
        assert!(!e.on_segment(Ecn::Ect0, TcpFlags::ACK | TcpFlags::CWR));
        assert_eq!(e.outgoing(false).0, TcpFlags::empty(), "CWR ends the echo");
        // CWR and CE on one segment: the echo ends and starts again.
        e.on_segment(Ecn::Ce, TcpFlags::ACK);
        assert!(e.on_segment(Ecn::Ce, TcpFlags::ACK | TcpFlags::CWR));
        assert_eq!(e.outgoing(false).0, TcpFlags::ECE);
    }

    #[test]
    fn rfc3168_s6_1_2_ece_reduces_once_per_window_and_the_next_new_data_carries_cwr() {
        let mut e = EcnState::new(true);
        let ece = TcpFlags::ACK | TcpFlags::ECE;
        assert!(!e.on_ack(TcpFlags::ACK, s(100), s(1000), false));
        assert!(e.on_ack(ece, s(100), s(1000), false), "reduce");
        assert!(!e.on_ack(ece, s(500), s(1500), false), "same window: once");
        assert!(
            !e.on_ack(ece, s(1000), s(1500), false),
            "up to SND.MAX at the reduction"
        );
        assert!(e.on_ack(ece, s(1001), s(2000), false), "beyond it: again");
        // CWR goes on the first new data only, never on a retransmission or a bare ACK.
        assert_eq!(e.outgoing(false), (TcpFlags::empty(), Ecn::NotEct));
        assert_eq!(e.outgoing(true), (TcpFlags::CWR, Ecn::Ect0));
        assert_eq!(e.outgoing(true), (TcpFlags::empty(), Ecn::Ect0));
    }

    #[test]
    fn rfc3168_s6_1_2_no_second_reduction_in_loss_recovery_or_for_the_same_congestion() {
        let mut e = EcnState::new(true);
        let ece = TcpFlags::ACK | TcpFlags::ECE;
        assert!(
            !e.on_ack(ece, s(100), s(1000), true),
            "recovery already reduced"
        );
        e.on_loss_reduction(s(2000));
        assert!(!e.on_ack(ece, s(2000), s(2500), false), "the loss's window");
        assert_eq!(
            e.outgoing(true).0,
            TcpFlags::CWR,
            "a loss's reduction is announced too"
        );
        assert!(e.on_ack(ece, s(2001), s(2500), false));
    }

    #[test]
    fn rfc3168_s6_1_1_not_negotiated_means_no_marks_no_echo_no_reduction() {
        let mut e = EcnState::new(false);
        assert!(!e.on_segment(Ecn::Ce, TcpFlags::ACK));
        assert!(!e.on_ack(TcpFlags::ACK | TcpFlags::ECE, s(1), s(2), false));
        e.on_loss_reduction(s(5));
        assert_eq!(e.outgoing(true), (TcpFlags::empty(), Ecn::NotEct));
        assert_eq!(e.outgoing(false), (TcpFlags::empty(), Ecn::NotEct));
    }

    #[test]
    fn rfc3168_s6_1_5_only_new_data_is_ect() {
        let mut e = EcnState::new(true);
        assert_eq!(e.outgoing(true).1, Ecn::Ect0);
        assert_eq!(
            e.outgoing(false).1,
            Ecn::NotEct,
            "retransmissions, ACKs, probes"
        );
    }
}

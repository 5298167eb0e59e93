//! Path MTU from ICMP errors (RFC 1191 for IPv4, RFC 8201 for IPv6): what a "fragmentation
//! needed" or "packet too big" message quoting one of this connection's segments does to it.
//!
//! A router that cannot forward a segment (DF is always set, and IPv6 routers never fragment)
//! drops it and says how large a packet its next hop takes. The connection checks the quote
//! is about a segment in flight (RFC 5927 §4.1: a blind attacker must guess a sequence number
//! in the window, as for a RST), takes the MTU no lower than the family's minimum, and, if
//! that is below what it sends, lowers its send MSS for good (never raised again: no RFC 4821
//! probing) and sends what is in flight again at the new size. The drop was the path's size,
//! not its load: the congestion window keeps its number of segments and no recovery episode
//! begins, as Linux's `tcp_simple_retransmit`.
//!
//! The endpoint also remembers the lowered MSS for the destination for ten minutes, as Linux
//! does (`endpoint/pmtu_cache.rs`): the next connections to that client start with it. The
//! receive side's measure of a full segment from the peer (delayed ACKs, window updates) goes
//! down with it, as RFC 9293's receiver SWS rule reads Eff.snd.MSS.

use super::{Conn, Ctx, Timer};
use crate::tcp::congestion::CongestionControl;
use crate::wire::SeqNumber;

/// The IPv4 path MTU a message may lower a connection to; a smaller MTU is taken as this.
///
/// 576, not RFC 1191 §3's 68 or Linux's `min_pmtu` 552: every IPv4 host takes 576-byte
/// datagrams (RFC 791, RFC 1122 §3.3.3), and RFC 9293 §3.7.1 assumes a 536-byte MSS (576 less
/// 40 of headers) of any peer that names none, so with this floor a forged message (RFC 5927
/// §7) can push a connection no lower than a peer could have asked for itself. Linux's 24
/// bytes less come with clearing DF on the clamped path so routers may fragment; the engine
/// always sets DF, so below 576 the clamp would not make a packet fit either way.
pub const MIN_PMTU_IPV4: u32 = 576;

/// The IPv6 minimum link MTU (RFC 8200 §5). RFC 8201 §4: a message reporting less is
/// discarded.
pub const MIN_PMTU_IPV6: u32 = 1280;

/// The TCP header without options: option bytes are `max_payload`'s to subtract, per segment.
const TCP_HEADER: u32 = 20;

/// What a path MTU message did to the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PmtuVerdict {
    /// The send MSS went down to this and what was in flight is being sent again.
    Lowered(u16),
    /// The MTU was not below what the connection sends: nothing to do.
    Unchanged,
    /// The quoted sequence number is not in flight (RFC 5927 §4.1).
    Stale,
    /// An IPv6 MTU below 1280 (RFC 8201 §4).
    BelowMinimum,
}

impl Conn {
    /// A path MTU message quoting this connection's segment at `seq` reports `mtu`.
    pub fn on_path_mtu(&mut self, cx: &mut Ctx, mtu: u32, seq: SeqNumber) -> PmtuVerdict {
        // RFC 5927 §4.1: SND.UNA <= SEG.SEQ < SND.NXT, with SND.MAX as SND.NXT (a timeout
        // rewinds SND.NXT; what went out before it is still what a router may have dropped).
        let flight = self.snd_max.distance_from(self.snd_una).unwrap_or(0);
        if !seq.in_window(self.snd_una, flight) {
            return PmtuVerdict::Stale;
        }
        let (mtu, ip_header) = if self.flow.is_ipv6() {
            if mtu < MIN_PMTU_IPV6 {
                return PmtuVerdict::BelowMinimum;
            }
            (mtu, 40)
        } else {
            (mtu.max(MIN_PMTU_IPV4), 20)
        };
        let mss = mtu - ip_header - TCP_HEADER;
        if mss >= self.smss {
            return PmtuVerdict::Unchanged;
        }
        self.lower_mss(cx, mss);
        PmtuVerdict::Lowered(mss as u16)
    }

    /// From now on at most `mss` bytes of TCP options and payload per segment (the MSS, from
    /// which `max_payload` takes each segment's option bytes, RFC 6691), and everything in
    /// flight again at that size.
    fn lower_mss(&mut self, cx: &mut Ctx, mss: u32) {
        let now = cx.now;
        self.smss = mss;
        self.cc.on_mss_change(mss);
        if self.in_recovery {
            // Linux leaves its recovery state for the loss state here; the reduction that
            // recovery made stands, and the go-back-N below resends what it had yet to.
            let flight = self.snd_max.distance_from(self.snd_una).unwrap_or(0);
            let flight = if self.sack_ok {
                flight.max(self.cc.ssthresh())
            } else {
                flight
            };
            self.cc.on_recovery_end(flight);
            self.rack.on_recovery_end();
            self.in_recovery = false;
        }
        // Everything in flight went out at the old size, and a router drops every one that
        // is too large: go back N as a timeout does (the resend skips what the peer SACKed),
        // but with no backoff and no window reduction. Until the cumulative ACK passes
        // `recover`, the duplicate ACKs and RACK marks this resend draws start no recovery
        // (the guard a timeout's go-back-N has). The few segments in flight that did fit
        // (a short tail) go again too; Linux resends only those longer than the new MSS,
        // which needs a per-segment record a connection without SACK does not keep.
        self.snd_nxt = self.snd_una;
        self.recover = self.snd_max;
        self.dupacks = 0;
        self.rtx_one = false;
        self.probe.clear();
        self.probe_due = false;
        self.timers.stop(Timer::LossProbe);
        self.timers.stop(Timer::Reorder);
        self.rtt.stop_timing();
        self.pmtu_resend = true;
        // The resend goes out now; an RTO armed for the dropped segments would fire on it.
        self.timers.set(Timer::Retransmit, now + self.rtt.rto());
    }
}

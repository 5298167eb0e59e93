//! SYN-RECEIVED flows held in the SYN cache (`syn_cache.rs`): the SYN that makes an entry, the
//! SYN-ACK sent from it and retransmitted on a timer, and what arrives before the connection
//! exists (RFC 9293 §3.10.7.4 in SYN-RECEIVED, RFC 5961 for RSTs and SYNs). A SYN the cache
//! has no room for goes to the cookie front, and so does an ACK whose entry is gone.

use super::syn_cache::{LinkAddrs, SynEntry};
use super::{Endpoint, Reply};
use crate::tcp::config::DropReason;
use crate::tcp::conn::{Negotiated, Seg};
use crate::tcp::FlowKey;
use crate::time::{Duration, Instant};
use crate::wire::{FrameAddrs, SeqNumber, TcpFlags, TcpHeader, TcpOptions};

/// `SynCookies::ts_clock` from the flow's offset, without hashing the flow again.
fn ts_clock(now: Instant, ts_offset: u32) -> u32 {
    // Modulo 2^32 ms (RFC 7323 §5.4): truncation is intended.
    (now.as_millis() as u32).wrapping_add(ts_offset)
}

impl Endpoint {
    /// A SYN for a flow with neither a connection nor a TIME_WAIT record (LISTEN): an entry
    /// in `free` (a free way of its bucket) and a SYN-ACK from it while the second's budget
    /// allows, else a cookie alone (module docs of `syn_cache.rs`).
    pub(super) fn syn_in_listen(
        &mut self,
        now: Instant,
        flow: FlowKey,
        addrs: &FrameAddrs,
        t: &TcpHeader,
        seg: &Seg,
        free: Option<u32>,
    ) -> Result<(), DropReason> {
        let (req, cookie) = self.syn_cookie(now, &flow, t, seg)?;
        if !self.syn_cache.enabled() {
            return self.reply_cookie(flow, addrs, seg, &req, cookie);
        }
        let Some(idx) = free else {
            self.stats.syn_cache_overflows += 1;
            return self.reply_cookie(flow, addrs, seg, &req, cookie);
        };
        // The cookie's TSval already holds the flow's clock offset; without timestamps it is
        // hashed once, here.
        let ts_offset = match cookie.tsval {
            Some(ts) => ts.wrapping_sub(now.as_millis() as u32),
            None => self.cookies.ts_offset(&flow),
        };
        let entry = SynEntry {
            flow,
            reply_link: LinkAddrs::of(&addrs.reversed()),
            irs: seg.seq,
            iss: cookie.isn,
            mss: req.mss,
            window_scale: req.offered_window_scale(),
            sack_permitted: req.offered_sack(),
            ts_recent: req.tsval,
            ts_offset,
            retries: 0,
            ecn: self.cfg.ecn && t.flags.contains(TcpFlags::ECE | TcpFlags::CWR),
        };
        let deadline = now + self.syn_ack_rto(0);
        if self.syn_cache.insert_at(now, idx, entry, deadline) {
            self.stats.syn_cache_added += 1;
            self.syn_hints.remember(flow, seg.seq);
            self.send_syn_ack(now, idx);
            Ok(())
        } else {
            self.stats.syn_cache_overflows += 1;
            self.reply_cookie(flow, addrs, seg, &req, cookie)
        }
    }

    /// A segment for a flow with a cache entry (SYN-RECEIVED).
    pub(super) fn syn_received_segment(
        &mut self,
        now: Instant,
        idx: u32,
        addrs: &FrameAddrs,
        t: &TcpHeader,
        seg: &Seg,
    ) -> Result<(), DropReason> {
        let Some(e) = self.syn_cache.get(idx).copied() else {
            return Ok(());
        };
        let rcv_nxt = e.irs + 1u32;
        let rcv_wnd = u32::from(self.cfg.syn_window());
        if seg.rst {
            self.stats.rsts_in += 1;
            // RFC 5961 §3.2 (RFC 9293 §3.10.7.4, second check): a RST exactly at RCV.NXT
            // ends the attempt ("return this connection to LISTEN"); one elsewhere in the
            // window draws a challenge ACK; one outside it is dropped. Same rule as for
            // connections.
            if seg.seq == rcv_nxt {
                self.syn_cache.remove(idx);
                self.stats.syn_cache_reset += 1;
                return Ok(());
            }
            if seg.seq.in_window(rcv_nxt, rcv_wnd)
                && self.challenge.allow_challenge(now, &mut self.stats)
            {
                self.syn_received_ack(now, &e);
            }
            return Err(DropReason::RstNotExact);
        }
        match (seg.syn, seg.ack) {
            (true, None) => {
                if seg.seq == e.irs {
                    // A retransmitted SYN: our SYN-ACK was lost; the same one again (same
                    // ISN and options), TS.Recent from this SYN.
                    if let (Some(entry), Some((tsval, _))) = (self.syn_cache.get_mut(idx), seg.ts) {
                        if entry.ts_recent.is_some() {
                            entry.ts_recent = Some(tsval);
                        }
                    }
                    self.stats.syn_ack_retransmits += 1;
                    self.send_syn_ack(now, idx);
                    Ok(())
                } else {
                    // Another ISN: the client started over (it gave up on this attempt, or
                    // reuses the port); the old entry goes and the SYN is a new one.
                    self.syn_cache.remove(idx);
                    self.syn_in_listen(now, e.flow, addrs, t, seg, Some(idx))
                }
            }
            // RFC 5961 §4: a SYN-ACK where a SYN was answered: challenge ACK.
            (true, Some(_)) => {
                if self.challenge.allow_challenge(now, &mut self.stats) {
                    self.syn_received_ack(now, &e);
                }
                Err(DropReason::SynInSync)
            }
            // RFC 9293 §3.10.7.4, fifth: "if the ACK bit is off, drop the segment".
            (false, None) => Err(DropReason::NoAck),
            (false, Some(ack)) => {
                // First check: the acceptability test against the SYN-ACK's window.
                let len = seg.len();
                let acceptable = seg.seq.in_window(rcv_nxt, rcv_wnd.max(1))
                    || (len > 0 && (seg.seq + (len - 1)).in_window(rcv_nxt, rcv_wnd));
                if !acceptable {
                    self.syn_received_ack(now, &e);
                    return Err(DropReason::OutOfWindow);
                }
                // Fifth check: SND.UNA < SEG.ACK =< SND.NXT, i.e. our SYN and nothing else;
                // else "<SEQ=SEG.ACK><CTL=RST>" and the entry stays.
                if ack != e.iss + 1u32 {
                    self.queue_rst(addrs, t, seg);
                    return Err(DropReason::BadAck);
                }
                self.syn_cache.remove(idx);
                self.stats.syn_cache_completed += 1;
                // Timestamps are used if the client offered them and still sends them (as
                // for a cookie ACK).
                let timestamps = e.ts_recent.is_some() && seg.ts.is_some();
                let neg = Negotiated {
                    iss: e.iss,
                    irs: e.irs,
                    peer_mss: e.flow.peer_mss(e.mss),
                    window_scale: e.window_scale,
                    sack_permitted: e.sack_permitted,
                    timestamps,
                    ts_offset: e.ts_offset,
                    ecn: e.ecn,
                };
                if e.ecn {
                    self.stats.ecn_negotiated += 1;
                }
                self.establish(now, e.flow, addrs, t, seg, &neg)
            }
        }
    }

    /// Entries whose SYN-ACK timer fired: sent again with the RTO doubled, or, after
    /// `syn_ack_retries` retransmissions, dropped. Bounded: each entry at most once per call.
    pub(super) fn syn_cache_timeouts(&mut self, now: Instant) {
        let mut budget = self.syn_cache.len();
        // With the reply queue full, the rest waits for the next call (their deadlines stay
        // due, so `poll_timeout` asks for it at once) rather than being lost.
        while budget > 0 && self.stateless.len() < self.cfg.max_stateless_replies {
            let Some(idx) = self.syn_cache.pop_due(now) else {
                break;
            };
            budget -= 1;
            let retries = self.cfg.syn_ack_retries;
            let Some(e) = self.syn_cache.get_mut(idx) else {
                continue;
            };
            if e.retries >= retries {
                self.syn_cache.remove(idx);
                self.stats.syn_cache_expired += 1;
                continue;
            }
            e.retries += 1;
            let sent = e.retries;
            let rto = self.syn_ack_rto(sent);
            self.syn_cache.set_deadline(idx, now + rto);
            self.stats.syn_ack_retransmits += 1;
            self.send_syn_ack(now, idx);
        }
    }

    /// RFC 6298 §5.5-style backoff for the SYN-ACK: `initial_rto` doubled per retransmission,
    /// at most `max_rto`.
    fn syn_ack_rto(&self, retries: u8) -> Duration {
        let factor = 1u32 << retries.min(16);
        self.cfg
            .initial_rto
            .saturating_mul(factor)
            .min(self.cfg.max_rto)
    }

    /// The SYN-ACK of the entry at `idx`, queued.
    fn send_syn_ack(&mut self, now: Instant, idx: u32) {
        let Some(e) = self.syn_cache.get(idx) else {
            return;
        };
        let hdr = self.syn_ack_header(
            &e.flow,
            e.iss,
            e.irs,
            e.window_scale.is_some(),
            e.sack_permitted,
            e.ts_recent.map(|ecr| (ts_clock(now, e.ts_offset), ecr)),
            e.ecn,
        );
        let addrs = e.reply_addrs();
        self.queue_reply(Reply { addrs, hdr });
    }

    /// The SYN-ACK for client ISN `irs` with our ISN `iss`: our MSS, and window scale, SACK
    /// and timestamps (TSval, TSecr) exactly when the client offered them; with `ecn`, an
    /// ECN-setup SYN-ACK (ECE alone, RFC 3168 §6.1.1; it is itself Not-ECT).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn syn_ack_header(
        &self,
        flow: &FlowKey,
        iss: SeqNumber,
        irs: SeqNumber,
        window_scale: bool,
        sack_permitted: bool,
        timestamps: Option<(u32, u32)>,
        ecn: bool,
    ) -> TcpHeader {
        let options = TcpOptions {
            mss: Some(flow.local_mss(self.cfg.mss)),
            window_scale: window_scale.then_some(self.cfg.window_scale.min(14)),
            sack_permitted,
            timestamps,
            ..TcpOptions::default()
        };
        TcpHeader {
            src_port: flow.local_port(),
            dst_port: flow.remote_port(),
            seq: iss,
            ack: irs + 1u32,
            flags: if ecn {
                TcpFlags::SYN | TcpFlags::ACK | TcpFlags::ECE
            } else {
                TcpFlags::SYN | TcpFlags::ACK
            },
            // RFC 7323 §2.2: the window in a SYN-ACK is never scaled.
            window: self.cfg.syn_window(),
            urgent: 0,
            options,
        }
    }

    /// `<SEQ=ISS+1><ACK=RCV.NXT><CTL=ACK>`: the answer to an unacceptable segment and the
    /// challenge ACK in SYN-RECEIVED.
    fn syn_received_ack(&mut self, now: Instant, e: &SynEntry) {
        let timestamps = e.ts_recent.map(|ecr| (ts_clock(now, e.ts_offset), ecr));
        let hdr = TcpHeader {
            src_port: e.flow.local_port(),
            dst_port: e.flow.remote_port(),
            seq: e.iss + 1u32,
            ack: e.irs + 1u32,
            flags: TcpFlags::ACK,
            window: self.cfg.syn_window(),
            urgent: 0,
            options: TcpOptions {
                timestamps,
                ..TcpOptions::default()
            },
        };
        self.queue_reply(Reply {
            addrs: e.reply_addrs(),
            hdr,
        });
    }
}

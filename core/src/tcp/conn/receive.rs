//! The receive side of a connection: the segment text placed in the receive ring (in order,
//! or out of order through the assembler), the delayed ACK, and the window updates the
//! application's reads make due (RFC 9293 §3.10.7.4 seventh check, §3.8.6.2.2, RFC 5681 §4.2).

use super::{Conn, Ctx, Seg, Timer};
use crate::tcp::config::DropReason;
use crate::tcp::Event;
use crate::time::Duration;

impl Conn {
    /// Seventh check: place the text in the receive ring (in order or, via the assembler,
    /// out of order; the first copy of any byte wins) and note a FIN.
    pub(super) fn receive_data(&mut self, cx: &mut Ctx, seg: &Seg) -> Option<DropReason> {
        let mut data = seg.payload;
        let mut seq = seg.seq;
        let mut fin = seg.fin;
        // RFC 2883 §4: the first duplicated part of the text, for the next ACK's D-SACK block.
        let mut dup = None;
        // Trim what we already have.
        if let Some(skip) = self.rcv_nxt.distance_from(seq) {
            let skip = skip as usize;
            if skip > 0 && !data.is_empty() {
                dup = Some((seq, seq + skip.min(data.len())));
            }
            if skip > data.len() {
                // Even the FIN is old.
                data = &[];
                fin = false;
            } else {
                data = data.get(skip..).unwrap_or(&[]);
            }
            seq = self.rcv_nxt;
        }
        let off = seq.distance_from(self.rcv_nxt).unwrap_or(0) as usize;
        // Trim to the window we advertised and to the space the ring really has.
        let room = (self.rcv_wnd() as usize).min(self.rx.free());
        if off.saturating_add(data.len()) > room {
            data = data.get(..room.saturating_sub(off)).unwrap_or(&[]);
            fin = false;
        }
        let mut drop = None;
        if !data.is_empty() {
            cx.stats.bytes_in += data.len() as u64;
            let before = self.rcv_nxt;
            if off == 0 && self.asm.is_empty() {
                let n = self.rx.write(data);
                self.rcv_nxt = self.rcv_nxt + n;
            } else {
                // Only the parts nobody wrote yet: the first copy wins (RFC 9293 §3.10.7.4
                // leaves overlapping retransmissions to the implementation). What lies between
                // those parts is held already: a duplicate.
                let base = self.rcv_nxt;
                let mut held_from = off;
                let mut held = None;
                for (o, l) in self.asm.missing(off, data.len()) {
                    if held.is_none() && o > held_from {
                        held = Some((held_from, o));
                    }
                    held_from = o.saturating_add(l);
                    let part = o
                        .checked_sub(off)
                        .and_then(|s| data.get(s..s.saturating_add(l)))
                        .unwrap_or(&[]);
                    self.rx.write_at(o, part);
                }
                let seg_end = off.saturating_add(data.len());
                if held.is_none() && held_from < seg_end {
                    held = Some((held_from, seg_end));
                }
                if let (None, Some((a, b))) = (dup, held) {
                    dup = Some((base + a, base + b));
                }
                if off == 0 {
                    let extra = self.asm.take_front(data.len());
                    let n = self.rx.commit(data.len().saturating_add(extra));
                    self.rcv_nxt = self.rcv_nxt + n;
                } else {
                    cx.stats.out_of_order_segments += 1;
                    if self.asm.add(off, data.len()).is_err()
                        && !self.evict_ooo_above(off, data.len())
                    {
                        drop = Some(DropReason::OutOfOrderFull);
                        fin = false;
                    }
                }
                // Out of order, or a hole was filled: ACK at once (RFC 5681 §4.2, RFC 9293
                // §3.8.6.3) so the sender sees duplicate ACKs / SACK blocks / the fill.
                self.ack_now = true;
            }
            let advanced = self.rcv_nxt.distance_from(before).unwrap_or(0) as usize;
            if advanced > 0 {
                let ts_now = self.ts_now(cx.now);
                let full = data.len() >= self.full_segment() as usize;
                self.rcv_rtt.on_data(
                    cx.now,
                    seg.ts.filter(|_| self.ts_enabled),
                    full,
                    ts_now,
                    self.rcv_nxt,
                    self.rcv_right,
                );
                if !self.readable_signalled {
                    self.readable_signalled = true;
                    self.push_event(cx.events, Event::Readable(self.handle));
                }
                // Delayed ACK: at least every second full-sized segment (RFC 5681 §4.2);
                // every segment while the peer starts up (`quick_ack.rs`).
                self.unacked_bytes = self.unacked_bytes.saturating_add(advanced);
                let window = (self.rx.free() + advanced) as u32;
                let quick =
                    self.quick_ack
                        .on_data(cx.now, window, self.full_segment(), self.rtt.rto());
                if quick || self.unacked_bytes >= 2 * self.full_segment() as usize {
                    self.ack_now = true;
                } else if self.timers.get(Timer::DelayedAck).is_none() {
                    self.timers
                        .set(Timer::DelayedAck, cx.now + cx.cfg.delayed_ack);
                }
            }
        } else if !seg.payload.is_empty() {
            // Duplicate text: ACK at once so the peer stops, and the next ones too (its
            // recovery may have missed our ACKs).
            self.ack_now = true;
            let window = self.rx.free() as u32;
            self.quick_ack.on_duplicate(window, self.full_segment());
        }
        if let (true, Some(d)) = (self.sack_ok, dup) {
            self.dsack_out = Some(d);
            self.ack_now = true;
        }
        if fin {
            self.rx_fin = Some(seq + data.len());
            // A FIN beyond a hole is an out-of-order segment like any other: duplicate ACK at
            // once (RFC 5681 §4.2, RFC 9293 §3.8.6.3), so the peer learns where the hole is.
            if off > 0 {
                self.ack_now = true;
            }
        }
        drop
    }

    /// The out-of-order bound is reached: forget the held ranges furthest from RCV.NXT (above
    /// `off`) until `[off, off + len)` fits, as Linux prunes its out-of-order queue from the
    /// far end. The bytes nearest RCV.NXT are the ones that let the stream advance; far ranges
    /// will be retransmitted (RFC 2018 §8 allows the receiver to renege on SACKed data).
    /// Evicted bytes stay in place in the ring, so re-adding a range they cover stays correct.
    fn evict_ooo_above(&mut self, off: usize, len: usize) -> bool {
        while self.asm.last().is_some_and(|(o, _)| o > off) {
            self.asm.pop_last();
            if self.asm.add(off, len).is_ok() {
                return true;
            }
        }
        false
    }

    /// The application consumed `n` readable bytes: maybe the ring grows, maybe a window
    /// update is due. `delay` arms the delayed-ACK timer when the update need not go at once.
    pub fn consume(&mut self, cx: &mut Ctx, n: usize, delay: Duration) {
        let now = cx.now;
        let n = self.rx.consume(n);
        self.readable_signalled = false;
        self.grow_receive_buffer(cx, n);
        // Receiver-side SWS avoidance (RFC 9293 §3.8.6.2.2): announce a larger window only if
        // it grows by min(RCV.BUFF / 2, MSS), and only bother sending an update when the
        // window we advertised was down to half the buffer (a gateway's requests are small;
        // an update per request would double the packet rate).
        let cur = self.rcv_wnd();
        let avail = self.rx.free() as u32;
        let thresh = (self.rx.capacity() as u32 / 2).min(self.smss);
        if avail.saturating_sub(cur) < thresh || cur > self.rx.capacity() as u32 / 2 {
            return;
        }
        // How soon. With less than two full segments of window left the peer may be blocked
        // (or about to be): nothing it can still send would make us ACK at once (RFC 5681
        // §4.2 ACKs every second full segment), so the update goes now. With more, the peer is
        // not blocked: whatever it sends next either triggers an immediate ACK or arms the
        // delayed ACK, and every ACK carries the larger window. So the update rides on the
        // next segment we send anyway -- after the handshake (whose SYN-ACK window is capped
        // at 16 segments, see `TcpConfig::syn_window`) that is the response, which follows the
        // request within microseconds -- and the delayed-ACK timer (RFC 1122 §4.2.3.2: under
        // 0.5 s) bounds how late it can be if nothing else goes out.
        if cur < 2 * self.full_segment() {
            self.ack_now = true;
        } else if self.timers.get(Timer::DelayedAck).is_none() {
            self.timers.set(Timer::DelayedAck, now + delay);
        }
    }

    /// A full-sized segment from the peer: its MSS less the options it must carry.
    pub(super) fn full_segment(&self) -> u32 {
        self.smss
            .saturating_sub(if self.ts_enabled { 12 } else { 0 })
    }
}

//! The send log: each outstanding segment's end sequence number, last transmit time and
//! state (retransmitted, SACKed, marked lost), in sequence order -- what RACK (RFC 8985 §6)
//! and the tail loss probe (§7) need and the byte ring (`Conn::tx`) does not keep.
//!
//! A segment starts where the one before it ends (the first at `start`, SND.UNA once the log
//! has caught up with the cumulative ACK), so an entry is 16 bytes. The log is a ring of fixed
//! capacity, allocated with the connection's other buffers on a slot's first use and reused by
//! the next connection in the slot: nothing is allocated per segment. A retransmission that
//! covers part of an entry splits it, so that the part resent carries the new transmit time.
//!
//! When the log is full (many segments smaller than the MSS, the capacity being twice what
//! `tx_buffer / MSS` needs), it degrades rather than forgets: a new segment is merged into
//! the last entry, which takes the new transmit time, and a split that finds no room marks the
//! whole entry resent. Both make bytes look sent later than they were, so RACK takes them as
//! lost later (never sooner) than it would have, and the RTO stays the backstop.

use std::collections::VecDeque;

use super::sack::Scoreboard;
use crate::time::{Duration, Instant};
use crate::wire::SeqNumber;

/// The segment was sent more than once (RFC 8985 `Segment.retransmitted`).
const RETRANSMITTED: u8 = 1;
/// The peer reported holding the whole segment in a SACK block.
const SACKED: u8 = 2;
/// RACK marked it lost and it has not been resent since.
const LOST: u8 = 4;

/// One segment: `[previous end, end)`, sent last at `xmit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub end: SeqNumber,
    pub xmit: Instant,
    flags: u8,
}

impl Sent {
    pub fn retransmitted(&self) -> bool {
        self.flags & RETRANSMITTED != 0
    }
    fn sacked(&self) -> bool {
        self.flags & SACKED != 0
    }
    fn lost(&self) -> bool {
        self.flags & LOST != 0
    }
}

/// Entries per byte of the send buffer: room for segments of half the MSS on average.
pub fn capacity_for(tx_buffer: usize, mss: u16) -> usize {
    (tx_buffer / usize::from(mss / 2).max(1)).clamp(16, 8192)
}

#[derive(Debug)]
pub struct SendLog {
    /// Start of the first entry.
    start: SeqNumber,
    entries: VecDeque<Sent>,
    /// Fixed but for `grow`: the log never grows past what it was allocated with.
    cap: usize,
    /// Entries with `SACKED` (RFC 8985 `RACK.segs_sacked`).
    sacked: u32,
}

impl SendLog {
    /// Room for `cap` entries (0: a placeholder that allocates nothing and logs nothing).
    pub fn new(cap: usize) -> Self {
        SendLog {
            start: SeqNumber(0),
            entries: VecDeque::with_capacity(cap),
            cap,
            sacked: 0,
        }
    }

    /// Room for `cap` entries from now on (the send buffer grew); never shrinks.
    pub fn grow(&mut self, cap: usize) {
        if cap > self.cap {
            self.entries.reserve(cap - self.entries.len());
            self.cap = cap;
        }
    }

    /// Forgets every entry; the next segment logged starts the log.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.sacked = 0;
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Segments the peer SACKed and has not cumulatively acknowledged.
    pub fn sacked_segs(&self) -> u32 {
        self.sacked
    }

    fn end(&self) -> SeqNumber {
        self.entries.back().map_or(self.start, |e| e.end)
    }

    /// `[start, end)` of the entry at `i`.
    fn range(&self, i: usize) -> (SeqNumber, SeqNumber) {
        let start = if i == 0 {
            self.start
        } else {
            self.entries[i - 1].end
        };
        (start, self.entries[i].end)
    }

    fn push(&mut self, e: Sent) {
        if self.entries.len() < self.cap {
            self.entries.push_back(e);
        } else if let Some(last) = self.entries.back_mut() {
            // Full: merge into the last entry (see the module doc).
            if last.sacked() {
                self.sacked -= 1;
            }
            *last = Sent {
                end: e.end,
                xmit: e.xmit,
                flags: (last.flags | e.flags) & RETRANSMITTED,
            };
        }
    }

    /// `[seq, end)` went out at `now` (a FIN counts as one byte).
    pub fn on_send(&mut self, seq: SeqNumber, end: SeqNumber, now: Instant) {
        if end.diff(seq) <= 0 {
            return;
        }
        if self.entries.is_empty() {
            self.start = seq;
        }
        let log_end = self.end();
        if seq.diff(log_end) >= 0 {
            // New data (a gap cannot happen: segments go out in order past SND.MAX).
            self.push(Sent {
                end,
                xmit: now,
                flags: 0,
            });
            return;
        }
        self.on_resend(seq.max(self.start), end.min(log_end), now);
        if end.diff(log_end) > 0 {
            // A resend that reached past SND.MAX (a go-back-N segment cut differently).
            self.push(Sent {
                end,
                xmit: now,
                flags: 0,
            });
        }
    }

    /// Splits the entry at `i` at `at` (inside it) when there is room: true if split.
    fn split(&mut self, i: usize, at: SeqNumber) -> bool {
        if self.entries.len() >= self.cap {
            return false;
        }
        let mut head = self.entries[i];
        head.end = at;
        if head.sacked() {
            self.sacked += 1;
        }
        self.entries.insert(i, head);
        true
    }

    fn on_resend(&mut self, seq: SeqNumber, end: SeqNumber, now: Instant) {
        if end.diff(seq) <= 0 {
            return;
        }
        let mut i = 0;
        while i < self.entries.len() {
            let (s, e) = self.range(i);
            if e.diff(seq) <= 0 {
                i += 1;
                continue;
            }
            if s.diff(end) >= 0 {
                break;
            }
            // The part before the resend keeps its time.
            if s.diff(seq) < 0 && self.split(i, seq) {
                i += 1;
                continue;
            }
            // The part after it too.
            if e.diff(end) > 0 && self.split(i, end) {
                // Entry `i` is now `[s, end)`.
            }
            let entry = &mut self.entries[i];
            entry.xmit = now;
            entry.flags = (entry.flags | RETRANSMITTED) & !LOST;
            i += 1;
        }
    }

    /// The cumulative ACK `una`: the entries it covers leave the log. What RACK needs of
    /// them comes back summed up (`Delivered`), so that a cumulative ACK of many segments
    /// costs RACK one sample, not one per segment.
    pub fn take_acked(&mut self, una: SeqNumber) -> Delivered {
        let mut d = Delivered::default();
        while let Some(&first) = self.entries.front() {
            if first.end.diff(una) > 0 {
                break;
            }
            if first.sacked() {
                // Delivered before, when it was SACKed.
                self.sacked -= 1;
            } else {
                d.add(first);
            }
            self.start = first.end;
            self.entries.pop_front();
        }
        if self.start.diff(una) < 0 && !self.entries.is_empty() {
            self.start = una;
        }
        d
    }

    /// Entries the scoreboard now covers whole become SACKed; `f` sees each, in sequence
    /// order (the SACK of a segment is the rarer case: one call each).
    pub fn mark_sacked(&mut self, scoreboard: &Scoreboard, mut f: impl FnMut(&Sent)) {
        // Both are in sequence order: one walk over the two (the scoreboard may hold
        // hundreds of ranges after a burst of losses).
        let mut ranges = scoreboard.ranges().iter().peekable();
        let mut start = self.start;
        for e in self.entries.iter_mut() {
            while ranges.next_if(|&&(_, b)| b.diff(start) <= 0).is_some() {}
            let covered = ranges
                .peek()
                .is_some_and(|&&(a, b)| a.diff(start) <= 0 && e.end.diff(b) <= 0);
            if !e.sacked() && covered {
                e.flags = (e.flags | SACKED) & !LOST;
                self.sacked += 1;
                f(e);
            }
            start = e.end;
        }
    }

    /// RFC 8985 §6.2 step 5 (`RACK_detect_loss`): every segment neither delivered nor
    /// already marked that was sent before the most recently delivered one, `(rack_xmit,
    /// rack_end)`, is lost once `wait` (RACK.rtt + RACK.reo_wnd) has passed since it was
    /// sent. Returns how many were marked, and the longest time left for the others (when
    /// the reordering timer must look again).
    pub fn detect_loss(
        &mut self,
        rack_xmit: Instant,
        rack_end: SeqNumber,
        wait: core::time::Duration,
        now: Instant,
    ) -> (u32, Option<core::time::Duration>) {
        let mut marked = 0;
        let mut timeout = None;
        for e in self.entries.iter_mut() {
            if e.sacked() || e.lost() || !sent_after(rack_xmit, rack_end, e.xmit, e.end) {
                continue;
            }
            let deadline = e.xmit + wait;
            if deadline <= now {
                e.flags |= LOST;
                marked += 1;
            } else {
                let left = deadline.saturating_duration_since(now);
                timeout = Some(timeout.map_or(left, |t: core::time::Duration| t.max(left)));
            }
        }
        (marked, timeout)
    }

    /// The lowest segment marked lost and not resent since that starts below `limit`:
    /// `(start, end)`.
    pub fn first_lost(&self, limit: SeqNumber) -> Option<(SeqNumber, SeqNumber)> {
        let mut start = self.start;
        for e in &self.entries {
            if start.diff(limit) >= 0 {
                return None;
            }
            if e.lost() && !e.sacked() {
                return Some((start, e.end));
            }
            start = e.end;
        }
        None
    }

    /// Bytes marked lost and not resent: `(below, at_or_above)` `from`.
    pub fn lost_bytes(&self, from: SeqNumber) -> (u32, u32) {
        let mut start = self.start;
        let (mut below, mut above) = (0u32, 0u32);
        for e in &self.entries {
            if e.lost() && !e.sacked() {
                if e.end.diff(from) <= 0 {
                    below = below.saturating_add(e.end.distance_from(start).unwrap_or(0));
                } else {
                    let s = start.max(from);
                    above = above.saturating_add(e.end.distance_from(s).unwrap_or(0));
                }
            }
            start = e.end;
        }
        (below, above)
    }

    /// The last segment sent: `(start, end)` (what a tail loss probe resends).
    /// The lowest entry (what SND.UNA is in).
    pub fn first(&self) -> Option<Sent> {
        self.entries.front().copied()
    }

    pub fn last(&self) -> Option<(SeqNumber, SeqNumber)> {
        let n = self.entries.len();
        (n > 0).then(|| self.range(n - 1))
    }

    /// The peer may have reneged (a second timeout in a row): nothing is taken as SACKed.
    pub fn clear_sacked(&mut self) {
        for e in self.entries.iter_mut() {
            e.flags &= !SACKED;
        }
        self.sacked = 0;
    }
}

/// What RACK needs of the segments one cumulative ACK delivered (SACKed ones apart): in
/// RFC 8985's walk in transmit order only the most recently sent leaves its mark on
/// RACK.xmit_ts / rtt -- and, when that one was retransmitted and its sample may be the
/// original's, the most recently sent original before it -- plus, for reordering, the lowest
/// original end and the highest end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    pub latest: Option<Sent>,
    pub latest_original: Option<Sent>,
    pub first_original_end: Option<SeqNumber>,
    pub highest_end: Option<SeqNumber>,
    /// One of the segments had been sent more than once.
    pub any_retransmitted: bool,
}

impl Delivered {
    /// An RTT sample from a cumulative ACK without timestamps: the time since the most
    /// recently sent of the segments it delivered, when none of them was retransmitted
    /// (Karn: the ACK may be for either copy of a retransmitted one). One per ACK, as
    /// Linux takes from its own send timestamps (`tcp_clean_rtx_queue`), where one timed
    /// segment per round trip (RFC 6298 §3) is too few for HyStart++ (RFC 9406 wants 8 per
    /// round) and for an RTO that follows a queue building up.
    pub fn rtt_sample(&self, now: Instant) -> Option<Duration> {
        if self.any_retransmitted {
            return None;
        }
        self.latest_original
            .map(|e| now.saturating_duration_since(e.xmit))
    }

    fn add(&mut self, e: Sent) {
        self.any_retransmitted |= e.retransmitted();
        let newer =
            |than: Option<Sent>| than.is_none_or(|l| sent_after(e.xmit, e.end, l.xmit, l.end));
        if newer(self.latest) {
            self.latest = Some(e);
        }
        if !e.retransmitted() {
            if newer(self.latest_original) {
                self.latest_original = Some(e);
            }
            self.first_original_end.get_or_insert(e.end);
        }
        if self.highest_end.is_none_or(|h| e.end.diff(h) > 0) {
            self.highest_end = Some(e.end);
        }
    }
}

/// RFC 8985 `RACK_sent_after(t1, seq1, t2, seq2)`: the first segment was sent after the
/// second (a later transmit time, or the same time and a higher end).
pub fn sent_after(t1: Instant, seq1: SeqNumber, t2: Instant, seq2: SeqNumber) -> bool {
    t1 > t2 || (t1 == t2 && seq1.diff(seq2) > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u32) -> SeqNumber {
        SeqNumber(n)
    }
    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }
    fn entries(log: &SendLog) -> Vec<(u32, u32, u64, u8)> {
        (0..log.entries.len())
            .map(|i| {
                let (a, b) = log.range(i);
                (
                    a.0,
                    b.0,
                    log.entries[i].xmit.as_millis(),
                    log.entries[i].flags,
                )
            })
            .collect()
    }

    proptest::proptest! {
        /// The one-walk marking marks exactly the entries one scoreboard range holds whole.
        #[test]
        fn mark_sacked_marks_what_a_range_covers_whole(
            lens in proptest::collection::vec(1u32..300, 1..40),
            blocks in proptest::collection::vec((0u32..6000, 1u32..900), 0..30),
        ) {
            let mut log = SendLog::new(64);
            let mut seq = 0;
            for len in &lens {
                log.on_send(s(seq), s(seq + len), t(1));
                seq += len;
            }
            let mut sb = Scoreboard::with_capacity(64);
            for &(a, len) in &blocks {
                sb.add(s(a), s(a + len), s(0), s(seq));
            }
            let mut marked = Vec::new();
            log.mark_sacked(&sb, |e| marked.push(e.end.0));
            let mut expected = Vec::new();
            let mut start = 0;
            for len in &lens {
                if sb.covers(s(start), s(start + len)) {
                    expected.push(start + len);
                }
                start += len;
            }
            proptest::prop_assert_eq!(marked, expected);
        }
    }

    #[test]
    fn rfc6298_karn_a_cumulative_ack_gives_an_rtt_sample_only_if_it_covers_no_resend() {
        let mut log = SendLog::new(8);
        log.on_send(s(0), s(100), t(10));
        log.on_send(s(100), s(200), t(20));
        log.on_send(s(200), s(300), t(30));
        log.on_send(s(300), s(400), t(40));
        // The newest segment delivered times the ACK.
        assert_eq!(
            log.take_acked(s(200)).rtt_sample(t(70)),
            Some(Duration::from_millis(50))
        );
        // A resent segment among those delivered: no sample, though an original (sent once,
        // later than the resend) is delivered with it.
        log.on_send(s(200), s(300), t(50));
        log.on_send(s(400), s(500), t(60));
        assert_eq!(log.take_acked(s(500)).rtt_sample(t(90)), None);
        assert_eq!(Delivered::default().rtt_sample(t(90)), None);
    }

    #[test]
    fn a_partial_resend_splits_the_entry_so_only_the_resent_part_is_timed_anew() {
        let mut log = SendLog::new(8);
        log.on_send(s(100), s(200), t(1));
        log.on_send(s(200), s(300), t(2));
        log.on_send(s(150), s(180), t(5));
        assert_eq!(
            entries(&log),
            [
                (100, 150, 1, 0),
                (150, 180, 5, RETRANSMITTED),
                (180, 200, 1, 0),
                (200, 300, 2, 0)
            ]
        );
    }

    #[test]
    fn a_full_log_merges_new_segments_into_the_last_entry_with_the_later_time() {
        let mut log = SendLog::new(2);
        log.on_send(s(0), s(10), t(1));
        log.on_send(s(10), s(20), t(2));
        log.on_send(s(20), s(30), t(3));
        assert_eq!(entries(&log), [(0, 10, 1, 0), (10, 30, 3, 0)]);
        // A resend that would need a split marks the whole entry.
        log.on_send(s(10), s(15), t(4));
        assert_eq!(entries(&log), [(0, 10, 1, 0), (10, 30, 4, RETRANSMITTED)]);
    }

    #[test]
    fn acks_remove_covered_entries_and_sack_marks_whole_ones() {
        let mut log = SendLog::new(8);
        for i in 0..4u32 {
            log.on_send(s(i * 100), s(i * 100 + 100), t(u64::from(i)));
        }
        let mut sb = Scoreboard::default();
        sb.add(s(250), s(400), s(0), s(400));
        let d = log.take_acked(s(100));
        assert_eq!(d.latest.map(|e| e.end), Some(s(100)));
        let mut seen = Vec::new();
        log.mark_sacked(&sb, |e| seen.push(e.end.0));
        // [0,100) acked, [300,400) SACKed whole, [200,300) only half.
        assert_eq!(seen, [400]);
        assert_eq!(log.sacked_segs(), 1);
        let d = log.take_acked(s(400));
        assert_eq!(
            (d.latest.map(|e| e.end), d.first_original_end, d.highest_end),
            (Some(s(300)), Some(s(200)), Some(s(300))),
            "the SACKed one is not delivered twice"
        );
        assert!(log.is_empty());
        assert_eq!(log.sacked_segs(), 0);
    }

    #[test]
    fn rfc8985_s6_2_detect_loss_marks_only_segments_sent_before_the_delivered_one_and_past_wait() {
        let mut log = SendLog::new(8);
        log.on_send(s(0), s(100), t(0));
        log.on_send(s(100), s(200), t(10));
        log.on_send(s(200), s(300), t(20));
        // The third was delivered (RACK.xmit_ts 20); wait 50 ms.
        let wait = Duration::from_millis(50);
        assert_eq!(
            log.detect_loss(t(20), s(300), wait, t(55)),
            (1, Some(Duration::from_millis(5)))
        );
        assert_eq!(log.first_lost(s(300)), Some((s(0), s(100))));
        assert_eq!(log.detect_loss(t(20), s(300), wait, t(60)), (1, None));
        assert_eq!(log.lost_bytes(s(300)), (200, 0));
        assert_eq!(log.lost_bytes(s(50)), (0, 150));
        // The segment RACK saw delivered is never marked (not sent after itself).
        assert_eq!(entries(&log)[2].3, 0);
        // A resend clears the mark.
        log.on_send(s(0), s(100), t(61));
        assert_eq!(log.first_lost(s(300)), Some((s(100), s(200))));
    }

    #[test]
    fn the_placeholder_holds_nothing_and_never_panics() {
        let mut log = SendLog::new(0);
        assert_eq!(log.entries.capacity(), 0, "allocates nothing");
        log.on_send(s(0), s(10), t(1));
        log.on_send(s(0), s(5), t(2));
        assert!(log.is_empty());
        assert_eq!(log.last(), None);
    }

    #[test]
    fn a_cumulative_ack_sums_up_the_latest_and_the_latest_original() {
        let mut log = SendLog::new(8);
        log.on_send(s(0), s(10), t(1));
        log.on_send(s(10), s(20), t(2));
        log.on_send(s(20), s(30), t(3));
        log.on_send(s(0), s(10), t(4));
        let d = log.take_acked(s(30));
        assert_eq!(
            d.latest.map(|e| (e.end, e.xmit)),
            Some((s(10), t(4))),
            "the resend"
        );
        assert_eq!(d.latest_original.map(|e| e.end), Some(s(30)));
        assert_eq!(d.first_original_end, Some(s(20)));
        assert_eq!(d.highest_end, Some(s(30)));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut log = SendLog::new(8);
        log.on_send(s(u32::MAX - 50), s(49), t(1));
        log.on_send(s(49), s(149), t(2));
        assert_eq!(log.last(), Some((s(49), s(149))));
        assert_eq!(log.take_acked(s(49)).highest_end, Some(s(49)));
        assert_eq!(log.last(), Some((s(49), s(149))));
    }
}

//! The SACK scoreboard (RFC 2018, RFC 6675-lite): what the peer reported holding above
//! SND.UNA, as sorted, disjoint sequence ranges in a fixed array. The connection merges the
//! blocks of each ACK in, prunes what the cumulative ACK covers, and asks for the holes to
//! retransmit during recovery (RFC 6675 `IsLost`) and to skip when a timeout resends from
//! SND.UNA; after a second timeout in a row it forgets everything (RFC 2018 §8: the peer may
//! renege).

use crate::wire::SeqNumber;

/// Ranges a scoreboard keeps by default (tests, and the floor of [`capacity_for`]).
const MIN_SACKED: usize = 8;

/// Ranges for a send buffer of `tx_buffer` bytes: one per KiB, 8 to 1024. A peer that lost
/// every other segment of a full send buffer (a slow start overflowing a drop-tail queue
/// does exactly that) reports one range per two segments; with fewer ranges than that the
/// highest are forgotten, the pipe counts them in flight and recovery stalls until the RTO.
pub fn capacity_for(tx_buffer: usize) -> usize {
    (tx_buffer / 1024).clamp(MIN_SACKED, 1024)
}

/// What the peer SACKed, as sorted, disjoint ranges in a fixed allocation (made with the
/// connection's buffers and reused with them; the highest range is dropped when full).
#[derive(Debug, Clone)]
pub struct Scoreboard {
    ranges: Box<[(SeqNumber, SeqNumber)]>,
    n: usize,
}

impl Default for Scoreboard {
    fn default() -> Self {
        Scoreboard::with_capacity(MIN_SACKED)
    }
}

impl Scoreboard {
    /// Room for `cap` ranges, allocated once.
    pub fn with_capacity(cap: usize) -> Self {
        Scoreboard {
            ranges: vec![(SeqNumber(0), SeqNumber(0)); cap].into_boxed_slice(),
            n: 0,
        }
    }

    /// Room for `cap` ranges from now on (the send buffer grew), the ranges kept; never
    /// shrinks. Allocates.
    pub fn grow(&mut self, cap: usize) {
        if cap > self.ranges.len() {
            let mut ranges = vec![(SeqNumber(0), SeqNumber(0)); cap].into_boxed_slice();
            ranges[..self.n].copy_from_slice(&self.ranges[..self.n]);
            self.ranges = ranges;
        }
    }

    /// The ranges, in sequence order.
    pub fn ranges(&self) -> &[(SeqNumber, SeqNumber)] {
        &self.ranges[..self.n]
    }

    /// Forgets every range.
    pub fn clear(&mut self) {
        self.n = 0;
    }

    /// Merges a peer SACK block into the scoreboard; true if it added anything. Only what
    /// lies in `[una, snd_max)` counts: a block reaching beyond what was sent is ignored.
    /// Ranges that touch or overlap the block merge with it.
    pub fn add(
        &mut self,
        left: SeqNumber,
        right: SeqNumber,
        una: SeqNumber,
        snd_max: SeqNumber,
    ) -> bool {
        let left = left.max(una);
        if right.diff(left) <= 0 || right.diff(snd_max) > 0 {
            return false;
        }
        let held = &self.ranges[..self.n];
        // `held[i..j]`: the ranges the block touches or overlaps (none: it goes in at `i`).
        let i = held
            .iter()
            .position(|&(_, b)| b.diff(left) >= 0)
            .unwrap_or(self.n);
        let j = i + held[i..]
            .iter()
            .take_while(|&&(a, _)| a.diff(right) <= 0)
            .count();
        if i == j {
            if self.n == self.ranges.len() {
                if i == self.n {
                    // Full, and the block is the highest: it is the one dropped.
                    return false;
                }
                self.n -= 1;
            }
            self.ranges.copy_within(i..self.n, i + 1);
            self.ranges[i] = (left, right);
            self.n += 1;
            return true;
        }
        let (a, b) = (held[i].0, held[j - 1].1);
        if j - i == 1 && a.diff(left) <= 0 && right.diff(b) <= 0 {
            return false;
        }
        self.ranges[i] = (a.min(left), b.max(right));
        self.ranges.copy_within(j..self.n, i + 1);
        self.n -= j - i - 1;
        true
    }

    /// Drops what the cumulative ACK now covers.
    pub fn prune(&mut self, una: SeqNumber) {
        let mut n = 0;
        for i in 0..self.n {
            let (a, b) = self.ranges[i];
            if b.diff(una) > 0 {
                self.ranges[n] = (a.max(una), b);
                n += 1;
            }
        }
        self.n = n;
    }

    /// Bytes the peer reported holding above SND.UNA.
    pub fn sacked_bytes(&self) -> u32 {
        self.ranges[..self.n]
            .iter()
            .map(|&(a, b)| b.distance_from(a).unwrap_or(0))
            .sum()
    }

    /// The holes at or above `from` that RFC 6675 §4 `IsLost` says are lost -- more than
    /// `thresh` bytes SACKed above them, `(DupThresh - 1) * SMSS` -- in order: (start,
    /// length). A hole with less SACKed above it may still be in flight, reordered.
    fn lost_holes(
        &self,
        from: SeqNumber,
        thresh: u32,
    ) -> impl Iterator<Item = (SeqNumber, u32)> + '_ {
        let mut s = from;
        let mut above = self.sacked_bytes();
        self.ranges[..self.n].iter().filter_map(move |&(a, b)| {
            let hole = if s.diff(a) < 0 {
                a.distance_from(s).map(|d| (s, d))
            } else {
                None
            };
            let lost = hole.filter(|_| above > thresh);
            above -= b.distance_from(a).unwrap_or(0);
            if s.diff(b) < 0 {
                s = b;
            }
            lost
        })
    }

    /// The first lost hole at or above `from` (see [`Scoreboard::lost_holes`]).
    pub fn next_lost_hole(&self, from: SeqNumber, thresh: u32) -> Option<(SeqNumber, u32)> {
        self.lost_holes(from, thresh).next()
    }

    /// Bytes of the lost holes at or above `from` (see [`Scoreboard::lost_holes`]).
    pub fn lost_bytes(&self, from: SeqNumber, thresh: u32) -> u32 {
        self.lost_holes(from, thresh).map(|(_, len)| len).sum()
    }

    /// `seq`, or the end of the SACKed range holding it: where a go-back-N resend goes on
    /// without resending what the peer holds.
    pub fn skip(&self, seq: SeqNumber) -> SeqNumber {
        self.ranges[..self.n]
            .iter()
            .find(|&&(a, b)| a.diff(seq) <= 0 && seq.diff(b) < 0)
            .map_or(seq, |&(_, b)| b)
    }

    /// The peer reported holding all of `[a, b)`.
    pub fn covers(&self, a: SeqNumber, b: SeqNumber) -> bool {
        self.ranges[..self.n]
            .iter()
            .any(|&(l, r)| l.diff(a) <= 0 && b.diff(r) <= 0)
    }

    /// Bytes from `seq` up to the next SACKed range (unbounded if none).
    pub fn room(&self, seq: SeqNumber) -> usize {
        self.ranges[..self.n]
            .iter()
            .find(|(a, _)| a.diff(seq) > 0)
            .and_then(|(a, _)| a.distance_from(seq))
            .map_or(usize::MAX, |d| d as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNA: SeqNumber = SeqNumber(1000);
    const MAX: SeqNumber = SeqNumber(10_000);

    fn s(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    fn ranges(sb: &Scoreboard) -> Vec<(u32, u32)> {
        sb.ranges[..sb.n].iter().map(|(a, b)| (a.0, b.0)).collect()
    }

    #[test]
    fn rfc6675_islost_needs_more_than_the_threshold_sacked_above_a_hole() {
        let mut sb = Scoreboard::default();
        // Holes [1000, 2000), [3000, 4000) and [5000, 5500); SACKed 2000-3000, 4000-5000,
        // 5500-6000.
        for (a, b) in [(2000, 3000), (4000, 5000), (5500, 6000)] {
            assert!(sb.add(s(a), s(b), UNA, MAX));
        }
        assert_eq!(sb.sacked_bytes(), 2500);
        // Threshold 1499 bytes: the first hole has 2500 above it, the second 1500, the third
        // 500 (still possibly reordered).
        assert_eq!(sb.next_lost_hole(UNA, 1499), Some((s(1000), 1000)));
        assert_eq!(sb.lost_bytes(UNA, 1499), 2000);
        assert_eq!(sb.next_lost_hole(s(2000), 1499), Some((s(3000), 1000)));
        assert_eq!(sb.next_lost_hole(s(4000), 1499), None);
        // From inside a hole: only its rest.
        assert_eq!(sb.next_lost_hole(s(1500), 1499), Some((s(1500), 500)));
        // A higher threshold: only the first hole.
        assert_eq!(sb.lost_bytes(UNA, 2000), 1000);
        assert_eq!(
            sb.lost_bytes(UNA, 2500),
            0,
            "more than the threshold, not as much"
        );
        sb.clear();
        assert_eq!((sb.sacked_bytes(), sb.lost_bytes(UNA, 0)), (0, 0));
    }

    #[test]
    fn blocks_are_kept_sorted_and_merged_when_they_touch() {
        let mut sb = Scoreboard::default();
        assert!(sb.add(s(5000), s(6000), UNA, MAX));
        assert!(sb.add(s(2000), s(3000), UNA, MAX));
        assert_eq!(ranges(&sb), [(2000, 3000), (5000, 6000)]);
        assert!(sb.add(s(3000), s(5000), UNA, MAX));
        assert_eq!(ranges(&sb), [(2000, 6000)]);
    }

    #[test]
    fn rfc2018_blocks_already_held_below_una_or_beyond_snd_max_add_nothing() {
        let mut sb = Scoreboard::default();
        assert!(sb.add(s(2000), s(4000), UNA, MAX));
        assert!(!sb.add(s(2500), s(3000), UNA, MAX), "inside a held range");
        assert!(!sb.add(s(500), s(900), UNA, MAX), "below SND.UNA");
        assert!(!sb.add(s(9000), s(11_000), UNA, MAX), "beyond SND.MAX");
        assert!(sb.add(s(500), s(1500), UNA, MAX), "clipped at SND.UNA");
        assert_eq!(ranges(&sb), [(1000, 1500), (2000, 4000)]);
    }

    #[test]
    fn a_full_scoreboard_drops_the_highest_range() {
        let mut sb = Scoreboard::default();
        for i in 0..MIN_SACKED as u32 {
            assert!(sb.add(s(2000 + 200 * i), s(2100 + 200 * i), UNA, MAX));
        }
        assert!(
            !sb.add(s(5000), s(5100), UNA, MAX),
            "a new highest range is the one dropped"
        );
        assert!(sb.add(s(1100), s(1200), UNA, MAX));
        assert_eq!(sb.n, MIN_SACKED);
        assert_eq!(ranges(&sb)[0], (1100, 1200));
        assert_eq!(ranges(&sb)[MIN_SACKED - 1], (3200, 3300));
        // A block that merges needs no room.
        assert!(sb.add(s(2100), s(2200), UNA, MAX));
        assert_eq!(ranges(&sb)[1], (2000, 2300));
    }

    #[test]
    fn a_scoreboard_sized_for_the_send_buffer_holds_every_other_segment_lost() {
        // A 256 KiB send buffer of 1460-byte segments, every other one lost: 90 ranges.
        let cap = capacity_for(256 * 1024);
        assert_eq!(cap, 256);
        let mut sb = Scoreboard::with_capacity(cap);
        let (una, max) = (s(0), s(1460 * 180));
        for k in (1..180u32).step_by(2) {
            assert!(sb.add(s(1460 * k), s(1460 * (k + 1)), una, max));
        }
        assert_eq!(sb.n, 90);
        assert_eq!(sb.sacked_bytes(), 90 * 1460);
        // Every hole but the last has more than two segments SACKed above it.
        assert_eq!(sb.lost_bytes(una, 2 * 1460), 88 * 1460);
        assert_eq!(capacity_for(0), MIN_SACKED);
        assert_eq!(capacity_for(64 << 20), 1024);
    }

    proptest::proptest! {
        /// Any blocks in any order: the ranges stay sorted, disjoint and not touching, within
        /// the capacity, and (with room) hold exactly the union of the blocks.
        #[test]
        fn ranges_are_the_sorted_union_of_the_blocks(
            blocks in proptest::collection::vec((0u32..4000, 1u32..600), 0..40),
            cap in 1usize..12,
        ) {
            let mut sb = Scoreboard::with_capacity(cap);
            let mut held = vec![false; 5000];
            let mut ever_full = false;
            for &(a, len) in &blocks {
                let (l, r) = (UNA.0 + a, UNA.0 + (a + len).min(4500));
                if r <= l { continue; }
                sb.add(s(l), s(r), UNA, s(UNA.0 + 4500));
                ever_full |= sb.n == cap;
                held[a as usize..(a + len).min(4500) as usize].iter_mut().for_each(|h| *h = true);
            }
            let got = ranges(&sb);
            proptest::prop_assert!(got.len() <= cap);
            for w in got.windows(2) {
                proptest::prop_assert!(w[0].1 < w[1].0, "sorted, disjoint, apart: {:?}", got);
            }
            for &(a, b) in &got {
                proptest::prop_assert!(a < b);
                for x in a..b {
                    proptest::prop_assert!(held[(x - UNA.0) as usize], "{} never SACKed", x);
                }
            }
            if !ever_full {
                let covered: usize = got.iter().map(|&(a, b)| (b - a) as usize).sum();
                proptest::prop_assert_eq!(covered, held.iter().filter(|&&h| h).count());
            }
        }
    }

    #[test]
    fn prune_drops_and_trims_what_the_cumulative_ack_covers() {
        let mut sb = Scoreboard::default();
        sb.add(s(2000), s(3000), UNA, MAX);
        sb.add(s(4000), s(5000), UNA, MAX);
        sb.prune(s(4500));
        assert_eq!(ranges(&sb), [(4500, 5000)]);
        sb.prune(s(5000));
        assert_eq!(ranges(&sb), []);
    }

    #[test]
    fn holes_and_room_below_sacked_ranges() {
        let mut sb = Scoreboard::default();
        assert_eq!(sb.next_lost_hole(UNA, 0), None);
        assert_eq!(sb.room(UNA), usize::MAX);
        sb.add(s(2000), s(3000), UNA, MAX);
        sb.add(s(4000), s(5000), UNA, MAX);
        assert_eq!(sb.next_lost_hole(UNA, 0), Some((UNA, 1000)));
        assert_eq!(sb.next_lost_hole(s(2500), 0), Some((s(3000), 1000)));
        assert_eq!(
            sb.next_lost_hole(s(4000), 0),
            None,
            "nothing SACKed above the last range"
        );
        assert_eq!(sb.room(s(1500)), 500);
        assert_eq!(sb.room(s(3500)), 500);
        assert_eq!(sb.room(s(4500)), usize::MAX);
        sb.clear();
        assert_eq!(sb.next_lost_hole(UNA, 0), None);
    }

    #[test]
    fn covers_only_what_one_range_holds_whole() {
        let mut sb = Scoreboard::default();
        sb.add(s(2000), s(3000), UNA, MAX);
        sb.add(s(4000), s(5000), UNA, MAX);
        assert!(sb.covers(s(2000), s(3000)));
        assert!(sb.covers(s(4100), s(4200)));
        assert!(!sb.covers(s(2500), s(4500)), "across a hole");
        assert!(!sb.covers(s(1900), s(2100)));
    }
}

//! Bookkeeping for out-of-order receive data: which byte ranges beyond the in-order point are
//! already held in the receive ring.
//!
//! Offsets are relative to `rcv_nxt` (offset 0 is the next in-order byte). The bytes themselves
//! live in the connection's [`RingBuffer`](super::RingBuffer), placed with `write_at`; this type
//! only records where. At most `max_bytes` bytes are held in total, in at most
//! [`Assembler::capacity`] disjoint, non-adjacent ranges (one per [`BYTES_PER_RANGE`] of
//! `max_bytes`, between [`MIN_RANGES`] and [`MAX_RANGES`]) kept in an array allocated once, with
//! the connection's rings, so a peer cannot make the receiver allocate or scan without bound.
//!
//! Why so many ranges: a slow start that overshoots a drop-tail bottleneck loses every other
//! segment of its last window, and each loss is a hole. With 16 ranges (the bound this had
//! before) a receiver at 80 ms and 10 Mbit/s dropped most of such a window's out-of-order
//! segments, and the sender had to send them again: uploads to the bypass took 1.2x the
//! kernel's time (`loadgen paths`), where Linux keeps whatever fits its receive buffer.
//!
//! Every tuple this type takes or yields is `(offset, len)`.
//!
//! The receive path for a segment at `offset` with `len` bytes (within the window):
//! 1. write only the sub-ranges [`Assembler::missing`] yields, so where segments overlap with
//!    different bytes **the first copy wins** (nothing already held is overwritten);
//! 2. if `offset == 0`, commit the in-order bytes: `let extra = asm.take_front(len)`, then
//!    `ring.commit(len + extra)` and advance `rcv_nxt` by `len + extra`;
//! 3. otherwise `asm.add(offset, len)`; on [`AssemblerFull`] the segment is dropped (and the
//!    bytes written in step 1 stay unreferenced free space, which is harmless).
//!
//! Every range also remembers which was extended most recently, so that
//! [`Assembler::sack_ranges`] reports it first as RFC 2018 §4 asks.

use core::fmt;

/// Fewest ranges an assembler that holds anything has room for.
pub const MIN_RANGES: usize = 16;
/// Most ranges any assembler has room for: a peer that fragments the buffer into 1-byte
/// ranges costs a scan of at most this many per segment.
pub const MAX_RANGES: usize = 512;
/// One range of room per this many bytes of `max_bytes`: a hole and a held range of a full
/// segment each (2 x 1024 bytes, below any real MSS).
pub const BYTES_PER_RANGE: usize = 2048;

/// An `add` was refused: it would need more ranges than the assembler has room for or more
/// than its byte bound. Nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("out-of-order assembler full")]
pub struct AssemblerFull;

/// A held range, `[start, end)` in offsets from the in-order point.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Range {
    start: usize,
    end: usize,
}

/// Out-of-order range tracker; see the module documentation.
#[derive(Clone)]
pub struct Assembler {
    ranges: Box<[Range]>,
    /// Ranges in use: `ranges[..count]`, sorted, disjoint and non-adjacent, none empty.
    count: usize,
    held: usize,
    max_bytes: usize,
    /// Index of the range most recently created or extended by `add`, if still present.
    recent: Option<usize>,
}

impl Assembler {
    /// An empty assembler that holds at most `max_bytes` out-of-order bytes. `new(0)` holds
    /// nothing and allocates nothing.
    pub fn new(max_bytes: usize) -> Self {
        let capacity = if max_bytes == 0 {
            0
        } else {
            (max_bytes / BYTES_PER_RANGE).clamp(MIN_RANGES, MAX_RANGES)
        };
        Assembler {
            ranges: vec![Range::default(); capacity].into_boxed_slice(),
            count: 0,
            held: 0,
            max_bytes,
            recent: None,
        }
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The byte bound from now on (the receive ring grew, or went back to its size); the
    /// ranges' array keeps its size, so this allocates nothing. What is held above a lowered
    /// bound stays until delivered or evicted; only `add` checks the bound.
    pub fn set_max_bytes(&mut self, max_bytes: usize) {
        self.max_bytes = max_bytes;
    }

    /// How many disjoint ranges it has room for.
    pub fn capacity(&self) -> usize {
        self.ranges.len()
    }

    /// Forgets the held range furthest from the in-order point (RFC 2018 §8 lets a receiver
    /// renege on what it SACKed); returns it as `(offset, len)`.
    pub fn pop_last(&mut self) -> Option<(usize, usize)> {
        let last = *self.used().last()?;
        self.count -= 1;
        self.held -= last.end - last.start;
        if self.recent == Some(self.count) {
            self.recent = None;
        }
        Some((last.start, last.end - last.start))
    }

    /// The held range furthest from the in-order point, as `(offset, len)`.
    pub fn last(&self) -> Option<(usize, usize)> {
        self.used().last().map(|r| (r.start, r.end - r.start))
    }

    /// No out-of-order data held.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Total out-of-order bytes held.
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// Number of disjoint ranges held.
    pub fn range_count(&self) -> usize {
        self.count
    }

    pub fn clear(&mut self) {
        self.count = 0;
        self.held = 0;
        self.recent = None;
    }

    fn used(&self) -> &[Range] {
        &self.ranges[..self.count]
    }

    /// Records that `[offset, offset + len)` is now held, merging with overlapping and adjacent
    /// ranges. Refused, with nothing changed, if the result would need more ranges than
    /// [`capacity`](Self::capacity) or hold more than `max_bytes` bytes (or if `offset + len`
    /// overflows). An empty
    /// range is accepted and changes nothing.
    pub fn add(&mut self, offset: usize, len: usize) -> Result<(), AssemblerFull> {
        if len == 0 {
            return Ok(());
        }
        let end = offset.checked_add(len).ok_or(AssemblerFull)?;
        let used = self.used();
        // Ranges [first, last) touch the new one (overlap or adjacency) and merge into it.
        let first = used.partition_point(|r| r.end < offset);
        let last = first + used[first..].partition_point(|r| r.start <= end);
        let (mut start, mut new_end) = (offset, end);
        let mut merged_bytes = 0;
        for r in &used[first..last] {
            start = start.min(r.start);
            new_end = new_end.max(r.end);
            merged_bytes += r.end - r.start;
        }
        let new_count = self.count - (last - first) + 1;
        let new_held = self.held - merged_bytes + (new_end - start);
        if new_count > self.ranges.len() || new_held > self.max_bytes {
            return Err(AssemblerFull);
        }
        // Replace ranges[first..last] by the single merged range.
        let merged = Range {
            start,
            end: new_end,
        };
        if last == first {
            self.ranges.copy_within(first..self.count, first + 1);
        } else {
            self.ranges.copy_within(last..self.count, first + 1);
        }
        self.ranges[first] = merged;
        self.count = new_count;
        self.held = new_held;
        self.recent = Some(first);
        Ok(())
    }

    /// The parts of `[offset, offset + len)` not held yet, in order, as `(offset, len)`: the
    /// only bytes the receive path may write (first copy wins). Saturates at `usize::MAX`.
    pub fn missing(&self, offset: usize, len: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        let end = offset.saturating_add(len);
        let used = self.used();
        let skip = used.partition_point(|r| r.end <= offset);
        Missing {
            ranges: &used[skip..],
            cur: offset,
            end,
        }
    }

    /// Called after `advanced` in-order bytes were appended at offset 0 (and the in-order point
    /// is about to move by `advanced`). Every held range that now touches the in-order data is
    /// removed; returns how many bytes beyond `advanced` they make contiguous, and rebases all
    /// remaining offsets by `advanced` plus that count (the in-order point's total move).
    pub fn take_front(&mut self, advanced: usize) -> usize {
        let mut front = advanced;
        let mut removed = 0;
        let mut removed_bytes = 0;
        for r in self.used() {
            if r.start > front {
                break;
            }
            front = front.max(r.end);
            removed += 1;
            removed_bytes += r.end - r.start;
        }
        self.ranges.copy_within(removed..self.count, 0);
        self.count -= removed;
        self.held -= removed_bytes;
        for r in &mut self.ranges[..self.count] {
            // Every remaining range starts after `front`.
            r.start -= front;
            r.end -= front;
        }
        self.recent = match self.recent {
            Some(i) if i >= removed => Some(i - removed),
            _ => None,
        };
        front - advanced
    }

    /// The held ranges in ascending order, as `(offset, len)`.
    pub fn ranges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.used().iter().map(|r| (r.start, r.end - r.start))
    }

    /// The held ranges for SACK blocks, as `(offset, len)`: the one most recently created or
    /// extended by `add` first (RFC 2018 §4), then the others in ascending order. The caller
    /// takes as many as fit in the option space.
    pub fn sack_ranges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let recent = self.recent;
        let first = recent.and_then(|i| self.used().get(i));
        first
            .into_iter()
            .chain(
                self.used()
                    .iter()
                    .enumerate()
                    .filter(move |(i, _)| Some(*i) != recent)
                    .map(|(_, r)| r),
            )
            .map(|r| (r.start, r.end - r.start))
    }
}

impl fmt::Debug for Assembler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Assembler")
            .field("ranges", &RangeList(self))
            .field("held", &self.held)
            .field("max_bytes", &self.max_bytes)
            .field("recent", &self.recent)
            .finish()
    }
}

/// `Debug` for the held ranges without collecting them anywhere.
struct RangeList<'a>(&'a Assembler);

impl fmt::Debug for RangeList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.ranges()).finish()
    }
}

/// Iterator behind [`Assembler::missing`].
struct Missing<'a> {
    /// Held ranges that end after `cur`, ascending.
    ranges: &'a [Range],
    cur: usize,
    end: usize,
}

impl Iterator for Missing<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        loop {
            if self.cur >= self.end {
                return None;
            }
            match self.ranges.split_first() {
                Some((r, rest)) if r.start <= self.cur => {
                    // Held bytes at the cursor: skip past them.
                    self.cur = r.end;
                    self.ranges = rest;
                }
                Some((r, _)) => {
                    let gap_end = r.start.min(self.end);
                    let gap = (self.cur, gap_end - self.cur);
                    self.cur = gap_end;
                    return Some(gap);
                }
                None => {
                    let gap = (self.cur, self.end - self.cur);
                    self.cur = self.end;
                    return Some(gap);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::RingBuffer;
    use proptest::prelude::*;

    fn ranges(a: &Assembler) -> Vec<(usize, usize)> {
        a.ranges().collect()
    }

    fn missing(a: &Assembler, off: usize, len: usize) -> Vec<(usize, usize)> {
        a.missing(off, len).collect()
    }

    #[test]
    fn empty_assembler() {
        let a = Assembler::new(100);
        assert!(a.is_empty());
        assert_eq!(a.held_bytes(), 0);
        assert_eq!(a.range_count(), 0);
        assert_eq!(ranges(&a), []);
        assert_eq!(a.sack_ranges().count(), 0);
        assert_eq!(missing(&a, 5, 10), [(5, 10)]);
        assert_eq!(missing(&a, 5, 0), []);
    }

    #[test]
    fn add_keeps_ranges_sorted_and_disjoint() {
        let mut a = Assembler::new(1000);
        a.add(50, 10).unwrap();
        a.add(10, 10).unwrap();
        a.add(30, 5).unwrap();
        assert_eq!(ranges(&a), [(10, 10), (30, 5), (50, 10)]);
        assert_eq!(a.held_bytes(), 25);
        assert!(!a.is_empty());
        assert_eq!(a.add(7, 0), Ok(()));
        assert_eq!(ranges(&a), [(10, 10), (30, 5), (50, 10)]);
    }

    #[test]
    fn add_merges_overlap() {
        let mut a = Assembler::new(1000);
        a.add(10, 10).unwrap();
        a.add(15, 10).unwrap(); // overlaps the end
        assert_eq!(ranges(&a), [(10, 15)]);
        a.add(5, 10).unwrap(); // overlaps the start
        assert_eq!(ranges(&a), [(5, 20)]);
        a.add(8, 3).unwrap(); // inside
        assert_eq!(ranges(&a), [(5, 20)]);
        assert_eq!(a.held_bytes(), 20);
        a.add(40, 5).unwrap();
        a.add(50, 5).unwrap();
        a.add(0, 100).unwrap(); // covers everything
        assert_eq!(ranges(&a), [(0, 100)]);
        assert_eq!(a.held_bytes(), 100);
    }

    #[test]
    fn add_merges_adjacent_ranges() {
        let mut a = Assembler::new(1000);
        a.add(10, 10).unwrap();
        a.add(20, 5).unwrap(); // touches the end
        assert_eq!(ranges(&a), [(10, 15)]);
        a.add(5, 5).unwrap(); // touches the start
        assert_eq!(ranges(&a), [(5, 20)]);
        a.add(30, 5).unwrap();
        a.add(25, 5).unwrap(); // bridges two ranges exactly
        assert_eq!(ranges(&a), [(5, 30)]);
        assert_eq!(a.held_bytes(), 30);
    }

    #[test]
    fn range_limit_refuses_without_change() {
        let mut a = Assembler::new(10_000);
        assert_eq!(a.capacity(), MIN_RANGES);
        for i in 0..MIN_RANGES {
            a.add(10 + i * 10, 5).unwrap();
        }
        assert_eq!(a.range_count(), MIN_RANGES);
        let before = ranges(&a);
        let recent_before: Vec<_> = a.sack_ranges().collect();
        assert_eq!(a.add(1000, 5), Err(AssemblerFull), "a 17th range");
        assert_eq!(a.add(0, 5), Err(AssemblerFull), "a 17th range at the front");
        assert_eq!(ranges(&a), before);
        assert_eq!(a.sack_ranges().collect::<Vec<_>>(), recent_before);
        assert_eq!(a.held_bytes(), MIN_RANGES * 5);
        // Extending or merging does not need a new range, so it still works when full.
        a.add(15, 5).unwrap();
        assert_eq!(a.range_count(), MIN_RANGES - 1);
        a.add(1000, 5).unwrap();
        assert_eq!(a.range_count(), MIN_RANGES);
    }

    #[test]
    fn room_for_ranges_follows_the_byte_bound() {
        assert_eq!(
            Assembler::new(0).capacity(),
            0,
            "the placeholder allocates nothing"
        );
        assert_eq!(Assembler::new(1000).capacity(), MIN_RANGES);
        // The default bound (256 KiB): a hole per segment of a lost-every-other window.
        let a = Assembler::new(256 * 1024);
        assert_eq!(a.capacity(), 128);
        assert_eq!(Assembler::new(1 << 30).capacity(), MAX_RANGES);
        // Every other 1448-byte segment of a 180-segment window is held: 90 ranges, all kept.
        let mut a = Assembler::new(256 * 1024);
        for i in 0..90 {
            a.add(1448 + i * 2896, 1448).unwrap();
        }
        assert_eq!(a.range_count(), 90);
    }

    #[test]
    fn pop_last_forgets_the_furthest_range() {
        let mut a = Assembler::new(1000);
        assert_eq!(a.pop_last(), None);
        a.add(10, 10).unwrap();
        a.add(50, 5).unwrap();
        assert_eq!(a.last(), Some((50, 5)));
        assert_eq!(a.pop_last(), Some((50, 5)));
        assert_eq!(ranges(&a), [(10, 10)]);
        assert_eq!(a.held_bytes(), 10);
        assert_eq!(
            a.sack_ranges().collect::<Vec<_>>(),
            [(10, 10)],
            "the most recent range went: no stale index"
        );
        a.add(30, 5).unwrap();
        assert_eq!(a.sack_ranges().next(), Some((30, 5)));
    }

    #[test]
    fn byte_limit_refuses_without_change() {
        let mut a = Assembler::new(20);
        a.add(10, 15).unwrap();
        assert_eq!(a.add(40, 6), Err(AssemblerFull));
        assert_eq!(a.add(4, 10), Err(AssemblerFull), "merge would hold 21");
        assert_eq!(ranges(&a), [(10, 15)]);
        a.add(40, 5).unwrap(); // exactly at the bound
        assert_eq!(a.held_bytes(), 20);
        assert_eq!(a.add(10, 15), Ok(()), "already held: no new bytes");
        assert_eq!(a.add(usize::MAX, 1), Err(AssemblerFull), "end overflows");
        assert_eq!(a.add(1, usize::MAX), Err(AssemblerFull), "end overflows");
        assert_eq!(ranges(&a), [(10, 15), (40, 5)]);
    }

    #[test]
    fn missing_yields_only_unheld_parts_so_the_first_copy_wins() {
        let mut a = Assembler::new(1000);
        a.add(10, 10).unwrap();
        a.add(30, 10).unwrap();
        assert_eq!(missing(&a, 0, 50), [(0, 10), (20, 10), (40, 10)]);
        assert_eq!(missing(&a, 12, 5), []);
        assert_eq!(missing(&a, 15, 10), [(20, 5)]);
        assert_eq!(missing(&a, 5, 10), [(5, 5)]);
        assert_eq!(missing(&a, 20, 10), [(20, 10)]);
        assert_eq!(missing(&a, 10, 30), [(20, 10)]);
        assert_eq!(missing(&a, 45, 5), [(45, 5)]);
        assert_eq!(missing(&a, usize::MAX - 1, 10), [(usize::MAX - 1, 1)]);

        // Overlapping segments with conflicting bytes: the receive path writes only `missing`.
        let mut buf = [0u8; 8];
        let mut a = Assembler::new(100);
        for (off, data) in [(2usize, b"AAAA"), (0, b"bbbb"), (4, b"cccc")] {
            for (m, n) in a.missing(off, data.len()) {
                buf[m..m + n].copy_from_slice(&data[m - off..m - off + n]);
            }
            a.add(off, data.len()).unwrap();
        }
        assert_eq!(&buf, b"bbAAAAcc");
    }

    #[test]
    fn take_front_merges_and_rebases() {
        let mut a = Assembler::new(1000);
        a.add(10, 5).unwrap();
        a.add(30, 5).unwrap();
        // 5 in-order bytes: not reaching 10, nothing joins; offsets rebase by 5.
        assert_eq!(a.take_front(5), 0);
        assert_eq!(ranges(&a), [(5, 5), (25, 5)]);
        // 5 more reach the first range exactly (adjacent): 5 more bytes become in order.
        assert_eq!(a.take_front(5), 5);
        assert_eq!(ranges(&a), [(15, 5)]);
        assert_eq!(a.held_bytes(), 5);
        // Data overlapping the held range (the writer skipped the held part).
        assert_eq!(a.take_front(17), 3);
        assert!(a.is_empty());
        assert_eq!(a.held_bytes(), 0);
        assert_eq!(a.take_front(0), 0);
    }

    #[test]
    fn take_front_swallows_every_covered_range() {
        let mut a = Assembler::new(1000);
        a.add(2, 2).unwrap();
        a.add(6, 2).unwrap();
        a.add(9, 4).unwrap();
        a.add(20, 1).unwrap();
        // In-order write covered [0, 10) around the held parts; [9, 13) continues past it.
        assert_eq!(a.take_front(10), 3);
        assert_eq!(ranges(&a), [(7, 1)]);
        assert_eq!(a.held_bytes(), 1);
        // A zero advance still takes a range that starts at offset 0.
        let mut a = Assembler::new(1000);
        a.add(0, 4).unwrap();
        assert_eq!(a.take_front(0), 4);
        assert!(a.is_empty());
    }

    #[test]
    fn sack_ranges_report_the_most_recent_first() {
        let mut a = Assembler::new(1000);
        a.add(10, 5).unwrap();
        a.add(30, 5).unwrap();
        a.add(50, 5).unwrap();
        assert_eq!(
            a.sack_ranges().collect::<Vec<_>>(),
            [(50, 5), (10, 5), (30, 5)]
        );
        a.add(15, 2).unwrap(); // extends the first
        assert_eq!(
            a.sack_ranges().collect::<Vec<_>>(),
            [(10, 7), (30, 5), (50, 5)]
        );
        a.add(20, 1).unwrap(); // new range in the middle
        assert_eq!(
            a.sack_ranges().collect::<Vec<_>>(),
            [(20, 1), (10, 7), (30, 5), (50, 5)]
        );
        a.add(21, 9).unwrap(); // bridges (20,1) and (30,5)
        assert_eq!(
            a.sack_ranges().collect::<Vec<_>>(),
            [(20, 15), (10, 7), (50, 5)]
        );
        // The recent range survives a rebase that removes an older one before it.
        assert_eq!(a.take_front(10), 7);
        assert_eq!(a.sack_ranges().collect::<Vec<_>>(), [(3, 15), (33, 5)]);
        // Once the recent range itself is taken, plain ascending order.
        a.add(40, 1).unwrap();
        a.add(1, 1).unwrap();
        assert_eq!(a.take_front(1), 1);
        assert_eq!(
            a.sack_ranges().collect::<Vec<_>>(),
            [(1, 15), (31, 5), (38, 1)]
        );
        a.clear();
        assert!(a.is_empty());
        assert_eq!(a.sack_ranges().count(), 0);
        assert_eq!(a.held_bytes(), 0);
    }

    #[test]
    fn debug_does_not_panic() {
        let mut a = Assembler::new(10);
        a.add(1, 2).unwrap();
        assert!(format!("{a:?}").contains("(1, 2)"));
    }

    const SPAN: usize = 160;

    #[derive(Debug, Clone)]
    enum Op {
        Add(usize, usize),
        TakeFront(usize),
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..SPAN / 2, 0..20usize).prop_map(|(o, l)| Op::Add(o, l)),
            1 => (0..12usize).prop_map(Op::TakeFront),
            1 => Just(Op::Clear),
        ]
    }

    /// Runs of set bits as (offset, len).
    fn runs(bits: &[bool], want: bool, from: usize, to: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut i = from;
        while i < to {
            if bits[i] == want {
                let s = i;
                while i < to && bits[i] == want {
                    i += 1;
                }
                out.push((s, i - s));
            } else {
                i += 1;
            }
        }
        out
    }

    /// The receive path as the module documentation describes it, over a ring and an
    /// assembler of the same size: returns false if the segment was dropped.
    fn receive(ring: &mut RingBuffer, asm: &mut Assembler, off: usize, data: &[u8]) -> bool {
        let free = ring.free();
        if off >= free {
            return false;
        }
        let data = &data[..data.len().min(free - off)];
        for (m, n) in asm.missing(off, data.len()) {
            let written = ring.write_at(m, &data[m - off..m - off + n]);
            assert_eq!(written, n);
        }
        if off == 0 {
            let extra = asm.take_front(data.len());
            let total = data.len() + extra;
            assert_eq!(ring.commit(total), total);
            true
        } else {
            asm.add(off, data.len()).is_ok()
        }
    }

    proptest! {
        /// Segments of one byte stream arrive out of order, duplicated and overlapping, while
        /// the reader consumes at random: what it reads is exactly the stream.
        #[test]
        fn ring_and_assembler_reassemble_a_stream(
            stream in prop::collection::vec(any::<u8>(), 1..400),
            segs in prop::collection::vec((0..400usize, 1..40usize, 0..50usize), 0..120),
            cap in 1..80usize,
        ) {
            let mut ring = RingBuffer::new(cap);
            let mut asm = Assembler::new(cap);
            let mut rcv_nxt = 0usize; // stream offset of the ring's tail
            let mut read = Vec::new();
            let drain = |ring: &mut RingBuffer, read: &mut Vec<u8>, n: usize| {
                let mut buf = [0u8; 64];
                let k = ring.read(&mut buf[..n.min(64)]);
                read.extend_from_slice(&buf[..k]);
            };
            for (start, len, consume) in segs {
                let start = start.min(stream.len() - 1);
                let end = (start + len).min(stream.len());
                if end > rcv_nxt {
                    let s = start.max(rcv_nxt);
                    let before = ring.len();
                    receive(&mut ring, &mut asm, s - rcv_nxt, &stream[s..end]);
                    rcv_nxt += ring.len() - before;
                }
                drain(&mut ring, &mut read, consume);
                prop_assert!(asm.held_bytes() <= ring.free());
            }
            // Then the rest in order, as a retransmitting sender would.
            while rcv_nxt < stream.len() {
                let end = (rcv_nxt + 16).min(stream.len());
                let before = ring.len();
                receive(&mut ring, &mut asm, 0, &stream[rcv_nxt..end]);
                rcv_nxt += ring.len() - before;
                drain(&mut ring, &mut read, 64);
            }
            drain(&mut ring, &mut read, 64);
            prop_assert!(asm.is_empty());
            prop_assert_eq!(read, stream);
        }

        #[test]
        fn assembler_matches_a_bitmap_model(
            max_bytes in 0..120usize,
            ops in prop::collection::vec(op(), 0..80),
        ) {
            let mut a = Assembler::new(max_bytes);
            // Bit i: byte at offset i is held. The model never needs more than SPAN bits:
            // adds stay below SPAN / 2 + 20 and take_front only shifts left.
            let mut bits = vec![false; SPAN];
            for op in ops {
                match op {
                    Op::Add(off, len) => {
                        let mut next = bits.clone();
                        next[off..off + len].iter_mut().for_each(|b| *b = true);
                        let count = runs(&next, true, 0, SPAN).len();
                        let held = next.iter().filter(|b| **b).count();
                        let ok = count <= a.capacity() && held <= max_bytes;
                        // Only missing parts are reported, and they are exactly the clear bits.
                        prop_assert_eq!(missing(&a, off, len), runs(&bits, false, off, off + len));
                        let res = a.add(off, len);
                        prop_assert_eq!(res.is_ok(), ok || len == 0, "add({}, {})", off, len);
                        if res.is_ok() {
                            bits = next;
                            if len > 0 {
                                // The range holding this segment is reported first.
                                let (s, l) = a.sack_ranges().next().unwrap();
                                prop_assert!(s <= off && off + len <= s + l);
                            }
                        }
                    }
                    Op::TakeFront(adv) => {
                        let mut front = adv;
                        while front < SPAN && bits[front] {
                            front += 1;
                        }
                        let extra = a.take_front(adv);
                        prop_assert_eq!(extra, front - adv);
                        bits.drain(..front);
                        bits.resize(SPAN, false);
                    }
                    Op::Clear => {
                        a.clear();
                        bits.iter_mut().for_each(|b| *b = false);
                    }
                }
                prop_assert_eq!(ranges(&a), runs(&bits, true, 0, SPAN));
                prop_assert_eq!(a.held_bytes(), bits.iter().filter(|b| **b).count());
                prop_assert_eq!(a.is_empty(), !bits.contains(&true));
                let mut sack: Vec<_> = a.sack_ranges().collect();
                sack.sort_unstable();
                prop_assert_eq!(sack, ranges(&a));
            }
        }
    }
}

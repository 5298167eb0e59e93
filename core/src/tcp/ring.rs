//! A fixed-capacity byte ring, allocated once, used for both the send and the receive buffer of
//! a connection.
//!
//! Layout: `head` is the read position, `len` bytes after it (wrapping) are *committed* and
//! readable; the `capacity - len` bytes after the tail are free. Free space can be written in
//! place (`writable_slices` + `commit`, or `write`), and also at an offset past the tail without
//! committing (`write_at`): the receive path puts out-of-order segments straight where they
//! belong and `commit`s them once the hole before them is filled, so no byte is copied twice.
//!
//! No method but `new` and `grow` allocates (growth is the buffers' autotuning, a few times
//! in a connection's life, never per segment), and none panics: counts and offsets beyond what the ring
//! holds are clamped, and the methods that move data say how much they moved.
//!
//! The read head is never moved back to the start of the storage when the ring drains: bytes
//! placed with `write_at` beyond the tail must stay where they were put. Only `clear` resets it.

/// Fixed-capacity byte ring; see the module documentation.
#[derive(Clone)]
pub struct RingBuffer {
    buf: Box<[u8]>,
    /// Index of the first readable byte; always `< capacity` (or 0 when the capacity is 0).
    head: usize,
    /// Committed (readable) bytes.
    len: usize,
}

impl RingBuffer {
    /// A ring holding up to `capacity` bytes, zero-filled. This is the only allocation.
    pub fn new(capacity: usize) -> Self {
        RingBuffer {
            buf: vec![0u8; capacity].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Committed, readable bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes that can still be written (committed or placed with `write_at`).
    pub fn free(&self) -> usize {
        self.capacity() - self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == self.capacity()
    }

    /// Forgets every byte, committed or placed, and moves the head back to the start.
    pub fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }

    /// Makes room for `capacity` bytes (no-op if the ring already holds that many): the bytes
    /// are copied in order, committed ones and those placed past the tail alike, so every
    /// offset from the head still names the same byte. Allocates.
    pub fn grow(&mut self, capacity: usize) {
        let old = self.capacity();
        if capacity <= old {
            return;
        }
        let mut buf = vec![0u8; capacity].into_boxed_slice();
        let (lo, hi) = self.buf.split_at(self.head);
        buf[..hi.len()].copy_from_slice(hi);
        buf[hi.len()..old].copy_from_slice(lo);
        self.buf = buf;
        self.head = 0;
    }

    /// Physical index of the byte `offset` positions after the head, for `offset <= capacity`.
    fn index(&self, offset: usize) -> usize {
        let cap = self.capacity();
        // head < cap and offset <= cap, so one subtraction is enough (and no overflow: both
        // are at most the length of an allocation, far below usize::MAX / 2).
        let i = self.head + offset;
        if i >= cap {
            i - cap
        } else {
            i
        }
    }

    /// The `n` bytes starting `offset` bytes after the head, as the part up to the end of the
    /// storage and the part from its start. Requires `offset + n <= capacity`.
    fn region(&self, offset: usize, n: usize) -> (&[u8], &[u8]) {
        let start = self.index(offset);
        let (lo, hi) = self.buf.split_at(start);
        let first = n.min(hi.len());
        (&hi[..first], &lo[..n - first])
    }

    /// Mutable counterpart of `region`.
    fn region_mut(&mut self, offset: usize, n: usize) -> (&mut [u8], &mut [u8]) {
        let start = self.index(offset);
        let (lo, hi) = self.buf.split_at_mut(start);
        let first = n.min(hi.len());
        // n <= capacity - offset, so n - first <= start = lo.len().
        (&mut hi[..first], &mut lo[..n - first])
    }

    /// The readable bytes in order: the first slice, then the second (empty unless they wrap).
    pub fn as_slices(&self) -> (&[u8], &[u8]) {
        self.region(0, self.len)
    }

    /// Drops up to `n` bytes from the front; returns how many were dropped (`min(n, len())`).
    pub fn consume(&mut self, n: usize) -> usize {
        let n = n.min(self.len);
        self.head = self.index(n);
        self.len -= n;
        n
    }

    /// Up to `len` readable bytes starting `offset` bytes after the head, without consuming
    /// them (retransmission reads). Clamped to what is readable: past the end gives empties.
    pub fn slices_at(&self, offset: usize, len: usize) -> (&[u8], &[u8]) {
        let offset = offset.min(self.len);
        let n = len.min(self.len - offset);
        self.region(offset, n)
    }

    /// The free space after the tail, in order. Write into it, then `commit` what was written.
    pub fn writable_slices(&mut self) -> (&mut [u8], &mut [u8]) {
        let (len, free) = (self.len, self.free());
        self.region_mut(len, free)
    }

    /// Makes up to `n` bytes after the tail readable; returns how many (`min(n, free())`).
    pub fn commit(&mut self, n: usize) -> usize {
        let n = n.min(self.free());
        self.len += n;
        n
    }

    /// Copies as much of `data` as fits after the tail and commits it; returns the count.
    pub fn write(&mut self, data: &[u8]) -> usize {
        let n = self.write_at(0, data);
        self.commit(n)
    }

    /// Copies as much of `data` as fits into the free space starting `offset_past_tail` bytes
    /// after the tail, *without* committing it; returns the count (0 when the offset is at or
    /// past the end of the free space). A later `commit` covering these bytes makes them
    /// readable; until then `write`, `writable_slices` and other `write_at`s may overwrite them.
    pub fn write_at(&mut self, offset_past_tail: usize, data: &[u8]) -> usize {
        let free = self.free();
        if offset_past_tail >= free {
            return 0;
        }
        let n = data.len().min(free - offset_past_tail);
        let (a, b) = self.region_mut(self.len + offset_past_tail, n);
        let split = a.len();
        a.copy_from_slice(&data[..split]);
        b.copy_from_slice(&data[split..n]);
        n
    }

    /// Copies up to `out.len()` readable bytes into `out` and consumes them; returns the count.
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let (a, b) = self.as_slices();
        let n1 = a.len().min(out.len());
        out[..n1].copy_from_slice(&a[..n1]);
        let n2 = b.len().min(out.len() - n1);
        out[n1..n1 + n2].copy_from_slice(&b[..n2]);
        self.consume(n1 + n2)
    }
}

impl core::fmt::Debug for RingBuffer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RingBuffer")
            .field("capacity", &self.capacity())
            .field("head", &self.head)
            .field("len", &self.len)
            .finish()
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn grow_keeps_every_byte_at_its_offset_across_the_wrap() {
        let mut r = RingBuffer::new(8);
        r.write(b"abcdef");
        r.consume(5); // head at 5: "f" readable
        r.write(b"ghi"); // wraps: "fghi"
        assert_eq!(r.write_at(1, b"Z"), 1); // placed past the tail, not committed
        r.grow(32);
        assert_eq!(r.capacity(), 32);
        assert_eq!(r.as_slices(), (&b"fghi"[..], &b""[..]));
        r.commit(2);
        let (a, b) = r.as_slices();
        assert_eq!([a, b].concat()[5], b'Z', "the placed byte kept its offset");
        assert_eq!(r.free(), 26);
        r.grow(16); // never shrinks
        assert_eq!(r.capacity(), 32);
    }

    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    fn joined((a, b): (&[u8], &[u8])) -> Vec<u8> {
        let mut v = a.to_vec();
        v.extend_from_slice(b);
        v
    }

    fn joined_mut((a, b): (&mut [u8], &mut [u8])) -> Vec<u8> {
        let mut v = a.to_vec();
        v.extend_from_slice(b);
        v
    }

    /// A ring of `cap` whose head sits at physical index `start`, empty.
    fn ring_with_head_at(cap: usize, start: usize) -> RingBuffer {
        let mut r = RingBuffer::new(cap);
        assert_eq!(r.write(&vec![0xEE; start]), start);
        assert_eq!(r.consume(start), start);
        assert!(r.is_empty());
        r
    }

    #[test]
    fn new_ring_is_empty() {
        let r = RingBuffer::new(8);
        assert_eq!(r.capacity(), 8);
        assert_eq!(r.len(), 0);
        assert_eq!(r.free(), 8);
        assert!(r.is_empty());
        assert!(!r.is_full());
        assert_eq!(joined(r.as_slices()), b"");
    }

    #[test]
    fn zero_capacity_ring_accepts_nothing_and_never_panics() {
        let mut r = RingBuffer::new(0);
        assert!(r.is_empty());
        assert!(r.is_full());
        assert_eq!(r.write(b"abc"), 0);
        assert_eq!(r.write_at(0, b"abc"), 0);
        assert_eq!(r.commit(5), 0);
        assert_eq!(r.consume(5), 0);
        assert_eq!(joined(r.slices_at(3, 3)), b"");
        assert_eq!(joined_mut(r.writable_slices()), b"");
        assert_eq!(r.read(&mut [0; 4]), 0);
        r.clear();
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn write_copies_what_fits() {
        let mut r = RingBuffer::new(4);
        assert_eq!(r.write(b"ab"), 2);
        assert_eq!(r.write(b"cdef"), 2);
        assert!(r.is_full());
        assert_eq!(r.free(), 0);
        assert_eq!(r.write(b"g"), 0);
        assert_eq!(joined(r.as_slices()), b"abcd");
    }

    #[test]
    fn consume_and_commit_clamp() {
        let mut r = RingBuffer::new(4);
        r.write(b"abc");
        assert_eq!(r.consume(10), 3);
        assert!(r.is_empty());
        assert_eq!(r.commit(10), 4);
        assert!(r.is_full());
        assert_eq!(r.consume(usize::MAX), 4);
        assert_eq!(r.commit(usize::MAX), 4);
    }

    #[test]
    fn clear_resets_head_and_len() {
        let mut r = ring_with_head_at(5, 3);
        r.write(b"xyz");
        r.clear();
        assert!(r.is_empty());
        assert_eq!(r.free(), 5);
        let (a, b) = r.writable_slices();
        assert_eq!((a.len(), b.len()), (5, 0));
    }

    /// Every head position, every fill level: contents read back in order and wrap where the
    /// storage ends.
    #[test]
    fn wraparound_at_every_offset() {
        for cap in 1..=9usize {
            for start in 0..cap {
                for fill in 0..=cap {
                    let mut r = ring_with_head_at(cap, start);
                    let data: Vec<u8> = (0..fill as u8).map(|i| i + 1).collect();
                    assert_eq!(r.write(&data), fill);
                    let (a, b) = r.as_slices();
                    assert_eq!(a.len(), fill.min(cap - start), "cap {cap} start {start}");
                    assert_eq!(b.len(), fill - a.len());
                    assert_eq!(joined((a, b)), data);
                    assert_eq!(r.is_full(), fill == cap);
                    // Free space follows the tail, wrapping as well.
                    let (fa, fb) = r.writable_slices();
                    assert_eq!(fa.len() + fb.len(), cap - fill);
                    // Reading everything back through `read` gives the same bytes.
                    let mut out = vec![0; cap + 1];
                    assert_eq!(r.read(&mut out), fill);
                    assert_eq!(&out[..fill], &data[..]);
                    assert!(r.is_empty());
                }
            }
        }
    }

    #[test]
    fn slices_at_across_the_wrap() {
        for cap in 1..=8usize {
            for start in 0..cap {
                let mut r = ring_with_head_at(cap, start);
                let data: Vec<u8> = (0..cap as u8).map(|i| i + 10).collect();
                r.write(&data);
                for off in 0..=cap + 2 {
                    for len in 0..=cap + 2 {
                        let got = joined(r.slices_at(off, len));
                        let lo = off.min(cap);
                        let hi = (lo + len).min(cap);
                        assert_eq!(got, &data[lo..hi], "cap {cap} start {start} {off}+{len}");
                    }
                }
                // Reading does not consume.
                assert_eq!(r.len(), cap);
            }
        }
        // Huge values clamp instead of overflowing.
        let mut r = RingBuffer::new(4);
        r.write(b"abcd");
        assert_eq!(joined(r.slices_at(usize::MAX, usize::MAX)), b"");
        assert_eq!(joined(r.slices_at(1, usize::MAX)), b"bcd");
    }

    #[test]
    fn writable_slices_then_commit_across_the_wrap() {
        let mut r = ring_with_head_at(6, 4);
        r.write(b"a");
        {
            let (a, b) = r.writable_slices();
            assert_eq!((a.len(), b.len()), (1, 4));
            a[0] = b'b';
            b[0] = b'c';
            b[1] = b'd';
        }
        assert_eq!(r.commit(3), 3);
        assert_eq!(joined(r.as_slices()), b"abcd");
    }

    #[test]
    fn write_at_beyond_tail_then_commit() {
        for start in 0..8 {
            let mut r = ring_with_head_at(8, start);
            r.write(b"ab");
            // Out of order: "ef" lands 2 bytes past the tail, leaving a hole for "cd".
            assert_eq!(r.write_at(2, b"ef"), 2);
            assert_eq!(r.len(), 2, "write_at does not commit");
            assert_eq!(joined(r.as_slices()), b"ab");
            // The hole is filled in place, then both are committed at once.
            assert_eq!(r.write_at(0, b"cd"), 2);
            assert_eq!(r.commit(4), 4);
            assert_eq!(joined(r.as_slices()), b"abcdef");
            // Consuming everything keeps bytes placed past the tail where they are.
            assert_eq!(r.write_at(1, b"h"), 1);
            r.consume(6);
            assert_eq!(r.write_at(0, b"g"), 1);
            assert_eq!(r.commit(2), 2);
            assert_eq!(joined(r.as_slices()), b"gh");
        }
    }

    #[test]
    fn write_at_clamps_to_free_space() {
        let mut r = RingBuffer::new(5);
        r.write(b"ab");
        assert_eq!(r.write_at(1, b"xyzw"), 2, "only 3 free, offset 1");
        assert_eq!(r.write_at(3, b"q"), 0, "offset at end of free space");
        assert_eq!(r.write_at(usize::MAX, b"q"), 0);
        assert_eq!(r.write_at(0, b""), 0);
        assert_eq!(r.commit(usize::MAX), 3);
        let (a, b) = r.as_slices();
        assert_eq!(joined((a, b))[3..], *b"xy");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Write(Vec<u8>),
        WriteAt(usize, Vec<u8>),
        Commit(usize),
        Consume(usize),
        FillWritable(usize, u8),
        Read(usize),
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        let bytes = prop::collection::vec(any::<u8>(), 0..24);
        prop_oneof![
            bytes.clone().prop_map(Op::Write),
            (0..24usize, bytes).prop_map(|(o, d)| Op::WriteAt(o, d)),
            (0..24usize).prop_map(Op::Commit),
            (0..24usize).prop_map(Op::Consume),
            (0..24usize, any::<u8>()).prop_map(|(n, v)| Op::FillWritable(n, v)),
            (0..24usize).prop_map(Op::Read),
            Just(Op::Clear),
        ]
    }

    /// Model: readable bytes in a VecDeque; the free space after the tail as bytes known to
    /// have been placed there (`None` = whatever stale contents the storage has, not compared).
    #[derive(Default)]
    struct Model {
        cap: usize,
        data: VecDeque<Option<u8>>,
        placed: Vec<Option<u8>>,
    }

    impl Model {
        fn free(&self) -> usize {
            self.cap - self.data.len()
        }
        fn place(&mut self, off: usize, bytes: &[u8]) -> usize {
            let n = bytes.len().min(self.free().saturating_sub(off));
            if self.placed.len() < off + n {
                self.placed.resize(off + n, None);
            }
            for (i, &b) in bytes[..n].iter().enumerate() {
                self.placed[off + i] = Some(b);
            }
            n
        }
        fn commit(&mut self, n: usize) -> usize {
            let n = n.min(self.free());
            for i in 0..n {
                self.data.push_back(self.placed.get(i).copied().flatten());
            }
            self.placed.drain(..n.min(self.placed.len()));
            n
        }
        fn consume(&mut self, n: usize) -> Vec<Option<u8>> {
            let n = n.min(self.data.len());
            self.data.drain(..n).collect()
        }
    }

    fn matches(model: &[Option<u8>], got: &[u8]) -> bool {
        model.len() == got.len()
            && model
                .iter()
                .zip(got)
                .all(|(m, g)| m.is_none() || *m == Some(*g))
    }

    proptest! {
        #[test]
        fn ring_behaves_like_a_deque_model(
            cap in 0..20usize,
            ops in prop::collection::vec(op(), 0..64),
        ) {
            let mut r = RingBuffer::new(cap);
            let mut m = Model { cap, ..Model::default() };
            for op in ops {
                match op {
                    Op::Write(d) => {
                        let n = m.place(0, &d);
                        m.commit(n);
                        prop_assert_eq!(r.write(&d), n);
                    }
                    Op::WriteAt(o, d) => prop_assert_eq!(r.write_at(o, &d), m.place(o, &d)),
                    Op::Commit(n) => prop_assert_eq!(r.commit(n), m.commit(n)),
                    Op::Consume(n) => prop_assert_eq!(r.consume(n), m.consume(n).len()),
                    Op::FillWritable(n, v) => {
                        let n = n.min(m.free());
                        let (a, b) = r.writable_slices();
                        for (i, byte) in a.iter_mut().chain(b.iter_mut()).take(n).enumerate() {
                            *byte = v.wrapping_add(i as u8);
                        }
                        let fill: Vec<u8> = (0..n).map(|i| v.wrapping_add(i as u8)).collect();
                        m.place(0, &fill);
                        prop_assert_eq!(r.commit(n), m.commit(n));
                    }
                    Op::Read(n) => {
                        let mut out = vec![0; n];
                        let got = r.read(&mut out);
                        let want = m.consume(n);
                        prop_assert!(matches(&want, &out[..got]));
                    }
                    Op::Clear => {
                        r.clear();
                        m.data.clear();
                        m.placed.clear();
                    }
                }
                prop_assert_eq!(r.len(), m.data.len());
                prop_assert_eq!(r.free(), m.free());
                prop_assert_eq!(r.is_empty(), m.data.is_empty());
                prop_assert_eq!(r.is_full(), m.free() == 0);
                let model: Vec<Option<u8>> = m.data.iter().copied().collect();
                prop_assert!(matches(&model, &joined(r.as_slices())));
                for off in 0..=m.data.len() {
                    let len = (off * 7 + 3) % (m.data.len() + 2);
                    let end = (off + len).min(model.len());
                    prop_assert!(matches(&model[off..end], &joined(r.slices_at(off, len))));
                }
                let free_now = m.free();
                let mut placed = m.placed.clone();
                placed.resize(free_now, None);
                prop_assert!(matches(&placed, &joined_mut(r.writable_slices())));
            }
        }
    }
}

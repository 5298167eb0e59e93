//! A connection's byte buffer: a fixed block allocated once per slot, holding the bytes
//! `start..end` (to send, or received and not yet consumed) with free room after them.
//!
//! The kernel reads `start..end` during a send and writes into the room during a receive, so
//! the bytes move to the front ([`ByteBuf::compact`]) only while no operation is in flight on
//! the buffer; the owner checks that. Everything else the owner does (appending after `end`
//! while a send reads before it, consuming from `start` while a receive writes after `end`)
//! never touches what the kernel is using.

pub(super) struct ByteBuf {
    data: Box<[u8]>,
    start: usize,
    end: usize,
}

impl ByteBuf {
    pub(super) fn new(len: usize) -> Self {
        ByteBuf {
            data: vec![0u8; len].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// Bytes held.
    pub(super) fn len(&self) -> usize {
        self.end - self.start
    }

    pub(super) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub(super) fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// Free room after the bytes held.
    pub(super) fn room_len(&self) -> usize {
        self.data.len() - self.end
    }

    pub(super) fn room_mut(&mut self) -> &mut [u8] {
        &mut self.data[self.end..]
    }

    /// Where the bytes held start, for a send: valid for `len()` bytes while the buffer lives
    /// and `start` does not move.
    pub(super) fn filled_ptr(&self) -> *const u8 {
        self.data[self.start..].as_ptr()
    }

    /// Where the room starts, for a receive: valid for `room_len()` bytes while the buffer
    /// lives and `end` does not move.
    pub(super) fn room_ptr(&mut self) -> *mut u8 {
        self.data[self.end..].as_mut_ptr()
    }

    /// `n` bytes were written into the room (clamped to it).
    pub(super) fn commit(&mut self, n: usize) {
        self.end += n.min(self.room_len());
    }

    /// `n` bytes were used from the front (clamped to what is held). With `rewind` (no
    /// operation writes into the room), an emptied buffer starts over at the front, so the
    /// common case never copies; without it `end` stays put, because a receive in flight
    /// writes at `end` and its completion commits from there.
    pub(super) fn consume(&mut self, n: usize, rewind: bool) {
        self.start += n.min(self.len());
        if rewind && self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Moves the bytes held to the front. Only while no operation uses the buffer.
    pub(super) fn compact(&mut self) {
        if self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    /// Whether compacting is worth a copy: bytes sit after the front and less than half the
    /// buffer is free after them, or the buffer is empty away from the front (no copy at all:
    /// what a consume under a receive in flight leaves).
    pub(super) fn wants_compact(&self) -> bool {
        self.start > 0 && (self.is_empty() || self.room_len() < self.data.len() / 2)
    }

    pub(super) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_keep_their_order_through_commit_consume_and_compact() {
        let mut b = ByteBuf::new(8);
        b.room_mut()[..3].copy_from_slice(b"abc");
        b.commit(3);
        assert_eq!(b.filled(), b"abc");
        b.consume(2, true);
        assert_eq!((b.filled(), b.room_len()), (&b"c"[..], 5));
        assert!(!b.wants_compact(), "5 of 8 free is not under half");
        b.room_mut()[..4].copy_from_slice(b"defg");
        b.commit(4);
        assert!(b.wants_compact());
        b.compact();
        assert_eq!((b.filled(), b.room_len()), (&b"cdefg"[..], 3));
        b.consume(5, true);
        assert!(b.is_empty());
        assert_eq!(
            b.room_len(),
            8,
            "an emptied buffer starts over at the front"
        );
    }

    #[test]
    fn emptied_under_a_receive_in_flight_the_buffer_keeps_its_place() {
        let mut b = ByteBuf::new(8);
        b.room_mut()[..3].copy_from_slice(b"abc");
        b.commit(3);
        // A receive is posted at `end` (3); the owner consumes everything meanwhile.
        b.consume(3, false);
        assert!(b.is_empty());
        assert_eq!(
            b.room_len(),
            5,
            "the receive's room is still where it was posted"
        );
        // The receive completes: its bytes were written at 3.., and are the ones committed.
        b.room_mut()[..2].copy_from_slice(b"de");
        b.commit(2);
        assert_eq!(b.filled(), b"de");
        b.consume(2, false);
        assert!(
            b.wants_compact(),
            "empty away from the front: back to it, for nothing"
        );
        b.compact();
        assert_eq!(b.room_len(), 8);
    }

    #[test]
    fn commit_and_consume_are_clamped_to_what_exists() {
        let mut b = ByteBuf::new(4);
        b.commit(10);
        assert_eq!(b.len(), 4);
        b.consume(10, true);
        assert_eq!((b.len(), b.room_len()), (0, 4));
    }
}

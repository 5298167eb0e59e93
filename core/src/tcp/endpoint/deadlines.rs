//! The connections' next deadlines, at most one per slot, in a binary min-heap that knows where
//! each slot's entry sits (an indexed heap). Moving, adding or removing a slot's deadline is
//! O(log n) and leaves nothing stale behind: the heap never holds more entries than there are
//! connections with a timer, and its top is always the exact next deadline.
//!
//! A connection moves its deadline twice per request on a keep-alive connection (the
//! retransmission timer armed by the response, stopped by the ACK that comes with the next
//! request); a heap with lazy deletion pushed an entry each time and popped the stale ones
//! later, so it held up to twice the connection count in dead entries.

use crate::time::Instant;

/// `pos` of a slot that has no deadline.
const ABSENT: u32 = u32::MAX;

pub(super) struct Deadlines {
    /// (deadline, slot), ordered as a min-heap; equal deadlines by slot, so the order in which
    /// due connections fire does not depend on the heap's shape.
    heap: Vec<(Instant, u32)>,
    /// Where each slot's entry is in `heap`, or `ABSENT`.
    pos: Box<[u32]>,
}

impl Deadlines {
    /// Room for `slots` slots, numbered `0..slots`.
    pub fn new(slots: usize) -> Self {
        Deadlines {
            heap: Vec::with_capacity(slots),
            pos: vec![ABSENT; slots].into_boxed_slice(),
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// The earliest deadline and its slot.
    pub fn first(&self) -> Option<(Instant, u32)> {
        self.heap.first().copied()
    }

    /// Sets, moves or (with `None`) removes `slot`'s deadline. Slots beyond `new`'s count are
    /// ignored.
    pub fn set(&mut self, slot: u32, at: Option<Instant>) {
        let Some(&i) = self.pos.get(slot as usize) else {
            return;
        };
        match (i, at) {
            (ABSENT, None) => {}
            (ABSENT, Some(at)) => {
                self.heap.push((at, slot));
                let last = self.heap.len() - 1;
                self.pos[slot as usize] = last as u32;
                self.sift_up(last);
            }
            (i, Some(at)) => {
                let i = i as usize;
                let old = self.heap[i];
                if old.0 == at {
                    return; // the common case: an input that changed no timer
                }
                self.heap[i].0 = at;
                if (at, slot) < old {
                    self.sift_up(i);
                } else {
                    self.sift_down(i);
                }
            }
            (i, None) => {
                let i = i as usize;
                self.pos[slot as usize] = ABSENT;
                let last = self.heap.pop().expect("an entry is present");
                if i < self.heap.len() {
                    // The last entry fills the hole and moves whichever way it must.
                    self.place(i, last);
                    self.sift_up(i);
                    self.sift_down(self.pos[last.1 as usize] as usize);
                }
            }
        }
    }

    fn place(&mut self, i: usize, entry: (Instant, u32)) {
        self.heap[i] = entry;
        self.pos[entry.1 as usize] = i as u32;
    }

    fn sift_up(&mut self, mut i: usize) {
        let entry = self.heap[i];
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.heap[parent] <= entry {
                break;
            }
            self.place(i, self.heap[parent]);
            i = parent;
        }
        self.place(i, entry);
    }

    fn sift_down(&mut self, mut i: usize) {
        let entry = self.heap[i];
        let n = self.heap.len();
        loop {
            let left = 2 * i + 1;
            if left >= n {
                break;
            }
            let right = left + 1;
            let child = if right < n && self.heap[right] < self.heap[left] {
                right
            } else {
                left
            };
            if entry <= self.heap[child] {
                break;
            }
            self.place(i, self.heap[child]);
            i = child;
        }
        self.place(i, entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn first_is_the_earliest_and_ties_go_by_slot() {
        let mut d = Deadlines::new(4);
        assert_eq!(d.first(), None);
        d.set(2, Some(Instant::from_secs(5)));
        d.set(1, Some(Instant::from_secs(5)));
        d.set(3, Some(Instant::from_secs(7)));
        assert_eq!(d.first(), Some((Instant::from_secs(5), 1)));
        d.set(1, Some(Instant::from_secs(9)));
        assert_eq!(d.first(), Some((Instant::from_secs(5), 2)));
        d.set(2, None);
        assert_eq!(d.first(), Some((Instant::from_secs(7), 3)));
        assert_eq!(d.len(), 2);
        d.set(9, Some(Instant::ZERO)); // not a slot: ignored
        assert_eq!(d.len(), 2);
    }

    proptest! {
        /// After any sequence of sets and removals the heap holds exactly the slots that have
        /// a deadline, and its top is the least (deadline, slot) among them.
        #[test]
        fn matches_a_plain_table(ops in prop::collection::vec((0u32..16, prop::option::of(0u64..50)), 0..300)) {
            let mut d = Deadlines::new(16);
            let mut model: [Option<Instant>; 16] = [None; 16];
            for (slot, at) in ops {
                let at = at.map(Instant::from_millis);
                d.set(slot, at);
                model[slot as usize] = at;
                let expected = model
                    .iter()
                    .enumerate()
                    .filter_map(|(s, at)| at.map(|at| (at, s as u32)))
                    .min();
                prop_assert_eq!(d.first(), expected);
                prop_assert_eq!(d.len(), model.iter().flatten().count());
                for (i, &(at, s)) in d.heap.iter().enumerate() {
                    prop_assert_eq!(d.pos[s as usize] as usize, i);
                    prop_assert_eq!(model[s as usize], Some(at));
                }
            }
        }
    }
}

//! The open loop's timetable: when each request is due, whatever happens to earlier ones.
//!
//! Request `i` of the run (counted over all threads) is due at `start + i / rate`. Thread `t`
//! of `T` takes the requests `i = t, t + T, t + 2T, ...`, so together the threads send one
//! evenly spaced stream. Requests due before the warm-up ends are sent but not counted; the
//! run counts those due in `[measure_start, end)` for a duration, or the first `n` due from
//! `measure_start` on for a request count. Intended times are computed, never accumulated, so
//! they do not drift however late the thread runs.

/// One thread's share of the timetable.
#[derive(Debug, Clone)]
pub struct Schedule {
    start: u64,
    ns_per_request: f64,
    stride: u64,
    next_index: u64,
    /// Global index of the first request not to send.
    end_index: u64,
}

impl Schedule {
    /// `start`, `measure_start` and `end` are ns on the run's clock; `end` bounds the due
    /// times with a duration, `count` the number of counted requests otherwise.
    pub fn new(
        start: u64,
        measure_start: u64,
        rate: f64,
        thread: usize,
        threads: usize,
        stop: Bound,
    ) -> Schedule {
        let ns_per_request = 1e9 / rate;
        let mut s = Schedule {
            start,
            ns_per_request,
            stride: threads as u64,
            next_index: thread as u64,
            end_index: u64::MAX,
        };
        let first_counted = s.first_index_at_or_after(measure_start);
        s.end_index = match stop {
            Bound::Until(end) => s.first_index_at_or_after(end),
            Bound::Count(n) => first_counted.saturating_add(n),
        };
        s
    }

    /// Due time of global request `i`.
    pub fn due(&self, i: u64) -> u64 {
        self.start + (i as f64 * self.ns_per_request) as u64
    }

    fn first_index_at_or_after(&self, t: u64) -> u64 {
        let mut i = ((t.saturating_sub(self.start)) as f64 / self.ns_per_request) as u64;
        while i > 0 && self.due(i - 1) >= t {
            i -= 1;
        }
        while self.due(i) < t {
            i += 1;
        }
        i
    }

    /// Due time of this thread's next request, if any is left.
    pub fn peek(&self) -> Option<u64> {
        (self.next_index < self.end_index).then(|| self.due(self.next_index))
    }

    /// The next request's due time if it is due at `now`.
    pub fn pop_due(&mut self, now: u64) -> Option<u64> {
        let due = self.peek().filter(|&d| d <= now)?;
        self.next_index += self.stride;
        Some(due)
    }

    /// No request is left to send.
    pub fn done(&self) -> bool {
        self.next_index >= self.end_index
    }
}

/// The end of an open-loop run's timetable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Requests due before this time.
    Until(u64),
    /// This many counted requests.
    Count(u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_due(mut s: Schedule) -> Vec<u64> {
        let mut v = Vec::new();
        while let Some(d) = s.pop_due(u64::MAX) {
            v.push(d);
        }
        assert!(s.done());
        v
    }

    #[test]
    fn threads_interleave_into_one_even_stream() {
        let start = 1_000_000_000;
        let end = start + 2_000_000_000;
        let mut merged: Vec<u64> = (0..3)
            .flat_map(|t| all_due(Schedule::new(start, start, 2000.0, t, 3, Bound::Until(end))))
            .collect();
        merged.sort_unstable();
        assert_eq!(merged.len(), 4000);
        for (i, d) in merged.iter().enumerate() {
            assert_eq!(*d, start + i as u64 * 500_000);
        }
    }

    #[test]
    fn warmup_requests_are_extra_and_counts_are_exact() {
        let start = 5;
        let warm_end = start + 1_000_000_000;
        // 3 requests per second: due at 0, 333.3 ms, 666.7 ms (warm-up), then 1 s on.
        let s = Schedule::new(start, warm_end, 3.0, 0, 1, Bound::Count(4));
        let due = all_due(s);
        assert_eq!(due.len(), 7);
        assert_eq!(due.iter().filter(|&&d| d >= warm_end).count(), 4);
        let s = Schedule::new(start, warm_end, 3.0, 0, 1, Bound::Until(warm_end + 1));
        assert_eq!(all_due(s).len(), 4);
    }

    #[test]
    fn nothing_is_popped_before_it_is_due() {
        let mut s = Schedule::new(100, 100, 10.0, 0, 1, Bound::Count(3));
        assert_eq!(s.pop_due(100), Some(100));
        assert_eq!(s.pop_due(100_000_099), None);
        assert_eq!(s.peek(), Some(100_000_100));
        assert_eq!(s.pop_due(300_000_100), Some(100_000_100));
        assert_eq!(s.pop_due(300_000_100), Some(200_000_100));
        assert_eq!(s.pop_due(u64::MAX), None);
    }
}

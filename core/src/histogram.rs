//! A fixed-bucket latency histogram: a few counters per connection, no allocation, summed
//! across connections and threads, exported as a Prometheus histogram. HdrHistogram (which
//! loadgen uses) would be exact but allocates and is large; an operator's dashboard needs
//! buckets, which this gives at the cost of an `add` per response.

use serde::{Deserialize, Serialize};

use crate::time::Duration;

/// Upper bounds of the buckets, in microseconds (the last bucket is everything above).
pub const BOUNDS_US: [u64; 15] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 5_000_000,
];

/// Counts per bucket (not cumulative), plus the sum; `buckets[BOUNDS_US.len()]` is `+Inf`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyHistogram {
    pub buckets: [u64; BOUNDS_US.len() + 1],
    pub sum_us: u64,
}

impl LatencyHistogram {
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BOUNDS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(BOUNDS_US.len());
        self.buckets[i] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }

    pub fn add(&mut self, other: &LatencyHistogram) {
        for (total, n) in self.buckets.iter_mut().zip(other.buckets) {
            *total += n;
        }
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
    }

    /// Observations recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// `(upper bound in µs or None for +Inf, observations at or below it)`, as Prometheus
    /// wants its `_bucket` series.
    pub fn cumulative(&self) -> impl Iterator<Item = (Option<u64>, u64)> + '_ {
        let bounds = BOUNDS_US
            .iter()
            .map(|&b| Some(b))
            .chain(std::iter::once(None));
        bounds.zip(self.buckets.iter().scan(0u64, |acc, &n| {
            *acc += n;
            Some(*acc)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let mut h = LatencyHistogram::default();
        h.record(Duration::from_micros(50)); // at a bound: that bucket
        h.record(Duration::from_micros(51));
        h.record(Duration::from_secs(60)); // beyond every bound: +Inf
        assert_eq!(h.buckets[0], 1);
        assert_eq!(h.buckets[1], 1);
        assert_eq!(h.buckets[BOUNDS_US.len()], 1);
        assert_eq!(h.count(), 3);
        assert_eq!(h.sum_us, 50 + 51 + 60_000_000);
        let cum: Vec<_> = h.cumulative().collect();
        assert_eq!(cum.len(), BOUNDS_US.len() + 1);
        assert_eq!(cum[0], (Some(50), 1));
        assert_eq!(cum[1], (Some(100), 2));
        assert_eq!(*cum.last().unwrap(), (None, 3));
        let mut sum = LatencyHistogram::default();
        sum.add(&h);
        sum.add(&h);
        assert_eq!(sum.count(), 6);
    }
}

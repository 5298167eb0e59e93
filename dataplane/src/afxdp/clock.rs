//! The poller's clocks: the only place on the bypass path that reads time.
//!
//! The sans-IO engine takes [`crate::time::Instant`] (microseconds from an epoch the caller
//! picks); [`Clock`] picks the moment it was created, on the monotonic clock, and converts at
//! the edge. The wall clock is read only for the `Date` header, once per second.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::time::{Duration, Instant};

/// A monotonic clock whose epoch is the moment it was created. `Copy`: pollers created from one
/// clock agree on what an `Instant` means.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: std::time::Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock whose `now()` starts at zero.
    pub fn new() -> Self {
        Self {
            origin: std::time::Instant::now(),
        }
    }

    /// Monotonic time since the clock was created.
    pub fn now(&self) -> Instant {
        let micros = self.origin.elapsed().as_micros();
        Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    /// Wall-clock seconds since the Unix epoch and how long until the next second starts.
    /// A clock set before 1970 reads as the epoch.
    pub fn wall(&self) -> (u64, Duration) {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let to_next =
            Duration::from_secs(1) - Duration::from_nanos(u64::from(since.subsec_nanos()));
        (since.as_secs(), to_next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_monotonic_and_wall_is_recent() {
        let c = Clock::new();
        let a = c.now();
        let b = c.now();
        assert!(b >= a);
        let (secs, to_next) = c.wall();
        assert!(secs > 1_600_000_000);
        assert!(to_next <= Duration::from_secs(1) && to_next > Duration::ZERO);
    }
}

//! The RFC 5961 §7 rate limit on challenge ACKs: one budget per second for the whole endpoint,
//! shared by the connections and the TIME_WAIT records. A second instance bounds the
//! early-data checks of the cookie front (`TcpConfig::early_data_checks`).

use super::config::TcpStats;
use crate::time::{Duration, Instant};

/// RFC 5961 §7: one global budget of challenge ACKs per second.
#[derive(Debug, Clone)]
pub struct ChallengeLimiter {
    limit: u32,
    window_start: Instant,
    used: u32,
}

impl ChallengeLimiter {
    pub fn new(limit: u32, now: Instant) -> Self {
        ChallengeLimiter {
            limit,
            window_start: now,
            used: 0,
        }
    }

    /// Whether one more may go in this second (and counts it if so).
    #[must_use]
    pub fn allow(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.used = 0;
        }
        if self.used < self.limit {
            self.used += 1;
            true
        } else {
            false
        }
    }

    /// Whether a challenge ACK may go out now (RFC 5961 §7), counted as sent or suppressed.
    #[must_use]
    pub fn allow_challenge(&mut self, now: Instant, stats: &mut TcpStats) -> bool {
        let allowed = self.allow(now);
        if allowed {
            stats.challenge_acks_sent += 1;
        } else {
            stats.challenge_acks_suppressed += 1;
        }
        allowed
    }
}

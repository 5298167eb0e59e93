//! The gateway's log: `tracing` events, structured (a message plus fields), to stderr as text
//! or JSON lines (journald and log shippers take either). Levels come from `RUST_LOG` when it
//! is set (the convention operators know), else from `[log] level`, else `info`.
//!
//! Events that can come once per packet (a refused frame, a failed map update) go through a
//! [`RateLimiter`], so a flood of bad packets costs a counter, not a log line each.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::time::{Duration, Instant};

/// How the log is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `RUST_LOG`-style directives, e.g. `info` or `info,dataplane::afxdp=debug`.
    pub filter: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`).
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            filter: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Whether `directives` is a filter `tracing` accepts (the config check uses it).
pub fn valid_filter(directives: &str) -> Result<(), String> {
    EnvFilter::builder()
        .parse(directives)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Installs the log for the process. `RUST_LOG`, when set and valid, replaces
/// `config.filter`; when set and invalid, the error says so (a typo must not silence the log).
pub fn init(config: &LogConfig) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.trim().is_empty() => EnvFilter::builder()
            .parse(&env)
            .map_err(|e| format!("RUST_LOG={env:?}: {e}"))?,
        _ => EnvFilter::builder()
            .parse(&config.filter)
            .map_err(|e| format!("log.level {:?}: {e}", config.filter))?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true);
    let result = match config.format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
    result.map_err(|e| e.to_string())
}

/// How often a warning an operator must see, but that a flood could repeat per packet or per
/// connection (a full connection table), may be logged: once per period, with the count of
/// the ones held back.
pub const WARNING_PERIOD: Duration = Duration::from_secs(10);

/// At most `burst` events per `period`; says how many were held back since the last one let
/// through, so the line that gets out can report them.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    period: Duration,
    burst: u32,
    window_start: Option<Instant>,
    used: u32,
    suppressed: u64,
}

impl RateLimiter {
    pub const fn new(burst: u32, period: Duration) -> Self {
        RateLimiter {
            period,
            burst,
            window_start: None,
            used: 0,
            suppressed: 0,
        }
    }

    /// `Some(suppressed before this one)` when an event at `now` may be logged, else `None`.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        let start = *self.window_start.get_or_insert(now);
        if now.saturating_duration_since(start) >= self.period {
            self.window_start = Some(now);
            self.used = 0;
        }
        if self.used < self.burst {
            self.used += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_lets_a_burst_through_per_period_and_counts_the_rest() {
        let mut l = RateLimiter::new(2, Duration::from_secs(1));
        let t = Instant::from_secs(10);
        assert_eq!(l.allow(t), Some(0));
        assert_eq!(l.allow(t), Some(0));
        for _ in 0..5 {
            assert_eq!(l.allow(t + Duration::from_millis(500)), None);
        }
        assert_eq!(
            l.allow(t + Duration::from_secs(1)),
            Some(5),
            "reports what it held"
        );
        assert_eq!(l.allow(t + Duration::from_secs(1)), Some(0));
        assert_eq!(l.allow(t + Duration::from_secs(1)), None);
    }

    #[test]
    fn filters_are_checked() {
        assert!(valid_filter("info").is_ok());
        assert!(valid_filter("warn,dataplane::afxdp=debug").is_ok());
        assert!(valid_filter("dataplane=loud").is_err(), "not a level");
    }
}

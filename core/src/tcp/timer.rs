//! A connection's timers (smoltcp's habit: each timer a variant; quinn-proto's: a table indexed
//! by the timer, so the next deadline is one `min()`). The connection sets and stops them; the
//! endpoint keeps one heap entry per connection at `TimerTable::next`.

use crate::time::Instant;

/// Per-connection timers; the connection's next deadline is the `min()` over the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// RFC 6298 retransmission timer (also drives repeated zero-window probes).
    Retransmit = 0,
    /// RFC 9293 §3.8.6.1 persist timer: window closed (or SWS-limited) and nothing in flight.
    Persist = 1,
    /// RFC 9293 §3.8.6.3 delayed ACK.
    DelayedAck = 2,
    /// FIN_WAIT_2 bound.
    FinWait2 = 3,
    /// Nothing received for `idle_timeout`.
    Idle = 4,
    /// RFC 8985 §6.3 RACK reordering timer: a segment sent before a delivered one is not
    /// lost yet (its reordering window has not passed); look again when it has.
    Reorder = 5,
    /// RFC 8985 §7.2 tail loss probe timeout (PTO).
    LossProbe = 6,
}

/// Every timer, in the order `Conn::handle_timeout` fires them when several are due (the
/// RTO first: when it fires, the probe and the reordering timer have nothing left to do).
pub const TIMERS: [Timer; 7] = [
    Timer::Retransmit,
    Timer::Reorder,
    Timer::LossProbe,
    Timer::Persist,
    Timer::DelayedAck,
    Timer::FinWait2,
    Timer::Idle,
];

#[derive(Debug, Clone, Copy, Default)]
pub struct TimerTable([Option<Instant>; TIMERS.len()]);

impl TimerTable {
    pub fn get(&self, t: Timer) -> Option<Instant> {
        self.0[t as usize]
    }
    pub fn set(&mut self, t: Timer, at: Instant) {
        self.0[t as usize] = Some(at);
    }
    pub fn stop(&mut self, t: Timer) {
        self.0[t as usize] = None;
    }
    pub fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }
    pub fn expired(&self, t: Timer, now: Instant) -> bool {
        self.get(t).is_some_and(|at| at <= now)
    }
}

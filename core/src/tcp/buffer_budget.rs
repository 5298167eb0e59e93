//! How far the connections of one endpoint may grow their send buffers, together.
//!
//! Every connection starts with `TcpConfig::tx_buffer` bytes of send ring. A connection whose
//! congestion window outgrows half its ring, while the application keeps the ring full, grows
//! it (doubling, up to `tx_buffer_max`): a ring smaller than the window caps the flight below
//! the path's bandwidth-delay product (256 KiB holds 177 segments; 100 Mbit/s over 80 ms holds
//! 690). Linux grows its socket send buffers the same way (`tcp_sndbuf_expand`: twice the
//! window, up to `tcp_wmem[2]`) under a global limit (`tcp_mem`). This is that limit, per
//! endpoint: the bytes of growth all its connections hold at once. A connection refused
//! growth keeps its ring and its throughput cap, nothing else changes; its growth goes back to
//! the budget when its slot is freed.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferBudget {
    limit: usize,
    used: usize,
}

impl BufferBudget {
    pub fn new(limit: usize) -> Self {
        BufferBudget { limit, used: 0 }
    }

    /// Takes `bytes` if that stays within the limit.
    #[must_use]
    pub fn try_take(&mut self, bytes: usize) -> bool {
        match self.used.checked_add(bytes) {
            Some(total) if total <= self.limit => {
                self.used = total;
                true
            }
            _ => false,
        }
    }

    pub fn give_back(&mut self, bytes: usize) {
        self.used = self.used.saturating_sub(bytes);
    }

    /// Bytes of growth held now.
    pub fn used(&self) -> usize {
        self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_only_within_the_limit_and_gets_it_back() {
        let mut b = BufferBudget::new(1000);
        assert!(b.try_take(600));
        assert!(!b.try_take(500), "over the limit");
        assert!(b.try_take(400));
        assert_eq!(b.used(), 1000);
        b.give_back(600);
        assert!(b.try_take(500));
        assert!(!b.try_take(usize::MAX), "no overflow");
        b.give_back(usize::MAX);
        assert_eq!(b.used(), 0);
    }
}

//! TCP sequence numbers: 32-bit values compared modulo 2^32 (RFC 9293 §3.4).

use core::cmp::Ordering;
use core::fmt;
use core::ops::{Add, Sub};

/// A TCP sequence number. Ordering is the RFC's modular comparison: `a < b` when `b - a`,
/// taken as a signed 32-bit value, is positive. That is only meaningful for values less than
/// 2^31 apart, which the window bounds guarantee for anything the engine compares.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// `self - other` as a signed distance.
    pub const fn diff(self, other: SeqNumber) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// The number of sequence numbers from `earlier` up to `self`, or `None` if `self` is
    /// before `earlier`.
    pub fn distance_from(self, earlier: SeqNumber) -> Option<u32> {
        let d = self.diff(earlier);
        (d >= 0).then_some(d as u32)
    }

    /// `start <= self < start + len` in sequence space.
    pub fn in_window(self, start: SeqNumber, len: u32) -> bool {
        self.0.wrapping_sub(start.0) < len
    }

    pub fn max(self, other: SeqNumber) -> SeqNumber {
        if self.diff(other) >= 0 {
            self
        } else {
            other
        }
    }

    pub fn min(self, other: SeqNumber) -> SeqNumber {
        if self.diff(other) <= 0 {
            self
        } else {
            other
        }
    }
}

impl PartialOrd for SeqNumber {
    fn partial_cmp(&self, other: &SeqNumber) -> Option<Ordering> {
        Some(self.diff(*other).cmp(&0))
    }
}

impl Add<u32> for SeqNumber {
    type Output = SeqNumber;
    fn add(self, rhs: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(rhs))
    }
}

impl Add<usize> for SeqNumber {
    type Output = SeqNumber;
    fn add(self, rhs: usize) -> SeqNumber {
        // Sequence space is modulo 2^32, so truncating the offset is the intended arithmetic.
        SeqNumber(self.0.wrapping_add(rhs as u32))
    }
}

impl Sub<u32> for SeqNumber {
    type Output = SeqNumber;
    fn sub(self, rhs: u32) -> SeqNumber {
        SeqNumber(self.0.wrapping_sub(rhs))
    }
}

impl fmt::Debug for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seq({})", self.0)
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_wraps_around_2_pow_32() {
        let a = SeqNumber(u32::MAX - 10);
        let b = a + 20u32;
        assert!(a < b);
        assert!(b > a);
        assert_eq!(b.diff(a), 20);
        assert_eq!(a.diff(b), -20);
        assert_eq!(b.distance_from(a), Some(20));
        assert_eq!(a.distance_from(b), None);
        assert_eq!(a.max(b), b);
        assert_eq!(a.min(b), a);
    }

    #[test]
    fn in_window_handles_wrap_and_empty_window() {
        let start = SeqNumber(u32::MAX - 1);
        assert!(start.in_window(start, 1));
        assert!((start + 3u32).in_window(start, 4));
        assert!(!(start + 4u32).in_window(start, 4));
        assert!(!start.in_window(start, 0));
        assert!(!(start - 1u32).in_window(start, 4));
    }
}

//! The `user_data` both io_uring tables (the kernel path's connections, the upstream
//! connections) give each operation: which operation (8 bits), the generation of the slot's
//! socket (24 bits) and the slot's index (32 bits), so a completion finds its slot and one
//! that outlived the slot's socket is told apart.

/// The generation bits: a generation wraps within them, the same on both sides.
pub const GEN_MASK: u32 = 0x00FF_FFFF;

/// Packs an operation's tag (0 is never used: it reads as no operation), slot and generation.
pub fn pack(op: u8, index: u32, gen: u32) -> u64 {
    u64::from(op) << 56 | u64::from(gen & GEN_MASK) << 32 | u64::from(index)
}

/// The operation's tag, the slot's index and the generation of a `user_data`.
pub fn unpack(ud: u64) -> (u8, u32, u32) {
    ((ud >> 56) as u8, ud as u32, (ud >> 32) as u32 & GEN_MASK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips_and_generations_wrap_within_their_bits() {
        for (op, index, gen) in [
            (2u8, 0u32, 1u32),
            (3, u32::MAX, GEN_MASK),
            (1, 7, 0),
            (5, 123_456, 0x00AB_CDEF),
            (255, 9, 77),
        ] {
            assert_eq!(unpack(pack(op, index, gen)), (op, index, gen));
        }
        // A generation past 24 bits is masked the same way on both sides.
        let gen = (GEN_MASK + 5) & GEN_MASK;
        assert_eq!(unpack(pack(2, 3, gen)).2, 4);
        // Different generations of one slot never share a user_data.
        assert_ne!(pack(2, 3, 1), pack(2, 3, 2));
        assert_eq!(unpack(0).0, 0);
    }
}

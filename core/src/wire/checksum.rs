//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! A *sum* here is a 32-bit partial ones'-complement sum of big-endian 16-bit words: add sums
//! with [`combine`], reduce with [`fold`], and the checksum field is `!fold(total)`
//! ([`finish`]). A receiver verifies by summing everything including the checksum field and
//! checking that `fold` gives `0xffff` ([`is_valid`]).
//!
//! [`combine`]`(sum(a), sum(b)) == sum(a ++ b)` only when `a` has even length: an odd-length
//! part shifts the bytes after it to the other half of their words. Sum a contiguous buffer
//! instead (which is what the emitters do).

use core::net::{Ipv4Addr, Ipv6Addr};

/// Ones'-complement sum of `data` as big-endian 16-bit words (an odd last byte is the high
/// byte of a zero-padded word). The result is folded to `0..=0xffff`; it is `0` only when all
/// of `data` is zero.
///
/// Adds native-endian 32-bit words into a 64-bit accumulator (no carry handling in the loop)
/// and swaps bytes once at the end: the ones'-complement sum commutes with byte swapping
/// (RFC 1071 §2(B)).
#[inline]
pub fn sum(data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut blocks = data.chunks_exact(32);
    for block in &mut blocks {
        for w in block.chunks_exact(4) {
            acc += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
        }
    }
    let mut words = blocks.remainder().chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
    }
    let tail = words.remainder();
    let mut last = [0u8; 4];
    last[..tail.len()].copy_from_slice(tail);
    acc += u64::from(u32::from_ne_bytes(last));

    let native = fold(combine(acc as u32, (acc >> 32) as u32));
    u32::from(u16::from_be_bytes(native.to_ne_bytes()))
}

/// Ones'-complement addition of two partial sums (32-bit, end-around carry).
#[inline]
pub const fn combine(a: u32, b: u32) -> u32 {
    let (s, carry) = a.overflowing_add(b);
    s + carry as u32
}

/// Reduces a partial sum to 16 bits (end-around carry). Not complemented.
#[inline]
pub const fn fold(sum: u32) -> u16 {
    let s = (sum & 0xffff) + (sum >> 16);
    let s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// The value to store in a checksum field whose data (with the field zeroed) sums to `sum`.
#[inline]
pub const fn finish(sum: u32) -> u16 {
    !fold(sum)
}

/// True when `sum`, taken over the data *including* its checksum field, verifies.
#[inline]
pub const fn is_valid(sum: u32) -> bool {
    fold(sum) == 0xffff
}

/// Partial sum of the IPv4 pseudo-header (RFC 9293 §3.1): source, destination, zero +
/// protocol, and the TCP/UDP length (header + payload).
#[inline]
pub fn pseudo_header_ipv4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u32 {
    let s = src.to_bits();
    let d = dst.to_bits();
    (s >> 16) + (s & 0xffff) + (d >> 16) + (d & 0xffff) + u32::from(protocol) + u32::from(length)
}

/// Partial sum of the IPv6 pseudo-header (RFC 8200 §8.1): source, destination (the final
/// destination: with a Routing header, the address of its last segment; xgate accepts only
/// Routing headers with none left, where that is the IPv6 destination), the upper-layer
/// packet length as 32 bits, three zero bytes, and the upper-layer protocol (not the fixed
/// header's Next Header when extension headers come between).
#[inline]
pub fn pseudo_header_ipv6(src: Ipv6Addr, dst: Ipv6Addr, protocol: u8, length: u32) -> u32 {
    // Sixteen 16-bit words of addresses (at most 16 * 0xffff) plus the rest cannot overflow
    // 32 bits; `fold` takes the carries later.
    let mut s = 0u32;
    for w in src.segments().into_iter().chain(dst.segments()) {
        s += u32::from(w);
    }
    s + (length >> 16) + (length & 0xffff) + u32::from(protocol)
}

/// RFC 1624 eqn. 3: the checksum after a 16-bit field changes from `old_field` to
/// `new_field`, `HC' = ~(~HC + ~m + m')`.
///
/// Equals full recomputation except when the new data is entirely zero (then it yields
/// `0x0000` where recomputation gives `0xffff`; both mean zero and both verify), which no
/// IPv4 or TCP header can be.
#[inline]
pub const fn update_u16(old_checksum: u16, old_field: u16, new_field: u16) -> u16 {
    let s = combine(!old_checksum as u32, !old_field as u32);
    !fold(combine(s, new_field as u32))
}

/// RFC 1624 eqn. 3 for a 32-bit field (an IPv4 address, a sequence number), as two 16-bit
/// words.
#[inline]
pub const fn update_u32(old_checksum: u16, old_field: u32, new_field: u32) -> u16 {
    let s = (!old_checksum) as u32
        + (!(old_field >> 16) & 0xffff)
        + (!old_field & 0xffff)
        + (new_field >> 16)
        + (new_field & 0xffff);
    !fold(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straight RFC 1071 reference: big-endian words, one at a time.
    fn reference(data: &[u8]) -> u32 {
        let mut s: u32 = 0;
        for pair in data.chunks(2) {
            let w = u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
            s += w;
            s = (s & 0xffff) + (s >> 16);
        }
        s
    }

    #[test]
    fn sum_matches_rfc1071_example() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data), 0xddf2);
        assert_eq!(finish(sum(&data)), !0xddf2);
    }

    #[test]
    fn sum_handles_every_length_and_odd_tail() {
        let data: Vec<u8> = (0..200u32).map(|i| (i * 37 + 11) as u8).collect();
        for n in 0..data.len() {
            assert_eq!(sum(&data[..n]), reference(&data[..n]), "len {n}");
        }
        assert_eq!(sum(&[0xab]), 0xab00);
        assert_eq!(sum(&[]), 0);
        assert_eq!(sum(&[0xff; 64]), 0xffff);
    }

    #[test]
    fn ipv4_header_checksum_known_vector() {
        // Classic example header (Wikipedia / many textbooks): checksum 0xb861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(finish(sum(&h)), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert!(is_valid(sum(&h)));
    }

    #[test]
    fn combine_and_fold_carry_around() {
        assert_eq!(combine(u32::MAX, 1), 1);
        assert_eq!(combine(u32::MAX, u32::MAX), u32::MAX);
        assert_eq!(fold(0x0001_ffff), 0x0001);
        assert_eq!(fold(0xffff_ffff), 0xffff);
        assert_eq!(fold(0), 0);
    }

    #[test]
    fn pseudo_header_sums_each_word() {
        let s = pseudo_header_ipv4(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            6,
            40,
        );
        assert_eq!(s, 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 6 + 40);
    }

    #[test]
    fn ipv6_pseudo_header_sums_each_word() {
        let src = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
        let dst = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x0202, 0xb3ff, 0xfe1e, 0x8329);
        let s = pseudo_header_ipv6(src, dst, 6, 0x0001_0004);
        let words: u32 = 0x2001 + 0xdb8 + 1 + 0xfe80 + 0x0202 + 0xb3ff + 0xfe1e + 0x8329;
        assert_eq!(s, words + 1 + 4 + 6);
        // The same as summing the 40-byte pseudo-header laid out as RFC 8200 §8.1 draws it.
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&src.octets());
        bytes.extend_from_slice(&dst.octets());
        bytes.extend_from_slice(&0x0001_0004u32.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 6]);
        assert_eq!(fold(s), fold(sum(&bytes)));
        // All-ones addresses: the largest sum still fits 32 bits.
        let ones = Ipv6Addr::from([0xff; 16]);
        let max = pseudo_header_ipv6(ones, ones, 0xff, u32::MAX);
        assert_eq!(max, 16 * 0xffff + 2 * 0xffff + 0xff);
    }

    #[test]
    fn update_u16_rfc1624_example() {
        // RFC 1624 §4: HC = 0xdd2f, m = 0x5555 -> m' = 0x3285 gives HC' = 0x0000.
        assert_eq!(update_u16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }
}

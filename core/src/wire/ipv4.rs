//! IPv4 header: view, meaning, checksum.

use core::net::Ipv4Addr;

use super::{checksum, WireError};

/// IP protocol numbers the gateway looks at.
pub mod ip_protocol {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    /// ICMPv6 (RFC 4443), as an IPv6 next header.
    pub const ICMPV6: u8 = 58;
}

mod field {
    use core::ops::Range;

    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;

/// The ECN field: the two low bits of the TOS byte (RFC 3168 §5). The six above them (DSCP)
/// are not ours to read or set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Ecn {
    /// Not-ECT: the sender does not do ECN (or this packet must not be marked).
    #[default]
    NotEct,
    /// ECT(1).
    Ect1,
    /// ECT(0): what an RFC 3168 sender marks its data with.
    Ect0,
    /// Congestion Experienced: a router marked the packet instead of dropping it.
    Ce,
}

impl Ecn {
    /// The field of a TOS byte.
    #[inline]
    pub const fn of_tos(tos: u8) -> Ecn {
        match tos & 0b11 {
            0b00 => Ecn::NotEct,
            0b01 => Ecn::Ect1,
            0b10 => Ecn::Ect0,
            _ => Ecn::Ce,
        }
    }

    /// Its two bits.
    #[inline]
    pub const fn bits(self) -> u8 {
        match self {
            Ecn::NotEct => 0b00,
            Ecn::Ect1 => 0b01,
            Ecn::Ect0 => 0b10,
            Ecn::Ce => 0b11,
        }
    }
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A view over an IPv4 packet.
///
/// After [`check_len`](Self::check_len) succeeds, `20 <= header_len() <= total_len() <=
/// buffer length`, so no accessor panics; bytes after `total_len()` (Ethernet padding) are not
/// part of the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// In order: `Truncated` (under 20 bytes), `BadIpVersion`, `BadIpHeaderLength` (IHL < 5),
    /// `Truncated` (header past the buffer), `BadIpTotalLength` (total length below the
    /// header length or past the buffer).
    #[inline]
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 4 {
            return Err(WireError::BadIpVersion);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(WireError::BadIpHeaderLength);
        }
        if hl > len {
            return Err(WireError::Truncated);
        }
        let total = usize::from(self.total_len());
        if total < hl || total > len {
            return Err(WireError::BadIpTotalLength);
        }
        Ok(())
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// DSCP + ECN byte.
    #[inline]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH.start)
    }

    #[inline]
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT.start)
    }

    #[inline]
    fn flg_off(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLG_OFF.start)
    }

    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.flg_off() & FLAG_DF != 0
    }

    #[inline]
    pub fn more_frags(&self) -> bool {
        self.flg_off() & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.flg_off() & OFFSET_MASK) << 3
    }

    /// MF set or a non-zero offset.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flg_off() & (FLAG_MF | OFFSET_MASK) != 0
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[12], b[13], b[14], b[15])
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[16], b[17], b[18], b[19])
    }

    /// The options bytes (empty for IHL 5).
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// True when the header checksum (options included) verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::is_valid(checksum::sum(&self.buffer.as_ref()[..self.header_len()]))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv4Packet<&'a T> {
    /// The bytes between the header and `total_len()`, borrowed for the buffer's lifetime.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &self.buffer.as_ref()[range]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    #[inline]
    pub fn set_version_and_header_len(&mut self, version: u8, header_len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = (version << 4) | ((header_len / 4) as u8 & 0x0f);
    }

    #[inline]
    pub fn set_tos(&mut self, value: u8) {
        self.buffer.as_mut()[field::TOS] = value;
    }

    #[inline]
    pub fn set_total_len(&mut self, value: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&value.to_be_bytes());
    }

    #[inline]
    pub fn set_ident(&mut self, value: u16) {
        self.buffer.as_mut()[field::IDENT].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets DF, MF and the offset (in bytes, a multiple of 8) at once.
    #[inline]
    pub fn set_flags_and_frag_offset(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let v = if dont_frag { FLAG_DF } else { 0 }
            | if more_frags { FLAG_MF } else { 0 }
            | ((offset >> 3) & OFFSET_MASK);
        self.buffer.as_mut()[field::FLG_OFF].copy_from_slice(&v.to_be_bytes());
    }

    #[inline]
    pub fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    #[inline]
    pub fn set_protocol(&mut self, value: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = value;
    }

    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&addr.octets());
    }

    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&addr.octets());
    }

    /// Computes and stores the header checksum (over `header_len()` bytes).
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum::finish(checksum::sum(&self.buffer.as_ref()[..hl]));
        self.set_checksum(c);
    }

    /// The bytes between the header and `total_len()`.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

/// What an IPv4 header says, as far as the gateway cares. Emitted without options and with
/// DF set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    /// Bytes after the header (total length minus header length).
    pub payload_len: usize,
    pub ttl: u8,
    pub ident: u16,
}

impl Ipv4Repr {
    /// Verifies the header checksum (`IpChecksum`) and rejects fragments (`Fragment`). The
    /// packet must have passed `check_len` (as `new_checked` does). Any protocol is accepted.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Result<Ipv4Repr, WireError> {
        if !packet.verify_checksum() {
            return Err(WireError::IpChecksum);
        }
        if packet.is_fragment() {
            return Err(WireError::Fragment);
        }
        Ok(Ipv4Repr {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - packet.header_len(),
            ttl: packet.ttl(),
            ident: packet.ident(),
        })
    }

    /// Always 20: no options are emitted.
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 20-byte header (DF set, TOS 0) with its checksum into the front of `buf`.
    /// `PayloadTooLarge` if the total length exceeds 65535, `BufferTooSmall` if the header does
    /// not fit (the payload is not written and need not fit).
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        self.emit_with_ecn(buf, Ecn::NotEct)
    }

    /// [`emit`](Self::emit) with the ECN field set to `ecn` (DSCP 0).
    #[inline]
    pub fn emit_with_ecn(&self, buf: &mut [u8], ecn: Ecn) -> Result<usize, WireError> {
        let total = HEADER_LEN + self.payload_len;
        let total = u16::try_from(total).map_err(|_| WireError::PayloadTooLarge)?;
        if buf.len() < HEADER_LEN {
            return Err(WireError::BufferTooSmall);
        }
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..HEADER_LEN]);
        p.set_version_and_header_len(4, HEADER_LEN);
        p.set_tos(ecn.bits());
        p.set_total_len(total);
        p.set_ident(self.ident);
        p.set_flags_and_frag_offset(true, false, 0);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        p.fill_checksum();
        Ok(HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 20-byte header + 4 payload bytes + 2 bytes of padding; checksum 0x0a98 computed
    /// independently (10.0.0.1 -> 10.0.0.2, TCP, id 0x1c46, DF, ttl 64).
    const PACKET: [u8; 26] = [
        0x45, 0x00, 0x00, 0x18, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x0a, 0x98, 0x0a, 0x00, 0x00,
        0x01, 0x0a, 0x00, 0x00, 0x02, // header
        0xde, 0xad, 0xbe, 0xef, // payload
        0x00, 0x00, // padding
    ];

    #[test]
    fn fields_of_a_plain_header() {
        let p = Ipv4Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.tos(), 0);
        assert_eq!(p.total_len(), 24);
        assert_eq!(p.ident(), 0x1c46);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), ip_protocol::TCP);
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert!(p.options().is_empty());
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        let r = Ipv4Repr::parse(&p).unwrap();
        assert_eq!(r.payload_len, 4);
    }

    #[test]
    fn emit_reproduces_the_reference_header() {
        let r = Ipv4Repr {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            protocol: ip_protocol::TCP,
            payload_len: 4,
            ttl: 64,
            ident: 0x1c46,
        };
        let mut buf = [0u8; 20];
        assert_eq!(r.emit(&mut buf), Ok(20));
        assert_eq!(buf, PACKET[..20]);
        assert_eq!(r.emit(&mut buf[..19]), Err(WireError::BufferTooSmall));
        let big = Ipv4Repr {
            payload_len: 65516,
            ..r
        };
        assert_eq!(big.emit(&mut buf), Err(WireError::PayloadTooLarge));
    }

    #[test]
    fn rfc3168_s5_the_ecn_field_is_the_two_low_tos_bits() {
        for (tos, ecn) in [
            (0x00, Ecn::NotEct),
            (0x01, Ecn::Ect1),
            (0x02, Ecn::Ect0),
            (0x03, Ecn::Ce),
            (0xb8 | 0x03, Ecn::Ce),
            (0xb8 | 0x02, Ecn::Ect0),
            (0xfc, Ecn::NotEct),
        ] {
            assert_eq!(Ecn::of_tos(tos), ecn, "tos {tos:#04x}");
            assert_eq!(Ecn::of_tos(ecn.bits()), ecn);
        }
        let r = Ipv4Repr {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            protocol: ip_protocol::TCP,
            payload_len: 4,
            ttl: 64,
            ident: 0x1c46,
        };
        let mut buf = [0u8; 20];
        r.emit_with_ecn(&mut buf, Ecn::Ect0).unwrap();
        let p = Ipv4Packet::new_unchecked(&buf[..]);
        assert_eq!(p.tos(), 0x02);
        assert!(p.verify_checksum());
    }

    #[test]
    fn length_checks_each_have_their_error() {
        assert_eq!(
            Ipv4Packet::new_checked(&PACKET[..19]).unwrap_err(),
            WireError::Truncated
        );
        let mut v6 = PACKET;
        v6[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&v6[..]).unwrap_err(),
            WireError::BadIpVersion
        );
        let mut ihl4 = PACKET;
        ihl4[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&ihl4[..]).unwrap_err(),
            WireError::BadIpHeaderLength
        );
        let mut ihl15 = PACKET;
        ihl15[0] = 0x4f;
        assert_eq!(
            Ipv4Packet::new_checked(&ihl15[..]).unwrap_err(),
            WireError::Truncated
        );
        let mut short_total = PACKET;
        short_total[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&short_total[..]).unwrap_err(),
            WireError::BadIpTotalLength
        );
        let mut long_total = PACKET;
        long_total[2..4].copy_from_slice(&27u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&long_total[..]).unwrap_err(),
            WireError::BadIpTotalLength
        );
    }

    #[test]
    fn bad_checksum_and_fragments_are_refused_by_parse() {
        let mut bad = PACKET;
        bad[11] ^= 1;
        let p = Ipv4Packet::new_checked(&bad[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&p), Err(WireError::IpChecksum));

        for (df, mf, off) in [(false, true, 0), (false, false, 8), (true, false, 1480)] {
            let mut frag = PACKET;
            let mut p = Ipv4Packet::new_unchecked(&mut frag[..]);
            p.set_flags_and_frag_offset(df, mf, off);
            p.fill_checksum();
            let p = Ipv4Packet::new_checked(&frag[..]).unwrap();
            assert!(p.is_fragment());
            assert_eq!(p.frag_offset(), off);
            assert_eq!(Ipv4Repr::parse(&p), Err(WireError::Fragment));
        }
    }
}

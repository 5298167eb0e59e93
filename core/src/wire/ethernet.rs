//! Ethernet II with at most one 802.1Q tag.

use core::fmt;

use super::WireError;

/// Ethertype values the gateway looks at.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const IPV6: u16 = 0x86dd;
    /// IEEE 802.1Q customer tag.
    pub const VLAN: u16 = 0x8100;
    /// IEEE 802.1ad service tag (QinQ outer tag).
    pub const QINQ: u16 = 0x88a8;
    /// Pre-standard QinQ outer tag.
    pub const QINQ_LEGACY: u16 = 0x9100;
}

/// A 48-bit MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);

    #[inline]
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// Group bit (I/G) set: multicast or broadcast.
    #[inline]
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    #[inline]
    pub const fn is_broadcast(&self) -> bool {
        matches!(self.0, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
    }
}

impl fmt::Debug for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// An 802.1Q tag control field (PCP, DEI, VID), kept so replies carry the same tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VlanTag {
    pub tci: u16,
}

impl VlanTag {
    #[inline]
    pub const fn new(pcp: u8, dei: bool, vid: u16) -> VlanTag {
        VlanTag {
            tci: ((pcp as u16 & 0x7) << 13) | ((dei as u16) << 12) | (vid & 0x0fff),
        }
    }

    /// VLAN identifier (12 bits).
    #[inline]
    pub const fn vid(&self) -> u16 {
        self.tci & 0x0fff
    }

    /// Priority code point (3 bits).
    #[inline]
    pub const fn pcp(&self) -> u8 {
        (self.tci >> 13) as u8
    }

    /// Drop eligible indicator.
    #[inline]
    pub const fn dei(&self) -> bool {
        self.tci & 0x1000 != 0
    }
}

mod field {
    use core::ops::Range;

    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    /// Only present when `ETHERTYPE` is 0x8100.
    pub const VLAN_TCI: Range<usize> = 14..16;
    pub const VLAN_ETHERTYPE: Range<usize> = 16..18;
}

/// Length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = 14;
/// Length of an Ethernet II header with one 802.1Q tag.
pub const VLAN_HEADER_LEN: usize = 18;

/// A view over an Ethernet II frame whose outer ethertype may be one 802.1Q tag.
///
/// After [`check_len`](Self::check_len) succeeds no getter panics: the tag fields are only
/// read when the outer ethertype says they are there, and `check_len` ensured they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps a buffer without checking its length.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps a buffer and checks it holds the whole header (tag included, if any).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// `Truncated` if the buffer is shorter than 14 bytes, or than 18 when tagged.
    #[inline]
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.ethertype() == ethertype::VLAN && len < VLAN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn dst_addr(&self) -> EthernetAddress {
        let b = self.buffer.as_ref();
        EthernetAddress([b[0], b[1], b[2], b[3], b[4], b[5]])
    }

    #[inline]
    pub fn src_addr(&self) -> EthernetAddress {
        let b = self.buffer.as_ref();
        EthernetAddress([b[6], b[7], b[8], b[9], b[10], b[11]])
    }

    /// The outer ethertype (0x8100 for a tagged frame).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[field::ETHERTYPE.start], b[field::ETHERTYPE.start + 1]])
    }

    #[inline]
    pub fn is_tagged(&self) -> bool {
        self.ethertype() == ethertype::VLAN
    }

    /// The 802.1Q tag, if the frame carries one.
    #[inline]
    pub fn vlan_tag(&self) -> Option<VlanTag> {
        if self.is_tagged() {
            let b = self.buffer.as_ref();
            Some(VlanTag {
                tci: u16::from_be_bytes([b[field::VLAN_TCI.start], b[field::VLAN_TCI.start + 1]]),
            })
        } else {
            None
        }
    }

    /// The ethertype of the payload: after the tag when tagged, the outer one otherwise.
    #[inline]
    pub fn payload_ethertype(&self) -> u16 {
        if self.is_tagged() {
            let b = self.buffer.as_ref();
            let at = field::VLAN_ETHERTYPE.start;
            u16::from_be_bytes([b[at], b[at + 1]])
        } else {
            self.ethertype()
        }
    }

    /// 14, or 18 with a tag.
    #[inline]
    pub fn header_len(&self) -> usize {
        if self.is_tagged() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> EthernetFrame<&'a T> {
    /// Everything after the header (tag included), borrowed for the buffer's lifetime.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let hl = self.header_len();
        &self.buffer.as_ref()[hl..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    #[inline]
    pub fn set_dst_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&addr.0);
    }

    #[inline]
    pub fn set_src_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&addr.0);
    }

    /// Sets the outer ethertype.
    #[inline]
    pub fn set_ethertype(&mut self, value: u16) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&value.to_be_bytes());
    }

    /// Writes the tag fields; the outer ethertype must be (set to) 0x8100 separately.
    #[inline]
    pub fn set_vlan_tci(&mut self, tci: u16) {
        self.buffer.as_mut()[field::VLAN_TCI].copy_from_slice(&tci.to_be_bytes());
    }

    /// Writes the ethertype that follows the tag.
    #[inline]
    pub fn set_vlan_ethertype(&mut self, value: u16) {
        self.buffer.as_mut()[field::VLAN_ETHERTYPE].copy_from_slice(&value.to_be_bytes());
    }

    /// Everything after the header (tag included).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }
}

/// What an Ethernet header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthernetRepr {
    pub src: EthernetAddress,
    pub dst: EthernetAddress,
    pub vlan: Option<VlanTag>,
    /// The payload's ethertype (after the tag when tagged).
    pub ethertype: u16,
}

impl EthernetRepr {
    /// Reads the header; QinQ outer tags and a second 802.1Q tag are `UnsupportedVlan`.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<EthernetRepr, WireError> {
        let outer = frame.ethertype();
        if outer == ethertype::QINQ || outer == ethertype::QINQ_LEGACY {
            return Err(WireError::UnsupportedVlan);
        }
        let ethertype = frame.payload_ethertype();
        if frame.is_tagged()
            && matches!(
                ethertype,
                ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_LEGACY
            )
        {
            return Err(WireError::UnsupportedVlan);
        }
        Ok(EthernetRepr {
            src: frame.src_addr(),
            dst: frame.dst_addr(),
            vlan: frame.vlan_tag(),
            ethertype,
        })
    }

    /// 14, or 18 with a tag.
    #[inline]
    pub const fn header_len(&self) -> usize {
        if self.vlan.is_some() {
            VLAN_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Writes the header into the front of `buf`; `BufferTooSmall` if it does not fit.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let hl = self.header_len();
        if buf.len() < hl {
            return Err(WireError::BufferTooSmall);
        }
        let mut frame = EthernetFrame::new_unchecked(&mut buf[..hl]);
        frame.set_dst_addr(self.dst);
        frame.set_src_addr(self.src);
        match self.vlan {
            Some(tag) => {
                frame.set_ethertype(ethertype::VLAN);
                frame.set_vlan_tci(tag.tci);
                frame.set_vlan_ethertype(self.ethertype);
            }
            None => frame.set_ethertype(self.ethertype),
        }
        Ok(hl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNTAGGED: [u8; 16] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src
        0x08, 0x00, // IPv4
        0x45, 0x00,
    ];

    const TAGGED: [u8; 20] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src
        0x81, 0x00, 0xa0, 0x64, // 802.1Q, PCP 5, DEI 0, VID 100
        0x08, 0x00, // IPv4
        0x45, 0x00,
    ];

    #[test]
    fn untagged_header_fields() {
        let f = EthernetFrame::new_checked(&UNTAGGED[..]).unwrap();
        assert_eq!(f.dst_addr(), EthernetAddress([2, 0, 0, 0, 0, 2]));
        assert_eq!(f.src_addr(), EthernetAddress([2, 0, 0, 0, 0, 1]));
        assert_eq!(f.ethertype(), ethertype::IPV4);
        assert_eq!(f.vlan_tag(), None);
        assert_eq!(f.header_len(), 14);
        assert_eq!(f.payload(), &[0x45, 0x00]);
        let r = EthernetRepr::parse(&f).unwrap();
        assert_eq!(r.ethertype, ethertype::IPV4);
        assert_eq!(r.vlan, None);
    }

    #[test]
    fn tagged_header_fields_and_tci_parts() {
        let f = EthernetFrame::new_checked(&TAGGED[..]).unwrap();
        let tag = f.vlan_tag().unwrap();
        assert_eq!(tag.tci, 0xa064);
        assert_eq!(tag.vid(), 100);
        assert_eq!(tag.pcp(), 5);
        assert!(!tag.dei());
        assert_eq!(VlanTag::new(5, false, 100), tag);
        assert_eq!(f.payload_ethertype(), ethertype::IPV4);
        assert_eq!(f.header_len(), 18);
        assert_eq!(f.payload(), &[0x45, 0x00]);
    }

    #[test]
    fn emit_then_view_round_trips_both_forms() {
        for vlan in [None, Some(VlanTag { tci: 0x2fff })] {
            let repr = EthernetRepr {
                src: EthernetAddress([1, 2, 3, 4, 5, 6]),
                dst: EthernetAddress([7, 8, 9, 10, 11, 12]),
                vlan,
                ethertype: ethertype::IPV4,
            };
            let mut buf = [0u8; 18];
            let n = repr.emit(&mut buf).unwrap();
            assert_eq!(n, repr.header_len());
            let f = EthernetFrame::new_checked(&buf[..n]).unwrap();
            assert_eq!(EthernetRepr::parse(&f).unwrap(), repr);
            assert_eq!(repr.emit(&mut buf[..n - 1]), Err(WireError::BufferTooSmall));
        }
    }

    #[test]
    fn short_headers_are_truncated() {
        assert_eq!(
            EthernetFrame::new_checked(&UNTAGGED[..13]).unwrap_err(),
            WireError::Truncated
        );
        assert_eq!(
            EthernetFrame::new_checked(&TAGGED[..17]).unwrap_err(),
            WireError::Truncated
        );
        assert!(EthernetFrame::new_checked(&TAGGED[..18]).is_ok());
    }

    #[test]
    fn qinq_and_double_tags_are_unsupported_vlan() {
        let mut qinq = TAGGED;
        qinq[12..14].copy_from_slice(&ethertype::QINQ.to_be_bytes());
        let f = EthernetFrame::new_checked(&qinq[..]).unwrap();
        assert_eq!(EthernetRepr::parse(&f), Err(WireError::UnsupportedVlan));

        let mut double = TAGGED;
        double[16..18].copy_from_slice(&ethertype::VLAN.to_be_bytes());
        let f = EthernetFrame::new_checked(&double[..]).unwrap();
        assert_eq!(EthernetRepr::parse(&f), Err(WireError::UnsupportedVlan));
    }

    #[test]
    fn address_display_and_group_bit() {
        let a = EthernetAddress([0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb]);
        assert_eq!(a.to_string(), "01:00:5e:00:00:fb");
        assert!(a.is_multicast());
        assert!(!a.is_broadcast());
        assert!(EthernetAddress::BROADCAST.is_broadcast());
    }
}

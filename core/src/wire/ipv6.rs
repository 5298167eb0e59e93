//! IPv6 header (RFC 8200): view, meaning, and the walk over extension headers to the
//! upper-layer header.
//!
//! What the walk accepts decides what the gateway will ever treat as its own segment, and the
//! XDP program must steer nothing this walk refuses (a refused packet left to the kernel is
//! answered by the kernel; one steered and refused would be lost). In order:
//! - Hop-by-Hop Options (0), only right after the IPv6 header (RFC 8200 §4.1), and
//!   Destination Options (60): skipped by their length once every option in them is one a
//!   node that does not recognise it may skip (RFC 8200 §4.2: the two high bits of the type
//!   are `00`); any other option, or options running past the header, refuses the packet;
//! - Routing (43): skipped when Segments Left is 0 (RFC 8200 §4.4: the packet has reached its
//!   final destination, so the IPv6 destination is the one the checksum covers, §8.1);
//!   otherwise refused, since this host is not the packet's last stop;
//! - Fragment (44): refused ([`WireError::Fragment`]). Fragments are the kernel's to
//!   reassemble, atomic fragments (RFC 6946) included;
//! - ESP (50) and AH (51): refused ([`WireError::Ipv6Ipsec`]), the kernel's IPsec owns them;
//! - Mobility (135), HIP (139), Shim6 (140) and the experimental 253/254: refused
//!   ([`WireError::UnsupportedIpv6Header`]);
//! - No Next Header (59): refused ([`WireError::NoNextHeader`]);
//! - anything else ends the walk as the upper-layer protocol (TCP is 6; the caller refuses
//!   the rest as [`WireError::NotTcp`], an unrecognised extension header included, which
//!   RFC 8200 §4 says to discard).
//!
//! At most [`MAX_EXTENSION_HEADERS`] headers are walked: a chain a legitimate TCP sender would
//! never build costs a bounded amount of work, then [`WireError::TooManyIpv6Headers`].
//! Jumbograms (RFC 2675, payload length 0 with a Jumbo Payload option) are not supported: the
//! Jumbo option's type (0xC2) says "discard if unrecognised", so the walk refuses them.

use core::net::Ipv6Addr;

use super::ipv4::Ecn;
use super::WireError;

mod field {
    use core::ops::Range;

    /// Version (4 bits), traffic class (8), flow label (20).
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const PAYLOAD_LEN: Range<usize> = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Range<usize> = 8..24;
    pub const DST: Range<usize> = 24..40;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;

/// Extension headers walked before the walk gives up ([`WireError::TooManyIpv6Headers`]).
/// RFC 8200 §4.1's recommended order has at most six before the upper layer (Hop-by-Hop,
/// Destination Options, Routing, Fragment, AH/ESP, Destination Options); two more of slack.
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// Next Header values of the extension headers (IANA "IPv6 Extension Header Types").
pub mod next_header {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const NO_NEXT_HEADER: u8 = 59;
    pub const DESTINATION_OPTIONS: u8 = 60;
    pub const MOBILITY: u8 = 135;
    pub const HIP: u8 = 139;
    pub const SHIM6: u8 = 140;
    pub const EXPERIMENT_1: u8 = 253;
    pub const EXPERIMENT_2: u8 = 254;
}

/// A view over an IPv6 packet.
///
/// After [`check_len`](Self::check_len) succeeds, `40 + payload_len() <= buffer length`, so
/// no accessor panics; bytes after the payload (Ethernet padding) are not part of the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// In order: `Truncated` (under 40 bytes), `BadIpVersion`, `BadIpTotalLength` (the
    /// payload length runs past the buffer).
    #[inline]
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != 6 {
            return Err(WireError::BadIpVersion);
        }
        if HEADER_LEN + usize::from(self.payload_len()) > len {
            return Err(WireError::BadIpTotalLength);
        }
        Ok(())
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn ver_tc_flow(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    #[inline]
    pub fn version(&self) -> u8 {
        (self.ver_tc_flow() >> 28) as u8
    }

    /// DSCP (six high bits) + ECN (two low bits), as IPv4's TOS byte (RFC 8200 §7, RFC 3168).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    /// The 20-bit flow label (RFC 6437).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & 0x000f_ffff
    }

    /// Bytes after the fixed header, extension headers included.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[field::PAYLOAD_LEN.start], b[field::PAYLOAD_LEN.start + 1]])
    }

    /// The type of the header after the fixed header (an extension header or the upper layer).
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        Ipv6Addr::from(a)
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        Ipv6Addr::from(a)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv6Packet<&'a T> {
    /// The `payload_len()` bytes after the fixed header (extension headers included),
    /// borrowed for the buffer's lifetime.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &self.buffer.as_ref()[HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    #[inline]
    fn set_ver_tc_flow(&mut self, value: u32) {
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&value.to_be_bytes());
    }

    /// Version 6, the traffic class, and the flow label (its low 20 bits) at once: they share
    /// one 32-bit word.
    #[inline]
    pub fn set_version_class_and_label(&mut self, traffic_class: u8, flow_label: u32) {
        self.set_ver_tc_flow(6 << 28 | u32::from(traffic_class) << 20 | (flow_label & 0x000f_ffff));
    }

    #[inline]
    pub fn set_payload_len(&mut self, value: u16) {
        self.buffer.as_mut()[field::PAYLOAD_LEN].copy_from_slice(&value.to_be_bytes());
    }

    #[inline]
    pub fn set_next_header(&mut self, value: u8) {
        self.buffer.as_mut()[field::NEXT_HEADER] = value;
    }

    #[inline]
    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = value;
    }

    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&addr.octets());
    }

    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&addr.octets());
    }
}

/// What an IPv6 fixed header says. Emitted with no extension headers: `next_header` is then
/// the upper layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Repr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    /// The header after the fixed one, as written in the packet (see [`upper_layer`] for the
    /// protocol behind any extension headers).
    pub next_header: u8,
    /// Bytes after the fixed header.
    pub payload_len: usize,
    pub hop_limit: u8,
    /// DSCP and ECN; [`Ecn::of_tos`] reads its ECN field.
    pub traffic_class: u8,
    /// The 20-bit flow label (RFC 6437); 0 means unlabelled.
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// The fixed header's fields. The packet must have passed `check_len` (as `new_checked`
    /// does); there is no header checksum in IPv6, so this cannot fail, and the extension
    /// headers are [`upper_layer`]'s business.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv6Packet<T>) -> Ipv6Repr {
        Ipv6Repr {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        }
    }

    /// Always 40: no extension headers are emitted.
    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 40-byte header into the front of `buf`, the traffic class and flow label as
    /// they are. `PayloadTooLarge` past 65535 payload bytes (no jumbograms), `BufferTooSmall`
    /// if the header does not fit (the payload is not written and need not fit).
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        self.emit_class(buf, self.traffic_class)
    }

    /// [`emit`](Self::emit) with the traffic class's ECN field set to `ecn` and its DSCP kept.
    #[inline]
    pub fn emit_with_ecn(&self, buf: &mut [u8], ecn: Ecn) -> Result<usize, WireError> {
        self.emit_class(buf, (self.traffic_class & !0b11) | ecn.bits())
    }

    #[inline]
    fn emit_class(&self, buf: &mut [u8], traffic_class: u8) -> Result<usize, WireError> {
        let payload_len =
            u16::try_from(self.payload_len).map_err(|_| WireError::PayloadTooLarge)?;
        let Some(header) = buf.get_mut(..HEADER_LEN) else {
            return Err(WireError::BufferTooSmall);
        };
        let mut p = Ipv6Packet::new_unchecked(header);
        p.set_version_class_and_label(traffic_class, self.flow_label);
        p.set_payload_len(payload_len);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        Ok(HEADER_LEN)
    }
}

/// Where the upper-layer header starts, behind the extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    /// Its protocol number (TCP is 6).
    pub protocol: u8,
    /// Its offset in the IPv6 payload (the bytes after the fixed header).
    pub offset: usize,
}

/// Walks the extension headers of an IPv6 payload (`first` is the fixed header's Next Header)
/// to the upper-layer header, by the rules in this module's documentation. Every length is
/// checked against `payload`: a header running past it is `BadIpv6ExtensionHeader`.
pub fn upper_layer(first: u8, payload: &[u8]) -> Result<UpperLayer, WireError> {
    use next_header as nh;
    let mut header = first;
    let mut offset = 0usize;
    for walked in 0..=MAX_EXTENSION_HEADERS {
        match header {
            nh::HOP_BY_HOP | nh::DESTINATION_OPTIONS | nh::ROUTING => {
                if walked == MAX_EXTENSION_HEADERS {
                    return Err(WireError::TooManyIpv6Headers);
                }
                // RFC 8200 §4.1: Hop-by-Hop only immediately after the IPv6 header.
                if header == nh::HOP_BY_HOP && walked != 0 {
                    return Err(WireError::BadIpv6ExtensionHeader);
                }
                let rest = &payload[offset..];
                // Next Header and Hdr Ext Len, then (Hdr Ext Len + 1) 8-octet units in all.
                let [next, units, ..] = *rest else {
                    return Err(WireError::BadIpv6ExtensionHeader);
                };
                let len = (usize::from(units) + 1) * 8;
                let Some(this) = rest.get(..len) else {
                    return Err(WireError::BadIpv6ExtensionHeader);
                };
                if header == nh::ROUTING {
                    // Routing Type, then Segments Left (RFC 8200 §4.4).
                    if this[3] != 0 {
                        return Err(WireError::Ipv6Routing);
                    }
                } else {
                    check_options(&this[2..])?;
                }
                header = next;
                offset += len;
            }
            nh::FRAGMENT => return Err(WireError::Fragment),
            nh::ESP | nh::AH => return Err(WireError::Ipv6Ipsec),
            nh::NO_NEXT_HEADER => return Err(WireError::NoNextHeader),
            nh::MOBILITY | nh::HIP | nh::SHIM6 | nh::EXPERIMENT_1 | nh::EXPERIMENT_2 => {
                return Err(WireError::UnsupportedIpv6Header)
            }
            protocol => return Ok(UpperLayer { protocol, offset }),
        }
    }
    // The last round either returned or refused a further extension header.
    Err(WireError::TooManyIpv6Headers)
}

/// The options of a Hop-by-Hop or Destination Options header (RFC 8200 §4.2): Pad1 and PadN
/// are skipped, and so is any option whose type's two high bits are `00` ("skip over this
/// option"); every other one asks an unrecognising node to discard the packet, and xgate
/// recognises none. Options must fill the area exactly.
fn check_options(mut area: &[u8]) -> Result<(), WireError> {
    const PAD1: u8 = 0;
    while let [kind, rest @ ..] = area {
        if *kind == PAD1 {
            area = rest;
            continue;
        }
        let [len, rest @ ..] = rest else {
            return Err(WireError::BadIpv6ExtensionHeader);
        };
        let Some(after) = rest.get(usize::from(*len)..) else {
            return Err(WireError::BadIpv6ExtensionHeader);
        };
        if kind >> 6 != 0b00 {
            return Err(WireError::Ipv6UnrecognizedOption);
        }
        area = after;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::ip_protocol;
    use super::super::test_vectors::LINUX_SYN_V6;
    use super::*;

    const TCP: u8 = ip_protocol::TCP;

    /// The IPv6 packet of the captured SYN (after its 14-byte Ethernet header).
    fn syn_packet() -> &'static [u8] {
        &LINUX_SYN_V6[14..]
    }

    #[test]
    fn fields_of_the_captured_linux_syn() {
        let p = Ipv6Packet::new_checked(syn_packet()).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0);
        assert_eq!(p.flow_label(), 0x60890);
        assert_eq!(p.payload_len(), 40);
        assert_eq!(p.next_header(), TCP);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), Ipv6Addr::LOCALHOST);
        assert_eq!(p.dst_addr(), Ipv6Addr::LOCALHOST);
        assert_eq!(p.payload().len(), 40);
        let r = Ipv6Repr::parse(&p);
        assert_eq!(r.payload_len, 40);
        assert_eq!(
            upper_layer(r.next_header, p.payload()),
            Ok(UpperLayer {
                protocol: TCP,
                offset: 0
            })
        );
        // Re-emitted from its meaning, the header is the captured one.
        let mut out = [0u8; 40];
        assert_eq!(r.emit(&mut out), Ok(40));
        assert_eq!(&out[..], &syn_packet()[..40]);
    }

    #[test]
    fn traffic_class_and_flow_label_share_the_first_word() {
        let r = Ipv6Repr {
            src: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            dst: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
            next_header: TCP,
            payload_len: 20,
            hop_limit: 255,
            traffic_class: 0xb9, // DSCP 46 (EF), ECT(1)
            flow_label: 0xabcde,
        };
        let mut out = [0u8; 40];
        r.emit(&mut out).unwrap();
        // 6 | b9 | abcde, by hand: 0x6b9abcde.
        assert_eq!(&out[..4], &[0x6b, 0x9a, 0xbc, 0xde]);
        let p = Ipv6Packet::new_unchecked(&out[..]);
        assert_eq!(Ecn::of_tos(p.traffic_class()), Ecn::Ect1);
        r.emit_with_ecn(&mut out, Ecn::Ce).unwrap();
        let p = Ipv6Packet::new_unchecked(&out[..]);
        assert_eq!(p.traffic_class(), 0xbb, "DSCP kept, ECN field set");
        assert_eq!(p.flow_label(), 0xabcde);
        assert_eq!(p.version(), 6);
        // A label wider than 20 bits cannot leak into the traffic class.
        let wide = Ipv6Repr {
            flow_label: 0xfff_ffff,
            ..r
        };
        wide.emit(&mut out).unwrap();
        let p = Ipv6Packet::new_unchecked(&out[..]);
        assert_eq!((p.traffic_class(), p.flow_label()), (0xb9, 0xfffff));
    }

    #[test]
    fn emit_errors() {
        let p = Ipv6Packet::new_checked(syn_packet()).unwrap();
        let r = Ipv6Repr::parse(&p);
        let mut out = [0x77u8; 40];
        assert_eq!(r.emit(&mut out[..39]), Err(WireError::BufferTooSmall));
        assert!(out.iter().all(|&b| b == 0x77));
        let big = Ipv6Repr {
            payload_len: 65536,
            ..r
        };
        assert_eq!(big.emit(&mut out), Err(WireError::PayloadTooLarge));
        let max = Ipv6Repr {
            payload_len: 65535,
            ..r
        };
        assert_eq!(max.emit(&mut out), Ok(40));
    }

    #[test]
    fn length_checks_each_have_their_error() {
        let pkt = syn_packet();
        for n in 0..40 {
            assert_eq!(
                Ipv6Packet::new_checked(&pkt[..n]).unwrap_err(),
                WireError::Truncated
            );
        }
        for n in 40..pkt.len() {
            assert_eq!(
                Ipv6Packet::new_checked(&pkt[..n]).unwrap_err(),
                WireError::BadIpTotalLength,
                "len {n}"
            );
        }
        let mut v4 = pkt.to_vec();
        v4[0] = 0x40 | (v4[0] & 0x0f);
        assert_eq!(
            Ipv6Packet::new_checked(&v4[..]).unwrap_err(),
            WireError::BadIpVersion
        );
        // Padding after the payload is not part of the packet.
        let mut padded = pkt.to_vec();
        padded.extend_from_slice(&[0xee; 6]);
        let p = Ipv6Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(p.payload(), &pkt[40..]);
    }

    /// An extension header of `units` 8-octet units beyond the first, whose options area is
    /// PadN filling it.
    fn options_header(next: u8, units: u8) -> Vec<u8> {
        let len = (usize::from(units) + 1) * 8;
        let mut h = vec![next, units, 1, (len - 4) as u8];
        h.resize(len, 0);
        h
    }

    fn routing_header(next: u8, segments_left: u8) -> Vec<u8> {
        // Type 4 (segment routing) with one 16-byte segment: 3 units.
        let mut h = vec![next, 2, 4, segments_left];
        h.resize(24, 0);
        h
    }

    #[test]
    fn hop_by_hop_routing_and_destination_options_are_skipped_by_length() {
        use next_header as nh;
        let mut payload = options_header(nh::DESTINATION_OPTIONS, 0);
        payload.extend(options_header(nh::ROUTING, 2));
        payload.extend(routing_header(nh::DESTINATION_OPTIONS, 0));
        payload.extend(options_header(TCP, 0));
        payload.extend_from_slice(&[0xaa; 20]);
        assert_eq!(
            upper_layer(nh::HOP_BY_HOP, &payload),
            Ok(UpperLayer {
                protocol: TCP,
                offset: 8 + 24 + 24 + 8
            })
        );
        // Pad1s, and an option a node may skip (type 0x1e: high bits 00) are skipped too.
        let mut skip = vec![TCP, 0, 0, 0, 0x1e, 2, 0xab, 0xcd];
        assert_eq!(
            upper_layer(nh::DESTINATION_OPTIONS, &skip),
            Ok(UpperLayer {
                protocol: TCP,
                offset: 8
            })
        );
        // A Router Alert (type 5, RFC 2711) is skippable for a host.
        skip[4] = 5;
        assert_eq!(upper_layer(nh::HOP_BY_HOP, &skip).map(|u| u.offset), Ok(8));
        // UDP behind a Destination Options header is the caller's NotTcp.
        let udp = options_header(ip_protocol::UDP, 0);
        assert_eq!(
            upper_layer(nh::DESTINATION_OPTIONS, &udp),
            Ok(UpperLayer {
                protocol: ip_protocol::UDP,
                offset: 8
            })
        );
    }

    #[test]
    fn headers_never_walked_each_have_their_error() {
        use next_header as nh;
        let frag = [TCP, 0, 0, 1, 0, 0, 0, 7]; // an atomic fragment (offset 0, M clear)
        assert_eq!(upper_layer(nh::FRAGMENT, &frag), Err(WireError::Fragment));
        // Behind a skippable header too.
        let mut behind = options_header(nh::FRAGMENT, 0);
        behind.extend_from_slice(&frag);
        assert_eq!(
            upper_layer(nh::DESTINATION_OPTIONS, &behind),
            Err(WireError::Fragment)
        );
        for h in [nh::ESP, nh::AH] {
            assert_eq!(upper_layer(h, &[0; 64]), Err(WireError::Ipv6Ipsec), "{h}");
        }
        assert_eq!(
            upper_layer(nh::NO_NEXT_HEADER, &[]),
            Err(WireError::NoNextHeader)
        );
        for h in [
            nh::MOBILITY,
            nh::HIP,
            nh::SHIM6,
            nh::EXPERIMENT_1,
            nh::EXPERIMENT_2,
        ] {
            assert_eq!(
                upper_layer(h, &[0; 64]),
                Err(WireError::UnsupportedIpv6Header),
                "{h}"
            );
        }
        // RFC 8200 §4.4: Segments Left != 0, this host is not the last stop.
        let routed = routing_header(TCP, 1);
        assert_eq!(
            upper_layer(nh::ROUTING, &routed),
            Err(WireError::Ipv6Routing)
        );
    }

    #[test]
    fn rfc8200_s4_1_hop_by_hop_only_first() {
        use next_header as nh;
        let mut payload = options_header(nh::HOP_BY_HOP, 0);
        payload.extend(options_header(TCP, 0));
        assert_eq!(
            upper_layer(nh::DESTINATION_OPTIONS, &payload),
            Err(WireError::BadIpv6ExtensionHeader)
        );
        let mut twice = options_header(nh::HOP_BY_HOP, 0);
        twice.extend(options_header(TCP, 0));
        assert_eq!(
            upper_layer(nh::HOP_BY_HOP, &twice),
            Err(WireError::BadIpv6ExtensionHeader)
        );
    }

    #[test]
    fn rfc8200_s4_2_an_option_that_says_discard_refuses_the_packet() {
        use next_header as nh;
        // Types 0x40-0xff: actions 01, 10, 11 (0xc2 is the Jumbo Payload option).
        for kind in [0x40u8, 0x7f, 0x80, 0xbf, 0xc2, 0xff] {
            let h = [TCP, 0, kind, 4, 0, 0, 0, 0];
            for first in [nh::HOP_BY_HOP, nh::DESTINATION_OPTIONS] {
                assert_eq!(
                    upper_layer(first, &h),
                    Err(WireError::Ipv6UnrecognizedOption),
                    "type {kind:#x}"
                );
            }
        }
    }

    #[test]
    fn every_length_is_checked() {
        use next_header as nh;
        let good = {
            let mut p = options_header(nh::ROUTING, 1);
            p.extend(routing_header(TCP, 0));
            p
        };
        assert_eq!(
            upper_layer(nh::HOP_BY_HOP, &good).map(|u| u.offset),
            Ok(16 + 24)
        );
        // Any cut inside the extension headers is refused; past them the upper layer is
        // someone else's length to check.
        for n in 0..good.len() {
            assert_eq!(
                upper_layer(nh::HOP_BY_HOP, &good[..n]),
                Err(WireError::BadIpv6ExtensionHeader),
                "len {n}"
            );
        }
        // An option running past its header.
        let over = [TCP, 0, 1, 5, 0, 0, 0, 0];
        assert_eq!(
            upper_layer(nh::DESTINATION_OPTIONS, &over),
            Err(WireError::BadIpv6ExtensionHeader)
        );
        // An option whose length byte is the header's last byte.
        let cut = [TCP, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(
            upper_layer(nh::DESTINATION_OPTIONS, &cut),
            Err(WireError::BadIpv6ExtensionHeader)
        );
        // The largest header (255 units: 2048 bytes) is walked when it is all there.
        let big = options_header(TCP, 255);
        assert_eq!(big.len(), 2048);
        assert_eq!(
            upper_layer(nh::HOP_BY_HOP, &big).map(|u| u.offset),
            Ok(2048)
        );
        assert_eq!(
            upper_layer(nh::HOP_BY_HOP, &big[..2047]),
            Err(WireError::BadIpv6ExtensionHeader)
        );
    }

    #[test]
    fn the_walk_stops_after_max_extension_headers() {
        use next_header as nh;
        let chain = |n: usize| {
            let mut p = Vec::new();
            for i in 0..n {
                let next = if i + 1 == n {
                    TCP
                } else {
                    nh::DESTINATION_OPTIONS
                };
                p.extend(options_header(next, 0));
            }
            p.extend_from_slice(&[0; 20]);
            p
        };
        let at_bound = chain(MAX_EXTENSION_HEADERS);
        assert_eq!(
            upper_layer(nh::DESTINATION_OPTIONS, &at_bound).map(|u| u.offset),
            Ok(8 * MAX_EXTENSION_HEADERS)
        );
        let past = chain(MAX_EXTENSION_HEADERS + 1);
        assert_eq!(
            upper_layer(nh::DESTINATION_OPTIONS, &past),
            Err(WireError::TooManyIpv6Headers)
        );
        // A long chain costs no more than the bound, whatever its length.
        let long = chain(200);
        assert_eq!(
            upper_layer(nh::DESTINATION_OPTIONS, &long),
            Err(WireError::TooManyIpv6Headers)
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_walk() {
        // Every first header against every short payload of a few patterns.
        let patterns: [&[u8]; 4] = [
            &[0; 40],
            &[0xff; 40],
            &[6, 0, 1, 4, 0, 0, 0, 0, 0, 0],
            &[60, 1, 0xc2],
        ];
        for first in 0..=255u8 {
            for p in patterns {
                for n in 0..=p.len() {
                    let _ = upper_layer(first, &p[..n]);
                }
            }
        }
    }
}

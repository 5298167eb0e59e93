//! ICMP errors that report a path MTU: IPv4 "fragmentation needed and DF set" (RFC 792 type 3
//! code 4, the next-hop MTU of RFC 1191 §4 in bytes 6-7) and ICMPv6 "packet too big" (RFC 4443
//! §3.2 type 2, the MTU in bytes 4-7; RFC 8201). Parsed only: the gateway never sends ICMP.
//!
//! The XDP program steers these into the ring of the connection whose segment they quote, so
//! [`parse_icmp_frame`] reads the frame the way [`parse_tcp_frame`](super::parse_tcp_frame)
//! does (Ethernet with at most one 802.1Q tag; IPv4 with its header checksum, no fragments;
//! IPv6 with the same extension-header walk), verifies the ICMP checksum (ICMPv6's over the
//! IPv6 pseudo-header, RFC 4443 §2.3), and then reads the quoted packet: its IP header (IPv4
//! by its IHL, IPv6's fixed header, which must be followed by TCP directly since the engine
//! sends no extension headers) and the first 8 bytes of its TCP header, which RFC 792 and RFC
//! 4443 §2.4(c) guarantee (ports and sequence number). The quoted packet is one the gateway
//! sent, so its source is the connection's local side.
//!
//! What the numbers are worth (the quoted sequence number against the connection's window,
//! RFC 5927 §4.1; the MTU against the minimum) is the TCP engine's to judge: this module
//! only says what the message claims.

use core::net::Ipv6Addr;

use super::ethernet::{ethertype, EthernetFrame, EthernetRepr};
use super::ipv4::{ip_protocol, Ipv4Packet, Ipv4Repr, HEADER_LEN as IPV4_HEADER_LEN};
use super::ipv6::{self, Ipv6Packet, Ipv6Repr, HEADER_LEN as IPV6_HEADER_LEN};
use super::{checksum, IpPair, SeqNumber, WireError};
use crate::tcp::FlowKey;

/// ICMP types and codes this module tells apart (IANA "ICMP Type Numbers", "ICMPv6
/// Parameters").
pub mod icmp_type {
    /// ICMPv4 Destination Unreachable (RFC 792).
    pub const V4_DEST_UNREACHABLE: u8 = 3;
    /// Its code "fragmentation needed and DF set", which carries the next-hop MTU (RFC 1191).
    pub const V4_CODE_FRAG_NEEDED: u8 = 4;
    /// ICMPv6 Packet Too Big (RFC 4443 §3.2); its code is 0 and ignored by a receiver.
    pub const V6_PACKET_TOO_BIG: u8 = 2;
}

/// The ICMP header: type, code, checksum and the four type-specific bytes.
pub const HEADER_LEN: usize = 8;

/// The part of the quoted segment's TCP header an ICMP error is sure to carry (RFC 792: "the
/// first 64 bits of the original datagram's data"; RFC 4443 §2.4(c) quotes as much as fits in
/// 1280 bytes): ports and sequence number.
pub const QUOTED_TCP_LEN: usize = 8;

/// Which IP family a message came in (and so which family its quoted packet is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpFamily {
    Ipv4,
    Ipv6,
}

/// What a "fragmentation needed" or "packet too big" message says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmtuMessage {
    pub family: IpFamily,
    /// The MTU the reporting router's next hop takes, as sent: 16 bits over IPv4 (0 from a
    /// router older than RFC 1191), 32 over IPv6. Not yet checked against any minimum.
    pub mtu: u32,
    /// The connection the quoted segment belongs to: its source is the local side, its
    /// destination the remote (the key an inbound segment of that connection would have).
    ///
    /// A `tcp` type in `wire` because the orientation is the error-prone part of reading a
    /// quote (the quoted packet travelled the other way), so it is done once, here, beside
    /// the bytes, and tested with them.
    pub flow: FlowKey,
    /// The quoted segment's sequence number (RFC 5927 §4.1 checks it against SND.UNA and
    /// SND.NXT).
    pub seq: SeqNumber,
}

/// An ICMP message whose IP and ICMP layers verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpMessage {
    /// A path MTU report quoting a TCP segment.
    PacketTooBig(PmtuMessage),
    /// Any other ICMP or ICMPv6 type, or another Destination Unreachable code: not a path MTU
    /// message. Nothing after the ICMP header was read.
    Other {
        family: IpFamily,
        icmp_type: u8,
        code: u8,
    },
}

/// Ethernet (+ one 802.1Q tag) / IPv4 (protocol 1) or IPv6 (ICMPv6, 58, behind the extension
/// headers `wire::ipv6` walks) / ICMP. Never panics and never allocates, whatever `frame`
/// holds.
///
/// Checks run outside-in and the error names the first layer that is wrong: Ethernet and the
/// outer IP header as [`parse_tcp_frame`](super::parse_tcp_frame) reports them, except that a
/// protocol other than ICMP is `NotIcmp`; an ICMP message under 8 bytes is `Truncated`, one
/// whose checksum does not verify `IcmpChecksum`. Other types and codes are
/// [`IcmpMessage::Other`]. Then the quote, in order: shorter than a fixed IP header
/// `Truncated`; an IP version other than the outer one `BadIpVersion`; an IPv4 IHL below 5
/// `BadIpHeaderLength`; shorter than its IP header plus 8 bytes of TCP `Truncated`; a quoted
/// IPv4 fragment `Fragment` (the gateway sends none); a quoted protocol (IPv6: the fixed
/// header's next header) other than TCP `NotTcp`. The quoted IPv4 header's checksum and total
/// length are not checked: a router quotes the header as it received it, and truncates what
/// follows it.
pub fn parse_icmp_frame(frame: &[u8]) -> Result<IcmpMessage, WireError> {
    let eth = EthernetFrame::new_checked(frame)?;
    let eth_repr = EthernetRepr::parse(&eth)?;
    match eth_repr.ethertype {
        ethertype::IPV4 => {
            let ip = Ipv4Packet::new_checked(eth.payload())?;
            let ip_repr = Ipv4Repr::parse(&ip)?;
            if ip_repr.protocol != ip_protocol::ICMP {
                return Err(WireError::NotIcmp);
            }
            let message = ip.payload();
            check_header(message)?;
            if !checksum::is_valid(checksum::sum(message)) {
                return Err(WireError::IcmpChecksum);
            }
            let (kind, code) = (message[0], message[1]);
            if kind != icmp_type::V4_DEST_UNREACHABLE || code != icmp_type::V4_CODE_FRAG_NEEDED {
                return Ok(IcmpMessage::Other {
                    family: IpFamily::Ipv4,
                    icmp_type: kind,
                    code,
                });
            }
            let mtu = u32::from(u16::from_be_bytes([message[6], message[7]]));
            quoted_ipv4(&message[HEADER_LEN..], mtu).map(IcmpMessage::PacketTooBig)
        }
        ethertype::IPV6 => {
            let ip = Ipv6Packet::new_checked(eth.payload())?;
            let ip_repr = Ipv6Repr::parse(&ip);
            let payload = ip.payload();
            let upper = ipv6::upper_layer(ip_repr.next_header, payload)?;
            if upper.protocol != ip_protocol::ICMPV6 {
                return Err(WireError::NotIcmp);
            }
            // `upper_layer` checked the offset against the payload; `get` keeps it a refusal.
            let message = payload.get(upper.offset..).ok_or(WireError::Truncated)?;
            check_header(message)?;
            if !verify_icmpv6_checksum(ip_repr.src, ip_repr.dst, message) {
                return Err(WireError::IcmpChecksum);
            }
            let (kind, code) = (message[0], message[1]);
            if kind != icmp_type::V6_PACKET_TOO_BIG {
                return Ok(IcmpMessage::Other {
                    family: IpFamily::Ipv6,
                    icmp_type: kind,
                    code,
                });
            }
            let mtu = u32::from_be_bytes([message[4], message[5], message[6], message[7]]);
            quoted_ipv6(&message[HEADER_LEN..], mtu).map(IcmpMessage::PacketTooBig)
        }
        _ => Err(WireError::NotIp),
    }
}

fn check_header(message: &[u8]) -> Result<(), WireError> {
    if message.len() < HEADER_LEN {
        return Err(WireError::Truncated);
    }
    Ok(())
}

/// RFC 4443 §2.3: the checksum covers the IPv6 pseudo-header (RFC 8200 §8.1, next header 58)
/// and the whole ICMPv6 message.
fn verify_icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> bool {
    // An IPv6 payload length is 16 bits, so the message length fits a u32.
    let len = message.len() as u32;
    let pseudo = checksum::pseudo_header_ipv6(src, dst, ip_protocol::ICMPV6, len);
    checksum::is_valid(checksum::combine(pseudo, checksum::sum(message)))
}

/// The first 8 bytes of the quoted TCP header: source port, destination port, sequence number.
fn quoted_tcp(tcp: &[u8]) -> Result<(u16, u16, SeqNumber), WireError> {
    let Some(&[a, b, c, d, s0, s1, s2, s3]) = tcp.first_chunk::<QUOTED_TCP_LEN>() else {
        return Err(WireError::Truncated);
    };
    let seq = SeqNumber(u32::from_be_bytes([s0, s1, s2, s3]));
    Ok((u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]), seq))
}

fn quoted_ipv4(quote: &[u8], mtu: u32) -> Result<PmtuMessage, WireError> {
    if quote.len() < IPV4_HEADER_LEN {
        return Err(WireError::Truncated);
    }
    // Not `new_checked`: its total-length check would refuse every quote a router truncated.
    let ip = Ipv4Packet::new_unchecked(quote);
    if ip.version() != 4 {
        return Err(WireError::BadIpVersion);
    }
    let header_len = ip.header_len();
    if header_len < IPV4_HEADER_LEN {
        return Err(WireError::BadIpHeaderLength);
    }
    let tcp = quote.get(header_len..).ok_or(WireError::Truncated)?;
    let (local_port, remote_port, seq) = quoted_tcp(tcp)?;
    if ip.is_fragment() {
        return Err(WireError::Fragment);
    }
    if ip.protocol() != ip_protocol::TCP {
        return Err(WireError::NotTcp);
    }
    let inbound = IpPair::V4 {
        src: ip.dst_addr(),
        dst: ip.src_addr(),
    };
    Ok(PmtuMessage {
        family: IpFamily::Ipv4,
        mtu,
        flow: FlowKey::from_inbound(inbound, remote_port, local_port),
        seq,
    })
}

fn quoted_ipv6(quote: &[u8], mtu: u32) -> Result<PmtuMessage, WireError> {
    if quote.len() < IPV6_HEADER_LEN {
        return Err(WireError::Truncated);
    }
    // Not `new_checked` either: the quoted payload length counts bytes the quote left out.
    let ip = Ipv6Packet::new_unchecked(quote);
    if ip.version() != 6 {
        return Err(WireError::BadIpVersion);
    }
    let (local_port, remote_port, seq) = quoted_tcp(&quote[IPV6_HEADER_LEN..])?;
    // The gateway's segments carry no extension headers: TCP follows the fixed header.
    if ip.next_header() != ip_protocol::TCP {
        return Err(WireError::NotTcp);
    }
    let inbound = IpPair::V6 {
        src: ip.dst_addr(),
        dst: ip.src_addr(),
    };
    Ok(PmtuMessage {
        family: IpFamily::Ipv6,
        mtu,
        flow: FlowKey::from_inbound(inbound, remote_port, local_port),
        seq,
    })
}

#[cfg(test)]
mod tests {
    use core::net::{IpAddr, Ipv4Addr, SocketAddr};

    use etherparse::icmpv4::DestUnreachableHeader;
    use etherparse::{
        IcmpEchoHeader, Icmpv4Header, Icmpv4Type, Icmpv6Type, LaxSlicedPacket, NetSlice,
        PacketBuilder, SlicedPacket, TransportSlice, VlanId,
    };

    use super::*;
    use crate::testkit::{ScriptedClient, ROUTER_IPV4, ROUTER_IPV6};
    use crate::wire::test_vectors::{LINUX_SYN, LINUX_SYN_V6, UDP};

    const SERVER_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
    const SERVER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
    const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 7);
    const SPORT: u16 = 443;
    const CPORT: u16 = 51_000;
    const SEQ: u32 = 0xdead_beef;
    const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
    const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    fn flow_v4() -> FlowKey {
        FlowKey::new((SERVER_V4, SPORT).into(), (CLIENT_V4, CPORT).into()).unwrap()
    }

    fn flow_v6() -> FlowKey {
        FlowKey::new((SERVER_V6, SPORT).into(), (CLIENT_V6, CPORT).into()).unwrap()
    }

    /// A segment the server sent, as etherparse writes it: IP + TCP + `payload_len` bytes.
    fn sent_v4(payload_len: usize) -> Vec<u8> {
        let b = PacketBuilder::ipv4(SERVER_V4.octets(), CLIENT_V4.octets(), 64)
            .tcp(SPORT, CPORT, SEQ, 1000)
            .ack(77);
        let mut out = Vec::with_capacity(b.size(payload_len));
        b.write(&mut out, &vec![0x61; payload_len]).unwrap();
        out
    }

    fn sent_v6(payload_len: usize) -> Vec<u8> {
        let b = PacketBuilder::ipv6(SERVER_V6.octets(), CLIENT_V6.octets(), 64)
            .tcp(SPORT, CPORT, SEQ, 1000)
            .ack(77);
        let mut out = Vec::with_capacity(b.size(payload_len));
        b.write(&mut out, &vec![0x61; payload_len]).unwrap();
        out
    }

    /// What a router sends the server for `quote`, built by etherparse: ICMPv4 of `kind`,
    /// from `ROUTER_IPV4`, optionally tagged.
    fn icmpv4(kind: Icmpv4Type, quote: &[u8], vlan: Option<u16>) -> Vec<u8> {
        let eth = PacketBuilder::ethernet2(ROUTER_MAC, SERVER_MAC);
        let ip = match vlan {
            Some(v) => eth.single_vlan(VlanId::try_new(v).unwrap()).ipv4(
                ROUTER_IPV4.octets(),
                SERVER_V4.octets(),
                61,
            ),
            None => eth.ipv4(ROUTER_IPV4.octets(), SERVER_V4.octets(), 61),
        };
        let b = ip.icmpv4(kind);
        let mut out = Vec::with_capacity(b.size(quote.len()));
        b.write(&mut out, quote).unwrap();
        out
    }

    fn icmpv6(kind: Icmpv6Type, quote: &[u8], vlan: Option<u16>) -> Vec<u8> {
        let eth = PacketBuilder::ethernet2(ROUTER_MAC, SERVER_MAC);
        let ip = match vlan {
            Some(v) => eth.single_vlan(VlanId::try_new(v).unwrap()).ipv6(
                ROUTER_IPV6.octets(),
                SERVER_V6.octets(),
                61,
            ),
            None => eth.ipv6(ROUTER_IPV6.octets(), SERVER_V6.octets(), 61),
        };
        let b = ip.icmpv6(kind);
        let mut out = Vec::with_capacity(b.size(quote.len()));
        b.write(&mut out, quote).unwrap();
        out
    }

    fn frag_needed(mtu: u16, quote: &[u8]) -> Vec<u8> {
        let kind = DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: mtu };
        icmpv4(Icmpv4Type::DestinationUnreachable(kind), quote, None)
    }

    fn too_big(mtu: u32, quote: &[u8]) -> Vec<u8> {
        icmpv6(Icmpv6Type::PacketTooBig { mtu }, quote, None)
    }

    fn pmtu(frame: &[u8]) -> PmtuMessage {
        match parse_icmp_frame(frame) {
            Ok(IcmpMessage::PacketTooBig(m)) => m,
            other => panic!("not a path MTU message: {other:?}"),
        }
    }

    #[test]
    fn rfc1191_fragmentation_needed_reads_as_the_quoted_flow_mtu_and_sequence() {
        let want = |mtu| PmtuMessage {
            family: IpFamily::Ipv4,
            mtu,
            flow: flow_v4(),
            seq: SeqNumber(SEQ),
        };
        let sent = sent_v4(1400);
        // The RFC 792 minimum (IP header + 64 bits), RFC 1812's 576-byte datagram, all of it.
        for quote_len in [28, 40, 548, sent.len()] {
            let quote = &sent[..quote_len];
            for (mtu, vlan) in [
                (1400, None),
                (576, Some(100)),
                (0, None),
                (65535, Some(4095)),
            ] {
                let kind = DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: mtu };
                let frame = icmpv4(Icmpv4Type::DestinationUnreachable(kind), quote, vlan);
                assert_eq!(pmtu(&frame), want(u32::from(mtu)), "quote {quote_len}");
            }
        }
        // The quoted source is the local side, its destination the remote.
        let m = pmtu(&frag_needed(1400, &sent));
        assert_eq!(m.flow.local(), SocketAddr::from((SERVER_V4, SPORT)));
        assert_eq!(m.flow.remote(), SocketAddr::from((CLIENT_V4, CPORT)));
        // An IHL of 6 (one word of options: four NOPs) moves the TCP header.
        let mut with_options = sent[..20].to_vec();
        with_options[0] = 0x46;
        with_options.extend_from_slice(&[1, 1, 1, 1]);
        with_options.extend_from_slice(&sent[20..48]);
        assert_eq!(pmtu(&frag_needed(1280, &with_options)), want(1280));
    }

    #[test]
    fn rfc8201_packet_too_big_reads_as_the_quoted_flow_mtu_and_sequence() {
        let want = |mtu| PmtuMessage {
            family: IpFamily::Ipv6,
            mtu,
            flow: flow_v6(),
            seq: SeqNumber(SEQ),
        };
        let sent = sent_v6(1400);
        // The fixed header + 64 bits, RFC 4443's 1280-byte message, all of it.
        for quote_len in [48, 60, 1232, sent.len()] {
            let quote = &sent[..quote_len];
            // The MTU is 32 bits (RFC 4443 §3.2): values past 16 bits are read whole.
            for (mtu, vlan) in [
                (1280, None),
                (1400, Some(7)),
                (0x0001_0000, None),
                (0, None),
            ] {
                let frame = icmpv6(Icmpv6Type::PacketTooBig { mtu }, quote, vlan);
                assert_eq!(pmtu(&frame), want(mtu), "quote {quote_len}");
            }
        }
        let m = pmtu(&too_big(1280, &sent));
        assert_eq!(m.flow.local(), SocketAddr::from((SERVER_V6, SPORT)));
        assert_eq!(m.flow.remote(), SocketAddr::from((CLIENT_V6, CPORT)));
        // RFC 4443 §3.2: the code is "ignored by the receiver".
        let mut coded = too_big(1280, &sent[..48]);
        coded[54 + 1] = 9;
        fix_icmpv6_checksum(&mut coded, 14);
        assert_eq!(pmtu(&coded), want(1280));
    }

    /// Recomputes the ICMPv6 checksum of an untagged frame whose ICMPv6 header sits right
    /// after the fixed IPv6 header at `ip_at`.
    fn fix_icmpv6_checksum(frame: &mut [u8], ip_at: usize) {
        let ip = Ipv6Packet::new_checked(&frame[ip_at..]).unwrap();
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let end = ip_at + 40 + usize::from(ip.payload_len());
        let message = &mut frame[ip_at + 40..end];
        if message.len() < 4 {
            return;
        }
        message[2..4].fill(0);
        let pseudo = checksum::pseudo_header_ipv6(src, dst, 58, message.len() as u32);
        let sum = checksum::finish(checksum::combine(pseudo, checksum::sum(message)));
        message[2..4].copy_from_slice(&sum.to_be_bytes());
    }

    fn fix_icmpv4_checksum(frame: &mut [u8], ip_at: usize) {
        let ip = Ipv4Packet::new_checked(&frame[ip_at..]).unwrap();
        let (start, end) = (ip_at + ip.header_len(), ip_at + usize::from(ip.total_len()));
        let message = &mut frame[start..end];
        if message.len() < 4 {
            return;
        }
        message[2..4].fill(0);
        let sum = checksum::finish(checksum::sum(message));
        message[2..4].copy_from_slice(&sum.to_be_bytes());
    }

    #[test]
    fn rfc792_every_byte_of_the_message_is_under_the_icmp_checksum() {
        let frame = frag_needed(1400, &sent_v4(100));
        for at in 34..frame.len() {
            let mut f = frame.clone();
            f[at] ^= 0x10;
            assert_eq!(parse_icmp_frame(&f), Err(WireError::IcmpChecksum), "{at}");
        }
        // The outer addresses are the IPv4 header checksum's, not the ICMP one's.
        let mut f = frame.clone();
        f[26] ^= 1;
        assert_eq!(parse_icmp_frame(&f), Err(WireError::IpChecksum));
    }

    #[test]
    fn rfc4443_s2_3_the_icmpv6_checksum_covers_the_pseudo_header_and_the_message() {
        let frame = too_big(1280, &sent_v6(100));
        // Both addresses (the pseudo-header) and every byte of the message.
        for at in (22..54).chain(54..frame.len()) {
            let mut f = frame.clone();
            f[at] ^= 0x10;
            assert_eq!(parse_icmp_frame(&f), Err(WireError::IcmpChecksum), "{at}");
        }
        // A checksum left as IPv4 would compute it (no pseudo-header) is refused.
        let mut v4_style = frame.clone();
        v4_style[56..58].fill(0);
        let sum = checksum::finish(checksum::sum(&v4_style[54..]));
        v4_style[56..58].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(parse_icmp_frame(&v4_style), Err(WireError::IcmpChecksum));
    }

    #[test]
    fn outer_ipv6_extension_headers_are_walked_by_the_rules_of_wire_ipv6() {
        let plain = too_big(1400, &sent_v6(60));
        // A Destination Options header (PadN) between the fixed header and ICMPv6: the
        // pseudo-header names ICMPv6 and its own length, so the checksum still holds.
        let mut with_dest = plain[..54].to_vec();
        with_dest.extend_from_slice(&[58, 0, 1, 4, 0, 0, 0, 0]);
        with_dest.extend_from_slice(&plain[54..]);
        with_dest[20] = ipv6::next_header::DESTINATION_OPTIONS;
        let len = u16::from_be_bytes([with_dest[18], with_dest[19]]) + 8;
        with_dest[18..20].copy_from_slice(&len.to_be_bytes());
        assert_eq!(pmtu(&with_dest), pmtu(&plain));
        let mut fragment = with_dest.clone();
        fragment[20] = ipv6::next_header::FRAGMENT;
        assert_eq!(parse_icmp_frame(&fragment), Err(WireError::Fragment));
        let mut esp = with_dest.clone();
        esp[54] = ipv6::next_header::ESP;
        assert_eq!(parse_icmp_frame(&esp), Err(WireError::Ipv6Ipsec));
    }

    #[test]
    fn other_types_and_codes_are_not_path_mtu_messages() {
        let quote = sent_v4(8);
        let echo = IcmpEchoHeader { id: 1, seq: 2 };
        let port = DestUnreachableHeader::Port;
        for (kind, code) in [
            (Icmpv4Type::EchoRequest(echo), (8, 0)),
            (Icmpv4Type::DestinationUnreachable(port), (3, 3)),
            (
                Icmpv4Type::TimeExceeded(
                    etherparse::icmpv4::TimeExceededCode::TtlExceededInTransit,
                ),
                (11, 0),
            ),
        ] {
            assert_eq!(
                parse_icmp_frame(&icmpv4(kind, &quote, None)),
                Ok(IcmpMessage::Other {
                    family: IpFamily::Ipv4,
                    icmp_type: code.0,
                    code: code.1
                })
            );
        }
        let quote = sent_v6(8);
        let unreachable = etherparse::icmpv6::DestUnreachableCode::Port;
        for (kind, code) in [
            (Icmpv6Type::EchoRequest(echo), (128, 0)),
            (Icmpv6Type::DestinationUnreachable(unreachable), (1, 4)),
        ] {
            assert_eq!(
                parse_icmp_frame(&icmpv6(kind, &quote, None)),
                Ok(IcmpMessage::Other {
                    family: IpFamily::Ipv6,
                    icmp_type: code.0,
                    code: code.1
                })
            );
        }
        // ICMPv4's numbers over IPv6 are another message (3 is Time Exceeded there).
        let raw = icmpv6(
            Icmpv6Type::Unknown {
                type_u8: 3,
                code_u8: 4,
                bytes5to8: [0, 0, 5, 0],
            },
            &quote,
            None,
        );
        assert!(matches!(
            parse_icmp_frame(&raw),
            Ok(IcmpMessage::Other { icmp_type: 3, .. })
        ));
    }

    #[test]
    fn frames_that_are_not_icmp() {
        assert_eq!(parse_icmp_frame(&LINUX_SYN), Err(WireError::NotIcmp));
        assert_eq!(parse_icmp_frame(&LINUX_SYN_V6), Err(WireError::NotIcmp));
        assert_eq!(parse_icmp_frame(&UDP), Err(WireError::NotIcmp));
        let mut arp = frag_needed(1400, &sent_v4(8));
        arp[12..14].copy_from_slice(&ethertype::ARP.to_be_bytes());
        assert_eq!(parse_icmp_frame(&arp), Err(WireError::NotIp));
        // An ICMP message shorter than its header.
        let mut short = frag_needed(1400, &sent_v4(8));
        short.truncate(14 + 20 + 7);
        let mut ip = Ipv4Packet::new_unchecked(&mut short[14..]);
        ip.set_total_len(27);
        ip.fill_checksum();
        assert_eq!(parse_icmp_frame(&short), Err(WireError::Truncated));
    }

    #[test]
    fn the_quote_must_be_a_tcp_segment_in_the_messages_family() {
        let sent = sent_v4(8);
        let quoted = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut quote = sent.clone();
            edit(&mut quote);
            parse_icmp_frame(&frag_needed(1400, &quote))
        };
        assert_eq!(quoted(&|q| q[0] = 0x65), Err(WireError::BadIpVersion));
        assert_eq!(quoted(&|q| q[0] = 0x44), Err(WireError::BadIpHeaderLength));
        assert_eq!(quoted(&|q| q[9] = ip_protocol::UDP), Err(WireError::NotTcp));
        // MF, or an offset: the gateway never sends a fragment.
        assert_eq!(quoted(&|q| q[6] = 0x20), Err(WireError::Fragment));
        assert_eq!(quoted(&|q| q[7] = 1), Err(WireError::Fragment));
        // An IHL of 15 leaves no room for the ports.
        assert_eq!(quoted(&|q| q[0] = 0x4f), Err(WireError::Truncated));
        // An IPv6 packet quoted by ICMPv4.
        let v6 = sent_v6(8);
        assert_eq!(
            parse_icmp_frame(&frag_needed(1400, &v6)),
            Err(WireError::BadIpVersion)
        );
        for n in 0..28 {
            assert_eq!(
                parse_icmp_frame(&frag_needed(1400, &sent[..n])),
                Err(WireError::Truncated),
                "quote {n}"
            );
        }

        assert_eq!(
            parse_icmp_frame(&too_big(1400, &sent)),
            Err(WireError::BadIpVersion)
        );
        let mut ext = v6.clone();
        ext[6] = ipv6::next_header::DESTINATION_OPTIONS;
        assert_eq!(
            parse_icmp_frame(&too_big(1400, &ext)),
            Err(WireError::NotTcp)
        );
        for n in 0..48 {
            assert_eq!(
                parse_icmp_frame(&too_big(1400, &v6[..n])),
                Err(WireError::Truncated),
                "quote {n}"
            );
        }
    }

    #[test]
    fn every_truncation_of_a_message_is_an_error() {
        for frame in [
            frag_needed(1400, &sent_v4(40)),
            too_big(1280, &sent_v6(40)),
            icmpv4(
                Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
                    next_hop_mtu: 1400,
                }),
                &sent_v4(40),
                Some(3),
            ),
        ] {
            assert!(parse_icmp_frame(&frame).is_ok());
            for n in 0..frame.len() {
                let e = parse_icmp_frame(&frame[..n]).unwrap_err();
                assert!(
                    matches!(e, WireError::Truncated | WireError::BadIpTotalLength),
                    "len {n}: {e:?}"
                );
            }
        }
    }

    #[test]
    fn the_testkit_router_reads_the_same_to_etherparse() {
        for client in [
            ScriptedClient::new(40_000, 80, 1),
            ScriptedClient::new_ipv6(40_000, 80, 1),
        ] {
            let mut buf = Vec::new();
            for mtu in [0, 552, 1280, 1400, 9000] {
                let n = client.too_big(&mut buf, mtu, SeqNumber(SEQ));
                let frame = &buf[..n];
                let p = SlicedPacket::from_ethernet(frame).expect("etherparse takes it");
                let quote = match (&p.net, &p.transport) {
                    (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Icmpv4(icmp))) => {
                        assert_eq!(ip.header().source_addr(), ROUTER_IPV4);
                        assert_eq!(ip.header().total_len(), 576, "RFC 1812 §4.3.2.3");
                        let kind = DestUnreachableHeader::FragmentationNeeded {
                            next_hop_mtu: mtu as u16,
                        };
                        assert_eq!(icmp.icmp_type(), Icmpv4Type::DestinationUnreachable(kind));
                        let want = Icmpv4Header::with_checksum(icmp.icmp_type(), icmp.payload());
                        assert_eq!(icmp.checksum(), want.checksum);
                        icmp.payload()
                    }
                    (Some(NetSlice::Ipv6(ip)), Some(TransportSlice::Icmpv6(icmp))) => {
                        let h = ip.header();
                        assert_eq!(h.source_addr(), ROUTER_IPV6);
                        assert_eq!(40 + h.payload_length(), 1280, "RFC 4443 §2.4(c)");
                        assert_eq!(icmp.icmp_type(), Icmpv6Type::PacketTooBig { mtu });
                        let (src, dst) = (h.source(), h.destination());
                        assert!(icmp.is_checksum_valid(src, dst));
                        icmp.payload()
                    }
                    other => panic!("{other:?}"),
                };
                // The quote is the server's segment, cut short: read laxly, it names the
                // server as its source and carries the TCP header.
                let q = LaxSlicedPacket::from_ip(quote).expect("a truncated IP packet");
                let src = match &q.net {
                    Some(etherparse::LaxNetSlice::Ipv4(ip)) => {
                        IpAddr::V4(ip.header().source_addr())
                    }
                    Some(etherparse::LaxNetSlice::Ipv6(ip)) => {
                        IpAddr::V6(ip.header().source_addr())
                    }
                    other => panic!("{other:?}"),
                };
                assert_eq!(src, client.addrs.ip_dst());
                let Some(TransportSlice::Tcp(tcp)) = &q.transport else {
                    panic!("{:?}", q.transport)
                };
                assert_eq!((tcp.source_port(), tcp.destination_port()), (80, 40_000));
                assert_eq!(tcp.sequence_number(), SEQ);
                let m = pmtu(frame);
                assert_eq!(m.mtu, mtu);
                assert_eq!(m.seq, SeqNumber(SEQ));
                assert_eq!(m.flow.local(), SocketAddr::new(client.addrs.ip_dst(), 80));
                assert_eq!(
                    m.flow.remote(),
                    SocketAddr::new(client.addrs.ip_src(), 40_000)
                );
                assert_eq!(m.family == IpFamily::Ipv6, m.flow.is_ipv6());
            }
        }
    }

    /// A few thousand frames from a small PRNG: random bytes behind valid Ethernet and IP
    /// headers, and every byte of valid messages overwritten (the ICMP checksum repaired
    /// each time so the quote is read too). Nothing panics; what parses is consistent.
    #[test]
    fn arbitrary_bytes_never_panic_the_parser() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut seen = std::collections::HashSet::new();
        let mut check = |frame: &[u8]| {
            let r = parse_icmp_frame(frame);
            if let Ok(IcmpMessage::PacketTooBig(m)) = r {
                assert_eq!(m.family == IpFamily::Ipv6, m.flow.is_ipv6());
            }
            seen.insert(r.map(|m| matches!(m, IcmpMessage::PacketTooBig(_))));
        };
        for _ in 0..4000 {
            let len = (next() % 200) as usize;
            let mut frame: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            check(&frame);
            if frame.len() > 14 + 40 {
                let v6 = next() % 2 == 0;
                frame[12..14].copy_from_slice(&if v6 { [0x86, 0xdd] } else { [0x08, 0x00] });
                frame[14] = if v6 { 0x60 } else { 0x45 };
                check(&frame);
            }
        }
        for base in [frag_needed(1400, &sent_v4(20)), too_big(1280, &sent_v6(20))] {
            let v6 = base[12..14] == [0x86, 0xdd];
            for at in 0..base.len() {
                for value in [0u8, 1, 0x45, 0x60, 6, 58, 0x7f, 0xff] {
                    let mut f = base.clone();
                    f[at] = value;
                    check(&f);
                    let structure_intact = if v6 {
                        Ipv6Packet::new_checked(&f[14..]).is_ok() && f[20] == 58
                    } else {
                        Ipv4Packet::new_checked(&f[14..]).is_ok_and(|ip| ip.header_len() == 20)
                            && f[23] == 1
                            && f[34..].len() >= 8
                    };
                    if structure_intact {
                        if v6 {
                            fix_icmpv6_checksum(&mut f, 14);
                        } else {
                            fix_icmpv4_checksum(&mut f, 14);
                            let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
                            ip.fill_checksum();
                        }
                        check(&f);
                    }
                }
            }
        }
        // The repaired checksums let the walk reach the quote and past it.
        for want in [
            Ok(true),
            Ok(false),
            Err(WireError::NotTcp),
            Err(WireError::BadIpVersion),
            Err(WireError::Fragment),
            Err(WireError::IcmpChecksum),
        ] {
            assert!(seen.contains(&want), "{want:?} never seen");
        }
    }
}

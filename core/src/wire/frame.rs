//! Whole frames: Ethernet (+ one 802.1Q tag) / IPv4 or IPv6 / TCP, parsed and emitted in one
//! call.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::ethernet::{self, ethertype, EthernetAddress, EthernetFrame, EthernetRepr, VlanTag};
use super::ipv4::{self, ip_protocol, Ecn, Ipv4Packet, Ipv4Repr};
use super::ipv6::{self, Ipv6Packet, Ipv6Repr};
use super::tcp::{TcpHeader, TcpPacket};
use super::WireError;

/// The IP source and destination of one packet, in one family.
///
/// An enum of the two families rather than two `IpAddr`s: a frame cannot mix them, so a
/// mixed pair cannot be written down and the emitter needs no error path for one; the hot
/// path matches one tag per frame (which header, which pseudo-header) where two `IpAddr`s
/// would be matched as a pair; and it is 33 bytes, copied by value, never allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpPair {
    V4 { src: Ipv4Addr, dst: Ipv4Addr },
    V6 { src: Ipv6Addr, dst: Ipv6Addr },
}

impl IpPair {
    #[inline]
    pub const fn src(&self) -> IpAddr {
        match *self {
            IpPair::V4 { src, .. } => IpAddr::V4(src),
            IpPair::V6 { src, .. } => IpAddr::V6(src),
        }
    }

    #[inline]
    pub const fn dst(&self) -> IpAddr {
        match *self {
            IpPair::V4 { dst, .. } => IpAddr::V4(dst),
            IpPair::V6 { dst, .. } => IpAddr::V6(dst),
        }
    }

    /// Source and destination swapped.
    #[inline]
    pub const fn reversed(&self) -> IpPair {
        match *self {
            IpPair::V4 { src, dst } => IpPair::V4 { src: dst, dst: src },
            IpPair::V6 { src, dst } => IpPair::V6 { src: dst, dst: src },
        }
    }

    /// The IP header `emit_tcp_frame` writes: 20 bytes (IPv4, no options) or 40 (IPv6, no
    /// extension headers).
    #[inline]
    pub const fn header_len(&self) -> usize {
        match self {
            IpPair::V4 { .. } => ipv4::HEADER_LEN,
            IpPair::V6 { .. } => ipv6::HEADER_LEN,
        }
    }

    #[inline]
    pub const fn is_ipv6(&self) -> bool {
        matches!(self, IpPair::V6 { .. })
    }
}

/// L2 + L3 addressing of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameAddrs {
    pub eth_src: EthernetAddress,
    pub eth_dst: EthernetAddress,
    pub vlan: Option<VlanTag>,
    pub ip: IpPair,
}

impl FrameAddrs {
    /// The reply's addressing: sources and destinations swapped, same VLAN tag and family.
    #[inline]
    pub fn reversed(&self) -> FrameAddrs {
        FrameAddrs {
            eth_src: self.eth_dst,
            eth_dst: self.eth_src,
            vlan: self.vlan,
            ip: self.ip.reversed(),
        }
    }

    /// 14, or 18 with a VLAN tag.
    #[inline]
    pub const fn eth_header_len(&self) -> usize {
        if self.vlan.is_some() {
            ethernet::VLAN_HEADER_LEN
        } else {
            ethernet::HEADER_LEN
        }
    }

    /// The IP source address.
    #[inline]
    pub const fn ip_src(&self) -> IpAddr {
        self.ip.src()
    }

    /// The IP destination address.
    #[inline]
    pub const fn ip_dst(&self) -> IpAddr {
        self.ip.dst()
    }
}

/// A parsed, verified TCP frame. `payload` borrows from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpFrame<'a> {
    pub addrs: FrameAddrs,
    /// The IPv4 TTL or the IPv6 hop limit, as received.
    pub ttl: u8,
    /// The ECN field of the IPv4 TOS or the IPv6 traffic class, as received (RFC 3168: `Ce`
    /// is a congestion signal).
    pub ecn: Ecn,
    pub tcp: TcpHeader,
    pub payload: &'a [u8],
}

/// Ethernet (+ one 802.1Q tag) / IPv4 (options skipped) or IPv6 (extension headers walked by
/// the rules of `wire::ipv6`) / TCP. Verifies the IPv4 header checksum and the TCP checksum
/// (over the pseudo-header of the packet's family). Fragments, non-IP, non-TCP and IPv6
/// extension headers that are not skipped are typed errors. Ethernet padding beyond the IP
/// packet's length is ignored.
///
/// Checks run outside-in, so the error names the first layer that is wrong: Ethernet
/// (`Truncated`, `UnsupportedVlan`, `NotIp`); for IPv4 its lengths (`Truncated`,
/// `BadIpVersion`, `BadIpHeaderLength`, `BadIpTotalLength`), `IpChecksum`, `Fragment`,
/// `NotTcp`; for IPv6 its lengths (`Truncated`, `BadIpVersion`, `BadIpTotalLength`), then the
/// extension headers (`Fragment`, `Ipv6Ipsec`, `NoNextHeader`, `UnsupportedIpv6Header`,
/// `Ipv6Routing`, `Ipv6UnrecognizedOption`, `BadIpv6ExtensionHeader`, `TooManyIpv6Headers`,
/// in the order met), `NotTcp`; then TCP lengths (`Truncated`, `BadTcpDataOffset`),
/// `TcpChecksum`, then `BadTcpOption`.
pub fn parse_tcp_frame(frame: &[u8]) -> Result<TcpFrame<'_>, WireError> {
    let eth = EthernetFrame::new_checked(frame)?;
    let eth_repr = EthernetRepr::parse(&eth)?;
    let (ip, ttl, ecn, tcp) = match eth_repr.ethertype {
        ethertype::IPV4 => {
            let ip = Ipv4Packet::new_checked(eth.payload())?;
            let ip_repr = Ipv4Repr::parse(&ip)?;
            if ip_repr.protocol != ip_protocol::TCP {
                return Err(WireError::NotTcp);
            }
            let tcp = TcpPacket::new_checked(ip.payload())?;
            if !tcp.verify_checksum(ip_repr.src, ip_repr.dst) {
                return Err(WireError::TcpChecksum);
            }
            let pair = IpPair::V4 {
                src: ip_repr.src,
                dst: ip_repr.dst,
            };
            (pair, ip_repr.ttl, Ecn::of_tos(ip.tos()), tcp)
        }
        ethertype::IPV6 => {
            let ip = Ipv6Packet::new_checked(eth.payload())?;
            let ip_repr = Ipv6Repr::parse(&ip);
            let payload = ip.payload();
            let upper = ipv6::upper_layer(ip_repr.next_header, payload)?;
            if upper.protocol != ip_protocol::TCP {
                return Err(WireError::NotTcp);
            }
            // `upper_layer` checked every extension header against the payload, so the
            // offset is inside it; `get` keeps that a refusal rather than a panic regardless.
            let segment = payload.get(upper.offset..).ok_or(WireError::Truncated)?;
            let tcp = TcpPacket::new_checked(segment)?;
            if !tcp.verify_checksum_ipv6(ip_repr.src, ip_repr.dst) {
                return Err(WireError::TcpChecksum);
            }
            let pair = IpPair::V6 {
                src: ip_repr.src,
                dst: ip_repr.dst,
            };
            let ecn = Ecn::of_tos(ip_repr.traffic_class);
            (pair, ip_repr.hop_limit, ecn, tcp)
        }
        _ => return Err(WireError::NotIp),
    };
    let header = TcpHeader::parse(&tcp)?;
    Ok(TcpFrame {
        addrs: FrameAddrs {
            eth_src: eth_repr.src,
            eth_dst: eth_repr.dst,
            vlan: eth_repr.vlan,
            ip,
        },
        ttl,
        ecn,
        tcp: header,
        payload: tcp.payload(),
    })
}

/// Length of the frame `emit_tcp_frame` would write.
#[inline]
pub fn tcp_frame_len(addrs: &FrameAddrs, tcp: &TcpHeader, payload_len: usize) -> usize {
    addrs.eth_header_len() + addrs.ip.header_len() + tcp.header_len() + payload_len
}

/// Writes Ethernet / IPv4 (DF set, no options) or IPv6 (no extension headers, flow label 0) /
/// TCP with options and the payload (given in up to two parts, as a ring buffer hands it
/// out), with the checksums. `ip_id` is the IPv4 identification (IPv6 has none outside a
/// Fragment header, which is never emitted) and `ttl` the TTL or hop limit. Returns the frame
/// length.
///
/// Writes exactly `tcp_frame_len(..)` bytes at the front of `buf` and nothing after them (no
/// padding to the 60-byte Ethernet minimum). `BufferTooSmall` if they do not fit,
/// `PayloadTooLarge` if the IPv4 total length or the IPv6 payload length would exceed 65535;
/// `buf` is untouched on error.
pub fn emit_tcp_frame(
    buf: &mut [u8],
    addrs: &FrameAddrs,
    ip_id: u16,
    ttl: u8,
    tcp: &TcpHeader,
    payload: [&[u8]; 2],
) -> Result<usize, WireError> {
    emit_tcp_frame_ecn(buf, addrs, ip_id, ttl, Ecn::NotEct, tcp, payload)
}

/// [`emit_tcp_frame`] with the ECN field of the IPv4 TOS or IPv6 traffic class set to `ecn`,
/// DSCP 0 (an ECN-capable connection's new data goes out ECT(0), RFC 3168 §6.1.1).
///
/// The IPv6 flow label is 0 (unlabelled, RFC 6437 §2 allows it): a label would have to stay
/// the same for the connection's life, and the engine keeps no per-flow state for the
/// stateless replies (cookie SYN-ACKs, RSTs) that a label would need to match.
pub fn emit_tcp_frame_ecn(
    buf: &mut [u8],
    addrs: &FrameAddrs,
    ip_id: u16,
    ttl: u8,
    ecn: Ecn,
    tcp: &TcpHeader,
    payload: [&[u8]; 2],
) -> Result<usize, WireError> {
    let payload_len = payload[0].len() + payload[1].len();
    let eth_len = addrs.eth_header_len();
    let ip_len = addrs.ip.header_len();
    let tcp_hl = tcp.header_len();
    let seg_len = tcp_hl + payload_len;
    // IPv4 counts its header in the total length; IPv6's payload length counts only what
    // follows the fixed header.
    let ip_counted = match addrs.ip {
        IpPair::V4 { .. } => ip_len + seg_len,
        IpPair::V6 { .. } => seg_len,
    };
    if ip_counted > usize::from(u16::MAX) {
        return Err(WireError::PayloadTooLarge);
    }
    let total = eth_len + ip_len + seg_len;
    let Some(buf) = buf.get_mut(..total) else {
        return Err(WireError::BufferTooSmall);
    };

    let (eth_buf, rest) = buf.split_at_mut(eth_len);
    let ethertype = match addrs.ip {
        IpPair::V4 { .. } => ethertype::IPV4,
        IpPair::V6 { .. } => ethertype::IPV6,
    };
    EthernetRepr {
        src: addrs.eth_src,
        dst: addrs.eth_dst,
        vlan: addrs.vlan,
        ethertype,
    }
    .emit(eth_buf)?;

    let (ip_buf, seg) = rest.split_at_mut(ip_len);
    match addrs.ip {
        IpPair::V4 { src, dst } => Ipv4Repr {
            src,
            dst,
            protocol: ip_protocol::TCP,
            payload_len: seg_len,
            ttl,
            ident: ip_id,
        }
        .emit_with_ecn(ip_buf, ecn)?,
        IpPair::V6 { src, dst } => Ipv6Repr {
            src,
            dst,
            next_header: ip_protocol::TCP,
            payload_len: seg_len,
            hop_limit: ttl,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit_with_ecn(ip_buf, ecn)?,
    };

    tcp.emit(seg)?;
    let (first, second) = seg[tcp_hl..].split_at_mut(payload[0].len());
    first.copy_from_slice(payload[0]);
    second.copy_from_slice(payload[1]);
    let mut segment = TcpPacket::new_unchecked(seg);
    match addrs.ip {
        IpPair::V4 { src, dst } => segment.fill_checksum(src, dst),
        IpPair::V6 { src, dst } => segment.fill_checksum_ipv6(src, dst),
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::super::test_vectors::*;
    use super::super::{SackBlock, SeqNumber, TcpFlags, TcpOptions};
    use super::*;

    const A: EthernetAddress = EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    const B: EthernetAddress = EthernetAddress([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]);

    /// Re-emits a parsed frame with its own ip id and checks the bytes are identical.
    fn assert_reemits_identically(frame: &[u8], ip_id: u16) {
        let f = parse_tcp_frame(frame).unwrap();
        let mut out = [0u8; 256];
        let n = emit_tcp_frame_ecn(
            &mut out,
            &f.addrs,
            ip_id,
            f.ttl,
            f.ecn,
            &f.tcp,
            [f.payload, &[]],
        )
        .unwrap();
        assert_eq!(n, tcp_frame_len(&f.addrs, &f.tcp, f.payload.len()));
        assert_eq!(&out[..n], frame);
    }

    #[test]
    fn linux_syn_every_field() {
        let f = parse_tcp_frame(&LINUX_SYN).unwrap();
        assert_eq!(f.addrs.eth_dst, A);
        assert_eq!(f.addrs.eth_src, B);
        assert_eq!(f.addrs.vlan, None);
        assert_eq!(
            f.addrs.ip,
            IpPair::V4 {
                src: Ipv4Addr::new(10, 0, 0, 1),
                dst: Ipv4Addr::new(10, 0, 0, 2)
            }
        );
        assert_eq!(f.ttl, 64);
        let t = &f.tcp;
        assert_eq!(t.src_port, 54321);
        assert_eq!(t.dst_port, 80);
        assert_eq!(t.seq, SeqNumber(0x1a2b_3c4d));
        assert_eq!(t.ack, SeqNumber(0));
        assert_eq!(t.flags, TcpFlags::SYN);
        assert!(!t.flags.contains(TcpFlags::ACK));
        assert_eq!(t.window, 64240);
        assert_eq!(t.urgent, 0);
        assert_eq!(
            t.options,
            TcpOptions {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                timestamps: Some((0x1234_5678, 0)),
                ..TcpOptions::default()
            }
        );
        assert_eq!(t.header_len(), 40);
        assert!(f.payload.is_empty());
        // Linux's own layout: our emitter writes the same 20 option bytes.
        assert_reemits_identically(&LINUX_SYN, 0x3f1e);
    }

    #[test]
    fn rfc3168_the_ecn_field_is_read_and_written_with_the_frame() {
        assert_eq!(parse_tcp_frame(&LINUX_SYN).unwrap().ecn, Ecn::NotEct);
        for ecn in [Ecn::Ect0, Ecn::Ect1, Ecn::Ce] {
            let mut marked = LINUX_SYN;
            let mut ip = Ipv4Packet::new_unchecked(&mut marked[14..34]);
            ip.set_tos(0xb8 | ecn.bits());
            ip.fill_checksum();
            let f = parse_tcp_frame(&marked).unwrap();
            assert_eq!(f.ecn, ecn);
            let mut out = [0u8; 256];
            let n = emit_tcp_frame_ecn(&mut out, &f.addrs, 1, 64, ecn, &f.tcp, [&[], &[]]).unwrap();
            let back = parse_tcp_frame(&out[..n]).unwrap();
            assert_eq!(back.ecn, ecn, "emitted with its checksum");
            assert_eq!(out[14 + 1], ecn.bits(), "DSCP 0, the ECN field as asked");
        }
    }

    #[test]
    fn vlan_tagged_data_segment_every_field() {
        let f = parse_tcp_frame(&VLAN_DATA).unwrap();
        assert_eq!(f.addrs.vlan, Some(VlanTag { tci: 0xa064 }));
        assert_eq!(f.addrs.vlan.unwrap().vid(), 100);
        assert_eq!(f.addrs.ip_src(), Ipv4Addr::new(192, 168, 1, 10));
        assert_eq!(f.addrs.ip_dst(), Ipv4Addr::new(192, 168, 1, 1));
        assert_eq!(f.ttl, 63);
        let t = &f.tcp;
        assert_eq!((t.src_port, t.dst_port), (40000, 8080));
        assert_eq!(t.seq, SeqNumber(0x0102_0304));
        assert_eq!(t.ack, SeqNumber(0x0a0b_0c0d));
        assert_eq!(t.flags, TcpFlags::PSH | TcpFlags::ACK);
        assert_eq!(t.window, 502);
        assert_eq!(t.options.timestamps, Some((0x1234_5700, 0xcafe_babe)));
        assert_eq!(t.options.mss, None);
        assert_eq!(t.options.window_scale, None);
        assert!(!t.options.sack_permitted);
        assert_eq!(t.options.sack(), &[]);
        assert_eq!(f.payload, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_reemits_identically(&VLAN_DATA, 0x0102);
    }

    #[test]
    fn ipv4_options_are_skipped() {
        let f = parse_tcp_frame(&IP_OPTIONS_ACK).unwrap();
        assert_eq!(f.addrs.ip_src(), Ipv4Addr::new(10, 1, 2, 3));
        assert_eq!(f.addrs.ip_dst(), Ipv4Addr::new(10, 1, 2, 4));
        assert_eq!(f.ttl, 128);
        assert_eq!((f.tcp.src_port, f.tcp.dst_port), (1234, 443));
        assert_eq!(f.tcp.seq, SeqNumber(1000));
        assert_eq!(f.tcp.ack, SeqNumber(2000));
        assert_eq!(f.tcp.flags, TcpFlags::ACK);
        assert_eq!(f.tcp.window, 65535);
        assert_eq!(f.tcp.options, TcpOptions::default());
        assert!(f.payload.is_empty());
    }

    #[test]
    fn ethernet_padding_after_total_length_is_ignored() {
        assert_eq!(PADDED_ACK.len(), 60);
        let f = parse_tcp_frame(&PADDED_ACK).unwrap();
        assert!(f.payload.is_empty());
        assert_eq!(f.tcp.flags, TcpFlags::ACK);
        assert_eq!(f.tcp.seq, SeqNumber(0x1a2b_3c4e));
        assert_eq!(f.tcp.ack, SeqNumber(0x9988_7766));
        // Garbage in the padding changes nothing.
        let mut dirty = PADDED_ACK;
        dirty[54..].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0x55, 0xaa]);
        assert_eq!(parse_tcp_frame(&dirty).unwrap(), f);
        // The emitter writes the 54 meaningful bytes.
        assert_reemits_identically(&PADDED_ACK[..54], 0x1111);
    }

    #[test]
    fn sack_blocks_and_unknown_option_kind() {
        let f = parse_tcp_frame(&SACK_ACK).unwrap();
        let o = &f.tcp.options;
        assert_eq!(o.timestamps, Some((1, 2)));
        assert_eq!(
            o.sack(),
            &[
                SackBlock {
                    left: SeqNumber(100),
                    right: SeqNumber(200)
                },
                SackBlock {
                    left: SeqNumber(300),
                    right: SeqNumber(400)
                },
            ]
        );
        assert_eq!(o.sack_len, 2);
        // Unknown kind 30 is skipped and not re-emitted: 12 (TS) + 20 (SACK) bytes.
        assert_eq!(f.tcp.header_len(), 20 + 32);
    }

    #[test]
    fn fragment_is_refused() {
        assert_eq!(parse_tcp_frame(&FRAGMENT_MF), Err(WireError::Fragment));
        // Offset != 0 with MF clear (a last fragment) too.
        let mut last = FRAGMENT_MF;
        {
            let mut ip = Ipv4Packet::new_unchecked(&mut last[14..]);
            ip.set_flags_and_frag_offset(false, false, 1480);
            ip.fill_checksum();
        }
        assert_eq!(parse_tcp_frame(&last), Err(WireError::Fragment));
    }

    #[test]
    fn udp_is_not_tcp() {
        assert_eq!(parse_tcp_frame(&UDP), Err(WireError::NotTcp));
    }

    #[test]
    fn other_ethertypes_are_not_ip() {
        for et in [ethertype::ARP, 0x0000, 0xffff] {
            let mut f = LINUX_SYN;
            f[12..14].copy_from_slice(&et.to_be_bytes());
            assert_eq!(parse_tcp_frame(&f), Err(WireError::NotIp), "{et:#x}");
            let mut f = LINUX_SYN_V6;
            f[12..14].copy_from_slice(&et.to_be_bytes());
            assert_eq!(parse_tcp_frame(&f), Err(WireError::NotIp), "{et:#x}");
        }
        let mut inner = VLAN_DATA;
        inner[16..18].copy_from_slice(&ethertype::ARP.to_be_bytes());
        assert_eq!(parse_tcp_frame(&inner), Err(WireError::NotIp));
    }

    #[test]
    fn the_ethertype_and_the_ip_version_must_agree() {
        let mut v4_as_v6 = LINUX_SYN;
        v4_as_v6[12..14].copy_from_slice(&ethertype::IPV6.to_be_bytes());
        assert_eq!(parse_tcp_frame(&v4_as_v6), Err(WireError::BadIpVersion));
        let mut v6_as_v4 = LINUX_SYN_V6;
        v6_as_v4[12..14].copy_from_slice(&ethertype::IPV4.to_be_bytes());
        assert_eq!(parse_tcp_frame(&v6_as_v4), Err(WireError::BadIpVersion));
        let mut inner = VLAN_DATA_V6;
        inner[16..18].copy_from_slice(&ethertype::IPV4.to_be_bytes());
        assert_eq!(parse_tcp_frame(&inner), Err(WireError::BadIpVersion));
    }

    #[test]
    fn qinq_and_stacked_vlan_are_unsupported() {
        let mut qinq = VLAN_DATA;
        qinq[12..14].copy_from_slice(&ethertype::QINQ.to_be_bytes());
        assert_eq!(parse_tcp_frame(&qinq), Err(WireError::UnsupportedVlan));
        let mut stacked = VLAN_DATA;
        stacked[16..18].copy_from_slice(&ethertype::VLAN.to_be_bytes());
        assert_eq!(parse_tcp_frame(&stacked), Err(WireError::UnsupportedVlan));
    }

    /// Applies `edit` to the IPv4 header of `LINUX_SYN` and refreshes the header checksum.
    fn syn_with_ip(edit: impl FnOnce(&mut Ipv4Packet<&mut [u8]>)) -> [u8; 74] {
        let mut f = LINUX_SYN;
        let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
        edit(&mut ip);
        ip.fill_checksum();
        f
    }

    #[test]
    fn ip_header_errors_each_have_their_variant() {
        let v6 = syn_with_ip(|ip| ip.set_version_and_header_len(6, 20));
        assert_eq!(parse_tcp_frame(&v6), Err(WireError::BadIpVersion));
        let mut ihl4 = LINUX_SYN;
        ihl4[14] = 0x44;
        assert_eq!(parse_tcp_frame(&ihl4), Err(WireError::BadIpHeaderLength));
        let long = syn_with_ip(|ip| ip.set_total_len(61));
        assert_eq!(parse_tcp_frame(&long), Err(WireError::BadIpTotalLength));
        let short = syn_with_ip(|ip| ip.set_total_len(19));
        assert_eq!(parse_tcp_frame(&short), Err(WireError::BadIpTotalLength));
        let mut bad_sum = LINUX_SYN;
        bad_sum[24] ^= 0x01;
        assert_eq!(parse_tcp_frame(&bad_sum), Err(WireError::IpChecksum));
        let mut ttl = LINUX_SYN;
        ttl[22] = 1; // TTL changed without fixing the checksum
        assert_eq!(parse_tcp_frame(&ttl), Err(WireError::IpChecksum));
        let udp = syn_with_ip(|ip| ip.set_protocol(ip_protocol::UDP));
        assert_eq!(parse_tcp_frame(&udp), Err(WireError::NotTcp));
    }

    #[test]
    fn tcp_header_errors_each_have_their_variant() {
        // Total length leaves 19 bytes for TCP.
        let short = syn_with_ip(|ip| ip.set_total_len(20 + 19));
        assert_eq!(parse_tcp_frame(&short), Err(WireError::Truncated));
        let mut doff4 = LINUX_SYN;
        doff4[46] = 0x40;
        assert_eq!(parse_tcp_frame(&doff4), Err(WireError::BadTcpDataOffset));
        let mut doff11 = LINUX_SYN;
        doff11[46] = 0xb0; // 44 bytes > 40-byte segment
        assert_eq!(parse_tcp_frame(&doff11), Err(WireError::BadTcpDataOffset));
        let mut bad_sum = LINUX_SYN;
        bad_sum[51] ^= 0x80;
        assert_eq!(parse_tcp_frame(&bad_sum), Err(WireError::TcpChecksum));
        let mut seq = LINUX_SYN;
        seq[38] = 0x00;
        assert_eq!(parse_tcp_frame(&seq), Err(WireError::TcpChecksum));
    }

    #[test]
    fn bad_option_with_valid_checksum_is_bad_tcp_option() {
        // MSS length 5 instead of 4; checksum recomputed so only the option is wrong.
        let mut f = LINUX_SYN;
        f[55] = 5;
        let addrs = parse_tcp_frame(&LINUX_SYN).unwrap().addrs;
        let IpPair::V4 { src, dst } = addrs.ip else {
            unreachable!("an IPv4 vector")
        };
        TcpPacket::new_unchecked(&mut f[34..]).fill_checksum(src, dst);
        assert_eq!(parse_tcp_frame(&f), Err(WireError::BadTcpOption));
    }

    #[test]
    fn every_truncation_of_each_vector_is_an_error() {
        for v in [
            &LINUX_SYN[..],
            &VLAN_DATA[..],
            &IP_OPTIONS_ACK[..],
            &SACK_ACK[..],
            &PADDED_ACK[..54],
        ] {
            for n in 0..v.len() {
                let e = parse_tcp_frame(&v[..n]).unwrap_err();
                assert!(
                    matches!(e, WireError::Truncated | WireError::BadIpTotalLength),
                    "len {n}: {e:?}"
                );
            }
        }
    }

    #[test]
    fn reversed_swaps_both_layers_and_keeps_the_tag() {
        let a = FrameAddrs {
            eth_src: A,
            eth_dst: B,
            vlan: Some(VlanTag { tci: 7 }),
            ip: IpPair::V4 {
                src: Ipv4Addr::new(1, 2, 3, 4),
                dst: Ipv4Addr::new(5, 6, 7, 8),
            },
        };
        let r = a.reversed();
        assert_eq!((r.eth_src, r.eth_dst), (B, A));
        assert_eq!((r.ip_src(), r.ip_dst()), (a.ip_dst(), a.ip_src()));
        assert_eq!(r.vlan, a.vlan);
        assert_eq!(r.reversed(), a);
    }

    #[test]
    fn emit_payload_in_two_parts_with_odd_split() {
        let f = parse_tcp_frame(&VLAN_DATA).unwrap();
        let p = f.payload;
        for split in 0..=p.len() {
            let mut out = [0xa5u8; 128];
            let n = emit_tcp_frame(
                &mut out,
                &f.addrs,
                0x0102,
                f.ttl,
                &f.tcp,
                [&p[..split], &p[split..]],
            )
            .unwrap();
            assert_eq!(&out[..n], &VLAN_DATA[..], "split {split}");
            assert!(out[n..].iter().all(|&b| b == 0xa5), "wrote past the frame");
        }
    }

    #[test]
    fn emit_errors_leave_buffer_alone() {
        let f = parse_tcp_frame(&LINUX_SYN).unwrap();
        let mut out = [0x11u8; 73];
        assert_eq!(
            emit_tcp_frame(&mut out, &f.addrs, 1, 64, &f.tcp, [&[], &[]]),
            Err(WireError::BufferTooSmall)
        );
        assert!(out.iter().all(|&b| b == 0x11));
        let big = vec![0u8; 65535 - 20 - 40 + 1];
        let mut out = vec![0u8; 70000];
        assert_eq!(
            emit_tcp_frame(&mut out, &f.addrs, 1, 64, &f.tcp, [&big, &[]]),
            Err(WireError::PayloadTooLarge)
        );
        let ok = &big[..big.len() - 1];
        let n = emit_tcp_frame(&mut out, &f.addrs, 1, 64, &f.tcp, [ok, &[]]).unwrap();
        assert_eq!(n, 14 + 65535);
        assert_eq!(parse_tcp_frame(&out[..n]).unwrap().payload.len(), ok.len());
    }

    const LOOPBACK_MAC: EthernetAddress = EthernetAddress([0; 6]);

    /// `frame` as `emit_tcp_frame_ecn` writes it from its own meaning: the IPv6 traffic
    /// class's DSCP and the flow label zeroed (the emitter writes DSCP 0 and no label).
    fn as_emitted_v6(frame: &[u8], ip_at: usize) -> Vec<u8> {
        let mut want = frame.to_vec();
        let word = u32::from_be_bytes(want[ip_at..ip_at + 4].try_into().unwrap());
        let ecn = (word >> 20) & 0b11;
        want[ip_at..ip_at + 4].copy_from_slice(&(6 << 28 | ecn << 20).to_be_bytes());
        want
    }

    fn reemit(frame: &[u8]) -> Vec<u8> {
        let f = parse_tcp_frame(frame).unwrap();
        let mut out = [0u8; 256];
        let (a, b) = f.payload.split_at(f.payload.len() / 2);
        let n =
            emit_tcp_frame_ecn(&mut out, &f.addrs, 0x5555, f.ttl, f.ecn, &f.tcp, [a, b]).unwrap();
        assert_eq!(n, tcp_frame_len(&f.addrs, &f.tcp, f.payload.len()));
        out[..n].to_vec()
    }

    #[test]
    fn linux_ipv6_syn_every_field() {
        let f = parse_tcp_frame(&LINUX_SYN_V6).unwrap();
        assert_eq!(
            (f.addrs.eth_src, f.addrs.eth_dst),
            (LOOPBACK_MAC, LOOPBACK_MAC)
        );
        assert_eq!(f.addrs.vlan, None);
        assert_eq!(
            f.addrs.ip,
            IpPair::V6 {
                src: Ipv6Addr::LOCALHOST,
                dst: Ipv6Addr::LOCALHOST
            }
        );
        assert!(f.addrs.ip.is_ipv6());
        assert_eq!(f.ttl, 64, "the hop limit");
        assert_eq!(f.ecn, Ecn::NotEct);
        let t = &f.tcp;
        assert_eq!((t.src_port, t.dst_port), (52918, 18080));
        assert_eq!(t.seq, SeqNumber(1_346_133_979));
        assert_eq!(t.flags, TcpFlags::SYN);
        assert_eq!(t.window, 65476);
        assert_eq!(
            t.options,
            TcpOptions {
                mss: Some(65476),
                window_scale: Some(10),
                sack_permitted: true,
                timestamps: Some((1_305_437_906, 0)),
                ..TcpOptions::default()
            }
        );
        assert!(f.payload.is_empty());
        // Linux's option layout is ours too; only the flow label differs.
        assert_eq!(reemit(&LINUX_SYN_V6), as_emitted_v6(&LINUX_SYN_V6, 14));
        assert_eq!(tcp_frame_len(&f.addrs, &f.tcp, 0), 14 + 40 + 40);
    }

    #[test]
    fn rfc8200_s8_1_the_tcp_checksum_covers_the_ipv6_pseudo_header() {
        // The captured checksum field held only the partial sum loopback offload leaves.
        let mut partial = LINUX_SYN_V6;
        partial[70..72].copy_from_slice(&[0x00, 0x30]);
        assert_eq!(parse_tcp_frame(&partial), Err(WireError::TcpChecksum));
        // Each byte of either address is covered.
        for at in 22..54 {
            let mut f = LINUX_SYN_V6;
            f[at] ^= 0x20;
            assert_eq!(
                parse_tcp_frame(&f),
                Err(WireError::TcpChecksum),
                "byte {at}"
            );
        }
        // So is the upper-layer length: shortening the segment by two zero bytes of padding
        // would keep a sum over the bytes alone the same.
        let f = parse_tcp_frame(&EXT_HEADERS_ACK_V6).unwrap();
        let IpPair::V6 { src, dst } = f.addrs.ip else {
            unreachable!("an IPv6 vector")
        };
        let segment = &EXT_HEADERS_ACK_V6[14 + 40 + 40..];
        let seg = TcpPacket::new_checked(segment).unwrap();
        assert!(seg.verify_checksum_ipv6(src, dst));
        assert!(!seg.verify_checksum_ipv6(dst, Ipv6Addr::LOCALHOST));
        // A checksum computed over an IPv4-style pseudo-header is refused.
        let mut v4_style = LINUX_SYN_V6;
        TcpPacket::new_unchecked(&mut v4_style[54..])
            .fill_checksum(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST);
        assert_eq!(parse_tcp_frame(&v4_style), Err(WireError::TcpChecksum));
    }

    #[test]
    fn vlan_tagged_ipv6_data_segment_every_field() {
        let f = parse_tcp_frame(&VLAN_DATA_V6).unwrap();
        assert_eq!(f.addrs.vlan, Some(VlanTag { tci: 0xa064 }));
        assert_eq!(
            f.addrs.ip,
            IpPair::V6 {
                src: "2001:db8:1::10".parse().unwrap(),
                dst: "2001:db8:1::1".parse().unwrap(),
            }
        );
        assert_eq!(f.ttl, 63);
        assert_eq!(f.ecn, Ecn::Ect0, "the traffic class's two low bits");
        let t = &f.tcp;
        assert_eq!((t.src_port, t.dst_port), (40000, 8080));
        assert_eq!(t.seq, SeqNumber(0x0102_0304));
        assert_eq!(t.ack, SeqNumber(0x0a0b_0c0d));
        assert_eq!(t.flags, TcpFlags::PSH | TcpFlags::ACK);
        assert_eq!(t.options.timestamps, Some((0x1234_5700, 0xcafe_babe)));
        assert_eq!(f.payload, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(reemit(&VLAN_DATA_V6), as_emitted_v6(&VLAN_DATA_V6, 18));
    }

    #[test]
    fn ipv6_extension_headers_are_walked_and_never_emitted() {
        let f = parse_tcp_frame(&EXT_HEADERS_ACK_V6).unwrap();
        assert_eq!(
            f.addrs.ip,
            IpPair::V6 {
                src: "fe80::1".parse().unwrap(),
                dst: "fe80::2".parse().unwrap(),
            }
        );
        assert_eq!(f.ttl, 255);
        assert_eq!((f.tcp.src_port, f.tcp.dst_port), (1234, 443));
        assert_eq!((f.tcp.seq, f.tcp.ack), (SeqNumber(1000), SeqNumber(2000)));
        assert_eq!(f.tcp.flags, TcpFlags::ACK);
        assert!(f.payload.is_empty());
        // The reply's frame has the bare 40-byte header: the same segment, 40 bytes sooner.
        let out = reemit(&EXT_HEADERS_ACK_V6);
        assert_eq!(out.len(), EXT_HEADERS_ACK_V6.len() - 40);
        assert_eq!(out[20], ip_protocol::TCP, "next header");
        assert_eq!(&out[18..20], &20u16.to_be_bytes(), "payload length");
        assert_eq!(&out[54..], &EXT_HEADERS_ACK_V6[94..]);
        assert_eq!(parse_tcp_frame(&out).unwrap().tcp, f.tcp);
    }

    #[test]
    fn ipv6_fragments_and_unwalked_headers_are_refused() {
        assert_eq!(parse_tcp_frame(&FRAGMENT_V6), Err(WireError::Fragment));
        // The Next Header byte of the fixed header and of the Routing header in the vector.
        let cases = [
            (20, 50, WireError::Ipv6Ipsec),
            (20, 51, WireError::Ipv6Ipsec),
            (20, 59, WireError::NoNextHeader),
            (20, 135, WireError::UnsupportedIpv6Header),
            (20, 17, WireError::NotTcp),
            (20, 58, WireError::NotTcp),
            (20, 44, WireError::Fragment),
            (70, 44, WireError::Fragment),
            (70, 17, WireError::NotTcp),
            (70, 0, WireError::BadIpv6ExtensionHeader),
        ];
        for (at, value, err) in cases {
            let mut f = EXT_HEADERS_ACK_V6;
            f[at] = value;
            assert_eq!(parse_tcp_frame(&f), Err(err), "byte {at} = {value}");
        }
        // Segments Left 1 in the Routing header; a discard-me option in Destination Options.
        let mut routed = EXT_HEADERS_ACK_V6;
        routed[73] = 1;
        assert_eq!(parse_tcp_frame(&routed), Err(WireError::Ipv6Routing));
        let mut option = EXT_HEADERS_ACK_V6;
        option[66] = 0x9e;
        assert_eq!(
            parse_tcp_frame(&option),
            Err(WireError::Ipv6UnrecognizedOption)
        );
    }

    #[test]
    fn ipv6_header_errors_each_have_their_variant() {
        let mut version = LINUX_SYN_V6;
        version[14] = 0x70;
        assert_eq!(parse_tcp_frame(&version), Err(WireError::BadIpVersion));
        let mut long = LINUX_SYN_V6;
        long[18..20].copy_from_slice(&41u16.to_be_bytes());
        assert_eq!(parse_tcp_frame(&long), Err(WireError::BadIpTotalLength));
        // A payload length leaving 19 bytes for TCP.
        let mut short = LINUX_SYN_V6;
        short[18..20].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(parse_tcp_frame(&short), Err(WireError::Truncated));
        // A payload length of 0 (a jumbogram would need a Hop-by-Hop option): no TCP header.
        let mut zero = LINUX_SYN_V6;
        zero[18..20].copy_from_slice(&0u16.to_be_bytes());
        assert_eq!(parse_tcp_frame(&zero), Err(WireError::Truncated));
        let mut doff = LINUX_SYN_V6;
        doff[66] = 0xb0;
        assert_eq!(parse_tcp_frame(&doff), Err(WireError::BadTcpDataOffset));
        // Padding after the payload length is ignored, as for IPv4.
        let mut padded = LINUX_SYN_V6.to_vec();
        padded.extend_from_slice(&[0xde, 0xad]);
        assert_eq!(parse_tcp_frame(&padded), parse_tcp_frame(&LINUX_SYN_V6));
    }

    #[test]
    fn every_truncation_of_each_ipv6_vector_is_an_error() {
        for v in [
            &LINUX_SYN_V6[..],
            &VLAN_DATA_V6[..],
            &EXT_HEADERS_ACK_V6[..],
        ] {
            for n in 0..v.len() {
                let e = parse_tcp_frame(&v[..n]).unwrap_err();
                assert!(
                    matches!(e, WireError::Truncated | WireError::BadIpTotalLength),
                    "len {n}: {e:?}"
                );
            }
        }
    }

    #[test]
    fn ipv6_emit_bounds_count_the_payload_length_alone() {
        let f = parse_tcp_frame(&LINUX_SYN_V6).unwrap();
        // 65535 bytes of TCP fit an IPv6 payload length (IPv4's total length also counts
        // its 20-byte header, so IPv4 takes 20 fewer).
        let big = vec![0u8; 65535 - 40 + 1];
        let mut out = vec![0x11u8; 70000];
        assert_eq!(
            emit_tcp_frame(&mut out, &f.addrs, 1, 64, &f.tcp, [&big, &[]]),
            Err(WireError::PayloadTooLarge)
        );
        assert!(out.iter().all(|&b| b == 0x11), "untouched on error");
        let ok = &big[..big.len() - 1];
        let n = emit_tcp_frame(&mut out, &f.addrs, 1, 64, &f.tcp, [ok, &[]]).unwrap();
        assert_eq!(n, 14 + 40 + 65535);
        assert_eq!(parse_tcp_frame(&out[..n]).unwrap().payload.len(), ok.len());
        let mut short = [0x22u8; 14 + 40 + 40 - 1];
        assert_eq!(
            emit_tcp_frame(&mut short, &f.addrs, 1, 64, &f.tcp, [&[], &[]]),
            Err(WireError::BufferTooSmall)
        );
        assert!(short.iter().all(|&b| b == 0x22));
    }

    #[test]
    fn ipv6_ecn_is_read_and_written_in_the_traffic_class() {
        for ecn in [Ecn::NotEct, Ecn::Ect0, Ecn::Ect1, Ecn::Ce] {
            let f = parse_tcp_frame(&LINUX_SYN_V6).unwrap();
            let mut out = [0u8; 128];
            let n = emit_tcp_frame_ecn(&mut out, &f.addrs, 1, 9, ecn, &f.tcp, [&[], &[]]).unwrap();
            let back = parse_tcp_frame(&out[..n]).unwrap();
            assert_eq!((back.ecn, back.ttl), (ecn, 9));
            let class = u16::from_be_bytes([out[14], out[15]]) >> 4 & 0xff;
            assert_eq!(
                class,
                u16::from(ecn.bits()),
                "DSCP 0, the ECN field as asked"
            );
        }
    }

    #[test]
    fn reversed_keeps_the_ipv6_family() {
        let f = parse_tcp_frame(&VLAN_DATA_V6).unwrap();
        let r = f.addrs.reversed();
        assert_eq!(
            (r.ip_src(), r.ip_dst()),
            (f.addrs.ip_dst(), f.addrs.ip_src())
        );
        assert!(r.ip.is_ipv6());
        assert_eq!(r.vlan, f.addrs.vlan);
        assert_eq!(r.reversed(), f.addrs);
    }
}

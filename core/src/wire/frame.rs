//! Whole frames: Ethernet (+ one 802.1Q tag) / IPv4 / TCP, parsed and emitted in one call.

use core::net::Ipv4Addr;

use super::ethernet::{self, ethertype, EthernetAddress, EthernetFrame, EthernetRepr, VlanTag};
use super::ipv4::{self, ip_protocol, Ecn, Ipv4Packet, Ipv4Repr};
use super::tcp::{TcpHeader, TcpPacket};
use super::WireError;

/// L2 + L3 addressing of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameAddrs {
    pub eth_src: EthernetAddress,
    pub eth_dst: EthernetAddress,
    pub vlan: Option<VlanTag>,
    pub ip_src: Ipv4Addr,
    pub ip_dst: Ipv4Addr,
}

impl FrameAddrs {
    /// The reply's addressing: sources and destinations swapped, same VLAN tag.
    #[inline]
    pub fn reversed(&self) -> FrameAddrs {
        FrameAddrs {
            eth_src: self.eth_dst,
            eth_dst: self.eth_src,
            vlan: self.vlan,
            ip_src: self.ip_dst,
            ip_dst: self.ip_src,
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
}

/// A parsed, verified TCP frame. `payload` borrows from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpFrame<'a> {
    pub addrs: FrameAddrs,
    /// The IPv4 TTL as received.
    pub ttl: u8,
    /// The IPv4 ECN field as received (RFC 3168: `Ce` is a congestion signal).
    pub ecn: Ecn,
    pub tcp: TcpHeader,
    pub payload: &'a [u8],
}

/// Ethernet (+ one 802.1Q tag) / IPv4 (options skipped) / TCP. Verifies the IPv4 header
/// checksum and the TCP checksum. Fragments, non-IPv4 and non-TCP are typed errors.
/// Ethernet padding beyond the IPv4 total length is ignored.
///
/// Checks run outside-in, so the error names the first layer that is wrong: Ethernet
/// (`Truncated`, `UnsupportedVlan`, `NotIpv4`), IPv4 lengths (`Truncated`, `BadIpVersion`,
/// `BadIpHeaderLength`, `BadIpTotalLength`), `IpChecksum`, `Fragment`, `NotTcp`, TCP lengths
/// (`Truncated`, `BadTcpDataOffset`), `TcpChecksum`, then `BadTcpOption`.
pub fn parse_tcp_frame(frame: &[u8]) -> Result<TcpFrame<'_>, WireError> {
    let eth = EthernetFrame::new_checked(frame)?;
    let eth_repr = EthernetRepr::parse(&eth)?;
    if eth_repr.ethertype != ethertype::IPV4 {
        return Err(WireError::NotIpv4);
    }
    let ip = Ipv4Packet::new_checked(eth.payload())?;
    let ip_repr = Ipv4Repr::parse(&ip)?;
    if ip_repr.protocol != ip_protocol::TCP {
        return Err(WireError::NotTcp);
    }
    let tcp = TcpPacket::new_checked(ip.payload())?;
    if !tcp.verify_checksum(ip_repr.src, ip_repr.dst) {
        return Err(WireError::TcpChecksum);
    }
    let header = TcpHeader::parse(&tcp)?;
    Ok(TcpFrame {
        addrs: FrameAddrs {
            eth_src: eth_repr.src,
            eth_dst: eth_repr.dst,
            vlan: eth_repr.vlan,
            ip_src: ip_repr.src,
            ip_dst: ip_repr.dst,
        },
        ttl: ip_repr.ttl,
        ecn: Ecn::of_tos(ip.tos()),
        tcp: header,
        payload: tcp.payload(),
    })
}

/// Length of the frame `emit_tcp_frame` would write.
#[inline]
pub fn tcp_frame_len(addrs: &FrameAddrs, tcp: &TcpHeader, payload_len: usize) -> usize {
    addrs.eth_header_len() + ipv4::HEADER_LEN + tcp.header_len() + payload_len
}

/// Writes Ethernet/IPv4 (DF set, no options)/TCP with options and the payload (given in up to
/// two parts, as a ring buffer hands it out), with both checksums. Returns the frame length.
///
/// Writes exactly `tcp_frame_len(..)` bytes at the front of `buf` and nothing after them (no
/// padding to the 60-byte Ethernet minimum). `BufferTooSmall` if they do not fit,
/// `PayloadTooLarge` if the IPv4 total length would exceed 65535; `buf` is untouched on error.
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

/// [`emit_tcp_frame`] with the IPv4 ECN field set to `ecn` (an ECN-capable connection's new
/// data goes out ECT(0), RFC 3168 §6.1.1).
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
    let tcp_hl = tcp.header_len();
    let seg_len = tcp_hl + payload_len;
    if ipv4::HEADER_LEN + seg_len > usize::from(u16::MAX) {
        return Err(WireError::PayloadTooLarge);
    }
    let total = eth_len + ipv4::HEADER_LEN + seg_len;
    let Some(buf) = buf.get_mut(..total) else {
        return Err(WireError::BufferTooSmall);
    };

    let (eth_buf, rest) = buf.split_at_mut(eth_len);
    EthernetRepr {
        src: addrs.eth_src,
        dst: addrs.eth_dst,
        vlan: addrs.vlan,
        ethertype: ethertype::IPV4,
    }
    .emit(eth_buf)?;

    let (ip_buf, seg) = rest.split_at_mut(ipv4::HEADER_LEN);
    Ipv4Repr {
        src: addrs.ip_src,
        dst: addrs.ip_dst,
        protocol: ip_protocol::TCP,
        payload_len: seg_len,
        ttl,
        ident: ip_id,
    }
    .emit_with_ecn(ip_buf, ecn)?;

    tcp.emit(seg)?;
    let (first, second) = seg[tcp_hl..].split_at_mut(payload[0].len());
    first.copy_from_slice(payload[0]);
    second.copy_from_slice(payload[1]);
    TcpPacket::new_unchecked(seg).fill_checksum(addrs.ip_src, addrs.ip_dst);
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
        assert_eq!(f.addrs.ip_src, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(f.addrs.ip_dst, Ipv4Addr::new(10, 0, 0, 2));
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
        assert_eq!(f.addrs.ip_src, Ipv4Addr::new(192, 168, 1, 10));
        assert_eq!(f.addrs.ip_dst, Ipv4Addr::new(192, 168, 1, 1));
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
        assert_eq!(f.addrs.ip_src, Ipv4Addr::new(10, 1, 2, 3));
        assert_eq!(f.addrs.ip_dst, Ipv4Addr::new(10, 1, 2, 4));
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
    fn other_ethertypes_are_not_ipv4() {
        for et in [ethertype::ARP, ethertype::IPV6, 0x0000, 0xffff] {
            let mut f = LINUX_SYN;
            f[12..14].copy_from_slice(&et.to_be_bytes());
            assert_eq!(parse_tcp_frame(&f), Err(WireError::NotIpv4), "{et:#x}");
        }
        let mut inner = VLAN_DATA;
        inner[16..18].copy_from_slice(&ethertype::IPV6.to_be_bytes());
        assert_eq!(parse_tcp_frame(&inner), Err(WireError::NotIpv4));
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
        TcpPacket::new_unchecked(&mut f[34..]).fill_checksum(addrs.ip_src, addrs.ip_dst);
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
            ip_src: Ipv4Addr::new(1, 2, 3, 4),
            ip_dst: Ipv4Addr::new(5, 6, 7, 8),
        };
        let r = a.reversed();
        assert_eq!((r.eth_src, r.eth_dst), (B, A));
        assert_eq!((r.ip_src, r.ip_dst), (a.ip_dst, a.ip_src));
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
}

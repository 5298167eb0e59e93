//! Helpers shared by the fuzz targets.
//!
//! Random bytes almost never carry valid IPv4, TCP and ICMP checksums, so a target that only
//! fed raw bytes would test little beyond the checksum check. `repair_checksums` fixes them in
//! place where the frame's structure allows (IPv4 header and TCP or ICMP; for IPv6, TCP or
//! ICMPv6 behind whatever extension headers the parser walks), so the fuzzer reaches the code
//! behind them (for ICMP: the quoted segment, and the engine's path MTU handling).

use xgate_core::wire::checksum;
use xgate_core::wire::ipv6::upper_layer;
use xgate_core::wire::{ethertype, ip_protocol, EthernetFrame, Ipv4Packet, Ipv6Packet, TcpPacket};

/// Writes the Internet checksum of `message` (ICMP: type, code, checksum, ...) into its bytes
/// 2-3, over `pseudo` (a pseudo-header's partial sum; 0 for ICMPv4) and the message.
fn fill_icmp_checksum(message: &mut [u8], pseudo: u32) {
    if message.len() < 4 {
        return;
    }
    message[2..4].fill(0);
    let sum = checksum::finish(checksum::combine(pseudo, checksum::sum(message)));
    message[2..4].copy_from_slice(&sum.to_be_bytes());
}

/// Recomputes the IPv4 header checksum and the TCP checksum of an Ethernet frame in place, if
/// the frame is long enough to hold the headers its own fields claim. Leaves it alone otherwise.
pub fn repair_checksums(frame: &mut [u8]) {
    let Ok(mut eth) = EthernetFrame::new_checked(&mut *frame) else {
        return;
    };
    if eth.payload_ethertype() == ethertype::IPV6 {
        repair_ipv6(eth.payload_mut());
        return;
    }
    let Ok(mut ip) = Ipv4Packet::new_checked(eth.payload_mut()) else {
        return;
    };
    ip.fill_checksum();
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let header_len = ip.header_len();
    let total = usize::from(ip.total_len());
    let protocol = ip.protocol();
    let buf = ip.into_inner();
    if header_len > total || total > buf.len() {
        return;
    }
    if protocol == ip_protocol::ICMP {
        fill_icmp_checksum(&mut buf[header_len..total], 0);
    } else if let Ok(mut tcp) = TcpPacket::new_checked(&mut buf[header_len..total]) {
        tcp.fill_checksum(src, dst);
    }
}

/// The TCP or ICMPv6 checksum of an IPv6 packet (there is no IP header checksum), found
/// behind the extension headers the parser would walk.
fn repair_ipv6(packet: &mut [u8]) {
    let Ok(ip) = Ipv6Packet::new_checked(&*packet) else {
        return;
    };
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let Ok(upper) = upper_layer(ip.next_header(), ip.payload()) else {
        return;
    };
    if upper.protocol != ip_protocol::TCP && upper.protocol != ip_protocol::ICMPV6 {
        return;
    }
    let start = xgate_core::wire::IPV6_HEADER_LEN + upper.offset;
    let end = xgate_core::wire::IPV6_HEADER_LEN + usize::from(ip.payload_len());
    let Some(upper_bytes) = packet.get_mut(start..end) else {
        return;
    };
    if upper.protocol == ip_protocol::ICMPV6 {
        let len = upper_bytes.len() as u32;
        let pseudo = checksum::pseudo_header_ipv6(src, dst, ip_protocol::ICMPV6, len);
        fill_icmp_checksum(upper_bytes, pseudo);
    } else if let Ok(mut tcp) = TcpPacket::new_checked(upper_bytes) {
        tcp.fill_checksum_ipv6(src, dst);
    }
}

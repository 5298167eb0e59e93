//! Helpers shared by the fuzz targets.
//!
//! Random bytes almost never carry valid IPv4 and TCP checksums, so a target that only fed raw
//! bytes would test little beyond the checksum check. `repair_checksums` fixes them in place
//! where the frame's structure allows (IPv4 header and TCP; for IPv6, TCP behind whatever
//! extension headers the parser walks), so the fuzzer reaches the code behind them.

use xgate_core::wire::ipv6::upper_layer;
use xgate_core::wire::{ethertype, ip_protocol, EthernetFrame, Ipv4Packet, Ipv6Packet, TcpPacket};

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
    let buf = ip.into_inner();
    if header_len > total || total > buf.len() {
        return;
    }
    if let Ok(mut tcp) = TcpPacket::new_checked(&mut buf[header_len..total]) {
        tcp.fill_checksum(src, dst);
    }
}

/// The TCP checksum of an IPv6 packet (there is no IP header checksum), found behind the
/// extension headers the parser would walk.
fn repair_ipv6(packet: &mut [u8]) {
    let Ok(ip) = Ipv6Packet::new_checked(&*packet) else {
        return;
    };
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let Ok(upper) = upper_layer(ip.next_header(), ip.payload()) else {
        return;
    };
    if upper.protocol != ip_protocol::TCP {
        return;
    }
    let start = xgate_core::wire::IPV6_HEADER_LEN + upper.offset;
    let end = xgate_core::wire::IPV6_HEADER_LEN + usize::from(ip.payload_len());
    let Some(segment) = packet.get_mut(start..end) else {
        return;
    };
    if let Ok(mut tcp) = TcpPacket::new_checked(segment) {
        tcp.fill_checksum_ipv6(src, dst);
    }
}

//! Helpers shared by the fuzz targets.
//!
//! Random bytes almost never carry valid IPv4 and TCP checksums, so a target that only fed raw
//! bytes would test little beyond the checksum check. `repair_checksums` fixes both checksums
//! in place where the frame's structure allows, so the fuzzer reaches the code behind them.

use xgate_core::wire::{EthernetFrame, Ipv4Packet, TcpPacket};

/// Recomputes the IPv4 header checksum and the TCP checksum of an Ethernet frame in place, if
/// the frame is long enough to hold the headers its own fields claim. Leaves it alone otherwise.
pub fn repair_checksums(frame: &mut [u8]) {
    let Ok(mut eth) = EthernetFrame::new_checked(&mut *frame) else {
        return;
    };
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

//! Zero-copy views and builders for the headers on the bypass path: Ethernet II (+802.1Q),
//! IPv4, IPv6 (with a bounded walk over its extension headers) and TCP with options, the
//! Internet checksum, and (parsed only) the ICMP errors that report a path MTU.
//!
//! Modelled on smoltcp's `wire`: each header has a view (`EthernetFrame`, `Ipv4Packet`,
//! `Ipv6Packet`, `TcpPacket`) over any `T: AsRef<[u8]>`, whose `new_checked` validates lengths
//! so that no accessor can panic afterwards (untrusted input goes through `new_checked`;
//! `new_unchecked` is for buffers the caller has sized), getters on `T: AsRef<[u8]>` and
//! setters on `T: AsMut<[u8]>`; and a plain struct saying what the header means
//! (`EthernetRepr`, `Ipv4Repr`, `Ipv6Repr`, `TcpHeader`). The frame-level functions
//! [`parse_tcp_frame`] and [`emit_tcp_frame`] are what the TCP engine uses on the hot path;
//! [`parse_icmp_frame`] reads the ICMP errors that report a path MTU (`icmp.rs`), off it.
//!
//! Which IPv6 packets are ever taken as the gateway's (and so which the XDP program may
//! steer) is decided by [`ipv6::upper_layer`]; its module documentation lists the rules: a
//! Fragment header, ESP/AH, No Next Header and every header it does not skip are refused.

pub mod checksum;
mod error;
mod ethernet;
mod frame;
pub mod icmp;
mod ipv4;
pub mod ipv6;
mod seq;
mod tcp;
#[cfg(test)]
mod test_vectors;

pub use error::WireError;
pub use ethernet::{
    ethertype, EthernetAddress, EthernetFrame, EthernetRepr, VlanTag,
    HEADER_LEN as ETHERNET_HEADER_LEN, VLAN_HEADER_LEN as ETHERNET_VLAN_HEADER_LEN,
};
pub use frame::{
    emit_tcp_frame, emit_tcp_frame_ecn, parse_tcp_frame, tcp_frame_len, FrameAddrs, IpPair,
    TcpFrame,
};
pub use icmp::{parse_icmp_frame, IcmpMessage, IpFamily, PmtuMessage};
pub use ipv4::{ip_protocol, Ecn, Ipv4Packet, Ipv4Repr, HEADER_LEN as IPV4_HEADER_LEN};
pub use ipv6::{Ipv6Packet, Ipv6Repr, HEADER_LEN as IPV6_HEADER_LEN};
pub use seq::SeqNumber;
pub use tcp::{
    SackBlock, TcpFlags, TcpHeader, TcpOptions, TcpPacket, HEADER_LEN as TCP_HEADER_LEN,
    MAX_OPTIONS_LEN as TCP_MAX_OPTIONS_LEN, MAX_SACK_BLOCKS,
};

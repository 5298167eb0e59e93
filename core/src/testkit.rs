//! A scripted TCP client that speaks in whole Ethernet frames, for benchmarks, fuzz targets
//! and tests that drive the engine without a real client stack.
//!
//! It is deliberately simple: it never retransmits, it accepts the server's bytes only in
//! order, and it acknowledges everything it has received. The deterministic simulation uses
//! smoltcp as a real, independent client instead; this one exists to put exact segments on
//! the wire (handshakes for the benchmark, window-edge offsets for the fuzzer).
//! [`icmp_too_big`] is the router beside it: the path MTU error a frame the server sent would
//! draw from a hop that cannot carry it.

use core::net::{Ipv4Addr, Ipv6Addr};

use crate::wire::{
    checksum, emit_tcp_frame, ethertype, ip_protocol, parse_tcp_frame, tcp_frame_len,
    EthernetAddress, EthernetFrame, EthernetRepr, FrameAddrs, IpPair, Ipv4Packet, Ipv4Repr,
    Ipv6Packet, Ipv6Repr, SeqNumber, TcpFlags, TcpHeader, TcpOptions,
};

/// The router [`icmp_too_big`] speaks for, over IPv4.
pub const ROUTER_IPV4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 254);
/// The router [`icmp_too_big`] speaks for, over IPv6.
pub const ROUTER_IPV6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xfe);

/// The ICMP error a router whose next hop carries `mtu`-byte packets sends back for `frame`
/// (an Ethernet frame the server sent; IPv4 or IPv6, its checksums as they are): IPv4
/// "fragmentation needed and DF set" (type 3 code 4, the MTU in bytes 6-7, RFC 1191) quoting
/// as much of the packet as a 576-byte datagram holds (RFC 1812 §4.3.2.3), or ICMPv6 "packet
/// too big" (type 2, the MTU in bytes 4-7, RFC 4443 §3.2) quoting as much as 1280 bytes hold
/// (RFC 4443 §2.4(c)); from [`ROUTER_IPV4`] / [`ROUTER_IPV6`] to the frame's IP source, the
/// Ethernet addresses swapped, the same VLAN tag. Written into `buf` (resized); its length,
/// or `None` if `frame` is not IP. Written byte by byte here, not by `wire::icmp` (which only
/// parses), so the two check each other.
pub fn icmp_too_big(frame: &[u8], mtu: u32, buf: &mut Vec<u8>) -> Option<usize> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let eth_repr = EthernetRepr::parse(&eth).ok()?;
    let packet = eth.payload();
    let reply_eth = EthernetRepr {
        src: eth_repr.dst,
        dst: eth_repr.src,
        ..eth_repr
    };
    let eth_len = reply_eth.header_len();
    match eth_repr.ethertype {
        ethertype::IPV4 => {
            let ip = Ipv4Packet::new_checked(packet).ok()?;
            let packet = &packet[..usize::from(ip.total_len())];
            let quote = &packet[..packet.len().min(576 - 20 - 8)];
            let icmp_len = 8 + quote.len();
            buf.clear();
            buf.resize(eth_len + 20 + icmp_len, 0);
            reply_eth.emit(buf).ok()?;
            Ipv4Repr {
                src: ROUTER_IPV4,
                dst: ip.src_addr(),
                protocol: ip_protocol::ICMP,
                payload_len: icmp_len,
                ttl: 64,
                ident: 0,
            }
            .emit(&mut buf[eth_len..])
            .ok()?;
            let message = &mut buf[eth_len + 20..];
            // Type, code, checksum, unused (zero), next-hop MTU: 16 bits on IPv4.
            message[..2].copy_from_slice(&[3, 4]);
            message[6..8].copy_from_slice(&(mtu as u16).to_be_bytes());
            message[8..].copy_from_slice(quote);
            let sum = checksum::finish(checksum::sum(message));
            message[2..4].copy_from_slice(&sum.to_be_bytes());
        }
        ethertype::IPV6 => {
            let ip = Ipv6Packet::new_checked(packet).ok()?;
            let packet = &packet[..40 + usize::from(ip.payload_len())];
            let quote = &packet[..packet.len().min(1280 - 40 - 8)];
            let icmp_len = 8 + quote.len();
            buf.clear();
            buf.resize(eth_len + 40 + icmp_len, 0);
            reply_eth.emit(buf).ok()?;
            Ipv6Repr {
                src: ROUTER_IPV6,
                dst: ip.src_addr(),
                next_header: ip_protocol::ICMPV6,
                payload_len: icmp_len,
                hop_limit: 64,
                traffic_class: 0,
                flow_label: 0,
            }
            .emit(&mut buf[eth_len..])
            .ok()?;
            let message = &mut buf[eth_len + 40..];
            message[0] = 2;
            message[4..8].copy_from_slice(&mtu.to_be_bytes());
            message[8..].copy_from_slice(quote);
            let pseudo = checksum::pseudo_header_ipv6(
                ROUTER_IPV6,
                ip.src_addr(),
                ip_protocol::ICMPV6,
                icmp_len as u32,
            );
            let sum = checksum::finish(checksum::combine(pseudo, checksum::sum(message)));
            message[2..4].copy_from_slice(&sum.to_be_bytes());
        }
        _ => return None,
    }
    Some(buf.len())
}

/// One client connection's view of the sequence spaces.
#[derive(Debug, Clone)]
pub struct ScriptedClient {
    pub addrs: FrameAddrs,
    pub src_port: u16,
    pub dst_port: u16,
    /// Our next sequence number.
    pub seq: SeqNumber,
    /// The next sequence number we expect from the server.
    pub server_next: SeqNumber,
    /// The server's TSval to echo, once the handshake negotiated timestamps.
    pub server_ts: Option<u32>,
    pub ts: u32,
    pub window: u16,
    /// Whether the server's FIN has been received.
    pub server_fin: bool,
}

/// What a server frame meant to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub flags: TcpFlags,
    /// In-order payload bytes accepted from this frame.
    pub accepted: usize,
}

impl ScriptedClient {
    /// A client at 10.0.0.1:`src_port` talking to 10.0.0.2:`dst_port`.
    pub fn new(src_port: u16, dst_port: u16, isn: u32) -> Self {
        ScriptedClient {
            addrs: FrameAddrs {
                eth_src: EthernetAddress([2, 0, 0, 0, 0, 1]),
                eth_dst: EthernetAddress([2, 0, 0, 0, 0, 2]),
                vlan: None,
                ip: IpPair::V4 {
                    src: Ipv4Addr::new(10, 0, 0, 1),
                    dst: Ipv4Addr::new(10, 0, 0, 2),
                },
            },
            src_port,
            dst_port,
            seq: SeqNumber(isn),
            server_next: SeqNumber(0),
            server_ts: None,
            ts: 1,
            window: 65535,
            server_fin: false,
        }
    }

    /// A client at [2001:db8::1]:`src_port` talking to [2001:db8::2]:`dst_port`: the same
    /// client over IPv6.
    pub fn new_ipv6(src_port: u16, dst_port: u16, isn: u32) -> Self {
        let mut client = Self::new(src_port, dst_port, isn);
        client.addrs.ip = IpPair::V6 {
            src: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            dst: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
        };
        client
    }

    /// A header from this client with the given flags, our current numbers, and timestamps if
    /// they were negotiated.
    pub fn header(&self, flags: TcpFlags) -> TcpHeader {
        let mut options = TcpOptions::default();
        if let Some(echo) = self.server_ts {
            options.timestamps = Some((self.ts, echo));
        }
        TcpHeader {
            src_port: self.src_port,
            dst_port: self.dst_port,
            seq: self.seq,
            ack: self.server_next,
            flags,
            window: self.window,
            options,
            ..TcpHeader::default()
        }
    }

    /// Writes `tcp` + `payload` as a frame from this client into `buf` (resized to fit).
    pub fn frame(&self, buf: &mut Vec<u8>, tcp: &TcpHeader, payload: &[u8]) -> usize {
        let len = tcp_frame_len(&self.addrs, tcp, payload.len());
        buf.resize(len, 0);
        emit_tcp_frame(buf, &self.addrs, 1, 64, tcp, [payload, &[]])
            .expect("a buffer of tcp_frame_len bytes holds the frame")
    }

    /// The opening SYN, offering MSS 1460, SACK, window scale 7 and (if asked) timestamps.
    pub fn syn(&mut self, buf: &mut Vec<u8>, timestamps: bool) -> usize {
        let mut tcp = self.header(TcpFlags::SYN);
        tcp.ack = SeqNumber(0);
        tcp.options = TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: timestamps.then_some((self.ts, 0)),
            ..TcpOptions::default()
        };
        let n = self.frame(buf, &tcp, &[]);
        self.seq = self.seq + 1u32;
        n
    }

    /// An ACK carrying `payload` (possibly empty); advances our sequence number.
    pub fn send(&mut self, buf: &mut Vec<u8>, payload: &[u8]) -> usize {
        let flags = if payload.is_empty() {
            TcpFlags::ACK
        } else {
            TcpFlags::ACK | TcpFlags::PSH
        };
        let tcp = self.header(flags);
        let n = self.frame(buf, &tcp, payload);
        self.seq = self.seq + payload.len();
        self.ts = self.ts.wrapping_add(1);
        n
    }

    /// Our FIN (with an ACK of everything received).
    pub fn fin(&mut self, buf: &mut Vec<u8>) -> usize {
        let tcp = self.header(TcpFlags::FIN | TcpFlags::ACK);
        let n = self.frame(buf, &tcp, &[]);
        self.seq = self.seq + 1u32;
        n
    }

    /// The path MTU error ([`icmp_too_big`]) for a full-sized segment the server would send
    /// this client at `seq`: what a router whose next hop carries `mtu` bytes sends back.
    pub fn too_big(&self, buf: &mut Vec<u8>, mtu: u32, seq: SeqNumber) -> usize {
        let server = self.addrs.reversed();
        let tcp = TcpHeader {
            src_port: self.dst_port,
            dst_port: self.src_port,
            seq,
            ack: self.seq,
            flags: TcpFlags::ACK | TcpFlags::PSH,
            window: 1000,
            ..TcpHeader::default()
        };
        let payload = [0x5a; 1400];
        let mut segment = vec![0u8; tcp_frame_len(&server, &tcp, payload.len())];
        emit_tcp_frame(&mut segment, &server, 1, 64, &tcp, [&payload, &[]])
            .expect("a buffer of tcp_frame_len bytes holds the frame");
        icmp_too_big(&segment, mtu, buf).expect("an IP frame")
    }

    /// Takes a frame from the server. In-order payload is appended to `sink` (if given) and
    /// acknowledged by the next frame we build. Returns `None` for frames not for us: other
    /// ports, or other IP addresses (of either family) than ours reversed.
    pub fn receive(&mut self, frame: &[u8], sink: Option<&mut Vec<u8>>) -> Option<Received> {
        let f = parse_tcp_frame(frame).ok()?;
        if f.tcp.dst_port != self.src_port || f.tcp.src_port != self.dst_port {
            return None;
        }
        let ours = (self.addrs.ip_dst(), self.addrs.ip_src());
        if (f.addrs.ip_src(), f.addrs.ip_dst()) != ours {
            return None;
        }
        let t = &f.tcp;
        if t.flags.contains(TcpFlags::SYN) {
            self.server_next = t.seq + 1u32;
            self.server_ts = t.options.timestamps.map(|(v, _)| v);
            return Some(Received {
                flags: t.flags,
                accepted: 0,
            });
        }
        if let (Some((v, _)), Some(_)) = (t.options.timestamps, self.server_ts) {
            self.server_ts = Some(v);
        }
        let mut accepted = 0;
        if t.seq == self.server_next {
            accepted = f.payload.len();
            if let Some(sink) = sink {
                sink.extend_from_slice(f.payload);
            }
            self.server_next = self.server_next + accepted;
            if t.flags.contains(TcpFlags::FIN) {
                self.server_next = self.server_next + 1u32;
                self.server_fin = true;
            }
        }
        Some(Received {
            flags: t.flags,
            accepted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syn_offers_options_and_consumes_one_sequence_number() {
        let mut c = ScriptedClient::new(5000, 80, 99);
        let mut buf = Vec::new();
        let n = c.syn(&mut buf, true);
        let f = parse_tcp_frame(&buf[..n]).unwrap();
        assert_eq!(f.tcp.flags, TcpFlags::SYN);
        assert_eq!(f.tcp.seq, SeqNumber(99));
        assert_eq!(f.tcp.options.mss, Some(1460));
        assert!(f.tcp.options.timestamps.is_some());
        assert_eq!(c.seq, SeqNumber(100));
    }

    #[test]
    fn receive_accepts_only_in_order_bytes_and_counts_fin() {
        let mut c = ScriptedClient::new(5000, 80, 1);
        c.server_next = SeqNumber(500);
        let server = ScriptedClient {
            addrs: c.addrs.reversed(),
            src_port: 80,
            dst_port: 5000,
            seq: SeqNumber(500),
            ..c.clone()
        };
        let mut buf = Vec::new();
        let mut tcp = server.header(TcpFlags::ACK | TcpFlags::FIN);
        let n = server.frame(&mut buf, &tcp, b"hello");
        let mut sink = Vec::new();
        let r = c.receive(&buf[..n], Some(&mut sink)).unwrap();
        assert_eq!(r.accepted, 5);
        assert_eq!(sink, b"hello");
        assert!(c.server_fin);
        assert_eq!(c.server_next, SeqNumber(506));
        // A segment from the past is not accepted again.
        tcp.flags = TcpFlags::ACK;
        let n = server.frame(&mut buf, &tcp, b"hello");
        assert_eq!(c.receive(&buf[..n], Some(&mut sink)).unwrap().accepted, 0);
        // Frames for another port are not ours.
        tcp.dst_port = 5001;
        let n = server.frame(&mut buf, &tcp, b"x");
        assert!(c.receive(&buf[..n], None).is_none());
        // Nor are frames from the right port of another address, or in the other family.
        tcp.dst_port = 5000;
        for ip in [
            IpPair::V4 {
                src: Ipv4Addr::new(10, 0, 0, 9),
                dst: Ipv4Addr::new(10, 0, 0, 1),
            },
            ScriptedClient::new_ipv6(5000, 80, 1).addrs.ip.reversed(),
        ] {
            let other = ScriptedClient {
                addrs: FrameAddrs { ip, ..server.addrs },
                ..server.clone()
            };
            let n = other.frame(&mut buf, &tcp, b"x");
            assert!(c.receive(&buf[..n], None).is_none(), "{ip:?}");
        }
    }
}
